/*
 * The userpass auth method (mount type "userpass"), Vault's API:
 *
 *   LIST   auth/<mount>/users                      user names
 *   GET/POST/DELETE auth/<mount>/users/:username   password, token_* fields
 *   POST   auth/<mount>/users/:username/password   change the password
 *   POST   auth/<mount>/users/:username/policies   change token_policies
 *   POST   auth/<mount>/login/:username            {password} → token ("auth" block)
 *
 * User names are case-insensitive (stored lower-case) as in Vault. Each user is one
 * barrier-encrypted JSON entry under the mount's view, users/<name>, holding the token_*
 * fields (auth/tokenutil.h) and "password_hash", the PHC-like string
 * "pbkdf2-sha256$<iterations>$<salt base64>$<key base64>" (PBKDF2-HMAC-SHA256, 16-byte
 * random salt, 32-byte key). The password itself is never stored.
 *
 * The KDF is slow by design (~0.15 s), so it never runs on the loop thread: writes that
 * set a password and every login suspend the request with cs_req_defer
 * (server/backend.h), hash on a pool thread, and finish in a fresh transaction that
 * re-reads the user. A login whose user changed password (or vanished) meanwhile fails.
 * Logins for unknown users run the KDF too, against a dummy hash, so that response time
 * does not reveal which user names exist; both cases answer 400 "invalid username or
 * password". token_bound_cidrs is checked against the client address after the password.
 */
#ifndef CS_AUTH_USERPASS_H
#define CS_AUTH_USERPASS_H

#include <stdbool.h>

#include "server/backend.h"

/* Overridable at build time only so that the HTTP fuzz target (tests/fuzz) is not
 * dominated by key stretching; every real build uses 600000. */
#ifndef CS_USERPASS_KDF_ITER
#define CS_USERPASS_KDF_ITER 600000
#endif
#define CS_USERPASS_SALT_LEN 16
#define CS_USERPASS_KEY_LEN  32

extern const struct cs_backend cs_userpass_backend;

/* Module registration (main): register the backend type. */
void cs_userpass_register(void);

/*
 * Hash `password` with a fresh random salt and `iter` iterations; returns the encoded
 * string (malloc'd, caller frees) or NULL on failure. Thread-safe: runs on pool threads.
 */
char *cs_userpass_hash(const char *password, unsigned iter);
/*
 * Whether `password` matches `encoded` (as made by cs_userpass_hash; the iteration count
 * and salt come from it). Constant-time comparison of the derived keys; false for a
 * malformed string. Thread-safe.
 */
bool cs_userpass_verify(const char *password, const char *encoded);

#endif
