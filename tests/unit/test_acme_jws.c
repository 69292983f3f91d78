/* ACME JWS / JWK handling (engines/acme_jws.c): requests signed here with OpenSSL by every
 * supported key type verify; tampering, mismatched algorithms and RFC 8555's forbidden
 * shapes are refused; RFC 7638's thumbprint vector; external account binding. */
#include <check.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engines/acme_jws.h"
#include "lib/err.h"
#include "lib/util.h"

static EVP_PKEY *gen(const char *type, const char *param)
{
	if (strcmp(type, "EC") == 0)
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", param);
	if (strcmp(type, "RSA") == 0)
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
}

static char *b64s(const char *s)
{
	return cs_b64url_encode((const uint8_t *)s, strlen(s));
}

/* A JWS over `payload` with the protected header `hdr` (JSON text), signed by `key` as
 * `alg`; ECDSA signatures in JOSE's r||s form. */
static char *sign_jws(EVP_PKEY *key, const char *alg, const char *hdr, const char *payload)
{
	char *p = b64s(hdr), *pl = b64s(payload);
	size_t in_len = strlen(p) + 1 + strlen(pl);
	char *input = malloc(in_len + 1);
	snprintf(input, in_len + 1, "%s.%s", p, pl);
	const char *md = strcmp(alg, "EdDSA") == 0 ? NULL
			 : strstr(alg, "384")      ? "SHA384"
			 : strstr(alg, "512")      ? "SHA512"
						   : "SHA256";
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	ck_assert_int_eq(EVP_DigestSignInit_ex(ctx, &pctx, md, NULL, NULL, key, NULL), 1);
	if (alg[0] == 'P') {
		ck_assert_int_gt(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 0);
		ck_assert_int_gt(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST), 0);
	}
	size_t sl = 0;
	ck_assert_int_eq(EVP_DigestSign(ctx, NULL, &sl, (uint8_t *)input, in_len), 1);
	uint8_t *sig = malloc(sl);
	ck_assert_int_eq(EVP_DigestSign(ctx, sig, &sl, (uint8_t *)input, in_len), 1);
	EVP_MD_CTX_free(ctx);
	if (alg[0] == 'E' && alg[1] == 'S') {
		int bytes = strstr(alg, "256") ? 32 : strstr(alg, "384") ? 48 : 66;
		const uint8_t *q = sig;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)sl);
		uint8_t *rs = calloc(1, (size_t)bytes * 2);
		BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, bytes);
		BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + bytes, bytes);
		ECDSA_SIG_free(es);
		free(sig);
		sig = rs;
		sl = (size_t)bytes * 2;
	}
	char *s = cs_b64url_encode(sig, sl);
	size_t n = strlen(p) + strlen(pl) + strlen(s) + 64;
	char *out = malloc(n);
	snprintf(out, n, "{\"protected\":\"%s\",\"payload\":\"%s\",\"signature\":\"%s\"}", p, pl,
		 s);
	free(p);
	free(pl);
	free(s);
	free(sig);
	free(input);
	return out;
}

/* The protected header with the key's JWK. */
static char *hdr_jwk(EVP_PKEY *key, const char *alg)
{
	cJSON *jwk = cs_acme_key_jwk(key);
	ck_assert_ptr_nonnull(jwk);
	cJSON *h = cJSON_CreateObject();
	cJSON_AddStringToObject(h, "alg", alg);
	cJSON_AddStringToObject(h, "nonce", "n0nce");
	cJSON_AddStringToObject(h, "url", "https://127.0.0.1/v1/pki/acme/new-account");
	cJSON_AddItemToObject(h, "jwk", jwk);
	char *s = cJSON_PrintUnformatted(h);
	cJSON_Delete(h);
	return s;
}

/* Parse, take the key from the JWK, verify: 0 or the error. */
static int check(const char *body, const char **why)
{
	struct cs_acme_jws j;
	int rc = cs_acme_jws_parse(body, strlen(body), &j, why);
	EVP_PKEY *k = NULL;
	if (!rc)
		rc = cs_acme_jwk_key(j.jwk, &k, why);
	if (!rc)
		rc = cs_acme_jws_verify(&j, k, why);
	EVP_PKEY_free(k);
	cs_acme_jws_free(&j);
	return rc;
}

START_TEST(test_every_key_type_verifies)
{
	static const struct {
		const char *type, *param, *alg;
	} cases[] = {
	    {"EC", "P-256", "ES256"}, {"EC", "P-384", "ES384"}, {"EC", "P-521", "ES512"},
	    {"RSA", NULL, "RS256"},   {"RSA", NULL, "PS256"},   {"ED", NULL, "EdDSA"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		EVP_PKEY *k = gen(cases[i].type, cases[i].param);
		ck_assert_ptr_nonnull(k);
		char *h = hdr_jwk(k, cases[i].alg);
		char *body = sign_jws(k, cases[i].alg, h, "{\"termsOfServiceAgreed\":true}");
		const char *why = NULL;
		ck_assert_msg(check(body, &why) == 0, "%s: %s", cases[i].alg, why);
		/* The payload changed after signing. */
		char *tampered = strdup(body);
		char *pl = strstr(tampered, "\"payload\":\"") + 11;
		pl[3] = pl[3] == 'A' ? 'B' : 'A';
		ck_assert_int_eq(check(tampered, &why), CS_EINVAL);
		free(tampered);
		free(body);
		free(h);
		EVP_PKEY_free(k);
	}
}
END_TEST

/* ES256 claimed for a P-384 key, RS256 for an EC key: refused before any check. */
START_TEST(test_alg_must_match_key)
{
	EVP_PKEY *p384 = gen("EC", "P-384");
	char *h = hdr_jwk(p384, "ES256");
	char *body = sign_jws(p384, "ES256", h, "{}");
	const char *why = NULL;
	ck_assert_int_eq(check(body, &why), CS_EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "badSignatureAlgorithm"));
	free(body);
	free(h);
	h = hdr_jwk(p384, "HS256");
	body = sign_jws(p384, "ES384", h, "{}");
	ck_assert_int_eq(check(body, &why), CS_EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "badSignatureAlgorithm"));
	free(body);
	free(h);
	h = hdr_jwk(p384, "none");
	body = sign_jws(p384, "ES384", h, "{}");
	ck_assert_int_eq(check(body, &why), CS_EINVAL);
	free(body);
	free(h);
	EVP_PKEY_free(p384);
}
END_TEST

static int parse_only(const char *body, const char **why)
{
	struct cs_acme_jws j;
	int rc = cs_acme_jws_parse(body, strlen(body), &j, why);
	cs_acme_jws_free(&j);
	return rc;
}

/* RFC 8555 §6.2's rules on the envelope and the protected header. */
START_TEST(test_envelope_rules)
{
	EVP_PKEY *k = gen("EC", "P-256");
	const char *why = NULL;
	/* Both jwk and kid; neither; no nonce; no url. */
	const char *bad_headers[] = {
	    "{\"alg\":\"ES256\",\"nonce\":\"n\",\"url\":\"u\",\"kid\":\"k\",\"jwk\":{}}",
	    "{\"alg\":\"ES256\",\"nonce\":\"n\",\"url\":\"u\"}",
	    "{\"alg\":\"ES256\",\"url\":\"u\",\"kid\":\"k\"}",
	    "{\"alg\":\"ES256\",\"nonce\":\"n\",\"kid\":\"k\"}",
	    "{\"alg\":\"ES256\",\"nonce\":\"n\",\"url\":\"u\",\"kid\":7}",
	    "{\"nonce\":\"n\",\"url\":\"u\",\"kid\":\"k\"}",
	    "[1]",
	};
	for (size_t i = 0; i < sizeof bad_headers / sizeof bad_headers[0]; i++) {
		char *body = sign_jws(k, "ES256", bad_headers[i], "{}");
		ck_assert_msg(parse_only(body, &why) == CS_EINVAL, "%s", bad_headers[i]);
		free(body);
	}
	/* A kid request parses; POST-as-GET has an empty payload and no JSON. */
	char *body = sign_jws(
	    k, "ES256", "{\"alg\":\"ES256\",\"nonce\":\"n\",\"url\":\"u\",\"kid\":\"k\"}", "");
	struct cs_acme_jws j;
	ck_assert_int_eq(cs_acme_jws_parse(body, strlen(body), &j, &why), 0);
	ck_assert_str_eq(j.kid, "k");
	ck_assert_ptr_null(j.jwk);
	ck_assert_uint_eq(j.payload_len, 0);
	ck_assert_ptr_null(j.payload_json);
	cs_acme_jws_free(&j);
	/* An unprotected header, a fourth member, a payload that is not an object. */
	char *extra = malloc(strlen(body) + 32);
	snprintf(extra, strlen(body) + 32, "%.*s,\"header\":{}}", (int)strlen(body) - 1, body);
	ck_assert_int_eq(parse_only(extra, &why), CS_EINVAL);
	free(extra);
	free(body);
	body = sign_jws(k, "ES256",
			"{\"alg\":\"ES256\",\"nonce\":\"n\",\"url\":\"u\",\"kid\":\"k\"}", "[1,2]");
	ck_assert_int_eq(parse_only(body, &why), CS_EINVAL);
	free(body);
	/* Not base64url (padding, '+'), not JSON, too big. */
	ck_assert_int_eq(
	    parse_only("{\"protected\":\"e30=\",\"payload\":\"\",\"signature\":\"AA\"}", &why),
	    CS_EINVAL);
	ck_assert_int_eq(
	    parse_only("{\"protected\":\"e3+\",\"payload\":\"\",\"signature\":\"AA\"}", &why),
	    CS_EINVAL);
	ck_assert_int_eq(parse_only("not json", &why), CS_EINVAL);
	ck_assert_int_eq(parse_only("", &why), CS_EINVAL);
	EVP_PKEY_free(k);
}
END_TEST

/* JWKs: private members, small RSA, points off the curve, wrong sizes. */
START_TEST(test_jwk_rules)
{
	const char *why = NULL;
	EVP_PKEY *k = NULL;
	const char *bad[] = {
	    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}",
	    "{\"kty\":\"EC\",\"crv\":\"P-192\",\"x\":\"AAAA\",\"y\":\"AAAA\"}",
	    "{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}",
	    "{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"AAAA\"}",
	    "{\"kty\":\"oct\",\"k\":\"AAAA\"}",
	    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\",\"d\":\"AAAA\"}",
	    "{}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cJSON *j = cJSON_Parse(bad[i]);
		ck_assert_msg(cs_acme_jwk_key(j, &k, &why) == CS_EINVAL, "%s", bad[i]);
		ck_assert_ptr_null(k);
		cJSON_Delete(j);
	}
	/* 32 zero bytes for x and y: right size, not on P-256. */
	uint8_t zero[32] = {0};
	char *z = cs_b64url_encode(zero, 32);
	char text[256];
	snprintf(text, sizeof text, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}",
		 z, z);
	free(z);
	cJSON *j = cJSON_Parse(text);
	ck_assert_int_eq(cs_acme_jwk_key(j, &k, &why), CS_EINVAL);
	cJSON_Delete(j);
}
END_TEST

/* RFC 7638 §3.1's example key and thumbprint; members beyond the required are ignored. */
START_TEST(test_thumbprint_rfc7638)
{
	cJSON *jwk = cJSON_Parse(
	    "{\"kty\":\"RSA\",\"n\":"
	    "\"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT8"
	    "6zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lq"
	    "t7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajr"
	    "n1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-"
	    "csFCur-kEgU8awapJzKnqDKgw\",\"e\":\"AQAB\",\"alg\":\"RS256\",\"kid\":\"2011-04-29\"}");
	char tp[44];
	ck_assert_int_eq(cs_acme_jwk_thumbprint(jwk, tp), 0);
	ck_assert_str_eq(tp, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
	cJSON_Delete(jwk);
	/* The same EC key written twice has one thumbprint; another key has another. */
	EVP_PKEY *a = gen("EC", "P-256"), *b = gen("EC", "P-256");
	cJSON *ja = cs_acme_key_jwk(a), *jb = cs_acme_key_jwk(b);
	cJSON *ja2 = cJSON_Duplicate(ja, 1);
	cJSON_AddStringToObject(ja2, "use", "sig");
	char ta[44], ta2[44], tb[44];
	ck_assert_int_eq(cs_acme_jwk_thumbprint(ja, ta), 0);
	ck_assert_int_eq(cs_acme_jwk_thumbprint(ja2, ta2), 0);
	ck_assert_int_eq(cs_acme_jwk_thumbprint(jb, tb), 0);
	ck_assert_str_eq(ta, ta2);
	ck_assert_str_ne(ta, tb);
	cJSON_Delete(ja);
	cJSON_Delete(ja2);
	cJSON_Delete(jb);
	EVP_PKEY_free(a);
	EVP_PKEY_free(b);
}
END_TEST

/* An externalAccountBinding: HS256 over the account JWK with the url of the request. */
static cJSON *make_eab(const char *kid, const char *url, const cJSON *jwk, const uint8_t *key,
		       const char *alg)
{
	char hdr[512];
	snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\",\"kid\":\"%s\",\"url\":\"%s\"}", alg, kid, url);
	char *jt = cJSON_PrintUnformatted(jwk);
	char *p = b64s(hdr), *pl = b64s(jt);
	char input[4096];
	snprintf(input, sizeof input, "%s.%s", p, pl);
	uint8_t mac[32];
	cs_hmac_sha256(key, 32, input, strlen(input), mac);
	char *s = cs_b64url_encode(mac, 32);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "protected", p);
	cJSON_AddStringToObject(o, "payload", pl);
	cJSON_AddStringToObject(o, "signature", s);
	free(jt);
	free(p);
	free(pl);
	free(s);
	return o;
}

START_TEST(test_external_account_binding)
{
	EVP_PKEY *k = gen("EC", "P-256");
	char *h = hdr_jwk(k, "ES256");
	char *body = sign_jws(k, "ES256", h, "{}");
	struct cs_acme_jws j;
	const char *why = NULL;
	ck_assert_int_eq(cs_acme_jws_parse(body, strlen(body), &j, &why), 0);
	uint8_t key[32], other[32];
	memset(key, 7, sizeof key);
	memset(other, 8, sizeof other);
	cJSON *eab = make_eab("kid-1", j.url, j.jwk, key, "HS256");
	char *kid = cs_acme_eab_kid(eab);
	ck_assert_str_eq(kid, "kid-1");
	free(kid);
	ck_assert_int_eq(cs_acme_eab_verify(eab, &j, key, 32, &why), 0);
	ck_assert_int_eq(cs_acme_eab_verify(eab, &j, other, 32, &why), CS_EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "unauthorized"));
	cJSON_Delete(eab);
	/* Another url, another key bound, another algorithm. */
	eab = make_eab("kid-1", "https://elsewhere/", j.jwk, key, "HS256");
	ck_assert_int_eq(cs_acme_eab_verify(eab, &j, key, 32, &why), CS_EINVAL);
	cJSON_Delete(eab);
	EVP_PKEY *k2 = gen("EC", "P-256");
	cJSON *jwk2 = cs_acme_key_jwk(k2);
	eab = make_eab("kid-1", j.url, jwk2, key, "HS256");
	ck_assert_int_eq(cs_acme_eab_verify(eab, &j, key, 32, &why), CS_EINVAL);
	cJSON_Delete(eab);
	eab = make_eab("kid-1", j.url, j.jwk, key, "HS512");
	ck_assert_int_eq(cs_acme_eab_verify(eab, &j, key, 32, &why), CS_EINVAL);
	cJSON_Delete(eab);
	cJSON_Delete(jwk2);
	EVP_PKEY_free(k2);
	cs_acme_jws_free(&j);
	free(body);
	free(h);
	EVP_PKEY_free(k);
}
END_TEST

START_TEST(test_b64url)
{
	const uint8_t in[] = {0xfb, 0xff, 0xfe, 0x00, 0x41};
	char *s = cs_b64url_encode(in, sizeof in);
	ck_assert_str_eq(s, "-__-AEE");
	size_t n = 0;
	uint8_t *out = cs_b64url_decode(s, strlen(s), &n);
	ck_assert_uint_eq(n, sizeof in);
	ck_assert_mem_eq(out, in, n);
	ck_assert_uint_eq(out[n], 0);
	free(out);
	free(s);
	ck_assert_ptr_null(cs_b64url_decode("AA==", 4, &n));
	ck_assert_ptr_null(cs_b64url_decode("A+A", 3, &n));
	ck_assert_ptr_null(cs_b64url_decode("A", 1, &n));
	out = cs_b64url_decode("", 0, &n);
	ck_assert_ptr_nonnull(out);
	ck_assert_uint_eq(n, 0);
	free(out);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("acme_jws");
	TCase *tc = tcase_create("jws");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_every_key_type_verifies);
	tcase_add_test(tc, test_alg_must_match_key);
	tcase_add_test(tc, test_envelope_rules);
	tcase_add_test(tc, test_jwk_rules);
	tcase_add_test(tc, test_thumbprint_rfc7638);
	tcase_add_test(tc, test_external_account_binding);
	tcase_add_test(tc, test_b64url);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
