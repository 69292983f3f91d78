/*
 * Unit tests for server/wrap.c's pure helpers (X-Vault-Wrap-TTL parsing, wrap_info and
 * the wrapped envelope) and for the required-mount bookkeeping that keeps cubbyhole/
 * present on data dirs whose mount table lacks it (server/sys.c).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "engines/cubbyhole.h"
#include "lib/err.h"
#include "lib/util.h"
#include "server/router.h"
#include "server/sys.h"
#include "server/wrap.h"

START_TEST(test_parse_ttl)
{
	static const struct {
		const char *in;
		int rc;
		int64_t ttl;
	} cases[] = {
	    {NULL, 0, 0},          {"", 0, 0},
	    {"  ", 0, 0},          {"300", 0, 300},
	    {"5m", 0, 300},        {" 90s ", 0, 90},
	    {"1h30m", 0, 5400},    {"0", 0, 0},
	    {"-5", CS_EINVAL, 0},  {"-1m", CS_EINVAL, 0},
	    {"abc", CS_EINVAL, 0}, {"5x", CS_EINVAL, 0},
	    {"1e3", CS_EINVAL, 0},
	};
	for (size_t i = 0; i < CS_ARRAY_LEN(cases); i++) {
		int64_t ttl = -1;
		const char *msg = NULL;
		int rc = cs_wrap_parse_ttl(cases[i].in, &ttl, &msg);
		ck_assert_msg(rc == cases[i].rc, "case %zu (%s): rc %d", i,
			      cases[i].in ? cases[i].in : "NULL", rc);
		ck_assert_int_eq(ttl, cases[i].ttl);
		if (rc)
			ck_assert_ptr_nonnull(msg);
	}
	const char *msg = NULL;
	int64_t ttl;
	ck_assert_int_eq(cs_wrap_parse_ttl("-10s", &ttl, &msg), CS_EINVAL);
	ck_assert_str_eq(msg, "requested wrap ttl cannot be negative");
	char big[200];
	memset(big, '1', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	ck_assert_int_eq(cs_wrap_parse_ttl(big, &ttl, &msg), CS_EINVAL);
}
END_TEST

START_TEST(test_wrap_info_json)
{
	/* 2026-01-02T03:04:05.000000006Z */
	int64_t ns = 1767323045LL * 1000000000LL + 6;
	cJSON *w = cs_wrap_info_json("hvs.tok", "acc", 60, ns, "kv/app/db", NULL);
	ck_assert_str_eq(cJSON_GetObjectItem(w, "token")->valuestring, "hvs.tok");
	ck_assert_str_eq(cJSON_GetObjectItem(w, "accessor")->valuestring, "acc");
	ck_assert_int_eq(cJSON_GetObjectItem(w, "ttl")->valueint, 60);
	ck_assert_str_eq(cJSON_GetObjectItem(w, "creation_time")->valuestring,
			 "2026-01-02T03:04:05.000000006Z");
	ck_assert_str_eq(cJSON_GetObjectItem(w, "creation_path")->valuestring, "kv/app/db");
	ck_assert_ptr_null(cJSON_GetObjectItem(w, "wrapped_accessor"));
	cJSON_Delete(w);
	w = cs_wrap_info_json("t", "a", 1, 0, "auth/token/create", "wrapped");
	ck_assert_str_eq(cJSON_GetObjectItem(w, "wrapped_accessor")->valuestring, "wrapped");
	cJSON_Delete(w);
	w = cs_wrap_info_json("t", "a", 1, 0, "p", "");
	ck_assert_ptr_null(cJSON_GetObjectItem(w, "wrapped_accessor"));
	cJSON_Delete(w);
}
END_TEST

START_TEST(test_wrap_envelope)
{
	cJSON *env = cs_wrap_envelope(cs_wrap_info_json("t", "a", 5, 0, "p", NULL));
	static const char *nulls[] = {"data", "warnings", "auth"};
	for (size_t i = 0; i < CS_ARRAY_LEN(nulls); i++)
		ck_assert(cJSON_IsNull(cJSON_GetObjectItem(env, nulls[i])));
	ck_assert_str_eq(cJSON_GetObjectItem(env, "lease_id")->valuestring, "");
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(env, "renewable")));
	ck_assert_int_eq(cJSON_GetObjectItem(env, "lease_duration")->valueint, 0);
	ck_assert_uint_eq(strlen(cJSON_GetObjectItem(env, "request_id")->valuestring), 36);
	const cJSON *wi = cJSON_GetObjectItem(env, "wrap_info");
	ck_assert_str_eq(cJSON_GetObjectItem(wi, "token")->valuestring, "t");
	cJSON_Delete(env);
}
END_TEST

/* A table without cubbyhole/ (an older data dir) gets one in memory, with the same uuid,
 * accessor and storage prefix on every node and at every unseal of the same cluster. */
START_TEST(test_required_mount_added_deterministically)
{
	cs_backend_register(&cs_cubbyhole_backend);
	cs_sys_require_mount("cubbyhole/", "cubbyhole", "per-token private secret storage");
	ck_assert(cs_sys_mount_required("cubbyhole/"));
	ck_assert(!cs_sys_mount_required("secret/"));

	static struct cs_core a, b, c;
	struct cs_core *cores[] = {&a, &b, &c};
	for (int i = 0; i < 3; i++) {
		cs_router_init(&cores[i]->router);
		strcpy(cores[i]->cluster_id, i < 2 ? "11111111-2222-3333-4444-555555555555"
						   : "99999999-2222-3333-4444-555555555555");
		ck_assert_int_eq(cs_sys_add_required_mounts(cores[i], NULL), 0);
		ck_assert_uint_eq(cores[i]->router.n, 1);
	}
	struct cs_mount *ma = cs_router_get(&a.router, "cubbyhole/");
	struct cs_mount *mb = cs_router_get(&b.router, "cubbyhole/");
	struct cs_mount *mc = cs_router_get(&c.router, "cubbyhole/");
	ck_assert_ptr_nonnull(ma);
	ck_assert_ptr_eq(ma->backend, &cs_cubbyhole_backend);
	ck_assert(ma->local);
	ck_assert_str_eq(ma->type, "cubbyhole");
	ck_assert_str_eq(ma->uuid, mb->uuid);
	ck_assert_str_eq(ma->accessor, mb->accessor);
	ck_assert_str_eq(ma->storage_prefix, mb->storage_prefix);
	ck_assert_str_ne(ma->uuid, mc->uuid);
	ck_assert_uint_eq(strlen(ma->uuid), 36);
	ck_assert(strncmp(ma->accessor, "cubbyhole_", 10) == 0);
	char want[64];
	snprintf(want, sizeof want, "logical/%s/", ma->uuid);
	ck_assert_str_eq(ma->storage_prefix, want);
	/* Idempotent: present mounts are left alone. */
	ck_assert_int_eq(cs_sys_add_required_mounts(&a, NULL), 0);
	ck_assert_uint_eq(a.router.n, 1);
	for (int i = 0; i < 3; i++)
		cs_router_clear(&cores[i]->router);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wrap");
	TCase *tc = tcase_create("wrap");
	tcase_add_test(tc, test_parse_ttl);
	tcase_add_test(tc, test_wrap_info_json);
	tcase_add_test(tc, test_wrap_envelope);
	tcase_add_test(tc, test_required_mount_added_deterministically);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
