/*
 * The ACME server's path table and request envelope (engines/acme_internal.h): the four
 * directories (acme/, roles/:role/acme/, issuer/:ref/acme/, issuer/:ref/roles/:role/acme/),
 * config/acme, the EAB endpoints, the directory, new-nonce and accounts.
 *
 * A POST goes through acme_begin: config enabled → directory allowed (policy, role,
 * issuer) → cluster path known → JWS parsed → nonce redeemed → url equal to the request's
 * URL → key (jwk or kid's account) → signature. Any failure is answered as an RFC 8555
 * problem document with a fresh nonce; nothing the request wrote is kept.
 *
 * The ACME rows are unauthenticated (their credential is the JWS), as Vault lists them
 * (OpenBao pki/backend.go); the EAB and config rows need a token.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engines/acme_internal.h"
#include "engines/pki.h"
#include "engines/pki_internal.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/util.h"

/* ---------------------------------------------------------------- per-core state */

struct acme_state_nonces {
	struct cs_acme_nonces nonces;
};

static void nonce_state_release(void *p)
{
	cs_acme_nonces_reset(&((struct acme_state_nonces *)p)->nonces);
}

static const struct cs_core_state_type nonce_state_type = {
    .name = "acme nonces",
    .size = sizeof(struct acme_state_nonces),
    .release = nonce_state_release,
};

static struct cs_acme_nonces *nonces_of(struct cs_core *core)
{
	return &((struct acme_state_nonces *)cs_core_state(core, &nonce_state_type))->nonces;
}

/* The engine's reset hook (seal, leadership loss): nonces of this term die with it. */
void cs_pki_acme_reset(struct cs_core *core)
{
	cs_acme_nonces_reset(nonces_of(core));
	acme_chal_reset(core);
}

/* ---------------------------------------------------------------- small helpers */

int64_t acme_now(void)
{
	return (int64_t)time(NULL);
}

void acme_time(int64_t t, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void acme_id(char out[23])
{
	uint8_t b[16];
	cs_random(b, sizeof b);
	char *s = cs_b64url_encode(b, sizeof b);
	snprintf(out, 23, "%s", s);
	free(s);
}

void acme_key(char *out, size_t n, const char *account, const char *kind, const char *id)
{
	snprintf(out, n, "acme/accounts/%s/%s/%s", account, kind, id);
}

void acme_add_nonce(struct cs_request *req)
{
	char n[33];
	cs_acme_nonce_new(nonces_of(req->core), acme_now(), n);
	cs_req_add_header(req, "Replay-Nonce", n);
}

static void add_index_link(struct cs_request *req, const struct acme_req *a)
{
	if (!a || !a->base[0])
		return;
	char link[700];
	snprintf(link, sizeof link, "<%sdirectory>;rel=\"index\"", a->base);
	cs_req_add_header(req, "Link", link);
}

int acme_problem(struct cs_request *req, const struct acme_req *a, int status, const char *type,
		 const char *fmt, ...)
{
	/* Nothing a refused request wrote is kept (the nonce it spent stays spent: that is
	 * in memory). */
	if (req->txn_open)
		cs_txn_drop_writes(&req->txn);
	char detail[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	char t[120];
	snprintf(t, sizeof t, "urn:ietf:params:acme:error:%s", type);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", t);
	cJSON_AddStringToObject(o, "detail", detail);
	cJSON_AddNumberToObject(o, "status", status);
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	cs_req_set_raw(req, "application/problem+json", s, strlen(s));
	free(s);
	req->status = status;
	cJSON_Delete(req->resp_data);
	req->resp_data = NULL;
	free(req->errmsg);
	req->errmsg = NULL;
	acme_add_nonce(req);
	add_index_link(req, a);
	return 0;
}

int acme_reply(struct cs_request *req, const struct acme_req *a, int status, cJSON *body,
	       const char *location)
{
	char *s = cJSON_PrintUnformatted(body);
	cJSON_Delete(body);
	cs_req_set_raw(req, "application/json", s, strlen(s));
	free(s);
	req->status = status;
	acme_add_nonce(req);
	add_index_link(req, a);
	if (location)
		cs_req_add_header(req, "Location", location);
	return 0;
}

/* ---------------------------------------------------------------- config/acme */

static const char *const eab_policies[] = {"not-required", "new-account-required",
					   "always-required"};

static cJSON *config_load(struct cs_request *req)
{
	cJSON *c = NULL;
	if (cs_view_get_json(req, "config/acme", &c) != 0)
		c = cJSON_CreateObject();
	struct {
		const char *k;
		const char *def;
	} strs[] = {{"default_directory_policy", "sign-verbatim"},
		    {"eab_policy", "not-required"},
		    {"dns_resolver", ""}};
	for (size_t i = 0; i < CS_ARRAY_LEN(strs); i++)
		if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(c, strs[i].k)))
			cJSON_AddStringToObject(c, strs[i].k, strs[i].def);
	if (!cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(c, "enabled")))
		cJSON_AddBoolToObject(c, "enabled", false);
	if (!cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(c, "allow_role_ext_key_usage")))
		cJSON_AddBoolToObject(c, "allow_role_ext_key_usage", false);
	static const char *const lists[] = {"allowed_issuers", "allowed_roles"};
	for (size_t i = 0; i < 2; i++)
		if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(c, lists[i]))) {
			cJSON *a = cJSON_AddArrayToObject(c, lists[i]);
			cJSON_AddItemToArray(a, cJSON_CreateString("*"));
		}
	return c;
}

static int config_acme_read(struct cs_request *req)
{
	cs_req_set_data(req, config_load(req));
	return 0;
}

static int config_acme_write(struct cs_request *req)
{
	cJSON *c = config_load(req);
	if (cs_req_has(req, "enabled"))
		cJSON_ReplaceItemInObject(c, "enabled",
					  cJSON_CreateBool(cs_req_bool(req, "enabled", false)));
	if (cs_req_has(req, "allow_role_ext_key_usage"))
		cJSON_ReplaceItemInObject(
		    c, "allow_role_ext_key_usage",
		    cJSON_CreateBool(cs_req_bool(req, "allow_role_ext_key_usage", false)));
	static const char *const lists[] = {"allowed_issuers", "allowed_roles"};
	for (size_t i = 0; i < 2; i++) {
		if (!cs_req_has(req, lists[i]))
			continue;
		struct cs_strv v = {0};
		cs_pki_req_list(req, lists[i], &v);
		cJSON *a = cJSON_CreateArray();
		for (size_t j = 0; j < v.n; j++)
			cJSON_AddItemToArray(a, cJSON_CreateString(v.v[j]));
		if (v.n == 0)
			cJSON_AddItemToArray(a, cJSON_CreateString("*"));
		cs_strv_free(&v);
		cJSON_ReplaceItemInObject(c, lists[i], a);
	}
	int rc = 0;
	const char *pol = cs_req_str(req, "default_directory_policy", NULL);
	if (pol) {
		if (strcmp(pol, "sign-verbatim") && strcmp(pol, "forbid") &&
		    !(strncmp(pol, "role:", 5) == 0 && pol[5]))
			rc = cs_req_error(req, CS_EINVAL,
					  "invalid default_directory_policy %s: must be "
					  "sign-verbatim, forbid or role:<name>",
					  pol);
		else
			cJSON_ReplaceItemInObject(c, "default_directory_policy",
						  cJSON_CreateString(pol));
	}
	const char *eab = cs_req_str(req, "eab_policy", NULL);
	if (!rc && eab) {
		bool ok = false;
		for (size_t i = 0; i < CS_ARRAY_LEN(eab_policies); i++)
			ok = ok || strcmp(eab, eab_policies[i]) == 0;
		if (!ok)
			rc = cs_req_error(req, CS_EINVAL,
					  "invalid eab_policy %s: must be not-required, "
					  "new-account-required or always-required",
					  eab);
		else
			cJSON_ReplaceItemInObject(c, "eab_policy", cJSON_CreateString(eab));
	}
	const char *dns = cs_req_str(req, "dns_resolver", NULL);
	if (!rc && dns) {
		/* host:port, or empty for the system's resolver. */
		const char *colon = strrchr(dns, ':');
		if (*dns && (!colon || colon == dns || atoi(colon + 1) <= 0 ||
			     atoi(colon + 1) > 65535 || strpbrk(dns, " /")))
			rc = cs_req_error(req, CS_EINVAL,
					  "dns_resolver must be host:port (or empty): %s", dns);
		else
			cJSON_ReplaceItemInObject(c, "dns_resolver", cJSON_CreateString(dns));
	}
	if (!rc && cs_pki_jbool(c, "enabled", false)) {
		/* Vault refuses to enable ACME without the URLs it must answer with. */
		cJSON *cl = cs_pki_config(req, "cluster");
		if (!*cs_pki_jstr(cl, "path", ""))
			rc = cs_req_error(req, CS_EINVAL,
					  "ACME feature requires local cluster 'path' field "
					  "configuration to be set");
		cJSON_Delete(cl);
	}
	if (!rc)
		rc = cs_view_put_json(req, "config/acme", c);
	if (!rc)
		cs_req_set_data(req, cJSON_Duplicate(c, true));
	cJSON_Delete(c);
	return rc;
}

/* ---------------------------------------------------------------- directories */

static bool list_allows(const cJSON *c, const char *list, const char *a, const char *b)
{
	const cJSON *v;
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(c, list))
	{
		if (!cJSON_IsString(v))
			continue;
		if (strcmp(v->valuestring, "*") == 0 || (a && strcmp(v->valuestring, a) == 0) ||
		    (b && strcmp(v->valuestring, b) == 0))
			return true;
	}
	return false;
}

int acme_role(struct cs_request *req, const struct acme_req *a, cJSON **out)
{
	*out = NULL;
	if (!a->role)
		return 0;
	char key[300];
	snprintf(key, sizeof key, "roles/%s", a->role);
	return cs_view_get_json(req, key, out);
}

/* The directory of this request: its prefix, role and issuer, checked against
 * config/acme. 0, or a problem answered (1), or a storage error. */
static int directory_resolve(struct cs_request *req, struct acme_req *a)
{
	const char *role = cs_req_capture(req, "role");
	const char *ref = cs_req_capture(req, "ref");
	const char *rel = req->rel ? req->rel : "";
	const char *at = strstr(rel, "acme/");
	size_t plen = at ? (size_t)(at - rel) + 5 : 0;
	if (plen >= sizeof a->dir)
		plen = 0;
	memcpy(a->dir, rel, plen);
	a->dir[plen] = '\0';

	cJSON *cl = cs_pki_config(req, "cluster");
	const char *path = cs_pki_jstr(cl, "path", "");
	size_t n = strlen(path);
	while (n > 0 && path[n - 1] == '/')
		n--;
	if (n)
		snprintf(a->base, sizeof a->base, "%.*s/%s", (int)n, path, a->dir);
	cJSON_Delete(cl);
	if (!cs_pki_jbool(a->config, "enabled", false))
		return acme_problem(req, a, 403, "unauthorized",
				    "ACME is disabled in configuration"),
		       ACME_DONE;
	if (!n)
		return acme_problem(req, a, 500, "serverInternal",
				    "ACME feature requires local cluster 'path' field "
				    "configuration to be set"),
		       ACME_DONE;
	if (!role && !ref) {
		const char *pol = cs_pki_jstr(a->config, "default_directory_policy", "");
		if (strcmp(pol, "forbid") == 0)
			return acme_problem(req, a, 403, "unauthorized",
					    "default directory policy forbids ACME on this path"),
			       ACME_DONE;
		if (strncmp(pol, "role:", 5) == 0)
			role = pol + 5;
	}
	cJSON *r = NULL;
	if (role) {
		char key[300];
		snprintf(key, sizeof key, "roles/%s", role);
		int rc = cs_view_get_json(req, key, &r);
		if (rc == CS_ENOTFOUND)
			return acme_problem(req, a, 400, "malformed", "role %s does not exist",
					    role),
			       ACME_DONE;
		if (rc)
			return rc;
		if (!list_allows(a->config, "allowed_roles", role, NULL)) {
			cJSON_Delete(r);
			return acme_problem(req, a, 403, "unauthorized",
					    "role %s is not allowed for ACME", role),
			       ACME_DONE;
		}
		a->role = strdup(role);
	}
	const char *iref = ref ? ref : cs_pki_jstr(r, "issuer_ref", "default");
	char *iid = NULL;
	int rc = cs_pki_resolve_issuer(req, iref, &iid);
	cJSON_Delete(r);
	if (rc) {
		free(req->errmsg);
		req->errmsg = NULL;
		return acme_problem(req, a, 400, "malformed", "issuer %s does not exist", iref),
		       ACME_DONE;
	}
	cJSON *iss = NULL;
	bool ok = cs_pki_issuer_load(req, iid, &iss) == 0 &&
		  list_allows(a->config, "allowed_issuers", iid, cs_pki_jstr(iss, "name", ""));
	cJSON_Delete(iss);
	a->issuer = iid;
	if (!ok)
		return acme_problem(req, a, 403, "unauthorized",
				    "issuer %s is not allowed for ACME", iref),
		       ACME_DONE;
	return 0;
}

/* ---------------------------------------------------------------- the JWS */

/* The body as the client sent it: the core parsed the JSON into req->data (adding the
 * path captures); the JWS is rebuilt from its three members, which carry the signed
 * bytes verbatim (base64url has nothing JSON would escape). */
static char *jws_text(struct cs_request *req, size_t *len)
{
	cJSON *o = cJSON_CreateObject();
	const cJSON *v;
	int extra = 0;
	cJSON_ArrayForEach(v, req->data)
	{
		if (!v->string)
			continue;
		if (strcmp(v->string, "protected") == 0 || strcmp(v->string, "payload") == 0 ||
		    strcmp(v->string, "signature") == 0) {
			cJSON_AddItemToObject(o, v->string, cJSON_Duplicate(v, true));
			continue;
		}
		if (!cs_req_capture(req, v->string))
			extra++; /* an unprotected header or anything else: refused by parse */
	}
	if (extra)
		cJSON_AddStringToObject(o, "header", "");
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	*len = strlen(s);
	return s;
}

/* "type: detail" from acme_jws.c into a problem. */
static int jws_problem(struct cs_request *req, const struct acme_req *a, const char *why)
{
	const char *colon = why ? strchr(why, ':') : NULL;
	char type[40] = "malformed";
	if (colon && (size_t)(colon - why) < sizeof type) {
		memcpy(type, why, (size_t)(colon - why));
		type[colon - why] = '\0';
	}
	const char *detail = colon ? colon + 1 : (why ? why : "malformed request");
	while (*detail == ' ')
		detail++;
	return acme_problem(req, a, 400, type, "%s", detail), ACME_DONE;
}

static int load_account(struct cs_request *req, const char *id, cJSON **out)
{
	char key[200];
	snprintf(key, sizeof key, "acme/accounts/%s", id);
	return cs_view_get_json(req, key, out);
}

int acme_begin(struct cs_request *req, struct acme_req *a, enum acme_auth auth)
{
	memset(a, 0, sizeof *a);
	a->config = config_load(req);
	int rc = directory_resolve(req, a);
	if (rc || auth == ACME_NONE)
		return rc;
	size_t len = 0;
	char *body = jws_text(req, &len);
	const char *why = NULL;
	rc = cs_acme_jws_parse(body, len, &a->jws, &why);
	free(body);
	if (rc)
		return jws_problem(req, a, why);
	if (!cs_acme_nonce_redeem(nonces_of(req->core), a->jws.nonce, acme_now()))
		return acme_problem(req, a, 400, "badNonce", "invalid or reused nonce"), ACME_DONE;
	char url[1200];
	snprintf(url, sizeof url, "%s%s", a->base, req->rel + strlen(a->dir));
	if (strcmp(url, a->jws.url) != 0)
		return acme_problem(req, a, 401, "unauthorized",
				    "the JWS url does not match the request URL"),
		       ACME_DONE;
	if (a->jws.jwk && auth == ACME_KID)
		return acme_problem(req, a, 400, "malformed",
				    "this request must be signed with an account key (kid)"),
		       ACME_DONE;
	if (a->jws.kid && auth == ACME_JWK)
		return acme_problem(req, a, 400, "malformed",
				    "this request must carry the public key (jwk)"),
		       ACME_DONE;
	if (a->jws.kid) {
		size_t bl = strlen(a->base);
		if (strncmp(a->jws.kid, a->base, bl) != 0 ||
		    strncmp(a->jws.kid + bl, "account/", 8) != 0 || !a->jws.kid[bl + 8] ||
		    strchr(a->jws.kid + bl + 8, '/'))
			return acme_problem(req, a, 400, "accountDoesNotExist",
					    "the kid is not an account of this directory"),
			       ACME_DONE;
		rc = load_account(req, a->jws.kid + bl + 8, &a->account);
		if (rc == CS_ENOTFOUND)
			return acme_problem(req, a, 400, "accountDoesNotExist", "no such account"),
			       ACME_DONE;
		if (rc)
			return rc;
		a->account_id = cs_pki_jstr(a->account, "id", "");
		rc = cs_acme_jwk_key(cJSON_GetObjectItemCaseSensitive(a->account, "jwk"), &a->key,
				     &why);
		if (rc)
			return CS_EINTERNAL;
	} else {
		rc = cs_acme_jwk_key(a->jws.jwk, &a->key, &why);
		if (rc)
			return jws_problem(req, a, why);
	}
	if (cs_acme_jws_verify(&a->jws, a->key, &why) != 0)
		return jws_problem(req, a, why);
	if (a->account && strcmp(cs_pki_jstr(a->account, "status", ""), "valid") != 0)
		return acme_problem(req, a, 401, "unauthorized", "account is %s",
				    cs_pki_jstr(a->account, "status", "")),
		       ACME_DONE;
	return 0;
}

void acme_end(struct acme_req *a)
{
	cJSON_Delete(a->config);
	free(a->role);
	free(a->issuer);
	cs_acme_jws_free(&a->jws);
	cJSON_Delete(a->account);
	EVP_PKEY_free(a->key);
	memset(a, 0, sizeof *a);
}

/* ---------------------------------------------------------------- directory, nonce */

static bool eab_required(const struct acme_req *a)
{
	return strcmp(cs_pki_jstr(a->config, "eab_policy", ""), "not-required") != 0;
}

static int acme_directory(struct cs_request *req)
{
	struct acme_req a;
	int rc = acme_begin(req, &a, ACME_NONE);
	if (rc) {
		acme_end(&a);
		return rc == ACME_DONE ? 0 : rc;
	}
	cJSON *d = cJSON_CreateObject();
	static const struct {
		const char *k, *p;
	} eps[] = {{"newNonce", "new-nonce"},
		   {"newAccount", "new-account"},
		   {"newOrder", "new-order"},
		   {"revokeCert", "revoke-cert"},
		   {"keyChange", "key-change"}};
	char u[700];
	for (size_t i = 0; i < CS_ARRAY_LEN(eps); i++) {
		snprintf(u, sizeof u, "%s%s", a.base, eps[i].p);
		cJSON_AddStringToObject(d, eps[i].k, u);
	}
	cJSON *meta = cJSON_AddObjectToObject(d, "meta");
	cJSON_AddBoolToObject(meta, "externalAccountRequired", eab_required(&a));
	char *s = cJSON_PrintUnformatted(d);
	cJSON_Delete(d);
	cs_req_set_raw(req, "application/json", s, strlen(s));
	free(s);
	req->status = 200;
	acme_end(&a);
	return 0;
}

static int acme_new_nonce(struct cs_request *req)
{
	struct acme_req a;
	int rc = acme_begin(req, &a, ACME_NONE);
	if (!rc) {
		acme_add_nonce(req);
		add_index_link(req, &a);
		/* RFC 8555 §7.2: HEAD answers 200, GET 204, neither with a body. */
		req->status = req->is_head ? 200 : 204;
	}
	acme_end(&a);
	return rc == ACME_DONE ? 0 : rc;
}

/* ---------------------------------------------------------------- accounts */

static cJSON *account_view(const cJSON *acc, const struct acme_req *a)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "status", cs_pki_jstr(acc, "status", "valid"));
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(acc, "contact");
	cJSON_AddItemToObject(o, "contact", c ? cJSON_Duplicate(c, true) : cJSON_CreateArray());
	char u[700];
	snprintf(u, sizeof u, "%saccount/%s/orders", a->base, cs_pki_jstr(acc, "id", ""));
	/* Vault answers the orders list at <directory>orders. */
	snprintf(u, sizeof u, "%sorders", a->base);
	cJSON_AddStringToObject(o, "orders", u);
	cJSON_AddBoolToObject(o, "termsOfServiceAgreed", cs_pki_jbool(acc, "tos", false));
	const char *eab = cs_pki_jstr(acc, "eab_key_id", "");
	if (*eab) {
		cJSON *e = cJSON_AddObjectToObject(o, "externalAccountBinding");
		cJSON_AddStringToObject(e, "kid", eab);
	}
	return o;
}

static void account_url(const struct acme_req *a, const char *id, char *out, size_t n)
{
	snprintf(out, n, "%saccount/%s", a->base, id);
}

/* RFC 8555 §7.3: contact URLs are mailto: (we store them, never write to them). */
static const char *check_contact(const cJSON *c)
{
	if (!c)
		return NULL;
	if (!cJSON_IsArray(c))
		return "contact must be an array of URLs";
	const cJSON *v;
	cJSON_ArrayForEach(v, c)
	{
		if (!cJSON_IsString(v) || strncmp(v->valuestring, "mailto:", 7) != 0 ||
		    strlen(v->valuestring) > 320 || strpbrk(v->valuestring, ",?"))
			return "contact must be a list of mailto: URLs";
	}
	return NULL;
}

/* The EAB key of a new-account request, checked, or a problem. *eab_id set on success. */
static int check_eab(struct cs_request *req, struct acme_req *a, const cJSON *eab, char **eab_id)
{
	*eab_id = NULL;
	char *kid = cs_acme_eab_kid(eab);
	if (!kid)
		return acme_problem(req, a, 400, "malformed", "malformed externalAccountBinding"),
		       ACME_DONE;
	char key[200];
	snprintf(key, sizeof key, "acme/eab/%s", kid);
	cJSON *e = NULL;
	int rc = strchr(kid, '/') ? CS_ENOTFOUND : cs_view_get_json(req, key, &e);
	if (rc == CS_ENOTFOUND) {
		free(kid);
		return acme_problem(req, a, 400, "unauthorized", "unknown EAB key"), ACME_DONE;
	}
	if (rc) {
		free(kid);
		return rc;
	}
	/* A key made for one directory works only there (Vault's acme_directory). */
	if (strcmp(cs_pki_jstr(e, "acme_directory", ""), a->dir) != 0) {
		cJSON_Delete(e);
		free(kid);
		return acme_problem(req, a, 400, "unauthorized",
				    "the EAB key is not for this directory"),
		       ACME_DONE;
	}
	const char *kb = cs_pki_jstr(e, "key", "");
	size_t kl = 0;
	uint8_t *hk = cs_b64url_decode(kb, strlen(kb), &kl);
	const char *why = NULL;
	rc = hk ? cs_acme_eab_verify(eab, &a->jws, hk, kl, &why) : CS_EINVAL;
	if (hk)
		cs_zero(hk, kl);
	free(hk);
	cJSON_Delete(e);
	if (rc) {
		free(kid);
		return acme_problem(req, a, 400, "unauthorized", "EAB rejected: %s",
				    why ? why : "bad key"),
		       ACME_DONE;
	}
	*eab_id = kid;
	return 0;
}

static int acme_new_account(struct cs_request *req)
{
	struct acme_req a;
	int rc = acme_begin(req, &a, ACME_JWK);
	if (rc)
		goto out;
	const cJSON *p = a.jws.payload_json;
	char tp[45] = {0};
	if (cs_acme_jwk_thumbprint(a.jws.jwk, tp) != 0) {
		rc = jws_problem(req, &a, "malformed: bad jwk");
		goto out;
	}
	char key[200];
	snprintf(key, sizeof key, "acme/thumbprints/%s", tp);
	cJSON *t = NULL, *acc = NULL;
	rc = cs_view_get_json(req, key, &t);
	if (rc && rc != CS_ENOTFOUND)
		goto out;
	char url[800];
	if (rc == 0) { /* RFC 8555 §7.3.1: an existing key answers its account (200) */
		rc = load_account(req, cs_pki_jstr(t, "id", ""), &acc);
		cJSON_Delete(t);
		if (rc)
			goto out;
		account_url(&a, cs_pki_jstr(acc, "id", ""), url, sizeof url);
		if (strcmp(cs_pki_jstr(acc, "directory", ""), a.dir) != 0)
			rc = acme_problem(req, &a, 400, "unauthorized",
					  "the account belongs to another directory");
		else if (strcmp(cs_pki_jstr(acc, "status", ""), "valid") != 0)
			rc = acme_problem(req, &a, 401, "unauthorized", "account is %s",
					  cs_pki_jstr(acc, "status", ""));
		else
			rc = acme_reply(req, &a, 200, account_view(acc, &a), url);
		cJSON_Delete(acc);
		goto out;
	}
	rc = 0;
	if (cs_pki_jbool(p, "onlyReturnExisting", false)) {
		rc = acme_problem(req, &a, 400, "accountDoesNotExist", "no account for this key");
		goto out;
	}
	const cJSON *contact = cJSON_GetObjectItemCaseSensitive(p, "contact");
	const char *bad = check_contact(contact);
	if (bad) {
		rc = acme_problem(req, &a, 400, "invalidContact", "%s", bad);
		goto out;
	}
	const cJSON *eab = cJSON_GetObjectItemCaseSensitive(p, "externalAccountBinding");
	char *eab_id = NULL;
	if (eab) {
		rc = check_eab(req, &a, eab, &eab_id);
		if (rc)
			goto out;
	} else if (eab_required(&a)) {
		rc = acme_problem(req, &a, 400, "externalAccountRequired",
				  "this directory requires external account binding");
		goto out;
	}
	char id[23];
	acme_id(id);
	acc = cJSON_CreateObject();
	cJSON_AddStringToObject(acc, "id", id);
	cJSON_AddItemToObject(acc, "jwk", cJSON_Duplicate(a.jws.jwk, true));
	cJSON_AddStringToObject(acc, "thumbprint", tp);
	cJSON_AddStringToObject(acc, "status", "valid");
	cJSON_AddItemToObject(acc, "contact",
			      contact ? cJSON_Duplicate(contact, true) : cJSON_CreateArray());
	cJSON_AddBoolToObject(acc, "tos", cs_pki_jbool(p, "termsOfServiceAgreed", false));
	cJSON_AddStringToObject(acc, "directory", a.dir);
	cJSON_AddStringToObject(acc, "eab_key_id", eab_id ? eab_id : "");
	cJSON_AddNumberToObject(acc, "created", (double)acme_now());
	char akey[200];
	snprintf(akey, sizeof akey, "acme/accounts/%s", id);
	t = cJSON_CreateObject();
	cJSON_AddStringToObject(t, "id", id);
	rc = cs_view_put_json(req, akey, acc);
	if (!rc)
		rc = cs_view_put_json(req, key, t);
	if (!rc && eab_id) { /* an EAB key binds one account (Vault deletes it) */
		char ekey[200];
		snprintf(ekey, sizeof ekey, "acme/eab/%s", eab_id);
		rc = cs_view_delete(req, ekey);
	}
	cJSON_Delete(t);
	free(eab_id);
	if (!rc) {
		account_url(&a, id, url, sizeof url);
		rc = acme_reply(req, &a, 201, account_view(acc, &a), url);
	}
	cJSON_Delete(acc);
out:
	acme_end(&a);
	return rc == ACME_DONE ? 0 : rc;
}

static int acme_account(struct cs_request *req)
{
	struct acme_req a;
	int rc = acme_begin(req, &a, ACME_KID);
	if (rc)
		goto out;
	const char *id = cs_req_capture(req, "kid");
	if (strcmp(id, a.account_id) != 0) {
		rc = acme_problem(req, &a, 403, "unauthorized", "not this account's URL");
		goto out;
	}
	const cJSON *p = a.jws.payload_json;
	cJSON *acc = a.account;
	bool changed = false;
	const cJSON *contact = cJSON_GetObjectItemCaseSensitive(p, "contact");
	if (contact) {
		const char *bad = check_contact(contact);
		if (bad) {
			rc = acme_problem(req, &a, 400, "invalidContact", "%s", bad);
			goto out;
		}
		cJSON_ReplaceItemInObject(acc, "contact", cJSON_Duplicate(contact, true));
		changed = true;
	}
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(p, "status");
	if (st) {
		if (!cJSON_IsString(st) || strcmp(st->valuestring, "deactivated") != 0) {
			rc = acme_problem(req, &a, 400, "malformed",
					  "a client may only set status to deactivated");
			goto out;
		}
		cJSON_ReplaceItemInObject(acc, "status", cJSON_CreateString("deactivated"));
		changed = true;
	}
	if (changed) {
		char key[200];
		snprintf(key, sizeof key, "acme/accounts/%s", id);
		rc = cs_view_put_json(req, key, acc);
		if (rc)
			goto out;
	}
	char url[800];
	account_url(&a, id, url, sizeof url);
	rc = acme_reply(req, &a, 200, account_view(acc, &a), url);
out:
	acme_end(&a);
	return rc == ACME_DONE ? 0 : rc;
}

/* ---------------------------------------------------------------- EAB (token-authenticated) */

/* The directory a new-eab path is for: "acme/", "roles/r/acme/", ... */
static void eab_directory(struct cs_request *req, char *out, size_t n)
{
	const char *rel = req->rel ? req->rel : "";
	const char *at = strstr(rel, "acme/new-eab");
	size_t l = at ? (size_t)(at - rel) + 5 : 0;
	snprintf(out, n, "%.*s", (int)l, rel);
}

static int acme_new_eab(struct cs_request *req)
{
	const char *role = cs_req_capture(req, "role");
	if (role) {
		char key[300];
		cJSON *r = NULL;
		snprintf(key, sizeof key, "roles/%s", role);
		int rc = cs_view_get_json(req, key, &r);
		cJSON_Delete(r);
		if (rc == CS_ENOTFOUND)
			return cs_req_error(req, CS_EINVAL, "role %s does not exist", role);
		if (rc)
			return rc;
	}
	char dir[300];
	eab_directory(req, dir, sizeof dir);
	uint8_t k[32];
	cs_random(k, sizeof k);
	char *kb = cs_b64url_encode(k, sizeof k);
	cs_zero(k, sizeof k);
	char id[37];
	cs_uuid(id);
	char t[40];
	acme_time(acme_now(), t, sizeof t);
	cJSON *e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "key_id", id);
	cJSON_AddStringToObject(e, "key_type", "hs");
	cJSON_AddNumberToObject(e, "key_bits", 256);
	cJSON_AddStringToObject(e, "key", kb);
	cJSON_AddStringToObject(e, "acme_directory", dir);
	cJSON_AddStringToObject(e, "created_on", t);
	char key[200];
	snprintf(key, sizeof key, "acme/eab/%s", id);
	int rc = cs_view_put_json(req, key, e);
	if (!rc) {
		cJSON *d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "id", id);
		cJSON_AddStringToObject(d, "key_type", "hs");
		cJSON_AddNumberToObject(d, "key_bits", 256);
		cJSON_AddStringToObject(d, "key", kb);
		cJSON_AddStringToObject(d, "acme_directory", dir);
		cJSON_AddStringToObject(d, "created_on", t);
		cs_req_set_data(req, d);
	}
	cs_zero(kb, strlen(kb));
	free(kb);
	cs_json_delete_wiped(e);
	return rc;
}

static int acme_eab_list(struct cs_request *req)
{
	struct cs_strv ids = {0};
	int rc = cs_view_list(req, "acme/eab/", &ids);
	if (rc) {
		cs_strv_free(&ids);
		return rc;
	}
	cJSON *d = cJSON_CreateObject();
	cJSON *keys = cJSON_AddArrayToObject(d, "keys");
	cJSON *info = cJSON_AddObjectToObject(d, "key_info");
	for (size_t i = 0; i < ids.n; i++) {
		char key[200];
		snprintf(key, sizeof key, "acme/eab/%s", ids.v[i]);
		cJSON *e = NULL;
		if (cs_view_get_json(req, key, &e) != 0)
			continue;
		cJSON_AddItemToArray(keys, cJSON_CreateString(ids.v[i]));
		cJSON *o = cJSON_AddObjectToObject(info, ids.v[i]);
		cJSON_AddStringToObject(o, "key_type", cs_pki_jstr(e, "key_type", "hs"));
		cJSON_AddStringToObject(o, "acme_directory", cs_pki_jstr(e, "acme_directory", ""));
		cJSON_AddStringToObject(o, "created_on", cs_pki_jstr(e, "created_on", ""));
		cs_json_delete_wiped(e);
	}
	cs_strv_free(&ids);
	cs_req_set_data(req, d);
	return 0;
}

static int acme_eab_delete(struct cs_request *req)
{
	const char *id = cs_req_capture(req, "key_id");
	char key[200];
	snprintf(key, sizeof key, "acme/eab/%s", id);
	cJSON *e = NULL;
	int rc = cs_view_get_json(req, key, &e);
	cs_json_delete_wiped(e);
	if (rc == CS_ENOTFOUND)
		return 0; /* Vault: deleting a missing key is not an error */
	return rc ? rc : cs_view_delete(req, key);
}

/* ---------------------------------------------------------------- the table */

static const struct cs_field config_acme_fields[] = {
    {.name = "enabled", .type = CS_FIELD_BOOL, .desc = "serve ACME"},
    {.name = "allowed_issuers", .type = CS_FIELD_STRLIST, .desc = "issuers ACME may use (*)"},
    {.name = "allowed_roles", .type = CS_FIELD_STRLIST, .desc = "roles ACME may use (*)"},
    {.name = "allow_role_ext_key_usage", .type = CS_FIELD_BOOL, .desc = "keep role EKUs"},
    {.name = "default_directory_policy",
     .type = CS_FIELD_STRING,
     .desc = "acme/: sign-verbatim, role:<name> or forbid"},
    {.name = "eab_policy",
     .type = CS_FIELD_STRING,
     .desc = "not-required, new-account-required or always-required"},
    {.name = "dns_resolver", .type = CS_FIELD_STRING, .desc = "host:port for dns-01 lookups"},
    {.name = "max_ttl", .type = CS_FIELD_DURATION, .desc = "accepted"},
    {.name = NULL},
};

#define ACME_UNAUTH (CS_PATH_UNAUTH | CS_PATH_ANY_FIELDS)

#define ACME_ROWS(P)                                                                               \
	{.pattern = P "acme/directory",                                                            \
	 .ops = {[CS_OP_READ] = acme_directory},                                                   \
	 .flags = ACME_UNAUTH,                                                                     \
	 .synopsis = "ACME directory (RFC 8555 §7.1.1)"},                                          \
	    {.pattern = P "acme/new-nonce",                                                        \
	     .ops = {[CS_OP_READ] = acme_new_nonce},                                               \
	     .flags = ACME_UNAUTH,                                                                 \
	     .synopsis = "ACME fresh nonce (HEAD or GET)"},                                        \
	    {.pattern = P "acme/new-account",                                                      \
	     .ops = {[CS_OP_UPDATE] = acme_new_account},                                           \
	     .flags = ACME_UNAUTH,                                                                 \
	     .synopsis = "ACME account creation or lookup"},                                       \
	    {.pattern = P "acme/account/{kid}",                                                    \
	     .ops = {[CS_OP_UPDATE] = acme_account},                                               \
	     .flags = ACME_UNAUTH,                                                                 \
	     .synopsis = "ACME account read, update or deactivation"},                             \
	    {.pattern = P "acme/new-order",                                                        \
	     .ops = {[CS_OP_UPDATE] = acme_new_order},                                             \
	     .flags = ACME_UNAUTH,                                                                 \
	     .synopsis = "ACME new order"},                                                        \
	    {.pattern = P "acme/orders",                                                           \
	     .ops = {[CS_OP_UPDATE] = acme_orders},                                                \
	     .flags = ACME_UNAUTH,                                                                 \
	     .synopsis = "ACME: the account's orders"},                                            \
	    {.pattern = P "acme/order/{order_id}",                                                 \
	     .ops = {[CS_OP_UPDATE] = acme_order},                                                 \
	     .flags = ACME_UNAUTH,                                                                 \
	     .synopsis = "ACME order"},                                                            \
	    {.pattern = P "acme/order/{order_id}/finalize",                                        \
	     .ops = {[CS_OP_UPDATE] = acme_finalize},                                              \
	     .flags = ACME_UNAUTH,                                                                 \
	     .synopsis = "ACME finalize: sign the order's CSR"},                                   \
	    {.pattern = P "acme/order/{order_id}/cert",                                            \
	     .ops = {[CS_OP_UPDATE] = acme_cert},                                                  \
	     .flags = ACME_UNAUTH,                                                                 \
	     .synopsis = "ACME certificate chain of a valid order"},                               \
	    {.pattern = P "acme/authorization/{auth_id}",                                          \
	     .ops = {[CS_OP_UPDATE] = acme_authz},                                                 \
	     .flags = ACME_UNAUTH,                                                                 \
	     .synopsis = "ACME authorization"},                                                    \
	    {.pattern = P "acme/challenge/{auth_id}/{challenge_type}",                             \
	     .ops = {[CS_OP_UPDATE] = acme_challenge},                                             \
	     .flags = ACME_UNAUTH,                                                                 \
	     .synopsis = "ACME challenge: ask for validation"},                                    \
	    {.pattern = P "acme/revoke-cert",                                                      \
	     .ops = {[CS_OP_UPDATE] = acme_revoke},                                                \
	     .flags = ACME_UNAUTH,                                                                 \
	     .synopsis = "ACME revocation"},                                                       \
	    {.pattern = P "acme/key-change",                                                       \
	     .ops = {[CS_OP_UPDATE] = acme_key_change},                                            \
	     .flags = ACME_UNAUTH,                                                                 \
	     .synopsis = "ACME account key roll-over"},                                            \
	{                                                                                          \
		.pattern = P "acme/new-eab", .ops = {[CS_OP_UPDATE] = acme_new_eab},               \
		.synopsis = "a new external account binding key for this directory"                \
	}

static const struct cs_path acme_paths[] = {
    {.pattern = "config/acme",
     .fields = config_acme_fields,
     .ops = {[CS_OP_READ] = config_acme_read, [CS_OP_UPDATE] = config_acme_write},
     .synopsis = "ACME settings"},
    {.pattern = "eab", .ops = {[CS_OP_LIST] = acme_eab_list}, .synopsis = "list unused EAB keys"},
    {.pattern = "eab/{key_id}",
     .ops = {[CS_OP_DELETE] = acme_eab_delete},
     .synopsis = "delete an unused EAB key"},
    ACME_ROWS(""),
    ACME_ROWS("roles/{role}/"),
    ACME_ROWS("issuer/{ref}/"),
    ACME_ROWS("issuer/{ref}/roles/{role}/"),
};

const struct cs_path_table cs_pki_acme_tables[] = {
    {.paths = acme_paths, .n = CS_ARRAY_LEN(acme_paths)},
};
