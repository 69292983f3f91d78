/* Unit tests for the backend path-table framework (server/backend.c) and the router. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "server/backend.h"
#include "server/core.h"
#include "server/router.h"

static int last_handler;

static int h_read(struct cs_request *req)
{
	(void)req;
	last_handler = 1;
	return 0;
}
static int h_create(struct cs_request *req)
{
	(void)req;
	last_handler = 2;
	return 0;
}
static int h_update(struct cs_request *req)
{
	(void)req;
	last_handler = 3;
	return 0;
}
static bool exists_answer;
static int h_exists(struct cs_request *req, bool *exists)
{
	(void)req;
	*exists = exists_answer;
	return 0;
}

static const struct cs_field fields[] = {
    {.name = "count", .type = CS_FIELD_INT},
    {.name = "flag", .type = CS_FIELD_BOOL},
    {.name = "ttl", .type = CS_FIELD_DURATION},
    {.name = "name", .type = CS_FIELD_STRING},
    {.name = "list", .type = CS_FIELD_STRLIST},
    {.name = "must", .type = CS_FIELD_STRING, .required = true},
    {.name = NULL},
};
static const struct cs_field opt_fields[] = {
    {.name = "count", .type = CS_FIELD_INT},    {.name = "flag", .type = CS_FIELD_BOOL},
    {.name = "ttl", .type = CS_FIELD_DURATION}, {.name = "name", .type = CS_FIELD_STRING},
    {.name = "list", .type = CS_FIELD_STRLIST}, {.name = NULL},
};

static const struct cs_path paths[] = {
    {.pattern = "config",
     .fields = opt_fields,
     .ops = {[CS_OP_READ] = h_read, [CS_OP_UPDATE] = h_update}},
    {.pattern = "needs", .fields = fields, .ops = {[CS_OP_UPDATE] = h_update}},
    {.pattern = "users/{name}", .fields = opt_fields, .ops = {[CS_OP_READ] = h_read}},
    {.pattern = "users/{name}/keys/{key}", .ops = {[CS_OP_READ] = h_read}},
    {.pattern = "mounts/{path*}/tune", .ops = {[CS_OP_READ] = h_read}},
    {.pattern = "mounts/{path*}", .ops = {[CS_OP_READ] = h_read}},
    {.pattern = "data/{path*}",
     .ops = {[CS_OP_READ] = h_read, [CS_OP_CREATE] = h_create, [CS_OP_UPDATE] = h_update},
     .exists = h_exists,
     .flags = CS_PATH_ANY_FIELDS},
};

static const struct cs_backend be = {
    .type = "test", .is_auth = false, .paths = paths, .n_paths = sizeof paths / sizeof paths[0]};

/* The core the requests belong to: its ACL hooks are what the tests set. */
static struct cs_core test_core;

static struct cs_request *mkreq(enum cs_op op, const char *body)
{
	struct cs_request *r = calloc(1, sizeof *r);
	r->core = &test_core;
	r->op = op;
	r->root = true; /* root: the ACL hook is not consulted */
	r->data = body ? cJSON_Parse(body) : cJSON_CreateObject();
	ck_assert_ptr_nonnull(r->data);
	return r;
}

static enum cs_op acl_saw_op;
static int acl_calls;
static bool acl_allow;
static int acl_test_hook(struct cs_request *req)
{
	acl_calls++;
	acl_saw_op = req->op;
	return acl_allow ? 0 : cs_req_error(req, CS_EPERM, "permission denied");
}

static void freereq(struct cs_request *r);

/* The ACL hook sees the final operation and runs before the 405 and field checks. */
START_TEST(test_acl_hook_order)
{
	struct cs_request *r = mkreq(CS_OP_UPDATE, "{\"count\":\"x\"}");
	r->root = false;
	ck_assert(cs_backend_route(&be, r, "config"));
	ck_assert_int_eq(cs_backend_dispatch(r), CS_EPERM); /* no hook: denied */
	freereq(r);

	cs_core_set_acl(&test_core, &(struct cs_acl_hooks){.check = acl_test_hook});
	acl_allow = false;
	acl_calls = 0;
	r = mkreq(CS_OP_UPDATE, "{\"count\":\"x\"}"); /* bad value: still 403 first */
	r->root = false;
	ck_assert(cs_backend_route(&be, r, "config"));
	ck_assert_int_eq(cs_backend_dispatch(r), CS_EPERM);
	ck_assert_int_eq(acl_calls, 1);
	freereq(r);

	acl_allow = true;
	exists_answer = false; /* update of a missing item becomes create */
	r = mkreq(CS_OP_UPDATE, "{}");
	r->root = false;
	ck_assert(cs_backend_route(&be, r, "data/a"));
	ck_assert_int_eq(cs_backend_dispatch(r), 0);
	ck_assert_int_eq(acl_saw_op, CS_OP_CREATE);
	freereq(r);

	r = mkreq(CS_OP_UPDATE, "{\"count\":\"x\"}"); /* allowed: now the 400 */
	r->root = false;
	ck_assert(cs_backend_route(&be, r, "config"));
	ck_assert_int_eq(cs_backend_dispatch(r), CS_EINVAL);

	/* Root never reaches the hook. */
	acl_calls = 0;
	freereq(r);
	r = mkreq(CS_OP_READ, NULL);
	ck_assert(cs_backend_route(&be, r, "config"));
	ck_assert_int_eq(cs_backend_dispatch(r), 0);
	ck_assert_int_eq(acl_calls, 0);
	freereq(r);
	cs_core_set_acl(&test_core, &(struct cs_acl_hooks){0});
}
END_TEST

static void freereq(struct cs_request *r)
{
	for (int i = 0; i < r->n_caps; i++)
		free(r->caps[i].value);
	cJSON_Delete(r->data);
	cJSON_Delete(r->warnings);
	cJSON_Delete(r->resp_data);
	free(r->errmsg);
	free(r);
}

START_TEST(test_route_literal_and_captures)
{
	struct cs_request *r = mkreq(CS_OP_READ, NULL);
	ck_assert(cs_backend_route(&be, r, "config"));
	ck_assert_str_eq(r->route->pattern, "config");
	freereq(r);

	r = mkreq(CS_OP_READ, NULL);
	ck_assert(cs_backend_route(&be, r, "users/alice"));
	ck_assert_str_eq(r->route->pattern, "users/{name}");
	ck_assert_str_eq(cs_req_capture(r, "name"), "alice");
	freereq(r);

	r = mkreq(CS_OP_READ, NULL);
	ck_assert(cs_backend_route(&be, r, "users/bob/keys/k1"));
	ck_assert_str_eq(cs_req_capture(r, "name"), "bob");
	ck_assert_str_eq(cs_req_capture(r, "key"), "k1");
	freereq(r);

	r = mkreq(CS_OP_READ, NULL);
	ck_assert(!cs_backend_route(&be, r, "users/"));
	ck_assert_int_eq(r->n_caps, 0);
	freereq(r);

	r = mkreq(CS_OP_READ, NULL);
	ck_assert(!cs_backend_route(&be, r, "configx"));
	freereq(r);
}
END_TEST

START_TEST(test_route_glob)
{
	struct cs_request *r = mkreq(CS_OP_READ, NULL);
	ck_assert(cs_backend_route(&be, r, "mounts/a/b/tune"));
	ck_assert_str_eq(r->route->pattern, "mounts/{path*}/tune");
	ck_assert_str_eq(cs_req_capture(r, "path"), "a/b");
	freereq(r);

	r = mkreq(CS_OP_READ, NULL);
	ck_assert(cs_backend_route(&be, r, "mounts/a/b"));
	ck_assert_str_eq(r->route->pattern, "mounts/{path*}");
	ck_assert_str_eq(cs_req_capture(r, "path"), "a/b");
	freereq(r);

	/* "tune" alone is a mount called tune, not the tune endpoint with an empty path. */
	r = mkreq(CS_OP_READ, NULL);
	ck_assert(cs_backend_route(&be, r, "mounts/tune"));
	ck_assert_str_eq(r->route->pattern, "mounts/{path*}");
	ck_assert_str_eq(cs_req_capture(r, "path"), "tune");
	freereq(r);

	r = mkreq(CS_OP_READ, NULL);
	ck_assert(cs_backend_route(&be, r, "data/"));
	ck_assert_str_eq(cs_req_capture(r, "path"), "");
	freereq(r);

	r = mkreq(CS_OP_READ, NULL);
	ck_assert(cs_backend_route(&be, r, "data/x/y/"));
	ck_assert_str_eq(cs_req_capture(r, "path"), "x/y/");
	freereq(r);
}
END_TEST

START_TEST(test_dispatch_coerces_fields)
{
	struct cs_request *r =
	    mkreq(CS_OP_UPDATE, "{\"count\":\"12\",\"flag\":\"true\",\"ttl\":\"1h30m\","
				"\"name\":7,\"list\":\"a, b,c\"}");
	ck_assert(cs_backend_route(&be, r, "config"));
	ck_assert_int_eq(cs_backend_dispatch(r), 0);
	ck_assert_int_eq(last_handler, 3);
	ck_assert_int_eq(cs_req_int(r, "count", 0), 12);
	ck_assert(cs_req_bool(r, "flag", false));
	ck_assert_int_eq(cs_req_int(r, "ttl", 0), 5400);
	ck_assert_str_eq(cs_req_str(r, "name", ""), "7");
	const cJSON *l = cs_req_get(r, "list");
	ck_assert_int_eq(cJSON_GetArraySize(l), 3);
	ck_assert_str_eq(cJSON_GetArrayItem(l, 1)->valuestring, "b");
	ck_assert_ptr_null(r->warnings);
	freereq(r);
}
END_TEST

START_TEST(test_dispatch_rejects_bad_values)
{
	const char *bad[] = {"{\"count\":\"x\"}", "{\"flag\":\"maybe\"}", "{\"ttl\":\"soon\"}",
			     "{\"list\":[1,2]}", "{\"count\":1.5}"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct cs_request *r = mkreq(CS_OP_UPDATE, bad[i]);
		ck_assert(cs_backend_route(&be, r, "config"));
		ck_assert_int_eq(cs_backend_dispatch(r), CS_EINVAL);
		ck_assert_ptr_nonnull(r->errmsg);
		freereq(r);
	}
}
END_TEST

/* Numbers that do not fit the field's type are a 400, never an out-of-range cast. */
START_TEST(test_dispatch_rejects_out_of_range_numbers)
{
	const char *bad[] = {"{\"count\":1e300}",
			     "{\"count\":-1e300}",
			     "{\"count\":9.3e18}",
			     "{\"count\":\"99999999999999999999\"}",
			     "{\"ttl\":1e300}",
			     "{\"ttl\":4611686019}",
			     "{\"ttl\":\"9223372036854775807\"}",
			     "{\"ttl\":\"2562047788h\"}"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct cs_request *r = mkreq(CS_OP_UPDATE, bad[i]);
		ck_assert(cs_backend_route(&be, r, "config"));
		ck_assert_msg(cs_backend_dispatch(r) == CS_EINVAL, "accepted %s", bad[i]);
		freereq(r);
	}
	/* The largest values that fit still do; cs_req_int saturates instead of casting. */
	struct cs_request *r = mkreq(CS_OP_UPDATE, "{\"count\":\"9223372036854775807\","
						   "\"ttl\":4611686018}");
	ck_assert(cs_backend_route(&be, r, "config"));
	ck_assert_int_eq(cs_backend_dispatch(r), 0);
	ck_assert(cs_req_int(r, "count", 0) == INT64_MAX);
	ck_assert(cs_req_int(r, "ttl", 0) == CS_MAX_DURATION_SECS);
	freereq(r);
}
END_TEST

/* A path parameter comes only from the route: every body member of that name goes, even
 * repeated ones (HTTP bodies with repeated keys are refused before this; internal
 * requests are not parsed from text). */
START_TEST(test_capture_wins_over_every_body_member)
{
	struct cs_request *r = mkreq(CS_OP_READ, "{}");
	cJSON_AddStringToObject(r->data, "name", "body-1");
	cJSON_AddStringToObject(r->data, "name", "body-2");
	ck_assert(cs_backend_route(&be, r, "users/alice"));
	ck_assert_int_eq(cs_backend_dispatch(r), 0);
	int n = 0;
	const cJSON *v;
	cJSON_ArrayForEach(v, r->data) if (strcmp(v->string, "name") == 0) n++;
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(cs_req_str(r, "name", ""), "alice");
	freereq(r);
}
END_TEST

/* The queue of deferred work is bounded: one job more than CS_ASYNC_MAX_QUEUED is
 * refused at once with CS_EBUSY (503), through its resume so that it is released. */
static int busy_resumes;
static int busy_resume(struct cs_request *req, struct cs_async *a, int status)
{
	(void)req;
	(void)a;
	ck_assert_int_eq(status, CS_EBUSY);
	busy_resumes++;
	return status;
}

START_TEST(test_defer_queue_bounded)
{
	static struct cs_async jobs[CS_ASYNC_MAX_QUEUED + 1];
	struct cs_request *r = mkreq(CS_OP_UPDATE, "{}"); /* the queue is test_core's */
	for (int i = 0; i < CS_ASYNC_MAX_QUEUED; i++) {
		jobs[i].resume = busy_resume;
		ck_assert_int_eq(cs_req_defer(r, &jobs[i]), CS_EASYNC);
	}
	ck_assert_int_eq(busy_resumes, 0);
	jobs[CS_ASYNC_MAX_QUEUED].resume = busy_resume;
	ck_assert_int_eq(cs_req_defer(r, &jobs[CS_ASYNC_MAX_QUEUED]), CS_EBUSY);
	ck_assert_int_eq(busy_resumes, 1);
	ck_assert_ptr_nonnull(r->errmsg);
	freereq(r);
}
END_TEST

START_TEST(test_dispatch_required_unknown_and_405)
{
	struct cs_request *r = mkreq(CS_OP_UPDATE, "{}");
	ck_assert(cs_backend_route(&be, r, "needs"));
	ck_assert_int_eq(cs_backend_dispatch(r), CS_EINVAL);
	ck_assert(strstr(r->errmsg, "must") != NULL);
	freereq(r);

	r = mkreq(CS_OP_UPDATE, "{\"bogus\":1}");
	ck_assert(cs_backend_route(&be, r, "config"));
	ck_assert_int_eq(cs_backend_dispatch(r), 0);
	ck_assert_int_eq(cJSON_GetArraySize(r->warnings), 1);
	ck_assert(strstr(cJSON_GetArrayItem(r->warnings, 0)->valuestring, "bogus") != NULL);
	freereq(r);

	r = mkreq(CS_OP_DELETE, NULL);
	ck_assert(cs_backend_route(&be, r, "config"));
	ck_assert_int_eq(cs_backend_dispatch(r), CS_EUNSUPPORTED);
	ck_assert_int_eq(cs_err_status(CS_EUNSUPPORTED), 405);
	freereq(r);
}
END_TEST

/* A required field is enforced by the framework with OpenBao's text, before the handler;
 * absent, null and "" all count as missing; a type error on another field is reported
 * first; only creates and updates are refused. */
START_TEST(test_required_field_enforced)
{
	static const char *missing[] = {"{}", "{\"must\":null}", "{\"must\":\"\"}",
					"{\"count\":2}"};
	for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
		struct cs_request *r = mkreq(CS_OP_UPDATE, missing[i]);
		ck_assert(cs_backend_route(&be, r, "needs"));
		last_handler = 0;
		ck_assert_int_eq(cs_backend_dispatch(r), CS_EINVAL);
		ck_assert_str_eq(r->errmsg, "missing required field \"must\"");
		ck_assert_int_eq(cs_err_status(CS_EINVAL), 400);
		ck_assert_int_eq(last_handler, 0);
		freereq(r);
	}

	struct cs_request *r = mkreq(CS_OP_UPDATE, "{\"count\":\"x\"}");
	ck_assert(cs_backend_route(&be, r, "needs"));
	ck_assert_int_eq(cs_backend_dispatch(r), CS_EINVAL);
	ck_assert_str_eq(r->errmsg, "error converting input for field \"count\"");
	freereq(r);

	/* A number is coerced to a non-empty string and satisfies the requirement. */
	r = mkreq(CS_OP_UPDATE, "{\"must\":7}");
	ck_assert(cs_backend_route(&be, r, "needs"));
	last_handler = 0;
	ck_assert_int_eq(cs_backend_dispatch(r), 0);
	ck_assert_int_eq(last_handler, 3);
	ck_assert_str_eq(cs_req_str(r, "must", ""), "7");
	freereq(r);

	cJSON *none = cJSON_CreateObject();
	ck_assert_ptr_null(cs_backend_missing_field(fields, none, CS_OP_READ));
	ck_assert_ptr_null(cs_backend_missing_field(fields, none, CS_OP_LIST));
	ck_assert_ptr_null(cs_backend_missing_field(fields, none, CS_OP_DELETE));
	ck_assert_ptr_null(cs_backend_missing_field(fields, none, CS_OP_PATCH));
	ck_assert_str_eq(cs_backend_missing_field(fields, none, CS_OP_CREATE)->name, "must");
	ck_assert_ptr_null(cs_backend_missing_field(opt_fields, none, CS_OP_UPDATE));
	ck_assert_ptr_null(cs_backend_missing_field(NULL, none, CS_OP_UPDATE));
	cJSON_Delete(none);
}
END_TEST

/* ?help=1: the row's synopsis and fields in Vault's help shape, and a one-path OpenAPI
 * document whose request body lists the required fields. */
static const struct cs_field help_fields[] = {
    {.name = "name", .type = CS_FIELD_STRING, .desc = "the user"},
    {.name = "must", .type = CS_FIELD_STRING, .desc = "needed", .required = true},
    {.name = "ttl", .type = CS_FIELD_DURATION, .desc = "lifetime"},
    {.name = NULL},
};
static const struct cs_path help_row = {.pattern = "users/{name}",
					.fields = help_fields,
					.ops = {[CS_OP_READ] = h_read, [CS_OP_UPDATE] = h_update},
					.synopsis = "manage one user"};

START_TEST(test_help_shape)
{
	struct cs_request *r = mkreq(CS_OP_READ, NULL);
	r->path = strdup("secret/users/bob");
	r->route = &help_row;
	cJSON *h = cs_backend_help(r);
	ck_assert_ptr_nonnull(h);
	const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(h, "help"));
	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(strstr(text, "Request:        secret/users/bob\n"));
	ck_assert_ptr_nonnull(strstr(text, "Matching Route: users/{name}\n"));
	ck_assert_ptr_nonnull(strstr(text, "manage one user"));
	ck_assert_ptr_nonnull(strstr(text, "    must (string, required)\n        needed\n"));
	ck_assert_ptr_nonnull(strstr(text, "    ttl (duration (sec))\n        lifetime\n"));
	ck_assert_ptr_nonnull(strstr(text, " read update\n"));
	ck_assert(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(h, "see_also")));

	const cJSON *doc = cJSON_GetObjectItemCaseSensitive(h, "openapi");
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(doc, "paths"), "/users/{name}");
	ck_assert_ptr_nonnull(item);
	ck_assert_str_eq(
	    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(item, "description")),
	    "manage one user");
	/* The captured field is a path parameter, the others the body's properties. */
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(item, "parameters");
	ck_assert_int_eq(cJSON_GetArraySize(params), 1);
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
			     cJSON_GetArrayItem(params, 0), "name")),
			 "name");
	ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(item, "get"));
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(item, "delete"));
	const cJSON *schema = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(item, "post"),
						     "requestBody"),
		    "content"),
		"application/json"),
	    "schema");
	ck_assert_ptr_nonnull(schema);
	const cJSON *req = cJSON_GetObjectItemCaseSensitive(schema, "required");
	ck_assert_int_eq(cJSON_GetArraySize(req), 1);
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetArrayItem(req, 0)), "must");
	ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(schema, "properties"), "ttl"));
	cJSON_Delete(h);
	free(r->path);
	freereq(r);
}
END_TEST

/* A backend's row tables are searched in order before its own rows, whatever order they
 * were filled in (the sys/ slots), and cs_backend_row walks them the same way. */
START_TEST(test_tables_order)
{
	static const struct cs_path first[] = {
	    {.pattern = "a/{x*}", .ops = {[CS_OP_READ] = h_read}}};
	static const struct cs_path second[] = {{.pattern = "a/b", .ops = {[CS_OP_READ] = h_read}},
						{.pattern = "c", .ops = {[CS_OP_READ] = h_read}}};
	struct cs_path_table tables[3] = {{0}};
	struct cs_backend b = {
	    .type = "t", .paths = paths, .n_paths = 1, .tables = tables, .n_tables = 3};
	/* Filled in reverse order; slot 1 stays empty. */
	tables[2] = (struct cs_path_table){.paths = second, .n = 2};
	tables[0] = (struct cs_path_table){.paths = first, .n = 1};
	ck_assert_uint_eq(cs_backend_n_rows(&b), 4);
	ck_assert_ptr_eq(cs_backend_row(&b, 0), &first[0]);
	ck_assert_ptr_eq(cs_backend_row(&b, 1), &second[0]);
	ck_assert_ptr_eq(cs_backend_row(&b, 2), &second[1]);
	ck_assert_ptr_eq(cs_backend_row(&b, 3), &paths[0]);
	ck_assert_ptr_null(cs_backend_row(&b, 4));

	struct cs_request *r = mkreq(CS_OP_READ, NULL);
	ck_assert(cs_backend_route(&b, r, "a/b")); /* slot 0 wins over slot 2's literal */
	ck_assert_ptr_eq(r->route, &first[0]);
	freereq(r);
	r = mkreq(CS_OP_READ, NULL);
	ck_assert(cs_backend_route(&b, r, "config"));
	ck_assert_ptr_eq(r->route, &paths[0]);
	freereq(r);
}
END_TEST

/* The one way to keep the writes and still answer an error: a flag, and a 0 return. */
START_TEST(test_error_after_commit)
{
	struct cs_request *r = mkreq(CS_OP_UPDATE, NULL);
	ck_assert_int_eq(cs_req_error_after_commit(r, CS_EINVAL, "bad %s", "thing"), 0);
	ck_assert_int_eq(r->commit_error, CS_EINVAL);
	ck_assert_str_eq(r->errmsg, "bad thing");
	freereq(r);
	ck_assert_int_ge(CS_EASYNC, CS_E__COUNT);
}
END_TEST

START_TEST(test_existence_check_picks_create)
{
	struct cs_request *r = mkreq(CS_OP_UPDATE, "{\"path\":\"not-a-capture\"}");
	ck_assert(cs_backend_route(&be, r, "data/a"));
	exists_answer = false;
	ck_assert_int_eq(cs_backend_dispatch(r), 0);
	ck_assert_int_eq(last_handler, 2);
	ck_assert_int_eq(r->op, CS_OP_CREATE);
	/* Free-form bodies are left untouched by captures. */
	ck_assert_str_eq(cs_req_str(r, "path", ""), "not-a-capture");
	freereq(r);

	r = mkreq(CS_OP_UPDATE, "{}");
	ck_assert(cs_backend_route(&be, r, "data/a"));
	exists_answer = true;
	ck_assert_int_eq(cs_backend_dispatch(r), 0);
	ck_assert_int_eq(last_handler, 3);
	freereq(r);
}
END_TEST

START_TEST(test_router_longest_prefix)
{
	cs_backend_register(&be);
	struct cs_router rt;
	cs_router_init(&rt);
	cs_router_add(&rt, cs_mount_new("a/", "test", false));
	cs_router_add(&rt, cs_mount_new("a/b/", "test", false));
	cs_router_add(&rt, cs_mount_new("auth/token/", "token", true));
	ck_assert_str_eq(cs_router_match(&rt, "a/b/c")->path, "a/b/");
	ck_assert_str_eq(cs_router_match(&rt, "a/bc")->path, "a/");
	ck_assert_str_eq(cs_router_match(&rt, "a")->path, "a/");
	ck_assert_ptr_null(cs_router_match(&rt, "ab/c"));
	ck_assert_str_eq(cs_router_match(&rt, "auth/token/lookup-self")->path, "auth/token/");

	/* Tables round-trip through their stored JSON. */
	cJSON *t = cs_router_table_json(&rt, false);
	struct cs_router back;
	cs_router_init(&back);
	ck_assert_int_eq(cs_router_load_table(&back, t, false), 0);
	ck_assert_int_eq(back.n, 2);
	ck_assert_str_eq(cs_router_get(&back, "a/b/")->uuid, cs_router_get(&rt, "a/b/")->uuid);
	ck_assert_str_eq(cs_router_get(&back, "a/")->storage_prefix,
			 cs_router_get(&rt, "a/")->storage_prefix);
	cJSON_Delete(t);
	cs_router_remove(&rt, cs_router_get(&rt, "a/"));
	ck_assert_ptr_null(cs_router_match(&rt, "a/x"));
	cs_router_clear(&back);
	cs_router_clear(&rt);
}
END_TEST

/* Found by tests/fuzz/fuzz_json (corpus/json/huge_int): a number out of int64_t range
 * was cast to int64_t (undefined behaviour, UBSan abort) in the int, duration and string
 * coercions. It is now a 400 for int and duration fields and a plain string otherwise. */
START_TEST(test_dispatch_number_out_of_range)
{
	static const char *bad[] = {
	    "{\"count\":1e300}",
	    "{\"count\":-1e300}",
	    "{\"count\":9223372036854775808}",
	    "{\"count\":\"99999999999999999999\"}",
	    "{\"ttl\":1e300}",
	    "{\"ttl\":9.3e18}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct cs_request *r = mkreq(CS_OP_UPDATE, bad[i]);
		ck_assert(cs_backend_route(&be, r, "config"));
		ck_assert_msg(cs_backend_dispatch(r) == CS_EINVAL, "%s", bad[i]);
		ck_assert_ptr_nonnull(r->errmsg);
		freereq(r);
	}
	struct cs_request *r =
	    mkreq(CS_OP_UPDATE, "{\"name\":1e300,\"count\":-9223372036854775808}");
	ck_assert(cs_backend_route(&be, r, "config"));
	ck_assert_int_eq(cs_backend_dispatch(r), 0);
	ck_assert_str_eq(cs_req_str(r, "name", ""), "1e+300");
	ck_assert(cs_req_int(r, "count", 0) == INT64_MIN);
	freereq(r);
}
END_TEST

/* Vault's default password policy: 20 characters of [A-Za-z0-9-], one of each class. */
START_TEST(test_password_default_policy)
{
	static const char set[] =
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-";
	size_t seen[256] = {0};
	struct cs_core core = {0};
	struct cs_request req = {.core = &core};
	for (int i = 0; i < 5000; i++) {
		char *p = NULL;
		ck_assert_int_eq(cs_req_generate_password(&req, i % 2 ? "" : NULL, &p), 0);
		ck_assert_uint_eq(strlen(p), 20);
		ck_assert_uint_eq(strspn(p, set), 20);
		ck_assert_ptr_nonnull(strpbrk(p, "abcdefghijklmnopqrstuvwxyz"));
		ck_assert_ptr_nonnull(strpbrk(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"));
		ck_assert_ptr_nonnull(strpbrk(p, "0123456789"));
		ck_assert_ptr_nonnull(strchr(p, '-'));
		for (const char *c = p; *c; c++)
			seen[(unsigned char)*c]++;
		free(p);
	}
	/* 100,000 draws over 63 characters: each appears (about 1,600 times). */
	for (const char *c = set; *c; c++)
		ck_assert_uint_gt(seen[(unsigned char)*c], 500);
	/* A named policy needs the module that stores them. */
	char *p = (char *)1;
	ck_assert_int_eq(cs_req_generate_password(&req, "strict", &p), CS_EINVAL);
	ck_assert_ptr_null(p);
	ck_assert_str_eq(req.errmsg, "password policy \"strict\" not found");
	free(req.errmsg);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("backend");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_route_literal_and_captures);
	tcase_add_test(tc, test_route_glob);
	tcase_add_test(tc, test_dispatch_coerces_fields);
	tcase_add_test(tc, test_dispatch_rejects_bad_values);
	tcase_add_test(tc, test_dispatch_required_unknown_and_405);
	tcase_add_test(tc, test_required_field_enforced);
	tcase_add_test(tc, test_help_shape);
	tcase_add_test(tc, test_tables_order);
	tcase_add_test(tc, test_error_after_commit);
	tcase_add_test(tc, test_existence_check_picks_create);
	tcase_add_test(tc, test_router_longest_prefix);
	tcase_add_test(tc, test_acl_hook_order);
	tcase_add_test(tc, test_dispatch_rejects_out_of_range_numbers);
	tcase_add_test(tc, test_capture_wins_over_every_body_member);
	tcase_add_test(tc, test_defer_queue_bounded);
	tcase_add_test(tc, test_dispatch_number_out_of_range);
	tcase_add_test(tc, test_password_default_policy);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
