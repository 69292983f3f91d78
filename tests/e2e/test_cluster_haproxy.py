"""A client writing through haproxy while the active node is killed (-9) and restarted
three times: no acknowledged write is lost, nothing appears that was never sent, and the
replicas converge.

The client writes unique keys, each once; when a write fails (connection reset, 5xx while
there is no active node) it retries the SAME key with the SAME value until it is
acknowledged, so a write that was applied but whose answer was lost is harmless. Every
acknowledged key must then be readable with its value, the key set must lie between
"acknowledged" and "ever sent", and every node must report the same digest at the same
applied index."""

import threading
import time

import pytest
import requests

import custos_harness as H

pytestmark = pytest.mark.skipif(not H.haproxy_bin(), reason="haproxy is not installed")

KILLS = 3
RETRY_FOR = 30  # seconds one key may take before the client gives up (a test failure)


class Client(threading.Thread):
    def __init__(self, url, token, verify, tag):
        super().__init__(daemon=True)
        self.url, self.token, self.verify, self.tag = url, token, verify, tag
        self.stop = threading.Event()
        self.sent = set()  # keys sent at least once
        self.acked = {}  # key -> value, acknowledged with 204
        self.retries = 0
        self.error = None

    def write_once(self, w, key, value):
        """Retry one key until it is acknowledged (or RETRY_FOR passes)."""
        deadline = time.monotonic() + RETRY_FOR
        last = None
        while time.monotonic() < deadline:
            self.sent.add(key)
            try:
                r = w.put("kv/" + key, {"v": value})
                if r.status_code == 204:
                    self.acked[key] = value
                    return True
                last = "%s %s" % (r.status_code, r.text[:200])
            except requests.RequestException as e:
                last = repr(e)
                # A connection the dead node held is gone: start a fresh one.
                w.close()
                w.s = H.session(self.verify)
            self.retries += 1
            time.sleep(0.05)
        self.error = "key %s never acknowledged within %ss; last: %s" % (key, RETRY_FOR, last)
        return False

    def run(self):
        w = H.Writer(self.url, self.token, self.verify, timeout=5)
        i = 0
        try:
            while not self.stop.is_set():
                key = "ha-%s-%06d" % (self.tag, i)
                if not self.write_once(w, key, "value-of-" + key):
                    return
                i += 1
                time.sleep(0.005)  # ~150 writes/s: enough keys, a short final check
        finally:
            w.close()


@pytest.mark.timeout_s(360)
def test_acknowledged_writes_survive_active_node_kills(cluster_factory):
    c = cluster_factory(n=3, haproxy=True)
    H.enable_kv(c.leader(), "kv", c.root_token)
    client = Client(c.haproxy_url, c.root_token, c.tls[0] if c.tls else True, H.uid()[:6])
    client.start()
    failovers = []
    try:
        time.sleep(1.0)
        for _ in range(KILLS):
            old = c.leader()
            t0 = time.monotonic()
            c.kill9(old)
            n_before = len(client.acked)  # the old node can acknowledge nothing from here
            c.leader(timeout=20, exclude=[old])
            # Time until a write through haproxy is acknowledged again.
            deadline = time.monotonic() + 20
            while len(client.acked) <= n_before and time.monotonic() < deadline:
                assert client.is_alive(), client.error
                time.sleep(0.01)
            failovers.append(time.monotonic() - t0)
            assert len(client.acked) > n_before, "no write acknowledged 20 s after the kill"
            c.restart(old)
            deadline = time.monotonic() + 15
            while c.health(old) != 429 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert c.health(old) == 429, "%s did not come back as a standby" % old.name
            time.sleep(1.0)
    finally:
        client.stop.set()
        client.join(timeout=RETRY_FOR + 10)
    assert client.error is None, client.error
    print("failover (kill -9 -> write acknowledged through haproxy): %s s; %d writes, "
          "%d retries" % (["%.2f" % f for f in failovers], len(client.acked), client.retries))
    assert len(client.acked) > 100, len(client.acked)

    c.wait_converged(timeout=60)
    leader = c.leader()
    listed = None
    for s in c.nodes:  # standbys forward the LIST, so every node must give the same answer
        r = s.request("LIST", "kv/", token=c.root_token)
        assert r.status_code == 200, (s.name, r.status_code, r.text)
        keys = set(r.json()["data"]["keys"])
        assert listed is None or keys == listed, "%s lists a different key set" % s.name
        listed = keys
    missing = set(client.acked) - listed
    assert not missing, "%d acknowledged keys lost, e.g. %s" % (len(missing), sorted(missing)[:5])
    unexpected = listed - client.sent
    assert not unexpected, "keys nobody wrote: %s" % sorted(unexpected)[:5]
    w = H.Writer(leader.url, c.root_token)
    try:
        for k, v in client.acked.items():
            r = w.get("kv/" + k)
            assert r.status_code == 200 and r.json()["data"] == {"v": v}, (k, r.status_code,
                                                                          r.text)
    finally:
        w.close()
