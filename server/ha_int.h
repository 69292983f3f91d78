/*
 * Internals shared by the files of the HA module (server/ha.h is the interface):
 *   ha.c       the node's lifecycle: raft and cluster port start/stop, forwarding,
 *              membership changes, the tick;
 *   ha_step.c  step-down, stop-after-replication and stuck-follower ticks;
 *   ha_join.c  the join's environment (raft/join.h holds the protocol and its states);
 *   ha_sys.c   the HA sys/ endpoints and the leader side of the join.
 * Everything here runs on the loop thread unless a comment says otherwise.
 */
#ifndef CS_SERVER_HA_INT_H
#define CS_SERVER_HA_INT_H

#include "raft/autopilot.h"
#include "raft/cluster.h"
#include "raft/join.h"
#include "raft/transport.h"
#include "server/core.h"
#include "storage/cluster_tls.h"

#define LEADER_PATH    "core/leader"
#define REMOVED_PREFIX "core/raft/removed/"
#define TICK_MS        100
#define JOIN_STALL_MS  30000 /* joined but nothing replicated: ask again */
#define STEP_DRAIN_MS  2000
#define STUCK_MS       5000 /* follower match index frozen while lagging */
#define ELECTION_MS    300  /* raft timing at performance_multiplier 1 */
#define HEARTBEAT_MS   50

enum change_kind { CHANGE_ADD, CHANGE_ASSIGN };

struct change {
	struct change *next;
	enum change_kind kind;
	raft_id id;
	int role;
	char address[256];
};

struct cs_ha {
	struct cs_core *core;
	uv_timer_t tick;
	/* cluster TLS */
	struct cs_cluster_cred ca, me;
	SSL_CTX *server_ctx, *client_ctx;
	struct cs_cluster *cl;
	struct raft_uv_transport transport;
	bool transport_ready;
	struct cs_http_listener *fwd_listener;
	struct cs_forwarder *fw;
	char leader_addr[256];
	raft_id leader_id;
	/* lifecycle */
	bool running, stopping;
	int stop_pending;
	void (*stop_cb)(struct cs_core *core);
	bool removed;
	uint64_t admitted_index; /* <data>/raft/admitted: see cs_autopilot_marker_removes */
	bool shutting_down;
	void (*shutdown_cb)(struct cs_core *core);
	bool advertised;
	bool restore_reload;     /* a snapshot restore applied: restart the lease manager */
	bool restart_after_stop; /* unsealed while raft was still stopping */
	/* sealed by a forced restore while leading: keep raft up until the followers have
	 * the restore too (they seal themselves when they apply it) */
	bool stop_when_replicated;
	uint64_t stop_deadline, all_matched_at;
	int open_handles; /* shutdown: the tick and the joiner still closing */
	/* followers whose match index stopped moving (stuck_tick) */
	struct {
		raft_id id;
		raft_index match;
		uint64_t since;
	} lag[16];
	uint64_t last_forced_snapshot;
	/* step-down */
	bool stepping_down, transfer_pending;
	uint64_t step_started;
	struct raft_transfer transfer;
	/* membership changes, one at a time */
	struct change *changes;
	struct raft_change change_req;
	bool change_pending;
	/* joiner side (raft/join.h; ha_join.c is its environment) */
	struct cs_join join;
	struct cs_cluster_cred minted; /* the leader's certificate for this node's join key */
	void (*join_close_cb)(struct cs_ha *ha);
};

static inline struct cs_ha *ha_of(const struct cs_core *core)
{
	return core->ha;
}

static inline bool is_dev(const struct cs_core *core)
{
	return core->cfg->dev;
}

/* ---------------------------------------------------------------- ha.c */

/* "https://1.2.3.4:8201" → "1.2.3.4:8201" */
const char *cs_ha_strip_scheme(const char *a);
/* Host part of "ip:port" / "[v6]:port" into out. */
void cs_ha_host_of(const char *addr, char *out, size_t n);
/* The cluster address this node advertises (cluster_addr, else the listener's). */
const char *cs_ha_cluster_addr(const struct cs_core *core);
/* Record raft id `id` at core/raft/nodes/<id> (the autopilot's member record). */
void cs_ha_put_node_info(struct cs_txn *txn, raft_id id, const char *node_id, const char *api_addr,
			 const char *cluster_addr, bool non_voter);
/* Queue a membership change (applied one at a time while this node leads). */
void cs_ha_queue_change(struct cs_core *core, enum change_kind kind, raft_id id, int role,
			const char *address);
/* Start raft (and, outside -dev, the cluster port). bootstrap: a new one-voter cluster. */
int cs_ha_start(struct cs_core *core, bool bootstrap);
/* <data>/raft holds raft metadata (this node has been part of a cluster). */
bool cs_ha_raft_dir_has_state(struct cs_core *core);
/* Record (in memory and in <data>/raft/admitted) the index at which the leader admitted
 * this node's join; 0 records nothing. */
void cs_ha_set_admitted(struct cs_core *core, uint64_t index);
/* listener cluster_ca_cert_file/key_file: the operator's CA replaces the generated or
 * replicated one. 0 when none is configured or it loaded; else CS_EINVAL + errmsg. */
int cs_ha_config_ca_load(struct cs_core *core);

/* ---------------------------------------------------------------- ha_step.c */

/* Begin a step-down (sys/step-down on the active node of a multi-voter cluster). */
void cs_ha_step_down_begin(struct cs_core *core);
/* The forced-restore and stuck-follower work of one tick (before the others). */
void cs_ha_leader_tick(struct cs_core *core);
/* A pending step-down: transfer leadership once writes drained (late in the tick). */
void cs_ha_step_down_tick(struct cs_core *core);

/* ---------------------------------------------------------------- ha_join.c */

/* The joiner (an idle state machine); with retry_join blocks in the config and no cluster
 * yet, start asking their leaders (cs_ha_init). */
void cs_ha_join_init(struct cs_ha *ha);
/* sys/storage/raft/join: this one leader as the target; start seeking. */
void cs_ha_join_request(struct cs_ha *ha, const char *leader, const char *ca, const char *cert,
			const char *key, const char *sni, bool retry, bool non_voter);
/* No join under way. */
bool cs_ha_join_idle(const struct cs_ha *ha);
/* Shutdown: stop the joiner; cb runs once its handles closed. */
void cs_ha_join_close(struct cs_ha *ha, void (*cb)(struct cs_ha *ha));
/* Joined and raft runs: unseal once the keyring replicated, ask again when stalled. */
void cs_ha_join_sync_tick(struct cs_core *core);

#endif
