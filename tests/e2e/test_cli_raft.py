"""`custos operator raft ...` and `custos operator step-down` against a real 3-node TLS
cluster: list-peers, autopilot state/get-config/set-config, join of a fresh node with
-leader-ca-cert=@file then remove-peer, step-down through a standby, snapshot save /
restore (/ inspect when built), with Vault's output shapes and exit codes."""

import gzip
import io
import os
import tarfile
import time

import pytest

import custos_harness as H


@pytest.fixture(scope="module")
def tc(tmp_path_factory):
    c = H.Cluster(tmp_path_factory.mktemp("clicluster"), n=3, tls=True)
    try:
        c.start()
        H.enable_kv(c.leader(), "kv", c.root_token)
        yield c
    finally:
        c.cleanup()


def cli(c, *args, node=None, token=True, env=None):
    node = node or c.leader()
    e = {"VAULT_ADDR": node.url, "VAULT_CACERT": c.tls[0], "HOME": c.workdir}
    if token:
        e["VAULT_TOKEN"] = c.root_token
    e.update(env or {})
    return H.run_cli(list(args), env=e, timeout=60)


def ok(p):
    assert p.returncode == 0, "exit %s\nstdout: %s\nstderr: %s" % (p.returncode, p.stdout, p.stderr)
    return p


def fails(p, code=2):
    assert p.returncode == code, "exit %s (want %s)\nstdout: %s\nstderr: %s" % (
        p.returncode, code, p.stdout, p.stderr)
    return p


def table_rows(text):
    """Rows of a Vault table below its dashed header line, split on whitespace."""
    lines = text.strip().splitlines()
    assert len(lines) >= 2 and set(lines[1].replace(" ", "")) == {"-"}, text
    return [l.split() for l in lines[2:]]


@pytest.mark.timeout_s(150)
def test_list_peers(tc):
    leader = tc.leader()
    p = ok(cli(tc, "operator", "raft", "list-peers", node=tc.standbys()[0]))
    assert p.stdout.splitlines()[0].split() == ["Node", "Address", "State", "Voter"], p.stdout
    rows = {r[0]: r for r in table_rows(p.stdout)}
    assert sorted(rows) == ["n1", "n2", "n3"], p.stdout
    for s in tc.nodes:
        assert rows[s.name][1] == s.cluster_addr
        assert rows[s.name][2] == ("leader" if s is leader else "follower")
        assert rows[s.name][3] == "true"

    got = H.json_or_fail(ok(cli(tc, "operator", "raft", "list-peers", "-format=json")).stdout)
    servers = got["data"]["config"]["servers"]
    assert sorted(x["node_id"] for x in servers) == ["n1", "n2", "n3"], got
    fails(cli(tc, "operator", "raft", "list-peers", "extra"), 1)
    p = fails(cli(tc, "operator", "raft", "list-peers", token=False))
    assert "Error reading the raft cluster configuration" in p.stderr, p.stderr


@pytest.mark.timeout_s(60)
def test_autopilot_config_and_state(tc):
    ok(cli(tc, "operator", "raft", "autopilot", "set-config", "-server-stabilization-time=3s",
           "-max-trailing-logs=500"))
    p = ok(cli(tc, "operator", "raft", "autopilot", "get-config"))
    rows = {" ".join(r[:-1]): r[-1] for r in table_rows(p.stdout)}
    assert rows["Server Stabilization Time"] == "3s", p.stdout
    assert rows["Max Trailing Logs"] == "500", p.stdout
    assert rows["Cleanup Dead Servers"] == "false", p.stdout
    assert rows["Dead Server Last Contact Threshold"] == "24h0m0s", p.stdout
    got = H.json_or_fail(ok(cli(tc, "operator", "raft", "autopilot", "get-config",
                                "-format=json")).stdout)
    assert got["server_stabilization_time"] == "3s" and got["max_trailing_logs"] == 500, got
    # the server validates (with cleanup on, the dead-server threshold has a 1m minimum):
    # an API error, exit 2
    p = fails(cli(tc, "operator", "raft", "autopilot", "set-config", "-cleanup-dead-servers",
                  "-min-quorum=3", "-dead-server-last-contact-threshold=10s"))
    assert "Code: 400" in p.stderr, p.stderr
    fails(cli(tc, "operator", "raft", "autopilot", "set-config", "-max-trailing-logs=x"), 1)
    ok(cli(tc, "operator", "raft", "autopilot", "set-config", "-server-stabilization-time=1s",
           "-max-trailing-logs=1000"))

    p = ok(cli(tc, "operator", "raft", "autopilot", "state"))
    assert p.stdout.startswith("Healthy:"), p.stdout
    assert "Failure Tolerance:               1" in p.stdout, p.stdout
    assert "Leader:                          %s" % tc.leader().name in p.stdout, p.stdout
    for s in tc.nodes:
        assert "\n   %s\n      Name:" % s.name in p.stdout, p.stdout
    got = H.json_or_fail(ok(cli(tc, "operator", "raft", "autopilot", "state",
                                "-format=json")).stdout)
    assert got["Healthy"] is True and got["FailureTolerance"] == 1, got
    assert sorted(got["Servers"]) == ["n1", "n2", "n3"], got
    assert sorted(got["Voters"]) == ["n1", "n2", "n3"], got


@pytest.mark.timeout_s(150)
def test_join_then_remove_peer(tc, tmp_path):
    spare = H.Server(tmp_path / "n4", name="n4", tls=tc.tls)
    try:
        spare.start()
        spare.keys, spare.root_token = tc.keys, tc.root_token
        leader = tc.leader()
        p = ok(cli(tc, "operator", "raft", "join", "-leader-ca-cert=@" + tc.tls[0], leader.url,
                   node=spare, token=False))
        assert table_rows(p.stdout) == [["Joined", "true"]], p.stdout
        tc.nodes.append(spare)  # so the cluster helpers see it while it is a member
        try:
            tc.unseal_node(spare)
            tc.wait_voters(4)
            p = ok(cli(tc, "operator", "raft", "list-peers"))
            assert "n4" in [r[0] for r in table_rows(p.stdout)], p.stdout

            p = ok(cli(tc, "operator", "raft", "remove-peer", "n4"))
            assert p.stdout.strip() == "Peer removed successfully!", p.stdout
        finally:
            tc.nodes.remove(spare)
        tc.wait_voters(3)
        deadline = time.monotonic() + 15
        while tc.health(spare) != 530 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert tc.health(spare) == 530, "removed node's sys/health: %s" % tc.health(spare)
    finally:
        spare.cleanup()
    p = fails(cli(tc, "operator", "raft", "remove-peer", "no-such-node"))
    assert "Error removing the peer from raft cluster" in p.stderr, p.stderr
    fails(cli(tc, "operator", "raft", "remove-peer"), 1)
    p = fails(cli(tc, "operator", "raft", "join", "-leader-ca-cert=@/nonexistent", "x"), 1)
    assert "Failed to parse leader CA certificate" in p.stderr


@pytest.mark.timeout_s(90)
def test_step_down_via_standby(tc):
    old = tc.leader()
    standby = tc.standbys()[0]
    p = ok(cli(tc, "operator", "step-down", node=standby))
    assert p.stdout.strip() == "Success! Stepped down: %s" % standby.url, p.stdout
    new = tc.leader(timeout=15, exclude=[old])
    assert new is not old
    deadline = time.monotonic() + 15
    while tc.health(old) != 429 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert tc.health(old) == 429
    p = fails(cli(tc, "operator", "step-down", token=False))
    assert "Error stepping down" in p.stderr, p.stderr


def snapshot_members(path):
    with open(path, "rb") as f:
        raw = f.read()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(raw))) as t:
        return {m.name: m.size for m in t.getmembers()}


@pytest.mark.timeout_s(120)
def test_snapshot_save_restore(tc, tmp_path):
    leader = tc.leader()
    w = H.Writer(leader.url, tc.root_token, tc.tls[0])
    assert w.put("kv/snap-before", {"v": "1"}).status_code == 204
    snap = str(tmp_path / "raft.snap")
    ok(cli(tc, "operator", "raft", "snapshot", "save", snap, node=tc.standbys()[0]))
    assert os.stat(snap).st_mode & 0o777 == 0o600
    members = snapshot_members(snap)
    for m in ("meta.json", "state.bin", "SHA256SUMS", "SHA256SUMS.sealed"):
        assert members.get(m, 0) > 0, members
    assert not [f for f in os.listdir(str(tmp_path)) if ".tmp-" in f]

    assert w.put("kv/snap-after", {"v": "2"}).status_code == 204
    ok(cli(tc, "operator", "raft", "snapshot", "restore", snap))
    leader = tc.leader()
    w = H.Writer(leader.url, tc.root_token, tc.tls[0])
    assert w.get("kv/snap-before").status_code == 200
    assert w.get("kv/snap-after").status_code == 404
    tc.wait_converged()

    bad = str(tmp_path / "bad.snap")
    with open(bad, "wb") as f:
        f.write(b"not a snapshot")
    p = fails(cli(tc, "operator", "raft", "snapshot", "restore", bad))
    assert "Error installing the snapshot" in p.stderr and "Code: 400" in p.stderr, p.stderr
    p = fails(cli(tc, "operator", "raft", "snapshot", "restore", str(tmp_path / "missing")))
    assert "Error opening snapshot file" in p.stderr
    p = fails(cli(tc, "operator", "raft", "snapshot", "save", str(tmp_path / "x.snap"),
                  token=False))
    assert "Error taking the snapshot" in p.stderr
    assert not os.path.exists(str(tmp_path / "x.snap"))

    # Always built (raft/snapshot.c): -h answers with its usage.
    assert "snapshot inspect" in ok(cli(tc, "operator", "raft", "snapshot", "inspect", "-h")).stdout
    got = H.json_or_fail(ok(cli(tc, "operator", "raft", "snapshot", "inspect",
                                "-format=json", snap, env={"VAULT_ADDR": "http://127.0.0.1:1"})
                            ).stdout)
    assert got["Meta"]["Index"] > 0 and got["Meta"]["Version"] == 1, got
    assert got["TotalCountKV"] == sum(x["Count"] for x in got["StatsKV"]) > 0, got
    assert "core/" in [x["Name"] for x in got["StatsKV"]], got
    p = ok(cli(tc, "operator", "raft", "snapshot", "inspect", snap))
    lines = [l.split() for l in p.stdout.splitlines()]
    assert lines[0][0] == "ID" and ["Index", str(got["Meta"]["Index"])] in lines, p.stdout
    assert ["Key", "Name", "Count"] in lines, p.stdout
    fails(cli(tc, "operator", "raft", "snapshot", "inspect", bad), 1)
