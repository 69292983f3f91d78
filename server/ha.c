/*
 * High availability: the node's lifecycle (see ha.h for the design, ha_int.h for the
 * other files of the module). Sections: helpers, raft and cluster port lifecycle, the
 * active node, membership changes, forwarding, the tick.
 */
#include "server/ha.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/secmem.h"
#include "lib/util.h"
#include "server/forward.h"
#include "server/ha_int.h"
#include "server/http.h"
#include "server/periodic.h"
#include "server/rotate_sys.h"
#include "server/seal.h"
#include "storage/cluster_keyring.h"

const char *cs_ha_strip_scheme(const char *a)
{
	const char *p = strstr(a, "://");
	return p ? p + 3 : a;
}

void cs_ha_host_of(const char *addr, char *out, size_t n)
{
	const char *colon = strrchr(addr, ':');
	size_t len = colon ? (size_t)(colon - addr) : strlen(addr);
	if (len >= 2 && addr[0] == '[' && addr[len - 1] == ']') {
		addr++;
		len -= 2;
	}
	snprintf(out, n, "%.*s", (int)len, addr);
}

const char *cs_ha_cluster_addr(const struct cs_core *core)
{
	const char *a = core->cfg->cluster_addr;
	if (a && *a)
		return cs_ha_strip_scheme(a);
	return core->cfg->listeners[0].cluster_address;
}

/* Commit a small internal transaction; failures are logged (best effort). */
static void internal_commit_cb(void *data, int status)
{
	if (status)
		cs_warn("ha: %s: %s", (const char *)data, cs_strerror(status));
}

static void internal_commit(struct cs_txn *txn, const char *what)
{
	bool pending = false;
	int rc = cs_txn_commit(txn, internal_commit_cb, (void *)what, &pending);
	if (rc)
		cs_warn("ha: %s: %s", what, cs_strerror(rc));
}

void cs_ha_put_node_info(struct cs_txn *txn, raft_id id, const char *node_id, const char *api_addr,
			 const char *cluster_addr, bool non_voter)
{
	struct cs_autopilot_member m = {.non_voter = non_voter};
	snprintf(m.node_id, sizeof m.node_id, "%s", node_id);
	snprintf(m.api_addr, sizeof m.api_addr, "%s", api_addr ? api_addr : "");
	snprintf(m.cluster_addr, sizeof m.cluster_addr, "%s", cluster_addr);
	cs_autopilot_member_put(txn, id, &m);
}

/* ---------------------------------------------------------------- lifecycle */

static void tick_cb(uv_timer_t *t);
static void advertise(struct cs_core *core);
static int start_unsealed(struct cs_core *core);

static char *raft_file(struct cs_core *core, const char *name)
{
	size_t n = strlen(core->data_dir) + strlen(name) + 8;
	char *p = malloc(n);
	if (!p)
		abort();
	snprintf(p, n, "%s/raft/%s", core->data_dir, name);
	return p;
}

static char *removed_file(struct cs_core *core)
{
	return raft_file(core, "removed");
}

/* Persisted so that a restart while catching up still tells its own (re)admission
 * from the removal marker of an earlier incarnation with the same node_id. */
void cs_ha_set_admitted(struct cs_core *core, uint64_t index)
{
	struct cs_ha *ha = ha_of(core);
	if (!index)
		return;
	ha->admitted_index = index;
	char *p = raft_file(core, "admitted"), *tmp = raft_file(core, "admitted.tmp");
	FILE *f = fopen(tmp, "w");
	bool ok = f && fprintf(f, "%llu\n", (unsigned long long)index) > 0;
	if (f && (fflush(f) != 0 || fsync(fileno(f)) != 0))
		ok = false;
	if (f && fclose(f) != 0)
		ok = false;
	if (!ok || rename(tmp, p) != 0) {
		cs_warn("ha: cannot record the join's index in %s: %s", p, strerror(errno));
		unlink(tmp);
	}
	free(p);
	free(tmp);
}

static uint64_t admitted_load(struct cs_core *core)
{
	char *p = raft_file(core, "admitted");
	FILE *f = fopen(p, "r");
	unsigned long long v = 0;
	if (f) {
		if (fscanf(f, "%llu", &v) != 1)
			v = 0;
		fclose(f);
	}
	free(p);
	return v;
}

bool cs_ha_raft_dir_has_state(struct cs_core *core)
{
	static const char *files[] = {"metadata1", "metadata2"};
	for (size_t i = 0; i < CS_ARRAY_LEN(files); i++) {
		char path[4200];
		struct stat sb;
		snprintf(path, sizeof path, "%s/raft/%s", core->data_dir, files[i]);
		if (stat(path, &sb) == 0)
			return true;
	}
	return false;
}

int cs_ha_init(struct cs_core *core)
{
	struct cs_ha *ha = calloc(1, sizeof *ha);
	if (!ha)
		abort();
	ha->core = core;
	core->ha = ha;
	uv_timer_init(core->loop, &ha->tick);
	ha->tick.data = ha;
	uv_timer_start(&ha->tick, tick_cb, TICK_MS, TICK_MS);
	char *rf = removed_file(core);
	struct stat sb;
	if (stat(rf, &sb) == 0) {
		ha->removed = true;
		cs_warn("ha: this node was removed from its raft cluster (%s exists); it will "
			"not rejoin with this data directory",
			rf);
	}
	free(rf);
	ha->admitted_index = admitted_load(core);
	cs_ha_join_init(ha);
	return 0;
}

/* lost quorum: <data>/raft/peers.json forces the configuration (raft_recover). */
static int apply_peers_json(struct cs_core *core)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/raft/peers.json", core->data_dir);
	char *text = NULL;
	size_t len = 0;
	int e = cs_read_file(path, &text, &len);
	if (e == ENOENT)
		return 0;
	if (e) {
		snprintf(core->errmsg, sizeof core->errmsg, "read %.512s: %s", path, strerror(e));
		return CS_EIO;
	}
	cJSON *j = cJSON_ParseWithLength(text, len);
	free(text);
	struct raft_configuration conf;
	raft_configuration_init(&conf);
	int rc = cJSON_IsArray(j) && cJSON_GetArraySize(j) > 0 ? 0 : CS_EINVAL;
	const cJSON *p;
	cJSON_ArrayForEach(p, j)
	{
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(p, "id");
		const cJSON *addr = cJSON_GetObjectItemCaseSensitive(p, "address");
		bool nv = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "non_voter"));
		if (rc || !cJSON_IsString(id) || !cJSON_IsString(addr) || !*id->valuestring) {
			rc = CS_EINVAL;
			break;
		}
		if (raft_configuration_add(&conf, cs_raft_id_from_name(id->valuestring),
					   cs_ha_strip_scheme(addr->valuestring),
					   nv ? RAFT_STANDBY : RAFT_VOTER) != 0)
			rc = CS_EINVAL;
	}
	cJSON_Delete(j);
	if (rc) {
		raft_configuration_close(&conf);
		snprintf(core->errmsg, sizeof core->errmsg,
			 "%.512s: expected a JSON list of {\"id\",\"address\",\"non_voter\"} "
			 "with distinct ids",
			 path);
		return rc;
	}
	int rv = raft_recover(&core->node.raft, &conf);
	raft_configuration_close(&conf);
	if (rv != 0) {
		snprintf(core->errmsg, sizeof core->errmsg, "raft recover from %.512s: %s", path,
			 raft_strerror(rv));
		return CS_EIO;
	}
	unlink(path);
	cs_warn("ha: applied %s: the raft configuration was replaced (lost-quorum recovery)", path);
	return 0;
}

static int start_cluster_port(struct cs_core *core)
{
	struct cs_ha *ha = ha_of(core);
	const char *adv = cs_ha_cluster_addr(core);
	char ip[128];
	cs_ha_host_of(adv, ip, sizeof ip);
	const char *ips[1] = {ip};
	char err[256] = "";
	int rc = 0;
	if (!ha->ca.key && ha->minted.cert) {
		/* Just joined, barrier still closed: the CA key is not ours to hold yet; use
		 * the certificate the active node minted for this node's key. */
		X509_up_ref(ha->minted.cert);
		EVP_PKEY_up_ref(ha->minted.key);
		ha->me = ha->minted;
	} else {
		rc = cs_cluster_tls_gen_node(
		    &ha->ca,
		    core->node.id ? core->node.id : cs_raft_id_from_name(core->cfg->node_id), ips,
		    1, &ha->me, err, sizeof err);
	}
	if (!rc) {
		ha->server_ctx = cs_cluster_tls_server_ctx(ha->ca.cert, ha->me.cert, ha->me.key,
							   err, sizeof err);
		ha->client_ctx = cs_cluster_tls_client_ctx(ha->ca.cert, ha->me.cert, ha->me.key,
							   err, sizeof err);
		if (!ha->server_ctx || !ha->client_ctx)
			rc = CS_EINTERNAL;
	}
	if (!rc)
		rc = cs_cluster_listen(&ha->cl, core->loop, core->cfg->listeners[0].cluster_address,
				       ha->server_ctx, err, sizeof err);
	if (rc) {
		snprintf(core->errmsg, sizeof core->errmsg, "cluster port %s: %s",
			 core->cfg->listeners[0].cluster_address, err);
		return rc;
	}
	ha->fwd_listener =
	    cs_http_adopt_listener(core->loop, &core->cfg->listeners[0], cs_core_handle_http, core);
	cs_cluster_set_handler(ha->cl, CS_ALPN_FORWARD, cs_http_adopt, ha->fwd_listener);
	ha->fw = cs_forward_new(core->loop, ha->client_ctx);
	/* Outbound cluster connections leave from the listener's own address: peers and
	 * packet filters can tell nodes apart (tests/chaos cuts links by address). */
	cs_forward_set_source(ha->fw, core->cfg->listeners[0].cluster_address);
	struct cs_transport_config tc = {.client_ctx = ha->client_ctx,
					 .check_claim = cs_raft_node_check_claim,
					 .claim_ctx = &core->node,
					 .require_ip_san = true,
					 .source_address = core->cfg->listeners[0].cluster_address};
	rc = cs_transport_init(&ha->transport, core->loop, &tc);
	if (rc) {
		snprintf(core->errmsg, sizeof core->errmsg, "raft transport: %s", cs_strerror(rc));
		return rc;
	}
	ha->transport_ready = true;
	cs_cluster_set_handler(ha->cl, CS_ALPN_RAFT, cs_transport_accept, &ha->transport);
	return 0;
}

static void release_cluster_port(struct cs_core *core, void (*cb)(void *), void *ctx);

/* Start raft (and, outside -dev, the cluster port). bootstrap: a new one-voter cluster. */
int cs_ha_start(struct cs_core *core, bool bootstrap)
{
	struct cs_ha *ha = ha_of(core);
	if (ha->running)
		return 0;
	if (ha->stopping) {
		snprintf(core->errmsg, sizeof core->errmsg,
			 "raft is still stopping from the last seal; retry");
		return CS_EBUSY;
	}
	if (ha->removed) {
		snprintf(core->errmsg, sizeof core->errmsg,
			 "this node was removed from the raft cluster");
		return CS_EINVAL;
	}
	raft_id id = cs_raft_id_from_name(core->cfg->node_id);
	int rc;
	if (is_dev(core)) {
		rc = cs_raft_node_init(&core->node, core->loop, &core->st, core->data_dir, id,
				       core->cfg->listeners[0].cluster_address, cs_core_on_active,
				       core);
	} else {
		rc = start_cluster_port(core);
		if (!rc)
			rc = cs_raft_node_init_transport(
			    &core->node, core->loop, &core->st, core->data_dir, id,
			    cs_ha_cluster_addr(core), &ha->transport, cs_core_on_active, core);
		else
			goto fail;
	}
	if (rc) {
		snprintf(core->errmsg, sizeof core->errmsg, "raft: %s", core->node.errmsg);
		goto fail;
	}
	/* With pre-vote, 300/50 ms elect a new leader ~0.5 s after a kill -9 (docs/architecture.md,
	 * C7); performance_multiplier scales it for slower networks. */
	unsigned pm = core->cfg->raft_performance_multiplier > 0
			  ? (unsigned)core->cfg->raft_performance_multiplier
			  : 1;
	cs_raft_node_set_timing(&core->node, ELECTION_MS * pm, HEARTBEAT_MS * pm);
	if ((rc = apply_peers_json(core)))
		goto fail_node;
	if (bootstrap && (rc = cs_raft_node_bootstrap(&core->node))) {
		snprintf(core->errmsg, sizeof core->errmsg, "raft bootstrap: %s",
			 core->node.errmsg);
		goto fail_node;
	}
	if ((rc = cs_raft_node_start(&core->node))) {
		snprintf(core->errmsg, sizeof core->errmsg, "raft start: %s", core->node.errmsg);
		goto fail_node;
	}
	ha->running = true;
	ha->advertised = false;
	core->raft_started = true;
	cs_info("ha: raft started as %s (id %llu) at %s", core->cfg->node_id,
		(unsigned long long)id, is_dev(core) ? "(dev)" : cs_ha_cluster_addr(core));
	return 0;
fail_node:
	/* Close what started; the node's close path is safe after a failed start. */
	ha->running = true;
	cs_ha_stop(core, NULL);
	return rc;
fail:
	release_cluster_port(core, NULL, NULL);
	return rc ? rc : CS_EINTERNAL;
}

/* listener cluster_ca_cert_file/key_file: the operator's CA replaces the generated or
 * replicated one. 0 when none is configured or it loaded; else CS_EINVAL + errmsg. */
int cs_ha_config_ca_load(struct cs_core *core)
{
	const struct cs_listener_config *l = &core->cfg->listeners[0];
	if (!l->cluster_ca_cert_file)
		return 0;
	struct cs_cluster_cred ca = {0};
	char *cert = NULL, *key = NULL;
	size_t cl = 0, kl = 0;
	int e = cs_read_file(l->cluster_ca_cert_file, &cert, &cl);
	if (!e)
		e = cs_read_file(l->cluster_ca_key_file, &key, &kl);
	int rc = e ? CS_EINVAL : cs_cluster_tls_cert_from_pem(cert, cl, &ca.cert);
	if (!rc)
		rc = cs_cluster_tls_key_from_pem(key, kl, &ca.key);
	if (!rc && X509_check_private_key(ca.cert, ca.key) != 1)
		rc = CS_EINVAL;
	free(cert);
	if (key) {
		cs_zero(key, kl);
		free(key);
	}
	if (rc) {
		cs_cluster_cred_free(&ca);
		snprintf(core->errmsg, sizeof core->errmsg,
			 "cluster CA from %.300s / %.300s: unreadable, not PEM, or the key does "
			 "not match the certificate",
			 l->cluster_ca_cert_file, l->cluster_ca_key_file);
		return rc;
	}
	cs_cluster_cred_free(&ha_of(core)->ca);
	ha_of(core)->ca = ca;
	return 0;
}

int cs_ha_bootstrap(struct cs_core *core)
{
	struct cs_ha *ha = ha_of(core);
	if (!is_dev(core) && cs_ha_config_ca_load(core))
		return CS_EINVAL;
	if (!is_dev(core) && !ha->ca.cert) {
		char err[256];
		char cid[37];
		cs_uuid(cid);
		int rc = cs_cluster_tls_gen_ca(cid, &ha->ca, err, sizeof err);
		if (rc) {
			snprintf(core->errmsg, sizeof core->errmsg, "cluster CA: %s", err);
			return rc;
		}
	}
	return cs_ha_start(core, !cs_ha_raft_dir_has_state(core));
}

/* Load the CA stored behind the barrier into ha->ca (kept as it was on failure). */
static int keyring_read(struct cs_core *core)
{
	struct cs_ha *ha = ha_of(core);
	struct cs_cluster_cred ca = {0};
	struct cs_txn txn;
	cs_txn_begin(&txn, &core->st, core->kr);
	int rc = cs_cluster_keyring_get(&txn, &ca);
	cs_txn_abort(&txn);
	if (rc)
		return rc;
	cs_cluster_cred_free(&ha->ca);
	ha->ca = ca;
	return 0;
}

int cs_ha_store_tls(struct cs_core *core, struct cs_txn *txn)
{
	struct cs_ha *ha = ha_of(core);
	if (!ha->ca.cert) /* -dev: no cluster port */
		return 0;
	return cs_cluster_keyring_put(txn, &ha->ca);
}

/* Does the CA stored behind the barrier differ from the one raft runs with? */
static bool ca_changed(struct cs_core *core)
{
	struct cs_ha *ha = ha_of(core);
	X509 *running = ha->ca.cert;
	if (!running || core->cfg->listeners[0].cluster_ca_cert_file)
		return false;
	X509_up_ref(running);
	struct cs_cluster_cred saved = ha->ca;
	ha->ca = (struct cs_cluster_cred){0};
	int rc = keyring_read(core); /* loads into ha->ca */
	bool changed = rc == 0 && X509_cmp(running, ha->ca.cert) != 0;
	if (rc == 0) {
		cs_cluster_cred_free(&saved);
	} else {
		ha->ca = saved;
	}
	X509_free(running);
	return changed;
}

/* The barrier is open: (re)load the cluster CA from storage and start raft. */
static int start_unsealed(struct cs_core *core)
{
	if (!is_dev(core) && core->cfg->listeners[0].cluster_ca_cert_file)
		return cs_ha_config_ca_load(core) ? CS_EINVAL : cs_ha_start(core, false);
	if (!is_dev(core)) {
		int rc = keyring_read(core);
		if (rc) {
			snprintf(core->errmsg, sizeof core->errmsg,
				 "read the cluster TLS keyring (%s): %s", CS_CLUSTER_KEYRING_PATH,
				 cs_strerror(rc));
			return rc;
		}
	}
	return cs_ha_start(core, false);
}

int cs_ha_unsealed(struct cs_core *core)
{
	struct cs_ha *ha = ha_of(core);
	ha->advertised = false;
	if (ha->stopping) {
		/* Unsealed again while the last seal still closes raft: start once closed. */
		ha->restart_after_stop = true;
		return 0;
	}
	if (ha->running) {
		if (!is_dev(core) && ca_changed(core)) {
			/* Unsealed after a forced restore while raft still ran with the old
			 * cluster's CA: start again with the restored one. */
			cs_info(
			    "ha: the cluster CA changed with the restored data; restarting raft");
			ha->restart_after_stop = true;
			cs_ha_stop(core, NULL);
			return 0;
		}
		advertise(core); /* active before the barrier opened (right after init) */
		return 0;
	}
	if (ha->removed)
		return 0;
	return start_unsealed(core);
}

static void stop_step(void *ctx)
{
	struct cs_core *core = ctx;
	struct cs_ha *ha = ha_of(core);
	if (--ha->stop_pending > 0)
		return;
	SSL_CTX_free(ha->server_ctx);
	SSL_CTX_free(ha->client_ctx);
	ha->server_ctx = ha->client_ctx = NULL;
	cs_cluster_cred_free(&ha->me);
	ha->running = false;
	ha->stopping = false;
	void (*cb)(struct cs_core *) = ha->stop_cb;
	ha->stop_cb = NULL;
	cs_info("ha: raft and the cluster port stopped");
	bool restart = ha->restart_after_stop;
	ha->restart_after_stop = false;
	if (cb)
		cb(core);
	if (restart && core->kr && !ha->shutting_down && !ha->removed &&
	    start_unsealed(core) != 0) {
		cs_error("ha: restarting raft after unseal: %s", core->errmsg);
		cs_core_seal(core);
	}
}

static void cluster_closed(void *ctx)
{
	stop_step(ctx);
}

static void listener_closed(void *ctx)
{
	stop_step(ctx);
}

static void forwarder_closed(void *ctx)
{
	stop_step(ctx);
}

/* Close the cluster listener, the adopted forward connections and the forwarder; each
 * close calls cb(ctx) (counted by the caller through stop_pending). */
static void release_cluster_port(struct cs_core *core, void (*cb)(void *), void *ctx)
{
	struct cs_ha *ha = ha_of(core);
	if (ha->cl) {
		cs_cluster_set_handler(ha->cl, CS_ALPN_RAFT, NULL, NULL);
		cs_cluster_set_handler(ha->cl, CS_ALPN_FORWARD, NULL, NULL);
	}
	if (ha->transport_ready) {
		cs_transport_free(&ha->transport);
		ha->transport_ready = false;
	}
	if (ha->cl) {
		if (cb)
			ha->stop_pending++;
		cs_cluster_close(ha->cl, cb ? cluster_closed : NULL, ctx);
		ha->cl = NULL;
	}
	if (ha->fwd_listener) {
		if (cb)
			ha->stop_pending++;
		cs_http_listener_close(ha->fwd_listener, cb ? listener_closed : NULL, ctx);
		ha->fwd_listener = NULL;
	}
	if (ha->fw) {
		if (cb)
			ha->stop_pending++;
		cs_forward_close(ha->fw, cb ? forwarder_closed : NULL, ctx);
		ha->fw = NULL;
	}
	if (!cb) {
		SSL_CTX_free(ha->server_ctx);
		SSL_CTX_free(ha->client_ctx);
		ha->server_ctx = ha->client_ctx = NULL;
		cs_cluster_cred_free(&ha->me);
	}
}

static void node_closed(struct cs_raft_node *n)
{
	struct cs_core *core = CS_CONTAINER_OF(n, struct cs_core, node);
	struct cs_ha *ha = ha_of(core);
	ha->stop_pending = 1;
	release_cluster_port(core, stop_step, core);
	stop_step(core);
}

void cs_ha_stop(struct cs_core *core, void (*cb)(struct cs_core *core))
{
	struct cs_ha *ha = ha_of(core);
	if (!ha->running) {
		if (cb)
			cb(core);
		return;
	}
	if (ha->stopping) {
		if (cb && !ha->stop_cb)
			ha->stop_cb = cb;
		return;
	}
	ha->stopping = true;
	ha->stop_cb = cb;
	ha->stepping_down = false;
	ha->stop_when_replicated = false;
	core->raft_started = false;
	while (ha->changes) {
		struct change *c = ha->changes;
		ha->changes = c->next;
		free(c);
	}
	cs_raft_node_close(&core->node, node_closed);
}

static void ha_closed(struct cs_ha *ha)
{
	if (--ha->open_handles > 0)
		return; /* the tick and the joiner: free with the last one */
	struct cs_core *core = ha->core;
	void (*cb)(struct cs_core *) = ha->shutdown_cb;
	cs_cluster_cred_free(&ha->ca);
	cs_join_withdraw_all(&ha->join);
	core->ha = NULL;
	free(ha);
	if (cb)
		cb(core);
}

static void tick_closed(uv_handle_t *h)
{
	ha_closed(h->data);
}

static void ha_stopped_for_shutdown(struct cs_core *core)
{
	struct cs_ha *ha = ha_of(core);
	ha->open_handles = 2;
	uv_close((uv_handle_t *)&ha->tick, tick_closed);
	cs_ha_join_close(ha, ha_closed);
}

void cs_ha_shutdown(struct cs_core *core, void (*cb)(struct cs_core *core))
{
	struct cs_ha *ha = ha_of(core);
	if (!ha) {
		if (cb)
			cb(core);
		return;
	}
	ha->shutting_down = true;
	ha->shutdown_cb = cb;
	cs_join_fire(&ha->join, CS_JOIN_EV_SHUTDOWN); /* nothing more goes out */
	uv_timer_stop(&ha->tick);
	if (ha->running)
		cs_ha_stop(core, ha_stopped_for_shutdown);
	else
		ha_stopped_for_shutdown(core);
}

bool cs_ha_removed(const struct cs_core *core)
{
	const struct cs_ha *ha = ha_of(core);
	return ha && ha->removed;
}

bool cs_ha_restart_pending(const struct cs_core *core)
{
	const struct cs_ha *ha = ha_of(core);
	return ha && ha->restart_after_stop;
}

/* ---------------------------------------------------------------- active node */

/* Tell the cluster who leads (sys/leader on standbys) and record this node. */
static void advertise(struct cs_core *core)
{
	struct cs_ha *ha = ha_of(core);
	if (ha->advertised || !core->active || !core->kr)
		return;
	ha->advertised = true;
	struct cs_txn txn;
	cs_txn_begin(&txn, &core->st, core->kr);
	char t[64];
	cs_format_time(core->active_since_ns, t, sizeof t);
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "node_id", core->cfg->node_id);
	cJSON_AddNumberToObject(j, "raft_id", (double)core->node.id);
	cJSON_AddStringToObject(j, "api_addr", core->cfg->api_addr ? core->cfg->api_addr : "");
	cJSON_AddStringToObject(j, "cluster_addr", core->cfg->cluster_addr);
	cJSON_AddStringToObject(j, "active_time", t);
	char *s = cJSON_PrintUnformatted(j);
	cs_txn_put(&txn, LEADER_PATH, s, strlen(s));
	free(s);
	cJSON_Delete(j);
	struct cs_autopilot_member me;
	if (cs_autopilot_member_get(&txn, core->node.id, &me) == CS_ENOTFOUND)
		cs_ha_put_node_info(&txn, core->node.id, core->cfg->node_id, core->cfg->api_addr,
				    cs_ha_cluster_addr(core), false);
	internal_commit(&txn, "leader advertisement");
}

static void changes_kick(struct cs_core *core);

void cs_ha_on_active(struct cs_core *core, bool active)
{
	struct cs_ha *ha = ha_of(core);
	if (!ha)
		return;
	if (active) {
		advertise(core);
		changes_kick(core);
	} else {
		ha->advertised = false;
		ha->stepping_down = false;
		cs_join_withdraw_all(&ha->join);
	}
}

/* ---------------------------------------------------------------- membership changes */

static void change_cb(struct raft_change *req, int status)
{
	struct cs_core *core = req->data;
	struct cs_ha *ha = ha_of(core);
	ha->change_pending = false;
	struct change *c = ha->changes;
	if (!c)
		return;
	if (status == 0) {
		cs_info("ha: raft %s of node %llu committed",
			c->kind == CHANGE_ADD ? "add" : "role change", (unsigned long long)c->id);
		ha->changes = c->next;
		free(c);
	} else {
		/* Retried from the tick (RAFT_NOCONNECTION: catch-up too slow, etc.). */
		cs_warn("ha: raft %s of node %llu failed: %s; will retry",
			c->kind == CHANGE_ADD ? "add" : "role change", (unsigned long long)c->id,
			raft_strerror(status));
	}
}

static void changes_kick(struct cs_core *core)
{
	struct cs_ha *ha = ha_of(core);
	while (ha->running && core->active && !ha->change_pending && ha->changes &&
	       !ha->stepping_down) {
		struct change *c = ha->changes;
		ha->change_req.data = core;
		int rv =
		    c->kind == CHANGE_ADD
			? raft_add(&core->node.raft, &ha->change_req, c->id, c->address, change_cb)
			: raft_assign(&core->node.raft, &ha->change_req, c->id, c->role, change_cb);
		if (rv == 0) {
			ha->change_pending = true;
			return;
		}
		if (rv == RAFT_CANTCHANGE)
			return; /* another change in progress (autopilot): next tick */
		if (rv == RAFT_DUPLICATEID && c->kind == CHANGE_ADD) {
			/* Already a member (a node re-joining with a fresh directory keeps
			 * its role): drop the add and the role change queued with it. */
			ha->changes = c->next;
			struct change *n = ha->changes;
			if (n && n->id == c->id && n->kind == CHANGE_ASSIGN) {
				ha->changes = n->next;
				free(n);
			}
			free(c);
			continue;
		}
		cs_warn("ha: raft membership change for node %llu refused: %s",
			(unsigned long long)c->id, raft_strerror(rv));
		ha->changes = c->next;
		free(c);
	}
}

void cs_ha_queue_change(struct cs_core *core, enum change_kind kind, raft_id id, int role,
			const char *address)
{
	struct cs_ha *ha = ha_of(core);
	struct change *c = calloc(1, sizeof *c);
	if (!c)
		abort();
	c->kind = kind;
	c->id = id;
	c->role = role;
	snprintf(c->address, sizeof c->address, "%s", address ? address : "");
	struct change **pp = &ha->changes;
	while (*pp)
		pp = &(*pp)->next;
	*pp = c;
	changes_kick(core);
}

/* ---------------------------------------------------------------- forwarding */

bool cs_ha_leader_known(struct cs_core *core)
{
	struct cs_ha *ha = ha_of(core);
	if (!ha || !ha->running || ha->stopping || !core->node.started)
		return false;
	raft_id id = 0;
	const char *addr = NULL;
	raft_leader(&core->node.raft, &id, &addr);
	return id != 0 && id != core->node.id && addr;
}

bool cs_ha_stepping_down(const struct cs_core *core)
{
	const struct cs_ha *ha = ha_of(core);
	return ha && ha->stepping_down;
}

static void forward_done(void *ctx, struct cs_http_req *hreq, int status, const char *errmsg)
{
	/* hreq NULL: the relay broke after streaming began; the client connection was
	 * aborted and the HTTP request released, so there is nobody left to answer. */
	if (!hreq && status) {
		cs_warn("ha: forwarded response broken mid-stream: %s", errmsg ? errmsg : "");
		status = 0;
	}
	cs_core_forward_done(ctx, status, errmsg);
}

/* Forwarding follows raft's view of the leader (checked per request and every tick). */
static void note_leader(struct cs_ha *ha, raft_id id, const char *addr)
{
	if (!addr)
		addr = "";
	if (id == ha->leader_id && strcmp(addr, ha->leader_addr) == 0)
		return;
	cs_forward_reset(ha->fw);
	ha->leader_id = id;
	snprintf(ha->leader_addr, sizeof ha->leader_addr, "%s", addr);
}

bool cs_ha_forward(struct cs_request *req)
{
	struct cs_core *core = req->core;
	struct cs_ha *ha = ha_of(core);
	if (!req->http || !ha->fw || !cs_ha_leader_known(core))
		return false;
	/* A request forwarded to a node that has stopped leading (step-down, failover)
	 * goes on to the new leader; the hop limit stops stale views from looping. */
	if (cs_forward_hops(req->http) >= CS_FORWARD_MAX_HOPS)
		return false;
	raft_id id = 0;
	const char *addr = NULL;
	raft_leader(&core->node.raft, &id, &addr);
	note_leader(ha, id, addr);
	return cs_forward(ha->fw, addr, id, req->http, forward_done, req) == 0;
}

/* ---------------------------------------------------------------- tick */

static void check_removed(struct cs_core *core)
{
	struct cs_ha *ha = ha_of(core);
	if (!ha->running || ha->stopping || ha->removed)
		return;
	char key[256];
	snprintf(key, sizeof key, REMOVED_PREFIX "%s", core->cfg->node_id);
	struct cs_buf b = CS_BUF_INIT;
	int rc = cs_store_get(&core->st.store, key, strlen(key), &b);
	/* A node wiped and joined again under its old node_id replays the marker of its
	 * earlier removal while catching up: that one is not about this incarnation. */
	bool removes =
	    rc == 0 && cs_autopilot_marker_removes((const char *)b.data, b.len, ha->admitted_index);
	cs_buf_free(&b);
	if (!removes)
		return;
	ha->removed = true;
	char *rf = removed_file(core);
	FILE *f = fopen(rf, "w");
	if (f) {
		fputs("removed from the raft cluster\n", f);
		fclose(f);
	}
	free(rf);
	cs_warn("ha: this node was removed from the raft cluster; stopping raft "
		"(sys/health answers 530)");
	cs_ha_stop(core, NULL);
}

void cs_ha_on_restore(void *ctx)
{
	struct cs_core *core = ctx;
	struct cs_ha *ha = ha_of(core);
	cs_seal_load_config(core);
	if (!core->kr)
		return;
	/* Does our keyring open the restored data? Not if the snapshot came from another
	 * cluster (snapshot-force): then seal, as Vault does, and wait for its keys. */
	struct cs_txn txn;
	struct cs_buf b = CS_BUF_INIT;
	cs_txn_begin(&txn, &core->st, core->kr);
	int rc = cs_txn_get(&txn, "core/mounts", &b);
	cs_txn_abort(&txn);
	cs_buf_free_secure(&b);
	if (rc && rc != CS_ENOTFOUND) {
		cs_warn("ha: the restored snapshot is encrypted with other keys; sealing (unseal "
			"with the snapshot's keys)");
		cs_core_seal(core);
		if (core->node.raft.state == RAFT_LEADER) {
			ha->stop_when_replicated = true;
			ha->stop_deadline = cs_mono_ms() + 3000;
			ha->all_matched_at = 0;
		} else {
			cs_ha_stop(core, NULL);
		}
		return;
	}
	cs_info("ha: snapshot restored; reloading mount tables");
	if (cs_seal_post_unseal(core))
		cs_warn("ha: reload after restore: %s", core->errmsg);
	ha->advertised = false;
	ha->restore_reload = true;
}

static void tick_cb(uv_timer_t *t)
{
	struct cs_ha *ha = t->data;
	struct cs_core *core = ha->core;
	if (core->shutting_down)
		return;
	cs_ha_leader_tick(core);
	if (ha->fw && ha->running && !ha->stopping && core->node.started) {
		raft_id id = 0;
		const char *addr = NULL;
		raft_leader(&core->node.raft, &id, &addr);
		note_leader(ha, id, addr);
	}
	if (ha->restore_reload) {
		/* Leases and tokens of the restored state: rebuild the expiration heap
		 * outside the FSM callback (it may commit). */
		ha->restore_reload = false;
		if (core->active && core->expire.active) {
			core->expire.active(core, false);
			core->expire.active(core, true);
		}
	}
	if (ha->running && !ha->advertised)
		advertise(core);
	check_removed(core);
	cs_rotate_tick(core);   /* automatic barrier key rotation (rotate_sys.h) */
	cs_periodic_tick(core); /* the backends' periodic functions (periodic.h) */
	cs_ha_step_down_tick(core);
	cs_ha_join_sync_tick(core);
	changes_kick(core);
}
