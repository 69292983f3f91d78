"""Auth methods end to end through hvac: sys/auth enable/read/tune/disable, userpass
(users CRUD, password change, login, wrong password, CIDR binding, policies applied by
the ACL) and AppRole (roles, role-id, secret-id generate/lookup/destroy/list, custom
secret-id, login, secret_id_num_uses, secret_id_ttl, CIDR bindings).
"""

import http.client
import time

import hvac
import pytest

import custos_harness as H

READER = """
path "kvup/*" { capabilities = ["read", "list"] }
"""


@pytest.fixture(scope="module")
def srv(module_unsealed):
    c = module_unsealed.client()
    c.sys.create_or_update_policy("up-reader", READER)
    H.enable_kv(module_unsealed, path="kvup")
    c.write("kvup/app", value="s3cret")
    return module_unsealed


def mount(srv, kind):
    path = kind[:2] + H.uid()[:8]
    srv.client().sys.enable_auth_method(kind, path=path, description="test " + kind)
    return path


def root_req(srv, method, path, **kw):
    return srv.request(method, path, token=srv.root_token, **kw)


def anon(srv):
    return srv.client(token="")


# ---- sys/auth ----------------------------------------------------------------------
def test_sys_auth_enable_read_tune_disable(srv):
    c = srv.client()
    path = mount(srv, "userpass")
    methods = c.sys.list_auth_methods()
    entry = methods["data"][path + "/"]
    assert entry["type"] == "userpass" and entry["description"] == "test userpass"
    assert entry["accessor"] and entry["uuid"]
    assert "token/" in methods["data"]

    r = root_req(srv, "GET", "sys/auth/" + path)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["type"] == "userpass"

    c.sys.tune_auth_method(path, default_lease_ttl="1h", max_lease_ttl="2h",
                           description="tuned")
    t = c.sys.read_auth_method_tuning(path)["data"]
    assert t["default_lease_ttl"] == 3600 and t["max_lease_ttl"] == 7200
    assert t["description"] == "tuned"

    # A second enable at the same path is refused; unknown types too.
    with pytest.raises(hvac.exceptions.InvalidRequest):
        c.sys.enable_auth_method("userpass", path=path)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        c.sys.enable_auth_method("no-such-method", path="x" + H.uid()[:6])

    # token/ cannot be disabled.
    with pytest.raises(hvac.exceptions.InvalidRequest):
        c.sys.disable_auth_method("token")

    c.sys.disable_auth_method(path)
    assert path + "/" not in c.sys.list_auth_methods()["data"]
    r = srv.put("auth/%s/login/bob" % path, json={"password": "x"})
    assert r.status_code in (403, 404), r.text


def test_sys_auth_disable_removes_storage(srv):
    c = srv.client()
    path = mount(srv, "userpass")
    c.auth.userpass.create_or_update_user("carol", "pw", mount_point=path)
    tok = anon(srv).auth.userpass.login("carol", "pw", mount_point=path)["auth"]["client_token"]
    assert srv.get("auth/token/lookup-self", token=tok).status_code == 200
    c.sys.disable_auth_method(path)
    # Tokens issued through the mount are revoked with it, as in Vault.
    assert srv.get("auth/token/lookup-self", token=tok).status_code == 403
    c.sys.enable_auth_method("userpass", path=path)
    r = root_req(srv, "LIST", "auth/%s/users" % path)
    assert r.status_code == 404, r.text
    c.sys.disable_auth_method(path)


# ---- userpass ----------------------------------------------------------------------
def test_userpass_crud_and_login(srv):
    c = srv.client()
    path = mount(srv, "userpass")
    c.auth.userpass.create_or_update_user("Alice", "pw-1", mount_point=path,
                                          token_policies=["up-reader"], token_ttl="30m",
                                          token_max_ttl="1h")
    u = c.auth.userpass.read_user("alice", mount_point=path)["data"]
    assert u["token_policies"] == ["up-reader"]
    assert u["token_ttl"] == 1800 and u["token_max_ttl"] == 3600
    assert "password" not in u and "password_hash" not in u
    assert c.auth.userpass.list_user(mount_point=path)["data"]["keys"] == ["alice"]

    lc = anon(srv)
    resp = lc.auth.userpass.login("alice", "pw-1", mount_point=path)
    auth = resp["auth"]
    assert auth["client_token"].startswith("hvs.")
    assert auth["policies"] == ["default", "up-reader"]
    assert auth["metadata"] == {"username": "alice"}
    assert auth["lease_duration"] == 1800 and auth["renewable"] is True

    tok = auth["client_token"]
    me = srv.client(token=tok).auth.token.lookup_self()["data"]
    assert me["display_name"] == path + "-alice"
    assert me["path"] == "auth/%s/login/alice" % path
    assert me["meta"] == {"username": "alice"}

    # The token carries the user's policies: it reads kvup/ and may not write it.
    uc = srv.client(token=tok)
    assert uc.read("kvup/app")["data"]["value"] == "s3cret"
    with pytest.raises(hvac.exceptions.Forbidden):
        uc.write("kvup/app", value="nope")

    # Wrong password and unknown user: the same 400.
    for user, pw in (("alice", "bad"), ("nobody", "pw-1")):
        r = srv.put("auth/%s/login/%s" % (path, user), json={"password": pw})
        assert r.status_code == 400, r.text
        assert H.errors_of(r) == ["invalid username or password"]
    r = srv.put("auth/%s/login/alice" % path, json={})
    assert r.status_code == 400

    # Password change: the old one stops working.
    c.auth.userpass.update_password_on_user("alice", "pw-2", mount_point=path)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        lc.auth.userpass.login("alice", "pw-1", mount_point=path)
    assert lc.auth.userpass.login("alice", "pw-2", mount_point=path)["auth"]["client_token"]

    # Updating fields without a password keeps it.
    c.auth.userpass.create_or_update_user("alice", mount_point=path, token_ttl="10m")
    assert lc.auth.userpass.login("alice", "pw-2",
                                  mount_point=path)["auth"]["lease_duration"] == 600

    r = root_req(srv, "POST", "auth/%s/users/alice/policies" % path,
                 json={"token_policies": "default,Other"})
    assert r.status_code == 204, r.text
    assert c.auth.userpass.read_user("alice",
                                     mount_point=path)["data"]["token_policies"] == [
                                         "default", "other"]

    c.auth.userpass.delete_user("alice", mount_point=path)
    with pytest.raises(hvac.exceptions.InvalidPath):
        c.auth.userpass.read_user("alice", mount_point=path)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        lc.auth.userpass.login("alice", "pw-2", mount_point=path)


def test_userpass_validation(srv):
    path = mount(srv, "userpass")
    r = root_req(srv, "POST", "auth/%s/users/bob" % path, json={"token_ttl": "1h"})
    assert r.status_code == 400 and "missing password" in H.errors_of(r)[0]
    r = root_req(srv, "POST", "auth/%s/users/bob" % path,
                 json={"password": "x", "token_bound_cidrs": ["not-a-cidr"]})
    assert r.status_code == 400, r.text
    r = root_req(srv, "POST", "auth/%s/users/bob" % path,
                 json={"password": "x", "token_ttl": "2h", "token_max_ttl": "1h"})
    assert r.status_code == 400, r.text
    r = root_req(srv, "POST", "auth/%s/users/ghost/password" % path, json={"password": "x"})
    assert r.status_code == 400, r.text
    # Managing users needs a token with rights on the mount.
    r = srv.put("auth/%s/users/bob" % path, json={"password": "x"})
    assert r.status_code == 403


def test_userpass_bound_cidrs(srv):
    c = srv.client()
    path = mount(srv, "userpass")
    c.auth.userpass.create_or_update_user("far", "pw", mount_point=path,
                                          token_bound_cidrs=["10.0.0.0/8"])
    c.auth.userpass.create_or_update_user("near", "pw", mount_point=path,
                                          token_bound_cidrs=["127.0.0.0/8", "::1/128"])
    r = srv.put("auth/%s/login/far" % path, json={"password": "pw"})
    assert r.status_code == 403, r.text
    r = srv.put("auth/%s/login/near" % path, json={"password": "pw"})
    assert r.status_code == 200, r.text

    # The token keeps the binding: usable from 127.0.0.1, refused from 127.0.0.2.
    c.auth.userpass.create_or_update_user("one", "pw", mount_point=path,
                                          token_bound_cidrs=["127.0.0.1/32"])
    tok = srv.put("auth/%s/login/one" % path, json={"password": "pw"}).json()["auth"]["client_token"]
    assert srv.get("auth/token/lookup-self", token=tok).status_code == 200

    def from_127_0_0_2():
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10,
                                          source_address=("127.0.0.2", 0))
        try:
            conn.request("GET", "/v1/auth/token/lookup-self", headers={"X-Vault-Token": tok})
            return conn.getresponse().status
        finally:
            conn.close()
    assert from_127_0_0_2() == 403


def test_userpass_concurrent_logins(srv):
    """Logins hash off the loop: several at once all succeed, and other requests are
    served meanwhile."""
    import concurrent.futures
    c = srv.client()
    path = mount(srv, "userpass")
    c.auth.userpass.create_or_update_user("par", "pw", mount_point=path)

    def one(_):
        return srv.put("auth/%s/login/par" % path, json={"password": "pw"}).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        futs = [ex.submit(one, i) for i in range(8)]
        t0 = time.monotonic()
        assert srv.get("sys/health").status_code == 200
        health_s = time.monotonic() - t0
        codes = [f.result() for f in futs]
    assert codes == [200] * 8
    assert health_s < 1.0


# ---- approle -----------------------------------------------------------------------
def test_approle_login_flow(srv):
    c = srv.client()
    path = mount(srv, "approle")
    c.auth.approle.create_or_update_approle("web", token_policies=["up-reader"],
                                            token_ttl="20m", mount_point=path)
    role = c.auth.approle.read_role("web", mount_point=path)["data"]
    assert role["bind_secret_id"] is True and role["token_policies"] == ["up-reader"]
    assert c.auth.approle.list_roles(mount_point=path)["data"]["keys"] == ["web"]

    role_id = c.auth.approle.read_role_id("web", mount_point=path)["data"]["role_id"]
    gen = c.auth.approle.generate_secret_id("web", mount_point=path)["data"]
    assert gen["secret_id"] and gen["secret_id_accessor"]
    assert gen["secret_id_ttl"] == 0 and gen["secret_id_num_uses"] == 0

    auth = anon(srv).auth.approle.login(role_id, gen["secret_id"], mount_point=path)["auth"]
    assert auth["policies"] == ["default", "up-reader"]
    assert auth["metadata"] == {"role_name": "web"}
    assert auth["lease_duration"] == 1200
    uc = srv.client(token=auth["client_token"])
    assert uc.read("kvup/app")["data"]["value"] == "s3cret"
    me = uc.auth.token.lookup_self()["data"]
    assert me["path"] == "auth/%s/login" % path

    # Wrong secret id / role id.
    r = srv.put("auth/%s/login" % path, json={"role_id": role_id, "secret_id": "nope"})
    assert r.status_code == 400, r.text
    assert "invalid secret id" in H.errors_of(r)[0]
    r = srv.put("auth/%s/login" % path, json={"role_id": "nope", "secret_id": gen["secret_id"]})
    assert r.status_code == 400, r.text
    assert "invalid role or secret ID" in H.errors_of(r)[0]

    # Lookup and listing never reveal the secret id.
    info = c.auth.approle.read_secret_id("web", gen["secret_id"], mount_point=path)["data"]
    assert info["secret_id_accessor"] == gen["secret_id_accessor"]
    assert "secret_id" not in info
    keys = c.auth.approle.list_secret_id_accessors("web", mount_point=path)["data"]["keys"]
    assert keys == [gen["secret_id_accessor"]]
    info2 = c.auth.approle.read_secret_id_accessor("web", gen["secret_id_accessor"],
                                                   mount_point=path)["data"]
    assert info2["secret_id_accessor"] == gen["secret_id_accessor"]

    # Destroy by secret id, then by accessor.
    c.auth.approle.destroy_secret_id("web", gen["secret_id"], mount_point=path)
    r = srv.put("auth/%s/login" % path, json={"role_id": role_id, "secret_id": gen["secret_id"]})
    assert r.status_code == 400
    g2 = c.auth.approle.generate_secret_id("web", mount_point=path)["data"]
    c.auth.approle.destroy_secret_id_accessor("web", g2["secret_id_accessor"], mount_point=path)
    r = srv.put("auth/%s/login" % path, json={"role_id": role_id, "secret_id": g2["secret_id"]})
    assert r.status_code == 400

    # Custom role id and custom secret id.
    c.auth.approle.update_role_id("web", "my-role-id", mount_point=path)
    assert c.auth.approle.read_role_id("web", mount_point=path)["data"]["role_id"] == "my-role-id"
    c.auth.approle.create_custom_secret_id("web", "my-secret-id", mount_point=path)
    auth = anon(srv).auth.approle.login("my-role-id", "my-secret-id", mount_point=path)["auth"]
    assert auth["client_token"]
    with pytest.raises(hvac.exceptions.InvalidRequest):
        c.auth.approle.create_custom_secret_id("web", "my-secret-id", mount_point=path)

    c.auth.approle.delete_role("web", mount_point=path)
    r = srv.put("auth/%s/login" % path, json={"role_id": "my-role-id",
                                              "secret_id": "my-secret-id"})
    assert r.status_code == 400


def test_approle_num_uses_and_ttl(srv):
    c = srv.client()
    path = mount(srv, "approle")
    c.auth.approle.create_or_update_approle("once", secret_id_num_uses=1, secret_id_ttl="2s",
                                            mount_point=path)
    rid = c.auth.approle.read_role_id("once", mount_point=path)["data"]["role_id"]
    gen = c.auth.approle.generate_secret_id("once", mount_point=path)["data"]
    assert gen["secret_id_num_uses"] == 1 and gen["secret_id_ttl"] == 2
    lc = anon(srv)
    assert lc.auth.approle.login(rid, gen["secret_id"], mount_point=path)["auth"]
    with pytest.raises(hvac.exceptions.InvalidRequest):
        lc.auth.approle.login(rid, gen["secret_id"], mount_point=path)
    # The used-up secret id is gone.
    with pytest.raises(hvac.exceptions.InvalidPath):
        c.auth.approle.read_secret_id_accessor("once", gen["secret_id_accessor"],
                                               mount_point=path)

    # TTL: valid now, refused after expiry.
    c.auth.approle.create_or_update_approle("once", secret_id_num_uses=0, mount_point=path)
    g2 = c.auth.approle.generate_secret_id("once", mount_point=path)["data"]
    time.sleep(2.5)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        lc.auth.approle.login(rid, g2["secret_id"], mount_point=path)

    # Per-secret num_uses given at generation.
    c.auth.approle.create_or_update_approle("once", secret_id_ttl=0, mount_point=path)
    r = root_req(srv, "POST", "auth/%s/role/once/secret-id" % path, json={"num_uses": 2})
    g3 = r.json()["data"]
    assert g3["secret_id_num_uses"] == 2
    for _ in range(2):
        assert lc.auth.approle.login(rid, g3["secret_id"], mount_point=path)["auth"]
    with pytest.raises(hvac.exceptions.InvalidRequest):
        lc.auth.approle.login(rid, g3["secret_id"], mount_point=path)


def test_approle_bound_cidrs_and_no_secret(srv):
    c = srv.client()
    path = mount(srv, "approle")
    c.auth.approle.create_or_update_approle("far", secret_id_bound_cidrs=["10.0.0.0/8"],
                                            mount_point=path)
    rid = c.auth.approle.read_role_id("far", mount_point=path)["data"]["role_id"]
    sid = c.auth.approle.generate_secret_id("far", mount_point=path)["data"]["secret_id"]
    r = srv.put("auth/%s/login" % path, json={"role_id": rid, "secret_id": sid})
    assert r.status_code == 400 and "CIDR" in H.errors_of(r)[0], r.text

    # A secret id bound more narrowly than the role is refused at generation;
    # one bound to loopback works.
    c.auth.approle.create_or_update_approle("near", mount_point=path,
                                            token_bound_cidrs=["10.0.0.0/8"])
    rid2 = c.auth.approle.read_role_id("near", mount_point=path)["data"]["role_id"]
    r = root_req(srv, "POST", "auth/%s/role/near/secret-id" % path,
                 json={"cidr_list": ["127.0.0.1/32"]})
    sid2 = r.json()["data"]["secret_id"]
    r = srv.put("auth/%s/login" % path, json={"role_id": rid2, "secret_id": sid2})
    assert r.status_code == 403, r.text  # token_bound_cidrs excludes loopback

    # bind_secret_id=false with a CIDR binding: role id alone logs in.
    c.auth.approle.create_or_update_approle("open", bind_secret_id=False,
                                            secret_id_bound_cidrs=["127.0.0.0/8"],
                                            mount_point=path)
    rid3 = c.auth.approle.read_role_id("open", mount_point=path)["data"]["role_id"]
    r = srv.put("auth/%s/login" % path, json={"role_id": rid3})
    assert r.status_code == 200, r.text
    # At least one constraint is required.
    r = root_req(srv, "POST", "auth/%s/role/bad" % path, json={"bind_secret_id": False})
    assert r.status_code == 400, r.text
