/*
 * The PKI engine's internals, shared by its files (engines/pki.h is the public side).
 *
 * Split by concern:
 *   pki_util.c    pure rules with no storage and no OpenSSL object: Vault's name matching
 *                 (domains, globs, wildcards, localhost, hostnames), the NotAfter
 *                 computation and its capping to the issuer, serial formatting, the CRL
 *                 number counter. Unit-tested directly (tests/unit/test_pki.c).
 *   pki_x509.c    everything OpenSSL builds or parses: keys, certificates, CSRs, CRLs,
 *                 PEM/DER encodings, chains. No storage.
 *   pki_store.c   the mount's storage: keys, issuers, the default issuer, config entries,
 *                 certificates, revocation entries; a CA key is decoded into locked memory
 *                 only for the signature it makes.
 *   pki_ca.c      issuer and key endpoints (root/intermediate generation, imports, reads).
 *   pki_manage.c  root/rotate, root/replace, root/sign-self-issued, keys/generate.
 *   pki_issue.c   roles, and issuance (issue/sign/sign-verbatim) through cs_pki_sign_cert.
 *   pki_crl.c     revocation, CRLs, OCSP, cert reads, the generate_lease revoke.
 *   pki_tidy.c    tidy, tidy-status, tidy-cancel, config/auto-tidy, periodic upkeep.
 *   pki_cache.c   decoded issuers (record, certificate, chain, private key) kept between
 *                 requests, checked against the stored bytes on every use.
 *   pki.c         the path table.
 *
 * Storage layout under the mount's view (every value behind the barrier):
 *   config/key/<id>      {"id","name","type","bits","private_key": PKCS#8 DER base64}
 *   config/issuer/<id>   {"id","name","key_id","certificate": PEM,"manual_chain":[ids],
 *                         "leaf_not_after_behavior","usage","crl_number","delta_base",
 *                         "revocation_signature_algorithm"}
 *   config/issuers       {"default": id, "default_follows_latest_issuer": bool}
 *   config/keys          {"default": id}
 *   config/urls|cluster|crl   Vault's fields
 *   roles/<name>         the role's fields
 *   certs/<serial>       {"der": base64, "issuer_id", "not_after"}  (serial: aa-bb-..)
 *   revoked/<serial>     {"der","issuer_id","revocation_time","revocation_time_utc"}
 *   crls/<issuer id>     {"der","number","this_update","next_update"}, and
 *   crls/<issuer id>-delta for the delta CRL.
 *   tidy/state           the current or last tidy run (pki_tidy.c)
 */
#ifndef CS_ENGINES_PKI_INTERNAL_H
#define CS_ENGINES_PKI_INTERNAL_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/backend.h"

/* ---- pki_util.c: pure rules ---- */

/* The role options that decide which DNS names / email addresses / CNs pass. */
struct cs_pki_name_rules {
	bool allow_any_name;
	bool allow_localhost;
	bool allow_bare_domains;
	bool allow_subdomains;
	bool allow_glob_domains;
	bool allow_wildcard_certificates;
	bool enforce_hostnames;
	const char *const *allowed_domains;
	size_t n_allowed_domains;
};

/* A role's name rules (pki_issue.c); allowed_domains are appended to `domains`, which the
 * rules point into (free it after use). */
struct cs_pki_name_rules cs_pki_role_rules(const cJSON *role, struct cs_strv *domains);
/* Vault's validateNames: NULL when every name passes, else the first refused one. */
const char *cs_pki_check_names(const struct cs_pki_name_rules *r, const char *const *names,
			       size_t n);
/* One name (as above for a single name). */
bool cs_pki_name_ok(const struct cs_pki_name_rules *r, const char *name);
/* A host name under Vault's hostnameRegex and DNS length limits (a leading "*." allowed). */
bool cs_pki_hostname_ok(const char *s);
/* ryanuber/go-glob (Vault's glob): '*' matches any run of characters, case-sensitive. */
bool cs_pki_glob(const char *pattern, const char *s);

/* What happens to a leaf whose NotAfter passes the issuer's (Vault's values). */
enum cs_pki_leaf_behavior { CS_PKI_LEAF_ERR, CS_PKI_LEAF_TRUNCATE, CS_PKI_LEAF_PERMIT };
int cs_pki_leaf_behavior_parse(const char *s, enum cs_pki_leaf_behavior *out);
const char *cs_pki_leaf_behavior_name(enum cs_pki_leaf_behavior b);

/* Inputs of getCertificateNotAfter: every time in Unix seconds, every TTL in seconds (0:
 * unset). `not_after` (0: unset) is the request's explicit RFC 3339 not_after. */
struct cs_pki_ttl_in {
	int64_t now;
	int64_t ttl;       /* request */
	int64_t not_after; /* request, absolute */
	int64_t role_ttl, role_max_ttl;
	int64_t sys_default_ttl, sys_max_ttl; /* the mount's */
	int64_t issuer_not_after;             /* 0: no issuer (self-signed root) */
	enum cs_pki_leaf_behavior behavior;
};
/* The leaf's NotAfter in *out; *warning (static text, or NULL) when the TTL was capped to
 * the max TTL. CS_EINVAL with Vault's message in err (errlen bytes) when refused. */
int cs_pki_not_after(const struct cs_pki_ttl_in *in, int64_t *out, const char **warning, char *err,
		     size_t errlen);

/* RFC 3339 (Go's time.RFC3339) to Unix seconds. 0 or CS_EINVAL. */
int cs_pki_parse_rfc3339(const char *s, int64_t *out);

/* Serial numbers: Vault's text form is lowercase hex byte pairs joined by ':'; storage
 * keys use '-'. out holds 3 * n bytes. */
void cs_pki_serial_format(const uint8_t *b, size_t n, char sep, char *out);
/* Parse a serial in either form ("0a:1b", "0a-1b", or plain hex "0a1b"), into at most
 * `cap` bytes, leading zero bytes dropped (as big.Int.Bytes()). Returns the length, or -1
 * when it is not a serial. */
int cs_pki_serial_parse(const char *s, uint8_t *out, size_t cap);
/* The storage form ("aa-bb-...") of a serial written in any accepted form, into out
 * (>= 64 bytes). false when invalid. */
bool cs_pki_serial_key(const char *s, char *out, size_t outlen);

/* CRL numbering: complete and delta CRLs share one increasing counter per issuer (RFC 5280
 * §5.2.3); a delta CRL names the complete CRL it extends (§5.2.4). */
struct cs_pki_crl_counter {
	int64_t next;          /* number the next CRL gets; starts at 1 */
	int64_t last_complete; /* number of the newest complete CRL; 0: none yet */
};
/* Number for a new complete CRL (advances the counter). */
int64_t cs_pki_crl_next_complete(struct cs_pki_crl_counter *c);
/* Number for a new delta CRL, and in *base the complete CRL it is relative to; -1 when
 * there is no complete CRL yet to be a delta of. */
int64_t cs_pki_crl_next_delta(struct cs_pki_crl_counter *c, int64_t *base);

/* ---- pki_x509.c: OpenSSL ---- */

enum cs_pki_key_type { CS_PKI_KEY_RSA, CS_PKI_KEY_EC, CS_PKI_KEY_ED25519 };
/* "rsa" / "ec" / "ed25519" (and "any" where roles allow it: returns 3). -1 otherwise. */
int cs_pki_key_type_parse(const char *s);
const char *cs_pki_key_type_name(enum cs_pki_key_type t);
/* Vault's key_bits rules: 0 → the default (2048, 256); RSA 2048/3072/4096 (and 8192),
 * EC 224/256/384/521, ed25519 ignores bits. CS_EINVAL + message otherwise. */
int cs_pki_key_bits_check(enum cs_pki_key_type t, int *bits, char *err, size_t errlen);
/* A new key (slow for RSA: call on a pool thread). NULL on failure. */
EVP_PKEY *cs_pki_keygen(enum cs_pki_key_type t, int bits);
/* The key's type and size. */
int cs_pki_key_info(const EVP_PKEY *pk, enum cs_pki_key_type *t, int *bits);
/* PKCS#8 DER of a private key, malloc'd (caller wipes and frees). */
int cs_pki_key_der(EVP_PKEY *pk, uint8_t **der, size_t *len);
/* Key from DER (PKCS#8 or traditional). */
EVP_PKEY *cs_pki_key_from_der(const uint8_t *der, size_t len);
/* Private key PEM: "pem" → traditional (PKCS#1 / SEC 1, PKCS#8 for ed25519), "pkcs8" →
 * PKCS#8, "der" → base64 DER. malloc'd string. */
char *cs_pki_key_encode(EVP_PKEY *pk, const char *format);
/* "rsa", "ec", "ed25519" as Vault names private_key_type. */
const char *cs_pki_key_type_of(const EVP_PKEY *pk);

/* PEM of one certificate / a CSR / a CRL (malloc'd, no trailing newline as Vault). */
char *cs_pki_cert_pem(X509 *x);
char *cs_pki_csr_pem(X509_REQ *r);
char *cs_pki_crl_pem(X509_CRL *c);
/* DER (malloc'd) of a certificate / CRL. */
uint8_t *cs_pki_cert_der(X509 *x, size_t *len);
uint8_t *cs_pki_crl_der(X509_CRL *c, size_t *len);
/* Parse every PEM block of `pem`: certificates, private keys (any form), CSRs. Arrays are
 * malloc'd and owned by the caller (cs_pki_bundle_free). CS_EINVAL with a message. */
struct cs_pki_bundle {
	X509 **certs;
	size_t n_certs;
	EVP_PKEY **keys;
	size_t n_keys;
};
int cs_pki_bundle_parse(const char *pem, struct cs_pki_bundle *b, char *err, size_t errlen);
void cs_pki_bundle_free(struct cs_pki_bundle *b);
X509 *cs_pki_cert_from_pem(const char *pem);
X509 *cs_pki_cert_from_der(const uint8_t *der, size_t len);
X509_REQ *cs_pki_csr_from_pem(const char *pem);
/* NotAfter of a certificate in Unix seconds. */
int64_t cs_pki_cert_not_after(const X509 *x);
/* The serial of a certificate, Vault's text (aa:bb:..), into out (>= 64 bytes). */
void cs_pki_cert_serial(const X509 *x, char sep, char *out, size_t outlen);
/* Whether the certificate's public key is `pk`'s. */
bool cs_pki_cert_key_match(X509 *x, EVP_PKEY *pk);
/* Whether `child` was issued by `parent` (names match and the signature verifies). */
bool cs_pki_cert_issued_by(X509 *child, X509 *parent);

/* What a new certificate holds. Strings are borrowed. */
struct cs_pki_cert_spec {
	X509_NAME *subject;    /* borrowed */
	EVP_PKEY *pubkey;      /* the subject's key (a private key works too) */
	X509 *issuer;          /* NULL: self-signed (issuer = subject) */
	EVP_PKEY *signer;      /* the issuer's private key */
	const uint8_t *serial; /* big-endian, 1..20 bytes */
	size_t serial_len;
	int64_t not_before, not_after;
	bool is_ca;
	int max_path_len; /* -1: unlimited */
	bool basic_constraints_non_ca;
	/* SANs */
	const char *const *dns;
	size_t n_dns;
	const char *const *emails;
	size_t n_emails;
	const char *const *ips;
	size_t n_ips;
	const char *const *uris;
	size_t n_uris;
	const char *const *other_sans; /* "oid;UTF8:value" */
	size_t n_other_sans;
	/* Key usage (X509v3_KU_* bits, 0: none) and extended key usage (NIDs). */
	unsigned key_usage;
	const int *ext_key_usage;
	size_t n_ext_key_usage;
	const char *const *ext_key_usage_oids;
	size_t n_ext_key_usage_oids;
	/* AIA / CDP URLs (config/urls). */
	const char *const *issuing_certificates;
	size_t n_issuing_certificates;
	const char *const *crl_distribution_points;
	size_t n_crl_distribution_points;
	const char *const *ocsp_servers;
	size_t n_ocsp_servers;
	int signature_bits; /* 0: by key (SHA-256, or the curve's hash) */
	bool use_pss;
};
/* Build and sign a certificate (OpenSSL). NULL with a message in err. */
X509 *cs_pki_cert_build(const struct cs_pki_cert_spec *s, char *err, size_t errlen);
/* root/sign-self-issued: a copy of the self-issued CA certificate `cert` (subject, key,
 * serial, validity and extensions kept) issued by `issuer`: its issuer name and Authority
 * Key Identifier, the AIA / CRL URLs of `urls` (its issuing_certificates,
 * crl_distribution_points, ocsp_servers), signed with `signer` (hash: the certificate's
 * own SHA-384/512 when keep_hash, else the signer's default). NULL with a message. */
X509 *cs_pki_cert_resign(X509 *cert, X509 *issuer, EVP_PKEY *signer,
			 const struct cs_pki_cert_spec *urls, bool keep_hash, char *err,
			 size_t errlen);
/* A CSR for `subject` signed by `key`, with the SANs of `s` (for intermediates). */
X509_REQ *cs_pki_csr_build(const struct cs_pki_cert_spec *s, EVP_PKEY *key, char *err,
			   size_t errlen);
/* The subject alternative names of a CSR: DNS names, emails, IPs (text), URIs, other
 * names ("oid;UTF8:value"). Appends to the strvs. */
void cs_pki_csr_sans(X509_REQ *r, struct cs_strv *dns, struct cs_strv *emails, struct cs_strv *ips,
		     struct cs_strv *uris, struct cs_strv *others);
/* A subject from the fields country, organization, ou, locality, province,
 * street_address, postal_code of `src` (role or request), then serial_number and CN. */
X509_NAME *cs_pki_subject(const cJSON *src, const char *cn, const char *serial_number);
/* The CN of a name (malloc'd), or NULL. */
char *cs_pki_name_cn(const X509_NAME *n);

/* One revoked certificate for a CRL. */
struct cs_pki_revoked {
	uint8_t serial[20];
	size_t serial_len;
	int64_t when;
};
/* A CRL of `issuer` signed by `key`: number, validity [now, now + expiry), delta_base > 0
 * makes it a delta CRL (Delta CRL Indicator). NULL on failure. */
X509_CRL *cs_pki_crl_build(X509 *issuer, EVP_PKEY *key, const struct cs_pki_revoked *rev, size_t n,
			   int64_t number, int64_t delta_base, int64_t now, int64_t expiry);

/* An OCSP request (RFC 6960 §4.1) from untrusted bytes: exactly one DER request, no
 * trailing bytes, exactly one certificate asked about (as Vault answers). Returns the
 * request (the caller frees it with OCSP_REQUEST_free), *id its CertID (borrowed from it)
 * and the serial asked about (big-endian, leading zeros dropped, at most `cap` bytes) in
 * serial / *serial_len; NULL when malformed. */
struct ocsp_request_st;
struct ocsp_cert_id_st;
struct ocsp_request_st *cs_pki_ocsp_parse(const uint8_t *der, size_t len,
					  struct ocsp_cert_id_st **id, uint8_t *serial, size_t cap,
					  size_t *serial_len);

/* ---- pki_store.c: the mount's storage ---- */

/* The issuer id for a reference: "default", an id or a name. CS_ENOTFOUND with Vault's
 * message otherwise. *out is malloc'd. */
int cs_pki_resolve_issuer(struct cs_request *req, const char *ref, char **out);
int cs_pki_resolve_key(struct cs_request *req, const char *ref, char **out);
int cs_pki_issuer_load(struct cs_request *req, const char *id, cJSON **out);
int cs_pki_issuer_save(struct cs_request *req, const cJSON *iss);
int cs_pki_key_load(struct cs_request *req, const char *id, cJSON **out);
/* The issuer's private key, decoded through locked memory; the caller frees it with
 * EVP_PKEY_free. CS_EINVAL when the issuer has no key. */
int cs_pki_issuer_signer(struct cs_request *req, const cJSON *iss, EVP_PKEY **out);
/* Store a key (`name` may be ""), or find it if the same key exists: *id (malloc'd),
 * *existed. */
int cs_pki_key_store(struct cs_request *req, EVP_PKEY *pk, const char *name, char **id,
		     bool *existed);
/* Store an issuer certificate (and link it to a stored key that matches): *id, *existed.
 * Becomes the default when there is none. */
int cs_pki_issuer_store(struct cs_request *req, X509 *x, const char *name, char **id,
			bool *existed);
/* The issuer's certificate. */
X509 *cs_pki_issuer_cert(const cJSON *iss);
/* Its chain as PEMs (itself first, then its parents among the stored issuers, or its
 * manual_chain). A new array. (pki_cache.c) */
cJSON *cs_pki_issuer_chain(struct cs_request *req, const cJSON *iss);
/* A config entry (config/<name>) or an empty object. */
cJSON *cs_pki_config(struct cs_request *req, const char *name);
/* Whether an issuer's name is valid and free (ignoring issuer `self`). */
int cs_pki_check_issuer_name(struct cs_request *req, const char *name, const char *self);
/* Store an issued certificate under certs/<serial>. */
int cs_pki_cert_store(struct cs_request *req, X509 *x, const char *issuer_id);
/* A fresh random serial (20 bytes, positive) unique among stored certificates. */
int cs_pki_new_serial(struct cs_request *req, uint8_t serial[20]);
/* Rebuild the CRLs of issuer `id` (complete and, when enabled, delta). */
int cs_pki_crl_rebuild(struct cs_request *req, const char *issuer_id, bool delta_only);
/* Rebuild every issuer's CRL. */
int cs_pki_crl_rebuild_all(struct cs_request *req, bool delta_only);
/* What an asynchronous rebuild does for one issuer. */
enum { CS_PKI_CRL_NONE, CS_PKI_CRL_COMPLETE /* and its delta when enabled */, CS_PKI_CRL_DELTA };
typedef int (*cs_pki_crl_mode_fn)(struct cs_request *req, const char *issuer_id, void *arg);
/* Rebuild, as `mode` says for each issuer with a key, without holding the loop: the
 * revocation records are read in batches between loop turns, the CRLs built and signed
 * on the worker pool, stored by the last resume (pki_crl.c). Only from a handler that has
 * written nothing (its transaction is given up). Returns CS_EASYNC (or an error); the
 * request's answer is {"success": true}. */
int cs_pki_crl_rebuild_async(struct cs_request *req, cs_pki_crl_mode_fn mode, void *arg);

/* Helpers for JSON fields. */
const char *cs_pki_jstr(const cJSON *o, const char *k, const char *def);
int64_t cs_pki_jint(const cJSON *o, const char *k, int64_t def);
bool cs_pki_jbool(const cJSON *o, const char *k, bool def);
/* The request field `name` as a list of strings (array or comma-separated), appended. */
void cs_pki_req_list(struct cs_request *req, const char *name, struct cs_strv *out);
void cs_pki_json_list(const cJSON *o, const char *name, struct cs_strv *out);

/* config/urls as certificate extensions (pki_ca.c). */
struct pki_urls {
	struct cs_strv issuing, crl, ocsp;
};
void pki_urls_load(struct cs_request *req, struct pki_urls *u);
void pki_urls_free(struct pki_urls *u);
void pki_urls_spec(struct cs_pki_cert_spec *s, const struct pki_urls *u);

/* ---- pki_cache.c: decoded issuers and their keys, kept between requests ---- */

/* An issuer as the cache hands it out: every member owned by the holder (duplicated or
 * up_ref'd), so it outlives later changes of the cache; release with
 * cs_pki_issuer_ref_free. */
struct cs_pki_issuer_ref {
	cJSON *rec;        /* the stored record */
	X509 *cert;        /* its certificate */
	int64_t not_after; /* of cert, Unix seconds */
	EVP_PKEY *signer;  /* with CS_PKI_ISSUER_SIGNER: its private key; NULL when none */
	cJSON *chain;      /* with CS_PKI_ISSUER_CHAIN: PEMs, itself first */
};
#define CS_PKI_ISSUER_SIGNER 1u
#define CS_PKI_ISSUER_CHAIN  2u
/* Issuer `id` of the request's mount, current as of the request's transaction (the cache
 * checks the raw stored bytes of every issuer and of the key: never stale). Loop thread.
 * CS_ENOTFOUND when there is no such issuer; the key's absence is not an error here
 * (signer NULL) unless its record is missing. */
int cs_pki_issuer_get(struct cs_request *req, const char *id, unsigned what,
		      struct cs_pki_issuer_ref *out);
void cs_pki_issuer_ref_free(struct cs_pki_issuer_ref *r);
/* The id (malloc'd) of the issuer with a key whose name and key hashes an OCSP CertID
 * carries; CS_ENOTFOUND when none. */
struct ocsp_cert_id_st;
int cs_pki_issuer_by_certid(struct cs_request *req, struct ocsp_cert_id_st *cid, char **id);
/* Drop the request mount's cached issuers and keys (after writing any of them). */
void cs_pki_cache_forget(struct cs_request *req);
/* Drop everything (the backend's reset: seal, leadership loss). */
void cs_pki_cache_reset(struct cs_core *core);
/* For tests and the bench: issuer-set checks that hit and missed, keys decoded. */
void cs_pki_cache_stats(struct cs_core *core, uint64_t *hits, uint64_t *misses,
			uint64_t *key_loads);

/* ---- pki_issue.c: the one issuance function ---- */

/*
 * What one issuance asks for: issue/:role (key set), sign/:role and ACME finalize (csr
 * set), sign-verbatim (verbatim), root/sign-intermediate (is_ca). `role` is the role's
 * stored object (or a synthesized one); `fields` the request's (common_name, alt_names,
 * ip_sans, uri_sans, other_sans, ttl, not_after, exclude_cn_from_sans, serial_number,
 * format, private_key_format). `issuer_ref` NULL → the role's issuer_ref.
 */
struct cs_pki_sign_input {
	const cJSON *role;
	const cJSON *fields;
	const char *issuer_ref;
	X509_REQ *csr;
	EVP_PKEY *key;
	bool verbatim;
	bool is_ca;
	int max_path_len;
	bool subject_from_csr;
	bool check_only; /* validate everything a signature needs, sign nothing */
};
/* Check against the role, sign with the issuer's key, store (unless the role's no_store)
 * and answer Vault's issue/sign data in *data (a new object). 0 or the request's error. */
int cs_pki_sign_cert(struct cs_request *req, const struct cs_pki_sign_input *in, cJSON **data);

/* ---- acme*.c: the ACME server (engines/acme_internal.h) ---- */
/* Its rows, searched before the PKI's own. */
extern const struct cs_path_table cs_pki_acme_tables[1];
/* The engine's reset hook: ACME nonces and in-flight validations die with the term. */
void cs_pki_acme_reset(struct cs_core *core);
/* The engine's periodic function: pki_periodic, then pending ACME validations. */
int cs_pki_acme_periodic(struct cs_request *req);

/* ---- handlers ---- */
int pki_root_generate(struct cs_request *req);
int pki_intermediate_generate(struct cs_request *req);
int pki_root_sign_intermediate(struct cs_request *req);
int pki_set_signed(struct cs_request *req);
int pki_import_bundle(struct cs_request *req);
int pki_keys_import(struct cs_request *req);
int pki_issuers_list(struct cs_request *req);
int pki_issuer_read(struct cs_request *req);
int pki_issuer_update(struct cs_request *req);
int pki_issuer_delete(struct cs_request *req);
int pki_issuer_raw(struct cs_request *req);
int pki_config_issuers_read(struct cs_request *req);
int pki_config_issuers_write(struct cs_request *req);
int pki_config_keys_read(struct cs_request *req);
int pki_config_keys_write(struct cs_request *req);
int pki_keys_list(struct cs_request *req);
int pki_key_read(struct cs_request *req);
int pki_key_update(struct cs_request *req);
int pki_key_delete(struct cs_request *req);
int pki_root_delete(struct cs_request *req);
int pki_root_rotate(struct cs_request *req);
int pki_root_replace(struct cs_request *req);
int pki_sign_self_issued(struct cs_request *req);
int pki_keys_generate(struct cs_request *req);
int pki_ca_raw(struct cs_request *req);
int pki_cert_ca_chain(struct cs_request *req);
int pki_config_urls_read(struct cs_request *req);
int pki_config_urls_write(struct cs_request *req);
int pki_config_cluster_read(struct cs_request *req);
int pki_config_cluster_write(struct cs_request *req);

int pki_roles_list(struct cs_request *req);
int pki_role_read(struct cs_request *req);
int pki_role_write(struct cs_request *req);
int pki_role_delete(struct cs_request *req);
int pki_issue(struct cs_request *req);
int pki_sign(struct cs_request *req);
int pki_sign_verbatim(struct cs_request *req);

int pki_cert_read(struct cs_request *req);
int pki_certs_list(struct cs_request *req);
int pki_certs_revoked_list(struct cs_request *req);
int pki_revoke(struct cs_request *req);
int pki_revoke_with_key(struct cs_request *req);
int pki_config_crl_read(struct cs_request *req);
int pki_config_crl_write(struct cs_request *req);
int pki_crl_rotate(struct cs_request *req);
int pki_crl_rotate_delta(struct cs_request *req);
int pki_crl_raw(struct cs_request *req);
int pki_ocsp(struct cs_request *req);
int pki_lease_revoke(struct cs_request *req);
int pki_tidy(struct cs_request *req);
int pki_tidy_status(struct cs_request *req);
int pki_tidy_cancel(struct cs_request *req);
int pki_auto_tidy_read(struct cs_request *req);
int pki_auto_tidy_write(struct cs_request *req);
int pki_periodic(struct cs_request *req);

#endif
