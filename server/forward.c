/*
 * Request forwarding from a standby to the active node (contract in forward.h).
 *
 * Happy path, per request:
 *   cs_forward → job → an idle pooled conn for (addr, id, generation), else a new conn
 *   (uv_tcp_connect, CONNECT deadline) → SSL over memory BIOs, ALPN custos-forward, host
 *   node-<id> → handshake → ALPN and verification re-checked → send_head: request line,
 *   filtered headers, X-Custos-Forwarded-For, Content-Length → pump_body: 64 KiB at a
 *   time from memory or pread(2) on the spool file, only while the TCP write queue is
 *   under SEND_HIGH (resumed by write completions) → TCP reads → read BIO → SSL_read →
 *   http-parser (response mode) → head: buffered (≤ 1 MiB, Content-Length known) or
 *   streamed (chunked, EOF-delimited or bigger) → body: appended, or
 *   cs_http_stream_write → message complete → cs_http_respond / cs_http_stream_end →
 *   done(0) → the conn is idle in the pool (keep-alive) or closes.
 *
 * Streaming back-pressure: when the client's queue passes CS_HTTP_STREAM_HIGH the
 * parser is paused mid-body (the unparsed rest of the plaintext is kept in c->pending),
 * TCP reading stops and the response deadline is suspended (the HTTP layer's own write
 * deadline watches the slow client); the drain callback resumes parsing, the SSL's
 * buffered records, then reading. Memory per relay: < 4 MiB queued for the client plus
 * one TCP read and one TLS record here.
 *
 * Failure modes: conn_fail records why and closes the conn; a streamed relay is aborted
 * on the client side right away. The job's outcome is settled in the conn's last close
 * callback — retried once on a fresh conn (idempotent method, reused conn, no response
 * byte seen), or done(status != 0) — so done never runs inside cs_forward or a parser
 * callback, and runs exactly once. Objects die in their last close callback; the
 * forwarder once its private handle and every conn have closed.
 */
#include "server/forward.h"

#include <errno.h>
#include <http_parser.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"
#include "raft/cluster.h"
#include "storage/cluster_tls.h"

#define IDLE_MS          60000u      /* under the active node's 5 min keep-alive */
#define BUFFER_MAX       (1u << 20)  /* responses above this (or chunked) are streamed */
#define SEND_HIGH        (1u << 20)  /* TCP write queue above which the body pump waits */
#define BODY_CHUNK       (64u << 10) /* body bytes per SSL_write */
#define READ_BUF         (64u << 10)
#define PLAIN_CHUNK      (16u << 10) /* one TLS record */
#define MAX_HEADER_BYTES (64u << 10)
#define MAX_HEADERS      256
#define ADDR_MAX         64

enum cstate {
	ST_CONNECTING, /* TCP connect in flight (job attached) */
	ST_HANDSHAKE,  /* TLS handshake (job attached) */
	ST_BUSY,       /* request out, response in */
	ST_IDLE,       /* pooled */
	ST_CLOSING,
};

struct job {
	struct job *next; /* waiting queue */
	struct cs_http_req *hreq;
	cs_forward_done_cb cb;
	void *ctx;
	char addr[ADDR_MAX];
	uint64_t id;
	bool retried;
	bool released; /* hreq was handed back to the HTTP layer (stream aborted) */
	bool sent;     /* the request began to go out on some conn */
};

/* A response header: offsets into conn.hstrs (the buffer moves while it grows). */
struct hoff {
	size_t name, value;
};

struct conn {
	struct cs_forwarder *fw;
	struct conn *prev, *next;
	enum cstate state;
	char addr[ADDR_MAX];
	uint64_t id;
	unsigned gen;
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_connect_t creq;
	int handles;
	SSL *ssl;
	struct job *job;
	bool reused;    /* has completed a request before */
	bool no_reuse;  /* close after this request */
	bool got_bytes; /* a response byte arrived for the current job */
	bool reading;
	bool paused;   /* waiting for the client's queue to drain */
	bool in_parse; /* http_parser_execute on the stack */
	int fail_status;
	char errmsg[200];
	/* request body */
	uint64_t body_off, body_len;
	bool sending;
	bool body_stream; /* relaying a streamed body (hreq->body_stream) as it arrives */
	bool body_paused; /* we paused the client: the TCP write queue is full */
	/* response */
	http_parser parser;
	struct cs_buf hstrs; /* header names and values, NUL-separated */
	struct hoff hoffs[MAX_HEADERS];
	size_t n_hdrs;
	bool in_value;
	int status;
	bool streaming;
	bool head_req;
	bool eof_body; /* neither chunked nor Content-Length: the body ends at EOF */
	bool done_msg;
	uint64_t content_length; /* for HEAD: what a GET would carry */
	struct cs_buf body;
	struct cs_buf pending; /* plaintext not parsed yet (paused mid-body) */
	size_t pending_off;
	char rbuf[READ_BUF];
};

struct cs_forwarder {
	uv_loop_t *loop;
	SSL_CTX *ctx;
	unsigned gen;
	unsigned connect_ms, response_ms;
	struct sockaddr_storage source; /* AF_UNSPEC: let the kernel pick */
	struct conn *conns;
	struct job *qhead, *qtail;
	bool closing;
	bool handle_closed;
	uv_timer_t close_handle; /* only closed: defers close_cb out of cs_forward_close */
	void (*close_cb)(void *ctx);
	void *close_ctx;
	struct cs_forward_stats stats;
};

static void conn_fail(struct conn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void conn_close(struct conn *c);
static void job_start(struct cs_forwarder *fw, struct job *j);
static void pump_in(struct conn *c);
static void pump_body(struct conn *c);
static void kick_queue(struct cs_forwarder *fw);

/* ---------------------------------------------------------------- small helpers */

static const char *ssl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	return r ? r : "TLS error";
}

static bool is_idempotent(const char *m)
{
	return !strcmp(m, "GET") || !strcmp(m, "HEAD") || !strcmp(m, "OPTIONS") ||
	       !strcmp(m, "LIST");
}

/* Hop-by-hop headers (RFC 7230 §6.1) and those we regenerate: never relayed. */
static bool hop_by_hop(const char *name)
{
	static const char *const names[] = {
	    "Connection", "Keep-Alive", "Transfer-Encoding", "Content-Length",   "Expect",
	    "Upgrade",    "TE",         "Trailer",           "Proxy-Connection",
	};
	for (size_t i = 0; i < CS_ARRAY_LEN(names); i++)
		if (!strcasecmp(name, names[i]))
			return true;
	return false;
}

/* Is `name` one of the comma-separated tokens of a Connection header value? Those
 * headers are hop-by-hop too. */
static bool listed_in(const char *list, const char *name)
{
	size_t nl = strlen(name);
	for (const char *p = list; p && *p;) {
		p += strspn(p, " \t,");
		size_t tl = strcspn(p, " \t,");
		if (tl == nl && !strncasecmp(p, name, nl))
			return true;
		p += tl;
	}
	return false;
}

static void stats_fail(struct cs_forwarder *fw)
{
	fw->stats.failed++;
}

/* ---------------------------------------------------------------- writing */

static void written(void *ctx, int status)
{
	struct conn *c = ctx;
	/* Cancelled writes report before their handle's close callback: c is alive. */
	if (c->state == ST_CLOSING)
		return;
	if (status < 0) {
		conn_fail(c, CS_EIO, "write to %s: %s", c->addr, uv_strerror(status));
		return;
	}
	if (c->sending)
		pump_body(c);
	if (c->body_paused && c->state == ST_BUSY && c->tcp.write_queue_size < SEND_HIGH / 4) {
		c->body_paused = false;
		cs_http_body_resume(c->job->hreq); /* may call body_data at once */
	}
}

/* Queue whatever OpenSSL produced (records, alerts) as one uv_write. */
static void flush_tls(struct conn *c)
{
	if (c->state == ST_CLOSING || !c->ssl)
		return;
	int rv = cs_tls_flush_cb(c->ssl, (uv_stream_t *)&c->tcp, written, c);
	if (rv != 0)
		conn_fail(c, CS_EIO, "write to %s: %s", c->addr, uv_strerror(rv));
}

/* Encrypt plaintext (all or nothing: memory BIOs, no partial writes). */
static bool ssl_send(struct conn *c, const void *p, size_t n)
{
	ERR_clear_error();
	if (n && SSL_write(c->ssl, p, (int)n) != (int)n) {
		conn_fail(c, CS_EIO, "TLS write to %s: %s", c->addr, ssl_reason());
		return false;
	}
	return true;
}

/* The request head. Holds the client's token: wiped once encrypted. */
static bool send_head(struct conn *c)
{
	struct cs_http_req *h = c->job->hreq;
	const char *conn_hdr = cs_http_header_get(h, "Connection");
	struct cs_buf b = CS_BUF_INIT;
	cs_buf_printf(&b, "%s %s HTTP/1.1\r\n", h->method, h->url);
	for (size_t i = 0; i < h->n_headers; i++) {
		const char *n = h->headers[i].name;
		if (hop_by_hop(n) || !strcasecmp(n, "X-Custos-Forwarded-For") ||
		    !strcasecmp(n, CS_FORWARD_HOPS_HEADER) || (conn_hdr && listed_in(conn_hdr, n)))
			continue;
		cs_buf_printf(&b, "%s: %s\r\n", n, h->headers[i].value);
	}
	cs_buf_printf(&b, "X-Custos-Forwarded-For: %s\r\n" CS_FORWARD_HOPS_HEADER ": %d\r\n",
		      h->remote_addr, cs_forward_hops(h) + 1);
	if (c->body_stream)
		cs_buf_puts(&b, "Transfer-Encoding: chunked\r\n\r\n"); /* as it arrives */
	else
		cs_buf_printf(&b, "Content-Length: %llu\r\n\r\n", (unsigned long long)c->body_len);
	bool ok = ssl_send(c, b.data, b.len);
	cs_buf_free_secure(&b);
	return ok;
}

/* A piece of a streamed request body, relayed as one chunk; the client is paused while
 * the TCP write queue is full (resumed from `written`). */
static void stream_body_data(void *ctx, const char *p, size_t n)
{
	struct conn *c = ctx;
	if (c->state != ST_BUSY || !c->body_stream)
		return;
	char hdr[24];
	int hl = snprintf(hdr, sizeof hdr, "%zx\r\n", n);
	if (!ssl_send(c, hdr, (size_t)hl) || !ssl_send(c, p, n) || !ssl_send(c, "\r\n", 2))
		return;
	flush_tls(c);
	if (c->state != ST_BUSY)
		return;
	uv_timer_again(&c->timer);
	if (c->tcp.write_queue_size >= SEND_HIGH && !c->body_paused) {
		c->body_paused = true;
		cs_http_body_pause(c->job->hreq);
	}
}

static void stream_body_end(void *ctx, int err)
{
	struct conn *c = ctx;
	if (c->state != ST_BUSY || !c->body_stream)
		return;
	c->body_stream = false;
	if (err) {
		conn_fail(c, CS_EIO, "the client's request body did not complete: %s",
			  strerror(err));
		return;
	}
	if (ssl_send(c, "0\r\n\r\n", 5))
		flush_tls(c);
}

/* Send body bytes while the socket keeps up; write completions call back here. */
static void pump_body(struct conn *c)
{
	struct cs_http_req *h = c->job->hreq;
	char chunk[BODY_CHUNK];
	while (c->sending && c->state == ST_BUSY && c->tcp.write_queue_size < SEND_HIGH) {
		uint64_t left = c->body_len - c->body_off;
		if (left == 0) {
			c->sending = false;
			break;
		}
		size_t n = left < BODY_CHUNK ? (size_t)left : BODY_CHUNK;
		const char *src = chunk;
		if (h->body_fd >= 0) {
			ssize_t k = pread(h->body_fd, chunk, n, (off_t)c->body_off);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0) {
				conn_fail(c, CS_EIO, "read spooled request body: %s",
					  k < 0 ? strerror(errno) : "file shorter than the body");
				return;
			}
			n = (size_t)k;
		} else {
			src = h->body.data + c->body_off;
		}
		bool ok = ssl_send(c, src, n);
		if (src == chunk)
			cs_zero(chunk, n);
		if (!ok)
			return;
		c->body_off += n;
		flush_tls(c);
		/* Progress: the deadline counts from the last byte that moved. */
		uv_timer_again(&c->timer);
	}
}

/* ---------------------------------------------------------------- response parsing */

static void deadline_cb(uv_timer_t *t);

static void reset_response(struct conn *c)
{
	cs_buf_free_secure(&c->hstrs);
	cs_buf_free_secure(&c->body);
	c->n_hdrs = 0;
	c->in_value = false;
	c->status = 0;
	c->streaming = false;
	c->eof_body = false;
	c->done_msg = false;
	c->content_length = 0;
}

static int count_bytes(struct conn *c, size_t len)
{
	if (c->hstrs.len + len > MAX_HEADER_BYTES) {
		conn_fail(c, CS_EIO, "response head from %s too large", c->addr);
		return -1;
	}
	return 0;
}

static int on_msg_begin(http_parser *p)
{
	struct conn *c = p->data;
	reset_response(c);
	return 0;
}

static int on_hfield(http_parser *p, const char *at, size_t len)
{
	struct conn *c = p->data;
	if (count_bytes(c, len + 2))
		return -1;
	if (c->in_value || c->n_hdrs == 0) {
		if (c->n_hdrs == MAX_HEADERS) {
			conn_fail(c, CS_EIO, "too many response headers from %s", c->addr);
			return -1;
		}
		if (c->n_hdrs)
			cs_buf_putc(&c->hstrs, '\0'); /* ends the previous value */
		c->hoffs[c->n_hdrs].name = c->hstrs.len;
		c->hoffs[c->n_hdrs].value = SIZE_MAX;
		c->n_hdrs++;
		c->in_value = false;
	}
	cs_buf_append(&c->hstrs, at, len);
	return 0;
}

static int on_hvalue(http_parser *p, const char *at, size_t len)
{
	struct conn *c = p->data;
	if (count_bytes(c, len + 2))
		return -1;
	if (!c->in_value) {
		cs_buf_putc(&c->hstrs, '\0'); /* ends the name */
		c->hoffs[c->n_hdrs - 1].value = c->hstrs.len;
		c->in_value = true;
	}
	cs_buf_append(&c->hstrs, at, len);
	return 0;
}

/* Relayed headers (pointers into hstrs) and the Content-Type, for the HTTP layer that
 * adds its own framing, Date and Cache-Control. */
static size_t collect_headers(struct conn *c, struct cs_http_header *out, const char **ct)
{
	size_t n = 0;
	const char *conn_hdr = NULL;
	*ct = NULL;
	for (size_t i = 0; i < c->n_hdrs; i++) {
		out[i].name = c->hstrs.data + c->hoffs[i].name;
		out[i].value = c->hoffs[i].value == SIZE_MAX ? out[i].name + strlen(out[i].name)
							     : c->hstrs.data + c->hoffs[i].value;
		if (!strcasecmp(out[i].name, "Connection"))
			conn_hdr = out[i].value;
	}
	for (size_t i = 0; i < c->n_hdrs; i++) {
		const char *name = out[i].name, *v = out[i].value;
		if (!strcasecmp(name, "Content-Type")) {
			*ct = v;
			continue;
		}
		if (hop_by_hop(name) || !strcasecmp(name, "Date") ||
		    (!strcasecmp(name, "Cache-Control") && !strcasecmp(v, "no-store")) ||
		    (conn_hdr && listed_in(conn_hdr, name)))
			continue;
		out[n++] = out[i];
	}
	return n;
}

static void on_client_drain(void *arg);

static int on_hdone(http_parser *p)
{
	struct conn *c = p->data;
	if (c->n_hdrs)
		cs_buf_putc(&c->hstrs, '\0');
	c->status = (int)p->status_code;
	if (c->status < 200)
		return 0; /* 1xx: informational, not relayed; the real head follows */
	bool has_len = (p->flags & F_CONTENTLENGTH) != 0;
	bool chunked = (p->flags & F_CHUNKED) != 0;
	c->content_length = has_len ? p->content_length : 0;
	bool bodyless = c->status == 204 || c->status == 304;
	c->eof_body = !chunked && !has_len && !bodyless && !c->head_req;
	c->streaming = chunked || c->eof_body || (has_len && p->content_length > BUFFER_MAX);
	if (c->streaming) {
		struct cs_http_header hdrs[MAX_HEADERS];
		const char *ct;
		size_t n = collect_headers(c, hdrs, &ct);
		c->fw->stats.streamed++;
		if (cs_http_stream_begin(c->job->hreq, c->status, ct, hdrs, n) != 0) {
			conn_fail(c, CS_EIO, "client went away");
			return -1;
		}
	} else if (has_len && !c->head_req) {
		cs_buf_reserve(&c->body, (size_t)p->content_length);
	}
	/* HEAD: http-parser cannot know that no body follows. */
	return c->head_req ? 1 : 0;
}

static int on_rbody(http_parser *p, const char *at, size_t len)
{
	struct conn *c = p->data;
	if (!c->streaming) {
		if (len > BUFFER_MAX - c->body.len) {
			conn_fail(c, CS_EIO, "response body from %s larger than announced",
				  c->addr);
			return -1;
		}
		cs_buf_append(&c->body, at, len);
		return 0;
	}
	long q = cs_http_stream_write(c->job->hreq, at, len);
	if (q < 0) {
		conn_fail(c, CS_EIO, "client went away");
		return -1;
	}
	uint64_t held = (uint64_t)q + (c->pending.len - c->pending_off) +
			BIO_ctrl_pending(SSL_get_rbio(c->ssl));
	if (held > c->fw->stats.max_queued)
		c->fw->stats.max_queued = held;
	if ((unsigned long)q > CS_HTTP_STREAM_HIGH) {
		c->paused = true;
		/* May call back at once (queue already short, client gone): then it only
		 * clears `paused`, since we are inside the parser. */
		cs_http_stream_on_drain(c->job->hreq, on_client_drain, c);
		if (c->paused)
			http_parser_pause(p, 1);
	}
	return 0;
}

static int on_rdone(http_parser *p)
{
	struct conn *c = p->data;
	if (c->status && c->status < 200) {
		reset_response(c); /* after a 1xx comes the real response */
		return 0;
	}
	c->done_msg = true;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings rsettings = {
    .on_message_begin = on_msg_begin,
    .on_header_field = on_hfield,
    .on_header_value = on_hvalue,
    .on_headers_complete = on_hdone,
    .on_body = on_rbody,
    .on_message_complete = on_rdone,
};

/* ---------------------------------------------------------------- job completion */

/* The pool takes the conn back, or it closes. */
static void conn_idle(struct conn *c)
{
	struct cs_forwarder *fw = c->fw;
	c->state = ST_IDLE;
	c->reused = true;
	c->got_bytes = false;
	reset_response(c);
	cs_buf_free_secure(&c->pending);
	c->pending_off = 0;
	http_parser_init(&c->parser, HTTP_RESPONSE);
	c->parser.data = c;
	uv_timer_start(&c->timer, deadline_cb, IDLE_MS, 0);
	kick_queue(fw);
}

/* The whole response is in: hand it to the client, then done(0). */
static void complete_job(struct conn *c)
{
	struct cs_forwarder *fw = c->fw;
	struct job *j = c->job;
	struct cs_http_req *h = j->hreq;
	/* A body still streaming (answered early, e.g. 403) leaves the request unfinished. */
	bool reusable = !c->no_reuse && !c->sending && !c->body_stream &&
			http_should_keep_alive(&c->parser) && c->gen == fw->gen && !fw->closing;
	c->body_stream = false;
	if (c->streaming) {
		cs_http_stream_end(h);
	} else {
		struct cs_http_header hdrs[MAX_HEADERS];
		const char *ct;
		size_t n = collect_headers(c, hdrs, &ct);
		if (c->head_req)
			cs_http_respond(h, c->status, ct, hdrs, n, NULL, (size_t)c->content_length);
		else
			cs_http_respond(h, c->status, ct, hdrs, n, c->body.data, c->body.len);
	}
	c->job = NULL;
	c->sending = false;
	uv_timer_stop(&c->timer);
	fw->stats.relayed++;
	if (reusable)
		conn_idle(c);
	else
		conn_close(c);
	/* Last: done may forward the next request, onto this very conn. */
	j->cb(j->ctx, h, 0, NULL);
	free(j);
}

/* Parse plaintext. Returns false when parsing must stop (paused, done or failed). */
static bool feed(struct conn *c, const char *data, size_t n)
{
	if (c->state == ST_IDLE) {
		/* Nothing may arrive between responses. */
		c->no_reuse = true;
		conn_close(c);
		return false;
	}
	c->got_bytes = true;
	uv_timer_again(&c->timer);
	c->in_parse = true;
	size_t used = http_parser_execute(&c->parser, &rsettings, data, n);
	c->in_parse = false;
	if (c->state == ST_CLOSING)
		return false;
	enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
	if (c->done_msg) {
		if (used < n)
			c->no_reuse = true; /* bytes after the response: do not trust the conn */
		complete_job(c);
		return false;
	}
	if (c->paused) {
		/* Flow control (on_rbody paused the parser): keep the rest for the drain. */
		http_parser_pause(&c->parser, 0);
		cs_buf_append(&c->pending, data + used, n - used);
		return false;
	}
	if (e != HPE_OK) {
		conn_fail(c, CS_EIO, "malformed response from %s: %s", c->addr,
			  http_errno_description(e));
		return false;
	}
	return true;
}

/* The active node closed the connection (EOF or close_notify). That ends an
 * EOF-delimited body; anything else is cut short. */
static void upstream_eof(struct conn *c, const char *how)
{
	c->no_reuse = true;
	if (c->state == ST_IDLE) {
		conn_close(c); /* it closed an idle connection: fine */
		return;
	}
	if (c->state == ST_BUSY && c->eof_body && !c->paused)
		feed(c, NULL, 0);
	if (c->state == ST_BUSY || c->state == ST_HANDSHAKE || c->state == ST_CONNECTING)
		conn_fail(c, CS_EIO, "%s closed the connection %s", c->addr, how);
}

/* Decrypt and parse until the SSL is empty, the parser pauses or the conn ends. */
static void pump_in(struct conn *c)
{
	char plain[PLAIN_CHUNK];
	while (c->state != ST_CLOSING && !c->paused && c->pending.len > c->pending_off) {
		/* Plaintext left over from a pause goes first, in order. */
		struct cs_buf p = c->pending;
		size_t off = c->pending_off;
		c->pending = (struct cs_buf)CS_BUF_INIT;
		c->pending_off = 0;
		bool more = feed(c, p.data + off, p.len - off);
		cs_buf_free_secure(&p);
		if (!more)
			return;
	}
	while (c->state != ST_CLOSING && !c->paused) {
		int r = SSL_read(c->ssl, plain, sizeof plain);
		if (r <= 0) {
			int e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ)
				return;
			if (e == SSL_ERROR_ZERO_RETURN) {
				upstream_eof(c, "early");
				return;
			}
			conn_fail(c, CS_EIO, "TLS read from %s: %s", c->addr, ssl_reason());
			return;
		}
		bool more = feed(c, plain, (size_t)r);
		cs_zero(plain, (size_t)r);
		if (!more)
			return;
	}
}

/* Paused for the client: stop reading (at most one read ahead stays in the BIO) and
 * the deadline (the HTTP layer times out a client that stops reading). */
static void after_pump(struct conn *c)
{
	if (!c->paused || c->state != ST_BUSY)
		return;
	uv_timer_stop(&c->timer);
	if (c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
	}
}

static void tcp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;
	*buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void handshake(struct conn *c);

static void tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	if (c->state == ST_CLOSING || nread == 0)
		return;
	if (nread < 0) {
		c->reading = false;
		upstream_eof(c, nread == UV_EOF ? "early" : uv_strerror((int)nread));
		return;
	}
	if (BIO_write(SSL_get_rbio(c->ssl), buf->base, (int)nread) != nread) {
		conn_fail(c, CS_ENOMEM, "out of memory");
		return;
	}
	if (c->state == ST_HANDSHAKE)
		handshake(c);
	else
		pump_in(c);
	flush_tls(c);
	after_pump(c);
}

static void start_reading(struct conn *c)
{
	if (c->reading || c->state == ST_CLOSING)
		return;
	if (uv_read_start((uv_stream_t *)&c->tcp, tcp_alloc, tcp_read) != 0) {
		conn_fail(c, CS_EIO, "read from %s failed", c->addr);
		return;
	}
	c->reading = true;
}

/* The client's queue drained below CS_HTTP_STREAM_LOW. */
static void on_client_drain(void *arg)
{
	struct conn *c = arg;
	c->paused = false;
	if (c->in_parse || c->state != ST_BUSY)
		return; /* called back from within on_rbody: feed carries on */
	uv_timer_again(&c->timer);
	pump_in(c);
	if (c->state == ST_BUSY && !c->paused)
		start_reading(c);
	flush_tls(c);
	after_pump(c);
}

/* ---------------------------------------------------------------- connecting */

static void deadline_cb(uv_timer_t *t)
{
	struct conn *c = t->data;
	if (c->state == ST_IDLE) {
		conn_close(c);
		return;
	}
	conn_fail(c, CS_EIO, "%s with %s timed out",
		  c->state == ST_CONNECTING  ? "connect"
		  : c->state == ST_HANDSHAKE ? "TLS handshake"
					     : "forwarded request",
		  c->addr);
}

/* Everything is in place on the conn: send the job's request. */
static void start_request(struct conn *c)
{
	struct cs_http_req *h = c->job->hreq;
	c->job->sent = true;
	c->state = ST_BUSY;
	c->got_bytes = false;
	c->no_reuse = false;
	c->paused = false;
	c->head_req = !strcmp(h->method, "HEAD");
	c->body_off = 0;
	c->body_len = h->body_fd >= 0 ? h->body_len : h->body.len;
	c->body_stream = h->body_stream;
	c->body_paused = false;
	c->sending = !c->body_stream;
	http_parser_init(&c->parser, HTTP_RESPONSE);
	c->parser.data = c;
	/* One repeating timer: uv_timer_again pushes it back on every byte that moves. */
	uv_timer_start(&c->timer, deadline_cb, c->fw->response_ms, c->fw->response_ms);
	if (!send_head(c))
		return;
	flush_tls(c);
	if (c->body_stream)
		cs_http_body_start(h, stream_body_data, stream_body_end, c);
	else
		pump_body(c);
	if (c->state == ST_BUSY)
		start_reading(c);
}

static void conn_assign(struct conn *c, struct job *j)
{
	c->job = j;
	if (c->reused)
		c->fw->stats.reused++;
	start_request(c);
}

static void handshake(struct conn *c)
{
	ERR_clear_error();
	int r = SSL_do_handshake(c->ssl);
	if (r != 1) {
		int e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ)
			return;
		long v = SSL_get_verify_result(c->ssl);
		if (v == X509_V_ERR_HOSTNAME_MISMATCH)
			conn_fail(c, CS_EIO, "peer %s is not node-%llu", c->addr,
				  (unsigned long long)c->id);
		else if (v != X509_V_OK)
			conn_fail(c, CS_EIO, "TLS handshake with %s: certificate: %s", c->addr,
				  X509_verify_cert_error_string(v));
		else
			conn_fail(c, CS_EIO, "TLS handshake with %s: %s", c->addr, ssl_reason());
		return;
	}
	const unsigned char *p = NULL;
	unsigned int plen = 0;
	SSL_get0_alpn_selected(c->ssl, &p, &plen);
	if (plen != strlen(CS_ALPN_FORWARD) || memcmp(p, CS_ALPN_FORWARD, plen) != 0) {
		conn_fail(c, CS_EIO, "%s did not select ALPN %s", c->addr, CS_ALPN_FORWARD);
		return;
	}
	if (SSL_get_verify_result(c->ssl) != X509_V_OK || !SSL_get0_peer_certificate(c->ssl)) {
		conn_fail(c, CS_EIO, "%s: server certificate not verified", c->addr);
		return;
	}
	start_request(c);
	/* The first response bytes may have come with the handshake's last flight. */
	if (c->state == ST_BUSY)
		pump_in(c);
	after_pump(c);
}

static void connect_cb(uv_connect_t *creq, int status)
{
	struct conn *c = CS_CONTAINER_OF(creq, struct conn, creq);
	if (c->state == ST_CLOSING)
		return;
	if (status < 0) {
		conn_fail(c, CS_EIO, "connect %s: %s", c->addr, uv_strerror(status));
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	c->ssl = cs_cluster_tls_client_ssl(c->fw->ctx, c->id, CS_ALPN_FORWARD);
	if (!c->ssl) {
		conn_fail(c, CS_EIO, "TLS setup: %s", ssl_reason());
		return;
	}
	c->state = ST_HANDSHAKE;
	start_reading(c);
	if (c->state == ST_CLOSING)
		return;
	handshake(c);
	flush_tls(c);
}

/* A new conn for j's target; the job rides along while it connects. */
static void conn_open(struct cs_forwarder *fw, struct job *j)
{
	struct conn *c = calloc(1, sizeof *c);
	if (!c)
		abort();
	c->fw = fw;
	c->gen = fw->gen;
	c->id = j->id;
	snprintf(c->addr, sizeof c->addr, "%s", j->addr);
	c->job = j;
	c->state = ST_CONNECTING;
	uv_tcp_init(fw->loop, &c->tcp);
	uv_timer_init(fw->loop, &c->timer);
	c->tcp.data = c;
	c->timer.data = c;
	c->handles = 2;
	http_parser_init(&c->parser, HTTP_RESPONSE);
	c->parser.data = c;
	c->next = fw->conns;
	if (fw->conns)
		fw->conns->prev = c;
	fw->conns = c;
	fw->stats.conns_opened++;
	struct sockaddr_storage sa;
	int rv = cs_cluster_parse_address(c->addr, &sa) ? UV_EINVAL : 0;
	if (rv == 0)
		rv = cs_cluster_bind_source(&c->tcp, &fw->source);
	if (rv == 0)
		rv = uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&sa, connect_cb);
	if (rv != 0) {
		/* Settled in the close callback, never inside cs_forward. */
		conn_fail(c, CS_EIO, "connect %s: %s", c->addr, uv_strerror(rv));
		return;
	}
	uv_timer_start(&c->timer, deadline_cb, fw->connect_ms, 0);
}

/* ---------------------------------------------------------------- conn lifecycle */

static void maybe_free(struct cs_forwarder *fw)
{
	if (!fw->closing || !fw->handle_closed || fw->conns)
		return;
	void (*cb)(void *) = fw->close_cb;
	void *ctx = fw->close_ctx;
	SSL_CTX_free(fw->ctx);
	free(fw);
	if (cb)
		cb(ctx);
}

/* Settle a job whose conn failed: one retry, or done(status != 0). */
static void job_failed(struct cs_forwarder *fw, struct job *j, bool retry, int status,
		       const char *why)
{
	if (retry && !fw->closing) {
		j->retried = true;
		fw->stats.retried++;
		cs_debug("forward: retrying on a fresh connection: %s", why);
		job_start(fw, j);
		return;
	}
	stats_fail(fw);
	cs_debug("forward: %s", why);
	j->cb(j->ctx, j->released ? NULL : j->hreq, status, why);
	free(j);
}

static void conn_handle_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	if (--c->handles > 0)
		return;
	struct cs_forwarder *fw = c->fw;
	if (c->prev)
		c->prev->next = c->next;
	else
		fw->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	struct job *j = c->job;
	/* A reused conn that failed before any response byte was most likely closed by
	 * the active node as idle just as we wrote: nothing was processed. */
	bool retry = j && !j->released && !j->retried && c->reused && !c->got_bytes &&
		     c->fail_status == CS_EIO && is_idempotent(j->hreq->method);
	int status = c->fail_status ? c->fail_status : CS_ESHUTDOWN;
	/* Certainly not processed by the peer: never sent, or a read with no answer yet
	 * (reads may run twice). The caller may send it again, e.g. to a new active node
	 * (forward.h: CS_ENOTACTIVE). */
	if (j && !j->released && status != CS_ESHUTDOWN && !fw->closing && !j->hreq->body_stream &&
	    (!j->sent || (!c->got_bytes && is_idempotent(j->hreq->method))))
		status = CS_ENOTACTIVE;
	char why[sizeof c->errmsg];
	snprintf(why, sizeof why, "%s", c->errmsg[0] ? c->errmsg : "forwarder closing");
	if (j && !j->released && c->body_stream)
		cs_http_body_stop(j->hreq); /* no call may reach this conn any more */
	SSL_free(c->ssl);
	reset_response(c);
	cs_buf_free_secure(&c->pending);
	free(c);
	if (j)
		job_failed(fw, j, retry, status, why);
	kick_queue(fw);
	maybe_free(fw);
}

static void conn_close(struct conn *c)
{
	if (c->state == ST_CLOSING)
		return;
	bool tls_up = c->ssl && SSL_is_init_finished(c->ssl);
	c->state = ST_CLOSING;
	if (tls_up) {
		/* close_notify, best effort: the peer may already be gone. */
		SSL_shutdown(c->ssl);
		char tmp[256];
		int n = BIO_read(SSL_get_wbio(c->ssl), tmp, sizeof tmp);
		if (n > 0) {
			uv_buf_t b = uv_buf_init(tmp, (unsigned)n);
			uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
		}
	}
	ERR_clear_error();
	uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
	uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

static void conn_fail(struct conn *c, int status, const char *fmt, ...)
{
	if (c->state == ST_CLOSING)
		return;
	if (!c->fail_status) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
		va_end(ap);
		c->fail_status = status;
	}
	struct job *j = c->job;
	if (j && c->streaming && !j->released) {
		/* The client already has a head: cut its connection so the truncation shows,
		 * and the request is the HTTP layer's again. */
		cs_http_stream_abort(j->hreq);
		j->released = true;
	}
	conn_close(c);
}

/* ---------------------------------------------------------------- jobs and pool */

static size_t target_conns(struct cs_forwarder *fw, const struct job *j)
{
	size_t n = 0;
	for (struct conn *c = fw->conns; c; c = c->next)
		if (c->state != ST_CLOSING && c->id == j->id && !strcmp(c->addr, j->addr))
			n++;
	return n;
}

static struct conn *find_idle(struct cs_forwarder *fw, const struct job *j)
{
	for (struct conn *c = fw->conns; c; c = c->next)
		if (c->state == ST_IDLE && c->gen == fw->gen && c->id == j->id &&
		    !strcmp(c->addr, j->addr))
			return c;
	return NULL;
}

/* Start j now if a conn is free or may be opened; false if it must wait. */
static bool try_start(struct cs_forwarder *fw, struct job *j)
{
	struct conn *c = find_idle(fw, j);
	if (c) {
		uv_timer_stop(&c->timer);
		conn_assign(c, j);
		return true;
	}
	if (target_conns(fw, j) >= CS_FORWARD_MAX_CONNS)
		return false;
	conn_open(fw, j);
	return true;
}

static void job_start(struct cs_forwarder *fw, struct job *j)
{
	if (try_start(fw, j))
		return;
	j->next = NULL;
	if (fw->qtail)
		fw->qtail->next = j;
	else
		fw->qhead = j;
	fw->qtail = j;
}

/* A conn became idle or went away: start the waiting jobs that can run now, keeping
 * the others in order. try_start never calls done, so nothing re-enters. */
static void kick_queue(struct cs_forwarder *fw)
{
	if (fw->closing)
		return;
	struct job *q = fw->qhead;
	fw->qhead = fw->qtail = NULL;
	while (q) {
		struct job *j = q;
		q = j->next;
		j->next = NULL;
		if (try_start(fw, j))
			continue;
		if (fw->qtail)
			fw->qtail->next = j;
		else
			fw->qhead = j;
		fw->qtail = j;
	}
}

/* ---------------------------------------------------------------- public */

struct cs_forwarder *cs_forward_new(uv_loop_t *loop, SSL_CTX *client_ctx)
{
	struct cs_forwarder *fw = calloc(1, sizeof *fw);
	if (!fw)
		abort();
	fw->loop = loop;
	SSL_CTX_up_ref(client_ctx);
	fw->ctx = client_ctx;
	fw->connect_ms = CS_FORWARD_CONNECT_MS;
	fw->response_ms = CS_FORWARD_RESPONSE_MS;
	fw->source.ss_family = AF_UNSPEC;
	return fw;
}

int cs_forward_set_source(struct cs_forwarder *fw, const char *listen_address)
{
	return cs_cluster_source_address(listen_address, &fw->source);
}

void cs_forward_set_timeouts(struct cs_forwarder *fw, unsigned connect_ms, unsigned response_ms)
{
	fw->connect_ms = connect_ms ? connect_ms : CS_FORWARD_CONNECT_MS;
	fw->response_ms = response_ms ? response_ms : CS_FORWARD_RESPONSE_MS;
}

/* Retire the pool: idle conns close now, busy ones after their request. */
static void retire_pool(struct cs_forwarder *fw)
{
	fw->gen++;
	struct conn *next;
	for (struct conn *c = fw->conns; c; c = next) {
		next = c->next;
		if (c->state == ST_IDLE)
			conn_close(c);
	}
}

void cs_forward_set_ctx(struct cs_forwarder *fw, SSL_CTX *client_ctx)
{
	SSL_CTX_up_ref(client_ctx);
	SSL_CTX_free(fw->ctx);
	fw->ctx = client_ctx;
	retire_pool(fw);
}

void cs_forward_reset(struct cs_forwarder *fw)
{
	retire_pool(fw);
	/* A connection still being set up goes to the old active node, which may be dead
	 * or paused (a handshake would then wait for the whole connect deadline): give its
	 * request back now, unsent, so that the caller sends it to the new one. */
	struct conn *next;
	for (struct conn *c = fw->conns; c; c = next) {
		next = c->next;
		if (c->state == ST_CONNECTING || c->state == ST_HANDSHAKE)
			conn_fail(c, CS_EIO, "the active node changed while connecting to %s",
				  c->addr);
	}
}

int cs_forward_hops(const struct cs_http_req *hreq)
{
	if (!hreq->forwarded)
		return 0; /* a client's own header means nothing */
	const char *v = cs_http_header_get(hreq, CS_FORWARD_HOPS_HEADER);
	int n = v ? atoi(v) : 1;
	return n < 1 ? 1 : n;
}

int cs_forward(struct cs_forwarder *fw, const char *addr, uint64_t id, struct cs_http_req *hreq,
	       cs_forward_done_cb cb, void *ctx)
{
	if (fw->closing)
		return CS_ESHUTDOWN;
	struct sockaddr_storage sa;
	if (!addr || strlen(addr) >= ADDR_MAX || cs_cluster_parse_address(addr, &sa) != 0 ||
	    id == 0 || cs_forward_hops(hreq) >= CS_FORWARD_MAX_HOPS)
		return CS_EINVAL;
	struct job *j = calloc(1, sizeof *j);
	if (!j)
		abort();
	j->hreq = hreq;
	j->cb = cb;
	j->ctx = ctx;
	j->id = id;
	snprintf(j->addr, sizeof j->addr, "%s", addr);
	fw->stats.requests++;
	job_start(fw, j);
	return 0;
}

static void close_handle_cb(uv_handle_t *h)
{
	struct cs_forwarder *fw = h->data;
	fw->handle_closed = true;
	maybe_free(fw);
}

void cs_forward_close(struct cs_forwarder *fw, void (*cb)(void *ctx), void *ctx)
{
	if (fw->closing)
		return;
	fw->closing = true;
	fw->close_cb = cb;
	fw->close_ctx = ctx;
	while (fw->qhead) {
		struct job *j = fw->qhead;
		fw->qhead = j->next;
		stats_fail(fw);
		j->cb(j->ctx, j->hreq, CS_ESHUTDOWN, "forwarder closing");
		free(j);
	}
	fw->qtail = NULL;
	for (struct conn *c = fw->conns; c; c = c->next)
		conn_fail(c, CS_ESHUTDOWN, "forwarder closing");
	uv_timer_init(fw->loop, &fw->close_handle);
	fw->close_handle.data = fw;
	uv_close((uv_handle_t *)&fw->close_handle, close_handle_cb);
}

void cs_forward_get_stats(const struct cs_forwarder *fw, struct cs_forward_stats *out)
{
	*out = fw->stats;
}
