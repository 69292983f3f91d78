#!/usr/bin/env python3
"""Fail on an #include that breaks the layer map (shared/ARCHITECTURE.md, issue 10 section 1).

Order, lowest first; a folder may include its own headers and those of folders below it:

    lib <- storage <- raft <- policy <- server <- auth, engines, audit <- cli, cmd

Rules checked on every .c/.h under the source folders (tests/ are exempt):
  up        an include of a folder higher in the order;
  sideways  an include between two folders of the same rank (auth, engines, audit), or
            between two backends of one folder (a backend's own helpers, listed in SHARED,
            and the parts of one backend, listed in ONE_BACKEND, are not sideways);
  backend   a file in auth/ or engines/ that includes anything from server/ other than
            server/backend.h (the backend interface is the only door into the core);
  loop      two modules (foo.c + foo.h) of one folder that include each other, directly or
            through other modules of that folder.

ALLOWED lists the known violations still left, with why. The list can only shrink: an
allowlisted include or loop that no longer exists (or no longer violates) is an error too,
so whoever fixes one must delete its line here.

Prints one line per problem and "layers: OK (...)", or exits 1.
Usage: scripts/check-layers.py [--no-allowlist] [SOURCE_ROOT]   (default: the repository)
"""
import os
import re
import sys

RANK = {
    "lib": 0,
    "storage": 1,
    "raft": 2,
    "policy": 3,
    "server": 4,
    "auth": 5,
    "engines": 5,
    "audit": 5,
    "cli": 6,
    "cmd": 6,
}
BACKEND_FOLDERS = ("auth", "engines")
# Helpers shared by the backends of one folder: not a backend themselves.
SHARED = {"auth/tokenutil", "engines/kvutil",
          "auth/record_codec",  # compact token/lease records (tokenutil reads them)
          "engines/acme_jws",  # JOSE: ACME requests (pki) and identity tokens
          # ACME challenge validation (pki's ACME server calls it)
          "engines/acme_validate", "engines/acme_validate_internal", "engines/acme_alpn"}
# Modules that together are one backend (kv v1 and v2 are one mount type).
ONE_BACKEND = [
    {"engines/kv", "engines/kv2", "engines/kv2_model"},
    # the token store (split by job, auth/token_internal.h) and its lease/expiry manager
    {"auth/token", "auth/token_internal", "auth/token_create", "auth/token_ops",
     "auth/token_roles", "auth/expire", "auth/record_convert", "auth/token_revoke"},
    # transit (split by job, engines/transit_internal.h) and its crypto, apart for tests
    {"engines/transit", "engines/transit_internal", "engines/transit_keys", "engines/transit_ops",
     "engines/transit_sign", "engines/transit_crypto", "engines/transit_asym",
     "engines/transit_backup", "engines/transit_cache", "engines/transit_rotate"},
    # pki (split by concern, engines/pki_internal.h)
    {"engines/pki", "engines/pki_internal", "engines/pki_util", "engines/pki_x509",
     "engines/pki_store", "engines/pki_ca", "engines/pki_issue", "engines/pki_crl",
     "engines/pki_tidy", "engines/pki_cache", "engines/pki_manage",
     # its ACME server (engines/acme_internal.h)
     "engines/acme", "engines/acme_internal", "engines/acme_state", "engines/acme_order",
     "engines/acme_chal"},
    # identity (split by job, engines/identity_internal.h): handlers and records
    {"engines/identity", "engines/identity_internal", "engines/identity_store",
     "engines/identity_oidc", "engines/identity_cache"},
    # the database engine (split by job, engines/database_internal.h), its libpq pool, SQL
    # quoting and username templates, apart for tests
    {"engines/database", "engines/database_internal", "engines/database_roles",
     "engines/database_static",
     "engines/database_template", "engines/pg_pool", "engines/pg_sql"},
]

# "file: included header" -> why it is still here (the step of issue 10 that removes it).
# Loops are listed as "loop: folder/a <-> folder/b".
ALLOWED = {
    # Left after section 1 of issue 10 (report them; each needs a design change, not a move):
    # - the server's own modules include each other: core <-> seal/sys/wrap,
    #   ha <-> seal, seal <-> sys (core <-> ha and ha <-> sys went with the ha.c split). The ha.c split (section 2) and state owned by the core with
    #   hooks registered one way (section 3) untangle them.
    "loop: server/core <-> server/seal": "left",
    "loop: server/core <-> server/sys": "left",
    "loop: server/core <-> server/wrap": "left",
    "loop: server/ha <-> server/seal": "left",
    "loop: server/seal <-> server/sys": "left",
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def module(path):
    return os.path.splitext(path)[0]


def folder(path):
    return path.split("/", 1)[0]


def one_backend(a, b):
    return any(a in s and b in s for s in ONE_BACKEND)


def scan(root):
    edges = []  # (file, header)
    nfiles = 0
    for d in sorted(RANK):
        top = os.path.join(root, d)
        if not os.path.isdir(top):
            continue
        for dirpath, _, names in os.walk(top):
            for n in sorted(names):
                if not n.endswith((".c", ".h")):
                    continue
                p = os.path.relpath(os.path.join(dirpath, n), root)
                nfiles += 1
                with open(os.path.join(root, p), encoding="utf-8", errors="replace") as f:
                    for inc in INCLUDE.findall(f.read()):
                        edges.append((p, inc))
    return nfiles, edges


def problems(edges):
    out = {}  # key -> message
    for src, inc in edges:
        fs, fi = folder(src), folder(inc)
        if fi not in RANK or "/" not in inc:
            continue
        key = "%s: %s" % (src, inc)
        if RANK[fi] > RANK[fs]:
            out[key] = "up: %s (%s) includes %s (%s)" % (src, fs, inc, fi)
        elif RANK[fi] == RANK[fs] and fi != fs and RANK[fs] < 6:
            out[key] = "sideways: %s includes %s" % (src, inc)
        elif fs == fi and fs in BACKEND_FOLDERS:
            ms, mi = module(src), module(inc)
            if ms != mi and mi not in SHARED and not one_backend(ms, mi):
                out[key] = "sideways: backend %s includes another backend's %s" % (src, inc)
        if fs in BACKEND_FOLDERS and fi == "server" and inc != "server/backend.h":
            out[key] = "backend: %s includes %s (only server/backend.h is allowed)" % (src, inc)
    # Loops between modules of one folder: strongly connected components of the module graph.
    graph = {}
    for src, inc in edges:
        if folder(src) != folder(inc) or "/" not in inc:
            continue
        a, b = module(src), module(inc)
        if a != b:
            graph.setdefault(a, set()).add(b)
            graph.setdefault(b, set())
    for comp in sccs(graph):
        if len(comp) < 2:
            continue
        comp = sorted(comp)
        for a in comp:
            for b in sorted(graph[a]):
                if b in comp and a < b and a in graph.get(b, ()):
                    out["loop: %s <-> %s" % (a, b)] = "loop: %s and %s include each other" % (a, b)
        # A longer cycle with no direct pair: report the whole component once.
        if not any(k.startswith("loop: ") and k.split()[1] in comp for k in out):
            out["loop: " + " <-> ".join(comp)] = "loop: %s include each other" % ", ".join(comp)
    return out


def sccs(graph):
    index, low, stack, on, res = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        work = [(v, iter(sorted(graph[v])))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            pushed = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    pushed = True
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            if pushed:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = set()
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.add(w)
                    if w == node:
                        break
                res.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return res


def main():
    args = sys.argv[1:]
    allowed = ALLOWED
    if args and args[0] == "--no-allowlist":  # the rules alone (tests/e2e/test_layers.py)
        allowed = {}
        args = args[1:]
    root = args[0] if args else os.path.join(os.path.dirname(__file__), "..")
    nfiles, edges = scan(root)
    found = problems(edges)
    bad = 0
    for key in sorted(found):
        if key not in allowed:
            print("layers: NEW %s" % found[key])
            bad += 1
    for key in sorted(allowed):
        if key not in found:
            print("layers: fixed but still allowlisted (delete it from ALLOWED in %s): %s"
                  % (os.path.basename(__file__), key))
            bad += 1
    if bad:
        print("layers: FAILED (%d problems; %d known violations allowlisted)" % (bad, len(allowed)))
        return 1
    print("layers: OK (%d files, %d includes, %d known violations allowlisted)"
          % (nfiles, len(edges), len(allowed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
