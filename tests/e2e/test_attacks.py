"""Attacks of security issue 9 replayed against a real server; each must fail and change
nothing. Duplicate JSON keys (the ACL saw one value, the handler another), non-canonical
path spellings past a deny, sys/seal by a token's last use, numbers that overflow a
field's type. Run with CUSTOS_BIN=build-asan/custos to have ASan watch the server too."""

import json

import pytest

import custos_harness as H

DENIED = "permission denied"


def make_token(srv, policy_name, policy_text, **extra):
    root = srv.root_token
    r = srv.put("sys/policy/" + policy_name, token=root, json={"policy": policy_text})
    assert r.status_code == 204, r.text
    body = {"policies": [policy_name], "no_default_policy": True}
    body.update(extra)
    r = srv.request("POST", "auth/token/create", token=root, json=body)
    assert r.status_code == 200, r.text
    return r.json()["auth"]["client_token"]


def mounts(srv):
    r = srv.get("sys/mounts", token=srv.root_token)
    assert r.status_code == 200, r.text
    return set(r.json()["data"].keys())


def raw_json(srv, method, path, token, body_text):
    """Send body_text verbatim: requests/json would collapse a repeated key."""
    status, _, data = srv.raw_request(
        method, "/v1/" + path, body=body_text.encode(),
        headers={"X-Vault-Token": token, "Content-Type": "application/json"})
    return status, data


@pytest.fixture(scope="module")
def srv(module_unsealed):
    for p in ("team-a", "prod", "keep"):
        r = module_unsealed.request("POST", "sys/mounts/" + p, token=module_unsealed.root_token,
                                    json={"type": "kv"})
        assert r.status_code == 204, r.text
    return module_unsealed


def test_duplicate_key_cannot_pick_another_mount(srv):
    tok = make_token(srv, "team-a-only",
                     'path "sys/mounts/team-a" { capabilities = ["create", "update", "delete"] }')
    before = mounts(srv)
    status, data = raw_json(srv, "DELETE", "sys/mounts/team-a", tok,
                            '{"path":"x","path":"keep"}')
    assert status == 400, data
    assert b"duplicate key" in data
    assert mounts(srv) == before
    # Even a single "path" in the body never overrides the route: the capture wins.
    status, data = raw_json(srv, "DELETE", "sys/mounts/team-a", tok, '{"path":"keep"}')
    assert status == 204, data
    after = mounts(srv)
    assert "keep/" in after and "team-a/" not in after
    # Put team-a back for the other tests.
    r = srv.request("POST", "sys/mounts/team-a", token=srv.root_token, json={"type": "kv"})
    assert r.status_code == 204


@pytest.mark.parametrize("body", [
    '{"a":{"k":1,"k":2}}',
    '{"list":[{"x":1},{"x":1,"x":2}]}',
    '{"type":"kv","type":"kv"}',
])
def test_duplicate_keys_at_any_depth_refused(srv, body):
    before = mounts(srv)
    status, data = raw_json(srv, "POST", "sys/mounts/dup-" + H.uid()[:6], srv.root_token, body)
    assert status == 400, data
    assert json.loads(data)["errors"][0].startswith("failed to parse JSON input: duplicate key")
    assert mounts(srv) == before


def test_duplicate_form_and_query_keys_refused(srv):
    status, _, data = srv.raw_request(
        "POST", "/v1/sys/mounts/form-" + H.uid()[:6], body=b"type=kv&type=kv",
        headers={"X-Vault-Token": srv.root_token,
                 "Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400, data
    status, _, data = srv.raw_request("GET", "/v1/sys/health?standbyok=true&standbyok=false")
    assert status == 400, data


def test_duplicate_role_name_and_prefix(srv):
    root = srv.root_token
    status, data = raw_json(srv, "POST", "auth/token/roles/r1", root,
                            '{"role_name":"r1","role_name":"r2","allowed_policies":"default"}')
    assert status == 400, data
    assert srv.get("auth/token/roles/r2", token=root).status_code == 404
    assert srv.get("auth/token/roles/r1", token=root).status_code == 404
    status, data = raw_json(srv, "POST", "sys/leases/revoke-prefix/kv/none", root,
                            '{"prefix":"auth/","prefix":"auth/token/"}')
    assert status == 400, data
    # The root token still works: no token was revoked.
    assert srv.get("auth/token/lookup-self", token=root).status_code == 200


DENY_PROD = '''
path "sys/mounts/*" { capabilities = ["create", "read", "update", "delete", "sudo"] }
path "sys/mounts/prod" { capabilities = ["deny"] }
'''


@pytest.mark.parametrize("target,want", [
    ("/v1/sys/mounts//prod", 403),
    ("/v1/sys//mounts/prod", 403),
    ("/v1//sys/mounts/prod", 403),
    ("/v1/sys/mounts/prod/", 403),
    ("/v1/sys/mounts/prod//", 403),
    ("/v1/sys/mounts///prod/", 403),
    ("//v1/sys/mounts/prod", 404),  # not under /v1/ at all
    ("/v1/sys/mounts/./prod", 400),
    ("/v1/sys/mounts/x/../prod", 400),
    ("/v1/sys/mounts/%2e%2e/prod", 400),
    ("/v1/sys/mounts/a%2Fprod", 400),
    ("/v1/sys/mounts/a%2fprod", 400),
    ("/v1/sys/mounts/prod/.", 400),
])
def test_spelling_cannot_slip_past_deny(srv, target, want):
    """Every spelling of sys/mounts/prod is denied like it, or refused."""
    tok = make_token(srv, "deny-prod", DENY_PROD)
    before = mounts(srv)
    assert "prod/" in before
    status, _, data = srv.raw_request("DELETE", target, headers={"X-Vault-Token": tok})
    assert status == want, data
    if want == 403:
        assert DENIED in json.loads(data)["errors"][0]
    assert mounts(srv) == before


def test_canonical_spellings_still_work_for_allowed_paths(srv):
    tok = make_token(srv, "deny-prod", DENY_PROD)
    name = "spell-" + H.uid()[:6]
    status, _, data = srv.raw_request(
        "POST", "/v1/sys//mounts//" + name + "/", body=b'{"type":"kv"}',
        headers={"X-Vault-Token": tok, "Content-Type": "application/json"})
    assert status == 204, data
    assert name + "/" in mounts(srv)
    # LIST keeps its trailing slash; doubled slashes collapse.
    r = srv.client().secrets.kv.v1.create_or_update_secret("a/b", {"x": "1"}, mount_point=name)
    status, _, data = srv.raw_request("LIST", "/v1/" + name + "//a//",
                                      headers={"X-Vault-Token": srv.root_token})
    assert status == 200, data
    assert json.loads(data)["data"]["keys"] == ["b"]


def test_seal_with_last_token_use(unsealed):
    """sys/seal by a token whose use count ends with this request: the token is revoked
    in the request's transaction and the node seals after it (no use-after-free; run
    under ASan to see it)."""
    s = unsealed
    tok = make_token(s, "sealer", 'path "sys/seal" { capabilities = ["update", "sudo"] }',
                     num_uses=1)
    r = s.put("sys/seal", token=tok)
    assert r.status_code == 204, r.text
    st = s.get("sys/seal-status").json()
    assert st["sealed"] is True
    assert s.running()
    H.unseal(s)
    H.wait_active(s)
    # The use was spent and the token is gone.
    r = s.get("auth/token/lookup-self", token=tok)
    assert r.status_code == 403, r.text
    assert s.get("auth/token/lookup-self", token=s.root_token).status_code == 200


def test_logins_in_flight_across_seal_and_unseal(unsealed):
    """Userpass logins wait for a worker thread (the password KDF); sealing and unsealing
    meanwhile frees and rebuilds the mount table. A login resumed afterwards must not
    touch the freed mount (it was a use-after-free, found by fuzz_http under ASan): it
    fails with a 503 or completes, and the server lives on."""
    import threading
    import time
    s = unsealed
    root = s.root_token
    r = s.request("POST", "sys/auth/userpass", token=root, json={"type": "userpass"})
    assert r.status_code == 204, r.text
    r = s.put("auth/userpass/users/alice", token=root, json={"password": "pw-alice-123"})
    assert r.status_code == 204, r.text

    statuses = []
    lock = threading.Lock()

    def login():
        try:
            r = s.request("POST", "auth/userpass/login/alice",
                          json={"password": "pw-alice-123"}, timeout=30)
            code = r.status_code
        except Exception as e:  # connection closed by the seal: also no harm
            code = repr(e)
        with lock:
            statuses.append(code)

    for _ in range(3):
        threads = [threading.Thread(target=login) for _ in range(24)]
        for t in threads:
            t.start()
        time.sleep(0.3)  # the logins are queued or running on the worker threads
        r = s.put("sys/seal", token=root)
        assert r.status_code == 204, r.text
        H.unseal(s)
        for t in threads:
            t.join(60)
        H.wait_active(s)
        assert s.running()
    assert len(statuses) == 72
    assert all(c in (200, 503) or isinstance(c, str) for c in statuses), statuses
    # The mount works after it all.
    r = s.request("POST", "auth/userpass/login/alice", json={"password": "pw-alice-123"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("field,value", [
    ("num_uses", 1e300),
    ("num_uses", -1e300),
    ("num_uses", 9.3e18),
    ("num_uses", "99999999999999999999999"),
    ("ttl", 1e300),
    ("ttl", "9223372036854775807"),
    ("explicit_max_ttl", 5e9),
])
def test_number_out_of_range_is_400(srv, field, value):
    r = srv.request("POST", "auth/token/create", token=srv.root_token,
                    json={field: value, "policies": ["default"]})
    assert r.status_code == 400, r.text
    assert "error converting input" in r.json()["errors"][0]


def test_role_cidr_binding_holds_for_its_tokens(srv):
    """auth/token/create/:role used to drop the role's token_bound_cidrs: a token made
    from a role bound to 10.0.0.0/8 worked from anywhere."""
    root = srv.root_token
    r = srv.request("POST", "auth/token/roles/far", token=root,
                    json={"allowed_policies": ["default"], "token_bound_cidrs": ["10.0.0.0/8"]})
    assert r.status_code == 204, r.text
    r = srv.request("POST", "auth/token/roles/near", token=root,
                    json={"allowed_policies": ["default"],
                          "token_bound_cidrs": "127.0.0.1/32"})
    assert r.status_code == 204, r.text
    far = srv.request("POST", "auth/token/create/far", token=root, json={}).json()
    near = srv.request("POST", "auth/token/create/near", token=root, json={}).json()
    assert srv.get("auth/token/lookup-self",
                   token=far["auth"]["client_token"]).status_code == 403
    r = srv.get("auth/token/lookup-self", token=near["auth"]["client_token"])
    assert r.status_code == 200, r.text
    assert r.json()["data"]["bound_cidrs"] == ["127.0.0.1/32"]
    r = srv.request("POST", "auth/token/roles/bad", token=root,
                    json={"token_bound_cidrs": ["10.0.0.0/33"]})
    assert r.status_code == 400, r.text
    assert srv.get("auth/token/roles/bad", token=root).status_code == 404
