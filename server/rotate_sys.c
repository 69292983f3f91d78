/*
 * sys/rotate, sys/key-status, sys/rotate/config and automatic rotation (rotate_sys.h).
 *
 * Happy path of a rotation: the handler (or the tick, for an automatic one) reads the
 * newest keyring record through its transaction (a rotation still pending in the
 * overlay included, so two rotations in a row make two terms), adds a term and writes
 * the record back; the core commits it through raft. On every node the FSM applies the
 * entry and the store's apply hook (keyring_applied) opens the record with the root key
 * and installs it into the live keyring in place. The request's response is held until
 * that apply, so a 204 means the active node already encrypts with the new term.
 * Failure modes: the commit fails (leadership lost, sealed) → the request fails and no
 * node installed anything (raft never applied it); the record cannot be opened on a node
 * (a restored snapshot of another cluster: ha.c seals the node right after) → the live
 * keyring stays as it was; an automatic rotation that fails is retried at the next check.
 */
#include "server/rotate_sys.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"
#include "server/backend.h"
#include "server/config.h"
#include "server/core.h"
#include "server/sys.h"

/* Automatic rotation is checked at most this often (ms); Vault checks every 5 min. */
#define CHECK_MS 1000

static struct {
	struct cs_core *core;
	cs_store_apply_hook prev_hook; /* a hook installed before ours keeps running */
	void *prev_ctx;
	uint64_t last_check;
	bool auto_in_flight;
} R;

/* ---------------------------------------------------------------- apply hook */

/* Loop thread, inside the FSM apply, after the LMDB commit: on every node. */
static void keyring_applied(void *ctx, const char *key, size_t klen)
{
	struct cs_core *core = ctx;
	if (R.prev_hook)
		R.prev_hook(R.prev_ctx, key, klen);
	/* klen 0: a snapshot replaced everything, the keyring included. */
	if (!core->kr || (klen != 0 && (klen != strlen(CS_KEYRING_PATH) ||
					memcmp(key, CS_KEYRING_PATH, klen) != 0)))
		return;
	struct cs_buf ct = CS_BUF_INIT;
	struct cs_keyring *fresh = NULL;
	int rc = cs_store_get(&core->st.store, CS_KEYRING_PATH, strlen(CS_KEYRING_PATH), &ct);
	if (rc == 0)
		rc = cs_keyring_open(core->kr->root_key, ct.data, ct.len, &fresh);
	cs_buf_free(&ct);
	if (rc != 0) {
		/* After a restore from another cluster ha.c seals this node next. */
		if (klen)
			cs_warn("barrier: cannot open the applied keyring record: %s",
				cs_strerror(rc));
		return;
	}
	uint32_t before = core->kr->active_term;
	cs_keyring_install(core->kr, fresh);
	if (core->kr->active_term != before)
		cs_info("barrier: installed key term %lu (was %lu)",
			(unsigned long)core->kr->active_term, (unsigned long)before);
}

/* ---------------------------------------------------------------- handlers */

static int h_rotate(struct cs_request *req)
{
	int rc = cs_keyring_rotate_txn(&req->txn, req->core->kr);
	if (rc)
		return cs_req_error(req, rc, "failed to rotate the barrier key: %s",
				    cs_strerror(rc));
	cs_info("barrier: key rotation requested over the API");
	return 0;
}

static int h_key_status(struct cs_request *req)
{
	const struct cs_keyring *kr = req->core->kr;
	uint64_t n = cs_keyring_refresh(kr, &req->core->st);
	const struct cs_keyring_key *k = cs_keyring_term(kr, kr->active_term);
	if (!k)
		return CS_EINTERNAL;
	char when[64];
	cs_format_go_time(k->install_time_ns, when, sizeof when);
	cJSON *d = cJSON_CreateObject();
	cJSON_AddNumberToObject(d, "term", k->term);
	cJSON_AddStringToObject(d, "install_time", when);
	cJSON_AddNumberToObject(d, "encryptions", (double)n);
	cs_req_set_data(req, d);
	req->data_to_top = true; /* one of Vault's legacy top-level sys/ answers */
	return 0;
}

static cJSON *config_json(const struct cs_keyring *kr)
{
	cJSON *d = cJSON_CreateObject();
	cJSON_AddNumberToObject(d, "max_operations", (double)kr->max_operations);
	cJSON_AddBoolToObject(d, "enabled", !kr->rotation_disabled);
	/* As Vault: a Go duration string, or the number 0 when off. */
	if (kr->rotation_interval > 0) {
		char dur[32];
		cs_format_duration(kr->rotation_interval, dur, sizeof dur);
		cJSON_AddStringToObject(d, "interval", dur);
	} else {
		cJSON_AddNumberToObject(d, "interval", 0);
	}
	return d;
}

static int h_config_read(struct cs_request *req)
{
	/* The newest record, so a read right after a write sees it. */
	struct cs_keyring *kr = NULL;
	int rc = cs_keyring_load(&req->txn, req->core->kr, &kr);
	if (rc)
		return cs_req_error(req, rc, "cannot read the keyring: %s", cs_strerror(rc));
	cs_req_set_data(req, config_json(kr));
	cs_keyring_free(kr);
	return 0;
}

static int h_config_write(struct cs_request *req)
{
	uint64_t floor = req->core->cfg->rotation_min_operations > 0
			     ? (uint64_t)req->core->cfg->rotation_min_operations
			     : CS_ROTATE_MIN_OPERATIONS;
	/* Validate everything before touching anything. */
	int64_t ops = 0, interval = 0;
	bool has_ops = cs_req_has(req, "max_operations"), has_iv = cs_req_has(req, "interval");
	if (has_ops)
		ops = cs_req_int(req, "max_operations", 0);
	if (has_iv)
		interval = cs_req_int(req, "interval", 0);
	struct cs_keyring *kr = NULL;
	int rc = cs_keyring_load(&req->txn, req->core->kr, &kr);
	if (rc)
		return cs_req_error(req, rc, "cannot read the keyring: %s", cs_strerror(rc));
	uint64_t new_ops = has_ops ? (ops < 0 ? 0 : (uint64_t)ops) : kr->max_operations;
	int64_t new_iv = has_iv ? interval : kr->rotation_interval;
	if (new_iv < 0 || (new_iv != 0 && new_iv < CS_ROTATE_MIN_INTERVAL)) {
		char dur[32];
		cs_format_duration(CS_ROTATE_MIN_INTERVAL, dur, sizeof dur);
		rc = cs_req_error(req, CS_EINVAL, "interval must be greater or equal to %s", dur);
	} else if (new_iv > INT64_MAX / 1000000000LL) {
		/* Stored as a Go time.Duration (int64 nanoseconds), as Vault does. */
		rc = cs_req_error(req, CS_EINVAL, "interval is too large");
	} else if (new_ops < floor || new_ops > CS_ROTATE_MAX_OPERATIONS) {
		rc = cs_req_error(req, CS_EINVAL, "max_operations must be in the range [%llu,%llu]",
				  (unsigned long long)floor,
				  (unsigned long long)CS_ROTATE_MAX_OPERATIONS);
	} else {
		kr->max_operations = new_ops;
		kr->rotation_interval = new_iv;
		if (cs_req_has(req, "enabled"))
			kr->rotation_disabled = !cs_req_bool(req, "enabled", true);
		rc = cs_keyring_store(&req->txn, kr);
	}
	cs_keyring_free(kr);
	return rc;
}

/* ---------------------------------------------------------------- automatic */

static void auto_done(void *data, int status)
{
	(void)data;
	R.auto_in_flight = false;
	if (status)
		cs_warn("barrier: automatic key rotation failed: %s (retrying)",
			cs_strerror(status));
	else
		cs_info("barrier: automatic key rotation done");
}

void cs_rotate_tick(struct cs_core *core)
{
	uint64_t now = cs_mono_ms();
	if (now - R.last_check < CHECK_MS)
		return;
	R.last_check = now;
	if (!core->active || !core->kr || R.auto_in_flight || core->shutting_down)
		return;
	const struct cs_keyring *kr = core->kr;
	const char *why = cs_keyring_rotation_due(kr, cs_keyring_encryptions(kr), cs_now_ns());
	if (!why)
		return;
	cs_info("barrier: rotating the key of term %lu automatically (%s)",
		(unsigned long)kr->active_term, why);
	struct cs_txn t;
	cs_txn_begin(&t, &core->st, core->kr);
	int rc = cs_keyring_rotate_txn(&t, kr);
	if (rc) {
		cs_txn_abort(&t);
		cs_warn("barrier: automatic key rotation: %s", cs_strerror(rc));
		return;
	}
	bool pending = false;
	R.auto_in_flight = true;
	rc = cs_txn_commit(&t, auto_done, NULL, &pending);
	if (rc || !pending)
		auto_done(NULL, rc);
}

/* ---------------------------------------------------------------- table */

static const struct cs_field config_fields[] = {
    {.name = "max_operations",
     .type = CS_FIELD_INT,
     .desc = "encryptions after which the key rotates"},
    {.name = "interval",
     .type = CS_FIELD_DURATION,
     .desc = "age after which the key rotates (0: never)"},
    {.name = "enabled", .type = CS_FIELD_BOOL, .desc = "whether automatic rotation is enabled"},
    {.name = NULL},
};

/* sudo on rotate and rotate/keyring only: Vault's root paths list exactly those. */
static const struct cs_path rotate_paths[] = {
    {.pattern = "rotate/config",
     .fields = config_fields,
     .ops = {[CS_OP_READ] = h_config_read, [CS_OP_UPDATE] = h_config_write},
     .synopsis = "automatic barrier key rotation"},
    {.pattern = "rotate/keyring/config",
     .fields = config_fields,
     .ops = {[CS_OP_READ] = h_config_read, [CS_OP_UPDATE] = h_config_write},
     .synopsis = "automatic barrier key rotation"},
    {.pattern = "rotate",
     .ops = {[CS_OP_UPDATE] = h_rotate},
     .flags = CS_PATH_SUDO,
     .synopsis = "rotate the barrier key"},
    {.pattern = "rotate/keyring",
     .ops = {[CS_OP_UPDATE] = h_rotate},
     .flags = CS_PATH_SUDO,
     .synopsis = "rotate the barrier key"},
    {.pattern = "key-status",
     .ops = {[CS_OP_READ] = h_key_status},
     .synopsis = "the barrier key's status"},
};

void cs_rotate_register(struct cs_core *core)
{
	R.core = core;
	R.prev_hook = core->st.store.hook;
	R.prev_ctx = core->st.store.hook_ctx;
	core->st.store.hook = keyring_applied;
	core->st.store.hook_ctx = core;
	/* Only the keyring record matters here; a hook registered before watched every key. */
	core->st.store.hook_prefix = R.prev_hook ? NULL : CS_KEYRING_PATH;
	core->st.count_encryptions = true;
	cs_sys_set_paths(CS_SYS_ROTATE, rotate_paths, CS_ARRAY_LEN(rotate_paths));
}
