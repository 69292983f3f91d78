"""Snapshot scale benchmark (not in CI): see snapshot_bench.sh for the phases.

Usage: CUSTOS_BIN=... /usr/bin/python3 tests/bench/snapshot_bench.py SIZE_MB WORKDIR OUT
Peak RSS per phase comes from VmHWM after resetting it (echo 5 > /proc/PID/clear_refs).
"""
import concurrent.futures as cf
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
import requests  # noqa: E402

import custos_harness as H  # noqa: E402

VAL = 1 << 20  # bytes per value: few, big entries fill fast


def mem(node):
    out = {}
    with open("/proc/%d/status" % node.pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS", "RssAnon"):
                out[k] = int(v.split()[0]) // 1024
    return out


def reset_peak(nodes):
    for n in nodes:
        with open("/proc/%d/clear_refs" % n.pid, "w") as f:
            f.write("5")


def fill(c, prefix, mb, workers=4):
    leader = c.leader()
    blob = os.urandom(VAL // 2).hex()  # ciphertext does not compress anyway

    lost = [0]

    def put(i):
        s = requests.Session()
        for _ in range(20):
            r = s.put(c.haproxy_url + "/v1/kv/%s%06d" % (prefix, i), json={"v": blob, "i": i},
                      headers={"X-Vault-Token": c.root_token}, timeout=120)
            if r.status_code == 204:
                return
            lost[0] += 1  # leadership changes are counted and reported, then retried
            time.sleep(0.5)
        raise AssertionError(r.text)
    with cf.ThreadPoolExecutor(workers) as ex:
        list(ex.map(put, range(mb)))
    return lost[0]


def dd_rate(workdir):
    path = os.path.join(workdir, "dd.bin")
    p = subprocess.run(["dd", "if=/dev/zero", "of=" + path, "bs=1M", "count=1024",
                        "conv=fdatasync"], capture_output=True, text=True)
    os.unlink(path)
    m = re.search(r"(\d+) bytes .* copied, ([\d.]+) s", p.stderr)
    return int(m.group(1)) / float(m.group(2)) / 1e6, p.stderr.strip().splitlines()[-1]


def main():
    size_mb, workdir, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    lines = []

    def log(s):
        print(s, flush=True)
        lines.append(s)
    log("# custos snapshot benchmark, %s, store ~%d MiB (1 MiB KV values), bin %s"
        % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), size_mb, os.environ["CUSTOS_BIN"]))
    rate, ddline = dd_rate(workdir)
    log("disk sequential write (dd bs=1M count=1024 conv=fdatasync): %.0f MB/s  [%s]" % (rate, ddline))
    c = H.Cluster(os.path.join(workdir, "c"), n=3, haproxy=True)
    try:
        c.start()
        H.enable_kv(c.leader(), "kv", c.root_token)
        reset_peak(c.nodes)
        t0 = time.monotonic()
        lost = fill(c, "k", size_mb)
        dt = time.monotonic() - t0
        log("fill %d MiB: %.1f s (%.1f MB/s), %d writes retried (leader change)"
            % (size_mb, dt, size_mb * VAL / dt / 1e6, lost))
        for n in c.nodes:
            log("  %s after fill (includes taking raft snapshots): %s MiB" % (n.name, mem(n)))
        c.wait_converged(timeout=300)

        # Idea A's producer: a compacted LMDB copy streamed to disk (mdb_copy -c is the
        # same mdb_env_copyfd2(MDB_CP_COMPACT) call cs_store_copy makes) and its SHA-256.
        leader = c.leader()
        cp = os.path.join(workdir, "copy.mdb")
        os.makedirs(cp)
        p = subprocess.run(["/usr/bin/time", "-v", "mdb_copy", "-c",
                            os.path.join(leader.data_dir, "fsm"), cp],
                           capture_output=True, text=True)
        wall = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", p.stderr).group(1)
        rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
        csz = os.path.getsize(os.path.join(cp, "data.mdb"))
        t0 = time.monotonic()
        subprocess.run(["sha256sum", os.path.join(cp, "data.mdb")], capture_output=True)
        log("compacted LMDB copy (mdb_copy -c): %d bytes, wall %s, max RSS %d MiB "
            "(file-backed mmap pages); sha256 of it %.1f s"
            % (csz, wall, rss // 1024, time.monotonic() - t0))
        subprocess.run(["rm", "-rf", cp])

        # A follower catches up by InstallSnapshot: stopped, the log moves past it by
        # rewriting the same keys (the store does not grow), restarted.
        leader = c.leader()
        f = [n for n in c.nodes if n is not leader][0]
        f.stop()
        log("  overwrites retried: %d" % fill(c, "k", 300))  # 300 MiB of overwrites: several snapshots and compactions
        reset_peak([n for n in c.nodes if n is not f])
        t0 = time.monotonic()
        c.restart(f)
        c.wait_converged(timeout=600)
        dt = time.monotonic() - t0
        log("follower restart + catch-up by snapshot: %.1f s" % dt)
        log("  leader %s while sending: %s MiB; follower %s installing: %s MiB"
            % (leader.name, mem(leader), f.name, mem(f)))

        # Save through the load balancer, streamed to a file.
        path = os.path.join(workdir, "save.snap")
        reset_peak(c.nodes)
        t0 = time.monotonic()
        with requests.get(c.haproxy_url + "/v1/sys/storage/raft/snapshot",
                          headers={"X-Vault-Token": c.root_token}, stream=True, timeout=600) as r:
            assert r.status_code == 200, r.text[:300]
            with open(path, "wb") as fo:
                for chunk in r.iter_content(1 << 20):
                    fo.write(chunk)
                fo.flush()
                os.fsync(fo.fileno())
        dt = time.monotonic() - t0
        sz = os.path.getsize(path)
        log("snapshot save through haproxy: %d bytes in %.1f s = %.0f MB/s (%.2fx disk)"
            % (sz, dt, sz / dt / 1e6, sz / dt / 1e6 / rate))
        for n in c.nodes:
            log("  %s during save: %s MiB" % (n.name, mem(n)))

        # Restore it through the load balancer.
        reset_peak(c.nodes)
        t0 = time.monotonic()
        with open(path, "rb") as fi:
            r = requests.post(c.haproxy_url + "/v1/sys/storage/raft/snapshot", data=fi,
                              headers={"X-Vault-Token": c.root_token}, timeout=1800)
        assert r.status_code == 204, r.text[:300]
        dt = time.monotonic() - t0
        log("snapshot restore through haproxy: %.1f s = %.0f MB/s (%.2fx disk)"
            % (dt, sz / dt / 1e6, sz / dt / 1e6 / rate))
        for n in c.nodes:
            log("  %s during restore: %s MiB" % (n.name, mem(n)))
        c.wait_converged(timeout=600)
        leader = c.leader()
        r = leader.get("kv/k%06d" % (size_mb - 1), token=c.root_token, timeout=30)
        assert r.status_code == 200 and r.json()["data"]["i"] == size_mb - 1, r.text[:200]
        log("data checked after restore: ok")
        os.unlink(path)
    finally:
        c.cleanup()
        with open(out, "w") as fo:
            fo.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
