/*
 * The cubbyhole engine (see cubbyhole.h). Handlers are KV v1's (engines/kvutil.h) with one
 * difference: every key is prefixed with the calling token's storage key, taken from the
 * token entry the core looked up (its "key" field), so a token can never name another
 * token's data, whatever path it sends.
 */
#include "engines/cubbyhole.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engines/kvutil.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"

#define CUBBY_PATH "cubbyhole/"

static struct cs_core *cubby_core;

/* The caller's storage key, or NULL (no token: the path is never unauthenticated, so this
 * only happens for internal requests). */
static const char *token_key(const struct cs_request *req)
{
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(req->token_entry, "key");
	return cJSON_IsString(k) && strlen(k->valuestring) == 64 ? k->valuestring : NULL;
}

/* "<H(token)>/<path>" (malloc'd), or NULL with an error set on req. */
static char *cubby_key(struct cs_request *req, const char *path, int *rc)
{
	const char *tk = token_key(req);
	if (!tk) {
		*rc = cs_req_error(req, CS_EINVAL, "client token empty");
		return NULL;
	}
	size_t n = strlen(tk) + strlen(path) + 2;
	char *k = malloc(n);
	if (!k)
		abort();
	snprintf(k, n, "%s/%s", tk, path);
	*rc = 0;
	return k;
}

static int cubby_exists(struct cs_request *req, bool *exists)
{
	*exists = false;
	if (!token_key(req))
		return 0; /* the handler reports it */
	return cs_kvutil_exists(req, cubby_key, exists);
}

static int cubby_read(struct cs_request *req)
{
	const char *path = cs_kvutil_path(req);
	if (!*path)
		return cs_req_error(req, CS_EINVAL, "missing path");
	cJSON *data = NULL;
	int rc = cs_kvutil_get(req, cubby_key, path, &data);
	if (rc)
		return rc;
	cs_req_set_data(req, data); /* no lease: cubbyhole reads report 0 */
	return 0;
}

static int cubby_write(struct cs_request *req)
{
	const char *path = cs_kvutil_path(req);
	int rc = cs_kvutil_check_write(req, path);
	return rc ? rc : cs_kvutil_put(req, cubby_key, path);
}

static int cubby_delete(struct cs_request *req)
{
	const char *path = cs_kvutil_path(req);
	if (!*path)
		return cs_req_error(req, CS_EINVAL, "missing path");
	int rc = cs_kvutil_delete(req, cubby_key, path);
	return rc == CS_ENOTFOUND ? 0 : rc;
}

static int cubby_list(struct cs_request *req)
{
	return cs_kvutil_list(req, cubby_key);
}

int cs_cubbyhole_destroy(struct cs_txn *txn, const char *token_key_hex)
{
	if (!cubby_core || !token_key_hex || !*token_key_hex || strchr(token_key_hex, '/'))
		return 0;
	const char *mount_prefix = cs_backend_mount_prefix(cubby_core, CUBBY_PATH);
	if (!mount_prefix)
		return 0;
	char prefix[512];
	int n = snprintf(prefix, sizeof prefix, "%s%s/", mount_prefix, token_key_hex);
	if (n < 0 || (size_t)n >= sizeof prefix)
		return CS_EINVAL;
	struct cs_strv keys = {0};
	int rc = cs_txn_scan(txn, prefix, &keys);
	for (size_t i = 0; !rc && i < keys.n; i++)
		if ((rc = cs_txn_delete(txn, keys.v[i])) == CS_ENOTFOUND)
			rc = 0;
	cs_strv_free(&keys);
	return rc;
}

static const struct cs_path cubby_paths[] = {
    {.pattern = "{path*}",
     .ops = {[CS_OP_READ] = cubby_read,
	     [CS_OP_CREATE] = cubby_write,
	     [CS_OP_UPDATE] = cubby_write,
	     [CS_OP_DELETE] = cubby_delete,
	     [CS_OP_LIST] = cubby_list},
     .exists = cubby_exists,
     .flags = CS_PATH_ANY_FIELDS,
     .synopsis = "per-token private secret storage"},
};

const struct cs_backend cs_cubbyhole_backend = {
    .type = "cubbyhole",
    .is_auth = false,
    .paths = cubby_paths,
    .n_paths = CS_ARRAY_LEN(cubby_paths),
};

void cs_cubbyhole_register(struct cs_core *core)
{
	cubby_core = core;
	cs_backend_register(&cs_cubbyhole_backend);
	cs_sys_require_mount(CUBBY_PATH, "cubbyhole", "per-token private secret storage");
	cs_backend_set_token_revoked_hook(cs_cubbyhole_destroy);
}
