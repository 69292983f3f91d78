/*
 * Request canonicalisation: strict JSON bodies (no repeated keys, at any depth) and one
 * spelling per request path, checked against the ACL with random paths and policies.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/json.h"
#include "lib/path.h"
#include "policy/policy.h"

static char err[256];

static void expect_dup(const char *body, const char *key)
{
	cJSON *j = cs_json_parse_strict(body, strlen(body), err, sizeof err);
	ck_assert_msg(j == NULL, "accepted %s", body);
	char want[128];
	snprintf(want, sizeof want, "duplicate key \"%s\"", key);
	ck_assert_msg(strstr(err, want), "%s: %s", body, err);
}

static void expect_ok(const char *body)
{
	cJSON *j = cs_json_parse_strict(body, strlen(body), err, sizeof err);
	ck_assert_msg(j != NULL, "refused %s: %s", body, err);
	cs_json_delete_wiped(j);
}

START_TEST(test_duplicate_keys)
{
	/* The attack of issue 9 §1.1: the ACL saw one "path", the handler the other. */
	expect_dup("{\"path\":\"x\",\"path\":\"secret\"}", "path");
	expect_dup("{\"a\":1,\"b\":{\"c\":1,\"c\":2}}", "c");
	expect_dup("{\"a\":[{\"k\":1},{\"k\":1,\"k\":2}]}", "k");
	expect_dup("[{\"x\":{\"y\":[{\"z\":1,\"z\":1}]}}]", "z");
	expect_dup("{\"\":1,\"\":2}", "");
	/* Case matters, as in Go's decoder and Vault's field names. */
	expect_ok("{\"path\":1,\"Path\":2,\"PATH\":3}");
	expect_ok("{\"a\":{\"k\":1},\"b\":{\"k\":1},\"c\":[{\"k\":1},{\"k\":2}]}");
	expect_ok("{}");
	expect_ok("  {\"a\":1}\n\r\t ");
}
END_TEST

START_TEST(test_many_keys_and_errors)
{
	/* 100k distinct keys with one repeated at the end: found, and fast (sorted, not
	 * pairwise: a quadratic check would take minutes here). */
	struct cs_buf b = CS_BUF_INIT;
	cs_buf_putc(&b, '{');
	for (int i = 0; i < 100000; i++)
		cs_buf_printf(&b, "\"k%d\":%d,", i, i);
	cs_buf_printf(&b, "\"k%d\":0}", 4242);
	cJSON *j = cs_json_parse_strict(b.data, b.len, err, sizeof err);
	ck_assert_ptr_null(j);
	ck_assert(strstr(err, "duplicate key \"k4242\""));
	cs_buf_free(&b);

	/* Trailing data after the value is a second value: refused. */
	ck_assert_ptr_null(cs_json_parse_strict("{\"a\":1} {\"a\":2}", 15, err, sizeof err));
	ck_assert(strstr(err, "after top-level value"));
	ck_assert_ptr_null(cs_json_parse_strict("{\"a\":", 5, err, sizeof err));
	ck_assert(strstr(err, "failed to parse JSON input"));
	/* The message never echoes values. */
	ck_assert_ptr_null(cs_json_parse_strict("{\"a\":\"s3cr3t\",\"a\":1}", 20, err, sizeof err));
	ck_assert_ptr_null(strstr(err, "s3cr3t"));
}
END_TEST

START_TEST(test_delete_wiped)
{
	cJSON *j = cJSON_Parse("{\"password\":\"hunter2\",\"n\":{\"t\":[\"tok\"]}}");
	ck_assert_ptr_nonnull(j);
	cs_json_delete_wiped(j); /* under ASan: no invalid access, nothing leaked */
	cs_json_delete_wiped(NULL);
}
END_TEST

static void expect_canon(const char *in, bool list, const char *want)
{
	char *out;
	const char *why = NULL;
	int rc = cs_path_canonical(in, list, &out, &why);
	if (!want) {
		ck_assert_msg(rc != 0, "accepted %s as %s", in, rc ? "" : out);
		ck_assert_ptr_nonnull(why);
		return;
	}
	ck_assert_msg(rc == 0, "refused %s: %s", in, why);
	ck_assert_str_eq(out, want);
	free(out);
}

START_TEST(test_path_rules)
{
	expect_canon("sys/mounts/prod", false, "sys/mounts/prod");
	expect_canon("sys/mounts//prod", false, "sys/mounts/prod");
	expect_canon("//sys///mounts/prod//", false, "sys/mounts/prod");
	expect_canon("sys/mounts/prod/", false, "sys/mounts/prod");
	expect_canon("secret/metadata/", true, "secret/metadata/");
	expect_canon("secret//metadata//", true, "secret/metadata/");
	expect_canon("secret/metadata", true, "secret/metadata/");
	expect_canon("", true, "/");
	expect_canon("", false, "");
	expect_canon("/", false, "");
	expect_canon("a.b/c..d", false, NULL); /* ".." anywhere, as before */
	expect_canon("sys/mounts/./prod", false, NULL);
	expect_canon("sys/mounts/prod/.", false, NULL);
	expect_canon("./sys", false, NULL);
	expect_canon("sys/../secret", false, NULL);
	expect_canon("..", false, NULL);
	expect_canon("a/.b/c.", false, "a/.b/c.");

	ck_assert(cs_path_has_encoded_sep("/v1/sys/mounts/a%2Fb"));
	ck_assert(cs_path_has_encoded_sep("/v1/sys/mounts/a%2fb"));
	ck_assert(cs_path_has_encoded_sep("/v1/a%5cb"));
	ck_assert(cs_path_has_encoded_sep("/v1/a%2F"));
	ck_assert(!cs_path_has_encoded_sep("/v1/a%20b?x=%2F"));
	ck_assert(!cs_path_has_encoded_sep("/v1/a#%2F"));
	ck_assert(!cs_path_has_encoded_sep("/v1/a%2"));
}
END_TEST

/* ---- property: every spelling is refused or decided like its canonical form ---- */

static const char *segs[] = {"sys", "mounts", "prod", "secret",  "data", "a",
			     "b",   "team-a", "x.y",  ".hidden", "auth", "token"};
#define N_SEGS (sizeof segs / sizeof segs[0])

static void random_path(char *out, size_t cap, unsigned *seed)
{
	size_t n = 1 + (size_t)rand_r(seed) % 5, len = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "/" : "",
					segs[(size_t)rand_r(seed) % N_SEGS]);
}

/* A non-canonical spelling of `p`: extra slashes anywhere, a trailing slash, and now and
 * then a "." or ".." segment or an ".." inside a segment. */
static void respell(const char *p, char *out, size_t cap, unsigned *seed, bool *tainted)
{
	size_t len = 0;
	*tainted = false;
	int lead = rand_r(seed) % 3;
	for (int i = 0; i < lead; i++)
		out[len++] = '/';
	for (const char *c = p; *c && len + 8 < cap; c++) {
		out[len++] = *c;
		if (*c == '/') {
			int extra = rand_r(seed) % 3;
			for (int i = 0; i < extra; i++)
				out[len++] = '/';
			int r = rand_r(seed) % 20;
			if (r == 0) {
				memcpy(out + len, "./", 2), len += 2, *tainted = true;
			} else if (r == 1) {
				memcpy(out + len, "../", 3), len += 3, *tainted = true;
			} else if (r == 2) {
				memcpy(out + len, "..x/", 4), len += 4, *tainted = true;
			}
		}
	}
	int trail = rand_r(seed) % 3;
	for (int i = 0; i < trail; i++)
		out[len++] = '/';
	out[len] = '\0';
}

static struct cs_policy *random_policy(unsigned *seed)
{
	static const char *caps[] = {"\"read\"", "\"update\"", "\"delete\"",
				     "\"list\"", "\"deny\"",   "\"sudo\", \"update\", \"delete\""};
	struct cs_buf b = CS_BUF_INIT;
	int rules = 1 + rand_r(seed) % 4;
	for (int i = 0; i < rules; i++) {
		char p[128];
		random_path(p, sizeof p, seed);
		const char *suffix[] = {"", "*", "/*", "/+"};
		cs_buf_printf(&b, "path \"%s%s\" { capabilities = [%s] }\n", p,
			      suffix[rand_r(seed) % 4], caps[(size_t)rand_r(seed) % 6]);
	}
	struct cs_policy *pol = NULL;
	char e[256];
	ck_assert_msg(cs_policy_parse(b.data, b.len, &pol, e, sizeof e) == 0, "%s: %s", b.data, e);
	cs_buf_free(&b);
	return pol;
}

START_TEST(test_spellings_decide_like_canonical)
{
	unsigned seed = 0x5eed + (unsigned)_i;
	int refused = 0, decided = 0;
	for (int round = 0; round < 400; round++) {
		struct cs_policy *pol = random_policy(&seed);
		const struct cs_policy *pols[] = {pol};
		char p[128], s[256];
		random_path(p, sizeof p, &seed);
		for (int k = 0; k < 10; k++) {
			bool tainted;
			respell(p, s, sizeof s, &seed, &tainted);
			for (enum cs_acl_op op = CS_ACL_READ; op <= CS_ACL_LIST; op++) {
				bool list = op == CS_ACL_LIST;
				char *c1, *c2;
				const char *why;
				int r1 = cs_path_canonical(p, list, &c1, &why);
				ck_assert_int_eq(r1, 0);
				int r2 = cs_path_canonical(s, list, &c2, &why);
				if (r2) {
					ck_assert(tainted); /* only "." / ".." are refused */
					refused++;
					free(c1);
					continue;
				}
				ck_assert(!tainted);
				/* Idempotent. */
				char *c3;
				ck_assert_int_eq(cs_path_canonical(c2, list, &c3, &why), 0);
				ck_assert_str_eq(c2, c3);
				free(c3);
				ck_assert_msg(strcmp(c1, c2) == 0, "%s vs %s", p, s);
				for (int sudo = 0; sudo < 2; sudo++) {
					struct cs_acl_request a = {
					    .op = op, .path = c1, .need_sudo = sudo};
					struct cs_acl_request b = a;
					b.path = c2;
					ck_assert_int_eq(cs_acl_allowed(pols, 1, &a),
							 cs_acl_allowed(pols, 1, &b));
				}
				decided++;
				free(c1);
				free(c2);
			}
		}
		cs_policy_free(pol);
	}
	ck_assert_int_gt(refused, 0);
	ck_assert_int_gt(decided, 1000);
}
END_TEST

static Suite *canon_suite(void)
{
	Suite *s = suite_create("canon");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_duplicate_keys);
	tcase_add_test(tc, test_many_keys_and_errors);
	tcase_add_test(tc, test_delete_wiped);
	tcase_add_test(tc, test_path_rules);
	tcase_add_loop_test(tc, test_spellings_decide_like_canonical, 0, 4);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(canon_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
