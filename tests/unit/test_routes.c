/*
 * Unit tests for the route listing (server/routes.c): sample paths route back to their
 * own row, shadowed rows are reported, flags are named, variants are listed and agree
 * with the backend's variant hook.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "engines/kv.h"
#include "server/backend.h"
#include "server/routes.h"

static int h(struct cs_request *req)
{
	(void)req;
	return 0;
}

static const struct cs_path paths[] = {
    {.pattern = "data/{path*}", .ops = {[CS_OP_READ] = h}},
    {.pattern = "users/{name}/keys/{key}",
     .ops = {[CS_OP_READ] = h, [CS_OP_LIST] = h},
     .flags = CS_PATH_SUDO},
    {.pattern = "login/{name}", .ops = {[CS_OP_UPDATE] = h}, .flags = CS_PATH_UNAUTH | 0x400},
    /* shadowed: "login/{name}" takes every path this row could match */
    {.pattern = "login/{user}", .ops = {[CS_OP_UPDATE] = h}},
    {.pattern = "mounts/{path*}/tune", .ops = {[CS_OP_READ] = h}},
    /* the catch-all after "data/{path*}": reached by a path that starts elsewhere */
    {.pattern = "{path*}", .ops = {[CS_OP_READ] = h, [CS_OP_DELETE] = h}},
};

static const struct cs_backend fake = {
    .type = "fake",
    .is_auth = true,
    .paths = paths,
    .n_paths = sizeof paths / sizeof paths[0],
};

static const struct cs_backend empty = {.type = "", .paths = NULL, .n_paths = 0};

static const cJSON *find_backend(const cJSON *list, const char *type, const char *version)
{
	const cJSON *b;
	cJSON_ArrayForEach(b, list)
	{
		const cJSON *t = cJSON_GetObjectItem(b, "type");
		const cJSON *o = cJSON_GetObjectItem(b, "options");
		const cJSON *v = cJSON_IsObject(o) ? cJSON_GetObjectItem(o, "version") : NULL;
		if (strcmp(t->valuestring, type) != 0)
			continue;
		if ((!version && !v) || (version && v && strcmp(v->valuestring, version) == 0))
			return b;
	}
	return NULL;
}

START_TEST(test_samples_route_back)
{
	char *s = cs_routes_sample(&fake, 0);
	ck_assert_str_eq(s, "data/matrix/sample");
	free(s);
	s = cs_routes_sample(&fake, 1);
	ck_assert_str_eq(s, "users/matrix-sample/keys/matrix-sample");
	free(s);
	s = cs_routes_sample(&fake, 4);
	ck_assert_str_eq(s, "mounts/matrix/sample/tune");
	free(s);
	s = cs_routes_sample(&fake, 5);
	ck_assert_str_eq(s, "matrix/sample");
	free(s);
	ck_assert_ptr_null(cs_routes_sample(&fake, 3)); /* shadowed */
}
END_TEST

START_TEST(test_flags_named)
{
	cJSON *f = cs_routes_flags_json(CS_PATH_UNAUTH | CS_PATH_SUDO | CS_PATH_OPT_TOKEN | 0x400);
	char *t = cJSON_PrintUnformatted(f);
	ck_assert_str_eq(t, "[\"unauth\",\"sudo\",\"opt_token\",\"0x400\"]");
	free(t);
	cJSON_Delete(f);
}
END_TEST

START_TEST(test_listing_json)
{
	cs_backend_register(&empty);
	cs_backend_register(&fake);
	cs_backend_register(&cs_kv_backend);
	cJSON *j = cs_routes_json();
	const cJSON *list = cJSON_GetObjectItem(j, "backends");
	ck_assert_int_eq(cJSON_GetArraySize(list), 3); /* the path-less one is left out */
	const cJSON *b = find_backend(list, "fake", NULL);
	ck_assert_ptr_nonnull(b);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(b, "is_auth")));
	const cJSON *rows = cJSON_GetObjectItem(b, "paths");
	ck_assert_int_eq(cJSON_GetArraySize(rows), (int)fake.n_paths);
	const cJSON *r1 = cJSON_GetArrayItem(rows, 1);
	char *ops = cJSON_PrintUnformatted(cJSON_GetObjectItem(r1, "ops"));
	ck_assert_str_eq(ops, "[\"read\",\"list\"]");
	free(ops);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(rows, 3), "sample")));
	/* kv and its version-2 variant, each with its own table */
	const cJSON *v1 = find_backend(list, "kv", NULL), *v2 = find_backend(list, "kv", "2");
	ck_assert_ptr_nonnull(v1);
	ck_assert_ptr_nonnull(v2);
	ck_assert_int_gt(cJSON_GetArraySize(cJSON_GetObjectItem(v2, "paths")),
			 cJSON_GetArraySize(cJSON_GetObjectItem(v1, "paths")));
	cJSON_Delete(j);
}
END_TEST

/* Every declared variant is what the backend's own hook picks for those options. */
START_TEST(test_variants_agree_with_hook)
{
	const struct cs_backend *b = &cs_kv_backend;
	ck_assert_ptr_nonnull(b->variants);
	for (const struct cs_backend_variant *v = b->variants; v->backend; v++) {
		cJSON *o = cJSON_Parse(v->options_json);
		ck_assert_ptr_nonnull(o);
		ck_assert_ptr_eq(b->variant(o), v->backend);
		cJSON_Delete(o);
	}
}
END_TEST

START_TEST(test_print_unauthenticated)
{
	cs_backend_register(&fake);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cs_routes_print_unauthenticated(f);
	fclose(f);
	ck_assert_str_eq(buf, "auth/:fake/login/{name}\tupdate\tfake\n");
	free(buf);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("routes");
	TCase *tc = tcase_create("listing");
	tcase_add_test(tc, test_samples_route_back);
	tcase_add_test(tc, test_flags_named);
	tcase_add_test(tc, test_listing_json);
	tcase_add_test(tc, test_variants_agree_with_hook);
	tcase_add_test(tc, test_print_unauthenticated);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
