/*
 * The PKI engine's CA-management endpoints beyond generation and import (Vault ≥ 1.11):
 *   root/rotate/:type        a new root (and key) beside the current one: root/generate
 *                            whose issuer is named "next" unless named otherwise or that
 *                            name is taken; the default issuer does not change.
 *   root/replace             make an issuer ("next" unless `default` says) the default.
 *   root/sign-self-issued, issuer/:ref/sign-self-issued
 *                            re-issue another CA's self-issued certificate under one of
 *                            ours (cross-signing during a root rotation); sudo, as Vault.
 *   keys/generate/:type      a new stored key, internal or exported; RSA on the worker pool.
 */
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engines/pki_internal.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/util.h"

/* Set (or replace) a string field of the request's data (`value` must not point into the
 * field being replaced). */
static void data_set(struct cs_request *req, const char *name, const char *value)
{
	cJSON_DeleteItemFromObjectCaseSensitive(req->data, name);
	cJSON_AddStringToObject(req->data, name, value);
}

int pki_root_rotate(struct cs_request *req)
{
	if (!*cs_req_str(req, "issuer_name", "")) {
		char *id = NULL;
		if (cs_pki_resolve_issuer(req, "next", &id) != 0)
			data_set(req, "issuer_name", "next");
		free(id);
		free(req->errmsg);
		req->errmsg = NULL;
	}
	return pki_root_generate(req);
}

int pki_root_replace(struct cs_request *req)
{
	/* config/issuers with Vault's default for this alias, and only its `default`. */
	char *ref = strdup(cs_req_str(req, "default", "next"));
	if (!ref)
		return CS_ENOMEM;
	data_set(req, "default", ref);
	free(ref);
	cJSON_DeleteItemFromObjectCaseSensitive(req->data, "default_follows_latest_issuer");
	return pki_config_issuers_write(req);
}

/* ---- sign-self-issued */

int pki_sign_self_issued(struct cs_request *req)
{
	const char *ref = cs_req_capture(req, "ref");
	const char *pem = cs_req_str(req, "certificate", "");
	struct cs_pki_bundle b = {0};
	char err[256];
	if (!*pem || cs_pki_bundle_parse(pem, &b, err, sizeof err) || b.n_certs == 0) {
		cs_pki_bundle_free(&b);
		return cs_req_error(req, CS_EINVAL, "certificate could not be PEM-decoded");
	}
	int rc = 0;
	X509 *x = b.certs[0];
	if (b.n_certs != 1 || b.n_keys)
		rc = cs_req_error(req, CS_EINVAL, "%zu certificates found in PEM file, expected 1",
				  b.n_certs);
	else if (X509_check_ca(x) < 1)
		rc = cs_req_error(req, CS_EINVAL, "given certificate is not a CA certificate");
	else if (X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)) != 0)
		rc = cs_req_error(req, CS_EINVAL, "given certificate is not self-issued");
	char *iid = NULL;
	struct cs_pki_issuer_ref ir = {0};
	if (!rc)
		rc = cs_pki_resolve_issuer(req, ref ? ref : "default", &iid);
	if (!rc)
		rc = cs_pki_issuer_get(req, iid, CS_PKI_ISSUER_SIGNER, &ir);
	if (!rc && !ir.signer)
		rc =
		    cs_req_error(req, CS_EINVAL,
				 "could not fetch the CA certificate (was one set?): issuer %s has "
				 "no private key",
				 iid);
	if (!rc) {
		struct cs_strv usage = {0};
		cs_pki_json_list(ir.rec, "usage", &usage);
		bool ok = false;
		for (size_t i = 0; i < usage.n; i++)
			ok |= strcmp(usage.v[i], "issuing-certificates") == 0;
		cs_strv_free(&usage);
		if (!ok)
			rc = cs_req_error(req, CS_EINVAL,
					  "could not fetch the CA certificate (was one set?): "
					  "requested usage issuing-certificates for issuer %s",
					  iid);
	}
	EVP_PKEY *pub = rc ? NULL : X509_get0_pubkey(x);
	if (!rc && !pub)
		rc = cs_req_error(req, CS_EINVAL, "error parsing certificate: unknown public key");
	bool same_type = pub && EVP_PKEY_get_base_id(pub) == EVP_PKEY_get_base_id(ir.signer);
	if (!rc && !same_type && cs_req_bool(req, "require_matching_certificate_algorithms", false))
		rc = cs_req_error(req, CS_EINVAL,
				  "signing certificate's public key algorithm (%s) does not match "
				  "submitted certificate's (%s), and "
				  "require_matching_certificate_algorithms is true",
				  cs_pki_key_type_of(ir.signer), cs_pki_key_type_of(pub));
	if (!rc) {
		struct pki_urls u = {0};
		struct cs_pki_cert_spec spec = {0};
		pki_urls_load(req, &u);
		pki_urls_spec(&spec, &u);
		X509 *nx =
		    cs_pki_cert_resign(x, ir.cert, ir.signer, &spec, same_type, err, sizeof err);
		pki_urls_free(&u);
		if (!nx) {
			rc = cs_req_error(req, CS_EINTERNAL, "%s", err);
		} else {
			char *cpem = cs_pki_cert_pem(nx);
			cJSON *d = cJSON_CreateObject();
			cJSON_AddStringToObject(d, "certificate", cpem);
			cJSON_AddStringToObject(d, "issuing_ca",
						cs_pki_jstr(ir.rec, "certificate", ""));
			cs_req_set_data(req, d);
			free(cpem);
			X509_free(nx);
		}
	}
	cs_pki_issuer_ref_free(&ir);
	free(iid);
	cs_pki_bundle_free(&b);
	return rc;
}

/* ---- keys/generate */

struct keygen_job {
	struct cs_async async;
	enum cs_pki_key_type type;
	int bits;
	EVP_PKEY *key;
};

static int keygen_store(struct cs_request *req, EVP_PKEY *pk)
{
	char *id = NULL;
	bool existed;
	int rc = cs_pki_key_store(req, pk, cs_req_str(req, "key_name", ""), &id, &existed);
	if (rc)
		return rc;
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "key_id", id);
	cJSON_AddStringToObject(d, "key_name", cs_req_str(req, "key_name", ""));
	cJSON_AddStringToObject(d, "key_type", cs_pki_key_type_of(pk));
	if (strcmp(cs_req_capture(req, "type"), "exported") == 0) {
		char *k = cs_pki_key_encode(pk, "pem");
		cJSON_AddStringToObject(d, "private_key", k ? k : "");
		if (k)
			cs_zero(k, strlen(k));
		free(k);
	}
	cs_req_set_data(req, d);
	free(id);
	return 0;
}

static void keygen_work(struct cs_async *a)
{
	struct keygen_job *j = CS_CONTAINER_OF(a, struct keygen_job, async);
	j->key = cs_pki_keygen(j->type, j->bits);
}

static int keygen_resume(struct cs_request *req, struct cs_async *a, int status)
{
	struct keygen_job *j = CS_CONTAINER_OF(a, struct keygen_job, async);
	int rc = status;
	if (!rc && !j->key)
		rc = cs_req_error(req, CS_EINTERNAL, "key generation failed");
	if (!rc)
		rc = keygen_store(req, j->key);
	EVP_PKEY_free(j->key);
	free(j);
	return rc;
}

/* A key name must not be "default" nor taken (Vault's getKeyName). */
static int key_name_free(struct cs_request *req, const char *name)
{
	if (strcmp(name, "default") == 0)
		return cs_req_error(req, CS_EINVAL,
				    "reserved keyword 'default' can not be used as key name");
	if (!*name)
		return 0;
	char *id = NULL;
	int rc = cs_pki_resolve_key(req, name, &id);
	free(id);
	free(req->errmsg);
	req->errmsg = NULL;
	return rc == 0 ? cs_req_error(req, CS_EINVAL, "key name already in use") : 0;
}

int pki_keys_generate(struct cs_request *req)
{
	const char *type = cs_req_capture(req, "type");
	if (strcmp(type, "kms") == 0)
		return cs_req_error(req, CS_EINVAL, "managed keys are not supported");
	if (strcmp(type, "internal") != 0 && strcmp(type, "exported") != 0)
		return cs_req_error(req, CS_EINVAL, "Unknown type of key to generate");
	int rc = key_name_free(req, cs_req_str(req, "key_name", ""));
	if (rc)
		return rc;
	const char *kt = cs_req_str(req, "key_type", "rsa");
	int t = cs_pki_key_type_parse(kt);
	if (t < 0 || t == 3)
		return cs_req_error(req, CS_EINVAL,
				    "Validation for key_type, key_bits failed: unknown key type %s",
				    kt);
	int bits = (int)cs_req_int(req, "key_bits", 0);
	char err[128];
	if (cs_pki_key_bits_check((enum cs_pki_key_type)t, &bits, err, sizeof err))
		return cs_req_error(req, CS_EINVAL, "Validation for key_type, key_bits failed: %s",
				    err);
	if (t != CS_PKI_KEY_RSA) { /* microseconds: inline */
		EVP_PKEY *pk = cs_pki_keygen((enum cs_pki_key_type)t, bits);
		if (!pk)
			return cs_req_error(req, CS_EINTERNAL, "key generation failed");
		rc = keygen_store(req, pk);
		EVP_PKEY_free(pk);
		return rc;
	}
	struct keygen_job *j = calloc(1, sizeof *j);
	if (!j)
		return CS_ENOMEM;
	j->type = (enum cs_pki_key_type)t;
	j->bits = bits;
	j->async.work = keygen_work;
	j->async.resume = keygen_resume;
	return cs_req_defer(req, &j->async);
}
