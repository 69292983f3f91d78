/*
 * A cache of resolved identities (cs_id_resolve), for the ACL on every request of a token
 * with an entity: without it each request decrypts and parses the entity record, lists
 * its memberships and decrypts and parses every group up the parent chain.
 *
 * An entry remembers what the resolution read: each record's key with its stored bytes
 * as they sit in storage (barrier ciphertext, never decrypted for the check; "absent"
 * counts) and each listed range with the keys it held. A hit re-reads those raw bytes and
 * ranges through the request's transaction and reuses the answer only when every one is
 * byte-identical, so, as with the policy cache (policy/store.h), the cache can never serve
 * an identity that storage no longer holds: a group change, a restore, a new leader's
 * writes, even the request's own or a pending write (the transaction layer sees those
 * and notes the read) all show as different bytes. Equal ciphertext under the same key
 * decrypts to equal plaintext (the barrier's nonce is fresh on every write, and a keyring
 * rotation does not rewrite values), so the check needs no decryption.
 *
 * Per core (cs_core_state), loop thread only, at most CACHE_SLOTS entities (a slot is
 * taken over by the next entity that hashes to it), emptied on seal and leadership loss.
 */
#include <stdlib.h>
#include <string.h>

#include "engines/identity_internal.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/util.h"

#define CACHE_SLOTS 1024
#define MAX_DEPS    64 /* resolutions that read more are not cached */

struct dep {
	char *key;            /* full storage key, or list prefix */
	bool is_list;         /* a LIST of the range `key` */
	bool absent;          /* the record did not exist */
	struct cs_buf raw;    /* stored bytes (record) */
	struct cs_strv names; /* listed names (range) */
};

struct cs_id_recording {
	struct dep *v;
	size_t n, cap;
	bool overflow;
};

struct slot {
	char *entity_id;
	cJSON *resolved;
	struct cs_id_recording deps;
};

struct id_cache {
	struct slot *slots; /* CACHE_SLOTS, allocated on first use */
	uint64_t hits, misses;
};

static void deps_free(struct cs_id_recording *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i].key);
		cs_buf_free(&r->v[i].raw);
		cs_strv_free(&r->v[i].names);
	}
	free(r->v);
	memset(r, 0, sizeof *r);
}

static void slot_clear(struct slot *s)
{
	free(s->entity_id);
	cJSON_Delete(s->resolved);
	deps_free(&s->deps);
	memset(s, 0, sizeof *s);
}

static void cache_release(void *state)
{
	struct id_cache *c = state;
	for (size_t i = 0; c->slots && i < CACHE_SLOTS; i++)
		slot_clear(&c->slots[i]);
	free(c->slots);
	memset(c, 0, sizeof *c);
}

static const struct cs_core_state_type cache_type = {
    .name = "identity cache", .size = sizeof(struct id_cache), .release = cache_release};

void cs_id_cache_reset(struct cs_core *core)
{
	cache_release(cs_core_state(core, &cache_type));
}

static struct dep *dep_add(struct cs_id_recording *r, const char *key, bool is_list)
{
	if (r->overflow || r->n == MAX_DEPS) {
		r->overflow = true;
		return NULL;
	}
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 8;
		r->v = realloc(r->v, r->cap * sizeof *r->v);
		if (!r->v)
			abort();
	}
	struct dep *d = &r->v[r->n++];
	*d = (struct dep){.key = strdup(key), .is_list = is_list, .raw = CS_BUF_INIT};
	if (!d->key)
		abort();
	return d;
}

void cs_id_record_get(struct cs_idv *v, const char *full_key)
{
	struct cs_id_recording *r = v->rec;
	if (!r)
		return;
	struct dep *d = dep_add(r, full_key, false);
	if (!d)
		return;
	int rc = cs_txn_get_raw(v->txn, full_key, &d->raw);
	if (rc == CS_ENOTFOUND)
		d->absent = true;
	else if (rc)
		r->overflow = true; /* not cacheable: the resolution fails the same way */
}

void cs_id_record_list(struct cs_idv *v, const char *full_prefix, const struct cs_strv *names)
{
	struct cs_id_recording *r = v->rec;
	if (!r)
		return;
	struct dep *d = dep_add(r, full_prefix, true);
	if (!d)
		return;
	for (size_t i = 0; i < names->n; i++)
		cs_strv_push(&d->names, names->v[i], strlen(names->v[i]));
}

/* Whether every dependency still reads the same in `txn`. */
static bool deps_hold(struct cs_txn *txn, const struct cs_id_recording *r)
{
	bool same = true;
	struct cs_buf b = CS_BUF_INIT;
	struct cs_strv names = {0};
	for (size_t i = 0; same && i < r->n; i++) {
		const struct dep *d = &r->v[i];
		if (d->is_list) {
			if (cs_txn_list(txn, d->key, &names) != 0 || names.n != d->names.n)
				same = false;
			for (size_t j = 0; same && j < names.n; j++)
				same = strcmp(names.v[j], d->names.v[j]) == 0;
			cs_strv_free(&names);
			continue;
		}
		b.len = 0;
		int rc = cs_txn_get_raw(txn, d->key, &b);
		if (rc == CS_ENOTFOUND)
			same = d->absent;
		else
			same = rc == 0 && !d->absent && b.len == d->raw.len &&
			       memcmp(b.data, d->raw.data, b.len) == 0;
	}
	cs_buf_free(&b);
	return same;
}

static struct slot *slot_of(struct id_cache *c, const char *entity_id)
{
	if (!c->slots) {
		c->slots = calloc(CACHE_SLOTS, sizeof *c->slots);
		if (!c->slots)
			abort();
	}
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (const char *p = entity_id; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	return &c->slots[h % CACHE_SLOTS];
}

int cs_id_resolve_cached(struct cs_core *core, struct cs_txn *txn, const char *entity_id,
			 cJSON **out)
{
	*out = NULL;
	struct id_cache *c = cs_core_state(core, &cache_type);
	struct slot *s = slot_of(c, entity_id);
	if (s->entity_id && strcmp(s->entity_id, entity_id) == 0 && deps_hold(txn, &s->deps)) {
		c->hits++;
		*out = cJSON_Duplicate(s->resolved, true);
		if (!*out)
			abort();
		return 0;
	}
	c->misses++;
	struct cs_id_recording rec = {0};
	int rc = cs_id_resolve_recorded(core, txn, entity_id, &rec, out);
	if (rc || !*out || rec.overflow) {
		deps_free(&rec);
		return rc;
	}
	slot_clear(s);
	s->entity_id = strdup(entity_id);
	s->resolved = cJSON_Duplicate(*out, true);
	if (!s->entity_id || !s->resolved)
		abort();
	s->deps = rec;
	return 0;
}

void cs_id_cache_stats(struct cs_core *core, uint64_t *hits, uint64_t *misses)
{
	struct id_cache *c = cs_core_state(core, &cache_type);
	*hits = c->hits;
	*misses = c->misses;
}
