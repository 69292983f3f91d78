/*
 * Unit tests for mount visibility (policy/visibility.c): which mounts
 * sys/internal/ui/mounts shows to a token, per Vault's hasMountAccess.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "policy/visibility.h"

static bool visible(const char *text1, const char *text2, const char *mount)
{
	const char *texts[2] = {text1, text2};
	struct cs_policy *pols[2] = {NULL, NULL};
	char err[256];
	for (int i = 0; i < 2; i++) {
		if (!texts[i])
			continue;
		int rc = cs_policy_parse(texts[i], strlen(texts[i]), &pols[i], err, sizeof err);
		ck_assert_msg(rc == 0, "parse: %s", err);
	}
	bool v = cs_acl_mount_visible((const struct cs_policy *const *)pols, 2, mount);
	cs_policy_free(pols[0]);
	cs_policy_free(pols[1]);
	return v;
}

static const struct {
	const char *p1, *p2, *mount;
	bool want;
} cases[] = {
    /* no policy, or a policy about something else: hidden */
    {NULL, NULL, "secret/", false},
    {"path \"other/*\" { capabilities = [\"read\"] }", NULL, "secret/", false},
    /* a rule on the mount path itself, or a glob above it */
    {"path \"secret/\" { capabilities = [\"list\"] }", NULL, "secret/", true},
    {"path \"secret/*\" { capabilities = [\"read\"] }", NULL, "secret/", true},
    {"path \"sec*\" { capabilities = [\"read\"] }", NULL, "secret/", true},
    {"path \"*\" { capabilities = [\"read\"] }", NULL, "auth/userpass/", true},
    /* a deeper exact or prefix rule */
    {"path \"secret/data/app/db\" { capabilities = [\"read\"] }", NULL, "secret/", true},
    {"path \"secret/data/app/*\" { capabilities = [\"update\"] }", NULL, "secret/", true},
    {"path \"auth/userpass/login/*\" { capabilities = [\"update\"] }", NULL, "auth/userpass/",
     true},
    /* a deeper rule on another mount whose name starts alike */
    {"path \"secret2/x\" { capabilities = [\"read\"] }", NULL, "secret/", false},
    /* deny: on the deeper rule (merged over policies), or on the whole mount */
    {"path \"secret/x\" { capabilities = [\"deny\"] }", NULL, "secret/", false},
    {"path \"secret/x\" { capabilities = [\"read\"] }",
     "path \"secret/x\" { capabilities = [\"deny\"] }", "secret/", false},
    {"path \"secret/x\" { capabilities = [\"read\"] }",
     "path \"secret/y\" { capabilities = [\"deny\"] }", "secret/", true},
    /* segment rules: leading segments match the mount's */
    {"path \"+/data/x\" { capabilities = [\"read\"] }", NULL, "secret/", true},
    {"path \"team/+/x\" { capabilities = [\"read\"] }", NULL, "team/a/", true},
    {"path \"team/+/x\" { capabilities = [\"read\"] }", NULL, "other/a/", false},
    {"path \"team/+/x\" { capabilities = [\"deny\"] }", NULL, "team/a/", false},
    {"path \"+/ab*\" { capabilities = [\"read\"] }", NULL, "x/abc/", true},
    {"path \"+/ab*\" { capabilities = [\"read\"] }", NULL, "x/zz/", false},
    /* templated rules never match */
    {"path \"secret/{{identity.entity.id}}/*\" { capabilities = [\"read\"] }", NULL, "secret/",
     false},
};

START_TEST(test_visibility_table)
{
	ck_assert_msg(visible(cases[_i].p1, cases[_i].p2, cases[_i].mount) == cases[_i].want,
		      "case %d: %s | %s on %s: want %d", _i, cases[_i].p1 ? cases[_i].p1 : "-",
		      cases[_i].p2 ? cases[_i].p2 : "-", cases[_i].mount, cases[_i].want);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("visibility");
	TCase *tc = tcase_create("mount");
	tcase_add_loop_test(tc, test_visibility_table, 0, (int)(sizeof cases / sizeof cases[0]));
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
