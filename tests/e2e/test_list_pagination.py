"""LIST pagination (issue 16): every LIST accepts OpenBao's `after` and `limit`.

The LIST rows come from the binary (`custos server -list-routes`), never from a hand list:
on a -dev server with one mount of each backend (the route matrix's fixture), for every
row with a LIST handler the test
  - sends `limit` values that are not non-negative integers: 400, whatever the route holds;
  - lists the row's sample path (seeded with data below where a write path exists) and,
    when it holds names, checks that every (after, limit) page is the sorted list
    filtered: names strictly after `after`, at most `limit` of them, by LIST and by
    GET ?list=true, and that walking page by page gives the whole list.
A minimum number of rows must have held at least three names, so the test cannot pass by
finding everything empty.
"""

import pytest

import custos_harness as H
import test_route_matrix as M


def lst(srv, path, tok, params=None, method="LIST"):
    p = dict(params or {})
    if method == "GET":
        p["list"] = "true"
    return srv.request(method, path, token=tok, params=p)


def keys_of(r):
    return ((r.json().get("data") or {}).get("keys")) or []


def seed(fx):
    """Data under the rows' sample paths, through ordinary write endpoints."""
    srv, root = fx.srv, fx.root
    m = fx.mounts

    def w(method, path, body=None, codes=(200, 204)):
        r = fx.req(method, path, token=root, body=body)
        assert r.status_code in codes, (method, path, r.status_code, r.text[:300])
        return r

    hcl = 'path "secret/x" { capabilities = ["read"] }'
    for n in ("pa", "pb", "pc"):
        w("PUT", "sys/policy/" + n, {"policy": hcl})
        w("PUT", "sys/policies/password/" + n, {"policy": 'length = 20\nrule "charset" '
                                                '{ charset = "abcdefgh0123" }'})
        w("PUT", "sys/policies/password/matrix/sample/" + n,
          {"policy": 'length = 20\nrule "charset" { charset = "abc123" }'})
        w("POST", "auth/token/roles/" + n, {"allowed_policies": ["default"]})
    kv1 = m[("kv", None)]
    kv2 = m[("kv", "2")]
    cub = m[("cubbyhole", None)]
    for n in ("k1", "k2", "k3", "f/x", "f/y", "g-h"):
        w("PUT", kv1 + "matrix/sample/" + n, {"v": "1"})
        w("PUT", cub + "matrix/sample/" + n, {"v": "1"})
        w("PUT", kv2 + "data/matrix/sample/" + n, {"data": {"v": "1"}})
    up = m[("userpass", None)]
    ar = m[("approle", None)]
    for n in ("u1", "u2", "u3"):
        w("POST", up + "users/" + n, {"password": "pw-" + n})
        w("POST", ar + "role/" + n, {"token_policies": ["default"]})
    w("POST", ar + "role/matrix-sample", {"token_policies": ["default"]})
    for _ in range(3):
        w("POST", ar + "role/matrix-sample/secret-id", {})
    ident = m[("identity", None)]
    for n in ("e1", "e2", "e3"):
        r = w("POST", ident + "entity", {"name": n})
        eid = r.json()["data"]["id"]
        w("POST", ident + "entity-alias",
          {"name": "al-" + n, "canonical_id": eid, "mount_accessor": accessor(fx, up)})
        w("POST", ident + "group", {"name": "g" + n})
        w("POST", ident + "entity", {"name": "matrix/sample/" + n}, codes=(200, 204, 400))
        w("POST", ident + "oidc/key/" + n, {"allowed_client_ids": ["*"]})
        w("POST", ident + "oidc/role/" + n, {"key": n})
    tr = m[("transit", None)]
    pki = m[("pki", None)]
    for n in ("t1", "t2", "t3"):
        w("POST", tr + "keys/" + n, {})
        w("POST", pki + "roles/" + n, {"allow_any_name": True})
        w("POST", pki + "root/generate/internal", {"common_name": n + ".example",
                                                   "issuer_name": n, "key_name": n, "ttl": "87600h"})
    for n in ("c1", "c2", "c3"):
        r = w("POST", pki + "issue/t1", {"common_name": n + ".example", "ttl": "1h"})
        w("POST", pki + "revoke", {"serial_number": r.json()["data"]["serial_number"]})
    # A few tokens: their leases are listed under sys/leases/lookup/auth/token/create/.
    for _ in range(3):
        w("POST", "auth/token/create", {"ttl": "1h"})


def accessor(fx, mount):
    auths = fx.ok("GET", "sys/auth").json()["data"]
    return auths[mount[len("auth/"):]]["accessor"]


def list_paths(fx, routes):
    """(what, concrete path) for every LIST row, plus the mount root of '{x*}' rows."""
    out = []
    for b in routes:
        for row in b["paths"]:
            if "list" not in row["ops"] or row["sample"] is None:
                continue
            what = "%s %r" % (b["type"], row["pattern"])
            out.append((what, fx.concrete(b, row), row))
            if row["pattern"].endswith("*}"):
                base = row["pattern"][:row["pattern"].rindex("{")]
                out.append((what + " (root)", fx.mounts[M.backend_key(b)] + base, row))
    return out


@pytest.mark.timeout_s(600)
def test_every_list_route_pages(server_factory):
    routes = M.list_routes()
    srv = M.start_dev(server_factory)
    fx = M.Fixture(srv, routes)
    fx.mount_all()
    seed(fx)
    root = fx.root
    failures, paged = [], []
    for what, path, row in list_paths(fx, routes):
        own = set(row.get("list_own_params") or [])
        if "limit" not in own:
            for bad in ("-1", "abc", "1.5", "99999999999999999999999"):
                r = lst(srv, path, root, {"limit": bad})
                if r.status_code != 400:
                    failures.append("%s: limit=%s gave %s %s" % (what, bad, r.status_code,
                                                                 r.text[:150]))
        r = lst(srv, path, root)
        if r.status_code != 200:
            # Nothing there: a page of nothing answers as the whole does.
            r2 = lst(srv, path, root, {"after": "a", "limit": "1"})
            if r2.status_code != r.status_code:
                failures.append("%s: %s unpaged but %s paged" % (what, r.status_code,
                                                                 r2.status_code))
            continue
        full = sorted(keys_of(r))
        if len(full) < 3:
            continue
        paged.append(what)
        cases = [(None, 1), (None, 2), (full[0], 0), (full[0], 1), (full[1], 5),
                 (full[-1], 0), (full[0] + "\x01", 0), ("", 2), (None, 1000000)]
        for after, limit in cases:
            want = [k for k in full if after is None or k > after]
            if limit:
                want = want[:limit]
            params = {}
            if after is not None:
                params["after"] = after
            if limit:
                params["limit"] = str(limit)
            for method in ("LIST", "GET"):
                r = lst(srv, path, root, params, method)
                got = keys_of(r) if r.status_code == 200 else []
                if r.status_code not in (200, 404) or got != want:
                    failures.append("%s %s %s: got %s %s, want %s" % (
                        what, method, params, r.status_code, got, want))
        # Page by page, two at a time, gives the whole list.
        walked, after = [], None
        for _ in range(len(full) + 2):
            params = {"limit": "2"}
            if after is not None:
                params["after"] = after
            r = lst(srv, path, root, params)
            page = keys_of(r) if r.status_code == 200 else []
            if not page:
                break
            walked += page
            after = page[-1]
        if walked != full:
            failures.append("%s: walk gave %s, want %s" % (what, walked, full))
    print("paged rows (%d): %s" % (len(paged), paged))
    assert not failures, "%d failures:\n  %s" % (len(failures), "\n  ".join(failures))
    assert len(paged) >= 20, "only %d LIST rows held names: %s" % (len(paged), paged)


def test_pagination_hvac_and_cli_shapes(dev_server):
    """The calls clients make: hvac's adapter, `bao list -after -limit` (a LIST with the
    query string), a JSON body on LIST, and `after` past the end (404, as an empty LIST)."""
    srv = dev_server
    c = srv.client()
    for i in range(12):
        c.secrets.kv.v2.create_or_update_secret(path="pg/s%02d" % i, secret={"v": i})
    r = c.adapter.list("/v1/secret/metadata/pg", params={"after": "s03", "limit": 4})
    assert r["data"]["keys"] == ["s04", "s05", "s06", "s07"]
    r = srv.request("LIST", "secret/metadata/pg/?after=s10&limit=5", token=srv.root_token)
    assert r.status_code == 200 and r.json()["data"]["keys"] == ["s11"]
    r = srv.request("LIST", "secret/metadata/pg", token=srv.root_token,
                    json={"after": "s09", "limit": 1})
    assert r.status_code == 200 and r.json()["data"]["keys"] == ["s10"], r.text
    r = srv.request("LIST", "secret/metadata/pg?after=s11", token=srv.root_token)
    assert r.status_code == 404
    r = srv.request("LIST", "secret/metadata/pg?limit=0", token=srv.root_token)
    assert len(r.json()["data"]["keys"]) == 12
    r = srv.request("LIST", "secret/metadata/pg?limit=-3", token=srv.root_token)
    assert r.status_code == 400 and "limit" in r.json()["errors"][0]
    # Read and write paths are untouched by the names: a KV secret may hold `limit`.
    c.secrets.kv.v2.create_or_update_secret(path="pg/lim", secret={"limit": "x", "after": 1})
    got = c.secrets.kv.v2.read_secret_version(path="pg/lim")
    assert got["data"]["data"] == {"limit": "x", "after": 1}
