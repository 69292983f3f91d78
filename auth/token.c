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
 */
#include "auth/token.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/expire.h"
#include "auth/tokenutil.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/secmem.h"
#include "lib/util.h"

#define SALT_PATH       "sys/token/salt"
#define SALT_LEN        32
#define ID_PREFIX       "sys/token/id/"
#define ACCESSOR_PREFIX "sys/token/accessor/"
#define PARENT_PREFIX   "sys/token/parent/"

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

/* hex(HMAC-SHA256(salt, value)); out >= 65 bytes. The salt must be loaded (load_salt on
 * the same core's txn). */
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
static void set_in_place(cJSON *o, const char *name, cJSON *item)
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

static int put_json(struct cs_txn *txn, const char *key, const cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);
	if (!s)
		return CS_ENOMEM;
	int rc = cs_txn_put(txn, key, s, strlen(s));
	cs_zero(s, strlen(s));
	free(s);
	return rc;
}

static int entry_get(struct cs_txn *txn, const char *hex, cJSON **e)
{
	char key[128];
	snprintf(key, sizeof key, "%s%s", ID_PREFIX, hex);
	return cs_tokenutil_txn_get_json(txn, key, e);
}

static int entry_put(struct cs_txn *txn, const char *hex, const cJSON *e)
{
	char key[128];
	snprintf(key, sizeof key, "%s%s", ID_PREFIX, hex);
	return put_json(txn, key, e);
}

/* A stored entry that may still be used: not expired, not at its last use. */
static bool entry_valid(const cJSON *e)
{
	double exp = cs_tokenutil_num(e, "expire_time");
	if (exp > 0 && (double)cs_now_ns() / 1e9 >= exp)
		return false;
	return cs_tokenutil_num(e, "num_uses") >= 0;
}

bool cs_token_key_exists(struct cs_txn *txn, const char *key_hex)
{
	cJSON *e = NULL;
	int rc = entry_get(txn, key_hex, &e);
	cJSON_Delete(e);
	return rc != CS_ENOTFOUND;
}

/* The entry of a token given by value; CS_ENOTFOUND when absent or no longer valid. */
static int lookup_valid(struct cs_txn *txn, const char *token, char *hex, cJSON **e)
{
	*e = NULL;
	int rc = cs_token_key_of(txn, token, hex);
	if (rc)
		return rc;
	rc = entry_get(txn, hex, e);
	if (!rc && !entry_valid(*e)) {
		cJSON_Delete(*e);
		*e = NULL;
		rc = CS_ENOTFOUND;
	}
	return rc;
}

/* Accessor → token key. */
static int accessor_resolve(struct cs_txn *txn, const char *accessor, char *hex)
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
	rc = entry_get(txn, hex, entry);
	if (rc == CS_ENOTFOUND)
		return 0;
	if (!rc && !entry_valid(*entry)) {
		/* An expired or used-up token is no token, even before the timer fires. */
		cJSON_Delete(*entry);
		*entry = NULL;
	}
	return rc;
}

int cs_token_lookup_accessor(struct cs_core *core, struct cs_txn *txn, const char *accessor,
			     cJSON **entry)
{
	(void)core;
	*entry = NULL;
	char hex[65];
	int rc = accessor_resolve(txn, accessor, hex);
	if (!rc)
		rc = entry_get(txn, hex, entry);
	if (!rc && !entry_valid(*entry)) {
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
	set_in_place(entry, "num_uses", cJSON_CreateNumber(uses == 1 ? -1 : uses - 1));
	char hex[65];
	int rc = cs_token_key_of(txn, token, hex);
	if (!rc)
		rc = entry_put(txn, hex, entry);
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
static int delete_one(struct cs_txn *txn, const char *hex, const cJSON *e)
{
	char key[256];
	int rc = 0;
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

/* The children of `hex`: names in the parent index (each 64 hex chars). */
static int children_of(struct cs_txn *txn, const char *hex, struct cs_strv *out)
{
	char prefix[128];
	snprintf(prefix, sizeof prefix, "%s%s/", PARENT_PREFIX, hex);
	return cs_txn_list(txn, prefix, out);
}

int cs_token_revoke_key(struct cs_txn *txn, const char *key_hex, bool orphan_children)
{
	int rc = load_salt(txn);
	if (rc)
		return rc;
	cJSON *e = NULL;
	rc = entry_get(txn, key_hex, &e);
	if (rc)
		return rc;
	/* Depth-first over an explicit stack: no recursion depth limit on deep chains. */
	struct cs_strv stack = {0}, kids = {0};
	size_t visited = 0;
	if (orphan_children) {
		rc = children_of(txn, key_hex, &kids);
		for (size_t i = 0; !rc && i < kids.n; i++) {
			cJSON *c = NULL;
			rc = entry_get(txn, kids.v[i], &c);
			if (rc == CS_ENOTFOUND) {
				rc = 0;
				continue;
			}
			if (!rc) {
				set_in_place(c, "orphan", cJSON_CreateTrue());
				set_in_place(c, "parent", cJSON_CreateString(""));
				rc = entry_put(txn, kids.v[i], c);
			}
			cJSON_Delete(c);
			char key[256];
			snprintf(key, sizeof key, "%s%s/%s", PARENT_PREFIX, key_hex, kids.v[i]);
			if (!rc)
				rc = delete_opt(txn, key);
		}
		cs_strv_free(&kids);
		if (!rc)
			rc = delete_one(txn, key_hex, e);
		cJSON_Delete(e);
		return rc;
	}
	cJSON_Delete(e);
	cs_strv_push(&stack, key_hex, strlen(key_hex));
	while (!rc && stack.n) {
		char *hex = stack.v[--stack.n];
		if (++visited > CS_TOKEN_TREE_MAX) {
			free(hex);
			rc = CS_EINVAL;
			break;
		}
		rc = children_of(txn, hex, &kids);
		for (size_t i = 0; !rc && i < kids.n; i++) {
			cs_strv_push(&stack, kids.v[i], strlen(kids.v[i]));
			/* Drop the index entry here: it may point at a token that is gone. */
			char key[256];
			snprintf(key, sizeof key, "%s%s/%s", PARENT_PREFIX, hex, kids.v[i]);
			rc = delete_opt(txn, key);
		}
		cs_strv_free(&kids);
		cJSON *te = NULL;
		if (!rc)
			rc = entry_get(txn, hex, &te);
		if (!rc)
			rc = delete_one(txn, hex, te);
		else if (rc == CS_ENOTFOUND)
			rc = 0; /* a dangling index entry, already dropped above */
		cJSON_Delete(te);
		free(hex);
	}
	cs_strv_free(&stack);
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

/* ---------------------------------------------------------------- creation */

struct create_params {
	const char *id;  /* custom token id or NULL */
	cJSON *policies; /* array of strings, sorted, deduplicated, final (owned) */
	const cJSON *meta;
	const char *display_name;
	const char *path;
	const char *parent; /* parent key hex or NULL (orphan) */
	bool batch;
	bool renewable;
	int64_t ttl, period, explicit_max, max_ttl, num_uses;
	const cJSON *bound_cidrs; /* array of CIDR strings the token may be used from */
};

static bool list_has(const cJSON *arr, const char *s)
{
	const cJSON *v;
	cJSON_ArrayForEach(v, arr)
	{
		if (cJSON_IsString(v) && strcmp(v->valuestring, s) == 0)
			return true;
	}
	return false;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A sorted, deduplicated copy of the policy names in `in` (+ "default" if asked). */
static cJSON *policy_set(const cJSON *in, bool add_default)
{
	struct cs_strv v = {0};
	const cJSON *p;
	cJSON_ArrayForEach(p, in)
	{
		if (cJSON_IsString(p) && *p->valuestring) {
			/* Vault lower-cases and trims policy names. */
			char *s = strdup(p->valuestring);
			for (char *c = s; *c; c++)
				*c = (char)tolower((unsigned char)*c);
			cs_strv_push(&v, s, strlen(s));
			free(s);
		}
	}
	bool has_root = false;
	for (size_t i = 0; i < v.n; i++)
		has_root |= strcmp(v.v[i], "root") == 0;
	if (add_default && !has_root)
		cs_strv_push(&v, "default", 7);
	qsort(v.v, v.n, sizeof *v.v, cmp_str);
	cJSON *out = cJSON_CreateArray();
	for (size_t i = 0; i < v.n; i++)
		if (i == 0 || strcmp(v.v[i], v.v[i - 1]) != 0)
			cJSON_AddItemToArray(out, cJSON_CreateString(v.v[i]));
	cs_strv_free(&v);
	return out;
}

static void fill_auth(struct cs_request *req, const char *token, const cJSON *e, int64_t ttl)
{
	cJSON *a = cJSON_CreateObject();
	cJSON_AddStringToObject(a, "client_token", token);
	cJSON_AddStringToObject(a, "accessor", cs_tokenutil_str(e, "accessor"));
	const cJSON *pol = cJSON_GetObjectItemCaseSensitive(e, "policies");
	cJSON_AddItemToObject(a, "policies", cJSON_Duplicate(pol, true));
	cJSON_AddItemToObject(a, "token_policies", cJSON_Duplicate(pol, true));
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(e, "meta");
	if (cJSON_IsObject(meta))
		cJSON_AddItemToObject(a, "metadata", cJSON_Duplicate(meta, true));
	else
		cJSON_AddNullToObject(a, "metadata");
	cJSON_AddNumberToObject(a, "lease_duration", (double)ttl);
	cJSON_AddBoolToObject(a, "renewable",
			      cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "renewable")));
	cJSON_AddStringToObject(a, "entity_id", "");
	cJSON_AddStringToObject(a, "token_type", cs_tokenutil_str(e, "type"));
	cJSON_AddBoolToObject(a, "orphan",
			      cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "orphan")));
	cJSON_AddNullToObject(a, "mfa_requirement");
	double uses = cs_tokenutil_num(e, "num_uses");
	cJSON_AddNumberToObject(a, "num_uses", uses > 0 ? uses : 0);
	cJSON_Delete(req->resp_auth);
	req->resp_auth = a;
}

/* The accessor index entry of a new token. The salt must be loaded. */
static int accessor_put(struct cs_txn *txn, const char *accessor, const char *hex)
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

/* Store a new token and fill the auth block. Takes ownership of p->policies. */
static int create_token(struct cs_request *req, struct create_params *p)
{
	struct cs_txn *txn = &req->txn;
	int rc = load_salt(txn);
	if (rc) {
		cJSON_Delete(p->policies);
		return rc;
	}
	char token[160], accessor[32], hex[65];
	if (p->id) {
		snprintf(token, sizeof token, "%s", p->id);
	} else {
		memcpy(token, p->batch ? "hvb." : "hvs.", 4);
		cs_random_base62(token + 4, 24);
	}
	cs_random_base62(accessor, 24);
	hmac_hex(txn, token, hex);
	if (p->id && cs_token_key_exists(txn, hex)) {
		cJSON_Delete(p->policies);
		cs_zero(token, sizeof token);
		return cs_req_error(req, CS_EINVAL, "token ID is already in use");
	}
	double now = (double)(cs_now_ns() / 1000000000);
	bool has_root = list_has(p->policies, "root");
	int64_t ttl = cs_token_create_ttl(p->ttl, p->period, p->explicit_max,
					  cs_req_default_ttl(req), p->max_ttl, has_root);
	if (p->period <= 0 && p->ttl > ttl && p->max_ttl > 0 && ttl == p->max_ttl)
		cs_req_warn(req,
			    "TTL of \"%llds\" exceeded the effective max_ttl of \"%llds\"; "
			    "TTL value is capped accordingly",
			    (long long)p->ttl, (long long)ttl);

	cJSON *e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "key", hex);
	cJSON_AddStringToObject(e, "accessor", accessor);
	cJSON_AddItemToObject(e, "policies", p->policies);
	cJSON_AddStringToObject(e, "path", p->path);
	cJSON_AddStringToObject(e, "display_name", p->display_name);
	if (cJSON_IsObject(p->meta))
		cJSON_AddItemToObject(e, "meta", cJSON_Duplicate(p->meta, true));
	else
		cJSON_AddNullToObject(e, "meta");
	cJSON_AddNumberToObject(e, "num_uses", (double)p->num_uses);
	if (cJSON_GetArraySize(p->bound_cidrs) > 0)
		cJSON_AddItemToObject(e, "bound_cidrs", cJSON_Duplicate(p->bound_cidrs, true));
	cJSON_AddNumberToObject(e, "creation_time", now);
	cJSON_AddNumberToObject(e, "creation_ttl", (double)ttl);
	cJSON_AddNumberToObject(e, "expire_time", ttl > 0 ? now + (double)ttl : 0);
	cJSON_AddNumberToObject(e, "explicit_max_ttl", (double)p->explicit_max);
	cJSON_AddNumberToObject(e, "period", (double)p->period);
	cJSON_AddNumberToObject(e, "max_ttl", (double)p->max_ttl);
	cJSON_AddBoolToObject(e, "orphan", p->parent == NULL);
	cJSON_AddStringToObject(e, "parent", p->parent ? p->parent : "");
	cJSON_AddStringToObject(e, "type", p->batch ? "batch" : "service");
	bool renewable = p->renewable && !p->batch && ttl > 0;
	cJSON_AddBoolToObject(e, "renewable", renewable);
	char lease[400] = "";
	if (ttl > 0)
		snprintf(lease, sizeof lease, "%s/%s", p->path, hex);
	cJSON_AddStringToObject(e, "lease_id", lease);

	rc = entry_put(txn, hex, e);
	if (!rc)
		rc = accessor_put(txn, accessor, hex);
	if (!rc && p->parent) {
		char key[256];
		snprintf(key, sizeof key, "%s%s/%s", PARENT_PREFIX, p->parent, hex);
		rc = cs_txn_put(txn, key, "{}", 2);
	}
	if (!rc && ttl > 0)
		rc = cs_expire_put(txn, lease, p->path, now, now + (double)ttl, renewable, hex);
	if (!rc)
		fill_auth(req, token, e, ttl);
	cJSON_Delete(e);
	cs_zero(token, sizeof token);
	return rc;
}

/* "token-<name>" with every character outside [A-Za-z0-9-] replaced by '-'. */
static void display_name(const char *name, char *out, size_t outlen)
{
	if (!name || !*name) {
		snprintf(out, outlen, "token");
		return;
	}
	snprintf(out, outlen, "token-%s", name);
	for (char *c = out; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '-')
			*c = '-';
	size_t n = strlen(out);
	while (n > 0 && out[n - 1] == '-')
		out[--n] = '\0';
}

static bool subset(const cJSON *small, const cJSON *big)
{
	const cJSON *v;
	cJSON_ArrayForEach(v, small)
	{
		if (!list_has(big, v->valuestring))
			return false;
	}
	return true;
}

static int64_t role_int(const cJSON *role, const char *a, const char *b)
{
	double v = cs_tokenutil_num(role, a);
	if (v <= 0 && b)
		v = cs_tokenutil_num(role, b);
	return (int64_t)v;
}

enum create_mode { CREATE_NORMAL, CREATE_ORPHAN, CREATE_ROLE };

static int create_common(struct cs_request *req, enum create_mode mode)
{
	const cJSON *parent = req->token_entry;
	if (!parent)
		return cs_req_error(req, CS_EPERM, "permission denied");
	bool is_root = cs_req_has_sudo(req); /* Vault: "root or sudo" for these options */
	if (strcmp(cs_tokenutil_str(parent, "type"), "batch") == 0)
		return cs_req_error(req, CS_EINVAL, "batch tokens cannot create more tokens");
	cJSON *role = NULL;
	char rolepath[300] = "";
	const char *role_name = mode == CREATE_ROLE ? cs_req_str(req, "role_name", "") : "";
	if (mode == CREATE_ROLE) {
		char key[300];
		snprintf(key, sizeof key, "roles/%s", role_name);
		int rc = cs_view_get_json(req, key, &role);
		if (rc == CS_ENOTFOUND)
			return cs_req_error(req, CS_EINVAL, "unknown role %s", role_name);
		if (rc)
			return rc;
	}
	int rc = 0;
	struct create_params p = {0};
	const char *id = cs_req_str(req, "id", NULL);
	if (id && *id) {
		if (!is_root) {
			rc = cs_req_error(req, CS_EINVAL,
					  "root or sudo privileges required to specify token id");
			goto out;
		}
		if (strlen(id) >= 128) {
			rc = cs_req_error(req, CS_EINVAL, "token id too long");
			goto out;
		}
		p.id = id;
	}
	const char *type = role ? cs_tokenutil_str(role, "token_type") : "";
	if (!*type || strcmp(type, "default") == 0 || strcmp(type, "default-service") == 0)
		type = "service";
	if (cs_req_has(req, "type"))
		type = cs_req_str(req, "type", "service");
	if (strcmp(type, "service") && strcmp(type, "batch")) {
		rc = cs_req_error(req, CS_EINVAL, "unsupported token type %s", type);
		goto out;
	}
	p.batch = strcmp(type, "batch") == 0;
	p.num_uses = cs_req_int(req, "num_uses", role ? role_int(role, "token_num_uses", NULL) : 0);
	if (p.num_uses < 0) {
		rc = cs_req_error(req, CS_EINVAL, "number of uses cannot be negative");
		goto out;
	}
	p.ttl = cs_req_int(req, "ttl", 0);
	if (p.ttl == 0)
		p.ttl = cs_req_int(req, "lease", 0); /* legacy name */
	if (p.ttl < 0) {
		rc = cs_req_error(req, CS_EINVAL, "ttl must be positive");
		goto out;
	}
	p.explicit_max = cs_req_int(req, "explicit_max_ttl", 0);
	p.period = cs_req_int(req, "period", 0);
	p.renewable = cs_req_bool(req, "renewable", true);
	bool no_default = cs_req_bool(req, "no_default_policy", false);
	p.max_ttl = cs_req_max_ttl(req);
	if (role) {
		int64_t rp = role_int(role, "token_period", "period");
		int64_t re = role_int(role, "token_explicit_max_ttl", "explicit_max_ttl");
		int64_t rt = role_int(role, "token_ttl", NULL);
		int64_t rm = role_int(role, "token_max_ttl", NULL);
		if (rp > 0)
			p.period = rp;
		if (re > 0 && (p.explicit_max == 0 || p.explicit_max > re))
			p.explicit_max = re;
		if (rt > 0 && p.ttl == 0)
			p.ttl = rt;
		if (rm > 0 && rm < p.max_ttl)
			p.max_ttl = rm;
		if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(role, "renewable")))
			p.renewable = false;
		no_default |=
		    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(role, "token_no_default_policy"));
		/* As Vault: a role's CIDR binding holds for every token made from it. */
		p.bound_cidrs = cJSON_GetObjectItemCaseSensitive(role, "token_bound_cidrs");
	}
	if (cs_req_int(req, "period", 0) > 0 && !is_root) {
		rc = cs_req_error(req, CS_EINVAL,
				  "root or sudo privileges required to create periodic token");
		goto out;
	}
	if (p.batch && p.period > 0) {
		rc = cs_req_error(req, CS_EINVAL, "batch tokens cannot be periodic");
		goto out;
	}

	/* Policies. */
	const cJSON *req_pol = cs_req_get(req, "policies");
	bool asked = cJSON_IsArray(req_pol) && cJSON_GetArraySize(req_pol) > 0;
	const cJSON *parent_pol = cJSON_GetObjectItemCaseSensitive(parent, "policies");
	cJSON *want;
	if (role) {
		const cJSON *allowed = cJSON_GetObjectItemCaseSensitive(role, "allowed_policies");
		const cJSON *disallowed =
		    cJSON_GetObjectItemCaseSensitive(role, "disallowed_policies");
		want = policy_set(
		    asked ? req_pol : (cJSON_GetArraySize(allowed) ? allowed : parent_pol), false);
		const cJSON *v;
		cJSON_ArrayForEach(v, want)
		{
			if (strcmp(v->valuestring, "default") == 0)
				continue;
			if (list_has(disallowed, v->valuestring)) {
				rc = cs_req_error(req, CS_EINVAL,
						  "token policies (%s) must not be in the role's "
						  "disallowed policies",
						  v->valuestring);
				break;
			}
			if (cJSON_GetArraySize(allowed) && !list_has(allowed, v->valuestring)) {
				rc = cs_req_error(req, CS_EINVAL,
						  "token policies must be subset of the role's "
						  "allowed policies");
				break;
			}
			if (!cJSON_GetArraySize(allowed) && !is_root &&
			    !list_has(parent_pol, v->valuestring)) {
				rc = cs_req_error(req, CS_EINVAL,
						  "child policies must be subset of parent");
				break;
			}
		}
		if (rc) {
			cJSON_Delete(want);
			goto out;
		}
	} else {
		want = policy_set(asked ? req_pol : parent_pol, false);
		cJSON *nodef = cJSON_CreateArray();
		const cJSON *v;
		cJSON_ArrayForEach(v, want)
		{
			if (strcmp(v->valuestring, "default") != 0)
				cJSON_AddItemToArray(nodef, cJSON_CreateString(v->valuestring));
		}
		bool ok = is_root || subset(nodef, parent_pol);
		cJSON_Delete(nodef);
		if (!ok) {
			cJSON_Delete(want);
			rc =
			    cs_req_error(req, CS_EINVAL, "child policies must be subset of parent");
			goto out;
		}
	}
	if (no_default) {
		cJSON *v = want->child;
		while (v) {
			cJSON *nx = v->next;
			if (strcmp(v->valuestring, "default") == 0)
				cJSON_Delete(cJSON_DetachItemViaPointer(want, v));
			v = nx;
		}
		p.policies = want;
	} else {
		p.policies = policy_set(want, true);
		cJSON_Delete(want);
	}

	/* Against privilege escalation through roles or sudo: root only from root. */
	if (list_has(p.policies, "root") && !list_has(parent_pol, "root")) {
		cJSON_Delete(p.policies);
		rc = cs_req_error(req, CS_EINVAL,
				  "root tokens may not be created without parent token being root");
		goto out;
	}
	if (list_has(p.policies, "root") && p.batch) {
		cJSON_Delete(p.policies);
		rc = cs_req_error(req, CS_EINVAL, "batch tokens cannot be root tokens");
		goto out;
	}

	/* Parent or orphan. */
	char parent_hex[65];
	bool orphan = mode == CREATE_ORPHAN ||
		      (role && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(role, "orphan")));
	if (!orphan && cs_req_bool(req, "no_parent", false)) {
		if (!is_root) {
			cJSON_Delete(p.policies);
			rc =
			    cs_req_error(req, CS_EINVAL,
					 "root or sudo privileges required to create orphan token");
			goto out;
		}
		orphan = true;
	}
	if (!orphan) {
		rc = cs_token_key_of(&req->txn, req->client_token, parent_hex);
		if (rc) {
			cJSON_Delete(p.policies);
			goto out;
		}
		p.parent = parent_hex;
	}
	char dn[160];
	display_name(cs_req_str(req, "display_name", NULL), dn, sizeof dn);
	p.display_name = dn;
	p.meta = cs_req_get(req, "meta");
	if (p.meta && !cJSON_IsObject(p.meta) && !cJSON_IsNull(p.meta)) {
		cJSON_Delete(p.policies);
		rc = cs_req_error(req, CS_EINVAL, "meta must be a map of strings");
		goto out;
	}
	if (mode == CREATE_ORPHAN)
		snprintf(rolepath, sizeof rolepath, "auth/token/create-orphan");
	else if (role)
		snprintf(rolepath, sizeof rolepath, "auth/token/create/%s%s%s", role_name,
			 *cs_tokenutil_str(role, "path_suffix") ? "/" : "",
			 cs_tokenutil_str(role, "path_suffix"));
	else
		snprintf(rolepath, sizeof rolepath, "auth/token/create");
	p.path = rolepath;
	rc = create_token(req, &p);
out:
	cJSON_Delete(role);
	return rc;
}

static int h_create(struct cs_request *req)
{
	return create_common(req, CREATE_NORMAL);
}

static int h_create_orphan(struct cs_request *req)
{
	return create_common(req, CREATE_ORPHAN);
}

static int h_create_role(struct cs_request *req)
{
	return create_common(req, CREATE_ROLE);
}

int cs_token_issue(struct cs_request *req, const cJSON *params)
{
	struct create_params p = {0};
	const cJSON *pol = cJSON_GetObjectItemCaseSensitive(params, "policies");
	p.policies = policy_set(
	    pol, !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(params, "no_default_policy")));
	p.meta = cJSON_GetObjectItemCaseSensitive(params, "meta");
	const char *dn = cs_tokenutil_str(params, "display_name");
	p.display_name = *dn ? dn : "token";
	const char *path = cs_tokenutil_str(params, "path");
	p.path = *path ? path : req->path;
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(params, "renewable");
	p.renewable = r ? cJSON_IsTrue(r) : true;
	p.ttl = (int64_t)cs_tokenutil_num(params, "ttl");
	p.period = (int64_t)cs_tokenutil_num(params, "period");
	p.explicit_max = (int64_t)cs_tokenutil_num(params, "explicit_max_ttl");
	p.num_uses = (int64_t)cs_tokenutil_num(params, "num_uses");
	int64_t mx = (int64_t)cs_tokenutil_num(params, "max_ttl");
	p.max_ttl = cs_req_max_ttl(req);
	if (mx > 0 && mx < p.max_ttl)
		p.max_ttl = mx;
	p.batch = strcmp(cs_tokenutil_str(params, "type"), "batch") == 0;
	p.bound_cidrs = cJSON_GetObjectItemCaseSensitive(params, "bound_cidrs");
	return create_token(req, &p);
}

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
	rc = entry_put(txn, hex, e);
	cJSON_Delete(e);
	if (!rc)
		rc = accessor_put(txn, accessor, hex);
	if (!rc)
		snprintf(out, outlen, "%s", token);
	cs_zero(token, sizeof token);
	return rc;
}

/* ---------------------------------------------------------------- lookup */

static void copy_item(cJSON *dst, const cJSON *src, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(src, name);
	if (v)
		cJSON_AddItemToObject(dst, name, cJSON_Duplicate(v, true));
	else
		cJSON_AddNullToObject(dst, name);
}

/* Vault's lookup data for entry `e`; `id` is the token or "" (accessor lookups). */
static cJSON *lookup_data(const cJSON *e, const char *id)
{
	cJSON *d = cJSON_CreateObject();
	static const char *same[] = {
	    "accessor", "creation_ttl", "display_name", "explicit_max_ttl", "meta",
	    "orphan",   "path",         "policies",     "renewable",        "type"};
	for (size_t i = 0; i < CS_ARRAY_LEN(same); i++)
		copy_item(d, e, same[i]);
	double uses = cs_tokenutil_num(e, "num_uses");
	cJSON_AddNumberToObject(d, "num_uses", uses > 0 ? uses : 0);
	double period = cs_tokenutil_num(e, "period");
	if (period > 0)
		cJSON_AddNumberToObject(d, "period", period);
	double created = cs_tokenutil_num(e, "creation_time");
	cJSON_AddNumberToObject(d, "creation_time", created);
	char iso[64];
	cs_format_time((int64_t)created * 1000000000LL, iso, sizeof iso);
	cJSON_AddStringToObject(d, "issue_time", iso);
	double expires = cs_tokenutil_num(e, "expire_time");
	if (expires > 0) {
		cs_format_time((int64_t)expires * 1000000000LL, iso, sizeof iso);
		cJSON_AddStringToObject(d, "expire_time", iso);
		double ttl = expires - (double)cs_now_ns() / 1e9;
		cJSON_AddNumberToObject(d, "ttl", ttl > 0 ? (double)(int64_t)ttl : 0);
	} else {
		cJSON_AddNullToObject(d, "expire_time");
		cJSON_AddNumberToObject(d, "ttl", 0);
	}
	/* As Vault: listed only when the token is bound. */
	const cJSON *cidrs = cJSON_GetObjectItemCaseSensitive(e, "bound_cidrs");
	if (cJSON_GetArraySize(cidrs) > 0)
		cJSON_AddItemToObject(d, "bound_cidrs", cJSON_Duplicate(cidrs, true));
	cJSON_AddStringToObject(d, "entity_id", "");
	cJSON_AddStringToObject(d, "id", id);
	cJSON_AddNullToObject(d, "identity_policies");
	return d;
}

static int lookup_self(struct cs_request *req)
{
	const cJSON *e = req->token_entry;
	if (!e)
		return cs_req_error(req, CS_EPERM, "permission denied");
	cs_req_set_data(req, lookup_data(e, req->client_token));
	return 0;
}

/* Entry of the token given in the body; the error for an unknown one is "bad token". */
static int by_token(struct cs_request *req, const char **token, char *hex, cJSON **e)
{
	*e = NULL;
	*token = cs_req_str(req, "token", ""); /* required by the table */
	int rc = lookup_valid(&req->txn, *token, hex, e);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EPERM, "bad token");
	return rc;
}

static int h_lookup(struct cs_request *req)
{
	const char *token;
	char hex[65];
	cJSON *e = NULL;
	int rc = by_token(req, &token, hex, &e);
	if (rc)
		return rc;
	cs_req_set_data(req, lookup_data(e, token));
	cJSON_Delete(e);
	return 0;
}

/* Entry by accessor; the error for an unknown one is Vault's "invalid accessor". */
static int by_accessor(struct cs_request *req, char *hex, cJSON **e)
{
	const char *acc = cs_req_str(req, "accessor", ""); /* required by the table */
	int rc = accessor_resolve(&req->txn, acc, hex);
	if (!rc)
		rc = entry_get(&req->txn, hex, e);
	if (!rc && !entry_valid(*e)) {
		cJSON_Delete(*e);
		*e = NULL;
		rc = CS_ENOTFOUND;
	}
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL, "invalid accessor");
	return rc;
}

static int h_lookup_accessor(struct cs_request *req)
{
	char hex[65];
	cJSON *e = NULL;
	int rc = by_accessor(req, hex, &e);
	if (rc)
		return rc;
	cs_req_set_data(req, lookup_data(e, ""));
	cJSON_Delete(e);
	return 0;
}

/* ---------------------------------------------------------------- renew */

static int renew(struct cs_request *req, const char *hex, cJSON *e, const char *token)
{
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "renewable")))
		return cs_req_error(req, CS_EINVAL, "lease is not renewable");
	int64_t now = cs_now_ns() / 1000000000;
	int64_t ttl = cs_token_renew_ttl(
	    now, (int64_t)cs_tokenutil_num(e, "creation_time"), cs_req_int(req, "increment", 0),
	    (int64_t)cs_tokenutil_num(e, "creation_ttl"), (int64_t)cs_tokenutil_num(e, "period"),
	    (int64_t)cs_tokenutil_num(e, "explicit_max_ttl"),
	    (int64_t)cs_tokenutil_num(e, "max_ttl"));
	if (ttl <= 0)
		return cs_req_error(req, CS_EINVAL, "lease is not renewable");
	double exp = (double)(now + ttl);
	set_in_place(e, "expire_time", cJSON_CreateNumber(exp));
	int rc = entry_put(&req->txn, hex, e);
	const char *lease = cs_tokenutil_str(e, "lease_id");
	if (!rc && *lease) {
		rc = cs_expire_put(&req->txn, lease, cs_tokenutil_str(e, "path"),
				   cs_tokenutil_num(e, "creation_time"), exp, true, hex);
	}
	if (!rc)
		fill_auth(req, token, e, ttl);
	return rc;
}

static int h_renew(struct cs_request *req)
{
	const char *token;
	char hex[65];
	cJSON *e = NULL;
	int rc = by_token(req, &token, hex, &e);
	if (!rc)
		rc = renew(req, hex, e, token);
	cJSON_Delete(e);
	return rc;
}

static int h_renew_self(struct cs_request *req)
{
	if (!req->token_entry || !req->client_token)
		return cs_req_error(req, CS_EPERM, "permission denied");
	char hex[65];
	int rc = cs_token_key_of(&req->txn, req->client_token, hex);
	if (rc)
		return rc;
	/* Renew what is stored (the request's copy may carry a spent use). */
	cJSON *e = cJSON_Duplicate(req->token_entry, true);
	rc = renew(req, hex, e, req->client_token);
	cJSON_Delete(e);
	return rc;
}

static int h_renew_accessor(struct cs_request *req)
{
	char hex[65];
	cJSON *e = NULL;
	int rc = by_accessor(req, hex, &e);
	if (!rc)
		rc = renew(req, hex, e, "");
	cJSON_Delete(e);
	return rc;
}

/* ---------------------------------------------------------------- revoke */

static int revoke_result(struct cs_request *req, int rc)
{
	if (rc == CS_ENOTFOUND)
		return 0; /* Vault: revoking an unknown token succeeds */
	if (rc == CS_EINVAL)
		return cs_req_error(req, CS_EINVAL,
				    "token tree has more than %d tokens; revoke its subtrees first",
				    CS_TOKEN_TREE_MAX);
	return rc;
}

/* Revoke the token given in the body: its tree, or only itself (orphaning children). */
static int revoke_token(struct cs_request *req, bool orphan_children)
{
	const char *token = cs_req_str(req, "token", ""); /* required by the table */
	char hex[65];
	int rc = cs_token_key_of(&req->txn, token, hex);
	if (!rc)
		rc = cs_token_revoke_key(&req->txn, hex, orphan_children);
	return revoke_result(req, rc);
}

static int h_revoke(struct cs_request *req)
{
	return revoke_token(req, false);
}

static int h_revoke_orphan(struct cs_request *req)
{
	return revoke_token(req, true);
}

static int h_revoke_self(struct cs_request *req)
{
	if (!req->client_token)
		return cs_req_error(req, CS_EPERM, "permission denied");
	char hex[65];
	int rc = cs_token_key_of(&req->txn, req->client_token, hex);
	if (!rc)
		rc = cs_token_revoke_key(&req->txn, hex, false);
	return revoke_result(req, rc);
}

static int h_revoke_accessor(struct cs_request *req)
{
	char hex[65];
	const char *acc = cs_req_str(req, "accessor", ""); /* required by the table */
	int rc = accessor_resolve(&req->txn, acc, hex);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL, "invalid accessor");
	if (!rc)
		rc = cs_token_revoke_key(&req->txn, hex, false);
	return revoke_result(req, rc);
}

/* ---------------------------------------------------------------- accessors, tidy */

static int h_accessors(struct cs_request *req)
{
	struct cs_strv v = {0};
	int rc = cs_txn_list(&req->txn, ACCESSOR_PREFIX, &v);
	cJSON *keys = cJSON_CreateArray();
	for (size_t i = 0; !rc && i < v.n; i++) {
		char key[256];
		snprintf(key, sizeof key, "%s%s", ACCESSOR_PREFIX, v.v[i]);
		cJSON *a = NULL;
		rc = cs_tokenutil_txn_get_json(&req->txn, key, &a);
		if (rc == CS_ENOTFOUND) {
			rc = 0;
			continue;
		}
		const char *acc = rc ? "" : cs_tokenutil_str(a, "accessor");
		if (*acc)
			cJSON_AddItemToArray(keys, cJSON_CreateString(acc));
		cJSON_Delete(a);
	}
	cs_strv_free(&v);
	if (rc) {
		cJSON_Delete(keys);
		return rc;
	}
	cJSON *d = cJSON_CreateObject();
	cJSON_AddItemToObject(d, "keys", keys);
	cs_req_set_data(req, d);
	return 0;
}

/* Drop accessor and parent-index entries that point at tokens that are gone, and
 * expired tokens whose lease was lost. Bounded per request. */
static int h_tidy(struct cs_request *req)
{
	struct cs_strv v = {0};
	size_t dropped = 0, seen = 0;
	int rc = cs_txn_scan(&req->txn, ACCESSOR_PREFIX, &v);
	for (size_t i = 0; !rc && i < v.n && seen < CS_TOKEN_TREE_MAX; i++, seen++) {
		cJSON *a = NULL;
		rc = cs_tokenutil_txn_get_json(&req->txn, v.v[i], &a);
		if (!rc && !cs_token_key_exists(&req->txn, cs_tokenutil_str(a, "token_key"))) {
			rc = cs_txn_delete(&req->txn, v.v[i]);
			dropped++;
		}
		if (rc == CS_ENOTFOUND)
			rc = 0;
		cJSON_Delete(a);
	}
	cs_strv_free(&v);
	if (!rc)
		rc = cs_txn_scan(&req->txn, PARENT_PREFIX, &v);
	size_t pl = strlen(PARENT_PREFIX);
	for (size_t i = 0; !rc && i < v.n && seen < CS_TOKEN_TREE_MAX; i++, seen++) {
		const char *k = v.v[i] + pl; /* <parent>/<child> */
		if (strlen(k) != 129)
			continue;
		char parent[65], child[65];
		memcpy(parent, k, 64);
		parent[64] = '\0';
		memcpy(child, k + 65, 65);
		if (!cs_token_key_exists(&req->txn, parent) ||
		    !cs_token_key_exists(&req->txn, child)) {
			rc = cs_txn_delete(&req->txn, v.v[i]);
			dropped++;
		}
	}
	cs_strv_free(&v);
	if (rc)
		return rc;
	if (dropped)
		cs_info("token: tidy removed %zu dangling index entries", dropped);
	req->status = 202;
	cs_req_warn(req, "Tidy operation successfully started. Any information from the "
			 "operation will be printed to Vault's server logs.");
	return 0;
}

/* ---------------------------------------------------------------- roles */

static const char *role_keys[] = {"allowed_policies",
				  "disallowed_policies",
				  "orphan",
				  "renewable",
				  "path_suffix",
				  "token_type",
				  "token_period",
				  "token_explicit_max_ttl",
				  "token_ttl",
				  "token_max_ttl",
				  "token_num_uses",
				  "token_no_default_policy",
				  "allowed_entity_aliases",
				  "token_bound_cidrs"};

static int h_role_read(struct cs_request *req)
{
	char key[300];
	snprintf(key, sizeof key, "roles/%s", cs_req_str(req, "role_name", ""));
	cJSON *r = NULL;
	int rc = cs_view_get_json(req, key, &r);
	if (rc)
		return rc;
	/* Vault also reports the legacy names. */
	cJSON_AddNumberToObject(r, "period", cs_tokenutil_num(r, "token_period"));
	cJSON_AddNumberToObject(r, "explicit_max_ttl",
				cs_tokenutil_num(r, "token_explicit_max_ttl"));
	cs_req_set_data(req, r);
	return 0;
}

static int h_role_write(struct cs_request *req)
{
	const char *name = cs_req_str(req, "role_name", "");
	char key[300];
	snprintf(key, sizeof key, "roles/%s", name);
	cJSON *r = NULL;
	int rc = cs_view_get_json(req, key, &r);
	if (rc == CS_ENOTFOUND) {
		r = cJSON_CreateObject();
		cJSON_AddStringToObject(r, "name", name);
		cJSON_AddItemToObject(r, "allowed_policies", cJSON_CreateArray());
		cJSON_AddItemToObject(r, "disallowed_policies", cJSON_CreateArray());
		cJSON_AddBoolToObject(r, "orphan", false);
		cJSON_AddBoolToObject(r, "renewable", true);
		cJSON_AddStringToObject(r, "path_suffix", "");
		cJSON_AddStringToObject(r, "token_type", "default-service");
		cJSON_AddNumberToObject(r, "token_period", 0);
		cJSON_AddNumberToObject(r, "token_explicit_max_ttl", 0);
		cJSON_AddNumberToObject(r, "token_ttl", 0);
		cJSON_AddNumberToObject(r, "token_max_ttl", 0);
		cJSON_AddNumberToObject(r, "token_num_uses", 0);
		cJSON_AddBoolToObject(r, "token_no_default_policy", false);
		rc = 0;
	}
	if (rc)
		return rc;
	/* Legacy names map onto the token_* fields. */
	if (cs_req_has(req, "period") && !cs_req_has(req, "token_period"))
		set_in_place(r, "token_period",
			     cJSON_CreateNumber((double)cs_req_int(req, "period", 0)));
	if (cs_req_has(req, "explicit_max_ttl") && !cs_req_has(req, "token_explicit_max_ttl"))
		set_in_place(r, "token_explicit_max_ttl",
			     cJSON_CreateNumber((double)cs_req_int(req, "explicit_max_ttl", 0)));
	const cJSON *cidrs = cs_req_get(req, "token_bound_cidrs");
	if (cidrs && (rc = cs_tokenutil_check_cidrs(req, cidrs, "token_bound_cidrs"))) {
		cJSON_Delete(r);
		return rc;
	}
	for (size_t i = 0; i < CS_ARRAY_LEN(role_keys); i++) {
		const cJSON *v = cs_req_get(req, role_keys[i]);
		if (v)
			cs_tokenutil_set(r, role_keys[i],
					 strstr(role_keys[i], "policies")
					     ? policy_set(v, false)
					     : cJSON_Duplicate(v, true));
	}
	const char *tt = cs_tokenutil_str(r, "token_type");
	if (strcmp(tt, "service") && strcmp(tt, "batch") && strcmp(tt, "default") &&
	    strcmp(tt, "default-service") && strcmp(tt, "default-batch")) {
		cJSON_Delete(r);
		return cs_req_error(req, CS_EINVAL, "invalid 'token_type' value \"%s\"", tt);
	}
	rc = cs_view_put_json(req, key, r);
	cJSON_Delete(r);
	return rc;
}

static int h_role_delete(struct cs_request *req)
{
	char key[300];
	snprintf(key, sizeof key, "roles/%s", cs_req_str(req, "role_name", ""));
	int rc = cs_view_delete(req, key);
	return rc == CS_ENOTFOUND ? 0 : rc;
}

static int h_role_list(struct cs_request *req)
{
	struct cs_strv v = {0};
	return cs_tokenutil_reply_keys(req, cs_view_list(req, "roles/", &v), &v);
}

static int role_exists(struct cs_request *req, bool *exists)
{
	char key[300];
	const char *name = cs_req_capture(req, "role_name");
	snprintf(key, sizeof key, "roles/%s", name ? name : "");
	struct cs_buf b = CS_BUF_INIT;
	int rc = cs_view_get(req, key, &b);
	cs_buf_free_secure(&b);
	*exists = rc == 0;
	return rc == CS_ENOTFOUND ? 0 : rc;
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
    {.name = "entity_alias", .type = CS_FIELD_STRING, .desc = "ignored"},
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
     .ops = {[CS_OP_UPDATE] = h_create_orphan},
     .synopsis = "create an orphan token"},
    {.pattern = "create/{role_name}",
     .fields = create_fields,
     .ops = {[CS_OP_UPDATE] = h_create_role},
     .synopsis = "create a token from a role"},
    {.pattern = "create",
     .fields = create_fields,
     .ops = {[CS_OP_UPDATE] = h_create},
     .synopsis = "create a token"},
    {.pattern = "lookup-self",
     .fields = self_fields,
     .ops = {[CS_OP_READ] = lookup_self, [CS_OP_UPDATE] = lookup_self},
     .synopsis = "information about the client token"},
    {.pattern = "lookup-accessor",
     .fields = accessor_fields,
     .ops = {[CS_OP_UPDATE] = h_lookup_accessor},
     .synopsis = "information about a token by accessor"},
    {.pattern = "lookup",
     .fields = token_fields,
     .ops = {[CS_OP_UPDATE] = h_lookup},
     .synopsis = "information about a token"},
    {.pattern = "renew-self",
     .fields = self_fields,
     .ops = {[CS_OP_UPDATE] = h_renew_self},
     .synopsis = "renew the client token"},
    {.pattern = "renew-accessor",
     .fields = accessor_fields,
     .ops = {[CS_OP_UPDATE] = h_renew_accessor},
     .synopsis = "renew a token by accessor"},
    {.pattern = "renew",
     .fields = token_fields,
     .ops = {[CS_OP_UPDATE] = h_renew},
     .synopsis = "renew a token"},
    {.pattern = "revoke-self",
     .ops = {[CS_OP_UPDATE] = h_revoke_self},
     .synopsis = "revoke the client token and its tree"},
    {.pattern = "revoke-accessor",
     .fields = accessor_fields,
     .ops = {[CS_OP_UPDATE] = h_revoke_accessor},
     .synopsis = "revoke a token by accessor"},
    {.pattern = "revoke-orphan",
     .fields = token_fields,
     .ops = {[CS_OP_UPDATE] = h_revoke_orphan},
     .flags = CS_PATH_SUDO,
     .synopsis = "revoke a token, orphaning its children"},
    {.pattern = "revoke",
     .fields = token_fields,
     .ops = {[CS_OP_UPDATE] = h_revoke},
     .synopsis = "revoke a token and its tree"},
    {.pattern = "accessors",
     .ops = {[CS_OP_LIST] = h_accessors},
     .flags = CS_PATH_SUDO,
     .synopsis = "list accessors"},
    {.pattern = "roles", .ops = {[CS_OP_LIST] = h_role_list}, .synopsis = "list roles"},
    {.pattern = "roles/{role_name}",
     .fields = role_fields,
     .ops = {[CS_OP_READ] = h_role_read,
	     [CS_OP_CREATE] = h_role_write,
	     [CS_OP_UPDATE] = h_role_write,
	     [CS_OP_DELETE] = h_role_delete},
     .exists = role_exists,
     .synopsis = "token roles"},
    {.pattern = "tidy", .ops = {[CS_OP_UPDATE] = h_tidy}, .synopsis = "tidy the token store"},
};

const struct cs_backend cs_token_backend = {
    .type = "token",
    .is_auth = true,
    .paths = token_paths,
    .n_paths = CS_ARRAY_LEN(token_paths),
    .reset = token_reset,
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
};

void cs_token_register(struct cs_core *core)
{
	cs_backend_register(&cs_token_backend);
	cs_core_set_token_store(core, &token_store);
	cs_expire_register(core, &expire_tokens);
}
