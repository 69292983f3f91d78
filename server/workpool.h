/*
 * The pool that runs requests' slow work (cs_req_defer): RSA key generation and
 * signing, password KDFs, large transit batches, PGP.
 *
 * Why not libuv's own pool: its threads run at the loop thread's priority and also serve
 * c-raft's disk work, so four RSA-4096 key generations on a 2-core machine take CPU from
 * the loop thread in equal shares and every KV read waits behind them (a 15x p99 in
 * tests/bench/transit_bench.sh). These threads lower their own priority (nice +10) once,
 * at start: on an idle machine they run as fast as before, and under load the scheduler
 * hands the loop thread the CPU first, which is what keeps cheap requests fast.
 *
 * Jobs are submitted on the loop thread; `work` runs on a pool thread; `done` runs on
 * the loop thread afterwards. The pool keeps the loop alive only while jobs are in it.
 */
#ifndef CS_SERVER_WORKPOOL_H
#define CS_SERVER_WORKPOOL_H

#include <pthread.h>
#include <stdbool.h>
#include <uv.h>

/* The nice value pool threads run at (relative to the process's). */
#define CS_WORKPOOL_NICE 10

struct cs_work;
typedef void (*cs_work_fn)(struct cs_work *w);

struct cs_work {
	cs_work_fn work;      /* pool thread */
	cs_work_fn done;      /* loop thread, after work */
	struct cs_work *next; /* private to the pool */
};

struct cs_workpool {
	uv_loop_t *loop;
	uv_async_t wake; /* pool threads → loop: finished jobs are waiting */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct cs_work *todo_head, *todo_tail;
	struct cs_work *done_head, *done_tail;
	pthread_t *threads;
	int n_threads, started;
	unsigned in_flight; /* submitted, done not yet called: loop thread only */
	bool stopping, closed;
};

/* Loop thread. Threads start with the first job. Returns 0 or CS_ENOMEM/CS_EINTERNAL. */
int cs_workpool_init(struct cs_workpool *p, uv_loop_t *loop, int n_threads);
/* Loop thread: queue a job; its done runs later on the loop thread. */
int cs_workpool_submit(struct cs_workpool *p, struct cs_work *w);
/* Loop thread, when no job is in flight (the core waits for its jobs first): stop and
 * join the threads, close the loop handle. */
void cs_workpool_close(struct cs_workpool *p);

#endif
