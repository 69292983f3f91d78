#include "engines/kv.h"

#include <stdlib.h>
#include <string.h>

#include "engines/kv2.h"
#include "engines/kvutil.h"
#include "lib/err.h"
#include "lib/util.h"

static int kv_exists(struct cs_request *req, bool *exists)
{
	return cs_kvutil_exists(req, NULL, exists);
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
	return cs_req_default_ttl(req);
}

static int kv_read(struct cs_request *req)
{
	const char *path = cs_kvutil_path(req);
	if (!*path)
		return CS_ENOTFOUND;
	cJSON *data = NULL;
	int rc = cs_kvutil_get(req, NULL, path, &data);
	if (rc)
		return rc;
	req->lease_duration = lease_for(req, data);
	cs_req_set_data(req, data);
	return 0;
}

static int kv_write(struct cs_request *req)
{
	const char *path = cs_kvutil_path(req);
	int rc = cs_kvutil_check_write(req, path);
	if (rc)
		return rc;
	const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(req->data, "ttl");
	int64_t secs;
	if (ttl && !(cJSON_IsNumber(ttl) && ttl->valuedouble >= 0) &&
	    !(cJSON_IsString(ttl) && cs_parse_duration(ttl->valuestring, &secs) == 0))
		return cs_req_error(req, CS_EINVAL, "failed to parse TTL: invalid duration");
	return cs_kvutil_put(req, NULL, path);
}

static int kv_delete(struct cs_request *req)
{
	const char *path = cs_kvutil_path(req);
	if (!*path)
		return cs_req_error(req, CS_EINVAL, "missing path");
	return cs_kvutil_delete(req, NULL, path);
}

static int kv_list(struct cs_request *req)
{
	return cs_kvutil_list(req, NULL);
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
    {.pattern = "{path*}",
     .ops = {[CS_OP_READ] = kv_read,
	     [CS_OP_CREATE] = kv_write,
	     [CS_OP_UPDATE] = kv_write,
	     [CS_OP_DELETE] = kv_delete,
	     [CS_OP_LIST] = kv_list},
     .exists = kv_exists,
     .flags = CS_PATH_ANY_FIELDS,
     .synopsis = "pass-through secret storage"},
};

/* The variants kv_variant can pick, for the route listing (server/routes.h). */
static const struct cs_backend_variant kv_variants[] = {
    {"{\"version\":\"2\"}", &cs_kv2_backend},
    {NULL, NULL},
};

const struct cs_backend cs_kv_backend = {
    .type = "kv",
    .is_auth = false,
    .paths = kv_paths,
    .n_paths = CS_ARRAY_LEN(kv_paths),
    .validate_mount = kv_validate_mount,
    .variant = kv_variant,
    .variants = kv_variants,
};
