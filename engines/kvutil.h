/*
 * Helpers shared by the engines that store free-form JSON secrets under a mount's view:
 * KV v1 (engines/kv.c) and cubbyhole (engines/cubbyhole.c) use the KV v1-style
 * operations below; KV v2 (engines/kv2.c) uses the path and existence helpers.
 *
 * The v1-style operations name storage through a key function, so that an engine can
 * map a secret path to its own layout (cubbyhole: "<H(token)>/<path>") and report its
 * own error when it cannot (no token). The key function is called only after the
 * operation's own argument checks, so errors come out in the same order in every
 * engine. Nothing here keeps state; everything runs on the loop thread, inside the
 * request's txn.
 */
#ifndef CS_ENGINES_KVUTIL_H
#define CS_ENGINES_KVUTIL_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "server/backend.h"

/*
 * The storage key of secret path `path`, malloc'd (the caller frees it), or NULL with *rc
 * set (an error recorded on req). Passing NULL where one is expected means "the path is
 * the key".
 */
typedef char *cs_kvutil_key_fn(struct cs_request *req, const char *path, int *rc);

/* The "path" capture of the route, or "" (never NULL; owned by req). */
const char *cs_kvutil_path(const struct cs_request *req);

/* Existence check of one storage key: 0 with *exists, or a storage error (then *exists
 * is false). The value read is wiped before it is freed. */
int cs_kvutil_key_exists(struct cs_request *req, const char *key, bool *exists);

/* Existence check of the request's secret path (the backend's existence hook). */
int cs_kvutil_exists(struct cs_request *req, cs_kvutil_key_fn *key_fn, bool *exists);

/* Read the object stored for `path`: 0 with *out (the caller owns it), CS_ENOTFOUND,
 * or an error. The caller has checked that `path` is not empty. */
int cs_kvutil_get(struct cs_request *req, cs_kvutil_key_fn *key_fn, const char *path, cJSON **out);

/* The checks every v1-style write makes before storing: a non-empty path without a
 * trailing '/', and at least one field in the body. 0 or CS_EINVAL with the error set. */
int cs_kvutil_check_write(struct cs_request *req, const char *path);

/* Store the request body (free-form, CS_PATH_ANY_FIELDS) as the object of `path`,
 * exactly as sent. The caller has run cs_kvutil_check_write. */
int cs_kvutil_put(struct cs_request *req, cs_kvutil_key_fn *key_fn, const char *path);

/* Delete the object of `path`: the storage code as is (CS_ENOTFOUND when absent).
 * The caller has checked that `path` is not empty. */
int cs_kvutil_delete(struct cs_request *req, cs_kvutil_key_fn *key_fn, const char *path);

/* LIST of the request's secret path as a folder: {"keys": [...]} set on req, or
 * CS_ENOTFOUND when nothing is stored below it. */
int cs_kvutil_list(struct cs_request *req, cs_kvutil_key_fn *key_fn);

#endif
