/*
 * PKI roles and issuance: roles/:name, issue/:role, sign/:role, sign-verbatim[/:role],
 * issuer/:ref/issue|sign/:role, all through cs_pki_sign_cert (engines/pki_internal.h),
 * which an ACME finalize also calls (cs_pki_sign_csr, engines/pki.h).
 *
 * issue/:role with an RSA role generates the key on the worker pool: the handler checks
 * the whole request first (cs_pki_sign_cert with check_only, so a refused name costs no
 * key), defers, and the resume signs in a fresh transaction, re-reading role and issuer.
 * EC and ed25519 keys take microseconds and are made inline.
 */
#include <arpa/inet.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engines/pki.h"
#include "engines/pki_internal.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/util.h"

/* ---- roles */

enum rtype { R_BOOL, R_STR, R_LIST, R_DUR, R_INT };
struct rfield {
	const char *name;
	enum rtype type;
	const char *def; /* bool: "1"/"0"; list: comma list; dur/int: number */
};

/* Vault's role fields and their defaults (path_roles.go). */
static const struct rfield role_fields[] = {
    {"ttl", R_DUR, "0"},
    {"max_ttl", R_DUR, "0"},
    {"allow_localhost", R_BOOL, "1"},
    {"allowed_domains", R_LIST, ""},
    {"allowed_domains_template", R_BOOL, "0"},
    {"allow_bare_domains", R_BOOL, "0"},
    {"allow_subdomains", R_BOOL, "0"},
    {"allow_glob_domains", R_BOOL, "0"},
    {"allow_wildcard_certificates", R_BOOL, "1"},
    {"allow_any_name", R_BOOL, "0"},
    {"enforce_hostnames", R_BOOL, "1"},
    {"allow_ip_sans", R_BOOL, "1"},
    {"allowed_uri_sans", R_LIST, ""},
    {"allowed_uri_sans_template", R_BOOL, "0"},
    {"allowed_other_sans", R_LIST, ""},
    {"allowed_serial_numbers", R_LIST, ""},
    {"allowed_user_ids", R_LIST, ""},
    {"server_flag", R_BOOL, "1"},
    {"client_flag", R_BOOL, "1"},
    {"code_signing_flag", R_BOOL, "0"},
    {"email_protection_flag", R_BOOL, "0"},
    {"key_type", R_STR, "rsa"},
    {"key_bits", R_INT, "0"},
    {"signature_bits", R_INT, "0"},
    {"use_pss", R_BOOL, "0"},
    {"key_usage", R_LIST, "DigitalSignature,KeyAgreement,KeyEncipherment"},
    {"ext_key_usage", R_LIST, ""},
    {"ext_key_usage_oids", R_LIST, ""},
    {"use_csr_common_name", R_BOOL, "1"},
    {"use_csr_sans", R_BOOL, "1"},
    {"ou", R_LIST, ""},
    {"organization", R_LIST, ""},
    {"country", R_LIST, ""},
    {"locality", R_LIST, ""},
    {"province", R_LIST, ""},
    {"street_address", R_LIST, ""},
    {"postal_code", R_LIST, ""},
    {"generate_lease", R_BOOL, "0"},
    {"no_store", R_BOOL, "0"},
    {"require_cn", R_BOOL, "1"},
    {"cn_validations", R_LIST, "email,hostname"},
    {"policy_identifiers", R_LIST, ""},
    {"basic_constraints_valid_for_non_ca", R_BOOL, "0"},
    {"not_before_duration", R_DUR, "30"},
    {"not_after", R_STR, ""},
    {"issuer_ref", R_STR, "default"},
};

static cJSON *list_json(const char *csv)
{
	cJSON *a = cJSON_CreateArray();
	cJSON *tmp = cJSON_CreateObject();
	cJSON_AddStringToObject(tmp, "v", csv);
	struct cs_strv v = {0};
	cs_pki_json_list(tmp, "v", &v);
	for (size_t i = 0; i < v.n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(v.v[i]));
	cs_strv_free(&v);
	cJSON_Delete(tmp);
	return a;
}

/* One role field's value: the request's when given, else `old`'s, else the default. */
static cJSON *field_value(struct cs_request *req, const cJSON *old, const struct rfield *f)
{
	const cJSON *o = old ? cJSON_GetObjectItemCaseSensitive(old, f->name) : NULL;
	if (cs_req_has(req, f->name)) {
		switch (f->type) {
		case R_BOOL:
			return cJSON_CreateBool(cs_req_bool(req, f->name, false));
		case R_STR:
			return cJSON_CreateString(cs_req_str(req, f->name, ""));
		case R_DUR:
		case R_INT:
			return cJSON_CreateNumber((double)cs_req_int(req, f->name, 0));
		case R_LIST: {
			struct cs_strv v = {0};
			cs_pki_req_list(req, f->name, &v);
			cJSON *a = cJSON_CreateArray();
			for (size_t i = 0; i < v.n; i++)
				cJSON_AddItemToArray(a, cJSON_CreateString(v.v[i]));
			cs_strv_free(&v);
			return a;
		}
		}
	}
	if (o)
		return cJSON_Duplicate(o, 1);
	switch (f->type) {
	case R_BOOL:
		return cJSON_CreateBool(f->def[0] == '1');
	case R_STR:
		return cJSON_CreateString(f->def);
	case R_LIST:
		return list_json(f->def);
	default:
		return cJSON_CreateNumber(atof(f->def));
	}
}

static bool name_ok(const char *n)
{
	if (!*n)
		return false;
	for (const char *p = n; *p; p++)
		if (*p == '/' || *p < 0x20)
			return false;
	return true;
}

static int role_load(struct cs_request *req, const char *name, cJSON **out)
{
	char key[300];
	snprintf(key, sizeof key, "roles/%s", name);
	return cs_view_get_json(req, key, out);
}

int pki_roles_list(struct cs_request *req)
{
	struct cs_strv v = {0};
	int rc = cs_view_list(req, "roles/", &v);
	if (rc)
		return rc;
	if (v.n) {
		cJSON *d = cJSON_CreateObject();
		cJSON *k = cJSON_AddArrayToObject(d, "keys");
		for (size_t i = 0; i < v.n; i++)
			cJSON_AddItemToArray(k, cJSON_CreateString(v.v[i]));
		cs_req_set_data(req, d);
	}
	cs_strv_free(&v);
	return req->resp_data ? 0 : CS_ENOTFOUND;
}

int pki_role_read(struct cs_request *req)
{
	cJSON *r = NULL;
	int rc = role_load(req, cs_req_capture(req, "name"), &r);
	if (rc == CS_ENOTFOUND)
		return CS_ENOTFOUND; /* Vault: 404 without errors */
	if (rc)
		return rc;
	cs_req_set_data(req, r);
	return 0;
}

int pki_role_write(struct cs_request *req)
{
	const char *name = cs_req_capture(req, "name");
	if (!name_ok(name))
		return cs_req_error(req, CS_EINVAL, "invalid role name");
	cJSON *old = NULL;
	if (req->op == CS_OP_PATCH && role_load(req, name, &old))
		return CS_ENOTFOUND;
	cJSON *r = cJSON_CreateObject();
	for (size_t i = 0; i < CS_ARRAY_LEN(role_fields); i++)
		cJSON_AddItemToObject(r, role_fields[i].name,
				      field_value(req, old, &role_fields[i]));
	cJSON_Delete(old);
	int rc = 0;
	const char *kt = cs_pki_jstr(r, "key_type", "rsa");
	int t = cs_pki_key_type_parse(kt);
	int bits = (int)cs_pki_jint(r, "key_bits", 0);
	char err[160];
	if (t < 0)
		rc = cs_req_error(req, CS_EINVAL, "unknown key type %s", kt);
	else if (t != 3 && cs_pki_key_bits_check((enum cs_pki_key_type)t, &bits, err, sizeof err))
		rc = cs_req_error(req, CS_EINVAL, "%s", err);
	int64_t ttl = cs_pki_jint(r, "ttl", 0), max = cs_pki_jint(r, "max_ttl", 0);
	if (!rc && max > 0 && ttl > max)
		rc = cs_req_error(req, CS_EINVAL,
				  "\"ttl\" value must be less than \"max_ttl\" value");
	int sb = (int)cs_pki_jint(r, "signature_bits", 0);
	if (!rc && sb != 0 && sb != 256 && sb != 384 && sb != 512)
		rc = cs_req_error(req, CS_EINVAL, "unsupported signature_bits: %d", sb);
	const char *na = cs_pki_jstr(r, "not_after", "");
	int64_t tmp;
	if (!rc && *na && cs_pki_parse_rfc3339(na, &tmp))
		rc = cs_req_error(req, CS_EINVAL, "invalid not_after: %s", na);
	const char *iref = cs_pki_jstr(r, "issuer_ref", "default");
	if (!rc && *iref && strcmp(iref, "default") != 0) {
		char *id = NULL;
		rc = cs_pki_resolve_issuer(req, iref, &id);
		free(id);
	}
	if (!rc && t != 3) {
		cJSON_DeleteItemFromObjectCaseSensitive(r, "key_bits");
		cJSON_AddNumberToObject(r, "key_bits", bits);
	}
	if (!rc && cs_pki_jint(r, "max_ttl", 0) > 0 && ttl == 0 &&
	    cs_req_default_ttl(req) > cs_pki_jint(r, "max_ttl", 0))
		cs_req_warn(req, "ttl defaults to the mount's default lease TTL, which is longer "
				 "than max_ttl; certificates get max_ttl");
	if (!rc) {
		char key[300];
		snprintf(key, sizeof key, "roles/%s", name);
		rc = cs_view_put_json(req, key, r);
	}
	if (rc) {
		cJSON_Delete(r);
		return rc;
	}
	cs_req_set_data(req, r);
	return 0;
}

int pki_role_delete(struct cs_request *req)
{
	char key[300];
	snprintf(key, sizeof key, "roles/%s", cs_req_capture(req, "name"));
	return cs_view_delete(req, key);
}

/* ---- key usage names */

static const struct {
	const char *name;
	unsigned bit;
} ku_names[] = {
    {"digitalsignature", X509v3_KU_DIGITAL_SIGNATURE},
    {"contentcommitment", X509v3_KU_NON_REPUDIATION},
    {"keyencipherment", X509v3_KU_KEY_ENCIPHERMENT},
    {"dataencipherment", X509v3_KU_DATA_ENCIPHERMENT},
    {"keyagreement", X509v3_KU_KEY_AGREEMENT},
    {"certsign", X509v3_KU_KEY_CERT_SIGN},
    {"crlsign", X509v3_KU_CRL_SIGN},
    {"encipheronly", X509v3_KU_ENCIPHER_ONLY},
    {"decipheronly", X509v3_KU_DECIPHER_ONLY},
};

static const struct {
	const char *name;
	int nid;
} eku_names[] = {
    {"any", NID_anyExtendedKeyUsage},
    {"serverauth", NID_server_auth},
    {"clientauth", NID_client_auth},
    {"codesigning", NID_code_sign},
    {"emailprotection", NID_email_protect},
    {"ipsecendsystem", NID_ipsecEndSystem},
    {"ipsectunnel", NID_ipsecTunnel},
    {"ipsecuser", NID_ipsecUser},
    {"timestamping", NID_time_stamp},
    {"ocspsigning", NID_OCSP_sign},
    {"microsoftservergatedcrypto", NID_ms_sgc},
    {"netscapeservergatedcrypto", NID_ns_sgc},
};

/* Vault accepts "DigitalSignature" and "KeyUsageDigitalSignature", any case. */
static const char *strip_prefix(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);
	return strncasecmp(s, prefix, n) == 0 ? s + n : s;
}

static unsigned key_usage_of(const cJSON *role)
{
	struct cs_strv v = {0};
	cs_pki_json_list(role, "key_usage", &v);
	unsigned ku = 0;
	for (size_t i = 0; i < v.n; i++) {
		const char *s = strip_prefix(v.v[i], "KeyUsage");
		for (size_t k = 0; k < CS_ARRAY_LEN(ku_names); k++)
			if (strcasecmp(s, ku_names[k].name) == 0)
				ku |= ku_names[k].bit;
	}
	cs_strv_free(&v);
	return ku;
}

static size_t ext_key_usage_of(const cJSON *role, int *out, size_t cap)
{
	size_t n = 0;
	if (cs_pki_jbool(role, "server_flag", false))
		out[n++] = NID_server_auth;
	if (cs_pki_jbool(role, "client_flag", false))
		out[n++] = NID_client_auth;
	if (cs_pki_jbool(role, "code_signing_flag", false))
		out[n++] = NID_code_sign;
	if (cs_pki_jbool(role, "email_protection_flag", false))
		out[n++] = NID_email_protect;
	struct cs_strv v = {0};
	cs_pki_json_list(role, "ext_key_usage", &v);
	for (size_t i = 0; i < v.n; i++) {
		const char *s = strip_prefix(v.v[i], "ExtKeyUsage");
		for (size_t k = 0; k < CS_ARRAY_LEN(eku_names); k++) {
			if (strcasecmp(s, eku_names[k].name) != 0)
				continue;
			bool dup = false;
			for (size_t j = 0; j < n; j++)
				dup |= out[j] == eku_names[k].nid;
			if (!dup && n < cap)
				out[n++] = eku_names[k].nid;
		}
	}
	cs_strv_free(&v);
	return n;
}

/* validateOtherSANs: "oid;UTF8:value" against the role's allowed_other_sans. */
static int check_other_sans(struct cs_request *req, const cJSON *role, const struct cs_strv *req_o)
{
	struct cs_strv allowed = {0};
	cs_pki_json_list(role, "allowed_other_sans", &allowed);
	int rc = 0;
	bool any = allowed.n == 1 && strcmp(allowed.v[0], "*") == 0;
	for (size_t i = 0; !rc && i < req_o->n; i++) {
		const char *semi = strchr(req_o->v[i], ';');
		if (!semi || strncasecmp(semi + 1, "utf8:", 5) != 0) {
			rc = cs_req_error(
			    req, CS_EINVAL,
			    "could not parse requested other SAN: expected a semicolon "
			    "and utf8 type in other SAN \"%s\"",
			    req_o->v[i]);
			break;
		}
		if (any)
			continue;
		size_t on = (size_t)(semi - req_o->v[i]);
		const char *val = semi + 6;
		bool oid_known = false, ok = false;
		for (size_t k = 0; k < allowed.n; k++) {
			const char *as = strchr(allowed.v[k], ';');
			if (!as || (size_t)(as - allowed.v[k]) != on ||
			    strncmp(allowed.v[k], req_o->v[i], on) != 0)
				continue;
			oid_known = true;
			const char *colon = strchr(as, ':');
			if (colon && cs_pki_glob(colon + 1, val))
				ok = true;
		}
		if (!oid_known)
			rc = cs_req_error(req, CS_EINVAL,
					  "other SAN OID %.*s not allowed by this role", (int)on,
					  req_o->v[i]);
		else if (!ok)
			rc = cs_req_error(req, CS_EINVAL,
					  "other SAN %s not allowed for OID %.*s by this role", val,
					  (int)on, req_o->v[i]);
	}
	cs_strv_free(&allowed);
	return rc;
}

static struct cs_pki_name_rules rules_of(const cJSON *role, struct cs_strv *domains)
{
	cs_pki_json_list(role, "allowed_domains", domains);
	return (struct cs_pki_name_rules){
	    .allow_any_name = cs_pki_jbool(role, "allow_any_name", false),
	    .allow_localhost = cs_pki_jbool(role, "allow_localhost", true),
	    .allow_bare_domains = cs_pki_jbool(role, "allow_bare_domains", false),
	    .allow_subdomains = cs_pki_jbool(role, "allow_subdomains", false),
	    .allow_glob_domains = cs_pki_jbool(role, "allow_glob_domains", false),
	    .allow_wildcard_certificates = cs_pki_jbool(role, "allow_wildcard_certificates", true),
	    .enforce_hostnames = cs_pki_jbool(role, "enforce_hostnames", true),
	    .allowed_domains = (const char *const *)domains->v,
	    .n_allowed_domains = domains->n,
	};
}

struct cs_pki_name_rules cs_pki_role_rules(const cJSON *role, struct cs_strv *domains)
{
	return rules_of(role, domains);
}

/* validateCommonName: the name rules, then cn_validations (email / hostname / disabled). */
static bool cn_ok(const cJSON *role, const struct cs_pki_name_rules *r, const char *cn)
{
	struct cs_strv v = {0};
	cs_pki_json_list(role, "cn_validations", &v);
	bool disabled = v.n == 1 && strcmp(v.v[0], "disabled") == 0;
	bool ok = disabled;
	if (!ok && cs_pki_name_ok(r, cn)) {
		ok = v.n == 0;
		for (size_t i = 0; !ok && i < v.n; i++)
			ok = strcmp(v.v[i], strchr(cn, '@') ? "email" : "hostname") == 0;
	}
	cs_strv_free(&v);
	return ok;
}

static bool ip_valid(const char *s)
{
	uint8_t b[16];
	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

struct sans {
	struct cs_strv dns, emails, ips, uris, others;
};

static void sans_free(struct sans *s)
{
	cs_strv_free(&s->dns);
	cs_strv_free(&s->emails);
	cs_strv_free(&s->ips);
	cs_strv_free(&s->uris);
	cs_strv_free(&s->others);
}

/* Role checks on the names; fills the SAN lists. 0 or the request's error. */
static int gather_names(struct cs_request *req, const struct cs_pki_sign_input *in, char **cn_out,
			struct sans *s)
{
	const cJSON *role = in->role, *f = in->fields;
	bool use_csr_cn = in->csr && cs_pki_jbool(role, "use_csr_common_name", true);
	bool use_csr_sans = in->csr && cs_pki_jbool(role, "use_csr_sans", true);
	char *cn = NULL;
	if (use_csr_cn || in->verbatim)
		cn = cs_pki_name_cn(X509_REQ_get_subject_name(in->csr));
	if (!cn || !*cn) {
		free(cn);
		cn = strdup(cs_pki_jstr(f, "common_name", ""));
	}
	*cn_out = cn;
	if (!*cn && cs_pki_jbool(role, "require_cn", true) && !in->verbatim)
		return cs_req_error(
		    req, CS_EINVAL,
		    "the common_name field is required, or must be provided in a CSR "
		    "with \"use_csr_common_name\" set to true, unless \"require_cn\" "
		    "is set to false");
	struct cs_strv ignore = {0};
	if (use_csr_sans || in->verbatim)
		cs_pki_csr_sans(in->csr, &s->dns, &s->emails, &s->ips, &s->uris, &s->others);
	bool cn_listed = false; /* a CN already among the CSR's SANs is not added twice */
	for (size_t i = 0; *cn && i < s->dns.n; i++)
		cn_listed = cn_listed || strcasecmp(s->dns.v[i], cn) == 0;
	if (*cn && !cn_listed && !cs_pki_jbool(f, "exclude_cn_from_sans", false) && !in->verbatim) {
		if (strchr(cn, '@'))
			cs_strv_push(&s->emails, cn, strlen(cn));
		else if (cs_pki_hostname_ok(cn) || strchr(cn, '*'))
			cs_strv_push(&s->dns, cn, strlen(cn));
	}
	if (!use_csr_sans && !in->verbatim) {
		struct cs_strv alt = {0};
		cs_pki_json_list(f, "alt_names", &alt);
		for (size_t i = 0; i < alt.n; i++)
			cs_strv_push(strchr(alt.v[i], '@') ? &s->emails : &s->dns, alt.v[i],
				     strlen(alt.v[i]));
		cs_strv_free(&alt);
		cs_pki_json_list(f, "ip_sans", &s->ips);
		cs_pki_json_list(f, "uri_sans", &s->uris);
	}
	if (!in->verbatim)
		cs_pki_json_list(f, "other_sans", use_csr_sans ? &ignore : &s->others);
	cs_strv_free(&ignore);
	if (in->verbatim)
		return 0;
	struct cs_strv domains = {0};
	struct cs_pki_name_rules r = rules_of(role, &domains);
	int rc = 0;
	if (*cn && !cn_ok(role, &r, cn))
		rc = cs_req_error(req, CS_EINVAL, "common name %s not allowed by this role", cn);
	for (size_t i = 0; !rc && i < s->dns.n; i++)
		if (!cs_pki_name_ok(&r, s->dns.v[i]))
			rc = cs_req_error(req, CS_EINVAL,
					  "subject alternate name %s not allowed by this role",
					  s->dns.v[i]);
	for (size_t i = 0; !rc && i < s->emails.n; i++)
		if (!cs_pki_name_ok(&r, s->emails.v[i]))
			rc = cs_req_error(req, CS_EINVAL,
					  "subject alternate name %s not allowed by this role",
					  s->emails.v[i]);
	cs_strv_free(&domains);
	const char *src = use_csr_sans ? "CSR" : "the API";
	for (size_t i = 0; !rc && i < s->ips.n; i++)
		if (!ip_valid(s->ips.v[i]))
			rc =
			    cs_req_error(req, CS_EINVAL,
					 "the value \"%s\" is not a valid IP address", s->ips.v[i]);
	if (!rc && s->ips.n && !cs_pki_jbool(role, "allow_ip_sans", true))
		rc = cs_req_error(
		    req, CS_EINVAL,
		    "IP Subject Alternative Names are not allowed in this role, but was "
		    "provided via %s",
		    src);
	if (!rc && s->uris.n) {
		struct cs_strv allowed = {0};
		cs_pki_json_list(role, "allowed_uri_sans", &allowed);
		if (allowed.n == 0)
			rc = cs_req_error(
			    req, CS_EINVAL,
			    "URI Subject Alternative Names are not allowed in this role, "
			    "but were provided via %s",
			    src);
		for (size_t i = 0; !rc && i < s->uris.n; i++) {
			bool ok = false;
			for (size_t k = 0; !ok && k < allowed.n; k++)
				ok = cs_pki_glob(allowed.v[k], s->uris.v[i]);
			if (!ok)
				rc = cs_req_error(
				    req, CS_EINVAL,
				    use_csr_sans
					? "URI Subject Alternative Names were provided via "
					  "CSR which are not valid for this role"
					: "URI Subject Alternative Names were provided via "
					  "the API which are not valid for this role");
		}
		cs_strv_free(&allowed);
	}
	if (!rc && s->others.n)
		rc = check_other_sans(req, role, &s->others);
	const char *sn = cs_pki_jstr(f, "serial_number", "");
	if (!rc && *sn) {
		struct cs_strv allowed = {0};
		cs_pki_json_list(role, "allowed_serial_numbers", &allowed);
		bool ok = false;
		for (size_t k = 0; !ok && k < allowed.n; k++)
			ok = strcmp(allowed.v[k], sn) == 0 ||
			     (strchr(allowed.v[k], '*') && cs_pki_glob(allowed.v[k], sn));
		if (!ok && !cs_pki_jbool(role, "allow_any_name", false))
			rc = cs_req_error(req, CS_EINVAL,
					  "serial_number %s not allowed by this role", sn);
		cs_strv_free(&allowed);
	}
	return rc;
}

/* The subject's key against the role's key_type / key_bits. */
static int check_key(struct cs_request *req, const cJSON *role, EVP_PKEY *pk)
{
	const char *want = cs_pki_jstr(role, "key_type", "rsa");
	if (strcmp(want, "any") == 0)
		return 0;
	enum cs_pki_key_type t;
	int bits;
	if (cs_pki_key_info(pk, &t, &bits))
		return cs_req_error(req, CS_EINVAL, "unsupported key type in the CSR");
	if (strcmp(cs_pki_key_type_name(t), want) != 0)
		return cs_req_error(req, CS_EINVAL, "role requires keys of type %s", want);
	int need = (int)cs_pki_jint(role, "key_bits", 0);
	if (t == CS_PKI_KEY_RSA && need > 0 && bits < need)
		return cs_req_error(req, CS_EINVAL,
				    "role requires a minimum of a %d-bit key, but "
				    "CSR's key is %d bits",
				    need, bits);
	if (t == CS_PKI_KEY_EC && need > 0 && bits != need)
		return cs_req_error(req, CS_EINVAL,
				    "role requires a %d-bit key, but CSR's key is "
				    "%d bits",
				    need, bits);
	return 0;
}

static bool has_usage(const cJSON *iss, const char *u)
{
	struct cs_strv v = {0};
	cs_pki_json_list(iss, "usage", &v);
	bool ok = false;
	for (size_t i = 0; i < v.n; i++)
		ok |= strcmp(v.v[i], u) == 0;
	cs_strv_free(&v);
	return ok;
}

/* A certificate in the answer's format: PEM, or base64 DER for "der". */
static char *encode_cert(X509 *x, const char *format)
{
	if (strcmp(format, "der") == 0) {
		size_t n;
		uint8_t *der = cs_pki_cert_der(x, &n);
		char *s = cs_b64_encode(der, n);
		free(der);
		return s;
	}
	return cs_pki_cert_pem(x);
}

static char *encode_pem(const char *pem, const char *format)
{
	if (strcmp(format, "der") != 0)
		return strdup(pem);
	X509 *x = cs_pki_cert_from_pem(pem);
	char *s = x ? encode_cert(x, "der") : strdup("");
	X509_free(x);
	return s;
}

int cs_pki_sign_cert(struct cs_request *req, const struct cs_pki_sign_input *in, cJSON **data)
{
	*data = NULL;
	const cJSON *role = in->role, *f = in->fields;
	const char *format = cs_pki_jstr(f, "format", "pem");
	if (strcmp(format, "pem") != 0 && strcmp(format, "der") != 0 &&
	    strcmp(format, "pem_bundle") != 0)
		return cs_req_error(req, CS_EINVAL, "invalid format specified");
	const char *ref =
	    in->issuer_ref ? in->issuer_ref : cs_pki_jstr(role, "issuer_ref", "default");
	char *iid = NULL;
	cJSON *iss = NULL;
	int rc = cs_pki_resolve_issuer(req, ref, &iid);
	if (!rc)
		rc = cs_pki_issuer_load(req, iid, &iss);
	if (rc) {
		free(iid);
		return rc;
	}
	char *cn = NULL;
	struct sans s = {0};
	X509 *ix = NULL, *x = NULL;
	EVP_PKEY *signer = NULL;
	X509_NAME *subject = NULL;
	if (!has_usage(iss, "issuing-certificates")) {
		rc = cs_req_error(req, CS_EINVAL,
				  "requested usage issuing-certificates for issuer %s but only had "
				  "usage %s",
				  iid, cs_pki_jstr(iss, "usage", ""));
		goto out;
	}
	if (!*cs_pki_jstr(iss, "key_id", "")) {
		rc = cs_req_error(req, CS_EINVAL, "unable to sign: issuer %s has no private key",
				  iid);
		goto out;
	}
	ix = cs_pki_issuer_cert(iss);
	if (!ix) {
		rc = CS_EINTERNAL;
		goto out;
	}
	if (in->csr) {
		EVP_PKEY *pub = X509_REQ_get0_pubkey(in->csr);
		if (!pub || X509_REQ_verify(in->csr, pub) != 1) {
			rc =
			    cs_req_error(req, CS_EINVAL,
					 "request signature invalid: certificate request could not "
					 "be verified");
			goto out;
		}
		if (!in->is_ca && (rc = check_key(req, role, pub)))
			goto out;
	}
	if ((rc = gather_names(req, in, &cn, &s)))
		goto out;
	/* NotAfter */
	int64_t now = cs_now_ns() / 1000000000, not_after = 0;
	enum cs_pki_leaf_behavior beh;
	cs_pki_leaf_behavior_parse(cs_pki_jstr(iss, "leaf_not_after_behavior", "err"), &beh);
	struct cs_pki_ttl_in ti = {.now = now,
				   .ttl = cs_pki_jint(f, "ttl", 0),
				   .role_ttl = cs_pki_jint(role, "ttl", 0),
				   .role_max_ttl = cs_pki_jint(role, "max_ttl", 0),
				   .sys_default_ttl = cs_req_default_ttl(req),
				   .sys_max_ttl = cs_req_max_ttl(req),
				   .issuer_not_after = cs_pki_cert_not_after(ix),
				   .behavior = beh};
	const char *na = cs_pki_jstr(role, "not_after", "");
	if (!*na)
		na = cs_pki_jstr(f, "not_after", "");
	if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(f, "ttl"))) {
		/* ACME and internal callers may pass a duration string */
		int64_t v;
		if (cs_parse_duration(cs_pki_jstr(f, "ttl", "0"), &v) == 0)
			ti.ttl = v;
	}
	if (*na && cs_pki_parse_rfc3339(na, &ti.not_after)) {
		rc = cs_req_error(req, CS_EINVAL, "invalid not_after: %s", na);
		goto out;
	}
	char err[300];
	const char *warn;
	if (cs_pki_not_after(&ti, &not_after, &warn, err, sizeof err)) {
		rc = cs_req_error(req, CS_EINVAL, "%s", err);
		goto out;
	}
	if (in->check_only)
		goto out;
	if (warn)
		cs_req_warn(req, "%s", warn);
	if ((rc = cs_pki_issuer_signer(req, iss, &signer)))
		goto out;
	uint8_t serial[20];
	if ((rc = cs_pki_new_serial(req, serial)))
		goto out;
	if (in->verbatim || in->subject_from_csr)
		subject = X509_NAME_dup(X509_REQ_get_subject_name(in->csr));
	else
		subject = cs_pki_subject(role, cn, cs_pki_jstr(f, "serial_number", ""));
	int eku[16];
	struct cs_strv eku_oids = {0};
	struct pki_urls u = {0};
	cs_pki_json_list(role, "ext_key_usage_oids", &eku_oids);
	pki_urls_load(req, &u);
	struct cs_pki_cert_spec spec = {
	    .subject = subject,
	    .pubkey = in->csr ? X509_REQ_get0_pubkey(in->csr) : in->key,
	    .issuer = ix,
	    .signer = signer,
	    .serial = serial,
	    .serial_len = 20,
	    .not_before = now - cs_pki_jint(role, "not_before_duration", 30),
	    .not_after = not_after,
	    .is_ca = in->is_ca,
	    .max_path_len = in->max_path_len,
	    .basic_constraints_non_ca =
		cs_pki_jbool(role, "basic_constraints_valid_for_non_ca", false),
	    .key_usage =
		in->is_ca ? (X509v3_KU_KEY_CERT_SIGN | X509v3_KU_CRL_SIGN) : key_usage_of(role),
	    .ext_key_usage = eku,
	    .n_ext_key_usage = in->is_ca ? 0 : ext_key_usage_of(role, eku, CS_ARRAY_LEN(eku)),
	    .ext_key_usage_oids = (const char *const *)eku_oids.v,
	    .n_ext_key_usage_oids = in->is_ca ? 0 : eku_oids.n,
	    .signature_bits = (int)cs_pki_jint(role, "signature_bits", 0),
	    .use_pss = cs_pki_jbool(role, "use_pss", false),
	    .dns = (const char *const *)s.dns.v,
	    .n_dns = s.dns.n,
	    .emails = (const char *const *)s.emails.v,
	    .n_emails = s.emails.n,
	    .ips = (const char *const *)s.ips.v,
	    .n_ips = s.ips.n,
	    .uris = (const char *const *)s.uris.v,
	    .n_uris = s.uris.n,
	    .other_sans = (const char *const *)s.others.v,
	    .n_other_sans = s.others.n,
	};
	pki_urls_spec(&spec, &u);
	x = cs_pki_cert_build(&spec, err, sizeof err);
	pki_urls_free(&u);
	cs_strv_free(&eku_oids);
	if (!x) {
		rc = cs_req_error(req, CS_EINVAL, "%s", err);
		goto out;
	}
	if (in->is_ca || !cs_pki_jbool(role, "no_store", false))
		if ((rc = cs_pki_cert_store(req, x, iid)))
			goto out;
	if (!in->is_ca && cs_pki_jbool(role, "generate_lease", false)) {
		/* Vault: the lease lasts as long as the certificate; revoking it (or the token
		 * that holds it) revokes the certificate (pki_lease_revoke). */
		char lsn[80];
		cs_pki_cert_serial(x, ':', lsn, sizeof lsn);
		char *lpem = cs_pki_cert_pem(x);
		cJSON *internal = cJSON_CreateObject();
		cJSON_AddStringToObject(internal, "serial_number", lsn);
		cJSON_AddStringToObject(internal, "certificate", lpem);
		free(lpem);
		int64_t left = not_after - now;
		if ((rc = cs_req_lease(req, "cert", internal, left, left)))
			goto out;
	}
	cJSON *d = cJSON_CreateObject();
	const char *fmt = strcmp(format, "der") == 0 ? "der" : "pem";
	char *pem = encode_cert(x, fmt);
	char sn[80];
	cs_pki_cert_serial(x, ':', sn, sizeof sn);
	char *ipem = encode_pem(cs_pki_jstr(iss, "certificate", ""), fmt);
	cJSON *chain = cs_pki_issuer_chain(req, iss);
	cJSON *ca_chain = cJSON_CreateArray();
	const cJSON *e;
	cJSON_ArrayForEach(e, chain)
	{
		char *c = encode_pem(e->valuestring, fmt);
		cJSON_AddItemToArray(ca_chain, cJSON_CreateString(c));
		free(c);
	}
	cJSON_Delete(chain);
	if (strcmp(format, "pem_bundle") == 0 && in->key) {
		char *k = cs_pki_key_encode(in->key, cs_pki_jstr(f, "private_key_format", "pem"));
		struct cs_buf b = CS_BUF_INIT;
		cs_buf_printf(&b, "%s\n%s\n%s", pem, k ? k : "", ipem);
		cs_buf_putc(&b, 0);
		free(pem);
		pem = cs_buf_steal(&b, NULL);
		if (k)
			cs_zero(k, strlen(k));
		free(k);
	}
	cJSON_AddStringToObject(d, "certificate", pem);
	cJSON_AddStringToObject(d, "issuing_ca", ipem);
	cJSON_AddItemToObject(d, "ca_chain", ca_chain);
	cJSON_AddStringToObject(d, "serial_number", sn);
	cJSON_AddNumberToObject(d, "expiration", (double)cs_pki_cert_not_after(x));
	if (in->key) {
		/* format der → base64 DER unless pkcs8 is asked; else PEM (traditional or
		 * PKCS#8), as Vault's private_key_format */
		const char *pkf = cs_pki_jstr(f, "private_key_format", "");
		const char *kf = strcmp(pkf, "pkcs8") == 0                               ? "pkcs8"
				 : strcmp(format, "der") == 0 || strcmp(pkf, "der") == 0 ? "der"
											 : "pem";
		char *k = cs_pki_key_encode(in->key, kf);
		cJSON_AddStringToObject(d, "private_key", k ? k : "");
		cJSON_AddStringToObject(d, "private_key_type", cs_pki_key_type_of(in->key));
		if (k)
			cs_zero(k, strlen(k));
		free(k);
	}
	free(pem);
	free(ipem);
	*data = d;
out:
	X509_NAME_free(subject);
	EVP_PKEY_free(signer);
	X509_free(x);
	X509_free(ix);
	sans_free(&s);
	free(cn);
	free(iid);
	cJSON_Delete(iss);
	return rc;
}

/* ---- issue */

struct issue_job {
	struct cs_async async;
	int bits;
	EVP_PKEY *key;
};

static void issue_work(struct cs_async *a)
{
	struct issue_job *j = CS_CONTAINER_OF(a, struct issue_job, async);
	j->key = cs_pki_keygen(CS_PKI_KEY_RSA, j->bits);
}

/* The role of the {role} capture, or the request's error (Vault's text). */
static int load_role(struct cs_request *req, cJSON **role)
{
	const char *name = cs_req_capture(req, "role");
	int rc = role_load(req, name, role);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL, "unknown role: %s", name);
	return rc;
}

static int issue_with(struct cs_request *req, EVP_PKEY *key)
{
	cJSON *role = NULL;
	int rc = load_role(req, &role);
	if (rc)
		return rc;
	struct cs_pki_sign_input in = {.role = role,
				       .fields = req->data,
				       .issuer_ref = cs_req_capture(req, "ref"),
				       .key = key,
				       .max_path_len = -1};
	cJSON *d = NULL;
	rc = cs_pki_sign_cert(req, &in, &d);
	cJSON_Delete(role);
	if (!rc)
		cs_req_set_data(req, d);
	return rc;
}

static int issue_resume(struct cs_request *req, struct cs_async *a, int status)
{
	struct issue_job *j = CS_CONTAINER_OF(a, struct issue_job, async);
	int rc = status;
	if (!rc && !j->key)
		rc = cs_req_error(req, CS_EINTERNAL, "key generation failed");
	if (!rc)
		rc = issue_with(req, j->key);
	EVP_PKEY_free(j->key);
	free(j);
	return rc;
}

int pki_issue(struct cs_request *req)
{
	cJSON *role = NULL;
	int rc = load_role(req, &role);
	if (rc)
		return rc;
	const char *kt = cs_pki_jstr(role, "key_type", "rsa");
	int t = cs_pki_key_type_parse(kt);
	int bits = (int)cs_pki_jint(role, "key_bits", 0);
	if (t == 3 || t < 0) {
		cJSON_Delete(role);
		return cs_req_error(
		    req, CS_EINVAL,
		    "role key type \"any\" not allowed for issuing certificates, only "
		    "signing");
	}
	char err[128];
	cs_pki_key_bits_check((enum cs_pki_key_type)t, &bits, err, sizeof err);
	if (t != CS_PKI_KEY_RSA) { /* microseconds: inline */
		cJSON_Delete(role);
		EVP_PKEY *k = cs_pki_keygen((enum cs_pki_key_type)t, bits);
		if (!k)
			return cs_req_error(req, CS_EINTERNAL, "key generation failed");
		rc = issue_with(req, k);
		EVP_PKEY_free(k);
		return rc;
	}
	/* RSA: refuse what would be refused before paying for a key. */
	struct cs_pki_sign_input in = {.role = role,
				       .fields = req->data,
				       .issuer_ref = cs_req_capture(req, "ref"),
				       .max_path_len = -1,
				       .check_only = true};
	cJSON *d = NULL;
	rc = cs_pki_sign_cert(req, &in, &d);
	cJSON_Delete(role);
	if (rc)
		return rc;
	struct issue_job *j = calloc(1, sizeof *j);
	if (!j)
		return CS_ENOMEM;
	j->bits = bits;
	j->async.work = issue_work;
	j->async.resume = issue_resume;
	return cs_req_defer(req, &j->async);
}

static int parse_csr(struct cs_request *req, X509_REQ **csr)
{
	const char *pem = cs_req_str(req, "csr", "");
	if (!*pem)
		return cs_req_error(req, CS_EINVAL, "\"csr\" is empty");
	*csr = cs_pki_csr_from_pem(pem);
	if (!*csr)
		return cs_req_error(req, CS_EINVAL, "certificate request could not be parsed");
	return 0;
}

int pki_sign(struct cs_request *req)
{
	cJSON *role = NULL;
	X509_REQ *csr = NULL;
	int rc = load_role(req, &role);
	if (!rc)
		rc = parse_csr(req, &csr);
	if (!rc) {
		struct cs_pki_sign_input in = {.role = role,
					       .fields = req->data,
					       .issuer_ref = cs_req_capture(req, "ref"),
					       .csr = csr,
					       .max_path_len = -1};
		cJSON *d = NULL;
		rc = cs_pki_sign_cert(req, &in, &d);
		if (!rc)
			cs_req_set_data(req, d);
	}
	X509_REQ_free(csr);
	cJSON_Delete(role);
	return rc;
}

/* The role sign-verbatim signs with: any name, the CSR's subject and SANs, the request's
 * key_usage / ext_key_usage, and the TTLs / no_store / issuer of the named role if any. */
static cJSON *verbatim_role(struct cs_request *req, const cJSON *named)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddBoolToObject(r, "allow_any_name", true);
	cJSON_AddBoolToObject(r, "enforce_hostnames", false);
	cJSON_AddStringToObject(r, "key_type", "any");
	cJSON_AddNumberToObject(r, "ttl", (double)cs_pki_jint(named, "ttl", 0));
	cJSON_AddNumberToObject(r, "max_ttl", (double)cs_pki_jint(named, "max_ttl", 0));
	cJSON_AddBoolToObject(r, "no_store", cs_pki_jbool(named, "no_store", false));
	cJSON_AddStringToObject(r, "issuer_ref", cs_pki_jstr(named, "issuer_ref", "default"));
	cJSON_AddNumberToObject(r, "not_before_duration",
				(double)cs_pki_jint(named, "not_before_duration", 30));
	cJSON_AddNumberToObject(r, "signature_bits", (double)cs_req_int(req, "signature_bits", 0));
	cJSON_AddBoolToObject(r, "use_pss", cs_req_bool(req, "use_pss", false));
	cJSON *ku = cs_req_has(req, "key_usage")
			? NULL
			: list_json("DigitalSignature,KeyAgreement,KeyEncipherment");
	if (!ku) {
		struct cs_strv v = {0};
		cs_pki_req_list(req, "key_usage", &v);
		ku = cJSON_CreateArray();
		for (size_t i = 0; i < v.n; i++)
			cJSON_AddItemToArray(ku, cJSON_CreateString(v.v[i]));
		cs_strv_free(&v);
	}
	cJSON_AddItemToObject(r, "key_usage", ku);
	static const char *const lists[] = {"ext_key_usage", "ext_key_usage_oids"};
	for (size_t k = 0; k < 2; k++) {
		struct cs_strv v = {0};
		cs_pki_req_list(req, lists[k], &v);
		cJSON *a = cJSON_AddArrayToObject(r, lists[k]);
		for (size_t i = 0; i < v.n; i++)
			cJSON_AddItemToArray(a, cJSON_CreateString(v.v[i]));
		cs_strv_free(&v);
	}
	return r;
}

int pki_sign_verbatim(struct cs_request *req)
{
	cJSON *named = NULL;
	int rc = 0;
	if (cs_req_capture(req, "role"))
		rc = load_role(req, &named);
	X509_REQ *csr = NULL;
	if (!rc)
		rc = parse_csr(req, &csr);
	if (!rc) {
		cJSON *role = verbatim_role(req, named);
		struct cs_pki_sign_input in = {.role = role,
					       .fields = req->data,
					       .issuer_ref = cs_req_capture(req, "ref"),
					       .csr = csr,
					       .verbatim = true,
					       .max_path_len = -1};
		cJSON *d = NULL;
		rc = cs_pki_sign_cert(req, &in, &d);
		if (!rc)
			cs_req_set_data(req, d);
		cJSON_Delete(role);
	}
	X509_REQ_free(csr);
	cJSON_Delete(named);
	return rc;
}

int cs_pki_sign_csr(struct cs_request *req, const char *role_name, const char *issuer_ref,
		    X509_REQ *csr, const cJSON *fields, cJSON **data)
{
	cJSON *role = NULL, *named = NULL;
	int rc = 0;
	if (role_name) {
		rc = role_load(req, role_name, &role);
		if (rc == CS_ENOTFOUND)
			return cs_req_error(req, CS_EINVAL, "unknown role: %s", role_name);
		if (rc)
			return rc;
	}
	cJSON *empty = cJSON_CreateObject();
	struct cs_pki_sign_input in = {.role = role ? role : (named = verbatim_role(req, NULL)),
				       .fields = fields ? fields : empty,
				       .issuer_ref = issuer_ref,
				       .csr = csr,
				       .verbatim = role == NULL,
				       .max_path_len = -1};
	rc = cs_pki_sign_cert(req, &in, data);
	cJSON_Delete(empty);
	cJSON_Delete(role);
	cJSON_Delete(named);
	return rc;
}
