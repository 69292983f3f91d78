/*
 * The raft state machine: a thin adaptor from c-raft 0.15's FSM v3 interface to the
 * LMDB store (storage/store.h). See docs/architecture.md, C3 and C4, for the rules this follows:
 * - apply: index = raft_last_applied(r) + 1 (0.15 quirk); total and deterministic;
 *   an LMDB failure aborts the process (restart replays from the log).
 * - snapshot: pins an LMDB read view at the snapshot index (loop thread);
 *   snapshot_async: serialises it (libuv pool thread); snapshot_finalize: releases.
 * - restore: skipped when LMDB already holds a newer state (every restart).
 */
#ifndef CS_RAFT_FSM_H
#define CS_RAFT_FSM_H

#include <raft.h>

#include "storage/store.h"

struct cs_fsm {
	struct raft *raft; /* set before raft_start; used to compute entry indexes */
	struct cs_store *store;
	struct cs_buf snap;          /* snapshot bytes between snapshot_async and finalize */
	struct raft_buffer snap_buf; /* the one-element bufs array handed to raft */
	bool snapshotting;
	uint64_t applied_entries; /* entries applied by this process (metrics) */
	uint64_t skipped_entries; /* of those, replayed entries LMDB already held */
	uint64_t snapshots;       /* snapshots serialised by this process */
	uint64_t restores;        /* snapshots that replaced the LMDB contents */
	uint64_t log_bytes;       /* command bytes applied since the last snapshot */
	uint64_t log_entries;     /* command entries applied since the last snapshot */
	unsigned threshold;       /* the snapshot threshold last given to raft (0: default) */
	/* Byte bound of the log since the last snapshot (0: CS_FSM_MAX_LOG_BYTES); the
	 * effective limit is cs_fsm_log_limit. */
	uint64_t max_log_bytes;
	uint64_t last_snapshot_len; /* bytes of the last snapshot taken here */
	uint64_t byte_triggers;     /* snapshots asked for by the byte bound (metrics, tests) */
	bool fixed_threshold;       /* tests: keep whatever threshold was set */
};

/*
 * Entries between snapshots for a state of `snap_len` bytes and entries of `avg_entry`
 * bytes on average. A snapshot serialises the whole state, so a fixed entry count would
 * copy a large store every few hundred batches; instead the log may grow to about half
 * the state (4 MiB .. 128 MiB) before the next snapshot, which bounds both the snapshot
 * work per written byte (~2x) and the log held in memory. Clamped to [512, 262144].
 */
unsigned cs_fsm_snapshot_threshold(uint64_t snap_len, uint64_t avg_entry);

/*
 * The in-memory raft log is bounded in bytes, not entries: once the command bytes
 * applied since the last snapshot reach cs_fsm_log_limit(f) — half the last snapshot's
 * size, clamped to [CS_FSM_MIN_LOG_BYTES, max_log_bytes] (so a small store is not
 * snapshotted on every write, and a big one does not hold gigabytes of log) — the FSM
 * sets raft's entry threshold to 1 so that raft snapshots after that apply; finalize
 * restores the count threshold. The entries kept behind a snapshot (raft's `trailing`)
 * are set at each snapshot to a quarter of the limit in bytes, from the average entry
 * size, within [CS_FSM_TRAILING_MIN, CS_FSM_TRAILING_MAX] entries. The limit is
 * raised by 0, 12.5, 25 or 37.5 % by raft id so that nodes do not all snapshot at once. Worst case
 * held in memory: about 1.25 × the limit plus the entries applied while a snapshot is written.
 */
#define CS_FSM_MAX_LOG_BYTES ((uint64_t)128 << 20)
#define CS_FSM_MIN_LOG_BYTES ((uint64_t)4 << 20)
#define CS_FSM_TRAILING_MIN  16
#define CS_FSM_TRAILING_MAX  512
uint64_t cs_fsm_log_limit(const struct cs_fsm *f);

/* Fill `fsm` (version 3) to drive `store`. `f` must outlive the raft instance. */
void cs_fsm_init(struct cs_fsm *f, struct raft_fsm *fsm, struct cs_store *store);
void cs_fsm_close(struct cs_fsm *f);

#endif
