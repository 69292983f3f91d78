"""`custos token ...` and `custos login` against a real -dev server: the Key/Value token
table, -field, -format=json, lookup/renew/revoke by token, accessor and -self,
capabilities, and login storing ~/.vault-token."""

import os

import custos_harness as H
# The per-test CLI runner (fresh HOME, root token by default) and exit-code helpers.
from test_cli_kv import cli, fails, ok  # noqa: F401


def table(text):
    """Key/Value table rows as a dict (first whitespace run splits key from value)."""
    rows = {}
    for line in text.splitlines()[2:]:
        parts = line.split(None, 1)
        if parts:
            rows[parts[0]] = parts[1] if len(parts) > 1 else ""
    return rows


def create(cli, *flags):
    got = H.json_or_fail(ok(cli("token", "create", "-format=json", *flags)).stdout)
    return got["auth"]


def test_token_create_table_and_json(cli):
    p = ok(cli("token", "create", "-policy=default", "-ttl=1h", "-metadata=team=ops"))
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["Key", "Value"] and set(lines[1].split()) == {"---", "-----"}
    rows = table(p.stdout)
    for k in ("token", "token_accessor", "token_duration", "token_renewable",
              "token_policies", "identity_policies", "policies"):
        assert k in rows, (k, p.stdout)
    assert [l.split(None, 1)[0] for l in lines[2:9]] == [
        "token", "token_accessor", "token_duration", "token_renewable", "token_policies",
        "identity_policies", "policies"], p.stdout
    assert rows["token_duration"] == "1h" and rows["token_renewable"] == "true", rows
    assert rows["token_policies"] == '["default"]', rows
    assert rows.get("token_meta_team") == "ops", rows
    tok = rows["token"]
    look = cli.server.client(tok).auth.token.lookup_self()["data"]
    assert look["policies"] == ["default"] and 3500 < look["ttl"] <= 3600, look

    auth = create(cli, "-policy=default", "-explicit-max-ttl=2h", "-use-limit=5",
                  "-display-name=ci", "-renewable=false")
    look = cli.server.client().auth.token.lookup(auth["client_token"])["data"]
    assert look["num_uses"] == 5 and look["renewable"] is False, look
    assert look["explicit_max_ttl"] == 7200 and "ci" in look["display_name"], look

    p = ok(cli("token", "create", "-field=token", "-policy=default"))
    assert p.stdout.startswith("hvs.") and "\n" not in p.stdout, repr(p.stdout)

    orphan = create(cli, "-orphan", "-policy=default")
    assert cli.server.client().auth.token.lookup(orphan["client_token"])["data"]["orphan"] is True

    fails(cli("token", "create", "extra"), 1)
    fails(cli("token", "create", "-ttl=forever"), 1)
    fails(cli("token", "create", "-policy=default", token=H.random_token()))


def test_token_lookup_renew_revoke(cli):
    auth = create(cli, "-policy=default", "-ttl=1h")
    tok, acc = auth["client_token"], auth["accessor"]

    rows = table(ok(cli("token", "lookup", tok)).stdout)
    assert rows["accessor"] == acc and rows["id"] == tok and rows["ttl"].endswith(("m", "s")), rows
    p = ok(cli("token", "lookup", "-accessor", acc))
    assert tok not in p.stdout and acc in p.stdout
    assert ok(cli("token", "lookup", "-field=accessor", tok)).stdout == acc
    self_ = H.json_or_fail(ok(cli("token", "lookup", "-format=json", token=tok)).stdout)
    assert self_["data"]["id"] == tok, self_
    fails(cli("token", "lookup", "-accessor"), 1)
    fails(cli("token", "lookup", "a", "b"), 1)
    fails(cli("token", "lookup", H.random_token()))

    p = ok(cli("token", "renew", "-increment=30m", tok))
    assert table(p.stdout)["token_duration"] in ("30m", "29m59s"), p.stdout
    ok(cli("token", "renew", token=tok))
    ok(cli("token", "renew", "-accessor", acc))

    # capabilities
    p = ok(cli("token", "capabilities", "sys/mounts"))
    assert p.stdout.strip() == "root", p.stdout
    p = ok(cli("token", "capabilities", tok, "secret/data/x"))
    assert p.stdout.strip() == "deny", p.stdout
    got = H.json_or_fail(ok(cli("token", "capabilities", "-format=json", tok, "secret/data/x")).stdout)
    assert got == ["deny"], got
    fails(cli("token", "capabilities"), 1)

    # revoke: by token (tree), by accessor, -self
    child = create(cli, "-policy=default")
    p = ok(cli("token", "revoke", child["client_token"]))
    assert "Success! Revoked token (if it existed)" in p.stdout
    fails(cli("token", "lookup", child["client_token"]))
    child = create(cli, "-policy=default")
    ok(cli("token", "revoke", "-accessor", child["accessor"]))
    fails(cli("token", "lookup", child["client_token"]))
    ok(cli("token", "revoke", "-self", token=tok))
    fails(cli("token", "lookup", tok))
    fails(cli("token", "revoke"), 1)
    fails(cli("token", "revoke", "-self", "x"), 1)
    fails(cli("token", "revoke", "-self", "-accessor"), 1)
    fails(cli("token", "revoke", "-mode=bogus", "x"), 1)
    fails(cli("token", "revoke", "-accessor", "-mode=orphan", "x"), 1)


def test_login_token(cli):
    auth = create(cli, "-policy=default", "-ttl=1h")
    tok = auth["client_token"]
    vt = os.path.join(cli.home, ".vault-token")

    p = ok(cli("login", tok, token=None))
    assert "Success! You are now authenticated" in p.stdout
    rows = table(p.stdout[p.stdout.index("Key"):])
    assert rows["token"] == tok and rows["token_accessor"] == auth["accessor"], rows
    assert rows["policies"] == '["default"]', rows
    with open(vt) as f:
        assert f.read().strip() == tok
    assert (os.stat(vt).st_mode & 0o777) == 0o600
    # the stored token is used by later commands
    rows = table(ok(cli("token", "lookup", token=None)).stdout)
    assert rows["id"] == tok

    os.unlink(vt)
    p = ok(cli("login", "-no-store", "-format=json", tok, token=None))
    assert H.json_or_fail(p.stdout)["auth"]["client_token"] == tok
    assert "not stored" in p.stderr and not os.path.exists(vt)
    p = ok(cli("login", "-token-only", "token=" + tok, token=None))
    assert p.stdout == tok and not os.path.exists(vt)
    # token from stdin when not given
    ok(cli("login", "-no-store", token=None, input_text=tok + "\n"))

    p = fails(cli("login", H.random_token(), token=None))
    assert "Error authenticating" in p.stderr
    assert not os.path.exists(vt)
    fails(cli("login", "-no-store", "-no-print", tok), 1)
    fails(cli("login", "-method=bogus"), 1)
    fails(cli("login", "-method=userpass", "-non-interactive", "username=x"), 2)
    fails(cli("login", "-non-interactive", token=None), 2)
    p = ok(cli("login", "-h"))
    assert "-method" in p.stdout


def test_login_userpass_and_approle(cli):
    """Needs the userpass and approle auth methods on the server."""
    c = cli.server.client()
    up = "up" + H.uid()[:6]
    ar = "ar" + H.uid()[:6]
    c.sys.enable_auth_method("userpass", path=up)
    c.sys.enable_auth_method("approle", path=ar)
    cli.server.request("POST", "auth/%s/users/alice" % up, token=cli.server.root_token,
                       json={"password": "pw-1", "token_policies": "default"}).raise_for_status()
    p = ok(cli("login", "-method=userpass", "-path=" + up, "-no-store", "-format=json",
               "username=alice", "password=pw-1", token=None))
    assert "default" in H.json_or_fail(p.stdout)["auth"]["policies"]
    p = ok(cli("login", "-method=userpass", "-path=" + up, "-token-only",
               "username=alice", token=None, input_text="pw-1\n"))
    assert p.stdout.startswith("hvs.")
    fails(cli("login", "-method=userpass", "-path=" + up, "username=alice", "password=bad",
              token=None))

    cli.server.request("POST", "auth/%s/role/r1" % ar, token=cli.server.root_token,
                       json={"token_policies": "default"}).raise_for_status()
    rid = cli.server.request("GET", "auth/%s/role/r1/role-id" % ar,
                             token=cli.server.root_token).json()["data"]["role_id"]
    sid = cli.server.request("POST", "auth/%s/role/r1/secret-id" % ar,
                             token=cli.server.root_token).json()["data"]["secret_id"]
    p = ok(cli("login", "-method=approle", "-path=" + ar, "role_id=" + rid,
               "secret_id=" + sid, token=None))
    with open(os.path.join(cli.home, ".vault-token")) as f:
        assert f.read().startswith("hvs.")
