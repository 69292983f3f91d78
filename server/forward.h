/*
 * Request forwarding, standby side (docs/architecture.md, "The cluster"; Vault's behaviour:
 * https://developer.hashicorp.com/vault/docs/concepts/ha#request-forwarding).
 *
 * A standby relays every request it cannot answer to the active node over the cluster
 * port and copies the answer back verbatim, so clients never see a 307:
 *
 *   cs_forward → pooled keep-alive connection to the target, or a new one: TCP connect →
 *   mutual TLS (client SSL_CTX, ALPN custos-forward, server name node-<id> checked
 *   against its certificate), 5 s for both → the request as HTTP/1.1: method, raw
 *   target, client headers minus hop-by-hop ones, X-Custos-Forwarded-For, Content-Length,
 *   body (from memory or the spool file, in chunks, never more than ~1 MiB queued) →
 *   response parsed with http-parser → relayed to the client: small bodies with
 *   cs_http_respond, chunked or > 1 MiB bodies with the cs_http_stream_* API, reading
 *   from upstream only while the client's queue is below CS_HTTP_STREAM_HIGH → done(0)
 *   → the connection goes back to the pool.
 *
 * Failure modes (done is called exactly once, never from within cs_forward):
 * - connect refused or timed out, TLS failure, peer certificate not node-<id>, ALPN
 *   not selected → CS_EIO, nothing sent to the client, hreq still the caller's;
 * - malformed or oversized response head, upstream closed before the response ended,
 *   120 s without progress (no response byte, no request byte sent) → CS_EIO; if the
 *   response had already started streaming to the client, that connection is aborted
 *   (the client sees a truncated body) and done gets hreq == NULL;
 * - the client went away during a streamed relay → CS_EIO with hreq == NULL;
 * - cs_forward_close → CS_ESHUTDOWN.
 * A request on a reused pooled connection that fails before any response byte arrived
 * (the active node closed the idle connection just as we sent) is retried once on a
 * fresh connection if its method is idempotent (GET, HEAD, OPTIONS, LIST).
 *
 * Caveats:
 * - Loop thread only (the loop of the HTTP listeners whose requests are forwarded).
 * - A request that arrived forwarded (hreq->forwarded, from an adopted connection of
 *   cs_http_adopt) must never be forwarded again: a leadership change could otherwise
 *   bounce it between nodes. The caller checks (cs_forward refuses it with CS_EINVAL).
 * - Connections are reused only for the same (address, id) and the same SSL_CTX
 *   generation; cs_forward_reset / cs_forward_set_ctx retire the pool.
 */
#ifndef CS_SERVER_FORWARD_H
#define CS_SERVER_FORWARD_H

#include <openssl/ssl.h>
#include <stdint.h>
#include <uv.h>

#include "server/http.h"

#define CS_FORWARD_CONNECT_MS  5000u
#define CS_FORWARD_RESPONSE_MS 120000u
#define CS_FORWARD_MAX_CONNS   64 /* per target; more requests wait for a free one */

struct cs_forwarder;

/*
 * done: status 0 = the active node's response was relayed to hreq (cs_http_respond or
 * the streaming API) and hreq is released (the pointer is only an identity now).
 * Non-zero (a CS_E* code) with hreq != NULL = nothing was sent, hreq is still the
 * caller's (answer it), errmsg says why (connect refused, TLS failure, peer is not
 * node-<id>, timeout, malformed response, upstream closed early); CS_ENOTACTIVE among
 * those says the peer certainly did not process it (never sent, or an idempotent
 * request without a response byte), so it may be sent again. Non-zero with
 * hreq == NULL = the relay failed after the response had started (or the client left):
 * the client connection was aborted and the request released. errmsg is valid during
 * the call only and never holds a secret. Runs on the loop thread, from a loop callback.
 */
typedef void (*cs_forward_done_cb)(void *ctx, struct cs_http_req *hreq, int status,
				   const char *errmsg);

struct cs_forward_stats {
	uint64_t requests;     /* accepted by cs_forward */
	uint64_t relayed;      /* done with status 0 */
	uint64_t failed;       /* done with status != 0 */
	uint64_t conns_opened; /* connections attempted */
	uint64_t reused;       /* requests sent on a pooled connection */
	uint64_t retried;      /* idempotent requests retried after a stale connection */
	uint64_t streamed;     /* responses relayed with the stream API */
	uint64_t max_queued;   /* most response bytes held for one client at once: the client
				* connection's queue plus what this module buffered */
};

/* client_ctx: from cs_cluster_tls_client_ctx (up-ref'd). ALPN "custos-forward" and the
 * expected server name are set per connection. Never fails (allocation aborts). */
struct cs_forwarder *cs_forward_new(uv_loop_t *loop, SSL_CTX *client_ctx);
/* New certificates: later connections use client_ctx (up-ref'd); idle pooled
 * connections are closed, busy ones close once their request is done. */
void cs_forward_set_ctx(struct cs_forwarder *fw, SSL_CTX *client_ctx);
/* Tests: connect+TLS and response (no-progress) deadlines in ms; 0 = default. */
/* Bind outbound connections to the host of `listen_address` (this node's cluster
 * listener; see cs_cluster_source_address). NULL or a wildcard: no bind. 0 or CS_EINVAL. */
int cs_forward_set_source(struct cs_forwarder *fw, const char *listen_address);
void cs_forward_set_timeouts(struct cs_forwarder *fw, unsigned connect_ms, unsigned response_ms);

/*
 * Forward hreq to the node with raft id `id` at cluster address `addr` ("ip:port" or
 * "[ipv6]:port", IP literals only). The server certificate must chain to the cluster
 * CA and carry node-<id>. Returns 0: hreq belongs to the forwarder until done(ctx, ...)
 * runs exactly once. Returns CS_EINVAL (bad address, id 0, hreq->forwarded) or
 * CS_ESHUTDOWN (closing): done will not run and hreq is still the caller's.
 */
/*
 * Hops: a forwarded request carries X-Custos-Forward-Hops (1 on the first hop). A node
 * that received it forwarded but is no longer active (leadership moved meanwhile, e.g. a
 * step-down) may pass it on once more; beyond CS_FORWARD_MAX_HOPS cs_forward refuses
 * (CS_EINVAL), which bounds a loop between nodes with stale leader views.
 */
#define CS_FORWARD_HOPS_HEADER "X-Custos-Forward-Hops"
#define CS_FORWARD_MAX_HOPS    2
/* Hops this request already made (0 unless it arrived on an adopted connection). */
int cs_forward_hops(const struct cs_http_req *hreq);
int cs_forward(struct cs_forwarder *fw, const char *addr, uint64_t id, struct cs_http_req *hreq,
	       cs_forward_done_cb cb, void *ctx);
/* Leader changed: close idle pooled connections; busy ones are not reused; requests on
 * connections still connecting are given back unsent (done with CS_ENOTACTIVE). */
void cs_forward_reset(struct cs_forwarder *fw);
/* Fail waiting requests with CS_ESHUTDOWN (their done runs within this call), close
 * every connection (requests in flight get done with CS_ESHUTDOWN from close
 * callbacks), free fw, then cb(ctx) from a later loop callback (cb may be NULL). */
void cs_forward_close(struct cs_forwarder *fw, void (*cb)(void *ctx), void *ctx);
void cs_forward_get_stats(const struct cs_forwarder *fw, struct cs_forward_stats *out);

#endif
