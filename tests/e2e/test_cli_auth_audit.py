"""`custos auth enable|disable|list|tune` and `custos audit enable|disable|list` against a
real -dev server: Vault's request bodies (checked through the API), Success! lines, the
list tables (plain and -detailed) and -format=json, error texts and exit codes, help."""

import os

import custos_harness as H
# The per-test CLI runner (fresh HOME, root token by default) and exit-code helpers.
from test_cli_kv import cli, fails, ok  # noqa: F401


def rows(text):
    """A Vault table (header, dashes, rows) as a list of cell lists."""
    lines = text.splitlines()
    assert len(lines) >= 2 and all(set(c) == {"-"} for c in lines[1].split()), text
    return [l.split() for l in lines[2:]]


def auth_mounts(cli):
    r = cli.server.get("sys/auth", token=cli.server.root_token)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_auth_enable_list_tune_disable(cli):
    path = "up" + H.uid()[:8]
    p = ok(cli("auth", "enable", "-path=" + path, "-description=people of the org",
               "-default-lease-ttl=1h", "-max-lease-ttl=2h", "-listing-visibility=unauth",
               "-options=foo=bar", "userpass"))
    assert p.stdout == "Success! Enabled userpass auth method at: %s/\n" % path, p.stdout
    m = auth_mounts(cli)[path + "/"]
    assert m["type"] == "userpass" and m["description"] == "people of the org", m
    assert m["config"]["default_lease_ttl"] == 3600 and m["config"]["max_lease_ttl"] == 7200, m
    assert m["config"].get("listing_visibility") == "unauth", m
    assert m["options"] == {"foo": "bar"}, m

    # The default path is the type; trailing and leading slashes are trimmed.
    p = ok(cli("auth", "enable", "approle"))
    assert p.stdout == "Success! Enabled approle auth method at: approle/\n", p.stdout
    p = fails(cli("auth", "enable", "-path=/%s/" % path, "userpass"))
    assert p.stderr.startswith("Error enabling userpass auth: "), p.stderr
    assert "already in use" in p.stderr, p.stderr

    # Plain table: Path Type Accessor Description Version, sorted by path.
    p = ok(cli("auth", "list"))
    assert p.stdout.splitlines()[0].split() == ["Path", "Type", "Accessor", "Description",
                                                "Version"], p.stdout
    table = rows(p.stdout)
    paths = [r[0] for r in table]
    assert paths == sorted(paths) and {"token/", "approle/", path + "/"} <= set(paths), p.stdout
    mine = table[paths.index(path + "/")]
    assert mine[1] == "userpass" and mine[2] == m["accessor"], mine
    assert " ".join(mine[3:-1]) == "people of the org" and mine[-1] == "n/a", mine

    # -detailed: Vault's columns, TTLs in seconds, options as a Go map.
    p = ok(cli("auth", "list", "-detailed"))
    header = p.stdout.splitlines()[0]
    for col in ("Path", "Plugin", "Accessor", "Default TTL", "Max TTL", "Token Type",
                "Replication", "Seal Wrap", "External Entropy Access", "Options",
                "Description", "UUID", "Version", "Running Version", "Running SHA256",
                "Deprecation Status"):
        assert col in header, (col, header)
    line = next(l for l in p.stdout.splitlines() if l.startswith(path + "/"))
    cells = line.split()
    assert cells[:5] == [path + "/", "userpass", m["accessor"], "3600", "7200"], line
    assert "replicated" in cells and "map[foo:bar]" in cells, line

    # JSON: the map of mounts, as the server sends it.
    got = H.json_or_fail(ok(cli("auth", "list", "-format=json")).stdout)
    assert got[path + "/"]["accessor"] == m["accessor"], got
    assert got["token/"]["type"] == "token", got

    # tune: only the given settings change.
    p = ok(cli("auth", "tune", "-default-lease-ttl=30m", "-description=renamed", path))
    assert p.stdout == "Success! Tuned the auth method at: %s/\n" % path, p.stdout
    m = auth_mounts(cli)[path + "/"]
    assert m["config"]["default_lease_ttl"] == 1800 and m["config"]["max_lease_ttl"] == 7200, m
    assert m["description"] == "renamed" and m["options"] == {"foo": "bar"}, m
    ok(cli("auth", "tune", "-listing-visibility=hidden", "-options=x=y", path + "/"))
    m = auth_mounts(cli)[path + "/"]
    assert m["description"] == "renamed" and m["config"]["default_lease_ttl"] == 1800, m
    assert m["config"].get("listing_visibility") == "hidden", m
    assert m["options"] == {"foo": "bar", "x": "y"}, m
    p = fails(cli("auth", "tune", "-default-lease-ttl=3h", path))
    assert p.stderr.startswith("Error tuning auth method %s/: " % path), p.stderr
    p = fails(cli("auth", "tune", "-description=x", "nothing-here"))
    assert p.stderr.startswith("Error tuning auth method nothing-here/: "), p.stderr

    # disable: idempotent, like Vault.
    p = ok(cli("auth", "disable", path))
    assert p.stdout == "Success! Disabled the auth method (if it existed) at: %s/\n" % path
    assert path + "/" not in auth_mounts(cli)
    ok(cli("auth", "disable", path + "/"))
    ok(cli("auth", "disable", "approle/"))
    p = fails(cli("auth", "disable", "token"))
    assert p.stderr.startswith("Error disabling auth method at token/: "), p.stderr


def test_auth_enabled_method_logs_in(cli):
    path = "ul" + H.uid()[:8]
    ok(cli("auth", "enable", "-path=" + path, "-default-lease-ttl=20m", "userpass"))
    ok(cli("write", "auth/%s/users/alice" % path, "password=pw", "token_policies=default"))
    p = ok(cli("login", "-method=userpass", "-path=" + path, "-format=json", "username=alice",
               "password=pw"))
    auth = H.json_or_fail(p.stdout)["auth"]
    assert auth["policies"] == ["default"] and auth["lease_duration"] == 1200, auth
    ok(cli("auth", "disable", path))
    fails(cli("login", "-method=userpass", "-path=" + path, "username=alice", "password=pw"))


def test_auth_arguments_and_flags(cli):
    for args, msg in ((("auth", "enable"), "Not enough arguments (expected 1, got 0)"),
                      (("auth", "enable", "a", "b"), "Too many arguments (expected 1, got 2)"),
                      (("auth", "disable"), "Not enough arguments (expected 1, got 0)"),
                      (("auth", "tune", "a", "b"), "Too many arguments (expected 1, got 2)"),
                      (("auth", "list", "x"), "Too many arguments (expected 0, got 1)")):
        assert msg in fails(cli(*args), 1).stderr, args
    p = fails(cli("auth", "enable", "-default-lease-ttl=soon", "userpass"), 1)
    assert 'invalid value "soon" for flag -default-lease-ttl' in p.stderr, p.stderr
    p = fails(cli("auth", "list", "-path=x"), 1)
    assert "flag provided but not defined: -path" in p.stderr, p.stderr
    fails(cli("auth", "list", "-format=yaml"), 1)
    fails(cli("auth", "list", token=H.random_token()))
    fails(cli("auth", "enable", "-path=nope" + H.uid()[:6], "no-such-type"))
    fails(cli("auth", "bogus"), 1)


def test_help_lists_auth_and_audit(cli):
    top = ok(cli("help")).stdout
    assert "    audit " in top and "    auth " in top, top
    assert "enable" in ok(cli("auth", "-h")).stdout
    assert "enable" in ok(cli("audit", "-h")).stdout
    for args, usage in ((("auth", "enable"), "Usage: custos auth enable [options] TYPE"),
                        (("auth", "disable"), "Usage: custos auth disable [options] PATH"),
                        (("auth", "list"), "Usage: custos auth list [options]"),
                        (("auth", "tune"), "Usage: custos auth tune [options] PATH"),
                        (("audit", "enable"), "Usage: custos audit enable [options] TYPE"),
                        (("audit", "disable"), "Usage: custos audit disable [options] PATH"),
                        (("audit", "list"), "Usage: custos audit list [options]")):
        p = ok(cli(*args, "-h"))
        assert p.stdout.startswith(usage) and "-address" in p.stdout, p.stdout
    assert "-listing-visibility" in ok(cli("auth", "tune", "-h")).stdout
    assert "-detailed" in ok(cli("audit", "list", "-h")).stdout


def test_audit_file_device(cli, tmp_path):
    log = str(tmp_path / "audit.log")
    p = fails(cli("audit", "list"))
    assert p.stdout == "No audit devices are enabled.\n", p.stdout
    assert H.json_or_fail(ok(cli("audit", "list", "-format=json")).stdout) == {}

    p = ok(cli("audit", "enable", "-description=to disk", "file", "file_path=" + log))
    assert p.stdout == "Success! Enabled the file audit device at: file/\n", p.stdout
    p = ok(cli("audit", "enable", "-path=second", "-local", "file", "file_path=" + log + ".2",
               "mode=0600"))
    assert p.stdout == "Success! Enabled the file audit device at: second/\n", p.stdout
    p = fails(cli("audit", "enable", "file", "file_path=" + log))
    assert p.stderr.startswith("Error enabling audit device: "), p.stderr

    # A request after enabling is logged.
    ok(cli("read", "sys/mounts"))
    assert os.path.exists(log) and os.path.getsize(log) > 0, log

    p = ok(cli("audit", "list"))
    assert p.stdout.splitlines()[0].split() == ["Path", "Type", "Description"], p.stdout
    assert rows(p.stdout) == [["file/", "file", "to", "disk"], ["second/", "file", "n/a"]], p.stdout
    p = ok(cli("audit", "list", "-detailed"))
    assert p.stdout.splitlines()[0].split() == ["Path", "Type", "Description", "Replication",
                                                "Options"], p.stdout
    table = rows(p.stdout)
    assert table[0] == ["file/", "file", "to", "disk", "replicated", "file_path=" + log], p.stdout
    assert table[1] == ["second/", "file", "n/a", "local", "file_path=" + log + ".2",
                        "mode=0600"], p.stdout
    got = H.json_or_fail(ok(cli("audit", "list", "-format=json")).stdout)
    assert got["file/"]["type"] == "file" and got["file/"]["description"] == "to disk", got
    assert got["file/"]["options"]["file_path"] == log, got
    assert got["second/"]["local"] is True, got

    p = ok(cli("audit", "disable", "second"))
    assert p.stdout == "Success! Disabled audit device (if it was enabled) at: second/\n"
    ok(cli("audit", "disable", "/file/"))
    ok(cli("audit", "disable", "file"))
    assert fails(cli("audit", "list")).stdout == "No audit devices are enabled.\n"


def test_audit_arguments(cli):
    p = fails(cli("audit", "enable"), 1)
    assert p.stderr == ("Error enabling audit device: audit type missing. Valid types include "
                        "'file', 'socket' and 'syslog'.\n"), p.stderr
    p = fails(cli("audit", "enable", "file", "novalue"), 1)
    assert p.stderr.startswith("Failed to parse K=V data: "), p.stderr
    assert "Not enough arguments (expected 1, got 0)" in fails(cli("audit", "disable"), 1).stderr
    assert "Too many arguments (expected 1, got 2)" in fails(
        cli("audit", "disable", "a", "b"), 1).stderr
    assert "Too many arguments (expected 0, got 1)" in fails(cli("audit", "list", "x"), 1).stderr
    p = fails(cli("audit", "enable", "-max-lease-ttl=1h", "file"), 1)
    assert "flag provided but not defined: -max-lease-ttl" in p.stderr, p.stderr
    fails(cli("audit", "list", token=H.random_token()))
