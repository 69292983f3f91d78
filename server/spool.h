/*
 * Request-body spool: an unlinked temporary file filled by a writer thread of its own,
 * so that a large upload never blocks the loop on disk I/O, and never fills the disk
 * past a reserve.
 *
 * Happy path: cs_spool_open (loop thread: the free-space check with the announced size,
 * then an O_TMPFILE file) → cs_spool_write copies bytes into the pending buffer and wakes
 * the thread → the thread takes the whole pending buffer, checks the free space again
 * (fstatvfs) and writes it → wake(ctx) on the loop after every batch → the owner stops
 * feeding above CS_SPOOL_HIGH queued bytes and resumes below CS_SPOOL_LOW → once
 * cs_spool_queued is 0, cs_spool_take_fd hands the file over (offset 0).
 *
 * Failure modes: the reserve would be crossed (at open with the announced size, or by a
 * batch) → ENOSPC and nothing more is written; a failing write (EIO, EFBIG, ENOSPC) →
 * its errno. Either is sticky: cs_spool_error returns it, later writes are dropped, and
 * wake still runs so that the owner notices.
 *
 * Threads: one writer thread per spool, never libuv's pool (c-raft's disk writes need
 * it). Every function is for the loop thread; wake runs on it too. The spool is freed
 * after cs_spool_close, once its thread has ended (from a loop callback).
 */
#ifndef CS_SERVER_SPOOL_H
#define CS_SERVER_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define CS_SPOOL_HIGH (1u << 20)   /* the owner stops reading above this many queued bytes */
#define CS_SPOOL_LOW  (256u << 10) /* and resumes below this */

struct cs_spool;

/*
 * Create the file in `dir`. reserve_percent (0-99): the share of the volume that must
 * stay free; 0 turns the check off. `expect`: the announced body size (Content-Length),
 * 0 when unknown. Returns 0 with *out set, or an errno value (ENOSPC: the reserve would
 * be crossed; anything else: the directory could not be used) and nothing is created.
 */
int cs_spool_open(uv_loop_t *loop, const char *dir, int reserve_percent, uint64_t expect,
		  void (*wake)(void *ctx), void *ctx, struct cs_spool **out);
/* Queue a copy of n bytes. Returns 0, or the spool's sticky error (nothing queued). */
int cs_spool_write(struct cs_spool *s, const void *p, size_t n);
/* Bytes queued and not yet written. */
uint64_t cs_spool_queued(struct cs_spool *s);
/* Bytes written to the file so far. */
uint64_t cs_spool_written(struct cs_spool *s);
/* 0, or the errno that stopped the spool. */
int cs_spool_error(struct cs_spool *s);
/* Once cs_spool_queued is 0 and there is no error: the file, rewound, now the
 * caller's; -1 (errno set) otherwise. At most once. */
int cs_spool_take_fd(struct cs_spool *s);
/* Release: no more wake calls; the file is closed (unless taken) and the spool freed
 * once the thread is done with its current batch. NULL is a no-op. */
void cs_spool_close(struct cs_spool *s);
/* 0 if `need` more bytes fit in the volume of `dir` above its reserve, ENOSPC if not,
 * or the errno of statvfs. Loop thread (one metadata call). */
int cs_spool_check_room(const char *dir, int reserve_percent, uint64_t need);
/* Whether `avail` free bytes out of `total` can take `need` more while keeping
 * reserve_percent of total free. Exposed for tests. */
bool cs_spool_room(uint64_t avail, uint64_t total, int reserve_percent, uint64_t need);

#endif
