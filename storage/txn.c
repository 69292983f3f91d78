/*
 * Transactions, the pending overlay and the group committer (see txn.h).
 *
 * Happy path: a handler reads through cs_txn_get* (own write-set → overlay → LMDB) and
 * writes into its write-set. cs_txn_commit encodes the write-set into a raft entry,
 * moves its keys and values into the overlay under a fresh sequence number (so the next
 * request sees them at once) and either proposes the entry right away (fewer than
 * CS_MAX_INFLIGHT in flight) or appends it to the queued entry. When raft applied an
 * entry the proposer calls cs_storage_batch_done(token, 0): applied_seq moves to the
 * entry's last sequence number, overlay entries at or below it are dropped (LMDB now
 * holds the same bytes), the entry's commit callbacks and the satisfied read waiters
 * run, and the queue is flushed as one entry.
 *
 * Failure modes:
 * - Refusal of the write-set cs_txn_commit proposes itself: the commit returns
 *   CS_ENOTACTIVE before anything reached the overlay, so nothing else is affected.
 * - Refusal while flushing the queue, batch_done with an error, or cs_storage_fail_all:
 *   the overlay cannot be unwound per write-set (a key's overlay entry keeps only its
 *   newest value), and later write-sets may have read earlier ones, so everything
 *   pending fails together and the overlay is dropped. Entries already handed to raft
 *   stay counted in `inflight` and on the flying list, marked failed, until their
 *   batch_done arrives; that call then only frees them.
 * - Re-entrancy: commit callbacks may commit new transactions or call fail_all. Every
 *   list is detached before its callbacks run, and callbacks run last in each function.
 */
#include "storage/txn.h"

#include <stdlib.h>
#include <string.h>

#include "lib/err.h"

#define MAX_KEY_LEN 511 /* LMDB's compiled-in key limit (mdb_env_get_maxkeysize) */

/* ---------------------------------------------------------------- small helpers */

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		abort();
	return p;
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		abort();
	return p;
}

static char *xmemdup(const void *p, size_t n, bool nul)
{
	char *d = xmalloc(n + (nul ? 1 : 0));
	if (n)
		memcpy(d, p, n);
	if (nul)
		d[n] = '\0';
	return d;
}

/* LMDB's default key order: bytewise, a prefix sorts first. */
static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t m = alen < blen ? alen : blen;
	int c = m ? memcmp(a, b, m) : 0;
	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen;
}

void cs_strv_push(struct cs_strv *sv, const char *s, size_t len)
{
	if (sv->n == sv->cap) {
		sv->cap = sv->cap ? sv->cap * 2 : 16;
		sv->v = xrealloc(sv->v, sv->cap * sizeof *sv->v);
	}
	sv->v[sv->n++] = xmemdup(s, len, true);
}

void cs_strv_free(struct cs_strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = sv->cap = 0;
}

/* ---------------------------------------------------------------- the overlay */

/*
 * A hash map from storage key to the newest pending value (or tombstone), plus a list
 * in sequence order: write-sets are inserted in commit order, so the list head always
 * holds the oldest sequence and dropping applied entries pops from the head.
 */
struct cs_ov_entry {
	struct cs_ov_entry *hnext;       /* bucket chain */
	struct cs_ov_entry *prev, *next; /* sequence order */
	uint64_t hash;
	uint64_t seq;
	char *key; /* NUL-terminated */
	size_t klen;
	uint8_t *val; /* NULL: tombstone */
	size_t vlen;
};

struct cs_overlay {
	struct cs_ov_entry **buckets;
	size_t nbuckets; /* power of two */
	size_t count;
	struct cs_ov_entry *head, *tail;
};

static uint64_t key_hash(const char *k, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
	for (size_t i = 0; i < n; i++) {
		h ^= (uint8_t)k[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* Starts small: the overlay holds only what is in flight or queued, usually a few
 * dozen keys, and grows by doubling under load. */
static struct cs_overlay *overlay_new(void)
{
	struct cs_overlay *o = xmalloc(sizeof *o);
	memset(o, 0, sizeof *o);
	o->nbuckets = 64;
	o->buckets = calloc(o->nbuckets, sizeof *o->buckets);
	if (!o->buckets)
		abort();
	return o;
}

static struct cs_ov_entry *overlay_find(struct cs_overlay *o, const char *key, size_t klen)
{
	uint64_t h = key_hash(key, klen);
	for (struct cs_ov_entry *e = o->buckets[h & (o->nbuckets - 1)]; e; e = e->hnext)
		if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
			return e;
	return NULL;
}

static void overlay_grow(struct cs_overlay *o)
{
	size_t n = o->nbuckets * 2;
	struct cs_ov_entry **b = calloc(n, sizeof *b);
	if (!b)
		abort();
	for (size_t i = 0; i < o->nbuckets; i++) {
		struct cs_ov_entry *e = o->buckets[i], *next;
		for (; e; e = next) {
			next = e->hnext;
			e->hnext = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	}
	free(o->buckets);
	o->buckets = b;
	o->nbuckets = n;
}

static void seq_unlink(struct cs_overlay *o, struct cs_ov_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		o->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		o->tail = e->prev;
	e->prev = e->next = NULL;
}

static void seq_append(struct cs_overlay *o, struct cs_ov_entry *e)
{
	e->prev = o->tail;
	e->next = NULL;
	if (o->tail)
		o->tail->next = e;
	else
		o->head = e;
	o->tail = e;
}

/* Takes ownership of key and val (val NULL = tombstone). */
static void overlay_set(struct cs_overlay *o, char *key, size_t klen, uint8_t *val, size_t vlen,
			uint64_t seq)
{
	struct cs_ov_entry *e = overlay_find(o, key, klen);
	if (e) {
		/* A newer write-set replaces the value and moves the entry to the tail, so
		 * that it is dropped only when that newer write-set applied. */
		free(key);
		free(e->val);
		seq_unlink(o, e);
	} else {
		if (o->count >= o->nbuckets)
			overlay_grow(o);
		e = xmalloc(sizeof *e);
		e->hash = key_hash(key, klen);
		e->key = key;
		e->klen = klen;
		size_t b = e->hash & (o->nbuckets - 1);
		e->hnext = o->buckets[b];
		o->buckets[b] = e;
		o->count++;
	}
	e->val = val;
	e->vlen = vlen;
	e->seq = seq;
	seq_append(o, e);
}

static void overlay_remove(struct cs_overlay *o, struct cs_ov_entry *e)
{
	struct cs_ov_entry **pp = &o->buckets[e->hash & (o->nbuckets - 1)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	seq_unlink(o, e);
	o->count--;
	free(e->key);
	free(e->val);
	free(e);
}

/* Drop every entry whose newest write applied: LMDB holds the same bytes now. */
static void overlay_drop_upto(struct cs_overlay *o, uint64_t seq)
{
	while (o->head && o->head->seq <= seq)
		overlay_remove(o, o->head);
}

static void overlay_clear(struct cs_overlay *o)
{
	while (o->head)
		overlay_remove(o, o->head);
}

static void overlay_free(struct cs_overlay *o)
{
	if (!o)
		return;
	overlay_clear(o);
	free(o->buckets);
	free(o);
}

/* ---------------------------------------------------------------- committer state */

/* One write-set or read-only txn waiting for its callback. */
struct cs_commit_waiter {
	struct cs_commit_waiter *next;
	cs_commit_cb cb;
	void *data;
	uint64_t seq; /* write-set: its seq; reader: the seq it must see applied */
};

/* One raft entry: queued (being filled), then flying (proposed). */
struct cs_batch {
	struct cs_batch *next;
	struct cs_buf entry; /* encoded write-sets; freed once proposed */
	uint32_t n_ws;
	uint64_t last_seq;
	struct cs_commit_waiter *waiters, **wtail;
	bool failed;    /* fail_all ran while it was flying: batch_done only frees it */
	bool raw;       /* a pre-built entry (cs_storage_propose_raw): never joined */
	bool exclusive; /* a RESTORE_COMMIT: nothing after it flies before it is done */
};

static struct cs_commit_waiter *waiter_new(struct cs_storage *st, cs_commit_cb cb, void *data,
					   uint64_t seq);

static struct cs_batch *batch_new(void)
{
	struct cs_batch *b = xmalloc(sizeof *b);
	memset(b, 0, sizeof *b);
	b->wtail = &b->waiters;
	cs_batch_init(&b->entry);
	return b;
}

static void batch_add_waiter(struct cs_batch *b, struct cs_commit_waiter *w)
{
	w->next = NULL;
	*b->wtail = w;
	b->wtail = &w->next;
}

/* Move b's waiters to the end of the list *tail points at (for a later fan-out). */
static void batch_take_waiters(struct cs_batch *b, struct cs_commit_waiter ***tail)
{
	if (!b->waiters)
		return;
	**tail = b->waiters;
	*tail = b->wtail;
	b->waiters = NULL;
	b->wtail = &b->waiters;
}

/* Each node is unlinked and freed before its callback runs: the callback may commit,
 * fail everything or run nested batch_done calls without seeing it again. */
static void run_waiters(struct cs_storage *st, struct cs_commit_waiter *w, int status)
{
	while (w) {
		struct cs_commit_waiter *next = w->next;
		cs_commit_cb cb = w->cb;
		void *data = w->data;
		free(w);
		st->n_waiting--;
		if (cb)
			cb(data, status);
		w = next;
	}
}

static void flying_remove(struct cs_storage *st, struct cs_batch *b)
{
	struct cs_batch **pp = &st->flying, *prev = NULL;
	while (*pp && *pp != b) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (!*pp)
		abort(); /* a token we never handed out, or one already done */
	*pp = b->next;
	if (st->flying_tail == b)
		st->flying_tail = prev;
	b->next = NULL;
}

static void flying_append(struct cs_storage *st, struct cs_batch *b)
{
	if (b->exclusive)
		st->exclusive_flying = true;
	b->next = NULL;
	if (st->flying_tail)
		st->flying_tail->next = b;
	else
		st->flying = b;
	st->flying_tail = b;
	st->inflight++;
}

/*
 * Fail everything pending, after `first` (the waiters of an entry that just failed and
 * is already off the flying list). Callbacks run last, after every list is consistent,
 * so a callback that commits again sees an empty queue and an empty overlay.
 */
static void fail_all(struct cs_storage *st, int status, struct cs_commit_waiter *first)
{
	struct cs_commit_waiter *fail = first, **tail = &fail;

	while (*tail)
		tail = &(*tail)->next;

	st->epoch++;
	st->fail_status = status;
	if (st->overlay)
		overlay_clear(st->overlay);
	/* Flying entries stay allocated (raft still holds their token) but forget their
	 * waiters; queued ones never reached raft and go away now. */
	for (struct cs_batch *b = st->flying; b; b = b->next) {
		batch_take_waiters(b, &tail);
		b->failed = true;
	}
	struct cs_batch *q = st->queued;
	st->queued = st->queued_tail = NULL;
	while (q) {
		struct cs_batch *next = q->next;
		batch_take_waiters(q, &tail);
		cs_buf_free(&q->entry);
		free(q);
		q = next;
	}
	*tail = st->read_waiters;
	st->read_waiters = NULL;
	run_waiters(st, fail, status);
}

void cs_storage_fail_all(struct cs_storage *st, int status)
{
	fail_all(st, status, NULL);
}

/* Propose queued entries while there is room in flight. Called from batch_done only:
 * a refusal then fails waiters from a callback context, never inside cs_txn_commit. */
static void flush(struct cs_storage *st)
{
	while (st->queued && st->inflight < CS_MAX_INFLIGHT && !st->exclusive_flying) {
		struct cs_batch *b = st->queued;
		if (!b->raw)
			cs_batch_finish(&b->entry, b->n_ws);
		int rv = st->propose ? st->propose(st->propose_ctx, b->entry.data, b->entry.len, b)
				     : CS_ENOTACTIVE;
		if (rv != 0) {
			/* b is still queued: fail_all frees it with the rest. */
			fail_all(st, CS_ENOTACTIVE, NULL);
			return;
		}
		st->queued = b->next;
		if (!st->queued)
			st->queued_tail = NULL;
		cs_buf_free(&b->entry);
		st->entries_proposed++;
		flying_append(st, b);
	}
}

/* Detach the read waiters that applied_seq now satisfies. */
static struct cs_commit_waiter *take_ready_readers(struct cs_storage *st)
{
	struct cs_commit_waiter *w = st->read_waiters, *ready = NULL, **rtail = &ready;
	struct cs_commit_waiter *keep = NULL, **ktail = &keep;
	while (w) {
		struct cs_commit_waiter *next = w->next;
		w->next = NULL;
		if (w->seq <= st->applied_seq) {
			*rtail = w;
			rtail = &w->next;
		} else {
			*ktail = w;
			ktail = &w->next;
		}
		w = next;
	}
	st->read_waiters = keep;
	return ready;
}

void cs_storage_batch_done(struct cs_storage *st, void *token, int status)
{
	struct cs_batch *b = token;

	flying_remove(st, b);
	st->inflight--;
	if (b->exclusive)
		st->exclusive_flying = false;
	if (b->failed) {
		/* Its callbacks already ran with the fail_all status; the entry may have
		 * applied anyway, but nothing can depend on that any more. */
		free(b);
		flush(st);
		return;
	}
	if (status != 0) {
		/* Outcome unknown: b's waiters fail together with everything after it. */
		struct cs_commit_waiter *mine = b->waiters;
		free(b);
		fail_all(st, status, mine);
		return;
	}
	/* Entries apply in proposal order, so everything up to b's last seq applied. */
	if (b->last_seq > st->applied_seq)
		st->applied_seq = b->last_seq;
	overlay_drop_upto(st->overlay, st->applied_seq);
	struct cs_commit_waiter *done = b->waiters;
	free(b);
	struct cs_commit_waiter *readers = take_ready_readers(st);
	run_waiters(st, done, 0);
	run_waiters(st, readers, 0);
	/* After the callbacks: write-sets they committed join the queued entry first. */
	flush(st);
}

/*
 * The store applied a RESTORE_COMMIT (or installed a raft snapshot): inside the FSM
 * apply, after the LMDB commit. On the leader that proposed it, the COMMIT is the only
 * entry flying (it is exclusive and everything before it already reported back), and
 * every write-set queued behind it, like every overlay entry and every parked reader,
 * was computed from the state that was just replaced: they fail with CS_EBUSY and are
 * never proposed. The COMMIT itself is hidden from fail_all so that its callback still
 * learns that it applied. On other nodes there is nothing pending and this only drops
 * an empty overlay.
 */
static void storage_restored(void *ctx)
{
	struct cs_storage *st = ctx;
	struct cs_batch *flying = st->flying, *tail = st->flying_tail;
	st->flying = st->flying_tail = NULL;
	fail_all(st, CS_EBUSY, NULL);
	st->flying = flying;
	st->flying_tail = tail;
	if (st->on_restore)
		st->on_restore(st->restore_ctx);
}

int cs_storage_propose_raw(struct cs_storage *st, const void *entry, size_t len, cs_commit_cb cb,
			   void *data)
{
	if (st->closed)
		return CS_ESHUTDOWN;
	struct cs_batch *b = xmalloc(sizeof *b);
	memset(b, 0, sizeof *b);
	b->wtail = &b->waiters;
	b->raw = true;
	b->exclusive = cs_entry_type(entry, len) == CS_ENTRY_RESTORE_COMMIT;
	if (!st->queued && st->inflight < CS_MAX_INFLIGHT && !st->exclusive_flying) {
		/* Nothing ahead of it: out now, as cs_txn_commit does for a lone write-set. */
		int rv = st->propose ? st->propose(st->propose_ctx, entry, len, b) : CS_ENOTACTIVE;
		if (rv != 0) {
			free(b);
			return CS_ENOTACTIVE;
		}
		st->entries_proposed++;
		flying_append(st, b);
	} else {
		/* Its own queued entry, after everything committed so far. */
		cs_buf_append(&b->entry, entry, len);
		if (st->queued_tail)
			st->queued_tail->next = b;
		else
			st->queued = b;
		st->queued_tail = b;
	}
	b->last_seq = st->next_seq++;
	batch_add_waiter(b, waiter_new(st, cb, data, b->last_seq));
	return 0;
}

/* ---------------------------------------------------------------- storage lifecycle */

int cs_storage_open(struct cs_storage *st, const char *dir, size_t map_size)
{
	memset(st, 0, sizeof *st);
	int rv = cs_store_open(&st->store, dir, map_size);
	if (rv != 0)
		return rv;
	st->overlay = overlay_new();
	st->next_seq = 1;
	st->store.restored = storage_restored;
	st->store.restored_ctx = st;
	return 0;
}

void cs_storage_close(struct cs_storage *st)
{
	if (st->closed)
		return;
	/* Commits from the callbacks below must not reach a proposer any more. */
	st->closed = true;
	st->propose = NULL;
	fail_all(st, CS_ESHUTDOWN, NULL);
	/* Failed entries still flying would have been freed by their batch_done. */
	while (st->flying) {
		struct cs_batch *b = st->flying;
		st->flying = b->next;
		free(b);
	}
	st->flying_tail = NULL;
	st->inflight = 0;
	overlay_free(st->overlay);
	st->overlay = NULL;
	cs_store_close(&st->store);
}

void cs_storage_set_proposer(struct cs_storage *st, cs_propose_fn fn, void *ctx)
{
	st->propose = fn;
	st->propose_ctx = ctx;
}

size_t cs_storage_pending(const struct cs_storage *st)
{
	return st->n_waiting;
}

/* ---------------------------------------------------------------- transactions */

/* LMDB's rule (a failed txn is only good for mdb_txn_abort): after a failure only abort is
 * meaningful, so the first error is returned by every later call, including commit. */
static int poison(struct cs_txn *t, int err)
{
	if (err != 0 && err != CS_ENOTFOUND && t->err == 0)
		t->err = err;
	return err;
}

static void ws_release(struct cs_writeset *ws)
{
	for (size_t i = 0; i < ws->n; i++) {
		free(ws->ops[i].key);
		free(ws->ops[i].val);
	}
	free(ws->ops);
	memset(ws, 0, sizeof *ws);
}

void cs_txn_begin(struct cs_txn *t, struct cs_storage *st, const struct cs_keyring *kr)
{
	memset(t, 0, sizeof *t);
	t->st = st;
	t->kr = kr;
	t->epoch = st->epoch;
}

void cs_txn_abort(struct cs_txn *t)
{
	ws_release(&t->ws);
}

void cs_txn_drop_writes(struct cs_txn *t)
{
	ws_release(&t->ws); /* read_seq and epoch stay */
}

static int check_key(struct cs_txn *t, const char *key, size_t *klen)
{
	if (t->err)
		return t->err;
	if (!key)
		return poison(t, CS_EINVAL);
	*klen = strlen(key);
	if (*klen == 0 || *klen > MAX_KEY_LEN)
		return poison(t, CS_EINVAL);
	return 0;
}

/* The txn's own newest write to key, or NULL. Linear: write-sets are small, and a mount
 * deletion that writes thousands of keys does not read them back. */
static const struct cs_wsop *ws_find(const struct cs_txn *t, const char *key, size_t klen)
{
	for (size_t i = t->ws.n; i-- > 0;) {
		const struct cs_wsop *op = &t->ws.ops[i];
		if (op->klen == klen && memcmp(op->key, key, klen) == 0)
			return op;
	}
	return NULL;
}

static void note_read(struct cs_txn *t, uint64_t seq)
{
	if (seq > t->read_seq)
		t->read_seq = seq;
}

int cs_txn_get_raw(struct cs_txn *t, const char *key, struct cs_buf *out)
{
	size_t klen;
	int rv = check_key(t, key, &klen);
	if (rv != 0)
		return rv;
	const struct cs_wsop *op = ws_find(t, key, klen);
	if (op) {
		if (op->type == CS_WS_DELETE)
			return CS_ENOTFOUND;
		cs_buf_append(out, op->val, op->vlen);
		return 0;
	}
	struct cs_ov_entry *e = overlay_find(t->st->overlay, key, klen);
	if (e) {
		/* A pending write: the caller must not answer before it applied. */
		note_read(t, e->seq);
		if (!e->val)
			return CS_ENOTFOUND;
		cs_buf_append(out, e->val, e->vlen);
		return 0;
	}
	/* No pending write: LMDB is the committed truth. */
	return poison(t, cs_store_get(&t->st->store, key, klen, out));
}

static int ws_push(struct cs_txn *t, uint8_t type, const char *key, size_t klen, uint8_t *val,
		   size_t vlen)
{
	struct cs_writeset *ws = &t->ws;
	if (ws->n == ws->cap) {
		ws->cap = ws->cap ? ws->cap * 2 : 8;
		ws->ops = xrealloc(ws->ops, ws->cap * sizeof *ws->ops);
	}
	struct cs_wsop *op = &ws->ops[ws->n++];
	op->type = type;
	op->key = xmemdup(key, klen, true);
	op->klen = klen;
	op->val = val;
	op->vlen = vlen;
	return 0;
}

int cs_txn_put_raw(struct cs_txn *t, const char *key, const void *val, size_t n)
{
	size_t klen;
	int rv = check_key(t, key, &klen);
	if (rv != 0)
		return rv;
	if (n > UINT32_MAX)
		return poison(t, CS_ETOOBIG);
	return ws_push(t, CS_WS_PUT, key, klen, (uint8_t *)xmemdup(val, n, false), n);
}

int cs_txn_delete(struct cs_txn *t, const char *key)
{
	size_t klen;
	int rv = check_key(t, key, &klen);
	if (rv != 0)
		return rv;
	return ws_push(t, CS_WS_DELETE, key, klen, NULL, 0);
}

int cs_txn_get(struct cs_txn *t, const char *key, struct cs_buf *out)
{
	if (t->err)
		return t->err;
	if (!t->kr)
		return poison(t, CS_ESEALED);
	struct cs_buf ct = CS_BUF_INIT;
	int rv = cs_txn_get_raw(t, key, &ct);
	if (rv == 0)
		rv = poison(t, cs_barrier_decrypt(t->kr, key, ct.data, ct.len, out));
	cs_buf_free(&ct);
	return rv;
}

int cs_txn_put(struct cs_txn *t, const char *key, const void *val, size_t n)
{
	size_t klen;
	int rv = check_key(t, key, &klen);
	if (rv != 0)
		return rv;
	if (!t->kr)
		return poison(t, CS_ESEALED);
	struct cs_buf ct = CS_BUF_INIT;
	rv = cs_barrier_encrypt(t->kr, key, val, n, &ct);
	if (rv != 0) {
		cs_buf_free(&ct);
		return poison(t, rv);
	}
	size_t len;
	uint8_t *p = (uint8_t *)cs_buf_steal(&ct, &len);
	return ws_push(t, CS_WS_PUT, key, klen, p, len);
}

/* ---------------------------------------------------------------- list and scan */

/* A pending key under the prefix: from the overlay (prio 0) or the write-set (prio i+1). */
struct pend {
	const char *key;
	size_t klen;
	bool put;
	size_t prio;
};

static int pend_cmp(const void *a, const void *b)
{
	const struct pend *x = a, *y = b;
	int c = key_cmp(x->key, x->klen, y->key, y->klen);
	if (c != 0)
		return c;
	return x->prio < y->prio ? -1 : x->prio > y->prio;
}

struct merge {
	struct cs_txn *t;
	const char *prefix;
	size_t plen;
	bool children; /* list: reduce to direct children; scan: full keys */
	struct pend *p;
	size_t n, i;
	struct cs_strv *out;
	char *last; /* last name emitted (children are consecutive duplicates) */
	size_t lastlen;
	const char *after; /* scan_page: only keys sorting after this one (NULL: all) */
	size_t afterlen;
	size_t limit; /* scan_page: stop after this many keys (0: no limit) */
	size_t first; /* out->n at the start */
};

/* What merge_lmdb_key returns to stop the LMDB scan once `limit` keys are out. */
#define MERGE_FULL (-1)

static void emit(struct merge *m, const char *key, size_t klen)
{
	if (m->after && key_cmp(key, klen, m->after, m->afterlen) <= 0)
		return;
	if (m->limit && m->out->n - m->first >= m->limit)
		return;
	const char *name = key;
	size_t len = klen;
	if (m->children) {
		/* Vault's LIST: "a/b/c" under "a/" shows as the folder "b/". Keys arrive
		 * sorted, so every key of one folder is adjacent and one comparison with
		 * the previous name removes the duplicates. */
		name += m->plen;
		len -= m->plen;
		const char *slash = memchr(name, '/', len);
		if (slash)
			len = (size_t)(slash - name) + 1;
		if (len == 0)
			return; /* the key equals the prefix itself */
		if (m->last && m->lastlen == len && memcmp(m->last, name, len) == 0)
			return;
	}
	cs_strv_push(m->out, name, len);
	m->last = m->out->v[m->out->n - 1];
	m->lastlen = len;
}

/* Emit pending puts that sort before key (all remaining ones if key is NULL). */
static void emit_pending_before(struct merge *m, const char *key, size_t klen)
{
	while (m->i < m->n && (!key || key_cmp(m->p[m->i].key, m->p[m->i].klen, key, klen) < 0)) {
		if (m->p[m->i].put)
			emit(m, m->p[m->i].key, m->p[m->i].klen);
		m->i++;
	}
}

static int merge_lmdb_key(void *ctx, const char *key, size_t klen, const void *val, size_t vlen)
{
	struct merge *m = ctx;
	emit_pending_before(m, key, klen);
	if (m->i < m->n && key_cmp(m->p[m->i].key, m->p[m->i].klen, key, klen) == 0) {
		/* The pending write decides: a put shows, a tombstone hides. */
		if (m->p[m->i].put)
			emit(m, key, klen);
		m->i++;
		return 0;
	}
	emit(m, key, klen);
	return m->limit && m->out->n - m->first >= m->limit ? MERGE_FULL : 0;
}

static bool has_prefix(const char *key, size_t klen, const char *prefix, size_t plen)
{
	return klen >= plen && memcmp(key, prefix, plen) == 0;
}

/* Merged view (write-set over overlay over LMDB) of the keys under prefix. */
static int merged_keys_page(struct cs_txn *t, const char *prefix, bool children, const char *after,
			    size_t limit, struct cs_strv *out)
{
	if (t->err)
		return t->err;
	if (!prefix)
		return poison(t, CS_EINVAL);
	size_t plen = strlen(prefix);
	if (plen > MAX_KEY_LEN)
		return poison(t, CS_EINVAL);

	struct merge m = {.t = t,
			  .prefix = prefix,
			  .plen = plen,
			  .children = children,
			  .out = out,
			  .after = after && *after ? after : NULL,
			  .afterlen = after ? strlen(after) : 0,
			  .limit = limit,
			  .first = out->n};
	size_t cap = t->st->overlay->count + t->ws.n;
	m.p = xmalloc((cap ? cap : 1) * sizeof *m.p);
	/* The pending keys under the prefix, from the overlay and then from the txn's own
	 * write-set (higher priority, later ops higher still). */
	for (struct cs_ov_entry *e = t->st->overlay->head; e; e = e->next) {
		if (!has_prefix(e->key, e->klen, prefix, plen))
			continue;
		/* Any pending key under the prefix may change the listing. */
		note_read(t, e->seq);
		m.p[m.n++] = (struct pend){e->key, e->klen, e->val != NULL, 0};
	}
	for (size_t i = 0; i < t->ws.n; i++) {
		const struct cs_wsop *op = &t->ws.ops[i];
		if (has_prefix(op->key, op->klen, prefix, plen))
			m.p[m.n++] = (struct pend){op->key, op->klen, op->type == CS_WS_PUT, i + 1};
	}
	qsort(m.p, m.n, sizeof *m.p, pend_cmp);
	/* Keep only the highest priority per key (the txn's newest write wins). */
	size_t w = 0;
	for (size_t i = 0; i < m.n; i++) {
		if (i + 1 < m.n &&
		    key_cmp(m.p[i].key, m.p[i].klen, m.p[i + 1].key, m.p[i + 1].klen) == 0)
			continue;
		m.p[w++] = m.p[i];
	}
	m.n = w;

	/* One ordered pass over LMDB, merging the sorted pending keys in as we go: both
	 * streams are in key order, so the output is sorted without a final sort. */
	size_t first = out->n;
	int rv = cs_store_scan_from(&t->st->store, prefix, plen, m.after, m.afterlen,
				    merge_lmdb_key, &m);
	if (rv == MERGE_FULL)
		rv = 0;
	if (rv == 0)
		emit_pending_before(&m, NULL, 0);
	free(m.p);
	if (rv != 0) {
		while (out->n > first)
			free(out->v[--out->n]);
		return poison(t, rv);
	}
	return 0;
}

static int merged_keys(struct cs_txn *t, const char *prefix, bool children, struct cs_strv *out)
{
	return merged_keys_page(t, prefix, children, NULL, 0, out);
}

int cs_txn_scan_page(struct cs_txn *t, const char *prefix, const char *after, size_t limit,
		     struct cs_strv *out)
{
	return merged_keys_page(t, prefix, false, after, limit, out);
}

int cs_txn_list(struct cs_txn *t, const char *prefix, struct cs_strv *out)
{
	return merged_keys(t, prefix, true, out);
}

int cs_txn_scan(struct cs_txn *t, const char *prefix, struct cs_strv *out)
{
	return merged_keys(t, prefix, false, out);
}

/* ---------------------------------------------------------------- commit */

/* Move the write-set's keys and values into the overlay under seq. */
static void ws_to_overlay(struct cs_storage *st, struct cs_writeset *ws, uint64_t seq)
{
	for (size_t i = 0; i < ws->n; i++) {
		struct cs_wsop *op = &ws->ops[i];
		uint8_t *val = op->val;
		if (op->type == CS_WS_PUT && !val)
			val = (uint8_t *)xmemdup("", 0,
						 false); /* an empty value is not a tombstone */
		overlay_set(st->overlay, op->key, op->klen, op->type == CS_WS_PUT ? val : NULL,
			    op->vlen, seq);
		op->key = NULL;
		op->val = NULL;
	}
	ws_release(ws);
}

static struct cs_commit_waiter *waiter_new(struct cs_storage *st, cs_commit_cb cb, void *data,
					   uint64_t seq)
{
	struct cs_commit_waiter *w = xmalloc(sizeof *w);
	w->next = NULL;
	w->cb = cb;
	w->data = data;
	w->seq = seq;
	st->n_waiting++;
	return w;
}

int cs_txn_commit(struct cs_txn *t, cs_commit_cb cb, void *data, bool *pending)
{
	struct cs_storage *st = t->st;
	int rv = t->err;
	*pending = false;
	if (rv == 0 && st->closed)
		rv = CS_ESHUTDOWN;
	/* The overlay this txn read was dropped: what it read may never apply. */
	if (rv == 0 && t->read_seq > 0 && t->epoch != st->epoch)
		rv = st->fail_status ? st->fail_status : CS_ELEADERSHIP;
	if (rv != 0 || t->ws.n == 0) {
		if (rv == 0 && t->read_seq > st->applied_seq) {
			struct cs_commit_waiter *w = waiter_new(st, cb, data, t->read_seq);
			w->next = st->read_waiters;
			st->read_waiters = w;
			*pending = true;
		}
		ws_release(&t->ws);
		t->err = CS_EINVAL; /* released: further use is a bug */
		return rv;
	}

	/* The count record rides in the write-set whose ciphertexts it covers. */
	if (st->commit_hook && t->kr && (rv = st->commit_hook(t)) != 0) {
		ws_release(&t->ws);
		t->err = CS_EINVAL;
		return rv;
	}
	/* The seq is consumed only once the write-set is accepted (proposed or queued). */
	uint64_t seq = st->next_seq;
	size_t enclen = cs_batch_writeset_len(&t->ws);
	struct cs_batch *b;
	if (!st->queued && st->inflight < CS_MAX_INFLIGHT && !st->exclusive_flying) {
		/* Room in flight: this write-set goes out alone, now. Propose before touching
		 * the overlay so that a refusal leaves no trace. */
		b = batch_new();
		cs_batch_add(&b->entry, &t->ws);
		cs_batch_finish(&b->entry, 1);
		rv = st->propose ? st->propose(st->propose_ctx, b->entry.data, b->entry.len, b)
				 : CS_ENOTACTIVE;
		cs_buf_free(&b->entry);
		if (rv != 0) {
			free(b);
			ws_release(&t->ws);
			t->err = CS_EINVAL;
			return CS_ENOTACTIVE;
		}
		b->n_ws = 1;
		st->entries_proposed++;
		flying_append(st, b);
	} else {
		/* Join the newest queued entry unless that would pass the size cap. */
		b = st->queued_tail;
		if (!b || b->raw || b->entry.len + enclen > CS_MAX_ENTRY_BYTES) {
			b = batch_new();
			if (st->queued_tail)
				st->queued_tail->next = b;
			else
				st->queued = b;
			st->queued_tail = b;
		}
		cs_batch_add(&b->entry, &t->ws);
		b->n_ws++;
	}
	/* Visible to the next request from here on, and waiting for its entry. */
	st->next_seq++;
	b->last_seq = seq;
	batch_add_waiter(b, waiter_new(st, cb, data, seq));
	ws_to_overlay(st, &t->ws, seq);
	st->writesets_committed++;
	t->err = CS_EINVAL;
	*pending = true;
	return 0;
}
