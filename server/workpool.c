/* The low-priority pool for requests' slow work: see workpool.h. */
#include "server/workpool.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/log.h"

static void *thread_main(void *arg)
{
	struct cs_workpool *p = arg;
	/* Per-thread on Linux (the tid names the thread). Raising one's own nice value needs no
	 * privilege; failing it is harmless (the work still runs, only at normal priority). */
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), CS_WORKPOOL_NICE) != 0)
		cs_debug("workpool: setpriority: %s", strerror(errno));
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->todo_head && !p->stopping)
			pthread_cond_wait(&p->cv, &p->mu);
		if (!p->todo_head)
			break; /* stopping, nothing left */
		struct cs_work *w = p->todo_head;
		p->todo_head = w->next;
		if (!p->todo_head)
			p->todo_tail = NULL;
		pthread_mutex_unlock(&p->mu);
		w->work(w);
		pthread_mutex_lock(&p->mu);
		w->next = NULL;
		if (p->done_tail)
			p->done_tail->next = w;
		else
			p->done_head = w;
		p->done_tail = w;
		uv_async_send(&p->wake);
	}
	pthread_mutex_unlock(&p->mu);
	/* Free what OpenSSL keeps per thread (its DRBGs, error queue): the thread ends here,
	 * and OpenSSL 3.0 does not always do it by itself at thread exit. */
	OPENSSL_thread_stop();
	return NULL;
}

static void on_wake(uv_async_t *h)
{
	struct cs_workpool *p = h->data;
	pthread_mutex_lock(&p->mu);
	struct cs_work *w = p->done_head;
	p->done_head = p->done_tail = NULL;
	pthread_mutex_unlock(&p->mu);
	while (w) {
		struct cs_work *next = w->next;
		if (--p->in_flight == 0)
			uv_unref((uv_handle_t *)&p->wake);
		w->done(w); /* may submit more work, or free w */
		w = next;
	}
}

int cs_workpool_init(struct cs_workpool *p, uv_loop_t *loop, int n_threads)
{
	*p = (struct cs_workpool){.loop = loop, .n_threads = n_threads > 0 ? n_threads : 1};
	p->threads = calloc((size_t)p->n_threads, sizeof *p->threads);
	if (!p->threads)
		return CS_ENOMEM;
	if (uv_async_init(loop, &p->wake, on_wake)) {
		free(p->threads);
		p->threads = NULL;
		return CS_EINTERNAL;
	}
	p->wake.data = p;
	uv_unref((uv_handle_t *)&p->wake);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	return 0;
}

int cs_workpool_submit(struct cs_workpool *p, struct cs_work *w)
{
	if (p->closed || p->stopping)
		return CS_ESHUTDOWN;
	if (p->started < p->n_threads && p->in_flight >= (unsigned)p->started) {
		/* Every started thread is (or will be) busy: start one more. */
		if (pthread_create(&p->threads[p->started], NULL, thread_main, p) != 0) {
			if (p->started == 0)
				return CS_EINTERNAL;
		} else {
			p->started++;
		}
	}
	w->next = NULL;
	pthread_mutex_lock(&p->mu);
	if (p->todo_tail)
		p->todo_tail->next = w;
	else
		p->todo_head = w;
	p->todo_tail = w;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	if (p->in_flight++ == 0)
		uv_ref((uv_handle_t *)&p->wake);
	return 0;
}

void cs_workpool_close(struct cs_workpool *p)
{
	if (p->closed || !p->threads)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->started; i++)
		pthread_join(p->threads[i], NULL);
	free(p->threads);
	p->threads = NULL;
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	p->closed = true;
	uv_close((uv_handle_t *)&p->wake, NULL);
}
