/*
 * Page-backed memory for key material. Each allocation is its own anonymous mapping so
 * that it can be locked (never swapped), excluded from core dumps and wiped as a unit,
 * without touching malloc's heap where freed blocks keep their contents.
 */
#include "lib/secmem.h"

#include "lib/log.h"
#include "lib/util.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * mlock/munlock go straight to the kernel: AddressSanitizer intercepts the libc
 * wrappers and turns them into no-ops, which would make sanitizer builds (our CI and
 * test configuration) silently run without locked keys and without the failure path.
 */
static int sys_mlock(void *p, size_t n)
{
	return (int)syscall(SYS_mlock, p, n);
}
static int sys_munlock(void *p, size_t n)
{
	return (int)syscall(SYS_munlock, p, n);
}

/* Written once at start-up before any allocation (see the header), then only read. */
static bool secmem_mlock = true;

void cs_secmem_set_mlock(bool use_mlock)
{
	secmem_mlock = use_mlock;
}

static size_t secmem_size(size_t n)
{
	long ps = sysconf(_SC_PAGESIZE);
	size_t page = ps > 0 ? (size_t)ps : 4096;
	/* A zero-byte request still gets a page so alloc/free stay symmetric. */
	if (n == 0)
		n = 1;
	if (n > SIZE_MAX - page) {
		cs_error("secmem: allocation of %zu bytes is too large", n);
		abort();
	}
	return (n + page - 1) / page * page;
}

void *cs_secmem_alloc(size_t n)
{
	size_t size = secmem_size(n);
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		cs_error("secmem: mmap of %zu bytes failed: %s", size, strerror(errno));
		abort();
	}
	/* A key that may be written to swap is treated as a failure, as Vault does; the
	 * operator can opt out with disable_mlock. */
	if (secmem_mlock && sys_mlock(p, size) != 0) {
		int e = errno;
		cs_error("secmem: mlock of %zu bytes failed: %s; raise the memlock limit "
			 "(ulimit -l, LimitMEMLOCK=) or set disable_mlock = true",
			 size, strerror(e));
		abort();
	}
#ifdef MADV_DONTDUMP
	/* Best effort: an old kernel without it still gets a working allocation. */
	(void)madvise(p, size, MADV_DONTDUMP);
#endif
	/* Anonymous mappings are zero-filled by the kernel. */
	return p;
}

void cs_secmem_free(void *p, size_t n)
{
	if (!p)
		return;
	size_t size = secmem_size(n);
	cs_zero(p, size);
	/* munlock on a page that was never locked is harmless, so do it unconditionally
	 * rather than trust that the flag has not changed since the allocation. */
	(void)sys_munlock(p, size);
	if (munmap(p, size) != 0) {
		cs_error("secmem: munmap failed: %s", strerror(errno));
		abort();
	}
}
