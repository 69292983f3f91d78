/*
 * auth/token/roles/<name> (see token_internal.h): the roles that create/<name> mints
 * tokens from, stored in the mount's view as roles/<name>.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/token.h"
#include "auth/token_internal.h"
#include "auth/tokenutil.h"
#include "lib/err.h"
#include "lib/util.h"

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

int cs_token_h_role_read(struct cs_request *req)
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

int cs_token_h_role_write(struct cs_request *req)
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
		cs_token_set_in_place(r, "token_period",
				      cJSON_CreateNumber((double)cs_req_int(req, "period", 0)));
	if (cs_req_has(req, "explicit_max_ttl") && !cs_req_has(req, "token_explicit_max_ttl"))
		cs_token_set_in_place(
		    r, "token_explicit_max_ttl",
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
					     ? cs_token_policy_set(v, false)
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

int cs_token_h_role_delete(struct cs_request *req)
{
	char key[300];
	snprintf(key, sizeof key, "roles/%s", cs_req_str(req, "role_name", ""));
	int rc = cs_view_delete(req, key);
	return rc == CS_ENOTFOUND ? 0 : rc;
}

int cs_token_h_role_list(struct cs_request *req)
{
	struct cs_strv v = {0};
	return cs_tokenutil_reply_keys(req, cs_view_list_page(req, "roles/", &v), &v);
}

int cs_token_role_exists(struct cs_request *req, bool *exists)
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
