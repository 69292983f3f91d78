/*
 * Outbound HTTP POSTs on the libuv loop through libcurl's multi interface (the join's
 * client, raft/join.c). The standard libcurl + libuv pairing: curl tells us which sockets
 * to watch (CURLMOPT_SOCKETFUNCTION → one uv_poll_t each) and when to wake it
 * (CURLMOPT_TIMERFUNCTION → one uv_timer_t); both call curl_multi_socket_action, and
 * finished transfers are collected with curl_multi_info_read.
 *
 * Nothing blocks the loop: names are resolved by curl's threaded resolver (init refuses a
 * libcurl built without asynchronous DNS), connects and TLS handshakes are non-blocking.
 * Each request gets its own easy handle and its connection is not reused (as a fresh
 * curl_easy_perform would), TLS 1.2 or later, the server's certificate and name verified
 * (against the given CA, else the system store; only a seal stanza's tls_skip_verify turns
 * that off), no redirects followed. Users: the join's client and the transit seal
 * (server/seal_transit.c); ACME http-01 validation (engines/acme_validate.c, with
 * cs_curlm_get: its own limits, described there).
 *
 * Happy path: post → the callback runs once, on the loop, with rc 0, the HTTP status and
 * the body. Failures: connection, TLS, timeout (connect 3 s, whole request 10 s) or a body
 * over 1 MiB → the callback runs with rc CS_EIO and err "<url>: <curl's message>".
 * cs_curlm_cancel: the callback never runs. Loop thread only.
 */
#ifndef CS_LIB_CURLM_H
#define CS_LIB_CURLM_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "lib/buf.h"

#define CS_CURLM_CONNECT_TIMEOUT_S 3
#define CS_CURLM_TIMEOUT_S         10
#define CS_CURLM_MAX_BODY          (1 << 20)

/* Where to POST: base URL without a trailing '/', optional PEM CA, client certificate and
 * key, and a TLS server name to ask for while connecting to the URL's address. */
struct cs_curlm_target {
	const char *url, *ca, *cert, *key, *sni;
	/* Optional: sent as X-Vault-Token (wiped from memory after the request). */
	const char *token;
	/* Only for a seal stanza's tls_skip_verify = true: no certificate or name check. */
	bool insecure;
};

struct cs_curlm_req;

/* rc 0: status and body (wiped and freed by the driver after the call; the callee may
 * steal body->data by resetting *body). rc != 0: err says why. */
typedef void (*cs_curlm_cb)(void *ctx, int rc, long status, struct cs_buf *body, const char *err);

struct cs_curlm {
	uv_loop_t *loop;
	void *multi; /* CURLM */
	uv_timer_t timer;
	struct cs_curlm_req *reqs;   /* in flight */
	struct cs_curlm_sock *socks; /* watched sockets */
	int closing_handles;
	void (*close_cb)(struct cs_curlm *m);
	bool closing;
};

/* 0, or CS_EINTERNAL with errmsg (no asynchronous resolver, curl init failed). */
int cs_curlm_init(struct cs_curlm *m, uv_loop_t *loop, char *errmsg, size_t errlen);
/* POST `body` (JSON, copied) to t->url + path. *out (may be NULL) names the request for
 * cs_curlm_cancel until its callback runs. 0, or CS_EINTERNAL (nothing started). The
 * target's strings are copied into the request. */
int cs_curlm_post(struct cs_curlm *m, const struct cs_curlm_target *t, const char *path,
		  const char *body, cs_curlm_cb cb, void *ctx, struct cs_curlm_req **out);
/* A GET whose answer the caller judges itself (ACME http-01, engines/acme_validate.c):
 * no redirect is followed (the caller sees status and Location and decides), no proxy
 * from the environment is used, only the listed protocols are allowed, and the body is
 * capped. */
struct cs_curlm_get_opts {
	const char *url;
	/* "host:port:addr[,addr...]" (CURLOPT_RESOLVE): the addresses to connect to, already
	 * resolved by the caller, so curl resolves nothing itself. NULL: curl resolves. */
	const char *resolve;
	const char *protocols;   /* CURLOPT_PROTOCOLS_STR; NULL: "http,https" */
	size_t max_body;         /* 0: CS_CURLM_MAX_BODY; a longer body ends the transfer */
	long timeout_ms;         /* whole request; 0: CS_CURLM_TIMEOUT_S */
	long connect_timeout_ms; /* 0: CS_CURLM_CONNECT_TIMEOUT_S */
	bool insecure;           /* https: no certificate or name check (ACME redirects) */
};

/* What a GET got. body is freed by the driver after the callback (steal it by
 * resetting it); location is the redirect target for a 3xx, else NULL. */
struct cs_curlm_resp {
	long status;
	struct cs_buf *body;
	const char *location;
	bool too_big; /* the body went over max_body (rc is CS_EIO) */
};
typedef void (*cs_curlm_get_cb)(void *ctx, int rc, const struct cs_curlm_resp *resp,
				const char *err);
/* 0, or CS_EINTERNAL (nothing started). Strings are copied. *out as for cs_curlm_post. */
int cs_curlm_get(struct cs_curlm *m, const struct cs_curlm_get_opts *o, cs_curlm_get_cb cb,
		 void *ctx, struct cs_curlm_req **out);
/* Abandon a request in flight: its callback will not run. */
void cs_curlm_cancel(struct cs_curlm *m, struct cs_curlm_req *r);
/* Cancel everything and close the handles; cb (may be NULL) runs from the last close. */
void cs_curlm_close(struct cs_curlm *m, void (*cb)(struct cs_curlm *m));

#endif
