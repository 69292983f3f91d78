/*
 * The join state machine (see join.h). One static table says which events each state
 * accepts, where they lead and what runs on the way; cs_join_fire is the only place the
 * state changes. The state moves before the action runs, so an action may fire the
 * next event itself (a reply that needs the next target, a challenge that finds the
 * keys already given).
 *
 * Secrets: the challenge, the answer (the nonce), the KEK and the request bodies are
 * wiped before they are freed; the private key never leaves this node.
 */
#include "raft/join.h"

#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/secmem.h"
#include "lib/util.h"
#include "raft/node.h"
#include "storage/barrier.h"

typedef void (*join_action)(struct cs_join *j, struct cs_join_slot *slot);

struct transition {
	bool ok; /* false: the state refuses the event */
	enum cs_join_state next;
	join_action act;
};

static void act_none(struct cs_join *j, struct cs_join_slot *slot);
static void act_seek(struct cs_join *j, struct cs_join_slot *slot);
static void act_next_target(struct cs_join *j, struct cs_join_slot *slot);
static void act_backoff(struct cs_join *j, struct cs_join_slot *slot);
static void act_round(struct cs_join *j, struct cs_join_slot *slot);
static void act_give_up(struct cs_join *j, struct cs_join_slot *slot);
static void act_challenged(struct cs_join *j, struct cs_join_slot *slot);
static void act_malformed(struct cs_join *j, struct cs_join_slot *slot);
static void act_answer(struct cs_join *j, struct cs_join_slot *slot);
static void act_accepted(struct cs_join *j, struct cs_join_slot *slot);
static void act_synced(struct cs_join *j, struct cs_join_slot *slot);
static void act_cancel(struct cs_join *j, struct cs_join_slot *slot);
static void act_shutdown(struct cs_join *j, struct cs_join_slot *slot);
static void slot_issue(struct cs_join *j, struct cs_join_slot *slot);
static void slot_clear(struct cs_join *j, struct cs_join_slot *slot);

#define T(n, a)                                                                                    \
	{                                                                                          \
		true, CS_JOIN_##n, a                                                               \
	}

/* Every state × event the machine accepts; a missing cell is refused. */
static const struct transition table[CS_JOIN_NSTATES][CS_JOIN_NEVENTS] =
    {
	[CS_JOIN_IDLE] =
	    {
		[CS_JOIN_EV_START] = T(SEEKING, act_seek),
		[CS_JOIN_EV_CANCEL] = T(IDLE, act_none), /* nothing to cancel */
		[CS_JOIN_EV_SHUTDOWN] = T(IDLE, act_shutdown),
	    },
	[CS_JOIN_SEEKING] =
	    {
		[CS_JOIN_EV_TARGET_FAILED] = T(SEEKING, act_next_target),
		[CS_JOIN_EV_ROUND_FAILED] = T(BACKOFF, act_backoff),
		[CS_JOIN_EV_GIVE_UP] = T(IDLE, act_give_up),
		[CS_JOIN_EV_CHALLENGE] = T(CHALLENGED, act_challenged),
		[CS_JOIN_EV_MALFORMED] = T(IDLE, act_malformed),
		[CS_JOIN_EV_CANCEL] = T(IDLE, act_cancel),
		[CS_JOIN_EV_SHUTDOWN] = T(IDLE, act_shutdown),
	    },
	[CS_JOIN_BACKOFF] =
	    {
		[CS_JOIN_EV_TIMER] = T(SEEKING, act_round),
		[CS_JOIN_EV_CANCEL] = T(IDLE, act_cancel),
		[CS_JOIN_EV_SHUTDOWN] = T(IDLE, act_shutdown),
	    },
	[CS_JOIN_CHALLENGED] =
	    {
		[CS_JOIN_EV_KEYS] = T(ANSWERING, act_answer),
		[CS_JOIN_EV_REASK] = T(SEEKING, act_seek), /* issued for another node or key */
		[CS_JOIN_EV_CANCEL] = T(IDLE, act_cancel),
		[CS_JOIN_EV_SHUTDOWN] = T(IDLE, act_shutdown),
	    },
	[CS_JOIN_ANSWERING] =
	    {
		[CS_JOIN_EV_ACCEPTED] = T(SYNCING, act_accepted),
		[CS_JOIN_EV_REASK] = T(SEEKING, act_seek), /* refused, unreachable, no raft */
		[CS_JOIN_EV_SHUTDOWN] = T(IDLE, act_shutdown),
	    },
	[CS_JOIN_SYNCING] =
	    {
		[CS_JOIN_EV_SYNCED] = T(IDLE, act_synced),
		[CS_JOIN_EV_REASK] = T(SEEKING, act_seek), /* nothing replicated */
		[CS_JOIN_EV_SHUTDOWN] = T(IDLE, act_shutdown),
	    },
	[CS_JOIN_SLOT_FREE] =
	    {
		[CS_JOIN_EV_ISSUE] = T(SLOT_ISSUED, slot_issue),
		[CS_JOIN_EV_WITHDRAW] = T(SLOT_FREE, act_none),
	    },
	[CS_JOIN_SLOT_ISSUED] =
	    {
		[CS_JOIN_EV_ISSUE] = T(SLOT_ISSUED, slot_issue),  /* asked again: fresh nonce */
		[CS_JOIN_EV_ANSWERED] = T(SLOT_FREE, slot_clear), /* single use */
		[CS_JOIN_EV_EXPIRED] = T(SLOT_FREE, slot_clear),
		[CS_JOIN_EV_WITHDRAW] = T(SLOT_FREE, slot_clear),
	    },
};

#undef T

static const char *const state_names[CS_JOIN_NSTATES] = {
    "idle", "seeking", "backoff", "challenged", "answering", "syncing", "slot_free", "slot_issued",
};

static const char *const event_names[CS_JOIN_NEVENTS] = {
    "start",     "target_failed", "round_failed", "give_up", "timer",    "challenge",
    "malformed", "keys",          "accepted",     "reask",   "synced",   "cancel",
    "shutdown",  "issue",         "answered",     "expired", "withdraw",
};

const char *cs_join_state_name(enum cs_join_state s)
{
	return s < CS_JOIN_NSTATES ? state_names[s] : "?";
}

const char *cs_join_event_name(enum cs_join_event e)
{
	return e < CS_JOIN_NEVENTS ? event_names[e] : "?";
}

int cs_join_transition(enum cs_join_state state, enum cs_join_event ev, enum cs_join_state *next)
{
	if (state >= CS_JOIN_NSTATES || ev >= CS_JOIN_NEVENTS || !table[state][ev].ok)
		return CS_EINVAL;
	*next = table[state][ev].next;
	return 0;
}

/* The one way a state changes: *state is the joiner's or a slot's. */
static int fire(struct cs_join *j, struct cs_join_slot *slot, enum cs_join_state *state,
		enum cs_join_event ev)
{
	enum cs_join_state next;
	if (cs_join_transition(*state, ev, &next)) {
		cs_debug("join: %s refused in state %s", cs_join_event_name(ev),
			 cs_join_state_name(*state));
		return CS_EINVAL;
	}
	join_action act = table[*state][ev].act;
	*state = next;
	act(j, slot);
	return 0;
}

int cs_join_fire(struct cs_join *j, enum cs_join_event ev)
{
	return fire(j, NULL, &j->state, ev);
}

void cs_join_slot_fire(struct cs_join *j, struct cs_join_slot *s, enum cs_join_event ev)
{
	fire(j, s, &s->state, ev);
}

/* ---------------------------------------------------------------- helpers */

static void str_wipe_free(char **p)
{
	if (*p) {
		cs_zero(*p, strlen(*p));
		free(*p);
		*p = NULL;
	}
}

static void target_clear(struct cs_join_target *t)
{
	free(t->url);
	free(t->ca);
	free(t->cert);
	str_wipe_free(&t->key);
	free(t->sni);
	memset(t, 0, sizeof *t);
}

void cs_join_forget_keys(struct cs_join *j)
{
	if (j->kek) {
		cs_secmem_free(j->kek, CS_KEY_LEN);
		j->kek = NULL;
	}
}

/* Stop whatever is on its way: the request in flight, the retry wait. */
static void quiesce(struct cs_join *j)
{
	if (j->req) {
		cs_curlm_cancel(&j->http, j->req);
		j->req = NULL;
	}
	if (!j->closing)
		uv_timer_stop(&j->retry_timer);
}

const cJSON *cs_join_data_of(const cJSON *resp)
{
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(resp, "data");
	return d ? d : resp;
}

/* ---------------------------------------------------------------- HTTP */

static void challenge_reply(void *ctx, int rc, long status, struct cs_buf *body, const char *err);
static void answer_reply(void *ctx, int rc, long status, struct cs_buf *body, const char *err);

/* POST to targets[cur]; a request that cannot start is a failed one. */
static void post(struct cs_join *j, const char *path, const char *body, cs_curlm_cb cb)
{
	const struct cs_join_target *t = &j->targets[j->cur];
	struct cs_curlm_target ct = {
	    .url = t->url, .ca = t->ca, .cert = t->cert, .key = t->key, .sni = t->sni};
	j->req = NULL;
	if (!j->http_ready || cs_curlm_post(&j->http, &ct, path, body ? body : "", cb, j, &j->req))
		cb(j, CS_EINTERNAL, 0, NULL, "curl init failed");
}

static void challenge_reply(void *ctx, int rc, long status, struct cs_buf *body, const char *err)
{
	struct cs_join *j = ctx;
	j->req = NULL;
	if (rc == 0 && status == 200) {
		char *text = strndup(body->data ? body->data : "", body->len);
		cs_join_got_challenge(j, text);
		str_wipe_free(&text);
		return;
	}
	if (rc == 0)
		snprintf(j->last_err, sizeof j->last_err, "%s answered %ld: %.150s",
			 j->targets[j->cur].url, status,
			 body && body->data ? (const char *)body->data : "");
	else
		snprintf(j->last_err, sizeof j->last_err, "%s", err);
	cs_debug("ha: join: %s", j->last_err);
	if (j->cur + 1 < j->n_targets)
		cs_join_fire(j, CS_JOIN_EV_TARGET_FAILED);
	else
		cs_join_fire(j, j->retry ? CS_JOIN_EV_ROUND_FAILED : CS_JOIN_EV_GIVE_UP);
}

/* ---------------------------------------------------------------- actions */

static void act_none(struct cs_join *j, struct cs_join_slot *slot)
{
	(void)j;
}

/* A fresh key per attempt: the leader binds its public half into the challenge and
 * certifies only it, so an answer seen by anyone else is worthless. */
static void act_seek(struct cs_join *j, struct cs_join_slot *slot)
{
	quiesce(j);
	str_wipe_free(&j->challenge);
	str_wipe_free(&j->answer);
	str_wipe_free(&j->body);
	EVP_PKEY_free(j->key);
	j->key = NULL;
	cJSON *b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "server_id", j->env.node_id);
	cJSON_AddStringToObject(b, "cluster_addr", j->env.cluster_addr);
	char *pem = NULL;
	size_t pl = 0;
	if (cs_cluster_tls_gen_key(&j->key) == 0 &&
	    cs_cluster_tls_pubkey_to_pem(j->key, &pem, &pl) == 0)
		cJSON_AddStringToObject(b, "public_key", pem);
	else
		cs_error("ha: join: cannot generate this node's cluster key");
	cs_cluster_tls_pem_free(pem, pl);
	cJSON_AddStringToObject(b, "api_addr", j->env.api_addr ? j->env.api_addr : "");
	cJSON_AddBoolToObject(b, "non_voter", j->non_voter);
	j->body = cJSON_PrintUnformatted(b);
	cJSON_Delete(b);
	j->last_err[0] = '\0';
	j->cur = 0;
	post(j, CS_JOIN_CHALLENGE_PATH, j->body, challenge_reply);
}

static void act_next_target(struct cs_join *j, struct cs_join_slot *slot)
{
	j->cur++;
	post(j, CS_JOIN_CHALLENGE_PATH, j->body, challenge_reply);
}

static void retry_cb(uv_timer_t *t)
{
	struct cs_join *j = CS_CONTAINER_OF(t, struct cs_join, retry_timer);
	cs_join_fire(j, CS_JOIN_EV_TIMER);
}

static void act_backoff(struct cs_join *j, struct cs_join_slot *slot)
{
	uv_timer_start(&j->retry_timer, retry_cb, CS_JOIN_RETRY_MS, 0);
}

static void act_round(struct cs_join *j, struct cs_join_slot *slot)
{
	j->cur = 0;
	post(j, CS_JOIN_CHALLENGE_PATH, j->body, challenge_reply);
}

static void act_give_up(struct cs_join *j, struct cs_join_slot *slot)
{
	cs_warn("ha: join failed: %s", j->last_err[0] ? j->last_err : "no leader to join");
}

static void act_challenged(struct cs_join *j, struct cs_join_slot *slot)
{
	j->env.challenged(j->env.ctx, j->shares, j->threshold);
	cs_info("ha: join: challenge received from %s; unseal this node with the cluster's "
		"keys to finish joining",
		j->targets[j->cur].url);
	if (j->kek) {
		/* Re-join after a failed answer: the keys were given already. */
		char err[256];
		if (cs_join_keys(j, j->kek, err, sizeof err))
			cs_warn("ha: join: %s", err);
	}
}

static void act_malformed(struct cs_join *j, struct cs_join_slot *slot)
{
	cs_warn("ha: join: the leader's challenge is malformed or its seal type differs");
}

static void act_answer(struct cs_join *j, struct cs_join_slot *slot)
{
	str_wipe_free(&j->body);
	cJSON *b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "server_id", j->env.node_id);
	cJSON_AddStringToObject(b, "cluster_addr", j->env.cluster_addr);
	cJSON_AddStringToObject(b, "answer", j->answer ? j->answer : "");
	j->body = cJSON_PrintUnformatted(b);
	cs_json_delete_wiped(b);
	post(j, CS_JOIN_ANSWER_PATH, j->body, answer_reply);
}

static void act_accepted(struct cs_join *j, struct cs_join_slot *slot)
{
	str_wipe_free(&j->body);
	str_wipe_free(&j->answer);
	cs_info("ha: join: accepted by the leader; catching up");
}

static void act_synced(struct cs_join *j, struct cs_join_slot *slot)
{
	cs_join_forget_keys(j);
}

static void act_cancel(struct cs_join *j, struct cs_join_slot *slot)
{
	quiesce(j);
	str_wipe_free(&j->challenge);
	str_wipe_free(&j->body);
	cs_join_forget_keys(j);
	EVP_PKEY_free(j->key);
	j->key = NULL;
	j->env.cancelled(j->env.ctx);
}

static void act_shutdown(struct cs_join *j, struct cs_join_slot *slot)
{
	quiesce(j);
	str_wipe_free(&j->challenge);
	str_wipe_free(&j->answer);
	str_wipe_free(&j->body);
	cs_join_forget_keys(j);
}

/* ---------------------------------------------------------------- challenge */

void cs_join_got_challenge(struct cs_join *j, const char *body)
{
	cJSON *r = cJSON_Parse(body ? body : "");
	const cJSON *d = cs_join_data_of(r);
	const cJSON *ch = cJSON_GetObjectItemCaseSensitive(d, "challenge");
	const cJSON *sc = cJSON_GetObjectItemCaseSensitive(d, "seal_config");
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(sc, "type");
	const cJSON *wrapped = cJSON_GetObjectItemCaseSensitive(d, "seal_wrapped_kek");
	bool autoseal = cJSON_IsString(type) && strcmp(type->valuestring, "shamir") != 0;
	int shares = 0, threshold = 0;
	/* The same bounds as a stored config (1 <= threshold <= shares <= 255): the counts
	 * size this node's unseal progress. An auto seal needs its wrapped KEK and a node
	 * that can unwrap it. */
	if (!cJSON_IsString(ch) || j->env.seal_config_decode(sc, &shares, &threshold) ||
	    (autoseal && (!j->env.auto_challenge || !cJSON_IsString(wrapped) ||
			  strlen(type->valuestring) > 32))) {
		cJSON_Delete(r);
		cs_join_fire(j, CS_JOIN_EV_MALFORMED);
		return;
	}
	str_wipe_free(&j->challenge);
	j->challenge = strdup(ch->valuestring); /* until answered */
	j->shares = shares;
	j->threshold = threshold;
	char stype[33] = "", *w = NULL;
	if (autoseal) {
		snprintf(stype, sizeof stype, "%s", type->valuestring);
		w = strdup(wrapped->valuestring);
	}
	cJSON_Delete(r);
	cs_join_fire(j, CS_JOIN_EV_CHALLENGE);
	if (w && j->state == CS_JOIN_CHALLENGED)
		j->env.auto_challenge(j->env.ctx, stype, w);
	free(w);
}

/* The opened challenge must name this node: its server_id, cluster address and this
 * attempt's key. Returns the answer (the nonce, base64, malloc'd) or NULL with errmsg. */
static char *challenge_check(struct cs_join *j, const struct cs_buf *plain, char *errmsg,
			     size_t errlen)
{
	cJSON *c = cJSON_ParseWithLength(plain->data, plain->len);
	const cJSON *nonce = cJSON_GetObjectItemCaseSensitive(c, "nonce");
	const cJSON *sid = cJSON_GetObjectItemCaseSensitive(c, "server_id");
	const cJSON *addr = cJSON_GetObjectItemCaseSensitive(c, "cluster_addr");
	const cJSON *fp = cJSON_GetObjectItemCaseSensitive(c, "public_key_sha256");
	uint8_t mine[32];
	char hex[65];
	bool ok = cJSON_IsString(nonce) && cJSON_IsString(sid) && cJSON_IsString(addr) &&
		  cJSON_IsString(fp) && j->key && cs_cluster_tls_pubkey_sha256(j->key, mine) == 0;
	if (ok) {
		cs_hex_encode(mine, sizeof mine, hex);
		ok = strcmp(sid->valuestring, j->env.node_id) == 0 &&
		     strcmp(addr->valuestring, j->env.cluster_addr) == 0 &&
		     strcmp(fp->valuestring, hex) == 0;
	}
	char *answer = ok ? strdup(nonce->valuestring) : NULL;
	if (!ok)
		snprintf(errmsg, errlen,
			 "the join challenge was issued for another node or key, not this one");
	cs_json_delete_wiped(c);
	return answer;
}

int cs_join_keys(struct cs_join *j, const uint8_t *kek, char *errmsg, size_t errlen)
{
	if (j->state != CS_JOIN_CHALLENGED) {
		/* Still seeking/answering/syncing: keep the KEK for when it is needed. */
		if (!j->kek) {
			j->kek = cs_secmem_alloc(CS_KEY_LEN);
			memcpy(j->kek, kek, CS_KEY_LEN);
		}
		return 0;
	}
	size_t ctlen = 0;
	uint8_t *ct =
	    j->challenge ? cs_b64_decode(j->challenge, strlen(j->challenge), &ctlen) : NULL;
	struct cs_buf plain = CS_BUF_INIT;
	int rc = ct ? cs_aead_open(kek, CS_JOIN_CHALLENGE_AAD, strlen(CS_JOIN_CHALLENGE_AAD), ct,
				   ctlen, &plain)
		    : CS_EINVAL;
	free(ct);
	if (rc) {
		cs_buf_free_secure(&plain);
		snprintf(errmsg, errlen,
			 "error decrypting the join challenge: the unseal keys are not this "
			 "cluster's");
		return CS_EINVAL;
	}
	char *answer = challenge_check(j, &plain, errmsg, errlen);
	cs_buf_free_secure(&plain);
	if (!answer) {
		/* Issued for another node (or a stale key): never answer it; ask afresh. */
		cs_warn("ha: join: %s; asking for a new challenge", errmsg);
		cs_join_fire(j, CS_JOIN_EV_REASK);
		return CS_EINVAL;
	}
	str_wipe_free(&j->challenge);
	str_wipe_free(&j->answer);
	j->answer = answer;
	/* The challenge opened: these are the cluster's keys (replace any earlier ones). */
	if (!j->kek)
		j->kek = cs_secmem_alloc(CS_KEY_LEN);
	if (j->kek != kek)
		memcpy(j->kek, kek, CS_KEY_LEN);
	cs_join_fire(j, CS_JOIN_EV_KEYS);
	return 0;
}

/* ---------------------------------------------------------------- answer */

int cs_join_answer_load(struct cs_join *j, const cJSON *d, X509 **ca_out,
			struct cs_cluster_cred *minted)
{
	const cJSON *ca_pem = cJSON_GetObjectItemCaseSensitive(d, "ca_cert");
	const cJSON *node_pem = cJSON_GetObjectItemCaseSensitive(d, "node_cert");
	if (!cJSON_IsString(ca_pem) || !cJSON_IsString(node_pem) || !j->key)
		return CS_EINVAL;
	X509 *ca = NULL, *cert = NULL;
	char name[32], err[256] = "";
	cs_cluster_tls_node_name(cs_raft_id_from_name(j->env.node_id), name, sizeof name);
	int rc =
	    cs_cluster_tls_cert_from_pem(ca_pem->valuestring, strlen(ca_pem->valuestring), &ca);
	if (!rc)
		rc = cs_cluster_tls_cert_from_pem(node_pem->valuestring,
						  strlen(node_pem->valuestring), &cert);
	/* Our key, our raft id, the cluster's CA. */
	if (!rc && (X509_check_private_key(cert, j->key) != 1 ||
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
	*ca_out = ca;
	minted->cert = cert;
	minted->key = j->key;
	j->key = NULL;
	return 0;
}

static void answer_reply(void *ctx, int rc, long status, struct cs_buf *body, const char *err)
{
	struct cs_join *j = ctx;
	j->req = NULL;
	if (rc) {
		cs_warn("ha: join: %s; asking again", err);
		cs_join_fire(j, CS_JOIN_EV_REASK);
		return;
	}
	cJSON *r = cJSON_ParseWithLength(body && body->data ? (const char *)body->data : "",
					 body ? body->len : 0);
	const cJSON *d = cs_join_data_of(r);
	X509 *ca = NULL;
	struct cs_cluster_cred minted = {0};
	rc = status == 200 ? cs_join_answer_load(j, d, &ca, &minted) : CS_EINVAL;
	const cJSON *adm = cJSON_GetObjectItemCaseSensitive(d, "admitted_index");
	j->admitted_index = cJSON_IsString(adm) ? strtoull(adm->valuestring, NULL, 10) : 0;
	if (!rc)
		rc = j->env.accepted(j->env.ctx, ca, &minted,
				     cJSON_GetObjectItemCaseSensitive(d, "peers"));
	if (rc == CS_EINVAL)
		cs_warn("ha: join: the leader refused the answer (HTTP %ld); asking again", status);
	cs_json_delete_wiped(r);
	cs_join_fire(j, rc ? CS_JOIN_EV_REASK : CS_JOIN_EV_ACCEPTED);
}

/* ---------------------------------------------------------------- leader side */

static void slot_issue(struct cs_join *j, struct cs_join_slot *s)
{
	cs_random(s->nonce, CS_JOIN_NONCE_LEN);
	s->expires = cs_mono_ms() + CS_JOIN_CHALLENGE_TTL_MS;
}

static void slot_clear(struct cs_join *j, struct cs_join_slot *s)
{
	EVP_PKEY_free(s->pub);
	cs_zero(s, sizeof *s);
	s->state = CS_JOIN_SLOT_FREE;
}

/* The slot of server_id (create: or a free one, else the one closest to expiry); expired
 * challenges are freed on the way. */
static struct cs_join_slot *slot_of(struct cs_join *j, const char *server_id, bool create)
{
	uint64_t now = cs_mono_ms();
	struct cs_join_slot *free_slot = NULL, *oldest = &j->slots[0];
	for (int i = 0; i < CS_JOIN_MAX_CHALLENGES; i++) {
		struct cs_join_slot *s = &j->slots[i];
		if (s->state == CS_JOIN_SLOT_ISSUED && s->expires < now)
			cs_join_slot_fire(j, s, CS_JOIN_EV_EXPIRED);
		if (s->state == CS_JOIN_SLOT_ISSUED && strcmp(s->server_id, server_id) == 0)
			return s;
		if (s->state != CS_JOIN_SLOT_ISSUED && !free_slot)
			free_slot = s;
		if (s->expires < oldest->expires)
			oldest = s;
	}
	if (!create)
		return NULL;
	struct cs_join_slot *s = free_slot ? free_slot : oldest;
	cs_join_slot_fire(j, s, CS_JOIN_EV_WITHDRAW);
	return s;
}

/* The sealed part of a challenge: the nonce to send back and the identity it was
 * issued to, which the joiner checks is its own before answering. */
static char *challenge_plaintext(const struct cs_join_slot *c)
{
	uint8_t fp[32];
	char hex[65];
	if (cs_cluster_tls_pubkey_sha256(c->pub, fp))
		return NULL;
	cs_hex_encode(fp, sizeof fp, hex);
	char *nonce = cs_b64_encode(c->nonce, CS_JOIN_NONCE_LEN);
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "nonce", nonce);
	cJSON_AddStringToObject(j, "server_id", c->server_id);
	cJSON_AddStringToObject(j, "cluster_addr", c->cluster_addr);
	cJSON_AddStringToObject(j, "public_key_sha256", hex);
	char *s = cJSON_PrintUnformatted(j);
	cs_zero(nonce, strlen(nonce));
	free(nonce);
	cs_json_delete_wiped(j);
	return s;
}

struct cs_join_slot *cs_join_issue(struct cs_join *j, const char *server_id,
				   const char *cluster_addr, const char *api_addr, bool non_voter,
				   EVP_PKEY *pub, char **plaintext)
{
	struct cs_join_slot *s = slot_of(j, server_id, true);
	snprintf(s->server_id, sizeof s->server_id, "%s", server_id);
	snprintf(s->cluster_addr, sizeof s->cluster_addr, "%s", cluster_addr);
	snprintf(s->api_addr, sizeof s->api_addr, "%s", api_addr);
	s->non_voter = non_voter;
	EVP_PKEY_free(s->pub); /* issued before to the same node: its new key counts */
	s->pub = pub;
	cs_join_slot_fire(j, s, CS_JOIN_EV_ISSUE);
	*plaintext = challenge_plaintext(s);
	return s;
}

struct cs_join_slot *cs_join_find(struct cs_join *j, const char *server_id)
{
	return slot_of(j, server_id, false);
}

bool cs_join_answer_ok(const struct cs_join_slot *s, const char *answer)
{
	size_t n = 0;
	uint8_t *raw = cs_b64_decode(answer, strlen(answer), &n);
	bool ok = raw && cs_ct_equal(raw, n, s->nonce, CS_JOIN_NONCE_LEN);
	if (raw) {
		cs_zero(raw, n);
		free(raw);
	}
	return ok;
}

void cs_join_withdraw_all(struct cs_join *j)
{
	for (int i = 0; i < CS_JOIN_MAX_CHALLENGES; i++)
		cs_join_slot_fire(j, &j->slots[i], CS_JOIN_EV_WITHDRAW);
}

/* ---------------------------------------------------------------- lifecycle */

int cs_join_init(struct cs_join *j, uv_loop_t *loop, const struct cs_join_env *env, char *errmsg,
		 size_t errlen)
{
	memset(j, 0, sizeof *j);
	j->env = *env;
	j->state = CS_JOIN_IDLE;
	for (int i = 0; i < CS_JOIN_MAX_CHALLENGES; i++)
		j->slots[i].state = CS_JOIN_SLOT_FREE;
	uv_timer_init(loop, &j->retry_timer);
	int rc = cs_curlm_init(&j->http, loop, errmsg, errlen);
	j->http_ready = rc == 0;
	return rc;
}

int cs_join_set_targets(struct cs_join *j, const struct cs_join_target *t, int n, bool retry,
			bool non_voter)
{
	if (j->state != CS_JOIN_IDLE || n < 1 || n > CS_JOIN_MAX_TARGETS)
		return CS_EINVAL;
	for (int i = 0; i < j->n_targets; i++)
		target_clear(&j->targets[i]);
	for (int i = 0; i < n; i++) {
		struct cs_join_target *d = &j->targets[i];
		d->url = strdup(t[i].url);
		size_t len = strlen(d->url);
		while (len && d->url[len - 1] == '/')
			d->url[--len] = '\0';
		d->ca = t[i].ca && *t[i].ca ? strdup(t[i].ca) : NULL;
		d->cert = t[i].cert && *t[i].cert ? strdup(t[i].cert) : NULL;
		d->key = t[i].key && *t[i].key ? strdup(t[i].key) : NULL;
		d->sni = t[i].sni && *t[i].sni ? strdup(t[i].sni) : NULL;
	}
	j->n_targets = n;
	j->retry = retry;
	j->non_voter = non_voter;
	return 0;
}

static void join_handle_closed(struct cs_join *j)
{
	if (--j->open_handles > 0)
		return;
	for (int i = 0; i < j->n_targets; i++)
		target_clear(&j->targets[i]);
	j->n_targets = 0;
	EVP_PKEY_free(j->key);
	j->key = NULL;
	if (j->close_cb)
		j->close_cb(j);
}

static void timer_closed(uv_handle_t *h)
{
	join_handle_closed(CS_CONTAINER_OF((uv_timer_t *)h, struct cs_join, retry_timer));
}

static void http_closed(struct cs_curlm *m)
{
	join_handle_closed(CS_CONTAINER_OF(m, struct cs_join, http));
}

void cs_join_close(struct cs_join *j, void (*cb)(struct cs_join *j))
{
	cs_join_fire(j, CS_JOIN_EV_SHUTDOWN);
	j->closing = true;
	j->close_cb = cb;
	j->open_handles = j->http_ready ? 2 : 1;
	uv_close((uv_handle_t *)&j->retry_timer, timer_closed);
	if (j->http_ready)
		cs_curlm_close(&j->http, http_closed);
}
