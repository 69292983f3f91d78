/* Unit tests for auth/record_codec.c: the compact form of token entries, accessor index
 * entries and lease records, and reading the JSON the previous release wrote. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/expire.h"
#include "auth/record_codec.h"
#include "auth/token_internal.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/util.h"

#define HEX_A "8dfece49629513219667da18d1f095a6bf3e3f5ee0d9ac52c27614470b0b714f"
#define HEX_B "fc0d52d5a0698e1068ef2e32584cabd2c1108eb605a179283693ececbd4cf1dc"

/* A token entry as auth/token_create.c writes it. */
static const char token_json[] =
    "{\"key\":\"" HEX_A "\",\"accessor\":\"sf1Eq0oQYK6zkeZJpWfS5OQK\",\"policies\":"
    "[\"default\"],\"path\":\"auth/token/create\",\"display_name\":\"token\",\"meta\":null,"
    "\"num_uses\":0,\"creation_time\":1796693747,\"creation_ttl\":2764800,\"expire_time\":"
    "1799458547,\"explicit_max_ttl\":0,\"period\":0,\"max_ttl\":0,\"orphan\":false,"
    "\"parent\":\"" HEX_B "\",\"type\":\"service\",\"renewable\":true,\"lease_id\":"
    "\"auth/token/create/" HEX_A "\"}";

static cJSON *parse(const char *s)
{
	cJSON *o = cJSON_Parse(s);
	ck_assert_ptr_nonnull(o);
	return o;
}

/* encode, check the form, decode, compare member for member (order and types too). */
static size_t roundtrip(const char *key, const char *json)
{
	cJSON *o = parse(json);
	struct cs_buf b = CS_BUF_INIT;
	ck_assert_int_eq(cs_record_encode(key, o, &b), 0);
	ck_assert(cs_record_is_compact(b.data, b.len) == cs_record_compact_key(key));
	cJSON *back = NULL;
	ck_assert_int_eq(cs_record_decode(key, b.data, b.len, &back), 0);
	char *want = cJSON_PrintUnformatted(o), *got = cJSON_PrintUnformatted(back);
	ck_assert_str_eq(got, want);
	size_t n = b.len;
	free(want);
	free(got);
	cJSON_Delete(o);
	cJSON_Delete(back);
	cs_buf_free(&b);
	return n;
}

START_TEST(test_token_entry_roundtrip)
{
	size_t n = roundtrip("sys/token/id/" HEX_A, token_json);
	/* The JSON is 480 bytes; key, lease_id and the hex parent cost next to nothing. */
	ck_assert_uint_lt(n, 140);
	ck_assert_uint_lt(n * 3, strlen(token_json));
}
END_TEST

START_TEST(test_token_entry_under_other_key)
{
	/* Stored under another key, key and lease_id are not derivable: still exact. */
	roundtrip("sys/token/id/" HEX_B, token_json);
	roundtrip("sys/token/id/short", token_json);
}
END_TEST

START_TEST(test_unusual_members_roundtrip)
{
	/* Unknown members, odd types, fractions, big and negative numbers, nested objects,
	 * unicode, empty strings, hex in upper case (not compacted): all exact. */
	roundtrip(
	    "sys/token/id/" HEX_A,
	    "{\"zz_new\":{\"a\":[1,2,{\"b\":null}]},\"num_uses\":-1,\"policies\":[],"
	    "\"meta\":{\"team\":\"\\u00e9t\\u00e9\",\"n\":\"1\"},\"creation_time\":1.5,"
	    "\"expire_time\":9007199254740993,\"period\":-9007199254740992,"
	    "\"max_ttl\":1e300,\"parent\":\"" HEX_B "\",\"path\":\"\",\"key\":\"\","
	    "\"entity_id\":\"ABCDEF\",\"accessor\":\"8DFECE49629513219667DA18D1F095A6BF3E3F5EE0D9AC"
	    "52C27614470B0b714f\",\"bound_cidrs\":[\"10.0.0.0/8\"],\"type\":7,"
	    "\"orphan\":\"yes\",\"renewable\":null,\"lease_id\":\"\",\"x\":-0.0,\"y\":0.001}");
}
END_TEST

START_TEST(test_lease_records)
{
	/* A token lease: lease_id, path and token_key all follow from the storage key. */
	size_t n = roundtrip(
	    "sys/expire/id/auth/token/create/" HEX_A,
	    "{\"lease_id\":\"auth/token/create/" HEX_A "\",\"path\":\"auth/token/create\","
	    "\"issue_time\":1796693747,\"expire_time\":1799458547,\"last_renewal\":0,"
	    "\"renewable\":true,\"token_key\":\"" HEX_A "\"}");
	ck_assert_uint_lt(n, 24);
	/* A secret lease: millisecond times, an owner, the backend's internal object. */
	n = roundtrip(
	    "sys/expire/id/database/creds/ro/AbCdEfGhIjKlMnOpQrStUvWx",
	    "{\"lease_id\":\"database/creds/ro/AbCdEfGhIjKlMnOpQrStUvWx\",\"path\":"
	    "\"database/creds/ro\",\"issue_time\":1796693747.123,\"expire_time\":"
	    "1796697347.123,\"last_renewal\":0,\"renewable\":true,\"secret_type\":\"creds\","
	    "\"internal\":{\"username\":\"v-root-ro-x\",\"role\":\"ro\"},\"max_expire\":"
	    "1796780147.999,\"owner_key\":\"" HEX_B "\",\"attempts\":2,\"irrevocable\":"
	    "true,\"revoke_error\":\"connection refused\"}");
	ck_assert_uint_lt(n, 160);
}
END_TEST

START_TEST(test_accessor_index)
{
	size_t n =
	    roundtrip("sys/token/accessor/" HEX_B,
		      "{\"token_key\":\"" HEX_A "\",\"accessor\":\"sf1Eq0oQYK6zkeZJpWfS5OQK\"}");
	ck_assert_uint_le(n, 1 + 1 + 32 + 2 + 24);
}
END_TEST

START_TEST(test_prefixes_agree)
{
	/* The codec spells the token store's and the manager's prefixes out. */
	ck_assert(cs_record_compact_key(CS_TOKEN_ID_PREFIX "x"));
	ck_assert(cs_record_compact_key(CS_TOKEN_ACCESSOR_PREFIX "x"));
	ck_assert(cs_record_compact_key(CS_EXPIRE_PREFIX "x"));
	ck_assert(!cs_record_compact_key(CS_TOKEN_PARENT_PREFIX "x"));
}
END_TEST

START_TEST(test_other_keys_stay_json)
{
	cJSON *o = parse("{\"a\":1}");
	struct cs_buf b = CS_BUF_INIT;
	ck_assert_int_eq(cs_record_encode("sys/token/salt2", o, &b), 0);
	ck_assert_uint_eq(b.len, 7);
	ck_assert_int_eq(memcmp(b.data, "{\"a\":1}", 7), 0);
	/* Not an object: refused. */
	cJSON *arr = parse("[1]");
	ck_assert_int_eq(cs_record_encode("sys/token/id/" HEX_A, arr, &b), CS_EINVAL);
	cJSON_Delete(arr);
	cJSON_Delete(o);
	cs_buf_free(&b);
}
END_TEST

START_TEST(test_reads_old_json)
{
	/* The previous release's JSON, with whitespace, decodes as it always did. */
	const char *old = " {\"token_key\":\"" HEX_A "\",\"accessor\":\"x\"}";
	cJSON *o = NULL;
	ck_assert_int_eq(cs_record_decode("sys/token/accessor/" HEX_B, old, strlen(old), &o), 0);
	ck_assert_str_eq(cJSON_GetObjectItem(o, "token_key")->valuestring, HEX_A);
	cJSON_Delete(o);
	ck_assert(!cs_record_is_compact(old, strlen(old)));
	ck_assert_int_eq(cs_record_decode("sys/token/id/" HEX_A, "{nope", 5, &o), CS_EIO);
	ck_assert_ptr_null(o);
}
END_TEST

START_TEST(test_rejects_bad_bytes)
{
	struct {
		const char *b;
		size_t n;
	} bad[] = {
	    {"\x01\xff", 2}, /* field id 31: none */
	    {"\x01\x0c", 2}, /* accessor, string, no length */
	    {"\x01\x0c\x05"
	     "ab",
	     5}, /* string shorter than its length */
	    {"\x01\x0c\x02"
	     "a\0",
	     5}, /* NUL inside a string */
	    {"\x01\x0d"
	     "abc",
	     5},                                                      /* 32 raw bytes missing */
	    {"\x01\x0b\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 12}, /* varint > 64 bits */
	    {"\x01\x0b\x80", 3},                                      /* varint cut short */
	    {"\x01\x0f\x05"
	     "[1]x",
	     7}, /* JSON shorter than its length */
	    {"\x01\x0f\x04"
	     "[1]x",
	     7}, /* JSON with trailing bytes */
	    {"\x01\x04\x02"
	     "ab",
	     5},             /* generic name, no value tag */
	    {"\x01\x06", 2}, /* generic member without its name */
	    {"\x01\x9e", 2}, /* derived lease_id, but no path before */
	};
	for (size_t i = 0; i < CS_ARRAY_LEN(bad); i++) {
		cJSON *o = (cJSON *)1;
		int rc = cs_record_decode("sys/token/id/" HEX_A, bad[i].b, bad[i].n, &o);
		ck_assert_msg(rc == CS_EIO, "case %zu decoded", i);
		ck_assert_ptr_null(o);
	}
	/* Compact bytes under a key of no known kind are not ours. */
	cJSON *o = NULL;
	ck_assert_int_eq(cs_record_decode("kv/x", "\x01", 1, &o), CS_EIO);
	/* Just the version byte: an empty object. */
	ck_assert_int_eq(cs_record_decode("sys/token/id/" HEX_A, "\x01", 1, &o), 0);
	ck_assert_int_eq(cJSON_GetArraySize(o), 0);
	cJSON_Delete(o);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("record_codec");
	TCase *tc = tcase_create("codec");
	tcase_add_test(tc, test_token_entry_roundtrip);
	tcase_add_test(tc, test_token_entry_under_other_key);
	tcase_add_test(tc, test_unusual_members_roundtrip);
	tcase_add_test(tc, test_lease_records);
	tcase_add_test(tc, test_accessor_index);
	tcase_add_test(tc, test_prefixes_agree);
	tcase_add_test(tc, test_other_keys_stay_json);
	tcase_add_test(tc, test_reads_old_json);
	tcase_add_test(tc, test_rejects_bad_bytes);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
