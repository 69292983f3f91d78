/*
 * libFuzzer target for the HCL/JSON parser and the config walker on top of it: every
 * input must parse or fail cleanly, convert to JSON, and free without leaks.
 *
 * The parser sources are included rather than linked from the static library so they are
 * compiled here with -fsanitize=fuzzer and carry coverage instrumentation; the library
 * itself is built without it. Their symbols then resolve here, so the library's copies
 * are never pulled in by the linker.
 */
#include "lib/hcl.c"
#include "server/config.c"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	struct cs_hcl_node *root = cs_hcl_parse((const char *)data, size, err, sizeof err);
	if (root) {
		cJSON *j = cs_hcl_to_json(root);
		if (j) {
			free(cJSON_PrintUnformatted(j));
			cJSON_Delete(j);
		}
		cs_hcl_free(root);
	}

	struct cs_config c;
	cs_config_init(&c);
	cs_config_parse(&c, (const char *)data, size, "fuzz.hcl", err, sizeof err);
	cs_config_free(&c);
	return 0;
}
