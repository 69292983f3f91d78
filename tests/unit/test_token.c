/*
 * The token store over real storage: creation rules (policies, orphans, ids), tree
 * revocation, revoke-orphan, accessors, num_uses, expiry at lookup time, TTL arithmetic.
 */
#include "token_fixture.h"

#include "auth/tokenutil.h"

static const char *str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

START_TEST(test_ttl_arithmetic)
{
	/* default when no ttl; root policy exempt */
	ck_assert_int_eq(cs_token_create_ttl(0, 0, 0, 3600, 7200, false), 3600);
	ck_assert_int_eq(cs_token_create_ttl(0, 0, 0, 3600, 7200, true), 0);
	/* capped by the mount max */
	ck_assert_int_eq(cs_token_create_ttl(10000, 0, 0, 3600, 7200, false), 7200);
	/* explicit max wins when lower, also over the default */
	ck_assert_int_eq(cs_token_create_ttl(0, 0, 60, 3600, 7200, false), 60);
	ck_assert_int_eq(cs_token_create_ttl(100, 0, 60, 3600, 7200, false), 60);
	ck_assert_int_eq(cs_token_create_ttl(30, 0, 60, 3600, 7200, false), 30);
	/* periodic: the period, not capped by the mount max, but by explicit max */
	ck_assert_int_eq(cs_token_create_ttl(5, 9000, 0, 3600, 7200, false), 9000);
	ck_assert_int_eq(cs_token_create_ttl(5, 9000, 100, 3600, 7200, false), 100);

	/* renew: increment, else original ttl */
	ck_assert_int_eq(cs_token_renew_ttl(1000, 900, 50, 300, 0, 0, 0), 50);
	ck_assert_int_eq(cs_token_renew_ttl(1000, 900, 0, 300, 0, 0, 0), 300);
	/* never beyond issue + max ttl */
	ck_assert_int_eq(cs_token_renew_ttl(1000, 900, 500, 300, 0, 0, 400), 300);
	/* nor beyond issue + explicit max */
	ck_assert_int_eq(cs_token_renew_ttl(1000, 900, 500, 300, 0, 150, 0), 50);
	ck_assert_int_eq(cs_token_renew_ttl(1100, 900, 500, 300, 0, 150, 0), 0);
	/* periodic tokens renew to the period, past the mount max */
	ck_assert_int_eq(cs_token_renew_ttl(100000, 0, 5, 60, 60, 0, 400), 60);
}
END_TEST

START_TEST(test_create_lookup)
{
	char t[160];
	create_as(root_token, "create",
		  "{\"policies\":[\"Foo\",\"bar\"],\"ttl\":\"1h\",\"display_name\":\"my app\","
		  "\"meta\":{\"k\":\"v\"},\"num_uses\":3}",
		  t, sizeof t);
	ck_assert_int_eq(strncmp(t, "hvs.", 4), 0);
	ck_assert_uint_eq(strlen(t), 28);
	cJSON *e = entry_of(t);
	ck_assert_ptr_nonnull(e);
	char *pol = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(e, "policies"));
	ck_assert_str_eq(pol, "[\"bar\",\"default\",\"foo\"]");
	free(pol);
	ck_assert_str_eq(str(e, "display_name"), "token-my-app");
	ck_assert_str_eq(str(e, "path"), "auth/token/create");
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(e, "orphan")));
	ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(e, "creation_ttl")->valueint, 3600);
	/* The token itself is stored nowhere. */
	struct cs_txn tx;
	cs_txn_begin(&tx, &core.st, core.kr);
	struct cs_strv v = {0};
	ck_assert_int_eq(cs_txn_scan(&tx, "", &v), 0);
	for (size_t i = 0; i < v.n; i++) {
		ck_assert_ptr_null(strstr(v.v[i], t));
		struct cs_buf b = CS_BUF_INIT;
		if (cs_txn_get(&tx, v.v[i], &b) == 0) {
			cs_buf_putc(&b, '\0');
			ck_assert_ptr_null(strstr(b.data, t + 4));
		}
		cs_buf_free(&b);
	}
	cs_strv_free(&v);
	cs_txn_abort(&tx);

	/* lookup by value and by accessor */
	int rc;
	char body[256];
	snprintf(body, sizeof body, "{\"token\":\"%s\"}", t);
	struct cs_request *r = call(CS_OP_UPDATE, "lookup", body, root_token, &rc);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(str(r->resp_data, "id"), t);
	ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(r->resp_data, "num_uses")->valueint, 3);
	ck_assert_ptr_nonnull(str(r->resp_data, "expire_time"));
	req_free(r);
	snprintf(body, sizeof body, "{\"accessor\":\"%s\"}", str(e, "accessor"));
	r = call(CS_OP_UPDATE, "lookup-accessor", body, root_token, &rc);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(str(r->resp_data, "id"), "");
	ck_assert_str_eq(str(r->resp_data, "display_name"), "token-my-app");
	req_free(r);
	cJSON_Delete(e);
	/* unknown token */
	r = call(CS_OP_UPDATE, "lookup", "{\"token\":\"hvs.nope\"}", root_token, &rc);
	ck_assert_int_eq(rc, CS_EPERM);
	req_free(r);
}
END_TEST

START_TEST(test_policy_subset_and_privileges)
{
	char a[160], b[160];
	create_as(root_token, "create", "{\"policies\":[\"p1\",\"p2\"]}", a, sizeof a);
	/* child of a non-root token: subset only */
	int rc;
	struct cs_request *r = call(CS_OP_UPDATE, "create", "{\"policies\":[\"p3\"]}", a, &rc);
	ck_assert_int_eq(rc, CS_EINVAL);
	ck_assert_ptr_nonnull(strstr(r->errmsg, "subset"));
	req_free(r);
	create_as(a, "create", "{\"policies\":[\"p1\"]}", b, sizeof b);
	/* no policies → inherits the parent's */
	char c[160];
	create_as(a, "create", "{}", c, sizeof c);
	cJSON *e = entry_of(c);
	char *pol = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(e, "policies"));
	ck_assert_str_eq(pol, "[\"default\",\"p1\",\"p2\"]");
	free(pol);
	cJSON_Delete(e);
	/* orphan and custom id need root */
	r = call(CS_OP_UPDATE, "create", "{\"no_parent\":true}", a, &rc);
	ck_assert_int_eq(rc, CS_EINVAL);
	ck_assert_ptr_nonnull(strstr(r->errmsg, "orphan"));
	req_free(r);
	r = call(CS_OP_UPDATE, "create", "{\"id\":\"mine\"}", a, &rc);
	ck_assert_int_eq(rc, CS_EINVAL);
	req_free(r);
	/* root may */
	char d[160];
	create_as(root_token, "create", "{\"id\":\"custom-id\",\"no_parent\":true}", d, sizeof d);
	ck_assert_str_eq(d, "custom-id");
	e = entry_of(d);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "orphan")));
	cJSON_Delete(e);
	/* the same id twice is refused */
	r = call(CS_OP_UPDATE, "create", "{\"id\":\"custom-id\"}", root_token, &rc);
	ck_assert_int_eq(rc, CS_EINVAL);
	req_free(r);
	/* no_default_policy */
	create_as(root_token, "create", "{\"policies\":[\"x\"],\"no_default_policy\":true}", d,
		  sizeof d);
	e = entry_of(d);
	pol = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(e, "policies"));
	ck_assert_str_eq(pol, "[\"x\"]");
	free(pol);
	cJSON_Delete(e);
	/* batch tokens */
	create_as(root_token, "create", "{\"type\":\"batch\",\"policies\":[\"x\"]}", d, sizeof d);
	ck_assert_int_eq(strncmp(d, "hvb.", 4), 0);
	r = call(CS_OP_UPDATE, "create", "{}", d, &rc);
	ck_assert_int_eq(rc, CS_EINVAL);
	req_free(r);
}
END_TEST

START_TEST(test_tree_revocation)
{
	/* root → A → B → C, A → D, root → E */
	char A[160], B[160], C[160], D[160], E2[160];
	create_as(root_token, "create", "{\"policies\":[\"p\"]}", A, sizeof A);
	create_as(A, "create", "{}", B, sizeof B);
	create_as(B, "create", "{}", C, sizeof C);
	create_as(A, "create", "{}", D, sizeof D);
	create_as(root_token, "create", "{\"policies\":[\"p\"]}", E2, sizeof E2);
	size_t acc_before = count_keys("sys/token/accessor/");
	size_t leases_before = count_keys("sys/expire/id/");
	ck_assert_uint_eq(acc_before, 6);
	ck_assert_uint_eq(leases_before, 5);
	int rc;
	char body[256];
	snprintf(body, sizeof body, "{\"token\":\"%s\"}", A);
	struct cs_request *r = call(CS_OP_UPDATE, "revoke", body, root_token, &rc);
	ck_assert_int_eq(rc, 0);
	req_free(r);
	ck_assert(!token_exists(A));
	ck_assert(!token_exists(B));
	ck_assert(!token_exists(C));
	ck_assert(!token_exists(D));
	ck_assert(token_exists(E2));
	ck_assert(token_exists(root_token));
	ck_assert_uint_eq(count_keys("sys/token/accessor/"), 2);
	ck_assert_uint_eq(count_keys("sys/expire/id/"), 1);
	/* only root → E remains in the child index */
	ck_assert_uint_eq(count_keys("sys/token/parent/"), 1);
	ck_assert_uint_eq(count_keys("sys/token/id/"), 2);
}
END_TEST

START_TEST(test_revoke_orphan)
{
	char X[160], Y[160], Z[160];
	create_as(root_token, "create", "{\"policies\":[\"p\"]}", X, sizeof X);
	create_as(X, "create", "{}", Y, sizeof Y);
	create_as(Y, "create", "{}", Z, sizeof Z);
	int rc;
	char body[256];
	snprintf(body, sizeof body, "{\"token\":\"%s\"}", X);
	struct cs_request *r = call(CS_OP_UPDATE, "revoke-orphan", body, root_token, &rc);
	ck_assert_int_eq(rc, 0);
	req_free(r);
	ck_assert(!token_exists(X));
	cJSON *e = entry_of(Y);
	ck_assert_ptr_nonnull(e);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "orphan")));
	ck_assert_str_eq(str(e, "parent"), "");
	cJSON_Delete(e);
	ck_assert(token_exists(Z));
	/* Y still owns Z: revoking Y takes Z */
	snprintf(body, sizeof body, "{\"token\":\"%s\"}", Y);
	r = call(CS_OP_UPDATE, "revoke", body, root_token, &rc);
	ck_assert_int_eq(rc, 0);
	req_free(r);
	ck_assert(!token_exists(Z));
	ck_assert_uint_eq(count_keys("sys/token/parent/"), 0);
}
END_TEST

START_TEST(test_accessor_ops)
{
	char A[160];
	create_as(root_token, "create", "{\"policies\":[\"p\"],\"ttl\":600}", A, sizeof A);
	cJSON *e = entry_of(A);
	char acc[64];
	snprintf(acc, sizeof acc, "%s", str(e, "accessor"));
	cJSON_Delete(e);
	int rc;
	struct cs_request *r = call(CS_OP_LIST, "accessors", NULL, root_token, &rc);
	ck_assert_int_eq(rc, 0);
	char *keys = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(r->resp_data, "keys"));
	ck_assert_ptr_nonnull(strstr(keys, acc));
	free(keys);
	req_free(r);
	char body[256];
	snprintf(body, sizeof body, "{\"accessor\":\"%s\",\"increment\":\"20m\"}", acc);
	r = call(CS_OP_UPDATE, "renew-accessor", body, root_token, &rc);
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(r->resp_auth, "lease_duration")->valueint,
			 1200);
	ck_assert_str_eq(str(r->resp_auth, "client_token"), "");
	req_free(r);
	r = call(CS_OP_UPDATE, "revoke-accessor", body, root_token, &rc);
	ck_assert_int_eq(rc, 0);
	req_free(r);
	ck_assert(!token_exists(A));
	r = call(CS_OP_UPDATE, "lookup-accessor", body, root_token, &rc);
	ck_assert_int_eq(rc, CS_EINVAL);
	req_free(r);
}
END_TEST

START_TEST(test_num_uses)
{
	char A[160];
	create_as(root_token, "create", "{\"policies\":[\"p\"],\"num_uses\":2}", A, sizeof A);
	int rc;
	struct cs_request *r = call(CS_OP_READ, "lookup-self", NULL, A, &rc);
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(r->resp_data, "num_uses")->valueint, 1);
	req_free(r);
	ck_assert(token_exists(A));
	r = call(CS_OP_READ, "lookup-self", NULL, A, &rc);
	ck_assert_int_eq(rc, 0);
	req_free(r);
	/* the second use was the last: revoked with the request */
	ck_assert(!token_exists(A));
	ck_assert_uint_eq(count_keys("sys/token/id/"), 1);
	r = call(CS_OP_READ, "lookup-self", NULL, A, &rc);
	ck_assert_int_eq(rc, CS_EPERM);
	req_free(r);
}
END_TEST

START_TEST(test_expired_invalid_at_lookup)
{
	char A[160];
	create_as(root_token, "create", "{\"policies\":[\"p\"],\"ttl\":1}", A, sizeof A);
	ck_assert(token_exists(A));
	/* Backdate the stored entry instead of sleeping. */
	struct cs_txn t;
	cs_txn_begin(&t, &core.st, core.kr);
	char hex[65], key[128];
	ck_assert_int_eq(cs_token_key_of(&t, A, hex), 0);
	snprintf(key, sizeof key, "sys/token/id/%s", hex);
	cJSON *e = NULL; /* the stored record: compact (auth/record_codec.h) */
	ck_assert_int_eq(cs_tokenutil_txn_get_json(&t, key, &e), 0);
	cJSON_ReplaceItemInObjectCaseSensitive(e, "expire_time",
					       cJSON_CreateNumber((double)time(NULL) - 5));
	char *s = cJSON_PrintUnformatted(e);
	ck_assert_int_eq(cs_txn_put(&t, key, s, strlen(s)), 0);
	free(s);
	cJSON_Delete(e);
	ck_assert_int_eq(commit_sync(&t), 0);
	ck_assert(!token_exists(A));
	/* and it cannot be renewed back to life */
	int rc;
	char body[256];
	snprintf(body, sizeof body, "{\"token\":\"%s\"}", A);
	struct cs_request *r = call(CS_OP_UPDATE, "renew", body, root_token, &rc);
	ck_assert_int_eq(rc, CS_EPERM);
	req_free(r);
}
END_TEST

START_TEST(test_renew_rules)
{
	char A[160], B[160], P[160];
	create_as(root_token, "create",
		  "{\"policies\":[\"p\"],\"ttl\":100,\"explicit_max_ttl\":150}", A, sizeof A);
	int rc;
	char body[256];
	snprintf(body, sizeof body, "{\"token\":\"%s\",\"increment\":1000}", A);
	struct cs_request *r = call(CS_OP_UPDATE, "renew", body, root_token, &rc);
	ck_assert_int_eq(rc, 0);
	int ld = cJSON_GetObjectItemCaseSensitive(r->resp_auth, "lease_duration")->valueint;
	ck_assert_int_ge(ld, 148);
	ck_assert_int_le(ld, 150);
	req_free(r);
	create_as(root_token, "create", "{\"policies\":[\"p\"],\"renewable\":false}", B, sizeof B);
	snprintf(body, sizeof body, "{\"token\":\"%s\"}", B);
	r = call(CS_OP_UPDATE, "renew", body, root_token, &rc);
	ck_assert_int_eq(rc, CS_EINVAL);
	req_free(r);
	create_as(root_token, "create", "{\"policies\":[\"p\"],\"period\":\"2h\"}", P, sizeof P);
	r = call(CS_OP_UPDATE, "renew-self", "{\"increment\":5}", P, &rc);
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(r->resp_auth, "lease_duration")->valueint,
			 7200);
	req_free(r);
}
END_TEST

START_TEST(test_revoke_self_tree)
{
	char A[160], B[160];
	create_as(root_token, "create", "{\"policies\":[\"p\"]}", A, sizeof A);
	create_as(A, "create", "{}", B, sizeof B);
	int rc;
	struct cs_request *r = call(CS_OP_UPDATE, "revoke-self", NULL, A, &rc);
	ck_assert_int_eq(rc, 0);
	req_free(r);
	ck_assert(!token_exists(A));
	ck_assert(!token_exists(B));
}
END_TEST

START_TEST(test_tree_limit)
{
	/* Past the 4,096 tokens one transaction used to take: the revoke succeeds at once and
	 * the rest of the tree is left to the background (tests/unit/test_token_revoke.c). */
	char A[160], hex[65];
	create_as(root_token, "create", "{\"policies\":[\"p\"]}", A, sizeof A);
	struct cs_txn t;
	cs_txn_begin(&t, &core.st, core.kr);
	ck_assert_int_eq(cs_token_key_of(&t, A, hex), 0);
	/* Index entries are enough to make the tree bigger than one transaction. */
	for (int i = 0; i < 4096 + 1; i++) {
		char key[256];
		snprintf(key, sizeof key, "sys/token/parent/%s/%064d", hex, i);
		ck_assert_int_eq(cs_txn_put(&t, key, "{}", 2), 0);
	}
	ck_assert_int_eq(commit_sync(&t), 0);
	int rc;
	char body[256];
	snprintf(body, sizeof body, "{\"token\":\"%s\"}", A);
	struct cs_request *r = call(CS_OP_UPDATE, "revoke", body, root_token, &rc);
	ck_assert_int_eq(rc, 0);
	req_free(r);
	ck_assert(!token_exists(A));
	ck_assert_uint_gt(count_keys("sys/token/parent/"), 0);
	ck_assert_uint_eq(count_keys("sys/revoke/tree/"), 1);
}
END_TEST

static Suite *token_suite(void)
{
	Suite *s = suite_create("token");
	TCase *tc = tcase_create("store");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_ttl_arithmetic);
	tcase_add_test(tc, test_create_lookup);
	tcase_add_test(tc, test_policy_subset_and_privileges);
	tcase_add_test(tc, test_tree_revocation);
	tcase_add_test(tc, test_revoke_orphan);
	tcase_add_test(tc, test_accessor_ops);
	tcase_add_test(tc, test_num_uses);
	tcase_add_test(tc, test_expired_invalid_at_lookup);
	tcase_add_test(tc, test_renew_rules);
	tcase_add_test(tc, test_revoke_self_tree);
	tcase_add_test(tc, test_tree_limit);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(token_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
