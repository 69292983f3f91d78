/* Unit tests for the pure helpers of the KV v2 engine (engines/kv2_model.c). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "engines/kv2.h"
#include "lib/err.h"

#define SEC 1000000000LL

static bool json_eq(const cJSON *a, const char *text)
{
	cJSON *b = cJSON_Parse(text);
	ck_assert_ptr_nonnull(b);
	bool eq = cJSON_Compare(a, b, true);
	cJSON_Delete(b);
	return eq;
}

/* ---------------------------------------------------------------- compact record */

static void meta_sample(struct cs_kv2_meta *m, bool with_inline)
{
	cs_kv2_meta_init(m);
	uint64_t *pruned;
	size_t np;
	int64_t t0 = 1732283648123456789LL;
	for (int i = 0; i < 3; i++) {
		cs_kv2_add_version(m, t0 + i, i == 1 ? t0 + 99 * SEC : 0, 0, &pruned, &np);
		free(pruned);
	}
	m->v[0].destroyed = true;
	m->max_versions = 7;
	m->cas_required = true;
	m->delete_version_after = -1; /* negative survives (zigzag) */
	m->created_ns = t0;
	m->updated_ns = t0 + 5;
	m->custom = cJSON_Parse("{\"owner\":\"ops\",\"u\":\"\\u00e9\"}");
	if (with_inline) {
		m->inline_num = 3;
		m->inline_data = strdup("{\"value\":\"s3cr3t\"}");
		m->inline_len = strlen(m->inline_data);
	}
}

static void meta_eq(const struct cs_kv2_meta *a, const struct cs_kv2_meta *b)
{
	ck_assert_uint_eq(a->current_version, b->current_version);
	ck_assert_uint_eq(a->oldest_version, b->oldest_version);
	ck_assert_int_eq(a->created_ns, b->created_ns);
	ck_assert_int_eq(a->updated_ns, b->updated_ns);
	ck_assert_uint_eq(a->max_versions, b->max_versions);
	ck_assert(a->cas_required == b->cas_required);
	ck_assert_int_eq(a->delete_version_after, b->delete_version_after);
	ck_assert(cJSON_Compare(a->custom, b->custom, true) || (!a->custom && !b->custom));
	ck_assert_uint_eq(a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		ck_assert_uint_eq(a->v[i].num, b->v[i].num);
		ck_assert_int_eq(a->v[i].created_ns, b->v[i].created_ns);
		ck_assert_int_eq(a->v[i].deletion_ns, b->v[i].deletion_ns);
		ck_assert(a->v[i].destroyed == b->v[i].destroyed);
	}
}

START_TEST(test_meta_pack_roundtrip)
{
	for (int with = 0; with < 2; with++) {
		struct cs_kv2_meta m, back;
		meta_sample(&m, with);
		struct cs_buf b = CS_BUF_INIT;
		cs_kv2_meta_pack(&m, &b);
		ck_assert_uint_eq(((uint8_t *)b.data)[0], CS_KV2_REC_V1);
		ck_assert_int_eq(cs_kv2_meta_unpack(b.data, b.len, &back), 0);
		meta_eq(&m, &back);
		ck_assert(!back.legacy);
		ck_assert_uint_eq(back.inline_num, with ? 3 : 0);
		if (with) {
			ck_assert_uint_eq(back.inline_len, m.inline_len);
			ck_assert_str_eq(back.inline_data, m.inline_data);
		} else {
			ck_assert_ptr_null(back.inline_data);
		}
		/* Every strict prefix and any trailing byte is malformed, never a crash. */
		for (size_t cut = 0; cut < b.len; cut++) {
			struct cs_kv2_meta t;
			ck_assert_int_eq(cs_kv2_meta_unpack(b.data, cut, &t), CS_EIO);
			ck_assert_ptr_null(t.v);
		}
		cs_buf_append(&b, "", 1);
		struct cs_kv2_meta t;
		ck_assert_int_eq(cs_kv2_meta_unpack(b.data, b.len, &t), CS_EIO);
		cs_buf_free(&b);
		cs_kv2_meta_free(&m);
		cs_kv2_meta_free(&back);
	}
}
END_TEST

START_TEST(test_meta_unpack_legacy_json)
{
	/* A record written by the JSON codec of earlier releases reads the same. */
	struct cs_kv2_meta m, back;
	meta_sample(&m, false);
	cJSON *j = cs_kv2_meta_encode(&m);
	char *text = cJSON_PrintUnformatted(j);
	ck_assert_int_eq(cs_kv2_meta_unpack(text, strlen(text), &back), 0);
	ck_assert(back.legacy);
	meta_eq(&m, &back);
	ck_assert_ptr_null(back.inline_data);
	cs_kv2_meta_free(&back);
	/* A compact record is far smaller than the JSON one. */
	struct cs_buf b = CS_BUF_INIT;
	cs_kv2_meta_pack(&m, &b);
	ck_assert_uint_lt(b.len * 3, strlen(text));
	cs_buf_free(&b);
	free(text);
	cJSON_Delete(j);
	cs_kv2_meta_free(&m);
	/* Neither '{' nor the version byte: refused. */
	ck_assert_int_eq(cs_kv2_meta_unpack("\x02", 1, &back), CS_EIO);
	ck_assert_int_eq(cs_kv2_meta_unpack("{oops", 5, &back), CS_EIO);
	ck_assert_int_eq(cs_kv2_meta_unpack("", 0, &back), CS_EIO);
	/* A version count beyond the record, a 11-byte varint, bad custom JSON. */
	const uint8_t huge[] = {1, 1, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f};
	ck_assert_int_eq(cs_kv2_meta_unpack(huge, sizeof huge, &back), CS_EIO);
	const uint8_t longv[] = {1,    0xff, 0xff, 0xff, 0xff, 0xff,
				 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
	ck_assert_int_eq(cs_kv2_meta_unpack(longv, sizeof longv, &back), CS_EIO);
	const uint8_t badc[] = {1, 1, 1, 0, 0, 0, 0, 0, 2, '[', ']', 0, 0, 0};
	ck_assert_int_eq(cs_kv2_meta_unpack(badc, sizeof badc, &back), CS_EIO);
}
END_TEST

/* ---------------------------------------------------------------- metadata codec */

START_TEST(test_meta_roundtrip)
{
	struct cs_kv2_meta m;
	cs_kv2_meta_init(&m);
	uint64_t *pruned;
	size_t np;
	/* Realistic nanosecond times exceed 2^53: they must survive the JSON round trip. */
	int64_t t0 = 1732283648123456789LL;
	cs_kv2_add_version(&m, t0, 0, 0, &pruned, &np);
	free(pruned);
	cs_kv2_add_version(&m, t0 + 1, t0 + 99 * SEC, 0, &pruned, &np);
	free(pruned);
	m.v[0].destroyed = true;
	m.max_versions = 7;
	m.cas_required = true;
	m.delete_version_after = 3600;
	m.custom = cJSON_Parse("{\"owner\":\"ops\"}");

	cJSON *j = cs_kv2_meta_encode(&m);
	char *text = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	cJSON *back_j = cJSON_Parse(text);
	free(text);
	struct cs_kv2_meta b;
	ck_assert_int_eq(cs_kv2_meta_decode(back_j, &b), 0);
	cJSON_Delete(back_j);

	ck_assert_uint_eq(b.current_version, 2);
	ck_assert_uint_eq(b.oldest_version, 0);
	ck_assert_int_eq(b.created_ns, t0);
	ck_assert_int_eq(b.updated_ns, t0 + 1);
	ck_assert_uint_eq(b.max_versions, 7);
	ck_assert(b.cas_required);
	ck_assert_int_eq(b.delete_version_after, 3600);
	ck_assert(json_eq(b.custom, "{\"owner\":\"ops\"}"));
	ck_assert_uint_eq(b.n, 2);
	ck_assert(b.v[0].destroyed);
	ck_assert_int_eq(b.v[0].created_ns, t0);
	ck_assert_int_eq(b.v[1].deletion_ns, t0 + 99 * SEC);
	ck_assert_ptr_eq(cs_kv2_meta_find(&b, 2), &b.v[1]);
	ck_assert_ptr_null(cs_kv2_meta_find(&b, 3));
	cs_kv2_meta_free(&b);
	cs_kv2_meta_free(&m);
}
END_TEST

START_TEST(test_meta_decode_rejects_garbage)
{
	struct cs_kv2_meta m;
	cJSON *j = cJSON_Parse("[1,2]");
	ck_assert_int_eq(cs_kv2_meta_decode(j, &m), CS_EIO);
	cJSON_Delete(j);
	j = cJSON_Parse("{\"versions\":{\"1\":{}}}");
	ck_assert_int_eq(cs_kv2_meta_decode(j, &m), CS_EIO);
	cJSON_Delete(j);
	j = cJSON_Parse("{\"versions\":[7]}");
	ck_assert_int_eq(cs_kv2_meta_decode(j, &m), CS_EIO);
	cJSON_Delete(j);
	/* An empty object is a valid (fresh) key. */
	j = cJSON_Parse("{}");
	ck_assert_int_eq(cs_kv2_meta_decode(j, &m), 0);
	ck_assert_uint_eq(m.current_version, 0);
	ck_assert_ptr_null(m.custom);
	cs_kv2_meta_free(&m);
	cJSON_Delete(j);
}
END_TEST

START_TEST(test_config_codec)
{
	struct cs_kv2_config c = {5, true, CS_KV2_DVA_DISABLED}, d;
	cJSON *j = cs_kv2_config_encode(&c);
	cs_kv2_config_decode(j, &d);
	cJSON_Delete(j);
	ck_assert_uint_eq(d.max_versions, 5);
	ck_assert(d.cas_required);
	ck_assert_int_eq(d.delete_version_after, CS_KV2_DVA_DISABLED);
	cs_kv2_config_decode(NULL, &d);
	ck_assert_uint_eq(d.max_versions, 0);
	ck_assert(!d.cas_required);
}
END_TEST

/* ---------------------------------------------------------------- cas */

START_TEST(test_cas_decisions)
{
	const char *msg = NULL;
	/* no cas, not required: always fine */
	ck_assert_int_eq(cs_kv2_cas_check(false, 0, 3, false, &msg), 0);
	/* cas 0: only when the key has no version */
	ck_assert_int_eq(cs_kv2_cas_check(true, 0, 0, false, &msg), 0);
	ck_assert_int_eq(cs_kv2_cas_check(true, 0, 1, false, &msg), CS_EINVAL);
	ck_assert_str_eq(msg, "check-and-set parameter did not match the current version");
	/* must equal the current version */
	ck_assert_int_eq(cs_kv2_cas_check(true, 3, 3, true, &msg), 0);
	ck_assert_int_eq(cs_kv2_cas_check(true, 2, 3, false, &msg), CS_EINVAL);
	ck_assert_int_eq(cs_kv2_cas_check(true, 4, 3, false, &msg), CS_EINVAL);
	ck_assert_int_eq(cs_kv2_cas_check(true, -1, 3, false, &msg), CS_EINVAL);
	/* required but missing */
	msg = NULL;
	ck_assert_int_eq(cs_kv2_cas_check(false, 0, 3, true, &msg), CS_EINVAL);
	ck_assert_str_eq(msg, "check-and-set parameter required for this call");
}
END_TEST

/* ---------------------------------------------------------------- delete_version_after */

START_TEST(test_deletion_time)
{
	int64_t t = 1000 * SEC, out = 0;
	ck_assert(!cs_kv2_deletion_time(t, 0, 0, &out));
	ck_assert(cs_kv2_deletion_time(t, 60, 0, &out));
	ck_assert_int_eq(out, t + 60 * SEC);
	ck_assert(cs_kv2_deletion_time(t, 0, 30, &out));
	ck_assert_int_eq(out, t + 30 * SEC);
	/* the smaller non-zero wins, whichever side it is on */
	ck_assert(cs_kv2_deletion_time(t, 60, 30, &out));
	ck_assert_int_eq(out, t + 30 * SEC);
	ck_assert(cs_kv2_deletion_time(t, 30, 60, &out));
	ck_assert_int_eq(out, t + 30 * SEC);
	/* disabled on the mount beats any key setting */
	ck_assert(!cs_kv2_deletion_time(t, CS_KV2_DVA_DISABLED, 30, &out));
}
END_TEST

START_TEST(test_version_deleted)
{
	struct cs_kv2_version v = {1, 10, 0, false};
	ck_assert(!cs_kv2_version_deleted(&v, 100));
	v.deletion_ns = 50;
	ck_assert(cs_kv2_version_deleted(&v, 100));
	v.deletion_ns = 150; /* scheduled, not yet reached */
	ck_assert(!cs_kv2_version_deleted(&v, 100));
}
END_TEST

/* ---------------------------------------------------------------- max_versions */

START_TEST(test_add_version_prunes)
{
	struct cs_kv2_meta m;
	cs_kv2_meta_init(&m);
	uint64_t *pruned;
	size_t np;
	for (int i = 1; i <= 3; i++) {
		struct cs_kv2_version *v = cs_kv2_add_version(&m, i, 0, 3, &pruned, &np);
		ck_assert_uint_eq(v->num, (uint64_t)i);
		ck_assert_uint_eq(np, 0);
		free(pruned);
	}
	/* Vault moves oldest_version once the window is full, before pruning anything. */
	ck_assert_uint_eq(m.oldest_version, 1);
	/* the fourth write pushes version 1 out */
	cs_kv2_add_version(&m, 4, 0, 3, &pruned, &np);
	ck_assert_uint_eq(np, 1);
	ck_assert_uint_eq(pruned[0], 1);
	free(pruned);
	ck_assert_uint_eq(m.oldest_version, 2);
	ck_assert_uint_eq(m.n, 3);
	ck_assert_uint_eq(m.v[0].num, 2);
	/* lowering max_versions on the key drops several at once (key and mount: the
	 * larger wins, so lower the mount side too) */
	m.max_versions = 1;
	struct cs_kv2_version *v = cs_kv2_add_version(&m, 5, 0, 0, &pruned, &np);
	/* max(1, 0) = 1: keep only version 5 */
	ck_assert_uint_eq(np, 3);
	ck_assert_uint_eq(pruned[0], 2);
	ck_assert_uint_eq(pruned[2], 4);
	free(pruned);
	ck_assert_uint_eq(v->num, 5);
	ck_assert_uint_eq(m.n, 1);
	ck_assert_uint_eq(m.oldest_version, 5);
	ck_assert_int_eq(m.created_ns, 1);
	ck_assert_int_eq(m.updated_ns, 5);
	cs_kv2_meta_free(&m);
}
END_TEST

START_TEST(test_add_version_default_window)
{
	struct cs_kv2_meta m;
	cs_kv2_meta_init(&m);
	uint64_t *pruned;
	size_t np, total = 0;
	for (int i = 1; i <= 25; i++) {
		cs_kv2_add_version(&m, i, 0, 0, &pruned, &np);
		total += np;
		free(pruned);
	}
	ck_assert_uint_eq(m.n, CS_KV2_DEFAULT_MAX_VERSIONS);
	ck_assert_uint_eq(total, 15);
	ck_assert_uint_eq(m.oldest_version, 16);
	ck_assert_uint_eq(m.current_version, 25);
	/* the key's larger setting beats the mount's smaller one */
	m.max_versions = 20;
	cs_kv2_add_version(&m, 26, 0, 2, &pruned, &np);
	free(pruned);
	ck_assert_uint_eq(np, 0);
	ck_assert_uint_eq(m.n, 11);
	cs_kv2_meta_free(&m);
}
END_TEST

/* ---------------------------------------------------------------- merge patch */

static void check_patch(const char *target, const char *patch, const char *want)
{
	cJSON *t = cJSON_Parse(target), *p = cJSON_Parse(patch);
	ck_assert_ptr_nonnull(t);
	ck_assert_ptr_nonnull(p);
	cJSON *r = cs_kv2_merge_patch(t, p);
	char *got = cJSON_PrintUnformatted(r);
	ck_assert_msg(json_eq(r, want), "patch %s onto %s gave %s, want %s", patch, target, got,
		      want);
	free(got);
	/* inputs untouched */
	ck_assert(json_eq(t, target));
	cJSON_Delete(t);
	cJSON_Delete(p);
	cJSON_Delete(r);
}

START_TEST(test_merge_patch_rfc7386)
{
	/* The examples of RFC 7386 appendix A. */
	check_patch("{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
	check_patch("{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}");
	check_patch("{\"a\":\"b\"}", "{\"a\":null}", "{}");
	check_patch("{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}");
	check_patch("{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
	check_patch("{\"a\":\"c\"}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}");
	check_patch("{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}",
		    "{\"a\":{\"b\":\"d\"}}");
	check_patch("{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}");
	check_patch("[\"a\",\"b\"]", "[\"c\",\"d\"]", "[\"c\",\"d\"]");
	check_patch("{\"a\":\"b\"}", "[\"c\"]", "[\"c\"]");
	check_patch("{\"a\":\"foo\"}", "null", "null");
	check_patch("{\"a\":\"foo\"}", "\"bar\"", "\"bar\"");
	check_patch("{\"e\":null}", "{\"a\":1}", "{\"e\":null,\"a\":1}");
	check_patch("[1,2]", "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\"}");
	check_patch("{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}");
}
END_TEST

/* ---------------------------------------------------------------- subkeys */

static void check_subkeys(const char *data, int depth, const char *want)
{
	cJSON *d = cJSON_Parse(data);
	cs_kv2_subkeys(d, depth);
	char *got = cJSON_PrintUnformatted(d);
	ck_assert_msg(json_eq(d, want), "subkeys(%s, %d) = %s, want %s", data, depth, got, want);
	free(got);
	cJSON_Delete(d);
}

START_TEST(test_subkeys)
{
	const char *d = "{\"foo\":\"abc\",\"bar\":{\"baz\":\"def\",\"x\":{\"y\":1}},"
			"\"quux\":{},\"list\":[1,2]}";
	check_subkeys(d, 0,
		      "{\"foo\":null,\"bar\":{\"baz\":null,\"x\":{\"y\":null}},\"quux\":null,"
		      "\"list\":null}");
	check_subkeys(d, 1, "{\"foo\":null,\"bar\":null,\"quux\":null,\"list\":null}");
	check_subkeys(d, 2,
		      "{\"foo\":null,\"bar\":{\"baz\":null,\"x\":null},\"quux\":null,"
		      "\"list\":null}");
	check_subkeys("{}", 0, "{}");
}
END_TEST

/* ---------------------------------------------------------------- versions parameter */

START_TEST(test_parse_versions)
{
	uint64_t *v;
	size_t n;
	cJSON *j = cJSON_Parse("[1, \"2\", 30]");
	ck_assert_int_eq(cs_kv2_parse_versions(j, &v, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(v[0], 1);
	ck_assert_uint_eq(v[1], 2);
	ck_assert_uint_eq(v[2], 30);
	free(v);
	cJSON_Delete(j);

	j = cJSON_CreateString("4,5, 6");
	ck_assert_int_eq(cs_kv2_parse_versions(j, &v, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(v[2], 6);
	free(v);
	cJSON_Delete(j);

	j = cJSON_CreateNumber(7);
	ck_assert_int_eq(cs_kv2_parse_versions(j, &v, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(v[0], 7);
	free(v);
	cJSON_Delete(j);

	ck_assert_int_eq(cs_kv2_parse_versions(NULL, &v, &n), 0);
	ck_assert_uint_eq(n, 0);

	const char *bad[] = {"[1.5]", "[-1]", "[\"x\"]", "[[1]]", "{\"a\":1}", "\"1,x\"", "true"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		j = cJSON_Parse(bad[i]);
		ck_assert_ptr_nonnull(j);
		ck_assert_msg(cs_kv2_parse_versions(j, &v, &n) == CS_EINVAL, "accepted %s", bad[i]);
		ck_assert_ptr_null(v);
		cJSON_Delete(j);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kv2");
	TCase *tc = tcase_create("helpers");
	tcase_add_test(tc, test_meta_roundtrip);
	tcase_add_test(tc, test_meta_pack_roundtrip);
	tcase_add_test(tc, test_meta_unpack_legacy_json);
	tcase_add_test(tc, test_meta_decode_rejects_garbage);
	tcase_add_test(tc, test_config_codec);
	tcase_add_test(tc, test_cas_decisions);
	tcase_add_test(tc, test_deletion_time);
	tcase_add_test(tc, test_version_deleted);
	tcase_add_test(tc, test_add_version_prunes);
	tcase_add_test(tc, test_add_version_default_window);
	tcase_add_test(tc, test_merge_patch_rfc7386);
	tcase_add_test(tc, test_subkeys);
	tcase_add_test(tc, test_parse_versions);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
