/*
 * The ACME server of the PKI engine (RFC 8555, as Vault 1.14+ serves it): internals shared
 * by its files. engines/pki.h is the engine's public side; the path table rows live in
 * engines/acme.c and are searched before the PKI rows (cs_pki_acme_tables).
 *
 * Split by concern:
 *   acme_state.c  pure rules, no storage: identifiers, order/authz status, which
 *                 challenges an identifier gets, CSR-vs-order matching, the nonce window.
 *                 Unit-tested directly (tests/unit/test_acme.c).
 *   acme.c        the path table, the request envelope (directory, JWS, nonce, problem
 *                 documents, URLs), config/acme, the EAB endpoints, accounts.
 *   acme_order.c  orders, authorizations, challenges, finalize, cert, revoke-cert,
 *                 key-change.
 *   acme_chal.c   challenge validation on the active node (engines/acme_validate.h) and
 *                 the internal request that records its result.
 *
 * Storage under the mount's view (every value behind the barrier, through the request's
 * transaction, so raft replicates it):
 *   config/acme                        config/acme's fields
 *   acme/eab/<key id>                  {"key_id","key_type":"hs","key_bits","key": b64,
 *                                       "acme_directory","created_on"}
 *   acme/accounts/<id>                 {"id","jwk","thumbprint","status","contact",
 *                                       "tos","directory","eab_key_id","created"}
 *   acme/thumbprints/<RFC 7638>        {"id"}: the account of a key
 *   acme/accounts/<id>/orders/<oid>    the order (identifiers, authz ids, status, cert)
 *   acme/accounts/<id>/authz/<zid>     the authorization and its challenges
 *   acme/certs/<serial>                {"account","order"}: who may revoke by account
 *
 * Nonces are not stored: every ACME request is forwarded to the active node (standbys
 * forward everything), so the active node alone issues and redeems them, in memory
 * (acme_state.c's window). A leader change starts a new window under a new key, so a nonce
 * from the old leader gets badNonce, which every ACME client retries (RFC 8555 §6.5).
 */
#ifndef CS_ENGINES_ACME_INTERNAL_H
#define CS_ENGINES_ACME_INTERNAL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engines/acme_jws.h"
#include "server/backend.h"

/* ---- acme_state.c: pure rules ---- */

enum cs_acme_id_type { CS_ACME_ID_DNS, CS_ACME_ID_IP };

/* One order identifier, checked: a dns name (lowercased; "*." allowed once, in front) or
 * an IP literal (canonical text). */
struct cs_acme_identifier {
	enum cs_acme_id_type type;
	char value[256];
	bool wildcard; /* dns "*.example.com": value keeps the "*." */
};
/* Parse {"type":"dns"|"ip","value":...}. 0, or CS_EINVAL with *why (a problem type
 * "malformed" / "unsupportedIdentifier" / "rejectedIdentifier" and a detail). */
int cs_acme_identifier_parse(const cJSON *o, struct cs_acme_identifier *out, const char **type,
			     const char **why);
/* The identifier as its JSON object (type, value). */
cJSON *cs_acme_identifier_json(const struct cs_acme_identifier *id);

/* Whether a challenge type may validate this identifier (RFC 8555 §8, RFC 8738, RFC 8737):
 * wildcards only dns-01, IP identifiers http-01 and tls-alpn-01. */
bool cs_acme_challenge_allowed(const char *type, const struct cs_acme_identifier *id);

/* Whether a directory's role (its stored object; NULL: sign-verbatim, which takes any)
 * refuses the identifier, as Vault's validateIdentifiersAgainstRole: DNS names by the
 * role's name rules, IPs by allow_ip_sans. NULL when allowed, else a static reason. */
const char *cs_acme_role_refuses(const cJSON *role, const struct cs_acme_identifier *id);

/* The status an authorization has now: a pending or valid one past `expires` is
 * "expired". Returns a static string. */
const char *cs_acme_authz_status(const char *stored, int64_t expires, int64_t now);
/* The status an order has now from its stored status and its authorizations' current
 * statuses (cs_acme_authz_status): pending → ready when every authz is valid, → invalid
 * when one is invalid, deactivated, expired or revoked, or when the order expired before
 * it was finalized. Static string. */
const char *cs_acme_order_status(const char *stored, int64_t expires, int64_t now,
				 const char *const *authz, size_t n);

/* Whether the names a CSR asks for (DNS SANs, IP SANs and its CN, duplicates ignored, a
 * CN counted as an IP when it parses as one) are exactly the order's identifiers.
 * NULL when they match, else a static detail for badCSR. */
const char *cs_acme_csr_match(const struct cs_acme_identifier *ids, size_t n,
			      const char *const *dns, size_t n_dns, const char *const *ips,
			      size_t n_ips, const char *cn);

/* The nonce window: nonces are 24 bytes, a counter, the issue time and a MAC under a key
 * drawn when the window starts, base64url. A bit per counter of the last
 * CS_ACME_NONCE_WINDOW says "issued and not yet used". A nonce is good once, for
 * CS_ACME_NONCE_TTL seconds, and only in the window (the key) that issued it. */
#define CS_ACME_NONCE_WINDOW (1u << 20)
#define CS_ACME_NONCE_TTL    (15 * 60)
struct cs_acme_nonces {
	bool ready;
	uint8_t key[32];
	uint64_t next; /* counter of the next nonce */
	uint8_t *bits; /* CS_ACME_NONCE_WINDOW bits, malloc'd */
};
/* A fresh nonce (NUL-terminated, 32 characters) into out. */
void cs_acme_nonce_new(struct cs_acme_nonces *w, int64_t now, char out[33]);
/* Redeem: true once for a nonce this window issued less than the TTL ago. */
bool cs_acme_nonce_redeem(struct cs_acme_nonces *w, const char *nonce, int64_t now);
/* Forget everything (new key at the next use). */
void cs_acme_nonces_reset(struct cs_acme_nonces *w);

/* ---- acme.c: the request envelope ---- */

/* One ACME request, as acme_begin leaves it for the endpoint. */
struct acme_req {
	cJSON *config;          /* config/acme with defaults */
	char base[600];         /* directory URL prefix, ends in '/': ".../v1/pki/roles/r/acme/" */
	char dir[300];          /* the directory's mount-relative prefix: "roles/r/acme/" */
	char *role;             /* the role orders are signed under, NULL: sign-verbatim */
	char *issuer;           /* issuer ref (path, role or "default") */
	struct cs_acme_jws jws; /* POST: the verified request */
	cJSON *account;         /* kid requests: the account */
	const char *account_id;
	EVP_PKEY *key; /* the key that signed the request */
};

/* Kinds of acme_begin. */
enum acme_auth {
	ACME_NONE, /* GET directory / new-nonce: no JWS */
	ACME_JWK,  /* new-account: jwk in the header */
	ACME_KID,  /* every other POST: kid naming a valid account */
	ACME_ANY,  /* revoke-cert: either */
};
/* What acme_begin and the helpers return when they already answered a problem: the
 * endpoint returns 0 then (the problem is the answer). Never a CS_E* code. */
#define ACME_DONE (-1)
/* Check config, directory, role and issuer, then (POST) the JWS: nonce, url, key,
 * signature, account. 0 to go on, ACME_DONE (a problem answered), or a storage error
 * (a CS_E* code). */
int acme_begin(struct cs_request *req, struct acme_req *a, enum acme_auth auth);
void acme_end(struct acme_req *a);
/* Answer a problem document (RFC 7807 / RFC 8555 §6.7) with a fresh Replay-Nonce, after
 * dropping the handler's writes. `type` is the short name ("malformed"). Returns 0. */
int acme_problem(struct cs_request *req, const struct acme_req *a, int status, const char *type,
		 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Answer `body` (taken) as JSON with `status`, a Replay-Nonce, the index Link and, when
 * location is non-NULL, a Location header. Returns 0. */
int acme_reply(struct cs_request *req, const struct acme_req *a, int status, cJSON *body,
	       const char *location);
/* A fresh nonce into Replay-Nonce. */
void acme_add_nonce(struct cs_request *req);
/* Time helpers: now in seconds and RFC 3339 text. */
int64_t acme_now(void);
void acme_time(int64_t t, char *out, size_t n);
/* A random id (base64url of 16 bytes, 22 characters) into out. */
void acme_id(char out[23]);
/* Storage key helpers: "acme/accounts/<id>/<kind>/<oid>". */
void acme_key(char *out, size_t n, const char *account, const char *kind, const char *id);
/* The role object (NULL for sign-verbatim) of this directory; CS_ENOTFOUND. */
int acme_role(struct cs_request *req, const struct acme_req *a, cJSON **out);
/* The directory of an internal request (no JWS, no HTTP): base and role from stored
 * data, for URLs in the challenge engine. */

/* ---- acme_order.c ---- */
int acme_new_order(struct cs_request *req);
int acme_orders(struct cs_request *req);
int acme_order(struct cs_request *req);
int acme_authz(struct cs_request *req);
int acme_challenge(struct cs_request *req);
int acme_finalize(struct cs_request *req);
int acme_cert(struct cs_request *req);
int acme_revoke(struct cs_request *req);
int acme_key_change(struct cs_request *req);
/* An authorization as RFC 8555 §7.1.4 shows it (status computed now). */
cJSON *acme_authz_view(const struct acme_req *a, const cJSON *z, int64_t now);

/* ---- acme_chal.c ---- */
/* After a challenge POST moved it to processing: validate it on the active node once this
 * request committed (a zero timer), and record the result with an internal request. */
void acme_chal_schedule(struct cs_request *req, const char *account, const char *authz_id,
			const char *type);
/* The periodic pick-up: challenges still processing that this node is not validating (a
 * leader change, a restart) are validated again. Bounded. */
int acme_chal_periodic(struct cs_request *req);
/* Per-core state: the in-flight checks. */
struct acme_state;
struct acme_state *acme_state(struct cs_core *core);
/* Cancel every check (seal, leadership loss). */
void acme_chal_reset(struct cs_core *core);

/* Vault's retry policy (OpenBao acme_challenge_engine.go): a failed check is retried up to
 * this many times, the n-th after n × 5 s; then the challenge is invalid. */
#define ACME_MAX_RETRIES 5

#endif
