/*
 * sys/policies/password: Vault's password policies (see pwpolicy_sys.h).
 *
 * A policy is stored as the text the client sent (after an optional base64 decoding, as
 * Vault does), once it parsed and passed every check; each generation parses it again,
 * so nothing is cached and nothing goes stale across nodes. Names are Vault's: any
 * non-empty path, slashes included ("db/prod"), so the rows capture the rest of the
 * path. No sudo: Vault guards these paths with the ACL only.
 */
#include "server/pwpolicy_sys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/pwpolicy.h"
#include "lib/util.h"

#define KEY_PREFIX CS_PWPOLICY_KEY_PREFIX

/* The captured name, or a 400 as Vault answers it. */
static int policy_name(struct cs_request *req, const char **out)
{
	const char *n = cs_req_capture(req, "name");
	if (!n || !*n)
		return cs_req_error(req, CS_EINVAL, "missing policy name");
	size_t len = strlen(n);
	if (len > CS_PWPOLICY_MAX_NAME)
		return cs_req_error(req, CS_EINVAL, "policy name is longer than %d bytes",
				    CS_PWPOLICY_MAX_NAME);
	if (n[len - 1] == '/')
		return cs_req_error(req, CS_EINVAL, "policy name cannot end with '/'");
	*out = n;
	return 0;
}

static void make_key(char *key, size_t keylen, const char *name)
{
	snprintf(key, keylen, KEY_PREFIX "%s", name);
}

/* The stored text of policy `name` (malloc'd), or CS_ENOTFOUND. */
static int load_text(struct cs_txn *txn, const char *name, char **text)
{
	char key[sizeof KEY_PREFIX + CS_PWPOLICY_MAX_NAME];
	make_key(key, sizeof key, name);
	struct cs_buf raw = CS_BUF_INIT;
	int rc = cs_txn_get(txn, key, &raw);
	if (rc) {
		cs_buf_free_secure(&raw);
		return rc;
	}
	cJSON *o = cJSON_ParseWithLength(raw.data, raw.len);
	cs_buf_free_secure(&raw);
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "policy");
	*text = cJSON_IsString(p) ? strdup(p->valuestring) : NULL;
	cJSON_Delete(o);
	return *text ? 0 : CS_EINTERNAL;
}

int cs_pwpolicy_generate_named(struct cs_request *req, const char *name, char **out)
{
	*out = NULL;
	if (strlen(name) > CS_PWPOLICY_MAX_NAME)
		return CS_ENOTFOUND; /* could never have been stored */
	char *text = NULL;
	int rc = load_text(&req->txn, name, &text);
	if (rc)
		return rc;
	struct cs_pwpolicy *p = NULL;
	char err[256];
	rc = cs_pwpolicy_parse(text, strlen(text), &p, err, sizeof err);
	free(text);
	if (rc)
		return cs_req_error(req, CS_EINTERNAL,
				    "stored password policy configuration failed to parse");
	rc = cs_pwpolicy_generate(p, out);
	cs_pwpolicy_free(p);
	return rc;
}

/* ------------------------------------------------------------------ handlers */

static int pw_list(struct cs_request *req)
{
	struct cs_strv keys = {0};
	int rc = cs_txn_scan(&req->txn, KEY_PREFIX, &keys);
	if (!rc && keys.n == 0)
		rc = CS_ENOTFOUND; /* Vault answers an empty LIST with 404 */
	if (!rc) {
		cJSON *d = cJSON_CreateObject();
		cJSON *a = cJSON_AddArrayToObject(d, "keys");
		for (size_t i = 0; i < keys.n; i++)
			cJSON_AddItemToArray(a, cJSON_CreateString(keys.v[i] + strlen(KEY_PREFIX)));
		cs_req_set_data(req, d);
	}
	cs_strv_free(&keys);
	return rc;
}

/* LIST reaches the name row with the '/' that LIST appends ("policies/password/" → an
 * empty name): that is the listing. Any other LIST is not an operation of a policy. */
static int pw_list_or_refuse(struct cs_request *req)
{
	const char *n = cs_req_capture(req, "name");
	if (n && *n)
		return cs_req_error(req, CS_EUNSUPPORTED, "unsupported operation");
	return pw_list(req);
}

static int pw_read(struct cs_request *req)
{
	const char *name;
	int rc = policy_name(req, &name);
	if (rc)
		return rc;
	char *text = NULL;
	rc = load_text(&req->txn, name, &text);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_ENOTFOUND, "policy does not exist");
	if (rc)
		return rc;
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "policy", text);
	free(text);
	cs_req_set_data(req, d);
	return 0;
}

static int pw_write(struct cs_request *req)
{
	const char *name;
	int rc = policy_name(req, &name);
	if (rc)
		return rc;
	const char *text = cs_req_str(req, "policy", "");
	if (!*text)
		return cs_req_error(req, CS_EINVAL, "missing policy");
	/* As Vault: a policy may be sent base64-encoded (Go's padded standard alphabet). */
	size_t len = strlen(text), dlen = 0;
	uint8_t *decoded = len % 4 == 0 ? cs_b64_decode(text, len, &dlen) : NULL;
	if (decoded && dlen) {
		text = (const char *)decoded;
		len = dlen;
	}
	struct cs_pwpolicy *p = NULL;
	char err[256];
	/* A NUL would cut the stored JSON string short of the text that was checked. */
	if (memchr(text, '\0', len))
		rc = cs_req_error(req, CS_EINVAL, "invalid password policy: NUL byte in policy");
	else if (cs_pwpolicy_parse(text, len, &p, err, sizeof err))
		rc = cs_req_error(req, CS_EINVAL, "invalid password policy: %s", err);
	cs_pwpolicy_free(p);
	if (!rc) {
		cJSON *o = cJSON_CreateObject();
		char *copy = strndup(text, len);
		cJSON_AddStringToObject(o, "policy", copy ? copy : "");
		char *json = copy ? cJSON_PrintUnformatted(o) : NULL;
		cJSON_Delete(o);
		free(copy);
		char key[sizeof KEY_PREFIX + CS_PWPOLICY_MAX_NAME];
		make_key(key, sizeof key, name);
		rc = json ? cs_txn_put(&req->txn, key, json, strlen(json)) : CS_ENOMEM;
		free(json);
	}
	free(decoded);
	return rc;
}

static int pw_delete(struct cs_request *req)
{
	const char *name;
	int rc = policy_name(req, &name);
	if (rc)
		return rc;
	char key[sizeof KEY_PREFIX + CS_PWPOLICY_MAX_NAME];
	make_key(key, sizeof key, name);
	rc = cs_txn_delete(&req->txn, key);
	return rc == CS_ENOTFOUND ? 0 : rc;
}

static int pw_generate(struct cs_request *req)
{
	const char *name;
	int rc = policy_name(req, &name);
	if (rc)
		return rc;
	char *pw = NULL;
	rc = cs_pwpolicy_generate_named(req, name, &pw);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_ENOTFOUND, "policy does not exist");
	if (rc)
		return rc;
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "password", pw);
	cs_zero(pw, strlen(pw));
	free(pw);
	cs_req_set_data(req, d);
	return 0;
}

/* ------------------------------------------------------------------ table */

static const struct cs_field name_fields[] = {
    {.name = "name", .type = CS_FIELD_STRING, .desc = "The name of the password policy."},
    {.name = NULL},
};

static const struct cs_field policy_fields[] = {
    {.name = "name", .type = CS_FIELD_STRING, .desc = "The name of the password policy."},
    {.name = "policy",
     .type = CS_FIELD_STRING,
     .desc = "The password policy (HCL or JSON, optionally base64)"},
    {.name = NULL},
};

/* Specific to general: the generate row before the name row that would swallow it. */
static const struct cs_path pwpolicy_paths[] = {
    {.pattern = "policies/password",
     .ops = {[CS_OP_LIST] = pw_list},
     .synopsis = "List the existing password policies."},
    {.pattern = "policies/password/{name*}/generate",
     .fields = name_fields,
     .ops = {[CS_OP_READ] = pw_generate},
     .synopsis = "Generate a password from an existing password policy."},
    {.pattern = "policies/password/{name*}",
     .fields = policy_fields,
     .ops = {[CS_OP_READ] = pw_read,
	     [CS_OP_UPDATE] = pw_write,
	     [CS_OP_DELETE] = pw_delete,
	     [CS_OP_LIST] = pw_list_or_refuse},
     .synopsis = "Read, Modify, or Delete a password policy."},
};

static const struct cs_password_policies hooks = {
    .generate = cs_pwpolicy_generate_named,
};

void cs_pwpolicy_register(struct cs_core *core)
{
	cs_core_set_password_policies(core, &hooks);
	cs_sys_set_paths(CS_SYS_PASSWORD_POLICY, pwpolicy_paths, CS_ARRAY_LEN(pwpolicy_paths));
}
