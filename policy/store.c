/*
 * The policy store (see store.h): storage of policy texts and the parsed-policy cache.
 *
 * Flow of cs_policy_load: token entry "policies" → for each name read the stored text
 * (built-in text for an unwritten "default"; nothing for "root" or an unknown name, which
 * Vault ignores) → parsed policy from the cache (re-parsed when the text differs). A
 * policy text in storage that no longer parses (it was validated at write time, so only
 * corruption can do that) contributes nothing: fail closed.
 */
#include "policy/store.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"

#define KEY_PREFIX   CS_POLICY_KEY_PREFIX
#define MAX_NAME_LEN CS_POLICY_MAX_NAME
/* Past this many cached policies the cache starts over (a bound, not an LRU: policy
 * sets are small and a miss costs one parse). */
#define CACHE_MAX 1024

/* Vault's default policy, rule for rule, in our words. */
static const char default_text[] =
    "# Every token gets this policy unless created with no_default_policy.\n"
    "\n"
    "# A token may read its own properties...\n"
    "path \"auth/token/lookup-self\" {\n"
    "  capabilities = [\"read\"]\n"
    "}\n"
    "\n"
    "# ...extend its own lifetime...\n"
    "path \"auth/token/renew-self\" {\n"
    "  capabilities = [\"update\"]\n"
    "}\n"
    "\n"
    "# ...and end it.\n"
    "path \"auth/token/revoke-self\" {\n"
    "  capabilities = [\"update\"]\n"
    "}\n"
    "\n"
    "# A token may ask what it is allowed to do on a path.\n"
    "path \"sys/capabilities-self\" {\n"
    "  capabilities = [\"update\"]\n"
    "}\n"
    "\n"
    "# Its own identity entity, by id or by name (templated: only with an entity).\n"
    "path \"identity/entity/id/{{identity.entity.id}}\" {\n"
    "  capabilities = [\"read\"]\n"
    "}\n"
    "path \"identity/entity/name/{{identity.entity.name}}\" {\n"
    "  capabilities = [\"read\"]\n"
    "}\n"
    "\n"
    "# The resulting ACL of all its policies (for user interfaces).\n"
    "path \"sys/internal/ui/resultant-acl\" {\n"
    "  capabilities = [\"read\"]\n"
    "}\n"
    "\n"
    "# Renew a lease it knows the id of (old and new endpoint).\n"
    "path \"sys/renew\" {\n"
    "  capabilities = [\"update\"]\n"
    "}\n"
    "path \"sys/leases/renew\" {\n"
    "  capabilities = [\"update\"]\n"
    "}\n"
    "\n"
    "# Look up a lease it knows the id of.\n"
    "path \"sys/leases/lookup\" {\n"
    "  capabilities = [\"update\"]\n"
    "}\n"
    "\n"
    "# Its private cubbyhole.\n"
    "path \"cubbyhole/*\" {\n"
    "  capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\"]\n"
    "}\n"
    "\n"
    "# Response wrapping: wrap, inspect and unwrap.\n"
    "path \"sys/wrapping/wrap\" {\n"
    "  capabilities = [\"update\"]\n"
    "}\n"
    "path \"sys/wrapping/lookup\" {\n"
    "  capabilities = [\"update\"]\n"
    "}\n"
    "path \"sys/wrapping/unwrap\" {\n"
    "  capabilities = [\"update\"]\n"
    "}\n"
    "\n"
    "# General-purpose tools.\n"
    "path \"sys/tools/hash\" {\n"
    "  capabilities = [\"update\"]\n"
    "}\n"
    "path \"sys/tools/hash/*\" {\n"
    "  capabilities = [\"update\"]\n"
    "}\n"
    "\n"
    "# Status of a control group request, given its accessor.\n"
    "path \"sys/control-group/request\" {\n"
    "  capabilities = [\"update\"]\n"
    "}\n"
    "\n"
    "# The authorization endpoint of identity OIDC providers.\n"
    "path \"identity/oidc/provider/+/authorize\" {\n"
    "  capabilities = [\"read\", \"update\"]\n"
    "}\n";

const char *cs_policy_default_text(void)
{
	return default_text;
}

/* ------------------------------------------------------------------ cache */

struct cached {
	char *name;
	char *raw; /* the text the policy was parsed from */
	size_t raw_len;
	struct cs_policy *pol;
};

void cs_policy_cache_reset(struct cs_policy_cache *pc)
{
	for (size_t i = 0; i < pc->n; i++) {
		free(pc->v[i].name);
		free(pc->v[i].raw);
		cs_policy_free(pc->v[i].pol);
	}
	free(pc->v);
	pc->v = NULL;
	pc->n = pc->cap = 0;
}

/* The parsed policy for this exact text; NULL if it does not parse. The pointer stays
 * valid until the next cache_get for the same name with other text, or a reset. */
static const struct cs_policy *cache_get(struct cs_policy_cache *pc, const char *name,
					 const char *raw, size_t len)
{
	struct cached *c = NULL;
	for (size_t i = 0; i < pc->n; i++)
		if (strcmp(pc->v[i].name, name) == 0) {
			c = &pc->v[i];
			break;
		}
	if (c && c->raw_len == len && memcmp(c->raw, raw, len) == 0)
		return c->pol;
	char err[512];
	struct cs_policy *p = NULL;
	if (cs_policy_parse(raw, len, &p, err, sizeof err)) {
		cs_warn("policy: stored policy \"%s\" does not parse: %s", name, err);
		return NULL;
	}
	char *copy = malloc(len + 1);
	if (!copy)
		abort();
	memcpy(copy, raw, len);
	copy[len] = '\0';
	if (!c) {
		if (pc->n == pc->cap) {
			pc->cap = pc->cap ? pc->cap * 2 : 16;
			pc->v = realloc(pc->v, pc->cap * sizeof *pc->v);
			if (!pc->v)
				abort();
		}
		c = &pc->v[pc->n++];
		c->name = strdup(name);
		if (!c->name)
			abort();
	} else {
		free(c->raw);
		cs_policy_free(c->pol);
	}
	c->raw = copy;
	c->raw_len = len;
	c->pol = p;
	return p;
}

bool cs_policy_name_ok(const char *name)
{
	return *name && strlen(name) <= MAX_NAME_LEN && !strchr(name, '/');
}

int cs_policy_read_text(struct cs_txn *txn, const char *name, struct cs_buf *raw)
{
	if (!cs_policy_name_ok(name))
		return CS_ENOTFOUND;
	if (strcmp(name, "response-wrapping") == 0) {
		/* Built in and immutable (Vault's): what a wrapping token may do. */
		cs_buf_puts(raw, "path \"cubbyhole/response\" {\n"
				 "  capabilities = [\"create\", \"read\"]\n}\n"
				 "path \"sys/wrapping/unwrap\" {\n"
				 "  capabilities = [\"update\"]\n}\n");
		return 0;
	}
	char key[sizeof KEY_PREFIX + MAX_NAME_LEN];
	snprintf(key, sizeof key, KEY_PREFIX "%s", name);
	int rc = cs_txn_get(txn, key, raw);
	if (rc == CS_ENOTFOUND && strcmp(name, "default") == 0) {
		cs_buf_reset(raw);
		cs_buf_puts(raw, default_text);
		return 0;
	}
	return rc;
}

int cs_policy_load(struct cs_policy_cache *pc, struct cs_txn *txn, const cJSON *entry,
		   struct cs_polset *out)
{
	return cs_policy_load_names(pc, txn, cJSON_GetObjectItemCaseSensitive(entry, "policies"),
				    out);
}

int cs_policy_load_names(struct cs_policy_cache *pc, struct cs_txn *txn, const cJSON *names,
			 struct cs_polset *out)
{
	int total = cJSON_GetArraySize(names);
	out->n = 0;
	out->v = calloc((size_t)total + 1, sizeof *out->v);
	if (!out->v)
		abort();
	if (pc->n > CACHE_MAX)
		cs_policy_cache_reset(pc); /* before any pointer into the cache is taken */
	const cJSON *nm;
	cJSON_ArrayForEach(nm, names)
	{
		if (!cJSON_IsString(nm))
			continue;
		struct cs_buf raw = CS_BUF_INIT;
		int rc = cs_policy_read_text(txn, nm->valuestring, &raw);
		if (rc == CS_ENOTFOUND) {
			cs_buf_free(&raw);
			continue;
		}
		if (rc) {
			cs_buf_free_secure(&raw);
			free(out->v);
			out->v = NULL;
			return rc;
		}
		const struct cs_policy *p = cache_get(pc, nm->valuestring, raw.data, raw.len);
		cs_buf_free_secure(&raw);
		if (p)
			out->v[out->n++] = p;
	}
	return 0;
}

bool cs_policy_entry_has_root(const cJSON *entry)
{
	const cJSON *p;
	cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(entry, "policies"))
	{
		if (cJSON_IsString(p) && strcmp(p->valuestring, "root") == 0)
			return true;
	}
	return false;
}
