/*
 * Unit tests for ACL policies (policy/policy.c): parsing, parse errors, and a table of
 * (policies × op × path → allowed) covering Vault's precedence rules, merging, LIST,
 * parameter constraints, sudo, wrapping bounds and templated paths.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "policy/policy.h"
#include "policy/store.h"

static char err[600];

static struct cs_policy *parse_ok(const char *text)
{
	struct cs_policy *p = NULL;
	int rc = cs_policy_parse(text, strlen(text), &p, err, sizeof err);
	ck_assert_msg(rc == 0, "parse failed: %s\n%s", err, text);
	ck_assert_ptr_nonnull(p);
	return p;
}

/* ---------------------------------------------------------------- parsing */

START_TEST(test_parse_kinds)
{
	struct cs_policy *p =
	    parse_ok("name = \"x\"\n"
		     "path \"secret/a\" { capabilities = [\"read\"] }\n"
		     "path \"/secret/b/*\" { capabilities = [\"list\", \"sudo\"] }\n"
		     "path \"secret/+/c\" { capabilities = [\"deny\", \"read\"] }\n"
		     "path \"secret/+/d*\" { policy = \"write\" }\n");
	ck_assert_uint_eq(p->n_rules, 4);
	ck_assert_int_eq(p->rules[0].kind, CS_RULE_EXACT);
	ck_assert_str_eq(p->rules[0].path, "secret/a");
	ck_assert_uint_eq(p->rules[0].caps, CS_CAP_READ);
	ck_assert_int_eq(p->rules[1].kind, CS_RULE_PREFIX);
	ck_assert_str_eq(p->rules[1].path, "secret/b/"); /* leading '/' and '*' stripped */
	ck_assert_uint_eq(p->rules[1].caps, CS_CAP_LIST | CS_CAP_SUDO);
	ck_assert_int_eq(p->rules[2].kind, CS_RULE_SEGMENT);
	ck_assert_uint_eq(p->rules[2].caps, CS_CAP_DENY); /* deny stands alone */
	ck_assert_int_eq(p->rules[3].kind, CS_RULE_SEGMENT);
	ck_assert_str_eq(p->rules[3].path, "secret/+/d*");
	ck_assert_uint_eq(p->rules[3].caps, CS_CAP_CREATE | CS_CAP_READ | CS_CAP_UPDATE |
						CS_CAP_DELETE | CS_CAP_LIST);
	cs_policy_free(p);
}
END_TEST

START_TEST(test_parse_json_and_params)
{
	struct cs_policy *p =
	    parse_ok("{\"path\": {\"kv/x\": {\"capabilities\": [\"update\"],"
		     " \"allowed_parameters\": {\"Foo\": [\"a*\"], \"bar\": []},"
		     " \"denied_parameters\": {\"baz\": []},"
		     " \"required_parameters\": [\"foo\"],"
		     " \"min_wrapping_ttl\": \"1m\", \"max_wrapping_ttl\": 3600}}}");
	ck_assert_uint_eq(p->n_rules, 1);
	const struct cs_policy_rule *r = &p->rules[0];
	ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(r->allowed, "foo")); /* lowered */
	ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(r->denied, "baz"));
	ck_assert_int_eq(cJSON_GetArraySize(r->required), 1);
	ck_assert_int_eq(r->min_wrap, 60);
	ck_assert_int_eq(r->max_wrap, 3600);
	cs_policy_free(p);
}
END_TEST

static const struct {
	const char *text;
	const char *msg; /* substring of the error */
} bad[] = {
    {"path \"a\" { capabilities = [\"fly\"] }",
     "failed to parse policy: path \"a\": invalid capability \"fly\""},
    {"path \"a\" { capabilities = [\"root\"] }", "invalid capability \"root\""},
    {"path \"a\" { capabilitie = [\"read\"] }",
     "path \"a\": invalid key \"capabilitie\" on line 1"},
    {"pth \"a\" { capabilities = [\"read\"] }", "invalid key \"pth\" on line 1"},
    {"path \"a\" { policy = \"admin\" }", "invalid policy \"admin\""},
    {"path \"a/+*\" { capabilities = [\"read\"] }", "'+*' is forbidden"},
    {"path \"a\" { capabilities = \"read\" }", "capabilities must be a list"},
    {"path \"a\" { capabilities = [\"read\"]\n min_wrapping_ttl = \"2h\"\n max_wrapping_ttl = "
     "\"1h\" }",
     "max_wrapping_ttl cannot be less than min_wrapping_ttl"},
    {"path \"a\" { capabilities = [\"read\"], min_wrapping_ttl = \"soon\" }",
     "error parsing min_wrapping_ttl"},
    {"path \"a/{{identity.entity.id\" { capabilities = [\"read\"] }", "templating"},
    {"path \"a\" { capabilities = [\"read\"] ", "failed to parse policy: line"},
    {"{\"path\": ", "failed to parse policy:"},
};

START_TEST(test_parse_errors)
{
	struct cs_policy *p = (struct cs_policy *)1;
	int rc = cs_policy_parse(bad[_i].text, strlen(bad[_i].text), &p, err, sizeof err);
	ck_assert_int_eq(rc, CS_EINVAL);
	ck_assert_ptr_null(p);
	ck_assert_msg(strstr(err, bad[_i].msg) != NULL, "case %d: error <%s> lacks <%s>", _i, err,
		      bad[_i].msg);
	ck_assert_msg(strncmp(err, "failed to parse policy: ", 24) == 0, "prefix: %s", err);
}
END_TEST

START_TEST(test_default_policy_parses)
{
	struct cs_policy *p = parse_ok(cs_policy_default_text());
	ck_assert_uint_ge(p->n_rules, 15);
	ck_assert(p->templated);
	const struct cs_policy *v[] = {p};
	struct cs_acl_request r = {CS_ACL_READ, "auth/token/lookup-self", NULL, 0, false};
	ck_assert(cs_acl_allowed(v, 1, &r));
	r = (struct cs_acl_request){CS_ACL_UPDATE, "sys/capabilities-self", NULL, 0, false};
	ck_assert(cs_acl_allowed(v, 1, &r));
	r = (struct cs_acl_request){CS_ACL_LIST, "cubbyhole/", NULL, 0, false};
	ck_assert(cs_acl_allowed(v, 1, &r));
	r = (struct cs_acl_request){CS_ACL_READ, "sys/mounts", NULL, 0, false};
	ck_assert(!cs_acl_allowed(v, 1, &r));
	r = (struct cs_acl_request){CS_ACL_READ, "identity/entity/id/", NULL, 0, false};
	ck_assert(!cs_acl_allowed(v, 1, &r));
	cs_policy_free(p);
}
END_TEST

/* ---------------------------------------------------------------- evaluation table */

#define P_EXACT_VS_GLOB                                                                            \
	"path \"secret/*\" { capabilities = [\"deny\"] }\n"                                        \
	"path \"secret/open\" { capabilities = [\"read\"] }\n"
#define P_LONGEST                                                                                  \
	"path \"kv/*\" { capabilities = [\"read\"] }\n"                                            \
	"path \"kv/team/*\" { capabilities = [\"update\"] }\n"                                     \
	"path \"kv/team/a*\" { capabilities = [\"delete\"] }\n"
#define P_PLUS                                                                                     \
	"path \"app/+/config\" { capabilities = [\"read\"] }\n"                                    \
	"path \"app/*\" { capabilities = [\"list\"] }\n"                                           \
	"path \"app/+/+\" { capabilities = [\"update\"] }\n"                                       \
	"path \"app/prod/+\" { capabilities = [\"delete\"] }\n"
#define P_PLUS_GLOB                                                                                \
	"path \"x/+/ba*\" { capabilities = [\"read\"] }\n"                                         \
	"path \"x/+/bar\" { capabilities = [\"update\"] }\n"                                       \
	"path \"x/+\" { capabilities = [\"create\"] }\n"                                           \
	"path \"x/*\" { capabilities = [\"delete\"] }\n"
#define P_SEG_GLOB                                                                                 \
	"path \"x/+/ba*\" { capabilities = [\"read\"] }\n"                                         \
	"path \"x/+\" { capabilities = [\"create\"] }\n"
#define P_LIST                                                                                     \
	"path \"kv/\" { capabilities = [\"list\"] }\n"                                             \
	"path \"kv/dir\" { capabilities = [\"list\"] }\n"                                          \
	"path \"kv/g*\" { capabilities = [\"read\"] }\n"                                           \
	"path \"kv/g\" { capabilities = [\"read\"] }\n"                                            \
	"path \"other/*\" { capabilities = [\"list\"] }\n"
#define P_GRANT_A   "path \"m/*\" { capabilities = [\"read\", \"update\"] }\n"
#define P_DENY_B    "path \"m/*\" { capabilities = [\"deny\"] }\n"
#define P_LIST_C    "path \"m/*\" { capabilities = [\"list\"] }\n"
#define P_EXACT_M   "path \"m/x\" { capabilities = [\"read\"] }\n"
#define P_TEMPLATED "path \"t/{{identity.entity.id}}/*\" { capabilities = [\"read\"] }\n"
#define P_SUDO                                                                                     \
	"path \"sys/seal\" { capabilities = [\"update\"] }\n"                                      \
	"path \"sys/audit*\" { capabilities = [\"update\", \"sudo\"] }\n"
#define P_PARAMS                                                                                   \
	"path \"p/allow\" {\n capabilities = [\"create\", \"update\", \"read\", \"delete\"]\n"     \
	" allowed_parameters = { \"color\" = [\"red\", \"bl*\", \"*een\"], \"size\" = [] }\n}\n"   \
	"path \"p/deny\" {\n capabilities = [\"update\"]\n"                                        \
	" denied_parameters = { \"admin\" = [], \"mode\" = [\"*root*\"] }\n}\n"                    \
	"path \"p/denyall\" {\n capabilities = [\"update\"]\n denied_parameters = { \"*\" = [] "   \
	"}\n}\n"                                                                                   \
	"path \"p/star\" {\n capabilities = [\"update\"]\n"                                        \
	" allowed_parameters = { \"*\" = [], \"n\" = [1, 2] }\n}\n"                                \
	"path \"p/req\" {\n capabilities = [\"update\", \"read\"]\n required_parameters = "        \
	"[\"Owner\"]\n}\n"
#define P_PARAMS_MERGE                                                                             \
	"path \"p/allow\" {\n capabilities = [\"update\"]\n"                                       \
	" allowed_parameters = { \"color\" = [\"purple\"] }\n}\n"
#define P_WRAP                                                                                     \
	"path \"w/x\" { capabilities = [\"read\"]\n min_wrapping_ttl = \"1m\"\n }\n"               \
	"path \"w/y\" { capabilities = [\"read\"]\n max_wrapping_ttl = 300\n }\n"

struct eval_case {
	const char *pols[3];
	enum cs_acl_op op;
	const char *path;
	const char *data; /* JSON object or NULL */
	bool sudo;
	int64_t wrap;
	bool allowed;
};

#define R CS_ACL_READ
#define C CS_ACL_CREATE
#define U CS_ACL_UPDATE
#define D CS_ACL_DELETE
#define L CS_ACL_LIST
#define X CS_ACL_PATCH

static const struct eval_case cases[] = {
    /* exact beats glob, even a glob deny */
    {{P_EXACT_VS_GLOB}, R, "secret/open", NULL, false, 0, true},
    {{P_EXACT_VS_GLOB}, R, "secret/closed", NULL, false, 0, false},
    {{P_EXACT_VS_GLOB}, R, "secret/open/sub", NULL, false, 0, false},
    {{P_EXACT_VS_GLOB}, U, "secret/open", NULL, false, 0, false},
    /* nothing matches → deny by default */
    {{P_EXACT_VS_GLOB}, R, "other/x", NULL, false, 0, false},
    {{NULL}, R, "anything", NULL, false, 0, false},
    /* longest prefix wins and does not inherit the shorter one */
    {{P_LONGEST}, R, "kv/x", NULL, false, 0, true},
    {{P_LONGEST}, R, "kv/team/x", NULL, false, 0, false},
    {{P_LONGEST}, U, "kv/team/x", NULL, false, 0, true},
    {{P_LONGEST}, D, "kv/team/abc", NULL, false, 0, true},
    {{P_LONGEST}, U, "kv/team/abc", NULL, false, 0, false},
    {{P_LONGEST}, U, "kv/team/", NULL, false, 0, true},
    {{P_LONGEST}, R, "kv", NULL, false, 0, false},
    /* + takes exactly one segment; ranking among + paths and globs */
    {{P_PLUS}, R, "app/dev/config", NULL, false, 0, true},
    {{P_PLUS}, U, "app/dev/config", NULL, false, 0, false},
    {{P_PLUS}, U, "app/dev/other", NULL, false, 0, true},
    {{P_PLUS}, D, "app/prod/other", NULL, false, 0, true},   /* later first '+' wins */
    {{P_PLUS}, R, "app/prod/config", NULL, false, 0, false}, /* app/prod/+ outranks */
    {{P_PLUS}, L, "app/a/b/c", NULL, false, 0, true},        /* only the app glob matches */
    {{P_PLUS}, R, "app/dev/config/x", NULL, false, 0, false},
    {{P_PLUS}, L, "app/dev", NULL, false, 0, true},
    {{P_PLUS_GLOB}, U, "x/q/bar", NULL, false, 0, true}, /* not a prefix beats prefix */
    /* Same first wildcard position, both globs: fewer '+' wins, so the plain x glob
     * outranks x/+/ba* (Vault's order, surprising as it is). */
    {{P_PLUS_GLOB}, R, "x/q/baz", NULL, false, 0, false},
    {{P_PLUS_GLOB}, D, "x/q/baz", NULL, false, 0, true},
    {{P_SEG_GLOB}, R, "x/q/baz", NULL, false, 0, true},    /* segment glob */
    {{P_SEG_GLOB}, R, "x/q/bazz/y", NULL, false, 0, true}, /* glob spans segments */
    {{P_SEG_GLOB}, R, "x/q/b", NULL, false, 0, false},
    {{P_SEG_GLOB}, C, "x/q", NULL, false, 0, true},
    {{P_PLUS_GLOB}, C, "x/q", NULL, false, 0, true}, /* x/+ beats the x glob */
    {{P_PLUS_GLOB}, D, "x/q", NULL, false, 0, false},
    {{P_PLUS_GLOB}, D, "x/q/zzz", NULL, false, 0, true}, /* only the x glob left */
    {{P_PLUS_GLOB}, C, "x/", NULL, false, 0, true},      /* + matches an empty segment */
    /* LIST: exact path with and without the trailing slash */
    {{P_LIST}, L, "kv/", NULL, false, 0, true},
    {{P_LIST}, R, "kv/", NULL, false, 0, false},
    {{P_LIST}, L, "kv/dir/", NULL, false, 0, true},
    {{P_LIST}, R, "kv/dir", NULL, false, 0, false},
    {{P_LIST}, L, "kv/g/", NULL, false, 0, false}, /* exact "kv/g" (read only) first */
    {{P_LIST}, L, "kv/gx/", NULL, false, 0, false},
    {{P_LIST}, R, "kv/gx/", NULL, false, 0, true},
    {{P_LIST}, L, "other/", NULL, false, 0, true},
    {{P_LIST}, L, "other/sub/", NULL, false, 0, true},
    {{P_LIST}, L, "nope/", NULL, false, 0, false},
    /* merging: union of capabilities; deny in any policy wins for the same path */
    {{P_GRANT_A, P_LIST_C}, L, "m/a/", NULL, false, 0, true},
    {{P_GRANT_A, P_LIST_C}, U, "m/a", NULL, false, 0, true},
    {{P_GRANT_A, P_DENY_B}, R, "m/a", NULL, false, 0, false},
    {{P_DENY_B, P_GRANT_A}, R, "m/a", NULL, false, 0, false},
    {{P_GRANT_A, P_DENY_B, P_LIST_C}, L, "m/a/", NULL, false, 0, false},
    {{P_DENY_B, P_EXACT_M}, R, "m/x", NULL, false, 0, true}, /* more specific rule wins */
    {{P_GRANT_A, P_GRANT_A}, R, "m/a", NULL, false, 0, true},
    /* templated paths never match without an identity */
    {{P_TEMPLATED}, R, "t/{{identity.entity.id}}/x", NULL, false, 0, false},
    {{P_TEMPLATED}, R, "t/abc/x", NULL, false, 0, false},
    /* sudo */
    {{P_SUDO}, U, "sys/seal", NULL, true, 0, false},
    {{P_SUDO}, U, "sys/seal", NULL, false, 0, true},
    {{P_SUDO}, U, "sys/audit/file", NULL, true, 0, true},
    {{P_SUDO}, R, "sys/audit/file", NULL, true, 0, false}, /* sudo alone grants nothing */
    /* allowed_parameters */
    {{P_PARAMS}, U, "p/allow", "{\"color\":\"red\"}", false, 0, true},
    {{P_PARAMS}, C, "p/allow", "{\"color\":\"blue\",\"size\":9}", false, 0, true},
    {{P_PARAMS}, U, "p/allow", "{\"Color\":\"green\"}", false, 0, true}, /* key case */
    {{P_PARAMS}, U, "p/allow", "{\"color\":\"black\"}", false, 0, true}, /* bl* glob */
    {{P_PARAMS}, U, "p/allow", "{\"color\":\"purple\"}", false, 0, false},
    {{P_PARAMS}, U, "p/allow", "{\"color\":\"red\",\"other\":1}", false, 0, false},
    {{P_PARAMS}, U, "p/allow", "{}", false, 0, true},             /* no data → allowed */
    {{P_PARAMS}, R, "p/allow", "{\"x\":\"1\"}", false, 0, false}, /* read data checked */
    {{P_PARAMS}, D, "p/allow", "{\"x\":\"1\"}", false, 0, true},  /* delete data is not */
    {{P_PARAMS, P_PARAMS_MERGE}, U, "p/allow", "{\"color\":\"purple\"}", false, 0, true},
    /* denied_parameters */
    {{P_PARAMS}, U, "p/deny", "{\"name\":\"x\"}", false, 0, true},
    {{P_PARAMS}, U, "p/deny", "{\"admin\":false}", false, 0, false},
    {{P_PARAMS}, U, "p/deny", "{\"mode\":\"is-root-ish\"}", false, 0, false},
    {{P_PARAMS}, U, "p/deny", "{\"mode\":\"user\"}", false, 0, true},
    {{P_PARAMS}, U, "p/denyall", "{\"a\":1}", false, 0, false},
    {{P_PARAMS}, U, "p/denyall", NULL, false, 0, true},
    /* "*" in allowed_parameters with other keys: others still constrain their values */
    {{P_PARAMS}, U, "p/star", "{\"anything\":\"x\",\"n\":2}", false, 0, true},
    {{P_PARAMS}, U, "p/star", "{\"n\":3}", false, 0, false},
    /* required_parameters (matched against the lower-cased name) */
    {{P_PARAMS}, U, "p/req", "{\"owner\":\"me\"}", false, 0, true},
    {{P_PARAMS}, U, "p/req", "{\"other\":\"me\"}", false, 0, false},
    {{P_PARAMS}, R, "p/req", NULL, false, 0, false},
    /* wrapping bounds: only wrapped requests within the range */
    {{P_WRAP}, R, "w/x", NULL, false, 0, false},
    {{P_WRAP}, R, "w/x", NULL, false, 30, false},
    {{P_WRAP}, R, "w/x", NULL, false, 120, true},
    {{P_WRAP}, R, "w/y", NULL, false, 300, true},
    {{P_WRAP}, R, "w/y", NULL, false, 301, false},
    /* patch needs its own capability */
    {{P_GRANT_A}, X, "m/a", NULL, false, 0, false},
    {{"path \"m/a\" { capabilities = [\"patch\"] }"}, X, "m/a", NULL, false, 0, true},
};

START_TEST(test_eval_table)
{
	const struct eval_case *c = &cases[_i];
	struct cs_policy *pols[3] = {NULL, NULL, NULL};
	size_t n = 0;
	for (; n < 3 && c->pols[n]; n++)
		pols[n] = parse_ok(c->pols[n]);
	cJSON *data = c->data ? cJSON_Parse(c->data) : NULL;
	struct cs_acl_request r = {c->op, c->path, data, c->wrap, c->sudo};
	bool got = cs_acl_allowed((const struct cs_policy *const *)pols, n, &r);
	ck_assert_msg(got == c->allowed, "case %d: op %d on %s %s: got %s, want %s", _i, c->op,
		      c->path, c->data ? c->data : "", got ? "allowed" : "denied",
		      c->allowed ? "allowed" : "denied");
	cJSON_Delete(data);
	for (size_t i = 0; i < n; i++)
		cs_policy_free(pols[i]);
}
END_TEST

/* ---------------------------------------------------------------- capabilities */

static char *caps_str(const struct cs_policy *const *v, size_t n, const char *path)
{
	cJSON *a = cs_acl_caps_json(cs_acl_capabilities(v, n, path));
	char *s = cJSON_PrintUnformatted(a);
	cJSON_Delete(a);
	return s;
}

START_TEST(test_capabilities)
{
	struct cs_policy *a = parse_ok(P_LONGEST P_LIST);
	struct cs_policy *b = parse_ok("path \"kv/x\" { capabilities = [\"update\", \"sudo\", "
				       "\"create\", \"patch\", \"delete\", \"list\", \"read\"] }\n"
				       "path \"secret/*\" { capabilities = [\"deny\"] }\n");
	const struct cs_policy *v[] = {a, b};
	char *s = caps_str(v, 2, "kv/x");
	ck_assert_str_eq(s,
			 "[\"create\",\"delete\",\"list\",\"patch\",\"read\",\"sudo\",\"update\"]");
	free(s);
	s = caps_str(v, 2, "kv/y");
	ck_assert_str_eq(s, "[\"read\"]");
	free(s);
	s = caps_str(v, 2, "kv/");
	ck_assert_str_eq(s, "[\"list\"]");
	free(s);
	s = caps_str(v, 2, "secret/a");
	ck_assert_str_eq(s, "[\"deny\"]");
	free(s);
	s = caps_str(v, 2, "nothing/here");
	ck_assert_str_eq(s, "[\"deny\"]");
	free(s);
	s = caps_str(v, 2, "/kv/team/q"); /* leading slash ignored */
	ck_assert_str_eq(s, "[\"update\"]");
	free(s);
	cs_policy_free(a);
	cs_policy_free(b);
}
END_TEST

START_TEST(test_glob_match)
{
	ck_assert(cs_acl_glob_match("abc", "abc"));
	ck_assert(!cs_acl_glob_match("abc", "abcd"));
	ck_assert(cs_acl_glob_match("ab*", "abcd"));
	ck_assert(cs_acl_glob_match("*cd", "abcd"));
	ck_assert(cs_acl_glob_match("*bc*", "abcd"));
	ck_assert(!cs_acl_glob_match("*x*", "abcd"));
	/* As Vault: a lone "*" is a literal, use an empty list for "any value". */
	ck_assert(cs_acl_glob_match("*", "*"));
	ck_assert(!cs_acl_glob_match("*", "abc"));
}
END_TEST

static Suite *policy_suite(void)
{
	Suite *s = suite_create("policy");
	TCase *tc = tcase_create("parse");
	tcase_add_test(tc, test_parse_kinds);
	tcase_add_test(tc, test_parse_json_and_params);
	tcase_add_loop_test(tc, test_parse_errors, 0, (int)(sizeof bad / sizeof bad[0]));
	tcase_add_test(tc, test_default_policy_parses);
	suite_add_tcase(s, tc);
	tc = tcase_create("eval");
	tcase_add_loop_test(tc, test_eval_table, 0, (int)(sizeof cases / sizeof cases[0]));
	tcase_add_test(tc, test_capabilities);
	tcase_add_test(tc, test_glob_match);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(policy_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
