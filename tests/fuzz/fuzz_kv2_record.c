/*
 * libFuzzer target for the KV v2 metadata record decoder (cs_kv2_meta_unpack in
 * engines/kv2_model.c): the compact binary record and the JSON record of earlier
 * releases. Any input decodes or is refused with CS_EIO, never reads out of bounds; a
 * decoded record packs again and that packing decodes to the same packing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engines/kv2.h"
#include "lib/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cs_kv2_meta m;
	int rc = cs_kv2_meta_unpack(data, size, &m);
	if (rc != 0) {
		if (rc != CS_EIO || m.v || m.inline_data || m.custom)
			abort();
		return 0;
	}
	struct cs_buf a = CS_BUF_INIT, b = CS_BUF_INIT;
	cs_kv2_meta_pack(&m, &a);
	struct cs_kv2_meta m2;
	if (cs_kv2_meta_unpack(a.data, a.len, &m2) != 0)
		abort();
	cs_kv2_meta_pack(&m2, &b);
	if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
		abort();
	cs_buf_free(&a);
	cs_buf_free(&b);
	cs_kv2_meta_free(&m);
	cs_kv2_meta_free(&m2);
	return 0;
}
