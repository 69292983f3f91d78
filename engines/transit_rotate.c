/*
 * Automatic rotation of transit keys (engines/transit_internal.h): the backend's periodic
 * function, run by the core on the active node once per transit mount every
 * periodic_interval, in a transaction the core commits like any request's.
 *
 * A key is due when it has an auto_rotate_period and its latest version is older than
 * that (Vault's rule: the latest version's creation time plus the period is before now),
 * so a restart, a leader change or a missed tick only delays a rotation, never repeats
 * one: the decision is taken from replicated state alone.
 *
 * Each run is bounded: it looks at most TR_ROTATE_SCAN keys, continuing after the last
 * name the previous run looked at (a per-core, per-mount cursor; losing it on reset only
 * restarts the scan), and rotates at most TR_ROTATE_BATCH keys holding at most
 * TR_ROTATE_VERSIONS versions between them, so the write-set stays well under a raft
 * entry. Symmetric and hmac keys get their new version in the run itself; asymmetric keys
 * (RSA generation takes seconds) are generated on the worker pool in one job of at most
 * TR_ROTATE_ASYM keys, and the resume re-reads each key and rotates it only if it is still
 * due and still of the generated type (a manual rotation or a delete meanwhile wins).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engines/transit_crypto.h"
#include "engines/transit_internal.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/util.h"

#define TR_ROTATE_SCAN     256
#define TR_ROTATE_BATCH    32
#define TR_ROTATE_VERSIONS 256
#define TR_ROTATE_ASYM     4

bool tr_rotate_due(const cJSON *pol, int64_t now)
{
	int64_t period = tr_jint(pol, "auto_rotate_period");
	if (period <= 0)
		return false;
	char vs[24];
	snprintf(vs, sizeof vs, "%lld", (long long)tr_jint(pol, "latest_version"));
	const cJSON *e =
	    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(pol, "keys"), vs);
	if (!e)
		return false; /* a latest version that is gone: nothing to measure from */
	/* Strictly after, as Go's time.After. */
	return now > tr_jint(e, "time") + period;
}

/* ---- the per-mount scan cursor */

struct cursor {
	char *prefix;
	char *after; /* the last name looked at; "" from the start */
	struct cursor *next;
};

struct rotate_state {
	struct cursor *cursors;
	uint64_t rotated; /* for tests */
};

static void rotate_release(void *state)
{
	struct rotate_state *s = state;
	while (s->cursors) {
		struct cursor *c = s->cursors;
		s->cursors = c->next;
		free(c->prefix);
		free(c->after);
		free(c);
	}
}

static const struct cs_core_state_type rotate_type = {
    .name = "transit rotation", .size = sizeof(struct rotate_state), .release = rotate_release};

static struct cursor *cursor_of(struct cs_request *req)
{
	struct rotate_state *s = cs_core_state(req->core, &rotate_type);
	const char *prefix = cs_req_storage_prefix(req);
	for (struct cursor *c = s->cursors; c; c = c->next)
		if (strcmp(c->prefix, prefix) == 0)
			return c;
	struct cursor *c = calloc(1, sizeof *c);
	if (!c || !(c->prefix = strdup(prefix)) || !(c->after = strdup(""))) {
		if (c)
			free(c->prefix);
		free(c);
		return NULL;
	}
	c->next = s->cursors;
	s->cursors = c;
	return c;
}

static void cursor_set(struct cursor *c, const char *after)
{
	char *a = strdup(after);
	if (!a)
		return; /* the next run starts from the same place */
	free(c->after);
	c->after = a;
}

uint64_t tr_rotate_count(struct cs_core *core)
{
	return ((struct rotate_state *)cs_core_state(core, &rotate_type))->rotated;
}

/* ---- one run's batch: the due keys, with new private keys for the asymmetric ones
 * (generated on the pool) */

struct batch {
	struct cs_async async;
	size_t n, n_asym;
	char *names[TR_ROTATE_BATCH];
	enum cs_transit_type types[TR_ROTATE_BATCH];
	uint8_t *der[TR_ROTATE_BATCH];
	size_t derlen[TR_ROTATE_BATCH];
	int rc[TR_ROTATE_BATCH];
};

static void batch_free(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->names[i]);
		tr_wipe_free(b->der[i], b->derlen[i]);
	}
	free(b);
}

/* Pool thread: only the batch. */
static void batch_work(struct cs_async *a)
{
	struct batch *b = CS_CONTAINER_OF(a, struct batch, async);
	for (size_t i = 0; i < b->n; i++)
		if (cs_transit_is_asym(b->types[i]))
			b->rc[i] = cs_transit_asym_generate(b->types[i], &b->der[i], &b->derlen[i]);
}

/* Rotate `name` if it is still due and of the type the batch saw (a manual rotation, a
 * delete or a re-creation meanwhile wins). 0 (also when nothing was to be done) or an
 * error. */
static int rotate_one(struct cs_request *req, const char *name, enum cs_transit_type want,
		      const uint8_t *der, size_t derlen)
{
	cJSON *pol = NULL;
	int rc = tr_pol_load(req, name, &pol);
	if (rc == CS_ENOTFOUND)
		return 0;
	if (!rc && tr_pol_type(pol) == want && tr_rotate_due(pol, cs_now_ns() / 1000000000)) {
		tr_pol_add_version(pol, der, derlen);
		if (!(rc = tr_pol_save(req, name, pol)))
			((struct rotate_state *)cs_core_state(req->core, &rotate_type))->rotated++;
	}
	cs_json_delete_wiped(pol);
	return rc;
}

/* Rotate the batch in the request's transaction (the run itself, or the resume after the
 * pool generated the asymmetric keys); a failed generation waits for a later run. */
static int batch_apply(struct cs_request *req, struct batch *b, int status)
{
	int rc = status;
	for (size_t i = 0; !rc && i < b->n; i++)
		if (!b->rc[i])
			rc = rotate_one(req, b->names[i], b->types[i], b->der[i], b->derlen[i]);
	batch_free(b);
	return rc;
}

static int batch_resume(struct cs_request *req, struct cs_async *a, int status)
{
	return batch_apply(req, CS_CONTAINER_OF(a, struct batch, async), status);
}

int tr_periodic(struct cs_request *req)
{
	struct cursor *cur = cursor_of(req);
	struct batch *b = calloc(1, sizeof *b);
	if (!cur || !b) {
		free(b);
		return CS_ENOMEM;
	}
	struct cs_strv names = {0};
	int rc = cs_view_list(req, "policy/", &names);
	if (rc == CS_ENOTFOUND)
		rc = 0;
	size_t scanned = 0, versions = 0, i = 0;
	int64_t now = cs_now_ns() / 1000000000;
	/* Names come sorted: resume after the cursor. */
	while (i < names.n && strcmp(names.v[i], cur->after) <= 0)
		i++;
	for (; !rc && i < names.n && scanned < TR_ROTATE_SCAN; i++, scanned++) {
		cJSON *pol = NULL;
		int lrc = tr_pol_peek(req, names.v[i], &pol);
		if (lrc) { /* a name Vault would not route, or deleted meanwhile */
			if (lrc != CS_ENOTFOUND)
				rc = lrc;
			continue;
		}
		enum cs_transit_type t = tr_pol_type(pol);
		size_t nv = (size_t)(tr_jint(pol, "latest_version") -
				     tr_jint(pol, "min_available_version") + 1);
		bool due = tr_rotate_due(pol, now);
		cs_json_delete_wiped(pol);
		if (due &&
		    (b->n == TR_ROTATE_BATCH || (b->n && versions + nv > TR_ROTATE_VERSIONS) ||
		     (cs_transit_is_asym(t) && b->n_asym == TR_ROTATE_ASYM)))
			break; /* full: the cursor stays before this key, the next run starts here
				*/
		if (due && (b->names[b->n] = strdup(names.v[i]))) {
			b->types[b->n++] = t;
			b->n_asym += cs_transit_is_asym(t);
			versions += nv;
		}
		cursor_set(cur, names.v[i]);
	}
	if (i >= names.n)
		cursor_set(cur, ""); /* the whole mount was seen: start over next time */
	cs_strv_free(&names);
	if (rc || b->n_asym == 0)
		return batch_apply(req, b, rc);
	b->async.work = batch_work;
	b->async.resume = batch_resume;
	return cs_req_defer(req, &b->async);
}
