/*
 * The raft FSM v3 over the LMDB store (docs/architecture.md, C3, C4; contract in fsm.h).
 *
 * Happy path, per committed command entry (loop thread): apply → cs_store_apply at
 * raft_last_applied + 1 (0.15 bumps last_applied only after apply returns) → 0.
 * Snapshot, when raft decides to take one:
 *   snapshot()          loop thread: pin an LMDB read view (after syncing LMDB, since
 *                       raft may drop the log behind the snapshot), hand raft our
 *                       one-element bufs array, still empty;
 *   snapshot_async()    libuv pool thread: serialise the pinned view into f->snap and
 *                       point the buffer at it (the loop keeps applying meanwhile: the
 *                       view is an MVCC snapshot);
 *   snapshot_finalize() loop thread, after raft stored (or failed to store) it: release
 *                       the view and the bytes. With finalize set raft frees nothing.
 * Restore (every restart, and after an InstallSnapshot): cs_store_restore replaces LMDB
 * only if the snapshot is newer than what LMDB already applied.
 * Snapshot restores of the API (RESTORE_BEGIN/CHUNK/COMMIT entries, storage/txn.h) are
 * ordinary command entries here; a raft snapshot taken while one is being staged carries
 * the staged records (store format 2) and installing one replaces the local staging, so
 * a follower that catches up mid-restore applies the COMMIT like every other node.
 *
 * Failure modes:
 * - LMDB fails inside apply: abort(). Returning an error would make 0.15 retry the same
 *   entry forever (a wedged node); a restart replays from the log instead.
 * - Undecodable entry: cs_store_apply makes it a no-op on every node alike.
 * - snapshot() cannot pin a view, or one is already pinned: RAFT_BUSY, raft retries at a
 *   later apply. 0.15 does not call finalize when snapshot() fails, so nothing is kept.
 * - snapshot_async() fails: non-zero; raft then calls finalize, which cleans up.
 * - restore() of a malformed snapshot: RAFT_CORRUPT, raft keeps ownership of the buffer.
 */
#include "raft/fsm.h"

#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/log.h"

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	struct cs_fsm *f = fsm->data;
	uint64_t index = raft_last_applied(f->raft) + 1;
	if (index <= f->store->applied_index)
		f->skipped_entries++;
	int rv = cs_store_apply(f->store, index, buf->base, buf->len);
	if (rv != 0) {
		cs_error("fsm: applying raft entry %llu failed: %s; stopping (restart replays "
			 "the log)",
			 (unsigned long long)index, f->store->errmsg);
		abort();
	}
	f->applied_entries++;
	f->log_entries++;
	f->log_bytes += buf->len;
	/* The byte bound of the in-memory log: raft keeps every entry since the last
	 * snapshot (and `trailing` before it) in memory, and its threshold counts entries.
	 * Threshold 1 makes raft take a snapshot right after this apply; finalize puts the
	 * count back. */
	if (f->raft && !f->fixed_threshold && !f->snapshotting && f->threshold != 1 &&
	    f->log_bytes >= cs_fsm_log_limit(f)) {
		raft_set_snapshot_threshold(f->raft, 1);
		f->threshold = 1;
		f->byte_triggers++;
	}
	/* Results reach only the leader's callback; followers would leak anything else. */
	*result = NULL;
	return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	struct cs_fsm *f = fsm->data;
	if (f->snapshotting)
		return RAFT_BUSY;
	/* raft_last_applied is the snapshot index here; LMDB may be ahead during replay. */
	int rv = cs_store_snapshot_begin(f->store, raft_last_applied(f->raft));
	if (rv != 0) {
		cs_warn("fsm: cannot start a snapshot: %s", f->store->errmsg);
		return RAFT_BUSY;
	}
	f->snapshotting = true;
	/* Entries kept behind the snapshot (catch-up from the log instead of a snapshot)
	 * also sit in memory: bound them in bytes too, from the average entry size. */
	if (f->raft && !f->fixed_threshold && f->log_entries > 0) {
		uint64_t avg = f->log_bytes / f->log_entries;
		uint64_t keep = cs_fsm_log_limit(f) / 4 / (avg < 64 ? 64 : avg);
		keep = keep < CS_FSM_TRAILING_MIN   ? CS_FSM_TRAILING_MIN
		       : keep > CS_FSM_TRAILING_MAX ? CS_FSM_TRAILING_MAX
						    : keep;
		raft_set_snapshot_trailing(f->raft, (unsigned)keep);
	}
	f->snap_buf.base = NULL;
	f->snap_buf.len = 0;
	*bufs = &f->snap_buf;
	*n_bufs = 1;
	return 0;
}

/* Worker thread: only the pinned view, f->snap and f->snap_buf are touched. */
static int fsm_snapshot_async(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	struct cs_fsm *f = fsm->data;
	int rv = cs_store_snapshot_encode(f->store, &f->snap);
	if (rv != 0)
		return RAFT_IOERR; /* logged in finalize, on the loop thread */
	f->snap_buf.base = f->snap.data;
	f->snap_buf.len = f->snap.len;
	*bufs = &f->snap_buf;
	*n_bufs = 1;
	return 0;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	struct cs_fsm *f = fsm->data;
	if (f->snap_buf.base) {
		f->snapshots++;
		f->last_snapshot_len = f->snap_buf.len;
		uint64_t avg = f->log_entries ? f->log_bytes / f->log_entries : 0;
		unsigned t = cs_fsm_snapshot_threshold(f->snap_buf.len, avg);
		if (t != f->threshold && f->raft && !f->fixed_threshold) {
			raft_set_snapshot_threshold(f->raft, t);
			cs_debug("fsm: snapshot of %zu bytes; next after %u entries",
				 f->snap_buf.len, t);
			f->threshold = t;
		}
		f->log_bytes = f->log_entries = 0;
	} else if (f->store->snap_errmsg[0])
		cs_warn("fsm: snapshot failed: %s", f->store->snap_errmsg);
	cs_store_snapshot_end(f->store);
	cs_buf_free(&f->snap);
	f->store->snap_errmsg[0] = '\0';
	f->snap_buf.base = NULL;
	f->snap_buf.len = 0;
	f->snapshotting = false;
	*bufs = NULL;
	*n_bufs = 0;
	return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	struct cs_fsm *f = fsm->data;
	uint64_t before = f->store->applied_index;
	int rv = cs_store_restore(f->store, buf->base, buf->len);
	if (rv != 0) {
		cs_error("fsm: restoring snapshot: %s", f->store->errmsg);
		return RAFT_CORRUPT;
	}
	if (f->store->applied_index != before) {
		f->restores++;
		cs_info("fsm: restored snapshot at index %llu",
			(unsigned long long)f->store->applied_index);
	} else {
		cs_debug("fsm: snapshot not newer than the store (applied %llu), kept the store",
			 (unsigned long long)before);
	}
	raft_free(buf->base); /* ours on success */
	return 0;
}

uint64_t cs_fsm_log_limit(const struct cs_fsm *f)
{
	uint64_t max = f->max_log_bytes ? f->max_log_bytes : CS_FSM_MAX_LOG_BYTES;
	uint64_t lo = CS_FSM_MIN_LOG_BYTES < max ? CS_FSM_MIN_LOG_BYTES : max;
	uint64_t want = f->last_snapshot_len / 2;
	want = want < lo ? lo : want > max ? max : want;
	/* Staggered by node: c-raft 0.15 holds back a node's log writes (and so its acks)
	 * while it stores a snapshot, and every node reaches the same byte count at the same
	 * index; all followers snapshotting at once left the leader without acks for longer
	 * than an election timeout (leaderships lost in the benchmark). +0..37.5 %. */
	if (f->raft)
		want += want / 8 * (f->raft->id % 4);
	return want;
}

unsigned cs_fsm_snapshot_threshold(uint64_t snap_len, uint64_t avg_entry)
{
	const uint64_t lo = 4u << 20, hi = 128u << 20;
	uint64_t budget = snap_len / 2;
	budget = budget < lo ? lo : budget > hi ? hi : budget;
	uint64_t n = budget / (avg_entry < 64 ? 64 : avg_entry);
	return (unsigned)(n < 512 ? 512 : n > 262144 ? 262144 : n);
}

void cs_fsm_init(struct cs_fsm *f, struct raft_fsm *fsm, struct cs_store *store)
{
	memset(f, 0, sizeof *f);
	memset(fsm, 0, sizeof *fsm);
	f->store = store;
	fsm->version = 3;
	fsm->data = f;
	fsm->apply = fsm_apply;
	fsm->snapshot = fsm_snapshot;
	fsm->restore = fsm_restore;
	fsm->snapshot_finalize = fsm_snapshot_finalize;
	fsm->snapshot_async = fsm_snapshot_async;
}

void cs_fsm_close(struct cs_fsm *f)
{
	/* raft_close waits for snapshot work, so this only matters on odd error paths. */
	if (f->snapshotting) {
		cs_store_snapshot_end(f->store);
		f->snapshotting = false;
	}
	cs_buf_free(&f->snap);
	f->snap_buf.base = NULL;
	f->snap_buf.len = 0;
}
