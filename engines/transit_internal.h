/*
 * Inside the transit engine (engines/transit.h), split by job: transit.c keeps the key
 * policy storage and its JSON helpers, the path table and registration; transit_keys.c the
 * keys/ and export/ handlers; transit_ops.c the operations (encrypt ... verify, random,
 * hash). Not for other modules.
 */
#ifndef CS_ENGINES_TRANSIT_INTERNAL_H
#define CS_ENGINES_TRANSIT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engines/transit_crypto.h"
#include "lib/json.h"
#include "server/backend.h"

/* The largest key material a version holds (an hmac key of 512 bytes) and the largest
 * derived output (enc key + HMAC key). */
#define TR_MAX_KEY 512
/* Vault's random endpoint bound (helper/random APIMaxBytes). */
#define TR_RANDOM_MAX (128 * 1024)
/* Room for an error message of Vault's. */
#define TR_ERRLEN 256

/* ---- key policies in the mount's view ("policy/<name>", one JSON object each) */

/* Vault's key-name rule. */
bool tr_name_ok(const char *n);
/* The key's policy: 0, CS_ENOTFOUND (also for a name Vault would not route) or an error. */
int tr_pol_load(struct cs_request *req, const char *name, cJSON **pol);
int tr_pol_save(struct cs_request *req, const char *name, const cJSON *pol);
/* A new policy (not stored) with Vault's defaults and version 1 generated. */
cJSON *tr_pol_new(enum cs_transit_type t, bool derived, bool convergent, int64_t key_size);
enum cs_transit_type tr_pol_type(const cJSON *pol);
/* Add version latest+1 with fresh key material (Vault's RotateInMemory). */
void tr_pol_add_version(cJSON *pol);
/* One version's material ("key" or "hmac_key") into out (TR_MAX_KEY bytes). */
int tr_entry_bytes(const cJSON *pol, int64_t ver, const char *field, uint8_t *out, size_t *outlen,
		   char *err);
/* Vault's GetKey: the version's key, or for a derived key HKDF(key, context)[:n]. */
int tr_pol_key(const cJSON *pol, int64_t ver, const uint8_t *ctx, size_t ctxlen, size_t n,
	       uint8_t *out, size_t *outlen, char *err);
/* The keys/:name response. */
cJSON *tr_pol_format(const char *name, const cJSON *pol);

/* ---- small helpers */
int64_t tr_jint(const cJSON *o, const char *name);
bool tr_jbool(const cJSON *o, const char *name);
const char *tr_jstr(const cJSON *o, const char *name);
void tr_jset_int(cJSON *o, const char *name, int64_t v);
void tr_jset_bool(cJSON *o, const char *name, bool v);
/* Go-StdEncoding base64 (padding required); NULL and Go's message (prefixed by `what`) in
 * err on bad input. */
uint8_t *tr_b64_dec(const char *s, size_t *n, char *err, const char *what);
void tr_wipe_free(uint8_t *p, size_t n);
/* Decimal with nothing around it (Go's strconv.Atoi): 0 or CS_EINVAL. */
int tr_atoi_strict(const char *s, int64_t *v);

/* ---- handlers (transit_keys.c) */
int tr_keys_list(struct cs_request *req);
int tr_keys_read(struct cs_request *req);
int tr_keys_write(struct cs_request *req);
int tr_keys_delete(struct cs_request *req);
int tr_keys_config(struct cs_request *req);
int tr_keys_rotate(struct cs_request *req);
int tr_keys_trim(struct cs_request *req);
int tr_export_op(struct cs_request *req);

/* ---- handlers (transit_ops.c) */
int tr_key_exists(struct cs_request *req, bool *exists);
int tr_encrypt_op(struct cs_request *req);
int tr_decrypt_op(struct cs_request *req);
int tr_rewrap_op(struct cs_request *req);
int tr_datakey_op(struct cs_request *req);
int tr_random_op(struct cs_request *req);
int tr_hash_op(struct cs_request *req);
int tr_hmac_op(struct cs_request *req);
int tr_verify_op(struct cs_request *req);

#endif
