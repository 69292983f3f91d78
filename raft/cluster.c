/*
 * The cluster port listener (contract in cluster.h).
 *
 * Happy path: uv_listen → accept into a malloc'ed uv_tcp_t → SSL_new(server ctx) over two
 * memory BIOs; every TCP read is fed to the read BIO and SSL_do_handshake is retried,
 * its output flushed with one uv_write → handshake complete → ALPN checked explicitly
 * (OpenSSL's select callback never runs when the client offers no ALPN) → reading
 * stopped, the deadline timer stopped, and (ssl, tcp) handed to the protocol's handler.
 * The small `hconn` record that tracked the handshake then only waits for its timer's
 * close callback and frees itself.
 *
 * Failure modes (each closes the connection, counted in stats.rejected):
 * - TCP error or EOF during the handshake;
 * - handshake failure: unknown CA, no client certificate, TLS < 1.2, unknown ALPN (the
 *   alert OpenSSL produced is pushed out with uv_try_write before the close);
 * - deadline (5 s by default) before the handshake completed;
 * - no ALPN, or no handler registered for the selected protocol;
 * - the listener closing.
 * Objects die in their last close callback: an hconn owns a tcp (until hand-off) and a
 * timer; the listener owns its server handle and frees itself when that and every
 * hconn have closed.
 */
#include "raft/cluster.h"

#include <netinet/in.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"
#include "storage/cluster_tls.h"

#define HS_READ_BUF 16384

struct hconn {
	struct cs_cluster *cl;
	struct hconn *prev, *next;
	uv_tcp_t *tcp; /* ours until hand-off (NULL after) */
	uv_timer_t timer;
	SSL *ssl; /* ours until hand-off (NULL after) */
	int open_handles;
	bool closing;
	char buf[HS_READ_BUF];
};

struct cs_cluster {
	uv_loop_t *loop;
	uv_tcp_t server;
	SSL_CTX *ctx;
	unsigned timeout_ms;
	struct {
		cs_cluster_handler_fn fn;
		void *ctx;
	} raft, forward;
	struct hconn *conns;
	bool closing;
	bool server_closed;
	cs_cluster_close_cb close_cb;
	void *close_ctx;
	struct cs_cluster_stats stats;
};

/* ---------------------------------------------------------------- shared helpers */

struct flush_req {
	uv_write_t w;
	cs_tls_written_cb cb;
	void *ctx;
	char data[];
};

static void flush_done(uv_write_t *w, int status)
{
	struct flush_req *r = CS_CONTAINER_OF(w, struct flush_req, w);
	cs_tls_written_cb cb = r->cb;
	void *ctx = r->ctx;
	free(r); /* ciphertext only: nothing to wipe */
	if (cb)
		cb(ctx, status);
}

int cs_tls_flush_cb(SSL *ssl, uv_stream_t *s, cs_tls_written_cb cb, void *ctx)
{
	BIO *wbio = SSL_get_wbio(ssl);
	size_t n = BIO_ctrl_pending(wbio);
	if (n == 0)
		return 0;
	struct flush_req *r = malloc(sizeof *r + n);
	if (!r)
		return UV_ENOMEM;
	r->cb = cb;
	r->ctx = ctx;
	int got = BIO_read(wbio, r->data, (int)n);
	if (got <= 0) {
		free(r);
		return 0;
	}
	uv_buf_t b = uv_buf_init(r->data, (unsigned)got);
	int rv = uv_write(&r->w, s, &b, 1, flush_done);
	if (rv != 0)
		free(r);
	return rv;
}

int cs_tls_flush(SSL *ssl, uv_stream_t *s)
{
	return cs_tls_flush_cb(ssl, s, NULL, NULL);
}

/* Push pending bytes (an alert, close_notify) synchronously, if the socket takes them. */
static void try_flush(SSL *ssl, uv_stream_t *s)
{
	char tmp[4096];
	BIO *wbio = SSL_get_wbio(ssl);
	int n;
	while ((n = BIO_read(wbio, tmp, sizeof tmp)) > 0) {
		uv_buf_t b = uv_buf_init(tmp, (unsigned)n);
		if (uv_try_write(s, &b, 1) != n)
			break;
	}
}

static void free_tcp_cb(uv_handle_t *h)
{
	free(h);
}

void cs_cluster_conn_release(SSL *ssl, uv_tcp_t *tcp)
{
	if (ssl && tcp && SSL_is_init_finished(ssl)) {
		SSL_shutdown(ssl); /* queue close_notify; the peer's is not awaited */
		try_flush(ssl, (uv_stream_t *)tcp);
	}
	ERR_clear_error();
	SSL_free(ssl);
	if (tcp && !uv_is_closing((uv_handle_t *)tcp))
		uv_close((uv_handle_t *)tcp, free_tcp_cb);
}

/* ---------------------------------------------------------------- connections */

static void maybe_free_listener(struct cs_cluster *cl)
{
	if (!cl->closing || !cl->server_closed || cl->conns)
		return;
	cs_cluster_close_cb cb = cl->close_cb;
	void *ctx = cl->close_ctx;
	SSL_CTX_free(cl->ctx);
	free(cl);
	if (cb)
		cb(ctx);
}

static void hconn_handle_closed(uv_handle_t *h)
{
	struct hconn *c = h->data;
	if (h != (uv_handle_t *)&c->timer)
		free(h); /* the tcp */
	if (--c->open_handles > 0)
		return;
	struct cs_cluster *cl = c->cl;
	if (c->prev)
		c->prev->next = c->next;
	else
		cl->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	SSL_free(c->ssl);
	free(c);
	maybe_free_listener(cl);
}

static void hconn_close(struct hconn *c, const char *why)
{
	if (c->closing)
		return;
	c->closing = true;
	if (why) {
		c->cl->stats.rejected++;
		cs_debug("cluster: connection refused: %s", why);
	}
	if (c->tcp) {
		if (c->ssl)
			try_flush(c->ssl, (uv_stream_t *)c->tcp); /* the alert, if any */
		uv_close((uv_handle_t *)c->tcp, hconn_handle_closed);
		c->tcp = NULL;
	}
	uv_close((uv_handle_t *)&c->timer, hconn_handle_closed);
	ERR_clear_error();
}

static void hconn_timeout(uv_timer_t *t)
{
	hconn_close(t->data, "TLS handshake timed out");
}

static void hand_off(struct hconn *c)
{
	struct cs_cluster *cl = c->cl;
	const unsigned char *p = NULL;
	unsigned int plen = 0;
	SSL_get0_alpn_selected(c->ssl, &p, &plen);
	cs_cluster_handler_fn fn = NULL;
	void *ctx = NULL;
	if (plen == strlen(CS_ALPN_RAFT) && !memcmp(p, CS_ALPN_RAFT, plen)) {
		fn = cl->raft.fn;
		ctx = cl->raft.ctx;
	} else if (plen == strlen(CS_ALPN_FORWARD) && !memcmp(p, CS_ALPN_FORWARD, plen)) {
		fn = cl->forward.fn;
		ctx = cl->forward.ctx;
	} else {
		hconn_close(c, plen ? "unexpected ALPN protocol" : "client offered no ALPN");
		return;
	}
	/* VERIFY_FAIL_IF_NO_PEER_CERT makes these hold; check anyway (defence in depth). */
	X509 *peer = SSL_get0_peer_certificate(c->ssl);
	if (!peer || SSL_get_verify_result(c->ssl) != X509_V_OK) {
		hconn_close(c, "peer certificate not verified");
		return;
	}
	if (!fn) {
		hconn_close(c, "no handler for the ALPN protocol");
		return;
	}
	uv_read_stop((uv_stream_t *)c->tcp);
	if (cs_tls_flush(c->ssl, (uv_stream_t *)c->tcp) != 0) {
		hconn_close(c, "write failed");
		return;
	}
	SSL *ssl = c->ssl;
	uv_tcp_t *tcp = c->tcp;
	c->ssl = NULL;
	c->tcp = NULL;
	tcp->data = NULL;
	c->open_handles--; /* the tcp is no longer ours */
	c->closing = true;
	uv_close((uv_handle_t *)&c->timer, hconn_handle_closed);
	cl->stats.handed++;
	fn(ctx, ssl, tcp); /* may close the listener: c and cl are not touched after */
}

static void hconn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct hconn *c = h->data;
	*buf = uv_buf_init(c->buf, sizeof c->buf);
}

static void hconn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct hconn *c = s->data;
	if (nread == 0)
		return;
	if (nread < 0) {
		hconn_close(c, "connection closed during the TLS handshake");
		return;
	}
	if (BIO_write(SSL_get_rbio(c->ssl), buf->base, (int)nread) != nread) {
		hconn_close(c, "out of memory");
		return;
	}
	int r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		hand_off(c);
		return;
	}
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ) {
		if (cs_tls_flush(c->ssl, s) != 0)
			hconn_close(c, "write failed");
		return;
	}
	char why[200];
	unsigned long oe = ERR_peek_last_error();
	snprintf(why, sizeof why, "TLS handshake: %s", oe ? ERR_reason_error_string(oe) : "failed");
	hconn_close(c, why);
}

static void on_connection(uv_stream_t *server, int status)
{
	struct cs_cluster *cl = server->data;
	if (status < 0 || cl->closing)
		return;
	struct hconn *c = calloc(1, sizeof *c);
	uv_tcp_t *tcp = malloc(sizeof *tcp);
	if (!c || !tcp) {
		free(c);
		free(tcp);
		/* Accept and drop, or the listen socket stays readable forever. */
		uv_tcp_t *tmp = malloc(sizeof *tmp);
		if (tmp && uv_tcp_init(cl->loop, tmp) == 0) {
			if (uv_accept(server, (uv_stream_t *)tmp) == 0)
				cl->stats.rejected++;
			uv_close((uv_handle_t *)tmp, free_tcp_cb);
		} else {
			free(tmp);
		}
		return;
	}
	uv_tcp_init(cl->loop, tcp);
	c->cl = cl;
	c->tcp = tcp;
	tcp->data = c;
	uv_timer_init(cl->loop, &c->timer);
	c->timer.data = c;
	c->open_handles = 2;
	c->next = cl->conns;
	if (cl->conns)
		cl->conns->prev = c;
	cl->conns = c;
	if (uv_accept(server, (uv_stream_t *)tcp) != 0) {
		hconn_close(c, "accept failed");
		return;
	}
	cl->stats.accepted++;
	uv_tcp_nodelay(tcp, 1);
	c->ssl = SSL_new(cl->ctx);
	BIO *rbio = BIO_new(BIO_s_mem());
	BIO *wbio = BIO_new(BIO_s_mem());
	if (!c->ssl || !rbio || !wbio) {
		BIO_free(rbio);
		BIO_free(wbio);
		hconn_close(c, "out of memory");
		return;
	}
	SSL_set_bio(c->ssl, rbio, wbio);
	SSL_set_accept_state(c->ssl);
	uv_timer_start(&c->timer, hconn_timeout, cl->timeout_ms, 0);
	if (uv_read_start((uv_stream_t *)tcp, hconn_alloc, hconn_read) != 0)
		hconn_close(c, "read failed");
}

/* ---------------------------------------------------------------- listener */

/* "a.b.c.d:port" or "[v6]:port" into a sockaddr. */
static int parse_address(const char *address, struct sockaddr_storage *sa)
{
	char host[64];
	const char *colon = strrchr(address, ':');
	if (!colon || colon == address || !colon[1])
		return CS_EINVAL;
	char *end;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (*end || port > 65535)
		return CS_EINVAL;
	size_t hl = (size_t)(colon - address);
	const char *h = address;
	bool v6 = false;
	if (h[0] == '[') {
		if (hl < 3 || h[hl - 1] != ']')
			return CS_EINVAL;
		h++;
		hl -= 2;
		v6 = true;
	}
	if (hl >= sizeof host)
		return CS_EINVAL;
	memcpy(host, h, hl);
	host[hl] = 0;
	if (v6)
		return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)sa) ? CS_EINVAL : 0;
	return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)sa) ? CS_EINVAL : 0;
}

int cs_cluster_parse_address(const char *address, struct sockaddr_storage *sa)
{
	memset(sa, 0, sizeof *sa);
	return parse_address(address, sa);
}

int cs_cluster_source_address(const char *listen_address, struct sockaddr_storage *out)
{
	memset(out, 0, sizeof *out);
	out->ss_family = AF_UNSPEC;
	if (!listen_address)
		return 0;
	struct sockaddr_storage sa;
	if (cs_cluster_parse_address(listen_address, &sa) != 0)
		return CS_EINVAL;
	if (sa.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&sa;
		if (in->sin_addr.s_addr == htonl(INADDR_ANY))
			return 0;
		in->sin_port = 0;
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;
		if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
			return 0;
		in6->sin6_port = 0;
	}
	*out = sa;
	return 0;
}

int cs_cluster_bind_source(uv_tcp_t *tcp, const struct sockaddr_storage *src)
{
	if (!src || src->ss_family == AF_UNSPEC)
		return 0;
	return uv_tcp_bind(tcp, (const struct sockaddr *)src, 0);
}

int cs_cluster_listen(struct cs_cluster **out, uv_loop_t *loop, const char *address,
		      SSL_CTX *server_ctx, char *errmsg, size_t errlen)
{
	*out = NULL;
	struct sockaddr_storage sa;
	if (!address || cs_cluster_parse_address(address, &sa) != 0) {
		snprintf(errmsg, errlen, "cluster address %.200s: want ip:port or [ipv6]:port",
			 address ? address : "(null)");
		return CS_EINVAL;
	}
	struct cs_cluster *cl = calloc(1, sizeof *cl);
	if (!cl)
		return CS_ENOMEM;
	cl->loop = loop;
	cl->timeout_ms = CS_CLUSTER_HANDSHAKE_MS;
	SSL_CTX_up_ref(server_ctx);
	cl->ctx = server_ctx;
	uv_tcp_init(loop, &cl->server);
	cl->server.data = cl;
	int rv = uv_tcp_bind(&cl->server, (const struct sockaddr *)&sa, 0);
	if (rv == 0)
		rv = uv_listen((uv_stream_t *)&cl->server, 128, on_connection);
	if (rv != 0) {
		snprintf(errmsg, errlen, "cluster listen on %.200s: %s", address, uv_strerror(rv));
		/* The handle must close before the memory goes: the normal close path frees
		 * cl from the handle's close callback. */
		cs_cluster_close(cl, NULL, NULL);
		return CS_EIO;
	}
	*out = cl;
	return 0;
}

int cs_cluster_port(const struct cs_cluster *cl)
{
	struct sockaddr_storage sa;
	int len = sizeof sa;
	if (uv_tcp_getsockname(&cl->server, (struct sockaddr *)&sa, &len) != 0)
		return -1;
	if (sa.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
	return ntohs(((struct sockaddr_in *)&sa)->sin_port);
}

void cs_cluster_set_handler(struct cs_cluster *cl, const char *alpn, cs_cluster_handler_fn fn,
			    void *ctx)
{
	if (!strcmp(alpn, CS_ALPN_RAFT)) {
		cl->raft.fn = fn;
		cl->raft.ctx = ctx;
	} else if (!strcmp(alpn, CS_ALPN_FORWARD)) {
		cl->forward.fn = fn;
		cl->forward.ctx = ctx;
	}
}

void cs_cluster_set_handshake_timeout(struct cs_cluster *cl, unsigned ms)
{
	cl->timeout_ms = ms ? ms : CS_CLUSTER_HANDSHAKE_MS;
}

void cs_cluster_get_stats(const struct cs_cluster *cl, struct cs_cluster_stats *out)
{
	*out = cl->stats;
}

static void server_closed(uv_handle_t *h)
{
	struct cs_cluster *cl = h->data;
	cl->server_closed = true;
	maybe_free_listener(cl);
}

void cs_cluster_close(struct cs_cluster *cl, cs_cluster_close_cb cb, void *ctx)
{
	if (cl->closing)
		return;
	cl->closing = true;
	cl->close_cb = cb;
	cl->close_ctx = ctx;
	uv_close((uv_handle_t *)&cl->server, server_closed);
	for (struct hconn *c = cl->conns; c; c = c->next)
		hconn_close(c, NULL);
}
