"""Cubbyhole and response wrapping end to end.

Cubbyhole: always mounted at cubbyhole/, private to each token, destroyed with the token
whatever revokes it (revoke, tree revoke, last use, expiry). Destruction is checked through
behaviour: a token re-created with the same id (root may choose ids) files its cubbyhole
under the same salted key, so it must find nothing left.

Wrapping: X-Vault-Wrap-TTL on reads, writes and logins, sys/wrapping/wrap|unwrap|lookup|
rewrap, single use, expiry, and policy bounds (max_wrapping_ttl)."""

import json
import time

import hvac
import pytest

import custos_harness as H

INVALID = "wrapping token is not valid or does not exist"


@pytest.fixture(scope="module")
def srv(module_unsealed):
    H.enable_kv(module_unsealed, "kv")
    module_unsealed.client().secrets.kv.v1.create_or_update_secret(
        "app/db", {"password": "s3cr3t", "n": 7}, mount_point="kv")
    return module_unsealed


def create(srv, **kw):
    kw.setdefault("policies", ["default"])
    r = srv.request("POST", "auth/token/create", token=srv.root_token, json=kw)
    assert r.status_code == 200, r.text
    return r.json()["auth"]


def cubby_list(srv, token, path="cubbyhole/"):
    r = srv.request("LIST", path, token=token)
    if r.status_code == 404:
        return []
    assert r.status_code == 200, r.text
    return r.json()["data"]["keys"]


def fixed_id():
    return "hvs.cubby" + H.uid()[:16]


def recreate_and_check_empty(srv, token_id, deadline_s=0):
    """Create the token `token_id` again and assert its cubbyhole is empty."""
    end = time.monotonic() + deadline_s
    while True:
        r = srv.request("POST", "auth/token/create", token=srv.root_token,
                        json={"id": token_id, "policies": ["default"]})
        if r.status_code == 200 or time.monotonic() >= end:
            break
        time.sleep(0.2)  # expiry not processed yet: the id is still in use
    assert r.status_code == 200, r.text
    assert cubby_list(srv, token_id) == []
    assert srv.get("cubbyhole/a", token=token_id).status_code == 404


# ---- cubbyhole --------------------------------------------------------------------------
def test_cubbyhole_is_a_required_mount(srv):
    c = srv.client()
    mounts = c.sys.list_mounted_secrets_engines()["data"]
    assert mounts["cubbyhole/"]["type"] == "cubbyhole"
    assert mounts["cubbyhole/"]["local"] is True
    assert mounts["cubbyhole/"]["accessor"].startswith("cubbyhole_")
    r = srv.request("DELETE", "sys/mounts/cubbyhole", token=srv.root_token)
    assert r.status_code == 400 and "cannot unmount" in H.errors_of(r)[0]
    r = srv.request("POST", "sys/mounts/cubbyhole", token=srv.root_token, json={"type": "kv"})
    assert r.status_code == 400
    r = srv.request("POST", "sys/mounts/cubbyhole/x", token=srv.root_token, json={"type": "kv"})
    assert r.status_code == 400
    assert "cubbyhole/" in c.sys.list_mounted_secrets_engines()["data"]


def test_each_token_sees_only_its_own(srv):
    t1 = create(srv)["client_token"]
    t2 = create(srv)["client_token"]
    c1 = srv.client(t1)
    c2 = srv.client(t2)
    c1.write("cubbyhole/shared-name", value="one")
    c1.write("cubbyhole/dir/only1", x="1")
    c2.write("cubbyhole/shared-name", value="two")
    assert c1.read("cubbyhole/shared-name")["data"] == {"value": "one"}
    assert c2.read("cubbyhole/shared-name")["data"] == {"value": "two"}
    r = c1.read("cubbyhole/shared-name")
    assert r["lease_duration"] == 0 and r["lease_id"] == ""
    assert sorted(cubby_list(srv, t1)) == ["dir/", "shared-name"]
    assert cubby_list(srv, t1, "cubbyhole/dir") == ["only1"]
    assert cubby_list(srv, t2) == ["shared-name"]
    assert srv.get("cubbyhole/dir/only1", token=t2).status_code == 404
    # the root token has its own cubbyhole too
    assert "shared-name" not in cubby_list(srv, srv.root_token)
    srv.client().write("cubbyhole/rootonly", k="v")
    assert cubby_list(srv, t1).count("rootonly") == 0
    assert srv.client().read("cubbyhole/rootonly")["data"] == {"k": "v"}
    # overwrite replaces the object; delete removes it
    c1.write("cubbyhole/shared-name", other="x")
    assert c1.read("cubbyhole/shared-name")["data"] == {"other": "x"}
    c1.delete("cubbyhole/shared-name")
    assert srv.get("cubbyhole/shared-name", token=t1).status_code == 404
    assert c2.read("cubbyhole/shared-name")["data"] == {"value": "two"}
    # no token: denied
    assert srv.get("cubbyhole/shared-name").status_code == 403
    r = srv.request("PUT", "cubbyhole/empty", token=t1, json={})
    assert r.status_code == 400


def test_revoke_destroys_cubbyhole(srv):
    tid = fixed_id()
    create(srv, id=tid)
    srv.client(tid).write("cubbyhole/a", secret="gone")
    srv.client(tid).write("cubbyhole/deep/b", secret="gone")
    assert srv.client(tid).read("cubbyhole/a")["data"] == {"secret": "gone"}
    srv.client().auth.token.revoke(tid)
    assert srv.get("cubbyhole/a", token=tid).status_code == 403
    recreate_and_check_empty(srv, tid)


def test_tree_revoke_destroys_children_cubbyholes(srv):
    # a root-policy parent may choose its child's id, so the child can be re-created later
    parent = create(srv, policies=["root"])["client_token"]
    cid = fixed_id()
    r = srv.request("POST", "auth/token/create", token=parent,
                    json={"id": cid, "policies": ["default"]})
    assert r.status_code == 200, r.text
    assert r.json()["auth"]["orphan"] is False
    other = create(srv)["client_token"]
    srv.client(cid).write("cubbyhole/a", v="child")
    srv.client(parent).write("cubbyhole/a", v="parent")
    srv.client(other).write("cubbyhole/a", v="other")
    srv.client().auth.token.revoke(parent)
    assert srv.get("cubbyhole/a", token=cid).status_code == 403
    recreate_and_check_empty(srv, cid)
    # an unrelated token keeps its data
    assert srv.client(other).read("cubbyhole/a")["data"] == {"v": "other"}


def test_last_use_destroys_cubbyhole(srv):
    tid = fixed_id()
    create(srv, id=tid, num_uses=2)
    assert srv.request("PUT", "cubbyhole/a", token=tid, json={"x": "1"}).status_code == 204
    assert srv.get("cubbyhole/a", token=tid).status_code == 200  # last use: revoked
    assert srv.get("cubbyhole/a", token=tid).status_code == 403
    recreate_and_check_empty(srv, tid)


@pytest.mark.timeout_s(60)
def test_expiry_destroys_cubbyhole(srv):
    tid = fixed_id()
    create(srv, id=tid, ttl="2s")
    assert srv.request("PUT", "cubbyhole/a", token=tid, json={"x": "1"}).status_code == 204
    time.sleep(2.5)
    assert srv.get("cubbyhole/a", token=tid).status_code == 403
    recreate_and_check_empty(srv, tid, deadline_s=15)


# ---- response wrapping -----------------------------------------------------------------
def test_wrap_kv_read_and_unwrap_once(srv):
    c = srv.client()
    plain = c.read("kv/app/db")
    w = c.read("kv/app/db", wrap_ttl="60s")
    assert w["data"] is None and w["auth"] is None
    info = w["wrap_info"]
    assert info["ttl"] == 60 and info["creation_path"] == "kv/app/db"
    assert info["token"].startswith("hvs.") and info["accessor"]
    assert info["creation_time"].endswith("Z")
    assert "wrapped_accessor" not in info or info["wrapped_accessor"] == ""

    # the wrapping token itself: single use, response-wrapping policy only
    look = c.auth.token.lookup(info["token"])["data"]
    assert look["policies"] == ["response-wrapping"] and look["num_uses"] == 1
    assert look["orphan"] is True and look["renewable"] is False

    out = srv.client().sys.unwrap(info["token"])
    assert out["data"] == plain["data"] == {"password": "s3cr3t", "n": 7}
    assert out["lease_duration"] == plain["lease_duration"]
    assert out["wrap_info"] is None

    r = srv.request("POST", "sys/wrapping/unwrap", token=srv.root_token,
                    json={"token": info["token"]})
    assert r.status_code == 400 and H.errors_of(r) == [INVALID]


def test_unwrap_with_wrapping_token_as_client_token(srv):
    w = srv.client().read("kv/app/db", wrap_ttl=120)["wrap_info"]
    out = srv.client(w["token"]).sys.unwrap()
    assert out["data"]["password"] == "s3cr3t"
    r = srv.request("POST", "sys/wrapping/unwrap", token=w["token"])
    assert r.status_code == 400 and H.errors_of(r) == [INVALID]
    # the same token in the body and as the client token burns it
    w = srv.client().read("kv/app/db", wrap_ttl=120)["wrap_info"]
    r = srv.request("POST", "sys/wrapping/unwrap", token=w["token"], json={"token": w["token"]})
    assert r.status_code == 400 and H.errors_of(r) == [INVALID]
    r = srv.request("POST", "sys/wrapping/lookup", json={"token": w["token"]})
    assert r.status_code == 400 and H.errors_of(r) == [INVALID]
    # a token that is not a wrapping token is no wrapping token
    r = srv.request("POST", "sys/wrapping/unwrap", token=srv.root_token)
    assert r.status_code == 400 and H.errors_of(r) == [INVALID]
    r = srv.request("POST", "sys/wrapping/unwrap", json={"token": "hvs.nope"})
    assert r.status_code == 400 and H.errors_of(r) == [INVALID]


def test_raw_header_and_bad_values(srv):
    r = srv.get("kv/app/db", token=srv.root_token, headers={"X-Vault-Wrap-TTL": "5m",
                                                            "X-Vault-Wrap-Format": "jwt"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["data"] is None and body["wrap_info"]["ttl"] == 300
    for bad in ("-5", "abc", "-1m"):
        r = srv.get("kv/app/db", token=srv.root_token, headers={"X-Vault-Wrap-TTL": bad})
        assert r.status_code == 400, (bad, r.text)
    # a response without a body is not wrapped
    r = srv.request("PUT", "kv/nobody", token=srv.root_token, json={"a": "b"},
                    headers={"X-Vault-Wrap-TTL": "60"})
    assert r.status_code == 204


def test_lookup_is_unauthenticated_and_does_not_consume(srv):
    w = srv.client().read("kv/app/db", wrap_ttl="90s")["wrap_info"]
    r = srv.request("POST", "sys/wrapping/lookup", json={"token": w["token"]})
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert d["creation_path"] == "kv/app/db" and d["creation_ttl"] == 90
    assert d["creation_time"].endswith("Z")
    r = srv.request("POST", "sys/wrapping/lookup", token=w["token"])
    assert r.status_code == 200 and r.json()["data"]["creation_ttl"] == 90
    assert srv.client().sys.unwrap(w["token"])["data"]["n"] == 7
    r = srv.request("POST", "sys/wrapping/lookup", json={"token": w["token"]})
    assert r.status_code == 400 and H.errors_of(r) == [INVALID]


def test_rewrap(srv):
    w = srv.client().read("kv/app/db", wrap_ttl="100s")["wrap_info"]
    r = srv.request("POST", "sys/wrapping/rewrap", token=srv.root_token,
                    json={"token": w["token"]})
    assert r.status_code == 200, r.text
    nw = r.json()["wrap_info"]
    assert nw["token"] != w["token"] and nw["ttl"] == 100
    assert nw["creation_path"] == "kv/app/db"
    r = srv.request("POST", "sys/wrapping/unwrap", json={"token": w["token"]})
    assert r.status_code == 400
    assert srv.client().sys.unwrap(nw["token"])["data"]["password"] == "s3cr3t"


def test_sys_wrapping_wrap(srv):
    payload = {"api_key": "abc", "nested": {"x": [1, 2]}}
    r = srv.request("POST", "sys/wrapping/wrap", token=srv.root_token, json=payload,
                    headers={"X-Vault-Wrap-TTL": "120"})
    assert r.status_code == 200, r.text
    info = r.json()["wrap_info"]
    assert info["creation_path"] == "sys/wrapping/wrap" and info["ttl"] == 120
    assert srv.client().sys.unwrap(info["token"])["data"] == payload
    # without the header there is nothing to wrap into
    r = srv.request("POST", "sys/wrapping/wrap", token=srv.root_token, json=payload)
    assert r.status_code == 400
    # the default policy may wrap and unwrap
    t = create(srv)["client_token"]
    info = srv.client(t).write("sys/wrapping/wrap", wrap_ttl="30s", k="v")["wrap_info"]
    assert srv.client(t).sys.unwrap(info["token"])["data"] == {"k": "v"}


def test_wrapped_token_create_has_wrapped_accessor(srv):
    r = srv.request("POST", "auth/token/create", token=srv.root_token,
                    json={"policies": ["default"]}, headers={"X-Vault-Wrap-TTL": "60s"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["auth"] is None
    info = body["wrap_info"]
    assert info["wrapped_accessor"]
    out = srv.client().sys.unwrap(info["token"])
    assert out["auth"]["accessor"] == info["wrapped_accessor"]
    t = out["auth"]["client_token"]
    assert srv.client(t).auth.token.lookup_self()["data"]["accessor"] == info["wrapped_accessor"]


@pytest.mark.timeout_s(60)
def test_wrap_ttl_expiry(srv):
    w = srv.client().read("kv/app/db", wrap_ttl="2s")["wrap_info"]
    assert w["ttl"] == 2
    time.sleep(3)
    r = srv.request("POST", "sys/wrapping/unwrap", json={"token": w["token"]})
    assert r.status_code == 400 and H.errors_of(r) == [INVALID]


def test_max_wrapping_ttl_policy(srv):
    c = srv.client()
    c.sys.create_or_update_policy("wrapped-reader", """
path "kv/app/*" {
  capabilities = ["read"]
  max_wrapping_ttl = "60s"
}
path "kv/min/*" {
  capabilities = ["read"]
  min_wrapping_ttl = "30s"
}
""")
    t = create(srv, policies=["wrapped-reader"])["client_token"]
    assert srv.get("kv/app/db", token=t).status_code == 403  # must be wrapped
    r = srv.get("kv/app/db", token=t, headers={"X-Vault-Wrap-TTL": "120"})
    assert r.status_code == 403
    r = srv.get("kv/app/db", token=t, headers={"X-Vault-Wrap-TTL": "30s"})
    assert r.status_code == 200, r.text
    tok = r.json()["wrap_info"]["token"]
    assert srv.client(t).sys.unwrap(tok)["data"]["password"] == "s3cr3t"
    c.secrets.kv.v1.create_or_update_secret("min/x", {"a": "b"}, mount_point="kv")
    assert srv.get("kv/min/x", token=t, headers={"X-Vault-Wrap-TTL": "10"}).status_code == 403
    assert srv.get("kv/min/x", token=t, headers={"X-Vault-Wrap-TTL": "40"}).status_code == 200


def test_wrapping_token_reads_cubbyhole_response(srv):
    """Vault's legacy way: the wrapping token reads cubbyhole/response itself (one use)."""
    w = srv.client().read("kv/app/db", wrap_ttl="60")["wrap_info"]
    r = srv.get("cubbyhole/response", token=w["token"])
    assert r.status_code == 200, r.text
    inner = json.loads(r.json()["data"]["response"])
    assert inner["data"]["password"] == "s3cr3t"
    # that was its only use; its cubbyhole went with it
    r = srv.request("POST", "sys/wrapping/unwrap", json={"token": w["token"]})
    assert r.status_code == 400


def test_response_wrapping_policy_is_builtin(srv):
    # a stored policy of that name changes nothing: the built-in text is served
    r = srv.request("PUT", "sys/policy/response-wrapping", token=srv.root_token,
                    json={"policy": 'path "*" { capabilities = ["read", "list"] }'})
    assert r.status_code in (200, 204, 400), r.text
    w = srv.client().read("kv/app/db", wrap_ttl="60")["wrap_info"]
    assert srv.get("kv/app/db", token=w["token"]).status_code == 403
    w = srv.client().read("kv/app/db", wrap_ttl="60")["wrap_info"]
    assert srv.get("cubbyhole/other", token=w["token"]).status_code == 403


def test_cubbyhole_survives_restart(server_factory):
    s = server_factory()
    H.init_and_unseal(s)
    t = create(s, ttl="1h")["client_token"]
    s.client(t).write("cubbyhole/keep", v="1")
    w = s.client().read("sys/mounts", wrap_ttl="300")["wrap_info"]
    s.restart()
    H.unseal(s)
    H.wait_active(s)
    assert s.client(t).read("cubbyhole/keep")["data"] == {"v": "1"}
    assert "cubbyhole/" in s.client().sys.unwrap(w["token"])["data"]
