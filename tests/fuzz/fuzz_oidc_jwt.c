/*
 * libFuzzer target for identity tokens as oidc/introspect receives them
 * (engines/identity_oidc.c cs_id_jwt_split): any caller may post any bytes as "token".
 *
 * Input: a token. Splitting must refuse (leaving nothing allocated) or give a JSON-object
 * header and claims, the signing input (a prefix of the token) and a signature. A split
 * token then goes through verification against a fixed public key: it must not crash,
 * and a made-up signature must not verify (finding one is not something a fuzzer does).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engines/identity_internal.h"
#include "lib/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* RFC 7515 appendix A.3's P-256 public key. */
static const char jwk_text[] =
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
    "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\",\"kid\":\"k\"}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cs_id_jwt j;
	int rc = cs_id_jwt_split((const char *)data, size, &j);
	if (rc) {
		if (rc != CS_EINVAL || j.header || j.claims || j.signing_input || j.sig)
			abort();
		return 0;
	}
	if (!cJSON_IsObject(j.header) || !cJSON_IsObject(j.claims) || !j.sig ||
	    strncmp(j.signing_input, (const char *)data, strlen(j.signing_input)) != 0)
		abort();
	cJSON *jwk = cJSON_Parse(jwk_text);
	if (cs_id_jwt_verify(&j, jwk) == 0)
		abort();
	cJSON_Delete(jwk);
	cs_id_jwt_free(&j);
	return 0;
}
