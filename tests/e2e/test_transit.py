"""Transit secrets engine (engines/transit.c) end to end, driven by hvac's
client.secrets.transit against a real custos -dev server, plus a 3-node cluster run through
a standby. Formats and error texts are Vault's."""
import base64
import hashlib

import hvac
import pytest

import custos_harness as H

MP = "transit"


def b64(s):
    return base64.b64encode(s if isinstance(s, bytes) else s.encode()).decode()


def unb64(s):
    return base64.b64decode(s)


@pytest.fixture(scope="module")
def srv(dev_server):
    dev_server.client().sys.enable_secrets_engine("transit", path=MP)
    return dev_server


@pytest.fixture
def t(srv):
    return srv.client().secrets.transit


def rq(srv, method, path, **kw):
    return srv.request(method, path, token=srv.root_token, **kw)


def name():
    return "k" + H.uid()[:8]


def test_key_lifecycle_and_read_shape(srv, t):
    k = name()
    t.create_key(k, mount_point=MP)
    d = t.read_key(k, mount_point=MP)["data"]
    assert d["type"] == "aes256-gcm96" and d["latest_version"] == 1
    assert d["min_decryption_version"] == 1 and d["min_encryption_version"] == 0
    assert d["supports_encryption"] and d["supports_decryption"] and d["supports_derivation"]
    assert not d["supports_signing"] and not d["derived"] and not d["deletion_allowed"]
    assert list(d["keys"]) == ["1"] and d["keys"]["1"] > 1600000000
    assert k in t.list_keys(mount_point=MP)["data"]["keys"]
    # Every symmetric type; hmac keys have a size and no version list (as Vault).
    for typ in ("aes128-gcm96", "chacha20-poly1305"):  # hvac's list lacks aes128
        n = name()
        srv.client().write("%s/keys/%s" % (MP, n), type=typ)
        assert t.read_key(n, mount_point=MP)["data"]["type"] == typ
    h = name()
    srv.client().write("%s/keys/%s" % (MP, h), type="hmac", key_size=64)
    d = t.read_key(h, mount_point=MP)["data"]
    assert d["type"] == "hmac" and d["key_size"] == 64 and "keys" not in d
    assert not d["supports_encryption"]
    # Refusals write nothing.
    for body, msg in (({"type": "nope"}, "unknown key type nope"),
                      ({"convergent_encryption": True},
                       "convergent encryption requires derivation to be enabled"),
                      ({"key_size": 64}, "key_size is not valid for algorithm aes256-gcm96"),
                      ({"auto_rotate_period": "10m"},
                       "auto rotate period must be 0 to disable or at least an hour")):
        bad = name()
        r = rq(srv, "POST", "%s/keys/%s" % (MP, bad), json=body)
        assert r.status_code == 400 and H.errors_of(r) == [msg], r.text
        assert rq(srv, "GET", "%s/keys/%s" % (MP, bad)).status_code == 404
    # auto_rotate_period is kept and reported in seconds.
    p = name()
    srv.client().write("%s/keys/%s" % (MP, p), auto_rotate_period="24h")
    assert t.read_key(p, mount_point=MP)["data"]["auto_rotate_period"] == 86400


def test_delete_refused_then_allowed(srv, t):
    k = name()
    t.create_key(k, mount_point=MP)
    r = rq(srv, "DELETE", "%s/keys/%s" % (MP, k))
    assert r.status_code == 400, r.text
    assert H.errors_of(r) == ["error deleting policy %s: deletion is not allowed for this key" % k]
    assert t.read_key(k, mount_point=MP)["data"]["name"] == k
    t.update_key_configuration(k, deletion_allowed=True, mount_point=MP)
    t.delete_key(k, mount_point=MP)
    assert rq(srv, "GET", "%s/keys/%s" % (MP, k)).status_code == 404


def test_encrypt_decrypt_rotate_rewrap_min_version(srv, t):
    k = name()
    t.create_key(k, mount_point=MP)
    ct1 = t.encrypt_data(k, b64("hello"), mount_point=MP)["data"]["ciphertext"]
    assert ct1.startswith("vault:v1:")
    raw = unb64(ct1.split(":", 2)[2])
    assert len(raw) == 12 + 5 + 16  # nonce || ciphertext || tag
    assert unb64(t.decrypt_data(k, ct1, mount_point=MP)["data"]["plaintext"]) == b"hello"
    t.rotate_key(k, mount_point=MP)
    r = t.encrypt_data(k, b64("again"), mount_point=MP)["data"]
    assert r["ciphertext"].startswith("vault:v2:") and r["key_version"] == 2
    old = t.encrypt_data(k, b64("old"), key_version=1, mount_point=MP)["data"]
    assert old["ciphertext"].startswith("vault:v1:")
    rw = t.rewrap_data(k, ct1, mount_point=MP)["data"]
    assert rw["ciphertext"].startswith("vault:v2:") and rw["key_version"] == 2
    assert unb64(t.decrypt_data(k, rw["ciphertext"], mount_point=MP)["data"]["plaintext"]) \
        == b"hello"
    # min_decryption_version: v1 ciphertexts are refused, v2 still decrypt.
    t.update_key_configuration(k, min_decryption_version=2, mount_point=MP)
    r = rq(srv, "POST", "%s/decrypt/%s" % (MP, k), json={"ciphertext": ct1})
    assert r.status_code == 400
    assert H.errors_of(r) == ["ciphertext or signature version is disallowed by policy (too old)"]
    t.decrypt_data(k, rw["ciphertext"], mount_point=MP)
    # Config validation (Vault's messages), nothing changed.
    r = rq(srv, "POST", "%s/keys/%s/config" % (MP, k), json={"min_decryption_version": 5})
    assert H.errors_of(r) == ["cannot set min decryption version of 5, latest key version is 2"]
    r = rq(srv, "POST", "%s/keys/%s/config" % (MP, k), json={"min_encryption_version": 1})
    assert r.status_code == 400 and "must be greater than or equal to min decryption" in r.text
    assert t.read_key(k, mount_point=MP)["data"]["min_encryption_version"] == 0
    # Trim drops version 1 for good.
    t.update_key_configuration(k, min_encryption_version=2, mount_point=MP)
    t.trim_key(k, min_version=2, mount_point=MP)
    d = t.read_key(k, mount_point=MP)["data"]
    assert d["min_available_version"] == 2 and list(d["keys"]) == ["2"]
    # Tampering and too-new versions are Vault's 400s.
    ct = rw["ciphertext"]
    body = bytearray(unb64(ct.split(":", 2)[2]))
    body[-1] ^= 1
    tampered = "vault:v2:" + base64.b64encode(bytes(body)).decode()
    for c, msg in ((tampered, "cipher: message authentication failed"),
                   ("vault:v9:" + ct.split(":", 2)[2], "invalid ciphertext: version is too new"),
                   ("nope", "invalid ciphertext: no prefix"),
                   ("vault:vx:AAAA", "invalid ciphertext: version number could not be decoded")):
        r = rq(srv, "POST", "%s/decrypt/%s" % (MP, k), json={"ciphertext": c})
        assert r.status_code == 400 and H.errors_of(r) == [msg], (c, r.text)


def test_upsert_aad_and_chacha(srv, t):
    k = name()  # encrypt creates the key, as Vault's upsert
    ct = srv.client().write("%s/encrypt/%s" % (MP, k), plaintext=b64("x"),
                            associated_data=b64("hdr"))["data"]["ciphertext"]
    assert t.read_key(k, mount_point=MP)["data"]["type"] == "aes256-gcm96"
    pt = srv.client().write("%s/decrypt/%s" % (MP, k), ciphertext=ct, associated_data=b64("hdr"))
    assert unb64(pt["data"]["plaintext"]) == b"x"
    r = rq(srv, "POST", "%s/decrypt/%s" % (MP, k),
                    json={"ciphertext": ct, "associated_data": b64("other")})
    assert r.status_code == 400
    c = name()
    ct = srv.client().write("%s/encrypt/%s" % (MP, c), plaintext=b64("cc"),
                            type="chacha20-poly1305")
    assert t.read_key(c, mount_point=MP)["data"]["type"] == "chacha20-poly1305"
    assert unb64(t.decrypt_data(c, ct["data"]["ciphertext"], mount_point=MP)["data"]
                 ["plaintext"]) == b"cc"
    r = rq(srv, "POST", "%s/decrypt/nokey%s" % (MP, H.uid()[:6]),
                    json={"ciphertext": "vault:v1:AAAA"})
    assert r.status_code == 400 and H.errors_of(r) == ["encryption key not found"]


def test_derived_and_convergent(srv, t):
    k = name()
    t.create_key(k, derived=True, mount_point=MP)
    ctx = b64("user-1")
    ct = t.encrypt_data(k, b64("s"), context=ctx, mount_point=MP)["data"]["ciphertext"]
    assert unb64(t.decrypt_data(k, ct, context=ctx, mount_point=MP)["data"]["plaintext"]) == b"s"
    r = rq(srv, "POST", "%s/decrypt/%s" % (MP, k),
                    json={"ciphertext": ct, "context": b64("user-2")})
    assert r.status_code == 400 and H.errors_of(r) == ["cipher: message authentication failed"]
    r = rq(srv, "POST", "%s/encrypt/%s" % (MP, k), json={"plaintext": b64("s")})
    assert r.status_code == 400 and "missing 'context' for key derivation" in r.text
    cv = name()
    t.create_key(cv, derived=True, convergent_encryption=True, mount_point=MP)
    d = t.read_key(cv, mount_point=MP)["data"]
    assert d["convergent_encryption"] and d["convergent_encryption_version"] == 3
    assert d["kdf"] == "hkdf_sha256"
    a = t.encrypt_data(cv, b64("same"), context=ctx, mount_point=MP)["data"]["ciphertext"]
    b = t.encrypt_data(cv, b64("same"), context=ctx, mount_point=MP)["data"]["ciphertext"]
    c = t.encrypt_data(cv, b64("same"), context=b64("u2"), mount_point=MP)["data"]["ciphertext"]
    assert a == b and a != c
    assert unb64(t.decrypt_data(cv, a, context=ctx, mount_point=MP)["data"]["plaintext"]) \
        == b"same"


def test_batch_with_one_bad_item(srv, t):
    k = name()
    t.create_key(k, mount_point=MP)
    items = [{"plaintext": b64("a"), "reference": "r1"}, {"plaintext": "!!notb64"},
             {"plaintext": b64("c")}]
    r = rq(srv, "POST", "%s/encrypt/%s" % (MP, k), json={"batch_input": items})
    assert r.status_code == 400, r.text
    res = r.json()["data"]["batch_results"]
    assert res[0]["ciphertext"].startswith("vault:v1:") and res[0]["reference"] == "r1"
    assert "illegal base64 data" in res[1]["error"] and "ciphertext" not in res[1]
    # partial_failure_response_code turns a partial failure into the caller's status.
    r = rq(srv, "POST", "%s/encrypt/%s" % (MP, k),
                    json={"batch_input": items, "partial_failure_response_code": 207})
    assert r.status_code == 207
    dec = t.decrypt_data(k, None, batch_input=[{"ciphertext": res[0]["ciphertext"]},
                                               {"ciphertext": res[2]["ciphertext"]}],
                         mount_point=MP)["data"]["batch_results"]
    assert [unb64(x["plaintext"]) for x in dec] == [b"a", b"c"]
    r = rq(srv, "POST", "%s/decrypt/%s" % (MP, k),
                    json={"batch_input": [{"ciphertext": res[0]["ciphertext"]},
                                          {"ciphertext": "vault:v1:AAAA"}]})
    assert r.status_code == 400
    out = r.json()["data"]["batch_results"]
    assert unb64(out[0]["plaintext"]) == b"a" and out[1]["error"]


def test_batch_size_is_bounded(srv, t):
    """A batch of empty items costs a few body bytes each but a few hundred bytes of state:
    past 65,536 items every batch endpoint refuses the request before doing any work."""
    k = name()
    t.create_key(k, mount_point=MP)
    t.create_key(k + "-sig", key_type="ed25519", mount_point=MP)
    big = [{}] * 65537
    for path in ("encrypt/" + k, "decrypt/" + k, "rewrap/" + k, "hmac/" + k,
                 "verify/" + k, "sign/" + k + "-sig", "verify/" + k + "-sig"):
        r = rq(srv, "POST", "%s/%s" % (MP, path), json={"batch_input": big})
        assert r.status_code == 400, (path, r.text[:200])
        assert "at most 65536" in r.text, (path, r.text[:200])
    # At the bound the batch is served.
    r = rq(srv, "POST", "%s/encrypt/%s" % (MP, k),
           json={"batch_input": [{"plaintext": b64("x")}] * 65536})
    assert r.status_code == 200, r.text[:200]
    assert len(r.json()["data"]["batch_results"]) == 65536


def test_datakey(srv, t):
    k = name()
    t.create_key(k, mount_point=MP)
    d = t.generate_data_key(k, "plaintext", bits=512, mount_point=MP)["data"]
    assert len(unb64(d["plaintext"])) == 64
    assert t.decrypt_data(k, d["ciphertext"], mount_point=MP)["data"]["plaintext"] == \
        d["plaintext"]
    w = t.generate_data_key(k, "wrapped", mount_point=MP)["data"]
    assert "plaintext" not in w and w["ciphertext"].startswith("vault:v1:")
    assert len(unb64(t.decrypt_data(k, w["ciphertext"], mount_point=MP)["data"]
                     ["plaintext"])) == 32
    r = rq(srv, "POST", "%s/datakey/plaintext/%s" % (MP, k), json={"bits": 100})
    assert r.status_code == 400 and H.errors_of(r) == ["invalid bit length"]


def test_hmac_verify(srv, t):
    k = name()
    srv.client().write("%s/keys/%s" % (MP, k), type="hmac")
    mac = t.generate_hmac(k, b64("msg"), mount_point=MP)["data"]["hmac"]
    assert mac.startswith("vault:v1:") and len(unb64(mac.split(":", 2)[2])) == 32
    assert t.verify_signed_data(k, b64("msg"), hmac=mac, mount_point=MP)["data"]["valid"]
    assert not t.verify_signed_data(k, b64("msh"), hmac=mac, mount_point=MP)["data"]["valid"]
    m512 = t.generate_hmac(k, b64("msg"), algorithm="sha2-512", mount_point=MP)["data"]["hmac"]
    assert len(unb64(m512.split(":", 2)[2])) == 64
    assert t.verify_signed_data(k, b64("msg"), hmac=m512, hash_algorithm="sha2-512",
                                mount_point=MP)["data"]["valid"]
    # An AES key HMACs with its own per-version HMAC key.
    a = name()
    t.create_key(a, mount_point=MP)
    ma = t.generate_hmac(a, b64("msg"), mount_point=MP)["data"]["hmac"]
    assert ma != mac
    r = rq(srv, "POST", "%s/verify/%s" % (MP, a),
                    json={"batch_input": [{"input": b64("msg"), "hmac": ma},
                                          {"input": b64("msg"), "hmac": "bogus"}]})
    res = r.json()["data"]["batch_results"]
    assert res[0]["valid"] is True and res[1]["error"] == "invalid HMAC to verify: no prefix"
    r = rq(srv, "POST", "%s/hmac/%s" % (MP, a),
                    json={"batch_input": [{"input": b64("1")}, {"input": b64("2")}]})
    assert [x["hmac"].startswith("vault:v1:") for x in r.json()["data"]["batch_results"]] \
        == [True, True]


def test_hash_and_random(srv, t):
    data = b"custos"
    r = t.hash_data(b64(data), mount_point=MP)["data"]["sum"]
    assert r == hashlib.sha256(data).hexdigest()
    for alg, fn in (("sha2-512", hashlib.sha512), ("sha3-256", hashlib.sha3_256),
                    ("sha2-224", hashlib.sha224)):
        s = rq(srv, "POST", "%s/hash/%s" % (MP, alg),  # hvac knows no sha3
               json={"input": b64(data), "format": "base64"}).json()["data"]["sum"]
        assert unb64(s) == fn(data).digest(), alg
    r = rq(srv, "POST", "%s/hash/md5" % MP, json={"input": b64(data)})
    assert r.status_code == 400 and H.errors_of(r) == ["unsupported algorithm md5"]
    rb = t.generate_random_bytes(n_bytes=48, mount_point=MP)["data"]["random_bytes"]
    assert len(unb64(rb)) == 48
    r = rq(srv, "POST", "%s/random/16" % MP, json={"format": "hex"})
    assert len(bytes.fromhex(r.json()["data"]["random_bytes"])) == 16
    r = rq(srv, "POST", "%s/random/platform/8" % MP, json={})
    assert len(unb64(r.json()["data"]["random_bytes"])) == 8
    r = rq(srv, "POST", "%s/random/0" % MP, json={})
    assert r.status_code == 400 and H.errors_of(r) == ["'bytes' cannot be less than 1"]


def test_policy_allows_encrypt_not_decrypt(srv, t):
    k = name()
    t.create_key(k, mount_point=MP)
    c = srv.client()
    c.sys.create_or_update_policy("enc-only-" + k,
                                  'path "%s/encrypt/%s" {\n capabilities = ["update"]\n}\n'
                                  % (MP, k))
    tok = c.auth.token.create(policies=["enc-only-" + k])["auth"]["client_token"]
    ct = srv.client(tok).secrets.transit.encrypt_data(k, b64("p"), mount_point=MP)
    with pytest.raises(hvac.exceptions.Forbidden):
        srv.client(tok).secrets.transit.decrypt_data(k, ct["data"]["ciphertext"],
                                                     mount_point=MP)
    # Upsert needs "create": this token cannot make new keys through encrypt.
    with pytest.raises(hvac.exceptions.Forbidden):
        srv.client(tok).secrets.transit.encrypt_data(name(), b64("p"), mount_point=MP)


@pytest.mark.timeout_s(180)
def test_through_standby(cluster_factory):
    c3 = cluster_factory(3)
    leader = c3.leader()
    leader.client(c3.root_token).sys.enable_secrets_engine("transit", path=MP)
    sb = c3.standbys()[0]
    t = sb.client(c3.root_token).secrets.transit
    k = name()
    t.create_key(k, mount_point=MP)
    ct = t.encrypt_data(k, b64("via standby"), mount_point=MP)["data"]["ciphertext"]
    t.rotate_key(k, mount_point=MP)
    lt = leader.client(c3.root_token).secrets.transit
    assert unb64(lt.decrypt_data(k, ct, mount_point=MP)["data"]["plaintext"]) == b"via standby"
    rw = t.rewrap_data(k, ct, mount_point=MP)["data"]["ciphertext"]
    assert rw.startswith("vault:v2:")
    assert unb64(t.decrypt_data(k, rw, mount_point=MP)["data"]["plaintext"]) == b"via standby"


def test_sys_tools_share_the_handlers(srv):
    data = b"tools"
    r = rq(srv, "POST", "sys/tools/hash/sha2-512", json={"input": b64(data)})
    assert r.status_code == 200 and r.json()["data"]["sum"] == hashlib.sha512(data).hexdigest()
    r = rq(srv, "POST", "sys/tools/hash", json={"input": b64(data), "algorithm": "sha3-224"})
    assert r.json()["data"]["sum"] == hashlib.sha3_224(data).hexdigest()
    r = rq(srv, "POST", "sys/tools/random/20", json={"format": "hex"})
    assert len(bytes.fromhex(r.json()["data"]["random_bytes"])) == 20
    r = rq(srv, "POST", "sys/tools/random", json={"bytes": 200000})
    assert r.status_code == 400 and H.errors_of(r) == ["'bytes' should be less than 131072"]
    # Not unauthenticated: no token, no bytes.
    assert srv.request("POST", "sys/tools/random", json={}).status_code == 403


def test_export_only_when_exportable(srv, t):
    k = name()
    t.create_key(k, mount_point=MP)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="not exportable"):
        t.export_key(k, key_type="encryption-key", mount_point=MP)
    e = name()
    t.create_key(e, exportable=True, mount_point=MP)
    keys = t.export_key(e, key_type="encryption-key", mount_point=MP)["data"]["keys"]
    assert list(keys) == ["1"] and len(unb64(keys["1"])) == 32
    # The exported key really is the key: AES-GCM over nonce || ciphertext || tag.
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    ct = t.encrypt_data(e, b64("interop"), mount_point=MP)["data"]["ciphertext"]
    raw = unb64(ct.split(":", 2)[2])
    assert AESGCM(unb64(keys["1"])).decrypt(raw[:12], raw[12:], None) == b"interop"


def test_derived_convergent_matches_vaults_construction(srv, t):
    """Recomputed outside custos from the exported base key, with Vault's construction:
    HKDF-SHA256(key, salt none, info context) → enc key || 32-byte HMAC key, nonce =
    HMAC-SHA256(hmac key, plaintext)[:12], AES-256-GCM, "vault:v1:" + b64(nonce||ct||tag)."""
    import hmac as hm
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    k = name()
    srv.client().write("%s/keys/%s" % (MP, k), derived=True, convergent_encryption=True,
                       exportable=True)
    base = unb64(t.export_key(k, key_type="encryption-key", mount_point=MP)["data"]["keys"]["1"])
    ctx, pt = b"tenant-7", b"card 4111"
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=ctx).derive(base)
    nonce = hm.new(okm[32:], pt, hashlib.sha256).digest()[:12]
    want = "vault:v1:" + base64.b64encode(nonce + AESGCM(okm[:32]).encrypt(nonce, pt, None)).decode()
    got = t.encrypt_data(k, b64(pt), context=b64(ctx), mount_point=MP)["data"]["ciphertext"]
    assert got == want


# ---------------------------------------------------------------- signatures


def _pub(t, k, ver="1"):
    return t.read_key(k, mount_point=MP)["data"]["keys"][ver]["public_key"]


def _raw_sig(sig):
    assert sig.startswith("vault:v1:")
    return unb64(sig.split(":", 2)[2])


@pytest.mark.timeout_s(180)
def test_sign_verify_with_hvac_and_an_independent_check(srv, t):
    """custos signs; hvac verifies through custos and Python's cryptography verifies
    the same signature against the public key that keys/:name returns."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding

    msg = b"attack at dawn"
    # ed25519: the message itself is signed; the public key is base64 of 32 bytes
    k = name()
    t.create_key(k, key_type="ed25519", mount_point=MP)
    d = t.read_key(k, mount_point=MP)["data"]
    assert d["supports_signing"] and d["keys"]["1"]["name"] == "ed25519"
    assert d["keys"]["1"]["creation_time"].endswith("Z")
    sig = t.sign_data(k, b64(msg), mount_point=MP)["data"]["signature"]
    assert t.verify_signed_data(k, b64(msg), signature=sig, mount_point=MP)["data"]["valid"]
    assert not t.verify_signed_data(k, b64(b"other"), signature=sig, mount_point=MP)["data"]["valid"]
    ed25519.Ed25519PublicKey.from_public_bytes(unb64(_pub(t, k))).verify(_raw_sig(sig), msg)

    # ecdsa-p256, asn1 (the default): a DER signature over SHA-256 of the input
    k = name()
    t.create_key(k, key_type="ecdsa-p256", mount_point=MP)
    assert t.read_key(k, mount_point=MP)["data"]["keys"]["1"]["name"] == "P-256"
    sig = t.sign_data(k, b64(msg), hash_algorithm="sha2-256", mount_point=MP)["data"]["signature"]
    assert t.verify_signed_data(k, b64(msg), signature=sig, hash_algorithm="sha2-256",
                                mount_point=MP)["data"]["valid"]
    pub = serialization.load_pem_public_key(_pub(t, k).encode())
    pub.verify(_raw_sig(sig), msg, ec.ECDSA(hashes.SHA256()))
    # jws: r || s, base64url without padding
    jws = t.sign_data(k, b64(msg), marshaling_algorithm="jws", mount_point=MP)["data"]["signature"]
    raw = base64.urlsafe_b64decode(jws.split(":", 2)[2] + "==")
    assert len(raw) == 64
    assert t.verify_signed_data(k, b64(msg), signature=jws, marshaling_algorithm="jws",
                                mount_point=MP)["data"]["valid"]

    # rsa-2048, pss (the default, salt "auto" = the longest) and pkcs1v15, sha2-384
    k = name()
    t.create_key(k, key_type="rsa-2048", mount_point=MP)
    pub = serialization.load_pem_public_key(_pub(t, k).encode())
    sig = t.sign_data(k, b64(msg), hash_algorithm="sha2-384", mount_point=MP)["data"]["signature"]
    pub.verify(_raw_sig(sig), msg,
               padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=padding.PSS.AUTO),
               hashes.SHA384())
    assert t.verify_signed_data(k, b64(msg), signature=sig, hash_algorithm="sha2-384",
                                mount_point=MP)["data"]["valid"]
    sig = t.sign_data(k, b64(msg), signature_algorithm="pkcs1v15",
                      mount_point=MP)["data"]["signature"]
    pub.verify(_raw_sig(sig), msg, padding.PKCS1v15(), hashes.SHA256())
    assert t.verify_signed_data(k, b64(msg), signature=sig, signature_algorithm="pkcs1v15",
                                mount_point=MP)["data"]["valid"]
    # the pkcs1v15 signature is not a PSS one: valid false, not an error
    assert not t.verify_signed_data(k, b64(msg), signature=sig,
                                    mount_point=MP)["data"]["valid"]


def test_sign_errors_rotation_and_export(srv, t):
    k = name()
    t.create_key(k, key_type="ecdsa-p384", mount_point=MP)
    old = t.sign_data(k, b64("x"), mount_point=MP)["data"]["signature"]
    t.rotate_key(k, mount_point=MP)
    new = t.sign_data(k, b64("x"), mount_point=MP)["data"]
    assert new["signature"].startswith("vault:v2:") and new["key_version"] == 2
    assert t.verify_signed_data(k, b64("x"), signature=old, mount_point=MP)["data"]["valid"]
    # a malformed signature is a 400 with Vault's message; a tampered one is valid false
    r = rq(srv, "POST", "%s/verify/%s" % (MP, k), json={"input": b64("x"), "signature": "vault:v1:AAAA"})
    assert r.status_code == 400 and r.json()["errors"] == ["supplied signature is invalid"]
    r = rq(srv, "POST", "%s/verify/%s" % (MP, k), json={"input": b64("x"), "signature": "nope"})
    assert r.status_code == 400 and r.json()["errors"] == ["invalid signature: no prefix"]
    r = rq(srv, "POST", "%s/sign/%s" % (MP, k), json={"input": b64("x"), "key_version": 9})
    assert r.status_code == 400
    assert r.json()["errors"] == ["requested version for signing is higher than the latest key version"]
    a = name()
    t.create_key(a, mount_point=MP)
    r = rq(srv, "POST", "%s/sign/%s" % (MP, a), json={"input": b64("x")})
    assert r.status_code == 400 and r.json()["errors"] == ["key type aes256-gcm96 does not support signing"]
    # the hash algorithm in the path, and batch
    r = rq(srv, "POST", "%s/sign/%s/sha2-512" % (MP, k),
           json={"batch_input": [{"input": b64("a"), "reference": "r1"}, {"input": "%%"}]})
    assert r.status_code == 200, r.text
    res = r.json()["data"]["batch_results"]
    assert res[0]["reference"] == "r1" and res[0]["signature"].startswith("vault:v2:")
    assert "error" in res[1]
    r = rq(srv, "POST", "%s/verify/%s/sha2-512" % (MP, k),
           json={"input": b64("a"), "signature": res[0]["signature"]})
    assert r.json()["data"]["valid"] is True
    # public keys export without the exportable flag; private ones do not
    pk = rq(srv, "GET", "%s/export/public-key/%s" % (MP, k)).json()["data"]["keys"]
    assert sorted(pk) == ["1", "2"] and pk["2"].startswith("-----BEGIN PUBLIC KEY-----")
    r = rq(srv, "GET", "%s/export/signing-key/%s" % (MP, k))
    assert r.status_code == 400 and r.json()["errors"] == ["private key material is not exportable"]


def test_rsa_encrypt_decrypt_interoperates(srv, t):
    """An RSA key encrypts with RSA-OAEP/SHA-256 as Vault: a ciphertext made by Python's
    cryptography with the key's public key decrypts in custos."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    k = name()
    t.create_key(k, key_type="rsa-2048", mount_point=MP)
    d = t.read_key(k, mount_point=MP)["data"]
    assert d["supports_encryption"] and d["supports_decryption"]
    ct = t.encrypt_data(k, b64("secret"), mount_point=MP)["data"]["ciphertext"]
    assert ct.startswith("vault:v1:") and len(unb64(ct[9:])) == 256
    assert unb64(t.decrypt_data(k, ct, mount_point=MP)["data"]["plaintext"]) == b"secret"
    pub = serialization.load_pem_public_key(_pub(t, k).encode())
    mine = pub.encrypt(b"from outside", padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                                                      algorithm=hashes.SHA256(), label=None))
    pt = t.decrypt_data(k, "vault:v1:" + b64(mine), mount_point=MP)["data"]["plaintext"]
    assert unb64(pt) == b"from outside"


def test_derived_ed25519_matches_vaults_construction(srv, t):
    """A derived ed25519 key signs with seed = HKDF-SHA256(ikm = the exported 64-byte key,
    info = context)[:32], as Vault's DeriveKey; checked with Python's cryptography."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    k = name()
    srv.client().write("%s/keys/%s" % (MP, k), type="ed25519", derived=True, exportable=True)
    ctx = b"tenant-42"
    d = t.sign_data(k, b64("msg"), context=b64(ctx), mount_point=MP)["data"]
    base = unb64(rq(srv, "GET", "%s/export/signing-key/%s/1" % (MP, k)).json()["data"]["keys"]["1"])
    assert len(base) == 64
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=ctx).derive(base)
    pub = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key()
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert unb64(d["public_key"]) == raw
    pub.verify(_raw_sig(d["signature"]), b"msg")
    assert t.verify_signed_data(k, b64("msg"), signature=d["signature"], context=b64(ctx),
                                mount_point=MP)["data"]["valid"]
    assert not t.verify_signed_data(k, b64("msg"), signature=d["signature"],
                                    context=b64(b"other"), mount_point=MP)["data"]["valid"]
