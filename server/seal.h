/*
 * Seal and unseal (Shamir seal), cluster initialisation and the -dev bootstrap.
 *
 * Storage layout written at init (vault-api.md §3.8), all in one transaction:
 *   core/seal-config              plaintext JSON {type, secret_shares, secret_threshold}
 *   core/hsm/barrier-unseal-keys  root key, AES-GCM under the Shamir key-encryption key
 *                                 (KEK), framing term 1, AAD = the path
 *   core/keyring                  keyring JSON, AES-GCM under the root key, AAD = path
 *   core/cluster/local/info       (barrier) {"name","id"}
 *   core/shamir-kek               (barrier) the KEK, for seal encryption on the active node
 *   core/raft/tls                 (barrier) the cluster CA (server/ha.h)
 *   core/mounts, core/auth        (barrier) mount tables
 *   sys/token/...                 (barrier) the root token, through the token store
 * The KEK is split into the unseal shares; outside the barrier it is never stored. Unseal = combine the
 * shares → KEK → root key → keyring → barrier open.
 */
#ifndef CS_SERVER_SEAL_H
#define CS_SERVER_SEAL_H

#include <cjson/cJSON.h>

#include "server/core.h"

/* Read core/seal-config (plaintext) from storage: sets core->initialized and the share
 * counts. 0, or CS_EIO with core->errmsg. */
int cs_seal_load_config(struct cs_core *core);
/*
 * Write a new cluster's key material and tables into `txn` (which must belong to the
 * active node, with no keyring). On success *resp is sys/init's response body.
 * The caller commits `txn`; the node stays sealed.
 */
int cs_seal_init(struct cs_core *core, struct cs_txn *txn, const struct cs_init_params *p,
		 cJSON **resp, char *errmsg, size_t errlen);
/* After the barrier opened (or the node became active again): reload cluster info and
 * the mount tables from storage. */
int cs_seal_post_unseal(struct cs_core *core);
/* Open the barrier with a combined KEK (root key → keyring → post-unseal → raft/cluster
 * start). 0, or an error with errmsg (the node stays sealed). */
int cs_seal_unseal_with_kek(struct cs_core *core, const uint8_t *kek, char *errmsg,
			    size_t errlen);
/* Encrypt/decrypt with the seal (AES-256-GCM under the Shamir KEK, AAD `aad`), as
 * Vault's seal.Encrypt: join challenges, SHA256SUMS.sealed. Unsealed nodes only
 * (CS_ESEALED otherwise); CS_ECRYPTO when `ct` was sealed by another key. */
int cs_seal_encrypt(struct cs_core *core, const char *aad, const void *pt, size_t n,
		    struct cs_buf *out);
int cs_seal_decrypt(struct cs_core *core, const char *aad, const void *ct, size_t n,
		    struct cs_buf *out);
/* Seal-status JSON (also the unseal response). */
cJSON *cs_seal_status_json(struct cs_core *core);
/* Decode an unseal key given as hex or base64. Returns malloc'd bytes or NULL. */
uint8_t *cs_seal_decode_key(const char *s, size_t expect_len, size_t *len);
/* Continue the -dev bootstrap after the node became active. */
void cs_seal_dev_continue(struct cs_core *core);

#endif
