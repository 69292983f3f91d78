"""Checkers for the fault campaign's histories.

A history is a list of events (dicts), one JSON line each in the results directory:
  {"process": p, "type": "invoke"|"ok"|"fail"|"info", "f": ..., "key": ..., "value": ...,
   "time": monotonic ns, "node": target}
Every invoke is followed, later, by exactly one completion of the same process: ok (it
happened, `value` is the result), fail (it certainly did not happen) or info (unknown:
timeout, connection reset, 5xx — it may have happened at any time after the invoke, or
never). A process whose operation ended in info never issues another one (the client
takes a fresh process id), as in Jepsen.

- check_register: linearizability of a KV v2 key as a versioned register, by the
  Wing & Gong search with Lowe's memoisation (the algorithm of Knossos' "wgl" checker
  and of Porcupine), per key.
- check_append: every acknowledged unique key is present after healing, on every node;
  nothing appears that was never sent; nothing definitely failed appears.
- check_tokens: a token never works after its revoke was acknowledged; an acknowledged
  token works until a revoke is invoked.
"""

INF = float("inf")


# ---- pairing invocations and completions --------------------------------------------------
def pair(history):
    """[(invoke event, completion event or None)] in invoke order. A process's invoke
    is completed by that process's next completion event."""
    pending = {}
    out = []
    for e in history:
        t = e["type"]
        p = e["process"]
        if t == "invoke":
            if p in pending:
                raise ValueError("process %r invoked twice without completion" % (p,))
            pending[p] = len(out)
            out.append([e, None])
        else:
            i = pending.pop(p, None)
            if i is None:
                raise ValueError("completion without invoke: %r" % (e,))
            out[i][1] = e
    return [tuple(x) for x in out]


# ---- the register model -----------------------------------------------------------------
# State: (version, value); a missing key is (0, None). Operations (f, arg) -> result:
#   read            -> (version, value)             ok: must equal the state
#   write value     -> version                      ok: the new version (state version + 1)
#   cas (exp, val)  -> version | False              False: the version was not exp
# An info operation has result None and always steps deterministically (a cas applies if
# the version matches, else changes nothing); with its return at infinity the search may
# also place it after everything, which is the same as never.
def register_step(state, f, arg, result):
    ver, val = state
    if f == "read":
        if result is None:
            return True, state
        return (tuple(result) == (ver, val)), state
    if f == "write":
        if result is not None and result != ver + 1:
            return False, state
        return True, (ver + 1, arg)
    if f == "cas":
        exp, new = arg
        if result is False:
            return ver != exp, state
        if ver != exp:
            return result is None, state
        if result is not None and result != ver + 1:
            return False, state
        return True, (ver + 1, new)
    raise ValueError("unknown register op %r" % (f,))


class _Entry:
    __slots__ = ("op", "is_call", "match", "prev", "next", "time")

    def __init__(self, op, is_call, time):
        self.op, self.is_call, self.time = op, is_call, time
        self.match = self.prev = self.next = None


def _ops_for_register(history):
    """Operations of one key: dicts id, f, arg, result, call, ret."""
    ops = []
    for inv, done in pair(history):
        f = inv["f"]
        if done is None or done["type"] == "info":
            if f == "read":
                continue  # an unanswered read has no effect and nothing to check
            result, ret = None, INF
        elif done["type"] == "fail":
            continue  # certainly did not happen
        else:
            result, ret = done.get("value"), done["time"]
            if f == "read" and result is not None:
                result = tuple(result)
        ops.append({"id": len(ops), "f": f, "arg": inv.get("value"), "result": result,
                    "call": inv["time"], "ret": ret, "process": inv["process"]})
    return ops


def check_linearizable(ops, step=register_step, init=(0, None), max_steps=2_000_000):
    """Wing & Gong search with memoisation over (set of linearized ops, state).
    ops: dicts with id (0..n-1), f, arg, result, call, ret (INF if unknown).
    Returns {"valid": True|False|"unknown", ...}; on False the deepest partial
    linearization found and the operation that could not be placed."""
    events = []
    for op in ops:
        c = _Entry(op, True, op["call"])
        r = _Entry(op, False, op["ret"])
        c.match = r
        events.append((op["call"], 1, c))
        events.append((op["ret"], 0, r))
    # At equal times a return sorts before a call: the earlier op really precedes.
    events.sort(key=lambda x: (x[0], x[1]))
    head = _Entry(None, False, -1)
    prev = head
    for _, _, e in events:
        prev.next = e
        e.prev = prev
        prev = e

    def lift(e):
        e.prev.next = e.next
        if e.next:
            e.next.prev = e.prev
        m = e.match
        m.prev.next = m.next
        if m.next:
            m.next.prev = m.prev

    def unlift(e):
        m = e.match
        m.prev.next = m
        if m.next:
            m.next.prev = m
        e.prev.next = e
        if e.next:
            e.next.prev = e

    state = init
    linearized = 0
    cache = set()
    calls = []
    entry = head.next
    steps = 0
    best = ([], None)
    while head.next is not None:
        steps += 1
        if steps > max_steps:
            return {"valid": "unknown", "reason": "search exceeded %d steps" % max_steps,
                    "ops": len(ops)}
        if entry.is_call:
            op = entry.op
            ok, new_state = step(state, op["f"], op["arg"], op["result"])
            if ok:
                new_lin = linearized | (1 << op["id"])
                key = (new_lin, new_state)
                if key not in cache:
                    cache.add(key)
                    calls.append((entry, state))
                    state, linearized = new_state, new_lin
                    lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
        else:
            if len(calls) >= len(best[0]):
                best = ([c[0].op for c in calls], (entry.op, state))
            if not calls:
                return _failure(ops, best)
            entry, state = calls.pop()
            linearized &= ~(1 << entry.op["id"])
            unlift(entry)
            entry = entry.next
    return {"valid": True, "ops": len(ops), "steps": steps}


def _failure(ops, best):
    prefix, (blocked, state) = best
    return {"valid": False, "ops": len(ops),
            "linearized_prefix": [_show(o) for o in prefix[-12:]],
            "state_after_prefix": list(state) if state is not None else None,
            "cannot_place": _show(blocked)}


def _show(op):
    return {k: op[k] for k in ("f", "arg", "result", "call", "ret", "process")}


def check_register(history):
    """{key: verdict} for a register history (events carry "key")."""
    by_key = {}
    for e in history:
        by_key.setdefault(e["key"], []).append(e)
    out = {}
    for k, h in sorted(by_key.items()):
        ops = _ops_for_register(h)
        out[k] = check_linearizable(ops)
    return out


# ---- append -------------------------------------------------------------------------------
def check_append(history, listed_by_node):
    """history: append events (f "add", value = the unique key); listed_by_node:
    {node: set of keys present after healing}. Returns a verdict dict."""
    acked, sent, failed = set(), set(), set()
    for inv, done in pair(history):
        k = inv["value"]
        sent.add(k)
        if done is not None and done["type"] == "ok":
            acked.add(k)
        elif done is not None and done["type"] == "fail":
            failed.add(k)
    lost = {}
    unexpected = {}
    for node, present in listed_by_node.items():
        if acked - present:
            lost[node] = sorted(acked - present)
        if present - sent:
            unexpected[node] = sorted(present - sent)
    sets = {frozenset(v) for v in listed_by_node.values()}
    present_any = set().union(*listed_by_node.values()) if listed_by_node else set()
    failed_present = sorted(failed & present_any)
    return {"valid": not lost and not unexpected and len(sets) <= 1 and not failed_present,
            "acknowledged": len(acked), "sent": len(sent),
            "indeterminate_present": len((sent - acked - failed) & present_any),
            "lost": {n: v[:20] for n, v in lost.items()},
            "lost_count": sum(len(v) for v in lost.values()),
            "unexpected": {n: v[:20] for n, v in unexpected.items()},
            "nodes_disagree": len(sets) > 1,
            "failed_but_present": failed_present[:20]}


# ---- tokens -------------------------------------------------------------------------------
def check_tokens(history, final_use=None):
    """history: events with f "create" (ok value = token name the workload uses as key),
    "revoke" (value = token name), "use" (value = token name; ok value = True when the
    token worked, False when it was refused with 403). final_use: {token name: {node:
    True/False}} from after healing. A token that works after its revoke was
    acknowledged, or does not work although it was acknowledged and no revoke was ever
    invoked before the use returned, is a violation."""
    created = {}  # name -> time the create was acknowledged
    revoke_invoked = {}  # name -> earliest revoke invoke time
    revoke_acked = {}  # name -> earliest revoke ok time
    uses = []
    for inv, done in pair(history):
        f, name = inv["f"], inv["value"]
        if f == "create" and done is not None and done["type"] == "ok":
            name = done["value"]  # the accessor is known only from the answer
            created[name] = done["time"]
        elif f == "revoke":
            revoke_invoked[name] = min(revoke_invoked.get(name, INF), inv["time"])
            if done is not None and done["type"] == "ok":
                revoke_acked[name] = min(revoke_acked.get(name, INF), done["time"])
        elif f == "use" and done is not None and done["type"] == "ok":
            uses.append((name, inv["time"], done["time"], done["value"], inv.get("node")))
    violations = []
    for name, t_inv, t_ret, works, node in uses:
        if works and t_inv > revoke_acked.get(name, INF):
            violations.append({"token": name, "problem": "worked after its revoke was "
                               "acknowledged", "use_invoked": t_inv,
                               "revoke_acked": revoke_acked[name], "node": node})
        if (not works and name in created and t_inv > created[name]
                and revoke_invoked.get(name, INF) > t_ret):
            violations.append({"token": name, "problem": "acknowledged token refused "
                               "without any revoke", "use_invoked": t_inv, "node": node})
    for name, per_node in (final_use or {}).items():
        for node, works in per_node.items():
            if works and name in revoke_acked:
                violations.append({"token": name, "problem": "works after healing although "
                                   "its revoke was acknowledged", "node": node})
            if not works and name in created and name not in revoke_invoked:
                violations.append({"token": name, "problem": "acknowledged token lost "
                                   "after healing", "node": node})
    return {"valid": not violations, "created": len(created), "revoked": len(revoke_acked),
            "uses_checked": len(uses), "violations": violations[:20],
            "violation_count": len(violations)}


# ---- transit ------------------------------------------------------------------------------
def ct_version(ct):
    """The key version of a Vault ciphertext "vault:v<N>:...", or None."""
    try:
        pre, v, _ = ct.split(":", 2)
        return int(v[1:]) if pre == "vault" and v.startswith("v") else None
    except (AttributeError, ValueError):
        return None


def check_transit(history, final_version=None, final_decrypt=None):
    """One transit key, rotated and used by several clients. history: f "rotate" (no
    value), "encrypt" (invoke value = plaintext; ok value = ciphertext), "decrypt"
    (invoke value = ciphertext; ok value = the plaintext, or {"error": msg} when the
    node refused a ciphertext it had issued), "read" (ok value = latest_version).

    The key's version starts at 1 and every applied rotate adds one, so at any moment
    1 + (rotates acknowledged so far) <= version <= 1 + (rotates invoked so far):
      - a read, or the version an encrypt used, below the rotates acknowledged before it
        was invoked means a lost rotate; above the rotates invoked before it returned, a
        version from nowhere;
      - a read that starts after another returned sees at least its version (monotonic);
      - a decrypt of a ciphertext this key issued returns its plaintext; so does every one
        after healing (final_decrypt: {ciphertext: plaintext or {"error": ...}});
      - final_version (after healing) lies in [1 + acknowledged, 1 + acknowledged + info].
    """
    rot_ok, rot_inv = [], []  # ok completion times, invoke times
    rot_info = 0
    obs = []  # (kind, invoke, return, version, detail)
    plain = {}  # ciphertext -> plaintext of an acknowledged encrypt
    decrypts = []
    for inv, done in pair(history):
        f = inv["f"]
        if f == "rotate":
            rot_inv.append(inv["time"])
            if done is not None and done["type"] == "ok":
                rot_ok.append(done["time"])
            elif done is None or done["type"] == "info":
                rot_info += 1
            continue
        if done is None or done["type"] != "ok":
            continue
        if f == "encrypt":
            plain[done["value"]] = inv["value"]
            obs.append(("encrypt", inv["time"], done["time"], ct_version(done["value"]),
                        done["value"][:24]))
        elif f == "read":
            obs.append(("read", inv["time"], done["time"], done["value"], None))
        elif f == "decrypt":
            decrypts.append((inv["value"], done["value"], inv.get("node")))
    rot_ok.sort()
    rot_inv.sort()
    violations = []

    def count_before(times, t):
        return sum(1 for x in times if x < t)

    for kind, t0, t1, ver, detail in obs:
        lo = 1 + count_before(rot_ok, t0)
        hi = 1 + count_before(rot_inv, t1)
        if ver is None or ver < lo:
            violations.append({"problem": "%s saw key version %s although %d rotates were "
                               "acknowledged before it began (lost rotate)" % (kind, ver,
                                                                               lo - 1),
                               "detail": detail, "invoked": t0})
        elif ver > hi:
            violations.append({"problem": "%s saw key version %s but only %d rotates were "
                               "invoked before it returned" % (kind, ver, hi - 1),
                               "detail": detail, "invoked": t0})
    by_ret = sorted((o for o in obs if o[0] == "read"), key=lambda o: o[2])
    i, best_t, best_v = 0, None, 0  # highest version among reads returned so far
    for o in sorted(by_ret, key=lambda o: o[1]):
        while i < len(by_ret) and by_ret[i][2] < o[1]:
            if by_ret[i][3] > best_v:
                best_v, best_t = by_ret[i][3], by_ret[i][2]
            i += 1
        if o[3] < best_v:
            violations.append({"problem": "read saw version %d after a read had returned "
                               "version %d (not monotonic)" % (o[3], best_v),
                               "invoked": o[1], "earlier_return": best_t})
    for ct, res, node in decrypts:
        if ct in plain and res != plain[ct]:
            violations.append({"problem": "decrypt of an issued ciphertext gave %r" % (res,),
                               "ciphertext": ct[:24], "node": node})
    for ct, res in (final_decrypt or {}).items():
        if ct in plain and res != plain[ct]:
            violations.append({"problem": "after healing, an issued ciphertext decrypts to "
                               "%r" % (res,), "ciphertext": ct[:24]})
    if final_version is not None:
        lo, hi = 1 + len(rot_ok), 1 + len(rot_ok) + rot_info
        if not lo <= final_version <= hi:
            violations.append({"problem": "after healing the key is at version %d, expected "
                               "%d..%d (acknowledged rotates: %d)" % (final_version, lo, hi,
                                                                      len(rot_ok))})
    return {"valid": not violations, "rotates_acknowledged": len(rot_ok),
            "ciphertexts": len(plain), "decrypts_checked": len(decrypts) +
            len(final_decrypt or {}), "violations": violations[:20],
            "violation_count": len(violations)}


# ---- PKI ----------------------------------------------------------------------------------
def serial_int(s):
    """A serial as Vault writes it ("1d:4f:..."), or an int, as an int."""
    return s if isinstance(s, int) else int(str(s).replace(":", "").replace("-", ""), 16)


def check_pki(history, crl_by_node=None):
    """history: f "issue" (ok value = the certificate's serial), "revoke" (invoke value =
    serial); serials as Vault writes them. crl_by_node: {node: set of serial numbers
    (ints or strings) in its CRL} after healing.
      - serials of acknowledged issues are unique;
      - every acknowledged revocation is in every node's CRL;
      - of the certificates this history issued, a CRL lists only those somebody asked
        to revoke (ok or unknown outcome); other serials (earlier rounds) are ignored."""
    issued = {}
    dup = []
    revoke_ok, revoke_tried = set(), set()
    for inv, done in pair(history):
        f = inv["f"]
        if f == "issue" and done is not None and done["type"] == "ok":
            s = serial_int(done["value"])
            if s in issued:
                dup.append(s)
            issued[s] = done["time"]
        elif f == "revoke":
            if done is None or done["type"] != "fail":
                revoke_tried.add(serial_int(inv["value"]))
            if done is not None and done["type"] == "ok":
                revoke_ok.add(serial_int(inv["value"]))
    violations = [{"problem": "serial issued twice", "serial": "%x" % s} for s in dup]
    for node, crl in (crl_by_node or {}).items():
        crl = {serial_int(s) for s in crl}
        for s in sorted(revoke_ok - crl):
            violations.append({"problem": "acknowledged revocation missing from the CRL",
                               "serial": "%x" % s, "node": node})
        # The mount outlives the round: judge only this history's certificates.
        for s in sorted((crl & set(issued)) - revoke_tried):
            violations.append({"problem": "CRL lists a serial nobody revoked",
                               "serial": "%x" % s, "node": node})
    return {"valid": not violations, "issued": len(issued), "revoked": len(revoke_ok),
            "violations": violations[:20], "violation_count": len(violations)}


# ---- expiring tokens (leases) -------------------------------------------------------------
def check_expiry(history, ttl_ns, final_use=None, skewed=()):
    """Tokens created with a short TTL (ttl_ns) and used until after they expire.
    history: f "create" (ok value = accessor), "use" (invoke value = accessor; ok value
    True/False). The token expires at some moment between the create's invoke and its
    acknowledgement plus the TTL; so
      - once a use that began after the acknowledgement + TTL was refused, no use that
        begins after that refusal returned may work (an expired token never works again);
      - after healing (final_use: {accessor: {node: works}}) no node accepts a token
        whose TTL has passed.
    skewed: (start, end) windows during which some node's clock was skewed: a token
    created then expires by the clock of the node that created it (as in Vault, TTLs
    are wall-clock times), so it is not judged."""
    created = {}
    uses = {}
    for inv, done in pair(history):
        if inv["f"] == "create" and done is not None and done["type"] == "ok":
            if any(t0 <= done["time"] and inv["time"] <= t1 for t0, t1 in skewed):
                continue
            created[done["value"]] = done["time"]
        elif inv["f"] == "use" and done is not None and done["type"] == "ok":
            uses.setdefault(inv["value"], []).append((inv["time"], done["time"],
                                                      done["value"], inv.get("node")))
    violations = []
    for acc, us in uses.items():
        if acc not in created:
            continue
        expired_at = created[acc] + ttl_ns
        refused = [t1 for t0, t1, works, _ in us if not works and t0 > expired_at]
        if not refused:
            continue
        first = min(refused)
        for t0, t1, works, node in us:
            if works and t0 > first:
                violations.append({"problem": "expired token worked again after it had "
                                   "been refused", "token": acc, "node": node,
                                   "use_invoked": t0, "refused_at": first})
    for acc, per_node in (final_use or {}).items():
        for node, works in per_node.items():
            if works and acc in created:
                violations.append({"problem": "expired token works after healing",
                                   "token": acc, "node": node})
    return {"valid": not violations, "created": len(created),
            "uses_checked": sum(len(u) for u in uses.values()), "violations": violations[:20],
            "violation_count": len(violations)}
