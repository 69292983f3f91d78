/*
 * libFuzzer target for password policies (lib/pwpolicy.c): every input must parse or fail
 * cleanly with CS_EINVAL and a message; a policy that parses must generate passwords that
 * it accepts itself (its length, its charsets, its rules), and everything frees without
 * leaks.
 *
 * As in fuzz_hcl.c, the parser sources are included so that they carry coverage
 * instrumentation; the library's copies are then never pulled in by the linker.
 */
#include "lib/hcl.c"
#include "lib/pwpolicy.c"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char errbuf[256];
	struct cs_pwpolicy *p = NULL;
	int rc = cs_pwpolicy_parse((const char *)data, size, &p, errbuf, sizeof errbuf);
	if (rc) {
		if (p || rc != CS_EINVAL || !errbuf[0])
			abort();
		return 0;
	}
	if (p->length < CS_PWPOLICY_MIN_LENGTH || p->length > CS_PWPOLICY_MAX_LENGTH ||
	    p->n_alpha == 0 || p->n_alpha > CS_PWPOLICY_MAX_CHARSET)
		abort();
	for (int i = 0; i < 3; i++) {
		char *pw = NULL;
		if (cs_pwpolicy_generate(p, &pw) || !pw || !cs_pwpolicy_satisfied(p, pw))
			abort();
		free(pw);
	}
	cs_pwpolicy_free(p);
	return 0;
}
