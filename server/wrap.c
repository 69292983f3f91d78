/*
 * Response wrapping (see wrap.h).
 *
 * The wrapping token is made by the token store (core->tokens.issue) inside the request's
 * transaction, so a failed commit leaves neither the token nor the stored response
 * behind. The stored response is written straight into the cubbyhole mount's view rather
 * than through a nested request: the layout is the one engines/cubbyhole.c reads
 * ("<prefix><H(token)>/<path>", value a JSON object), and the token store's revocation
 * hook deletes it with the token.
 */
#include "server/wrap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"
#include "server/http.h"
#include "server/response.h"
#include "server/router.h"
#include "server/sys.h"

#define CUBBY_MOUNT "cubbyhole/"

static cs_wrap_key_of_fn key_of;
static cs_wrap_revoke_key_fn revoke_key;

/* ---------------------------------------------------------------- pure helpers */

int cs_wrap_parse_ttl(const char *value, int64_t *ttl, const char **errmsg)
{
	*ttl = 0;
	if (!value)
		return 0;
	while (*value == ' ' || *value == '\t')
		value++;
	size_t n = strlen(value);
	while (n && (value[n - 1] == ' ' || value[n - 1] == '\t'))
		n--;
	if (n == 0)
		return 0;
	if (value[0] == '-') {
		*errmsg = "requested wrap ttl cannot be negative";
		return CS_EINVAL;
	}
	char buf[64];
	if (n >= sizeof buf) {
		*errmsg = "invalid wrap ttl";
		return CS_EINVAL;
	}
	memcpy(buf, value, n);
	buf[n] = '\0';
	if (cs_parse_duration(buf, ttl)) {
		*ttl = 0;
		*errmsg = "invalid wrap ttl";
		return CS_EINVAL;
	}
	return 0;
}

cJSON *cs_wrap_info_json(const char *token, const char *accessor, int64_t ttl, int64_t creation_ns,
			 const char *creation_path, const char *wrapped_accessor)
{
	char t[64];
	cs_format_time(creation_ns, t, sizeof t);
	cJSON *w = cJSON_CreateObject();
	cJSON_AddStringToObject(w, "token", token);
	cJSON_AddStringToObject(w, "accessor", accessor);
	cJSON_AddNumberToObject(w, "ttl", (double)ttl);
	cJSON_AddStringToObject(w, "creation_time", t);
	cJSON_AddStringToObject(w, "creation_path", creation_path);
	if (wrapped_accessor && *wrapped_accessor)
		cJSON_AddStringToObject(w, "wrapped_accessor", wrapped_accessor);
	return w;
}

cJSON *cs_wrap_envelope(cJSON *wrap_info)
{
	cJSON *o = cJSON_CreateObject();
	char id[37];
	cs_uuid(id);
	cJSON_AddStringToObject(o, "request_id", id);
	cJSON_AddStringToObject(o, "lease_id", "");
	cJSON_AddBoolToObject(o, "renewable", false);
	cJSON_AddNumberToObject(o, "lease_duration", 0);
	cJSON_AddNullToObject(o, "data");
	cJSON_AddItemToObject(o, "wrap_info", wrap_info);
	cJSON_AddNullToObject(o, "warnings");
	cJSON_AddNullToObject(o, "auth");
	return o;
}

/* ---------------------------------------------------------------- headers */

int cs_wrap_read_headers(struct cs_request *req, const struct cs_http_req *h)
{
	const char *msg = NULL;
	int rc = cs_wrap_parse_ttl(cs_http_header_get(h, "X-Vault-Wrap-TTL"), &req->wrap_ttl, &msg);
	if (rc)
		return cs_req_error(req, rc, "%s", msg);
	return 0;
}

/* ---------------------------------------------------------------- the cubbyhole side */

static const char *str_of(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : "";
}

static double num_of(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* Storage key of `path` in the cubbyhole of `token`: "<prefix><H(token)>/<path>". */
static int cubby_key(struct cs_request *req, const char *token, const char *path, char *out,
		     size_t outlen)
{
	struct cs_mount *m = cs_router_get(&req->core->router, CUBBY_MOUNT);
	if (!m || !key_of)
		return cs_req_error(req, CS_EINTERNAL, "cubbyhole mount not available");
	char hex[65];
	int rc = key_of(&req->txn, token, hex);
	if (rc)
		return rc;
	int n = snprintf(out, outlen, "%s%s/%s", m->storage_prefix, hex, path);
	return n < 0 || (size_t)n >= outlen ? CS_EINVAL : 0;
}

/*
 * Issue a wrapping token for `response` (an envelope JSON string) and store it.
 * *info receives the wrap_info object. req->resp_auth and req->warnings are left as they
 * were (token_issue writes its own auth block there; it is taken back out).
 */
static int wrap_payload(struct cs_request *req, const char *response, int64_t ttl,
			const char *creation_path, const char *wrapped_accessor, cJSON **info)
{
	struct cs_core *core = req->core;
	*info = NULL;
	if (!core->tokens.issue)
		return cs_req_error(req, CS_EINTERNAL, "response wrapping is not available");
	cJSON *params = cJSON_CreateObject();
	cJSON *pol = cJSON_AddArrayToObject(params, "policies");
	cJSON_AddItemToArray(pol, cJSON_CreateString(CS_WRAP_POLICY));
	cJSON_AddBoolToObject(params, "no_default_policy", true);
	cJSON_AddNumberToObject(params, "ttl", (double)ttl);
	cJSON_AddNumberToObject(params, "explicit_max_ttl", (double)ttl);
	cJSON_AddNumberToObject(params, "num_uses", 1);
	cJSON_AddBoolToObject(params, "renewable", false);
	cJSON_AddStringToObject(params, "path", creation_path);
	cJSON_AddStringToObject(params, "type", "service");

	cJSON *saved_auth = req->resp_auth, *saved_warn = req->warnings;
	req->resp_auth = NULL;
	req->warnings = NULL;
	int rc = core->tokens.issue(req, params);
	cJSON_Delete(params);
	cJSON *auth = req->resp_auth;
	cJSON_Delete(req->warnings);
	req->resp_auth = saved_auth;
	req->warnings = saved_warn;
	const char *token = str_of(auth, "client_token");
	if (!rc && !*token)
		rc = cs_req_error(req, CS_EINTERNAL, "wrapping token not issued");

	char key[640];
	if (!rc)
		rc = cubby_key(req, token, "response", key, sizeof key);
	if (!rc) {
		cJSON *val = cJSON_CreateObject();
		cJSON_AddStringToObject(val, "response", response);
		char *s = cJSON_PrintUnformatted(val);
		cJSON_Delete(val);
		if (!s)
			abort();
		rc = cs_txn_put(&req->txn, key, s, strlen(s));
		cs_zero(s, strlen(s));
		free(s);
	}
	if (!rc)
		*info = cs_wrap_info_json(token, str_of(auth, "accessor"),
					  (int64_t)num_of(auth, "lease_duration"), cs_now_ns(),
					  creation_path, wrapped_accessor);
	if (*token)
		cs_zero((char *)token, strlen(token));
	cJSON_Delete(auth);
	return rc;
}

/* Replace every response field with the wrapped envelope. */
static void set_wrapped(struct cs_request *req, cJSON *info)
{
	cJSON_Delete(req->resp_data);
	cJSON_Delete(req->resp_auth);
	cJSON_Delete(req->warnings);
	cJSON_Delete(req->raw);
	free(req->lease_id);
	req->resp_data = req->resp_auth = req->warnings = NULL;
	req->lease_id = NULL;
	req->lease_duration = 0;
	req->renewable = false;
	req->data_to_top = false;
	req->raw = cs_wrap_envelope(info);
}

int cs_wrap_response(struct cs_request *req)
{
	if (req->wrap_ttl <= 0 || req->raw || (!req->resp_data && !req->resp_auth))
		return 0;
	size_t len = 0;
	char *env = cs_response_envelope(req, &len);
	cJSON *info = NULL;
	int rc = wrap_payload(req, env, req->wrap_ttl, req->path,
			      req->resp_auth ? str_of(req->resp_auth, "accessor") : NULL, &info);
	cs_zero(env, len);
	free(env);
	if (!rc)
		set_wrapped(req, info);
	return rc;
}

/* ---------------------------------------------------------------- sys/wrapping/ */

/*
 * The wrapping token named by the request: the "token" field, else the client token.
 * On success *entry is its token entry (owned by the caller). Anything that is not a live
 * wrapping token is CS_EINVAL with Vault's message.
 */
static int wrapping_token(struct cs_request *req, const char **token, cJSON **entry)
{
	struct cs_core *core = req->core;
	*entry = NULL;
	*token = cs_req_str(req, "token", NULL);
	if (!*token || !**token)
		*token = req->client_token;
	if (!*token || !**token || !core->tokens.lookup)
		return cs_req_error(req, CS_EINVAL, CS_WRAP_INVALID_MSG);
	cJSON *e = NULL;
	int rc = core->tokens.lookup(core, &req->txn, *token, &e);
	if (rc)
		return rc;
	const cJSON *pol = cJSON_GetObjectItemCaseSensitive(e, "policies");
	if (!e || cJSON_GetArraySize(pol) != 1 || !cJSON_IsString(cJSON_GetArrayItem(pol, 0)) ||
	    strcmp(cJSON_GetArrayItem(pol, 0)->valuestring, CS_WRAP_POLICY) != 0) {
		cJSON_Delete(e);
		return cs_req_error(req, CS_EINVAL, CS_WRAP_INVALID_MSG);
	}
	*entry = e;
	return 0;
}

/* Read the stored response of a wrapping token (malloc'd JSON text). */
static int read_response(struct cs_request *req, const char *token, char **out)
{
	*out = NULL;
	char key[640];
	int rc = cubby_key(req, token, "response", key, sizeof key);
	if (rc)
		return rc;
	struct cs_buf b = CS_BUF_INIT;
	rc = cs_txn_get(&req->txn, key, &b);
	if (rc == CS_ENOTFOUND)
		rc = cs_req_error(req, CS_EINVAL,
				  "no information found; wrapping token may be from a previous "
				  "Vault version");
	cJSON *val = rc ? NULL : cJSON_ParseWithLength(b.data, b.len);
	cs_buf_free_secure(&b);
	if (rc)
		return rc;
	const char *resp = str_of(val, "response");
	if (*resp)
		*out = strdup(resp);
	else
		rc = cs_req_error(req, CS_EINTERNAL, "stored wrapped response is corrupt");
	if (*resp)
		cs_zero((char *)resp, strlen(resp));
	cJSON_Delete(val);
	return rc;
}

static int revoke_token(struct cs_request *req, const cJSON *entry)
{
	const char *hex = str_of(entry, "key");
	if (!revoke_key || strlen(hex) != 64)
		return cs_req_error(req, CS_EINTERNAL, "cannot revoke the wrapping token");
	int rc = revoke_key(&req->txn, hex, false);
	return rc == CS_ENOTFOUND ? 0 : rc;
}

static int h_unwrap(struct cs_request *req)
{
	const char *token;
	cJSON *e;
	int rc = wrapping_token(req, &token, &e);
	if (rc)
		return rc;
	if (token != req->client_token && req->client_token &&
	    cs_ct_equal(token, strlen(token), req->client_token, strlen(req->client_token))) {
		/* In the body and as the client token: Vault spends the use on the client
		 * token, so the unwrap finds it gone. Burn it, answer 400, but commit. */
		rc = revoke_token(req, e);
		cJSON_Delete(e);
		if (rc)
			return rc;
		return cs_req_error_after_commit(req, CS_EINVAL, "%s", CS_WRAP_INVALID_MSG);
	}
	char *resp = NULL;
	rc = read_response(req, token, &resp);
	/* The token is burnt whatever was found: single use. */
	if (!rc)
		rc = revoke_token(req, e);
	cJSON_Delete(e);
	if (!rc) {
		req->raw = cJSON_Parse(resp);
		if (!req->raw)
			rc = cs_req_error(req, CS_EINTERNAL, "stored wrapped response is corrupt");
	}
	if (resp) {
		cs_zero(resp, strlen(resp));
		free(resp);
	}
	return rc;
}

static int h_lookup(struct cs_request *req)
{
	const char *token;
	cJSON *e;
	int rc = wrapping_token(req, &token, &e);
	if (rc)
		return rc;
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "creation_path", str_of(e, "path"));
	time_t created = (time_t)num_of(e, "creation_time");
	struct tm tm;
	char t[64];
	gmtime_r(&created, &tm);
	strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%SZ", &tm);
	cJSON_AddStringToObject(d, "creation_time", t);
	cJSON_AddNumberToObject(d, "creation_ttl", num_of(e, "creation_ttl"));
	cJSON_Delete(e);
	cs_req_set_data(req, d);
	return 0;
}

static int h_rewrap(struct cs_request *req)
{
	const char *token;
	cJSON *e;
	int rc = wrapping_token(req, &token, &e);
	if (rc)
		return rc;
	char *resp = NULL;
	rc = read_response(req, token, &resp);
	if (!rc)
		rc = revoke_token(req, e);
	cJSON *info = NULL;
	if (!rc) {
		/* Same lifetime and creation path as the original wrapping. */
		char *path = strdup(str_of(e, "path"));
		if (!path)
			abort();
		rc = wrap_payload(req, resp, (int64_t)num_of(e, "creation_ttl"), path, NULL, &info);
		free(path);
	}
	cJSON_Delete(e);
	if (resp) {
		cs_zero(resp, strlen(resp));
		free(resp);
	}
	if (!rc)
		set_wrapped(req, info);
	return rc;
}

static int h_wrap(struct cs_request *req)
{
	if (req->wrap_ttl <= 0)
		return cs_req_error(req, CS_EINVAL,
				    "wrapping information was nil; wrapping token not generated");
	if (cJSON_GetArraySize(req->data) == 0)
		return cs_req_error(req, CS_EINVAL, "missing data fields");
	/* The body is the data; cs_wrap_response wraps it on the way out. */
	cs_req_set_data(req, cJSON_Duplicate(req->data, true));
	req->data_to_top = true;
	return 0;
}

static const struct cs_field token_fields[] = {
    {.name = "token",
     .type = CS_FIELD_STRING,
     .desc = "the wrapping token (default: the client token)"},
    {.name = NULL},
};

static const struct cs_path wrap_paths[] = {
    {.pattern = "wrapping/wrap",
     .ops = {[CS_OP_UPDATE] = h_wrap},
     .flags = CS_PATH_ANY_FIELDS,
     .synopsis = "wrap arbitrary data in a response-wrapping token"},
    /* The wrapping token is the credential here, in the body or as the client token:
     * the core neither spends nor checks it; the handler does. */
    {.pattern = "wrapping/unwrap",
     .fields = token_fields,
     .ops = {[CS_OP_UPDATE] = h_unwrap},
     .flags = CS_PATH_UNAUTH,
     .synopsis = "unwrap a response-wrapping token"},
    {.pattern = "wrapping/lookup",
     .fields = token_fields,
     .ops = {[CS_OP_READ] = h_lookup, [CS_OP_UPDATE] = h_lookup},
     .flags = CS_PATH_UNAUTH,
     .synopsis = "look up the properties of a response-wrapping token"},
    {.pattern = "wrapping/rewrap",
     .fields = token_fields,
     .ops = {[CS_OP_UPDATE] = h_rewrap},
     .synopsis = "rotate a response-wrapping token"},
};

void cs_wrap_register(cs_wrap_key_of_fn key_of_fn, cs_wrap_revoke_key_fn revoke_key_fn)
{
	key_of = key_of_fn;
	revoke_key = revoke_key_fn;
	cs_sys_set_paths(CS_SYS_WRAP, wrap_paths, CS_ARRAY_LEN(wrap_paths));
}
