/*
 * libFuzzer target for raft entry decoding in the FSM (raft/fsm.c over storage/txn.c's
 * entry codec and storage/store.c): a follower applies whatever its leader's log holds,
 * so arbitrary bytes as an entry must be applied as a no-op or decoded, never crash — the
 * FSM aborts the process when cs_store_apply fails, which is a finding here too.
 *
 * Each input is applied through the FSM's apply callback (c-raft's fsm v3 vtable, the way
 * raft calls it) as one entry; then the input read as a sequence of entries
 * (u16 length | bytes, repeated), so RESTORE_BEGIN / CHUNK / COMMIT sequences and mixed
 * write-set batches are reachable within one input; an input starting with the raft
 * snapshot magic "CSS1" also goes through the FSM's snapshot restore (RAFT_CORRUPT or
 * success, never a crash). The store must still take a snapshot and encode it afterwards.
 *
 * The LMDB store lives in a tmpfs directory set up once (LLVMFuzzerInitialize), with the
 * same cs_storage_open hooks as a node; it is recreated every 2048 inputs so the map never
 * fills. State carried between inputs is the point of an FSM, and is bounded that way.
 */
#include <ftw.h>
#include <raft.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "raft/fsm.h"
#include "storage/txn.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static struct cs_storage st;
static struct cs_fsm fsm_impl;
static struct raft_fsm fsm;
static struct raft raft; /* only last_applied is read (raft_last_applied) */
static unsigned inputs;
static bool reopen; /* a restore moved the store's index: start over at the next input */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void cleanup(void)
{
	cs_fsm_close(&fsm_impl);
	cs_storage_close(&st);
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void open_store(void)
{
	char sub[96];
	snprintf(sub, sizeof sub, "%s/db", dir);
	nftw(sub, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	memset(&st, 0, sizeof st);
	if (cs_storage_open(&st, sub, 256u << 20) != 0)
		abort();
	cs_fsm_init(&fsm_impl, &fsm, &st.store);
	fsm_impl.raft = &raft;
	fsm_impl.fixed_threshold = true;
	memset(&raft, 0, sizeof raft);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	cs_log_set_level(CS_LOG_ERROR);
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(dir, sizeof dir, "%s/fuzz-raft-entry-XXXXXX", base);
	if (!mkdtemp(dir))
		abort();
	open_store();
	atexit(cleanup);
	return 0;
}

static void apply(const void *p, size_t n)
{
	/* raft hands the FSM a buffer it owns; copy so ASan sees the exact length. */
	struct raft_buffer b = {.base = malloc(n ? n : 1), .len = n};
	if (n)
		memcpy(b.base, p, n);
	void *result = (void *)1;
	if (fsm.apply(&fsm, &b, &result) != 0 || result != NULL)
		abort();
	raft.last_applied++; /* what raft does after apply returns */
	free(b.base);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (++inputs % 2048 == 0 || reopen) {
		reopen = false;
		cs_fsm_close(&fsm_impl);
		cs_storage_close(&st);
		open_store();
	}
	apply(data, size);
	for (size_t off = 0; off + 2 <= size;) {
		size_t n = (size_t)data[off] | (size_t)data[off + 1] << 8;
		off += 2;
		if (n > size - off)
			n = size - off;
		apply(data + off, n);
		off += n;
	}
	if (size >= 4 && memcmp(data, "CSS1", 4) == 0) {
		/* restore takes ownership of the buffer (raft_free) only on success. */
		struct raft_buffer b = {.base = raft_malloc(size), .len = size};
		memcpy(b.base, data, size);
		uint64_t before = st.store.applied_index;
		if (fsm.restore(&fsm, &b) != 0)
			raft_free(b.base);
		/* Entries at or below the restored index would now be skipped as replays. */
		reopen = st.store.applied_index != before;
	}
	/* Whatever was applied, the state still serialises (checked every 16th input: a
	 * snapshot copies the whole store). */
	struct raft_buffer *bufs;
	unsigned n_bufs;
	if (inputs % 16 == 0 && fsm.snapshot(&fsm, &bufs, &n_bufs) == 0) {
		if (fsm.snapshot_async(&fsm, &bufs, &n_bufs) != 0)
			abort();
		fsm.snapshot_finalize(&fsm, &bufs, &n_bufs);
	}
	return 0;
}
