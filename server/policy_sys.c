/*
 * The sys/ endpoints of ACL policies (sys/policy, sys/policies/acl, sys/capabilities*) and
 * the hooks the core calls for every non-root request (ACL, sudo, mount visibility).
 * policy/ keeps parsing, evaluation, storage and the cache; this is the HTTP side, which
 * belongs to server/ so that policy/ includes nothing above it.
 *
 * Request flow for the ACL hook: token entry → cs_policy_load (policy/store.h) →
 * cs_acl_allowed.
 */
#include "server/policy_sys.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/util.h"
#include "policy/store.h"
#include "policy/visibility.h"
#include "server/core.h"
#include "server/sys.h"

#define KEY_PREFIX   CS_POLICY_KEY_PREFIX
#define MAX_NAME_LEN CS_POLICY_MAX_NAME

#define DENIED_MSG "1 error occurred:\n\t* permission denied\n\n"

/* ------------------------------------------------------------------ ACL hook */

static enum cs_acl_op acl_op(enum cs_op op)
{
	switch (op) {
	case CS_OP_READ:
		return CS_ACL_READ;
	case CS_OP_CREATE:
		return CS_ACL_CREATE;
	case CS_OP_UPDATE:
		return CS_ACL_UPDATE;
	case CS_OP_DELETE:
		return CS_ACL_DELETE;
	case CS_OP_LIST:
		return CS_ACL_LIST;
	case CS_OP_PATCH:
	default:
		return CS_ACL_PATCH;
	}
}

int cs_policy_acl_hook(struct cs_request *req)
{
	if (req->root)
		return 0;
	if (!req->token_entry)
		return cs_req_error(req, CS_EPERM, DENIED_MSG);
	struct cs_polset ps;
	int rc = cs_policy_load(&req->txn, req->token_entry, &ps);
	if (rc)
		return rc;
	struct cs_acl_request ar = {
	    .op = acl_op(req->op),
	    .path = req->path,
	    .data = req->data,
	    .wrap_ttl = req->wrap_ttl,
	    .need_sudo = req->route && (req->route->flags & CS_PATH_SUDO),
	};
	bool ok = cs_acl_allowed(ps.v, ps.n, &ar);
	free(ps.v);
	return ok ? 0 : cs_req_error(req, CS_EPERM, DENIED_MSG);
}

/* ------------------------------------------------------------------ sys/policy */

/* The name from the path, trimmed and lower-cased, as Vault stores it. */
static char *req_name(struct cs_request *req)
{
	const char *n = cs_req_capture(req, "name");
	if (!n)
		n = "";
	while (isspace((unsigned char)*n))
		n++;
	char *s = strdup(n);
	if (!s)
		abort();
	size_t len = strlen(s);
	while (len && isspace((unsigned char)s[len - 1]))
		s[--len] = '\0';
	for (char *c = s; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	return s;
}

static int list_names(struct cs_request *req, cJSON **keys)
{
	struct cs_strv sv = {0};
	int rc = cs_txn_list(&req->txn, KEY_PREFIX, &sv);
	if (rc) {
		cs_strv_free(&sv);
		return rc;
	}
	cJSON *a = cJSON_CreateArray();
	bool have_default = false;
	for (size_t i = 0; i < sv.n; i++) {
		size_t l = strlen(sv.v[i]);
		if (l == 0 || sv.v[i][l - 1] == '/')
			continue;
		if (!have_default && strcmp(sv.v[i], "default") > 0) {
			/* Keep the list sorted with the built-in default in its place. */
			cJSON_AddItemToArray(a, cJSON_CreateString("default"));
			have_default = true;
		}
		if (strcmp(sv.v[i], "default") == 0)
			have_default = true;
		cJSON_AddItemToArray(a, cJSON_CreateString(sv.v[i]));
	}
	if (!have_default)
		cJSON_AddItemToArray(a, cJSON_CreateString("default"));
	cJSON_AddItemToArray(a, cJSON_CreateString("root"));
	cs_strv_free(&sv);
	*keys = a;
	return 0;
}

static int legacy_list(struct cs_request *req)
{
	cJSON *keys;
	int rc = list_names(req, &keys);
	if (rc)
		return rc;
	cJSON *d = cJSON_CreateObject();
	cJSON_AddItemToObject(d, "keys", keys);
	cJSON_AddItemToObject(d, "policies", cJSON_Duplicate(keys, true));
	cs_req_set_data(req, d);
	req->data_to_top = true;
	return 0;
}

static int acl_list(struct cs_request *req)
{
	cJSON *keys;
	int rc = list_names(req, &keys);
	if (rc)
		return rc;
	cJSON *d = cJSON_CreateObject();
	cJSON_AddItemToObject(d, "keys", keys);
	cs_req_set_data(req, d);
	return 0;
}

static int do_read(struct cs_request *req, const char *field, bool legacy)
{
	char *name = req_name(req);
	struct cs_buf raw = CS_BUF_INIT;
	int rc = 0;
	if (strcmp(name, "root") != 0) {
		rc = cs_policy_read_text(&req->txn, name, &raw);
		if (rc) {
			free(name);
			cs_buf_free_secure(&raw);
			return rc; /* CS_ENOTFOUND → 404 with an empty error list */
		}
	}
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "name", name);
	cJSON_AddStringToObject(d, field, raw.data ? raw.data : "");
	cs_buf_free_secure(&raw);
	free(name);
	cs_req_set_data(req, d);
	req->data_to_top = legacy;
	return 0;
}

static int legacy_read(struct cs_request *req)
{
	return do_read(req, "rules", true);
}

static int acl_read(struct cs_request *req)
{
	return do_read(req, "policy", false);
}

static int policy_write(struct cs_request *req)
{
	char *name = req_name(req);
	int rc = 0;
	if (!cs_policy_name_ok(name)) {
		rc = cs_req_error(req, CS_EINVAL, "invalid policy name \"%s\"", name);
		goto out;
	}
	if (strcmp(name, "root") == 0) {
		rc = cs_req_error(req, CS_EINVAL, "cannot update \"root\" policy");
		goto out;
	}
	const char *text = cs_req_str(req, "policy", NULL);
	if (!text || !*text)
		text = cs_req_str(req, "rules", "");
	if (!*text) {
		rc = cs_req_error(req, CS_EINVAL, "'policy' parameter not supplied or empty");
		goto out;
	}
	/* As Vault: a policy may be sent base64-encoded. */
	size_t dlen = 0;
	uint8_t *decoded = cs_b64_decode(text, strlen(text), &dlen);
	const char *src = decoded && dlen ? (const char *)decoded : text;
	size_t slen = decoded && dlen ? dlen : strlen(text);
	char err[600];
	struct cs_policy *p = NULL;
	if (cs_policy_parse(src, slen, &p, err, sizeof err)) {
		free(decoded);
		rc = cs_req_error(req, CS_EINVAL, "%s", err);
		goto out;
	}
	cs_policy_free(p);
	char key[sizeof KEY_PREFIX + MAX_NAME_LEN];
	snprintf(key, sizeof key, KEY_PREFIX "%s", name);
	/* The next lookup re-reads the text and re-parses it: nothing to invalidate. */
	rc = cs_txn_put(&req->txn, key, src, slen);
	free(decoded);
out:
	free(name);
	return rc;
}

static int policy_delete(struct cs_request *req)
{
	char *name = req_name(req);
	int rc = 0;
	if (strcmp(name, "root") == 0 || strcmp(name, "default") == 0) {
		rc = cs_req_error(req, CS_EINVAL, "cannot delete \"%s\" policy", name);
	} else if (cs_policy_name_ok(name)) {
		char key[sizeof KEY_PREFIX + MAX_NAME_LEN];
		snprintf(key, sizeof key, KEY_PREFIX "%s", name);
		rc = cs_txn_delete(&req->txn, key);
		if (rc == CS_ENOTFOUND)
			rc = 0;
	}
	free(name);
	return rc;
}

/* ------------------------------------------------------------------ capabilities */

static cs_policy_accessor_lookup_fn accessor_lookup;

void cs_policy_set_accessor_lookup(cs_policy_accessor_lookup_fn fn)
{
	accessor_lookup = fn;
}

/* Fill the response for `entry` (borrowed; NULL = no such token, handled by callers). */
/* cs_req_has_sudo for non-root tokens: sudo on the request path, and no deny. */
static bool sudo_hook(struct cs_request *req)
{
	struct cs_polset ps = {0};
	if (cs_policy_load(&req->txn, req->token_entry, &ps))
		return false;
	unsigned caps = cs_acl_capabilities(ps.v, ps.n, req->path);
	free(ps.v);
	return (caps & CS_CAP_SUDO) && !(caps & CS_CAP_DENY);
}

/* cs_req_mount_visible for non-root tokens (sys/internal/ui/mounts). */
static bool mount_visible_hook(struct cs_request *req, const char *mount_path)
{
	struct cs_polset ps = {0};
	if (cs_policy_load(&req->txn, req->token_entry, &ps))
		return false;
	bool ok = cs_acl_mount_visible(ps.v, ps.n, mount_path);
	free(ps.v);
	return ok;
}

static int capabilities_for(struct cs_request *req, const cJSON *entry)
{
	const cJSON *paths = cs_req_get(req, "paths");
	if (!cJSON_GetArraySize(paths))
		paths = cs_req_get(req, "path");
	if (!cJSON_IsArray(paths) || !cJSON_GetArraySize(paths))
		return cs_req_error(req, CS_EINVAL, "paths must be supplied");
	bool root = cs_policy_entry_has_root(entry);
	struct cs_polset ps = {0};
	if (!root) {
		int rc = cs_policy_load(&req->txn, entry, &ps);
		if (rc)
			return rc;
	}
	bool no_policies = !cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(entry, "policies"));
	cJSON *d = cJSON_CreateObject();
	const cJSON *p;
	cJSON_ArrayForEach(p, paths)
	{
		if (!cJSON_IsString(p))
			continue;
		cJSON *caps;
		if (root) {
			caps = cJSON_CreateArray();
			cJSON_AddItemToArray(caps, cJSON_CreateString("root"));
		} else {
			caps = cs_acl_caps_json(
			    no_policies ? 0 : cs_acl_capabilities(ps.v, ps.n, p->valuestring));
		}
		cJSON_DeleteItemFromObjectCaseSensitive(d, p->valuestring);
		cJSON_AddItemToObject(d, p->valuestring, caps);
	}
	free(ps.v);
	if (cJSON_GetArraySize(paths) == 1 && cJSON_IsString(cJSON_GetArrayItem(paths, 0))) {
		const cJSON *only =
		    cJSON_GetObjectItemCaseSensitive(d, cJSON_GetArrayItem(paths, 0)->valuestring);
		if (only)
			cJSON_AddItemToObject(d, "capabilities", cJSON_Duplicate(only, true));
	}
	cs_req_set_data(req, d);
	req->data_to_top = true;
	return 0;
}

static int caps_token(struct cs_request *req)
{
	struct cs_core *core = req->core;
	/* Required by the table of sys/capabilities; capabilities-self comes here only with
	 * a non-empty token. */
	const char *token = cs_req_str(req, "token", "");
	cJSON *entry = NULL;
	int rc = core->tokens.lookup ? core->tokens.lookup(core, &req->txn, token, &entry) : 0;
	if (rc)
		return rc;
	if (!entry)
		return cs_req_error(req, CS_EINVAL, "invalid token");
	rc = capabilities_for(req, entry);
	cJSON_Delete(entry);
	return rc;
}

static int caps_self(struct cs_request *req)
{
	const char *token = cs_req_str(req, "token", "");
	if (*token && (!req->client_token || strcmp(token, req->client_token) != 0))
		return caps_token(req);
	if (!req->token_entry)
		return cs_req_error(req, CS_EPERM, DENIED_MSG);
	return capabilities_for(req, req->token_entry);
}

static int caps_accessor(struct cs_request *req)
{
	const char *acc = cs_req_str(req, "accessor", ""); /* required by the table */
	if (!accessor_lookup)
		return cs_req_error(req, CS_EINVAL, "accessor lookup is not supported yet");
	cJSON *entry = NULL;
	int rc = accessor_lookup(req->core, &req->txn, acc, &entry);
	if (rc)
		return rc;
	if (!entry)
		return cs_req_error(req, CS_EINVAL, "invalid accessor");
	rc = capabilities_for(req, entry);
	cJSON_Delete(entry);
	return rc;
}

/* ------------------------------------------------------------------ table */

static const struct cs_field policy_fields[] = {
    {.name = "name", .type = CS_FIELD_STRING, .desc = "policy name"},
    {.name = "policy",
     .type = CS_FIELD_STRING,
     .desc = "policy text (HCL or JSON, optionally base64)"},
    {.name = "rules", .type = CS_FIELD_STRING, .desc = "deprecated alias of policy"},
    {.name = NULL},
};

/* The three capabilities paths share one schema and differ in what is required. */
#define CAPS_PATHS_FIELDS                                                                          \
	{.name = "paths", .type = CS_FIELD_STRLIST, .desc = "paths to check"},                     \
	{                                                                                          \
		.name = "path", .type = CS_FIELD_STRLIST, .desc = "deprecated alias of paths"      \
	}

static const struct cs_field caps_fields[] = {
    {.name = "token", .type = CS_FIELD_STRING, .desc = "token to check", .required = true},
    {.name = "accessor", .type = CS_FIELD_STRING, .desc = "accessor of the token to check"},
    CAPS_PATHS_FIELDS,
    {.name = NULL},
};

static const struct cs_field caps_self_fields[] = {
    {.name = "token", .type = CS_FIELD_STRING, .desc = "token to check (default: the client's)"},
    {.name = "accessor", .type = CS_FIELD_STRING, .desc = "accessor of the token to check"},
    CAPS_PATHS_FIELDS,
    {.name = NULL},
};

static const struct cs_field caps_accessor_fields[] = {
    {.name = "token", .type = CS_FIELD_STRING, .desc = "token to check"},
    {.name = "accessor",
     .type = CS_FIELD_STRING,
     .desc = "accessor of the token to check",
     .required = true},
    CAPS_PATHS_FIELDS,
    {.name = NULL},
};

static const struct cs_path policy_paths[] = {
    {.pattern = "policy",
     .ops = {[CS_OP_READ] = legacy_list, [CS_OP_LIST] = legacy_list},
     .synopsis = "list ACL policies"},
    {.pattern = "policy/{name}",
     .fields = policy_fields,
     .ops = {[CS_OP_READ] = legacy_read,
	     [CS_OP_UPDATE] = policy_write,
	     [CS_OP_DELETE] = policy_delete},
     .synopsis = "read, write or delete an ACL policy"},
    {.pattern = "policies/acl",
     .ops = {[CS_OP_READ] = acl_list, [CS_OP_LIST] = acl_list},
     .synopsis = "list ACL policies"},
    {.pattern = "policies/acl/{name}",
     .fields = policy_fields,
     .ops =
	 {[CS_OP_READ] = acl_read, [CS_OP_UPDATE] = policy_write, [CS_OP_DELETE] = policy_delete},
     .synopsis = "read, write or delete an ACL policy"},
    {.pattern = "capabilities",
     .fields = caps_fields,
     .ops = {[CS_OP_UPDATE] = caps_token},
     .synopsis = "capabilities of a token on paths"},
    {.pattern = "capabilities-self",
     .fields = caps_self_fields,
     .ops = {[CS_OP_UPDATE] = caps_self},
     .synopsis = "capabilities of the client token on paths"},
    {.pattern = "capabilities-accessor",
     .fields = caps_accessor_fields,
     .ops = {[CS_OP_UPDATE] = caps_accessor},
     .synopsis = "capabilities of a token, by accessor, on paths"},
};

/*
 * Not a mount: a registered backend only so that cs_backend_reset_all (seal, leadership
 * loss) frees the cache. Its empty type cannot be mounted (sys/mounts requires a type).
 */
static const struct cs_backend cache_owner = {
    .type = "",
    .is_auth = false,
    .paths = NULL,
    .n_paths = 0,
    .reset = cs_policy_cache_reset,
};

void cs_policy_module_init(void)
{
	cs_sys_set_paths(CS_SYS_POLICY, policy_paths, CS_ARRAY_LEN(policy_paths));
	cs_backend_set_acl_hook(cs_policy_acl_hook);
	cs_backend_set_sudo_hook(sudo_hook);
	cs_backend_set_mount_visible_hook(mount_visible_hook);
	cs_backend_register(&cache_owner);
}
