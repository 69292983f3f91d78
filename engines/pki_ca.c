/*
 * The PKI engine's CA endpoints: root and intermediate generation, signing an
 * intermediate, importing issuers and keys, and reading/updating/deleting them
 * (Vault ≥ 1.11 multi-issuer API).
 *
 * Key generation for root/generate and intermediate/generate (internal, exported) runs on
 * the worker pool: the handler validates the request and defers; the resume, in a fresh
 * transaction, stores the key and the issuer (or returns the CSR). "existing" signs with a
 * stored key (key_ref) at once.
 */
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engines/pki_internal.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/util.h"

static const char *const usage_all[] = {"read-only", "issuing-certificates", "crl-signing",
					"ocsp-signing"};

/* ---- generation */

struct gen_job {
	struct cs_async async;
	enum cs_pki_key_type type;
	int bits;
	bool intermediate;
	EVP_PKEY *key;
};

static void gen_work(struct cs_async *a)
{
	struct gen_job *j = CS_CONTAINER_OF(a, struct gen_job, async);
	j->key = cs_pki_keygen(j->type, j->bits);
}

/* internal / exported / existing from the path; CS_EINVAL otherwise. */
static int gen_type(struct cs_request *req, bool *exported, bool *existing)
{
	const char *t = cs_req_capture(req, "type");
	*exported = strcmp(t, "exported") == 0;
	*existing = strcmp(t, "existing") == 0;
	if (!*exported && !*existing && strcmp(t, "internal") != 0 && strcmp(t, "kms") != 0)
		return cs_req_error(req, CS_EINVAL,
				    "invalid type: must be one of internal, exported, existing or "
				    "kms");
	if (strcmp(t, "kms") == 0)
		return cs_req_error(req, CS_EINVAL, "managed keys are not supported");
	return 0;
}

/* The request's names as SAN lists: alt_names split into DNS names and emails, the CN
 * added (unless exclude_cn_from_sans), ip_sans, uri_sans, other_sans. */
struct names {
	struct cs_strv dns, emails, ips, uris, others;
};

static void names_free(struct names *n)
{
	cs_strv_free(&n->dns);
	cs_strv_free(&n->emails);
	cs_strv_free(&n->ips);
	cs_strv_free(&n->uris);
	cs_strv_free(&n->others);
}

static void names_from(const cJSON *f, const char *cn, bool exclude_cn, struct names *n)
{
	struct cs_strv alt = {0};
	/* The CN joins the SANs when it is a host name or an email address (Vault). */
	if (cn && *cn && !exclude_cn && (strchr(cn, '@') || cs_pki_hostname_ok(cn)))
		cs_strv_push(&alt, cn, strlen(cn));
	cs_pki_json_list(f, "alt_names", &alt);
	for (size_t i = 0; i < alt.n; i++)
		cs_strv_push(strchr(alt.v[i], '@') ? &n->emails : &n->dns, alt.v[i],
			     strlen(alt.v[i]));
	cs_strv_free(&alt);
	cs_pki_json_list(f, "ip_sans", &n->ips);
	cs_pki_json_list(f, "uri_sans", &n->uris);
	cs_pki_json_list(f, "other_sans", &n->others);
}

static void spec_names(struct cs_pki_cert_spec *s, const struct names *n)
{
	s->dns = (const char *const *)n->dns.v;
	s->n_dns = n->dns.n;
	s->emails = (const char *const *)n->emails.v;
	s->n_emails = n->emails.n;
	s->ips = (const char *const *)n->ips.v;
	s->n_ips = n->ips.n;
	s->uris = (const char *const *)n->uris.v;
	s->n_uris = n->uris.n;
	s->other_sans = (const char *const *)n->others.v;
	s->n_other_sans = n->others.n;
}

void pki_urls_load(struct cs_request *req, struct pki_urls *u)
{
	cJSON *c = cs_pki_config(req, "urls");
	cs_pki_json_list(c, "issuing_certificates", &u->issuing);
	cs_pki_json_list(c, "crl_distribution_points", &u->crl);
	cs_pki_json_list(c, "ocsp_servers", &u->ocsp);
	cJSON_Delete(c);
}

void pki_urls_free(struct pki_urls *u)
{
	cs_strv_free(&u->issuing);
	cs_strv_free(&u->crl);
	cs_strv_free(&u->ocsp);
}

void pki_urls_spec(struct cs_pki_cert_spec *s, const struct pki_urls *u)
{
	s->issuing_certificates = (const char *const *)u->issuing.v;
	s->n_issuing_certificates = u->issuing.n;
	s->crl_distribution_points = (const char *const *)u->crl.v;
	s->n_crl_distribution_points = u->crl.n;
	s->ocsp_servers = (const char *const *)u->ocsp.v;
	s->n_ocsp_servers = u->ocsp.n;
}

/* Check what generation needs before any key is made; the key type and bits for the job. */
static int gen_check(struct cs_request *req, bool existing, bool intermediate,
		     enum cs_pki_key_type *type, int *bits)
{
	const char *cn = cs_req_str(req, "common_name", "");
	if (!*cn && !intermediate)
		return cs_req_error(req, CS_EINVAL,
				    "the common_name field is required, or must be provided in a "
				    "CSR with \"use_csr_common_name\" set to true, unless "
				    "\"require_cn\" is set to false");
	int rc = cs_pki_check_issuer_name(req, cs_req_str(req, "issuer_name", ""), NULL);
	if (rc)
		return rc;
	const char *kn = cs_req_str(req, "key_name", "");
	if (strcmp(kn, "default") == 0)
		return cs_req_error(req, CS_EINVAL,
				    "reserved keyword 'default' can not be used as key name");
	if (existing) {
		if (!*cs_req_str(req, "key_ref", ""))
			return cs_req_error(req, CS_EINVAL,
					    "key_ref is required when using the existing type");
		return 0;
	}
	int t = cs_pki_key_type_parse(cs_req_str(req, "key_type", "rsa"));
	if (t < 0 || t == 3)
		return cs_req_error(req, CS_EINVAL, "unknown key type: %s",
				    cs_req_str(req, "key_type", "rsa"));
	*type = (enum cs_pki_key_type)t;
	*bits = (int)cs_req_int(req, "key_bits", 0);
	char err[128];
	if (cs_pki_key_bits_check(*type, bits, err, sizeof err))
		return cs_req_error(req, CS_EINVAL, "%s", err);
	if (*kn) { /* a key name must be free */
		char *id = NULL;
		if (cs_pki_resolve_key(req, kn, &id) == 0) {
			free(id);
			return cs_req_error(req, CS_EINVAL, "key name already in use");
		}
		free(req->errmsg);
		req->errmsg = NULL;
	}
	return 0;
}

static void add_time(cJSON *o, const char *name, int64_t t)
{
	cJSON_AddNumberToObject(o, name, (double)t);
}

/* Sign the new root or produce the CSR with `key` (stored as key_id). */
static int gen_finish(struct cs_request *req, EVP_PKEY *key, const char *key_id, bool intermediate)
{
	bool exported = strcmp(cs_req_capture(req, "type"), "exported") == 0;
	const char *cn = cs_req_str(req, "common_name", "");
	X509_NAME *subject = cs_pki_subject(req->data, cn, cs_req_str(req, "serial_number", ""));
	struct names n = {0};
	names_from(req->data, cn, cs_req_bool(req, "exclude_cn_from_sans", false), &n);
	struct cs_pki_cert_spec s = {.subject = subject,
				     .pubkey = key,
				     .signer = key,
				     .signature_bits = (int)cs_req_int(req, "signature_bits", 0),
				     .use_pss = cs_req_bool(req, "use_pss", false),
				     .is_ca = true,
				     .max_path_len = (int)cs_req_int(req, "max_path_len", -1)};
	spec_names(&s, &n);
	char err[256];
	cJSON *d = cJSON_CreateObject();
	int rc = 0;
	cJSON *kobj = NULL;
	cs_pki_key_load(req, key_id, &kobj);
	if (intermediate) {
		X509_REQ *csr = cs_pki_csr_build(&s, key, err, sizeof err);
		if (!csr) {
			rc = cs_req_error(req, CS_EINVAL, "%s", err);
			goto out;
		}
		char *pem = cs_pki_csr_pem(csr);
		X509_REQ_free(csr);
		cJSON_AddStringToObject(d, "csr", pem);
		free(pem);
	} else {
		uint8_t serial[20];
		if ((rc = cs_pki_new_serial(req, serial)))
			goto out;
		int64_t now = cs_now_ns() / 1000000000, not_after = 0;
		const char *na = cs_req_str(req, "not_after", "");
		struct cs_pki_ttl_in in = {.now = now,
					   .ttl = cs_req_int(req, "ttl", 0),
					   .sys_default_ttl = cs_req_default_ttl(req),
					   .sys_max_ttl = cs_req_max_ttl(req)};
		if (*na && cs_pki_parse_rfc3339(na, &in.not_after)) {
			rc = cs_req_error(req, CS_EINVAL, "invalid not_after: %s", na);
			goto out;
		}
		const char *warn;
		if (cs_pki_not_after(&in, &not_after, &warn, err, sizeof err)) {
			rc = cs_req_error(req, CS_EINVAL, "%s", err);
			goto out;
		}
		if (warn)
			cs_req_warn(req, "%s", warn);
		s.serial = serial;
		s.serial_len = 20;
		s.not_before = now - cs_req_int(req, "not_before_duration", 30);
		s.not_after = not_after;
		s.key_usage = X509v3_KU_KEY_CERT_SIGN | X509v3_KU_CRL_SIGN;
		struct pki_urls u = {0};
		pki_urls_load(req, &u);
		pki_urls_spec(&s, &u);
		X509 *x = cs_pki_cert_build(&s, err, sizeof err);
		pki_urls_free(&u);
		if (!x) {
			rc = cs_req_error(req, CS_EINVAL, "%s", err);
			goto out;
		}
		char *iid = NULL;
		bool existed;
		rc =
		    cs_pki_issuer_store(req, x, cs_req_str(req, "issuer_name", ""), &iid, &existed);
		if (!rc)
			rc = cs_pki_cert_store(req, x, iid);
		if (!rc) {
			char *pem = cs_pki_cert_pem(x);
			char sn[80];
			cs_pki_cert_serial(x, ':', sn, sizeof sn);
			cJSON_AddStringToObject(d, "certificate", pem);
			cJSON_AddStringToObject(d, "issuing_ca", pem);
			cJSON_AddStringToObject(d, "serial_number", sn);
			add_time(d, "expiration", cs_pki_cert_not_after(x));
			cJSON_AddStringToObject(d, "issuer_id", iid);
			cJSON_AddStringToObject(d, "issuer_name",
						cs_req_str(req, "issuer_name", ""));
			free(pem);
		}
		free(iid);
		X509_free(x);
		if (rc)
			goto out;
	}
	cJSON_AddStringToObject(d, "key_id", key_id);
	cJSON_AddStringToObject(d, "key_name", cs_pki_jstr(kobj, "name", ""));
	if (exported) {
		char *k = cs_pki_key_encode(key, cs_req_str(req, "private_key_format", "pem"));
		cJSON_AddStringToObject(d, "private_key", k ? k : "");
		cJSON_AddStringToObject(d, "private_key_type", cs_pki_key_type_of(key));
		if (k)
			cs_zero(k, strlen(k));
		free(k);
	}
	cs_req_set_data(req, d);
	d = NULL;
out:
	cs_json_delete_wiped(d);
	cs_json_delete_wiped(kobj);
	names_free(&n);
	X509_NAME_free(subject);
	return rc;
}

static int gen_resume(struct cs_request *req, struct cs_async *a, int status)
{
	struct gen_job *j = CS_CONTAINER_OF(a, struct gen_job, async);
	int rc = status;
	if (!rc && !j->key)
		rc = cs_req_error(req, CS_EINTERNAL, "key generation failed");
	char *kid = NULL;
	bool existed;
	if (!rc)
		rc = cs_pki_key_store(req, j->key, cs_req_str(req, "key_name", ""), &kid, &existed);
	if (!rc)
		rc = gen_finish(req, j->key, kid, j->intermediate);
	free(kid);
	EVP_PKEY_free(j->key);
	free(j);
	return rc;
}

static int generate(struct cs_request *req, bool intermediate)
{
	bool exported, existing;
	int rc = gen_type(req, &exported, &existing);
	enum cs_pki_key_type t = CS_PKI_KEY_RSA;
	int bits = 0;
	if (!rc)
		rc = gen_check(req, existing, intermediate, &t, &bits);
	if (rc)
		return rc;
	if (existing) {
		char *kid = NULL;
		if ((rc = cs_pki_resolve_key(req, cs_req_str(req, "key_ref", ""), &kid)))
			return rc;
		cJSON *k = NULL;
		EVP_PKEY *pk = NULL;
		cJSON *fake = cJSON_CreateObject(); /* the signer loader takes an issuer */
		cJSON_AddStringToObject(fake, "key_id", kid);
		rc = cs_pki_issuer_signer(req, fake, &pk);
		cJSON_Delete(fake);
		cJSON_Delete(k);
		if (!rc)
			rc = gen_finish(req, pk, kid, intermediate);
		EVP_PKEY_free(pk);
		free(kid);
		return rc;
	}
	struct gen_job *j = calloc(1, sizeof *j);
	if (!j)
		return CS_ENOMEM;
	j->type = t;
	j->bits = bits;
	j->intermediate = intermediate;
	j->async.work = gen_work;
	j->async.resume = gen_resume;
	return cs_req_defer(req, &j->async);
}

int pki_root_generate(struct cs_request *req)
{
	return generate(req, false);
}

int pki_intermediate_generate(struct cs_request *req)
{
	return generate(req, true);
}

/* ---- imports */

static int import_bundle(struct cs_request *req, const char *pem)
{
	struct cs_pki_bundle b;
	char err[256];
	if (!*pem)
		return cs_req_error(req, CS_EINVAL, "'pem_bundle' is empty");
	if (cs_pki_bundle_parse(pem, &b, err, sizeof err))
		return cs_req_error(req, CS_EINVAL, "%s", err);
	cJSON *d = cJSON_CreateObject();
	cJSON *ik = cJSON_CreateArray(), *ii = cJSON_CreateArray();
	cJSON *ek = cJSON_CreateArray(), *ei = cJSON_CreateArray();
	cJSON *map = cJSON_CreateObject();
	int rc = 0;
	for (size_t i = 0; !rc && i < b.n_keys; i++) {
		char *id = NULL;
		bool existed;
		rc = cs_pki_key_store(req, b.keys[i], "", &id, &existed);
		if (!rc)
			cJSON_AddItemToArray(existed ? ek : ik, cJSON_CreateString(id));
		free(id);
	}
	for (size_t i = 0; !rc && i < b.n_certs; i++) {
		if (X509_check_ca(b.certs[i]) < 1) {
			rc = cs_req_error(req, CS_EINVAL,
					  "refusing to import non-CA certificate as an issuer");
			break;
		}
		char *id = NULL;
		bool existed;
		rc = cs_pki_issuer_store(req, b.certs[i], "", &id, &existed);
		if (!rc) {
			cJSON_AddItemToArray(existed ? ei : ii, cJSON_CreateString(id));
			cJSON *iss = NULL;
			cs_pki_issuer_load(req, id, &iss);
			cJSON_AddStringToObject(map, id, cs_pki_jstr(iss, "key_id", ""));
			cJSON_Delete(iss);
		}
		free(id);
	}
	cs_pki_bundle_free(&b);
	/* Vault answers null for empty lists. */
	cJSON_AddItemToObject(d, "imported_keys", cJSON_GetArraySize(ik) ? ik : cJSON_CreateNull());
	cJSON_AddItemToObject(d, "imported_issuers",
			      cJSON_GetArraySize(ii) ? ii : cJSON_CreateNull());
	cJSON_AddItemToObject(d, "existing_keys", cJSON_GetArraySize(ek) ? ek : cJSON_CreateNull());
	cJSON_AddItemToObject(d, "existing_issuers",
			      cJSON_GetArraySize(ei) ? ei : cJSON_CreateNull());
	cJSON_AddItemToObject(d, "mapping", map);
	if (!cJSON_GetArraySize(ik))
		cJSON_Delete(ik);
	if (!cJSON_GetArraySize(ii))
		cJSON_Delete(ii);
	if (!cJSON_GetArraySize(ek))
		cJSON_Delete(ek);
	if (!cJSON_GetArraySize(ei))
		cJSON_Delete(ei);
	if (rc) {
		cJSON_Delete(d);
		return rc;
	}
	cs_req_set_data(req, d);
	return 0;
}

int pki_import_bundle(struct cs_request *req)
{
	return import_bundle(req, cs_req_str(req, "pem_bundle", ""));
}

int pki_set_signed(struct cs_request *req)
{
	const char *pem = cs_req_str(req, "certificate", "");
	if (!*pem)
		return cs_req_error(req, CS_EINVAL,
				    "no certificate provided in the \"certificate\" "
				    "parameter");
	return import_bundle(req, pem);
}

int pki_keys_import(struct cs_request *req)
{
	const char *pem = cs_req_str(req, "pem_bundle", "");
	const char *name = cs_req_str(req, "key_name", "");
	struct cs_pki_bundle b;
	char err[256];
	if (!*pem)
		return cs_req_error(req, CS_EINVAL, "'pem_bundle' is empty");
	if (cs_pki_bundle_parse(pem, &b, err, sizeof err))
		return cs_req_error(req, CS_EINVAL, "%s", err);
	if (b.n_keys != 1 || b.n_certs) {
		cs_pki_bundle_free(&b);
		return cs_req_error(
		    req, CS_EINVAL,
		    "only a single private key can be present within the pem_bundle "
		    "for importing");
	}
	if (strcmp(name, "default") == 0) {
		cs_pki_bundle_free(&b);
		return cs_req_error(req, CS_EINVAL,
				    "reserved keyword 'default' can not be used as key name");
	}
	char *id = NULL;
	bool existed;
	int rc = cs_pki_key_store(req, b.keys[0], name, &id, &existed);
	if (!rc) {
		cJSON *k = NULL;
		cs_pki_key_load(req, id, &k);
		cJSON *d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "key_id", id);
		cJSON_AddStringToObject(d, "key_name", cs_pki_jstr(k, "name", ""));
		cJSON_AddStringToObject(d, "key_type", cs_pki_key_type_of(b.keys[0]));
		cs_req_set_data(req, d);
		cs_json_delete_wiped(k);
		if (existed)
			cs_req_warn(req, "key already imported, use key/%s to update its name", id);
	}
	free(id);
	cs_pki_bundle_free(&b);
	return rc;
}

/* ---- root/sign-intermediate */

int pki_root_sign_intermediate(struct cs_request *req)
{
	X509_REQ *csr = cs_pki_csr_from_pem(cs_req_str(req, "csr", ""));
	if (!csr)
		return cs_req_error(req, CS_EINVAL, "certificate request could not be parsed");
	/* An intermediate is issued as by a role that allows any name and takes the CSR's
	 * values only when use_csr_values is set (Vault's signing role). */
	cJSON *role = cJSON_CreateObject();
	cJSON_AddBoolToObject(role, "allow_any_name", true);
	cJSON_AddBoolToObject(role, "allow_ip_sans", true);
	cJSON_AddBoolToObject(role, "enforce_hostnames", false);
	cJSON_AddBoolToObject(role, "allow_wildcard_certificates", true);
	cJSON_AddStringToObject(role, "allowed_uri_sans", "*");
	cJSON_AddStringToObject(role, "allowed_other_sans", "*");
	bool csr_values = cs_req_bool(req, "use_csr_values", false);
	cJSON_AddBoolToObject(role, "use_csr_common_name", csr_values);
	cJSON_AddBoolToObject(role, "use_csr_sans", csr_values);
	cJSON_AddBoolToObject(role, "require_cn", !csr_values);
	cJSON_AddNumberToObject(role, "max_ttl", 0);
	struct cs_pki_sign_input in = {.role = role,
				       .fields = req->data,
				       .issuer_ref = cs_req_str(req, "issuer_ref", "default"),
				       .csr = csr,
				       .is_ca = true,
				       .max_path_len = (int)cs_req_int(req, "max_path_len", -1),
				       .subject_from_csr = csr_values};
	cJSON *d = NULL;
	int rc = cs_pki_sign_cert(req, &in, &d);
	cJSON_Delete(role);
	X509_REQ_free(csr);
	if (rc)
		return rc;
	cs_req_set_data(req, d);
	return 0;
}

/* ---- issuers */

static cJSON *issuer_json(struct cs_request *req, const cJSON *iss)
{
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "issuer_id", cs_pki_jstr(iss, "id", ""));
	cJSON_AddStringToObject(d, "issuer_name", cs_pki_jstr(iss, "name", ""));
	cJSON_AddStringToObject(d, "key_id", cs_pki_jstr(iss, "key_id", ""));
	cJSON_AddStringToObject(d, "certificate", cs_pki_jstr(iss, "certificate", ""));
	cJSON_AddItemToObject(d, "ca_chain", cs_pki_issuer_chain(req, iss));
	const cJSON *mc = cJSON_GetObjectItemCaseSensitive(iss, "manual_chain");
	cJSON_AddItemToObject(d, "manual_chain",
			      cJSON_GetArraySize(mc) ? cJSON_Duplicate(mc, 1) : cJSON_CreateNull());
	cJSON_AddStringToObject(d, "leaf_not_after_behavior",
				cs_pki_jstr(iss, "leaf_not_after_behavior", "err"));
	cJSON_AddStringToObject(d, "usage", cs_pki_jstr(iss, "usage", ""));
	cJSON_AddStringToObject(d, "revocation_signature_algorithm",
				cs_pki_jstr(iss, "revocation_signature_algorithm", ""));
	cJSON *u = cs_pki_config(req, "urls");
	static const char *const url_fields[] = {"issuing_certificates", "crl_distribution_points",
						 "ocsp_servers"};
	for (size_t i = 0; i < 3; i++) {
		struct cs_strv v = {0};
		cs_pki_json_list(u, url_fields[i], &v);
		cJSON *a = cJSON_AddArrayToObject(d, url_fields[i]);
		for (size_t k = 0; k < v.n; k++)
			cJSON_AddItemToArray(a, cJSON_CreateString(v.v[k]));
		cs_strv_free(&v);
	}
	cJSON_Delete(u);
	cJSON_AddBoolToObject(d, "enable_aia_url_templating", false);
	return d;
}

/* Load the issuer named by the {ref} capture; *id too when asked. */
static int load_ref(struct cs_request *req, cJSON **iss)
{
	char *id = NULL;
	int rc = cs_pki_resolve_issuer(req, cs_req_capture(req, "ref"), &id);
	if (!rc)
		rc = cs_pki_issuer_load(req, id, iss);
	free(id);
	return rc;
}

int pki_issuer_read(struct cs_request *req)
{
	cJSON *iss = NULL;
	int rc = load_ref(req, &iss);
	if (rc)
		return rc;
	cs_req_set_data(req, issuer_json(req, iss));
	cJSON_Delete(iss);
	return 0;
}

static int usage_check(struct cs_request *req, const char *usage)
{
	struct cs_strv v = {0};
	cJSON *tmp = cJSON_CreateObject();
	cJSON_AddStringToObject(tmp, "u", usage);
	cs_pki_json_list(tmp, "u", &v);
	cJSON_Delete(tmp);
	int rc = 0;
	for (size_t i = 0; !rc && i < v.n; i++) {
		bool ok = false;
		for (size_t k = 0; k < CS_ARRAY_LEN(usage_all); k++)
			ok |= strcmp(v.v[i], usage_all[k]) == 0;
		if (!ok)
			rc = cs_req_error(req, CS_EINVAL, "unknown usage: %s", v.v[i]);
	}
	cs_strv_free(&v);
	return rc;
}

static void jset_str(cJSON *o, const char *k, const char *v)
{
	cJSON_DeleteItemFromObjectCaseSensitive(o, k);
	cJSON_AddStringToObject(o, k, v);
}

int pki_issuer_update(struct cs_request *req)
{
	cJSON *iss = NULL;
	int rc = load_ref(req, &iss);
	if (rc)
		return rc;
	const char *id = cs_pki_jstr(iss, "id", "");
	if (cs_req_has(req, "issuer_name")) {
		const char *n = cs_req_str(req, "issuer_name", "");
		if ((rc = cs_pki_check_issuer_name(req, n, id)))
			goto out;
		jset_str(iss, "name", n);
	}
	if (cs_req_has(req, "leaf_not_after_behavior")) {
		enum cs_pki_leaf_behavior b;
		const char *v = cs_req_str(req, "leaf_not_after_behavior", "");
		if (cs_pki_leaf_behavior_parse(v, &b)) {
			rc = cs_req_error(req, CS_EINVAL,
					  "invalid value for leaf_not_after_behavior: %s", v);
			goto out;
		}
		jset_str(iss, "leaf_not_after_behavior", cs_pki_leaf_behavior_name(b));
	}
	if (cs_req_has(req, "usage")) {
		struct cs_strv v = {0};
		cs_pki_req_list(req, "usage", &v);
		struct cs_buf b = CS_BUF_INIT;
		for (size_t i = 0; i < v.n; i++) {
			if (i)
				cs_buf_putc(&b, ',');
			cs_buf_puts(&b, v.v[i]);
		}
		cs_buf_putc(&b, 0);
		rc = usage_check(req, b.data ? b.data : "");
		if (!rc)
			jset_str(iss, "usage", b.data ? b.data : "");
		cs_buf_free(&b);
		cs_strv_free(&v);
		if (rc)
			goto out;
	}
	if (cs_req_has(req, "revocation_signature_algorithm"))
		jset_str(iss, "revocation_signature_algorithm",
			 cs_req_str(req, "revocation_signature_algorithm", ""));
	if (cs_req_has(req, "manual_chain")) {
		struct cs_strv v = {0};
		cs_pki_req_list(req, "manual_chain", &v);
		cJSON *mc = cJSON_CreateArray();
		for (size_t i = 0; !rc && i < v.n; i++) {
			if (strcmp(v.v[i], "self") == 0) {
				cJSON_AddItemToArray(mc, cJSON_CreateString(id));
				continue;
			}
			char *ref = NULL;
			rc = cs_pki_resolve_issuer(req, v.v[i], &ref);
			if (!rc)
				cJSON_AddItemToArray(mc, cJSON_CreateString(ref));
			free(ref);
		}
		cs_strv_free(&v);
		if (!rc && cJSON_GetArraySize(mc) > 0) {
			const cJSON *first = cJSON_GetArrayItem(mc, 0);
			if (strcmp(first->valuestring, id) != 0)
				rc = cs_req_error(
				    req, CS_EINVAL,
				    "expected first cert in chain to be a self-reference, "
				    "but was: %s",
				    first->valuestring);
		}
		if (rc) {
			cJSON_Delete(mc);
			goto out;
		}
		cJSON_DeleteItemFromObjectCaseSensitive(iss, "manual_chain");
		cJSON_AddItemToObject(iss, "manual_chain", mc);
	}
	if ((rc = cs_pki_issuer_save(req, iss)))
		goto out;
	cs_req_set_data(req, issuer_json(req, iss));
out:
	cJSON_Delete(iss);
	return rc;
}

int pki_issuer_delete(struct cs_request *req)
{
	char *id = NULL;
	int rc = cs_pki_resolve_issuer(req, cs_req_capture(req, "ref"), &id);
	if (rc) { /* deleting what is not there is fine, as in Vault */
		free(req->errmsg);
		req->errmsg = NULL;
		return 0;
	}
	char key[128];
	snprintf(key, sizeof key, "config/issuer/%s", id);
	rc = cs_view_delete(req, key);
	cs_pki_cache_forget(req);
	cJSON *c = cs_pki_config(req, "issuers");
	if (!rc && strcmp(cs_pki_jstr(c, "default", ""), id) == 0) {
		jset_str(c, "default", "");
		rc = cs_view_put_json(req, "config/issuers", c);
		cs_req_warn(req, "Deleted issuer was the default issuer; a new default must be "
				 "set");
	}
	snprintf(key, sizeof key, "crls/%s", id);
	cs_view_delete(req, key);
	snprintf(key, sizeof key, "crls/%s-delta", id);
	cs_view_delete(req, key);
	cJSON_Delete(c);
	free(id);
	return rc;
}

int pki_issuers_list(struct cs_request *req)
{
	struct cs_strv ids = {0};
	int rc = cs_view_list(req, "config/issuer/", &ids);
	if (rc)
		return rc;
	cJSON *c = cs_pki_config(req, "issuers");
	const char *def = cs_pki_jstr(c, "default", "");
	cJSON *d = cJSON_CreateObject();
	cJSON *keys = cJSON_AddArrayToObject(d, "keys");
	cJSON *info = cJSON_AddObjectToObject(d, "key_info");
	for (size_t i = 0; i < ids.n; i++) {
		cJSON *iss = NULL;
		if (cs_pki_issuer_load(req, ids.v[i], &iss))
			continue;
		cJSON_AddItemToArray(keys, cJSON_CreateString(ids.v[i]));
		cJSON *e = cJSON_AddObjectToObject(info, ids.v[i]);
		cJSON_AddStringToObject(e, "issuer_name", cs_pki_jstr(iss, "name", ""));
		cJSON_AddBoolToObject(e, "is_default", strcmp(def, ids.v[i]) == 0);
		cJSON_AddStringToObject(e, "key_id", cs_pki_jstr(iss, "key_id", ""));
		X509 *x = cs_pki_issuer_cert(iss);
		if (x) {
			char sn[80];
			cs_pki_cert_serial(x, ':', sn, sizeof sn);
			cJSON_AddStringToObject(e, "serial_number", sn);
			X509_free(x);
		}
		cJSON_Delete(iss);
	}
	cJSON_Delete(c);
	cs_strv_free(&ids);
	if (cJSON_GetArraySize(keys) == 0) {
		cJSON_Delete(d);
		return CS_ENOTFOUND; /* Vault: 404 on an empty list */
	}
	cs_req_set_data(req, d);
	return 0;
}

/* issuer/:ref/json|der|pem */
int pki_issuer_raw(struct cs_request *req)
{
	cJSON *iss = NULL;
	int rc = load_ref(req, &iss);
	if (rc)
		return rc;
	/* issuer/<ref>/json|der|pem: the format is the path's last segment */
	const char *fmt = strrchr(req->rel, '/') + 1;
	X509 *x = cs_pki_issuer_cert(iss);
	if (!x) {
		cJSON_Delete(iss);
		return CS_EINTERNAL;
	}
	if (fmt && strcmp(fmt, "der") == 0) {
		size_t n;
		uint8_t *der = cs_pki_cert_der(x, &n);
		cs_req_set_raw(req, "application/pkix-cert", der, n);
		free(der);
	} else if (fmt && strcmp(fmt, "pem") == 0) {
		const char *pem = cs_pki_jstr(iss, "certificate", "");
		cs_req_set_raw(req, "application/pem-certificate-chain", pem, strlen(pem));
	} else {
		cJSON *d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "certificate", cs_pki_jstr(iss, "certificate", ""));
		cJSON_AddItemToObject(d, "ca_chain", cs_pki_issuer_chain(req, iss));
		cJSON_AddStringToObject(d, "issuer_id", cs_pki_jstr(iss, "id", ""));
		cJSON_AddStringToObject(d, "issuer_name", cs_pki_jstr(iss, "name", ""));
		cs_req_set_data(req, d);
	}
	X509_free(x);
	cJSON_Delete(iss);
	return 0;
}

/* ---- config/issuers, config/keys */

int pki_config_issuers_read(struct cs_request *req)
{
	cJSON *c = cs_pki_config(req, "issuers");
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "default", cs_pki_jstr(c, "default", ""));
	cJSON_AddBoolToObject(d, "default_follows_latest_issuer",
			      cs_pki_jbool(c, "default_follows_latest_issuer", false));
	cJSON_Delete(c);
	cs_req_set_data(req, d);
	return 0;
}

int pki_config_issuers_write(struct cs_request *req)
{
	cJSON *c = cs_pki_config(req, "issuers");
	int rc = 0;
	if (cs_req_has(req, "default")) {
		char *id = NULL;
		const char *ref = cs_req_str(req, "default", "");
		if (strcmp(ref, "default") == 0)
			rc = cs_req_error(req, CS_EINVAL,
					  "invalid issuer specification; must be "
					  "non-empty and can't be 'default'");
		if (!rc && !*ref)
			rc = cs_req_error(req, CS_EINVAL,
					  "invalid issuer specification; must be "
					  "non-empty and can't be 'default'");
		if (!rc)
			rc = cs_pki_resolve_issuer(req, ref, &id);
		if (!rc)
			jset_str(c, "default", id);
		cJSON *iss = NULL;
		if (!rc && cs_pki_issuer_load(req, id, &iss) == 0 &&
		    !*cs_pki_jstr(iss, "key_id", ""))
			cs_req_warn(req,
				    "This selected default issuer has no key associated with "
				    "it. Some operations like issuing certificates and signing "
				    "CRLs will be unavailable with the requested default issuer "
				    "until a key is imported or the default issuer is changed.");
		cJSON_Delete(iss);
		free(id);
	}
	if (!rc && cs_req_has(req, "default_follows_latest_issuer")) {
		cJSON_DeleteItemFromObjectCaseSensitive(c, "default_follows_latest_issuer");
		cJSON_AddBoolToObject(c, "default_follows_latest_issuer",
				      cs_req_bool(req, "default_follows_latest_issuer", false));
	}
	if (!rc)
		rc = cs_view_put_json(req, "config/issuers", c);
	cJSON_Delete(c);
	return rc ? rc : pki_config_issuers_read(req);
}

int pki_config_keys_read(struct cs_request *req)
{
	cJSON *c = cs_pki_config(req, "keys");
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "default", cs_pki_jstr(c, "default", ""));
	cJSON_Delete(c);
	cs_req_set_data(req, d);
	return 0;
}

int pki_config_keys_write(struct cs_request *req)
{
	char *id = NULL;
	int rc = cs_pki_resolve_key(req, cs_req_str(req, "default", ""), &id);
	if (rc)
		return rc;
	cJSON *c = cs_pki_config(req, "keys");
	jset_str(c, "default", id);
	rc = cs_view_put_json(req, "config/keys", c);
	cJSON_Delete(c);
	free(id);
	return rc ? rc : pki_config_keys_read(req);
}

/* ---- keys */

int pki_keys_list(struct cs_request *req)
{
	struct cs_strv ids = {0};
	int rc = cs_view_list(req, "config/key/", &ids);
	if (rc)
		return rc;
	cJSON *d = cJSON_CreateObject();
	cJSON *keys = cJSON_AddArrayToObject(d, "keys");
	cJSON *info = cJSON_AddObjectToObject(d, "key_info");
	for (size_t i = 0; i < ids.n; i++) {
		cJSON *k = NULL;
		if (cs_pki_key_load(req, ids.v[i], &k))
			continue;
		cJSON_AddItemToArray(keys, cJSON_CreateString(ids.v[i]));
		cJSON *e = cJSON_AddObjectToObject(info, ids.v[i]);
		cJSON_AddStringToObject(e, "key_name", cs_pki_jstr(k, "name", ""));
		cs_json_delete_wiped(k);
	}
	cs_strv_free(&ids);
	if (cJSON_GetArraySize(keys) == 0) {
		cJSON_Delete(d);
		return CS_ENOTFOUND;
	}
	cs_req_set_data(req, d);
	return 0;
}

static int load_key_ref(struct cs_request *req, cJSON **k)
{
	char *id = NULL;
	int rc = cs_pki_resolve_key(req, cs_req_capture(req, "ref"), &id);
	if (!rc)
		rc = cs_pki_key_load(req, id, k);
	free(id);
	return rc;
}

static int key_answer(struct cs_request *req, const cJSON *k)
{
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "key_id", cs_pki_jstr(k, "id", ""));
	cJSON_AddStringToObject(d, "key_name", cs_pki_jstr(k, "name", ""));
	cJSON_AddStringToObject(d, "key_type", cs_pki_jstr(k, "type", ""));
	cs_req_set_data(req, d);
	return 0;
}

int pki_key_read(struct cs_request *req)
{
	cJSON *k = NULL;
	int rc = load_key_ref(req, &k);
	if (!rc)
		rc = key_answer(req, k);
	cs_json_delete_wiped(k);
	return rc;
}

int pki_key_update(struct cs_request *req)
{
	cJSON *k = NULL;
	int rc = load_key_ref(req, &k);
	if (rc)
		return rc;
	const char *name = cs_req_str(req, "key_name", "");
	if (strcmp(name, "default") == 0) {
		rc = cs_req_error(req, CS_EINVAL,
				  "reserved keyword 'default' can not be used as key name");
	} else if (*name) {
		char *other = NULL;
		if (cs_pki_resolve_key(req, name, &other) == 0 &&
		    strcmp(other, cs_pki_jstr(k, "id", "")) != 0)
			rc = cs_req_error(req, CS_EINVAL, "key name already in use");
		else {
			free(req->errmsg);
			req->errmsg = NULL;
		}
		free(other);
	}
	if (!rc) {
		jset_str(k, "name", name);
		char key[128];
		snprintf(key, sizeof key, "config/key/%s", cs_pki_jstr(k, "id", ""));
		rc = cs_view_put_json(req, key, k);
	}
	if (!rc)
		rc = key_answer(req, k);
	cs_json_delete_wiped(k);
	return rc;
}

int pki_key_delete(struct cs_request *req)
{
	char *id = NULL;
	int rc = cs_pki_resolve_key(req, cs_req_capture(req, "ref"), &id);
	if (rc) {
		free(req->errmsg);
		req->errmsg = NULL;
		return 0;
	}
	struct cs_strv ids = {0};
	cs_view_list(req, "config/issuer/", &ids);
	for (size_t i = 0; !rc && i < ids.n; i++) {
		cJSON *iss = NULL;
		if (cs_pki_issuer_load(req, ids.v[i], &iss) == 0 &&
		    strcmp(cs_pki_jstr(iss, "key_id", ""), id) == 0)
			rc = cs_req_error(req, CS_EINVAL,
					  "unable to delete key as it is in use by one or more "
					  "issuers");
		cJSON_Delete(iss);
	}
	cs_strv_free(&ids);
	if (!rc) {
		char key[128];
		snprintf(key, sizeof key, "config/key/%s", id);
		rc = cs_view_delete(req, key);
		cs_pki_cache_forget(req);
		cJSON *c = cs_pki_config(req, "keys");
		if (!rc && strcmp(cs_pki_jstr(c, "default", ""), id) == 0)
			rc = cs_view_delete(req, "config/keys");
		cJSON_Delete(c);
	}
	free(id);
	return rc;
}

/* DELETE root: every issuer and key (Vault's "delete all"). */
int pki_root_delete(struct cs_request *req)
{
	static const char *const dirs[] = {"config/issuer/", "config/key/", "crls/"};
	for (size_t d = 0; d < CS_ARRAY_LEN(dirs); d++) {
		struct cs_strv ids = {0};
		int rc = cs_view_list(req, dirs[d], &ids);
		for (size_t i = 0; !rc && i < ids.n; i++) {
			char key[200];
			snprintf(key, sizeof key, "%s%s", dirs[d], ids.v[i]);
			rc = cs_view_delete(req, key);
		}
		cs_strv_free(&ids);
		if (rc)
			return rc;
	}
	cs_pki_cache_forget(req);
	int rc = cs_view_delete(req, "config/issuers");
	if (!rc)
		rc = cs_view_delete(req, "config/keys");
	if (!rc)
		cs_req_warn(req,
			    "DELETE /root deletes all keys and issuers; prefer the new DELETE "
			    "/key/:key_ref and DELETE /issuer/:issuer_ref for finer granularity, "
			    "unless removal of all keys and issuers is desired.");
	return rc;
}

/* ---- ca, ca/pem, ca_chain, cert/ca_chain, cert/ca */

int pki_ca_raw(struct cs_request *req)
{
	const char *what = strcmp(req->rel, "ca/pem") == 0 ? "pem" : req->rel; /* ca, ca_chain */
	char *id = NULL;
	cJSON *iss = NULL;
	bool have = cs_pki_resolve_issuer(req, "default", &id) == 0 &&
		    cs_pki_issuer_load(req, id, &iss) == 0;
	free(id);
	free(req->errmsg);
	req->errmsg = NULL;
	if (!have) { /* Vault: an empty raw answer (204) without a CA */
		cs_req_set_raw(req, "application/pkix-cert", "", 0);
		cJSON_Delete(iss);
		return 0;
	}
	if (strcmp(what, "ca_chain") == 0) {
		cJSON *chain = cs_pki_issuer_chain(req, iss);
		struct cs_buf b = CS_BUF_INIT;
		const cJSON *e;
		cJSON_ArrayForEach(e, chain)
		{
			if (b.len)
				cs_buf_putc(&b, '\n');
			cs_buf_puts(&b, e->valuestring);
		}
		cs_req_set_raw(req, "application/pkix-cert", b.data ? b.data : "", b.len);
		cs_buf_free(&b);
		cJSON_Delete(chain);
	} else if (strcmp(what, "pem") == 0) {
		const char *pem = cs_pki_jstr(iss, "certificate", "");
		cs_req_set_raw(req, "application/pem-certificate-chain", pem, strlen(pem));
	} else {
		X509 *x = cs_pki_issuer_cert(iss);
		size_t n = 0;
		uint8_t *der = x ? cs_pki_cert_der(x, &n) : NULL;
		cs_req_set_raw(req, "application/pkix-cert", der ? der : (uint8_t *)"", n);
		free(der);
		X509_free(x);
	}
	cJSON_Delete(iss);
	return 0;
}

int pki_cert_ca_chain(struct cs_request *req)
{
	char *id = NULL;
	cJSON *iss = NULL;
	int rc = cs_pki_resolve_issuer(req, "default", &id);
	if (!rc)
		rc = cs_pki_issuer_load(req, id, &iss);
	free(id);
	if (rc)
		return rc;
	cJSON *chain = cs_pki_issuer_chain(req, iss);
	struct cs_buf b = CS_BUF_INIT;
	const cJSON *e;
	cJSON_ArrayForEach(e, chain)
	{
		if (b.len)
			cs_buf_putc(&b, '\n');
		cs_buf_puts(&b, e->valuestring);
	}
	cs_buf_putc(&b, 0);
	cJSON *d = cJSON_CreateObject();
	bool is_ca = strcmp(req->rel, "cert/ca") == 0;
	cJSON_AddStringToObject(d, "certificate",
				is_ca ? cs_pki_jstr(iss, "certificate", "") : b.data);
	if (!is_ca)
		cJSON_AddStringToObject(d, "ca_chain", b.data);
	cJSON_AddNumberToObject(d, "revocation_time", 0);
	cJSON_AddStringToObject(d, "revocation_time_rfc3339", "");
	cs_buf_free(&b);
	cJSON_Delete(chain);
	cJSON_Delete(iss);
	cs_req_set_data(req, d);
	return 0;
}

/* ---- config/urls, config/cluster */

static int config_read(struct cs_request *req, const char *name, const char *const *lists,
		       size_t nl, const char *const *strs, size_t ns)
{
	cJSON *c = cs_pki_config(req, name);
	cJSON *d = cJSON_CreateObject();
	for (size_t i = 0; i < nl; i++) {
		struct cs_strv v = {0};
		cs_pki_json_list(c, lists[i], &v);
		cJSON *a = cJSON_AddArrayToObject(d, lists[i]);
		for (size_t k = 0; k < v.n; k++)
			cJSON_AddItemToArray(a, cJSON_CreateString(v.v[k]));
		cs_strv_free(&v);
	}
	for (size_t i = 0; i < ns; i++)
		cJSON_AddStringToObject(d, strs[i], cs_pki_jstr(c, strs[i], ""));
	cJSON_Delete(c);
	cs_req_set_data(req, d);
	return 0;
}

static int config_write(struct cs_request *req, const char *name, const char *const *lists,
			size_t nl, const char *const *strs, size_t ns)
{
	cJSON *c = cs_pki_config(req, name);
	for (size_t i = 0; i < nl; i++) {
		if (!cs_req_has(req, lists[i]))
			continue;
		struct cs_strv v = {0};
		cs_pki_req_list(req, lists[i], &v);
		cJSON *a = cJSON_CreateArray();
		for (size_t k = 0; k < v.n; k++) {
			/* Vault: every URL must parse as one */
			if (!strstr(v.v[k], "://")) {
				cJSON_Delete(a);
				cJSON_Delete(c);
				char msg[300];
				snprintf(msg, sizeof msg, "invalid %s: %.200s", lists[i], v.v[k]);
				cs_strv_free(&v);
				return cs_req_error(req, CS_EINVAL, "%s", msg);
			}
			cJSON_AddItemToArray(a, cJSON_CreateString(v.v[k]));
		}
		cs_strv_free(&v);
		cJSON_DeleteItemFromObjectCaseSensitive(c, lists[i]);
		cJSON_AddItemToObject(c, lists[i], a);
	}
	for (size_t i = 0; i < ns; i++)
		if (cs_req_has(req, strs[i]))
			jset_str(c, strs[i], cs_req_str(req, strs[i], ""));
	char key[64];
	snprintf(key, sizeof key, "config/%s", name);
	int rc = cs_view_put_json(req, key, c);
	cJSON_Delete(c);
	return rc ? rc : config_read(req, name, lists, nl, strs, ns);
}

static const char *const url_lists[] = {"issuing_certificates", "crl_distribution_points",
					"ocsp_servers"};
static const char *const cluster_strs[] = {"path", "aia_path"};

int pki_config_urls_read(struct cs_request *req)
{
	int rc = config_read(req, "urls", url_lists, 3, NULL, 0);
	cJSON_AddBoolToObject(req->resp_data, "enable_templating", false);
	return rc;
}

int pki_config_urls_write(struct cs_request *req)
{
	int rc = config_write(req, "urls", url_lists, 3, NULL, 0);
	if (!rc)
		cJSON_AddBoolToObject(req->resp_data, "enable_templating", false);
	return rc;
}

int pki_config_cluster_read(struct cs_request *req)
{
	return config_read(req, "cluster", NULL, 0, cluster_strs, 2);
}

int pki_config_cluster_write(struct cs_request *req)
{
	const char *p = cs_req_str(req, "path", "");
	if (*p && !strstr(p, "://"))
		return cs_req_error(req, CS_EINVAL, "invalid path: %s", p);
	p = cs_req_str(req, "aia_path", "");
	if (*p && !strstr(p, "://"))
		return cs_req_error(req, CS_EINVAL, "invalid aia_path: %s", p);
	return config_write(req, "cluster", NULL, 0, cluster_strs, 2);
}
