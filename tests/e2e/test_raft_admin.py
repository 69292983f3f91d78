"""Raft membership administration: sys/storage/raft/configuration, remove-peer,
promote/demote, autopilot state and configuration.

Single-node tests run against one initialised server; the cluster tests use
H.Cluster (three nodes joined through retry_join, autopilot stabilization 1s).
"""

import time

import pytest

import custos_harness as H

AP_CONFIG = "sys/storage/raft/autopilot/configuration"
AP_STATE = "sys/storage/raft/autopilot/state"
CONFIG = "sys/storage/raft/configuration"


def req(node, method, path, token, **kw):
    return node.request(method, path, token=token, **kw)


def ok_json(r):
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()["data"]


def assert_400(r, *fragments):
    assert r.status_code == 400, (r.status_code, r.text)
    errs = H.errors_of(r)
    assert errs, r.text
    for f in fragments:
        assert any(f in e for e in errs), (f, errs)


# ---- one node ---------------------------------------------------------------------------

def test_configuration_single_node(unsealed):
    cfg = ok_json(req(unsealed, "GET", CONFIG, unsealed.root_token))["config"]
    assert isinstance(cfg["index"], int) and cfg["index"] >= 1, cfg
    assert cfg["servers"] == [{
        "node_id": unsealed.name,
        "address": unsealed.cluster_addr,
        "leader": True,
        "protocol_version": "3",
        "voter": True,
    }], cfg
    # A token is required, as for every non-public sys path.
    assert unsealed.get(CONFIG).status_code in (400, 403)
    assert req(unsealed, "GET", CONFIG, "hvs.bogus").status_code == 403


def test_autopilot_state_single_node(unsealed):
    st = ok_json(req(unsealed, "GET", AP_STATE, unsealed.root_token))
    assert st["healthy"] is True, st
    assert st["failure_tolerance"] == 0, st
    assert st["optimistic_failure_tolerance"] == 0, st
    assert st["leader"] == unsealed.name, st
    assert st["voters"] == [unsealed.name], st
    assert st["non_voters"] == [], st
    me = st["servers"][unsealed.name]
    assert me["id"] == me["name"] == unsealed.name, me
    assert me["address"] == unsealed.cluster_addr, me
    assert me["status"] == "leader" and me["node_type"] == "voter", me
    assert me["healthy"] is True and me["node_status"] == "alive", me
    assert me["last_contact"] == "0s", me
    assert me["last_index"] >= 1 and me["last_term"] >= 1, me
    assert me["stable_since"].endswith("Z") and me["stable_since"][:2] == "20", me


def test_autopilot_configuration_round_trip(unsealed):
    tok = unsealed.root_token
    assert ok_json(req(unsealed, "GET", AP_CONFIG, tok)) == {
        "cleanup_dead_servers": False,
        "last_contact_threshold": "10s",
        "dead_server_last_contact_threshold": "24h0m0s",
        "max_trailing_logs": 1000,
        "min_quorum": 0,
        "server_stabilization_time": "10s",
    }
    r = req(unsealed, "POST", AP_CONFIG, tok,
            json={"server_stabilization_time": "1s", "max_trailing_logs": 500,
                  "last_contact_threshold": 15})
    assert r.status_code == 204, (r.status_code, r.text)
    got = ok_json(req(unsealed, "GET", AP_CONFIG, tok))
    assert got["server_stabilization_time"] == "1s", got
    assert got["max_trailing_logs"] == 500, got
    assert got["last_contact_threshold"] == "15s", got
    assert got["cleanup_dead_servers"] is False, got

    # Validation: Vault's rules on the effective configuration.
    assert_400(req(unsealed, "POST", AP_CONFIG, tok, json={"cleanup_dead_servers": True}),
               "min_quorum")
    assert_400(req(unsealed, "POST", AP_CONFIG, tok,
                   json={"cleanup_dead_servers": True, "min_quorum": 2}), "min_quorum")
    assert_400(req(unsealed, "POST", AP_CONFIG, tok,
                   json={"cleanup_dead_servers": True, "min_quorum": 3,
                         "dead_server_last_contact_threshold": "30s"}), "1m")
    assert_400(req(unsealed, "POST", AP_CONFIG, tok,
                   json={"server_stabilization_time": "soon"}))
    assert_400(req(unsealed, "POST", AP_CONFIG, tok, json={"min_quorum": -3}))
    # Rejected updates changed nothing.
    assert ok_json(req(unsealed, "GET", AP_CONFIG, tok)) == got

    r = req(unsealed, "POST", AP_CONFIG, tok,
            json={"cleanup_dead_servers": True, "min_quorum": 3,
                  "dead_server_last_contact_threshold": "2m"})
    assert r.status_code == 204, (r.status_code, r.text)
    got2 = ok_json(req(unsealed, "GET", AP_CONFIG, tok))
    assert got2["cleanup_dead_servers"] is True, got2
    assert got2["min_quorum"] == 3, got2
    assert got2["dead_server_last_contact_threshold"] == "2m0s", got2
    assert got2["server_stabilization_time"] == "1s", got2  # earlier fields kept

    # Stored in the replicated state: survives a restart.
    unsealed.restart()
    H.unseal(unsealed, unsealed.keys[:2])
    H.wait_active(unsealed)
    assert ok_json(req(unsealed, "GET", AP_CONFIG, tok)) == got2


def test_membership_errors_single_node(unsealed):
    tok = unsealed.root_token
    for path in ("remove-peer", "promote", "demote"):
        p = "sys/storage/raft/" + path
        assert_400(req(unsealed, "POST", p, tok, json={}), "no server id")
        assert_400(req(unsealed, "POST", p, tok, json={"server_id": "nope"}), "nope")
        assert req(unsealed, "POST", p, "hvs.bogus", json={"server_id": "x"}).status_code == 403
    # The active node cannot remove or demote itself.
    assert_400(req(unsealed, "POST", "sys/storage/raft/remove-peer", tok,
                   json={"server_id": unsealed.name}), "step it down")
    assert_400(req(unsealed, "POST", "sys/storage/raft/demote", tok,
                   json={"server_id": unsealed.name}), "step it down")
    # Promoting a voter is a no-op.
    r = req(unsealed, "POST", "sys/storage/raft/promote", tok, json={"server_id": unsealed.name})
    assert r.status_code == 204, (r.status_code, r.text)
    cfg = ok_json(req(unsealed, "GET", CONFIG, tok))["config"]
    assert [s["voter"] for s in cfg["servers"]] == [True], cfg


# ---- three nodes ------------------------------------------------------------------------

def wait_for(what, fn, timeout=30, interval=0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(interval)
    raise AssertionError("%s within %ss (last: %r)" % (what, timeout, last))


@pytest.fixture
def cluster(cluster_factory):
    return cluster_factory(n=3)


def servers_by_name(cfg):
    return {s["node_id"]: s for s in cfg["servers"]}


@pytest.mark.timeout_s(240)
def test_cluster_voters_and_autopilot_state(cluster):
    c = cluster
    cfg = c.wait_voters(3)
    by = servers_by_name(cfg)
    assert sorted(by) == ["n1", "n2", "n3"], cfg
    leader = c.leader()
    for n in c.nodes:
        s = by[n.name]
        assert s["address"] == n.cluster_addr, s
        assert s["voter"] is True and s["protocol_version"] == "3", s
        assert s["leader"] is (n is leader), s

    def healthy_state():
        st = ok_json(req(leader, "GET", AP_STATE, c.root_token))
        return st if st["healthy"] and st["failure_tolerance"] == 1 else None

    st = wait_for("autopilot healthy with failure tolerance 1", healthy_state)
    assert st["leader"] == leader.name, st
    assert sorted(st["voters"]) == ["n1", "n2", "n3"], st
    assert st["non_voters"] == [], st
    for name, s in st["servers"].items():
        assert s["healthy"] is True, s
        assert s["status"] == ("leader" if name == leader.name else "voter"), s
        assert s["last_index"] > 0, s
    # A standby forwards the reads to the active node: same answer.
    sb = c.standbys()[0]
    assert servers_by_name(ok_json(req(sb, "GET", CONFIG, c.root_token))["config"]) == by
    st2 = ok_json(req(sb, "GET", AP_STATE, c.root_token))
    assert st2["leader"] == leader.name and sorted(st2["voters"]) == ["n1", "n2", "n3"]


@pytest.mark.timeout_s(240)
def test_cluster_remove_peer(cluster):
    c = cluster
    leader = c.leader()
    victim = c.standbys()[0]
    tok = c.root_token
    assert_400(req(leader, "POST", "sys/storage/raft/remove-peer", tok,
                   json={"server_id": "n9"}), "n9")
    assert_400(req(leader, "POST", "sys/storage/raft/remove-peer", tok,
                   json={"server_id": leader.name}), "step it down")

    r = req(leader, "POST", "sys/storage/raft/remove-peer", tok,
            json={"server_id": victim.name})
    assert r.status_code == 204, (r.status_code, r.text)
    # The answer comes after the change: the configuration already shows it.
    cfg = c.configuration(leader)
    assert sorted(servers_by_name(cfg)) == sorted(n.name for n in c.nodes if n is not victim)
    assert all(s["voter"] for s in cfg["servers"]), cfg
    # The removed node learns it (core/raft/removed/<node_id>) and reports 530.
    wait_for("%s answering sys/health 530" % victim.name,
             lambda: c.health(victim) == 530, timeout=20)
    # The rest of the cluster carries on: two voters, no failure tolerance.
    st = wait_for("autopilot state without the removed node", lambda: (lambda s: s if sorted(
        s["voters"]) == sorted(n.name for n in c.nodes if n is not victim) else None)(
        ok_json(req(leader, "GET", AP_STATE, tok))))
    assert st["failure_tolerance"] == 0 and victim.name not in st["servers"], st
    r = req(leader, "POST", "sys/mounts/kvr", tok, json={"type": "kv"})
    assert r.status_code == 204, (r.status_code, r.text)
    # Removing it again: it is no longer a member.
    assert_400(req(leader, "POST", "sys/storage/raft/remove-peer", tok,
                   json={"server_id": victim.name}), victim.name)


@pytest.mark.timeout_s(240)
def test_cluster_demote_promote(cluster):
    c = cluster
    leader = c.leader()
    node = c.standbys()[0]
    tok = c.root_token
    r = req(leader, "POST", "sys/storage/raft/demote", tok, json={"server_id": node.name})
    assert r.status_code == 204, (r.status_code, r.text)
    assert servers_by_name(c.configuration(leader))[node.name]["voter"] is False
    # A demoted node is a permanent non-voter: autopilot (stabilization 1s, update 2s)
    # leaves it alone.
    time.sleep(4.5)
    assert servers_by_name(c.configuration(leader))[node.name]["voter"] is False
    st = ok_json(req(leader, "GET", AP_STATE, tok))
    assert node.name in st["non_voters"], st
    assert st["servers"][node.name]["status"] == "non-voter", st
    assert st["servers"][node.name]["node_type"] == "read-replica", st
    assert st["failure_tolerance"] == 0, st

    r = req(leader, "POST", "sys/storage/raft/promote", tok, json={"server_id": node.name})
    assert r.status_code == 204, (r.status_code, r.text)
    assert servers_by_name(c.configuration(leader))[node.name]["voter"] is True
    wait_for("failure tolerance back to 1", lambda: ok_json(
        req(leader, "GET", AP_STATE, tok))["failure_tolerance"] == 1)


@pytest.mark.timeout_s(240)
def test_cluster_remove_dead_peer_with_hvac(cluster):
    """A stopped node never acknowledges its removal marker: the leader waits at most
    a few seconds for it, then removes it anyway."""
    c = cluster
    leader = c.leader()
    victim = c.standbys()[0]
    c.kill9(victim)
    client = leader.client()
    t0 = time.monotonic()
    client.sys.remove_raft_node(server_id=victim.name)
    took = time.monotonic() - t0
    assert took < 15, took
    cfg = client.sys.read_raft_config()["data"]["config"]
    names = sorted(s["node_id"] for s in cfg["servers"])
    assert names == sorted(n.name for n in c.nodes if n is not victim), cfg
    # The surviving pair still commits writes.
    r = req(leader, "POST", "sys/mounts/kvd", c.root_token, json={"type": "kv"})
    assert r.status_code == 204, (r.status_code, r.text)
