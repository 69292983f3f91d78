/* LIST pagination shared by every route (server/list_page.h). */
#include "server/list_page.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/json.h"
#include "storage/txn.h"

bool cs_list_page_route_owns(const struct cs_path *p, const char *name)
{
	for (const struct cs_field *f = p ? p->fields : NULL; f && f->name; f++)
		if (strcmp(f->name, name) == 0)
			return true;
	return false;
}

static bool declares(const struct cs_request *req, const char *name)
{
	return cs_list_page_route_owns(req->route, name);
}

static int parse_limit(struct cs_request *req, const cJSON *v)
{
	if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;
		if (d != (double)(int64_t)d || d < 0 || d > 9.0e15)
			return cs_req_error(req, CS_EINVAL,
					    "invalid 'limit': must be a non-negative integer");
		req->list_limit = (int64_t)d;
		return 0;
	}
	if (!cJSON_IsString(v))
		return cs_req_error(req, CS_EINVAL,
				    "invalid 'limit': must be a non-negative integer");
	const char *s = v->valuestring;
	if (!*s)
		return 0; /* "?limit=": none */
	for (const char *c = s; *c; c++)
		if (*c < '0' || *c > '9')
			return cs_req_error(req, CS_EINVAL,
					    "invalid 'limit' %.32s: must be a non-negative integer",
					    s);
	errno = 0;
	long long n = strtoll(s, NULL, 10);
	if (errno == ERANGE)
		return cs_req_error(req, CS_EINVAL, "invalid 'limit': out of range");
	req->list_limit = n;
	return 0;
}

int cs_list_page_parse(struct cs_request *req)
{
	if (req->op != CS_OP_LIST || !req->data)
		return 0;
	cJSON *v;
	if (!declares(req, "after") &&
	    (v = cJSON_DetachItemFromObjectCaseSensitive(req->data, "after"))) {
		int rc = 0;
		if (!cJSON_IsString(v))
			rc = cs_req_error(req, CS_EINVAL, "invalid 'after': must be a string");
		else if (*v->valuestring)
			req->list_after = strdup(v->valuestring);
		cJSON_Delete(v);
		if (rc)
			return rc;
	}
	if (!declares(req, "limit") &&
	    (v = cJSON_DetachItemFromObjectCaseSensitive(req->data, "limit"))) {
		int rc = parse_limit(req, v);
		cJSON_Delete(v);
		if (rc)
			return rc;
	}
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void cs_list_page_trim(struct cs_request *req)
{
	if (req->op != CS_OP_LIST || (!req->list_after && !req->list_limit))
		return;
	cJSON *keys = cJSON_GetObjectItemCaseSensitive(req->resp_data, "keys");
	if (!cJSON_IsArray(keys))
		return;
	size_t n = 0, cap = (size_t)cJSON_GetArraySize(keys);
	char **names = malloc((cap ? cap : 1) * sizeof *names);
	if (!names)
		abort();
	cJSON *k;
	cJSON_ArrayForEach(k, keys)
	{
		if (cJSON_IsString(k))
			names[n++] = k->valuestring;
	}
	qsort(names, n, sizeof *names, cmp_str);
	size_t from = 0;
	while (req->list_after && from < n && strcmp(names[from], req->list_after) <= 0)
		from++;
	size_t keep = n - from;
	if (req->list_limit && (uint64_t)req->list_limit < keep)
		keep = (size_t)req->list_limit;
	cJSON *page = cJSON_CreateArray();
	for (size_t i = from; i < from + keep; i++)
		cJSON_AddItemToArray(page, cJSON_CreateString(names[i]));
	/* Vault's key_info (identity, PKI issuers) describes the listed names only. */
	cJSON *info = cJSON_GetObjectItemCaseSensitive(req->resp_data, "key_info");
	if (cJSON_IsObject(info)) {
		cJSON *m = info->child;
		while (m) {
			cJSON *next = m->next;
			const char *name = m->string;
			if (!bsearch(&name, names + from, keep, sizeof *names, cmp_str))
				cs_json_delete_wiped(cJSON_DetachItemViaPointer(info, m));
			m = next;
		}
	}
	free(names);
	cJSON_ReplaceItemInObjectCaseSensitive(req->resp_data, "keys", page);
}
