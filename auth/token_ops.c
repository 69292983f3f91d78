/*
 * The endpoints on existing tokens (see token_internal.h): lookup, renew and revoke by
 * token, by accessor or of the caller's own token; the accessor list; tidy. A token given
 * in the body is found through its HMAC only; an unknown one gets Vault's error text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/expire.h"
#include "auth/token.h"
#include "auth/token_internal.h"
#include "auth/token_revoke.h"
#include "auth/tokenutil.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"

static void copy_item(cJSON *dst, const cJSON *src, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(src, name);
	if (v)
		cJSON_AddItemToObject(dst, name, cJSON_Duplicate(v, true));
	else
		cJSON_AddNullToObject(dst, name);
}

/* Vault's lookup data for entry `e`; `id` is the token or "" (accessor lookups). */
static cJSON *lookup_data(struct cs_request *req, const cJSON *e, const char *id)
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
	const char *eid = cs_tokenutil_str(e, "entity_id");
	cJSON_AddStringToObject(d, "entity_id", eid);
	cJSON_AddStringToObject(d, "id", id);
	/* The entity's and its groups' policies, as of this request (Vault). */
	cJSON *ident = NULL;
	if (*eid && cs_backend_identity_resolve(req->core, &req->txn, eid, &ident) == 0 &&
	    cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(ident, "policies")))
		cJSON_AddItemToObject(
		    d, "identity_policies",
		    cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(ident, "policies"), true));
	else
		cJSON_AddNullToObject(d, "identity_policies");
	cJSON_Delete(ident);
	return d;
}

int cs_token_h_lookup_self(struct cs_request *req)
{
	const cJSON *e = req->token_entry;
	if (!e)
		return cs_req_error(req, CS_EPERM, "permission denied");
	cs_req_set_data(req, lookup_data(req, e, req->client_token));
	return 0;
}

/* Entry of the token given in the body; the error for an unknown one is "bad token". */
static int by_token(struct cs_request *req, const char **token, char *hex, cJSON **e)
{
	*e = NULL;
	*token = cs_req_str(req, "token", ""); /* required by the table */
	int rc = cs_token_lookup_valid(&req->txn, *token, hex, e);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EPERM, "bad token");
	return rc;
}

int cs_token_h_lookup(struct cs_request *req)
{
	const char *token;
	char hex[65];
	cJSON *e = NULL;
	int rc = by_token(req, &token, hex, &e);
	if (rc)
		return rc;
	cs_req_set_data(req, lookup_data(req, e, token));
	cJSON_Delete(e);
	return 0;
}

/* Entry by accessor; the error for an unknown one is Vault's "invalid accessor". */
static int by_accessor(struct cs_request *req, char *hex, cJSON **e)
{
	const char *acc = cs_req_str(req, "accessor", ""); /* required by the table */
	int rc = cs_token_accessor_resolve(&req->txn, acc, hex);
	if (!rc)
		rc = cs_token_entry_get(&req->txn, hex, e);
	if (!rc && !cs_token_entry_valid(*e)) {
		cJSON_Delete(*e);
		*e = NULL;
		rc = CS_ENOTFOUND;
	}
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL, "invalid accessor");
	return rc;
}

int cs_token_h_lookup_accessor(struct cs_request *req)
{
	char hex[65];
	cJSON *e = NULL;
	int rc = by_accessor(req, hex, &e);
	if (rc)
		return rc;
	cs_req_set_data(req, lookup_data(req, e, ""));
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
	cs_token_set_in_place(e, "expire_time", cJSON_CreateNumber(exp));
	int rc = cs_token_entry_put(&req->txn, hex, e);
	const char *lease = cs_tokenutil_str(e, "lease_id");
	if (!rc && *lease) {
		rc = cs_expire_put(&req->txn, lease, cs_tokenutil_str(e, "path"),
				   cs_tokenutil_num(e, "creation_time"), exp, true, hex);
	}
	if (!rc)
		cs_token_fill_auth(req, token, e, ttl);
	return rc;
}

int cs_token_h_renew(struct cs_request *req)
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

int cs_token_h_renew_self(struct cs_request *req)
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

int cs_token_h_renew_accessor(struct cs_request *req)
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
	(void)req;
	if (rc == CS_ENOTFOUND)
		return 0; /* Vault: revoking an unknown token succeeds */
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

int cs_token_h_revoke(struct cs_request *req)
{
	return revoke_token(req, false);
}

int cs_token_h_revoke_orphan(struct cs_request *req)
{
	return revoke_token(req, true);
}

int cs_token_h_revoke_self(struct cs_request *req)
{
	if (!req->client_token)
		return cs_req_error(req, CS_EPERM, "permission denied");
	char hex[65];
	int rc = cs_token_key_of(&req->txn, req->client_token, hex);
	if (!rc)
		rc = cs_token_revoke_key(&req->txn, hex, false);
	return revoke_result(req, rc);
}

int cs_token_h_revoke_accessor(struct cs_request *req)
{
	char hex[65];
	const char *acc = cs_req_str(req, "accessor", ""); /* required by the table */
	int rc = cs_token_accessor_resolve(&req->txn, acc, hex);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL, "invalid accessor");
	if (!rc)
		rc = cs_token_revoke_key(&req->txn, hex, false);
	return revoke_result(req, rc);
}

/* ---------------------------------------------------------------- accessors, tidy */

int cs_token_h_accessors(struct cs_request *req)
{
	struct cs_strv v = {0};
	int rc = cs_txn_list(&req->txn, CS_TOKEN_ACCESSOR_PREFIX, &v);
	cJSON *keys = cJSON_CreateArray();
	for (size_t i = 0; !rc && i < v.n; i++) {
		char key[256];
		snprintf(key, sizeof key, "%s%s", CS_TOKEN_ACCESSOR_PREFIX, v.v[i]);
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

/* Index entries one tidy request looks at. */
#define TIDY_MAX 4096

/* Whether token `hex` is gone but a revocation job still works below it: its children's
 * index links are the job's way to them. */
static bool revoking(struct cs_txn *txn, const char *hex)
{
	const char *prefixes[] = {CS_REVQ_TREE_PREFIX, CS_REVQ_ORPHAN_PREFIX};
	for (size_t i = 0; i < 2; i++) {
		char key[128];
		snprintf(key, sizeof key, "%s%s", prefixes[i], hex);
		struct cs_buf b = CS_BUF_INIT;
		int rc = cs_txn_get_raw(txn, key, &b);
		cs_buf_free(&b);
		if (rc != CS_ENOTFOUND)
			return true;
	}
	return false;
}

/* Drop accessor and parent-index entries that point at tokens that are gone, and
 * expired tokens whose lease was lost. Bounded per request. */
int cs_token_h_tidy(struct cs_request *req)
{
	struct cs_strv v = {0};
	size_t dropped = 0, seen = 0;
	int rc = cs_txn_scan(&req->txn, CS_TOKEN_ACCESSOR_PREFIX, &v);
	for (size_t i = 0; !rc && i < v.n && seen < TIDY_MAX; i++, seen++) {
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
		rc = cs_txn_scan(&req->txn, CS_TOKEN_PARENT_PREFIX, &v);
	size_t pl = strlen(CS_TOKEN_PARENT_PREFIX);
	for (size_t i = 0; !rc && i < v.n && seen < TIDY_MAX; i++, seen++) {
		const char *k = v.v[i] + pl; /* <parent>/<child> */
		if (strlen(k) != 129)
			continue;
		char parent[65], child[65];
		memcpy(parent, k, 64);
		parent[64] = '\0';
		memcpy(child, k + 65, 65);
		if ((!cs_token_key_exists(&req->txn, parent) && !revoking(&req->txn, parent)) ||
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
