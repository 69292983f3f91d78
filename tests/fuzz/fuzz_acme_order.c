/*
 * libFuzzer target for what the ACME endpoints parse after the JWS envelope
 * (engines/acme_state.c, engines/acme_order.c): the payload of new-order (identifiers,
 * checked against a role and against no role), of finalize (a base64url DER CSR whose
 * names are matched against the identifiers) and of key-change (an inner JWS, which must
 * carry no nonce).
 *
 * Input: a JWS payload (JSON). Nothing may crash or leak; an identifier that parses must
 * be a dns name or an IP of bounded length, and a CSR match is decided either way.
 */
#include <openssl/x509.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engines/acme_internal.h"
#include "engines/pki_internal.h"
#include "lib/err.h"
#include "lib/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > CS_ACME_MAX_BODY)
		return 0;
	cJSON *p = cJSON_ParseWithLength((const char *)data, size);
	if (!p)
		return 0;
	static cJSON *role;
	if (!role)
		role = cJSON_Parse("{\"allowed_domains\":[\"example.com\",\"*.svc\"],"
				   "\"allow_subdomains\":true,\"allow_glob_domains\":true,"
				   "\"allow_ip_sans\":false}");
	struct cs_acme_identifier ids[64];
	size_t n = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(p, "identifiers"))
	{
		const char *type, *why;
		if (n >= 64 || cs_acme_identifier_parse(it, &ids[n], &type, &why) != 0)
			continue;
		cJSON *j = cs_acme_identifier_json(&ids[n]);
		if (strlen(ids[n].value) > 253 + 2 || !j)
			abort();
		cJSON_Delete(j);
		cs_acme_role_refuses(role, &ids[n]);
		if (cs_acme_role_refuses(NULL, &ids[n]))
			abort(); /* sign-verbatim takes every valid identifier */
		cs_acme_challenge_allowed("http-01", &ids[n]);
		cs_acme_challenge_allowed("dns-01", &ids[n]);
		n++;
	}
	const cJSON *csr = cJSON_GetObjectItemCaseSensitive(p, "csr");
	if (cJSON_IsString(csr)) {
		size_t len = 0;
		uint8_t *der = cs_b64url_decode(csr->valuestring, strlen(csr->valuestring), &len);
		const uint8_t *q = der;
		X509_REQ *r = der ? d2i_X509_REQ(NULL, &q, (long)len) : NULL;
		if (r) {
			struct cs_strv dns = {0}, em = {0}, ips = {0}, uris = {0}, oth = {0};
			cs_pki_csr_sans(r, &dns, &em, &ips, &uris, &oth);
			char *cn = cs_pki_name_cn(X509_REQ_get_subject_name(r));
			cs_acme_csr_match(ids, n, (const char *const *)dns.v, dns.n,
					  (const char *const *)ips.v, ips.n, cn);
			free(cn);
			cs_strv_free(&dns);
			cs_strv_free(&em);
			cs_strv_free(&ips);
			cs_strv_free(&uris);
			cs_strv_free(&oth);
			X509_REQ_free(r);
		}
		free(der);
	}
	struct cs_acme_jws in;
	const char *why = NULL;
	if (cs_acme_jws_parse_inner((const char *)data, size, &in, &why) == 0) {
		if (!in.nonce || in.nonce[0] || !in.url)
			abort(); /* an inner JWS never carries a nonce */
		cs_acme_jws_free(&in);
	}
	cJSON_Delete(p);
	return 0;
}
