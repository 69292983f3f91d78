/* The asynchronous PostgreSQL pool (engines/pg_pool.h has the happy path and failures). */
#include "engines/pg_pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/util.h"

enum conn_state { ST_CONNECTING, ST_IDLE, ST_BUSY };
/* PH_ALL: the whole transaction sent as one simple query (one round trip), for ops that
 * need no answer between statements. */
enum phase { PH_BEGIN, PH_ALL, PH_STMT, PH_COMMIT, PH_ROLLBACK, PH_RB_STMT };

/* The uv_poll of a connection's socket, allocated apart from the connection: libpq may
 * move to another socket while connecting (the next address of a host), and the old
 * watcher is closed while the connection lives on. */
struct pg_watch {
	uv_poll_t poll;
	struct pg_conn *conn; /* NULL once closing */
	int fd;
	int events;
};

struct pg_conn {
	struct cs_pg_pool *pool;
	PGconn *pg;
	struct pg_watch *watch;
	uv_timer_t deadline;
	enum conn_state state;
	uint64_t born_ms;
	bool reused; /* has run an op before: may have died while idle */
	/* The running op. */
	struct cs_pg_op *op;
	enum phase phase;
	size_t idx;
	PGresult *last; /* the last result of the current query */
	bool failed;    /* the current query returned an error */
	bool sql_error; /* the op failed on a statement (not the connection) */
	bool broken;    /* timed out or lost: never reused */
	char err[512];
	struct pg_conn *next; /* in pool->conns */
};

struct cs_pg_pool {
	uv_loop_t *loop;
	char *conninfo;
	struct cs_pg_limits lim;
	uv_timer_t kick; /* runs dispatch on a later loop turn */
	struct cs_pg_op *head, *tail;
	size_t queued;
	struct cs_pg_op *failed_head; /* ops to answer on the next kick */
	struct pg_conn *conns;
	int n_open, n_idle;
	bool closing;
};

static void conn_close(struct pg_conn *c);
static void conn_io(struct pg_conn *c, int events);
static void on_kick(uv_timer_t *t);

/* Run dispatch (and answer failed ops) on a later loop turn. */
static void kick(struct cs_pg_pool *pool)
{
	uv_timer_start(&pool->kick, on_kick, 0, 0);
}

/* ---------------------------------------------------------------- ops */

static void stmt_free(struct cs_pg_stmt *s)
{
	if (s->sql) {
		cs_zero(s->sql, strlen(s->sql));
		free(s->sql);
	}
	for (int i = 0; i < s->n_params; i++) {
		if (s->params[i]) {
			cs_zero(s->params[i], strlen(s->params[i]));
			free(s->params[i]);
		}
	}
	memset(s, 0, sizeof *s);
}

static struct cs_pg_stmt *grow(struct cs_pg_stmt **v, size_t *n, size_t *cap)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 8;
		*v = realloc(*v, *cap * sizeof **v);
		if (!*v)
			abort();
	}
	struct cs_pg_stmt *s = &(*v)[(*n)++];
	memset(s, 0, sizeof *s);
	return s;
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);
	if (!d)
		abort();
	return d;
}

void cs_pg_op_add(struct cs_pg_op *op, const char *sql, int n_params, const char *const *params)
{
	struct cs_pg_stmt *s = grow(&op->stmts, &op->n_stmts, &op->cap_stmts);
	s->sql = xstrdup(sql);
	s->n_params = n_params > 4 ? 4 : n_params;
	for (int i = 0; i < s->n_params; i++)
		s->params[i] = xstrdup(params[i]);
}

void cs_pg_op_add_owned(struct cs_pg_op *op, char *sql)
{
	grow(&op->stmts, &op->n_stmts, &op->cap_stmts)->sql = sql;
}

void cs_pg_op_add_rollback(struct cs_pg_op *op, char *sql_owned)
{
	grow(&op->rollback, &op->n_rollback, &op->cap_rollback)->sql = sql_owned;
}

void cs_pg_op_clear(struct cs_pg_op *op)
{
	for (size_t i = 0; i < op->n_stmts; i++)
		stmt_free(&op->stmts[i]);
	for (size_t i = 0; i < op->n_rollback; i++)
		stmt_free(&op->rollback[i]);
	free(op->stmts);
	free(op->rollback);
	op->stmts = op->rollback = NULL;
	op->n_stmts = op->cap_stmts = op->n_rollback = op->cap_rollback = 0;
}

/* Copy `msg` into the op's errmsg with every redacted value replaced: a server message
 * can quote the statement it failed on ("syntax error at or near …"). */
static void set_error(struct cs_pg_op *op, const char *msg)
{
	char buf[sizeof op->errmsg];
	snprintf(buf, sizeof buf, "%s", msg);
	size_t n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	for (size_t i = 0; i < CS_ARRAY_LEN(op->redact); i++) {
		const char *r = op->redact[i];
		size_t rl = r ? strlen(r) : 0;
		if (rl < 4)
			continue; /* too short to be a secret worth hiding, and hides too much */
		char *hit;
		while ((hit = strstr(buf, r)) != NULL) {
			static const char mask[] = "[redacted]";
			size_t tail = strlen(hit + rl);
			char tmp[sizeof op->errmsg];
			snprintf(tmp, sizeof tmp, "%s%.*s", mask, (int)tail, hit + rl);
			snprintf(hit, sizeof buf - (size_t)(hit - buf), "%s", tmp);
		}
	}
	snprintf(op->errmsg, sizeof op->errmsg, "%s", buf);
	cs_zero(buf, sizeof buf);
}

/* Answer an op on the next kick (never synchronously from the caller's call). */
static void fail_later(struct cs_pg_pool *pool, struct cs_pg_op *op, int status, const char *msg)
{
	op->status = status;
	set_error(op, msg);
	op->next = pool->failed_head;
	pool->failed_head = op;
	kick(pool);
}

/* ---------------------------------------------------------------- watch */

static void watch_closed(uv_handle_t *h)
{
	free(CS_CONTAINER_OF((uv_poll_t *)h, struct pg_watch, poll));
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct pg_watch *w = CS_CONTAINER_OF(h, struct pg_watch, poll);
	if (!w->conn)
		return;
	conn_io(w->conn, status < 0 ? UV_READABLE | UV_WRITABLE : events);
}

static void watch_drop(struct pg_conn *c)
{
	if (!c->watch)
		return;
	c->watch->conn = NULL;
	uv_close((uv_handle_t *)&c->watch->poll, watch_closed);
	c->watch = NULL;
}

/* Watch the connection's current socket for `events`; a socket change replaces the
 * watcher. An idle connection's watcher does not keep the loop alive. */
static int watch(struct pg_conn *c, int events)
{
	int fd = PQsocket(c->pg);
	if (fd < 0)
		return -1;
	if (c->watch && c->watch->fd != fd)
		watch_drop(c);
	if (!c->watch) {
		struct pg_watch *w = calloc(1, sizeof *w);
		if (!w)
			abort();
		if (uv_poll_init(c->pool->loop, &w->poll, fd) != 0) {
			free(w);
			return -1;
		}
		w->conn = c;
		w->fd = fd;
		c->watch = w;
	}
	c->watch->events = events;
	if (uv_poll_start(&c->watch->poll, events, on_poll) != 0)
		return -1;
	if (c->state == ST_IDLE)
		uv_unref((uv_handle_t *)&c->watch->poll);
	else
		uv_ref((uv_handle_t *)&c->watch->poll);
	return 0;
}

/* ---------------------------------------------------------------- conn lifecycle */

static void conn_freed(uv_handle_t *h)
{
	struct pg_conn *c = CS_CONTAINER_OF((uv_timer_t *)h, struct pg_conn, deadline);
	free(c);
}

/* Unlink and close a connection that runs no op. */
static void conn_close(struct pg_conn *c)
{
	struct cs_pg_pool *pool = c->pool;
	for (struct pg_conn **pp = &pool->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	pool->n_open--;
	if (c->state == ST_IDLE)
		pool->n_idle--;
	watch_drop(c);
	if (c->last)
		PQclear(c->last);
	PQfinish(c->pg);
	c->pg = NULL;
	uv_timer_stop(&c->deadline);
	uv_close((uv_handle_t *)&c->deadline, conn_freed);
	kick(pool); /* a slot is free: queued ops may start */
}

static void on_deadline(uv_timer_t *t);
static void step(struct pg_conn *c);

/* Give the first queued op to `c` (busy, no op). */
static void conn_run_next(struct pg_conn *c)
{
	struct cs_pg_pool *pool = c->pool;
	struct cs_pg_op *op = pool->head;
	pool->head = op->next;
	if (!pool->head)
		pool->tail = NULL;
	pool->queued--;
	c->op = op;
	c->phase = PH_BEGIN;
	c->idx = 0;
	c->sql_error = false;
	c->err[0] = '\0';
	uv_timer_start(&c->deadline, on_deadline, CS_PG_DEADLINE_MS, 0);
	step(c);
}

/* A connection with no op: the next queued op if there is one, else the idle list (or
 * closed when too old, too many are idle, or it is not clean). */
static void conn_idle(struct pg_conn *c)
{
	struct cs_pg_pool *pool = c->pool;
	uint64_t now = uv_now(pool->loop);
	bool old = pool->lim.max_lifetime_ms > 0 &&
		   now - c->born_ms >= (uint64_t)pool->lim.max_lifetime_ms;
	uv_timer_stop(&c->deadline);
	if (!pool->closing && !old && pool->head && PQstatus(c->pg) == CONNECTION_OK &&
	    PQtransactionStatus(c->pg) == PQTRANS_IDLE) {
		conn_run_next(c);
		return;
	}
	if (pool->closing || old || pool->n_idle >= pool->lim.max_idle ||
	    PQstatus(c->pg) != CONNECTION_OK || PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
		c->state = ST_BUSY; /* not counted as idle by conn_close */
		conn_close(c);
		return;
	}
	c->state = ST_IDLE;
	pool->n_idle++;
	/* Readable while idle means the server said goodbye (restart, idle timeout). */
	if (watch(c, UV_READABLE) != 0)
		conn_close(c);
}

/* The op of `c` is over: detach it, give the connection back, then answer. */
static void op_finish(struct pg_conn *c, int status)
{
	struct cs_pg_op *op = c->op;
	struct cs_pg_pool *pool = c->pool;
	c->op = NULL;
	if (c->last) {
		PQclear(c->last);
		c->last = NULL;
	}
	op->status = status;
	if (status)
		set_error(op, c->err[0] ? c->err : "database operation failed");
	cs_zero(c->err, sizeof c->err);
	c->reused = true;
	if (!c->broken && PQstatus(c->pg) == CONNECTION_OK)
		conn_idle(c);
	else
		conn_close(c);
	kick(pool);
	op->done(op);
}

static void queue_front(struct cs_pg_pool *pool, struct cs_pg_op *op)
{
	op->next = pool->head;
	pool->head = op;
	if (!pool->tail)
		pool->tail = op;
	pool->queued++;
}

/* The connection broke (or never came up). */
static void conn_broken(struct pg_conn *c, const char *why)
{
	struct cs_pg_pool *pool = c->pool;
	char msg[512];
	const char *pqmsg = c->pg ? PQerrorMessage(c->pg) : "";
	snprintf(msg, sizeof msg, "%s%s%s", why, pqmsg[0] ? ": " : "", pqmsg);
	if (c->state == ST_CONNECTING) {
		conn_close(c);
		/* Nobody else is connected: every waiting op would wait for the same server. */
		bool all = pool->n_open == 0;
		while (pool->head) {
			struct cs_pg_op *op = pool->head;
			pool->head = op->next;
			if (!pool->head)
				pool->tail = NULL;
			pool->queued--;
			fail_later(pool, op, CS_EINVAL, msg);
			if (!all)
				break;
		}
		return;
	}
	struct cs_pg_op *op = c->op;
	if (!op) {
		conn_close(c);
		return;
	}
	if (c->reused && c->phase == PH_BEGIN && op->attempts == 0) {
		/* Died while idle, before anything of the op ran: once more on a new one. */
		op->attempts++;
		c->op = NULL;
		conn_close(c);
		queue_front(pool, op);
		return;
	}
	snprintf(c->err, sizeof c->err, "%s", msg);
	c->broken = true; /* op_finish closes it, whatever libpq thinks of it */
	op_finish(c, CS_EINVAL);
}

static void on_deadline(uv_timer_t *t)
{
	struct pg_conn *c = CS_CONTAINER_OF(t, struct pg_conn, deadline);
	conn_broken(c, c->state == ST_CONNECTING ? "timed out connecting to the database"
						 : "the database did not answer in time");
}

/* ---------------------------------------------------------------- queries */

static int send_query(struct pg_conn *c, const struct cs_pg_stmt *s, const char *sql)
{
	int ok;
	if (s && s->n_params > 0)
		ok = PQsendQueryParams(c->pg, s->sql, s->n_params, NULL,
				       (const char *const *)s->params, NULL, NULL, 0);
	else
		ok = PQsendQuery(c->pg, s ? s->sql : sql);
	if (!ok)
		return -1;
	c->failed = false;
	int f = PQflush(c->pg);
	if (f < 0)
		return -1;
	return watch(c, UV_READABLE | (f == 1 ? UV_WRITABLE : 0));
}

/* Whether the op can go as one query: a transaction whose statements need no
 * parameters and no look at each other's answers. */
static bool one_query(const struct cs_pg_op *op)
{
	if (op->no_txn || op->on_result || op->n_stmts == 0)
		return false;
	for (size_t i = 0; i < op->n_stmts; i++)
		if (op->stmts[i].n_params > 0)
			return false;
	return true;
}

/* BEGIN, the statements and COMMIT in one simple query. Each statement ends with a
 * newline before its separator, so a trailing "--" comment cannot swallow what follows;
 * one that leaves a quote or a block comment open makes the server refuse the text or
 * leaves the transaction open, which query_done treats as a failure. */
static int send_all(struct pg_conn *c)
{
	struct cs_buf b = CS_BUF_INIT;
	cs_buf_puts(&b, "BEGIN; SET LOCAL standard_conforming_strings = on;\n");
	for (size_t i = 0; i < c->op->n_stmts; i++) {
		cs_buf_puts(&b, c->op->stmts[i].sql);
		cs_buf_puts(&b, "\n;\n");
	}
	cs_buf_puts(&b, "COMMIT");
	int rc = send_query(c, NULL, b.data);
	cs_buf_free_secure(&b);
	return rc;
}

/* Send what the op's phase asks for next, or finish the op. */
static void step(struct pg_conn *c)
{
	struct cs_pg_op *op = c->op;
	int rc = 0;
	for (;;) {
		switch (c->phase) {
		case PH_BEGIN:
			if (op->no_txn) {
				c->phase = PH_STMT, c->idx = 0;
				continue;
			}
			if (one_query(op)) {
				c->phase = PH_ALL;
				rc = send_all(c);
				break;
			}
			rc = send_query(c, NULL,
					"BEGIN; SET LOCAL standard_conforming_strings = on");
			break;
		case PH_STMT:
			if (c->idx >= op->n_stmts) {
				if (op->no_txn) {
					op_finish(c, 0);
					return;
				}
				c->phase = PH_COMMIT;
				continue;
			}
			rc = send_query(c, &op->stmts[c->idx], NULL);
			break;
		case PH_ALL:
			return; /* answered whole in query_done */
		case PH_COMMIT:
			rc = send_query(c, NULL, "COMMIT");
			break;
		case PH_ROLLBACK:
			rc = send_query(c, NULL, "ROLLBACK");
			break;
		case PH_RB_STMT:
			if (c->idx >= op->n_rollback) {
				op_finish(c, CS_EINVAL);
				return;
			}
			rc = send_query(c, &op->rollback[c->idx], NULL);
			break;
		}
		break;
	}
	if (rc)
		conn_broken(c, "cannot send to the database");
}

/* One statement failed: remember why, then roll back (and run the rollback statements). */
static void statement_failed(struct pg_conn *c, const char *msg)
{
	if (!c->err[0] && msg != c->err)
		snprintf(c->err, sizeof c->err, "%s", msg);
	c->sql_error = true;
	if (c->op->no_txn) {
		c->phase = PH_RB_STMT, c->idx = 0;
	} else {
		c->phase = PH_ROLLBACK;
	}
	step(c);
}

/* The current query's last result arrived (PQgetResult gave NULL). */
static void query_done(struct pg_conn *c)
{
	struct cs_pg_op *op = c->op;
	PGresult *res = c->last;
	bool failed = c->failed;
	switch (c->phase) {
	case PH_BEGIN:
		if (failed)
			return statement_failed(c, c->err);
		c->phase = PH_STMT, c->idx = 0;
		break;
	case PH_ALL:
		if (!failed && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
			return statement_failed(c, "a statement left the transaction open "
						   "(an unterminated quote or comment?)");
		if (failed)
			return statement_failed(c, c->err);
		op_finish(c, 0);
		return;
	case PH_STMT: {
		if (failed)
			return statement_failed(c, c->err);
		bool stop = false;
		if (op->on_result) {
			int rc = op->on_result(op, c->idx, res, &stop);
			if (rc) {
				snprintf(c->err, sizeof c->err, "%s", op->errmsg);
				c->sql_error = true;
				c->phase = op->no_txn ? PH_RB_STMT : PH_ROLLBACK;
				c->idx = 0;
				break;
			}
		}
		c->idx++;
		if (stop)
			c->idx = op->n_stmts;
		break;
	}
	case PH_COMMIT:
		if (failed) {
			c->sql_error = true;
			op_finish(c, CS_EINVAL);
			return;
		}
		op_finish(c, 0);
		return;
	case PH_ROLLBACK:
		c->phase = PH_RB_STMT, c->idx = 0;
		break;
	case PH_RB_STMT:
		c->idx++; /* best effort: errors are ignored */
		break;
	}
	if (c->last) {
		PQclear(c->last);
		c->last = NULL;
	}
	step(c);
}

static void busy_io(struct pg_conn *c, int events)
{
	if (events & UV_WRITABLE) {
		int f = PQflush(c->pg);
		if (f < 0)
			return conn_broken(c, "lost the database connection");
		if (watch(c, UV_READABLE | (f == 1 ? UV_WRITABLE : 0)) != 0)
			return conn_broken(c, "lost the database connection");
	}
	if (!(events & UV_READABLE))
		return;
	if (!PQconsumeInput(c->pg))
		return conn_broken(c, "lost the database connection");
	while (!PQisBusy(c->pg)) {
		PGresult *r = PQgetResult(c->pg);
		if (!r) {
			if (PQstatus(c->pg) == CONNECTION_BAD)
				return conn_broken(c, "lost the database connection");
			query_done(c);
			return;
		}
		ExecStatusType st = PQresultStatus(r);
		if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE) {
			if (!c->failed && c->phase != PH_ROLLBACK && c->phase != PH_RB_STMT)
				snprintf(c->err, sizeof c->err, "%s", PQresultErrorMessage(r));
			c->failed = true;
		}
		if (c->last)
			PQclear(c->last);
		c->last = r;
	}
}

static void connect_io(struct pg_conn *c)
{
	switch (PQconnectPoll(c->pg)) {
	case PGRES_POLLING_READING:
		if (watch(c, UV_READABLE) != 0)
			conn_broken(c, "cannot connect to the database");
		return;
	case PGRES_POLLING_WRITING:
		if (watch(c, UV_WRITABLE) != 0)
			conn_broken(c, "cannot connect to the database");
		return;
	case PGRES_POLLING_OK:
		if (PQsetnonblocking(c->pg, 1) != 0)
			return conn_broken(c, "cannot connect to the database");
		c->state = ST_BUSY; /* conn_idle counts it as idle from here */
		conn_idle(c);
		return;
	default:
		conn_broken(c, "cannot connect to the database");
	}
}

static void conn_io(struct pg_conn *c, int events)
{
	switch (c->state) {
	case ST_CONNECTING:
		connect_io(c);
		break;
	case ST_BUSY:
		busy_io(c, events);
		break;
	case ST_IDLE:
		/* Nothing is expected: consume what came (a notice, or the end). */
		if (!PQconsumeInput(c->pg) || PQstatus(c->pg) != CONNECTION_OK)
			conn_close(c);
		break;
	}
}

static void conn_open(struct cs_pg_pool *pool)
{
	static const char *const keys[] = {"dbname", "client_encoding", "fallback_application_name",
					   NULL};
	const char *vals[] = {pool->conninfo, "UTF8", "custos", NULL};
	struct pg_conn *c = calloc(1, sizeof *c);
	if (!c)
		abort();
	c->pool = pool;
	c->state = ST_CONNECTING;
	c->born_ms = uv_now(pool->loop);
	uv_timer_init(pool->loop, &c->deadline);
	c->next = pool->conns;
	pool->conns = c;
	pool->n_open++;
	/* expand_dbname: the configured text is a whole URI or key=value string. A host
	 * name (not an address) is resolved inside this call, as libpq documents. */
	c->pg = PQconnectStartParams(keys, vals, 1);
	uv_timer_start(&c->deadline, on_deadline, CS_PG_DEADLINE_MS, 0);
	if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD) {
		conn_broken(c, "cannot connect to the database");
		return;
	}
	connect_io(c);
}

/* ---------------------------------------------------------------- dispatch */

static void dispatch(struct cs_pg_pool *pool)
{
	while (pool->failed_head) {
		struct cs_pg_op *op = pool->failed_head;
		pool->failed_head = op->next;
		op->done(op);
	}
	if (pool->closing) {
		while (pool->head) {
			struct cs_pg_op *op = pool->head;
			pool->head = op->next;
			pool->queued--;
			op->status = CS_EBUSY;
			set_error(op, "the database connection was reset; retry");
			op->done(op);
		}
		pool->tail = NULL;
		for (struct pg_conn *c = pool->conns, *n; c; c = n) {
			n = c->next;
			if (c->state != ST_BUSY)
				conn_close(c);
		}
		return;
	}
	while (pool->head) {
		struct pg_conn *idle = NULL;
		for (struct pg_conn *c = pool->conns; c; c = c->next)
			if (c->state == ST_IDLE)
				idle = c;
		if (idle && pool->lim.max_lifetime_ms > 0 &&
		    uv_now(pool->loop) - idle->born_ms >= (uint64_t)pool->lim.max_lifetime_ms) {
			conn_close(idle);
			continue;
		}
		if (!idle) {
			int connecting = 0;
			for (struct pg_conn *c = pool->conns; c; c = c->next)
				connecting += c->state == ST_CONNECTING;
			/* One new connection per op still waiting, within max_open: a burst
			 * of requests opens its connections in parallel. */
			while (pool->head && pool->n_open < pool->lim.max_open &&
			       (size_t)connecting < pool->queued) {
				int before = pool->n_open;
				conn_open(pool);
				if (pool->n_open <= before)
					break; /* failed at once: its ops are answered */
				connecting++;
			}
			return;
		}
		idle->state = ST_BUSY;
		pool->n_idle--;
		conn_run_next(idle);
	}
}

static void pool_freed(uv_handle_t *h)
{
	struct cs_pg_pool *pool = CS_CONTAINER_OF((uv_timer_t *)h, struct cs_pg_pool, kick);
	free(pool);
}

static void on_kick(uv_timer_t *t)
{
	struct cs_pg_pool *pool = CS_CONTAINER_OF(t, struct cs_pg_pool, kick);
	dispatch(pool);
	if (pool->closing && pool->n_open == 0 && !pool->head && !pool->failed_head) {
		cs_zero(pool->conninfo, strlen(pool->conninfo));
		free(pool->conninfo);
		pool->conninfo = NULL;
		uv_close((uv_handle_t *)&pool->kick, pool_freed);
	}
}

struct cs_pg_pool *cs_pg_pool_new(uv_loop_t *loop, const char *conninfo,
				  const struct cs_pg_limits *lim)
{
	struct cs_pg_pool *pool = calloc(1, sizeof *pool);
	if (!pool)
		abort();
	pool->loop = loop;
	pool->conninfo = xstrdup(conninfo);
	pool->lim = *lim;
	if (pool->lim.max_open < 1)
		pool->lim.max_open = 1;
	if (pool->lim.max_idle < 0 || pool->lim.max_idle > pool->lim.max_open)
		pool->lim.max_idle = pool->lim.max_open;
	uv_timer_init(loop, &pool->kick);
	return pool;
}

void cs_pg_submit(struct cs_pg_pool *pool, struct cs_pg_op *op)
{
	op->status = 0;
	op->errmsg[0] = '\0';
	op->attempts = 0;
	op->next = NULL;
	if (pool->closing) {
		fail_later(pool, op, CS_EBUSY, "the database connection was reset; retry");
		return;
	}
	if (pool->queued >= CS_PG_MAX_QUEUED) {
		fail_later(pool, op, CS_EBUSY, "too many database operations waiting; retry later");
		return;
	}
	if (pool->tail)
		pool->tail->next = op;
	else
		pool->head = op;
	pool->tail = op;
	pool->queued++;
	kick(pool);
}

void cs_pg_pool_close(struct cs_pg_pool *pool)
{
	if (!pool || pool->closing)
		return;
	pool->closing = true;
	kick(pool);
}

int cs_pg_pool_open_count(const struct cs_pg_pool *pool)
{
	return pool->n_open;
}

int cs_pg_pool_idle_count(const struct cs_pg_pool *pool)
{
	return pool->n_idle;
}
