/*
 * libFuzzer target for the PKI engine's OCSP request parser (engines/pki_x509.c,
 * cs_pki_ocsp_parse), which reads the body of an unauthenticated POST to <mount>/ocsp or
 * the base64 in GET <mount>/ocsp/<request>.
 *
 * Input: the DER bytes. The parser must refuse (NULL, no CertID, no serial) or return a
 * request with its one CertID and a serial of 1..20 bytes without a leading zero byte
 * (the form our storage keys are built from). The request is re-encoded; when OpenSSL
 * parses that again (it need not: it keeps odd parameter encodings it cannot re-read,
 * corpus entry 8423...), the serial must be the same.
 */
#include <openssl/ocsp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engines/pki_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	OCSP_CERTID *id = (OCSP_CERTID *)1;
	uint8_t serial[20];
	size_t n = 99;
	OCSP_REQUEST *r = cs_pki_ocsp_parse(data, size, &id, serial, sizeof serial, &n);
	if (!r) {
		if (id || n)
			abort();
		return 0;
	}
	if (!id || n < 1 || n > sizeof serial || serial[0] == 0)
		abort();
	unsigned char *der = NULL;
	int len = i2d_OCSP_REQUEST(r, &der);
	if (len <= 0)
		abort();
	OCSP_CERTID *id2 = NULL;
	uint8_t serial2[20];
	size_t n2 = 0;
	OCSP_REQUEST *r2 = cs_pki_ocsp_parse(der, (size_t)len, &id2, serial2, sizeof serial2, &n2);
	if (r2 && (n2 != n || memcmp(serial, serial2, n) != 0))
		abort();
	char hex[64];
	cs_pki_serial_format(serial, n, ':', hex);
	if (strlen(hex) != n * 3 - 1)
		abort();
	OCSP_REQUEST_free(r2);
	OPENSSL_free(der);
	OCSP_REQUEST_free(r);
	return 0;
}
