#include "lib/json.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

static int cmp_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sort the member names of one object and look for a neighbour pair that is equal. */
static const char *object_dup(const cJSON *obj)
{
	size_t n = 0;
	const cJSON *c;
	cJSON_ArrayForEach(c, obj) n++;
	if (n < 2)
		return NULL;
	const char *small[32];
	const char **keys = n <= 32 ? small : malloc(n * sizeof *keys);
	if (!keys)
		abort();
	size_t i = 0;
	cJSON_ArrayForEach(c, obj) keys[i++] = c->string ? c->string : "";
	qsort(keys, n, sizeof *keys, cmp_keys);
	const char *dup = NULL;
	for (i = 1; i < n && !dup; i++)
		if (strcmp(keys[i - 1], keys[i]) == 0)
			dup = keys[i];
	if (keys != small)
		free(keys);
	return dup;
}

const char *cs_json_dup_key(const cJSON *v)
{
	if (!v || !(cJSON_IsObject(v) || cJSON_IsArray(v)))
		return NULL;
	if (cJSON_IsObject(v)) {
		const char *d = object_dup(v);
		if (d)
			return d;
	}
	/* cJSON bounds nesting (CJSON_NESTING_LIMIT) while parsing, so recursion is bounded. */
	const cJSON *c;
	cJSON_ArrayForEach(c, v)
	{
		const char *d = cs_json_dup_key(c);
		if (d)
			return d;
	}
	return NULL;
}

cJSON *cs_json_parse_strict(const char *data, size_t len, char *err, size_t errlen)
{
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithLengthOpts(data, len, &end, false);
	if (!j) {
		snprintf(err, errlen, "failed to parse JSON input: invalid character near byte %ld",
			 end ? (long)(end - data) : 0L);
		return NULL;
	}
	/* Whitespace may follow the value; anything else is a second value. */
	for (const char *p = end; p && p < data + len; p++) {
		if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n' && *p != '\0') {
			cs_json_delete_wiped(j);
			snprintf(err, errlen,
				 "failed to parse JSON input: invalid character after top-level "
				 "value near byte %ld",
				 (long)(p - data));
			return NULL;
		}
	}
	const char *dup = cs_json_dup_key(j);
	if (dup) {
		snprintf(err, errlen, "failed to parse JSON input: duplicate key \"%.64s\"", dup);
		cs_json_delete_wiped(j);
		return NULL;
	}
	return j;
}

/* v and its siblings (cJSON_Delete frees the sibling chain too), with their children. */
static void wipe(cJSON *v)
{
	for (cJSON *c = v; c; c = c->next) {
		if (c->string && !(c->type & cJSON_StringIsConst))
			cs_zero(c->string, strlen(c->string));
		if (cJSON_IsString(c) && c->valuestring && !(c->type & cJSON_IsReference))
			cs_zero(c->valuestring, strlen(c->valuestring));
		if (c->child && !(c->type & cJSON_IsReference))
			wipe(c->child);
	}
}

void cs_json_delete_wiped(cJSON *v)
{
	if (!v)
		return;
	wipe(v);
	cJSON_Delete(v);
}
