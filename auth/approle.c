/*
 * The AppRole auth method (see approle.h for the API, the storage layout and the login
 * rules). Every handler is synchronous and works in the request's transaction.
 */
#include "auth/approle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/tokenutil.h"
#include "lib/err.h"
#include "lib/util.h"

#define INVALID_ROLE   "invalid role or secret ID"
#define INVALID_SECRET "invalid secret id"

/* ---------------------------------------------------------------- pure helpers */

void cs_approle_hmac(const uint8_t *salt, size_t salt_len, const char *value, char out[65])
{
	cs_tokenutil_hmac_hex(salt, salt_len, value, out);
}

enum cs_approle_use cs_approle_secret_use(int64_t now, int64_t expiration, int64_t num_uses)
{
	if (expiration > 0 && now >= expiration)
		return CS_APPROLE_EXPIRED;
	if (num_uses <= 0)
		return CS_APPROLE_UNLIMITED;
	return num_uses == 1 ? CS_APPROLE_LAST_USE : CS_APPROLE_DECREMENT;
}

int cs_approle_secret_limits(int64_t role_ttl, int64_t role_uses, int64_t req_ttl, int64_t req_uses,
			     int64_t *ttl, int64_t *uses, const char **err)
{
	if (req_ttl < 0) {
		*err = "ttl cannot be negative";
		return CS_EINVAL;
	}
	if (req_uses < 0) {
		*err = "num_uses cannot be negative";
		return CS_EINVAL;
	}
	if (req_ttl > 0 && role_ttl > 0 && req_ttl > role_ttl) {
		*err = "ttl cannot be longer than the role's secret_id_ttl";
		return CS_EINVAL;
	}
	if (req_uses > 0 && role_uses > 0 && req_uses > role_uses) {
		*err = "num_uses cannot be higher than the role's secret_id_num_uses";
		return CS_EINVAL;
	}
	*ttl = req_ttl > 0 ? req_ttl : role_ttl;
	*uses = req_uses > 0 ? req_uses : role_uses;
	return 0;
}

/* ---------------------------------------------------------------- storage helpers */

static int64_t now_s(void)
{
	return cs_now_ns() / 1000000000LL;
}

/* The mount's HMAC key, created in this transaction on first use. */
static int get_salt(struct cs_request *req, uint8_t out[CS_APPROLE_SALT_LEN])
{
	struct cs_buf b = CS_BUF_INIT;
	int rc = cs_view_get(req, "salt", &b);
	if (rc == CS_ENOTFOUND) {
		cs_random(out, CS_APPROLE_SALT_LEN);
		rc = cs_view_put(req, "salt", out, CS_APPROLE_SALT_LEN);
	} else if (!rc) {
		if (b.len == CS_APPROLE_SALT_LEN)
			memcpy(out, b.data, CS_APPROLE_SALT_LEN);
		else
			rc = CS_EIO;
	}
	cs_buf_free_secure(&b);
	return rc;
}

static int hmac_of(struct cs_request *req, const char *value, char out[65])
{
	uint8_t salt[CS_APPROLE_SALT_LEN];
	int rc = get_salt(req, salt);
	if (!rc)
		cs_approle_hmac(salt, sizeof salt, value, out);
	cs_zero(salt, sizeof salt);
	return rc;
}

static bool role_name(const struct cs_request *req, const char **out)
{
	const char *n = cs_req_capture(req, "role_name");
	if (!n || !*n || strlen(n) > 200)
		return false;
	*out = n;
	return true;
}

static int role_get(struct cs_request *req, const char *name, cJSON **out)
{
	char key[300];
	snprintf(key, sizeof key, "role/%s", name);
	return cs_tokenutil_get_opt(req, key, out);
}

static int role_put(struct cs_request *req, const char *name, const cJSON *role)
{
	char key[300];
	snprintf(key, sizeof key, "role/%s", name);
	return cs_view_put_json(req, key, role);
}

/* The role named by the path, or *role NULL when there is none (an error only when the
 * path names no role). */
static int role_find(struct cs_request *req, const char **name, cJSON **role)
{
	*role = NULL;
	/* The route always captures a non-empty name: this refuses an over-long one. */
	if (!role_name(req, name))
		return cs_req_error(req, CS_EINVAL, "missing role_name");
	return role_get(req, *name, role);
}

/* The role named by the path, or an error ("role ... does not exist"). */
static int role_must(struct cs_request *req, const char **name, cJSON **role)
{
	int rc = role_find(req, name, role);
	if (!rc && !*role)
		rc = cs_req_error(req, CS_EINVAL, "role \"%s\" does not exist", *name);
	return rc;
}

/* "<what>/<HMAC(value)>": the index keys of role ids and secret id accessors. */
static int index_key(struct cs_request *req, const char *what, const char *value, char key[100])
{
	char h[65];
	int rc = hmac_of(req, value, h);
	if (!rc)
		snprintf(key, 100, "%s/%s", what, h);
	return rc;
}

static int index_role_id(struct cs_request *req, const char *role_id, const char *name)
{
	char key[100];
	int rc = index_key(req, "role_id", role_id, key);
	if (rc)
		return rc;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", name);
	rc = cs_view_put_json(req, key, o);
	cJSON_Delete(o);
	return rc;
}

static int unindex_role_id(struct cs_request *req, const char *role_id)
{
	char key[100];
	int rc = index_key(req, "role_id", role_id, key);
	return rc ? rc : cs_view_delete(req, key);
}

/* The role name a role_id belongs to (malloc'd), or NULL. */
static int role_of_id(struct cs_request *req, const char *role_id, char **name)
{
	char key[100];
	*name = NULL;
	int rc = index_key(req, "role_id", role_id, key);
	if (rc)
		return rc;
	cJSON *o = NULL;
	rc = cs_tokenutil_get_opt(req, key, &o);
	if (!rc && o && *cs_tokenutil_str(o, "name"))
		*name = strdup(cs_tokenutil_str(o, "name"));
	cJSON_Delete(o);
	return rc;
}

static void secret_key(char *out, size_t n, const char *role, const char *hmac_hex)
{
	snprintf(out, n, "secret_id/%s/%s", role, hmac_hex);
}

/* Delete a secret id entry (by its HMAC) and its accessor index. */
static int secret_delete(struct cs_request *req, const char *role, const char *h,
			 const cJSON *entry)
{
	char key[400], akey[100];
	secret_key(key, sizeof key, role, h);
	int rc = cs_view_delete(req, key);
	const char *acc = cs_tokenutil_str(entry, "secret_id_accessor");
	if (!rc && *acc && !(rc = index_key(req, "accessor", acc, akey)))
		rc = cs_view_delete(req, akey);
	return rc;
}

typedef int (*secret_fn)(struct cs_request *req, const char *role, const char *h,
			 const cJSON *entry, void *ctx);

/* Call fn on each secret id entry of the role (by its HMAC) until one fails. */
static int secret_each(struct cs_request *req, const char *role, secret_fn fn, void *ctx)
{
	char prefix[300];
	snprintf(prefix, sizeof prefix, "secret_id/%s/", role);
	struct cs_strv keys = {0};
	int rc = cs_view_list(req, prefix, &keys);
	for (size_t i = 0; !rc && i < keys.n; i++) {
		char key[400];
		cJSON *e = NULL;
		secret_key(key, sizeof key, role, keys.v[i]);
		rc = cs_tokenutil_get_opt(req, key, &e);
		if (!rc && e)
			rc = fn(req, role, keys.v[i], e, ctx);
		cJSON_Delete(e);
	}
	cs_strv_free(&keys);
	return rc;
}

/* ---------------------------------------------------------------- roles */

static int role_exists(struct cs_request *req, bool *exists)
{
	const char *name;
	*exists = false;
	if (!role_name(req, &name))
		return 0;
	cJSON *r = NULL;
	int rc = role_get(req, name, &r);
	*exists = r != NULL;
	cJSON_Delete(r);
	return rc;
}

static int role_list(struct cs_request *req)
{
	struct cs_strv keys = {0};
	return cs_tokenutil_reply_keys(req, cs_view_list_page(req, "role/", &keys), &keys);
}

static int role_read(struct cs_request *req)
{
	const char *name;
	cJSON *r = NULL;
	int rc = role_find(req, &name, &r);
	if (rc)
		return rc;
	if (!r)
		return CS_ENOTFOUND;
	cJSON *d = cJSON_CreateObject();
	cJSON_AddBoolToObject(d, "bind_secret_id",
			      cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "bind_secret_id")));
	cJSON_AddBoolToObject(
	    d, "local_secret_ids",
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "local_secret_ids")));
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(r, "secret_id_bound_cidrs");
	cJSON_AddItemToObject(d, "secret_id_bound_cidrs",
			      c ? cJSON_Duplicate(c, true) : cJSON_CreateArray());
	cJSON_AddNumberToObject(d, "secret_id_num_uses", cs_tokenutil_num(r, "secret_id_num_uses"));
	cJSON_AddNumberToObject(d, "secret_id_ttl", cs_tokenutil_num(r, "secret_id_ttl"));
	cs_tokenutil_read(r, d);
	cJSON_Delete(r);
	cs_req_set_data(req, d);
	return 0;
}

/* Point role `name` at `role_id` (refusing one that another role uses). */
static int set_role_id(struct cs_request *req, const char *name, cJSON *role, const char *role_id)
{
	if (strlen(role_id) > 512)
		return cs_req_error(req, CS_EINVAL, "role_id too long");
	const char *old = cs_tokenutil_str(role, "role_id");
	if (strcmp(old, role_id) == 0)
		return 0;
	char *owner = NULL;
	int rc = role_of_id(req, role_id, &owner);
	if (!rc && owner && strcmp(owner, name) != 0)
		rc = cs_req_error(req, CS_EINVAL, "role_id already in use");
	free(owner);
	if (!rc && *old)
		rc = unindex_role_id(req, old);
	if (!rc)
		rc = index_role_id(req, role_id, name);
	if (!rc)
		cs_tokenutil_set(role, "role_id", cJSON_CreateString(role_id));
	return rc;
}

static int role_write(struct cs_request *req)
{
	const char *name;
	cJSON *r = NULL;
	int rc = role_find(req, &name, &r);
	if (rc)
		return rc;
	bool is_new = r == NULL;
	if (is_new) {
		r = cJSON_CreateObject();
		cJSON_AddBoolToObject(r, "bind_secret_id", true);
		cJSON_AddItemToObject(r, "secret_id_bound_cidrs", cJSON_CreateArray());
		cJSON_AddNumberToObject(r, "secret_id_num_uses", 0);
		cJSON_AddNumberToObject(r, "secret_id_ttl", 0);
		cJSON_AddBoolToObject(r, "local_secret_ids",
				      cs_req_bool(req, "enable_local_secret_ids", false));
	}
	const cJSON *v;
	if ((v = cs_req_get(req, "bind_secret_id")))
		cs_tokenutil_set(r, "bind_secret_id", cJSON_CreateBool(cJSON_IsTrue(v)));
	if ((v = cs_req_get(req, "secret_id_bound_cidrs")) ||
	    (v = cs_req_get(req, "bound_cidr_list"))) {
		if ((rc = cs_tokenutil_check_cidrs(req, v, "secret_id_bound_cidrs")))
			goto out;
		cs_tokenutil_set(r, "secret_id_bound_cidrs", cJSON_Duplicate(v, true));
	}
	if (cs_req_has(req, "secret_id_num_uses")) {
		int64_t n = cs_req_int(req, "secret_id_num_uses", 0);
		if (n < 0) {
			rc = cs_req_error(req, CS_EINVAL, "secret_id_num_uses cannot be negative");
			goto out;
		}
		cs_tokenutil_set(r, "secret_id_num_uses", cJSON_CreateNumber((double)n));
	}
	if (cs_req_has(req, "secret_id_ttl")) {
		int64_t t = cs_req_int(req, "secret_id_ttl", 0);
		if (t < 0) {
			rc = cs_req_error(req, CS_EINVAL, "secret_id_ttl cannot be negative");
			goto out;
		}
		cs_tokenutil_set(r, "secret_id_ttl", cJSON_CreateNumber((double)t));
	}
	if ((rc = cs_tokenutil_update(req, r, is_new)))
		goto out;
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "bind_secret_id")) &&
	    cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "secret_id_bound_cidrs")) == 0 &&
	    cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "token_bound_cidrs")) == 0) {
		rc = cs_req_error(req, CS_EINVAL,
				  "at least one constraint should be enabled on the role");
		goto out;
	}
	const char *rid = cs_req_str(req, "role_id", NULL);
	if (rid && *rid) {
		rc = set_role_id(req, name, r, rid);
	} else if (is_new) {
		char uuid[37];
		cs_uuid(uuid);
		rc = set_role_id(req, name, r, uuid);
	}
	if (!rc)
		rc = role_put(req, name, r);
out:
	cJSON_Delete(r);
	return rc;
}

static int secret_delete_each(struct cs_request *req, const char *role, const char *h,
			      const cJSON *entry, void *ctx)
{
	(void)ctx;
	return secret_delete(req, role, h, entry);
}

static int role_delete(struct cs_request *req)
{
	const char *name;
	cJSON *r = NULL;
	int rc = role_find(req, &name, &r);
	if (rc || !r)
		return rc;
	rc = secret_each(req, name, secret_delete_each, NULL);
	if (!rc && *cs_tokenutil_str(r, "role_id"))
		rc = unindex_role_id(req, cs_tokenutil_str(r, "role_id"));
	if (!rc) {
		char key[300];
		snprintf(key, sizeof key, "role/%s", name);
		rc = cs_view_delete(req, key);
	}
	cJSON_Delete(r);
	return rc;
}

static int roleid_read(struct cs_request *req)
{
	const char *name;
	cJSON *r = NULL;
	int rc = role_find(req, &name, &r);
	if (rc)
		return rc;
	if (!r)
		return CS_ENOTFOUND;
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "role_id", cs_tokenutil_str(r, "role_id"));
	cJSON_Delete(r);
	cs_req_set_data(req, d);
	return 0;
}

static int roleid_write(struct cs_request *req)
{
	const char *name;
	cJSON *r = NULL;
	const char *rid = cs_req_str(req, "role_id", ""); /* required by the table */
	int rc = role_must(req, &name, &r);
	if (!rc)
		rc = set_role_id(req, name, r, rid);
	if (!rc)
		rc = role_put(req, name, r);
	cJSON_Delete(r);
	return rc;
}

/* ---------------------------------------------------------------- secret ids */

/* metadata: a JSON-encoded string map (hvac, the CLI), an object, or null/absent. */
static int parse_metadata(struct cs_request *req, cJSON **out)
{
	const cJSON *v = cs_req_get(req, "metadata");
	cJSON *m = NULL;
	if (!v || cJSON_IsNull(v) || (cJSON_IsString(v) && !*v->valuestring))
		m = cJSON_CreateObject();
	else if (cJSON_IsString(v))
		m = cJSON_Parse(v->valuestring);
	else if (cJSON_IsObject(v))
		m = cJSON_Duplicate(v, true);
	bool ok = cJSON_IsObject(m);
	const cJSON *e;
	cJSON_ArrayForEach(e, m) ok &= cJSON_IsString(e) != 0;
	if (!ok) {
		cJSON_Delete(m);
		return cs_req_error(req, CS_EINVAL,
				    "failed to parse metadata: must be a map of strings");
	}
	*out = m;
	return 0;
}

/* Every CIDR of `list` within one of `outer` (when outer is not empty). */
static int check_within(struct cs_request *req, const cJSON *list, const cJSON *outer,
			const char *what)
{
	if (cJSON_GetArraySize(outer) == 0)
		return 0;
	const cJSON *c;
	cJSON_ArrayForEach(c, list)
	{
		bool in = false;
		const cJSON *o;
		cJSON_ArrayForEach(o, outer) in |=
		    cs_tokenutil_cidr_within(c->valuestring, o->valuestring);
		if (!in)
			return cs_req_error(req, CS_EINVAL,
					    "failed to verify the CIDR restrictions set on the "
					    "secret ID: %s %s is not within the role's",
					    what, c->valuestring);
	}
	return 0;
}

/* Store a new secret id (generated or custom) for the role named by the path. */
static int secret_create(struct cs_request *req, const char *secret_id)
{
	const char *name;
	cJSON *r = NULL, *meta = NULL, *e = NULL;
	int rc = role_must(req, &name, &r);
	if (rc)
		return rc;
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "bind_secret_id"))) {
		rc = cs_req_error(req, CS_EINVAL, "bind_secret_id is not set on the role");
		goto out;
	}
	if ((rc = parse_metadata(req, &meta)))
		goto out;
	const cJSON *cidrs = cs_req_get(req, "cidr_list");
	const cJSON *tcidrs = cs_req_get(req, "token_bound_cidrs");
	if ((rc = cs_tokenutil_check_cidrs(req, cidrs, "cidr_list")) ||
	    (rc = cs_tokenutil_check_cidrs(req, tcidrs, "token_bound_cidrs")) ||
	    (rc = check_within(req, cidrs,
			       cJSON_GetObjectItemCaseSensitive(r, "secret_id_bound_cidrs"),
			       "cidr_list")) ||
	    (rc =
		 check_within(req, tcidrs, cJSON_GetObjectItemCaseSensitive(r, "token_bound_cidrs"),
			      "token_bound_cidrs")))
		goto out;
	int64_t ttl = 0, uses = 0;
	const char *err = NULL;
	if (cs_approle_secret_limits((int64_t)cs_tokenutil_num(r, "secret_id_ttl"),
				     (int64_t)cs_tokenutil_num(r, "secret_id_num_uses"),
				     cs_req_int(req, "ttl", 0), cs_req_int(req, "num_uses", 0),
				     &ttl, &uses, &err)) {
		rc = cs_req_error(req, CS_EINVAL, "%s", err);
		goto out;
	}
	char h[65], key[400];
	if ((rc = hmac_of(req, secret_id, h)))
		goto out;
	secret_key(key, sizeof key, name, h);
	if ((rc = cs_tokenutil_get_opt(req, key, &e)))
		goto out;
	if (e) {
		rc = cs_req_error(req, CS_EINVAL, "SecretID is already registered");
		goto out;
	}
	char accessor[37], akey[100];
	cs_uuid(accessor);
	if ((rc = index_key(req, "accessor", accessor, akey)))
		goto out;
	int64_t now = now_s();
	e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "secret_id_accessor", accessor);
	cJSON_AddNumberToObject(e, "creation_time", (double)now);
	cJSON_AddNumberToObject(e, "last_updated_time", (double)now);
	cJSON_AddNumberToObject(e, "expiration_time", ttl > 0 ? (double)(now + ttl) : 0);
	cJSON_AddNumberToObject(e, "secret_id_ttl", (double)ttl);
	cJSON_AddNumberToObject(e, "secret_id_num_uses", (double)uses);
	cJSON_AddItemToObject(e, "cidr_list",
			      cidrs ? cJSON_Duplicate(cidrs, true) : cJSON_CreateArray());
	cJSON_AddItemToObject(e, "token_bound_cidrs",
			      tcidrs ? cJSON_Duplicate(tcidrs, true) : cJSON_CreateArray());
	cJSON_AddItemToObject(e, "metadata", meta);
	meta = NULL;
	if ((rc = cs_view_put_json(req, key, e)))
		goto out;
	cJSON *a = cJSON_CreateObject();
	cJSON_AddStringToObject(a, "role", name);
	cJSON_AddStringToObject(a, "secret_id_hmac", h);
	rc = cs_view_put_json(req, akey, a);
	cJSON_Delete(a);
	if (rc)
		goto out;
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "secret_id", secret_id);
	cJSON_AddStringToObject(d, "secret_id_accessor", accessor);
	cJSON_AddNumberToObject(d, "secret_id_ttl", (double)ttl);
	cJSON_AddNumberToObject(d, "secret_id_num_uses", (double)uses);
	cs_req_set_data(req, d);
out:
	cJSON_Delete(meta);
	cJSON_Delete(e);
	cJSON_Delete(r);
	return rc;
}

static int secret_generate(struct cs_request *req)
{
	char sid[37];
	cs_uuid(sid);
	int rc = secret_create(req, sid);
	cs_zero(sid, sizeof sid);
	return rc;
}

static int secret_custom(struct cs_request *req)
{
	const char *sid = cs_req_str(req, "secret_id", ""); /* required by the table */
	if (strlen(sid) > 1024)
		return cs_req_error(req, CS_EINVAL, "secret_id too long");
	return secret_create(req, sid);
}

static int secret_list_each(struct cs_request *req, const char *role, const char *h,
			    const cJSON *entry, void *ctx)
{
	(void)req;
	(void)role;
	(void)h;
	cJSON_AddItemToArray(ctx,
			     cJSON_CreateString(cs_tokenutil_str(entry, "secret_id_accessor")));
	return 0;
}

static int secret_list(struct cs_request *req)
{
	const char *name;
	cJSON *r = NULL;
	int rc = role_must(req, &name, &r);
	cJSON_Delete(r);
	if (rc)
		return rc;
	cJSON *arr = cJSON_CreateArray();
	rc = secret_each(req, name, secret_list_each, arr);
	if (!rc && cJSON_GetArraySize(arr) == 0)
		rc = CS_ENOTFOUND;
	if (rc) {
		cJSON_Delete(arr);
		return rc;
	}
	cJSON *d = cJSON_CreateObject();
	cJSON_AddItemToObject(d, "keys", arr);
	cs_req_set_data(req, d);
	return 0;
}

static void add_time(cJSON *d, const char *name, double unix_s)
{
	char t[64];
	cs_format_time((int64_t)unix_s * 1000000000LL, t, sizeof t);
	cJSON_AddStringToObject(d, name, t);
}

static cJSON *secret_info(const cJSON *e)
{
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "secret_id_accessor", cs_tokenutil_str(e, "secret_id_accessor"));
	add_time(d, "creation_time", cs_tokenutil_num(e, "creation_time"));
	add_time(d, "last_updated_time", cs_tokenutil_num(e, "last_updated_time"));
	if (cs_tokenutil_num(e, "expiration_time") > 0)
		add_time(d, "expiration_time", cs_tokenutil_num(e, "expiration_time"));
	else
		cJSON_AddStringToObject(d, "expiration_time", "0001-01-01T00:00:00Z");
	cJSON_AddNumberToObject(d, "secret_id_ttl", cs_tokenutil_num(e, "secret_id_ttl"));
	cJSON_AddNumberToObject(d, "secret_id_num_uses", cs_tokenutil_num(e, "secret_id_num_uses"));
	static const char *same[] = {"cidr_list", "token_bound_cidrs", "metadata"};
	for (size_t i = 0; i < CS_ARRAY_LEN(same); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, same[i]);
		cJSON_AddItemToObject(d, same[i],
				      v ? cJSON_Duplicate(v, true) : cJSON_CreateNull());
	}
	return d;
}

/* The entry of the role's secret id given in the body (by value), or NULL. */
static int secret_by_value(struct cs_request *req, const char **name, char h[65], cJSON **e)
{
	cJSON *r = NULL;
	*e = NULL;
	/* Required by the table, which the framework checks on writes only: the DELETE form
	 * of secret-id/destroy is checked here. */
	const char *sid = cs_req_str(req, "secret_id", "");
	if (!*sid)
		return cs_req_error(req, CS_EINVAL, "missing required field \"secret_id\"");
	int rc = role_must(req, name, &r);
	cJSON_Delete(r);
	if (!rc)
		rc = hmac_of(req, sid, h);
	if (!rc) {
		char key[400];
		secret_key(key, sizeof key, *name, h);
		rc = cs_tokenutil_get_opt(req, key, e);
	}
	return rc;
}

/* The entry of the role's secret id given by accessor, or NULL. */
static int secret_by_accessor(struct cs_request *req, const char **name, char h[65], cJSON **e)
{
	cJSON *r = NULL, *a = NULL;
	*e = NULL;
	/* As in secret_by_value: here for the DELETE form of secret-id-accessor/destroy. */
	const char *acc = cs_req_str(req, "secret_id_accessor", "");
	if (!*acc)
		return cs_req_error(req, CS_EINVAL,
				    "missing required field \"secret_id_accessor\"");
	int rc = role_must(req, name, &r);
	cJSON_Delete(r);
	char akey[100], key[400];
	if (!rc)
		rc = index_key(req, "accessor", acc, akey);
	if (!rc)
		rc = cs_tokenutil_get_opt(req, akey, &a);
	/* An accessor of another role is not this role's. */
	if (!rc && a && strcmp(cs_tokenutil_str(a, "role"), *name) == 0 &&
	    strlen(cs_tokenutil_str(a, "secret_id_hmac")) == 64) {
		memcpy(h, cs_tokenutil_str(a, "secret_id_hmac"), 65);
		secret_key(key, sizeof key, *name, h);
		rc = cs_tokenutil_get_opt(req, key, e);
	}
	cJSON_Delete(a);
	return rc;
}

/*
 * Look up (reply with its info) or destroy the role's secret id named in the body, by value
 * or by accessor. An unknown secret id is a 204, as Vault; an unknown accessor an error
 * (404 for a lookup).
 */
static int secret_act(struct cs_request *req, bool by_accessor, bool destroy)
{
	const char *name;
	char h[65];
	cJSON *e = NULL;
	int rc = by_accessor ? secret_by_accessor(req, &name, h, &e)
			     : secret_by_value(req, &name, h, &e);
	if (!rc && !e && by_accessor) {
		if (!destroy)
			req->status = 404;
		rc = cs_req_error(req, destroy ? CS_EINVAL : CS_ENOTFOUND,
				  "failed to find accessor entry for secret_id_accessor: \"%s\"",
				  cs_req_str(req, "secret_id_accessor", ""));
	}
	if (!rc && e) {
		if (destroy)
			rc = secret_delete(req, name, h, e);
		else
			cs_req_set_data(req, secret_info(e));
	}
	cJSON_Delete(e);
	return rc;
}

static int secret_lookup(struct cs_request *req)
{
	return secret_act(req, false, false);
}

static int secret_destroy(struct cs_request *req)
{
	return secret_act(req, false, true);
}

static int accessor_lookup(struct cs_request *req)
{
	return secret_act(req, true, false);
}

static int accessor_destroy(struct cs_request *req)
{
	return secret_act(req, true, true);
}

/* ---------------------------------------------------------------- login */

/* Check and spend one use of the secret id; fills *tcidrs (borrowed from *e) and *meta. */
static int use_secret(struct cs_request *req, const char *name, const char *remote, cJSON **e_out)
{
	/* By hand, not in the table: login needs a secret id only when the role binds one
	 * (bind_secret_id), which only the role read here tells. */
	const char *sid = cs_req_str(req, "secret_id", "");
	if (!*sid)
		return cs_req_error(req, CS_EINVAL, "missing secret_id");
	char h[65], key[400];
	cJSON *e = NULL;
	int rc = hmac_of(req, sid, h);
	if (!rc) {
		secret_key(key, sizeof key, name, h);
		rc = cs_tokenutil_get_opt(req, key, &e);
	}
	if (rc)
		return rc;
	if (!e)
		return cs_req_error(req, CS_EINVAL, INVALID_SECRET);
	int64_t now = now_s();
	enum cs_approle_use use =
	    cs_approle_secret_use(now, (int64_t)cs_tokenutil_num(e, "expiration_time"),
				  (int64_t)cs_tokenutil_num(e, "secret_id_num_uses"));
	if (use == CS_APPROLE_EXPIRED)
		rc = cs_req_error(req, CS_EINVAL, INVALID_SECRET);
	else if (!cs_tokenutil_cidr_list_ok(cJSON_GetObjectItemCaseSensitive(e, "cidr_list"),
					    remote))
		rc = cs_req_error(req, CS_EINVAL,
				  "source address \"%s\" unauthorized through CIDR restrictions "
				  "on the secret ID",
				  remote);
	else if (use == CS_APPROLE_LAST_USE)
		rc = secret_delete(req, name, h, e);
	else if (use == CS_APPROLE_DECREMENT) {
		cs_tokenutil_set(e, "secret_id_num_uses",
				 cJSON_CreateNumber(cs_tokenutil_num(e, "secret_id_num_uses") - 1));
		cs_tokenutil_set(e, "last_updated_time", cJSON_CreateNumber((double)now));
		rc = cs_view_put_json(req, key, e);
	}
	if (rc) {
		cJSON_Delete(e);
		return rc;
	}
	*e_out = e;
	return 0;
}

static int login(struct cs_request *req)
{
	const char *rid = cs_req_str(req, "role_id", ""); /* required by the table */
	char *name = NULL;
	cJSON *r = NULL, *e = NULL, *meta = NULL;
	const char *remote = cs_tokenutil_remote(req);
	int rc = role_of_id(req, rid, &name);
	if (!rc && name)
		rc = role_get(req, name, &r);
	if (!rc && !r)
		rc = cs_req_error(req, CS_EINVAL, INVALID_ROLE);
	if (rc)
		goto out;
	if (!cs_tokenutil_cidr_list_ok(cJSON_GetObjectItemCaseSensitive(r, "secret_id_bound_cidrs"),
				       remote)) {
		rc = cs_req_error(req, CS_EINVAL,
				  "source address \"%s\" unauthorized by CIDR restrictions on the "
				  "role",
				  remote);
		goto out;
	}
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "bind_secret_id")) &&
	    (rc = use_secret(req, name, remote, &e)))
		goto out;
	/* The secret id's token_bound_cidrs, when set, override the role's. */
	const cJSON *sc = cJSON_GetObjectItemCaseSensitive(e, "token_bound_cidrs");
	if (cJSON_GetArraySize(sc) > 0)
		cs_tokenutil_set(r, "token_bound_cidrs", cJSON_Duplicate(sc, true));
	if (!cs_tokenutil_cidr_list_ok(cJSON_GetObjectItemCaseSensitive(r, "token_bound_cidrs"),
				       remote)) {
		rc = cs_req_error(req, CS_EPERM, "permission denied");
		goto out;
	}
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "metadata");
	meta = cJSON_IsObject(m) ? cJSON_Duplicate(m, true) : cJSON_CreateObject();
	cs_tokenutil_set(meta, "role_name", cJSON_CreateString(name));
	char path[400];
	snprintf(path, sizeof path, "%slogin", cs_req_mount_path(req));
	/* Vault: the alias is the role id, its metadata the token's. */
	rc = cs_tokenutil_issue_alias(req, r, meta, "", path, rid, meta);
out:
	free(name);
	cJSON_Delete(meta);
	cJSON_Delete(e);
	cJSON_Delete(r);
	return rc;
}

/* ---------------------------------------------------------------- table */

static const struct cs_field role_fields[] = {
    {.name = "role_name", .type = CS_FIELD_STRING, .desc = "role name"},
    {.name = "bind_secret_id", .type = CS_FIELD_BOOL, .desc = "require a secret id at login"},
    {.name = "secret_id_bound_cidrs", .type = CS_FIELD_STRLIST, .desc = "CIDRs allowed to log in"},
    {.name = "bound_cidr_list",
     .type = CS_FIELD_STRLIST,
     .desc = "deprecated: secret_id_bound_cidrs"},
    {.name = "secret_id_num_uses",
     .type = CS_FIELD_INT,
     .desc = "uses of each secret id (0: unlimited)"},
    {.name = "secret_id_ttl",
     .type = CS_FIELD_DURATION,
     .desc = "lifetime of each secret id (0: unlimited)"},
    {.name = "enable_local_secret_ids",
     .type = CS_FIELD_BOOL,
     .desc = "secret ids local to the cluster"},
    {.name = "role_id", .type = CS_FIELD_STRING, .desc = "custom role id"},
    CS_TOKENUTIL_FIELDS,
    {.name = NULL},
};

static const struct cs_field roleid_fields[] = {
    {.name = "role_name", .type = CS_FIELD_STRING, .desc = "role name"},
    {.name = "role_id", .type = CS_FIELD_STRING, .desc = "custom role id", .required = true},
    {.name = NULL},
};

/* The options of a new secret id, shared by secret-id and custom-secret-id. */
#define SECRET_ID_OPTIONS                                                                          \
	{.name = "metadata",                                                                       \
	 .type = CS_FIELD_ANY,                                                                     \
	 .desc = "JSON map of strings for the token metadata"},                                    \
	    {.name = "cidr_list",                                                                  \
	     .type = CS_FIELD_STRLIST,                                                             \
	     .desc = "CIDRs allowed to use this secret id"},                                       \
	    {.name = "token_bound_cidrs",                                                          \
	     .type = CS_FIELD_STRLIST,                                                             \
	     .desc = "CIDRs allowed to use issued tokens"},                                        \
	    {.name = "ttl",                                                                        \
	     .type = CS_FIELD_DURATION,                                                            \
	     .desc = "lifetime (at most the role's secret_id_ttl)"},                               \
	    {.name = "num_uses",                                                                   \
	     .type = CS_FIELD_INT,                                                                 \
	     .desc = "uses (at most the role's secret_id_num_uses)"},                              \
	{                                                                                          \
		.name = "wrap_ttl", .type = CS_FIELD_ANY, .desc = "ignored"                        \
	}

static const struct cs_field secret_fields[] = {
    {.name = "role_name", .type = CS_FIELD_STRING, .desc = "role name"},
    {.name = "secret_id", .type = CS_FIELD_STRING, .desc = "custom secret id"},
    SECRET_ID_OPTIONS,
    {.name = NULL},
};

static const struct cs_field custom_secret_fields[] = {
    {.name = "role_name", .type = CS_FIELD_STRING, .desc = "role name"},
    {.name = "secret_id", .type = CS_FIELD_STRING, .desc = "the secret id", .required = true},
    SECRET_ID_OPTIONS,
    {.name = NULL},
};

static const struct cs_field by_value_fields[] = {
    {.name = "role_name", .type = CS_FIELD_STRING, .desc = "role name"},
    {.name = "secret_id", .type = CS_FIELD_STRING, .desc = "the secret id", .required = true},
    {.name = NULL},
};

static const struct cs_field by_accessor_fields[] = {
    {.name = "role_name", .type = CS_FIELD_STRING, .desc = "role name"},
    {.name = "secret_id_accessor",
     .type = CS_FIELD_STRING,
     .desc = "the secret id's accessor",
     .required = true},
    {.name = NULL},
};

static const struct cs_field login_fields[] = {
    {.name = "role_id", .type = CS_FIELD_STRING, .desc = "role id", .required = true},
    /* Needed only when the role binds a secret id: checked by the handler. */
    {.name = "secret_id", .type = CS_FIELD_STRING, .desc = "secret id"},
    {.name = NULL},
};

static const struct cs_path approle_paths[] = {
    {.pattern = "login",
     .fields = login_fields,
     .ops = {[CS_OP_UPDATE] = login},
     .flags = CS_PATH_UNAUTH,
     .synopsis = "log in with a role id and secret id"},
    {.pattern = "role", .ops = {[CS_OP_LIST] = role_list}, .synopsis = "list roles"},
    {.pattern = "role/{role_name}/role-id",
     .fields = roleid_fields,
     .ops = {[CS_OP_READ] = roleid_read, [CS_OP_UPDATE] = roleid_write},
     .synopsis = "read or set the role id"},
    {.pattern = "role/{role_name}/secret-id/lookup",
     .fields = by_value_fields,
     .ops = {[CS_OP_UPDATE] = secret_lookup},
     .synopsis = "look a secret id up"},
    {.pattern = "role/{role_name}/secret-id/destroy",
     .fields = by_value_fields,
     .ops = {[CS_OP_UPDATE] = secret_destroy, [CS_OP_DELETE] = secret_destroy},
     .synopsis = "destroy a secret id"},
    {.pattern = "role/{role_name}/secret-id-accessor/lookup",
     .fields = by_accessor_fields,
     .ops = {[CS_OP_UPDATE] = accessor_lookup},
     .synopsis = "look a secret id up by accessor"},
    {.pattern = "role/{role_name}/secret-id-accessor/destroy",
     .fields = by_accessor_fields,
     .ops = {[CS_OP_UPDATE] = accessor_destroy, [CS_OP_DELETE] = accessor_destroy},
     .synopsis = "destroy a secret id by accessor"},
    {.pattern = "role/{role_name}/secret-id",
     .fields = secret_fields,
     .ops = {[CS_OP_UPDATE] = secret_generate, [CS_OP_LIST] = secret_list},
     .synopsis = "generate a secret id, or list accessors"},
    {.pattern = "role/{role_name}/custom-secret-id",
     .fields = custom_secret_fields,
     .ops = {[CS_OP_UPDATE] = secret_custom},
     .synopsis = "register a given secret id"},
    {.pattern = "role/{role_name}",
     .fields = role_fields,
     .ops = {[CS_OP_READ] = role_read,
	     [CS_OP_CREATE] = role_write,
	     [CS_OP_UPDATE] = role_write,
	     [CS_OP_DELETE] = role_delete},
     .exists = role_exists,
     .synopsis = "manage roles"},
};

const struct cs_backend cs_approle_backend = {
    .type = "approle",
    .is_auth = true,
    .paths = approle_paths,
    .n_paths = CS_ARRAY_LEN(approle_paths),
};

void cs_approle_register(void)
{
	cs_backend_register(&cs_approle_backend);
}
