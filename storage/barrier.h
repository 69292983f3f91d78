/*
 * The barrier: every value custos stores is AES-256-GCM encrypted with Vault's framing
 * (OpenBao's vault/barrier_aes_gcm.go, https://github.com/openbao/openbao):
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
 * - Rotation (sys/rotate): a new term is written to the keyring record through a
 *   transaction and raft; every node installs it in place when the record applies
 *   (server/rotate_sys.c). Every encryption is counted per term, and the count is
 *   persisted in batches ahead of use (cs_keyring_account), so a crash over-counts by
 *   at most one batch and never under-counts.
 * - Decryption failures never say why beyond CS_ECRYPTO ("wrong key, path or tampered").
 */
#ifndef CS_STORAGE_BARRIER_H
#define CS_STORAGE_BARRIER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define CS_KEY_LEN           32
#define CS_BARRIER_VERSION   0x02
#define CS_BARRIER_NONCE_LEN 12
#define CS_BARRIER_TAG_LEN   16
#define CS_BARRIER_OVERHEAD  (4 + 1 + CS_BARRIER_NONCE_LEN + CS_BARRIER_TAG_LEN)

/* Where the keyring lives (sealed under the root key) and where each term's encryption
 * count is persisted (barrier-encrypted decimal, "core/keyring-count/<term>"). */
#define CS_KEYRING_PATH         "core/keyring"
#define CS_KEYRING_COUNT_PREFIX "core/keyring-count/"

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
	uint64_t encryptions; /* as stored; for the active term see cs_keyring_encryptions */
};

/*
 * Encryption accounting for the active term (sys/key-status, max_operations). Counted
 * with `local` (atomic: cs_barrier_encrypt may run on any thread) on top of `base`, the
 * highest count this process knows was persisted for the term. The rest is loop-thread
 * state of cs_keyring_account (below): `reserved` caches the newest count record visible
 * in storage, valid while the storage epoch stays `epoch` and, when this process wrote
 * it, once the write-set that carries it was accepted (storage next_seq passed `seq`).
 */
struct cs_keyring_count {
	_Atomic uint64_t local;
	uint64_t base;
	uint32_t term;
	bool cached;
	uint64_t reserved;
	uint64_t epoch;
	uint64_t seq; /* 0: read from storage */
};

struct cs_keyring {
	uint8_t *root_key;           /* CS_KEY_LEN bytes of cs_secmem memory */
	struct cs_keyring_key *keys; /* ascending term order */
	size_t n_keys;
	uint32_t active_term; /* term used for new encryptions (the highest) */
	/* Vault's RotationConfig (sys/rotate/config). */
	bool rotation_disabled;
	uint64_t max_operations;   /* rotate once the active term encrypted this many values */
	int64_t rotation_interval; /* seconds; rotate when the active term is older; 0: never */
	/* Mutable through a const keyring: counting is not a change of the keys. */
	struct cs_keyring_count *count;
};

/* Vault's bounds for max_operations (the default is the maximum, about 0.9 * 2^32
 * random 96-bit nonces per key) and the shortest rotation interval. */
#define CS_ROTATE_MAX_OPERATIONS 3865470566ULL
#define CS_ROTATE_MIN_OPERATIONS 1000000ULL
#define CS_ROTATE_MIN_INTERVAL   (24 * 3600)

/* A new keyring: random root key and one random key at term 1. Never fails. */
struct cs_keyring *cs_keyring_new(void);
/* Zeroise and free; NULL allowed. */
void cs_keyring_free(struct cs_keyring *kr);
/* Add term active+1 with a fresh random key and make it active. Loop thread. */
void cs_keyring_rotate(struct cs_keyring *kr);
/*
 * Replace kr's keys, active term and rotation config with those of `fresh` (which is
 * freed), in place: pointers to kr held by open transactions stay valid. When the active
 * term changes the count restarts from the new term's stored count. Loop thread, with no
 * encryption or decryption running on another thread.
 */
void cs_keyring_install(struct cs_keyring *kr, struct cs_keyring *fresh);
/* Encryptions under the active term as far as this process knows (never less than what
 * was persisted when it last looked, plus its own since). */
uint64_t cs_keyring_encryptions(const struct cs_keyring *kr);
/* Encryptions after which the active term gets a new reservation record: 1/256 of
 * max_operations, at least 1 and at most 65536 (the most a crash can over-count). */
uint64_t cs_keyring_batch(const struct cs_keyring *kr);
/*
 * Whether automatic rotation is due at wall-clock `now_ns` for `count` encryptions:
 * NULL if not (or disabled), else the reason ("reached max operations", "rotation
 * interval reached").
 */
const char *cs_keyring_rotation_due(const struct cs_keyring *kr, uint64_t count, int64_t now_ns);
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
/* Go's time.Time JSON form of Unix ns (RFC 3339, fraction without trailing zeros, "Z"),
 * as in the keyring and sys/key-status. out >= 40 bytes. */
void cs_format_go_time(int64_t ns, char *out, size_t outlen);
/* The stored form: the JSON sealed under the root key (term 1 framing, AAD
 * CS_KEYRING_PATH), and back. open: 0, CS_ECRYPTO (wrong root key or tampered) or
 * CS_EINVAL. */
int cs_keyring_seal(const struct cs_keyring *kr, struct cs_buf *out);
int cs_keyring_open(const uint8_t root_key[CS_KEY_LEN], const void *ct, size_t n,
		    struct cs_keyring **out);

/* Start counting the active term from what the keyring records for it (after a
 * rotation, or when a record was loaded). */
void cs_keyring_count_reset(struct cs_keyring *kr);

/* Encrypt a value for storage at `path` with the active term. Appends to `out`. */
int cs_barrier_encrypt(const struct cs_keyring *kr, const char *path, const void *pt, size_t n,
		       struct cs_buf *out);
/* Decrypt a stored value (any known term). CS_ECRYPTO on unknown term/tamper/wrong path.
 * Appends to `out`; release with cs_buf_free_secure. */
int cs_barrier_decrypt(const struct cs_keyring *kr, const char *path, const void *ct, size_t n,
		       struct cs_buf *out);

#endif
