/* The shared Check fixtures (see fixtures.h). */
#include "tests/unit/fixtures.h"

#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/util.h"

void cs_fx_tmpdir(char *dir, size_t n, const char *tag)
{
	ck_assert_int_lt(snprintf(dir, n, "/tmp/cs-test-%s-XXXXXX", tag), (int)n);
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

void cs_fx_rm_rf(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void cs_fx_tmpdir_done(const char *dir)
{
	if (!getenv("KEEP_DIR"))
		cs_fx_rm_rf(dir);
}

bool cs_fx_run_until(uv_loop_t *loop, const bool *flag, int ms)
{
	uint64_t deadline = cs_mono_ms() + (uint64_t)ms;
	while (!*flag && cs_mono_ms() < deadline)
		uv_run(loop, UV_RUN_ONCE);
	return *flag;
}

bool cs_fx_run_until_polled(uv_loop_t *loop, const atomic_bool *flag, int ms)
{
	uint64_t deadline = cs_mono_ms() + (uint64_t)ms;
	while (!atomic_load(flag) && cs_mono_ms() < deadline) {
		uv_run(loop, UV_RUN_NOWAIT);
		if (!atomic_load(flag))
			usleep(200);
	}
	return atomic_load(flag);
}

int cs_fx_propose(void *ctx, const void *data, size_t len, void *token)
{
	struct cs_fx_storage *fx = ctx;
	if (fx->refuse)
		return fx->refuse;
	if (fx->n_props == fx->cap) {
		fx->cap = fx->cap ? fx->cap * 2 : 64;
		fx->props = realloc(fx->props, fx->cap * sizeof *fx->props);
		ck_assert_ptr_nonnull(fx->props);
	}
	struct cs_fx_prop *p = &fx->props[fx->n_props++];
	p->data = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(p->data);
	memcpy(p->data, data, len);
	p->len = len;
	p->token = token;
	p->done = false;
	if (fx->on_propose)
		fx->on_propose(fx);
	return 0;
}

void cs_fx_storage_open(struct cs_fx_storage *fx, const char *tag, size_t map_size)
{
	memset(fx, 0, sizeof *fx);
	cs_fx_tmpdir(fx->dir, sizeof fx->dir, tag);
	ck_assert_int_eq(cs_storage_open(&fx->st, fx->dir, map_size), 0);
	cs_storage_set_proposer(&fx->st, cs_fx_propose, fx);
}

void cs_fx_storage_close(struct cs_fx_storage *fx)
{
	cs_storage_close(&fx->st);
	for (size_t i = 0; i < fx->n_props; i++)
		free(fx->props[i].data);
	free(fx->props);
	fx->props = NULL;
	fx->n_props = fx->cap = fx->next_apply = 0;
	cs_fx_tmpdir_done(fx->dir);
}

void cs_fx_apply(struct cs_fx_storage *fx, size_t i)
{
	ck_assert_uint_lt(i, fx->n_props);
	struct cs_fx_prop *p = &fx->props[i];
	ck_assert(!p->done);
	p->done = true;
	ck_assert_int_eq(cs_store_apply(&fx->st.store, ++fx->raft_index, p->data, p->len), 0);
	cs_storage_batch_done(&fx->st, p->token, 0);
}

void cs_fx_apply_next(struct cs_fx_storage *fx)
{
	ck_assert_uint_lt(fx->next_apply, fx->n_props);
	cs_fx_apply(fx, fx->next_apply++);
}

void cs_fx_apply_all(struct cs_fx_storage *fx)
{
	while (fx->next_apply < fx->n_props)
		cs_fx_apply_next(fx);
}

void cs_fx_fail_next(struct cs_fx_storage *fx, int status)
{
	ck_assert_uint_lt(fx->next_apply, fx->n_props);
	struct cs_fx_prop *p = &fx->props[fx->next_apply++];
	p->done = true;
	cs_storage_batch_done(&fx->st, p->token, status);
}

void cs_fx_fail_all(struct cs_fx_storage *fx, int status)
{
	while (fx->next_apply < fx->n_props)
		cs_fx_fail_next(fx, status);
}
