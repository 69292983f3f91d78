/*
 * Request-body spool (contract in spool.h).
 *
 * One writer thread per spool. The loop appends to `pending` under the mutex and
 * signals; the thread swaps `pending` with its own `writing` buffer, writes it without
 * the lock, then reports through the uv_async_t. Memory stays bounded because the owner
 * stops feeding above CS_SPOOL_HIGH queued bytes. Closing sets `quit`: the thread ends
 * after its current batch and the async callback joins it (at once: it has ended) and
 * closes the handle, whose close callback frees the spool (pattern 3 of STYLE.md).
 */
#include "server/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/util.h"

struct cs_spool {
	uv_async_t async;
	uv_thread_t thread;
	uv_mutex_t mu;
	uv_cond_t cv;
	int fd;
	int reserve_percent;
	void (*wake)(void *ctx); /* NULL once closed */
	void *ctx;
	/* under mu */
	struct cs_buf pending;
	uint64_t queued; /* pending + the batch being written */
	uint64_t written;
	int err;
	bool quit;
	bool thread_done;
	/* thread only */
	struct cs_buf writing;
	/* loop only */
	bool joined;
	bool taken;
};

bool cs_spool_room(uint64_t avail, uint64_t total, int reserve_percent, uint64_t need)
{
	if (reserve_percent <= 0)
		return true;
	uint64_t reserve =
	    total / 100 * (uint64_t)reserve_percent + total % 100 * (uint64_t)reserve_percent / 100;
	return avail >= reserve && avail - reserve >= need;
}

/* 0 if `need` more bytes fit above the reserve of the volume holding fd (or dir). */
static int check_room(int fd, const char *dir, int reserve_percent, uint64_t need)
{
	if (reserve_percent <= 0)
		return 0;
	struct statvfs sv;
	if ((dir ? statvfs(dir, &sv) : fstatvfs(fd, &sv)) != 0)
		return errno;
	uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	uint64_t total = (uint64_t)sv.f_blocks * sv.f_frsize;
	return cs_spool_room(avail, total, reserve_percent, need) ? 0 : ENOSPC;
}

int cs_spool_check_room(const char *dir, int reserve_percent, uint64_t need)
{
	return check_room(-1, dir, reserve_percent, need);
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		if (n == 0)
			return ENOSPC; /* no progress and no error: treat like a full disk */
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void writer_main(void *arg)
{
	struct cs_spool *s = arg;
	uv_mutex_lock(&s->mu);
	for (;;) {
		while (!s->quit && s->pending.len == 0)
			uv_cond_wait(&s->cv, &s->mu);
		if (s->quit)
			break;
		struct cs_buf t = s->writing;
		s->writing = s->pending;
		s->pending = t;
		int err = s->err;
		uv_mutex_unlock(&s->mu);

		size_t n = s->writing.len;
		if (!err)
			err = check_room(s->fd, NULL, s->reserve_percent, n);
		if (!err)
			err = write_all(s->fd, s->writing.data, n);
		/* Uploads are ciphertext today, but the spool is generic: wipe what it held. */
		cs_zero(s->writing.data, n);
		s->writing.len = 0;

		uv_mutex_lock(&s->mu);
		s->queued -= n;
		if (!err)
			s->written += n;
		else if (!s->err)
			s->err = err;
		uv_mutex_unlock(&s->mu);
		uv_async_send(&s->async);
		uv_mutex_lock(&s->mu);
	}
	s->thread_done = true;
	uv_mutex_unlock(&s->mu);
	uv_async_send(&s->async);
}

static void spool_free(uv_handle_t *h)
{
	struct cs_spool *s = CS_CONTAINER_OF((uv_async_t *)h, struct cs_spool, async);
	if (s->fd >= 0 && !s->taken)
		close(s->fd);
	cs_buf_free_secure(&s->pending);
	cs_buf_free_secure(&s->writing);
	uv_cond_destroy(&s->cv);
	uv_mutex_destroy(&s->mu);
	free(s);
}

static void on_async(uv_async_t *a)
{
	struct cs_spool *s = CS_CONTAINER_OF(a, struct cs_spool, async);
	if (s->joined)
		return;
	uv_mutex_lock(&s->mu);
	bool done = s->thread_done;
	uv_mutex_unlock(&s->mu);
	if (done) {
		/* Only after cs_spool_close: the thread has returned, the join is immediate. */
		uv_thread_join(&s->thread);
		s->joined = true;
		uv_close((uv_handle_t *)&s->async, spool_free);
		return;
	}
	if (s->wake)
		s->wake(s->ctx);
}

/* An anonymous file: unlinked from the start (O_TMPFILE), or right after creation where
 * the filesystem lacks O_TMPFILE, so a crash leaves nothing behind. */
static int open_tmp(const char *dir)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd;
	char path[4096];
	if ((size_t)snprintf(path, sizeof path, "%s/.custos-body-XXXXXX", dir) >= sizeof path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = mkostemp(path, O_CLOEXEC);
	if (fd >= 0)
		unlink(path);
	return fd;
}

int cs_spool_open(uv_loop_t *loop, const char *dir, int reserve_percent, uint64_t expect,
		  void (*wake)(void *ctx), void *ctx, struct cs_spool **out)
{
	*out = NULL;
	/* Metadata calls on the loop thread (no data is written here): the answer must
	 * come before the first body byte is read. */
	int e = check_room(-1, dir, reserve_percent, expect);
	if (e)
		return e;
	int fd = open_tmp(dir);
	if (fd < 0)
		return errno;
	struct cs_spool *s = calloc(1, sizeof *s);
	if (!s)
		abort();
	s->fd = fd;
	s->reserve_percent = reserve_percent;
	s->wake = wake;
	s->ctx = ctx;
	if (uv_mutex_init(&s->mu) != 0)
		abort();
	if (uv_cond_init(&s->cv) != 0)
		abort();
	if (uv_async_init(loop, &s->async, on_async) != 0) {
		close(fd);
		uv_cond_destroy(&s->cv);
		uv_mutex_destroy(&s->mu);
		free(s);
		return EIO;
	}
	if (uv_thread_create(&s->thread, writer_main, s) != 0) {
		s->joined = true; /* no thread: the close callback frees at once */
		uv_close((uv_handle_t *)&s->async, spool_free);
		return EAGAIN;
	}
	*out = s;
	return 0;
}

int cs_spool_write(struct cs_spool *s, const void *p, size_t n)
{
	uv_mutex_lock(&s->mu);
	int err = s->err;
	if (!err && n) {
		cs_buf_append(&s->pending, p, n);
		s->queued += n;
		uv_cond_signal(&s->cv);
	}
	uv_mutex_unlock(&s->mu);
	return err;
}

uint64_t cs_spool_queued(struct cs_spool *s)
{
	uv_mutex_lock(&s->mu);
	uint64_t q = s->queued;
	uv_mutex_unlock(&s->mu);
	return q;
}

uint64_t cs_spool_written(struct cs_spool *s)
{
	uv_mutex_lock(&s->mu);
	uint64_t w = s->written;
	uv_mutex_unlock(&s->mu);
	return w;
}

int cs_spool_error(struct cs_spool *s)
{
	uv_mutex_lock(&s->mu);
	int e = s->err;
	uv_mutex_unlock(&s->mu);
	return e;
}

int cs_spool_take_fd(struct cs_spool *s)
{
	uv_mutex_lock(&s->mu);
	bool ready = s->queued == 0 && s->err == 0;
	uv_mutex_unlock(&s->mu);
	if (!ready || s->taken) {
		errno = EBUSY;
		return -1;
	}
	if (lseek(s->fd, 0, SEEK_SET) != 0)
		return -1;
	s->taken = true;
	return s->fd;
}

void cs_spool_close(struct cs_spool *s)
{
	if (!s)
		return;
	s->wake = NULL;
	uv_mutex_lock(&s->mu);
	s->quit = true;
	uv_cond_signal(&s->cv);
	uv_mutex_unlock(&s->mu);
	/* The thread answers with a last async_send once it has ended. */
}
