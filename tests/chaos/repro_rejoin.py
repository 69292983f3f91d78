#!/usr/bin/python3
"""Reproduction of finding 3 (tests/chaos/results/FINDINGS.md): a standby removed with
remove-peer, wiped and started again under the same node_id is accepted by the leader,
then stops while catching up ("this node was removed from the raft cluster") and never
becomes a voter again. Intermittent: each attempt uses a fresh 3-node cluster; the script
stops at the first attempt that shows it and exits 1 (0 if none of N attempts did).

  CUSTOS_BIN=build/custos tests/chaos/repro_rejoin.py [ATTEMPTS]
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import chaos_cluster as C  # noqa: E402


def attempt(work):
    c = C.ChaosCluster(work, n=3, haproxy=False, base=44)
    try:
        c.start()
        leader = c.leader()
        n = next(m for m in c.nodes if m is not leader)
        r = leader.request("POST", "sys/storage/raft/remove-peer", token=c.root_token,
                           json={"server_id": n.node_id})
        assert r.status_code in (200, 204), r.text
        n.stop()
        for e in os.listdir(n.data_dir):
            subprocess.run(["rm", "-rf", os.path.join(n.data_dir, e)], check=True)
        n.start()
        c.unseal_node(n)
        try:
            c.wait_voters(3, timeout=30)
            return None
        except AssertionError as e:
            removed = "this node was removed" in n.log_text(since_start=True)
            return "%s\n%s: log says removed: %s" % (e, n.name, removed)
    finally:
        c.cleanup()


def main():
    attempts = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    for i in range(attempts):
        with tempfile.TemporaryDirectory(prefix="custos-rejoin-") as work:
            res = attempt(work)
        if res:
            print("attempt %d: reproduced:\n%s" % (i + 1, res))
            return 1
        print("attempt %d: the node joined again" % (i + 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
