/*
 * libFuzzer target for JSON (and form) request bodies: the HTTP layer's field decoding
 * (cs_http_decode_fields in server/http_request.c), then the path-table framework's field handling
 * (server/backend.c: route, capture substitution, unknown-field warnings, required fields,
 * type coercion of strings/ints/bools/durations/maps/lists, the create-vs-update existence
 * check) into a handler that reads every field back with the accessors handlers use.
 * This is the fast half of fuzz_http (no socket, no storage), over a synthetic backend
 * whose schema has one field of every type.
 *
 * Input: byte 0 picks the operation (low 3 bits) and the Content-Type (next 2 bits);
 * byte 1 picks the path; the rest is the body. Each input must be refused with a Vault
 * error (an errmsg and a 4xx code) or reach the handler, which must see only the declared
 * field types.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/err.h"
#include "lib/log.h"
#include "server/backend.h"
#include "server/http_request.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct cs_field fz_fields[] = {
    {"name", CS_FIELD_STRING, "", false}, {"count", CS_FIELD_INT, "", false},
    {"flag", CS_FIELD_BOOL, "", false},   {"ttl", CS_FIELD_DURATION, "", false},
    {"meta", CS_FIELD_MAP, "", false},    {"list", CS_FIELD_STRLIST, "", false},
    {"any", CS_FIELD_ANY, "", false},     {NULL, 0, NULL, false},
};
static const struct cs_field fz_required[] = {
    {"must", CS_FIELD_STRING, "", true}, {"n", CS_FIELD_INT, "", true}, {NULL, 0, NULL, false}};

static bool fz_exists;
static int fz_exists_fn(struct cs_request *req, bool *exists)
{
	*exists = fz_exists;
	return 0;
}

/* Every declared field must come back with its declared type, or be absent. */
static int fz_handler(struct cs_request *req)
{
	const cJSON *v;
	if (req->route->fields != fz_fields)
		goto read; /* free-form body (CS_PATH_ANY_FIELDS) or another schema */
	if ((v = cs_req_get(req, "name")) && !cJSON_IsString(v))
		abort();
	if ((v = cs_req_get(req, "count")) && !cJSON_IsNumber(v))
		abort();
	if ((v = cs_req_get(req, "flag")) && !cJSON_IsBool(v))
		abort();
	if ((v = cs_req_get(req, "ttl")) && !cJSON_IsNumber(v))
		abort();
	if ((v = cs_req_get(req, "meta")) && !cJSON_IsObject(v))
		abort();
	if ((v = cs_req_get(req, "list"))) {
		if (!cJSON_IsArray(v))
			abort();
		const cJSON *e;
		cJSON_ArrayForEach(e, v) if (!cJSON_IsString(e)) abort();
	}
read:
	(void)cs_req_str(req, "name", "");
	(void)cs_req_int(req, "count", 0);
	(void)cs_req_int(req, "ttl", 0);
	(void)cs_req_bool(req, "flag", false);
	(void)cs_req_has(req, "any");
	(void)cs_req_capture(req, "name");
	(void)cs_req_capture(req, "path");
	cs_req_set_data(req, cJSON_Duplicate(req->data, true));
	return 0;
}

#define FZ_ALL_OPS                                                                                 \
	{                                                                                          \
		[CS_OP_READ] = fz_handler, [CS_OP_CREATE] = fz_handler,                            \
		[CS_OP_UPDATE] = fz_handler, [CS_OP_DELETE] = fz_handler,                          \
		[CS_OP_LIST] = fz_handler, [CS_OP_PATCH] = fz_handler                              \
	}

static const struct cs_path fz_paths[] = {
    {"config", fz_fields, FZ_ALL_OPS, NULL, 0, ""},
    {"users/{name}", fz_fields, FZ_ALL_OPS, fz_exists_fn, 0, ""},
    {"data/{path*}", NULL, FZ_ALL_OPS, fz_exists_fn, CS_PATH_ANY_FIELDS, ""},
    {"needs", fz_required, {[CS_OP_UPDATE] = fz_handler}, NULL, 0, ""},
    {"keys/{name}/rotate", NULL, {[CS_OP_UPDATE] = fz_handler}, NULL, 0, ""},
};
static const struct cs_backend fz_backend = {
    .type = "fuzz", .paths = fz_paths, .n_paths = sizeof fz_paths / sizeof fz_paths[0]};

static const char *const fz_rel[] = {"config",         "users/alice", "data/a/b/c", "needs",
				     "keys/k1/rotate", "users/",      "data/",      "unknown"};
static const char *const fz_ct[] = {"application/json", "application/x-www-form-urlencoded",
				    "application/merge-patch+json", NULL};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	cs_log_set_level(CS_LOG_ERROR);
	return 0;
}

static void fz_free(struct cs_request *r)
{
	for (int i = 0; i < r->n_caps; i++)
		free(r->caps[i].value);
	cJSON_Delete(r->data);
	cJSON_Delete(r->warnings);
	cJSON_Delete(r->resp_data);
	free(r->errmsg);
	free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	static const enum cs_op ops[] = {CS_OP_READ, CS_OP_CREATE, CS_OP_UPDATE, CS_OP_DELETE,
					 CS_OP_LIST, CS_OP_PATCH,  CS_OP_UPDATE, CS_OP_PATCH};
	struct cs_http_header hdr = {(char *)"Content-Type", (char *)fz_ct[(data[0] >> 3) & 3]};
	struct cs_http_req h = {0};
	snprintf(h.method, sizeof h.method, "POST");
	h.headers = &hdr;
	h.n_headers = hdr.value ? 1 : 0;
	h.body_fd = -1;
	cs_buf_append(&h.body, data + 2, size - 2);
	h.body_len = h.body.len;

	struct cs_request *req = calloc(1, sizeof *req);
	req->op = ops[data[0] & 7];
	req->root = true;
	req->data = cJSON_CreateObject();
	fz_exists = data[0] & 0x20;
	struct cs_http_flags flags = {0};
	int rc = cs_http_decode_fields(&h, req->op, &req->data, &flags, &req->errmsg);
	if (rc) {
		if (!req->errmsg || cs_err_status(rc) / 100 != 4)
			abort();
	} else if (cs_backend_route(&fz_backend, req, fz_rel[data[1] & 7])) {
		rc = cs_backend_dispatch(req);
		if (rc && (!req->errmsg || cs_err_status(rc) / 100 != 4))
			abort();
	}
	fz_free(req);
	cs_buf_free(&h.body);
	return 0;
}
