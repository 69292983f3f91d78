/*
 * The mount tables (secrets engines and auth methods) and longest-prefix routing.
 *
 * The tables live in storage, barrier-encrypted, as Vault's JSON shape:
 *   core/mounts  {"type":"mounts","entries":[{...mount...}]}
 *   core/auth    {"type":"auth","entries":[...]}
 * The in-memory copy is rebuilt from storage at unseal (and after leadership loss), and
 * changed in the same request that writes the new table, so the next request routes
 * with it at once (the write is in the overlay by then).
 */
#ifndef CS_SERVER_ROUTER_H
#define CS_SERVER_ROUTER_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "server/backend.h"

struct cs_mount {
	char *path; /* routing path with trailing '/': "secret/", "sys/", "auth/token/" */
	char *type; /* "kv", "system", "token" */
	char *description;
	char uuid[37];
	char accessor[64];    /* "kv_1a2b3c4d" */
	char *storage_prefix; /* "logical/<uuid>/", "auth/<uuid>/", "sys/" */
	bool is_auth;
	bool local;
	bool seal_wrap;
	int64_t default_lease_ttl; /* 0 → system default */
	int64_t max_lease_ttl;     /* 0 → system default */
	bool force_no_cache;
	char *listing_visibility; /* "", "unauth", "hidden" */
	cJSON *options;           /* object of strings, or NULL */
	const struct cs_backend *backend;
	/* References: 1 for the table that holds it, 1 per request suspended while routed
	 * to it (a worker job or a wait may outlive a seal or an unmount). cs_mount_free
	 * drops one; the last frees. Loop thread only. */
	int refs;
};

struct cs_router {
	struct cs_mount **mounts; /* sorted by path length, longest first */
	size_t n;
};

void cs_router_init(struct cs_router *r);
void cs_router_clear(struct cs_router *r);
/* Longest mount whose path is a prefix of `path` (or equals path + "/"). NULL if none. */
struct cs_mount *cs_router_match(const struct cs_router *r, const char *path);
/* Mount with exactly this routing path ("x/"), or NULL. */
struct cs_mount *cs_router_get(const struct cs_router *r, const char *mount_path);
/* Takes ownership of m. */
void cs_router_add(struct cs_router *r, struct cs_mount *m);
/* Removes and frees. */
void cs_router_remove(struct cs_router *r, struct cs_mount *m);

struct cs_mount *cs_mount_new(const char *path, const char *type, bool is_auth);
/* Pick the backend for the mount's type and current options (cs_backend.variant). */
void cs_mount_bind_backend(struct cs_mount *m);
void cs_mount_free(struct cs_mount *m);
/* One more reference, dropped by cs_mount_free. */
void cs_mount_hold(struct cs_mount *m);
/* Is `m` (still) one of the mounts `r` routes to? */
bool cs_router_has(const struct cs_router *r, const struct cs_mount *m);
/* Vault's mount entry JSON (sys/mounts listing shape) for one mount. */
cJSON *cs_mount_to_json(const struct cs_mount *m, int64_t sys_default_ttl, int64_t sys_max_ttl);

/* Serialise the table (mounts or auth side) for storage, and parse it back. */
cJSON *cs_router_table_json(const struct cs_router *r, bool auth);
/* Add every entry of a stored table; unknown types are skipped with a warning. */
int cs_router_load_table(struct cs_router *r, const cJSON *table, bool auth);

#endif
