"""Error paths and HTTP behaviour: bad JSON, 413, unknown paths, 405, '..', sealed 503,
keep-alive, pipelining, Expect: 100-continue, headers."""

import json
import socket
import time

import pytest
import requests

import custos_harness as H

LIMIT = 1024


@pytest.fixture(scope="module")
def esrv(tmp_path_factory):
    s = H.Server(tmp_path_factory.mktemp("err"), name="e1", max_request_size=LIMIT)
    try:
        s.start()
        H.init_and_unseal(s)
        H.enable_kv(s, "kv")
        yield s
    finally:
        s.cleanup()


def raw_exchange(srv, data, timeout=10, until_closed=True, expect_responses=1):
    """Send raw bytes on one TCP connection; return everything read (bounded in time)."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
            if not until_closed and _complete(out, expect_responses):
                break
        return out
    finally:
        s.close()


def parse_responses(buf):
    """Split a byte stream into HTTP/1.x responses: [(status, headers, body)]. Stops at
    the first incomplete response. Content-Length and chunked framing; 1xx, 204 and 304
    have no body."""
    out, pos = [], 0
    while pos < len(buf):
        end = buf.find(b"\r\n\r\n", pos)
        if end < 0:
            break
        lines = buf[pos:end].decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise AssertionError("not an HTTP response at %d: %r" % (pos, buf[pos:pos + 80]))
        status = int(parts[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        pos = end + 4
        if 100 <= status < 200 or status in (204, 304):
            out.append((status, headers, b""))
            continue
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                le = buf.find(b"\r\n", pos)
                if le < 0:
                    return out
                n = int(buf[pos:le].split(b";")[0], 16)
                if len(buf) < le + 2 + n + 2:
                    return out
                body += buf[le + 2:le + 2 + n]
                pos = le + 2 + n + 2
                if n == 0:
                    break
        else:
            n = int(headers.get("content-length", "0"))
            if len(buf) < pos + n:
                return out
            body = buf[pos:pos + n]
            pos += n
        out.append((status, headers, body))
    return out


def _complete(buf, n):
    try:
        return len(parse_responses(buf)) >= n
    except AssertionError:
        return True


def statuses(buf):
    return [r[0] for r in parse_responses(buf)]


def send_raw(srv, head, body=b"", timeout=10):
    """Send one request (head + body) on a fresh connection, tolerating the server
    closing early (e.g. after a 413); return the first response's status or None."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
    out = b""
    try:
        try:
            s.sendall(head + body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not _complete(out, 1):
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        s.close()
    r = parse_responses(out)
    return (r[0][0] if r else None), out


# ---- request bodies -----------------------------------------------------------------------
@pytest.mark.parametrize("body", [b"{not json", b'{"a": ', b"[1, 2, 3]", b'"string"'])
def test_bad_json_is_400(esrv, body):
    r = esrv.put("kv/bad", token=esrv.root_token, data=body,
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 400, (body, r.status_code, r.text)
    assert H.errors_of(r), body
    assert esrv.get("kv/bad", token=esrv.root_token).status_code == 404


def test_bad_json_on_sys_paths(esrv):
    for path in ("sys/mounts/newmount", "sys/unseal", "sys/init"):
        r = esrv.put(path, token=esrv.root_token, data=b"{oops")
        assert r.status_code == 400, (path, r.status_code, r.text)
        assert H.errors_of(r), path


def put_head(srv, path, length=None, chunked=False, extra=""):
    h = "PUT /v1/%s HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Vault-Token: %s\r\n" % (path, srv.root_token)
    h += "Content-Type: application/json\r\n"
    if chunked:
        h += "Transfer-Encoding: chunked\r\n"
    else:
        h += "Content-Length: %d\r\n" % length
    return (h + extra + "\r\n").encode()


def test_oversize_body_is_413(esrv):
    small = {"v": "x" * (LIMIT // 2)}
    r = esrv.put("kv/small", token=esrv.root_token, json=small)
    assert r.status_code == 204, (r.status_code, r.text)
    # exactly at the limit is fine
    body = json.dumps({"v": ""}).encode()
    body = json.dumps({"v": "e" * (LIMIT - len(body))}).encode()
    assert len(body) == LIMIT
    status, out = send_raw(esrv, put_head(esrv, "kv/exact", len(body)), body)
    assert status == 204, ("body of exactly max_request_size", out[:300])
    # over the limit (4x, and by one byte)
    for n in (LIMIT * 4, LIMIT + 1):
        body = json.dumps({"v": "x" * n}).encode()[:n]
        status, out = send_raw(esrv, put_head(esrv, "kv/big", len(body)), body)
        assert status == 413, (n, out[:300])
    # chunked transfer encoding (no Content-Length) is limited too
    payload = json.dumps({"v": "z" * (LIMIT * 8)}).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(payload[i:i + 500]), payload[i:i + 500])
                      for i in range(0, len(payload), 500)) + b"0\r\n\r\n"
    status, out = send_raw(esrv, put_head(esrv, "kv/big", chunked=True), chunks)
    assert status == 413, ("chunked", out[:300])
    # a small chunked body is fine
    payload = b'{"v": "chunked"}'
    status, out = send_raw(esrv, put_head(esrv, "kv/chunked", chunked=True),
                           b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload))
    assert status == 204, ("small chunked body", out[:300])
    assert esrv.get("kv/chunked", token=esrv.root_token).json()["data"] == {"v": "chunked"}
    assert esrv.get("kv/big", token=esrv.root_token).status_code == 404
    # the error body, through requests
    try:
        r = esrv.put("kv/big", token=esrv.root_token, data=b"{" + b" " * (LIMIT * 2) + b"}")
        assert r.status_code == 413, (r.status_code, r.text)
        assert H.errors_of(r)
    except requests.ConnectionError:
        pass  # the server may close before the client finished sending
    # the server still answers
    assert esrv.get("kv/small", token=esrv.root_token).status_code == 200


def test_huge_content_length_is_413_without_body(esrv):
    req = ("PUT /v1/kv/huge HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Vault-Token: %s\r\n"
           "Content-Length: 1000000000\r\n\r\n{" % esrv.root_token).encode()
    out = raw_exchange(esrv, req, timeout=10)
    assert statuses(out)[:1] == [413], out[:300]


# ---- paths and methods -------------------------------------------------------------------------
def test_unknown_mount(esrv):
    r = esrv.get("nomount/x", token=esrv.root_token)
    assert r.status_code == 404, (r.status_code, r.text)
    assert isinstance(r.json().get("errors"), list)
    r = esrv.put("nomount/x", token=esrv.root_token, json={"a": "b"})
    assert r.status_code == 404, (r.status_code, r.text)
    r = esrv.get("nomount/x", token=H.random_token())
    assert r.status_code == 403, (r.status_code, r.text)
    r = esrv.get("sys/no-such-endpoint", token=esrv.root_token)
    assert r.status_code == 404, (r.status_code, r.text)


def test_not_under_v1(esrv):
    r = esrv.get("/v2/kv/x", token=esrv.root_token)
    assert r.status_code == 404, (r.status_code, r.text)
    r = esrv.get("/", token=esrv.root_token)
    assert r.status_code in (307, 404), (r.status_code, r.text)


def test_unsupported_methods_405(esrv):
    tok = esrv.root_token
    r = esrv.request("PATCH", "kv/m", token=tok, data=b'{"a":"b"}',
                     headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 405, ("PATCH on KV v1", r.status_code, r.text)
    r = esrv.request("FROB", "kv/m", token=tok)
    assert r.status_code == 405, ("unknown verb", r.status_code, r.text)
    r = esrv.request("DELETE", "sys/health", token=tok)
    assert r.status_code == 405, ("DELETE sys/health", r.status_code, r.text)
    r = esrv.request("LIST", "sys/seal-status", token=tok)
    assert r.status_code == 405, ("LIST sys/seal-status", r.status_code, r.text)
    r = esrv.request("HEAD", "kv/m", token=tok)
    assert r.status_code in (404, 405), ("HEAD kv", r.status_code)


def test_parent_references_400(esrv):
    tok = {"X-Vault-Token": esrv.root_token}
    for target in ("/v1/kv/../sys/mounts", "/v1/kv/a/../b", "/v1/kv/..", "/v1/kv/a/..%2fb"):
        status, _, body = esrv.raw_request("GET", target, headers=tok)
        assert status == 400, (target, status, body[:200])
    # outside the API prefix: never served
    status, _, body = esrv.raw_request("GET", "/v1/../v1/sys/mounts", headers=tok)
    assert status in (400, 404), (status, body[:200])
    status, _, body = esrv.raw_request("PUT", "/v1/kv/a/../b", body=b'{"x":"y"}', headers=tok)
    assert status == 400, (status, body[:200])
    assert esrv.get("kv/b", token=esrv.root_token).status_code == 404


def test_malformed_http(esrv):
    out = raw_exchange(esrv, b"THIS IS NOT HTTP\r\n\r\n", timeout=10)
    assert out == b"" or statuses(out)[:1] == [400], out[:200]
    out = raw_exchange(esrv, b"GET /v1/sys/health HTTP/1.1\r\nBad Header Line\r\n\r\n", timeout=10)
    assert out == b"" or statuses(out)[:1] == [400], out[:200]
    # the server is still fine
    assert esrv.get("sys/health").status_code == 200


# ---- HTTP behaviour ---------------------------------------------------------------------------
def test_headers_and_204(esrv):
    r = esrv.put("kv/h", token=esrv.root_token, json={"a": "b"})
    assert r.status_code == 204 and r.content == b""
    r = esrv.get("kv/h", token=esrv.root_token)
    assert r.headers.get("Content-Type", "").startswith("application/json")
    assert r.headers.get("Cache-Control") == "no-store"
    body = r.json()
    for k in ("request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info",
              "warnings", "auth"):
        assert k in body, (k, body)
    r = esrv.get("kv/none", token=esrv.root_token)
    assert r.headers.get("Cache-Control") == "no-store"


def test_keep_alive_and_pipelining(esrv):
    tok = esrv.root_token
    esrv.put("kv/pipe", token=tok, json={"n": "1"})
    one = ("GET /v1/kv/pipe HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Vault-Token: %s\r\n\r\n" % tok).encode()
    put = ('PUT /v1/kv/pipe2 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Vault-Token: %s\r\n'
           'Content-Length: 10\r\n\r\n{"n": "2"}' % tok).encode()
    out = raw_exchange(esrv, one + put + one + one, timeout=10, until_closed=False,
                       expect_responses=4)
    assert statuses(out) == [200, 204, 200, 200], out[:600]
    # keep-alive: several requests over one requests.Session connection
    with esrv.session() as s:
        for i in range(20):
            r = s.get(esrv.url + "/v1/kv/pipe", headers={"X-Vault-Token": tok}, timeout=10)
            assert r.status_code == 200
    assert esrv.get("kv/pipe2", token=tok).json()["data"] == {"n": "2"}


def test_expect_100_continue(esrv):
    body = json.dumps({"v": "c" * 200}).encode()
    s = socket.create_connection(("127.0.0.1", esrv.port), timeout=10)
    try:
        s.sendall(("PUT /v1/kv/cont HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Vault-Token: %s\r\n"
                   "Content-Length: %d\r\nExpect: 100-continue\r\n\r\n"
                   % (esrv.root_token, len(body))).encode())
        first = s.recv(4096)
        assert first.startswith(b"HTTP/1.1 100"), first[:200]
        s.sendall(body)
        out = first
        deadline = time.monotonic() + 10
        while not _complete(out, 2) and time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
        assert statuses(out)[:2] == [100, 204], out[:300]
    finally:
        s.close()
    assert esrv.get("kv/cont", token=esrv.root_token).json()["data"] == {"v": "c" * 200}
    # 100-continue with an oversize Content-Length: 413 straight away, no 100
    s = socket.create_connection(("127.0.0.1", esrv.port), timeout=10)
    try:
        s.sendall(("PUT /v1/kv/cont2 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Vault-Token: %s\r\n"
                   "Content-Length: %d\r\nExpect: 100-continue\r\n\r\n"
                   % (esrv.root_token, LIMIT * 10)).encode())
        out = b""
        deadline = time.monotonic() + 10
        while not _complete(out, 1) and time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
        assert statuses(out)[:1] == [413], out[:200]
    finally:
        s.close()


def test_form_urlencoded_body(esrv):
    r = esrv.put("kv/form", token=esrv.root_token, data="a=1&b=two",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 204, (r.status_code, r.text)
    assert esrv.get("kv/form", token=esrv.root_token).json()["data"] == {"a": "1", "b": "two"}


# ---- sealed ---------------------------------------------------------------------------------------
def test_sealed_node_503(unsealed):
    srv = unsealed
    H.enable_kv(srv, "kv")
    srv.put("kv/x", token=srv.root_token, json={"a": "b"})
    assert srv.put("sys/seal", token=srv.root_token).status_code == 204
    for method, path, body in (("GET", "kv/x", None), ("PUT", "kv/x", {"a": "c"}),
                               ("LIST", "kv/", None), ("DELETE", "kv/x", None),
                               ("GET", "sys/mounts", None),
                               ("GET", "auth/token/lookup-self", None)):
        r = srv.request(method, path, token=srv.root_token, json=body)
        assert r.status_code == 503, (method, path, r.status_code, r.text)
        assert "Vault is sealed" in H.errors_of(r), (method, path, r.text)
    # unauthenticated sys endpoints still answer
    assert srv.get("sys/seal-status").status_code == 200
    assert srv.get("sys/init").status_code == 200
    assert srv.get("sys/health").status_code == 503
    H.unseal(srv)
    H.wait_active(srv)
    assert srv.get("kv/x", token=srv.root_token).json()["data"] == {"a": "b"}


# ---- listener limits (security issue 9, item 1.9) -----------------------------------
def test_max_connections_refused_politely(server_factory):
    srv = server_factory(extra_listener="  max_connections = 3")
    held = []

    def hold_one():
        """A kept-alive connection that was served (the harness's own probe may still
        hold a slot for a moment: retry until the server has let it go)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            s.sendall(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n")
            if s.recv(65536).startswith(b"HTTP/1.1 501"):  # served: not initialised
                return s
            s.close()
            time.sleep(0.05)
        raise AssertionError("a connection under the limit was not served")
    try:
        for _ in range(3):
            held.append(hold_one())
        out = raw_exchange(srv, b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 503"), out[:200]
        assert out.endswith(b'{"errors":["too many open connections"]}'), out[-200:]
    finally:
        for s in held:
            s.close()
    # slots free up again once clients leave
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = srv.get("sys/health")
        if r.status_code == 501:
            break
        time.sleep(0.1)
    assert r.status_code == 501


def test_read_timeout_cuts_a_trickled_request(server_factory):
    """Slowloris: one byte every 0.2 s, far under the 5-minute gap between bytes, is cut
    by http_read_timeout (here 1 s) bounding the whole request."""
    srv = server_factory(extra_listener='  http_read_timeout = "1s"')
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(b"PUT /v1/sys/init HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n")
    sent, cut = 0, False
    for _ in range(200):
        try:
            s.sendall(b" ")
            sent += 1
            s.settimeout(0.2)
            if s.recv(65536) == b"":
                cut = True
                break
        except socket.timeout:
            continue
        except (BrokenPipeError, ConnectionResetError):
            cut = True
            break
    s.close()
    assert cut and sent < 200, "the trickled request was never cut (%d bytes sent)" % sent
    assert srv.get("sys/health").status_code == 501  # still serving, nothing initialised
