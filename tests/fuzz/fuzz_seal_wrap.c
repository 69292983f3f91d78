/*
 * libFuzzer target for what an auto-unseal seal decodes from bytes it does not control
 * (server/seal_wrap.h): the envelope stored at core/seal-wrapped-kek (written by another
 * node, replicated by raft, brought by a restored snapshot, sent in a join challenge) and
 * the transit server's HTTP response body.
 *
 * Input: <status byte> <field byte> <body>. The body goes through
 * cs_seal_envelope_decode() (and, when accepted, must encode and decode back to the same
 * envelope) and through cs_transit_seal_response() with the status (2xx when the byte is
 * even) and field ("ciphertext" or "plaintext").
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "server/seal_wrap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	long status = data[0] % 2 == 0 ? 200 : 400 + data[0] % 104;
	const char *field = data[1] % 2 ? "plaintext" : "ciphertext";
	const char *body = (const char *)data + 2;
	size_t len = size - 2;

	struct cs_seal_envelope e;
	if (cs_seal_envelope_decode(body, len, &e) == 0) {
		char *js = NULL;
		if (cs_seal_envelope_encode(&e, &js) != 0)
			abort();
		struct cs_seal_envelope back;
		if (cs_seal_envelope_decode(js, strlen(js), &back) != 0)
			abort();
		if (back.kind != e.kind || strcmp(back.key_id, e.key_id) != 0 ||
		    back.ct_len != e.ct_len || back.iv_len != e.iv_len ||
		    (e.ct && memcmp(back.ct, e.ct, e.ct_len) != 0) ||
		    (e.ciphertext && strcmp(back.ciphertext, e.ciphertext) != 0))
			abort();
		cs_seal_envelope_free(&back);
		cs_seal_envelope_free(&e);
		free(js);
	}

	uint8_t *out = NULL;
	size_t out_len = 0;
	char err[256];
	int rc =
	    cs_transit_seal_response(status, body, len, field, &out, &out_len, err, sizeof err);
	if (rc == 0 && (!out || (status < 200 || status > 299)))
		abort();
	if (rc != 0 && out)
		abort();
	free(out);
	return 0;
}
