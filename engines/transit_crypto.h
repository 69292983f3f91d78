/*
 * The transit engine's cryptography (engines/transit.c), kept apart from the path table so
 * that it can be tested alone: key types, HKDF key derivation, the AEAD seal/open of
 * Vault's symmetric keys, the "vault:vN:<base64>" ciphertext and HMAC format, HMACs and
 * digests. Every primitive is OpenSSL's EVP; nothing here logs or keeps state.
 *
 * Formats are Vault's (OpenBao sdk/helper/keysutil), so ciphertexts look the same:
 *   raw ciphertext = nonce (12 bytes) || AEAD ciphertext || tag (16 bytes)
 *   string         = "vault:v" <version> ":" base64(raw)
 * A derived key is HKDF-SHA256(ikm = the version's key, salt = none, info = context).
 * Convergent encryption (version 3 of Vault's scheme) derives enc key || 32-byte HMAC key
 * in one HKDF output and takes the nonce from HMAC-SHA256(hmac key, plaintext)[:12].
 */
#ifndef CS_ENGINES_TRANSIT_CRYPTO_H
#define CS_ENGINES_TRANSIT_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

enum cs_transit_type {
	CS_TRANSIT_AES128_GCM96,
	CS_TRANSIT_AES256_GCM96,
	CS_TRANSIT_CHACHA20_POLY1305,
	CS_TRANSIT_HMAC,
	/* Asymmetric (engines/transit_asym.c): sign/verify. */
	CS_TRANSIT_ED25519,
	CS_TRANSIT_ECDSA_P256,
	CS_TRANSIT_ECDSA_P384,
	CS_TRANSIT_ECDSA_P521,
	CS_TRANSIT_RSA2048,
	CS_TRANSIT_RSA3072,
	CS_TRANSIT_RSA4096,
};

#define CS_TRANSIT_NONCE_LEN     12
#define CS_TRANSIT_TAG_LEN       16
#define CS_TRANSIT_HMAC_MIN_SIZE 32  /* bytes, Vault's HmacMinKeySize */
#define CS_TRANSIT_HMAC_MAX_SIZE 512 /* bytes, Vault's HmacMaxKeySize */
#define CS_TRANSIT_MAX_VERSION   1000000000

/* "aes256-gcm96" → type; -1 when unknown. */
int cs_transit_type_parse(const char *name);
const char *cs_transit_type_name(enum cs_transit_type t);
/* Length of a freshly generated key of type t (hmac: its key_size). */
size_t cs_transit_key_len(enum cs_transit_type t);
bool cs_transit_is_aead(enum cs_transit_type t);

/* HKDF-SHA256 without salt: out = HKDF(ikm, info)[:outlen]. 0 or CS_EINTERNAL. */
int cs_transit_hkdf(const uint8_t *ikm, size_t ikmlen, const uint8_t *info, size_t infolen,
		    uint8_t *out, size_t outlen);

/* AEAD seal with `key` (16 or 32 bytes as the type wants): appends nonce || ct || tag to
 * out. nonce NULL: a random one. 0 or CS_EINTERNAL. */
int cs_transit_seal(enum cs_transit_type t, const uint8_t *key, const uint8_t *nonce,
		    const uint8_t *aad, size_t aadlen, const uint8_t *pt, size_t ptlen,
		    struct cs_buf *out);
/* AEAD open of nonce || ct || tag: appends the plaintext to out. On failure returns
 * CS_EINVAL and sets *err to Vault's message ("cipher: message authentication failed"). */
int cs_transit_open(enum cs_transit_type t, const uint8_t *key, const uint8_t *in, size_t inlen,
		    const uint8_t *aad, size_t aadlen, struct cs_buf *out, const char **err);

/* "vault:v<ver>:<base64>" (malloc'd). */
char *cs_transit_format(uint32_t ver, const uint8_t *raw, size_t len);
/* Parse "vault:v<ver>:<base64>": the version (0 is read as 1, as Vault) and the decoded
 * bytes (malloc'd, caller frees). On failure CS_EINVAL and *err = Vault's message, with
 * `what` naming the thing in it ("ciphertext" → "invalid ciphertext: no prefix"). */
int cs_transit_parse(const char *s, uint32_t *ver, uint8_t **raw, size_t *len, const char **err);

/* Digest/HMAC algorithm names of Vault ("sha2-256", "sha3-512", ...): the OpenSSL name or
 * NULL. hash endpoints take sha2/sha3; HMAC also takes sha1 as Vault does. */
const char *cs_transit_md_name(const char *alg, bool allow_sha1);
/* Digest `in` with OpenSSL digest `md`; out >= 64 bytes. 0 or CS_EINTERNAL. */
int cs_transit_digest(const char *md, const uint8_t *in, size_t len, uint8_t *out, size_t *outlen);
/* HMAC of `in` under key with OpenSSL digest `md`; out >= 64 bytes. 0 or CS_EINTERNAL. */
int cs_transit_hmac(const char *md, const uint8_t *key, size_t keylen, const uint8_t *in,
		    size_t len, uint8_t *out, size_t *outlen);

/* ---- asymmetric keys (engines/transit_asym.c) ----
 * A version's private key is kept as PKCS#8 DER (base64 in the policy); every function
 * parses it afresh, so no OpenSSL key object outlives a call. */
bool cs_transit_is_asym(enum cs_transit_type t);
bool cs_transit_is_rsa(enum cs_transit_type t);
bool cs_transit_is_ecdsa(enum cs_transit_type t);
/* A fresh key (slow for RSA: call it off the loop). *der malloc'd; the caller wipes and
 * frees it. 0 or CS_EINTERNAL. */
int cs_transit_asym_generate(enum cs_transit_type t, uint8_t **der, size_t *len);
/* The public key as Vault shows it (keys/:name): PEM "PUBLIC KEY" for ECDSA and RSA, base64
 * of the 32 raw bytes for ed25519. malloc'd; NULL on a corrupt key. */
char *cs_transit_asym_public(enum cs_transit_type t, const uint8_t *der, size_t len);
/* export/signing-key (priv) or export/public-key in Vault's `format` ("", "der", "pem"):
 * *out malloc'd. On a bad format CS_EINVAL and *err = Vault's message. */
int cs_transit_asym_export(enum cs_transit_type t, const uint8_t *der, size_t len, bool priv,
			   const char *format, char **out, const char **err);

/* Go's rsa.PSSSaltLengthAuto / EqualsHash: any other salt length is a byte count. */
#define CS_TRANSIT_SALT_AUTO 0
#define CS_TRANSIT_SALT_HASH (-1)
struct cs_transit_sigopts {
	const char *md; /* OpenSSL digest of the input (RSA); NULL: hash_algorithm "none" */
	bool pkcs1v15;  /* RSA: PKCS#1 v1.5 instead of PSS */
	int salt;       /* PSS salt length (CS_TRANSIT_SALT_* or bytes) */
	bool jws;       /* ECDSA: r || s fixed width instead of ASN.1 DER */
};
/* Sign `in`: the message for ed25519, its digest (or raw data for md NULL) otherwise. Appends
 * the raw signature to sig. A user error (salt length) is CS_EINVAL with *err set. */
int cs_transit_asym_sign(enum cs_transit_type t, const uint8_t *der, size_t len,
			 const struct cs_transit_sigopts *o, const uint8_t *in, size_t inlen,
			 struct cs_buf *sig, const char **err);
/* Verify a raw signature over `in` (as for sign): 0 and *valid, or CS_EINVAL with Vault's
 * message for a malformed one ("supplied signature is invalid", bad salt length). */
int cs_transit_asym_verify(enum cs_transit_type t, const uint8_t *der, size_t len,
			   const struct cs_transit_sigopts *o, const uint8_t *in, size_t inlen,
			   const uint8_t *sig, size_t siglen, bool *valid, const char **err);
/* A derived ed25519 key (Vault's DeriveKey): seed = HKDF-SHA256(ikm = seed || public key,
 * info = context)[:32]. *out: its PKCS#8 DER, malloc'd (wipe and free). */
int cs_transit_ed25519_derive(const uint8_t *der, size_t len, const uint8_t *ctx, size_t ctxlen,
			      uint8_t **out, size_t *outlen);

/* An ed25519 key from its 32-byte seed (Go's ed25519.NewKeyFromSeed; a Vault backup holds
 * seed || public key): *der its PKCS#8 DER, malloc'd (wipe and free). 0 or CS_EINTERNAL. */
int cs_transit_ed25519_from_seed(const uint8_t seed[32], uint8_t **der, size_t *len);

/* RSA-OAEP (SHA-256, MGF1-SHA-256, no label) as Vault's RSA keys encrypt: appends to out.
 * 0 or CS_EINTERNAL (a plaintext too long for the key, a ciphertext that does not open). */
int cs_transit_rsa_encrypt(const uint8_t *der, size_t len, const uint8_t *pt, size_t ptlen,
			   struct cs_buf *out);
int cs_transit_rsa_decrypt(const uint8_t *der, size_t len, const uint8_t *ct, size_t ctlen,
			   struct cs_buf *out);

#endif
