/*
 * userpass and the shared login helpers: the PBKDF2 password hash (format, salt, verify,
 * tampering, malformed input), CIDR parsing and matching against client addresses, and
 * the token parameters a login hands to the token store.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "auth/tokenutil.h"
#include "auth/userpass.h"
#include "lib/util.h"

/* Few iterations keep the suite fast; one test runs the real count. */
#define FAST 1000

START_TEST(test_hash_format_and_verify)
{
	char *h = cs_userpass_hash("correct horse", FAST);
	ck_assert_ptr_nonnull(h);
	ck_assert_str_eq(strncmp(h, "pbkdf2-sha256$1000$", 19) == 0 ? "ok" : h, "ok");
	ck_assert(strstr(h, "correct horse") == NULL);
	ck_assert(cs_userpass_verify("correct horse", h));
	ck_assert(!cs_userpass_verify("correct horsE", h));
	ck_assert(!cs_userpass_verify("", h));
	ck_assert(!cs_userpass_verify(NULL, h));
	/* Fresh salt: the same password never hashes twice the same. */
	char *h2 = cs_userpass_hash("correct horse", FAST);
	ck_assert_str_ne(h, h2);
	ck_assert(cs_userpass_verify("correct horse", h2));
	free(h);
	free(h2);
}
END_TEST

START_TEST(test_hash_default_iterations)
{
	char *h = cs_userpass_hash("pw", CS_USERPASS_KDF_ITER);
	char want[64];
	snprintf(want, sizeof want, "pbkdf2-sha256$%d$", CS_USERPASS_KDF_ITER);
	ck_assert_int_eq(strncmp(h, want, strlen(want)), 0);
	ck_assert(cs_userpass_verify("pw", h));
	free(h);
}
END_TEST

START_TEST(test_verify_rejects_tampering)
{
	char *h = cs_userpass_hash("pw", FAST);
	/* The iteration count is part of the hash: changing it breaks verification. */
	char *t = strdup(h);
	memcpy(t + 14, "1001", 4);
	ck_assert(!cs_userpass_verify("pw", t));
	free(t);
	/* Flip one character of the key. */
	t = strdup(h);
	size_t n = strlen(t);
	t[n - 3] = t[n - 3] == 'A' ? 'B' : 'A';
	ck_assert(!cs_userpass_verify("pw", t));
	free(t);
	free(h);
	static const char *bad[] = {
	    "",
	    "pw",
	    "sha1$1000$c2FsdA==$a2V5",
	    "pbkdf2-sha256$$c2FsdA==$a2V5",
	    "pbkdf2-sha256$0$c2FsdA==$a2V5",
	    "pbkdf2-sha256$1000$c2FsdA==",
	    "pbkdf2-sha256$1000$c2FsdA==$a2V5", /* key too short */
	    "pbkdf2-sha256$1000$!!$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	    "pbkdf2-sha256$x$c2FsdA==$a2V5"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(!cs_userpass_verify("pw", bad[i]), "accepted %s", bad[i]);
	ck_assert(!cs_userpass_verify("pw", NULL));
}
END_TEST

START_TEST(test_known_vector)
{
	/* RFC 7914 §11 PBKDF2-HMAC-SHA256 test vector: P="passwd", S="salt", c=1, dkLen 64
	 * → 55ac046e56e3089f...; our key is its first 32 bytes. */
	uint8_t key[32];
	static const char *hex = "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc";
	for (int i = 0; i < 32; i++) {
		unsigned v;
		sscanf(hex + 2 * i, "%2x", &v);
		key[i] = (uint8_t)v;
	}
	char *s64 = cs_b64_encode((const uint8_t *)"salt", 4);
	char *k64 = cs_b64_encode(key, 32);
	char enc[256];
	snprintf(enc, sizeof enc, "pbkdf2-sha256$1$%s$%s", s64, k64);
	ck_assert(cs_userpass_verify("passwd", enc));
	ck_assert(!cs_userpass_verify("passwe", enc));
	free(s64);
	free(k64);
}
END_TEST

START_TEST(test_cidr_match)
{
	ck_assert(cs_tokenutil_cidr_match("127.0.0.0/8", "127.0.0.1:53412"));
	ck_assert(cs_tokenutil_cidr_match("127.0.0.1/32", "127.0.0.1:1"));
	ck_assert(cs_tokenutil_cidr_match("127.0.0.1", "127.0.0.1:1"));
	ck_assert(!cs_tokenutil_cidr_match("127.0.0.1", "127.0.0.2:1"));
	ck_assert(!cs_tokenutil_cidr_match("10.0.0.0/8", "127.0.0.1:53412"));
	ck_assert(cs_tokenutil_cidr_match("10.0.0.0/8", "10.255.1.2"));
	ck_assert(cs_tokenutil_cidr_match("192.168.4.0/22", "192.168.7.255:80"));
	ck_assert(!cs_tokenutil_cidr_match("192.168.4.0/22", "192.168.8.0:80"));
	ck_assert(cs_tokenutil_cidr_match("0.0.0.0/0", "8.8.8.8:53"));
	/* IPv6, bracketed with a port or bare; v4-mapped clients match v4 CIDRs. */
	ck_assert(cs_tokenutil_cidr_match("::1/128", "[::1]:8200"));
	ck_assert(cs_tokenutil_cidr_match("::1", "::1"));
	ck_assert(cs_tokenutil_cidr_match("2001:db8::/32", "[2001:db8:1::5]:443"));
	ck_assert(!cs_tokenutil_cidr_match("2001:db8::/32", "[2001:db9::5]:443"));
	ck_assert(cs_tokenutil_cidr_match("127.0.0.0/8", "[::ffff:127.0.0.1]:9"));
	ck_assert(!cs_tokenutil_cidr_match("::1/128", "127.0.0.1:9"));
	/* Junk never matches. */
	ck_assert(!cs_tokenutil_cidr_match("127.0.0.0/8", "unknown"));
	ck_assert(!cs_tokenutil_cidr_match("127.0.0.0/8", ""));
	ck_assert(!cs_tokenutil_cidr_match("bogus", "127.0.0.1:1"));
	ck_assert(!cs_tokenutil_cidr_match(NULL, "127.0.0.1:1"));
}
END_TEST

START_TEST(test_cidr_valid_and_within)
{
	static const char *good[] = {"10.0.0.0/8", "1.2.3.4",   "1.2.3.4/32", "0.0.0.0/0",
				     "::1",        "fe80::/10", "::/0"};
	static const char *bad[] = {"",          "10.0.0.0/33", "10.0.0.0/",    "10.0.0.0/-1",
				    "10.0.0/8",  "::1/129",     "host.example", "1.2.3.4/8x",
				    "1.2.3.4/+8"};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		ck_assert_msg(cs_tokenutil_cidr_valid(good[i]), "%s", good[i]);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(!cs_tokenutil_cidr_valid(bad[i]), "%s", bad[i]);
	ck_assert(cs_tokenutil_cidr_within("10.1.0.0/16", "10.0.0.0/8"));
	ck_assert(cs_tokenutil_cidr_within("10.1.2.3", "10.0.0.0/8"));
	ck_assert(cs_tokenutil_cidr_within("10.0.0.0/8", "10.0.0.0/8"));
	ck_assert(!cs_tokenutil_cidr_within("10.0.0.0/7", "10.0.0.0/8"));
	ck_assert(!cs_tokenutil_cidr_within("11.0.0.0/16", "10.0.0.0/8"));
	ck_assert(!cs_tokenutil_cidr_within("::1", "10.0.0.0/8"));
}
END_TEST

START_TEST(test_cidr_list)
{
	cJSON *l = cJSON_CreateArray();
	ck_assert(cs_tokenutil_cidr_list_ok(l, "1.2.3.4:5")); /* empty: no restriction */
	ck_assert(cs_tokenutil_cidr_list_ok(NULL, "1.2.3.4:5"));
	cJSON_AddItemToArray(l, cJSON_CreateString("10.0.0.0/8"));
	ck_assert(!cs_tokenutil_cidr_list_ok(l, "1.2.3.4:5"));
	ck_assert(!cs_tokenutil_cidr_list_ok(l, "")); /* internal request, no address */
	cJSON_AddItemToArray(l, cJSON_CreateString("1.2.3.0/24"));
	ck_assert(cs_tokenutil_cidr_list_ok(l, "1.2.3.4:5"));
	cJSON_Delete(l);
}
END_TEST

START_TEST(test_issue_params)
{
	cJSON *e = cJSON_Parse("{\"token_policies\":[\"a\",\"b\"],\"token_ttl\":60,"
			       "\"token_max_ttl\":120,\"token_period\":0,"
			       "\"token_explicit_max_ttl\":300,\"token_num_uses\":3,"
			       "\"token_type\":\"default-batch\",\"token_no_default_policy\":true,"
			       "\"token_bound_cidrs\":[\"10.0.0.0/8\"],\"password_hash\":\"x\"}");
	cJSON *meta = cJSON_Parse("{\"username\":\"bob\"}");
	cJSON *p = cs_tokenutil_params(e, meta, "up-bob", "auth/up/login/bob");
	char *s = cJSON_PrintUnformatted(p);
	ck_assert_str_eq(s, "{\"policies\":[\"a\",\"b\"],\"no_default_policy\":true,\"ttl\":60,"
			    "\"max_ttl\":120,\"period\":0,\"explicit_max_ttl\":300,"
			    "\"num_uses\":3,\"type\":\"batch\",\"renewable\":true,"
			    "\"bound_cidrs\":[\"10.0.0.0/8\"],\"meta\":{\"username\":\"bob\"},"
			    "\"display_name\":\"up-bob\",\"path\":\"auth/up/login/bob\"}");
	ck_assert(strstr(s, "password") == NULL);
	free(s);
	cJSON_Delete(p);
	cJSON_Delete(meta);
	cJSON_Delete(e);
}
END_TEST

static Suite *userpass_suite(void)
{
	Suite *s = suite_create("userpass");
	TCase *tc = tcase_create("kdf");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_hash_format_and_verify);
	tcase_add_test(tc, test_hash_default_iterations);
	tcase_add_test(tc, test_verify_rejects_tampering);
	tcase_add_test(tc, test_known_vector);
	suite_add_tcase(s, tc);
	tc = tcase_create("tokenutil");
	tcase_add_test(tc, test_cidr_match);
	tcase_add_test(tc, test_cidr_valid_and_within);
	tcase_add_test(tc, test_cidr_list);
	tcase_add_test(tc, test_issue_params);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(userpass_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
