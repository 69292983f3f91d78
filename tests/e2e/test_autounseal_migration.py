"""Seal migration with Vault's procedure on a single node: change the config (the old
seal stanza marked disabled = "true", or absent when leaving Shamir), restart, then
`custos operator unseal -migrate` with the keys the old seal asks for. The chain
shamir -> transit -> pkcs11 -> shamir keeps the data and the operators' keys: unseal keys
become recovery keys and back."""

import base64
import os
import time

import pytest

import custos_harness as H
from autounseal_common import (SealServer, generate_root, pkcs11_stanza, seal_status,
                               softhsm_available, softhsm_token, wait_log, wait_unsealed)


@pytest.fixture
def seal(tmp_path):
    s = SealServer(tmp_path).start()
    yield s
    s.server.cleanup()


def restart_with(node, config):
    node.stop()
    node.extra_config = config
    node.start()


def migrate(node, keys, want_type, cli=False):
    st = seal_status(node)
    assert st["migration"] is True and st["sealed"] is True, st
    # Without -migrate the keys are refused while a migration is pending.
    r = node.put("sys/unseal", json={"key": keys[0]})
    assert r.status_code == 400 and "migrat" in r.text, r.text
    for k in keys:
        if cli:
            out = H.run_cli(["operator", "unseal", "-migrate", "-format=json", k],
                            env={"VAULT_ADDR": node.url})
            assert out.returncode == 0, out.stderr + out.stdout
        else:
            r = node.put("sys/unseal", json={"key": k, "migrate": True})
            assert r.status_code == 200, r.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        st = seal_status(node)
        if st["type"] == want_type and not st["migration"] and not st["sealed"]:
            return st
        time.sleep(0.1)
    raise AssertionError("migration to %s did not finish: %s\n%s"
                         % (want_type, st, node.log_tail()))


def check_data(node):
    H.wait_active(node)
    assert node.get("kv/m", token=node.root_token).json()["data"] == {"v": "kept"}


def shamir_to_transit(tmp_path, seal):
    n = H.Server(os.path.join(str(tmp_path), "n1"), name="n1").start()
    keys, _ = H.init_and_unseal(n, 3, 2)
    H.enable_kv(n)
    assert n.put("kv/m", token=n.root_token, json={"v": "kept"}).status_code == 204
    restart_with(n, seal.stanza())
    st = migrate(n, keys[:2], "transit", cli=True)
    assert st["recovery_seal"] is True and (st["t"], st["n"]) == (2, 3)
    check_data(n)
    n.kill9()
    n.start()
    wait_unsealed(n)
    check_data(n)
    # The old unseal keys are the recovery keys now.
    assert generate_root(n, keys[:2])
    return n, keys


def test_shamir_to_transit_and_back(tmp_path, seal):
    n, keys = shamir_to_transit(tmp_path, seal)
    restart_with(n, seal.stanza(disabled="true"))
    st = migrate(n, keys[:2], "shamir")
    assert st["recovery_seal"] is False and (st["t"], st["n"]) == (2, 3)
    check_data(n)
    n.stop()
    n.extra_config = ""
    n.start()
    assert seal_status(n)["sealed"] is True
    H.unseal(n, keys[:2])
    check_data(n)


def test_recovery_keys_must_match(tmp_path, seal):
    n, keys = shamir_to_transit(tmp_path, seal)
    restart_with(n, seal.stanza(disabled="true"))
    # Shares of another secret: same length and x coordinates, other y values.
    other = []
    for k in keys[:2]:
        b = base64.b64decode(k)
        other.append(base64.b64encode(bytes([b[0] ^ 0x5A]) + b[1:]).decode())
    for k in other:
        r = n.put("sys/unseal", json={"key": k, "migrate": True})
        assert r.status_code == 200, r.text
    wait_log(n, "the recovery keys given are not this cluster's")
    st = seal_status(n)
    assert st["migration"] is True and st["type"] == "transit" and st["sealed"] is True
    migrate_again = migrate(n, keys[:2], "shamir")
    assert migrate_again["type"] == "shamir"


@pytest.mark.timeout_s(300)
def test_shamir_transit_pkcs11_shamir(tmp_path, seal, monkeypatch):
    if not softhsm_available():
        if os.environ.get("CI"):
            raise RuntimeError("SoftHSM2 is missing in CI")
        pytest.skip("SoftHSM2 (Debian package softhsm2) is not installed")
    softhsm_token(tmp_path, monkeypatch)
    n, keys = shamir_to_transit(tmp_path, seal)
    p11 = pkcs11_stanza("CKM_AES_GCM")
    restart_with(n, seal.stanza(disabled="true") + p11)
    st = migrate(n, keys[:2], "pkcs11")
    assert st["recovery_seal"] is True
    check_data(n)
    # The transit seal is no longer needed: stop it, the node unseals from the HSM.
    seal.stop()
    n.stop()
    n.extra_config = p11
    n.start()
    wait_unsealed(n)
    check_data(n)
    restart_with(n, pkcs11_stanza("CKM_AES_GCM", disabled=True))
    migrate(n, keys[:2], "shamir")
    check_data(n)
    n.kill9()
    n.extra_config = ""
    n.start()
    H.unseal(n, keys[:2])
    check_data(n)


@pytest.mark.timeout_s(420)
def test_cluster_shamir_to_transit(tmp_path, seal, cluster_factory):
    """Vault's order on a cluster: each standby, then the active node (its restart hands
    leadership to a migrated standby, which writes the new seal through raft)."""
    c = cluster_factory(n=3)
    keys = c.keys
    leader = c.leader()
    H.enable_kv(leader, token=c.root_token)
    assert leader.put("kv/m", token=c.root_token, json={"v": "kept"}).status_code == 204
    order = [s for s in c.nodes if s is not leader] + [leader]
    for s in order:
        s.stop()
        s.extra_config = seal.stanza()
        s.start()
        st = seal_status(s)
        assert st["migration"] is True and st["type"] == "shamir", st
        for k in keys[:c.threshold]:
            r = s.put("sys/unseal", json={"key": k, "migrate": True})
            assert r.status_code == 200, r.text
        wait_unsealed(s)
    deadline = time.monotonic() + 60
    while True:
        sts = [seal_status(s) for s in c.nodes]
        if all(x["type"] == "transit" and not x["migration"] and not x["sealed"]
               for x in sts):
            break
        assert time.monotonic() < deadline, "cluster migration did not finish: %s\n%s" % (
            sts, "\n".join(s.log_tail(20) for s in c.nodes))
        time.sleep(0.2)
    c.wait_voters(3)
    # From now on no operator: kill -9 every node, all come back unsealed by the seal.
    for s in c.nodes:
        s.kill9()
    for s in c.nodes:
        s.start()
    for s in c.nodes:
        wait_unsealed(s)
    leader = c.leader(timeout=60)
    assert leader.get("kv/m", token=c.root_token).json()["data"] == {"v": "kept"}
    # The old unseal keys are the recovery keys.
    assert generate_root(leader, keys[:c.threshold])
