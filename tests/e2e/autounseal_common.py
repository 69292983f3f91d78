"""Shared pieces of the auto-unseal e2e tests: a seal server (another custos with a transit
key, Shamir-sealed itself), the seal stanza that points at it, and polling helpers."""

import base64
import os
import re
import shutil
import subprocess
import time

import requests

import custos_harness as H

SEAL_KEY = "autounseal"
UNSEAL_TIMEOUT = 60

# Vault's transit seal reads VAULT_ADDR, VAULT_TOKEN... over its config: the servers
# started here must not inherit an operator's.
for _v in list(os.environ):
    if _v.startswith("VAULT_") or _v.startswith("BAO_HSM_"):
        os.environ.pop(_v)

SEAL_POLICY = """
path "transit/encrypt/%s" { capabilities = ["update"] }
path "transit/decrypt/%s" { capabilities = ["update"] }
""" % (SEAL_KEY, SEAL_KEY)


class SealServer:
    """A custos with transit mounted and key SEAL_KEY, and a token limited to it."""

    def __init__(self, workdir, tls=None):
        self.server = H.Server(os.path.join(str(workdir), "seal"), name="seal", tls=tls)

    def start(self):
        s = self.server
        s.start()
        H.init_and_unseal(s)
        c = s.client()
        c.sys.enable_secrets_engine("transit", path="transit")
        c.secrets.transit.create_key(name=SEAL_KEY)
        c.sys.create_or_update_policy("autounseal", SEAL_POLICY)
        self.token = c.auth.token.create(policies=["autounseal"], ttl="24h",
                                         renewable=True)["auth"]["client_token"]
        return self

    def stop(self):
        self.server.stop()

    def resume(self):
        """Start again and unseal with its own Shamir keys."""
        s = self.server
        s.start()
        H.unseal(s, s.keys[:2])
        H.wait_active(s)

    def stanza(self, **extra):
        body = ['  address = "%s"' % self.server.url, '  token = "%s"' % self.token,
                '  key_name = "%s"' % SEAL_KEY, '  mount_path = "transit/"']
        body += ['  %s = "%s"' % kv for kv in extra.items()]
        return 'seal "transit" {\n%s\n}\n' % "\n".join(body)


def seal_status(node):
    r = node.get("sys/seal-status", timeout=3)
    assert r.status_code == 200, r.text
    return r.json()


def wait_unsealed(node, timeout=UNSEAL_TIMEOUT):
    deadline = time.monotonic() + timeout
    st = None
    while time.monotonic() < deadline:
        try:
            st = seal_status(node)
            if st.get("initialized") and st.get("sealed") is False:
                return st
        except (requests.RequestException, AssertionError) as e:
            st = e
        if not node.running():
            break
        time.sleep(0.1)
    raise AssertionError("%s not unsealed within %ss (seal-status %s):\n%s"
                         % (node.name, timeout, st, node.log_tail()))


def wait_log(node, pattern, timeout=UNSEAL_TIMEOUT):
    """Wait until the node's log (this start) contains `pattern`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pattern in node.log_text(since_start=True):
            return
        time.sleep(0.1)
    raise AssertionError("%s never logged %r:\n%s" % (node.name, pattern, node.log_tail()))


def init_recovery(node, shares=3, threshold=2):
    r = node.put("sys/init", json={"recovery_shares": shares,
                                   "recovery_threshold": threshold})
    assert r.status_code == 200, "sys/init: %s %s" % (r.status_code, r.text)
    body = r.json()
    node.root_token = body["root_token"]
    node.keys = body["recovery_keys_base64"]
    return body


def generate_root(node, keys):
    """Run generate-root with `keys`; returns the new root token."""
    r = node.put("sys/generate-root/attempt", json={})
    assert r.status_code == 200, r.text
    att = r.json()
    otp, nonce = att["otp"], att["nonce"]
    body = None
    for k in keys:
        r = node.put("sys/generate-root/update", json={"key": k, "nonce": nonce})
        assert r.status_code == 200, r.text
        body = r.json()
    assert body["complete"], body
    enc = body["encoded_token"]
    raw = base64.b64decode(enc + "=" * (-len(enc) % 4))
    return bytes(a ^ b for a, b in zip(raw, otp.encode())).decode()


# ---- SoftHSM2 ----------------------------------------------------------------------------
SOFTHSM_LIB = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "4711-pin"


def softhsm_available():
    return os.path.exists(SOFTHSM_LIB) and shutil.which("softhsm2-util") is not None


def softhsm_token(tmp_path, monkeypatch):
    """A fresh SoftHSM2 token labelled "custos" (PIN), in tmp_path; SOFTHSM2_CONF is set
    for the servers started afterwards. Returns its slot id."""
    d = tmp_path / "softhsm"
    (d / "tokens").mkdir(parents=True)
    conf = d / "softhsm2.conf"
    conf.write_text("directories.tokendir = %s\nobjectstore.backend = file\n"
                    "log.level = ERROR\n" % (d / "tokens"))
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))  # inherited by the servers
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "custos",
                    "--pin", PIN, "--so-pin", "so-" + PIN], check=True,
                   capture_output=True, text=True)
    out = subprocess.run(["softhsm2-util", "--show-slots"], check=True, capture_output=True,
                         text=True).stdout
    # The slot that holds our token: "Slot <id>" ... "Label: custos".
    slot = None
    for block in re.split(r"\n(?=Slot \d+)", out):
        m = re.match(r"Slot (\d+)", block)
        if m and re.search(r"Label:\s+custos\s*$", block, re.M):
            slot = int(m.group(1))
    assert slot is not None, out
    return slot


def pkcs11_stanza(mechanism, pin=PIN, where='token_label = "custos"', key="custos-root",
                  disabled=False):
    return ('seal "pkcs11" {\n  lib = "%s"\n  %s\n  pin = "%s"\n  key_label = "%s"\n'
            '  mechanism = "%s"\n  generate_key = "true"\n%s}\n'
            % (SOFTHSM_LIB, where, pin, key, mechanism,
               '  disabled = "true"\n' if disabled else ""))
