/*
 * Two independent cores in one process (issue 10 §3): each has its own single-node store
 * in its own temp dir, is initialised and unsealed over its own HTTP listener, and gets
 * its own tokens, mounts, policies, leases and audit devices. Every module keeps its state
 * on the core (cs_core_state, the core's own fields), so nothing written on one is seen
 * by the other. Requests go through the real HTTP entry point (cs_core_handle_http behind
 * a listener on 127.0.0.1:0) with the CLI's client; both cores run on one loop thread, as
 * in-process multi-node tests will.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth/expire.h"
#include "cli/client.h"
#include "cmd/modules.h"
#include "lib/err.h"
#include "server/core.h"
#include "server/http.h"
#include "tests/unit/fixtures.h"

struct node {
	const char *name;
	struct cs_config cfg;
	struct cs_core core;
	char dir[64];       /* storage */
	char audit_dir[64]; /* audit log (outside the storage dir, as the file device wants) */
	char addr[64];      /* "http://127.0.0.1:PORT" */
	char root[160];     /* root token from sys/init */
};

static struct node A = {.name = "a"}, B = {.name = "b"};
static uv_loop_t loop;
static pthread_t loop_thread;

/* ---------------------------------------------------------------- the loop thread */

/* Work handed to the loop thread (the cores are the loop's: never touched from here). */
static struct {
	uv_async_t async;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	void (*fn)(void *arg);
	void *arg;
	bool done;
} call;

static void call_cb(uv_async_t *a)
{
	(void)a;
	pthread_mutex_lock(&call.mu);
	void (*fn)(void *) = call.fn;
	void *arg = call.arg;
	pthread_mutex_unlock(&call.mu);
	if (fn)
		fn(arg);
	pthread_mutex_lock(&call.mu);
	call.fn = NULL;
	call.done = true;
	pthread_cond_signal(&call.cv);
	pthread_mutex_unlock(&call.mu);
}

/* Run fn(arg) on the loop thread and wait for it. */
static void on_loop(void (*fn)(void *), void *arg)
{
	pthread_mutex_lock(&call.mu);
	call.fn = fn;
	call.arg = arg;
	call.done = false;
	pthread_mutex_unlock(&call.mu);
	uv_async_send(&call.async);
	pthread_mutex_lock(&call.mu);
	while (!call.done)
		pthread_cond_wait(&call.cv, &call.mu);
	pthread_mutex_unlock(&call.mu);
}

static void *loop_main(void *arg)
{
	(void)arg;
	uv_run(&loop, UV_RUN_DEFAULT);
	return NULL;
}

static void node_start(struct node *n)
{
	cs_fx_tmpdir(n->dir, sizeof n->dir, n->name);
	cs_fx_tmpdir(n->audit_dir, sizeof n->audit_dir, "audit");
	cs_config_init(&n->cfg);
	/* -dev's shape: one node, no cluster port; initialised over the API below. */
	n->cfg.dev = true;
	n->cfg.storage_path = strdup(n->dir);
	n->cfg.node_id = strdup(n->name);
	n->cfg.n_listeners = 1;
	n->cfg.listeners[0].address = strdup("127.0.0.1:0");
	n->cfg.listeners[0].tls_disable = true;
	n->cfg.listeners[0].max_request_size = CS_DEFAULT_MAX_REQUEST_SIZE;
	cs_config_finish(&n->cfg);
	cs_modules_register(&n->core);
	ck_assert_msg(cs_core_init(&n->core, &loop, &n->cfg) == 0, "init %s: %s", n->name,
		      n->core.errmsg);
	cs_modules_register_late(&n->core);
	ck_assert_msg(cs_core_listen(&n->core) == 0, "listen %s: %s", n->name, n->core.errmsg);
	snprintf(n->addr, sizeof n->addr, "http://127.0.0.1:%d",
		 cs_http_listener_port(n->core.listeners[0]));
}

static int cores_down;

static void core_stopped(struct cs_core *core)
{
	(void)core;
	if (++cores_down == 2)
		uv_close((uv_handle_t *)&call.async, NULL);
}

static void shutdown_both(void *arg)
{
	(void)arg;
	cs_core_shutdown(&A.core, core_stopped);
	cs_core_shutdown(&B.core, core_stopped);
}

/* ---------------------------------------------------------------- requests */

/* METHOD /v1/path on node n as token (NULL: none) with a JSON body (NULL: none); returns
 * the HTTP status, *out (if given) the parsed answer (caller deletes; NULL when empty). */
static long req(struct node *n, const char *token, const char *method, const char *path,
		const char *body, cJSON **out)
{
	struct cs_client c = {.addr = n->addr, .token = token, .timeout_s = 30};
	ck_assert_int_eq(cs_client_init(&c), 0);
	cJSON *b = body ? cJSON_Parse(body) : NULL;
	ck_assert(!body || b);
	struct cs_client_resp r;
	int rc = cs_client_request(&c, method, path, NULL, b, &r);
	ck_assert_msg(rc == 0, "%s %s on %s: %s", method, path, n->name, r.err);
	long status = r.status;
	if (out) {
		*out = r.json;
		r.json = NULL;
	}
	cJSON_Delete(b);
	cs_client_resp_free(&r);
	cs_client_close(&c);
	return status;
}

static const char *str_at(const cJSON *o, const char *a, const char *b)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
	if (b)
		v = cJSON_GetObjectItemCaseSensitive(v, b);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void init_unseal(struct node *n)
{
	cJSON *j = NULL;
	ck_assert_int_eq(
	    req(n, NULL, "PUT", "sys/init", "{\"secret_shares\":1,\"secret_threshold\":1}", &j),
	    200);
	const char *root = str_at(j, "root_token", NULL);
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(j, "keys_base64");
	ck_assert_ptr_nonnull(root);
	ck_assert_int_eq(cJSON_GetArraySize(keys), 1);
	snprintf(n->root, sizeof n->root, "%s", root);
	char body[256];
	snprintf(body, sizeof body, "{\"key\":\"%s\"}", cJSON_GetArrayItem(keys, 0)->valuestring);
	cJSON_Delete(j);
	ck_assert_int_eq(req(n, NULL, "PUT", "sys/unseal", body, &j), 200);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "sealed")));
	cJSON_Delete(j);
}

/* A token created on n with a TTL (so it has a lease); written to out. */
static void create_token(struct node *n, const char *body, char *out, size_t len)
{
	cJSON *j = NULL;
	ck_assert_int_eq(req(n, n->root, "POST", "auth/token/create", body, &j), 200);
	const char *t = str_at(j, "auth", "client_token");
	ck_assert_ptr_nonnull(t);
	snprintf(out, len, "%s", t);
	cJSON_Delete(j);
}

static bool has_key(struct node *n, const char *path, const char *key)
{
	cJSON *j = NULL;
	long st = req(n, n->root, "GET", path, NULL, &j);
	ck_assert_int_eq(st, 200);
	bool found = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "data"),
						      key) != NULL;
	cJSON_Delete(j);
	return found;
}

static long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* ---------------------------------------------------------------- fixture */

static void setup(void)
{
	memset(&call, 0, sizeof call);
	pthread_mutex_init(&call.mu, NULL);
	pthread_cond_init(&call.cv, NULL);
	cores_down = 0;
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	uv_async_init(&loop, &call.async, call_cb);
	node_start(&A);
	node_start(&B);
	ck_assert_int_eq(pthread_create(&loop_thread, NULL, loop_main, NULL), 0);
	init_unseal(&A);
	init_unseal(&B);
}

static void teardown(void)
{
	on_loop(shutdown_both, NULL);
	pthread_join(loop_thread, NULL);
	/* Anything still open (a closing timer) finishes here; then the state can go. */
	uv_run(&loop, UV_RUN_DEFAULT);
	cs_core_release_state(&A.core);
	cs_core_release_state(&B.core);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	struct node *nodes[] = {&A, &B};
	for (int i = 0; i < 2; i++) {
		cs_config_free(&nodes[i]->cfg);
		cs_fx_tmpdir_done(nodes[i]->dir);
		cs_fx_tmpdir_done(nodes[i]->audit_dir);
		const char *name = nodes[i]->name;
		memset(nodes[i], 0, sizeof *nodes[i]);
		nodes[i]->name = name;
	}
	pthread_cond_destroy(&call.cv);
	pthread_mutex_destroy(&call.mu);
}

/* ---------------------------------------------------------------- tests */

START_TEST(test_tokens_are_per_core)
{
	ck_assert_str_ne(A.root, B.root);
	ck_assert_int_eq(req(&A, A.root, "GET", "auth/token/lookup-self", NULL, NULL), 200);
	ck_assert_int_eq(req(&B, B.root, "GET", "auth/token/lookup-self", NULL, NULL), 200);
	/* Each core's root token is unknown to the other. */
	ck_assert_int_eq(req(&B, A.root, "GET", "auth/token/lookup-self", NULL, NULL), 403);
	ck_assert_int_eq(req(&A, B.root, "GET", "auth/token/lookup-self", NULL, NULL), 403);
	char t[160];
	create_token(&A, "{\"policies\":[\"default\"],\"ttl\":\"1h\"}", t, sizeof t);
	ck_assert_int_eq(req(&A, t, "GET", "auth/token/lookup-self", NULL, NULL), 200);
	ck_assert_int_eq(req(&B, t, "GET", "auth/token/lookup-self", NULL, NULL), 403);
	/* Revoking on B what B does not know does not touch A's token. */
	char body[256];
	snprintf(body, sizeof body, "{\"token\":\"%s\"}", t);
	req(&B, B.root, "POST", "auth/token/revoke", body, NULL);
	ck_assert_int_eq(req(&A, t, "GET", "auth/token/lookup-self", NULL, NULL), 200);
}
END_TEST

START_TEST(test_mounts_secrets_policies_are_per_core)
{
	ck_assert_int_eq(req(&A, A.root, "POST", "sys/mounts/only-a", "{\"type\":\"kv\"}", NULL),
			 204);
	ck_assert(has_key(&A, "sys/mounts", "only-a/"));
	ck_assert(!has_key(&B, "sys/mounts", "only-a/"));
	ck_assert_int_eq(req(&A, A.root, "PUT", "only-a/s", "{\"v\":\"from-a\"}", NULL), 204);
	cJSON *j = NULL;
	ck_assert_int_eq(req(&A, A.root, "GET", "only-a/s", NULL, &j), 200);
	ck_assert_str_eq(str_at(j, "data", "v"), "from-a");
	cJSON_Delete(j);
	ck_assert_int_ne(req(&B, B.root, "GET", "only-a/s", NULL, NULL), 200);

	/* The same mount path on both: separate data. */
	ck_assert_int_eq(req(&B, B.root, "POST", "sys/mounts/only-a", "{\"type\":\"kv\"}", NULL),
			 204);
	ck_assert_int_eq(req(&B, B.root, "GET", "only-a/s", NULL, NULL), 404);

	/* Policies: one written on A is absent on B, and a same-named policy on B with other
	 * rules gives B's tokens B's rules (the parsed-policy cache is per core). */
	ck_assert_int_eq(
	    req(&A, A.root, "PUT", "sys/policies/acl/reader",
		"{\"policy\":\"path \\\"only-a/*\\\" { capabilities = [\\\"read\\\"] }\"}", NULL),
	    204);
	ck_assert_int_eq(req(&A, A.root, "GET", "sys/policies/acl/reader", NULL, NULL), 200);
	ck_assert_int_eq(req(&B, B.root, "GET", "sys/policies/acl/reader", NULL, NULL), 404);
	char ta[160], tb[160];
	create_token(&A, "{\"policies\":[\"reader\"]}", ta, sizeof ta);
	ck_assert_int_eq(req(&A, ta, "GET", "only-a/s", NULL, NULL), 200);
	ck_assert_int_eq(
	    req(&B, B.root, "PUT", "sys/policies/acl/reader",
		"{\"policy\":\"path \\\"other/*\\\" { capabilities = [\\\"read\\\"] }\"}", NULL),
	    204);
	create_token(&B, "{\"policies\":[\"reader\"]}", tb, sizeof tb);
	ck_assert_int_eq(req(&B, tb, "GET", "only-a/s", NULL, NULL), 403);
	ck_assert_int_eq(req(&A, ta, "GET", "only-a/s", NULL, NULL), 200);
}
END_TEST

struct pending_counts {
	size_t a, b;
};

static void read_pending(void *arg)
{
	struct pending_counts *p = arg;
	p->a = cs_expire_pending(&A.core);
	p->b = cs_expire_pending(&B.core);
}

START_TEST(test_leases_are_per_core)
{
	struct pending_counts before, after;
	on_loop(read_pending, &before);
	char t[3][160];
	for (int i = 0; i < 3; i++)
		create_token(&A, "{\"policies\":[\"default\"],\"ttl\":\"1h\"}", t[i], sizeof t[i]);
	on_loop(read_pending, &after);
	/* The expiration heap is A's alone. */
	ck_assert_uint_eq(after.a, before.a + 3);
	ck_assert_uint_eq(after.b, before.b);

	cJSON *j = NULL;
	ck_assert_int_eq(req(&A, A.root, "LIST", "sys/leases/lookup/auth/token/create", NULL, &j),
			 200);
	ck_assert_int_ge(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
			     cJSON_GetObjectItemCaseSensitive(j, "data"), "keys")),
			 3);
	cJSON_Delete(j);
	ck_assert_int_eq(req(&B, B.root, "LIST", "sys/leases/lookup/auth/token/create", NULL, NULL),
			 404);
	/* Revoking every token lease on B leaves A's tokens alone. */
	ck_assert_int_eq(
	    req(&B, B.root, "PUT", "sys/leases/revoke-prefix/auth/token/create", NULL, NULL), 204);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(req(&A, t[i], "GET", "auth/token/lookup-self", NULL, NULL), 200);
	ck_assert_int_eq(req(&B, B.root, "GET", "auth/token/lookup-self", NULL, NULL), 200);
}
END_TEST

START_TEST(test_audit_devices_are_per_core)
{
	char log_a[128], body[256];
	snprintf(log_a, sizeof log_a, "%s/audit.log", A.audit_dir);
	snprintf(body, sizeof body, "{\"type\":\"file\",\"options\":{\"file_path\":\"%s\"}}",
		 log_a);
	ck_assert_int_eq(req(&A, A.root, "PUT", "sys/audit/file", body, NULL), 204);
	ck_assert(has_key(&A, "sys/audit", "file/"));
	ck_assert(!has_key(&B, "sys/audit", "file/"));
	/* B's requests do not reach A's device; A's do. */
	long size = file_size(log_a);
	ck_assert_int_gt(size, 0);
	ck_assert_int_eq(req(&B, B.root, "GET", "auth/token/lookup-self", NULL, NULL), 200);
	ck_assert_int_eq(file_size(log_a), size);
	ck_assert_int_eq(req(&A, A.root, "GET", "auth/token/lookup-self", NULL, NULL), 200);
	ck_assert_int_gt(file_size(log_a), size);
	/* The same device path on B is B's own. */
	char log_b[128];
	snprintf(log_b, sizeof log_b, "%s/audit.log", B.audit_dir);
	snprintf(body, sizeof body, "{\"type\":\"file\",\"options\":{\"file_path\":\"%s\"}}",
		 log_b);
	ck_assert_int_eq(req(&B, B.root, "PUT", "sys/audit/file", body, NULL), 204);
	size = file_size(log_a);
	ck_assert_int_eq(req(&B, B.root, "GET", "auth/token/lookup-self", NULL, NULL), 200);
	ck_assert_int_eq(file_size(log_a), size);
	ck_assert_int_gt(file_size(log_b), 0);
	/* Disabling A's device leaves B's. */
	ck_assert_int_eq(req(&A, A.root, "DELETE", "sys/audit/file", NULL, NULL), 204);
	ck_assert(has_key(&B, "sys/audit", "file/"));
}
END_TEST

START_TEST(test_seal_is_per_core)
{
	ck_assert_int_eq(req(&A, A.root, "PUT", "sys/seal", NULL, NULL), 204);
	cJSON *j = NULL;
	ck_assert_int_eq(req(&A, NULL, "GET", "sys/seal-status", NULL, &j), 200);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "sealed")));
	cJSON_Delete(j);
	ck_assert_int_eq(req(&B, NULL, "GET", "sys/seal-status", NULL, &j), 200);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "sealed")));
	cJSON_Delete(j);
	ck_assert_int_eq(req(&B, B.root, "GET", "auth/token/lookup-self", NULL, NULL), 200);
	ck_assert_int_eq(req(&B, B.root, "PUT", "cubbyhole/x", "{\"v\":\"1\"}", NULL), 204);
	ck_assert_int_eq(req(&B, B.root, "GET", "cubbyhole/x", NULL, NULL), 200);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("two_cores");
	TCase *tc = tcase_create("isolation");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_tokens_are_per_core);
	tcase_add_test(tc, test_mounts_secrets_policies_are_per_core);
	tcase_add_test(tc, test_leases_are_per_core);
	tcase_add_test(tc, test_audit_devices_are_per_core);
	tcase_add_test(tc, test_seal_is_per_core);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
