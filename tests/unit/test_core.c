/*
 * Unit tests for the request pipeline (server/core.c), the Shamir seal (server/seal.c)
 * and the raft sys/ handlers (server/raft_sys.c, server/snapshot_sys.c), through their
 * public entry points only: a whole core, registered as the server registers it
 * (cmd/modules.c), runs a one-node raft (the -dev transport: no cluster port) on a loop
 * in a server thread; the test thread is an HTTP client (fixtures.h). cs_core_admit is
 * called on the loop thread with a request built by hand, as the HTTP layer calls it.
 * Check forks per test, so every test starts from a fresh, uninitialised node.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cmd/modules.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"
#include "server/core.h"
#include "server/http.h"
#include "server/periodic.h"
#include "tests/unit/fixtures.h"

/* ---------------------------------------------------------------- node fixture */

static struct {
	uv_loop_t loop;
	uv_async_t wake;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct cs_config cfg;
	struct cs_core core;
	char dir[64];
	int port;
	/* a call to run on the loop thread (on_loop) */
	void (*fn)(void *arg);
	void *arg;
	bool fn_done;
	bool stop;
} n;

static char root_token[128];
static char keys[CS_MAX_SHARES][2 * 40];
static int n_keys;
static struct cs_fx_client *cl;

static void core_stopped(struct cs_core *core)
{
	(void)core;
	uv_close((uv_handle_t *)&n.wake, NULL);
}

static void wake_cb(uv_async_t *a)
{
	(void)a;
	pthread_mutex_lock(&n.mu);
	void (*fn)(void *) = n.fn;
	void *arg = n.arg;
	bool stop = n.stop;
	n.fn = NULL;
	pthread_mutex_unlock(&n.mu);
	if (fn) {
		fn(arg);
		pthread_mutex_lock(&n.mu);
		n.fn_done = true;
		pthread_cond_broadcast(&n.cv);
		pthread_mutex_unlock(&n.mu);
	}
	if (stop)
		cs_core_shutdown(&n.core, core_stopped);
}

/* Run fn(arg) on the loop thread and wait until it returned. */
static void on_loop(void (*fn)(void *), void *arg)
{
	pthread_mutex_lock(&n.mu);
	n.fn = fn;
	n.arg = arg;
	n.fn_done = false;
	uv_async_send(&n.wake);
	while (!n.fn_done)
		pthread_cond_wait(&n.cv, &n.mu);
	pthread_mutex_unlock(&n.mu);
}

static void *loop_thread(void *arg)
{
	(void)arg;
	uv_run(&n.loop, UV_RUN_DEFAULT);
	return NULL;
}

static void node_setup(void)
{
	cs_log_set_level(CS_LOG_ERROR);
	memset(&n, 0, sizeof n);
	pthread_mutex_init(&n.mu, NULL);
	pthread_cond_init(&n.cv, NULL);
	cs_fx_tmpdir(n.dir, sizeof n.dir, "core");
	cs_config_init(&n.cfg);
	n.cfg.dev = true; /* raft through the one-node transport: no cluster port to bind */
	n.cfg.storage_path = strdup(n.dir);
	n.cfg.node_id = strdup("core-test");
	n.cfg.n_listeners = 1;
	n.cfg.listeners[0].address = strdup("127.0.0.1:0");
	n.cfg.listeners[0].cluster_address = strdup("127.0.0.1:8201");
	n.cfg.listeners[0].tls_disable = true;
	n.cfg.listeners[0].max_request_size = CS_DEFAULT_MAX_REQUEST_SIZE;
	ck_assert_int_eq(uv_loop_init(&n.loop), 0);
	cs_modules_register(&n.core);
	ck_assert_msg(cs_core_init(&n.core, &n.loop, &n.cfg) == 0, "%s", n.core.errmsg);
	cs_modules_register_late(&n.core);
	ck_assert_msg(cs_core_listen(&n.core) == 0, "%s", n.core.errmsg);
	n.port = cs_http_listener_port(n.core.listeners[0]);
	ck_assert_int_gt(n.port, 0);
	uv_async_init(&n.loop, &n.wake, wake_cb);
	ck_assert_int_eq(pthread_create(&n.th, NULL, loop_thread, NULL), 0);
	cl = cs_fx_client_connect(n.port);
	ck_assert_ptr_nonnull(cl);
	n_keys = 0;
	root_token[0] = '\0';
}

static void node_teardown(void)
{
	cs_fx_client_close(cl);
	cl = NULL;
	pthread_mutex_lock(&n.mu);
	n.stop = true;
	pthread_mutex_unlock(&n.mu);
	uv_async_send(&n.wake);
	pthread_join(n.th, NULL);
	ck_assert_int_eq(uv_loop_close(&n.loop), 0);
	cs_config_free(&n.cfg);
	cs_fx_tmpdir_done(n.dir);
}

/* ---------------------------------------------------------------- requests */

/* method /v1/<path> as `token` with body `json`; returns the status, *out the JSON body
 * (NULL when empty; caller deletes). */
static int req(const char *method, const char *path, const char *token, const char *json,
	       cJSON **out)
{
	char target[512];
	snprintf(target, sizeof target, "/v1/%s", path);
	struct cs_fx_resp r;
	cs_fx_client_request(cl, method, target, token, json, &r);
	int status = r.status;
	if (out) {
		*out = r.body.len ? cJSON_ParseWithLength(r.body.data, r.body.len) : NULL;
		ck_assert_msg(!r.body.len || *out, "not JSON: %s", r.body.data);
	}
	cs_fx_resp_free(&r);
	return status;
}

/* The first entry of {"errors":[...]} ("" for an empty list). */
static const char *first_error(const cJSON *o)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "errors");
	ck_assert_msg(cJSON_IsArray(e), "no errors array");
	const cJSON *f = cJSON_GetArrayItem(e, 0);
	return cJSON_IsString(f) ? f->valuestring : "";
}

/* Expect `status` with an error containing `want`. */
static void expect_error(const char *method, const char *path, const char *token, const char *json,
			 int status, const char *want)
{
	cJSON *o = NULL;
	int st = req(method, path, token, json, &o);
	ck_assert_msg(st == status, "%s %s: status %d, want %d", method, path, st, status);
	ck_assert_ptr_nonnull(o);
	ck_assert_msg(strstr(first_error(o), want), "%s %s: error \"%s\", want \"%s\"", method,
		      path, first_error(o), want);
	cJSON_Delete(o);
}

static bool jbool(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	ck_assert_msg(cJSON_IsBool(v), "no bool %s", k);
	return cJSON_IsTrue(v);
}

static int jint(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	ck_assert_msg(cJSON_IsNumber(v), "no number %s", k);
	return v->valueint;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	ck_assert_msg(cJSON_IsString(v), "no string %s", k);
	return v->valuestring;
}

static cJSON *seal_status(void)
{
	cJSON *o = NULL;
	ck_assert_int_eq(req("GET", "sys/seal-status", NULL, NULL, &o), 200);
	return o;
}

static bool is_sealed(int *progress)
{
	cJSON *o = seal_status();
	bool s = jbool(o, "sealed");
	if (progress)
		*progress = jint(o, "progress");
	cJSON_Delete(o);
	return s;
}

/* sys/init with n shares, threshold t: keeps the hex shares and the root token. */
static void init_node(int shares, int threshold)
{
	char body[128];
	snprintf(body, sizeof body, "{\"secret_shares\":%d,\"secret_threshold\":%d}", shares,
		 threshold);
	cJSON *o = NULL;
	ck_assert_int_eq(req("PUT", "sys/init", NULL, body, &o), 200);
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "keys");
	ck_assert_int_eq(cJSON_GetArraySize(k), shares);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, "keys_base64")),
			 shares);
	n_keys = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, k)
	{
		ck_assert(cJSON_IsString(e));
		snprintf(keys[n_keys++], sizeof keys[0], "%s", e->valuestring);
	}
	snprintf(root_token, sizeof root_token, "%s", jstr(o, "root_token"));
	cJSON_Delete(o);
}

/* Submit one share; returns the status, *sealed and *progress from the answer when 200. */
static int unseal_key(const char *key, bool *sealed, int *progress)
{
	char body[256];
	snprintf(body, sizeof body, "{\"key\":\"%s\"}", key);
	cJSON *o = NULL;
	int st = req("PUT", "sys/unseal", NULL, body, &o);
	if (st == 200) {
		*sealed = jbool(o, "sealed");
		*progress = jint(o, "progress");
	}
	cJSON_Delete(o);
	return st;
}

static void unseal_all(void)
{
	bool sealed = true;
	int progress = 0;
	for (int i = 0; i < n_keys && sealed; i++)
		ck_assert_int_eq(unseal_key(keys[i], &sealed, &progress), 200);
	ck_assert(!sealed);
}

static void init_unseal(void)
{
	init_node(3, 2);
	unseal_all();
}

/* A random share of the right length for a 3/2 seal (33 bytes), in hex. */
static void bogus_share(char *out, uint8_t x)
{
	uint8_t b[33];
	cs_random(b, sizeof b);
	b[32] = x;
	cs_hex_encode(b, sizeof b, out);
}

/* ---------------------------------------------------------------- init and seal config */

START_TEST(test_init_fresh_node)
{
	cJSON *o = NULL;
	ck_assert_int_eq(req("GET", "sys/init", NULL, NULL, &o), 200);
	ck_assert(!jbool(o, "initialized"));
	cJSON_Delete(o);
	o = seal_status();
	ck_assert(jbool(o, "sealed"));
	ck_assert(!jbool(o, "initialized"));
	cJSON_Delete(o);
	/* Unsealing an uninitialised node is refused. */
	char k[80];
	bogus_share(k, 1);
	char body[128];
	snprintf(body, sizeof body, "{\"key\":\"%s\"}", k);
	expect_error("PUT", "sys/unseal", NULL, body, 400, "not initialized");

	init_node(5, 3);
	ck_assert_int_eq(req("GET", "sys/init", NULL, NULL, &o), 200);
	ck_assert(jbool(o, "initialized"));
	cJSON_Delete(o);
	o = seal_status();
	ck_assert(jbool(o, "sealed"));
	ck_assert_int_eq(jint(o, "n"), 5);
	ck_assert_int_eq(jint(o, "t"), 3);
	ck_assert_int_eq(jint(o, "progress"), 0);
	cJSON_Delete(o);
	/* The shares are distinct. */
	for (int i = 0; i < n_keys; i++)
		for (int j = i + 1; j < n_keys; j++)
			ck_assert_str_ne(keys[i], keys[j]);
	/* Once only. */
	expect_error("PUT", "sys/init", NULL, "{\"secret_shares\":1,\"secret_threshold\":1}", 400,
		     "already initialized");
}
END_TEST

/* Shares and threshold out of bounds are refused and leave the node uninitialised; a good
 * configuration afterwards still works. */
START_TEST(test_init_seal_config_bounds)
{
	static const char *bad[] = {
	    "{\"secret_shares\":0,\"secret_threshold\":0}",
	    "{\"secret_shares\":3,\"secret_threshold\":4}",
	    "{\"secret_shares\":5,\"secret_threshold\":0}",
	    "{\"secret_shares\":256,\"secret_threshold\":3}",
	    "{\"secret_shares\":-1,\"secret_threshold\":1}",
	    "{\"secret_threshold\":1}",
	    "{\"secret_shares\":3,\"secret_threshold\":2,\"recovery_shares\":1}",
	};
	for (size_t i = 0; i < CS_ARRAY_LEN(bad); i++) {
		cJSON *o = NULL;
		int st = req("PUT", "sys/init", NULL, bad[i], &o);
		ck_assert_msg(st == 400, "%s: %d", bad[i], st);
		ck_assert_str_ne(first_error(o), "");
		cJSON_Delete(o);
		ck_assert_int_eq(req("GET", "sys/init", NULL, NULL, &o), 200);
		ck_assert_msg(!jbool(o, "initialized"), "%s initialised the node", bad[i]);
		cJSON_Delete(o);
	}
	init_node(1, 1); /* one share: the key itself */
	ck_assert_uint_eq(strlen(keys[0]), 64);
	unseal_all();
}
END_TEST

/* ---------------------------------------------------------------- unseal */

START_TEST(test_unseal_progress)
{
	init_node(5, 3);
	bool sealed = false;
	int progress = -1;
	ck_assert_int_eq(unseal_key(keys[0], &sealed, &progress), 200);
	ck_assert(sealed);
	ck_assert_int_eq(progress, 1);
	cJSON *o = seal_status();
	char nonce[64];
	snprintf(nonce, sizeof nonce, "%s", jstr(o, "nonce"));
	ck_assert_str_ne(nonce, "");
	cJSON_Delete(o);
	/* The same share twice counts once. */
	ck_assert_int_eq(unseal_key(keys[0], &sealed, &progress), 200);
	ck_assert_int_eq(progress, 1);
	/* Base64 is accepted as well as hex: share 4 as base64. */
	uint8_t raw[40];
	ck_assert_int_eq(cs_hex_decode(keys[3], strlen(keys[3]), raw), 33);
	char *b64 = cs_b64_encode(raw, 33);
	ck_assert_int_eq(unseal_key(b64, &sealed, &progress), 200);
	free(b64);
	ck_assert(sealed);
	ck_assert_int_eq(progress, 2);
	/* Any third share opens the barrier. */
	ck_assert_int_eq(unseal_key(keys[4], &sealed, &progress), 200);
	ck_assert(!sealed);
	ck_assert_int_eq(progress, 0);
	ck_assert(!is_sealed(NULL));
	/* A share once unsealed is a no-op. */
	ck_assert_int_eq(unseal_key(keys[1], &sealed, &progress), 200);
	ck_assert(!sealed);
}
END_TEST

/* Wrong shares: a full set that does not rebuild the key fails, resets the progress and
 * leaves the node sealed; a malformed share is refused without counting. */
START_TEST(test_unseal_wrong_shares)
{
	init_node(3, 2);
	bool sealed = false;
	int progress = -1;
	char k1[80], k2[80];
	bogus_share(k1, 1);
	bogus_share(k2, 2);
	ck_assert_int_eq(unseal_key(k1, &sealed, &progress), 200);
	ck_assert_int_eq(progress, 1);
	char body[256];
	snprintf(body, sizeof body, "{\"key\":\"%s\"}", k2);
	expect_error("PUT", "sys/unseal", NULL, body, 400, "failed to decrypt keys");
	ck_assert(is_sealed(&progress));
	ck_assert_int_eq(progress, 0);
	/* One real and one bogus share: still wrong. */
	ck_assert_int_eq(unseal_key(keys[0], &sealed, &progress), 200);
	snprintf(body, sizeof body, "{\"key\":\"%s\"}", k1);
	expect_error("PUT", "sys/unseal", NULL, body, 400, "failed to decrypt keys");
	ck_assert(is_sealed(&progress));
	ck_assert_int_eq(progress, 0);
	/* Wrong length, not hex/base64, missing key: refused, progress untouched. */
	ck_assert_int_eq(unseal_key(keys[0], &sealed, &progress), 200);
	ck_assert_int_eq(progress, 1);
	expect_error("PUT", "sys/unseal", NULL, "{\"key\":\"abcd\"}", 400, "");
	expect_error("PUT", "sys/unseal", NULL, "{\"key\":\"not a key!\"}", 400, "");
	expect_error("PUT", "sys/unseal", NULL, "{}", 400, "");
	ck_assert(is_sealed(&progress));
	ck_assert_int_eq(progress, 1);
	/* The right shares still open it. */
	ck_assert_int_eq(unseal_key(keys[2], &sealed, &progress), 200);
	ck_assert(!sealed);
}
END_TEST

START_TEST(test_unseal_reset)
{
	init_node(3, 2);
	bool sealed = false;
	int progress = -1;
	ck_assert_int_eq(unseal_key(keys[0], &sealed, &progress), 200);
	ck_assert_int_eq(progress, 1);
	cJSON *o = NULL;
	ck_assert_int_eq(req("PUT", "sys/unseal", NULL, "{\"reset\":true}", &o), 200);
	ck_assert(jbool(o, "sealed"));
	ck_assert_int_eq(jint(o, "progress"), 0);
	cJSON_Delete(o);
	ck_assert(is_sealed(&progress));
	ck_assert_int_eq(progress, 0);
	/* After the reset one more share is not enough: the first was dropped. */
	ck_assert_int_eq(unseal_key(keys[1], &sealed, &progress), 200);
	ck_assert(sealed);
	ck_assert_int_eq(progress, 1);
	ck_assert_int_eq(unseal_key(keys[2], &sealed, &progress), 200);
	ck_assert(!sealed);
}
END_TEST

/* Sealing drops the keyring: requests are 503 until unsealed again with the same shares. */
START_TEST(test_seal_and_unseal_again)
{
	init_unseal();
	ck_assert_int_eq(req("GET", "sys/mounts", root_token, NULL, NULL), 200);
	expect_error("PUT", "sys/seal", NULL, NULL, 403, "permission denied");
	ck_assert_int_eq(req("PUT", "sys/seal", root_token, NULL, NULL), 204);
	ck_assert(is_sealed(NULL));
	expect_error("GET", "sys/mounts", root_token, NULL, 503, "sealed");
	expect_error("GET", "secret/x", root_token, NULL, 503, "sealed");
	unseal_all();
	ck_assert_int_eq(req("GET", "sys/mounts", root_token, NULL, NULL), 200);
}
END_TEST

/* ---------------------------------------------------------------- the pipeline */

/* Sealed: only the paths marked sealed-ok answer; everything else is 503. */
START_TEST(test_sealed_admission)
{
	init_node(3, 2);
	expect_error("GET", "sys/mounts", NULL, NULL, 503, "sealed");
	expect_error("PUT", "sys/policy/p", NULL, "{\"policy\":\"\"}", 503, "sealed");
	expect_error("GET", "kv/anything", NULL, NULL, 503, "sealed");
	expect_error("GET", "sys/storage/raft/configuration", NULL, NULL, 503, "sealed");
	ck_assert_int_eq(req("GET", "sys/health", NULL, NULL, NULL), 503); /* sealed code */
	ck_assert_int_eq(req("GET", "sys/seal-status", NULL, NULL, NULL), 200);
}
END_TEST

/* Unsealed: the token is checked before the route, so an unknown path is 404 only for a
 * caller who could have been allowed. */
START_TEST(test_routing_and_tokens)
{
	init_unseal();
	expect_error("GET", "sys/mounts", NULL, NULL, 403, "permission denied");
	expect_error("GET", "sys/mounts", "not-a-token", NULL, 403, "permission denied");
	expect_error("GET", "nosuchmount/x", NULL, NULL, 403, "permission denied");
	expect_error("GET", "nosuchmount/x", root_token, NULL, 404, "no handler for route");
	expect_error("GET", "sys/no-such-endpoint", root_token, NULL, 404, "");
	/* Bearer works like X-Vault-Token. */
	char hdr[512];
	snprintf(hdr, sizeof hdr,
		 "GET /v1/sys/mounts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n",
		 root_token);
	cs_fx_client_send(cl, hdr, strlen(hdr));
	struct cs_fx_resp r;
	cs_fx_client_read_resp(cl, &r, false);
	ck_assert_int_eq(r.status, 200);
	ck_assert(cs_fx_resp_has_header(&r, "Content-Type: application/json"));
	cs_fx_resp_free(&r);
	/* Outside /v1/: 404 with Vault's empty error list. */
	cs_fx_client_request(cl, "GET", "/v2/sys/mounts", root_token, NULL, &r);
	ck_assert_int_eq(r.status, 404);
	cs_fx_resp_free(&r);
	/* A non-root token without policies may not read sys/mounts. */
	cJSON *o = NULL;
	ck_assert_int_eq(req("PUT", "auth/token/create", root_token,
			     "{\"policies\":[\"default\"],\"no_default_policy\":false}", &o),
			 200);
	char child[128];
	snprintf(child, sizeof child, "%s",
		 jstr(cJSON_GetObjectItemCaseSensitive(o, "auth"), "client_token"));
	cJSON_Delete(o);
	expect_error("GET", "sys/mounts", child, NULL, 403, "permission denied");
	expect_error("GET", "nosuchmount/x", child, NULL, 403, "permission denied");
	ck_assert_int_eq(req("GET", "auth/token/lookup-self", child, NULL, NULL), 200);
}
END_TEST

/* Bad input is refused with the right status before any handler runs. */
START_TEST(test_bad_requests)
{
	init_unseal();
	expect_error("PUT", "sys/policy/p", root_token, "{\"policy\":", 400, "");
	expect_error("PUT", "sys/policy/p", root_token, "[1,2]", 400, "JSON object");
	expect_error("PUT", "sys/policy/p", root_token, "{\"policy\":\"\",\"policy\":\"x\"}", 400,
		     "");
	expect_error("GET", "sys/policy/a%2Fb", root_token, NULL, 400, "encoded slashes");
	expect_error("GET", "sys/policy/a/../b", root_token, NULL, 400, "");
	expect_error("PUT", "sys/policy/p?list=true", root_token, "{\"policy\":\"\"}", 405,
		     "list is only valid on GET");
	expect_error("GET", "sys/policy?list=maybe", root_token, NULL, 400, "list");
	expect_error("GET", "sys/policy/x?a=1&a=2", root_token, NULL, 400, "duplicate");
	expect_error("PATCH", "sys/policy/p", root_token, "{}", 415, "merge-patch");
	/* Nothing was written by the refused requests. */
	ck_assert_int_eq(req("GET", "sys/policy/p", root_token, NULL, NULL), 404);
	/* LIST and GET ?list=true are the same operation. */
	cJSON *a = NULL, *b = NULL;
	ck_assert_int_eq(req("LIST", "sys/policy", root_token, NULL, &a), 200);
	ck_assert_int_eq(req("GET", "sys/policy?list=true", root_token, NULL, &b), 200);
	ck_assert(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(a, "data"),
				cJSON_GetObjectItemCaseSensitive(b, "data"), true));
	cJSON_Delete(a);
	cJSON_Delete(b);
	/* Form bodies become fields; a repeated name is refused. */
#define FORM                                                                                       \
	"PUT /v1/sys/policy/f HTTP/1.1\r\nHost: x\r\nX-Vault-Token: %s\r\n"                        \
	"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %zu\r\n\r\n%s"
	const char *bodies[] = {"policy=a&policy=b",
				"policy=path+%22a%22+%7B+capabilities+%3D+%5B%22read%22%5D+%7D"};
	int want[] = {400, 204};
	for (int i = 0; i < 2; i++) {
		char buf[512];
		snprintf(buf, sizeof buf, FORM, root_token, strlen(bodies[i]), bodies[i]);
		cs_fx_client_send(cl, buf, strlen(buf));
		struct cs_fx_resp r;
		cs_fx_client_read_resp(cl, &r, false);
		ck_assert_msg(r.status == want[i], "%s: %d", bodies[i], r.status);
		cs_fx_resp_free(&r);
	}
}
END_TEST

/* A write commits through raft before it is answered, and is readable afterwards. */
START_TEST(test_write_commits)
{
	init_unseal();
	ck_assert_int_eq(req("PUT", "sys/policy/p1", root_token,
			     "{\"policy\":\"path \\\"kv/*\\\" { capabilities = [\\\"read\\\"] }\"}",
			     NULL),
			 204);
	cJSON *o = NULL;
	ck_assert_int_eq(req("GET", "sys/policy/p1", root_token, NULL, &o), 200);
	ck_assert_ptr_nonnull(strstr(jstr(o, "rules"), "kv/*"));
	cJSON_Delete(o);
	ck_assert_int_eq(req("PUT", "sys/mounts/kv", root_token, "{\"type\":\"kv\"}", NULL), 204);
	ck_assert_int_eq(req("PUT", "kv/a", root_token, "{\"v\":\"1\"}", NULL), 204);
	ck_assert_int_eq(req("GET", "kv/a", root_token, NULL, &o), 200);
	ck_assert_str_eq(jstr(cJSON_GetObjectItemCaseSensitive(o, "data"), "v"), "1");
	cJSON_Delete(o);
	/* Survives a seal/unseal cycle: it is in storage, not only in memory. */
	ck_assert_int_eq(req("PUT", "sys/seal", root_token, NULL, NULL), 204);
	unseal_all();
	int st = req("GET", "kv/a", root_token, NULL, &o);
	ck_assert_msg(st == 200, "%d %s", st, o ? first_error(o) : "");
	cJSON_Delete(o);
}
END_TEST

/* sys/health answers in every state, with Vault's status codes (overridable). */
START_TEST(test_health_codes)
{
	cJSON *o = NULL;
	ck_assert_int_eq(req("GET", "sys/health", NULL, NULL, &o), 501);
	ck_assert(!jbool(o, "initialized"));
	cJSON_Delete(o);
	ck_assert_int_eq(req("GET", "sys/health?uninitcode=299", NULL, NULL, NULL), 299);
	init_node(3, 2);
	ck_assert_int_eq(req("GET", "sys/health", NULL, NULL, &o), 503);
	ck_assert(jbool(o, "initialized"));
	ck_assert(jbool(o, "sealed"));
	cJSON_Delete(o);
	ck_assert_int_eq(req("GET", "sys/health?sealedcode=298", NULL, NULL, NULL), 298);
	unseal_all();
	ck_assert_int_eq(req("GET", "sys/health", NULL, NULL, &o), 200);
	ck_assert(!jbool(o, "sealed"));
	ck_assert(!jbool(o, "standby"));
	cJSON_Delete(o);
	/* HEAD: the status, no body. */
	struct cs_fx_resp r;
	cs_fx_client_request(cl, "HEAD", "/v1/sys/health", NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_uint_eq(r.body.len, 0);
	cs_fx_resp_free(&r);
}
END_TEST

/* ---------------------------------------------------------------- admission */

struct admit_call {
	const char *method, *path, *token;
	int status;
	char *body;
	size_t len;
};

static void admit_on_loop(void *arg)
{
	struct admit_call *a = arg;
	struct cs_http_req h;
	memset(&h, 0, sizeof h);
	snprintf(h.method, sizeof h.method, "%s", a->method);
	h.url = strdup(a->path);
	h.path = strdup(a->path);
	h.body_fd = -1;
	struct cs_http_header hd = {"X-Vault-Token", (char *)a->token};
	if (a->token) {
		h.headers = &hd;
		h.n_headers = 1;
	}
	snprintf(h.remote_addr, sizeof h.remote_addr, "127.0.0.1:1");
	a->status = cs_core_admit(&n.core, &h, &a->body, &a->len);
	free(h.url);
	free(h.path);
}

static int admit(const char *method, const char *path, const char *token, const char *want)
{
	struct admit_call a = {method, path, token, -1, NULL, 0};
	on_loop(admit_on_loop, &a);
	if (a.status) {
		ck_assert_ptr_nonnull(a.body);
		cJSON *o = cJSON_ParseWithLength(a.body, a.len);
		ck_assert_ptr_nonnull(o);
		if (want)
			ck_assert_msg(strstr(first_error(o), want), "%s: \"%s\"", path,
				      first_error(o));
		cJSON_Delete(o);
	} else {
		ck_assert_ptr_null(a.body);
	}
	free(a.body);
	return a.status;
}

/* cs_core_admit decides before the body is read, exactly as the pipeline would. */
START_TEST(test_admit)
{
	init_node(3, 2);
	ck_assert_int_eq(admit("POST", "/v1/sys/storage/raft/snapshot", NULL, "sealed"), 503);
	ck_assert_int_eq(admit("PUT", "/v1/sys/unseal", NULL, NULL), 0);
	unseal_all();
	ck_assert_int_eq(admit("POST", "/v1/sys/storage/raft/snapshot", NULL, "permission"), 403);
	ck_assert_int_eq(admit("POST", "/v1/sys/storage/raft/snapshot", "bogus", "permission"),
			 403);
	ck_assert_int_eq(admit("POST", "/v1/sys/storage/raft/snapshot", root_token, NULL), 0);
	ck_assert_int_eq(admit("POST", "/v1/nosuch/x", root_token, "unsupported path"), 404);
	ck_assert_int_eq(admit("POST", "/v1/sys/a%2Fb", root_token, "encoded"), 400);
	ck_assert_int_eq(admit("POST", "/elsewhere", root_token, NULL), 404);
	ck_assert_int_eq(admit("COPY", "/v1/sys/mounts", root_token, "unsupported"), 405);
	/* Admission spends nothing: a one-use token still works afterwards. */
	cJSON *o = NULL;
	ck_assert_int_eq(req("PUT", "auth/token/create", root_token,
			     "{\"num_uses\":1,\"policies\":[\"root\"]}", &o),
			 200);
	char once[128];
	snprintf(once, sizeof once, "%s",
		 jstr(cJSON_GetObjectItemCaseSensitive(o, "auth"), "client_token"));
	cJSON_Delete(o);
	ck_assert_int_eq(admit("GET", "/v1/sys/mounts", once, NULL), 0);
	ck_assert_int_eq(admit("GET", "/v1/sys/mounts", once, NULL), 0);
	ck_assert_int_eq(req("GET", "sys/mounts", once, NULL, NULL), 200);
	expect_error("GET", "sys/mounts", once, NULL, 403, "permission denied");
}
END_TEST

/* ---------------------------------------------------------------- raft sys/ */

#define POLICY "{\"policy\":\"path \\\"kv/*\\\" { capabilities = [\\\"read\\\"] }\"}"

START_TEST(test_raft_configuration)
{
	init_unseal();
	expect_error("GET", "sys/storage/raft/configuration", NULL, NULL, 403, "permission");
	cJSON *o = NULL;
	ck_assert_int_eq(req("GET", "sys/storage/raft/configuration", root_token, NULL, &o), 200);
	const cJSON *cfg =
	    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "data"), "config");
	ck_assert_int_gt(jint(cfg, "index"), 0);
	const cJSON *servers = cJSON_GetObjectItemCaseSensitive(cfg, "servers");
	ck_assert_int_eq(cJSON_GetArraySize(servers), 1);
	const cJSON *s = cJSON_GetArrayItem(servers, 0);
	ck_assert_str_eq(jstr(s, "node_id"), "core-test");
	ck_assert(jbool(s, "leader"));
	ck_assert(jbool(s, "voter"));
	cJSON_Delete(o);
}
END_TEST

START_TEST(test_raft_remove_peer)
{
	init_unseal();
	expect_error("POST", "sys/storage/raft/remove-peer", NULL, "{\"server_id\":\"x\"}", 403,
		     "permission");
	expect_error("POST", "sys/storage/raft/remove-peer", root_token, "{}", 400,
		     "no server id provided");
	char big[400];
	memset(big, 'a', sizeof big);
	char body[512];
	snprintf(body, sizeof body, "{\"server_id\":\"%.*s\"}", (int)sizeof big, big);
	expect_error("POST", "sys/storage/raft/remove-peer", root_token, body, 400, "max length");
	expect_error("POST", "sys/storage/raft/remove-peer", root_token,
		     "{\"server_id\":\"no-such-node\"}", 400, "not in the raft configuration");
	expect_error("POST", "sys/storage/raft/remove-peer", root_token,
		     "{\"server_id\":\"core-test\"}", 400, "cannot remove the active node");
	expect_error("POST", "sys/storage/raft/demote", root_token, "{\"server_id\":\"core-test\"}",
		     400, "cannot demote the active node");
	/* Still one voter. */
	cJSON *o = NULL;
	ck_assert_int_eq(req("GET", "sys/storage/raft/configuration", root_token, NULL, &o), 200);
	const cJSON *cfg =
	    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "data"), "config");
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(cfg, "servers")), 1);
	cJSON_Delete(o);
}
END_TEST

START_TEST(test_raft_autopilot)
{
	init_unseal();
	cJSON *o = NULL;
	ck_assert_int_eq(
	    req("GET", "sys/storage/raft/autopilot/configuration", root_token, NULL, &o), 200);
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "data");
	ck_assert(!jbool(d, "cleanup_dead_servers"));
	int trailing = jint(d, "max_trailing_logs");
	ck_assert_int_gt(trailing, 0);
	cJSON_Delete(o);
	/* Refused: min_quorum below 3, a bad duration, a wrong type. Nothing changes. */
	expect_error("POST", "sys/storage/raft/autopilot/configuration", root_token,
		     "{\"cleanup_dead_servers\":true,\"min_quorum\":1}", 400, "");
	expect_error("POST", "sys/storage/raft/autopilot/configuration", root_token,
		     "{\"last_contact_threshold\":\"soon\"}", 400, "");
	expect_error("POST", "sys/storage/raft/autopilot/configuration", root_token,
		     "{\"max_trailing_logs\":\"many\"}", 400, "");
	expect_error("POST", "sys/storage/raft/autopilot/configuration", NULL,
		     "{\"max_trailing_logs\":5}", 403, "permission");
	ck_assert_int_eq(
	    req("GET", "sys/storage/raft/autopilot/configuration", root_token, NULL, &o), 200);
	d = cJSON_GetObjectItemCaseSensitive(o, "data");
	ck_assert(!jbool(d, "cleanup_dead_servers"));
	ck_assert_int_eq(jint(d, "max_trailing_logs"), trailing);
	cJSON_Delete(o);
	/* Accepted: only the given fields change. */
	ck_assert_int_eq(req("POST", "sys/storage/raft/autopilot/configuration", root_token,
			     "{\"max_trailing_logs\":777}", NULL),
			 204);
	ck_assert_int_eq(
	    req("GET", "sys/storage/raft/autopilot/configuration", root_token, NULL, &o), 200);
	d = cJSON_GetObjectItemCaseSensitive(o, "data");
	ck_assert_int_eq(jint(d, "max_trailing_logs"), 777);
	ck_assert(!jbool(d, "cleanup_dead_servers"));
	cJSON_Delete(o);
	/* The state lists this node as the healthy leader. */
	ck_assert_int_eq(req("GET", "sys/storage/raft/autopilot/state", root_token, NULL, &o), 200);
	d = cJSON_GetObjectItemCaseSensitive(o, "data");
	ck_assert_ptr_nonnull(d);
	ck_assert(jbool(d, "healthy"));
	char *s = cJSON_PrintUnformatted(d);
	ck_assert_ptr_nonnull(strstr(s, "core-test"));
	free(s);
	cJSON_Delete(o);
}
END_TEST

START_TEST(test_raft_snapshot)
{
	init_unseal();
	ck_assert_int_eq(req("PUT", "sys/policy/before", root_token, POLICY, NULL), 204);
	expect_error("GET", "sys/storage/raft/snapshot", NULL, NULL, 403, "permission");
	struct cs_fx_resp r;
	cs_fx_client_request(cl, "GET", "/v1/sys/storage/raft/snapshot", root_token, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_uint_gt(r.body.len, 100);
	struct cs_buf snap = CS_BUF_INIT;
	cs_buf_append(&snap, r.body.data, r.body.len);
	cs_fx_resp_free(&r);
	/* A policy written after the snapshot; restoring the snapshot removes it. */
	ck_assert_int_eq(req("PUT", "sys/policy/after", root_token, POLICY, NULL), 204);
	/* Garbage is refused and changes nothing. */
	expect_error("POST", "sys/storage/raft/snapshot", root_token, "{\"not\":\"a snapshot\"}",
		     400, "");
	expect_error("POST", "sys/storage/raft/snapshot-force", root_token, "garbage", 400, "");
	/* Refused before the body is read (cs_core_admit): the server then closes. */
	expect_error("POST", "sys/storage/raft/snapshot-force", NULL, "garbage", 403, "permission");
	cs_fx_client_close(cl);
	cl = cs_fx_client_connect(n.port);
	ck_assert_ptr_nonnull(cl);
	ck_assert_int_eq(req("GET", "sys/policy/after", root_token, NULL, NULL), 200);
	/* Restore the real one. */
	struct cs_buf h = CS_BUF_INIT;
	cs_buf_printf(&h,
		      "POST /v1/sys/storage/raft/snapshot HTTP/1.1\r\nHost: x\r\n"
		      "X-Vault-Token: %s\r\nContent-Length: %zu\r\n\r\n",
		      root_token, snap.len);
	cs_buf_append(&h, snap.data, snap.len);
	cs_fx_client_send(cl, h.data, h.len);
	cs_buf_free(&h);
	cs_buf_free(&snap);
	cs_fx_client_read_resp(cl, &r, false);
	ck_assert_msg(r.status == 204, "restore: %d %s", r.status, r.body.data);
	cs_fx_resp_free(&r);
	ck_assert_int_eq(req("GET", "sys/policy/before", root_token, NULL, NULL), 200);
	ck_assert_int_eq(req("GET", "sys/policy/after", root_token, NULL, NULL), 404);
}
END_TEST

/* ---------------------------------------------------------------- periodic functions */

/* A backend whose periodic function counts its runs in its own storage; every other run
 * does its work on the pool (cs_req_defer), slower than the tick, to show that runs of
 * one mount never overlap. */
static int tick_running[2]; /* per mount (t1/, t2/): pool work in progress */
static int tick_overlaps;

struct tick_job {
	struct cs_async async;
	int *running;
};

static int tick_count(struct cs_request *r)
{
	cJSON *o = NULL;
	int rc = cs_view_get_json(r, "count", &o);
	int v = rc == 0 ? cJSON_GetObjectItemCaseSensitive(o, "n")->valueint : 0;
	cJSON_Delete(o);
	return v;
}

static int tick_bump(struct cs_request *r)
{
	ck_assert(r->root);
	ck_assert_ptr_null(r->client_token);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "n", tick_count(r) + 1);
	int rc = cs_view_put_json(r, "count", o);
	cJSON_Delete(o);
	return rc;
}

static void tick_work(struct cs_async *a)
{
	int *running = CS_CONTAINER_OF(a, struct tick_job, async)->running;
	if (__atomic_add_fetch(running, 1, __ATOMIC_SEQ_CST) > 1)
		__atomic_add_fetch(&tick_overlaps, 1, __ATOMIC_SEQ_CST);
	usleep(1500 * 1000);
	__atomic_sub_fetch(running, 1, __ATOMIC_SEQ_CST);
}

static int tick_resume(struct cs_request *r, struct cs_async *a, int status)
{
	free(CS_CONTAINER_OF(a, struct tick_job, async));
	return status ? status : tick_bump(r);
}

static int tick_periodic(struct cs_request *r)
{
	if (tick_count(r) % 2 == 0)
		return tick_bump(r);
	struct tick_job *job = calloc(1, sizeof *job);
	job->async.work = tick_work;
	job->async.resume = tick_resume;
	job->running = &tick_running[strcmp(cs_req_mount_path(r), "t1/") == 0 ? 0 : 1];
	return cs_req_defer(r, &job->async);
}

static int tick_read(struct cs_request *r)
{
	cJSON *d = cJSON_CreateObject();
	cJSON_AddNumberToObject(d, "n", tick_count(r));
	cs_req_set_data(r, d);
	return 0;
}

static const struct cs_path tick_paths[] = {
    {.pattern = "count", .ops[CS_OP_READ] = tick_read, .synopsis = "runs so far"},
};

static const struct cs_backend tick_backend = {
    .type = "test-ticker",
    .paths = tick_paths,
    .n_paths = 1,
    .periodic = tick_periodic,
};

static void tick_setup(void)
{
	static bool registered;
	if (!registered)
		cs_backend_register(&tick_backend);
	registered = true;
	node_setup();
	n.cfg.periodic_interval = 1;
}

static int ticks(const char *mount)
{
	char path[64];
	snprintf(path, sizeof path, "%s/count", mount);
	cJSON *o = NULL;
	ck_assert_int_eq(req("GET", path, root_token, NULL, &o), 200);
	int v = jint(cJSON_GetObjectItemCaseSensitive(o, "data"), "n");
	cJSON_Delete(o);
	return v;
}

/* Every mount of a backend with a periodic function gets runs on the active node, each
 * committed like a request, one at a time per mount; a sealed node runs none. */
START_TEST(test_periodic_runs)
{
	init_unseal();
	ck_assert_int_eq(
	    req("PUT", "sys/mounts/t1", root_token, "{\"type\":\"test-ticker\"}", NULL), 204);
	ck_assert_int_eq(
	    req("PUT", "sys/mounts/t2", root_token, "{\"type\":\"test-ticker\"}", NULL), 204);
	for (int i = 0; i < 200 && (ticks("t1") < 4 || ticks("t2") < 4); i++)
		usleep(50 * 1000);
	ck_assert_int_ge(ticks("t1"), 4);
	ck_assert_int_ge(ticks("t2"), 4);
	ck_assert_int_eq(__atomic_load_n(&tick_overlaps, __ATOMIC_SEQ_CST), 0);
	/* Sealed: no run starts; the count survives in storage. */
	ck_assert_int_eq(req("PUT", "sys/seal", root_token, NULL, NULL), 204);
	usleep(2500 * 1000);
	unseal_all();
	int before = ticks("t1");
	ck_assert_int_ge(before, 4);
	ck_assert_int_eq(req("DELETE", "sys/mounts/t2", root_token, NULL, NULL), 204);
	for (int i = 0; i < 200 && ticks("t1") < before + 2; i++)
		usleep(50 * 1000);
	ck_assert_int_ge(ticks("t1"), before + 2);
	ck_assert_uint_gt(cs_periodic_runs(&n.core), 8);
}
END_TEST

/* ---------------------------------------------------------------- leased secrets */

/* A backend that issues "credentials": cred/<id> records, each with a lease whose revoke
 * (on the pool, like a networked revocation) marks it revoked and whose renew records the
 * TTL; revocations fail while "fail" exists in its storage. */
struct lease_job {
	struct cs_async async;
};

static void lease_work(struct cs_async *a)
{
	(void)a;
	usleep(20 * 1000);
}

static int cred_set(struct cs_request *r, const char *id, const char *field, cJSON *v)
{
	char key[128];
	snprintf(key, sizeof key, "cred/%s", id);
	cJSON *o = NULL;
	if (cs_view_get_json(r, key, &o)) {
		cJSON_Delete(v);
		return cs_req_error(r, CS_EINVAL, "no credential %s", id);
	}
	cJSON_DeleteItemFromObjectCaseSensitive(o, field);
	cJSON_AddItemToObject(o, field, v);
	int rc = cs_view_put_json(r, key, o);
	cJSON_Delete(o);
	return rc;
}

static const char *internal_id(struct cs_request *r)
{
	const cJSON *in = cs_req_get(r, "internal");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(in, "id");
	ck_assert(cJSON_IsString(id));
	return id->valuestring;
}

static int lease_revoke_resume(struct cs_request *r, struct cs_async *a, int status)
{
	free(CS_CONTAINER_OF(a, struct lease_job, async));
	if (status)
		return status;
	struct cs_buf b = CS_BUF_INIT;
	bool fail = cs_view_get(r, "fail", &b) == 0;
	cs_buf_free(&b);
	if (fail)
		return cs_req_error(r, CS_EINTERNAL, "backend down");
	return cred_set(r, internal_id(r), "revoked", cJSON_CreateTrue());
}

static int lease_revoke(struct cs_request *r)
{
	ck_assert(r->root);
	ck_assert_ptr_nonnull(cs_req_str(r, "lease_id", NULL));
	struct lease_job *job = calloc(1, sizeof *job);
	job->async.work = lease_work;
	job->async.resume = lease_revoke_resume;
	return cs_req_defer(r, &job->async);
}

static int lease_renew(struct cs_request *r)
{
	return cred_set(r, internal_id(r), "ttl",
			cJSON_CreateNumber((double)cs_req_int(r, "ttl", 0)));
}

static int creds_issue(struct cs_request *r)
{
	char id[17];
	cs_random_base62(id, 16);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "revoked", false);
	char key[64];
	snprintf(key, sizeof key, "cred/%s", id);
	int rc = cs_view_put_json(r, key, o);
	cJSON_Delete(o);
	if (rc)
		return rc;
	cJSON *in = cJSON_CreateObject();
	cJSON_AddStringToObject(in, "id", id);
	rc = cs_req_lease(r, "cred", in, cs_req_int(r, "ttl", 0), cs_req_int(r, "max_ttl", 0));
	if (rc)
		return rc;
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "id", id);
	cs_req_set_data(r, d);
	return 0;
}

static int cred_read(struct cs_request *r)
{
	char key[128];
	snprintf(key, sizeof key, "cred/%s", cs_req_capture(r, "id"));
	cJSON *o = NULL;
	int rc = cs_view_get_json(r, key, &o);
	if (rc)
		return rc;
	cs_req_set_data(r, o);
	return 0;
}

static int fail_set(struct cs_request *r)
{
	return cs_req_bool(r, "on", false) ? cs_view_put(r, "fail", "1", 1)
					   : cs_view_delete(r, "fail");
}

static const struct cs_field creds_fields[] = {
    {.name = "ttl", .type = CS_FIELD_DURATION, .desc = "ttl"},
    {.name = "max_ttl", .type = CS_FIELD_DURATION, .desc = "max ttl"},
    {.name = NULL},
};
static const struct cs_field fail_fields[] = {
    {.name = "on", .type = CS_FIELD_BOOL, .desc = "fail revocations"},
    {.name = NULL},
};

static const struct cs_path leaser_paths[] = {
    {.pattern = "creds",
     .fields = creds_fields,
     .ops[CS_OP_UPDATE] = creds_issue,
     .synopsis = "issue"},
    {.pattern = "cred/{id}", .ops[CS_OP_READ] = cred_read, .synopsis = "state"},
    {.pattern = "fail", .fields = fail_fields, .ops[CS_OP_UPDATE] = fail_set, .synopsis = "fail"},
};

static const struct cs_secret_type leaser_secrets[] = {
    {.name = "cred", .revoke = lease_revoke, .renew = lease_renew},
    {.name = NULL},
};

static const struct cs_backend leaser_backend = {
    .type = "test-leaser",
    .paths = leaser_paths,
    .n_paths = CS_ARRAY_LEN(leaser_paths),
    .secrets = leaser_secrets,
};

static void leaser_setup(void)
{
	static bool registered;
	if (!registered)
		cs_backend_register(&leaser_backend);
	registered = true;
	node_setup();
}

/* Issue a credential as `token`: its id into id[17], its lease into lease[256]. */
static void issue(const char *token, const char *body, char *id, char *lease, int *duration)
{
	cJSON *o = NULL;
	int st = req("PUT", "l/creds", token, body, &o);
	ck_assert_msg(st == 200, "%d %s", st, o ? first_error(o) : "");
	snprintf(id, 17, "%s", jstr(cJSON_GetObjectItemCaseSensitive(o, "data"), "id"));
	snprintf(lease, 256, "%s", jstr(o, "lease_id"));
	if (duration)
		*duration = jint(o, "lease_duration");
	ck_assert(strncmp(lease, "l/creds/", 8) == 0);
	ck_assert(jbool(o, "renewable"));
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(o, "internal"));
	cJSON_Delete(o);
}

static bool revoked(const char *id)
{
	char path[64];
	snprintf(path, sizeof path, "l/cred/%s", id);
	cJSON *o = NULL;
	ck_assert_int_eq(req("GET", path, root_token, NULL, &o), 200);
	bool v = jbool(cJSON_GetObjectItemCaseSensitive(o, "data"), "revoked");
	cJSON_Delete(o);
	return v;
}

static bool wait_revoked(const char *id, int secs)
{
	for (int i = 0; i < secs * 10; i++) {
		if (revoked(id))
			return true;
		usleep(100 * 1000);
	}
	return revoked(id);
}

static int lease_status(const char *lease)
{
	char body[400];
	snprintf(body, sizeof body, "{\"lease_id\":\"%s\"}", lease);
	return req("PUT", "sys/leases/lookup", root_token, body, NULL);
}

/* Expiry, revoke, renew and token revocation reach the backend that issued the secret. */
START_TEST(test_secret_leases)
{
	init_unseal();
	ck_assert_int_eq(req("PUT", "sys/mounts/l", root_token, "{\"type\":\"test-leaser\"}", NULL),
			 204);
	char id[17], lease[256], body[400];
	int dur = 0;
	/* Expiry. */
	issue(root_token, "{\"ttl\":\"1s\"}", id, lease, &dur);
	ck_assert_int_eq(dur, 1);
	ck_assert_int_eq(lease_status(lease), 200);
	ck_assert(wait_revoked(id, 10));
	ck_assert_int_eq(lease_status(lease), 400); /* the record went with it */
	/* Revoke: revoked when answered. */
	issue(root_token, "{\"ttl\":\"1h\"}", id, lease, NULL);
	ck_assert(!revoked(id));
	snprintf(body, sizeof body, "{\"lease_id\":\"%s\"}", lease);
	ck_assert_int_eq(req("PUT", "sys/leases/revoke", root_token, body, NULL), 204);
	ck_assert(revoked(id));
	ck_assert_int_eq(lease_status(lease), 400);
	/* Renew: the backend is told, capped by max_ttl. */
	issue(root_token, "{\"ttl\":\"60s\",\"max_ttl\":\"100s\"}", id, lease, NULL);
	snprintf(body, sizeof body, "{\"lease_id\":\"%s\",\"increment\":\"1h\"}", lease);
	cJSON *o = NULL;
	ck_assert_int_eq(req("PUT", "sys/leases/renew", root_token, body, &o), 200);
	ck_assert_str_eq(jstr(o, "lease_id"), lease);
	ck_assert_int_ge(jint(o, "lease_duration"), 98);
	ck_assert_int_le(jint(o, "lease_duration"), 100);
	cJSON_Delete(o);
	char path[64];
	snprintf(path, sizeof path, "l/cred/%s", id);
	ck_assert_int_eq(req("GET", path, root_token, NULL, &o), 200);
	ck_assert_int_ge(jint(cJSON_GetObjectItemCaseSensitive(o, "data"), "ttl"), 98);
	cJSON_Delete(o);
	/* A token's revocation revokes the secrets it obtained. */
	ck_assert_int_eq(
	    req("PUT", "auth/token/create", root_token, "{\"policies\":[\"root\"]}", &o), 200);
	char child[128];
	snprintf(child, sizeof child, "%s",
		 jstr(cJSON_GetObjectItemCaseSensitive(o, "auth"), "client_token"));
	cJSON_Delete(o);
	char id2[17], lease2[256];
	issue(child, "{\"ttl\":\"1h\"}", id2, lease2, NULL);
	ck_assert_int_eq(req("PUT", "auth/token/revoke-self", child, NULL, NULL), 204);
	ck_assert(wait_revoked(id2, 10));
	/* The mount cannot be disabled while a secret it issued is still leased. */
	int st = req("DELETE", "sys/mounts/l", root_token, NULL, &o);
	ck_assert_int_eq(st, 400);
	ck_assert_ptr_nonnull(strstr(first_error(o), "not revoked yet"));
	cJSON_Delete(o);
}
END_TEST

/* A backend that cannot revoke: retried, then irrevocable; revoke-force drops it. */
START_TEST(test_secret_lease_irrevocable)
{
	init_unseal();
	ck_assert_int_eq(req("PUT", "sys/mounts/l", root_token, "{\"type\":\"test-leaser\"}", NULL),
			 204);
	ck_assert_int_eq(req("PUT", "l/fail", root_token, "{\"on\":true}", NULL), 204);
	char id[17], lease[256], id2[17], lease2[256];
	issue(root_token, "{\"ttl\":\"1s\"}", id, lease, NULL);
	issue(root_token, "{\"ttl\":\"1s\"}", id2, lease2, NULL);
	/* The second recovers when the backend does, on a retry. */
	usleep(2500 * 1000);
	ck_assert(!revoked(id2));
	char body[400];
	snprintf(body, sizeof body, "{\"lease_id\":\"%s\"}", lease2);
	ck_assert_int_eq(req("PUT", "sys/leases/revoke", root_token, body, NULL), 500);
	cJSON *o = NULL;
	int count = 0;
	for (int i = 0; i < 400 && count == 0; i++) {
		usleep(100 * 1000);
		ck_assert_int_eq(req("GET", "sys/leases?type=irrevocable", root_token, NULL, &o),
				 200);
		count = jint(cJSON_GetObjectItemCaseSensitive(o, "data"), "lease_count");
		if (count == 0)
			cJSON_Delete(o);
	}
	ck_assert_int_ge(count, 1);
	const cJSON *l = cJSON_GetArrayItem(
	    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "data"), "leases"),
	    0);
	ck_assert_str_eq(jstr(l, "error"), "backend down");
	ck_assert_str_eq(jstr(l, "mount_id"), "l/");
	cJSON_Delete(o);
	ck_assert_int_eq(req("GET", "sys/leases/count?type=all", root_token, NULL, &o), 200);
	ck_assert_int_eq(jint(cJSON_GetObjectItemCaseSensitive(o, "data"), "lease_count"), 2);
	cJSON_Delete(o);
	/* limit caps the list, not the count; a bad one is refused. */
	if (count >= 2) {
		ck_assert_int_eq(
		    req("GET", "sys/leases?type=irrevocable&limit=1", root_token, NULL, &o), 200);
		ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
				     cJSON_GetObjectItemCaseSensitive(o, "data"), "leases")),
				 1);
		cJSON_Delete(o);
	}
	ck_assert_int_eq(
	    req("GET", "sys/leases?type=irrevocable&limit=none", root_token, NULL, NULL), 200);
	ck_assert_int_eq(req("GET", "sys/leases?type=irrevocable&limit=x", root_token, NULL, NULL),
			 400);
	/* Back up: the one not yet given up is revoked on its next retry; revoke-force
	 * drops the records of both without asking the backend again. */
	ck_assert_int_eq(req("PUT", "l/fail", root_token, "{\"on\":false}", NULL), 204);
	char force[320];
	snprintf(force, sizeof force, "sys/leases/revoke-force/%s", lease);
	ck_assert_int_eq(req("PUT", force, root_token, NULL, NULL), 204); /* a whole lease id */
	ck_assert_int_eq(lease_status(lease), 400);
	ck_assert_int_eq(req("PUT", "sys/leases/revoke-force/l", root_token, NULL, NULL), 204);
	ck_assert_int_eq(lease_status(lease), 400);
	ck_assert_int_eq(lease_status(lease2), 400);
	ck_assert_int_eq(req("GET", "sys/leases/count?type=all", root_token, NULL, &o), 200);
	ck_assert_int_eq(jint(cJSON_GetObjectItemCaseSensitive(o, "data"), "lease_count"), 0);
	cJSON_Delete(o);
	ck_assert_int_eq(req("GET", "sys/leases?type=bogus", root_token, NULL, NULL), 400);
	ck_assert_int_eq(req("DELETE", "sys/mounts/l", root_token, NULL, NULL), 204);
}
END_TEST

/* ---------------------------------------------------------------- password policies */

/* An engine that asks the core for passwords: gen/<policy> (or gen for the default). */
static int pw_gen(struct cs_request *r)
{
	char *pw = NULL;
	int rc = cs_req_generate_password(r, cs_req_capture(r, "policy"), &pw);
	if (rc)
		return rc;
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "password", pw);
	cs_zero(pw, strlen(pw));
	free(pw);
	cs_req_set_data(r, d);
	return 0;
}

static const struct cs_path pw_paths[] = {
    {.pattern = "gen", .ops[CS_OP_READ] = pw_gen, .synopsis = "default policy"},
    {.pattern = "gen/{policy*}", .ops[CS_OP_READ] = pw_gen, .synopsis = "named policy"},
};

static const struct cs_backend pw_backend = {
    .type = "test-passwords",
    .paths = pw_paths,
    .n_paths = 2,
};

static void pw_setup(void)
{
	static bool registered;
	if (!registered)
		cs_backend_register(&pw_backend);
	registered = true;
	node_setup();
}

/* The password of a 200 answer to GET path. */
static char *gen_password(const char *path)
{
	cJSON *o = NULL;
	ck_assert_int_eq(req("GET", path, root_token, NULL, &o), 200);
	char *pw = strdup(jstr(cJSON_GetObjectItemCaseSensitive(o, "data"), "password"));
	cJSON_Delete(o);
	return pw;
}

/* A backend's cs_req_generate_password uses the policy stored at sys/policies/password
 * (server/pwpolicy_sys.c registers the hook), a missing one is a 400, and the default
 * policy stays Vault's. */
START_TEST(test_named_password_policy)
{
	init_unseal();
	ck_assert_int_eq(
	    req("PUT", "sys/mounts/pw", root_token, "{\"type\":\"test-passwords\"}", NULL), 204);
	ck_assert_int_eq(req("PUT", "sys/policies/password/db/digits", root_token,
			     "{\"policy\":\"length = 30\\nrule \\\"charset\\\" {\\n"
			     "charset = \\\"0123\\\"\\nmin-chars = 30\\n}\"}",
			     NULL),
			 204);
	for (int i = 0; i < 50; i++) {
		char *pw = gen_password("pw/gen/db/digits");
		ck_assert_uint_eq(strlen(pw), 30);
		ck_assert_uint_eq(strspn(pw, "0123"), 30);
		free(pw);
	}
	char *pw = gen_password("pw/gen");
	ck_assert_uint_eq(strlen(pw), 20);
	ck_assert_ptr_nonnull(strchr(pw, '-'));
	free(pw);
	expect_error("GET", "pw/gen/nope", root_token, NULL, 400,
		     "password policy \"nope\" not found");
	ck_assert_int_eq(req("DELETE", "sys/policies/password/db/digits", root_token, NULL, NULL),
			 204);
	expect_error("GET", "pw/gen/db/digits", root_token, NULL, 400,
		     "password policy \"db/digits\" not found");
}
END_TEST

static Suite *core_suite(void)
{
	Suite *s = suite_create("core");
	TCase *tc = tcase_create("seal");
	tcase_add_checked_fixture(tc, node_setup, node_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_init_fresh_node);
	tcase_add_test(tc, test_init_seal_config_bounds);
	tcase_add_test(tc, test_unseal_progress);
	tcase_add_test(tc, test_unseal_wrong_shares);
	tcase_add_test(tc, test_unseal_reset);
	tcase_add_test(tc, test_seal_and_unseal_again);
	suite_add_tcase(s, tc);
	tc = tcase_create("pipeline");
	tcase_add_checked_fixture(tc, node_setup, node_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_sealed_admission);
	tcase_add_test(tc, test_routing_and_tokens);
	tcase_add_test(tc, test_bad_requests);
	tcase_add_test(tc, test_write_commits);
	tcase_add_test(tc, test_admit);
	tcase_add_test(tc, test_health_codes);
	suite_add_tcase(s, tc);
	tc = tcase_create("raft_sys");
	tcase_add_checked_fixture(tc, node_setup, node_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_raft_configuration);
	tcase_add_test(tc, test_raft_remove_peer);
	tcase_add_test(tc, test_raft_autopilot);
	tcase_add_test(tc, test_raft_snapshot);
	suite_add_tcase(s, tc);
	tc = tcase_create("periodic");
	tcase_add_checked_fixture(tc, tick_setup, node_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_periodic_runs);
	suite_add_tcase(s, tc);
	tc = tcase_create("leases");
	tcase_add_checked_fixture(tc, leaser_setup, node_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_secret_leases);
	tcase_add_test(tc, test_secret_lease_irrevocable);
	suite_add_tcase(s, tc);
	tc = tcase_create("passwords");
	tcase_add_checked_fixture(tc, pw_setup, node_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_named_password_policy);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(core_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
