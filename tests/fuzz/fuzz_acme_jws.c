/*
 * libFuzzer target for the ACME request envelope (engines/acme_jws.c): every ACME
 * request body reaches cs_acme_jws_parse before anything authenticates it.
 *
 * Input: a request body. Parsing must refuse with a message and leave nothing behind, or
 * succeed with the members RFC 8555 requires. A parsed JWK then goes through key
 * construction, signature verification and the thumbprint, and an externalAccountBinding
 * in the payload through the EAB check; none may crash, and a made-up signature must not
 * verify (finding one that does is not something a fuzzer does).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engines/acme_jws.h"
#include "lib/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cs_acme_jws j;
	const char *why = NULL;
	int rc = cs_acme_jws_parse((const char *)data, size, &j, &why);
	if (rc) {
		if (rc != CS_EINVAL || !why || j.header || j.payload)
			abort();
		cs_acme_jws_free(&j);
		return 0;
	}
	if (!j.nonce || !j.url || !j.alg[0] || (!j.kid == !j.jwk) || !j.signing_input)
		abort();
	if (j.jwk) {
		EVP_PKEY *k = NULL;
		if (cs_acme_jwk_key(j.jwk, &k, &why) == 0) {
			if (cs_acme_jws_verify(&j, k, &why) == 0)
				abort();
			char tp[44];
			if (cs_acme_jwk_thumbprint(j.jwk, tp))
				abort();
			EVP_PKEY_free(k);
		} else if (k || !why) {
			abort();
		}
	}
	const cJSON *eab = cJSON_GetObjectItemCaseSensitive(j.payload_json,
							     "externalAccountBinding");
	if (eab) {
		free(cs_acme_eab_kid(eab));
		static const uint8_t key[32] = {1};
		if (cs_acme_eab_verify(eab, &j, key, sizeof key, &why) == 0)
			abort();
	}
	cs_acme_jws_free(&j);
	return 0;
}
