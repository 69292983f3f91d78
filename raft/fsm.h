/*
 * The raft state machine: a thin adaptor from c-raft 0.15's FSM v3 interface to the
 * LMDB store (storage/store.h). See shared/c-raft.md §3 for the rules this follows:
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
};

/* Fill `fsm` (version 3) to drive `store`. `f` must outlive the raft instance. */
void cs_fsm_init(struct cs_fsm *f, struct raft_fsm *fsm, struct cs_store *store);
void cs_fsm_close(struct cs_fsm *f);

#endif
