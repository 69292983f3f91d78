#!/usr/bin/env python3
"""Bytes on disk per KV v2 secret of 256 bytes (issue 16: goal <= 2x the raw size).

    CUSTOS_BIN=build/custos /usr/bin/python3 tests/bench/kv2_record_bench.py [N] [LABEL]

Starts one initialised node (the e2e harness), writes N (default 20000) secrets of
{"value": <244 random characters>} (256 bytes of JSON: the raw size) to a KV v2
mount, stops the node cleanly and reads LMDB's own page counts for the data database
(mdb_stat): bytes per secret = (pages after - pages before) * page size / N, which counts
keys, barrier framing, metadata, B-tree overhead and page slack. Also the logical bytes
(sum of key and value lengths of the mount's records, from mdb_dump). Appends the figures
to tests/bench/results/kv2-records-<UTC time>.txt.
"""

import concurrent.futures as cf
import json
import os
import random
import string
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import custos_harness as H  # noqa: E402


def page_stats(fsm):
    out = subprocess.run(["mdb_stat", "-a", fsm], stdout=subprocess.PIPE, text=True,
                         check=True).stdout
    psize = int(subprocess.run(["mdb_stat", "-e", fsm], stdout=subprocess.PIPE, text=True,
                               check=True).stdout.split("Page size:")[1].split()[0])
    sect = out.split("Status of data")[1].split("Status of")[0]
    pages = sum(int(line.split(":")[1]) for line in sect.splitlines()
                if any(w in line for w in ("Branch pages", "Leaf pages", "Overflow pages")))
    entries = int(sect.split("Entries:")[1].split()[0])
    return pages, psize, entries


def logical_bytes(fsm, prefix):
    out = subprocess.run(["mdb_dump", "-s", "data", fsm], stdout=subprocess.PIPE, text=True,
                         check=True).stdout
    lines = out.split("HEADER=END\n", 1)[1].splitlines()
    total = n = 0
    for i in range(0, len(lines) - 1, 2):
        if lines[i] == "DATA=END":
            break
        k = bytes.fromhex(lines[i].strip())
        if k.startswith(prefix.encode()):
            total += len(k) + len(bytes.fromhex(lines[i + 1].strip()))
            n += 1
    return total, n


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    label = sys.argv[2] if len(sys.argv) > 2 else os.path.basename(os.path.dirname(H.BIN))
    work = tempfile.mkdtemp(prefix="kv2rec-")
    s = H.Server(work, name="b1")
    s.start()
    H.init_and_unseal(s, 1, 1)
    root = s.root_token
    r = s.request("POST", "sys/mounts/kvb", token=root,
                  json={"type": "kv", "options": {"version": "2"}})
    assert r.status_code in (200, 204), r.text
    s.stop()
    fsm = os.path.join(s.data_dir, "fsm")
    p0, psize, e0 = page_stats(fsm)
    s.start()
    H.unseal(s, s.keys[:1])
    H.wait_active(s)
    rnd = random.Random(16)
    values = ["".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(244))
              for _ in range(64)]
    assert len(json.dumps({"value": values[0]}, separators=(",", ":"))) == 256
    t0 = time.time()

    def put(i):
        with s.session() as sess:
            for j in range(i, n, 16):
                rr = sess.post(s.url + "/v1/kvb/data/app/s%07d" % j,
                               headers={"X-Vault-Token": root},
                               json={"data": {"value": values[j % 64]}}, timeout=60)
                assert rr.status_code == 200, rr.text

    with cf.ThreadPoolExecutor(16) as ex:
        list(ex.map(put, range(16)))
    secs = time.time() - t0
    mounts = s.request("GET", "sys/mounts", token=root).json()["data"]
    uuid = mounts["kvb/"]["uuid"]
    time.sleep(2)  # let the periodic run once (it writes its marker)
    s.stop()
    p1, _, e1 = page_stats(fsm)
    lb, lk = logical_bytes(fsm, "logical/%s/" % uuid)
    raw = 256
    per = (p1 - p0) * psize / n
    lines = [
        "kv2 records: %s, %d secrets of %d raw bytes ({\"value\": 244 chars})" % (label, n, raw),
        "  LMDB data db: %d -> %d pages of %d bytes (%d -> %d entries)" % (p0, p1, psize, e0, e1),
        "  on disk per secret: %.0f bytes = %.2fx raw (goal <= 2.00x)" % (per, per / raw),
        "  logical per secret (keys + values of the mount): %.0f bytes in %.2f records"
        % (lb / n, lk / n),
        "  write rate during fill: %.0f/s (16 clients)" % (n / secs),
    ]
    print("\n".join(lines))
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    out = os.path.join(HERE, "results", "kv2-records-%s.txt" % time.strftime("%Y%m%dT%H%M%SZ",
                                                                           time.gmtime()))
    with open(out, "a") as f:
        f.write("\n".join(lines) + "\n")
    s.cleanup()


if __name__ == "__main__":
    main()
