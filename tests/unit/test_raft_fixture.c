/*
 * The FSM (raft/fsm.c) and the committer (storage/txn.c) across leader changes, on
 * c-raft's in-memory cluster (<raft/fixture.h>: fake clock, fake network, no disk for
 * raft). Each of the three servers has its own LMDB store behind a cs_storage; its
 * proposer is the minimal adapter below (raft_apply on that server's raft, the apply
 * callback's status handed to cs_storage_batch_done as raft/node.c maps it). Writes are
 * real cs_txn transactions committed through raft; the test checks what every server's
 * FSM ends up holding. The FSM runs behind a version-2 wrapper (fsm_wrap) because the
 * fixture's I/O cannot run version 3's asynchronous snapshot step.
 */
#include <check.h>
#include <raft.h>
#include <raft/fixture.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/log.h"
#include "raft/fsm.h"
#include "storage/txn.h"
#include "tests/unit/fixtures.h"

#define N_SERVERS 3
#define STEP_MS   30000 /* fake time: bounds for step_until_* */

static struct raft_fixture f;
static struct server {
	unsigned i;
	char dir[64];
	struct cs_storage st;
	struct cs_fsm impl;
	struct raft_fsm fsm;  /* raft/fsm.c's FSM (version 3) */
	struct raft_fsm wrap; /* what the fixture runs: version 2 over `fsm` */
	int inflight;         /* raft_apply requests raft still holds */
} srv[N_SERVERS];

/* ---------------------------------------------------------------- the adapter */

struct proposal {
	struct raft_apply req;
	struct server *s;
	void *token;
};

/* As raft/node.c's apply_cb: 0 → applied; a lost leadership → outcome unknown. */
static void apply_cb(struct raft_apply *req, int status, void *result)
{
	(void)result;
	struct proposal *p = req->data;
	struct server *s = p->s;
	void *token = p->token;
	free(p);
	s->inflight--;
	int st = 0;
	if (status) {
		ck_assert_msg(status == RAFT_LEADERSHIPLOST || status == RAFT_NOTLEADER ||
				  status == RAFT_SHUTDOWN || status == RAFT_CANCELED,
			      "apply status %d", status);
		st = CS_ELEADERSHIP;
	}
	cs_storage_batch_done(&s->st, token, st);
}

static int propose(void *ctx, const void *data, size_t len, void *token)
{
	struct server *s = ctx;
	struct raft *r = raft_fixture_get(&f, s->i);
	if (raft_state(r) != RAFT_LEADER)
		return CS_ENOTACTIVE;
	struct raft_buffer buf;
	buf.len = (len + 7) & ~(size_t)7; /* as raft/node.c: 8-byte entries, zero padded */
	buf.base = raft_malloc(buf.len);
	ck_assert_ptr_nonnull(buf.base);
	memcpy(buf.base, data, len);
	memset((char *)buf.base + len, 0, buf.len - len);
	struct proposal *p = calloc(1, sizeof *p);
	ck_assert_ptr_nonnull(p);
	p->s = s;
	p->token = token;
	p->req.data = p;
	int rv = raft_apply(r, &p->req, &buf, 1, apply_cb);
	if (rv) {
		raft_free(buf.base);
		free(p);
		return CS_ENOTACTIVE;
	}
	s->inflight++;
	return 0;
}

/*
 * The fixture's I/O is version 1 (no async work), and raft_init refuses a version 3 FSM
 * with snapshot_async on it. The wrapper is version 2: its snapshot runs our snapshot
 * (pin the view) and snapshot_async (serialise) back to back on the one test thread,
 * which is what raft_uv does across two threads; everything else is passed through.
 */
static int wrap_apply(struct raft_fsm *w, const struct raft_buffer *buf, void **result)
{
	struct raft_fsm *real = &((struct server *)w->data)->fsm;
	return real->apply(real, buf, result);
}

static int wrap_snapshot(struct raft_fsm *w, struct raft_buffer *bufs[], unsigned *n)
{
	struct raft_fsm *real = &((struct server *)w->data)->fsm;
	int rv = real->snapshot(real, bufs, n);
	if (rv == 0)
		rv = real->snapshot_async(real, bufs, n);
	return rv;
}

static int wrap_finalize(struct raft_fsm *w, struct raft_buffer *bufs[], unsigned *n)
{
	struct raft_fsm *real = &((struct server *)w->data)->fsm;
	return real->snapshot_finalize(real, bufs, n);
}

static int wrap_restore(struct raft_fsm *w, struct raft_buffer *buf)
{
	struct raft_fsm *real = &((struct server *)w->data)->fsm;
	return real->restore(real, buf);
}

static void fsm_wrap(struct server *s)
{
	ck_assert_int_eq(s->fsm.version, 3);
	s->wrap = (struct raft_fsm){.version = 2,
				    .data = s,
				    .apply = wrap_apply,
				    .snapshot = wrap_snapshot,
				    .restore = wrap_restore,
				    .snapshot_finalize = wrap_finalize};
}

/* ---------------------------------------------------------------- cluster */

static void cluster_setup(void)
{
	cs_log_set_level(CS_LOG_ERROR);
	memset(&f, 0, sizeof f);
	memset(srv, 0, sizeof srv);
	ck_assert_int_eq(raft_fixture_initialize(&f), 0);
	for (unsigned i = 0; i < N_SERVERS; i++) {
		struct server *s = &srv[i];
		s->i = i;
		cs_fx_tmpdir(s->dir, sizeof s->dir, "raftfx");
		ck_assert_int_eq(cs_storage_open(&s->st, s->dir, 16 << 20), 0);
		cs_storage_set_proposer(&s->st, propose, s);
		cs_fsm_init(&s->impl, &s->fsm, &s->st.store);
		fsm_wrap(s);
		s->impl.fixed_threshold = true;
		ck_assert_int_eq(raft_fixture_grow(&f, &s->wrap), 0);
		s->impl.raft = raft_fixture_get(&f, i);
		raft_set_snapshot_threshold(s->impl.raft, 1u << 20);
	}
	struct raft_configuration conf;
	ck_assert_int_eq(raft_fixture_configuration(&f, N_SERVERS, &conf), 0);
	ck_assert_int_eq(raft_fixture_bootstrap(&f, &conf), 0);
	raft_configuration_close(&conf);
	ck_assert_int_eq(raft_fixture_start(&f), 0);
}

static void cluster_teardown(void)
{
	raft_fixture_close(&f);
	for (unsigned i = 0; i < N_SERVERS; i++) {
		/* raft_fixture_close failed what raft still held (LEADERSHIPLOST/SHUTDOWN). */
		ck_assert_int_eq(srv[i].inflight, 0);
		cs_storage_close(&srv[i].st);
		cs_fsm_close(&srv[i].impl);
		cs_fx_tmpdir_done(srv[i].dir);
	}
}

/* ---------------------------------------------------------------- writes and checks */

#define step_until(pred) raft_fixture_step_until(&f, pred, NULL, STEP_MS)

struct commit {
	bool done;
	int status;
};

static void committed(void *data, int status)
{
	struct commit *c = data;
	c->done = true;
	c->status = status;
}

/* Commit key=val on server i; returns with c pending (raft holds the entry). */
static void write_async(unsigned i, const char *key, const char *val, struct commit *c)
{
	struct cs_txn t;
	cs_txn_begin(&t, &srv[i].st, NULL);
	ck_assert_int_eq(cs_txn_put_raw(&t, key, val, strlen(val)), 0);
	bool pending = false;
	c->done = false;
	ck_assert_int_eq(cs_txn_commit(&t, committed, c, &pending), 0);
	ck_assert(pending);
}

/* Every live server applied what the leader committed. */
static bool all_alive_applied(struct raft_fixture *fx, void *arg)
{
	(void)arg;
	unsigned l = raft_fixture_leader_index(fx);
	if (l >= N_SERVERS)
		return false;
	raft_index want = raft_fixture_get(fx, l)->commit_index;
	for (unsigned i = 0; i < N_SERVERS; i++)
		if (raft_fixture_alive(fx, i) && raft_last_applied(raft_fixture_get(fx, i)) < want)
			return false;
	return true;
}

static bool leader_index_known(struct raft_fixture *fx, void *arg)
{
	(void)arg;
	return raft_fixture_leader_index(fx) < N_SERVERS;
}

/* Commit key=val on the leader and wait (fake time) until it applied everywhere alive. */
static void write_sync(const char *key, const char *val)
{
	ck_assert(step_until(leader_index_known));
	unsigned l = raft_fixture_leader_index(&f);
	struct commit c;
	write_async(l, key, val, &c);
	for (int k = 0; k < 100000 && !c.done; k++)
		raft_fixture_step(&f);
	ck_assert(c.done);
	ck_assert_int_eq(c.status, 0);
	ck_assert(step_until(all_alive_applied));
}

/* The value of key on server i's FSM ("" when absent). */
static void fsm_get(unsigned i, const char *key, char *out, size_t n)
{
	struct cs_buf b = CS_BUF_INIT;
	int rc = cs_store_get(&srv[i].st.store, key, strlen(key), &b);
	ck_assert(rc == 0 || rc == CS_ENOTFOUND);
	snprintf(out, n, "%.*s", rc ? 0 : (int)b.len, rc ? "" : b.data);
	cs_buf_free(&b);
}

static int dump_cb(void *ctx, const char *key, size_t klen, const void *val, size_t vlen)
{
	struct cs_buf *b = ctx;
	cs_buf_printf(b, "%zu:", klen);
	cs_buf_append(b, key, klen);
	cs_buf_printf(b, "=%zu:", vlen);
	cs_buf_append(b, val, vlen);
	cs_buf_putc(b, '\n');
	return 0;
}

/* Every key and value of server i's FSM (the applied index and digest included). */
static void fsm_dump(unsigned i, struct cs_buf *out)
{
	ck_assert_int_eq(cs_store_scan(&srv[i].st.store, "", 0, dump_cb, out), 0);
}

static void assert_fsms_identical(void)
{
	struct cs_buf first = CS_BUF_INIT;
	fsm_dump(0, &first);
	ck_assert_uint_gt(first.len, 0);
	for (unsigned i = 1; i < N_SERVERS; i++) {
		struct cs_buf other = CS_BUF_INIT;
		fsm_dump(i, &other);
		ck_assert_msg(other.len == first.len &&
				  memcmp(other.data, first.data, first.len) == 0,
			      "server %u's FSM differs from server 0's", i);
		cs_buf_free(&other);
	}
	cs_buf_free(&first);
}

static void assert_everywhere(const char *key, const char *val)
{
	for (unsigned i = 0; i < N_SERVERS; i++) {
		char got[128];
		fsm_get(i, key, got, sizeof got);
		ck_assert_msg(strcmp(got, val) == 0, "server %u: %s = \"%s\", want \"%s\"", i, key,
			      got, val);
	}
}

/* ---------------------------------------------------------------- tests */

/* A leader other than server 0, known to the fixture. */
static bool other_leader(struct raft_fixture *fx, void *arg)
{
	(void)arg;
	for (unsigned i = 1; i < N_SERVERS; i++)
		if (raft_state(raft_fixture_get(fx, i)) == RAFT_LEADER &&
		    raft_fixture_leader_index(fx) == i)
			return true;
	return false;
}

/* Writes under leader 0; leader killed; a new leader; more writes; the old leader comes
 * back and catches up: every FSM holds every write, identically. */
START_TEST(test_writes_across_leader_kill)
{
	raft_fixture_elect(&f, 0);
	char k[32], v[32];
	for (int n = 0; n < 5; n++) {
		snprintf(k, sizeof k, "k/%d", n);
		snprintf(v, sizeof v, "v%d-term1", n);
		write_sync(k, v);
	}
	raft_term term1 = raft_fixture_get(&f, 0)->current_term;
	raft_fixture_kill(&f, 0);
	ck_assert(step_until(other_leader));
	unsigned l2 = raft_fixture_leader_index(&f);
	ck_assert_uint_ne(l2, 0);
	ck_assert_uint_gt(raft_fixture_get(&f, l2)->current_term, term1);
	/* A follower's proposer refuses: cs_txn_commit says not active, nothing pends. */
	{
		unsigned fo = l2 == 1 ? 2 : 1;
		struct cs_txn t;
		cs_txn_begin(&t, &srv[fo].st, NULL);
		ck_assert_int_eq(cs_txn_put_raw(&t, "never", "x", 1), 0);
		bool pending = true;
		struct commit c = {0};
		ck_assert_int_eq(cs_txn_commit(&t, committed, &c, &pending), CS_ENOTACTIVE);
		ck_assert(!pending);
		ck_assert(!c.done);
	}
	for (int n = 3; n < 8; n++) { /* overwrite some, add some */
		snprintf(k, sizeof k, "k/%d", n);
		snprintf(v, sizeof v, "v%d-term2", n);
		write_sync(k, v);
	}
	raft_fixture_revive(&f, 0);
	ck_assert(step_until(all_alive_applied));
	for (int n = 0; n < 8; n++) {
		snprintf(k, sizeof k, "k/%d", n);
		snprintf(v, sizeof v, "v%d-term%d", n, n < 3 ? 1 : 2);
		assert_everywhere(k, v);
	}
	assert_everywhere("never", "");
	assert_fsms_identical();
}
END_TEST

static bool old_leader_stepped_down(struct raft_fixture *fx, void *arg)
{
	(void)arg;
	return raft_state(raft_fixture_get(fx, 0)) != RAFT_LEADER;
}

/* Server 1 or 2 leads (the isolated server 0 cannot see it). */
static bool majority_leader(struct raft_fixture *fx, void *arg)
{
	(void)arg;
	return raft_state(raft_fixture_get(fx, 1)) == RAFT_LEADER ||
	       raft_state(raft_fixture_get(fx, 2)) == RAFT_LEADER;
}

static void isolate(unsigned i, bool on)
{
	for (unsigned j = 0; j < N_SERVERS; j++) {
		if (j == i)
			continue;
		if (on) {
			raft_fixture_disconnect(&f, i, j);
			raft_fixture_disconnect(&f, j, i);
		} else {
			raft_fixture_reconnect(&f, i, j);
			raft_fixture_reconnect(&f, j, i);
		}
	}
}

/* A proposal the partitioned leader accepted but could not commit fails with
 * CS_ELEADERSHIP when it steps down, is never applied anywhere, and its overlay is
 * gone; the majority's new leader commits meanwhile, and the old leader adopts its log. */
START_TEST(test_uncommitted_on_deposed_leader)
{
	raft_fixture_elect(&f, 0);
	write_sync("base", "1");
	isolate(0, true);
	struct commit lost;
	write_async(0, "lost", "x", &lost);
	/* Before it steps down the write is visible on the old leader (overlay) only. */
	{
		struct cs_txn t;
		cs_txn_begin(&t, &srv[0].st, NULL);
		struct cs_buf b = CS_BUF_INIT;
		ck_assert_int_eq(cs_txn_get_raw(&t, "lost", &b), 0);
		cs_buf_free(&b);
		cs_txn_abort(&t);
	}
	ck_assert(step_until(old_leader_stepped_down));
	ck_assert(lost.done);
	ck_assert_int_eq(lost.status, CS_ELEADERSHIP);
	ck_assert_int_eq(srv[0].inflight, 0);
	{
		struct cs_txn t;
		cs_txn_begin(&t, &srv[0].st, NULL);
		struct cs_buf b = CS_BUF_INIT;
		ck_assert_int_eq(cs_txn_get_raw(&t, "lost", &b), CS_ENOTFOUND);
		cs_buf_free(&b);
		cs_txn_abort(&t);
	}
	ck_assert(step_until(majority_leader));
	/* The majority goes on. */
	unsigned l2 = raft_state(raft_fixture_get(&f, 1)) == RAFT_LEADER ? 1 : 2;
	struct commit c;
	write_async(l2, "after", "2", &c);
	for (int k = 0; k < 100000 && !c.done; k++)
		raft_fixture_step(&f);
	ck_assert(c.done);
	ck_assert_int_eq(c.status, 0);
	isolate(0, false);
	ck_assert(step_until(leader_index_known));
	ck_assert(step_until(all_alive_applied));
	/* And once more, so the old leader's log tail is certainly replaced and applied. */
	write_sync("final", "3");
	assert_everywhere("base", "1");
	assert_everywhere("after", "2");
	assert_everywhere("final", "3");
	assert_everywhere("lost", "");
	assert_fsms_identical();
}
END_TEST

/* A leader deposed by lost acknowledgements (not a partition of its sends) gives the
 * same outcome: its in-flight write fails or commits, never half of each. */
START_TEST(test_depose_with_write_in_flight)
{
	raft_fixture_elect(&f, 0);
	write_sync("a", "1");
	struct commit c;
	write_async(0, "b", "2", &c);
	raft_fixture_depose(&f);
	for (int k = 0; k < 100000 && !c.done; k++)
		raft_fixture_step(&f);
	ck_assert(c.done);
	ck_assert(c.status == 0 || c.status == CS_ELEADERSHIP);
	ck_assert(step_until(leader_index_known));
	write_sync("c", "3");
	assert_everywhere("a", "1");
	assert_everywhere("c", "3");
	/* "b" reached the followers before the depose: whatever the callback said, every FSM
	 * agrees on it (raft may commit it under the next leader: outcome unknown). */
	char b0[8];
	fsm_get(0, "b", b0, sizeof b0);
	if (c.status == 0)
		ck_assert_str_eq(b0, "2");
	assert_everywhere("b", b0);
	assert_fsms_identical();
}
END_TEST

/* A server that missed entries the leader already compacted gets a snapshot: the FSM
 * serialises on the leader (snapshot, snapshot_async, finalize) and restores on the
 * follower, which then holds exactly what the others hold. */
START_TEST(test_snapshot_install)
{
	for (unsigned i = 0; i < N_SERVERS; i++) {
		raft_set_snapshot_threshold(raft_fixture_get(&f, i), 8);
		raft_set_snapshot_trailing(raft_fixture_get(&f, i), 2);
	}
	raft_fixture_elect(&f, 0);
	write_sync("early", "1");
	raft_fixture_kill(&f, 2);
	char k[32], v[32];
	for (int n = 0; n < 40; n++) {
		snprintf(k, sizeof k, "s/%d", n);
		snprintf(v, sizeof v, "%d", n * n);
		write_sync(k, v);
	}
	ck_assert_uint_gt(srv[0].impl.snapshots, 0);
	ck_assert_uint_eq(srv[2].impl.restores, 0);
	raft_fixture_revive(&f, 2);
	ck_assert(step_until(all_alive_applied));
	write_sync("late", "2");
	ck_assert_uint_gt(srv[2].impl.restores, 0);
	for (int n = 0; n < 40; n++) {
		snprintf(k, sizeof k, "s/%d", n);
		snprintf(v, sizeof v, "%d", n * n);
		assert_everywhere(k, v);
	}
	assert_everywhere("early", "1");
	assert_everywhere("late", "2");
	assert_fsms_identical();
}
END_TEST

static Suite *raft_fixture_suite(void)
{
	Suite *s = suite_create("raft_fixture");
	TCase *tc = tcase_create("leader_changes");
	tcase_add_checked_fixture(tc, cluster_setup, cluster_teardown);
	tcase_add_test(tc, test_writes_across_leader_kill);
	tcase_add_test(tc, test_uncommitted_on_deposed_leader);
	tcase_add_test(tc, test_depose_with_write_in_flight);
	tcase_add_test(tc, test_snapshot_install);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(raft_fixture_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
