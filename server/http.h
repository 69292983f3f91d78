/*
 * HTTP/1.1 listener on libuv: plain TCP or TLS (OpenSSL through memory BIOs), parsing
 * with http-parser, keep-alive, one request in flight per connection (pipelined bytes
 * wait in the input buffer until the response is written).
 *
 * Happy path: accept → [TLS handshake] → parse headers and body → handler(req) →
 * ... handler (possibly much later) calls cs_http_respond(req, ...) → response written
 * → next request on the same connection.
 * Failure modes, all handled here without calling the handler:
 * - body larger than max_request_size → 413 {"errors":["http: request body too large"]},
 *   connection closed after the response;
 * - malformed HTTP → 400 {"errors":["malformed HTTP request"]}, closed;
 * - TLS handshake failure / version below the minimum → connection closed;
 * - client disconnects while the handler still holds the request: req->conn becomes
 *   NULL; the handler still calls cs_http_respond, which then only frees the request.
 * - idle keep-alive connections are closed after 5 minutes; a connection that sends no
 *   complete request header within http_read_header_timeout (10 s) of its first byte,
 *   or no complete request within http_read_timeout (30 s), is closed (an upload
 *   admitted by the spool policy is bounded by the 5-minute gap between bytes only);
 * - more than max_connections (4096) open client connections: a new plain-HTTP
 *   connection is answered 503 {"errors":["too many open connections"]} and closed; a
 *   new TLS connection is closed right after accept (answering would need a handshake).
 *
 * Two more ways in and out:
 * - Adopted connections: a listener made with cs_http_adopt_listener has no socket; the
 *   cluster port (raft/cluster.h) hands it mutual-TLS connections of ALPN
 *   custos-forward through cs_http_adopt. Their requests carry `forwarded = true` and
 *   take remote_addr from X-Custos-Forwarded-For (a header trusted nowhere else).
 * - Big bodies: requests chosen by cs_http_set_spool get their body in an unlinked temp
 *   file (body_fd) instead of memory, written by a thread (server/spool.h) while the
 *   loop keeps serving; cs_http_set_spool_policy decides who may upload before the body
 *   is read. Responses of unknown or large size are pushed with the cs_http_stream_*
 *   API (chunked), with back-pressure.
 *
 * Thread: everything runs on the loop thread passed to cs_http_listen.
 */
#ifndef CS_SERVER_HTTP_H
#define CS_SERVER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <uv.h>

#include "lib/buf.h"
#include "server/config.h"

struct cs_http_conn;
struct cs_http_listener;

struct cs_http_header {
	char *name; /* as received */
	char *value;
};

struct cs_http_req {
	struct cs_http_conn *conn; /* NULL once the client went away */
	char method[16];           /* "GET", "PUT", "LIST", ... as sent (upper case) */
	char *url;                 /* raw request target */
	char *path;                /* percent-decoded path, without the query */
	char *query;               /* raw query string without '?', or NULL */
	struct cs_http_header *headers;
	size_t n_headers;
	struct cs_buf body;   /* empty when the body was spooled (body_fd >= 0) */
	int body_fd;          /* -1, or the spooled body: an unlinked temp file at offset 0
			       * when the handler runs; closed by the HTTP layer on release */
	uint64_t body_len;    /* body bytes, wherever they are */
	char remote_addr[64]; /* "127.0.0.1:53412"; on adopted connections the value of
			       * X-Custos-Forwarded-For (the original client) when present */
	bool tls;
	bool forwarded; /* arrived on an adopted (cluster) connection: never forward it again */
	/* Set by the spool policy's admit (cs_http_set_spool_policy) to pass the body
	 * through instead of storing it: the handler then runs as soon as the header
	 * block is complete, and reads the body with cs_http_body_start (a standby relaying
	 * an upload to the active node). Read-only for handlers. */
	bool body_stream;
	void *user; /* free for the handler */
};

/* Called once per complete request. The handler owns `req` until it calls
 * cs_http_respond (from this call or any later loop callback). */
typedef void (*cs_http_handler)(struct cs_http_req *req, void *ctx);

/*
 * Start listening on cfg->address ("host:port"). TLS unless cfg->tls_disable, with
 * cfg->tls_cert_file/tls_key_file and minimum version cfg->tls_min_version (never below
 * TLS 1.2). Returns NULL with errmsg on failure (bind, certificate, key).
 * The listener keeps a copy of what it needs from cfg.
 */
struct cs_http_listener *cs_http_listen(uv_loop_t *loop, const struct cs_listener_config *cfg,
					cs_http_handler handler, void *ctx, char *errmsg,
					size_t errlen);
/*
 * A listener without a socket: connections are handed to it with cs_http_adopt. `cfg`
 * may be NULL; only max_request_size is used (TLS is the cluster port's). Never fails.
 * Close it with cs_http_listener_close, which also closes adopted connections.
 */
struct cs_http_listener *cs_http_adopt_listener(uv_loop_t *loop,
						const struct cs_listener_config *cfg,
						cs_http_handler handler, void *ctx);
/*
 * Serve HTTP/1.1 on an established TLS connection from the cluster listener, following
 * the cs_cluster_handler_fn ownership rules: `ssl` (handshake done, memory BIOs) and
 * `tcp` (malloc'ed, not reading) become the listener's, which frees both. Usable
 * directly as the CS_ALPN_FORWARD handler with ctx = the adopt listener. Loop thread;
 * the handler may run before this returns (a request already buffered in the SSL).
 */
void cs_http_adopt(void *adopt_listener, SSL *ssl, uv_tcp_t *tcp);

/* The port actually bound (useful when the address asked for port 0). */
int cs_http_listener_port(const struct cs_http_listener *l);
/* Stop accepting, close every connection (pending requests get conn = NULL), free the
 * listener when all handles closed, then call cb(ctx) (cb may be NULL). */
void cs_http_listener_close(struct cs_http_listener *l, void (*cb)(void *ctx), void *ctx);

/* Case-insensitive header lookup; NULL if absent. */
const char *cs_http_header_get(const struct cs_http_req *req, const char *name);

/*
 * Send the response and release `req`. Adds Content-Length, Date, Cache-Control:
 * no-store and Content-Type (when content_type != NULL and status != 204). `extra`
 * headers are sent as given. For HEAD requests and 204 the body is not sent; for HEAD
 * `body` is never read, so a relay may pass NULL with len = the length a GET would have.
 * Safe when req->conn is NULL (then it only frees).
 */
void cs_http_respond(struct cs_http_req *req, int status, const char *content_type,
		     const struct cs_http_header *extra, size_t n_extra, const void *body,
		     size_t len);
/* Convenience: JSON body. */
void cs_http_respond_json(struct cs_http_req *req, int status, const char *json, size_t len);

/*
 * Streaming responses, for bodies too big to hold (snapshots). Pattern:
 *   cs_http_stream_begin → loop { q = cs_http_stream_write(...); if q < 0: client gone,
 *   cs_http_stream_abort; if q > CS_HTTP_STREAM_HIGH: cs_http_stream_on_drain and stop
 *   producing until the callback } → cs_http_stream_end (or _abort on a producer error).
 * The body is sent with chunked transfer-encoding (HTTP/1.0 clients: raw bytes, then the
 * connection closes). HEAD, 204 and 304 send the head only; writes are then dropped.
 * The handler keeps owning `req` until _end or _abort, which release it like
 * cs_http_respond. All of these are safe once the client went away (req->conn NULL).
 * Loop thread.
 */
#define CS_HTTP_STREAM_HIGH (4u << 20) /* pause producing above this many queued bytes */
#define CS_HTTP_STREAM_LOW  (1u << 20) /* the drain callback fires below this */

/* Send the head. Returns 0, or -1 when the client is gone (still call _end or _abort). */
int cs_http_stream_begin(struct cs_http_req *req, int status, const char *content_type,
			 const struct cs_http_header *extra, size_t n_extra);
/* Queue one chunk (copied; len 0 is a no-op). Returns the bytes queued but not yet
 * written to the socket, or < 0 if the client is gone. */
long cs_http_stream_write(struct cs_http_req *req, const void *data, size_t len);
/* Call cb(ctx) once, when the queued output falls below CS_HTTP_STREAM_LOW — from a
 * later loop callback, or synchronously from within this call if it already is below or
 * the client is gone. A new call replaces a pending callback. */
void cs_http_stream_on_drain(struct cs_http_req *req, void (*cb)(void *ctx), void *ctx);
/* The final chunk; releases req (like cs_http_respond). */
void cs_http_stream_end(struct cs_http_req *req);
/* Error mid-stream: close the connection (the client sees a truncated body) and
 * release req. Also valid before cs_http_stream_begin (then nothing was sent). */
void cs_http_stream_abort(struct cs_http_req *req);

/*
 * Request-body spooling, process-wide (every listener, including adopted ones). A
 * request for which want(method, path) returns true gets its body written to an
 * unlinked temp file in `dir` (body_fd, body_len) instead of memory, limited to
 * max_bytes instead of max_request_size (413 beyond). The handler runs once the whole
 * body is on disk. A failing write (EIO, EFBIG) is answered 500, a full disk or a
 * crossed reserve 507, and the connection closed. want == NULL turns spooling off. `dir` is
 * copied. Call from the loop thread (or before the loop runs); `want` runs on it.
 */
void cs_http_set_spool(bool (*want)(const char *method, const char *path), const char *dir,
		       uint64_t max_bytes);

/*
 * Who may spool, decided when the header block of a request chosen by `want` is
 * complete, before a byte of its body is read. admit(req, ctx, &body, &len) returns 0
 * to accept (a malloc'd *body, if set, is freed), or an HTTP status with *body a
 * malloc'd JSON error of *len bytes: the HTTP layer sends it and closes the connection
 * without reading the body (and frees body). Only the request line, headers and
 * remote_addr of req are meaningful then; admit must not answer or keep req. For every
 * accepted request done(ctx) runs once, when the request is released (answered, failed
 * or the client gone), so that the owner can count uploads in progress.
 * reserve_percent: an upload is refused with 507 when it would leave less than this
 * share of the spool volume free (checked with Content-Length before the body, and
 * before every write); 0 turns the check off. admit == NULL: every request is accepted.
 * Loop thread (or before the loop runs); admit and done run on it.
 */
typedef int (*cs_http_admit_fn)(struct cs_http_req *req, void *ctx, char **body, size_t *len);
void cs_http_set_spool_policy(cs_http_admit_fn admit, void (*done)(void *ctx), void *ctx,
			      int reserve_percent);

/*
 * Streamed request bodies (req->body_stream). The handler owns req from the header
 * block on; the body is parsed only once cs_http_body_start registered the consumer:
 * on_data(ctx, p, n) for every piece of the body (p valid during the call only), then
 * on_end(ctx, 0) once it is complete, or on_end(ctx, error) if it cannot be (malformed
 * framing, over the spool limit, the client went away) — exactly one on_end, which
 * runs from within cs_http_body_start when the client is already gone. on_data may call
 * cs_http_body_pause; reading resumes with cs_http_body_resume. cs_http_body_stop unregisters the
 * consumer (no more calls). Answering (cs_http_respond / stream) before the body is complete also
 * unregisters it and closes the connection once the answer is out. Loop thread.
 */
void cs_http_body_start(struct cs_http_req *req,
			void (*on_data)(void *ctx, const char *p, size_t n),
			void (*on_end)(void *ctx, int err), void *ctx);
void cs_http_body_pause(struct cs_http_req *req);
void cs_http_body_resume(struct cs_http_req *req);
void cs_http_body_stop(struct cs_http_req *req);

/* Reason phrase for a status ("OK", "Not Found", ...). */
const char *cs_http_reason(int status);

/*
 * Query string helpers. cs_query_next iterates "a=1&b=%20x": returns false at the end;
 * name/value are malloc'd, percent- and '+'-decoded; caller frees both.
 */
bool cs_query_next(const char **cursor, char **name, char **value);
/* Percent-decode (and '+' → ' ' when form is true) into a malloc'd string; NULL if
 * the input has a bad escape. */
char *cs_url_decode(const char *s, size_t len, bool form);

#endif
