/*
 * The sys/ backend (see sys.h). Non-envelope endpoints (init, seal-status, unseal,
 * health, leader) answer with req->raw, exactly as Vault shapes them.
 */
#include "server/sys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/sha.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"
#include "server/ha.h"
#include "server/keys_common.h"
#include "server/seal.h"
#include "server/seal_config.h"

struct cs_mount *cs_sys_mount(struct cs_core *core)
{
	if (!core->sys_mount) {
		struct cs_mount *m = cs_mount_new("sys/", "system", false);
		free(m->description);
		m->description = strdup("system endpoints used for control, policy and "
					"debugging");
		free(m->storage_prefix);
		m->storage_prefix = strdup("sys/");
		m->backend = &cs_sys_backend;
		core->sys_mount = m;
	}
	return core->sys_mount;
}

void cs_sys_mount_free(struct cs_core *core)
{
	cs_mount_free(core->sys_mount);
	core->sys_mount = NULL;
}

int cs_sys_save_tables(struct cs_core *core, struct cs_txn *txn)
{
	/* The sys/ row is stored too, so sys/mounts keeps its uuid/accessor. */
	struct cs_router with_sys;
	cs_router_init(&with_sys);
	cJSON *mounts = cs_router_table_json(&core->router, false);
	cJSON *entries = cJSON_GetObjectItemCaseSensitive(mounts, "entries");
	struct cs_mount *sys = cs_sys_mount(core);
	cs_router_add(&with_sys, sys);
	cJSON *st = cs_router_table_json(&with_sys, false);
	with_sys.n = 0; /* borrowed, not owned */
	cs_router_clear(&with_sys);
	cJSON *row = cJSON_DetachItemFromArray(cJSON_GetObjectItemCaseSensitive(st, "entries"), 0);
	cJSON_InsertItemInArray(entries, 0, row);
	cJSON_Delete(st);
	cJSON *auth = cs_router_table_json(&core->router, true);
	char *a = cJSON_PrintUnformatted(mounts), *b = cJSON_PrintUnformatted(auth);
	int rc = cs_txn_put(txn, "core/mounts", a, strlen(a));
	if (!rc)
		rc = cs_txn_put(txn, "core/auth", b, strlen(b));
	free(a);
	free(b);
	cJSON_Delete(mounts);
	cJSON_Delete(auth);
	return rc;
}

#define MAX_REQUIRED 4
static struct {
	const char *path, *type, *description;
} required[MAX_REQUIRED];
static size_t n_required;

void cs_sys_require_mount(const char *path, const char *type, const char *description)
{
	for (size_t i = 0; i < n_required; i++)
		if (strcmp(required[i].path, path) == 0)
			return;
	if (n_required < MAX_REQUIRED) {
		required[n_required].path = path;
		required[n_required].type = type;
		required[n_required].description = description;
		n_required++;
	}
}

bool cs_sys_mount_required(const char *mount_path)
{
	for (size_t i = 0; i < n_required; i++)
		if (strcmp(required[i].path, mount_path) == 0)
			return true;
	return false;
}

/* A uuid-shaped id from SHA-256(cluster id | what | path): stable across nodes. */
static void derived_id(const char *cluster_id, const char *what, const char *path, char out[37])
{
	char in[512];
	uint8_t d[SHA256_DIGEST_LENGTH];
	char hex[2 * SHA256_DIGEST_LENGTH + 1];
	int n = snprintf(in, sizeof in, "%s|%s|%s", cluster_id, what, path);
	SHA256((const uint8_t *)in, (size_t)n, d);
	cs_hex_encode(d, 16, hex);
	snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

int cs_sys_add_required_mounts(struct cs_core *core, struct cs_txn *txn)
{
	bool added = false;
	for (size_t i = 0; i < n_required; i++) {
		if (cs_router_get(&core->router, required[i].path) ||
		    !cs_backend_find(required[i].type, false))
			continue;
		struct cs_mount *m = cs_mount_new(required[i].path, required[i].type, false);
		free(m->description);
		m->description = strdup(required[i].description);
		m->local = true; /* as in Vault: per-cluster, never replicated elsewhere */
		if (!txn) {
			char id[37];
			derived_id(core->cluster_id, "uuid", m->path, m->uuid);
			derived_id(core->cluster_id, "accessor", m->path, id);
			snprintf(m->accessor, sizeof m->accessor, "%s_%.8s", m->type, id);
			size_t n = strlen(m->uuid) + 16;
			free(m->storage_prefix);
			m->storage_prefix = malloc(n);
			if (!m->storage_prefix)
				abort();
			snprintf(m->storage_prefix, n, "logical/%s/", m->uuid);
			cs_info("core: added required mount %s (missing from the stored table)",
				m->path);
		}
		cs_mount_bind_backend(m);
		cs_router_add(&core->router, m);
		added = true;
	}
	return added && txn ? cs_sys_save_tables(core, txn) : 0;
}

/* Normalise a user-supplied mount path to "a/b/". NULL if invalid. */
static char *mount_path(const char *in)
{
	if (!in)
		return NULL;
	while (*in == '/')
		in++;
	size_t n = strlen(in);
	while (n > 0 && in[n - 1] == '/')
		n--;
	if (n == 0 || memmem(in, n, "..", 2) || memmem(in, n, "//", 2))
		return NULL;
	char *p = malloc(n + 2);
	if (!p)
		abort();
	memcpy(p, in, n);
	p[n] = '/';
	p[n + 1] = '\0';
	return p;
}

static int apply_mount_config(struct cs_mount *m, const cJSON *config, char *errmsg, size_t errlen)
{
	const cJSON *v;
	const char *names[] = {"default_lease_ttl", "max_lease_ttl"};
	int64_t *dst[] = {&m->default_lease_ttl, &m->max_lease_ttl};
	for (int i = 0; i < 2; i++) {
		v = cJSON_GetObjectItemCaseSensitive(config, names[i]);
		if (!v)
			continue;
		int64_t secs;
		if (cJSON_IsNumber(v) && v->valuedouble >= 0)
			secs = (int64_t)v->valuedouble;
		else if (cJSON_IsString(v) &&
			 (strcmp(v->valuestring, "system") == 0 || *v->valuestring == '\0'))
			secs = 0;
		else if (!cJSON_IsString(v) || cs_parse_duration(v->valuestring, &secs)) {
			snprintf(errmsg, errlen, "invalid %s", names[i]);
			return CS_EINVAL;
		}
		*dst[i] = secs;
	}
	if (m->max_lease_ttl && m->default_lease_ttl > m->max_lease_ttl) {
		snprintf(errmsg, errlen, "default lease TTL cannot be greater than max lease TTL");
		return CS_EINVAL;
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(config, "force_no_cache")))
		m->force_no_cache = cJSON_IsTrue(v);
	if ((v = cJSON_GetObjectItemCaseSensitive(config, "listing_visibility"))) {
		if (!cJSON_IsString(v) ||
		    (strcmp(v->valuestring, "") != 0 && strcmp(v->valuestring, "unauth") != 0 &&
		     strcmp(v->valuestring, "hidden") != 0)) {
			snprintf(errmsg, errlen, "invalid listing_visibility");
			return CS_EINVAL;
		}
		free(m->listing_visibility);
		m->listing_visibility = strdup(v->valuestring);
	}
	return 0;
}

/* Options are a string map; numbers and bools are stringified as Vault's API does. */
cJSON *cs_sys_string_options(const cJSON *in)
{
	cJSON *o = cJSON_CreateObject();
	const cJSON *v;
	cJSON_ArrayForEach(v, in)
	{
		char buf[64];
		if (cJSON_IsString(v)) {
			cJSON_AddStringToObject(o, v->string, v->valuestring);
		} else if (cJSON_IsNumber(v)) {
			snprintf(buf, sizeof buf, "%lld", (long long)v->valuedouble);
			cJSON_AddStringToObject(o, v->string, buf);
		} else if (cJSON_IsBool(v)) {
			cJSON_AddStringToObject(o, v->string, cJSON_IsTrue(v) ? "true" : "false");
		} else {
			cJSON_Delete(o);
			return NULL;
		}
	}
	return o;
}

static int set_options(struct cs_mount *m, const cJSON *options, char *errmsg, size_t errlen)
{
	if (!options)
		return 0;
	cJSON *o = cs_sys_string_options(options);
	if (!o) {
		snprintf(errmsg, errlen, "options must be a map of strings");
		return CS_EINVAL;
	}
	cJSON_Delete(m->options);
	m->options = o;
	return 0;
}

int cs_sys_mount_add(struct cs_core *core, struct cs_txn *txn, const char *path, const char *type,
		     const char *description, const cJSON *config, const cJSON *options,
		     bool is_auth, char *errmsg, size_t errlen)
{
	char *p = mount_path(path);
	if (!p) {
		snprintf(errmsg, errlen, "invalid mount path \"%s\"", path);
		return CS_EINVAL;
	}
	static const char *protected_paths[] = {"sys/", "auth/", "audit/", "cubbyhole/",
						"identity/"};
	if (!is_auth) {
		for (size_t i = 0; i < CS_ARRAY_LEN(protected_paths); i++) {
			size_t n = strlen(protected_paths[i]);
			if (strncmp(p, protected_paths[i], n) == 0) {
				snprintf(errmsg, errlen,
					 "cannot mount '%s' of type '%s' at a "
					 "protected path \"%s\"",
					 p, type, protected_paths[i]);
				free(p);
				return CS_EINVAL;
			}
		}
	}
	char full[1024];
	snprintf(full, sizeof full, "%s%s", is_auth ? "auth/" : "", p);
	for (size_t i = 0; i < core->router.n; i++) {
		const char *q = core->router.mounts[i]->path;
		if (strncmp(q, full, strlen(q)) == 0 || strncmp(full, q, strlen(full)) == 0) {
			snprintf(errmsg, errlen, "path is already in use at %s", q);
			free(p);
			return CS_EINVAL;
		}
	}
	cJSON *opts = options ? cJSON_Duplicate(options, true) : NULL;
	char t[64];
	snprintf(t, sizeof t, "%s", type);
	if (strcmp(type, "kv-v2") == 0 || strcmp(type, "kv-v1") == 0) {
		if (!opts)
			opts = cJSON_CreateObject();
		cJSON_DeleteItemFromObjectCaseSensitive(opts, "version");
		cJSON_AddStringToObject(opts, "version", type[4] == '2' ? "2" : "1");
		snprintf(t, sizeof t, "kv");
	}
	const struct cs_backend *b = cs_backend_find(t, is_auth);
	if (!b) {
		snprintf(errmsg, errlen, "plugin not found in the catalog: %s", t);
		free(p);
		cJSON_Delete(opts);
		return CS_EINVAL;
	}
	struct cs_mount *m = cs_mount_new(full, t, is_auth);
	free(p);
	if (description) {
		free(m->description);
		m->description = strdup(description);
	}
	int rc = apply_mount_config(m, config, errmsg, errlen);
	if (!rc)
		rc = set_options(m, opts, errmsg, errlen);
	cJSON_Delete(opts);
	if (!rc) {
		cs_mount_bind_backend(m);
		b = m->backend;
	}
	if (!rc && b->validate_mount) {
		struct cs_request probe = {0};
		probe.core = core;
		probe.mount = m;
		rc = b->validate_mount(&probe, m->options);
		if (rc)
			snprintf(errmsg, errlen, "%s",
				 probe.errmsg ? probe.errmsg : cs_strerror(rc));
		free(probe.errmsg);
	}
	if (rc) {
		cs_mount_free(m);
		return rc;
	}
	cs_router_add(&core->router, m);
	rc = cs_sys_save_tables(core, txn);
	if (rc) {
		cs_router_remove(&core->router, m);
		snprintf(errmsg, errlen, "failed to persist mount table: %s", cs_strerror(rc));
	}
	return rc;
}

/* ------------------------------------------------------------------ init & seal */

static int init_read(struct cs_request *req)
{
	req->raw = cJSON_CreateObject();
	cJSON_AddBoolToObject(req->raw, "initialized", req->core->initialized);
	return 0;
}

static int init_write(struct cs_request *req)
{
	struct cs_core *core = req->core;
	if (core->initialized && !cs_ha_join_pending(core))
		return cs_req_error(req, CS_EINVAL, "Vault is already initialized");
	const cJSON *pgp = cs_req_get(req, "pgp_keys");
	const char *root_pgp = cs_req_str(req, "root_token_pgp_key", "");
	bool autoseal = cs_core_autoseal_kind(core) != CS_SEAL_SHAMIR;
	if (!autoseal &&
	    (cs_req_int(req, "recovery_shares", 0) || cs_req_int(req, "recovery_threshold", 0)))
		return cs_req_error(req, CS_EINVAL,
				    "parameters recovery_shares,recovery_threshold not applicable "
				    "to seal type shamir");
	if (!autoseal && !cs_req_has(req, "secret_shares"))
		return cs_req_error(req, CS_EINVAL, "secret_shares must be specified");
	/* PGP keys are checked before anything starts (server/keys_common.h). */
	char perr[256] = "";
	if (cJSON_GetArraySize(pgp) > 0 &&
	    cJSON_GetArraySize(pgp) != cs_req_int(req, "secret_shares", 0))
		return cs_req_error(req, CS_EINVAL, "incorrect number of PGP keys");
	if (cJSON_GetArraySize(pgp) > 0 && cs_keys_pgp_check(pgp, NULL, perr, sizeof perr))
		return cs_req_error(req, CS_EINVAL, "%s", perr);
	if (*root_pgp) {
		cJSON *a = cJSON_CreateArray();
		cJSON_AddItemToArray(a, cJSON_CreateString(root_pgp));
		int prc = cs_keys_pgp_check(a, NULL, perr, sizeof perr);
		cJSON_Delete(a);
		if (prc)
			return cs_req_error(req, CS_EINVAL, "root_token_pgp_key: %s", perr);
	}
	if (!cs_ha_join_cancel(core))
		return cs_req_error(req, CS_EINVAL,
				    "this node is joining a cluster; unseal it with the cluster's "
				    "keys instead");
	if (!core->raft_started) {
		int rc = cs_ha_bootstrap(core);
		if (rc)
			return cs_req_error(req, CS_EIO, "%s", core->errmsg);
	}
	if (!core->active)
		return CS_ENOTACTIVE; /* the core parks the request until the node is active */
	if (autoseal) /* secret_shares and pgp_keys do not apply: recovery keys instead */
		return core->autoseal_hooks.init(req);
	struct cs_init_params p = {
	    .shares = (int)cs_req_int(req, "secret_shares", 0),
	    .threshold =
		(int)cs_req_int(req, "secret_threshold", cs_req_int(req, "secret_shares", 0))};
	char err[256] = "";
	cJSON *resp = NULL;
	int rc = cs_seal_init(core, &req->txn, &p, &resp, err, sizeof err);
	if (rc)
		return cs_req_error(req, rc, "%s", err);
	if (cJSON_GetArraySize(pgp) > 0)
		rc = cs_keys_pgp_shares(resp, pgp, NULL, err, sizeof err);
	if (!rc && *root_pgp) {
		char *enc = NULL, fpr[CS_PGP_FPR_LEN + 1];
		const cJSON *rt = cJSON_GetObjectItemCaseSensitive(resp, "root_token");
		rc = cs_keys_pgp_encrypt_text(root_pgp, cJSON_IsString(rt) ? rt->valuestring : "",
					      &enc, fpr, err, sizeof err);
		if (!rc) {
			cs_zero(rt->valuestring, strlen(rt->valuestring));
			cJSON_ReplaceItemInObjectCaseSensitive(resp, "root_token",
							       cJSON_CreateString(enc));
			free(enc);
		}
	}
	if (rc) {
		cs_keys_free_secret_json(resp);
		return cs_req_error(req, rc, "%s", err);
	}
	core->initialized = true;
	core->seal.shares = p.shares;
	core->seal.threshold = p.threshold;
	req->raw = resp;
	cs_info("core: initialised with %d key shares, threshold %d", p.shares, p.threshold);
	return 0;
}

static int seal_status(struct cs_request *req)
{
	req->raw = cs_seal_status_json(req->core);
	return 0;
}

static int unseal(struct cs_request *req)
{
	struct cs_core *core = req->core;
	if (cs_req_bool(req, "reset", false)) {
		cs_core_unseal_reset(core);
		req->raw = cs_seal_status_json(core);
		return 0;
	}
	const char *key = cs_req_str(req, "key", NULL);
	if (!key || !*key)
		return cs_req_error(req, CS_EINVAL,
				    "'key' must be specified in request body as "
				    "JSON, or 'reset' set to true");
	if (!core->initialized)
		return cs_req_error(req, CS_EINVAL, "Vault is not initialized");
	bool migrate = cs_req_bool(req, "migrate", false);
	if (core->seal.migration && !migrate && !core->kr)
		return cs_req_error(req, CS_EINVAL,
				    "seal migration is pending: unseal with -migrate "
				    "(migrate=true)");
	/* With an auto seal the operators hold recovery shares (migration). */
	int nshares =
	    core->seal.kind != CS_SEAL_SHAMIR ? core->seal.recovery_shares : core->seal.shares;
	size_t len = 0;
	size_t expect = nshares == 1 ? CS_KEY_LEN : CS_KEY_LEN + 1;
	uint8_t *raw = cs_seal_decode_key(key, expect, &len);
	if (!raw)
		return cs_req_error(req, CS_EINVAL, "'key' must be a valid hex or base64 string");
	char err[256] = "";
	bool done = false;
	int rc;
	if (migrate) {
		rc =
		    core->autoseal_hooks.migrate
			? core->autoseal_hooks.migrate(req, raw, len)
			: cs_req_error(req, CS_EINVAL,
				       "migrate option provided, but no seal migration is pending");
		cs_zero(raw, len);
		free(raw);
		if (rc)
			return rc;
		req->raw = cs_seal_status_json(core);
		return 0;
	}
	if (core->seal.kind != CS_SEAL_SHAMIR && !core->kr) {
		cs_zero(raw, len);
		free(raw);
		return cs_req_error(req, CS_EINVAL,
				    "this node unseals with its %s seal; recovery keys do not "
				    "unseal it",
				    cs_seal_kind_name(core->seal.kind));
	}
	rc = cs_core_unseal_submit(core, raw, len, &done, err, sizeof err);
	cs_zero(raw, len);
	free(raw);
	if (rc)
		return cs_req_error(req, rc, "%s", err);
	req->raw = cs_seal_status_json(core);
	return 0;
}

static void seal_now(struct cs_core *core)
{
	if (!core->kr)
		return; /* sealed meanwhile */
	cs_core_seal(core);
	/* As in Vault, a sealed node leaves raft (the keyring is behind the barrier);
	 * closing transfers leadership first when other voters exist. */
	cs_ha_stop(core, NULL);
	cs_info("core: vault is sealed");
}

static int seal(struct cs_request *req)
{
	struct cs_core *core = req->core;
	if (!core->active)
		return cs_req_error(req, CS_EINVAL,
				    "vault cannot seal when in standby mode; "
				    "please restart instead");
	/* Not here: the request's own transaction and the token's use count (its last use
	 * revokes it) still need the keyring. The core seals once the response is out. */
	req->after_response = seal_now;
	return 0;
}

/* ------------------------------------------------------------------ health & leader */

static int health(struct cs_request *req)
{
	struct cs_core *core = req->core;
	bool sealed = core->kr == NULL;
	bool standby = !sealed && !core->active;
	int code;
	if (!core->initialized)
		code = (int)cs_req_int(req, "uninitcode", 501);
	else if (sealed)
		code = (int)cs_req_int(req, "sealedcode", 503);
	else if (cs_ha_removed(core))
		code = (int)cs_req_int(req, "removedcode", 530);
	else if (standby && !cs_req_bool(req, "standbyok", false))
		code = (int)cs_req_int(req, "standbycode", 429);
	else
		code = (int)cs_req_int(req, "activecode", 200);
	if (code < 100 || code > 999)
		return cs_req_error(req, CS_EINVAL, "invalid status code %d", code);
	cJSON *j = cJSON_CreateObject();
	cJSON_AddBoolToObject(j, "initialized", core->initialized);
	cJSON_AddBoolToObject(j, "sealed", sealed);
	cJSON_AddBoolToObject(j, "standby", standby);
	cJSON_AddBoolToObject(j, "performance_standby", false);
	cJSON_AddStringToObject(j, "replication_performance_mode", "disabled");
	cJSON_AddStringToObject(j, "replication_dr_mode", "disabled");
	cJSON_AddNumberToObject(j, "server_time_utc", (double)time(NULL));
	cJSON_AddStringToObject(j, "version", CUSTOS_VERSION);
	cJSON_AddBoolToObject(j, "enterprise", false);
	if (!sealed) {
		cJSON_AddStringToObject(j, "cluster_name", core->cluster_name);
		cJSON_AddStringToObject(j, "cluster_id", core->cluster_id);
	}
	cJSON_AddNumberToObject(j, "echo_duration_ms", 0);
	cJSON_AddNumberToObject(j, "clock_skew_ms", 0);
	cJSON_AddNumberToObject(j, "replication_primary_canary_age_ms", 0);
	cJSON_AddBoolToObject(j, "removed_from_cluster", cs_ha_removed(core));
	cJSON_AddBoolToObject(j, "ha_connection_healthy",
			      !standby || (core->raft_started && cs_ha_leader_known(core)));
	req->raw = j;
	req->status = code;
	return 0;
}

static int leader(struct cs_request *req)
{
	struct cs_core *core = req->core;
	cJSON *j = cJSON_CreateObject();
	cs_ha_leader_json(core, j);
	cJSON_AddBoolToObject(j, "performance_standby", false);
	cJSON_AddNumberToObject(j, "performance_standby_last_remote_wal", 0);
	struct raft *r = &core->node.raft;
	cJSON_AddNumberToObject(j, "raft_committed_index",
				core->raft_started ? (double)r->commit_index : 0);
	cJSON_AddNumberToObject(j, "raft_applied_index",
				core->raft_started ? (double)raft_last_applied(r) : 0);
	req->raw = j;
	return 0;
}

/* ------------------------------------------------------------------ mounts */

static cJSON *mounts_json(struct cs_core *core, bool auth)
{
	cJSON *d = cJSON_CreateObject();
	int64_t dt = cs_core_default_ttl(core, NULL), mt = cs_core_max_ttl(core, NULL);
	if (!auth) {
		struct cs_mount *sys = cs_sys_mount(core);
		cJSON_AddItemToObject(d, sys->path, cs_mount_to_json(sys, dt, mt));
	}
	for (size_t i = 0; i < core->router.n; i++) {
		struct cs_mount *m = core->router.mounts[i];
		if (m->is_auth != auth)
			continue;
		const char *key = auth ? m->path + 5 : m->path;
		cJSON_AddItemToObject(d, key, cs_mount_to_json(m, dt, mt));
	}
	return d;
}

static int mounts_list(struct cs_request *req)
{
	cs_req_set_data(req, mounts_json(req->core, false));
	req->data_to_top = true;
	return 0;
}

static int auth_list(struct cs_request *req)
{
	cs_req_set_data(req, mounts_json(req->core, true));
	req->data_to_top = true;
	return 0;
}

static struct cs_mount *find_mount(struct cs_request *req, const char *user_path, bool auth)
{
	char *p = mount_path(user_path);
	if (!p)
		return NULL;
	char full[1024];
	snprintf(full, sizeof full, "%s%s", auth ? "auth/" : "", p);
	free(p);
	if (!auth && strcmp(full, "sys/") == 0)
		return cs_sys_mount(req->core);
	struct cs_mount *m = cs_router_get(&req->core->router, full);
	return m && m->is_auth == auth ? m : NULL;
}

/* sys/mounts/:path and sys/auth/:path share their handlers; the row's pattern says which
 * table a request is about. */
static bool auth_row(const struct cs_request *req)
{
	return strncmp(req->route->pattern, "auth/", 5) == 0;
}

/* The mount path of sys/mounts/:path and sys/auth/:path: only ever the route's capture,
 * never the body, so the path the ACL checked is the mount these handlers change. */
static const char *mount_param(const struct cs_request *req)
{
	const char *p = cs_req_capture(req, "path");
	return p ? p : "";
}

static int mount_read(struct cs_request *req)
{
	bool auth = auth_row(req);
	struct cs_mount *m = find_mount(req, mount_param(req), auth);
	if (!m)
		return cs_req_error(req, CS_EINVAL, "No %s mount at %s",
				    auth ? "auth" : "secret engine", mount_param(req));
	cs_req_set_data(req, cs_mount_to_json(m, cs_core_default_ttl(req->core, NULL),
					      cs_core_max_ttl(req->core, NULL)));
	req->data_to_top = true;
	return 0;
}

static int mount_enable(struct cs_request *req)
{
	const char *type = cs_req_str(req, "type", "");
	if (!*type)
		return cs_req_error(req, CS_EINVAL, "backend type must be specified as a string");
	char err[512] = "";
	bool auth = auth_row(req);
	int rc = cs_sys_mount_add(req->core, &req->txn, mount_param(req), type,
				  cs_req_str(req, "description", NULL), cs_req_get(req, "config"),
				  cs_req_get(req, "options"), auth, err, sizeof err);
	if (rc)
		return cs_req_error(req, rc, "%s", err);
	if (cs_req_bool(req, "local", false)) {
		struct cs_mount *m = find_mount(req, mount_param(req), auth);
		if (m) {
			m->local = true;
			rc = cs_sys_save_tables(req->core, &req->txn);
		}
	}
	if (!rc && auth)
		cs_info("core: enabled auth method %s at auth/%s", type, mount_param(req));
	return rc;
}

static int mount_disable(struct cs_request *req)
{
	struct cs_core *core = req->core;
	const char *path = mount_param(req);
	bool auth = auth_row(req);
	struct cs_mount *m = find_mount(req, path, auth);
	if (!m)
		return 0; /* Vault: disabling a missing mount succeeds */
	if (m->backend == &cs_sys_backend)
		return cs_req_error(req, CS_EINVAL, "cannot unmount \"sys/\"");
	if (auth && strcmp(m->type, "token") == 0)
		return cs_req_error(req, CS_EINVAL, "token credential backend cannot be disabled");
	if (!auth && cs_sys_mount_required(m->path))
		return cs_req_error(req, CS_EINVAL, "cannot unmount \"%s\"", m->path);
	/* As Vault: the mount's leases and the tokens issued through it go with it, in the
	 * same transaction as the data and the table change. */
	int rc = core->expire.revoke_prefix ? core->expire.revoke_prefix(req, m->path) : 0;
	if (rc)
		return rc;
	/* Delete the mount's data in the same transaction as the table change. */
	struct cs_strv keys = {0};
	rc = cs_txn_scan(&req->txn, m->storage_prefix, &keys);
	for (size_t i = 0; !rc && i < keys.n; i++)
		rc = cs_txn_delete(&req->txn, keys.v[i]);
	cs_strv_free(&keys);
	if (rc)
		return rc;
	char *saved = strdup(m->path);
	cs_router_remove(&core->router, m);
	rc = cs_sys_save_tables(core, &req->txn);
	if (!rc)
		cs_info("core: disabled mount %s", saved);
	free(saved);
	return rc;
}

static int tune_read(struct cs_request *req)
{
	struct cs_mount *m = find_mount(req, mount_param(req), auth_row(req));
	if (!m)
		return cs_req_error(req, CS_EINVAL, "cannot fetch sysview for path \"%s\"",
				    mount_param(req));
	cJSON *d = cJSON_CreateObject();
	cJSON_AddNumberToObject(d, "default_lease_ttl", (double)cs_core_default_ttl(req->core, m));
	cJSON_AddNumberToObject(d, "max_lease_ttl", (double)cs_core_max_ttl(req->core, m));
	cJSON_AddBoolToObject(d, "force_no_cache", m->force_no_cache);
	cJSON_AddStringToObject(d, "description", m->description);
	if (m->listing_visibility && *m->listing_visibility)
		cJSON_AddStringToObject(d, "listing_visibility", m->listing_visibility);
	if (m->options)
		cJSON_AddItemToObject(d, "options", cJSON_Duplicate(m->options, true));
	cs_req_set_data(req, d);
	return 0;
}

static int tune_write(struct cs_request *req)
{
	struct cs_core *core = req->core;
	struct cs_mount *m = find_mount(req, mount_param(req), auth_row(req));
	if (!m)
		return cs_req_error(req, CS_EINVAL, "cannot tune \"%s\": no mount there",
				    mount_param(req));
	const cJSON *opts = cs_req_get(req, "options");
	const cJSON *v = opts ? cJSON_GetObjectItemCaseSensitive(opts, "version") : NULL;
	if (v && strcmp(m->type, "kv") == 0) {
		const cJSON *cur =
		    m->options ? cJSON_GetObjectItemCaseSensitive(m->options, "version") : NULL;
		char want[16];
		if (cJSON_IsNumber(v))
			snprintf(want, sizeof want, "%d", v->valueint);
		else
			snprintf(want, sizeof want, "%s", cJSON_IsString(v) ? v->valuestring : "?");
		if (strcmp(want, cJSON_IsString(cur) ? cur->valuestring : "1") != 0)
			return cs_req_error(req, CS_EINVAL,
					    "changing the KV version of a mount is not supported");
	}
	/* Work on a copy so that a rejected tune leaves the live mount untouched. */
	struct cs_mount tmp = *m;
	tmp.listing_visibility = strdup(m->listing_visibility);
	char err[256] = "";
	int rc = apply_mount_config(&tmp, req->data, err, sizeof err);
	if (rc) {
		free(tmp.listing_visibility);
		return cs_req_error(req, rc, "%s", err);
	}
	if (opts && cJSON_IsObject(opts)) {
		cJSON *merged =
		    m->options ? cJSON_Duplicate(m->options, true) : cJSON_CreateObject();
		cJSON_ArrayForEach(v, opts)
		{
			cJSON_DeleteItemFromObjectCaseSensitive(merged, v->string);
			cJSON_AddItemToObject(merged, v->string, cJSON_Duplicate(v, true));
		}
		tmp.options = NULL;
		rc = set_options(&tmp, merged, err, sizeof err);
		cJSON_Delete(merged);
		if (rc) {
			free(tmp.listing_visibility);
			return cs_req_error(req, rc, "%s", err);
		}
		cJSON_Delete(m->options);
		m->options = tmp.options;
	}
	free(m->listing_visibility);
	m->listing_visibility = tmp.listing_visibility;
	m->default_lease_ttl = tmp.default_lease_ttl;
	m->max_lease_ttl = tmp.max_lease_ttl;
	m->force_no_cache = tmp.force_no_cache;
	const char *desc = cs_req_str(req, "description", NULL);
	if (desc) {
		free(m->description);
		m->description = strdup(desc);
	}
	if (m == cs_sys_mount(core))
		return 0;
	return cs_sys_save_tables(core, &req->txn);
}

/* ------------------------------------------------------------------ internal/ui */

/*
 * sys/internal/ui/mounts[/path] (Vault's pathInternalUIMountsRead/MountRead). Both rows
 * are CS_PATH_UNAUTH | CS_PATH_OPT_TOKEN: without a token the caller sees only mounts
 * tuned listing_visibility="unauth"; a token that is sent was checked by the core like on
 * every other path (403 when unknown, expired or refused by its token_bound_cidrs; no use
 * spent, as in Vault's preflight), and
 * it sees the mounts where it has some capability on some path (cs_req_mount_visible;
 * root sees all). The single-mount form needs a token and answers the same 403 for a
 * missing and a hidden mount, so it cannot be used to probe which mounts exist.
 */

static cJSON *ui_mount(const struct cs_mount *m)
{
	cJSON *e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "type", m->type);
	cJSON_AddStringToObject(e, "description", m->description);
	if (m->options)
		cJSON_AddItemToObject(e, "options", cJSON_Duplicate(m->options, true));
	else
		cJSON_AddNullToObject(e, "options");
	return e;
}

static bool ui_visible(struct cs_request *req, struct cs_mount *m)
{
	if (m->listing_visibility && strcmp(m->listing_visibility, "unauth") == 0)
		return true;
	return req->token_entry && cs_req_mount_visible(req, m->path);
}

static int ui_mounts(struct cs_request *req)
{
	struct cs_core *core = req->core;
	cJSON *d = cJSON_CreateObject();
	cJSON *secret = cJSON_AddObjectToObject(d, "secret");
	cJSON *auth = cJSON_AddObjectToObject(d, "auth");
	struct cs_mount *sys = cs_sys_mount(core);
	if (ui_visible(req, sys))
		cJSON_AddItemToObject(secret, sys->path, ui_mount(sys));
	for (size_t i = 0; i < core->router.n; i++) {
		struct cs_mount *m = core->router.mounts[i];
		if (!ui_visible(req, m))
			continue;
		if (m->is_auth)
			cJSON_AddItemToObject(auth, m->path + 5, ui_mount(m));
		else
			cJSON_AddItemToObject(secret, m->path, ui_mount(m));
	}
	cs_req_set_data(req, d);
	return 0;
}

static int ui_mount_path(struct cs_request *req)
{
	struct cs_core *core = req->core;
	const char *path = cs_req_capture(req, "path");
	if (!path)
		path = "";
	struct cs_mount *m = NULL;
	if (strncmp(path, "sys/", 4) == 0 || strcmp(path, "sys") == 0)
		m = cs_sys_mount(core);
	else
		m = cs_router_match(&core->router, path);
	if (!m || !req->token_entry || !cs_req_mount_visible(req, m->path)) {
		req->status = 403;
		return cs_req_error(req, CS_EPERM,
				    "preflight capability check returned 403, please ensure "
				    "client's policies grant access to path \"%s/\"",
				    path);
	}
	cJSON *d =
	    cs_mount_to_json(m, cs_core_default_ttl(core, NULL), cs_core_max_ttl(core, NULL));
	cJSON_AddStringToObject(d, "path", m->is_auth ? m->path + 5 : m->path);
	cs_req_set_data(req, d);
	return 0;
}

/* ------------------------------------------------------------------ table */

static const struct cs_field init_fields[] = {
    {.name = "secret_shares", .type = CS_FIELD_INT, .desc = "number of key shares"},
    {.name = "secret_threshold", .type = CS_FIELD_INT, .desc = "shares needed to unseal"},
    {.name = "pgp_keys",
     .type = CS_FIELD_STRLIST,
     .desc = "PGP public keys (base64) to encrypt the shares"},
    {.name = "root_token_pgp_key",
     .type = CS_FIELD_STRING,
     .desc = "PGP public key (base64) for the root token"},
    {.name = "recovery_shares", .type = CS_FIELD_INT, .desc = "auto-unseal only"},
    {.name = "recovery_threshold", .type = CS_FIELD_INT, .desc = "auto-unseal only"},
    {.name = "recovery_pgp_keys", .type = CS_FIELD_STRLIST, .desc = "auto-unseal only"},
    {.name = "stored_shares", .type = CS_FIELD_INT, .desc = "ignored"},
    {.name = NULL},
};

static const struct cs_field unseal_fields[] = {
    {.name = "key", .type = CS_FIELD_STRING, .desc = "one unseal key share, hex or base64"},
    {.name = "reset", .type = CS_FIELD_BOOL, .desc = "discard the shares given so far"},
    {.name = "migrate", .type = CS_FIELD_BOOL, .desc = "seal migration (unsupported)"},
    {.name = NULL},
};

static const struct cs_field health_fields[] = {
    {.name = "standbyok", .type = CS_FIELD_BOOL},
    {.name = "perfstandbyok", .type = CS_FIELD_BOOL},
    {.name = "activecode", .type = CS_FIELD_INT},
    {.name = "standbycode", .type = CS_FIELD_INT},
    {.name = "drsecondarycode", .type = CS_FIELD_INT},
    {.name = "performancestandbycode", .type = CS_FIELD_INT},
    {.name = "haunhealthycode", .type = CS_FIELD_INT},
    {.name = "removedcode", .type = CS_FIELD_INT},
    {.name = "sealedcode", .type = CS_FIELD_INT},
    {.name = "uninitcode", .type = CS_FIELD_INT},
    {.name = NULL},
};

static const struct cs_field mount_fields[] = {
    {.name = "path", .type = CS_FIELD_STRING, .desc = "mount path"},
    {.name = "type", .type = CS_FIELD_STRING, .desc = "backend type"},
    {.name = "description", .type = CS_FIELD_STRING},
    {.name = "config", .type = CS_FIELD_MAP, .desc = "default_lease_ttl, max_lease_ttl, ..."},
    {.name = "options", .type = CS_FIELD_MAP, .desc = "backend options"},
    {.name = "local", .type = CS_FIELD_BOOL},
    {.name = "seal_wrap", .type = CS_FIELD_BOOL},
    {.name = "external_entropy_access", .type = CS_FIELD_BOOL},
    {.name = "plugin_name", .type = CS_FIELD_STRING},
    {.name = "plugin_version", .type = CS_FIELD_STRING},
    {.name = NULL},
};

static const struct cs_field tune_fields[] = {
    {.name = "path", .type = CS_FIELD_STRING, .desc = "mount path"},
    {.name = "default_lease_ttl", .type = CS_FIELD_ANY},
    {.name = "max_lease_ttl", .type = CS_FIELD_ANY},
    {.name = "description", .type = CS_FIELD_STRING},
    {.name = "options", .type = CS_FIELD_MAP},
    {.name = "force_no_cache", .type = CS_FIELD_BOOL},
    {.name = "listing_visibility", .type = CS_FIELD_STRING},
    {.name = "audit_non_hmac_request_keys", .type = CS_FIELD_STRLIST},
    {.name = "audit_non_hmac_response_keys", .type = CS_FIELD_STRLIST},
    {.name = "passthrough_request_headers", .type = CS_FIELD_STRLIST},
    {.name = "allowed_response_headers", .type = CS_FIELD_STRLIST},
    {.name = "plugin_version", .type = CS_FIELD_STRING},
    {.name = "token_type", .type = CS_FIELD_STRING},
    {.name = "user_lockout_config", .type = CS_FIELD_MAP},
    {.name = NULL},
};

static const struct cs_field path_only[] = {
    {.name = "path", .type = CS_FIELD_STRING},
    {.name = NULL},
};

#define UNSEALED_OK (CS_PATH_UNAUTH | CS_PATH_SEALED_OK | CS_PATH_NO_ACTIVE | CS_PATH_LOCAL)

static const struct cs_path sys_paths[] = {
    {.pattern = "init",
     .fields = init_fields,
     .ops = {[CS_OP_READ] = init_read, [CS_OP_UPDATE] = init_write},
     .flags = UNSEALED_OK,
     .synopsis = "initialise a new cluster"},
    {.pattern = "seal-status",
     .ops = {[CS_OP_READ] = seal_status},
     .flags = UNSEALED_OK,
     .synopsis = "seal status"},
    {.pattern = "unseal",
     .fields = unseal_fields,
     .ops = {[CS_OP_UPDATE] = unseal},
     .flags = UNSEALED_OK,
     .synopsis = "submit an unseal key share"},
    {.pattern = "seal",
     .ops = {[CS_OP_UPDATE] = seal},
     .flags = CS_PATH_SUDO | CS_PATH_NO_ACTIVE | CS_PATH_LOCAL,
     .synopsis = "seal this node"},
    {.pattern = "health",
     .fields = health_fields,
     .ops = {[CS_OP_READ] = health},
     .flags = UNSEALED_OK,
     .synopsis = "health for load balancers"},
    {.pattern = "leader",
     .ops = {[CS_OP_READ] = leader},
     .flags = UNSEALED_OK,
     .synopsis = "leader status"},
    {.pattern = "mounts", .ops = {[CS_OP_READ] = mounts_list}, .synopsis = "list mounts"},
    {.pattern = "mounts/{path*}/tune",
     .fields = tune_fields,
     .ops = {[CS_OP_READ] = tune_read, [CS_OP_UPDATE] = tune_write},
     .synopsis = "tune a mount"},
    {.pattern = "mounts/{path*}",
     .fields = mount_fields,
     .ops =
	 {[CS_OP_READ] = mount_read, [CS_OP_UPDATE] = mount_enable, [CS_OP_DELETE] = mount_disable},
     .synopsis = "enable, read or disable a secrets engine"},
    {.pattern = "auth", .ops = {[CS_OP_READ] = auth_list}, .synopsis = "list auth methods"},
    /* sys/auth/... needs sudo, as in Vault's list of root paths. */
    {.pattern = "auth/{path*}/tune",
     .fields = tune_fields,
     .ops = {[CS_OP_READ] = tune_read, [CS_OP_UPDATE] = tune_write},
     .flags = CS_PATH_SUDO,
     .synopsis = "tune an auth method"},
    {.pattern = "auth/{path*}",
     .fields = mount_fields,
     .ops =
	 {[CS_OP_READ] = mount_read, [CS_OP_UPDATE] = mount_enable, [CS_OP_DELETE] = mount_disable},
     .flags = CS_PATH_SUDO,
     .synopsis = "enable, read or disable an auth method"},
    {.pattern = "internal/ui/mounts",
     .ops = {[CS_OP_READ] = ui_mounts},
     .flags = CS_PATH_UNAUTH | CS_PATH_OPT_TOKEN,
     .synopsis = "mounts visible to the caller"},
    {.pattern = "internal/ui/mounts/{path*}",
     .fields = path_only,
     .ops = {[CS_OP_READ] = ui_mount_path},
     .flags = CS_PATH_UNAUTH | CS_PATH_OPT_TOKEN,
     .synopsis = "the mount serving a path"},
};

/* The slots of cs_sys_set_paths, searched in enum order before sys_paths. */
static struct cs_path_table sys_tables[CS_SYS__COUNT];

const struct cs_backend cs_sys_backend = {
    .type = "system",
    .is_auth = false,
    .paths = sys_paths,
    .n_paths = CS_ARRAY_LEN(sys_paths),
    .tables = sys_tables,
    .n_tables = CS_SYS__COUNT,
};

void cs_sys_set_paths(enum cs_sys_table slot, const struct cs_path *paths, size_t n)
{
	if ((unsigned)slot < CS_SYS__COUNT)
		sys_tables[slot] = (struct cs_path_table){.paths = paths, .n = n};
}
