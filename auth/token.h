/*
 * The token store, mounted at auth/token/. Tokens are never stored in plaintext: the
 * storage key is an HMAC-SHA256 of the token under a per-cluster salt
 * (sys/token/id/<hex>), and accessors are separate random ids indexed the same way
 * (sys/token/accessor/<hex>). Both entries are barrier-encrypted.
 */
#ifndef CS_AUTH_TOKEN_H
#define CS_AUTH_TOKEN_H

#include "server/core.h"

extern const struct cs_backend cs_token_backend;

/* cs_token_lookup_fn and cs_token_create_root_fn of server/core.h. */
int cs_token_lookup(struct cs_core *core, struct cs_txn *txn, const char *token, cJSON **entry);
int cs_token_create_root(struct cs_core *core, struct cs_txn *txn, const char *id, char *out,
			 size_t outlen);

#endif
