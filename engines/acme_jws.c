/*
 * ACME JWS and JWK handling (engines/acme_jws.h). OpenSSL does every signature check
 * and builds every key; this file only decodes, validates shapes and maps algorithms.
 */
#include "engines/acme_jws.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/util.h"

void cs_acme_jws_free(struct cs_acme_jws *j)
{
	free(j->nonce);
	free(j->url);
	free(j->kid);
	cJSON_Delete(j->header);
	if (j->payload)
		cs_zero(j->payload, j->payload_len);
	free(j->payload);
	cJSON_Delete(j->payload_json);
	free(j->signing_input);
	free(j->sig);
	memset(j, 0, sizeof *j);
}

static const char *str_member(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* An algorithm we verify: its digest and key family. */
struct alg {
	const char *name;
	const char *md; /* NULL: EdDSA (no separate digest) */
	int type;       /* EVP_PKEY_RSA, EVP_PKEY_EC, EVP_PKEY_ED25519 */
	bool pss;
	int ec_bytes; /* ECDSA: the size of r and s */
};

static const struct alg algs[] = {
    {.name = "RS256", .md = "SHA256", .type = EVP_PKEY_RSA},
    {.name = "RS384", .md = "SHA384", .type = EVP_PKEY_RSA},
    {.name = "RS512", .md = "SHA512", .type = EVP_PKEY_RSA},
    {.name = "PS256", .md = "SHA256", .type = EVP_PKEY_RSA, .pss = true},
    {.name = "PS384", .md = "SHA384", .type = EVP_PKEY_RSA, .pss = true},
    {.name = "PS512", .md = "SHA512", .type = EVP_PKEY_RSA, .pss = true},
    {.name = "ES256", .md = "SHA256", .type = EVP_PKEY_EC, .ec_bytes = 32},
    {.name = "ES384", .md = "SHA384", .type = EVP_PKEY_EC, .ec_bytes = 48},
    {.name = "ES512", .md = "SHA512", .type = EVP_PKEY_EC, .ec_bytes = 66},
    {.name = "EdDSA", .type = EVP_PKEY_ED25519},
};

static const struct alg *find_alg(const char *name)
{
	for (size_t i = 0; i < CS_ARRAY_LEN(algs); i++)
		if (strcmp(algs[i].name, name) == 0)
			return &algs[i];
	return NULL;
}

/* A base64url member of at most `max` encoded characters, decoded. */
static uint8_t *b64_member(const cJSON *o, const char *name, size_t max, size_t *n)
{
	const char *s = str_member(o, name);
	if (!s || !*s || strlen(s) > max)
		return NULL;
	return cs_b64url_decode(s, strlen(s), n);
}

static int parse(const char *body, size_t len, struct cs_acme_jws *out, const char **why,
		 bool inner)
{
	*why = "malformed: the request is not a JWS in flattened JSON serialization";
	if (len == 0 || len > CS_ACME_MAX_BODY)
		return CS_EINVAL;
	cJSON *root = cJSON_ParseWithLength(body, len);
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return CS_EINVAL;
	}
	const char *prot = str_member(root, "protected");
	const char *payload = str_member(root, "payload");
	const char *sig = str_member(root, "signature");
	int members = cJSON_GetArraySize(root);
	/* RFC 8555 §6.2: no unprotected header, no general serialization. */
	if (!prot || !payload || !sig || members != 3) {
		cJSON_Delete(root);
		return CS_EINVAL;
	}
	size_t plen = strlen(prot), paylen = strlen(payload);
	out->signing_input = malloc(plen + paylen + 2);
	if (!out->signing_input)
		abort();
	memcpy(out->signing_input, prot, plen);
	out->signing_input[plen] = '.';
	memcpy(out->signing_input + plen + 1, payload, paylen + 1);
	size_t hlen = 0;
	uint8_t *hdr = cs_b64url_decode(prot, plen, &hlen);
	out->payload = cs_b64url_decode(payload, paylen, &out->payload_len);
	out->sig = cs_b64url_decode(sig, strlen(sig), &out->sig_len);
	cJSON_Delete(root);
	if (!hdr || !out->payload || !out->sig || out->sig_len == 0) {
		free(hdr);
		*why = "malformed: a JWS member is not base64url";
		return CS_EINVAL;
	}
	out->header = cJSON_ParseWithLength((const char *)hdr, hlen);
	free(hdr);
	if (!cJSON_IsObject(out->header)) {
		*why = "malformed: the protected header is not a JSON object";
		return CS_EINVAL;
	}
	const char *alg = str_member(out->header, "alg");
	if (!alg) {
		*why = "malformed: the protected header has no alg";
		return CS_EINVAL;
	}
	if (!find_alg(alg)) {
		*why = "badSignatureAlgorithm: the JWS algorithm is not supported";
		return CS_EINVAL;
	}
	snprintf(out->alg, sizeof out->alg, "%s", alg);
	const char *nonce = str_member(out->header, "nonce");
	const char *url = str_member(out->header, "url");
	const char *kid = str_member(out->header, "kid");
	const cJSON *jwk = cJSON_GetObjectItemCaseSensitive(out->header, "jwk");
	if (inner ? nonce != NULL || cJSON_GetObjectItemCaseSensitive(out->header, "nonce") != NULL
		  : !nonce || !*nonce) {
		*why = inner ? "malformed: the inner JWS must not have a nonce"
			     : "badNonce: the protected header has no nonce";
		return CS_EINVAL;
	}
	if (!url || !*url) {
		*why = "malformed: the protected header has no url";
		return CS_EINVAL;
	}
	if ((kid != NULL) == (jwk != NULL) || (jwk && !cJSON_IsObject(jwk)) ||
	    (cJSON_GetObjectItemCaseSensitive(out->header, "kid") && !kid)) {
		*why = "malformed: the protected header must have exactly one of jwk and kid";
		return CS_EINVAL;
	}
	out->nonce = strdup(nonce ? nonce : "");
	out->url = strdup(url);
	out->kid = kid ? strdup(kid) : NULL;
	if (!out->nonce || !out->url || (kid && !out->kid))
		abort();
	out->jwk = (cJSON *)jwk; /* owned by header */
	if (out->payload_len > 0) {
		out->payload_json =
		    cJSON_ParseWithLength((const char *)out->payload, out->payload_len);
		if (!cJSON_IsObject(out->payload_json)) {
			*why = "malformed: the payload is not a JSON object";
			return CS_EINVAL;
		}
	}
	*why = NULL;
	return 0;
}

int cs_acme_jws_parse(const char *body, size_t len, struct cs_acme_jws *out, const char **why)
{
	memset(out, 0, sizeof *out);
	int rc = parse(body, len, out, why, false);
	if (rc)
		cs_acme_jws_free(out); /* nothing half-parsed is left behind */
	return rc;
}

int cs_acme_jws_parse_inner(const char *body, size_t len, struct cs_acme_jws *out, const char **why)
{
	memset(out, 0, sizeof *out);
	int rc = parse(body, len, out, why, true);
	if (rc)
		cs_acme_jws_free(out);
	return rc;
}

/* ---------------------------------------------------------------- keys */

static const char *curve_of(const char *crv, int *bytes)
{
	if (strcmp(crv, "P-256") == 0)
		return *bytes = 32, "P-256";
	if (strcmp(crv, "P-384") == 0)
		return *bytes = 48, "P-384";
	if (strcmp(crv, "P-521") == 0)
		return *bytes = 66, "P-521";
	return NULL;
}

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *key = NULL;
	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		key = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return key;
}

static EVP_PKEY *rsa_key(const cJSON *jwk, const char **why)
{
	size_t nlen = 0, elen = 0;
	uint8_t *n = b64_member(jwk, "n", 2000, &nlen);
	uint8_t *e = b64_member(jwk, "e", 16, &elen);
	EVP_PKEY *key = NULL;
	BIGNUM *bn = n ? BN_bin2bn(n, (int)nlen, NULL) : NULL;
	BIGNUM *be = e ? BN_bin2bn(e, (int)elen, NULL) : NULL;
	int bits = bn ? BN_num_bits(bn) : 0;
	if (!bn || !be || BN_is_zero(be) || !BN_is_odd(be)) {
		*why = "badPublicKey: the RSA key's n or e is missing or malformed";
	} else if (bits < 2048 || bits > 8192) {
		*why = "badPublicKey: RSA keys must have 2048 to 8192 bits";
	} else {
		OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
		if (bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
		    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
			key = from_params("RSA", bld);
		OSSL_PARAM_BLD_free(bld);
		if (!key)
			*why = "badPublicKey: the RSA key is not valid";
	}
	BN_free(bn);
	BN_free(be);
	free(n);
	free(e);
	return key;
}

static EVP_PKEY *ec_key(const cJSON *jwk, const char **why)
{
	int bytes = 0;
	const char *crv = str_member(jwk, "crv");
	const char *group = crv ? curve_of(crv, &bytes) : NULL;
	if (!group) {
		*why = "badPublicKey: EC keys must be on P-256, P-384 or P-521";
		return NULL;
	}
	size_t xl = 0, yl = 0;
	uint8_t *x = b64_member(jwk, "x", 100, &xl), *y = b64_member(jwk, "y", 100, &yl);
	EVP_PKEY *key = NULL;
	if (!x || !y || xl != (size_t)bytes || yl != (size_t)bytes) {
		*why = "badPublicKey: the EC key's x or y has the wrong size";
	} else {
		uint8_t point[1 + 2 * 66];
		point[0] = 4; /* uncompressed */
		memcpy(point + 1, x, xl);
		memcpy(point + 1 + xl, y, yl);
		OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
		if (bld &&
		    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) &&
		    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point,
						     1 + xl + yl))
			key = from_params("EC", bld);
		OSSL_PARAM_BLD_free(bld);
		/* fromdata does not check that the point is on the curve: do. */
		EVP_PKEY_CTX *chk = key ? EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL) : NULL;
		if (key && (!chk || EVP_PKEY_public_check(chk) != 1)) {
			EVP_PKEY_free(key);
			key = NULL;
		}
		EVP_PKEY_CTX_free(chk);
		if (!key)
			*why = "badPublicKey: the EC point is not on the curve";
	}
	free(x);
	free(y);
	return key;
}

static EVP_PKEY *okp_key(const cJSON *jwk, const char **why)
{
	const char *crv = str_member(jwk, "crv");
	if (!crv || strcmp(crv, "Ed25519") != 0) {
		*why = "badPublicKey: OKP keys must be Ed25519";
		return NULL;
	}
	size_t xl = 0;
	uint8_t *x = b64_member(jwk, "x", 64, &xl);
	EVP_PKEY *key = NULL;
	if (x && xl == 32)
		key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, xl);
	if (!key)
		*why = "badPublicKey: the Ed25519 key's x is malformed";
	free(x);
	return key;
}

int cs_acme_jwk_key(const cJSON *jwk, EVP_PKEY **out, const char **why)
{
	*out = NULL;
	const char *kty = cJSON_IsObject(jwk) ? str_member(jwk, "kty") : NULL;
	if (!kty) {
		*why = "malformed: the jwk has no kty";
		return CS_EINVAL;
	}
	static const char *const private_members[] = {"d", "p", "q", "dp", "dq", "qi", "k"};
	for (size_t i = 0; i < CS_ARRAY_LEN(private_members); i++) {
		if (cJSON_GetObjectItemCaseSensitive(jwk, private_members[i])) {
			*why = "badPublicKey: the jwk carries private key material";
			return CS_EINVAL;
		}
	}
	if (strcmp(kty, "RSA") == 0)
		*out = rsa_key(jwk, why);
	else if (strcmp(kty, "EC") == 0)
		*out = ec_key(jwk, why);
	else if (strcmp(kty, "OKP") == 0)
		*out = okp_key(jwk, why);
	else
		*why = "badPublicKey: the jwk's kty must be RSA, EC or OKP";
	return *out ? 0 : CS_EINVAL;
}

/* The curve size of an EC key in bytes, or 0. */
static int ec_bytes_of(EVP_PKEY *key)
{
	char group[32];
	size_t n = 0;
	if (!EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
					    &n))
		return 0;
	if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)
		return 32;
	if (strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0)
		return 48;
	if (strcmp(group, "secp521r1") == 0 || strcmp(group, "P-521") == 0)
		return 66;
	return 0;
}

/* JOSE's ECDSA signature is r || s of the curve's size; OpenSSL wants DER. */
static int ecdsa_der(const uint8_t *sig, size_t n, int bytes, uint8_t **der, size_t *dlen)
{
	if (n != (size_t)bytes * 2)
		return CS_EINVAL;
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, bytes, NULL), *s = BN_bin2bn(sig + bytes, bytes, NULL);
	if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
		BN_free(r);
		BN_free(s);
		ECDSA_SIG_free(es);
		return CS_EINVAL;
	}
	*der = NULL;
	int len = i2d_ECDSA_SIG(es, der);
	ECDSA_SIG_free(es);
	if (len <= 0)
		return CS_EINVAL;
	*dlen = (size_t)len;
	return 0;
}

int cs_acme_jws_verify(const struct cs_acme_jws *j, EVP_PKEY *key, const char **why)
{
	const struct alg *a = find_alg(j->alg);
	int type = EVP_PKEY_get_base_id(key);
	if (!a || a->type != type || (a->ec_bytes && a->ec_bytes != ec_bytes_of(key))) {
		*why = "badSignatureAlgorithm: the JWS algorithm does not match the key";
		return CS_EINVAL;
	}
	const uint8_t *sig = j->sig;
	size_t sig_len = j->sig_len;
	uint8_t *der = NULL;
	if (a->ec_bytes) {
		if (ecdsa_der(j->sig, j->sig_len, a->ec_bytes, &der, &sig_len)) {
			*why = "malformed: the ECDSA signature has the wrong size";
			return CS_EINVAL;
		}
		sig = der;
	}
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	int ok = md && EVP_DigestVerifyInit_ex(md, &pctx, a->md, NULL, NULL, key, NULL) == 1;
	if (ok && a->pss)
		ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
		     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0;
	if (ok)
		ok = EVP_DigestVerify(md, sig, sig_len, (const uint8_t *)j->signing_input,
				      strlen(j->signing_input)) == 1;
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	if (!ok) {
		*why = "malformed: the JWS signature does not verify";
		return CS_EINVAL;
	}
	return 0;
}

/* ---------------------------------------------------------------- thumbprints */

static char *b64_bn(const BIGNUM *bn)
{
	int n = BN_num_bytes(bn);
	uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
	if (!buf)
		abort();
	BN_bn2bin(bn, buf);
	char *s = cs_b64url_encode(buf, (size_t)n);
	free(buf);
	return s;
}

cJSON *cs_acme_key_jwk(EVP_PKEY *key)
{
	cJSON *j = cJSON_CreateObject();
	int type = EVP_PKEY_get_base_id(key);
	if (type == EVP_PKEY_RSA) {
		BIGNUM *n = NULL, *e = NULL;
		if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) &&
		    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e)) {
			char *sn = b64_bn(n), *se = b64_bn(e);
			cJSON_AddStringToObject(j, "e", se);
			cJSON_AddStringToObject(j, "kty", "RSA");
			cJSON_AddStringToObject(j, "n", sn);
			free(sn);
			free(se);
		}
		BN_free(n);
		BN_free(e);
	} else if (type == EVP_PKEY_EC) {
		int bytes = ec_bytes_of(key);
		uint8_t pt[1 + 2 * 66];
		size_t len = 0;
		if (bytes &&
		    EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt,
						    &len) &&
		    len == 1 + 2 * (size_t)bytes && pt[0] == 4) {
			char *x = cs_b64url_encode(pt + 1, (size_t)bytes);
			char *y = cs_b64url_encode(pt + 1 + bytes, (size_t)bytes);
			cJSON_AddStringToObject(j, "crv",
						bytes == 32   ? "P-256"
						: bytes == 48 ? "P-384"
							      : "P-521");
			cJSON_AddStringToObject(j, "kty", "EC");
			cJSON_AddStringToObject(j, "x", x);
			cJSON_AddStringToObject(j, "y", y);
			free(x);
			free(y);
		}
	} else if (type == EVP_PKEY_ED25519) {
		uint8_t raw[32];
		size_t len = sizeof raw;
		if (EVP_PKEY_get_raw_public_key(key, raw, &len) == 1 && len == 32) {
			char *x = cs_b64url_encode(raw, len);
			cJSON_AddStringToObject(j, "crv", "Ed25519");
			cJSON_AddStringToObject(j, "kty", "OKP");
			cJSON_AddStringToObject(j, "x", x);
			free(x);
		}
	}
	if (cJSON_GetArraySize(j) == 0) {
		cJSON_Delete(j);
		return NULL;
	}
	return j;
}

int cs_acme_jwk_thumbprint(const cJSON *jwk, char out[44])
{
	EVP_PKEY *key = NULL;
	const char *why;
	if (cs_acme_jwk_key(jwk, &key, &why))
		return CS_EINVAL;
	/* Canonical members, in lexicographic order, from the key itself: a client that
	 * sends n with a leading zero byte still has one thumbprint. */
	cJSON *c = cs_acme_key_jwk(key);
	EVP_PKEY_free(key);
	if (!c)
		return CS_EINVAL;
	char *s = cJSON_PrintUnformatted(c);
	cJSON_Delete(c);
	uint8_t digest[32];
	unsigned int dl = 0;
	int ok = s && EVP_Digest(s, strlen(s), digest, &dl, EVP_sha256(), NULL) == 1;
	free(s);
	if (!ok)
		return CS_EINVAL;
	char *b = cs_b64url_encode(digest, dl);
	snprintf(out, 44, "%s", b);
	free(b);
	return 0;
}

/* ---------------------------------------------------------------- external binding */

char *cs_acme_eab_kid(const cJSON *eab)
{
	const char *prot = cJSON_IsObject(eab) ? str_member(eab, "protected") : NULL;
	size_t n = 0;
	uint8_t *h = prot && strlen(prot) < 4096 ? cs_b64url_decode(prot, strlen(prot), &n) : NULL;
	cJSON *hdr = h ? cJSON_ParseWithLength((const char *)h, n) : NULL;
	free(h);
	const char *kid = str_member(hdr, "kid");
	char *out = kid ? strdup(kid) : NULL;
	cJSON_Delete(hdr);
	return out;
}

int cs_acme_eab_verify(const cJSON *eab, const struct cs_acme_jws *outer, const uint8_t *hmac_key,
		       size_t key_len, const char **why)
{
	*why = "malformed: externalAccountBinding is not a valid JWS";
	if (!cJSON_IsObject(eab) || !outer->jwk)
		return CS_EINVAL;
	/* The inner JWS has no nonce (RFC 8555 §7.3.4): parse it by hand, not as a request. */
	const char *prot = str_member(eab, "protected"), *payload = str_member(eab, "payload"),
		   *sig = str_member(eab, "signature");
	if (!prot || !payload || !sig || cJSON_GetArraySize(eab) != 3 || strlen(prot) > 4096 ||
	    strlen(payload) > 8192 || strlen(sig) > 200)
		return CS_EINVAL;
	size_t hl = 0, pl = 0, sl = 0;
	uint8_t *h = cs_b64url_decode(prot, strlen(prot), &hl);
	uint8_t *p = cs_b64url_decode(payload, strlen(payload), &pl);
	uint8_t *s = cs_b64url_decode(sig, strlen(sig), &sl);
	cJSON *hdr = h ? cJSON_ParseWithLength((const char *)h, hl) : NULL;
	cJSON *pj = p ? cJSON_ParseWithLength((const char *)p, pl) : NULL;
	int rc = CS_EINVAL;
	const char *alg = str_member(hdr, "alg"), *url = str_member(hdr, "url");
	if (!hdr || !pj || !s || !alg || !url || !str_member(hdr, "kid")) {
		/* malformed */
	} else if (strcmp(alg, "HS256") != 0) {
		*why = "badSignatureAlgorithm: externalAccountBinding must use HS256";
	} else if (cJSON_GetObjectItemCaseSensitive(hdr, "nonce")) {
		*why = "malformed: externalAccountBinding must not carry a nonce";
	} else if (strcmp(url, outer->url) != 0) {
		*why = "malformed: externalAccountBinding's url differs from the request's";
	} else if (!cJSON_Compare(pj, outer->jwk, true)) {
		*why = "malformed: externalAccountBinding does not bind the account key";
	} else {
		uint8_t mac[32];
		size_t in_len = strlen(prot) + 1 + strlen(payload);
		char *input = malloc(in_len + 1);
		if (!input)
			abort();
		snprintf(input, in_len + 1, "%s.%s", prot, payload);
		cs_hmac_sha256(hmac_key, key_len, input, in_len, mac);
		free(input);
		if (sl == sizeof mac && CRYPTO_memcmp(mac, s, sizeof mac) == 0)
			rc = 0;
		else
			*why = "unauthorized: externalAccountBinding's signature does not verify";
		cs_zero(mac, sizeof mac);
	}
	cJSON_Delete(hdr);
	cJSON_Delete(pj);
	free(h);
	free(p);
	free(s);
	if (!rc)
		*why = NULL;
	return rc;
}
