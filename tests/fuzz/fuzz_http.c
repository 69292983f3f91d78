/*
 * libFuzzer target for the whole request pipeline: each input is the raw bytes a client
 * sends on one plain-HTTP connection to a -dev server running in this process (HTTP parser
 * and header handling in server/http*.c, query/body decoding in server/http_request.c,
 * path canonicalisation in server/core.c, token,
 * ACL, router, field coercion in server/backend.c, then the handler of whichever backend
 * the path reaches, over real storage: LMDB in a tmpfs directory, single-node c-raft).
 * Pipelined requests in one input are served in order. Nothing may crash, leak or hang
 * the loop; the server must answer or close.
 *
 * Set-up, once (LLVMFuzzerInitialize): the module registrations of server/main.c (keep
 * them in step when a module is added there), a -dev core whose root token is "root"
 * (the seeds send X-Vault-Token: root, so the fuzzer starts past authentication), its
 * listener on 127.0.0.1 with an ephemeral port. The unseal key the -dev set-up prints is
 * captured so the harness can unseal again.
 *
 * Per input: a uv_tcp_t client on the same loop connects, writes the input, half-closes
 * once the server owes no response (below), and reads until the server closes (or 3 s
 * pass: a request parked on something that never comes is abandoned, the connection
 * closed). Afterwards the harness repairs what a
 * request may legitimately have broken for the next inputs: a sealed node is unsealed, a
 * revoked root token is created again. Inputs asking for a raft step-down, peer removal or
 * demotion are skipped: on one node they only stall every later input behind an election.
 */
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <http_parser.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cmd/modules.h"
#include "audit/audit.h"
#include "auth/approle.h"
#include "auth/token.h"
#include "auth/userpass.h"
#include "engines/cubbyhole.h"
#include "engines/kv.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/secmem.h"
#include "lib/util.h"
#include "policy/store.h"
#include "server/core.h"
#include "server/policy_sys.h"
#include "server/ha.h"
#include "server/http.h"
#include "server/raft_sys.h"
#include "server/snapshot_sys.h"
#include "server/sys.h"
#include "server/wrap.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ROOT_TOKEN "root"

static uv_loop_t loop;
static struct cs_core core;
static struct cs_config cfg;
static char dir[64];
static int port;
static int ready;    /* 0 waiting, 1 ready, -1 failed */
static bool verbose; /* FUZZ_HTTP_VERBOSE set: responses go to stderr */
static uint8_t unseal_key[64];
static size_t unseal_key_len;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void cleanup(void)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void fuzz_handler(struct cs_http_req *h, void *ctx);

/* As cs_core_listen, with the harness's handler wrapper in front of the core's. */
static void dev_ready(struct cs_core *c, int status, void *ctx)
{
	char err[256];
	struct cs_http_listener *l = status ? NULL
					    : cs_http_listen(c->loop, &c->cfg->listeners[0],
							     fuzz_handler, c, err, sizeof err);
	if (!l) {
		ready = -1;
		return;
	}
	c->listeners[c->n_listeners++] = l;
	ready = 1;
}

/* The -dev banner goes to stdout; read the unseal key from it. */
static void capture_unseal_key(int memfd)
{
	char text[4096];
	ssize_t n = pread(memfd, text, sizeof text - 1, 0);
	if (n <= 0)
		abort();
	text[n] = '\0';
	char *p = strstr(text, "Unseal Key: ");
	if (!p)
		abort();
	p += strlen("Unseal Key: ");
	char *e = strchr(p, '\n');
	if (e)
		*e = '\0';
	size_t len;
	uint8_t *k = cs_b64_decode(p, strlen(p), &len);
	if (!k || len > sizeof unseal_key)
		abort();
	memcpy(unseal_key, k, len);
	unseal_key_len = len;
	free(k);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	signal(SIGPIPE, SIG_IGN);
	verbose = getenv("FUZZ_HTTP_VERBOSE") != NULL;
	cs_log_set_level(getenv("FUZZ_HTTP_LOG") ? CS_LOG_DEBUG : CS_LOG_ERROR);
	cs_secmem_set_mlock(false);
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(dir, sizeof dir, "%s/fuzz-http-XXXXXX", base);
	if (!mkdtemp(dir))
		abort();
	atexit(cleanup);

	cs_modules_register(&core); /* the server's own module table */
	cs_config_init(&cfg);
	cfg.dev = true;
	cfg.storage_path = strdup(dir);
	cfg.node_id = strdup("dev");
	cfg.n_listeners = 1;
	cfg.listeners[0].address = strdup("127.0.0.1:0");
	cfg.listeners[0].tls_disable = true;
	cfg.listeners[0].max_request_size = 1 << 20;
	cfg.dev_root_token_id = strdup(ROOT_TOKEN);
	cfg.disable_mlock = true;
	cs_config_finish(&cfg);

	uv_loop_init(&loop);
	if (cs_core_init(&core, &loop, &cfg)) {
		fprintf(stderr, "fuzz_http: %s\n", core.errmsg);
		abort();
	}
	cs_modules_register_late(&core);

	int memfd = memfd_create("banner", 0), saved = dup(1);
	fflush(stdout);
	dup2(memfd, 1);
	cs_core_dev_setup(&core, dev_ready, NULL);
	while (ready == 0)
		uv_run(&loop, UV_RUN_ONCE);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	if (ready < 0)
		abort();
	capture_unseal_key(memfd);
	close(memfd);
	port = cs_http_listener_port(core.listeners[0]);
	return 0;
}

/* ---------------------------------------------------------------- one connection */

/*
 * The client must not half-close while the server still owes a response: the listener
 * closes a connection whose peer sent EOF while a request is held (a write waiting for
 * raft), and the pipelined requests behind it would never run. So the harness counts the
 * requests the core started (a wrapper around its handler, which records the method) and
 * the responses that came back (http-parser in response mode; 1xx skipped, a HEAD
 * response has no body), and half-closes once every started request was answered, no
 * write-set is waiting for raft and the server has read every byte sent. The server then
 * finishes whatever the input left incomplete, and closes.
 */
#define MAX_PIPELINED 256

struct client {
	uv_tcp_t tcp;
	uv_connect_t connect;
	uv_write_t write;
	uv_shutdown_t shutdown;
	uv_timer_t timer;
	uv_check_t check;
	uv_buf_t out;
	char in[65536];
	http_parser parser;
	bool written, shut;
	int closing; /* handles still to close */
	bool done;
	int server_fd; /* the server's end of the connection, once found */
	struct sockaddr_storage local;
	/* methods of the requests the core started, in order; responses matched to them */
	bool head[MAX_PIPELINED];
	unsigned started, answered;
};

static struct client *cur; /* the connection of the current input */

static void fuzz_handler(struct cs_http_req *h, void *ctx)
{
	if (cur) {
		if (cur->started < MAX_PIPELINED)
			cur->head[cur->started] = strcmp(h->method, "HEAD") == 0;
		cur->started++;
	}
	cs_core_handle_http(h, ctx);
}

static int on_headers_complete(http_parser *p)
{
	struct client *c = p->data;
	if (p->status_code / 100 == 1)
		return 0;
	/* 1: the response to a HEAD carries no body, whatever its Content-Length says. */
	return c->answered < c->started && c->answered < MAX_PIPELINED && c->head[c->answered];
}

static int on_message_complete(http_parser *p)
{
	struct client *c = p->data;
	if (p->status_code / 100 != 1)
		c->answered++;
	return 0;
}

static const http_parser_settings response_settings = {
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

static void client_closed(uv_handle_t *h)
{
	struct client *c = h->data;
	if (--c->closing == 0)
		c->done = true;
}

static void client_end(struct client *c)
{
	if (c->closing)
		return;
	c->closing = 3;
	uv_timer_stop(&c->timer);
	uv_check_stop(&c->check);
	uv_close((uv_handle_t *)&c->timer, client_closed);
	uv_close((uv_handle_t *)&c->check, client_closed);
	uv_close((uv_handle_t *)&c->tcp, client_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct client *c = h->data;
	*buf = uv_buf_init(c->in, sizeof c->in);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct client *c = s->data;
	if (n > 0) {
		if (verbose)
			fwrite(buf->base, 1, (size_t)n, stderr);
		/* A response the parser cannot follow only stops the counting; the timer
		 * still ends the connection. */
		http_parser_execute(&c->parser, &response_settings, buf->base, (size_t)n);
	}
	if (n < 0)
		client_end(c); /* EOF or reset: the server closed */
}

static void on_shutdown(uv_shutdown_t *req, int status) {}

static void find_server_fd(uv_handle_t *h, void *arg)
{
	struct client *c = arg;
	uv_os_fd_t fd;
	struct sockaddr_storage peer;
	int len = sizeof peer;
	if (c->server_fd >= 0 || h->type != UV_TCP || h == (uv_handle_t *)&c->tcp ||
	    uv_fileno(h, &fd) != 0 ||
	    uv_tcp_getpeername((uv_tcp_t *)h, (struct sockaddr *)&peer, &len) != 0)
		return;
	if (memcmp(&peer, &c->local, sizeof(struct sockaddr_in)) == 0)
		c->server_fd = fd;
}

/* After every loop iteration's I/O: half-close once the server owes nothing. */
static void on_check(uv_check_t *h)
{
	struct client *c = h->data;
	if (!c->written || c->shut || c->closing || c->answered < c->started ||
	    cs_storage_pending(&core.st) > 0)
		return;
	if (c->server_fd < 0)
		uv_walk(&loop, find_server_fd, c);
	int unread = 0;
	if (c->server_fd >= 0 && ioctl(c->server_fd, FIONREAD, &unread) == 0 && unread > 0)
		return;
	c->shut = true;
	c->shutdown.data = c;
	if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown))
		client_end(c);
}

static void on_write(uv_write_t *w, int status)
{
	struct client *c = w->data;
	if (status) {
		client_end(c);
		return;
	}
	c->written = true;
}

static void on_connect(uv_connect_t *req, int status)
{
	struct client *c = req->data;
	if (status) {
		client_end(c);
		return;
	}
	int len = sizeof c->local;
	uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&c->local, &len);
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	c->write.data = c;
	if (uv_write(&c->write, (uv_stream_t *)&c->tcp, &c->out, 1, on_write))
		client_end(c);
	uv_check_start(&c->check, on_check);
}

static void on_timeout(uv_timer_t *t)
{
	client_end(t->data);
}

static void send_one(const uint8_t *data, size_t size)
{
	struct client *c = calloc(1, sizeof *c);
	c->out = uv_buf_init((char *)data, (unsigned)size);
	c->server_fd = -1;
	http_parser_init(&c->parser, HTTP_RESPONSE);
	c->parser.data = c;
	uv_tcp_init(&loop, &c->tcp);
	uv_timer_init(&loop, &c->timer);
	uv_check_init(&loop, &c->check);
	c->tcp.data = c->timer.data = c->check.data = c->connect.data = c;
	struct sockaddr_in sa;
	uv_ip4_addr("127.0.0.1", port, &sa);
	uv_timer_start(&c->timer, on_timeout, 3000, 0);
	cur = c;
	if (uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&sa, on_connect))
		client_end(c);
	while (!c->done)
		uv_run(&loop, UV_RUN_ONCE);
	cur = NULL;
	free(c);
}

/* ---------------------------------------------------------------- repairs */

static void committed(void *data, int status)
{
	*(int *)data = status + 1;
}

static void ensure_root_token(void)
{
	struct cs_txn t;
	cJSON *entry = NULL;
	cs_txn_begin(&t, &core.st, core.kr);
	int rc = core.tokens.lookup(&core, &t, ROOT_TOKEN, &entry);
	cJSON_Delete(entry);
	if (rc == 0) {
		cs_txn_abort(&t);
		return;
	}
	char out[160];
	rc = core.tokens.create_root(&core, &t, ROOT_TOKEN, out, sizeof out);
	if (rc) {
		cs_txn_abort(&t);
		return;
	}
	int st = 0;
	bool pending = false;
	if (cs_txn_commit(&t, committed, &st, &pending) == 0 && pending)
		while (st == 0)
			uv_run(&loop, UV_RUN_ONCE);
}

static void repair(void)
{
	if (!core.kr && core.initialized) {
		char err[256];
		bool done = false;
		cs_core_unseal_submit(&core, unseal_key, unseal_key_len, &done, err, sizeof err);
		for (int i = 0; i < 1000 && !core.active; i++)
			uv_run(&loop, UV_RUN_NOWAIT);
	}
	if (core.kr && core.active)
		ensure_root_token();
}

static bool contains(const uint8_t *data, size_t size, const char *needle)
{
	/* (the null check also keeps gcc's -Wnonnull quiet under -fsanitize=undefined) */
	return data && memmem(data, size, needle, strlen(needle)) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0 || contains(data, size, "step-down") || contains(data, size, "remove-peer") ||
	    contains(data, size, "demote"))
		return 0;
	send_one(data, size);
	repair();
	return 0;
}
