/*
 * The cubbyhole secrets engine (mount type "cubbyhole", always mounted at cubbyhole/).
 *
 * Every token has its own private KV v1-like space: read, write (the whole JSON object
 * replaces the previous one), list and delete, visible only to the token that wrote it
 * (root tokens included). Storage lives in the mount's view, partitioned by the token's
 * storage key, the salted HMAC the token store files it under (never the token itself):
 *
 *   <mount prefix><H(token)>/<path>
 *
 * server/wrap.c writes wrapped responses to "<H(wrapping token)>/response" with the same
 * layout. When the token store deletes a token (revoke, tree revoke, expiry, last use)
 * it calls the token-revoked hook (server/backend.h), and the whole cubbyhole of that
 * token is deleted in the same transaction.
 *
 * The mount is a required mount (server/sys.h): added at init and, for older data dirs,
 * at unseal; it cannot be disabled and nobody can mount over cubbyhole/.
 *
 * Everything runs on the loop thread.
 */
#ifndef CS_ENGINES_CUBBYHOLE_H
#define CS_ENGINES_CUBBYHOLE_H

#include "server/backend.h"

extern const struct cs_backend cs_cubbyhole_backend;

/* Module registration (main): register the backend, the required cubbyhole/ mount and
 * the token-revoked hook. `core` is remembered (not owned) to find the mount. */
void cs_cubbyhole_register(struct cs_core *core);

/* The token-revoked hook: delete every key of the cubbyhole of `token_key` in `txn`.
 * 0 when there is none (or no cubbyhole mount). */
int cs_cubbyhole_destroy(struct cs_txn *txn, const char *token_key);

#endif
