/*
 * Autopilot: membership upkeep on the active node
 * (https://developer.hashicorp.com/vault/docs/concepts/integrated-storage/autopilot), and the one
 * executor through which every raft membership change of custos goes.
 *
 * What it does, every tick (CS_AUTOPILOT_SAMPLE_MS) while the node is active:
 *   - contact tracking: c-raft 0.15 exposes no last-contact time, so a server counts as
 *     "contacted now" when its progress entry has recent_recv set (raft resets it every
 *     election timeout) or its match_index advanced since the previous tick;
 *   - every update interval (default 2 s): reload the configuration from storage,
 *     recompute health and stable_since, then reconcile: promote one stable non-voter
 *     (RAFT_STANDBY, with a member record, not a permanent non-voter) to voter after
 *     server_stabilization_time of continuous health; with cleanup_dead_servers, remove
 *     one server silent for dead_server_last_contact_threshold while voters stay
 *     >= min_quorum. One change at a time; a busy raft (RAFT_CANTCHANGE, a change or a
 *     promotion pending) is retried at the next update.
 *
 * Storage (all behind the barrier except the removal marker):
 *   core/raft/nodes/<raft id in decimal>  member record {"node_id","api_addr",
 *                                         "cluster_addr","non_voter"} (written by join)
 *   core/raft/autopilot/configuration     the user-supplied configuration fields only
 *                                         (Vault persists the overrides, not defaults)
 *   core/raft/removed/<node_id>           PLAINTEXT {"removed_at","raft_id","index"}:
 *                                         committed before a peer is removed, so that
 *                                         the peer (which may hold no keyring) learns
 *                                         it; "index" is the leader's last log index
 *                                         when it wrote the marker (see
 *                                         cs_autopilot_marker_removes)
 *
 * Membership changes (cs_autopilot_change), happy path:
 *   pre-write (removal marker / member record) committed → [removal only: wait until the
 *   target acknowledged the marker's index and a heartbeat carried the commit index to
 *   it, at most CS_AUTOPILOT_REMOVE_WAIT_MS] → raft_remove / raft_assign → raft's change
 *   callback → cb(0) → [removal: the member record is deleted].
 * Failure modes: the pre-write commit fails (leadership lost, sealed, shutdown) → cb with
 * that status, raft untouched; the node stops being active while waiting → cb
 * CS_ENOTACTIVE; raft refuses synchronously (CANTCHANGE → CS_EBUSY, NOTLEADER →
 * CS_ENOTACTIVE, others → CS_EINTERNAL, message kept); raft's callback reports failure
 * (LEADERSHIPLOST → CS_ELEADERSHIP: outcome unknown; NOCONNECTION: a promotion's
 * catch-up rounds failed → CS_EINTERNAL). The callback always runs exactly once, on the
 * loop thread, never synchronously from cs_autopilot_change. A raft change refused with
 * RAFT_CANTCHANGE (the join code's change in flight) is retried for
 * CS_AUTOPILOT_CHANGE_RETRY_MS before it fails with CS_EBUSY.
 *
 * Everything here runs on the loop thread. The pure functions (cs_ap_*, config) touch no
 * global state and take the clock as an argument, for unit tests.
 *
 * Caveats:
 * - Follower terms are not visible on the leader in 0.15: last_term is the leader's
 *   current term for every server.
 * - A server with no member record yet (a join in progress) is never promoted.
 * - The join code adds servers with raft_add/raft_assign outside this executor; it must
 *   retry on RAFT_CANTCHANGE (an autopilot promotion may be in flight).
 */
#ifndef CS_RAFT_AUTOPILOT_H
#define CS_RAFT_AUTOPILOT_H

#include <cjson/cJSON.h>
#include <raft.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "storage/txn.h"

struct cs_raft_node;

/*
 * What autopilot needs of the node, and nothing more (issue 10: a narrow environment
 * instead of the whole core): the raft node (its raft and this server's id), the store,
 * the loop, a clock, this node's configured name, and two questions whose answers change
 * (seal, leadership). The core fills one at start-up and passes the same pointer to
 * every call below; it must stay valid while autopilot may run.
 */
struct cs_autopilot_env {
	uv_loop_t *loop;
	struct cs_raft_node *node;
	struct cs_storage *st;
	const char *node_id; /* this node's configured node_id, or NULL (then its raft id) */
	/* The barrier keyring, NULL while sealed. */
	const struct cs_keyring *(*keyring)(void *ctx);
	/* Whether the node is the active node (leader whose election barrier applied). */
	bool (*is_active)(void *ctx);
	/* Monotonic milliseconds; NULL: cs_mono_ms. */
	uint64_t (*now_ms)(void *ctx);
	void *ctx;
	/* The tracker and change executor of this node (cs_autopilot_state_new; owned by
	 * whoever owns the env, freed with cs_autopilot_state_free once its timers closed). */
	struct cs_autopilot_state *state;
};
struct cs_autopilot_state *cs_autopilot_state_new(void);
void cs_autopilot_state_free(struct cs_autopilot_state *state);

#define CS_AUTOPILOT_SAMPLE_MS       250
#define CS_AUTOPILOT_UPDATE_MS       2000
#define CS_AUTOPILOT_REMOVE_WAIT_MS  3000
#define CS_AUTOPILOT_CHANGE_RETRY_MS 5000
#define CS_AUTOPILOT_NODES_PREFIX    "core/raft/nodes/"
#define CS_AUTOPILOT_REMOVED_PREFIX  "core/raft/removed/"
#define CS_AUTOPILOT_CONFIG_KEY      "core/raft/autopilot/configuration"
#define CS_AUTOPILOT_NODE_ID_MAX     256

/* ---------------------------------------------------------------- configuration */

/* Effective configuration; durations in seconds. */
struct cs_autopilot_config {
	bool cleanup_dead_servers;                  /* false */
	int64_t last_contact_threshold;             /* 10 s */
	int64_t dead_server_last_contact_threshold; /* 24 h */
	int64_t max_trailing_logs;                  /* 1000 */
	int64_t min_quorum;                         /* 0 (unset) */
	int64_t server_stabilization_time;          /* 10 s */
	bool disable_upgrade_migration;             /* false (accepted, no effect) */
};

void cs_autopilot_config_defaults(struct cs_autopilot_config *c);
/*
 * Merge request fields into `overrides` (the stored JSON object of user-supplied
 * fields). `in` holds any subset of the API fields: bools, integers (seconds for the
 * durations) or duration strings ("10s", "1m"). Returns 0, or CS_EINVAL with errmsg for
 * a wrong type or a negative number (then `overrides` is unchanged).
 */
int cs_autopilot_config_merge(cJSON *overrides, const cJSON *in, char *errmsg, size_t errlen);
/* Effective configuration = defaults overlaid with `overrides` (may be NULL). As in
 * Vault, a zero duration or count means "default"; unknown keys are ignored. */
void cs_autopilot_config_apply(struct cs_autopilot_config *c, const cJSON *overrides);
/* Vault's checks on the effective configuration: with cleanup_dead_servers, min_quorum
 * >= 3 and dead_server_last_contact_threshold >= 1m. 0 or CS_EINVAL with errmsg. */
int cs_autopilot_config_validate(const struct cs_autopilot_config *c, char *errmsg, size_t errlen);
/* The API's read shape (durations as Go strings: "10s", "24h0m0s"). New object. */
cJSON *cs_autopilot_config_json(const struct cs_autopilot_config *c);
/* Load the effective configuration from storage (defaults when absent or unreadable). */
int cs_autopilot_config_load(struct cs_txn *txn, struct cs_autopilot_config *c, cJSON **overrides);

/*
 * Whether the removal marker `val` (the value of core/raft/removed/<node_id>) removes
 * the incarnation of that node that was admitted at `admitted_index`: the leader's last
 * log index when it accepted the node's join answer (0: not known, e.g. a founding
 * member or a data directory from before the index was recorded — every marker counts).
 * A node wiped and joined again under its old node_id replays the marker of its earlier
 * removal while it catches up; that marker was written below admitted_index (it was
 * committed before the rejoin), while a removal of this incarnation writes its marker at
 * or above the index of the configuration entry that added it, which is above
 * admitted_index. A marker without an index predates the rejoin. Pure.
 */
bool cs_autopilot_marker_removes(const char *val, size_t len, uint64_t admitted_index);

/* ---------------------------------------------------------------- member records */

struct cs_autopilot_member {
	char node_id[CS_AUTOPILOT_NODE_ID_MAX];
	char api_addr[256];
	char cluster_addr[256];
	bool non_voter; /* permanent non-voter: autopilot never promotes it */
};

/* Read core/raft/nodes/<id>. 0, CS_ENOTFOUND, or a storage error. */
int cs_autopilot_member_get(struct cs_txn *txn, raft_id id, struct cs_autopilot_member *out);
/* Write core/raft/nodes/<id> (barrier-encrypted JSON) into txn. */
int cs_autopilot_member_put(struct cs_txn *txn, raft_id id, const struct cs_autopilot_member *m);
/* The node_id of raft server `id` (its record, else the id in decimal). */
void cs_autopilot_member_name(struct cs_txn *txn, raft_id id, char *out, size_t outlen);
/* As cs_autopilot_member_name, but this node is always named by its own node_id (its
 * record may not be written yet). */
void cs_autopilot_server_name(const struct cs_autopilot_env *env, struct cs_txn *txn, raft_id id,
			      char *out, size_t outlen);

/* ---------------------------------------------------------------- pure server logic */

/* What autopilot knows of one server. Times are monotonic milliseconds. */
struct cs_ap_server {
	raft_id id;
	int role;              /* RAFT_VOTER, RAFT_STANDBY or RAFT_SPARE */
	bool leader;           /* this node */
	bool known;            /* has a member record */
	bool non_voter;        /* the record says permanent non-voter */
	uint64_t first_seen;   /* when autopilot first saw it in the configuration */
	uint64_t last_contact; /* 0: never heard from since first_seen */
	uint64_t match_index;
	bool healthy;
	uint64_t stable_since; /* start of the current healthy period (valid if healthy) */
};

/* Whether `s` is healthy at `now` given the leader's last log index: the leader always;
 * others need contact within last_contact_threshold and to trail by at most
 * max_trailing_logs entries. */
bool cs_ap_healthy(const struct cs_autopilot_config *c, const struct cs_ap_server *s, uint64_t now,
		   uint64_t last_index);
/* Recompute healthy for every server; stable_since restarts on each unhealthy→healthy
 * transition. */
void cs_ap_update_health(const struct cs_autopilot_config *c, struct cs_ap_server *s, size_t n,
			 uint64_t now, uint64_t last_index);
/* Milliseconds since the last contact (0 for the leader; since first_seen if never). */
uint64_t cs_ap_since_contact(const struct cs_ap_server *s, uint64_t now);
/* Whether autopilot would make `s` a voter: a standby with a record, not pinned. */
bool cs_ap_promotable(const struct cs_ap_server *s);
/* Healthy voters − quorum (voters/2+1), never below 0. */
int cs_ap_failure_tolerance(const struct cs_ap_server *s, size_t n);
/* The same, counting promotable non-voters as voters. */
int cs_ap_optimistic_failure_tolerance(const struct cs_ap_server *s, size_t n);
/* Every voter healthy (and at least one voter). */
bool cs_ap_cluster_healthy(const struct cs_ap_server *s, size_t n);
/* Index of the server to promote now, or -1. */
long cs_ap_pick_promotion(const struct cs_autopilot_config *c, const struct cs_ap_server *s,
			  size_t n, uint64_t now);
/* Index of the dead server to remove now (cleanup on; non-voters first; a voter only
 * while voters − 1 >= min_quorum), or -1. */
long cs_ap_pick_dead(const struct cs_autopilot_config *c, const struct cs_ap_server *s, size_t n,
		     uint64_t now);
/* Go-style duration from milliseconds: "0s", "516ms", "2.5s", "1m3.25s". out >= 32. */
void cs_ap_format_ms(uint64_t ms, char *out, size_t outlen);

/* ---------------------------------------------------------------- runtime */

/* The node became active (true: start tracking and reconciling) or stopped being active
 * (false: stop; a change in flight completes through raft's callback). Called by the
 * core's on_active hook. Loop thread. */
void cs_autopilot_set_active(const struct cs_autopilot_env *env, bool active);
/* The configuration changed in storage: reload at the next tick. */
void cs_autopilot_config_changed(const struct cs_autopilot_env *env);
/* sys/storage/raft/autopilot/state's data object (names read through txn). NULL when
 * not active. New object. */
cJSON *cs_autopilot_state_json(const struct cs_autopilot_env *env, struct cs_txn *txn);

enum cs_ap_change_kind {
	CS_AP_REMOVE,  /* marker, wait, raft_remove, delete the member record */
	CS_AP_PROMOTE, /* member record non_voter=false, raft_assign VOTER */
	CS_AP_DEMOTE,  /* member record non_voter=true, raft_assign STANDBY */
};
/* status 0 or a CS_E* code; errmsg is "" or a message for the client (no secrets). */
typedef void (*cs_ap_change_cb)(void *ctx, int status, const char *errmsg);
/*
 * Start a membership change of server `id` (named `node_id`). Returns 0 and calls cb
 * later (exactly once, loop thread), or returns CS_EBUSY (another change of ours is in flight),
 * CS_ENOTACTIVE, CS_EINVAL (id not in the configuration) or a storage error, with
 * errmsg, and never calls cb. A server already in the wanted role succeeds after the
 * record write. Loop thread.
 */
int cs_autopilot_change(const struct cs_autopilot_env *env, enum cs_ap_change_kind kind, raft_id id,
			const char *node_id, cs_ap_change_cb cb, void *ctx, char *errmsg,
			size_t errlen);
/* Whether a membership change (ours or raft's) is pending. */
bool cs_autopilot_change_busy(const struct cs_autopilot_env *env);

#endif
