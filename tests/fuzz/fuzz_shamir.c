/*
 * libFuzzer target for Shamir combine (storage/shamir.c), which unseal feeds with shares
 * an operator (or an attacker at the unseal endpoint) typed in.
 *
 * Input: u8 n (mod 40, or 0xff: 255 or 256) | u8 share_len | n shares of share_len bytes each,
 * carved from the rest (the last ones short-filled from the start of the input so any length
 * works). Each share is its own allocation of exactly share_len bytes, so ASan sees any read past a
 * share. combine must refuse (n < 2, share_len < 2, repeated x byte) or fill exactly share_len - 1
 * output bytes.
 *
 * Then (third byte >= 0x80) a round trip with parameters taken from the input: split a secret of
 * the input's bytes into `parts` shares with `threshold`, combine `threshold` of them picked by the
 * input, and require the secret back; fewer than 2 shares or a repeated one must be refused.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "storage/shamir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void combine_raw(const uint8_t *data, size_t size)
{
	if (size < 2)
		return;
	/* Up to 39 shares, or 255/256 for a first byte 0xff: a combine costs O(n^2) field
	 * inversions, so large n everywhere would cut the executions per second a hundredfold. */
	int n = data[0] == 0xff ? 255 + (data[1] & 1) : data[0] % 40;
	size_t share_len = data[1];
	const uint8_t *rest = data + 2;
	size_t rest_len = size - 2;
	uint8_t **shares = calloc((size_t)n + 1, sizeof *shares);
	size_t off = 0;
	for (int i = 0; i < n; i++) {
		shares[i] = malloc(share_len ? share_len : 1);
		for (size_t k = 0; k < share_len; k++)
			shares[i][k] = rest_len ? rest[(off + k) % rest_len] : (uint8_t)k;
		off += share_len;
	}
	/* One byte more than needed, poisoned after the expected end by a canary. */
	size_t out_len = share_len ? share_len - 1 : 0;
	uint8_t *out = malloc(out_len + 1);
	out[out_len] = 0xA5;
	int rc = cs_shamir_combine((const uint8_t *const *)shares, n, share_len, out);
	if (rc == 0 && (n < 2 || share_len < 2 || out[out_len] != 0xA5))
		abort();
	if (rc != 0 && rc != CS_EINVAL)
		abort();
	for (int i = 0; i < n; i++)
		free(shares[i]);
	free(shares);
	free(out);
}

static void round_trip(const uint8_t *data, size_t size)
{
	/* Only when the third byte's top bit is set: a split draws ~300 random numbers from
	 * OpenSSL's CSPRNG, which would otherwise dominate every execution. */
	if (size < 4 || !(data[2] & 0x80))
		return;
	int parts = data[0] == 0xff ? 255 : 2 + data[0] % 30; /* 2..31, or 255 */
	int threshold = 2 + data[1] % (parts - 1);            /* 2..parts */
	size_t len = 1 + data[2] % 64;
	uint8_t secret[64];
	for (size_t i = 0; i < len; i++)
		secret[i] = data[(3 + i) % size];
	uint8_t **shares = calloc((size_t)parts, sizeof *shares);
	for (int p = 0; p < parts; p++)
		shares[p] = malloc(len + 1);
	if (cs_shamir_split(secret, len, parts, threshold, shares) != 0)
		abort(); /* valid parameters */
	/* Pick `threshold` distinct shares: a permutation driven by the input. */
	const uint8_t **pick = calloc((size_t)threshold + 1, sizeof *pick);
	int *idx = malloc((size_t)parts * sizeof *idx);
	for (int p = 0; p < parts; p++)
		idx[p] = p;
	for (int k = 0; k < threshold; k++) {
		int j = k + data[(4 + k) % size] % (parts - k);
		int t = idx[k];
		idx[k] = idx[j];
		idx[j] = t;
		pick[k] = shares[idx[k]];
	}
	uint8_t out[64];
	if (cs_shamir_combine(pick, threshold, len + 1, out) != 0 || memcmp(out, secret, len) != 0)
		abort();
	/* A share given twice is refused, never combined. */
	pick[threshold] = pick[1];
	if (cs_shamir_combine(pick + 1, threshold, len + 1, out) != CS_EINVAL)
		abort();
	for (int p = 0; p < parts; p++)
		free(shares[p]);
	free(shares);
	free(pick);
	free(idx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	combine_raw(data, size);
	round_trip(data, size);
	return 0;
}
