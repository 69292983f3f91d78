/*
 * The database engine: connection configs, the per-core pools, and the job that parks a
 * request on a PostgreSQL operation (engines/database.h).
 *
 * Happy path of anything that talks to PostgreSQL (config write with verify_connection,
 * rotate-root, creds, revocation): the handler reads and validates, builds the statements
 * (values escaped by pg_sql.h), submits them to the config's pool and parks the request
 * (cs_req_wait). The pool answers on a later loop turn; the request resumes in a fresh
 * transaction and writes what the operation decided (the config with its new password,
 * the lease). Failure modes: the database refuses or is down → the op's error, nothing
 * written; the node seals, loses leadership or shuts down meanwhile → the core's error,
 * nothing written (the pools are closed by the reset hook and at shutdown).
 *
 * Storage (the mount's view, behind the barrier): config/<name> holds the connection
 * config with the root password; role/<name> the dynamic roles.
 */
#include "engines/database.h"

#include <ctype.h>
#include <fnmatch.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engines/database_internal.h"
#include "engines/database_template.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"

/* ---------------------------------------------------------------- small helpers */

const char *db_str(const cJSON *o, const char *key, const char *def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : def;
}

static int64_t db_int(const cJSON *o, const char *key, int64_t def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : def;
}

const char *db_display_name(const struct cs_request *req)
{
	return db_str(req->token_entry, "display_name", "");
}

bool db_role_allowed(const cJSON *cfg, const char *role)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(cfg, "allowed_roles"))
	{
		if (cJSON_IsString(e) && fnmatch(e->valuestring, role, 0) == 0)
			return true;
	}
	return false;
}

void db_format_expiration(int64_t unix_secs, char *out, size_t len)
{
	time_t t = (time_t)unix_secs;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%d %H:%M:%S+0000", &tm);
}

int db_password_for_sql(const cJSON *cfg, const char *password, char **out)
{
	if (strcmp(db_str(cfg, "password_authentication", "password"), "scram-sha-256") == 0)
		return cs_pg_scram_verifier(password, out);
	*out = strdup(password);
	return *out ? 0 : CS_ENOMEM;
}

int db_add_statements(struct cs_request *req, struct cs_pg_op *op, const cJSON *list,
		      const struct cs_pg_var *vars, size_t n_vars, bool rollback)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, list)
	{
		if (!cJSON_IsString(e) || cs_pg_blank(e->valuestring))
			continue;
		char *sql, err[256];
		if (cs_pg_render(e->valuestring, vars, n_vars, &sql, err, sizeof err))
			return cs_req_error(req, CS_EINVAL, "%s", err);
		if (rollback)
			cs_pg_op_add_rollback(op, sql);
		else
			cs_pg_op_add_owned(op, sql);
	}
	return 0;
}

/* A statements field as an array of strings: Vault accepts one string or a list (a
 * string is one entry; commas do not split statements). NULL when absent. */
static cJSON *statements_field(struct cs_request *req, const char *name, int *rc)
{
	const cJSON *v = cs_req_get(req, name);
	*rc = 0;
	if (!v || cJSON_IsNull(v))
		return NULL;
	if (cJSON_IsString(v)) {
		cJSON *a = cJSON_CreateArray();
		if (*v->valuestring)
			cJSON_AddItemToArray(a, cJSON_CreateString(v->valuestring));
		return a;
	}
	if (cJSON_IsArray(v)) {
		const cJSON *e;
		cJSON_ArrayForEach(e, v) if (!cJSON_IsString(e)) goto bad;
		return cJSON_Duplicate(v, true);
	}
bad:
	*rc = cs_req_error(req, CS_EINVAL, "error converting input for field \"%s\"", name);
	return NULL;
}

cJSON *db_statements_field(struct cs_request *req, const char *name, int *rc)
{
	return statements_field(req, name, rc);
}

/* ---------------------------------------------------------------- pools */

struct pool_ent {
	char *key; /* "<storage prefix><config name>" */
	uint8_t fp[32];
	struct cs_pg_pool *pool;
	struct pool_ent *next;
};

struct db_state {
	struct cs_core *core;
	struct pool_ent *pools;
	uv_prepare_t shutdown_watch;
	bool watching; /* shutdown_watch initialised (once per core) */
};

static void state_release(void *p)
{
	struct db_state *st = p;
	/* The pools were closed on the loop (shutdown_watch); what is left is bookkeeping. */
	for (struct pool_ent *e = st->pools, *n; e; e = n) {
		n = e->next;
		free(e->key);
		free(e);
	}
	st->pools = NULL;
}

static const struct cs_core_state_type db_state_type = {
    .name = "database", .size = sizeof(struct db_state), .release = state_release};

static void close_all(struct db_state *st)
{
	for (struct pool_ent *e = st->pools, *n; e; e = n) {
		n = e->next;
		cs_pg_pool_close(e->pool);
		free(e->key);
		free(e);
	}
	st->pools = NULL;
}

/* Every loop turn, without keeping the loop alive: at shutdown, close the pools so that
 * their connections end and their handles close before the loop does. */
static void shutdown_check(uv_prepare_t *h)
{
	struct db_state *st = CS_CONTAINER_OF(h, struct db_state, shutdown_watch);
	if (!cs_core_shutting_down(st->core))
		return;
	close_all(st);
	uv_prepare_stop(h);
	uv_close((uv_handle_t *)h, NULL);
	/* watching stays true: the handle is never started again */
}

static struct db_state *db_state(struct cs_core *core)
{
	struct db_state *st = cs_core_state(core, &db_state_type);
	st->core = core;
	return st;
}

/* Before the first pool of a core opens: watch for its shutdown (a core that never talks
 * to a database gets no handle). */
static void watch_shutdown(struct db_state *st)
{
	if (st->watching)
		return;
	uv_prepare_init(cs_core_loop(st->core), &st->shutdown_watch);
	uv_prepare_start(&st->shutdown_watch, shutdown_check);
	uv_unref((uv_handle_t *)&st->shutdown_watch);
	st->watching = true;
}

/* Seal or leadership loss: nothing of the old term may keep talking to the databases. */
static void db_reset(struct cs_core *core)
{
	close_all(db_state(core));
}

/* Append `s` percent-encoded for a URI's userinfo. */
static void put_uri_escaped(struct cs_buf *b, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (isalnum(*p) || strchr("-._~", *p))
			cs_buf_putc(b, (char)*p);
		else
			cs_buf_printf(b, "%%%02X", *p);
	}
}

/* Append `s` as a libpq key=value value: quoted, with \ and ' escaped. */
static void put_kv_quoted(struct cs_buf *b, const char *s)
{
	cs_buf_putc(b, '\'');
	for (; *s; s++) {
		if (*s == '\'' || *s == '\\')
			cs_buf_putc(b, '\\');
		cs_buf_putc(b, *s);
	}
	cs_buf_putc(b, '\'');
}

/* The connection string with {{username}} and {{password}} filled in: percent-encoded in
 * a URI (unless disable_escaping, as Vault), quoted in a key=value string, so that a
 * password with '@', '/' or a quote cannot change the host or add options. */
static int render_conninfo(const cJSON *cfg, char **out)
{
	const char *url = db_str(cfg, "connection_url", "");
	const char *user = db_str(cfg, "username", "");
	const char *pass = db_str(cfg, "password", "");
	bool uri = strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0;
	bool raw = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "disable_escaping"));
	struct cs_buf b = CS_BUF_INIT;
	const char *p = url;
	while (*p) {
		const char *val = NULL;
		size_t skip = 0;
		if (strncmp(p, "{{username}}", 12) == 0)
			val = user, skip = 12;
		else if (strncmp(p, "{{password}}", 12) == 0)
			val = pass, skip = 12;
		if (!val) {
			cs_buf_putc(&b, *p++);
			continue;
		}
		if (uri && !raw)
			put_uri_escaped(&b, val);
		else if (uri)
			cs_buf_puts(&b, val);
		else
			put_kv_quoted(&b, val);
		p += skip;
	}
	if (!b.data)
		cs_buf_puts(&b, "");
	*out = cs_buf_steal(&b, NULL);
	return 0;
}

static void limits_of(const cJSON *cfg, struct cs_pg_limits *lim)
{
	lim->max_open = (int)db_int(cfg, "max_open_connections", 4);
	if (lim->max_open < 1)
		lim->max_open = 4;
	lim->max_idle = (int)db_int(cfg, "max_idle_connections", 0);
	if (lim->max_idle <= 0 || lim->max_idle > lim->max_open)
		lim->max_idle = lim->max_open; /* Vault: 0 means as many as may be open */
	lim->max_lifetime_ms = db_int(cfg, "max_connection_lifetime", 0) * 1000;
}

static int new_pool(const cJSON *cfg, uv_loop_t *loop, struct cs_pg_pool **out, uint8_t fp[32])
{
	char *conninfo;
	struct cs_pg_limits lim;
	int rc = render_conninfo(cfg, &conninfo);
	if (rc)
		return rc;
	limits_of(cfg, &lim);
	if (fp) {
		/* What makes two configs use the same connections: the rendered string (with
		 * the password: a rotated password needs new connections) and the limits. */
		struct cs_buf m = CS_BUF_INIT;
		cs_buf_printf(&m, "%d/%d/%lld/", lim.max_open, lim.max_idle,
			      (long long)lim.max_lifetime_ms);
		cs_buf_puts(&m, conninfo);
		SHA256((const uint8_t *)m.data, m.len, fp);
		cs_buf_free_secure(&m);
	}
	*out = loop ? cs_pg_pool_new(loop, conninfo, &lim) : NULL;
	cs_zero(conninfo, strlen(conninfo));
	free(conninfo);
	return 0;
}

static char *pool_key(struct cs_request *req, const char *name)
{
	struct cs_buf b = CS_BUF_INIT;
	cs_buf_printf(&b, "%s%s", cs_req_storage_prefix(req), name);
	return cs_buf_steal(&b, NULL);
}

int db_pool_for(struct cs_request *req, const char *name, const cJSON *cfg, struct cs_pg_pool **out)
{
	struct db_state *st = db_state(req->core);
	uint8_t fp[32];
	struct cs_pg_pool *unused;
	int rc = new_pool(cfg, NULL, &unused, fp);
	if (rc)
		return rc;
	char *key = pool_key(req, name);
	struct pool_ent **pp = &st->pools;
	for (; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->key, key) == 0)
			break;
	if (*pp && memcmp((*pp)->fp, fp, sizeof fp) == 0) {
		free(key);
		*out = (*pp)->pool;
		return 0;
	}
	if (*pp) {
		/* The config changed (here or on the node that was active before). */
		struct pool_ent *old = *pp;
		*pp = old->next;
		cs_pg_pool_close(old->pool);
		free(old->key);
		free(old);
	}
	watch_shutdown(st);
	struct pool_ent *e = calloc(1, sizeof *e);
	if (!e)
		abort();
	e->key = key;
	memcpy(e->fp, fp, sizeof fp);
	new_pool(cfg, cs_core_loop(req->core), &e->pool, NULL);
	e->next = st->pools;
	st->pools = e;
	*out = e->pool;
	return 0;
}

void db_pool_drop(struct cs_request *req, const char *name)
{
	struct db_state *st = db_state(req->core);
	char *key = pool_key(req, name);
	for (struct pool_ent **pp = &st->pools; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->key, key) == 0) {
			struct pool_ent *old = *pp;
			*pp = old->next;
			cs_pg_pool_close(old->pool);
			free(old->key);
			free(old);
			break;
		}
	}
	free(key);
}

/* ---------------------------------------------------------------- jobs */

struct db_job *db_job_new(void)
{
	struct db_job *job = calloc(1, sizeof *job);
	if (!job)
		abort();
	job->fail_code = CS_EINTERNAL;
	job->fail_prefix = "";
	return job;
}

static void wipe_str(char *s)
{
	if (s) {
		cs_zero(s, strlen(s));
		free(s);
	}
}

void db_job_free(struct db_job *job)
{
	cs_pg_op_clear(&job->op);
	cs_zero(job->op.errmsg, sizeof job->op.errmsg);
	if (job->own_pool)
		cs_pg_pool_close(job->own_pool);
	wipe_str(job->name);
	wipe_str(job->username);
	wipe_str(job->password);
	cs_json_delete_wiped(job->doc);
	free(job);
}

/* The pool answered (a later loop turn): resume the parked request. */
static void job_done(struct cs_pg_op *op)
{
	struct db_job *job = op->ctx;
	cs_req_wake(&job->async);
}

static int job_resume(struct cs_request *req, struct cs_async *a, int status)
{
	struct db_job *job = CS_CONTAINER_OF(a, struct db_job, async);
	int rc = status;
	if (!rc && job->op.status)
		rc = cs_req_error(req, job->op.status == CS_EBUSY ? CS_EBUSY : job->fail_code,
				  "%s%s", job->fail_prefix, job->op.errmsg);
	else if (!rc)
		rc = job->finish ? job->finish(req, job) : 0;
	db_job_free(job);
	return rc;
}

int db_job_run(struct cs_request *req, struct db_job *job, struct cs_pg_pool *pool)
{
	job->async.resume = job_resume;
	job->op.done = job_done;
	job->op.ctx = job;
	cs_pg_submit(pool, &job->op);
	return cs_req_wait(req, &job->async);
}

/* ---------------------------------------------------------------- config */

int db_load_config(struct cs_request *req, const char *name, cJSON **cfg)
{
	struct cs_buf key = CS_BUF_INIT;
	cs_buf_printf(&key, "config/%s", name);
	int rc = cs_view_get_json(req, key.data, cfg);
	cs_buf_free(&key);
	return rc;
}

static int config_exists(struct cs_request *req, bool *exists)
{
	cJSON *cfg = NULL;
	int rc = db_load_config(req, cs_req_capture(req, "name"), &cfg);
	cs_json_delete_wiped(cfg);
	*exists = rc == 0;
	return rc == CS_ENOTFOUND ? 0 : rc;
}

/* Connection details shown by a read and kept in storage (the password only in storage). */
static const char *const detail_strings[] = {"connection_url", "username", "username_template",
					     "password_authentication"};
static const char *const detail_ints[] = {"max_open_connections", "max_idle_connections",
					  "max_connection_lifetime"};

static int config_read(struct cs_request *req)
{
	cJSON *cfg = NULL;
	int rc = db_load_config(req, cs_req_capture(req, "name"), &cfg);
	if (rc)
		return rc;
	cJSON *d = cJSON_CreateObject();
	cJSON *det = cJSON_AddObjectToObject(d, "connection_details");
	for (size_t i = 0; i < CS_ARRAY_LEN(detail_strings); i++)
		if (cJSON_GetObjectItemCaseSensitive(cfg, detail_strings[i]))
			cJSON_AddStringToObject(det, detail_strings[i],
						db_str(cfg, detail_strings[i], ""));
	for (size_t i = 0; i < CS_ARRAY_LEN(detail_ints); i++)
		if (cJSON_GetObjectItemCaseSensitive(cfg, detail_ints[i]))
			cJSON_AddNumberToObject(det, detail_ints[i],
						(double)db_int(cfg, detail_ints[i], 0));
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "disable_escaping")))
		cJSON_AddBoolToObject(det, "disable_escaping", true);
	cJSON_AddStringToObject(d, "plugin_name", db_str(cfg, "plugin_name", ""));
	cJSON_AddStringToObject(d, "plugin_version", "");
	cJSON_AddStringToObject(d, "password_policy", db_str(cfg, "password_policy", ""));
	const cJSON *ar = cJSON_GetObjectItemCaseSensitive(cfg, "allowed_roles");
	cJSON_AddItemToObject(d, "allowed_roles",
			      ar ? cJSON_Duplicate(ar, true) : cJSON_CreateArray());
	const cJSON *rs = cJSON_GetObjectItemCaseSensitive(cfg, "root_rotation_statements");
	cJSON_AddItemToObject(d, "root_credentials_rotate_statements",
			      rs ? cJSON_Duplicate(rs, true) : cJSON_CreateArray());
	cJSON_AddBoolToObject(
	    d, "verify_connection",
	    !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(cfg, "verify_connection")));
	cs_json_delete_wiped(cfg);
	cs_req_set_data(req, d);
	return 0;
}

/* Copy a request field into the entry when the request has it (an update keeps the rest). */
static void take(struct cs_request *req, cJSON *cfg, const char *key)
{
	const cJSON *v = cs_req_get(req, key);
	if (!v)
		return;
	cJSON *old = cJSON_DetachItemFromObjectCaseSensitive(cfg, key);
	cs_json_delete_wiped(old);
	cJSON_AddItemToObject(cfg, key, cJSON_Duplicate(v, true));
}

static int config_store(struct cs_request *req, struct db_job *job)
{
	struct cs_buf key = CS_BUF_INIT;
	cs_buf_printf(&key, "config/%s", job->name);
	int rc = cs_view_put_json(req, key.data, job->doc);
	cs_buf_free(&key);
	if (!rc)
		db_pool_drop(req, job->name); /* new settings: new connections */
	return rc;
}

static int config_write(struct cs_request *req)
{
	const char *name = cs_req_capture(req, "name");
	cJSON *cfg = NULL;
	int rc = db_load_config(req, name, &cfg);
	if (rc == CS_ENOTFOUND)
		cfg = cJSON_CreateObject(), rc = 0;
	if (rc)
		return rc;
	static const char *const fields[] = {"plugin_name",
					     "connection_url",
					     "username",
					     "password",
					     "allowed_roles",
					     "verify_connection",
					     "password_policy",
					     "username_template",
					     "password_authentication",
					     "max_open_connections",
					     "max_idle_connections",
					     "max_connection_lifetime",
					     "disable_escaping"};
	for (size_t i = 0; i < CS_ARRAY_LEN(fields); i++)
		take(req, cfg, fields[i]);
	cJSON *rs = statements_field(req, "root_rotation_statements", &rc);
	if (rc)
		goto bad;
	if (rs) {
		cJSON_DeleteItemFromObjectCaseSensitive(cfg, "root_rotation_statements");
		cJSON_AddItemToObject(cfg, "root_rotation_statements", rs);
	}

	const char *plugin = db_str(cfg, "plugin_name", "");
	if (!*plugin) {
		rc = cs_req_error(req, CS_EINVAL, "empty plugin name");
		goto bad;
	}
	if (strcmp(plugin, DB_PLUGIN_POSTGRES) != 0) {
		rc = cs_req_error(req, CS_EINVAL,
				  "error creating database object: unsupported plugin \"%s\" "
				  "(only %s is built in)",
				  plugin, DB_PLUGIN_POSTGRES);
		goto bad;
	}
	if (!*db_str(cfg, "connection_url", "")) {
		rc = cs_req_error(req, CS_EINVAL,
				  "error creating database object: connection_url cannot be empty");
		goto bad;
	}
	const char *pa = db_str(cfg, "password_authentication", "password");
	if (strcmp(pa, "password") != 0 && strcmp(pa, "scram-sha-256") != 0) {
		rc = cs_req_error(req, CS_EINVAL,
				  "error creating database object: '%s' is not a valid password "
				  "authentication type",
				  pa);
		goto bad;
	}
	for (size_t i = 0; i < CS_ARRAY_LEN(detail_ints); i++) {
		if (db_int(cfg, detail_ints[i], 0) < 0) {
			rc = cs_req_error(req, CS_EINVAL, "%s cannot be negative", detail_ints[i]);
			goto bad;
		}
	}
	if (db_int(cfg, "max_open_connections", 4) > 1024) {
		rc = cs_req_error(req, CS_EINVAL, "max_open_connections cannot exceed 1024");
		goto bad;
	}
	/* Vault renders the template once with empty metadata to refuse a bad one now. */
	const char *ut = db_str(cfg, "username_template", "");
	if (*ut) {
		char *u = NULL, err[256];
		struct cs_db_template_data td = {0};
		if (cs_db_template_render(ut, &td, &u, err, sizeof err)) {
			rc = cs_req_error(req, CS_EINVAL,
					  "error creating database object: invalid username "
					  "template: %s",
					  err);
			goto bad;
		}
		free(u);
	}
	if (!cJSON_GetObjectItemCaseSensitive(cfg, "allowed_roles"))
		cJSON_AddItemToObject(cfg, "allowed_roles", cJSON_CreateArray());

	struct db_job *job = db_job_new();
	job->name = strdup(name);
	job->doc = cfg;
	job->finish = config_store;
	if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(cfg, "verify_connection"))) {
		rc = config_store(req, job);
		db_job_free(job);
		return rc;
	}
	/* verify_connection: a one-off connection with the new settings, before storing. */
	job->fail_code = CS_EINVAL;
	job->fail_prefix = "error creating database object: error verifying connection: ";
	job->op.no_txn = true;
	job->op.redact[0] = db_str(cfg, "password", NULL);
	cs_pg_op_add(&job->op, "SELECT 1", 0, NULL);
	struct cs_pg_limits lim = {.max_open = 1, .max_idle = 0};
	char *conninfo;
	render_conninfo(cfg, &conninfo);
	job->own_pool = cs_pg_pool_new(cs_core_loop(req->core), conninfo, &lim);
	cs_zero(conninfo, strlen(conninfo));
	free(conninfo);
	return db_job_run(req, job, job->own_pool);
bad:
	cs_json_delete_wiped(cfg);
	return rc;
}

static int config_delete(struct cs_request *req)
{
	const char *name = cs_req_capture(req, "name");
	struct cs_buf key = CS_BUF_INIT;
	cs_buf_printf(&key, "config/%s", name);
	int rc = cs_view_delete(req, key.data);
	cs_buf_free(&key);
	if (!rc)
		db_pool_drop(req, name);
	return rc;
}

static int list_prefix(struct cs_request *req, const char *prefix)
{
	struct cs_strv names = {0};
	int rc = cs_view_list(req, prefix, &names);
	if (!rc && names.n == 0)
		rc = CS_ENOTFOUND;
	if (!rc) {
		cJSON *d = cJSON_CreateObject();
		cJSON *keys = cJSON_AddArrayToObject(d, "keys");
		for (size_t i = 0; i < names.n; i++)
			cJSON_AddItemToArray(keys, cJSON_CreateString(names.v[i]));
		cs_req_set_data(req, d);
	}
	cs_strv_free(&names);
	return rc;
}

static int config_list(struct cs_request *req)
{
	return list_prefix(req, "config/");
}

int db_list_prefix(struct cs_request *req, const char *prefix)
{
	return list_prefix(req, prefix);
}

static int reset_write(struct cs_request *req)
{
	const char *name = cs_req_capture(req, "name");
	cJSON *cfg = NULL;
	int rc = db_load_config(req, name, &cfg);
	cs_json_delete_wiped(cfg);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL,
				    "failed to find entry for connection with "
				    "name: \"%s\"",
				    name);
	if (rc)
		return rc;
	db_pool_drop(req, name);
	return 0;
}

/* rotate-root resumes: the database took the new password; only now store it. */
static int rotate_root_store(struct cs_request *req, struct db_job *job)
{
	cJSON *cfg = NULL;
	int rc = db_load_config(req, job->name, &cfg);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL, "the connection was deleted during rotation");
	if (rc)
		return rc;
	cJSON *old = cJSON_DetachItemFromObjectCaseSensitive(cfg, "password");
	cs_json_delete_wiped(old);
	cJSON_AddStringToObject(cfg, "password", job->password);
	job->doc = cfg;
	return config_store(req, job);
}

static int rotate_root_write(struct cs_request *req)
{
	const char *name = cs_req_capture(req, "name");
	cJSON *cfg = NULL;
	int rc = db_load_config(req, name, &cfg);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL,
				    "failed to find entry for connection with "
				    "name: \"%s\"",
				    name);
	if (rc)
		return rc;
	const char *user = db_str(cfg, "username", "");
	if (!*user) {
		cs_json_delete_wiped(cfg);
		return cs_req_error(req, CS_EINVAL,
				    "unable to rotate root credentials: no "
				    "username in configuration");
	}
	struct db_job *job = db_job_new();
	job->name = strdup(name);
	job->finish = rotate_root_store;
	job->fail_prefix = "failed to update user: ";
	char *sqlpass = NULL;
	struct cs_pg_pool *pool = NULL;
	rc = cs_req_generate_password(req, db_str(cfg, "password_policy", NULL), &job->password);
	if (!rc)
		rc = db_password_for_sql(cfg, job->password, &sqlpass);
	if (!rc) {
		struct cs_pg_var vars[] = {
		    {"name", user, CS_PG_BARE_IDENT},
		    {"username", user, CS_PG_BARE_IDENT},
		    {"password", sqlpass, CS_PG_BARE_LITERAL},
		};
		const cJSON *stmts =
		    cJSON_GetObjectItemCaseSensitive(cfg, "root_rotation_statements");
		cJSON *def = NULL;
		if (cJSON_GetArraySize(stmts) == 0)
			stmts = def = cJSON_CreateStringArray(
			    (const char *const[]){"ALTER ROLE \"{{username}}\" WITH PASSWORD "
						  "'{{password}}'"},
			    1);
		rc = db_add_statements(req, &job->op, stmts, vars, CS_ARRAY_LEN(vars), false);
		cJSON_Delete(def);
	}
	if (!rc)
		rc = db_pool_for(req, name, cfg, &pool);
	job->op.redact[0] = job->password;
	job->op.redact[1] = db_str(cfg, "password", NULL);
	job->op.redact[2] = sqlpass;
	if (rc) {
		wipe_str(sqlpass);
		cs_json_delete_wiped(cfg);
		db_job_free(job);
		return rc;
	}
	/* The op's statements hold rendered copies; the redaction pointers must outlive the
	 * op, so keep only those we own (job->password). */
	job->op.redact[1] = job->op.redact[2] = NULL;
	wipe_str(sqlpass);
	cs_json_delete_wiped(cfg);
	return db_job_run(req, job, pool);
}

/* ---------------------------------------------------------------- table */

#define DB_STR(n, d)                                                                               \
	{                                                                                          \
		.name = n, .type = CS_FIELD_STRING, .desc = d                                      \
	}
#define DB_INT(n, d)                                                                               \
	{                                                                                          \
		.name = n, .type = CS_FIELD_INT, .desc = d                                         \
	}
#define DB_BOOL(n, d)                                                                              \
	{                                                                                          \
		.name = n, .type = CS_FIELD_BOOL, .desc = d                                        \
	}
#define DB_DUR(n, d)                                                                               \
	{                                                                                          \
		.name = n, .type = CS_FIELD_DURATION, .desc = d                                    \
	}

static const struct cs_field config_fields[] = {
    DB_STR("name", "name of the connection"),
    DB_STR("plugin_name", "the database plugin (postgresql-database-plugin)"),
    DB_STR("plugin_version", "ignored: the plugin is built in"),
    DB_BOOL("verify_connection", "connect with the settings before storing them (default true)"),
    {.name = "allowed_roles", .type = CS_FIELD_STRLIST, .desc = "roles allowed to use it (globs)"},
    DB_STR("password_policy", "password policy for generated passwords"),
    {.name = "root_rotation_statements",
     .type = CS_FIELD_ANY,
     .desc = "statements that change the root password"},
    DB_STR("connection_url", "libpq URI or key=value string with {{username}}/{{password}}"),
    DB_STR("username", "the root user"),
    DB_STR("password", "the root user's password (never returned)"),
    DB_INT("max_open_connections", "most connections open at once (default 4)"),
    DB_INT("max_idle_connections", "most idle connections kept (default: max_open)"),
    DB_DUR("max_connection_lifetime", "close connections older than this (default 0: never)"),
    DB_STR("username_template", "template of generated usernames"),
    DB_STR("password_authentication", "password (default) or scram-sha-256"),
    DB_BOOL("disable_escaping", "do not URL-escape the username and password"),
    {.name = NULL},
};

static const struct cs_field name_field[] = {
    DB_STR("name", "name"),
    {.name = NULL},
};

static const struct cs_field static_fields[] = {
    DB_STR("name", "name of the static role"),
    DB_STR("db_name", "the connection config it uses"),
    DB_STR("username", "the existing database user it manages"),
    DB_DUR("rotation_period", "rotate this often (5s or more)"),
    DB_STR("rotation_schedule", "rotate on this cron schedule (5 fields, UTC)"),
    DB_DUR("rotation_window", "how long after a scheduled time a rotation may still run"),
    {.name = "rotation_statements",
     .type = CS_FIELD_ANY,
     .desc = "statements that set the password ({{name}}, {{password}})"},
    DB_STR("credential_type", "password (the only type)"),
    {.name = NULL},
};

static const struct cs_path db_paths[] = {
    {.pattern = "config",
     .ops = {[CS_OP_LIST] = config_list},
     .synopsis = "list the connection configurations"},
    {.pattern = "config/{name}",
     .fields = config_fields,
     .ops = {[CS_OP_READ] = config_read,
	     [CS_OP_CREATE] = config_write,
	     [CS_OP_UPDATE] = config_write,
	     [CS_OP_DELETE] = config_delete},
     .exists = config_exists,
     .synopsis = "configure a database connection"},
    {.pattern = "reset/{name}",
     .fields = name_field,
     .ops = {[CS_OP_UPDATE] = reset_write},
     .synopsis = "close the connection's open connections"},
    {.pattern = "rotate-root/{name}",
     .fields = name_field,
     .ops = {[CS_OP_UPDATE] = rotate_root_write},
     .synopsis = "rotate the root user's password; only custos knows the new one"},
    {.pattern = "roles", .ops = {[CS_OP_LIST] = db_role_list}, .synopsis = "list the roles"},
    {.pattern = "roles/{name}",
     .fields = cs_db_role_fields,
     .ops = {[CS_OP_READ] = db_role_read,
	     [CS_OP_CREATE] = db_role_write,
	     [CS_OP_UPDATE] = db_role_write,
	     [CS_OP_DELETE] = db_role_delete},
     .exists = db_role_exists,
     .synopsis = "manage a dynamic role"},
    {.pattern = "static-roles",
     .ops = {[CS_OP_LIST] = db_static_list},
     .synopsis = "list the static roles"},
    {.pattern = "static-roles/{name}",
     .fields = static_fields,
     .ops = {[CS_OP_READ] = db_static_read,
	     [CS_OP_CREATE] = db_static_write,
	     [CS_OP_UPDATE] = db_static_write,
	     [CS_OP_DELETE] = db_static_delete},
     .exists = db_static_exists,
     .synopsis = "manage a static role (an existing user whose password custos rotates)"},
    {.pattern = "static-creds/{name}",
     .fields = name_field,
     .ops = {[CS_OP_READ] = db_static_creds},
     .synopsis = "the current credentials of a static role"},
    {.pattern = "rotate-role/{name}",
     .fields = name_field,
     .ops = {[CS_OP_UPDATE] = db_static_rotate},
     .synopsis = "rotate a static role's password now"},
    {.pattern = "creds/{name}",
     .fields = name_field,
     .ops = {[CS_OP_READ] = db_creds_read},
     .synopsis = "generate credentials from a dynamic role"},
};

/* Leases of dynamic credentials: revoked by dropping the user, renewed by moving its
 * VALID UNTIL (database_roles.c). */
static const struct cs_secret_type db_secrets[] = {
    {.name = "creds", .revoke = db_lease_revoke, .renew = db_lease_renew},
    {.name = NULL},
};

const struct cs_backend cs_database_backend = {
    .type = "database",
    .paths = db_paths,
    .n_paths = CS_ARRAY_LEN(db_paths),
    .reset = db_reset,
    .secrets = db_secrets,
    .periodic = db_periodic,
};

void cs_database_register(void)
{
	cs_backend_register(&cs_database_backend);
}
