"""Upgrade to compact token and lease records (issue 16): a store written by the e4c3a37
binary (tests/e2e/fixtures/store_e4c3a37, JSON records) opens with this binary, every
token and lease reads the same to clients, the records are rewritten in the compact form
in the background (auth/record_convert.c), and all of it survives a restart.

That the records changed form is seen from outside through the LMDB file: keys are
plaintext there and values are ciphertext whose length follows the record's (mdb_dump,
Debian lmdb-utils); the marker key sys/token/records-v1 records completion.
"""
import json
import os
import shutil
import subprocess
import tarfile
import time

import pytest

import custos_harness as H

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "store_e4c3a37")
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

# Fields of a token lookup that move with the clock.
MOVING = {"ttl"}


def dump(data_dir):
    """{key: value length} of the LMDB "data" database."""
    out = subprocess.run(["mdb_dump", "-s", "data", os.path.join(data_dir, "fsm")],
                         check=True, capture_output=True).stdout.split(b"\n")
    i = out.index(b"HEADER=END") + 1
    rows = {}
    while i + 1 < len(out) and out[i].startswith(b" "):
        rows[bytes.fromhex(out[i][1:].decode()).decode("utf-8", "replace")] = \
            len(out[i + 1][1:]) // 2
        i += 2
    return rows


def record_sizes(rows, prefix):
    return [n for k, n in rows.items() if k.startswith(prefix)]


@pytest.fixture
def info():
    with open(os.path.join(FIXTURE, "info.json")) as f:
        return json.load(f)


@pytest.fixture
def old_store(tmp_path, info, monkeypatch):
    """The fixture's data directory, unpacked where server_factory's first Server expects it,
    and the clock set shortly after the store was made (its tokens expire)."""
    work = tmp_path / "srv1"  # the first server of server_factory
    work.mkdir()
    with tarfile.open(os.path.join(FIXTURE, "data.tar.gz")) as tar:
        tar.extractall(work)
    if os.path.exists(FAKETIME_LIB):
        start = time.strftime("%Y-%m-%d %H:%M:%S",
                              time.gmtime(info["created_at"] + 60))
        monkeypatch.setenv("LD_PRELOAD", FAKETIME_LIB)
        monkeypatch.setenv("FAKETIME", "@" + start)
        monkeypatch.setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        monkeypatch.setenv("TZ", "UTC")
        # A sanitizer build wants its runtime first; faketime's preload is harmless to it.
        asan = os.environ.get("ASAN_OPTIONS", "")
        monkeypatch.setenv("ASAN_OPTIONS", (asan + ":" if asan else "") +
                           "verify_asan_link_order=0")
    return work


def open_node(s, info):
    s.start()
    H.unseal(s, [info["unseal_key_b64"]])
    H.wait_active(s)
    s.root_token = info["root_token"]


def wait_log(s, text, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in s.log_text(since_start=True):
            return
        time.sleep(0.1)
    raise AssertionError("no %r in the log:\n%s" % (text, s.log_tail()))


def lookups(s, info):
    """Every fixture token as clients see it: lookup by the root, by accessor, and its
    own lookup-self (not for the token with limited uses: that would spend one)."""
    seen = {}
    for t in info["tokens"]:
        r = s.put("auth/token/lookup", token=info["root_token"], json={"token": t["token"]})
        assert r.status_code == 200, (t["kind"], r.status_code, r.text)
        d = r.json()["data"]
        r = s.put("auth/token/lookup-accessor", token=info["root_token"],
                  json={"accessor": t["accessor"]})
        assert r.status_code == 200, r.text
        by_acc = r.json()["data"]
        assert by_acc["accessor"] == t["accessor"] and by_acc.get("id", "") == ""
        if t["kind"] != "limited-uses":
            r = s.get("auth/token/lookup-self", token=t["token"])
            assert r.status_code == 200, r.text
            assert r.json()["data"]["accessor"] == t["accessor"]
        seen[t["token"]] = d
    return seen


def check_tokens(s, info):
    seen = lookups(s, info)
    for t in info["tokens"]:
        d, want = seen[t["token"]], t["lookup"]
        assert set(d) == set(want), (t["kind"], set(d) ^ set(want))
        for k in want:
            if k in MOVING:
                assert 0 < d[k] <= want[k] + 120, (k, d[k], want[k])
            else:
                assert d[k] == want[k], (t["kind"], k, d[k], want[k])
    return seen


def lease_view(s, info):
    """sys/leases as clients see it: the counts, the token leases listed under
    auth/token/create/, and each one's lookup (less its moving ttl)."""
    root = info["root_token"]
    r = s.get("sys/leases/count?type=all", token=root)
    assert r.status_code == 200, r.text
    count = r.json()["data"]
    r = s.request("LIST", "sys/leases/lookup/auth/token/create/", token=root)
    assert r.status_code == 200, r.text
    ids = sorted(r.json()["data"]["keys"])
    looked = {}
    for i in ids:
        r = s.put("sys/leases/lookup", token=root, json={"lease_id": "auth/token/create/" + i})
        assert r.status_code == 200, r.text
        d = r.json()["data"]
        d.pop("ttl", None)
        looked[i] = d
    return count, ids, looked


def test_upgrade_converts_records(old_store, info, server_factory):
    if not shutil.which("mdb_dump"):
        pytest.skip("mdb_dump (Debian lmdb-utils) is needed to look at the store")
    data_dir = str(old_store / "data")
    before = dump(data_dir)
    old_entries = record_sizes(before, "sys/token/id/")
    old_leases = record_sizes(before, "sys/expire/id/")
    assert len(old_entries) == len(info["tokens"]) + 1  # and the root token
    assert len(old_leases) == info["lease_count"]["lease_count"]
    assert "sys/token/records-v1" not in before
    # The previous release's JSON: every entry is well over 300 bytes of ciphertext.
    assert min(old_entries) > 300

    s = server_factory(start=False, name="old1", extra_config='periodic_interval = "1s"\n')
    assert s.data_dir == data_dir
    open_node(s, info)
    # Clients see the same tokens and leases, whatever the records' form at the moment.
    check_tokens(s, info)
    wait_log(s, "records: conversion to the compact form done")
    count, ids, looked = lease_view(s, info)
    assert count == info["lease_count"]
    assert len(ids) == 12  # tree (1 + 3 + 6), periodic, limited-uses; the orphan elsewhere

    after = dump(data_dir)
    assert "sys/token/records-v1" in after
    assert "sys/token/records-v1-cursor" not in after
    new_entries = record_sizes(after, "sys/token/id/")
    new_leases = record_sizes(after, "sys/expire/id/")
    assert len(new_entries) == len(old_entries) and len(new_leases) == len(old_leases)
    # Compact: every record is a fraction of what it was.
    assert max(new_entries) < 250 < min(old_entries)
    assert max(new_leases) < min(old_leases)
    assert sum(new_entries) * 2 < sum(old_entries)
    assert max(record_sizes(after, "sys/token/accessor/")) < \
        min(record_sizes(before, "sys/token/accessor/"))
    check_tokens(s, info)

    # A restart opens the converted store: the same answers, and no second conversion.
    s.stop()
    open_node(s, info)
    check_tokens(s, info)
    assert lease_view(s, info) == (count, ids, looked)
    time.sleep(2)  # a few periodic runs: they only read the marker
    assert "records: conver" not in s.log_text(since_start=True)
    assert dump(data_dir)["sys/token/records-v1"] == after["sys/token/records-v1"]

    # The converted parent index still drives tree revocation; KV is untouched.
    root = info["root_token"]
    tree = [t for t in info["tokens"] if t["kind"].startswith("tree-")]
    r = s.put("auth/token/revoke", token=root, json={"token": tree[0]["token"]})
    assert r.status_code == 204, r.text
    for t in tree:
        r = s.put("auth/token/lookup", token=root, json={"token": t["token"]})
        assert r.status_code in (400, 403), (t["kind"], r.status_code, r.text)
    key, want = next(iter(info["kv1"].items()))
    r = s.get("kv1/" + key, token=root)
    assert r.status_code == 200 and r.json()["data"] == want
    # New tokens made now are compact from the start, and work.
    r = s.put("auth/token/create", token=root, json={"policies": ["default"], "ttl": "1h"})
    assert r.status_code == 200, r.text
    tok = r.json()["auth"]["client_token"]
    assert s.get("auth/token/lookup-self", token=tok).status_code == 200
