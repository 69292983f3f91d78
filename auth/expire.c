/*
 * The expiration manager (see expire.h for the design, happy path and failure modes),
 * and the sys/leases/ endpoints.
 */
#include "auth/expire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/tokenutil.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"

struct hint {
	int64_t at_ms; /* unix milliseconds */
	char *lease_id;
};

/* A batch of popped hints whose transaction is committing. */
struct batch {
	struct expire_state *E;
	uint64_t gen;
	size_t n;
	struct hint items[CS_EXPIRE_BATCH];
};

/* The manager's state in its core (cs_core_state). */
struct expire_state {
	struct cs_core *core;
	bool handles;     /* timer/kick initialised on core->loop */
	bool running;     /* heap loaded, timers armed */
	bool inflight;    /* a batch is committing */
	uint64_t gen;     /* bumped by every stop */
	uv_timer_t timer; /* earliest hint */
	uv_timer_t kick;  /* 0 ms: continue a batch run, or (re)start after a reset */
	bool kick_start;  /* the kick means "start", not "continue" */
	struct hint *h;
	size_t n, cap;
	size_t stale; /* hints made stale by deletes/renewals since the last (re)build */
	uint64_t revoked;
	const struct cs_expire_tokens *tokens; /* the token store's hooks */
	/* Secret leases: revocations and renewals running as internal requests (at most
	 * SECRET_OPS_MAX), and finished ones whose waiting requests wake on `wake`. */
	struct op *ops;
	size_t n_ops;
	uv_timer_t wake;
	struct waiter *ready;
	uint64_t secret_revoked, secret_failed;
};

static void expire_state_release(void *state)
{
	struct expire_state *E = state;
	/* Ops in flight at release belong to requests the core already failed; their done
	 * callbacks ran (shutdown fails every internal request) and freed them. */
	for (size_t i = 0; i < E->n; i++)
		free(E->h[i].lease_id);
	free(E->h);
}

static const struct cs_core_state_type expire_state_type = {.name = "expiration manager",
							    .size = sizeof(struct expire_state),
							    .release = expire_state_release};

static struct expire_state *state_of(struct cs_core *core)
{
	struct expire_state *E = cs_core_state(core, &expire_state_type);
	E->core = core;
	return E;
}

/* Rebuild the heap from storage once more than half of it is stale (and it is big):
 * revoked and renewed leases leave their old hints behind until they fall due, which
 * for a default 768h TTL would let memory grow with every token ever created. */
#define COMPACT_MIN 4096

static void kick_cb(uv_timer_t *t);

static void maybe_compact(struct expire_state *E)
{
	if (!E->running || E->kick_start || E->n < COMPACT_MIN || E->stale <= E->n / 2)
		return;
	/* Not now: the caller is inside a request whose writes are not yet visible to a
	 * new transaction. On the next loop turn they are (overlay) or never will be. */
	E->kick_start = true;
	uv_timer_start(&E->kick, kick_cb, 0, 0);
}

static bool is_secret(const cJSON *r);
static int secret_drop(struct cs_txn *txn, const char *lease_id, const cJSON *r);
static int secret_due_now(struct cs_txn *txn, const char *lease_id, cJSON *r);

static int64_t now_ms(void)
{
	return cs_now_ns() / 1000000;
}

/* ---------------------------------------------------------------- heap */

static void heap_swap(struct expire_state *E, size_t a, size_t b)
{
	struct hint t = E->h[a];
	E->h[a] = E->h[b];
	E->h[b] = t;
}

static void heap_push(struct expire_state *E, int64_t at, char *id /* owned */)
{
	if (E->n == E->cap) {
		size_t cap = E->cap ? E->cap * 2 : 64;
		struct hint *nh = realloc(E->h, cap * sizeof *nh);
		if (!nh)
			abort();
		E->h = nh;
		E->cap = cap;
	}
	size_t i = E->n++;
	E->h[i].at_ms = at;
	E->h[i].lease_id = id;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (E->h[p].at_ms <= E->h[i].at_ms)
			break;
		heap_swap(E, p, i);
		i = p;
	}
}

static struct hint heap_pop(struct expire_state *E)
{
	struct hint top = E->h[0];
	E->h[0] = E->h[--E->n];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < E->n && E->h[l].at_ms < E->h[m].at_ms)
			m = l;
		if (r < E->n && E->h[r].at_ms < E->h[m].at_ms)
			m = r;
		if (m == i)
			break;
		heap_swap(E, i, m);
		i = m;
	}
	return top;
}

static void heap_clear(struct expire_state *E)
{
	for (size_t i = 0; i < E->n; i++)
		free(E->h[i].lease_id);
	free(E->h);
	E->h = NULL;
	E->n = E->cap = 0;
}

/* ---------------------------------------------------------------- records */

static void record_key(const char *lease_id, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s%s", CS_EXPIRE_PREFIX, lease_id);
}

static int record_get(struct cs_txn *txn, const char *lease_id, cJSON **out)
{
	char key[600];
	*out = NULL;
	if (strlen(lease_id) > 480)
		return CS_ENOTFOUND;
	record_key(lease_id, key, sizeof key);
	return cs_tokenutil_txn_get_json(txn, key, out);
}

static int record_put(struct cs_txn *txn, const char *lease_id, const cJSON *r)
{
	char key[600];
	record_key(lease_id, key, sizeof key);
	return cs_tokenutil_txn_put_json(txn, key, r); /* compact: auth/record_codec.h */
}

/* Unlike cs_tokenutil_str: NULL when absent (a lease without a token). */
static const char *str_of(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int cs_expire_put(struct cs_txn *txn, const char *lease_id, const char *path, double issue_time,
		  double expire_time, bool renewable, const char *token_key)
{
	if (strlen(lease_id) > 480)
		return CS_EINVAL;
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "lease_id", lease_id);
	cJSON_AddStringToObject(r, "path", path);
	cJSON_AddNumberToObject(r, "issue_time", issue_time);
	cJSON_AddNumberToObject(r, "expire_time", expire_time);
	cJSON_AddNumberToObject(r, "last_renewal", 0);
	cJSON_AddBoolToObject(r, "renewable", renewable);
	if (token_key)
		cJSON_AddStringToObject(r, "token_key", token_key);
	char key[600];
	record_key(lease_id, key, sizeof key);
	struct cs_buf old = CS_BUF_INIT;
	bool existed = cs_txn_get_raw(txn, key, &old) == 0;
	cs_buf_free(&old);
	int rc = record_put(txn, lease_id, r);
	cJSON_Delete(r);
	if (!rc) {
		struct expire_state *E = state_of(cs_txn_core(txn));
		cs_expire_schedule(E->core, lease_id, (int64_t)(expire_time * 1000));
		if (existed) {
			E->stale++;
			maybe_compact(E);
		}
	}
	return rc;
}

int cs_expire_delete(struct cs_txn *txn, const char *lease_id)
{
	char key[600];
	if (strlen(lease_id) > 480)
		return CS_EINVAL;
	record_key(lease_id, key, sizeof key);
	int rc = cs_txn_delete(txn, key);
	if (!rc) {
		struct expire_state *E = state_of(cs_txn_core(txn));
		E->stale++;
		maybe_compact(E);
	}
	return rc == CS_ENOTFOUND ? 0 : rc;
}

int cs_expire_revoke_lease(struct cs_txn *txn, const char *lease_id)
{
	cJSON *r = NULL;
	int rc = record_get(txn, lease_id, &r);
	if (rc)
		return rc;
	if (is_secret(r)) { /* its backend revokes it: make it due now */
		rc = secret_due_now(txn, lease_id, r);
		cJSON_Delete(r);
		return rc;
	}
	const char *tk = str_of(r, "token_key");
	if (tk)
		rc = state_of(cs_txn_core(txn))
			 ->tokens->revoke_key(txn, tk); /* deletes the record too */
	if (!rc)
		rc = cs_expire_delete(txn, lease_id);
	cJSON_Delete(r);
	return rc;
}

int cs_expire_revoke_in_prefix(struct cs_txn *txn, const char *lease_id, bool force, double at)
{
	cJSON *r = NULL;
	int rc = record_get(txn, lease_id, &r);
	if (!rc && cs_tokenutil_num(r, "issue_time") > at)
		rc = 0; /* issued after the revocation: not covered by it */
	else if (!rc && force && is_secret(r))
		rc = secret_drop(txn, lease_id, r);
	else if (!rc)
		rc = cs_expire_revoke_lease(txn, lease_id);
	cJSON_Delete(r);
	return rc;
}

/* ---------------------------------------------------------------- secret leases */

/*
 * A lease on a secret a backend issued (cs_req_lease) has, besides the fields above,
 * "secret_type" (the kind's name), "internal" (the backend's object), "max_expire" (the
 * latest expiry a renewal may reach), "owner_key" (the token that owns it, if any),
 * "attempts" (failed revocations) and, once they ran out, "irrevocable" and
 * "revoke_error". The owner index sys/expire/owner/<token key>/<lease id> lets a token's
 * revocation find its leases without a scan.
 *
 * Revoking or renewing one is an internal request through the backend's handler (an
 * "op"); at most SECRET_OPS_MAX run at once and never two for one lease. A revocation
 * that succeeds deletes the record in the backend's transaction; one that fails counts an
 * attempt and is retried after 2^(attempts-1) seconds (capped at 8), until
 * CS_LEASE_MAX_REVOKE_ATTEMPTS make the lease irrevocable. Requests that revoke or renew
 * (sys/leases/revoke, renew) wait for the op (cs_req_wait) and are woken from the `wake`
 * timer, never from inside the op's own callbacks.
 */
#define OWNER_PREFIX   "sys/expire/owner/"
#define SECRET_OPS_MAX 32

struct waiter {
	struct cs_async async;
	struct waiter *next;
	int status;
	char *errmsg;
	int64_t duration; /* renew: the TTL granted */
	bool renew;
	char *lease_id;
};

struct op {
	struct expire_state *E;
	struct op *next;
	char *lease_id;
	bool renew;
	int64_t ttl;    /* renew: requested */
	double new_exp; /* renew: the expiry recorded */
	struct cs_path row;
	struct waiter *waiters;
};

static bool is_secret(const cJSON *r)
{
	return str_of(r, "secret_type") != NULL;
}

static void owner_key(const char *owner, const char *lease_id, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s%s/%s", OWNER_PREFIX, owner, lease_id);
}

/* Delete a secret lease's record and its owner index entry in `txn`. */
static int secret_drop(struct cs_txn *txn, const char *lease_id, const cJSON *r)
{
	const char *owner = str_of(r, "owner_key");
	if (owner) {
		char key[700];
		owner_key(owner, lease_id, key, sizeof key);
		int rc = cs_txn_delete(txn, key);
		if (rc && rc != CS_ENOTFOUND)
			return rc;
	}
	return cs_expire_delete(txn, lease_id);
}

/* Make a secret lease due now: the manager revokes it through its backend. */
static int secret_due_now(struct cs_txn *txn, const char *lease_id, cJSON *r)
{
	double now = (double)now_ms() / 1000.0;
	if (cs_tokenutil_num(r, "expire_time") <= now)
		return 0;
	cJSON_ReplaceItemInObjectCaseSensitive(r, "expire_time", cJSON_CreateNumber(now));
	int rc = record_put(txn, lease_id, r);
	if (!rc)
		cs_expire_schedule(cs_txn_core(txn), lease_id, (int64_t)(now * 1000));
	return rc;
}

static struct op *op_find(struct expire_state *E, const char *lease_id)
{
	for (struct op *o = E->ops; o; o = o->next)
		if (strcmp(o->lease_id, lease_id) == 0)
			return o;
	return NULL;
}

static void wake_cb(uv_timer_t *t)
{
	struct expire_state *E = t->data;
	while (E->ready) {
		struct waiter *w = E->ready;
		E->ready = w->next;
		cs_req_wake(&w->async);
	}
}

static void op_free(struct op *o, int status, const char *errmsg)
{
	struct expire_state *E = o->E;
	while (o->waiters) {
		struct waiter *w = o->waiters;
		o->waiters = w->next;
		w->status = status;
		w->errmsg = errmsg ? strdup(errmsg) : NULL;
		w->duration = o->renew && o->new_exp > 0
				  ? (int64_t)(o->new_exp - (double)now_ms() / 1000.0 + 0.5)
				  : 0;
		w->next = E->ready;
		E->ready = w;
	}
	if (E->ready && E->handles)
		uv_timer_start(&E->wake, wake_cb, 0, 0);
	free(o->lease_id);
	free(o);
}

static void op_unlink(struct op *o)
{
	struct expire_state *E = o->E;
	for (struct op **pp = &E->ops; *pp; pp = &(*pp)->next) {
		if (*pp == o) {
			*pp = o->next;
			E->n_ops--;
			return;
		}
	}
}

static void failure_committed(void *data, int status)
{
	(void)data;
	if (status)
		cs_warn("expire: recording a failed revocation: %s", cs_strerror(status));
}

/* A revocation failed: count the attempt, retry later or give up (irrevocable). */
static void secret_failed(struct expire_state *E, const char *lease_id, const char *why)
{
	struct cs_core *core = E->core;
	E->secret_failed++;
	if (!cs_core_keyring(core) || !cs_core_is_active(core) || cs_core_shutting_down(core))
		return; /* the next active node retries from storage */
	struct cs_txn txn;
	cs_txn_begin(&txn, cs_core_storage(core), cs_core_keyring(core));
	cJSON *r = NULL;
	if (record_get(&txn, lease_id, &r)) {
		cs_txn_abort(&txn);
		return; /* gone meanwhile (revoke-force) */
	}
	int attempts = (int)cs_tokenutil_num(r, "attempts") + 1;
	cJSON_DeleteItemFromObjectCaseSensitive(r, "attempts");
	cJSON_AddNumberToObject(r, "attempts", attempts);
	bool give_up = attempts >= CS_LEASE_MAX_REVOKE_ATTEMPTS;
	if (give_up) {
		cJSON_DeleteItemFromObjectCaseSensitive(r, "irrevocable");
		cJSON_DeleteItemFromObjectCaseSensitive(r, "revoke_error");
		cJSON_AddBoolToObject(r, "irrevocable", true);
		cJSON_AddStringToObject(r, "revoke_error", why);
		cs_warn("expire: lease %s is irrevocable after %d attempts: %s", lease_id, attempts,
			why);
	} else {
		cs_warn("expire: revoking lease %s failed (attempt %d): %s", lease_id, attempts,
			why);
	}
	int rc = record_put(&txn, lease_id, r);
	cJSON_Delete(r);
	bool pending = false;
	if (!rc)
		rc = cs_txn_commit(&txn, failure_committed, NULL, &pending);
	else
		cs_txn_abort(&txn);
	if (rc)
		cs_warn("expire: recording a failed revocation: %s", cs_strerror(rc));
	if (!give_up) {
		/* 1, 2, 4, 8, 8 s: the lease is irrevocable about 23 s after it fell due. */
		int64_t backoff = (int64_t)1000 << (attempts < 4 ? attempts - 1 : 3);
		cs_expire_schedule(core, lease_id, now_ms() + backoff);
	}
}

/* In the op's transaction, after the backend's handler succeeded. */
static int op_commit(struct cs_request *req, void *ctx)
{
	struct op *o = ctx;
	cJSON *r = NULL;
	int rc = record_get(&req->txn, o->lease_id, &r);
	if (rc == CS_ENOTFOUND)
		return 0; /* dropped meanwhile (revoke-force): nothing to record */
	if (rc)
		return rc;
	if (!o->renew) {
		rc = secret_drop(&req->txn, o->lease_id, r);
	} else {
		double now = (double)now_ms() / 1000.0;
		o->new_exp = now + (double)o->ttl;
		cJSON_ReplaceItemInObjectCaseSensitive(r, "expire_time",
						       cJSON_CreateNumber(o->new_exp));
		cJSON_ReplaceItemInObjectCaseSensitive(r, "last_renewal", cJSON_CreateNumber(now));
		rc = record_put(&req->txn, o->lease_id, r);
	}
	cJSON_Delete(r);
	return rc;
}

static void op_done(struct cs_request *req, int status, void *ctx)
{
	struct op *o = ctx;
	struct expire_state *E = o->E;
	op_unlink(o);
	const char *why = req->errmsg ? req->errmsg : cs_strerror(status);
	if (status && !o->renew)
		secret_failed(E, o->lease_id, why);
	else if (!status && !o->renew)
		E->secret_revoked++;
	else if (!status)
		cs_expire_schedule(E->core, o->lease_id, (int64_t)(o->new_exp * 1000));
	op_free(o, status, status ? why : NULL);
}

/*
 * Start revoking (or renewing, with ttl) the secret lease `r` (its record). A request
 * that wants the outcome passes `w`, which is woken when the op ends (also when it joins
 * an op already running for the lease). Returns 0, or an error when the op could not
 * start (w is then untouched).
 */
static int op_start(struct expire_state *E, const char *lease_id, const cJSON *r, bool renew,
		    int64_t ttl, struct waiter *w)
{
	struct op *o = op_find(E, lease_id);
	if (o) {
		if (o->renew != renew)
			return CS_EBUSY;
		if (w) {
			w->next = o->waiters;
			o->waiters = w;
		}
		return 0;
	}
	const char *path = str_of(r, "path"), *type = str_of(r, "secret_type");
	const struct cs_secret_type *kind =
	    path && type ? cs_core_secret_type(E->core, path, type) : NULL;
	cs_handler_fn fn = kind ? (renew ? kind->renew : kind->revoke) : NULL;
	if (!fn)
		return renew ? CS_EINVAL : CS_ENOTFOUND;
	o = calloc(1, sizeof *o);
	if (!o || !(o->lease_id = strdup(lease_id)))
		abort();
	o->E = E;
	o->renew = renew;
	o->ttl = ttl;
	enum cs_op op = renew ? CS_OP_UPDATE : CS_OP_DELETE;
	o->row = (struct cs_path){.pattern = "",
				  .flags = CS_PATH_ANY_FIELDS,
				  .synopsis = renew ? "renew a lease" : "revoke a lease"};
	o->row.ops[op] = fn;
	cJSON *data = cJSON_CreateObject();
	cJSON_AddStringToObject(data, "lease_id", lease_id);
	const cJSON *internal = cJSON_GetObjectItemCaseSensitive(r, "internal");
	cJSON_AddItemToObject(data, "internal",
			      internal ? cJSON_Duplicate(internal, 1) : cJSON_CreateObject());
	cJSON_AddNumberToObject(data, "issue_time", cs_tokenutil_num(r, "issue_time"));
	if (renew)
		cJSON_AddNumberToObject(data, "ttl", (double)ttl);
	if (w) {
		w->next = NULL;
		o->waiters = w;
	}
	o->next = E->ops;
	E->ops = o;
	E->n_ops++;
	int rc = cs_core_internal(E->core, &(struct cs_internal){.op = op,
								 .path = path,
								 .data = data,
								 .route = &o->row,
								 .before_commit = op_commit,
								 .done = op_done,
								 .ctx = o});
	if (rc) { /* never started: done will not run */
		op_unlink(o);
		o->waiters = NULL;
		free(o->lease_id);
		free(o);
	}
	return rc;
}

/* cs_expiration.lease (server/backend.h: cs_req_lease). */
static int secret_lease(struct cs_request *req, const struct cs_secret_type *kind, cJSON *internal,
			int64_t ttl, int64_t max_ttl, const char *owner)
{
	int64_t mount_max = cs_req_max_ttl(req);
	if (ttl <= 0)
		ttl = cs_req_default_ttl(req);
	if (max_ttl <= 0 || max_ttl > mount_max)
		max_ttl = mount_max;
	if (ttl > max_ttl)
		ttl = max_ttl;
	char rnd[25];
	cs_random_base62(rnd, 24);
	size_t n = strlen(req->path) + 26;
	char *id = malloc(n);
	if (!id)
		abort();
	snprintf(id, n, "%s/%s", req->path, rnd);
	double now = (double)now_ms() / 1000.0;
	int rc = cs_expire_put(&req->txn, id, req->path, now, now + (double)ttl,
			       kind->renew != NULL, NULL);
	cJSON *r = NULL;
	if (!rc)
		rc = record_get(&req->txn, id, &r);
	if (!rc) {
		cJSON_AddStringToObject(r, "secret_type", kind->name);
		cJSON_AddItemToObject(r, "internal", internal ? internal : cJSON_CreateObject());
		internal = NULL;
		cJSON_AddNumberToObject(r, "max_expire", now + (double)max_ttl);
		if (owner)
			cJSON_AddStringToObject(r, "owner_key", owner);
		rc = record_put(&req->txn, id, r);
	}
	if (!rc && owner) {
		char key[700];
		owner_key(owner, id, key, sizeof key);
		rc = cs_txn_put(&req->txn, key, "", 0);
	}
	cs_json_delete_wiped(r);
	cs_json_delete_wiped(internal);
	if (rc) {
		free(id);
		return rc;
	}
	free(req->lease_id);
	req->lease_id = id;
	req->lease_duration = ttl;
	req->renewable = kind->renew != NULL;
	return 0;
}

/* cs_expiration.token_revoked: the token's secret leases fall due now. */
static int secret_token_revoked(struct cs_txn *txn, const char *token_key)
{
	char prefix[200];
	if (strlen(token_key) > 128)
		return 0;
	snprintf(prefix, sizeof prefix, "%s%s/", OWNER_PREFIX, token_key);
	struct cs_strv v = {0};
	int rc = cs_txn_scan(txn, prefix, &v);
	size_t pl = strlen(prefix);
	for (size_t i = 0; !rc && i < v.n; i++) {
		cJSON *r = NULL;
		int grc = record_get(txn, v.v[i] + pl, &r);
		if (grc == 0) {
			cJSON_DeleteItemFromObjectCaseSensitive(r, "owner_key");
			rc = record_put(txn, v.v[i] + pl, r);
			if (!rc)
				rc = secret_due_now(txn, v.v[i] + pl, r);
		} else if (grc != CS_ENOTFOUND) {
			rc = grc;
		}
		cJSON_Delete(r);
		if (!rc) {
			rc = cs_txn_delete(txn, v.v[i]);
			if (rc == CS_ENOTFOUND)
				rc = 0;
		}
	}
	cs_strv_free(&v);
	return rc;
}

/* ---------------------------------------------------------------- timers */

static void process_due(struct expire_state *E);

static void timer_cb(uv_timer_t *t)
{
	process_due(t->data);
}

static void arm(struct expire_state *E)
{
	if (!E->running || E->inflight)
		return;
	if (E->n == 0) {
		uv_timer_stop(&E->timer);
		return;
	}
	int64_t delay = E->h[0].at_ms - now_ms();
	if (delay < 0)
		delay = 0;
	/* Wall clock and monotonic clock may drift apart: re-check at least hourly. */
	if (delay > 3600 * 1000)
		delay = 3600 * 1000;
	uv_timer_start(&E->timer, timer_cb, (uint64_t)delay, 0);
}

static void batch_done(void *data, int status)
{
	struct batch *b = data;
	struct expire_state *E = b->E;
	bool current = b->gen == E->gen && E->running;
	if (current)
		E->inflight = false;
	if (status && current) {
		cs_warn("expire: revoking %zu leases failed: %s; retrying", b->n,
			cs_strerror(status));
		for (size_t i = 0; i < b->n; i++)
			heap_push(E, now_ms() + 1000, b->items[i].lease_id);
		b->n = 0;
	} else if (!status && current) {
		E->revoked += b->n;
	}
	for (size_t i = 0; i < b->n; i++)
		free(b->items[i].lease_id);
	free(b);
	if (!current)
		return;
	/* More due right now: continue on the next loop turn, after other events. Not with a
	 * 0 ms timer: libuv 1.44 runs a timer started inside its timer phase with timeout 0
	 * in that same pass, so when the commit completed synchronously (no raft peers to
	 * wait for) every batch would run back to back and starve requests. 1 ms is past the
	 * loop's cached time, so the pass ends and the loop polls first. */
	if (E->n && E->h[0].at_ms <= now_ms()) {
		E->kick_start = false;
		uv_timer_start(&E->kick, timer_cb, 1, 0);
	} else {
		arm(E);
	}
}

/* Start the revocations of due secret leases (ids taken), outside any transaction. */
static void start_secrets(struct expire_state *E, char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char *id = ids[i];
		if (op_find(E, id)) { /* running: its end reschedules it if it fails */
			free(id);
			continue;
		}
		if (E->n_ops >= SECRET_OPS_MAX) {
			heap_push(E, now_ms() + 250, id);
			continue;
		}
		struct cs_txn txn;
		cs_txn_begin(&txn, cs_core_storage(E->core), cs_core_keyring(E->core));
		cJSON *r = NULL;
		int rc = record_get(&txn, id, &r);
		cs_txn_abort(&txn);
		if (!rc && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "irrevocable"))) {
			rc = op_start(E, id, r, false, 0, NULL);
			if (rc == CS_ENOTFOUND)
				secret_failed(E, id, "the mount that issued the lease is gone");
			else if (rc && rc != CS_ENOTACTIVE && rc != CS_ESEALED)
				secret_failed(E, id, cs_strerror(rc));
		}
		cJSON_Delete(r);
		free(id);
	}
}

/* Revoke up to CS_EXPIRE_BATCH due leases in one transaction. */
static void process_due(struct expire_state *E)
{
	if (!E->running || E->inflight)
		return;
	struct cs_core *core = E->core;
	if (!cs_core_keyring(core) || !cs_core_is_active(core)) {
		cs_expire_stop(core);
		return;
	}
	struct batch *b = calloc(1, sizeof *b);
	if (!b)
		abort();
	b->E = E;
	b->gen = E->gen;
	struct cs_txn txn;
	cs_txn_begin(&txn, cs_core_storage(core), cs_core_keyring(core));
	int64_t now = now_ms();
	int rc = 0;
	char *secrets[CS_EXPIRE_BATCH]; /* due secret leases: revoked by their backends */
	size_t n_secrets = 0;
	while (E->n && E->h[0].at_ms <= now && b->n + n_secrets < CS_EXPIRE_BATCH) {
		struct hint h = heap_pop(E);
		cJSON *r = NULL;
		int grc = record_get(&txn, h.lease_id, &r);
		if (grc == CS_ENOTFOUND) { /* revoked meanwhile: stale hint */
			free(h.lease_id);
			continue;
		}
		if (grc) {
			rc = grc;
			b->items[b->n++] = h;
			break;
		}
		int64_t exp = (int64_t)(cs_tokenutil_num(r, "expire_time") * 1000);
		bool secret = is_secret(r);
		bool irrevocable = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "irrevocable"));
		cJSON_Delete(r);
		if (exp > now || irrevocable) { /* renewed (a later hint exists), or given up */
			free(h.lease_id);
			continue;
		}
		if (secret) {
			secrets[n_secrets++] = h.lease_id;
			continue;
		}
		rc = cs_expire_revoke_lease(&txn, h.lease_id);
		b->items[b->n++] = h;
		if (rc == CS_ENOTFOUND)
			rc = 0;
		if (rc)
			break;
	}
	if (rc) {
		/* Storage trouble: abandon this batch, retry later. */
		cs_txn_abort(&txn);
		cs_warn("expire: %s; retrying in 1s", cs_strerror(rc));
		for (size_t i = 0; i < b->n; i++)
			heap_push(E, now + 1000, b->items[i].lease_id);
		free(b);
		start_secrets(E, secrets, n_secrets);
		arm(E);
		return;
	}
	if (b->n == 0) {
		cs_txn_abort(&txn);
		free(b);
		start_secrets(E, secrets, n_secrets);
		arm(E);
		return;
	}
	bool pending = false;
	E->inflight = true;
	rc = cs_txn_commit(&txn, batch_done, b, &pending);
	start_secrets(E, secrets, n_secrets);
	if (rc || !pending) {
		E->inflight = true; /* batch_done clears it */
		batch_done(b, rc);
	}
}

static void kick_cb(uv_timer_t *t)
{
	struct expire_state *E = t->data;
	if (E->kick_start) {
		E->kick_start = false;
		struct cs_core *core = E->core;
		if (E->running) /* compaction: rebuild from storage */
			cs_expire_stop(core);
		if (core && cs_core_keyring(core) && cs_core_is_active(core) &&
		    !cs_core_shutting_down(core))
			cs_expire_start(core);
		return;
	}
	process_due(E);
}

static void ensure_handles(struct expire_state *E)
{
	if (E->handles || !E->core || !cs_core_loop(E->core))
		return;
	uv_timer_init(cs_core_loop(E->core), &E->timer);
	uv_timer_init(cs_core_loop(E->core), &E->kick);
	uv_timer_init(cs_core_loop(E->core), &E->wake);
	E->timer.data = E->kick.data = E->wake.data = E;
	E->handles = true;
}

void cs_expire_schedule(struct cs_core *core, const char *lease_id, int64_t expire_ms)
{
	struct expire_state *E = state_of(core);
	if (!E->running)
		return;
	char *id = strdup(lease_id);
	if (!id)
		abort();
	bool earliest = E->n == 0 || expire_ms < E->h[0].at_ms;
	heap_push(E, expire_ms, id);
	if (earliest)
		arm(E);
}

int cs_expire_start(struct cs_core *core)
{
	struct expire_state *E = state_of(core);
	if (E->running)
		return 0;
	if (!cs_core_keyring(core) || !cs_core_is_active(core) || cs_core_shutting_down(core))
		return CS_ENOTACTIVE;
	ensure_handles(E);
	struct cs_txn txn;
	cs_txn_begin(&txn, cs_core_storage(core), cs_core_keyring(core));
	struct cs_strv keys = {0};
	int rc = cs_txn_scan(&txn, CS_EXPIRE_PREFIX, &keys);
	size_t plen = strlen(CS_EXPIRE_PREFIX);
	for (size_t i = 0; !rc && i < keys.n; i++) {
		const char *id = keys.v[i] + plen;
		cJSON *r = NULL;
		int grc = record_get(&txn, id, &r);
		if (grc == CS_ENOTFOUND)
			continue;
		if (grc) {
			rc = grc;
			break;
		}
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "irrevocable"))) {
			cJSON_Delete(r);
			continue;
		}
		char *dup = strdup(id);
		if (!dup)
			abort();
		heap_push(E, (int64_t)(cs_tokenutil_num(r, "expire_time") * 1000), dup);
		cJSON_Delete(r);
	}
	cs_strv_free(&keys);
	cs_txn_abort(&txn);
	if (rc) {
		cs_warn("expire: loading leases failed: %s", cs_strerror(rc));
		heap_clear(E);
		return rc;
	}
	E->running = true;
	E->revoked = 0;
	E->stale = 0;
	cs_info("expire: loaded %zu leases", E->n);
	arm(E);
	return 0;
}

void cs_expire_stop(struct cs_core *core)
{
	struct expire_state *E = state_of(core);
	E->gen++;
	E->kick_start = false;
	E->running = false;
	E->inflight = false;
	heap_clear(E);
	if (E->handles) {
		uv_timer_stop(&E->timer);
		uv_timer_stop(&E->kick);
		if (E->core && cs_core_shutting_down(E->core)) {
			uv_close((uv_handle_t *)&E->timer, NULL);
			uv_close((uv_handle_t *)&E->kick, NULL);
			uv_close((uv_handle_t *)&E->wake, NULL);
			wake_cb(&E->wake); /* requests waiting for an op fail now */
			E->handles = false;
		}
	}
}

void cs_expire_reset(struct cs_core *core)
{
	struct expire_state *E = state_of(core);
	cs_expire_stop(core);
	if (!cs_core_loop(core) || cs_core_shutting_down(core) || !cs_core_keyring(core) ||
	    !cs_core_is_active(core))
		return;
	ensure_handles(E);
	/* Not now: the reset runs in the middle of unseal/activation, before the mount
	 * tables are loaded. */
	E->kick_start = true;
	uv_timer_start(&E->kick, kick_cb, 0, 0);
}

static void on_active(struct cs_core *core, bool active)
{
	if (active && cs_core_keyring(core)) {
		int rc = cs_expire_start(core);
		if (rc)
			cs_warn("expire: not started: %s", cs_strerror(rc));
	} else if (!active) {
		cs_expire_stop(core);
	}
}

size_t cs_expire_pending(struct cs_core *core)
{
	struct expire_state *E = state_of(core);
	return E->n;
}

bool cs_expire_running(struct cs_core *core)
{
	struct expire_state *E = state_of(core);
	return E->running;
}

uint64_t cs_expire_revoked_count(struct cs_core *core)
{
	struct expire_state *E = state_of(core);
	return E->revoked;
}

int64_t cs_expire_next_ms(struct cs_core *core)
{
	struct expire_state *E = state_of(core);
	return E->n ? E->h[0].at_ms : -1;
}

/* ---------------------------------------------------------------- sys/leases */

/* The lease id of a renew or revoke: from the body or from the path (url_lease_id), so
 * neither field alone is required and the handlers check by hand. */
static const char *lease_arg(struct cs_request *req)
{
	const char *id = cs_req_str(req, "lease_id", NULL);
	if (!id || !*id)
		id = cs_req_str(req, "url_lease_id", NULL);
	return id && *id ? id : NULL;
}

static void add_time(cJSON *d, const char *name, double unix_s)
{
	if (unix_s <= 0) {
		cJSON_AddNullToObject(d, name);
		return;
	}
	char iso[64];
	cs_format_time((int64_t)(unix_s * 1e9), iso, sizeof iso);
	cJSON_AddStringToObject(d, name, iso);
}

static int leases_lookup(struct cs_request *req)
{
	const char *id = cs_req_str(req, "lease_id", ""); /* required by the table */
	cJSON *r = NULL;
	int rc = record_get(&req->txn, id, &r);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL, "invalid lease");
	if (rc)
		return rc;
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "id", id);
	add_time(d, "issue_time", cs_tokenutil_num(r, "issue_time"));
	double exp = cs_tokenutil_num(r, "expire_time");
	add_time(d, "expire_time", exp);
	add_time(d, "last_renewal", cs_tokenutil_num(r, "last_renewal"));
	const cJSON *ren = cJSON_GetObjectItemCaseSensitive(r, "renewable");
	cJSON_AddBoolToObject(d, "renewable", cJSON_IsTrue(ren));
	double ttl = exp > 0 ? exp - (double)now_ms() / 1000.0 : 0;
	cJSON_AddNumberToObject(d, "ttl", ttl > 0 ? (double)(int64_t)ttl : 0);
	cJSON_Delete(r);
	cs_req_set_data(req, d);
	return 0;
}

static int leases_list(struct cs_request *req)
{
	const char *prefix = cs_req_str(req, "prefix", "");
	char key[600];
	if (strlen(prefix) > 480)
		return cs_req_error(req, CS_EINVAL, "prefix too long");
	snprintf(key, sizeof key, "%s%s", CS_EXPIRE_PREFIX, prefix);
	size_t kl = strlen(key);
	if (kl && key[kl - 1] != '/')
		snprintf(key + kl, sizeof key - kl, "/");
	struct cs_strv v = {0};
	return cs_tokenutil_reply_keys(req, cs_txn_list_req_page(req, key, &v), &v);
}

static int waiter_resume(struct cs_request *req, struct cs_async *a, int status)
{
	struct waiter *w = CS_CONTAINER_OF(a, struct waiter, async);
	int rc = status ? status : w->status;
	if (!rc && w->renew) {
		req->lease_id = w->lease_id;
		w->lease_id = NULL;
		req->renewable = true;
		req->lease_duration = w->duration;
	} else if (rc && w->errmsg && !req->errmsg) {
		cs_req_error(req, rc, "%s", w->errmsg);
	}
	free(w->errmsg);
	free(w->lease_id);
	free(w);
	return rc;
}

/* Revoke or renew the secret lease `r` through its backend; the request waits. */
static int secret_wait(struct cs_request *req, const char *id, const cJSON *r, bool renew,
		       int64_t ttl)
{
	struct waiter *w = calloc(1, sizeof *w);
	if (!w || !(w->lease_id = strdup(id)))
		abort();
	w->async.resume = waiter_resume;
	w->renew = renew;
	int rc = op_start(state_of(req->core), id, r, renew, ttl, w);
	if (rc) {
		free(w->lease_id);
		free(w);
		if (rc == CS_ENOTFOUND)
			return cs_req_error(req, CS_EINVAL,
					    "the mount that issued the lease is gone");
		if (rc == CS_EBUSY)
			return cs_req_error(req, CS_EBUSY, "the lease is being revoked or renewed");
		return rc;
	}
	return cs_req_wait(req, &w->async);
}

static int leases_renew(struct cs_request *req)
{
	const char *id = lease_arg(req);
	if (!id)
		return cs_req_error(req, CS_EINVAL, "lease id must be specified");
	cJSON *r = NULL;
	int rc = record_get(&req->txn, id, &r);
	if (!rc && state_of(req->core)->tokens->lease_revoked(&req->txn, id,
							      cs_tokenutil_num(r, "issue_time"))) {
		cJSON_Delete(r); /* revoked by a revoke-prefix still being cleaned */
		rc = CS_ENOTFOUND;
	}
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL, "lease not found");
	if (rc)
		return rc;
	if (str_of(r, "token_key")) {
		cJSON_Delete(r);
		return cs_req_error(req, CS_EINVAL,
				    "tokens cannot be renewed through this endpoint");
	}
	double now = (double)now_ms() / 1000.0;
	double exp = cs_tokenutil_num(r, "expire_time");
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "renewable")) || exp <= now) {
		cJSON_Delete(r);
		return cs_req_error(req, CS_EINVAL, "lease is not renewable");
	}
	int64_t inc = cs_req_int(req, "increment", 0);
	if (inc <= 0)
		inc = (int64_t)(exp - cs_tokenutil_num(r, "issue_time"));
	int64_t max = cs_core_sys_max_ttl(req->core);
	double limit = cs_tokenutil_num(r, "issue_time") + (double)max;
	if (is_secret(r) && cs_tokenutil_num(r, "max_expire") < limit)
		limit = cs_tokenutil_num(r, "max_expire");
	double nexp = now + (double)inc;
	if (nexp > limit)
		nexp = limit;
	if (is_secret(r)) { /* the backend extends the secret itself, then we record it */
		rc = secret_wait(req, id, r, true, (int64_t)(nexp - now));
		cJSON_Delete(r);
		return rc;
	}
	cJSON_ReplaceItemInObjectCaseSensitive(r, "expire_time", cJSON_CreateNumber(nexp));
	cJSON_ReplaceItemInObjectCaseSensitive(r, "last_renewal", cJSON_CreateNumber(now));
	rc = record_put(&req->txn, id, r);
	cJSON_Delete(r);
	if (rc)
		return rc;
	cs_expire_schedule(req->core, id, (int64_t)(nexp * 1000));
	req->lease_id = strdup(id);
	req->renewable = true;
	req->lease_duration = (int64_t)(nexp - now);
	return 0;
}

static int leases_revoke(struct cs_request *req)
{
	const char *id = lease_arg(req);
	if (!id)
		return cs_req_error(req, CS_EINVAL, "lease id must be specified");
	cJSON *r = NULL;
	int rc = record_get(&req->txn, id, &r);
	if (rc == CS_ENOTFOUND)
		return 0;        /* Vault: revoking an unknown lease succeeds */
	if (!rc && is_secret(r)) /* answered once the backend revoked it */
		rc = secret_wait(req, id, r, false, 0);
	else if (!rc)
		rc = cs_expire_revoke_lease(&req->txn, id);
	cJSON_Delete(r);
	return rc;
}

enum prefix_mode {
	PREFIX_UNMOUNT, /* tokens now; refused while secret leases remain */
};

/* Revoke every lease under a whole-segment prefix in `txn`. */
static int revoke_prefix_txn(struct cs_request *req, struct cs_txn *txn, const char *prefix,
			     enum prefix_mode mode)
{
	char key[600];
	if (strlen(prefix) > 480)
		return cs_req_error(req, CS_EINVAL, "prefix too long");
	/* As Vault: a prefix names a whole path segment ("a/b" never matches "a/bc/..."). */
	size_t pl = strlen(prefix);
	snprintf(key, sizeof key, "%s%s%s", CS_EXPIRE_PREFIX, prefix,
		 prefix[pl - 1] == '/' ? "" : "/");
	struct cs_strv v = {0};
	int rc = cs_txn_scan(txn, key, &v);
	if (!rc && v.n > CS_EXPIRE_PREFIX_MAX)
		rc = cs_req_error(req, CS_EINVAL,
				  "%zu leases under this prefix; at most %d per request", v.n,
				  CS_EXPIRE_PREFIX_MAX);
	size_t plen = strlen(CS_EXPIRE_PREFIX), secrets = 0;
	/* As Vault: a whole lease id is a prefix too (the lease itself). */
	cJSON *exact = NULL;
	if (!rc && prefix[pl - 1] != '/' && record_get(txn, prefix, &exact) == 0) {
		char full[600];
		snprintf(full, sizeof full, "%s%s", CS_EXPIRE_PREFIX, prefix);
		cs_strv_push(&v, full, strlen(full));
	}
	cJSON_Delete(exact);
	for (size_t i = 0; !rc && i < v.n; i++) {
		const char *id = v.v[i] + plen;
		cJSON *r = NULL;
		rc = record_get(txn, id, &r);
		if (!rc && is_secret(r) && mode == PREFIX_UNMOUNT)
			secrets++;
		else if (!rc)
			rc = cs_expire_revoke_lease(txn, id);
		cJSON_Delete(r);
		if (rc == CS_ENOTFOUND) /* gone with an earlier token's tree */
			rc = 0;
	}
	cs_strv_free(&v);
	if (!rc && secrets)
		/* Vault revokes them first; a credential must never outlive its mount's
		 * records silently, so the operator revokes (or force-drops) them first. */
		rc =
		    cs_req_error(req, CS_EINVAL,
				 "%zu leases issued by this mount are not revoked yet: revoke them "
				 "first (sys/leases/revoke-prefix/%s), then disable the mount",
				 secrets, prefix);
	return rc;
}

/*
 * sys/leases/revoke-prefix and revoke-force: any number of leases. The prefix is marked
 * revoked in one small write (token_revoke.h) and cleaned in bounded batches. As in
 * Vault, sync (default true) answers once every lease under it is revoked (the request
 * waits, the loop does not); sync=false answers 202 at once.
 */
static int revoke_prefix_common(struct cs_request *req, bool force)
{
	const char *prefix = cs_req_str(req, "prefix", "");
	if (!*prefix)
		return cs_req_error(req, CS_EINVAL, "prefix must be specified");
	size_t pl = strlen(prefix);
	if (pl > 479)
		return cs_req_error(req, CS_EINVAL, "prefix too long");
	/* As Vault: a prefix names a whole path segment ("a/b" never matches "a/bc/..."),
	 * and a whole lease id is a prefix too (the lease itself). */
	char norm[600];
	snprintf(norm, sizeof norm, "%s%s", prefix, prefix[pl - 1] == '/' ? "" : "/");
	const char *exact = prefix[pl - 1] == '/' ? NULL : prefix;
	return state_of(req->core)->tokens->revoke_prefix(req, norm, exact, force,
							  cs_req_bool(req, "sync", true));
}

static int revoke_prefix(struct cs_request *req)
{
	return revoke_prefix_common(req, false);
}

static int revoke_force(struct cs_request *req)
{
	return revoke_prefix_common(req, true);
}

/* cs_expiration.revoke_prefix: a mount being disabled takes its leases (and tokens) along. */
static int core_revoke_prefix(struct cs_request *req, const char *prefix)
{
	return revoke_prefix_txn(req, &req->txn, prefix, PREFIX_UNMOUNT);
}

/* sys/leases/count and sys/leases (type=irrevocable): Vault's answers, by mount. */
static int leases_counted(struct cs_request *req, bool list)
{
	const char *type = cs_req_str(req, "type", "");
	bool all = strcmp(type, "all") == 0;
	if (!all && strcmp(type, "irrevocable") != 0)
		return cs_req_error(req, CS_EINVAL,
				    "invalid 'type' parameter, must be "
				    "\"irrevocable\"%s",
				    list ? "" : " or \"all\"");
	if (list && all)
		return cs_req_error(req, CS_EINVAL,
				    "invalid 'type' parameter, must be \"irrevocable\"");
	/* Vault's limit is a string: a count, or "none" for all (default 10,000). */
	const char *lim = cs_req_str(req, "limit", "");
	int64_t limit = 10000;
	if (strcmp(lim, "none") == 0) {
		limit = 0;
	} else if (*lim) {
		char *end = NULL;
		long long n = strtoll(lim, &end, 10);
		if (*end || n <= 0 || n > 1000000)
			return cs_req_error(
			    req, CS_EINVAL,
			    "invalid 'limit' parameter, must be a positive number or "
			    "\"none\"");
		limit = n;
	}
	struct cs_strv v = {0};
	int rc = cs_txn_scan(&req->txn, CS_EXPIRE_PREFIX, &v);
	size_t plen = strlen(CS_EXPIRE_PREFIX), n = 0;
	cJSON *counts = cJSON_CreateObject(), *leases = cJSON_CreateArray();
	for (size_t i = 0; !rc && i < v.n; i++) {
		cJSON *r = NULL;
		rc = record_get(&req->txn, v.v[i] + plen, &r);
		if (rc == CS_ENOTFOUND) {
			rc = 0;
			continue;
		}
		if (rc)
			break;
		if (all || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "irrevocable"))) {
			n++;
			/* The mount: the lease path's first segment(s), as the lease id shows. */
			const char *path = str_of(r, "path");
			char mount[256];
			snprintf(mount, sizeof mount, "%s", path ? path : "");
			char *slash = strchr(mount, '/');
			if (slash && strncmp(mount, "auth/", 5) == 0)
				slash = strchr(slash + 1, '/');
			if (slash)
				slash[1] = '\0';
			cJSON *c = cJSON_GetObjectItemCaseSensitive(counts, mount);
			if (c)
				cJSON_SetNumberValue(c, c->valuedouble + 1);
			else
				cJSON_AddNumberToObject(counts, mount, 1);
			if (list && (limit <= 0 || (int64_t)cJSON_GetArraySize(leases) < limit)) {
				cJSON *e = cJSON_CreateObject();
				cJSON_AddStringToObject(e, "lease_id", v.v[i] + plen);
				cJSON_AddStringToObject(e, "mount_id", mount);
				const char *err = str_of(r, "revoke_error");
				cJSON_AddStringToObject(e, "error", err ? err : "");
				cJSON_AddItemToArray(leases, e);
			}
		}
		cJSON_Delete(r);
	}
	cs_strv_free(&v);
	if (rc) {
		cJSON_Delete(counts);
		cJSON_Delete(leases);
		return rc;
	}
	cJSON *d = cJSON_CreateObject();
	cJSON_AddNumberToObject(d, "lease_count", (double)n);
	if (list) {
		cJSON_Delete(counts);
		cJSON_AddItemToObject(d, "leases", leases);
	} else {
		cJSON_Delete(leases);
		cJSON_AddItemToObject(d, "counts", counts);
	}
	cs_req_set_data(req, d);
	return 0;
}

static int leases_count(struct cs_request *req)
{
	return leases_counted(req, false);
}

static int leases_irrevocable(struct cs_request *req)
{
	return leases_counted(req, true);
}

/* Drop lease records whose token no longer exists. */
static int leases_tidy(struct cs_request *req)
{
	struct cs_strv v = {0};
	int rc = cs_txn_scan(&req->txn, CS_EXPIRE_PREFIX, &v);
	size_t plen = strlen(CS_EXPIRE_PREFIX), dropped = 0;
	for (size_t i = 0; !rc && i < v.n && i < CS_EXPIRE_PREFIX_MAX; i++) {
		cJSON *r = NULL;
		rc = record_get(&req->txn, v.v[i] + plen, &r);
		if (rc == CS_ENOTFOUND) {
			rc = 0;
			continue;
		}
		const char *tk = rc ? NULL : str_of(r, "token_key");
		if (tk && !state_of(req->core)->tokens->key_exists(&req->txn, tk)) {
			rc = cs_txn_delete(&req->txn, v.v[i]);
			dropped++;
		}
		cJSON_Delete(r);
	}
	cs_strv_free(&v);
	if (rc)
		return rc;
	if (dropped)
		cs_info("expire: tidy removed %zu dangling leases", dropped);
	req->status = 202;
	cs_req_warn(req, "Tidy operation successfully started. Any information from the "
			 "operation will be printed to Vault's server logs.");
	return 0;
}

static const struct cs_field lookup_fields[] = {
    {.name = "lease_id", .type = CS_FIELD_STRING, .desc = "lease id", .required = true},
    {.name = "url_lease_id", .type = CS_FIELD_STRING, .desc = "unused"},
    {.name = "increment", .type = CS_FIELD_DURATION, .desc = "unused"},
    {.name = "sync", .type = CS_FIELD_BOOL, .desc = "unused"},
    {.name = NULL},
};

static const struct cs_field lease_fields[] = {
    {.name = "lease_id", .type = CS_FIELD_STRING, .desc = "lease id"},
    {.name = "url_lease_id", .type = CS_FIELD_STRING, .desc = "lease id (path)"},
    {.name = "increment", .type = CS_FIELD_DURATION, .desc = "requested extension"},
    {.name = "sync", .type = CS_FIELD_BOOL, .desc = "revoke before answering (always, here)"},
    {.name = NULL},
};

static const struct cs_field prefix_fields[] = {
    {.name = "prefix", .type = CS_FIELD_STRING, .desc = "lease id prefix"},
    {.name = "sync",
     .type = CS_FIELD_BOOL,
     .desc = "answer once every lease is revoked (default true); false: 202 at once"},
    {.name = NULL},
};

static const struct cs_field count_fields[] = {
    {.name = "type",
     .type = CS_FIELD_STRING,
     .desc = "\"irrevocable\" (or \"all\" to count)",
     .required = false},
    {.name = "include_child", .type = CS_FIELD_BOOL, .desc = "accepted; every namespace is one"},
    {.name = "limit", .type = CS_FIELD_STRING, .desc = "most leases listed (\"none\": all)"},
    {.name = NULL},
};

static const struct cs_path lease_paths[] = {
    {.pattern = "leases/lookup",
     .fields = lookup_fields,
     .ops = {[CS_OP_UPDATE] = leases_lookup},
     .synopsis = "lease information"},
    {.pattern = "leases/lookup/{prefix*}",
     .fields = prefix_fields,
     .ops = {[CS_OP_LIST] = leases_list},
     .flags = CS_PATH_SUDO,
     .synopsis = "list leases"},
    {.pattern = "leases/renew",
     .fields = lease_fields,
     .ops = {[CS_OP_UPDATE] = leases_renew},
     .synopsis = "renew a lease"},
    {.pattern = "leases/renew/{url_lease_id*}",
     .fields = lease_fields,
     .ops = {[CS_OP_UPDATE] = leases_renew},
     .synopsis = "renew a lease"},
    {.pattern = "renew",
     .fields = lease_fields,
     .ops = {[CS_OP_UPDATE] = leases_renew},
     .synopsis = "renew a lease"},
    {.pattern = "renew/{url_lease_id*}",
     .fields = lease_fields,
     .ops = {[CS_OP_UPDATE] = leases_renew},
     .synopsis = "renew a lease"},
    {.pattern = "leases/revoke",
     .fields = lease_fields,
     .ops = {[CS_OP_UPDATE] = leases_revoke},
     .synopsis = "revoke a lease"},
    {.pattern = "leases/revoke/{url_lease_id*}",
     .fields = lease_fields,
     .ops = {[CS_OP_UPDATE] = leases_revoke},
     .synopsis = "revoke a lease"},
    {.pattern = "revoke",
     .fields = lease_fields,
     .ops = {[CS_OP_UPDATE] = leases_revoke},
     .synopsis = "revoke a lease"},
    {.pattern = "revoke/{url_lease_id*}",
     .fields = lease_fields,
     .ops = {[CS_OP_UPDATE] = leases_revoke},
     .synopsis = "revoke a lease"},
    {.pattern = "leases/revoke-prefix/{prefix*}",
     .fields = prefix_fields,
     .ops = {[CS_OP_UPDATE] = revoke_prefix},
     .flags = CS_PATH_SUDO,
     .synopsis = "revoke every lease under a prefix"},
    {.pattern = "revoke-prefix/{prefix*}",
     .fields = prefix_fields,
     .ops = {[CS_OP_UPDATE] = revoke_prefix},
     .flags = CS_PATH_SUDO,
     .synopsis = "revoke every lease under a prefix"},
    {.pattern = "leases/revoke-force/{prefix*}",
     .fields = prefix_fields,
     .ops = {[CS_OP_UPDATE] = revoke_force},
     .flags = CS_PATH_SUDO,
     .synopsis = "delete every lease under a prefix"},
    {.pattern = "revoke-force/{prefix*}",
     .fields = prefix_fields,
     .ops = {[CS_OP_UPDATE] = revoke_force},
     .flags = CS_PATH_SUDO,
     .synopsis = "delete every lease under a prefix"},
    {.pattern = "leases/count",
     .fields = count_fields,
     .ops = {[CS_OP_READ] = leases_count},
     .flags = CS_PATH_SUDO,
     .synopsis = "count leases by mount"},
    {.pattern = "leases",
     .fields = count_fields,
     .ops = {[CS_OP_READ] = leases_irrevocable},
     .flags = CS_PATH_SUDO,
     .synopsis = "list irrevocable leases"},
    {.pattern = "leases/tidy",
     .ops = {[CS_OP_UPDATE] = leases_tidy},
     .synopsis = "remove dangling leases"},
};

static const struct cs_expiration expiration = {
    .active = on_active,
    .revoke_prefix = core_revoke_prefix,
    .lease = secret_lease,
    .token_revoked = secret_token_revoked,
};

void cs_expire_register(struct cs_core *core, const struct cs_expire_tokens *tokens)
{
	state_of(core)->tokens = tokens;
	cs_core_set_expiration(core, &expiration);
	cs_sys_set_paths(CS_SYS_LEASES, lease_paths, CS_ARRAY_LEN(lease_paths));
}
