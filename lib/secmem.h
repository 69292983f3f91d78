/*
 * Memory for key material: page-backed, mlock()ed (unless disabled by the config's
 * disable_mlock), excluded from core dumps, and zeroised before release.
 * Caveats: allocations round up to whole pages; use it for keys, not bulk data.
 */
#ifndef CS_LIB_SECMEM_H
#define CS_LIB_SECMEM_H

#include <stdbool.h>
#include <stddef.h>

/* Call once at start-up, before any allocation. Default: mlock on. */
void cs_secmem_set_mlock(bool use_mlock);
/* Zeroed memory of n bytes; aborts if the memory cannot be had (or locked when mlock
 * is on: a key that may be swapped out is a failure, as in Vault). */
void *cs_secmem_alloc(size_t n);
/* Zeroise and release memory from cs_secmem_alloc; n must be the size passed there.
 * NULL is allowed. */
void cs_secmem_free(void *p, size_t n);

#endif
