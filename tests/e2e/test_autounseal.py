"""Auto-unseal with seal "transit": a node whose root key is wrapped by another custos's
transit key initialises with recovery keys, unseals itself at every start, stays sealed
while the seal server is away and unseals as soon as it is back; recovery keys authorise
generate-root and are rekeyed through sys/rekey-recovery-key."""

import os
import time

import pytest

import custos_harness as H
from autounseal_common import (SealServer, generate_root, init_recovery, seal_status,
                               wait_log, wait_unsealed)


@pytest.fixture
def seal(tmp_path):
    s = SealServer(tmp_path).start()
    yield s
    s.server.cleanup()


def node_with_seal(tmp_path, seal, name="n1"):
    n = H.Server(os.path.join(str(tmp_path), name), name=name, extra_config=seal.stanza())
    return n


def test_init_and_unseal_without_keys(tmp_path, seal):
    n = node_with_seal(tmp_path, seal).start()
    st = seal_status(n)
    assert st["type"] == "transit" and st["recovery_seal"] is True
    assert st["initialized"] is False and st["sealed"] is True
    # Shamir parameters do not apply (hvac sends them anyway): recovery keys instead.
    r = n.put("sys/init", json={"secret_shares": 5, "secret_threshold": 3,
                                "recovery_shares": 3, "recovery_threshold": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["keys"] == [] and body["keys_base64"] == []
    assert len(body["recovery_keys"]) == 3 and len(body["recovery_keys_base64"]) == 3
    n.root_token = body["root_token"]
    st = wait_unsealed(n)
    assert st["type"] == "transit" and st["recovery_seal"] is True
    assert (st["t"], st["n"]) == (2, 3)
    H.wait_active(n)
    H.enable_kv(n)
    assert n.put("kv/a", token=n.root_token, json={"v": "1"}).status_code == 204

    # kill -9 and restart: unsealed by the seal, no operator.
    n.kill9()
    n.start()
    wait_unsealed(n)
    H.wait_active(n)
    assert n.get("kv/a", token=n.root_token).json()["data"] == {"v": "1"}
    log = n.log_text()
    assert seal.token not in log
    # A second init is refused.
    assert n.put("sys/init", json={"recovery_shares": 1,
                                   "recovery_threshold": 1}).status_code == 400


def test_seal_server_down_then_back(tmp_path, seal):
    n = node_with_seal(tmp_path, seal).start()
    init_recovery(n)
    wait_unsealed(n)
    n.stop()
    seal.stop()
    n.start()
    wait_log(n, "the node stays sealed and retries")
    st = seal_status(n)
    assert st["sealed"] is True and st["initialized"] is True
    assert n.get("sys/mounts", token=n.root_token).status_code == 503
    seal.resume()
    wait_unsealed(n)
    wait_log(n, "seal answered after")
    H.wait_active(n)
    # One line for the failure kind, not one per attempt.
    assert n.log_text(since_start=True).count("the node stays sealed and retries") == 1


def test_recovery_keys_generate_root_and_rekey(tmp_path, seal):
    n = node_with_seal(tmp_path, seal).start()
    body = init_recovery(n, 3, 2)
    rec = body["recovery_keys_base64"]
    wait_unsealed(n)
    H.wait_active(n)
    tok = generate_root(n, rec[:2])
    assert n.get("auth/token/lookup-self", token=tok).json()["data"]["policies"] == ["root"]

    # Barrier rekey does not apply to an auto seal; the recovery keys rekey instead.
    r = n.put("sys/rekey/init", token=tok, json={"secret_shares": 3, "secret_threshold": 2})
    assert r.status_code == 400 and "rekey-recovery-key" in r.text
    r = n.put("sys/rekey-recovery-key/init", token=tok,
              json={"secret_shares": 4, "secret_threshold": 3})
    assert r.status_code == 200, r.text
    nonce = r.json()["nonce"]
    assert r.json()["required"] == 2
    out = None
    for k in rec[:2]:
        r = n.put("sys/rekey-recovery-key/update", token=tok, json={"key": k, "nonce": nonce})
        assert r.status_code == 200, r.text
        out = r.json()
    new = out["keys_base64"]
    assert len(new) == 4
    st = seal_status(n)
    assert (st["t"], st["n"]) == (3, 4)
    # The old recovery keys no longer authorise anything; the new ones do.
    r = n.put("sys/generate-root/attempt", json={})
    nonce = r.json()["nonce"]
    r = None
    for k in rec[:3]:
        r = n.put("sys/generate-root/update", json={"key": k, "nonce": nonce})
    assert r.status_code == 400
    assert n.request("DELETE", "sys/generate-root/attempt",
                     params={"nonce": nonce}).status_code in (200, 204)
    tok2 = generate_root(n, new[:3])
    assert n.get("auth/token/lookup-self", token=tok2).status_code == 200
    # Shamir unseal keys are not a thing here.
    assert n.put("sys/rekey-recovery-key/init", token=tok2,
                 json={"secret_shares": 0}).status_code == 400


def test_wrong_token_is_a_clear_error_and_shamir_node_refuses_recovery(tmp_path, seal):
    bad = H.Server(os.path.join(str(tmp_path), "bad"), name="bad",
                   extra_config=seal.stanza().replace(seal.token, "hvs.nope"))
    bad.start()
    r = bad.put("sys/init", json={"recovery_shares": 1, "recovery_threshold": 1})
    assert r.status_code >= 400 and "transit" in r.text, r.text
    assert seal_status(bad)["initialized"] is False
    # A Shamir node has no recovery keys.
    plain = H.Server(os.path.join(str(tmp_path), "plain"), name="plain").start()
    H.init_and_unseal(plain)
    st = seal_status(plain)
    assert st["type"] == "shamir" and st["recovery_seal"] is False
    r = plain.put("sys/rekey-recovery-key/init", token=plain.root_token,
                  json={"secret_shares": 1, "secret_threshold": 1})
    assert r.status_code == 400


def test_cli_init_and_status(tmp_path, seal):
    n = node_with_seal(tmp_path, seal).start()
    env = {"VAULT_ADDR": n.url}
    out = H.run_cli(["operator", "init", "-format=json"], env=env)
    assert out.returncode == 0, out.stderr + out.stdout
    body = H.json_or_fail(out.stdout)
    # Vault's defaults for an auto seal: 5 recovery shares, threshold 3; no unseal keys.
    assert len(body["recovery_keys_b64"]) == 5 and body["unseal_keys_b64"] == []
    wait_unsealed(n)
    out = H.run_cli(["status", "-format=json"], env=env)
    assert out.returncode == 0, out.stderr + out.stdout
    st = H.json_or_fail(out.stdout)
    assert st["type"] == "transit" and st["recovery_seal"] is True and st["sealed"] is False
    assert (st["t"], st["n"]) == (3, 5)


def test_seal_token_is_renewed(tmp_path, seal):
    c = seal.server.client()

    def expire_time():
        return c.auth.token.lookup(seal.token)["data"]["expire_time"]

    before = expire_time()
    time.sleep(1.1)  # so that a renewal moves expire_time by at least a second
    n = node_with_seal(tmp_path, seal).start()
    deadline = time.monotonic() + 30
    while expire_time() == before:
        assert time.monotonic() < deadline, "the seal token was never renewed:\n" + n.log_tail()
        time.sleep(0.1)
    assert expire_time() > before


def test_https_seal_server_verified_with_its_ca(tmp_path, cert):
    seal = SealServer(tmp_path / "tls", tls=cert).start()
    try:
        n = H.Server(os.path.join(str(tmp_path), "n1"), name="n1",
                     extra_config=seal.stanza(tls_ca_cert=cert[0])).start()
        init_recovery(n)
        wait_unsealed(n)
        n.kill9()
        n.start()
        wait_unsealed(n)
        # Without the CA the seal server's certificate is not trusted: init fails.
        m = H.Server(os.path.join(str(tmp_path), "n2"), name="n2",
                     extra_config=seal.stanza()).start()
        r = m.put("sys/init", json={"recovery_shares": 1, "recovery_threshold": 1})
        assert r.status_code >= 500 and "certificate" in r.text.lower(), r.text
    finally:
        seal.server.cleanup()
