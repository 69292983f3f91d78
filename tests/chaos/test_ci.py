"""The fault campaign in CI: the outbound-bind property it relies on, then the short
fixed-seed campaign (tests/chaos/run.py --ci). Real custos processes on 127.0.0.11.."""

import os
import re
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import chaos_cluster as C  # noqa: E402
import run  # noqa: E402

H = C.H

needs_bin = pytest.mark.skipif(not os.access(H.BIN, os.X_OK),
                               reason="custos binary not built (set CUSTOS_BIN)")
needs_haproxy = pytest.mark.skipif(not H.haproxy_bin(), reason="haproxy is not installed")


def _established():
    """[(local ip, local port, peer ip, peer port, pid)] of custos' TCP connections."""
    out = subprocess.run(["ss", "-tnpH", "state", "established"], stdout=subprocess.PIPE,
                         text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        m = re.search(r"(\d+\.\d+\.\d+\.\d+):(\d+)\s+(\d+\.\d+\.\d+\.\d+):(\d+).*pid=(\d+)",
                      line)
        if m:
            rows.append((m.group(1), int(m.group(2)), m.group(3), int(m.group(4)),
                         int(m.group(5))))
    return rows


@needs_bin
def test_outbound_cluster_connections_leave_from_the_node_address(tmp_path):
    """Every raft/forwarding connection one node opens to another's cluster port comes
    from the opener's own cluster address (not 127.0.0.1): the packet filter of the
    campaign relies on it to cut one link."""
    c = C.ChaosCluster(tmp_path / "c", n=3, haproxy=False, base=51)
    try:
        c.start()
        c.wait_converged(timeout=30)
        by_pid = {n.pid: n for n in c.nodes}
        cluster_port = {(n.ip, n.port + 1): n for n in c.nodes}
        seen = []
        for lip, lport, pip, pport, pid in _established():
            src, dst = by_pid.get(pid), cluster_port.get((pip, pport))
            if src is None or dst is None or src is dst:
                continue
            seen.append((src.name, dst.name, lip))
            assert lip == src.ip, "%s -> %s left from %s, not %s" % (src.name, dst.name,
                                                                     lip, src.ip)
        # The leader replicates to both followers at least.
        assert len(seen) >= 2, seen
    finally:
        c.cleanup()


@needs_bin
@needs_haproxy
def test_campaign_ci_mode(tmp_path):
    """3 rounds on a 3-node cluster behind haproxy, seed 20261207: kill -9, SIGSTOP,
    partitions (when iptables works here); every checker must pass."""
    rc = run.main(["--ci", "--quiet", "--base-octet", "31",
                   "--results", str(tmp_path / "results")])
    assert rc == 0, open(tmp_path / "results" / "summary.json").read()
