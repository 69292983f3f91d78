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
 */
#ifndef CS_STORAGE_STORE_H
#define CS_STORAGE_STORE_H

#include <lmdb.h>
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
	MDB_txn *rtxn;          /* cached read-only txn, reset after each use */
	int rtxn_depth;         /* nested users of rtxn (scan callback → get) */
	uint64_t applied_index; /* cached copy of meta "applied" */
	uint8_t digest[CS_DIGEST_LEN];
	MDB_txn *snap_txn; /* pinned view between snapshot_begin and snapshot_end */
	uint64_t snap_index;
	cs_store_apply_hook hook;
	void *hook_ctx;
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
 * committed). index > applied_index is CS_EINVAL; a second begin before end is CS_EBUSY.
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
 * already newer: every restart reloads the last snapshot). Otherwise the data and meta
 * are replaced in one write transaction. CS_EINVAL for a malformed buffer, CS_EIO.
 */
int cs_store_restore(struct cs_store *s, const void *buf, size_t len);

#endif
