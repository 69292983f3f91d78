/*
 * libFuzzer target for the tls-alpn-01 certificate check (engines/acme_alpn.c): the
 * certificate comes from whatever host the identifier points at, before anything about
 * it is trusted.
 *
 * Input: one byte choosing the identifier (a DNS name, an IPv4 or an IPv6 address), then
 * a DER certificate. OpenSSL parses it (d2i_X509); cs_acme_alpn_check_cert must return 0
 * or CS_EINVAL with a detail text, never crash or leak; a certificate it accepts must
 * carry the acmeIdentifier extension and be self-signed.
 */
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engines/acme_validate_internal.h"
#include "lib/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const idents[] = {"a.example.test", "127.0.0.1", "::1"};
	static const char ka[] = "tok123.thumbprint_of_the_account_key";
	if (size < 1)
		return 0;
	const char *ident = idents[data[0] % 3];
	const unsigned char *p = data + 1;
	X509 *x = d2i_X509(NULL, &p, (long)(size - 1));
	if (!x)
		return 0;
	uint8_t digest[32];
	SHA256((const uint8_t *)ka, strlen(ka), digest);
	char detail[256] = "";
	int rc = cs_acme_alpn_check_cert(x, ident, digest, detail, sizeof detail);
	if (rc != 0 && (rc != CS_EINVAL || !detail[0]))
		abort();
	if (rc == 0) {
		ASN1_OBJECT *oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
		if (X509_get_ext_by_OBJ(x, oid, -1) < 0 || X509_verify(x, X509_get0_pubkey(x)) != 1)
			abort();
		ASN1_OBJECT_free(oid);
	}
	X509_free(x);
	return 0;
}
