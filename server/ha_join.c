/*
 * The joiner side of the join (see ha.h for the protocol).
 *
 * Happy path: sys/storage/raft/join or retry_join → a thread POSTs
 * bootstrap/challenge to each target in turn → the challenge arrives on the loop
 * (JOIN_CHALLENGED) → the operator unseals with the cluster's shares → the KEK opens the
 * challenge and it names this node → the thread POSTs the answer → raft starts with the
 * minted certificate (JOIN_SYNCING) → the keyring replicates → unsealed standby.
 * Failures: no target answers 200 → retried every JOIN_RETRY_MS with retry, else the
 * join ends (JOIN_NONE); a malformed challenge ends it; wrong keys are refused and the
 * challenge kept; a challenge for another node or key, a refused answer or a failed
 * raft start ask for a new challenge; nothing replicated for JOIN_STALL_MS asks again;
 * sys/init cancels a join that has not answered yet.
 */
#include <curl/curl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/secmem.h"
#include "lib/util.h"
#include "server/ha.h"
#include "server/ha_int.h"
#include "server/seal.h"

static void join_start_thread(struct cs_ha *ha, enum join_phase phase);

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

/* This join's key and the certificate minted for it. */
static void join_creds_free(struct cs_ha *ha)
{
	EVP_PKEY_free(ha->join_key);
	ha->join_key = NULL;
	cs_cluster_cred_free(&ha->minted);
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

void cs_ha_join_stop(struct cs_ha *ha)
{
	if (!ha->thread_running)
		return;
	atomic_store(&ha->thread_stop, true);
	pthread_join(ha->thread, NULL);
	ha->thread_running = false;
	atomic_store(&ha->thread_stop, false);
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
	cs_ha_join_stop(ha);
	struct join_job *job = calloc(1, sizeof *job);
	if (!job)
		abort();
	job->ha = ha;
	job->phase = phase;
	cJSON *b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "server_id", core->cfg->node_id);
	cJSON_AddStringToObject(b, "cluster_addr", cs_ha_cluster_addr(core));
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
	cs_ha_join_stop(ha);
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
		rc = cs_ha_config_ca_load(core); /* the operator's CA wins: we mint our own */
		cs_cluster_cred_free(&ha->minted);
	}
	if (rc) {
		cs_warn("ha: join: the leader refused the answer (HTTP %ld); asking again", status);
		cJSON_Delete(j);
		join_start_thread(ha, JOIN_SEEKING);
		return;
	}
	rc = cs_ha_start(core, false);
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

void cs_ha_join_async_cb(uv_async_t *a)
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
	cs_ha_join_stop(ha); /* it has finished: reap it */
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
		     strcmp(addr->valuestring, cs_ha_cluster_addr(core)) == 0 &&
		     strcmp(fp->valuestring, hex) == 0;
	}
	char *answer = ok ? strdup(nonce->valuestring) : NULL;
	if (!ok)
		snprintf(errmsg, errlen,
			 "the join challenge was issued for another node or key, not this one");
	cs_json_delete_wiped(j);
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

void cs_ha_join_sync_tick(struct cs_core *core)
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

void cs_ha_join_init(struct cs_ha *ha)
{
	struct cs_core *core = ha->core;
	pthread_mutex_init(&ha->mu, NULL);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (!core->initialized && !cs_ha_raft_dir_has_state(core) && core->cfg->n_retry_join > 0) {
		targets_from_config(ha, core->cfg);
		ha->retry = true;
		ha->non_voter = core->cfg->retry_join_as_non_voter;
		if (ha->n_targets > 0) {
			cs_info("ha: retry_join: asking %d leader(s) for a join challenge",
				ha->n_targets);
			join_start_thread(ha, JOIN_SEEKING);
		}
	}
}

void cs_ha_join_request(struct cs_ha *ha, const char *leader, const char *ca, const char *cert,
			const char *key, const char *sni, bool retry, bool non_voter)
{
	cs_ha_join_stop(ha);
	targets_free(ha);
	struct join_target *t = &ha->targets[ha->n_targets++];
	t->url = strdup(leader);
	size_t n = strlen(t->url);
	while (n && t->url[n - 1] == '/')
		t->url[--n] = '\0';
	t->ca = *ca ? strdup(ca) : NULL;
	t->cert = *cert ? strdup(cert) : NULL;
	t->key = *key ? strdup(key) : NULL;
	t->sni = *sni ? strdup(sni) : NULL;
	ha->retry = retry;
	ha->non_voter = non_voter;
	join_start_thread(ha, JOIN_SEEKING);
}

void cs_ha_join_free(struct cs_ha *ha)
{
	targets_free(ha);
	join_creds_free(ha);
	pthread_mutex_lock(&ha->mu);
	result_set(ha, NULL);
	pthread_mutex_unlock(&ha->mu);
	pthread_mutex_destroy(&ha->mu);
}
