"""The campaign's checkers on histories whose verdict is known by hand."""

import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import checkers as K  # noqa: E402


class Hist:
    """Builds a history with explicit times (one tick per call to at())."""

    def __init__(self, key="k"):
        self.ev = []
        self.key = key

    def inv(self, p, f, value, t, node="n1"):
        self.ev.append({"process": p, "type": "invoke", "f": f, "key": self.key,
                        "value": value, "time": t, "node": node})
        return self

    def done(self, p, typ, f, value, t):
        self.ev.append({"process": p, "type": typ, "f": f, "key": self.key, "value": value,
                        "time": t})
        return self

    def op(self, p, f, arg, result, t0, t1, typ="ok"):
        self.inv(p, f, arg, t0)
        self.done(p, typ, f, result, t1)
        return self

    def sorted(self):
        return sorted(self.ev, key=lambda e: e["time"])


def verdict(h):
    return K.check_register(h.sorted())["k"]["valid"]


# ---- register: linearizable -----------------------------------------------------------------
def test_sequential_history_is_linearizable():
    h = Hist()
    h.op(1, "read", None, [0, None], 0, 1)
    h.op(1, "write", "a", 1, 2, 3)
    h.op(2, "read", None, [1, "a"], 4, 5)
    h.op(2, "cas", [1, "b"], 2, 6, 7)
    h.op(1, "cas", [1, "c"], False, 8, 9)
    h.op(1, "read", None, [2, "b"], 10, 11)
    assert verdict(h) is True


def test_concurrent_read_may_see_either_value():
    # The write of b overlaps both reads: one may see a, the other b, in real-time order.
    h = Hist()
    h.op(1, "write", "a", 1, 0, 1)
    h.inv(2, "write", "b", 2)
    h.op(3, "read", None, [1, "a"], 3, 4)
    h.op(3, "read", None, [2, "b"], 5, 6)
    h.done(2, "ok", "write", 2, 7)
    assert verdict(h) is True


def test_info_write_may_take_effect_late_or_never():
    h = Hist()
    h.op(1, "write", "a", 1, 0, 1)
    h.inv(2, "write", "b", 2).done(2, "info", "write", None, 3)
    h.op(3, "read", None, [1, "a"], 4, 5)
    h.op(3, "read", None, [2, "b"], 6, 7)  # the unknown write landed after the first read
    assert verdict(h) is True
    h2 = Hist()
    h2.op(1, "write", "a", 1, 0, 1)
    h2.inv(2, "write", "b", 2).done(2, "info", "write", None, 3)
    h2.op(3, "read", None, [1, "a"], 4, 5)  # ... or never
    assert verdict(h2) is True


def test_failed_write_is_ignored_and_info_cas_is_free():
    h = Hist()
    h.op(1, "write", "a", 1, 0, 1)
    h.op(2, "write", "x", None, 2, 3, typ="fail")
    h.inv(3, "cas", [5, "zz"], 4).done(3, "info", "cas", None, 5)  # could never apply
    h.op(1, "read", None, [1, "a"], 6, 7)
    assert verdict(h) is True


# ---- register: not linearizable ---------------------------------------------------------------
def test_stale_read_is_caught():
    # The write of b completed before the read began, yet the read returns a.
    h = Hist()
    h.op(1, "write", "a", 1, 0, 1)
    h.op(2, "write", "b", 2, 2, 3)
    h.op(3, "read", None, [1, "a"], 4, 5)
    r = K.check_register(h.sorted())["k"]
    assert r["valid"] is False
    assert r["cannot_place"]["f"] == "read"


def test_lost_acknowledged_write_is_caught():
    h = Hist()
    h.op(1, "write", "a", 1, 0, 1)
    h.op(2, "read", None, [0, None], 2, 3)
    assert verdict(h) is False


def test_read_of_value_never_written_is_caught():
    h = Hist()
    h.op(1, "write", "a", 1, 0, 1)
    h.op(2, "read", None, [1, "zz"], 2, 3)
    assert verdict(h) is False


def test_double_cas_success_is_caught():
    # Two cas from version 1 both succeed: only one can.
    h = Hist()
    h.op(1, "write", "a", 1, 0, 1)
    h.inv(2, "cas", [1, "b"], 2)
    h.inv(3, "cas", [1, "c"], 3)
    h.done(2, "ok", "cas", 2, 4)
    h.done(3, "ok", "cas", 2, 5)
    assert verdict(h) is False


def test_versions_must_count_writes():
    # Two acknowledged writes, the second says version 3: a phantom write in between
    # (no unknown write exists to explain it).
    h = Hist()
    h.op(1, "write", "a", 1, 0, 1)
    h.op(1, "write", "b", 3, 2, 3)
    assert verdict(h) is False
    # With an unknown write in flight the same history is fine.
    h.inv(2, "write", "c", 0.5).done(2, "info", "write", None, 0.7)
    assert verdict(h) is True


def test_non_monotonic_reads_are_caught():
    # Sequential reads see b then a, while a was written before b.
    h = Hist()
    h.op(1, "write", "a", 1, 0, 1)
    h.inv(2, "write", "b", 2)
    h.op(3, "read", None, [2, "b"], 3, 4)
    h.op(4, "read", None, [1, "a"], 5, 6)
    h.done(2, "ok", "write", 2, 7)
    assert verdict(h) is False


def test_random_sequential_histories_are_linearizable_and_mutations_are_not():
    """A simulated register run by concurrent clients against a real (atomic) register
    is linearizable; altering one read's result to a value never current makes it not."""
    rnd = random.Random(7)
    for trial in range(30):
        state = [0, None]
        ev = []
        t = 0
        pend = {}
        for i in range(40):
            p = rnd.randrange(4)
            t += 1
            if p in pend:
                f, arg, res = pend.pop(p)
                ev.append({"process": p, "type": "ok", "f": f, "key": "k", "value": res,
                           "time": t})
                continue
            f = rnd.choice(["read", "write", "cas"])
            if f == "read":
                arg, res = None, list(state)
            elif f == "write":
                arg = "v%d" % i
                state = [state[0] + 1, arg]
                res = state[0]
            else:
                exp = state[0] - rnd.randrange(2)
                arg = [exp, "c%d" % i]
                if exp == state[0]:
                    state = [state[0] + 1, arg[1]]
                    res = state[0]
                else:
                    res = False
            # Applied atomically at its invoke time, answered later.
            ev.append({"process": p, "type": "invoke", "f": f, "key": "k", "value": arg,
                       "time": t})
            pend[p] = (f, arg, res)
        for p, (f, arg, res) in pend.items():
            t += 1
            ev.append({"process": p, "type": "ok", "f": f, "key": "k", "value": res,
                       "time": t})
        assert K.check_register(ev)["k"]["valid"] is True, trial
        reads = [e for e in ev if e["type"] == "ok" and e["f"] == "read"]
        if reads:
            bad = [dict(e) for e in ev]
            victim = rnd.choice([i for i, e in enumerate(bad)
                                 if e["type"] == "ok" and e["f"] == "read"])
            bad[victim]["value"] = [99, "never"]
            assert K.check_register(bad)["k"]["valid"] is False, trial


def test_search_limit_reports_unknown():
    h = Hist()
    for i in range(18):
        h.inv(i, "write", "w%d" % i, i).done(i, "info", "write", None, 100 + i)
    h.op(99, "read", None, [18, "zz"], 200, 201)  # never true: forces the full search
    ops = K._ops_for_register(h.sorted())
    r = K.check_linearizable(ops, max_steps=1000)
    assert r["valid"] == "unknown"


# ---- append -----------------------------------------------------------------------------------
def _append_hist(acked, info=(), failed=()):
    ev, t = [], 0
    for i, k in enumerate(list(acked) + list(info) + list(failed)):
        typ = "ok" if k in acked else ("info" if k in info else "fail")
        ev.append({"process": i, "type": "invoke", "f": "add", "key": None, "value": k,
                   "time": t})
        ev.append({"process": i, "type": typ, "f": "add", "key": None, "value": None,
                   "time": t + 1})
        t += 2
    return ev


def test_append_all_present():
    h = _append_hist(["a", "b"], info=["c"])
    r = K.check_append(h, {"n1": {"a", "b", "c"}, "n2": {"a", "b", "c"}})
    assert r["valid"] and r["indeterminate_present"] == 1


def test_append_lost_unexpected_disagreeing_failed():
    h = _append_hist(["a", "b"], failed=["f"])
    assert not K.check_append(h, {"n1": {"a"}, "n2": {"a"}})["valid"]
    assert K.check_append(h, {"n1": {"a"}})["lost"] == {"n1": ["b"]}
    assert not K.check_append(h, {"n1": {"a", "b", "zz"}})["valid"]
    assert not K.check_append(h, {"n1": {"a", "b"}, "n2": {"a", "b", "f"}})["valid"]


# ---- tokens -----------------------------------------------------------------------------------
def _tok(ev, p, f, name, res, t0, t1, typ="ok"):
    ev.append({"process": p, "type": "invoke", "f": f, "key": None, "value": name,
               "time": t0, "node": "n1"})
    ev.append({"process": p, "type": typ, "f": f, "key": None, "value": res, "time": t1})


def test_tokens_valid():
    ev = []
    _tok(ev, 1, "create", "t1", "t1", 0, 1)
    _tok(ev, 1, "use", "t1", True, 2, 3)
    _tok(ev, 2, "revoke", "t1", None, 4, 6)
    _tok(ev, 3, "use", "t1", True, 5, 7)  # concurrent with the revoke: either is fine
    _tok(ev, 3, "use", "t1", False, 8, 9)
    r = K.check_tokens(sorted(ev, key=lambda e: e["time"]), {"t1": {"n1": False}})
    assert r["valid"], r


def test_tokens_use_after_revoke_and_lost_token():
    ev = []
    _tok(ev, 1, "create", "t1", "t1", 0, 1)
    _tok(ev, 2, "revoke", "t1", None, 2, 3)
    _tok(ev, 3, "use", "t1", True, 4, 5)
    r = K.check_tokens(sorted(ev, key=lambda e: e["time"]))
    assert not r["valid"] and "after its revoke" in r["violations"][0]["problem"]
    ev = []
    _tok(ev, 1, "create", "t2", "t2", 0, 1)
    _tok(ev, 3, "use", "t2", False, 2, 3)
    assert not K.check_tokens(ev)["valid"]
    ev = []
    _tok(ev, 1, "create", "t3", "t3", 0, 1)
    assert not K.check_tokens(ev, {"t3": {"n2": False}})["valid"]


# ---- transit ----------------------------------------------------------------------------------
def _ev(ev, p, f, arg, res, t0, t1, typ="ok", node="n1"):
    ev.append({"process": p, "type": "invoke", "f": f, "key": "k", "value": arg,
               "time": t0, "node": node})
    if typ is not None:
        ev.append({"process": p, "type": typ, "f": f, "key": "k", "value": res, "time": t1})


def _s(ev):
    return sorted(ev, key=lambda e: e["time"])


def test_transit_valid():
    ev = []
    _ev(ev, 1, "encrypt", "cA==", "vault:v1:aaa", 0, 1)
    _ev(ev, 2, "rotate", None, None, 2, 4)
    _ev(ev, 3, "encrypt", "cQ==", "vault:v1:bbb", 3, 5)  # concurrent with the rotate
    _ev(ev, 1, "read", None, 2, 6, 7)
    _ev(ev, 4, "rotate", None, None, 8, 20, typ="info")  # may apply late or never
    _ev(ev, 1, "read", None, 2, 9, 10)
    _ev(ev, 1, "decrypt", "vault:v1:aaa", "cA==", 11, 12)
    _ev(ev, 5, "encrypt", "cg==", "vault:v3:ccc", 13, 14)
    r = K.check_transit(_s(ev), 3, {"vault:v1:aaa": "cA==", "vault:v1:bbb": "cQ==",
                                    "vault:v3:ccc": "cg=="})
    assert r["valid"], r
    assert K.check_transit(_s(ev), 2)["valid"]  # the info rotate never applied


def test_transit_lost_rotate_and_bad_decrypts_are_caught():
    ev = []
    _ev(ev, 1, "rotate", None, None, 0, 1)
    _ev(ev, 2, "encrypt", "cA==", "vault:v1:aaa", 2, 3)  # v1 after an acknowledged rotate
    r = K.check_transit(_s(ev))
    assert not r["valid"] and "lost rotate" in r["violations"][0]["problem"]
    ev = []
    _ev(ev, 1, "rotate", None, None, 0, 1)
    assert not K.check_transit(_s(ev), final_version=1)["valid"]  # lost after healing
    assert not K.check_transit(_s(ev), final_version=3)["valid"]  # from nowhere
    assert K.check_transit(_s(ev), final_version=2)["valid"]
    ev = []
    _ev(ev, 1, "read", None, 3, 0, 1)  # no rotate was ever invoked
    assert not K.check_transit(_s(ev))["valid"]
    ev = []
    _ev(ev, 1, "rotate", None, None, 0, 10, typ="info")
    _ev(ev, 2, "read", None, 2, 1, 2)
    _ev(ev, 3, "read", None, 1, 3, 4)  # went back: not monotonic
    r = K.check_transit(_s(ev))
    assert not r["valid"] and "monotonic" in r["violations"][0]["problem"]
    ev = []
    _ev(ev, 1, "encrypt", "cA==", "vault:v1:aaa", 0, 1)
    _ev(ev, 2, "decrypt", "vault:v1:aaa", {"error": "400 invalid ciphertext"}, 2, 3)
    assert not K.check_transit(_s(ev))["valid"]
    ev = []
    _ev(ev, 1, "encrypt", "cA==", "vault:v1:aaa", 0, 1)
    assert not K.check_transit(_s(ev), 1, {"vault:v1:aaa": {"error": "x"}})["valid"]


# ---- PKI ----------------------------------------------------------------------------------------
def test_pki_valid():
    ev = []
    _ev(ev, 1, "issue", "a", "0a:01", 0, 1)
    _ev(ev, 1, "issue", "b", "0a:02", 2, 3)
    _ev(ev, 1, "issue", "c", "0a:03", 4, 5)
    _ev(ev, 1, "revoke", "0a:01", None, 6, 7)
    _ev(ev, 2, "revoke", "0a:02", None, 6, 9, typ="info")  # may or may not be in the CRL
    r = K.check_pki(_s(ev), {"n1": {0xa01, 0xa02, 0x77}, "n2": {0xa01}})  # 77: another round
    assert r["valid"], r
    assert r["issued"] == 3 and r["revoked"] == 1


def test_pki_duplicate_serial_missing_and_phantom_revocations_are_caught():
    ev = []
    _ev(ev, 1, "issue", "a", "0a:01", 0, 1)
    _ev(ev, 2, "issue", "b", "0a:01", 0, 2)
    assert not K.check_pki(_s(ev))["valid"]
    ev = []
    _ev(ev, 1, "issue", "a", "0a:01", 0, 1)
    _ev(ev, 1, "revoke", "0a:01", None, 2, 3)
    r = K.check_pki(_s(ev), {"n1": {0xa01}, "n2": set()})
    assert not r["valid"] and r["violations"][0]["node"] == "n2"
    ev = []
    _ev(ev, 1, "issue", "a", "0a:01", 0, 1)
    _ev(ev, 1, "revoke", "0a:01", None, 2, 3, typ="fail")  # certainly not revoked
    assert not K.check_pki(_s(ev), {"n1": {0xa01}})["valid"]


# ---- expiring tokens ------------------------------------------------------------------------------
def test_expiry_valid():
    ev = []
    _ev(ev, 1, "create", None, "t1", 0, 1)
    _ev(ev, 1, "use", "t1", True, 2, 3)
    _ev(ev, 2, "use", "t1", True, 10, 12)  # past the TTL but not yet refused: a clock
    _ev(ev, 1, "use", "t1", False, 13, 14)
    _ev(ev, 1, "use", "t1", False, 15, 16)
    r = K.check_expiry(_s(ev), 5, {"t1": {"n1": False, "n2": False}})
    assert r["valid"], r


def test_expiry_token_working_again_is_caught():
    ev = []
    _ev(ev, 1, "create", None, "t1", 0, 1)
    _ev(ev, 1, "use", "t1", False, 10, 11)
    _ev(ev, 2, "use", "t1", True, 12, 13)
    r = K.check_expiry(_s(ev), 5)
    assert not r["valid"] and "again" in r["violations"][0]["problem"]
    ev = []
    _ev(ev, 1, "create", None, "t1", 0, 1)
    assert not K.check_expiry(_s(ev), 5, {"t1": {"n3": True}})["valid"]
    # created while a node's clock ran ahead: it expires by that clock; not judged
    assert K.check_expiry(_s(ev), 5, {"t1": {"n3": True}}, skewed=[(0, 10)])["valid"]
