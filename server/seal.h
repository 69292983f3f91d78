/*
 * Seal and unseal (Shamir seal), cluster initialisation and the -dev bootstrap.
 *
 * Storage layout written at init (Vault's paths; docs/architecture.md, "Seal, barrier and keys"),
 * all in one transaction:
 *   core/seal-config              plaintext JSON {type, secret_shares, secret_threshold}
 *   core/hsm/barrier-unseal-keys  root key, AES-GCM under the Shamir key-encryption key
 *                                 (KEK), framing term 1, AAD = the path
 *   core/keyring                  keyring JSON, AES-GCM under the root key, AAD = path
 *   core/cluster/local/info       (barrier) {"name","id"}
 *   core/shamir-kek               (barrier) the KEK, for seal encryption on the active node
 *   core/raft/tls                 (barrier) the cluster CA (server/ha.h)
 *   core/mounts, core/auth        (barrier) mount tables
 *   sys/token/...                 (barrier) the root token, through the token store
 * The KEK is split into the unseal shares; outside the barrier it is never stored. Unseal = combine
 * the shares → KEK → root key → keyring → barrier open.
 */
#ifndef CS_SERVER_SEAL_H
#define CS_SERVER_SEAL_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "server/core.h"

/* Whether a Shamir configuration is usable: 1 <= threshold <= shares <= CS_MAX_SHARES
 * (the unseal progress array holds CS_MAX_SHARES shares). */
bool cs_seal_config_valid(int shares, int threshold);
/* Decode {"secret_shares","secret_threshold"} from a seal config object (stored, or a
 * join challenge's seal_config). 0 with both set, or CS_EINVAL (missing, not an integer,
 * or outside cs_seal_config_valid): the outputs are then untouched. */
int cs_seal_config_decode(const cJSON *sc, int *shares, int *threshold);
/* Read core/seal-config (plaintext) from storage: sets core->initialized and the share
 * counts. 0, or CS_EIO with core->errmsg (also for a config cs_seal_config_decode
 * refuses: the node does not start). */
int cs_seal_load_config(struct cs_core *core);
/* Re-read the share counts from storage (after a rekey applied through raft) unless
 * storage has none (a joining node) or unseal shares are pending. Cheap (one LMDB read);
 * seal-status and unseal call it, and so should anything that hands the config out
 * (the join challenge). */
void cs_seal_refresh_config(struct cs_core *core);
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
int cs_seal_unseal_with_kek(struct cs_core *core, const uint8_t *kek, char *errmsg, size_t errlen);
/* Encrypt/decrypt with the seal (AES-256-GCM under the Shamir KEK, AAD `aad`), as
 * Vault's seal.Encrypt: join challenges, SHA256SUMS.sealed. Unsealed nodes only
 * (CS_ESEALED otherwise); CS_ECRYPTO when `ct` was sealed by another key. */
int cs_seal_encrypt(struct cs_core *core, const char *aad, const void *pt, size_t n,
		    struct cs_buf *out);
int cs_seal_decrypt(struct cs_core *core, const char *aad, const void *ct, size_t n,
		    struct cs_buf *out);
/*
 * Split `kek` (CS_KEY_LEN bytes) into n shares, threshold t (n == 1: the KEK itself, as
 * Vault). On success *mem is cs_secmem memory of n * *share_len bytes, share i at
 * mem + i * share_len, owned by the caller (cs_secmem_free). CS_EINVAL for a bad n/t.
 */
int cs_seal_make_shares(const uint8_t *kek, int n, int t, uint8_t **mem, size_t *share_len);
/* Add "keys" (hex) and "keys_base64" arrays of the n shares in `mem` to `obj`. */
void cs_seal_add_shares_json(cJSON *obj, const uint8_t *mem, int n, size_t share_len);

/* Shares collected by an operation (rekey, verify, generate-root); secmem copies. */
struct cs_share_set {
	uint8_t *keys[CS_MAX_SHARES];
	size_t len[CS_MAX_SHARES];
	int n;
};
/* Copy one share in. CS_EEXIST when it was given already (constant-time compare),
 * CS_EINVAL when the set is full: never writes past the array. */
int cs_share_set_add(struct cs_share_set *s, const uint8_t *key, size_t len);
/* Wipe and drop every share. */
void cs_share_set_clear(struct cs_share_set *s);
/* Combine the set into `kek` (CS_KEY_LEN bytes): one share of CS_KEY_LEN bytes is the
 * key; otherwise >= 2 shares of CS_KEY_LEN + 1 bytes. 0 or CS_EINVAL. */
int cs_share_set_combine(const struct cs_share_set *s, uint8_t *kek);
/* Combine and check the result against this cluster's KEK (the barrier copy): 0 with
 * `kek` set, CS_EINVAL when the shares do not rebuild it (kek wiped), CS_ESEALED. */
int cs_seal_check_shares(struct cs_core *core, const struct cs_share_set *s, uint8_t *kek);
/* Put the rekeyed seal into `txn` (active node, unsealed): seal config {n, t}, the root
 * key wrapped under `new_kek`, and the barrier copy of `new_kek`. Once the write-set
 * applies, on every node, only shares of `new_kek` unseal. */
int cs_seal_rekey_write(struct cs_core *core, struct cs_txn *txn, const uint8_t *new_kek, int n,
			int t);

/* Auto seals (server/seal_wrap.h for the envelope): where they keep their state. */
#define CS_WRAPPED_KEK_PATH     "core/seal-wrapped-kek"
#define CS_RECOVERY_CONFIG_PATH "core/recovery-config"
#define CS_RECOVERY_KEY_PATH    "core/recovery-key"
/* Put an auto seal's config (type `kind`, 1 share) and its envelope into `txn`. */
int cs_seal_write_auto(struct cs_txn *txn, int kind, const char *wrapped);
/* Put a new recovery key and its config {n, t} (auto seals; active node, unsealed). */
int cs_seal_recovery_write(struct cs_core *core, struct cs_txn *txn, const uint8_t *key, int n,
			   int t);

/* 0 when `key` is this cluster's recovery key (barrier copy), CS_EINVAL when not. */
int cs_seal_check_recovery_key(struct cs_core *core, const uint8_t *key);
/* Seal migration (server/seal_auto.h), in `txn` on the active unsealed node: to an auto
 * seal of kind `to_kind` (envelope `wrapped`), keeping the KEK, with `recovery_key` split
 * {n, t} as the recovery keys; or to Shamir (to_kind 0) with `recovery_key` as the new KEK,
 * split {n, t}, and every trace of the auto seal deleted. */
int cs_seal_migrate_write(struct cs_core *core, struct cs_txn *txn, int to_kind,
			  const char *wrapped, const uint8_t *recovery_key, int n, int t);

/* Seal-status JSON (also the unseal response). */
cJSON *cs_seal_status_json(struct cs_core *core);
/* Decode an unseal key given as hex or base64. Returns malloc'd bytes or NULL. */
uint8_t *cs_seal_decode_key(const char *s, size_t expect_len, size_t *len);
/* Continue the -dev bootstrap after the node became active. */
void cs_seal_dev_continue(struct cs_core *core);

#endif
