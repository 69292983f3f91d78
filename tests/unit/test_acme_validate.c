/* ACME challenge validation (engines/acme_validate.c, acme_alpn.c, lib/dns.c and the GET
 * of lib/curlm.c) against real servers on 127.0.0.1 started here: an HTTP server on the
 * test's own libuv loop, dnsmasq (Debian's dnsmasq-base) for TXT and A records, and an
 * OpenSSL TLS server in a thread presenting tls-alpn-01 certificates made here. Every
 * test runs the loop until the callback and then until every handle closed
 * (uv_loop_close must succeed: nothing left open). */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "engines/acme_validate.h"
#include "engines/acme_validate_internal.h"
#include "lib/buf.h"
#include "lib/util.h"
#include "fixtures.h"

#define KA      "tok123.thumbprint_of_the_account_key"
#define DNSMASQ "/usr/sbin/dnsmasq"

static char *ka_b64(void)
{
	uint8_t d[32];
	SHA256((const uint8_t *)KA, strlen(KA), d);
	return cs_b64url_encode(d, sizeof d);
}

/* ---- the callback ---- */

struct result {
	bool called;
	int count, ok;
	char type[128], detail[512];
};

static void got(void *arg, int ok, const char *type, const char *detail)
{
	struct result *r = arg;
	r->called = true;
	r->count++;
	r->ok = ok;
	snprintf(r->type, sizeof r->type, "%s", type ? type : "");
	snprintf(r->detail, sizeof r->detail, "%s", detail ? detail : "");
}

/* ---- an HTTP server on the loop ---- */

struct http_conn {
	uv_tcp_t tcp;
	struct http_srv *srv;
	struct cs_buf in;
	struct http_conn *next;
	bool answered;
};

struct http_srv {
	uv_tcp_t listener;
	int port;
	bool hang;    /* accept and read, never answer */
	int got_data; /* connections on which some request bytes arrived */
	int requests;
	struct http_conn *conns;
};

static void conn_closed(uv_handle_t *h)
{
	struct http_conn *c = h->data;
	cs_buf_free(&c->in);
	free(c);
}

static void conn_close(struct http_conn *c)
{
	for (struct http_conn **pp = &c->srv->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void written(uv_write_t *w, int status)
{
	struct http_conn *c = w->data;
	free(((uv_buf_t *)(w + 1))->base);
	free(w);
	conn_close(c);
}

static void respond(struct http_conn *c, const char *path)
{
	struct http_srv *s = c->srv;
	struct cs_buf r = CS_BUF_INIT;
	const char *tok = strrchr(path, '/');
	tok = tok ? tok + 1 : "";
	char body[1024] = "";
	int status = 200;
	char loc[512] = "";
	if (strncmp(path, "/.well-known/acme-challenge/", 28) != 0)
		status = 404;
	else if (strcmp(tok, "good") == 0)
		snprintf(body, sizeof body, "%s\r\n \t\n", KA);
	else if (strcmp(tok, "lead") == 0) /* leading whitespace is not ignored */
		snprintf(body, sizeof body, " %s", KA);
	else if (strcmp(tok, "wrong") == 0)
		snprintf(body, sizeof body, "%s", "tok123.somebody_elses_thumbprint");
	else if (strcmp(tok, "big") == 0) {
		snprintf(body, sizeof body, "%s", KA);
		size_t n = strlen(body);
		memset(body + n, ' ', 700 - n); /* the right answer, padded past the cap */
		body[700] = '\0';
	} else if (strcmp(tok, "redir") == 0)
		snprintf(loc, sizeof loc, "http://127.0.0.1:%d/.well-known/acme-challenge/good",
			 s->port);
	else if (strcmp(tok, "redirrel") == 0)
		snprintf(loc, sizeof loc, "/.well-known/acme-challenge/good");
	else if (strcmp(tok, "redirname") == 0)
		snprintf(loc, sizeof loc,
			 "http://web.example.test:%d/.well-known/acme-challenge/good", s->port);
	else if (strcmp(tok, "redirftp") == 0)
		snprintf(loc, sizeof loc, "ftp://127.0.0.1:%d/good", s->port);
	else if (strcmp(tok, "redirport") == 0)
		snprintf(loc, sizeof loc, "http://127.0.0.1:1/.well-known/acme-challenge/good");
	else if (strcmp(tok, "rediruser") == 0)
		snprintf(loc, sizeof loc, "http://u:p@127.0.0.1:%d/.well-known/acme-challenge/good",
			 s->port);
	else if (strcmp(tok, "loop") == 0)
		snprintf(loc, sizeof loc, "/.well-known/acme-challenge/loop");
	else
		status = 404;
	if (loc[0])
		status = 302;
	cs_buf_printf(&r, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n", status,
		      strlen(body));
	if (loc[0])
		cs_buf_printf(&r, "Location: %s\r\n", loc);
	cs_buf_printf(&r, "\r\n%s", body);
	uv_write_t *w = malloc(sizeof *w + sizeof(uv_buf_t));
	uv_buf_t *b = (uv_buf_t *)(w + 1);
	size_t len = r.len;
	*b = uv_buf_init(cs_buf_steal(&r, NULL), (unsigned)len);
	w->data = c;
	uv_write(w, (uv_stream_t *)&c->tcp, b, 1, written);
}

static void conn_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
	b->base = malloc(sz);
	b->len = sz;
}

static void conn_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct http_conn *c = st->data;
	if (n > 0) {
		if (!c->in.len)
			c->srv->got_data++;
		cs_buf_append(&c->in, b->base, (size_t)n);
	}
	free(b->base);
	if (n < 0) {
		if (!c->answered)
			conn_close(c);
		return;
	}
	cs_buf_putc(&c->in, '\0');
	c->in.len--;
	if (c->srv->hang || c->answered || !strstr(c->in.data, "\r\n\r\n"))
		return;
	c->answered = true;
	c->srv->requests++;
	char path[600] = "";
	sscanf(c->in.data, "GET %599s ", path);
	uv_read_stop(st);
	respond(c, path);
}

static void on_conn(uv_stream_t *l, int status)
{
	struct http_srv *s = l->data;
	struct http_conn *c = calloc(1, sizeof *c);
	c->srv = s;
	c->in = (struct cs_buf)CS_BUF_INIT;
	uv_tcp_init(l->loop, &c->tcp);
	c->tcp.data = c;
	ck_assert_int_eq(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
	c->next = s->conns;
	s->conns = c;
	uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read);
}

static void http_start_on(uv_loop_t *loop, struct http_srv *s, bool hang, const char *ip)
{
	memset(s, 0, sizeof *s);
	s->hang = hang;
	struct sockaddr_storage a;
	if (strchr(ip, ':'))
		uv_ip6_addr(ip, 0, (struct sockaddr_in6 *)&a);
	else
		uv_ip4_addr(ip, 0, (struct sockaddr_in *)&a);
	uv_tcp_init(loop, &s->listener);
	s->listener.data = s;
	int rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&a, 0);
	ck_assert_msg(rc == 0, "cannot listen on %s: %s", ip, uv_strerror(rc));
	ck_assert_int_eq(uv_listen((uv_stream_t *)&s->listener, 16, on_conn), 0);
	struct sockaddr_storage got_addr;
	int len = sizeof got_addr;
	uv_tcp_getsockname(&s->listener, (struct sockaddr *)&got_addr, &len);
	s->port =
	    ntohs(got_addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got_addr)->sin6_port
						 : ((struct sockaddr_in *)&got_addr)->sin_port);
}

static void http_start(uv_loop_t *loop, struct http_srv *s, bool hang)
{
	http_start_on(loop, s, hang, "127.0.0.1");
}

static void http_stop(struct http_srv *s)
{
	while (s->conns)
		conn_close(s->conns);
	uv_close((uv_handle_t *)&s->listener, NULL);
}

/* ---- dnsmasq, one per test process (started in main, inherited by the forks) ---- */

static pid_t dnsmasq_pid;
static int dns_port;
static char dns_missing[256];

static int free_port(int type)
{
	int fd = socket(AF_INET, type, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	bind(fd, (struct sockaddr *)&a, sizeof a);
	socklen_t l = sizeof a;
	getsockname(fd, (struct sockaddr *)&a, &l);
	close(fd);
	return ntohs(a.sin_port);
}

static bool udp_port_taken(int port)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	bool taken = bind(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno == EADDRINUSE;
	close(fd);
	return taken;
}

/* A port free for both UDP and TCP (dnsmasq listens on both), held by nobody. */
static int free_dns_port(void)
{
	for (;;) {
		int p = free_port(SOCK_DGRAM);
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET,
					.sin_port = htons((uint16_t)p),
					.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
		close(fd);
		if (ok)
			return p;
	}
}

/* One try on a fresh port: true once it listens; dns_missing says why not. */
static bool dnsmasq_try(void)
{
	char *want = ka_b64();
	char port[32], user[128], txt_ok[200], txt_multi1[200], txt_multi2[200];
	dns_port = free_dns_port();
	snprintf(port, sizeof port, "--port=%d", dns_port);
	struct passwd *pw = getpwuid(getuid());
	snprintf(user, sizeof user, "--user=%s", pw ? pw->pw_name : "root");
	snprintf(txt_ok, sizeof txt_ok, "--txt-record=_acme-challenge.example.test,%s", want);
	snprintf(txt_multi1, sizeof txt_multi1,
		 "--txt-record=_acme-challenge.multi.example.test,%s", "not-this-one");
	snprintf(txt_multi2, sizeof txt_multi2,
		 "--txt-record=_acme-challenge.multi.example.test,%s", want);
	free(want);
	dnsmasq_pid = fork();
	if (dnsmasq_pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlives a test binary that was killed */
		freopen("/dev/null", "w", stdout);
		freopen("/dev/null", "w", stderr);
		execl(DNSMASQ, DNSMASQ, "--no-daemon", port, "--listen-address=127.0.0.1",
		      "--bind-interfaces", "--no-resolv", "--no-hosts", "--pid-file=", user, txt_ok,
		      txt_multi1, txt_multi2,
		      "--txt-record=_acme-challenge.wrong.example.test,nope",
		      "--host-record=web.example.test,127.0.0.1",
		      "--host-record=tls.example.test,127.0.0.1", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && !udp_port_taken(dns_port); i++) {
		int st;
		if (waitpid(dnsmasq_pid, &st, WNOHANG) == dnsmasq_pid) {
			/* 2: the port was taken meanwhile (another test); 127: exec failed */
			snprintf(dns_missing, sizeof dns_missing,
				 "dnsmasq exited at start (status %d)",
				 WIFEXITED(st) ? WEXITSTATUS(st) : -1);
			dnsmasq_pid = 0;
			return false;
		}
		usleep(10000);
	}
	if (!udp_port_taken(dns_port)) {
		snprintf(dns_missing, sizeof dns_missing, "dnsmasq did not listen on %d", dns_port);
		kill(dnsmasq_pid, SIGTERM);
		waitpid(dnsmasq_pid, NULL, 0);
		dnsmasq_pid = 0;
		return false;
	}
	dns_missing[0] = '\0';
	return true;
}

static void dnsmasq_start(void)
{
	if (access(DNSMASQ, X_OK) != 0) {
		snprintf(dns_missing, sizeof dns_missing,
			 DNSMASQ " is missing: install dnsmasq-base (scripts/install-deps.sh)");
		return;
	}
	for (int i = 0; i < 5 && !dnsmasq_try(); i++)
		;
}

static void dnsmasq_stop(void)
{
	if (dnsmasq_pid > 0) {
		kill(dnsmasq_pid, SIGTERM);
		waitpid(dnsmasq_pid, NULL, 0);
	}
}

static const char *resolver(char *buf, size_t n)
{
	ck_assert_msg(dns_missing[0] == '\0', "%s", dns_missing);
	snprintf(buf, n, "127.0.0.1:%d", dns_port);
	return buf;
}

/* ---- running a check ---- */

static void walk_print(uv_handle_t *h, void *arg)
{
	fprintf(stderr, "open handle: %s active=%d closing=%d\n", uv_handle_type_name(h->type),
		uv_is_active(h), uv_is_closing(h));
}

static void drain(uv_loop_t *loop)
{
	for (int i = 0; i < 100 && uv_run(loop, UV_RUN_NOWAIT); i++)
		usleep(10000);
	if (uv_loop_alive(loop))
		uv_walk(loop, walk_print, NULL); /* say what is left before the timeout */
	uv_run(loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(loop), 0); /* every handle closed: nothing leaked open */
}

/* Run one check against whatever servers are up; the servers are stopped by `stop`. */
static void run_check(uv_loop_t *loop, const struct cs_acme_check *c, struct result *r)
{
	memset(r, 0, sizeof *r);
	struct cs_acme_checker *ch = NULL;
	ck_assert_int_eq(cs_acme_check_start(loop, c, got, r, &ch), 0);
	ck_assert_ptr_nonnull(ch);
	ck_assert(!r->called); /* never from inside start */
	ck_assert_msg(cs_fx_run_until(loop, &r->called, 20000), "no callback");
}

static void http_case(const char *token, const char *ident, bool with_dns, struct result *r)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct http_srv s;
	http_start(&loop, &s, false);
	char rb[64];
	struct cs_acme_check c = {.type = "http-01",
				  .identifier = ident,
				  .token = token,
				  .key_authorization = KA,
				  .http_port = (uint16_t)s.port,
				  .timeout_ms = 5000,
				  .dns_resolver = with_dns ? resolver(rb, sizeof rb) : NULL};
	run_check(&loop, &c, r);
	http_stop(&s);
	drain(&loop);
	ck_assert_int_eq(r->count, 1);
}

#define ERR(x) "urn:ietf:params:acme:error:" x

START_TEST(http_valid)
{
	struct result r;
	http_case("good", "127.0.0.1", false, &r);
	ck_assert_msg(r.ok == 1, "%s %s", r.type, r.detail);
	http_case("good", "web.example.test", true, &r); /* a name, resolved by dnsmasq */
	ck_assert_msg(r.ok == 1, "%s %s", r.type, r.detail);
}
END_TEST

/* An IPv6 identifier: the URL brackets it (RFC 8738 §3, RFC 3986). */
START_TEST(http_valid_ipv6)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct http_srv s;
	http_start_on(&loop, &s, false, "::1");
	struct cs_acme_check c = {.type = "http-01",
				  .identifier = "::1",
				  .token = "good",
				  .key_authorization = KA,
				  .http_port = (uint16_t)s.port,
				  .timeout_ms = 5000};
	struct result r;
	run_check(&loop, &c, &r);
	http_stop(&s);
	drain(&loop);
	ck_assert_msg(r.ok == 1, "%s %s", r.type, r.detail);
	ck_assert_int_eq(s.requests, 1);
}
END_TEST

START_TEST(http_wrong_body)
{
	struct result r;
	http_case("wrong", "127.0.0.1", false, &r);
	ck_assert_int_eq(r.ok, 0);
	ck_assert_str_eq(r.type, ERR("incorrectResponse"));
	ck_assert_ptr_nonnull(strstr(r.detail, "not the key authorization"));
	http_case("lead", "127.0.0.1", false, &r); /* only trailing whitespace is ignored */
	ck_assert_int_eq(r.ok, 0);
	ck_assert_str_eq(r.type, ERR("incorrectResponse"));
}
END_TEST

START_TEST(http_not_found)
{
	struct result r;
	http_case("nothing-here", "127.0.0.1", false, &r);
	ck_assert_int_eq(r.ok, 0);
	ck_assert_str_eq(r.type, ERR("incorrectResponse"));
	ck_assert_ptr_nonnull(strstr(r.detail, "status 404"));
}
END_TEST

START_TEST(http_oversize)
{
	struct result r;
	http_case("big", "127.0.0.1", false, &r);
	ck_assert_int_eq(r.ok, 0);
	ck_assert_str_eq(r.type, ERR("incorrectResponse"));
	ck_assert_msg(strstr(r.detail, "over 512 bytes"), "%s", r.detail);
}
END_TEST

START_TEST(http_redirects)
{
	struct result r;
	http_case("redir", "127.0.0.1", false, &r);
	ck_assert_msg(r.ok == 1, "%s %s", r.type, r.detail);
	http_case("redirrel", "127.0.0.1", false, &r);
	ck_assert_msg(r.ok == 1, "%s %s", r.type, r.detail);
	http_case("redirname", "127.0.0.1", true, &r); /* the new host resolved by dnsmasq */
	ck_assert_msg(r.ok == 1, "%s %s", r.type, r.detail);

	http_case("redirftp", "127.0.0.1", false, &r);
	ck_assert_int_eq(r.ok, 0);
	ck_assert_msg(strstr(r.detail, "scheme other than http"), "%s", r.detail);
	http_case("redirport", "127.0.0.1", false, &r);
	ck_assert_int_eq(r.ok, 0);
	ck_assert_msg(strstr(r.detail, "port other than 80 or 443"), "%s", r.detail);
	http_case("rediruser", "127.0.0.1", false, &r);
	ck_assert_int_eq(r.ok, 0);
	ck_assert_msg(strstr(r.detail, "user information"), "%s", r.detail);
	http_case("loop", "127.0.0.1", false, &r);
	ck_assert_int_eq(r.ok, 0);
	ck_assert_msg(strstr(r.detail, "more than 10 redirects"), "%s", r.detail);
}
END_TEST

START_TEST(http_timeout)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct http_srv s;
	http_start(&loop, &s, true);
	struct cs_acme_check c = {.type = "http-01",
				  .identifier = "127.0.0.1",
				  .token = "good",
				  .key_authorization = KA,
				  .http_port = (uint16_t)s.port,
				  .timeout_ms = 300};
	struct result r;
	run_check(&loop, &c, &r);
	http_stop(&s);
	drain(&loop);
	ck_assert_int_eq(r.ok, 0);
	ck_assert_str_eq(r.type, ERR("connection"));
	ck_assert_msg(strstr(r.detail, "no answer within 300 ms"), "%s", r.detail);
}
END_TEST

START_TEST(http_refused)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct cs_acme_check c = {.type = "http-01",
				  .identifier = "127.0.0.1",
				  .token = "good",
				  .key_authorization = KA,
				  .http_port = (uint16_t)free_port(SOCK_STREAM)};
	struct result r;
	run_check(&loop, &c, &r);
	drain(&loop);
	ck_assert_int_eq(r.ok, 0);
	ck_assert_str_eq(r.type, ERR("connection"));
}
END_TEST

START_TEST(bad_input)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct cs_acme_checker *ch;
	struct result r = {0};
	struct cs_acme_check c = {
	    .type = "smtp-01", .identifier = "a.test", .token = "t", .key_authorization = KA};
	ck_assert_int_ne(cs_acme_check_start(&loop, &c, got, &r, &ch), 0);
	c.type = "dns-01";
	c.dns_resolver = "resolver.example:53"; /* only an address */
	ck_assert_int_ne(cs_acme_check_start(&loop, &c, got, &r, &ch), 0);
	c.dns_resolver = NULL;
	/* Refused identifiers come back through the callback, later. */
	const struct {
		const char *type, *ident, *token, *err;
	} cases[] = {
	    {"dns-01", "127.0.0.1", "t", ERR("rejectedIdentifier")},
	    {"http-01", "*.example.test", "t", ERR("rejectedIdentifier")},
	    {"tls-alpn-01", "*.example.test", "t", ERR("rejectedIdentifier")},
	    {"http-01", "a b.test", "t", ERR("rejectedIdentifier")},
	    {"http-01", "evil.test/x?", "t", ERR("rejectedIdentifier")},
	    {"http-01", "a.test", "../x", ERR("malformed")},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		c.type = cases[i].type;
		c.identifier = cases[i].ident;
		c.token = cases[i].token;
		run_check(&loop, &c, &r);
		ck_assert_int_eq(r.ok, 0);
		ck_assert_str_eq(r.type, cases[i].err);
	}
	drain(&loop);
}
END_TEST

/* ---- dns-01 ---- */

static void dns_case(const char *ident, struct result *r)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	char rb[64];
	struct cs_acme_check c = {.type = "dns-01",
				  .identifier = ident,
				  .token = "tok123",
				  .key_authorization = KA,
				  .dns_resolver = resolver(rb, sizeof rb),
				  .timeout_ms = 5000};
	run_check(&loop, &c, r);
	drain(&loop);
	ck_assert_int_eq(r->count, 1);
}

START_TEST(dns_valid)
{
	struct result r;
	dns_case("example.test", &r);
	ck_assert_msg(r.ok == 1, "%s %s", r.type, r.detail);
	dns_case("*.example.test", &r); /* a wildcard's record is at the base name */
	ck_assert_msg(r.ok == 1, "%s %s", r.type, r.detail);
	dns_case("multi.example.test", &r); /* any matching record wins */
	ck_assert_msg(r.ok == 1, "%s %s", r.type, r.detail);
}
END_TEST

START_TEST(dns_wrong_and_missing)
{
	struct result r;
	dns_case("wrong.example.test", &r);
	ck_assert_int_eq(r.ok, 0);
	ck_assert_str_eq(r.type, ERR("incorrectResponse"));
	dns_case("missing.example.test", &r);
	ck_assert_int_eq(r.ok, 0);
	ck_assert_str_eq(r.type, ERR("dns"));
	ck_assert_msg(strstr(r.detail, "_acme-challenge.missing.example.test"), "%s", r.detail);
}
END_TEST

/* A resolver that never answers: a UDP socket nobody reads. */
static int silent_udp(int *port)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	bind(fd, (struct sockaddr *)&a, sizeof a);
	socklen_t l = sizeof a;
	getsockname(fd, (struct sockaddr *)&a, &l);
	*port = ntohs(a.sin_port);
	return fd;
}

START_TEST(dns_timeout)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	int port;
	int fd = silent_udp(&port);
	char rb[64];
	snprintf(rb, sizeof rb, "127.0.0.1:%d", port);
	struct cs_acme_check c = {.type = "dns-01",
				  .identifier = "example.test",
				  .token = "t",
				  .key_authorization = KA,
				  .dns_resolver = rb,
				  .timeout_ms = 300};
	struct result r;
	run_check(&loop, &c, &r);
	drain(&loop);
	close(fd);
	ck_assert_int_eq(r.ok, 0);
	ck_assert_str_eq(r.type, ERR("dns"));
	ck_assert_msg(strstr(r.detail, "no answer within 300 ms"), "%s", r.detail);
}
END_TEST

/* ---- tls-alpn-01: certificates and a TLS server thread ---- */

struct cert_spec {
	const char *dns, *dns2, *ip; /* SANs */
	const char *ka;              /* NULL: no acmeIdentifier */
	bool noncritical, twice, raw_digest, other_issuer, unknown_critical;
};

static void add_ext(X509 *x, const char *oid, bool crit, const uint8_t *der, int len)
{
	ASN1_OBJECT *o = OBJ_txt2obj(oid, 1);
	ASN1_OCTET_STRING *v = ASN1_OCTET_STRING_new();
	ASN1_OCTET_STRING_set(v, der, len);
	X509_EXTENSION *e = X509_EXTENSION_create_by_OBJ(NULL, o, crit, v);
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	ASN1_OCTET_STRING_free(v);
	ASN1_OBJECT_free(o);
}

static X509 *make_cert(EVP_PKEY *key, const struct cert_spec *sp)
{
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	X509_NAME *n = X509_NAME_new();
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const uint8_t *)"acme", -1, -1, 0);
	X509_set_subject_name(x, n);
	if (sp->other_issuer)
		X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const uint8_t *)"else", -1, -1,
					   0);
	X509_set_issuer_name(x, n);
	X509_NAME_free(n);
	GENERAL_NAMES *gns = sk_GENERAL_NAME_new_null();
	const char *dnsn[] = {sp->dns, sp->dns2};
	for (int i = 0; i < 2; i++)
		if (dnsn[i]) {
			GENERAL_NAME *g = GENERAL_NAME_new();
			ASN1_IA5STRING *s = ASN1_IA5STRING_new();
			ASN1_STRING_set(s, dnsn[i], -1);
			GENERAL_NAME_set0_value(g, GEN_DNS, s);
			sk_GENERAL_NAME_push(gns, g);
		}
	if (sp->ip) {
		GENERAL_NAME *g = GENERAL_NAME_new();
		ASN1_OCTET_STRING *s = a2i_IPADDRESS(sp->ip);
		GENERAL_NAME_set0_value(g, GEN_IPADD, s);
		sk_GENERAL_NAME_push(gns, g);
	}
	X509_add1_ext_i2d(x, NID_subject_alt_name, gns, 0, X509V3_ADD_DEFAULT);
	GENERAL_NAMES_free(gns);
	if (sp->ka) {
		uint8_t d[32];
		SHA256((const uint8_t *)sp->ka, strlen(sp->ka), d);
		uint8_t der[34] = {0x04, 32};
		memcpy(der + 2, d, 32);
		for (int i = 0; i < (sp->twice ? 2 : 1); i++)
			add_ext(x, "1.3.6.1.5.5.7.1.31", !sp->noncritical, sp->raw_digest ? d : der,
				sp->raw_digest ? 32 : 34);
	}
	if (sp->unknown_critical) {
		uint8_t der[] = {0x05, 0x00};
		add_ext(x, "1.3.6.1.4.1.99999.1", true, der, sizeof der);
	}
	EVP_PKEY *signer = key;
	ck_assert(X509_sign(x, signer, EVP_sha256()) > 0);
	return x;
}

static uint8_t ka_digest[32];

static int check(const struct cert_spec *sp, const char *ident, char *detail)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = make_cert(k, sp);
	/* As it crosses the network: DER bytes parsed by OpenSSL. */
	uint8_t *der = NULL;
	int len = i2d_X509(x, &der);
	const uint8_t *p = der;
	X509 *y = d2i_X509(NULL, &p, len);
	int rc = cs_acme_alpn_check_cert(y, ident, ka_digest, detail, 256);
	X509_free(y);
	OPENSSL_free(der);
	X509_free(x);
	EVP_PKEY_free(k);
	return rc;
}

START_TEST(alpn_cert_rules)
{
	SHA256((const uint8_t *)KA, strlen(KA), ka_digest);
	char d[256];
	ck_assert_int_eq(
	    check(&(struct cert_spec){.dns = "a.example.test", .ka = KA}, "a.example.test", d), 0);
	ck_assert_int_eq(
	    check(&(struct cert_spec){.dns = "A.Example.TEST", .ka = KA}, "a.example.test", d),
	    0); /* case-insensitive */
	ck_assert_int_eq(check(&(struct cert_spec){.ip = "127.0.0.1", .ka = KA}, "127.0.0.1", d),
			 0);
	ck_assert_int_eq(check(&(struct cert_spec){.ip = "::1", .ka = KA}, "::1", d), 0);

	const struct {
		struct cert_spec sp;
		const char *ident, *why;
	} bad[] = {
	    {{.dns = "a.example.test", .ka = "other.key_authz"}, "a.example.test", "SHA-256"},
	    {{.dns = "a.example.test"}, "a.example.test", "no acmeIdentifier"},
	    {{.dns = "a.example.test", .ka = KA, .noncritical = true},
	     "a.example.test",
	     "not critical"},
	    {{.dns = "a.example.test", .ka = KA, .twice = true},
	     "a.example.test",
	     "more than one acmeIdentifier"},
	    {{.dns = "a.example.test", .ka = KA, .raw_digest = true},
	     "a.example.test",
	     "not one OCTET STRING"},
	    {{.dns = "b.example.test", .ka = KA}, "a.example.test", "not the identifier"},
	    {{.dns = "a.example.test", .dns2 = "b.example.test", .ka = KA},
	     "a.example.test",
	     "exactly one"},
	    {{.ip = "127.0.0.2", .ka = KA}, "127.0.0.1", "not the identifier"},
	    {{.dns = "127.0.0.1", .ka = KA}, "127.0.0.1", "not the identifier"},
	    {{.dns = "a.example.test", .ka = KA, .other_issuer = true},
	     "a.example.test",
	     "not self-signed"},
	    {{.dns = "a.example.test", .ka = KA, .unknown_critical = true},
	     "a.example.test",
	     "unknown critical"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		d[0] = '\0';
		ck_assert_int_ne(check(&bad[i].sp, bad[i].ident, d), 0);
		ck_assert_msg(strstr(d, bad[i].why), "case %zu: %s", i, d);
	}
}
END_TEST

enum tls_mode { TLS_ACME, TLS_NO_ALPN };

struct tls_srv {
	int fd, port;
	SSL_CTX *ctx;
	enum tls_mode mode;
	pthread_t thr;
	atomic_bool stop;
	char sni[256];
	atomic_int handshakes;
};

static int alpn_select(SSL *s, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned inlen, void *arg)
{
	struct tls_srv *t = arg;
	if (t->mode == TLS_NO_ALPN)
		return SSL_TLSEXT_ERR_NOACK;
	unsigned char *o;
	if (SSL_select_next_proto(&o, outlen,
				  (const unsigned char *)"\x0a"
							 "acme-tls/1",
				  11, in, inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = o;
	return SSL_TLSEXT_ERR_OK;
}

static void *tls_thread(void *arg)
{
	struct tls_srv *t = arg;
	while (!atomic_load(&t->stop)) {
		struct pollfd p = {.fd = t->fd, .events = POLLIN};
		if (poll(&p, 1, 50) <= 0)
			continue;
		int c = accept(t->fd, NULL, NULL);
		if (c < 0)
			continue;
		struct timeval tv = {.tv_sec = 5};
		setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		SSL *s = SSL_new(t->ctx);
		SSL_set_fd(s, c);
		if (SSL_accept(s) == 1) {
			const char *sn = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
			snprintf(t->sni, sizeof t->sni, "%s", sn ? sn : "");
			atomic_fetch_add(&t->handshakes, 1);
			char b[16];
			SSL_read(s, b, sizeof b); /* until the client closes */
		}
		SSL_free(s);
		close(c);
		ERR_clear_error();
	}
	return NULL;
}

static void tls_start(struct tls_srv *t, enum tls_mode mode, const struct cert_spec *sp, bool v6)
{
	memset(t, 0, sizeof *t);
	t->mode = mode;
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = make_cert(k, sp);
	t->ctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX_use_certificate(t->ctx, x);
	SSL_CTX_use_PrivateKey(t->ctx, k);
	SSL_CTX_set_alpn_select_cb(t->ctx, alpn_select, t);
	X509_free(x);
	EVP_PKEY_free(k);
	struct sockaddr_storage a = {0};
	socklen_t l = sizeof a;
	if (v6) {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&a;
		a6->sin6_family = AF_INET6;
		a6->sin6_addr = in6addr_loopback;
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)&a;
		a4->sin_family = AF_INET;
		a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	}
	t->fd = socket(a.ss_family, SOCK_STREAM, 0);
	ck_assert_msg(bind(t->fd, (struct sockaddr *)&a, l) == 0, "cannot listen on loopback%s",
		      v6 ? " (IPv6)" : "");
	listen(t->fd, 8);
	getsockname(t->fd, (struct sockaddr *)&a, &l);
	t->port = ntohs(v6 ? ((struct sockaddr_in6 *)&a)->sin6_port
			   : ((struct sockaddr_in *)&a)->sin_port);
	pthread_create(&t->thr, NULL, tls_thread, t);
}

static void tls_stop(struct tls_srv *t)
{
	atomic_store(&t->stop, true);
	pthread_join(t->thr, NULL);
	close(t->fd);
	SSL_CTX_free(t->ctx);
}

static void alpn_case(enum tls_mode mode, const struct cert_spec *sp, const char *ident,
		      struct result *r, char *sni)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct tls_srv t;
	tls_start(&t, mode, sp, strchr(ident, ':') != NULL);
	char rb[64];
	struct cs_acme_check c = {.type = "tls-alpn-01",
				  .identifier = ident,
				  .token = "tok123",
				  .key_authorization = KA,
				  .tls_port = (uint16_t)t.port,
				  .timeout_ms = 5000,
				  .dns_resolver = resolver(rb, sizeof rb)};
	run_check(&loop, &c, r);
	drain(&loop);
	tls_stop(&t);
	if (sni)
		strcpy(sni, t.sni);
	ck_assert_int_eq(r->count, 1);
}

START_TEST(alpn_valid)
{
	struct result r;
	char sni[256];
	alpn_case(TLS_ACME, &(struct cert_spec){.dns = "tls.example.test", .ka = KA},
		  "tls.example.test", &r, sni);
	ck_assert_msg(r.ok == 1, "%s %s", r.type, r.detail);
	ck_assert_str_eq(sni, "tls.example.test");
	alpn_case(TLS_ACME, &(struct cert_spec){.ip = "127.0.0.1", .ka = KA}, "127.0.0.1", &r, sni);
	ck_assert_msg(r.ok == 1, "%s %s", r.type, r.detail);
	ck_assert_str_eq(sni, "1.0.0.127.in-addr.arpa"); /* RFC 8738 §6 */
	alpn_case(TLS_ACME, &(struct cert_spec){.ip = "::1", .ka = KA}, "::1", &r, sni);
	ck_assert_msg(r.ok == 1, "%s %s", r.type, r.detail);
	ck_assert_str_eq(
	    sni, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa");
}
END_TEST

START_TEST(alpn_wrong)
{
	struct result r;
	alpn_case(TLS_ACME, &(struct cert_spec){.dns = "tls.example.test", .ka = "x.y"},
		  "tls.example.test", &r, NULL);
	ck_assert_int_eq(r.ok, 0);
	ck_assert_str_eq(r.type, ERR("incorrectResponse"));
	ck_assert_msg(strstr(r.detail, "SHA-256"), "%s", r.detail);
	alpn_case(TLS_ACME, &(struct cert_spec){.dns = "other.example.test", .ka = KA},
		  "tls.example.test", &r, NULL);
	ck_assert_int_eq(r.ok, 0);
	ck_assert_str_eq(r.type, ERR("incorrectResponse"));
	alpn_case(TLS_NO_ALPN, &(struct cert_spec){.dns = "tls.example.test", .ka = KA},
		  "tls.example.test", &r, NULL);
	ck_assert_int_eq(r.ok, 0);
	ck_assert_str_eq(r.type, ERR("tls"));
	ck_assert_msg(strstr(r.detail, "acme-tls/1"), "%s", r.detail);
}
END_TEST

START_TEST(alpn_timeout_and_refused)
{
	/* A server that accepts and reads the ClientHello but never answers. */
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct http_srv s;
	http_start(&loop, &s, true);
	struct cs_acme_check c = {.type = "tls-alpn-01",
				  .identifier = "127.0.0.1",
				  .token = "t",
				  .key_authorization = KA,
				  .tls_port = (uint16_t)s.port,
				  .timeout_ms = 300};
	struct result r;
	run_check(&loop, &c, &r);
	ck_assert_int_eq(r.ok, 0);
	ck_assert_str_eq(r.type, ERR("connection"));
	ck_assert_msg(strstr(r.detail, "no answer within 300 ms"), "%s", r.detail);
	c.tls_port = (uint16_t)free_port(SOCK_STREAM);
	c.timeout_ms = 5000;
	run_check(&loop, &c, &r);
	ck_assert_int_eq(r.ok, 0);
	ck_assert_str_eq(r.type, ERR("connection"));
	http_stop(&s);
	drain(&loop);
}
END_TEST

/* ---- cancel ---- */

static void wait_done(uv_timer_t *t)
{
	*(bool *)t->data = true;
}

/* Run the loop for `ms` (a timer of our own wakes UV_RUN_ONCE). */
static void short_wait(uv_loop_t *loop, int ms)
{
	bool done = false;
	uv_timer_t t;
	uv_timer_init(loop, &t);
	t.data = &done;
	uv_timer_start(&t, wait_done, (uint64_t)ms, 0);
	cs_fx_run_until(loop, &done, ms + 5000);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
}

START_TEST(cancel_at_once)
{
	const char *types[] = {"http-01", "dns-01", "tls-alpn-01"};
	uv_loop_t loop;
	uv_loop_init(&loop);
	char rb[64];
	for (int i = 0; i < 3; i++) {
		struct result r = {0};
		struct cs_acme_check c = {.type = types[i],
					  .identifier = "example.test",
					  .token = "t",
					  .key_authorization = KA,
					  .dns_resolver = resolver(rb, sizeof rb)};
		struct cs_acme_checker *ch;
		ck_assert_int_eq(cs_acme_check_start(&loop, &c, got, &r, &ch), 0);
		cs_acme_check_cancel(ch);
		short_wait(&loop, 100);
		ck_assert(!r.called);
	}
	drain(&loop);
}
END_TEST

START_TEST(cancel_mid_flight)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct http_srv s;
	http_start(&loop, &s, true);
	int uport;
	int ufd = silent_udp(&uport);
	char rb[64];
	snprintf(rb, sizeof rb, "127.0.0.1:%d", uport);
	struct result r[4] = {0};
	struct cs_acme_checker *ch[4];
	struct cs_acme_check c[4] = {
	    /* the request sent, no answer */
	    {.type = "http-01",
	     .identifier = "127.0.0.1",
	     .token = "good",
	     .key_authorization = KA,
	     .timeout_ms = 30000,
	     .http_port = (uint16_t)s.port},
	    /* the ClientHello sent, no answer */
	    {.type = "tls-alpn-01",
	     .identifier = "127.0.0.1",
	     .token = "good",
	     .key_authorization = KA,
	     .timeout_ms = 30000,
	     .tls_port = (uint16_t)s.port},
	    /* the TXT query sent, no answer */
	    {.type = "dns-01",
	     .identifier = "example.test",
	     .token = "good",
	     .key_authorization = KA,
	     .timeout_ms = 30000,
	     .dns_resolver = rb},
	    /* the name lookup of http-01 sent, no answer */
	    {.type = "http-01",
	     .identifier = "web.example.test",
	     .token = "good",
	     .key_authorization = KA,
	     .timeout_ms = 30000,
	     .dns_resolver = rb},
	};
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(cs_acme_check_start(&loop, &c[i], got, &r[i], &ch[i]), 0);
	/* Until both connections sent bytes (the HTTP request, the ClientHello). */
	for (int i = 0; i < 500 && s.got_data < 2; i++)
		short_wait(&loop, 20);
	short_wait(&loop, 100);
	ck_assert_int_eq(s.got_data, 2);
	for (int i = 0; i < 4; i++) {
		ck_assert(!r[i].called);
		cs_acme_check_cancel(ch[i]);
	}
	short_wait(&loop, 100);
	http_stop(&s);
	drain(&loop);
	close(ufd);
	for (int i = 0; i < 4; i++)
		ck_assert(!r[i].called);
}
END_TEST

/* The callback may start the next check from inside itself (the ACME server retries). */
struct chain {
	uv_loop_t *loop;
	struct result r;
	int port;
	bool second_done;
	struct result r2;
};

static void second(void *arg, int ok, const char *type, const char *detail)
{
	struct chain *c = arg;
	got(&c->r2, ok, type, detail);
	c->second_done = true;
}

static void first(void *arg, int ok, const char *type, const char *detail)
{
	struct chain *c = arg;
	got(&c->r, ok, type, detail);
	struct cs_acme_check k = {.type = "http-01",
				  .identifier = "127.0.0.1",
				  .token = "good",
				  .key_authorization = KA,
				  .http_port = (uint16_t)c->port};
	ck_assert_int_eq(cs_acme_check_start(c->loop, &k, second, c, NULL), 0);
}

START_TEST(restart_from_callback)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct http_srv s;
	http_start(&loop, &s, false);
	struct chain ch = {.loop = &loop, .port = s.port};
	struct cs_acme_check k = {.type = "http-01",
				  .identifier = "127.0.0.1",
				  .token = "wrong",
				  .key_authorization = KA,
				  .http_port = (uint16_t)s.port};
	ck_assert_int_eq(cs_acme_check_start(&loop, &k, first, &ch, NULL), 0);
	ck_assert(cs_fx_run_until(&loop, &ch.second_done, 20000));
	ck_assert_int_eq(ch.r.ok, 0);
	ck_assert_int_eq(ch.r2.ok, 1);
	http_stop(&s);
	drain(&loop);
}
END_TEST

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	dnsmasq_start();
	Suite *s = suite_create("acme_validate");
	TCase *tc = tcase_create("http01");
	tcase_add_test(tc, http_valid);
	tcase_add_test(tc, http_valid_ipv6);
	tcase_add_test(tc, http_wrong_body);
	tcase_add_test(tc, http_not_found);
	tcase_add_test(tc, http_oversize);
	tcase_add_test(tc, http_redirects);
	tcase_add_test(tc, http_timeout);
	tcase_add_test(tc, http_refused);
	tcase_add_test(tc, bad_input);
	tcase_add_test(tc, restart_from_callback);
	suite_add_tcase(s, tc);
	tc = tcase_create("dns01");
	tcase_add_test(tc, dns_valid);
	tcase_add_test(tc, dns_wrong_and_missing);
	tcase_add_test(tc, dns_timeout);
	suite_add_tcase(s, tc);
	tc = tcase_create("tlsalpn01");
	tcase_add_test(tc, alpn_cert_rules);
	tcase_add_test(tc, alpn_valid);
	tcase_add_test(tc, alpn_wrong);
	tcase_add_test(tc, alpn_timeout_and_refused);
	suite_add_tcase(s, tc);
	tc = tcase_create("cancel");
	tcase_add_test(tc, cancel_at_once);
	tcase_add_test(tc, cancel_mid_flight);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	dnsmasq_stop();
	return failed ? 1 : 0;
}
