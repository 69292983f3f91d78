"""Password policies end to end (sys/policies/password, Vault's API): create, read, list,
generate (hvac and curl), delete; bad HCL answered 400 with the reason and nothing stored;
the ACL (no sudo needed, as in Vault); names with slashes; help on the rows.

The installed hvac predates its password-policy helpers (sys.create_or_update_password_policy,
sys.generate_password), so the hvac client is driven through its generic read/write/list/
delete, which send exactly what those helpers send (PUT {"policy"}, GET .../generate).
"""

import base64
import json
import shutil
import subprocess

import hvac
import pytest

import custos_harness as H

LOWER = "abcdefghijklmnopqrstuvwxyz"
UPPER = LOWER.upper()
DIGITS = "0123456789"
SYMBOLS = "!@#$%^&*"

POLICY = """
length = 16
rule "charset" {
  charset = "%s"
  min-chars = 2
}
rule "charset" {
  charset = "%s"
  min-chars = 2
}
rule "charset" {
  charset = "%s"
  min-chars = 3
}
rule "charset" {
  charset = "%s"
  min-chars = 1
}
""" % (LOWER, UPPER, DIGITS, SYMBOLS)
RULES = [(LOWER, 2), (UPPER, 2), (DIGITS, 3), (SYMBOLS, 1)]


def check_password(pw, length, rules):
    assert len(pw) == length, pw
    alphabet = "".join(cs for cs, _ in rules)
    assert all(c in alphabet for c in pw), pw
    for cs, need in rules:
        assert sum(c in cs for c in pw) >= need, (pw, cs, need)


@pytest.fixture(scope="module")
def srv(module_unsealed):
    return module_unsealed


def make_token(srv, policies):
    r = srv.request("POST", "auth/token/create", token=srv.root_token,
                    json={"policies": policies})
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()["auth"]["client_token"]


def curl(srv, method, path, token, data=None):
    """curl -X METHOD; returns (status, parsed JSON body or None)."""
    argv = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-X", method,
            "-H", "X-Vault-Token: " + token, srv.url + "/v1/" + path]
    if data is not None:
        argv += ["--data-binary", json.dumps(data)]
    out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    body, _, code = out.stdout.rpartition("\n")
    return int(code), (json.loads(body) if body.strip() else None)


def test_hvac_create_read_list_generate_delete(srv):
    c = srv.client()
    c.write("sys/policies/password/hvac-pol", policy=POLICY)
    assert c.read("sys/policies/password/hvac-pol")["data"]["policy"] == POLICY
    assert "hvac-pol" in c.list("sys/policies/password")["data"]["keys"]
    seen = set()
    for _ in range(300):
        pw = c.read("sys/policies/password/hvac-pol/generate")["data"]["password"]
        check_password(pw, 16, RULES)
        seen.add(pw)
    assert len(seen) == 300  # 16 random characters: no repeats
    # 4,800 draws over 70 characters: every one of the union turns up.
    assert set("".join(seen)) == set(LOWER + UPPER + DIGITS + SYMBOLS)
    c.delete("sys/policies/password/hvac-pol")
    # hvac's read answers None for a 404.
    assert c.read("sys/policies/password/hvac-pol") is None
    r = srv.get("sys/policies/password/hvac-pol/generate", token=srv.root_token)
    assert r.status_code == 404 and H.errors_of(r) == ["policy does not exist"], r.text


def test_curl_base64_and_json_policies(srv):
    if not shutil.which("curl"):
        pytest.skip("curl not installed")
    tok = srv.root_token
    # Base64 text, as Vault accepts it; read returns the decoded HCL.
    text = 'length = 10\nrule "charset" {\n  charset = "xyz"\n  min-chars = 10\n}\n'
    st, _ = curl(srv, "PUT", "sys/policies/password/b64", tok,
                 {"policy": base64.b64encode(text.encode()).decode()})
    assert st == 204
    st, body = curl(srv, "GET", "sys/policies/password/b64", tok)
    assert st == 200 and body["data"]["policy"] == text
    st, body = curl(srv, "GET", "sys/policies/password/b64/generate", tok)
    assert st == 200
    check_password(body["data"]["password"], 10, [("xyz", 10)])
    # JSON policy text, and a name with slashes.
    jtext = json.dumps({"length": 6, "rule": [{"charset": [{"charset": "01", "min-chars": 1}]}]})
    st, _ = curl(srv, "PUT", "sys/policies/password/team/db/bits", tok, {"policy": jtext})
    assert st == 204
    st, body = curl(srv, "GET", "sys/policies/password/team/db/bits/generate", tok)
    assert st == 200
    check_password(body["data"]["password"], 6, [("01", 1)])
    st, body = curl(srv, "LIST", "sys/policies/password", tok)
    assert st == 200
    assert {"b64", "team/db/bits"} <= set(body["data"]["keys"]), body
    for name in ("b64", "team/db/bits"):
        st, _ = curl(srv, "DELETE", "sys/policies/password/" + name, tok)
        assert st == 204
    st, body = curl(srv, "GET", "sys/policies/password/b64/generate", tok)
    assert st == 404 and body["errors"] == ["policy does not exist"]


@pytest.mark.parametrize("text,reason", [
    ('length = 20\nrule "charset" {\n  charset = "abc\n}\n', "unable to decode: line 3: unterminated string"),
    ('length = "20"\nrule "charset" { charset = "abc" }', "'length' expected type 'int'"),
    ('rule "charset" { charset = "abc" }', "length must be > 0"),
    ('length = 4\nrule "charset" { charset = "a"\n min-chars = 5 }',
     "specified rules require at least 5 characters but 4 is specified"),
    ('length = 3\nrule "charset" { charset = "abc" }',
     "passwords must be between 4 and 100 characters"),
    ('length = 101\nrule "charset" { charset = "abc" }',
     "passwords must be between 4 and 100 characters"),
    ('length = 10\nrule "regex" { pattern = ".*" }', "unrecognized rule type regex"),
    ('length = 10', "no charset specified"),
    ('length = 10\nrule "charset" { charset = "ab\\u0007" }',
     "non-printable character in charset"),
    ('length = 10\nrule "charset" { charset = "ab" }\nrule "charset" { min-chars = 1 }',
     "are the rules impossible?"),
])
def test_bad_policy_is_400_and_not_stored(srv, text, reason):
    r = srv.put("sys/policies/password/bad", token=srv.root_token, json={"policy": text})
    assert r.status_code == 400, (r.status_code, r.text)
    errs = H.errors_of(r)
    assert len(errs) == 1 and errs[0].startswith("invalid password policy: "), errs
    assert reason in errs[0], errs
    r = srv.get("sys/policies/password/bad", token=srv.root_token)
    assert r.status_code == 404, r.text
    assert H.errors_of(r) == ["policy does not exist"]


def test_missing_policy_and_bad_update_keeps_old(srv):
    r = srv.put("sys/policies/password/keep", token=srv.root_token, json={})
    assert r.status_code == 400 and H.errors_of(r) == ["missing policy"], r.text
    good = 'length = 8\nrule "charset" { charset = "ab" }'
    assert srv.put("sys/policies/password/keep", token=srv.root_token,
                   json={"policy": good}).status_code == 204
    r = srv.put("sys/policies/password/keep", token=srv.root_token,
                json={"policy": "length = 2"})
    assert r.status_code == 400, r.text
    r = srv.get("sys/policies/password/keep", token=srv.root_token)
    assert r.status_code == 200 and r.json()["data"]["policy"] == good
    # Deleting is idempotent, as in Vault.
    for _ in range(2):
        r = srv.request("DELETE", "sys/policies/password/keep", token=srv.root_token)
        assert r.status_code == 204, r.text
    r = srv.request("LIST", "sys/policies/password/keep", token=srv.root_token)
    assert r.status_code == 405, r.text


def test_acl(srv):
    """Vault guards these paths with the ACL alone (no sudo): a token may generate from
    a policy without being able to read or change it, and one with create/update on
    sys/policies/password/* manages policies without sudo."""
    root = srv.client()
    root.write("sys/policies/password/acl-pol",
               policy='length = 12\nrule "charset" { charset = "qrs" }')
    root.write("sys/policy/pw-generate",
               policy='path "sys/policies/password/+/generate" { capabilities = ["read"] }')
    root.write("sys/policy/pw-admin",
               policy='path "sys/policies/password/*" {\n'
                      '  capabilities = ["create", "read", "update", "delete", "list"]\n}\n'
                      'path "sys/policies/password" { capabilities = ["list"] }')
    gen = make_token(srv, ["pw-generate"])
    admin = make_token(srv, ["pw-admin"])
    plain = make_token(srv, ["default"])

    r = srv.get("sys/policies/password/acl-pol/generate", token=gen)
    assert r.status_code == 200, r.text
    check_password(r.json()["data"]["password"], 12, [("qrs", 0)])
    for method, path in [("GET", "sys/policies/password/acl-pol"),
                         ("PUT", "sys/policies/password/acl-pol"),
                         ("DELETE", "sys/policies/password/acl-pol"),
                         ("LIST", "sys/policies/password")]:
        r = srv.request(method, path, token=gen, json={"policy": "length = 5"})
        assert r.status_code == 403, (method, path, r.status_code, r.text)
    r = srv.get("sys/policies/password/acl-pol/generate", token=plain)
    assert r.status_code == 403, r.text

    a = srv.client(token=admin)
    a.write("sys/policies/password/by-admin", policy='length = 5\nrule "charset" { charset = "z" }')
    assert "by-admin" in a.list("sys/policies/password")["data"]["keys"]
    assert a.read("sys/policies/password/by-admin")["data"]["policy"].startswith("length = 5")
    a.delete("sys/policies/password/by-admin")
    # pw-admin covers the policies, not generation: "*" matches ".../generate" too.
    r = srv.get("sys/policies/password/acl-pol/generate", token=admin)
    assert r.status_code == 200, r.text


def test_empty_list_is_404_and_help(srv):
    c = srv.client()
    for name in (c.list("sys/policies/password") or {}).get("data", {}).get("keys", []):
        c.delete("sys/policies/password/" + name)
    r = srv.request("LIST", "sys/policies/password", token=srv.root_token)
    assert r.status_code == 404, r.text
    for path in ("sys/policies/password/x/generate", "sys/policies/password/x",
                 "sys/policies/password"):
        r = srv.get(path + "?help=1", token=srv.root_token)
        assert r.status_code == 200, (path, r.text)
        assert "password" in r.json()["help"], r.text
    r = srv.get("sys/policies/password/x/generate?help=1")
    assert r.status_code == 403, r.text
