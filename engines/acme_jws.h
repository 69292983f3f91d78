/*
 * ACME's request envelope (RFC 8555 §6.2): a JWS in flattened JSON serialisation whose
 * protected header carries alg, nonce, url and exactly one of jwk (new-account,
 * revoke-cert by certificate key) or kid (every other request), and the JWK handling
 * around it (RFC 7517/7518, thumbprints per RFC 7638, external account binding per RFC
 * 8555 §7.3.4). Every byte comes from an unauthenticated client: parsing refuses what
 * RFC 8555 forbids before any key is touched, and verification maps each JWS algorithm to
 * one key type and digest (no "none", no MAC on requests).
 *
 * Nothing here keeps state: nonces, accounts and the URL check belong to the engine.
 */
#ifndef CS_ENGINES_ACME_JWS_H
#define CS_ENGINES_ACME_JWS_H

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest request body ACME accepts (a CSR for many names fits easily). */
#define CS_ACME_MAX_BODY (64 * 1024)

struct cs_acme_jws {
	char alg[8];      /* "RS256", "ES256", "EdDSA", ... */
	char *nonce;      /* protected "nonce" */
	char *url;        /* protected "url" */
	char *kid;        /* protected "kid" (account URL), or NULL */
	cJSON *jwk;       /* protected "jwk", or NULL */
	cJSON *header;    /* the whole protected header */
	uint8_t *payload; /* decoded, NUL-terminated; empty for POST-as-GET */
	size_t payload_len;
	cJSON *payload_json; /* the payload parsed (an object), NULL for POST-as-GET */
	char *signing_input; /* "<protected>.<payload>" as sent */
	uint8_t *sig;
	size_t sig_len;
};

/*
 * Parse a JWS request body. Returns 0, or CS_EINVAL with *why (a static string for an
 * ACME "malformed" problem, or "badSignatureAlgorithm:..." when the algorithm is not one
 * we accept) and *out left empty. `out` is freed with cs_acme_jws_free either way.
 */
int cs_acme_jws_parse(const char *body, size_t len, struct cs_acme_jws *out, const char **why);
void cs_acme_jws_free(struct cs_acme_jws *j);
/* The inner JWS of a key-change (RFC 8555 §7.3.5): as above, but it must have no nonce
 * (out->nonce is then ""). */
int cs_acme_jws_parse_inner(const char *body, size_t len, struct cs_acme_jws *out,
			    const char **why);

/*
 * A public key from a JWK: RSA (n, e; 2048 to 8192 bits), EC (P-256, P-384, P-521: x, y of
 * the curve's size, on the curve) or OKP Ed25519 (x). A JWK carrying private members is
 * refused. Returns 0 and *out (EVP_PKEY_free it), or CS_EINVAL with *why.
 */
int cs_acme_jwk_key(const cJSON *jwk, EVP_PKEY **out, const char **why);

/* Verify j's signature with `key`; the algorithm must suit the key (RS256..PS512 with RSA,
 * ES256/384/512 with P-256/384/521, EdDSA with Ed25519). 0 or CS_EINVAL with *why. */
int cs_acme_jws_verify(const struct cs_acme_jws *j, EVP_PKEY *key, const char **why);

/* RFC 7638 thumbprint of a public JWK (base64url of SHA-256 over its required members in
 * canonical form): out holds 44 bytes. 0 or CS_EINVAL. */
int cs_acme_jwk_thumbprint(const cJSON *jwk, char out[44]);

/* The canonical public JWK of `key` (the members a thumbprint covers), or NULL. */
cJSON *cs_acme_key_jwk(EVP_PKEY *key);

/*
 * External account binding: `eab` is the "externalAccountBinding" member of a
 * new-account payload (itself a flattened JWS), `outer` the request it came in. Checks
 * alg HS256, its url equal to the outer url, its payload equal to the outer jwk, and the
 * HMAC under `hmac_key` (constant-time). *kid_out points into eab (the EAB key id).
 * Returns 0 or CS_EINVAL with *why.
 */
int cs_acme_eab_verify(const cJSON *eab, const struct cs_acme_jws *outer, const uint8_t *hmac_key,
		       size_t key_len, const char **why);
/* The EAB key id an externalAccountBinding names, without verifying anything (to find
 * the key): NULL when absent or malformed. Malloc'd. */
char *cs_acme_eab_kid(const cJSON *eab);

#endif
