/*
 * The barrier: every value custos stores is AES-256-GCM encrypted with Vault's framing
 * (vault-api.md §3.9):
 *
 *     [term: u32 big-endian][version: 0x02][nonce: 12 random bytes][ciphertext][tag: 16]
 *
 * with the storage path as associated data, so a value cannot be moved to another key.
 * The keyring holds one 32-byte key per term; new values use the active (newest) term,
 * old terms keep decrypting. The keyring itself is stored encrypted under the root
 * key (term 1 framing, AAD "core/keyring"); the root key is stored encrypted under the
 * seal's key-encryption key (server/seal.c).
 *
 * Key bytes live in cs_secmem memory (mlocked, zeroised on free).
 *
 * Caveats:
 * - Functions are pure computation and thread-safe for concurrent use of one keyring as
 *   long as nobody rotates or frees it meanwhile (the loop thread owns rotation).
 * - Decryption failures never say why beyond CS_ECRYPTO ("wrong key, path or tampered").
 */
#ifndef CS_STORAGE_BARRIER_H
#define CS_STORAGE_BARRIER_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define CS_KEY_LEN           32
#define CS_BARRIER_VERSION   0x02
#define CS_BARRIER_NONCE_LEN 12
#define CS_BARRIER_TAG_LEN   16
#define CS_BARRIER_OVERHEAD  (4 + 1 + CS_BARRIER_NONCE_LEN + CS_BARRIER_TAG_LEN)

/*
 * One AEAD operation with the framing above and a single key. Appends to `out`.
 * `aad` may be NULL when aadlen == 0. Returns 0, or CS_ECRYPTO on any failure.
 */
int cs_aead_seal(const uint8_t key[CS_KEY_LEN], uint32_t term, const void *aad, size_t aadlen,
		 const void *pt, size_t ptlen, struct cs_buf *out);
/* Checks the version byte and the tag; appends the plaintext to `out`. The caller
 * should release `out` with cs_buf_free_secure. */
int cs_aead_open(const uint8_t key[CS_KEY_LEN], const void *aad, size_t aadlen, const void *ct,
		 size_t ctlen, struct cs_buf *out);
/* The term of a framed ciphertext, or 0 if it is too short to be one. */
uint32_t cs_aead_term(const void *ct, size_t ctlen);

struct cs_keyring_key {
	uint32_t term;
	uint8_t *key; /* CS_KEY_LEN bytes of cs_secmem memory */
	int64_t install_time_ns;
	uint64_t encryptions; /* estimated count, for sys/key-status */
};

struct cs_keyring {
	uint8_t *root_key;           /* CS_KEY_LEN bytes of cs_secmem memory */
	struct cs_keyring_key *keys; /* ascending term order */
	size_t n_keys;
	uint32_t active_term; /* term used for new encryptions (the highest) */
};

/* A new keyring: random root key and one random key at term 1. Never fails. */
struct cs_keyring *cs_keyring_new(void);
/* Zeroise and free; NULL allowed. */
void cs_keyring_free(struct cs_keyring *kr);
/* Add term active+1 with a fresh random key and make it active. */
void cs_keyring_rotate(struct cs_keyring *kr);
/* Key for a term, or NULL. */
const struct cs_keyring_key *cs_keyring_term(const struct cs_keyring *kr, uint32_t term);

/*
 * Serialise as Vault's keyring JSON:
 * {"MasterKey":b64,"Keys":[{"Term":1,"Version":1,"Value":b64,"InstallTime":RFC3339,
 *   "encryptions":n}],"RotationConfig":{"Disabled":false,"MaxOperations":3865470566,
 *   "Interval":0}}
 * The JSON holds key bytes: release `out` with cs_buf_free_secure.
 */
void cs_keyring_encode(const struct cs_keyring *kr, struct cs_buf *out);
/* Parse the JSON above. Returns 0 and a new keyring, or CS_EINVAL. */
int cs_keyring_decode(const void *json, size_t len, struct cs_keyring **out);

/* Encrypt a value for storage at `path` with the active term. Appends to `out`. */
int cs_barrier_encrypt(const struct cs_keyring *kr, const char *path, const void *pt, size_t n,
		       struct cs_buf *out);
/* Decrypt a stored value (any known term). CS_ECRYPTO on unknown term/tamper/wrong path.
 * Appends to `out`; release with cs_buf_free_secure. */
int cs_barrier_decrypt(const struct cs_keyring *kr, const char *path, const void *ct, size_t n,
		       struct cs_buf *out);

#endif
