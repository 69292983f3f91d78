/*
 * The PKI secrets engine (mount type "pki"): a certificate authority with Vault's API
 * (OpenBao's builtin/logical/pki as the contract). Every certificate, CSR, CRL and OCSP
 * response is made by OpenSSL.
 *
 * Served: root/generate/:type, root/rotate/:type, root/replace, root/sign-self-issued,
 * issuer/:ref/sign-self-issued, keys/generate/:type, intermediate/generate/:type,
 * root/sign-intermediate,
 * issuer/:ref/sign-intermediate, intermediate/set-signed, issuers/import/bundle|cert,
 * config/ca, keys/import, issuers, issuer/:ref (read/update/delete),
 * issuer/:ref/json|der|pem, config/issuers, config/keys, keys, key/:ref, root (delete),
 * ca, ca/pem, ca_chain, cert/ca, cert/ca_chain, config/urls, config/cluster, roles,
 * roles/:name, issue/:role, sign/:role, sign-verbatim[/:role], issuer/:ref/issue|sign/:role,
 * issuer/:ref/sign-verbatim[/:role], cert/:serial, certs, certs/revoked, revoke,
 * revoke-with-key, config/crl, crl/rotate, crl/rotate-delta, crl, crl/pem, crl/delta,
 * crl/delta/pem, cert/crl, issuer/:ref/crl[/der|/pem], issuer/:ref/crl/delta[/der|/pem],
 * ocsp (POST application/ocsp-request) and ocsp/<base64> (GET).
 * engines/pki_internal.h tells how the engine is split and where it stores what.
 */
#ifndef CS_ENGINES_PKI_H
#define CS_ENGINES_PKI_H

#include <openssl/x509.h>

#include "server/backend.h"

extern const struct cs_backend cs_pki_backend;

/* Module registration (main). */
void cs_pki_register(void);

/*
 * Sign a CSR under a role (role_name, or NULL for sign-verbatim's rules) and an issuer
 * (issuer_ref, or NULL for the role's issuer_ref), as sign/:role does: the role's name
 * rules, TTLs and key checks apply, the certificate is stored unless the role says
 * no_store, and *data is Vault's sign answer (certificate, issuing_ca, ca_chain,
 * serial_number, expiration; a new object owned by the caller). `fields` are the
 * request-side fields (common_name, alt_names, ttl, ...; NULL: none). For the ACME
 * finalize, on the loop thread, inside req's transaction. 0 or the request's error.
 */
int cs_pki_sign_csr(struct cs_request *req, const char *role_name, const char *issuer_ref,
		    X509_REQ *csr, const cJSON *fields, cJSON **data);

#endif
