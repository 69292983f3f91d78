/*
 * Dynamic roles of the database engine: roles/:name, creds/:name, and the revocation and
 * renewal of the users they create (engines/database.h).
 *
 * creds/:name: the handler renders the username (username_template), takes a password
 * (cs_req_generate_password), renders the creation statements with both (escaped by
 * pg_sql.h for where each placeholder stands) and runs them in one transaction on the
 * config's pool; the request resumes once PostgreSQL committed and answers the
 * credentials. A failing statement rolls the transaction back (so no user is left), then
 * the role's rollback statements run, and the request fails with the server's message
 * (the password redacted).
 *
 * Revocation runs the role's revocation statements, or Vault's default sequence: revoke
 * the user's privileges in every schema where it holds some (schema names quoted as
 * identifiers: CVE-2026-39946 was an unquoted schema name there), on the public schema
 * and on the database, hand what it owns to the revoking user, and drop the role — in one
 * transaction, so a failure leaves the user as it was and the revocation can be retried.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engines/database.h"
#include "engines/database_internal.h"
#include "engines/database_template.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/util.h"

static const char default_renew[] = "ALTER ROLE \"{{name}}\" VALID UNTIL '{{expiration}}'";

static int load_role(struct cs_request *req, const char *name, cJSON **role)
{
	struct cs_buf key = CS_BUF_INIT;
	cs_buf_printf(&key, "role/%s", name);
	int rc = cs_view_get_json(req, key.data, role);
	cs_buf_free(&key);
	return rc;
}

int db_role_exists(struct cs_request *req, bool *exists)
{
	cJSON *role = NULL;
	int rc = load_role(req, cs_req_capture(req, "name"), &role);
	cJSON_Delete(role);
	*exists = rc == 0;
	return rc == CS_ENOTFOUND ? 0 : rc;
}

static cJSON *array_or_empty(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return v ? cJSON_Duplicate(v, true) : cJSON_CreateArray();
}

static const char *const stmt_fields[] = {"creation_statements", "revocation_statements",
					  "rollback_statements", "renew_statements"};

int db_role_read(struct cs_request *req)
{
	cJSON *role = NULL;
	int rc = load_role(req, cs_req_capture(req, "name"), &role);
	if (rc)
		return rc;
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "db_name", db_str(role, "db_name", ""));
	for (size_t i = 0; i < CS_ARRAY_LEN(stmt_fields); i++)
		cJSON_AddItemToObject(d, stmt_fields[i], array_or_empty(role, stmt_fields[i]));
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(role, "default_ttl");
	cJSON_AddNumberToObject(d, "default_ttl", cJSON_IsNumber(v) ? v->valuedouble : 0);
	v = cJSON_GetObjectItemCaseSensitive(role, "max_ttl");
	cJSON_AddNumberToObject(d, "max_ttl", cJSON_IsNumber(v) ? v->valuedouble : 0);
	cJSON_AddStringToObject(d, "credential_type", "password");
	v = cJSON_GetObjectItemCaseSensitive(role, "credential_config");
	if (v)
		cJSON_AddItemToObject(d, "credential_config", cJSON_Duplicate(v, true));
	cJSON_Delete(role);
	cs_req_set_data(req, d);
	return 0;
}

int db_role_write(struct cs_request *req)
{
	const char *name = cs_req_capture(req, "name");
	cJSON *role = NULL;
	int rc = load_role(req, name, &role);
	if (rc == CS_ENOTFOUND)
		role = cJSON_CreateObject(), rc = 0;
	if (rc)
		return rc;
	if (cs_req_has(req, "db_name")) {
		cJSON_DeleteItemFromObjectCaseSensitive(role, "db_name");
		cJSON_AddStringToObject(role, "db_name", cs_req_str(req, "db_name", ""));
	}
	for (size_t i = 0; i < CS_ARRAY_LEN(stmt_fields); i++) {
		cJSON *s = db_statements_field(req, stmt_fields[i], &rc);
		if (rc)
			goto out;
		if (s) {
			cJSON_DeleteItemFromObjectCaseSensitive(role, stmt_fields[i]);
			cJSON_AddItemToObject(role, stmt_fields[i], s);
		}
	}
	static const char *const ttls[] = {"default_ttl", "max_ttl"};
	for (size_t i = 0; i < 2; i++) {
		if (cs_req_has(req, ttls[i])) {
			cJSON_DeleteItemFromObjectCaseSensitive(role, ttls[i]);
			cJSON_AddNumberToObject(role, ttls[i], (double)cs_req_int(req, ttls[i], 0));
		}
	}
	const char *ct = cs_req_str(req, "credential_type", "password");
	if (strcmp(ct, "password") != 0) {
		rc = cs_req_error(req, CS_EINVAL,
				  "credential_type \"%s\" is not supported by the PostgreSQL "
				  "plugin here (only \"password\")",
				  ct);
		goto out;
	}
	if (cs_req_has(req, "credential_config")) {
		cJSON_DeleteItemFromObjectCaseSensitive(role, "credential_config");
		cJSON_AddItemToObject(role, "credential_config",
				      cJSON_Duplicate(cs_req_get(req, "credential_config"), true));
	}
	if (!*db_str(role, "db_name", "")) {
		rc = cs_req_error(req, CS_EINVAL, "empty database name attribute");
		goto out;
	}
	const cJSON *cs = cJSON_GetObjectItemCaseSensitive(role, "creation_statements");
	bool any = false;
	const cJSON *e;
	cJSON_ArrayForEach(e, cs) any |= cJSON_IsString(e) && !cs_pg_blank(e->valuestring);
	if (!any) {
		rc = cs_req_error(req, CS_EINVAL, "empty creation statements");
		goto out;
	}
	int64_t ttl =
	    (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(role, "default_ttl"));
	int64_t max =
	    (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(role, "max_ttl"));
	if (max > 0 && ttl > max) {
		rc = cs_req_error(req, CS_EINVAL, "ttl cannot be greater than max_ttl");
		goto out;
	}
	struct cs_buf key = CS_BUF_INIT;
	cs_buf_printf(&key, "role/%s", name);
	rc = cs_view_put_json(req, key.data, role);
	cs_buf_free(&key);
out:
	cJSON_Delete(role);
	return rc;
}

int db_role_delete(struct cs_request *req)
{
	struct cs_buf key = CS_BUF_INIT;
	cs_buf_printf(&key, "role/%s", cs_req_capture(req, "name"));
	int rc = cs_view_delete(req, key.data);
	cs_buf_free(&key);
	return rc;
}

int db_role_list(struct cs_request *req)
{
	return db_list_prefix(req, "role/");
}

/* ---------------------------------------------------------------- creds */

/* TTLs of a new credential: the role's, else the mount's, each capped by the max. */
static void creds_ttls(struct cs_request *req, const cJSON *role, int64_t *ttl, int64_t *max)
{
	int64_t mount_max = cs_req_max_ttl(req);
	*ttl = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(role, "default_ttl"));
	*max = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(role, "max_ttl"));
	if (*ttl <= 0)
		*ttl = cs_req_default_ttl(req);
	if (*max <= 0 || *max > mount_max)
		*max = mount_max;
	if (*ttl > *max)
		*ttl = *max;
}

/* The lease of new credentials: what revocation and renewal need, kept behind the barrier
 * with the lease (never shown to clients). */
static int creds_lease(struct cs_request *req, struct db_job *job)
{
	cJSON *in = cJSON_CreateObject();
	cJSON_AddStringToObject(in, "username", job->username);
	cJSON_AddStringToObject(in, "role", job->name);
	cJSON_AddStringToObject(in, "db_name", db_str(job->doc, "db_name", ""));
	return cs_req_lease(req, "creds", in, job->ttl, job->max_ttl);
}

/* creds resumes: PostgreSQL committed the new user. */
static int creds_answer(struct cs_request *req, struct db_job *job)
{
	int rc = creds_lease(req, job);
	if (rc) {
		/* No lease would ever revoke this user: drop it now, then fail. */
		return db_revoke_user(req, db_str(job->doc, "db_name", ""), job->name,
				      job->username, rc);
	}
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "username", job->username);
	cJSON_AddStringToObject(d, "password", job->password);
	cs_req_set_data(req, d);
	return 0;
}

int db_creds_read(struct cs_request *req)
{
	const char *name = cs_req_capture(req, "name");
	cJSON *role = NULL, *cfg = NULL;
	struct db_job *job = NULL;
	char *sqlpass = NULL;
	int rc = load_role(req, name, &role);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL, "unknown role: %s", name);
	if (rc)
		return rc;
	const char *db = db_str(role, "db_name", "");
	rc = db_load_config(req, db, &cfg);
	if (rc == CS_ENOTFOUND) {
		rc = cs_req_error(req, CS_EINVAL,
				  "failed to find entry for connection with name: "
				  "\"%s\"",
				  db);
		goto out;
	}
	if (rc)
		goto out;
	if (!db_role_allowed(cfg, name)) {
		rc = cs_req_error(req, CS_EINVAL, "\"%s\" is not an allowed role", name);
		goto out;
	}
	job = db_job_new();
	job->name = strdup(name);
	creds_ttls(req, role, &job->ttl, &job->max_ttl);
	job->expire_unix = cs_now_ns() / 1000000000 + job->ttl;

	const char *tmpl = db_str(cfg, "username_template", "");
	struct cs_db_template_data td = {.display_name = db_display_name(req), .role_name = name};
	char err[256];
	if (cs_db_template_render(*tmpl ? tmpl : CS_DB_DEFAULT_USERNAME_TEMPLATE, &td,
				  &job->username, err, sizeof err)) {
		rc = cs_req_error(req, CS_EINVAL, "unable to generate username: %s", err);
		goto out;
	}
	if (!*job->username || !cs_pg_valid_text(job->username)) {
		rc = cs_req_error(req, CS_EINVAL,
				  "unable to generate username: the template "
				  "produced an empty or invalid name");
		goto out;
	}
	rc = cs_req_generate_password(req, db_str(cfg, "password_policy", NULL), &job->password);
	if (!rc)
		rc = db_password_for_sql(cfg, job->password, &sqlpass);
	if (rc)
		goto out;
	char exp[64];
	db_format_expiration(job->expire_unix, exp, sizeof exp);
	struct cs_pg_var vars[] = {
	    {"name", job->username, CS_PG_BARE_IDENT},
	    {"username", job->username, CS_PG_BARE_IDENT},
	    {"password", sqlpass, CS_PG_BARE_LITERAL},
	    {"expiration", exp, CS_PG_BARE_LITERAL},
	};
	rc = db_add_statements(req, &job->op,
			       cJSON_GetObjectItemCaseSensitive(role, "creation_statements"), vars,
			       CS_ARRAY_LEN(vars), false);
	if (!rc)
		rc = db_add_statements(
		    req, &job->op, cJSON_GetObjectItemCaseSensitive(role, "rollback_statements"),
		    vars, 2, true);
	if (!rc && job->op.n_stmts == 0)
		rc = cs_req_error(req, CS_EINVAL, "empty creation statements");
	struct cs_pg_pool *pool = NULL;
	if (!rc)
		rc = db_pool_for(req, db, cfg, &pool);
	if (rc)
		goto out;
	job->doc = cJSON_CreateObject();
	cJSON_AddStringToObject(job->doc, "db_name", db);
	job->op.redact[0] = job->password;
	job->finish = creds_answer;
	job->fail_prefix = "failed to create the database user: ";
	cs_zero(sqlpass, strlen(sqlpass));
	free(sqlpass);
	cJSON_Delete(role);
	cs_json_delete_wiped(cfg);
	return db_job_run(req, job, pool);
out:
	if (sqlpass) {
		cs_zero(sqlpass, strlen(sqlpass));
		free(sqlpass);
	}
	if (job)
		db_job_free(job);
	cJSON_Delete(role);
	cs_json_delete_wiped(cfg);
	return rc;
}

/* ---------------------------------------------------------------- revocation */

/* The default revocation sequence, built from the answers of its first two queries. */
static int default_revoke_step(struct cs_pg_op *op, size_t idx, const PGresult *res, bool *stop)
{
	struct db_job *job = op->ctx;
	if (idx == 0) {
		/* exists, current database, owns objects here */
		if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
			*stop = true; /* already gone: nothing to revoke */
			return 0;
		}
		cJSON_AddStringToObject(job->doc, "dbname", PQgetvalue(res, 0, 1));
		cJSON_AddBoolToObject(job->doc, "owns", strcmp(PQgetvalue(res, 0, 2), "t") == 0);
		return 0;
	}
	if (idx != 1)
		return 0;
	struct cs_buf u = CS_BUF_INIT;
	if (cs_pg_quote_ident(&u, job->username)) {
		snprintf(op->errmsg, sizeof op->errmsg, "invalid username");
		return CS_EINVAL;
	}
	int rc = 0;
	for (int i = 0; i < PQntuples(res) && !rc; i++) {
		struct cs_buf s = CS_BUF_INIT;
		static const char *const heads[] = {
		    "REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA ",
		    "REVOKE ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA ", "REVOKE USAGE ON SCHEMA "};
		/* The schema name comes from the database: quoted like any identifier. */
		if (cs_pg_quote_ident(&s, PQgetvalue(res, i, 0))) {
			cs_buf_free(&s);
			continue; /* not valid UTF-8: it cannot be named; DROP OWNED covers it */
		}
		for (size_t f = 0; f < CS_ARRAY_LEN(heads); f++) {
			struct cs_buf q = CS_BUF_INIT;
			cs_buf_printf(&q, "%s%s FROM %s", heads[f], s.data, u.data);
			cs_pg_op_add_owned(op, cs_buf_steal(&q, NULL));
		}
		cs_buf_free(&s);
	}
	struct cs_buf q = CS_BUF_INIT;
	cs_buf_printf(&q, "REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM %s", u.data);
	cs_pg_op_add_owned(op, cs_buf_steal(&q, NULL));
	cs_buf_printf(&q, "REVOKE ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA public FROM %s",
		      u.data);
	cs_pg_op_add_owned(op, cs_buf_steal(&q, NULL));
	cs_buf_printf(&q, "REVOKE USAGE ON SCHEMA public FROM %s", u.data);
	cs_pg_op_add_owned(op, cs_buf_steal(&q, NULL));
	const char *dbname = db_str(job->doc, "dbname", "");
	cs_buf_puts(&q, "REVOKE CONNECT ON DATABASE ");
	if (cs_pg_quote_ident(&q, dbname) == 0) {
		cs_buf_printf(&q, " FROM %s", u.data);
		cs_pg_op_add_owned(op, cs_buf_steal(&q, NULL));
	} else {
		cs_buf_free(&q);
	}
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(job->doc, "owns"))) {
		/* Objects it created would block DROP ROLE: keep them, owned by us. */
		cs_buf_printf(&q, "REASSIGN OWNED BY %s TO CURRENT_USER", u.data);
		cs_pg_op_add_owned(op, cs_buf_steal(&q, NULL));
		cs_buf_printf(&q, "DROP OWNED BY %s", u.data);
		cs_pg_op_add_owned(op, cs_buf_steal(&q, NULL));
	}
	cs_buf_printf(&q, "DROP ROLE IF EXISTS %s", u.data);
	cs_pg_op_add_owned(op, cs_buf_steal(&q, NULL));
	cs_buf_free(&u);
	return rc;
}

/* The first two queries of the default sequence; parameters carry the username. */
static void default_revoke(struct db_job *job)
{
	const char *p[] = {job->username};
	cs_pg_op_add(&job->op,
		     "SELECT r.oid IS NOT NULL, current_database(), "
		     "EXISTS (SELECT 1 FROM pg_shdepend d JOIN pg_database b ON b.oid = d.dbid "
		     "WHERE d.refobjid = r.oid AND d.deptype = 'o' "
		     "AND b.datname = current_database()) "
		     "FROM (SELECT $1::text AS n) x LEFT JOIN pg_roles r ON r.rolname = x.n",
		     1, p);
	cs_pg_op_add(&job->op,
		     "WITH u AS (SELECT oid FROM pg_roles WHERE rolname = $1) "
		     "SELECT n.nspname FROM pg_namespace n, aclexplode(n.nspacl) a, u "
		     "WHERE a.grantee = u.oid "
		     "UNION SELECT n.nspname FROM pg_class c "
		     "JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a, u "
		     "WHERE a.grantee = u.oid "
		     "UNION SELECT n.nspname FROM pg_attribute t JOIN pg_class c ON c.oid = "
		     "t.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace, "
		     "aclexplode(t.attacl) a, u WHERE a.grantee = u.oid "
		     "UNION SELECT table_schema FROM information_schema.role_column_grants "
		     "WHERE grantee = $1",
		     1, p);
	job->op.on_result = default_revoke_step;
}

/* The revocation succeeded: 0, or the error it was run to clean up after. */
static int revoked(struct cs_request *req, struct db_job *job)
{
	return job->result;
}

int db_revoke_user(struct cs_request *req, const char *db, const char *role_name,
		   const char *username, int result)
{
	cJSON *cfg = NULL, *role = NULL;
	struct db_job *job = NULL;
	struct cs_pg_pool *pool = NULL;
	int rc = db_load_config(req, db, &cfg);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL,
				    "failed to find entry for connection with name: \"%s\"", db);
	if (rc)
		return rc;
	rc = role_name ? load_role(req, role_name, &role) : CS_ENOTFOUND;
	if (rc && rc != CS_ENOTFOUND)
		goto out;
	job = db_job_new();
	job->username = strdup(username);
	job->doc = cJSON_CreateObject();
	job->finish = revoked;
	job->result = result;
	job->fail_prefix = "failed to revoke the database user: ";
	/* A role deleted since: Vault's default sequence, as Vault does. */
	const cJSON *rs = cJSON_GetObjectItemCaseSensitive(role, "revocation_statements");
	bool custom = false;
	const cJSON *e;
	cJSON_ArrayForEach(e, rs) custom |= cJSON_IsString(e) && !cs_pg_blank(e->valuestring);
	rc = 0;
	if (custom) {
		struct cs_pg_var vars[] = {{"name", username, CS_PG_BARE_IDENT},
					   {"username", username, CS_PG_BARE_IDENT}};
		rc = db_add_statements(req, &job->op, rs, vars, CS_ARRAY_LEN(vars), false);
	} else {
		default_revoke(job);
	}
	if (!rc)
		rc = db_pool_for(req, db, cfg, &pool);
out:
	cJSON_Delete(role);
	cs_json_delete_wiped(cfg);
	if (rc) {
		if (job)
			db_job_free(job);
		return rc;
	}
	return db_job_run(req, job, pool);
}

static int renewed(struct cs_request *req, struct db_job *job)
{
	return 0;
}

int db_renew_user(struct cs_request *req, const char *db, const char *role_name,
		  const char *username, int64_t expire_unix)
{
	cJSON *cfg = NULL, *role = NULL;
	struct db_job *job = NULL;
	struct cs_pg_pool *pool = NULL;
	int rc = db_load_config(req, db, &cfg);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL,
				    "failed to find entry for connection with name: \"%s\"", db);
	if (rc)
		return rc;
	rc = role_name ? load_role(req, role_name, &role) : CS_ENOTFOUND;
	if (rc && rc != CS_ENOTFOUND)
		goto out;
	char exp[64];
	db_format_expiration(expire_unix, exp, sizeof exp);
	struct cs_pg_var vars[] = {{"name", username, CS_PG_BARE_IDENT},
				   {"username", username, CS_PG_BARE_IDENT},
				   {"expiration", exp, CS_PG_BARE_LITERAL}};
	job = db_job_new();
	job->username = strdup(username);
	job->finish = renewed;
	job->fail_prefix = "failed to renew the database user: ";
	const cJSON *rs = cJSON_GetObjectItemCaseSensitive(role, "renew_statements");
	cJSON *def = NULL;
	bool custom = false;
	const cJSON *e;
	cJSON_ArrayForEach(e, rs) custom |= cJSON_IsString(e) && !cs_pg_blank(e->valuestring);
	if (!custom)
		rs = def = cJSON_CreateStringArray((const char *const[]){default_renew}, 1);
	rc = db_add_statements(req, &job->op, rs, vars, CS_ARRAY_LEN(vars), false);
	cJSON_Delete(def);
	if (!rc)
		rc = db_pool_for(req, db, cfg, &pool);
out:
	cJSON_Delete(role);
	cs_json_delete_wiped(cfg);
	if (rc) {
		if (job)
			db_job_free(job);
		return rc;
	}
	return db_job_run(req, job, pool);
}

/* ---------------------------------------------------------------- leases */

/* The lease's internal data: the user, its role and its connection. */
static int lease_internal(struct cs_request *req, const char **db, const char **role,
			  const char **user)
{
	const cJSON *in = cs_req_get(req, "internal");
	*db = db_str(in, "db_name", NULL);
	*role = db_str(in, "role", NULL);
	*user = db_str(in, "username", NULL);
	if (!*db || !*user || !**user)
		return cs_req_error(req, CS_EINVAL, "the lease does not name a database user");
	return 0;
}

/* Expiry or revocation of a creds lease: the user is dropped (an error keeps the lease and
 * the expiration manager retries). */
int db_lease_revoke(struct cs_request *req)
{
	const char *db, *role, *user;
	int rc = lease_internal(req, &db, &role, &user);
	return rc ? rc : db_revoke_user(req, db, role, user, 0);
}

/* Renewal: the user's VALID UNTIL moves to now + the TTL granted. */
int db_lease_renew(struct cs_request *req)
{
	const char *db, *role, *user;
	int rc = lease_internal(req, &db, &role, &user);
	if (rc)
		return rc;
	int64_t ttl = cs_req_int(req, "ttl", 0);
	if (ttl <= 0)
		return cs_req_error(req, CS_EINVAL, "renewal without a TTL");
	return db_renew_user(req, db, role, user, cs_now_ns() / 1000000000 + ttl);
}

/* ---------------------------------------------------------------- table */

const struct cs_field cs_db_role_fields[] = {
    {.name = "name", .type = CS_FIELD_STRING, .desc = "name of the role"},
    {.name = "db_name", .type = CS_FIELD_STRING, .desc = "the connection config it uses"},
    {.name = "creation_statements",
     .type = CS_FIELD_ANY,
     .desc = "statements that create the user ({{name}}, {{password}}, {{expiration}})"},
    {.name = "revocation_statements",
     .type = CS_FIELD_ANY,
     .desc = "statements that remove the user (default: Vault's sequence)"},
    {.name = "rollback_statements",
     .type = CS_FIELD_ANY,
     .desc = "statements run when creation fails"},
    {.name = "renew_statements",
     .type = CS_FIELD_ANY,
     .desc = "statements that extend the user's validity"},
    {.name = "default_ttl", .type = CS_FIELD_DURATION, .desc = "default lease TTL"},
    {.name = "max_ttl", .type = CS_FIELD_DURATION, .desc = "maximum lease TTL"},
    {.name = "credential_type", .type = CS_FIELD_STRING, .desc = "password (the only type)"},
    {.name = "credential_config", .type = CS_FIELD_MAP, .desc = "credential options"},
    {.name = NULL},
};
