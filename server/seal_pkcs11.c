/* placeholder until the PKCS#11 seal lands */
#include <stdio.h>

#include "lib/err.h"
#include "server/seal_wrap.h"

int cs_seal_pkcs11_open(struct cs_autoseal *s, char *errmsg, size_t errlen)
{
	(void)s;
	snprintf(errmsg, errlen, "seal \"pkcs11\" is not available yet");
	return CS_EUNSUPPORTED;
}
