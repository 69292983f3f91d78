/*
 * The AppRole auth method (mount type "approle"), Vault's API:
 *
 *   LIST   auth/<mount>/role                                   role names
 *   GET/POST/DELETE auth/<mount>/role/:role_name               bind_secret_id,
 *          secret_id_bound_cidrs, secret_id_num_uses, secret_id_ttl, token_* fields
 *   GET/POST auth/<mount>/role/:role_name/role-id              read / set a custom role_id
 *   POST   auth/<mount>/role/:role_name/secret-id              generate a secret id
 *   LIST   auth/<mount>/role/:role_name/secret-id              secret id accessors
 *   POST   auth/<mount>/role/:role_name/custom-secret-id       register a given secret id
 *   POST   auth/<mount>/role/:role_name/secret-id/lookup       {secret_id}
 *   POST   auth/<mount>/role/:role_name/secret-id/destroy      {secret_id} (also DELETE)
 *   POST   auth/<mount>/role/:role_name/secret-id-accessor/lookup   {secret_id_accessor}
 *   POST   auth/<mount>/role/:role_name/secret-id-accessor/destroy  {secret_id_accessor}
 *   POST   auth/<mount>/login                                  {role_id, secret_id} → token
 *
 * Storage, in the mount's view (barrier-encrypted JSON):
 *   salt                          32 random bytes: the mount's HMAC key (made on first use)
 *   role/<name>                   the role, including its role_id
 *   role_id/<hmac(role_id)>       {"name": role}
 *   secret_id/<name>/<hmac(sid)>  {secret_id_accessor, creation_time, expiration_time,
 *                                  last_updated_time, secret_id_num_uses, secret_id_ttl,
 *                                  cidr_list, token_bound_cidrs, metadata}
 *   accessor/<hmac(accessor)>     {"role": name, "secret_id_hmac": hex}
 * Secret ids are never stored: only their HMAC-SHA256 under the mount's salt, so a copy of
 * the storage (even decrypted) does not let anybody log in. Times are unix seconds;
 * expiration_time 0 means never.
 *
 * Login: role_id → role; with bind_secret_id the secret id must exist for that role, not
 * be expired (an expired one is deleted and refused), and the client address must be in
 * the role's secret_id_bound_cidrs and the secret id's cidr_list (400 otherwise); the
 * client must also be in token_bound_cidrs (403). A secret id with num_uses 1 is deleted
 * by the login that uses it, a higher count is decremented, 0 means unlimited — in the
 * same transaction that issues the token, so two logins never share the last use.
 * Everything runs on the loop thread inside the request's transaction (HMACs are fast).
 */
#ifndef CS_AUTH_APPROLE_H
#define CS_AUTH_APPROLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/backend.h"

#define CS_APPROLE_SALT_LEN 32

extern const struct cs_backend cs_approle_backend;

/* Module registration (main): register the backend type. */
void cs_approle_register(void);

/* HMAC-SHA256 of `value` under `salt`, as 64 hex chars + NUL. Thread-safe. */
void cs_approle_hmac(const uint8_t *salt, size_t salt_len, const char *value, char out[65]);

/* What a login does with a secret id at `now` (unix seconds). */
enum cs_approle_use {
	CS_APPROLE_EXPIRED,   /* refuse and delete */
	CS_APPROLE_UNLIMITED, /* accept, keep as is (num_uses 0) */
	CS_APPROLE_DECREMENT, /* accept, store num_uses - 1 */
	CS_APPROLE_LAST_USE,  /* accept, delete (num_uses 1) */
};
enum cs_approle_use cs_approle_secret_use(int64_t now, int64_t expiration, int64_t num_uses);

/*
 * Limits of a new secret id from the role's secret_id_ttl / secret_id_num_uses and the
 * request's ttl / num_uses (0: not given). Vault's rules: a requested value may narrow the
 * role's, never widen it (num_uses 0 is "unlimited", so it is wider than any count).
 * Returns 0 with *ttl and *uses set, or CS_EINVAL with *err a static message.
 */
int cs_approle_secret_limits(int64_t role_ttl, int64_t role_uses, int64_t req_ttl, int64_t req_uses,
			     int64_t *ttl, int64_t *uses, const char **err);

#endif
