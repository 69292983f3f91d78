/*
 * Token creation (see token_internal.h): auth/token/create, create-orphan and
 * create/<role>, where the caller's token is the parent and Vault's rules decide which
 * options it may set, and cs_token_issue, through which login methods mint tokens.
 * Every refusal is a Vault error before anything is written.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/expire.h"
#include "auth/token.h"
#include "auth/token_internal.h"
#include "auth/token_revoke.h"
#include "auth/tokenutil.h"
#include "lib/err.h"
#include "lib/secmem.h"
#include "lib/util.h"

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
	const char *entity_id;    /* identity entity of the token, or NULL */
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
cJSON *cs_token_policy_set(const cJSON *in, bool add_default)
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

void cs_token_fill_auth(struct cs_request *req, const char *token, const cJSON *e, int64_t ttl)
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
	const char *eid = cs_tokenutil_str(e, "entity_id");
	cJSON_AddStringToObject(a, "entity_id", eid);
	/* As Vault: "policies" adds the entity's and its groups' to the token's own. */
	cJSON *ident = NULL;
	if (*eid && cs_backend_identity_resolve(req->core, &req->txn, eid, &ident) == 0 && ident &&
	    cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(ident, "policies"))) {
		const cJSON *ip = cJSON_GetObjectItemCaseSensitive(ident, "policies");
		cJSON *all = cJSON_Duplicate(pol, true);
		const cJSON *x;
		cJSON_ArrayForEach(x, ip) cJSON_AddItemToArray(all, cJSON_Duplicate(x, true));
		cJSON_ReplaceItemInObjectCaseSensitive(a, "policies",
						       cs_token_policy_set(all, false));
		cJSON_Delete(all);
		cJSON_AddItemToObject(a, "identity_policies", cJSON_Duplicate(ip, true));
	} else {
		cJSON_AddNullToObject(a, "identity_policies");
	}
	cJSON_Delete(ident);
	cJSON_AddStringToObject(a, "token_type", cs_tokenutil_str(e, "type"));
	cJSON_AddBoolToObject(a, "orphan",
			      cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "orphan")));
	cJSON_AddNullToObject(a, "mfa_requirement");
	double uses = cs_tokenutil_num(e, "num_uses");
	cJSON_AddNumberToObject(a, "num_uses", uses > 0 ? uses : 0);
	cJSON_Delete(req->resp_auth);
	req->resp_auth = a;
}

/* Store a new token and fill the auth block. Takes ownership of p->policies. */
static int create_token(struct cs_request *req, struct create_params *p)
{
	struct cs_txn *txn = &req->txn;
	char token[160], accessor[32], hex[65];
	if (p->id) {
		snprintf(token, sizeof token, "%s", p->id);
	} else {
		memcpy(token, p->batch ? "hvb." : "hvs.", 4);
		cs_random_base62(token + 4, 24);
	}
	cs_random_base62(accessor, 24);
	int rc = cs_token_key_of(txn, token, hex); /* loads the salt */
	if (rc) {
		cJSON_Delete(p->policies);
		cs_zero(token, sizeof token);
		return rc;
	}
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
	if (p->entity_id && *p->entity_id)
		cJSON_AddStringToObject(e, "entity_id", p->entity_id);

	rc = cs_token_entry_put(txn, hex, e);
	if (!rc)
		rc = cs_token_accessor_put(txn, accessor, hex);
	if (!rc && p->parent) {
		char key[256];
		snprintf(key, sizeof key, "%s%s/%s", CS_TOKEN_PARENT_PREFIX, p->parent, hex);
		rc = cs_txn_put(txn, key, "{}", 2);
	}
	if (!rc && ttl > 0)
		rc = cs_expire_put(txn, lease, p->path, now, now + (double)ttl, renewable, hex);
	if (!rc)
		cs_token_fill_auth(req, token, e, ttl);
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

/* One create request on its way: create_common fills it step by step, in Vault's order of
 * checks (the first refusal wins, so the order is part of the behaviour). */
struct create_req {
	struct cs_request *req;
	enum create_mode mode;
	cJSON *role;             /* the role's entry (owned) or NULL */
	const char *role_name;   /* "" unless CREATE_ROLE */
	bool is_root;            /* Vault: "root or sudo" for the privileged options */
	bool no_default;         /* leave "default" out of the policies */
	const cJSON *parent_pol; /* the parent token's policies */
	struct create_params p;  /* p.policies is owned until create_token takes it */
	char *entity_id;         /* from entity_alias (owned), else the parent's */
	char parent_hex[65];
	char display[160];
	char path[300];
};

/* The role of create/<role_name>; an unknown role is a 400. */
static int load_role(struct create_req *c)
{
	if (c->mode != CREATE_ROLE)
		return 0;
	c->role_name = cs_req_str(c->req, "role_name", "");
	char key[300];
	snprintf(key, sizeof key, "roles/%s", c->role_name);
	int rc = cs_view_get_json(c->req, key, &c->role);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(c->req, CS_EINVAL, "unknown role %s", c->role_name);
	return rc;
}

/* The request's own options: id, type, uses, TTLs, renewable, no_default_policy. */
static int read_options(struct create_req *c)
{
	struct cs_request *req = c->req;
	struct create_params *p = &c->p;
	const char *id = cs_req_str(req, "id", NULL);
	if (id && *id) {
		if (!c->is_root)
			return cs_req_error(req, CS_EINVAL,
					    "root or sudo privileges required to specify token id");
		if (strlen(id) >= 128)
			return cs_req_error(req, CS_EINVAL, "token id too long");
		p->id = id;
	}
	const char *type = c->role ? cs_tokenutil_str(c->role, "token_type") : "";
	if (!*type || strcmp(type, "default") == 0 || strcmp(type, "default-service") == 0)
		type = "service";
	if (cs_req_has(req, "type"))
		type = cs_req_str(req, "type", "service");
	if (strcmp(type, "service") && strcmp(type, "batch"))
		return cs_req_error(req, CS_EINVAL, "unsupported token type %s", type);
	p->batch = strcmp(type, "batch") == 0;
	p->num_uses =
	    cs_req_int(req, "num_uses", c->role ? role_int(c->role, "token_num_uses", NULL) : 0);
	if (p->num_uses < 0)
		return cs_req_error(req, CS_EINVAL, "number of uses cannot be negative");
	p->ttl = cs_req_int(req, "ttl", 0);
	if (p->ttl == 0)
		p->ttl = cs_req_int(req, "lease", 0); /* legacy name */
	if (p->ttl < 0)
		return cs_req_error(req, CS_EINVAL, "ttl must be positive");
	p->explicit_max = cs_req_int(req, "explicit_max_ttl", 0);
	p->period = cs_req_int(req, "period", 0);
	p->renewable = cs_req_bool(req, "renewable", true);
	c->no_default = cs_req_bool(req, "no_default_policy", false);
	p->max_ttl = cs_req_max_ttl(req);
	return 0;
}

/* A role's token_* settings override or cap the request's. */
static void apply_role(struct create_req *c)
{
	const cJSON *role = c->role;
	struct create_params *p = &c->p;
	if (!role)
		return;
	int64_t rp = role_int(role, "token_period", "period");
	int64_t re = role_int(role, "token_explicit_max_ttl", "explicit_max_ttl");
	int64_t rt = role_int(role, "token_ttl", NULL);
	int64_t rm = role_int(role, "token_max_ttl", NULL);
	if (rp > 0)
		p->period = rp;
	if (re > 0 && (p->explicit_max == 0 || p->explicit_max > re))
		p->explicit_max = re;
	if (rt > 0 && p->ttl == 0)
		p->ttl = rt;
	if (rm > 0 && rm < p->max_ttl)
		p->max_ttl = rm;
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(role, "renewable")))
		p->renewable = false;
	c->no_default |=
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(role, "token_no_default_policy"));
	/* As Vault: a role's CIDR binding holds for every token made from it. */
	p->bound_cidrs = cJSON_GetObjectItemCaseSensitive(role, "token_bound_cidrs");
}

static int check_period(struct create_req *c)
{
	if (cs_req_int(c->req, "period", 0) > 0 && !c->is_root)
		return cs_req_error(c->req, CS_EINVAL,
				    "root or sudo privileges required to create periodic token");
	if (c->p.batch && c->p.period > 0)
		return cs_req_error(c->req, CS_EINVAL, "batch tokens cannot be periodic");
	return 0;
}

/* With a role: no disallowed policy, only allowed ones if the role lists any, else
 * (unless root) only the parent's. "default" is always acceptable. */
static int check_role_policies(struct create_req *c, const cJSON *want)
{
	const cJSON *allowed = cJSON_GetObjectItemCaseSensitive(c->role, "allowed_policies");
	const cJSON *disallowed = cJSON_GetObjectItemCaseSensitive(c->role, "disallowed_policies");
	const cJSON *v;
	cJSON_ArrayForEach(v, want)
	{
		if (strcmp(v->valuestring, "default") == 0)
			continue;
		if (list_has(disallowed, v->valuestring))
			return cs_req_error(c->req, CS_EINVAL,
					    "token policies (%s) must not be in the role's "
					    "disallowed policies",
					    v->valuestring);
		if (cJSON_GetArraySize(allowed) && !list_has(allowed, v->valuestring))
			return cs_req_error(c->req, CS_EINVAL,
					    "token policies must be subset of the role's "
					    "allowed policies");
		if (!cJSON_GetArraySize(allowed) && !c->is_root &&
		    !list_has(c->parent_pol, v->valuestring))
			return cs_req_error(c->req, CS_EINVAL,
					    "child policies must be subset of parent");
	}
	return 0;
}

/* Without a role: unless root, the policies other than "default" are the parent's. */
static int check_parent_policies(struct create_req *c, const cJSON *want)
{
	cJSON *nodef = cJSON_CreateArray();
	const cJSON *v;
	cJSON_ArrayForEach(v, want)
	{
		if (strcmp(v->valuestring, "default") != 0)
			cJSON_AddItemToArray(nodef, cJSON_CreateString(v->valuestring));
	}
	bool ok = c->is_root || subset(nodef, c->parent_pol);
	cJSON_Delete(nodef);
	return ok ? 0 : cs_req_error(c->req, CS_EINVAL, "child policies must be subset of parent");
}

/* The new token's policies: asked for, else the role's allowed ones, else the parent's;
 * checked, with "default" added or removed, into c->p.policies. */
static int choose_policies(struct create_req *c)
{
	const cJSON *req_pol = cs_req_get(c->req, "policies");
	bool asked = cJSON_IsArray(req_pol) && cJSON_GetArraySize(req_pol) > 0;
	cJSON *want;
	int rc;
	if (c->role) {
		const cJSON *allowed =
		    cJSON_GetObjectItemCaseSensitive(c->role, "allowed_policies");
		want = cs_token_policy_set(
		    asked ? req_pol : (cJSON_GetArraySize(allowed) ? allowed : c->parent_pol),
		    false);
		rc = check_role_policies(c, want);
	} else {
		want = cs_token_policy_set(asked ? req_pol : c->parent_pol, false);
		rc = check_parent_policies(c, want);
	}
	if (rc) {
		cJSON_Delete(want);
		return rc;
	}
	if (c->no_default) {
		cJSON *v = want->child;
		while (v) {
			cJSON *nx = v->next;
			if (strcmp(v->valuestring, "default") == 0)
				cJSON_Delete(cJSON_DetachItemViaPointer(want, v));
			v = nx;
		}
		c->p.policies = want;
	} else {
		c->p.policies = cs_token_policy_set(want, true);
		cJSON_Delete(want);
	}
	/* Against privilege escalation through roles or sudo: root only from root. */
	if (list_has(c->p.policies, "root") && !list_has(c->parent_pol, "root"))
		return cs_req_error(
		    c->req, CS_EINVAL,
		    "root tokens may not be created without parent token being root");
	if (list_has(c->p.policies, "root") && c->p.batch)
		return cs_req_error(c->req, CS_EINVAL, "batch tokens cannot be root tokens");
	return 0;
}

/* The caller's token becomes the parent unless the token is to be an orphan. */
static int choose_parent(struct create_req *c)
{
	struct cs_request *req = c->req;
	bool orphan =
	    c->mode == CREATE_ORPHAN ||
	    (c->role && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c->role, "orphan")));
	if (!orphan && cs_req_bool(req, "no_parent", false)) {
		if (!c->is_root)
			return cs_req_error(
			    req, CS_EINVAL,
			    "root or sudo privileges required to create orphan token");
		orphan = true;
	}
	if (orphan)
		return 0;
	int rc = cs_token_key_of(&req->txn, req->client_token, c->parent_hex);
	if (!rc)
		c->p.parent = c->parent_hex;
	/* Every request walks its token's parent chain (token_revoke.h): keep it bounded. */
	size_t depth = 0;
	if (!rc && req->token_entry &&
	    cs_token_chain_ok(&req->txn, req->token_entry, &depth) == 0 &&
	    depth + 1 > CS_TOKEN_CHAIN_MAX)
		return cs_req_error(req, CS_EINVAL,
				    "token chain too deep: a token may have at most %d ancestors; "
				    "create an orphan token instead",
				    CS_TOKEN_CHAIN_MAX);
	return rc;
}

/* Vault's glob for allowed_entity_aliases: '*' matches any run of characters. */
static bool glob_match(const char *pat, const char *s)
{
	if (!*pat)
		return !*s;
	if (*pat == '*')
		return glob_match(pat + 1, s) || (*s && glob_match(pat, s + 1));
	return *s == *pat && glob_match(pat + 1, s + 1);
}

/* The token's entity: the one of `entity_alias` on this token mount (a role must allow
 * it), else the parent token's, as Vault's token store decides. */
static int choose_entity(struct create_req *c)
{
	struct cs_request *req = c->req;
	const char *alias = cs_req_str(req, "entity_alias", "");
	if (!*alias) {
		c->p.entity_id = cs_tokenutil_str(req->token_entry, "entity_id");
		return 0;
	}
	if (!c->role)
		return cs_req_error(
		    req, CS_EINVAL,
		    "'entity_alias' is only allowed in combination with token role");
	char *lower = strdup(alias);
	if (!lower)
		abort();
	for (char *ch = lower; *ch; ch++)
		*ch = (char)tolower((unsigned char)*ch);
	bool ok = false;
	const cJSON *v;
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(c->role, "allowed_entity_aliases"))
	{
		if (!cJSON_IsString(v))
			continue;
		char *pat = strdup(v->valuestring);
		if (!pat)
			abort();
		for (char *ch = pat; *ch; ch++)
			*ch = (char)tolower((unsigned char)*ch);
		ok = ok || glob_match(pat, lower);
		free(pat);
	}
	free(lower);
	if (!ok)
		return cs_req_error(req, CS_EINVAL, "invalid 'entity_alias' value");
	int rc = cs_req_identity_login(req, alias, NULL, &c->entity_id);
	if (!rc)
		c->p.entity_id = c->entity_id;
	return rc;
}

/* Display name, metadata and the creation path (the lease prefix). */
static int describe(struct create_req *c)
{
	struct cs_request *req = c->req;
	display_name(cs_req_str(req, "display_name", NULL), c->display, sizeof c->display);
	c->p.display_name = c->display;
	c->p.meta = cs_req_get(req, "meta");
	if (c->p.meta && !cJSON_IsObject(c->p.meta) && !cJSON_IsNull(c->p.meta))
		return cs_req_error(req, CS_EINVAL, "meta must be a map of strings");
	if (c->mode == CREATE_ORPHAN)
		snprintf(c->path, sizeof c->path, "auth/token/create-orphan");
	else if (c->role)
		snprintf(c->path, sizeof c->path, "auth/token/create/%s%s%s", c->role_name,
			 *cs_tokenutil_str(c->role, "path_suffix") ? "/" : "",
			 cs_tokenutil_str(c->role, "path_suffix"));
	else
		snprintf(c->path, sizeof c->path, "auth/token/create");
	c->p.path = c->path;
	return 0;
}

static int create_common(struct cs_request *req, enum create_mode mode)
{
	const cJSON *parent = req->token_entry;
	if (!parent)
		return cs_req_error(req, CS_EPERM, "permission denied");
	struct create_req c = {
	    .req = req,
	    .mode = mode,
	    .role_name = "",
	    .is_root = cs_req_has_sudo(req),
	    .parent_pol = cJSON_GetObjectItemCaseSensitive(parent, "policies"),
	};
	if (strcmp(cs_tokenutil_str(parent, "type"), "batch") == 0)
		return cs_req_error(req, CS_EINVAL, "batch tokens cannot create more tokens");
	int rc = load_role(&c);
	if (!rc)
		rc = read_options(&c);
	if (!rc) {
		apply_role(&c);
		rc = check_period(&c);
	}
	if (!rc)
		rc = choose_policies(&c);
	if (!rc)
		rc = choose_parent(&c);
	if (!rc)
		rc = describe(&c);
	if (!rc)
		rc = choose_entity(&c);
	if (!rc)
		rc = create_token(req, &c.p); /* takes c.p.policies */
	else
		cJSON_Delete(c.p.policies);
	cJSON_Delete(c.role);
	free(c.entity_id);
	return rc;
}

int cs_token_h_create(struct cs_request *req)
{
	return create_common(req, CREATE_NORMAL);
}

int cs_token_h_create_orphan(struct cs_request *req)
{
	return create_common(req, CREATE_ORPHAN);
}

int cs_token_h_create_role(struct cs_request *req)
{
	return create_common(req, CREATE_ROLE);
}

int cs_token_issue(struct cs_request *req, const cJSON *params)
{
	struct create_params p = {0};
	const cJSON *pol = cJSON_GetObjectItemCaseSensitive(params, "policies");
	p.policies = cs_token_policy_set(
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
	/* A login's alias (Vault's auth.Alias) names the token's entity. */
	const cJSON *alias = cJSON_GetObjectItemCaseSensitive(params, "alias");
	char *eid = NULL;
	if (cJSON_IsObject(alias)) {
		int rc = cs_req_identity_login(req, cs_tokenutil_str(alias, "name"),
					       cJSON_GetObjectItemCaseSensitive(alias, "metadata"),
					       &eid);
		if (rc) {
			cJSON_Delete(p.policies);
			return rc;
		}
	}
	p.entity_id = eid;
	int rc = create_token(req, &p);
	free(eid);
	return rc;
}