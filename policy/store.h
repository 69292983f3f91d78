/*
 * The policy store: ACL policies in storage and a cache of parsed policies. The sys/
 * endpoints and the core's ACL hook built on it live in server/policy_sys.h.
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
#include <stdbool.h>

#include "lib/buf.h"
#include "policy/policy.h"
#include "storage/txn.h"

#define CS_POLICY_KEY_PREFIX "sys/policy/"
#define CS_POLICY_MAX_NAME   256

/* Vault's built-in "default" policy text (static storage). */
const char *cs_policy_default_text(void);

/* Whether `name` (already trimmed and lower-cased) may name a stored policy. */
bool cs_policy_name_ok(const char *name);
/* Read a policy's text: 0 with *raw set (stored or built-in), CS_ENOTFOUND, or an
 * error. `raw` must be released with cs_buf_free_secure. */
int cs_policy_read_text(struct cs_txn *txn, const char *name, struct cs_buf *raw);

/* Parsed policies by name, re-parsed when the stored text changes. One per core (the
 * caller owns it: server/policy_sys.c keeps it in the core's state); zero-initialised is
 * empty. */
struct cs_policy_cache {
	struct cached *v;
	size_t n, cap;
};

/* The parsed policies of a token entry; v (malloc'd) points into the cache, valid until
 * the next load or reset. Free v only. */
struct cs_polset {
	const struct cs_policy **v;
	size_t n;
};
/* Load every policy named in the token entry's "policies". Names are matched as stored:
 * lower case; unknown names and "root" contribute nothing. 0 or a storage error. */
int cs_policy_load(struct cs_policy_cache *pc, struct cs_txn *txn, const cJSON *entry,
		   struct cs_polset *out);
/* The same for a JSON array of policy names (a token's plus its identity's). */
int cs_policy_load_names(struct cs_policy_cache *pc, struct cs_txn *txn, const cJSON *names,
			 struct cs_polset *out);
/* Whether the token entry carries the root policy. */
bool cs_policy_entry_has_root(const cJSON *entry);

/* Drop every cached policy (the reset hook); pc stays usable. */
void cs_policy_cache_reset(struct cs_policy_cache *pc);

#endif
