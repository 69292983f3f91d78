"""ACL policies end to end: sys/policy and sys/policies/acl CRUD (hvac and raw HTTP),
default/root protections, restricted tokens refused exactly where their policy says,
sudo paths, merging, and the capabilities endpoints."""

import json

import hvac
import pytest

import custos_harness as H

DENIED = "permission denied"

READER = """
# read-only on the app subtree of kv/
path "kv/app/*" {
  capabilities = ["read", "list"]
}
path "kv/" {
  capabilities = ["list"]
}
path "kv/app/new/*" {
  capabilities = ["create"]
}
path "sys/mounts" {
  capabilities = ["deny"]
}
path "nomount/*" {
  capabilities = ["read"]
}
"""


@pytest.fixture(scope="module")
def srv(module_unsealed):
    H.enable_kv(module_unsealed, "kv")
    c = module_unsealed.client()
    c.secrets.kv.v1.create_or_update_secret("app/db", {"password": "p"}, mount_point="kv")
    c.secrets.kv.v1.create_or_update_secret("top", {"x": "1"}, mount_point="kv")
    return module_unsealed


def make_token(srv, policies, **kw):
    body = dict(kw, policies=policies)
    r = srv.request("POST", "auth/token/create", token=srv.root_token, json=body)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()["auth"]["client_token"]


def put_policy(srv, name, text, legacy=True):
    path = ("sys/policy/" if legacy else "sys/policies/acl/") + name
    r = srv.put(path, token=srv.root_token, json={"policy": text})
    assert r.status_code == 204, (r.status_code, r.text)


def assert_denied(r):
    assert r.status_code == 403, (r.status_code, r.text)
    assert any(DENIED in e for e in H.errors_of(r)), r.text


# ---- CRUD ------------------------------------------------------------------------------
def test_policy_crud_with_hvac(srv):
    c = srv.client()
    c.sys.create_or_update_policy("Ops-Team", READER)  # names are lower-cased
    got = c.sys.read_policy("ops-team")
    assert got["data"]["name"] == "ops-team"
    assert got["data"]["rules"] == READER
    assert got["rules"] == READER  # legacy endpoint copies data to the top level
    listed = c.sys.list_policies()
    assert "ops-team" in listed["data"]["policies"]
    assert {"default", "root"} <= set(listed["data"]["keys"])
    assert listed["data"]["keys"][-1] == "root"
    c.sys.delete_policy("ops-team")
    with pytest.raises(hvac.exceptions.InvalidPath):
        c.sys.read_policy("ops-team")
    assert "ops-team" not in c.sys.list_policies()["data"]["policies"]
    # deleting what does not exist is fine, as in Vault
    r = srv.request("DELETE", "sys/policy/ops-team", token=srv.root_token)
    assert r.status_code == 204, r.text


def test_acl_endpoints_and_json_policy(srv):
    # (this hvac has no sys/policies/acl helpers: raw HTTP)
    doc = {"path": {"kv/json/*": {"capabilities": ["read"]}}}
    r = srv.put("sys/policies/acl/JsonPol", token=srv.root_token, json={"policy": json.dumps(doc)})
    assert r.status_code == 204, r.text
    r = srv.get("sys/policies/acl/jsonpol", token=srv.root_token)
    got = r.json()["data"]
    assert got["name"] == "jsonpol" and json.loads(got["policy"]) == doc
    assert "policy" not in r.json()  # not copied to the top level
    keys = srv.request("LIST", "sys/policies/acl", token=srv.root_token).json()["data"]["keys"]
    assert "jsonpol" in keys and "default" in keys and keys[-1] == "root"
    r = srv.get("sys/policies/acl", token=srv.root_token, params={"list": "true"})
    assert r.status_code == 200 and "jsonpol" in r.json()["data"]["keys"], r.text
    # hvac's legacy helper with a dict policy sends it as JSON text too
    srv.client().sys.create_or_update_policy("jsonpol2", doc)
    assert json.loads(srv.client().sys.read_policy("jsonpol2")["data"]["rules"]) == doc
    # "rules" is accepted as the legacy field name
    r = srv.put("sys/policy/legacy-rules", token=srv.root_token,
                json={"rules": 'path "a/*" { policy = "read" }'})
    assert r.status_code == 204, r.text
    r = srv.get("sys/policies/acl/legacy-rules", token=srv.root_token)
    assert r.json()["data"]["policy"] == 'path "a/*" { policy = "read" }'
    for name in ("jsonpol", "jsonpol2", "legacy-rules"):
        r = srv.request("DELETE", "sys/policies/acl/" + name, token=srv.root_token)
        assert r.status_code == 204, r.text
    r = srv.get("sys/policies/acl/jsonpol", token=srv.root_token)
    assert r.status_code == 404 and r.json() == {"errors": []}, r.text


@pytest.mark.parametrize("text,msg", [
    ('path "a" { capabilities = ["fly"] }', 'invalid capability "fly"'),
    ('path "a" { capabilities = ["read"] ', "failed to parse policy"),
    ('path "a" { bogus = 1 }', 'invalid key "bogus"'),
    ('pathx "a" { capabilities = ["read"] }', 'invalid key "pathx"'),
    ("", "'policy' parameter not supplied or empty"),
])
def test_bad_policies_are_400(srv, text, msg):
    for path in ("sys/policy/bad", "sys/policies/acl/bad"):
        r = srv.put(path, token=srv.root_token, json={"policy": text})
        assert r.status_code == 400, (r.status_code, r.text)
        assert any(msg in e for e in H.errors_of(r)), r.text
    assert srv.get("sys/policy/bad", token=srv.root_token).status_code == 404


def test_root_and_default_protections(srv):
    c = srv.client()
    for method, path in (("DELETE", "sys/policy/root"), ("DELETE", "sys/policy/default"),
                         ("DELETE", "sys/policies/acl/root"),
                         ("DELETE", "sys/policies/acl/default")):
        r = srv.request(method, path, token=srv.root_token)
        assert r.status_code == 400, (path, r.status_code, r.text)
        assert "cannot delete" in H.errors_of(r)[0]
    r = srv.put("sys/policy/root", token=srv.root_token,
                json={"policy": 'path "*" { capabilities = ["read"] }'})
    assert r.status_code == 400 and "cannot update" in H.errors_of(r)[0], r.text
    root = c.sys.read_policy("root")["data"]
    assert root == {"name": "root", "rules": ""}
    default = srv.get("sys/policies/acl/default", token=srv.root_token).json()["data"]["policy"]
    assert 'path "auth/token/lookup-self"' in default
    assert 'path "cubbyhole/*"' in default
    # default can be changed (and then serves the new text), then restored
    try:
        put_policy(srv, "default", default + '\npath "kv/default-extra" '
                   '{ capabilities = ["read"] }\n', legacy=False)
        tok = make_token(srv, ["default"])  # no policies = the parent's (root)
        r = srv.get("kv/default-extra", token=tok)
        assert r.status_code == 404, (r.status_code, r.text)  # allowed, absent
    finally:
        put_policy(srv, "default", default, legacy=False)
    assert_denied(srv.get("kv/default-extra", token=tok))


# ---- a restricted token ------------------------------------------------------------------
def test_restricted_token_kv(srv):
    put_policy(srv, "reader", READER)
    tok = make_token(srv, ["reader"])
    kv = srv.client(token=tok).secrets.kv.v1
    assert kv.read_secret("app/db", mount_point="kv")["data"] == {"password": "p"}
    # write denied (update and create)
    assert_denied(srv.put("kv/app/db", token=tok, json={"password": "x"}))
    assert_denied(srv.put("kv/app/other", token=tok, json={"a": "b"}))
    with pytest.raises(hvac.exceptions.Forbidden):
        kv.create_or_update_secret("app/db", {"p": "x"}, mount_point="kv")
    assert_denied(srv.request("DELETE", "kv/app/db", token=tok))
    # outside the granted subtree
    assert_denied(srv.get("kv/top", token=tok))
    # list: kv/ (exact rule with the trailing slash) and kv/app/ (glob)
    assert kv.list_secrets("", mount_point="kv")["data"]["keys"] == ["app/", "top"]
    assert kv.list_secrets("app", mount_point="kv")["data"]["keys"] == ["db"]
    r = srv.get("kv/", token=tok, params={"list": "true"})
    assert r.status_code == 200, r.text
    # create-only path: the first write creates, the second would update
    r = srv.put("kv/app/new/one", token=tok, json={"a": "1"})
    assert r.status_code == 204, (r.status_code, r.text)
    assert_denied(srv.put("kv/app/new/one", token=tok, json={"a": "2"}))
    # system paths: explicit deny, and deny by default
    assert_denied(srv.get("sys/mounts", token=tok))
    assert_denied(srv.get("sys/policy", token=tok))
    assert_denied(srv.put("sys/policy/evil", token=tok,
                          json={"policy": 'path "*" { capabilities = ["sudo"] }'}))
    assert_denied(srv.put("sys/mounts/x", token=tok, json={"type": "kv"}))
    # a path without a route: 404 only where the policy allows it
    assert srv.get("nomount/x", token=tok).status_code == 404
    assert_denied(srv.get("elsewhere/x", token=tok))
    # the default policy came along
    r = srv.get("auth/token/lookup-self", token=tok)
    assert r.status_code == 200, r.text
    assert set(r.json()["data"]["policies"]) == {"default", "reader"}
    # with the root token everything still works
    assert srv.get("sys/mounts", token=srv.root_token).status_code == 200


def test_policy_changes_apply_immediately(srv):
    put_policy(srv, "flip", 'path "kv/top" { capabilities = ["read"] }', legacy=False)
    tok = make_token(srv, ["flip"])
    assert srv.get("kv/top", token=tok).status_code == 200
    put_policy(srv, "flip", 'path "kv/top" { capabilities = ["deny"] }', legacy=False)
    assert_denied(srv.get("kv/top", token=tok))
    put_policy(srv, "flip", 'path "kv/top" { capabilities = ["read"] }', legacy=False)
    assert srv.get("kv/top", token=tok).status_code == 200
    srv.request("DELETE", "sys/policies/acl/flip", token=srv.root_token)
    assert_denied(srv.get("kv/top", token=tok))


def test_merge_union_and_deny_wins(srv):
    put_policy(srv, "m-read", 'path "kv/m/*" { capabilities = ["read"] }')
    put_policy(srv, "m-write", 'path "kv/m/*" { capabilities = ["create", "update"] }')
    put_policy(srv, "m-deny", 'path "kv/m/*" { capabilities = ["deny"] }')
    both = make_token(srv, ["m-read", "m-write"])
    r = srv.put("kv/m/x", token=both, json={"v": "1"})
    assert r.status_code == 204, r.text
    assert srv.get("kv/m/x", token=both).json()["data"] == {"v": "1"}
    denied = make_token(srv, ["m-read", "m-write", "m-deny"])
    assert_denied(srv.get("kv/m/x", token=denied))
    assert_denied(srv.put("kv/m/x", token=denied, json={"v": "2"}))


def test_parameter_constraints(srv):
    put_policy(srv, "params", """
path "kv/params/*" {
  capabilities = ["create", "update"]
  allowed_parameters = { "color" = ["red", "bl*"], "size" = [] }
}
path "kv/req/*" {
  capabilities = ["create", "update"]
  required_parameters = ["owner"]
}
""")
    tok = make_token(srv, ["params"])
    assert srv.put("kv/params/a", token=tok, json={"color": "blue", "size": 3}).status_code == 204
    assert_denied(srv.put("kv/params/a", token=tok, json={"color": "green"}))
    assert_denied(srv.put("kv/params/a", token=tok, json={"color": "red", "shape": "x"}))
    assert srv.put("kv/req/a", token=tok, json={"owner": "me", "v": 1}).status_code == 204
    assert_denied(srv.put("kv/req/a", token=tok, json={"v": 1}))


def test_sudo_paths(srv):
    put_policy(srv, "nosudo", """
path "sys/seal" { capabilities = ["update"] }
path "sys/leases/lookup/*" { capabilities = ["list"] }
""")
    # An exact rule for the listed folder itself: with a glob alone, LIST of
    # sys/leases/lookup/ would first find the default policy's exact "sys/leases/lookup"
    # (update only), as in Vault.
    put_policy(srv, "withsudo", 'path "sys/leases/lookup/" { capabilities = ["list", "sudo"] }')
    plain = make_token(srv, ["nosudo"])
    assert_denied(srv.put("sys/seal", token=plain))
    assert_denied(srv.request("LIST", "sys/leases/lookup/", token=plain))
    sudo = make_token(srv, ["withsudo"])
    r = srv.request("LIST", "sys/leases/lookup/", token=sudo)
    assert r.status_code in (200, 404), (r.status_code, r.text)
    # still unsealed
    assert srv.get("sys/seal-status").json()["sealed"] is False
    # sys/auth/* is a root path too: update alone does not enable an auth method
    put_policy(srv, "authnosudo", 'path "sys/auth/*" { capabilities = ["create", "update"] }')
    put_policy(srv, "authsudo",
               'path "sys/auth/*" { capabilities = ["create", "update", "sudo"] }')
    assert_denied(srv.put("sys/auth/upx", token=make_token(srv, ["authnosudo"]),
                          json={"type": "userpass"}))
    r = srv.put("sys/auth/upx", token=make_token(srv, ["authsudo"]), json={"type": "userpass"})
    assert r.status_code == 204, (r.status_code, r.text)
    assert srv.request("DELETE", "sys/auth/upx", token=srv.root_token).status_code == 204


# ---- capabilities -----------------------------------------------------------------------
def test_capabilities_endpoints(srv):
    put_policy(srv, "reader", READER)
    tok = make_token(srv, ["reader"])
    paths = ["kv/app/db", "kv/", "sys/mounts", "kv/app/new/x", "cubbyhole/a", "nothing"]
    r = srv.request("POST", "sys/capabilities-self", token=tok, json={"paths": paths})
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert d["kv/app/db"] == ["list", "read"]
    assert d["kv/"] == ["list"]
    assert d["sys/mounts"] == ["deny"]
    assert d["kv/app/new/x"] == ["create"]
    assert d["cubbyhole/a"] == ["create", "delete", "list", "read", "update"]
    assert d["nothing"] == ["deny"]
    assert "capabilities" not in d  # only for a single path
    assert r.json()["kv/"] == ["list"]  # top-level copy
    # hvac: token → sys/capabilities, none → capabilities-self
    got = srv.client().sys.get_capabilities(["kv/app/db"], token=tok)
    assert got["capabilities"] == ["list", "read"] and got["kv/app/db"] == ["list", "read"]
    got = srv.client(token=tok).sys.get_capabilities(["kv/top"])
    assert got["data"]["capabilities"] == ["deny"]
    got = srv.client().sys.get_capabilities(["anything/at/all"])
    assert got["data"]["capabilities"] == ["root"]
    # by accessor
    acc = srv.request("POST", "auth/token/lookup", token=srv.root_token,
                      json={"token": tok}).json()["data"]["accessor"]
    got = srv.client().sys.get_capabilities(["kv/app/db", "kv/top"], accessor=acc)
    assert got["data"] == {"kv/app/db": ["list", "read"], "kv/top": ["deny"]}, got
    r = srv.request("POST", "sys/capabilities-accessor", token=srv.root_token,
                    json={"paths": ["x"], "accessor": "no-such-accessor"})
    assert r.status_code == 400, r.text
    # errors
    r = srv.request("POST", "sys/capabilities", token=srv.root_token,
                    json={"paths": ["x"], "token": H.random_token()})
    assert r.status_code == 400 and "invalid token" in H.errors_of(r)[0], r.text
    r = srv.request("POST", "sys/capabilities-self", token=tok, json={})
    assert r.status_code == 400, r.text
    # sys/capabilities itself is not in the default policy
    assert_denied(srv.request("POST", "sys/capabilities", token=tok,
                              json={"paths": ["x"], "token": tok}))
