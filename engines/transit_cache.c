/*
 * The transit engine's key cache (engines/transit_internal.h): decrypted key policies kept
 * between requests in locked memory (lib/secmem), so an operation on a hot key skips the
 * barrier's decryption, and cache-config (Vault's size rule: 0 = no count limit, else at
 * least 10 keys, least recently used out first).
 *
 * Correctness never depends on invalidation: an entry remembers the stored ciphertext it
 * was decrypted from, and a load first reads the raw stored bytes through the request's
 * transaction; only when they are byte-for-byte the same (the barrier's random nonce makes
 * every write different) is the cached plaintext used. A write that reached storage any
 * other way (raft from another leader's term, a snapshot restore) is therefore never
 * served stale. Invalidation is for hygiene: the material of a key leaves memory as soon
 * as the key is written (rotate, trim, config, restore, backup), deleted, its mount's
 * cache is reconfigured, or the node seals or stops being active (the backend's reset).
 *
 * State is per core (cs_core_state), loop thread only. Entries are also bounded in locked
 * bytes (TR_CACHE_LOCKED_MAX over every mount of the core): each plaintext takes whole
 * pages of mlock()ed memory, and the process's memlock limit must not be reached by a
 * cache (cs_secmem_alloc aborts when it cannot lock).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engines/transit_internal.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/secmem.h"
#include "lib/util.h"

/* Locked bytes the cache may hold per core (page-rounded plaintexts), and the largest
 * plaintext worth a slot (a key with many RSA-4096 versions is read from storage). */
#define TR_CACHE_LOCKED_MAX (1u << 20)
#define TR_CACHE_ENTRY_MAX  (64u << 10)
#define TR_CACHE_BUCKETS    256

struct tr_mount_cache;

struct tr_cache_ent {
	char *key;   /* full storage key: mount prefix + "policy/<name>" */
	uint8_t *ct; /* the stored (barrier-encrypted) bytes it came from; not secret */
	size_t ctlen;
	char *pt; /* the policy's JSON text, in secmem (ptcap bytes) */
	size_t ptlen, ptcap;
	struct tr_mount_cache *mc;
	struct tr_cache_ent *prev, *next; /* LRU over the core, most recent first */
	struct tr_cache_ent *hnext;       /* hash chain */
};

struct tr_mount_cache {
	char *prefix; /* the mount's storage prefix */
	int64_t size; /* cache-config size: 0 = no count limit */
	size_t n;     /* entries of this mount */
	struct tr_mount_cache *next;
};

struct tr_cache {
	struct tr_cache_ent *head, *tail;
	struct tr_cache_ent *buckets[TR_CACHE_BUCKETS];
	struct tr_mount_cache *mounts;
	size_t locked; /* page-rounded bytes of every pt */
	uint64_t hits, misses;
};

static size_t page_round(size_t n)
{
	return (n + 4095) / 4096 * 4096;
}

static unsigned hash(const char *s)
{
	unsigned h = 2166136261u; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % TR_CACHE_BUCKETS;
}

static void ent_unlink(struct tr_cache *c, struct tr_cache_ent *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void ent_push_front(struct tr_cache *c, struct tr_cache_ent *e)
{
	e->next = c->head;
	e->prev = NULL;
	if (c->head)
		c->head->prev = e;
	c->head = e;
	if (!c->tail)
		c->tail = e;
}

/* Unlink, wipe and free one entry. */
static void ent_drop(struct tr_cache *c, struct tr_cache_ent *e)
{
	struct tr_cache_ent **pp = &c->buckets[hash(e->key)];
	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
	ent_unlink(c, e);
	e->mc->n--;
	c->locked -= page_round(e->ptcap);
	cs_secmem_free(e->pt, e->ptcap);
	free(e->ct);
	free(e->key);
	free(e);
}

static void cache_release(void *state)
{
	struct tr_cache *c = state;
	while (c->head)
		ent_drop(c, c->head);
	while (c->mounts) {
		struct tr_mount_cache *m = c->mounts;
		c->mounts = m->next;
		free(m->prefix);
		free(m);
	}
	memset(c, 0, sizeof *c);
}

static const struct cs_core_state_type cache_type = {
    .name = "transit key cache", .size = sizeof(struct tr_cache), .release = cache_release};

void tr_cache_reset(struct cs_core *core)
{
	cache_release(cs_core_state(core, &cache_type));
}

static struct tr_cache *cache_of(struct cs_request *req)
{
	return cs_core_state(req->core, &cache_type);
}

/* The stored cache-config size of the request's mount (0 when never configured). */
static int stored_size(struct cs_request *req, int64_t *size)
{
	cJSON *cfg = NULL;
	int rc = cs_view_get_json(req, "config/cache", &cfg);
	*size = rc ? 0 : tr_jint(cfg, "size");
	cJSON_Delete(cfg);
	return rc == CS_ENOTFOUND ? 0 : rc;
}

/* The request mount's cache record, made (reading its configured size) on first use. */
static int mount_of(struct cs_request *req, struct tr_cache *c, struct tr_mount_cache **out)
{
	const char *prefix = cs_req_storage_prefix(req);
	for (struct tr_mount_cache *m = c->mounts; m; m = m->next)
		if (strcmp(m->prefix, prefix) == 0) {
			*out = m;
			return 0;
		}
	int64_t size;
	int rc = stored_size(req, &size);
	if (rc)
		return rc;
	struct tr_mount_cache *m = calloc(1, sizeof *m);
	if (!m || !(m->prefix = strdup(prefix))) {
		free(m);
		return CS_ENOMEM;
	}
	m->size = size;
	m->next = c->mounts;
	c->mounts = m;
	*out = m;
	return 0;
}

static struct tr_cache_ent *find(struct tr_cache *c, const char *key)
{
	for (struct tr_cache_ent *e = c->buckets[hash(key)]; e; e = e->hnext)
		if (strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

/* Drop the mount's entries (all of them when keep_n is 0) until it has at most keep_n,
 * least recently used first. */
static void trim_mount(struct tr_cache *c, struct tr_mount_cache *m, size_t keep_n)
{
	for (struct tr_cache_ent *e = c->tail; e && m->n > keep_n;) {
		struct tr_cache_ent *prev = e->prev;
		if (e->mc == m)
			ent_drop(c, e);
		e = prev;
	}
}

static void insert(struct tr_cache *c, struct tr_mount_cache *m, const char *key,
		   const struct cs_buf *ct, const struct cs_buf *pt)
{
	if (pt->len > TR_CACHE_ENTRY_MAX)
		return;
	if (m->size > 0)
		trim_mount(c, m, (size_t)m->size - 1);
	size_t need = page_round(pt->len);
	while (c->tail && c->locked + need > TR_CACHE_LOCKED_MAX)
		ent_drop(c, c->tail);
	struct tr_cache_ent *e = calloc(1, sizeof *e);
	if (!e || !(e->key = strdup(key)) || !(e->ct = malloc(ct->len ? ct->len : 1))) {
		if (e)
			free(e->key);
		free(e);
		return; /* a cache that cannot grow just misses */
	}
	memcpy(e->ct, ct->data, ct->len);
	e->ctlen = ct->len;
	e->ptcap = pt->len;
	e->pt = cs_secmem_alloc(e->ptcap);
	memcpy(e->pt, pt->data, pt->len);
	e->ptlen = pt->len;
	e->mc = m;
	m->n++;
	c->locked += need;
	unsigned h = hash(key);
	e->hnext = c->buckets[h];
	c->buckets[h] = e;
	ent_push_front(c, e);
}

/* Storage keys are at most 511 bytes (storage/txn.h); a longer one fails the read. */
#define FULL_KEY(req, key, buf) snprintf(buf, sizeof buf, "%s%s", cs_req_storage_prefix(req), key)

int tr_cache_get_json(struct cs_request *req, const char *key, bool fill, cJSON **out)
{
	*out = NULL;
	struct tr_cache *c = cache_of(req);
	struct tr_mount_cache *m = NULL;
	char fk[1024];
	FULL_KEY(req, key, fk);
	struct cs_buf ct = CS_BUF_INIT, pt = CS_BUF_INIT;
	int rc = cs_txn_get_raw(&req->txn, fk, &ct);
	struct tr_cache_ent *e = find(c, fk);
	if (!rc && e && e->ctlen == ct.len && memcmp(e->ct, ct.data, ct.len) == 0) {
		c->hits++;
		ent_unlink(c, e);
		ent_push_front(c, e);
		*out = cJSON_ParseWithLength(e->pt, e->ptlen);
		rc = *out ? 0 : CS_EIO;
		goto out;
	}
	/* Changed or gone under the entry: its material goes now. */
	if (e)
		ent_drop(c, e);
	if (rc)
		goto out;
	c->misses++;
	if (!(rc = cs_view_get(req, key, &pt)) && !(rc = mount_of(req, c, &m))) {
		*out = cJSON_ParseWithLength(pt.data, pt.len);
		if (!*out)
			rc = CS_EIO;
		else if (fill)
			insert(c, m, fk, &ct, &pt);
	}
out:
	cs_buf_free(&ct);
	cs_buf_free_secure(&pt);
	return rc;
}

void tr_cache_forget(struct cs_request *req, const char *key)
{
	struct tr_cache *c = cache_of(req);
	char fk[1024];
	FULL_KEY(req, key, fk);
	struct tr_cache_ent *e = find(c, fk);
	if (e)
		ent_drop(c, e);
}

void tr_cache_stats(struct cs_core *core, size_t *entries, size_t *locked, uint64_t *hits,
		    uint64_t *misses)
{
	struct tr_cache *c = cs_core_state(core, &cache_type);
	size_t n = 0;
	for (struct tr_cache_ent *e = c->head; e; e = e->next)
		n++;
	*entries = n;
	*locked = c->locked;
	*hits = c->hits;
	*misses = c->misses;
}

/* ------------------------------------------------------------------ cache-config */

static void answer_size(struct cs_request *req, int64_t size)
{
	cJSON *d = cJSON_CreateObject();
	cJSON_AddNumberToObject(d, "size", (double)size);
	cs_req_set_data(req, d);
}

int tr_cache_config_read(struct cs_request *req)
{
	int64_t size;
	int rc = stored_size(req, &size);
	if (!rc)
		answer_size(req, size);
	return rc;
}

int tr_cache_config_write(struct cs_request *req)
{
	int64_t size = cs_req_int(req, "size", 0);
	if (size != 0 && size < TR_CACHE_MIN_SIZE)
		return cs_req_error(req, CS_EINVAL,
				    "size must be 0 or a value greater or equal to %d",
				    TR_CACHE_MIN_SIZE);
	if (size > INT32_MAX) /* Go's int on a 32-bit build; a count, never this large */
		return cs_req_error(req, CS_EINVAL, "size is too large");
	cJSON *cfg = cJSON_CreateObject();
	cJSON_AddNumberToObject(cfg, "size", (double)size);
	int rc = cs_view_put_json(req, "config/cache", cfg);
	cJSON_Delete(cfg);
	if (rc)
		return rc;
	/* The new size applies at once (Vault re-creates its cache); the mount's entries go.
	 * Were this write not to commit, the node would stop being active, and the reset
	 * would drop the record again. */
	struct tr_cache *c = cache_of(req);
	struct tr_mount_cache *m = NULL;
	if (!(rc = mount_of(req, c, &m))) {
		trim_mount(c, m, 0);
		m->size = size;
	}
	if (!rc)
		answer_size(req, size);
	return rc;
}
