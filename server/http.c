/*
 * HTTP/1.1 listener: libuv TCP, optional TLS through two memory BIOs, http-parser.
 *
 * Happy path, per connection:
 *   accept → read → [BIO_write ciphertext, SSL_do_handshake, SSL_read plaintext] →
 *   append to c->in → process_input feeds http-parser from c->in → callbacks copy the
 *   request target, headers and body into the connection's reusable cs_http_req →
 *   on_message_complete pauses the parser → dispatch hands the request to the handler
 *   (c->held) → ... cs_http_respond builds the response head, sends head+body with one
 *   uv_try_write (plain) or one SSL_write + BIO drain (TLS), copies whatever the kernel
 *   did not take into c->wbuf for a single uv_write → process_input resumes with the
 *   pipelined bytes still waiting in c->in.
 *
 * Only one request is in flight per connection, and no new request is dispatched while a
 * write is outstanding: that is the back-pressure against clients that pipeline without
 * reading. While a request is held we keep reading (to notice a disconnect) but stop once
 * MAX_BUFFERED_INPUT plaintext bytes are waiting.
 *
 * Failure modes:
 * - body over max_request_size (by Content-Length, or while a chunked body arrives) →
 *   413; header block over MAX_HEADER_BYTES or MAX_HEADERS → 431; anything http-parser
 *   rejects, or a path with a bad %-escape → 400. All three end the connection.
 * - a connection that ends (Connection: close, HTTP/1.0, error response) is shut down
 *   gracefully: close_notify (TLS), write-side shutdown, then we keep reading and discard
 *   until the peer closes or LINGER_TIMEOUT_MS passes. Closing with unread input would
 *   make the kernel send RST, and the client could lose the response we just wrote.
 * - TLS handshake or record errors: the alert OpenSSL produced is flushed, the connection
 *   closes; logged at debug only (scanners and old clients are not our problem).
 * - EOF or read error while the handler holds the request: the connection closes at
 *   once, req->conn becomes NULL and the request belongs to the handler alone;
 *   cs_http_respond then only frees it. EOF with no request held: buffered complete
 *   requests are still answered, then the connection closes.
 * - timers (one uv_timer per connection): 5 min idle between requests, 10 s from the
 *   first byte of a request (or of the TLS handshake) to the end of its header block,
 *   5 min without progress while a body arrives or a response is being written, and
 *   30 s (http_read_timeout) for the whole request. Nothing runs while the handler
 *   holds the request (except the body gap of a streamed body).
 *
 * Adopted connections (cs_http_adopt): the cluster port hands over a finished mutual-TLS
 * handshake; the SSL may already hold the first request, so it is drained before reading
 * starts. From then on the normal path runs; requests are marked forwarded and take
 * remote_addr from X-Custos-Forwarded-For.
 *
 * Spooled bodies: on_headers_complete asks the spool filter, then the spool policy's
 * admit (token and ACL, one upload at a time) before a byte of the body is read; a
 * refusal is answered at once and the connection ends. An admitted body goes to a
 * server/spool.c writer thread as it arrives (reading stops while more than
 * CS_SPOOL_HIGH bytes wait for the disk, so the loop never blocks on it and memory stays
 * bounded); the handler runs once everything is written. Over the spool limit → 413;
 * the volume's free-space reserve crossed → 507; open or write failure (EIO, EFBIG...) →
 * 500 {"errors":["http: could not store the request body: ..."]}, closed.
 *
 * Streamed request bodies (pub.body_stream, chosen by admit on a standby): the parser
 * pauses after the header block and the handler runs at once; the body is parsed only
 * while its consumer (the forwarder) wants it, and handed over piece by piece.
 *
 * Limits: http_read_header_timeout and http_read_timeout (a whole request, counted from
 * its first byte) bound slow clients; max_connections refuses new connections (503 on
 * plain HTTP, a close on TLS). Consumed input and written output are wiped at once.
 *
 * Streamed responses (cs_http_stream_*): the head goes out at once, chunks are queued
 * with the same write path (wbuf in flight, wpending behind it) and the producer learns
 * the queued size from every write; on_write calls its drain callback once the queue
 * falls under CS_HTTP_STREAM_LOW. While streaming, the request stays held; a client that
 * stops reading hits the 5 min write deadline. If the connection dies while a producer
 * waits for a drain, the drain callback still fires (from the connection's last close
 * callback) so that the producer's next write fails and it releases the request.
 *
 * Lifetime: a connection owns two uv handles (tcp, timer) and is freed in the last close
 * callback; the listener is freed once its own handle and every connection are gone.
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

/* Request-body spooling (cs_http_set_spool, cs_http_set_spool_policy): process-wide,
 * loop thread only. */
struct cs_http_spool_cfg cs_http_spool;

/* ---------------------------------------------------------------- small helpers */

static const struct {
	int status;
	const char *text;
} reasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Request Entity Too Large"},
    {414, "Request URI Too Long"},
    {415, "Unsupported Media Type"},
    {417, "Expectation Failed"},
    {422, "Unprocessable Entity"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {507, "Insufficient Storage"},
};

const char *cs_http_reason(int status)
{
	for (size_t i = 0; i < CS_ARRAY_LEN(reasons); i++)
		if (reasons[i].status == status)
			return reasons[i].text;
	return "Unknown";
}

void cs_http_consume_wipe(struct cs_buf *b, size_t n)
{
	size_t old = b->len;
	cs_buf_consume(b, n);
	if (b->data && old > b->len)
		cs_zero(b->data + b->len, old - b->len);
}

void cs_http_reset_wipe(struct cs_buf *b)
{
	if (b->data)
		cs_zero(b->data, b->len);
	b->len = 0;
}

/* ---------------------------------------------------------------- requests */

struct http_req *cs_http_req_new(void)
{
	struct http_req *r = calloc(1, sizeof *r);
	if (!r)
		abort();
	r->pub.body_fd = -1;
	return r;
}

/* Per-request state beyond the buffers: the spool file, streaming, a pending drain. */
void cs_http_req_reset_extras(struct http_req *r)
{
	cs_spool_close(r->spool);
	r->spool = NULL;
	if (r->gated) {
		r->gated = false;
		if (cs_http_spool.done)
			cs_http_spool.done(cs_http_spool.ctx);
	}
	if (r->pub.body_fd >= 0)
		close(r->pub.body_fd);
	r->pub.body_fd = -1;
	r->pub.body_len = 0;
	r->pub.forwarded = false;
	if (r->orphan_of) {
		/* Released before its closing connection could call the drain callback. */
		r->orphan_of->orphan = NULL;
		r->orphan_of = NULL;
	}
	r->drain_cb = NULL;
	r->drain_ctx = NULL;
	r->streaming = r->chunked = r->no_body = false;
	r->spool_max = 0;
	r->pub.body_stream = false;
	r->body_data = NULL;
	r->body_end = NULL;
	r->body_ctx = NULL;
	r->body_seen = 0;
	r->body_open = r->body_started = r->body_paused = false;
}

void cs_http_req_free(struct http_req *r)
{
	if (!r)
		return;
	cs_http_req_reset_extras(r);
	cs_buf_free_secure(&r->strs);
	cs_buf_free_secure(&r->pub.body);
	free(r->offs);
	free(r->hdrs);
	free(r);
}

/* Forget the last request but keep the memory; headers and bodies carry tokens and
 * secrets, so the bytes are wiped. */
void cs_http_req_clear(struct http_req *r)
{
	cs_http_req_reset_extras(r);
	if (r->strs.cap > KEEP_BUF_CAP) {
		cs_buf_free_secure(&r->strs);
	} else if (r->strs.data) {
		cs_zero(r->strs.data, r->strs.len);
		r->strs.len = 0;
	}
	if (r->pub.body.cap > KEEP_BUF_CAP) {
		cs_buf_free_secure(&r->pub.body);
	} else if (r->pub.body.data) {
		cs_zero(r->pub.body.data, r->pub.body.len);
		r->pub.body.len = 0;
	}
	r->n = 0;
	r->pub.n_headers = 0;
	r->pub.headers = NULL;
	r->pub.url = r->pub.path = r->pub.query = NULL;
	r->pub.user = NULL;
}

/* ---------------------------------------------------------------- spooled bodies */

void cs_http_set_spool(bool (*want)(const char *method, const char *path), const char *dir,
		       uint64_t max_bytes)
{
	free(cs_http_spool.dir);
	cs_http_spool.dir = want && dir ? strdup(dir) : NULL;
	cs_http_spool.want = cs_http_spool.dir ? want : NULL;
	cs_http_spool.max = max_bytes;
}

void cs_http_set_spool_policy(cs_http_admit_fn admit, void (*done)(void *ctx), void *ctx,
			      int reserve_percent)
{
	cs_http_spool.admit = admit;
	cs_http_spool.done = admit ? done : NULL;
	cs_http_spool.ctx = ctx;
	cs_http_spool.reserve_percent = reserve_percent;
}

/* ---------------------------------------------------------------- timers */

void cs_http_timer_set(struct cs_http_conn *c, enum timer_mode m, uint64_t ms, bool restart)
{
	if (c->tmode == m && !restart)
		return;
	c->tmode = m;
	if (m == TM_NONE)
		uv_timer_stop(&c->timer);
	else
		uv_timer_start(&c->timer, cs_http_on_timer, ms, 0);
}

/* A streamed body the consumer wants now: parse it even though the request is held. */
static bool body_active(const struct cs_http_conn *c)
{
	const struct http_req *r = c->req;
	return r && r->body_open && r->body_started && !r->body_paused;
}

/*
 * While a body arrives: the gap between bytes (IDLE_TIMEOUT_MS), and the whole request's
 * read time (http_read_timeout) counted from its first byte, so that a client trickling
 * bytes just under the gap is still cut. An upload admitted by cs_http_spool.admit (a sudo token
 * restoring a snapshot of many GiB) is bounded by the gap only.
 */
static uint64_t body_deadline(const struct cs_http_conn *c)
{
	const struct cs_http_listener *l = c->l;
	if (!l->read_ms || (c->req && c->req->gated))
		return IDLE_TIMEOUT_MS;
	uint64_t elapsed = uv_now(l->loop) - c->req_start;
	if (elapsed >= l->read_ms)
		return 1;
	uint64_t left = l->read_ms - elapsed;
	return left < IDLE_TIMEOUT_MS ? left : IDLE_TIMEOUT_MS;
}

/* Pick the deadline for the connection's current state. The header deadline is not
 * pushed back by further bytes: it counts from the first byte of the request. */
void cs_http_timer_update(struct cs_http_conn *c)
{
	if (c->closing || c->lingering)
		return;
	struct cs_http_listener *l = c->l;
	if (c->held && c->writing && c->req && c->req->streaming)
		cs_http_timer_set(c, TM_WRITE, IDLE_TIMEOUT_MS,
				  false); /* a client that stops reading */
	else if (c->held && body_active(c))
		cs_http_timer_set(c, TM_BODY, body_deadline(c),
				  true); /* a streamed body still arrives */
	else if (c->held)
		cs_http_timer_set(c, TM_NONE, 0, false);
	else if (c->writing)
		cs_http_timer_set(c, TM_WRITE, IDLE_TIMEOUT_MS, false);
	else if (c->spool_wait || c->spool_blocked)
		cs_http_timer_set(c, TM_NONE, 0,
				  false); /* waiting for our own disk, not the client */
	else if (c->in_body)
		cs_http_timer_set(c, TM_BODY, body_deadline(c), true);
	else if (c->in_headers || c->in_off < c->in.len || (c->ssl && !c->hs_done && c->bytes_seen))
		cs_http_timer_set(c, TM_HEADER,
				  l->header_ms && (!l->read_ms || l->header_ms < l->read_ms)
				      ? l->header_ms
				  : l->read_ms ? l->read_ms
					       : IDLE_TIMEOUT_MS,
				  false);
	else
		cs_http_timer_set(c, TM_IDLE, IDLE_TIMEOUT_MS, false);
}

void cs_http_on_timer(uv_timer_t *t)
{
	struct cs_http_conn *c = CS_CONTAINER_OF(t, struct cs_http_conn, timer);
	static const char *what[] = {"", "idle", "header", "body", "write", "linger"};
	if (c->tmode != TM_LINGER)
		cs_debug("http: %s: %s timeout", c->remote_addr, what[c->tmode]);
	c->tmode = TM_NONE;
	cs_http_conn_close(c);
}

/* ---------------------------------------------------------------- request flow */

static void dispatch(struct cs_http_conn *c)
{
	struct http_req *r = c->req;
	c->msg_done = false;
	c->at_boundary = true;
	c->is_list = false;
	if (c->parser.upgrade)
		r->keep_alive = false; /* we do not switch protocols; answer, then close */
	if (!r->keep_alive)
		c->dead_input =
		    true; /* http-parser would cs_http_reject anything after it anyway */
	if (r->spool) {
		/* The body is complete once the writer thread has written all of it. */
		int e = cs_spool_error(r->spool);
		if (e) {
			c->spool_errno = e;
			c->err_status = e == ENOSPC ? 507 : 500;
			cs_http_reject(c, HPE_OK);
			return;
		}
		if (cs_spool_queued(r->spool) > 0) {
			c->spool_wait = true;
			cs_http_timer_update(c);
			return; /* cs_http_spool_wake calls us again */
		}
		r->pub.body_fd = cs_spool_take_fd(r->spool);
		if (r->pub.body_fd < 0) {
			c->spool_errno = errno;
			c->err_status = 500;
			cs_http_reject(c, HPE_OK);
			return;
		}
		cs_spool_close(r->spool);
		r->spool = NULL;
	}
	if (r->pub.body_fd >= 0) {
		if (lseek(r->pub.body_fd, 0, SEEK_SET) != 0) {
			c->spool_errno = errno;
			c->err_status = 500;
			cs_http_reject(c, HPE_OK);
			return;
		}
	} else {
		r->pub.body_len = r->pub.body.len;
	}
	c->held = true;
	cs_http_timer_update(c);
	c->l->handler(&r->pub, c->l->ctx);
}

/* The header block of a streamed-body request: the handler takes it now. */
static void dispatch_early(struct cs_http_conn *c)
{
	c->held = true;
	cs_http_timer_update(c);
	c->l->handler(&c->req->pub, c->l->ctx);
}

/* The streamed body ended: the request is complete (it stays the handler's). */
static void body_finish(struct cs_http_conn *c)
{
	struct http_req *r = c->req;
	c->msg_done = false;
	c->at_boundary = true;
	c->is_list = false;
	if (c->parser.upgrade)
		r->keep_alive = false;
	if (!r->keep_alive)
		c->dead_input = true;
	void (*end)(void *, int) = r->body_end;
	r->body_open = false;
	r->body_data = NULL;
	r->body_end = NULL;
	if (end)
		end(r->body_ctx, 0);
}

void cs_http_body_start(struct cs_http_req *req,
			void (*on_data)(void *ctx, const char *p, size_t n),
			void (*on_end)(void *ctx, int err), void *ctx)
{
	struct http_req *r = CS_CONTAINER_OF(req, struct http_req, pub);
	struct cs_http_conn *c = req->conn;
	if (!r->body_open) {
		on_end(ctx, c ? 0 : ECONNRESET); /* no body, or the client is gone */
		return;
	}
	if (!c) {
		r->body_open = false;
		on_end(ctx, ECONNRESET);
		return;
	}
	r->body_data = on_data;
	r->body_end = on_end;
	r->body_ctx = ctx;
	r->body_started = true;
	r->body_paused = false;
	cs_http_process_input(c);
}

void cs_http_body_pause(struct cs_http_req *req)
{
	struct http_req *r = CS_CONTAINER_OF(req, struct http_req, pub);
	if (r->body_open)
		r->body_paused = true;
}

void cs_http_body_resume(struct cs_http_req *req)
{
	struct http_req *r = CS_CONTAINER_OF(req, struct http_req, pub);
	if (!r->body_open || !r->body_paused)
		return;
	r->body_paused = false;
	if (req->conn)
		cs_http_process_input(req->conn);
}

void cs_http_body_stop(struct cs_http_req *req)
{
	struct http_req *r = CS_CONTAINER_OF(req, struct http_req, pub);
	r->body_data = NULL;
	r->body_end = NULL;
	r->body_ctx = NULL;
}

/* The spool writer finished a batch: report its error, resume reading, or dispatch the
 * request that waited for its body to reach the disk. */
void cs_http_spool_wake(void *ctx)
{
	struct cs_http_conn *c = ctx;
	struct http_req *r = c->req;
	if (c->closing || c->processing || !r || !r->spool)
		return;
	int e = cs_spool_error(r->spool);
	if (e) {
		c->spool_errno = e;
		c->err_status = e == ENOSPC ? 507 : 500;
		cs_http_reject(c, HPE_OK);
		return;
	}
	if (c->spool_wait) {
		if (cs_spool_queued(r->spool) > 0)
			return;
		c->spool_wait = false;
		c->processing = true; /* the handler may answer at once: not re-entered */
		dispatch(c);
		c->processing = false;
		cs_http_process_input(c);
		return;
	}
	if (c->spool_blocked && cs_spool_queued(r->spool) < CS_SPOOL_LOW) {
		c->spool_blocked = false;
		cs_http_process_input(c); /* the input still buffered, then reading again */
	}
}

/* Parse and dispatch whatever is buffered, one request at a time. Re-entrant calls
 * (a handler answering synchronously) return at once; the outer loop continues. */
/* At the start of a request: skip stray CRLF between requests (RFC 7230 §3.5) and look
 * at the request line. False when more bytes must arrive before parsing goes on. */
static bool request_start(struct cs_http_conn *c, char **pp, size_t *pn)
{
	char *p = *pp;
	size_t n = *pn;
	while (n && (*p == '\r' || *p == '\n')) {
		p++;
		n--;
		c->in_off++;
	}
	if (n == 0)
		return false;
	/* http-parser knows no LIST: rewrite it to a method of the same length and remember
	 * what the client really sent. */
	if (n < 5 && memcmp(p, "LIST ", n) == 0)
		return false; /* wait for more bytes */
	c->is_list = n >= 5 && memcmp(p, "LIST ", 5) == 0;
	c->line_ok = cs_http_request_line_ok(p, n);
	if (c->is_list)
		memcpy(p, "LOCK", 4);
	c->at_boundary = false;
	*pp = p;
	*pn = n;
	return true;
}

/* Whether process_input may feed the parser now. */
static bool input_wanted(const struct cs_http_conn *c)
{
	return !c->closing && (!c->held || body_active(c)) && !c->dead_input && !c->writing &&
	       !c->spool_wait && !c->spool_blocked && c->in_off < c->in.len;
}

/* Feed the parser once from c->in and act on where it stopped (a complete request, the
 * header block of a streamed body, an error). False when input must wait. */
static bool parse_some(struct cs_http_conn *c)
{
	char *p = c->in.data + c->in_off;
	size_t n = c->in.len - c->in_off;
	if (c->at_boundary && !request_start(c, &p, &n))
		return false;
	size_t used = http_parser_execute(&c->parser, &cs_http_parser_settings, p, n);
	c->in_off += used;
	enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
	if (c->closing)
		return false;
	if (c->dead_input) {
		/* Answered while its streamed body still arrived: what follows is dropped,
		 * the connection ends once the answer is out. */
		return false;
	}
	if (e == HPE_PAUSED && c->early) {
		c->early = false;
		http_parser_pause(&c->parser, 0);
		dispatch_early(c);
		return true;
	}
	if (e == HPE_PAUSED && c->msg_done) {
		http_parser_pause(&c->parser, 0);
		if (c->held)
			body_finish(c); /* the end of a streamed body */
		else
			dispatch(c);
		return true;
	}
	if (e == HPE_PAUSED && c->held) {
		http_parser_pause(&c->parser, 0); /* the consumer paused the body */
		return true;
	}
	if (e != HPE_OK) {
		if (c->held) {
			/* A streamed body that cannot complete: its consumer learns it from
			 * on_end; the handler still answers (to nobody). */
			c->body_err = c->err_status == 413 ? EFBIG : EPROTO;
			cs_http_conn_close(c);
		} else {
			cs_http_reject(c, e);
		}
		return false;
	}
	if (used < n) {
		/* http-parser stopped without error: only after an upgrade. */
		c->dead_input = true;
		return false;
	}
	return true;
}

/* Drop the parsed bytes from c->in (wiped); a big buffer is not kept between requests. */
static void compact_input(struct cs_http_conn *c)
{
	if (c->in_off >= c->in.len) {
		cs_http_reset_wipe(&c->in);
		c->in_off = 0;
		if (c->in.cap > KEEP_BUF_CAP)
			cs_buf_free_secure(&c->in);
	} else if (c->in_off) {
		cs_http_consume_wipe(&c->in, c->in_off);
		c->in_off = 0;
	}
	if (c->dead_input)
		cs_http_reset_wipe(&c->in);
}

/* After parsing: close a connection whose client is gone, and stop or restart reading
 * as the held request, the input buffer and the spool writer allow. Ends processing. */
static void after_input(struct cs_http_conn *c)
{
	if (c->peer_eof && !c->held && !c->close_after_write && !c->writing) {
		/* The client is gone and everything it sent is answered. */
		c->processing = false;
		cs_http_conn_close(c);
		return;
	}
	if (c->peer_eof && c->held && !c->lingering && (!c->req->body_open || body_active(c))) {
		/* A streamed body over (complete or cut short) after the client's EOF: as for
		 * any held request, the handler keeps it and the connection closes. */
		c->processing = false;
		c->body_err = EPIPE;
		cs_http_conn_close(c);
		return;
	}
	if (c->held && c->reading && c->in.len > MAX_BUFFERED_INPUT) {
		uv_read_stop((uv_stream_t *)c->tcp);
		c->reading = false;
	}
	if (!c->spool_blocked && !c->spool_wait && c->req && c->req->spool &&
	    cs_spool_queued(c->req->spool) > CS_SPOOL_HIGH) {
		/* The disk is behind the client: stop reading until the writer catches up
		 * (cs_http_spool_wake), so memory stays bounded whatever the upload's size. */
		c->spool_blocked = true;
	}
	if ((c->spool_blocked || c->spool_wait) && c->reading) {
		uv_read_stop((uv_stream_t *)c->tcp);
		c->reading = false;
	}
	cs_http_timer_update(c);
	c->processing = false;
	if ((!c->held || c->in.len <= MAX_BUFFERED_INPUT) && !c->reading && !c->peer_eof &&
	    !c->spool_blocked && !c->spool_wait)
		cs_http_start_reading(c);
}

void cs_http_process_input(struct cs_http_conn *c)
{
	if (c->processing || c->closing)
		return;
	c->processing = true;
	while (input_wanted(c) && parse_some(c))
		;
	if (c->closing) {
		c->processing = false;
		return;
	}
	compact_input(c);
	after_input(c);
}
