/*
 * The token store, mounted at auth/token/. Tokens are never stored in plaintext: the
 * storage key is an HMAC-SHA256 of the token under a per-cluster salt
 * (sys/token/id/<hex>), and accessors are separate random ids indexed the same way
 * (sys/token/accessor/<hex>). Both entries are barrier-encrypted. Children are indexed
 * under sys/token/parent/<parent hex>/<child hex>. Revoking a token deletes its own
 * records at once; its tree, of any size, is unusable from then on (a token is valid only
 * while its whole parent chain is) and is deleted in bounded batches in the background
 * (auth/token_revoke.h). Roles live in the mount's view (roles/<name>).
 *
 * Every function runs on the loop thread, inside a caller's transaction.
 */
#ifndef CS_AUTH_TOKEN_H
#define CS_AUTH_TOKEN_H

#include <stdbool.h>
#include <stdint.h>

#include "server/backend.h"

extern const struct cs_backend cs_token_backend;

/* Module registration (main): install the core's token hooks and the sys/leases rows. */
void cs_token_register(struct cs_core *core);

/* cs_token_lookup_fn and cs_token_create_root_fn of server/core.h. */
int cs_token_lookup(struct cs_core *core, struct cs_txn *txn, const char *token, cJSON **entry);
int cs_token_create_root(struct cs_core *core, struct cs_txn *txn, const char *id, char *out,
			 size_t outlen);
/* The entry of a valid token by accessor (policy/'s cs_policy_accessor_lookup_fn, for
 * sys/capabilities-accessor): *entry is new and owned by the caller, NULL if unknown. */
int cs_token_lookup_accessor(struct cs_core *core, struct cs_txn *txn, const char *accessor,
			     cJSON **entry);
/* cs_token_bound_ok_fn of server/core.h. */
bool cs_token_bound_ok(const cJSON *entry, const char *remote);
/* cs_token_use_fn, cs_token_after_fn and cs_token_issue_fn of server/core.h. */
int cs_token_use(struct cs_core *core, struct cs_txn *txn, const char *token, cJSON *entry,
		 const char *remote);
int cs_token_after(struct cs_request *req);
int cs_token_issue(struct cs_request *req, const cJSON *params);

/*
 * Revoke the token stored under sys/token/id/<key_hex> in `txn`: with orphan_children
 * false the whole tree below it goes too; with true its direct children become orphans.
 * The token's own records go in `txn`; its tree (or its children's orphaning) is marked in
 * `txn` and finished in the background when it is bigger than one bounded step.
 * CS_ENOTFOUND if no such token.
 */
int cs_token_revoke_key(struct cs_txn *txn, const char *key_hex, bool orphan_children);
/* Whether a token entry exists under that key (errors count as "exists"). */
bool cs_token_key_exists(struct cs_txn *txn, const char *key_hex);
/* HMAC hex of a token under the cluster salt (loaded from txn); out >= 65 bytes. */
int cs_token_key_of(struct cs_txn *txn, const char *token, char *out);

/*
 * TTL arithmetic (Vault's rules), pure functions for the handlers and the tests.
 * Creation: a periodic token gets `period`; otherwise the requested ttl, or the default
 * when 0 (tokens with the root policy are exempt and may have no TTL). explicit_max_ttl
 * caps it; a non-periodic token is also capped by the mount's max TTL.
 */
int64_t cs_token_create_ttl(int64_t ttl, int64_t period, int64_t explicit_max, int64_t def_ttl,
			    int64_t max_ttl, bool root_policy);
/*
 * Renewal at `now` of a token issued at `issue` (seconds): periodic → period; else the
 * increment, or the original ttl when 0. Never beyond issue+explicit_max (if set) nor,
 * for non-periodic tokens, beyond issue+max_ttl. Returns the new ttl (>= 0).
 */
int64_t cs_token_renew_ttl(int64_t now, int64_t issue, int64_t increment, int64_t orig_ttl,
			   int64_t period, int64_t explicit_max, int64_t max_ttl);

#endif
