/*
 * The shared KV v1-style operations (see kvutil.h). Each resolves the storage key with
 * the engine's key function, runs one view operation and frees the key.
 */
#include "engines/kvutil.h"

#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"

const char *cs_kvutil_path(const struct cs_request *req)
{
	const char *p = cs_req_capture(req, "path");
	return p ? p : "";
}

/* key_fn(path), or a copy of path when there is no key function. */
static char *resolve(struct cs_request *req, cs_kvutil_key_fn *key_fn, const char *path, int *rc)
{
	if (key_fn)
		return key_fn(req, path, rc);
	char *k = strdup(path);
	if (!k)
		abort();
	*rc = 0;
	return k;
}

int cs_kvutil_key_exists(struct cs_request *req, const char *key, bool *exists)
{
	struct cs_buf b = CS_BUF_INIT;
	int rc = cs_view_get(req, key, &b);
	cs_buf_free_secure(&b);
	*exists = rc == 0;
	return rc == CS_ENOTFOUND ? 0 : rc;
}

int cs_kvutil_exists(struct cs_request *req, cs_kvutil_key_fn *key_fn, bool *exists)
{
	int rc;
	*exists = false;
	char *k = resolve(req, key_fn, cs_kvutil_path(req), &rc);
	if (!k)
		return rc;
	rc = cs_kvutil_key_exists(req, k, exists);
	free(k);
	return rc;
}

int cs_kvutil_get(struct cs_request *req, cs_kvutil_key_fn *key_fn, const char *path, cJSON **out)
{
	int rc;
	char *k = resolve(req, key_fn, path, &rc);
	if (!k)
		return rc;
	rc = cs_view_get_json(req, k, out);
	free(k);
	return rc;
}

int cs_kvutil_check_write(struct cs_request *req, const char *path)
{
	if (!*path)
		return cs_req_error(req, CS_EINVAL, "missing path");
	if (path[strlen(path) - 1] == '/')
		return cs_req_error(req, CS_EINVAL, "cannot write to a path ending in '/'");
	if (cJSON_GetArraySize(req->data) == 0)
		return cs_req_error(req, CS_EINVAL, "missing data fields");
	return 0;
}

int cs_kvutil_put(struct cs_request *req, cs_kvutil_key_fn *key_fn, const char *path)
{
	int rc;
	char *k = resolve(req, key_fn, path, &rc);
	if (!k)
		return rc;
	rc = cs_view_put_json(req, k, req->data);
	free(k);
	return rc;
}

int cs_kvutil_delete(struct cs_request *req, cs_kvutil_key_fn *key_fn, const char *path)
{
	int rc;
	char *k = resolve(req, key_fn, path, &rc);
	if (!k)
		return rc;
	rc = cs_view_delete(req, k);
	free(k);
	return rc;
}

int cs_kvutil_list(struct cs_request *req, cs_kvutil_key_fn *key_fn)
{
	/* The path names a folder: list "<path>/" (or the mount's root for ""). */
	const char *path = cs_kvutil_path(req);
	size_t n = strlen(path);
	char *prefix = malloc(n + 2);
	if (!prefix)
		abort();
	memcpy(prefix, path, n + 1);
	if (n && path[n - 1] != '/')
		strcat(prefix, "/");
	int rc;
	char *k = resolve(req, key_fn, prefix, &rc);
	free(prefix);
	if (!k)
		return rc;
	struct cs_strv keys = {0};
	rc = cs_view_list_page(req, k, &keys);
	free(k);
	if (!rc && keys.n == 0)
		rc = CS_ENOTFOUND;
	if (!rc) {
		cJSON *d = cJSON_CreateObject();
		cJSON *a = cJSON_AddArrayToObject(d, "keys");
		for (size_t i = 0; i < keys.n; i++)
			cJSON_AddItemToArray(a, cJSON_CreateString(keys.v[i]));
		cs_req_set_data(req, d);
	}
	cs_strv_free(&keys);
	return rc;
}
