/*
 * Shared fixture for test_token.c and test_expire.c: a core with real storage (LMDB in a
 * temp dir), a real keyring and a fake raft proposer that applies proposed entries on
 * the next loop turn (or on flush()), as raft would on a single node. Requests are built
 * by hand and dispatched through the real backend table (cs_backend_route/dispatch).
 */
#ifndef CS_TEST_TOKEN_FIXTURE_H
#define CS_TEST_TOKEN_FIXTURE_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/expire.h"
#include "auth/token.h"
#include "lib/err.h"
#include "lib/util.h"
#include "server/sys.h"
#include "tests/unit/fixtures.h"

#define FX_MAX_PROPS 4096

static struct cs_core core;
static struct cs_config cfg;
static uv_loop_t loop;
static char dir[64];
static struct {
	uint8_t *data;
	size_t len;
	void *token;
} props[FX_MAX_PROPS];
static size_t n_props, next_apply;
static uint64_t fx_raft_index;
static uv_timer_t apply_timer;
static int entries_applied;

static void flush(void)
{
	while (next_apply < n_props) {
		size_t i = next_apply++;
		ck_assert_int_eq(
		    cs_store_apply(&core.st.store, ++fx_raft_index, props[i].data, props[i].len),
		    0);
		free(props[i].data);
		props[i].data = NULL;
		entries_applied++;
		cs_storage_batch_done(&core.st, props[i].token, 0);
	}
}

static void apply_timer_cb(uv_timer_t *t)
{
	(void)t;
	flush();
}

static int fake_propose(void *ctx, const void *data, size_t len, void *token)
{
	(void)ctx;
	ck_assert_uint_lt(n_props, FX_MAX_PROPS);
	props[n_props].data = malloc(len);
	memcpy(props[n_props].data, data, len);
	props[n_props].len = len;
	props[n_props].token = token;
	n_props++;
	uv_timer_start(&apply_timer, apply_timer_cb, 0, 0);
	return 0;
}

static void commit_noted(void *data, int status)
{
	*(int *)data = status + 1000;
}

/* Commit a txn and wait until it applied. */
static int commit_sync(struct cs_txn *t)
{
	int st = -1;
	bool pending = false;
	int rc = cs_txn_commit(t, commit_noted, &st, &pending);
	if (rc || !pending)
		return rc;
	flush();
	ck_assert_int_ne(st, -1);
	return st - 1000;
}

static char root_token[160];

/* The ACL is not under test here: every token may call every path. */
static int allow_all(struct cs_request *req)
{
	(void)req;
	return 0;
}

static void fx_setup(void)
{
	memset(&core, 0, sizeof core);
	cs_core_set_acl(&core, &(struct cs_acl_hooks){.check = allow_all});
	cs_config_init(&cfg);
	uv_loop_init(&loop);
	uv_timer_init(&loop, &apply_timer);
	core.loop = &loop;
	core.cfg = &cfg;
	cs_fx_tmpdir(dir, sizeof dir, "token");
	ck_assert_int_eq(cs_storage_open(&core.st, dir, 64 << 20), 0);
	cs_storage_set_proposer(&core.st, fake_propose, &core);
	core.kr = cs_keyring_new();
	core.active = true;
	n_props = next_apply = 0;
	fx_raft_index = 0;
	cs_token_register(&core);
	struct cs_txn t;
	cs_txn_begin(&t, &core.st, core.kr);
	ck_assert_int_eq(
	    cs_token_create_root(&core, &t, "root-test", root_token, sizeof root_token), 0);
	ck_assert_int_eq(commit_sync(&t), 0);
}

static void fx_teardown(void)
{
	core.shutting_down = true;
	cs_expire_stop(&core);
	cs_backend_reset_all(&core);
	uv_close((uv_handle_t *)&apply_timer, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	cs_storage_close(&core.st);
	for (size_t i = next_apply; i < n_props; i++)
		free(props[i].data);
	cs_keyring_free(core.kr);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	cs_config_free(&cfg);
	cs_fx_rm_rf(dir);
}

/* ---------------------------------------------------------------- requests */

static cJSON *entry_of(const char *token)
{
	struct cs_txn t;
	cs_txn_begin(&t, &core.st, core.kr);
	cJSON *e = NULL;
	ck_assert_int_eq(cs_token_lookup(&core, &t, token, &e), 0);
	cs_txn_abort(&t);
	return e;
}

static void req_free(struct cs_request *req)
{
	if (req->txn_open)
		cs_txn_abort(&req->txn);
	for (int i = 0; i < req->n_caps; i++)
		free(req->caps[i].value);
	free(req->path);
	cJSON_Delete(req->data);
	free(req->client_token);
	cJSON_Delete(req->token_entry);
	cJSON_Delete(req->resp_data);
	cJSON_Delete(req->resp_auth);
	cJSON_Delete(req->warnings);
	cJSON_Delete(req->raw);
	free(req->lease_id);
	free(req->errmsg);
	free(req);
}

/*
 * Run `op` on auth/token/<rel> (or sys/<rel> when sys) with JSON body `body` as `token`,
 * commit, and return the request (caller frees with req_free). *rc gets the handler's
 * code (or the commit's).
 */
static struct cs_request *call(enum cs_op op, const char *rel, const char *body, const char *token,
			       int *rc)
{
	struct cs_request *req = calloc(1, sizeof *req);
	req->core = &core;
	req->op = op;
	req->path = strdup(rel);
	req->rel = req->path;
	req->data = body ? cJSON_Parse(body) : cJSON_CreateObject();
	ck_assert_ptr_nonnull(req->data);
	req->client_token = strdup(token);
	cs_txn_begin(&req->txn, &core.st, core.kr);
	req->txn_open = true;
	cJSON *e = NULL;
	*rc = cs_token_lookup(&core, &req->txn, token, &e);
	ck_assert_int_eq(*rc, 0);
	if (!e) {
		*rc = CS_EPERM;
		return req;
	}
	req->token_entry = e;
	const cJSON *p;
	cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(e, "policies"))
	{
		if (strcmp(p->valuestring, "root") == 0)
			req->root = true;
	}
	*rc = cs_token_use(&core, &req->txn, token, e, NULL);
	ck_assert_int_eq(*rc, 0);
	const struct cs_backend *b =
	    strncmp(rel, "sys/", 4) == 0 ? &cs_sys_backend : &cs_token_backend;
	const char *r = strncmp(rel, "sys/", 4) == 0 ? rel + 4 : rel;
	ck_assert_msg(cs_backend_route(b, req, r), "no route for %s", rel);
	*rc = cs_backend_dispatch(req);
	if (!*rc)
		*rc = cs_token_after(req);
	if (*rc)
		return req;
	req->txn_open = false;
	*rc = commit_sync(&req->txn);
	return req;
}

/* Create a token as `parent` with `body`; returns the new token (static buffer per call
 * site is not needed: caller provides out). */
static void create_as(const char *parent, const char *rel, const char *body, char *out,
		      size_t outlen)
{
	int rc;
	struct cs_request *req = call(CS_OP_UPDATE, rel, body, parent, &rc);
	ck_assert_msg(rc == 0, "create failed: %d %s", rc, req->errmsg ? req->errmsg : "");
	const cJSON *ct = cJSON_GetObjectItemCaseSensitive(req->resp_auth, "client_token");
	ck_assert(cJSON_IsString(ct));
	snprintf(out, outlen, "%s", ct->valuestring);
	req_free(req);
}

static bool token_exists(const char *token)
{
	cJSON *e = entry_of(token);
	bool ok = e != NULL;
	cJSON_Delete(e);
	return ok;
}

static size_t count_keys(const char *prefix)
{
	struct cs_txn t;
	cs_txn_begin(&t, &core.st, core.kr);
	struct cs_strv v = {0};
	ck_assert_int_eq(cs_txn_scan(&t, prefix, &v), 0);
	size_t n = v.n;
	cs_strv_free(&v);
	cs_txn_abort(&t);
	return n;
}

#endif
