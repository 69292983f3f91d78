/*
 * The expiration manager on a real loop and real storage: leases revoked in expiry order,
 * renewed leases kept, thousands of due leases revoked in bounded batches while the loop
 * keeps turning, state rebuilt from storage, stop/reset dropping everything.
 */
#include "token_fixture.h"

static uv_timer_t stop_timer;
static uv_check_t check;
static uint64_t loop_turns;

static void stop_cb(uv_timer_t *t)
{
	uv_stop(t->loop);
}

static void check_cb(uv_check_t *c)
{
	(void)c;
	loop_turns++;
}

/* Run the loop for `ms` milliseconds of wall time. */
static void run_for(uint64_t ms)
{
	uv_timer_init(&loop, &stop_timer);
	uv_timer_start(&stop_timer, stop_cb, ms, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&stop_timer, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
}

static double now_s(void)
{
	return (double)cs_now_ns() / 1e9;
}

static bool lease_exists(const char *id)
{
	struct cs_txn t;
	cs_txn_begin(&t, &core.st, core.kr);
	char key[600];
	snprintf(key, sizeof key, "%s%s", CS_EXPIRE_PREFIX, id);
	struct cs_buf b = CS_BUF_INIT;
	int rc = cs_txn_get(&t, key, &b);
	cs_buf_free(&b);
	cs_txn_abort(&t);
	return rc == 0;
}

static void put_lease(const char *id, double expire)
{
	struct cs_txn t;
	cs_txn_begin(&t, &core.st, core.kr);
	ck_assert_int_eq(cs_expire_put(&t, id, "test/creds", now_s(), expire, true, NULL), 0);
	ck_assert_int_eq(commit_sync(&t), 0);
}

START_TEST(test_order)
{
	double n = now_s();
	put_lease("test/creds/late", n + 1.6);
	put_lease("test/creds/early", n + 0.3);
	put_lease("test/creds/far", n + 3600);
	ck_assert(!cs_expire_running(&core));
	ck_assert_int_eq(cs_expire_start(&core), 0);
	ck_assert(cs_expire_running(&core));
	ck_assert_uint_eq(cs_expire_pending(&core), 3);
	int64_t next = cs_expire_next_ms(&core);
	ck_assert_int_ge(next, (int64_t)((n + 0.25) * 1000));
	ck_assert_int_le(next, (int64_t)((n + 0.35) * 1000));
	run_for(900);
	ck_assert(!lease_exists("test/creds/early"));
	ck_assert(lease_exists("test/creds/late"));
	ck_assert(lease_exists("test/creds/far"));
	run_for(1300);
	ck_assert(!lease_exists("test/creds/late"));
	ck_assert(lease_exists("test/creds/far"));
	ck_assert_uint_eq(cs_expire_revoked_count(&core), 2);
	ck_assert_uint_eq(cs_expire_pending(&core), 1);
}
END_TEST

START_TEST(test_renewed_lease_kept)
{
	ck_assert_int_eq(cs_expire_start(&core), 0);
	put_lease("test/creds/r", now_s() + 0.3);
	/* Renewal rewrites the record with a later expiry; the early hint stays in the heap
	 * and must be recognised as stale. */
	put_lease("test/creds/r", now_s() + 30);
	ck_assert_uint_eq(cs_expire_pending(&core), 2);
	run_for(800);
	ck_assert(lease_exists("test/creds/r"));
	ck_assert_uint_eq(cs_expire_pending(&core), 1);
	ck_assert_uint_eq(cs_expire_revoked_count(&core), 0);
}
END_TEST

START_TEST(test_batches_do_not_block)
{
	enum { N = 1000 };
	/* Tokens with a 1 s TTL: created through the real handler, children of one parent
	 * every tenth, so tree revocation and lease expiry meet. */
	static char tok[N][160];
	for (int i = 0; i < N; i++)
		create_as(root_token, "create", "{\"policies\":[\"p\"],\"ttl\":1}", tok[i], 160);
	ck_assert_uint_eq(count_keys("sys/expire/id/"), N);
	/* Every lease due at once when the manager starts (as on a slow machine, or after a
	 * long outage): the batches must still let the loop turn between them. */
	usleep(1100 * 1000);
	/* Started after the writes: the heap is rebuilt from storage, as after a restart. */
	ck_assert_int_eq(cs_expire_start(&core), 0);
	ck_assert_uint_eq(cs_expire_pending(&core), N);
	uint64_t ws_before = core.st.writesets_committed;
	uv_check_init(&loop, &check);
	uv_check_start(&check, check_cb);
	loop_turns = 0;
	for (int i = 0; i < 40 && cs_expire_revoked_count(&core) < N; i++)
		run_for(100);
	uv_close((uv_handle_t *)&check, NULL);
	ck_assert_uint_eq(cs_expire_revoked_count(&core), N);
	uint64_t batches = core.st.writesets_committed - ws_before;
	/* ceil(1000 / 256) = 4 transactions at least, never one giant one */
	ck_assert_uint_ge(batches, (N + CS_EXPIRE_BATCH - 1) / CS_EXPIRE_BATCH);
	/* the loop went round between batches */
	ck_assert_uint_ge(loop_turns, batches);
	ck_assert_uint_eq(count_keys("sys/expire/id/"), 0);
	ck_assert_uint_eq(count_keys("sys/token/id/"), 1); /* root */
	ck_assert_uint_eq(count_keys("sys/token/accessor/"), 1);
	ck_assert(!token_exists(tok[0]));
	ck_assert(!token_exists(tok[N - 1]));
}
END_TEST

START_TEST(test_stop_and_reset)
{
	put_lease("test/creds/a", now_s() + 3600);
	ck_assert_int_eq(cs_expire_start(&core), 0);
	ck_assert_uint_eq(cs_expire_pending(&core), 1);
	cs_expire_stop(&core);
	ck_assert(!cs_expire_running(&core));
	ck_assert_uint_eq(cs_expire_pending(&core), 0);
	/* scheduling while stopped is a no-op */
	cs_expire_schedule(&core, "test/creds/x", 1);
	ck_assert_uint_eq(cs_expire_pending(&core), 0);
	/* a reset on an active, unsealed core restarts on the next loop turn */
	cs_expire_reset(&core);
	ck_assert(!cs_expire_running(&core));
	run_for(50);
	ck_assert(cs_expire_running(&core));
	ck_assert_uint_eq(cs_expire_pending(&core), 1);
	/* not active: reset stops and stays stopped */
	core.active = false;
	cs_expire_reset(&core);
	run_for(50);
	ck_assert(!cs_expire_running(&core));
	ck_assert_int_eq(cs_expire_start(&core), CS_ENOTACTIVE);
}
END_TEST

START_TEST(test_sys_leases_endpoints)
{
	char A[160];
	create_as(root_token, "create", "{\"policies\":[\"p\"],\"ttl\":600}", A, sizeof A);
	cJSON *e = entry_of(A);
	char lease[400];
	snprintf(lease, sizeof lease, "%s",
		 cJSON_GetObjectItemCaseSensitive(e, "lease_id")->valuestring);
	cJSON_Delete(e);
	ck_assert_int_eq(strncmp(lease, "auth/token/create/", 18), 0);
	int rc;
	char body[600];
	snprintf(body, sizeof body, "{\"lease_id\":\"%s\"}", lease);
	struct cs_request *r = call(CS_OP_UPDATE, "sys/leases/lookup", body, root_token, &rc);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(r->resp_data, "id")->valuestring, lease);
	int ttl = cJSON_GetObjectItemCaseSensitive(r->resp_data, "ttl")->valueint;
	ck_assert(ttl > 590 && ttl <= 600);
	req_free(r);
	r = call(CS_OP_LIST, "sys/leases/lookup/auth/token/create/", NULL, root_token, &rc);
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r->resp_data, "keys")),
			 1);
	req_free(r);
	/* token leases are renewed through auth/token */
	r = call(CS_OP_UPDATE, "sys/leases/renew", body, root_token, &rc);
	ck_assert_int_eq(rc, CS_EINVAL);
	req_free(r);
	r = call(CS_OP_UPDATE, "sys/leases/revoke-prefix/auth/token/", NULL, root_token, &rc);
	ck_assert_int_eq(rc, 0);
	req_free(r);
	ck_assert(!token_exists(A));
	r = call(CS_OP_UPDATE, "sys/leases/lookup", body, root_token, &rc);
	ck_assert_int_eq(rc, CS_EINVAL);
	req_free(r);
}
END_TEST

START_TEST(test_stale_hints_compacted)
{
	enum { N = 5000, DEL = 3000 };
	ck_assert_int_eq(cs_expire_start(&core), 0);
	struct cs_txn t;
	char id[64];
	cs_txn_begin(&t, &core.st, core.kr);
	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof id, "test/creds/%05d", i);
		ck_assert_int_eq(
		    cs_expire_put(&t, id, "test/creds", now_s(), now_s() + 3600, true, NULL), 0);
	}
	ck_assert_int_eq(commit_sync(&t), 0);
	ck_assert_uint_eq(cs_expire_pending(&core), N);
	cs_txn_begin(&t, &core.st, core.kr);
	for (int i = 0; i < DEL; i++) {
		snprintf(id, sizeof id, "test/creds/%05d", i);
		ck_assert_int_eq(cs_expire_delete(&t, id), 0);
	}
	ck_assert_int_eq(commit_sync(&t), 0);
	/* the deletes left stale hints; the rebuild runs on the next loop turn */
	ck_assert_uint_eq(cs_expire_pending(&core), N);
	run_for(50);
	ck_assert(cs_expire_running(&core));
	ck_assert_uint_eq(cs_expire_pending(&core), N - DEL);
}
END_TEST

static Suite *expire_suite(void)
{
	Suite *s = suite_create("expire");
	TCase *tc = tcase_create("manager");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_order);
	tcase_add_test(tc, test_renewed_lease_kept);
	tcase_add_test(tc, test_batches_do_not_block);
	tcase_add_test(tc, test_stop_and_reset);
	tcase_add_test(tc, test_sys_leases_endpoints);
	tcase_add_test(tc, test_stale_hints_compacted);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(expire_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
