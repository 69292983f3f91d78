/*
 * The cluster port: one mutual-TLS listener on cluster_address, multiplexed by ALPN
 * (docs/architecture.md, "The cluster" and C8).
 *
 *   accept → TLS handshake (server SSL_CTX from storage/cluster_tls.h: the peer must
 *   present a certificate chaining to the cluster CA) within a deadline → explicit ALPN
 *   check → hand the connection to the handler registered for that protocol:
 *     CS_ALPN_RAFT     → normally cs_transport_accept (raft/transport.h)
 *     CS_ALPN_FORWARD  → the request-forwarding layer
 *   No ALPN, an unknown one, or a protocol without a handler: close_notify and close (an
 *   unknown offer already got a fatal no_application_protocol alert from the SSL_CTX).
 *
 * Ownership hand-off (cs_cluster_handler_fn): the handler receives the SSL (handshake
 * complete, memory BIOs: SSL_get_rbio holds ciphertext not yet consumed, and the SSL may
 * already hold decrypted application data — call SSL_read before waiting on the socket)
 * and the connected uv_tcp_t (malloc'ed by us, reading stopped, tcp->data unused, any
 * handshake bytes we owed the peer already queued with uv_write). From then on both are
 * the handler's: release them with cs_cluster_conn_release (or uv_close + free(tcp) in
 * the close callback, and SSL_free). Handlers run on the loop thread, from a read
 * callback, and may call cs_cluster_close.
 *
 * Failure modes: handshake error or timeout (5 s), bad certificate, no/unknown ALPN →
 * the connection is closed and counted in `rejected`; nothing reaches a handler. Errors
 * are logged at debug level (peers retry; a flood must not flood the log).
 */
#ifndef CS_RAFT_CLUSTER_H
#define CS_RAFT_CLUSTER_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#define CS_CLUSTER_HANDSHAKE_MS 5000

struct cs_cluster;

/* See the ownership rules above. `ctx` is the one given to cs_cluster_set_handler. */
typedef void (*cs_cluster_handler_fn)(void *ctx, SSL *ssl, uv_tcp_t *tcp);
typedef void (*cs_cluster_close_cb)(void *ctx);

struct cs_cluster_stats {
	uint64_t accepted; /* TCP connections accepted */
	uint64_t handed;   /* handed to a handler */
	uint64_t rejected; /* closed before reaching a handler */
};

/*
 * Listen on `address` ("ip:port", "[ipv6]:port"; port 0 picks one, see
 * cs_cluster_port). `server_ctx` is up-ref'd (the caller keeps its own reference).
 * Returns 0 and *out, or CS_EINVAL (bad address) / CS_EIO (bind/listen) with errmsg.
 * Loop thread only.
 */
int cs_cluster_listen(struct cs_cluster **out, uv_loop_t *loop, const char *address,
		      SSL_CTX *server_ctx, char *errmsg, size_t errlen);
/* Bound TCP port (useful after binding port 0). */
int cs_cluster_port(const struct cs_cluster *cl);
/* Register (fn != NULL) or remove (fn NULL) the handler for `alpn` (CS_ALPN_RAFT or
 * CS_ALPN_FORWARD; anything else is ignored). Connections handed off before are not
 * affected. Remove the raft handler before freeing the transport it points to. */
void cs_cluster_set_handler(struct cs_cluster *cl, const char *alpn, cs_cluster_handler_fn fn,
			    void *ctx);
/* Handshake deadline for new connections (tests); default CS_CLUSTER_HANDSHAKE_MS. */
void cs_cluster_set_handshake_timeout(struct cs_cluster *cl, unsigned ms);
void cs_cluster_get_stats(const struct cs_cluster *cl, struct cs_cluster_stats *out);
/* Stop listening, close connections still in their handshake, free the listener, then
 * cb(ctx) from a later loop callback (cb may be NULL). Handed-off connections are not
 * touched. Safe from any loop callback, including a handler. */
void cs_cluster_close(struct cs_cluster *cl, cs_cluster_close_cb cb, void *ctx);

/* Parse "a.b.c.d:port" or "[v6]:port" (IP literals only) into `sa`. 0 or CS_EINVAL. */
int cs_cluster_parse_address(const char *address, struct sockaddr_storage *sa);

/* The source address of this node's outbound cluster connections (raft, forwarding): the
 * host of its cluster listener's `listen_address` with port 0, so that peers (and packet
 * filters) see each node's connections come from its own address. A wildcard listener
 * (0.0.0.0, ::) or NULL gives ss_family AF_UNSPEC: the kernel picks, as before.
 * 0 or CS_EINVAL (unparsable address). */
int cs_cluster_source_address(const char *listen_address, struct sockaddr_storage *out);
/* Bind `tcp` (uv_tcp_init'ed, not yet connected) to `src` unless src is NULL or
 * AF_UNSPEC. 0 or a libuv error (e.g. UV_EADDRNOTAVAIL). */
int cs_cluster_bind_source(uv_tcp_t *tcp, const struct sockaddr_storage *src);

/* Queue whatever the SSL's write BIO holds (handshake, alerts, records) as one uv_write
 * on `s`; the request is self-contained (nothing to keep alive). Returns 0 or a libuv
 * error. Loop thread. */
int cs_tls_flush(SSL *ssl, uv_stream_t *s);
/* The same, and cb(ctx, status) once the write completed or was cancelled (status < 0;
 * cancelled writes complete before their handle's close callback). Nothing pending: 0
 * and no callback. */
typedef void (*cs_tls_written_cb)(void *ctx, int status);
int cs_tls_flush_cb(SSL *ssl, uv_stream_t *s, cs_tls_written_cb cb, void *ctx);
/* Best effort: send close_notify (uv_try_write), close `tcp` (freed in its close
 * callback) and SSL_free(ssl). Either may be NULL. For handlers that refuse or finish a
 * handed-off connection. */
void cs_cluster_conn_release(SSL *ssl, uv_tcp_t *tcp);

#endif
