/* Unit tests for server/workpool.c: the low-priority pool behind cs_req_defer. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/util.h"
#include "server/workpool.h"

struct job {
	struct cs_work w;
	struct cs_workpool *pool;
	int nice_seen;     /* the thread's nice value while the work ran */
	int chain;         /* done resubmits the job this many more times */
	bool done_on_loop; /* done ran on the loop (main) thread */
	int *done_count;
};

static pthread_t main_thread;
static atomic_int running, max_running;

static void job_work(struct cs_work *w)
{
	struct job *j = CS_CONTAINER_OF(w, struct job, w);
	int now = atomic_fetch_add(&running, 1) + 1;
	int seen = atomic_load(&max_running);
	while (now > seen && !atomic_compare_exchange_weak(&max_running, &seen, now))
		;
	j->nice_seen = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
	usleep(2000);
	atomic_fetch_sub(&running, 1);
}

static void job_done(struct cs_work *w)
{
	struct job *j = CS_CONTAINER_OF(w, struct job, w);
	j->done_on_loop = pthread_equal(pthread_self(), main_thread);
	(*j->done_count)++;
	if (j->chain-- > 0)
		ck_assert_int_eq(cs_workpool_submit(j->pool, &j->w), 0);
}

START_TEST(test_jobs_run_at_low_priority_and_finish_on_the_loop)
{
	main_thread = pthread_self();
	atomic_store(&running, 0);
	atomic_store(&max_running, 0);
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct cs_workpool pool;
	ck_assert_int_eq(cs_workpool_init(&pool, &loop, 3), 0);
	int base = getpriority(PRIO_PROCESS, 0);
	enum { N = 24 };
	struct job jobs[N];
	int done = 0;
	for (int i = 0; i < N; i++) {
		jobs[i] = (struct job){.w = {.work = job_work, .done = job_done},
				       .pool = &pool,
				       .done_count = &done,
				       .chain = i % 2};
		ck_assert_int_eq(cs_workpool_submit(&pool, &jobs[i].w), 0);
	}
	/* The pool holds the loop open exactly while jobs are in it: uv_run returns when the
	 * last done (including the resubmitted ones) has run. */
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(done, N + N / 2);
	ck_assert_int_le(atomic_load(&max_running), 3);
	ck_assert_int_ge(pool.started, 1);
	ck_assert_int_le(pool.started, 3);
	int expect = base + CS_WORKPOOL_NICE > 19 ? 19 : base + CS_WORKPOOL_NICE;
	for (int i = 0; i < N; i++) {
		ck_assert(jobs[i].done_on_loop);
		ck_assert_int_eq(jobs[i].nice_seen, expect);
	}
	/* The loop thread itself keeps its priority. */
	ck_assert_int_eq(getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid)), base);
	cs_workpool_close(&pool);
	ck_assert_int_eq(cs_workpool_submit(&pool, &jobs[0].w), CS_ESHUTDOWN);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(test_idle_pool_starts_no_thread_and_closes)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct cs_workpool pool;
	ck_assert_int_eq(cs_workpool_init(&pool, &loop, 4), 0);
	/* An idle pool does not keep the loop alive. */
	ck_assert_int_eq(uv_run(&loop, UV_RUN_NOWAIT), 0);
	ck_assert_int_eq(pool.started, 0);
	cs_workpool_close(&pool);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("workpool");
	TCase *tc = tcase_create("pool");
	tcase_add_test(tc, test_jobs_run_at_low_priority_and_finish_on_the_loop);
	tcase_add_test(tc, test_idle_pool_starts_no_thread_and_closes);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
