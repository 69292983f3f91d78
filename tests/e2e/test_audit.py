"""Audit devices: file and socket devices, Vault's entry shapes, HMAC of every secret
(checked against sys/audit-hash; timestamp-shaped secrets too), list/disable, persistence
across restart + unseal, fail-closed when no device can write, log rotation on SIGHUP, and
the file device's limits (CVE-2025-6000 replays: storage and binary directories, symlinks,
non-regular files, the mode of existing files, prefix and wide modes only with
allow_audit_log_prefixing)."""

import json
import os
import re
import signal
import socket
import threading
import time

import hvac
import pytest

import custos_harness as H

SECRET = "s3cr3t-" + H.uid()


def lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def enable_file(srv, path, file_path, **opts):
    options = {"file_path": file_path}
    options.update(opts)
    r = srv.put("sys/audit/" + path, token=srv.root_token,
                json={"type": "file", "options": options})
    assert r.status_code == 204, r.text
    return r


def audit_hash(srv, dev, value):
    r = srv.put("sys/audit-hash/" + dev, token=srv.root_token, json={"input": value})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["data"]["hash"].startswith("hmac-sha256:"), body
    return body["data"]["hash"]


def test_file_device_entries_hmac_and_list(unsealed, tmp_path):
    srv = unsealed
    log = str(tmp_path / "audit.log")
    c = srv.client()
    c.sys.enable_audit_device("file", path="file", options={"file_path": log})
    assert oct(os.stat(log).st_mode & 0o777) == "0o600"
    H.enable_kv(srv)
    c.secrets.kv.v1.create_or_update_secret("app", {"password": SECRET, "n": 7,
                                                    "nested": {"l": [SECRET, True]}},
                                            mount_point="kv")
    got = c.secrets.kv.v1.read_secret("app", mount_point="kv")
    assert got["data"]["password"] == SECRET
    listed = c.sys.list_enabled_audit_devices()
    assert listed["data"]["file/"]["type"] == "file", listed
    assert listed["data"]["file/"]["options"]["file_path"] == log

    raw = open(log).read()
    assert SECRET not in raw
    assert srv.root_token not in raw
    entries = lines(log)
    assert entries and all(e["type"] in ("request", "response") for e in entries)
    for e in entries:
        assert e["time"] and e["request"]["id"] and e["request"]["namespace"] == {"id": "root"}
    secret_hash = audit_hash(srv, "file", SECRET)
    token_hash = audit_hash(srv, "file", srv.root_token)

    writes = [e for e in entries if e["request"]["path"] == "kv/app"
              and e["request"]["operation"] == "update"]
    assert [e["type"] for e in writes] == ["request", "response"], writes
    req = writes[0]
    assert req["request"]["data"]["password"] == secret_hash
    assert req["request"]["data"]["n"] == 7  # numbers are not hashed
    assert req["request"]["data"]["nested"]["l"] == [secret_hash, True]
    assert req["request"]["client_token"] == token_hash
    assert req["auth"]["client_token"] == token_hash
    assert req["auth"]["policies"] == ["root"]
    assert req["request"]["mount_type"] == "kv"
    assert req["request"]["remote_address"] == "127.0.0.1"
    assert writes[1]["request"]["id"] == req["request"]["id"]

    reads = [e for e in entries if e["request"]["path"] == "kv/app"
             and e["request"]["operation"] == "read" and e["type"] == "response"]
    assert reads and reads[-1]["response"]["data"]["password"] == secret_hash

    # the audit-hash requests themselves were logged with the input hashed
    hashes = [e for e in lines(log) if e["request"]["path"] == "sys/audit-hash/file"]
    assert hashes and SECRET not in open(log).read()

    # the response's request_id is the audit request id
    r = srv.get("kv/app", token=srv.root_token)
    rid = r.json()["request_id"]
    assert any(e["request"]["id"] == rid for e in lines(log))

    # disable: no more lines
    c.sys.disable_audit_device("file")
    assert "file/" not in c.sys.list_enabled_audit_devices()["data"]
    n = len(lines(log))
    c.secrets.kv.v1.read_secret("app", mount_point="kv")
    assert len(lines(log)) == n


ALLOW = "allow_audit_log_prefixing = true\n"


def allowing_server(server_factory):
    srv = server_factory(extra_config=ALLOW)
    H.init_and_unseal(srv)
    return srv


def test_options_and_errors(server_factory, tmp_path):
    srv = allowing_server(server_factory)
    t = srv.root_token
    bad = srv.put("sys/audit/x", token=t, json={"type": "nope"})
    assert bad.status_code == 400, bad.text
    bad = srv.put("sys/audit/x", token=t,
                  json={"type": "file", "options": {"file_path": str(tmp_path / "no/dir/f")}})
    assert bad.status_code == 400, bad.text
    bad = srv.put("sys/audit/x", token=t,
                  json={"type": "file", "options": {"file_path": "/tmp/x", "format": "jsonx"}})
    assert bad.status_code == 400, bad.text
    raw_log = str(tmp_path / "raw.log")
    enable_file(srv, "raw", raw_log, log_raw=True, hmac_accessor=False, prefix="@cee: ")
    dup = srv.put("sys/audit/raw", token=t, json={"type": "file",
                                                  "options": {"file_path": raw_log}})
    assert dup.status_code == 400, dup.text
    H.enable_kv(srv)
    srv.client().secrets.kv.v1.create_or_update_secret("r", {"v": SECRET}, mount_point="kv")
    text = open(raw_log).read()
    assert SECRET in text  # log_raw
    assert all(line.startswith("@cee: ") for line in text.splitlines())
    # hmac_accessor=false with hashing on: the accessor is plain, the token hashed
    plain = str(tmp_path / "plain.log")
    enable_file(srv, "plain", plain, hmac_accessor=False, mode="0640")
    assert oct(os.stat(plain).st_mode & 0o777) == "0o640"
    srv.client().secrets.kv.v1.read_secret("r", mount_point="kv")
    e = [x for x in lines(plain) if x["request"]["path"] == "kv/r"][0]
    acc = srv.client().auth.token.lookup_self()["data"]["accessor"]
    assert e["auth"]["accessor"] == acc
    assert e["request"]["client_token"].startswith("hmac-sha256:")
    # audit endpoints are sudo: a default-policy token is refused
    tok = srv.client().auth.token.create(policies=["default"])["auth"]["client_token"]
    assert srv.get("sys/audit", token=tok).status_code == 403
    # unaudited endpoints (handled outside the router in Vault)
    n = len(lines(plain))
    srv.get("sys/health")
    srv.get("sys/seal-status")
    assert len(lines(plain)) == n


def test_persists_across_restart(unsealed, tmp_path):
    srv = unsealed
    log = str(tmp_path / "p.log")
    enable_file(srv, "persist", log)
    before = audit_hash(srv, "persist", SECRET)
    srv.restart()
    H.unseal(srv, srv.keys[:2])
    H.wait_active(srv)
    assert audit_hash(srv, "persist", SECRET) == before  # same salt
    n = len(lines(log))
    srv.client().sys.list_mounted_secrets_engines()
    assert len(lines(log)) > n
    assert "persist/" in srv.client().sys.list_enabled_audit_devices()["data"]


def test_fail_closed_and_sighup_reopen(unsealed, tmp_path):
    srv = unsealed
    t = srv.root_token
    d = tmp_path / "logs"
    d.mkdir()
    log = str(d / "audit.log")
    enable_file(srv, "file", log)
    H.enable_kv(srv)
    assert srv.put("kv/a", token=t, json={"v": "1"}).status_code == 204

    # rotation: rename, SIGHUP → new lines go to a new file at the old path
    os.rename(log, log + ".1")
    os.kill(srv.pid, signal.SIGHUP)
    assert wait_for(lambda: os.path.exists(log))
    assert srv.get("kv/a", token=t).status_code == 200
    assert any(e["request"]["path"] == "kv/a" for e in lines(log))
    n_old = len(lines(log + ".1"))

    # make the path unwritable even for root: its directory becomes a regular file
    os.rename(str(d), str(tmp_path / "logs.moved"))
    with open(str(d), "w") as f:
        f.write("not a directory")
    os.kill(srv.pid, signal.SIGHUP)
    time.sleep(0.3)
    r = srv.put("kv/b", token=t, json={"v": SECRET})
    assert r.status_code == 500, r.text
    assert "failed to audit request" in H.errors_of(r)[0]
    r = srv.get("kv/a", token=t)
    assert r.status_code == 500, r.text

    # recover: the directory comes back; the next write reopens the file
    os.unlink(str(d))
    os.rename(str(tmp_path / "logs.moved"), str(d))
    r = srv.get("kv/b", token=t)
    assert r.status_code == 404, r.text  # the refused write changed nothing
    assert len(lines(log + ".1")) == n_old


def break_dir(srv, d):
    """Make every open of a log under directory d fail, even for root: the directory
    becomes a regular file; SIGHUP makes the server reopen its devices."""
    os.rename(str(d), str(d) + ".moved")
    with open(str(d), "w") as f:
        f.write("not a directory")
    os.kill(srv.pid, signal.SIGHUP)
    time.sleep(0.3)


def test_broken_device_alone_fails_closed(unsealed, tmp_path):
    srv = unsealed
    t = srv.root_token
    d = tmp_path / "logs"
    d.mkdir()
    enable_file(srv, "only", str(d / "a.log"))
    break_dir(srv, d)
    r = srv.put("sys/mounts/kvx", token=t, json={"type": "kv"})
    assert r.status_code == 500, r.text
    assert "failed to audit request" in H.errors_of(r)[0]
    # enabling another device is itself audited: refused while the only device is broken
    r = srv.put("sys/audit/good", token=t, json={"type": "file",
                                                 "options": {"file_path": str(tmp_path / "g")}})
    assert r.status_code == 500, r.text
    assert not os.path.exists(str(tmp_path / "g"))
    # after a restart the table still holds only the broken device: still closed, and the
    # refused mount was never created
    srv.restart()
    H.unseal(srv, srv.keys[:2])
    H.wait_active(srv)
    assert srv.get("sys/mounts", token=t).status_code == 500
    os.unlink(str(d))
    os.rename(str(d) + ".moved", str(d))
    r = srv.get("sys/mounts", token=t)
    assert r.status_code == 200, r.text
    assert "kvx/" not in r.json()["data"]


def test_broken_device_alongside_good_device(unsealed, tmp_path):
    srv = unsealed
    t = srv.root_token
    good = str(tmp_path / "good.log")
    d = tmp_path / "other"
    d.mkdir()
    enable_file(srv, "good", good)
    enable_file(srv, "other", str(d / "o.log"))
    break_dir(srv, d)
    H.enable_kv(srv)  # one device writes: success
    assert srv.put("kv/x", token=t, json={"v": SECRET}).status_code == 204
    assert SECRET not in open(good).read()
    assert srv.request("DELETE", "sys/audit/other", token=t).status_code == 204


class Collector:
    """A local TCP listener gathering audit lines."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.data = b""
        self.lock = threading.Lock()
        self.stop = False
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self.read, args=(conn,), daemon=True).start()

    def read(self, conn):
        conn.settimeout(0.2)
        while not self.stop:
            try:
                b = conn.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not b:
                return
            with self.lock:
                self.data += b

    def entries(self):
        with self.lock:
            return [json.loads(x) for x in self.data.decode().splitlines() if x.strip()]

    def close(self):
        self.stop = True
        self.sock.close()


def test_socket_device(unsealed):
    srv = unsealed
    t = srv.root_token
    col = Collector()
    try:
        r = srv.put("sys/audit/sock", token=t, json={
            "type": "socket",
            "options": {"address": "127.0.0.1:%d" % col.port, "socket_type": "tcp",
                        "write_timeout": "2s"}})
        assert r.status_code == 204, r.text
        H.enable_kv(srv)
        assert srv.put("kv/s", token=t, json={"v": SECRET}).status_code == 204
        assert wait_for(lambda: any(e["request"]["path"] == "kv/s" and e["type"] == "response"
                                    for e in col.entries()))
        assert SECRET not in col.data.decode()
        h = audit_hash(srv, "sock", SECRET)
        e = [x for x in col.entries() if x["request"]["path"] == "kv/s"][0]
        assert e["request"]["data"]["v"] == h
    finally:
        col.close()
    # a socket device that cannot connect is refused at enable
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    r = srv.put("sys/audit/sock2", token=t, json={
        "type": "socket", "options": {"address": "127.0.0.1:%d" % port}})
    assert r.status_code == 400, r.text


def test_hvac_client_roundtrip(unsealed, tmp_path):
    """hvac's audit helpers against the server."""
    c = unsealed.client()
    log = str(tmp_path / "h.log")
    c.sys.enable_audit_device("file", path="hv", description="d", options={"file_path": log})
    dev = c.sys.list_enabled_audit_devices()["data"]["hv/"]
    assert dev["description"] == "d" and dev["path"] == "hv/" and dev["local"] is False
    h = c.sys.calculate_hash("hv", "abc")
    assert h["data"]["hash"].startswith("hmac-sha256:")
    c.sys.disable_audit_device("hv")
    with pytest.raises(hvac.exceptions.InvalidRequest):
        c.sys.calculate_hash("hv", "abc")


def test_wrapped_response_tokens_hashed(unsealed, tmp_path):
    """A response-wrapped read: the wrapping token is HMAC'd in the log as well."""
    srv = unsealed
    log = str(tmp_path / "w.log")
    enable_file(srv, "w", log)
    H.enable_kv(srv)
    srv.client().secrets.kv.v1.create_or_update_secret("wr", {"v": SECRET}, mount_point="kv")
    r = srv.get("kv/wr", token=srv.root_token, headers={"X-Vault-Wrap-TTL": "60"})
    assert r.status_code == 200, r.text
    wi = r.json().get("wrap_info")
    assert wi and wi.get("token"), r.text  # wrapping is always built (server/wrap.c)
    text = open(log).read()
    assert SECRET not in text and wi["token"] not in text
    resp = [e for e in lines(log) if e["type"] == "response" and e["request"]["path"] == "kv/wr"
            and e["request"]["operation"] == "read"][-1]
    assert resp["response"]["wrap_info"]["token"] == audit_hash(srv, "w", wi["token"])
    assert resp["request"]["wrap_ttl"] == 60


# ---- CVE-2025-6000 class: what a sudo token may make the file device write ----------

def audit_table(srv):
    r = srv.get("sys/audit", token=srv.root_token)
    assert r.status_code == 200, r.text
    return sorted(k for k in r.json() if k.endswith("/") and isinstance(r.json()[k], dict)
                  and "type" in r.json()[k])


def refused(srv, path, options, what):
    """sys/audit/<path> is a 400 naming `what`, and the audit table does not change."""
    before = audit_table(srv)
    r = srv.put("sys/audit/" + path, token=srv.root_token,
                json={"type": "file", "options": options})
    assert r.status_code == 400, r.text
    assert what in H.errors_of(r)[0], r.text
    assert audit_table(srv) == before
    return r


def test_file_path_in_storage_or_binary_dir_refused(unsealed, tmp_path):
    srv = unsealed
    data = os.path.realpath(srv.data_dir)
    attempts = [os.path.join(data, "audit.log"),
                os.path.join(data, "raft", "audit.log") if os.path.isdir(
                    os.path.join(data, "raft")) else os.path.join(data, "x.log"),
                os.path.join(data, "..", os.path.basename(data), "dotdot.log")]
    link = tmp_path / "innocent"
    os.symlink(data, str(link))  # a symlinked parent resolves into the data dir
    attempts.append(str(link / "via-link.log"))
    before = set(os.listdir(data))
    for p in attempts:
        refused(srv, "d", {"file_path": p}, "inside the storage directory")
    assert set(os.listdir(data)) == before  # nothing written there
    bindir = os.path.dirname(os.path.realpath(H.BIN))
    victim = os.path.join(bindir, "audit-%s.log" % H.uid()[:8])
    refused(srv, "b", {"file_path": victim}, "directory of the custos binary")
    assert not os.path.exists(victim)
    refused(srv, "b", {"file_path": os.path.realpath(H.BIN)}, "directory of the custos binary")
    # the server still works, with no device (nothing was enabled)
    assert audit_table(srv) == []
    H.enable_kv(srv)
    assert srv.put("kv/ok", token=srv.root_token, json={"v": "1"}).status_code == 204


def test_dev_storage_dir_refused(dev_server):
    srv = dev_server
    # -dev keeps raft and LMDB in a mkdtemp directory: find it among the open files
    found = set()
    for fd in os.listdir("/proc/%d/fd" % srv.pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (srv.pid, fd))
        except OSError:
            continue
        m = re.match(r"^(/tmp/custos-dev-[^/]+)/", target)
        if m:
            found.add(m.group(1))
    assert len(found) == 1, found
    data = found.pop()
    assert os.path.isdir(data)
    before = set(os.listdir(data))
    refused(srv, "dev", {"file_path": os.path.join(data, "audit.log")},
            "inside the storage directory")
    assert set(os.listdir(data)) == before


def test_symlink_and_special_files_refused(unsealed, tmp_path):
    srv = unsealed
    target = tmp_path / "elsewhere" / "authorized_keys"
    target.parent.mkdir()
    target.write_text("ssh-ed25519 AAAA original\n")
    os.chmod(str(target), 0o640)
    link = tmp_path / "audit.log"
    os.symlink(str(target), str(link))
    refused(srv, "s", {"file_path": str(link)}, "symbolic link")
    refused(srv, "s", {"file_path": str(link), "mode": "0600"}, "symbolic link")
    assert target.read_text() == "ssh-ed25519 AAAA original\n"
    assert os.stat(str(target)).st_mode & 0o7777 == 0o640
    for dev in ("/dev/null", "/dev/full"):
        if os.path.exists(dev):
            refused(srv, "s", {"file_path": dev}, "not a regular file")
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    refused(srv, "s", {"file_path": fifo}, "not a regular file")  # and did not hang

    # planted after the enable: a SIGHUP reopen refuses it, nothing reaches the target
    real = tmp_path / "real.log"
    enable_file(srv, "s", str(real))
    second = tmp_path / "second.log"
    enable_file(srv, "keep", str(second))
    os.unlink(str(real))
    os.symlink(str(target), str(real))
    os.kill(srv.pid, signal.SIGHUP)
    assert wait_for(lambda: "refusing to follow a symbolic link" in srv.log_text())
    H.enable_kv(srv)
    assert srv.put("kv/after", token=srv.root_token, json={"v": SECRET}).status_code == 204
    assert target.read_text() == "ssh-ed25519 AAAA original\n"
    assert any(e["request"]["path"] == "kv/after" for e in lines(str(second)))


def test_mode_and_prefix_need_config(unsealed, server_factory, tmp_path):
    srv = unsealed
    existing = tmp_path / "shared.log"
    existing.write_text("")
    os.chmod(str(existing), 0o644)
    refused(srv, "m", {"file_path": str(existing), "mode": "0777"}, "executable")
    refused(srv, "m", {"file_path": str(existing), "mode": "0640"},
            "allow_audit_log_prefixing")
    refused(srv, "m", {"file_path": str(existing), "prefix": "#!/bin/sh\n"},
            "audit log prefixing is not allowed")
    refused(srv, "m", {"file_path": "stdout", "prefix": ""},
            "audit log prefixing is not allowed")
    assert os.stat(str(existing)).st_mode & 0o7777 == 0o644
    assert existing.read_text() == ""
    # 0600 is accepted, and leaves the existing file's mode alone
    enable_file(srv, "m", str(existing), mode="0600")
    assert os.stat(str(existing)).st_mode & 0o7777 == 0o644
    srv.client().sys.list_enabled_audit_devices()
    assert len(lines(str(existing))) >= 2

    # with allow_audit_log_prefixing = true: prefix and a wider mode are accepted
    srv2 = allowing_server(server_factory)
    other = tmp_path / "other.log"
    other.write_text("")
    os.chmod(str(other), 0o644)
    r = srv2.put("sys/audit/p", token=srv2.root_token, json={
        "type": "file", "options": {"file_path": str(other), "prefix": "@cee: ",
                                    "mode": "0640"}})
    assert r.status_code == 204, r.text
    assert os.stat(str(other)).st_mode & 0o7777 == 0o644  # existing: mode unchanged
    fresh = tmp_path / "fresh.log"
    enable_file(srv2, "f", str(fresh), mode="0640")
    assert os.stat(str(fresh)).st_mode & 0o7777 == 0o640  # created: mode applied
    srv2.client().sys.list_enabled_audit_devices()
    text = open(str(other)).read()
    assert text and all(x.startswith("@cee: {") for x in text.splitlines())
    # executable modes stay refused even then
    refused(srv2, "x", {"file_path": str(tmp_path / "x.log"), "mode": "0755"}, "executable")
    assert not os.path.exists(str(tmp_path / "x.log"))


def test_timestamp_shaped_secret_is_hmaced(unsealed, tmp_path):
    """Issue 9, item 9: a secret shaped like an RFC 3339 timestamp was logged in clear."""
    srv = unsealed
    log = str(tmp_path / "ts.log")
    enable_file(srv, "ts", log)
    H.enable_kv(srv)
    stamp = "2024-01-01T00:00:00Z"
    t = srv.root_token
    assert srv.put("kv/cert", token=t, json={"not_after": stamp,
                                             "l": ["2024-01-01T00:00:00+02:00"]}
                   ).status_code == 204
    r = srv.get("kv/cert", token=t)
    assert r.json()["data"]["not_after"] == stamp
    raw = open(log).read()
    assert "2024-01-01" not in raw
    h = audit_hash(srv, "ts", stamp)
    es = [e for e in lines(log) if e["request"]["path"] == "kv/cert"]
    w = [e for e in es if e["request"]["operation"] == "update" and e["type"] == "request"][0]
    assert w["request"]["data"]["not_after"] == h
    rd = [e for e in es if e["request"]["operation"] == "read" and e["type"] == "response"][0]
    assert rd["response"]["data"]["not_after"] == h
    # Vault's non-sensitive fields stay readable
    for e in (w, rd):
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", e["time"])
        assert re.match(r"^[0-9a-f-]{36}$", e["request"]["id"])
        assert e["request"]["path"] == "kv/cert"
        assert e["request"]["mount_type"] == "kv"
        assert e["request"]["mount_accessor"].startswith("kv_")
        assert e["request"]["remote_address"] == "127.0.0.1"
        assert e["request"]["namespace"] == {"id": "root"}
        assert e["auth"]["policies"] == ["root"]
        assert e["auth"]["token_policies"] == ["root"]
        assert e["auth"]["display_name"] == "root"
        assert e["request"]["client_token"].startswith("hmac-sha256:")
    assert rd["request"]["operation"] == "read"
    assert rd["response"]["mount_type"] == "kv"
