"""The database secrets engine against a real PostgreSQL 15 (tests/e2e/database_pg.py)."""
import time

import pytest

import custos_harness as H
from database_pg import Postgres

MP = "database"
CREATE = ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"]


@pytest.fixture(scope="module")
def pg():
    p = Postgres().init().start()
    try:
        yield p
    finally:
        p.cleanup()


@pytest.fixture(scope="module")
def srv(tmp_path_factory, pg):
    # periodic functions (static role rotation) every second instead of Vault's minute
    s = H.Server(tmp_path_factory.mktemp("srv"), name="db1",
                 extra_config='periodic_interval = "1s"\n')
    try:
        s.start()
        H.init_and_unseal(s)
        s.client().sys.enable_secrets_engine("database", path=MP)
        yield s
    finally:
        s.cleanup()


def put(srv, path, body, token=None):
    return srv.request("PUT", MP + "/" + path, token=token or srv.root_token, json=body)


def get(srv, path, token=None):
    return srv.request("GET", MP + "/" + path, token=token or srv.root_token)


def configure(srv, pg, name, **extra):
    body = {"plugin_name": "postgresql-database-plugin", "connection_url": pg.url(),
            "username": "postgres", "password": pg.password, "allowed_roles": ["*"]}
    body.update(extra)
    r = put(srv, "config/" + name, body)
    assert r.status_code == 204, r.text
    return body


def role(srv, name, db, **extra):
    body = {"db_name": db, "creation_statements": CREATE, "default_ttl": "1h", "max_ttl": "24h"}
    body.update(extra)
    r = put(srv, "roles/" + name, body)
    assert r.status_code == 204, r.text


def creds(srv, role_name, want=200):
    r = get(srv, "creds/" + role_name)
    assert r.status_code == want, r.text
    return r.json()


def test_config_read_hides_password_and_lists(srv, pg):
    configure(srv, pg, "main", max_open_connections=8, max_connection_lifetime="1h")
    r = get(srv, "config/main")
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert pg.password not in r.text
    assert "password" not in d["connection_details"]
    assert d["connection_details"]["username"] == "postgres"
    assert d["connection_details"]["connection_url"] == pg.url()
    assert d["connection_details"]["max_open_connections"] == 8
    assert d["connection_details"]["max_connection_lifetime"] == 3600
    assert d["plugin_name"] == "postgresql-database-plugin"
    assert d["allowed_roles"] == ["*"]
    assert d["verify_connection"] is True
    r = srv.request("LIST", MP + "/config", token=srv.root_token)
    assert "main" in r.json()["data"]["keys"]


def test_verify_connection_refuses_bad_password_and_stores_nothing(srv, pg):
    body = {"plugin_name": "postgresql-database-plugin", "connection_url": pg.url(),
            "username": "postgres", "password": "wrong", "allowed_roles": ["*"]}
    r = put(srv, "config/bad", body)
    assert r.status_code == 400, r.text
    assert "error verifying connection" in r.text
    assert "wrong" not in r.json()["errors"][0].split("connection: ", 1)[-1].replace("wrong password", "")
    assert get(srv, "config/bad").status_code == 404
    # verify_connection=false stores it without connecting
    body["verify_connection"] = False
    assert put(srv, "config/bad", body).status_code == 204
    assert get(srv, "config/bad").status_code == 200


def test_config_refuses_bad_input(srv, pg):
    base = {"plugin_name": "postgresql-database-plugin", "connection_url": pg.url(),
            "username": "postgres", "password": pg.password, "verify_connection": False}
    for extra, msg in (({"plugin_name": "mysql-database-plugin"}, "unsupported plugin"),
                       ({"connection_url": ""}, "connection_url"),
                       ({"password_authentication": "md5"}, "password authentication"),
                       ({"username_template": "{{ nope }}"}, "username template"),
                       ({"max_open_connections": -1}, "negative")):
        b = dict(base, **extra)
        r = put(srv, "config/refused", b)
        assert r.status_code == 400 and msg in r.text, (extra, r.text)
    assert get(srv, "config/refused").status_code == 404


def test_dynamic_creds_log_in_and_expire_in_postgres(srv, pg):
    configure(srv, pg, "main")
    role(srv, "app", "main")
    r = get(srv, "roles/app").json()["data"]
    assert r["db_name"] == "main" and r["creation_statements"] == CREATE
    assert r["default_ttl"] == 3600 and r["max_ttl"] == 86400 and r["credential_type"] == "password"
    c = creds(srv, "app")
    u, p = c["data"]["username"], c["data"]["password"]
    assert c["lease_duration"] == 3600
    # Vault's default template: v-<display 8>-<role 8>-<random 20>-<unix time>, <= 63
    assert u.startswith("v-root-app-") and len(u) <= 63, u
    assert pg.can_login(u, p)
    assert not pg.can_login(u, p + "x")
    until = pg.query("SELECT extract(epoch FROM rolvaliduntil - now())::int FROM pg_roles "
                     "WHERE rolname = '%s'" % u)
    assert 3000 < int(until) <= 3600, until
    # two requests, two users
    c2 = creds(srv, "app")
    assert c2["data"]["username"] != u


def test_role_not_allowed_and_unknown(srv, pg):
    configure(srv, pg, "narrow", allowed_roles=["only-*"])
    role(srv, "other", "narrow")
    r = get(srv, "creds/other")
    assert r.status_code == 400 and "not an allowed role" in r.text
    role(srv, "only-me", "narrow")
    creds(srv, "only-me")
    r = get(srv, "creds/ghost")
    assert r.status_code == 400 and "unknown role" in r.text


def test_role_validation(srv, pg):
    for body, msg in (({"creation_statements": CREATE}, "database name"),
                      ({"db_name": "main"}, "creation statements"),
                      ({"db_name": "main", "creation_statements": CREATE, "default_ttl": 100,
                        "max_ttl": 10}, "max_ttl"),
                      ({"db_name": "main", "creation_statements": CREATE,
                        "credential_type": "rsa_private_key"}, "credential_type")):
        r = put(srv, "roles/invalid", body)
        assert r.status_code == 400 and msg in r.text, (body, r.text)
    assert get(srv, "roles/invalid").status_code == 404


def test_failing_statement_rolls_back_and_runs_rollback_statements(srv, pg):
    configure(srv, pg, "rb", username_template="rb-{{.RoleName}}")
    pg.query("CREATE TABLE IF NOT EXISTS rb_log (who text)")
    role(srv, "boom", "rb",
         creation_statements=CREATE + ["GRANT SELECT ON no_such_table TO \"{{name}}\";"],
         rollback_statements=["INSERT INTO rb_log VALUES ('{{name}}')"])
    r = get(srv, "creds/boom")
    assert r.status_code == 500, r.text
    assert "no_such_table" in r.text
    assert not pg.role_exists("rb-boom")
    assert pg.query("SELECT count(*) FROM rb_log WHERE who = 'rb-boom'") == "1"


def test_statement_text_cannot_swallow_the_commit(srv, pg):
    """Statements run in one transaction sent as one query: a trailing line comment ends
    at its line; an unterminated block comment is refused and leaves no user."""
    configure(srv, pg, "cm", username_template="cm-{{.RoleName}}")
    role(srv, "linecomment", "cm", creation_statements=[CREATE[0] + " -- trailing comment"])
    c = creds(srv, "linecomment")["data"]
    assert pg.can_login(c["username"], c["password"])
    role(srv, "blockcomment", "cm", creation_statements=[CREATE[0] + " /* never closed"])
    r = get(srv, "creds/blockcomment")
    assert r.status_code == 500, r.text
    assert not pg.role_exists("cm-blockcomment")

def test_custom_statements_with_grants(srv, pg):
    configure(srv, pg, "main")
    pg.query("CREATE TABLE IF NOT EXISTS inventory (item text); "
             "INSERT INTO inventory VALUES ('widget')")
    role(srv, "reader", "main", creation_statements=[
        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"
        " GRANT SELECT ON inventory TO \"{{name}}\";",
        # bare placeholders are quoted as identifier / literal
        "COMMENT ON ROLE {{name}} IS {{expiration}}"])
    c = creds(srv, "reader")["data"]
    rc, out = pg.psql("SELECT item FROM inventory", user=c["username"], password=c["password"])
    assert out == "widget"
    rc, out = pg.psql("DELETE FROM inventory", user=c["username"], password=c["password"],
                      check=False)
    assert rc != 0 and "permission denied" in out


@pytest.mark.parametrize("rname,suffix", [("q'uote", "-"), ('dq"uote', "-"), ("semi;colon--x", "-"),
                                          ("bs", "\\'); DROP ROLE postgres; --\\")])
def test_hostile_names_are_quoted(srv, pg, rname, suffix):
    """A role name or template text (and so a username) with quotes, semicolons and
    backslashes stays one identifier and one literal: the user exists under exactly that
    name and nothing else ran."""
    configure(srv, pg, "tmpl", username_template="{{.RoleName}}" + suffix + "{{random 6}}")
    role(srv, rname, "tmpl", creation_statements=[
        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
        "COMMENT ON ROLE \"{{name}}\" IS '{{name}}';",
        "COMMENT ON ROLE \"{{name}}\" IS E'{{name}}';"])
    before = pg.query("SELECT count(*) FROM pg_roles")
    c = creds(srv, rname)["data"]
    assert c["username"].startswith(rname + suffix)
    assert pg.role_exists(c["username"])
    assert pg.can_login(c["username"], c["password"])
    assert int(pg.query("SELECT count(*) FROM pg_roles")) == int(before) + 1
    lit = "'" + c["username"].replace("'", "''") + "'"
    assert pg.query("SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = "
                    + lit) == c["username"]


def test_scram_password_authentication(srv, pg):
    configure(srv, pg, "scram", password_authentication="scram-sha-256")
    role(srv, "s", "scram")
    c = creds(srv, "s")["data"]
    v = pg.query("SELECT rolpassword FROM pg_authid WHERE rolname = '%s'" % c["username"])
    assert v.startswith("SCRAM-SHA-256$4096:")
    assert pg.can_login(c["username"], c["password"])


def test_rotate_root_locks_out_the_old_password(srv, pg):
    pg.query("CREATE ROLE custos_admin WITH LOGIN SUPERUSER PASSWORD 'initial-pw'")
    r = put(srv, "config/rot", {"plugin_name": "postgresql-database-plugin",
                                "connection_url": pg.url(), "username": "custos_admin",
                                "password": "initial-pw", "allowed_roles": ["*"]})
    assert r.status_code == 204, r.text
    assert pg.can_login("custos_admin", "initial-pw")
    r = put(srv, "rotate-root/rot", {})
    assert r.status_code == 204, r.text
    assert not pg.can_login("custos_admin", "initial-pw")
    # custos still connects with the password only it knows
    role(srv, "afterrot", "rot")
    c = creds(srv, "afterrot")["data"]
    assert pg.can_login(c["username"], c["password"])
    assert "initial-pw" not in get(srv, "config/rot").text
    # and reset/ closes and reopens connections with it
    assert put(srv, "reset/rot", {}).status_code == 204
    creds(srv, "afterrot")


def test_database_down_is_an_error_not_a_hang(srv, pg):
    r = put(srv, "config/down", {"plugin_name": "postgresql-database-plugin",
                                 "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:1/x",
                                 "username": "u", "password": "p", "allowed_roles": ["*"],
                                 "verify_connection": False})
    assert r.status_code == 204
    role(srv, "downrole", "down")
    r = get(srv, "creds/downrole")
    assert r.status_code == 500 and "connect" in r.text, r.text
    # the server still serves other requests
    assert srv.request("GET", "sys/health").status_code == 200


def test_hvac_database_api(srv, pg):
    """Vault's own client (hvac's secrets.database) works unchanged."""
    c = srv.client()
    c.secrets.database.configure("hv", "postgresql-database-plugin", allowed_roles=["hv-*"],
                                 connection_url=pg.url(), username="postgres",
                                 password=pg.password, mount_point=MP)
    conn = c.secrets.database.read_connection("hv", mount_point=MP)["data"]
    assert conn["connection_details"]["username"] == "postgres"
    c.secrets.database.create_role("hv-app", "hv", CREATE, default_ttl="30m", max_ttl="1h",
                                   mount_point=MP)
    assert "hv-app" in c.secrets.database.list_roles(mount_point=MP)["data"]["keys"]
    cr = c.secrets.database.generate_credentials("hv-app", mount_point=MP)
    assert cr["lease_duration"] == 1800
    assert pg.can_login(cr["data"]["username"], cr["data"]["password"])
    pg.query("CREATE ROLE hv_static LOGIN PASSWORD 'orig-pw'")
    c.secrets.database.create_static_role(
        "hv-static", "hv", "hv_static",
        ["ALTER ROLE \"{{name}}\" WITH PASSWORD '{{password}}'"], rotation_period=3600,
        mount_point=MP)
    st = c.secrets.database.get_static_credentials("hv-static", mount_point=MP)["data"]
    assert st["username"] == "hv_static" and pg.can_login("hv_static", st["password"])

def test_password_policy_shapes_generated_passwords(srv, pg):
    """password_policy names a sys/policies/password policy: creds, rotate-root and static
    rotations draw from it; an unknown policy fails creds and creates no user."""
    policy = 'length = 32\nrule "charset" {\n  charset = "abcdef0123456789"\n  min-chars = 4\n}\n'
    r = srv.request("PUT", "sys/policies/password/dbhex", token=srv.root_token,
                    json={"policy": policy})
    assert r.status_code in (200, 204), r.text
    configure(srv, pg, "pol", password_policy="dbhex")
    role(srv, "polrole", "pol")
    for _ in range(5):
        c = creds(srv, "polrole")["data"]
        p = c["password"]
        assert len(p) == 32 and set(p) <= set("abcdef0123456789"), p
        assert pg.can_login(c["username"], p)
    configure(srv, pg, "nopol", password_policy="no-such-policy", username_template="np-{{.RoleName}}")
    role(srv, "nopolrole", "nopol")
    r = get(srv, "creds/nopolrole")
    assert r.status_code == 400, r.text
    assert not pg.role_exists("np-nopolrole")

# ---- leases ---------------------------------------------------------------------------

def wait_for(cond, timeout=30, step=0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def test_revoke_drops_the_user(srv, pg):
    configure(srv, pg, "main")
    role(srv, "rev", "main")
    c = creds(srv, "rev")
    u, p = c["data"]["username"], c["data"]["password"]
    assert c["renewable"] is True and c["lease_id"].startswith(MP + "/creds/rev/")
    assert pg.can_login(u, p)
    r = srv.request("PUT", "sys/leases/revoke", token=srv.root_token,
                    json={"lease_id": c["lease_id"]})
    assert r.status_code == 204, r.text
    assert wait_for(lambda: not pg.role_exists(u))
    assert not pg.can_login(u, p)
    r = srv.request("PUT", "sys/leases/lookup", token=srv.root_token,
                    json={"lease_id": c["lease_id"]})
    assert r.status_code == 400, r.text


def test_renew_extends_valid_until(srv, pg):
    configure(srv, pg, "main")
    role(srv, "ren", "main", default_ttl="60s", max_ttl="2h")
    c = creds(srv, "ren")
    u = c["data"]["username"]
    q = "SELECT extract(epoch FROM rolvaliduntil - now())::int FROM pg_roles WHERE rolname = '%s'" % u
    assert int(pg.query(q)) <= 60
    r = srv.request("PUT", "sys/leases/renew", token=srv.root_token,
                    json={"lease_id": c["lease_id"], "increment": 3600})
    assert r.status_code == 200, r.text
    assert r.json()["lease_duration"] == 3600
    assert 3500 < int(pg.query(q)) <= 3600


def test_expiry_drops_the_user(srv, pg):
    configure(srv, pg, "main")
    role(srv, "short", "main", default_ttl="2s", max_ttl="2s")
    c = creds(srv, "short")
    u = c["data"]["username"]
    assert c["lease_duration"] == 2
    assert pg.role_exists(u)
    assert wait_for(lambda: not pg.role_exists(u), timeout=30)


def test_revoking_the_token_revokes_its_creds(srv, pg):
    configure(srv, pg, "main")
    role(srv, "owned", "main")
    tok = srv.client().auth.token.create(policies=["root"])["auth"]["client_token"]
    c = creds_with(srv, "owned", tok)
    u = c["data"]["username"]
    assert pg.role_exists(u)
    srv.client().auth.token.revoke(tok)
    assert wait_for(lambda: not pg.role_exists(u))


def creds_with(srv, role_name, token):
    r = srv.request("GET", MP + "/creds/" + role_name, token=token)
    assert r.status_code == 200, r.text
    return r.json()


def test_default_revocation_quotes_schema_names(srv, pg):
    """CVE-2026-39946: Vault's default revocation pasted schema names unquoted. Schemas
    whose names carry SQL are revoked from and left alone; nothing they hold runs."""
    configure(srv, pg, "main")
    evil = ['cve; CREATE ROLE injected_cve1; --', 'cve"; CREATE ROLE injected_cve2; --',
            "cve'; CREATE ROLE injected_cve3; --"]
    grants = []
    for i, s in enumerate(evil):
        qs = '"' + s.replace('"', '""') + '"'
        pg.query("CREATE SCHEMA IF NOT EXISTS %s; CREATE TABLE IF NOT EXISTS %s.t%d (x int)"
                 % (qs, qs, i))
        grants.append("GRANT USAGE ON SCHEMA %s TO \"{{name}}\"; GRANT SELECT ON %s.t%d TO "
                      "\"{{name}}\";" % (qs, qs, i))
    role(srv, "cve", "main", creation_statements=CREATE + grants + [
        # something it owns, so REASSIGN OWNED has work
        "GRANT CREATE ON SCHEMA public TO \"{{name}}\";"])
    c = creds(srv, "cve")
    u, p = c["data"]["username"], c["data"]["password"]
    pg.psql("CREATE TABLE public.owned_by_dyn (x int)", user=u, password=p)
    r = srv.request("PUT", "sys/leases/revoke", token=srv.root_token,
                    json={"lease_id": c["lease_id"]})
    assert r.status_code == 204, r.text
    assert wait_for(lambda: not pg.role_exists(u))
    for n in ("injected_cve1", "injected_cve2", "injected_cve3"):
        assert not pg.role_exists(n), n
    for i, s in enumerate(evil):  # the schemas and tables are still there
        lit = "'" + s.replace("'", "''") + "'"
        assert pg.query("SELECT count(*) FROM pg_tables WHERE schemaname = %s" % lit) == "1"
    assert pg.query("SELECT tableowner FROM pg_tables WHERE tablename = 'owned_by_dyn'") == "postgres"


def test_custom_revocation_statements(srv, pg):
    configure(srv, pg, "main")
    pg.query("CREATE TABLE IF NOT EXISTS revoke_log (who text)")
    role(srv, "custrev", "main", revocation_statements=[
        "INSERT INTO revoke_log VALUES ('{{name}}'); DROP ROLE \"{{name}}\";"])
    c = creds(srv, "custrev")
    u = c["data"]["username"]
    r = srv.request("PUT", "sys/leases/revoke", token=srv.root_token,
                    json={"lease_id": c["lease_id"]})
    assert r.status_code == 204, r.text
    assert wait_for(lambda: not pg.role_exists(u))
    assert pg.query("SELECT count(*) FROM revoke_log WHERE who = '%s'" % u) == "1"


def test_postgres_down_retries_then_irrevocable_then_force(srv):
    """Leases that fall due while PostgreSQL is down stay; one whose database returns in
    time is revoked then; one whose database stays away becomes irrevocable, is listed,
    and revoke-force drops it."""
    p2 = Postgres().init().start()
    try:
        configure(srv, p2, "flaky")
        role(srv, "flaky", "flaky", default_ttl="2s", max_ttl="2s")
        a = creds(srv, "flaky")
        ua = a["data"]["username"]
        p2.stop()
        time.sleep(4)  # due, and at least one attempt failed
        r = srv.request("PUT", "sys/leases/lookup", token=srv.root_token,
                        json={"lease_id": a["lease_id"]})
        assert r.status_code == 200, r.text
        p2.start()
        assert wait_for(lambda: not p2.role_exists(ua), timeout=30)
        assert wait_for(lambda: srv.request("PUT", "sys/leases/lookup", token=srv.root_token,
                                            json={"lease_id": a["lease_id"]}).status_code == 400)

        b = creds(srv, "flaky")
        ub = b["data"]["username"]
        p2.stop()

        def irrevocable():
            r = srv.request("GET", "sys/leases", token=srv.root_token,
                            params={"type": "irrevocable"})
            return r.status_code == 200 and any(
                e["lease_id"] == b["lease_id"] for e in r.json()["data"]["leases"])
        assert wait_for(irrevocable, timeout=60, step=1)
        r = srv.request("GET", "sys/leases/count", token=srv.root_token,
                        params={"type": "irrevocable"})
        assert r.json()["data"]["lease_count"] >= 1
        # (the prefix of its role: sys/leases/revoke-force here names whole segments)
        r = srv.request("PUT", "sys/leases/revoke-force/" + MP + "/creds/flaky",
                        token=srv.root_token)
        assert r.status_code == 204, r.text
        assert not irrevocable()
        p2.start()
        assert p2.role_exists(ub)  # force means custos forgot it, as Vault
    finally:
        p2.cleanup()


# ---- static roles ---------------------------------------------------------------------

def static_creds(srv, name):
    r = get(srv, "static-creds/" + name)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_static_role_rotates_on_its_period(srv, pg):
    configure(srv, pg, "main")
    pg.query("CREATE ROLE static_period LOGIN PASSWORD 'orig-pw'")
    r = put(srv, "static-roles/sp", {"db_name": "main", "username": "static_period",
                                     "rotation_period": "5s"})
    assert r.status_code == 204, r.text
    # creating it took the user over: the old password no longer works
    assert not pg.can_login("static_period", "orig-pw")
    c1 = static_creds(srv, "sp")
    assert c1["username"] == "static_period" and c1["rotation_period"] == 5
    assert 0 <= c1["ttl"] <= 5
    assert pg.can_login("static_period", c1["password"])
    d = get(srv, "static-roles/sp").json()["data"]
    assert d["username"] == "static_period" and "password" not in d
    assert c1["password"] not in get(srv, "static-roles/sp").text
    assert wait_for(lambda: static_creds(srv, "sp")["password"] != c1["password"], timeout=30)
    c2 = static_creds(srv, "sp")
    assert pg.can_login("static_period", c2["password"])
    assert not pg.can_login("static_period", c1["password"])
    r = srv.request("LIST", MP + "/static-roles", token=srv.root_token)
    assert "sp" in r.json()["data"]["keys"]


def test_rotate_role_now(srv, pg):
    configure(srv, pg, "main")
    pg.query("CREATE ROLE static_manual LOGIN PASSWORD 'orig-pw'")
    r = put(srv, "static-roles/sm", {"db_name": "main", "username": "static_manual",
                                     "rotation_period": "24h",
                                     "rotation_statements": [
                                         "ALTER ROLE \"{{name}}\" WITH PASSWORD '{{password}}'"]})
    assert r.status_code == 204, r.text
    c1 = static_creds(srv, "sm")
    assert c1["ttl"] > 86000
    assert put(srv, "rotate-role/sm", {}).status_code == 204
    c2 = static_creds(srv, "sm")
    assert c2["password"] != c1["password"]
    assert pg.can_login("static_manual", c2["password"])
    assert not pg.can_login("static_manual", c1["password"])
    # a second static role cannot take the same user
    r = put(srv, "static-roles/sm2", {"db_name": "main", "username": "static_manual",
                                      "rotation_period": "1h"})
    assert r.status_code == 400 and "already managed" in r.text
    # a user that does not exist: creation fails, nothing stored
    r = put(srv, "static-roles/ghost", {"db_name": "main", "username": "no_such_user",
                                        "rotation_period": "1h"})
    assert r.status_code == 500, r.text
    assert get(srv, "static-roles/ghost").status_code == 404
    assert srv.request("DELETE", MP + "/static-roles/sm", token=srv.root_token).status_code == 204
    assert get(srv, "static-creds/sm").status_code == 400


def test_static_role_validation(srv, pg):
    configure(srv, pg, "main")
    base = {"db_name": "main", "username": "postgres"}
    for extra, msg in (({}, "one of rotation_schedule or rotation_period"),
                       ({"rotation_period": "5s", "rotation_schedule": "* * * * *"},
                        "mutually exclusive"),
                       ({"rotation_period": "2s"}, "5 seconds or more"),
                       ({"rotation_schedule": "61 * * * *"}, "could not parse"),
                       ({"rotation_schedule": "* * * *"}, "could not parse"),
                       ({"rotation_period": "1h", "rotation_window": "2h"}, "rotation_window"),
                       ({"rotation_schedule": "0 * * * *", "rotation_window": "10m"},
                        "3600 seconds")):
        r = put(srv, "static-roles/bad", dict(base, **extra))
        assert r.status_code == 400 and msg in r.text, (extra, r.text)
    assert get(srv, "static-roles/bad").status_code == 404


@pytest.mark.timeout_s(150)
def test_static_role_rotates_on_its_cron_schedule(srv, pg):
    configure(srv, pg, "main")
    pg.query("CREATE ROLE static_cron LOGIN PASSWORD 'orig-pw'")
    r = put(srv, "static-roles/sc", {"db_name": "main", "username": "static_cron",
                                     "rotation_schedule": "* * * * *",
                                     "rotation_window": "1h"})
    assert r.status_code == 204, r.text
    c1 = static_creds(srv, "sc")
    assert c1["rotation_schedule"] == "* * * * *" and c1["rotation_window"] == 3600
    assert 0 <= c1["ttl"] <= 60
    assert wait_for(lambda: static_creds(srv, "sc")["password"] != c1["password"], timeout=90,
                    step=1)
    c2 = static_creds(srv, "sc")
    assert c2["last_vault_rotation"] != c1["last_vault_rotation"]
    assert pg.can_login("static_cron", c2["password"])
    assert not pg.can_login("static_cron", c1["password"])



def test_static_rotation_survives_a_restart(srv, pg):
    """The next rotation time lives in storage: a node that was down when it fell due
    rotates once it is back and active, and reads the same password as before it went."""
    configure(srv, pg, "main")
    pg.query("CREATE ROLE static_restart LOGIN PASSWORD 'orig-pw'")
    r = put(srv, "static-roles/sr", {"db_name": "main", "username": "static_restart",
                                     "rotation_period": "8s"})
    assert r.status_code == 204, r.text
    c1 = static_creds(srv, "sr")
    srv.stop()
    time.sleep(9)  # due while the node is down
    assert pg.can_login("static_restart", c1["password"])
    srv.start()
    H.unseal(srv)
    H.wait_active(srv)
    assert wait_for(lambda: static_creds(srv, "sr")["password"] != c1["password"], timeout=30)
    c2 = static_creds(srv, "sr")
    assert pg.can_login("static_restart", c2["password"])
    assert not pg.can_login("static_restart", c1["password"])

# ---- cluster --------------------------------------------------------------------------

@pytest.mark.timeout_s(240)
def test_cluster_creds_through_a_standby_and_failover_revokes(cluster_factory, pg):
    """Credentials requested through a standby (forwarded to the active node); the active
    node is killed -9 while their leases are about to expire; the new active node revokes
    them."""
    cl = cluster_factory(n=3)
    cl.wait_voters(3)
    leader = cl.leader()
    leader.client(cl.root_token).sys.enable_secrets_engine("database", path=MP)
    standby = cl.standbys()[0]
    configure(standby, pg, "main")
    role(standby, "ha", "main", default_ttl="10s", max_ttl="10s")
    users = []
    for _ in range(3):
        c = creds(standby, "ha")["data"]
        assert pg.can_login(c["username"], c["password"])
        users.append(c["username"])
    cl.kill9(leader)
    new = cl.leader(exclude=(leader,), timeout=30)
    assert new is not leader
    assert wait_for(lambda: not any(pg.role_exists(u) for u in users), timeout=60, step=1)
