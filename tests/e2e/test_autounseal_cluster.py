"""A 3-node cluster whose nodes unseal from a fourth custos's transit key: joiners answer
the join challenge with the seal, kill -9 of every node brings all back unsealed with no
operator, and with the seal server away restarted nodes stay sealed until it returns."""

import pytest

import custos_harness as H
from autounseal_common import SealServer, init_recovery, seal_status, wait_log, wait_unsealed


@pytest.fixture
def sealed_cluster(tmp_path):
    seal = SealServer(tmp_path).start()
    c = H.Cluster(tmp_path / "cluster", n=3)
    for s in c.nodes:
        s.extra_config = seal.stanza()
    yield seal, c
    c.cleanup()
    seal.server.cleanup()


def form(seal, c):
    for s in c.nodes:
        s.start()
    n1 = c.nodes[0]
    init_recovery(n1)
    c.root_token = n1.root_token
    for s in c.nodes:
        s.root_token = c.root_token
    wait_unsealed(n1)
    H.wait_active(n1)
    c.set_autopilot(server_stabilization_time="1s")
    # No operator: retry_join fetches the challenge, the seal unwraps the key.
    for s in c.nodes[1:]:
        wait_unsealed(s)
    c.wait_voters(3)


@pytest.mark.timeout_s(420)
def test_cluster_unseals_itself(sealed_cluster):
    seal, c = sealed_cluster
    form(seal, c)
    leader = c.leader()
    H.enable_kv(leader, token=c.root_token)
    assert leader.put("kv/x", token=c.root_token, json={"v": "before"}).status_code == 204
    for s in c.nodes:
        assert seal_status(s)["type"] == "transit"

    # kill -9 every node, start them again: all unseal from the seal, no keys given.
    for s in c.nodes:
        s.kill9()
    for s in c.nodes:
        s.start()
    for s in c.nodes:
        wait_unsealed(s)
    leader = c.leader(timeout=60)
    c.wait_voters(3)
    assert leader.get("kv/x", token=c.root_token).json()["data"] == {"v": "before"}
    assert leader.put("kv/x", token=c.root_token, json={"v": "after"}).status_code == 204

    # The seal server goes away: restarted nodes stay sealed, and unseal when it returns.
    seal.stop()
    for s in c.nodes:
        s.kill9()
    for s in c.nodes:
        s.start()
    for s in c.nodes:
        wait_log(s, "the node stays sealed and retries")
        assert seal_status(s)["sealed"] is True
    seal.resume()
    for s in c.nodes:
        wait_unsealed(s)
    leader = c.leader(timeout=60)
    assert leader.get("kv/x", token=c.root_token).json()["data"] == {"v": "after"}
    for s in c.nodes:
        assert seal.token not in s.log_text()
