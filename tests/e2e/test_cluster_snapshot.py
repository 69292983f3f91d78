"""Snapshots on 3-node clusters: saved through a standby (forwarded and streamed, never a
307), restored through the load balancer, and restored with snapshot-force into a freshly
initialised cluster, which then seals on every node and comes back with the source
cluster's keys, data and root token."""

import time

import pytest
import requests

import custos_harness as H
from test_snapshot import SEAL_MISMATCH, check_archive


def fill(c, prefix, n):
    leader = c.leader()
    w = H.Writer(leader.url, c.root_token, leader.verify)
    try:
        for i in range(n):
            k = "%s%03d" % (prefix, i)
            r = w.put("kv/" + k, {"v": k})
            assert r.status_code == 204, r.text
    finally:
        w.close()


def read(node, token, key):
    r = node.get("kv/" + key, token=token)
    return r.json()["data"]["v"] if r.status_code == 200 else r.status_code


def post_snapshot(c, data, force):
    """Through haproxy when it runs, else through a standby (forwarded to the active)."""
    path = "/v1/sys/storage/raft/snapshot" + ("-force" if force else "")
    if c.haproxy_url:
        return requests.post(c.haproxy_url + path, data=data,
                             headers={"X-Vault-Token": c.root_token}, timeout=60)
    return c.standbys()[0].request("POST", path[4:], token=c.root_token, data=data, timeout=60)


def wait_settled(c, timeout=30):
    """One active node and standbys everywhere else, twice in a row 1 s apart."""
    deadline = time.monotonic() + timeout
    last, codes = None, None
    while time.monotonic() < deadline:
        codes = tuple(c.health(s) for s in c.nodes)
        settled = codes.count(200) == 1 and codes.count(429) == len(c.nodes) - 1
        if settled and codes == last:
            return c.leader()
        last = codes if settled else None
        time.sleep(1.0)
    raise AssertionError("cluster did not settle: sys/health %s" % (codes,))


def wait_sealed_everywhere(c, timeout=30):
    deadline = time.monotonic() + timeout
    st = {}
    while time.monotonic() < deadline:
        st = {s.name: c.seal_status(s).get("sealed") for s in c.nodes}
        if all(st.values()):
            return
        time.sleep(0.1)
    raise AssertionError("not every node sealed after the forced restore: %s" % st)


@pytest.mark.timeout_s(300)
def test_snapshot_via_standby_and_force_restore_into_new_cluster(cluster_factory):
    haproxy = bool(H.haproxy_bin())
    a = cluster_factory(n=3)
    H.enable_kv(a.leader(), "kv", a.root_token)
    fill(a, "a", 40)

    # Saved through a standby: forwarded to the active node and streamed back.
    standby = a.standbys()[0]
    r = standby.request("GET", "sys/storage/raft/snapshot", token=a.root_token, timeout=60)
    assert r.status_code == 200, r.text[:300]
    assert r.headers["Content-Type"] == "application/gzip"
    check_archive(r.content)
    snap = r.content

    b = cluster_factory(n=3, haproxy=haproxy)
    H.enable_kv(b.leader(), "kv", b.root_token)
    fill(b, "b", 5)

    # Without -force the other cluster's seal is detected and nothing changes.
    r = post_snapshot(b, snap, force=False)
    assert r.status_code == 400 and SEAL_MISMATCH in r.json()["errors"][0], r.text
    assert read(b.leader(), b.root_token, "b000") == "b000"

    # A corrupted archive is refused before anything changes.
    bad = bytearray(snap)
    bad[len(bad) // 2] ^= 0xFF
    r = post_snapshot(b, bytes(bad), force=True)
    assert r.status_code == 400, r.text
    assert read(b.leader(), b.root_token, "b000") == "b000"

    # Forced: every node of B applies A's state, cannot open it with B's keys, seals.
    r = post_snapshot(b, snap, force=True)
    assert r.status_code == 204, r.text
    wait_sealed_everywhere(b)

    # A's keys unseal B's nodes; raft restarts with A's cluster CA from the snapshot.
    b_root = b.root_token
    b.keys, b.root_token = a.keys, a.root_token
    for s in b.nodes:
        b.unseal_node(s)
    # A node unsealed while it still led with B's CA restarts raft with A's: let the
    # cluster settle on one leader that every replica follows.
    b.wait_converged()
    leader = wait_settled(b)
    for key in ("a000", "a020", "a039"):
        assert read(leader, a.root_token, key) == key
    assert read(leader, a.root_token, "b000") == 404
    # B's old root token went with B's token store.
    assert leader.get("kv/a000", token=b_root).status_code == 403
    # Writes replicate again and every replica agrees.
    w = H.Writer(leader.url, a.root_token, leader.verify)
    try:
        r = w.put("kv/after", {"v": "after"})
        assert r.status_code == 204, r.text
    finally:
        w.close()
    b.wait_converged()
    for s in b.nodes:
        assert read(s, a.root_token, "after") == "after"


@pytest.mark.timeout_s(240)
def test_upload_through_standby_is_relayed_not_stored(cluster_factory):
    """Security issue 9, item 1.4: a standby passes an upload through to the active
    node as it arrives (no spool file of its own); the active node's answer to a
    caller without sudo comes back right after the headers."""
    import socket
    from test_snapshot import spool_fds, upload_head, read_response, closed_by_server, \
        TEN_GIB
    c = cluster_factory(n=3)
    H.enable_kv(c.leader(), "kv", c.root_token)
    fill(c, "k", 10)
    standby = c.standbys()[0]
    leader = c.leader()
    snap = leader.get("sys/storage/raft/snapshot", token=c.root_token, timeout=60).content
    weak = leader.client(c.root_token).auth.token.create(
        policies=["default"])["auth"]["client_token"]

    for token in (None, weak):
        s = socket.create_connection(("127.0.0.1", standby.port), timeout=30)
        s.sendall(upload_head("sys/storage/raft/snapshot-force", TEN_GIB, token) + b"x" * 100)
        status, body = read_response(s)
        assert status in (400, 403), body
        assert "permission denied" in body.decode()
        assert closed_by_server(s)
        s.close()
        assert spool_fds(standby) == [] and spool_fds(leader) == []

    # A real restore through the standby: relayed while it arrives, applied by the
    # active node; the standby never opens a spool file for it.
    half = len(snap) // 2
    s = socket.create_connection(("127.0.0.1", standby.port), timeout=60)
    s.sendall(upload_head("sys/storage/raft/snapshot", len(snap), c.root_token) + snap[:half])
    deadline = time.monotonic() + 20
    while not spool_fds(leader) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(spool_fds(leader)) == 1  # the active node stores it ...
    assert spool_fds(standby) == []      # ... the standby does not
    s.sendall(snap[half:])
    status, body = read_response(s)
    s.close()
    assert status == 204, body
    assert "relaying the upload" in standby.log_text()
    assert read(c.leader(), c.root_token, "k003") == "k003"
