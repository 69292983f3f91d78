/*
 * libFuzzer target for the c-raft framing check (raft/wire.c): any byte stream, fed in
 * one piece and again in chunks whose sizes come from the input itself, must get the
 * same verdict, the same message count and the same reason, and a refusal is final.
 * (The end-to-end target, fuzz_transport, drives the same check inside the transport
 * with c-raft behind it; this one runs millions of inputs a minute.)
 */
#include "raft/wire.c"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	/* byte 0: the payload bound, small enough that payloads matter */
	uint64_t max = (uint64_t)(data[0] + 1) << 6;
	data++;
	size--;

	struct cs_wire a, b;
	cs_wire_init(&a, max);
	int ra = cs_wire_feed(&a, data, size);

	cs_wire_init(&b, max);
	int rb = 0;
	size_t off = 0;
	unsigned k = 1;
	while (off < size && rb == 0) {
		k = k * 33 + data[off];
		size_t n = 1 + k % 17;
		if (n > size - off)
			n = size - off;
		rb = cs_wire_feed(&b, data + off, n);
		off += n;
	}
	if (ra != rb || a.messages != b.messages || (ra != 0 && strcmp(a.error, b.error) != 0))
		abort();
	if (ra != 0 && cs_wire_feed(&a, data, size ? 1 : 0) != -1)
		abort();
	return 0;
}
