"""Revocation of any size (issue 16): auth/token/revoke of a ~10k-token tree is answered
at once, every token of the tree fails from the ack on, and storage is cleaned in the
background — resuming after a kill -9 and restart, and on a new active node after the
active one is killed. sys/leases/revoke-prefix over ~20k leases, with sync=false (202 at
once) and sync=true (answered when done), and revoke-orphan of thousands of children.
"""

import concurrent.futures as cf
import threading
import time

import pytest

import custos_harness as H

FANOUT = 100      # A → 100 children → 100 grandchildren each: 10,101 tokens
CHAIN = 30        # plus a chain A → C1 → ... → C30


class Creator:
    """Many token creations at once: one keep-alive session per thread."""

    def __init__(self, url, verify):
        self.url, self.verify = url, verify
        self.local = threading.local()

    def _session(self):
        s = getattr(self.local, "s", None)
        if s is None:
            s = self.local.s = H.session(self.verify)
        return s

    def create(self, parent, path="auth/token/create", body=None):
        # A slow node (sanitizers, a busy machine) may see a leader election meanwhile:
        # "node is not active" for a moment, then the request works again.
        for _ in range(60):
            r = self._session().post(self.url + "/v1/" + path, json=body or {},
                                     headers={"X-Vault-Token": parent}, timeout=60)
            if r.status_code == 200:
                return r.json()["auth"]["client_token"]
            if r.status_code not in (429, 500, 503):
                break
            time.sleep(0.5)
        raise AssertionError("create failed: %s %s" % (r.status_code, r.text))

    def status(self, token, path="auth/token/lookup-self"):
        r = self._session().get(self.url + "/v1/" + path, headers={"X-Vault-Token": token},
                                timeout=60)
        return r.status_code


POLICY = 'path "auth/token/create" { capabilities = ["update"] }'


def policy(srv, root):
    r = srv.put("sys/policies/acl/p", token=root, json={"policy": POLICY})
    assert r.status_code in (200, 204), r.text


def build_tree(srv, root):
    """A with FANOUT children, each with FANOUT children, and a chain below A."""
    policy(srv, root)
    c = Creator(srv.url, srv.verify)
    a = c.create(root, body={"policies": ["p"], "ttl": "2h"})
    with cf.ThreadPoolExecutor(16) as ex:
        kids = list(ex.map(lambda _: c.create(a), range(FANOUT)))
        grand = list(ex.map(lambda k: c.create(k), [k for k in kids for _ in range(FANOUT)]))
    chain = [a]
    for _ in range(CHAIN):
        chain.append(c.create(chain[-1]))
    return c, a, kids, grand, chain[1:]


def accessors(srv, token):
    r = srv.request("LIST", "auth/token/accessors", token=token, timeout=120)
    assert r.status_code == 200, r.text
    return len(r.json()["data"]["keys"])


def leases(srv, token, prefix):
    r = srv.request("LIST", "sys/leases/lookup/" + prefix, token=token, timeout=120)
    if r.status_code == 404:
        return 0
    assert r.status_code == 200, r.text
    return len(r.json()["data"]["keys"])


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.5)
    raise AssertionError("timed out waiting for " + what)


def all_dead(c, tokens):
    with cf.ThreadPoolExecutor(8) as ex:
        codes = list(ex.map(c.status, tokens))
    bad = [(t[:10], s) for t, s in zip(tokens, codes) if s != 403]
    assert not bad, bad[:5]


def sample(grand, chain, kids):
    return kids[::7] + grand[::97] + grand[-50:] + chain


@pytest.mark.timeout_s(600)
def test_big_tree_dead_at_ack_cleaned_and_resumed_after_kill9(unsealed):
    s, root = unsealed, unsealed.root_token
    base = accessors(s, root)
    c, a, kids, grand, chain = build_tree(s, root)
    assert accessors(s, root) == base + 1 + FANOUT + FANOUT * FANOUT + CHAIN
    assert c.status(grand[-1]) == 200 and c.status(chain[-1]) == 200
    r = s.put("auth/token/revoke", token=root, json={"token": a}, timeout=60)
    assert r.status_code == 204, r.text
    # From the ack on: every child fails, the leaves of the chain included.
    all_dead(c, [a] + sample(grand, chain, kids))
    mid = accessors(s, root)
    assert mid > base, "the cleanup was already over: nothing left to resume"
    # kill -9 in the middle of the cleanup; it resumes after restart and unseal.
    s.kill9()
    s.start()
    H.unseal(s)
    H.wait_active(s)
    all_dead(c, sample(grand, chain, kids))
    wait_for(lambda: accessors(s, root) == base, 300, "the tree's accessors to go")
    assert leases(s, root, "auth/token/create/") == 0
    all_dead(c, chain[-3:] + grand[:20])
    # A new tree works as before.
    b = c.create(root, body={"policies": ["p"]})
    assert c.status(c.create(b)) == 200


@pytest.mark.timeout_s(600)
def test_revoke_orphan_of_thousands(unsealed):
    s, root = unsealed, unsealed.root_token
    policy(s, root)
    c = Creator(s.url, s.verify)
    x = c.create(root, body={"policies": ["p"]})
    with cf.ThreadPoolExecutor(16) as ex:
        kids = list(ex.map(lambda _: c.create(x), range(3000)))
    g = c.create(kids[-1])
    r = s.put("auth/token/revoke-orphan", token=root, json={"token": x})
    assert r.status_code == 204, r.text
    assert c.status(x) == 403
    # The children live on, orphans, at once and after the cleanup.
    for t in kids[::100] + [kids[-1], g]:
        assert c.status(t) == 200

    def orphaned():
        r = s.put("auth/token/lookup", token=root, json={"token": kids[0]})
        return r.json()["data"]["orphan"] is True

    wait_for(orphaned, 120, "the children to become orphans")
    d = s.put("auth/token/lookup", token=root, json={"token": kids[-1]}).json()["data"]
    assert d["orphan"] is True
    assert c.status(g) == 200
    # and revoking one of them still takes its own child
    assert s.put("auth/token/revoke", token=root, json={"token": kids[-1]}).status_code == 204
    assert c.status(g) == 403


@pytest.mark.timeout_s(900)
def test_revoke_prefix_20k_leases(unsealed):
    s, root = unsealed, unsealed.root_token
    c = Creator(s.url, s.verify)
    # 20k token leases under auth/token/create-orphan/ (one lease each).
    with cf.ThreadPoolExecutor(16) as ex:
        toks = list(ex.map(lambda _: c.create(root, "auth/token/create-orphan",
                                              {"policies": ["p"]}), range(20000)))
    assert leases(s, root, "auth/token/create-orphan/") == 20000
    keep = c.create(root, body={"policies": ["p"]})  # another prefix: untouched
    r = s.put("sys/leases/revoke-prefix/auth/token/create-orphan", token=root,
              json={"sync": False}, timeout=60)
    assert r.status_code == 202, r.text
    all_dead(c, toks[::50] + toks[-20:])
    assert c.status(keep) == 200
    wait_for(lambda: leases(s, root, "auth/token/create-orphan/") == 0, 300,
             "the prefix's leases to go")
    all_dead(c, toks[:10])
    # A login under the prefix after the job is over works.
    n = c.create(root, "auth/token/create-orphan", {"policies": ["p"]})
    assert c.status(n) == 200

    # sync=true (Vault's default): answered once every lease is revoked.
    with cf.ThreadPoolExecutor(16) as ex:
        toks = list(ex.map(lambda _: c.create(root, "auth/token/create-orphan",
                                              {"policies": ["p"]}), range(3000)))
    r = s.put("sys/leases/revoke-prefix/auth/token/create-orphan/", token=root, timeout=300)
    assert r.status_code == 204, r.text
    assert leases(s, root, "auth/token/create-orphan/") == 0
    all_dead(c, toks[::30])
    assert c.status(keep) == 200


@pytest.mark.timeout_s(900)
def test_cluster_revoke_through_standby_new_active_finishes(cluster_factory):
    cl = cluster_factory(3)
    leader = cl.leader()
    root = cl.root_token
    base = accessors(leader, root)
    c, a, kids, grand, chain = build_tree(leader, root)
    leader = cl.leader()  # the same one, unless an election happened meanwhile
    c = Creator(leader.url, leader.verify)
    standby = cl.standbys()[0]
    sc = Creator(standby.url, standby.verify)
    # (a revoke is idempotent: a client retries it after a leader election, as here)
    for _ in range(20):
        r = standby.put("auth/token/revoke", token=root, json={"token": a}, timeout=60)
        if r.status_code not in (500, 503):
            break
        time.sleep(0.5)
    assert r.status_code == 204, r.text
    # Dead from the ack, through the standby and on the active node.
    all_dead(sc, sample(grand, chain, kids)[:150])
    all_dead(c, chain)
    assert accessors(leader, root) > base, "the cleanup was already over"
    cl.kill9(leader)
    new = cl.leader(timeout=30, exclude=[leader])
    nc = Creator(new.url, new.verify)
    all_dead(nc, sample(grand, chain, kids))
    wait_for(lambda: accessors(new, root) == base, 300, "the new active node to finish")
    all_dead(nc, grand[-30:] + chain[-5:])
