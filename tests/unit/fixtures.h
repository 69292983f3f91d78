/*
 * Helpers the Check suites share, so each suite states only what it tests: a temp
 * directory, a loop runner with a deadline, and a storage fixture (real LMDB in a temp
 * dir behind a fake raft proposer that the test drives).
 * Everything runs on the test's thread; failures are Check assertions (the test stops).
 */
#ifndef CS_TEST_FIXTURES_H
#define CS_TEST_FIXTURES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "lib/buf.h"
#include "storage/txn.h"

/* ---------------------------------------------------------------- temp dir */

/* mkdtemp "/tmp/cs-test-<tag>-XXXXXX" into dir (n bytes, 64 is plenty). */
void cs_fx_tmpdir(char *dir, size_t n, const char *tag);
/* rm -rf path (no error if it is gone). */
void cs_fx_rm_rf(const char *path);
/* cs_fx_rm_rf unless KEEP_DIR is set (keep the files for inspection with CK_FORK=no). */
void cs_fx_tmpdir_done(const char *dir);

/* ---------------------------------------------------------------- loop runner */

/* Run the loop one turn at a time until *flag or ms elapsed; returns *flag. */
bool cs_fx_run_until(uv_loop_t *loop, const bool *flag, int ms);
/* The same for a flag another thread sets: polls with UV_RUN_NOWAIT and short sleeps. */
bool cs_fx_run_until_polled(uv_loop_t *loop, const atomic_bool *flag, int ms);

/* ---------------------------------------------------------------- storage fixture */

/* One entry the storage layer proposed, kept until the test applies or fails it. */
struct cs_fx_prop {
	uint8_t *data;
	size_t len;
	void *token;
	bool done;
};

/* A cs_storage on LMDB in a fresh temp dir whose proposer records each entry instead
 * of going through raft. The test then applies entries in order (as the FSM would, at
 * increasing raft indexes) or fails them. */
struct cs_fx_storage {
	struct cs_storage st;
	char dir[64];
	struct cs_fx_prop *props; /* grows; props[0..n_props) */
	size_t n_props, cap, next_apply;
	uint64_t raft_index; /* index of the last applied entry */
	int refuse;          /* non-zero: the proposer refuses with this code */
	/* Called after each recorded proposal (e.g. to apply on the next loop turn). */
	void (*on_propose)(struct cs_fx_storage *fx);
};

/* Temp dir tagged `tag`, cs_storage_open with map_size, fake proposer installed. */
void cs_fx_storage_open(struct cs_fx_storage *fx, const char *tag, size_t map_size);
/* The fake proposer itself (ctx is the fixture), to reinstall after a test swapped it. */
int cs_fx_propose(void *ctx, const void *data, size_t len, void *token);
/* Close the storage, free unapplied entries, remove the dir (see cs_fx_tmpdir_done). */
void cs_fx_storage_close(struct cs_fx_storage *fx);
/* Apply entry i to LMDB at the next raft index and report it done (status 0). */
void cs_fx_apply(struct cs_fx_storage *fx, size_t i);
/* Apply the oldest unapplied entry; apply every pending entry in order. */
void cs_fx_apply_next(struct cs_fx_storage *fx);
void cs_fx_apply_all(struct cs_fx_storage *fx);
/* Report the oldest unapplied entry (or all of them) failed with status. */
void cs_fx_fail_next(struct cs_fx_storage *fx, int status);
void cs_fx_fail_all(struct cs_fx_storage *fx, int status);

#endif
