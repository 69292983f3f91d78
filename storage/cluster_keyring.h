/*
 * The cluster TLS keyring: the cluster CA (certificate and key) stored behind the barrier
 * at core/raft/tls and replicated with everything else, in the shape Vault gives it
 * ({"keys":[{"id","key_type","cluster_cert","cluster_key_params"}],"active_key_id","term"}).
 * It never crosses a join answer: a joining node gets a certificate minted for its own
 * key instead (storage/cluster_tls.h, cs_cluster_tls_sign_node).
 *
 * Loop thread (it reads and writes through a transaction). Buffers that held the CA key
 * are wiped before they are freed.
 */
#ifndef CS_STORAGE_CLUSTER_KEYRING_H
#define CS_STORAGE_CLUSTER_KEYRING_H

#include <cjson/cJSON.h>

#include "storage/cluster_tls.h"
#include "storage/txn.h"

#define CS_CLUSTER_KEYRING_PATH "core/raft/tls"

/* Write `ca` (key and certificate, only read) into txn at CS_CLUSTER_KEYRING_PATH.
 * 0, CS_EINTERNAL when it cannot be encoded, or cs_txn_put's code. */
int cs_cluster_keyring_put(struct cs_txn *txn, const struct cs_cluster_cred *ca);

/* Read the stored CA through txn. 0 with *out owning a fresh key and certificate (any
 * earlier content of *out is not freed); cs_txn_get's code (CS_ENOTFOUND, CS_ESEALED...);
 * CS_EIO when the stored value is not JSON; CS_EINVAL when it does not hold a PEM
 * certificate and key. On failure *out is left untouched. */
int cs_cluster_keyring_get(struct cs_txn *txn, struct cs_cluster_cred *out);

/* Decode the stored JSON (only read). 0 with *out owning a fresh key and certificate, or
 * CS_EINVAL (not the keyring's shape, or no PEM certificate and key) with *out untouched. */
int cs_cluster_keyring_decode(const cJSON *j, struct cs_cluster_cred *out);

#endif
