"""PKI CA management (engines/pki_manage.c) and the issuer cache (engines/pki_cache.c) end to
end: root/rotate, root/replace, root/sign-self-issued, keys/generate, key and issuer
deletion; every certificate checked with `openssl verify`. The cache must never serve a
deleted, replaced or re-keyed issuer."""
import subprocess

import pytest

import custos_harness as H


def uniq(prefix):
    return prefix + H.uid()[:8]


@pytest.fixture(scope="module")
def srv(dev_server):
    return dev_server


def rq(srv, method, path, **kw):
    return srv.request(method, path, token=srv.root_token, **kw)


def mount(srv):
    mp = uniq("pkica")
    srv.client().sys.enable_secrets_engine("pki", path=mp, config={"max_lease_ttl": "87600h"})
    return mp


def write(srv, _path, **body):
    r = rq(srv, "POST", _path, json=body)
    assert r.status_code in (200, 204), (_path, r.status_code, r.text)
    return r.json() if r.status_code == 200 else None


def err(srv, _path, **body):
    r = rq(srv, "POST", _path, json=body)
    assert r.status_code == 400, (_path, r.status_code, r.text)
    return r.json()["errors"][0]


def read(srv, path):
    r = rq(srv, "GET", path)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()["data"]


def pem_file(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text if text.endswith("\n") else text + "\n")
    return str(p)


def verify(tmp_path, ca_pems, leaf_pem, untrusted=None):
    args = ["openssl", "verify", "-CAfile", pem_file(tmp_path, "ca.pem", "\n".join(ca_pems))]
    if untrusted:
        args += ["-untrusted", pem_file(tmp_path, "untrusted.pem", "\n".join(untrusted))]
    args.append(pem_file(tmp_path, "leaf.pem", leaf_pem))
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


def issue(srv, mp, role="r", **kw):
    body = dict(common_name="host.example.com")
    body.update(kw)
    return write(srv, "%s/issue/%s" % (mp, role), **body)["data"]


def setup_root(srv, mp, key_type="ec"):
    root = write(srv, "%s/root/generate/internal" % mp, common_name="Root " + mp,
                 ttl="87600h", key_type=key_type)["data"]
    write(srv, "%s/roles/r" % mp, allow_any_name=True, key_type="ec", ttl="1h", no_store=True)
    return root


def test_root_rotate_makes_next_without_changing_default_then_replace(srv, tmp_path):
    mp = mount(srv)
    old = setup_root(srv, mp)
    new = write(srv, "%s/root/rotate/internal" % mp, common_name="Root2 " + mp,
                ttl="87600h", key_type="ec")["data"]
    assert new["issuer_name"] == "next" and new["issuer_id"] != old["issuer_id"]
    assert new["key_id"] != old["key_id"]
    assert "private_key" not in new
    assert read(srv, "%s/config/issuers" % mp)["default"] == old["issuer_id"]
    # leaves still come from the old root
    leaf = issue(srv, mp)
    assert leaf["issuing_ca"] == old["certificate"]
    assert verify(tmp_path, [old["certificate"]], leaf["certificate"]).returncode == 0
    assert verify(tmp_path, [new["certificate"]], leaf["certificate"]).returncode != 0
    # "next" taken: a second rotation gets no name
    third = write(srv, "%s/root/rotate/exported" % mp, common_name="Root3 " + mp,
                  ttl="87600h", key_type="ec")["data"]
    assert third["issuer_name"] == "" and "BEGIN" in third["private_key"]
    # root/replace defaults to "next"
    rep = write(srv, "%s/root/replace" % mp)["data"]
    assert rep["default"] == new["issuer_id"]
    leaf = issue(srv, mp)
    assert leaf["issuing_ca"] == new["certificate"]
    r = verify(tmp_path, [new["certificate"]], leaf["certificate"])
    assert r.returncode == 0, r.stdout + r.stderr
    # and to a named one; bad references are refused and change nothing
    write(srv, "%s/root/replace" % mp, default=third["issuer_id"])
    assert issue(srv, mp)["issuing_ca"] == third["certificate"]
    assert "default" in err(srv, "%s/root/replace" % mp, default="default")
    assert "unable to find" in err(srv, "%s/root/replace" % mp, default="nope")
    assert read(srv, "%s/config/issuers" % mp)["default"] == third["issuer_id"]


def test_sign_self_issued_cross_signs_a_rotated_root(srv, tmp_path):
    mp = mount(srv)
    old = setup_root(srv, mp)
    new = write(srv, "%s/root/rotate/internal" % mp, common_name="Root2 " + mp,
                ttl="87600h", key_type="rsa", key_bits=2048)["data"]
    # a leaf of the new root, trusted by clients that only know the old root through the
    # cross-signed copy of the new root
    write(srv, "%s/roles/n" % mp, allow_any_name=True, key_type="ec", ttl="1h",
          issuer_ref=new["issuer_id"])
    leaf = issue(srv, mp, role="n")
    cross = write(srv, "%s/root/sign-self-issued" % mp, certificate=new["certificate"])["data"]
    assert cross["issuing_ca"] == old["certificate"]
    assert verify(tmp_path, [old["certificate"]], leaf["certificate"]).returncode != 0
    r = verify(tmp_path, [old["certificate"]], leaf["certificate"], untrusted=[cross["certificate"]])
    assert r.returncode == 0, r.stdout + r.stderr
    # by issuer reference, and the algorithm guard
    e = err(srv, "%s/issuer/%s/sign-self-issued" % (mp, old["issuer_id"]),
            certificate=new["certificate"], require_matching_certificate_algorithms=True)
    assert "does not match" in e
    # a leaf is not a CA; garbage is not a certificate
    assert "not a CA" in err(srv, "%s/root/sign-self-issued" % mp, certificate=leaf["certificate"])
    assert "PEM-decoded" in err(srv, "%s/root/sign-self-issued" % mp, certificate="nope")
    # sudo: a token without it is refused
    pol = uniq("p")
    srv.client().sys.create_or_update_policy(
        pol, 'path "%s/*" { capabilities = ["create", "update", "read"] }' % mp)
    tok = srv.client().auth.token.create(policies=[pol])["auth"]["client_token"]
    r = srv.request("POST", "%s/root/sign-self-issued" % mp, token=tok,
                    json={"certificate": new["certificate"]})
    assert r.status_code == 403


def test_keys_generate_and_root_from_it(srv, tmp_path):
    mp = mount(srv)
    k = write(srv, "%s/keys/generate/internal" % mp, key_name="k1", key_type="ec",
              key_bits=384)["data"]
    assert k["key_name"] == "k1" and k["key_type"] == "ec" and "private_key" not in k
    assert read(srv, "%s/key/k1" % mp)["key_id"] == k["key_id"]
    x = write(srv, "%s/keys/generate/exported" % mp, key_type="rsa", key_bits=2048)["data"]
    assert x["key_type"] == "rsa" and "BEGIN RSA PRIVATE KEY" in x["private_key"]
    assert "already in use" in err(srv, "%s/keys/generate/internal" % mp, key_name="k1",
                                   key_type="ec")
    assert "default" in err(srv, "%s/keys/generate/internal" % mp, key_name="default")
    assert err(srv, "%s/keys/generate/internal" % mp, key_type="dsa")
    assert err(srv, "%s/keys/generate/internal" % mp, key_type="ec", key_bits=1000)
    r = rq(srv, "POST", "%s/keys/generate/other" % mp, json={})
    assert r.status_code == 400
    keys = rq(srv, "LIST", "%s/keys" % mp).json()["data"]["keys"]
    assert sorted(keys) == sorted([k["key_id"], x["key_id"]])
    root = write(srv, "%s/root/generate/existing" % mp, common_name="R " + mp, key_ref="k1",
                 ttl="8760h")["data"]
    assert root["key_id"] == k["key_id"]
    write(srv, "%s/roles/r" % mp, allow_any_name=True, key_type="ec", ttl="1h")
    leaf = issue(srv, mp)
    assert verify(tmp_path, [root["certificate"]], leaf["certificate"]).returncode == 0


def test_key_update_delete_and_issuer_delete_are_not_served_from_cache(srv, tmp_path):
    mp = mount(srv)
    root = setup_root(srv, mp)
    issue(srv, mp)  # the cache now holds the issuer and its key
    write(srv, "%s/key/%s" % (mp, root["key_id"]), key_name="renamed")
    assert read(srv, "%s/key/renamed" % mp)["key_id"] == root["key_id"]
    assert issue(srv, mp)["issuing_ca"] == root["certificate"]
    r = rq(srv, "DELETE", "%s/key/renamed" % mp)
    assert r.status_code == 400 and "in use" in r.json()["errors"][0]
    # deleting the issuer: issuance stops at once, OCSP no longer answers for it
    r = rq(srv, "DELETE", "%s/issuer/%s" % (mp, root["issuer_id"]))
    assert r.status_code in (200, 204)
    r = rq(srv, "POST", "%s/issue/r" % mp, json={"common_name": "a.example.com"})
    assert r.status_code == 400, r.text
    # now the key can go
    r = rq(srv, "DELETE", "%s/key/renamed" % mp)
    assert r.status_code in (200, 204)
    assert rq(srv, "GET", "%s/key/renamed" % mp).status_code in (400, 404)
    # a new root in the same mount signs with its own key, not a cached one
    root2 = setup_root(srv, mp)
    leaf = issue(srv, mp)
    assert leaf["issuing_ca"] == root2["certificate"]
    assert verify(tmp_path, [root2["certificate"]], leaf["certificate"]).returncode == 0
    assert verify(tmp_path, [root["certificate"]], leaf["certificate"]).returncode != 0


def test_root_delete_then_regenerate(srv, tmp_path):
    mp = mount(srv)
    root = setup_root(srv, mp)
    issue(srv, mp)
    r = rq(srv, "DELETE", "%s/root" % mp)
    assert r.status_code == 200 and r.json()["warnings"], r.text
    assert rq(srv, "LIST", "%s/issuers" % mp).status_code == 404
    assert rq(srv, "LIST", "%s/keys" % mp).status_code == 404
    r = rq(srv, "POST", "%s/issue/r" % mp, json={"common_name": "a.example.com"})
    assert r.status_code == 400 and "no default issuer" in r.json()["errors"][0]
    root2 = setup_root(srv, mp, key_type="ed25519")
    leaf = issue(srv, mp)
    assert leaf["issuing_ca"] == root2["certificate"] != root["certificate"]
    assert verify(tmp_path, [root2["certificate"]], leaf["certificate"]).returncode == 0


def test_issuer_reissued_by_update_is_seen(srv):
    """An issuer update (usage) changes its stored record: the cache must follow."""
    mp = mount(srv)
    root = setup_root(srv, mp)
    issue(srv, mp)
    write(srv, "%s/issuer/%s" % (mp, root["issuer_id"]), usage="read-only,crl-signing")
    e = err(srv, "%s/issue/r" % mp, common_name="a.example.com")
    assert "issuing-certificates" in e
    write(srv, "%s/issuer/%s" % (mp, root["issuer_id"]),
          usage="read-only,issuing-certificates,crl-signing,ocsp-signing")
    assert issue(srv, mp)["issuing_ca"] == root["certificate"]


@pytest.mark.timeout_s(400)
def test_large_crl_rebuilt_off_the_loop_by_rotate_and_periodic(server_factory, tmp_path):
    """From 1024 revocations the periodic auto_rebuild and crl/rotate read the records in
    batches and sign on the worker pool (pki_crl.c): the CRLs they store list every
    revoked serial, carry increasing numbers and verify under the issuer."""
    import concurrent.futures
    import time

    s = server_factory(extra_config='periodic_interval = "1s"\n')
    H.init_and_unseal(s)
    mp = "pki"
    s.client().sys.enable_secrets_engine("pki", path=mp, config={"max_lease_ttl": "87600h"})
    root = setup_root(s, mp)
    write(s, "%s/roles/st" % mp, allow_any_name=True, key_type="ec", ttl="1h")
    # auto_rebuild: revocations do not rebuild; an expiry shorter than the grace period:
    # every periodic run (1 s) rebuilds
    write(s, "%s/config/crl" % mp, auto_rebuild=True, expiry="1h",
          auto_rebuild_grace_period="12h")
    n = 1100  # three batches of 512

    def one(_):
        sn = write(s, "%s/issue/st" % mp, common_name="r.example.com")["data"]["serial_number"]
        write(s, "%s/revoke" % mp, serial_number=sn)
        return sn

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        serials = list(ex.map(one, range(n)))

    def crl_serials():
        r = s.request("GET", "%s/crl" % mp)
        if r.status_code != 200 or not r.content:
            return None, None
        p = pem_file(tmp_path, "ca.pem", root["certificate"])
        der = tmp_path / "crl.der"
        der.write_bytes(r.content)
        out = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", str(der), "-CAfile",
                              p, "-noout", "-text"], capture_output=True, text=True,
                             timeout=60)
        assert "verify OK" in out.stderr + out.stdout, out.stderr
        got = {l.split(":", 1)[1].strip().lower() for l in out.stdout.splitlines()
               if "Serial Number:" in l}
        num = out.stdout.split("X509v3 CRL Number:")[1].split()[0]
        return got, int(num)

    want = {x.replace(":", "") for x in serials}
    # the periodic upkeep rebuilds until the CRL lists them all
    end = time.time() + 120
    got = None
    while time.time() < end:
        got, num = crl_serials()
        if got is not None and want <= got:
            break
        time.sleep(0.5)
    assert got is not None and want <= got, (len(got or ()), n)
    # crl/rotate: a newer number, still every serial; KV keeps answering meanwhile
    r = rq(s, "GET", "%s/crl/rotate" % mp)
    assert r.status_code == 200 and r.json()["data"]["success"] is True, r.text
    got2, num2 = crl_serials()
    assert want <= got2 and num2 > num
