/*
 * Revocation of any size: the marks, the chain check, the bounded job steps and the
 * background worker (see token_revoke.h for the design and the failure modes).
 *
 * Job records (barrier-encrypted JSON):
 *   sys/revoke/tree/<H(T)>      {"time": t}  T's entry is gone; delete its tree
 *   sys/revoke/orphan/<H(T)>    {"time": t}  T's entry is gone; its children become orphans
 *   sys/revoke/prefix/<prefix>  {"time": t, "force": b, "after": last lease key done}
 */
#include "auth/token_revoke.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/expire.h"
#include "auth/token_internal.h"
#include "auth/tokenutil.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"

/* Children read per index page. */
#define KIDS_PAGE 32
/* Leases read per page of a prefix job. */
#define LEASE_PAGE 64

/* ---------------------------------------------------------------- budgets */

/* What one transaction may still spend: writes are counted in its write-set. */
struct budget {
	struct cs_txn *txn;
	size_t ws0, writes;
	long reads;
};

static bool spent(const struct budget *b)
{
	return b->txn->ws.n - b->ws0 >= b->writes || b->reads <= 0;
}

static int delete_opt(struct cs_txn *txn, const char *key)
{
	int rc = cs_txn_delete(txn, key);
	return rc == CS_ENOTFOUND ? 0 : rc;
}

static bool key_exists(struct cs_txn *txn, const char *key)
{
	struct cs_buf b = CS_BUF_INIT;
	int rc = cs_txn_get_raw(txn, key, &b);
	cs_buf_free(&b);
	return rc != CS_ENOTFOUND;
}

static int put_job(struct cs_txn *txn, const char *key, const cJSON *j)
{
	char *s = cJSON_PrintUnformatted(j);
	if (!s)
		return CS_ENOMEM;
	int rc = cs_txn_put(txn, key, s, strlen(s));
	free(s);
	return rc;
}

/* The first page of `hex`'s children (full index keys) into *out. */
static int kids_page(struct budget *b, const char *hex, size_t limit, struct cs_strv *out)
{
	char prefix[128];
	snprintf(prefix, sizeof prefix, "%s%s/", CS_TOKEN_PARENT_PREFIX, hex);
	b->reads--;
	return cs_txn_scan_page(b->txn, prefix, NULL, limit, out);
}

/* ---------------------------------------------------------------- tree jobs */

/* Delete token `child` of `parent` (its records, then the index link). */
static int delete_token(struct budget *b, const char *parent, const char *child)
{
	cJSON *e = NULL;
	b->reads--;
	int rc = cs_token_entry_get(b->txn, child, &e);
	if (!rc)
		rc = cs_token_delete_records(b->txn, child, e);
	else if (rc == CS_ENOTFOUND)
		rc = 0; /* a dangling link */
	cJSON_Delete(e);
	char key[256];
	snprintf(key, sizeof key, "%s%s/%s", CS_TOKEN_PARENT_PREFIX, parent, child);
	return rc ? rc : delete_opt(b->txn, key);
}

/*
 * One bounded pass over what is left below `root` (whose entry is gone): depth first,
 * delete every token that has no children, from the leaves up. Only index links lead
 * the way, so a pass can stop anywhere and the next one (maybe on another node) picks up
 * from storage. *done when nothing is left below root.
 */
static int tree_step(struct budget *b, const char *root, bool *done)
{
	size_t pl = strlen(CS_TOKEN_PARENT_PREFIX) + 65;
	struct cs_strv stack = {0};
	int rc = 0;
	*done = false;
	cs_strv_push(&stack, root, strlen(root));
	while (!rc && stack.n && !spent(b)) {
		const char *x = stack.v[stack.n - 1];
		struct cs_strv kids = {0};
		rc = kids_page(b, x, KIDS_PAGE, &kids);
		if (!rc && kids.n == 0) {
			if (stack.n == 1) {
				*done = true;
			} else { /* x has no children left: it goes now */
				rc = delete_token(b, stack.v[stack.n - 2], x);
			}
			free(stack.v[--stack.n]);
		}
		for (size_t i = 0; !rc && i < kids.n && !spent(b); i++) {
			const char *child = kids.v[i] + pl;
			struct cs_strv grand = {0};
			rc = kids_page(b, child, 1, &grand);
			bool inner = grand.n > 0;
			cs_strv_free(&grand);
			if (!rc && inner) { /* descend; the rest of this page comes later */
				cs_strv_push(&stack, child, strlen(child));
				break;
			}
			if (!rc)
				rc = delete_token(b, x, child);
		}
		cs_strv_free(&kids);
	}
	cs_strv_free(&stack);
	return rc;
}

/* ---------------------------------------------------------------- orphan jobs */

/* Make pages of `root`'s children orphans: rewrite each entry, drop its index link. */
static int orphan_step(struct budget *b, const char *root, bool *done)
{
	size_t pl = strlen(CS_TOKEN_PARENT_PREFIX) + 65;
	int rc = 0;
	*done = false;
	while (!rc && !*done && !spent(b)) {
		struct cs_strv kids = {0};
		rc = kids_page(b, root, KIDS_PAGE, &kids);
		if (!rc && kids.n == 0)
			*done = true;
		for (size_t i = 0; !rc && i < kids.n; i++) {
			const char *child = kids.v[i] + pl;
			cJSON *c = NULL;
			b->reads--;
			rc = cs_token_entry_get(b->txn, child, &c);
			if (!rc && strcmp(cs_tokenutil_str(c, "parent"), root) == 0) {
				cs_token_set_in_place(c, "orphan", cJSON_CreateTrue());
				cs_token_set_in_place(c, "parent", cJSON_CreateString(""));
				rc = cs_token_entry_put(b->txn, child, c);
			} else if (rc == CS_ENOTFOUND) {
				rc = 0;
			}
			cJSON_Delete(c);
			if (!rc)
				rc = delete_opt(b->txn, kids.v[i]);
		}
		cs_strv_free(&kids);
	}
	return rc;
}

/* ---------------------------------------------------------------- prefix jobs */

/* Revoke a page of the leases under the job's prefix, after its cursor. */
static int prefix_step(struct budget *b, const char *job_key, cJSON *job, bool *done)
{
	const char *prefix = job_key + strlen(CS_REVQ_LEASE_PREFIX);
	char scan[600];
	snprintf(scan, sizeof scan, "%s%s", CS_EXPIRE_PREFIX, prefix);
	double at = cs_tokenutil_num(job, "time");
	bool force = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(job, "force"));
	char after[600];
	snprintf(after, sizeof after, "%s", cs_tokenutil_str(job, "after"));
	size_t el = strlen(CS_EXPIRE_PREFIX);
	int rc = 0;
	*done = false;
	while (!rc && !spent(b) && !*done) {
		struct cs_strv v = {0};
		b->reads--;
		rc = cs_txn_scan_page(b->txn, scan, after, LEASE_PAGE, &v);
		if (!rc && v.n == 0)
			*done = true;
		for (size_t i = 0; !rc && i < v.n && !spent(b); i++) {
			b->reads--;
			rc = cs_expire_revoke_in_prefix(b->txn, v.v[i] + el, force, at);
			if (rc == CS_ENOTFOUND) /* gone with an earlier token's tree */
				rc = 0;
			snprintf(after, sizeof after, "%s", v.v[i]);
		}
		cs_strv_free(&v);
	}
	if (!rc && !*done) { /* remember where the next batch starts */
		cs_token_set_in_place(job, "after", cJSON_CreateString(after));
		rc = put_job(b->txn, job_key, job);
	}
	return rc;
}

/* ---------------------------------------------------------------- jobs */

/* Run job `key` within the budget; a finished job loses its record (and is noted). */
static int job_step(struct budget *b, const char *key, bool *done)
{
	int rc;
	*done = false;
	if (strncmp(key, CS_REVQ_TREE_PREFIX, strlen(CS_REVQ_TREE_PREFIX)) == 0) {
		rc = tree_step(b, key + strlen(CS_REVQ_TREE_PREFIX), done);
	} else if (strncmp(key, CS_REVQ_ORPHAN_PREFIX, strlen(CS_REVQ_ORPHAN_PREFIX)) == 0) {
		rc = orphan_step(b, key + strlen(CS_REVQ_ORPHAN_PREFIX), done);
	} else if (strncmp(key, CS_REVQ_LEASE_PREFIX, strlen(CS_REVQ_LEASE_PREFIX)) == 0) {
		cJSON *job = NULL;
		rc = cs_tokenutil_txn_get_json(b->txn, key, &job);
		if (!rc)
			rc = prefix_step(b, key, job, done);
		cJSON_Delete(job);
	} else {
		cs_warn("revoke: unknown job %s dropped", key);
		rc = 0;
		*done = true;
	}
	if (!rc && *done) {
		cJSON *job = NULL;
		if (cs_tokenutil_txn_get_json(b->txn, key, &job) == 0)
			cs_info("revoke: %s done, %.1f s after the revocation", key,
				(double)cs_now_ns() / 1e9 - cs_tokenutil_num(job, "time"));
		cJSON_Delete(job);
		rc = delete_opt(b->txn, key);
	}
	return rc;
}

static int step_jobs(struct budget *b, bool *more, struct cs_strv *finished)
{
	struct cs_strv jobs = {0};
	*more = false;
	int rc = cs_txn_scan_page(b->txn, CS_REVQ_PREFIX, NULL, 8, &jobs);
	size_t i = 0;
	for (; !rc && i < jobs.n && !spent(b); i++) {
		bool done = false;
		rc = job_step(b, jobs.v[i], &done);
		if (!rc && done && finished)
			cs_strv_push(finished, jobs.v[i], strlen(jobs.v[i]));
		if (!rc && !done)
			*more = true;
	}
	if (i < jobs.n || jobs.n == 8)
		*more = true;
	cs_strv_free(&jobs);
	return rc;
}

int cs_revq_step(struct cs_txn *txn, size_t writes, bool *more)
{
	struct budget b = {
	    .txn = txn, .ws0 = txn->ws.n, .writes = writes, .reads = CS_REVQ_BATCH_READS};
	return step_jobs(&b, more, NULL);
}

size_t cs_revq_pending(struct cs_txn *txn)
{
	struct cs_strv v = {0};
	size_t n = cs_txn_scan(txn, CS_REVQ_PREFIX, &v) ? 0 : v.n;
	cs_strv_free(&v);
	return n;
}

/* ---------------------------------------------------------------- marks */

int cs_revq_token(struct cs_txn *txn, const char *hex, const cJSON *e, bool orphan)
{
	int rc = cs_token_delete_records(txn, hex, e);
	struct budget b = {.txn = txn,
			   .ws0 = txn->ws.n,
			   .writes = CS_REVQ_INLINE_WRITES,
			   .reads = CS_REVQ_INLINE_WRITES * 4};
	struct cs_strv kids = {0};
	if (!rc)
		rc = kids_page(&b, hex, 1, &kids);
	bool has_kids = kids.n > 0;
	cs_strv_free(&kids);
	if (rc || !has_kids)
		return rc;
	char key[128];
	snprintf(key, sizeof key, "%s%s", orphan ? CS_REVQ_ORPHAN_PREFIX : CS_REVQ_TREE_PREFIX,
		 hex);
	cJSON *job = cJSON_CreateObject();
	cJSON_AddNumberToObject(job, "time", (double)cs_now_ns() / 1e9);
	rc = put_job(txn, key, job);
	cJSON_Delete(job);
	bool done = false;
	if (!rc)
		rc = job_step(&b, key, &done);
	if (!rc && !done)
		cs_revq_kick(cs_txn_core(txn));
	return rc;
}

int cs_revq_lease_prefix(struct cs_txn *txn, const char *prefix, bool force, bool *done)
{
	char key[600];
	*done = false;
	if (strlen(prefix) > 480)
		return CS_EINVAL;
	snprintf(key, sizeof key, "%s%s", CS_REVQ_LEASE_PREFIX, prefix);
	cJSON *job = NULL;
	int rc = cs_tokenutil_txn_get_json(txn, key, &job);
	if (rc == CS_ENOTFOUND) { /* a running job keeps its time and cursor */
		job = cJSON_CreateObject();
		cJSON_AddNumberToObject(job, "time", (double)cs_now_ns() / 1e9);
		cJSON_AddBoolToObject(job, "force", force);
		cJSON_AddStringToObject(job, "after", "");
		rc = put_job(txn, key, job);
	}
	cJSON_Delete(job);
	struct budget b = {.txn = txn,
			   .ws0 = txn->ws.n,
			   .writes = CS_REVQ_INLINE_WRITES,
			   .reads = CS_REVQ_INLINE_WRITES * 4};
	if (!rc)
		rc = job_step(&b, key, done);
	if (!rc && !*done)
		cs_revq_kick(cs_txn_core(txn));
	return rc;
}

bool cs_revq_lease_marked(struct cs_txn *txn, const char *lease_id, double issue_time)
{
	char key[600];
	size_t kp = strlen(CS_REVQ_LEASE_PREFIX), n = strlen(lease_id);
	if (n > 480)
		return false;
	memcpy(key, CS_REVQ_LEASE_PREFIX, kp);
	for (size_t i = 0; i < n; i++) {
		key[kp + i] = lease_id[i];
		if (lease_id[i] != '/')
			continue;
		key[kp + i + 1] = '\0';
		if (!key_exists(txn, key))
			continue;
		cJSON *job = NULL;
		int rc = cs_tokenutil_txn_get_json(txn, key, &job);
		/* Fail closed on storage trouble; a lease issued after the revocation (a
		 * login under the prefix while the job runs) is not revoked by it. */
		bool marked = rc != 0 || issue_time <= cs_tokenutil_num(job, "time");
		cJSON_Delete(job);
		if (marked)
			return true;
	}
	return false;
}

int cs_token_chain_ok(struct cs_txn *txn, const cJSON *e, size_t *depth)
{
	const cJSON *cur = e;
	cJSON *owned = NULL;
	size_t d = 0;
	int rc = 0;
	for (;;) {
		const char *lease = cs_tokenutil_str(cur, "lease_id");
		if (*lease &&
		    cs_revq_lease_marked(txn, lease, cs_tokenutil_num(cur, "creation_time"))) {
			rc = CS_ENOTFOUND;
			break;
		}
		char parent[65];
		snprintf(parent, sizeof parent, "%s", cs_tokenutil_str(cur, "parent"));
		if (!*parent)
			break;
		if (++d > CS_TOKEN_CHAIN_MAX) { /* refused at creation: fail closed */
			rc = CS_ENOTFOUND;
			break;
		}
		cJSON_Delete(owned);
		owned = NULL;
		rc = cs_token_entry_get(txn, parent, &owned);
		if (rc == CS_ENOTFOUND) {
			/* Missing: revoked with its tree — unless its children are being made
			 * orphans, which ends the chain here. */
			char key[128];
			snprintf(key, sizeof key, "%s%s", CS_REVQ_ORPHAN_PREFIX, parent);
			rc = key_exists(txn, key) ? 0 : CS_ENOTFOUND;
			break;
		}
		if (rc)
			break;
		if (!cs_token_entry_valid(owned)) { /* expired or used up: the tree is too */
			rc = CS_ENOTFOUND;
			break;
		}
		cur = owned;
	}
	cJSON_Delete(owned);
	if (depth)
		*depth = d;
	return rc;
}

/* ---------------------------------------------------------------- sync waiters */

struct waiter {
	struct cs_async async;
	struct waiter *next;
	struct revq_state *S;
	char *key;
	int status;
};

/* ---------------------------------------------------------------- the worker */

struct revq_state {
	struct cs_core *core;
	bool handles, running, inflight;
	uint64_t gen, batches;
	uv_timer_t timer;
	uv_timer_t wake_timer;  /* wakes `ready` outside storage callbacks */
	struct waiter *waiters; /* their job's mark committed; waiting for its end */
	struct waiter *ready;   /* to be woken */
};

static void revq_release(void *state)
{
	struct revq_state *S = state;
	(void)S; /* waiters were woken by the stop at shutdown */
}

static const struct cs_core_state_type revq_state_type = {
    .name = "revocation queue", .size = sizeof(struct revq_state), .release = revq_release};

static struct revq_state *state_of(struct cs_core *core)
{
	struct revq_state *S = cs_core_state(core, &revq_state_type);
	S->core = core;
	return S;
}

static void wake_cb(uv_timer_t *t)
{
	struct revq_state *S = t->data;
	while (S->ready) {
		struct waiter *w = S->ready;
		S->ready = w->next;
		cs_req_wake(&w->async); /* resumes the request now: w is gone */
	}
}

/* Wake `w` on the next loop turn: cs_req_wake resumes the request at once, which must
 * not happen inside a storage callback. */
static void wake(struct waiter *w, int status)
{
	struct revq_state *S = w->S;
	w->status = status;
	w->next = S->ready;
	S->ready = w;
	if (S->handles && !cs_core_shutting_down(S->core))
		uv_timer_start(&S->wake_timer, wake_cb, 0, 0);
}

/* Wake the waiters of the jobs in `finished` (all of them with `status` when NULL). */
static void wake_finished(struct revq_state *S, const struct cs_strv *finished, int status)
{
	struct waiter **pp = &S->waiters;
	while (*pp) {
		struct waiter *w = *pp;
		bool hit = !finished;
		for (size_t i = 0; finished && !hit && i < finished->n; i++)
			hit = strcmp(finished->v[i], w->key) == 0;
		if (hit) {
			*pp = w->next;
			wake(w, status);
		} else {
			pp = &w->next;
		}
	}
}

static void run(struct revq_state *S);
static void ensure_handles(struct revq_state *S);

static void timer_cb(uv_timer_t *t)
{
	run(t->data);
}

static void arm(struct revq_state *S, uint64_t ms)
{
	if (S->handles && S->running)
		uv_timer_start(&S->timer, timer_cb, ms, 0);
}

struct batch {
	struct revq_state *S;
	uint64_t gen;
	bool more;
	struct cs_strv finished;
};

static void batch_done(void *data, int status)
{
	struct batch *bt = data;
	struct revq_state *S = bt->S;
	if (bt->gen == S->gen && S->running) {
		S->inflight = false;
		if (status) {
			cs_warn("revoke: a cleanup batch failed: %s; retrying",
				cs_strerror(status));
			arm(S, 1000);
		} else {
			S->batches++;
			wake_finished(S, &bt->finished, 0);
			/* 1 ms, not 0: the loop polls for requests between two batches (a 0 ms
			 * timer started in the timer phase would run in the same pass). */
			arm(S, bt->more ? 1 : 10000);
		}
	}
	cs_strv_free(&bt->finished);
	free(bt);
}

static void run(struct revq_state *S)
{
	struct cs_core *core = S->core;
	if (!S->running || S->inflight)
		return;
	if (!cs_core_keyring(core) || !cs_core_is_active(core) || cs_core_shutting_down(core))
		return;
	struct batch *bt = calloc(1, sizeof *bt);
	if (!bt)
		abort();
	bt->S = S;
	bt->gen = S->gen;
	struct cs_txn txn;
	cs_txn_begin(&txn, cs_core_storage(core), cs_core_keyring(core));
	struct budget b = {
	    .txn = &txn, .writes = CS_REVQ_BATCH_WRITES, .reads = CS_REVQ_BATCH_READS};
	int64_t t0 = cs_now_ns();
	int rc = step_jobs(&b, &bt->more, &bt->finished);
	/* The loop was busy with this for so long: what KV reads may wait behind it. */
	cs_debug("revoke: batch of %zu writes built in %.1f ms", txn.ws.n,
		 (double)(cs_now_ns() - t0) / 1e6);
	if (rc) {
		cs_txn_abort(&txn);
		cs_warn("revoke: cleanup: %s; retrying in 1s", cs_strerror(rc));
		cs_strv_free(&bt->finished);
		free(bt);
		arm(S, 1000);
		return;
	}
	if (txn.ws.n == 0) { /* nothing to do (or nothing visible yet): poll later */
		cs_txn_abort(&txn);
		wake_finished(S, &bt->finished, 0);
		cs_strv_free(&bt->finished);
		bool more = bt->more;
		free(bt);
		arm(S, more ? 1000 : 10000);
		return;
	}
	bool pending = false;
	S->inflight = true;
	rc = cs_txn_commit(&txn, batch_done, bt, &pending);
	if (rc || !pending)
		batch_done(bt, rc);
}

static void ensure_handles(struct revq_state *S)
{
	if (S->handles || !cs_core_loop(S->core))
		return;
	uv_timer_init(cs_core_loop(S->core), &S->timer);
	uv_timer_init(cs_core_loop(S->core), &S->wake_timer);
	S->timer.data = S->wake_timer.data = S;
	S->handles = true;
}

static void stop(struct revq_state *S)
{
	S->gen++;
	S->running = false;
	S->inflight = false;
	wake_finished(S, NULL, CS_ENOTACTIVE);
	if (S->handles && cs_core_shutting_down(S->core)) {
		uv_timer_stop(&S->timer);
		uv_close((uv_handle_t *)&S->timer, NULL);
		uv_close((uv_handle_t *)&S->wake_timer, NULL);
		S->handles = false;
		wake_cb(&S->wake_timer); /* the core fails them: it is shutting down */
	} else if (S->handles) {
		uv_timer_stop(&S->timer);
	}
}

void cs_revq_reset(struct cs_core *core)
{
	struct revq_state *S = state_of(core);
	stop(S);
	if (!cs_core_loop(core) || cs_core_shutting_down(core) || !cs_core_keyring(core) ||
	    !cs_core_is_active(core))
		return;
	ensure_handles(S);
	S->running = true;
	/* Not now: the reset runs in the middle of unseal/activation. */
	arm(S, 1);
}

void cs_revq_kick(struct cs_core *core)
{
	struct revq_state *S = state_of(core);
	if (!S->running && cs_core_loop(core) && !cs_core_shutting_down(core) &&
	    cs_core_keyring(core) && cs_core_is_active(core)) {
		ensure_handles(S);
		S->running = true;
	}
	if (S->running && !S->inflight)
		arm(S, 1);
}

uint64_t cs_revq_batches(struct cs_core *core)
{
	return state_of(core)->batches;
}

/* ---------------------------------------------------------------- sync revoke-prefix */

static int waiter_resume(struct cs_request *req, struct cs_async *a, int status)
{
	(void)req;
	struct waiter *w = CS_CONTAINER_OF(a, struct waiter, async);
	int rc = status ? status : w->status;
	free(w->key);
	free(w);
	return rc;
}

/* The mark's own transaction committed (or not): from now on the worker wakes the
 * waiter when the job is finished, or its stop does. */
static void mark_committed(void *data, int status)
{
	struct waiter *w = data;
	struct revq_state *S = w->S;
	if (status || !w->key[0]) { /* failed, or finished inside the mark's transaction */
		wake(w, status);
		return;
	}
	cs_revq_kick(S->core);
	if (!S->running) {
		wake(w, CS_ENOTACTIVE);
		return;
	}
	w->next = S->waiters;
	S->waiters = w;
}

static int lease_prefix_wait(struct cs_request *req, const char *prefix, const char *exact,
			     bool force)
{
	struct revq_state *S = state_of(req->core);
	ensure_handles(S);
	struct cs_txn txn;
	cs_txn_begin(&txn, cs_core_storage(req->core), cs_core_keyring(req->core));
	bool done = false;
	int rc = 0;
	if (exact) {
		rc = cs_expire_revoke_in_prefix(&txn, exact, force, (double)cs_now_ns() / 1e9);
		if (rc == CS_ENOTFOUND)
			rc = 0;
	}
	if (!rc)
		rc = cs_revq_lease_prefix(&txn, prefix, force, &done);
	if (rc) {
		cs_txn_abort(&txn);
		return rc;
	}
	struct waiter *w = calloc(1, sizeof *w);
	if (!w)
		abort();
	w->S = S;
	w->async.resume = waiter_resume;
	size_t n = strlen(CS_REVQ_LEASE_PREFIX) + strlen(prefix) + 1;
	w->key = malloc(n);
	if (!w->key)
		abort();
	if (done)
		w->key[0] = '\0';
	else
		snprintf(w->key, n, "%s%s", CS_REVQ_LEASE_PREFIX, prefix);
	bool pending = false;
	rc = cs_txn_commit(&txn, mark_committed, w, &pending);
	if (rc || !pending) {
		free(w->key);
		free(w);
		return rc;
	}
	return cs_req_wait(req, &w->async);
}

int cs_revq_revoke_prefix(struct cs_request *req, const char *prefix, const char *exact, bool force,
			  bool sync)
{
	int rc = 0;
	if (exact) {
		rc = cs_expire_revoke_in_prefix(&req->txn, exact, force, (double)cs_now_ns() / 1e9);
		if (rc == CS_ENOTFOUND)
			rc = 0;
	}
	bool done = false;
	if (!rc)
		rc = cs_revq_lease_prefix(&req->txn, prefix, force, &done);
	/* Too big for one transaction: the core drops this one's writes when the request
	 * waits, so the mark is written again in a transaction of its own. */
	if (!rc && sync && !done)
		return lease_prefix_wait(req, prefix, exact, force);
	if (!rc && !sync)
		req->status = 202;
	return rc;
}
