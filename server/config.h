/*
 * The server configuration file: Vault-style HCL or JSON.
 *
 *   storage "raft" {
 *     path = "/var/lib/custos"   node_id = "node-1"   retry_join_as_non_voter = false
 *     performance_multiplier = 1          # raft timing: election 300 ms x m
 *     retry_join { leader_api_addr = "https://10.0.0.1:8200"  leader_ca_cert_file = "..."
 *                  leader_client_cert_file = "..."  leader_client_key_file = "..."
 *                  leader_tls_servername = "..." }     # repeatable; inline leader_ca_cert,
 *                                                      # leader_client_cert/key also work
 *     unsafe_allow_plaintext_join = false  # true lets joins use http:// (tests only)
 *   }
 *   listener "tcp" {
 *     address = "127.0.0.1:8200"     cluster_address = "127.0.0.1:8201"
 *     tls_disable = false            tls_cert_file = "..."   tls_key_file = "..."
 *     tls_min_version = "tls12"      max_request_size = 33554432
 *     http_read_header_timeout = "10s"  http_read_timeout = "30s"  max_connections = 4096
 *     cluster_ca_cert_file = "..."   cluster_ca_key_file = "..."   # optional, both
 *   }
 *   api_addr = "https://127.0.0.1:8200"   cluster_addr = "https://127.0.0.1:8201"
 *   disable_mlock = true                  log_level = "info"
 *   allow_core_dumps = false              # true: keep core dumps on (debugging only)
 *   ui = false   cluster_name = "..."   default_lease_ttl = "768h"   max_lease_ttl = "768h"
 *   allow_audit_log_prefixing = false     # Vault 1.20: API may set audit "prefix", wide "mode"
 *   snapshot_spool_dir = "/var/lib/custos/snapshot-spool"   snapshot_spool_reserve_percent = 10
 *   seal "transit" { ... }  |  seal "pkcs11" { ... }   # auto-unseal (server/seal_config.h)
 *
 * Any unknown key, wrong type or bad value is an error reported as
 * "FILE:LINE: reason" and start-up stops. Booleans accept true/false and the strings
 * "true"/"false"/"1"/"0"; numbers accept JSON numbers or numeric strings.
 */
#ifndef CS_SERVER_CONFIG_H
#define CS_SERVER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/seal_config.h"

#define CS_MAX_LISTENERS            4
#define CS_DEFAULT_MAX_REQUEST_SIZE (32u * 1024 * 1024)
#define CS_DEFAULT_LEASE_TTL        (768 * 3600)

/* listener max_connections; snapshot_spool_reserve_percent */
#define CS_DEFAULT_MAX_CONNECTIONS       4096
#define CS_DEFAULT_SPOOL_RESERVE_PERCENT 10

struct cs_listener_config {
	char *address;         /* "host:port"; default "127.0.0.1:8200" */
	char *cluster_address; /* default: same host, port + 1 */
	bool tls_disable;      /* default false: then cert and key files are required */
	char *tls_cert_file;
	char *tls_key_file;
	/* Operator-supplied cluster CA (PEM files, both or neither): node certificates for the
	 * cluster port are minted from it instead of the CA generated at sys/init. */
	char *cluster_ca_cert_file;
	char *cluster_ca_key_file;
	int tls_min_version;     /* OpenSSL constant: TLS1_2_VERSION (default) or TLS1_3_VERSION */
	size_t max_request_size; /* bytes; default 32 MiB; 0 or negative in the file → default */
	/* OpenBao 2.5: sys/rekey* needs a sudo token (default true); false restores Vault's
	 * unauthenticated rekey (server/rekey.h). */
	bool disable_unauthed_rekey_endpoints;
	/* Vault's listener timeouts, in milliseconds here (durations in the file): 0 = the
	 * default (10 s for the header block, 30 s for the whole request), negative = none
	 * ("0" in the file, as in Vault). http_read_timeout bounds headers + body together. */
	int64_t http_read_header_timeout_ms;
	int64_t http_read_timeout_ms;
	/* Open client connections at most (0 = default 4096); more are refused with a 503. */
	int max_connections;
};

#define CS_MAX_RETRY_JOIN 16

/* One retry_join block: a candidate leader and the API TLS settings to reach it. PEM
 * material is loaded from the *_file keys at parse time. */
struct cs_retry_join {
	char *leader_api_addr; /* "http(s)://host:port" */
	char *leader_ca_cert;  /* PEM or NULL (then the system trust store) */
	char *leader_client_cert;
	char *leader_client_key;
	char *leader_tls_servername;
	int line; /* of the block, for errors found after it */
};

struct cs_config {
	/* storage "raft" */
	char *storage_path;
	char *node_id; /* default "node-1"... derived from hostname if absent */
	struct cs_retry_join retry_join[CS_MAX_RETRY_JOIN];
	int n_retry_join;
	bool retry_join_as_non_voter;
	/* UNSAFE, tests on a trusted loopback only: accept http:// leader_api_addr for joins
	 * (API and retry_join). Off by default: a join runs over https with the leader's
	 * certificate verified, since the challenge, answer and node certificate cross it. */
	bool unsafe_allow_plaintext_join;
	/* Raft timing scale (Vault's key): election timeout 300 ms × m, heartbeat 50 ms × m;
	 * 0 means 1. Raise it for slow or distant networks. */
	int raft_performance_multiplier;
	/* listeners */
	struct cs_listener_config listeners[CS_MAX_LISTENERS];
	int n_listeners;
	char *api_addr;     /* default: scheme://first listener address */
	char *cluster_addr; /* default: https://first listener cluster address */
	char *cluster_name; /* may be NULL: generated at init */
	bool disable_mlock;
	/* Default false: the server sets RLIMIT_CORE to 0 and PR_SET_DUMPABLE off at start,
	 * so no core file (or same-user ptrace) exposes key material. */
	bool allow_core_dumps;
	bool ui;
	int log_level;             /* enum cs_log_level; default info */
	int64_t default_lease_ttl; /* seconds; default 768h */
	int64_t max_lease_ttl;     /* seconds; default 768h */
	/* Vault 1.20's key (CVE-2025-6000): only when true may sys/audit/:path set the "prefix"
	 * option or a file "mode" wider than 0600. Default false. */
	bool allow_audit_log_prefixing;
	/* Lowest max_operations sys/rotate/config accepts; 0 means Vault's 1000000. Lower
	 * only to exercise automatic rotation in tests (1..1000000). */
	int64_t rotation_min_operations;
	/* Seconds between runs of the backends' periodic functions (auto-rotation, tidy,
	 * scheduled rotation) on the active node; default 60 (Vault's rollback period).
	 * Tests lower it. 1..86400. */
	int64_t periodic_interval;
	/* Snapshot uploads (sys/storage/raft/snapshot[-force]) are spooled here; default
	 * <storage path>/snapshot-spool, never inside the raft or LMDB directories. */
	char *snapshot_spool_dir;
	/* Refuse an upload that would leave less than this share of the spool volume free
	 * (default 10; 0 turns the check off). */
	int snapshot_spool_reserve_percent;
	/* FOR TESTS ONLY, never in production: the ports ACME challenge validation connects
	 * to (http-01, tls-alpn-01) instead of 80 and 443, so that an unprivileged client
	 * (certbot --standalone --http-01-port) can answer. 0: the standard ports. */
	uint16_t acme_test_http_port, acme_test_tls_port;

	/* seal "transit" | "pkcs11" | "shamir" stanzas (server/seal_config.h); none means
	 * Shamir. Two only for a migration, the old one `disabled`. */
	struct cs_seal_params seals[CS_MAX_SEAL_STANZAS];
	int n_seals;

	/* -dev mode (set by the command line, never by the file) */
	bool dev;
	char *dev_root_token_id;
};

/* Fill defaults (no listener; caller adds one or the file does). */
void cs_config_init(struct cs_config *c);
/*
 * Parse `len` bytes of config text; `filename` is used in messages only. On error returns
 * CS_EINVAL and writes "FILE:LINE: reason" into errmsg. On success, defaults are applied
 * for everything the file left out (api_addr, cluster_address, ...). Pointers in *c are
 * owned by c: release with cs_config_free.
 */
int cs_config_parse(struct cs_config *c, const char *text, size_t len, const char *filename,
		    char *errmsg, size_t errlen);
/* Read FILE (or every .hcl and .json file of a directory, in name order) and parse it. */
int cs_config_load(struct cs_config *c, const char *path, char *errmsg, size_t errlen);
/* Apply derived defaults (listener cluster_address, api_addr, cluster_addr). Called by
 * cs_config_parse; call it yourself after filling a config by hand (-dev). */
void cs_config_finish(struct cs_config *c);
void cs_config_free(struct cs_config *c);

#endif
