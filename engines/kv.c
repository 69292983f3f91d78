#include "engines/kv.h"

#include <stdlib.h>
#include <string.h>

#include "engines/kv2.h"
#include "lib/err.h"
#include "lib/util.h"
#include "server/core.h"
#include "server/router.h"

static const char *secret_path(struct cs_request *req)
{
	const char *p = cs_req_capture(req, "path");
	return p ? p : "";
}

static int kv_exists(struct cs_request *req, bool *exists)
{
	struct cs_buf b = CS_BUF_INIT;
	int rc = cs_view_get(req, secret_path(req), &b);
	cs_buf_free_secure(&b);
	if (rc == CS_ENOTFOUND) {
		*exists = false;
		return 0;
	}
	*exists = rc == 0;
	return rc;
}

/* The lease a KV v1 read reports: the secret's own "ttl" field, else the mount's. */
static int64_t lease_for(struct cs_request *req, const cJSON *data)
{
	const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(data, "ttl");
	int64_t secs;
	if (cJSON_IsNumber(ttl) && ttl->valuedouble >= 0)
		return (int64_t)ttl->valuedouble;
	if (cJSON_IsString(ttl) && cs_parse_duration(ttl->valuestring, &secs) == 0)
		return secs;
	return cs_core_default_ttl(req->core, req->mount);
}

static int kv_read(struct cs_request *req)
{
	const char *path = secret_path(req);
	if (!*path)
		return CS_ENOTFOUND;
	cJSON *data = NULL;
	int rc = cs_view_get_json(req, path, &data);
	if (rc)
		return rc;
	req->lease_duration = lease_for(req, data);
	cs_req_set_data(req, data);
	return 0;
}

static int kv_write(struct cs_request *req)
{
	const char *path = secret_path(req);
	if (!*path)
		return cs_req_error(req, CS_EINVAL, "missing path");
	if (path[strlen(path) - 1] == '/')
		return cs_req_error(req, CS_EINVAL, "cannot write to a path ending in '/'");
	if (cJSON_GetArraySize(req->data) == 0)
		return cs_req_error(req, CS_EINVAL, "missing data fields");
	const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(req->data, "ttl");
	int64_t secs;
	if (ttl && !(cJSON_IsNumber(ttl) && ttl->valuedouble >= 0) &&
	    !(cJSON_IsString(ttl) && cs_parse_duration(ttl->valuestring, &secs) == 0))
		return cs_req_error(req, CS_EINVAL, "failed to parse TTL: invalid duration");
	return cs_view_put_json(req, path, req->data);
}

static int kv_delete(struct cs_request *req)
{
	const char *path = secret_path(req);
	if (!*path)
		return cs_req_error(req, CS_EINVAL, "missing path");
	return cs_view_delete(req, path);
}

static int kv_list(struct cs_request *req)
{
	const char *path = secret_path(req);
	size_t n = strlen(path);
	char *prefix = malloc(n + 2);
	memcpy(prefix, path, n + 1);
	if (n && path[n - 1] != '/')
		strcat(prefix, "/");
	struct cs_strv keys = {0};
	int rc = cs_view_list(req, prefix, &keys);
	free(prefix);
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

static int kv_validate_mount(struct cs_request *req, const cJSON *options)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(options, "version");
	if (!v)
		return 0;
	/* Version 2 mounts are served by cs_kv2_backend (kv_variant) and never get here. */
	if (cJSON_IsString(v) && (strcmp(v->valuestring, "1") == 0 || !*v->valuestring))
		return 0;
	return cs_req_error(req, CS_EINVAL, "invalid KV version %s: only 1 and 2 are supported",
			    cJSON_IsString(v) ? v->valuestring : "?");
}

/* options.version "2" selects KV v2; anything else stays with this backend. */
static const struct cs_backend *kv_variant(const cJSON *options)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(options, "version");
	if (cJSON_IsString(v) && strcmp(v->valuestring, "2") == 0)
		return &cs_kv2_backend;
	return NULL;
}

static const struct cs_path kv_paths[] = {
    {"{path*}",
     NULL,
     {[CS_OP_READ] = kv_read,
      [CS_OP_CREATE] = kv_write,
      [CS_OP_UPDATE] = kv_write,
      [CS_OP_DELETE] = kv_delete,
      [CS_OP_LIST] = kv_list},
     kv_exists,
     CS_PATH_ANY_FIELDS,
     "pass-through secret storage"},
};

const struct cs_backend cs_kv_backend = {
    .type = "kv",
    .is_auth = false,
    .paths = kv_paths,
    .n_paths = CS_ARRAY_LEN(kv_paths),
    .validate_mount = kv_validate_mount,
    .variant = kv_variant,
};
