/*
 * Shamir's secret sharing over GF(2^8) exactly as Vault does it (shamir/shamir.go in
 * https://github.com/openbao/openbao):
 * field reduced by x^8+x^4+x^3+x+1, constant-time arithmetic, one random polynomial of
 * degree threshold-1 per secret byte, x-coordinates a random permutation of 1..255, and
 * each share = y-bytes followed by its x byte (so a share is secret_len + 1 bytes).
 */
#ifndef CS_STORAGE_SHAMIR_H
#define CS_STORAGE_SHAMIR_H

#include <stddef.h>
#include <stdint.h>

/*
 * Split `secret` (len >= 1) into `parts` shares of which any `threshold` recover it.
 * 2 <= threshold <= parts <= 255. `shares` is an array of `parts` buffers, each at
 * least len + 1 bytes, filled by the call. Returns 0 or CS_EINVAL.
 */
int cs_shamir_split(const uint8_t *secret, size_t len, int parts, int threshold, uint8_t **shares);
/*
 * Recover the secret from `n` shares of `share_len` bytes each (share_len >= 2) into
 * `out` (share_len - 1 bytes). Needs n >= 2; duplicate x-coordinates → CS_EINVAL.
 * With fewer than the threshold the output is garbage, not an error (that is the
 * scheme): callers detect a wrong result by failing to decrypt with it.
 */
int cs_shamir_combine(const uint8_t *const *shares, int n, size_t share_len, uint8_t *out);

/* GF(2^8) helpers, exposed for the unit tests. Constant time. */
uint8_t cs_gf256_mul(uint8_t a, uint8_t b);
uint8_t cs_gf256_inv(uint8_t a);

#endif
