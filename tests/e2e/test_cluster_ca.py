"""An operator-supplied cluster CA (listener cluster_ca_cert_file / cluster_ca_key_file):
the cluster forms with node certificates minted from it, and the cluster port presents
a certificate issued by that CA (checked with a client certificate from the same CA)."""

import socket
import ssl
import subprocess

import pytest

import custos_harness as H


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d):
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key", cwd=d)
    openssl("req", "-x509", "-new", "-key", "ca.key", "-days", "30", "-subj",
            "/CN=operator cluster CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", "ca.pem", cwd=d)
    # A client certificate from the same CA, to look at the cluster port from outside.
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "cl.key", cwd=d)
    openssl("req", "-new", "-key", "cl.key", "-subj", "/CN=node-1", "-out", "cl.csr", cwd=d)
    with open(d + "/ext.cnf", "w") as f:
        f.write("subjectAltName=DNS:node-1\nextendedKeyUsage=clientAuth,serverAuth\n")
    openssl("x509", "-req", "-in", "cl.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "30", "-extfile", "ext.cnf", "-out", "cl.pem", cwd=d)


def cluster_port_issuer(node, d):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(d + "/ca.pem")
    ctx.load_cert_chain(d + "/cl.pem", d + "/cl.key")
    ctx.set_alpn_protocols(["custos-forward"])
    with socket.create_connection(("127.0.0.1", node.port + 1), timeout=5) as raw:
        with ctx.wrap_socket(raw) as t:
            cert = t.getpeercert()
    return dict(x[0] for x in cert["issuer"])["commonName"]


@pytest.mark.timeout_s(180)
def test_cluster_with_operator_ca(cluster_factory, tmp_path):
    d = str(tmp_path)
    make_ca(d)
    extra = '  cluster_ca_cert_file = "%s/ca.pem"\n  cluster_ca_key_file = "%s/ca.key"' % (d, d)
    c = cluster_factory(n=3, extra_listener=extra)
    for s in c.nodes:
        # The certificate chain verified against the operator's CA (load_verify_locations).
        assert cluster_port_issuer(s, d) == "operator cluster CA"
    leader = c.leader()
    H.enable_kv(leader, "kv", c.root_token)
    standby = c.standbys()[0]
    r = standby.put("kv/op-ca", token=c.root_token, json={"v": "1"})
    assert r.status_code == 204, r.text
    c.wait_converged()
    for s in c.nodes:
        r = s.get("kv/op-ca", token=c.root_token)
        assert r.status_code == 200 and r.json()["data"] == {"v": "1"}


def test_cluster_ca_files_go_together(tmp_path):
    # Config errors stop start-up with FILE:LINE: reason (the unit suite covers the text).
    cfg = tmp_path / "bad.hcl"
    cfg.write_text('storage "raft" {\n  path = "%s/d"\n}\nlistener "tcp" {\n'
                   '  address = "127.0.0.1:1"\n  tls_disable = true\n'
                   '  cluster_ca_cert_file = "/x/ca.pem"\n}\n' % tmp_path)
    p = subprocess.run([H.BIN, "server", "-config=%s" % cfg], capture_output=True, text=True,
                       timeout=20)
    assert p.returncode != 0
    assert "cluster_ca_cert_file and cluster_ca_key_file go together" in p.stderr, p.stderr
