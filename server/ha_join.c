/*
 * The joiner's environment: what the join state machine (raft/join.h, which holds the
 * protocol, its states and its HTTP) needs from this node — the seal config bounds, the
 * unseal progress, the cluster CA and raft start — and the node's entry points into it
 * (sys/storage/raft/join, retry_join, unseal, sys/init's cancel, the tick).
 *
 * SYNCING is watched from the HA tick: the barrier opens with the KEK once the keyring
 * replicated (SYNCED); nothing replicated and no term for JOIN_STALL_MS stops raft and
 * asks again (REASK). Loop thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/secmem.h"
#include "lib/util.h"
#include "server/ha.h"
#include "server/ha_int.h"
#include "server/seal.h"

static void env_challenged(void *ctx, int shares, int threshold)
{
	struct cs_core *core = ctx;
	core->initialized = true;
	core->seal.shares = shares;
	core->seal.threshold = threshold;
}

static void env_cancelled(void *ctx)
{
	struct cs_core *core = ctx;
	cs_cluster_cred_free(&ha_of(core)->minted);
	core->initialized = false;
	cs_info("ha: join abandoned: this node is being initialised as a new cluster");
}

/* Accept the members the leader listed until our own configuration arrives. */
static void expect_peers(struct cs_core *core, const cJSON *peers)
{
	raft_id ids[CS_RAFT_MAX_EXPECTED];
	const char *addrs[CS_RAFT_MAX_EXPECTED];
	unsigned n = 0;
	const cJSON *p;
	cJSON_ArrayForEach(p, peers)
	{
		const cJSON *rid = cJSON_GetObjectItemCaseSensitive(p, "raft_id");
		const cJSON *addr = cJSON_GetObjectItemCaseSensitive(p, "address");
		if (n == CS_RAFT_MAX_EXPECTED || !cJSON_IsString(rid) || !cJSON_IsString(addr))
			continue;
		ids[n] = strtoull(rid->valuestring, NULL, 10);
		addrs[n++] = addr->valuestring;
	}
	cs_raft_node_expect_peers(&core->node, ids, addrs, n);
}

/* The leader accepted: run with its CA certificate and the certificate it minted (or the
 * operator's CA, which mints our own), start raft. CS_EINVAL: the operator's CA does not
 * load (the join logs "refused"); CS_EIO: raft did not start (logged here). */
static int env_accepted(void *ctx, X509 *ca, struct cs_cluster_cred *minted, const cJSON *peers)
{
	struct cs_core *core = ctx;
	struct cs_ha *ha = ha_of(core);
	cs_cluster_cred_free(&ha->ca);
	ha->ca.cert = ca;
	cs_cluster_cred_free(&ha->minted);
	ha->minted = *minted;
	*minted = (struct cs_cluster_cred){0};
	if (core->cfg->listeners[0].cluster_ca_cert_file) {
		int rc = cs_ha_config_ca_load(core); /* the operator's CA wins: we mint our own */
		cs_cluster_cred_free(&ha->minted);
		if (rc)
			return CS_EINVAL;
	}
	if (cs_ha_start(core, false)) {
		cs_error("ha: join: %s", core->errmsg);
		cs_cluster_cred_free(&ha->minted);
		return CS_EIO;
	}
	expect_peers(core, peers);
	cs_ha_set_admitted(core, ha->join.admitted_index);
	ha->join.sync_since = cs_mono_ms();
	ha->join.synced_index = core->st.store.applied_index;
	return 0;
}

/* An auto-sealed cluster's challenge: the auto seal module unwraps the key. */
static void env_auto_challenge(void *ctx, const char *type, const char *wrapped)
{
	struct cs_core *core = ctx;
	if (core->autoseal_hooks.join)
		core->autoseal_hooks.join(core, type, wrapped);
	else
		cs_error("ha: join: the cluster uses a \"%.32s\" seal; this node has none", type);
}

void cs_ha_join_init(struct cs_ha *ha)
{
	struct cs_core *core = ha->core;
	struct cs_join_env env = {
	    .ctx = core,
	    .node_id = core->cfg->node_id,
	    .cluster_addr = cs_ha_cluster_addr(core),
	    .api_addr = core->cfg->api_addr,
	    .seal_config_decode = cs_seal_config_decode,
	    .challenged = env_challenged,
	    .auto_challenge = env_auto_challenge,
	    .cancelled = env_cancelled,
	    .accepted = env_accepted,
	};
	char err[256] = "";
	if (cs_join_init(&ha->join, core->loop, &env, err, sizeof err))
		cs_error("ha: join: %s; this node cannot join a cluster", err);
	const struct cs_config *cfg = core->cfg;
	if (core->initialized || cs_ha_raft_dir_has_state(core) || cfg->n_retry_join <= 0)
		return;
	struct cs_join_target t[CS_JOIN_MAX_TARGETS];
	int n = 0;
	for (int i = 0; i < cfg->n_retry_join && n < CS_JOIN_MAX_TARGETS; i++) {
		const struct cs_retry_join *r = &cfg->retry_join[i];
		/* A node never joins itself. */
		if (cfg->api_addr && strcmp(r->leader_api_addr, cfg->api_addr) == 0)
			continue;
		t[n++] = (struct cs_join_target){r->leader_api_addr, r->leader_ca_cert,
						 r->leader_client_cert, r->leader_client_key,
						 r->leader_tls_servername};
	}
	if (n == 0 || cs_join_set_targets(&ha->join, t, n, true, cfg->retry_join_as_non_voter))
		return;
	cs_info("ha: retry_join: asking %d leader(s) for a join challenge", n);
	cs_join_fire(&ha->join, CS_JOIN_EV_START);
}

void cs_ha_join_request(struct cs_ha *ha, const char *leader, const char *ca, const char *cert,
			const char *key, const char *sni, bool retry, bool non_voter)
{
	struct cs_join_target t = {(char *)leader, (char *)ca, (char *)cert, (char *)key,
				   (char *)sni};
	if (cs_join_set_targets(&ha->join, &t, 1, retry, non_voter) == 0)
		cs_join_fire(&ha->join, CS_JOIN_EV_START);
}

bool cs_ha_join_idle(const struct cs_ha *ha)
{
	return ha->join.state == CS_JOIN_IDLE;
}

static void join_closed(struct cs_join *j)
{
	struct cs_ha *ha = CS_CONTAINER_OF(j, struct cs_ha, join);
	cs_cluster_cred_free(&ha->minted);
	if (ha->join_close_cb)
		ha->join_close_cb(ha);
}

void cs_ha_join_close(struct cs_ha *ha, void (*cb)(struct cs_ha *ha))
{
	ha->join_close_cb = cb;
	cs_join_close(&ha->join, join_closed);
}

bool cs_ha_join_cancel(struct cs_core *core)
{
	return cs_join_fire(&ha_of(core)->join, CS_JOIN_EV_CANCEL) == 0;
}

bool cs_ha_join_pending(const struct cs_core *core)
{
	const struct cs_ha *ha = ha_of(core);
	return ha && ha->join.state != CS_JOIN_IDLE && !core->kr;
}

int cs_ha_join_unsealed(struct cs_core *core, const uint8_t *kek, char *errmsg, size_t errlen)
{
	return cs_join_keys(&ha_of(core)->join, kek, errmsg, errlen);
}

void cs_ha_join_sync_tick(struct cs_core *core)
{
	struct cs_ha *ha = ha_of(core);
	struct cs_join *j = &ha->join;
	if (j->state != CS_JOIN_SYNCING || !j->kek)
		return;
	if (core->st.store.applied_index != j->synced_index) {
		j->synced_index = core->st.store.applied_index;
		j->sync_since = cs_mono_ms();
	}
	char err[256] = "";
	int rc = cs_seal_unseal_with_kek(core, j->kek, err, sizeof err);
	if (rc == 0) {
		cs_join_fire(j, CS_JOIN_EV_SYNCED);
		cs_seal_load_config(core);
		cs_info("ha: join complete: this node is an unsealed standby");
		return;
	}
	if (rc != CS_ENOTFOUND && rc != CS_EIO)
		cs_debug("ha: join: waiting for the keyring: %s", err);
	if (cs_mono_ms() - j->sync_since > JOIN_STALL_MS && !core->node.raft.current_term) {
		cs_warn("ha: join: nothing replicated for %d s; asking the leaders again",
			JOIN_STALL_MS / 1000);
		j->sync_since = cs_mono_ms();
		cs_ha_stop(core, NULL);
		cs_cluster_cred_free(&ha->minted);
		cs_join_fire(j, CS_JOIN_EV_REASK);
	}
}
