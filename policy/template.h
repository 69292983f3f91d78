/*
 * Identity templates in policy paths ("secret/data/{{identity.entity.name}}/..."), with
 * Vault's ACL templating rules (OpenBao sdk/helper/identitytpl). Pure code: no storage,
 * no globals, thread-safe; the text is untrusted (policy authors), see
 * tests/fuzz/fuzz_template.c.
 *
 * Directives (whitespace inside the braces is trimmed):
 *   identity.entity.id | .name | .metadata.<key>
 *   identity.entity.aliases.<mount accessor>.id | .name | .metadata.<key> |
 *                                             .custom_metadata.<key>
 *   identity.groups.ids.<group id>.name | .id | .metadata.<key>
 *   identity.groups.names.<group name>.id | .name | .metadata.<key>
 * Anything else, an absent entity or group, an empty or missing value, or a value that
 * contains a blocked substring ("/", "*", "+": it would widen the path) makes the
 * expansion fail: the caller drops the path, which then never matches (Vault's rule).
 *
 * The identity is a JSON object (what the identity store's resolve hook returns):
 *   {"entity": {"id", "name", "metadata": {}, "aliases": [{"id", "name",
 *     "mount_accessor", "metadata": {}, "custom_metadata": {}}]},
 *    "groups": [{"id", "name", "metadata": {}}]}
 */
#ifndef CS_POLICY_TEMPLATE_H
#define CS_POLICY_TEMPLATE_H

#include <cjson/cJSON.h>
#include <stdbool.h>

/* Vault's write-time check: every "{{" closes with "}}" before the next "{{", and no "}}"
 * comes first. 0 (with *has set when the text holds a directive) or CS_EINVAL. */
int cs_template_validate(const char *text, bool *has);

/* Expand `text` against `ident` (NULL: no identity). 0 with *out (malloc'd, the caller
 * frees) or CS_EINVAL (unbalanced) or CS_ENOTFOUND (a directive without a usable value).
 * `errmsg` (may be NULL) gets Vault's reason. */
int cs_template_render(const char *text, const cJSON *ident, char **out, char *errmsg,
		       size_t errlen);

#endif
