"""KV v2 compact records (issue 16): a store written by the e4c3a37 binary opens with this
one, reads the same to clients (KV v1 and v2 secrets, versions, metadata, soft-deleted and
destroyed versions), takes writes on its old records, and its JSON metadata records are
converted in bounded batches by the mount's periodic function, which leaves a completion
marker; the converted store still reads the same.

The fixture is tests/e2e/fixtures/store_e4c3a37/ (made by fixtures/make_store_fixture.py).
Keys are plaintext in LMDB, so the conversion is checked on disk too: the current
version's own record goes (its data moves inline into the metadata record), older ones stay.
"""

import hashlib
import json
import os
import subprocess
import tarfile
import time

import pytest

import custos_harness as H

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "store_e4c3a37")


def lmdb_keys(data_dir):
    out = subprocess.run(["mdb_dump", "-s", "data", os.path.join(data_dir, "fsm")],
                         stdout=subprocess.PIPE, check=True, text=True).stdout
    lines = out.split("HEADER=END\n", 1)[1].splitlines()
    keys = []
    for i in range(0, len(lines) - 1, 2):
        if lines[i] == "DATA=END":
            break
        keys.append(bytes.fromhex(lines[i].strip()).decode())
    return keys


def start(tmp_path, info, periodic):
    s = H.Server(tmp_path, name=info["node_id"],
                 extra_config='periodic_interval = "%s"\n' % periodic)
    s.start()
    s.keys = [info["unseal_key_b64"]]
    s.root_token = info["root_token"]
    H.unseal(s)
    H.wait_active(s)
    return s


def check_reads(s, info, rewritten):
    root = info["root_token"]
    for path, data in info["kv1"].items():
        r = s.request("GET", "kv1/" + path, token=root)
        assert r.status_code == 200 and r.json()["data"] == data, (path, r.text[:200])
    for path, versions in info["kv2"].items():
        versions = versions + rewritten.get(path, [])
        m = s.request("GET", "secret/metadata/" + path, token=root)
        assert m.status_code == 200, (path, m.text)
        md = m.json()["data"]
        assert md["current_version"] == len(versions), (path, md)
        for n, data in enumerate(versions, 1):
            r = s.request("GET", "secret/data/%s?version=%d" % (path, n), token=root)
            gone = n in info["kv2_deleted"].get(path, []) or \
                n in info["kv2_destroyed"].get(path, [])
            if gone:
                assert r.status_code == 404, (path, n, r.text[:200])
                meta = r.json()["data"]["metadata"]
                assert meta["destroyed"] == (n in info["kv2_destroyed"].get(path, []))
                assert meta["deletion_time"] != "" or meta["destroyed"]
            else:
                assert r.status_code == 200, (path, n, r.text[:200])
                assert r.json()["data"]["data"] == data, (path, n)
    m = s.request("GET", "secret/metadata/app/s000", token=root).json()["data"]
    assert m["max_versions"] == 5 and m["custom_metadata"] == {"team": "blue"}
    r = s.request("LIST", "secret/metadata/app", token=root)
    assert sorted(r.json()["data"]["keys"]) == sorted(p.split("/")[1] for p in info["kv2"])


def vkey(path, n):
    return "versions/%s/%d" % (hashlib.sha256(path.encode()).hexdigest(), n)


@pytest.mark.skipif(not os.path.exists(os.path.join(FIX, "data.tar.gz")),
                    reason="no e4c3a37 fixture")
def test_old_store_reads_then_converts(tmp_path):
    info = json.load(open(os.path.join(FIX, "info.json")))
    with tarfile.open(os.path.join(FIX, "data.tar.gz")) as tar:
        tar.extractall(tmp_path)
    data_dir = os.path.join(tmp_path, "data")
    old_keys = lmdb_keys(data_dir)
    # The mount's storage prefix, from the metadata keys of the old store.
    prefix = next(k for k in old_keys if k.endswith("/metadata/app/s000"))[:-len("metadata/app/s000")]
    assert not any(k.startswith(prefix + "upgrade/") for k in old_keys)

    # The periodic function converts the old records as soon as the node is active (the
    # JSON decoder's cases are in the kv2 unit suite); reads, a write and the marker.
    s = start(tmp_path, info, "1s")
    marker = prefix + "upgrade/compact-v1"
    for _ in range(300):
        if marker in lmdb_keys(data_dir):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("no conversion marker after 30 s")
    check_reads(s, info, {})
    new = {"value": "after-upgrade"}
    r = s.request("POST", "secret/data/app/s001", token=info["root_token"], json={"data": new})
    assert r.status_code == 200, r.text
    rewritten = {"app/s001": [new]}
    check_reads(s, info, rewritten)
    s.stop()
    keys = set(lmdb_keys(data_dir))
    assert marker in keys
    for path, versions in info["kv2"].items():
        cur = len(versions) + len(rewritten.get(path, []))
        # The current version's data is inline now: no record of its own.
        assert prefix + vkey(path, cur) not in keys, path
        for n in range(1, cur):
            if n in info["kv2_destroyed"].get(path, []):
                continue
            assert prefix + vkey(path, n) in keys, (path, n)
    # s001's previous current version went to its own record, the new one is inline.
    assert prefix + vkey("app/s001", 2) in keys
    # And it still reads the same after a restart on the converted records.
    s = start(tmp_path, info, "1h")
    check_reads(s, info, rewritten)
    s.stop()
