/*
 * libFuzzer target for the cluster transport's framing (raft/transport.c) and what it
 * hands to c-raft: each input is the plaintext a peer holding a valid cluster certificate
 * (node-2, a voter) sends on one mutual-TLS connection to node 1's cluster port with ALPN
 * custos-raft. The cluster listener (server/cluster.c) does TLS, the transport reads
 * raft's handshake (protocol, id, address length and address), checks the certificate and
 * the claim, acks, and bridges the rest to a real raft node (c-raft 0.15's uv transport
 * decodes the message stream: append entries, votes, snapshots...) whose FSM is our LMDB
 * FSM (raft/fsm.c), so entries a peer manages to commit are applied too.
 *
 * Input: byte 0 bit 0 set: the harness sends a valid handshake for node 2 first (so the
 * fuzzer starts at raft's message framing); clear: the bytes are the handshake itself.
 * The rest is written inside TLS, then the connection is closed. Nothing may crash or
 * leak; raft's reaction (steps down, appends, applies) carries over between inputs, until
 * a peer's message makes c-raft shut itself down (it does when a leader contradicts a
 * committed entry): then the harness starts a fresh node.
 *
 * Each input costs a TLS handshake (a client thread with blocking OpenSSL, the server on
 * the loop in this thread), so this target runs at hundreds of inputs per second at best.
 */
#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "raft/node.h"
#include "raft/transport.h"
#include "raft/cluster.h"
#include "storage/cluster_tls.h"
#include "storage/txn.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PEER_ADDR "127.0.0.1:1" /* node 2's configured address: nothing listens there */

static char dir[64];
static uv_loop_t loop;
static struct cs_cluster_cred ca, n1, n2;
static SSL_CTX *sctx, *cctx, *peer_ctx;
static struct cs_cluster *cl;
static struct raft_uv_transport tr;
static struct cs_storage st;
static struct cs_raft_node node;
static int port;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void cleanup(void)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void on_active(void *ctx, bool active) {}

/* A fresh transport, store and raft node (voters 1 = us, 2 = the fuzzing peer). */
static void node_start(void)
{
	static unsigned generation;
	struct cs_transport_config tc = {.client_ctx = cctx,
					 .check_claim = cs_raft_node_check_claim,
					 .claim_ctx = &node,
					 .require_ip_san = true,
					 /* libFuzzer reports any malloc over 2 GB */
					 .max_message_bytes = 64u << 20};
	memset(&tr, 0, sizeof tr);
	if (cs_transport_init(&tr, &loop, &tc))
		abort();
	cs_cluster_set_handler(cl, CS_ALPN_RAFT, cs_transport_accept, &tr);
	char data[128], fsm[160], addr[64];
	snprintf(data, sizeof data, "%s/raft%u", dir, generation++);
	snprintf(fsm, sizeof fsm, "%s/fsm", data);
	snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
	memset(&st, 0, sizeof st);
	memset(&node, 0, sizeof node);
	if (cs_mkdir_p(data, 0700) || cs_storage_open(&st, fsm, 256u << 20))
		abort();
	if (cs_raft_node_init_transport(&node, &loop, &st, data, 1, addr, &tr, on_active, NULL))
		abort();
	raft_id ids[2] = {1, 2};
	const char *addrs[2] = {addr, PEER_ADDR};
	if (cs_raft_node_bootstrap_voters(&node, ids, addrs, 2) || cs_raft_node_start(&node))
		abort();
}

static bool node_closed;
static void on_node_closed(struct cs_raft_node *n)
{
	node_closed = true;
}

/* c-raft shuts itself down when a peer contradicts its committed log (a voter may do
 * that; it is not a crash): start over with a new node so later inputs still reach raft. */
static void node_restart(void)
{
	node_closed = false;
	cs_raft_node_close(&node, on_node_closed);
	while (!node_closed)
		uv_run(&loop, UV_RUN_ONCE);
	cs_cluster_set_handler(cl, CS_ALPN_RAFT, NULL, NULL);
	cs_transport_free(&tr);
	cs_storage_close(&st);
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	if (cs_mkdir_p(dir, 0700))
		abort();
	node_start();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[256];
	signal(SIGPIPE, SIG_IGN);
	cs_log_set_level(getenv("FUZZ_VERBOSE") ? CS_LOG_DEBUG : CS_LOG_ERROR + 1);
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(dir, sizeof dir, "%s/fuzz-transport-XXXXXX", base);
	if (!mkdtemp(dir))
		abort();
	atexit(cleanup);
	uv_loop_init(&loop);
	static const char *const ips[] = {"127.0.0.1"};
	if (cs_cluster_tls_gen_ca("fuzz", &ca, err, sizeof err) ||
	    cs_cluster_tls_gen_node(&ca, 1, ips, 1, &n1, err, sizeof err) ||
	    cs_cluster_tls_gen_node(&ca, 2, ips, 1, &n2, err, sizeof err))
		abort();
	sctx = cs_cluster_tls_server_ctx(ca.cert, n1.cert, n1.key, err, sizeof err);
	cctx = cs_cluster_tls_client_ctx(ca.cert, n1.cert, n1.key, err, sizeof err);
	peer_ctx = cs_cluster_tls_client_ctx(ca.cert, n2.cert, n2.key, err, sizeof err);
	if (!sctx || !cctx || !peer_ctx)
		abort();
	if (cs_cluster_listen(&cl, &loop, "127.0.0.1:0", sctx, err, sizeof err))
		abort();
	port = cs_cluster_port(cl);
	node_start();
	return 0;
}

/* ---------------------------------------------------------------- the peer */

struct peer {
	const uint8_t *data;
	size_t size;
	bool handshake;
	atomic_bool done;
};

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct timeval tv = {2, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	SSL *ssl = NULL;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
		goto out;
	ssl = SSL_new(peer_ctx);
	SSL_set_fd(ssl, fd);
	unsigned char alpn[64];
	size_t n = cs_cluster_tls_alpn(CS_ALPN_RAFT, alpn, sizeof alpn);
	SSL_set_alpn_protos(ssl, alpn, (unsigned)n);
	SSL_set1_host(ssl, "node-1");
	if (SSL_connect(ssl) != 1)
		goto out;
	if (p->handshake) {
		/* raft's preamble: u64 protocol 1, u64 id 2, u64 address length (padded to 8) */
		uint8_t msg[24 + 16] = {0};
		uint64_t v[3] = {1, 2, 16}; /* little-endian host */
		memcpy(msg, v, sizeof v);
		memcpy(msg + 24, PEER_ADDR, strlen(PEER_ADDR));
		uint8_t ack;
		if (SSL_write(ssl, msg, sizeof msg) <= 0 || SSL_read(ssl, &ack, 1) != 1)
			goto out;
	}
	if (p->size)
		SSL_write(ssl, p->data, (int)p->size);
	SSL_shutdown(ssl);
out:
	if (ssl)
		SSL_free(ssl);
	ERR_clear_error();
	close(fd);
	atomic_store(&p->done, true);
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	struct peer p = {data + 1, size - 1, data[0] & 1, false};
	pthread_t th;
	if (pthread_create(&th, NULL, peer_main, &p) != 0)
		abort();
	uint64_t deadline = cs_mono_ms() + 5000;
	while (!atomic_load(&p.done) && cs_mono_ms() < deadline) {
		uv_run(&loop, UV_RUN_NOWAIT);
		if (!atomic_load(&p.done))
			usleep(50);
	}
	pthread_join(th, NULL);
	/* Let the server side see the close and raft consume what was bridged. */
	for (int i = 0; i < 50; i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	if (raft_state(&node.raft) == RAFT_UNAVAILABLE)
		node_restart();
	return 0;
}
