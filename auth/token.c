/*
 * The token store (see token.h). Storage layout, all values barrier-encrypted JSON:
 *
 *   sys/token/salt                         32 random bytes, the HMAC key
 *   sys/token/id/<H(token)>                the token entry (never the token itself)
 *   sys/token/accessor/<H(accessor)>       {"token_key": H(token), "accessor": ...}
 *   sys/token/parent/<H(parent)>/<H(child)> {} — the child index for tree revocation
 *   sys/expire/id/<path>/<H(token)>        the token's lease (auth/expire.c)
 *
 * A token entry: accessor, policies, path, display_name, meta, num_uses (-1: the last
 * use is in progress; the token is invalid), creation_time, creation_ttl, expire_time
 * (unix s, 0 = never), explicit_max_ttl, period, max_ttl (the mount's at creation),
 * orphan, parent (H(parent) or ""), type, renewable, lease_id, key (H(token)).
 *
 * Secrets are compared only through their HMACs (storage lookups by key); the token is
 * never compared byte-wise, so there is no timing side channel on it.
 *
 * This file holds the records and the core's hooks; the endpoints live in token_create.c,
 * token_ops.c and token_roles.c (token_internal.h).
 */
#include "auth/token.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/expire.h"
#include "auth/record_convert.h"
#include "auth/token_internal.h"
#include "auth/token_revoke.h"
#include "auth/tokenutil.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/secmem.h"
#include "lib/util.h"

#define SALT_PATH       "sys/token/salt"
#define SALT_LEN        32
#define ID_PREFIX       CS_TOKEN_ID_PREFIX
#define ACCESSOR_PREFIX CS_TOKEN_ACCESSOR_PREFIX
#define PARENT_PREFIX   CS_TOKEN_PARENT_PREFIX

/* The token store's state in its core: the salt, cached between unseal and seal (reset
 * hook). */
struct token_state {
	uint8_t *salt; /* secmem, SALT_LEN bytes, or NULL */
};

static void token_state_release(void *state)
{
	struct token_state *ts = state;
	cs_secmem_free(ts->salt, SALT_LEN);
	ts->salt = NULL;
}

static const struct cs_core_state_type token_state_type = {
    .name = "token store", .size = sizeof(struct token_state), .release = token_state_release};

static struct token_state *state_of(struct cs_txn *txn)
{
	return cs_core_state(cs_txn_core(txn), &token_state_type);
}

static void token_reset(struct cs_core *core)
{
	token_state_release(cs_core_state(core, &token_state_type));
	cs_expire_reset(core);
	cs_revq_reset(core);
}

static int load_salt(struct cs_txn *txn)
{
	struct token_state *ts = state_of(txn);
	if (ts->salt)
		return 0;
	struct cs_buf b = CS_BUF_INIT;
	int rc = cs_txn_get(txn, SALT_PATH, &b);
	if (!rc && b.len != SALT_LEN)
		rc = CS_EIO;
	if (!rc) {
		ts->salt = cs_secmem_alloc(SALT_LEN);
		memcpy(ts->salt, b.data, SALT_LEN);
	}
	cs_buf_free_secure(&b);
	return rc;
}

/* hex(HMAC-SHA256(salt, value)); out >= 65 bytes. The salt must be loaded. */
static void hmac_hex(struct cs_txn *txn, const char *value, char *out)
{
	cs_tokenutil_hmac_hex(state_of(txn)->salt, SALT_LEN, value, out);
}

/* The accessor index key of `accessor`. The salt must be loaded. */
static void accessor_key(struct cs_txn *txn, const char *accessor, char key[128])
{
	char ah[65];
	hmac_hex(txn, accessor, ah);
	snprintf(key, 128, "%s%s", ACCESSOR_PREFIX, ah);
}

int cs_token_key_of(struct cs_txn *txn, const char *token, char *out)
{
	int rc = load_salt(txn);
	if (rc)
		return rc;
	hmac_hex(txn, token, out);
	return 0;
}

/* ---------------------------------------------------------------- entries */

/* Set `name` of `o` to `item` (owned by `o` then), in place when it exists: unlike
 * cs_tokenutil_set, the member keeps its position in the stored entry. */
void cs_token_set_in_place(cJSON *o, const char *name, cJSON *item)
{
	if (cJSON_GetObjectItemCaseSensitive(o, name))
		cJSON_ReplaceItemInObjectCaseSensitive(o, name, item);
	else
		cJSON_AddItemToObject(o, name, item);
}

/* Delete `key`; an absent key is no error. */
static int delete_opt(struct cs_txn *txn, const char *key)
{
	int rc = cs_txn_delete(txn, key);
	return rc == CS_ENOTFOUND ? 0 : rc;
}

/* Compact for entries and the accessor index (auth/record_codec.h). */
static int put_json(struct cs_txn *txn, const char *key, const cJSON *o)
{
	return cs_tokenutil_txn_put_json(txn, key, o);
}

int cs_token_entry_get(struct cs_txn *txn, const char *hex, cJSON **e)
{
	char key[128];
	snprintf(key, sizeof key, "%s%s", ID_PREFIX, hex);
	return cs_tokenutil_txn_get_json(txn, key, e);
}

int cs_token_entry_put(struct cs_txn *txn, const char *hex, const cJSON *e)
{
	char key[128];
	snprintf(key, sizeof key, "%s%s", ID_PREFIX, hex);
	return put_json(txn, key, e);
}

/* A stored entry that may still be used: not expired, not at its last use. */
bool cs_token_entry_valid(const cJSON *e)
{
	double exp = cs_tokenutil_num(e, "expire_time");
	if (exp > 0 && (double)cs_now_ns() / 1e9 >= exp)
		return false;
	return cs_tokenutil_num(e, "num_uses") >= 0;
}

bool cs_token_key_exists(struct cs_txn *txn, const char *key_hex)
{
	cJSON *e = NULL;
	int rc = cs_token_entry_get(txn, key_hex, &e);
	cJSON_Delete(e);
	return rc != CS_ENOTFOUND;
}

/* The entry of a token given by value; CS_ENOTFOUND when absent or no longer valid. */
int cs_token_lookup_valid(struct cs_txn *txn, const char *token, char *hex, cJSON **e)
{
	*e = NULL;
	int rc = cs_token_key_of(txn, token, hex);
	if (rc)
		return rc;
	rc = cs_token_entry_get(txn, hex, e);
	if (!rc && !cs_token_entry_valid(*e))
		rc = CS_ENOTFOUND;
	if (!rc)
		rc = cs_token_chain_ok(txn, *e, NULL);
	if (rc) {
		cJSON_Delete(*e);
		*e = NULL;
	}
	return rc;
}

/* Accessor → token key. */
int cs_token_accessor_resolve(struct cs_txn *txn, const char *accessor, char *hex)
{
	int rc = load_salt(txn);
	if (rc)
		return rc;
	char key[128];
	accessor_key(txn, accessor, key);
	cJSON *a = NULL;
	rc = cs_tokenutil_txn_get_json(txn, key, &a);
	if (!rc) {
		const char *tk = cs_tokenutil_str(a, "token_key");
		/* Older entries stored the full key path. */
		if (strncmp(tk, ID_PREFIX, strlen(ID_PREFIX)) == 0)
			tk += strlen(ID_PREFIX);
		if (strlen(tk) != 64)
			rc = CS_EIO;
		else
			memcpy(hex, tk, 65);
	}
	cJSON_Delete(a);
	return rc;
}

int cs_token_accessor_put(struct cs_txn *txn, const char *accessor, const char *hex)
{
	char key[128];
	accessor_key(txn, accessor, key);
	cJSON *a = cJSON_CreateObject();
	cJSON_AddStringToObject(a, "token_key", hex);
	cJSON_AddStringToObject(a, "accessor", accessor);
	int rc = put_json(txn, key, a);
	cJSON_Delete(a);
	return rc;
}

/* ---------------------------------------------------------------- lookup hooks */

int cs_token_lookup(struct cs_core *core, struct cs_txn *txn, const char *token, cJSON **entry)
{
	(void)core;
	*entry = NULL;
	int rc = load_salt(txn);
	if (rc == CS_ENOTFOUND)
		return 0;
	if (rc)
		return rc;
	char hex[65];
	hmac_hex(txn, token, hex);
	rc = cs_token_entry_get(txn, hex, entry);
	if (rc == CS_ENOTFOUND)
		return 0;
	/* An expired or used-up token is no token, even before the timer fires; nor is
	 * one below a revoked (or expired) ancestor, before the cleanup reaches it. */
	if (!rc && !cs_token_entry_valid(*entry))
		rc = CS_ENOTFOUND;
	if (!rc)
		rc = cs_token_chain_ok(txn, *entry, NULL);
	if (rc) {
		cJSON_Delete(*entry);
		*entry = NULL;
	}
	return rc == CS_ENOTFOUND ? 0 : rc;
}

int cs_token_lookup_accessor(struct cs_core *core, struct cs_txn *txn, const char *accessor,
			     cJSON **entry)
{
	(void)core;
	*entry = NULL;
	char hex[65];
	int rc = cs_token_accessor_resolve(txn, accessor, hex);
	if (!rc)
		rc = cs_token_entry_get(txn, hex, entry);
	if (!rc && !cs_token_entry_valid(*entry))
		rc = CS_ENOTFOUND;
	if (!rc)
		rc = cs_token_chain_ok(txn, *entry, NULL);
	if (rc) {
		cJSON_Delete(*entry);
		*entry = NULL;
	}
	return rc == CS_ENOTFOUND ? 0 : rc;
}

bool cs_token_bound_ok(const cJSON *entry, const char *remote)
{
	/* A token bound to CIDR blocks (token_bound_cidrs of its login) only works from
	 * there, as in Vault. Internal requests (remote NULL) are not bound. */
	return !remote || cs_tokenutil_cidr_list_ok(
			      cJSON_GetObjectItemCaseSensitive(entry, "bound_cidrs"), remote);
}

int cs_token_use(struct cs_core *core, struct cs_txn *txn, const char *token, cJSON *entry,
		 const char *remote)
{
	(void)core;
	if (!cs_token_bound_ok(entry, remote))
		return CS_EPERM;
	double uses = cs_tokenutil_num(entry, "num_uses");
	if (uses <= 0)
		return 0;
	/* The last use: -1 makes the token invalid for every later request; the token is
	 * revoked by cs_token_after once this request's handler succeeded. */
	cs_token_set_in_place(entry, "num_uses", cJSON_CreateNumber(uses == 1 ? -1 : uses - 1));
	char hex[65];
	int rc = cs_token_key_of(txn, token, hex);
	if (!rc)
		rc = cs_token_entry_put(txn, hex, entry);
	return rc;
}

int cs_token_after(struct cs_request *req)
{
	if (cs_tokenutil_num(req->token_entry, "num_uses") >= 0 || !req->client_token)
		return 0;
	char hex[65];
	int rc = cs_token_key_of(&req->txn, req->client_token, hex);
	if (!rc)
		rc = cs_token_revoke_key(&req->txn, hex, false);
	return rc == CS_ENOTFOUND ? 0 : rc; /* revoke-self got there first */
}

/* ---------------------------------------------------------------- revocation */

/* Delete one token's own records (not its children's). */
int cs_token_delete_records(struct cs_txn *txn, const char *hex, const cJSON *e)
{
	char key[256];
	int rc = load_salt(txn);
	if (rc)
		return rc;
	const char *acc = cs_tokenutil_str(e, "accessor");
	if (*acc) {
		accessor_key(txn, acc, key);
		rc = delete_opt(txn, key);
	}
	const char *lease = cs_tokenutil_str(e, "lease_id");
	if (!rc && *lease)
		rc = cs_expire_delete(txn, lease);
	const char *parent = cs_tokenutil_str(e, "parent");
	if (!rc && *parent) {
		snprintf(key, sizeof key, "%s%s/%s", PARENT_PREFIX, parent, hex);
		rc = delete_opt(txn, key);
	}
	if (!rc) /* its cubbyhole goes with it, in the same transaction */
		rc = cs_backend_token_revoked(txn, hex);
	if (!rc) {
		snprintf(key, sizeof key, "%s%s", ID_PREFIX, hex);
		rc = cs_txn_delete(txn, key);
	}
	return rc;
}

/* The tree below the token, or its children's orphaning, is marked and cleaned in bounded
 * batches (token_revoke.c): this transaction stays small whatever the tree's size. */
int cs_token_revoke_key(struct cs_txn *txn, const char *key_hex, bool orphan_children)
{
	int rc = load_salt(txn);
	if (rc)
		return rc;
	cJSON *e = NULL;
	rc = cs_token_entry_get(txn, key_hex, &e);
	if (!rc)
		rc = cs_revq_token(txn, key_hex, e, orphan_children);
	cJSON_Delete(e);
	return rc;
}

/* ---------------------------------------------------------------- TTL arithmetic */

int64_t cs_token_create_ttl(int64_t ttl, int64_t period, int64_t explicit_max, int64_t def_ttl,
			    int64_t max_ttl, bool root_policy)
{
	int64_t t = period > 0 ? period : ttl;
	if (t <= 0 && !root_policy)
		t = def_ttl;
	if (t < 0)
		t = 0;
	if (explicit_max > 0 && (t == 0 || t > explicit_max))
		t = explicit_max;
	if (period <= 0 && max_ttl > 0 && t > max_ttl)
		t = max_ttl;
	return t;
}

int64_t cs_token_renew_ttl(int64_t now, int64_t issue, int64_t increment, int64_t orig_ttl,
			   int64_t period, int64_t explicit_max, int64_t max_ttl)
{
	int64_t t = period > 0 ? period : (increment > 0 ? increment : orig_ttl);
	if (explicit_max > 0 && now + t > issue + explicit_max)
		t = issue + explicit_max - now;
	if (period <= 0 && max_ttl > 0 && now + t > issue + max_ttl)
		t = issue + max_ttl - now;
	return t > 0 ? t : 0;
}

/* ---------------------------------------------------------------- the root token */

int cs_token_create_root(struct cs_core *core, struct cs_txn *txn, const char *id, char *out,
			 size_t outlen)
{
	(void)core;
	uint8_t fresh[SALT_LEN];
	cs_random(fresh, sizeof fresh);
	int rc = cs_txn_put(txn, SALT_PATH, fresh, sizeof fresh);
	if (rc)
		return rc;
	struct token_state *ts = state_of(txn);
	cs_secmem_free(ts->salt, SALT_LEN);
	ts->salt = cs_secmem_alloc(SALT_LEN);
	memcpy(ts->salt, fresh, SALT_LEN);
	cs_zero(fresh, sizeof fresh);

	char token[160], accessor[32], hex[65];
	if (id && *id) {
		if (strlen(id) >= 128)
			return CS_EINVAL;
		snprintf(token, sizeof token, "%s", id);
	} else {
		memcpy(token, "hvs.", 4);
		cs_random_base62(token + 4, 24);
	}
	cs_random_base62(accessor, 24);
	hmac_hex(txn, token, hex);

	cJSON *e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "key", hex);
	cJSON_AddStringToObject(e, "accessor", accessor);
	cJSON *pol = cJSON_AddArrayToObject(e, "policies");
	cJSON_AddItemToArray(pol, cJSON_CreateString("root"));
	cJSON_AddStringToObject(e, "path", "auth/token/root");
	cJSON_AddStringToObject(e, "display_name", "root");
	cJSON_AddNullToObject(e, "meta");
	cJSON_AddNumberToObject(e, "num_uses", 0);
	cJSON_AddNumberToObject(e, "creation_time", (double)time(NULL));
	cJSON_AddNumberToObject(e, "creation_ttl", 0);
	cJSON_AddNumberToObject(e, "expire_time", 0);
	cJSON_AddNumberToObject(e, "explicit_max_ttl", 0);
	cJSON_AddNumberToObject(e, "period", 0);
	cJSON_AddBoolToObject(e, "orphan", true);
	cJSON_AddStringToObject(e, "parent", "");
	cJSON_AddStringToObject(e, "type", "service");
	cJSON_AddBoolToObject(e, "renewable", false);
	cJSON_AddStringToObject(e, "lease_id", "");
	rc = cs_token_entry_put(txn, hex, e);
	cJSON_Delete(e);
	if (!rc)
		rc = cs_token_accessor_put(txn, accessor, hex);
	if (!rc)
		snprintf(out, outlen, "%s", token);
	cs_zero(token, sizeof token);
	return rc;
}

/* ---------------------------------------------------------------- table */

static const struct cs_field create_fields[] = {
    {.name = "id", .type = CS_FIELD_STRING, .desc = "token id (root only)"},
    {.name = "role_name", .type = CS_FIELD_STRING, .desc = "role"},
    {.name = "policies", .type = CS_FIELD_STRLIST, .desc = "policies"},
    {.name = "meta", .type = CS_FIELD_ANY, .desc = "metadata"},
    {.name = "no_parent", .type = CS_FIELD_BOOL, .desc = "orphan token (root/sudo)"},
    {.name = "no_default_policy", .type = CS_FIELD_BOOL, .desc = "do not add default"},
    {.name = "renewable", .type = CS_FIELD_BOOL, .desc = "renewable"},
    {.name = "ttl", .type = CS_FIELD_DURATION, .desc = "ttl"},
    {.name = "lease", .type = CS_FIELD_DURATION, .desc = "ttl (legacy)"},
    {.name = "explicit_max_ttl", .type = CS_FIELD_DURATION, .desc = "hard max ttl"},
    {.name = "period", .type = CS_FIELD_DURATION, .desc = "periodic token"},
    {.name = "display_name", .type = CS_FIELD_STRING, .desc = "display name"},
    {.name = "num_uses", .type = CS_FIELD_INT, .desc = "uses"},
    {.name = "type", .type = CS_FIELD_STRING, .desc = "service or batch"},
    {.name = "entity_alias", .type = CS_FIELD_STRING, .desc = "entity alias (with a role)"},
    {.name = NULL},
};

static const struct cs_field token_fields[] = {
    {.name = "token", .type = CS_FIELD_STRING, .desc = "token", .required = true},
    {.name = "increment", .type = CS_FIELD_DURATION, .desc = "renew increment"},
    {.name = NULL},
};

/* The *-self paths act on the client token: a "token" in the body is accepted, not needed. */
static const struct cs_field self_fields[] = {
    {.name = "token", .type = CS_FIELD_STRING, .desc = "ignored: the client token is used"},
    {.name = "increment", .type = CS_FIELD_DURATION, .desc = "renew increment"},
    {.name = NULL},
};

static const struct cs_field accessor_fields[] = {
    {.name = "accessor", .type = CS_FIELD_STRING, .desc = "accessor", .required = true},
    {.name = "increment", .type = CS_FIELD_DURATION, .desc = "renew increment"},
    {.name = NULL},
};

static const struct cs_field role_fields[] = {
    {.name = "role_name", .type = CS_FIELD_STRING, .desc = "role"},
    {.name = "allowed_policies", .type = CS_FIELD_STRLIST},
    {.name = "disallowed_policies", .type = CS_FIELD_STRLIST},
    {.name = "allowed_policies_glob", .type = CS_FIELD_STRLIST, .desc = "ignored"},
    {.name = "disallowed_policies_glob", .type = CS_FIELD_STRLIST, .desc = "ignored"},
    {.name = "orphan", .type = CS_FIELD_BOOL},
    {.name = "renewable", .type = CS_FIELD_BOOL},
    {.name = "path_suffix", .type = CS_FIELD_STRING},
    {.name = "token_type", .type = CS_FIELD_STRING},
    {.name = "token_period", .type = CS_FIELD_DURATION},
    {.name = "period", .type = CS_FIELD_DURATION},
    {.name = "token_explicit_max_ttl", .type = CS_FIELD_DURATION},
    {.name = "explicit_max_ttl", .type = CS_FIELD_DURATION},
    {.name = "token_ttl", .type = CS_FIELD_DURATION},
    {.name = "token_max_ttl", .type = CS_FIELD_DURATION},
    {.name = "token_num_uses", .type = CS_FIELD_INT},
    {.name = "token_no_default_policy", .type = CS_FIELD_BOOL},
    {.name = "allowed_entity_aliases", .type = CS_FIELD_STRLIST},
    {.name = "token_bound_cidrs", .type = CS_FIELD_STRLIST},
    {.name = NULL},
};

static const struct cs_path token_paths[] = {
    {.pattern = "create-orphan",
     .fields = create_fields,
     .ops = {[CS_OP_UPDATE] = cs_token_h_create_orphan},
     .synopsis = "create an orphan token"},
    {.pattern = "create/{role_name}",
     .fields = create_fields,
     .ops = {[CS_OP_UPDATE] = cs_token_h_create_role},
     .synopsis = "create a token from a role"},
    {.pattern = "create",
     .fields = create_fields,
     .ops = {[CS_OP_UPDATE] = cs_token_h_create},
     .synopsis = "create a token"},
    {.pattern = "lookup-self",
     .fields = self_fields,
     .ops = {[CS_OP_READ] = cs_token_h_lookup_self, [CS_OP_UPDATE] = cs_token_h_lookup_self},
     .synopsis = "information about the client token"},
    {.pattern = "lookup-accessor",
     .fields = accessor_fields,
     .ops = {[CS_OP_UPDATE] = cs_token_h_lookup_accessor},
     .synopsis = "information about a token by accessor"},
    {.pattern = "lookup",
     .fields = token_fields,
     .ops = {[CS_OP_UPDATE] = cs_token_h_lookup},
     .synopsis = "information about a token"},
    {.pattern = "renew-self",
     .fields = self_fields,
     .ops = {[CS_OP_UPDATE] = cs_token_h_renew_self},
     .synopsis = "renew the client token"},
    {.pattern = "renew-accessor",
     .fields = accessor_fields,
     .ops = {[CS_OP_UPDATE] = cs_token_h_renew_accessor},
     .synopsis = "renew a token by accessor"},
    {.pattern = "renew",
     .fields = token_fields,
     .ops = {[CS_OP_UPDATE] = cs_token_h_renew},
     .synopsis = "renew a token"},
    {.pattern = "revoke-self",
     .ops = {[CS_OP_UPDATE] = cs_token_h_revoke_self},
     .synopsis = "revoke the client token and its tree"},
    {.pattern = "revoke-accessor",
     .fields = accessor_fields,
     .ops = {[CS_OP_UPDATE] = cs_token_h_revoke_accessor},
     .synopsis = "revoke a token by accessor"},
    {.pattern = "revoke-orphan",
     .fields = token_fields,
     .ops = {[CS_OP_UPDATE] = cs_token_h_revoke_orphan},
     .flags = CS_PATH_SUDO,
     .synopsis = "revoke a token, orphaning its children"},
    {.pattern = "revoke",
     .fields = token_fields,
     .ops = {[CS_OP_UPDATE] = cs_token_h_revoke},
     .synopsis = "revoke a token and its tree"},
    {.pattern = "accessors",
     .ops = {[CS_OP_LIST] = cs_token_h_accessors},
     .flags = CS_PATH_SUDO,
     .synopsis = "list accessors"},
    {.pattern = "roles", .ops = {[CS_OP_LIST] = cs_token_h_role_list}, .synopsis = "list roles"},
    {.pattern = "roles/{role_name}",
     .fields = role_fields,
     .ops = {[CS_OP_READ] = cs_token_h_role_read,
	     [CS_OP_CREATE] = cs_token_h_role_write,
	     [CS_OP_UPDATE] = cs_token_h_role_write,
	     [CS_OP_DELETE] = cs_token_h_role_delete},
     .exists = cs_token_role_exists,
     .synopsis = "token roles"},
    {.pattern = "tidy",
     .ops = {[CS_OP_UPDATE] = cs_token_h_tidy},
     .synopsis = "tidy the token store"},
};

const struct cs_backend cs_token_backend = {
    .type = "token",
    .is_auth = true,
    .paths = token_paths,
    .n_paths = CS_ARRAY_LEN(token_paths),
    .reset = token_reset,
    .periodic = cs_record_convert_periodic, /* upgrade old records (record_convert.h) */
};

/* The expiration manager revokes token leases through these (it does not include us). */
static int expire_revoke_key(struct cs_txn *txn, const char *token_key)
{
	return cs_token_revoke_key(txn, token_key, false);
}

static const struct cs_token_store token_store = {
    .lookup = cs_token_lookup,
    .create_root = cs_token_create_root,
    .use = cs_token_use,
    .after = cs_token_after,
    .issue = cs_token_issue,
    .bound_ok = cs_token_bound_ok,
    .key_of = cs_token_key_of,
    .revoke_key = cs_token_revoke_key,
    .lookup_accessor = cs_token_lookup_accessor,
};

static const struct cs_expire_tokens expire_tokens = {
    .revoke_key = expire_revoke_key,
    .key_exists = cs_token_key_exists,
    .revoke_prefix = cs_revq_revoke_prefix,
    .lease_revoked = cs_revq_lease_marked,
};

void cs_token_register(struct cs_core *core)
{
	cs_backend_register(&cs_token_backend);
	cs_core_set_token_store(core, &token_store);
	cs_expire_register(core, &expire_tokens);
}
