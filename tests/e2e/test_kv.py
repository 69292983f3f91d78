"""KV version 1: CRUD, LIST (verb and ?list=true), leases, mounts, ui/mounts, tokens."""

import re

import hvac
import pytest

import custos_harness as H

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DEFAULT_LEASE = 2764800  # 768h


@pytest.fixture(scope="module")
def kvsrv(module_unsealed):
    """The module's unsealed server with KV v1 mounted at kv/."""
    H.enable_kv(module_unsealed, "kv")
    return module_unsealed


def kv1(srv, token=None, strict_http=False):
    return srv.client(token=token, strict_http=strict_http).secrets.kv.v1


def list_keys(srv, path, verb="LIST"):
    if verb == "LIST":
        r = srv.request("LIST", path, token=srv.root_token)
    else:
        r = srv.get(path, token=srv.root_token, params={"list": "true"})
    return r


# ---- the dev server's secret/ ---------------------------------------------------------
def test_dev_server_secret_mount_crud(dev_server):
    # -dev mounts secret/ as KV version 2, as Vault does (tests/e2e/test_kv2.py)
    kv = dev_server.client().secrets.kv.v2
    kv.create_or_update_secret("app", {"password": "s3cr3t"}, mount_point="secret")
    got = kv.read_secret_version("app", mount_point="secret")
    assert got["data"]["data"] == {"password": "s3cr3t"}
    assert got["lease_duration"] == 0
    assert got["renewable"] is False and got["lease_id"] == ""
    assert UUID.match(got["request_id"]), got
    assert kv.list_secrets("", mount_point="secret")["data"]["keys"] == ["app"]
    kv.delete_metadata_and_all_versions("app", mount_point="secret")
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret_version("app", mount_point="secret")
    mounts = dev_server.client().sys.list_mounted_secrets_engines()["data"]
    assert mounts["secret/"]["type"] == "kv", mounts["secret/"]


# ---- CRUD -----------------------------------------------------------------------------
def test_write_read_overwrite_delete(kvsrv):
    kv = kv1(kvsrv)
    r = kvsrv.put("kv/app/db", token=kvsrv.root_token, json={"user": "u", "password": "p"})
    assert r.status_code == 204, (r.status_code, r.text)
    assert r.content == b""
    got = kv.read_secret("app/db", mount_point="kv")
    assert got["data"] == {"user": "u", "password": "p"}
    assert got["lease_duration"] == DEFAULT_LEASE
    # overwrite replaces the whole object
    kv.create_or_update_secret("app/db", {"token": "t2"}, mount_point="kv")
    assert kv.read_secret("app/db", mount_point="kv")["data"] == {"token": "t2"}
    # POST is a synonym of PUT
    r = kvsrv.request("POST", "kv/app/db", token=kvsrv.root_token, json={"x": "y"})
    assert r.status_code == 204, (r.status_code, r.text)
    assert kv.read_secret("app/db", mount_point="kv")["data"] == {"x": "y"}
    r = kvsrv.request("DELETE", "kv/app/db", token=kvsrv.root_token)
    assert r.status_code == 204, (r.status_code, r.text)
    r = kvsrv.get("kv/app/db", token=kvsrv.root_token)
    assert r.status_code == 404
    assert r.json() == {"errors": []}
    # deleting a missing key is not an error
    r = kvsrv.request("DELETE", "kv/app/db", token=kvsrv.root_token)
    assert r.status_code == 204, (r.status_code, r.text)


def test_read_missing(kvsrv):
    r = kvsrv.get("kv/does/not/exist", token=kvsrv.root_token)
    assert r.status_code == 404, (r.status_code, r.text)
    assert r.json() == {"errors": []}
    assert r.headers.get("Content-Type", "").startswith("application/json")
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv1(kvsrv).read_secret("does/not/exist", mount_point="kv")


def test_json_value_types_round_trip(kvsrv):
    value = {"s": "text", "n": 42, "f": 1.5, "t": True, "f0": False, "z": None,
             "list": [1, "two", {"three": 3}], "obj": {"a": {"b": "c"}},
             "unicode": "grüße ✓ 秘密", "esc": "quote\" backslash\\ nl\n tab\t"}
    kv1(kvsrv).create_or_update_secret("types", value, mount_point="kv")
    assert kv1(kvsrv).read_secret("types", mount_point="kv")["data"] == value


def test_write_empty_object_rejected(kvsrv):
    r = kvsrv.put("kv/empty", token=kvsrv.root_token, json={})
    assert r.status_code == 400, (r.status_code, r.text)
    assert H.errors_of(r)


def test_encoded_path_segments(kvsrv):
    r = kvsrv.put("kv/with%20space/x", token=kvsrv.root_token, json={"k": "v"})
    assert r.status_code == 204, (r.status_code, r.text)
    got = kv1(kvsrv).read_secret("with space/x", mount_point="kv")
    assert got["data"] == {"k": "v"}
    r = list_keys(kvsrv, "kv/with%20space/")
    assert r.status_code == 200 and r.json()["data"]["keys"] == ["x"], r.text


# ---- LIST ------------------------------------------------------------------------------
def test_list_nested_folders(kvsrv):
    kv = kv1(kvsrv)
    for p in ("tree/a/b/c", "tree/a/d", "tree/e", "tree/a/b/f"):
        kv.create_or_update_secret(p, {"p": p}, mount_point="kv", method="PUT")
    for verb in ("LIST", "GET"):
        r = list_keys(kvsrv, "kv/tree/", verb)
        assert r.status_code == 200, (verb, r.status_code, r.text)
        assert r.json()["data"]["keys"] == ["a/", "e"], (verb, r.json())
        r = list_keys(kvsrv, "kv/tree/a/", verb)
        assert r.json()["data"]["keys"] == ["b/", "d"], (verb, r.json())
        r = list_keys(kvsrv, "kv/tree/a/b/", verb)
        assert r.json()["data"]["keys"] == ["c", "f"], (verb, r.json())
    # LIST without the trailing slash is the same folder
    r = list_keys(kvsrv, "kv/tree/a")
    assert r.status_code == 200 and r.json()["data"]["keys"] == ["b/", "d"], r.text
    # hvac: LIST verb, and GET ?list=true with strict_http
    assert kv.list_secrets("tree", mount_point="kv")["data"]["keys"] == ["a/", "e"]
    strict = kv1(kvsrv, strict_http=True)
    assert strict.list_secrets("tree/a", mount_point="kv")["data"]["keys"] == ["b/", "d"]
    # a secret and a folder can share a name
    kv.create_or_update_secret("tree/a", {"leaf": "yes"}, mount_point="kv", method="PUT")
    assert list_keys(kvsrv, "kv/tree/").json()["data"]["keys"] == ["a", "a/", "e"]
    assert kv.read_secret("tree/a", mount_point="kv")["data"] == {"leaf": "yes"}
    # deleting leaves prunes empty folders
    for p in ("tree/a/b/c", "tree/a/b/f"):
        kv.delete_secret(p, mount_point="kv")
    assert list_keys(kvsrv, "kv/tree/a/").json()["data"]["keys"] == ["d"]
    r = list_keys(kvsrv, "kv/tree/a/b/")
    assert r.status_code == 404 and r.json() == {"errors": []}, r.text


def test_list_empty_is_404(kvsrv):
    for verb in ("LIST", "GET"):
        r = list_keys(kvsrv, "kv/nothing-here/", verb)
        assert r.status_code == 404, (verb, r.status_code, r.text)
        assert r.json() == {"errors": []}
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv1(kvsrv).list_secrets("nothing-here", mount_point="kv")


def test_list_many_keys_sorted(kvsrv):
    kv = kv1(kvsrv)
    names = ["k%03d" % i for i in range(120)]
    for n in reversed(names):
        kv.create_or_update_secret("many/" + n, {"v": n}, mount_point="kv", method="PUT")
    assert kv.list_secrets("many", mount_point="kv")["data"]["keys"] == names


# ---- leases -------------------------------------------------------------------------------
def test_lease_duration_and_ttl(kvsrv):
    kv = kv1(kvsrv)
    kv.create_or_update_secret("lease/plain", {"v": "1"}, mount_point="kv", method="PUT")
    assert kv.read_secret("lease/plain", mount_point="kv")["lease_duration"] == DEFAULT_LEASE
    kv.create_or_update_secret("lease/ttl", {"v": "1", "ttl": "1h"}, mount_point="kv", method="PUT")
    got = kv.read_secret("lease/ttl", mount_point="kv")
    assert got["lease_duration"] == 3600, got
    assert got["data"]["v"] == "1" and got["data"]["ttl"] == "1h"
    kv.create_or_update_secret("lease/ttl2", {"v": "1", "ttl": "30m"}, mount_point="kv", method="PUT")
    assert kv.read_secret("lease/ttl2", mount_point="kv")["lease_duration"] == 1800


def test_tune_default_lease_ttl(kvsrv):
    c = kvsrv.client()
    c.sys.enable_secrets_engine("kv", path="tuned", options={"version": "1"})
    c.secrets.kv.v1.create_or_update_secret("x", {"v": "1"}, mount_point="tuned", method="PUT")
    r = kvsrv.request("POST", "sys/mounts/tuned/tune", token=kvsrv.root_token,
                      json={"default_lease_ttl": "1h"})
    assert r.status_code in (200, 204), (r.status_code, r.text)
    r = kvsrv.get("sys/mounts/tuned/tune", token=kvsrv.root_token)
    assert r.status_code == 200, r.text
    body = r.json()
    cfg = body.get("data") or body
    assert cfg["default_lease_ttl"] == 3600, body
    assert c.secrets.kv.v1.read_secret("x", mount_point="tuned")["lease_duration"] == 3600
    mounts = c.sys.list_mounted_secrets_engines()["data"]
    assert mounts["tuned/"]["config"]["default_lease_ttl"] == 3600, mounts["tuned/"]
    # seconds as a number work too
    r = kvsrv.request("POST", "sys/mounts/tuned/tune", token=kvsrv.root_token,
                      json={"default_lease_ttl": 120})
    assert r.status_code in (200, 204), (r.status_code, r.text)
    assert c.secrets.kv.v1.read_secret("x", mount_point="tuned")["lease_duration"] == 120
    # a secret's own ttl still wins
    c.secrets.kv.v1.create_or_update_secret("y", {"ttl": "5m"}, mount_point="tuned", method="PUT")
    assert c.secrets.kv.v1.read_secret("y", mount_point="tuned")["lease_duration"] == 300


# ---- mounts ----------------------------------------------------------------------------------
def test_sys_mounts_entry(kvsrv):
    r = kvsrv.get("sys/mounts", token=kvsrv.root_token)
    assert r.status_code == 200, r.text
    body = r.json()
    m = body["data"]["kv/"]
    assert m["type"] == "kv"
    assert isinstance(m["accessor"], str) and m["accessor"].startswith("kv_"), m
    assert UUID.match(m["uuid"]), m
    assert (m.get("options") or {}).get("version", "1") == "1", m
    assert m["config"]["default_lease_ttl"] in (0, DEFAULT_LEASE), m
    assert "sys/" in body["data"], body["data"].keys()
    # legacy top-level copy of data
    assert body.get("kv/", {}).get("type") == "kv", "sys/mounts lacks the top-level copy"
    # one mount
    r = kvsrv.get("sys/mounts/kv", token=kvsrv.root_token)
    assert r.status_code == 200, (r.status_code, r.text)
    one = r.json().get("data") or r.json()
    assert one["type"] == "kv" and one["accessor"] == m["accessor"], one


def test_mount_disable_deletes_data(kvsrv):
    c = kvsrv.client()
    c.sys.enable_secrets_engine("kv", path="gone", options={"version": "1"})
    c.secrets.kv.v1.create_or_update_secret("a/b", {"v": "1"}, mount_point="gone", method="PUT")
    acc1 = c.sys.list_mounted_secrets_engines()["data"]["gone/"]["accessor"]
    r = kvsrv.request("DELETE", "sys/mounts/gone", token=kvsrv.root_token)
    assert r.status_code == 204, (r.status_code, r.text)
    assert "gone/" not in c.sys.list_mounted_secrets_engines()["data"]
    r = kvsrv.get("gone/a/b", token=kvsrv.root_token)
    assert r.status_code == 404, (r.status_code, r.text)
    c.sys.enable_secrets_engine("kv", path="gone", options={"version": "1"})
    acc2 = c.sys.list_mounted_secrets_engines()["data"]["gone/"]["accessor"]
    assert acc1 != acc2
    r = kvsrv.get("gone/a/b", token=kvsrv.root_token)
    assert r.status_code == 404 and r.json() == {"errors": []}, r.text
    r = list_keys(kvsrv, "gone/")
    assert r.status_code == 404, r.text


def test_mount_errors(kvsrv):
    tok = kvsrv.root_token
    r = kvsrv.request("POST", "sys/mounts/kv", token=tok, json={"type": "kv"})
    assert r.status_code == 400, ("mount over an existing path", r.status_code, r.text)
    r = kvsrv.request("POST", "sys/mounts/weird", token=tok, json={"type": "no-such-engine"})
    assert r.status_code == 400, ("unknown type", r.status_code, r.text)
    r = kvsrv.request("POST", "sys/mounts/sys", token=tok, json={"type": "kv"})
    assert r.status_code == 400, ("mount over sys/", r.status_code, r.text)
    r = kvsrv.request("DELETE", "sys/mounts/sys", token=tok)
    assert r.status_code == 400, ("unmount sys/", r.status_code, r.text)
    r = kvsrv.request("POST", "sys/mounts/kvx", token=H.random_token(), json={"type": "kv"})
    assert r.status_code == 403, (r.status_code, r.text)


def test_nested_mount_paths(kvsrv):
    c = kvsrv.client()
    c.sys.enable_secrets_engine("kv", path="team/a", options={"version": "1"})
    c.secrets.kv.v1.create_or_update_secret("s", {"v": "team"}, mount_point="team/a", method="PUT")
    assert c.secrets.kv.v1.read_secret("s", mount_point="team/a")["data"] == {"v": "team"}
    assert "team/a/" in c.sys.list_mounted_secrets_engines()["data"]
    r = kvsrv.get("sys/internal/ui/mounts/team/a/s", token=kvsrv.root_token)
    assert r.status_code == 200 and r.json()["data"]["path"] == "team/a/", r.text


def test_internal_ui_mounts(kvsrv):
    r = kvsrv.get("sys/internal/ui/mounts/kv/some/secret", token=kvsrv.root_token)
    assert r.status_code == 200, (r.status_code, r.text)
    d = r.json()["data"]
    assert d["path"] == "kv/" and d["type"] == "kv", d
    assert (d.get("options") or {}).get("version", "1") != "2", d
    r = kvsrv.get("sys/internal/ui/mounts/kv", token=kvsrv.root_token)
    assert r.status_code == 200 and r.json()["data"]["path"] == "kv/", r.text
    r = kvsrv.get("sys/internal/ui/mounts", token=kvsrv.root_token)
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert isinstance(d["secret"], dict) and isinstance(d["auth"], dict), d
    assert "kv/" in d["secret"], d["secret"].keys()
    # listing works without a token
    r = kvsrv.get("sys/internal/ui/mounts")
    assert r.status_code == 200, (r.status_code, r.text)
    # no such mount → 403 (the preflight error)
    r = kvsrv.get("sys/internal/ui/mounts/nomount/x", token=kvsrv.root_token)
    assert r.status_code == 403, (r.status_code, r.text)
    # a token without access → 403
    r = kvsrv.get("sys/internal/ui/mounts/kv/x", token=H.random_token())
    assert r.status_code == 403, (r.status_code, r.text)


# ---- tokens -------------------------------------------------------------------------------------
def test_lookup_self_root(kvsrv):
    r = kvsrv.get("auth/token/lookup-self", token=kvsrv.root_token)
    assert r.status_code == 200, (r.status_code, r.text)
    d = r.json()["data"]
    assert d["policies"] == ["root"], d
    assert d["id"] == kvsrv.root_token
    assert d["ttl"] == 0 and d.get("expire_time") is None, d
    assert kvsrv.client().auth.token.lookup_self()["data"]["policies"] == ["root"]
    # Authorization: Bearer works like X-Vault-Token
    r = kvsrv.get("auth/token/lookup-self",
                  headers={"Authorization": "Bearer " + kvsrv.root_token})
    assert r.status_code == 200, (r.status_code, r.text)


def test_other_tokens_forbidden(kvsrv):
    kv1(kvsrv).create_or_update_secret("guarded", {"v": "1"}, mount_point="kv", method="PUT")
    for tok in (H.random_token(), "root", kvsrv.root_token + "x", None):
        for method, path, body in (("GET", "kv/guarded", None), ("PUT", "kv/guarded", {"v": "2"}),
                                   ("LIST", "kv/", None), ("DELETE", "kv/guarded", None),
                                   ("GET", "auth/token/lookup-self", None),
                                   ("GET", "sys/mounts", None)):
            r = kvsrv.request(method, path, token=tok, json=body)
            assert r.status_code == 403, (tok, method, path, r.status_code, r.text)
            assert H.errors_of(r), (tok, method, path)
    assert kv1(kvsrv).read_secret("guarded", mount_point="kv")["data"] == {"v": "1"}
    with pytest.raises(hvac.exceptions.Forbidden):
        kv1(kvsrv, token=H.random_token()).read_secret("guarded", mount_point="kv")
