/*
 * Step-down and the leader's other periodic duties (see ha_int.h):
 * - sys/step-down drains in-flight writes (at most STEP_DRAIN_MS), then transfers
 *   leadership; requests arriving meanwhile wait (cs_ha_stepping_down) and are retried,
 *   so they forward to the new leader. A transfer that fails leaves this node active.
 * - After a forced restore sealed the leader, raft stays up until the followers hold the
 *   restore too (they seal themselves when they apply it), or 3 s.
 * - A follower stuck in c-raft's probe loop gets a fresh snapshot.
 * Loop thread, from the HA tick.
 */
#include <string.h>

#include "lib/log.h"
#include "lib/util.h"
#include "server/ha.h"
#include "server/ha_int.h"

static void transfer_cb(struct raft_transfer *req)
{
	struct cs_core *core = req->data;
	struct cs_ha *ha = ha_of(core);
	ha->transfer_pending = false;
	ha->stepping_down = false;
	raft_id id = 0;
	const char *addr = NULL;
	if (ha->running)
		raft_leader(&core->node.raft, &id, &addr);
	if (id == core->node.id)
		cs_warn("ha: step-down: leadership transfer did not complete; still active");
	else
		cs_info("ha: stepped down; new leader %s", addr ? addr : "(unknown yet)");
	cs_core_retry_waiting(core);
}

void cs_ha_step_down_tick(struct cs_core *core)
{
	struct cs_ha *ha = ha_of(core);
	if (!ha->stepping_down || ha->transfer_pending)
		return;
	if (!ha->running || !core->active) {
		ha->stepping_down = false;
		cs_core_retry_waiting(core);
		return;
	}
	bool drained = cs_storage_pending(&core->st) == 0 && core->node.proposals_inflight == 0 &&
		       !ha->change_pending;
	if (!drained && cs_mono_ms() - ha->step_started < STEP_DRAIN_MS)
		return;
	ha->transfer.data = core;
	int rv = raft_transfer(&core->node.raft, &ha->transfer, 0, transfer_cb);
	if (rv != 0) {
		cs_warn("ha: step-down: %s", raft_strerror(rv));
		ha->stepping_down = false;
		cs_core_retry_waiting(core);
		return;
	}
	ha->transfer_pending = true;
}

/* After a forced restore sealed the leader: stop raft once every follower holds the
 * log up to the restore (plus a few heartbeats to learn it committed), or after 3 s. */
static void stop_when_replicated_tick(struct cs_core *core)
{
	struct cs_ha *ha = ha_of(core);
	if (!ha->stop_when_replicated)
		return;
	struct raft *r = &core->node.raft;
	bool matched = r->state == RAFT_LEADER && r->leader_state.progress;
	for (unsigned i = 0; matched && i < r->configuration.n; i++)
		if (r->configuration.servers[i].id != core->node.id &&
		    r->leader_state.progress[i].match_index < r->commit_index)
			matched = false;
	uint64_t now = cs_mono_ms();
	if (matched && !ha->all_matched_at)
		ha->all_matched_at = now;
	if (r->state == RAFT_LEADER && now < ha->stop_deadline &&
	    (!ha->all_matched_at || now - ha->all_matched_at < 4 * HEARTBEAT_MS))
		return;
	ha->stop_when_replicated = false;
	if (!core->kr)
		cs_ha_stop(core, NULL);
}

/*
 * Leader: a reachable follower whose match index has not moved for STUCK_MS while it
 * lags the commit index is caught in c-raft 0.15's probe loop (see
 * cs_raft_node_force_snapshot): take a fresh snapshot, which the leader then sends it.
 */
static void stuck_follower_tick(struct cs_core *core)
{
	struct cs_ha *ha = ha_of(core);
	struct raft *r = &core->node.raft;
	if (!ha->running || ha->stopping || !core->active || r->state != RAFT_LEADER ||
	    !r->leader_state.progress)
		return;
	uint64_t now = cs_mono_ms();
	bool stuck = false;
	for (unsigned i = 0; i < r->configuration.n && i < CS_ARRAY_LEN(ha->lag); i++) {
		const struct raft_server *srv = &r->configuration.servers[i];
		const struct raft_progress *p = &r->leader_state.progress[i];
		if (ha->lag[i].id != srv->id || p->match_index != ha->lag[i].match ||
		    p->match_index >= r->commit_index || !p->recent_recv) {
			ha->lag[i].id = srv->id;
			ha->lag[i].match = p->match_index;
			ha->lag[i].since = now;
			continue;
		}
		if (srv->id != core->node.id && srv->role != RAFT_SPARE &&
		    now - ha->lag[i].since > STUCK_MS)
			stuck = true;
	}
	if (!stuck || now - ha->last_forced_snapshot < 3 * STUCK_MS)
		return;
	ha->last_forced_snapshot = now;
	int rv = cs_raft_node_force_snapshot(&core->node);
	cs_warn("ha: a follower has not caught up for %d s; taking a snapshot to send it%s%s",
		STUCK_MS / 1000, rv ? ": " : "", rv ? raft_strerror(rv) : "");
}

void cs_ha_step_down_begin(struct cs_core *core)
{
	struct cs_ha *ha = ha_of(core);
	if (!ha->stepping_down) {
		ha->stepping_down = true;
		ha->step_started = cs_mono_ms();
		cs_info("ha: step-down requested: draining writes, then transferring leadership");
	}
}

void cs_ha_leader_tick(struct cs_core *core)
{
	stop_when_replicated_tick(core);
	stuck_follower_tick(core);
}
