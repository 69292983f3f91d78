"""Join hijack (security issue 9, item 1.3), replayed against real custos processes.

The leader runs an https API listener; joins go over https with its certificate verified
(leader_ca_cert). The cluster is initialised with one share so the test holds the
key-encryption key itself (with one share the KEK is the unseal key) and can play a
joining node by hand: ask for a challenge, open it, answer it.

- a second sys/storage/raft/join while one is pending is refused (400) and the pending
  join still completes against the leader it named;
- an http:// leader is refused (400) unless the server says
  unsafe_allow_plaintext_join = true;
- a challenge is bound to the node that asked (server_id, cluster address, public key
  sealed inside it): answering it under another node's id, or with another address, is
  refused and nobody is added; a replayed answer is refused;
- the join answer carries the CA certificate and a node certificate minted for the
  joiner's own public key, never a private key.
"""

import base64
import hashlib
import json
import time

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import custos_harness as H

CHALLENGE_AAD = b"core/raft/challenge"


@pytest.fixture
def tls(tmp_path):
    d = tmp_path / "tls"
    d.mkdir()
    return H.make_cert(d)


@pytest.fixture
def leader(tmp_path, tls):
    """One initialised, unsealed node with an https listener; keys: one share."""
    s = H.Server(tmp_path / "leader", name="leader", tls=tls)
    s.start()
    H.init(s, shares=1, threshold=1)
    H.unseal(s, s.keys)
    H.wait_active(s)
    yield s
    s.cleanup()


def config_ids(leader):
    r = leader.get("sys/storage/raft/configuration", token=leader.root_token)
    assert r.status_code == 200, r.text
    return {s["node_id"]: s for s in r.json()["data"]["config"]["servers"]}


def kek_of(leader):
    return base64.b64decode(leader.keys[0])


def open_challenge(kek, b64):
    """The barrier framing: 4-byte term, version byte, 12-byte nonce, body, 16-byte tag."""
    ct = base64.b64decode(b64)
    return json.loads(AESGCM(kek).decrypt(ct[5:17], ct[17:], CHALLENGE_AAD))


class FakeJoiner:
    """A node identity driven by hand: server_id, cluster address, its own EC key."""

    def __init__(self, server_id, port):
        self.server_id = server_id
        self.cluster_addr = "127.0.0.1:%d" % port
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.pub_pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.fingerprint = hashlib.sha256(der).hexdigest()

    def challenge(self, leader):
        r = leader.put("sys/storage/raft/bootstrap/challenge", json={
            "server_id": self.server_id, "cluster_addr": self.cluster_addr,
            "api_addr": "https://" + self.cluster_addr, "public_key": self.pub_pem})
        assert r.status_code == 200, r.text
        return r.json()["data"]["challenge"]


def answer(leader, server_id, nonce, cluster_addr=None):
    body = {"server_id": server_id, "answer": nonce}
    if cluster_addr:
        body["cluster_addr"] = cluster_addr
    return leader.put("sys/storage/raft/bootstrap/answer", json=body)


@pytest.mark.timeout_s(120)
def test_challenge_is_bound_to_the_node_that_asked(leader):
    kek = kek_of(leader)
    a = FakeJoiner("node-a", H.free_port_pair())
    b = FakeJoiner("node-b", H.free_port_pair())
    before = config_ids(leader)
    assert set(before) == {"leader"}, before

    ch_a = open_challenge(kek, a.challenge(leader))
    # The identity that asked is sealed inside the challenge, for the joiner to check.
    assert ch_a["server_id"] == "node-a" and ch_a["cluster_addr"] == a.cluster_addr, ch_a
    assert ch_a["public_key_sha256"] == a.fingerprint, ch_a
    nonce_a = ch_a["nonce"]

    # A's proof presented as B's: refused whether or not B holds a challenge of its own.
    r = answer(leader, "node-b", nonce_a, b.cluster_addr)
    assert r.status_code == 400 and "no expected answer" in H.errors_of(r)[0], r.text
    b.challenge(leader)
    r = answer(leader, "node-b", nonce_a, b.cluster_addr)
    assert r.status_code == 400 and "invalid answer" in H.errors_of(r)[0], r.text
    # A's id and proof, but B's cluster address: the bound address wins.
    r = answer(leader, "node-a", nonce_a, b.cluster_addr)
    assert r.status_code == 400 and "bound in the join challenge" in H.errors_of(r)[0], r.text
    assert config_ids(leader) == before

    # A itself: accepted, added at its bound address as a non-voter.
    r = answer(leader, "node-a", nonce_a)
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 10
    while "node-a" not in config_ids(leader) and time.monotonic() < deadline:
        time.sleep(0.1)
    conf = config_ids(leader)
    assert set(conf) == {"leader", "node-a"}, conf
    assert conf["node-a"]["address"].endswith(a.cluster_addr), conf
    assert conf["node-a"]["voter"] is False, conf

    # The proof is single use.
    r = answer(leader, "node-a", nonce_a)
    assert r.status_code == 400, r.text


@pytest.mark.timeout_s(120)
def test_join_answer_holds_no_private_key(leader):
    a = FakeJoiner("node-c", H.free_port_pair())
    nonce = open_challenge(kek_of(leader), a.challenge(leader))["nonce"]
    r = answer(leader, "node-c", nonce)
    assert r.status_code == 200, r.text
    assert "PRIVATE KEY" not in r.text and "cluster_key_params" not in r.text, r.text
    d = r.json()["data"]
    ca = x509.load_pem_x509_certificate(d["ca_cert"].encode())
    node = x509.load_pem_x509_certificate(d["node_cert"].encode())
    # Minted by the cluster CA for the joiner's own key, nothing else.
    assert node.issuer == ca.subject
    ca.public_key().verify(node.signature, node.tbs_certificate_bytes,
                           ec.ECDSA(node.signature_hash_algorithm))
    assert node.public_key().public_numbers() == a.key.public_key().public_numbers()
    san = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert len(san.get_values_for_type(x509.DNSName)) == 1
    assert san.get_values_for_type(x509.DNSName)[0].startswith("node-")
    peers = {p["id"]: p for p in d["peers"]}
    assert set(peers) == {"leader", "node-c"}, d["peers"]
    assert peers["node-c"]["address"] == a.cluster_addr


@pytest.mark.timeout_s(60)
def test_challenge_needs_an_identity(leader):
    good = FakeJoiner("node-d", H.free_port_pair())
    for body, what in (
        ({"server_id": "node-d", "public_key": good.pub_pem}, "cluster_addr"),
        ({"server_id": "node-d", "cluster_addr": good.cluster_addr}, "public_key"),
        ({"server_id": "node-d", "cluster_addr": good.cluster_addr,
          "public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"},
         "public_key"),
    ):
        r = leader.put("sys/storage/raft/bootstrap/challenge", json=body)
        assert r.status_code == 400 and what in H.errors_of(r)[0], (body, r.text)


@pytest.mark.timeout_s(60)
def test_http_leader_refused_without_the_unsafe_opt_in(tmp_path, leader):
    node = H.Server(tmp_path / "plain", name="plain", plaintext_join=False)
    try:
        node.start()
        r = node.put("sys/storage/raft/join",
                     json={"leader_api_addr": "http://" + leader.addr})
        assert r.status_code == 400, r.text
        err = H.errors_of(r)[0]
        assert "https://" in err and "unsafe_allow_plaintext_join" in err, err
        # Nothing started: no join is pending, the node is still uninitialised.
        assert node.get("sys/init").json()["initialized"] is False
        r = node.put("sys/storage/raft/join", json={"leader_api_addr": "ftp://x"})
        assert r.status_code == 400, r.text
    finally:
        node.cleanup()
    # retry_join in the config: the server refuses to start with an http:// leader.
    cfg = H.Server(tmp_path / "cfg", name="cfg", plaintext_join=False,
                   retry_join=lambda: [leader])
    cfg.tls = None
    cfg.write_config()
    text = open(cfg.config_path).read().replace("https://", "http://", 1)
    assert 'leader_api_addr = "http://' in text
    with open(cfg.config_path, "w") as f:
        f.write(text)
    p = H.run_cli(["server", "-config=" + cfg.config_path], timeout=30)
    assert p.returncode != 0
    assert "must be an https:// URL" in p.stderr + p.stdout, p.stderr + p.stdout


@pytest.mark.timeout_s(150)
def test_second_join_while_pending_is_refused(tmp_path, tls, leader):
    node = H.Server(tmp_path / "joiner", name="joiner", tls=tls)
    try:
        node.start()
        ca = open(tls[0]).read()
        r = node.put("sys/storage/raft/join", json={"leader_api_addr": leader.url,
                                                    "leader_ca_cert": ca, "retry": True})
        assert r.status_code == 200 and r.json()["joined"] is True, r.text
        # The hijack: point the pending join at another "leader".
        r = node.put("sys/storage/raft/join", json={"leader_api_addr": "https://127.0.0.1:1",
                                                    "leader_ca_cert": ca})
        assert r.status_code == 400, r.text
        assert "already in progress" in H.errors_of(r)[0], r.text
        # The first join is intact: once the challenge is in, the cluster's key opens it
        # and the node joins the leader it named.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            st = node.get("sys/seal-status").json()
            if st.get("initialized"):
                break
            time.sleep(0.2)
        assert st.get("initialized"), st
        r = node.put("sys/unseal", json={"key": leader.keys[0]})
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if node.get("sys/seal-status").json().get("sealed") is False:
                break
            time.sleep(0.2)
        assert node.get("sys/seal-status").json()["sealed"] is False
        assert "joiner" in config_ids(leader)
        # A joined node is a member: a join now is refused too.
        r = node.put("sys/storage/raft/join", json={"leader_api_addr": leader.url,
                                                    "leader_ca_cert": ca})
        assert r.status_code == 400, r.text
        # It works as a standby: a write through it is forwarded and lands.
        r = node.put("sys/mounts/kvj", token=leader.root_token, json={"type": "kv"})
        assert r.status_code == 204, r.text
        r = leader.get("sys/mounts", token=leader.root_token)
        assert "kvj/" in r.json()["data"], r.text

        # Once unsealed, the joined node holds the CA key from behind the barrier, so
        # it can certify the next joiner when it becomes the active node.
        r = leader.request("POST", "sys/storage/raft/autopilot/configuration",
                           token=leader.root_token, json={"server_stabilization_time": "1s"})
        assert r.status_code in (200, 204), r.text
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            conf = config_ids(leader)
            if conf.get("joiner", {}).get("voter"):
                break
            time.sleep(0.3)
        assert config_ids(leader)["joiner"]["voter"] is True
        r = leader.put("sys/step-down", token=leader.root_token)
        assert r.status_code == 204, r.text
        H.wait_active(node, timeout=30)
        e = FakeJoiner("node-e", H.free_port_pair())
        nonce = open_challenge(kek_of(leader), e.challenge(node))["nonce"]
        r = answer(node, "node-e", nonce)
        assert r.status_code == 200, r.text
        cert = x509.load_pem_x509_certificate(r.json()["data"]["node_cert"].encode())
        assert cert.public_key().public_numbers() == e.key.public_key().public_numbers()
    finally:
        node.cleanup()
