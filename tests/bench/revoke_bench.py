"""Driver of revoke_bench.sh (see there): builds a token tree of TREE tokens, measures KV
read latency idle, revokes the tree and measures the time to the ack, the time until its
storage is clean, and KV read latency meanwhile; then the same for sys/leases/revoke-prefix
over PREFIX_N leases. Prints result lines; never asserts timings.

Env: ADDR TOKEN (from lib.sh), TREE=100000, FANOUT=100, PREFIX_N=20000, READERS=4.
"""

import concurrent.futures as cf
import os
import random
import sys
import threading
import time

import requests
import urllib3

# The bench's self-signed certificate lacks what Python's strict verification wants;
# the connection is to 127.0.0.1 and only timings are taken.
urllib3.disable_warnings()

ADDR, ROOT = os.environ["ADDR"], os.environ["TOKEN"]
TREE = int(os.environ.get("TREE", "100000"))
FANOUT = int(os.environ.get("FANOUT", "100"))
PREFIX_N = int(os.environ.get("PREFIX_N", "20000"))
READERS = int(os.environ.get("READERS", "4"))
local = threading.local()


def sess():
    s = getattr(local, "s", None)
    if s is None:
        s = local.s = requests.Session()
        s.verify = False
    return s


def call(method, path, token=ROOT, **kw):
    return sess().request(method, ADDR + "/v1/" + path, headers={"X-Vault-Token": token},
                          timeout=600, verify=False, **kw)


def create(parent, path="auth/token/create", body=None):
    for _ in range(10):
        r = call("POST", path, token=parent, json=body or {})
        if r.status_code == 200:
            return r.json()["auth"]["client_token"]
        time.sleep(0.2)
    raise SystemExit("create failed: %s %s" % (r.status_code, r.text))


def lease_ids(prefix):
    r = call("LIST", "sys/leases/lookup/" + prefix)
    return [prefix + k for k in r.json()["data"]["keys"]] if r.status_code == 200 else []


def lease_exists(lid):
    return call("PUT", "sys/leases/lookup", json={"lease_id": lid}).status_code == 200


class Readers:
    """READERS threads reading one KV secret back to back, latencies kept per phase."""

    def __init__(self, token):
        self.token, self.lat, self.phase, self.stop = token, {}, None, False
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(READERS)]
        for t in self.threads:
            t.start()

    def run(self):
        while not self.stop:
            t0 = time.perf_counter()
            r = call("GET", "kv/bench", token=self.token)
            dt = time.perf_counter() - t0
            if r.status_code != 200:
                raise SystemExit("kv read: %s" % r.status_code)
            ph = self.phase
            if ph:
                self.lat.setdefault(ph, []).append(dt)

    def p(self, phase, q):
        v = sorted(self.lat.get(phase, []))
        return v[min(len(v) - 1, int(q * len(v)))] * 1000 if v else float("nan")

    def line(self, phase):
        n = len(self.lat.get(phase, []))
        return "%-22s n=%-7d p50=%.2fms p99=%.2fms max=%.2fms" % (
            phase, n, self.p(phase, 0.5), self.p(phase, 0.99), self.p(phase, 1.0))


def wait_gone(ids, prefix, keep, poll=0.2):
    """Until every sampled lease record is gone, then until the prefix lists nothing but
    the leases in `keep`."""
    left = list(ids)
    with cf.ThreadPoolExecutor(8) as ex:
        while left:
            left = [i for i, e in zip(left, ex.map(lease_exists, left)) if e]
            if left:
                time.sleep(poll)
    while set(lease_ids(prefix)) - keep:
        time.sleep(poll)


def main():
    call("POST", "sys/mounts/kv", json={"type": "kv"})
    call("PUT", "kv/bench", json={"v": "x" * 64})
    call("PUT", "sys/policies/acl/p", json={
        "policy": 'path "auth/token/create" { capabilities = ["update"] }\n'
                  'path "kv/*" { capabilities = ["read"] }'})
    # an orphan outside both the tree and the revoked prefix
    reader_tok = create(ROOT, body={"policies": ["p"], "ttl": "8h", "no_parent": True})
    out = []

    def note(line):
        out.append(line)
        print(line, file=sys.stderr, flush=True)

    # ---- the tree
    keep = set(lease_ids("auth/token/create/"))
    per = max(1, (TREE - 1 - FANOUT) // FANOUT)
    t0 = time.time()
    a = create(ROOT, body={"policies": ["p"], "ttl": "8h"})
    with cf.ThreadPoolExecutor(16) as ex:
        kids = list(ex.map(lambda _: create(a), range(FANOUT)))
        leaves = list(ex.map(create, [k for k in kids for _ in range(per)]))
    n = 1 + len(kids) + len(leaves)
    note("tree: %d tokens (1 + %d + %d x %d) created in %.1fs" % (
        n, FANOUT, FANOUT, per, time.time() - t0))
    note("tree: revoking")
    ids = lease_ids("auth/token/create/")
    probe = random.Random(1).sample(ids, min(100, len(ids)))

    rd = Readers(reader_tok)
    rd.phase = "idle"
    time.sleep(10)
    rd.phase = None
    t_req = time.perf_counter()
    rd.phase = "during tree cleanup"
    r = call("PUT", "auth/token/revoke", json={"token": a})
    t_ack = time.perf_counter()
    assert r.status_code == 204, r.text
    # checked while the cleanup runs (the probes below must not wait for these)
    pool = cf.ThreadPoolExecutor(4)
    dead_f = pool.map(lambda t: call("GET", "auth/token/lookup-self", token=t).status_code,
                      random.Random(2).sample(leaves, min(200, len(leaves))))
    wait_gone(probe, "auth/token/create/", keep)
    t_clean = time.perf_counter()
    dead = sum(1 for c in dead_f if c == 403)
    pool.shutdown()
    rd.phase = None
    acc = len(call("LIST", "auth/token/accessors").json()["data"]["keys"])
    note("tree revoke: ack %.1f ms; storage clean after %.2f s (%.0f tokens/s); "
               "%d/200 sampled leaves 403 right after the ack; accessors left %d" % (
                   (t_ack - t_req) * 1000, t_clean - t_req, n / (t_clean - t_req), dead, acc))
    note(rd.line("idle"))
    note(rd.line("during tree cleanup"))
    note("tree: p99 during / idle = %.2f" % (
        rd.p("during tree cleanup", 0.99) / rd.p("idle", 0.99)))

    # ---- revoke-prefix
    if PREFIX_N:
        t0 = time.time()
        with cf.ThreadPoolExecutor(16) as ex:
            toks = list(ex.map(lambda _: create(ROOT, "auth/token/create-orphan",
                                                {"policies": ["p"]}), range(PREFIX_N)))
        note("prefix: %d token leases created in %.1fs" % (len(toks), time.time() - t0))
        ids = lease_ids("auth/token/create-orphan/")
        probe = random.Random(3).sample(ids, min(100, len(ids)))
        rd.phase = "idle (2)"
        time.sleep(10)
        rd.phase = "during prefix cleanup"
        t_req = time.perf_counter()
        r = call("PUT", "sys/leases/revoke-prefix/auth/token/create-orphan",
                 json={"sync": False})
        t_ack = time.perf_counter()
        assert r.status_code == 202, r.text
        wait_gone(probe, "auth/token/create-orphan/", set())
        t_clean = time.perf_counter()
        rd.phase = None
        note("revoke-prefix (sync=false): ack %.1f ms; leases gone after %.2f s "
                   "(%.0f leases/s)" % ((t_ack - t_req) * 1000, t_clean - t_req,
                                        len(toks) / (t_clean - t_req)))
        note(rd.line("idle (2)"))
        note(rd.line("during prefix cleanup"))
        note("prefix: p99 during / idle = %.2f" % (
            rd.p("during prefix cleanup", 0.99) / rd.p("idle (2)", 0.99)))
    rd.stop = True
    print("\n".join(out))


main()
