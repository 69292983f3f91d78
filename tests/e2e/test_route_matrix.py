"""Route x token matrix (issue 9 §3): every row of every path table, checked against the ACL.

The rows come from the binary itself (`custos server -list-routes`: every registered
backend, every variant a mount can select, mount-relative patterns, operations, flags and
a sample path that the binary's own router sends to that row), never from a hand list,
so a row added tomorrow is checked tomorrow. On a -dev server with one mount of each
backend type, for every row and every operation with a handler:

  phase 1  no token, a token whose only policy does not exist, and a token with only the
           `default` policy: 403 "permission denied" everywhere, except the rows flagged
           unauthenticated and, for the default token, what the default policy (read from
           the server, evaluated here by a small independent ACL oracle) grants; an
           unauthenticated row that reads a token it is sent (opt_token) refuses an
           unknown one;
  phase 2  a token whose one policy names exactly that concrete path with every
           capability and sudo: anything but 403 "permission denied" (400/404/405 from the
           handler are fine: the ACL let it through).

The unauthenticated rows are also compared with Vault's own lists (OpenBao's
PathsSpecial.Unauthenticated of each backend plus its HTTP-layer handlers): a row that
custos serves without a token and Vault does not fails, unless it is in
CUSTOS_ONLY_UNAUTH with the reason.

Honours CUSTOS_BIN, so the lead runs it under ASan with build-asan/custos.
"""

import json
import re
import subprocess

import pytest

import custos_harness as H

ALL_CAPS = ["create", "read", "update", "delete", "list", "patch", "sudo"]
DENIED = "permission denied"

# Vault's unauthenticated paths, mount-relative, per backend type, in Vault's glob syntax
# (a trailing '*' is a prefix). Source: OpenBao
#   internal/vault/logical_system.go  PathsSpecial.Unauthenticated (the system backend)
#   internal/http/handler.go          handlers that run without a token: sys/init,
#                                     seal-status, unseal, leader, health,
#                                     storage/raft/join, storage/raft/bootstrap
#   internal/builtin/credential/userpass/backend.go  "login/*"
#   internal/builtin/credential/approle/backend.go   "login"
# rekey/* and generate-root/* are unauthenticated in Vault only with the listener options
# disable_unauthed_rekey_endpoints / disable_unauthed_generate_root_endpoints = false.
VAULT_UNAUTH = {
    "system": [
        "wrapping/lookup", "wrapping/pubkey", "replication/status", "internal/specs/openapi",
        "internal/ui/mounts", "internal/ui/mounts/*", "internal/ui/namespaces",
        "storage/raft/bootstrap/challenge", "storage/raft/bootstrap/answer",
        "storage/raft/bootstrap", "storage/raft/join",
        "init", "seal-status", "unseal", "leader", "health", "decode-token", "mfa/validate",
        "rekey/init", "rekey/update", "rekey/verify",
        "rekey-recovery-key/init", "rekey-recovery-key/update", "rekey-recovery-key/verify",
        "generate-root/attempt", "generate-root/update",
    ],
    "token": [],
    "kv": [],
    "cubbyhole": [],
    # OpenBao vault/identity_store.go PathsSpecial.Unauthenticated
    "identity": ["oidc/.well-known/*", "oidc/provider/+/.well-known/*", "oidc/provider/+/token"],
    "userpass": ["login/*"],
    "approle": ["login"],
    # internal/builtin/logical/pki/backend.go
    "pki": [
        "cert/*", "ca/pem", "ca_chain", "ca", "crl/delta", "crl/delta/pem", "crl/pem", "crl",
        "issuer/+/crl/der", "issuer/+/crl/pem", "issuer/+/crl", "issuer/+/crl/delta/der",
        "issuer/+/crl/delta/pem", "issuer/+/crl/delta", "issuer/+/pem", "issuer/+/der",
        "issuer/+/json", "issuers/", "ocsp", "ocsp/*",
    ] + [
        # backend.go adds these for each ACME directory prefix (acme/new-eab stays
        # authenticated)
        prefix + "acme/" + p
        for prefix in ("", "issuer/+/", "roles/+/", "issuer/+/roles/+/")
        for p in ("directory", "new-nonce", "new-account", "new-order", "revoke-cert",
                  "key-change", "account/+", "authorization/+", "challenge/+/+", "orders",
                  "order/+", "order/+/finalize", "order/+/cert")
    ],
}

# Rows custos serves without a token although Vault does not: (type, pattern) -> why.
CUSTOS_ONLY_UNAUTH = {
    # Vault checks a client token here and grants the call through the response-wrapping
    # policy of the wrapping token itself (or the default policy for a token in the body).
    # custos lets the handler validate the wrapping token (body or X-Vault-Token) instead:
    # the wrapping token is the credential, it is single-use, and nothing but its own
    # wrapped response is reachable with it, so the outcome is the same.
    ("system", "wrapping/unwrap"):
        "the handler validates the wrapping token; equivalent to Vault's wrapping policy",
}

# (type, pattern, op) whose success would break the shared fixture. They run with
# phase 1 like every row (they must be refused there), and in phase 2 each on a fresh
# -dev server of its own. A row that turns out to break the fixture without being listed
# here fails the test with a message that says so.
DESTRUCTIVE = {
    ("system", "seal", "update"): "seals the node: every later request would get 503",
    ("system", "step-down", "update"): "gives up leadership: the node is not active for a while",
    ("system", "step-down", "create"): "gives up leadership: the node is not active for a while",
}

METHOD = {"read": "GET", "list": "LIST", "create": "POST", "update": "POST",
          "delete": "DELETE", "patch": "PATCH"}
# The capability the ACL wants for each operation (a POST is create or update: the
# existence check decides, see cap_candidates).
OP_CAP = {"read": "read", "list": "list", "create": "create", "update": "update",
          "delete": "delete", "patch": "patch"}


# ---------------------------------------------------------------------------- listing
def list_routes():
    p = subprocess.run([H.BIN, "server", "-list-routes"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60)
    assert p.returncode == 0, "custos server -list-routes: %s %s" % (p.returncode, p.stderr)
    return H.json_or_fail(p.stdout, "custos server -list-routes")["backends"]


@pytest.fixture(scope="module")
def routes():
    return list_routes()


def backend_key(b):
    """("kv", "2") for a kv v2 variant, ("kv", None) for the plain kv, ..."""
    return b["type"], ((b.get("options") or {}).get("version"))


def vault_glob_match(pattern, path):
    # '+' is one whole segment (Vault's PathsSpecial); a LIST is checked as "path/"
    if "+" in pattern:
        rx = "/".join("[^/]+" if seg == "+" else re.escape(seg) for seg in pattern.split("/"))
        if pattern.endswith("*"):
            return re.match(rx[:-2], path) is not None
        return re.fullmatch(rx, path) is not None or re.fullmatch(rx, path + "/") is not None
    if pattern.endswith("*"):
        return path.startswith(pattern[:-1])
    return path == pattern or path + "/" == pattern


def test_listing_covers_every_row(routes):
    types = [b["type"] for b in routes]
    for t in ("system", "token", "kv", "userpass", "approle", "cubbyhole"):
        assert t in types, "backend %s missing from -list-routes: %s" % (t, types)
    assert ("kv", "2") in [backend_key(b) for b in routes], "kv v2 variant not listed"
    for b in routes:
        assert b["paths"], b["type"]
        for p in b["paths"]:
            # A row no path can reach is dead code or a shadowing bug in the table order.
            assert p["sample"] is not None, "%s row %r is shadowed by an earlier row" % (
                b["type"], p["pattern"])
            assert p["ops"], "%s row %r has no handler" % (b["type"], p["pattern"])
            assert set(p["ops"]) <= set(METHOD), p
            assert not [f for f in p["flags"] if f.startswith("0x")], (
                "unnamed flag bits in %s %r: name them in server/routes.c" % (b["type"], p))
            if "opt_token" in p["flags"]:
                assert "unauth" in p["flags"], p


def test_list_unauthenticated_agrees_with_listing(routes):
    out = H.run_cli(["server", "-list-unauthenticated"])
    assert out.returncode == 0, out.stderr
    lines = sorted(l for l in out.stdout.splitlines() if l.strip())
    want = []
    for b in routes:
        for p in b["paths"]:
            if "unauth" in p["flags"]:
                prefix = "sys/" if b["type"] == "system" else "%s:%s/" % (
                    "auth/" if b["is_auth"] else "", b["type"])
                want.append("%s%s\t%s\t%s" % (prefix, p["pattern"], ",".join(p["ops"]), b["type"]))
    assert lines == sorted(want)


def test_unauthenticated_routes_are_vaults(routes):
    """Every route served without a token is one Vault serves without a token."""
    extra, unknown = [], []
    for b in routes:
        for p in b["paths"]:
            if "unauth" not in p["flags"]:
                continue
            if b["type"] not in VAULT_UNAUTH:
                unknown.append((b["type"], p["pattern"]))
                continue
            if any(vault_glob_match(g, p["sample"]) for g in VAULT_UNAUTH[b["type"]]):
                continue
            if (b["type"], p["pattern"]) in CUSTOS_ONLY_UNAUTH:
                continue
            extra.append((b["type"], p["pattern"]))
    assert not unknown, ("unauthenticated rows of a backend type without Vault's list here "
                         "(add its PathsSpecial.Unauthenticated to VAULT_UNAUTH): %s" % unknown)
    assert not extra, ("routes served without a token that Vault authenticates "
                       "(fix the row's flags, or justify it in CUSTOS_ONLY_UNAUTH): %s" % extra)
    # The allowlist holds only rows that still exist and are still unauthenticated.
    live = {(b["type"], p["pattern"]) for b in routes for p in b["paths"] if "unauth" in p["flags"]}
    assert set(CUSTOS_ONLY_UNAUTH) <= live, set(CUSTOS_ONLY_UNAUTH) - live


# ---------------------------------------------------------------------------- default policy oracle
class PolicyOracle:
    """Vault's ACL lookup for capabilities only (no parameters), over `path` blocks whose
    only key is `capabilities` - enough for the built-in default policy. Rules: exact,
    then the best of the longest prefix ('*') and the segment ('+') rules, ranked as Vault
    ranks them; templated paths never match (no identity store)."""

    BLOCK = re.compile(r'path\s+"([^"]+)"\s*\{([^{}]*)\}', re.S)
    CAPS = re.compile(r'^\s*capabilities\s*=\s*\[([^\]]*)\]\s*$', re.S)

    def __init__(self, text):
        body = re.sub(r"#[^\n]*", "", text)
        self.rules = []
        for path, inner in self.BLOCK.findall(body):
            m = self.CAPS.match(inner)
            assert m, "default policy block for %r has more than capabilities: %r" % (path, inner)
            caps = set(re.findall(r'"([^"]+)"', m.group(1)))
            if "{{" in path:
                continue
            self.rules.append((path, caps))
        rest = self.BLOCK.sub("", body).strip()
        assert not rest, "default policy text the oracle does not understand: %r" % rest[:200]

    def _exact(self, path):
        caps = None
        for p, c in self.rules:
            if "+" not in p and not p.endswith("*") and p == path:
                caps = (caps or set()) | c
        return caps

    def _nonexact(self, path):
        best, best_caps = None, None
        parts = path.split("/")
        for p, c in self.rules:
            prefix = p.endswith("*")
            body = p[:-1] if prefix else p
            if "+" not in p:
                if not prefix or not path.startswith(body):
                    continue
                rank = (len(body), True, 0, len(body), p)
            else:
                segs = body.split("/")
                if len(parts) < len(segs) or (not prefix and len(parts) != len(segs)):
                    continue
                ok = True
                for i, s in enumerate(segs):
                    if s == "+" or s == parts[i]:
                        continue
                    if prefix and i == len(segs) - 1 and parts[i].startswith(s):
                        continue
                    ok = False
                if not ok:
                    continue
                rank = (p.index("+"), not prefix, -segs.count("+"), len(body), p)
            if best is None or rank > best:
                best, best_caps = rank, c
        return best_caps

    def caps(self, path, is_list):
        c = self._exact(path)
        if c is None and is_list and path.endswith("/"):
            c = self._exact(path[:-1])
            if c is None:
                c = self._nonexact(path[:-1])
        if c is None:
            c = self._nonexact(path)
        c = c or set()
        return set() if "deny" in c else c


def cap_candidates(op, row):
    """The capabilities the ACL may ask for one request: a POST to a row with an existence
    check and a create handler asks for create or update depending on the data."""
    if op in ("create", "update"):
        if row["exists_check"] and "create" in row["ops"]:
            return {"create", "update"}
        return {"update"}
    return {OP_CAP[op]}


# ---------------------------------------------------------------------------- fixture
class Fixture:
    def __init__(self, srv, routes):
        self.srv = srv
        self.root = srv.root_token
        self.routes = routes
        self.mounts = {}  # backend_key -> mount path with trailing '/'
        self.n = 0

    def req(self, method, path, token=None, body=None):
        headers = {}
        kw = {}
        if method == "PATCH":
            headers["Content-Type"] = "application/merge-patch+json"
            kw["data"] = json.dumps(body if body is not None else {})
        elif method in ("POST", "PUT"):
            kw["json"] = body if body is not None else {}
        return self.srv.request(method, path, token=token, headers=headers, **kw)

    def ok(self, method, path, body=None, codes=(200, 204)):
        r = self.req(method, path, token=self.root, body=body)
        assert r.status_code in codes, (method, path, r.status_code, r.text)
        return r

    def mount_all(self):
        mounts = self.ok("GET", "sys/mounts").json()["data"]
        auths = self.ok("GET", "sys/auth").json()["data"]
        for b in self.routes:
            key = backend_key(b)
            if b.get("mount"):
                self.mounts[key] = b["mount"]
                continue
            table, prefix = (auths, "auth/") if b["is_auth"] else (mounts, "")
            found = None
            for path, m in sorted(table.items()):
                version = (m.get("options") or {}).get("version")
                if m["type"] == b["type"] and (version in (None, "1")) == (key[1] in (None, "1")):
                    found = prefix + path
                    break
            if not found:
                name = "mx-%s%s" % (b["type"], "-v" + key[1] if key[1] else "")
                body = {"type": b["type"]}
                if b.get("options"):
                    body["options"] = b["options"]
                self.ok("POST", ("sys/auth/" if b["is_auth"] else "sys/mounts/") + name, body=body)
                found = prefix + name + "/"
            self.mounts[key] = found

    def concrete(self, b, row):
        return self.mounts[backend_key(b)] + row["sample"]

    def policy_text(self, name):
        r = self.ok("GET", "sys/policy/" + name)
        d = r.json()
        return (d.get("data") or {}).get("rules") or d.get("rules")

    def token(self, policies, no_default=True):
        r = self.ok("POST", "auth/token/create",
                    body={"policies": policies, "no_default_policy": no_default, "ttl": "1h"})
        return r.json()["auth"]["client_token"]

    def token_for_path(self, path):
        self.n += 1
        name = "mx-path-%04d" % self.n
        text = 'path "%s" {\n  capabilities = %s\n}\n' % (path, json.dumps(ALL_CAPS))
        self.ok("PUT", "sys/policy/" + name, body={"policy": text})
        return self.token([name])

    def token_valid(self, tok):
        r = self.req("POST", "auth/token/lookup", token=self.root, body={"token": tok})
        return r.status_code == 200

    def check_intact(self, what, tokens=()):
        r = self.srv.get("sys/health")
        assert r.status_code == 200, "%s broke the fixture (sys/health %s %s); if it is meant " \
            "to, list it in DESTRUCTIVE with the reason" % (what, r.status_code, r.text[:200])
        r = self.req("GET", "auth/token/lookup-self", token=self.root)
        assert r.status_code == 200, "%s broke the root token: %s" % (what, r.text[:200])
        for t in tokens:
            assert self.token_valid(t), "%s revoked a shared test token" % what


def is_denied(r):
    if r.status_code != 403:
        return False
    try:
        errors = r.json().get("errors") or []
    except ValueError:
        return False
    # "permission denied", or Vault's multierror form "1 error occurred:\n\t* permission
    # denied\n\n" (which custos copies where Vault answers so).
    return any(isinstance(e, str) and DENIED in e for e in errors)


def requests_of(b, row):
    """(op label, method) per request to send for a row: one POST covers create+update."""
    out, seen = [], set()
    for op in row["ops"]:
        m = METHOD[op]
        if m in seen:
            continue
        seen.add(m)
        out.append((op, m))
    return out


def start_dev(server_factory):
    tok = "root-" + H.uid()[:12]
    srv = server_factory(dev=True, dev_root_token=tok)
    H.wait_active(srv)
    return srv


@pytest.mark.timeout_s(900)
def test_route_token_matrix(server_factory, routes):
    srv = start_dev(server_factory)
    fx = Fixture(srv, routes)
    fx.mount_all()
    oracle = PolicyOracle(fx.policy_text("default"))
    nopolicy = fx.token(["mx-no-such-policy"])
    shared = [nopolicy]

    failures, checked, skipped = [], 0, []
    destructive_later = []
    phase2, trace = {}, []
    for b in routes:
        for row in b["paths"]:
            path = fx.concrete(b, row)
            unauth = "unauth" in row["flags"]
            sudo = "sudo" in row["flags"]
            default_tok = fx.token(["default"], no_default=False)  # revoke-self may take it
            for op, method in requests_of(b, row):
                what = "%s %s (%s row %r)" % (method, path, b["type"], row["pattern"])
                # ---- phase 1
                for ident, tok in (("no token", None), ("no-policy token", nopolicy),
                                   ("default token", default_tok)):
                    r = fx.req(method, path, token=tok)
                    checked += 1
                    if unauth:
                        # Served without a token by design (compared with Vault's list in
                        # test_unauthenticated_routes_are_vaults); never a server error.
                        if r.status_code >= 500 and r.status_code != 503:
                            failures.append("%s as %s: %s %s"
                                            % (what, ident, r.status_code, r.text[:200]))
                        fx.check_intact(what, shared)
                        continue
                    expect_allow = False
                    if ident == "default token":
                        is_list = method == "LIST"
                        acl_path = path + ("/" if is_list and not path.endswith("/") else "")
                        granted = oracle.caps(acl_path, is_list)
                        need = cap_candidates(op, row)
                        allow = [c in granted and (not sudo or "sudo" in granted) for c in need]
                        if all(allow):
                            expect_allow = True
                        elif any(allow):
                            skipped.append((what, ident, "create/update ambiguity"))
                            continue
                    if expect_allow:
                        if is_denied(r):
                            failures.append("%s as %s: denied, but the default policy grants it"
                                            % (what, ident))
                        fx.check_intact(what, shared)
                    elif not is_denied(r):
                        failures.append("%s as %s: expected 403 %r, got %s %s"
                                        % (what, ident, DENIED, r.status_code, r.text[:200]))
                        fx.check_intact(what, shared)
                # A row that looks at a token it is sent checks it: an unknown one is refused.
                if "opt_token" in row["flags"]:
                    r = fx.req(method, path, token=H.random_token())
                    checked += 1
                    if not is_denied(r):
                        failures.append("%s with an unknown token: expected 403 %r, got %s %s"
                                        % (what, DENIED, r.status_code, r.text[:200]))
                # ---- phase 2
                if unauth:
                    continue
                if (b["type"], row["pattern"], op) in DESTRUCTIVE:
                    destructive_later.append((b, row, op, method))
                    continue
                tok = fx.token_for_path(path)
                r = fx.req(method, path, token=tok)
                checked += 1
                phase2[r.status_code] = phase2.get(r.status_code, 0) + 1
                trace.append("%s -> %s %s" % (what, r.status_code, r.text[:120]))
                if is_denied(r):
                    failures.append("%s with a policy granting exactly %r: %s %s"
                                    % (what, path, r.status_code, r.text[:200]))
                fx.check_intact(what, shared)

    # Phase 2 of the destructive rows: each on a fresh server of its own.
    for b, row, op, method in destructive_later:
        fresh = start_dev(server_factory)
        f2 = Fixture(fresh, routes)
        f2.mount_all()
        path = f2.concrete(b, row)
        r = f2.req(method, path, token=f2.token_for_path(path))
        checked += 1
        if is_denied(r):
            failures.append("%s %s with a policy granting exactly it: %s %s"
                            % (method, path, r.status_code, r.text[:200]))
        fresh.cleanup()

    print("\n".join(trace))
    print("phase 2 statuses: %s" % sorted(phase2.items()))
    print("route matrix: %d requests checked, %d rows, %d skipped: %s"
          % (checked, sum(len(b["paths"]) for b in routes), len(skipped), skipped))
    assert not failures, "%d matrix failures:\n  %s" % (len(failures), "\n  ".join(failures))
