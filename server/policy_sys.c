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

static void policy_cache_release(void *state)
{
	cs_policy_cache_reset(state);
}

static const struct cs_core_state_type policy_cache_type = {
    .name = "policy cache",
    .size = sizeof(struct cs_policy_cache),
    .release = policy_cache_release,
};

/* The core's parsed-policy cache (policy/store.h). */
static struct cs_policy_cache *policy_cache(struct cs_core *core)
{
	return cs_core_state(core, &policy_cache_type);
}

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

/*
 * The policies a token acts with at this request: its own, plus its entity's and every
 * group's the entity is in, directly or through nested groups (read now, so a group
 * change counts from the next request on), with templated paths expanded for the entity.
 * `v` points into the policy cache and into `inst` (copies made for this request).
 */
struct effective {
	const struct cs_policy **v;
	size_t n;
	struct cs_policy **inst;
	size_t n_inst;
	size_t n_names; /* policy names the token and its identity carry */
	bool denied;    /* the token's entity is disabled or gone: Vault refuses the token */
};

static void effective_free(struct effective *ef)
{
	for (size_t i = 0; i < ef->n_inst; i++)
		cs_policy_free(ef->inst[i]);
	free(ef->inst);
	free(ef->v);
	memset(ef, 0, sizeof *ef);
}

static int effective_load(struct cs_core *core, struct cs_txn *txn, const cJSON *entry,
			  struct effective *ef)
{
	memset(ef, 0, sizeof *ef);
	const cJSON *own = cJSON_GetObjectItemCaseSensitive(entry, "policies");
	const cJSON *eid = cJSON_GetObjectItemCaseSensitive(entry, "entity_id");
	cJSON *ident = NULL;
	if (cJSON_IsString(eid) && *eid->valuestring) {
		int rc = cs_backend_identity_resolve(core, txn, eid->valuestring, &ident);
		if (rc)
			return rc;
		const cJSON *ent = cJSON_GetObjectItemCaseSensitive(ident, "entity");
		/* Vault: a token whose entity is disabled, or no longer exists, is refused
		 * (with an identity store to ask; without one tokens carry no identity). */
		if ((!ident && core->identity.resolve) ||
		    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ent, "disabled"))) {
			cJSON_Delete(ident);
			ef->denied = true;
			return 0;
		}
	}
	const cJSON *ipol = cJSON_GetObjectItemCaseSensitive(ident, "policies");
	cJSON *names = own ? cJSON_Duplicate(own, true) : cJSON_CreateArray();
	const cJSON *x;
	cJSON_ArrayForEach(x, ipol) cJSON_AddItemToArray(names, cJSON_Duplicate(x, true));
	ef->n_names = (size_t)cJSON_GetArraySize(names);
	struct cs_polset ps = {0};
	int rc = cs_policy_load_names(policy_cache(core), txn, names, &ps);
	cJSON_Delete(names);
	if (rc) {
		cJSON_Delete(ident);
		return rc;
	}
	/* Each templated policy gets its expanded rules as one more policy beside it (rules
	 * merge across policies). Without an identity a templated path never matches. */
	size_t n_tmpl = 0;
	for (size_t i = 0; ident && i < ps.n; i++)
		n_tmpl += ps.v[i]->templated;
	ef->v = ps.v;
	ef->n = ps.n;
	if (n_tmpl) {
		ef->v = realloc(ps.v, (ps.n + n_tmpl) * sizeof *ef->v);
		ef->inst = calloc(n_tmpl, sizeof *ef->inst);
		if (!ef->v || !ef->inst)
			abort();
		for (size_t i = 0; i < ps.n; i++) {
			if (!ef->v[i]->templated)
				continue;
			ef->inst[ef->n_inst] = cs_policy_instantiate(ef->v[i], ident);
			ef->v[ef->n++] = ef->inst[ef->n_inst++];
		}
	}
	cJSON_Delete(ident);
	return 0;
}

int cs_policy_acl_hook(struct cs_request *req)
{
	if (req->root)
		return 0;
	if (!req->token_entry)
		return cs_req_error(req, CS_EPERM, DENIED_MSG);
	struct effective ps;
	int rc = effective_load(req->core, &req->txn, req->token_entry, &ps);
	if (rc)
		return rc;
	if (ps.denied)
		return cs_req_error(req, CS_EPERM, DENIED_MSG);
	struct cs_acl_request ar = {
	    .op = acl_op(req->op),
	    .path = req->path,
	    .data = req->data,
	    .wrap_ttl = req->wrap_ttl,
	    .need_sudo = req->route && (req->route->flags & CS_PATH_SUDO),
	};
	bool ok = cs_acl_allowed(ps.v, ps.n, &ar);
	effective_free(&ps);
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

/* Fill the response for `entry` (borrowed; NULL = no such token, handled by callers). */
/* cs_req_has_sudo for non-root tokens: sudo on the request path, and no deny. */
static bool sudo_hook(struct cs_request *req)
{
	struct effective ps;
	if (effective_load(req->core, &req->txn, req->token_entry, &ps))
		return false;
	unsigned caps = ps.denied ? 0 : cs_acl_capabilities(ps.v, ps.n, req->path);
	effective_free(&ps);
	return (caps & CS_CAP_SUDO) && !(caps & CS_CAP_DENY);
}

/* cs_req_mount_visible for non-root tokens (sys/internal/ui/mounts). */
static bool mount_visible_hook(struct cs_request *req, const char *mount_path)
{
	struct effective ps;
	if (effective_load(req->core, &req->txn, req->token_entry, &ps))
		return false;
	bool ok = !ps.denied && cs_acl_mount_visible(ps.v, ps.n, mount_path);
	effective_free(&ps);
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
	struct effective ps = {0};
	if (!root) {
		int rc = effective_load(req->core, &req->txn, entry, &ps);
		if (rc)
			return rc;
	}
	/* As the ACL decides: a disabled entity's token can do nothing. */
	bool no_policies = ps.denied || (!root && ps.n_names == 0);
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
	effective_free(&ps);
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
	if (!req->core->tokens.lookup_accessor)
		return cs_req_error(req, CS_EINVAL, "accessor lookup is not supported yet");
	cJSON *entry = NULL;
	int rc = req->core->tokens.lookup_accessor(req->core, &req->txn, acc, &entry);
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

static void cache_reset(struct cs_core *core)
{
	cs_policy_cache_reset(policy_cache(core));
}

/*
 * Not a mount: a registered backend only so that cs_backend_reset_all (seal, leadership
 * loss) frees the cache. Its empty type cannot be mounted (sys/mounts requires a type).
 */
static const struct cs_backend cache_owner = {
    .type = "",
    .is_auth = false,
    .paths = NULL,
    .n_paths = 0,
    .reset = cache_reset,
};

static const struct cs_acl_hooks acl_hooks = {
    .check = cs_policy_acl_hook,
    .sudo = sudo_hook,
    .mount_visible = mount_visible_hook,
};

void cs_policy_module_init(struct cs_core *core)
{
	cs_sys_set_paths(CS_SYS_POLICY, policy_paths, CS_ARRAY_LEN(policy_paths));
	cs_core_set_acl(core, &acl_hooks);
	cs_backend_register(&cache_owner);
}
