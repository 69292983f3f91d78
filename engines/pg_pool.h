/*
 * An asynchronous PostgreSQL client on the loop: a bounded pool of libpq connections per
 * connection configuration, running operations (a list of statements, usually in one
 * transaction) without ever blocking the loop thread.
 *
 * Happy path: cs_pg_submit queues an op; on the next loop turn the pool hands it to an
 * idle connection, or opens one (PQconnectStartParams, then PQconnectPoll driven by a
 * uv_poll on the socket) while fewer than max_open exist. The connection sends BEGIN
 * (with standard_conforming_strings on, which pg_sql.h's quoting relies on), each
 * statement in turn (PQsendQuery, or PQsendQueryParams when it has parameters), then
 * COMMIT, reading results as the socket becomes readable; then `done` runs on the loop
 * thread with status 0 and the connection returns to the idle list (or is closed: past
 * max_connection_lifetime, or more than max_idle idle).
 *
 * Failure modes, each ending in exactly one `done` call with status != 0 and a message
 * in op->errmsg (the server's, with the op's redacted values replaced):
 *   - a statement fails → ROLLBACK, then the op's rollback statements (each on its own,
 *     errors ignored), then done(CS_EINVAL);
 *   - the server cannot be reached or refuses the login → done(CS_EINVAL) for the op
 *     that was waiting for that connection (and for every queued op when no other
 *     connection is open: they would all wait for the same dead server);
 *   - an idle connection turned out dead (server restarted) before anything of the op
 *     ran → the op is retried once on a fresh connection;
 *   - the server does not answer within the op's deadline (connect + statements) → the
 *     connection is dropped, done(CS_EINVAL);
 *   - more than CS_PG_MAX_QUEUED ops wait → done(CS_EBUSY);
 *   - the pool is closed (config changed, reset/, seal, shutdown) → queued ops get
 *     done(CS_EBUSY); running ops finish first.
 * `done` is never called from inside cs_pg_submit or cs_pg_pool_close: always from a
 * later loop callback, so a handler can park its request (cs_req_wait) after submitting.
 * Loop thread only.
 */
#ifndef CS_ENGINES_PG_POOL_H
#define CS_ENGINES_PG_POOL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define CS_PG_MAX_QUEUED  4096
#define CS_PG_DEADLINE_MS 30000

struct cs_pg_limits {
	int max_open;            /* >= 1 */
	int max_idle;            /* 0..max_open */
	int64_t max_lifetime_ms; /* 0: unlimited */
};

struct cs_pg_pool;

/* A pool for `conninfo` (a libpq URI or key=value string; copied, wiped when freed). */
struct cs_pg_pool *cs_pg_pool_new(uv_loop_t *loop, const char *conninfo,
				  const struct cs_pg_limits *lim);
/* Close: queued ops fail, running ones finish, then the pool frees itself once its last
 * handle is closed. The caller must not use the pool afterwards. */
void cs_pg_pool_close(struct cs_pg_pool *pool);
/* Connections open (connecting, idle or busy) and idle, for tests and metrics. */
int cs_pg_pool_open_count(const struct cs_pg_pool *pool);
int cs_pg_pool_idle_count(const struct cs_pg_pool *pool);

struct cs_pg_stmt {
	char *sql;
	int n_params;    /* 0: sent with the simple protocol (may hold several statements) */
	char *params[4]; /* text parameters $1..$4 */
};

struct cs_pg_op;
/* Called after each statement of the op (not BEGIN/COMMIT) with its last result, so that
 * an op can add statements that depend on answers (cs_pg_op_add works here). A non-zero
 * return fails the op with that status (set op->errmsg). `stop` set to true skips the
 * remaining statements (the transaction still commits). */
typedef int (*cs_pg_result_fn)(struct cs_pg_op *op, size_t idx, const PGresult *res, bool *stop);
typedef void (*cs_pg_done_fn)(struct cs_pg_op *op);

struct cs_pg_op {
	/* Filled by the caller (cs_pg_op_add / cs_pg_op_add_rollback). */
	struct cs_pg_stmt *stmts;
	size_t n_stmts, cap_stmts;
	struct cs_pg_stmt *rollback;
	size_t n_rollback, cap_rollback;
	bool no_txn;           /* run the statements without BEGIN/COMMIT */
	const char *redact[4]; /* values to hide in error messages (not owned) */
	cs_pg_result_fn on_result;
	cs_pg_done_fn done;
	void *ctx;
	/* Results. */
	int status;
	char errmsg[512];
	/* Private to the pool. */
	struct cs_pg_op *next;
	int attempts;
};

/* Append a statement (copied). */
void cs_pg_op_add(struct cs_pg_op *op, const char *sql, int n_params, const char *const *params);
/* Take ownership of a malloc'd statement text (wiped when freed). */
void cs_pg_op_add_owned(struct cs_pg_op *op, char *sql);
void cs_pg_op_add_rollback(struct cs_pg_op *op, char *sql_owned);
/* Wipe and free the statements (not the op itself). */
void cs_pg_op_clear(struct cs_pg_op *op);

/* Queue `op` (the caller keeps it alive until done). */
void cs_pg_submit(struct cs_pg_pool *pool, struct cs_pg_op *op);

#endif
