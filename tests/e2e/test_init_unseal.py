"""sys/init, sys/seal-status, sys/unseal, sys/seal and restart: the whole seal life cycle."""

import base64
import binascii
import os

import hvac
import pytest

import custos_harness as H


def seal_status(srv):
    r = srv.get("sys/seal-status")
    assert r.status_code == 200, r.text
    return r.json()


def test_init_unseal_seal_restart_cycle(server):
    srv = server
    c = srv.client(token=None)

    # ---- fresh node ------------------------------------------------------------
    r = srv.get("sys/health")
    assert r.status_code == 501, (r.status_code, r.text)
    assert r.json()["initialized"] is False
    r = srv.get("sys/init")
    assert r.status_code == 200, r.text
    assert r.json() == {"initialized": False}
    assert c.sys.is_initialized() is False
    st = seal_status(srv)
    assert st["initialized"] is False
    assert st["sealed"] is True

    # ---- init 5/3 ---------------------------------------------------------------
    res = c.sys.initialize(secret_shares=5, secret_threshold=3)
    keys_hex, keys_b64, root = res["keys"], res["keys_base64"], res["root_token"]
    assert len(keys_hex) == 5 and len(keys_b64) == 5
    assert len(set(keys_hex)) == 5, "shares are not distinct"
    for h, b in zip(keys_hex, keys_b64):
        assert len(h) == 66, "share is not 33 bytes of hex: %r" % h
        raw = binascii.unhexlify(h)
        assert base64.b64decode(b, validate=True) == raw, "keys and keys_base64 differ"
    # Vault's share format: the last byte is the x coordinate, distinct and non-zero.
    xs = [binascii.unhexlify(h)[-1] for h in keys_hex]
    assert len(set(xs)) == 5 and 0 not in xs, xs
    assert isinstance(root, str) and len(root) >= 8
    srv.keys, srv.keys_hex, srv.root_token = keys_b64, keys_hex, root

    assert c.sys.is_initialized() is True
    r = srv.get("sys/init")
    assert r.json() == {"initialized": True}
    r = srv.get("sys/health")
    assert r.status_code == 503, (r.status_code, r.text)
    st = seal_status(srv)
    assert st["initialized"] is True and st["sealed"] is True
    assert (st["t"], st["n"], st["progress"]) == (3, 5, 0), st
    assert st.get("type") == "shamir"
    assert H.SEMVER.match(st["version"]), st["version"]

    # ---- re-init refused -----------------------------------------------------------
    r = srv.put("sys/init", json={"secret_shares": 1, "secret_threshold": 1})
    assert r.status_code == 400, (r.status_code, r.text)
    assert H.errors_of(r), "re-init error without a message"

    # ---- progress, base64 and hex keys ------------------------------------------------
    st = c.sys.submit_unseal_key(keys_b64[0])
    assert st["sealed"] is True and st["progress"] == 1, st
    st = c.sys.submit_unseal_key(keys_hex[1])
    assert st["sealed"] is True and st["progress"] == 2, st
    assert seal_status(srv)["progress"] == 2

    # reset wins and clears the progress
    r = srv.put("sys/unseal", json={"reset": True})
    assert r.status_code == 200, r.text
    assert r.json()["progress"] == 0 and r.json()["sealed"] is True
    assert seal_status(srv)["progress"] == 0

    # a wrong share that completes the threshold: 400, progress reset, still sealed
    c.sys.submit_unseal_key(keys_b64[0])
    c.sys.submit_unseal_key(keys_b64[1])
    bogus = bytearray(os.urandom(33))
    bogus[-1] = binascii.unhexlify(keys_hex[2])[-1]  # a plausible x, wrong y
    r = srv.put("sys/unseal", json={"key": base64.b64encode(bytes(bogus)).decode()})
    assert r.status_code == 400, (r.status_code, r.text)
    assert H.errors_of(r)
    st = seal_status(srv)
    assert st["sealed"] is True and st["progress"] == 0, st

    # malformed requests
    r = srv.put("sys/unseal", json={"key": "this is not a key!"})
    assert r.status_code == 400, (r.status_code, r.text)
    r = srv.put("sys/unseal", json={})
    assert r.status_code == 400, (r.status_code, r.text)
    assert seal_status(srv)["sealed"] is True

    # ---- unseal with shares 3,4,5 (mixed encodings) ---------------------------------------
    st = c.sys.submit_unseal_key(keys_b64[2])
    assert st["progress"] == 1
    st = c.sys.submit_unseal_key(keys_hex[3])
    assert st["progress"] == 2
    st = c.sys.submit_unseal_key(keys_b64[4])
    assert st["sealed"] is False, st
    assert st["progress"] == 0
    assert st.get("cluster_name") and st.get("cluster_id"), st
    H.wait_active(srv)
    assert c.sys.is_sealed() is False
    assert srv.get("sys/health").status_code == 200

    c = srv.client()  # root token from here on
    c.sys.enable_secrets_engine("kv", path="kv", options={"version": "1"})
    c.secrets.kv.v1.create_or_update_secret("cycle/one", {"v": "before-seal"}, mount_point="kv")

    # ---- sys/seal: a non-root token is refused -------------------------------------------
    r = srv.put("sys/seal", token=H.random_token())
    assert r.status_code == 403, (r.status_code, r.text)
    assert c.sys.is_sealed() is False

    r = srv.put("sys/seal", token=root)
    assert r.status_code == 204, (r.status_code, r.text)
    assert r.content == b""
    assert c.sys.is_sealed() is True
    assert srv.get("sys/health").status_code == 503
    st = seal_status(srv)
    assert st["initialized"] is True and (st["t"], st["n"]) == (3, 5)

    # ---- unseal again (another subset) -------------------------------------------------------
    st = c.sys.submit_unseal_keys([keys_hex[4], keys_b64[0], keys_hex[2]])
    assert st["sealed"] is False, st
    H.wait_active(srv)
    assert c.secrets.kv.v1.read_secret("cycle/one", mount_point="kv")["data"] == {"v": "before-seal"}
    c.secrets.kv.v1.create_or_update_secret("cycle/two", {"v": "after-unseal"}, mount_point="kv")

    # ---- restart: comes back initialised and sealed, keeps its data ------------------------------
    rc = srv.stop()
    assert rc == 0, "SIGTERM did not lead to a clean exit: %s" % rc
    srv.start()
    r = srv.get("sys/health")
    assert r.status_code == 503, (r.status_code, r.text)
    assert r.json()["initialized"] is True
    assert c.sys.is_initialized() is True
    st = seal_status(srv)
    assert st["sealed"] is True and (st["t"], st["n"], st["progress"]) == (3, 5, 0), st
    r = srv.get("kv/cycle/one", token=root)
    assert r.status_code == 503, (r.status_code, r.text)

    st = c.sys.submit_unseal_keys([keys_b64[1], keys_b64[3], keys_b64[4]])
    assert st["sealed"] is False, st
    H.wait_active(srv)
    assert c.secrets.kv.v1.read_secret("cycle/one", mount_point="kv")["data"] == {"v": "before-seal"}
    assert c.secrets.kv.v1.read_secret("cycle/two", mount_point="kv")["data"] == {"v": "after-unseal"}
    look = srv.get("auth/token/lookup-self", token=root)
    assert look.status_code == 200, look.text
    # re-init is still refused after a restart
    r = srv.put("sys/init", json={"secret_shares": 5, "secret_threshold": 3})
    assert r.status_code == 400, (r.status_code, r.text)


def test_unseal_before_init_is_refused(server):
    r = server.put("sys/unseal", json={"key": base64.b64encode(os.urandom(33)).decode()})
    assert r.status_code == 400, (r.status_code, r.text)
    assert H.errors_of(r)
    assert server.get("sys/health").status_code == 501


@pytest.mark.parametrize("shares,threshold", [(3, 5), (3, 1), (0, 0), (256, 3)])
def test_init_rejects_bad_parameters(server, shares, threshold):
    r = server.put("sys/init", json={"secret_shares": shares, "secret_threshold": threshold})
    assert r.status_code == 400, (shares, threshold, r.status_code, r.text)
    assert H.errors_of(r)
    assert server.get("sys/init").json() == {"initialized": False}


def test_init_single_share(server):
    """secret_shares=1, threshold=1: one key unseals."""
    c = server.client(token=None)
    res = c.sys.initialize(secret_shares=1, secret_threshold=1)
    assert len(res["keys"]) == 1 and len(res["keys_base64"]) == 1
    assert base64.b64decode(res["keys_base64"][0]) == binascii.unhexlify(res["keys"][0])
    st = c.sys.read_seal_status()
    assert (st["t"], st["n"], st["sealed"]) == (1, 1, True), st
    st = c.sys.submit_unseal_key(res["keys_base64"][0])
    assert st["sealed"] is False, st
    H.wait_active(server)
    r = server.get("auth/token/lookup-self", token=res["root_token"])
    assert r.status_code == 200, r.text


def test_every_threshold_subset_unseals(server):
    """Init 4/2; every pair of shares unseals the node (seal between attempts)."""
    H.init(server, shares=4, threshold=2)
    root = server.root_token
    keys = server.keys
    pairs = [(i, j) for i in range(4) for j in range(4) if i < j]
    for i, j in pairs:
        st = H.unseal(server, [keys[i], keys[j]])
        assert st["sealed"] is False, (i, j, st)
        H.wait_active(server)
        r = server.put("sys/seal", token=root)
        assert r.status_code == 204, (i, j, r.status_code, r.text)
        assert server.get("sys/seal-status").json()["sealed"] is True


def test_hvac_wrong_token_cannot_seal(unsealed):
    c = unsealed.client(token=H.random_token())
    with pytest.raises(hvac.exceptions.Forbidden):
        c.sys.seal()
    assert unsealed.client().sys.is_sealed() is False
