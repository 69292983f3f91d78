#!/usr/bin/python3
"""The custos fault campaign (tests/chaos/README.md).

  tests/chaos/run.py --ci                      short, fixed seed (what scripts/test.sh runs)
  tests/chaos/run.py --minutes 15              long run, random seed (printed)
  tests/chaos/run.py --seed 1234 --rounds 6    replay a seed

Each round: the workloads (register, append, tokens) run through haproxy and directly
against nodes while the nemesis injects 3-6 faults; then everything heals, the replicas
must converge to the same applied index and digest, and the checkers judge the
histories. Everything lands in the results directory; the exit status is 1 when any
check failed (lost write, non-linearizable key, token misuse, digest mismatch, crash).
"""

import argparse
import json
import os
import random
import copy
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import chaos_cluster as C  # noqa: E402
import checkers as K  # noqa: E402
import nemesis as N  # noqa: E402
import workloads as W  # noqa: E402

H = C.H

PARTITIONS = [f for f in N.FAULTS if f.startswith("partition")]


def say(*a):
    print("chaos:", *a, flush=True)


def build_shim(builddir):
    """The LD_PRELOAD disk-fault shim, built by meson as a test-only library."""
    for p in (os.path.join(builddir, "tests", "chaos", "libchaos_disk.so"),):
        if os.path.exists(p):
            return p
    return None


def enable_mounts(c):
    leader = c.leader()
    t = c.root_token
    for path, typ, opts in (("reg", "kv", {"version": "2"}), ("app", "kv", {"version": "1"}),
                            ("transit", "transit", {}), ("pki", "pki", {})):
        r = leader.request("POST", "sys/mounts/" + path, token=t,
                           json={"type": typ, "options": opts})
        assert r.status_code in (200, 204), (path, r.status_code, r.text)
    for path, body in (("pki/root/generate/internal", {"common_name": "chaos root",
                                                       "key_type": "ec", "ttl": "87600h"}),
                       ("pki/roles/chaos", {"allow_any_name": True, "key_type": "ec",
                                            "max_ttl": "24h"})):
        r = leader.request("POST", path, token=t, json=body, timeout=30)
        assert r.status_code in (200, 204), (path, r.status_code, r.text)


def final_transit(c, key, issued):
    """(latest_version, {ciphertext: plaintext or {"error"}}) from the active node."""
    leader = c.find_leader(timeout=30)
    s = H.session()
    st, js, err = W.http(s, "GET", leader.url + "/v1/transit/keys/" + key, c.root_token)
    assert err is None and st == 200, ("transit key read", st, err)
    out = {}
    for ct in list(issued):
        st, js2, err = W.http(s, "POST", leader.url + "/v1/transit/decrypt/" + key,
                              c.root_token, {"ciphertext": ct})
        if err is None and st == 200:
            out[ct] = js2["data"]["plaintext"]
        elif err is None and st == 400:
            out[ct] = {"error": str(js2)[:120]}
    s.close()
    return js["data"]["latest_version"], out


def crl_serials(c):
    """{node: set of serial numbers (ints) in its CRL}."""
    from cryptography import x509
    out = {}
    s = H.session()
    for n in c.nodes:
        r = s.get(n.url + "/v1/pki/crl/pem", timeout=20)
        assert r.status_code == 200, (n.name, r.status_code, r.text[:200])
        crl = x509.load_pem_x509_crl(r.content)
        out[n.name] = {e.serial_number for e in crl}
    s.close()
    return out


def final_expired_uses(c, tokens):
    """Every short-lived token on every node, once its TTL has surely passed."""
    if tokens:
        last = max(t for _, t in tokens.values())
        time.sleep(max(0.0, last + W.EXPIRY_TTL_S + 1.5 - time.monotonic()))
    return final_token_uses(c, {acc: sec for acc, (sec, _) in tokens.items()})


def final_register_reads(c, rec, keys):
    leader = c.find_leader(timeout=30)
    s = H.session()
    for k in keys:
        pid = W.new_pid()
        rec.add(process=pid, type="invoke", f="read", key=k, value=None, node="final")
        st, js, err = W.http(s, "GET", leader.url + "/v1/reg/data/" + k, c.root_token)
        if err is None and st == 404:
            rec.add(process=pid, type="ok", f="read", key=k, value=[0, None])
        elif err is None and st == 200:
            d = js["data"]
            rec.add(process=pid, type="ok", f="read", key=k,
                    value=[d["metadata"]["version"], (d.get("data") or {}).get("v")])
        else:
            rec.add(process=pid, type="fail", f="read", key=k, value=None)
    s.close()


def list_append(c, prefix):
    out = {}
    for n in c.nodes:
        r = n.request("LIST", "app/%s/" % prefix, token=c.root_token, timeout=20)
        if r.status_code == 404:
            out[n.name] = set()
        else:
            assert r.status_code == 200, (n.name, r.status_code, r.text[:200])
            out[n.name] = set(r.json()["data"]["keys"])
    return out


def final_token_uses(c, tokens):
    out = {}
    s = H.session()
    for acc, secret in tokens.items():
        per = {}
        for n in c.nodes:
            st, _, err = W.http(s, "GET", n.url + "/v1/auth/token/lookup-self", secret)
            if err is None and st in (200, 403):
                per[n.name] = st == 200
        out[acc] = per
    s.close()
    return out


def shrink_ops(plan, kinds, attempt, max_attempts):
    """Drop the operations of `plan` one at a time, last first, keeping each removal
    after which attempt(k, ops) -> problems still reports a problem of one of `kinds`.
    At most max_attempts attempts. Returns (smallest plan found, [attempt records])."""
    current, attempts = list(plan), []
    i = len(current) - 1
    while i >= 0 and len(attempts) < max_attempts:
        cand = current[:i] + current[i + 1:]
        got = attempt(len(attempts) + 1, cand)
        same = bool(problem_kinds(got) & kinds)
        attempts.append({"attempt": len(attempts) + 1, "ops": cand, "reproduced": same,
                         "problems": list(got)[:5]})
        if same:
            current = cand
        i -= 1
    return current, attempts


def problem_kinds(problems):
    """The kind of each problem of a round ("register", "append", "tokens", "transit",
    "pki", "expiry", "digest", "not converged", "crashes", ...)."""
    out = set()
    for p in problems:
        head = p.split(":")[0]
        out.add("not converged" if head.startswith("not converged") else head.split()[0])
    return out


def errors_during_faults(windows, events):
    """Requests through haproxy that did not succeed, by the fault active at invoke.
    "in_flight" counts those among them invoked before the fault itself began (a write
    on its way to a node that is then killed or paused: its outcome is unknown to
    anyone, so no proxy or standby can answer it truthfully); "errors" counts the rest,
    the requests that arrived while the fault was on."""
    out = {}
    pending = {}
    for e in events:
        if e["type"] == "invoke":
            pending[e["process"]] = e
            continue
        inv = pending.pop(e["process"], None)
        if inv is None or inv.get("node") != "haproxy":
            continue
        for fault, t0, t1, ti in windows:
            if t0 <= inv["time"] <= t1:
                d = out.setdefault(fault, {"requests": 0, "errors": 0, "in_flight": 0})
                d["requests"] += 1
                if e["type"] != "ok":
                    d["in_flight" if inv["time"] < ti else "errors"] += 1
                break
    return out


def summary_md(t, a):
    """The committed form of a run's summary."""
    rows = [("rounds", t["rounds"]), ("operations", t["operations"]),
            ("acknowledged writes (write, cas, append, token create/revoke, rotate, issue)",
             t["acknowledged_writes"]),
            ("register reads checked", t["reads_checked"]),
            ("register keys checked", t["keys_checked"]),
            ("tokens checked", t["tokens_checked"]),
            ("lost acknowledged writes", t["lost_writes"]),
            ("linearizability violations (keys)", t["linearizability_violations"]),
            ("keys the search could not decide", t["unknown_keys"]),
            ("token violations", t["token_violations"]),
            ("transit: acknowledged rotates / ciphertexts checked",
             "%d / %d" % (t["transit_rotates"], t["transit_ciphertexts"])),
            ("transit violations (lost rotate, version, decrypt)", t["transit_violations"]),
            ("PKI: certificates issued / revocations acknowledged",
             "%d / %d" % (t["pki_issued"], t["pki_revoked"])),
            ("PKI violations (duplicate serial, revocation missing from a CRL)",
             t["pki_violations"]),
            ("short-lived tokens checked after expiry", t["expiry_tokens"]),
            ("expired-token violations", t["expiry_violations"]),
            ("digest mismatches", t["digest_mismatches"]),
            ("rounds that did not converge", t["not_converged"]),
            ("crashes other than injected", t["crashes"])]
    out = ["# Campaign run, seed %d" % t["seed"], "",
           "`tests/chaos/run.py --seed %d %s`" % (t["seed"], a.replay_hint), "",
           "| | |", "|---|---|"]
    out += ["| %s | %s |" % r for r in rows]
    out += ["", "Faults injected: " + ", ".join("%s %d" % kv for kv in
                                                sorted(t["faults"].items())), "",
            "Requests through haproxy while a fault was active: errors among requests that "
            "arrived during the fault / requests (and, apart, requests already in flight "
            "when the node was killed or paused that failed: unknown outcomes nobody can "
            "answer; \"(active)\": the fault hit the active node):", ""]
    for f, d in sorted(t["haproxy_errors_by_fault"].items()):
        out.append("- %s: %d / %d (in flight: %d)" % (f, d["errors"], d["requests"],
                                                      d.get("in_flight", 0)))
    if t["failures"]:
        out += ["", "Failed rounds:", ""]
        for x in t["failures"]:
            out.append("- round %d (%d nodes): %s" % (x["round"], x["nodes"],
                                                      "; ".join(x["problems"])[:500]))
    if t["findings"]:
        out += ["", "Findings (not checker violations):", ""]
        for x in t["findings"]:
            out.append("- round %s (%s nodes) %s: %s" % (x.get("round"), x.get("nodes"),
                                                         x.get("node"), x["finding"]))
    return "\n".join(out) + "\n"


class Campaign:
    def __init__(self, args):
        self.a = args
        self.seed = args.seed
        self.results = args.results
        os.makedirs(self.results, exist_ok=True)
        self.totals = {"rounds": 0, "operations": 0, "faults": {}, "acknowledged_writes": 0,
                       "reads_checked": 0, "keys_checked": 0, "lost_writes": 0,
                       "linearizability_violations": 0, "unknown_keys": 0,
                       "token_violations": 0, "digest_mismatches": 0,
                       "not_converged": 0, "crashes": 0, "tokens_checked": 0,
                       "transit_rotates": 0, "transit_ciphertexts": 0,
                       "transit_violations": 0, "pki_issued": 0, "pki_revoked": 0,
                       "pki_violations": 0, "expiry_tokens": 0, "expiry_violations": 0,
                       "haproxy_errors_by_fault": {}}
        self.failures = []
        self.findings = []
        self.deadline = (time.monotonic() + args.minutes * 60) if args.minutes else None

    def log_to(self, path):
        f = open(path, "a")

        def log(e):
            f.write(json.dumps(e, sort_keys=True) + "\n")
            f.flush()
            if not self.a.quiet:
                say("  nemesis:", {k: v for k, v in e.items() if k != "time"})
        return log, f

    def run(self):
        say("seed %d (replay: tests/chaos/run.py --seed %d %s)" % (
            self.seed, self.seed, self.a.replay_hint))
        ok, why = C.Net.available()
        faults = [f for f in self.a.faults.split(",") if f]
        if not ok:
            say("partitions disabled: %s" % why)
            faults = [f for f in faults if f not in PARTITIONS]
        if not N.FAKETIME_LIB and "clock-skew" in faults:
            say("clock-skew disabled: libfaketime is not installed (Debian: faketime)")
            faults.remove("clock-skew")
        N.SHIM = build_shim(self.a.builddir)
        if not N.SHIM:
            faults = [f for f in faults if not f.startswith("disk-")]
        self.faults = faults
        say("faults: %s" % ", ".join(faults))
        round_no = 0
        sizes = [int(x) for x in self.a.nodes.split(",")]
        while True:
            for size in sizes:
                if self.done(round_no):
                    return self.finish()
                n_rounds = self.a.rounds_per_cluster
                round_no = self.cluster_phase(size, round_no, n_rounds)
            if self.done(round_no):
                return self.finish()

    def done(self, round_no):
        if self.a.rounds and round_no >= self.a.rounds:
            return True
        return self.deadline is not None and time.monotonic() >= self.deadline

    def cluster_phase(self, size, round_no, n_rounds):
        work = tempfile.mkdtemp(prefix="custos-chaos-%d-" % size)
        c = C.ChaosCluster(work, n=size, base=self.a.base_octet)
        if N.SHIM and ({"disk-slow", "disk-eio"} & set(self.faults)):
            # Loaded all along; the faults come from each node's control directory.
            for n in c.nodes:
                n.preload = [N.SHIM]
                n.env["CHAOS_CTL"] = n.ctl
        if "disk-full" in self.faults and os.geteuid() == 0:
            if not c.nodes[-1].mount_small_disk(self.a.small_disk_mb):
                say("disk-full disabled for this cluster: cannot mount a tmpfs")
        net = C.Net([n.ip for n in c.nodes])
        try:
            t = time.monotonic()
            c.start()
            enable_mounts(c)
            if C.Net.available()[0]:
                net.setup()
            say("%d-node cluster up in %.1fs: %s" % (size, time.monotonic() - t, c))
            for _ in range(n_rounds):
                if self.done(round_no):
                    break
                if self.a.replay_ops:
                    with open(self.a.replay_ops) as f:
                        ops = json.load(f)
                    ops = ops.get("minimal_ops", ops) if isinstance(ops, dict) else ops
                    self.round(c, net, size, round_no, ops=ops)
                else:
                    problems, plan = self.round(c, net, size, round_no)
                    if problems and self.a.shrink_attempts > 0:
                        self.failures[-1]["shrink"] = self.shrink(
                            c, net, size, round_no, plan, problems)["minimal_ops"]
                round_no += 1
        finally:
            net.teardown()
            c.cleanup()
            for n in c.nodes:
                n.unmount_small_disk()
            if not self.failures or self.a.ci:
                shutil.rmtree(work, ignore_errors=True)
            else:
                say("cluster directory kept: %s" % work)
        return round_no

    def plan(self, rnd):
        """The round's nemesis operations, drawn from the round's generator. Each has its
        own seed for the choices made while it runs (victims, sides), so that any subset
        of them replays each one the same way (the shrinker relies on it)."""
        n_faults = rnd.randint(self.a.min_faults, self.a.max_faults)
        pick = N.Nemesis(None, None, rnd, None, self.faults)
        return [{"fault": pick.pick(), "hold": round(rnd.uniform(self.a.min_hold,
                                                                  self.a.max_hold), 3),
                 "seed": rnd.randrange(1 << 31), "gap": round(rnd.uniform(0.5, 3.0), 3)}
                for _ in range(n_faults)]

    def round(self, c, net, size, r, ops=None, tag=""):
        """One round; ops: run exactly these nemesis operations (the shrinker), else the
        round's own plan. Returns (problems, plan)."""
        rnd = random.Random("%d-%d-%d" % (self.seed, size, r))
        rdir = os.path.join(self.results, "round-%03d-n%d%s" % (r, size, tag))
        os.makedirs(rdir, exist_ok=True)
        nlog, nfile = self.log_to(os.path.join(rdir, "nemesis.jsonl"))
        nem = N.Nemesis(c, net, rnd, nlog, self.faults)
        recs = {w: W.Recorder(os.path.join(rdir, "history-%s.jsonl" % w))
                for w in ("register", "append", "tokens", "transit", "pki", "expiry")}
        targets = [("haproxy", c.haproxy_url)] + [(n.name, n.url) for n in c.nodes]
        prefix = "r%d%s" % (r, tag.replace("-", ""))
        ks = W.KeySpace(prefix)
        tokens = {}
        stats = {}
        workers = []
        for i in range(self.a.register_clients):
            workers.append(W.RegisterWorker(ks, "reg%d" % i, recs["register"], targets,
                                            c.root_token, rnd.random(), stats))
        for i in range(self.a.append_clients):
            workers.append(W.AppendWorker(prefix, "app%d" % i, recs["append"], targets,
                                          c.root_token, rnd.random(), stats))
        for i in range(self.a.token_clients):
            workers.append(W.TokenWorker(tokens, "tok%d" % i, recs["tokens"], targets,
                                         c.root_token, rnd.random(), stats))
        tkey, issued = "k" + prefix, {}
        if self.a.transit_clients:
            r0 = c.leader().request("POST", "transit/keys/" + tkey, token=c.root_token,
                                    json={}, timeout=30)
            assert r0.status_code in (200, 204), r0.text
        for i in range(self.a.transit_clients):
            workers.append(W.TransitWorker(tkey, issued, "tr%d" % i, recs["transit"],
                                           targets, c.root_token, rnd.random(), stats))
        for i in range(self.a.pki_clients):
            workers.append(W.PkiWorker(prefix, "pki%d" % i, recs["pki"], targets,
                                       c.root_token, rnd.random(), stats))
        short = {}
        for i in range(self.a.expiry_clients):
            workers.append(W.ExpiryWorker(short, "exp%d" % i, recs["expiry"], targets,
                                          c.root_token, rnd.random(), stats))
        plan = self.plan(rnd) if ops is None else list(ops)
        n_faults = len(plan)
        say("round %d%s (%d nodes): %d faults, %.0fs: %s" % (
            r, tag, size, n_faults, self.a.round_seconds,
            ", ".join("%s %.1fs" % (o["fault"], o["hold"]) for o in plan)))
        t_end = time.monotonic() + self.a.round_seconds
        for w in workers:
            w.start()
        try:
            time.sleep(1.0)
            for i, op in enumerate(plan):
                nem.rnd = random.Random(op["seed"])
                nem.note("operation", index=i, op=op)
                nem.run_one(op["fault"], op["hold"])
                left = (t_end - time.monotonic()) / max(1, n_faults - i)
                time.sleep(max(0.5, min(left, op["gap"])))
            time.sleep(max(0.0, t_end - time.monotonic()))
        finally:
            for w in workers:
                w.stop()
            for w in workers:
                w.join(timeout=W.READ_TIMEOUT + 5)
            nem.heal_all()
        verdict = {"round": r, "nodes": size, "seed": self.seed, "plan": plan, "faults": [
            e for e in nem.events if e["nemesis"] not in ("heal", "restarted+unsealed")]}
        problems = []
        for w in workers:
            if w.error:
                problems.append("workload %s died: %s" % (w.name, w.error))
        # Converge: same applied index and digest everywhere.
        try:
            leader = c.find_leader(timeout=60)
            if leader is None:
                raise AssertionError("no single active node 60 s after healing")
            ds = c.wait_converged(timeout=60)
            verdict["converged"] = {k: [v["applied_index"], v["digest"][:16]]
                                    for k, v in ds.items()}
        except AssertionError as e:
            msg = str(e)
            verdict["converged"] = msg[:2000]
            if "diverged" in msg:
                self.totals["digest_mismatches"] += 1
                problems.append("digest mismatch: " + msg[:300])
            else:
                self.totals["not_converged"] += 1
                problems.append("not converged: " + msg[:300])
        converged = isinstance(verdict["converged"], dict)
        # Register.
        if converged:
            final_register_reads(c, recs["register"], ks.all)
        reg = K.check_register(recs["register"].events)
        bad_keys = {k: v for k, v in reg.items() if v["valid"] is False}
        unknown = [k for k, v in reg.items() if v["valid"] == "unknown"]
        verdict["register"] = {"keys": len(reg), "invalid": bad_keys, "unknown": unknown}
        self.totals["keys_checked"] += len(reg)
        self.totals["linearizability_violations"] += len(bad_keys)
        self.totals["unknown_keys"] += len(unknown)
        for k in bad_keys:
            problems.append("register key %s is not linearizable" % k)
        # Append.
        if converged:
            try:
                listed = list_append(c, prefix)
            except AssertionError as e:
                listed = None
                problems.append("append: cannot list: %s" % e)
            if listed is not None:
                app = K.check_append(recs["append"].events, listed)
                verdict["append"] = app
                self.totals["lost_writes"] += app["lost_count"]
                if not app["valid"]:
                    problems.append("append: %s" % json.dumps(app)[:400])
        # Tokens.
        fin = final_token_uses(c, tokens) if converged else None
        tok = K.check_tokens(recs["tokens"].events, fin)
        verdict["tokens"] = tok
        self.totals["token_violations"] += tok["violation_count"]
        self.totals["tokens_checked"] += tok["created"]
        if not tok["valid"]:
            problems.append("tokens: %s" % json.dumps(tok["violations"][:3])[:400])
        # Transit: no acknowledged rotate lost, every issued ciphertext decrypts.
        if self.a.transit_clients:
            fv, fd = final_transit(c, tkey, issued) if converged else (None, None)
            tr = K.check_transit(recs["transit"].events, fv, fd)
            verdict["transit"] = tr
            self.totals["transit_violations"] += tr["violation_count"]
            self.totals["transit_rotates"] += tr["rotates_acknowledged"]
            self.totals["transit_ciphertexts"] += tr["ciphertexts"]
            if not tr["valid"]:
                problems.append("transit: %s" % json.dumps(tr["violations"][:3])[:400])
        # PKI: unique serials, acknowledged revocations in every node's CRL.
        if self.a.pki_clients:
            try:
                crls = crl_serials(c) if converged else None
            except AssertionError as e:
                crls = None
                problems.append("pki: cannot read a CRL: %s" % e)
            pk = K.check_pki(recs["pki"].events, crls)
            verdict["pki"] = pk
            self.totals["pki_violations"] += pk["violation_count"]
            self.totals["pki_issued"] += pk["issued"]
            self.totals["pki_revoked"] += pk["revoked"]
            if not pk["valid"]:
                problems.append("pki: %s" % json.dumps(pk["violations"][:3])[:400])
        # Short-lived tokens: an expired token never works again.
        if self.a.expiry_clients:
            fe = final_expired_uses(c, short) if converged else None
            skewed = [(t0, t1) for f, t0, t1, _ in nem.windows if f == "clock-skew"]
            ex = K.check_expiry(recs["expiry"].events, W.EXPIRY_TTL_S * 10**9, fe, skewed)
            verdict["expiry"] = ex
            self.totals["expiry_violations"] += ex["violation_count"]
            self.totals["expiry_tokens"] += ex["created"]
            if not ex["valid"]:
                problems.append("expiry: %s" % json.dumps(ex["violations"][:3])[:400])
        # Crashes other than the injected ones.
        for n in c.nodes:
            nem.check_crash(n)
        if nem.crashes:
            self.totals["crashes"] += len(nem.crashes)
            problems.append("crashes: %s" % [(x["node"], x["exit"]) for x in nem.crashes])
            verdict["crashes"] = nem.crashes
        if nem.findings:
            verdict["findings"] = nem.findings
            self.findings += [dict(f, round=r, nodes=size) for f in nem.findings]
        # Counts.
        allev = [e for rec in recs.values() for e in rec.events]
        ops = sum(1 for e in allev if e["type"] == "invoke")
        acked = sum(1 for e in allev if e["type"] == "ok" and e["f"] in ("write", "cas", "add",
                                                                         "create", "revoke",
                                                                         "rotate", "issue")
                    and e.get("value") is not False)
        reads = sum(1 for e in recs["register"].events if e["type"] == "ok"
                    and e["f"] == "read")
        during = errors_during_faults(nem.windows, sorted(allev, key=lambda e: e["time"]))
        verdict.update({"operations": ops, "acknowledged_writes": acked, "reads_checked": reads,
                        "outcomes": stats, "haproxy_errors_by_fault": during,
                        "problems": problems, "valid": not problems})
        t = self.totals
        t["rounds"] += 1
        t["operations"] += ops
        t["acknowledged_writes"] += acked
        t["reads_checked"] += reads
        for f, k in nem.counts.items():
            t["faults"][f] = t["faults"].get(f, 0) + k
        for f, d in during.items():
            e = t["haproxy_errors_by_fault"].setdefault(f, {"requests": 0, "errors": 0,
                                                             "in_flight": 0})
            for k in e:
                e[k] += d.get(k, 0)
        with open(os.path.join(rdir, "verdict.json"), "w") as f:
            json.dump(verdict, f, indent=1, sort_keys=True, default=str)
        for rec in recs.values():
            rec.close()
        nfile.close()
        if problems:
            self.failures.append({"round": r, "nodes": size, "dir": rdir, "problems": problems})
            for n in c.nodes:  # the evidence: every node's log
                try:
                    shutil.copy(n.log_path, os.path.join(rdir, "%s.log" % n.name))
                except OSError:
                    pass
            say("round %d%s FAILED: %s" % (r, tag, "; ".join(problems)[:600]))
        else:
            shutil.rmtree(rdir, ignore_errors=True) if self.a.ci or tag else None
            say("round %d%s ok: %d ops, %d acknowledged writes, %d reads, %d keys linearizable"
                % (r, tag, ops, acked, reads, len(reg) - len(unknown)))
        return problems, plan

    def shrink(self, c, net, size, r, plan, problems):
        """A failed round again with ever fewer of its nemesis operations (each replayed
        from its own seed), dropping one at a time while the failure of the same kind
        still shows; the smallest sequence found goes to the round's directory
        (minimal-ops.json). The machine's timing does not replay: an attempt that passes
        does not prove the operation irrelevant, so this is a best effort bounded by
        --shrink-attempts. The attempts do not count in the run's totals."""
        kinds = problem_kinds(problems)
        saved = copy.deepcopy((self.totals, self.failures, self.findings))
        rdir = os.path.join(self.results, "round-%03d-n%d" % (r, size))

        def attempt(k, cand):
            say("shrink %d: round %d with %d operations: %s" % (
                k, r, len(cand), [o["fault"] for o in cand]))
            try:
                return self.round(c, net, size, r, ops=cand, tag="-shrink%d" % k)[0]
            except Exception as e:  # noqa: BLE001 - a broken attempt decides nothing
                return ["shrink attempt broke: %r" % e]
        try:
            current, attempts = shrink_ops(plan, kinds, attempt, self.a.shrink_attempts)
        finally:
            self.totals, self.failures, self.findings = saved
        out = {"seed": self.seed, "round": r, "nodes": size, "problem_kinds": sorted(kinds),
               "original_ops": plan, "minimal_ops": current,
               "replay": "tests/chaos/run.py --seed %d %s (round %d); the minimal sequence: "
                         "run.py --seed %d --nodes %d --rounds 1 --round-seconds %g "
                         "--replay-ops %s" % (
                             self.seed, self.a.replay_hint, r, self.seed, size,
                             self.a.round_seconds, os.path.join(rdir, "minimal-ops.json")),
               "attempts": attempts}
        if os.path.isdir(rdir):
            with open(os.path.join(rdir, "minimal-ops.json"), "w") as f:
                json.dump(out, f, indent=1, sort_keys=True)
        say("shrink: round %d reproduced with %d of %d operations: %s" % (
            r, len(current), len(plan), [o["fault"] for o in current]))
        return out

    def finish(self):
        t = dict(self.totals)
        t["seed"] = self.seed
        t["failures"] = self.failures
        t["findings"] = self.findings
        t["valid"] = not self.failures
        with open(os.path.join(self.results, "summary.json"), "w") as f:
            json.dump(t, f, indent=1, sort_keys=True)
        with open(os.path.join(self.results, "summary.md"), "w") as f:
            f.write(summary_md(t, self.a))
        say("summary: %d rounds, %d operations, %d acknowledged writes, %d reads checked, "
            "%d register keys; lost writes %d, linearizability violations %d (unknown %d), "
            "token violations %d, transit violations %d, PKI violations %d, expired-token "
            "violations %d, digest mismatches %d, not converged %d, crashes %d" % (
                t["rounds"], t["operations"], t["acknowledged_writes"], t["reads_checked"],
                t["keys_checked"], t["lost_writes"], t["linearizability_violations"],
                t["unknown_keys"], t["token_violations"], t["transit_violations"],
                t["pki_violations"], t["expiry_violations"], t["digest_mismatches"],
                t["not_converged"], t["crashes"]))
        say("faults injected: %s" % json.dumps(t["faults"], sort_keys=True))
        say("haproxy errors by fault: %s" % json.dumps(t["haproxy_errors_by_fault"],
                                                       sort_keys=True))
        for f in self.findings:
            say("finding: %s" % json.dumps(f, sort_keys=True))
        say("results: %s -> %s" % (self.results, "PASS" if t["valid"] else "FAIL"))
        return 0 if t["valid"] else 1


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ci", action="store_true", help="short run, fixed seed, 3 nodes")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--rounds", type=int, default=0, help="stop after N rounds (0: --minutes)")
    p.add_argument("--minutes", type=float, default=0)
    p.add_argument("--nodes", default="3,5", help="cluster sizes, in turn")
    p.add_argument("--rounds-per-cluster", type=int, default=5)
    p.add_argument("--round-seconds", type=float, default=30)
    p.add_argument("--min-faults", type=int, default=3)
    p.add_argument("--max-faults", type=int, default=6)
    p.add_argument("--min-hold", type=float, default=1.5)
    p.add_argument("--max-hold", type=float, default=5.0)
    p.add_argument("--faults", default=",".join(N.FAULTS))
    p.add_argument("--register-clients", type=int, default=4)
    p.add_argument("--append-clients", type=int, default=2)
    p.add_argument("--token-clients", type=int, default=2)
    p.add_argument("--transit-clients", type=int, default=2)
    p.add_argument("--pki-clients", type=int, default=1)
    p.add_argument("--expiry-clients", type=int, default=1)
    p.add_argument("--results", default=None)
    p.add_argument("--builddir", default=os.path.join(os.path.dirname(os.path.dirname(HERE)),
                                                     "build"))
    p.add_argument("--small-disk-mb", type=int, default=256,
                   help="size of the tmpfs the last node's data lives on (disk-full)")
    p.add_argument("--base-octet", type=int, default=C.BASE_OCTET,
                   help="nodes on 127.0.0.<base>, <base>+1, ... (keep overlapping runs apart)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--shrink-attempts", type=int, default=6,
                   help="after a failed round, rounds to re-run with fewer of its nemesis "
                        "operations (0: no shrinking; --ci: 0)")
    p.add_argument("--replay-ops", default=None,
                   help="run every round with exactly these operations (a minimal-ops.json "
                        "written by the shrinker, or a JSON list of operations)")
    a = p.parse_args(argv)
    hint = []
    if a.ci:
        if a.seed is None:
            a.seed = 20261207
        a.nodes = "3"
        a.rounds = a.rounds or 3
        a.rounds_per_cluster = a.rounds
        a.round_seconds = 15
        a.min_faults, a.max_faults = 3, 3
        a.max_hold = 3.0
        a.faults = "kill,pause,partition-leader,partition-one,partition-halves"
        a.shrink_attempts = 0
        hint.append("--ci")
    if a.seed is None:
        a.seed = random.SystemRandom().randrange(1, 2**31)
    if not a.ci:
        hint.append("--nodes %s --rounds-per-cluster %d --round-seconds %g --faults %s" % (
            a.nodes, a.rounds_per_cluster, a.round_seconds, a.faults))
    a.replay_hint = " ".join(hint)
    if not a.rounds and not a.minutes:
        a.rounds = 4
    if a.results is None:
        a.results = os.path.join(HERE, "results", "run-%s-seed%d" % (
            time.strftime("%Y%m%d-%H%M%S", time.gmtime()), a.seed))
    if not os.access(H.BIN, os.X_OK):
        say("custos binary not found at %s (set CUSTOS_BIN or build)" % H.BIN)
        return 2
    try:
        return Campaign(a).run()
    finally:
        C.kill_all()


if __name__ == "__main__":
    sys.exit(main())
