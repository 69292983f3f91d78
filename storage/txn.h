/*
 * Request-scoped transactions over the store, the pending overlay, and the committer.
 * This is docs/architecture.md's "Storage: the request is the transaction".
 *
 * Reads see, in order: the transaction's own writes, then the overlay (write-sets the
 * leader proposed to raft that have not applied yet), then LMDB. Writes collect in the
 * transaction's write-set. cs_txn_commit() moves a non-empty write-set into the overlay
 * at once (so the next request sees it) and queues it for the committer; the caller's
 * callback runs once the raft entry holding it has applied. A transaction that only read
 * keys still pending in the overlay also waits, until the newest such write-set applied,
 * so no client ever observes an uncommitted write.
 *
 * Group commit: the committer keeps at most CS_MAX_INFLIGHT raft entries in flight and
 * packs every write-set queued meanwhile into the next entry (up to CS_MAX_ENTRY_BYTES).
 *
 * Happy path: txn_begin → get/put/delete/list → commit → (proposer: raft_apply) →
 * FSM applies entry into LMDB → proposer calls cs_storage_batch_done(status 0) →
 * overlay entries of that batch are dropped → commit callbacks run (status 0).
 * Failure modes:
 * - no proposer, or the proposer refuses the entry that cs_txn_commit proposes itself
 *   (the write-set goes out alone when fewer than CS_MAX_INFLIGHT entries are in flight
 *   and nothing is queued): cs_txn_commit returns CS_ENOTACTIVE, *pending = false, the
 *   write-set never touched the overlay and will never apply; nobody else is affected.
 * - the proposer refuses a batch of queued write-sets (proposed from batch_done): as
 *   cs_storage_fail_all(CS_ENOTACTIVE) — later write-sets may have read the refused ones
 *   through the overlay, so everything pending fails.
 * - batch_done with non-zero status (leadership lost, raft shutdown): outcome unknown;
 *   every queued and in-flight write-set fails with that status, read waiters too, and
 *   the whole overlay is dropped (reads fall back to LMDB, which is the truth).
 * - a txn that read the overlay and commits after a fail_all dropped that overlay gets
 *   the failure status from cs_txn_commit directly (it may have read a write that will
 *   never apply).
 *
 * Everything runs on the loop thread. cs_txn_commit never calls any commit callback (its
 * own or another txn's). Commit callbacks run from cs_storage_batch_done and
 * cs_storage_fail_all (and so from raft callbacks); they may begin and commit new
 * transactions, and may call cs_storage_fail_all, but must not call cs_storage_close.
 */
#ifndef CS_STORAGE_TXN_H
#define CS_STORAGE_TXN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "storage/barrier.h"
#include "storage/entry.h"
#include "storage/store.h"

#define CS_MAX_INFLIGHT    2
#define CS_MAX_ENTRY_BYTES ((size_t)4 << 20)

/* A growable vector of malloc'd strings. */
struct cs_strv {
	char **v;
	size_t n, cap;
};
void cs_strv_push(struct cs_strv *sv, const char *s, size_t len);
void cs_strv_free(struct cs_strv *sv);

struct cs_storage;
struct cs_overlay;

/*
 * Proposer: hand `len` bytes (one encoded batch) to raft. Return 0 if accepted — then the
 * proposer calls cs_storage_batch_done(st, token, status) exactly once, later, never from
 * inside this call — or non-zero if refused (CS_ENOTACTIVE for the batch's write-sets, as
 * the failure modes above describe). The proposer copies the bytes; they are freed when
 * it returns. Statuses for batch_done: 0 (applied) or a CS_E* code (outcome unknown).
 */
typedef int (*cs_propose_fn)(void *ctx, const void *data, size_t len, void *token);
typedef void (*cs_commit_cb)(void *data, int status);

struct cs_commit_waiter;
struct cs_batch;

/* Loop thread, on every node: a RESTORE_COMMIT replaced the data (or a raft snapshot
 * install replaced it, for a node that missed the COMMIT entry itself). */
typedef void (*cs_storage_restore_cb)(void *ctx);

struct cs_txn;

struct cs_storage {
	struct cs_store store;
	struct cs_overlay *overlay;
	uint64_t next_seq;       /* sequence number for the next committed write-set (from 1) */
	uint64_t applied_seq;    /* every write-set with seq <= applied_seq has applied */
	struct cs_batch *queued; /* write-sets waiting for the next raft entry, packed into
				    entries of at most CS_MAX_ENTRY_BYTES, oldest first */
	int inflight;            /* raft entries proposed, not yet done (failed ones too,
				    until their batch_done) */
	struct cs_commit_waiter *read_waiters; /* read-only txns waiting on applied_seq */
	cs_propose_fn propose;
	void *propose_ctx;
	/* Called right after a restore replaced the data (see cs_storage_restore_cb), inside
	 * the raft FSM apply, after the overlay was dropped and everything queued behind the
	 * COMMIT failed with CS_EBUSY. It may seal the node or reload state from storage; it
	 * must not close the storage. NULL: nothing to do. */
	cs_storage_restore_cb on_restore;
	void *restore_ctx;
	/* Called by cs_txn_commit for a non-empty write-set with a keyring, before it is
	 * queued; may add puts to it; an error fails the commit. The server sets
	 * cs_keyring_account (storage/keyring_store.h) to persist the barrier's encryption
	 * counts with the write-sets; NULL (bare storage: tests, tools) does nothing. */
	int (*commit_hook)(struct cs_txn *t);
	/* counters for metrics and benchmarks */
	uint64_t entries_proposed;
	uint64_t writesets_committed;
	/* private to txn.c */
	struct cs_batch *queued_tail;
	struct cs_batch *flying, *flying_tail; /* proposed entries, oldest first */
	size_t n_waiting; /* write-sets and readers whose callback has not run */
	uint64_t epoch;   /* bumped by every fail_all: the overlay was dropped */
	int fail_status;  /* status of the last fail_all */
	bool closed;
	bool exclusive_flying; /* a RESTORE_COMMIT is in flight: propose nothing after it */
};

/* Open the LMDB store under `dir` and set up empty overlay/committer. */
int cs_storage_open(struct cs_storage *st, const char *dir, size_t map_size);
/* Fails every waiter with CS_ESHUTDOWN, frees everything, closes LMDB. Close the raft
 * node first: no batch_done may arrive afterwards. Not from a commit callback. */
void cs_storage_close(struct cs_storage *st);
void cs_storage_set_proposer(struct cs_storage *st, cs_propose_fn fn, void *ctx);
/* Called by the proposer when the entry for `token` applied (status 0) or failed. */
void cs_storage_batch_done(struct cs_storage *st, void *token, int status);
/* Drop the overlay and fail every queued/in-flight write-set and read waiter with
 * `status` (leadership lost, sealing). In-flight raft entries still call batch_done
 * later; that is then a no-op for them. */
void cs_storage_fail_all(struct cs_storage *st, int status);
/* Number of write-sets/readers waiting (backpressure, metrics). */
size_t cs_storage_pending(const struct cs_storage *st);
/*
 * Propose a pre-built entry (a restore entry from raft/snapshot.h; `entry` is copied)
 * through the committer, in order with the write-sets: everything committed before it
 * applies before it, everything after it applies after it. Never merged with other
 * entries. Returns 0 and cb(data, status) runs exactly once later (status 0: the entry
 * applied, which for a restore entry does not mean it took effect — check the store),
 * or non-zero (CS_ENOTACTIVE: refused, CS_ESHUTDOWN: storage closed; cb is never called).
 * A RESTORE_COMMIT is exclusive: nothing queued after it is proposed before it applied,
 * and when it applies the overlay is dropped and whatever queued behind it fails with
 * CS_EBUSY (computed from the state the restore replaced), so no cached read survives.
 * Failure modes as for write-sets (txn.h head). Loop thread.
 */
int cs_storage_propose_raw(struct cs_storage *st, const void *entry, size_t len, cs_commit_cb cb,
			   void *data);

struct cs_txn {
	struct cs_storage *st;
	const struct cs_keyring *kr; /* for cs_txn_get/put; NULL → those return CS_ESEALED */
	struct cs_writeset ws;
	uint64_t read_seq; /* newest pending write-set this txn's reads depended on */
	int err;           /* first failure: the txn is poisoned, only abort is allowed */
	uint64_t epoch;    /* st->epoch at begin: detects a dropped overlay at commit */
};

void cs_txn_begin(struct cs_txn *t, struct cs_storage *st, const struct cs_keyring *kr);
/* Release the write-set without committing. Safe after commit (then a no-op). */
void cs_txn_abort(struct cs_txn *t);
/* Drop the writes but keep what the reads depended on: a cs_txn_commit afterwards waits
 * (as a read-only commit does) until every pending write-set this txn read has applied,
 * and fails if the overlay it read was dropped. For answering an error only once the
 * state it was derived from is known to be real. */
void cs_txn_drop_writes(struct cs_txn *t);

/*
 * Keys are NUL-terminated paths of 1..511 bytes (LMDB's key limit); anything else is
 * CS_EINVAL. Every error except CS_ENOTFOUND poisons the txn. Reads append to `out`.
 */
/* Raw stored bytes (no barrier). CS_ENOTFOUND if absent or deleted. */
int cs_txn_get_raw(struct cs_txn *t, const char *key, struct cs_buf *out);
int cs_txn_put_raw(struct cs_txn *t, const char *key, const void *val, size_t n);
int cs_txn_delete(struct cs_txn *t, const char *key);
/* Barrier-encrypted values: decrypt on read (release `out` with cs_buf_free_secure),
 * encrypt on write. AAD is the key. */
int cs_txn_get(struct cs_txn *t, const char *key, struct cs_buf *out);
int cs_txn_put(struct cs_txn *t, const char *key, const void *val, size_t n);
/*
 * Direct children of `prefix` (which is "" or ends in '/'), as Vault lists: names
 * relative to the prefix, sub-folders once with a trailing '/', sorted, no duplicates.
 */
int cs_txn_list(struct cs_txn *t, const char *prefix, struct cs_strv *out);
/* Every key under prefix (recursively, full keys), sorted. For deleting a mount. */
int cs_txn_scan(struct cs_txn *t, const char *prefix, struct cs_strv *out);
/* The same, one page: at most `limit` keys (0: no limit) that sort after `after` (a full
 * key; NULL or "": from the start). The LMDB scan stops at the page's end, so a page
 * costs O(limit + pending writes), not O(keys under prefix): for bounded batches. */
int cs_txn_scan_page(struct cs_txn *t, const char *prefix, const char *after, size_t limit,
		     struct cs_strv *out);

/*
 * Finish the transaction. If nothing needs waiting for (no writes, and no read of a
 * pending key), returns 0 with *pending = false and cb is never called. Otherwise
 * returns 0 with *pending = true and cb(data, status) runs exactly once later (never
 * from inside this call). A non-zero return (poisoned txn: its error; refused proposal:
 * CS_ENOTACTIVE; overlay dropped since a read: the fail status; storage closed:
 * CS_ESHUTDOWN) means *pending = false, cb is never called and nothing was written.
 * The txn is released in every case (cs_txn_abort afterwards is a no-op).
 */
int cs_txn_commit(struct cs_txn *t, cs_commit_cb cb, void *data, bool *pending);

#endif
