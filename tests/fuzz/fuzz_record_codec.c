/*
 * libFuzzer target for the compact record codec (auth/record_codec.c), which decodes
 * bytes read from storage. Input: byte 0 picks the storage key (a token entry, an
 * accessor index entry, a token lease, a secret lease, a key of no kind), the rest is the
 * stored value. Whatever decodes must encode again and decode to the same object.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/record_codec.h"
#include "lib/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const keys[] = {
    "sys/token/id/8dfece49629513219667da18d1f095a6bf3e3f5ee0d9ac52c27614470b0b714f",
    "sys/token/accessor/fc0d52d5a0698e1068ef2e32584cabd2c1108eb605a179283693ececbd4cf1dc",
    "sys/expire/id/auth/token/create/"
    "8dfece49629513219667da18d1f095a6bf3e3f5ee0d9ac52c27614470b0b714f",
    "sys/expire/id/database/creds/ro/AbCdEfGhIjKlMnOpQrStUvWx",
    "kv/data/x",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *key = keys[data[0] % (sizeof keys / sizeof keys[0])];
	cJSON *o = NULL;
	if (cs_record_decode(key, data + 1, size - 1, &o) != 0) {
		if (o)
			abort(); /* an error leaves no object behind */
		return 0;
	}
	if (cJSON_IsObject(o)) {
		struct cs_buf b = CS_BUF_INIT;
		cJSON *back = NULL;
		if (cs_record_encode(key, o, &b) != 0 ||
		    cs_record_decode(key, b.data, b.len, &back))
			abort();
		char *x = cJSON_PrintUnformatted(o), *y = cJSON_PrintUnformatted(back);
		if (!x || !y || strcmp(x, y) != 0)
			abort();
		free(x);
		free(y);
		cJSON_Delete(back);
		cs_buf_free(&b);
	}
	cJSON_Delete(o);
	return 0;
}
