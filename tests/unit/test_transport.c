/*
 * The cluster port and c-raft's mutual-TLS transport, in one process on one uv loop over
 * real sockets on 127.0.0.1 (ephemeral ports):
 * - three cs_raft_node instances (LMDB FSM) bootstrapped as three voters elect a leader,
 *   commit 200 write-sets, and every replica ends with the same applied index and digest;
 * - the listener's refusals (foreign CA, id not in the certificate, address claim, no or
 *   unknown ALPN, TLS 1.1, handshake deadline) seen from a blocking OpenSSL client in a
 *   thread, and the custos-forward ALPN reaching its handler;
 * - outbound connects (success, wrong node name, refused port, bad address) and a bulk
 *   transfer through both bridges with back-pressure;
 * - closing the transport with connects pending: each callback fires once with
 *   RAFT_CANCELED, then the close callback, and the loop ends with no live handles.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"
#include "raft/node.h"
#include "raft/transport.h"
#include "raft/cluster.h"
#include "storage/cluster_tls.h"
#include "storage/txn.h"
#include "tests/unit/fixtures.h"

/* ---------------------------------------------------------------- fixture */

static char dir[64];
static uv_loop_t loop;
static struct cs_cluster_cred ca, rogue_ca;
static struct cs_cluster_cred cred[4]; /* node-1 .. node-3 */
static struct cs_cluster_cred node9, rogue2;
static char err[256];

static struct cs_cluster_cred gen_node(const struct cs_cluster_cred *issuer, uint64_t id)
{
	struct cs_cluster_cred c;
	static const char *const ips[] = {"127.0.0.1"};
	ck_assert_int_eq(cs_cluster_tls_gen_node(issuer, id, ips, 1, &c, err, sizeof err), 0);
	return c;
}

static void setup(void)
{
	cs_fx_tmpdir(dir, sizeof dir, "transport");
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_int_eq(cs_cluster_tls_gen_ca("test", &ca, err, sizeof err), 0);
	ck_assert_int_eq(cs_cluster_tls_gen_ca("rogue", &rogue_ca, err, sizeof err), 0);
	for (uint64_t i = 1; i <= 3; i++)
		cred[i] = gen_node(&ca, i);
	node9 = gen_node(&ca, 9);
	rogue2 = gen_node(&rogue_ca, 2);
}

static void walk_cb(uv_handle_t *handle, void *arg)
{
	fprintf(stderr, "live handle: %s%s\n", uv_handle_type_name(uv_handle_get_type(handle)),
		uv_is_closing(handle) ? " (closing)" : "");
}

static void teardown(void)
{
	uv_run(&loop, UV_RUN_NOWAIT);
	int rv = uv_loop_close(&loop);
	if (rv != 0)
		uv_walk(&loop, walk_cb, NULL);
	for (int i = 1; i <= 3; i++)
		cs_cluster_cred_free(&cred[i]);
	cs_cluster_cred_free(&node9);
	cs_cluster_cred_free(&rogue2);
	cs_cluster_cred_free(&ca);
	cs_cluster_cred_free(&rogue_ca);
	cs_fx_tmpdir_done(dir);
	ck_assert_int_eq(rv, 0);
}

static SSL_CTX *server_ctx(const struct cs_cluster_cred *c)
{
	SSL_CTX *x = cs_cluster_tls_server_ctx(ca.cert, c->cert, c->key, err, sizeof err);
	ck_assert_msg(x != NULL, "%s", err);
	return x;
}

static SSL_CTX *client_ctx(const struct cs_cluster_cred *c)
{
	SSL_CTX *x = cs_cluster_tls_client_ctx(ca.cert, c->cert, c->key, err, sizeof err);
	ck_assert_msg(x != NULL, "%s", err);
	return x;
}

static void run_for(int ms)
{
	atomic_bool never = false;
	cs_fx_run_until_polled(&loop, &never, ms);
}

static void listener_closed(void *ctx)
{
	atomic_store((atomic_bool *)ctx, true);
}

static void close_listener(struct cs_cluster *cl)
{
	atomic_bool done = false;
	cs_cluster_close(cl, listener_closed, &done);
	ck_assert(cs_fx_run_until_polled(&loop, &done, 5000));
}

static void raft_free_cb(uv_handle_t *h)
{
	raft_free(h);
}

/* ---------------------------------------------------------------- three raft nodes */

struct rnode {
	struct cs_storage st;
	struct cs_raft_node node;
	struct raft_uv_transport t;
	struct cs_cluster *cl;
	SSL_CTX *sctx, *cctx;
	char address[64];
	bool active;
	atomic_bool closed;
};

static struct rnode nodes[4];
static int ok, nfailed, outstanding;

static void on_active(void *ctx, bool active)
{
	((struct rnode *)ctx)->active = active;
}

static void on_node_closed(struct cs_raft_node *n)
{
	struct rnode *r = CS_CONTAINER_OF(n, struct rnode, node);
	atomic_store(&r->closed, true);
}

static void commit_cb(void *data, int status)
{
	outstanding--;
	if (status == 0)
		ok++;
	else
		nfailed++;
}

static void put_key(struct cs_storage *st, int i)
{
	struct cs_txn t;
	char k[32], v[32];
	bool pending;
	snprintf(k, sizeof k, "kv/%06d", i);
	snprintf(v, sizeof v, "value-%d", i);
	cs_txn_begin(&t, st, NULL);
	ck_assert_int_eq(cs_txn_put_raw(&t, k, v, strlen(v)), 0);
	ck_assert_int_eq(cs_txn_commit(&t, commit_cb, NULL, &pending), 0);
	ck_assert(pending);
	outstanding++;
}

static void wait_commits(void)
{
	uint64_t deadline = cs_mono_ms() + 10000;
	while (outstanding > 0 && cs_mono_ms() < deadline)
		uv_run(&loop, UV_RUN_ONCE);
	ck_assert_int_eq(outstanding, 0);
}

static struct rnode *active_node(void)
{
	for (int i = 1; i <= 3; i++)
		if (nodes[i].active)
			return &nodes[i];
	return NULL;
}

static double since_ms(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

START_TEST(test_three_nodes)
{
	raft_id ids[3] = {1, 2, 3};
	const char *addrs[3];
	for (int i = 1; i <= 3; i++) {
		struct rnode *r = &nodes[i];
		r->sctx = server_ctx(&cred[i]);
		r->cctx = client_ctx(&cred[i]);
		int rv = cs_cluster_listen(&r->cl, &loop, "127.0.0.1:0", r->sctx, err, sizeof err);
		ck_assert_msg(rv == 0, "%s", err);
		snprintf(r->address, sizeof r->address, "127.0.0.1:%d", cs_cluster_port(r->cl));
		addrs[i - 1] = r->address;
		struct cs_transport_config tc = {.client_ctx = r->cctx,
						 .check_claim = cs_raft_node_check_claim,
						 .claim_ctx = &r->node,
						 .require_ip_san = true};
		ck_assert_int_eq(cs_transport_init(&r->t, &loop, &tc), 0);
		cs_cluster_set_handler(r->cl, CS_ALPN_RAFT, cs_transport_accept, &r->t);
	}
	for (int i = 1; i <= 3; i++) {
		struct rnode *r = &nodes[i];
		char data[128], fsm[160];
		snprintf(data, sizeof data, "%s/n%d", dir, i);
		ck_assert_int_eq(cs_mkdir_p(data, 0700), 0);
		snprintf(fsm, sizeof fsm, "%s/fsm", data);
		ck_assert_int_eq(cs_storage_open(&r->st, fsm, 64 << 20), 0);
		int rv = cs_raft_node_init_transport(&r->node, &loop, &r->st, data, (raft_id)i,
						     r->address, &r->t, on_active, r);
		ck_assert_msg(rv == 0, "%s", r->node.errmsg);
		rv = cs_raft_node_bootstrap_voters(&r->node, ids, addrs, 3);
		ck_assert_msg(rv == 0, "%s", r->node.errmsg);
	}
	for (int i = 1; i <= 3; i++)
		ck_assert_int_eq(cs_raft_node_start(&nodes[i].node), 0);

	/* Election over the mTLS transport (election timeout 1-2 s). */
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	uint64_t deadline = cs_mono_ms() + 10000;
	while (!active_node() && cs_mono_ms() < deadline)
		uv_run(&loop, UV_RUN_ONCE);
	struct rnode *leader = active_node();
	ck_assert_msg(leader != NULL, "no active leader");
	fprintf(stderr, "transport: leader node-%llu active after %.0f ms\n",
		(unsigned long long)leader->node.id, since_ms(&t0));

	/* 100 commits one at a time (one entry each), then 100 with 25 in flight. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 100; i++) {
		put_key(&leader->st, i);
		wait_commits();
	}
	double seq_ms = since_ms(&t0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int w = 0; w < 4; w++) {
		for (int i = 0; i < 25; i++)
			put_key(&leader->st, 100 + w * 25 + i);
		wait_commits();
	}
	double conc_ms = since_ms(&t0);
	ck_assert_int_eq(ok, 200);
	ck_assert_int_eq(nfailed, 0);
	fprintf(stderr,
		"transport: 3 nodes over mTLS: 100 sequential commits %.1f/s (%.2f ms each); "
		"100 at 25 in flight %.0f/s\n",
		100e3 / seq_ms, seq_ms / 100, 100e3 / conc_ms);

	/* Every replica applies the same entries: same index, same digest chain. */
	uint64_t want = leader->st.store.applied_index;
	deadline = cs_mono_ms() + 10000;
	for (;;) {
		bool all = true;
		for (int i = 1; i <= 3; i++)
			all = all && nodes[i].st.store.applied_index == want;
		if (all || cs_mono_ms() > deadline)
			break;
		uv_run(&loop, UV_RUN_ONCE);
	}
	for (int i = 1; i <= 3; i++) {
		struct cs_store *s = &nodes[i].st.store;
		ck_assert_uint_eq(s->applied_index, want);
		ck_assert_mem_eq(s->digest, leader->st.store.digest, CS_DIGEST_LEN);
		struct cs_buf b = CS_BUF_INIT;
		ck_assert_int_eq(cs_store_get(s, "kv/000199", 9, &b), 0);
		ck_assert_str_eq(b.data, "value-199");
		cs_buf_free(&b);
	}
	struct cs_transport_stats ts;
	cs_transport_get_stats(&leader->t, &ts);
	ck_assert_uint_ge(ts.connects_ok, 2);
	/* The claim check: known ids must claim their configured address. */
	ck_assert(cs_raft_node_check_claim(&leader->node, 2, nodes[2].address));
	ck_assert(!cs_raft_node_check_claim(&leader->node, 2, nodes[3].address));
	/* A CA-signed certificate is not membership: an id outside the configuration is
	 * refused (a joiner is accepted only through cs_raft_node_expect_peers). */
	ck_assert(!cs_raft_node_check_claim(&leader->node, 99, "127.0.0.1:1"));
	for (int i = 1; i <= 3; i++) {
		cs_transport_get_stats(&nodes[i].t, &ts);
		ck_assert_uint_eq(ts.accepts_refused, 0);
	}
	ck_assert_uint_gt(ts.bytes_out, 0);

	/* A follower goes away (its listener stays and refuses raft): the other two keep
	 * committing while the leader's bridge to it breaks and reconnects fail. */
	struct rnode *gone = &nodes[leader == &nodes[1] ? 2 : 1];
	cs_raft_node_close(&gone->node, on_node_closed);
	ck_assert(cs_fx_run_until_polled(&loop, &gone->closed, 10000));
	/* Small snapshot numbers on the leader so that the log is compacted past the
	 * follower's index: it can come back only through InstallSnapshot, whose framing
	 * (configuration, spare header bytes, data length) the transport checks. */
	raft_set_snapshot_threshold(&leader->node.raft, 32);
	raft_set_snapshot_trailing(&leader->node.raft, 4);
	leader->node.fsm_impl.fixed_threshold = true;
	/* A snapshot sent while the follower is down counts as in flight until this
	 * timeout (30 s by default) before the leader sends another. */
	raft_set_install_snapshot_timeout(&leader->node.raft, 500);
	for (int i = 0; i < 100; i++) {
		put_key(&leader->st, 200 + i);
		wait_commits();
	}
	ck_assert_int_eq(ok, 300);
	ck_assert_int_eq(nfailed, 0);

	/* The follower restarts on its data dir with a fresh transport. */
	cs_cluster_set_handler(gone->cl, CS_ALPN_RAFT, NULL, NULL);
	cs_transport_free(&gone->t);
	struct cs_transport_config gtc = {.client_ctx = gone->cctx,
					  .check_claim = cs_raft_node_check_claim,
					  .claim_ctx = &gone->node,
					  .require_ip_san = true};
	ck_assert_int_eq(cs_transport_init(&gone->t, &loop, &gtc), 0);
	cs_cluster_set_handler(gone->cl, CS_ALPN_RAFT, cs_transport_accept, &gone->t);
	atomic_store(&gone->closed, false);
	char gdata[128];
	snprintf(gdata, sizeof gdata, "%s/n%d", dir, (int)gone->node.id);
	raft_id gid = gone->node.id;
	int grv = cs_raft_node_init_transport(&gone->node, &loop, &gone->st, gdata, gid,
					      gone->address, &gone->t, on_active, gone);
	ck_assert_msg(grv == 0, "%s", gone->node.errmsg);
	ck_assert_int_eq(cs_raft_node_start(&gone->node), 0);
	want = leader->st.store.applied_index;
	deadline = cs_mono_ms() + 15000;
	while (gone->st.store.applied_index < want && cs_mono_ms() < deadline)
		uv_run(&loop, UV_RUN_ONCE);
	ck_assert_uint_eq(gone->st.store.applied_index, want);
	ck_assert_uint_gt(gone->node.fsm_impl.restores, 0); /* it was sent a snapshot */
	struct cs_buf gb = CS_BUF_INIT;
	ck_assert_int_eq(cs_store_get(&gone->st.store, "kv/000299", 9, &gb), 0);
	ck_assert_str_eq(gb.data, "value-299");
	cs_buf_free(&gb);
	for (int i = 1; i <= 3; i++) {
		cs_transport_get_stats(&nodes[i].t, &ts);
		ck_assert_uint_eq(ts.frames_refused, 0);
	}

	for (int i = 1; i <= 3; i++)
		cs_raft_node_close(&nodes[i].node, on_node_closed);
	for (int i = 1; i <= 3; i++)
		ck_assert(cs_fx_run_until_polled(&loop, &nodes[i].closed, 10000));
	for (int i = 1; i <= 3; i++) {
		struct rnode *r = &nodes[i];
		cs_cluster_set_handler(r->cl, CS_ALPN_RAFT, NULL, NULL);
		cs_transport_free(&r->t);
		close_listener(r->cl);
		cs_storage_close(&r->st);
		SSL_CTX_free(r->sctx);
		SSL_CTX_free(r->cctx);
	}
}
END_TEST

/* ---------------------------------------------------------------- a blocking client */

struct client {
	int port;
	SSL_CTX *ctx;     /* NULL: plain TCP that sends nothing */
	const char *alpn; /* NULL: offer none */
	const char *host; /* expected server name, NULL: no check */
	raft_id claim_id; /* 0: no raft handshake */
	const char *claim_addr;
	const char *ping; /* forward: send, then read the reply */
	/* results */
	bool handshake_ok;
	int ack; /* the byte read after the raft handshake, -1 if none */
	char reply[64];
	bool eof; /* plain: the server closed the connection */
	atomic_bool done;
	pthread_t thread;
};

static void *client_main(void *arg)
{
	struct client *c = arg;
	c->ack = -1;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
		goto out;
	if (!c->ctx) {
		char b;
		c->eof = recv(fd, &b, 1, 0) == 0;
		goto out;
	}
	SSL *ssl = SSL_new(c->ctx);
	SSL_set_fd(ssl, fd);
	if (c->alpn) {
		unsigned char w[64];
		size_t n = cs_cluster_tls_alpn(c->alpn, w, sizeof w);
		SSL_set_alpn_protos(ssl, w, (unsigned)n);
	}
	if (c->host)
		SSL_set1_host(ssl, c->host);
	c->handshake_ok = SSL_connect(ssl) == 1;
	if (c->handshake_ok && c->claim_id) {
		uint8_t msg[24 + 64] = {0};
		size_t alen = (strlen(c->claim_addr) + 8) & ~(size_t)7;
		uint64_t v[3] = {1, c->claim_id, alen}; /* little-endian host */
		memcpy(msg, v, sizeof v);
		memcpy(msg + 24, c->claim_addr, strlen(c->claim_addr));
		uint8_t ack;
		if (SSL_write(ssl, msg, (int)(24 + alen)) > 0 && SSL_read(ssl, &ack, 1) == 1)
			c->ack = ack;
	}
	if (c->handshake_ok && c->ping) {
		SSL_write(ssl, c->ping, (int)strlen(c->ping));
		int n = SSL_read(ssl, c->reply, sizeof c->reply - 1);
		if (n > 0)
			c->reply[n] = 0;
	}
	SSL_free(ssl);
	ERR_clear_error();
out:
	close(fd);
	atomic_store(&c->done, true);
	return NULL;
}

static void client_run(struct client *c)
{
	atomic_store(&c->done, false);
	ck_assert_int_eq(pthread_create(&c->thread, NULL, client_main, c), 0);
	ck_assert(cs_fx_run_until_polled(&loop, &c->done, 8000));
	pthread_join(c->thread, NULL);
	run_for(20); /* let the server side finish closing */
}

/* The listener + transport of node 1, raft replaced by a recording accept callback. */
struct server {
	struct cs_cluster *cl;
	struct raft_uv_transport t;
	SSL_CTX *sctx, *cctx;
	int port;
	int accepts;
	raft_id last_id;
	char last_addr[64];
	uv_stream_t *kept; /* an accepted stream kept open (bulk test), else closed */
	bool keep;
	atomic_bool closed;
};

static struct server srv;

static void test_accept_cb(struct raft_uv_transport *t, raft_id id, const char *address,
			   uv_stream_t *stream)
{
	srv.accepts++;
	srv.last_id = id;
	snprintf(srv.last_addr, sizeof srv.last_addr, "%s", address);
	if (srv.keep && !srv.kept)
		srv.kept = stream;
	else
		uv_close((uv_handle_t *)stream, raft_free_cb);
}

static bool claim_2_only_9002(void *ctx, raft_id id, const char *address)
{
	return id != 2 || strcmp(address, "127.0.0.1:6666") != 0;
}

static atomic_bool *close_flag;
static int close_seen_pending; /* dials still without a callback when close finished */
struct dial;
static struct dial *close_check[8];

static void flag_closed(struct raft_uv_transport *t);

static void close_transport(struct raft_uv_transport *t)
{
	atomic_bool done = false;
	close_flag = &done;
	t->close(t, flag_closed);
	ck_assert(!atomic_load(&done)); /* never from inside close */
	ck_assert(cs_fx_run_until_polled(&loop, &done, 5000));
}

static void server_start(void)
{
	memset(&srv, 0, sizeof srv);
	srv.sctx = server_ctx(&cred[1]);
	srv.cctx = client_ctx(&cred[1]);
	ck_assert_int_eq(
	    cs_cluster_listen(&srv.cl, &loop, "127.0.0.1:0", srv.sctx, err, sizeof err), 0);
	srv.port = cs_cluster_port(srv.cl);
	ck_assert_int_gt(srv.port, 0);
	struct cs_transport_config tc = {
	    .client_ctx = srv.cctx, .check_claim = claim_2_only_9002, .require_ip_san = true};
	ck_assert_int_eq(cs_transport_init(&srv.t, &loop, &tc), 0);
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", srv.port);
	ck_assert_int_eq(srv.t.init(&srv.t, 1, addr), 0);
	ck_assert_int_eq(srv.t.listen(&srv.t, test_accept_cb), 0);
	cs_cluster_set_handler(srv.cl, CS_ALPN_RAFT, cs_transport_accept, &srv.t);
}

static void server_stop(void)
{
	if (srv.kept)
		uv_close((uv_handle_t *)srv.kept, raft_free_cb);
	close_transport(&srv.t);
	cs_cluster_set_handler(srv.cl, CS_ALPN_RAFT, NULL, NULL);
	cs_transport_free(&srv.t);
	close_listener(srv.cl);
	SSL_CTX_free(srv.sctx);
	SSL_CTX_free(srv.cctx);
}

static struct client raft_client(SSL_CTX *ctx, const char *alpn, raft_id id, const char *addr)
{
	struct client c = {.port = srv.port,
			   .ctx = ctx,
			   .alpn = alpn,
			   .host = "node-1",
			   .claim_id = id,
			   .claim_addr = addr};
	return c;
}

START_TEST(test_inbound_refusals)
{
	server_start();
	SSL_CTX *c2 = client_ctx(&cred[2]);
	SSL_CTX *c9 = client_ctx(&node9);
	SSL_CTX *r2 =
	    cs_cluster_tls_client_ctx(rogue_ca.cert, rogue2.cert, rogue2.key, err, sizeof err);
	ck_assert_ptr_nonnull(r2);
	struct cs_transport_stats ts;

	/* A valid node-2 claiming id 2 at its address: ack, then raft's accept callback. */
	struct client c = raft_client(c2, CS_ALPN_RAFT, 2, "127.0.0.1:9002");
	client_run(&c);
	ck_assert(c.handshake_ok);
	ck_assert_int_eq(c.ack, 1);
	ck_assert_int_eq(srv.accepts, 1);
	ck_assert_uint_eq(srv.last_id, 2);
	ck_assert_str_eq(srv.last_addr, "127.0.0.1:9002");

	/* Certificate from another CA: refused in the handshake (TLS 1.3 lets the client
	 * finish first, so look at the ack too). */
	c = raft_client(r2, CS_ALPN_RAFT, 2, "127.0.0.1:9002");
	c.host = NULL; /* the rogue client does not trust our CA either way */
	client_run(&c);
	ck_assert_int_eq(c.ack, -1);

	/* A valid node-9 certificate claiming id 2. */
	c = raft_client(c9, CS_ALPN_RAFT, 2, "127.0.0.1:9002");
	client_run(&c);
	ck_assert(c.handshake_ok);
	ck_assert_int_eq(c.ack, -1);
	/* node-2 claiming an address the claim check refuses. */
	c = raft_client(c2, CS_ALPN_RAFT, 2, "127.0.0.1:6666");
	client_run(&c);
	ck_assert(c.handshake_ok);
	ck_assert_int_eq(c.ack, -1);
	/* node-2 claiming an IP its certificate does not carry. */
	c = raft_client(c2, CS_ALPN_RAFT, 2, "10.9.9.9:9002");
	client_run(&c);
	ck_assert(c.handshake_ok);
	ck_assert_int_eq(c.ack, -1);
	cs_transport_get_stats(&srv.t, &ts);
	ck_assert_uint_eq(ts.accepts_refused, 3);

	/* No ALPN: the handshake completes, then the explicit check closes it. */
	c = raft_client(c2, NULL, 2, "127.0.0.1:9002");
	client_run(&c);
	ck_assert(c.handshake_ok);
	ck_assert_int_eq(c.ack, -1);
	/* Unknown ALPN: no_application_protocol alert. */
	c = raft_client(c2, "h2", 2, "127.0.0.1:9002");
	client_run(&c);
	ck_assert(!c.handshake_ok);

	/* TLS 1.1 (allowed by this client at security level 0): protocol_version alert. */
	SSL_CTX *old = client_ctx(&cred[2]);
	SSL_CTX_set_security_level(old, 0);
	SSL_CTX_set_min_proto_version(old, TLS1_VERSION);
	SSL_CTX_set_max_proto_version(old, TLS1_1_VERSION);
	SSL_CTX_set_cipher_list(old, "DEFAULT:@SECLEVEL=0");
	c = raft_client(old, CS_ALPN_RAFT, 2, "127.0.0.1:9002");
	client_run(&c);
	ck_assert(!c.handshake_ok);
	SSL_CTX_free(old);

	/* No client certificate at all. */
	SSL_CTX *anon = SSL_CTX_new(TLS_client_method());
	X509_STORE_add_cert(SSL_CTX_get_cert_store(anon), ca.cert);
	c = raft_client(anon, CS_ALPN_RAFT, 2, "127.0.0.1:9002");
	client_run(&c);
	ck_assert_int_eq(c.ack, -1);
	SSL_CTX_free(anon);

	/* A TCP client that never starts TLS is cut at the deadline. */
	cs_cluster_set_handshake_timeout(srv.cl, 200);
	struct client plain = {.port = srv.port};
	client_run(&plain);
	ck_assert(plain.eof);

	/* Only the first connection got through. */
	ck_assert_int_eq(srv.accepts, 1);
	struct cs_cluster_stats cst;
	cs_cluster_get_stats(srv.cl, &cst);
	ck_assert_uint_eq(cst.accepted, 10);
	ck_assert_uint_eq(cst.handed, 4); /* valid, node-9, two refused addresses */
	ck_assert_uint_eq(cst.rejected, 6);
	SSL_CTX_free(c2);
	SSL_CTX_free(c9);
	SSL_CTX_free(r2);
	server_stop();
}
END_TEST

/* ---------------------------------------------------------------- forwarding hand-off */

struct fwd {
	SSL *ssl;
	uv_tcp_t *tcp;
	int calls;
	char got[64];
	size_t got_len;
	char buf[4096];
	bool replied;
};

static struct fwd fwd;

static void fwd_consume(void)
{
	int n;
	while ((n = SSL_read(fwd.ssl, fwd.got + fwd.got_len,
			     (int)(sizeof fwd.got - 1 - fwd.got_len))) > 0)
		fwd.got_len += (size_t)n;
	fwd.got[fwd.got_len] = 0;
	if (!fwd.replied && strcmp(fwd.got, "ping") == 0) {
		fwd.replied = true;
		SSL_write(fwd.ssl, "pong", 4);
	}
	ck_assert_int_eq(cs_tls_flush(fwd.ssl, (uv_stream_t *)fwd.tcp), 0);
}

static void fwd_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	*buf = uv_buf_init(fwd.buf, sizeof fwd.buf);
}

static void fwd_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	if (nread < 0) {
		cs_cluster_conn_release(fwd.ssl, fwd.tcp);
		fwd.ssl = NULL;
		fwd.tcp = NULL;
		return;
	}
	BIO_write(SSL_get_rbio(fwd.ssl), buf->base, (int)nread);
	fwd_consume();
}

static void fwd_handler(void *ctx, SSL *ssl, uv_tcp_t *tcp)
{
	ck_assert_ptr_eq(ctx, &fwd);
	fwd.calls++;
	fwd.ssl = ssl;
	fwd.tcp = tcp;
	ck_assert(SSL_is_init_finished(ssl));
	/* The request may already sit in the SSL: consume before waiting on the socket. */
	fwd_consume();
	uv_read_start((uv_stream_t *)tcp, fwd_alloc, fwd_read);
}

START_TEST(test_forward_alpn)
{
	server_start();
	memset(&fwd, 0, sizeof fwd);
	SSL_CTX *c2 = client_ctx(&cred[2]);

	/* Without a registered handler the protocol is refused. */
	struct client c = {
	    .port = srv.port, .ctx = c2, .alpn = CS_ALPN_FORWARD, .host = "node-1", .ping = "ping"};
	client_run(&c);
	ck_assert_str_eq(c.reply, "");

	cs_cluster_set_handler(srv.cl, CS_ALPN_FORWARD, fwd_handler, &fwd);
	c.reply[0] = 0;
	client_run(&c);
	ck_assert(c.handshake_ok);
	ck_assert_int_eq(fwd.calls, 1);
	ck_assert_str_eq(fwd.got, "ping");
	ck_assert_str_eq(c.reply, "pong");
	run_for(50);
	ck_assert_ptr_null(fwd.tcp);      /* released on the client's EOF */
	ck_assert_int_eq(srv.accepts, 0); /* raft never saw it */

	/* Listener set-up errors: a bad address, a port in use (freed via the loop). */
	struct cs_cluster *cl = NULL;
	char addr[64];
	ck_assert_int_eq(cs_cluster_listen(&cl, &loop, "localhost:1", srv.sctx, err, sizeof err),
			 CS_EINVAL);
	ck_assert_int_eq(cs_cluster_listen(&cl, &loop, "[::1", srv.sctx, err, sizeof err),
			 CS_EINVAL);
	snprintf(addr, sizeof addr, "127.0.0.1:%d", srv.port);
	ck_assert_int_eq(cs_cluster_listen(&cl, &loop, addr, srv.sctx, err, sizeof err), CS_EIO);
	ck_assert_ptr_nonnull(strstr(err, "address already in use"));
	ck_assert_ptr_null(cl);
	run_for(10);
	SSL_CTX_free(c2);
	server_stop();
}
END_TEST

/* ---------------------------------------------------------------- outbound */

struct dial {
	struct raft_uv_connect req;
	int calls;
	int status;
	uv_stream_t *stream;
	bool in_connect;
};

static void dial_cb(struct raft_uv_connect *req, uv_stream_t *stream, int status)
{
	struct dial *d = CS_CONTAINER_OF(req, struct dial, req);
	ck_assert_msg(!d->in_connect, "connect callback fired synchronously");
	d->calls++;
	d->status = status;
	d->stream = stream;
	if (status != 0)
		ck_assert_ptr_null(stream);
}

static int dial(struct raft_uv_transport *t, struct dial *d, raft_id id, const char *address)
{
	memset(d, 0, sizeof *d);
	d->in_connect = true;
	int rv = t->connect(t, &d->req, id, address, dial_cb);
	d->in_connect = false;
	return rv;
}

static bool dial_wait(struct dial *d, int ms)
{
	uint64_t deadline = cs_mono_ms() + (uint64_t)ms;
	while (d->calls == 0 && cs_mono_ms() < deadline)
		uv_run(&loop, UV_RUN_ONCE);
	return d->calls == 1;
}

/* Bulk transfer state: raft's outbound stream → peer's inbound stream. */
#define BULK                                                                                       \
	(64u << 20) /* beyond loopback TCP autotuning (rmem up to 32 MiB): back-pressure must      \
		       engage */
static size_t bulk_recv;
static bool bulk_bad;
static char bulk_buf[65536];
static uint8_t *bulk_src;

static void bulk_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	*buf = uv_buf_init(bulk_buf, sizeof bulk_buf);
}

static void bulk_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	if (nread <= 0)
		return;
	if (bulk_recv + (size_t)nread > BULK ||
	    memcmp(buf->base, bulk_src + bulk_recv, (size_t)nread) != 0)
		bulk_bad = true;
	bulk_recv += (size_t)nread;
}

static void bulk_write_cb(uv_write_t *w, int status)
{
	ck_assert_int_eq(status, 0);
	free(w);
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* One c-raft AppendEntries of one COMMAND entry, `total` bytes in all (preamble, header
 * with its 8 spare bytes, entry); the entry's bytes are left as they are. */
static void put_append_entries(uint8_t *p, size_t total)
{
	const size_t head = 16 + 40 + 16 + 8;
	memset(p, 0, head);
	put_le64(p, 1);                      /* type: AppendEntries */
	put_le64(p + 8, head - 16);          /* header length */
	put_le64(p + 16, 7);                 /* term */
	put_le64(p + 16 + 32, 1);            /* one entry */
	put_le64(p + 56, 7);                 /* entry term */
	p[56 + 8] = 1;                       /* RAFT_COMMAND */
	put_le64(p + 56 + 12, total - head); /* u32 length; its upper half lands in the spare
						bytes, which stay 0 */
}

START_TEST(test_outbound)
{
	server_start();
	srv.keep = true;
	struct raft_uv_transport t2;
	SSL_CTX *c2 = client_ctx(&cred[2]);
	struct cs_transport_config tc = {.client_ctx = c2};
	ck_assert_int_eq(cs_transport_init(&t2, &loop, &tc), 0);
	ck_assert_int_eq(t2.init(&t2, 2, "127.0.0.1:9002"), 0);
	ck_assert_int_eq(t2.listen(&t2, test_accept_cb), 0);
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", srv.port);

	/* Not an IP literal: refused synchronously, no callback. */
	struct dial d;
	ck_assert_int_eq(dial(&t2, &d, 1, "localhost:1"), RAFT_NOCONNECTION);
	run_for(10);
	ck_assert_int_eq(d.calls, 0);

	/* The server is node-1, not node-3. */
	ck_assert_int_eq(dial(&t2, &d, 3, addr), 0);
	ck_assert(dial_wait(&d, 5000));
	ck_assert_int_eq(d.status, RAFT_NOCONNECTION);

	/* Nobody listening. */
	struct cs_cluster *tmp;
	SSL_CTX *s3 = server_ctx(&cred[3]);
	ck_assert_int_eq(cs_cluster_listen(&tmp, &loop, "127.0.0.1:0", s3, err, sizeof err), 0);
	char dead[64];
	snprintf(dead, sizeof dead, "127.0.0.1:%d", cs_cluster_port(tmp));
	close_listener(tmp);
	SSL_CTX_free(s3);
	ck_assert_int_eq(dial(&t2, &d, 3, dead), 0);
	ck_assert(dial_wait(&d, 5000));
	ck_assert_int_eq(d.status, RAFT_NOCONNECTION);

	/* Success: node 2 → node 1; node 1 sees id 2 at its claimed address. */
	ck_assert_int_eq(dial(&t2, &d, 1, addr), 0);
	ck_assert(dial_wait(&d, 5000));
	ck_assert_int_eq(d.status, 0);
	ck_assert_ptr_nonnull(d.stream);
	run_for(20);
	ck_assert_int_eq(srv.accepts, 1);
	ck_assert_uint_eq(srv.last_id, 2);
	ck_assert_ptr_nonnull(srv.kept);

	/* 64 MiB through both bridges. The receiver starts reading late, so both sides'
	 * back-pressure engages; every byte arrives, in order. */
	bulk_src = malloc(BULK);
	for (size_t i = 0; i < BULK; i++)
		bulk_src[i] = (uint8_t)(i * 7 + (i >> 13));
	/* The inbound side passes only well-framed raft messages (raft/wire.h): the bulk is
	 * 64 AppendEntries of one entry each, 1 MiB per message. */
	for (size_t off = 0; off < BULK; off += 1u << 20)
		put_append_entries(bulk_src + off, 1u << 20);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (size_t off = 0; off < BULK; off += 1u << 20) {
		uv_write_t *w = malloc(sizeof *w);
		uv_buf_t b = uv_buf_init((char *)bulk_src + off, 1u << 20);
		ck_assert_int_eq(uv_write(w, d.stream, &b, 1, bulk_write_cb), 0);
	}
	/* Run until both sides have paused (not a fixed time: on a loaded machine the loop
	 * may move too little in a fixed window for back-pressure to engage). */
	struct cs_transport_stats ts, ts1;
	uint64_t pause_deadline = cs_mono_ms() + 20000;
	do {
		run_for(50);
		cs_transport_get_stats(&t2, &ts);
		cs_transport_get_stats(&srv.t, &ts1);
	} while ((ts.pauses == 0 || ts1.pauses == 0) && cs_mono_ms() < pause_deadline);
	ck_assert_uint_eq(bulk_recv, 0);
	ck_assert_int_eq(uv_read_start(srv.kept, bulk_alloc, bulk_read), 0);
	uint64_t deadline = cs_mono_ms() + 15000;
	while (bulk_recv < BULK && cs_mono_ms() < deadline)
		uv_run(&loop, UV_RUN_ONCE);
	ck_assert_uint_eq(bulk_recv, BULK);
	ck_assert(!bulk_bad);
	fprintf(stderr, "transport: 64 MiB through the bridges in %.0f ms (incl. the stall)\n",
		since_ms(&t0));
	cs_transport_get_stats(&t2, &ts);
	ck_assert_uint_eq(ts.bytes_out, BULK);
	ck_assert_uint_eq(ts.connects_ok, 1);
	ck_assert_uint_eq(ts.connects_failed, 2);
	ck_assert_uint_gt(ts.pauses, 0); /* raft → TLS side paused */
	cs_transport_get_stats(&srv.t, &ts1);
	ck_assert_uint_gt(ts1.pauses, 0); /* TLS → raft side paused */
	ck_assert_uint_eq(ts1.bytes_in, BULK);
	free(bulk_src);

	/* Raft closes its outbound stream: the peer's inbound stream sees EOF eventually;
	 * both bridges tear down. */
	uv_close((uv_handle_t *)d.stream, raft_free_cb);
	run_for(50);

	close_transport(&t2);
	cs_transport_free(&t2);
	SSL_CTX_free(c2);
	server_stop();
}
END_TEST

static void flag_closed(struct raft_uv_transport *t)
{
	for (size_t i = 0; i < CS_ARRAY_LEN(close_check); i++)
		if (close_check[i] && close_check[i]->calls == 0)
			close_seen_pending++;
	atomic_store(close_flag, true);
}

/* ---------------------------------------------------------------- close while connecting */

static uv_tcp_t hole;
static uv_tcp_t *hole_conns[8];
static int hole_n;

static void hole_conn(uv_stream_t *server, int status)
{
	uv_tcp_t *c = malloc(sizeof *c);
	uv_tcp_init(&loop, c);
	ck_assert_int_eq(uv_accept(server, (uv_stream_t *)c), 0);
	ck_assert_int_lt(hole_n, 8);
	hole_conns[hole_n++] = c; /* accepted, never answered */
}

static void free_handle(uv_handle_t *h)
{
	free(h);
}

START_TEST(test_close_pending)
{
	server_start();
	/* A TCP server that accepts and never speaks: connects stall in the handshake. */
	struct sockaddr_in sa;
	uv_ip4_addr("127.0.0.1", 0, &sa);
	uv_tcp_init(&loop, &hole);
	ck_assert_int_eq(uv_tcp_bind(&hole, (struct sockaddr *)&sa, 0), 0);
	ck_assert_int_eq(uv_listen((uv_stream_t *)&hole, 8, hole_conn), 0);
	struct sockaddr_storage ss;
	int len = sizeof ss;
	uv_tcp_getsockname(&hole, (struct sockaddr *)&ss, &len);
	char hole_addr[64], addr[64];
	snprintf(hole_addr, sizeof hole_addr, "127.0.0.1:%d",
		 ntohs(((struct sockaddr_in *)&ss)->sin_port));
	snprintf(addr, sizeof addr, "127.0.0.1:%d", srv.port);

	struct raft_uv_transport t2;
	SSL_CTX *c2 = client_ctx(&cred[2]);
	struct cs_transport_config tc = {.client_ctx = c2};
	ck_assert_int_eq(cs_transport_init(&t2, &loop, &tc), 0);
	ck_assert_int_eq(t2.init(&t2, 2, "127.0.0.1:9002"), 0);

	static struct dial d[4];
	/* Three stalled in the TLS handshake... */
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(dial(&t2, &d[i], 1, hole_addr), 0);
	uint64_t deadline = cs_mono_ms() + 2000;
	while (hole_n < 3 && cs_mono_ms() < deadline)
		uv_run(&loop, UV_RUN_ONCE);
	ck_assert_int_eq(hole_n, 3);
	/* ...and one still in TCP connect (the loop has not run since). */
	ck_assert_int_eq(dial(&t2, &d[3], 1, addr), 0);
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(d[i].calls, 0);
		close_check[i] = &d[i];
	}
	close_seen_pending = 0;
	close_transport(&t2);
	/* Every pending connect called back once, with RAFT_CANCELED, before close's. */
	ck_assert_int_eq(close_seen_pending, 0);
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(d[i].calls, 1);
		ck_assert_int_eq(d[i].status, RAFT_CANCELED);
		close_check[i] = NULL;
	}
	/* After close, connect is refused synchronously. */
	struct dial late;
	ck_assert_int_ne(dial(&t2, &late, 1, addr), 0);
	run_for(20);
	ck_assert_int_eq(late.calls, 0);
	cs_transport_free(&t2);
	SSL_CTX_free(c2);

	for (int i = 0; i < hole_n; i++)
		uv_close((uv_handle_t *)hole_conns[i], free_handle);
	uv_close((uv_handle_t *)&hole, NULL);
	server_stop();
}
END_TEST

/* Raft's connect-with-deadline: a peer that accepts TCP but never answers TLS. */
START_TEST(test_connect_deadline)
{
	struct sockaddr_in sa;
	uv_ip4_addr("127.0.0.1", 0, &sa);
	hole_n = 0;
	uv_tcp_init(&loop, &hole);
	ck_assert_int_eq(uv_tcp_bind(&hole, (struct sockaddr *)&sa, 0), 0);
	ck_assert_int_eq(uv_listen((uv_stream_t *)&hole, 8, hole_conn), 0);
	struct sockaddr_storage ss;
	int len = sizeof ss;
	uv_tcp_getsockname(&hole, (struct sockaddr *)&ss, &len);
	char hole_addr[64];
	snprintf(hole_addr, sizeof hole_addr, "127.0.0.1:%d",
		 ntohs(((struct sockaddr_in *)&ss)->sin_port));

	struct raft_uv_transport t2;
	SSL_CTX *c2 = client_ctx(&cred[2]);
	struct cs_transport_config tc = {.client_ctx = c2, .handshake_timeout_ms = 150};
	ck_assert_int_eq(cs_transport_init(&t2, &loop, &tc), 0);
	ck_assert_int_eq(t2.init(&t2, 2, "127.0.0.1:9002"), 0);
	struct dial d;
	/* Let the loop's cached clock go stale, as it does when connect is called after
	 * slow work: the deadline must still be counted from the call. */
	uv_update_time(&loop);
	usleep(300 * 1000);
	uint64_t t0 = cs_mono_ms();
	ck_assert_int_eq(dial(&t2, &d, 1, hole_addr), 0);
	ck_assert(dial_wait(&d, 3000));
	ck_assert_int_eq(d.status, RAFT_NOCONNECTION);
	ck_assert_uint_ge(cs_mono_ms() - t0, 140);
	close_transport(&t2);
	cs_transport_free(&t2);
	SSL_CTX_free(c2);
	for (int i = 0; i < hole_n; i++)
		uv_close((uv_handle_t *)hole_conns[i], free_handle);
	uv_close((uv_handle_t *)&hole, NULL);
}
END_TEST

/* ---------------------------------------------------------------- membership */

/* Start nodes[i] on a fresh listener with the real claim check; bootstrapped as the
 * only voter when `bootstrap`, else an empty configuration (a node about to join). */
static void member_start(int i, bool bootstrap)
{
	struct rnode *r = &nodes[i];
	r->sctx = server_ctx(&cred[i]);
	r->cctx = client_ctx(&cred[i]);
	ck_assert_int_eq(cs_cluster_listen(&r->cl, &loop, "127.0.0.1:0", r->sctx, err, sizeof err),
			 0);
	snprintf(r->address, sizeof r->address, "127.0.0.1:%d", cs_cluster_port(r->cl));
	struct cs_transport_config tc = {.client_ctx = r->cctx,
					 .check_claim = cs_raft_node_check_claim,
					 .claim_ctx = &r->node,
					 .require_ip_san = true};
	ck_assert_int_eq(cs_transport_init(&r->t, &loop, &tc), 0);
	cs_cluster_set_handler(r->cl, CS_ALPN_RAFT, cs_transport_accept, &r->t);
	char data[128], fsm[160];
	snprintf(data, sizeof data, "%s/m%d", dir, i);
	ck_assert_int_eq(cs_mkdir_p(data, 0700), 0);
	snprintf(fsm, sizeof fsm, "%s/fsm", data);
	ck_assert_int_eq(cs_storage_open(&r->st, fsm, 64 << 20), 0);
	ck_assert_int_eq(cs_raft_node_init_transport(&r->node, &loop, &r->st, data, (raft_id)i,
						     r->address, &r->t, on_active, r),
			 0);
	if (bootstrap) {
		raft_id id = (raft_id)i;
		const char *addr = r->address;
		ck_assert_int_eq(cs_raft_node_bootstrap_voters(&r->node, &id, &addr, 1), 0);
	}
	ck_assert_int_eq(cs_raft_node_start(&r->node), 0);
}

static void member_stop(int i)
{
	struct rnode *r = &nodes[i];
	cs_raft_node_close(&r->node, on_node_closed);
	ck_assert(cs_fx_run_until_polled(&loop, &r->closed, 10000));
	cs_cluster_set_handler(r->cl, CS_ALPN_RAFT, NULL, NULL);
	cs_transport_free(&r->t);
	close_listener(r->cl);
	cs_storage_close(&r->st);
	SSL_CTX_free(r->sctx);
	SSL_CTX_free(r->cctx);
}

/* A raft handshake to nodes[to] from a holder of `cred` claiming (id, addr). */
static int claim_ack(int to, const struct cs_cluster_cred *c, raft_id id, const char *addr)
{
	SSL_CTX *ctx = client_ctx(c);
	char host[32];
	cs_cluster_tls_node_name((uint64_t)to, host, sizeof host);
	struct client cl = {.port = cs_cluster_port(nodes[to].cl),
			    .ctx = ctx,
			    .alpn = CS_ALPN_RAFT,
			    .host = host,
			    .claim_id = id,
			    .claim_addr = addr};
	client_run(&cl);
	SSL_CTX_free(ctx);
	ck_assert(cl.handshake_ok);
	return cl.ack;
}

START_TEST(test_claim_needs_membership)
{
	/* The attack: a certificate signed by the cluster CA for a raft id that is not in
	 * the configuration (a removed node, or one that obtained a certificate without
	 * being added). Once accepted, its AppendEntries or RequestVote would reach raft. */
	member_start(1, true);
	uint64_t deadline = cs_mono_ms() + 10000;
	while (!nodes[1].active && cs_mono_ms() < deadline)
		uv_run(&loop, UV_RUN_ONCE);
	ck_assert(nodes[1].active);
	ck_assert_int_eq(claim_ack(1, &node9, 9, "127.0.0.1:9009"), -1);
	ck_assert_int_eq(claim_ack(1, &cred[2], 2, "127.0.0.1:9002"), -1);
	struct cs_transport_stats ts;
	cs_transport_get_stats(&nodes[1].t, &ts);
	ck_assert_uint_eq(ts.accepts_refused, 2);
	ck_assert_uint_eq(ts.accepts_ok, 0);

	/* A joining node (empty configuration) accepts exactly the members its join answer
	 * named, at their addresses, and nobody else. */
	member_start(2, false);
	raft_id ids[1] = {1};
	const char *addrs[1] = {nodes[1].address};
	ck_assert_int_eq(claim_ack(2, &cred[1], 1, nodes[1].address), -1); /* not yet told */
	cs_raft_node_expect_peers(&nodes[2].node, ids, addrs, 1);
	ck_assert_int_eq(claim_ack(2, &node9, 9, "127.0.0.1:9009"), -1);
	ck_assert_int_eq(claim_ack(2, &cred[1], 1, "127.0.0.1:6666"), -1);
	ck_assert_int_eq(claim_ack(2, &cred[1], 1, nodes[1].address), 1);
	cs_transport_get_stats(&nodes[2].t, &ts);
	ck_assert_uint_eq(ts.accepts_refused, 3);
	ck_assert_uint_eq(ts.accepts_ok, 1);
	member_stop(2);
	member_stop(1);
}
END_TEST

/* The source address: the listener's host with port 0; a wildcard listener binds nothing
 * (the kernel picks, as before); garbage is refused. */
START_TEST(test_source_address)
{
	struct sockaddr_storage ss;
	ck_assert_int_eq(cs_cluster_source_address("127.0.0.21:8201", &ss), 0);
	ck_assert_int_eq(ss.ss_family, AF_INET);
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	ck_assert_uint_eq(in->sin_port, 0);
	ck_assert_uint_eq(ntohl(in->sin_addr.s_addr), 0x7f000015);
	ck_assert_int_eq(cs_cluster_source_address("[::1]:8201", &ss), 0);
	ck_assert_int_eq(ss.ss_family, AF_INET6);
	ck_assert_uint_eq(((struct sockaddr_in6 *)&ss)->sin6_port, 0);
	ck_assert_int_eq(cs_cluster_source_address("0.0.0.0:8201", &ss), 0);
	ck_assert_int_eq(ss.ss_family, AF_UNSPEC);
	ck_assert_int_eq(cs_cluster_source_address("[::]:8201", &ss), 0);
	ck_assert_int_eq(ss.ss_family, AF_UNSPEC);
	ck_assert_int_eq(cs_cluster_source_address(NULL, &ss), 0);
	ck_assert_int_eq(ss.ss_family, AF_UNSPEC);
	ck_assert_int_eq(cs_cluster_source_address("node1:8201", &ss), CS_EINVAL);
	struct raft_uv_transport t;
	SSL_CTX *c2 = client_ctx(&cred[2]);
	struct cs_transport_config tc = {.client_ctx = c2, .source_address = "nonsense"};
	ck_assert_int_eq(cs_transport_init(&t, &loop, &tc), CS_EINVAL);
	SSL_CTX_free(c2);
}
END_TEST

/* With source_address set, raft's outbound connections leave from that host: a plain
 * listener on 127.0.0.1 sees the peer 127.0.0.22 (packet filters can then tell nodes on
 * one host apart, tests/chaos). The handshake then fails (nobody speaks TLS): the
 * callback reports RAFT_NOCONNECTION exactly once. */
START_TEST(test_outbound_source)
{
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in la = {.sin_family = AF_INET};
	inet_pton(AF_INET, "127.0.0.1", &la.sin_addr);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&la, sizeof la), 0);
	ck_assert_int_eq(listen(lfd, 4), 0);
	socklen_t sl = sizeof la;
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&la, &sl), 0);
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(la.sin_port));

	struct raft_uv_transport t2;
	SSL_CTX *c2 = client_ctx(&cred[2]);
	struct cs_transport_config tc = {
	    .client_ctx = c2, .handshake_timeout_ms = 300, .source_address = "127.0.0.22:9002"};
	ck_assert_int_eq(cs_transport_init(&t2, &loop, &tc), 0);
	ck_assert_int_eq(t2.init(&t2, 2, "127.0.0.22:9002"), 0);
	ck_assert_int_eq(t2.listen(&t2, test_accept_cb), 0);
	struct dial d;
	ck_assert_int_eq(dial(&t2, &d, 1, addr), 0);
	struct sockaddr_in peer;
	int fd = -1;
	uint64_t deadline = cs_mono_ms() + 5000;
	while (fd < 0 && cs_mono_ms() < deadline) {
		uv_run(&loop, UV_RUN_NOWAIT);
		sl = sizeof peer;
		fd = accept4(lfd, (struct sockaddr *)&peer, &sl, SOCK_NONBLOCK);
		if (fd < 0)
			usleep(1000);
	}
	ck_assert_int_ge(fd, 0);
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
	ck_assert_str_eq(ip, "127.0.0.22");
	close(fd);
	ck_assert(dial_wait(&d, 5000));
	ck_assert_int_eq(d.status, RAFT_NOCONNECTION);
	close(lfd);
	close_transport(&t2);
	cs_transport_free(&t2);
	SSL_CTX_free(c2);
}
END_TEST

static Suite *transport_suite(void)
{
	Suite *s = suite_create("transport");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_inbound_refusals);
	tcase_add_test(tc, test_forward_alpn);
	tcase_add_test(tc, test_outbound);
	tcase_add_test(tc, test_close_pending);
	tcase_add_test(tc, test_connect_deadline);
	tcase_add_test(tc, test_three_nodes);
	tcase_add_test(tc, test_claim_needs_membership);
	tcase_add_test(tc, test_source_address);
	tcase_add_test(tc, test_outbound_source);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	/* The server's main() does this first (docs/architecture.md, C1). */
	signal(SIGPIPE, SIG_IGN);
	setenv("UV_THREADPOOL_SIZE", "8", 0);
	cs_log_set_level(getenv("CS_DEBUG") ? CS_LOG_DEBUG : CS_LOG_WARN);
	SRunner *sr = srunner_create(transport_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
