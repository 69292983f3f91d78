/*
 * c-raft's network transport over the cluster port's mutual TLS (docs/architecture.md, C8).
 *
 * raft_uv only knows uv streams, so every authenticated connection is bridged: raft gets
 * one end of an AF_UNIX socketpair (a raft_malloc'ed uv_pipe_t it owns and frees), and
 * this module pumps plaintext between the other end and an SSL object over memory BIOs
 * on the peer's uv_tcp_t.
 *
 *   outbound (raft's connect): TCP connect → TLS as client, ALPN "custos-raft", server
 *     name "node-<peer id>" checked against its certificate → raft's handshake (protocol
 *     1, our id, our address) sent inside TLS → one ack byte 0x01 → bridge → connect cb.
 *   inbound: the cluster listener (raft/cluster.h) does TLS + ALPN and hands the
 *     connection to cs_transport_accept → raft's handshake read (protocol 1, address
 *     length a multiple of 8 and <= 256, NUL-terminated) → the peer certificate must
 *     carry "node-<claimed id>" (and, with require_ip_san, the address's IP) and the
 *     claim callback must accept (id, address) → ack
 *     byte → bridge → raft's accept callback.
 *
 * Wiring, in order (loop thread):
 *   server = cs_cluster_tls_server_ctx(ca, cert, key); client = ..._client_ctx(...)
 *   cs_cluster_listen(&cl, loop, cluster_address, server, ...)
 *   cs_transport_init(&t, loop, &(struct cs_transport_config){client, check, ctx, 0})
 *   cs_cluster_set_handler(cl, CS_ALPN_RAFT, cs_transport_accept, &t)
 *   cs_raft_node_init_transport(&node, loop, st, data_dir, id, cluster_address, &t, ...)
 *   ... cs_raft_node_close(&node, cb); in cb: cs_cluster_set_handler(cl, CS_ALPN_RAFT,
 *   NULL, NULL); cs_transport_free(&t); (the listener may stay for forwarding)
 *
 * Caveats:
 * - Loop thread only; the same loop as raft_uv.
 * - Peer addresses must be IP literals ("ip:port", "[ipv6]:port"): a hostname makes
 *   connect fail synchronously (raft retries after its connect-retry delay).
 * - A refused or failed connection is logged at debug level and counted; raft retries.
 * - SIGPIPE must be ignored by the process (the bridge writes with write(2)).
 * - c-raft 0.15 trusts the lengths in a peer's messages: every inbound byte is checked
 *   against its framing (raft/wire.h) and a connection carrying a malformed message is
 *   closed before raft reads it; data on an outbound connection after the ack closes it.
 */
#ifndef CS_RAFT_TRANSPORT_H
#define CS_RAFT_TRANSPORT_H

#include <openssl/ssl.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define CS_TRANSPORT_HANDSHAKE_MS 5000
/* Back-pressure: stop reading a side when the other's write queue exceeds HIGH bytes,
 * resume below LOW. */
#define CS_TRANSPORT_QUEUE_HIGH (4u << 20)
#define CS_TRANSPORT_QUEUE_LOW  (1u << 20)

/* Does `id` own `address`? Called for every inbound raft handshake whose certificate
 * already proved `id`; return false to refuse (e.g. the address differs from the one the
 * configuration or the certificate gives for that id). Loop thread. */
typedef bool (*cs_transport_claim_fn)(void *ctx, raft_id id, const char *address);

struct cs_transport_config {
	SSL_CTX *client_ctx;               /* outbound connections; up-ref'd by init (required) */
	cs_transport_claim_fn check_claim; /* NULL: accept any address */
	void *claim_ctx;
	unsigned handshake_timeout_ms; /* 0: CS_TRANSPORT_HANDSHAKE_MS */
	/* Inbound: the host part of the claimed address must be an IP SAN of the peer's
	 * certificate (cs_cluster_tls_gen_node puts the node's IPs there). Leave false for
	 * operator-supplied certificates without IP SANs. */
	bool require_ip_san;
	/* Inbound: the largest payload (entries of one AppendEntries, or a snapshot) a
	 * peer's message may announce; 0: CS_WIRE_DEFAULT_PAYLOAD (the store's map size).
	 * Every inbound message is checked against c-raft's framing (raft/wire.h) first. */
	uint64_t max_message_bytes;
	/* Outbound: bind to the host of this address (the node's cluster listener) before
	 * connecting (cs_cluster_source_address); NULL or a wildcard host: no bind. */
	const char *source_address;
};

struct cs_transport_stats {
	uint64_t connects_ok, connects_failed; /* outbound, by connect callback status */
	uint64_t accepts_ok, accepts_refused;  /* inbound raft handshakes */
	uint64_t bytes_out, bytes_in;          /* plaintext pumped from/to raft */
	uint64_t pauses;                       /* reads stopped by back-pressure */
	uint64_t frames_refused;               /* connections closed for malformed raft messages */
};

/*
 * Fill `t` (zeroed first) with this transport's methods; state goes to t->impl (raft_uv
 * overwrites t->data). Then pass `t` to raft_uv_init (or cs_raft_node_init_transport).
 * Returns 0, CS_EINVAL (no client ctx, unparsable source_address) or CS_ENOMEM. Nothing needs the
 * loop yet.
 */
int cs_transport_init(struct raft_uv_transport *t, uv_loop_t *loop,
		      const struct cs_transport_config *cfg);
/*
 * Release `t`'s memory. Only after raft's close finished with it (the raft_close
 * callback ran — t->close called back), or if raft never started listening on it. Remove
 * the listener's raft handler (cs_cluster_set_handler(cl, CS_ALPN_RAFT, NULL, NULL))
 * before: it points at `t`.
 */
void cs_transport_free(struct raft_uv_transport *t);

/*
 * The cluster listener's CS_ALPN_RAFT handler (a cs_cluster_handler_fn with ctx = the
 * struct raft_uv_transport *). Takes ownership of `ssl` and `tcp` as described in
 * raft/cluster.h. Before raft listens or after close started, the connection is
 * released at once. Never calls back synchronously into the listener.
 */
void cs_transport_accept(void *t, SSL *ssl, uv_tcp_t *tcp);

void cs_transport_get_stats(const struct raft_uv_transport *t, struct cs_transport_stats *out);

#endif
