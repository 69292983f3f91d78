/*
 * libFuzzer target for policy parsing and evaluation: every input must parse or fail
 * cleanly with a "failed to parse policy: " message; a policy that parses is evaluated
 * for every operation against a few paths derived from the input (so globs, '+'
 * segments and parameter checks all run), and everything frees without leaks.
 *
 * As in fuzz_hcl.c, the parser sources are included so that they carry coverage
 * instrumentation; the library's copies are then never pulled in by the linker.
 */
#include "lib/hcl.c"
#include "policy/policy.c"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char errbuf[600];
	struct cs_policy *p = NULL;
	int rc = cs_policy_parse((const char *)data, size, &p, errbuf, sizeof errbuf);
	if (rc) {
		if (p || strncmp(errbuf, "failed to parse policy: ", 24) != 0)
			abort();
		return 0;
	}
	const struct cs_policy *v[] = {p, p};
	/* Paths: each rule's own text (and with a suffix), plus fixed ones. */
	static const char *fixed[] = {"", "/", "a", "a/", "a/b/c", "secret/data/x", "+", "*"};
	cJSON *body = cJSON_Parse("{\"color\":\"red\",\"n\":1,\"Owner\":\"x\",\"l\":[1]}");
	for (size_t i = 0; i < p->n_rules + CS_ARRAY_LEN(fixed); i++) {
		char path[512];
		if (i < p->n_rules)
			snprintf(path, sizeof path, "%s%s", p->rules[i].path, i % 2 ? "/x" : "");
		else
			snprintf(path, sizeof path, "%s", fixed[i - p->n_rules]);
		for (int op = CS_ACL_READ; op <= CS_ACL_PATCH; op++) {
			struct cs_acl_request r = {(enum cs_acl_op)op, path, i % 3 ? body : NULL,
						   (int64_t)(i % 4) * 60, i % 5 == 0};
			(void)cs_acl_allowed(v, 2, &r);
		}
		cJSON_Delete(cs_acl_caps_json(cs_acl_capabilities(v, 2, path)));
	}
	cJSON_Delete(body);
	cs_policy_free(p);
	return 0;
}
