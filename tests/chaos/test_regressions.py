"""Deterministic regression tests for what the campaign found.

Finding 1 (campaign seed 1271119151 round 6, and seed 6 with disk-eio): a KV v2 cas that
is refused with "check-and-set parameter did not match" can be based on a write that was
never committed. The active node answers handler errors at once, without waiting for the
overlay write-sets the request read (storage/txn.h promises that wait only for requests
that commit); when leadership is then lost the overlay is dropped and the write never
happens, so the client saw a version that never existed: not linearizable. Fixed on main
by 242719b (an error derived from a pending write is answered once that write applied);
before the fix this test failed on its first attempt every time.

Finding 3: a voter removed with remove-peer, wiped and joined again under its old node_id
stopped itself as soon as it caught up ("this node was removed from the raft cluster"):
it replayed the removal marker (core/raft/removed/<node_id>) of its earlier incarnation.
Every time, not intermittently: the old reproduction only waited for three voters, and
autopilot promoted the stopped node all the same. Fixed by binding a marker to the log
index it was written at and the rejoined node to the index at which it was admitted
(raft/autopilot.c cs_autopilot_marker_removes).
"""

import os
import shutil
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import chaos_cluster as C  # noqa: E402

H = C.H

needs_bin = pytest.mark.skipif(not os.access(H.BIN, os.X_OK), reason="custos binary not built")
needs_net = pytest.mark.skipif(not C.Net.available()[0], reason="needs root and iptables")


def _attempt(c, net, key):
    leader = c.leader()
    t = c.root_token
    r = leader.request("POST", "reg/data/" + key, token=t, json={"data": {"v": "v1"}})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["version"] == 1
    others = [n.ip for n in c.nodes if n is not leader]
    net.partition([[leader.ip], others])
    pending = {}

    def write():
        try:
            pending["r"] = leader.request("POST", "reg/data/" + key, token=t,
                                          json={"data": {"v": "lost"}}, timeout=15)
        except Exception as e:  # noqa: BLE001 - a timeout is an unknown outcome
            pending["r"] = e

    th = threading.Thread(target=write)
    th.start()
    time.sleep(0.1)  # the write sits in the isolated leader's overlay
    cas = leader.request("POST", "reg/data/" + key, token=t,
                         json={"options": {"cas": 1}, "data": {"v": "cas"}}, timeout=15)
    th.join()
    net.heal()
    c.find_leader(timeout=30)
    c.wait_converged(timeout=30)
    final = c.leader().request("GET", "reg/data/" + key, token=t).json()["data"]
    version = final["metadata"]["version"]
    refused = cas.status_code == 400 and "check-and-set" in cas.text
    return {"cas": (cas.status_code, cas.text[:120]), "final_version": version,
            "final_value": final["data"]["v"], "refused_on_phantom": refused and version == 1}


@needs_bin
@needs_net
def test_cas_refusal_is_never_based_on_an_uncommitted_write(tmp_path):
    c = C.ChaosCluster(tmp_path / "c", n=3, haproxy=False, base=41)
    net = C.Net([n.ip for n in c.nodes])
    try:
        c.start()
        r = c.leader().request("POST", "sys/mounts/reg", token=c.root_token,
                               json={"type": "kv", "options": {"version": "2"}})
        assert r.status_code in (200, 204), r.text
        net.setup()
        seen = []
        for i in range(3):
            res = _attempt(c, net, "k%d" % i)
            seen.append(res)
            # Linearizable: a cas from version 1 may only be refused if version 2 exists.
            assert not res["refused_on_phantom"], seen
    finally:
        net.teardown()
        c.cleanup()



@needs_bin
def test_removed_voter_rejoins_under_its_old_node_id(tmp_path):
    c = C.ChaosCluster(tmp_path / "c", n=3, haproxy=False, base=44)
    try:
        c.start()
        t = c.root_token
        leader = c.leader()
        n = next(m for m in c.nodes if m is not leader)
        deadline = time.monotonic() + 60
        while True:  # a promotion of the cluster's start may still be in progress
            r = leader.request("POST", "sys/storage/raft/remove-peer", token=t,
                               json={"server_id": n.node_id})
            if r.status_code in (200, 204) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert r.status_code in (200, 204), r.text
        n.stop()
        for e in os.listdir(n.data_dir):
            p = os.path.join(n.data_dir, e)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            else:
                os.unlink(p)
        n.start()
        c.unseal_node(n)
        c.wait_voters(3, timeout=60)
        # The node has applied everything, the old removal marker included; it must
        # still be running raft: later writes reach it too.
        c.wait_converged(timeout=60)
        for i in range(3):
            r = leader.request("PUT", "sys/policies/acl/rejoin-%d" % i, token=t,
                               json={"policy": 'path "x/*" { capabilities = ["read"] }'})
            assert r.status_code in (200, 204), r.text
            time.sleep(0.5)  # a few HA ticks (100 ms) for a wrong removal to show
            c.wait_converged(timeout=60)
        assert c.health(n) == 429, n.log_tail()
        assert "this node was removed" not in n.log_text(since_start=True)
    finally:
        c.cleanup()


SHIM = os.path.join(os.path.dirname(os.path.abspath(H.BIN)), "tests", "chaos",
                    "libchaos_disk.so")


@needs_bin
@pytest.mark.skipif(not os.path.exists(SHIM), reason="the disk shim is not built")
def test_active_node_whose_disk_fails_stops_leading(tmp_path):
    """Finding 2 / issue 15: with every fsync, fdatasync, msync and raft log write of the
    active node failing with EIO, that node must stop being the active node, another node
    takes over, and nothing the failing node answered is lost. Both ways out occur
    (finding 5): an abort on the failed append within a fraction of a second, or, when
    the writes hang instead of failing, the 20 s no-progress watchdog."""
    c = C.ChaosCluster(tmp_path / "c", n=3, haproxy=False, base=47)
    for n in c.nodes:
        n.preload = [SHIM]
        n.env["CHAOS_CTL"] = n.ctl
    try:
        c.start()
        t = c.root_token
        leader = c.leader()
        r = leader.request("POST", "sys/mounts/app", token=t,
                           json={"type": "kv", "options": {"version": "1"}})
        assert r.status_code in (200, 204), r.text
        leader.disk(eio=True)
        # A write on the failing node: it must not be acknowledged unless it is durable
        # on a majority (then it must survive).
        answered = {}

        def write():
            try:
                answered["r"] = leader.request("PUT", "app/eio", token=t, json={"v": "1"},
                                               timeout=40)
            except Exception as e:  # noqa: BLE001 - an unknown outcome
                answered["r"] = e

        th = threading.Thread(target=write)
        th.start()
        deadline = time.monotonic() + 90  # watchdog 20 s + election, on a loaded machine
        new = None
        while time.monotonic() < deadline:
            if not (leader.running() and c.health(leader) == 200):
                new = c.find_leader(timeout=1)
                if new is not None and new is not leader:
                    break
            time.sleep(0.2)
        th.join()
        assert new is not None and new is not leader, (
            "the node with the failing disk is still active:\n" + leader.log_tail(30))
        # Fail-stop: the failing node is no longer active (stopped, or a follower).
        assert not leader.running() or c.health(leader) != 200
        res = answered["r"]
        if getattr(res, "status_code", None) in (200, 204):
            got = new.request("GET", "app/eio", token=t)
            assert got.status_code == 200 and got.json()["data"]["v"] == "1", got.text
        # The cluster still takes writes.
        r = new.request("PUT", "app/after", token=t, json={"v": "2"})
        assert r.status_code in (200, 204), r.text
    finally:
        for n in c.nodes:
            n.disk()
        c.cleanup()
