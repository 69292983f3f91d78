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
    {"count", CS_FIELD_INT, "", false},
    {"flag", CS_FIELD_BOOL, "", false},
    {"ttl", CS_FIELD_DURATION, "", false},
    {"name", CS_FIELD_STRING, "", false},
    {"list", CS_FIELD_STRLIST, "", false},
    {"must", CS_FIELD_STRING, "", true},
    {NULL, 0, NULL, false},
};
static const struct cs_field opt_fields[] = {
    {"count", CS_FIELD_INT, "", false},    {"flag", CS_FIELD_BOOL, "", false},
    {"ttl", CS_FIELD_DURATION, "", false}, {"name", CS_FIELD_STRING, "", false},
    {"list", CS_FIELD_STRLIST, "", false}, {NULL, 0, NULL, false},
};

static const struct cs_path paths[] = {
    {"config", opt_fields, {[CS_OP_READ] = h_read, [CS_OP_UPDATE] = h_update}, NULL, 0, ""},
    {"needs", fields, {[CS_OP_UPDATE] = h_update}, NULL, 0, ""},
    {"users/{name}", opt_fields, {[CS_OP_READ] = h_read}, NULL, 0, ""},
    {"users/{name}/keys/{key}", NULL, {[CS_OP_READ] = h_read}, NULL, 0, ""},
    {"mounts/{path*}/tune", NULL, {[CS_OP_READ] = h_read}, NULL, 0, ""},
    {"mounts/{path*}", NULL, {[CS_OP_READ] = h_read}, NULL, 0, ""},
    {"data/{path*}",
     NULL,
     {[CS_OP_READ] = h_read, [CS_OP_CREATE] = h_create, [CS_OP_UPDATE] = h_update},
     h_exists,
     CS_PATH_ANY_FIELDS,
     ""},
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

int main(void)
{
	Suite *s = suite_create("backend");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_route_literal_and_captures);
	tcase_add_test(tc, test_route_glob);
	tcase_add_test(tc, test_dispatch_coerces_fields);
	tcase_add_test(tc, test_dispatch_rejects_bad_values);
	tcase_add_test(tc, test_dispatch_required_unknown_and_405);
	tcase_add_test(tc, test_existence_check_picks_create);
	tcase_add_test(tc, test_router_longest_prefix);
	tcase_add_test(tc, test_acl_hook_order);
	tcase_add_test(tc, test_dispatch_rejects_out_of_range_numbers);
	tcase_add_test(tc, test_capture_wins_over_every_body_member);
	tcase_add_test(tc, test_defer_queue_bounded);
	tcase_add_test(tc, test_dispatch_number_out_of_range);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
