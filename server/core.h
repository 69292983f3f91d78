/*
 * The core: one per process, owned by the loop thread. It holds the storage, the raft
 * node, the seal state (keyring, unseal progress), the mount tables, and drives every
 * request through the pipeline of docs/architecture.md ("How a request travels"):
 *
 *   HTTP request → parse path/body/query → sealed? → mount + path row → token → ACL →
 *   handler (synchronous, in a transaction) → commit through raft → response
 *
 * Happy path for a write: handler returns 0 → cs_txn_commit → request parked →
 * entry applied on a quorum → commit callback → envelope → cs_http_respond.
 * Failure modes: handler error → transaction aborted, Vault error body; commit failure
 * (leadership lost, shutdown) → 500/503 error, outcome unknown to the client, overlay
 * dropped; node not yet active after start-up → the request waits (bounded) for the
 * post-election barrier, then runs; client gone meanwhile → the response is discarded.
 */
#ifndef CS_SERVER_CORE_H
#define CS_SERVER_CORE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "raft/autopilot.h"
#include "raft/node.h"
#include "server/backend.h"
#include "server/config.h"
#include "server/router.h"
#include "storage/barrier.h"
#include "storage/txn.h"

#define CS_MAX_SHARES      255
#define CS_CORE_MAX_STATES 32

/*
 * The audit broker as the core sees it: audit/ registers one at start-up with
 * cs_core_set_audit (before any request), so the core never includes audit/. Without one
 * nothing is audited. The hooks are audit/audit.h's cs_audit_request, _response and
 * _discard; see there for what each does. All three or none.
 */
struct cs_core_audit {
	int (*request)(struct cs_request *req, int rc);
	void (*response)(struct cs_request *req, int *status, char **body, size_t *len);
	void (*discard)(struct cs_request *req);
};
void cs_core_set_audit(struct cs_core *core, const struct cs_core_audit *broker);

struct cs_seal_state {
	int shares; /* seal config: secret_shares (0 when uninitialised) */
	int threshold;
	uint8_t *keys[CS_MAX_SHARES]; /* unseal progress: submitted shares (secmem) */
	size_t key_len[CS_MAX_SHARES];
	int progress;
	char nonce[37];
	/* The stored seal's kind (enum cs_seal_kind: shamir, transit, pkcs11); with an auto
	 * seal, shares/threshold are 1 and the recovery config is below. */
	int kind;
	int recovery_shares, recovery_threshold;
	bool migration; /* the config's seal differs from the stored one (seal_auto.c) */
};

typedef void (*cs_core_done_cb)(struct cs_core *core, int status, void *ctx);

/*
 * Auto-unseal as the core sees it: server/seal_auto.c registers these at start-up with
 * cs_core_set_autoseal (before cs_core_init), so the core, seal and sys modules never
 * include it (see seal_auto.h for what each does). Without them only Shamir exists, and a
 * config with an auto seal stanza does not start.
 */
struct cs_core_autoseal {
	int (*setup)(struct cs_core *core);
	void (*start)(struct cs_core *core);
	void (*shutdown)(struct cs_core *core, void (*cb)(struct cs_core *core));
	int (*kind)(const struct cs_core *core);
	int (*init)(struct cs_request *req);
	int (*migrate)(struct cs_request *req, const uint8_t *key, size_t len);
	void (*join)(void *core, const char *type, const char *wrapped);
};
void cs_core_set_autoseal(struct cs_core *core, const struct cs_core_autoseal *hooks);
/* The enabled auto seal's kind (enum cs_seal_kind), 0 (Shamir) when there is none. */
int cs_core_autoseal_kind(const struct cs_core *core);

struct cs_ha;
struct cs_seal_auto;

struct cs_core {
	uv_loop_t *loop;
	struct cs_ha *ha; /* server/ha.h: cluster port, join, forwarding */
	struct cs_config *cfg;
	char data_dir[4096];
	struct cs_storage st;
	struct cs_raft_node node;
	struct cs_autopilot_env autopilot; /* what raft/autopilot.c sees of the core */
	bool raft_started;
	bool active; /* leader whose election barrier applied */
	bool initialized;
	struct cs_keyring *kr; /* NULL while sealed */
	struct cs_seal_state seal;
	struct cs_seal_auto *autoseal; /* server/seal_auto.h: the configured auto seal(s) */
	struct cs_core_autoseal autoseal_hooks;
	struct cs_router router;
	struct cs_mount *sys_mount; /* the sys/ mount row (server/sys.c: cs_sys_mount) */
	char cluster_name[128];
	char cluster_id[37];
	int64_t active_since_ns;
	struct cs_request *waiting_active; /* requests parked until the node is active */
	size_t n_waiting;                  /* how many: bounded by CS_WAIT_ACTIVE_MAX */
	uv_timer_t wait_timer;
	struct cs_http_listener *listeners[CS_MAX_LISTENERS];
	int n_listeners;
	struct cs_token_store tokens; /* registered by auth/token.c (server/backend.h) */
	struct cs_expiration expire;  /* registered by auth/expire.c (server/backend.h) */
	struct cs_core_audit audit;   /* registered by audit/audit.c (above) */
	struct cs_acl_hooks acl;      /* registered by server/policy_sys.c (server/backend.h) */
	struct cs_token_events token_events;   /* registered by engines/cubbyhole.c */
	struct cs_identity_hooks identity;     /* registered by engines/identity.c */
	struct cs_password_policies passwords; /* named password policies (backend.h) */
	/* Deferred work (cs_req_defer): a FIFO beyond CS_ASYNC_MAX_RUNNING jobs. */
	struct cs_async *async_head, *async_tail;
	int async_running, async_queued;
	struct cs_workpool pool;  /* where deferred work runs (server/workpool.h) */
	bool pool_close_pending; /* shut down while jobs ran: close after the last */
	/* cs_core_shutdown: steps still to finish, then the caller's callback. */
	void (*shutdown_cb)(struct cs_core *core);
	int shutdown_pending;
	bool shutting_down;
	/* -dev bootstrap */
	cs_core_done_cb dev_cb;
	int dev_state;
	void *dev_ctx;
	uint8_t *dev_unseal_key; /* secmem, until printed */
	size_t dev_unseal_key_len;
	char dev_root_token[160];
	/* Module state (cs_core_state in server/backend.h), in first-use order. */
	struct {
		const struct cs_core_state_type *type;
		void *state;
	} states[CS_CORE_MAX_STATES];
	size_t n_states;
	/* metrics */
	uint64_t requests;
	char errmsg[1024];
};

/* Open storage, load the seal config and set up HA (raft starts at init, unseal or
 * join: server/ha.h). Returns 0 or an error code with core->errmsg set. */
int cs_core_init(struct cs_core *core, uv_loop_t *loop, struct cs_config *cfg);
/* Free every module's state (cs_core_state) once the core's loop has no live handles
 * left (after cs_core_shutdown's callback and uv_run's return): state may embed handles. */
void cs_core_release_state(struct cs_core *core);
/* Start the HTTP listeners from the config. */
int cs_core_listen(struct cs_core *core);
/* Stop listeners, fail waiting requests, close raft and storage; cb when done. */
void cs_core_shutdown(struct cs_core *core, void (*cb)(struct cs_core *core));

/* The HTTP entry point (a cs_http_handler). */
void cs_core_handle_http(struct cs_http_req *hreq, void *ctx);

/*
 * Initialise a fresh node: bootstrap raft, wait until active, write the seal config,
 * wrapped root key, keyring, cluster info, mount tables and a root token in one
 * transaction. On success the unseal keys (shares) and root token are returned through
 * `out` (a cJSON object in sys/init's response shape). Asynchronous: cb runs later.
 */
struct cs_init_params {
	int shares;
	int threshold;
	const char *root_token_id; /* NULL → random */
	/* Auto seal only (server/seal_auto.h): the fresh KEK (CS_KEY_LEN bytes), its envelope
	 * from the seal, the seal's kind and the recovery key split. NULL wrapped: Shamir. */
	const uint8_t *kek;
	const char *wrapped;
	int kind;
	int recovery_shares, recovery_threshold;
};

/* Seal: zeroise the keyring, reset the unseal progress and every backend's state. */
void cs_core_seal(struct cs_core *core);
/* Add one unseal share (raw bytes). *done set when the barrier opened. Errors: CS_EINVAL
 * (bad length / decryption failed with a full set: progress reset). */
int cs_core_unseal_submit(struct cs_core *core, const uint8_t *key, size_t len, bool *done,
			  char *errmsg, size_t errlen);
void cs_core_unseal_reset(struct cs_core *core);

/* A forwarded request finished (server/ha.c): status 0 = the active node's answer was
 * relayed (the HTTP request is gone), else answer with an error now. Frees req. */
void cs_core_forward_done(struct cs_request *req, int status, const char *errmsg);
/* Run the requests waiting for the active node again (leader known or step-down over). */
void cs_core_retry_waiting(struct cs_core *core);

/*
 * Admission before the body: the pipeline's first steps (path, method, sealed, route,
 * token lookup, ACL with the route's flags, e.g. sudo for sys/storage/raft/snapshot)
 * for `h`, whose header block is complete but whose body has not been read. Changes
 * nothing (the transaction is aborted). Returns 0 when the request may go on, else the
 * HTTP status with *body a malloc'd JSON error ({"errors":[...]}, *len bytes); a
 * refusal is audited like any refused request. A standby decides from its own copy of
 * the token store. Loop thread. Used as the spool policy (cs_http_set_spool_policy).
 */
int cs_core_admit(struct cs_core *core, struct cs_http_req *h, char **body, size_t *len);

/* Called by the raft node's monitor. */
void cs_core_on_active(void *ctx, bool active);

/* Defaults a mount inherits. */
int64_t cs_core_default_ttl(const struct cs_core *core, const struct cs_mount *m);
int64_t cs_core_max_ttl(const struct cs_core *core, const struct cs_mount *m);

/* Start the -dev bootstrap: init (1 share), unseal, mount secret/ as kv; cb when done. */
void cs_core_dev_setup(struct cs_core *core, cs_core_done_cb cb, void *ctx);

#endif
