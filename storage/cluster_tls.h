/*
 * Cluster TLS material: the self-generated cluster CA, node certificates, PEM codecs and
 * the SSL_CTXs of the cluster port (docs/architecture.md, "The cluster" and C8).
 *
 * Pure OpenSSL; no I/O, no libuv, thread-safe. Every function returns 0 or a CS_E* code
 * (CS_EINVAL for bad input, CS_ECRYPTO for an OpenSSL failure) and writes detail to
 * `errmsg` when one is given (never key material).
 *
 * Certificates:
 *   CA    EC P-256, self-signed, 10 years, CN "custos-cluster-ca-<cluster id>",
 *         basicConstraints critical CA:TRUE, keyUsage keyCertSign+cRLSign.
 *   node  EC P-256, 1 year, CN and DNS SAN "node-<raft id>" (decimal), plus the IP SANs
 *         given, EKU serverAuth+clientAuth, signed by the CA. A peer proves its raft id
 *         by holding a CA-signed certificate whose SAN is "node-<id>".
 *
 * Caveats:
 * - Private keys in PEM are zeroised by cs_cluster_tls_pem_free; EVP_PKEY objects are
 *   released with EVP_PKEY_free (OpenSSL clears key material it frees).
 * - The SSL_CTXs trust only the given CA (no system store) and keep no sessions.
 */
#ifndef CS_STORAGE_CLUSTER_TLS_H
#define CS_STORAGE_CLUSTER_TLS_H

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

/* ALPN protocol names of the cluster port. */
#define CS_ALPN_RAFT    "custos-raft"
#define CS_ALPN_FORWARD "custos-forward"

#define CS_CLUSTER_CA_DAYS   3650
#define CS_CLUSTER_CERT_DAYS 365

/* A key and its certificate. Either pointer may be NULL; owned by the struct. */
struct cs_cluster_cred {
	EVP_PKEY *key;
	X509 *cert;
};

void cs_cluster_cred_free(struct cs_cluster_cred *c);

/* New CA for `cluster_id` (short printable string, e.g. the cluster UUID). On success
 * `out` owns a fresh key and certificate; on failure it is left empty. */
int cs_cluster_tls_gen_ca(const char *cluster_id, struct cs_cluster_cred *out, char *errmsg,
			  size_t errlen);

/* New node certificate for raft id `id` (non-zero), signed by `ca`. `ips` holds `n_ips`
 * IPv4/IPv6 literals added as IP SANs (may be NULL when n_ips is 0); an unparsable one
 * is CS_EINVAL. `ca` is only read. */
int cs_cluster_tls_gen_node(const struct cs_cluster_cred *ca, uint64_t id, const char *const *ips,
			    size_t n_ips, struct cs_cluster_cred *out, char *errmsg, size_t errlen);

/* A fresh EC P-256 key (the kind every cluster credential uses); caller frees. */
int cs_cluster_tls_gen_key(EVP_PKEY **out);

/* A node certificate for raft id `id` over someone else's public key `pub` (only read),
 * signed by `ca` (which must hold its key): the active node mints one for a joining node
 * that proved who it is, so the CA key never leaves the cluster. Same names and
 * extensions as cs_cluster_tls_gen_node. *out is the caller's (X509_free). */
int cs_cluster_tls_sign_node(const struct cs_cluster_cred *ca, uint64_t id, const char *const *ips,
			     size_t n_ips, EVP_PKEY *pub, X509 **out, char *errmsg, size_t errlen);

/* "node-<id>" into out (>= 32 bytes). */
void cs_cluster_tls_node_name(uint64_t id, char *out, size_t outlen);

/* Verify `cert` against `ca` alone (chain, validity, purpose sslServer and sslClient).
 * 0 or CS_EPERM with the X509 reason in errmsg. */
int cs_cluster_tls_verify(X509 *ca, X509 *cert, char *errmsg, size_t errlen);

/* PEM encoding into a malloc'd NUL-terminated string (*len excludes the NUL). Release
 * with cs_cluster_tls_pem_free, which zeroises (keys are PKCS#8, unencrypted). */
int cs_cluster_tls_cert_to_pem(X509 *cert, char **pem, size_t *len);
int cs_cluster_tls_key_to_pem(EVP_PKEY *key, char **pem, size_t *len);
void cs_cluster_tls_pem_free(char *pem, size_t len);
/* Decode one PEM object of `len` bytes; the caller owns the result (X509_free /
 * EVP_PKEY_free). CS_EINVAL if it does not parse. The input is not modified. */
int cs_cluster_tls_cert_from_pem(const char *pem, size_t len, X509 **out);
int cs_cluster_tls_key_from_pem(const char *pem, size_t len, EVP_PKEY **out);

/* Public keys (SubjectPublicKeyInfo PEM). from_pem accepts only EC keys (CS_EINVAL
 * otherwise). pubkey_sha256: SHA-256 of the DER SubjectPublicKeyInfo, the key's
 * fingerprint bound into a join challenge. */
int cs_cluster_tls_pubkey_to_pem(EVP_PKEY *key, char **pem, size_t *len);
int cs_cluster_tls_pubkey_from_pem(const char *pem, size_t len, EVP_PKEY **out);
int cs_cluster_tls_pubkey_sha256(EVP_PKEY *key, uint8_t out[32]);

/*
 * SSL_CTXs of the cluster port. Both: TLS >= 1.2, the peer must present a certificate
 * that chains to `ca` (the only trust anchor), no session tickets or cache, no
 * renegotiation, `cert`/`key` as our identity (they must match: CS_EINVAL otherwise).
 * Server: ALPN select callback accepting only CS_ALPN_RAFT and CS_ALPN_FORWARD; any other
 * offer gets a fatal no_application_protocol alert (a client offering no ALPN at all is
 * NOT caught here: check SSL_get0_alpn_selected after the handshake). Client: no ALPN
 * set; set it per connection (SSL_set_alpn_protos) and the expected server name with
 * SSL_set1_host. Arguments are only read (the CTX takes its own references). The
 * returned CTX is the caller's (SSL_CTX_free); NULL on failure with errmsg.
 */
SSL_CTX *cs_cluster_tls_server_ctx(X509 *ca, X509 *cert, EVP_PKEY *key, char *errmsg,
				   size_t errlen);
SSL_CTX *cs_cluster_tls_client_ctx(X509 *ca, X509 *cert, EVP_PKEY *key, char *errmsg,
				   size_t errlen);

/* A client SSL for one cluster-port connection to node `peer_id`: memory BIOs, connect
 * state, ALPN `alpn`, and the peer must present DNS SAN node-<peer_id> (never the CN).
 * NULL on failure (out of memory, or OpenSSL refused the settings). */
SSL *cs_cluster_tls_client_ssl(SSL_CTX *ctx, uint64_t peer_id, const char *alpn);

/* Wire-format ALPN list holding one protocol name, for SSL_set_alpn_protos. Returns its
 * length; out must hold strlen(proto)+1 bytes (<= 256). */
size_t cs_cluster_tls_alpn(const char *proto, unsigned char *out, size_t outlen);

#endif
