/*
 * The backend interface: what every secrets engine and auth method sees of the core.
 *
 * A backend is a static table of path patterns (struct cs_path) with one handler per
 * operation, a field schema and flags, in the spirit of OpenBao's framework.Path. The
 * generic code in server/backend.c matches the request path against the table, merges
 * path captures into the request data, validates and coerces declared fields (400 on a
 * bad value), warns about unknown fields, answers 405 when the path has no handler for
 * the operation, runs the existence check that turns an update into a create, and only
 * then calls the handler.
 *
 * Handlers are synchronous: they read and write through req->txn (storage/txn.h) under
 * the mount's storage prefix, fill the response fields and return 0 or a CS_E* code
 * (with an optional message set by cs_req_error). The core commits the transaction and
 * holds the HTTP response until the write applied through raft.
 *
 * Pattern syntax (segments separated by '/'): a literal segment; "{name}" one non-empty
 * segment; "{name*}" the rest of the path (zero or more characters, may contain '/';
 * at most one per pattern, literal segments may follow it: "mounts/{path*}/tune").
 * The first matching row wins: order tables from specific to general.
 */
#ifndef CS_SERVER_BACKEND_H
#define CS_SERVER_BACKEND_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "server/workpool.h"
#include "storage/txn.h"

enum cs_op {
	CS_OP_READ,
	CS_OP_CREATE,
	CS_OP_UPDATE,
	CS_OP_DELETE,
	CS_OP_LIST,
	CS_OP_PATCH,
	CS_OP__COUNT
};

/*
 * Hooks: how server/ reaches code above it (policy evaluation, the token store, the
 * expiration manager, audit, cubbyhole) without including it. There is one mechanism:
 * each hook is a field of an interface struct owned by the core, and the module that
 * implements it registers the struct once at start-up, from its register function
 * (called by cmd/modules.c), with cs_core_set_<interface>(core, &iface). The struct is
 * copied; a NULL field means "not provided" and each interface says what happens then.
 * Nothing is a file-level variable, so two cores in one process have their own.
 *
 *   cs_core_set_acl          struct cs_acl_hooks       policy (server/policy_sys.c)
 *   cs_core_set_token_store  struct cs_token_store     auth/token.c
 *   cs_core_set_token_events struct cs_token_events    engines/cubbyhole.c
 *   cs_core_set_expiration   struct cs_expiration      auth/expire.c
 *   cs_core_set_audit        struct cs_core_audit      audit/audit.c (server/core.h)
 *   cs_core_set_identity     struct cs_identity_hooks  engines/identity.c
 *   cs_core_set_password_policies struct cs_password_policies  (sys/policies/password)
 */
struct cs_request;
struct cs_core;

/* The ACL check (policy/): called for every authenticated request of a non-root token,
 * once the operation is final (after the existence check turned an update into a
 * create), before the handler and before the 405 check. Returns 0 to allow, or
 * CS_EPERM with a message. Without one only root tokens get through. */
typedef int (*cs_acl_hook_fn)(struct cs_request *req);
/* Whether the request's token has sudo on the request's path. */
typedef bool (*cs_sudo_hook_fn)(struct cs_request *req);
/* Whether the request's token has some capability on some path under `mount_path`
 * ("secret/", "auth/userpass/"), as Vault's hasMountAccess decides which mounts
 * sys/internal/ui/mounts shows. */
typedef bool (*cs_mount_visible_fn)(struct cs_request *req, const char *mount_path);
struct cs_acl_hooks {
	cs_acl_hook_fn check;              /* without: only root tokens */
	cs_sudo_hook_fn sudo;              /* without: only root tokens have sudo */
	cs_mount_visible_fn mount_visible; /* without: only root tokens see mounts */
};
void cs_core_set_acl(struct cs_core *core, const struct cs_acl_hooks *acl);
/* Run the ACL check of the request's core (CS_EPERM when none); 0 for root tokens. */
int cs_backend_acl(struct cs_request *req);
/* Whether the request's token has sudo on the request's path (root tokens do). Handlers
 * use it for "root or sudo" options (auth/token/create no_parent, id, period). */
bool cs_req_has_sudo(struct cs_request *req);

/*
 * Token events (engines/cubbyhole): the token store calls `revoked` for every token it
 * deletes (revoke, tree revoke, expiry, last use), inside the revoking transaction, with
 * the token's storage key (the salted HMAC hex, never the token). A non-zero return fails
 * the revocation. Without one it is a no-op returning 0.
 */
typedef int (*cs_token_revoked_fn)(struct cs_txn *txn, const char *token_key);
struct cs_token_events {
	cs_token_revoked_fn revoked;
};
void cs_core_set_token_events(struct cs_core *core, const struct cs_token_events *ev);
/* Tell the core of `txn` (cs_txn_core) that the token under `token_key` is revoked. */
int cs_backend_token_revoked(struct cs_txn *txn, const char *token_key);

/*
 * Identity (engines/identity): entities, aliases and groups. Login methods and the token
 * store reach it through these, the ACL through `resolve`. Without a registered store
 * logins create no entity and tokens carry no identity.
 */
struct cs_identity_hooks {
	/* Find or create the entity of the alias (`mount_accessor`, `alias_name`) in req->txn,
	 * setting the alias's metadata to `alias_meta` (object or NULL: none). *entity_id is
	 * malloc'd. CS_EPERM (with a message) when the entity is disabled. */
	int (*login)(struct cs_request *req, const char *mount_accessor, const char *alias_name,
		     const cJSON *alias_meta, char **entity_id);
	/* The identity of `entity_id` as the ACL needs it, read in `txn`: *out is a new object
	 * {"entity": {id, name, metadata, disabled, aliases: [{id, name, mount_accessor,
	 * metadata, custom_metadata}]}, "groups": [{id, name, metadata}] (direct and
	 * inherited), "policies": [the entity's and every group's, sorted, unique]}, or NULL
	 * when no such entity exists. O(groups) record reads, never a scan. */
	int (*resolve)(struct cs_core *core, struct cs_txn *txn, const char *entity_id,
		       cJSON **out);
};
void cs_core_set_identity(struct cs_core *core, const struct cs_identity_hooks *h);
/* The hooks above through the request's core: login for the request's own mount (its
 * accessor); 0 with *entity_id NULL when no identity store is registered. */
int cs_req_identity_login(struct cs_request *req, const char *alias_name, const cJSON *alias_meta,
			  char **entity_id);
int cs_backend_identity_resolve(struct cs_core *core, struct cs_txn *txn, const char *entity_id,
				cJSON **out);

/* "read", "create", ... (Vault's operation names). */
const char *cs_op_name(enum cs_op op);

enum cs_field_type {
	CS_FIELD_STRING,
	CS_FIELD_INT,
	CS_FIELD_BOOL,
	CS_FIELD_DURATION, /* seconds, from an integer or a duration string */
	CS_FIELD_MAP,      /* JSON object */
	CS_FIELD_STRLIST,  /* JSON array of strings, or a comma-separated string */
	CS_FIELD_ANY,      /* anything, passed through */
};

/*
 * The longest duration a CS_FIELD_DURATION accepts, in seconds: half of what an int64 of
 * nanoseconds holds (about 146 years), so that "now + duration" in nanoseconds cannot
 * overflow before the year 2116. Go's time.Duration (Vault's) stops at about 292 years.
 */
#define CS_MAX_DURATION_SECS INT64_C(4611686018)

struct cs_field {
	const char *name; /* NULL terminates a field array */
	enum cs_field_type type;
	const char *desc; /* one line, shown by ?help=1 / path-help */
	/* The framework refuses a create or update without it (absent, null or an empty
	 * string) with 400 `missing required field "NAME"` (OpenBao's text), before the
	 * handler runs; other operations on the row are never refused for it. Where
	 * requiredness depends on the operation or on other fields, the handler checks by
	 * hand and says why. */
	bool required;
};

/* The first required field of `fields` that `data` lacks for `op`, or NULL (the check
 * cs_backend_dispatch makes; exposed for tests and for handlers that share a schema). */
const struct cs_field *cs_backend_missing_field(const struct cs_field *fields, const cJSON *data,
						enum cs_op op);

/* Path flags, checked by the core before the handler runs. */
#define CS_PATH_UNAUTH     0x01 /* no client token needed */
#define CS_PATH_SUDO       0x02 /* root (or sudo capability) required */
#define CS_PATH_ANY_FIELDS 0x04 /* free-form body (KV data): no field checks/warnings */
#define CS_PATH_SEALED_OK  0x08 /* served while sealed or uninitialised */
#define CS_PATH_NO_ACTIVE  0x10 /* served by a node that is not (yet) active */
#define CS_PATH_LOCAL      0x20 /* answered by the node that receives it: never forwarded */
/* With CS_PATH_UNAUTH: a client token is optional, but one that is sent is checked by the
 * core as on an authenticated path (unknown, expired, used up or refused by its
 * token_bound_cidrs → 403; as in Vault, no use is spent) and the handler sees
 * req->token_entry and req->root. For unauthenticated paths whose answer depends on the
 * caller (sys/internal/ui/mounts). No ACL check on the path itself. */
#define CS_PATH_OPT_TOKEN 0x40
/* The route takes a request body that is not JSON or a form (Content-Type other than
 * JSON, form or text, with a body that does not start like JSON: an OCSP request): the
 * core passes its bytes untouched (cs_req_body) instead of refusing them. Any other
 * route answers such a body with 415. */
#define CS_PATH_RAW_BODY 0x80

struct cs_request;
struct cs_mount;
struct cs_core;

typedef int (*cs_handler_fn)(struct cs_request *req);
/* Sets *exists; returns 0 or an error code. Runs before field validation: read path
 * parameters with cs_req_capture, not cs_req_str. */
typedef int (*cs_exist_fn)(struct cs_request *req, bool *exists);

struct cs_path {
	const char *pattern;
	const struct cs_field *fields; /* NULL-name-terminated, or NULL */
	cs_handler_fn ops[CS_OP__COUNT];
	cs_exist_fn exists;
	unsigned flags;
	const char *synopsis;
};

struct cs_backend {
	const char *type; /* mount type: "kv", "system", "token", ... */
	bool is_auth;     /* mounted under auth/ */
	const struct cs_path *paths;
	size_t n_paths;
	/* Optional: validate a new mount's options (enable time). 0 or CS_EINVAL + message. */
	int (*validate_mount)(struct cs_request *req, const cJSON *options);
	/* Optional: drop in-memory state derived from storage (on seal / leadership loss). */
	void (*reset)(struct cs_core *core);
	/* Optional: the backend that really serves a mount with these options (the "kv"
	 * type answers with KV v1 or v2 by options.version). NULL → this backend. */
	const struct cs_backend *(*variant)(const cJSON *options);
	/* Optional, with `variant`: every backend it can return and the mount options (JSON
	 * text) that select it, ended by a NULL backend. Lets `custos server -list-routes`
	 * (server/routes.h) walk every path table that a mount can serve. */
	const struct cs_backend_variant *variants;
	/* Optional: row tables searched before `paths`, in array order (the sys/ backend's
	 * slots, cs_sys_set_paths); an empty entry is skipped. */
	const struct cs_path_table *tables;
	size_t n_tables;
	/* Optional: run on the active node, once per mount of this backend, every
	 * `periodic_interval` (server config, default 60 s), as an internal request (below):
	 * op CS_OP_UPDATE, req->data {}, no client token (req->root), a transaction on the
	 * mount that the core commits as for any handler. It may cs_req_defer / cs_req_wait.
	 * At most one run per mount at a time; an error is logged and the next tick tries
	 * again. For auto-rotation, scheduled rotation, tidy, CRL rebuilds: keep each run
	 * short (bounded batches). */
	cs_handler_fn periodic;
	/* Optional: the kinds of leased secret it issues (cs_req_lease), ended by an entry
	 * whose name is NULL. */
	const struct cs_secret_type *secrets;
};

/*
 * One kind of leased secret a backend issues. `revoke` and `renew` are handlers run as
 * internal requests (no client token, req->root) in a transaction on the lease's mount,
 * with req->data
 *   {"lease_id": "...", "internal": <the object given to cs_req_lease>,
 *    "issue_time": unix seconds, "ttl": seconds (renew only: the TTL being granted)}
 * revoke: make the secret unusable (DROP ROLE, mark the certificate revoked); it may
 *   cs_req_defer / cs_req_wait for slow or networked work. Returning 0 deletes the lease
 *   record in the same transaction; an error keeps it and the expiration manager retries
 *   with exponential backoff; after CS_LEASE_MAX_REVOKE_ATTEMPTS failures the lease is
 *   irrevocable (sys/leases?type=irrevocable lists it, sys/leases/revoke-force drops it).
 * renew (NULL: leases of this kind are not renewable): extend the secret's validity to
 *   now + ttl; 0 makes the manager record the new expiry.
 */
struct cs_secret_type {
	const char *name; /* stored in the lease record: "creds", "cert" */
	cs_handler_fn revoke;
	cs_handler_fn renew;
};
#define CS_LEASE_MAX_REVOKE_ATTEMPTS 6

struct cs_path_table {
	const struct cs_path *paths;
	size_t n;
};

struct cs_backend_variant {
	const char *options_json; /* e.g. "{\"version\":\"2\"}" */
	const struct cs_backend *backend;
};

#define CS_MAX_CAPTURES 4
/* Response headers a handler may add (cs_req_add_header). */
#define CS_MAX_RESP_HEADERS 6

struct cs_capture {
	const char *name; /* points into the pattern table; not NUL-terminated at '}' */
	size_t name_len;
	char *value; /* malloc'd */
};

struct cs_http_req;

/*
 * One logical request. Created by the core for each HTTP request (or internally, for
 * -dev set-up); freed by the core after the response is sent.
 */
struct cs_request {
	struct cs_core *core;
	struct cs_http_req *http; /* NULL for internal requests */
	enum cs_op op;
	char *path;             /* logical path after /v1/, e.g. "secret/foo" */
	const char *rel;        /* path relative to the mount (points into path) */
	struct cs_mount *mount; /* held by the core while the request is suspended */
	bool mount_held;
	const struct cs_path *route;
	struct cs_capture caps[CS_MAX_CAPTURES];
	int n_caps;
	cJSON *data;        /* body + query parameters + captures (an object, owned) */
	char *client_token; /* as sent; NULL if none */
	cJSON *token_entry; /* the token store's entry for client_token, or NULL */
	bool root;          /* the token has the root policy: no ACL check */
	void *audit;        /* audit/: the request entry until the response is logged */
	struct cs_txn txn;
	bool txn_open;
	unsigned char no_route; /* 1: no mount, 2: mount has no such path (404 after auth) */
	bool is_head;           /* HTTP HEAD: status only */
	bool help; /* ?help=<non-empty>: answer with the route's help, run nothing (needs a
		    * valid token on every path, and no ACL capability, as in Vault) */

	/* Response. */
	int status;       /* 0: core decides (200 with body / 204 without) */
	cJSON *resp_data; /* envelope "data" */
	cJSON *resp_auth; /* envelope "auth" */
	cJSON *warnings;  /* array of strings, or NULL */
	cJSON *raw;       /* if set, the whole JSON body (non-envelope endpoints) */
	int64_t lease_duration;
	bool renewable;
	char *lease_id;
	bool data_to_top; /* copy data keys to the top level (sys/mounts, ...) */
	/* If raw_type is set, the response body is raw_body (raw_len bytes, malloc'd, owned)
	 * sent as is with that Content-Type, not JSON: PEM, DER, CRLs, OCSP (Vault's
	 * HTTPRawBody / HTTPContentType). Set with cs_req_set_raw. */
	const char *raw_type;
	uint8_t *raw_body;
	size_t raw_len;
	/* The request came with a body that the core did not parse (CS_PATH_RAW_BODY). */
	bool raw_request;
	/* Extra response headers (cs_req_add_header): name/value pairs, malloc'd. */
	char *resp_headers[2 * CS_MAX_RESP_HEADERS];
	int n_resp_headers;
	char *errmsg; /* message for an error return */
	/* 0, or the code the request answers with although it succeeded: its writes are
	 * committed first (cs_req_error_after_commit). */
	int commit_error;
	bool body_on_error; /* send the envelope even with an error status (KV v2) */
	int64_t wrap_ttl;   /* X-Vault-Wrap-TTL in seconds; 0: no response wrapping */

	/* Run by the core once the response has been sent for a request that succeeded,
	 * after its transaction committed and its token bookkeeping (a last use revokes the
	 * token) ended: for work that tears down what a live request still uses, such as
	 * sys/seal wiping the keyring. */
	void (*after_response)(struct cs_core *core);

	/* Core bookkeeping. */
	struct cs_internal *internal; /* an internal request's descriptor (a copy), or NULL */
	int read_wait_error; /* the error answered once the state it was read from applied */
	struct cs_request *next_waiting;
	uint64_t start_ms;
};

/*
 * Slow pure work inside a request (password KDFs, key generation): suspend the request,
 * run the work on a pool thread, resume on the loop thread in a fresh transaction.
 *
 * The backend embeds a struct cs_async in its own job struct (inputs and outputs of the
 * work), sets `work` and `resume`, and ends its handler with
 *     return cs_req_defer(req, &job->async);
 * which queues the job and returns CS_EASYNC. The core then ABORTS the handler's
 * transaction: a handler reads and validates before deferring and never writes (its
 * warnings and response fields are kept). When the work is done:
 *   - normally: the core opens a new transaction, looks the client token up again (a use
 *     of a limited-use token is spent there, the first transaction being gone) and
 *     re-runs the ACL hook, then calls resume(req, a, 0). resume behaves exactly like a
 *     handler: it re-reads whatever it needs (state may have changed meanwhile), writes,
 *     fills the response, and returns 0 or a CS_E* code (or defers again). The core then
 *     commits and answers as for any handler.
 *   - on failure (shutdown, sealed, no longer active, token gone, ACL denial): resume(req,
 *     a, status) with status != 0 and NO transaction open; it must only release its job
 *     and return status.
 * resume is called exactly once per cs_req_defer, and owns the job from then on (frees
 * it). `work` runs on a thread of the core's low-priority pool (server/workpool.h): it
 * may touch only its job struct (never req, the core, storage or the loop). At most
 * CS_ASYNC_MAX_RUNNING jobs run at once; later jobs wait in FIFO order.
 * A request whose client went away still runs to the end; its response is discarded.
 */
/* What cs_req_defer / cs_req_wait return and the handler hands back: not an error (the
 * request is suspended, its answer comes later), so not in lib/err.h's table and never a
 * status; outside the range of the CS_E* codes. */
#define CS_EASYNC            1000
#define CS_ASYNC_MAX_RUNNING 4
/* Jobs that may wait for a pool thread; one more is refused with 503 (CS_EBUSY). */
#define CS_ASYNC_MAX_QUEUED 1024
struct cs_async;
typedef void (*cs_async_work_fn)(struct cs_async *a);
typedef int (*cs_async_resume_fn)(struct cs_request *req, struct cs_async *a, int status);
struct cs_async {
	cs_async_work_fn work;
	cs_async_resume_fn resume;
	/* Private to the core. */
	struct cs_work job;
	struct cs_request *req;
	struct cs_async *next;
};
/* Loop thread, from a handler (or a resume). Returns CS_EASYNC. When CS_ASYNC_MAX_QUEUED
 * jobs already wait, it instead calls resume(req, a, CS_EBUSY) at once (the job is then
 * released as on any failure) and returns CS_EBUSY, which the handler returns as usual:
 * `return cs_req_defer(req, &job->async);` covers both. */
int cs_req_defer(struct cs_request *req, struct cs_async *a);
/*
 * The same without a pool job: the request waits for an event on the loop thread (a
 * raft membership change, say). `work` is unused. The backend calls cs_req_wake(a)
 * exactly once, from a later loop callback (never from the handler itself); `resume`
 * then runs as for cs_req_defer (fresh transaction, token and ACL again, or a failure
 * status when the node was sealed, lost leadership or is shutting down meanwhile).
 */
int cs_req_wait(struct cs_request *req, struct cs_async *a);
void cs_req_wake(struct cs_async *a);

/* Field accessors over req->data (after validation/coercion). Absent → def. */
const char *cs_req_str(const struct cs_request *req, const char *name, const char *def);
int64_t cs_req_int(const struct cs_request *req, const char *name, int64_t def);
bool cs_req_bool(const struct cs_request *req, const char *name, bool def);
/* The raw value, or NULL. */
const cJSON *cs_req_get(const struct cs_request *req, const char *name);
bool cs_req_has(const struct cs_request *req, const char *name);
/* A capture by name, or NULL. */
const char *cs_req_capture(const struct cs_request *req, const char *name);

/* Record an error message (printf-style) and return `code`, for `return cs_req_error(...)`. */
int cs_req_error(struct cs_request *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/*
 * The one way to answer with an error AND keep the handler's writes: record the message
 * and the code, and return 0 so that the core commits the transaction as for a success,
 * then answers with the error (sys/wrapping/unwrap burns a wrapping token that was also
 * the client token, then refuses, as Vault does). A failed commit answers its own error.
 */
int cs_req_error_after_commit(struct cs_request *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Append a warning string to the response. */
void cs_req_warn(struct cs_request *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Set the response data (takes ownership). */
void cs_req_set_data(struct cs_request *req, cJSON *data);
/* Answer with a non-JSON body: a copy of `len` bytes of `body`, sent with
 * `content_type` (a static string) and status 200, or 204 when len is 0 (as Vault does
 * for an empty raw body). */
void cs_req_set_raw(struct cs_request *req, const char *content_type, const void *body, size_t len);
/* Add a response header (ACME's Replay-Nonce, Location, Link): name and value copied,
 * sent with a successful answer (JSON or raw) and relayed by a standby that forwarded the
 * request. CS_EINVAL when the name or value holds CR, LF (or ':' in the name) or more than
 * CS_MAX_RESP_HEADERS were added: nothing is added then. Headers are not sent with an
 * error the core answers (return an error code); a handler that must answer an error
 * with headers sets req->status and a raw body. */
int cs_req_add_header(struct cs_request *req, const char *name, const char *value);
/* On a CS_PATH_RAW_BODY route: the request body that the core left unparsed, or NULL
 * (none, a JSON/form body, or an internal request). Points into the HTTP request. */
const uint8_t *cs_req_body(const struct cs_request *req, size_t *len);

/* What a backend knows of its mount and client (server/backend_env.c), so that it needs
 * no other header of server/. */
/* The mount's routing path ("secret/", "auth/approle/"), or NULL without a mount. */
const char *cs_req_mount_path(const struct cs_request *req);
/* The mount's storage prefix ("logical/<uuid>/"), or "" without a mount. */
const char *cs_req_storage_prefix(const struct cs_request *req);
/* The mount's default and maximum lease TTL in seconds: its own tuning, else the
 * server's (config default_lease_ttl / max_lease_ttl, else 32 days). */
int64_t cs_req_default_ttl(const struct cs_request *req);
int64_t cs_req_max_ttl(const struct cs_request *req);
/* The client's "addr:port", or "" for an internal request. */
const char *cs_req_remote_addr(const struct cs_request *req);
/* This node's API address as clients reach it (config api_addr, else the scheme and
 * address of the first listener), e.g. "https://10.0.0.5:8200", into out (truncated to
 * n bytes, NUL-terminated). */
void cs_req_api_addr(const struct cs_request *req, char *out, size_t n);
/* For auth methods (login): have the token store create an orphan token from `params`
 * (the fields of auth/token/create plus "path") in req->txn and fill req->resp_auth.
 * CS_EINTERNAL with a message when no token store is registered. */
int cs_req_issue_token(struct cs_request *req, const cJSON *params);
/* The accessor of the request's mount ("auth_userpass_1a2b3c4d"), or "" without one. */
const char *cs_req_mount_accessor(const struct cs_request *req);
/* The mount (secrets engine or auth method) with this accessor: true with its routing
 * path ("auth/userpass/") and type ("userpass"), both valid until the mount table
 * changes; false when there is none. */
bool cs_backend_mount_by_accessor(struct cs_core *core, const char *accessor, const char **path,
				  const char **type);
/* The storage prefix of the mount at `mount_path` ("cubbyhole/"), or NULL if none. */
const char *cs_backend_mount_prefix(struct cs_core *core, const char *mount_path);
/*
 * Required mounts (Vault's "cubbyhole/"): every cluster has them, they cannot be
 * disabled, and nobody else may mount at their path. The owning module registers one at
 * start-up (the strings must be static); server/sys.c adds the missing ones at init and
 * unseal (cs_sys_add_required_mounts).
 */
void cs_sys_require_mount(const char *path, const char *type, const char *description);

/*
 * Storage under the mount's prefix ("logical/<uuid>/" for engines, "auth/<uuid>/" for
 * auth methods): the key is relative to the mount, values go through the barrier.
 */
int cs_view_get(struct cs_request *req, const char *key, struct cs_buf *out);
/* Whether `key` holds a value, without decrypting it (existence checks run on every
 * request of their paths). 0 with *exists set, or a storage error. */
int cs_view_exists(struct cs_request *req, const char *key, bool *exists);
int cs_view_put(struct cs_request *req, const char *key, const void *val, size_t n);
int cs_view_delete(struct cs_request *req, const char *key);
int cs_view_list(struct cs_request *req, const char *prefix, struct cs_strv *out);
/* JSON helpers over the view: read an object (CS_ENOTFOUND if absent), write one. */
int cs_view_get_json(struct cs_request *req, const char *key, cJSON **out);
int cs_view_put_json(struct cs_request *req, const char *key, const cJSON *obj);

/*
 * Passwords for the credentials engines issue (database users, rotated root passwords).
 * A password from the password policy `policy` (sys/policies/password/<policy>), or from
 * Vault's default policy when `policy` is NULL or "": 20 characters of [A-Za-z0-9-] with
 * at least one lowercase letter, one uppercase letter, one digit and one '-'. *out is
 * malloc'd and NUL-terminated; the caller wipes (cs_zero) and frees it. CS_EINVAL with a
 * message when the named policy does not exist or cannot be satisfied. Reads a named
 * policy through req->txn.
 */
int cs_req_generate_password(struct cs_request *req, const char *policy, char **out);
/* Named policies come from the module that stores them. Without one, only the default
 * policy exists. */
struct cs_password_policies {
	/* A password from the stored policy `name`; CS_ENOTFOUND when there is none. */
	int (*generate)(struct cs_request *req, const char *name, char **out);
};
void cs_core_set_password_policies(struct cs_core *core, const struct cs_password_policies *p);
/* Vault's default policy, for the module above and for tests: fills out[0..len-1] and
 * NUL-terminates it (len >= 4). */
void cs_password_default(char *out, size_t len);

/*
 * From a handler (create, update or read): the response carries a lease on a secret of
 * kind `type` (a name in the backend's `secrets`). `internal` (taken) is kept with the
 * lease behind the barrier and handed back to the kind's revoke/renew; clients never see
 * it. ttl <= 0: the mount's default TTL; max_ttl <= 0: the mount's maximum; both are
 * capped by the mount's maximum. Sets req->lease_id ("<request path>/<random>"),
 * req->lease_duration and req->renewable (when the kind has `renew`), writes the lease in
 * req->txn and ties it to the client token: revoking the token (or an ancestor) revokes
 * the lease. Returns 0 or an error (message set).
 */
int cs_req_lease(struct cs_request *req, const char *type, cJSON *internal, int64_t ttl,
		 int64_t max_ttl);
/* The kind `name` of leased secret that the backend mounted at `path`'s mount issues, or
 * NULL (no such mount or kind). Loop thread. */
const struct cs_secret_type *cs_core_secret_type(struct cs_core *core, const char *path,
						 const char *name);

/*
 * Internal requests: work the core does for itself on the active node (periodic
 * functions, lease revocation and renewal), run through a backend's handler like a
 * client's request but with no client token (req->root true, req->http NULL), no audit
 * entry, and never forwarded or parked. The handler may defer or wait as usual.
 */
struct cs_internal {
	enum cs_op op;
	const char *path;            /* logical path ("transit/"), copied; routes the mount */
	cJSON *data;                 /* taken (NULL: {}) */
	const struct cs_path *route; /* the row to run (its ops[op]); lives until `done` */
	/* Optional: after the handler succeeded, in its transaction, before the commit; an
	 * error aborts it. */
	int (*before_commit)(struct cs_request *req, void *ctx);
	/* Optional: the end — status 0 once committed, else the error (req->errmsg may say
	 * more). req's response fields are readable; the core frees req afterwards. */
	void (*done)(struct cs_request *req, int status, void *ctx);
	void *ctx;
};
/* Start one. 0: `done` will run (possibly before this returns). Else an error and `done`
 * never runs (data is freed): CS_ENOTACTIVE (standby, stepping down or shutting down),
 * CS_ESEALED, CS_ENOTFOUND (no mount at the path). Loop thread. */
int cs_core_internal(struct cs_core *core, const struct cs_internal *in);

/* ---- generic dispatch, used by the core ---- */

/* The help of the request's route (req->route set): {"help": text with the synopsis and
 * the fields, "see_also": [], "openapi": a one-path OpenAPI 3 document}. server/help.c */
cJSON *cs_backend_help(const struct cs_request *req);

/* The backend's rows, `tables` then `paths`, as routing searches them: how many, and the
 * i-th (NULL past the end). */
size_t cs_backend_n_rows(const struct cs_backend *b);
const struct cs_path *cs_backend_row(const struct cs_backend *b, size_t i);
/* Match `rel` against the backend's table; fills req->route and captures. false if no row. */
bool cs_backend_route(const struct cs_backend *b, struct cs_request *req, const char *rel);
/*
 * Validate fields, pick create vs update with the existence check, and run the handler.
 * Returns the handler's code (or CS_EUNSUPPORTED / CS_EINVAL from validation).
 */
int cs_backend_dispatch(struct cs_request *req);

/*
 * The token store and the expiration manager as the core sees them: one interface each,
 * registered once at start-up by their module (auth/) as described under "Hooks" above,
 * so that server/ never includes auth/ and auth/ needs nothing of server/ but this header.
 */
/* Token store hook: look the token up in `txn`; *entry is a new cJSON object owned by
 * the caller, or NULL when the token does not exist / expired. Returns 0 or an error. */
typedef int (*cs_token_lookup_fn)(struct cs_core *core, struct cs_txn *txn, const char *token,
				  cJSON **entry);
/* Token store hook: create a root token (id given or random) inside `txn` at init. The
 * token string is written to `out` (NUL-terminated, <= 128 bytes). */
typedef int (*cs_token_create_root_fn)(struct cs_core *core, struct cs_txn *txn, const char *id,
				       char *out, size_t outlen);

/* Token store hook, called by authorize() right after a successful lookup, inside the
 * request's transaction: account for one use of a limited-use token (num_uses). May
 * modify `entry` (the request's copy). Returns 0 or an error (the request fails). */
/* `remote` is the client's "addr:port", or NULL for internal requests. */
typedef int (*cs_token_use_fn)(struct cs_core *core, struct cs_txn *txn, const char *token,
			       cJSON *entry, const char *remote);
/* Token store hook: whether the token `entry` may be used from `remote` ("addr:port"; its
 * token_bound_cidrs), without spending a use. Checks a token sent to an unauthenticated
 * path that looks at it (CS_PATH_OPT_TOKEN), where Vault validates but never counts. */
typedef bool (*cs_token_bound_ok_fn)(const cJSON *entry, const char *remote);
/* Token store hook, called after a successful handler, before the commit, in the same
 * transaction: revokes a token whose last use this request was (Vault semantics). */
typedef int (*cs_token_after_fn)(struct cs_request *req);
/* Token store hook for auth methods (login): create an orphan token from `params` (the
 * fields of auth/token/create plus "path", e.g. "auth/userpass/login/bob") in req->txn and
 * fill req->resp_auth (the envelope's "auth" block). `params` stays owned by the caller. */
typedef int (*cs_token_issue_fn)(struct cs_request *req, const cJSON *params);
/* Expiration manager hook: the node became active (start, load leases) or stopped being
 * active (stop timers, drop state). Runs on the loop thread. */
typedef void (*cs_expire_active_fn)(struct cs_core *core, bool active);

struct cs_token_store {
	cs_token_lookup_fn lookup;
	cs_token_create_root_fn create_root;
	cs_token_use_fn use;           /* optional */
	cs_token_after_fn after;       /* optional */
	cs_token_issue_fn issue;       /* optional, for auth methods */
	cs_token_bound_ok_fn bound_ok; /* optional: bound CIDRs on CS_PATH_OPT_TOKEN paths */
	/* Optional, for sys/wrapping (server/wrap.c): a token's storage key (64 hex + NUL in
	 * out), and revoking the token under a storage key. Without them wrapping tokens
	 * cannot be created or consumed. */
	int (*key_of)(struct cs_txn *txn, const char *token, char *out);
	int (*revoke_key)(struct cs_txn *txn, const char *key_hex, bool orphan_children);
	/* Optional, for sys/capabilities-accessor: the token entry of an accessor (*entry as
	 * for lookup; NULL when there is none). Without it that endpoint answers 400. */
	int (*lookup_accessor)(struct cs_core *core, struct cs_txn *txn, const char *accessor,
			       cJSON **entry);
};
void cs_core_set_token_store(struct cs_core *core, const struct cs_token_store *ts);

struct cs_expiration {
	cs_expire_active_fn active; /* optional */
	/* optional: revoke every lease (and token) under a path prefix, in req->txn */
	int (*revoke_prefix)(struct cs_request *req, const char *prefix);
	/* optional (without it cs_req_lease fails): record a lease on a secret of `kind`
	 * issued by req's handler (see cs_req_lease), owned by the token under `owner_key`
	 * (its storage key) or by nobody (NULL) */
	int (*lease)(struct cs_request *req, const struct cs_secret_type *kind, cJSON *internal,
		     int64_t ttl, int64_t max_ttl, const char *owner_key);
	/* optional: the token under `token_key` is being revoked in `txn`: its leases must go */
	int (*token_revoked)(struct cs_txn *txn, const char *token_key);
};
void cs_core_set_expiration(struct cs_core *core, const struct cs_expiration *ex);

/* What the expiration manager reads of the core (server/backend_env.c). */
uv_loop_t *cs_core_loop(struct cs_core *core);
struct cs_storage *cs_core_storage(struct cs_core *core);
/* The barrier keyring, NULL while sealed. */
const struct cs_keyring *cs_core_keyring(const struct cs_core *core);
/* The active node: the leader whose election barrier applied. */
bool cs_core_is_active(const struct cs_core *core);
bool cs_core_shutting_down(const struct cs_core *core);
/* The server-wide maximum lease TTL in seconds (config max_lease_ttl, else 32 days). */
int64_t cs_core_sys_max_ttl(const struct cs_core *core);
/* FOR TESTS ONLY (server config acme_test_http_port / acme_test_tls_port): the ports ACME
 * challenge validation connects to instead of 80 / 443; 0 when unset (production). */
void cs_core_acme_test_ports(const struct cs_core *core, uint16_t *http, uint16_t *tls);

/*
 * The sys/ backend is static tables: server/sys.c's own, and one per module that serves
 * more sys/ paths (policies, leases, audit, ...). Each module sets its table in its slot
 * at start-up, before any request; routing searches the slots in this fixed order, then
 * server/sys.c's table (which ends with its most general patterns), so the row order
 * never depends on which module registers first. The table is not copied: static.
 */
enum cs_sys_table {
	CS_SYS_GENERATE_ROOT,
	CS_SYS_REKEY,
	CS_SYS_ROTATE,
	CS_SYS_SNAPSHOT,
	CS_SYS_RAFT,
	CS_SYS_HA,
	CS_SYS_WRAP,
	CS_SYS_AUDIT,
	CS_SYS_POLICY,
	CS_SYS_LEASES,
	CS_SYS_TOOLS, /* sys/tools/random and sys/tools/hash (engines/transit) */
	/* sys/policies/password (server/pwpolicy_sys.c) */
	CS_SYS_PASSWORD_POLICY,
	CS_SYS__COUNT
};
void cs_sys_set_paths(enum cs_sys_table slot, const struct cs_path *paths, size_t n);

/*
 * Per-core module state: a module that keeps state between requests (the token store's
 * salt, the expiration heap, the audit devices, ...) keeps it here, never in a file-level
 * variable, so that two cores in one process never share it (tests/unit/test_two_cores.c).
 * `type` is the module's static descriptor (its address is the key); the state is
 * allocated zeroed on first use and lives until cs_core_release_state, which calls
 * type->release (if set) and frees it. Loop thread only. Aborts on out-of-memory (the
 * blocks are small and taken at start-up or on the first request).
 */
struct cs_core_state_type {
	const char *name; /* for messages */
	size_t size;
	void (*release)(void *state); /* optional: free what the state points to */
};
void *cs_core_state(struct cs_core *core, const struct cs_core_state_type *type);
/* The core whose storage `txn` reads (every server transaction is on a core's storage):
 * lets a txn-only API (cs_expire_put, the token-revoked hook) find its core's state. */
struct cs_core *cs_txn_core(const struct cs_txn *txn);

/* Registry of backend types, filled at start-up by main(). */
void cs_backend_register(const struct cs_backend *b);
const struct cs_backend *cs_backend_find(const char *type, bool is_auth);
/* Call every registered backend's reset hook for `core`. */
void cs_backend_reset_all(struct cs_core *core);
/* The registered backends in registration order: the i-th, or NULL past the end. */
const struct cs_backend *cs_backend_at(size_t i);

/* The mount-visibility check (cs_acl_hooks.mount_visible) of the request's core. Root
 * tokens see every mount; without a token entry or a hook, none. */
bool cs_req_mount_visible(struct cs_request *req, const char *mount_path);

#endif
