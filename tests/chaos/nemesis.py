"""The nemesis: faults picked with a seeded random generator, each applied, held, then
undone. Every step is logged (with monotonic time) so a round's fault sequence can be
read next to its history and replayed with the same seed."""

import os
import signal
import subprocess
import time

import custos_harness as H

SHIM = None  # path of libchaos_disk.so (set by run.py when built)
WATCHDOG_WAIT_S = 30  # above raft/node.c STALL_ABORT_MS (20 s) on a loaded machine
FAKETIME_LIB = next((p for p in ("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                                 "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1")
                     if os.path.exists(p)), None)

FAULTS = {
    # name: weight
    "kill": 3,
    "pause": 3,
    "partition-one": 2,
    "partition-leader": 3,
    "partition-halves": 2,
    "partition-bridge": 1,
    "partition-oneway": 1,
    "restart": 1,
    "rolling-restart": 1,
    "clock-skew": 1,
    "disk-slow": 1,
    "disk-eio": 1,
    "disk-full": 1,
    "membership": 1,
}


class Nemesis:
    def __init__(self, cluster, net, rnd, log, enabled):
        self.c, self.net, self.rnd, self.log = cluster, net, rnd, log
        self.enabled = [f for f in FAULTS if f in enabled]
        self.counts = {}
        self.injected = set()  # pids we killed or stopped on purpose
        self.crashes = []  # processes that exited without us
        self.events = []
        self.windows = []  # (fault, start ns, end ns, injected ns)
        self.findings = []  # behaviour worth reporting that is not a checker violation
        self.last_leader = None
        self.label = None

    def note(self, what, **kw):
        e = {"time": time.monotonic_ns(), "nemesis": what}
        e.update(kw)
        self.events.append(e)
        self.log(e)

    def pick(self):
        w = [FAULTS[f] for f in self.enabled]
        return self.rnd.choices(self.enabled, weights=w)[0]

    def victim(self, leader_bias=0.6):
        """The active node more often than the others."""
        leader = self.c.find_leader(timeout=2)
        self.last_leader = leader
        up = [n for n in self.c.nodes if n.running()] or list(self.c.nodes)
        if leader is not None and self.rnd.random() < leader_bias:
            return leader
        return self.rnd.choice(up)

    # ---- one fault: apply, hold, undo ---------------------------------------------------
    def run_one(self, fault, hold):
        self.counts[fault] = self.counts.get(fault, 0) + 1
        self.label = fault  # the window's name; "kill (active)" when it hit the active node
        t0 = time.monotonic_ns()
        self.inject_t = None  # when the fault took hold (the killed node reaped, SIGSTOP sent)
        try:
            getattr(self, "f_" + fault.replace("-", "_"))(hold)
        finally:
            self.windows.append((self.label, t0, time.monotonic_ns(), self.inject_t or t0))

    def victim_label(self, fault, n):
        """Client errors are counted apart for faults that hit the active node."""
        if n is not None and n is self.last_leader:
            self.label = fault + " (active)"

    def f_kill(self, hold):
        n = self.victim()
        self.victim_label("kill", n)
        self.injected.add(n.pid)
        self.note("kill -9", node=n.name)
        n.kill9()  # returns once the process is reaped: its sockets are closed
        # Requests sent before this reached the dying node (accepted, then reset).
        self.inject_t = time.monotonic_ns()
        time.sleep(hold)
        self.restart(n)

    def f_pause(self, hold):
        n = self.victim()
        self.victim_label("pause", n)
        self.note("SIGSTOP", node=n.name, seconds=round(hold, 2))
        n.is_paused = True
        self.inject_t = time.monotonic_ns()
        n.signal(signal.SIGSTOP)
        time.sleep(hold)
        n.signal(signal.SIGCONT)
        n.is_paused = False
        self.note("SIGCONT", node=n.name)

    def _partition(self, groups, hold, kind):
        names = [[self.name_of(ip) for ip in g] for g in groups]
        self.note("partition", kind=kind, groups=names)
        self.net.partition(groups)
        time.sleep(hold)
        self.net.heal()
        self.note("heal")

    def name_of(self, ip):
        return next(n.name for n in self.c.nodes if n.ip == ip)

    def f_partition_one(self, hold):
        n = self.rnd.choice(self.c.nodes)
        self._partition([[n.ip], [m.ip for m in self.c.nodes if m is not n]], hold,
                        "isolate-one")

    def f_partition_leader(self, hold):
        n = self.c.find_leader(timeout=2) or self.rnd.choice(self.c.nodes)
        self._partition([[n.ip], [m.ip for m in self.c.nodes if m is not n]], hold,
                        "isolate-leader")

    def f_partition_halves(self, hold):
        ips = [n.ip for n in self.c.nodes]
        self.rnd.shuffle(ips)
        k = len(ips) // 2
        self._partition([ips[:k], ips[k:]], hold, "minority/majority")

    def f_partition_bridge(self, hold):
        # Two sides that only the bridge node sees both of.
        ips = [n.ip for n in self.c.nodes]
        self.rnd.shuffle(ips)
        k = (len(ips) - 1) // 2
        left, bridge, right = ips[:k], ips[k], ips[k + 1:]
        self.note("partition", kind="bridge", left=[self.name_of(i) for i in left],
                  bridge=self.name_of(bridge), right=[self.name_of(i) for i in right])
        self.net.partition([left, right])
        time.sleep(hold)
        self.net.heal()
        self.note("heal")

    def f_partition_oneway(self, hold):
        a, b = self.rnd.sample(self.c.nodes, 2)
        leader = self.c.find_leader(timeout=1)
        if leader is not None and self.rnd.random() < 0.5 and leader is not a:
            b = leader
            if a is b:
                a = self.rnd.choice([n for n in self.c.nodes if n is not b])
        self.note("partition", kind="one-way", drop_from=a.name, drop_to=b.name)
        self.net.drop(a.ip, b.ip)
        time.sleep(hold)
        self.net.heal()
        self.note("heal")

    def f_restart(self, hold):
        n = self.victim(0.5)
        self.note("restart", node=n.name)
        self.stop(n)
        self.restart(n)

    def f_rolling_restart(self, hold):
        self.note("rolling-restart")
        for n in list(self.c.nodes):
            self.stop(n)
            self.restart(n)
            self.c.find_leader(timeout=15)

    def f_clock_skew(self, hold):
        """Restart one node under libfaketime: its clock off by up to a minute and running
        faster or slower; restarted with the true clock at the end of the hold."""
        n = self.victim(0.3)
        off = self.rnd.choice([-1, 1]) * self.rnd.randint(5, 60)
        rate = self.rnd.choice([0.8, 1.0, 1.25])
        spec = "%+ds x%s" % (off, rate)
        self.note("clock-skew", node=n.name, faketime=spec)
        self.stop(n)
        # libfaketime preloaded straight into custos (env execs): the faketime(1)
        # wrapper forks, and a signal to the wrapper would not reach the server.
        n.preload = [p for p in n.preload if p != FAKETIME_LIB] + [FAKETIME_LIB]
        n.env.update({"FAKETIME": spec, "FAKETIME_DONT_RESET": "1"})
        self.restart(n)
        time.sleep(hold)
        self.stop(n)
        self.unskew(n)
        self.restart(n)
        self.note("clock-skew over", node=n.name)

    @staticmethod
    def unskew(n):
        n.preload = [p for p in n.preload if p != FAKETIME_LIB]
        n.env.pop("FAKETIME", None)
        n.env.pop("FAKETIME_DONT_RESET", None)

    def f_disk_slow(self, hold):
        n = self.victim(0.6)
        ms = self.rnd.choice([50, 200, 500])
        self.note("disk-slow", node=n.name, fsync_delay_ms=ms)
        n.disk(delay_ms=ms)
        time.sleep(hold)
        n.disk()
        self.note("disk-slow over", node=n.name)

    def f_disk_eio(self, hold):
        """Every sync and raft log write of one node (the active one more often) fails
        with EIO. The node must stop being active (fail-stop); then it is restarted with
        a healthy disk."""
        n = self.victim(0.7)
        was_active = self.c.health(n, timeout=1) == 200
        self.note("disk-eio", node=n.name, was_active=was_active)
        n.disk(eio=True)
        time.sleep(hold)
        still = n.running() and self.c.health(n, timeout=1) == 200
        wrote = None
        if still:
            # Still claiming to be active: can it still acknowledge a write?
            try:
                r = n.request("PUT", "app/eio-probe", token=self.c.root_token,
                              json={"v": "1"}, timeout=3)
                wrote = r.status_code
            except Exception as e:  # noqa: BLE001
                wrote = type(e).__name__
        self.note("disk-eio result", node=n.name, running=n.running(),
                  still_active=still, probe_write=wrote)
        if still and wrote not in (200, 204):
            # Writes hang instead of failing (a disk write that neither completes nor
            # fails): the core's no-progress watchdog (raft/node.c, 20 s) must stop it.
            t0 = time.monotonic()
            while time.monotonic() - t0 < WATCHDOG_WAIT_S and n.running() and \
                    self.c.health(n, timeout=1) == 200:
                time.sleep(0.5)
            still = n.running() and self.c.health(n, timeout=1) == 200
            self.note("disk-eio watchdog", node=n.name, running=n.running(),
                      still_active=still, waited=round(time.monotonic() - t0, 1))
        if still:
            self.findings.append({"finding": "node still active %.1fs after its disk "
                                  "started failing (EIO)" % hold, "node": n.name,
                                  "probe_write_status": wrote})
        if n.running():
            self.stop(n)
        else:
            self.injected.add(n.pid)  # it stopped itself: the fail-stop we want
            self.note("node stopped itself under EIO", node=n.name, exit=n.proc.returncode)
        n.disk()
        self.restart(n)
        self.note("disk-eio over", node=n.name)

    def f_disk_full(self, hold):
        """The node whose data directory is a small tmpfs: fill it, hold, free it. A node
        that cannot write must not acknowledge anything it did not store; it may stop
        (then it is restarted)."""
        small = [n for n in self.c.nodes if getattr(n, "small_disk", False)]
        if not small:
            self.note("skipped (no small disk mounted)", fault="disk-full")
            return
        n = small[0]
        was_active = self.c.health(n, timeout=1) == 200
        self.note("disk-full", node=n.name, was_active=was_active)
        n.fill_disk(True)
        time.sleep(hold)
        n.fill_disk(False)
        if n.running():
            self.note("disk-full over", node=n.name, running=True,
                      active=self.c.health(n, timeout=1) == 200)
        else:
            self.injected.add(n.pid)  # stopping on ENOSPC is allowed
            self.note("node stopped itself on a full disk", node=n.name,
                      exit=n.proc.returncode)
            self.restart(n)

    def f_membership(self, hold):
        """Remove a voter (a standby: removing the active node is a step-down plus this),
        wipe it, and let it join again (under its old node_id or a new one), unsealed with
        the keys; autopilot promotes it back to voter."""
        leader = self.c.find_leader(timeout=10)
        if leader is None:
            self.note("skipped (no active node)", fault="membership")
            return
        n = self.rnd.choice([m for m in self.c.nodes if m is not leader])
        self.injected.add(n.pid)  # a removed node may stop by itself
        r = leader.request("POST", "sys/storage/raft/remove-peer", token=self.c.root_token,
                           json={"server_id": n.node_id}, timeout=10)
        self.note("remove-peer", node=n.name, status=r.status_code)
        self.stop(n)
        for e in os.listdir(n.data_dir):  # keep the directory: it may be a mount point
            if e != "chaos-filler":
                subprocess.run(["rm", "-rf", os.path.join(n.data_dir, e)])
        # Half the time under its old node_id (finding 3, fixed), else a new one.
        same = self.rnd.random() < 0.5
        if not same:
            n.generation += 1
        self.note("wiped; joins again", node=n.name, node_id=n.node_id, same_id=same)
        time.sleep(hold)
        self.restart(n)  # uninitialised: retry_join fetches a challenge, then unseal
        try:
            self.c.wait_voters(self.c.n, timeout=60)
            # A voter in the configuration is not enough: it must serve (finding 3's
            # node was promoted after it had stopped itself).
            deadline = time.monotonic() + 30
            while self.c.health(n) not in (200, 429) and time.monotonic() < deadline:
                time.sleep(0.2)
            h = self.c.health(n)
            self.note("voter again", node=n.name, health=h)
            if h not in (200, 429):
                self.findings.append({"fault": "membership", "node": n.name,
                                      "finding": "voter again but not serving: health %s" % h})
        except AssertionError as e:
            self.note("not a voter again within 60 s", node=n.name, error=str(e)[:200])

    # ---- helpers ----------------------------------------------------------------------
    def restart(self, n):
        """Start a stopped node and unseal it; errors are recorded, not raised (the
        round's heal step retries)."""
        self.check_crash(n)
        try:
            if not n.running():
                n.start()
            self.c.unseal_node(n, timeout=30)
            self.note("restarted+unsealed", node=n.name)
        except Exception as e:  # noqa: BLE001 - recorded, retried at heal
            self.note("restart failed", node=n.name, error=str(e)[:300])

    def stop(self, n):
        self.injected.add(n.pid)
        n.stop()

    def check_crash(self, n):
        if n.proc is not None and n.proc.poll() is not None and n.pid not in self.injected:
            c = {"node": n.name, "pid": n.pid, "exit": n.proc.returncode,
                 "log_tail": n.log_tail(30)}
            self.crashes.append(c)
            self.injected.add(n.pid)  # reported once
            self.note("CRASH", node=n.name, exit=n.proc.returncode)

    def heal_all(self):
        """End of round: every link back, every paused node resumed, every node running
        with its true clock and a healthy disk, and unsealed."""
        self.net.heal()
        for n in self.c.nodes:
            if getattr(n, "is_paused", False):
                n.signal(signal.SIGCONT)
                n.is_paused = False
        for n in self.c.nodes:
            n.disk()
            if getattr(n, "small_disk", False):
                n.fill_disk(False)
            if FAKETIME_LIB in n.preload:
                self.unskew(n)
                if n.running():
                    self.stop(n)
            if not n.running():
                self.restart(n)
            else:
                self.check_crash(n)
        self.note("healed")


def run_quiet(argv):
    return subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def remove_tree(path):
    if os.path.isdir(path):
        subprocess.run(["rm", "-rf", path])


__all__ = ["Nemesis", "FAULTS", "H"]
