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

#define IDLE_TIMEOUT_MS    (5u * 60 * 1000)
#define HEADER_TIMEOUT_MS  (10u * 1000) /* Vault's http_read_header_timeout default */
#define READ_TIMEOUT_MS    (30u * 1000) /* Vault's http_read_timeout default */
#define MAX_REFUSING       64           /* over-limit connections being answered 503 at once */
#define LINGER_TIMEOUT_MS  (2u * 1000)
#define MAX_HEADER_BYTES   (64u * 1024)
#define MAX_HEADERS        256
#define MAX_BUFFERED_INPUT (1u << 20)
#define READ_CHUNK         (64u * 1024)
#define TLS_READ_CHUNK     (16u * 1024)
#define KEEP_BUF_CAP       (256u * 1024) /* bigger per-request buffers are not kept */
#define BODY_PREALLOC_MAX  (1u << 20)
#define LISTEN_BACKLOG     511
#define DEFAULT_PORT       "8200"

static const char err_too_large[] = "{\"errors\":[\"http: request body too large\"]}";
static const char err_header_large[] = "{\"errors\":[\"http: request header too large\"]}";
static const char err_malformed[] = "{\"errors\":[\"malformed HTTP request\"]}";
static const char err_method[] = "{\"errors\":[]}";
static const char continue_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* Request-body spooling (cs_http_set_spool, cs_http_set_spool_policy): process-wide,
 * loop thread only. */
static struct {
	bool (*want)(const char *method, const char *path);
	char *dir;
	uint64_t max;
	cs_http_admit_fn admit;
	void (*done)(void *ctx);
	void *ctx;
	int reserve_percent;
} spool;

/* Offsets into http_req.strs while headers arrive: the buffer may move as it grows. */
struct hdr_off {
	size_t name;
	size_t value;
};

/* A request with its storage. Reused across requests of a connection; owned by the
 * handler alone once detached (client gone while held). */
struct http_req {
	struct cs_http_req pub;
	struct cs_buf strs; /* url, header names and values, path, query: NUL-separated */
	struct hdr_off *offs;
	struct cs_http_header *hdrs;
	size_t cap; /* of offs and hdrs */
	size_t n;   /* headers received so far */
	bool head;
	bool http10;
	bool keep_alive;
	/* streaming response (cs_http_stream_*) */
	bool streaming; /* begun, not yet ended */
	bool chunked;   /* framing of the streamed body */
	bool no_body;   /* HEAD, 204, 304: writes are dropped */
	void (*drain_cb)(void *ctx);
	void *drain_ctx;
	/* Detached while a drain callback was pending: the closing connection fires it
	 * from its last close callback, unless the request is released first. */
	struct cs_http_conn *orphan_of;
	/* spooled body */
	uint64_t spool_max;
	struct cs_spool *spool; /* while the body arrives; the file becomes body_fd */
	bool gated;             /* admitted by spool.admit: spool.done is owed */
	/* streamed body (pub.body_stream): the handler runs after the header block */
	void (*body_data)(void *ctx, const char *p, size_t n);
	void (*body_end)(void *ctx, int err);
	void *body_ctx;
	uint64_t body_seen;
	bool body_open;    /* dispatched, body not complete yet */
	bool body_started; /* a consumer is registered */
	bool body_paused;
};

enum timer_mode { TM_NONE, TM_IDLE, TM_HEADER, TM_BODY, TM_WRITE, TM_LINGER };

/* Where the header callbacks are: decides whether the next field starts a header. */
enum hstate { HS_URL, HS_FIELD, HS_VALUE, HS_DONE };

struct cs_http_conn {
	uv_tcp_t *tcp; /* &tcp_store, or the cluster's malloc'ed handle when adopted */
	uv_tcp_t tcp_store;
	uv_timer_t timer;
	uv_write_t wreq;
	uv_shutdown_t sreq;
	struct cs_http_listener *l;
	struct cs_http_conn *prev, *next;
	SSL *ssl; /* owns both BIOs */
	BIO *rbio, *wbio;
	http_parser parser;
	struct cs_buf in; /* plaintext input; unparsed from in_off */
	size_t in_off;
	struct cs_buf wbuf;     /* bytes of the uv_write in flight */
	struct cs_buf wpending; /* bytes queued behind it */
	struct cs_buf head;     /* response head scratch (TLS: head + body) */
	struct http_req *req;
	char remote_addr[64];
	size_t hdr_bytes;
	int handles;    /* open uv handles; the connection is freed when it reaches 0 */
	int err_status; /* set by a parser callback that rejects the request */
	enum timer_mode tmode;
	enum hstate hstate;
	bool closing;           /* uv_close called */
	bool held;              /* the handler owns req */
	bool writing;           /* a uv_write is in flight */
	bool close_after_write; /* last response queued; shut down once written */
	bool dead_input;        /* parse nothing more */
	bool shutdown_started;
	bool lingering; /* write side shut; waiting for the peer's EOF */
	bool peer_eof;
	bool reading;
	bool processing;  /* process_input is on the stack */
	bool at_boundary; /* next input byte starts a request */
	bool is_list;     /* this request's "LIST " was rewritten to "LOCK " */
	bool line_ok;     /* the request line looks like "TOKEN /target HTTP/1.x" */
	bool in_headers;
	bool in_body;
	bool msg_done;
	bool hs_done; /* TLS handshake finished */
	bool tls_failed;
	bool bytes_seen;
	/* Handed over by the cluster port: tcp is malloc'ed, requests are forwarded ones. */
	bool adopted;
	struct http_req *orphan; /* detached streaming request owed a drain callback */
	int spool_errno;         /* why the spool write failed (for the 500) */
	char *err_body;          /* JSON for the next reject(), from spool.admit */
	bool spool_blocked;      /* reading paused: the spool writer is behind */
	bool spool_wait;         /* request complete, waiting for the spool to be written */
	bool refusing;           /* over max_connections: answered 503 and closing */
	bool early;              /* header block of a streamed-body request: dispatch it now */
	int body_err;            /* why a streamed body failed (errno), for its on_end */
	uint64_t req_start;      /* uv_now when the current request's first byte arrived */
};

struct cs_http_listener {
	uv_tcp_t tcp; /* never bound for an adopt listener: closing it still gives the
		       * asynchronous close callback the close contract promises */
	uv_loop_t *loop;
	SSL_CTX *ssl_ctx;
	cs_http_handler handler;
	void *ctx;
	size_t max_body;
	int port;
	struct cs_http_conn *conns;
	size_t n_conns;
	size_t n_refusing;  /* of n_conns: over-limit connections being refused */
	size_t max_conns;   /* 0: unlimited (adopted connections) */
	uint64_t header_ms; /* 0: no limit */
	uint64_t read_ms;   /* headers + body; 0: no limit */
	bool closing;
	bool server_closed;
	bool adopt; /* connections come from cs_http_adopt */
	void (*close_cb)(void *ctx);
	void *close_ctx;
	time_t date_sec;
	char date[40];
	/* Shared read buffer: libuv calls alloc and read callbacks back to back on the loop
	 * thread, and every read callback consumes the bytes before returning. */
	char rbuf[READ_CHUNK];
};

static void process_input(struct cs_http_conn *c);
static void start_reading(struct cs_http_conn *c);
static void conn_close(struct cs_http_conn *c);
static void on_timer(uv_timer_t *t);
static void spool_wake(void *ctx);

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

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Decode into out (room for len bytes). Returns the decoded length, or -1 for a bad
 * escape or an encoded NUL (the result is used as a C string: "a%00b" would silently
 * become "a"). */
static long decode_into(char *out, const char *s, size_t len, bool form)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		if (ch == '%') {
			if (i + 2 >= len)
				return -1;
			int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -1;
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (ch == '+' && form) {
			out[o++] = ' ';
		} else {
			out[o++] = ch;
		}
	}
	return (long)o;
}

char *cs_url_decode(const char *s, size_t len, bool form)
{
	char *out = malloc(len + 1);
	if (!out)
		abort();
	long n = decode_into(out, s, len, form);
	if (n < 0) {
		free(out);
		return NULL;
	}
	out[n] = '\0';
	return out;
}

bool cs_query_next(const char **cursor, char **name, char **value)
{
	const char *p = *cursor;
	*name = *value = NULL;
	while (p && *p) {
		const char *seg = p;
		const char *amp = strchr(seg, '&');
		size_t seglen = amp ? (size_t)(amp - seg) : strlen(seg);
		p = amp ? amp + 1 : seg + seglen;
		if (seglen == 0)
			continue;
		const char *eq = memchr(seg, '=', seglen);
		size_t nlen = eq ? (size_t)(eq - seg) : seglen;
		char *n = cs_url_decode(seg, nlen, true);
		char *v = eq ? cs_url_decode(eq + 1, seglen - nlen - 1, true) : strdup("");
		if (!n || !v) {
			/* Like Go's url.ParseQuery: a pair that does not decode is dropped. */
			free(n);
			free(v);
			continue;
		}
		*cursor = p;
		*name = n;
		*value = v;
		return true;
	}
	*cursor = p;
	return false;
}

const char *cs_http_header_get(const struct cs_http_req *req, const char *name)
{
	for (size_t i = 0; i < req->n_headers; i++)
		if (strcasecmp(req->headers[i].name, name) == 0)
			return req->headers[i].value;
	return NULL;
}

/*
 * Request and response bytes carry tokens and secrets: buffers are wiped as they are
 * consumed, not only when freed (cs_buf_consume moves the rest down and leaves the old
 * tail behind; resetting len leaves everything).
 */
static void consume_wipe(struct cs_buf *b, size_t n)
{
	size_t old = b->len;
	cs_buf_consume(b, n);
	if (b->data && old > b->len)
		cs_zero(b->data + b->len, old - b->len);
}

static void reset_wipe(struct cs_buf *b)
{
	if (b->data)
		cs_zero(b->data, b->len);
	b->len = 0;
}

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
static const char *tls_errstr(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();
	if (e)
		ERR_error_string_n(e, buf, len);
	else
		snprintf(buf, len, "unknown error");
	ERR_clear_error();
	return buf;
}

/* ---------------------------------------------------------------- requests */

static struct http_req *req_new(void)
{
	struct http_req *r = calloc(1, sizeof *r);
	if (!r)
		abort();
	r->pub.body_fd = -1;
	return r;
}

/* Per-request state beyond the buffers: the spool file, streaming, a pending drain. */
static void req_reset_extras(struct http_req *r)
{
	cs_spool_close(r->spool);
	r->spool = NULL;
	if (r->gated) {
		r->gated = false;
		if (spool.done)
			spool.done(spool.ctx);
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

static void req_free(struct http_req *r)
{
	if (!r)
		return;
	req_reset_extras(r);
	cs_buf_free_secure(&r->strs);
	cs_buf_free_secure(&r->pub.body);
	free(r->offs);
	free(r->hdrs);
	free(r);
}

/* Forget the last request but keep the memory; headers and bodies carry tokens and
 * secrets, so the bytes are wiped. */
static void req_clear(struct http_req *r)
{
	req_reset_extras(r);
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
	free(spool.dir);
	spool.dir = want && dir ? strdup(dir) : NULL;
	spool.want = spool.dir ? want : NULL;
	spool.max = max_bytes;
}

void cs_http_set_spool_policy(cs_http_admit_fn admit, void (*done)(void *ctx), void *ctx,
			      int reserve_percent)
{
	spool.admit = admit;
	spool.done = admit ? done : NULL;
	spool.ctx = ctx;
	spool.reserve_percent = reserve_percent;
}

/* ---------------------------------------------------------------- timers */

static void timer_set(struct cs_http_conn *c, enum timer_mode m, uint64_t ms, bool restart)
{
	if (c->tmode == m && !restart)
		return;
	c->tmode = m;
	if (m == TM_NONE)
		uv_timer_stop(&c->timer);
	else
		uv_timer_start(&c->timer, on_timer, ms, 0);
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
 * bytes just under the gap is still cut. An upload admitted by spool.admit (a sudo token
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
static void timer_update(struct cs_http_conn *c)
{
	if (c->closing || c->lingering)
		return;
	struct cs_http_listener *l = c->l;
	if (c->held && c->writing && c->req && c->req->streaming)
		timer_set(c, TM_WRITE, IDLE_TIMEOUT_MS, false); /* a client that stops reading */
	else if (c->held && body_active(c))
		timer_set(c, TM_BODY, body_deadline(c), true); /* a streamed body still arrives */
	else if (c->held)
		timer_set(c, TM_NONE, 0, false);
	else if (c->writing)
		timer_set(c, TM_WRITE, IDLE_TIMEOUT_MS, false);
	else if (c->spool_wait || c->spool_blocked)
		timer_set(c, TM_NONE, 0, false); /* waiting for our own disk, not the client */
	else if (c->in_body)
		timer_set(c, TM_BODY, body_deadline(c), true);
	else if (c->in_headers || c->in_off < c->in.len || (c->ssl && !c->hs_done && c->bytes_seen))
		timer_set(c, TM_HEADER,
			  l->header_ms && (!l->read_ms || l->header_ms < l->read_ms) ? l->header_ms
			  : l->read_ms                                               ? l->read_ms
				       : IDLE_TIMEOUT_MS,
			  false);
	else
		timer_set(c, TM_IDLE, IDLE_TIMEOUT_MS, false);
}

static void on_timer(uv_timer_t *t)
{
	struct cs_http_conn *c = CS_CONTAINER_OF(t, struct cs_http_conn, timer);
	static const char *what[] = {"", "idle", "header", "body", "write", "linger"};
	if (c->tmode != TM_LINGER)
		cs_debug("http: %s: %s timeout", c->remote_addr, what[c->tmode]);
	c->tmode = TM_NONE;
	conn_close(c);
}

/* ---------------------------------------------------------------- writing */

static void on_write(uv_write_t *w, int status);

/* Write c->wbuf: synchronously if the kernel takes it all, else one uv_write. */
static void start_write(struct cs_http_conn *c)
{
	uv_buf_t b = uv_buf_init(c->wbuf.data, (unsigned)c->wbuf.len);
	int r = uv_try_write((uv_stream_t *)c->tcp, &b, 1);
	if (r == (int)c->wbuf.len) {
		reset_wipe(&c->wbuf);
		return;
	}
	if (r < 0 && r != UV_EAGAIN) {
		cs_debug("http: %s: write: %s", c->remote_addr, uv_strerror(r));
		conn_close(c);
		return;
	}
	if (r > 0)
		consume_wipe(&c->wbuf, (size_t)r);
	b = uv_buf_init(c->wbuf.data, (unsigned)c->wbuf.len);
	r = uv_write(&c->wreq, (uv_stream_t *)c->tcp, &b, 1, on_write);
	if (r) {
		cs_debug("http: %s: write: %s", c->remote_addr, uv_strerror(r));
		conn_close(c);
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
		conn_close(c);
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
		conn_close(c);
		return;
	}
	c->writing = true;
}

/* Move whatever OpenSSL produced (handshake, records, alerts) to the socket. */
static void tls_flush(struct cs_http_conn *c)
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
static void send_plain(struct cs_http_conn *c, const char *p, size_t n)
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
				 tls_errstr(err, sizeof err));
			conn_close(c);
			return;
		}
		p += k;
		n -= (size_t)k;
	}
	tls_flush(c);
}

static void on_shutdown(uv_shutdown_t *s, int status)
{
	struct cs_http_conn *c = CS_CONTAINER_OF(s, struct cs_http_conn, sreq);
	if (c->closing)
		return;
	if (status < 0 || c->peer_eof) {
		conn_close(c);
		return;
	}
	/* Lingering close: drain the peer's input until it closes, briefly. */
	c->lingering = true;
	c->tmode = TM_LINGER;
	uv_timer_start(&c->timer, on_timer, LINGER_TIMEOUT_MS, 0);
	start_reading(c);
}

static void do_shutdown(struct cs_http_conn *c)
{
	if (c->shutdown_started || c->closing)
		return;
	c->shutdown_started = true;
	if (uv_shutdown(&c->sreq, (uv_stream_t *)c->tcp, on_shutdown))
		conn_close(c);
}

/* No more requests on this connection: finish writing what is queued, then shut down. */
static void finish_conn(struct cs_http_conn *c)
{
	if (c->close_after_write || c->closing)
		return;
	c->close_after_write = true;
	c->dead_input = true;
	if (c->ssl && c->hs_done && !c->tls_failed) {
		ERR_clear_error();
		SSL_shutdown(c->ssl); /* queues close_notify; we do not wait for the peer's */
		ERR_clear_error();
		tls_flush(c);
	}
	if (!c->writing)
		do_shutdown(c);
}

static void stream_maybe_drain(struct cs_http_conn *c);

static void on_write(uv_write_t *w, int status)
{
	struct cs_http_conn *c = CS_CONTAINER_OF(w, struct cs_http_conn, wreq);
	c->writing = false;
	reset_wipe(&c->wbuf);
	if (c->closing)
		return;
	if (status < 0) {
		cs_debug("http: %s: write: %s", c->remote_addr, uv_strerror(status));
		conn_close(c);
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
			timer_set(c, TM_WRITE, IDLE_TIMEOUT_MS, true);
		else
			timer_set(c, TM_NONE, 0, false);
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
	process_input(c);
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
static void send_response(struct cs_http_conn *c, int status, const char *ct,
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
		send_plain(c, h->data, h->len);
		cs_zero(h->data, h->len);
	} else {
		uv_buf_t b[2] = {uv_buf_init(h->data, (unsigned)h->len),
				 uv_buf_init((char *)body, (unsigned)len)};
		write_bufs(c, b, len ? 2 : 1);
	}
	if (h->cap > KEEP_BUF_CAP)
		cs_buf_free(h);
	if (close)
		finish_conn(c);
}

/* The request could not be parsed or is too big: answer and end the connection. */
static void reject(struct cs_http_conn *c, enum http_errno e)
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
		body = c->err_body; /* spool.admit refused the upload */
		why = "upload refused before its body";
	} else if (status == 507) {
		snprintf(spool_err, sizeof spool_err,
			 "{\"errors\":[\"http: not enough free space to store the request body: "
			 "the upload would leave less than %d%% of the spool volume free\"]}",
			 spool.reserve_percent);
		body = spool_err;
		why = "request body spool: disk reserve";
		cs_warn("http: %s: request body refused: %s would fall under its %d%% free-space "
			"reserve",
			c->remote_addr, spool.dir ? spool.dir : "?", spool.reserve_percent);
	} else if (status == 500) {
		/* The body could not be spooled: an operator problem (disk), worth a warning. */
		snprintf(spool_err, sizeof spool_err,
			 "{\"errors\":[\"http: could not store the request body: %s\"]}",
			 strerror(c->spool_errno));
		body = spool_err;
		why = "request body spool failed";
		cs_warn("http: %s: request body spool in %s: %s", c->remote_addr,
			spool.dir ? spool.dir : "?", strerror(c->spool_errno));
	}
	cs_debug("http: %s: rejecting request (%d): %s", c->remote_addr, status, why);
	c->dead_input = true;
	c->in_headers = c->in_body = false;
	c->spool_wait = c->spool_blocked = false;
	if (c->req)
		req_reset_extras(c->req); /* the spool file goes, and the upload slot */
	send_response(c, status, "application/json", NULL, 0, body, strlen(body), false, false,
		      true);
	free(c->err_body);
	c->err_body = NULL;
}

/*
 * Whether the first line is a well-formed request line with a method token http-parser
 * may not know ("FROB /v1/x HTTP/1.1"): such a request is answered 405, like Vault,
 * rather than 400. Only looks at a line that has fully arrived.
 */
static bool request_line_ok(const char *p, size_t n)
{
	const char *eol = memchr(p, '\n', n < 8192 ? n : 8192);
	if (!eol)
		return false;
	size_t i = 0, len = (size_t)(eol - p);
	while (i < len && p[i] >= 'A' && p[i] <= 'Z')
		i++;
	if (i == 0 || i + 1 >= len || p[i] != ' ' || p[i + 1] != '/')
		return false;
	const char *sp = memchr(p + i + 1, ' ', len - i - 1);
	return sp && (size_t)(eol - sp) >= 9 && memcmp(sp + 1, "HTTP/1.", 7) == 0;
}

/* ---------------------------------------------------------------- parser callbacks */

static int count_header_bytes(struct cs_http_conn *c, size_t len)
{
	c->hdr_bytes += len;
	if (c->hdr_bytes > MAX_HEADER_BYTES) {
		c->err_status = 431;
		return -1;
	}
	return 0;
}

static int on_message_begin(http_parser *p)
{
	struct cs_http_conn *c = p->data;
	if (!c->req)
		c->req = req_new();
	struct http_req *r = c->req;
	req_reset_extras(r); /* e.g. the spool file of a request rejected midway */
	r->pub.conn = c;
	r->pub.tls = c->ssl != NULL;
	memcpy(r->pub.remote_addr, c->remote_addr, sizeof r->pub.remote_addr);
	r->n = 0;
	c->hdr_bytes = 0;
	c->early = false;
	c->body_err = 0;
	c->req_start = uv_now(c->l->loop);
	c->hstate = HS_URL;
	c->in_headers = true;
	c->in_body = false;
	c->msg_done = false;
	c->err_status = 0;
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct cs_http_conn *c = p->data;
	if (count_header_bytes(c, len))
		return -1;
	cs_buf_append(&c->req->strs, at, len);
	return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct cs_http_conn *c = p->data;
	struct http_req *r = c->req;
	if (c->hstate == HS_DONE)
		return 0; /* trailers after a chunked body: ignored */
	if (count_header_bytes(c, len))
		return -1;
	if (c->hstate != HS_FIELD) {
		if (r->n == MAX_HEADERS) {
			c->err_status = 431;
			return -1;
		}
		cs_buf_putc(&r->strs, '\0'); /* ends the url or the previous value */
		if (r->n == r->cap) {
			size_t cap = r->cap ? r->cap * 2 : 16;
			struct hdr_off *o = realloc(r->offs, cap * sizeof *o);
			struct cs_http_header *h = realloc(r->hdrs, cap * sizeof *h);
			if (o)
				r->offs = o;
			if (h)
				r->hdrs = h;
			if (!o || !h)
				abort();
			r->cap = cap;
		}
		r->offs[r->n].name = r->strs.len;
		r->offs[r->n].value = SIZE_MAX;
		r->n++;
		c->hstate = HS_FIELD;
	}
	cs_buf_append(&r->strs, at, len);
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct cs_http_conn *c = p->data;
	struct http_req *r = c->req;
	if (c->hstate == HS_DONE)
		return 0;
	if (count_header_bytes(c, len))
		return -1;
	if (c->hstate != HS_VALUE) {
		cs_buf_putc(&r->strs, '\0'); /* ends the name */
		r->offs[r->n - 1].value = r->strs.len;
		c->hstate = HS_VALUE;
	}
	cs_buf_append(&r->strs, at, len);
	return 0;
}

/* Split the request target into path (decoded into strs) and query (copied). Returns
 * false when the target cannot be used. Offsets are returned, not pointers: strs grows. */
static bool split_target(struct http_req *r, bool connect, size_t *path_off, size_t *query_off)
{
	const char *url = r->strs.data; /* offset 0, NUL-terminated */
	size_t ulen = strlen(url);
	size_t ps = 0, pl = 0, qs = 0, ql = 0;
	bool has_query = false;
	if (url[0] == '/') {
		size_t end = strcspn(url, "?#");
		ps = 0;
		pl = end;
		if (url[end] == '?') {
			has_query = true;
			qs = end + 1;
			ql = strcspn(url + qs, "#");
		}
	} else if (strcmp(url, "*") == 0) {
		pl = 1;
	} else {
		struct http_parser_url u;
		http_parser_url_init(&u);
		if (http_parser_parse_url(url, ulen, connect, &u))
			return false;
		if (u.field_set & (1 << UF_PATH)) {
			ps = u.field_data[UF_PATH].off;
			pl = u.field_data[UF_PATH].len;
		}
		if (u.field_set & (1 << UF_QUERY)) {
			has_query = true;
			qs = u.field_data[UF_QUERY].off;
			ql = u.field_data[UF_QUERY].len;
		}
	}
	cs_buf_reserve(&r->strs, pl + ql + 4);
	url = r->strs.data;
	*path_off = r->strs.len;
	if (pl == 0) {
		r->strs.data[r->strs.len++] = '/';
	} else {
		long n = decode_into(r->strs.data + r->strs.len, url + ps, pl, false);
		if (n < 0)
			return false;
		r->strs.len += (size_t)n;
	}
	r->strs.data[r->strs.len++] = '\0';
	*query_off = SIZE_MAX;
	if (has_query) {
		*query_off = r->strs.len;
		memcpy(r->strs.data + r->strs.len, url + qs, ql);
		r->strs.len += ql;
		r->strs.data[r->strs.len++] = '\0';
	}
	r->strs.data[r->strs.len] = '\0';
	return true;
}

/*
 * Who the request comes from. On an adopted connection the peer is a standby that proved
 * its identity with a cluster certificate and relays the original client's address in
 * X-Custos-Forwarded-For; anywhere else that header is the client's own claim and is
 * ignored (it would let anyone pick the address audit logs and rate limits see).
 */
static void set_origin(struct cs_http_conn *c, struct http_req *r)
{
	r->pub.forwarded = c->adopted;
	if (!c->adopted)
		return;
	const char *ff = cs_http_header_get(&r->pub, "X-Custos-Forwarded-For");
	if (ff && *ff)
		snprintf(r->pub.remote_addr, sizeof r->pub.remote_addr, "%s", ff);
}

static int on_headers_complete(http_parser *p)
{
	struct cs_http_conn *c = p->data;
	struct http_req *r = c->req;
	if (c->closing)
		return -1;
	cs_buf_putc(&r->strs, '\0'); /* ends the url or the last value */
	c->hstate = HS_DONE;
	c->in_headers = false;

	size_t path_off, query_off;
	if (!split_target(r, p->method == HTTP_CONNECT, &path_off, &query_off)) {
		c->err_status = 400;
		return -1;
	}
	/* Every append is done: pointers into strs are stable from here. */
	char *base = r->strs.data;
	r->pub.url = base;
	r->pub.path = base + path_off;
	r->pub.query = query_off == SIZE_MAX ? NULL : base + query_off;
	for (size_t i = 0; i < r->n; i++) {
		r->hdrs[i].name = base + r->offs[i].name;
		if (r->offs[i].value == SIZE_MAX) {
			/* "Name:" with an empty value: point at the name's own NUL. */
			r->hdrs[i].value = base + r->offs[i].name + strlen(base + r->offs[i].name);
		} else {
			char *v = base + r->offs[i].value;
			size_t vl = strlen(v);
			while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
				v[--vl] = '\0';
			r->hdrs[i].value = v;
		}
	}
	r->pub.headers = r->hdrs;
	r->pub.n_headers = r->n;

	const char *m = c->is_list && p->method == HTTP_LOCK
			    ? "LIST"
			    : http_method_str((enum http_method)p->method);
	snprintf(r->pub.method, sizeof r->pub.method, "%s", m);
	r->head = p->method == HTTP_HEAD;
	r->http10 = p->http_major == 1 && p->http_minor == 0;
	r->keep_alive = http_should_keep_alive(p) != 0;
	set_origin(c, r);

	bool has_len = (p->flags & F_CONTENTLENGTH) != 0;
	bool chunked = (p->flags & F_CHUNKED) != 0;
	bool spooled = spool.want && spool.want(r->pub.method, r->pub.path);
	uint64_t limit = spooled ? spool.max : c->l->max_body;
	if (has_len && p->content_length > limit) {
		c->err_status = 413;
		return -1;
	}
	if (spooled && spool.admit) {
		/* Who may upload is decided now, before a byte of the body is read: a refused
		 * client gets its answer and the connection closes (lingering briefly, so the
		 * answer is not lost to a reset while the client still sends). */
		char *body = NULL;
		size_t blen = 0;
		int status = spool.admit(&r->pub, spool.ctx, &body, &blen);
		if (c->closing) {
			free(body);
			return -1;
		}
		if (status) {
			free(c->err_body);
			c->err_body = body;
			c->err_status = status;
			return -1;
		}
		free(body);
		r->gated = true;
	}
	bool has_body = chunked || (has_len && p->content_length > 0);
	if (!has_body)
		r->pub.body_stream = false;
	if (r->pub.body_stream) {
		/* Passed through: the handler runs now (process_input sees the pause) and
		 * the body is parsed as its consumer asks (cs_http_body_start). */
		r->spool_max = spool.max;
		r->body_open = true;
		r->pub.body_len = has_len ? p->content_length : 0;
		c->early = true;
		http_parser_pause(p, 1);
	}
	if (spooled && has_body && !r->pub.body_stream) {
		r->spool_max = spool.max;
		int e = cs_spool_open(c->l->loop, spool.dir, spool.reserve_percent,
				      has_len ? p->content_length : 0, spool_wake, c, &r->spool);
		if (e) {
			c->spool_errno = e;
			c->err_status = e == ENOSPC ? 507 : 500;
			return -1;
		}
	}
	if ((chunked || (has_len && p->content_length > 0)) && p->http_major == 1 &&
	    p->http_minor >= 1) {
		const char *expect = cs_http_header_get(&r->pub, "Expect");
		if (expect && strcasecmp(expect, "100-continue") == 0)
			send_plain(c, continue_100, sizeof continue_100 - 1);
	}
	if (has_len && p->content_length > 0 && !r->spool && !r->pub.body_stream)
		cs_buf_reserve(&r->pub.body, p->content_length < BODY_PREALLOC_MAX
						 ? (size_t)p->content_length
						 : BODY_PREALLOC_MAX);
	c->in_body = true;
	return 0;
}

/* A spooled body goes straight to its file: memory stays bounded by one read. */
static int spool_body(struct cs_http_conn *c, const char *at, size_t len)
{
	struct http_req *r = c->req;
	if (len > r->spool_max - r->pub.body_len) {
		c->err_status = 413;
		return -1;
	}
	int e = cs_spool_write(r->spool, at, len);
	if (e) {
		c->spool_errno = e;
		c->err_status = e == ENOSPC ? 507 : 500;
		return -1;
	}
	r->pub.body_len += len;
	return 0;
}

/* A streamed body goes to its consumer, which may pause us from within the call. */
static int stream_body(struct cs_http_conn *c, http_parser *p, const char *at, size_t len)
{
	struct http_req *r = c->req;
	if (len > r->spool_max - r->body_seen) {
		c->err_status = 413;
		return -1;
	}
	r->body_seen += len;
	if (r->body_data)
		r->body_data(r->body_ctx, at, len);
	if (c->closing)
		return -1;
	if (r->body_paused)
		http_parser_pause(p, 1); /* the bytes of this call are consumed */
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct cs_http_conn *c = p->data;
	struct cs_buf *b = &c->req->pub.body;
	if (c->closing)
		return -1;
	if (c->req->body_open)
		return stream_body(c, p, at, len);
	if (c->req->spool)
		return spool_body(c, at, len);
	if (len > c->l->max_body - b->len) {
		c->err_status = 413;
		return -1;
	}
	cs_buf_append(b, at, len);
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct cs_http_conn *c = p->data;
	c->in_body = false;
	c->msg_done = true;
	/* Stop right after this request: pipelined bytes wait until it is answered. */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

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
		c->dead_input = true; /* http-parser would reject anything after it anyway */
	if (r->spool) {
		/* The body is complete once the writer thread has written all of it. */
		int e = cs_spool_error(r->spool);
		if (e) {
			c->spool_errno = e;
			c->err_status = e == ENOSPC ? 507 : 500;
			reject(c, HPE_OK);
			return;
		}
		if (cs_spool_queued(r->spool) > 0) {
			c->spool_wait = true;
			timer_update(c);
			return; /* spool_wake calls us again */
		}
		r->pub.body_fd = cs_spool_take_fd(r->spool);
		if (r->pub.body_fd < 0) {
			c->spool_errno = errno;
			c->err_status = 500;
			reject(c, HPE_OK);
			return;
		}
		cs_spool_close(r->spool);
		r->spool = NULL;
	}
	if (r->pub.body_fd >= 0) {
		if (lseek(r->pub.body_fd, 0, SEEK_SET) != 0) {
			c->spool_errno = errno;
			c->err_status = 500;
			reject(c, HPE_OK);
			return;
		}
	} else {
		r->pub.body_len = r->pub.body.len;
	}
	c->held = true;
	timer_update(c);
	c->l->handler(&r->pub, c->l->ctx);
}

/* The header block of a streamed-body request: the handler takes it now. */
static void dispatch_early(struct cs_http_conn *c)
{
	c->held = true;
	timer_update(c);
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
	process_input(c);
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
		process_input(req->conn);
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
static void spool_wake(void *ctx)
{
	struct cs_http_conn *c = ctx;
	struct http_req *r = c->req;
	if (c->closing || c->processing || !r || !r->spool)
		return;
	int e = cs_spool_error(r->spool);
	if (e) {
		c->spool_errno = e;
		c->err_status = e == ENOSPC ? 507 : 500;
		reject(c, HPE_OK);
		return;
	}
	if (c->spool_wait) {
		if (cs_spool_queued(r->spool) > 0)
			return;
		c->spool_wait = false;
		c->processing = true; /* the handler may answer at once: not re-entered */
		dispatch(c);
		c->processing = false;
		process_input(c);
		return;
	}
	if (c->spool_blocked && cs_spool_queued(r->spool) < CS_SPOOL_LOW) {
		c->spool_blocked = false;
		process_input(c); /* the input still buffered, then reading again */
	}
}

/* Parse and dispatch whatever is buffered, one request at a time. Re-entrant calls
 * (a handler answering synchronously) return at once; the outer loop continues. */
static void process_input(struct cs_http_conn *c)
{
	if (c->processing || c->closing)
		return;
	c->processing = true;
	while (!c->closing && (!c->held || body_active(c)) && !c->dead_input && !c->writing &&
	       !c->spool_wait && !c->spool_blocked && c->in_off < c->in.len) {
		char *p = c->in.data + c->in_off;
		size_t n = c->in.len - c->in_off;
		if (c->at_boundary) {
			/* Stray CRLF between requests (RFC 7230 §3.5) */
			while (n && (*p == '\r' || *p == '\n')) {
				p++;
				n--;
				c->in_off++;
			}
			if (n == 0)
				break;
			/* http-parser knows no LIST: rewrite it to a method of the same length
			 * and remember what the client really sent. */
			if (n < 5 && memcmp(p, "LIST ", n) == 0)
				break; /* wait for more bytes */
			c->is_list = n >= 5 && memcmp(p, "LIST ", 5) == 0;
			c->line_ok = request_line_ok(p, n);
			if (c->is_list)
				memcpy(p, "LOCK", 4);
			c->at_boundary = false;
		}
		size_t used = http_parser_execute(&c->parser, &parser_settings, p, n);
		c->in_off += used;
		enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
		if (c->closing)
			break;
		if (c->dead_input) {
			/* Answered while its streamed body still arrived: what follows is
			 * dropped, the connection ends once the answer is out. */
			break;
		}
		if (e == HPE_PAUSED && c->early) {
			c->early = false;
			http_parser_pause(&c->parser, 0);
			dispatch_early(c);
			continue;
		}
		if (e == HPE_PAUSED && c->msg_done) {
			http_parser_pause(&c->parser, 0);
			if (c->held)
				body_finish(c); /* the end of a streamed body */
			else
				dispatch(c);
			continue;
		}
		if (e == HPE_PAUSED && c->held) {
			http_parser_pause(&c->parser, 0); /* the consumer paused the body */
			continue;
		}
		if (e != HPE_OK) {
			if (c->held) {
				/* A streamed body that cannot complete: its consumer learns it
				 * from on_end; the handler still answers (to nobody). */
				c->body_err = c->err_status == 413 ? EFBIG : EPROTO;
				conn_close(c);
			} else {
				reject(c, e);
			}
			break;
		}
		if (used < n) {
			/* http-parser stopped without error: only after an upgrade. */
			c->dead_input = true;
			break;
		}
	}
	if (c->closing) {
		c->processing = false;
		return;
	}
	if (c->in_off >= c->in.len) {
		reset_wipe(&c->in);
		c->in_off = 0;
		if (c->in.cap > KEEP_BUF_CAP)
			cs_buf_free_secure(&c->in);
	} else if (c->in_off) {
		consume_wipe(&c->in, c->in_off);
		c->in_off = 0;
	}
	if (c->dead_input)
		reset_wipe(&c->in);

	if (c->peer_eof && !c->held && !c->close_after_write && !c->writing) {
		/* The client is gone and everything it sent is answered. */
		c->processing = false;
		conn_close(c);
		return;
	}
	if (c->peer_eof && c->held && !c->lingering && (!c->req->body_open || body_active(c))) {
		/* A streamed body over (complete or cut short) after the client's EOF: as for
		 * any held request, the handler keeps it and the connection closes. */
		c->processing = false;
		c->body_err = EPIPE;
		conn_close(c);
		return;
	}
	if (c->held && c->reading && c->in.len > MAX_BUFFERED_INPUT) {
		uv_read_stop((uv_stream_t *)c->tcp);
		c->reading = false;
	}
	if (!c->spool_blocked && !c->spool_wait && c->req && c->req->spool &&
	    cs_spool_queued(c->req->spool) > CS_SPOOL_HIGH) {
		/* The disk is behind the client: stop reading until the writer catches up
		 * (spool_wake), so memory stays bounded whatever the upload's size. */
		c->spool_blocked = true;
	}
	if ((c->spool_blocked || c->spool_wait) && c->reading) {
		uv_read_stop((uv_stream_t *)c->tcp);
		c->reading = false;
	}
	timer_update(c);
	c->processing = false;
	if ((!c->held || c->in.len <= MAX_BUFFERED_INPUT) && !c->reading && !c->peer_eof &&
	    !c->spool_blocked && !c->spool_wait)
		start_reading(c);
}

void cs_http_respond(struct cs_http_req *req, int status, const char *content_type,
		     const struct cs_http_header *extra, size_t n_extra, const void *body,
		     size_t len)
{
	struct http_req *r = CS_CONTAINER_OF(req, struct http_req, pub);
	struct cs_http_conn *c = req->conn;
	if (!c) {
		req_free(r);
		return;
	}
	if (r->streaming) {
		/* A second head after a streamed one would corrupt the connection. */
		cs_http_stream_abort(req);
		return;
	}
	c->held = false;
	bool close = !r->keep_alive || c->peer_eof || c->l->closing || r->body_open;
	send_response(c, status, content_type, extra, n_extra, body, len, r->head,
		      r->http10 && r->keep_alive, close);
	req_clear(r);
	process_input(c);
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
	send_plain(c, c->head.data, c->head.len);
	if (!req->conn)
		return -1;
	timer_update(c);
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
		send_plain(c, data, len);
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
			send_plain(c, h->data, h->len);
			cs_zero(h->data, h->len);
		} else if (c->ssl) {
			send_plain(c, hdr, (size_t)hl);
			send_plain(c, data, len);
			send_plain(c, "\r\n", 2);
		} else {
			uv_buf_t b[3] = {uv_buf_init(hdr, (unsigned)hl),
					 uv_buf_init((char *)data, (unsigned)len),
					 uv_buf_init("\r\n", 2)};
			write_bufs(c, b, 3);
		}
	}
	if (!req->conn)
		return -1;
	timer_update(c);
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
		req_free(r);
		return;
	}
	if (!r->streaming) {
		cs_http_stream_abort(req); /* nothing was begun: there is no response to end */
		return;
	}
	/* Not held from here: a failing write closes the connection, which then frees r. */
	c->held = false;
	if (r->chunked && !r->no_body)
		send_plain(c, "0\r\n\r\n", 5);
	bool close = !r->keep_alive || c->peer_eof || c->l->closing;
	if (c->head.cap > KEEP_BUF_CAP)
		cs_buf_free_secure(&c->head);
	req_clear(r);
	if (close)
		finish_conn(c);
	process_input(c);
}

void cs_http_stream_abort(struct cs_http_req *req)
{
	struct http_req *r = CS_CONTAINER_OF(req, struct http_req, pub);
	struct cs_http_conn *c = req->conn;
	if (!c) {
		req_free(r);
		return;
	}
	r->drain_cb = NULL;
	/* Still attached (not held) when the connection closes: conn_free frees it. */
	c->held = false;
	cs_debug("http: %s: response aborted", c->remote_addr);
	conn_close(c);
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
	cs_debug("http: %s: TLS %s failed: %s", c->remote_addr, what, tls_errstr(err, sizeof err));
	c->tls_failed = true;
	tls_flush(c); /* the alert, if OpenSSL made one */
	finish_conn(c);
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
	tls_flush(c);
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
				tls_flush(c);
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
		 * still passed on; process_input ends the connection once it is used up. */
		process_input(c);
		return;
	}
	if (c->held || c->lingering) {
		/* The handler keeps the request (req->conn becomes NULL). */
		conn_close(c);
		return;
	}
	if (c->close_after_write)
		return; /* on_shutdown closes */
	process_input(c);
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
			conn_close(c);
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
			timer_update(c);
		return; /* draining before close */
	}
	if (c->ssl) {
		int r = tls_input(c, buf->base, (size_t)nread);
		if (r < 0 || c->closing)
			return;
		process_input(c);
		if (r == 1 && !c->closing)
			on_eof(c);
		return;
	}
	cs_buf_append(&c->in, buf->base, (size_t)nread);
	cs_zero(buf->base, (size_t)nread); /* the listener's shared read buffer */
	process_input(c);
}

static void start_reading(struct cs_http_conn *c)
{
	if (c->reading || c->closing)
		return;
	int r = uv_read_start((uv_stream_t *)c->tcp, on_alloc, on_read);
	if (r) {
		cs_debug("http: %s: read start: %s", c->remote_addr, uv_strerror(r));
		conn_close(c);
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

static void conn_free(struct cs_http_conn *c)
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
	req_free(c->req);
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
		conn_free(c);
}

static void conn_close(struct cs_http_conn *c)
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
		conn_close(c);
		return;
	}
	c->dead_input = true;
	send_response(c, 503, "application/json", NULL, 0, body, sizeof body - 1, false, false,
		      true);
	if (!c->closing)
		start_reading(c); /* discard what the client sends until it sees the answer */
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
		conn_close(c);
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
			cs_warn("http: TLS setup: %s", tls_errstr(err, sizeof err));
			BIO_free(c->rbio);
			BIO_free(c->wbio);
			SSL_free(c->ssl);
			c->ssl = NULL;
			conn_close(c);
			return;
		}
		SSL_set_bio(c->ssl, c->rbio, c->wbio);
		SSL_set_accept_state(c->ssl);
	}
	start_reading(c);
	timer_update(c);
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
	process_input(c);
	if (r == 1 && !c->closing)
		on_eof(c);
	if (!c->closing && !c->held && !c->peer_eof)
		start_reading(c);
	if (!c->closing)
		timer_update(c);
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
		snprintf(errmsg, errlen, "TLS context: %s", tls_errstr(err, sizeof err));
		return NULL;
	}
	int minv = cfg->tls_min_version > TLS1_2_VERSION ? cfg->tls_min_version : TLS1_2_VERSION;
	if (SSL_CTX_set_min_proto_version(ctx, minv) != 1) {
		snprintf(errmsg, errlen, "tls_min_version %#x: %s", (unsigned)minv,
			 tls_errstr(err, sizeof err));
		goto err_after_ctx;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
				     SSL_OP_NO_COMPRESSION);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(errmsg, errlen, "tls_cert_file %s: %s", cert, tls_errstr(err, sizeof err));
		goto err_after_ctx;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		snprintf(errmsg, errlen, "tls_key_file %s: %s", key, tls_errstr(err, sizeof err));
		goto err_after_ctx;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(errmsg, errlen, "tls_key_file %s does not match tls_cert_file %s: %s", key,
			 cert, tls_errstr(err, sizeof err));
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
		conn_close(c);
}
