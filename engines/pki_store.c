/*
 * The PKI engine's storage (layout in engines/pki_internal.h): keys, issuers and their
 * chains, configuration entries, issued and revoked certificates, CRLs. Every read and
 * write goes through the request's transaction, so issuance is ordered by raft on the
 * active node and a serial taken by one request is seen by the next.
 *
 * CA private keys: stored as PKCS#8 DER (base64) behind the barrier; for a signature the
 * DER is decoded into locked memory (lib/secmem), parsed, and the locked copy wiped at
 * once; the EVP_PKEY lives only for the signature (the caller frees it).
 */
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engines/pki_internal.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/secmem.h"
#include "lib/util.h"

const char *cs_pki_jstr(const cJSON *o, const char *k, const char *def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : def;
}

int64_t cs_pki_jint(const cJSON *o, const char *k, int64_t def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : def;
}

bool cs_pki_jbool(const cJSON *o, const char *k, bool def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

static void split_push(struct cs_strv *out, const char *s)
{
	while (*s) {
		const char *c = strchr(s, ',');
		size_t n = c ? (size_t)(c - s) : strlen(s);
		const char *a = s, *b = s + n;
		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		if (b > a)
			cs_strv_push(out, a, (size_t)(b - a));
		if (!c)
			break;
		s = c + 1;
	}
}

void cs_pki_json_list(const cJSON *o, const char *name, struct cs_strv *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	if (cJSON_IsString(v)) {
		split_push(out, v->valuestring);
	} else if (cJSON_IsArray(v)) {
		const cJSON *e;
		cJSON_ArrayForEach(e, v) if (cJSON_IsString(e) && *e->valuestring)
		    cs_strv_push(out, e->valuestring, strlen(e->valuestring));
	}
}

void cs_pki_req_list(struct cs_request *req, const char *name, struct cs_strv *out)
{
	cs_pki_json_list(req->data, name, out);
}

cJSON *cs_pki_config(struct cs_request *req, const char *name)
{
	char key[64];
	snprintf(key, sizeof key, "config/%s", name);
	cJSON *o = NULL;
	if (cs_view_get_json(req, key, &o) || !cJSON_IsObject(o)) {
		cJSON_Delete(o);
		o = cJSON_CreateObject();
	}
	return o;
}

int cs_pki_issuer_load(struct cs_request *req, const char *id, cJSON **out)
{
	char key[128];
	snprintf(key, sizeof key, "config/issuer/%s", id);
	return cs_view_get_json(req, key, out);
}

int cs_pki_issuer_save(struct cs_request *req, const cJSON *iss)
{
	char key[128];
	snprintf(key, sizeof key, "config/issuer/%s", cs_pki_jstr(iss, "id", ""));
	return cs_view_put_json(req, key, iss);
}

int cs_pki_key_load(struct cs_request *req, const char *id, cJSON **out)
{
	char key[128];
	snprintf(key, sizeof key, "config/key/%s", id);
	return cs_view_get_json(req, key, out);
}

/* Resolve a reference among the entries under `dir` (ids) by id or by "name". */
static int resolve(struct cs_request *req, const char *dir, const char *cfg, const char *ref,
		   const char *what, char **out)
{
	*out = NULL;
	if (!ref || !*ref || strcmp(ref, "default") == 0) {
		cJSON *c = cs_pki_config(req, cfg);
		const char *d = cs_pki_jstr(c, "default", "");
		if (*d)
			*out = strdup(d);
		cJSON_Delete(c);
		if (!*out)
			return cs_req_error(req, CS_EINVAL, "no default %s currently configured",
					    what);
		return 0;
	}
	char key[200];
	snprintf(key, sizeof key, "%s%s", dir, ref);
	cJSON *o = NULL;
	if (strlen(ref) == 36 && cs_view_get_json(req, key, &o) == 0) {
		cJSON_Delete(o);
		*out = strdup(ref);
		return 0;
	}
	struct cs_strv ids = {0};
	int rc = cs_view_list(req, dir, &ids);
	for (size_t i = 0; !rc && !*out && i < ids.n; i++) {
		snprintf(key, sizeof key, "%s%s", dir, ids.v[i]);
		if (cs_view_get_json(req, key, &o) == 0 &&
		    strcmp(cs_pki_jstr(o, "name", ""), ref) == 0)
			*out = strdup(ids.v[i]);
		cJSON_Delete(o);
		o = NULL;
	}
	cs_strv_free(&ids);
	if (rc)
		return rc;
	if (!*out)
		return cs_req_error(req, CS_EINVAL, "unable to find PKI %s for reference: %s", what,
				    ref);
	return 0;
}

int cs_pki_resolve_issuer(struct cs_request *req, const char *ref, char **out)
{
	return resolve(req, "config/issuer/", "issuers", ref, "issuer", out);
}

int cs_pki_resolve_key(struct cs_request *req, const char *ref, char **out)
{
	return resolve(req, "config/key/", "keys", ref, "key", out);
}

int cs_pki_check_issuer_name(struct cs_request *req, const char *name, const char *self)
{
	if (!*name)
		return 0;
	if (strcmp(name, "default") == 0)
		return cs_req_error(req, CS_EINVAL,
				    "reserved keyword 'default' can not be used as "
				    "issuer name");
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			return cs_req_error(req, CS_EINVAL,
					    "issuer name contained invalid characters");
	char *id = NULL;
	int rc = cs_pki_resolve_issuer(req, name, &id);
	free(req->errmsg);
	req->errmsg = NULL;
	if (rc == 0 && (!self || strcmp(id, self) != 0)) {
		free(id);
		return cs_req_error(req, CS_EINVAL, "issuer name already in use");
	}
	free(id);
	return 0;
}

static void set_default(struct cs_request *req, const char *cfg, const char *id, bool force)
{
	cJSON *c = cs_pki_config(req, cfg);
	if (force || !*cs_pki_jstr(c, "default", "")) {
		cJSON_DeleteItemFromObjectCaseSensitive(c, "default");
		cJSON_AddStringToObject(c, "default", id);
		char key[64];
		snprintf(key, sizeof key, "config/%s", cfg);
		cs_view_put_json(req, key, c);
	}
	cJSON_Delete(c);
}

int cs_pki_issuer_signer(struct cs_request *req, const cJSON *iss, EVP_PKEY **out)
{
	*out = NULL;
	const char *kid = cs_pki_jstr(iss, "key_id", "");
	if (!*kid)
		return cs_req_error(req, CS_EINVAL, "issuer %s has no private key and cannot sign",
				    cs_pki_jstr(iss, "id", ""));
	cJSON *k = NULL;
	int rc = cs_pki_key_load(req, kid, &k);
	if (rc) {
		cJSON_Delete(k);
		return rc == CS_ENOTFOUND
			   ? cs_req_error(req, CS_EINTERNAL, "the issuer's key is missing")
			   : rc;
	}
	const char *b64 = cs_pki_jstr(k, "private_key", "");
	size_t blen = strlen(b64);
	/* Decode into locked memory: base64 never expands, so blen bytes suffice. */
	size_t cap = blen + 1;
	uint8_t *lk = cs_secmem_alloc(cap);
	size_t n = 0;
	uint8_t *der = cs_b64_decode(b64, blen, &n);
	if (der) {
		memcpy(lk, der, n);
		cs_zero(der, n);
		free(der);
		*out = cs_pki_key_from_der(lk, n);
	}
	cs_secmem_free(lk, cap);
	cs_json_delete_wiped(k);
	if (!*out)
		return cs_req_error(req, CS_EINTERNAL, "unable to decode the issuer's key");
	return 0;
}

int cs_pki_key_store(struct cs_request *req, EVP_PKEY *pk, const char *name, char **id,
		     bool *existed)
{
	*existed = false;
	*id = NULL;
	/* The same key stored already: found by its public half. */
	struct cs_strv ids = {0};
	int rc = cs_view_list(req, "config/key/", &ids);
	for (size_t i = 0; !rc && !*id && i < ids.n; i++) {
		cJSON *k = NULL;
		if (cs_pki_key_load(req, ids.v[i], &k) == 0) {
			size_t n = 0;
			const char *b64 = cs_pki_jstr(k, "private_key", "");
			uint8_t *der = cs_b64_decode(b64, strlen(b64), &n);
			EVP_PKEY *o = der ? cs_pki_key_from_der(der, n) : NULL;
			if (o && EVP_PKEY_eq(o, pk) == 1) {
				*id = strdup(ids.v[i]);
				*existed = true;
			}
			EVP_PKEY_free(o);
			if (der)
				cs_zero(der, n);
			free(der);
		}
		cs_json_delete_wiped(k);
	}
	cs_strv_free(&ids);
	if (rc || *id)
		return rc;
	uint8_t *der;
	size_t n;
	if (cs_pki_key_der(pk, &der, &n))
		return cs_req_error(req, CS_EINTERNAL, "unable to encode the key");
	char uuid[37];
	cs_uuid(uuid);
	enum cs_pki_key_type t;
	int bits = 0;
	cs_pki_key_info(pk, &t, &bits);
	cJSON *k = cJSON_CreateObject();
	cJSON_AddStringToObject(k, "id", uuid);
	cJSON_AddStringToObject(k, "name", name ? name : "");
	cJSON_AddStringToObject(k, "type", cs_pki_key_type_name(t));
	cJSON_AddNumberToObject(k, "bits", bits);
	char *b64 = cs_b64_encode(der, n);
	cs_zero(der, n);
	free(der);
	cJSON_AddStringToObject(k, "private_key", b64);
	cs_zero(b64, strlen(b64));
	free(b64);
	char key[128];
	snprintf(key, sizeof key, "config/key/%s", uuid);
	rc = cs_view_put_json(req, key, k);
	cs_json_delete_wiped(k);
	if (rc)
		return rc;
	set_default(req, "keys", uuid, false);
	/* Issuers imported before their key get linked now. */
	ids = (struct cs_strv){0};
	cs_view_list(req, "config/issuer/", &ids);
	for (size_t i = 0; i < ids.n; i++) {
		cJSON *iss = NULL;
		if (cs_pki_issuer_load(req, ids.v[i], &iss) == 0 &&
		    !*cs_pki_jstr(iss, "key_id", "")) {
			X509 *x = cs_pki_issuer_cert(iss);
			if (x && cs_pki_cert_key_match(x, pk)) {
				cJSON_DeleteItemFromObjectCaseSensitive(iss, "key_id");
				cJSON_AddStringToObject(iss, "key_id", uuid);
				cs_pki_issuer_save(req, iss);
			}
			X509_free(x);
		}
		cJSON_Delete(iss);
	}
	cs_strv_free(&ids);
	*id = strdup(uuid);
	return 0;
}

X509 *cs_pki_issuer_cert(const cJSON *iss)
{
	return cs_pki_cert_from_pem(cs_pki_jstr(iss, "certificate", ""));
}

int cs_pki_issuer_store(struct cs_request *req, X509 *x, const char *name, char **id, bool *existed)
{
	*existed = false;
	*id = NULL;
	char *pem = cs_pki_cert_pem(x);
	struct cs_strv ids = {0};
	int rc = cs_view_list(req, "config/issuer/", &ids);
	for (size_t i = 0; !rc && !*id && i < ids.n; i++) {
		cJSON *iss = NULL;
		if (cs_pki_issuer_load(req, ids.v[i], &iss) == 0 &&
		    strcmp(cs_pki_jstr(iss, "certificate", ""), pem) == 0) {
			*id = strdup(ids.v[i]);
			*existed = true;
		}
		cJSON_Delete(iss);
	}
	cs_strv_free(&ids);
	if (rc || *id) {
		free(pem);
		return rc;
	}
	/* Link to a stored key with the same public key. */
	char *key_id = NULL;
	ids = (struct cs_strv){0};
	cs_view_list(req, "config/key/", &ids);
	for (size_t i = 0; !key_id && i < ids.n; i++) {
		cJSON *k = NULL;
		if (cs_pki_key_load(req, ids.v[i], &k) == 0) {
			size_t n = 0;
			const char *b64 = cs_pki_jstr(k, "private_key", "");
			uint8_t *der = cs_b64_decode(b64, strlen(b64), &n);
			EVP_PKEY *o = der ? cs_pki_key_from_der(der, n) : NULL;
			if (o && cs_pki_cert_key_match(x, o))
				key_id = strdup(ids.v[i]);
			EVP_PKEY_free(o);
			if (der)
				cs_zero(der, n);
			free(der);
		}
		cs_json_delete_wiped(k);
	}
	cs_strv_free(&ids);
	char uuid[37];
	cs_uuid(uuid);
	cJSON *iss = cJSON_CreateObject();
	cJSON_AddStringToObject(iss, "id", uuid);
	cJSON_AddStringToObject(iss, "name", name ? name : "");
	cJSON_AddStringToObject(iss, "key_id", key_id ? key_id : "");
	cJSON_AddStringToObject(iss, "certificate", pem);
	cJSON_AddArrayToObject(iss, "manual_chain");
	cJSON_AddStringToObject(iss, "leaf_not_after_behavior", "err");
	cJSON_AddStringToObject(iss, "usage",
				"read-only,issuing-certificates,crl-signing,ocsp-signing");
	cJSON_AddStringToObject(iss, "revocation_signature_algorithm", "");
	cJSON_AddNumberToObject(iss, "crl_number", 1);
	cJSON_AddNumberToObject(iss, "last_complete", 0);
	free(key_id);
	free(pem);
	rc = cs_pki_issuer_save(req, iss);
	cJSON_Delete(iss);
	if (rc)
		return rc;
	cJSON *c = cs_pki_config(req, "issuers");
	bool follow = cs_pki_jbool(c, "default_follows_latest_issuer", false);
	cJSON_Delete(c);
	set_default(req, "issuers", uuid, follow);
	*id = strdup(uuid);
	return 0;
}

int cs_pki_cert_store(struct cs_request *req, X509 *x, const char *issuer_id)
{
	char serial[200], key[220];
	cs_pki_cert_serial(x, '-', serial, sizeof serial);
	snprintf(key, sizeof key, "certs/%s", serial);
	size_t n = 0;
	uint8_t *der = cs_pki_cert_der(x, &n);
	if (!der)
		return CS_EINTERNAL;
	char *b64 = cs_b64_encode(der, n);
	free(der);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "der", b64);
	cJSON_AddStringToObject(o, "issuer_id", issuer_id ? issuer_id : "");
	cJSON_AddNumberToObject(o, "not_after", (double)cs_pki_cert_not_after(x));
	free(b64);
	int rc = cs_view_put_json(req, key, o);
	cJSON_Delete(o);
	return rc;
}

int cs_pki_new_serial(struct cs_request *req, uint8_t serial[20])
{
	/* Vault: a random integer below 2^159 (20 bytes, positive). The request's
	 * transaction sees every serial stored before it (raft orders the writers), so a
	 * collision is detected and a new number drawn. */
	for (int tries = 0; tries < 8; tries++) {
		cs_random(serial, 20);
		serial[0] &= 0x7f;
		if (serial[0] == 0)
			serial[0] = 1; /* keep 20 bytes so the text form has a fixed size */
		char s[64], key[80];
		cs_pki_serial_format(serial, 20, '-', s);
		snprintf(key, sizeof key, "certs/%s", s);
		struct cs_buf b = CS_BUF_INIT;
		int rc = cs_view_get(req, key, &b);
		cs_buf_free(&b);
		if (rc == CS_ENOTFOUND)
			return 0;
		if (rc)
			return rc;
	}
	return cs_req_error(req, CS_EINTERNAL, "unable to find an unused serial number");
}
