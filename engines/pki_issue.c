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

/*
 * One issuance in three steps, so that the middle one can run on the worker pool:
 *   sign_prepare (loop, in the request's transaction): every check against the role and
 *     the issuer, the serial, the NotAfter; everything the certificate needs is copied
 *     into the job, the issuer's certificate and key by reference (up_ref'd);
 *   sign_make (any thread: touches only the job): the subject's key when one is to be
 *     generated, the certificate built and signed, the answer's PEMs encoded;
 *   sign_finish (loop, in a transaction): storage (certs/<serial>), the lease, the answer.
 */
struct sign_job {
	struct cs_async async;
	/* inputs */
	int gen_type; /* -1: the subject's key is given (key or csr) */
	int gen_bits;
	EVP_PKEY *key; /* the subject's private key (given or generated), owned */
	EVP_PKEY *pub; /* the CSR's public key, owned (up_ref'd) */
	struct cs_pki_issuer_ref ir;
	char *iid;
	X509_NAME *subject;
	struct sans s;
	int eku[16];
	size_t n_eku;
	struct cs_strv eku_oids;
	struct pki_urls u;
	uint8_t serial[20];
	int64_t now, not_before, not_after;
	bool is_ca, bc_non_ca, use_pss, store, lease;
	int max_path_len, sigbits;
	unsigned ku;
	char format[16], pkf[16];
	/* outputs */
	X509 *x;
	char *cert_out, *key_out, *bundle_key;
	char err[300];
};

static void sign_job_free(struct sign_job *j)
{
	EVP_PKEY_free(j->key);
	EVP_PKEY_free(j->pub);
	cs_pki_issuer_ref_free(&j->ir);
	free(j->iid);
	X509_NAME_free(j->subject);
	sans_free(&j->s);
	cs_strv_free(&j->eku_oids);
	pki_urls_free(&j->u);
	X509_free(j->x);
	free(j->cert_out);
	if (j->key_out)
		cs_zero(j->key_out, strlen(j->key_out));
	free(j->key_out);
	if (j->bundle_key)
		cs_zero(j->bundle_key, strlen(j->bundle_key));
	free(j->bundle_key);
	free(j);
}

/* Checks and the job (NULL with check_only). 0 or the request's error. */
static int sign_prepare(struct cs_request *req, const struct cs_pki_sign_input *in,
			struct sign_job **out)
{
	*out = NULL;
	const cJSON *role = in->role, *f = in->fields;
	const char *format = cs_pki_jstr(f, "format", "pem");
	if (strcmp(format, "pem") != 0 && strcmp(format, "der") != 0 &&
	    strcmp(format, "pem_bundle") != 0)
		return cs_req_error(req, CS_EINVAL, "invalid format specified");
	const char *ref =
	    in->issuer_ref ? in->issuer_ref : cs_pki_jstr(role, "issuer_ref", "default");
	struct sign_job *j = calloc(1, sizeof *j);
	if (!j)
		return CS_ENOMEM;
	j->gen_type = -1;
	int rc = cs_pki_resolve_issuer(req, ref, &j->iid);
	if (!rc)
		rc = cs_pki_issuer_get(req, j->iid, 0, &j->ir);
	if (rc)
		goto fail;
	const cJSON *iss = j->ir.rec;
	const char *iid = j->iid;
	char *cn = NULL;
	if (!has_usage(iss, "issuing-certificates")) {
		rc = cs_req_error(req, CS_EINVAL,
				  "requested usage issuing-certificates for issuer %s but only had "
				  "usage %s",
				  iid, cs_pki_jstr(iss, "usage", ""));
		goto fail;
	}
	if (!*cs_pki_jstr(iss, "key_id", "")) {
		rc = cs_req_error(req, CS_EINVAL, "unable to sign: issuer %s has no private key",
				  iid);
		goto fail;
	}
	if (in->csr) {
		EVP_PKEY *pub = X509_REQ_get0_pubkey(in->csr);
		if (!pub || X509_REQ_verify(in->csr, pub) != 1) {
			rc =
			    cs_req_error(req, CS_EINVAL,
					 "request signature invalid: certificate request could not "
					 "be verified");
			goto fail;
		}
		if (!in->is_ca && (rc = check_key(req, role, pub)))
			goto fail;
	}
	rc = gather_names(req, in, &cn, &j->s);
	if (rc) {
		free(cn);
		goto fail;
	}
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
				   .issuer_not_after = j->ir.not_after,
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
	char err[300];
	const char *warn;
	if (*na && cs_pki_parse_rfc3339(na, &ti.not_after))
		rc = cs_req_error(req, CS_EINVAL, "invalid not_after: %s", na);
	else if (cs_pki_not_after(&ti, &not_after, &warn, err, sizeof err))
		rc = cs_req_error(req, CS_EINVAL, "%s", err);
	if (rc || in->check_only) {
		free(cn);
		goto fail;
	}
	if (warn)
		cs_req_warn(req, "%s", warn);
	cs_pki_issuer_ref_free(&j->ir);
	if ((rc =
		 cs_pki_issuer_get(req, iid, CS_PKI_ISSUER_SIGNER | CS_PKI_ISSUER_CHAIN, &j->ir))) {
		free(cn);
		goto fail;
	}
	if (!j->ir.signer) {
		free(cn);
		rc = cs_req_error(req, CS_EINVAL, "unable to sign: issuer %s has no private key",
				  iid);
		goto fail;
	}
	if ((rc = cs_pki_new_serial(req, j->serial))) {
		free(cn);
		goto fail;
	}
	if (in->verbatim || in->subject_from_csr)
		j->subject = X509_NAME_dup(X509_REQ_get_subject_name(in->csr));
	else
		j->subject = cs_pki_subject(role, cn, cs_pki_jstr(f, "serial_number", ""));
	free(cn);
	cs_pki_json_list(role, "ext_key_usage_oids", &j->eku_oids);
	pki_urls_load(req, &j->u);
	if (in->csr) {
		j->pub = X509_REQ_get0_pubkey(in->csr);
		EVP_PKEY_up_ref(j->pub);
	}
	if (in->key) {
		j->key = in->key;
		EVP_PKEY_up_ref(j->key);
	}
	j->now = now;
	j->not_before = now - cs_pki_jint(role, "not_before_duration", 30);
	j->not_after = not_after;
	j->is_ca = in->is_ca;
	j->max_path_len = in->max_path_len;
	j->bc_non_ca = cs_pki_jbool(role, "basic_constraints_valid_for_non_ca", false);
	j->ku = in->is_ca ? (X509v3_KU_KEY_CERT_SIGN | X509v3_KU_CRL_SIGN) : key_usage_of(role);
	j->n_eku = in->is_ca ? 0 : ext_key_usage_of(role, j->eku, CS_ARRAY_LEN(j->eku));
	j->sigbits = (int)cs_pki_jint(role, "signature_bits", 0);
	j->use_pss = cs_pki_jbool(role, "use_pss", false);
	j->store = in->is_ca || !cs_pki_jbool(role, "no_store", false);
	j->lease = !in->is_ca && cs_pki_jbool(role, "generate_lease", false);
	snprintf(j->format, sizeof j->format, "%s", format);
	snprintf(j->pkf, sizeof j->pkf, "%s", cs_pki_jstr(f, "private_key_format", ""));
	*out = j;
	return 0;
fail:
	sign_job_free(j);
	return rc;
}

/* Key (when asked), certificate, encodings. Any thread; touches only the job. */
static void sign_make(struct sign_job *j)
{
	if (j->gen_type >= 0 && !j->key &&
	    !(j->key = cs_pki_keygen((enum cs_pki_key_type)j->gen_type, j->gen_bits))) {
		snprintf(j->err, sizeof j->err, "key generation failed");
		return;
	}
	struct cs_pki_cert_spec spec = {
	    .subject = j->subject,
	    .pubkey = j->pub ? j->pub : j->key,
	    .issuer = j->ir.cert,
	    .signer = j->ir.signer,
	    .serial = j->serial,
	    .serial_len = 20,
	    .not_before = j->not_before,
	    .not_after = j->not_after,
	    .is_ca = j->is_ca,
	    .max_path_len = j->max_path_len,
	    .basic_constraints_non_ca = j->bc_non_ca,
	    .key_usage = j->ku,
	    .ext_key_usage = j->eku,
	    .n_ext_key_usage = j->n_eku,
	    .ext_key_usage_oids = (const char *const *)j->eku_oids.v,
	    .n_ext_key_usage_oids = j->is_ca ? 0 : j->eku_oids.n,
	    .signature_bits = j->sigbits,
	    .use_pss = j->use_pss,
	    .dns = (const char *const *)j->s.dns.v,
	    .n_dns = j->s.dns.n,
	    .emails = (const char *const *)j->s.emails.v,
	    .n_emails = j->s.emails.n,
	    .ips = (const char *const *)j->s.ips.v,
	    .n_ips = j->s.ips.n,
	    .uris = (const char *const *)j->s.uris.v,
	    .n_uris = j->s.uris.n,
	    .other_sans = (const char *const *)j->s.others.v,
	    .n_other_sans = j->s.others.n,
	};
	pki_urls_spec(&spec, &j->u);
	j->x = cs_pki_cert_build(&spec, j->err, sizeof j->err);
	if (!j->x)
		return;
	j->err[0] = 0;
	const char *fmt = strcmp(j->format, "der") == 0 ? "der" : "pem";
	j->cert_out = encode_cert(j->x, fmt);
	if (j->key && !j->pub && !j->is_ca) {
		/* format der → base64 DER unless pkcs8 is asked; else PEM (traditional or
		 * PKCS#8), as Vault's private_key_format */
		const char *kf = strcmp(j->pkf, "pkcs8") == 0 ? "pkcs8"
				 : strcmp(j->format, "der") == 0 || strcmp(j->pkf, "der") == 0
				     ? "der"
				     : "pem";
		j->key_out = cs_pki_key_encode(j->key, kf);
		if (strcmp(j->format, "pem_bundle") == 0)
			j->bundle_key = strcmp(kf, *j->pkf ? j->pkf : "pem") == 0
					    ? strdup(j->key_out ? j->key_out : "")
					    : cs_pki_key_encode(j->key, *j->pkf ? j->pkf : "pem");
	}
}

/* Storage, lease, answer. Loop thread, in a transaction. */
static int sign_finish(struct cs_request *req, struct sign_job *j, cJSON **data)
{
	*data = NULL;
	if (!j->x)
		return cs_req_error(req, j->gen_type >= 0 && !j->key ? CS_EINTERNAL : CS_EINVAL,
				    "%s", j->err);
	int rc;
	if (j->store) {
		/* The serial was free when it was drawn; a job that ran on the pool ends in a
		 * new transaction, where another request may have taken it (2^-159). */
		char sk[64], key[80];
		cs_pki_serial_format(j->serial, 20, '-', sk);
		snprintf(key, sizeof key, "certs/%s", sk);
		struct cs_buf b = CS_BUF_INIT;
		rc = cs_view_get(req, key, &b);
		cs_buf_free(&b);
		if (rc == 0)
			return cs_req_error(req, CS_EINTERNAL, "serial number collision, retry");
		if (rc != CS_ENOTFOUND)
			return rc;
		if ((rc = cs_pki_cert_store(req, j->x, j->iid)))
			return rc;
	}
	if (j->lease) {
		/* Vault: the lease lasts as long as the certificate; revoking it (or the token
		 * that holds it) revokes the certificate (pki_lease_revoke). */
		char lsn[80];
		cs_pki_cert_serial(j->x, ':', lsn, sizeof lsn);
		char *lpem = cs_pki_cert_pem(j->x);
		cJSON *internal = cJSON_CreateObject();
		cJSON_AddStringToObject(internal, "serial_number", lsn);
		cJSON_AddStringToObject(internal, "certificate", lpem);
		free(lpem);
		int64_t left = j->not_after - cs_now_ns() / 1000000000;
		if ((rc = cs_req_lease(req, "cert", internal, left, left)))
			return rc;
	}
	cJSON *d = cJSON_CreateObject();
	const char *fmt = strcmp(j->format, "der") == 0 ? "der" : "pem";
	char sn[80];
	cs_pki_cert_serial(j->x, ':', sn, sizeof sn);
	char *ipem = encode_pem(cs_pki_jstr(j->ir.rec, "certificate", ""), fmt);
	cJSON *ca_chain;
	if (strcmp(fmt, "pem") == 0) {
		ca_chain = j->ir.chain;
		j->ir.chain = NULL;
	} else {
		ca_chain = cJSON_CreateArray();
		const cJSON *e;
		cJSON_ArrayForEach(e, j->ir.chain)
		{
			char *c = encode_pem(e->valuestring, fmt);
			cJSON_AddItemToArray(ca_chain, cJSON_CreateString(c));
			free(c);
		}
	}
	if (j->bundle_key) {
		struct cs_buf b = CS_BUF_INIT;
		cs_buf_printf(&b, "%s\n%s\n%s", j->cert_out, j->bundle_key, ipem);
		cs_buf_putc(&b, 0);
		cJSON_AddStringToObject(d, "certificate", b.data);
		cs_buf_free_secure(&b);
	} else {
		cJSON_AddStringToObject(d, "certificate", j->cert_out ? j->cert_out : "");
	}
	cJSON_AddStringToObject(d, "issuing_ca", ipem);
	cJSON_AddItemToObject(d, "ca_chain", ca_chain);
	cJSON_AddStringToObject(d, "serial_number", sn);
	cJSON_AddNumberToObject(d, "expiration", (double)j->not_after);
	if (j->key_out) {
		cJSON_AddStringToObject(d, "private_key", j->key_out);
		cJSON_AddStringToObject(d, "private_key_type", cs_pki_key_type_of(j->key));
	}
	free(ipem);
	*data = d;
	return 0;
}

int cs_pki_sign_cert(struct cs_request *req, const struct cs_pki_sign_input *in, cJSON **data)
{
	*data = NULL;
	struct sign_job *j = NULL;
	int rc = sign_prepare(req, in, &j);
	if (rc || !j)
		return rc;
	sign_make(j);
	rc = sign_finish(req, j, data);
	sign_job_free(j);
	return rc;
}

/* ---- issue */

/* The role of the {role} capture, or the request's error (Vault's text). */
static int load_role(struct cs_request *req, cJSON **role)
{
	const char *name = cs_req_capture(req, "role");
	int rc = role_load(req, name, role);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL, "unknown role: %s", name);
	return rc;
}

static void issue_work(struct cs_async *a)
{
	sign_make(CS_CONTAINER_OF(a, struct sign_job, async));
}

static int issue_resume(struct cs_request *req, struct cs_async *a, int status)
{
	struct sign_job *j = CS_CONTAINER_OF(a, struct sign_job, async);
	int rc = status;
	cJSON *d = NULL;
	if (!rc && !(rc = sign_finish(req, j, &d)))
		cs_req_set_data(req, d);
	sign_job_free(j);
	return rc;
}

/* EC and Ed25519 leaves are made inline on the loop unless CUSTOS_PKI_ISSUE_ON_POOL=1
 * (tests/bench/pki_bench.sh POOL=1 measures both). The hop to the worker pool and back (a
 * new transaction, the token and ACL again) doubles the latency of one issue (c1: p50
 * 0.32 ms inline, 0.62 ms on the pool) and bought 1-22% at c32 on a loaded 2-core box
 * (tests/bench/results/pki-20261208T02*): within the noise there, so inline stays the
 * default. RSA keys always go to the pool. */
static bool fast_keys_on_pool(void)
{
	static int v = -1;
	if (v < 0) {
		const char *e = getenv("CUSTOS_PKI_ISSUE_ON_POOL");
		v = e && strcmp(e, "1") == 0;
	}
	return v == 1;
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
	/* Every check before any key is made: a refused name costs no key. */
	struct cs_pki_sign_input in = {.role = role,
				       .fields = req->data,
				       .issuer_ref = cs_req_capture(req, "ref"),
				       .max_path_len = -1};
	struct sign_job *j = NULL;
	rc = sign_prepare(req, &in, &j);
	cJSON_Delete(role);
	if (rc)
		return rc;
	j->gen_type = t;
	j->gen_bits = bits;
	if (t != CS_PKI_KEY_RSA && !fast_keys_on_pool()) {
		cJSON *d = NULL;
		sign_make(j);
		if (!(rc = sign_finish(req, j, &d)))
			cs_req_set_data(req, d);
		sign_job_free(j);
		return rc;
	}
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
