/*
 * c-raft's raft_uv_transport over mutual TLS, through a socketpair bridge (contract in
 * transport.h; design in docs/architecture.md, C8).
 *
 * Happy path, outbound (t->connect from raft):
 *   parse the IP literal → uv_tcp_connect, 5 s deadline → SSL (client ctx, memory BIOs,
 *   ALPN custos-raft, host "node-<id>") → handshake → ALPN + verify re-checked → raft's
 *   24-byte preamble and our padded address sent inside TLS (PH_ACK) → ack byte 0x01 →
 *   socketpair: raft's end is a raft_malloc'ed uv_pipe_t, ours is conn->pipe → deadline
 *   stopped → req->cb(req, raft_end, 0) from this TCP read callback (never from inside
 *   connect) → pump (PH_PUMP).
 * Happy path, inbound (cs_transport_accept from the cluster listener, TLS already done):
 *   deadline restarted → preamble read exactly (no over-read past it) → protocol 1,
 *   id != 0, address length in (0, 256] and a multiple of 8, NUL-terminated → peer
 *   certificate has DNS SAN "node-<claimed id>" (X509_check_host, subject CN never
 *   used) → claim callback (address) → socketpair → ack byte → accept_cb(t, id,
 *   address, raft_end) → pump.
 * Pump: TCP read → read BIO → SSL_read loop → uv_write to our pipe end; our pipe read →
 *   SSL_write (all-or-nothing with memory BIOs) → write BIO → one uv_write on the TCP.
 *   The write BIO is flushed after every event (TLS 1.3 may write while reading).
 *   Back-pressure: a side whose destination queue exceeds 4 MiB stops reading until it
 *   drains below 1 MiB; decrypted data still held in the SSL is drained on resume.
 *
 * Failure modes (each tears the connection down: close TCP, our pipe end, the timer;
 * the conn is freed in the last close callback, which is also where a pending connect's
 * callback fires — exactly once, with RAFT_NOCONNECTION, or RAFT_CANCELED while closing):
 * - unparsable address, or uv_tcp_connect refused synchronously: connect returns
 *   RAFT_NOCONNECTION and the callback never fires;
 * - TCP error/EOF, TLS failure (unknown CA, wrong node name, protocol), no/other ALPN,
 *   deadline, bad ack, bad preamble, certificate/claim mismatch;
 * - EOF from raft's end (raft closed the stream) or a write error on either side;
 * - peer's close_notify.
 * Raft sees its end of a torn-down bridge as EOF (inbound) or EPIPE on its next write
 * (outbound; SIGPIPE must be ignored) and reconnects.
 * Close (t->close): every conn torn down (pending connects → RAFT_CANCELED), a private
 * handle closed so that the close callback never runs inside t->close, and close_cb(t)
 * once all are gone.
 */
#include "raft/transport.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"
#include "raft/cluster.h"
#include "raft/wire.h"
#include "storage/cluster_tls.h"

#define PREAMBLE_LEN    24  /* u64 protocol, u64 id, u64 address length */
#define MAX_ADDRESS_LEN 256 /* padded, NUL included */
#define RAFT_PROTOCOL   1
#define ACK_BYTE        0x01
#define READ_BUF        65536
#define PLAIN_CHUNK     16384 /* one TLS record */

enum phase {
	PH_CONNECTING, /* outbound: TCP connect in flight */
	PH_TLS,        /* outbound: TLS handshake */
	PH_ACK,        /* outbound: preamble sent, waiting for the ack byte */
	PH_PREAMBLE,   /* inbound: reading raft's preamble */
	PH_PUMP,       /* bridged */
	PH_CLOSING,
};

struct transport;

struct conn {
	struct transport *tr;
	struct conn *prev, *next;
	enum phase phase;
	uv_tcp_t *tcp; /* malloc'ed (inbound: handed over by the listener); freed on close */
	uv_connect_t connect_req;
	uv_pipe_t pipe; /* our end of the socketpair */
	bool pipe_init;
	uv_timer_t timer; /* handshake deadline */
	int open_handles;
	SSL *ssl;
	bool tcp_paused, pipe_paused; /* reading stopped by back-pressure */
	/* outbound: pending until the callback fired (NULL afterwards) */
	struct raft_uv_connect *req;
	raft_uv_connect_cb cb;
	raft_id peer_id;
	int fail_status;
	bool inbound;
	struct cs_wire wire; /* inbound: raft's message framing, checked before raft reads it */
	/* inbound preamble */
	uint8_t pre[PREAMBLE_LEN + MAX_ADDRESS_LEN];
	size_t pre_have, pre_want;
	char tcp_buf[READ_BUF];
	char pipe_buf[READ_BUF];
};

struct transport {
	struct raft_uv_transport *t;
	uv_loop_t *loop;
	SSL_CTX *client_ctx;
	cs_transport_claim_fn check_claim;
	void *claim_ctx;
	unsigned timeout_ms;
	uint64_t max_payload;
	bool require_ip_san;
	struct sockaddr_storage source; /* AF_UNSPEC: let the kernel pick */
	raft_id id;
	char address[MAX_ADDRESS_LEN];
	raft_uv_accept_cb accept_cb;
	bool listening;
	bool closing;
	bool close_handle_done;
	bool close_fired;
	uv_timer_t close_handle; /* only closed: defers close_cb out of t->close */
	raft_uv_transport_close_cb close_cb;
	struct conn *conns;
	struct cs_transport_stats stats;
};

static void conn_close(struct conn *c, int status, const char *why);
static void pump_in(struct conn *c);

/* ---------------------------------------------------------------- helpers */

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void maybe_closed(struct transport *tr)
{
	if (!tr->closing || !tr->close_handle_done || tr->conns || tr->close_fired)
		return;
	tr->close_fired = true;
	/* raft_uv may now finish its own close and release everything: touch nothing. */
	tr->close_cb(tr->t);
}

struct wreq {
	uv_write_t w;
	struct conn *c;
	char data[];
};

static void resume_if_drained(struct conn *c);

static void wreq_done(uv_write_t *w, int status)
{
	struct wreq *r = CS_CONTAINER_OF(w, struct wreq, w);
	struct conn *c = r->c;
	free(r);
	/* Cancelled writes report before their handle's close callback: c is alive. */
	if (c->phase == PH_CLOSING)
		return;
	if (status < 0) {
		conn_close(c, RAFT_NOCONNECTION, uv_strerror(status));
		return;
	}
	resume_if_drained(c);
}

static int conn_write(struct conn *c, uv_stream_t *s, const void *data, size_t len)
{
	struct wreq *r = malloc(sizeof *r + len);
	if (!r)
		return UV_ENOMEM;
	r->c = c;
	memcpy(r->data, data, len);
	uv_buf_t b = uv_buf_init(r->data, (unsigned)len);
	int rv = uv_write(&r->w, s, &b, 1, wreq_done);
	if (rv != 0)
		free(r);
	return rv;
}

static void tls_written(void *ctx, int status)
{
	struct conn *c = ctx;
	/* Cancelled writes report before their handle's close callback: c is alive. */
	if (c->phase == PH_CLOSING)
		return;
	if (status < 0) {
		conn_close(c, RAFT_NOCONNECTION, uv_strerror(status));
		return;
	}
	resume_if_drained(c);
}

/* Send what OpenSSL produced (records, alerts, post-handshake messages) in one write. */
static void flush_tls(struct conn *c)
{
	if (c->phase == PH_CLOSING || !c->ssl || !c->tcp)
		return;
	if (cs_tls_flush_cb(c->ssl, (uv_stream_t *)c->tcp, tls_written, c) != 0)
		conn_close(c, RAFT_NOCONNECTION, "write to peer failed");
}

/* Best effort before closing: an alert or close_notify, if the socket takes it now. */
static void try_flush(struct conn *c)
{
	char tmp[4096];
	BIO *wbio = SSL_get_wbio(c->ssl);
	int n;
	while ((n = BIO_read(wbio, tmp, sizeof tmp)) > 0) {
		uv_buf_t b = uv_buf_init(tmp, (unsigned)n);
		if (uv_try_write((uv_stream_t *)c->tcp, &b, 1) != n)
			break;
	}
}

/* ---------------------------------------------------------------- conn lifecycle */

static void conn_handle_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	if (c->tcp && h == (uv_handle_t *)c->tcp) {
		free(c->tcp);
		c->tcp = NULL;
	}
	if (--c->open_handles > 0)
		return;
	struct transport *tr = c->tr;
	if (c->prev)
		c->prev->next = c->next;
	else
		tr->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	struct raft_uv_connect *req = c->req;
	raft_uv_connect_cb cb = c->cb;
	int status = c->fail_status ? c->fail_status : RAFT_NOCONNECTION;
	SSL_free(c->ssl);
	free(c);
	if (req) {
		/* The one callback of a failed connect: from a close callback, never from
		 * inside t->connect; raft schedules its own retry. */
		tr->stats.connects_failed++;
		cb(req, NULL, status);
	}
	maybe_closed(tr);
}

static struct conn *conn_new(struct transport *tr)
{
	struct conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->tr = tr;
	uv_timer_init(tr->loop, &c->timer);
	c->timer.data = c;
	c->open_handles = 1;
	c->next = tr->conns;
	if (tr->conns)
		tr->conns->prev = c;
	tr->conns = c;
	return c;
}

static void conn_close(struct conn *c, int status, const char *why)
{
	if (c->phase == PH_CLOSING)
		return;
	bool bridged = c->phase == PH_PUMP;
	c->phase = PH_CLOSING;
	if (status && !c->fail_status)
		c->fail_status = status;
	if (why) {
		cs_debug("raft transport: %s connection %s: %s",
			 c->inbound ? "inbound" : "outbound", bridged ? "closed" : "refused", why);
	}
	if (c->ssl && c->tcp) {
		if (bridged || SSL_is_init_finished(c->ssl))
			SSL_shutdown(c->ssl);
		try_flush(c);
	}
	ERR_clear_error();
	if (c->tcp)
		uv_close((uv_handle_t *)c->tcp, conn_handle_closed);
	if (c->pipe_init)
		uv_close((uv_handle_t *)&c->pipe, conn_handle_closed);
	uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

static void deadline_cb(uv_timer_t *h)
{
	conn_close(h->data, RAFT_NOCONNECTION, "handshake timed out");
}

/*
 * Arm the handshake deadline from the current time, not the loop's cached time: connect
 * and accept may run long after the loop last updated its clock (a caller outside any
 * callback, or a callback after slow work), and a deadline measured from a stale clock
 * fires early by that much.
 */
static void arm_deadline(struct conn *c, struct transport *tr)
{
	uv_update_time(tr->loop);
	uv_timer_start(&c->timer, deadline_cb, tr->timeout_ms, 0);
}

/* OpenSSL's reason for the last failure, for logs (never secret). */
static const char *ssl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	return r ? r : "TLS error";
}

/* After SSL_read/SSL_do_handshake returned r <= 0: true if we should just wait for more
 * input; otherwise the conn has been closed. */
static bool ssl_wait(struct conn *c, int r)
{
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return true;
	case SSL_ERROR_ZERO_RETURN:
		conn_close(c, RAFT_NOCONNECTION, "peer sent close_notify");
		return false;
	default:
		conn_close(c, RAFT_NOCONNECTION, ssl_reason());
		return false;
	}
}

/* ---------------------------------------------------------------- the bridge */

static void raft_free_handle(uv_handle_t *h)
{
	raft_free(h);
}

static void pipe_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;
	*buf = uv_buf_init(c->pipe_buf, sizeof c->pipe_buf);
}

/* raft → peer: plaintext from raft's end, encrypted onto the TCP. */
static void pipe_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	if (c->phase == PH_CLOSING || nread == 0)
		return;
	if (nread < 0) {
		/* raft closed its end: the normal end of a connection. */
		conn_close(c, 0, nread == UV_EOF ? NULL : uv_strerror((int)nread));
		return;
	}
	if (SSL_write(c->ssl, buf->base, (int)nread) != nread) {
		conn_close(c, RAFT_NOCONNECTION, ssl_reason());
		return;
	}
	c->tr->stats.bytes_out += (uint64_t)nread;
	flush_tls(c);
	if (c->phase != PH_CLOSING && c->tcp->write_queue_size > CS_TRANSPORT_QUEUE_HIGH) {
		uv_read_stop(s);
		c->pipe_paused = true;
		c->tr->stats.pauses++;
	}
}

static void tcp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void resume_if_drained(struct conn *c)
{
	if (c->phase != PH_PUMP)
		return;
	if (c->pipe_paused && c->tcp->write_queue_size < CS_TRANSPORT_QUEUE_LOW) {
		c->pipe_paused = false;
		uv_read_start((uv_stream_t *)&c->pipe, pipe_alloc, pipe_read);
	}
	if (c->tcp_paused && c->pipe.write_queue_size < CS_TRANSPORT_QUEUE_LOW) {
		c->tcp_paused = false;
		uv_read_start((uv_stream_t *)c->tcp, tcp_alloc, tcp_read);
		pump_in(c); /* the SSL may hold records we read before pausing */
		flush_tls(c);
	}
}

/* The socketpair: returns raft's end (raft_malloc'ed, raft closes and frees it), ours is
 * c->pipe and is already reading. NULL on failure (then nothing was handed out). */
static uv_pipe_t *bridge(struct conn *c)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return NULL;
	uv_pipe_t *rp = raft_malloc(sizeof *rp);
	if (!rp) {
		close(sv[0]);
		close(sv[1]);
		return NULL;
	}
	uv_pipe_init(c->tr->loop, rp, 0);
	if (uv_pipe_open(rp, sv[0]) != 0) {
		close(sv[0]);
		close(sv[1]);
		uv_close((uv_handle_t *)rp, raft_free_handle);
		return NULL;
	}
	uv_pipe_init(c->tr->loop, &c->pipe, 0);
	c->pipe.data = c;
	c->pipe_init = true;
	c->open_handles++;
	if (uv_pipe_open(&c->pipe, sv[1]) != 0) {
		close(sv[1]);
		uv_close((uv_handle_t *)rp, raft_free_handle); /* closes sv[0] */
		return NULL;
	}
	if (uv_read_start((uv_stream_t *)&c->pipe, pipe_alloc, pipe_read) != 0) {
		uv_close((uv_handle_t *)rp, raft_free_handle);
		return NULL;
	}
	return rp;
}

static void establish_outbound(struct conn *c)
{
	uv_pipe_t *rp = bridge(c);
	if (!rp) {
		conn_close(c, RAFT_NOCONNECTION, "socketpair bridge failed");
		return;
	}
	uv_timer_stop(&c->timer);
	c->phase = PH_PUMP;
	struct raft_uv_connect *req = c->req;
	c->req = NULL;
	c->tr->stats.connects_ok++;
	c->cb(req, (uv_stream_t *)rp, 0); /* raft owns rp now */
}

/* Is the host of "ip:port" / "[ipv6]:port" one of the certificate's IP SANs? */
static bool address_in_cert(X509 *cert, const char *address)
{
	char host[64];
	const char *colon = strrchr(address, ':');
	if (!colon)
		return false;
	const char *h = address;
	size_t hl = (size_t)(colon - address);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof host)
		return false;
	memcpy(host, h, hl);
	host[hl] = 0;
	return X509_check_ip_asc(cert, host, 0) == 1;
}

static void establish_inbound(struct conn *c)
{
	struct transport *tr = c->tr;
	uint64_t proto = get_u64(c->pre);
	raft_id id = get_u64(c->pre + 8);
	const char *address = (const char *)c->pre + PREAMBLE_LEN;
	size_t alen = c->pre_want - PREAMBLE_LEN;
	if (proto != RAFT_PROTOCOL || id == 0 || !memchr(address, 0, alen) || !*address) {
		tr->stats.accepts_refused++;
		conn_close(c, 0, "malformed raft handshake");
		return;
	}
	/* The certificate proves which raft id the peer may claim. */
	char name[32];
	cs_cluster_tls_node_name(id, name, sizeof name);
	X509 *peer = SSL_get0_peer_certificate(c->ssl);
	if (!peer || SSL_get_verify_result(c->ssl) != X509_V_OK ||
	    X509_check_host(peer, name, strlen(name), X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, NULL) !=
		1) {
		tr->stats.accepts_refused++;
		conn_close(c, 0, "claimed raft id does not match certificate");
		return;
	}
	if (tr->require_ip_san && !address_in_cert(peer, address)) {
		tr->stats.accepts_refused++;
		conn_close(c, 0, "claimed address is not in the certificate");
		return;
	}
	/* Replies go to the claimed address: it must belong to that id. */
	if (tr->check_claim && !tr->check_claim(tr->claim_ctx, id, address)) {
		tr->stats.accepts_refused++;
		conn_close(c, 0, "claimed address refused");
		return;
	}
	uv_pipe_t *rp = bridge(c);
	static const uint8_t ack = ACK_BYTE;
	if (!rp || SSL_write(c->ssl, &ack, 1) != 1) {
		if (rp)
			uv_close((uv_handle_t *)rp, raft_free_handle);
		tr->stats.accepts_refused++;
		conn_close(c, 0, "socketpair bridge failed");
		return;
	}
	uv_timer_stop(&c->timer);
	c->phase = PH_PUMP;
	c->peer_id = id;
	cs_wire_init(&c->wire, tr->max_payload);
	tr->stats.accepts_ok++;
	char addr[MAX_ADDRESS_LEN];
	snprintf(addr, sizeof addr, "%s", address);
	tr->accept_cb(tr->t, id, addr, (uv_stream_t *)rp); /* raft owns rp now */
}

/* Consume decrypted input according to the phase. */
static void pump_in(struct conn *c)
{
	char plain[PLAIN_CHUNK];
	while (c->phase != PH_CLOSING && !c->tcp_paused) {
		int r;
		switch (c->phase) {
		case PH_ACK: {
			uint8_t b;
			r = SSL_read(c->ssl, &b, 1);
			if (r <= 0) {
				ssl_wait(c, r);
				return;
			}
			if (b != ACK_BYTE) {
				conn_close(c, RAFT_NOCONNECTION, "bad handshake ack");
				return;
			}
			establish_outbound(c);
			break;
		}
		case PH_PREAMBLE:
			/* Read exactly what is missing: nothing past the address. */
			r = SSL_read(c->ssl, c->pre + c->pre_have,
				     (int)(c->pre_want - c->pre_have));
			if (r <= 0) {
				ssl_wait(c, r);
				return;
			}
			c->pre_have += (size_t)r;
			if (c->pre_have < c->pre_want)
				break;
			if (c->pre_want == PREAMBLE_LEN) {
				uint64_t alen = get_u64(c->pre + 16);
				if (alen == 0 || alen > MAX_ADDRESS_LEN || alen % 8 != 0) {
					c->tr->stats.accepts_refused++;
					conn_close(c, 0, "bad address length in raft handshake");
					return;
				}
				c->pre_want = PREAMBLE_LEN + (size_t)alen;
				break;
			}
			establish_inbound(c);
			break;
		case PH_PUMP:
			r = SSL_read(c->ssl, plain, sizeof plain);
			if (r <= 0) {
				ssl_wait(c, r);
				return;
			}
			/* raft_uv trusts the lengths it reads (wire.h): only messages it decodes
			 * safely reach it. On an outbound connection the peer has nothing to say
			 * after its ack (raft never reads there). */
			if (!c->inbound) {
				c->tr->stats.frames_refused++;
				conn_close(c, RAFT_NOCONNECTION, "unexpected data from raft peer");
				return;
			}
			if (cs_wire_feed(&c->wire, (const uint8_t *)plain, (size_t)r) != 0) {
				c->tr->stats.frames_refused++;
				cs_warn("raft: refused a malformed message from node %llu: %s",
					(unsigned long long)c->peer_id, c->wire.error);
				conn_close(c, 0, c->wire.error);
				return;
			}
			c->tr->stats.bytes_in += (uint64_t)r;
			if (conn_write(c, (uv_stream_t *)&c->pipe, plain, (size_t)r) != 0) {
				conn_close(c, RAFT_NOCONNECTION, "write to raft failed");
				return;
			}
			if (c->pipe.write_queue_size > CS_TRANSPORT_QUEUE_HIGH) {
				uv_read_stop((uv_stream_t *)c->tcp);
				c->tcp_paused = true;
				c->tr->stats.pauses++;
			}
			break;
		default:
			return;
		}
	}
}

/* ---------------------------------------------------------------- TCP side */

static void tcp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;
	*buf = uv_buf_init(c->tcp_buf, sizeof c->tcp_buf);
}

static void handshake(struct conn *c)
{
	int r = SSL_do_handshake(c->ssl);
	if (r != 1) {
		ssl_wait(c, r);
		return;
	}
	const unsigned char *p = NULL;
	unsigned int plen = 0;
	SSL_get0_alpn_selected(c->ssl, &p, &plen);
	if (plen != strlen(CS_ALPN_RAFT) || memcmp(p, CS_ALPN_RAFT, plen) != 0) {
		conn_close(c, RAFT_NOCONNECTION, "server did not select ALPN custos-raft");
		return;
	}
	if (SSL_get_verify_result(c->ssl) != X509_V_OK) {
		conn_close(c, RAFT_NOCONNECTION, "server certificate not verified");
		return;
	}
	/* raft's own handshake, inside TLS: protocol, our id, our padded address. */
	struct transport *tr = c->tr;
	size_t alen = (strlen(tr->address) + 1 + 7) & ~(size_t)7;
	uint8_t msg[PREAMBLE_LEN + MAX_ADDRESS_LEN] = {0};
	put_u64(msg, RAFT_PROTOCOL);
	put_u64(msg + 8, tr->id);
	put_u64(msg + 16, alen);
	memcpy(msg + PREAMBLE_LEN, tr->address, strlen(tr->address));
	if (SSL_write(c->ssl, msg, (int)(PREAMBLE_LEN + alen)) != (int)(PREAMBLE_LEN + alen)) {
		conn_close(c, RAFT_NOCONNECTION, ssl_reason());
		return;
	}
	c->phase = PH_ACK;
	pump_in(c); /* the ack may already be buffered */
}

static void tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	if (c->phase == PH_CLOSING || nread == 0)
		return;
	if (nread < 0) {
		conn_close(c, RAFT_NOCONNECTION,
			   nread == UV_EOF ? "peer closed the connection"
					   : uv_strerror((int)nread));
		return;
	}
	if (BIO_write(SSL_get_rbio(c->ssl), buf->base, (int)nread) != nread) {
		conn_close(c, RAFT_NOCONNECTION, "out of memory");
		return;
	}
	if (c->phase == PH_TLS)
		handshake(c);
	else
		pump_in(c);
	flush_tls(c);
}

static void connect_cb(uv_connect_t *creq, int status)
{
	struct conn *c = CS_CONTAINER_OF(creq, struct conn, connect_req);
	if (c->phase == PH_CLOSING)
		return;
	if (status < 0) {
		conn_close(c, RAFT_NOCONNECTION, uv_strerror(status));
		return;
	}
	uv_tcp_nodelay(c->tcp, 1);
	c->ssl = cs_cluster_tls_client_ssl(c->tr->client_ctx, c->peer_id, CS_ALPN_RAFT);
	if (!c->ssl) {
		conn_close(c, RAFT_NOCONNECTION, ssl_reason());
		return;
	}
	c->phase = PH_TLS;
	if (uv_read_start((uv_stream_t *)c->tcp, tcp_alloc, tcp_read) != 0) {
		conn_close(c, RAFT_NOCONNECTION, "read failed");
		return;
	}
	handshake(c);
	flush_tls(c);
}

/* ---------------------------------------------------------------- raft_uv_transport */

static int tr_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
	struct transport *tr = t->impl;
	if (id == 0 || !address || strlen(address) + 1 > MAX_ADDRESS_LEN) {
		snprintf(t->errmsg, sizeof t->errmsg, "raft id 0 or address too long");
		return RAFT_INVALID;
	}
	tr->id = id;
	snprintf(tr->address, sizeof tr->address, "%s", address);
	return 0;
}

static int tr_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
	struct transport *tr = t->impl;
	/* The socket is the cluster listener's; from now on it may hand us connections. */
	tr->accept_cb = cb;
	tr->listening = true;
	return 0;
}

static int tr_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
		      const char *address, raft_uv_connect_cb cb)
{
	struct transport *tr = t->impl;
	struct sockaddr_storage sa;
	if (tr->closing)
		return RAFT_CANCELED;
	if (cs_cluster_parse_address(address, &sa) != 0) {
		snprintf(t->errmsg, sizeof t->errmsg, "raft peer address %.200s is not ip:port",
			 address);
		return RAFT_NOCONNECTION;
	}
	struct conn *c = conn_new(tr);
	uv_tcp_t *tcp = malloc(sizeof *tcp);
	if (!c || !tcp) {
		free(tcp);
		if (c)
			conn_close(c, 0, NULL);
		return RAFT_NOMEM;
	}
	uv_tcp_init(tr->loop, tcp);
	tcp->data = c;
	c->tcp = tcp;
	c->open_handles++;
	c->peer_id = id;
	c->phase = PH_CONNECTING;
	int rv = cs_cluster_bind_source(tcp, &tr->source);
	if (rv == 0)
		rv = uv_tcp_connect(&c->connect_req, tcp, (struct sockaddr *)&sa, connect_cb);
	if (rv != 0) {
		/* Report synchronously instead: the callback must then never fire. */
		snprintf(t->errmsg, sizeof t->errmsg, "connect %.200s: %s", address,
			 uv_strerror(rv));
		conn_close(c, 0, NULL);
		return RAFT_NOCONNECTION;
	}
	c->req = req;
	c->cb = cb;
	arm_deadline(c, tr);
	return 0;
}

static void close_handle_cb(uv_handle_t *h)
{
	struct transport *tr = h->data;
	tr->close_handle_done = true;
	maybe_closed(tr);
}

static void tr_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
	struct transport *tr = t->impl;
	tr->closing = true;
	tr->listening = false;
	tr->close_cb = cb;
	for (struct conn *c = tr->conns; c; c = c->next)
		conn_close(c, RAFT_CANCELED, NULL);
	uv_timer_init(tr->loop, &tr->close_handle);
	tr->close_handle.data = tr;
	uv_close((uv_handle_t *)&tr->close_handle, close_handle_cb);
}

/* ---------------------------------------------------------------- public */

int cs_transport_init(struct raft_uv_transport *t, uv_loop_t *loop,
		      const struct cs_transport_config *cfg)
{
	memset(t, 0, sizeof *t);
	if (!cfg || !cfg->client_ctx)
		return CS_EINVAL;
	struct transport *tr = calloc(1, sizeof *tr);
	if (!tr)
		return CS_ENOMEM;
	tr->t = t;
	tr->loop = loop;
	if (cs_cluster_source_address(cfg->source_address, &tr->source) != 0) {
		free(tr);
		return CS_EINVAL;
	}
	SSL_CTX_up_ref(cfg->client_ctx);
	tr->client_ctx = cfg->client_ctx;
	tr->check_claim = cfg->check_claim;
	tr->claim_ctx = cfg->claim_ctx;
	tr->require_ip_san = cfg->require_ip_san;
	tr->max_payload = cfg->max_message_bytes;
	tr->timeout_ms =
	    cfg->handshake_timeout_ms ? cfg->handshake_timeout_ms : CS_TRANSPORT_HANDSHAKE_MS;
	t->impl = tr; /* raft_uv overwrites t->data */
	t->init = tr_init;
	t->listen = tr_listen;
	t->connect = tr_connect;
	t->close = tr_close;
	return 0;
}

void cs_transport_free(struct raft_uv_transport *t)
{
	struct transport *tr = t->impl;
	if (!tr)
		return;
	SSL_CTX_free(tr->client_ctx);
	free(tr);
	t->impl = NULL;
}

void cs_transport_accept(void *tp, SSL *ssl, uv_tcp_t *tcp)
{
	struct raft_uv_transport *t = tp;
	struct transport *tr = t->impl;
	if (!tr->listening || tr->closing) {
		tr->stats.accepts_refused++;
		cs_cluster_conn_release(ssl, tcp);
		return;
	}
	struct conn *c = conn_new(tr);
	if (!c) {
		tr->stats.accepts_refused++;
		cs_cluster_conn_release(ssl, tcp);
		return;
	}
	c->tcp = tcp;
	tcp->data = c;
	c->open_handles++;
	c->ssl = ssl;
	c->inbound = true;
	c->phase = PH_PREAMBLE;
	c->pre_want = PREAMBLE_LEN;
	arm_deadline(c, tr);
	if (uv_read_start((uv_stream_t *)tcp, tcp_alloc, tcp_read) != 0) {
		conn_close(c, 0, "read failed");
		return;
	}
	pump_in(c); /* the preamble may have arrived with the handshake */
	flush_tls(c);
}

void cs_transport_get_stats(const struct raft_uv_transport *t, struct cs_transport_stats *out)
{
	const struct transport *tr = t->impl;
	*out = tr->stats;
}
