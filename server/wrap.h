/*
 * Response wrapping (https://developer.hashicorp.com/vault/docs/concepts/response-wrapping).
 *
 * A request carrying X-Vault-Wrap-TTL whose response has data or auth does not get that
 * response: the core (commit_and_finish) hands it to cs_wrap_response, which, inside the
 * request's own transaction,
 *   1. serialises the response envelope exactly as it would have been sent;
 *   2. issues a wrapping token through the core's token_issue hook: an orphan service
 *      token with the single policy "response-wrapping", num_uses 1, ttl and
 *      explicit_max_ttl = the wrap TTL, not renewable, path = the request path;
 *   3. stores {"response": "<envelope JSON>"} in that token's cubbyhole at "response"
 *      (layout of engines/cubbyhole.h: <cubbyhole mount prefix><H(token)>/response);
 *   4. replaces the response with Vault's wrapped envelope: data and auth null,
 *      wrap_info {token, accessor, ttl, creation_time, creation_path[, wrapped_accessor]}.
 * Token, cubbyhole entry and the handler's own writes commit together or not at all.
 *
 * sys/wrapping/wrap (wrap the request body), unwrap (the original envelope, and the
 * wrapping token is revoked — with it its cubbyhole), lookup (creation_path,
 * creation_time, creation_ttl; unauthenticated) and rewrap (a new token for the same
 * response, the old one revoked) are sys/ rows registered by cs_wrap_register. A token
 * that does not exist, is used up, expired, or is not a wrapping token is answered with
 * 400 "wrapping token is not valid or does not exist". Policies bound the wrap TTL
 * (min/max_wrapping_ttl): the ACL hook sees req->wrap_ttl.
 *
 * Everything runs on the loop thread.
 */
#ifndef CS_SERVER_WRAP_H
#define CS_SERVER_WRAP_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "server/core.h"

#define CS_WRAP_POLICY      "response-wrapping"
#define CS_WRAP_INVALID_MSG "wrapping token is not valid or does not exist"

/* Module registration (main, before any request): the sys/wrapping/ rows. Wrapping reaches
 * the token store through the core's registered interface (cs_token_store.key_of and
 * .revoke_key, server/backend.h): server/ does not include auth/. */
void cs_wrap_register(void);

/*
 * Parse an X-Vault-Wrap-TTL value: a duration string ("5m", "90s") or seconds ("300").
 * NULL or empty → *ttl = 0 (no wrapping). Returns 0, or CS_EINVAL with *errmsg pointing
 * at a static message (negative or unparsable value). Pure.
 */
int cs_wrap_parse_ttl(const char *value, int64_t *ttl, const char **errmsg);

/* Read X-Vault-Wrap-TTL into req->wrap_ttl (X-Vault-Wrap-Format is accepted and
 * ignored: tokens are never JWTs here). 0, or CS_EINVAL with the request's message set. */
struct cs_http_req;
int cs_wrap_read_headers(struct cs_request *req, const struct cs_http_req *h);

/*
 * Called by the core for every successful request before it commits, with req->txn
 * open. Does nothing (returns 0) unless req->wrap_ttl > 0 and the response is an envelope
 * with data or auth; otherwise wraps it as described above and leaves the wrapped
 * envelope in req->raw (resp_data, resp_auth, warnings and lease fields are cleared).
 * Returns 0 or an error code (the request then fails and nothing is written).
 */
int cs_wrap_response(struct cs_request *req);

/* The wrap_info object (new, owned by the caller). creation_ns: unix nanoseconds;
 * wrapped_accessor NULL or "" → omitted. Pure. */
cJSON *cs_wrap_info_json(const char *token, const char *accessor, int64_t ttl, int64_t creation_ns,
			 const char *creation_path, const char *wrapped_accessor);
/* The wrapped response envelope around `wrap_info` (taken over): Vault's shape with
 * data, auth and warnings null. Pure. */
cJSON *cs_wrap_envelope(cJSON *wrap_info);

#endif
