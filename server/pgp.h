/*
 * PGP encryption of unseal shares and root tokens through GPGME, as Vault's pgp_keys /
 * pgp_key / root_token_pgp_key: each key is the base64 of a binary OpenPGP public key
 * (`gpg --export KEYID | base64`); "keybase:<user>" is refused (custos makes no outbound
 * call to Keybase). A message is encrypted to the key's encryption subkey, unarmoured
 * and unsigned, and the caller returns it base64 (keys_base64) or hex (keys), so
 * `echo KEY | base64 -d | gpg -dq` gives the plaintext back.
 *
 * Each call works in a fresh temporary GnuPG home (removed before returning): the
 * server's own keyrings, if any, are never read or changed. Synchronous: it runs gpg as a
 * child process, a few tens of milliseconds per key. Rekey runs it on the worker pool;
 * init and generate-root (one key each) on the loop, as they are rare operator calls.
 */
#ifndef CS_SERVER_PGP_H
#define CS_SERVER_PGP_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define CS_PGP_FPR_LEN 40 /* hex digits of a v4 fingerprint */

/* Initialise GPGME. Once, on the main thread, before any other call (which may then run
 * on any thread: each call has its own context and GnuPG home). */
void cs_pgp_init(void);

/*
 * Encrypt in[i] (in_len[i] bytes) to keys[i] (base64 public key) for i < n. On success
 * out[i] holds the binary OpenPGP message (caller frees each with cs_buf_free) and, when
 * fpr is not NULL, fpr[i] the key's primary fingerprint in lowercase hex. 0, or CS_EINVAL
 * with a message for a bad key (nothing in out), CS_EINTERNAL when GnuPG fails.
 */
int cs_pgp_encrypt(const char *const *keys, const uint8_t *const *in, const size_t *in_len, int n,
		   struct cs_buf *out, char (*fpr)[CS_PGP_FPR_LEN + 1], char *errmsg,
		   size_t errlen);
/* The primary fingerprints of keys[0..n) (checks that each parses). 0 or CS_EINVAL. */
int cs_pgp_fingerprints(const char *const *keys, int n, char (*fpr)[CS_PGP_FPR_LEN + 1],
			char *errmsg, size_t errlen);

#endif
