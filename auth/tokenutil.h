/*
 * What every login-style auth method (userpass, approle, ...) shares, in the spirit of
 * Vault's sdk/helper/tokenutil: the token_* fields a user or role carries (their schema,
 * validation and read-back), the issue of a token at login through the core's token_issue
 * hook, and CIDR checks against the client's address.
 *
 * Stored shape (inside the method's own JSON entry): token_policies (array), token_ttl,
 * token_max_ttl, token_period, token_explicit_max_ttl, token_num_uses (numbers, seconds),
 * token_type ("default", "service", "batch", "default-service", "default-batch"),
 * token_no_default_policy (bool), token_bound_cidrs (array of CIDR strings).
 *
 * Everything runs on the loop thread (the CIDR helpers are pure and thread-safe).
 */
#ifndef CS_AUTH_TOKENUTIL_H
#define CS_AUTH_TOKENUTIL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "server/backend.h"

/* Field rows for a path's schema, to splice into a NULL-terminated cs_field array.
 * "policies", "ttl", "max_ttl", "period" and "bound_cidrs" are Vault's deprecated
 * aliases of the token_* names. */
#define CS_TOKENUTIL_FIELDS                                                                        \
	{.name = "token_policies", .type = CS_FIELD_STRLIST, .desc = "policies of issued tokens"}, \
	    {.name = "policies", .type = CS_FIELD_STRLIST, .desc = "deprecated: token_policies"},  \
	    {.name = "token_ttl",                                                                  \
	     .type = CS_FIELD_DURATION,                                                            \
	     .desc = "default TTL of issued tokens"},                                              \
	    {.name = "ttl", .type = CS_FIELD_DURATION, .desc = "deprecated: token_ttl"},           \
	    {.name = "token_max_ttl",                                                              \
	     .type = CS_FIELD_DURATION,                                                            \
	     .desc = "max TTL of issued tokens"},                                                  \
	    {.name = "max_ttl", .type = CS_FIELD_DURATION, .desc = "deprecated: token_max_ttl"},   \
	    {.name = "token_period",                                                               \
	     .type = CS_FIELD_DURATION,                                                            \
	     .desc = "period of issued tokens"},                                                   \
	    {.name = "period", .type = CS_FIELD_DURATION, .desc = "deprecated: token_period"},     \
	    {.name = "token_explicit_max_ttl",                                                     \
	     .type = CS_FIELD_DURATION,                                                            \
	     .desc = "hard cap of issued tokens"},                                                 \
	    {.name = "token_num_uses",                                                             \
	     .type = CS_FIELD_INT,                                                                 \
	     .desc = "uses of issued tokens (0: unlimited)"},                                      \
	    {.name = "token_type", .type = CS_FIELD_STRING, .desc = "service, batch or default"},  \
	    {.name = "token_no_default_policy",                                                    \
	     .type = CS_FIELD_BOOL,                                                                \
	     .desc = "leave out the default policy"},                                              \
	{                                                                                          \
		.name = "token_bound_cidrs", .type = CS_FIELD_STRLIST,                             \
		.desc = "CIDRs allowed to use issued tokens"                                       \
	}

/*
 * Apply the token_* fields present in req->data onto `entry` (a JSON object owned by the
 * caller), validating them. Absent fields keep their stored value; on a new entry the
 * defaults are written. Returns 0, or CS_EINVAL with the request's message set (entry
 * may then be partly updated: discard it).
 */
int cs_tokenutil_update(struct cs_request *req, cJSON *entry, bool is_new);
/* Add the token_* fields of `entry` to a read response `out` (and "policies"). */
void cs_tokenutil_read(const cJSON *entry, cJSON *out);

/*
 * Issue a token for a successful login inside req->txn and fill req->resp_auth, through
 * the core's token_issue hook. `entry` carries the token_* fields; `meta` (object, may
 * be NULL; not owned) becomes the token's metadata; `display` is the auth display name
 * ("alice", or "" for none): the token's display_name is "<mount>-<display>" as in
 * Vault. `path` is the login path ("auth/userpass/login/alice"). CS_EINTERNAL when no
 * token store is registered.
 */
int cs_tokenutil_issue(struct cs_request *req, const cJSON *entry, const cJSON *meta,
		       const char *display, const char *path);
/* The same for a login with Vault's identity alias: the token gets the entity of the alias
 * (`alias_name` on the request's mount; created at its first login, the alias's metadata
 * set to `alias_meta`, which may be NULL), shown as entity_id. */
int cs_tokenutil_issue_alias(struct cs_request *req, const cJSON *entry, const cJSON *meta,
			     const char *display, const char *path, const char *alias_name,
			     const cJSON *alias_meta);
/* The params object handed to the token_issue hook (exposed for tests). */
cJSON *cs_tokenutil_params(const cJSON *entry, const cJSON *meta, const char *display_name,
			   const char *path);

/*
 * Validate that every element of `list` (JSON array, or NULL) is a CIDR string. Returns 0,
 * or CS_EINVAL with the request's message "invalid CIDR block in \"<field>\": <cidr>".
 */
int cs_tokenutil_check_cidrs(struct cs_request *req, const cJSON *list, const char *field);

/* ---- helpers shared by the auth methods, the token store and the expiration manager ---- */

/* The number `name` of object `o`, 0 when absent or not a number. */
double cs_tokenutil_num(const cJSON *o, const char *name);
/* The string `name` of object `o` (borrowed from `o`), "" when absent or not a string. */
const char *cs_tokenutil_str(const cJSON *o, const char *name);
/* Replace (or add) `name` of object `o` with `item`, which `o` then owns. The member
 * moves to the end of the object. */
void cs_tokenutil_set(cJSON *o, const char *name, cJSON *item);
/* hex(HMAC-SHA256(key, value)) into out (65 bytes with the NUL). */
void cs_tokenutil_hmac_hex(const uint8_t *key, size_t key_len, const char *value, char out[65]);
/* Read and decode the record at `key` of `txn` (JSON, or the compact form of
 * auth/record_codec.h); *out (caller frees) is NULL on error. CS_ENOTFOUND when absent,
 * CS_EIO when it does not decode. */
int cs_tokenutil_txn_get_json(struct cs_txn *txn, const char *key, cJSON **out);
/* Write object `o` at `key` in `txn`: compact for the token store's and the expiration
 * manager's records (auth/record_codec.h), JSON text for any other key. */
int cs_tokenutil_txn_put_json(struct cs_txn *txn, const char *key, const cJSON *o);
/* Read the JSON entry `key` of the request's view; *out (caller frees) is NULL, and the
 * result 0, when the entry is absent. */
int cs_tokenutil_get_opt(struct cs_request *req, const char *key, cJSON **out);
/*
 * Answer a LIST request with {"keys": [...]} from `keys`, the result of a list call that
 * returned `rc`. Frees `keys`. Returns rc when not 0, CS_ENOTFOUND (404) when `keys` is
 * empty, else 0 with the request's data set.
 */
int cs_tokenutil_reply_keys(struct cs_request *req, int rc, struct cs_strv *keys);

/* ---- CIDRs ---- */

/* Whether `cidr` is an IPv4/IPv6 address or address/prefix ("10.0.0.0/8", "::1"). */
bool cs_tokenutil_cidr_valid(const char *cidr);
/*
 * Whether the address part of `remote` ("127.0.0.1:53412", "[::1]:8200", "10.1.2.3")
 * lies in `cidr`. IPv4-mapped IPv6 clients match IPv4 CIDRs. False for anything that
 * does not parse.
 */
bool cs_tokenutil_cidr_match(const char *cidr, const char *remote);
/* Whether every address of CIDR `inner` lies in CIDR `outer` (both valid, same family). */
bool cs_tokenutil_cidr_within(const char *inner, const char *outer);
/* true if `list` (JSON array of strings, or NULL) is empty or one CIDR matches. */
bool cs_tokenutil_cidr_list_ok(const cJSON *list, const char *remote);
/* The request's client address ("" for internal requests). */
const char *cs_tokenutil_remote(const struct cs_request *req);

#endif
