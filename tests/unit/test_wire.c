/*
 * The c-raft framing check (raft/wire.c): every message c-raft 0.15 sends passes, in one
 * piece or split anywhere; every message shape that c-raft would decode unsafely is
 * refused at the chunk that shows it. The messages are built here in c-raft's layout
 * (src/uv_encoding.c, v0.15.0), spare header bytes included.
 */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft/wire.h"

/* ---------------------------------------------------------------- a message builder */

struct msg {
	uint8_t b[16384];
	size_t len;
	size_t hlen_at; /* where the preamble's header length is */
};

static void u8(struct msg *m, uint8_t v)
{
	m->b[m->len++] = v;
}

static void u64(struct msg *m, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		u8(m, (uint8_t)(v >> (8 * i)));
}

static void u32(struct msg *m, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		u8(m, (uint8_t)(v >> (8 * i)));
}

static void bytes(struct msg *m, const char *s, size_t n)
{
	memcpy(m->b + m->len, s, n);
	m->len += n;
}

static void begin(struct msg *m, uint64_t type)
{
	u64(m, type);
	m->hlen_at = m->len;
	u64(m, 0); /* patched by end_header */
}

/* The header length is everything written since the preamble, plus `spare`. */
static void end_header(struct msg *m, size_t spare)
{
	for (size_t i = 0; i < spare; i++)
		u8(m, 0);
	uint64_t h = m->len - m->hlen_at - 8;
	for (int i = 0; i < 8; i++)
		m->b[m->hlen_at + i] = (uint8_t)(h >> (8 * i));
}

static void append_entries(struct msg *m, unsigned n, const uint32_t *lens, const uint8_t *types)
{
	begin(m, 1);
	u64(m, 3); /* term */
	u64(m, 10);
	u64(m, 2);
	u64(m, 9);
	u64(m, n);
	for (unsigned i = 0; i < n; i++) {
		u64(m, 3);
		u8(m, types ? types[i] : 1);
		u8(m, 0), u8(m, 0), u8(m, 0);
		u32(m, lens[i]);
	}
	end_header(m, 8);
	for (unsigned i = 0; i < n; i++)
		for (uint32_t j = 0; j < lens[i]; j++)
			u8(m, (uint8_t)(j * 31 + i));
}

/* A configuration of `n` servers "127.0.0.1:900<i>", padded to 8 like c-raft's. */
static void conf(struct msg *m, unsigned n, uint8_t role)
{
	size_t start = m->len;
	u8(m, 1);
	u64(m, n);
	for (unsigned i = 0; i < n; i++) {
		char a[32];
		int al = snprintf(a, sizeof a, "127.0.0.1:900%u", i + 1);
		u64(m, i + 1);
		bytes(m, a, (size_t)al + 1);
		u8(m, role);
	}
	while ((m->len - start) % 8)
		u8(m, 0);
}

static void install_snapshot(struct msg *m, uint64_t data_len)
{
	begin(m, 5);
	u64(m, 4); /* term */
	u64(m, 100);
	u64(m, 4);
	u64(m, 1); /* conf index */
	size_t len_at = m->len;
	u64(m, 0);
	conf(m, 3, 1);
	uint64_t cl = m->len - len_at - 8;
	for (int i = 0; i < 8; i++)
		m->b[len_at + i] = (uint8_t)(cl >> (8 * i));
	u64(m, data_len);
	end_header(m, 8);
	for (uint64_t i = 0; i < data_len; i++)
		u8(m, (uint8_t)i);
}

static void fixed(struct msg *m, uint64_t type, size_t fields)
{
	begin(m, type);
	for (size_t i = 0; i < fields; i++)
		u64(m, i + 1);
	end_header(m, 0);
}

/* Every kind c-raft 0.15 sends, back to back. */
static size_t all_kinds(struct msg *m)
{
	static const uint32_t lens[] = {8, 16, 24};
	static const uint8_t types[] = {2, 1, 3};
	m->len = 0;
	append_entries(m, 0, NULL, NULL); /* heartbeat */
	append_entries(m, 3, lens, types);
	fixed(m, 2, 3); /* AppendEntriesResult */
	fixed(m, 3, 4); /* RequestVote, legacy */
	fixed(m, 3, 5); /* RequestVote */
	fixed(m, 4, 2); /* RequestVoteResult, legacy */
	fixed(m, 4, 3);
	install_snapshot(m, 40);
	fixed(m, 6, 3); /* TimeoutNow */
	return 9;
}

/* ---------------------------------------------------------------- helpers */

static int feed_whole(const uint8_t *p, size_t n, uint64_t max, struct cs_wire *w)
{
	cs_wire_init(w, max);
	return cs_wire_feed(w, p, n);
}

static int feed_split(const uint8_t *p, size_t n, uint64_t max, unsigned seed, struct cs_wire *w)
{
	cs_wire_init(w, max);
	size_t off = 0;
	while (off < n) {
		seed = seed * 1103515245u + 12345u;
		size_t k = 1 + (seed >> 16) % 23;
		if (k > n - off)
			k = n - off;
		if (cs_wire_feed(w, p + off, k) != 0)
			return -1;
		off += k;
	}
	return 0;
}

static void expect_refused(const struct msg *m, uint64_t max, const char *why)
{
	struct cs_wire w;
	ck_assert_msg(feed_whole(m->b, m->len, max, &w) == -1, "accepted: %s", why);
	ck_assert_ptr_nonnull(w.error);
	ck_assert_msg(strstr(w.error, why), "'%s' refused for '%s'", why, w.error);
	ck_assert_int_eq(cs_wire_feed(&w, m->b, 1), -1); /* stays refused */
	for (unsigned s = 1; s < 20; s++)
		ck_assert_int_eq(feed_split(m->b, m->len, max, s, &w), -1);
}

/* ---------------------------------------------------------------- tests */

START_TEST(test_valid_stream)
{
	static struct msg m;
	size_t kinds = all_kinds(&m);
	struct cs_wire w;
	ck_assert_int_eq(feed_whole(m.b, m.len, 0, &w), 0);
	ck_assert_uint_eq(w.messages, kinds);
	/* byte at a time */
	cs_wire_init(&w, 0);
	for (size_t i = 0; i < m.len; i++)
		ck_assert_int_eq(cs_wire_feed(&w, m.b + i, 1), 0);
	ck_assert_uint_eq(w.messages, kinds);
	for (unsigned s = 1; s < 200; s++) {
		ck_assert_int_eq(feed_split(m.b, m.len, 0, s, &w), 0);
		ck_assert_uint_eq(w.messages, kinds);
	}
	/* a message cut anywhere is a valid prefix, not yet a message */
	for (size_t cut = 1; cut < 16 + 48; cut++) {
		ck_assert_int_eq(feed_whole(m.b, cut, 0, &w), 0);
		ck_assert_uint_eq(w.messages, 0);
	}
	/* a header without its spare bytes (lengths c-raft's decoder also accepts) */
	static struct msg h;
	h.len = 0;
	begin(&h, 1);
	for (int i = 0; i < 5; i++)
		u64(&h, i == 4 ? 0 : 1);
	end_header(&h, 0);
	ck_assert_int_eq(feed_whole(h.b, h.len, 0, &w), 0);
	ck_assert_uint_eq(w.messages, 1);
}
END_TEST

START_TEST(test_bad_types_and_lengths)
{
	static struct msg m;
	static const uint64_t bad_types[] = {0, 7, 255, 65537 /* (unsigned short) 1 */,
					     ((uint64_t)1 << 32) | 1};
	for (size_t i = 0; i < sizeof bad_types / sizeof *bad_types; i++) {
		m.len = 0;
		fixed(&m, bad_types[i], 3);
		expect_refused(&m, 0, "unknown raft message type");
	}
	static const struct {
		uint64_t type;
		size_t fields;
		const char *why;
	} bad_len[] = {
	    {2, 2, "bad header length"},
	    {2, 0, "bad header length"},
	    {6, 4, "bad header length"},
	    {3, 3, "bad RequestVote header"},
	    {3, 6, "bad RequestVote header"},
	    {4, 1, "bad RequestVoteResult header"},
	    {4, 4, "bad RequestVoteResult header"},
	    {1, 4, "bad AppendEntries header length"},
	    {5, 5, "bad InstallSnapshot header length"},
	};
	for (size_t i = 0; i < sizeof bad_len / sizeof *bad_len; i++) {
		m.len = 0;
		fixed(&m, bad_len[i].type, bad_len[i].fields);
		expect_refused(&m, 0, bad_len[i].why);
	}
	/* absurd header lengths are refused from the preamble alone */
	m.len = 0;
	begin(&m, 1);
	end_header(&m, 0);
	memset(m.b + 8, 0xff, 8);
	expect_refused(&m, 0, "bad AppendEntries header length");
	m.b[0] = 5;
	expect_refused(&m, 0, "bad InstallSnapshot header length");
}
END_TEST

START_TEST(test_bad_append_entries)
{
	static struct msg m;
	uint32_t lens[2] = {8, 16};
	uint8_t types[2] = {1, 1};

	/* the entry count disagrees with the header length */
	m.len = 0;
	append_entries(&m, 2, lens, types);
	m.b[16 + 32] = 3;
	expect_refused(&m, 0, "entry count does not match");
	m.b[16 + 32] = 1;
	expect_refused(&m, 0, "entry count does not match");
	memset(m.b + 16 + 32, 0xff, 8);
	expect_refused(&m, 0, "entry count does not match");

	/* header two spare words long */
	m.len = 0;
	begin(&m, 1);
	for (int i = 0; i < 5; i++)
		u64(&m, 0);
	end_header(&m, 16);
	expect_refused(&m, 0, "entry count does not match");

	static const struct {
		uint32_t len;
		uint8_t type;
		const char *why;
	} bad[] = {
	    {8, 0, "bad entry type"},
	    {8, 4, "bad entry type"},
	    {12, 1, "bad entry length"},
	    {0, 1, "bad entry length"},
	    {(uint32_t)CS_WIRE_MAX_ENTRY + 8, 1, "bad entry length"},
	    {0xfffffff8u, 1, "bad entry length"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		m.len = 0;
		/* announce the bad entry as the second, without its payload bytes */
		uint32_t l[2] = {8, 0};
		uint8_t t[2] = {1, 1};
		append_entries(&m, 2, l, t);
		size_t e2 = 16 + 40 + 16;
		m.b[e2 + 8] = bad[i].type;
		for (int k = 0; k < 4; k++)
			m.b[e2 + 12 + k] = (uint8_t)(bad[i].len >> (8 * k));
		expect_refused(&m, 0, bad[i].why);
	}

	/* the payload bound is per message and counts every entry */
	uint32_t big[2] = {4096, 4096};
	m.len = 0;
	append_entries(&m, 2, big, NULL);
	struct cs_wire w;
	ck_assert_int_eq(feed_whole(m.b, m.len, 8192, &w), 0);
	expect_refused(&m, 8191, "payload too large");
}
END_TEST

/* Offset of the InstallSnapshot fields in a message built by install_snapshot(). */
#define IS_CONF_LEN 16 + 32
#define IS_CONF     16 + 40

START_TEST(test_bad_install_snapshot)
{
	static struct msg good, m;
	good.len = 0;
	install_snapshot(&good, 16);
	struct cs_wire w;
	ck_assert_int_eq(feed_whole(good.b, good.len, 0, &w), 0);
	ck_assert_uint_eq(w.messages, 1);
	uint64_t conf_len = 0;
	for (int i = 7; i >= 0; i--)
		conf_len = conf_len << 8 | good.b[IS_CONF_LEN + i];

	/* configuration length: zero, past the header, too large */
	static const uint64_t bad_conf_len[] = {0, 8, 4096, (uint64_t)1 << 40};
	for (size_t i = 0; i < sizeof bad_conf_len / sizeof *bad_conf_len; i++) {
		m = good;
		for (int k = 0; k < 8; k++)
			m.b[IS_CONF_LEN + k] = (uint8_t)(bad_conf_len[i] >> (8 * k));
		expect_refused(&m, 0, "configuration length");
	}
	/* shorter by 8: then the header has 16 bytes to spare */
	m = good;
	m.b[IS_CONF_LEN] = (uint8_t)(conf_len - 8);
	expect_refused(&m, 0, "");

	m = good;
	m.b[IS_CONF] = 2;
	expect_refused(&m, 0, "bad configuration format");

	m = good;
	memset(m.b + IS_CONF + 1, 0x7f, 8);
	expect_refused(&m, 0, "server count");

	m = good;
	memset(m.b + IS_CONF + 9, 0, 8); /* first server's id */
	expect_refused(&m, 0, "server id 0");

	m = good;
	m.b[IS_CONF + 17] = 0; /* first address empty */
	expect_refused(&m, 0, "bad configuration address");

	/* the last address runs to the end of the configuration: no NUL inside it */
	m = good;
	for (size_t i = IS_CONF + 9; i < IS_CONF + conf_len; i++)
		if (m.b[i] == 0 && i > IS_CONF + 9 + 8)
			m.b[i] = 'x';
	expect_refused(&m, 0, "");

	/* role 3 (c-raft has standby 0, voter 1, spare 2) */
	m.len = 0;
	begin(&m, 5);
	for (int i = 0; i < 4; i++)
		u64(&m, 1);
	size_t at = m.len;
	u64(&m, 0);
	conf(&m, 1, 3);
	m.b[at] = (uint8_t)(m.len - at - 8);
	u64(&m, 8);
	end_header(&m, 8);
	expect_refused(&m, 0, "bad configuration role");

	/* snapshot data: empty, or larger than the store can hold */
	m.len = 0;
	install_snapshot(&m, 0);
	expect_refused(&m, 0, "bad snapshot data length");
	m.len = 0;
	install_snapshot(&m, 64);
	expect_refused(&m, 63, "bad snapshot data length");
}
END_TEST

/* Random mutations of a valid stream: the verdict and the message count never depend on
 * how the bytes are split, and a refusal is final. */
START_TEST(test_split_invariance)
{
	static struct msg base, m;
	all_kinds(&base);
	unsigned seed = 7;
	unsigned refused = 0;
	for (int iter = 0; iter < 3000; iter++) {
		m = base;
		int flips = 1 + iter % 4;
		for (int f = 0; f < flips; f++) {
			seed = seed * 1103515245u + 12345u;
			size_t pos = (seed >> 8) % m.len;
			seed = seed * 1103515245u + 12345u;
			m.b[pos] = (uint8_t)(seed >> 16);
		}
		struct cs_wire a, b;
		int ra = feed_whole(m.b, m.len, 1u << 20, &a);
		int rb = feed_split(m.b, m.len, 1u << 20, seed, &b);
		ck_assert_int_eq(ra, rb);
		ck_assert_uint_eq(a.messages, b.messages);
		if (ra != 0) {
			refused++;
			ck_assert_str_eq(a.error, b.error);
		}
	}
	ck_assert_uint_gt(refused, 100);
}
END_TEST

static Suite *wire_suite(void)
{
	Suite *s = suite_create("wire");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_valid_stream);
	tcase_add_test(tc, test_bad_types_and_lengths);
	tcase_add_test(tc, test_bad_append_entries);
	tcase_add_test(tc, test_bad_install_snapshot);
	tcase_add_test(tc, test_split_invariance);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(wire_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
