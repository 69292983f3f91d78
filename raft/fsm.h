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
	bool fixed_threshold;     /* tests: keep whatever threshold was set */
};

/*
 * Entries between snapshots for a state of `snap_len` bytes and entries of `avg_entry`
 * bytes on average. A snapshot serialises the whole state, so a fixed entry count would
 * copy a large store every few hundred batches; instead the log may grow to about half
 * the state (4 MiB .. 128 MiB) before the next snapshot, which bounds both the snapshot
 * work per written byte (~2x) and the log held in memory. Clamped to [512, 262144].
 */
unsigned cs_fsm_snapshot_threshold(uint64_t snap_len, uint64_t avg_entry);

/* Fill `fsm` (version 3) to drive `store`. `f` must outlive the raft instance. */
void cs_fsm_init(struct cs_fsm *f, struct raft_fsm *fsm, struct cs_store *store);
void cs_fsm_close(struct cs_fsm *f);

#endif
