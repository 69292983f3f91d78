/* Unit tests for Shamir secret sharing and GF(2^8) arithmetic (storage/shamir.c). */
#include <check.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/util.h"
#include "storage/shamir.h"

/* Textbook carry-less multiply then reduction by 0x11b: the slow reference. */
static uint8_t slow_mul(uint8_t a, uint8_t b)
{
	unsigned p = 0;
	for (int i = 0; i < 8; i++)
		if (b & (1u << i))
			p ^= (unsigned)a << i;
	for (int i = 15; i >= 8; i--)
		if (p & (1u << i))
			p ^= 0x11bu << (i - 8);
	return (uint8_t)p;
}

/* Shares as one block plus a pointer array, the way callers hold them. */
struct shares {
	int parts;
	size_t len; /* secret length; each share is len + 1 bytes */
	uint8_t *mem;
	uint8_t **p;
};

static void shares_init(struct shares *s, int parts, size_t len)
{
	s->parts = parts;
	s->len = len;
	s->mem = calloc((size_t)parts, len + 1);
	s->p = calloc((size_t)parts, sizeof *s->p);
	ck_assert_ptr_nonnull(s->mem);
	ck_assert_ptr_nonnull(s->p);
	for (int i = 0; i < parts; i++)
		s->p[i] = s->mem + (size_t)i * (len + 1);
}

static void shares_free(struct shares *s)
{
	free(s->mem);
	free(s->p);
}

/* Combine the shares selected by the bitmask; true if the result equals secret. */
static bool combine_mask(const struct shares *s, unsigned long mask, const uint8_t *secret)
{
	const uint8_t *sel[32];
	int n = 0;
	for (int i = 0; i < s->parts; i++)
		if (mask & (1ul << i))
			sel[n++] = s->p[i];
	uint8_t out[64];
	ck_assert_uint_le(s->len, sizeof out);
	ck_assert_int_eq(cs_shamir_combine(sel, n, s->len + 1, out), 0);
	return memcmp(out, secret, s->len) == 0;
}

static int popcount(unsigned long v)
{
	int n = 0;
	for (; v; v &= v - 1)
		n++;
	return n;
}

START_TEST(test_gf_mul_matches_reference)
{
	for (unsigned a = 0; a < 256; a++)
		for (unsigned b = 0; b < 256; b++)
			ck_assert_uint_eq(cs_gf256_mul((uint8_t)a, (uint8_t)b),
					  slow_mul((uint8_t)a, (uint8_t)b));
	/* Classic AES example: {57} x {83} = {c1}. */
	ck_assert_uint_eq(cs_gf256_mul(0x57, 0x83), 0xc1);
	ck_assert_uint_eq(cs_gf256_mul(0x57, 0x13), 0xfe);
}
END_TEST

START_TEST(test_gf_field_properties)
{
	for (unsigned a = 0; a < 256; a++) {
		ck_assert_uint_eq(cs_gf256_mul((uint8_t)a, 1), a);
		ck_assert_uint_eq(cs_gf256_mul((uint8_t)a, 0), 0);
		for (unsigned b = 0; b < 256; b += 7) {
			ck_assert_uint_eq(cs_gf256_mul((uint8_t)a, (uint8_t)b),
					  cs_gf256_mul((uint8_t)b, (uint8_t)a));
			for (unsigned c = 0; c < 256; c += 31) {
				/* Distributive over XOR, associative. */
				uint8_t l = cs_gf256_mul((uint8_t)a, (uint8_t)(b ^ c));
				uint8_t r = (uint8_t)(cs_gf256_mul((uint8_t)a, (uint8_t)b) ^
						      cs_gf256_mul((uint8_t)a, (uint8_t)c));
				ck_assert_uint_eq(l, r);
				ck_assert_uint_eq(
				    cs_gf256_mul(cs_gf256_mul((uint8_t)a, (uint8_t)b), (uint8_t)c),
				    cs_gf256_mul((uint8_t)a, cs_gf256_mul((uint8_t)b, (uint8_t)c)));
			}
		}
	}
}
END_TEST

START_TEST(test_gf_inverse)
{
	ck_assert_uint_eq(cs_gf256_inv(0), 0);
	ck_assert_uint_eq(cs_gf256_inv(1), 1);
	/* Known AES S-box inverse pair. */
	ck_assert_uint_eq(cs_gf256_inv(0x53), 0xca);
	for (unsigned a = 1; a < 256; a++) {
		uint8_t inv = cs_gf256_inv((uint8_t)a);
		ck_assert_uint_eq(cs_gf256_mul((uint8_t)a, inv), 1);
		ck_assert_uint_eq(cs_gf256_inv(inv), a);
	}
}
END_TEST

START_TEST(test_split_combine_all_subsets_5_3)
{
	uint8_t secret[32];
	cs_random(secret, sizeof secret);
	struct shares s;
	shares_init(&s, 5, sizeof secret);
	ck_assert_int_eq(cs_shamir_split(secret, sizeof secret, 5, 3, s.p), 0);
	int good = 0, bad = 0;
	for (unsigned long m = 1; m < (1ul << 5); m++) {
		int k = popcount(m);
		if (k < 2)
			continue;
		bool ok = combine_mask(&s, m, secret);
		if (k >= 3) {
			ck_assert_msg(ok, "subset %lx of size %d failed", m, k);
			good++;
		} else {
			ck_assert_msg(!ok, "subset %lx of size 2 recovered a 32-byte secret", m);
			bad++;
		}
	}
	ck_assert_int_eq(good, 16); /* C(5,3)+C(5,4)+C(5,5) */
	ck_assert_int_eq(bad, 10);  /* C(5,2) */
	shares_free(&s);
}
END_TEST

/* Every (parts, threshold) with parts <= 8: all subsets at or above threshold. */
START_TEST(test_split_combine_small_grid)
{
	for (int parts = 2; parts <= 8; parts++) {
		for (int t = 2; t <= parts; t++) {
			uint8_t secret[17];
			cs_random(secret, sizeof secret);
			struct shares s;
			shares_init(&s, parts, sizeof secret);
			ck_assert_int_eq(cs_shamir_split(secret, sizeof secret, parts, t, s.p), 0);
			for (unsigned long m = 1; m < (1ul << parts); m++) {
				int k = popcount(m);
				if (k < 2)
					continue;
				bool ok = combine_mask(&s, m, secret);
				if (k >= t)
					ck_assert_msg(ok, "%d/%d mask %lx", parts, t, m);
				else
					ck_assert_msg(!ok, "%d/%d mask %lx below threshold", parts,
						      t, m);
			}
			shares_free(&s);
		}
	}
}
END_TEST

START_TEST(test_split_255_parts)
{
	uint8_t secret[32];
	cs_random(secret, sizeof secret);
	const int thresholds[] = {2, 3, 10, 128, 255};
	for (size_t ti = 0; ti < CS_ARRAY_LEN(thresholds); ti++) {
		int t = thresholds[ti];
		struct shares s;
		shares_init(&s, 255, sizeof secret);
		ck_assert_int_eq(cs_shamir_split(secret, sizeof secret, 255, t, s.p), 0);
		/* x-coordinates are exactly a permutation of 1..255. */
		bool seen[256] = {false};
		for (int i = 0; i < 255; i++) {
			uint8_t x = s.p[i][sizeof secret];
			ck_assert_uint_ne(x, 0);
			ck_assert(!seen[x]);
			seen[x] = true;
		}
		const uint8_t *sel[255];
		uint8_t out[32];
		for (int trial = 0; trial < 5; trial++) {
			/* A random subset of exactly t shares, and one of t-1. */
			int idx[255];
			for (int i = 0; i < 255; i++)
				idx[i] = i;
			for (int i = 254; i > 0; i--) {
				uint8_t r[2];
				cs_random(r, 2);
				int j = (r[0] << 8 | r[1]) % (i + 1);
				int tmp = idx[i];
				idx[i] = idx[j];
				idx[j] = tmp;
			}
			for (int i = 0; i < t; i++)
				sel[i] = s.p[idx[i]];
			ck_assert_int_eq(cs_shamir_combine(sel, t, sizeof secret + 1, out), 0);
			ck_assert_mem_eq(out, secret, sizeof secret);
			if (t > 2) {
				ck_assert_int_eq(
				    cs_shamir_combine(sel, t - 1, sizeof secret + 1, out), 0);
				ck_assert(memcmp(out, secret, sizeof secret) != 0);
			}
		}
		/* All 255 shares (more than the threshold) also work. */
		for (int i = 0; i < 255; i++)
			sel[i] = s.p[i];
		ck_assert_int_eq(cs_shamir_combine(sel, 255, sizeof secret + 1, out), 0);
		ck_assert_mem_eq(out, secret, sizeof secret);
		shares_free(&s);
	}
}
END_TEST

START_TEST(test_share_format)
{
	for (int round = 0; round < 50; round++) {
		uint8_t secret[5] = {1, 2, 3, 4, 5};
		/* Canary byte after each share: the split writes exactly len + 1 bytes. */
		uint8_t mem[10][7];
		memset(mem, 0xAA, sizeof mem);
		uint8_t *p[10];
		for (int i = 0; i < 10; i++)
			p[i] = mem[i];
		ck_assert_int_eq(cs_shamir_split(secret, 5, 10, 4, p), 0);
		bool seen[256] = {false};
		for (int i = 0; i < 10; i++) {
			ck_assert_uint_eq(mem[i][6], 0xAA);
			uint8_t x = mem[i][5];
			ck_assert_uint_ne(x, 0);
			ck_assert(!seen[x]);
			seen[x] = true;
		}
	}
	/* A one-byte secret makes two-byte shares. */
	uint8_t one = 0x42, a[2], b[2], out = 0;
	uint8_t *p2[2] = {a, b};
	ck_assert_int_eq(cs_shamir_split(&one, 1, 2, 2, p2), 0);
	const uint8_t *c2[2] = {a, b};
	ck_assert_int_eq(cs_shamir_combine(c2, 2, 2, &out), 0);
	ck_assert_uint_eq(out, 0x42);
}
END_TEST

START_TEST(test_x_coordinates_vary)
{
	/* The x-coordinates come from a random permutation, not 1..n in order. */
	uint8_t secret[4] = {9, 9, 9, 9};
	bool all_sequential = true;
	for (int round = 0; round < 20 && all_sequential; round++) {
		struct shares s;
		shares_init(&s, 3, sizeof secret);
		ck_assert_int_eq(cs_shamir_split(secret, sizeof secret, 3, 2, s.p), 0);
		for (int i = 0; i < 3; i++)
			if (s.p[i][sizeof secret] != i + 1)
				all_sequential = false;
		shares_free(&s);
	}
	ck_assert(!all_sequential);
}
END_TEST

START_TEST(test_invalid_params)
{
	uint8_t secret[8] = {0};
	struct shares s;
	shares_init(&s, 255, sizeof secret);
	ck_assert_int_eq(cs_shamir_split(secret, sizeof secret, 3, 1, s.p), CS_EINVAL);
	ck_assert_int_eq(cs_shamir_split(secret, sizeof secret, 1, 1, s.p), CS_EINVAL);
	ck_assert_int_eq(cs_shamir_split(secret, sizeof secret, 2, 3, s.p), CS_EINVAL);
	ck_assert_int_eq(cs_shamir_split(secret, sizeof secret, 256, 3, s.p), CS_EINVAL);
	ck_assert_int_eq(cs_shamir_split(secret, sizeof secret, 3, 0, s.p), CS_EINVAL);
	ck_assert_int_eq(cs_shamir_split(secret, sizeof secret, -1, -5, s.p), CS_EINVAL);
	ck_assert_int_eq(cs_shamir_split(secret, 0, 3, 2, s.p), CS_EINVAL);
	ck_assert_int_eq(cs_shamir_split(NULL, 8, 3, 2, s.p), CS_EINVAL);
	ck_assert_int_eq(cs_shamir_split(secret, sizeof secret, 3, 2, NULL), CS_EINVAL);
	ck_assert_int_eq(cs_shamir_split(secret, sizeof secret, 255, 255, s.p), 0);

	uint8_t out[8];
	const uint8_t *sel[2] = {s.p[0], s.p[1]};
	ck_assert_int_eq(cs_shamir_combine(sel, 1, 9, out), CS_EINVAL);
	ck_assert_int_eq(cs_shamir_combine(sel, 0, 9, out), CS_EINVAL);
	ck_assert_int_eq(cs_shamir_combine(sel, 2, 1, out), CS_EINVAL);
	ck_assert_int_eq(cs_shamir_combine(sel, 2, 0, out), CS_EINVAL);
	ck_assert_int_eq(cs_shamir_combine(NULL, 2, 9, out), CS_EINVAL);
	ck_assert_int_eq(cs_shamir_combine(sel, 2, 9, NULL), CS_EINVAL);
	shares_free(&s);
}
END_TEST

START_TEST(test_duplicate_x_rejected)
{
	uint8_t secret[16];
	cs_random(secret, sizeof secret);
	struct shares s;
	shares_init(&s, 5, sizeof secret);
	ck_assert_int_eq(cs_shamir_split(secret, sizeof secret, 5, 3, s.p), 0);
	uint8_t out[16];
	/* The same share twice. */
	const uint8_t *sel[4] = {s.p[0], s.p[1], s.p[0]};
	ck_assert_int_eq(cs_shamir_combine(sel, 3, sizeof secret + 1, out), CS_EINVAL);
	/* A different share carrying an already-seen x. */
	uint8_t forged[17];
	memcpy(forged, s.p[3], sizeof forged);
	forged[16] = s.p[1][16];
	const uint8_t *sel2[4] = {s.p[0], s.p[1], s.p[2], forged};
	ck_assert_int_eq(cs_shamir_combine(sel2, 4, sizeof secret + 1, out), CS_EINVAL);
	shares_free(&s);
}
END_TEST

/* Known answer: shares of f(x) = s + c*x built by hand combine back to s. */
START_TEST(test_known_answer_degree1)
{
	const uint8_t sec[4] = {0x00, 0x42, 0xff, 0x9c};
	const uint8_t coef[4] = {0x01, 0x8e, 0x37, 0xd0};
	const uint8_t xs[3] = {1, 0x53, 0xfe};
	uint8_t sh[3][5];
	for (int i = 0; i < 3; i++) {
		for (int k = 0; k < 4; k++)
			sh[i][k] = (uint8_t)(sec[k] ^ cs_gf256_mul(coef[k], xs[i]));
		sh[i][4] = xs[i];
	}
	/* Fully hand-computed point: x = 1 gives y = s ^ c. */
	ck_assert_uint_eq(sh[0][1], 0x42 ^ 0x8e);
	uint8_t out[4];
	for (int i = 0; i < 3; i++) {
		for (int j = 0; j < 3; j++) {
			if (i == j)
				continue;
			const uint8_t *sel[2] = {sh[i], sh[j]};
			ck_assert_int_eq(cs_shamir_combine(sel, 2, 5, out), 0);
			ck_assert_mem_eq(out, sec, 4);
		}
	}
	const uint8_t *all[3] = {sh[0], sh[1], sh[2]};
	ck_assert_int_eq(cs_shamir_combine(all, 3, 5, out), 0);
	ck_assert_mem_eq(out, sec, 4);

	/* Two-point interpolation by hand for one byte with x = 1 and x = 2:
	 * f(0) = y1*x2/(x1^x2) ^ y2*x1/(x1^x2) = y1*2*inv(3) ^ y2*inv(3). */
	uint8_t y1 = (uint8_t)(0x42 ^ cs_gf256_mul(0x8e, 1));
	uint8_t y2 = (uint8_t)(0x42 ^ cs_gf256_mul(0x8e, 2));
	uint8_t inv3 = cs_gf256_inv(3);
	uint8_t expect =
	    (uint8_t)(cs_gf256_mul(cs_gf256_mul(y1, 2), inv3) ^ cs_gf256_mul(y2, inv3));
	ck_assert_uint_eq(expect, 0x42);
	uint8_t p1[2] = {y1, 1}, p2[2] = {y2, 2};
	const uint8_t *sel[2] = {p1, p2};
	uint8_t one;
	ck_assert_int_eq(cs_shamir_combine(sel, 2, 2, &one), 0);
	ck_assert_uint_eq(one, 0x42);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("shamir");
	TCase *gf = tcase_create("gf256");
	tcase_add_test(gf, test_gf_mul_matches_reference);
	tcase_add_test(gf, test_gf_field_properties);
	tcase_add_test(gf, test_gf_inverse);
	suite_add_tcase(s, gf);
	TCase *tc = tcase_create("split_combine");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_split_combine_all_subsets_5_3);
	tcase_add_test(tc, test_split_combine_small_grid);
	tcase_add_test(tc, test_split_255_parts);
	tcase_add_test(tc, test_share_format);
	tcase_add_test(tc, test_x_coordinates_vary);
	tcase_add_test(tc, test_invalid_params);
	tcase_add_test(tc, test_duplicate_x_rejected);
	tcase_add_test(tc, test_known_answer_degree1);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
