"""Raft snapshots on one node: save (curl, hvac's raw adapter), restore, restore-force
from another cluster, and refusals (other unseal keys without -force, corrupted or
incomplete archives) that leave the node unchanged."""

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import time

import hvac
import pytest

import custos_harness as H

MEMBERS = ["meta.json", "state.bin", "SHA256SUMS", "SHA256SUMS.sealed"]
SEAL_MISMATCH = ("could not verify hash file, possibly the snapshot is using a different set "
                 "of unseal keys; use the snapshot-force API to bypass this check")


# ---- helpers ---------------------------------------------------------------------------
def members_of(data):
    """{name: bytes} of a gzip'd tar, in archive order (asserts it is one)."""
    assert data[:2] == b"\x1f\x8b", "not gzip: %r" % data[:16]
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as t:
        for m in t.getmembers():
            assert m.isfile(), m.name
            out[m.name] = t.extractfile(m).read()
    return out


def check_archive(data):
    """The four members, sha256sum-style SHA256SUMS matching, Vault-like meta.json."""
    files = members_of(data)
    assert list(files) == MEMBERS
    sums = {}
    for line in files["SHA256SUMS"].decode().splitlines():
        digest, name = line.split("  ")
        sums[name] = digest
    assert sorted(sums) == ["meta.json", "state.bin"]
    for name in ("meta.json", "state.bin"):
        assert hashlib.sha256(files[name]).hexdigest() == sums[name], name
    meta = json.loads(files["meta.json"])
    assert meta["Version"] == 1
    assert meta["Index"] > 0 and meta["Term"] >= 1 and meta["ID"]
    assert meta["Size"] == len(files["state.bin"])
    assert files["state.bin"][:4] == b"CSSB"
    assert len(files["SHA256SUMS.sealed"]) > 0
    return meta, files


def repack(files):
    """A gzip'd tar of {name: bytes} (in that order)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            t.addfile(info, io.BytesIO(body))
    return gzip.compress(raw.getvalue())


def save(srv, token=None):
    r = srv.get("sys/storage/raft/snapshot", token=token or srv.root_token, timeout=60)
    assert r.status_code == 200, "snapshot save: %s %s" % (r.status_code, r.text[:300])
    return r.content


def restore(srv, data, force=False, token=None):
    path = "sys/storage/raft/snapshot" + ("-force" if force else "")
    return srv.request("POST", path, token=token or srv.root_token, data=data, timeout=60,
                       headers={"Content-Type": "application/octet-stream"})


def put(srv, key, value, token=None):
    r = srv.put("kv/" + key, token=token or srv.root_token, json={"value": value})
    assert r.status_code == 204, "%s %s" % (r.status_code, r.text)


def get(srv, key, token=None):
    r = srv.get("kv/" + key, token=token or srv.root_token)
    if r.status_code == 404:
        return None
    assert r.status_code == 200, "%s %s" % (r.status_code, r.text)
    return r.json()["data"]["value"]


def kv_state(srv, n):
    return {("k%03d" % i): get(srv, "k%03d" % i) for i in range(n)}


def raw_client(srv, token=None):
    return hvac.Client(url=srv.url, token=token or srv.root_token, verify=srv.verify,
                       timeout=60, adapter=hvac.adapters.RawAdapter)


@pytest.fixture
def kvnode(unsealed):
    H.enable_kv(unsealed, "kv")
    for i in range(40):
        put(unsealed, "k%03d" % i, "v%d" % i)
    return unsealed


# ---- save ------------------------------------------------------------------------------
def test_save_with_curl(kvnode, tmp_path):
    out, hdr = tmp_path / "raft.snap", tmp_path / "headers"
    subprocess.run(["curl", "-sS", "--fail", "-o", str(out), "-D", str(hdr),
                    "-H", "X-Vault-Token: " + kvnode.root_token,
                    kvnode.url + "/v1/sys/storage/raft/snapshot"], check=True, timeout=60)
    headers = hdr.read_text().lower()
    assert "content-type: application/gzip" in headers
    assert 'content-disposition: attachment; filename="raft.snap"' in headers
    meta, files = check_archive(out.read_bytes())
    # Every stored key is in state.bin, values stay ciphertext (no plaintext secret).
    assert b"logical/" in files["state.bin"] and b"core/keyring" in files["state.bin"]
    assert b"v39" not in files["state.bin"]
    # A later save sees later writes.
    put(kvnode, "k000", "changed")
    meta2, _ = check_archive(save(kvnode))
    assert meta2["Index"] > meta["Index"]


def test_save_with_hvac_raw_adapter(kvnode):
    r = raw_client(kvnode).sys.take_raft_snapshot()
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/gzip"
    check_archive(r.content)


def test_save_needs_sudo(kvnode):
    tok = kvnode.client().auth.token.create(policies=["default"])["auth"]["client_token"]
    r = kvnode.get("sys/storage/raft/snapshot", token=tok)
    assert r.status_code == 403
    assert "permission denied" in H.errors_of(r)[0]
    assert restore(kvnode, b"x", token=tok).status_code == 403
    assert kvnode.get("sys/storage/raft/snapshot").status_code in (400, 403)  # no token


# ---- restore ---------------------------------------------------------------------------
def test_restore_brings_back_the_snapshot_state(kvnode):
    data = save(kvnode)
    before = kv_state(kvnode, 40)
    for i in range(0, 40, 3):
        put(kvnode, "k%03d" % i, "later")
    put(kvnode, "new-after-snapshot", "x")
    kvnode.client().sys.enable_secrets_engine("kv", path="kv-later", options={"version": "1"})

    r = restore(kvnode, data)
    assert r.status_code == 204, "%s %s" % (r.status_code, r.text)
    assert kv_state(kvnode, 40) == before
    assert get(kvnode, "new-after-snapshot") is None
    # The node keeps serving: writes, and the root token of the same cluster.
    put(kvnode, "k001", "after-restore")
    assert get(kvnode, "k001") == "after-restore"
    assert kvnode.get("sys/health").status_code == 200

    # Through hvac too, and the same archive can be restored again.
    r = raw_client(kvnode).sys.restore_raft_snapshot(data)
    assert r.status_code == 204, r.text
    assert kv_state(kvnode, 40) == before


def test_restore_with_chunked_body(kvnode):
    # The vault CLI streams the file without a length (chunked transfer-encoding).
    data = save(kvnode)
    before = kv_state(kvnode, 40)
    put(kvnode, "k005", "later")

    def body():
        for i in range(0, len(data), 7000):
            yield data[i:i + 7000]
    r = restore(kvnode, body())
    assert r.status_code == 204, r.text
    assert kv_state(kvnode, 40) == before


def test_restore_survives_restart(kvnode):
    data = save(kvnode)
    before = kv_state(kvnode, 40)
    put(kvnode, "k000", "later")
    assert restore(kvnode, data).status_code == 204
    kvnode.restart()
    H.unseal(kvnode, kvnode.keys[:2])
    H.wait_active(kvnode)
    assert kv_state(kvnode, 40) == before


def test_corrupted_archives_refused_and_nothing_changes(kvnode):
    good = save(kvnode)
    files = members_of(good)
    put(kvnode, "k000", "after-save")
    before = kv_state(kvnode, 40)

    flipped_state = dict(files)
    sb = bytearray(files["state.bin"])
    sb[-1] ^= 0x01  # inside the last value: well-formed, only the hash can tell
    flipped_state["state.bin"] = bytes(sb)
    wrong_sums = dict(files)
    wrong_sums["SHA256SUMS"] = files["SHA256SUMS"].replace(b"0", b"1", 1).replace(b"a", b"b", 1)
    no_sealed = {k: v for k, v in files.items() if k != "SHA256SUMS.sealed"}
    no_state = {k: v for k, v in files.items() if k != "state.bin"}
    mid = bytearray(good)
    mid[len(mid) // 2] ^= 0xff

    cases = {
        "truncated gzip": (good[:len(good) // 2], "snapshot"),
        "cut gzip tail": (good[:-30], "snapshot"),
        "flipped compressed byte": (bytes(mid), "snapshot"),
        "flipped byte in state.bin": (repack(flipped_state), "state.bin does not match"),
        "wrong SHA256SUMS": (repack(wrong_sums), "does not match SHA256SUMS"),
        "missing SHA256SUMS.sealed": (repack(no_sealed), "SHA256SUMS.sealed"),
        "missing state.bin": (repack(no_state), "state.bin is missing"),
        "not an archive": (b"definitely not a snapshot" * 10, "snapshot"),
    }
    for name, (body, want) in cases.items():
        for force in (False, True):
            r = restore(kvnode, body, force=force)
            assert r.status_code == 400, "%s (force=%s): %s %s" % (name, force, r.status_code,
                                                                    r.text)
            errs = H.errors_of(r)
            assert len(errs) == 1 and want in errs[0], "%s: %s" % (name, errs)
    r = restore(kvnode, b"")
    assert r.status_code == 400
    assert kv_state(kvnode, 40) == before
    put(kvnode, "k002", "still-writable")
    assert get(kvnode, "k002") == "still-writable"


# ---- across clusters -------------------------------------------------------------------
@pytest.fixture
def two_clusters(server_factory):
    a = server_factory()
    H.init_and_unseal(a)
    H.enable_kv(a, "kv")
    for i in range(20):
        put(a, "k%03d" % i, "from-a-%d" % i)
    b = server_factory()
    H.init_and_unseal(b)
    H.enable_kv(b, "kv")
    put(b, "only-in-b", "b")
    return a, b


def test_restore_from_other_cluster_needs_force(two_clusters):
    a, b = two_clusters
    data = save(a)
    r = restore(b, data)
    assert r.status_code == 400, r.text
    assert H.errors_of(r) == [SEAL_MISMATCH]
    # B unchanged: its own data and token, not A's.
    assert get(b, "only-in-b") == "b"
    assert get(b, "k000") is None
    assert b.get("kv/k000", token=a.root_token).status_code == 403
    assert b.get("sys/seal-status").json()["sealed"] is False


def test_force_restore_from_other_cluster(two_clusters):
    a, b = two_clusters
    data = save(a)
    want = kv_state(a, 20)
    r = restore(b, data, force=True)
    assert r.status_code == 204, r.text
    # B's keyring cannot read A's data: it seals, and A's keys unseal it.
    status = b.get("sys/seal-status").json()
    assert status["sealed"] is True, status
    H.unseal(b, a.keys[:2])
    H.wait_active(b)
    b.root_token = a.root_token
    assert kv_state(b, 20) == want
    assert get(b, "only-in-b") is None
    assert b.get("auth/token/lookup-self", token=a.root_token).status_code == 200


# ---- uploads: who, how many, how much disk (security issue 9, item 1.4) -----------------
import socket  # noqa: E402

TEN_GIB = 10 << 30


def spool_dir(srv):
    return os.path.realpath(os.path.join(srv.data_dir, "snapshot-spool"))


def spool_fds(srv):
    """Open files of the server in its spool directory. Spool files are unlinked from
    the start (O_TMPFILE), so the directory listing is always empty: the fd table is
    where an upload being stored shows."""
    d, out = spool_dir(srv), []
    for fd in os.listdir("/proc/%d/fd" % srv.pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (srv.pid, fd))
        except OSError:
            continue
        if target.startswith(d + "/"):
            out.append(target)
    return out


def wait_no_spool_fds(srv, secs=10):
    """The restore releases its copy of the file from a loop callback after answering."""
    deadline = time.time() + secs
    while spool_fds(srv) and time.time() < deadline:
        time.sleep(0.05)
    return spool_fds(srv)


def upload_head(path, length=None, token=None):
    head = "POST /v1/%s HTTP/1.1\r\nHost: x\r\n" % path
    if token:
        head += "X-Vault-Token: %s\r\n" % token
    head += ("Content-Length: %d\r\n" % length) if length is not None else \
        "Transfer-Encoding: chunked\r\n"
    return (head + "Content-Type: application/octet-stream\r\n\r\n").encode()


def read_response(sock):
    """(status, body bytes) of one Content-Length response from a raw socket."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before a response: %r" % buf
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        k, v = line.split(":", 1)
        if k.lower() == "content-length":
            length = int(v)
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the response body"
        body += chunk
    return status, body[:length]


def closed_by_server(sock):
    """True once the server has ended the connection (EOF or reset) within a short
    wait: it must not keep the connection open for the announced body."""
    sock.settimeout(10)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    return True


@pytest.mark.parametrize("path", ["sys/storage/raft/snapshot", "sys/storage/raft/snapshot-force"])
def test_upload_refused_after_the_headers(kvnode, path):
    """The attack: announce 10 GiB without a token, or with a token lacking sudo. The
    answer comes after the headers and a few body bytes (the server never waited for the
    body), the connection is closed, no spool file was ever opened, nothing changed."""
    before = kv_state(kvnode, 40)
    weak = kvnode.client().auth.token.create(policies=["default"])["auth"]["client_token"]
    for token in (None, weak, "not-a-token"):
        s = socket.create_connection(("127.0.0.1", kvnode.port), timeout=20)
        s.sendall(upload_head(path, TEN_GIB, token) + b"\x1f\x8b" + b"A" * 1000)
        status, body = read_response(s)
        assert status in (400, 403), (token, status, body)
        assert "permission denied" in json.loads(body)["errors"][0], body
        assert spool_fds(kvnode) == []
        assert closed_by_server(s), "the server kept the connection for the body"
        s.close()
    # chunked, no length known: same answer
    s = socket.create_connection(("127.0.0.1", kvnode.port), timeout=20)
    s.sendall(upload_head(path, None, weak) + b"1000\r\n" + b"A" * 100)
    status, body = read_response(s)
    assert status == 403, body
    s.close()
    assert spool_fds(kvnode) == []
    assert kv_state(kvnode, 40) == before
    # the refusals are audited like any refused request: here, no device, still works
    assert kvnode.get("sys/health").status_code == 200


def test_second_concurrent_upload_refused(kvnode):
    data = save(kvnode)
    before = kv_state(kvnode, 40)
    put(kvnode, "k003", "later")
    half = len(data) // 2
    a = socket.create_connection(("127.0.0.1", kvnode.port), timeout=60)
    a.sendall(upload_head("sys/storage/raft/snapshot", len(data), kvnode.root_token) +
              data[:half])
    # The first upload is being stored (its spool file is open) ...
    deadline = time.time() + 20
    while not spool_fds(kvnode) and time.time() < deadline:
        time.sleep(0.05)
    assert len(spool_fds(kvnode)) == 1
    # ... so a second one, even fully authorised, is turned away before its body.
    for path in ("sys/storage/raft/snapshot", "sys/storage/raft/snapshot-force"):
        r = restore(kvnode, data, force=path.endswith("force"))
        assert r.status_code == 503, r.text
        assert "already in progress" in H.errors_of(r)[0]
    assert len(spool_fds(kvnode)) == 1
    # The first one completes normally, and the slot is free again afterwards.
    a.sendall(data[half:])
    status, body = read_response(a)
    a.close()
    assert status == 204, body
    assert kv_state(kvnode, 40) == before
    assert restore(kvnode, data).status_code == 204
    assert wait_no_spool_fds(kvnode) == []


@pytest.fixture
def reserve_node(server_factory):
    srv = server_factory(extra_config="snapshot_spool_reserve_percent = 99\n")
    H.init_and_unseal(srv)
    H.enable_kv(srv, "kv")
    for i in range(10):
        put(srv, "k%03d" % i, "v%d" % i)
    return srv


def test_upload_refused_when_disk_reserve_would_be_crossed(reserve_node, kvnode):
    srv = reserve_node
    st = os.statvfs(spool_dir(srv))
    assert st.f_bavail < st.f_blocks * 0.99, "test needs a volume less than 99% free"
    # A save writes a copy of the store next to the uploads: refused the same way.
    r = srv.get("sys/storage/raft/snapshot", token=srv.root_token)
    assert r.status_code == 507, r.text
    assert "free-space reserve" in H.errors_of(r)[0]
    data = save(kvnode)  # from elsewhere: the reserve is checked before the archive
    put(srv, "k001", "later")
    before = kv_state(srv, 10)
    r = restore(srv, data)  # with Content-Length
    assert r.status_code == 507, r.text
    assert H.errors_of(r) == [
        "http: not enough free space to store the request body: the upload would leave "
        "less than 99% of the spool volume free"]

    def body():
        yield data
    r = restore(srv, body(), force=True)  # chunked
    assert r.status_code == 507, r.text
    assert kv_state(srv, 10) == before
    assert spool_fds(srv) == []
    # The slot was released: a refused upload does not block the next one.
    r = restore(srv, data)
    assert r.status_code == 507, r.text


def test_upload_on_sealed_node_refused_before_body(kvnode):
    kvnode.put("sys/seal", token=kvnode.root_token)
    s = socket.create_connection(("127.0.0.1", kvnode.port), timeout=20)
    s.sendall(upload_head("sys/storage/raft/snapshot", TEN_GIB, kvnode.root_token) + b"x")
    status, body = read_response(s)
    s.close()
    assert status == 503, body
    assert json.loads(body)["errors"] == ["Vault is sealed"]
    assert spool_fds(kvnode) == []


def test_refused_upload_is_audited(kvnode, tmp_path):
    """The early refusal goes through the core's own check, audit included."""
    log = str(tmp_path / "audit.log")
    r = kvnode.put("sys/audit/file", token=kvnode.root_token,
                   json={"type": "file", "options": {"file_path": log}})
    assert r.status_code == 204, r.text
    weak = kvnode.client().auth.token.create(policies=["default"])["auth"]["client_token"]
    s = socket.create_connection(("127.0.0.1", kvnode.port), timeout=20)
    s.sendall(upload_head("sys/storage/raft/snapshot", TEN_GIB, weak) + b"x")
    status, _ = read_response(s)
    s.close()
    assert status == 403
    entries = [json.loads(line) for line in open(log) if line.strip()]
    refused = [e for e in entries if e.get("type") == "request" and
               e["request"]["path"] == "sys/storage/raft/snapshot"]
    assert len(refused) == 1, entries[-3:]
    assert "permission denied" in refused[0]["error"]
    assert refused[0]["request"]["operation"] == "update"
