/*
 * What the files of the token store share; not a public interface (only auth/token*.c
 * include it). The store is split by job:
 *
 *   token.c         the salt, the storage records (entries, accessor and parent
 *                   indexes), the core's lookup/use hooks, tree revocation, the TTL rules,
 *                   the root token, the path table and registration
 *   token_create.c  auth/token/create*, and cs_token_issue for login methods
 *   token_ops.c     lookup, renew, revoke, accessors and tidy endpoints
 *   token_roles.c   auth/token/roles/
 *
 * Dependencies run one way: the handler files call into token.c; token.c names the
 * handlers only in its path table. Everything runs on the loop thread, inside the
 * caller's transaction (see token.h).
 */
#ifndef CS_AUTH_TOKEN_INTERNAL_H
#define CS_AUTH_TOKEN_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "server/backend.h"

#define CS_TOKEN_ID_PREFIX       "sys/token/id/"
#define CS_TOKEN_ACCESSOR_PREFIX "sys/token/accessor/"
#define CS_TOKEN_PARENT_PREFIX   "sys/token/parent/"

/* ---- token.c: storage records */

/* Set `name` of `o` to `item` (owned by `o` then), in place when it exists: unlike
 * cs_tokenutil_set, the member keeps its position in the stored entry. */
void cs_token_set_in_place(cJSON *o, const char *name, cJSON *item);
/* The entry stored under sys/token/id/<hex>; *e is new and owned by the caller. */
int cs_token_entry_get(struct cs_txn *txn, const char *hex, cJSON **e);
int cs_token_entry_put(struct cs_txn *txn, const char *hex, const cJSON *e);
/* A stored entry that may still be used: not expired, not at its last use. */
bool cs_token_entry_valid(const cJSON *e);
/* The entry of a token given by value (hex >= 65 bytes gets its key); CS_ENOTFOUND when
 * absent or no longer valid. */
int cs_token_lookup_valid(struct cs_txn *txn, const char *token, char *hex, cJSON **e);
/* Delete token `hex`'s own records (entry `e`, accessor, lease, the link from its parent,
 * cubbyhole; its secret leases fall due), not its children's. */
int cs_token_delete_records(struct cs_txn *txn, const char *hex, const cJSON *e);
/* Accessor → token key (hex >= 65 bytes); loads the salt. */
int cs_token_accessor_resolve(struct cs_txn *txn, const char *accessor, char *hex);
/* The accessor index entry of a new token. The salt must be loaded. */
int cs_token_accessor_put(struct cs_txn *txn, const char *accessor, const char *hex);

/* ---- token_create.c */

/* A sorted, deduplicated, lower-cased copy of the policy names in `in` (+ "default"
 * unless "root" is among them, if asked). New array owned by the caller. */
cJSON *cs_token_policy_set(const cJSON *in, bool add_default);
/* Set req->resp_auth to Vault's auth block for `token` with entry `e` and `ttl`. */
void cs_token_fill_auth(struct cs_request *req, const char *token, const cJSON *e, int64_t ttl);

/* Handlers named by the path table in token.c. */
int cs_token_h_create(struct cs_request *req);
int cs_token_h_create_orphan(struct cs_request *req);
int cs_token_h_create_role(struct cs_request *req);

/* ---- token_ops.c */
int cs_token_h_lookup_self(struct cs_request *req);
int cs_token_h_lookup(struct cs_request *req);
int cs_token_h_lookup_accessor(struct cs_request *req);
int cs_token_h_renew(struct cs_request *req);
int cs_token_h_renew_self(struct cs_request *req);
int cs_token_h_renew_accessor(struct cs_request *req);
int cs_token_h_revoke(struct cs_request *req);
int cs_token_h_revoke_orphan(struct cs_request *req);
int cs_token_h_revoke_self(struct cs_request *req);
int cs_token_h_revoke_accessor(struct cs_request *req);
int cs_token_h_accessors(struct cs_request *req);
int cs_token_h_tidy(struct cs_request *req);

/* ---- token_roles.c */
int cs_token_h_role_read(struct cs_request *req);
int cs_token_h_role_write(struct cs_request *req);
int cs_token_h_role_delete(struct cs_request *req);
int cs_token_h_role_list(struct cs_request *req);
int cs_token_role_exists(struct cs_request *req, bool *exists);

#endif
