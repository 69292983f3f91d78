/*
 * The join protocol (docs/architecture.md, "The cluster") — the joining node's side and
 * the leader's challenge slots — as one explicit state machine: a static transition table
 * (state × event → next state and action) in join.c; an event a state does not list is
 * refused and changes nothing.
 *
 *   IDLE ──START──▶ SEEKING ──CHALLENGE──▶ CHALLENGED ──KEYS──▶ ANSWERING ──ACCEPTED──▶ SYNCING
 *                    │  ▲ ▲                    │                  │                      │
 *      TARGET_FAILED ┘  │ └──────REASK─────────┴──────────────────┴──────────REASK───────┘
 *        ROUND_FAILED ▼ │ TIMER                                                          SYNCED
 *                   BACKOFF                                                              ▼
 *   SEEKING ──GIVE_UP / MALFORMED──▶ IDLE        SEEKING, BACKOFF, CHALLENGED ──CANCEL──▶ IDLE
 *   any ──SHUTDOWN──▶ IDLE
 *
 * The leader keeps one slot per joining node in the same table:
 *   SLOT_FREE ──ISSUE──▶ SLOT_ISSUED (ISSUE again: a fresh nonce)
 *   SLOT_ISSUED ──ANSWERED / EXPIRED / WITHDRAW──▶ SLOT_FREE
 *
 * The wire protocol (Vault's, hardened): POST /v1/sys/storage/raft/bootstrap/challenge
 * {server_id, cluster_addr, public_key (a fresh EC key per START/REASK), api_addr,
 * non_voter} to each target in turn until one answers 200 → the challenge (sealed with
 * the cluster's seal, CS_JOIN_CHALLENGE_AAD) waits for the unseal keys → the KEK opens it
 * and it must name this node's server_id, cluster address and key → POST
 * .../bootstrap/answer {server_id, cluster_addr, answer} to the same target → the reply
 * holds the CA certificate (never its key) and this node's certificate, which must fit
 * this node's key, raft id and that CA → env->accepted starts raft → the keyring
 * replicates and the barrier opens (SYNCED). With retry, a round in which no target
 * answered waits CS_JOIN_RETRY_MS and starts over; without, the join ends.
 *
 * HTTP runs on the loop (lib/curlm.h); everything else is loop-thread too. What the
 * join needs from the node (seal config bounds, unseal progress, raft start) reaches it
 * through struct cs_join_env, given at init.
 */
#ifndef CS_RAFT_JOIN_H
#define CS_RAFT_JOIN_H

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "lib/curlm.h"
#include "storage/cluster_tls.h"

#define CS_JOIN_CHALLENGE_AAD  "core/raft/challenge"
#define CS_JOIN_MAX_TARGETS    16
#define CS_JOIN_RETRY_MS       2000
#define CS_JOIN_CHALLENGE_PATH "/v1/sys/storage/raft/bootstrap/challenge"
#define CS_JOIN_ANSWER_PATH    "/v1/sys/storage/raft/bootstrap/answer"

enum cs_join_state {
	CS_JOIN_IDLE,       /* no join */
	CS_JOIN_SEEKING,    /* asking targets[cur] for a challenge */
	CS_JOIN_BACKOFF,    /* every target failed this round; retry timer running */
	CS_JOIN_CHALLENGED, /* holding a challenge; waiting for the unseal keys */
	CS_JOIN_ANSWERING,  /* the answer is on its way to targets[cur] */
	CS_JOIN_SYNCING,    /* raft runs; waiting for the keyring to replicate */
	/* The leader's side: one challenge slot per joining node. */
	CS_JOIN_SLOT_FREE,   /* no challenge */
	CS_JOIN_SLOT_ISSUED, /* a challenge is out, bound to that node's identity and key */
	CS_JOIN_NSTATES
};

enum cs_join_event {
	CS_JOIN_EV_START,         /* a join was requested (targets set) */
	CS_JOIN_EV_TARGET_FAILED, /* this target did not give a challenge; others remain */
	CS_JOIN_EV_ROUND_FAILED,  /* no target gave one this round, retry is on */
	CS_JOIN_EV_GIVE_UP,       /* no target gave one, no retry */
	CS_JOIN_EV_TIMER,         /* the retry wait is over */
	CS_JOIN_EV_CHALLENGE,     /* a well-formed challenge arrived */
	CS_JOIN_EV_MALFORMED,     /* the challenge reply is malformed or another seal type */
	CS_JOIN_EV_KEYS,          /* the challenge opened with the unseal keys, names us */
	CS_JOIN_EV_ACCEPTED,      /* the answer was accepted and raft started */
	CS_JOIN_EV_REASK,         /* start over with a fresh key (refused, stale, stalled) */
	CS_JOIN_EV_SYNCED,        /* the barrier opened */
	CS_JOIN_EV_CANCEL,        /* sys/init on this node */
	CS_JOIN_EV_SHUTDOWN,      /* the node shuts down */
	/* leader side */
	CS_JOIN_EV_ISSUE,    /* a node asked for a challenge (again: a fresh nonce) */
	CS_JOIN_EV_ANSWERED, /* it answered and was certified: the challenge is used up */
	CS_JOIN_EV_EXPIRED,  /* CS_JOIN_CHALLENGE_TTL_MS passed */
	CS_JOIN_EV_WITHDRAW, /* sealing it failed, leadership lost, or shutdown */
	CS_JOIN_NEVENTS
};

struct cs_join;

/* The node's side, called on the loop thread. Strings are read at each use. */
struct cs_join_env {
	void *ctx;
	const char *node_id;      /* this node's server_id */
	const char *cluster_addr; /* the cluster address it advertises ("ip:port") */
	const char *api_addr;     /* may be NULL */
	/* The seal config of a challenge reply: 0 with the counts when in bounds. */
	int (*seal_config_decode)(const cJSON *sc, int *shares, int *threshold);
	/* A challenge arrived: the node now waits for `threshold` of `shares` keys. */
	void (*challenged)(void *ctx, int shares, int threshold);
	/* Optional: the challenge names an auto seal (`type` is not "shamir") and carries
	 * the KEK as that seal wrapped it; the node unwraps it and calls cs_join_keys. */
	void (*auto_challenge)(void *ctx, const char *type, const char *wrapped);
	/* The join was cancelled before it answered: the node is uninitialised again. */
	void (*cancelled)(void *ctx);
	/* The leader accepted: `ca` (the cluster CA certificate) and `minted` (this node's
	 * certificate and key) are the callee's from now on; `peers` is the reply's list.
	 * Start raft; 0, or non-zero to ask for a new challenge. */
	int (*accepted)(void *ctx, X509 *ca, struct cs_cluster_cred *minted, const cJSON *peers);
};

#define CS_JOIN_NONCE_LEN        32 /* the secret a joiner proves it decrypted */
#define CS_JOIN_MAX_CHALLENGES   32
#define CS_JOIN_CHALLENGE_TTL_MS (10 * 60 * 1000)

/* A challenge the leader issued, bound to the node that asked for it: its server_id,
 * cluster address and public key are sealed inside the challenge too, and only this
 * identity is added and certified when the answer comes back. */
struct cs_join_slot {
	enum cs_join_state state; /* CS_JOIN_SLOT_FREE or CS_JOIN_SLOT_ISSUED */
	char server_id[128];
	char cluster_addr[256];
	char api_addr[256];
	bool non_voter;
	EVP_PKEY *pub; /* the joiner's key: its node certificate is minted for it */
	uint8_t nonce[CS_JOIN_NONCE_LEN];
	uint64_t expires;
};

struct cs_join_target {
	char *url; /* without a trailing '/' */
	char *ca, *cert, *key, *sni;
};

struct cs_join {
	struct cs_join_env env;
	enum cs_join_state state;
	struct cs_curlm http;
	bool http_ready;
	struct cs_curlm_req *req; /* in flight */
	uv_timer_t retry_timer;
	struct cs_join_target targets[CS_JOIN_MAX_TARGETS];
	int n_targets;
	int cur;    /* the target asked now / that gave the challenge */
	bool retry; /* retry rounds every CS_JOIN_RETRY_MS */
	bool non_voter;
	char *body;      /* this round's challenge request (holds the public key) */
	char *challenge; /* base64, from CHALLENGE until answered */
	char *answer;    /* the nonce, base64, while ANSWERING */
	char last_err[256];
	uint8_t *kek;          /* secmem: the unseal keys' KEK, until the barrier opened */
	EVP_PKEY *key;         /* this attempt's node key; its public half is in `body` */
	int shares, threshold; /* the challenge's seal config */
	uint64_t sync_since, synced_index; /* SYNCING: the stall clock (kept by the node) */
	bool closing;
	int open_handles;
	void (*close_cb)(struct cs_join *j);
	/* leader side */
	struct cs_join_slot slots[CS_JOIN_MAX_CHALLENGES];
};

/* No HTTP yet; the state is IDLE. 0, or CS_EINTERNAL with errmsg (libcurl unusable). */
int cs_join_init(struct cs_join *j, uv_loop_t *loop, const struct cs_join_env *env, char *errmsg,
		 size_t errlen);
/* Close everything (as SHUTDOWN, then the handles); cb runs from the last close. */
void cs_join_close(struct cs_join *j, void (*cb)(struct cs_join *j));

/* The transition for (state, ev): 0 and *next, or CS_EINVAL when the state refuses it. */
int cs_join_transition(enum cs_join_state state, enum cs_join_event ev, enum cs_join_state *next);
/* Fire an event: the table's action runs and the state moves, or CS_EINVAL (refused,
 * nothing changes). Actions may fire follow-up events themselves. */
int cs_join_fire(struct cs_join *j, enum cs_join_event ev);
const char *cs_join_state_name(enum cs_join_state s);
const char *cs_join_event_name(enum cs_join_event e);

/* Replace the targets (strings copied; NULL/"" fields are absent; trailing '/' of the
 * URL dropped) and the options. Only while IDLE: CS_EINVAL otherwise. */
int cs_join_set_targets(struct cs_join *j, const struct cs_join_target *t, int n, bool retry,
			bool non_voter);
/* The unseal keys combined into `kek` (CS_KEY_LEN bytes, copied). Not CHALLENGED yet:
 * kept for later, 0. CHALLENGED: open the challenge; 0 (answering) or CS_EINVAL with
 * errmsg (wrong keys: the challenge is kept; issued for another node: asks again). */
int cs_join_keys(struct cs_join *j, const uint8_t *kek, char *errmsg, size_t errlen);
/* Drop the KEK (secmem). */
void cs_join_forget_keys(struct cs_join *j);

/* Leader: issue (or issue anew) the challenge for server_id, bound to cluster_addr and
 * `pub` (taken). The strings must fit the slot (the caller checks). Returns the slot and,
 * in *plaintext, the JSON to seal for the joiner (malloc'd, wipe it; NULL when it could
 * not be built: withdraw the slot). A full table reuses the slot closest to expiry. */
struct cs_join_slot *cs_join_issue(struct cs_join *j, const char *server_id,
				   const char *cluster_addr, const char *api_addr, bool non_voter,
				   EVP_PKEY *pub, char **plaintext);
/* Leader: the live challenge issued to server_id, or NULL (expired ones are freed). */
struct cs_join_slot *cs_join_find(struct cs_join *j, const char *server_id);
/* Leader: does `answer` (base64) hold the slot's nonce? Constant time. */
bool cs_join_answer_ok(const struct cs_join_slot *s, const char *answer);
/* Leader: the slot's challenge was answered (ANSWERED) or withdrawn (WITHDRAW). */
void cs_join_slot_fire(struct cs_join *j, struct cs_join_slot *s, enum cs_join_event ev);
/* Leader: withdraw every challenge (leadership lost, shutdown). */
void cs_join_withdraw_all(struct cs_join *j);

/* Decoders, exposed for the fuzz target: the challenge reply (fires CHALLENGE or
 * MALFORMED) and the answer reply's certificates (0 with ca and minted, or CS_EINVAL). */
void cs_join_got_challenge(struct cs_join *j, const char *body);
int cs_join_answer_load(struct cs_join *j, const cJSON *d, X509 **ca,
			struct cs_cluster_cred *minted);
/* {"data": d} → d; no "data" → the object itself. */
const cJSON *cs_join_data_of(const cJSON *resp);

#endif
