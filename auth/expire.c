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
#include "lib/log.h"
#include "lib/util.h"

struct hint {
	int64_t at_ms; /* unix milliseconds */
	char *lease_id;
};

/* A batch of popped hints whose transaction is committing. */
struct batch {
	uint64_t gen;
	size_t n;
	struct hint items[CS_EXPIRE_BATCH];
};

static struct {
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
} E;

/* Rebuild the heap from storage once more than half of it is stale (and it is big):
 * revoked and renewed leases leave their old hints behind until they fall due, which
 * for a default 768h TTL would let memory grow with every token ever created. */
#define COMPACT_MIN 4096

static void kick_cb(uv_timer_t *t);

static void maybe_compact(void)
{
	if (!E.running || E.kick_start || E.n < COMPACT_MIN || E.stale <= E.n / 2)
		return;
	/* Not now: the caller is inside a request whose writes are not yet visible to a
	 * new transaction. On the next loop turn they are (overlay) or never will be. */
	E.kick_start = true;
	uv_timer_start(&E.kick, kick_cb, 0, 0);
}

static int64_t now_ms(void)
{
	return cs_now_ns() / 1000000;
}

/* ---------------------------------------------------------------- heap */

static void heap_swap(size_t a, size_t b)
{
	struct hint t = E.h[a];
	E.h[a] = E.h[b];
	E.h[b] = t;
}

static void heap_push(int64_t at, char *id /* owned */)
{
	if (E.n == E.cap) {
		size_t cap = E.cap ? E.cap * 2 : 64;
		struct hint *nh = realloc(E.h, cap * sizeof *nh);
		if (!nh)
			abort();
		E.h = nh;
		E.cap = cap;
	}
	size_t i = E.n++;
	E.h[i].at_ms = at;
	E.h[i].lease_id = id;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (E.h[p].at_ms <= E.h[i].at_ms)
			break;
		heap_swap(p, i);
		i = p;
	}
}

static struct hint heap_pop(void)
{
	struct hint top = E.h[0];
	E.h[0] = E.h[--E.n];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < E.n && E.h[l].at_ms < E.h[m].at_ms)
			m = l;
		if (r < E.n && E.h[r].at_ms < E.h[m].at_ms)
			m = r;
		if (m == i)
			break;
		heap_swap(i, m);
		i = m;
	}
	return top;
}

static void heap_clear(void)
{
	for (size_t i = 0; i < E.n; i++)
		free(E.h[i].lease_id);
	free(E.h);
	E.h = NULL;
	E.n = E.cap = 0;
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
	char *s = cJSON_PrintUnformatted(r);
	int rc = cs_txn_put(txn, key, s, strlen(s));
	free(s);
	return rc;
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
		cs_expire_schedule(lease_id, (int64_t)(expire_time * 1000));
		if (existed) {
			E.stale++;
			maybe_compact();
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
		E.stale++;
		maybe_compact();
	}
	return rc == CS_ENOTFOUND ? 0 : rc;
}

int cs_expire_revoke_lease(struct cs_txn *txn, const char *lease_id)
{
	cJSON *r = NULL;
	int rc = record_get(txn, lease_id, &r);
	if (rc)
		return rc;
	const char *tk = str_of(r, "token_key");
	if (tk)
		rc = E.tokens->revoke_key(txn, tk); /* deletes the record too */
	if (!rc)
		rc = cs_expire_delete(txn, lease_id);
	cJSON_Delete(r);
	return rc;
}

/* ---------------------------------------------------------------- timers */

static void process_due(void);

static void timer_cb(uv_timer_t *t)
{
	(void)t;
	process_due();
}

static void arm(void)
{
	if (!E.running || E.inflight)
		return;
	if (E.n == 0) {
		uv_timer_stop(&E.timer);
		return;
	}
	int64_t delay = E.h[0].at_ms - now_ms();
	if (delay < 0)
		delay = 0;
	/* Wall clock and monotonic clock may drift apart: re-check at least hourly. */
	if (delay > 3600 * 1000)
		delay = 3600 * 1000;
	uv_timer_start(&E.timer, timer_cb, (uint64_t)delay, 0);
}

static void batch_done(void *data, int status)
{
	struct batch *b = data;
	bool current = b->gen == E.gen && E.running;
	if (current)
		E.inflight = false;
	if (status && current) {
		cs_warn("expire: revoking %zu leases failed: %s; retrying", b->n,
			cs_strerror(status));
		for (size_t i = 0; i < b->n; i++)
			heap_push(now_ms() + 1000, b->items[i].lease_id);
		b->n = 0;
	} else if (!status && current) {
		E.revoked += b->n;
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
	if (E.n && E.h[0].at_ms <= now_ms()) {
		E.kick_start = false;
		uv_timer_start(&E.kick, timer_cb, 1, 0);
	} else {
		arm();
	}
}

/* Revoke up to CS_EXPIRE_BATCH due leases in one transaction. */
static void process_due(void)
{
	if (!E.running || E.inflight)
		return;
	struct cs_core *core = E.core;
	if (!cs_core_keyring(core) || !cs_core_is_active(core)) {
		cs_expire_stop();
		return;
	}
	struct batch *b = calloc(1, sizeof *b);
	if (!b)
		abort();
	b->gen = E.gen;
	struct cs_txn txn;
	cs_txn_begin(&txn, cs_core_storage(core), cs_core_keyring(core));
	int64_t now = now_ms();
	int rc = 0;
	while (E.n && E.h[0].at_ms <= now && b->n < CS_EXPIRE_BATCH) {
		struct hint h = heap_pop();
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
		cJSON_Delete(r);
		if (exp > now) { /* renewed: a later hint exists */
			free(h.lease_id);
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
			heap_push(now + 1000, b->items[i].lease_id);
		free(b);
		arm();
		return;
	}
	if (b->n == 0) {
		cs_txn_abort(&txn);
		free(b);
		arm();
		return;
	}
	bool pending = false;
	E.inflight = true;
	rc = cs_txn_commit(&txn, batch_done, b, &pending);
	if (rc || !pending) {
		E.inflight = true; /* batch_done clears it */
		batch_done(b, rc);
	}
}

static void kick_cb(uv_timer_t *t)
{
	(void)t;
	if (E.kick_start) {
		E.kick_start = false;
		struct cs_core *core = E.core;
		if (E.running) /* compaction: rebuild from storage */
			cs_expire_stop();
		if (core && cs_core_keyring(core) && cs_core_is_active(core) &&
		    !cs_core_shutting_down(core))
			cs_expire_start(core);
		return;
	}
	process_due();
}

static void ensure_handles(void)
{
	if (E.handles || !E.core || !cs_core_loop(E.core))
		return;
	uv_timer_init(cs_core_loop(E.core), &E.timer);
	uv_timer_init(cs_core_loop(E.core), &E.kick);
	E.handles = true;
}

void cs_expire_schedule(const char *lease_id, int64_t expire_ms)
{
	if (!E.running)
		return;
	char *id = strdup(lease_id);
	if (!id)
		abort();
	bool earliest = E.n == 0 || expire_ms < E.h[0].at_ms;
	heap_push(expire_ms, id);
	if (earliest)
		arm();
}

int cs_expire_start(struct cs_core *core)
{
	E.core = core;
	if (E.running)
		return 0;
	if (!cs_core_keyring(core) || !cs_core_is_active(core) || cs_core_shutting_down(core))
		return CS_ENOTACTIVE;
	ensure_handles();
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
		char *dup = strdup(id);
		if (!dup)
			abort();
		heap_push((int64_t)(cs_tokenutil_num(r, "expire_time") * 1000), dup);
		cJSON_Delete(r);
	}
	cs_strv_free(&keys);
	cs_txn_abort(&txn);
	if (rc) {
		cs_warn("expire: loading leases failed: %s", cs_strerror(rc));
		heap_clear();
		return rc;
	}
	E.running = true;
	E.revoked = 0;
	E.stale = 0;
	cs_info("expire: loaded %zu leases", E.n);
	arm();
	return 0;
}

void cs_expire_stop(void)
{
	E.gen++;
	E.kick_start = false;
	E.running = false;
	E.inflight = false;
	heap_clear();
	if (E.handles) {
		uv_timer_stop(&E.timer);
		uv_timer_stop(&E.kick);
		if (E.core && cs_core_shutting_down(E.core)) {
			uv_close((uv_handle_t *)&E.timer, NULL);
			uv_close((uv_handle_t *)&E.kick, NULL);
			E.handles = false;
		}
	}
}

void cs_expire_reset(void)
{
	cs_expire_stop();
	struct cs_core *core = E.core;
	if (!core || !cs_core_loop(core) || cs_core_shutting_down(core) || !cs_core_keyring(core) ||
	    !cs_core_is_active(core))
		return;
	ensure_handles();
	/* Not now: the reset runs in the middle of unseal/activation, before the mount
	 * tables are loaded. */
	E.kick_start = true;
	uv_timer_start(&E.kick, kick_cb, 0, 0);
}

static void on_active(struct cs_core *core, bool active)
{
	E.core = core;
	if (active && cs_core_keyring(core)) {
		int rc = cs_expire_start(core);
		if (rc)
			cs_warn("expire: not started: %s", cs_strerror(rc));
	} else if (!active) {
		cs_expire_stop();
	}
}

size_t cs_expire_pending(void)
{
	return E.n;
}

bool cs_expire_running(void)
{
	return E.running;
}

uint64_t cs_expire_revoked_count(void)
{
	return E.revoked;
}

int64_t cs_expire_next_ms(void)
{
	return E.n ? E.h[0].at_ms : -1;
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
	return cs_tokenutil_reply_keys(req, cs_txn_list(&req->txn, key, &v), &v);
}

static int leases_renew(struct cs_request *req)
{
	const char *id = lease_arg(req);
	if (!id)
		return cs_req_error(req, CS_EINVAL, "lease id must be specified");
	cJSON *r = NULL;
	int rc = record_get(&req->txn, id, &r);
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
	double nexp = now + (double)inc;
	if (nexp > limit)
		nexp = limit;
	cJSON_ReplaceItemInObjectCaseSensitive(r, "expire_time", cJSON_CreateNumber(nexp));
	cJSON_ReplaceItemInObjectCaseSensitive(r, "last_renewal", cJSON_CreateNumber(now));
	rc = record_put(&req->txn, id, r);
	cJSON_Delete(r);
	if (rc)
		return rc;
	cs_expire_schedule(id, (int64_t)(nexp * 1000));
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
	int rc = cs_expire_revoke_lease(&req->txn, id);
	if (rc == CS_ENOTFOUND)
		return 0; /* Vault: revoking an unknown lease succeeds */
	return rc;
}

/* Revoke every lease under a whole-segment prefix in `txn`. */
static int revoke_prefix_txn(struct cs_request *req, struct cs_txn *txn, const char *prefix)
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
	size_t plen = strlen(CS_EXPIRE_PREFIX);
	for (size_t i = 0; !rc && i < v.n; i++) {
		rc = cs_expire_revoke_lease(txn, v.v[i] + plen);
		if (rc == CS_ENOTFOUND) /* gone with an earlier token's tree */
			rc = 0;
	}
	cs_strv_free(&v);
	return rc;
}

static int revoke_prefix(struct cs_request *req)
{
	const char *prefix = cs_req_str(req, "prefix", "");
	if (!*prefix)
		return cs_req_error(req, CS_EINVAL, "prefix must be specified");
	return revoke_prefix_txn(req, &req->txn, prefix);
}

/* cs_expiration.revoke_prefix: a mount being disabled takes its leases (and tokens) along. */
static int core_revoke_prefix(struct cs_request *req, const char *prefix)
{
	return revoke_prefix_txn(req, &req->txn, prefix);
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
		if (tk && !E.tokens->key_exists(&req->txn, tk)) {
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
    {.name = "sync", .type = CS_FIELD_BOOL, .desc = "revoke before answering (always, here)"},
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
     .ops = {[CS_OP_UPDATE] = revoke_prefix},
     .flags = CS_PATH_SUDO,
     .synopsis = "delete every lease under a prefix"},
    {.pattern = "revoke-force/{prefix*}",
     .fields = prefix_fields,
     .ops = {[CS_OP_UPDATE] = revoke_prefix},
     .flags = CS_PATH_SUDO,
     .synopsis = "delete every lease under a prefix"},
    {.pattern = "leases/tidy",
     .ops = {[CS_OP_UPDATE] = leases_tidy},
     .synopsis = "remove dangling leases"},
};

static const struct cs_expiration expiration = {
    .active = on_active,
    .revoke_prefix = core_revoke_prefix,
};

void cs_expire_register(struct cs_core *core, const struct cs_expire_tokens *tokens)
{
	E.core = core;
	E.tokens = tokens;
	cs_core_set_expiration(core, &expiration);
	cs_sys_set_paths(CS_SYS_LEASES, lease_paths, CS_ARRAY_LEN(lease_paths));
}
