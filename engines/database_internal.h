/* Shared between the database engine's files (database.c, database_roles.c). */
#ifndef CS_ENGINES_DATABASE_INTERNAL_H
#define CS_ENGINES_DATABASE_INTERNAL_H

#include <cjson/cJSON.h>

#include "engines/pg_pool.h"
#include "engines/pg_sql.h"
#include "server/backend.h"

#define DB_PLUGIN_POSTGRES "postgresql-database-plugin"

/*
 * One PostgreSQL operation a request waits for: the handler fills `op` (statements),
 * sets `finish`, and ends with `return db_job_run(req, job, pool)`. When the op is over the
 * request resumes in a fresh transaction: a failed op answers `fail_code` with
 * "<fail_prefix><server message>", a successful one runs finish(req, job), which
 * re-reads what it needs and writes. The job (and every secret in it) is wiped and freed
 * after either.
 */
struct db_job {
	struct cs_async async;
	struct cs_pg_op op;
	struct cs_pg_pool *own_pool; /* a one-off pool (verify_connection), closed after */
	int (*finish)(struct cs_request *req, struct db_job *job);
	int fail_code;
	const char *fail_prefix;
	char *name;     /* config or role name */
	char *username; /* the database user acted on */
	char *password; /* the password set (wiped) */
	int64_t ttl, max_ttl;
	int64_t expire_unix;
	int result; /* revocation: the answer after it succeeded */
	cJSON *doc; /* an entry to store on success (wiped) */
};

struct db_job *db_job_new(void);
int db_job_run(struct cs_request *req, struct db_job *job, struct cs_pg_pool *pool);

/* The stored config `name` (CS_ENOTFOUND when absent); *cfg owned by the caller, who frees
 * it with cs_json_delete_wiped. */
int db_load_config(struct cs_request *req, const char *name, cJSON **cfg);
/* The pool of connection config `name` as stored in `cfg`, opened on first use and
 * replaced when the config changed. CS_EINVAL with a message when the URL cannot be
 * rendered. */
int db_pool_for(struct cs_request *req, const char *name, const cJSON *cfg,
		struct cs_pg_pool **out);
/* Close the pool of config `name` on this mount, if open. */
void db_pool_drop(struct cs_request *req, const char *name);

/* A string member of a JSON object, or `def`. */
const char *db_str(const cJSON *o, const char *key, const char *def);
/* The strings of a JSON array member, joined into the op as rendered statements. */
int db_add_statements(struct cs_request *req, struct cs_pg_op *op, const cJSON *list,
		      const struct cs_pg_var *vars, size_t n_vars, bool rollback);
/* The request's token display name ("" for internal requests). */
const char *db_display_name(const struct cs_request *req);
/* Whether the config allows role `role` (allowed_roles, with '*' globs). */
bool db_role_allowed(const cJSON *cfg, const char *role);
/* The password a statement gets: the SCRAM verifier when the config says
 * password_authentication = scram-sha-256, else the password itself (malloc'd). */
int db_password_for_sql(const cJSON *cfg, const char *password, char **out);
/* "2026-12-08 00:30:00+0000": Vault's expiration format for VALID UNTIL. */
void db_format_expiration(int64_t unix_secs, char *out, size_t len);

/* Free a job that was never run. */
void db_job_free(struct db_job *job);
/* A statements field of the request (one string or a list of strings) as a new array,
 * NULL when absent; *rc = CS_EINVAL with a message on a bad value. */
cJSON *db_statements_field(struct cs_request *req, const char *name, int *rc);
/* LIST of the keys under `prefix` (404 when none, as Vault). */
int db_list_prefix(struct cs_request *req, const char *prefix);

/* database_roles.c: the path handlers, and the revocation and renewal of a user (both
 * park the request on the database and return CS_EASYNC, or fail at once). */
int db_role_read(struct cs_request *req);
int db_role_write(struct cs_request *req);
int db_role_delete(struct cs_request *req);
int db_role_list(struct cs_request *req);
int db_role_exists(struct cs_request *req, bool *exists);
int db_creds_read(struct cs_request *req);
extern const struct cs_field cs_db_role_fields[];
/* `result`: what the request answers once the user is gone (0, or the error that made
 * creds drop the user it had just created). */
int db_revoke_user(struct cs_request *req, const char *db, const char *role_name,
		   const char *username, int result);
int db_renew_user(struct cs_request *req, const char *db, const char *role_name,
		  const char *username, int64_t expire_unix);
/* database_static.c: static roles and their rotation. */
int db_static_read(struct cs_request *req);
int db_static_write(struct cs_request *req);
int db_static_delete(struct cs_request *req);
int db_static_list(struct cs_request *req);
int db_static_exists(struct cs_request *req, bool *exists);
int db_static_creds(struct cs_request *req);
int db_static_rotate(struct cs_request *req);
int db_periodic(struct cs_request *req);

/* A 5-field cron schedule (minute hour day-of-month month day-of-week, UTC), as Vault's
 * rotation_schedule: bit i of a field set when value i matches. */
struct db_cron {
	uint64_t minute, hour, dom, month, dow;
	bool dom_star, dow_star;
};
/* 0, or CS_EINVAL for a schedule that is not 5 valid fields (*, n, a-b, lists, /step,
 * JAN-DEC, SUN-SAT). */
int db_cron_parse(const char *spec, struct db_cron *c);
/* The first matching minute strictly after `after` (unix seconds), or -1 when none
 * within five years. */
int64_t db_cron_next(const struct db_cron *c, int64_t after);

/* The "creds" lease kind's revoke and renew handlers. */
int db_lease_revoke(struct cs_request *req);
int db_lease_renew(struct cs_request *req);

#endif
