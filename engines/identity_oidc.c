/*
 * Identity tokens (Vault's identity/oidc/...): signed JWTs that state which entity the
 * caller is, for services that trust custos as an OIDC provider.
 *
 * Storage, under the identity mount (barrier-encrypted JSON):
 *   oidc/config        {"issuer"}
 *   oidc/key/<name>    {"algorithm", "rotation_period", "verification_ttl",
 *                       "allowed_client_ids", "last_rotation",
 *                       "signing": {"kid", "pem"},          the current private key
 *                       "public": [{"kid", "jwk", "expire"}]} current (expire 0) and
 *                                                            rotated-out keys
 *   oidc/role/<name>   {"key", "template", "ttl", "client_id"}
 *
 * Keys are generated, and tokens signed, on the worker pool (cs_req_defer): RSA is
 * slow. A rotated-out public key stays published for the key's verification_ttl, so
 * tokens it signed still verify until they expire. Rotation on schedule runs in the
 * identity backend's periodic function, on the active node.
 */
#include "engines/identity_oidc.h"

#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engines/acme_jws.h"
#include "engines/identity_internal.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/util.h"

#define DEFAULT_PERIOD (24 * 3600)
#define KEY_PREFIX     "oidc/key/"
#define ROLE_PREFIX    "oidc/role/"

static const char *const reserved_claims[] = {"iat", "aud", "exp", "iss", "sub", "namespace"};

static cJSON *render_template(const char *tmpl, const cJSON *entity, const cJSON *groups,
			      const char **why);

static int64_t now_s(void)
{
	return (int64_t)(cs_now_ns() / 1000000000);
}

static const char *jstr(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int64_t jint(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

/* A name that is one storage segment. */
static int check_name(struct cs_request *req, const char *name)
{
	if (!name || !*name || strlen(name) > 128 || strchr(name, '/'))
		return cs_req_error(req, CS_EINVAL, "invalid name");
	return 0;
}

static int get_obj(struct cs_request *req, const char *prefix, const char *name, cJSON **out)
{
	char key[256];
	snprintf(key, sizeof key, "%s%s", prefix, name);
	return cs_view_get_json(req, key, out);
}

static int put_obj(struct cs_request *req, const char *prefix, const char *name, const cJSON *o)
{
	char key[256];
	snprintf(key, sizeof key, "%s%s", prefix, name);
	return cs_view_put_json(req, key, o);
}

/* ---------------------------------------------------------------- algorithms and keys */

struct alg {
	const char *name;
	const char *md; /* NULL for EdDSA */
	int ec_bytes;   /* ECDSA: size of r and s */
};

static const struct alg algs[] = {
    {.name = "RS256", .md = "SHA256"},
    {.name = "RS384", .md = "SHA384"},
    {.name = "RS512", .md = "SHA512"},
    {.name = "ES256", .md = "SHA256", .ec_bytes = 32},
    {.name = "ES384", .md = "SHA384", .ec_bytes = 48},
    {.name = "ES512", .md = "SHA512", .ec_bytes = 66},
    {.name = "EdDSA"},
};

static const struct alg *find_alg(const char *name)
{
	for (size_t i = 0; name && i < CS_ARRAY_LEN(algs); i++)
		if (strcmp(algs[i].name, name) == 0)
			return &algs[i];
	return NULL;
}

static EVP_PKEY *keygen(const struct alg *a)
{
	if (a->name[0] == 'R')
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	if (a->ec_bytes)
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC",
					 a->ec_bytes == 32   ? "P-256"
					 : a->ec_bytes == 48 ? "P-384"
							     : "P-521");
	return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
}

static char *pem_of(EVP_PKEY *k)
{
	BIO *b = BIO_new(BIO_s_secmem());
	char *out = NULL;
	if (b && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL)) {
		char *p;
		long n = BIO_get_mem_data(b, &p);
		out = malloc((size_t)n + 1);
		if (!out)
			abort();
		memcpy(out, p, (size_t)n);
		out[n] = '\0';
	}
	BIO_free(b);
	return out;
}

static EVP_PKEY *key_of_pem(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	return k;
}

/* The JOSE signature of `input` by `k` as `a` (ECDSA as r||s), base64url; NULL on error. */
static char *sign_b64(EVP_PKEY *k, const struct alg *a, const char *input)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	size_t sl = 0;
	uint8_t *sig = NULL;
	char *out = NULL;
	if (md && EVP_DigestSignInit_ex(md, NULL, a->md, NULL, NULL, k, NULL) == 1 &&
	    EVP_DigestSign(md, NULL, &sl, (const uint8_t *)input, strlen(input)) == 1 &&
	    (sig = malloc(sl)) &&
	    EVP_DigestSign(md, sig, &sl, (const uint8_t *)input, strlen(input)) == 1) {
		if (a->ec_bytes) {
			const uint8_t *q = sig;
			ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)sl);
			uint8_t rs[2 * 66];
			if (es && BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, a->ec_bytes) > 0 &&
			    BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + a->ec_bytes, a->ec_bytes) > 0)
				out = cs_b64url_encode(rs, (size_t)a->ec_bytes * 2);
			ECDSA_SIG_free(es);
		} else {
			out = cs_b64url_encode(sig, sl);
		}
	}
	free(sig);
	EVP_MD_CTX_free(md);
	return out;
}

/* ---------------------------------------------------------------- the pool job */

/* Work for the pool: generate a key (pem_in NULL) and/or sign `input` with it. */
struct job {
	struct cs_async async;
	const struct alg *alg;
	char *pem;                /* in: the key to sign with; out: the generated key (secret) */
	cJSON *jwk;               /* out: the generated key's public JWK */
	char *input;              /* in: JWT header.payload to sign, or NULL */
	char *sig;                /* out */
	char name[160];           /* the key or role the request is about */
	int64_t verification_ttl; /* rotate: the override, or -1 */
	cJSON *settings;          /* key create/update: the record to write (without keys) */
	bool failed;
};

static void job_free(struct job *j)
{
	if (j->pem) {
		cs_zero(j->pem, strlen(j->pem));
		free(j->pem);
	}
	cJSON_Delete(j->jwk);
	cJSON_Delete(j->settings);
	free(j->input);
	free(j->sig);
	free(j);
}

static void job_work(struct cs_async *a)
{
	struct job *j = CS_CONTAINER_OF(a, struct job, async);
	EVP_PKEY *k = NULL;
	if (j->pem) {
		k = key_of_pem(j->pem);
	} else {
		k = keygen(j->alg);
		j->pem = k ? pem_of(k) : NULL;
		j->jwk = k ? cs_acme_key_jwk(k) : NULL;
	}
	if (k && j->input)
		j->sig = sign_b64(k, j->alg, j->input);
	j->failed = !k || !j->pem || (!j->input && !j->jwk) || (j->input && !j->sig);
	EVP_PKEY_free(k);
}

static struct job *job_new(const struct alg *a, cs_async_resume_fn resume)
{
	struct job *j = calloc(1, sizeof *j);
	if (!j)
		abort();
	j->alg = a;
	j->verification_ttl = -1;
	j->async.work = job_work;
	j->async.resume = resume;
	return j;
}

/* ---------------------------------------------------------------- keys */

/* Install the freshly generated key of `j` as k's signing key; the old one stays
 * published until now + verification_ttl. Drops rotated-out keys that expired. */
static void install_key(cJSON *k, struct job *j)
{
	int64_t now = now_s();
	int64_t vttl = j->verification_ttl >= 0 ? j->verification_ttl : jint(k, "verification_ttl");
	cJSON *pub = cJSON_GetObjectItemCaseSensitive(k, "public");
	if (!cJSON_IsArray(pub)) {
		pub = cJSON_CreateArray();
		cs_id_set(k, "public", pub);
	}
	for (int i = cJSON_GetArraySize(pub) - 1; i >= 0; i--) {
		cJSON *p = cJSON_GetArrayItem(pub, i);
		int64_t exp = jint(p, "expire");
		if (exp == 0)
			cs_id_set(p, "expire", cJSON_CreateNumber((double)(now + vttl)));
		else if (exp <= now)
			cJSON_DeleteItemFromArray(pub, i);
	}
	char kid[37];
	cs_uuid(kid);
	cJSON *jwk = j->jwk;
	j->jwk = NULL;
	cJSON_AddStringToObject(jwk, "kid", kid);
	cJSON_AddStringToObject(jwk, "alg", j->alg->name);
	cJSON_AddStringToObject(jwk, "use", "sig");
	cJSON *p = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "kid", kid);
	cJSON_AddItemToObject(p, "jwk", jwk);
	cJSON_AddNumberToObject(p, "expire", 0);
	cJSON_AddItemToArray(pub, p);
	cJSON *s = cJSON_CreateObject();
	cJSON_AddStringToObject(s, "kid", kid);
	cJSON_AddStringToObject(s, "pem", j->pem);
	cs_id_set(k, "signing", s);
	cs_id_set(k, "last_rotation", cJSON_CreateNumber((double)now));
}

/* resume of key creation, update with a new algorithm, rotate and periodic rotation:
 * re-read the key (it may have changed meanwhile) and install the new signing key. A
 * create or update brings its settings (the handler could not write them: a deferred
 * handler's transaction is dropped), which keep the stored key's published history. */
static int key_resume(struct cs_request *req, struct cs_async *a, int status)
{
	struct job *j = CS_CONTAINER_OF(a, struct job, async);
	int rc = status;
	if (!rc && j->failed)
		rc = cs_req_error(req, CS_EINTERNAL, "generating the signing key failed");
	cJSON *k = NULL;
	if (!rc)
		rc = get_obj(req, KEY_PREFIX, j->name, &k);
	if (!rc && j->settings) {
		cJSON *pub = cJSON_DetachItemFromObjectCaseSensitive(k, "public");
		cs_json_delete_wiped(k);
		k = j->settings;
		j->settings = NULL;
		if (pub)
			cs_id_set(k, "public", pub);
	} else if (rc == CS_ENOTFOUND && j->settings) {
		k = j->settings;
		j->settings = NULL;
		rc = 0;
	} else if (rc == CS_ENOTFOUND) {
		rc = cs_req_error(req, CS_EINVAL, "no named key found");
	}
	if (!rc && strcmp(jstr(k, "algorithm") ? jstr(k, "algorithm") : "", j->alg->name) != 0)
		rc = cs_req_error(req, CS_EBUSY, "the key changed while it was rotated; retry");
	if (!rc) {
		install_key(k, j);
		rc = put_obj(req, KEY_PREFIX, j->name, k);
	}
	cs_json_delete_wiped(k);
	job_free(j);
	return rc;
}

static int start_rotation(struct cs_request *req, const char *name, const struct alg *a,
			  int64_t verification_ttl, cJSON *settings)
{
	struct job *j = job_new(a, key_resume);
	snprintf(j->name, sizeof j->name, "%s", name);
	j->verification_ttl = verification_ttl;
	j->settings = settings;
	return cs_req_defer(req, &j->async);
}

static int key_write(struct cs_request *req)
{
	const char *name = cs_req_capture(req, "name");
	int rc = check_name(req, name);
	if (rc)
		return rc;
	cJSON *k = NULL;
	rc = get_obj(req, KEY_PREFIX, name, &k);
	if (rc && rc != CS_ENOTFOUND)
		return rc;
	bool create = rc == CS_ENOTFOUND;
	if (create)
		k = cJSON_CreateObject();
	rc = 0;
	const char *old_alg = jstr(k, "algorithm");
	const char *alg_name = cs_req_str(req, "algorithm", old_alg ? old_alg : "RS256");
	const struct alg *a = find_alg(alg_name);
	int64_t period = cs_req_int(req, "rotation_period",
				    create ? DEFAULT_PERIOD : jint(k, "rotation_period"));
	int64_t vttl = cs_req_int(req, "verification_ttl",
				  create ? DEFAULT_PERIOD : jint(k, "verification_ttl"));
	if (!a)
		rc = cs_req_error(req, CS_EINVAL,
				  "unknown signing algorithm \"%s\"; one of RS256, RS384, RS512, "
				  "ES256, ES384, ES512, EdDSA",
				  alg_name);
	else if (period < 60)
		rc = cs_req_error(req, CS_EINVAL, "rotation_period must be at least one minute");
	else if (vttl < 0 || vttl > 10 * period)
		rc = cs_req_error(req, CS_EINVAL,
				  "verification_ttl cannot be longer than 10x rotation period");
	if (rc) {
		cJSON_Delete(k);
		return rc;
	}
	cs_id_set(k, "algorithm", cJSON_CreateString(a->name));
	cs_id_set(k, "rotation_period", cJSON_CreateNumber((double)period));
	cs_id_set(k, "verification_ttl", cJSON_CreateNumber((double)vttl));
	if (cs_req_has(req, "allowed_client_ids") || create) {
		const cJSON *ids = cs_req_get(req, "allowed_client_ids");
		cs_id_set(k, "allowed_client_ids",
			  ids ? cJSON_Duplicate(ids, 1) : cJSON_CreateArray());
	}
	bool regenerate = create || !old_alg || strcmp(old_alg, a->name) != 0;
	if (!regenerate) {
		rc = put_obj(req, KEY_PREFIX, name, k);
		cs_json_delete_wiped(k);
		return rc;
	}
	/* A new signing key first (on the pool); the resume writes the settings with it. */
	cJSON_DeleteItemFromObjectCaseSensitive(k, "signing");
	cJSON_DeleteItemFromObjectCaseSensitive(k, "public");
	return start_rotation(req, name, a, -1, k);
}

static int key_read(struct cs_request *req)
{
	cJSON *k = NULL;
	int rc = get_obj(req, KEY_PREFIX, cs_req_capture(req, "name"), &k);
	if (rc)
		return rc;
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "algorithm", jstr(k, "algorithm"));
	cJSON_AddNumberToObject(d, "rotation_period", (double)jint(k, "rotation_period"));
	cJSON_AddNumberToObject(d, "verification_ttl", (double)jint(k, "verification_ttl"));
	const cJSON *ids = cJSON_GetObjectItemCaseSensitive(k, "allowed_client_ids");
	cJSON_AddItemToObject(d, "allowed_client_ids",
			      ids ? cJSON_Duplicate(ids, 1) : cJSON_CreateArray());
	cs_json_delete_wiped(k);
	cs_req_set_data(req, d);
	return 0;
}

static int list_keys(struct cs_request *req, const char *prefix)
{
	struct cs_strv v = {0};
	int rc = cs_view_list(req, prefix, &v);
	if (!rc && v.n == 0)
		rc = CS_ENOTFOUND;
	if (!rc) {
		cJSON *d = cJSON_CreateObject(), *keys = cJSON_AddArrayToObject(d, "keys");
		for (size_t i = 0; i < v.n; i++)
			cJSON_AddItemToArray(keys, cJSON_CreateString(v.v[i]));
		cs_req_set_data(req, d);
	}
	cs_strv_free(&v);
	return rc;
}

static int key_list(struct cs_request *req)
{
	return list_keys(req, KEY_PREFIX);
}

static int role_list(struct cs_request *req)
{
	return list_keys(req, ROLE_PREFIX);
}

static int key_delete(struct cs_request *req)
{
	const char *name = cs_req_capture(req, "name");
	struct cs_strv roles = {0};
	int rc = cs_view_list(req, ROLE_PREFIX, &roles);
	char users[1024] = "";
	size_t used = 0;
	for (size_t i = 0; !rc && i < roles.n; i++) {
		cJSON *r = NULL;
		if (get_obj(req, ROLE_PREFIX, roles.v[i], &r) == 0 && jstr(r, "key") &&
		    strcmp(jstr(r, "key"), name) == 0 &&
		    used + strlen(roles.v[i]) + 3 < sizeof users)
			used += (size_t)snprintf(users + used, sizeof users - used, "%s%s",
						 used ? ", " : "", roles.v[i]);
		cJSON_Delete(r);
	}
	cs_strv_free(&roles);
	if (rc && rc != CS_ENOTFOUND)
		return rc;
	if (used)
		return cs_req_error(
		    req, CS_EINVAL,
		    "unable to delete key \"%s\" because it is currently referenced "
		    "by these roles: %s",
		    name, users);
	char key[256];
	snprintf(key, sizeof key, "%s%s", KEY_PREFIX, name);
	rc = cs_view_delete(req, key);
	return rc == CS_ENOTFOUND ? 0 : rc;
}

static int key_rotate(struct cs_request *req)
{
	const char *name = cs_req_capture(req, "name");
	cJSON *k = NULL;
	int rc = get_obj(req, KEY_PREFIX, name, &k);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL, "no named key found");
	if (rc)
		return rc;
	const struct alg *a = find_alg(jstr(k, "algorithm"));
	cs_json_delete_wiped(k);
	if (!a)
		return cs_req_error(req, CS_EINTERNAL, "the key has no valid algorithm");
	int64_t vttl =
	    cs_req_has(req, "verification_ttl") ? cs_req_int(req, "verification_ttl", 0) : -1;
	return start_rotation(req, name, a, vttl, NULL);
}

/* ---------------------------------------------------------------- roles */

static int role_write(struct cs_request *req)
{
	const char *name = cs_req_capture(req, "name");
	int rc = check_name(req, name);
	if (rc)
		return rc;
	cJSON *r = NULL;
	rc = get_obj(req, ROLE_PREFIX, name, &r);
	if (rc && rc != CS_ENOTFOUND)
		return rc;
	bool create = rc == CS_ENOTFOUND;
	if (create)
		r = cJSON_CreateObject();
	const char *key = cs_req_str(req, "key", jstr(r, "key"));
	const char *tmpl = cs_req_str(req, "template", jstr(r, "template"));
	int64_t ttl = cs_req_int(req, "ttl", create ? DEFAULT_PERIOD : jint(r, "ttl"));
	cJSON *k = NULL, *t = NULL;
	const char *twhy = NULL;
	rc = 0;
	if (!key || !*key)
		rc = cs_req_error(req, CS_EINVAL, "the key parameter is required");
	else if (get_obj(req, KEY_PREFIX, key, &k))
		rc = cs_req_error(req, CS_EINVAL, "key \"%s\" does not exist", key);
	else if (ttl > jint(k, "verification_ttl"))
		rc = cs_req_error(req, CS_EINVAL,
				  "a role's token ttl cannot be longer than the verification_ttl "
				  "of the key it references");
	else if (!(t = render_template(tmpl, NULL, NULL, &twhy)))
		rc = cs_req_error(req, CS_EINVAL, "%s", twhy);
	for (size_t i = 0; !rc && i < CS_ARRAY_LEN(reserved_claims); i++)
		if (cJSON_GetObjectItemCaseSensitive(t, reserved_claims[i]))
			rc = cs_req_error(req, CS_EINVAL,
					  "top level key \"%s\" not allowed. Restricted keys: iat, "
					  "aud, exp, iss, sub, namespace",
					  reserved_claims[i]);
	cJSON_Delete(t);
	cs_json_delete_wiped(k);
	if (!rc) {
		cs_id_set(r, "key", cJSON_CreateString(key));
		cs_id_set(r, "template", cJSON_CreateString(tmpl ? tmpl : ""));
		cs_id_set(r, "ttl", cJSON_CreateNumber((double)ttl));
		if (!jstr(r, "client_id")) {
			char id[27];
			cs_random_base62(id, 26);
			cs_id_set(r, "client_id", cJSON_CreateString(id));
		}
		rc = put_obj(req, ROLE_PREFIX, name, r);
	}
	cJSON_Delete(r);
	return rc;
}

static int role_read(struct cs_request *req)
{
	cJSON *r = NULL;
	int rc = get_obj(req, ROLE_PREFIX, cs_req_capture(req, "name"), &r);
	if (rc)
		return rc;
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "key", jstr(r, "key"));
	cJSON_AddStringToObject(d, "template", jstr(r, "template") ? jstr(r, "template") : "");
	cJSON_AddNumberToObject(d, "ttl", (double)jint(r, "ttl"));
	cJSON_AddStringToObject(d, "client_id", jstr(r, "client_id"));
	cJSON_Delete(r);
	cs_req_set_data(req, d);
	return 0;
}

static int role_delete(struct cs_request *req)
{
	char key[256];
	snprintf(key, sizeof key, "%s%s", ROLE_PREFIX, cs_req_capture(req, "name"));
	int rc = cs_view_delete(req, key);
	return rc == CS_ENOTFOUND ? 0 : rc;
}

/* ---------------------------------------------------------------- config */

/* The token issuer: "<issuer or api_addr>/v1/identity/oidc". Malloc'd. */
static char *issuer_of(struct cs_request *req)
{
	cJSON *c = NULL;
	(void)cs_view_get_json(req, "oidc/config", &c);
	const char *base = jstr(c, "issuer");
	char api[512];
	if (!base || !*base) {
		cs_req_api_addr(req, api, sizeof api);
		base = api;
	}
	size_t n = strlen(base) + 32;
	char *out = malloc(n);
	if (!out)
		abort();
	size_t bl = strlen(base);
	while (bl && base[bl - 1] == '/')
		bl--;
	snprintf(out, n, "%.*s/v1/identity/oidc", (int)bl, base);
	cJSON_Delete(c);
	return out;
}

static int config_read(struct cs_request *req)
{
	cJSON *c = NULL;
	int rc = cs_view_get_json(req, "oidc/config", &c);
	if (rc && rc != CS_ENOTFOUND)
		return rc;
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "issuer", jstr(c, "issuer") ? jstr(c, "issuer") : "");
	cJSON_Delete(c);
	cs_req_set_data(req, d);
	return 0;
}

static int config_write(struct cs_request *req)
{
	const char *issuer = cs_req_str(req, "issuer", "");
	if (*issuer &&
	    ((strncmp(issuer, "https://", 8) != 0 && strncmp(issuer, "http://", 7) != 0) ||
	     strpbrk(issuer, "?# ") || strlen(issuer) > 512))
		return cs_req_error(req, CS_EINVAL,
				    "invalid issuer, which must include only a "
				    "scheme, host, and optional port (e.g. "
				    "https://example.com:8200)");
	cJSON *c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "issuer", issuer);
	int rc = cs_view_put_json(req, "oidc/config", c);
	cJSON_Delete(c);
	return rc;
}

/* ---------------------------------------------------------------- tokens */

/*
 * The claims a role's template adds, Vault's way: the template is JSON text in which
 * "{{identity.entity....}}" and "{{time.now[.plus|.minus.<duration>]}}" stand for JSON
 * values (unquoted: {"groups": {{identity.entity.groups.names}}}); a value that does not
 * exist renders as null and its claim is left out.
 */
static cJSON *alias_value(const cJSON *entity, const char *acc, const char *field)
{
	const cJSON *al;
	cJSON_ArrayForEach(al, cJSON_GetObjectItemCaseSensitive(entity, "aliases"))
	{
		if (strcmp(cs_id_str(al, "mount_accessor"), acc) != 0)
			continue;
		if (strcmp(field, "id") == 0 || strcmp(field, "name") == 0)
			return cJSON_CreateString(cs_id_str(al, field));
		const char *which =
		    strncmp(field, "custom_metadata", 15) == 0 ? "custom_metadata" : "metadata";
		size_t wl = strlen(which);
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(al, which);
		if (strcmp(field, which) == 0)
			return cJSON_IsObject(m) ? cJSON_Duplicate(m, 1) : cJSON_CreateObject();
		if (strncmp(field, which, wl) == 0 && field[wl] == '.') {
			const char *v = jstr(m, field + wl + 1);
			return v ? cJSON_CreateString(v) : NULL;
		}
	}
	return NULL;
}

/* The value of one template expression (without braces), or NULL: missing. *bad is set
 * for an expression Vault does not know. */
static cJSON *template_value(const char *expr, const cJSON *entity, const cJSON *groups,
			     int64_t now, bool *bad)
{
	if (strcmp(expr, "time.now") == 0)
		return cJSON_CreateNumber((double)now);
	if (strncmp(expr, "time.now.plus.", 14) == 0 || strncmp(expr, "time.now.minus.", 15) == 0) {
		bool plus = expr[9] == 'p';
		int64_t d = 0;
		if (cs_parse_duration(expr + (plus ? 14 : 15), &d)) {
			*bad = true;
			return NULL;
		}
		return cJSON_CreateNumber((double)(plus ? now + d : now - d));
	}
	static const char pre[] = "identity.entity.";
	if (strncmp(expr, pre, sizeof pre - 1) != 0) {
		*bad = true;
		return NULL;
	}
	const char *path = expr + sizeof pre - 1;
	if (strcmp(path, "id") == 0 || strcmp(path, "name") == 0)
		return cJSON_CreateString(cs_id_str(entity, path));
	if (strcmp(path, "metadata") == 0) {
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(entity, "metadata");
		return cJSON_IsObject(m) ? cJSON_Duplicate(m, 1) : cJSON_CreateObject();
	}
	if (strncmp(path, "metadata.", 9) == 0) {
		const char *v =
		    jstr(cJSON_GetObjectItemCaseSensitive(entity, "metadata"), path + 9);
		return v ? cJSON_CreateString(v) : NULL;
	}
	if (strcmp(path, "groups.ids") == 0 || strcmp(path, "groups.names") == 0) {
		cJSON *arr = cJSON_CreateArray();
		const cJSON *g;
		cJSON_ArrayForEach(g, groups)
		{
			cJSON_AddItemToArray(
			    arr, cJSON_CreateString(cs_id_str(g, path[7] == 'i' ? "id" : "name")));
		}
		return arr;
	}
	if (strncmp(path, "aliases.", 8) == 0) {
		const char *dot = strchr(path + 8, '.');
		if (!dot || dot == path + 8 || dot - (path + 8) > 127) {
			*bad = true;
			return NULL;
		}
		char acc[128];
		snprintf(acc, sizeof acc, "%.*s", (int)(dot - (path + 8)), path + 8);
		return alias_value(entity, acc, dot + 1);
	}
	*bad = true;
	return NULL;
}

/* Render `tmpl` for `entity` (NULL: a check with no entity) into a JSON object of claims,
 * or NULL with *why. */
static cJSON *render_template(const char *tmpl, const cJSON *entity, const cJSON *groups,
			      const char **why)
{
	*why = "error parsing template JSON";
	if (!tmpl || !*tmpl)
		return cJSON_CreateObject();
	char *dec = NULL;
	if (tmpl[strspn(tmpl, " \t\r\n")] != '{') { /* Vault also takes it base64-encoded */
		size_t n = 0;
		uint8_t *raw = cs_b64_decode(tmpl, strlen(tmpl), &n);
		if (!raw)
			return NULL;
		dec = strndup((const char *)raw, n);
		free(raw);
		tmpl = dec;
	}
	struct cs_buf out = CS_BUF_INIT;
	int64_t now = now_s();
	bool bad = false;
	const char *p = tmpl;
	while (*p && !bad) {
		const char *open = strstr(p, "{{");
		if (!open) {
			cs_buf_append(&out, p, strlen(p));
			break;
		}
		cs_buf_append(&out, p, (size_t)(open - p));
		const char *close = strstr(open + 2, "}}");
		if (!close || close - open > 300) {
			bad = true;
			break;
		}
		char expr[300];
		size_t el = (size_t)(close - open - 2);
		snprintf(expr, sizeof expr, "%.*s", (int)el, open + 2);
		/* trim */
		char *e = expr;
		while (*e == ' ')
			e++;
		size_t l = strlen(e);
		while (l && e[l - 1] == ' ')
			e[--l] = '\0';
		cJSON *v = template_value(e, entity ? entity : &(cJSON){0}, groups, now, &bad);
		char *txt = v ? cJSON_PrintUnformatted(v) : NULL;
		cs_buf_append(&out, txt ? txt : "null", txt ? strlen(txt) : 4);
		free(txt);
		cJSON_Delete(v);
		p = close + 2;
	}
	free(dec);
	cJSON *claims = bad ? NULL : cJSON_ParseWithLength((const char *)out.data, out.len);
	cs_buf_free(&out);
	if (bad)
		*why = "error parsing template: unknown or malformed template expression";
	if (claims && !cJSON_IsObject(claims)) {
		cJSON_Delete(claims);
		claims = NULL;
	}
	for (cJSON *c = claims ? claims->child : NULL, *next; c; c = next) {
		next = c->next;
		if (cJSON_IsNull(c))
			cJSON_Delete(cJSON_DetachItemViaPointer(claims, c));
	}
	return claims;
}

static int token_resume(struct cs_request *req, struct cs_async *a, int status)
{
	struct job *j = CS_CONTAINER_OF(a, struct job, async);
	int rc = status;
	if (!rc && j->failed)
		rc = cs_req_error(req, CS_EINTERNAL, "signing the token failed");
	if (!rc) {
		size_t n = strlen(j->input) + strlen(j->sig) + 2;
		char *tok = malloc(n);
		if (!tok)
			abort();
		snprintf(tok, n, "%s.%s", j->input, j->sig);
		cJSON *d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "token", tok);
		cJSON_AddStringToObject(d, "client_id", j->name);
		cJSON_AddNumberToObject(d, "ttl", (double)j->verification_ttl);
		cs_zero(tok, n);
		free(tok);
		cs_req_set_data(req, d);
	}
	job_free(j);
	return rc;
}

static int token_issue(struct cs_request *req)
{
	const char *name = cs_req_capture(req, "name");
	cJSON *r = NULL, *k = NULL, *entity = NULL, *direct = NULL, *inherited = NULL;
	const char *eid = req->token_entry ? jstr(req->token_entry, "entity_id") : NULL;
	int rc = get_obj(req, ROLE_PREFIX, name, &r);
	if (rc == CS_ENOTFOUND)
		rc = cs_req_error(req, CS_EINVAL, "role \"%s\" not found", name);
	else if (!rc && (!eid || !*eid))
		rc = cs_req_error(req, CS_EINVAL, "no entity associated with the request's token");
	if (!rc && get_obj(req, KEY_PREFIX, jstr(r, "key"), &k))
		rc = cs_req_error(req, CS_EINVAL, "key \"%s\" not found", jstr(r, "key"));
	const char *client_id = jstr(r, "client_id");
	if (!rc) {
		const cJSON *ids = cJSON_GetObjectItemCaseSensitive(k, "allowed_client_ids");
		if (!cs_id_list_has(ids, "*") && !cs_id_list_has(ids, client_id))
			rc = cs_req_error(req, CS_EINVAL,
					  "the key \"%s\" does not list the client ID of the role "
					  "\"%s\" as an allowed client ID",
					  jstr(r, "key"), name);
	}
	struct cs_idv v;
	if (!rc)
		rc = cs_idv_open(&v, req->core, &req->txn);
	if (!rc) {
		rc = cs_id_entity_get(&v, eid, &entity);
		if (rc == CS_ENOTFOUND)
			rc = cs_req_error(req, CS_EINVAL, "the token's entity no longer exists");
	}
	if (!rc)
		rc = cs_id_entity_groups(&v, eid, &direct, &inherited);
	const cJSON *sign = cJSON_GetObjectItemCaseSensitive(k, "signing");
	const struct alg *a = find_alg(jstr(k, "algorithm"));
	if (!rc && (!a || !jstr(sign, "pem")))
		rc = cs_req_error(req, CS_EINTERNAL, "the key has no signing key yet");
	cJSON *claims = NULL;
	if (!rc) {
		cJSON *groups = cJSON_CreateArray();
		const cJSON *g;
		cJSON_ArrayForEach(g, direct)
		{
			cJSON_AddItemToArray(groups, cJSON_Duplicate(g, 1));
		}
		cJSON_ArrayForEach(g, inherited)
		{
			cJSON_AddItemToArray(groups, cJSON_Duplicate(g, 1));
		}
		const char *twhy;
		claims = render_template(jstr(r, "template"), entity, groups, &twhy);
		cJSON_Delete(groups);
		if (!claims) /* checked when the role was written; an entity cannot break it */
			claims = cJSON_CreateObject();
		for (size_t i = 0; i < CS_ARRAY_LEN(reserved_claims); i++)
			cJSON_DeleteItemFromObjectCaseSensitive(claims, reserved_claims[i]);
		int64_t now = now_s(), ttl = jint(r, "ttl");
		char *iss = issuer_of(req);
		cJSON_AddStringToObject(claims, "aud", client_id);
		cJSON_AddNumberToObject(claims, "exp", (double)(now + ttl));
		cJSON_AddNumberToObject(claims, "iat", (double)now);
		cJSON_AddStringToObject(claims, "iss", iss);
		cJSON_AddStringToObject(claims, "namespace", "root");
		cJSON_AddStringToObject(claims, "sub", eid);
		free(iss);
		cJSON *hdr = cJSON_CreateObject();
		cJSON_AddStringToObject(hdr, "alg", a->name);
		cJSON_AddStringToObject(hdr, "kid", jstr(sign, "kid"));
		char *h = cJSON_PrintUnformatted(hdr), *p = cJSON_PrintUnformatted(claims);
		char *hb = cs_b64url_encode((uint8_t *)h, strlen(h));
		char *pb = cs_b64url_encode((uint8_t *)p, strlen(p));
		struct job *j = job_new(a, token_resume);
		size_t n = strlen(hb) + strlen(pb) + 2;
		j->input = malloc(n);
		if (!j->input || !(j->pem = strdup(jstr(sign, "pem"))))
			abort();
		snprintf(j->input, n, "%s.%s", hb, pb);
		snprintf(j->name, sizeof j->name, "%s", client_id);
		j->verification_ttl = ttl; /* the ttl the response reports */
		free(h);
		free(p);
		free(hb);
		free(pb);
		cJSON_Delete(hdr);
		cJSON_Delete(claims);
		cJSON_Delete(r);
		cs_json_delete_wiped(k);
		cJSON_Delete(entity);
		cJSON_Delete(direct);
		cJSON_Delete(inherited);
		return cs_req_defer(req, &j->async);
	}
	cJSON_Delete(r);
	cs_json_delete_wiped(k);
	cJSON_Delete(entity);
	cJSON_Delete(direct);
	cJSON_Delete(inherited);
	return rc;
}

/* ---------------------------------------------------------------- verification */

/* Every published public key: the JWKs of every key's current and unexpired keys. */
static int published_keys(struct cs_request *req, cJSON *out /* array */)
{
	struct cs_strv names = {0};
	int rc = cs_view_list(req, KEY_PREFIX, &names);
	if (rc == CS_ENOTFOUND)
		rc = 0;
	int64_t now = now_s();
	for (size_t i = 0; !rc && i < names.n; i++) {
		cJSON *k = NULL;
		if (get_obj(req, KEY_PREFIX, names.v[i], &k))
			continue;
		const cJSON *p;
		cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(k, "public"))
		{
			int64_t exp = jint(p, "expire");
			const cJSON *jwk = cJSON_GetObjectItemCaseSensitive(p, "jwk");
			if ((exp == 0 || exp > now) && jwk)
				cJSON_AddItemToArray(out, cJSON_Duplicate(jwk, 1));
		}
		cs_json_delete_wiped(k);
	}
	cs_strv_free(&names);
	return rc;
}

void cs_id_jwt_free(struct cs_id_jwt *j)
{
	cJSON_Delete(j->header);
	cJSON_Delete(j->claims);
	free(j->signing_input);
	free(j->sig);
	memset(j, 0, sizeof *j);
}

int cs_id_jwt_split(const char *token, size_t len, struct cs_id_jwt *out)
{
	memset(out, 0, sizeof *out);
	if (len > CS_ID_JWT_MAX || memchr(token, '\0', len))
		return CS_EINVAL;
	const char *end = token + len;
	const char *d1 = memchr(token, '.', len);
	const char *d2 = d1 ? memchr(d1 + 1, '.', (size_t)(end - d1 - 1)) : NULL;
	if (!d1 || !d2 || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)))
		return CS_EINVAL;
	size_t hl = 0, pl = 0;
	uint8_t *h = cs_b64url_decode(token, (size_t)(d1 - token), &hl);
	uint8_t *p = cs_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &pl);
	out->header = h ? cJSON_ParseWithLength((const char *)h, hl) : NULL;
	out->claims = p ? cJSON_ParseWithLength((const char *)p, pl) : NULL;
	free(h);
	free(p);
	out->sig = cs_b64url_decode(d2 + 1, (size_t)(end - d2 - 1), &out->sig_len);
	out->signing_input = strndup(token, (size_t)(d2 - token));
	if (!out->signing_input)
		abort();
	if (!cJSON_IsObject(out->header) || !cJSON_IsObject(out->claims) || !out->sig) {
		cs_id_jwt_free(out);
		return CS_EINVAL;
	}
	return 0;
}

int cs_id_jwt_verify(const struct cs_id_jwt *j, const cJSON *jwk)
{
	const char *alg = jstr(j->header, "alg");
	if (!alg || !find_alg(alg) || !jwk)
		return CS_EINVAL;
	struct cs_acme_jws jws = {0};
	EVP_PKEY *pk = NULL;
	const char *why;
	snprintf(jws.alg, sizeof jws.alg, "%s", alg);
	jws.signing_input = j->signing_input;
	jws.sig = j->sig;
	jws.sig_len = j->sig_len;
	int rc =
	    cs_acme_jwk_key(jwk, &pk, &why) || cs_acme_jws_verify(&jws, pk, &why) ? CS_EINVAL : 0;
	EVP_PKEY_free(pk);
	return rc;
}

/* Why `token` is not an active token of this issuer (for client_id when given), or NULL. */
static const char *inactive(struct cs_request *req, const char *token, const char *client_id)
{
	struct cs_id_jwt j;
	if (cs_id_jwt_split(token, strlen(token), &j))
		return "error parsing token";
	const char *why = NULL;
	const char *kid = jstr(j.header, "kid"), *alg = jstr(j.header, "alg");
	cJSON *keys = cJSON_CreateArray();
	if (!kid || !find_alg(alg)) {
		why = "error parsing token";
	} else if (published_keys(req, keys) != 0) {
		why = "error reading the signing keys";
	} else {
		const cJSON *jwk = NULL, *c;
		cJSON_ArrayForEach(c, keys)
		{
			if (jstr(c, "kid") && strcmp(jstr(c, "kid"), kid) == 0)
				jwk = c;
		}
		char *iss = issuer_of(req);
		const char *aud = jstr(j.claims, "aud");
		if (cs_id_jwt_verify(&j, jwk))
			why = "error validating signature";
		else if (!jstr(j.claims, "iss") || strcmp(jstr(j.claims, "iss"), iss) != 0)
			why = "invalid issuer";
		else if (jint(j.claims, "exp") <= now_s())
			why = "token is expired";
		else if (client_id && *client_id && (!aud || strcmp(aud, client_id) != 0))
			why = "expected audience not found";
		free(iss);
	}
	cJSON_Delete(keys);
	cs_id_jwt_free(&j);
	return why;
}

static int introspect(struct cs_request *req)
{
	const char *why =
	    inactive(req, cs_req_str(req, "token", ""), cs_req_str(req, "client_id", ""));
	cJSON *raw = cJSON_CreateObject();
	cJSON_AddBoolToObject(raw, "active", why == NULL);
	if (why)
		cJSON_AddStringToObject(raw, "error", why);
	req->raw = raw;
	return 0;
}

static int well_known_keys(struct cs_request *req)
{
	cJSON *raw = cJSON_CreateObject(), *keys = cJSON_AddArrayToObject(raw, "keys");
	int rc = published_keys(req, keys);
	if (rc) {
		cJSON_Delete(raw);
		return rc;
	}
	req->raw = raw;
	return 0;
}

static int well_known_config(struct cs_request *req)
{
	char *iss = issuer_of(req);
	cJSON *raw = cJSON_CreateObject();
	cJSON_AddStringToObject(raw, "issuer", iss);
	size_t n = strlen(iss) + 32;
	char *jwks = malloc(n);
	if (!jwks)
		abort();
	snprintf(jwks, n, "%s/.well-known/keys", iss);
	cJSON_AddStringToObject(raw, "jwks_uri", jwks);
	free(jwks);
	free(iss);
	cJSON *rt = cJSON_AddArrayToObject(raw, "response_types_supported");
	cJSON_AddItemToArray(rt, cJSON_CreateString("id_token"));
	cJSON *st = cJSON_AddArrayToObject(raw, "subject_types_supported");
	cJSON_AddItemToArray(st, cJSON_CreateString("public"));
	cJSON *al = cJSON_AddArrayToObject(raw, "id_token_signing_alg_values_supported");
	for (size_t i = 0; i < CS_ARRAY_LEN(algs); i++)
		cJSON_AddItemToArray(al, cJSON_CreateString(algs[i].name));
	req->raw = raw;
	return 0;
}

/* ---------------------------------------------------------------- periodic */

/* One due key per run: rotate it (keygen on the pool). Expired public keys go with the
 * rotation; a key that is not due keeps its record untouched. */
int cs_id_oidc_periodic(struct cs_request *req)
{
	struct cs_strv names = {0};
	int rc = cs_view_list(req, KEY_PREFIX, &names);
	if (rc == CS_ENOTFOUND)
		rc = 0;
	int64_t now = now_s();
	for (size_t i = 0; !rc && i < names.n; i++) {
		cJSON *k = NULL;
		if (get_obj(req, KEY_PREFIX, names.v[i], &k))
			continue;
		int64_t last = jint(k, "last_rotation"), period = jint(k, "rotation_period");
		const struct alg *a = find_alg(jstr(k, "algorithm"));
		cs_json_delete_wiped(k);
		if (a && last > 0 && period > 0 && now - last >= period) {
			char name[160];
			snprintf(name, sizeof name, "%s", names.v[i]);
			cs_strv_free(&names);
			return start_rotation(req, name, a, -1, NULL);
		}
	}
	cs_strv_free(&names);
	return rc;
}

/* ---------------------------------------------------------------- table */

static const struct cs_field config_fields[] = {
    {.name = "issuer", .type = CS_FIELD_STRING, .desc = "scheme://host[:port] of the issuer"},
    {.name = NULL},
};

static const struct cs_field key_fields[] = {
    {.name = "name", .type = CS_FIELD_STRING, .desc = "key name"},
    {.name = "rotation_period", .type = CS_FIELD_DURATION, .desc = "how often to rotate"},
    {.name = "verification_ttl",
     .type = CS_FIELD_DURATION,
     .desc = "how long a rotated-out public key stays published"},
    {.name = "algorithm", .type = CS_FIELD_STRING, .desc = "RS256 (default) ... EdDSA"},
    {.name = "allowed_client_ids",
     .type = CS_FIELD_STRLIST,
     .desc = "role client ids that may use the key (\"*\": all)"},
    {.name = NULL},
};

static const struct cs_field rotate_fields[] = {
    {.name = "name", .type = CS_FIELD_STRING, .desc = "key name"},
    {.name = "verification_ttl",
     .type = CS_FIELD_DURATION,
     .desc = "override for the key being rotated out"},
    {.name = NULL},
};

static const struct cs_field role_fields[] = {
    {.name = "name", .type = CS_FIELD_STRING, .desc = "role name"},
    {.name = "key", .type = CS_FIELD_STRING, .desc = "the named key that signs"},
    {.name = "template", .type = CS_FIELD_STRING, .desc = "JSON claims template"},
    {.name = "ttl", .type = CS_FIELD_DURATION, .desc = "token lifetime"},
    {.name = "client_id", .type = CS_FIELD_STRING, .desc = "generated; the tokens' aud"},
    {.name = NULL},
};

static const struct cs_field name_fields[] = {
    {.name = "name", .type = CS_FIELD_STRING, .desc = "role name"},
    {.name = NULL},
};

static const struct cs_field introspect_fields[] = {
    {.name = "token", .type = CS_FIELD_STRING, .desc = "the token", .required = true},
    {.name = "client_id", .type = CS_FIELD_STRING, .desc = "the expected audience"},
    {.name = NULL},
};

static const struct cs_path oidc_paths[] = {
    {.pattern = "oidc/config",
     .fields = config_fields,
     .ops = {[CS_OP_READ] = config_read, [CS_OP_UPDATE] = config_write},
     .synopsis = "identity token issuer"},
    {.pattern = "oidc/key", .ops = {[CS_OP_LIST] = key_list}, .synopsis = "list named keys"},
    {.pattern = "oidc/key/{name}/rotate",
     .fields = rotate_fields,
     .ops = {[CS_OP_UPDATE] = key_rotate},
     .synopsis = "rotate a named key"},
    {.pattern = "oidc/key/{name}",
     .fields = key_fields,
     .ops = {[CS_OP_READ] = key_read,
	     [CS_OP_CREATE] = key_write,
	     [CS_OP_UPDATE] = key_write,
	     [CS_OP_DELETE] = key_delete},
     .synopsis = "named signing keys"},
    {.pattern = "oidc/role", .ops = {[CS_OP_LIST] = role_list}, .synopsis = "list roles"},
    {.pattern = "oidc/role/{name}",
     .fields = role_fields,
     .ops = {[CS_OP_READ] = role_read,
	     [CS_OP_CREATE] = role_write,
	     [CS_OP_UPDATE] = role_write,
	     [CS_OP_DELETE] = role_delete},
     .synopsis = "identity token roles"},
    {.pattern = "oidc/token/{name}",
     .fields = name_fields,
     .ops = {[CS_OP_READ] = token_issue},
     .synopsis = "an identity token for the caller's entity"},
    {.pattern = "oidc/introspect",
     .fields = introspect_fields,
     .ops = {[CS_OP_UPDATE] = introspect},
     .synopsis = "verify an identity token"},
    {.pattern = "oidc/.well-known/openid-configuration",
     .ops = {[CS_OP_READ] = well_known_config},
     .flags = CS_PATH_UNAUTH,
     .synopsis = "OpenID provider configuration"},
    {.pattern = "oidc/.well-known/keys",
     .ops = {[CS_OP_READ] = well_known_keys},
     .flags = CS_PATH_UNAUTH,
     .synopsis = "public keys that verify identity tokens"},
};

const struct cs_path_table cs_id_oidc_table = {.paths = oidc_paths, .n = CS_ARRAY_LEN(oidc_paths)};
