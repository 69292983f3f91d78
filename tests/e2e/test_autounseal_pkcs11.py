"""Auto-unseal with seal "pkcs11" against SoftHSM2: the test creates its own token
(SOFTHSM2_CONF pointing at a temporary directory), the node generates its key there,
initialises with recovery keys and unseals itself at every start; a wrong PIN is a clear
start-up error. Skipped only when SoftHSM2 is not installed, never in CI (install-deps
installs it)."""

import os

import pytest

import custos_harness as H
from autounseal_common import (PIN, init_recovery, pkcs11_stanza as stanza, seal_status,
                               softhsm_available, softhsm_token, wait_unsealed)

if not softhsm_available():
    if os.environ.get("CI"):
        raise RuntimeError("SoftHSM2 is missing in CI: scripts/install-deps.sh installs "
                           "softhsm2")
    pytest.skip("SoftHSM2 (Debian package softhsm2) is not installed",
                allow_module_level=True)


@pytest.fixture
def token(tmp_path, monkeypatch):
    return softhsm_token(tmp_path, monkeypatch)


def round_trip(tmp_path, config):
    n = H.Server(os.path.join(str(tmp_path), "n1"), name="n1", extra_config=config).start()
    st = seal_status(n)
    assert st["type"] == "pkcs11" and st["recovery_seal"] is True
    body = init_recovery(n, 3, 2)
    assert body["keys"] == [] and len(body["recovery_keys"]) == 3
    wait_unsealed(n)
    H.wait_active(n)
    H.enable_kv(n)
    assert n.put("kv/hsm", token=n.root_token, json={"v": "ok"}).status_code == 204
    for _ in range(2):  # kill -9, and a clean stop: both come back without keys
        n.kill9()
        n.start()
        st = wait_unsealed(n)
        assert st["type"] == "pkcs11"
        H.wait_active(n)
        assert n.get("kv/hsm", token=n.root_token).json()["data"] == {"v": "ok"}
    assert PIN not in n.log_text()
    return n


def test_aes_gcm_init_restart_unseal(tmp_path, token):
    round_trip(tmp_path, stanza("CKM_AES_GCM"))


def test_rsa_oaep_by_slot(tmp_path, token):
    round_trip(tmp_path, stanza("CKM_RSA_PKCS_OAEP", where='slot = "%d"' % token,
                                key="custos-rsa"))


def test_wrong_pin_is_a_clear_startup_error(tmp_path, token):
    n = H.Server(os.path.join(str(tmp_path), "n1"), name="n1",
                 extra_config=stanza("CKM_AES_GCM", pin="not-the-pin"))
    with pytest.raises(RuntimeError):
        n.start()
    log = n.log_text()
    assert "CKR_PIN_INCORRECT (wrong PIN)" in log, log
    assert "not-the-pin" not in log
    assert n.last_exit not in (None, 0)
