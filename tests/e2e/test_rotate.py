"""Barrier key rotation (security issue 9, §2): sys/rotate, sys/key-status,
sys/rotate/config, automatic rotation at max_operations, encryption counts that survive
restarts and kill -9, the ACL (sudo on sys/rotate), the CLI (`operator rotate`,
`operator key-status`), and a 3-node cluster where a standby forwards the rotation,
installs the new term through raft and keeps reading old and new secrets after the
active node is killed."""

import datetime
import time

import pytest

import custos_harness as H

LOW_FLOOR = "rotation_min_operations = 100\n"


def key_status(node, token):
    r = node.get("sys/key-status", token=token)
    assert r.status_code == 200, "key-status on %s: %s %s" % (node.name, r.status_code, r.text)
    body = r.json()
    d = body["data"]
    # Vault copies sys/key-status data to the top level too.
    assert body.get("term") == d["term"]
    return d


def rotate(node, token):
    r = node.request("POST", "sys/rotate", token=token)
    assert r.status_code == 204, "sys/rotate on %s: %s %s" % (node.name, r.status_code, r.text)


def put_secrets(node, token, names, prefix="kv/"):
    for n in names:
        r = node.put(prefix + n, token=token, json={"v": n})
        assert r.status_code in (200, 204), (n, r.status_code, r.text)


def assert_secrets(node, token, names, prefix="kv/"):
    for n in names:
        r = node.get(prefix + n, token=token)
        assert r.status_code == 200 and r.json()["data"] == {"v": n}, (node.name, n, r.text)


def restart_single(s, kill=False):
    if kill:
        s.kill9()
        s.start()
    else:
        s.restart()
    H.unseal(s, s.keys[:2])
    H.wait_active(s)


def parse_time(s):
    # Go's RFC3339Nano: up to 9 fraction digits, "Z".
    base, _, frac = s.rstrip("Z").partition(".")
    t = datetime.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S")
    return t.replace(tzinfo=datetime.timezone.utc)


def test_rotate_keeps_old_secrets_and_new_writes_use_new_term(unsealed):
    s, tok = unsealed, unsealed.root_token
    H.enable_kv(s, "kv", tok)
    old = ["old-%d" % i for i in range(10)]
    put_secrets(s, tok, old)

    ks1 = key_status(s, tok)
    assert ks1["term"] == 1
    assert ks1["encryptions"] >= len(old)  # every KV write was encrypted and counted
    t1 = parse_time(ks1["install_time"])
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - t1).total_seconds()) < 600

    rotate(s, tok)
    ks2 = key_status(s, tok)
    assert ks2["term"] == 2
    assert parse_time(ks2["install_time"]) >= t1
    assert_secrets(s, tok, old)

    # New writes are encrypted (and counted) under term 2.
    new = ["new-%d" % i for i in range(10)]
    put_secrets(s, tok, new)
    ks3 = key_status(s, tok)
    assert ks3["term"] == 2 and ks3["encryptions"] >= len(new)

    # A second rotation right away (through hvac, as Vault clients do) makes term 3;
    # everything stays readable, also after a restart (the keyring record on disk
    # carries all three terms).
    client = s.client()
    client.sys.rotate_encryption_key()
    assert client.sys.get_encryption_key_status()["data"]["term"] == 3
    restart_single(s)
    assert key_status(s, tok)["term"] == 3
    assert_secrets(s, tok, old + new)
    put_secrets(s, tok, ["after-restart"])
    assert_secrets(s, tok, ["after-restart"])


def test_snapshot_restore_across_a_rotation(unsealed):
    """A snapshot taken at term 1, restored after a rotation: the node goes back to the
    snapshot's keyring (term 1 opens everything in it), writes keep working and survive
    a restart, and term 1's count never drops below what it had reached."""
    s, tok = unsealed, unsealed.root_token
    H.enable_kv(s, "kv", tok)
    old = ["snap-%02d" % i for i in range(10)]
    put_secrets(s, tok, old)
    r = s.get("sys/storage/raft/snapshot", token=tok, timeout=60)
    assert r.status_code == 200, r.text[:300]
    snap = r.content
    put_secrets(s, tok, ["later-%02d" % i for i in range(20)])
    used1 = key_status(s, tok)["encryptions"]
    rotate(s, tok)
    put_secrets(s, tok, ["term2-%02d" % i for i in range(5)])

    r = s.request("POST", "sys/storage/raft/snapshot", token=tok, data=snap, timeout=60,
                  headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    ks = key_status(s, tok)
    assert ks["term"] == 1
    assert ks["encryptions"] >= used1
    assert_secrets(s, tok, old)
    assert s.get("kv/term2-00", token=tok).status_code == 404
    put_secrets(s, tok, ["restored-write"])
    restart_single(s)
    assert key_status(s, tok)["term"] == 1
    assert_secrets(s, tok, old + ["restored-write"])


def test_rotate_config_round_trip_and_bad_values(unsealed):
    s, tok = unsealed, unsealed.root_token
    r = s.get("sys/rotate/config", token=tok)
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"max_operations": 3865470566, "enabled": True, "interval": 0}

    r = s.request("POST", "sys/rotate/config", token=tok,
                  json={"max_operations": 2000000, "interval": "48h", "enabled": False})
    assert r.status_code == 204, r.text
    want = {"max_operations": 2000000, "enabled": False, "interval": "48h0m0s"}
    assert s.get("sys/rotate/config", token=tok).json()["data"] == want
    # OpenBao's alias reads the same configuration.
    assert s.get("sys/rotate/keyring/config", token=tok).json()["data"] == want

    # Only the fields given change.
    r = s.request("POST", "sys/rotate/config", token=tok, json={"enabled": True})
    assert r.status_code == 204, r.text
    want["enabled"] = True
    assert s.get("sys/rotate/config", token=tok).json()["data"] == want

    bad = [
        ({"max_operations": 999999}, "max_operations must be in the range"),
        ({"max_operations": 3865470567}, "max_operations must be in the range"),
        ({"max_operations": -1}, "max_operations must be in the range"),
        ({"interval": "1h"}, "interval must be greater or equal to 24h0m0s"),
        ({"interval": 86399}, "interval must be greater or equal to 24h0m0s"),
        ({"interval": "3000000h"}, None),  # past every duration field's bound
        ({"interval": "soon"}, None),
        ({"enabled": "maybe"}, None),
        ({"max_operations": "many"}, None),
    ]
    for body, msg in bad:
        r = s.request("POST", "sys/rotate/config", token=tok, json=body)
        assert r.status_code == 400, (body, r.status_code, r.text)
        if msg:
            assert any(msg in e for e in H.errors_of(r)), (body, r.text)
        # ... and nothing changed.
        assert s.get("sys/rotate/config", token=tok).json()["data"] == want, body

    # interval 0 switches time-based rotation off again; the keyring term is untouched.
    r = s.request("POST", "sys/rotate/config", token=tok, json={"interval": 0})
    assert r.status_code == 204
    assert s.get("sys/rotate/config", token=tok).json()["data"]["interval"] == 0
    assert key_status(s, tok)["term"] == 1
    # The configuration survives a restart.
    restart_single(s)
    assert s.get("sys/rotate/config", token=tok).json()["data"] == dict(want, interval=0)


def test_rotate_needs_sudo_and_key_status_a_policy(unsealed):
    s, tok = unsealed, unsealed.root_token
    policies = {
        "rot-nosudo": 'path "sys/rotate" { capabilities = ["update"] }',
        "rot-sudo": 'path "sys/rotate" { capabilities = ["update", "sudo"] }',
        "ks-read": 'path "sys/key-status" { capabilities = ["read"] }',
    }
    for name, text in policies.items():
        r = s.put("sys/policies/acl/" + name, token=tok, json={"policy": text})
        assert r.status_code in (200, 204), r.text

    def token(*pols):
        r = s.request("POST", "auth/token/create", token=tok, json={"policies": list(pols)})
        assert r.status_code == 200, r.text
        return r.json()["auth"]["client_token"]

    nosudo, withsudo, reader, nobody = (token("rot-nosudo"), token("rot-sudo"),
                                        token("ks-read"), token("default"))
    for t in (nosudo, reader, nobody):
        r = s.request("POST", "sys/rotate", token=t)
        assert r.status_code == 403, r.text
    assert key_status(s, tok)["term"] == 1  # the refused attempts changed nothing
    assert s.get("sys/key-status", token=nobody).status_code == 403
    assert s.get("sys/key-status", token=reader).status_code == 200
    r = s.request("POST", "sys/rotate", token=withsudo)
    assert r.status_code == 204, r.text
    assert key_status(s, tok)["term"] == 2
    # Changing the configuration needs a policy on it (no sudo, as in Vault).
    r = s.request("POST", "sys/rotate/config", token=withsudo, json={"enabled": False})
    assert r.status_code == 403


@pytest.mark.timeout_s(120)
def test_automatic_rotation_at_max_operations(server_factory):
    s = server_factory(extra_config=LOW_FLOOR)
    H.init_and_unseal(s)
    tok = s.root_token
    H.enable_kv(s, "kv", tok)
    r = s.request("POST", "sys/rotate/config", token=tok, json={"max_operations": 99})
    assert r.status_code == 400  # the configured floor still holds
    r = s.request("POST", "sys/rotate/config", token=tok, json={"max_operations": 150})
    assert r.status_code == 204, r.text

    start = key_status(s, tok)
    assert start["term"] == 1
    written = []
    deadline = time.monotonic() + 60
    term = 1
    i = 0
    while term == 1 and time.monotonic() < deadline:
        name = "auto-%04d" % i
        put_secrets(s, tok, [name])
        written.append(name)
        i += 1
        if i % 10 == 0:
            term = key_status(s, tok)["term"]
    assert term >= 2, "no automatic rotation after %d writes" % len(written)
    assert "rotating the key of term 1 automatically (reached max operations)" in \
        s.log_text(since_start=True)
    # The new term starts counting from zero; everything stays readable.
    assert key_status(s, tok)["encryptions"] < 150
    assert_secrets(s, tok, written)
    # Disabled: the count may pass the limit without a rotation.
    r = s.request("POST", "sys/rotate/config", token=tok, json={"enabled": False})
    assert r.status_code == 204
    t_before = key_status(s, tok)["term"]
    put_secrets(s, tok, ["off-%03d" % k for k in range(160)])
    time.sleep(1.5)  # the check runs every second: give it the chance to (wrongly) rotate
    ks = key_status(s, tok)
    assert ks["encryptions"] >= 150 and ks["term"] == t_before
    # Enabled again, the count above the limit rotates at the next check.
    r = s.request("POST", "sys/rotate/config", token=tok, json={"enabled": True})
    assert r.status_code == 204
    deadline = time.monotonic() + 30
    while key_status(s, tok)["term"] == t_before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert key_status(s, tok)["term"] == t_before + 1


@pytest.mark.timeout_s(120)
def test_count_survives_restart_and_kill9(unsealed):
    s, tok = unsealed, unsealed.root_token
    H.enable_kv(s, "kv", tok)
    put_secrets(s, tok, ["c-%03d" % i for i in range(50)])
    n1 = key_status(s, tok)["encryptions"]
    assert n1 >= 50

    restart_single(s)
    n2 = key_status(s, tok)["encryptions"]
    assert n2 >= n1

    put_secrets(s, tok, ["d-%03d" % i for i in range(30)])
    n3 = key_status(s, tok)["encryptions"]
    assert n3 >= n2 + 30
    # A crash right after acknowledged writes: the persisted count still covers them.
    restart_single(s, kill=True)
    n4 = key_status(s, tok)["encryptions"]
    assert n4 >= n3
    # ... over-counting by at most one reservation batch (1/256 of max_operations).
    assert n4 <= n3 + 65536 + 1
    assert_secrets(s, tok, ["c-%03d" % i for i in range(50)] + ["d-%03d" % i for i in range(30)])


def test_cli_operator_rotate_and_key_status(unsealed):
    s, tok = unsealed, unsealed.root_token
    env = {"VAULT_ADDR": s.url, "VAULT_TOKEN": tok}
    p = H.run_cli(["operator", "key-status"], env=env)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["Key", "Term", "1"]
    assert lines[1].startswith("Install Time") and lines[1].endswith("UTC")
    assert lines[2].startswith("Encryption Count")

    p = H.run_cli(["operator", "rotate"], env=env)
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert out[0] == "Success! Rotated key" and out[1] == ""
    assert out[2].split() == ["Key", "Term", "2"]

    p = H.run_cli(["operator", "key-status", "-format=json"], env=env)
    assert p.returncode == 0, p.stderr
    j = H.json_or_fail(p.stdout)
    assert list(j) == ["term", "install_time", "encryptions"] and j["term"] == 2

    p = H.run_cli(["operator", "rotate", "-format=json"], env=env)
    assert p.returncode == 0, p.stderr
    assert H.json_or_fail(p.stdout)["term"] == 3

    # Errors: exit 2 with Vault's prefix; arguments: exit 1.
    p = H.run_cli(["operator", "rotate"], env={"VAULT_ADDR": s.url, "VAULT_TOKEN": "nope"})
    assert p.returncode == 2 and p.stderr.startswith("Error rotating key"), p.stderr
    p = H.run_cli(["operator", "key-status", "extra"], env=env)
    assert p.returncode == 1
    p = H.run_cli(["operator", "rotate", "-h"], env=env)
    assert p.returncode == 0 and "Usage: custos operator rotate" in p.stdout
    assert key_status(s, tok)["term"] == 3


@pytest.mark.timeout_s(300)
def test_cluster_rotate_through_standby_then_failover(cluster_factory):
    c = cluster_factory(n=3)
    tok = c.root_token
    leader = c.leader()
    H.enable_kv(leader, "kv", tok)
    old = ["old-%02d" % i for i in range(20)]
    put_secrets(leader, tok, old)

    # A standby forwards the rotation; the answer comes once the term applied.
    standby = c.standbys()[0]
    rotate(standby, tok)
    for n in c.nodes:
        assert key_status(n, tok)["term"] == 2, n.name
    new = ["new-%02d" % i for i in range(20)]
    put_secrets(standby, tok, new)
    c.wait_converged()

    # The standbys installed term 2 from raft: whichever becomes active encrypts with it
    # (its key-status would say 1 otherwise) and reads both generations.
    c.kill9(leader)
    nxt = c.leader(timeout=20, exclude=[leader])
    ks = key_status(nxt, tok)
    assert ks["term"] == 2
    more = ["more-%02d" % i for i in range(10)]
    put_secrets(nxt, tok, more)
    assert key_status(nxt, tok)["encryptions"] >= ks["encryptions"] + len(more)
    for n in c.nodes:
        if n is not leader:
            assert_secrets(n, tok, old + new + more)

    # Rotate again on the new active node while the old one is down; it catches up.
    rotate(nxt, tok)
    c.restart(leader)
    c.wait_converged()
    for n in c.nodes:
        assert key_status(n, tok)["term"] == 3, n.name
        assert_secrets(n, tok, old + new + more)

    # A full restart of every node (unseal from disk): all terms still open.
    for n in c.nodes:
        n.stop()
    for n in c.nodes:
        n.start()
    for n in c.nodes:
        c.unseal_node(n)
    top = c.leader(timeout=30)
    assert key_status(top, tok)["term"] == 3
    put_secrets(top, tok, ["final"])
    c.wait_converged()
    for n in c.nodes:
        assert_secrets(n, tok, old + new + more + ["final"])
