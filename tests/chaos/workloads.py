"""Workload clients for the fault campaign. Each records a history (checkers.py) of
invoke / ok / fail / info events with monotonic timestamps.

Outcome rules (conservative: when in doubt, info):
  - the connection was refused, or the connect timed out: fail (nothing was sent);
  - 2xx: ok;  4xx: fail (a cas mismatch is an ok cas with result False; a 403 on a
    token use is an ok use with result False);
  - 5xx, a read timeout, a reset after sending: info for an operation with an effect;
    fail for reads and uses, which have none.
After an info the client continues under a fresh process id (Jepsen's rule: one
process, one operation at a time, and an unknown outcome ends the process).
"""

import base64
import itertools
import json
import random
import threading
import time

import requests

CONNECT_TIMEOUT = 1.0
READ_TIMEOUT = 15.0  # above the 10 s a standby holds a request while no node is active

_pids = itertools.count(1)
_pid_lock = threading.Lock()


def new_pid():
    with _pid_lock:
        return next(_pids)


class Recorder:
    """A thread-safe history; events also go to a JSON-lines file."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.events = []
        self.f = open(path, "a")

    def add(self, **e):
        e["time"] = time.monotonic_ns()
        with self.lock:
            self.events.append(e)
            self.f.write(json.dumps(e, sort_keys=True) + "\n")
        return e

    def close(self):
        self.f.close()


class Outcome:
    OK, FAIL, INFO = "ok", "fail", "info"


def http(session, method, url, token, body=None):
    """(status, json body or None, exception class name or None)."""
    try:
        r = session.request(method, url, json=body, headers={"X-Vault-Token": token},
                            timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), allow_redirects=False)
    except requests.ConnectTimeout:
        return None, None, "connect-timeout"
    except requests.ConnectionError as e:
        s = repr(e)
        if "Connection refused" in s or "NewConnectionError" in s:
            return None, None, "refused"
        return None, None, "reset"
    except requests.Timeout:
        return None, None, "timeout"
    except requests.RequestException as e:
        return None, None, type(e).__name__
    try:
        js = r.json() if r.content else None
    except ValueError:
        js = None
    return r.status_code, js, None


def classify(status, err, effect=True):
    if err in ("refused", "connect-timeout"):
        return Outcome.FAIL
    if err is not None:
        return Outcome.INFO if effect else Outcome.FAIL
    if 200 <= status < 300:
        return Outcome.OK
    if 400 <= status < 500:
        return Outcome.FAIL
    return Outcome.INFO if effect else Outcome.FAIL


class Worker(threading.Thread):
    """A client thread with a target picker: haproxy (about half the time) or a random
    node directly."""

    def __init__(self, name, rec, targets, token, seed, stats):
        super().__init__(daemon=True, name=name)
        self.rec, self.targets, self.token = rec, targets, token
        self.rnd = random.Random(seed)
        self.stop_ev = threading.Event()
        self.s = requests.Session()
        self.s.trust_env = False
        self.pid = new_pid()
        self.stats = stats
        self.error = None

    def target(self):
        """(label, base url)."""
        if self.rnd.random() < 0.5:
            return self.targets[0]
        return self.rnd.choice(self.targets[1:])

    def call(self, method, path, body=None, target=None):
        label, base = target or self.target()
        st, js, err = http(self.s, method, base + "/v1/" + path, self.token, body)
        if err is not None:
            self.s.close()
            self.s = requests.Session()
            self.s.trust_env = False
        return label, st, js, err

    def invoke(self, f, key, value, node):
        return self.rec.add(process=self.pid, type="invoke", f=f, key=key, value=value,
                            node=node)

    def complete(self, typ, f, key, value, why=None):
        self.rec.add(process=self.pid, type=typ, f=f, key=key, value=value, why=why)
        self.stats[typ] = self.stats.get(typ, 0) + 1
        if typ == Outcome.INFO:
            self.pid = new_pid()

    def run(self):
        try:
            while not self.stop_ev.is_set():
                self.step()
                time.sleep(self.rnd.uniform(0.005, 0.03))
        except Exception as e:  # a bug in the workload itself: surface it
            self.error = repr(e)
            raise

    def stop(self):
        self.stop_ev.set()


def _why(st, js, err):
    if err:
        return err
    if isinstance(js, dict) and js.get("errors"):
        return "%s %s" % (st, "; ".join(str(x) for x in js["errors"])[:120])
    return str(st)


class RegisterWorker(Worker):
    """KV v2 keys of mount `reg` as versioned registers: read, write, cas. Keys come
    from a shared KeySpace so several workers contend on each key."""

    def __init__(self, keyspace, *a, **kw):
        super().__init__(*a, **kw)
        self.keys = keyspace
        self.seen = {}  # key -> last version this worker saw
        self.n = 0

    def step(self):
        key = self.keys.pick(self.rnd)
        r = self.rnd.random()
        label, base = self.target()
        if r < 0.45:
            self.invoke("read", key, None, label)
            _, st, js, err = self.call("GET", "reg/data/" + key, target=(label, base))
            # KV v2's "no such key" is a 404 with no error message; a 404 that says
            # something ("no handler for route") is not an answer about the key.
            if st == 404 and err is None and not (js or {}).get("errors"):
                self.complete(Outcome.OK, "read", key, [0, None])
                return
            out = classify(st, err, effect=False)
            if out == Outcome.OK:
                d = js["data"]
                v = [d["metadata"]["version"], (d.get("data") or {}).get("v")]
                self.seen[key] = v[0]
                self.complete(out, "read", key, v)
            else:
                self.complete(out, "read", key, None, _why(st, js, err))
            return
        self.n += 1
        val = "p%d-%d" % (self.pid, self.n)
        if r < 0.75:
            self.invoke("write", key, val, label)
            _, st, js, err = self.call("POST", "reg/data/" + key, {"data": {"v": val}},
                                       target=(label, base))
            out = classify(st, err)
            res = js["data"]["version"] if out == Outcome.OK else None
            self.complete(out, "write", key, res, None if out == Outcome.OK
                          else _why(st, js, err))
            return
        exp = self.seen.get(key, 0)
        self.invoke("cas", key, [exp, val], label)
        _, st, js, err = self.call("POST", "reg/data/" + key,
                                   {"options": {"cas": exp}, "data": {"v": val}},
                                   target=(label, base))
        if st == 400 and err is None and "check-and-set" in json.dumps(js):
            self.complete(Outcome.OK, "cas", key, False)
            return
        out = classify(st, err)
        res = js["data"]["version"] if out == Outcome.OK else None
        self.complete(out, "cas", key, res, None if out == Outcome.OK else _why(st, js, err))


class KeySpace:
    """The register keys of one round: `width` live keys, each retired after `per_key`
    operations were picked for it (bounded histories keep the search cheap)."""

    def __init__(self, prefix, width=3, per_key=80):
        self.prefix, self.width, self.per_key = prefix, width, per_key
        self.lock = threading.Lock()
        self.next = 0
        self.live = {}
        self.all = []
        for _ in range(width):
            self._new()

    def _new(self):
        k = "%s-%d" % (self.prefix, self.next)
        self.next += 1
        self.live[k] = 0
        self.all.append(k)

    def pick(self, rnd):
        with self.lock:
            k = rnd.choice(sorted(self.live))
            self.live[k] += 1
            if self.live[k] >= self.per_key:
                del self.live[k]
                self._new()
            return k


class AppendWorker(Worker):
    """Unique keys written once each under app/<round>/ (KV v1)."""

    def __init__(self, prefix, *a, **kw):
        super().__init__(*a, **kw)
        self.prefix = prefix
        self.n = 0

    def step(self):
        self.n += 1
        k = "w%d-%d" % (self.pid, self.n)
        label, base = self.target()
        self.invoke("add", None, k, label)
        _, st, js, err = self.call("PUT", "app/%s/%s" % (self.prefix, k), {"v": k},
                                   target=(label, base))
        out = classify(st, err)
        self.complete(out, "add", None, None, None if out == Outcome.OK else _why(st, js, err))


class TokenWorker(Worker):
    """Create a token, use it, revoke it, use it again. Names in the history are the
    tokens' accessors; the secrets stay in memory (self.tokens) for the final check."""

    def __init__(self, tokens, *a, **kw):
        super().__init__(*a, **kw)
        self.tokens = tokens  # shared: accessor -> secret

    def use(self, acc, secret):
        label, base = self.target()
        self.invoke("use", None, acc, label)
        st, js, err = http(self.s, "GET", base + "/v1/auth/token/lookup-self", secret)
        if err is not None:
            self.s.close()
            self.s = requests.Session()
            self.s.trust_env = False
        if err is None and st == 200:
            self.complete(Outcome.OK, "use", None, True)
        elif err is None and st == 403:
            self.complete(Outcome.OK, "use", None, False)
        else:
            self.complete(Outcome.FAIL, "use", None, None, _why(st, js, err))

    def step(self):
        label, base = self.target()
        self.invoke("create", None, None, label)
        _, st, js, err = self.call("POST", "auth/token/create",
                                   {"policies": ["default"], "ttl": "2h"},
                                   target=(label, base))
        out = classify(st, err)
        if out != Outcome.OK:
            self.complete(out, "create", None, None, _why(st, js, err))
            return
        acc, secret = js["auth"]["accessor"], js["auth"]["client_token"]
        self.tokens[acc] = secret
        self.complete(out, "create", None, acc)
        for _ in range(self.rnd.randrange(1, 3)):
            self.use(acc, secret)
        if self.stop_ev.is_set():
            return
        label, base = self.target()
        self.invoke("revoke", None, acc, label)
        _, st, js, err = self.call("POST", "auth/token/revoke-accessor", {"accessor": acc},
                                   target=(label, base))
        out = classify(st, err)
        self.complete(out, "revoke", None, None, None if out == Outcome.OK
                      else _why(st, js, err))
        for _ in range(self.rnd.randrange(1, 4)):
            self.use(acc, secret)


class TransitWorker(Worker):
    """One transit key per round (mount `transit`), shared by the transit workers:
    rotate, encrypt, decrypt (of ciphertexts any worker got), read the key's version.
    Ciphertexts and their plaintexts go into `issued` for the check after healing."""

    def __init__(self, key, issued, *a, **kw):
        super().__init__(*a, **kw)
        self.key = key
        self.issued = issued  # shared: ciphertext -> plaintext (base64)
        self.n = 0

    def step(self):
        r = self.rnd.random()
        label, base = self.target()
        k = self.key
        if r < 0.1:
            self.invoke("rotate", k, None, label)
            _, st, js, err = self.call("POST", "transit/keys/%s/rotate" % k, {},
                                       target=(label, base))
            out = classify(st, err)
            self.complete(out, "rotate", k, None, None if out == Outcome.OK
                          else _why(st, js, err))
        elif r < 0.55 or not self.issued:
            self.n += 1
            pt = base64.b64encode(("p%d-%d" % (self.pid, self.n)).encode()).decode()
            self.invoke("encrypt", k, pt, label)
            _, st, js, err = self.call("POST", "transit/encrypt/" + k, {"plaintext": pt},
                                       target=(label, base))
            out = classify(st, err, effect=False)
            if out == Outcome.OK:
                ct = js["data"]["ciphertext"]
                self.issued[ct] = pt
                self.complete(out, "encrypt", k, ct)
            else:
                self.complete(out, "encrypt", k, None, _why(st, js, err))
        elif r < 0.85:
            ct = self.rnd.choice(list(self.issued))
            self.invoke("decrypt", k, ct, label)
            _, st, js, err = self.call("POST", "transit/decrypt/" + k, {"ciphertext": ct},
                                       target=(label, base))
            if err is None and st == 200:
                self.complete(Outcome.OK, "decrypt", k, js["data"]["plaintext"])
            elif err is None and st == 400:
                # The node refused a ciphertext this key issued: recorded for the checker.
                self.complete(Outcome.OK, "decrypt", k, {"error": _why(st, js, err)})
            else:
                self.complete(Outcome.FAIL, "decrypt", k, None, _why(st, js, err))
        else:
            self.invoke("read", k, None, label)
            _, st, js, err = self.call("GET", "transit/keys/" + k, target=(label, base))
            out = classify(st, err, effect=False)
            if out == Outcome.OK:
                self.complete(out, "read", k, js["data"]["latest_version"])
            else:
                self.complete(out, "read", k, None, _why(st, js, err))


class PkiWorker(Worker):
    """Issue short-lived certificates from role `chaos` of mount `pki` and revoke some
    of them; serials go into the history."""

    def __init__(self, prefix, *a, **kw):
        super().__init__(*a, **kw)
        self.prefix = prefix
        self.mine = []  # serials this worker was issued and has not tried to revoke
        self.n = 0

    def step(self):
        label, base = self.target()
        if self.mine and self.rnd.random() < 0.4:
            serial = self.mine.pop(self.rnd.randrange(len(self.mine)))
            self.invoke("revoke", None, serial, label)
            _, st, js, err = self.call("POST", "pki/revoke", {"serial_number": serial},
                                       target=(label, base))
            out = classify(st, err)
            self.complete(out, "revoke", None, None, None if out == Outcome.OK
                          else _why(st, js, err))
            return
        self.n += 1
        cn = "%s-p%d-%d.chaos.test" % (self.prefix, self.pid, self.n)
        self.invoke("issue", None, cn, label)
        _, st, js, err = self.call("POST", "pki/issue/chaos", {"common_name": cn, "ttl": "2h"},
                                   target=(label, base))
        out = classify(st, err)
        if out == Outcome.OK:
            serial = js["data"]["serial_number"]
            self.mine.append(serial)
            self.complete(out, "issue", None, serial)
        else:
            self.complete(out, "issue", None, None, _why(st, js, err))


EXPIRY_TTL_S = 3


class ExpiryWorker(Worker):
    """Tokens with a short TTL (EXPIRY_TTL_S), used until a while after they expire:
    an expired token must never work again (the lease's expiry is one-way)."""

    def __init__(self, tokens, *a, **kw):
        super().__init__(*a, **kw)
        self.tokens = tokens  # shared: accessor -> (secret, acknowledged at, monotonic s)
        self.live = []

    def use(self, acc, secret):
        label, base = self.target()
        self.invoke("use", None, acc, label)
        st, js, err = http(self.s, "GET", base + "/v1/auth/token/lookup-self", secret)
        if err is not None:
            self.s.close()
            self.s = requests.Session()
            self.s.trust_env = False
        if err is None and st in (200, 403):
            self.complete(Outcome.OK, "use", None, st == 200)
        else:
            self.complete(Outcome.FAIL, "use", None, None, _why(st, js, err))

    def step(self):
        now = time.monotonic()
        self.live = [x for x in self.live if now - x[2] < EXPIRY_TTL_S * 3]
        if len(self.live) < 3:
            label, base = self.target()
            self.invoke("create", None, None, label)
            _, st, js, err = self.call("POST", "auth/token/create",
                                       {"policies": ["default"], "ttl": "%ds" % EXPIRY_TTL_S,
                                        "explicit_max_ttl": "%ds" % EXPIRY_TTL_S,
                                        "renewable": False}, target=(label, base))
            out = classify(st, err)
            if out != Outcome.OK:
                self.complete(out, "create", None, None, _why(st, js, err))
                return
            acc, secret = js["auth"]["accessor"], js["auth"]["client_token"]
            self.complete(out, "create", None, acc)
            self.tokens[acc] = (secret, time.monotonic())
            self.live.append((acc, secret, time.monotonic()))
            return
        acc, secret, _ = self.rnd.choice(self.live)
        self.use(acc, secret)
        time.sleep(self.rnd.uniform(0.05, 0.2))
