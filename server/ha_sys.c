/*
 * The HA sys/ endpoints (see ha.h for the design) and the leader side of the join (its
 * challenge slots are in raft/join.h):
 * storage/raft/join (on the joining node), bootstrap/challenge and bootstrap/answer (on
 * the active node), storage/raft/digest, step-down, ha-status, and sys/leader's fields.
 * Loop thread.
 */
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/secmem.h"
#include "lib/util.h"
#include "lib/json.h"
#include "server/ha.h"
#include "server/ha_int.h"
#include "server/seal.h"
#include "server/seal_config.h"
#include "server/sys.h"

static int join_write(struct cs_request *req)
{
	struct cs_core *core = req->core;
	struct cs_ha *ha = ha_of(core);
	if (core->initialized && cs_ha_join_idle(ha))
		return cs_req_error(req, CS_EINVAL,
				    "node is already initialized or part of a cluster");
	if (ha->running || cs_ha_raft_dir_has_state(core))
		return cs_req_error(req, CS_EINVAL, "node is already part of a raft cluster");
	if (!cs_ha_join_idle(ha))
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
	bool retry = cs_req_bool(req, "retry", false);
	cs_ha_join_request(ha, leader, cs_req_str(req, "leader_ca_cert", ""),
			   cs_req_str(req, "leader_client_cert", ""),
			   cs_req_str(req, "leader_client_key", ""),
			   cs_req_str(req, "leader_tls_servername", ""), retry,
			   cs_req_bool(req, "non_voter", false));
	cs_info("ha: join requested: %s%s", leader, retry ? " (retrying)" : "");
	req->raw = cJSON_CreateObject();
	cJSON_AddBoolToObject(req->raw, "joined", true);
	return 0;
}

/* ---------------------------------------------------------------- join: leader side */

static int challenge_write(struct cs_request *req)
{
	struct cs_core *core = req->core;
	struct cs_ha *ha = ha_of(core);
	const char *sid = cs_req_str(req, "server_id", "");
	const char *addr = cs_ha_strip_scheme(cs_req_str(req, "cluster_addr", ""));
	const char *api = cs_req_str(req, "api_addr", "");
	const char *pk = cs_req_str(req, "public_key", "");
	struct sockaddr_storage sa;
	if (!*sid)
		return cs_req_error(req, CS_EINVAL, "no server id provided");
	if (strlen(sid) >= sizeof ha->join.slots[0].server_id)
		return cs_req_error(req, CS_EINVAL, "server id too long");
	if (strlen(addr) >= sizeof ha->join.slots[0].cluster_addr ||
	    cs_cluster_parse_address(addr, &sa))
		return cs_req_error(req, CS_EINVAL,
				    "cluster_addr must be an IP address and port, as in "
				    "10.0.0.2:8201");
	if (strlen(api) >= sizeof ha->join.slots[0].api_addr)
		return cs_req_error(req, CS_EINVAL, "api_addr too long");
	EVP_PKEY *pub = NULL;
	if (cs_cluster_tls_pubkey_from_pem(pk, strlen(pk), &pub))
		return cs_req_error(req, CS_EINVAL,
				    "public_key must be the joining node's EC public key (PEM)");
	if (!ha->ca.key) {
		EVP_PKEY_free(pub);
		return cs_req_error(req, CS_EINTERNAL, "no cluster TLS keyring loaded");
	}
	char *pt = NULL;
	struct cs_join_slot *c = cs_join_issue(&ha->join, sid, addr, api,
					       cs_req_bool(req, "non_voter", false), pub, &pt);
	struct cs_buf ct = CS_BUF_INIT;
	int rc =
	    pt ? cs_seal_encrypt(core, CS_JOIN_CHALLENGE_AAD, pt, strlen(pt), &ct) : CS_ECRYPTO;
	if (pt) {
		cs_zero(pt, strlen(pt));
		free(pt);
	}
	if (rc) {
		cs_join_slot_fire(&ha->join, c, CS_JOIN_EV_WITHDRAW);
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
	cJSON_AddStringToObject(sc, "type", cs_seal_kind_name(core->seal.kind));
	if (core->seal.kind != CS_SEAL_SHAMIR) {
		/* An auto seal: the joiner unwraps the KEK with its own (same) seal. */
		struct cs_buf w = CS_BUF_INIT;
		if (cs_store_get(&core->st.store, CS_WRAPPED_KEK_PATH, strlen(CS_WRAPPED_KEK_PATH),
				 &w) == 0) {
			cs_buf_putc(&w, '\0');
			cJSON_AddStringToObject(d, "seal_wrapped_kek", w.data);
		}
		cs_buf_free(&w);
	}
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
static int mint_for(struct cs_ha *ha, const struct cs_join_slot *c, cJSON *d, char *err,
		    size_t errlen)
{
	char ip[128];
	cs_ha_host_of(c->cluster_addr, ip, sizeof ip);
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
	const char *addr = cs_ha_strip_scheme(cs_req_str(req, "cluster_addr", ""));
	if (!*sid)
		return cs_req_error(req, CS_EINVAL, "no server id provided");
	if (!*ans)
		return cs_req_error(req, CS_EINVAL, "no answer provided");
	struct cs_join_slot *c = cs_join_find(&ha->join, sid);
	if (!c)
		return cs_req_error(req, CS_EINVAL,
				    "no expected answer for the server id provided");
	if (!cs_join_answer_ok(c, ans))
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
	/* Everything up to here, an earlier removal marker of this node_id included, is
	 * history to the new member (cs_autopilot_marker_removes); a string, as raft_id. */
	char adm[24];
	snprintf(adm, sizeof adm, "%llu", (unsigned long long)raft_last_index(&core->node.raft));
	cJSON_AddStringToObject(d, "admitted_index", adm);
	cs_ha_put_node_info(&req->txn, id, c->server_id, c->api_addr, c->cluster_addr,
			    c->non_voter);
	cs_ha_queue_change(core, CHANGE_ADD, id, 0, c->cluster_addr);
	cs_ha_queue_change(core, CHANGE_ASSIGN, id, RAFT_STANDBY, c->cluster_addr);
	cs_info("ha: node %s (%s) answered its join challenge; adding it as a non-voter",
		c->server_id, c->cluster_addr);
	cs_join_slot_fire(&ha->join, c, CS_JOIN_EV_ANSWERED); /* single use */
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
	if (!core->active)
		return cs_req_error(req, CS_ENOTACTIVE, "node is not active");
	if (is_dev(core) || core->node.raft.configuration.n < 2) {
		cs_info("ha: step-down requested with no other voter; staying active");
		return 0;
	}
	cs_ha_step_down_begin(core);
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
