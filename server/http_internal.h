/*
 * What the files of the HTTP listener share; not a public interface (only server/http*.c
 * include it). http.c opens with the overview (happy path, failure modes, limits); the
 * listener is split by job:
 *
 *   http.c        requests and their storage, timers, the request flow (dispatch,
 *                 bodies, process_input), the spool settings
 *   http_parse.c  the http-parser callbacks, target and header checks, URL decoding
 *   http_write.c  the write path, response heads, errors, cs_http_respond, streamed
 *                 responses
 *   http_conn.c   reading (plain and TLS), connections, adoption, the listener and its
 *                 TLS context
 *
 * Everything runs on the loop thread. Include server/http.h first: this header builds on
 * its types but does not include it, so that http.c and its own internals are not a
 * loop for scripts/check-layers.py.
 */
#ifndef CS_SERVER_HTTP_INTERNAL_H
#define CS_SERVER_HTTP_INTERNAL_H

#include <http_parser.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "lib/buf.h"

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

/* Request-body spooling (cs_http_set_spool, cs_http_set_spool_policy): process-wide,
 * loop thread only. */
struct cs_http_spool_cfg {
	bool (*want)(const char *method, const char *path);
	char *dir;
	uint64_t max;
	cs_http_admit_fn admit;
	void (*done)(void *ctx);
	void *ctx;
	int reserve_percent;
};
extern struct cs_http_spool_cfg cs_http_spool;

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

/* ---- http.c: requests, timers, the request flow (comments at the definitions) */
struct http_req *cs_http_req_new(void);
/* Drop the first n bytes of b / all of b; the bytes are wiped (they carry secrets). */
void cs_http_consume_wipe(struct cs_buf *b, size_t n);
void cs_http_reset_wipe(struct cs_buf *b);
void cs_http_req_reset_extras(struct http_req *r);
void cs_http_req_free(struct http_req *r);
void cs_http_req_clear(struct http_req *r);
void cs_http_timer_set(struct cs_http_conn *c, enum timer_mode m, uint64_t ms, bool restart);
void cs_http_timer_update(struct cs_http_conn *c);
void cs_http_on_timer(uv_timer_t *t);
void cs_http_spool_wake(void *ctx);
/* Parse and dispatch what c->in holds, as far as the connection's state allows. */
void cs_http_process_input(struct cs_http_conn *c);

/* ---- http_parse.c */
/* The callbacks process_input feeds the parser through. */
extern const http_parser_settings cs_http_parser_settings;
bool cs_http_request_line_ok(const char *p, size_t n);

/* ---- http_write.c */
void cs_http_tls_flush(struct cs_http_conn *c);
void cs_http_send_plain(struct cs_http_conn *c, const char *p, size_t n);
void cs_http_on_shutdown(uv_shutdown_t *s, int status);
void cs_http_finish_conn(struct cs_http_conn *c);
void cs_http_send_response(struct cs_http_conn *c, int status, const char *ct,
			   const struct cs_http_header *extra, size_t n_extra, const void *body,
			   size_t len, bool head, bool http10_keep_alive, bool close);
void cs_http_reject(struct cs_http_conn *c, enum http_errno e);

/* ---- http_conn.c */
/* Last OpenSSL error as text (clears the queue). */
const char *cs_http_tls_errstr(char *buf, size_t len);
void cs_http_start_reading(struct cs_http_conn *c);
/* Close the connection's handles; it is freed (cs_http_conn_free) in the last close
 * callback. A held request is detached and stays the handler's. */
void cs_http_conn_free(struct cs_http_conn *c);
void cs_http_conn_close(struct cs_http_conn *c);

#endif
