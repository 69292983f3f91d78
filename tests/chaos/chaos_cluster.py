"""Clusters for the fault campaign: every node on its own loopback address (127.0.0.11,
.12, ...), haproxy in front, and a packet filter that can cut each directed link.

Built on tests/e2e/custos_harness.py (the project's own process handling: config
writing, retry_join, init/unseal, haproxy from deploy/haproxy.cfg, PR_SET_PDEATHSIG so
nodes die with us). The nodes bind their outbound cluster connections to their own
cluster address (raft/cluster.c cs_cluster_source_address), so a rule by source and
destination address cuts exactly one direction of one link.
"""

import os
import random
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))

import custos_harness as H  # noqa: E402

BASE_OCTET = 11  # n1 = 127.0.0.11


def node_ip(i, base=BASE_OCTET):
    return "127.0.0.%d" % (base + i - 1)


def _port_free(ip, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((ip, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port_pair_on(ip, rnd):
    """A port P with P and P+1 free on `ip` and on 127.0.0.1 (a wildcard listener
    elsewhere on the machine would clash too); below the ephemeral range."""
    for _ in range(2000):
        p = rnd.randrange(20000, 32000)
        if p in H._handed_out or (p + 1) in H._handed_out:
            continue
        if all(_port_free(a, q) for a in (ip, "127.0.0.1") for q in (p, p + 1)):
            H._handed_out.update((p, p + 1))
            return p
    raise RuntimeError("no free port pair on %s" % ip)


class Node(H.Server):
    """A custos server on its own loopback address. `preload` (libraries) and `env`
    (variables) are put in front of the binary through env(1), which execs: the disk
    shim and libfaketime run inside the server process itself."""

    def __init__(self, workdir, ip, **kw):
        self.ip = ip
        self.preload = []
        self.env = {}
        super().__init__(workdir, **kw)
        self.ctl = os.path.join(self.workdir, "chaosctl")  # the disk shim's control dir
        self.generation = 0  # bumped when the node is removed, wiped and joins again
        os.makedirs(self.ctl, exist_ok=True)
        self.port = free_port_pair_on(ip, random.Random(os.getpid() ^ time.monotonic_ns()))

    @property
    def addr(self):
        return "%s:%d" % (self.ip, self.port)

    @property
    def cluster_addr(self):
        return "%s:%d" % (self.ip, self.port + 1)

    @property
    def node_id(self):
        """The raft server id: the name, or name-gN after the membership fault wiped the
        node and let it join again under a new node_id (it also rejoins under its old
        one, which finding 3 broke)."""
        return self.name if not self.generation else "%s-g%d" % (self.name, self.generation)

    def write_config(self):
        super().write_config()
        with open(self.config_path) as f:
            text = f.read()
        # The base harness writes 127.0.0.1 for the listener and the cluster address.
        text = text.replace("127.0.0.1:", self.ip + ":")
        text = text.replace('node_id = "%s"' % self.name, 'node_id = "%s"' % self.node_id)
        with open(self.config_path, "w") as f:
            f.write(text)

    def argv(self):
        pre = []
        if self.preload or self.env:
            pre = ["env"]
            if self.preload:
                pre.append("LD_PRELOAD=" + ":".join(self.preload))
            pre += ["%s=%s" % kv for kv in sorted(self.env.items())]
        return pre + super().argv()

    def mount_small_disk(self, size_mb):
        """Put the data directory on a tmpfs of its own (root only), so that it can be
        filled. Returns True when mounted."""
        os.makedirs(self.data_dir, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=0700" % size_mb,
                            "tmpfs", self.data_dir], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        self.small_disk = r.returncode == 0
        return self.small_disk

    def unmount_small_disk(self):
        if getattr(self, "small_disk", False):
            subprocess.run(["umount", "-l", self.data_dir], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            self.small_disk = False

    def fill_disk(self, on):
        """Fill the small data disk (leaving nothing), or free it again."""
        path = os.path.join(self.data_dir, "chaos-filler")
        if not on:
            if os.path.exists(path):
                os.unlink(path)
            return
        chunk = b"\0" * (1 << 20)
        with open(path, "wb") as f:
            try:
                while True:
                    f.write(chunk)
                    f.flush()
            except OSError:
                pass
        # Also the last partial block.
        try:
            with open(path, "ab") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
        except OSError:
            pass

    def disk(self, delay_ms=0, eio=False):
        """Set the disk shim's faults for this node (takes effect at once)."""
        d = os.path.join(self.ctl, "delay_ms")
        e = os.path.join(self.ctl, "eio")
        if delay_ms:
            with open(d + ".tmp", "w") as f:
                f.write(str(int(delay_ms)))
            os.replace(d + ".tmp", d)
        elif os.path.exists(d):
            os.unlink(d)
        if eio:
            open(e, "w").close()
        elif os.path.exists(e):
            os.unlink(e)

    def signal(self, sig):
        if self.running():
            os.kill(self.proc.pid, sig)


class ChaosCluster(H.Cluster):
    """H.Cluster with Nodes on 127.0.0.<base>.. instead of 127.0.0.1. Runs that may
    overlap on one machine (a manual campaign, the CI tests) use different bases: the
    packet filter cuts by address."""

    def __init__(self, workdir, n=3, haproxy=True, shares=3, threshold=2,
                 stabilization="1s", base=BASE_OCTET):
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.n = n
        self.shares, self.threshold = shares, threshold
        self.stabilization = stabilization
        self.tls = None
        self.want_haproxy = haproxy
        self.haproxy = None
        self.haproxy_port = None
        self.keys = None
        self.root_token = None
        self.nodes = []
        for i in range(1, n + 1):
            s = Node(os.path.join(self.workdir, "n%d" % i), node_ip(i, base), name="n%d" % i,
                     retry_join=self._peers_fn(i - 1))
            self.nodes.append(s)

    def find_leader(self, timeout=0.0):
        """The single node answering sys/health 200 now (or within timeout), else None."""
        deadline = time.monotonic() + timeout
        while True:
            active = [s for s in self.nodes if self.health(s, timeout=1) == 200]
            if len(active) == 1:
                return active[0]
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.1)

    def paused(self, node):
        return getattr(node, "is_paused", False)

    def health(self, node, timeout=2):
        if self.paused(node):
            return None
        return super().health(node, timeout)


class Net:
    """Directed link cuts with iptables in a chain of our own, jumped to from OUTPUT for
    our node addresses only (other processes on the machine are never touched).

    Loopback packets pass OUTPUT once, so one DROP rule `-s A -d B` cuts A->B. TCP needs
    both directions, so a one-way cut also breaks connections B opens to A (their SYN-ACK
    or ACKs from A... are the B->A direction; A's replies to B are dropped): this is the
    usual meaning of an asymmetric partition for a TCP system."""

    def __init__(self, ips):
        self.ips = list(ips)
        self.chain = "CUSTOS_CHAOS_%d" % os.getpid()
        self.cut = set()  # (src ip, dst ip)
        self.ok = False

    @staticmethod
    def available():
        if os.geteuid() != 0:
            return False, "not root"
        import shutil
        exe = shutil.which("iptables") or ("/usr/sbin/iptables"
                                            if os.access("/usr/sbin/iptables", os.X_OK)
                                            else None)
        if not exe:
            return False, "iptables is not installed (scripts/install-deps.sh)"
        r = subprocess.run([exe, "-S", "OUTPUT"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            return False, "iptables does not work here: %s" % r.stderr.strip()
        return True, exe

    def _ipt(self, *args, check=True):
        r = subprocess.run(["iptables", "-w"] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        if check and r.returncode != 0:
            raise RuntimeError("iptables %s: %s" % (" ".join(args), r.stderr.strip()))
        return r

    def setup(self):
        ok, why = self.available()
        if not ok:
            raise RuntimeError(why)
        # A chain of that name left by a killed run with the same pid: reuse it, empty.
        if self._ipt("-N", self.chain, check=False).returncode != 0:
            self._ipt("-F", self.chain)
        # Only packets between two of our nodes enter the chain.
        for ip in self.ips:
            self._ipt("-I", "OUTPUT", "-s", ip, "-j", self.chain)
        self.ok = True

    def teardown(self):
        if not self.ok:
            return
        for ip in self.ips:
            self._ipt("-D", "OUTPUT", "-s", ip, "-j", self.chain, check=False)
        self._ipt("-F", self.chain, check=False)
        self._ipt("-X", self.chain, check=False)
        self.ok = False
        self.cut.clear()

    def drop(self, src, dst):
        if (src, dst) in self.cut:
            return
        self._ipt("-A", self.chain, "-s", src, "-d", dst, "-j", "DROP")
        self.cut.add((src, dst))

    def cut_both(self, a, b):
        self.drop(a, b)
        self.drop(b, a)

    def heal(self):
        if self.ok:
            self._ipt("-F", self.chain)
        self.cut.clear()

    def partition(self, groups):
        """Cut every link between different groups (lists of ips), both ways."""
        for i, g in enumerate(groups):
            for h in groups[i + 1:]:
                for a in g:
                    for b in h:
                        self.cut_both(a, b)


def kill_all(sig=signal.SIGKILL):
    for s in H.SERVERS:
        try:
            if s.running():
                os.kill(s.proc.pid, signal.SIGCONT)
        except OSError:
            pass
    H._kill_all()
