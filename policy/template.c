/*
 * Identity templates (see template.h). The text is cut the way Vault's PopulateString
 * cuts it, so both accept and refuse the same strings: pieces between "{{" markers, and
 * in every piece after the first exactly one "}}" that ends the directive.
 */
#include "policy/template.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"

/* How many non-overlapping `sep` occur in s[0..len). */
static size_t count_sep(const char *s, size_t len, const char *sep)
{
	size_t n = 0, sl = strlen(sep);
	for (size_t i = 0; i + sl <= len;) {
		if (memcmp(s + i, sep, sl) == 0) {
			n++;
			i += sl;
		} else {
			i++;
		}
	}
	return n;
}

/* Position of the first `sep` in s[0..len), or len. */
static size_t find_sep(const char *s, size_t len, const char *sep)
{
	size_t sl = strlen(sep);
	for (size_t i = 0; i + sl <= len; i++)
		if (memcmp(s + i, sep, sl) == 0)
			return i;
	return len;
}

int cs_template_validate(const char *text, bool *has)
{
	*has = false;
	size_t len = strlen(text);
	size_t open = find_sep(text, len, "{{");
	if (count_sep(text, open, "}}"))
		return CS_EINVAL;
	const char *p = text + open;
	const char *end = text + len;
	while (p < end) {
		p += 2; /* past "{{" */
		size_t piece = find_sep(p, (size_t)(end - p), "{{");
		if (count_sep(p, piece, "}}") != 1)
			return CS_EINVAL;
		*has = true;
		p += piece;
	}
	return 0;
}

__attribute__((format(printf, 3, 4))) static int miss(char *errmsg, size_t errlen, const char *fmt,
						      ...)
{
	if (errmsg && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(errmsg, errlen, fmt, ap);
		va_end(ap);
	}
	return CS_ENOTFOUND;
}

#define NOT_FOUND "no value could be found for one of the template directives"

/* A non-empty string member, or NULL. */
static const char *str_of(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) && *v->valuestring ? v->valuestring : NULL;
}

/* metadata[key] (Vault returns even an empty string for a present key here). */
static const char *meta_of(const cJSON *o, const char *member, const char *key)
{
	const cJSON *v =
	    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, member), key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const char *alias_field(const cJSON *alias, const char *sel)
{
	if (strcmp(sel, "id") == 0 || strcmp(sel, "name") == 0)
		return str_of(alias, sel);
	if (strncmp(sel, "metadata.", 9) == 0)
		return meta_of(alias, "metadata", sel + 9);
	if (strncmp(sel, "custom_metadata.", 16) == 0)
		return meta_of(alias, "custom_metadata", sel + 16);
	return NULL;
}

static int entity_value(const cJSON *entity, const char *sel, const char **val, char *errmsg,
			size_t errlen)
{
	if (strcmp(sel, "id") == 0 || strcmp(sel, "name") == 0) {
		*val = str_of(entity, sel);
	} else if (strncmp(sel, "metadata.", 9) == 0) {
		*val = meta_of(entity, "metadata", sel + 9);
	} else if (strncmp(sel, "aliases.", 8) == 0) {
		const char *acc = sel + 8, *dot = strchr(acc, '.');
		if (!dot)
			return miss(errmsg, errlen, "invalid alias selector");
		size_t al = (size_t)(dot - acc);
		const cJSON *a, *found = NULL;
		cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(entity, "aliases"))
		{
			const char *m = str_of(a, "mount_accessor");
			if (m && strlen(m) == al && memcmp(m, acc, al) == 0) {
				found = a;
				break;
			}
		}
		if (!found)
			return miss(errmsg, errlen, "alias not found");
		*val = alias_field(found, dot + 1);
	} else {
		*val = NULL;
	}
	return 0;
}

static int group_value(const cJSON *groups, const char *sel, const char **val, char *errmsg,
		       size_t errlen)
{
	bool ids;
	if (strncmp(sel, "ids.", 4) == 0)
		ids = true;
	else if (strncmp(sel, "names.", 6) == 0)
		ids = false;
	else
		return miss(errmsg, errlen, "invalid groups selector");
	const char *key = sel + (ids ? 4 : 6), *dot = strchr(key, '.');
	if (!dot)
		return miss(errmsg, errlen, "invalid groups accessor");
	size_t kl = (size_t)(dot - key);
	const cJSON *g, *found = NULL;
	cJSON_ArrayForEach(g, groups)
	{
		const char *c = str_of(g, ids ? "id" : "name");
		if (c && strlen(c) == kl && memcmp(c, key, kl) == 0) {
			found = g;
			break;
		}
	}
	if (!found)
		return miss(errmsg, errlen, "entity is not a member of group \"%.*s\"", (int)kl,
			    key);
	const char *f = dot + 1;
	if (strcmp(f, "id") == 0 || strcmp(f, "name") == 0)
		*val = str_of(found, f);
	else if (strncmp(f, "metadata.", 9) == 0)
		*val = meta_of(found, "metadata", f + 9);
	else
		*val = NULL;
	return 0;
}

/* The value of one trimmed directive, or CS_ENOTFOUND. */
static int directive(const char *d, const cJSON *ident, const char **val, char *errmsg,
		     size_t errlen)
{
	*val = NULL;
	int rc = 0;
	if (strncmp(d, "identity.entity.", 16) == 0) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(ident, "entity");
		if (!cJSON_IsObject(e))
			return miss(errmsg, errlen,
				    "string contains entity template directives but no entity "
				    "was provided");
		rc = entity_value(e, d + 16, val, errmsg, errlen);
	} else if (strncmp(d, "identity.groups.", 16) == 0) {
		const cJSON *g = cJSON_GetObjectItemCaseSensitive(ident, "groups");
		if (!cJSON_GetArraySize(g))
			return miss(errmsg, errlen,
				    "string contains groups template directives but no groups "
				    "were provided");
		rc = group_value(g, d + 16, val, errmsg, errlen);
	}
	if (rc)
		return rc;
	/* An empty string is no value in ACL templating, as a missing one. */
	if (!*val || !**val)
		return miss(errmsg, errlen, NOT_FOUND);
	return 0;
}

int cs_template_render(const char *text, const cJSON *ident, char **out, char *errmsg,
		       size_t errlen)
{
	*out = NULL;
	if (errmsg && errlen)
		errmsg[0] = '\0';
	bool has;
	if (cs_template_validate(text, &has)) {
		if (errmsg && errlen)
			snprintf(errmsg, errlen, "unbalanced templating characters");
		return CS_EINVAL;
	}
	struct cs_buf b = CS_BUF_INIT;
	size_t len = strlen(text);
	size_t open = find_sep(text, len, "{{");
	cs_buf_append(&b, text, open);
	const char *p = text + open, *end = text + len;
	int rc = 0;
	while (p < end && !rc) {
		p += 2;
		size_t piece = find_sep(p, (size_t)(end - p), "{{");
		size_t close = find_sep(p, piece, "}}");
		/* The directive, trimmed. */
		const char *ds = p, *de = p + close;
		while (ds < de && isspace((unsigned char)*ds))
			ds++;
		while (de > ds && isspace((unsigned char)de[-1]))
			de--;
		char *d = strndup(ds, (size_t)(de - ds));
		if (!d)
			abort();
		const char *val = NULL;
		rc = directive(d, ident, &val, errmsg, errlen);
		free(d);
		if (!rc && strpbrk(val, "/*+")) {
			/* A value must not widen the path: no separators, no globs. */
			const char *bad = strchr(val, '/') ? "/" : strchr(val, '*') ? "*" : "+";
			rc = miss(errmsg, errlen,
				  "template substitution contains forbidden value \"%s\"", bad);
		}
		if (!rc) {
			cs_buf_puts(&b, val);
			cs_buf_append(&b, p + close + 2, piece - close - 2);
		}
		p += piece;
	}
	if (rc) {
		cs_buf_free(&b);
		return rc;
	}
	*out = cs_buf_steal(&b, NULL);
	return 0;
}
