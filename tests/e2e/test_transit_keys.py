"""Transit key management beyond keys/ (engines/transit_backup.c, transit_cache.c,
transit_rotate.c) end to end: backup/restore in Vault's format, cache-config, and automatic
rotation from the periodic hook."""
import json
import time

import pytest

import custos_harness as H

# The shared helpers and fixtures (the module-scoped -dev server with transit mounted).
from test_transit import MP, b64, name, rq, srv, t, unb64  # noqa: F401


def make_backupable(t, k, **kw):
    t.create_key(k, exportable=True, allow_plaintext_backup=True, mount_point=MP, **kw)


def test_backup_delete_restore_decrypts_old_ciphertexts(srv, t):
    k = name()
    make_backupable(t, k)
    cts = [t.encrypt_data(k, b64("v1 secret"), mount_point=MP)["data"]["ciphertext"]]
    t.rotate_key(k, mount_point=MP)
    cts.append(t.encrypt_data(k, b64("v2 secret"), mount_point=MP)["data"]["ciphertext"])
    t.update_key_configuration(k, deletion_allowed=True, mount_point=MP)
    backup = t.backup_key(k, mount_point=MP)["data"]["backup"]
    # Vault's format: base64 of a KeyData JSON with the policy and the archive.
    kd = json.loads(unb64(backup))
    assert kd["policy"]["name"] == k and kd["policy"]["type"] == 0  # aes256-gcm96
    assert kd["policy"]["latest_version"] == 2 and set(kd["policy"]["keys"]) == {"1", "2"}
    assert len(unb64(kd["policy"]["keys"]["1"]["key"])) == 32
    assert len(kd["archived_keys"]["keys"]) == 3
    # The key records its backup, as Vault's keys/:name shows.
    assert t.read_key(k, mount_point=MP)["data"]["backup_info"]["version"] == 2
    t.delete_key(k, mount_point=MP)
    assert rq(srv, "GET", "%s/keys/%s" % (MP, k)).status_code == 404
    r = rq(srv, "POST", "%s/restore" % MP, json={"backup": backup})
    assert r.status_code == 204, r.text
    for ct, want in zip(cts, (b"v1 secret", b"v2 secret")):
        assert unb64(t.decrypt_data(k, ct, mount_point=MP)["data"]["plaintext"]) == want
    d = t.read_key(k, mount_point=MP)["data"]
    assert d["latest_version"] == 2 and d["deletion_allowed"] and d["restore_info"]["version"] == 2
    # Encryption goes on with the latest version.
    assert t.encrypt_data(k, b64("x"), mount_point=MP)["data"]["ciphertext"].startswith("vault:v2:")


def test_restore_refusals_force_and_new_name(srv, t):
    k = name()
    make_backupable(t, k)
    ct = t.encrypt_data(k, b64("orig"), mount_point=MP)["data"]["ciphertext"]
    backup = t.backup_key(k, mount_point=MP)["data"]["backup"]
    # An existing key needs force; nothing changes on refusal.
    t.rotate_key(k, mount_point=MP)
    r = rq(srv, "POST", "%s/restore" % MP, json={"backup": backup})
    assert r.status_code == 400 and H.errors_of(r) == ['key "%s" already exists' % k], r.text
    assert t.read_key(k, mount_point=MP)["data"]["latest_version"] == 2
    r = rq(srv, "POST", "%s/restore" % MP, json={"backup": backup, "force": True})
    assert r.status_code == 204, r.text
    assert t.read_key(k, mount_point=MP)["data"]["latest_version"] == 1
    # Under another name, with hvac's restore_key.
    other = name()
    t.restore_key(backup, name=other, mount_point=MP)
    assert unb64(t.decrypt_data(other, ct, mount_point=MP)["data"]["plaintext"]) == b"orig"
    for body, msg in (({}, "'backup' must be supplied"),
                      ({"backup": "!!!"}, "illegal base64 data at input byte 0"),
                      ({"backup": b64("{}")}, "invalid backup: no policy")):
        r = rq(srv, "POST", "%s/restore/%s" % (MP, name()), json=body)
        assert r.status_code == 400 and H.errors_of(r) == [msg], r.text
    # A tampered backup (a key of the wrong length) writes nothing.
    kd = json.loads(unb64(backup))
    kd["policy"]["keys"]["1"]["key"] = b64(b"short")
    kd["archived_keys"]["keys"][1]["key"] = b64(b"short")
    bad = name()
    r = rq(srv, "POST", "%s/restore/%s" % (MP, bad), json={"backup": b64(json.dumps(kd))})
    assert r.status_code == 400, r.text
    assert rq(srv, "GET", "%s/keys/%s" % (MP, bad)).status_code == 404


def test_backup_refused_unless_exportable_and_plaintext_backup(srv, t):
    for opts in ({}, {"exportable": True}, {"allow_plaintext_backup": True}):
        k = name()
        t.create_key(k, mount_point=MP, **opts)
        r = rq(srv, "GET", "%s/backup/%s" % (MP, k))
        assert r.status_code == 400, r.text
        assert H.errors_of(r) == ["exporting is disallowed on the policy"]
        assert "backup_info" not in t.read_key(k, mount_point=MP)["data"]
    r = rq(srv, "GET", "%s/backup/%s" % (MP, name()))
    assert r.status_code == 400 and "not found" in H.errors_of(r)[0]


def test_backup_restore_signing_and_hmac_keys(srv, t):
    c = srv.client()
    for typ in ("ed25519", "ecdsa-p256", "rsa-2048", "hmac", "chacha20-poly1305"):
        k = name()
        c.write("%s/keys/%s" % (MP, k), type=typ, exportable=True, allow_plaintext_backup=True)
        if typ == "hmac" or typ == "chacha20-poly1305":
            out = t.generate_hmac(k, b64("msg"), mount_point=MP)["data"]["hmac"]
        else:
            out = t.sign_data(k, b64("msg"), mount_point=MP)["data"]["signature"]
        backup = t.backup_key(k, mount_point=MP)["data"]["backup"]
        kd = json.loads(unb64(backup))
        if typ == "ed25519":  # Vault's key: seed || public key
            assert len(unb64(kd["policy"]["keys"]["1"]["key"])) == 64
        other = name()
        c.write("%s/restore/%s" % (MP, other), backup=backup)
        if typ == "hmac" or typ == "chacha20-poly1305":
            v = t.verify_signed_data(other, b64("msg"), hmac=out, mount_point=MP)
        else:
            v = t.verify_signed_data(other, b64("msg"), signature=out, mount_point=MP)
        assert v["data"]["valid"], typ
        assert t.read_key(other, mount_point=MP)["data"]["type"] == typ


def test_restore_a_vault_made_backup(srv, t):
    """A KeyData as Vault writes it (version 1 only in the archive, as Vault moves versions
    below min_decryption_version there; time and creation_time; durations in ns)."""
    key = bytes(range(32))
    entry = {"key": b64(key), "hmac_key": b64(bytes(32)), "time": "2024-01-02T03:04:05.5Z",
             "creation_time": 1704164645, "ec_x": None, "ec_y": None, "ec_d": None,
             "rsa_key": None, "public_key": "", "convergent_version": 0}
    kd = {"policy": {"name": "fromvault", "type": 0, "derived": False, "kdf": 0,
                     "convergent_encryption": False, "exportable": True,
                     "min_decryption_version": 1, "min_encryption_version": 0,
                     "latest_version": 1, "archive_version": 1, "archive_min_version": 0,
                     "min_available_version": 0, "deletion_allowed": False,
                     "convergent_version": 0, "allow_plaintext_backup": True,
                     "auto_rotate_period": 3600 * 10 ** 9, "keys": {}},
          "archived_keys": {"keys": [{}, entry]}}
    k = name()
    t.restore_key(b64(json.dumps(kd)), name=k, mount_point=MP)
    d = t.read_key(k, mount_point=MP)["data"]
    assert d["auto_rotate_period"] == 3600 and d["keys"]["1"] == 1704164645
    # A ciphertext made with that key outside custos (AES-256-GCM, Vault's layout) opens.
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    nonce = bytes(12)
    ct = "vault:v1:" + b64(nonce + AESGCM(key).encrypt(nonce, b"from vault", None))
    assert unb64(t.decrypt_data(k, ct, mount_point=MP)["data"]["plaintext"]) == b"from vault"


def test_cache_config(srv, t):
    r = rq(srv, "GET", "%s/cache-config" % MP)
    assert r.status_code == 200 and r.json()["data"]["size"] == 0, r.text
    for bad in (1, 9, -1):
        r = rq(srv, "POST", "%s/cache-config" % MP, json={"size": bad})
        assert r.status_code == 400, r.text
        assert H.errors_of(r) == ["size must be 0 or a value greater or equal to 10"]
    assert rq(srv, "GET", "%s/cache-config" % MP).json()["data"]["size"] == 0
    r = rq(srv, "POST", "%s/cache-config" % MP, json={"size": 10})
    assert r.status_code == 200 and r.json()["data"]["size"] == 10, r.text
    assert rq(srv, "GET", "%s/cache-config" % MP).json()["data"]["size"] == 10
    # More keys than slots: every one still works (evicted ones come from storage), and a
    # rotation is seen at once.
    ks = [name() for _ in range(14)]
    cts = {k: t.encrypt_data(k, b64(k), mount_point=MP)["data"]["ciphertext"] for k in ks}
    for k in ks + ks[:3]:
        assert unb64(t.decrypt_data(k, cts[k], mount_point=MP)["data"]["plaintext"]) == k.encode()
    t.rotate_key(ks[0], mount_point=MP)
    assert t.encrypt_data(ks[0], b64("x"), mount_point=MP)["data"]["ciphertext"].startswith(
        "vault:v2:")
    # Seal (the cache is wiped by the backend's reset) and unseal: keys come back from
    # storage, the configured size from its record.
    from conftest import parse_dev_credentials
    key, _ = parse_dev_credentials(srv)
    c = srv.client()
    c.sys.seal()
    c.sys.submit_unseal_key(key)
    H.wait_active(srv)
    for k in ks:
        assert unb64(t.decrypt_data(k, cts[k], mount_point=MP)["data"]["plaintext"]) == k.encode()
    assert rq(srv, "GET", "%s/cache-config" % MP).json()["data"]["size"] == 10
    rq(srv, "POST", "%s/cache-config" % MP, json={"size": 0})


def _aged_backup(t, k, secs):
    """k's backup with its latest version's creation time set back by secs."""
    kd = json.loads(unb64(t.backup_key(k, mount_point=MP)["data"]["backup"]))
    ver = str(kd["policy"]["latest_version"])
    for e in (kd["policy"]["keys"][ver], kd["archived_keys"]["keys"][int(ver)]):
        e["creation_time"] -= secs
        e["time"] = "2000-01-01T00:00:00Z"  # creation_time wins; this one is Go's
    return b64(json.dumps(kd))


def _wait_version(t, k, want, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if t.read_key(k, mount_point=MP)["data"]["latest_version"] >= want:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.timeout_s(120)
def test_periodic_auto_rotation(server_factory):
    """A key whose latest version is older than its auto_rotate_period is rotated by the
    periodic function (periodic_interval 1s); fresh keys and keys without a period are
    not. The age is set back through backup/restore, so nobody waits an hour."""
    s = server_factory(extra_config='periodic_interval = "1s"\n')
    H.init_and_unseal(s)
    H.wait_active(s)
    c = s.client(s.root_token)
    c.sys.enable_secrets_engine("transit", path=MP)
    t = c.secrets.transit
    opts = dict(exportable=True, allow_plaintext_backup=True)
    keys = {}
    for label, typ, period in (("due", "aes256-gcm96", "1h"), ("sig", "ed25519", "1h"),
                               ("fresh", "aes256-gcm96", "1h"), ("never", "aes256-gcm96", 0)):
        keys[label] = k = name()
        c.write("%s/keys/%s" % (MP, k), type=typ, auto_rotate_period=period, **opts)
    ct = t.encrypt_data(keys["due"], b64("before"), mount_point=MP)["data"]["ciphertext"]
    for label, age in (("due", 7200), ("sig", 3700), ("fresh", 1800), ("never", 10 ** 6)):
        t.restore_key(_aged_backup(t, keys[label], age), name=keys[label], force=True,
                      mount_point=MP)
    assert _wait_version(t, keys["due"], 2), s.log_tail()
    assert _wait_version(t, keys["sig"], 2), s.log_tail()
    # A later key made due proves more runs happened; the others were never due.
    late = name()
    c.write("%s/keys/%s" % (MP, late), auto_rotate_period="1h", **opts)
    t.restore_key(_aged_backup(t, late, 4000), name=late, force=True, mount_point=MP)
    assert _wait_version(t, late, 2), s.log_tail()
    for label in ("fresh", "never"):
        assert t.read_key(keys[label], mount_point=MP)["data"]["latest_version"] == 1, label
    # Rotated once: version 2 is fresh.
    assert t.read_key(keys["due"], mount_point=MP)["data"]["latest_version"] == 2
    assert unb64(t.decrypt_data(keys["due"], ct, mount_point=MP)["data"]["plaintext"]) == b"before"
    assert t.encrypt_data(keys["due"], b64("x"), mount_point=MP)["data"]["ciphertext"].startswith(
        "vault:v2:")
