"""KV version 2: versions, check-and-set, soft delete / undelete / destroy, metadata,
custom_metadata, LIST, PATCH (merge-patch), subkeys, delete_version_after, max_versions,
mount detection through sys/internal/ui/mounts, and -dev's secret/ being v2."""

import re
import threading
import time

import hvac
import pytest

import custos_harness as H

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
MERGE = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture(scope="module")
def srv(module_unsealed):
    """The module's server with KV v2 mounted twice: as type kv + options.version 2
    (kv2/) and as type kv-v2 (kvv2/)."""
    c = module_unsealed.client()
    c.sys.enable_secrets_engine("kv", path="kv2", options={"version": "2"})
    c.sys.enable_secrets_engine("kv-v2", path="kvv2")
    return module_unsealed


def kv(srv):
    return srv.client().secrets.kv.v2


def req(srv, method, path, **kw):
    return srv.request(method, path, token=srv.root_token, **kw)


def mount(srv):
    """A fresh v2 mount for tests that change the mount config."""
    name = "m" + H.uid()[:8]
    srv.client().sys.enable_secrets_engine("kv", path=name, options={"version": "2"})
    return name


def check_version_meta(m, version, deleted=False, destroyed=False):
    assert set(m) >= {"created_time", "custom_metadata", "deletion_time", "destroyed",
                      "version"}, m
    assert m["version"] == version, m
    assert RFC3339.match(m["created_time"]), m
    assert m["destroyed"] is destroyed, m
    if deleted:
        assert RFC3339.match(m["deletion_time"]), m
    else:
        assert m["deletion_time"] == "", m


# ---- mounts ---------------------------------------------------------------------------
@pytest.mark.parametrize("mp", ["kv2", "kvv2"])
def test_mount_reports_version_2(srv, mp):
    mounts = srv.client().sys.list_mounted_secrets_engines()["data"]
    assert mounts[mp + "/"]["type"] == "kv", mounts[mp + "/"]
    assert mounts[mp + "/"]["options"] == {"version": "2"}, mounts[mp + "/"]
    r = req(srv, "GET", "sys/internal/ui/mounts/%s/some/secret" % mp)
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert d["path"] == mp + "/" and d["type"] == "kv" and d["options"]["version"] == "2", d


@pytest.mark.parametrize("mp", ["kv2", "kvv2"])
def test_write_read_versions(srv, mp):
    c = kv(srv)
    r1 = c.create_or_update_secret("app/db", {"user": "u", "pw": "p1"}, mount_point=mp)
    check_version_meta(r1["data"], 1)
    assert r1["data"]["custom_metadata"] is None
    r2 = c.create_or_update_secret("app/db", {"user": "u", "pw": "p2"}, mount_point=mp)
    check_version_meta(r2["data"], 2)
    got = c.read_secret_version("app/db", mount_point=mp)
    assert got["data"]["data"] == {"user": "u", "pw": "p2"}
    check_version_meta(got["data"]["metadata"], 2)
    assert got["lease_duration"] == 0 and got["lease_id"] == "" and got["mount_type"] == "kv"
    old = c.read_secret_version("app/db", version=1, mount_point=mp)
    assert old["data"]["data"] == {"user": "u", "pw": "p1"}
    assert old["data"]["metadata"]["version"] == 1
    # a version that never existed, and a key that does not exist
    r = req(srv, "GET", "%s/data/app/db" % mp, params={"version": 9})
    assert r.status_code == 404 and H.errors_of(r) == [], r.text
    with pytest.raises(hvac.exceptions.InvalidPath):
        c.read_secret_version("nope", mount_point=mp)
    # a write without "data" is refused
    r = req(srv, "POST", "%s/data/app/db" % mp, json={"options": {}})
    assert r.status_code == 400 and H.errors_of(r) == ["no data provided"], r.text


def test_value_types_roundtrip(srv):
    value = {"s": "x", "n": 3, "f": 1.5, "b": True, "nil": None, "l": [1, "a"], "o": {"k": {}}}
    kv(srv).create_or_update_secret("types", value, mount_point="kv2")
    assert kv(srv).read_secret_version("types", mount_point="kv2")["data"]["data"] == value


# ---- check-and-set --------------------------------------------------------------------
def test_cas(srv):
    c = kv(srv)
    c.create_or_update_secret("cas/a", {"v": 1}, cas=0, mount_point="kv2")
    with pytest.raises(hvac.exceptions.InvalidRequest) as e:
        c.create_or_update_secret("cas/a", {"v": 2}, cas=0, mount_point="kv2")
    assert "check-and-set parameter did not match the current version" in str(e.value)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        c.create_or_update_secret("cas/a", {"v": 2}, cas=5, mount_point="kv2")
    assert c.create_or_update_secret("cas/a", {"v": 2}, cas=1,
                                     mount_point="kv2")["data"]["version"] == 2
    # cas given as a string is weakly decoded, as in Vault
    r = req(srv, "POST", "kv2/data/cas/a", json={"data": {"v": 3}, "options": {"cas": "2"}})
    assert r.status_code == 200 and r.json()["data"]["version"] == 3, r.text


def test_cas_race_exactly_one_wins(srv):
    c = kv(srv)
    c.create_or_update_secret("race", {"v": "0"}, mount_point="kv2")
    for rnd in range(3):
        cur = c.read_secret_version("race", mount_point="kv2")["data"]["metadata"]["version"]
        results = []
        barrier = threading.Barrier(8)

        def writer(i):
            barrier.wait()
            r = req(srv, "POST", "kv2/data/race",
                    json={"data": {"v": "%d-%d" % (rnd, i)}, "options": {"cas": cur}})
            results.append((i, r.status_code, r.text))

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ok = [x for x in results if x[1] == 200]
        bad = [x for x in results if x[1] == 400]
        assert len(ok) == 1 and len(bad) == 7, results
        for _, _, text in bad:
            assert "did not match the current version" in text
        got = c.read_secret_version("race", mount_point="kv2")["data"]
        assert got["metadata"]["version"] == cur + 1
        assert got["data"]["v"] == "%d-%d" % (rnd, ok[0][0])


def test_cas_required_mount_and_key(srv):
    mp = mount(srv)
    c = kv(srv)
    c.configure(cas_required=True, mount_point=mp)
    cfg = c.read_configuration(mount_point=mp)["data"]
    assert cfg == {"cas_required": True, "delete_version_after": "0s", "max_versions": 10}, cfg
    with pytest.raises(hvac.exceptions.InvalidRequest) as e:
        c.create_or_update_secret("k", {"a": 1}, mount_point=mp)
    assert "check-and-set parameter required for this call" in str(e.value)
    c.create_or_update_secret("k", {"a": 1}, cas=0, mount_point=mp)
    # metadata cas_required=false cannot relax the mount: a warning says so
    r = req(srv, "POST", "%s/metadata/k" % mp, json={"cas_required": False})
    assert r.status_code == 200 and "mandated by backend config" in r.json()["warnings"][0], \
        r.text
    # per-key cas_required on a mount that does not require it
    c.configure(cas_required=False, mount_point=mp)
    c.create_or_update_secret("free", {"a": 1}, mount_point=mp)
    c.update_metadata("free", cas_required=True, mount_point=mp)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        c.create_or_update_secret("free", {"a": 2}, mount_point=mp)
    c.create_or_update_secret("free", {"a": 2}, cas=1, mount_point=mp)


# ---- delete / undelete / destroy ------------------------------------------------------
def test_soft_delete_undelete_destroy(srv):
    c = kv(srv)
    for i in range(1, 4):
        c.create_or_update_secret("life", {"i": i}, mount_point="kv2")
    # DELETE data/ soft-deletes the latest version
    r = req(srv, "DELETE", "kv2/data/life")
    assert r.status_code == 204, r.text
    r = req(srv, "GET", "kv2/data/life")
    assert r.status_code == 404, r.text
    body = r.json()
    assert body["data"]["data"] is None, body
    check_version_meta(body["data"]["metadata"], 3, deleted=True)
    assert "request_id" in body and "errors" not in body
    with pytest.raises(hvac.exceptions.InvalidPath):
        c.read_secret_version("life", mount_point="kv2")
    # older versions are still readable
    assert c.read_secret_version("life", version=2, mount_point="kv2")["data"]["data"] == {"i": 2}
    # delete/ with versions, undelete/
    c.delete_secret_versions("life", [1, 2], mount_point="kv2")
    assert req(srv, "GET", "kv2/data/life", params={"version": 1}).status_code == 404
    c.undelete_secret_versions("life", [1, 3], mount_point="kv2")
    assert c.read_secret_version("life", mount_point="kv2")["data"]["data"] == {"i": 3}
    assert c.read_secret_version("life", version=1, mount_point="kv2")["data"]["data"] == {"i": 1}
    assert req(srv, "GET", "kv2/data/life", params={"version": 2}).status_code == 404
    # destroy (the CLI uses PUT, hvac POST)
    r = req(srv, "PUT", "kv2/destroy/life", json={"versions": [3]})
    assert r.status_code == 204, r.text
    r = req(srv, "GET", "kv2/data/life")
    assert r.status_code == 404, r.text
    check_version_meta(r.json()["data"]["metadata"], 3, destroyed=True)
    # undelete cannot bring a destroyed version back
    c.undelete_secret_versions("life", [3], mount_point="kv2")
    assert req(srv, "GET", "kv2/data/life").status_code == 404
    meta = c.read_secret_metadata("life", mount_point="kv2")["data"]
    assert meta["versions"]["3"]["destroyed"] is True
    assert meta["versions"]["2"]["deletion_time"] != ""
    assert meta["versions"]["1"]["deletion_time"] == ""
    # versions given as a comma string; missing versions → 400
    r = req(srv, "POST", "kv2/delete/life", json={"versions": "1,2"})
    assert r.status_code == 204, r.text
    r = req(srv, "POST", "kv2/delete/life", json={})
    assert r.status_code == 400, r.text
    # on a missing key these are no-ops
    for op in ("delete", "undelete", "destroy"):
        r = req(srv, "POST", "kv2/%s/missing" % op, json={"versions": [1]})
        assert r.status_code == 204, (op, r.text)
    assert req(srv, "DELETE", "kv2/data/missing").status_code == 204
    # a new write after a delete is readable again
    c.create_or_update_secret("life", {"i": 4}, mount_point="kv2")
    assert c.read_secret_version("life", mount_point="kv2")["data"]["metadata"]["version"] == 4


# ---- metadata -------------------------------------------------------------------------
def test_metadata_read_update_delete(srv):
    c = kv(srv)
    c.create_or_update_secret("meta/x", {"a": 1}, mount_point="kv2")
    c.create_or_update_secret("meta/x", {"a": 2}, mount_point="kv2")
    m = c.read_secret_metadata("meta/x", mount_point="kv2")["data"]
    assert m["current_version"] == 2 and m["oldest_version"] == 0, m
    assert m["max_versions"] == 0 and m["cas_required"] is False, m
    assert m["delete_version_after"] == "0s" and m["custom_metadata"] is None, m
    assert RFC3339.match(m["created_time"]) and RFC3339.match(m["updated_time"]), m
    assert set(m["versions"]) == {"1", "2"}, m
    assert set(m["versions"]["1"]) >= {"created_time", "deletion_time", "destroyed"}
    # update: max_versions, delete_version_after, custom_metadata
    r = req(srv, "POST", "kv2/metadata/meta/x",
            json={"max_versions": 5, "delete_version_after": "1h30m",
                  "custom_metadata": {"owner": "ops", "n": 7}})
    assert r.status_code == 204, r.text
    m = c.read_secret_metadata("meta/x", mount_point="kv2")["data"]
    assert m["max_versions"] == 5 and m["delete_version_after"] == "1h30m0s", m
    assert m["custom_metadata"] == {"owner": "ops", "n": "7"}, m
    # custom_metadata shows up on data reads and writes
    got = c.read_secret_version("meta/x", mount_point="kv2")["data"]["metadata"]
    assert got["custom_metadata"] == {"owner": "ops", "n": "7"}
    # PATCH merges: null removes a key
    r = req(srv, "PATCH", "kv2/metadata/meta/x", headers=MERGE,
            json={"custom_metadata": {"n": None, "team": "a"}, "max_versions": 4})
    assert r.status_code == 204, r.text
    m = c.read_secret_metadata("meta/x", mount_point="kv2")["data"]
    assert m["custom_metadata"] == {"owner": "ops", "team": "a"}, m
    assert m["max_versions"] == 4 and m["delete_version_after"] == "1h30m0s", m
    # PATCH of a missing key → 404
    r = req(srv, "PATCH", "kv2/metadata/meta/none", headers=MERGE, json={"max_versions": 1})
    assert r.status_code == 404, r.text
    # custom_metadata limits
    r = req(srv, "POST", "kv2/metadata/meta/x", json={"custom_metadata": {"k": "v" * 513}})
    assert r.status_code == 400 and "custom_metadata validation failed" in r.text, r.text
    r = req(srv, "POST", "kv2/metadata/meta/x",
            json={"custom_metadata": {"k%d" % i: "v" for i in range(65)}})
    assert r.status_code == 400 and "at most 64 keys" in r.text, r.text
    # metadata can be written before any data
    r = req(srv, "POST", "kv2/metadata/meta/pre", json={"max_versions": 3})
    assert r.status_code == 204, r.text
    m = c.read_secret_metadata("meta/pre", mount_point="kv2")["data"]
    assert m["current_version"] == 0 and m["versions"] == {} and m["max_versions"] == 3, m
    assert req(srv, "GET", "kv2/data/meta/pre").status_code == 404
    # DELETE metadata removes every version and the metadata
    c.delete_metadata_and_all_versions("meta/x", mount_point="kv2")
    assert req(srv, "GET", "kv2/metadata/meta/x").status_code == 404
    assert req(srv, "GET", "kv2/data/meta/x", params={"version": 1}).status_code == 404
    # the key starts over at version 1
    assert c.create_or_update_secret("meta/x", {"a": 9},
                                     mount_point="kv2")["data"]["version"] == 1
    assert req(srv, "DELETE", "kv2/metadata/meta/never").status_code == 204


def test_list(srv):
    mp = mount(srv)
    c = kv(srv)
    for p in ("a", "b/c", "b/d/e", "z"):
        c.create_or_update_secret(p, {"p": p}, mount_point=mp)
    assert c.list_secrets("", mount_point=mp)["data"]["keys"] == ["a", "b/", "z"]
    assert c.list_secrets("b", mount_point=mp)["data"]["keys"] == ["c", "d/"]
    r = req(srv, "GET", "%s/metadata/b/" % mp, params={"list": "true"})
    assert r.status_code == 200 and r.json()["data"]["keys"] == ["c", "d/"], r.text
    with pytest.raises(hvac.exceptions.InvalidPath):
        c.list_secrets("nothing", mount_point=mp)
    # exclude_deleted skips keys whose current version is deleted
    c.delete_latest_version_of_secret("a", mount_point=mp)
    r = req(srv, "LIST", "%s/metadata/" % mp, params={"exclude_deleted": "true"})
    assert r.status_code == 200 and r.json()["data"]["keys"] == ["b/", "z"], r.text
    # deleting the metadata removes the key from the listing
    c.delete_metadata_and_all_versions("z", mount_point=mp)
    assert c.list_secrets("", mount_point=mp)["data"]["keys"] == ["a", "b/"]
    # LIST on data/ is not how KV v2 lists: 404 with a warning, as in Vault
    r = req(srv, "LIST", "%s/data/" % mp)
    assert r.status_code == 404, r.text
    assert "vault kv list" in r.json()["warnings"][0], r.text


# ---- max_versions ---------------------------------------------------------------------
def test_max_versions_pruning(srv):
    mp = mount(srv)
    c = kv(srv)
    c.configure(max_versions=3, mount_point=mp)
    for i in range(1, 6):
        c.create_or_update_secret("p", {"i": i}, mount_point=mp)
    m = c.read_secret_metadata("p", mount_point=mp)["data"]
    assert sorted(m["versions"], key=int) == ["3", "4", "5"], m
    assert m["current_version"] == 5 and m["oldest_version"] == 3, m
    assert req(srv, "GET", "%s/data/p" % mp, params={"version": 2}).status_code == 404
    assert c.read_secret_version("p", version=3, mount_point=mp)["data"]["data"] == {"i": 3}
    # default (0 on the mount) keeps 10
    for i in range(12):
        c.create_or_update_secret("d", {"i": i}, mount_point="kvv2")
    m = c.read_secret_metadata("d", mount_point="kvv2")["data"]
    assert len(m["versions"]) == 10 and m["oldest_version"] == 3, m


# ---- patch ----------------------------------------------------------------------------
def test_patch(srv):
    c = kv(srv)
    c.create_or_update_secret("pt", {"a": "1", "b": {"x": 1, "y": 2}, "c": "3"},
                              mount_point="kv2")
    r = req(srv, "PATCH", "kv2/data/pt", headers=MERGE,
            json={"data": {"a": "one", "b": {"y": None, "z": 3}, "c": None}})
    assert r.status_code == 200, r.text
    check_version_meta(r.json()["data"], 2)
    got = c.read_secret_version("pt", mount_point="kv2")["data"]["data"]
    assert got == {"a": "one", "b": {"x": 1, "z": 3}}, got
    # cas on patch
    r = req(srv, "PATCH", "kv2/data/pt", headers=MERGE,
            json={"data": {"a": "two"}, "options": {"cas": 1}})
    assert r.status_code == 400 and "did not match" in r.text, r.text
    r = req(srv, "PATCH", "kv2/data/pt", headers=MERGE,
            json={"data": {"a": "two"}, "options": {"cas": 2}})
    assert r.status_code == 200 and r.json()["data"]["version"] == 3, r.text
    # hvac's patch (read + cas write in this hvac release)
    c.patch("pt", {"d": "4"}, mount_point="kv2")
    got = c.read_secret_version("pt", mount_point="kv2")["data"]
    assert got["data"] == {"a": "two", "b": {"x": 1, "z": 3}, "d": "4"}
    assert got["metadata"]["version"] == 4
    # a missing key → 404; a deleted current version → 404 with the version metadata
    r = req(srv, "PATCH", "kv2/data/pt-none", headers=MERGE, json={"data": {"a": 1}})
    assert r.status_code == 404, r.text
    c.delete_latest_version_of_secret("pt", mount_point="kv2")
    r = req(srv, "PATCH", "kv2/data/pt", headers=MERGE, json={"data": {"a": 1}})
    assert r.status_code == 404, r.text
    assert r.json()["data"]["version"] == 4 and r.json()["data"]["deletion_time"] != ""


# ---- subkeys --------------------------------------------------------------------------
def test_subkeys(srv):
    c = kv(srv)
    c.create_or_update_secret("sk", {"foo": "abc", "bar": {"baz": "def", "q": {"r": 1}},
                                     "e": {}}, mount_point="kv2")
    r = req(srv, "GET", "kv2/subkeys/sk")
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert d["subkeys"] == {"foo": None, "bar": {"baz": None, "q": {"r": None}}, "e": None}, d
    check_version_meta(d["metadata"], 1)
    r = req(srv, "GET", "kv2/subkeys/sk", params={"depth": 1})
    assert r.json()["data"]["subkeys"] == {"foo": None, "bar": None, "e": None}, r.text
    r = req(srv, "GET", "kv2/subkeys/sk", params={"depth": 2, "version": 1})
    assert r.json()["data"]["subkeys"] == {"foo": None, "bar": {"baz": None, "q": None},
                                           "e": None}, r.text
    assert req(srv, "GET", "kv2/subkeys/none").status_code == 404
    c.delete_latest_version_of_secret("sk", mount_point="kv2")
    r = req(srv, "GET", "kv2/subkeys/sk")
    assert r.status_code == 404 and r.json()["data"]["subkeys"] is None, r.text


# ---- delete_version_after ------------------------------------------------------------
def test_delete_version_after(srv):
    mp = mount(srv)
    c = kv(srv)
    c.configure(delete_version_after="2s", mount_point=mp)
    assert c.read_configuration(mount_point=mp)["data"]["delete_version_after"] == "2s"
    w = c.create_or_update_secret("t", {"a": 1}, mount_point=mp)["data"]
    assert RFC3339.match(w["deletion_time"]), w  # scheduled, in the future
    assert c.read_secret_version("t", mount_point=mp)["data"]["data"] == {"a": 1}
    # a shorter per-key value wins
    c.update_metadata("t2", delete_version_after="1s", mount_point=mp)
    c.create_or_update_secret("t2", {"b": 1}, mount_point=mp)
    time.sleep(2.3)
    for key in ("t", "t2"):
        r = req(srv, "GET", "%s/data/%s" % (mp, key))
        assert r.status_code == 404, r.text
        assert r.json()["data"]["data"] is None and r.json()["data"]["metadata"]["version"] == 1
    # undelete re-arms the timer from now
    c.undelete_secret_versions("t", [1], mount_point=mp)
    assert c.read_secret_version("t", mount_point=mp)["data"]["data"] == {"a": 1}
    # "0s" turns it off again for new versions
    c.configure(delete_version_after="0s", mount_point=mp)
    w = c.create_or_update_secret("t3", {"c": 1}, mount_point=mp)["data"]
    assert w["deletion_time"] == "", w


# ---- config & invalid paths -----------------------------------------------------------
def test_config_defaults_and_invalid_paths(srv):
    mp = mount(srv)
    r = req(srv, "GET", "%s/config" % mp)
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"cas_required": False, "delete_version_after": "0s",
                                "max_versions": 0}
    # v1-style paths: 404 with the CLI hint in the warnings
    r = req(srv, "PUT", "%s/foo" % mp, json={"a": "b"})
    assert r.status_code == 404, r.text
    assert "vault kv put" in r.json()["warnings"][0], r.text
    r = req(srv, "GET", "%s/foo" % mp)
    assert r.status_code == 404 and "vault kv get" in r.json()["warnings"][0], r.text
    r = req(srv, "GET", "%s/data" % mp)
    assert r.status_code == 404 and "root of a K/V v2 mount" in r.json()["warnings"][0]
    # hvac's v1 client against a v2 mount fails with InvalidPath
    with pytest.raises(hvac.exceptions.InvalidPath):
        srv.client().secrets.kv.v1.read_secret("foo", mount_point=mp)


def test_restricted_token_denied(srv):
    r = srv.request("GET", "kv2/data/app/db", token=H.random_token())
    assert r.status_code == 403, r.text


# ---- the dev server -------------------------------------------------------------------
def test_dev_secret_mount_is_v2(dev_server):
    c = dev_server.client()
    m = c.sys.list_mounted_secrets_engines()["data"]["secret/"]
    assert m["type"] == "kv" and m["options"] == {"version": "2"}, m
    r = dev_server.get("sys/internal/ui/mounts/secret/foo", token=dev_server.root_token)
    assert r.json()["data"]["options"]["version"] == "2", r.text
    c.secrets.kv.v2.create_or_update_secret("hello", {"foo": "world"})
    assert c.secrets.kv.v2.read_secret_version("hello")["data"]["data"] == {"foo": "world"}
    assert c.secrets.kv.v2.list_secrets("")["data"]["keys"] == ["hello"]


def test_survives_restart(server_factory):
    s = server_factory()
    H.init_and_unseal(s)
    c = s.client()
    c.sys.enable_secrets_engine("kv-v2", path="kvr")
    for i in range(3):
        c.secrets.kv.v2.create_or_update_secret("persist", {"i": i}, mount_point="kvr")
    c.secrets.kv.v2.delete_secret_versions("persist", [1], mount_point="kvr")
    s.restart()
    H.unseal(s)
    H.wait_active(s)
    c = s.client()
    got = c.secrets.kv.v2.read_secret_version("persist", mount_point="kvr")["data"]
    assert got["data"] == {"i": 2} and got["metadata"]["version"] == 3
    assert s.request("GET", "kvr/data/persist", token=s.root_token,
                     params={"version": 1}).status_code == 404
