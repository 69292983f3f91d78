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
 *   complete request header within 10 seconds of its first byte is closed.
 *
 * Thread: everything runs on the loop thread passed to cs_http_listen.
 */
#ifndef CS_SERVER_HTTP_H
#define CS_SERVER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
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
	struct cs_buf body;
	char remote_addr[64]; /* "127.0.0.1:53412" */
	bool tls;
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
 * headers are sent as given. For HEAD requests and 204 the body is not sent.
 * Safe when req->conn is NULL (then it only frees).
 */
void cs_http_respond(struct cs_http_req *req, int status, const char *content_type,
		     const struct cs_http_header *extra, size_t n_extra, const void *body,
		     size_t len);
/* Convenience: JSON body. */
void cs_http_respond_json(struct cs_http_req *req, int status, const char *json, size_t len);

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
