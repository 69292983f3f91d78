/*
 * The HTTP listener's connections (see http_internal.h and the overview in http.c):
 * reading, plain and through TLS memory BIOs, connection set-up and teardown, adopted
 * cluster connections, and the listener with its TLS context.
 */
#include "server/http.h"
#include "server/http_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "raft/cluster.h"
#include "server/spool.h"

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
	char ip[INET6_ADDRSTRLEN];
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)ss;
		uv_ip4_name(a, ip, sizeof ip);
		snprintf(out, outlen, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)ss;
		uv_ip6_name(a, ip, sizeof ip);
		snprintf(out, outlen, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
	} else {
		snprintf(out, outlen, "unknown");
	}
}

/* Last OpenSSL error as text; clears the queue so it never leaks into another
 * connection's diagnosis. */
const char *cs_http_tls_errstr(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();
	if (e)
		ERR_error_string_n(e, buf, len);
	else
		snprintf(buf, len, "unknown error");
	ERR_clear_error();
	return buf;
}

/* ---------------------------------------------------------------- reading */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct cs_http_conn *c = h->data;
	*buf = uv_buf_init(c->l->rbuf, sizeof c->l->rbuf);
}

static void tls_fail(struct cs_http_conn *c, const char *what)
{
	char err[256];
	cs_debug("http: %s: TLS %s failed: %s", c->remote_addr, what,
		 cs_http_tls_errstr(err, sizeof err));
	c->tls_failed = true;
	cs_http_tls_flush(c); /* the alert, if OpenSSL made one */
	cs_http_finish_conn(c);
}

/* Decrypt whatever the SSL can give into c->in. Returns -1 when the connection is
 * failing, 1 on close_notify, 0 otherwise. */
static int tls_drain(struct cs_http_conn *c)
{
	int ret = 0;
	for (;;) {
		cs_buf_reserve(&c->in, TLS_READ_CHUNK);
		size_t room = c->in.cap - c->in.len - 1;
		int r = SSL_read(c->ssl, c->in.data + c->in.len,
				 room > INT32_MAX ? INT32_MAX : (int)room);
		if (r > 0) {
			c->in.len += (size_t)r;
			continue;
		}
		int e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ)
			break;
		if (e == SSL_ERROR_ZERO_RETURN) {
			ret = 1;
			break;
		}
		tls_fail(c, "read");
		return -1;
	}
	cs_http_tls_flush(c);
	return ret;
}

/* Feed ciphertext that arrived, finish the handshake, decrypt into c->in. Same returns
 * as tls_drain. */
static int tls_input(struct cs_http_conn *c, const char *data, size_t n)
{
	if (BIO_write(c->rbio, data, (int)n) != (int)n) {
		tls_fail(c, "input");
		return -1;
	}
	ERR_clear_error();
	if (!c->hs_done) {
		int r = SSL_do_handshake(c->ssl);
		if (r != 1) {
			if (SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_READ) {
				cs_http_tls_flush(c);
				return 0;
			}
			tls_fail(c, "handshake");
			return -1;
		}
		c->hs_done = true;
	}
	return tls_drain(c);
}

static void on_eof(struct cs_http_conn *c)
{
	c->peer_eof = true;
	if (c->held && !c->lingering && c->req && c->req->body_open && c->in.len) {
		/* A client that half-closed after sending its body: what is buffered is
		 * still passed on; cs_http_process_input ends the connection once it is used up. */
		cs_http_process_input(c);
		return;
	}
	if (c->held || c->lingering) {
		/* The handler keeps the request (req->conn becomes NULL). */
		cs_http_conn_close(c);
		return;
	}
	if (c->close_after_write)
		return; /* cs_http_on_shutdown closes */
	cs_http_process_input(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct cs_http_conn *c = s->data;
	if (c->closing || nread == 0)
		return;
	if (nread < 0) {
		c->reading = false;
		if (nread != UV_EOF) {
			cs_debug("http: %s: read: %s", c->remote_addr, uv_strerror((int)nread));
			cs_http_conn_close(c);
			return;
		}
		on_eof(c);
		return;
	}
	c->bytes_seen = true;
	if (c->dead_input) {
		if (!c->ssl)
			cs_zero(buf->base, (size_t)nread);
		if (!c->lingering)
			cs_http_timer_update(c);
		return; /* draining before close */
	}
	if (c->ssl) {
		int r = tls_input(c, buf->base, (size_t)nread);
		if (r < 0 || c->closing)
			return;
		cs_http_process_input(c);
		if (r == 1 && !c->closing)
			on_eof(c);
		return;
	}
	cs_buf_append(&c->in, buf->base, (size_t)nread);
	cs_zero(buf->base, (size_t)nread); /* the listener's shared read buffer */
	cs_http_process_input(c);
}

void cs_http_start_reading(struct cs_http_conn *c)
{
	if (c->reading || c->closing)
		return;
	int r = uv_read_start((uv_stream_t *)c->tcp, on_alloc, on_read);
	if (r) {
		cs_debug("http: %s: read start: %s", c->remote_addr, uv_strerror(r));
		cs_http_conn_close(c);
		return;
	}
	c->reading = true;
}

/* ---------------------------------------------------------------- connections */

static void listener_maybe_free(struct cs_http_listener *l)
{
	if (!l->closing || !l->server_closed || l->n_conns)
		return;
	void (*cb)(void *) = l->close_cb;
	void *ctx = l->close_ctx;
	SSL_CTX_free(l->ssl_ctx);
	free(l);
	if (cb)
		cb(ctx);
}

void cs_http_conn_free(struct cs_http_conn *c)
{
	struct cs_http_listener *l = c->l;
	if (c->orphan) {
		/* A producer waits for room on a connection that is gone: wake it so that
		 * its next cs_http_stream_write fails and it releases the request. */
		struct http_req *o = c->orphan;
		void (*cb)(void *) = o->drain_cb;
		c->orphan = NULL;
		o->orphan_of = NULL;
		o->drain_cb = NULL;
		if (cb)
			cb(o->drain_ctx);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		l->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	l->n_conns--;
	if (c->refusing)
		l->n_refusing--;
	free(c->err_body);
	if (c->ssl)
		SSL_free(c->ssl);
	cs_http_req_free(c->req);
	cs_buf_free_secure(&c->in);
	cs_buf_free_secure(&c->head);
	cs_buf_free_secure(&c->wbuf);
	cs_buf_free_secure(&c->wpending);
	free(c);
	listener_maybe_free(l);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
	struct cs_http_conn *c = h->data;
	if (c->adopted && h == (uv_handle_t *)c->tcp)
		free(h); /* malloc'ed by the cluster listener, ours since the hand-off */
	if (--c->handles == 0)
		cs_http_conn_free(c);
}

void cs_http_conn_close(struct cs_http_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	struct http_req *body_of = NULL;
	if (c->held) {
		/* The handler still owns the request: detach it. */
		struct http_req *r = c->req;
		if (r->drain_cb) {
			r->orphan_of = c;
			c->orphan = r;
		}
		r->pub.conn = NULL;
		c->req = NULL;
		c->held = false;
		if (r->body_open)
			body_of = r;
	}
	uv_close((uv_handle_t *)c->tcp, on_conn_handle_closed);
	uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
	if (body_of) {
		/* Its streamed body will not complete: tell the consumer (last, since it
		 * may answer the request, which then is only freed). */
		void (*end)(void *, int) = body_of->body_end;
		void *ctx = body_of->body_ctx;
		body_of->body_open = false;
		body_of->body_data = NULL;
		body_of->body_end = NULL;
		if (end)
			end(ctx, c->body_err ? c->body_err : ECONNRESET);
	}
}

/* A connection on `tcp` (adopted) or on a fresh handle of its own (tcp NULL). */
static struct cs_http_conn *conn_new(struct cs_http_listener *l, uv_tcp_t *tcp)
{
	struct cs_http_conn *c = calloc(1, sizeof *c);
	if (!c)
		abort();
	c->l = l;
	if (tcp) {
		c->tcp = tcp;
		c->adopted = true;
	} else {
		c->tcp = &c->tcp_store;
		uv_tcp_init(l->loop, c->tcp);
	}
	uv_timer_init(l->loop, &c->timer);
	c->tcp->data = c;
	c->timer.data = c;
	c->handles = 2;
	c->next = l->conns;
	if (l->conns)
		l->conns->prev = c;
	l->conns = c;
	l->n_conns++;
	snprintf(c->remote_addr, sizeof c->remote_addr, "unknown");
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	c->at_boundary = true;
	return c;
}

static void peer_name(struct cs_http_conn *c)
{
	struct sockaddr_storage ss;
	int sl = sizeof ss;
	if (uv_tcp_getpeername(c->tcp, (struct sockaddr *)&ss, &sl) == 0)
		format_addr(&ss, c->remote_addr, sizeof c->remote_addr);
}

/*
 * Over max_connections. A plain-HTTP client is told why (503 and a JSON error, sent at
 * once, then the usual lingering close); a TLS client would need a handshake first,
 * which is the very work the limit is there to refuse, so it is closed right after
 * accept. Refusals in progress are bounded too: beyond MAX_REFUSING, close at once.
 */
static void refuse(struct cs_http_conn *c)
{
	static const char body[] = "{\"errors\":[\"too many open connections\"]}";
	struct cs_http_listener *l = c->l;
	c->refusing = true;
	l->n_refusing++;
	cs_debug("http: %s: refused: %zu connections open (max_connections %zu)", c->remote_addr,
		 l->n_conns - l->n_refusing, l->max_conns);
	if (l->ssl_ctx || l->n_refusing > MAX_REFUSING) {
		cs_http_conn_close(c);
		return;
	}
	c->dead_input = true;
	cs_http_send_response(c, 503, "application/json", NULL, 0, body, sizeof body - 1, false,
			      false, true);
	if (!c->closing)
		cs_http_start_reading(
		    c); /* discard what the client sends until it sees the answer */
}

static void on_connection(uv_stream_t *server, int status)
{
	struct cs_http_listener *l = CS_CONTAINER_OF(server, struct cs_http_listener, tcp);
	if (status < 0) {
		cs_warn("http: accept: %s", uv_strerror(status));
		return;
	}
	if (l->closing)
		return;
	struct cs_http_conn *c = conn_new(l, NULL);
	int r = uv_accept(server, (uv_stream_t *)c->tcp);
	if (r) {
		cs_debug("http: accept: %s", uv_strerror(r));
		cs_http_conn_close(c);
		return;
	}
	uv_tcp_nodelay(c->tcp, 1);
	peer_name(c);
	if (l->max_conns && l->n_conns - l->n_refusing > l->max_conns) {
		refuse(c);
		return;
	}

	if (l->ssl_ctx) {
		c->ssl = SSL_new(l->ssl_ctx);
		c->rbio = BIO_new(BIO_s_mem());
		c->wbio = BIO_new(BIO_s_mem());
		if (!c->ssl || !c->rbio || !c->wbio) {
			char err[256];
			cs_warn("http: TLS setup: %s", cs_http_tls_errstr(err, sizeof err));
			BIO_free(c->rbio);
			BIO_free(c->wbio);
			SSL_free(c->ssl);
			c->ssl = NULL;
			cs_http_conn_close(c);
			return;
		}
		SSL_set_bio(c->ssl, c->rbio, c->wbio);
		SSL_set_accept_state(c->ssl);
	}
	cs_http_start_reading(c);
	cs_http_timer_update(c);
}

void cs_http_adopt(void *adopt_listener, SSL *ssl, uv_tcp_t *tcp)
{
	struct cs_http_listener *l = adopt_listener;
	if (l->closing || !l->adopt) {
		cs_cluster_conn_release(ssl, tcp);
		return;
	}
	struct cs_http_conn *c = conn_new(l, tcp);
	c->ssl = ssl;
	c->rbio = SSL_get_rbio(ssl);
	c->wbio = SSL_get_wbio(ssl);
	c->hs_done = true;
	c->bytes_seen = true;
	peer_name(c);
	/* The first request may have come with the end of the handshake: it is in the
	 * SSL or its read BIO already, and the socket will not signal it again. */
	int r = tls_drain(c);
	if (r < 0 || c->closing)
		return;
	cs_http_process_input(c);
	if (r == 1 && !c->closing)
		on_eof(c);
	if (!c->closing && !c->held && !c->peer_eof)
		cs_http_start_reading(c);
	if (!c->closing)
		cs_http_timer_update(c);
}

/* Timeouts and the connection cap from the listener config (defaults as in Vault). */
static void set_limits(struct cs_http_listener *l, const struct cs_listener_config *cfg)
{
	int64_t h = cfg ? cfg->http_read_header_timeout_ms : 0;
	int64_t r = cfg ? cfg->http_read_timeout_ms : 0;
	l->header_ms = h == 0 ? HEADER_TIMEOUT_MS : h < 0 ? 0 : (uint64_t)h;
	l->read_ms = r == 0 ? READ_TIMEOUT_MS : r < 0 ? 0 : (uint64_t)r;
	l->max_conns = cfg && cfg->max_connections > 0 ? (size_t)cfg->max_connections
						       : CS_DEFAULT_MAX_CONNECTIONS;
}

struct cs_http_listener *cs_http_adopt_listener(uv_loop_t *loop,
						const struct cs_listener_config *cfg,
						cs_http_handler handler, void *ctx)
{
	struct cs_http_listener *l = calloc(1, sizeof *l);
	if (!l)
		abort();
	l->loop = loop;
	l->handler = handler;
	l->ctx = ctx;
	l->adopt = true;
	l->max_body =
	    cfg && cfg->max_request_size ? cfg->max_request_size : CS_DEFAULT_MAX_REQUEST_SIZE;
	set_limits(l, cfg);
	l->max_conns = 0; /* the cluster port's mutual TLS bounds who gets here */
	/* Never bound or listening: the handle exists so that closing the listener calls
	 * back from the loop, like a real one. */
	uv_tcp_init(loop, &l->tcp);
	return l;
}

/* ---------------------------------------------------------------- listener */

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char protos[] = "\x08http/1.1";
	unsigned char *sel = NULL;
	if (SSL_select_next_proto(&sel, outlen, protos, sizeof protos - 1, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK; /* e.g. h2 only: go on without ALPN */
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *tls_ctx_new(const struct cs_listener_config *cfg, char *errmsg, size_t errlen)
{
	char err[256];
	const char *cert = cfg->tls_cert_file, *key = cfg->tls_key_file;
	if (!cert || !*cert) {
		snprintf(errmsg, errlen, "tls_cert_file is required unless tls_disable is set");
		return NULL;
	}
	if (!key || !*key) {
		snprintf(errmsg, errlen, "tls_key_file is required unless tls_disable is set");
		return NULL;
	}
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		snprintf(errmsg, errlen, "TLS context: %s", cs_http_tls_errstr(err, sizeof err));
		return NULL;
	}
	int minv = cfg->tls_min_version > TLS1_2_VERSION ? cfg->tls_min_version : TLS1_2_VERSION;
	if (SSL_CTX_set_min_proto_version(ctx, minv) != 1) {
		snprintf(errmsg, errlen, "tls_min_version %#x: %s", (unsigned)minv,
			 cs_http_tls_errstr(err, sizeof err));
		goto err_after_ctx;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
				     SSL_OP_NO_COMPRESSION);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(errmsg, errlen, "tls_cert_file %s: %s", cert,
			 cs_http_tls_errstr(err, sizeof err));
		goto err_after_ctx;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		snprintf(errmsg, errlen, "tls_key_file %s: %s", key,
			 cs_http_tls_errstr(err, sizeof err));
		goto err_after_ctx;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(errmsg, errlen, "tls_key_file %s does not match tls_cert_file %s: %s", key,
			 cert, cs_http_tls_errstr(err, sizeof err));
		goto err_after_ctx;
	}
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	static const unsigned char sid_ctx[] = "custos";
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
	return ctx;

err_after_ctx:
	SSL_CTX_free(ctx);
	return NULL;
}

/* "host:port", "[v6]:port", ":port" (all interfaces), "host" (port 8200). */
static int parse_address(const char *addr, struct sockaddr_storage *ss, char *errmsg, size_t errlen)
{
	char host[256];
	const char *port;
	size_t hl;
	if (addr[0] == '[') {
		const char *rb = strchr(addr, ']');
		if (!rb || (rb[1] != ':' && rb[1] != '\0'))
			goto bad;
		hl = (size_t)(rb - addr - 1);
		addr++;
		port = rb[1] ? rb + 2 : DEFAULT_PORT;
	} else {
		const char *colon = strrchr(addr, ':');
		if (colon && strchr(addr, ':') != colon)
			goto bad; /* bare IPv6 address: brackets required */
		hl = colon ? (size_t)(colon - addr) : strlen(addr);
		port = colon ? colon + 1 : DEFAULT_PORT;
	}
	if (hl >= sizeof host)
		goto bad;
	memcpy(host, addr, hl);
	host[hl] = '\0';
	if (!*port || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5 ||
	    atoi(port) > 65535)
		goto bad;
	int pn = atoi(port);
	if (!host[0])
		snprintf(host, sizeof host, "0.0.0.0");

	memset(ss, 0, sizeof *ss);
	if (uv_ip4_addr(host, pn, (struct sockaddr_in *)ss) == 0)
		return 0;
	if (uv_ip6_addr(host, pn, (struct sockaddr_in6 *)ss) == 0)
		return 0;
	/* A host name ("localhost:8200"): resolved with a blocking getaddrinfo, which is fine
	 * here only because listeners are opened at start-up (cs_core_listen), before the
	 * loop serves anything; adopted listeners never come through this path. */
	struct addrinfo hints = {0}, *res = NULL;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	int r = getaddrinfo(host, NULL, &hints, &res);
	if (r || !res) {
		snprintf(errmsg, errlen, "resolve %s: %s", host,
			 r ? gai_strerror(r) : "no address");
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)pn);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)pn);
	freeaddrinfo(res);
	return 0;
bad:
	snprintf(errmsg, errlen, "invalid listener address \"%s\"", addr);
	return -1;
}

static void on_server_closed(uv_handle_t *h)
{
	struct cs_http_listener *l = CS_CONTAINER_OF(h, struct cs_http_listener, tcp);
	l->server_closed = true;
	listener_maybe_free(l);
}

struct cs_http_listener *cs_http_listen(uv_loop_t *loop, const struct cs_listener_config *cfg,
					cs_http_handler handler, void *ctx, char *errmsg,
					size_t errlen)
{
	const char *address = cfg->address && *cfg->address ? cfg->address : "127.0.0.1:8200";
	struct sockaddr_storage ss;
	if (parse_address(address, &ss, errmsg, errlen))
		return NULL;
	struct cs_http_listener *l = calloc(1, sizeof *l);
	if (!l)
		abort();
	l->loop = loop;
	l->handler = handler;
	l->ctx = ctx;
	l->max_body = cfg->max_request_size ? cfg->max_request_size : CS_DEFAULT_MAX_REQUEST_SIZE;
	set_limits(l, cfg);
	if (!cfg->tls_disable) {
		l->ssl_ctx = tls_ctx_new(cfg, errmsg, errlen);
		if (!l->ssl_ctx) {
			free(l);
			return NULL;
		}
	}
	int r = uv_tcp_init(loop, &l->tcp);
	if (r) {
		snprintf(errmsg, errlen, "listen %s: %s", address, uv_strerror(r));
		SSL_CTX_free(l->ssl_ctx);
		free(l);
		return NULL;
	}
	r = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&ss, 0);
	if (!r)
		r = uv_listen((uv_stream_t *)&l->tcp, LISTEN_BACKLOG, on_connection);
	if (r) {
		snprintf(errmsg, errlen, "listen %s: %s", address, uv_strerror(r));
		goto err_after_init;
	}
	struct sockaddr_storage bound;
	int bl = sizeof bound;
	r = uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&bound, &bl);
	if (r) {
		snprintf(errmsg, errlen, "listen %s: %s", address, uv_strerror(r));
		goto err_after_init;
	}
	l->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
					      : ntohs(((struct sockaddr_in *)&bound)->sin_port);
	cs_debug("http: listening on %s (port %d, %s)", address, l->port,
		 l->ssl_ctx ? "TLS" : "plain HTTP");
	return l;

err_after_init:
	/* The handle must be closed through the loop; the listener is freed then. */
	l->closing = true;
	uv_close((uv_handle_t *)&l->tcp, on_server_closed);
	return NULL;
}

int cs_http_listener_port(const struct cs_http_listener *l)
{
	return l->port;
}

void cs_http_listener_close(struct cs_http_listener *l, void (*cb)(void *ctx), void *ctx)
{
	if (l->closing)
		return;
	l->closing = true;
	l->close_cb = cb;
	l->close_ctx = ctx;
	uv_close((uv_handle_t *)&l->tcp, on_server_closed);
	for (struct cs_http_conn *c = l->conns; c; c = c->next)
		cs_http_conn_close(c);
}
