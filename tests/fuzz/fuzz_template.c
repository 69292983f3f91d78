/*
 * libFuzzer target for identity templates in policy paths (policy/template.c): the input
 * is the untrusted template text (a policy author's). Validation and rendering must agree
 * (a text that validates never renders as unbalanced and the other way round), a render
 * that succeeds produces a string with no "{{" from a directive and no '/', '*' or '+'
 * that the template text itself did not contain, and everything frees cleanly. The text
 * is also parsed as a policy path and instantiated, so the ACL's use of templates runs.
 *
 * The sources are included for coverage instrumentation, as fuzz_policy.c does.
 */
#include "lib/hcl.c"
#include "policy/policy.c"
#include "policy/template.c"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char ident_json[] =
    "{\"entity\":{\"id\":\"e-1\",\"name\":\"alice\",\"metadata\":{\"k\":\"v\"},"
    "\"aliases\":[{\"id\":\"a-1\",\"name\":\"al\",\"mount_accessor\":\"acc\","
    "\"metadata\":{\"m\":\"x\"},\"custom_metadata\":{\"c\":\"y\"}}]},"
    "\"groups\":[{\"id\":\"g-1\",\"name\":\"ops\",\"metadata\":{\"s\":\"t\"}}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	char *text = malloc(size + 1);
	if (!text)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	cJSON *ident = cJSON_Parse(ident_json);
	bool has = false;
	int vrc = cs_template_validate(text, &has);
	char *out = NULL, err[256];
	int rrc = cs_template_render(text, ident, &out, err, sizeof err);
	if ((vrc == CS_EINVAL) != (rrc == CS_EINVAL))
		abort();
	if (rrc == 0) {
		if (!out)
			abort();
		/* Every substituted value is free of separators and globs. */
		for (const char *c = "/*+"; *c; c++)
			if (strchr(out, *c) && !strchr(text, *c))
				abort();
		free(out);
	} else if (out) {
		abort();
	}
	(void)cs_template_render(text, NULL, &out, NULL, 0);
	free(out);
	/* As a policy path: parse, instantiate, evaluate. */
	cJSON *pj = cJSON_CreateObject();
	cJSON *path = cJSON_AddObjectToObject(pj, "path");
	cJSON *rule = cJSON_AddObjectToObject(path, text);
	cJSON *caps = cJSON_AddArrayToObject(rule, "capabilities");
	cJSON_AddItemToArray(caps, cJSON_CreateString("read"));
	char *ptext = cJSON_PrintUnformatted(pj);
	struct cs_policy *p = NULL;
	char perr[600];
	if (ptext && cs_policy_parse(ptext, strlen(ptext), &p, perr, sizeof perr) == 0) {
		struct cs_policy *q = cs_policy_instantiate(p, ident);
		const struct cs_policy *v[] = {p, q};
		struct cs_acl_request r = {CS_ACL_READ, "alice", NULL, 0, false};
		(void)cs_acl_allowed(v, 2, &r);
		for (size_t i = 0; i < q->n_rules; i++) {
			r.path = q->rules[i].path;
			(void)cs_acl_allowed(v, 2, &r);
		}
		cs_policy_free(q);
		cs_policy_free(p);
	}
	free(ptext);
	cJSON_Delete(pj);
	cJSON_Delete(ident);
	free(text);
	return 0;
}
