/*
 * The physical store: one LMDB environment per node (<data_dir>/fsm), written only by
 * the raft FSM (one LMDB write transaction per applied raft entry) and read by
 * everybody on the loop thread.
 *
 * Named databases:
 *   "data"  storage key (plaintext path) → stored bytes (barrier ciphertext, or the few
 *           plaintext/seal-encrypted core/ bootstrap entries)
 *   "meta"  "applied" → u64 LE raft index of the last applied entry;
 *           "digest"  → 32 bytes: running hash chain of applied entries
 *                       digest_i = SHA-256(digest_{i-1} || u64 LE i || entry bytes)
 *           "restore" → only while a snapshot restore is being staged:
 *                       id[16] | u64 next chunk seq | u64 records staged
 *   "staging" the records of that restore (storage/txn.h, RESTORE_* entries), swapped
 *           into "data" by its RESTORE_COMMIT; empty otherwise
 *
 * Durability: LMDB is opened with MDB_NOSYNC|MDB_NOTLS. The raft log is the durability
 * point: after a crash raft replays every entry after "applied", so LMDB needs integrity
 * (ext4 journals keep write order for LMDB's two-phase meta update) but no fsync per
 * commit. The store is synced (mdb_env_sync, off the hot path) when a snapshot is taken,
 * because after that raft may delete the log entries that LMDB would otherwise need.
 *
 * Caveats:
 * - Every function runs on the loop thread except cs_store_snapshot_encode, which may
 *   run on a worker thread between snapshot_begin and snapshot_end.
 * - cs_store_apply must be total: an undecodable entry is a no-op that still advances
 *   "applied" (every node sees the same bytes, so every node makes the same no-op).
 * - The staging database is part of the replicated state: raft snapshots taken while a
 *   restore is staged carry it (format 2), or a node catching up from such a snapshot
 *   would ignore the COMMIT that every other node applies.
 * - Views (cs_store_view_begin) may be walked on any thread; cs_store_close waits for
 *   every view to end, and walkers should poll cs_store_closing to end early.
 */
#ifndef CS_STORAGE_STORE_H
#define CS_STORAGE_STORE_H

#include <lmdb.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define CS_DIGEST_LEN             32
#define CS_STORE_DEFAULT_MAP_SIZE ((size_t)8 << 30) /* 8 GiB of address space */

/* Called for every key a committed entry put or deleted (after the LMDB commit). After a
 * cs_store_restore that replaced the contents it is called once with key "" and klen 0:
 * "everything may have changed". */
typedef void (*cs_store_apply_hook)(void *ctx, const char *key, size_t klen);

struct cs_store {
	MDB_env *env;
	MDB_dbi data;
	MDB_dbi meta;
	MDB_dbi staging;
	MDB_txn *rtxn;          /* cached read-only txn, reset after each use */
	int rtxn_depth;         /* nested users of rtxn (scan callback → get) */
	uint64_t applied_index; /* cached copy of meta "applied" */
	uint8_t digest[CS_DIGEST_LEN];
	MDB_txn *snap_txn; /* pinned view between snapshot_begin and snapshot_end */
	uint64_t snap_index;
	cs_store_apply_hook hook;
	void *hook_ctx;
	/* When set, `hook` sees only entries that touch a key starting with this prefix:
	 * the apply pass notes a match with one memcmp per key, so the FSM does not decode
	 * every entry a third time for a hook that watches one record. NULL: every entry. */
	const char *hook_prefix;
	/* After a RESTORE_COMMIT replaced the data, or cs_store_restore replaced the whole
	 * store; after `hook`. Set by storage/txn.c (cs_storage_open). */
	void (*restored)(void *ctx);
	void *restored_ctx;
	uint8_t last_restore_id[16]; /* id of the last RESTORE_COMMIT that took effect */
	uint64_t restores_applied;   /* RESTORE_COMMITs that took effect in this process */
	atomic_int views;            /* cs_store_view_begin without end */
	atomic_bool closing;         /* cs_store_close is waiting for the views */
	char errmsg[256];
	char snap_errmsg[256]; /* cs_store_snapshot_encode's errors (worker thread) */
};

/* Create <dir> (0700) if needed and open the environment. CS_EIO with errmsg on error. */
int cs_store_open(struct cs_store *s, const char *dir, size_t map_size);
void cs_store_close(struct cs_store *s);

/* Copy the value stored under key into `out` (appended). CS_ENOTFOUND if absent. */
int cs_store_get(struct cs_store *s, const char *key, size_t klen, struct cs_buf *out);

/* Visit every key starting with prefix, in key order. cb returns non-zero to stop (that
 * value is returned). key/val point into LMDB and are valid only during the call. cb may
 * call cs_store_get/cs_store_scan (they share the read view) but must not apply. */
typedef int (*cs_store_scan_cb)(void *ctx, const char *key, size_t klen, const void *val,
				size_t vlen);
int cs_store_scan(struct cs_store *s, const char *prefix, size_t plen, cs_store_scan_cb cb,
		  void *ctx);
/* The same, starting at the first key >= `start` (a key under prefix; NULL: at prefix). */
int cs_store_scan_from(struct cs_store *s, const char *prefix, size_t plen, const char *start,
		       size_t slen, cs_store_scan_cb cb, void *ctx);

/*
 * Apply one raft command entry (a batch encoded by cs_batch_*, storage/txn.h) at raft
 * index `index`, in one LMDB write transaction that also records "applied" and
 * "digest". Entries with index <= applied_index are skipped (already in LMDB: restart
 * replay). Returns 0 (also for an undecodable entry, applied as a no-op), or CS_EIO when
 * LMDB itself fails — the caller must treat that as fatal.
 */
int cs_store_apply(struct cs_store *s, uint64_t index, const void *entry, size_t len);

/*
 * Snapshots. begin: sync the environment and pin a read view (the state at applied_index).
 * `index` is raft's snapshot index: it may be lower than applied_index while raft replays
 * entries LMDB already holds (the view, and the header, then carry applied_index: a node
 * restoring it skips those entries on replay, which is correct because they are
 * committed). It may also be higher when the last entries were barriers or configuration
 * changes (they never reach the store). A second begin before end is CS_EBUSY.
 * encode: serialise that view into `out` (may run on a worker thread while the loop keeps
 * applying; errors go to snap_errmsg). end: release the view. Format (integers LE):
 *   magic "CSS1" (4 bytes) | u32 format 1 | u64 index | 32-byte digest | u64 count |
 *   count × (u32 klen | key | u32 vlen | value), keys strictly ascending
 */
int cs_store_snapshot_begin(struct cs_store *s, uint64_t index);
int cs_store_snapshot_encode(struct cs_store *s, struct cs_buf *out);
void cs_store_snapshot_end(struct cs_store *s);
/*
 * Restore from a snapshot buffer. If its index <= applied_index nothing changes (LMDB is
 * already newer: every restart reloads the last snapshot). Otherwise the data, the
 * staging and meta are replaced in one write transaction, then `hook` ("") and
 * `restored` run. Formats 1 and 2 are read; encode writes 2 only while a restore is
 * staged (then: data records | restore meta (32 bytes) | u64 count | staged records).
 * CS_EINVAL for a malformed buffer, CS_EIO.
 */
int cs_store_restore(struct cs_store *s, const void *buf, size_t len);

/*
 * A consistent read view of the whole store for a long walk on another thread (archive
 * snapshots, raft/snapshot.h). begin (loop thread): a read-only LMDB transaction on the
 * newest commit and the raft index it holds. The view may then be used from one thread
 * at a time (the env is MDB_NOTLS); end it from any thread. Writers are never blocked,
 * but LMDB cannot reuse pages freed after begin until end, so do not keep views longer
 * than the walk. 0 or CS_EIO (errmsg).
 */
int cs_store_view_begin(struct cs_store *s, MDB_txn **view, uint64_t *index);
void cs_store_view_end(struct cs_store *s, MDB_txn *view);
/* True once cs_store_close started: walkers of a view should stop and end it. */
bool cs_store_closing(struct cs_store *s);

#endif
