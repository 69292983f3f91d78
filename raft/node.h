/*
 * One raft node per process: c-raft 0.15 with raft_uv disk I/O, the LMDB FSM, the
 * committer's proposer, and leadership tracking.
 *
 * Lifecycle (loop thread only):
 *   cs_raft_node_init    raft_uv_init + raft_init (disk checks; loads nothing yet)
 *   cs_raft_node_bootstrap  once per cluster, on a fresh data dir (sys/init)
 *   cs_raft_node_start   raft_start: replays the log into LMDB (skipping what LMDB has)
 *   ... leadership changes are polled from a uv_prepare/uv_check pair; a new leader
 *       issues a raft_barrier and only becomes *active* when it applied (docs/architecture.md, C6)
 *   cs_raft_node_close   deferred raft_close (never from inside a raft callback);
 *                        leadership transfer first when leading with other voters
 *
 * Failure modes:
 * - apply callback status other than 0 / NOTLEADER / LEADERSHIPLOST / SHUTDOWN /
 *   CANCELED: a disk error on the leader → abort() (fail-stop, docs/architecture.md, C10).
 * - leadership lost: storage fails every pending write (cs_storage_fail_all) and the
 *   on_active(false) hook runs.
 *
 * Transport: cs_raft_node_init uses a single-node transport (listens nowhere, refuses
 * outbound connections), which is all a one-voter configuration (dev mode) needs.
 * cs_raft_node_init_transport takes the cluster's mutual-TLS transport
 * (raft/transport.h) instead; the caller owns it and frees it after the node closed.
 */
#ifndef CS_RAFT_NODE_H
#define CS_RAFT_NODE_H

#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <uv.h>

#include "raft/fsm.h"
#include "storage/txn.h"

struct cs_raft_node;
/* Loop thread. true: from the barrier callback, once the leader may write; false: from
 * the monitor (or the close path) after every pending commit failed. It may commit. */
typedef void (*cs_raft_active_cb)(void *ctx, bool active);
typedef void (*cs_raft_close_cb)(struct cs_raft_node *n);

#define CS_RAFT_MAX_EXPECTED 16

struct cs_raft_node {
	uv_loop_t *loop;
	struct cs_storage *st;
	struct raft raft;
	struct raft_io io;
	struct raft_uv_transport transport; /* the built-in single-node transport */
	struct raft_uv_transport *tp;       /* the one raft uses: &transport or the caller's */
	struct raft_fsm fsm;
	struct cs_fsm fsm_impl;
	raft_id id;
	char address[256];
	char dir[4096];   /* <data_dir>/raft */
	bool initialized; /* raft_init done */
	bool started;     /* raft_start done */
	bool closing;
	int last_state;
	bool active; /* leader whose post-election barrier applied */
	bool barrier_pending;
	struct raft_barrier barrier;
	uv_prepare_t prepare;
	uv_check_t check;
	uv_timer_t close_timer;
	cs_raft_active_cb on_active;
	void *cb_ctx;
	cs_raft_close_cb close_cb;
	char errmsg[512];
	/* private to node.c */
	bool handles_ready;  /* prepare, check and close_timer initialised */
	int open_handles;    /* our handles not yet closed (close path) */
	bool raft_closing;   /* raft_close called */
	bool transfer_tried; /* leadership transfer attempted before closing */
	bool raft_closed;    /* raft's close callback ran */
	/* raft_uv's close and raft's callback for it, wrapped to fire once (node.c) */
	void (*uv_io_close)(struct raft_io *io, raft_io_close_cb cb);
	raft_io_close_cb raft_io_close_cb;
	bool io_close_fired;
	/* raft_uv's disk writes, wrapped so that a failure stops the process (node.c) */
	int (*uv_append)(struct raft_io *io, struct raft_io_append *req,
			 const struct raft_entry entries[], unsigned n, raft_io_append_cb cb);
	int (*uv_truncate)(struct raft_io *io, raft_index index);
	int (*uv_set_term)(struct raft_io *io, raft_term term);
	int (*uv_set_vote)(struct raft_io *io, raft_id server_id);
	struct raft_transfer transfer;
	raft_term leader_term;            /* term in which last_state became RAFT_LEADER */
	raft_term barrier_term;           /* term of the pending post-election barrier */
	uint64_t proposals_inflight;      /* raft_apply calls whose callback has not run */
	struct raft_barrier snap_barrier; /* cs_raft_node_force_snapshot */
	/* cs_raft_node_expect_peers: whom a joiner accepts before its configuration arrives */
	struct {
		raft_id id;
		char address[256];
	} expected[CS_RAFT_MAX_EXPECTED];
	unsigned n_expected;
	bool snap_barrier_pending;
};

/* Stable raft id (non-zero) derived from a node_id string. */
raft_id cs_raft_id_from_name(const char *node_id);

/*
 * Prepare the node: <data_dir>/raft is created (0700). `st` must be open. The proposer
 * of `st` is set to this node; it accepts proposals only while the node is active (a
 * leader whose post-election barrier applied) and refuses them otherwise, so commits on
 * a standby fail synchronously with CS_ENOTACTIVE. Close the node before closing `st`.
 * Returns 0, CS_EINVAL (id 0, empty or long address, long path) or CS_EIO, with errmsg;
 * on failure nothing needs releasing, but cs_raft_node_close still works.
 */
int cs_raft_node_init(struct cs_raft_node *n, uv_loop_t *loop, struct cs_storage *st,
		      const char *data_dir, raft_id id, const char *address,
		      cs_raft_active_cb on_active, void *ctx);
/*
 * As cs_raft_node_init, but raft talks to its peers through `t`, a transport the caller
 * built (cs_transport_init) and still owns: it must stay alive until this node's close
 * callback ran, and is released by the caller afterwards (cs_transport_free). Raft calls
 * t->init here, t->listen in cs_raft_node_start and t->close while closing. With t NULL
 * this is cs_raft_node_init.
 */
int cs_raft_node_init_transport(struct cs_raft_node *n, uv_loop_t *loop, struct cs_storage *st,
				const char *data_dir, raft_id id, const char *address,
				struct raft_uv_transport *t, cs_raft_active_cb on_active,
				void *ctx);
/* True if the raft directory already holds state (bootstrapped or joined before). */
bool cs_raft_node_has_state(const struct cs_raft_node *n);
/* Bootstrap a one-voter configuration {self}. Only on a fresh directory, before start;
 * a directory that already has state returns 0 (RAFT_CANTBOOTSTRAP = done before). */
int cs_raft_node_bootstrap(struct cs_raft_node *n);
/*
 * Bootstrap a configuration of `n_voters` voters (ids[i] at addresses[i]; it should
 * include this node). Every initial node must be bootstrapped with the identical list
 * (same order) or the clusters diverge at entry 1; a node that joins later is never
 * bootstrapped. Same rules as cs_raft_node_bootstrap otherwise (CS_EINVAL on a
 * zero id or empty list).
 */
int cs_raft_node_bootstrap_voters(struct cs_raft_node *n, const raft_id *ids,
				  const char *const *addresses, unsigned n_voters);
/* Raft timing (after init, before start): election timeout and heartbeat in ms (the
 * heartbeat also paces reconnects to a restarted peer). Defaults 1000/100 ms. */
void cs_raft_node_set_timing(struct cs_raft_node *n, unsigned election_ms, unsigned heartbeat_ms);
int cs_raft_node_start(struct cs_raft_node *n);
/*
 * Leader only: take a snapshot at the next applied entry (a barrier is appended to get
 * one), then return to the adaptive threshold. Unsticks a follower that c-raft 0.15
 * would otherwise probe forever: one whose own snapshot is newer than the leader's and
 * who lacks the entry just below the leader's snapshot (every AppendEntries is rejected,
 * the leader walks back, re-sends its older snapshot, which changes nothing, and starts
 * over). A newer leader snapshot is installed and ends the loop. 0 or a RAFT_* code.
 */
int cs_raft_node_force_snapshot(struct cs_raft_node *n);
bool cs_raft_node_is_leader(const struct cs_raft_node *n);
/*
 * A cs_transport_claim_fn (ctx = the node): the peer must be a member of the node's
 * current raft configuration (a leader's includes the node it is adding: raft_add
 * changes it at once) and claim exactly the address recorded there. A certificate signed
 * by the cluster CA is not enough: a node removed from the cluster, or one that was
 * never added, is refused. Only while the configuration is still empty (a joining node,
 * before the leader's first entries or snapshot) are the peers given to
 * cs_raft_node_expect_peers accepted instead. Loop thread.
 */
bool cs_raft_node_check_claim(void *node, raft_id id, const char *address);
/*
 * A joining node: the members the leader named in its join answer (up to
 * CS_RAFT_MAX_EXPECTED; more are ignored), accepted by check_claim until the node's own
 * configuration is non-empty. Call after init (which clears the list). Copies ids and
 * addresses. Loop thread.
 */
void cs_raft_node_expect_peers(struct cs_raft_node *n, const raft_id *ids,
			       const char *const *addresses, unsigned count);
/* Close asynchronously; cb runs once everything is released (may be NULL) and n may be
 * freed from it. Safe to call from any callback (raft_close is deferred to a zero timer);
 * safe when never started or when init failed; later calls are ignored. In-flight
 * commits fail with CS_ESHUTDOWN and on_active(false) runs if the node was active. Only
 * for a zeroed node that init never saw does cb run synchronously. */
void cs_raft_node_close(struct cs_raft_node *n, cs_raft_close_cb cb);

#endif
