"""Identity tokens (issue 14, "Identity tokens (OIDC)"): identity/oidc/config, keys, roles,
tokens for the caller's entity, introspection and the unauthenticated discovery documents.
A token from custos verifies with python3-jwt (PyJWT) against the published JWKS; after a
rotation the old key stays published for verification_ttl, then tokens it signed no longer
verify. Every claim asserted comes from the server's own token."""

import base64
import json
import time

import jwt
import pytest
import requests

import custos_harness as H


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = H.Server(tmp_path_factory.mktemp("oidc"), name="o1", extra_config='periodic_interval = "1s"\n')
    try:
        s.start()
        H.init_and_unseal(s)
        c = s.client()
        c.sys.enable_auth_method("userpass", path="userpass")
        c.sys.create_or_update_policy("oidc", 'path "identity/oidc/token/*" { capabilities = ["read"] }')
        c.write("auth/userpass/users/alice", password="pw-alice", token_policies="default,oidc")
        # For test_scheduled_rotation (last): a key due a minute from now.
        c.write("identity/oidc/key/sched", algorithm="EdDSA", allowed_client_ids="*",
                rotation_period="1m", verification_ttl="2m")
        c.write("identity/oidc/role/sched", key="sched", ttl="1m")
        s.sched_kid = [k["kid"] for k in jwks(s)]
        s.sched_since = time.time()
        yield s
    finally:
        s.cleanup()


def alice(srv):
    c = srv.client(token="")
    a = c.auth.userpass.login(username="alice", password="pw-alice")["auth"]
    return a, srv.client(token=a["client_token"])


def raw(srv, method, path, token=None, **kw):
    h = {"X-Vault-Token": token} if token else {}
    return requests.request(method, srv.url + "/v1/" + path, headers=h, verify=srv.verify, timeout=30, **kw)


def jwks(srv):
    r = raw(srv, "GET", "identity/oidc/.well-known/keys")
    assert r.status_code == 200, r.text
    return r.json()["keys"]


def verify(srv, token, aud):
    hdr = jwt.get_unverified_header(token)
    keys = {k["kid"]: k for k in jwks(srv)}
    assert hdr["kid"] in keys, "signing key not published"
    key = jwt.PyJWK(keys[hdr["kid"]]).key
    issuer = raw(srv, "GET", "identity/oidc/.well-known/openid-configuration").json()["issuer"]
    return jwt.decode(token, key=key, algorithms=[hdr["alg"]], audience=aud, issuer=issuer)


def test_tokens_verify_with_published_keys(srv):
    root = srv.client()
    auth, ac = alice(srv)
    eid = auth["entity_id"]
    root.write("identity/entity/id/" + eid, metadata={"team": "blue"})
    root.write("identity/group", name="devs", member_entity_ids=[eid])
    cfg = raw(srv, "GET", "identity/oidc/.well-known/openid-configuration").json()
    assert cfg["issuer"].endswith("/v1/identity/oidc")
    assert cfg["jwks_uri"] == cfg["issuer"] + "/.well-known/keys"
    assert "EdDSA" in cfg["id_token_signing_alg_values_supported"]
    for alg in ("RS256", "ES256", "EdDSA"):
        name = "k-" + alg.lower()
        root.write("identity/oidc/key/" + name, algorithm=alg, allowed_client_ids="*")
        assert root.read("identity/oidc/key/" + name)["data"]["algorithm"] == alg
        tmpl = '{"team": {{identity.entity.metadata.team}}, "groups": {{identity.entity.groups.names}}, "nick": {{identity.entity.metadata.nope}}}'
        root.write("identity/oidc/role/r-" + alg.lower(), key=name, ttl="1h", template=tmpl)
        role = root.read("identity/oidc/role/r-" + alg.lower())["data"]
        t = ac.read("identity/oidc/token/r-" + alg.lower())["data"]
        assert t["client_id"] == role["client_id"] and t["ttl"] == 3600
        claims = verify(srv, t["token"], role["client_id"])
        assert claims["sub"] == eid and claims["namespace"] == "root"
        assert claims["team"] == "blue" and claims["groups"] == ["devs"]
        assert "nick" not in claims  # a missing value leaves the claim out
        assert 3590 <= claims["exp"] - claims["iat"] <= 3600
        r = raw(srv, "POST", "identity/oidc/introspect", token=srv.root_token,
                json={"token": t["token"], "client_id": role["client_id"]})
        assert r.json() == {"active": True}, r.text
        r = raw(srv, "POST", "identity/oidc/introspect", token=srv.root_token,
                json={"token": t["token"], "client_id": "someone-else"})
        assert r.json()["active"] is False
        # A forged signature: the payload changed.
        h, p, s = t["token"].split(".")
        body = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
        body["sub"] = "someone"
        p2 = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
        r = raw(srv, "POST", "identity/oidc/introspect", token=srv.root_token,
                json={"token": ".".join([h, p2, s])})
        assert r.json() == {"active": False, "error": "error validating signature"}


def test_refusals(srv):
    root = srv.client()
    root.write("identity/oidc/key/narrow", algorithm="ES256", allowed_client_ids=[])
    root.write("identity/oidc/role/narrow", key="narrow")
    auth, ac = alice(srv)
    r = raw(srv, "GET", "identity/oidc/token/narrow", token=auth["client_token"])
    assert r.status_code == 400 and "allowed client ID" in r.json()["errors"][0]
    # The root token has no entity.
    r = raw(srv, "GET", "identity/oidc/token/narrow", token=srv.root_token)
    assert r.status_code == 400 and "no entity" in r.json()["errors"][0]
    for body, msg in (({"key": "missing"}, "does not exist"),
                      ({"key": "narrow", "template": '{"sub": "x"}'}, "not allowed"),
                      ({"key": "narrow", "template": '{"a": {{identity.bogus}}}'}, "template"),
                      ({"key": "narrow", "template": "[1"}, "template"),
                      ({"key": "narrow", "ttl": "100h"}, "verification_ttl")):
        r = raw(srv, "POST", "identity/oidc/role/bad", token=srv.root_token, json=body)
        assert r.status_code == 400 and msg in r.json()["errors"][0], (body, r.text)
    r = raw(srv, "POST", "identity/oidc/key/bad", token=srv.root_token, json={"algorithm": "HS256"})
    assert r.status_code == 400
    r = raw(srv, "POST", "identity/oidc/key/bad", token=srv.root_token,
            json={"rotation_period": "1h", "verification_ttl": "11h"})
    assert r.status_code == 400 and "10x" in r.json()["errors"][0]
    r = raw(srv, "DELETE", "identity/oidc/key/narrow", token=srv.root_token)
    assert r.status_code == 400 and "narrow" in r.json()["errors"][0]
    assert raw(srv, "DELETE", "identity/oidc/role/narrow", token=srv.root_token).status_code == 204
    assert raw(srv, "DELETE", "identity/oidc/key/narrow", token=srv.root_token).status_code == 204
    r = raw(srv, "POST", "identity/oidc/config", token=srv.root_token, json={"issuer": "ftp://x"})
    assert r.status_code == 400
    # The discovery documents need no token; the rest does.
    assert raw(srv, "GET", "identity/oidc/key/k-es256").status_code == 403


def test_rotation_and_verification_ttl(srv):
    root = srv.client()
    root.write("identity/oidc/key/rot", algorithm="ES256", allowed_client_ids="*",
               rotation_period="1m", verification_ttl="2s")
    root.write("identity/oidc/role/rot", key="rot", ttl="2s")
    cid = root.read("identity/oidc/role/rot")["data"]["client_id"]
    auth, ac = alice(srv)
    old = ac.read("identity/oidc/token/rot")["data"]["token"]
    old_kid = jwt.get_unverified_header(old)["kid"]
    verify(srv, old, cid)
    root.write("identity/oidc/key/rot/rotate")
    new = ac.read("identity/oidc/token/rot")["data"]["token"]
    assert jwt.get_unverified_header(new)["kid"] != old_kid
    assert old_kid in [k["kid"] for k in jwks(srv)]  # still published for verification_ttl
    verify(srv, old, cid)
    verify(srv, new, cid)
    time.sleep(3)
    assert old_kid not in [k["kid"] for k in jwks(srv)]
    r = raw(srv, "POST", "identity/oidc/introspect", token=srv.root_token, json={"token": old})
    assert r.json()["active"] is False
    # The issuer can be set; tokens name it.
    root.write("identity/oidc/config", issuer="https://sso.example.com:8200")
    tok = ac.read("identity/oidc/token/rot")["data"]["token"]
    assert jwt.decode(tok, options={"verify_signature": False})["iss"] == \
        "https://sso.example.com:8200/v1/identity/oidc"
    root.write("identity/oidc/config", issuer="")


def test_scheduled_rotation(srv):
    """The periodic function rotates a key once its rotation_period (at least a minute, as
    Vault) has passed since its last rotation: the key made by the fixture."""
    auth, ac = alice(srv)
    deadline = srv.sched_since + 80
    kid = None
    while time.time() < deadline:
        kid = jwt.get_unverified_header(ac.read("identity/oidc/token/sched")["data"]["token"])["kid"]
        if kid not in srv.sched_kid:
            break
        time.sleep(2)
    assert kid not in srv.sched_kid, "the key was not rotated on schedule"
    assert set(srv.sched_kid) <= {k["kid"] for k in jwks(srv)}  # the old one still verifies
