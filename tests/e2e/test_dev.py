"""`custos server -dev`: unsealed at once, credentials printed, secret/ mounted, temp dir
removed at exit; config errors stop start-up with FILE:LINE: reason."""

import glob
import os
import re
import subprocess

import pytest

import custos_harness as H
from conftest import parse_dev_credentials


def dev_dirs_of(pid):
    """Directories under /tmp/custos-dev-* that the process has open files in."""
    out = set()
    for fd in glob.glob("/proc/%d/fd/*" % pid):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        m = re.match(r"^(/tmp/custos-dev-[^/]+)", target)
        if m:
            out.add(m.group(1))
    return out


def test_dev_server_lifecycle(tmp_path):
    srv = H.Server(tmp_path / "dev", name="dev", dev=True)
    try:
        srv.start()
        H.wait_active(srv)
        key, token = parse_dev_credentials(srv)
        assert token, "no 'Root Token:' line:\n" + srv.log_tail(30)
        assert key, "no 'Unseal Key:' line:\n" + srv.log_tail(30)
        srv.root_token = token
        st = srv.get("sys/seal-status").json()
        assert st["sealed"] is False and st["initialized"] is True
        assert (st["t"], st["n"]) == (1, 1), st
        r = srv.get("auth/token/lookup-self", token=token)
        assert r.status_code == 200, r.text
        mounts = srv.get("sys/mounts", token=token).json()["data"]
        assert mounts["secret/"]["type"] == "kv", mounts
        dirs = dev_dirs_of(srv.pid)
        # sealing and unsealing with the printed key works
        assert srv.put("sys/seal", token=token).status_code == 204
        assert srv.put("sys/unseal", json={"key": key}).json()["sealed"] is False
        H.wait_active(srv)
        assert srv.stop() == 0
        for d in dirs:
            assert not os.path.exists(d), "dev data dir %s left behind" % d
    finally:
        srv.cleanup()


def test_dev_root_token_id(dev_server):
    r = dev_server.get("auth/token/lookup-self", token=dev_server.root_token)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["id"] == dev_server.root_token
    assert dev_server.get("auth/token/lookup-self", token="not-" + dev_server.root_token).status_code == 403


BAD_CONFIGS = [
    ("unknown top-level key", 'storage "raft" {{ path = "{d}" node_id = "n" }}\n'
     'listener "tcp" {{ address = "127.0.0.1:{p}" tls_disable = true }}\n'
     'bogus_key = 1\n', 3),
    ("unknown listener key", 'storage "raft" {{ path = "{d}" node_id = "n" }}\n'
     'listener "tcp" {{\n  address = "127.0.0.1:{p}"\n  tls_disable = true\n  frobnicate = "x"\n}}\n', 5),
    ("bad tls_min_version", 'storage "raft" {{ path = "{d}" node_id = "n" }}\n'
     'listener "tcp" {{\n  address = "127.0.0.1:{p}"\n  tls_cert_file = "/nonexistent/c.pem"\n'
     '  tls_key_file = "/nonexistent/k.pem"\n  tls_min_version = "tls10"\n}}\n', 6),
    ("bad boolean", 'storage "raft" {{ path = "{d}" node_id = "n" }}\n'
     'listener "tcp" {{ address = "127.0.0.1:{p}" tls_disable = true }}\n'
     'disable_mlock = "perhaps"\n', 3),
    ("syntax error", 'storage "raft" {{ path = "{d}" node_id = "n"\n'
     'listener "tcp" {{ address = "127.0.0.1:{p}" tls_disable = true }}\n', None),
]


@pytest.mark.parametrize("what,text,line", BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_config_errors_stop_startup(tmp_path, what, text, line):
    port = H.free_port_pair()
    cfg = tmp_path / "bad.hcl"
    cfg.write_text(text.format(d=tmp_path / "data", p=port))
    p = subprocess.run([H.BIN, "server", "-config=%s" % cfg], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20, text=True)
    assert p.returncode != 0, (what, p.stdout)
    assert str(cfg) in p.stdout or "bad.hcl" in p.stdout, (what, p.stdout)
    if line is not None:
        assert re.search(r"bad\.hcl:%d\b" % line, p.stdout), (what, line, p.stdout)


def test_config_missing_tls_files(tmp_path):
    port = H.free_port_pair()
    cfg = tmp_path / "c.hcl"
    cfg.write_text('storage "raft" { path = "%s" node_id = "n" }\n'
                   'listener "tcp" { address = "127.0.0.1:%d" }\n' % (tmp_path / "data", port))
    p = subprocess.run([H.BIN, "server", "-config=%s" % cfg], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20, text=True)
    assert p.returncode != 0, p.stdout
