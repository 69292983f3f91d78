/*
 * LD_PRELOAD shim for the fault campaign (tests/chaos): a slow or failing disk for one
 * custos process. Test-only; never linked into custos.
 *
 *   CHAOS_CTL=DIR   a control directory the campaign writes into while the process runs:
 *     DIR/delay_ms  (a number) every fsync, fdatasync, msync and raft's kernel-AIO log
 *                   write (syscall(__NR_io_submit), which raft issues through syscall())
 *                   first sleeps that many ms: a slow disk;
 *     DIR/eio       (exists) those same calls fail with EIO: a failing disk. A node must
 *                   then stop leading (c-raft 0.15 keeps leading after a failed write:
 *                   c-raft.md section 7 row 5).
 *   Without the files (or without CHAOS_CTL) every call passes straight through, so the
 *   shim can stay loaded for the whole run and the faults come and go on the leader.
 *
 * Everything else passes straight through to libc.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static const char *ctl;

__attribute__((constructor)) static void chaos_init(void)
{
	ctl = getenv("CHAOS_CTL");
	if (ctl && !*ctl)
		ctl = NULL;
}

/* 0: go ahead (after the configured delay); -1 with errno EIO: fail. */
static int chaos_gate(void)
{
	if (!ctl)
		return 0;
	int saved = errno;
	char p[1024];
	snprintf(p, sizeof p, "%s/eio", ctl);
	if (access(p, F_OK) == 0) {
		errno = EIO;
		return -1;
	}
	snprintf(p, sizeof p, "%s/delay_ms", ctl);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		char b[32] = {0};
		ssize_t n = read(fd, b, sizeof b - 1);
		close(fd);
		long ms = n > 0 ? strtol(b, NULL, 10) : 0;
		if (ms > 0) {
			struct timespec d = {ms / 1000, (ms % 1000) * 1000000};
			nanosleep(&d, NULL);
		}
	}
	errno = saved;
	return 0;
}

#define REAL(name, type) ((type)dlsym(RTLD_NEXT, name))

int fsync(int fd)
{
	if (chaos_gate())
		return -1;
	return REAL("fsync", int (*)(int))(fd);
}

int fdatasync(int fd)
{
	if (chaos_gate())
		return -1;
	return REAL("fdatasync", int (*)(int))(fd);
}

int msync(void *addr, size_t len, int flags)
{
	if (chaos_gate())
		return -1;
	return REAL("msync", int (*)(void *, size_t, int))(addr, len, flags);
}

long syscall(long nr, ...)
{
	va_list ap;
	va_start(ap, nr);
	long a[6];
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (nr == SYS_io_submit && chaos_gate())
		return -1;
	return REAL("syscall", long (*)(long, ...))(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}
