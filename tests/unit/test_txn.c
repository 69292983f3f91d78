/*
 * Transactions, the overlay and the group committer, without raft: a fake proposer
 * records each proposed entry; the test applies entries to LMDB with cs_store_apply at
 * increasing indexes and reports them with cs_storage_batch_done, as the raft node does.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/err.h"
#include "tests/unit/fixtures.h"
#include "storage/txn.h"

static struct cs_fx_storage fx;

static void apply_next(void)
{
	cs_fx_apply_next(&fx);
}

static void apply_all(void)
{
	cs_fx_apply_all(&fx);
}

static void fail_next(int status)
{
	cs_fx_fail_next(&fx, status);
}

static void setup(void)
{
	cs_fx_storage_open(&fx, "txn", 64 << 20);
}

static void teardown(void)
{
	cs_fx_storage_close(&fx);
}

/* ---------------------------------------------------------------- helpers */

struct rec {
	int calls;
	int status;
	int order; /* global completion order */
};
static int completion_counter;

static void rec_cb(void *data, int status)
{
	struct rec *r = data;
	r->calls++;
	r->status = status;
	r->order = ++completion_counter;
}

static void put(struct cs_txn *t, const char *k, const char *v)
{
	ck_assert_int_eq(cs_txn_put_raw(t, k, v, strlen(v)), 0);
}

static void expect_get(struct cs_txn *t, const char *k, const char *want)
{
	struct cs_buf b = CS_BUF_INIT;
	int rv = cs_txn_get_raw(t, k, &b);
	if (!want) {
		ck_assert_msg(rv == CS_ENOTFOUND, "%s: want not found, got %s", k, cs_errname(rv));
	} else {
		ck_assert_msg(rv == 0, "%s: %s", k, cs_errname(rv));
		ck_assert_str_eq(b.data, want);
	}
	cs_buf_free(&b);
}

/* Commit a write-only txn {k=v}; returns pending. */
static bool commit_put(const char *k, const char *v, struct rec *r)
{
	struct cs_txn t;
	bool pending;
	cs_txn_begin(&t, &fx.st, NULL);
	put(&t, k, v);
	ck_assert_int_eq(cs_txn_commit(&t, rec_cb, r, &pending), 0);
	return pending;
}

/* Write and fully apply. */
static void seed(const char *k, const char *v)
{
	struct rec r = {0};
	ck_assert(commit_put(k, v, &r));
	apply_all();
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.status, 0);
}

static uint32_t entry_writesets(const struct cs_fx_prop *p)
{
	ck_assert_uint_ge(p->len, 9);
	return (uint32_t)p->data[5] | (uint32_t)p->data[6] << 8 | (uint32_t)p->data[7] << 16 |
	       (uint32_t)p->data[8] << 24;
}

static void expect_list(struct cs_txn *t, const char *prefix, bool recursive,
			const char *const *want, size_t n)
{
	struct cs_strv sv = {0};
	int rv = recursive ? cs_txn_scan(t, prefix, &sv) : cs_txn_list(t, prefix, &sv);
	ck_assert_int_eq(rv, 0);
	ck_assert_msg(sv.n == n, "list %s: %zu names, want %zu", prefix, sv.n, n);
	for (size_t i = 0; i < n; i++)
		ck_assert_str_eq(sv.v[i], want[i]);
	cs_strv_free(&sv);
}

/* ---------------------------------------------------------------- tests */

START_TEST(test_read_own_writes)
{
	struct cs_txn t;
	cs_txn_begin(&t, &fx.st, NULL);
	expect_get(&t, "a", NULL);
	put(&t, "a", "1");
	expect_get(&t, "a", "1");
	put(&t, "a", "2");
	expect_get(&t, "a", "2");
	ck_assert_int_eq(cs_txn_delete(&t, "a"), 0);
	expect_get(&t, "a", NULL);
	put(&t, "a", "3");
	expect_get(&t, "a", "3");
	/* Reading only your own writes never waits on anything. */
	ck_assert_uint_eq(t.read_seq, 0);
	struct rec r = {0};
	bool pending;
	ck_assert_int_eq(cs_txn_commit(&t, rec_cb, &r, &pending), 0);
	ck_assert(pending);
	ck_assert_int_eq(r.calls, 0);
	cs_txn_abort(&t); /* no-op after commit */
	apply_all();
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.status, 0);

	/* The last write won in LMDB too. */
	struct cs_buf b = CS_BUF_INIT;
	ck_assert_int_eq(cs_store_get(&fx.st.store, "a", 1, &b), 0);
	ck_assert_str_eq(b.data, "3");
	cs_buf_free(&b);
}
END_TEST

START_TEST(test_overlay_visible_and_reader_held)
{
	struct rec w = {0}, rd = {0}, other = {0};
	ck_assert(commit_put("k", "v1", &w));
	ck_assert_uint_eq(fx.n_props, 1);

	/* A second txn sees the pending write at once... */
	struct cs_txn t;
	bool pending;
	cs_txn_begin(&t, &fx.st, NULL);
	expect_get(&t, "k", "v1");
	ck_assert_uint_eq(t.read_seq, 1);
	/* ...and is held until it applied. */
	ck_assert_int_eq(cs_txn_commit(&t, rec_cb, &rd, &pending), 0);
	ck_assert(pending);
	ck_assert_uint_eq(cs_storage_pending(&fx.st), 2);

	/* A reader of LMDB-only keys does not wait. */
	cs_txn_begin(&t, &fx.st, NULL);
	expect_get(&t, "nothing-pending", NULL);
	ck_assert_int_eq(cs_txn_commit(&t, rec_cb, &other, &pending), 0);
	ck_assert(!pending);

	ck_assert_int_eq(w.calls + rd.calls, 0);
	apply_next();
	ck_assert_int_eq(w.calls, 1);
	ck_assert_int_eq(w.status, 0);
	ck_assert_int_eq(rd.calls, 1);
	ck_assert_int_eq(rd.status, 0);
	ck_assert_int_eq(other.calls, 0);
	ck_assert_uint_eq(cs_storage_pending(&fx.st), 0);
	ck_assert_uint_eq(fx.st.applied_seq, 1);

	/* The overlay entry is gone; the value now comes from LMDB. */
	cs_txn_begin(&t, &fx.st, NULL);
	expect_get(&t, "k", "v1");
	ck_assert_uint_eq(t.read_seq, 0);
	cs_txn_abort(&t);
}
END_TEST

START_TEST(test_reader_waits_for_newest)
{
	struct rec w1 = {0}, w2 = {0}, rd = {0};
	commit_put("a", "1", &w1);
	commit_put("b", "2", &w2);
	ck_assert_uint_eq(fx.n_props, 2);
	struct cs_txn t;
	bool pending;
	cs_txn_begin(&t, &fx.st, NULL);
	expect_get(&t, "a", "1");
	expect_get(&t, "b", "2");
	ck_assert_uint_eq(t.read_seq, 2);
	ck_assert_int_eq(cs_txn_commit(&t, rec_cb, &rd, &pending), 0);
	ck_assert(pending);
	apply_next();
	ck_assert_int_eq(w1.calls, 1);
	ck_assert_int_eq(rd.calls, 0);
	apply_next();
	ck_assert_int_eq(rd.calls, 1);
	ck_assert_int_eq(rd.status, 0);
	ck_assert_int_lt(w2.order, rd.order);
}
END_TEST

START_TEST(test_group_commit)
{
	struct rec r[12] = {{0}};
	char key[16];
	for (int i = 0; i < 12; i++) {
		snprintf(key, sizeof key, "k%02d", i);
		ck_assert(commit_put(key, "v", &r[i]));
	}
	/* Two entries in flight, the other ten queued. */
	ck_assert_int_eq(fx.st.inflight, CS_MAX_INFLIGHT);
	ck_assert_uint_eq(fx.n_props, 2);
	ck_assert_uint_eq(cs_storage_pending(&fx.st), 12);

	/* The queued ones are all visible already. */
	struct cs_txn t;
	cs_txn_begin(&t, &fx.st, NULL);
	expect_get(&t, "k11", "v");
	ck_assert_uint_eq(t.read_seq, 12);
	cs_txn_abort(&t);

	apply_next();
	ck_assert_int_eq(r[0].calls, 1);
	/* Room in flight: the ten queued write-sets leave as ONE entry. */
	ck_assert_uint_eq(fx.n_props, 3);
	ck_assert_uint_eq(entry_writesets(&fx.props[2]), 10);
	ck_assert_uint_eq(fx.st.entries_proposed, 3);
	ck_assert_uint_eq(fx.st.writesets_committed, 12);
	apply_all();
	for (int i = 0; i < 12; i++) {
		ck_assert_int_eq(r[i].calls, 1);
		ck_assert_int_eq(r[i].status, 0);
	}
	/* Callbacks of one entry run in commit order. */
	for (int i = 3; i < 12; i++)
		ck_assert_int_lt(r[i - 1].order, r[i].order);
	ck_assert_uint_eq(fx.st.applied_seq, 12);
	ck_assert_int_eq(fx.st.inflight, 0);
	for (int i = 0; i < 12; i++) {
		struct cs_buf b = CS_BUF_INIT;
		snprintf(key, sizeof key, "k%02d", i);
		ck_assert_int_eq(cs_store_get(&fx.st.store, key, strlen(key), &b), 0);
		cs_buf_free(&b);
	}
}
END_TEST

START_TEST(test_entry_size_cap)
{
	struct rec r[5] = {{0}};
	size_t big = (size_t)3 << 20;
	char *v = malloc(big + 1);
	memset(v, 'x', big);
	v[big] = '\0';
	commit_put("s1", "v", &r[0]);
	commit_put("s2", "v", &r[1]);
	/* Three 3 MiB write-sets cannot share a 4 MiB entry; two small ones can join. */
	commit_put("b1", v, &r[2]);
	commit_put("b2", v, &r[3]);
	commit_put("s3", "v", &r[4]);
	ck_assert_uint_eq(fx.n_props, 2);
	apply_next();
	ck_assert_uint_eq(fx.n_props, 3);
	ck_assert_uint_eq(entry_writesets(&fx.props[2]), 1);
	apply_next();
	ck_assert_uint_eq(fx.n_props, 4);
	ck_assert_uint_eq(entry_writesets(&fx.props[3]), 2);
	ck_assert_uint_le(fx.props[3].len, CS_MAX_ENTRY_BYTES);
	apply_all();
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(r[i].status, 0);
	free(v);
}
END_TEST

START_TEST(test_failure_drops_everything)
{
	seed("base", "lmdb");
	struct rec w[5] = {{0}}, rd = {0};
	commit_put("base", "p1", &w[0]);
	commit_put("x", "p2", &w[1]);
	commit_put("y", "q1", &w[2]);
	commit_put("z", "q2", &w[3]);
	ck_assert_uint_eq(fx.n_props, 3);
	ck_assert_int_eq(fx.st.inflight, 2);

	struct cs_txn t;
	bool pending;
	cs_txn_begin(&t, &fx.st, NULL);
	expect_get(&t, "z", "q2");
	ck_assert_int_eq(cs_txn_commit(&t, rec_cb, &rd, &pending), 0);
	ck_assert(pending);

	/* The first in-flight entry fails: outcome unknown, everything pending fails. */
	fail_next(CS_ELEADERSHIP);
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(w[i].calls, 1);
		ck_assert_int_eq(w[i].status, CS_ELEADERSHIP);
	}
	ck_assert_int_eq(rd.calls, 1);
	ck_assert_int_eq(rd.status, CS_ELEADERSHIP);
	ck_assert_uint_eq(cs_storage_pending(&fx.st), 0);
	/* The second entry is still in raft's hands. */
	ck_assert_int_eq(fx.st.inflight, 1);

	/* The overlay is gone: reads fall back to LMDB. */
	cs_txn_begin(&t, &fx.st, NULL);
	expect_get(&t, "base", "lmdb");
	expect_get(&t, "z", NULL);
	ck_assert_uint_eq(t.read_seq, 0);
	cs_txn_abort(&t);

	/* A commit now goes out at once (one slot free) and waits normally. */
	ck_assert(commit_put("after", "1", &w[4]));
	ck_assert_uint_eq(fx.n_props, 4);
	ck_assert_int_eq(fx.st.inflight, 2);

	/* The failed entry applies after all: its batch_done is a harmless no-op. */
	apply_next();
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(w[i].calls, 1);
	ck_assert_int_eq(fx.st.inflight, 1);
	apply_next();
	ck_assert_int_eq(w[4].calls, 1);
	ck_assert_int_eq(w[4].status, 0);
	ck_assert_int_eq(fx.st.inflight, 0);
	ck_assert_uint_eq(fx.st.applied_seq, 6);
}
END_TEST

START_TEST(test_fail_all_and_late_done)
{
	struct rec w[6] = {{0}};
	for (int i = 0; i < 6; i++) {
		char k[16];
		snprintf(k, sizeof k, "k%d", i);
		commit_put(k, "v", &w[i]);
	}
	ck_assert_uint_eq(fx.n_props, 2);
	cs_storage_fail_all(&fx.st, CS_ELEADERSHIP);
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(w[i].status, CS_ELEADERSHIP);
	ck_assert_int_eq(fx.st.inflight, 2);
	/* Both late results, success and failure, are ignored. */
	fail_next(CS_ELEADERSHIP);
	apply_next();
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(w[i].calls, 1);
	ck_assert_int_eq(fx.st.inflight, 0);
	ck_assert_uint_eq(cs_storage_pending(&fx.st), 0);
	/* Fail twice in a row: nothing left to fail, nothing breaks. */
	cs_storage_fail_all(&fx.st, CS_ESEALED);
	struct rec r = {0};
	ck_assert(commit_put("k", "v", &r));
	apply_all();
	ck_assert_int_eq(r.status, 0);
}
END_TEST

START_TEST(test_refused_commit)
{
	struct rec r = {0}, w = {0};
	struct cs_txn t;
	bool pending = true;

	/* Refused while proposing its own entry: error returned, no trace anywhere. */
	fx.refuse = 7;
	cs_txn_begin(&t, &fx.st, NULL);
	put(&t, "k", "v");
	ck_assert_int_eq(cs_txn_commit(&t, rec_cb, &r, &pending), CS_ENOTACTIVE);
	ck_assert(!pending);
	ck_assert_int_eq(r.calls, 0);
	cs_txn_begin(&t, &fx.st, NULL);
	expect_get(&t, "k", NULL);
	cs_txn_abort(&t);
	ck_assert_uint_eq(fx.st.next_seq, 1);

	/* No proposer at all (standby, sealed): the same. */
	fx.refuse = 0;
	cs_storage_set_proposer(&fx.st, NULL, NULL);
	cs_txn_begin(&t, &fx.st, NULL);
	put(&t, "k", "v");
	ck_assert_int_eq(cs_txn_commit(&t, rec_cb, &r, &pending), CS_ENOTACTIVE);
	ck_assert(!pending);

	/* Refused while flushing the queue: everything pending fails, from batch_done. */
	cs_storage_set_proposer(&fx.st, cs_fx_propose, &fx);
	struct rec a = {0}, b = {0}, q1 = {0}, q2 = {0};
	commit_put("a", "1", &a);
	commit_put("b", "1", &b);
	commit_put("q1", "1", &q1);
	commit_put("q2", "1", &q2);
	fx.refuse = 7;
	apply_next(); /* a applies; flushing q1+q2 is refused */
	ck_assert_int_eq(a.status, 0);
	ck_assert_int_eq(b.status, CS_ENOTACTIVE);
	ck_assert_int_eq(q1.status, CS_ENOTACTIVE);
	ck_assert_int_eq(q2.status, CS_ENOTACTIVE);
	ck_assert_int_eq(q2.calls, 1);
	cs_txn_begin(&t, &fx.st, NULL);
	expect_get(&t, "a", "1");
	expect_get(&t, "q1", NULL);
	cs_txn_abort(&t);
	fx.refuse = 0;
	apply_next(); /* b's late success is ignored */
	ck_assert_int_eq(b.calls, 1);
	ck_assert_int_eq(fx.st.inflight, 0);
	(void)w;
}
END_TEST

START_TEST(test_dropped_overlay_read)
{
	struct rec w = {0}, r = {0};
	commit_put("k", "v", &w);
	struct cs_txn t;
	bool pending = true;
	cs_txn_begin(&t, &fx.st, NULL);
	expect_get(&t, "k", "v");
	put(&t, "derived", "from-k");
	/* Leadership lost while the handler ran (e.g. it waited on a worker). */
	cs_storage_fail_all(&fx.st, CS_ELEADERSHIP);
	ck_assert_int_eq(cs_txn_commit(&t, rec_cb, &r, &pending), CS_ELEADERSHIP);
	ck_assert(!pending);
	ck_assert_int_eq(r.calls, 0);
	ck_assert_uint_eq(fx.n_props, 1);

	/* A blind write that began before the failure is fine. */
	cs_txn_begin(&t, &fx.st, NULL);
	cs_storage_fail_all(&fx.st, CS_ELEADERSHIP);
	put(&t, "blind", "1");
	ck_assert_int_eq(cs_txn_commit(&t, rec_cb, &r, &pending), 0);
	ck_assert(pending);
	fail_next(CS_ELEADERSHIP); /* late result of the first entry: ignored */
	apply_all();
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.status, 0);
}
END_TEST

/* An error answer derived from a pending write waits for it (cs_txn_drop_writes): it is
 * told the write applied, or that the state it read never became real. */
START_TEST(test_drop_writes_waits_for_reads)
{
	struct rec w = {0}, r = {0}, w2 = {0}, r2 = {0};
	commit_put("ver", "2", &w);
	struct cs_txn t;
	bool pending = false;
	cs_txn_begin(&t, &fx.st, NULL);
	expect_get(&t, "ver", "2"); /* a cas check reads the pending version */
	put(&t, "ver", "3");
	cs_txn_drop_writes(&t); /* ...and refuses: its write goes, its read stays */
	ck_assert_int_eq(cs_txn_commit(&t, rec_cb, &r, &pending), 0);
	ck_assert(pending);
	ck_assert_uint_eq(fx.n_props, 1); /* nothing proposed for it */
	apply_next();
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.status, 0);
	/* The pending write is lost instead: the refusal learns it. */
	commit_put("ver", "3", &w2);
	cs_txn_begin(&t, &fx.st, NULL);
	expect_get(&t, "ver", "3");
	cs_txn_drop_writes(&t);
	ck_assert_int_eq(cs_txn_commit(&t, rec_cb, &r2, &pending), 0);
	ck_assert(pending);
	cs_storage_fail_all(&fx.st, CS_ELEADERSHIP);
	ck_assert_int_eq(r2.calls, 1);
	ck_assert_int_eq(r2.status, CS_ELEADERSHIP);
	/* Nothing pending was read: no wait. */
	cs_txn_begin(&t, &fx.st, NULL);
	expect_get(&t, "ver", "2");
	put(&t, "x", "1");
	cs_txn_drop_writes(&t);
	ck_assert_int_eq(cs_txn_commit(&t, rec_cb, &r2, &pending), 0);
	ck_assert(!pending);
}
END_TEST

START_TEST(test_list_merge)
{
	/* LMDB: */
	struct cs_txn t;
	bool pending;
	struct rec r = {0};
	cs_txn_begin(&t, &fx.st, NULL);
	put(&t, "kv/a", "1");
	put(&t, "kv/b/x", "1");
	put(&t, "kv/b/y", "1");
	put(&t, "kv/c", "1");
	put(&t, "kv/d/deep/er", "1");
	put(&t, "kv/e", "1");
	put(&t, "kv0", "outside");
	put(&t, "kw/z", "outside");
	ck_assert_int_eq(cs_txn_commit(&t, rec_cb, &r, &pending), 0);
	apply_all();

	/* Overlay: a new key, a new folder, tombstones for a key and a whole folder. */
	struct rec o = {0};
	cs_txn_begin(&t, &fx.st, NULL);
	put(&t, "kv/aa", "1");
	put(&t, "kv/f/g", "1");
	ck_assert_int_eq(cs_txn_delete(&t, "kv/c"), 0);
	ck_assert_int_eq(cs_txn_delete(&t, "kv/d/deep/er"), 0);
	ck_assert_int_eq(cs_txn_delete(&t, "kv/b/x"), 0);
	ck_assert_int_eq(cs_txn_commit(&t, rec_cb, &o, &pending), 0);

	cs_txn_begin(&t, &fx.st, NULL);
	const char *want1[] = {"a", "aa", "b/", "e", "f/"};
	expect_list(&t, "kv/", false, want1, 5);
	ck_assert_uint_gt(t.read_seq, 0); /* the listing depends on pending writes */

	/* The txn's own writes win over the overlay and LMDB. */
	put(&t, "kv/c", "back");
	ck_assert_int_eq(cs_txn_delete(&t, "kv/aa"), 0);
	ck_assert_int_eq(cs_txn_delete(&t, "kv/e"), 0);
	put(&t, "kv/b", "file-and-folder");
	put(&t, "kv/0", "first");
	const char *want2[] = {"0", "a", "b", "b/", "c", "f/"};
	expect_list(&t, "kv/", false, want2, 6);
	const char *want3[] = {"kv/0", "kv/a", "kv/b", "kv/b/y", "kv/c", "kv/f/g"};
	expect_list(&t, "kv/", true, want3, 6);
	const char *want4[] = {"y"};
	expect_list(&t, "kv/b/", false, want4, 1);
	expect_list(&t, "nothing/", false, NULL, 0);
	const char *want5[] = {"kv/", "kv0", "kw/"};
	expect_list(&t, "", false, want5, 3);
	cs_txn_abort(&t);

	/* After apply the same listing comes from LMDB alone. */
	apply_all();
	ck_assert_int_eq(o.status, 0);
	cs_txn_begin(&t, &fx.st, NULL);
	expect_list(&t, "kv/", false, want1, 5);
	ck_assert_uint_eq(t.read_seq, 0);
	const char *want6[] = {"kv/a", "kv/aa", "kv/b/y", "kv/e", "kv/f/g"};
	expect_list(&t, "kv/", true, want6, 5);
	cs_txn_abort(&t);
}
END_TEST

START_TEST(test_scan_large)
{
	struct cs_txn t;
	bool pending;
	struct rec r = {0};
	char k[32];
	cs_txn_begin(&t, &fx.st, NULL);
	for (int i = 0; i < 2000; i += 2) {
		snprintf(k, sizeof k, "m/%05d", i);
		put(&t, k, "v");
	}
	ck_assert_int_eq(cs_txn_commit(&t, rec_cb, &r, &pending), 0);
	apply_all();
	/* Pending odd keys interleave with the LMDB even ones. */
	cs_txn_begin(&t, &fx.st, NULL);
	for (int i = 1; i < 2000; i += 2) {
		snprintf(k, sizeof k, "m/%05d", i);
		put(&t, k, "v");
	}
	ck_assert_int_eq(cs_txn_commit(&t, rec_cb, &r, &pending), 0);
	cs_txn_begin(&t, &fx.st, NULL);
	struct cs_strv sv = {0};
	ck_assert_int_eq(cs_txn_scan(&t, "m/", &sv), 0);
	ck_assert_uint_eq(sv.n, 2000);
	for (int i = 0; i < 2000; i++) {
		snprintf(k, sizeof k, "m/%05d", i);
		ck_assert_str_eq(sv.v[i], k);
	}
	cs_strv_free(&sv);
	/* Delete everything (a mount being removed), list is empty at once. */
	ck_assert_int_eq(cs_txn_scan(&t, "m/", &sv), 0);
	for (size_t i = 0; i < sv.n; i++)
		ck_assert_int_eq(cs_txn_delete(&t, sv.v[i]), 0);
	cs_strv_free(&sv);
	ck_assert_int_eq(cs_txn_list(&t, "m/", &sv), 0);
	ck_assert_uint_eq(sv.n, 0);
	ck_assert_int_eq(cs_txn_commit(&t, rec_cb, &r, &pending), 0);
	apply_all();
	ck_assert_int_eq(r.status, 0);
	cs_txn_begin(&t, &fx.st, NULL);
	ck_assert_int_eq(cs_txn_scan(&t, "m/", &sv), 0);
	ck_assert_uint_eq(sv.n, 0);
	cs_txn_abort(&t);
}
END_TEST

/* ---------------------------------------------------------------- paged lists */

static void expect_page(struct cs_txn *t, const char *prefix, const char *after, int64_t limit,
			const char *const *want, size_t n)
{
	struct cs_strv sv = {0};
	ck_assert_int_eq(cs_txn_list_page(t, prefix, after, limit, &sv), 0);
	ck_assert_msg(sv.n == n, "page %s after %s limit %lld: %zu names, want %zu", prefix,
		      after ? after : "(null)", (long long)limit, sv.n, n);
	for (size_t i = 0; i < n; i++)
		ck_assert_str_eq(sv.v[i], want[i]);
	cs_strv_free(&sv);
}

START_TEST(test_list_page_bounds)
{
	struct cs_txn t;
	bool pending;
	struct rec r = {0};
	cs_txn_begin(&t, &fx.st, NULL);
	/* "a-b" < "a/" < "a0" in byte order: folders sort by their name with the slash. */
	const char *keys[] = {"p/a", "p/a-b", "p/a/x", "p/a/y/z", "p/a0", "p/b", "p/c/1", "q/z"};
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
		put(&t, keys[i], "v");
	ck_assert_int_eq(cs_txn_commit(&t, rec_cb, &r, &pending), 0);
	apply_all();
	cs_txn_begin(&t, &fx.st, NULL);
	const char *all[] = {"a", "a-b", "a/", "a0", "b", "c/"};
	expect_page(&t, "p/", NULL, 0, all, 6);
	expect_page(&t, "p/", "", 0, all, 6);
	expect_page(&t, "p/", NULL, 1000000000, all, 6); /* a huge limit is all */
	expect_page(&t, "p/", NULL, 2, all, 2);
	expect_page(&t, "p/", "a", 2, all + 1, 2);
	/* after a folder: nothing inside it, the next name */
	expect_page(&t, "p/", "a/", 0, all + 3, 3);
	/* after a missing key: the names sorting after it */
	expect_page(&t, "p/", "a.", 0, all + 2, 4);  /* '.' is between '-' and '/' */
	expect_page(&t, "p/", "a/x", 0, all + 3, 3); /* inside folder a/: a/ itself is before */
	expect_page(&t, "p/", "0", 1, all, 1);
	/* after the last name, or past everything: empty */
	expect_page(&t, "p/", "c/", 0, NULL, 0);
	expect_page(&t, "p/", "zzz", 5, NULL, 0);
	const char *sub[] = {"y/"};
	expect_page(&t, "p/a/", "x", 0, sub, 1);
	/* A scan page: full keys strictly after a full key. */
	struct cs_strv sc = {0};
	ck_assert_int_eq(cs_txn_scan_page(&t, "p/", "p/a/x", 2, &sc), 0);
	ck_assert_uint_eq(sc.n, 2);
	ck_assert_str_eq(sc.v[0], "p/a/y/z");
	ck_assert_str_eq(sc.v[1], "p/a0");
	cs_strv_free(&sc);
	/* A negative limit is refused (and poisons, as any bad argument). */
	struct cs_strv sv = {0};
	ck_assert_int_eq(cs_txn_list_page(&t, "p/", NULL, -1, &sv), CS_EINVAL);
	cs_txn_abort(&t);
}
END_TEST

/* Every (after, limit) page equals the full list filtered, with keys spread over LMDB, the
 * overlay and the txn's own write-set, folders and tombstones included. */
START_TEST(test_list_page_model)
{
	srand(1234);
	const char *names[] = {"a", "a/", "a-", "a0", "b", "b/", "bb", "c/", "d", "e/"};
	const size_t nn = sizeof names / sizeof *names;
	for (int round = 0; round < 20; round++) {
		char k[64];
		struct cs_txn t;
		bool pending;
		struct rec r = {0};
		cs_txn_begin(&t, &fx.st, NULL);
		struct cs_strv old = {0};
		ck_assert_int_eq(cs_txn_scan(&t, "m/", &old), 0);
		for (size_t i = 0; i < old.n; i++)
			ck_assert_int_eq(cs_txn_delete(&t, old.v[i]), 0);
		cs_strv_free(&old);
		for (int i = 0; i < 60; i++) {
			const char *nm = names[rand() % nn];
			size_t l = strlen(nm);
			snprintf(k, sizeof k, "m/%s%s%d", nm, nm[l - 1] == '/' ? "k" : "",
				 rand() % 4);
			put(&t, k, "v");
		}
		ck_assert_int_eq(cs_txn_commit(&t, rec_cb, &r, &pending), 0);
		apply_all();
		/* overlay: some puts and deletes left pending */
		struct rec o = {0};
		cs_txn_begin(&t, &fx.st, NULL);
		for (int i = 0; i < 20; i++) {
			const char *nm = names[rand() % nn];
			size_t l = strlen(nm);
			snprintf(k, sizeof k, "m/%s%s%d", nm, nm[l - 1] == '/' ? "k" : "",
				 rand() % 4);
			if (rand() % 2)
				put(&t, k, "v");
			else
				ck_assert_int_eq(cs_txn_delete(&t, k), 0);
		}
		ck_assert_int_eq(cs_txn_commit(&t, rec_cb, &o, &pending), 0);
		cs_txn_begin(&t, &fx.st, NULL);
		for (int i = 0; i < 10; i++) {
			const char *nm = names[rand() % nn];
			size_t l = strlen(nm);
			snprintf(k, sizeof k, "m/%s%s%d", nm, nm[l - 1] == '/' ? "k" : "",
				 rand() % 4);
			if (rand() % 2)
				put(&t, k, "v");
			else
				ck_assert_int_eq(cs_txn_delete(&t, k), 0);
		}
		struct cs_strv full = {0};
		ck_assert_int_eq(cs_txn_list(&t, "m/", &full), 0);
		const char *afters[] = {NULL, "a",   "a/", "a/k1", "a-1",
					"b",  "bb3", "c/", "zz",   "0"};
		for (size_t ai = 0; ai < sizeof afters / sizeof *afters; ai++) {
			for (int64_t limit = 0; limit <= 4; limit++) {
				const char *a = afters[ai];
				size_t from = 0;
				while (a && from < full.n && strcmp(full.v[from], a) <= 0)
					from++;
				size_t n = full.n - from;
				if (limit && (size_t)limit < n)
					n = (size_t)limit;
				expect_page(&t, "m/", a, limit, (const char *const *)full.v + from,
					    n);
			}
		}
		/* Walking page by page with after = last name gives the whole list. */
		struct cs_strv walk = {0};
		char *after = NULL;
		for (;;) {
			size_t before = walk.n;
			ck_assert_int_eq(cs_txn_list_page(&t, "m/", after, 3, &walk), 0);
			if (walk.n == before)
				break;
			free(after);
			after = strdup(walk.v[walk.n - 1]);
		}
		free(after);
		ck_assert_uint_eq(walk.n, full.n);
		for (size_t i = 0; i < full.n; i++)
			ck_assert_str_eq(walk.v[i], full.v[i]);
		cs_strv_free(&walk);
		cs_strv_free(&full);
		cs_txn_abort(&t);
		apply_all();
	}
}
END_TEST

START_TEST(test_poisoning)
{
	struct cs_txn t;
	bool pending = true;
	struct rec r = {0};
	struct cs_buf b = CS_BUF_INIT;
	char longkey[600];
	memset(longkey, 'k', sizeof longkey - 1);
	longkey[sizeof longkey - 1] = '\0';

	cs_txn_begin(&t, &fx.st, NULL);
	put(&t, "ok", "1");
	/* Not found is an answer, not a failure. */
	ck_assert_int_eq(cs_txn_get_raw(&t, "missing", &b), CS_ENOTFOUND);
	ck_assert_int_eq(cs_txn_put_raw(&t, longkey, "v", 1), CS_EINVAL);
	/* The first error sticks to everything afterwards. */
	ck_assert_int_eq(cs_txn_get_raw(&t, "ok", &b), CS_EINVAL);
	ck_assert_int_eq(cs_txn_put_raw(&t, "other", "v", 1), CS_EINVAL);
	ck_assert_int_eq(cs_txn_delete(&t, "other"), CS_EINVAL);
	struct cs_strv sv = {0};
	ck_assert_int_eq(cs_txn_list(&t, "", &sv), CS_EINVAL);
	ck_assert_int_eq(cs_txn_commit(&t, rec_cb, &r, &pending), CS_EINVAL);
	ck_assert(!pending);
	ck_assert_uint_eq(fx.n_props, 0);

	/* Empty key, and barrier access without a keyring. */
	cs_txn_begin(&t, &fx.st, NULL);
	ck_assert_int_eq(cs_txn_delete(&t, ""), CS_EINVAL);
	cs_txn_abort(&t);
	cs_txn_begin(&t, &fx.st, NULL);
	ck_assert_int_eq(cs_txn_get(&t, "x", &b), CS_ESEALED);
	ck_assert_int_eq(cs_txn_put_raw(&t, "x", "v", 1), CS_ESEALED);
	cs_txn_abort(&t);
	cs_txn_begin(&t, &fx.st, NULL);
	ck_assert_int_eq(cs_txn_put(&t, "x", "v", 1), CS_ESEALED);
	ck_assert_int_eq(cs_txn_commit(&t, rec_cb, &r, &pending), CS_ESEALED);
	cs_buf_free(&b);
	ck_assert_int_eq(r.calls, 0);
}
END_TEST

START_TEST(test_delete_then_get)
{
	seed("gone", "1");
	struct rec r = {0};
	struct cs_txn t;
	bool pending;
	cs_txn_begin(&t, &fx.st, NULL);
	expect_get(&t, "gone", "1");
	ck_assert_int_eq(cs_txn_delete(&t, "gone"), 0);
	ck_assert_int_eq(cs_txn_delete(&t, "never-existed"), 0);
	expect_get(&t, "gone", NULL);
	ck_assert_int_eq(cs_txn_commit(&t, rec_cb, &r, &pending), 0);
	/* Pending tombstone hides the LMDB value from the next txn. */
	cs_txn_begin(&t, &fx.st, NULL);
	expect_get(&t, "gone", NULL);
	ck_assert_uint_eq(t.read_seq, 2); /* seq 1 was the seed */
	cs_txn_abort(&t);
	apply_all();
	ck_assert_int_eq(r.status, 0);
	cs_txn_begin(&t, &fx.st, NULL);
	expect_get(&t, "gone", NULL);
	ck_assert_uint_eq(t.read_seq, 0);
	cs_txn_abort(&t);
}
END_TEST

/* A commit callback that commits another txn, as a pipelined request would. */
struct chain {
	int depth;
	int done;
	int status;
};

static void chain_cb(void *data, int status)
{
	struct chain *c = data;
	c->done++;
	c->status |= status;
	if (c->depth-- <= 0)
		return;
	struct cs_txn t;
	bool pending;
	char k[16];
	snprintf(k, sizeof k, "chain%d", c->depth);
	cs_txn_begin(&t, &fx.st, NULL);
	/* It sees what the previous link wrote, already in LMDB. */
	put(&t, k, "v");
	ck_assert_int_eq(cs_txn_commit(&t, chain_cb, c, &pending), 0);
	ck_assert(pending);
}

static void fail_in_cb(void *data, int status)
{
	struct rec *r = data;
	rec_cb(r, status);
	if (r->calls == 1 && status == 0)
		cs_storage_fail_all(&fx.st, CS_ESEALED);
}

START_TEST(test_reentrant_callbacks)
{
	struct chain c = {.depth = 5};
	struct cs_txn t;
	bool pending;
	cs_txn_begin(&t, &fx.st, NULL);
	put(&t, "start", "v");
	ck_assert_int_eq(cs_txn_commit(&t, chain_cb, &c, &pending), 0);
	/* Each apply runs the callback, which proposes the next link. */
	for (int i = 0; i < 6; i++)
		apply_all();
	ck_assert_int_eq(c.done, 6);
	ck_assert_int_eq(c.status, 0);
	ck_assert_uint_eq(fx.n_props, 6);

	/* A callback that fails everything while its own entry's callbacks still run:
	 * the rest of that entry (applied) still succeeds; later entries fail. */
	struct rec e1 = {0}, e2 = {0}, f = {0}, same = {0}, later = {0};
	size_t base = fx.n_props;
	commit_put("x1", "1", &e1); /* entry 1, in flight */
	commit_put("x2", "1", &e2); /* entry 2, in flight */
	cs_txn_begin(&t, &fx.st, NULL);
	put(&t, "x3", "1");
	ck_assert_int_eq(cs_txn_commit(&t, fail_in_cb, &f, &pending), 0); /* queued */
	commit_put("x4", "1", &same);                                     /* queued */
	apply_next(); /* entry 1; entry 3 = {x3, x4} goes out */
	ck_assert_uint_eq(fx.n_props, base + 3);
	ck_assert_uint_eq(entry_writesets(&fx.props[base + 2]), 2);
	commit_put("x5", "1", &later); /* queued */
	apply_next();                  /* entry 2; entry 4 = {x5} goes out */
	ck_assert_uint_eq(fx.n_props, base + 4);
	apply_next(); /* entry 3: x3's callback fails everything */
	ck_assert_int_eq(f.calls, 1);
	ck_assert_int_eq(f.status, 0);
	ck_assert_int_eq(same.calls, 1);
	ck_assert_int_eq(same.status, 0);
	ck_assert_int_eq(later.calls, 1);
	ck_assert_int_eq(later.status, CS_ESEALED);
	apply_next(); /* entry 4's late result is ignored */
	ck_assert_int_eq(later.calls, 1);
	ck_assert_uint_eq(cs_storage_pending(&fx.st), 0);
	ck_assert_int_eq(fx.st.inflight, 0);
}
END_TEST

START_TEST(test_close_fails_pending)
{
	struct rec w[4] = {{0}}, rd = {0};
	for (int i = 0; i < 4; i++) {
		char k[16];
		snprintf(k, sizeof k, "k%d", i);
		commit_put(k, "v", &w[i]);
	}
	struct cs_txn t;
	bool pending;
	cs_txn_begin(&t, &fx.st, NULL);
	expect_get(&t, "k3", "v");
	ck_assert_int_eq(cs_txn_commit(&t, rec_cb, &rd, &pending), 0);
	cs_storage_close(&fx.st);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(w[i].status, CS_ESHUTDOWN);
	ck_assert_int_eq(rd.status, CS_ESHUTDOWN);
	/* Teardown closes again: a no-op. Commits after close are refused. */
	cs_txn_begin(&t, &fx.st, NULL);
	ck_assert_int_eq(cs_txn_commit(&t, rec_cb, &rd, &pending), CS_ESHUTDOWN);
}
END_TEST

START_TEST(test_barrier_values)
{
	/* A keyring built by hand: the txn only passes it to the barrier. */
	static uint8_t root[CS_KEY_LEN], key1[CS_KEY_LEN];
	memset(root, 1, sizeof root);
	memset(key1, 2, sizeof key1);
	struct cs_keyring_key keys[1] = {{1, key1, 0, 0}};
	struct cs_keyring kr = {.root_key = root, .keys = keys, .n_keys = 1, .active_term = 1};
	static const char secret[] = "s3cr3t value";
	struct cs_txn t;
	bool pending;
	struct rec r = {0};
	struct cs_buf b = CS_BUF_INIT;

	cs_txn_begin(&t, &fx.st, &kr);
	ck_assert_int_eq(cs_txn_put(&t, "secret/a", secret, sizeof secret - 1), 0);
	/* Own write, decrypted. */
	ck_assert_int_eq(cs_txn_get(&t, "secret/a", &b), 0);
	ck_assert_str_eq(b.data, secret);
	cs_buf_free_secure(&b);
	ck_assert_int_eq(cs_txn_commit(&t, rec_cb, &r, &pending), 0);
	/* From the overlay, then from LMDB. */
	cs_txn_begin(&t, &fx.st, &kr);
	ck_assert_int_eq(cs_txn_get(&t, "secret/a", &b), 0);
	ck_assert_str_eq(b.data, secret);
	cs_buf_free_secure(&b);
	cs_txn_abort(&t);
	apply_all();
	ck_assert_int_eq(r.status, 0);
	cs_txn_begin(&t, &fx.st, &kr);
	ck_assert_int_eq(cs_txn_get(&t, "secret/a", &b), 0);
	ck_assert_str_eq(b.data, secret);
	cs_buf_free_secure(&b);

	/* Stored bytes are the barrier's framing, never the plaintext. */
	ck_assert_int_eq(cs_txn_get_raw(&t, "secret/a", &b), 0);
	ck_assert_uint_eq(b.len, sizeof secret - 1 + CS_BARRIER_OVERHEAD);
	ck_assert_ptr_null(memmem(b.data, b.len, secret, sizeof secret - 1));
	/* The key is the AAD: the same bytes under another key do not decrypt, and the
	 * failure poisons the txn. */
	ck_assert_int_eq(cs_txn_put_raw(&t, "secret/moved", b.data, b.len), 0);
	cs_buf_free(&b);
	ck_assert_int_eq(cs_txn_get(&t, "secret/moved", &b), CS_ECRYPTO);
	ck_assert_int_eq(cs_txn_get(&t, "secret/a", &b), CS_ECRYPTO);
	ck_assert_int_eq(cs_txn_commit(&t, rec_cb, &r, &pending), CS_ECRYPTO);
	cs_buf_free(&b);
}
END_TEST

static int count_ops(void *ctx, uint8_t op, const char *key, size_t klen, const void *val,
		     size_t vlen)
{
	int *n = ctx;
	(*n)++;
	return 0;
}

START_TEST(test_batch_codec)
{
	struct cs_writeset ws = {0};
	struct cs_wsop ops[2] = {
	    {CS_WS_PUT, (char *)"a", 1, (uint8_t *)"xyz", 3},
	    {CS_WS_DELETE, (char *)"b", 1, NULL, 0},
	};
	ws.ops = ops;
	ws.n = 2;
	struct cs_buf e = CS_BUF_INIT;
	cs_batch_init(&e);
	cs_batch_add(&e, &ws);
	cs_batch_add(&e, &ws);
	cs_batch_finish(&e, 2);
	int n = 0;
	ck_assert_int_eq(cs_batch_decode(e.data, e.len, count_ops, &n), 0);
	ck_assert_int_eq(n, 4);
	/* Every truncation is rejected; so is trailing garbage and a wrong count. */
	for (size_t len = 0; len < e.len; len++)
		ck_assert_int_eq(cs_batch_decode(e.data, len, NULL, NULL), CS_EINVAL);
	/* Up to 7 zero bytes of padding (raft_uv's 8-byte rule) are fine; more are not,
	 * nor is anything else after the last write-set. */
	size_t len0 = e.len;
	for (int i = 1; i <= 8; i++) {
		cs_buf_putc(&e, 0);
		ck_assert_int_eq(cs_batch_decode(e.data, e.len, NULL, NULL), i < 8 ? 0 : CS_EINVAL);
	}
	e.len = len0 + 1;
	e.data[len0] = 1;
	ck_assert_int_eq(cs_batch_decode(e.data, e.len, NULL, NULL), CS_EINVAL);
	e.len = len0;
	cs_batch_finish(&e, 3);
	ck_assert_int_eq(cs_batch_decode(e.data, e.len, NULL, NULL), CS_EINVAL);
	cs_batch_finish(&e, 2);
	e.data[9 + 4] = 9; /* unknown op */
	ck_assert_int_eq(cs_batch_decode(e.data, e.len, NULL, NULL), CS_EINVAL);
	cs_buf_free(&e);
}
END_TEST

static Suite *txn_suite(void)
{
	Suite *s = suite_create("txn");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_read_own_writes);
	tcase_add_test(tc, test_overlay_visible_and_reader_held);
	tcase_add_test(tc, test_reader_waits_for_newest);
	tcase_add_test(tc, test_group_commit);
	tcase_add_test(tc, test_entry_size_cap);
	tcase_add_test(tc, test_failure_drops_everything);
	tcase_add_test(tc, test_fail_all_and_late_done);
	tcase_add_test(tc, test_refused_commit);
	tcase_add_test(tc, test_dropped_overlay_read);
	tcase_add_test(tc, test_drop_writes_waits_for_reads);
	tcase_add_test(tc, test_list_merge);
	tcase_add_test(tc, test_scan_large);
	tcase_add_test(tc, test_list_page_bounds);
	tcase_add_test(tc, test_list_page_model);
	tcase_add_test(tc, test_poisoning);
	tcase_add_test(tc, test_delete_then_get);
	tcase_add_test(tc, test_reentrant_callbacks);
	tcase_add_test(tc, test_close_fails_pending);
	tcase_add_test(tc, test_batch_codec);
	tcase_add_test(tc, test_barrier_values);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	SRunner *sr = srunner_create(txn_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
