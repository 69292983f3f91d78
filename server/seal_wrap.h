/*
 * Auto-unseal seals: something outside this cluster (another custos's or Vault's transit
 * key, a PKCS#11 HSM) wraps the seal's key-encryption key (KEK, server/seal.h), so a node
 * unseals itself without operators. Shamir stays the default and is unchanged.
 *
 * What an auto seal stores (plaintext, outside the barrier, like core/seal-config):
 *   core/seal-wrapped-kek   the envelope below: the KEK as the seal encrypted it
 *   core/recovery-config    {type:"shamir", secret_shares, secret_threshold}: recovery keys
 * and behind the barrier core/recovery-key (the key the recovery shares rebuild) next to
 * core/shamir-kek. seal-config then reads {type:"transit"|"pkcs11", 1 share, threshold 1,
 * stored_shares 1}.
 *
 * Envelope (JSON, version 1; everything but `type` depends on it):
 *   {"version":1,"type":"transit","key_id":"<mount>/<key_name>","ciphertext":"vault:v1:..."}
 *   {"version":1,"type":"pkcs11","key_id":"<key_label>","mechanism":"CKM_AES_GCM",
 *    "iv":"<base64, 12 bytes>","ciphertext":"<base64>"}
 *   (CKM_RSA_PKCS_OAEP: no iv; "oaep_hash":"sha256" (default) or "sha1")
 * Decoding is strict (types, lengths, known mechanism): the bytes come from storage that
 * a restored snapshot or another node wrote. tests/fuzz/fuzz_seal_wrap.c drives it and the
 * transit response decoder.
 *
 * A seal object runs its operations asynchronously and never blocks the loop thread:
 * transit posts through lib/curlm.c on the loop, PKCS#11 calls run on a pool thread.
 * Callbacks run on the loop, never from inside encrypt/decrypt.
 */
#ifndef CS_SERVER_SEAL_WRAP_H
#define CS_SERVER_SEAL_WRAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "lib/buf.h"
#include "server/seal_config.h"

#define CS_SEAL_ENVELOPE_VERSION 1
#define CS_SEAL_GCM_IV_LEN       12
#define CS_SEAL_MAX_CIPHERTEXT   8192

struct cs_seal_envelope {
	enum cs_seal_kind kind;
	char key_id[256];
	unsigned long mechanism; /* pkcs11 */
	bool oaep_sha1;          /* OAEP with SHA-1 (tokens without SHA-256 OAEP: SoftHSM2) */
	uint8_t iv[CS_SEAL_GCM_IV_LEN];
	size_t iv_len;
	char *ciphertext; /* transit: "vault:vN:..." */
	uint8_t *ct;      /* pkcs11: raw bytes */
	size_t ct_len;
};

/* Encode: transit with `ciphertext` (text); pkcs11 with ct/ct_len/iv. *out malloc'd JSON. */
int cs_seal_envelope_encode(const struct cs_seal_envelope *e, char **out);
/* Decode `len` untrusted bytes. 0, or CS_EINVAL (nothing to free). Otherwise release
 * with cs_seal_envelope_free. */
int cs_seal_envelope_decode(const void *data, size_t len, struct cs_seal_envelope *e);
void cs_seal_envelope_free(struct cs_seal_envelope *e);

/*
 * A transit response body (untrusted): with status 2xx, data.<field> as a string into
 * *out (malloc'd; "plaintext" is base64-decoded into bytes, *out_len set). Otherwise
 * CS_EIO with the server's first error ("errors":[...]) or the status in errmsg; 403 →
 * CS_EPERM. Never copies secrets into errmsg.
 */
int cs_transit_seal_response(long status, const char *body, size_t len, const char *field,
			     uint8_t **out, size_t *out_len, char *errmsg, size_t errlen);

/* Retry delay after `failures` consecutive failures (1, 2, ...): 500 ms doubling, at most
 * CS_SEAL_BACKOFF_MAX_MS. */
#define CS_SEAL_BACKOFF_MIN_MS 500
#define CS_SEAL_BACKOFF_MAX_MS 8000
uint64_t cs_seal_backoff_ms(int failures);

/* rc 0: out holds the result (envelope JSON for encrypt, plaintext for decrypt; the
 * callee may steal out->data; it is wiped and freed after the call). rc != 0: err says
 * why, in one line without secrets. */
typedef void (*cs_autoseal_cb)(void *ctx, int rc, struct cs_buf *out, const char *err);

struct cs_autoseal;
struct cs_autoseal_ops {
	/* Wrap `n` bytes; 0 or CS_EINTERNAL (cb will not run). */
	int (*encrypt)(struct cs_autoseal *s, const uint8_t *pt, size_t n, cs_autoseal_cb cb,
		       void *ctx);
	/* Unwrap a decoded envelope. */
	int (*decrypt)(struct cs_autoseal *s, const struct cs_seal_envelope *e, cs_autoseal_cb cb,
		       void *ctx);
	/* Cancel what is in flight (its callbacks never run) and release; done(ctx) runs
	 * once every handle closed. */
	void (*close)(struct cs_autoseal *s, void (*done)(void *ctx), void *ctx);
};

struct cs_autoseal {
	const struct cs_autoseal_ops *ops;
	struct cs_seal_params params; /* a copy, environment applied */
	uv_loop_t *loop;
	void *impl;
};

/* Build a seal from checked parameters (copied). Blocking set-up happens here, at start
 * (the PKCS#11 module loads, the token logs in: a wrong PIN is an error now). 0 or an
 * error with errmsg; *out malloc'd. */
int cs_autoseal_open(uv_loop_t *loop, const struct cs_seal_params *p, struct cs_autoseal **out,
		     char *errmsg, size_t errlen);
int cs_seal_transit_open(struct cs_autoseal *s, char *errmsg, size_t errlen);
int cs_seal_pkcs11_open(struct cs_autoseal *s, char *errmsg, size_t errlen);
/* Close and free (s is gone when done runs). */
void cs_autoseal_close(struct cs_autoseal *s, void (*done)(void *ctx), void *ctx);

#endif
