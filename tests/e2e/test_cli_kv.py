"""`custos kv ...` and `custos policy ...` against a real -dev server: KV v2 on secret/
(versions, cas, patch, delete/undelete/destroy, metadata), KV v1 through the same
commands (preflight), Vault's table sections and -format=json, exit codes."""

import json
import os

import pytest

import custos_harness as H


@pytest.fixture
def cli(dev_server, tmp_path):
    home = str(tmp_path / "home")
    os.makedirs(home, exist_ok=True)

    def run(*args, token=dev_server.root_token, env=None, input_text=None):
        e = {"VAULT_ADDR": dev_server.url, "HOME": home}
        if token:
            e["VAULT_TOKEN"] = token
        e.update(env or {})
        return H.run_cli(list(args), env=e, input_text=input_text)

    run.server = dev_server
    run.home = home
    return run


def ok(p):
    assert p.returncode == 0, "exit %s\nstdout: %s\nstderr: %s" % (p.returncode, p.stdout, p.stderr)
    return p


def fails(p, code=2):
    assert p.returncode == code, "exit %s (want %s)\nstdout: %s\nstderr: %s" % (
        p.returncode, code, p.stdout, p.stderr)
    return p


def test_kv_v2_put_get_versions(cli):
    key = "secret/app-" + H.uid()[:8]
    p = ok(cli("kv", "put", key, "user=admin", "password=s3cr3t"))
    assert "= Secret Path =" in p.stdout and key.replace("secret/", "secret/data/") in p.stdout
    assert "Metadata" in p.stdout and "version" in p.stdout
    ok(cli("kv", "put", key, "user=admin", "password=n3w"))

    p = ok(cli("kv", "get", key))
    assert "====== Metadata ======" in p.stdout or "= Metadata =" in p.stdout, p.stdout
    assert "=== Data ===" in p.stdout and "n3w" in p.stdout, p.stdout
    lines = [l.split() for l in p.stdout.splitlines()]
    assert ["version", "2"] in lines, p.stdout

    p = ok(cli("kv", "get", "-version=1", "-field=password", key))
    assert p.stdout == "s3cr3t", repr(p.stdout)

    got = H.json_or_fail(ok(cli("kv", "get", "-format=json", key)).stdout)
    assert got["data"]["data"] == {"user": "admin", "password": "n3w"}, got
    assert got["data"]["metadata"]["version"] == 2, got

    # -mount syntax reaches the same secret
    p = ok(cli("kv", "get", "-mount=secret", "-field=user", key.split("/", 1)[1]))
    assert p.stdout == "admin"

    # the server agrees
    c = cli.server.client()
    r = c.secrets.kv.v2.read_secret_version(path=key.split("/", 1)[1], mount_point="secret")
    assert r["data"]["data"]["password"] == "n3w"

    # a missing key: exit 2, "No value found"
    p = fails(cli("kv", "get", "secret/nope-" + H.uid()))
    assert "No value found at secret/data/nope-" in p.stderr, p.stderr
    fails(cli("kv", "get", "-field=nope", key), 1)


def test_kv_v2_cas_and_patch(cli):
    key = "secret/cas-" + H.uid()[:8]
    ok(cli("kv", "put", "-cas=0", key, "a=1"))
    p = fails(cli("kv", "put", "-cas=0", key, "a=2"))
    assert "check-and-set" in p.stderr, p.stderr
    ok(cli("kv", "put", "-cas=1", key, "a=2"))

    ok(cli("kv", "patch", key, "b=3"))
    got = H.json_or_fail(ok(cli("kv", "get", "-format=json", key)).stdout)
    assert got["data"]["data"] == {"a": "2", "b": "3"}, got
    ok(cli("kv", "patch", "-method=rw", key, "c=4"))
    ok(cli("kv", "patch", "-method=patch", "-remove-data=a", key, "d=5"))
    got = H.json_or_fail(ok(cli("kv", "get", "-format=json", key)).stdout)
    assert got["data"]["data"] == {"b": "3", "c": "4", "d": "5"}, got
    assert got["data"]["metadata"]["version"] == 5, got
    p = fails(cli("kv", "patch", "-cas=1", key, "e=6"))
    assert "check-and-set" in p.stderr, p.stderr
    fails(cli("kv", "patch", "-method=bogus", key, "e=6"))
    fails(cli("kv", "patch", key), 1)
    # patching a key that does not exist fails
    fails(cli("kv", "patch", "secret/absent-" + H.uid()[:8], "x=1"))

    got = H.json_or_fail(ok(cli("kv", "put", "-format=json", key, "z=1")).stdout)
    assert got["data"]["version"] == 6, got


def test_kv_v2_delete_undelete_destroy_metadata(cli):
    key = "secret/life-" + H.uid()[:8]
    for i in range(3):
        ok(cli("kv", "put", key, "v=%d" % i))
    p = ok(cli("kv", "delete", key))
    assert "Success! Data deleted (if it existed) at: secret/data/" in p.stdout
    # the deleted latest version still shows its metadata, with no data
    p = ok(cli("kv", "get", key))
    assert "deletion_time" in p.stdout and "=== Data ===" not in p.stdout, p.stdout
    fails(cli("kv", "get", "-field=v", key))

    ok(cli("kv", "delete", "-versions=1,2", key))
    fails(cli("kv", "undelete", key), 1)
    p = ok(cli("kv", "undelete", "-versions=3", key))
    assert "Success! Data written to: secret/undelete/" in p.stdout, p.stdout
    assert ok(cli("kv", "get", "-field=v", key)).stdout == "2"
    ok(cli("kv", "destroy", "-versions=1", key))

    meta = H.json_or_fail(ok(cli("kv", "metadata", "get", "-format=json", key)).stdout)
    vers = meta["data"]["versions"]
    assert vers["1"]["destroyed"] is True and vers["2"]["deletion_time"] != "", vers
    p = ok(cli("kv", "metadata", "get", key))
    assert "Metadata Path" in p.stdout and "====== Version 1 ======" in p.stdout, p.stdout
    assert p.stdout.index("Version 1 ") < p.stdout.index("Version 3 ")

    ok(cli("kv", "metadata", "put", "-max-versions=5", "-cas-required=true",
           "-delete-version-after=1h", "-custom-metadata=owner=ops", key))
    meta = H.json_or_fail(ok(cli("kv", "metadata", "get", "-format=json", key)).stdout)["data"]
    assert meta["max_versions"] == 5 and meta["cas_required"] is True, meta
    assert meta["custom_metadata"] == {"owner": "ops"}, meta
    assert meta["delete_version_after"] in ("1h0m0s", "1h"), meta
    # cas_required now applies
    fails(cli("kv", "put", key, "v=x"))
    ok(cli("kv", "put", "-cas=3", key, "v=x"))

    p = ok(cli("kv", "list", "secret/"))
    assert key.split("/", 1)[1] in p.stdout.split(), p.stdout
    keys = H.json_or_fail(ok(cli("kv", "list", "-format=json", "-mount=secret")).stdout)
    assert key.split("/", 1)[1] in keys, keys

    p = ok(cli("kv", "metadata", "delete", key))
    assert "Success! Data deleted (if it existed) at: secret/metadata/" in p.stdout
    fails(cli("kv", "get", key))
    fails(cli("kv", "metadata", "get", key))


def test_kv_v1_mount(cli):
    mount = "kv1" + H.uid()[:6]
    ok(cli("secrets", "enable", "-path=" + mount, "kv"))
    ok(cli("kv", "put", mount + "/a", "x=1", "ttl=30m"))
    p = ok(cli("kv", "get", mount + "/a"))
    assert "=== Data ===" in p.stdout and "Secret Path" not in p.stdout, p.stdout
    assert "30m" in p.stdout, p.stdout
    assert ok(cli("kv", "get", "-field=x", mount + "/a")).stdout == "1"
    assert ok(cli("kv", "get", "-mount=" + mount, "-field=x", "a")).stdout == "1"
    got = H.json_or_fail(ok(cli("kv", "get", "-format=json", mount + "/a")).stdout)
    assert got["data"] == {"x": "1", "ttl": "30m"}, got
    assert ok(cli("kv", "list", "-format=json", mount)).stdout.strip().startswith("[")
    fails(cli("kv", "undelete", "-versions=1", mount + "/a"), 1)
    fails(cli("kv", "destroy", "-versions=1", mount + "/a"), 1)
    fails(cli("kv", "metadata", "get", mount + "/a"), 1)
    fails(cli("kv", "patch", mount + "/a", "y=2"), 2)
    ok(cli("kv", "delete", mount + "/a"))
    fails(cli("kv", "get", mount + "/a"))


def test_kv_usage_errors(cli):
    assert cli("kv").returncode == 1
    assert ok(cli("kv", "-h")).stdout.startswith("Usage: custos kv")
    assert "-cas" in ok(cli("kv", "put", "-h")).stdout
    fails(cli("kv", "put", "secret/x"), 1)
    fails(cli("kv", "get"), 1)
    fails(cli("kv", "get", "a", "b"), 1)
    fails(cli("kv", "get", "-bogus", "secret/x"), 1)
    fails(cli("kv", "metadata", "nope"), 1)


def test_policy_commands(cli, tmp_path):
    name = "Pol" + H.uid()[:6]
    low = name.lower()
    f = tmp_path / "p.hcl"
    f.write_text('path "secret/data/app/*" {\n  capabilities = ["read", "list"]\n}\n')
    p = ok(cli("policy", "write", name, str(f)))
    assert "Success! Uploaded policy: %s" % low in p.stdout
    assert "converted from" in p.stderr
    assert low in ok(cli("policy", "list")).stdout.split()
    assert low in H.json_or_fail(ok(cli("policy", "list", "-format=json")).stdout)
    p = ok(cli("policy", "read", low))
    assert 'path "secret/data/app/*"' in p.stdout
    got = H.json_or_fail(ok(cli("policy", "read", "-format=json", low)).stdout)
    assert "capabilities" in got["policy"]
    # from stdin
    ok(cli("policy", "write", low + "2", "-",
           input_text='path "secret/*" { capabilities = ["deny"] }'))
    assert "deny" in ok(cli("policy", "read", low + "2")).stdout
    ok(cli("policy", "delete", low + "2"))
    p = fails(cli("policy", "read", low + "2"))
    assert "No policy named" in p.stderr
    fails(cli("policy", "write", low, str(tmp_path / "missing.hcl")))
    fails(cli("policy", "write", low), 1)
    p = fails(cli("policy", "write", low, "-", input_text="this is { not hcl"))
    assert "Error uploading policy" in p.stderr

    # fmt rewrites in place to canonical HCL that still parses the same
    g = tmp_path / "f.hcl"
    g.write_text('path "a/*" {capabilities=["read"]\nmax_wrapping_ttl="1h"}\n'
                 'path "b" { capabilities = ["list"] }')
    p = ok(cli("policy", "fmt", str(g), token=None))
    assert "Success! Formatted policy" in p.stdout
    text = g.read_text()
    assert text.startswith('path "a/*" {\n  capabilities     = ["read"]\n'), text
    assert '\n\npath "b" {\n  capabilities = ["list"]\n}\n' in text, text
    ok(cli("policy", "write", low + "3", str(g)))
    fails(cli("policy", "fmt", str(tmp_path / "missing.hcl")), 1)
    bad = tmp_path / "bad.hcl"
    bad.write_text("path {")
    fails(cli("policy", "fmt", str(bad)), 1)
    assert bad.read_text() == "path {"
