/*
 * cs_req_generate_password (server/backend.h): Vault's default password policy, and the
 * way to the module that stores named ones. Selection is unbiased (rejection sampling over
 * random bytes), so every character of the charset is equally likely.
 */
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/util.h"
#include "server/backend.h"
#include "server/core.h"

#define DEFAULT_LEN 20

static const char lower[] = "abcdefghijklmnopqrstuvwxyz";
static const char upper[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
static const char digits[] = "0123456789";
static const char all[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-";

/* A uniformly random index below n (n <= 256). */
static size_t pick(size_t n)
{
	unsigned char b;
	size_t limit = 256 - 256 % n;
	do
		cs_random(&b, 1);
	while (b >= limit);
	return b % n;
}

static bool has_any(const char *s, const char *set)
{
	return strpbrk(s, set) != NULL;
}

void cs_password_default(char *out, size_t len)
{
	/* As Vault's generator: draw the whole string from the charset and draw again until
	 * every rule holds (with 20 characters, about one draw in three is refused). */
	do {
		for (size_t i = 0; i < len; i++)
			out[i] = all[pick(sizeof all - 1)];
		out[len] = '\0';
	} while (!has_any(out, lower) || !has_any(out, upper) || !has_any(out, digits) ||
		 !strchr(out, '-'));
}

void cs_core_set_password_policies(struct cs_core *core, const struct cs_password_policies *p)
{
	core->passwords = *p;
}

int cs_req_generate_password(struct cs_request *req, const char *policy, char **out)
{
	*out = NULL;
	if (policy && *policy) {
		int rc = req->core->passwords.generate
			     ? req->core->passwords.generate(req, policy, out)
			     : CS_ENOTFOUND;
		if (rc == CS_ENOTFOUND)
			return cs_req_error(req, CS_EINVAL, "password policy \"%s\" not found",
					    policy);
		return rc;
	}
	char *p = malloc(DEFAULT_LEN + 1);
	if (!p)
		return CS_ENOMEM;
	cs_password_default(p, DEFAULT_LEN);
	*out = p;
	return 0;
}
