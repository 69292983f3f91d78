"""Token store and expiration manager: auth/token/* and sys/leases/* through hvac.

create/lookup/renew/revoke, child trees, accessors, num_uses, TTL expiry (on time and
across a restart), roles, sys/leases lookup/list/revoke/revoke-prefix, and the
privilege rules for orphans and custom ids.
"""

import time

import hvac
import pytest

import custos_harness as H

CREATOR = """
path "auth/token/create" { capabilities = ["update"] }
"""


@pytest.fixture(scope="module")
def srv(module_unsealed):
    c = module_unsealed.client()
    c.sys.create_or_update_policy("creator", CREATOR)
    return module_unsealed


def token_client(srv, token):
    return srv.client(token=token)


def create(srv, token=None, **kw):
    return srv.client(token=token).auth.token.create(**kw)["auth"]


def create_orphan(srv, token=None, **body):
    r = srv.put("auth/token/create-orphan", token=token or srv.root_token, json=body)
    assert r.status_code == 200, r.text
    return r.json()["auth"]


def lease_keys(srv, prefix="auth/token/create/"):
    r = srv.request("LIST", "sys/leases/lookup/" + prefix, token=srv.root_token)
    if r.status_code == 404:
        return []
    assert r.status_code == 200, r.text
    return r.json()["data"]["keys"]


def valid(srv, token):
    r = srv.get("auth/token/lookup-self", token=token)
    assert r.status_code in (200, 403), r.text
    return r.status_code == 200


# ---- create / lookup / renew / revoke -------------------------------------------------
def test_create_auth_block_and_lookup(srv):
    auth = create(srv, policies=["Foo", "bar"], ttl="1h", meta={"app": "x"},
                  display_name="my app")
    assert auth["client_token"].startswith("hvs.") and len(auth["client_token"]) == 28
    assert auth["policies"] == ["bar", "default", "foo"]
    assert auth["token_policies"] == ["bar", "default", "foo"]
    assert auth["metadata"] == {"app": "x"}
    assert auth["lease_duration"] == 3600 and auth["renewable"] is True
    assert auth["entity_id"] == "" and auth["token_type"] == "service"
    assert auth["orphan"] is False and auth["num_uses"] == 0
    assert "mfa_requirement" in auth and auth["mfa_requirement"] is None
    assert auth["accessor"] and auth["accessor"] != auth["client_token"]

    d = srv.client().auth.token.lookup(auth["client_token"])["data"]
    assert d["id"] == auth["client_token"]
    assert d["accessor"] == auth["accessor"]
    assert d["display_name"] == "token-my-app"
    assert d["path"] == "auth/token/create"
    assert d["policies"] == ["bar", "default", "foo"]
    assert d["meta"] == {"app": "x"}
    assert d["creation_ttl"] == 3600 and 3590 <= d["ttl"] <= 3600
    assert d["expire_time"].endswith("Z") and d["issue_time"].endswith("Z")
    assert d["orphan"] is False and d["type"] == "service" and d["renewable"] is True
    assert d["entity_id"] == "" and d["num_uses"] == 0 and d["explicit_max_ttl"] == 0
    assert isinstance(d["creation_time"], int)

    # self-service through the default policy
    me = token_client(srv, auth["client_token"]).auth.token.lookup_self()["data"]
    assert me["id"] == auth["client_token"]

    # root token: no expiry
    root = srv.client().auth.token.lookup_self()["data"]
    assert root["expire_time"] is None and root["ttl"] == 0 and root["policies"] == ["root"]


def test_renew_and_revoke(srv):
    auth = create(srv, policies=["default"], ttl="10m")
    t = auth["client_token"]
    r = srv.client().auth.token.renew(t, increment="30m")["auth"]
    assert r["client_token"] == t and r["lease_duration"] == 1800
    r = token_client(srv, t).auth.token.renew_self(increment=600)["auth"]
    assert r["lease_duration"] == 600
    srv.client().auth.token.revoke(t)
    assert not valid(srv, t)
    with pytest.raises(hvac.exceptions.Forbidden):
        srv.client().auth.token.lookup(t)
    # revoking an unknown token is not an error (Vault)
    srv.client().auth.token.revoke("hvs.doesnotexist000000000000")


def test_not_renewable(srv):
    t = create(srv, policies=["default"], renewable=False)["client_token"]
    with pytest.raises(hvac.exceptions.InvalidRequest):
        srv.client().auth.token.renew(t)


def test_ttl_capped_by_explicit_max_and_periodic(srv):
    a = create(srv, policies=["default"], ttl="2h", explicit_max_ttl="1h")
    assert a["lease_duration"] == 3600
    p = create(srv, policies=["default"], period="24h")
    assert p["lease_duration"] == 86400
    r = token_client(srv, p["client_token"]).auth.token.renew_self(increment=10)["auth"]
    assert r["lease_duration"] == 86400  # periodic: always the period


def test_revoke_self(srv):
    parent = create(srv, policies=["creator"])["client_token"]
    child = create(srv, token=parent)["client_token"]
    token_client(srv, parent).auth.token.revoke_self()
    assert not valid(srv, parent)
    assert not valid(srv, child)


# ---- trees ----------------------------------------------------------------------------
def test_child_tree_revocation(srv):
    a = create(srv, policies=["creator"])
    assert a["orphan"] is False
    b = create(srv, token=a["client_token"])
    c = create(srv, token=b["client_token"])
    d = create(srv, token=a["client_token"])
    other = create(srv, policies=["creator"])
    # children inherit the parent's policies
    assert b["policies"] == ["creator", "default"]
    srv.client().auth.token.revoke(a["client_token"])
    for t in (a, b, c, d):
        assert not valid(srv, t["client_token"]), t
    assert valid(srv, other["client_token"])
    for t in (a, b, c, d):
        with pytest.raises(hvac.exceptions.InvalidRequest):
            srv.client().auth.token.lookup_accessor(t["accessor"])


def test_revoke_orphan_keeps_children(srv):
    x = create(srv, policies=["creator"])["client_token"]
    y = create(srv, token=x)["client_token"]
    z = create(srv, token=y)["client_token"]
    srv.client().auth.token.revoke_and_orphan_children(x)
    assert not valid(srv, x)
    assert valid(srv, y) and valid(srv, z)
    assert srv.client().auth.token.lookup(y)["data"]["orphan"] is True
    srv.client().auth.token.revoke(y)
    assert not valid(srv, z)


def test_orphans(srv):
    o = create_orphan(srv, policies=["default"])
    assert o["orphan"] is True
    assert srv.client().auth.token.lookup(o["client_token"])["data"]["path"] == \
        "auth/token/create-orphan"
    n = create(srv, policies=["default"], no_parent=True)
    assert n["orphan"] is True


# ---- accessors --------------------------------------------------------------------------
def test_accessor_ops(srv):
    a = create(srv, policies=["default"], ttl="10m")
    c = srv.client()
    d = c.auth.token.lookup_accessor(a["accessor"])["data"]
    assert d["id"] == "" and d["accessor"] == a["accessor"]
    assert a["accessor"] in c.auth.token.list_accessors()["data"]["keys"]
    r = c.auth.token.renew_accessor(a["accessor"], increment="20m")["auth"]
    assert r["lease_duration"] == 1200 and r["client_token"] == ""
    c.auth.token.revoke_accessor(a["accessor"])
    assert not valid(srv, a["client_token"])
    assert a["accessor"] not in c.auth.token.list_accessors()["data"]["keys"]
    with pytest.raises(hvac.exceptions.InvalidRequest):
        c.auth.token.lookup_accessor(a["accessor"])


def test_accessors_list_needs_sudo(srv):
    t = create(srv, policies=["default"])["client_token"]
    r = srv.request("LIST", "auth/token/accessors", token=t)
    assert r.status_code == 403


# ---- num_uses ---------------------------------------------------------------------------
def test_num_uses(srv):
    a = create(srv, policies=["default"], num_uses=2)
    assert a["num_uses"] == 2
    t = a["client_token"]
    r1 = srv.get("auth/token/lookup-self", token=t)
    assert r1.status_code == 200, r1.text
    assert r1.json()["data"]["num_uses"] == 1
    r2 = srv.get("auth/token/lookup-self", token=t)
    assert r2.status_code == 200, r2.text
    r3 = srv.get("auth/token/lookup-self", token=t)
    assert r3.status_code == 403
    with pytest.raises(hvac.exceptions.Forbidden):
        srv.client().auth.token.lookup(t)


# ---- TTL expiry -------------------------------------------------------------------------
@pytest.mark.timeout_s(60)
def test_ttl_expiry_and_lease_removed(srv):
    before = set(lease_keys(srv))
    a = create(srv, policies=["default"], ttl="2s")
    assert a["lease_duration"] == 2
    new = set(lease_keys(srv)) - before
    assert len(new) == 1
    assert valid(srv, a["client_token"])
    time.sleep(3)
    assert not valid(srv, a["client_token"])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and new & set(lease_keys(srv)):
        time.sleep(0.1)
    assert not (new & set(lease_keys(srv))), "lease of the expired token still listed"
    with pytest.raises(hvac.exceptions.InvalidRequest):
        srv.client().auth.token.lookup_accessor(a["accessor"])


@pytest.mark.timeout_s(120)
def test_ttl_survives_restart(server_factory):
    s = server_factory()
    H.init_and_unseal(s)
    c = s.client()
    long_ = c.auth.token.create(policies=["default"], ttl="30s")["auth"]
    short = c.auth.token.create(policies=["default"], ttl="2s")["auth"]
    s.stop()
    time.sleep(3)
    s.start()
    H.unseal(s, s.keys[:2])
    H.wait_active(s)
    assert valid(s, long_["client_token"])
    assert not valid(s, short["client_token"])
    # the short token's lease is revoked by the rebuilt expiration manager
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        keys = lease_keys(s)
        if len(keys) == 1:
            break
        time.sleep(0.1)
    assert len(lease_keys(s)) == 1
    d = s.client().auth.token.lookup(long_["client_token"])["data"]
    assert 0 < d["ttl"] <= 27


# ---- sys/leases -------------------------------------------------------------------------
def test_sys_leases(srv):
    c = srv.client()
    before = set(lease_keys(srv))
    a = create(srv, policies=["default"], ttl="10m")
    (key,) = set(lease_keys(srv)) - before
    lease_id = "auth/token/create/" + key
    d = c.sys.read_lease(lease_id)["data"]
    assert d["id"] == lease_id and 590 <= d["ttl"] <= 600
    assert d["renewable"] is True and d["expire_time"].endswith("Z")
    assert d["last_renewal"] is None
    # token leases are renewed through auth/token, as in Vault
    with pytest.raises(hvac.exceptions.InvalidRequest):
        c.sys.renew_lease(lease_id)
    c.sys.revoke_lease(lease_id)
    assert not valid(srv, a["client_token"])
    with pytest.raises(hvac.exceptions.InvalidRequest):
        c.sys.read_lease(lease_id)
    # legacy alias
    b = create(srv, policies=["default"], ttl="10m")
    (key,) = set(lease_keys(srv)) - before
    r = srv.put("sys/revoke/auth/token/create/" + key, token=srv.root_token)
    assert r.status_code == 204, r.text
    assert not valid(srv, b["client_token"])


def test_revoke_prefix(srv):
    c = srv.client()
    toks = [create(srv, policies=["default"], ttl="10m")["client_token"] for _ in range(5)]
    orphan = create_orphan(srv, policies=["default"], ttl="10m")["client_token"]
    c.sys.revoke_prefix("auth/token/create/")
    for t in toks:
        assert not valid(srv, t)
    assert valid(srv, orphan)  # lease auth/token/create-orphan/...
    c.sys.revoke_force("auth/token/create-orphan")
    assert not valid(srv, orphan)
    assert lease_keys(srv) == []
    # sudo only
    t = create(srv, policies=["default"])["client_token"]
    r = srv.put("sys/leases/revoke-prefix/auth/token/", token=t)
    assert r.status_code == 403
    r = srv.request("LIST", "sys/leases/lookup/auth/token/create/", token=t)
    assert r.status_code == 403


def test_tidy(srv):
    r = srv.put("sys/leases/tidy", token=srv.root_token)
    assert r.status_code == 202, r.text
    r = srv.put("auth/token/tidy", token=srv.root_token)
    assert r.status_code == 202, r.text


# ---- permissions ------------------------------------------------------------------------
def test_non_root_cannot_create_orphan_or_custom_id(srv):
    t = create(srv, policies=["creator"])["client_token"]
    tc = token_client(srv, t)
    with pytest.raises(hvac.exceptions.InvalidRequest) as e:
        tc.auth.token.create(no_parent=True)
    assert "orphan" in str(e.value)
    with pytest.raises(hvac.exceptions.InvalidRequest) as e:
        tc.auth.token.create(id="my-own-token-id")
    assert "token id" in str(e.value)
    # no ACL grant on create-orphan
    r = srv.put("auth/token/create-orphan", token=t, json={})
    assert r.status_code == 403, r.text
    # policies outside the parent's set
    with pytest.raises(hvac.exceptions.InvalidRequest) as e:
        tc.auth.token.create(policies=["admin"])
    assert "subset" in str(e.value)
    with pytest.raises(hvac.exceptions.InvalidRequest) as e:
        tc.auth.token.create(period="1h")
    assert "periodic" in str(e.value)
    # a default-policy token cannot create at all
    d = create(srv, policies=["default"])["client_token"]
    with pytest.raises(hvac.exceptions.Forbidden):
        token_client(srv, d).auth.token.create()


def test_sudo_may_create_orphan_and_periodic(srv):
    # Vault: "root or sudo" on auth/token/create allows no_parent, id and period.
    srv.client().sys.create_or_update_policy(
        "sudo-creator", 'path "auth/token/create" { capabilities = ["create", "update", "sudo"] }')
    t = create(srv, policies=["sudo-creator"])["client_token"]
    tc = token_client(srv, t)
    o = tc.auth.token.create(no_parent=True, policies=["default"])["auth"]
    assert o["orphan"] is True
    p = tc.auth.token.create(period="1h", policies=["default"])["auth"]
    assert srv.client().auth.token.lookup(p["client_token"])["data"]["period"] == 3600


def test_root_custom_id(srv):
    a = create(srv, id="custom-" + H.uid()[:8], policies=["default"])
    assert a["client_token"].startswith("custom-")
    assert valid(srv, a["client_token"])


def test_batch_token(srv):
    b = create(srv, policies=["default"], type="batch", ttl="10m")
    assert b["client_token"].startswith("hvb.")
    assert b["token_type"] == "batch" and b["renewable"] is False
    with pytest.raises(hvac.exceptions.InvalidRequest):
        token_client(srv, b["client_token"]).auth.token.renew_self()


# ---- roles ------------------------------------------------------------------------------
def test_roles(srv):
    c = srv.client()
    c.auth.token.create_or_update_role("app", allowed_policies=["p1", "p2"], orphan=True,
                                       path_suffix="v1")
    r = srv.put("auth/token/roles/app", token=srv.root_token, json={"token_period": "1h"})
    assert r.status_code == 204, r.text
    role = c.auth.token.read_role("app")["data"]
    assert role["allowed_policies"] == ["p1", "p2"] and role["orphan"] is True
    assert "app" in c.auth.token.list_roles()["data"]["keys"]
    a = c.auth.token.create(role_name="app", policies=["p1"])["auth"]
    assert a["orphan"] is True and a["lease_duration"] == 3600
    assert a["policies"] == ["default", "p1"]
    d = c.auth.token.lookup(a["client_token"])["data"]
    assert d["path"] == "auth/token/create/app/v1"
    with pytest.raises(hvac.exceptions.InvalidRequest):
        c.auth.token.create(role_name="app", policies=["p3"])
    c.auth.token.delete_role("app")
    with pytest.raises(hvac.exceptions.InvalidRequest):
        c.auth.token.create(role_name="app")


def test_capabilities_accessor(srv):
    a = create(srv, policies=["creator"])
    r = srv.put("sys/capabilities-accessor", token=srv.root_token,
                json={"accessor": a["accessor"], "paths": ["auth/token/create"]})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["auth/token/create"] == ["update"]


# ---- tokens issued at login (core token_issue hook) ----------------------------------
def test_login_token_has_lease_and_revokes_by_prefix(srv):
    c = srv.client()
    path = "up" + H.uid()[:6]
    c.sys.enable_auth_method("userpass", path=path)  # always built (auth/userpass.c)
    r = srv.put("auth/%s/users/alice" % path, token=srv.root_token,
                json={"password": "pw-1", "token_policies": "default", "token_ttl": "10m"})
    assert r.status_code == 204, r.text
    r = srv.put("auth/%s/login/alice" % path, json={"password": "pw-1"})
    assert r.status_code == 200, r.text
    auth = r.json()["auth"]
    assert auth["client_token"].startswith("hvs.") and auth["orphan"] is True
    assert auth["lease_duration"] == 600 and auth["policies"] == ["default"]
    d = c.auth.token.lookup(auth["client_token"])["data"]
    assert d["path"] == "auth/%s/login/alice" % path
    keys = lease_keys(srv, "auth/%s/login/alice/" % path)
    assert len(keys) == 1
    c.sys.revoke_prefix("auth/%s/" % path)
    assert not valid(srv, auth["client_token"])
