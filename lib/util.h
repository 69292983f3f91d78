/*
 * Small shared helpers: encodings, randomness, constant-time comparison, durations and
 * timestamps. All functions are thread-safe and never log.
 */
#ifndef CS_LIB_UTIL_H
#define CS_LIB_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CS_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))
#define CS_ARRAY_LEN(a)                    (sizeof(a) / sizeof((a)[0]))

/* Cryptographic random bytes (OpenSSL RAND_bytes); aborts if the RNG fails. */
void cs_random(void *out, size_t n);
/* Random string of `n` chars from [A-Za-z0-9] into out (n+1 bytes, NUL-terminated). */
void cs_random_base62(char *out, size_t n);
/* Random RFC 4122 v4 UUID, 36 chars + NUL. */
void cs_uuid(char out[37]);

/* Constant-time equality of two byte ranges (lengths compared first, not secret). */
bool cs_ct_equal(const void *a, size_t alen, const void *b, size_t blen);
/* Zeroise memory in a way the compiler cannot elide. */
void cs_zero(void *p, size_t n);

/* Hex: out must hold 2n+1 chars. */
void cs_hex_encode(const uint8_t *in, size_t n, char *out);
/* HMAC-SHA256 of `data` under `key` into out[32]. The algorithm is fetched from OpenSSL's
 * provider once per process (HMAC() one-shots fetch it on every call). Thread-safe. */
void cs_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len, uint8_t out[32]);
/* Returns decoded length or -1 (odd length / bad digit). out holds strlen(in)/2. */
long cs_hex_decode(const char *in, size_t len, uint8_t *out);
/* Standard base64 with padding; returns malloc'd NUL-terminated string. */
char *cs_b64_encode(const uint8_t *in, size_t n);
/* Standard base64 (padding optional, no whitespace). Returns malloc'd bytes and sets
 * *outlen, or NULL on bad input. */
uint8_t *cs_b64_decode(const char *in, size_t len, size_t *outlen);
/* base64url without padding (RFC 4648 §5, as JOSE writes it); malloc'd, NUL-terminated. */
char *cs_b64url_encode(const uint8_t *in, size_t n);
/* Strict base64url: only [A-Za-z0-9_-], no padding, no whitespace. Returns malloc'd bytes
 * (one spare NUL byte after them) and sets *outlen, or NULL on bad input. */
uint8_t *cs_b64url_decode(const char *in, size_t len, size_t *outlen);

/*
 * Vault duration: an integer number of seconds ("3600", or a JSON number) or a Go
 * duration string made of number+unit pairs with units h, m, s, ms, us, ns and d
 * ("768h", "1h30m", "90s", "2d"). Returns 0 and *secs (rounded down) or CS_EINVAL.
 */
int cs_parse_duration(const char *s, int64_t *secs);
/* Format seconds as a Go duration string ("768h0m0s", "0s"). out >= 32 bytes. */
void cs_format_duration(int64_t secs, char *out, size_t outlen);

/* Wall clock in nanoseconds since the epoch, and monotonic milliseconds. */
int64_t cs_now_ns(void);
uint64_t cs_mono_ms(void);
/* RFC 3339 UTC with nanoseconds ("2026-11-22T13:54:08.123456789Z"); out >= 40 bytes. */
void cs_format_time(int64_t ns, char *out, size_t outlen);

/* Parse a Vault bool from a query/form string: 1/t/T/TRUE/true/True and the false forms.
 * Returns 0 or CS_EINVAL. */
int cs_parse_bool(const char *s, bool *out);

/* Read a whole file into malloc'd memory (NUL-terminated). Returns 0 or an errno value. */
int cs_read_file(const char *path, char **data, size_t *len);
/* mkdir -p with the given mode. Returns 0 or an errno value. */
int cs_mkdir_p(const char *path, unsigned mode);

#endif
