/*
 * Shamir's secret sharing, byte for byte the scheme of Vault's shamir package so that
 * shares are interchangeable: GF(2^8) reduced by x^8+x^4+x^3+x+1, one polynomial of
 * degree threshold-1 per secret byte with the byte as constant term, x-coordinates drawn
 * as a random permutation of 1..255, and share = y-bytes || x.
 *
 * Every operation that touches secret values (coefficients, y-bytes, the result) is
 * branch- and table-free so timing does not depend on them. The x-coordinates are
 * public (they travel in clear in every share), so the permutation and the duplicate
 * check may branch on them.
 */
#include "storage/shamir.h"

#include "lib/err.h"
#include "lib/util.h"

#include <stdbool.h>

#define SHAMIR_MAX_PARTS 255

/*
 * Multiply in GF(2^8): shift-and-add over the bits of b, most significant first,
 * reducing by 0x1b whenever the running product overflows bit 7. Both the "add a" and
 * the "reduce" steps are selected with all-ones/all-zero masks instead of branches.
 */
uint8_t cs_gf256_mul(uint8_t a, uint8_t b)
{
	uint8_t r = 0;
	for (int i = 7; i >= 0; i--) {
		uint8_t add_mask = (uint8_t)(0u - (unsigned)((b >> i) & 1u));
		uint8_t red_mask = (uint8_t)(0u - (unsigned)(r >> 7));
		r = (uint8_t)((uint8_t)(r << 1) ^ (red_mask & 0x1b) ^ (add_mask & a));
	}
	return r;
}

/* a^254 = a^-1 for a != 0 (the multiplicative group has order 255); 0 maps to 0.
 * A fixed square-and-multiply chain, so the running time is the same for every a. */
uint8_t cs_gf256_inv(uint8_t a)
{
	/* 254 = 0b11111110: after squaring seven times with multiplies, a^254. */
	uint8_t b = cs_gf256_mul(a, a); /* a^2 */
	uint8_t c = cs_gf256_mul(a, b); /* a^3 */
	b = cs_gf256_mul(c, c);         /* a^6 */
	b = cs_gf256_mul(b, b);         /* a^12 */
	c = cs_gf256_mul(b, c);         /* a^15 */
	b = cs_gf256_mul(b, b);         /* a^24 */
	b = cs_gf256_mul(b, b);         /* a^48 */
	b = cs_gf256_mul(b, c);         /* a^63 */
	b = cs_gf256_mul(b, b);         /* a^126 */
	b = cs_gf256_mul(a, b);         /* a^127 */
	return cs_gf256_mul(b, b);      /* a^254 */
}

/* Horner evaluation of coeffs[0] + coeffs[1] x + ... + coeffs[degree] x^degree. */
static uint8_t poly_eval(const uint8_t *coeffs, int degree, uint8_t x)
{
	uint8_t out = coeffs[degree];
	for (int i = degree - 1; i >= 0; i--)
		out = (uint8_t)(cs_gf256_mul(out, x) ^ coeffs[i]);
	return out;
}

/* Uniform integer in [0, bound) from the CSPRNG, by rejection (no modulo bias). */
static uint32_t random_below(uint32_t bound)
{
	uint32_t limit = UINT32_MAX - (UINT32_MAX % bound);
	for (;;) {
		uint32_t v;
		cs_random(&v, sizeof v);
		if (v < limit)
			return v % bound;
	}
}

int cs_shamir_split(const uint8_t *secret, size_t len, int parts, int threshold, uint8_t **shares)
{
	if (!secret || len == 0 || !shares)
		return CS_EINVAL;
	if (threshold < 2 || parts < threshold || parts > SHAMIR_MAX_PARTS)
		return CS_EINVAL;
	for (int i = 0; i < parts; i++)
		if (!shares[i])
			return CS_EINVAL;

	/* Fisher-Yates over 1..255; the first `parts` entries are the x-coordinates. */
	uint8_t xs[SHAMIR_MAX_PARTS];
	for (int i = 0; i < SHAMIR_MAX_PARTS; i++)
		xs[i] = (uint8_t)(i + 1);
	for (int i = SHAMIR_MAX_PARTS - 1; i > 0; i--) {
		uint32_t j = random_below((uint32_t)i + 1);
		uint8_t t = xs[i];
		xs[i] = xs[j];
		xs[j] = t;
	}
	for (int p = 0; p < parts; p++)
		shares[p][len] = xs[p];

	/* The random coefficients are as secret as the secret itself: they live on the
	 * stack only for the duration of the call and are wiped before returning. */
	uint8_t coeffs[SHAMIR_MAX_PARTS];
	int degree = threshold - 1;
	for (size_t i = 0; i < len; i++) {
		coeffs[0] = secret[i];
		cs_random(coeffs + 1, (size_t)degree);
		for (int p = 0; p < parts; p++)
			shares[p][i] = poly_eval(coeffs, degree, xs[p]);
	}
	cs_zero(coeffs, sizeof coeffs);
	return 0;
}

int cs_shamir_combine(const uint8_t *const *shares, int n, size_t share_len, uint8_t *out)
{
	if (!shares || !out || n < 2 || share_len < 2)
		return CS_EINVAL;
	/* More than 256 shares cannot have distinct x bytes; 255 is the split maximum. */
	if (n > 256)
		return CS_EINVAL;
	size_t len = share_len - 1;
	uint8_t xs[256];
	bool seen[256] = {false};
	for (int i = 0; i < n; i++) {
		if (!shares[i])
			return CS_EINVAL;
		uint8_t x = shares[i][len];
		if (seen[x])
			return CS_EINVAL;
		seen[x] = true;
		xs[i] = x;
	}

	/*
	 * Lagrange interpolation at 0: secret = sum_i y_i * prod_{j!=i} x_j / (x_i - x_j),
	 * where subtraction and addition are both XOR. The basis polynomials depend only
	 * on the public x-coordinates, so compute them once for all bytes.
	 */
	uint8_t basis[256];
	for (int i = 0; i < n; i++) {
		uint8_t b = 1;
		for (int j = 0; j < n; j++) {
			if (i == j)
				continue;
			uint8_t num = xs[j];
			uint8_t den = (uint8_t)(xs[i] ^ xs[j]);
			b = cs_gf256_mul(b, cs_gf256_mul(num, cs_gf256_inv(den)));
		}
		basis[i] = b;
	}
	for (size_t k = 0; k < len; k++) {
		uint8_t acc = 0;
		for (int i = 0; i < n; i++)
			acc ^= cs_gf256_mul(shares[i][k], basis[i]);
		out[k] = acc;
	}
	return 0;
}
