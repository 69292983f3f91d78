"""ACME (RFC 8555) served by the PKI engine (engines/acme*.c), end to end against a real
custos over TLS:

1. a protocol client written here with python3-cryptography drives new-account,
   new-order, http-01 (answered by a small HTTP server on loopback), finalize, cert,
   revoke-cert, key-change and EAB, and every refusal is an RFC 8555 problem document;
2. Debian's certbot obtains (--standalone http-01), renews and revokes a certificate, after
   which `openssl ocsp` and the CRL say revoked;
3. Ansible's community.hashi_vault.vault_pki_generate_certificate issues a certificate;
4. on a 3-node cluster an order goes through a standby, and a nonce fetched from one node
   is good once on another.

The validator connects to the port `acme_test_http_port` names (a test-only server key).
"""
import base64
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import threading
import time

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

import custos_harness as H

PROBLEM = "application/problem+json"
ERR = "urn:ietf:params:acme:error:"


def b64u(b):
    if isinstance(b, str):
        b = b.encode()
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


# ---------------------------------------------------------------------------- http-01 server
class Http01(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        self.tokens = {}
        super().__init__(("127.0.0.1", 0), _Http01Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self):
        return self.server_address[1]


class _Http01Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        prefix = "/.well-known/acme-challenge/"
        body = self.server.tokens.get(self.path[len(prefix):]) if self.path.startswith(
            prefix) else None
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *a):
        pass


# ---------------------------------------------------------------------------- the ACME client
class Key:
    def __init__(self, kind="ec"):
        self.kind = kind
        if kind == "ec":
            self.k = ec.generate_private_key(ec.SECP256R1())
        elif kind == "rsa":
            self.k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            self.k = ed25519.Ed25519PrivateKey.generate()

    @property
    def alg(self):
        return {"ec": "ES256", "rsa": "RS256", "ed": "EdDSA"}[self.kind]

    @property
    def jwk(self):
        pub = self.k.public_key()
        if self.kind == "ec":
            n = pub.public_numbers()
            return {"crv": "P-256", "kty": "EC", "x": b64u(n.x.to_bytes(32, "big")),
                    "y": b64u(n.y.to_bytes(32, "big"))}
        if self.kind == "rsa":
            n = pub.public_numbers()
            return {"e": b64u(n.e.to_bytes((n.e.bit_length() + 7) // 8, "big")), "kty": "RSA",
                    "n": b64u(n.n.to_bytes((n.n.bit_length() + 7) // 8, "big"))}
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": b64u(raw)}

    def thumbprint(self):
        return b64u(hashlib.sha256(json.dumps(self.jwk, sort_keys=True,
                                              separators=(",", ":")).encode()).digest())

    def sign(self, data):
        if self.kind == "ec":
            r, s = decode_dss_signature(self.k.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        if self.kind == "rsa":
            return self.k.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return self.k.sign(data)


def jws(key, url, payload, nonce=None, kid=None, use_jwk=None):
    prot = {"alg": key.alg, "url": url}
    if nonce is not None:
        prot["nonce"] = nonce
    if kid and not use_jwk:
        prot["kid"] = kid
    else:
        prot["jwk"] = key.jwk
    p = b64u(json.dumps(prot))
    pl = "" if payload is None else b64u(json.dumps(payload))
    sig = key.sign(("%s.%s" % (p, pl)).encode())
    return {"protected": p, "payload": pl, "signature": b64u(sig)}


class Client:
    def __init__(self, srv, directory, key=None):
        self.srv = srv
        self.verify = srv.tls[0]
        self.dir_url = directory
        self.key = key or Key()
        self.kid = None
        self.s = requests.Session()
        self.s.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
        self.s.verify = self.verify
        self.d = self.s.get(directory, timeout=30).json()
        self.nonce = None

    def new_nonce(self):
        r = self.s.head(self.d["newNonce"], timeout=30)
        assert r.status_code == 200, r.text
        return r.headers["Replay-Nonce"]

    def post(self, url, payload, key=None, kid=True, nonce=None, raw_body=None):
        key = key or self.key
        if nonce is None:
            nonce = self.nonce or self.new_nonce()
        self.nonce = None
        body = raw_body if raw_body is not None else jws(
            key, url, payload, nonce=nonce, kid=self.kid if kid else None, use_jwk=not kid)
        r = self.s.post(url, data=json.dumps(body) if not isinstance(body, (bytes, str)) else body,
                        headers={"Content-Type": "application/jose+json"}, timeout=60)
        self.nonce = r.headers.get("Replay-Nonce")
        return r

    def register(self, **extra):
        payload = {"termsOfServiceAgreed": True}
        payload.update(extra)
        r = self.post(self.d["newAccount"], payload, kid=False)
        assert r.status_code in (200, 201), r.text
        self.kid = r.headers["Location"]
        return r

    def order(self, idents):
        ids = [{"type": t, "value": v} for t, v in idents]
        return self.post(self.d["newOrder"], {"identifiers": ids})

    def poll(self, url, want, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            r = self.post(url, None)
            assert r.status_code == 200, r.text
            if r.json()["status"] in want or time.monotonic() > deadline:
                return r.json()
            time.sleep(0.3)


def load_pems(data):
    """Every certificate of a PEM chain (python3-cryptography 38 has no
    load_pem_x509_certificates)."""
    end = b"-----END CERTIFICATE-----"
    return [x509.load_pem_x509_certificate(p + end) for p in data.split(end) if b"BEGIN" in p]


def problem(r, typ, status=None):
    assert r.headers.get("Content-Type", "").startswith(PROBLEM), (r.status_code, r.text)
    body = r.json()
    assert body["type"] == ERR + typ, body
    if status:
        assert r.status_code == status, (r.status_code, body)
    assert r.headers.get("Replay-Nonce"), r.headers
    return body


def make_csr(names, ips=(), key=None, cn=None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    import ipaddress
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    b = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else []))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    csr = b.sign(key, hashes.SHA256())
    return key, csr.public_bytes(serialization.Encoding.DER)


# ---------------------------------------------------------------------------- fixtures
def rq(srv, method, path, **kw):
    return srv.request(method, path, token=srv.root_token, **kw)


def write(srv, _path, **body):
    r = rq(srv, "POST", _path, json=body)
    assert r.status_code in (200, 204), (_path, r.status_code, r.text)
    return r.json() if r.status_code == 200 else None


def setup_pki(srv, mount="pki"):
    r = rq(srv, "POST", "sys/mounts/" + mount, json={"type": "pki",
                                                   "config": {"max_lease_ttl": "87600h"}})
    assert r.status_code in (200, 204), r.text
    write(srv, mount + "/root/generate/internal", common_name="ACME Test Root",
          key_type="ec", ttl="8760h")
    write(srv, mount + "/config/cluster", path="%s/v1/%s" % (srv.url, mount))
    write(srv, mount + "/config/urls",
          ocsp_servers=["%s/v1/%s/ocsp" % (srv.url, mount)],
          crl_distribution_points=["%s/v1/%s/crl" % (srv.url, mount)])
    write(srv, mount + "/roles/web", allowed_domains=["localhost"], allow_bare_domains=True,
          allow_subdomains=True, allow_ip_sans=True, ttl="24h", max_ttl="72h",
          key_type="any")
    write(srv, mount + "/config/acme", enabled=True)


@pytest.fixture(scope="module")
def http01():
    s = Http01()
    yield s
    s.shutdown()


@pytest.fixture(scope="module")
def srv(tmp_path_factory, http01):
    d = tmp_path_factory.mktemp("acme")
    tls = H.make_cert(d)
    s = H.Server(d / "n1", name="acme1", tls=tls,
                 extra_config="acme_test_http_port = %d\n" % http01.port)
    try:
        s.start()
        H.init_and_unseal(s)
        H.wait_active(s)
        setup_pki(s)
        yield s
    finally:
        s.cleanup()


def directory(srv, prefix="", mount="pki"):
    return "%s/v1/%s/%sacme/directory" % (srv.url, mount, prefix)


def authorize_http01(c, http01, order):
    for az in order["authorizations"]:
        a = c.post(az, None).json()
        if a["status"] == "valid":
            continue
        ch = next(x for x in a["challenges"] if x["type"] == "http-01")
        http01.tokens[ch["token"]] = "%s.%s" % (ch["token"], c.key.thumbprint())
        r = c.post(ch["url"], {})
        assert r.status_code == 200, r.text
        assert r.json()["status"] in ("processing", "valid"), r.json()
        assert 'rel="up"' in r.headers.get("Link", ""), r.headers
        a = c.poll(az, ("valid", "invalid"))
        assert a["status"] == "valid", a


# ---------------------------------------------------------------------------- 1. protocol
def test_directory_and_nonces(srv):
    r = requests.get(directory(srv), verify=srv.tls[0], timeout=30)
    assert r.status_code == 200
    d = r.json()
    base = "%s/v1/pki/acme/" % srv.url
    assert d["newNonce"] == base + "new-nonce" and d["newAccount"] == base + "new-account"
    assert d["newOrder"] == base + "new-order" and d["revokeCert"] == base + "revoke-cert"
    assert d["keyChange"] == base + "key-change"
    assert d["meta"]["externalAccountRequired"] is False
    h = requests.head(d["newNonce"], verify=srv.tls[0], timeout=30)
    assert h.status_code == 200 and h.headers["Replay-Nonce"]
    assert "no-store" in h.headers.get("Cache-Control", "")
    g = requests.get(d["newNonce"], verify=srv.tls[0], timeout=30)
    assert g.status_code == 204 and g.headers["Replay-Nonce"] != h.headers["Replay-Nonce"]
    # role and issuer directories
    r = requests.get(directory(srv, "roles/web/"), verify=srv.tls[0], timeout=30)
    assert r.json()["newOrder"] == "%s/v1/pki/roles/web/acme/new-order" % srv.url
    r = requests.get(directory(srv, "issuer/default/roles/web/"), verify=srv.tls[0], timeout=30)
    assert r.status_code == 200, r.text
    r = requests.get(directory(srv, "roles/nosuch/"), verify=srv.tls[0], timeout=30)
    assert r.status_code == 400 and r.json()["type"] == ERR + "malformed"


def test_order_http01_finalize_cert_revoke(srv, http01):
    c = Client(srv, directory(srv, "roles/web/"))
    r = c.register(contact=["mailto:ops@example.com"])
    assert r.status_code == 201 and r.json()["status"] == "valid"
    assert r.json()["contact"] == ["mailto:ops@example.com"]
    assert 'rel="index"' in r.headers["Link"]
    kid = c.kid
    # same key again: the same account, 200
    r = c.post(c.d["newAccount"], {"termsOfServiceAgreed": True}, kid=False)
    assert r.status_code == 200 and r.headers["Location"] == kid
    # the account URL answers and updates the contact
    r = c.post(kid, {"contact": ["mailto:sec@example.com"]})
    assert r.status_code == 200 and r.json()["contact"] == ["mailto:sec@example.com"]

    r = c.order([("dns", "localhost"), ("ip", "127.0.0.1")])
    assert r.status_code == 201, r.text
    order_url = r.headers["Location"]
    order = r.json()
    assert order["status"] == "pending" and len(order["authorizations"]) == 2
    a = c.post(order["authorizations"][1], None).json()
    assert a["identifier"] == {"type": "ip", "value": "127.0.0.1"}
    assert {x["type"] for x in a["challenges"]} == {"http-01", "tls-alpn-01"}
    # finalize before the authorizations are valid: orderNotReady
    _, der = make_csr(["localhost"], ["127.0.0.1"])
    problem(c.post(order["finalize"], {"csr": b64u(der)}), "orderNotReady", 403)

    authorize_http01(c, http01, order)
    order = c.post(order_url, None).json()
    assert order["status"] == "ready", order
    # a CSR that does not match the order exactly is refused, the order stays ready
    _, bad = make_csr(["localhost", "other.localhost"], ["127.0.0.1"])
    problem(c.post(order["finalize"], {"csr": b64u(bad)}), "badCSR", 400)
    _, bad = make_csr(["localhost"])
    problem(c.post(order["finalize"], {"csr": b64u(bad)}), "badCSR", 400)
    assert c.post(order_url, None).json()["status"] == "ready"
    key, der = make_csr(["localhost"], ["127.0.0.1"])
    r = c.post(order["finalize"], {"csr": b64u(der)})
    assert r.status_code == 200, r.text
    order = r.json()
    assert order["status"] == "valid" and order["certificate"]
    r = c.post(order["certificate"], None)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/pem-certificate-chain")
    certs = load_pems(r.content)
    assert len(certs) == 2
    leaf = certs[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert leaf.public_key().public_numbers() == key.public_key().public_numbers()
    certs[1].public_key().verify(leaf.signature, leaf.tbs_certificate_bytes,
                                 ec.ECDSA(leaf.signature_hash_algorithm))
    # the account's orders list has it
    lst = c.post(c.d["newOrder"].replace("new-order", "orders"), None).json()["orders"]
    assert order_url in lst
    # another account may not read or revoke it
    other = Client(srv, directory(srv, "roles/web/"))
    other.register()
    problem(other.post(order_url, None), "malformed", 404)
    der_leaf = leaf.public_bytes(serialization.Encoding.DER)
    problem(other.post(c.d["revokeCert"], {"certificate": b64u(der_leaf)}), "unauthorized", 403)
    # revoke with the account key
    r = c.post(c.d["revokeCert"], {"certificate": b64u(der_leaf), "reason": 4})
    assert r.status_code == 200, r.text
    problem(c.post(c.d["revokeCert"], {"certificate": b64u(der_leaf)}), "alreadyRevoked", 400)
    serial = "%x" % leaf.serial_number
    serial = ":".join(serial.zfill(len(serial) + len(serial) % 2)[i:i + 2]
                      for i in range(0, len(serial) + len(serial) % 2, 2))
    r = rq(srv, "GET", "pki/cert/" + serial)
    assert r.status_code == 200 and r.json()["data"]["revocation_time"] > 0, r.text


def test_revoke_with_certificate_key(srv, http01):
    c = Client(srv, directory(srv))  # sign-verbatim directory
    c.register()
    # (the validator resolves names through DNS: "localhost" is one that resolves)
    order = c.order([("ip", "127.0.0.1")]).json()
    authorize_http01(c, http01, order)
    key, der = make_csr([], ["127.0.0.1"], cn="127.0.0.1")
    order = c.post(order["finalize"], {"csr": b64u(der)}).json()
    assert order["status"] == "valid", order
    leaf = load_pems(c.post(order["certificate"], None).content)[0]
    der_leaf = leaf.public_bytes(serialization.Encoding.DER)
    ck = Key.__new__(Key)
    ck.kind, ck.k = "ec", key
    # a stranger's key (jwk) is refused; the certificate's own key revokes it
    stranger = Key()
    problem(c.post(c.d["revokeCert"], {"certificate": b64u(der_leaf)}, key=stranger, kid=False),
            "unauthorized", 403)
    r = c.post(c.d["revokeCert"], {"certificate": b64u(der_leaf)}, key=ck, kid=False)
    assert r.status_code == 200, r.text


def test_error_cases(srv):
    c = Client(srv, directory(srv, "roles/web/"))
    c.register()
    url = c.d["newOrder"]
    ids = {"identifiers": [{"type": "dns", "value": "localhost"}]}
    # a nonce we never issued
    problem(c.post(url, ids, nonce=b64u(os.urandom(24))), "badNonce", 400)
    # a replayed nonce: good once, then badNonce
    n = c.new_nonce()
    assert c.post(url, ids, nonce=n).status_code == 201
    problem(c.post(url, ids, nonce=n), "badNonce", 400)
    # the same request body replayed verbatim
    body = json.dumps(jws(c.key, url, ids, nonce=c.new_nonce(), kid=c.kid))
    assert c.post(url, None, raw_body=body).status_code == 201
    problem(c.post(url, None, raw_body=body), "badNonce", 400)
    # signed by another key than the account's
    problem(c.post(url, ids, key=Key()), "malformed", 400)
    # url in the JWS is not the URL posted to
    body = json.dumps(jws(c.key, url + "x", ids, nonce=c.new_nonce(), kid=c.kid))
    problem(c.post(url, None, raw_body=body), "unauthorized", 401)
    # kid of an account that does not exist
    body = json.dumps(jws(c.key, url, ids, nonce=c.new_nonce(),
                          kid=c.kid.rsplit("/", 1)[0] + "/nosuchaccount"))
    problem(c.post(url, None, raw_body=body), "accountDoesNotExist", 400)
    # an unsupported algorithm
    prot = b64u(json.dumps({"alg": "HS256", "nonce": c.new_nonce(), "url": url, "kid": c.kid}))
    body = json.dumps({"protected": prot, "payload": b64u(json.dumps(ids)), "signature": "AAAA"})
    problem(c.post(url, None, raw_body=body), "badSignatureAlgorithm", 400)
    # not a JWS at all
    problem(c.post(url, None, raw_body='{"a":1}'), "malformed", 400)
    # identifiers the role does not allow
    problem(c.order([("dns", "example.com")]), "rejectedIdentifier", 400)
    problem(c.order([("dns", "bad_name..localhost")]), "rejectedIdentifier", 400)
    problem(c.order([("email", "a@localhost")]), "unsupportedIdentifier", 400)
    # wildcards get dns-01 only
    write(srv, "pki/roles/wild", allowed_domains=["localhost"], allow_subdomains=True,
          allow_wildcard_certificates=True)
    w = Client(srv, directory(srv, "roles/wild/"))
    w.register()
    o = w.order([("dns", "*.localhost")]).json()
    a = w.post(o["authorizations"][0], None).json()
    assert a["wildcard"] is True and a["identifier"]["value"] == "localhost"
    assert [x["type"] for x in a["challenges"]] == ["dns-01"]
    # onlyReturnExisting with an unknown key
    n = Client(srv, directory(srv))
    problem(n.post(n.d["newAccount"], {"onlyReturnExisting": True}, kid=False),
            "accountDoesNotExist", 400)
    # a deactivated account can do nothing more
    r = c.post(c.kid, {"status": "deactivated"})
    assert r.status_code == 200 and r.json()["status"] == "deactivated"
    problem(c.order([("dns", "localhost")]), "unauthorized", 401)


def test_key_change(srv, http01):
    c = Client(srv, directory(srv))
    c.register()
    old = c.key
    new = Key("rsa")
    url = c.d["keyChange"]
    inner = jws(new, url, {"account": c.kid, "oldKey": old.jwk}, nonce=None, use_jwk=True)
    # the inner JWS must not carry a nonce
    bad_inner = jws(new, url, {"account": c.kid, "oldKey": old.jwk}, nonce="x", use_jwk=True)
    problem(c.post(url, bad_inner), "malformed", 400)
    # oldKey must be the current key
    wrong = jws(new, url, {"account": c.kid, "oldKey": Key().jwk}, nonce=None, use_jwk=True)
    problem(c.post(url, wrong), "malformed", 400)
    r = c.post(url, inner)
    assert r.status_code == 200, r.text
    # the old key (EC) no longer signs for the account (RSA now); the new one does
    problem(c.order([("dns", "kc.localhost")]), "badSignatureAlgorithm", 400)
    c.key = new
    assert c.order([("dns", "kc.localhost")]).status_code == 201
    r = c.post(c.d["newAccount"], {"onlyReturnExisting": True}, kid=False)
    assert r.status_code == 200 and r.headers["Location"] == c.kid
    o = Client(srv, directory(srv), key=old)
    problem(o.post(o.d["newAccount"], {"onlyReturnExisting": True}, kid=False),
            "accountDoesNotExist", 400)


def eab_binding(key, url, kid, hmac_key):
    import hmac as _h
    prot = b64u(json.dumps({"alg": "HS256", "kid": kid, "url": url}))
    pl = b64u(json.dumps(key.jwk))
    mac = _h.new(hmac_key, ("%s.%s" % (prot, pl)).encode(), hashlib.sha256).digest()
    return {"protected": prot, "payload": pl, "signature": b64u(mac)}


def test_eab(srv):
    write(srv, "pki/config/acme", eab_policy="new-account-required")
    try:
        d = requests.get(directory(srv), verify=srv.tls[0], timeout=30).json()
        assert d["meta"]["externalAccountRequired"] is True
        c = Client(srv, directory(srv))
        problem(c.post(c.d["newAccount"], {"termsOfServiceAgreed": True}, kid=False),
                "externalAccountRequired", 400)
        # new-eab needs a token
        r = srv.request("POST", "pki/acme/new-eab")
        assert r.status_code == 403
        e = rq(srv, "POST", "pki/acme/new-eab").json()["data"]
        assert e["acme_directory"] == "acme/" and e["key_type"] == "hs"
        lst = rq(srv, "LIST", "pki/eab").json()["data"]["keys"]
        assert e["id"] in lst
        hk = unb64u(e["key"])
        # a wrong HMAC key is refused
        bad = eab_binding(c.key, c.d["newAccount"], e["id"], b"x" * 32)
        problem(c.post(c.d["newAccount"], {"externalAccountBinding": bad}, kid=False),
                "unauthorized", 400)
        good = eab_binding(c.key, c.d["newAccount"], e["id"], hk)
        r = c.post(c.d["newAccount"], {"termsOfServiceAgreed": True,
                                       "externalAccountBinding": good}, kid=False)
        assert r.status_code == 201, r.text
        assert r.json()["externalAccountBinding"]["kid"] == e["id"]
        # used once: another account cannot bind with it
        c2 = Client(srv, directory(srv))
        again = eab_binding(c2.key, c2.d["newAccount"], e["id"], hk)
        problem(c2.post(c2.d["newAccount"], {"externalAccountBinding": again}, kid=False),
                "unauthorized", 400)
        # a key for the role directory does not work on the default one
        e2 = rq(srv, "POST", "pki/roles/web/acme/new-eab").json()["data"]
        assert e2["acme_directory"] == "roles/web/acme/"
        other = eab_binding(c2.key, c2.d["newAccount"], e2["id"], unb64u(e2["key"]))
        problem(c2.post(c2.d["newAccount"], {"externalAccountBinding": other}, kid=False),
                "unauthorized", 400)
        assert rq(srv, "DELETE", "pki/eab/" + e2["id"]).status_code == 204
        assert e2["id"] not in (rq(srv, "LIST", "pki/eab").json().get("data") or {}).get(
            "keys", [])
    finally:
        write(srv, "pki/config/acme", eab_policy="not-required")


def test_config_acme(srv):
    r = rq(srv, "GET", "pki/config/acme").json()["data"]
    assert r["enabled"] is True and r["allowed_roles"] == ["*"]
    assert r["default_directory_policy"] == "sign-verbatim"
    r = rq(srv, "POST", "pki/config/acme", json={"eab_policy": "sometimes"})
    assert r.status_code == 400
    r = rq(srv, "POST", "pki/config/acme", json={"default_directory_policy": "nope"})
    assert r.status_code == 400
    write(srv, "pki/config/acme", default_directory_policy="forbid")
    try:
        r = requests.get(directory(srv), verify=srv.tls[0], timeout=30)
        assert r.status_code == 403 and r.json()["type"] == ERR + "unauthorized"
        # role directories still work
        assert requests.get(directory(srv, "roles/web/"), verify=srv.tls[0],
                            timeout=30).status_code == 200
        write(srv, "pki/config/acme", default_directory_policy="role:web")
        c = Client(srv, directory(srv))
        c.register()
        problem(c.order([("dns", "example.com")]), "rejectedIdentifier", 400)
        write(srv, "pki/config/acme", allowed_roles=["other"])
        r = requests.get(directory(srv, "roles/web/"), verify=srv.tls[0], timeout=30)
        assert r.status_code == 403
    finally:
        write(srv, "pki/config/acme", default_directory_policy="sign-verbatim",
              allowed_roles=["*"])
    # disabled: every ACME path answers a problem
    write(srv, "pki/config/acme", enabled=False)
    try:
        r = requests.get(directory(srv), verify=srv.tls[0], timeout=30)
        assert r.status_code == 403
    finally:
        write(srv, "pki/config/acme", enabled=True)


# ---------------------------------------------------------------------------- 2. certbot
def _certbot(tmp, srv, port, *args):
    env = dict(os.environ, REQUESTS_CA_BUNDLE=srv.tls[0])
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env.pop(k, None)
    argv = ["certbot", "--config-dir", str(tmp / "conf"), "--work-dir", str(tmp / "work"),
            "--logs-dir", str(tmp / "logs"), "--non-interactive",
            "--server", "%s/v1/pki/roles/web/acme/directory" % srv.url] + list(args)
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    log = ""
    try:
        log = (tmp / "logs" / "letsencrypt.log").read_text()[-4000:]
    except OSError:
        pass
    assert p.returncode == 0, "certbot %s failed:\n%s\n%s\n%s" % (args[0], p.stdout, p.stderr,
                                                                  log)
    return p


@pytest.mark.skipif(not shutil.which("certbot"), reason="certbot is not installed")
def test_certbot_obtain_renew_revoke(tmp_path, http01):
    # certbot's standalone server listens on the port the validator connects to
    d = tmp_path
    tls = H.make_cert(d)
    port = H.free_port_pair()
    s = H.Server(d / "n1", name="cb1", tls=tls, extra_config="acme_test_http_port = %d\n" % port)
    try:
        s.start()
        H.init_and_unseal(s)
        H.wait_active(s)
        setup_pki(s)
        cb = ["--standalone", "--preferred-challenges", "http", "--http-01-port", str(port),
              "--http-01-address", "127.0.0.1"]
        _certbot(d, s, port, "certonly", "--agree-tos", "--register-unsafely-without-email",
                 "-d", "localhost", "--cert-name", "lh", *cb)
        live = d / "conf" / "live" / "lh"
        cert1 = x509.load_pem_x509_certificate((live / "cert.pem").read_bytes())
        assert cert1.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == ["localhost"]
        chain = (live / "chain.pem").read_text()
        v = subprocess.run(["openssl", "verify", "-CAfile", str(live / "chain.pem"),
                            str(live / "cert.pem")], capture_output=True, text=True)
        assert v.returncode == 0, v.stdout + v.stderr
        _certbot(d, s, port, "renew", "--force-renewal", "--no-random-sleep-on-renew", *cb)
        cert2 = x509.load_pem_x509_certificate((live / "cert.pem").read_bytes())
        assert cert2.serial_number != cert1.serial_number
        _certbot(d, s, port, "revoke", "--cert-path", str(live / "cert.pem"),
                 "--no-delete-after-revoke", "--reason", "keycompromise")
        # OCSP and the CRL say revoked
        issuer = d / "issuer.pem"
        issuer.write_text(chain)
        o = subprocess.run(["openssl", "ocsp", "-issuer", str(issuer), "-cert",
                            str(live / "cert.pem"), "-url", "%s/v1/pki/ocsp" % s.url,
                            "-CAfile", str(issuer), "-VAfile", str(issuer)],
                           capture_output=True, text=True, timeout=60)
        assert ": revoked" in o.stdout, o.stdout + o.stderr
        crl = requests.get(s.url + "/v1/pki/crl/pem", verify=tls[0], timeout=30).text
        c = x509.load_pem_x509_crl(crl.encode())
        assert c.get_revoked_certificate_by_serial_number(cert2.serial_number) is not None
        assert c.get_revoked_certificate_by_serial_number(cert1.serial_number) is None
    finally:
        s.cleanup()


# ---------------------------------------------------------------------------- 3. ansible
@pytest.mark.skipif(not shutil.which("ansible"), reason="ansible is not installed")
def test_ansible_vault_pki_generate_certificate(srv, tmp_path):
    write(srv, "pki/roles/ansible", allowed_domains=["localhost"], allow_subdomains=True,
          key_type="ec", key_bits=256, ttl="1h")
    args = ("url=%s token=%s ca_cert=%s engine_mount_point=pki role_name=ansible "
            "common_name=ansible.localhost ttl=1h" % (srv.url, srv.root_token, srv.tls[0]))
    env = dict(os.environ, ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_HOME=str(tmp_path),
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
    p = subprocess.run(["ansible", "localhost", "-m",
                        "community.hashi_vault.vault_pki_generate_certificate", "-a", args],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    start = out.index("{")
    data = json.loads(out[start:])
    pem = data["data"]["data"]["certificate"]
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == \
        "ansible.localhost"


# ---------------------------------------------------------------------------- 4. cluster
def test_cluster_order_through_standby_and_shared_nonces(cluster_factory, http01):
    c = cluster_factory(n=3, tls=True, start=False)
    for n in c.nodes:
        n.extra_config = "acme_test_http_port = %d\n" % http01.port
    c.start()
    active = next(n for n in c.nodes if c.health(n) == 200)
    standbys = [n for n in c.nodes if n is not active]
    # The mount's URLs point at a standby: every ACME request goes there and is forwarded.
    sb = standbys[0]
    setup_pki(active)
    write(active, "pki/config/cluster", path="%s/v1/pki" % sb.url)
    cl = Client(sb, "%s/v1/pki/roles/web/acme/directory" % sb.url)
    assert cl.d["newOrder"].startswith(sb.url)
    cl.register()
    order = cl.order([("dns", "localhost")]).json()
    authorize_http01(cl, http01, order)
    _, der = make_csr(["localhost"])
    order = cl.post(order["finalize"], {"csr": b64u(der)}).json()
    assert order["status"] == "valid", order
    assert b"BEGIN CERTIFICATE" in cl.post(order["certificate"], None).content
    # a nonce from the other standby, used through this one: good once
    other = standbys[1]
    r = requests.head("%s/v1/pki/roles/web/acme/new-nonce" % other.url, verify=c.tls[0],
                      timeout=30)
    n = r.headers["Replay-Nonce"]
    ids = {"identifiers": [{"type": "dns", "value": "localhost"}]}
    assert cl.post(cl.d["newOrder"], ids, nonce=n).status_code == 201
    problem(cl.post(cl.d["newOrder"], ids, nonce=n), "badNonce", 400)
    # and a nonce from the active node works on a standby, once
    n = requests.head("%s/v1/pki/roles/web/acme/new-nonce" % active.url, verify=c.tls[0],
                      timeout=30).headers["Replay-Nonce"]
    assert cl.post(cl.d["newOrder"], ids, nonce=n).status_code == 201
    problem(cl.post(cl.d["newOrder"], ids, nonce=n), "badNonce", 400)


# ---------------------------------------------------------------------------- dns-01
def _free_udp_port():
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


@pytest.mark.skipif(not os.access("/usr/sbin/dnsmasq", os.X_OK), reason="dnsmasq missing")
def test_wildcard_dns01_through_dnsmasq(srv, tmp_path):
    """A wildcard order is validated by dns-01: the TXT record of _acme-challenge.<base>
    is served by dnsmasq on loopback, which config/acme's dns_resolver names."""
    c = Client(srv, directory(srv))  # sign-verbatim: any name
    c.register()
    order = c.order([("dns", "*.dns01.test")]).json()
    a = c.post(order["authorizations"][0], None).json()
    ch = a["challenges"][0]
    assert ch["type"] == "dns-01"
    ka = "%s.%s" % (ch["token"], c.key.thumbprint())
    txt = b64u(hashlib.sha256(ka.encode()).digest())
    port = _free_udp_port()
    import pwd
    dm = subprocess.Popen(["/usr/sbin/dnsmasq", "--no-daemon", "--port=%d" % port,
                           "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv",
                           "--no-hosts", "--pid-file=", "--user=%s" % pwd.getpwuid(os.getuid())[0],
                           "--txt-record=_acme-challenge.dns01.test,%s" % txt],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        write(srv, "pki/config/acme", dns_resolver="127.0.0.1:%d" % port)
        time.sleep(0.5)  # dnsmasq binds
        r = c.post(ch["url"], {})
        assert r.status_code == 200, r.text
        a = c.poll(order["authorizations"][0], ("valid", "invalid"))
        assert a["status"] == "valid", a
        _, der = make_csr(["*.dns01.test"])
        order = c.post(order["finalize"], {"csr": b64u(der)}).json()
        assert order["status"] == "valid", order
        leaf = load_pems(c.post(order["certificate"], None).content)[0]
        assert leaf.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == \
            ["*.dns01.test"]
    finally:
        dm.kill()
        dm.wait()
        write(srv, "pki/config/acme", dns_resolver="")
