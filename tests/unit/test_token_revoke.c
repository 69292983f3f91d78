/*
 * Revocation of any size (auth/token_revoke.h): the tree is dead at the ack, storage is
 * cleaned in bounded steps that resume from storage alone (after an aborted step, after
 * the in-memory state was dropped), revoke-orphan of many children, revoke-prefix as a
 * job, the chain-depth cap, tidy leaving a job's index alone, and the real worker on the
 * loop draining a job in several batches.
 */
#include "auth/token_revoke.h"
#include "token_fixture.h"

static const char *str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : "";
}

static size_t pending(void)
{
	struct cs_txn t;
	cs_txn_begin(&t, &core.st, core.kr);
	size_t n = cs_revq_pending(&t);
	cs_txn_abort(&t);
	return n;
}

/* Run background steps of at most `writes` writes until nothing is pending; returns the
 * number of committed steps. */
static size_t drain(size_t writes)
{
	size_t steps = 0;
	for (;;) {
		struct cs_txn t;
		cs_txn_begin(&t, &core.st, core.kr);
		bool more = false;
		ck_assert_int_eq(cs_revq_step(&t, writes, &more), 0);
		ck_assert_uint_le(t.ws.n, writes + 16); /* one token's records of slack */
		bool wrote = t.ws.n > 0;
		ck_assert_int_eq(commit_sync(&t), 0);
		steps += wrote;
		if (!more)
			break;
		ck_assert_uint_lt(steps, 10000);
	}
	return steps;
}

static void revoke_as_root(const char *rel, const char *token)
{
	int rc;
	char body[256];
	snprintf(body, sizeof body, "{\"token\":\"%s\"}", token);
	struct cs_request *r = call(CS_OP_UPDATE, rel, body, root_token, &rc);
	ck_assert_msg(rc == 0, "%s: %d %s", rel, rc, r->errmsg ? r->errmsg : "");
	req_free(r);
}

/* root → A → kids[n] (each kid with `grand` children of its own). */
static void make_tree(char *A, size_t n, size_t grand, char kids[][160], char *lastgrand)
{
	create_as(root_token, "create", "{\"policies\":[\"p\"]}", A, 160);
	for (size_t i = 0; i < n; i++) {
		create_as(A, "create", "{}", kids[i], 160);
		for (size_t j = 0; j < grand; j++)
			create_as(kids[i], "create", "{}", lastgrand, 160);
	}
}

static char kids[400][160];

START_TEST(test_tree_dead_at_ack_cleaned_in_steps)
{
	char A[160], G[160];
	make_tree(A, 300, 2, kids, G); /* 1 + 300 + 600 tokens */
	ck_assert_uint_eq(count_keys("sys/token/id/"), 902);
	revoke_as_root("revoke", A);
	/* Dead at once, every one of them, before any cleanup. */
	ck_assert(!token_exists(A));
	for (size_t i = 0; i < 300; i++)
		ck_assert(!token_exists(kids[i]));
	ck_assert(!token_exists(G));
	ck_assert(token_exists(root_token));
	ck_assert_uint_eq(pending(), 1);
	ck_assert_uint_gt(count_keys("sys/token/id/"), 2);
	/* Bounded steps: many of them, each within its budget (drain checks). */
	size_t steps = drain(100);
	ck_assert_uint_ge(steps, 20);
	ck_assert_uint_eq(pending(), 0);
	ck_assert_uint_eq(count_keys("sys/token/id/"), 1);
	ck_assert_uint_eq(count_keys("sys/token/accessor/"), 1);
	ck_assert_uint_eq(count_keys("sys/token/parent/"), 0);
	ck_assert_uint_eq(count_keys("sys/expire/id/"), 0);
	ck_assert_uint_eq(count_keys("sys/revoke/"), 0);
}
END_TEST

START_TEST(test_resume_from_storage)
{
	char A[160], G[160];
	make_tree(A, 200, 1, kids, G);
	revoke_as_root("revoke", A);
	size_t before = count_keys("sys/token/id/");
	/* A step whose transaction never commits changes nothing... */
	struct cs_txn t;
	cs_txn_begin(&t, &core.st, core.kr);
	bool more = false;
	ck_assert_int_eq(cs_revq_step(&t, 100, &more), 0);
	ck_assert(more);
	cs_txn_abort(&t);
	ck_assert_uint_eq(count_keys("sys/token/id/"), before);
	/* ...two committed steps make progress... */
	for (int i = 0; i < 2; i++) {
		cs_txn_begin(&t, &core.st, core.kr);
		ck_assert_int_eq(cs_revq_step(&t, 100, &more), 0);
		ck_assert_int_eq(commit_sync(&t), 0);
	}
	size_t mid = count_keys("sys/token/id/");
	ck_assert_uint_lt(mid, before);
	ck_assert_uint_gt(mid, 1);
	/* ...and after every in-memory state is dropped (seal, leader change), the job is
	 * finished from what storage holds. */
	cs_backend_reset_all(&core);
	ck_assert(!token_exists(G));
	drain(CS_REVQ_BATCH_WRITES);
	ck_assert_uint_eq(count_keys("sys/token/id/"), 1);
	ck_assert_uint_eq(count_keys("sys/token/parent/"), 0);
}
END_TEST

START_TEST(test_revoke_orphan_many)
{
	char X[160], G[160];
	make_tree(X, 150, 1, kids, G);
	revoke_as_root("revoke-orphan", X);
	ck_assert(!token_exists(X));
	/* The children live on at once (orphaning in progress), and so do theirs. */
	for (size_t i = 0; i < 150; i++)
		ck_assert(token_exists(kids[i]));
	ck_assert(token_exists(G));
	ck_assert_uint_eq(pending(), 1);
	drain(50);
	for (size_t i = 0; i < 150; i++) {
		cJSON *e = entry_of(kids[i]);
		ck_assert_ptr_nonnull(e);
		ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "orphan")));
		ck_assert_str_eq(str(e, "parent"), "");
		cJSON_Delete(e);
	}
	/* only each child → its own child remains in the index */
	ck_assert_uint_eq(count_keys("sys/token/parent/"), 150);
	ck_assert_uint_eq(count_keys("sys/revoke/"), 0);
	ck_assert(token_exists(G));
}
END_TEST

START_TEST(test_revoke_prefix_job)
{
	for (size_t i = 0; i < 300; i++)
		create_as(root_token, "create", "{\"policies\":[\"p\"]}", kids[i], 160);
	ck_assert_uint_eq(count_keys("sys/expire/id/"), 300);
	int rc;
	struct cs_request *r = call(CS_OP_UPDATE, "sys/leases/revoke-prefix/auth/token/create",
				    "{\"sync\":false}", root_token, &rc);
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(r->status, 202);
	req_free(r);
	for (size_t i = 0; i < 300; i++)
		ck_assert(!token_exists(kids[i]));
	ck_assert(token_exists(root_token)); /* no lease: not under the prefix */
	ck_assert_uint_eq(pending(), 1);
	drain(200);
	ck_assert_uint_eq(count_keys("sys/expire/id/"), 0);
	ck_assert_uint_eq(count_keys("sys/token/id/"), 1);
	ck_assert_uint_eq(count_keys("sys/revoke/"), 0);
	/* A token created once the job is gone is not affected by it. */
	char N[160];
	create_as(root_token, "create", "{\"policies\":[\"p\"]}", N, sizeof N);
	ck_assert(token_exists(N));
}
END_TEST

START_TEST(test_small_revocations_finish_in_the_ack)
{
	char A[160], G[160];
	make_tree(A, 10, 1, kids, G);
	revoke_as_root("revoke", A);
	ck_assert_uint_eq(pending(), 0);
	ck_assert_uint_eq(count_keys("sys/token/id/"), 1);
	ck_assert_uint_eq(count_keys("sys/token/parent/"), 0);
}
END_TEST

START_TEST(test_chain_depth_capped)
{
	char cur[160], next[160], first[160];
	snprintf(cur, sizeof cur, "%s", root_token);
	/* root has no parent; each child adds one ancestor */
	for (int d = 0; d < CS_TOKEN_CHAIN_MAX; d++) {
		create_as(cur, "create", d == 0 ? "{\"policies\":[\"p\"]}" : "{}", next,
			  sizeof next);
		if (d == 0)
			snprintf(first, sizeof first, "%s", next);
		snprintf(cur, sizeof cur, "%s", next);
	}
	ck_assert(token_exists(cur));
	int rc;
	struct cs_request *r = call(CS_OP_UPDATE, "create", "{}", cur, &rc);
	ck_assert_int_eq(rc, CS_EINVAL);
	ck_assert_ptr_nonnull(strstr(r->errmsg, "too deep"));
	req_free(r);
	/* The deepest one dies with the first of the chain, at the ack. */
	revoke_as_root("revoke", first);
	ck_assert(!token_exists(cur));
	drain(CS_REVQ_BATCH_WRITES);
	ck_assert_uint_eq(count_keys("sys/token/id/"), 1);
}
END_TEST

START_TEST(test_tidy_keeps_a_job_index)
{
	char A[160], G[160];
	make_tree(A, 200, 1, kids, G);
	revoke_as_root("revoke", A);
	ck_assert_uint_eq(pending(), 1);
	int rc;
	struct cs_request *r = call(CS_OP_UPDATE, "tidy", NULL, root_token, &rc);
	ck_assert_int_eq(rc, 0);
	req_free(r);
	drain(CS_REVQ_BATCH_WRITES);
	/* had tidy dropped A's links, the children would stay in storage forever */
	ck_assert_uint_eq(count_keys("sys/token/id/"), 1);
	ck_assert_uint_eq(count_keys("sys/token/accessor/"), 1);
}
END_TEST

static void stop_cb(uv_timer_t *t)
{
	uv_stop(t->loop);
}

START_TEST(test_worker_drains_on_the_loop)
{
	char A[160], G[160];
	make_tree(A, 300, 3, kids, G); /* 1,201 tokens: several worker batches */
	revoke_as_root("revoke", A);
	ck_assert(!token_exists(G));
	uint64_t b0 = cs_revq_batches(&core);
	uv_timer_t guard;
	uv_timer_init(&loop, &guard);
	for (int i = 0; i < 2000 && pending(); i++) {
		uv_timer_start(&guard, stop_cb, 20, 0);
		uv_run(&loop, UV_RUN_DEFAULT);
	}
	uv_close((uv_handle_t *)&guard, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	ck_assert_uint_eq(pending(), 0);
	ck_assert_uint_ge(cs_revq_batches(&core) - b0, 2);
	ck_assert_uint_eq(count_keys("sys/token/id/"), 1);
	ck_assert_uint_eq(count_keys("sys/expire/id/"), 0);
}
END_TEST

static Suite *revoke_suite(void)
{
	Suite *s = suite_create("token_revoke");
	TCase *tc = tcase_create("revoke");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_tree_dead_at_ack_cleaned_in_steps);
	tcase_add_test(tc, test_resume_from_storage);
	tcase_add_test(tc, test_revoke_orphan_many);
	tcase_add_test(tc, test_revoke_prefix_job);
	tcase_add_test(tc, test_small_revocations_finish_in_the_ack);
	tcase_add_test(tc, test_chain_depth_capped);
	tcase_add_test(tc, test_tidy_keeps_a_job_index);
	tcase_add_test(tc, test_worker_drains_on_the_loop);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(revoke_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
