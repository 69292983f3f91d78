"""The database secrets engine against a real PostgreSQL 15 (tests/e2e/database_pg.py)."""
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
def srv(module_unsealed, pg):
    module_unsealed.client().sys.enable_secrets_engine("database", path=MP)
    return module_unsealed


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
