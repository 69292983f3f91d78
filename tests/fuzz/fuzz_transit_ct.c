/*
 * libFuzzer target for the transit ciphertext / HMAC parser (engines/transit_crypto.c),
 * which decrypt, rewrap and verify feed with strings any client sends.
 *
 * Input: the bytes as a string (NUL-terminated copy). cs_transit_parse must either refuse
 * with a message and no output, or return a version >= 1 and bytes that print back to a
 * string it parses again to the same version and bytes. The parsed bytes are then opened
 * as an AES-256-GCM and a ChaCha20-Poly1305 ciphertext under a fixed key, which must fail
 * cleanly (an input that authenticates under that key is not something a fuzzer finds).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engines/transit_crypto.h"
#include "lib/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = 0;
	uint32_t ver = 0;
	uint8_t *raw = NULL;
	size_t len = 0;
	const char *err = NULL;
	int rc = cs_transit_parse(s, &ver, &raw, &len, &err);
	if (rc) {
		if (rc != CS_EINVAL || !err || raw)
			abort();
		free(s);
		return 0;
	}
	if (ver < 1 || ver > CS_TRANSIT_MAX_VERSION)
		abort();
	char *again = cs_transit_format(ver, raw, len);
	uint32_t ver2 = 0;
	uint8_t *raw2 = NULL;
	size_t len2 = 0;
	if (cs_transit_parse(again, &ver2, &raw2, &len2, &err) || ver2 != ver || len2 != len ||
	    (len && memcmp(raw, raw2, len)))
		abort();
	static const uint8_t key[32] = {1, 2, 3};
	struct cs_buf out = CS_BUF_INIT;
	if (cs_transit_open(CS_TRANSIT_AES256_GCM96, key, raw, len, NULL, 0, &out, &err) !=
		CS_EINVAL ||
	    out.len)
		abort();
	if (cs_transit_open(CS_TRANSIT_CHACHA20_POLY1305, key, raw, len, NULL, 0, &out, &err) !=
		CS_EINVAL ||
	    out.len)
		abort();
	cs_buf_free(&out);
	free(raw);
	free(raw2);
	free(again);
	free(s);
	return 0;
}
