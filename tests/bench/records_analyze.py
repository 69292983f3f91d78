#!/usr/bin/env python3
"""records_analyze.py - helpers for records_bench.sh.

  records_analyze.py fill ADDR CACERT TOKEN N          create N service tokens (children of TOKEN)
  records_analyze.py leases ADDR CACERT TOKEN M        issue M PKI certificates with leases
  records_analyze.py pages DATA_DIR                    used pages of the "data" DB (mdb_stat)
  records_analyze.py classes DATA_DIR                  key+value bytes per record class (mdb_dump)

The LMDB environment is the one custos keeps in DATA_DIR (found by its data.mdb). Byte
figures per class are key + value + 10 (LMDB's leaf node header and page pointer); the
page figure is what the B-tree really occupies, fill factor included.
"""
import concurrent.futures
import os
import re
import subprocess
import sys

import requests
import urllib3

urllib3.disable_warnings()


def env_dir(data_dir):
    for root, _, files in os.walk(data_dir):
        if "data.mdb" in files:
            return root
    sys.exit("no data.mdb under " + data_dir)


def fill(addr, cacert, token, n):
    def worker(count):
        s = requests.Session()
        s.verify = False  # lib.sh's self-signed leaf is not a CA for Python's ssl
        s.headers["X-Vault-Token"] = token
        for _ in range(count):
            r = s.post(addr + "/v1/auth/token/create",
                       json={"policies": ["default"], "ttl": "768h"}, timeout=30, verify=False)
            r.raise_for_status()
    threads = 4
    with concurrent.futures.ThreadPoolExecutor(threads) as ex:
        futs = [ex.submit(worker, n // threads + (1 if i < n % threads else 0))
                for i in range(threads)]
        for f in futs:
            f.result()


def leases(addr, cacert, token, m):
    s = requests.Session()
    s.verify = False  # lib.sh's self-signed leaf is not a CA for Python's ssl
    s.headers["X-Vault-Token"] = token
    def call(method, path, body=None):
        r = s.request(method, addr + "/v1/" + path, json=body, timeout=30, verify=False)
        r.raise_for_status()
        return r
    call("POST", "sys/mounts/pki", {"type": "pki", "config": {"max_lease_ttl": "8760h"}})
    call("POST", "pki/root/generate/internal",
         {"common_name": "bench.test", "key_type": "ec", "key_bits": 256, "ttl": "8700h"})
    call("POST", "pki/roles/r", {"allow_any_name": True, "key_type": "ec", "key_bits": 256,
                                 "generate_lease": True, "no_store": True, "ttl": "720h"})

    def worker(count):
        ss = requests.Session()
        ss.verify = False  # lib.sh's self-signed leaf is not a CA for Python's ssl
        ss.headers["X-Vault-Token"] = token
        for i in range(count):
            r = ss.post(addr + "/v1/pki/issue/r", json={"common_name": "h%d.test" % i},
                        timeout=30, verify=False)
            r.raise_for_status()
            if not r.json().get("lease_id"):
                sys.exit("pki issue returned no lease")
    threads = 4
    with concurrent.futures.ThreadPoolExecutor(threads) as ex:
        futs = [ex.submit(worker, m // threads + (1 if i < m % threads else 0))
                for i in range(threads)]
        for f in futs:
            f.result()


def pages(data_dir):
    out = subprocess.run(["mdb_stat", "-e", "-s", "data", env_dir(data_dir)], check=True,
                         capture_output=True, text=True).stdout
    def num(label):
        m = re.search(label + r":\s+(\d+)", out)
        return int(m.group(1)) if m else 0
    psize = num("Page size")
    used = num("Branch pages") + num("Leaf pages") + num("Overflow pages")
    print(used * psize, num("Entries"))


CLASSES = [
    ("token-entry", re.compile(rb"^sys/token/id/")),
    ("token-accessor", re.compile(rb"^sys/token/accessor/")),
    ("token-parent", re.compile(rb"^sys/token/parent/")),
    ("token-lease", re.compile(rb"^sys/expire/id/auth/")),
    ("secret-lease", re.compile(rb"^sys/expire/id/")),
    ("lease-owner", re.compile(rb"^sys/expire/owner/")),
]


def classes(data_dir):
    out = subprocess.run(["mdb_dump", "-s", "data", env_dir(data_dir)], check=True,
                         capture_output=True).stdout.split(b"\n")
    # Header until HEADER=END, then alternating " <hex key>" / " <hex value>" lines.
    i = out.index(b"HEADER=END") + 1
    stats = {}
    while i + 1 < len(out) and out[i].startswith(b" "):
        k = bytes.fromhex(out[i][1:].decode())
        v = bytes.fromhex(out[i + 1][1:].decode())
        i += 2
        name = "other"
        for cname, rx in CLASSES:
            if rx.match(k):
                name = cname
                break
        n, kb, vb = stats.get(name, (0, 0, 0))
        stats[name] = (n + 1, kb + len(k), vb + len(v))
    for name, (n, kb, vb) in sorted(stats.items()):
        print("%s %d %d %d" % (name, n, kb, vb))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "fill":
        fill(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif cmd == "leases":
        leases(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif cmd == "pages":
        pages(sys.argv[2])
    elif cmd == "classes":
        classes(sys.argv[2])
    else:
        sys.exit(__doc__)
