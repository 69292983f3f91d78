"""Path help and required fields (issue 10 §4): the path-table framework answers
`GET /v1/<path>?help=1` with Vault's help shape from the row's synopsis and field schema,
`custos path-help` prints it, and a missing required field is refused by the framework
with OpenBao's text before any handler runs (so nothing changes)."""

import json
import os

import pytest

import custos_harness as H


@pytest.fixture(scope="module")
def srv(dev_server):
    t = dev_server.root_token
    assert dev_server.request("POST", "sys/mounts/helpkv", token=t,
                              json={"type": "kv", "options": {"version": "1"}}).status_code == 204
    assert dev_server.request("POST", "sys/auth/helpar", token=t,
                              json={"type": "approle"}).status_code == 204
    assert dev_server.request("POST", "auth/helpar/role/r1", token=t,
                              json={"token_ttl": "1h"}).status_code == 204
    return dev_server


def helpget(srv, path, token):
    return srv.request("GET", path + "?help=1", token=token)


def test_help_kv_sys_and_auth_paths(srv):
    t = srv.root_token
    cases = {
        "helpkv/some/secret": ("helpkv/{path*}", None),
        "sys/mounts/helpkv": ("mounts/{path*}", "type (string)"),
        "auth/token/lookup": ("lookup", "token (string, required)"),
        "auth/helpar/role/r1/custom-secret-id": ("custom-secret-id", "secret_id (string, required)"),
    }
    for path, (route, field) in cases.items():
        r = helpget(srv, path, t)
        assert r.status_code == 200, (path, r.text)
        body = r.json()
        assert set(body) >= {"help", "openapi"}, body
        assert "data" not in body, "help is not an envelope: " + r.text
        text = body["help"]
        assert "Request:        " + path in text, text
        assert route in text, text
        if field:
            assert "## PARAMETERS" in text and field in text, text
        doc = body["openapi"]
        assert doc["openapi"].startswith("3."), doc
        (pattern, item), = doc["paths"].items()
        assert pattern.endswith(route.split("/")[-1]) and item["description"], doc
    # The help's synopsis is the row's, the one -list-routes prints.
    lookup = helpget(srv, "auth/token/lookup", t).json()
    post = lookup["openapi"]["paths"]["/lookup"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["token"] and "token" in schema["properties"], schema
    assert "information about a token" in lookup["help"]


def test_help_needs_a_token_and_runs_nothing(srv):
    # No token: 403, even on a path that is unauthenticated for its operations.
    for path in ("helpkv/x", "sys/seal-status", "auth/token/lookup"):
        r = helpget(srv, path, None)
        assert r.status_code == 403, (path, r.text)
        assert H.errors_of(r) == ["permission denied"], r.text
    assert helpget(srv, "sys/seal-status", "not-a-token").status_code == 403
    r = helpget(srv, "sys/seal-status", srv.root_token)
    assert r.status_code == 200 and "seal status" in r.json()["help"], r.text
    # A write with ?help=1 answers help and writes nothing.
    r = srv.request("POST", "helpkv/untouched?help=1", token=srv.root_token, json={"a": "b"})
    assert r.status_code == 200 and "help" in r.json(), r.text
    assert srv.request("GET", "helpkv/untouched", token=srv.root_token).status_code == 404
    # An unknown path is still 404 for a valid token.
    assert helpget(srv, "nomount/x", srv.root_token).status_code == 404


def test_missing_required_field_changes_nothing(srv):
    t = srv.root_token
    before = srv.request("LIST", "auth/helpar/role/r1/secret-id", token=t)
    assert before.status_code == 404, before.text  # no secret id yet
    for body in ({}, {"secret_id": ""}, {"secret_id": None, "ttl": "1h"}):
        r = srv.request("POST", "auth/helpar/role/r1/custom-secret-id", token=t, json=body)
        assert r.status_code == 400, r.text
        assert H.errors_of(r) == ['missing required field "secret_id"'], r.text
    assert srv.request("LIST", "auth/helpar/role/r1/secret-id", token=t).status_code == 404
    r = srv.request("POST", "auth/token/lookup", token=t, json={})
    assert r.status_code == 400 and H.errors_of(r) == ['missing required field "token"'], r.text
    r = srv.request("POST", "auth/token/revoke-accessor", token=t, json={"accessor": ""})
    assert r.status_code == 400 and H.errors_of(r) == ['missing required field "accessor"'], r.text
    r = srv.request("POST", "auth/helpar/login", json={"secret_id": "x"})
    assert r.status_code == 400 and H.errors_of(r) == ['missing required field "role_id"'], r.text
    # The token still works and was not revoked by anything above.
    assert srv.request("GET", "auth/token/lookup-self", token=t).status_code == 200


def test_cli_path_help(srv, tmp_path):
    home = str(tmp_path / "home")
    os.makedirs(home)
    env = {"VAULT_ADDR": srv.url, "HOME": home, "VAULT_TOKEN": srv.root_token}
    p = H.run_cli(["path-help", "auth/token/lookup"], env=env)
    assert p.returncode == 0, p.stderr
    assert "Matching Route: auth/token/lookup" in p.stdout, p.stdout
    assert "token (string, required)" in p.stdout, p.stdout
    p = H.run_cli(["path-help", "-format=json", "sys/mounts"], env=env)
    assert p.returncode == 0, p.stderr
    body = json.loads(p.stdout)
    assert "list mounts" in body["help"] and "/mounts" in body["openapi"]["paths"]
    p = H.run_cli(["path-help", "sys/mounts"], env=dict(env, VAULT_TOKEN="nope"))
    assert p.returncode == 2 and "permission denied" in p.stderr, (p.stdout, p.stderr)
    p = H.run_cli(["path-help"], env=env)
    assert p.returncode == 1, p.stderr
