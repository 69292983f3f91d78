/*
 * The HTTP listener's write path (see http_internal.h and the overview in http.c): one
 * write in flight per connection with a queue behind it, response heads, error answers,
 * cs_http_respond and streamed responses.
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

static const char err_too_large[] = "{\"errors\":[\"http: request body too large\"]}";
static const char err_header_large[] = "{\"errors\":[\"http: request header too large\"]}";
static const char err_malformed[] = "{\"errors\":[\"malformed HTTP request\"]}";
static const char err_method[] = "{\"errors\":[]}";

static void put_str(struct cs_buf *b, const char *s)
{
	cs_buf_append(b, s, strlen(s));
}

static void put_u64(struct cs_buf *b, uint64_t v)
{
	char tmp[24];
	size_t i = sizeof tmp;
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	cs_buf_append(b, tmp + i, sizeof tmp - i);
}

/* RFC 7231 IMF-fixdate, cached per second (the listener lives on one thread). */
static const char *http_date(struct cs_http_listener *l)
{
	static const char *days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
				       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t now = time(NULL);
	if (now != l->date_sec || !l->date[0]) {
		struct tm tm;
		gmtime_r(&now, &tm);
		snprintf(l->date, sizeof l->date, "%s, %02d %s %04d %02d:%02d:%02d GMT",
			 days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
			 tm.tm_hour, tm.tm_min, tm.tm_sec);
		l->date_sec = now;
	}
	return l->date;
}

/* ---------------------------------------------------------------- writing */

static void on_write(uv_write_t *w, int status);

/* Write c->wbuf: synchronously if the kernel takes it all, else one uv_write. */
static void start_write(struct cs_http_conn *c)
{
	uv_buf_t b = uv_buf_init(c->wbuf.data, (unsigned)c->wbuf.len);
	int r = uv_try_write((uv_stream_t *)c->tcp, &b, 1);
	if (r == (int)c->wbuf.len) {
		cs_http_reset_wipe(&c->wbuf);
		return;
	}
	if (r < 0 && r != UV_EAGAIN) {
		cs_debug("http: %s: write: %s", c->remote_addr, uv_strerror(r));
		cs_http_conn_close(c);
		return;
	}
	if (r > 0)
		cs_http_consume_wipe(&c->wbuf, (size_t)r);
	b = uv_buf_init(c->wbuf.data, (unsigned)c->wbuf.len);
	r = uv_write(&c->wreq, (uv_stream_t *)c->tcp, &b, 1, on_write);
	if (r) {
		cs_debug("http: %s: write: %s", c->remote_addr, uv_strerror(r));
		cs_http_conn_close(c);
		return;
	}
	c->writing = true;
}

/* Send raw bytes (plaintext connection, or ciphertext drained from the BIO). What the
 * kernel does not take at once is copied, so callers may free their buffers. */
static void write_bufs(struct cs_http_conn *c, uv_buf_t *bufs, unsigned n)
{
	if (c->closing)
		return;
	if (c->writing) {
		for (unsigned i = 0; i < n; i++)
			cs_buf_append(&c->wpending, bufs[i].base, bufs[i].len);
		return;
	}
	size_t total = 0;
	for (unsigned i = 0; i < n; i++)
		total += bufs[i].len;
	if (total == 0)
		return;
	int r = uv_try_write((uv_stream_t *)c->tcp, bufs, n);
	if (r == (int)total)
		return;
	if (r < 0 && r != UV_EAGAIN) {
		cs_debug("http: %s: write: %s", c->remote_addr, uv_strerror(r));
		cs_http_conn_close(c);
		return;
	}
	size_t skip = r > 0 ? (size_t)r : 0;
	for (unsigned i = 0; i < n; i++) {
		if (skip >= bufs[i].len) {
			skip -= bufs[i].len;
			continue;
		}
		cs_buf_append(&c->wbuf, bufs[i].base + skip, bufs[i].len - skip);
		skip = 0;
	}
	/* The kernel took part of it: no point in trying again right away. */
	uv_buf_t b = uv_buf_init(c->wbuf.data, (unsigned)c->wbuf.len);
	r = uv_write(&c->wreq, (uv_stream_t *)c->tcp, &b, 1, on_write);
	if (r) {
		cs_debug("http: %s: write: %s", c->remote_addr, uv_strerror(r));
		cs_http_conn_close(c);
		return;
	}
	c->writing = true;
}

/* Move whatever OpenSSL produced (handshake, records, alerts) to the socket. */
void cs_http_tls_flush(struct cs_http_conn *c)
{
	size_t pend = BIO_ctrl_pending(c->wbio);
	if (pend == 0 || c->closing)
		return;
	struct cs_buf *dst = c->writing ? &c->wpending : &c->wbuf;
	cs_buf_reserve(dst, pend);
	int r = BIO_read(c->wbio, dst->data + dst->len, (int)pend);
	if (r > 0)
		dst->len += (size_t)r;
	if (!c->writing)
		start_write(c);
}

/* Send plaintext bytes to the peer, encrypting when the connection is TLS. */
void cs_http_send_plain(struct cs_http_conn *c, const char *p, size_t n)
{
	if (c->closing)
		return;
	if (!c->ssl) {
		uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
		write_bufs(c, &b, 1);
		return;
	}
	ERR_clear_error();
	while (n) {
		/* SSL_write takes an int; without partial writes it is all or nothing. */
		int k = n > (1u << 30) ? 1 << 30 : (int)n;
		if (SSL_write(c->ssl, p, k) <= 0) {
			char err[256];
			cs_debug("http: %s: TLS write: %s", c->remote_addr,
				 cs_http_tls_errstr(err, sizeof err));
			cs_http_conn_close(c);
			return;
		}
		p += k;
		n -= (size_t)k;
	}
	cs_http_tls_flush(c);
}

void cs_http_on_shutdown(uv_shutdown_t *s, int status)
{
	struct cs_http_conn *c = CS_CONTAINER_OF(s, struct cs_http_conn, sreq);
	if (c->closing)
		return;
	if (status < 0 || c->peer_eof) {
		cs_http_conn_close(c);
		return;
	}
	/* Lingering close: drain the peer's input until it closes, briefly. */
	c->lingering = true;
	c->tmode = TM_LINGER;
	uv_timer_start(&c->timer, cs_http_on_timer, LINGER_TIMEOUT_MS, 0);
	cs_http_start_reading(c);
}

static void do_shutdown(struct cs_http_conn *c)
{
	if (c->shutdown_started || c->closing)
		return;
	c->shutdown_started = true;
	if (uv_shutdown(&c->sreq, (uv_stream_t *)c->tcp, cs_http_on_shutdown))
		cs_http_conn_close(c);
}

/* No more requests on this connection: finish writing what is queued, then shut down. */
void cs_http_finish_conn(struct cs_http_conn *c)
{
	if (c->close_after_write || c->closing)
		return;
	c->close_after_write = true;
	c->dead_input = true;
	if (c->ssl && c->hs_done && !c->tls_failed) {
		ERR_clear_error();
		SSL_shutdown(c->ssl); /* queues close_notify; we do not wait for the peer's */
		ERR_clear_error();
		cs_http_tls_flush(c);
	}
	if (!c->writing)
		do_shutdown(c);
}

static void stream_maybe_drain(struct cs_http_conn *c);

static void on_write(uv_write_t *w, int status)
{
	struct cs_http_conn *c = CS_CONTAINER_OF(w, struct cs_http_conn, wreq);
	c->writing = false;
	cs_http_reset_wipe(&c->wbuf);
	if (c->closing)
		return;
	if (status < 0) {
		cs_debug("http: %s: write: %s", c->remote_addr, uv_strerror(status));
		cs_http_conn_close(c);
		return;
	}
	if (c->wpending.len) {
		struct cs_buf t = c->wbuf;
		c->wbuf = c->wpending;
		c->wpending = t;
		start_write(c);
		if (c->closing)
			return;
	}
	if (c->held) {
		/* A streamed response made progress: push the write deadline back and wake
		 * the producer if it waits for room. */
		if (c->writing)
			cs_http_timer_set(c, TM_WRITE, IDLE_TIMEOUT_MS, true);
		else
			cs_http_timer_set(c, TM_NONE, 0, false);
		stream_maybe_drain(c);
		return;
	}
	if (c->writing)
		return;
	if (c->wbuf.cap > KEEP_BUF_CAP)
		cs_buf_free_secure(&c->wbuf);
	if (c->wpending.cap > KEEP_BUF_CAP)
		cs_buf_free_secure(&c->wpending);
	if (c->close_after_write) {
		do_shutdown(c);
		return;
	}
	cs_http_process_input(c);
}

/* How the body of a response is delimited. */
enum framing { FR_LENGTH, FR_CHUNKED, FR_NONE };

/* Response head into c->head. FR_NONE: neither Content-Length nor Transfer-Encoding
 * (a bodyless status, or a body that ends with the connection). */
static void build_head(struct cs_http_conn *c, int status, const char *ct,
		       const struct cs_http_header *extra, size_t n_extra, enum framing fr,
		       uint64_t len, bool http10_keep_alive, bool close)
{
	struct cs_buf *h = &c->head;
	h->len = 0;
	put_str(h, "HTTP/1.1 ");
	put_u64(h, (uint64_t)status);
	cs_buf_putc(h, ' ');
	put_str(h, cs_http_reason(status));
	put_str(h, "\r\n");
	if (ct && status != 204) {
		put_str(h, "Content-Type: ");
		put_str(h, ct);
		put_str(h, "\r\n");
	}
	if (fr == FR_LENGTH) {
		put_str(h, "Content-Length: ");
		put_u64(h, len);
		put_str(h, "\r\n");
	} else if (fr == FR_CHUNKED) {
		put_str(h, "Transfer-Encoding: chunked\r\n");
	}
	put_str(h, "Date: ");
	put_str(h, http_date(c->l));
	put_str(h, "\r\nCache-Control: no-store\r\n");
	for (size_t i = 0; i < n_extra; i++) {
		/* A CR or LF would let a value inject headers: drop such a header. */
		if (strpbrk(extra[i].name, "\r\n:") || strpbrk(extra[i].value, "\r\n"))
			continue;
		put_str(h, extra[i].name);
		put_str(h, ": ");
		put_str(h, extra[i].value);
		put_str(h, "\r\n");
	}
	if (close)
		put_str(h, "Connection: close\r\n");
	else if (http10_keep_alive)
		put_str(h, "Connection: keep-alive\r\n");
	put_str(h, "\r\n");
}

static bool bodyless_status(int status)
{
	return status == 204 || status == 304 || (status >= 100 && status < 200);
}

/* Build and send one response. `head`: the request was HEAD (no body, same headers). */
void cs_http_send_response(struct cs_http_conn *c, int status, const char *ct,
			   const struct cs_http_header *extra, size_t n_extra, const void *body,
			   size_t len, bool head, bool http10_keep_alive, bool close)
{
	if (status < 100 || status > 999)
		status = 500;
	bool no_length = bodyless_status(status);
	build_head(c, status, ct, extra, n_extra, no_length ? FR_NONE : FR_LENGTH, len,
		   http10_keep_alive, close);
	struct cs_buf *h = &c->head;
	if (head || no_length)
		len = 0;
	if (c->ssl) {
		/* One SSL_write: small responses become a single record. */
		if (len)
			cs_buf_append(h, body, len);
		cs_http_send_plain(c, h->data, h->len);
		cs_zero(h->data, h->len);
	} else {
		uv_buf_t b[2] = {uv_buf_init(h->data, (unsigned)h->len),
				 uv_buf_init((char *)body, (unsigned)len)};
		write_bufs(c, b, len ? 2 : 1);
	}
	if (h->cap > KEEP_BUF_CAP)
		cs_buf_free(h);
	if (close)
		cs_http_finish_conn(c);
}

/* The request could not be parsed or is too big: answer and end the connection. */
void cs_http_reject(struct cs_http_conn *c, enum http_errno e)
{
	int status = c->err_status;
	if (!status && e == HPE_INVALID_METHOD && c->line_ok)
		status = 405; /* a method http-parser does not know: Vault answers 405 */
	if (!status)
		status = e == HPE_HEADER_OVERFLOW ? 431 : 400;
	const char *body = status == 413   ? err_too_large
			   : status == 431 ? err_header_large
			   : status == 405 ? err_method
					   : err_malformed;
	const char *why = c->err_status == 400 ? "bad request target"
			  : c->err_status      ? "size limit"
					       : http_errno_description(e);
	char spool_err[300];
	if (c->err_body) {
		body = c->err_body; /* cs_http_spool.admit refused the upload */
		why = "upload refused before its body";
	} else if (status == 507) {
		snprintf(spool_err, sizeof spool_err,
			 "{\"errors\":[\"http: not enough free space to store the request body: "
			 "the upload would leave less than %d%% of the spool volume free\"]}",
			 cs_http_spool.reserve_percent);
		body = spool_err;
		why = "request body spool: disk reserve";
		cs_warn("http: %s: request body refused: %s would fall under its %d%% free-space "
			"reserve",
			c->remote_addr, cs_http_spool.dir ? cs_http_spool.dir : "?",
			cs_http_spool.reserve_percent);
	} else if (status == 500) {
		/* The body could not be spooled: an operator problem (disk), worth a warning. */
		snprintf(spool_err, sizeof spool_err,
			 "{\"errors\":[\"http: could not store the request body: %s\"]}",
			 strerror(c->spool_errno));
		body = spool_err;
		why = "request body spool failed";
		cs_warn("http: %s: request body spool in %s: %s", c->remote_addr,
			cs_http_spool.dir ? cs_http_spool.dir : "?", strerror(c->spool_errno));
	}
	cs_debug("http: %s: rejecting request (%d): %s", c->remote_addr, status, why);
	c->dead_input = true;
	c->in_headers = c->in_body = false;
	c->spool_wait = c->spool_blocked = false;
	if (c->req)
		cs_http_req_reset_extras(c->req); /* the spool file goes, and the upload slot */
	cs_http_send_response(c, status, "application/json", NULL, 0, body, strlen(body), false,
			      false, true);
	free(c->err_body);
	c->err_body = NULL;
}

void cs_http_respond(struct cs_http_req *req, int status, const char *content_type,
		     const struct cs_http_header *extra, size_t n_extra, const void *body,
		     size_t len)
{
	struct http_req *r = CS_CONTAINER_OF(req, struct http_req, pub);
	struct cs_http_conn *c = req->conn;
	if (!c) {
		cs_http_req_free(r);
		return;
	}
	if (r->streaming) {
		/* A second head after a streamed one would corrupt the connection. */
		cs_http_stream_abort(req);
		return;
	}
	c->held = false;
	bool close = !r->keep_alive || c->peer_eof || c->l->closing || r->body_open;
	cs_http_send_response(c, status, content_type, extra, n_extra, body, len, r->head,
			      r->http10 && r->keep_alive, close);
	cs_http_req_clear(r);
	cs_http_process_input(c);
}

void cs_http_respond_json(struct cs_http_req *req, int status, const char *json, size_t len)
{
	cs_http_respond(req, status, "application/json", NULL, 0, json, len);
}

/* ---------------------------------------------------------------- streamed responses */

/* Output accepted but not yet taken by the kernel. */
static size_t queued_bytes(const struct cs_http_conn *c)
{
	size_t n = c->wbuf.len + c->wpending.len;
	if (c->ssl)
		n += BIO_ctrl_pending(c->wbio);
	return n;
}

static void stream_maybe_drain(struct cs_http_conn *c)
{
	struct http_req *r = c->held ? c->req : NULL;
	if (!r || !r->drain_cb || queued_bytes(c) >= CS_HTTP_STREAM_LOW)
		return;
	void (*cb)(void *) = r->drain_cb;
	r->drain_cb = NULL;
	cb(r->drain_ctx); /* may write, end or abort: c is not touched afterwards */
}

int cs_http_stream_begin(struct cs_http_req *req, int status, const char *content_type,
			 const struct cs_http_header *extra, size_t n_extra)
{
	struct http_req *r = CS_CONTAINER_OF(req, struct http_req, pub);
	struct cs_http_conn *c = req->conn;
	if (r->streaming)
		return -1;
	r->streaming = true;
	if (status < 100 || status > 999)
		status = 500;
	bool bodyless = bodyless_status(status);
	r->no_body = r->head || bodyless;
	/* HTTP/1.0 knows no chunks: the body then ends with the connection. */
	r->chunked = !bodyless && !r->http10;
	if (!r->no_body && r->http10)
		r->keep_alive = false;
	if (!c)
		return -1;
	if (r->body_open) {
		/* Answered before its streamed body ended: the rest of it is not read. */
		r->keep_alive = false;
		r->body_open = false;
		r->body_data = NULL;
		r->body_end = NULL;
		c->dead_input = true;
	}
	bool close = !r->keep_alive || c->peer_eof || c->l->closing;
	build_head(c, status, content_type, extra, n_extra, r->chunked ? FR_CHUNKED : FR_NONE, 0,
		   r->http10 && r->keep_alive, close);
	cs_http_send_plain(c, c->head.data, c->head.len);
	if (!req->conn)
		return -1;
	cs_http_timer_update(c);
	return 0;
}

long cs_http_stream_write(struct cs_http_req *req, const void *data, size_t len)
{
	struct http_req *r = CS_CONTAINER_OF(req, struct http_req, pub);
	struct cs_http_conn *c = req->conn;
	if (!c || !r->streaming)
		return -1;
	if (r->no_body || len == 0)
		return (long)queued_bytes(c); /* a zero-length chunk would end the body */
	if (!r->chunked) {
		cs_http_send_plain(c, data, len);
	} else {
		char hdr[24];
		int hl = snprintf(hdr, sizeof hdr, "%zx\r\n", len);
		if (c->ssl && len < TLS_READ_CHUNK) {
			/* Small chunk: one TLS record for size line, data and CRLF. */
			struct cs_buf *h = &c->head;
			h->len = 0;
			cs_buf_append(h, hdr, (size_t)hl);
			cs_buf_append(h, data, len);
			cs_buf_append(h, "\r\n", 2);
			cs_http_send_plain(c, h->data, h->len);
			cs_zero(h->data, h->len);
		} else if (c->ssl) {
			cs_http_send_plain(c, hdr, (size_t)hl);
			cs_http_send_plain(c, data, len);
			cs_http_send_plain(c, "\r\n", 2);
		} else {
			uv_buf_t b[3] = {uv_buf_init(hdr, (unsigned)hl),
					 uv_buf_init((char *)data, (unsigned)len),
					 uv_buf_init("\r\n", 2)};
			write_bufs(c, b, 3);
		}
	}
	if (!req->conn)
		return -1;
	cs_http_timer_update(c);
	return (long)queued_bytes(c);
}

void cs_http_stream_on_drain(struct cs_http_req *req, void (*cb)(void *ctx), void *ctx)
{
	struct http_req *r = CS_CONTAINER_OF(req, struct http_req, pub);
	struct cs_http_conn *c = req->conn;
	r->drain_cb = NULL;
	if (!c || queued_bytes(c) < CS_HTTP_STREAM_LOW) {
		cb(ctx);
		return;
	}
	r->drain_cb = cb;
	r->drain_ctx = ctx;
}

void cs_http_stream_end(struct cs_http_req *req)
{
	struct http_req *r = CS_CONTAINER_OF(req, struct http_req, pub);
	struct cs_http_conn *c = req->conn;
	if (!c) {
		cs_http_req_free(r);
		return;
	}
	if (!r->streaming) {
		cs_http_stream_abort(req); /* nothing was begun: there is no response to end */
		return;
	}
	/* Not held from here: a failing write closes the connection, which then frees r. */
	c->held = false;
	if (r->chunked && !r->no_body)
		cs_http_send_plain(c, "0\r\n\r\n", 5);
	bool close = !r->keep_alive || c->peer_eof || c->l->closing;
	if (c->head.cap > KEEP_BUF_CAP)
		cs_buf_free_secure(&c->head);
	cs_http_req_clear(r);
	if (close)
		cs_http_finish_conn(c);
	cs_http_process_input(c);
}

void cs_http_stream_abort(struct cs_http_req *req)
{
	struct http_req *r = CS_CONTAINER_OF(req, struct http_req, pub);
	struct cs_http_conn *c = req->conn;
	if (!c) {
		cs_http_req_free(r);
		return;
	}
	r->drain_cb = NULL;
	/* Still attached (not held) when the connection closes: cs_http_conn_free frees it. */
	c->held = false;
	cs_debug("http: %s: response aborted", c->remote_addr);
	cs_http_conn_close(c);
}
