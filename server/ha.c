/*
 * High availability (see ha.h for the design). Sections: state and helpers, raft and
 * cluster port lifecycle, forwarding and step-down, join (leader side, joiner side),
 * sys/ endpoints.
 */
#include "server/ha.h"

#include <curl/curl.h>
#include <openssl/x509v3.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/secmem.h"
#include "lib/util.h"
#include "raft/autopilot.h"
#include "raft/transport.h"
#include "raft/cluster.h"
#include "server/core.h"
#include "server/forward.h"
#include "server/http.h"
#include "server/rotate_sys.h"
#include "server/seal.h"
#include "server/sys.h"
#include "storage/cluster_tls.h"

#define TLS_PATH       "core/raft/tls"
#define LEADER_PATH    "core/leader"
#define REMOVED_PREFIX "core/raft/removed/"
#define CHALLENGE_AAD  "core/raft/challenge"
#define NONCE_LEN      32 /* the secret a joiner proves it decrypted */
#define MAX_CHALLENGES 32
#define CHALLENGE_TTL  (10 * 60 * 1000)
#define TICK_MS        100
#define JOIN_RETRY_MS  2000
#define JOIN_STALL_MS  30000 /* joined but nothing replicated: ask again */
#define STEP_DRAIN_MS  2000
#define HTTP_TIMEOUT_S 10
#define STUCK_MS       5000 /* follower match index frozen while lagging */
#define ELECTION_MS    300  /* raft timing at performance_multiplier 1 */
#define HEARTBEAT_MS   50

enum join_phase {
	JOIN_NONE,
	JOIN_SEEKING,    /* thread asks the leaders for a challenge */
	JOIN_CHALLENGED, /* waiting for the unseal keys */
	JOIN_ANSWERING,  /* thread sends the answer */
	JOIN_SYNCING,    /* raft runs; waiting for the keyring to replicate */
};

struct join_target {
	char *url; /* without a trailing '/' */
	char *ca, *cert, *key, *sni;
};

/* A challenge the active node issued, bound to the node that asked for it: its
 * server_id, cluster address and public key are sealed inside the challenge too, and
 * only this identity is added and certified when the answer comes back. */
struct challenge {
	char server_id[128];
	char cluster_addr[256];
	char api_addr[256];
	bool non_voter;
	EVP_PKEY *pub; /* the joiner's key: its node certificate is minted for it */
	uint8_t nonce[NONCE_LEN];
	uint64_t expires;
};

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
	uv_async_t async;
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
	bool shutting_down;
	void (*shutdown_cb)(struct cs_core *core);
	bool advertised;
	bool restore_reload;     /* a snapshot restore applied: restart the lease manager */
	bool restart_after_stop; /* unsealed while raft was still stopping */
	/* sealed by a forced restore while leading: keep raft up until the followers have
	 * the restore too (they seal themselves when they apply it) */
	bool stop_when_replicated;
	uint64_t stop_deadline, all_matched_at;
	int open_handles; /* shutdown: tick + async still closing */
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
	/* leader side of join */
	struct challenge challenges[MAX_CHALLENGES];
	/* joiner side */
	enum join_phase phase;
	struct join_target targets[CS_MAX_RETRY_JOIN];
	int n_targets;
	bool retry, non_voter;
	uint8_t *kek;                  /* secmem, from unseal until the barrier opened */
	EVP_PKEY *join_key;            /* this join's node key; its public half is in the request */
	struct cs_cluster_cred minted; /* the leader's certificate for join_key (cred owns it) */
	uint64_t sync_since;
	uint64_t synced_index; /* applied index when sync_since was last reset */
	pthread_t thread;
	bool thread_running;
	atomic_bool thread_stop;
	pthread_mutex_t mu; /* guards the thread's results below */
	bool result_ready;
	int result_target;
	char *result_body;
	long result_status;
	char result_err[256];
};

/* Replace the join thread's shared result (mutex held by the caller). It may hold the
 * decrypted challenge or the cluster CA's key: wiped before it is freed. */
static void result_set(struct cs_ha *ha, char *body)
{
	if (ha->result_body) {
		cs_zero(ha->result_body, strlen(ha->result_body));
		free(ha->result_body);
	}
	ha->result_body = body;
}

static void challenge_clear(struct challenge *c)
{
	EVP_PKEY_free(c->pub);
	cs_zero(c, sizeof *c);
}

/* This join's key and the certificate minted for it. */
static void join_creds_free(struct cs_ha *ha)
{
	EVP_PKEY_free(ha->join_key);
	ha->join_key = NULL;
	cs_cluster_cred_free(&ha->minted);
}

static struct cs_ha *ha_of(const struct cs_core *core)
{
	return core->ha;
}

static bool is_dev(const struct cs_core *core)
{
	return core->cfg->dev;
}

/* "https://1.2.3.4:8201" → "1.2.3.4:8201" */
static const char *strip_scheme(const char *a)
{
	const char *p = strstr(a, "://");
	return p ? p + 3 : a;
}

/* Host part of "ip:port" / "[v6]:port" into out. */
static void host_of(const char *addr, char *out, size_t n)
{
	const char *colon = strrchr(addr, ':');
	size_t len = colon ? (size_t)(colon - addr) : strlen(addr);
	if (len >= 2 && addr[0] == '[' && addr[len - 1] == ']') {
		addr++;
		len -= 2;
	}
	snprintf(out, n, "%.*s", (int)len, addr);
}

static const char *advertised_cluster_addr(const struct cs_core *core)
{
	const char *a = core->cfg->cluster_addr;
	if (a && *a)
		return strip_scheme(a);
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

/* Record raft id `id` at core/raft/nodes/<id> (the autopilot's member record). */
static void put_node_info(struct cs_txn *txn, raft_id id, const char *node_id, const char *api_addr,
			  const char *cluster_addr, bool non_voter)
{
	struct cs_autopilot_member m = {.non_voter = non_voter};
	snprintf(m.node_id, sizeof m.node_id, "%s", node_id);
	snprintf(m.api_addr, sizeof m.api_addr, "%s", api_addr ? api_addr : "");
	snprintf(m.cluster_addr, sizeof m.cluster_addr, "%s", cluster_addr);
	cs_autopilot_member_put(txn, id, &m);
}

/* ---------------------------------------------------------------- TLS keyring */

static int pem_pair(const struct cs_cluster_cred *c, char **cert, size_t *cl, char **key,
		    size_t *kl)
{
	int rc = cs_cluster_tls_cert_to_pem(c->cert, cert, cl);
	if (rc)
		return rc;
	rc = cs_cluster_tls_key_to_pem(c->key, key, kl);
	if (rc)
		cs_cluster_tls_pem_free(*cert, *cl);
	return rc;
}

/* The keyring as Vault shapes it (core/raft/tls, behind the barrier; never in a join
 * answer: a joiner gets a certificate minted for its own key instead). */
static cJSON *keyring_json(const struct cs_cluster_cred *ca)
{
	char *cert, *key;
	size_t cl, kl;
	if (pem_pair(ca, &cert, &cl, &key, &kl))
		return NULL;
	cJSON *k = cJSON_CreateObject();
	cJSON_AddStringToObject(k, "id", "cluster-ca");
	cJSON_AddStringToObject(k, "key_type", "p256");
	cJSON_AddStringToObject(k, "cluster_cert", cert);
	cJSON_AddStringToObject(k, "cluster_key_params", key);
	cs_cluster_tls_pem_free(cert, cl);
	cs_cluster_tls_pem_free(key, kl);
	cJSON *j = cJSON_CreateObject();
	cJSON *keys = cJSON_AddArrayToObject(j, "keys");
	cJSON_AddItemToArray(keys, k);
	cJSON_AddStringToObject(j, "active_key_id", "cluster-ca");
	cJSON_AddNumberToObject(j, "term", 1);
	return j;
}

/* Zeroise and free a cJSON tree that holds key material. */
static void secret_json_free(cJSON *j)
{
	if (!j)
		return;
	/* Wipe string values in place before freeing. */
	cJSON *stack[64];
	int sp = 0;
	stack[sp++] = j;
	while (sp) {
		cJSON *n = stack[--sp];
		for (cJSON *c = n->child; c; c = c->next) {
			if (cJSON_IsString(c) && c->valuestring)
				cs_zero(c->valuestring, strlen(c->valuestring));
			else if (c->child && sp < 64)
				stack[sp++] = c;
		}
	}
	cJSON_Delete(j);
}

static int keyring_load(struct cs_ha *ha, const cJSON *j)
{
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(j, "keys");
	const cJSON *k = cJSON_GetArrayItem(keys, 0);
	const cJSON *cert = cJSON_GetObjectItemCaseSensitive(k, "cluster_cert");
	const cJSON *key = cJSON_GetObjectItemCaseSensitive(k, "cluster_key_params");
	if (!cJSON_IsString(cert) || !cJSON_IsString(key))
		return CS_EINVAL;
	struct cs_cluster_cred ca = {0};
	int rc =
	    cs_cluster_tls_cert_from_pem(cert->valuestring, strlen(cert->valuestring), &ca.cert);
	if (!rc)
		rc = cs_cluster_tls_key_from_pem(key->valuestring, strlen(key->valuestring),
						 &ca.key);
	if (rc) {
		cs_cluster_cred_free(&ca);
		return CS_EINVAL;
	}
	cs_cluster_cred_free(&ha->ca);
	ha->ca = ca;
	return 0;
}

int cs_ha_store_tls(struct cs_core *core, struct cs_txn *txn)
{
	struct cs_ha *ha = ha_of(core);
	if (!ha->ca.cert) /* -dev: no cluster port */
		return 0;
	cJSON *j = keyring_json(&ha->ca);
	if (!j)
		return CS_EINTERNAL;
	char *s = cJSON_PrintUnformatted(j);
	int rc = cs_txn_put(txn, TLS_PATH, s, strlen(s));
	cs_zero(s, strlen(s));
	free(s);
	secret_json_free(j);
	return rc;
}

static int keyring_read(struct cs_core *core)
{
	struct cs_txn txn;
	struct cs_buf b = CS_BUF_INIT;
	cs_txn_begin(&txn, &core->st, core->kr);
	int rc = cs_txn_get(&txn, TLS_PATH, &b);
	cs_txn_abort(&txn);
	if (rc) {
		cs_buf_free_secure(&b);
		return rc;
	}
	cJSON *j = cJSON_ParseWithLength(b.data, b.len);
	cs_buf_free_secure(&b);
	rc = j ? keyring_load(ha_of(core), j) : CS_EIO;
	secret_json_free(j);
	return rc;
}

/* ---------------------------------------------------------------- lifecycle */

static void tick_cb(uv_timer_t *t);
static void async_cb(uv_async_t *a);
static void advertise(struct cs_core *core);
static int ha_start(struct cs_core *core, bool bootstrap);
static int start_unsealed(struct cs_core *core);
static void join_start_thread(struct cs_ha *ha, enum join_phase phase);

static char *removed_file(struct cs_core *core)
{
	size_t n = strlen(core->data_dir) + 32;
	char *p = malloc(n);
	if (!p)
		abort();
	snprintf(p, n, "%s/raft/removed", core->data_dir);
	return p;
}

static bool raft_dir_has_state(struct cs_core *core)
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

static void targets_from_config(struct cs_ha *ha, const struct cs_config *cfg)
{
	for (int i = 0; i < cfg->n_retry_join; i++) {
		const struct cs_retry_join *r = &cfg->retry_join[i];
		/* A node never joins itself. */
		if (cfg->api_addr && strcmp(r->leader_api_addr, cfg->api_addr) == 0)
			continue;
		struct join_target *t = &ha->targets[ha->n_targets++];
		t->url = strdup(r->leader_api_addr);
		size_t n = strlen(t->url);
		while (n && t->url[n - 1] == '/')
			t->url[--n] = '\0';
		t->ca = r->leader_ca_cert ? strdup(r->leader_ca_cert) : NULL;
		t->cert = r->leader_client_cert ? strdup(r->leader_client_cert) : NULL;
		t->key = r->leader_client_key ? strdup(r->leader_client_key) : NULL;
		t->sni = r->leader_tls_servername ? strdup(r->leader_tls_servername) : NULL;
	}
}

static void targets_free(struct cs_ha *ha)
{
	for (int i = 0; i < ha->n_targets; i++) {
		struct join_target *t = &ha->targets[i];
		free(t->url);
		free(t->ca);
		free(t->cert);
		if (t->key) {
			cs_zero(t->key, strlen(t->key));
			free(t->key);
		}
		free(t->sni);
		memset(t, 0, sizeof *t);
	}
	ha->n_targets = 0;
}

int cs_ha_init(struct cs_core *core)
{
	struct cs_ha *ha = calloc(1, sizeof *ha);
	if (!ha)
		abort();
	ha->core = core;
	core->ha = ha;
	pthread_mutex_init(&ha->mu, NULL);
	uv_timer_init(core->loop, &ha->tick);
	ha->tick.data = ha;
	uv_async_init(core->loop, &ha->async, async_cb);
	ha->async.data = ha;
	uv_timer_start(&ha->tick, tick_cb, TICK_MS, TICK_MS);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	char *rf = removed_file(core);
	struct stat sb;
	if (stat(rf, &sb) == 0) {
		ha->removed = true;
		cs_warn("ha: this node was removed from its raft cluster (%s exists); it will "
			"not rejoin with this data directory",
			rf);
	}
	free(rf);
	if (!core->initialized && !raft_dir_has_state(core) && core->cfg->n_retry_join > 0) {
		targets_from_config(ha, core->cfg);
		ha->retry = true;
		ha->non_voter = core->cfg->retry_join_as_non_voter;
		if (ha->n_targets > 0) {
			cs_info("ha: retry_join: asking %d leader(s) for a join challenge",
				ha->n_targets);
			join_start_thread(ha, JOIN_SEEKING);
		}
	}
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
					   strip_scheme(addr->valuestring),
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
	const char *adv = advertised_cluster_addr(core);
	char ip[128];
	host_of(adv, ip, sizeof ip);
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
	struct cs_transport_config tc = {.client_ctx = ha->client_ctx,
					 .check_claim = cs_raft_node_check_claim,
					 .claim_ctx = &core->node,
					 .require_ip_san = true};
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
static int ha_start(struct cs_core *core, bool bootstrap)
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
			    advertised_cluster_addr(core), &ha->transport, cs_core_on_active, core);
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
		(unsigned long long)id, is_dev(core) ? "(dev)" : advertised_cluster_addr(core));
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
static int config_ca_load(struct cs_core *core)
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
	if (!is_dev(core) && config_ca_load(core))
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
	return ha_start(core, !raft_dir_has_state(core));
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
		return config_ca_load(core) ? CS_EINVAL : ha_start(core, false);
	if (!is_dev(core)) {
		int rc = keyring_read(core);
		if (rc) {
			snprintf(core->errmsg, sizeof core->errmsg,
				 "read the cluster TLS keyring (%s): %s", TLS_PATH,
				 cs_strerror(rc));
			return rc;
		}
	}
	return ha_start(core, false);
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

static void join_stop_thread(struct cs_ha *ha)
{
	if (!ha->thread_running)
		return;
	atomic_store(&ha->thread_stop, true);
	pthread_join(ha->thread, NULL);
	ha->thread_running = false;
	atomic_store(&ha->thread_stop, false);
}

static void ha_handles_closed(uv_handle_t *h)
{
	struct cs_ha *ha = h->data;
	if (--ha->open_handles > 0)
		return; /* the tick and the async: free with the last one */
	struct cs_core *core = ha->core;
	void (*cb)(struct cs_core *) = ha->shutdown_cb;
	targets_free(ha);
	cs_cluster_cred_free(&ha->ca);
	join_creds_free(ha);
	for (int i = 0; i < MAX_CHALLENGES; i++)
		challenge_clear(&ha->challenges[i]);
	pthread_mutex_lock(&ha->mu);
	result_set(ha, NULL);
	pthread_mutex_unlock(&ha->mu);
	pthread_mutex_destroy(&ha->mu);
	core->ha = NULL;
	free(ha);
	if (cb)
		cb(core);
}

static void ha_stopped_for_shutdown(struct cs_core *core)
{
	struct cs_ha *ha = ha_of(core);
	ha->open_handles = 2;
	uv_close((uv_handle_t *)&ha->tick, ha_handles_closed);
	uv_close((uv_handle_t *)&ha->async, ha_handles_closed);
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
	join_stop_thread(ha);
	if (ha->kek) {
		cs_secmem_free(ha->kek, CS_KEY_LEN);
		ha->kek = NULL;
	}
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
		put_node_info(&txn, core->node.id, core->cfg->node_id, core->cfg->api_addr,
			      advertised_cluster_addr(core), false);
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
		for (int i = 0; i < MAX_CHALLENGES; i++)
			challenge_clear(&ha->challenges[i]);
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

static void queue_change(struct cs_core *core, enum change_kind kind, raft_id id, int role,
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
	if (id != ha->leader_id || strcmp(addr, ha->leader_addr) != 0) {
		cs_forward_reset(ha->fw);
		ha->leader_id = id;
		snprintf(ha->leader_addr, sizeof ha->leader_addr, "%s", addr);
	}
	return cs_forward(ha->fw, addr, id, req->http, forward_done, req) == 0;
}

/* ---------------------------------------------------------------- tick */

static void step_down_tick(struct cs_core *core);
static void join_sync_tick(struct cs_core *core);

static void check_removed(struct cs_core *core)
{
	struct cs_ha *ha = ha_of(core);
	if (!ha->running || ha->stopping || ha->removed)
		return;
	char key[256];
	snprintf(key, sizeof key, REMOVED_PREFIX "%s", core->cfg->node_id);
	struct cs_buf b = CS_BUF_INIT;
	int rc = cs_store_get(&core->st.store, key, strlen(key), &b);
	cs_buf_free(&b);
	if (rc != 0)
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

static void tick_cb(uv_timer_t *t)
{
	struct cs_ha *ha = t->data;
	struct cs_core *core = ha->core;
	if (core->shutting_down)
		return;
	stop_when_replicated_tick(core);
	stuck_follower_tick(core);
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
	cs_rotate_tick(core); /* automatic barrier key rotation (rotate_sys.h) */
	step_down_tick(core);
	join_sync_tick(core);
	changes_kick(core);
}

/* ---------------------------------------------------------------- step-down */

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

static void step_down_tick(struct cs_core *core)
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

/* ---------------------------------------------------------------- join: HTTP client */

struct curl_body {
	struct cs_buf *out;
	size_t max;
};

static size_t curl_write(char *p, size_t size, size_t n, void *ud)
{
	struct curl_body *b = ud;
	size_t len = size * n;
	if (b->out->len + len > b->max)
		return 0;
	cs_buf_append(b->out, p, len);
	return len;
}

static int curl_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	(void)a, (void)b, (void)c, (void)d;
	struct cs_ha *ha = ud;
	return atomic_load(&ha->thread_stop) ? 1 : 0;
}

/* POST JSON `body` to target->url + path. Thread. 0 with *status and resp, or -1. */
static int http_post(struct cs_ha *ha, const struct join_target *t, const char *path,
		     const char *body, long *status, struct cs_buf *resp, char *err, size_t errlen)
{
	CURL *c = curl_easy_init();
	if (!c) {
		snprintf(err, errlen, "curl init failed");
		return -1;
	}
	char url[1024];
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
	struct curl_slist *connect_to = NULL;
	if (t->sni && strncmp(t->url, "https://", 8) == 0) {
		/* leader_tls_servername: ask for that name, connect to the listed address. */
		const char *hostport = t->url + 8;
		const char *colon = strrchr(hostport, ':');
		const char *port = colon ? colon + 1 : "443";
		snprintf(url, sizeof url, "https://%s:%s%s", t->sni, port, path);
		char ct[600];
		snprintf(ct, sizeof ct, "%s:%s:%.*s:%s", t->sni, port,
			 (int)(colon ? colon - hostport : (long)strlen(hostport)), hostport, port);
		connect_to = curl_slist_append(NULL, ct);
		curl_easy_setopt(c, CURLOPT_CONNECT_TO, connect_to);
	} else {
		snprintf(url, sizeof url, "%s%s", t->url, path);
	}
	struct curl_body cb = {resp, 1 << 20};
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &cb);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)HTTP_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 3L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, curl_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, ha);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	/* The leader's certificate is always verified (leader_ca_cert, else the system
	 * store), as its name: the challenge and the node certificate come from it. No
	 * redirects are followed (curl's default). */
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	struct curl_blob ca = {t->ca, t->ca ? strlen(t->ca) : 0, CURL_BLOB_COPY};
	struct curl_blob cert = {t->cert, t->cert ? strlen(t->cert) : 0, CURL_BLOB_COPY};
	struct curl_blob key = {t->key, t->key ? strlen(t->key) : 0, CURL_BLOB_COPY};
	if (t->ca)
		curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &ca);
	if (t->cert && t->key) {
		curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &cert);
		curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
		curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &key);
		curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
	}
	CURLcode res = curl_easy_perform(c);
	int rc = 0;
	if (res != CURLE_OK) {
		snprintf(err, errlen, "%s: %s", t->url, curl_easy_strerror(res));
		rc = -1;
	} else {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	}
	curl_slist_free_all(hdr);
	curl_slist_free_all(connect_to);
	curl_easy_cleanup(c);
	return rc;
}

static void sleep_ms_interruptible(struct cs_ha *ha, unsigned ms)
{
	for (unsigned i = 0; i < ms / 50 && !atomic_load(&ha->thread_stop); i++)
		usleep(50 * 1000);
}

static void publish(struct cs_ha *ha, int target, long status, struct cs_buf *body, const char *err)
{
	pthread_mutex_lock(&ha->mu);
	result_set(ha, body ? strndup(body->data ? body->data : "", body->len) : NULL);
	ha->result_status = status;
	ha->result_target = target;
	snprintf(ha->result_err, sizeof ha->result_err, "%s", err ? err : "");
	ha->result_ready = true;
	pthread_mutex_unlock(&ha->mu);
	uv_async_send(&ha->async);
}

/* Thread arguments: the request bodies are built on the loop thread. */
struct join_job {
	struct cs_ha *ha;
	enum join_phase phase;
	char *body;
	int target; /* ANSWERING: the target that gave the challenge */
};

static void *join_thread(void *arg)
{
	struct join_job *job = arg;
	struct cs_ha *ha = job->ha;
	char err[256] = "";
	while (!atomic_load(&ha->thread_stop)) {
		for (int i = 0; i < ha->n_targets && !atomic_load(&ha->thread_stop); i++) {
			int ti = job->phase == JOIN_ANSWERING ? job->target : i;
			const char *path = job->phase == JOIN_ANSWERING
					       ? "/v1/sys/storage/raft/bootstrap/answer"
					       : "/v1/sys/storage/raft/bootstrap/challenge";
			struct cs_buf resp = CS_BUF_INIT;
			long status = 0;
			int rc = http_post(ha, &ha->targets[ti], path, job->body, &status, &resp,
					   err, sizeof err);
			if (rc == 0 && (status == 200 || job->phase == JOIN_ANSWERING)) {
				publish(ha, ti, status, &resp, NULL);
				cs_buf_free_secure(&resp);
				goto out;
			}
			if (rc == 0)
				snprintf(err, sizeof err, "%s answered %ld: %.150s",
					 ha->targets[ti].url, status, resp.data ? resp.data : "");
			cs_debug("ha: join: %s", err);
			cs_buf_free_secure(&resp);
			if (job->phase == JOIN_ANSWERING) {
				publish(ha, ti, 0, NULL, err);
				goto out;
			}
		}
		if (!ha->retry) {
			publish(ha, -1, 0, NULL, err[0] ? err : "no leader to join");
			break;
		}
		sleep_ms_interruptible(ha, JOIN_RETRY_MS);
	}
out:
	if (job->body) {
		cs_zero(job->body, strlen(job->body));
		free(job->body);
	}
	free(job);
	return NULL;
}

static void join_start_thread(struct cs_ha *ha, enum join_phase phase)
{
	struct cs_core *core = ha->core;
	join_stop_thread(ha);
	struct join_job *job = calloc(1, sizeof *job);
	if (!job)
		abort();
	job->ha = ha;
	job->phase = phase;
	cJSON *b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "server_id", core->cfg->node_id);
	cJSON_AddStringToObject(b, "cluster_addr", advertised_cluster_addr(core));
	if (phase == JOIN_ANSWERING) {
		/* The answer was put in result_body by join_unsealed (base64). */
		pthread_mutex_lock(&ha->mu);
		cJSON_AddStringToObject(b, "answer", ha->result_body ? ha->result_body : "");
		job->target = ha->result_target;
		pthread_mutex_unlock(&ha->mu);
	} else if (phase == JOIN_SEEKING) {
		/* A fresh key per attempt: the leader binds its public half into the challenge
		 * and certifies only it, so an answer seen by anyone else is worthless. */
		join_creds_free(ha);
		char *pem = NULL;
		size_t pl = 0;
		if (cs_cluster_tls_gen_key(&ha->join_key) == 0 &&
		    cs_cluster_tls_pubkey_to_pem(ha->join_key, &pem, &pl) == 0)
			cJSON_AddStringToObject(b, "public_key", pem);
		else
			cs_error("ha: join: cannot generate this node's cluster key");
		cs_cluster_tls_pem_free(pem, pl);
		cJSON_AddStringToObject(b, "api_addr",
					core->cfg->api_addr ? core->cfg->api_addr : "");
		cJSON_AddBoolToObject(b, "non_voter", ha->non_voter);
	}
	job->body = cJSON_PrintUnformatted(b);
	cJSON_Delete(b);
	ha->phase = phase;
	pthread_mutex_lock(&ha->mu);
	ha->result_ready = false;
	pthread_mutex_unlock(&ha->mu);
	if (pthread_create(&ha->thread, NULL, join_thread, job) != 0) {
		cs_error("ha: join: cannot start a thread");
		free(job->body);
		free(job);
		ha->phase = JOIN_NONE;
		return;
	}
	ha->thread_running = true;
}

/* ---------------------------------------------------------------- join: joiner side */

bool cs_ha_join_cancel(struct cs_core *core)
{
	struct cs_ha *ha = ha_of(core);
	if (ha->phase == JOIN_NONE)
		return true;
	if (ha->phase != JOIN_SEEKING && ha->phase != JOIN_CHALLENGED)
		return false;
	join_stop_thread(ha);
	ha->phase = JOIN_NONE;
	if (ha->kek) {
		cs_secmem_free(ha->kek, CS_KEY_LEN);
		ha->kek = NULL;
	}
	join_creds_free(ha);
	core->initialized = false;
	cs_info("ha: join abandoned: this node is being initialised as a new cluster");
	return true;
}

bool cs_ha_join_pending(const struct cs_core *core)
{
	const struct cs_ha *ha = ha_of(core);
	return ha && ha->phase != JOIN_NONE && !core->kr;
}

static const cJSON *data_of(const cJSON *resp)
{
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(resp, "data");
	return d ? d : resp;
}

static void got_challenge(struct cs_ha *ha, const char *body)
{
	struct cs_core *core = ha->core;
	cJSON *j = cJSON_Parse(body ? body : "");
	const cJSON *d = data_of(j);
	const cJSON *ch = cJSON_GetObjectItemCaseSensitive(d, "challenge");
	const cJSON *sc = cJSON_GetObjectItemCaseSensitive(d, "seal_config");
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(sc, "type");
	int shares = 0, threshold = 0;
	/* The same bounds as a stored config (1 <= threshold <= shares <= 255): the counts
	 * size this node's unseal progress. */
	if (!cJSON_IsString(ch) || cs_seal_config_decode(sc, &shares, &threshold) ||
	    (cJSON_IsString(type) && strcmp(type->valuestring, "shamir") != 0)) {
		cs_warn("ha: join: the leader's challenge is malformed or its seal type differs");
		cJSON_Delete(j);
		ha->phase = JOIN_NONE;
		return;
	}
	pthread_mutex_lock(&ha->mu);
	result_set(ha, strdup(ch->valuestring)); /* the challenge, until answered */
	pthread_mutex_unlock(&ha->mu);
	core->initialized = true;
	core->seal.shares = shares;
	core->seal.threshold = threshold;
	ha->phase = JOIN_CHALLENGED;
	cJSON_Delete(j);
	cs_info("ha: join: challenge received from %s; unseal this node with the cluster's "
		"keys to finish joining",
		ha->targets[ha->result_target].url);
	if (ha->kek) {
		/* Re-join after a failed answer: the keys were given already. */
		char err[256];
		if (cs_ha_join_unsealed(core, ha->kek, err, sizeof err))
			cs_warn("ha: join: %s", err);
	}
}

/* The active node's answer: the cluster CA certificate (never its key), this node's
 * certificate minted for join_key, and the members to accept connections from until
 * raft brings the configuration. 0, or CS_EINVAL when anything does not fit. */
static int answer_load(struct cs_ha *ha, const cJSON *d)
{
	struct cs_core *core = ha->core;
	const cJSON *ca_pem = cJSON_GetObjectItemCaseSensitive(d, "ca_cert");
	const cJSON *node_pem = cJSON_GetObjectItemCaseSensitive(d, "node_cert");
	if (!cJSON_IsString(ca_pem) || !cJSON_IsString(node_pem) || !ha->join_key)
		return CS_EINVAL;
	X509 *ca = NULL, *cert = NULL;
	char name[32], err[256] = "";
	cs_cluster_tls_node_name(cs_raft_id_from_name(core->cfg->node_id), name, sizeof name);
	int rc =
	    cs_cluster_tls_cert_from_pem(ca_pem->valuestring, strlen(ca_pem->valuestring), &ca);
	if (!rc)
		rc = cs_cluster_tls_cert_from_pem(node_pem->valuestring,
						  strlen(node_pem->valuestring), &cert);
	/* Our key, our raft id, the cluster's CA. */
	if (!rc && (X509_check_private_key(cert, ha->join_key) != 1 ||
		    X509_check_host(cert, name, strlen(name), X509_CHECK_FLAG_NEVER_CHECK_SUBJECT,
				    NULL) != 1 ||
		    cs_cluster_tls_verify(ca, cert, err, sizeof err) != 0))
		rc = CS_EINVAL;
	if (rc) {
		X509_free(ca);
		X509_free(cert);
		cs_warn("ha: join: the answer's certificates do not fit this node %s", err);
		return CS_EINVAL;
	}
	cs_cluster_cred_free(&ha->ca);
	ha->ca.cert = ca;
	cs_cluster_cred_free(&ha->minted);
	ha->minted.cert = cert;
	ha->minted.key = ha->join_key;
	ha->join_key = NULL;
	return 0;
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

static void got_answer(struct cs_ha *ha, long status, const char *body)
{
	struct cs_core *core = ha->core;
	cJSON *j = cJSON_Parse(body ? body : "");
	const cJSON *d = data_of(j);
	int rc = status == 200 ? answer_load(ha, d) : CS_EINVAL;
	if (!rc && core->cfg->listeners[0].cluster_ca_cert_file) {
		rc = config_ca_load(core); /* the operator's CA wins: we mint our own */
		cs_cluster_cred_free(&ha->minted);
	}
	if (rc) {
		cs_warn("ha: join: the leader refused the answer (HTTP %ld); asking again", status);
		cJSON_Delete(j);
		join_start_thread(ha, JOIN_SEEKING);
		return;
	}
	rc = ha_start(core, false);
	if (rc) {
		cs_error("ha: join: %s", core->errmsg);
		cJSON_Delete(j);
		join_start_thread(ha, JOIN_SEEKING);
		return;
	}
	expect_peers(core, cJSON_GetObjectItemCaseSensitive(d, "peers"));
	cJSON_Delete(j);
	ha->phase = JOIN_SYNCING;
	ha->sync_since = cs_mono_ms();
	ha->synced_index = core->st.store.applied_index;
	cs_info("ha: join: accepted by the leader; catching up");
}

static void async_cb(uv_async_t *a)
{
	struct cs_ha *ha = a->data;
	pthread_mutex_lock(&ha->mu);
	bool ready = ha->result_ready;
	ha->result_ready = false;
	long status = ha->result_status;
	char *body = ha->result_body ? strdup(ha->result_body) : NULL;
	char err[256];
	snprintf(err, sizeof err, "%s", ha->result_err);
	pthread_mutex_unlock(&ha->mu);
	if (!ready || ha->shutting_down) {
		free(body);
		return;
	}
	join_stop_thread(ha); /* it has finished: reap it */
	if (err[0] && ha->phase == JOIN_SEEKING) {
		cs_warn("ha: join failed: %s", err);
		ha->phase = JOIN_NONE;
	} else if (ha->phase == JOIN_SEEKING) {
		got_challenge(ha, body);
	} else if (ha->phase == JOIN_ANSWERING) {
		if (err[0]) {
			cs_warn("ha: join: %s; asking again", err);
			join_start_thread(ha, JOIN_SEEKING);
		} else {
			got_answer(ha, status, body);
		}
	}
	if (body) {
		cs_zero(body, strlen(body));
		free(body);
	}
}

/* The opened challenge must name this node: its server_id, cluster address and this
 * join's key. Returns the answer (the nonce, base64, malloc'd) or NULL with errmsg. */
static char *challenge_check(struct cs_ha *ha, const struct cs_buf *plain, char *errmsg,
			     size_t errlen)
{
	struct cs_core *core = ha->core;
	cJSON *j = cJSON_ParseWithLength(plain->data, plain->len);
	const cJSON *nonce = cJSON_GetObjectItemCaseSensitive(j, "nonce");
	const cJSON *sid = cJSON_GetObjectItemCaseSensitive(j, "server_id");
	const cJSON *addr = cJSON_GetObjectItemCaseSensitive(j, "cluster_addr");
	const cJSON *fp = cJSON_GetObjectItemCaseSensitive(j, "public_key_sha256");
	uint8_t mine[32];
	char hex[65];
	bool ok = cJSON_IsString(nonce) && cJSON_IsString(sid) && cJSON_IsString(addr) &&
		  cJSON_IsString(fp) && ha->join_key &&
		  cs_cluster_tls_pubkey_sha256(ha->join_key, mine) == 0;
	if (ok) {
		cs_hex_encode(mine, sizeof mine, hex);
		ok = strcmp(sid->valuestring, core->cfg->node_id) == 0 &&
		     strcmp(addr->valuestring, advertised_cluster_addr(core)) == 0 &&
		     strcmp(fp->valuestring, hex) == 0;
	}
	char *answer = ok ? strdup(nonce->valuestring) : NULL;
	if (!ok)
		snprintf(errmsg, errlen,
			 "the join challenge was issued for another node or key, not this one");
	secret_json_free(j);
	return answer;
}

int cs_ha_join_unsealed(struct cs_core *core, const uint8_t *kek, char *errmsg, size_t errlen)
{
	struct cs_ha *ha = ha_of(core);
	if (ha->phase != JOIN_CHALLENGED) {
		/* Still seeking/answering/syncing: keep the KEK for when it is needed. */
		if (!ha->kek) {
			ha->kek = cs_secmem_alloc(CS_KEY_LEN);
			memcpy(ha->kek, kek, CS_KEY_LEN);
		}
		return 0;
	}
	pthread_mutex_lock(&ha->mu);
	size_t ctlen = 0;
	uint8_t *ct = ha->result_body
			  ? cs_b64_decode(ha->result_body, strlen(ha->result_body), &ctlen)
			  : NULL;
	pthread_mutex_unlock(&ha->mu);
	struct cs_buf plain = CS_BUF_INIT;
	int rc = ct ? cs_aead_open(kek, CHALLENGE_AAD, strlen(CHALLENGE_AAD), ct, ctlen, &plain)
		    : CS_EINVAL;
	free(ct);
	if (rc) {
		cs_buf_free_secure(&plain);
		snprintf(errmsg, errlen,
			 "error decrypting the join challenge: the unseal keys are not this "
			 "cluster's");
		return CS_EINVAL;
	}
	char *answer = challenge_check(ha, &plain, errmsg, errlen);
	cs_buf_free_secure(&plain);
	if (!answer) {
		/* Issued for another node (or a stale key): never answer it; ask afresh. */
		cs_warn("ha: join: %s; asking for a new challenge", errmsg);
		join_start_thread(ha, JOIN_SEEKING);
		return CS_EINVAL;
	}
	pthread_mutex_lock(&ha->mu);
	result_set(ha, answer);
	pthread_mutex_unlock(&ha->mu);
	/* The challenge opened: these are the cluster's keys (replace any earlier ones). */
	if (!ha->kek)
		ha->kek = cs_secmem_alloc(CS_KEY_LEN);
	if (ha->kek != kek)
		memcpy(ha->kek, kek, CS_KEY_LEN);
	join_start_thread(ha, JOIN_ANSWERING);
	return 0;
}

static void join_sync_tick(struct cs_core *core)
{
	struct cs_ha *ha = ha_of(core);
	if (ha->phase != JOIN_SYNCING || !ha->kek)
		return;
	if (core->st.store.applied_index != ha->synced_index) {
		ha->synced_index = core->st.store.applied_index;
		ha->sync_since = cs_mono_ms();
	}
	char err[256] = "";
	int rc = cs_seal_unseal_with_kek(core, ha->kek, err, sizeof err);
	if (rc == 0) {
		cs_secmem_free(ha->kek, CS_KEY_LEN);
		ha->kek = NULL;
		ha->phase = JOIN_NONE;
		cs_seal_load_config(core);
		cs_info("ha: join complete: this node is an unsealed standby");
		return;
	}
	if (rc != CS_ENOTFOUND && rc != CS_EIO)
		cs_debug("ha: join: waiting for the keyring: %s", err);
	if (cs_mono_ms() - ha->sync_since > JOIN_STALL_MS && !core->node.raft.current_term) {
		cs_warn("ha: join: nothing replicated for %d s; asking the leaders again",
			JOIN_STALL_MS / 1000);
		ha->sync_since = cs_mono_ms();
		cs_ha_stop(core, NULL);
		join_start_thread(ha, JOIN_SEEKING);
	}
}

/* ---------------------------------------------------------------- join: endpoints */

static int join_write(struct cs_request *req)
{
	struct cs_core *core = req->core;
	struct cs_ha *ha = ha_of(core);
	if (core->initialized && ha->phase == JOIN_NONE)
		return cs_req_error(req, CS_EINVAL,
				    "node is already initialized or part of a cluster");
	if (ha->running || raft_dir_has_state(core))
		return cs_req_error(req, CS_EINVAL, "node is already part of a raft cluster");
	if (ha->phase != JOIN_NONE)
		/* One join at a time: a second request must not re-point a pending join
		 * (its challenge and the operator's unseal keys) at another leader. */
		return cs_req_error(req, CS_EINVAL,
				    "a join is already in progress; it must finish, fail or be "
				    "cancelled (sys/init, or a restart) before another");
	if (cs_req_has(req, "auto_join"))
		return cs_req_error(req, CS_EINVAL, "auto_join is not supported");
	const char *leader = cs_req_str(req, "leader_api_addr", "");
	bool plain = strncmp(leader, "http://", 7) == 0;
	if (!plain && strncmp(leader, "https://", 8) != 0)
		return cs_req_error(req, CS_EINVAL, "leader_api_addr must be an https:// URL");
	if (plain && !core->cfg->unsafe_allow_plaintext_join)
		return cs_req_error(req, CS_EINVAL,
				    "leader_api_addr must be an https:// URL: the join challenge, "
				    "its answer and this node's certificate cross that connection "
				    "(http:// is allowed only with unsafe_allow_plaintext_join = "
				    "true in the storage \"raft\" block, for tests on a trusted "
				    "network)");
	join_stop_thread(ha);
	targets_free(ha);
	struct join_target *t = &ha->targets[ha->n_targets++];
	t->url = strdup(leader);
	size_t n = strlen(t->url);
	while (n && t->url[n - 1] == '/')
		t->url[--n] = '\0';
	const char *ca = cs_req_str(req, "leader_ca_cert", "");
	const char *cert = cs_req_str(req, "leader_client_cert", "");
	const char *key = cs_req_str(req, "leader_client_key", "");
	const char *sni = cs_req_str(req, "leader_tls_servername", "");
	t->ca = *ca ? strdup(ca) : NULL;
	t->cert = *cert ? strdup(cert) : NULL;
	t->key = *key ? strdup(key) : NULL;
	t->sni = *sni ? strdup(sni) : NULL;
	ha->retry = cs_req_bool(req, "retry", false);
	ha->non_voter = cs_req_bool(req, "non_voter", false);
	join_start_thread(ha, JOIN_SEEKING);
	cs_info("ha: join requested: %s%s", leader, ha->retry ? " (retrying)" : "");
	req->raw = cJSON_CreateObject();
	cJSON_AddBoolToObject(req->raw, "joined", true);
	return 0;
}

/* ---------------------------------------------------------------- join: leader side */

static struct challenge *challenge_slot(struct cs_ha *ha, const char *server_id, bool create)
{
	uint64_t now = cs_mono_ms();
	struct challenge *free_slot = NULL, *oldest = &ha->challenges[0];
	for (int i = 0; i < MAX_CHALLENGES; i++) {
		struct challenge *c = &ha->challenges[i];
		if (c->server_id[0] && c->expires < now)
			challenge_clear(c);
		if (c->server_id[0] && strcmp(c->server_id, server_id) == 0)
			return c;
		if (!c->server_id[0] && !free_slot)
			free_slot = c;
		if (c->expires < oldest->expires)
			oldest = c;
	}
	if (!create)
		return NULL;
	struct challenge *c = free_slot ? free_slot : oldest;
	challenge_clear(c);
	snprintf(c->server_id, sizeof c->server_id, "%s", server_id);
	return c;
}

/* The sealed part of a challenge: the nonce to send back and the identity it was
 * issued to, which the joiner checks is its own before answering. */
static char *challenge_plaintext(const struct challenge *c)
{
	uint8_t fp[32];
	char hex[65];
	if (cs_cluster_tls_pubkey_sha256(c->pub, fp))
		return NULL;
	cs_hex_encode(fp, sizeof fp, hex);
	char *nonce = cs_b64_encode(c->nonce, NONCE_LEN);
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "nonce", nonce);
	cJSON_AddStringToObject(j, "server_id", c->server_id);
	cJSON_AddStringToObject(j, "cluster_addr", c->cluster_addr);
	cJSON_AddStringToObject(j, "public_key_sha256", hex);
	char *s = cJSON_PrintUnformatted(j);
	cs_zero(nonce, strlen(nonce));
	free(nonce);
	secret_json_free(j);
	return s;
}

static int challenge_write(struct cs_request *req)
{
	struct cs_core *core = req->core;
	struct cs_ha *ha = ha_of(core);
	const char *sid = cs_req_str(req, "server_id", "");
	const char *addr = strip_scheme(cs_req_str(req, "cluster_addr", ""));
	const char *api = cs_req_str(req, "api_addr", "");
	const char *pk = cs_req_str(req, "public_key", "");
	struct sockaddr_storage sa;
	if (!*sid)
		return cs_req_error(req, CS_EINVAL, "no server id provided");
	if (strlen(sid) >= sizeof ha->challenges[0].server_id)
		return cs_req_error(req, CS_EINVAL, "server id too long");
	if (strlen(addr) >= sizeof ha->challenges[0].cluster_addr ||
	    cs_cluster_parse_address(addr, &sa))
		return cs_req_error(req, CS_EINVAL,
				    "cluster_addr must be an IP address and port, as in "
				    "10.0.0.2:8201");
	if (strlen(api) >= sizeof ha->challenges[0].api_addr)
		return cs_req_error(req, CS_EINVAL, "api_addr too long");
	EVP_PKEY *pub = NULL;
	if (cs_cluster_tls_pubkey_from_pem(pk, strlen(pk), &pub))
		return cs_req_error(req, CS_EINVAL,
				    "public_key must be the joining node's EC public key (PEM)");
	if (!ha->ca.key) {
		EVP_PKEY_free(pub);
		return cs_req_error(req, CS_EINTERNAL, "no cluster TLS keyring loaded");
	}
	struct challenge *c = challenge_slot(ha, sid, true);
	snprintf(c->cluster_addr, sizeof c->cluster_addr, "%s", addr);
	snprintf(c->api_addr, sizeof c->api_addr, "%s", api);
	c->non_voter = cs_req_bool(req, "non_voter", false);
	c->pub = pub;
	cs_random(c->nonce, NONCE_LEN);
	c->expires = cs_mono_ms() + CHALLENGE_TTL;
	char *pt = challenge_plaintext(c);
	struct cs_buf ct = CS_BUF_INIT;
	int rc = pt ? cs_seal_encrypt(core, CHALLENGE_AAD, pt, strlen(pt), &ct) : CS_ECRYPTO;
	if (pt) {
		cs_zero(pt, strlen(pt));
		free(pt);
	}
	if (rc) {
		challenge_clear(c);
		cs_buf_free(&ct);
		return cs_req_error(req, rc, "error encrypting the join challenge: %s",
				    cs_strerror(rc));
	}
	char *b64 = cs_b64_encode((const uint8_t *)ct.data, ct.len);
	cs_buf_free(&ct);
	cs_seal_refresh_config(core); /* the shares a joiner needs, after any rekey */
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "challenge", b64);
	free(b64);
	cJSON *sc = cJSON_AddObjectToObject(d, "seal_config");
	cJSON_AddStringToObject(sc, "type", "shamir");
	cJSON_AddNumberToObject(sc, "secret_shares", core->seal.shares);
	cJSON_AddNumberToObject(sc, "secret_threshold", core->seal.threshold);
	cJSON_AddNumberToObject(sc, "stored_shares", 0);
	cs_req_set_data(req, d);
	return 0;
}

static void peer_add(cJSON *a, const char *name, raft_id id, const char *address)
{
	char rid[24];
	snprintf(rid, sizeof rid, "%llu", (unsigned long long)id);
	cJSON *p = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "id", name);
	cJSON_AddStringToObject(p, "raft_id", rid); /* a string: 64 bits do not fit a double */
	cJSON_AddStringToObject(p, "address", address);
	cJSON_AddItemToArray(a, p);
}

static cJSON *peers_json(struct cs_core *core, struct cs_txn *txn)
{
	cJSON *a = cJSON_CreateArray();
	const struct raft_configuration *conf = &core->node.raft.configuration;
	for (unsigned i = 0; i < conf->n; i++) {
		char name[CS_AUTOPILOT_NODE_ID_MAX];
		cs_autopilot_server_name(&core->autopilot, txn, conf->servers[i].id, name,
					 sizeof name);
		peer_add(a, name, conf->servers[i].id, conf->servers[i].address);
	}
	return a;
}

/* A certificate for the challenge's node and key, signed here: the CA key never
 * leaves the active node. The answer carries it with the CA certificate. */
static int mint_for(struct cs_ha *ha, const struct challenge *c, cJSON *d, char *err, size_t errlen)
{
	char ip[128];
	host_of(c->cluster_addr, ip, sizeof ip);
	const char *ips[1] = {ip};
	X509 *cert = NULL;
	int rc = cs_cluster_tls_sign_node(&ha->ca, cs_raft_id_from_name(c->server_id), ips, 1,
					  c->pub, &cert, err, errlen);
	char *ca_pem = NULL, *node_pem = NULL;
	size_t cl = 0, nl = 0;
	if (!rc)
		rc = cs_cluster_tls_cert_to_pem(ha->ca.cert, &ca_pem, &cl);
	if (!rc)
		rc = cs_cluster_tls_cert_to_pem(cert, &node_pem, &nl);
	if (!rc) {
		cJSON_AddStringToObject(d, "ca_cert", ca_pem);
		cJSON_AddStringToObject(d, "node_cert", node_pem);
	}
	cs_cluster_tls_pem_free(ca_pem, cl);
	cs_cluster_tls_pem_free(node_pem, nl);
	X509_free(cert);
	return rc;
}

static int answer_write(struct cs_request *req)
{
	struct cs_core *core = req->core;
	struct cs_ha *ha = ha_of(core);
	const char *sid = cs_req_str(req, "server_id", "");
	const char *ans = cs_req_str(req, "answer", "");
	const char *addr = strip_scheme(cs_req_str(req, "cluster_addr", ""));
	if (!*sid)
		return cs_req_error(req, CS_EINVAL, "no server id provided");
	if (!*ans)
		return cs_req_error(req, CS_EINVAL, "no answer provided");
	struct challenge *c = challenge_slot(ha, sid, false);
	if (!c)
		return cs_req_error(req, CS_EINVAL,
				    "no expected answer for the server id provided");
	size_t n = 0;
	uint8_t *raw = cs_b64_decode(ans, strlen(ans), &n);
	bool ok = raw && cs_ct_equal(raw, n, c->nonce, NONCE_LEN);
	if (raw) {
		cs_zero(raw, n);
		free(raw);
	}
	if (!ok)
		return cs_req_error(req, CS_EINVAL, "invalid answer given");
	/* The node is the one the challenge was issued to: it may restate its address,
	 * never change it. */
	if (*addr && strcmp(addr, c->cluster_addr) != 0)
		return cs_req_error(req, CS_EINVAL,
				    "cluster_addr differs from the address bound in the join "
				    "challenge");
	if (!ha->ca.key)
		return cs_req_error(req, CS_EINTERNAL, "no cluster TLS keyring loaded");
	cJSON *d = cJSON_CreateObject();
	char err[256] = "";
	if (mint_for(ha, c, d, err, sizeof err)) {
		cJSON_Delete(d);
		return cs_req_error(req, CS_EINTERNAL, "cannot certify the joining node: %s", err);
	}
	raft_id id = cs_raft_id_from_name(c->server_id);
	cJSON *peers = peers_json(core, &req->txn);
	peer_add(peers, c->server_id, id, c->cluster_addr);
	cJSON_AddItemToObject(d, "peers", peers);
	put_node_info(&req->txn, id, c->server_id, c->api_addr, c->cluster_addr, c->non_voter);
	queue_change(core, CHANGE_ADD, id, 0, c->cluster_addr);
	queue_change(core, CHANGE_ASSIGN, id, RAFT_STANDBY, c->cluster_addr);
	cs_info("ha: node %s (%s) answered its join challenge; adding it as a non-voter",
		c->server_id, c->cluster_addr);
	challenge_clear(c); /* single use */
	cs_req_set_data(req, d);
	return 0;
}

/* ---------------------------------------------------------------- other endpoints */

static int digest_read(struct cs_request *req)
{
	struct cs_core *core = req->core;
	char hex[2 * CS_DIGEST_LEN + 1];
	cs_hex_encode(core->st.store.digest, CS_DIGEST_LEN, hex);
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "node_id", core->cfg->node_id);
	cJSON_AddNumberToObject(d, "applied_index", (double)core->st.store.applied_index);
	cJSON_AddStringToObject(d, "digest", hex);
	cJSON_AddNumberToObject(d, "raft_applied_index",
				core->raft_started ? (double)raft_last_applied(&core->node.raft)
						   : 0);
	cJSON_AddNumberToObject(d, "term",
				core->raft_started ? (double)core->node.raft.current_term : 0);
	cJSON_AddBoolToObject(d, "active", core->active);
	cs_req_set_data(req, d);
	return 0;
}

static int step_down_write(struct cs_request *req)
{
	struct cs_core *core = req->core;
	struct cs_ha *ha = ha_of(core);
	if (!core->active)
		return cs_req_error(req, CS_ENOTACTIVE, "node is not active");
	if (is_dev(core) || core->node.raft.configuration.n < 2) {
		cs_info("ha: step-down requested with no other voter; staying active");
		return 0;
	}
	if (!ha->stepping_down) {
		ha->stepping_down = true;
		ha->step_started = cs_mono_ms();
		cs_info("ha: step-down requested: draining writes, then transferring leadership");
	}
	return 0;
}

void cs_ha_leader_json(struct cs_core *core, cJSON *j)
{
	char t[64] = "0001-01-01T00:00:00Z";
	struct cs_autopilot_member m = {0};
	if (core->active) {
		cs_format_time(core->active_since_ns, t, sizeof t);
		snprintf(m.api_addr, sizeof m.api_addr, "%s",
			 core->cfg->api_addr ? core->cfg->api_addr : "");
		snprintf(m.cluster_addr, sizeof m.cluster_addr, "%s", core->cfg->cluster_addr);
	} else if (core->kr && cs_ha_leader_known(core)) {
		raft_id id = 0;
		const char *ra = NULL;
		raft_leader(&core->node.raft, &id, &ra);
		struct cs_txn txn;
		struct cs_buf b = CS_BUF_INIT;
		cs_txn_begin(&txn, &core->st, core->kr);
		cJSON *adv = cs_txn_get(&txn, LEADER_PATH, &b) == 0
				 ? cJSON_ParseWithLength(b.data, b.len)
				 : NULL;
		const cJSON *rid = cJSON_GetObjectItemCaseSensitive(adv, "raft_id");
		const cJSON *at = cJSON_GetObjectItemCaseSensitive(adv, "active_time");
		/* The advertisement names the active time; addresses come from the leader's
		 * member record either way (the advertisement may predate this leader). */
		if (cJSON_IsNumber(rid) && (raft_id)rid->valuedouble == id && cJSON_IsString(at))
			snprintf(t, sizeof t, "%s", at->valuestring);
		cs_autopilot_member_get(&txn, id, &m);
		cs_txn_abort(&txn);
		cs_buf_free_secure(&b);
		cJSON_Delete(adv);
	}
	cJSON_AddBoolToObject(j, "ha_enabled", true);
	cJSON_AddBoolToObject(j, "is_self", core->active);
	cJSON_AddStringToObject(j, "active_time", t);
	cJSON_AddStringToObject(j, "leader_address", m.api_addr);
	char cbuf[300] = "";
	if (m.cluster_addr[0])
		snprintf(cbuf, sizeof cbuf, "%s%s", strstr(m.cluster_addr, "://") ? "" : "https://",
			 m.cluster_addr);
	cJSON_AddStringToObject(j, "leader_cluster_address", cbuf);
}

static int ha_status_read(struct cs_request *req)
{
	struct cs_core *core = req->core;
	cJSON *nodes = cJSON_CreateArray();
	const struct raft_configuration *conf = &core->node.raft.configuration;
	char now[64];
	cs_format_time(cs_now_ns(), now, sizeof now);
	for (unsigned i = 0; core->raft_started && i < conf->n; i++) {
		const struct raft_server *s = &conf->servers[i];
		struct cs_autopilot_member m = {0};
		cs_autopilot_member_get(&req->txn, s->id, &m);
		char name[CS_AUTOPILOT_NODE_ID_MAX];
		cs_autopilot_server_name(&core->autopilot, &req->txn, s->id, name, sizeof name);
		bool self = s->id == core->node.id;
		bool recent = self;
		if (!self && core->node.raft.state == RAFT_LEADER &&
		    core->node.raft.leader_state.progress)
			recent = core->node.raft.leader_state.progress[i].recent_recv;
		cJSON *n = cJSON_CreateObject();
		cJSON_AddStringToObject(n, "hostname", name);
		cJSON_AddStringToObject(n, "api_address", m.api_addr);
		char caddr[300];
		snprintf(caddr, sizeof caddr, "https://%s", s->address);
		cJSON_AddStringToObject(n, "cluster_address", caddr);
		cJSON_AddBoolToObject(n, "active_node", self && core->active);
		if (recent)
			cJSON_AddStringToObject(n, "last_echo", now);
		else
			cJSON_AddNullToObject(n, "last_echo");
		cJSON_AddStringToObject(n, "version", CUSTOS_VERSION);
		cJSON_AddBoolToObject(n, "voter", s->role == RAFT_VOTER);
		cJSON_AddItemToArray(nodes, n);
	}
	req->raw = cJSON_CreateObject();
	cJSON_AddItemToObject(req->raw, "nodes", nodes);
	return 0;
}

/* ---------------------------------------------------------------- registration */

static const struct cs_field join_fields[] = {
    {.name = "leader_api_addr", .type = CS_FIELD_STRING, .desc = "API address of a cluster member"},
    {.name = "leader_ca_cert",
     .type = CS_FIELD_STRING,
     .desc = "PEM CA to verify the leader's API TLS"},
    {.name = "leader_client_cert", .type = CS_FIELD_STRING, .desc = "PEM client certificate"},
    {.name = "leader_client_key", .type = CS_FIELD_STRING, .desc = "PEM client key"},
    {.name = "leader_tls_servername", .type = CS_FIELD_STRING, .desc = "TLS server name to expect"},
    {.name = "retry", .type = CS_FIELD_BOOL, .desc = "keep retrying every 2 s"},
    {.name = "non_voter", .type = CS_FIELD_BOOL, .desc = "join as a permanent non-voter"},
    {.name = "auto_join", .type = CS_FIELD_STRING, .desc = "cloud auto-join (unsupported)"},
    {.name = "auto_join_scheme", .type = CS_FIELD_STRING, .desc = "(unsupported)"},
    {.name = "auto_join_port", .type = CS_FIELD_INT, .desc = "(unsupported)"},
    {.name = NULL},
};

static const struct cs_field challenge_fields[] = {
    {.name = "server_id", .type = CS_FIELD_STRING, .desc = "node_id of the joining node"},
    {.name = "cluster_addr",
     .type = CS_FIELD_STRING,
     .desc = "the joining node's cluster address (bound)"},
    {.name = "api_addr", .type = CS_FIELD_STRING, .desc = "the joining node's API address"},
    {.name = "non_voter", .type = CS_FIELD_BOOL, .desc = "join as a permanent non-voter"},
    {.name = "public_key",
     .type = CS_FIELD_STRING,
     .desc = "the joining node's EC public key, PEM (certified)"},
    {.name = NULL},
};

static const struct cs_field answer_fields[] = {
    {.name = "server_id", .type = CS_FIELD_STRING, .desc = "node_id of the joining node"},
    {.name = "answer", .type = CS_FIELD_STRING, .desc = "the decrypted challenge, base64"},
    {.name = "cluster_addr",
     .type = CS_FIELD_STRING,
     .desc = "must equal the one bound in the challenge"},
    {.name = NULL},
};

static const struct cs_path ha_paths[] = {
    {.pattern = "storage/raft/join",
     .fields = join_fields,
     .ops = {[CS_OP_CREATE] = join_write, [CS_OP_UPDATE] = join_write},
     .flags = CS_PATH_UNAUTH | CS_PATH_SEALED_OK | CS_PATH_NO_ACTIVE | CS_PATH_LOCAL,
     .synopsis = "join this node to a raft cluster"},
    {.pattern = "storage/raft/bootstrap/challenge",
     .fields = challenge_fields,
     .ops = {[CS_OP_CREATE] = challenge_write, [CS_OP_UPDATE] = challenge_write},
     .flags = CS_PATH_UNAUTH,
     .synopsis = "issue a join challenge (active node)"},
    {.pattern = "storage/raft/bootstrap/answer",
     .fields = answer_fields,
     .ops = {[CS_OP_CREATE] = answer_write, [CS_OP_UPDATE] = answer_write},
     .flags = CS_PATH_UNAUTH,
     .synopsis = "answer a join challenge (active node)"},
    {.pattern = "storage/raft/digest",
     .ops = {[CS_OP_READ] = digest_read},
     .flags = CS_PATH_NO_ACTIVE | CS_PATH_LOCAL,
     .synopsis = "this node's applied index and running digest of applied entries"},
    {.pattern = "step-down",
     .ops = {[CS_OP_CREATE] = step_down_write, [CS_OP_UPDATE] = step_down_write},
     .flags = CS_PATH_SUDO,
     .synopsis = "transfer leadership to another voter"},
    {.pattern = "ha-status",
     .ops = {[CS_OP_READ] = ha_status_read},
     .synopsis = "the cluster's nodes"},
};

void cs_ha_register(void)
{
	cs_sys_set_paths(CS_SYS_HA, ha_paths, CS_ARRAY_LEN(ha_paths));
}
