"""Multi-node custos on 127.0.0.1: formation with retry_join, request forwarding from
standbys, failover after kill -9 of the active node, catch-up of a node that missed
thousands of writes, step-down under load, and lost-quorum recovery with peers.json.

Most tests share one 3-node cluster (module scope, haproxy in front when haproxy is
installed); each test leaves it whole again (all three nodes running and unsealed).
Replicas are compared with sys/storage/raft/digest: equal applied index and equal digest
of the applied entries on every node (Cluster.wait_converged)."""

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import custos_harness as H


@pytest.fixture(scope="module")
def c3(tmp_path_factory):
    c = H.Cluster(tmp_path_factory.mktemp("c3"), n=3, haproxy=bool(H.haproxy_bin()))
    try:
        c.start()
        H.enable_kv(c.leader(), "kv", c.root_token)
        yield c
    finally:
        c.cleanup()


def whole(c):
    """Restart (and unseal) any member a failed test left down, then wait for replicas to
    agree: the next test starts from a complete cluster."""
    for s in c.nodes:
        if not s.running():
            c.restart(s)
        elif c.health(s) == 503:
            c.unseal_node(s)
    c.wait_converged()
    return c.leader()


def put_many(url, token, keys, threads=8, verify=True, prefix="kv/"):
    """PUT {"v": key} at prefix+key for every key, over `threads` keep-alive sessions.
    Returns the list of (key, error) that failed."""
    failures = []
    lock = threading.Lock()
    chunks = [keys[i::threads] for i in range(threads)]

    def work(chunk):
        w = H.Writer(url, token, verify)
        try:
            for k in chunk:
                try:
                    r = w.put(prefix + k, {"v": k})
                    if r.status_code != 204:
                        with lock:
                            failures.append((k, "%s %s" % (r.status_code, r.text[:200])))
                except requests.RequestException as e:
                    with lock:
                        failures.append((k, repr(e)))
        finally:
            w.close()

    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(work, chunks))
    return failures


def list_keys(node, token, path="kv/"):
    r = node.request("LIST", path, token=token)
    if r.status_code == 404:
        return []
    assert r.status_code == 200, "LIST %s: %s %s" % (path, r.status_code, r.text)
    return r.json()["data"]["keys"]


# ---- formation ----------------------------------------------------------------------------
def check_roles(c, n):
    cfg = c.wait_voters(n)
    servers = cfg["servers"]
    assert sorted(x["node_id"] for x in servers) == sorted(s.name for s in c.nodes), cfg
    assert sum(1 for x in servers if x["leader"]) == 1, cfg
    by_id = {x["node_id"]: x for x in servers}
    for s in c.nodes:
        assert by_id[s.name]["address"] == s.cluster_addr, cfg

    leader = c.leader()
    codes = {s.name: c.health(s) for s in c.nodes}
    assert sorted(codes.values()) == [200] + [429] * (n - 1), codes
    assert by_id[leader.name]["leader"], (leader.name, cfg)

    for s in c.nodes:
        st = c.seal_status(s)
        assert st["initialized"] and not st["sealed"], (s.name, st)
        assert (st["t"], st["n"]) == (c.threshold, c.shares), (s.name, st)
        r = s.get("sys/leader")
        assert r.status_code == 200, r.text
        ld = r.json()
        assert ld["ha_enabled"] is True, ld
        assert ld["leader_address"] == leader.url, (s.name, ld)
        assert ld["is_self"] is (s is leader), (s.name, ld)
        assert ld["raft_committed_index"] > 0 and ld["raft_applied_index"] > 0, ld
    return leader


@pytest.mark.timeout_s(150)
def test_three_node_formation(c3):
    leader = check_roles(c3, 3)
    # ha-status lists the active node and the standbys that have reported to it.
    deadline = time.monotonic() + 20
    nodes = None
    while time.monotonic() < deadline:
        r = c3.nodes[-1].get("sys/ha-status", token=c3.root_token)
        assert r.status_code == 200, r.text
        nodes = r.json().get("nodes") or r.json().get("data", {}).get("nodes")
        if nodes and len(nodes) == 3:
            break
        time.sleep(0.5)
    assert nodes and len(nodes) == 3, nodes
    active = [x for x in nodes if x.get("active_node")]
    assert len(active) == 1 and active[0]["api_address"] == leader.url, nodes
    c3.wait_converged()


@pytest.mark.timeout_s(120)
def test_write_to_standby_is_forwarded(c3):
    leader = whole(c3)
    standbys = c3.standbys()
    assert len(standbys) == 2, [c3.health(s) for s in c3.nodes]
    key = "fwd-" + H.uid()[:8]
    w = H.Writer(standbys[0].url, c3.root_token)
    r = w.put("kv/" + key, {"v": "through-standby"})
    # Forwarded and relayed verbatim: the standby answers the active node's 204 itself.
    assert r.status_code == 204, (r.status_code, r.headers, r.text)
    assert "Location" not in r.headers
    w.close()
    for s in c3.nodes:
        r = s.get("kv/" + key, token=c3.root_token, allow_redirects=False)
        assert r.status_code == 200, (s.name, r.status_code, r.text)
        assert r.json()["data"] == {"v": "through-standby"}, (s.name, r.json())
    # Errors are relayed too: a missing token on a standby is the active node's 403.
    r = standbys[1].get("kv/" + key, allow_redirects=False)
    assert r.status_code == 403, (r.status_code, r.text)
    assert H.errors_of(r)
    # A delete sent to the other standby removes it everywhere.
    r = standbys[1].request("DELETE", "kv/" + key, token=c3.root_token, allow_redirects=False)
    assert r.status_code == 204, (r.status_code, r.text)
    for s in c3.nodes:
        assert s.get("kv/" + key, token=c3.root_token).status_code == 404
    c3.wait_converged()
    assert c3.leader() is leader


@pytest.mark.timeout_s(200)
def test_five_node_formation(cluster_factory):
    c = cluster_factory(n=5)
    check_roles(c, 5)
    H.enable_kv(c.standbys()[0], "kv", c.root_token)
    for s in c.standbys():
        r = H.Writer(s.url, c.root_token).put("kv/from-" + s.name, {"v": s.name})
        assert r.status_code == 204, (s.name, r.status_code, r.text)
    assert sorted(list_keys(c.leader(), c.root_token)) == sorted(
        "from-" + s.name for s in c.standbys())
    c.wait_converged()


# ---- failures -----------------------------------------------------------------------------
@pytest.mark.timeout_s(180)
def test_leader_kill9_failover_and_rejoin(c3):
    old = whole(c3)
    tag = H.uid()[:6]
    before = ["before-%s-%03d" % (tag, i) for i in range(50)]
    assert put_many(old.url, c3.root_token, before, threads=4) == []
    c3.wait_converged()

    t0 = time.monotonic()
    c3.kill9(old)
    new = c3.leader(timeout=15, exclude=[old])
    elapsed = time.monotonic() - t0
    assert new is not old
    print("new active node %s after %.2f s" % (new.name, elapsed))

    # Writes continue, to the new active node and through the remaining standby.
    after = ["after-%s-%03d" % (tag, i) for i in range(50)]
    assert put_many(new.url, c3.root_token, after[:25], threads=4) == []
    other = next(s for s in c3.nodes if s is not old and s is not new)
    assert put_many(other.url, c3.root_token, after[25:], threads=4) == []

    # The old leader comes back as a standby and catches up.
    c3.restart(old)
    deadline = time.monotonic() + 15
    while c3.health(old) != 429 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert c3.health(old) == 429, "restarted node is not a standby"
    assert c3.leader() is new
    ds = c3.wait_converged()
    assert len(ds) == 3
    keys = set(list_keys(new, c3.root_token))
    assert set(before + after) <= keys
    r = old.get("kv/" + after[-1], token=c3.root_token)
    assert r.status_code == 200 and r.json()["data"] == {"v": after[-1]}


@pytest.mark.timeout_s(240)
def test_stopped_node_catches_up_after_many_writes(c3):
    leader = whole(c3)
    lagger = c3.standbys()[0]
    behind = c3.digest(lagger)["applied_index"]
    lagger.stop()

    tag = H.uid()[:6]
    keys = ["lag-%s-%04d" % (tag, i) for i in range(3000)]
    assert put_many(leader.url, c3.root_token, keys, threads=8) == []
    head = c3.digest(leader)["applied_index"]
    assert head > behind  # (group commit may pack several writes into one entry)

    c3.restart(lagger)
    ds = c3.wait_converged(timeout=90)
    assert ds[lagger.name]["applied_index"] >= head
    # The log was compacted past the lagger's index, so it was sent a snapshot; the data
    # is what matters (digests above), the log line only documents how it got there.
    log = lagger.log_text(since_start=True).lower()
    print("snapshot mentioned in the lagger's log: %s" % ("snapshot" in log))
    for k in (keys[0], keys[1500], keys[-1]):
        r = lagger.get("kv/" + k, token=c3.root_token)
        assert r.status_code == 200 and r.json()["data"] == {"v": k}, (k, r.text)


@pytest.mark.timeout_s(180)
def test_step_down_under_load(c3):
    old = whole(c3)
    stop = threading.Event()
    acked, failures = [], []
    lock = threading.Lock()
    tag = H.uid()[:6]

    def writer(wid, urls, verify):
        ws = [H.Writer(u, c3.root_token, verify) for u in urls]
        i = 0
        try:
            while not stop.is_set():
                k = "sd-%s-%d-%05d" % (tag, wid, i)
                w = ws[i % len(ws)]
                i += 1
                try:
                    r = w.put("kv/" + k, {"v": k})
                    ok = r.status_code == 204
                    err = None if ok else "%s %s" % (r.status_code, r.text[:200])
                except requests.RequestException as e:
                    ok, err = False, repr(e)
                with lock:
                    (acked.append(k) if ok else failures.append((w.url, k, err)))
        finally:
            for w in ws:
                w.close()

    targets = [[s.url for s in c3.nodes]] * 2
    if c3.haproxy_url:
        targets += [[c3.haproxy_url]] * 2
    threads = [threading.Thread(target=writer, args=(i, t, True), daemon=True)
               for i, t in enumerate(targets)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        r = old.put("sys/step-down", token=c3.root_token)
        assert r.status_code == 204, (r.status_code, r.text)
        new = c3.leader(timeout=15, exclude=[old])
        assert new is not old
        time.sleep(2.0)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert failures == [], "%d of %d writes failed during step-down, first: %s" % (
        len(failures), len(failures) + len(acked), failures[:5])
    assert len(acked) > 20, len(acked)
    assert set(acked) <= set(list_keys(c3.leader(), c3.root_token))
    c3.wait_converged()


@pytest.mark.timeout_s(200)
def test_peers_json_recovers_lost_quorum(cluster_factory):
    c = cluster_factory(n=3)
    leader = c.leader()
    H.enable_kv(leader, "kv", c.root_token)
    keys = ["pj-%03d" % i for i in range(100)]
    assert put_many(leader.url, c.root_token, keys, threads=4) == []
    c.wait_converged()

    n1, n2, n3 = c.nodes
    c.kill9(n2)
    c.kill9(n3)
    n1.stop()
    peers = os.path.join(n1.data_dir, "raft", "peers.json")
    os.makedirs(os.path.dirname(peers), exist_ok=True)
    with open(peers, "w") as f:
        json.dump([{"id": "n1", "address": n1.cluster_addr, "non_voter": False}], f)

    n1.start()
    c.unseal_node(n1)
    H.wait_active(n1, timeout=20)
    assert not os.path.exists(peers), "peers.json was not consumed"
    cfg = c.configuration(n1)
    assert [(x["node_id"], x["voter"]) for x in cfg["servers"]] == [("n1", True)], cfg
    assert sorted(list_keys(n1, c.root_token)) == sorted(keys)
    r = n1.get("kv/" + keys[-1], token=c.root_token)
    assert r.status_code == 200 and r.json()["data"] == {"v": keys[-1]}
    # and it takes writes alone
    r = H.Writer(n1.url, c.root_token).put("kv/after-recovery", {"v": "1"})
    assert r.status_code == 204, r.text
