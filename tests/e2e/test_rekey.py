"""Key custody against real custos processes: sys/rekey (with and without verification)
and sys/generate-root (OTP) through hvac and through the custos CLI, on one node and on a
3-node cluster (requests sent to a standby are forwarded; after a rekey every node
unseals with the new shares only). Also the attack replays: cancelling an operator's
attempt without its nonce (CVE-2026-5807) fails and the attempt goes on; rekey with a
token that lacks sudo is 403."""

import base64
import os
import re
import shutil
import subprocess

import hvac
import pytest

import custos_harness as H


def decode_token(encoded, otp):
    raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
    assert len(raw) == len(otp)
    return bytes(a ^ ord(b) for a, b in zip(raw, otp)).decode()


def unseal_fails_with(node, keys):
    """Submit `keys` to a sealed node; True when the node refused them and stays sealed."""
    failed = False
    for k in keys:
        r = node.put("sys/unseal", json={"key": k})
        if r.status_code == 400:
            failed = True
            break
        assert r.status_code == 200, r.text
        assert r.json()["sealed"], "old keys unsealed the node"
    node.put("sys/unseal", json={"reset": True})
    return failed and node.get("sys/seal-status").json()["sealed"]


def rekey(client, old_keys, shares, threshold, verify):
    st = client.sys.start_rekey(secret_shares=shares, secret_threshold=threshold,
                                require_verification=verify)
    assert st["started"] and st["n"] == shares and st["t"] == threshold
    nonce = st["nonce"]
    res = None
    for k in old_keys:
        res = client.sys.rekey(k, nonce=nonce)
        if res.get("complete"):
            break
    assert res["complete"], res
    assert len(res["keys"]) == shares and len(res["keys_base64"]) == shares
    assert res["verification_required"] is verify
    new = res["keys_base64"]
    if verify:
        vnonce = res["verification_nonce"]
        for k in new[:threshold]:
            v = client.sys.rekey_verify(k, vnonce)
        assert v["complete"] and v["nonce"] == vnonce, v
    return new


def generate_root(client_for_attempt, client_for_update, keys):
    a = client_for_attempt.sys.start_root_token_generation()
    otp, nonce = a["otp"], a["nonce"]
    assert len(otp) == a["otp_length"] == 28 and nonce
    res = None
    for k in keys:
        res = client_for_update.sys.generate_root(k, nonce)
        if res["complete"]:
            break
    assert res["complete"], res
    return decode_token(res["encoded_token"], otp)


# ---------------------------------------------------------------- single node

def test_rekey_with_verification_single_node(unsealed):
    s = unsealed
    c = s.client()
    old = s.keys
    new = rekey(c, old[:2], shares=5, threshold=3, verify=True)
    st = s.get("sys/seal-status").json()
    assert (st["n"], st["t"]) == (5, 3)
    assert s.put("sys/seal", token=s.root_token).status_code == 204
    assert unseal_fails_with(s, old)  # the old 3/2 shares no longer unseal
    H.unseal(s, new[2:5])
    H.wait_active(s)
    # data is intact: the root token still works
    assert c.auth.token.lookup_self()["data"]["policies"] == ["root"]


def test_rekey_without_verification_and_status(unsealed):
    s = unsealed
    c = s.client()
    new = rekey(c, s.keys[:2], shares=1, threshold=1, verify=False)
    assert len(new) == 1
    st = c.sys.read_rekey_progress()
    assert st["started"] is False
    assert st["required"] == 1
    assert s.put("sys/seal", token=s.root_token).status_code == 204
    H.unseal(s, new)


def test_rekey_verification_rejects_wrong_keys(unsealed):
    s = unsealed
    c = s.client()
    st = c.sys.start_rekey(secret_shares=3, secret_threshold=2, require_verification=True)
    for k in s.keys[:2]:
        res = c.sys.rekey(k, nonce=st["nonce"])
    vnonce = res["verification_nonce"]
    # two of the OLD keys are not the new ones: verification fails, nothing changes
    c.sys.rekey_verify(s.keys[0], vnonce)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        c.sys.rekey_verify(s.keys[1], vnonce)
    v = s.get("sys/rekey/verify", token=s.root_token).json()
    assert v["nonce"] != vnonce and v["progress"] == 0
    assert s.put("sys/seal", token=s.root_token).status_code == 204
    H.unseal(s, s.keys[:2])  # old keys still valid


def test_generate_root_otp(unsealed):
    s = unsealed
    anon = hvac.Client(url=s.url, verify=s.verify)  # no token: generate-root is unauthenticated
    tok = generate_root(anon, anon, s.keys[:2])
    assert tok.startswith("hvs.") and tok != s.root_token
    look = s.client(tok).auth.token.lookup_self()["data"]
    assert look["policies"] == ["root"]
    # the old root token keeps working
    assert s.client().auth.token.lookup_self()["data"]["policies"] == ["root"]


def test_generate_root_wrong_keys_make_no_token(unsealed):
    s = unsealed
    anon = hvac.Client(url=s.url, verify=s.verify)
    a = anon.sys.start_root_token_generation()
    bogus = base64.b64encode(b"\x01" * 33).decode()
    anon.sys.generate_root(bogus, a["nonce"])
    with pytest.raises(hvac.exceptions.InvalidRequest):
        anon.sys.generate_root(s.keys[0], a["nonce"])
    st = anon.sys.read_root_generation_progress()
    assert st["started"] and st["progress"] == 0


# ---------------------------------------------------------------- attack replays

def test_cve_2026_5807_cancel_needs_nonce(unsealed):
    s = unsealed
    anon = hvac.Client(url=s.url, verify=s.verify)
    a = s.client().sys.start_root_token_generation()
    nonce = a["nonce"]
    # the unauthenticated status does not hand the nonce to a stranger
    st = anon.sys.read_root_generation_progress()
    assert st["started"] and st["nonce"] == ""
    # a stranger cancels: refused, the attempt continues
    r = s.request("DELETE", "sys/generate-root/attempt")
    assert 400 <= r.status_code < 500, r.text
    r = s.request("DELETE", "sys/generate-root/attempt", params={"nonce": "guess"})
    assert 400 <= r.status_code < 500
    with pytest.raises(hvac.exceptions.InvalidRequest):
        anon.sys.cancel_root_generation()
    # ... and cannot start their own (with their own OTP) in its place
    with pytest.raises(hvac.exceptions.InvalidRequest):
        anon.sys.start_root_token_generation(otp="x" * 28)
    assert anon.sys.read_root_generation_progress()["started"]
    res = s.client().sys.generate_root(s.keys[0], nonce)
    assert res["progress"] == 1
    # the operator, who has the nonce, can cancel
    r = s.request("DELETE", "sys/generate-root/attempt", params={"nonce": nonce})
    assert r.status_code == 204
    assert not anon.sys.read_root_generation_progress()["started"]

    # rekey: the same rule, even for a root token
    c = s.client()
    st = c.sys.start_rekey(secret_shares=3, secret_threshold=2)
    r = s.request("DELETE", "sys/rekey/init", token=s.root_token)
    assert r.status_code == 400
    with pytest.raises(hvac.exceptions.InvalidRequest):
        c.sys.cancel_rekey()
    assert c.sys.read_rekey_progress()["started"]
    r = s.request("DELETE", "sys/rekey/init", token=s.root_token, params={"nonce": st["nonce"]})
    assert r.status_code == 204
    assert not c.sys.read_rekey_progress()["started"]


def test_rekey_needs_sudo(unsealed):
    s = unsealed
    root = s.client()
    root.sys.create_or_update_policy("rekey-nosudo", """
path "sys/rekey/*" { capabilities = ["create", "read", "update", "delete"] }
""")
    root.sys.create_or_update_policy("rekey-sudo", """
path "sys/rekey/*" { capabilities = ["create", "read", "update", "delete", "sudo"] }
""")
    nosudo = root.auth.token.create(policies=["rekey-nosudo"])["auth"]["client_token"]
    sudo = root.auth.token.create(policies=["rekey-sudo"])["auth"]["client_token"]
    for method, path, body in (("PUT", "sys/rekey/init", {"secret_shares": 3, "secret_threshold": 2}),
                               ("GET", "sys/rekey/init", None),
                               ("PUT", "sys/rekey/update", {"key": s.keys[0], "nonce": "x"}),
                               ("GET", "sys/rekey/verify", None)):
        for tok in (None, nosudo):
            r = s.request(method, path, token=tok, json=body)
            assert r.status_code == 403, (method, path, tok, r.status_code, r.text)
    assert not root.sys.read_rekey_progress()["started"]
    r = s.request("PUT", "sys/rekey/init", token=sudo,
                  json={"secret_shares": 3, "secret_threshold": 2})
    assert r.status_code == 200 and r.json()["started"], r.text


# ---------------------------------------------------------------- CLI

def cli(s, *args, token=True, input_text=None):
    env = {"VAULT_ADDR": s.url, "HOME": s.workdir}
    if token:
        env["VAULT_TOKEN"] = s.root_token
    return H.run_cli(list(args), env=env, input_text=input_text)


def test_cli_rekey_and_generate_root(unsealed):
    s = unsealed
    r = cli(s, "operator", "rekey", "-init", "-key-shares=4", "-key-threshold=2", "-verify",
            "-format=json")
    assert r.returncode == 0, r.stderr
    st = H.json_or_fail(r.stdout)
    nonce = st["nonce"]
    # -cancel without -nonce is refused locally; with a wrong one by the server
    assert cli(s, "operator", "rekey", "-cancel").returncode == 1
    assert cli(s, "operator", "rekey", "-cancel", "-nonce=wrong").returncode == 2
    r = cli(s, "operator", "rekey", "-nonce=" + nonce, s.keys[0])
    assert r.returncode == 0, r.stderr
    assert "Progress" in r.stdout and "1/2" in r.stdout
    r = cli(s, "operator", "rekey", "-nonce=" + nonce, "-", input_text=s.keys[1] + "\n")
    assert r.returncode == 0, r.stderr
    new = [m.group(1) for m in re.finditer(r"^Key \d+: (\S+)$", r.stdout, re.M)]
    assert len(new) == 4
    assert "Verification Nonce" in r.stdout
    v = H.json_or_fail(cli(s, "operator", "rekey", "-status", "-verify", "-format=json").stdout)
    vnonce = v["nonce"]
    assert cli(s, "operator", "rekey", "-verify", "-nonce=" + vnonce, new[0]).returncode == 0
    r = cli(s, "operator", "rekey", "-verify", "-nonce=" + vnonce, new[3])
    assert r.returncode == 0, r.stderr
    assert "Rekey verification successful" in r.stdout
    st = s.get("sys/seal-status").json()
    assert (st["n"], st["t"]) == (4, 2)

    # generate-root with the new keys, no token at all
    r = cli(s, "operator", "generate-root", "-init", "-format=json", token=False)
    assert r.returncode == 0, r.stderr
    a = H.json_or_fail(r.stdout)
    otp, gnonce = a["otp"], a["nonce"]
    assert cli(s, "operator", "generate-root", "-cancel", token=False).returncode == 1
    for k in new[1:3]:
        r = cli(s, "operator", "generate-root", "-nonce=" + gnonce, k, token=False)
        assert r.returncode == 0, r.stderr
    enc = [line.split()[-1] for line in r.stdout.splitlines() if line.startswith("Encoded Token")]
    assert enc, r.stdout
    r = cli(s, "operator", "generate-root", "-decode=" + enc[0], "-otp=" + otp, token=False)
    assert r.returncode == 0, r.stderr
    tok = r.stdout.strip()
    assert s.client(tok).auth.token.lookup_self()["data"]["policies"] == ["root"]
    r = cli(s, "operator", "generate-root", "-generate-otp", token=False)
    assert r.returncode == 0 and len(r.stdout.strip()) == 28


# ---------------------------------------------------------------- 3-node cluster

def test_cluster_rekey_and_generate_root_through_standbys(cluster_factory):
    c = cluster_factory(3)
    leader = c.leader()
    sb = [n for n in c.nodes if n is not leader]
    assert len(sb) == 2
    old = list(c.keys)
    # The whole rekey through a standby: it forwards to the active node, where the
    # attempt lives.
    new = rekey(sb[0].client(c.root_token), old[:2], shares=5, threshold=3, verify=True)
    # Status read through the other standby agrees (forwarded too).
    assert sb[1].client(c.root_token).sys.read_rekey_progress()["started"] is False
    c.wait_converged()
    for n in c.nodes:
        st = c.seal_status(n)
        assert (st["n"], st["t"]) == (5, 3), (n.name, st)
    c.keys, c.threshold = new, 3

    # generate-root started on one standby, fed through the other
    anon0 = hvac.Client(url=sb[0].url, verify=sb[0].verify)
    anon1 = hvac.Client(url=sb[1].url, verify=sb[1].verify)
    tok = generate_root(anon0, anon1, new[1:4])
    assert leader.client(tok).auth.token.lookup_self()["data"]["policies"] == ["root"]

    # A node that joins now is told the new config and answers with the new shares.
    first = list(c.nodes)
    n4 = H.Server(os.path.join(c.workdir, "n4"), name="n4", tls=c.tls,
                  retry_join=lambda: first)
    c.nodes.append(n4)
    n4.start()
    st = c.unseal_node(n4)
    assert (st["n"], st["t"]) == (5, 3)
    c.wait_voters(4)

    # Every node, restarted, refuses the old shares and unseals with the new ones only.
    for n in sb + [leader]:
        n.stop()
        n.start()
        st = c.seal_status(n)
        assert st["sealed"] and (st["n"], st["t"]) == (5, 3), (n.name, st)
        assert unseal_fails_with(n, old), n.name
        c.unseal_node(n)
    c.leader()
    c.wait_voters(4)


def test_listener_option_restores_unauthenticated_rekey(server_factory):
    s = server_factory(extra_listener="disable_unauthed_rekey_endpoints = false")
    H.init_and_unseal(s)
    anon = hvac.Client(url=s.url, verify=s.verify)
    st = anon.sys.start_rekey(secret_shares=2, secret_threshold=2)
    nonce = st["nonce"]
    assert nonce
    # the unauthenticated status does not show the nonce, and cancelling still needs it
    assert anon.sys.read_rekey_progress()["nonce"] == ""
    with pytest.raises(hvac.exceptions.InvalidRequest):
        anon.sys.cancel_rekey()
    for k in s.keys[:2]:
        res = anon.sys.rekey(k, nonce=nonce)
    assert res["complete"] and len(res["keys"]) == 2
    assert s.put("sys/seal", token=s.root_token).status_code == 204
    H.unseal(s, res["keys_base64"])


# ---------------------------------------------------------------- PGP (GPGME)


@pytest.fixture
def gpg(tmp_path):
    """A throw-away GnuPG home with helpers to make keys and decrypt messages."""
    if not shutil.which("gpg"):
        pytest.skip("gpg is not installed (scripts/install-deps.sh installs gnupg)")
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    env = dict(os.environ, GNUPGHOME=str(home))

    def run(*args, data=None):
        r = subprocess.run(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
                           + list(args), env=env, input=data, capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        return r.stdout

    class G:
        def make_key(self, name):
            run("--quick-gen-key", "%s <%s@custos.test>" % (name, name), "future-default",
                "default", "never")
            pub = run("--export", "%s@custos.test" % name)
            fpr = [line.split(b":")[9].decode() for line in run(
                "--with-colons", "--fingerprint", "%s@custos.test" % name).splitlines()
                if line.startswith(b"fpr:")][0]
            return base64.b64encode(pub).decode(), fpr.lower()

        def decrypt_b64(self, b64):
            return run("--decrypt", data=base64.b64decode(b64)).decode()

    yield G()
    subprocess.run(["gpgconf", "--kill", "all"], env=env, capture_output=True, timeout=30)


def test_pgp_init_rekey_backup_and_generate_root(server_factory, gpg):
    s = server_factory()
    k1, f1 = gpg.make_key("op1")
    k2, f2 = gpg.make_key("op2")
    kr, fr = gpg.make_key("rootop")
    # refused clearly: keybase, garbage, wrong count -- and nothing is initialised
    for bad in (["keybase:someone", k2], ["bm90IGEga2V5", k2], [k1]):
        r = s.put("sys/init", json={"secret_shares": 2, "secret_threshold": 2, "pgp_keys": bad})
        assert r.status_code == 400, r.text
    assert s.get("sys/init").json()["initialized"] is False
    r = s.put("sys/init", json={"secret_shares": 2, "secret_threshold": 2, "pgp_keys": [k1, k2],
                                "root_token_pgp_key": kr})
    assert r.status_code == 200, r.text
    body = r.json()
    shares = [gpg.decrypt_b64(b) for b in body["keys_base64"]]
    assert all(len(x) == 66 for x in shares)  # hex of a 33-byte share
    root = gpg.decrypt_b64(body["root_token"])
    assert root.startswith("hvs.")
    s.root_token = root
    H.unseal(s, shares)
    H.wait_active(s)
    c = s.client(root)

    # rekey to PGP-encrypted shares with a backup
    st = c.sys.start_rekey(secret_shares=2, secret_threshold=2, pgp_keys=[k2, k1], backup=True)
    assert st["pgp_fingerprints"] == [f2, f1] and st["backup"] is True
    for k in shares:
        res = c.sys.rekey(k, nonce=st["nonce"])
    assert res["complete"] and res["pgp_fingerprints"] == [f2, f1]
    new = [gpg.decrypt_b64(b) for b in res["keys_base64"]]
    b = c.sys.read_backup_keys()["data"]
    assert b["nonce"] == st["nonce"] and set(b["keys"]) == {f1, f2}
    assert b["keys"][f2] == [res["keys"][0]]
    r = s.request("DELETE", "sys/rekey/backup", token=root)
    assert r.status_code in (200, 204)
    assert s.get("sys/rekey/backup", token=root).status_code == 400

    # generate-root to a PGP key
    a = s.put("sys/generate-root/attempt", json={"pgp_key": kr}).json()
    assert a["pgp_fingerprint"] == fr
    for k in new:
        res = s.put("sys/generate-root/update", json={"key": k, "nonce": a["nonce"]}).json()
    assert res["complete"] and res["pgp_fingerprint"] == fr
    tok = gpg.decrypt_b64(res["encoded_token"])
    assert s.client(tok).auth.token.lookup_self()["data"]["policies"] == ["root"]

    assert s.put("sys/seal", token=root).status_code == 204
    assert unseal_fails_with(s, shares)
    H.unseal(s, new)


def test_cli_pgp_rekey_and_generate_root(unsealed, gpg, tmp_path):
    s = unsealed
    (k1, f1), (k2, f2) = gpg.make_key("cli1"), gpg.make_key("cli2")
    p1, p2 = tmp_path / "k1.bin", tmp_path / "k2.asc"
    p1.write_bytes(base64.b64decode(k1))  # binary key file
    p2.write_text(k2 + "\n")               # base64 key file
    r = cli(s, "operator", "rekey", "-init", "-key-shares=2", "-key-threshold=2",
            "-pgp-keys=%s,%s" % (p1, p2), "-backup")
    assert r.returncode == 0, r.stderr
    assert f1 in r.stdout and f2 in r.stdout
    nonce = re.search(r"^Nonce\s+(\S+)", r.stdout, re.M).group(1)
    for k in s.keys[:2]:
        r = cli(s, "operator", "rekey", "-nonce=" + nonce, k)
        assert r.returncode == 0, r.stderr
    got = re.findall(r"^Key \d+ fingerprint: (\w+); value: (\S+)$", r.stdout, re.M)
    assert [g[0] for g in got] == [f1, f2]
    new = [gpg.decrypt_b64(v) for _, v in got]
    r = cli(s, "operator", "rekey", "-backup-retrieve", "-format=json")
    assert r.returncode == 0, r.stderr
    assert set(H.json_or_fail(r.stdout)["data"]["keys"]) == {f1, f2}
    assert cli(s, "operator", "rekey", "-backup-delete").returncode == 0
    r = cli(s, "operator", "generate-root", "-init", "-pgp-key=%s" % p1, "-format=json",
            token=False)
    assert r.returncode == 0, r.stderr
    a = H.json_or_fail(r.stdout)
    assert a["pgp_fingerprint"] == f1 and a["otp"] == ""
    for k in new:
        r = cli(s, "operator", "generate-root", "-format=json", "-nonce=" + a["nonce"], k,
                token=False)
        assert r.returncode == 0, r.stderr
    tok = gpg.decrypt_b64(H.json_or_fail(r.stdout)["encoded_token"])
    assert s.client(tok).auth.token.lookup_self()["data"]["policies"] == ["root"]
    # keybase: is refused by the server, clearly
    r = cli(s, "operator", "generate-root", "-init", "-pgp-key=keybase:someone", token=False)
    assert r.returncode == 2 and "keybase" in r.stderr


def test_cli_init_with_pgp_keys(server_factory, gpg, tmp_path):
    s = server_factory()
    (k1, f1), (k2, f2) = gpg.make_key("init1"), gpg.make_key("init2")
    p1, p2 = tmp_path / "i1.bin", tmp_path / "i2.b64"
    p1.write_bytes(base64.b64decode(k1))
    p2.write_text(k2)
    r = H.run_cli(["operator", "init", "-key-shares=2", "-key-threshold=2",
                   "-pgp-keys=%s,%s" % (p1, p2), "-root-token-pgp-key=%s" % p2, "-format=json"],
                  env={"VAULT_ADDR": s.url, "HOME": s.workdir})
    assert r.returncode == 0, r.stderr
    out = H.json_or_fail(r.stdout)
    shares = [gpg.decrypt_b64(b) for b in out["unseal_keys_b64"]]
    root = gpg.decrypt_b64(out["root_token"])
    H.unseal(s, shares)
    H.wait_active(s)
    assert s.client(root).auth.token.lookup_self()["data"]["policies"] == ["root"]


def test_300_bogus_unseal_keys_stay_in_bounds(server):
    """Issue 9 item 1.6 against a real process (run it with the ASan build): distinct
    bogus shares never push the progress past the threshold, and the node still unseals
    with its real keys afterwards."""
    H.init(server, shares=5, threshold=3)
    failures = 0
    for i in range(300):
        key = base64.b64encode(os.urandom(32) + bytes([i % 255 + 1])).decode()
        r = server.put("sys/unseal", json={"key": key})
        if r.status_code == 400:
            failures += 1
            continue
        assert r.status_code == 200, r.text
        st = r.json()
        assert st["sealed"] and 0 < st["progress"] < st["t"] == 3, st
    assert failures == 100
    assert server.running()
    H.unseal(server, server.keys[:3])
