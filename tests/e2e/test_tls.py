"""The HTTPS listener: a generated self-signed EC certificate, hvac with verify=cert,
plain HTTP refused, TLS < 1.2 refused, tls_min_version, keep-alive over TLS."""

import socket
import ssl
import subprocess

import pytest
import requests

import custos_harness as H


def s_client(port, *flags, timeout=20):
    """openssl s_client against 127.0.0.1:port; returns (rc, output)."""
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                        "-servername", "localhost"] + list(flags),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout, text=True)
    return p.returncode, p.stdout


def negotiated(out):
    """The protocol s_client negotiated, or None when the handshake failed."""
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("New, ") and "Cipher is" in line:
            proto = line.split(",")[1].strip()
            cipher = line.split("Cipher is", 1)[1].strip()
            return None if cipher == "(NONE)" or proto == "(NONE)" else proto
    return None


@pytest.fixture
def tls_server(server_factory, cert):
    return server_factory(tls=cert)


def test_tls_hvac_round_trip(tls_server, cert):
    srv = tls_server
    assert srv.url.startswith("https://")
    c = srv.client(token=None)  # hvac.Client(url=..., verify=<cert path>)
    assert c.sys.is_initialized() is False
    res = c.sys.initialize(secret_shares=3, secret_threshold=2)
    st = c.sys.submit_unseal_keys(res["keys_base64"][:2])
    assert st["sealed"] is False, st
    srv.root_token = res["root_token"]
    H.wait_active(srv)
    c = srv.client()
    c.sys.enable_secrets_engine("kv", path="kv", options={"version": "1"})
    c.secrets.kv.v1.create_or_update_secret("tls/app", {"password": "over-tls"}, mount_point="kv")
    assert c.secrets.kv.v1.read_secret("tls/app", mount_point="kv")["data"] == {"password": "over-tls"}
    assert c.secrets.kv.v1.list_secrets("tls", mount_point="kv")["data"]["keys"] == ["app"]
    # many requests on one kept-alive TLS connection
    with srv.session() as s:
        for _ in range(30):
            r = s.get(srv.url + "/v1/kv/tls/app", headers={"X-Vault-Token": srv.root_token},
                      timeout=10)
            assert r.status_code == 200
    # the CLI honours VAULT_CACERT
    p = H.run_cli(["read", "-field=password", "kv/tls/app"],
                  env={"VAULT_ADDR": srv.url, "VAULT_TOKEN": srv.root_token,
                       "VAULT_CACERT": cert[0], "HOME": srv.workdir})
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert p.stdout.strip() == "over-tls"


def test_tls_verification_against_other_ca_fails(tls_server):
    with H.session(True) as s:  # system CA bundle: does not know our self-signed cert
        with pytest.raises(requests.exceptions.SSLError):
            s.get(tls_server.url + "/v1/sys/health", timeout=10)


def test_plain_http_to_tls_port_fails(tls_server):
    url = "http://127.0.0.1:%d/v1/sys/health" % tls_server.port
    try:
        with H.session() as s:
            r = s.get(url, timeout=10)
    except requests.exceptions.RequestException:
        pass  # connection reset / bad status line: refused
    else:
        assert r.status_code >= 400, ("plain HTTP answered on the TLS port", r.status_code, r.text)
    # the listener still works afterwards
    assert tls_server.get("sys/health").status_code == 501


def test_garbage_handshake_does_not_kill_listener(tls_server):
    for payload in (b"\x16\x03\x01\x00\x05hello", b"\x00" * 64, b""):
        s = socket.create_connection(("127.0.0.1", tls_server.port), timeout=5)
        try:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            try:
                s.recv(1024)
            except OSError:
                pass
        finally:
            s.close()
    assert tls_server.get("sys/health").status_code == 501


def test_old_tls_versions_refused(tls_server):
    port = tls_server.port
    rc, out = s_client(port, "-tls1_2")
    assert negotiated(out) == "TLSv1.2", out[-1500:]
    rc, out = s_client(port, "-tls1_3")
    assert negotiated(out) == "TLSv1.3", out[-1500:]
    # SECLEVEL=0 lets this client offer TLS 1.1 / 1.0; the server must refuse them.
    for flag in ("-tls1_1", "-tls1"):
        rc, out = s_client(port, flag, "-cipher", "DEFAULT:@SECLEVEL=0")
        assert negotiated(out) is None, (flag, out[-1500:])
        assert rc != 0, (flag, out[-1500:])
    # python's ssl module: maximum TLS 1.1 fails too
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        return
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, OSError)):
            with ctx.wrap_socket(raw, server_hostname="localhost"):
                pass


def test_tls_min_version_13(server_factory, cert):
    srv = server_factory(tls=cert, tls_min_version="tls13")
    rc, out = s_client(srv.port, "-tls1_2")
    assert negotiated(out) is None, out[-1500:]
    rc, out = s_client(srv.port, "-tls1_3")
    assert negotiated(out) == "TLSv1.3", out[-1500:]
    assert srv.get("sys/health").status_code == 501


def test_served_certificate_is_ours(tls_server, cert):
    pem = ssl.get_server_certificate(("127.0.0.1", tls_server.port), timeout=10)
    with open(cert[0]) as f:
        ours = f.read()
    assert ssl.PEM_cert_to_DER_cert(pem) == ssl.PEM_cert_to_DER_cert(ours)
