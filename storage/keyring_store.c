/*
 * The barrier's keyring as stored records, read and written through a transaction:
 * the sealed keyring record and the per-term encryption counts (contract in
 * keyring_store.h). Separate from barrier.c so that the barrier (pure crypto and the
 * in-memory keyring) does not depend on the transaction layer built on top of it.
 */
#include "storage/keyring_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"

int cs_keyring_store(struct cs_txn *t, const struct cs_keyring *kr)
{
	struct cs_buf ct = CS_BUF_INIT;
	int rc = cs_keyring_seal(kr, &ct);
	if (rc == 0)
		rc = cs_txn_put_raw(t, CS_KEYRING_PATH, ct.data, ct.len);
	cs_buf_free(&ct);
	return rc;
}

int cs_keyring_load(struct cs_txn *t, const struct cs_keyring *live, struct cs_keyring **out)
{
	struct cs_buf ct = CS_BUF_INIT;
	int rc = cs_txn_get_raw(t, CS_KEYRING_PATH, &ct);
	if (rc == 0)
		rc = cs_keyring_open(live->root_key, ct.data, ct.len, out);
	cs_buf_free(&ct);
	return rc;
}

static void count_key(uint32_t term, char *key, size_t keylen)
{
	snprintf(key, keylen, CS_KEYRING_COUNT_PREFIX "%lu", (unsigned long)term);
}

/* The newest count record of `term` (pending or applied; 0 when there is none), read in
 * a transaction of its own so that a damaged record never poisons the caller's. A record
 * that does not parse is CS_EIO: guessing low would under-count. */
static int read_count(struct cs_storage *st, const struct cs_keyring *kr, uint32_t term,
		      uint64_t *v)
{
	char key[64];
	count_key(term, key, sizeof key);
	struct cs_txn r;
	struct cs_buf b = CS_BUF_INIT;
	*v = 0;
	cs_txn_begin(&r, st, kr);
	int rc = cs_txn_get(&r, key, &b);
	cs_txn_abort(&r);
	if (rc == CS_ENOTFOUND) {
		rc = 0;
	} else if (rc == 0) {
		char *end = NULL;
		unsigned long long n = b.len ? strtoull(b.data, &end, 10) : 0;
		if (!end || end != b.data + b.len || b.data[0] < '0' || b.data[0] > '9')
			rc = CS_EIO;
		else
			*v = n;
	}
	cs_buf_free(&b);
	return rc;
}

int cs_keyring_rotate_txn(struct cs_txn *t, const struct cs_keyring *live)
{
	struct cs_keyring *kr = NULL;
	int rc = cs_keyring_load(t, live, &kr);
	/* Each term's final count: the record, and for the live term what this process
	 * counted on top (not yet reserved ones included). */
	for (size_t i = 0; rc == 0 && i < kr->n_keys; i++) {
		struct cs_keyring_key *k = &kr->keys[i];
		uint64_t n = 0;
		/* An unreadable count record is informational here: keep what is known. */
		if (read_count(t->st, live, k->term, &n) != 0)
			n = 0;
		if (n > k->encryptions)
			k->encryptions = n;
		if (k->term == live->active_term && live->count && live->count->term == k->term &&
		    cs_keyring_encryptions(live) > k->encryptions)
			k->encryptions = cs_keyring_encryptions(live);
	}
	if (rc == 0) {
		cs_keyring_count_reset(kr);
		cs_keyring_rotate(kr);
		rc = cs_keyring_store(t, kr);
	}
	cs_keyring_free(kr);
	return rc;
}

/* ---- encryption accounting ---- */

static bool count_cached(const struct cs_keyring_count *c, const struct cs_storage *st)
{
	/* The overlay was not dropped since, and our own record was not refused. */
	return c->cached && c->epoch == st->epoch && (c->seq == 0 || st->next_seq > c->seq);
}

/* Read the newest count record and never count below it. */
static int count_refresh(const struct cs_keyring *kr, struct cs_storage *st)
{
	struct cs_keyring_count *c = kr->count;
	uint64_t v = 0;
	int rc = read_count(st, kr, kr->active_term, &v);
	if (rc != 0)
		return rc;
	if (v > c->base)
		c->base = v;
	c->reserved = v;
	c->epoch = st->epoch;
	c->seq = 0;
	c->cached = true;
	return 0;
}

uint64_t cs_keyring_refresh(const struct cs_keyring *kr, struct cs_storage *st)
{
	if (kr->count && kr->count->term == kr->active_term && !count_cached(kr->count, st))
		count_refresh(kr, st);
	return cs_keyring_encryptions(kr);
}

int cs_keyring_account(struct cs_txn *t)
{
	const struct cs_keyring *kr = t->kr;
	struct cs_keyring_count *c = kr->count;
	struct cs_storage *st = t->st;
	if (!c || c->term != kr->active_term)
		return 0; /* cs_keyring_install resets it; never seen in practice */
	if (!count_cached(c, st) && count_refresh(kr, st) != 0) {
		/* An unreadable record (tampered, or not a number): write a fresh one above
		 * everything this process knows rather than stop every write. */
		c->reserved = 0;
	}
	uint64_t n = cs_keyring_encryptions(kr);
	if (n <= c->reserved)
		return 0;
	/* +1: the record's own encryption. */
	uint64_t v = n + 1 + cs_keyring_batch(kr);
	char key[64], val[32];
	count_key(kr->active_term, key, sizeof key);
	int len = snprintf(val, sizeof val, "%llu", (unsigned long long)v);
	int rc = cs_txn_put(t, key, val, (size_t)len);
	if (rc != 0)
		return rc;
	/* Valid once cs_txn_commit accepts this write-set as seq next_seq. */
	c->reserved = v;
	c->epoch = st->epoch;
	c->seq = st->next_seq;
	c->cached = true;
	return 0;
}
