/*
 * What the key custody endpoints (rekey.c, generate_root.c) share: reading the current
 * seal config through the request's transaction, checking an attempt's nonce, and taking
 * one key share from a request. Loop thread only.
 */
#ifndef CS_SERVER_KEYS_COMMON_H
#define CS_SERVER_KEYS_COMMON_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "server/pgp.h"
#include "server/seal.h"

/* Whether an attempt started at `epoch` (core->active_since_ns then) is still valid:
 * the node is unsealed and still in the same term as the active node. */
bool cs_keys_attempt_current(const struct cs_core *core, int64_t epoch);
/* The seal config as the request's transaction sees it (pending rekeys included); with
 * an auto seal, the recovery config (the shares operators hold).
 * 0, or an error with the request's message set. */
int cs_keys_seal_config(struct cs_request *req, int *shares, int *threshold);
/* Whether the request's "nonce" (body or query) equals `nonce`, in constant time; an
 * empty or missing nonce never matches. */
bool cs_keys_nonce_ok(struct cs_request *req, const char *nonce);
/* Take the request's "key" into `set` after checking its "nonce" against `nonce`; the
 * key must be a share of a seal with `shares` shares (32 bytes for one share, else 33).
 * 0, or CS_EINVAL with the request's message set (nothing added). */
int cs_keys_add_share(struct cs_request *req, struct cs_share_set *set, const char *nonce,
		      int shares);
/* Wipe every string inside `j` (keys, keys_base64, tokens) and delete it. */
void cs_keys_free_secret_json(cJSON *j);

#endif

/*
 * PGP (Vault's pgp_keys): replace obj's "keys" (hex shares) and "keys_base64" with each
 * share's hex string encrypted to pgp_keys[i] (a JSON array of base64 public keys, as
 * many as shares): "keys" = hex of the OpenPGP message, "keys_base64" = its base64; add
 * "pgp_fingerprints". When backup is not NULL, *backup = {"keys": {fpr: [hex...]},
 * "keys_base64": {fpr: [b64...]}} (Vault's rekey backup). 0, or an error with errmsg
 * (obj unchanged).
 */
int cs_keys_pgp_shares(cJSON *obj, const cJSON *pgp_keys, cJSON **backup, char *errmsg,
		       size_t errlen);
/* Check a JSON array of base64 public keys (each parses); fingerprints into a new array
 * (*fprs, may be NULL). 0 or CS_EINVAL with errmsg. */
int cs_keys_pgp_check(const cJSON *pgp_keys, cJSON **fprs, char *errmsg, size_t errlen);
/* Encrypt `text` to one base64 public key; *out = base64 (padded) of the message, malloc'd;
 * fpr gets the key's fingerprint. 0 or an error with errmsg. */
int cs_keys_pgp_encrypt_text(const char *key, const char *text, char **out,
			     char fpr[CS_PGP_FPR_LEN + 1], char *errmsg, size_t errlen);
