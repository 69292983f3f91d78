/*
 * Unit tests for the join state machine (raft/join.c) and its HTTP driver, libcurl's
 * multi interface on libuv (lib/curlm.c), and for the transit seal that uses that driver
 * (server/seal_transit.c) against the same local server.
 *
 * The table is checked cell by cell against the expected transitions written out here
 * (every state × event; a cell not listed must be refused and leave the state as it
 * was). The driver and the machine talk to a small HTTP server on 127.0.0.1 run by a
 * thread of the test with blocking sockets; each request is answered by a scripted
 * reply (status + body), or held open until the test lets go ("hang").
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "fixtures.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/curlm.h"
#include "raft/join.h"
#include "server/seal_wrap.h"
#include "storage/barrier.h"

/* ---------------------------------------------------------------- local HTTP server */

#define MAX_REPLIES 8

struct reply {
	int status; /* 0: hang (hold the connection until the server stops) */
	char body[4096];
	size_t big; /* > 0: a body of this many 'x' instead */
	/* challenge: seal a challenge for the requester's key (see seal_challenge) */
	bool seal_challenge;
};

struct srv {
	int fd, port;
	pthread_t th;
	atomic_bool stop;
	pthread_mutex_t mu;
	struct reply replies[MAX_REPLIES];
	int n_replies, next;
	int hits;
	char last_path[256];
	char last_body[8192];
	uint8_t kek[CS_KEY_LEN];
	const char *challenge_for; /* server_id bound in a sealed challenge */
};

static bool read_request(int c, char *path, size_t pn, char *body, size_t bn)
{
	char buf[16384];
	size_t len = 0;
	char *end = NULL;
	while (!end) {
		ssize_t r = recv(c, buf + len, sizeof buf - 1 - len, 0);
		if (r <= 0)
			return false;
		len += (size_t)r;
		buf[len] = '\0';
		end = strstr(buf, "\r\n\r\n");
	}
	size_t clen = 0;
	const char *cl = strcasestr(buf, "Content-Length:");
	if (cl)
		clen = strtoul(cl + 15, NULL, 10);
	size_t have = len - (size_t)(end + 4 - buf);
	while (have < clen) {
		ssize_t r = recv(c, buf + len, sizeof buf - 1 - len, 0);
		if (r <= 0)
			return false;
		len += (size_t)r;
		have += (size_t)r;
	}
	buf[len] = '\0';
	sscanf(buf, "POST %255s", path);
	snprintf(body, bn, "%.*s", (int)clen, end + 4);
	(void)pn;
	return true;
}

/* A challenge sealed under s->kek for the key in the request's public_key. */
static void seal_challenge(struct srv *s, const char *req_body, char *out, size_t n)
{
	cJSON *rq = cJSON_Parse(req_body);
	const cJSON *pk = cJSON_GetObjectItemCaseSensitive(rq, "public_key");
	const cJSON *addr = cJSON_GetObjectItemCaseSensitive(rq, "cluster_addr");
	EVP_PKEY *pub = NULL;
	uint8_t fp[32];
	char hex[65];
	ck_assert_int_eq(
	    cs_cluster_tls_pubkey_from_pem(pk->valuestring, strlen(pk->valuestring), &pub), 0);
	ck_assert_int_eq(cs_cluster_tls_pubkey_sha256(pub, fp), 0);
	EVP_PKEY_free(pub);
	cs_hex_encode(fp, sizeof fp, hex);
	cJSON *pt = cJSON_CreateObject();
	cJSON_AddStringToObject(pt, "nonce", "bm9uY2U=");
	cJSON_AddStringToObject(pt, "server_id", s->challenge_for);
	cJSON_AddStringToObject(pt, "cluster_addr", addr->valuestring);
	cJSON_AddStringToObject(pt, "public_key_sha256", hex);
	char *p = cJSON_PrintUnformatted(pt);
	struct cs_buf ct = CS_BUF_INIT;
	ck_assert_int_eq(cs_aead_seal(s->kek, 1, CS_JOIN_CHALLENGE_AAD,
				      strlen(CS_JOIN_CHALLENGE_AAD), p, strlen(p), &ct),
			 0);
	char *b64 = cs_b64_encode((const uint8_t *)ct.data, ct.len);
	snprintf(out, n,
		 "{\"data\":{\"challenge\":\"%s\",\"seal_config\":{\"type\":\"shamir\","
		 "\"secret_shares\":3,\"secret_threshold\":2}}}",
		 b64);
	free(b64);
	free(p);
	cs_buf_free(&ct);
	cJSON_Delete(pt);
	cJSON_Delete(rq);
}

static void *srv_main(void *arg)
{
	struct srv *s = arg;
	int held[16], n_held = 0;
	while (!atomic_load(&s->stop)) {
		int c = accept(s->fd, NULL, NULL);
		if (c < 0)
			break;
		char path[256] = "", body[8192] = "";
		if (!read_request(c, path, sizeof path, body, sizeof body)) {
			close(c);
			continue;
		}
		pthread_mutex_lock(&s->mu);
		s->hits++;
		snprintf(s->last_path, sizeof s->last_path, "%s", path);
		snprintf(s->last_body, sizeof s->last_body, "%s", body);
		struct reply r =
		    s->next < s->n_replies ? s->replies[s->next++] : s->replies[s->n_replies - 1];
		pthread_mutex_unlock(&s->mu);
		if (r.status == 0) {
			if (n_held < 16)
				held[n_held++] = c;
			continue;
		}
		char *payload = NULL;
		size_t plen;
		if (r.big) {
			payload = malloc(r.big);
			memset(payload, 'x', r.big);
			plen = r.big;
		} else {
			payload = malloc(8192);
			if (r.seal_challenge)
				seal_challenge(s, body, payload, 8192);
			else
				snprintf(payload, 8192, "%s", r.body);
			plen = strlen(payload);
		}
		char hdr[256];
		int hl = snprintf(hdr, sizeof hdr,
				  "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
				  "Content-Length: %zu\r\nConnection: close\r\n\r\n",
				  r.status, plen);
		send(c, hdr, (size_t)hl, MSG_NOSIGNAL);
		for (size_t off = 0; off < plen;) {
			ssize_t w = send(c, payload + off, plen - off, MSG_NOSIGNAL);
			if (w <= 0)
				break;
			off += (size_t)w;
		}
		free(payload);
		close(c);
	}
	for (int i = 0; i < n_held; i++)
		close(held[i]);
	return NULL;
}

static void srv_start(struct srv *s)
{
	memset(s, 0, sizeof *s);
	pthread_mutex_init(&s->mu, NULL);
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(s->fd, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	ck_assert_int_eq(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
	ck_assert_int_eq(listen(s->fd, 16), 0);
	socklen_t al = sizeof a;
	getsockname(s->fd, (struct sockaddr *)&a, &al);
	s->port = ntohs(a.sin_port);
	memset(s->kek, 0x42, sizeof s->kek);
	s->challenge_for = "node-2";
	ck_assert_int_eq(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void srv_reply(struct srv *s, int status, const char *body)
{
	pthread_mutex_lock(&s->mu);
	struct reply *r = &s->replies[s->n_replies++];
	memset(r, 0, sizeof *r);
	r->status = status;
	snprintf(r->body, sizeof r->body, "%s", body ? body : "");
	pthread_mutex_unlock(&s->mu);
}

static void srv_stop(struct srv *s)
{
	atomic_store(&s->stop, true);
	shutdown(s->fd, SHUT_RDWR);
	close(s->fd);
	pthread_join(s->th, NULL);
	pthread_mutex_destroy(&s->mu);
}

static void srv_url(const struct srv *s, char *out, size_t n)
{
	snprintf(out, n, "http://127.0.0.1:%d", s->port);
}

/* ---------------------------------------------------------------- curl multi driver */

struct got {
	bool done;
	int rc;
	long status;
	char body[256];
	size_t len;
	char err[768];
};

static void got_cb(void *ctx, int rc, long status, struct cs_buf *body, const char *err)
{
	struct got *g = ctx;
	g->done = true;
	g->rc = rc;
	g->status = status;
	g->len = body ? body->len : 0;
	if (body && body->data)
		snprintf(g->body, sizeof g->body, "%.*s", (int)body->len, (const char *)body->data);
	snprintf(g->err, sizeof g->err, "%s", err ? err : "");
}

static bool closed;
static void curlm_closed(struct cs_curlm *m)
{
	(void)m;
	closed = true;
}

static void close_driver(uv_loop_t *loop, struct cs_curlm *m)
{
	closed = false;
	cs_curlm_close(m, curlm_closed);
	ck_assert(cs_fx_run_until(loop, &closed, 5000));
	ck_assert_int_eq(uv_loop_close(loop), 0);
}

static void driver_open(uv_loop_t *loop, struct cs_curlm *m)
{
	uv_loop_init(loop);
	char err[256];
	ck_assert_int_eq(cs_curlm_init(m, loop, err, sizeof err), 0);
}

/* Turn the loop until the server has taken `n` requests in all. */
static void wait_hits(uv_loop_t *loop, struct srv *s, int n)
{
	for (int i = 0; i < 10000 && s->hits < n; i++) {
		uv_run(loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
	ck_assert_int_eq(s->hits, n);
}

START_TEST(curlm_post_ok)
{
	struct srv s;
	srv_start(&s);
	srv_reply(&s, 200, "{\"ok\":true}");
	srv_reply(&s, 503, "{\"errors\":[\"sealed\"]}");
	uv_loop_t loop;
	struct cs_curlm m;
	driver_open(&loop, &m);
	char url[64];
	srv_url(&s, url, sizeof url);
	struct cs_curlm_target t = {.url = url};
	struct got g = {0};
	ck_assert_int_eq(cs_curlm_post(&m, &t, "/v1/x", "{\"a\":1}", got_cb, &g, NULL), 0);
	ck_assert(cs_fx_run_until(&loop, &g.done, 10000));
	ck_assert_int_eq(g.rc, 0);
	ck_assert_int_eq(g.status, 200);
	ck_assert_str_eq(g.body, "{\"ok\":true}");
	ck_assert_str_eq(s.last_path, "/v1/x");
	ck_assert_str_eq(s.last_body, "{\"a\":1}");
	/* A second request on the same driver: any status is handed back as is. */
	struct got g2 = {0};
	ck_assert_int_eq(cs_curlm_post(&m, &t, "/v1/y", "{}", got_cb, &g2, NULL), 0);
	ck_assert(cs_fx_run_until(&loop, &g2.done, 10000));
	ck_assert_int_eq(g2.rc, 0);
	ck_assert_int_eq(g2.status, 503);
	ck_assert_str_eq(s.last_path, "/v1/y");
	close_driver(&loop, &m);
	srv_stop(&s);
}
END_TEST

START_TEST(curlm_refused)
{
	/* A port nobody listens on: bind one, note it, close it. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	socklen_t al = sizeof a;
	getsockname(fd, (struct sockaddr *)&a, &al);
	char url[64];
	snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(a.sin_port));
	close(fd);
	uv_loop_t loop;
	struct cs_curlm m;
	driver_open(&loop, &m);
	struct cs_curlm_target t = {.url = url};
	struct got g = {0};
	ck_assert_int_eq(cs_curlm_post(&m, &t, "/v1/x", "{}", got_cb, &g, NULL), 0);
	ck_assert(cs_fx_run_until(&loop, &g.done, 10000));
	ck_assert_int_eq(g.rc, CS_EIO);
	ck_assert_ptr_nonnull(strstr(g.err, url)); /* "<url>: <curl's message>" */
	close_driver(&loop, &m);
}
END_TEST

START_TEST(curlm_body_too_big)
{
	struct srv s;
	srv_start(&s);
	srv_reply(&s, 200, "");
	s.replies[0].big = CS_CURLM_MAX_BODY + 4096;
	uv_loop_t loop;
	struct cs_curlm m;
	driver_open(&loop, &m);
	char url[64];
	srv_url(&s, url, sizeof url);
	struct cs_curlm_target t = {.url = url};
	struct got g = {0};
	ck_assert_int_eq(cs_curlm_post(&m, &t, "/v1/x", "{}", got_cb, &g, NULL), 0);
	ck_assert(cs_fx_run_until(&loop, &g.done, 10000));
	ck_assert_int_eq(g.rc, CS_EIO);
	close_driver(&loop, &m);
	srv_stop(&s);
}
END_TEST

/* A request cancelled (or still in flight at close) never calls back. */
START_TEST(curlm_cancel)
{
	struct srv s;
	srv_start(&s);
	srv_reply(&s, 0, NULL); /* hang */
	uv_loop_t loop;
	struct cs_curlm m;
	driver_open(&loop, &m);
	char url[64];
	srv_url(&s, url, sizeof url);
	struct cs_curlm_target t = {.url = url};
	struct got g = {0}, g2 = {0};
	struct cs_curlm_req *r = NULL;
	ck_assert_int_eq(cs_curlm_post(&m, &t, "/v1/x", "{}", got_cb, &g, &r), 0);
	ck_assert_int_eq(cs_curlm_post(&m, &t, "/v1/y", "{}", got_cb, &g2, NULL), 0);
	/* Until the server holds both requests. */
	wait_hits(&loop, &s, 2);
	cs_curlm_cancel(&m, r);
	uv_run(&loop, UV_RUN_NOWAIT);
	ck_assert(!g.done);
	close_driver(&loop, &m); /* with g2 still in flight */
	ck_assert(!g.done && !g2.done);
	srv_stop(&s);
}
END_TEST

/* ---------------------------------------------------------------- transition table */

#define S(x) CS_JOIN_##x
#define E(x) CS_JOIN_EV_##x

/* The expected table, written out independently of join.c. */
static const struct {
	enum cs_join_state from;
	enum cs_join_event ev;
	enum cs_join_state to;
} expected[] = {
    {S(IDLE), E(START), S(SEEKING)},
    {S(IDLE), E(CANCEL), S(IDLE)},
    {S(IDLE), E(SHUTDOWN), S(IDLE)},
    {S(SEEKING), E(TARGET_FAILED), S(SEEKING)},
    {S(SEEKING), E(ROUND_FAILED), S(BACKOFF)},
    {S(SEEKING), E(GIVE_UP), S(IDLE)},
    {S(SEEKING), E(CHALLENGE), S(CHALLENGED)},
    {S(SEEKING), E(MALFORMED), S(IDLE)},
    {S(SEEKING), E(CANCEL), S(IDLE)},
    {S(SEEKING), E(SHUTDOWN), S(IDLE)},
    {S(BACKOFF), E(TIMER), S(SEEKING)},
    {S(BACKOFF), E(CANCEL), S(IDLE)},
    {S(BACKOFF), E(SHUTDOWN), S(IDLE)},
    {S(CHALLENGED), E(KEYS), S(ANSWERING)},
    {S(CHALLENGED), E(REASK), S(SEEKING)},
    {S(CHALLENGED), E(CANCEL), S(IDLE)},
    {S(CHALLENGED), E(SHUTDOWN), S(IDLE)},
    {S(ANSWERING), E(ACCEPTED), S(SYNCING)},
    {S(ANSWERING), E(REASK), S(SEEKING)},
    {S(ANSWERING), E(SHUTDOWN), S(IDLE)},
    {S(SYNCING), E(SYNCED), S(IDLE)},
    {S(SYNCING), E(REASK), S(SEEKING)},
    {S(SYNCING), E(SHUTDOWN), S(IDLE)},
    {S(SLOT_FREE), E(ISSUE), S(SLOT_ISSUED)},
    {S(SLOT_FREE), E(WITHDRAW), S(SLOT_FREE)},
    {S(SLOT_ISSUED), E(ISSUE), S(SLOT_ISSUED)},
    {S(SLOT_ISSUED), E(ANSWERED), S(SLOT_FREE)},
    {S(SLOT_ISSUED), E(EXPIRED), S(SLOT_FREE)},
    {S(SLOT_ISSUED), E(WITHDRAW), S(SLOT_FREE)},
};

static bool expected_cell(enum cs_join_state st, enum cs_join_event ev, enum cs_join_state *to)
{
	for (size_t i = 0; i < CS_ARRAY_LEN(expected); i++)
		if (expected[i].from == st && expected[i].ev == ev) {
			*to = expected[i].to;
			return true;
		}
	return false;
}

START_TEST(table_every_cell)
{
	int allowed = 0;
	for (int st = 0; st < CS_JOIN_NSTATES; st++)
		for (int ev = 0; ev < CS_JOIN_NEVENTS; ev++) {
			enum cs_join_state want, got = (enum cs_join_state)99;
			bool ok = expected_cell(st, ev, &want);
			int rc = cs_join_transition(st, ev, &got);
			if (ok) {
				ck_assert_msg(rc == 0, "%s × %s refused", cs_join_state_name(st),
					      cs_join_event_name(ev));
				ck_assert_msg(got == want, "%s × %s → %s, want %s",
					      cs_join_state_name(st), cs_join_event_name(ev),
					      cs_join_state_name(got), cs_join_state_name(want));
				allowed++;
			} else {
				ck_assert_msg(rc == CS_EINVAL, "%s × %s accepted",
					      cs_join_state_name(st), cs_join_event_name(ev));
				ck_assert_int_eq(got, 99); /* untouched */
			}
		}
	ck_assert_int_eq(allowed, (int)CS_ARRAY_LEN(expected));
	/* Out of range. */
	enum cs_join_state got;
	ck_assert_int_eq(cs_join_transition(CS_JOIN_NSTATES, E(START), &got), CS_EINVAL);
	ck_assert_int_eq(cs_join_transition(S(IDLE), CS_JOIN_NEVENTS, &got), CS_EINVAL);
}
END_TEST

/* Firing an illegal event changes nothing and runs no action. */
START_TEST(fire_refuses_illegal)
{
	struct cs_join j;
	memset(&j, 0, sizeof j);
	j.closing = true; /* no loop here */
	for (int st = 0; st < CS_JOIN_NSTATES; st++)
		for (int ev = 0; ev < CS_JOIN_NEVENTS; ev++) {
			enum cs_join_state to;
			if (expected_cell(st, ev, &to))
				continue;
			j.state = st;
			ck_assert_int_eq(cs_join_fire(&j, ev), CS_EINVAL);
			ck_assert_int_eq(j.state, st);
			ck_assert_ptr_null(j.req);
			ck_assert_ptr_null(j.body);
		}
}
END_TEST

/* ---------------------------------------------------------------- leader side */

static EVP_PKEY *new_pub(void)
{
	EVP_PKEY *k = NULL;
	ck_assert_int_eq(cs_cluster_tls_gen_key(&k), 0);
	return k;
}

/* A challenge is bound to one node, answered once, and only with its nonce. */
START_TEST(leader_issue_answer_once)
{
	struct cs_join j;
	memset(&j, 0, sizeof j);
	j.closing = true;
	for (int i = 0; i < CS_JOIN_MAX_CHALLENGES; i++)
		j.slots[i].state = S(SLOT_FREE); /* as cs_join_init leaves them */
	char *pt = NULL;
	struct cs_join_slot *s =
	    cs_join_issue(&j, "node-2", "127.0.0.1:8202", "http://x", true, new_pub(), &pt);
	ck_assert_int_eq(s->state, S(SLOT_ISSUED));
	ck_assert_ptr_nonnull(pt);
	cJSON *p = cJSON_Parse(pt);
	ck_assert_str_eq(cJSON_GetObjectItem(p, "server_id")->valuestring, "node-2");
	ck_assert_str_eq(cJSON_GetObjectItem(p, "cluster_addr")->valuestring, "127.0.0.1:8202");
	char *nonce = strdup(cJSON_GetObjectItem(p, "nonce")->valuestring);
	cJSON_Delete(p);
	free(pt);
	ck_assert_ptr_eq(cs_join_find(&j, "node-2"), s);
	ck_assert_ptr_null(cs_join_find(&j, "node-3"));
	ck_assert(!cs_join_answer_ok(s, "bm9uY2U="));
	ck_assert(!cs_join_answer_ok(s, "not base64!"));
	ck_assert(cs_join_answer_ok(s, nonce));
	/* Asked again by the same node: the same slot, a fresh nonce. */
	ck_assert_ptr_eq(cs_join_issue(&j, "node-2", "127.0.0.1:8202", "", false, new_pub(), &pt),
			 s);
	free(pt);
	ck_assert(!cs_join_answer_ok(s, nonce));
	free(nonce);
	cs_join_slot_fire(&j, s, E(ANSWERED));
	ck_assert_int_eq(s->state, S(SLOT_FREE));
	ck_assert_ptr_null(s->pub);
	ck_assert_ptr_null(cs_join_find(&j, "node-2")); /* single use */
	/* A full table reuses a slot; withdraw_all frees them all. */
	for (int i = 0; i < CS_JOIN_MAX_CHALLENGES + 3; i++) {
		char id[16];
		snprintf(id, sizeof id, "n-%d", i);
		cs_join_issue(&j, id, "127.0.0.1:1", "", false, new_pub(), &pt);
		free(pt);
	}
	ck_assert_ptr_nonnull(cs_join_find(&j, "n-34"));
	cs_join_withdraw_all(&j);
	for (int i = 0; i < CS_JOIN_MAX_CHALLENGES; i++) {
		ck_assert_int_eq(j.slots[i].state, S(SLOT_FREE));
		ck_assert_ptr_null(j.slots[i].pub);
	}
}
END_TEST

/* ---------------------------------------------------------------- the machine over HTTP */

struct envrec {
	int challenged, cancelled, accepted;
	int shares, threshold;
	int autos; /* auto-seal challenges seen */
	char auto_type[40], auto_wrapped[256];
};

static int env_decode(const cJSON *sc, int *shares, int *threshold)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(sc, "secret_shares");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(sc, "secret_threshold");
	if (!cJSON_IsNumber(n) || !cJSON_IsNumber(t) || t->valueint < 1 ||
	    t->valueint > n->valueint)
		return CS_EINVAL;
	*shares = n->valueint;
	*threshold = t->valueint;
	return 0;
}

static void env_challenged(void *ctx, int shares, int threshold)
{
	struct envrec *r = ctx;
	r->challenged++;
	r->shares = shares;
	r->threshold = threshold;
}

static void env_cancelled(void *ctx)
{
	((struct envrec *)ctx)->cancelled++;
}

static int env_accepted(void *ctx, X509 *ca, struct cs_cluster_cred *minted, const cJSON *peers)
{
	((struct envrec *)ctx)->accepted++;
	X509_free(ca);
	cs_cluster_cred_free(minted);
	return 0;
}

struct mfx {
	uv_loop_t loop;
	struct cs_join j;
	struct envrec rec;
	struct srv s;
	char url[64];
};

static void mfx_open(struct mfx *f)
{
	memset(f, 0, sizeof *f);
	uv_loop_init(&f->loop);
	srv_start(&f->s);
	srv_url(&f->s, f->url, sizeof f->url);
	struct cs_join_env env = {
	    .ctx = &f->rec,
	    .node_id = "node-2",
	    .cluster_addr = "127.0.0.1:8202",
	    .api_addr = "http://127.0.0.1:8200",
	    .seal_config_decode = env_decode,
	    .challenged = env_challenged,
	    .cancelled = env_cancelled,
	    .accepted = env_accepted,
	};
	char err[256];
	ck_assert_int_eq(cs_join_init(&f->j, &f->loop, &env, err, sizeof err), 0);
}

static bool jclosed;
static void join_closed(struct cs_join *j)
{
	(void)j;
	jclosed = true;
}

static void mfx_close(struct mfx *f)
{
	jclosed = false;
	cs_join_close(&f->j, join_closed);
	ck_assert(cs_fx_run_until(&f->loop, &jclosed, 5000));
	ck_assert_int_eq(f->j.state, CS_JOIN_IDLE);
	ck_assert_ptr_null(f->j.kek);
	ck_assert_int_eq(uv_loop_close(&f->loop), 0);
	srv_stop(&f->s);
}

/* Run the loop until the machine is in `st` (or fail). */
static void run_to(struct mfx *f, enum cs_join_state st)
{
	for (int i = 0; i < 20000 && f->j.state != st; i++)
		uv_run(&f->loop, UV_RUN_ONCE);
	ck_assert_msg(f->j.state == st, "state %s, want %s", cs_join_state_name(f->j.state),
		      cs_join_state_name(st));
}

static void start(struct mfx *f, bool retry)
{
	struct cs_join_target t = {f->url, NULL, NULL, NULL, NULL};
	ck_assert_int_eq(cs_join_set_targets(&f->j, &t, 1, retry, false), 0);
	ck_assert_int_eq(cs_join_fire(&f->j, E(START)), 0);
	ck_assert_int_eq(f->j.state, S(SEEKING));
	/* Targets are replaced only while idle. */
	ck_assert_int_eq(cs_join_set_targets(&f->j, &t, 1, retry, false), CS_EINVAL);
}

START_TEST(machine_challenge_then_cancel)
{
	struct mfx f;
	mfx_open(&f);
	srv_reply(&f.s, 200,
		  "{\"data\":{\"challenge\":\"AAAA\",\"seal_config\":{\"type\":\"shamir\","
		  "\"secret_shares\":5,\"secret_threshold\":3}}}");
	start(&f, false);
	run_to(&f, S(CHALLENGED));
	ck_assert_str_eq(f.s.last_path, CS_JOIN_CHALLENGE_PATH);
	cJSON *b = cJSON_Parse(f.s.last_body);
	ck_assert_str_eq(cJSON_GetObjectItem(b, "server_id")->valuestring, "node-2");
	ck_assert_str_eq(cJSON_GetObjectItem(b, "cluster_addr")->valuestring, "127.0.0.1:8202");
	ck_assert_ptr_nonnull(
	    strstr(cJSON_GetObjectItem(b, "public_key")->valuestring, "PUBLIC KEY"));
	cJSON_Delete(b);
	ck_assert_int_eq(f.rec.challenged, 1);
	ck_assert_int_eq(f.rec.shares, 5);
	ck_assert_int_eq(f.rec.threshold, 3);
	/* Wrong keys: refused, the challenge is kept. */
	uint8_t kek[CS_KEY_LEN];
	memset(kek, 7, sizeof kek);
	char err[256];
	ck_assert_int_eq(cs_join_keys(&f.j, kek, err, sizeof err), CS_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "not this cluster's"));
	ck_assert_int_eq(f.j.state, S(CHALLENGED));
	ck_assert_int_eq(cs_join_fire(&f.j, E(CANCEL)), 0);
	ck_assert_int_eq(f.j.state, S(IDLE));
	ck_assert_int_eq(f.rec.cancelled, 1);
	ck_assert_ptr_null(f.j.challenge);
	mfx_close(&f);
}
END_TEST

START_TEST(machine_malformed_challenge)
{
	struct mfx f;
	mfx_open(&f);
	/* threshold above shares: out of the seal config's bounds */
	srv_reply(&f.s, 200,
		  "{\"data\":{\"challenge\":\"AAAA\",\"seal_config\":{\"secret_shares\":1,"
		  "\"secret_threshold\":3}}}");
	start(&f, true);
	run_to(&f, S(IDLE));
	ck_assert_int_eq(f.rec.challenged, 0);
	mfx_close(&f);
}
END_TEST

/* No retry: every target fails once, then the join ends. Two targets, both asked. */
START_TEST(machine_give_up_after_all_targets)
{
	struct mfx f;
	mfx_open(&f);
	struct srv s2;
	srv_start(&s2);
	srv_reply(&f.s, 503, "{\"errors\":[\"sealed\"]}");
	srv_reply(&s2, 500, "{}");
	char url2[64];
	srv_url(&s2, url2, sizeof url2);
	struct cs_join_target t[2] = {{f.url, NULL, NULL, NULL, NULL},
				      {url2, NULL, NULL, NULL, NULL}};
	ck_assert_int_eq(cs_join_set_targets(&f.j, t, 2, false, false), 0);
	ck_assert_int_eq(cs_join_fire(&f.j, E(START)), 0);
	run_to(&f, S(IDLE));
	ck_assert_int_eq(f.s.hits, 1);
	ck_assert_int_eq(s2.hits, 1);
	ck_assert_ptr_nonnull(strstr(f.j.last_err, "answered 500"));
	srv_stop(&s2);
	mfx_close(&f);
}
END_TEST

/* With retry, a failed round waits, then asks again; cancel stops the wait. */
START_TEST(machine_retry_backoff_then_cancel)
{
	struct mfx f;
	mfx_open(&f);
	srv_reply(&f.s, 503, "{}");
	start(&f, true);
	run_to(&f, S(BACKOFF));
	run_to(&f, S(SEEKING)); /* the timer fired: a second round */
	run_to(&f, S(BACKOFF));
	ck_assert_int_ge(f.s.hits, 2);
	ck_assert_int_eq(cs_join_fire(&f.j, E(CANCEL)), 0);
	ck_assert_int_eq(f.j.state, S(IDLE));
	mfx_close(&f);
}
END_TEST

/* The right keys open the challenge; the answer goes to the same target; while it is on
 * its way a cancel is refused. Keys given before the challenge are used when it comes. */
START_TEST(machine_keys_answer_accepted)
{
	struct mfx f;
	mfx_open(&f);
	pthread_mutex_lock(&f.s.mu);
	f.s.replies[0] = (struct reply){.status = 200, .seal_challenge = true};
	f.s.replies[1] = (struct reply){.status = 0}; /* the answer: hang */
	f.s.n_replies = 2;
	pthread_mutex_unlock(&f.s.mu);
	char err[256];
	/* Keys first (the operator unsealed before the challenge came): kept. */
	ck_assert_int_eq(cs_join_keys(&f.j, f.s.kek, err, sizeof err), 0);
	ck_assert_ptr_nonnull(f.j.kek);
	start(&f, false);
	run_to(&f, S(ANSWERING));
	wait_hits(&f.loop, &f.s, 2);
	ck_assert_str_eq(f.s.last_path, CS_JOIN_ANSWER_PATH);
	cJSON *b = cJSON_Parse(f.s.last_body);
	ck_assert_str_eq(cJSON_GetObjectItem(b, "answer")->valuestring, "bm9uY2U=");
	ck_assert_str_eq(cJSON_GetObjectItem(b, "server_id")->valuestring, "node-2");
	cJSON_Delete(b);
	ck_assert_int_eq(cs_join_fire(&f.j, E(CANCEL)), CS_EINVAL);
	ck_assert_int_eq(f.j.state, S(ANSWERING));
	mfx_close(&f); /* shutdown abandons the answer in flight */
}
END_TEST

/* A challenge sealed with the cluster's keys but issued for another node is never
 * answered: the joiner asks for a new one. A refused answer also asks again. */
START_TEST(machine_foreign_challenge_and_refused_answer)
{
	struct mfx f;
	mfx_open(&f);
	f.s.challenge_for = "node-9";
	pthread_mutex_lock(&f.s.mu);
	f.s.replies[0] = (struct reply){.status = 200, .seal_challenge = true};
	f.s.replies[1] = (struct reply){.status = 0}; /* the second challenge request: hang */
	f.s.n_replies = 2;
	pthread_mutex_unlock(&f.s.mu);
	start(&f, false);
	run_to(&f, S(CHALLENGED));
	char err[256];
	ck_assert_int_eq(cs_join_keys(&f.j, f.s.kek, err, sizeof err), CS_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "another node"));
	ck_assert_int_eq(f.j.state, S(SEEKING));
	wait_hits(&f.loop, &f.s, 2);
	ck_assert_str_eq(f.s.last_path, CS_JOIN_CHALLENGE_PATH);
	mfx_close(&f);

	/* Refused answer (HTTP 400) → a new challenge request. */
	mfx_open(&f);
	pthread_mutex_lock(&f.s.mu);
	f.s.replies[0] = (struct reply){.status = 200, .seal_challenge = true};
	f.s.replies[1] = (struct reply){.status = 400, .body = "{\"errors\":[\"invalid\"]}"};
	f.s.replies[2] = (struct reply){.status = 0};
	f.s.n_replies = 3;
	pthread_mutex_unlock(&f.s.mu);
	start(&f, false);
	run_to(&f, S(CHALLENGED));
	ck_assert_int_eq(cs_join_keys(&f.j, f.s.kek, err, sizeof err), 0);
	wait_hits(&f.loop, &f.s, 3);
	ck_assert_int_eq(f.j.state, S(SEEKING));
	ck_assert_int_eq(f.rec.accepted, 0);
	mfx_close(&f);
}
END_TEST

/* An auto-sealed cluster's challenge carries the wrapped KEK to the node's seal. */
static void env_auto(void *ctx, const char *type, const char *wrapped)
{
	struct envrec *r = ctx;
	r->autos++;
	snprintf(r->auto_type, sizeof r->auto_type, "%s", type);
	snprintf(r->auto_wrapped, sizeof r->auto_wrapped, "%s", wrapped);
}

#define AUTO_CHALLENGE                                                                             \
	"{\"data\":{\"challenge\":\"AAAA\",\"seal_wrapped_kek\":\"WRAPPED\",\"seal_config\":{"     \
	"\"type\":\"transit\",\"secret_shares\":1,\"secret_threshold\":1}}}"

START_TEST(machine_auto_seal_challenge)
{
	struct mfx f;
	mfx_open(&f);
	f.j.env.auto_challenge = env_auto;
	srv_reply(&f.s, 200, AUTO_CHALLENGE);
	start(&f, false);
	run_to(&f, S(CHALLENGED));
	ck_assert_int_eq(f.rec.challenged, 1);
	ck_assert_int_eq(f.rec.autos, 1);
	ck_assert_str_eq(f.rec.auto_type, "transit");
	ck_assert_str_eq(f.rec.auto_wrapped, "WRAPPED");
	ck_assert_int_eq(cs_join_fire(&f.j, E(CANCEL)), 0);
	mfx_close(&f);
}
END_TEST

START_TEST(machine_auto_seal_challenge_refused)
{
	/* A node without an auto seal cannot answer: malformed for it. */
	struct mfx f;
	mfx_open(&f);
	srv_reply(&f.s, 200, AUTO_CHALLENGE);
	start(&f, false);
	run_to(&f, S(IDLE));
	ck_assert_int_eq(f.rec.challenged, 0);
	mfx_close(&f);
	/* An auto seal without its wrapped key: malformed too. */
	mfx_open(&f);
	f.j.env.auto_challenge = env_auto;
	srv_reply(&f.s, 200,
		  "{\"data\":{\"challenge\":\"AAAA\",\"seal_config\":{\"type\":\"pkcs11\","
		  "\"secret_shares\":1,\"secret_threshold\":1}}}");
	start(&f, false);
	run_to(&f, S(IDLE));
	ck_assert_int_eq(f.rec.challenged + f.rec.autos, 0);
	mfx_close(&f);
}
END_TEST

/* ---------------------------------------------------------------- transit seal */

struct sealgot {
	bool done;
	int rc;
	char out[1024];
	size_t len;
	char err[512];
};

static void seal_cb(void *ctx, int rc, struct cs_buf *out, const char *err)
{
	struct sealgot *g = ctx;
	g->done = true;
	g->rc = rc;
	g->len = out->len < sizeof g->out ? out->len : sizeof g->out - 1;
	if (out->data)
		memcpy(g->out, out->data, g->len);
	g->out[g->len] = '\0';
	snprintf(g->err, sizeof g->err, "%s", err ? err : "");
}

static bool seal_closed_flag;
static void seal_closed(void *ctx)
{
	(void)ctx;
	seal_closed_flag = true;
}

static struct cs_autoseal *transit_open(uv_loop_t *loop, const char *url)
{
	struct cs_seal_params p;
	cs_seal_params_init(&p, CS_SEAL_TRANSIT);
	p.address = strdup(url);
	p.key_name = strdup("unseal");
	p.token = strdup("s.token");
	p.disable_renewal = true; /* no renew-self request to answer */
	char err[256];
	ck_assert_int_eq(cs_seal_params_check(&p, err, sizeof err), 0);
	struct cs_autoseal *s = NULL;
	ck_assert_int_eq(cs_autoseal_open(loop, &p, &s, err, sizeof err), 0);
	cs_seal_params_free(&p);
	return s;
}

START_TEST(transit_seal_round_trip)
{
	struct srv sv;
	srv_start(&sv);
	char url[64];
	srv_url(&sv, url, sizeof url);
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct cs_autoseal *s = transit_open(&loop, url);
	uint8_t kek[CS_KEY_LEN];
	memset(kek, 0x11, sizeof kek);
	char *b64 = cs_b64_encode(kek, sizeof kek);
	char body[256];

	srv_reply(&sv, 200, "{\"data\":{\"ciphertext\":\"vault:v1:QUJD\"}}");
	struct sealgot g = {0};
	ck_assert_int_eq(s->ops->encrypt(s, kek, sizeof kek, seal_cb, &g), 0);
	ck_assert(!g.done); /* never from inside the call */
	ck_assert(cs_fx_run_until(&loop, &g.done, 10000));
	ck_assert_msg(g.rc == 0, "%s", g.err);
	ck_assert_str_eq(sv.last_path, "/v1/transit/encrypt/unseal");
	snprintf(body, sizeof body, "{\"plaintext\":\"%s\"}", b64);
	ck_assert_str_eq(sv.last_body, body);
	struct cs_seal_envelope e;
	ck_assert_int_eq(cs_seal_envelope_decode(g.out, g.len, &e), 0);
	ck_assert_str_eq(e.ciphertext, "vault:v1:QUJD");
	ck_assert_str_eq(e.key_id, "transit/unseal");

	snprintf(body, sizeof body, "{\"data\":{\"plaintext\":\"%s\"}}", b64);
	srv_reply(&sv, 200, body);
	struct sealgot d = {0};
	ck_assert_int_eq(s->ops->decrypt(s, &e, seal_cb, &d), 0);
	ck_assert(cs_fx_run_until(&loop, &d.done, 10000));
	ck_assert_msg(d.rc == 0, "%s", d.err);
	ck_assert_str_eq(sv.last_path, "/v1/transit/decrypt/unseal");
	ck_assert_str_eq(sv.last_body, "{\"ciphertext\":\"vault:v1:QUJD\"}");
	ck_assert_uint_eq(d.len, CS_KEY_LEN);
	ck_assert_mem_eq(d.out, kek, CS_KEY_LEN);

	/* The seal server says no: one line with its reason, no key. */
	srv_reply(&sv, 403, "{\"errors\":[\"permission denied\"]}");
	struct sealgot x = {0};
	ck_assert_int_eq(s->ops->decrypt(s, &e, seal_cb, &x), 0);
	ck_assert(cs_fx_run_until(&loop, &x.done, 10000));
	ck_assert_int_eq(x.rc, CS_EPERM);
	ck_assert_uint_eq(x.len, 0);
	ck_assert_ptr_nonnull(strstr(x.err, "permission denied"));
	cs_seal_envelope_free(&e);

	/* Closing with a request in flight: its callback never runs. */
	srv_reply(&sv, 0, "");
	struct sealgot h = {0};
	struct cs_seal_envelope e2 = {.kind = CS_SEAL_TRANSIT, .ciphertext = "vault:v1:QUJD"};
	ck_assert_int_eq(s->ops->decrypt(s, &e2, seal_cb, &h), 0);
	wait_hits(&loop, &sv, 4);
	seal_closed_flag = false;
	cs_autoseal_close(s, seal_closed, NULL);
	ck_assert(cs_fx_run_until(&loop, &seal_closed_flag, 5000));
	ck_assert(!h.done);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	free(b64);
	srv_stop(&sv);
}
END_TEST

START_TEST(transit_seal_unreachable)
{
	struct srv sv;
	srv_start(&sv);
	char url[64];
	srv_url(&sv, url, sizeof url);
	srv_stop(&sv); /* nobody listens there any more */
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct cs_autoseal *s = transit_open(&loop, url);
	struct cs_seal_envelope e = {.kind = CS_SEAL_TRANSIT, .ciphertext = "vault:v1:QUJD"};
	struct sealgot g = {0};
	ck_assert_int_eq(s->ops->decrypt(s, &e, seal_cb, &g), 0);
	ck_assert(cs_fx_run_until(&loop, &g.done, 10000));
	ck_assert_int_eq(g.rc, CS_EIO);
	ck_assert_msg(strstr(g.err, "transit seal unreachable"), "%s", g.err);
	ck_assert_ptr_null(strstr(g.err, "s.token"));
	seal_closed_flag = false;
	cs_autoseal_close(s, seal_closed, NULL);
	ck_assert(cs_fx_run_until(&loop, &seal_closed_flag, 5000));
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("join");
	TCase *t = tcase_create("table");
	tcase_add_test(t, table_every_cell);
	tcase_add_test(t, fire_refuses_illegal);
	tcase_add_test(t, leader_issue_answer_once);
	suite_add_tcase(s, t);
	t = tcase_create("curlm");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, curlm_post_ok);
	tcase_add_test(t, curlm_refused);
	tcase_add_test(t, curlm_body_too_big);
	tcase_add_test(t, curlm_cancel);
	suite_add_tcase(s, t);
	t = tcase_create("machine");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, machine_challenge_then_cancel);
	tcase_add_test(t, machine_malformed_challenge);
	tcase_add_test(t, machine_give_up_after_all_targets);
	tcase_add_test(t, machine_retry_backoff_then_cancel);
	tcase_add_test(t, machine_keys_answer_accepted);
	tcase_add_test(t, machine_foreign_challenge_and_refused_answer);
	tcase_add_test(t, machine_auto_seal_challenge);
	tcase_add_test(t, machine_auto_seal_challenge_refused);
	suite_add_tcase(s, t);

	/* The transit seal (server/seal_transit.c) over the same driver and local server. */
	t = tcase_create("seal_transit");
	tcase_add_test(t, transit_seal_round_trip);
	tcase_add_test(t, transit_seal_unreachable);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	cs_log_set_level(CS_LOG_ERROR);
	SRunner *r = srunner_create(suite());
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
