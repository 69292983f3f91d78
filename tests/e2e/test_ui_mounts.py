"""sys/internal/ui/mounts shows each caller only the mounts it may use (issue 9 §1.9).

As Vault: without a token only mounts tuned listing_visibility="unauth"; with a token the
mounts where it has some capability on some path (root: all). A token sent to these
unauthenticated paths is checked as on every other path: an unknown token, or one used
from outside its token_bound_cidrs, gets 403 instead of a mount list. Before the fix any
valid token saw every mount, and a CIDR-bound token worked from anywhere here.
"""

import http.client
import json

import pytest

import custos_harness as H

READER = 'path "ui-vis/data/app/*" { capabilities = ["read"] }\n'


@pytest.fixture(scope="module")
def ui(dev_server):
    s = dev_server
    c = s.client()
    c.sys.enable_secrets_engine("kv", path="ui-vis", options={"version": "2"})
    c.sys.enable_secrets_engine("kv", path="ui-hidden", options={"version": "1"})
    c.sys.enable_secrets_engine("kv", path="ui-open", options={"version": "1"})
    r = s.request("POST", "sys/mounts/ui-open/tune", token=s.root_token,
                  json={"listing_visibility": "unauth"})
    assert r.status_code == 204, r.text
    c.sys.enable_auth_method("userpass", path="ui-up")
    c.sys.create_or_update_policy("ui-reader", READER)
    # the same rule text as ui-reader's: merged, the deny wins
    c.sys.create_or_update_policy(
        "ui-deny", 'path "ui-vis/data/app/*" { capabilities = ["deny"] }\n')
    c.sys.create_or_update_policy(
        "ui-login", 'path "auth/ui-up/login/*" { capabilities = ["update"] }\n')
    return s


def token(s, policies, no_default=True, role=None):
    path = "auth/token/create" + ("/" + role if role else "")
    r = s.request("POST", path, token=s.root_token,
                  json={"policies": policies, "no_default_policy": no_default})
    assert r.status_code == 200, r.text
    return r.json()["auth"]["client_token"]


def login_from(s, source, user, password):
    """Log in through userpass from another loopback address (127.0.0.0/8 is all ours)."""
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=H.REQ_TIMEOUT,
                                   source_address=(source, 0))
    try:
        c.request("POST", "/v1/auth/ui-up/login/" + user, body=json.dumps({"password": password}),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        body = r.read()
        assert r.status == 200, (r.status, body)
        return json.loads(body)["auth"]["client_token"]
    finally:
        c.close()


def listing(s, tok):
    r = s.get("sys/internal/ui/mounts", token=tok)
    assert r.status_code == 200, (r.status_code, r.text)
    d = r.json()["data"]
    return set(d["secret"]), set(d["auth"])


def test_without_token_only_unauth_listing(ui):
    secret, auth = listing(ui, None)
    assert "ui-open/" in secret
    assert not secret & {"ui-vis/", "ui-hidden/", "sys/", "secret/", "cubbyhole/"}, secret
    assert not auth, auth


def test_token_sees_mounts_it_can_use(ui):
    secret, auth = listing(ui, token(ui, ["ui-reader"]))
    assert "ui-vis/" in secret  # a deeper rule (ui-vis/data/app/*) is enough
    assert "ui-open/" in secret  # listing_visibility=unauth: everybody
    assert not secret & {"ui-hidden/", "sys/", "secret/", "cubbyhole/"}, secret
    assert not auth, auth
    secret, auth = listing(ui, token(ui, ["ui-login"]))
    assert auth == {"ui-up/"}, auth
    assert secret == {"ui-open/"}, secret


def test_deny_hides_the_mount(ui):
    secret, _ = listing(ui, token(ui, ["ui-reader", "ui-deny"]))
    assert "ui-vis/" not in secret, secret


def test_default_policy_and_root(ui):
    secret, auth = listing(ui, token(ui, ["default"], no_default=False))
    # the default policy grants cubbyhole/*, sys/capabilities-self, auth/token/lookup-self
    assert {"cubbyhole/", "sys/"} <= secret and "token/" in auth, (secret, auth)
    assert not secret & {"ui-vis/", "ui-hidden/"}, secret
    secret, auth = listing(ui, ui.root_token)
    assert {"sys/", "ui-vis/", "ui-hidden/", "ui-open/", "cubbyhole/"} <= secret, secret
    assert {"token/", "ui-up/"} <= auth, auth


def test_single_mount_needs_access(ui):
    tok = token(ui, ["ui-reader"])
    r = ui.get("sys/internal/ui/mounts/ui-vis/data/app/x", token=tok)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["path"] == "ui-vis/", r.text
    # a hidden mount answers exactly like a missing one: no probing for mount names
    hidden = ui.get("sys/internal/ui/mounts/ui-hidden/x", token=tok)
    missing = ui.get("sys/internal/ui/mounts/ui-nomount/x", token=tok)
    assert hidden.status_code == missing.status_code == 403, (hidden.text, missing.text)
    assert H.errors_of(hidden)[0].replace("ui-hidden", "X") == \
        H.errors_of(missing)[0].replace("ui-nomount", "X")
    r = ui.get("sys/internal/ui/mounts/ui-vis/data/app/x")
    assert r.status_code == 403, r.text


def test_cidr_bound_token_refused(ui):
    """Replays the hole: a token bound to 127.0.0.2/32 (token_bound_cidrs of its login,
    made from there) used from 127.0.0.1."""
    r = ui.request("POST", "auth/ui-up/users/carol", token=ui.root_token,
                   json={"password": "pw-carol", "token_policies": ["ui-reader"],
                         "token_bound_cidrs": ["127.0.0.2/32"]})
    assert r.status_code == 204, r.text
    tok = login_from(ui, "127.0.0.2", "carol", "pw-carol")
    # the binding holds on an ordinary path the default policy grants...
    r = ui.get("auth/token/lookup-self", token=tok)
    assert r.status_code == 403, (r.status_code, r.text)
    # ...and now on the unauthenticated ones that use the token
    for path in ("sys/internal/ui/mounts", "sys/internal/ui/mounts/ui-vis/data/app/x"):
        r = ui.get(path, token=tok)
        assert r.status_code == 403, (path, r.status_code, r.text)
        assert "ui-vis/" not in r.text, r.text
    # the same user bound to 127.0.0.1 sees ui-vis/, so the 403 is the binding's
    r = ui.request("POST", "auth/ui-up/users/carol", token=ui.root_token,
                   json={"token_bound_cidrs": ["127.0.0.1/32"]})
    assert r.status_code == 204, r.text
    assert "ui-vis/" in listing(ui, login_from(ui, "127.0.0.1", "carol", "pw-carol"))[0]


def test_unknown_token_refused(ui):
    r = ui.get("sys/internal/ui/mounts", token=H.random_token())
    assert r.status_code == 403, (r.status_code, r.text)
    assert "permission denied" in H.errors_of(r)[0]


def test_other_unauthenticated_paths_ignore_a_bad_token(ui):
    """Only the paths whose answer depends on the caller check a sent token: a login or
    sys/health with a stale token in the client still works, as in Vault."""
    bad = H.random_token()
    assert ui.get("sys/health", token=bad).status_code == 200
    assert ui.get("sys/seal-status", token=bad).status_code == 200
    r = ui.request("POST", "auth/ui-up/users/alice", token=ui.root_token,
                   json={"password": "pw-alice", "token_policies": ["ui-reader"]})
    assert r.status_code == 204, r.text
    r = ui.request("POST", "auth/ui-up/login/alice", token=bad, json={"password": "pw-alice"})
    assert r.status_code == 200, r.text


def test_limited_use_token_not_spent(ui):
    """Checked, not counted: the `vault kv` preflight leaves a limited-use token's uses
    alone, as in Vault."""
    r = ui.request("POST", "auth/token/create", token=ui.root_token,
                   json={"policies": ["ui-reader"], "no_default_policy": True, "num_uses": 2})
    assert r.status_code == 200, r.text
    tok = r.json()["auth"]["client_token"]
    for _ in range(3):
        assert "ui-vis/" in listing(ui, tok)[0]
        assert ui.get("sys/internal/ui/mounts/ui-vis/data/app/x", token=tok).status_code == 200
    r = ui.request("POST", "auth/token/lookup", token=ui.root_token, json={"token": tok})
    assert r.status_code == 200 and r.json()["data"]["num_uses"] == 2, r.text
