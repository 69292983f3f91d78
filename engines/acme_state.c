/*
 * ACME's pure rules (engines/acme_internal.h): identifiers, status transitions, CSR
 * matching and the nonce window. No storage, no request: unit-tested directly.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "engines/acme_internal.h"
#include "engines/pki_internal.h"
#include "lib/err.h"
#include "lib/util.h"

int cs_acme_identifier_parse(const cJSON *o, struct cs_acme_identifier *out, const char **type,
			     const char **why)
{
	memset(out, 0, sizeof *out);
	*type = "malformed";
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "value");
	if (!cJSON_IsObject(o) || !cJSON_IsString(t) || !cJSON_IsString(v) || !*v->valuestring) {
		*why = "an identifier must be an object with a type and a value";
		return CS_EINVAL;
	}
	const char *s = v->valuestring;
	if (strlen(s) >= sizeof out->value) {
		*why = "identifier value too long";
		return CS_EINVAL;
	}
	if (strcmp(t->valuestring, "ip") == 0) {
		uint8_t b[16];
		int af = strchr(s, ':') ? AF_INET6 : AF_INET;
		if (inet_pton(af, s, b) != 1) {
			*why = "ip identifier is not an IP address";
			return CS_EINVAL;
		}
		out->type = CS_ACME_ID_IP;
		inet_ntop(af, b, out->value, sizeof out->value); /* canonical text */
		return 0;
	}
	if (strcmp(t->valuestring, "dns") != 0) {
		*type = "unsupportedIdentifier";
		*why = "only dns and ip identifiers are supported";
		return CS_EINVAL;
	}
	out->type = CS_ACME_ID_DNS;
	const char *name = s;
	if (strncmp(s, "*.", 2) == 0) {
		out->wildcard = true;
		name = s + 2;
	}
	/* A host name: labels of letters, digits and '-', no wildcard elsewhere, no
	 * trailing dot, at most 253 characters. */
	size_t n = strlen(name), label = 0;
	bool ok = n > 0 && n <= 253 && name[n - 1] != '.';
	for (size_t i = 0; ok && i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '.') {
			ok = label > 0 && name[i - 1] != '-';
			label = 0;
		} else if (isalnum(c) || c == '-' || c == '_') {
			ok = !(label == 0 && c == '-') && ++label <= 63;
		} else {
			ok = false;
		}
	}
	if (!ok) {
		*type = "rejectedIdentifier";
		*why = "dns identifier is not a valid host name";
		return CS_EINVAL;
	}
	for (size_t i = 0; s[i]; i++)
		out->value[i] = (char)tolower((unsigned char)s[i]);
	return 0;
}

cJSON *cs_acme_identifier_json(const struct cs_acme_identifier *id)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", id->type == CS_ACME_ID_IP ? "ip" : "dns");
	cJSON_AddStringToObject(o, "value", id->value);
	return o;
}

bool cs_acme_challenge_allowed(const char *type, const struct cs_acme_identifier *id)
{
	if (id->wildcard)
		return strcmp(type, "dns-01") == 0;
	if (id->type == CS_ACME_ID_IP)
		return strcmp(type, "http-01") == 0 || strcmp(type, "tls-alpn-01") == 0;
	return strcmp(type, "http-01") == 0 || strcmp(type, "dns-01") == 0 ||
	       strcmp(type, "tls-alpn-01") == 0;
}

const char *cs_acme_authz_status(const char *stored, int64_t expires, int64_t now)
{
	static const char *const known[] = {"pending",     "valid",   "invalid",
					    "deactivated", "expired", "revoked"};
	const char *s = "invalid";
	for (size_t i = 0; stored && i < CS_ARRAY_LEN(known); i++)
		if (strcmp(stored, known[i]) == 0)
			s = known[i];
	if ((strcmp(s, "pending") == 0 || strcmp(s, "valid") == 0) && expires && now >= expires)
		return "expired";
	return s;
}

const char *cs_acme_order_status(const char *stored, int64_t expires, int64_t now,
				 const char *const *authz, size_t n)
{
	if (!stored)
		return "invalid";
	if (strcmp(stored, "valid") == 0)
		return "valid";
	if (strcmp(stored, "processing") == 0)
		return "processing";
	if (strcmp(stored, "pending") != 0 && strcmp(stored, "ready") != 0)
		return "invalid";
	if (expires && now >= expires)
		return "invalid";
	bool all_valid = n > 0;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(authz[i], "valid") == 0)
			continue;
		all_valid = false;
		if (strcmp(authz[i], "pending") != 0)
			return "invalid"; /* invalid, deactivated, expired, revoked */
	}
	return all_valid ? "ready" : "pending";
}

/* A name in a list (case-insensitive for DNS), or append it. */
static bool add_unique(const char **set, size_t *n, size_t cap, const char *s)
{
	for (size_t i = 0; i < *n; i++)
		if (strcasecmp(set[i], s) == 0)
			return true;
	if (*n >= cap)
		return false;
	set[(*n)++] = s;
	return true;
}

/* Canonical text of an IP (so "::0001" and "::1" compare equal), into out. */
static bool ip_canon(const char *s, char *out, size_t n)
{
	uint8_t b[16];
	int af = strchr(s, ':') ? AF_INET6 : AF_INET;
	return inet_pton(af, s, b) == 1 && inet_ntop(af, b, out, (socklen_t)n) != NULL;
}

const char *cs_acme_csr_match(const struct cs_acme_identifier *ids, size_t n,
			      const char *const *dns, size_t n_dns, const char *const *ips,
			      size_t n_ips, const char *cn)
{
	enum { CAP = 128 };
	if (n_dns + n_ips + 1 > CAP || n > CAP)
		return "CSR has too many names";
	const char *names[CAP];
	char ipbuf[CAP][64];
	size_t nn = 0, ni = 0;
	for (size_t i = 0; i < n_dns; i++)
		add_unique(names, &nn, CAP, dns[i]);
	const char *ipset[CAP];
	size_t k = 0;
	for (size_t i = 0; i < n_ips; i++, k++) {
		if (!ip_canon(ips[i], ipbuf[k], sizeof ipbuf[k]))
			return "CSR has an invalid IP address";
		add_unique(ipset, &ni, CAP, ipbuf[k]);
	}
	if (cn && *cn) {
		if (ip_canon(cn, ipbuf[k], sizeof ipbuf[k]))
			add_unique(ipset, &ni, CAP, ipbuf[k]);
		else
			add_unique(names, &nn, CAP, cn);
	}
	size_t want_dns = 0, want_ip = 0;
	for (size_t i = 0; i < n; i++) {
		bool found = false;
		if (ids[i].type == CS_ACME_ID_DNS) {
			want_dns++;
			for (size_t j = 0; j < nn && !found; j++)
				found = strcasecmp(names[j], ids[i].value) == 0;
			if (!found)
				return "CSR is missing an order DNS identifier";
		} else {
			want_ip++;
			for (size_t j = 0; j < ni && !found; j++)
				found = strcmp(ipset[j], ids[i].value) == 0;
			if (!found)
				return "CSR is missing an order IP identifier";
		}
	}
	if (nn != want_dns)
		return "CSR has DNS names that are not in the order";
	if (ni != want_ip)
		return "CSR has IP addresses that are not in the order";
	return NULL;
}

/* Whether the directory's role may issue for the identifier (Vault's
 * validateIdentifiersAgainstRole); sign-verbatim directories take any. */
const char *cs_acme_role_refuses(const cJSON *role, const struct cs_acme_identifier *id)
{
	if (!role)
		return NULL;
	if (id->type == CS_ACME_ID_IP)
		return cs_pki_jbool(role, "allow_ip_sans", true)
			   ? NULL
			   : "the role does not allow IP SANs";
	struct cs_strv domains = {0};
	struct cs_pki_name_rules r = cs_pki_role_rules(role, &domains);
	const char *name = id->value;
	bool ok = cs_pki_check_names(&r, &name, 1) == NULL;
	cs_strv_free(&domains);
	return ok ? NULL : "the role will not issue a certificate for this name";
}

/* ---------------------------------------------------------------- nonces */

#define NONCE_RAW 24

static void nonce_mac(const struct cs_acme_nonces *w, const uint8_t msg[12], uint8_t out[12])
{
	uint8_t mac[32];
	cs_hmac_sha256(w->key, sizeof w->key, msg, 12, mac);
	memcpy(out, mac, 12);
}

static void nonce_init(struct cs_acme_nonces *w)
{
	if (w->ready)
		return;
	cs_random(w->key, sizeof w->key);
	w->bits = calloc(CS_ACME_NONCE_WINDOW / 8, 1);
	if (!w->bits)
		abort();
	w->next = 0;
	w->ready = true;
}

void cs_acme_nonce_new(struct cs_acme_nonces *w, int64_t now, char out[33])
{
	nonce_init(w);
	uint64_t ctr = w->next++;
	uint32_t t = (uint32_t)now;
	uint8_t raw[NONCE_RAW];
	for (int i = 0; i < 8; i++)
		raw[i] = (uint8_t)(ctr >> (56 - 8 * i));
	for (int i = 0; i < 4; i++)
		raw[8 + i] = (uint8_t)(t >> (24 - 8 * i));
	nonce_mac(w, raw, raw + 12);
	uint64_t slot = ctr % CS_ACME_NONCE_WINDOW;
	w->bits[slot / 8] |= (uint8_t)(1u << (slot % 8));
	char *s = cs_b64url_encode(raw, sizeof raw);
	memcpy(out, s, 32);
	out[32] = '\0';
	free(s);
}

bool cs_acme_nonce_redeem(struct cs_acme_nonces *w, const char *nonce, int64_t now)
{
	if (!w->ready || !nonce || strlen(nonce) != 32)
		return false;
	size_t n = 0;
	uint8_t *raw = cs_b64url_decode(nonce, 32, &n);
	if (!raw || n != NONCE_RAW) {
		free(raw);
		return false;
	}
	uint8_t mac[12];
	nonce_mac(w, raw, mac);
	bool ok = cs_ct_equal(mac, 12, raw + 12, 12);
	uint64_t ctr = 0;
	uint32_t t = 0;
	for (int i = 0; i < 8; i++)
		ctr = ctr << 8 | raw[i];
	for (int i = 0; i < 4; i++)
		t = t << 8 | raw[8 + i];
	free(raw);
	/* Issued by this window, recently, and its slot not reused since. */
	ok = ok && ctr < w->next && w->next - ctr <= CS_ACME_NONCE_WINDOW &&
	     (int64_t)t <= now + 1 && now - (int64_t)t < CS_ACME_NONCE_TTL;
	if (!ok)
		return false;
	uint64_t slot = ctr % CS_ACME_NONCE_WINDOW;
	uint8_t bit = (uint8_t)(1u << (slot % 8));
	if (!(w->bits[slot / 8] & bit))
		return false; /* used */
	w->bits[slot / 8] &= (uint8_t)~bit;
	return true;
}

void cs_acme_nonces_reset(struct cs_acme_nonces *w)
{
	free(w->bits);
	cs_zero(w, sizeof *w);
}
