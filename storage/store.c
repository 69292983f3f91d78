/*
 * The LMDB physical store (see store.h for the contract).
 *
 * Happy path: the raft FSM calls cs_store_apply once per committed command entry; the
 * entry is decoded once to validate it, then applied in one LMDB write transaction that
 * also records "applied" and the digest chain; after the commit the hook sees every key
 * that changed. Readers on the loop thread share one cached read-only transaction that
 * is renewed before and reset after each use, so a read always sees the newest commit and
 * never pins an old MVCC page set between loop iterations.
 *
 * Failure modes:
 * - An entry that does not decode, or carries a key LMDB cannot store, is applied as a
 *   no-op that still advances "applied" and the digest: every node sees the same bytes
 *   and so makes the same decision, and raft never retries it (docs/architecture.md, C4).
 * - Any LMDB error (disk, map full, corrupt pages) becomes CS_EIO with errmsg; the FSM
 *   treats that as fatal because skipping an entry would make this node diverge.
 * - A snapshot that fails validation is rejected (CS_EINVAL) before anything is written.
 *
 * Restore entries (txn.h types 2..4) follow the same rules: BEGIN empties "staging" and
 * records the restore id in meta "restore"; each CHUNK that carries that id and the next
 * sequence number is staged; COMMIT with the matching id and counts swaps "staging" into
 * "data" in one write transaction that also advances "applied" and the digest, so every
 * node replaces its data at the same index with the same bytes. Anything out of order
 * (a chunk of an abandoned restore, a COMMIT whose counts disagree) is a no-op for the
 * data, decided from replicated state only, hence the same on every node.
 */
#include "storage/store.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/util.h"
#include "storage/entry.h"

#define META_APPLIED     "applied"
#define META_DIGEST      "digest"
#define META_RESTORE     "restore"
#define RESTORE_META_LEN (CS_RESTORE_ID_LEN + 8 + 8)

static const uint8_t snap_magic[4] = {'C', 'S', 'S', '1'};
/* Format 1: data only. Format 2 (written only while a restore is staged, so that older
 * binaries still read the usual snapshot): data, then the staged restore. */
#define SNAP_FORMAT         1
#define SNAP_FORMAT_STAGING 2
#define SNAP_HEADER_LEN     (4 + 4 + 8 + CS_DIGEST_LEN + 8)

/* Every LMDB failure is CS_EIO for callers; the LMDB text goes to errmsg for the log. */
static int lmdb_fail(struct cs_store *s, const char *what, int rc)
{
	snprintf(s->errmsg, sizeof s->errmsg, "lmdb %s: %s", what, mdb_strerror(rc));
	return CS_EIO;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Read "applied" and "digest" through any transaction (the loop's or a pinned one). */
static int read_meta(struct cs_store *s, MDB_txn *txn, uint64_t *applied,
		     uint8_t digest[CS_DIGEST_LEN])
{
	MDB_val k = {sizeof META_APPLIED - 1, (void *)META_APPLIED}, v;
	int rc = mdb_get(txn, s->meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		*applied = 0;
	} else if (rc != 0) {
		return lmdb_fail(s, "get applied", rc);
	} else if (v.mv_size != 8) {
		snprintf(s->errmsg, sizeof s->errmsg, "lmdb: meta \"applied\" has %zu bytes",
			 v.mv_size);
		return CS_EIO;
	} else {
		*applied = get_le64(v.mv_data);
	}
	k.mv_data = (void *)META_DIGEST;
	k.mv_size = sizeof META_DIGEST - 1;
	rc = mdb_get(txn, s->meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		memset(digest, 0, CS_DIGEST_LEN);
	} else if (rc != 0) {
		return lmdb_fail(s, "get digest", rc);
	} else if (v.mv_size != CS_DIGEST_LEN) {
		snprintf(s->errmsg, sizeof s->errmsg, "lmdb: meta \"digest\" has %zu bytes",
			 v.mv_size);
		return CS_EIO;
	} else {
		memcpy(digest, v.mv_data, CS_DIGEST_LEN);
	}
	return 0;
}

/* Always inside the transaction that changed the data: "applied" must never disagree
 * with the contents, or a restart would skip or re-apply an entry. */
static int write_meta(struct cs_store *s, MDB_txn *txn, uint64_t applied,
		      const uint8_t digest[CS_DIGEST_LEN])
{
	uint8_t le[8];
	put_le64(le, applied);
	MDB_val k = {sizeof META_APPLIED - 1, (void *)META_APPLIED}, v = {8, le};
	int rc = mdb_put(txn, s->meta, &k, &v, 0);
	if (rc != 0)
		return lmdb_fail(s, "put applied", rc);
	k.mv_data = (void *)META_DIGEST;
	k.mv_size = sizeof META_DIGEST - 1;
	v.mv_data = (void *)digest;
	v.mv_size = CS_DIGEST_LEN;
	rc = mdb_put(txn, s->meta, &k, &v, 0);
	if (rc != 0)
		return lmdb_fail(s, "put digest", rc);
	return 0;
}

int cs_store_open(struct cs_store *s, const char *dir, size_t map_size)
{
	memset(s, 0, sizeof *s);
	atomic_init(&s->views, 0);
	atomic_init(&s->closing, false);
	int e = cs_mkdir_p(dir, 0700);
	if (e != 0) {
		snprintf(s->errmsg, sizeof s->errmsg, "create %s: %s", dir, strerror(e));
		return CS_EIO;
	}
	int rc = mdb_env_create(&s->env);
	if (rc != 0)
		return lmdb_fail(s, "env create", rc);
	rc = mdb_env_set_maxdbs(s->env, 4);
	if (rc == 0)
		rc = mdb_env_set_mapsize(s->env, map_size ? map_size : CS_STORE_DEFAULT_MAP_SIZE);
	if (rc != 0) {
		lmdb_fail(s, "env setup", rc);
		goto err_after_env;
	}
	/* NOSYNC: raft's log is the durability point (see store.h). NOTLS: the cached
	 * read txn and the snapshot txn are not tied to the thread that began them. */
	rc = mdb_env_open(s->env, dir, MDB_NOSYNC | MDB_NOTLS, 0600);
	if (rc != 0) {
		lmdb_fail(s, "env open", rc);
		goto err_after_env;
	}
	/* Named databases are created by a write transaction; the handles then stay valid
	 * for every later transaction, on any thread, until the env closes. */
	MDB_txn *txn;
	rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc != 0) {
		lmdb_fail(s, "begin", rc);
		goto err_after_env;
	}
	rc = mdb_dbi_open(txn, "data", MDB_CREATE, &s->data);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "staging", MDB_CREATE, &s->staging);
	if (rc != 0) {
		lmdb_fail(s, "open dbs", rc);
		mdb_txn_abort(txn);
		goto err_after_env;
	}
	if (read_meta(s, txn, &s->applied_index, s->digest) != 0) {
		mdb_txn_abort(txn);
		goto err_after_env;
	}
	rc = mdb_txn_commit(txn);
	if (rc != 0) {
		lmdb_fail(s, "commit", rc);
		goto err_after_env;
	}
	return 0;

err_after_env:
	mdb_env_close(s->env);
	s->env = NULL;
	return CS_EIO;
}

void cs_store_close(struct cs_store *s)
{
	if (!s->env)
		return;
	/* A view walked on another thread must end before the env goes: walkers poll
	 * cs_store_closing and stop within a few thousand records. */
	atomic_store(&s->closing, true);
	/* Blocks the caller (the loop thread at shutdown, after every request finished) for
	 * at most the few milliseconds a walker needs to notice `closing`. */
	while (atomic_load(&s->views) > 0)
		usleep(1000);
	if (s->snap_txn)
		mdb_txn_abort(s->snap_txn);
	if (s->rtxn)
		mdb_txn_abort(s->rtxn);
	/* A clean stop leaves LMDB durable, so the next start replays nothing. */
	mdb_env_sync(s->env, 1);
	mdb_env_close(s->env);
	s->env = NULL;
	s->rtxn = NULL;
	s->snap_txn = NULL;
}

/*
 * The cached read transaction. rtxn_depth lets a scan callback call cs_store_get: the
 * nested use shares the already renewed transaction and only the outermost user resets.
 */
static int rtxn_acquire(struct cs_store *s, MDB_txn **out)
{
	int rc;
	if (s->rtxn_depth > 0) {
		s->rtxn_depth++;
		*out = s->rtxn;
		return 0;
	}
	if (!s->rtxn)
		rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->rtxn);
	else
		rc = mdb_txn_renew(s->rtxn);
	if (rc != 0) {
		if (s->rtxn) {
			mdb_txn_abort(s->rtxn);
			s->rtxn = NULL;
		}
		return lmdb_fail(s, "read txn", rc);
	}
	s->rtxn_depth = 1;
	*out = s->rtxn;
	return 0;
}

static void rtxn_release(struct cs_store *s)
{
	/* Reset (not abort) keeps the reader slot for the next renew, but releases the
	 * snapshot so LMDB can reuse pages freed by later writes. */
	if (--s->rtxn_depth == 0)
		mdb_txn_reset(s->rtxn);
}

int cs_store_get(struct cs_store *s, const char *key, size_t klen, struct cs_buf *out)
{
	if (klen == 0 || klen > (size_t)mdb_env_get_maxkeysize(s->env))
		return CS_ENOTFOUND;
	MDB_txn *txn;
	int rv = rtxn_acquire(s, &txn);
	if (rv != 0)
		return rv;
	MDB_val k = {klen, (void *)key}, v;
	int rc = mdb_get(txn, s->data, &k, &v);
	/* Copy before the reset: v points into the map, valid only while the txn lives. */
	if (rc == 0)
		cs_buf_append(out, v.mv_data, v.mv_size);
	rtxn_release(s);
	if (rc == MDB_NOTFOUND)
		return CS_ENOTFOUND;
	if (rc != 0)
		return lmdb_fail(s, "get", rc);
	return 0;
}

int cs_store_scan(struct cs_store *s, const char *prefix, size_t plen, cs_store_scan_cb cb,
		  void *ctx)
{
	return cs_store_scan_from(s, prefix, plen, NULL, 0, cb, ctx);
}

int cs_store_scan_from(struct cs_store *s, const char *prefix, size_t plen, const char *start,
		       size_t slen, cs_store_scan_cb cb, void *ctx)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	int rv = rtxn_acquire(s, &txn);
	if (rv != 0)
		return rv;
	int rc = mdb_cursor_open(txn, s->data, &cur);
	if (rc != 0) {
		rtxn_release(s);
		return lmdb_fail(s, "cursor", rc);
	}
	MDB_val k = {plen, (void *)prefix}, v;
	if (start && slen > plen && memcmp(start, prefix, plen) == 0)
		k = (MDB_val){slen, (void *)start};
	/* An empty prefix cannot be a SET_RANGE key (LMDB rejects zero-length keys). */
	rc = plen ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)
		  : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	rv = 0;
	while (rc == 0) {
		/* Keys are sorted: the first one without the prefix ends the range. */
		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
			break;
		rv = cb(ctx, k.mv_data, k.mv_size, v.mv_data, v.mv_size);
		if (rv != 0)
			break;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	rtxn_release(s);
	if (rv == 0 && rc != 0 && rc != MDB_NOTFOUND)
		return lmdb_fail(s, "cursor get", rc);
	return rv;
}

/* Validation visitor: any op LMDB would refuse makes the whole entry a no-op. */
static int validate_op(void *ctx, uint8_t op, const char *key, size_t klen, const void *val,
		       size_t vlen)
{
	struct cs_store *s = ctx;
	if (klen == 0 || klen > (size_t)mdb_env_get_maxkeysize(s->env))
		return CS_EINVAL;
	return 0;
}

struct apply_ctx {
	struct cs_store *s;
	MDB_txn *txn;
	bool hook_hit; /* a key the hook watches (hook_prefix) was put or deleted */
};

static int apply_op(void *ctx, uint8_t op, const char *key, size_t klen, const void *val,
		    size_t vlen)
{
	struct apply_ctx *a = ctx;
	MDB_val k = {klen, (void *)key};
	int rc;
	const char *hp = a->s->hook_prefix;
	if (a->s->hook && !a->hook_hit &&
	    (!hp || (klen >= strlen(hp) && memcmp(key, hp, strlen(hp)) == 0)))
		a->hook_hit = true;
	if (op == CS_WS_PUT) {
		MDB_val v = {vlen, (void *)val};
		rc = mdb_put(a->txn, a->s->data, &k, &v, 0);
		if (rc != 0)
			return lmdb_fail(a->s, "put", rc);
	} else {
		rc = mdb_del(a->txn, a->s->data, &k, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return lmdb_fail(a->s, "del", rc);
	}
	return 0;
}

/* Third pass, after the commit: caches above the store learn which keys changed. */
static int hook_op(void *ctx, uint8_t op, const char *key, size_t klen, const void *val,
		   size_t vlen)
{
	struct cs_store *s = ctx;
	s->hook(s->hook_ctx, key, klen);
	return 0;
}

/* The digest chains every applied entry with its index, so two nodes with the same
 * digest applied the same entries at the same indexes: comparing one number across the
 * cluster detects divergence (docs/architecture.md, C11). No-op entries are chained too. */
static int chain_digest(const uint8_t prev[CS_DIGEST_LEN], uint64_t index, const void *data,
			size_t len, uint8_t out[CS_DIGEST_LEN])
{
	uint8_t le[8];
	unsigned int outlen = 0;
	put_le64(le, index);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
		 EVP_DigestUpdate(md, prev, CS_DIGEST_LEN) == 1 &&
		 EVP_DigestUpdate(md, le, sizeof le) == 1 &&
		 (len == 0 || EVP_DigestUpdate(md, data, len) == 1) &&
		 EVP_DigestFinal_ex(md, out, &outlen) == 1 && outlen == CS_DIGEST_LEN;
	EVP_MD_CTX_free(md);
	return ok ? 0 : CS_EIO;
}

static int apply_restore(struct cs_store *s, uint64_t index, const void *entry, size_t len);

int cs_store_apply(struct cs_store *s, uint64_t index, const void *entry, size_t len)
{
	if (index <= s->applied_index)
		return 0; /* restart replay of an entry LMDB already holds */
	int type = cs_entry_type(entry, len);
	if (type >= CS_ENTRY_RESTORE_BEGIN && type <= CS_ENTRY_RESTORE_COMMIT)
		return apply_restore(s, index, entry, len);

	/* Decode once without side effects: cs_batch_decode gives no atomicity, and a
	 * half-applied entry must never be committed. */
	bool valid = cs_batch_decode(entry, len, validate_op, s) == 0;

	uint8_t digest[CS_DIGEST_LEN];
	if (chain_digest(s->digest, index, entry, len, digest) != 0) {
		snprintf(s->errmsg, sizeof s->errmsg, "sha-256 failed");
		return CS_EIO;
	}

	/* One write transaction for the whole entry: a crash leaves it all or nothing, and
	 * group commit makes it one LMDB commit for many requests. */
	struct apply_ctx a = {s, NULL, false};
	int rc = mdb_txn_begin(s->env, NULL, 0, &a.txn);
	if (rc != 0)
		return lmdb_fail(s, "begin", rc);
	/* After validation only LMDB itself can fail here, and that is CS_EIO. */
	int rv = valid ? cs_batch_decode(entry, len, apply_op, &a) : 0;
	if (rv == 0)
		rv = write_meta(s, a.txn, index, digest);
	if (rv != 0) {
		mdb_txn_abort(a.txn);
		return CS_EIO;
	}
	rc = mdb_txn_commit(a.txn);
	if (rc != 0)
		return lmdb_fail(s, "commit", rc);

	s->applied_index = index;
	memcpy(s->digest, digest, CS_DIGEST_LEN);
	/* The hook runs after the commit so that it may read the new values. */
	if (valid && a.hook_hit)
		cs_batch_decode(entry, len, hook_op, s);
	return 0;
}

/* ---------------------------------------------------------------- restore entries */

struct restore_state {
	bool active;
	uint8_t id[CS_RESTORE_ID_LEN];
	uint64_t next_seq;
	uint64_t n_records;
};

static void restore_state_decode(const uint8_t *p, struct restore_state *rs)
{
	rs->active = true;
	memcpy(rs->id, p, CS_RESTORE_ID_LEN);
	rs->next_seq = get_le64(p + CS_RESTORE_ID_LEN);
	rs->n_records = get_le64(p + CS_RESTORE_ID_LEN + 8);
}

static void restore_state_encode(const struct restore_state *rs, uint8_t *p)
{
	memcpy(p, rs->id, CS_RESTORE_ID_LEN);
	put_le64(p + CS_RESTORE_ID_LEN, rs->next_seq);
	put_le64(p + CS_RESTORE_ID_LEN + 8, rs->n_records);
}

/* Raw LMDB code (no errmsg): also used by the snapshot encoder on a worker thread. */
static int get_restore_state(struct cs_store *s, MDB_txn *txn, struct restore_state *rs)
{
	MDB_val k = {sizeof META_RESTORE - 1, (void *)META_RESTORE}, v;
	memset(rs, 0, sizeof *rs);
	int rc = mdb_get(txn, s->meta, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc == 0 && v.mv_size != RESTORE_META_LEN)
		return MDB_CORRUPTED;
	if (rc == 0)
		restore_state_decode(v.mv_data, rs);
	return rc;
}

/* Store (or with !rs->active delete) meta "restore" in txn. */
static int put_restore_state(struct cs_store *s, MDB_txn *txn, const struct restore_state *rs)
{
	MDB_val k = {sizeof META_RESTORE - 1, (void *)META_RESTORE};
	uint8_t buf[RESTORE_META_LEN];
	int rc;
	if (!rs->active) {
		rc = mdb_del(txn, s->meta, &k, NULL);
		return rc == MDB_NOTFOUND ? 0 : rc;
	}
	restore_state_encode(rs, buf);
	MDB_val v = {sizeof buf, buf};
	return mdb_put(txn, s->meta, &k, &v, 0);
}

/* Validation visitor for chunk records: keys LMDB would refuse make the chunk a no-op. */
static int validate_rec(void *ctx, const char *key, size_t klen, const void *val, size_t vlen)
{
	return validate_op(ctx, CS_WS_PUT, key, klen, val, vlen);
}

static int stage_rec(void *ctx, const char *key, size_t klen, const void *val, size_t vlen)
{
	struct apply_ctx *a = ctx;
	MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
	int rc = mdb_put(a->txn, a->s->staging, &k, &v, 0);
	return rc ? lmdb_fail(a->s, "stage", rc) : 0;
}

/* The swap: "data" becomes exactly the staged records (keys come sorted from the
 * cursor, so MDB_APPEND), and the staging is emptied. One transaction: readers see
 * the old data or the new, never a mix. */
static int swap_in_staging(struct cs_store *s, MDB_txn *txn)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_drop(txn, s->data, 0);
	if (rc != 0)
		return lmdb_fail(s, "drop data", rc);
	rc = mdb_cursor_open(txn, s->staging, &cur);
	if (rc != 0)
		return lmdb_fail(s, "cursor", rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		int prc = mdb_put(txn, s->data, &k, &v, MDB_APPEND);
		if (prc != 0) {
			mdb_cursor_close(cur);
			return lmdb_fail(s, "restore put", prc);
		}
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND)
		return lmdb_fail(s, "cursor get", rc);
	rc = mdb_drop(txn, s->staging, 0);
	return rc ? lmdb_fail(s, "drop staging", rc) : 0;
}

/* One restore entry inside the apply transaction. Only LMDB failures are errors. */
static int restore_step(struct cs_store *s, MDB_txn *txn, const struct cs_restore_hdr *h,
			const void *entry, size_t len, bool *swapped)
{
	struct restore_state rs;
	int rc = get_restore_state(s, txn, &rs);
	if (rc != 0)
		return lmdb_fail(s, "get restore", rc);
	bool ours = rs.active && memcmp(rs.id, h->id, CS_RESTORE_ID_LEN) == 0;
	switch (h->type) {
	case CS_ENTRY_RESTORE_BEGIN:
		/* A new restore discards whatever an abandoned one staged. */
		rc = mdb_drop(txn, s->staging, 0);
		if (rc != 0)
			return lmdb_fail(s, "drop staging", rc);
		rs = (struct restore_state){.active = true};
		memcpy(rs.id, h->id, CS_RESTORE_ID_LEN);
		break;
	case CS_ENTRY_RESTORE_CHUNK: {
		if (!ours || h->seq != rs.next_seq)
			return 0; /* stale or out of order: the COMMIT's counts will disagree */
		struct apply_ctx a = {s, txn, false};
		struct cs_restore_hdr again;
		int rv = cs_restore_decode(entry, len, &again, stage_rec, &a);
		if (rv != 0)
			return CS_EIO; /* validated before: only LMDB can fail here */
		rs.next_seq++;
		rs.n_records += h->n_records;
		break;
	}
	case CS_ENTRY_RESTORE_COMMIT:
		if (!ours)
			return 0;
		if (h->seq == rs.next_seq && h->n_records == rs.n_records) {
			int rv = swap_in_staging(s, txn);
			if (rv != 0)
				return rv;
			*swapped = true;
		} else {
			/* Chunks went missing: this restore can never complete. */
			rc = mdb_drop(txn, s->staging, 0);
			if (rc != 0)
				return lmdb_fail(s, "drop staging", rc);
		}
		rs.active = false;
		break;
	default:
		return 0;
	}
	rc = put_restore_state(s, txn, &rs);
	return rc ? lmdb_fail(s, "put restore", rc) : 0;
}

static void notify_restored(struct cs_store *s)
{
	/* Every key may have changed: one call with an empty key says so. */
	if (s->hook)
		s->hook(s->hook_ctx, "", 0);
	if (s->restored)
		s->restored(s->restored_ctx);
}

static int apply_restore(struct cs_store *s, uint64_t index, const void *entry, size_t len)
{
	struct cs_restore_hdr h;
	/* Validate everything first: a malformed entry is a no-op on every node alike. */
	bool valid = cs_restore_decode(entry, len, &h, validate_rec, s) == 0;
	uint8_t digest[CS_DIGEST_LEN];
	if (chain_digest(s->digest, index, entry, len, digest) != 0) {
		snprintf(s->errmsg, sizeof s->errmsg, "sha-256 failed");
		return CS_EIO;
	}
	MDB_txn *txn;
	int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc != 0)
		return lmdb_fail(s, "begin", rc);
	bool swapped = false;
	int rv = valid ? restore_step(s, txn, &h, entry, len, &swapped) : 0;
	if (rv == 0)
		rv = write_meta(s, txn, index, digest);
	if (rv != 0) {
		mdb_txn_abort(txn);
		return CS_EIO;
	}
	rc = mdb_txn_commit(txn);
	if (rc != 0)
		return lmdb_fail(s, "commit", rc);
	s->applied_index = index;
	memcpy(s->digest, digest, CS_DIGEST_LEN);
	if (swapped) {
		memcpy(s->last_restore_id, h.id, CS_RESTORE_ID_LEN);
		s->restores_applied++;
		notify_restored(s);
	}
	return 0;
}

/* ---------------------------------------------------------------- views */

int cs_store_view_begin(struct cs_store *s, MDB_txn **view, uint64_t *index)
{
	MDB_txn *t;
	uint8_t digest[CS_DIGEST_LEN];
	int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t);
	if (rc != 0)
		return lmdb_fail(s, "view txn", rc);
	int rv = read_meta(s, t, index, digest);
	if (rv != 0) {
		mdb_txn_abort(t);
		return rv;
	}
	atomic_fetch_add(&s->views, 1);
	*view = t;
	return 0;
}

void cs_store_view_end(struct cs_store *s, MDB_txn *view)
{
	if (!view)
		return;
	mdb_txn_abort(view);
	atomic_fetch_sub(&s->views, 1);
}

bool cs_store_closing(struct cs_store *s)
{
	return atomic_load(&s->closing);
}

/* ---------------------------------------------------------------- raft snapshots */

int cs_store_snapshot_begin(struct cs_store *s, uint64_t index)
{
	if (s->snap_txn) {
		snprintf(s->errmsg, sizeof s->errmsg, "a snapshot is already being taken");
		return CS_EBUSY;
	}
	/* index > applied_index is fine: every command entry goes through apply, so the
	 * entries in between are barriers or configuration changes, which leave the state
	 * as it is (the view, and the header, carry applied_index). */
	(void)index;
	/* With MDB_NOSYNC nothing is on disk yet; raft may delete the log entries behind
	 * this snapshot as soon as it is stored, so LMDB must be durable first. */
	int rc = mdb_env_sync(s->env, 1);
	if (rc != 0)
		return lmdb_fail(s, "sync", rc);
	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->snap_txn);
	if (rc != 0) {
		s->snap_txn = NULL;
		return lmdb_fail(s, "snapshot txn", rc);
	}
	s->snap_index = s->applied_index;
	return 0;
}

static int snap_fail(struct cs_store *s, const char *what, int rc)
{
	snprintf(s->snap_errmsg, sizeof s->snap_errmsg, "snapshot: lmdb %s: %s", what,
		 mdb_strerror(rc));
	return CS_EIO;
}

/* read_meta for the worker thread: raw LMDB codes, no shared errmsg. A store that never
 * applied anything has no meta keys: index 0, zero digest. */
static int snap_read_meta(struct cs_store *s, uint64_t *applied, uint8_t digest[CS_DIGEST_LEN])
{
	MDB_val k = {sizeof META_APPLIED - 1, (void *)META_APPLIED}, v;
	int rc = mdb_get(s->snap_txn, s->meta, &k, &v);
	*applied = 0;
	memset(digest, 0, CS_DIGEST_LEN);
	if (rc == 0 && v.mv_size == 8)
		*applied = get_le64(v.mv_data);
	else if (rc != MDB_NOTFOUND)
		return rc == 0 ? MDB_CORRUPTED : rc;
	k.mv_data = (void *)META_DIGEST;
	k.mv_size = sizeof META_DIGEST - 1;
	rc = mdb_get(s->snap_txn, s->meta, &k, &v);
	if (rc == 0 && v.mv_size == CS_DIGEST_LEN)
		memcpy(digest, v.mv_data, CS_DIGEST_LEN);
	else if (rc != MDB_NOTFOUND)
		return rc == 0 ? MDB_CORRUPTED : rc;
	return 0;
}

/* Append every record of `dbi` in the pinned view (worker thread): u32 klen | key |
 * u32 vlen | value, in key order; *count must equal what mdb_stat said. */
static int snap_encode_db(struct cs_store *s, MDB_dbi dbi, uint64_t expect, struct cs_buf *out)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(s->snap_txn, dbi, &cur);
	if (rc != 0)
		return snap_fail(s, "cursor", rc);
	MDB_val k, v;
	uint64_t count = 0;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size > UINT32_MAX || v.mv_size > UINT32_MAX) {
			mdb_cursor_close(cur);
			snprintf(s->snap_errmsg, sizeof s->snap_errmsg, "value too large");
			return CS_EIO;
		}
		cs_buf_put_u32(out, (uint32_t)k.mv_size);
		cs_buf_append(out, k.mv_data, k.mv_size);
		cs_buf_put_u32(out, (uint32_t)v.mv_size);
		cs_buf_append(out, v.mv_data, v.mv_size);
		count++;
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND)
		return snap_fail(s, "cursor get", rc);
	if (count != expect) {
		snprintf(s->snap_errmsg, sizeof s->snap_errmsg,
			 "snapshot walked %llu of %llu entries", (unsigned long long)count,
			 (unsigned long long)expect);
		return CS_EIO;
	}
	return 0;
}

/* Runs on a worker thread: touches only snap_txn, the dbi handles and snap_errmsg. */
int cs_store_snapshot_encode(struct cs_store *s, struct cs_buf *out)
{
	if (!s->snap_txn) {
		snprintf(s->snap_errmsg, sizeof s->snap_errmsg, "no snapshot view pinned");
		return CS_EINVAL;
	}
	uint64_t applied;
	uint8_t digest[CS_DIGEST_LEN];
	struct restore_state rs;
	MDB_stat st, sst;
	int rc = snap_read_meta(s, &applied, digest);
	if (rc == 0)
		rc = get_restore_state(s, s->snap_txn, &rs);
	if (rc == 0)
		rc = mdb_stat(s->snap_txn, s->data, &st);
	if (rc == 0)
		rc = mdb_stat(s->snap_txn, s->staging, &sst);
	if (rc != 0)
		return snap_fail(s, "stat", rc);
	/* The pages in use bound the encoded size closely: reserve once. */
	size_t pages = st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
	if (rs.active)
		pages += sst.ms_branch_pages + sst.ms_leaf_pages + sst.ms_overflow_pages;
	cs_buf_reserve(out, SNAP_HEADER_LEN + pages * st.ms_psize);

	/* Index and digest come from the pinned view itself, not from the cached fields
	 * that the loop thread keeps updating while we encode. */
	cs_buf_append(out, snap_magic, sizeof snap_magic);
	cs_buf_put_u32(out, rs.active ? SNAP_FORMAT_STAGING : SNAP_FORMAT);
	cs_buf_put_u64(out, applied);
	cs_buf_append(out, digest, CS_DIGEST_LEN);
	cs_buf_put_u64(out, (uint64_t)st.ms_entries);
	int rv = snap_encode_db(s, s->data, st.ms_entries, out);
	if (rv != 0 || !rs.active)
		return rv;
	/* A restore is being staged: its state is replicated state too (store.h). */
	uint8_t meta[RESTORE_META_LEN];
	restore_state_encode(&rs, meta);
	cs_buf_append(out, meta, sizeof meta);
	cs_buf_put_u64(out, (uint64_t)sst.ms_entries);
	return snap_encode_db(s, s->staging, sst.ms_entries, out);
}

void cs_store_snapshot_end(struct cs_store *s)
{
	if (s->snap_txn) {
		mdb_txn_abort(s->snap_txn);
		s->snap_txn = NULL;
	}
}

/* Walk `count` records of a snapshot body into dbi; with txn == NULL only validate
 * (sizes, strictly ascending keys). */
static int restore_walk(struct cs_store *s, struct cs_reader *r, uint64_t count, MDB_txn *txn,
			MDB_dbi dbi)
{
	const uint8_t *prev = NULL;
	size_t prevlen = 0;
	size_t maxkey = (size_t)mdb_env_get_maxkeysize(s->env);
	for (uint64_t i = 0; i < count; i++) {
		size_t klen = cs_read_u32(r);
		const uint8_t *key = cs_read_bytes(r, klen);
		size_t vlen = cs_read_u32(r);
		const uint8_t *val = cs_read_bytes(r, vlen);
		if (r->err || klen == 0 || klen > maxkey)
			return CS_EINVAL;
		if (!txn) {
			/* Strictly ascending keys let the real pass use MDB_APPEND. */
			if (prev) {
				size_t m = prevlen < klen ? prevlen : klen;
				int c = memcmp(prev, key, m);
				if (c > 0 || (c == 0 && prevlen >= klen))
					return CS_EINVAL;
			}
			prev = key;
			prevlen = klen;
			continue;
		}
		MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
		int rc = mdb_put(txn, dbi, &k, &v, MDB_APPEND);
		if (rc != 0)
			return lmdb_fail(s, "put", rc);
	}
	return 0;
}

/* A decoded snapshot: the data records, then (format 2) the staged restore. */
struct snap_body {
	struct cs_reader data;
	uint64_t count;
	struct restore_state rs;
	struct cs_reader staged;
	uint64_t staged_count;
};

/* Validate the whole body, from r (just after the header) to the last byte. */
static int snap_body_parse(struct cs_store *s, struct cs_reader *r, uint32_t format, uint64_t count,
			   struct snap_body *b)
{
	memset(b, 0, sizeof *b);
	b->data = *r;
	b->count = count;
	if (restore_walk(s, r, count, NULL, 0) != 0)
		return CS_EINVAL;
	if (format == SNAP_FORMAT_STAGING) {
		const uint8_t *meta = cs_read_bytes(r, RESTORE_META_LEN);
		b->staged_count = cs_read_u64(r);
		if (r->err)
			return CS_EINVAL;
		restore_state_decode(meta, &b->rs);
		b->staged = *r;
		if (restore_walk(s, r, b->staged_count, NULL, 0) != 0)
			return CS_EINVAL;
	}
	return r->left == 0 ? 0 : CS_EINVAL;
}

/* Replace data, staging and the restore state with the snapshot's, inside txn. */
static int snap_body_load(struct cs_store *s, MDB_txn *txn, struct snap_body *b)
{
	int rc = mdb_drop(txn, s->data, 0);
	if (rc == 0)
		rc = mdb_drop(txn, s->staging, 0);
	if (rc != 0)
		return lmdb_fail(s, "drop", rc);
	int rv = restore_walk(s, &b->data, b->count, txn, s->data);
	if (rv == 0)
		rv = restore_walk(s, &b->staged, b->staged_count, txn, s->staging);
	if (rv != 0)
		return rv;
	rc = put_restore_state(s, txn, &b->rs);
	return rc ? lmdb_fail(s, "put restore", rc) : 0;
}

int cs_store_restore(struct cs_store *s, const void *buf, size_t len)
{
	struct cs_reader r = {buf, len, 0};
	const uint8_t *magic = cs_read_bytes(&r, sizeof snap_magic);
	uint32_t format = cs_read_u32(&r);
	uint64_t index = cs_read_u64(&r);
	const uint8_t *digest = cs_read_bytes(&r, CS_DIGEST_LEN);
	uint64_t count = cs_read_u64(&r);
	if (r.err || memcmp(magic, snap_magic, sizeof snap_magic) != 0 ||
	    (format != SNAP_FORMAT && format != SNAP_FORMAT_STAGING)) {
		snprintf(s->errmsg, sizeof s->errmsg, "not a custos snapshot (format 1 or 2)");
		return CS_EINVAL;
	}
	/* Validate everything before the first write: a bad snapshot must leave the store
	 * exactly as it was (raft keeps running on the old state). */
	struct snap_body body;
	if (snap_body_parse(s, &r, format, count, &body) != 0) {
		snprintf(s->errmsg, sizeof s->errmsg, "malformed snapshot body");
		return CS_EINVAL;
	}
	if (index <= s->applied_index)
		return 0; /* every restart reloads the last snapshot: LMDB is newer */

	MDB_txn *txn;
	int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc != 0)
		return lmdb_fail(s, "begin", rc);
	/* Emptying and refilling in one transaction: readers see old or new, never a mix.
	 * The staging follows the snapshot too: staged chunks of a restore in progress are
	 * in it (format 2), and anything staged locally that is not is stale. */
	int rv = snap_body_load(s, txn, &body);
	if (rv == 0)
		rv = write_meta(s, txn, index, digest);
	if (rv != 0) {
		mdb_txn_abort(txn);
		return CS_EIO;
	}
	rc = mdb_txn_commit(txn);
	if (rc != 0)
		return lmdb_fail(s, "commit", rc);
	s->applied_index = index;
	memcpy(s->digest, digest, CS_DIGEST_LEN);
	notify_restored(s);
	return 0;
}
