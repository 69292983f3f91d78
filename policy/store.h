/*
 * The policy store: ACL policies in storage, a cache of parsed policies, the sys/
 * endpoints (sys/policy, sys/policies/acl, sys/capabilities*) and the ACL hook the core
 * calls for every non-root request.
 *
 * Storage: one barrier-encrypted key per policy, "sys/policy/<name>", holding the raw
 * policy text exactly as written (names are lower-cased). "default" is served from the
 * built-in text (Vault's default policy) until somebody writes it; "root" is never
 * stored: it reads as an empty policy and cannot be written or deleted.
 *
 * Cache: parsed policies by name, each with a copy of the text it was parsed from. Every
 * lookup reads the stored text through the request's transaction (so it sees the
 * request's own writes, the pending overlay, and whatever a snapshot restore or a new
 * leader brought) and reuses the parsed form only when the text is byte-identical. The
 * cache can therefore never serve a stale policy, whatever changed storage; the reset
 * hook (seal, leadership loss) merely frees the memory.
 *
 * Everything runs on the loop thread.
 */
#ifndef CS_POLICY_STORE_H
#define CS_POLICY_STORE_H

#include <cjson/cJSON.h>

#include "policy/policy.h"
#include "server/core.h"

/* Register the sys/ paths, the ACL hook and the cache reset hook. Call once at
 * start-up, before any request (server/main.c's module registrations). */
void cs_policy_module_init(void);

/*
 * Token store hook for sys/capabilities-accessor: look up the token entry of an
 * accessor in `txn`; *entry is a new cJSON object owned by the caller (the same shape as
 * cs_token_lookup_fn's), or NULL when there is no such accessor. Until one is set the
 * endpoint answers 400.
 */
typedef int (*cs_policy_accessor_lookup_fn)(struct cs_core *core, struct cs_txn *txn,
					    const char *accessor, cJSON **entry);
void cs_policy_set_accessor_lookup(cs_policy_accessor_lookup_fn fn);

/* Vault's built-in "default" policy text (static storage). */
const char *cs_policy_default_text(void);

/* The ACL hook (cs_acl_hook_fn); exposed for tests. */
int cs_policy_acl_hook(struct cs_request *req);

/* Drop every cached policy (the reset hook). */
void cs_policy_cache_reset(void);

#endif
