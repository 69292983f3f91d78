/* Injection-safe SQL text for PostgreSQL (engines/pg_sql.h). */
#include "engines/pg_sql.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/util.h"

bool cs_pg_valid_text(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		unsigned c = *p;
		size_t n;
		unsigned min;
		if (c < 0x80) {
			p++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			n = 1, min = 0x80, c &= 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			n = 2, min = 0x800, c &= 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			n = 3, min = 0x10000, c &= 0x07;
		} else {
			return false;
		}
		for (size_t i = 1; i <= n; i++) {
			if ((p[i] & 0xC0) != 0x80)
				return false; /* also stops at the NUL */
			c = (c << 6) | (p[i] & 0x3F);
		}
		/* Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not
		 * characters: a server could read them differently than we do. */
		if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
			return false;
		p += n + 1;
	}
	return true;
}

/* Append s with every `q` doubled (and every backslash doubled when `bs`). */
static void put_escaped(struct cs_buf *out, const char *s, char q, bool bs)
{
	for (; *s; s++) {
		if (*s == q || (bs && *s == '\\'))
			cs_buf_putc(out, *s);
		cs_buf_putc(out, *s);
	}
}

int cs_pg_quote_ident(struct cs_buf *out, const char *s)
{
	if (!s || !*s || !cs_pg_valid_text(s))
		return CS_EINVAL;
	cs_buf_putc(out, '"');
	put_escaped(out, s, '"', false);
	cs_buf_putc(out, '"');
	return 0;
}

int cs_pg_quote_literal(struct cs_buf *out, const char *s)
{
	if (!s || !cs_pg_valid_text(s))
		return CS_EINVAL;
	bool bs = strchr(s, '\\') != NULL;
	/* As PQescapeLiteral: an E'' string whenever a backslash is present, with a space
	 * in front so that it cannot glue onto a preceding identifier. */
	if (bs)
		cs_buf_puts(out, " E");
	cs_buf_putc(out, '\'');
	put_escaped(out, s, '\'', bs);
	cs_buf_putc(out, '\'');
	return 0;
}

static bool ident_char(int c)
{
	return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

/* Whether a value may stand inside a dollar-quoted body: it is SQL of its own that the
 * server parses again later, so only characters that are inert in every context. */
static bool dollar_safe(const char *s)
{
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr(" _.:+-", *s))
			return false;
	return true;
}

/* The length of "$tag$" starting at p (p[0] == '$'), or 0 when p does not start one. */
static size_t dollar_tag(const char *p)
{
	size_t i = 1;
	if (isdigit((unsigned char)p[1]))
		return 0; /* $1 is a parameter */
	while (p[i] && (isalnum((unsigned char)p[i]) || p[i] == '_' || (unsigned char)p[i] >= 0x80))
		i++;
	return p[i] == '$' ? i + 1 : 0;
}

enum ctx { C_PLAIN, C_SQUOTE, C_ESQUOTE, C_DQUOTE, C_DOLLAR, C_LINE, C_BLOCK };

/* Match "{{key}}" at p against vars; the var and the placeholder's length, or NULL. */
static const struct cs_pg_var *placeholder(const char *p, const struct cs_pg_var *vars,
					   size_t n_vars, size_t *len)
{
	if (p[0] != '{' || p[1] != '{')
		return NULL;
	const char *end = strstr(p + 2, "}}");
	if (!end)
		return NULL;
	size_t klen = (size_t)(end - (p + 2));
	for (size_t i = 0; i < n_vars; i++) {
		if (vars[i].value && strlen(vars[i].name) == klen &&
		    memcmp(vars[i].name, p + 2, klen) == 0) {
			*len = klen + 4;
			return &vars[i];
		}
	}
	return NULL;
}

int cs_pg_render(const char *tmpl, const struct cs_pg_var *vars, size_t n_vars, char **out,
		 char *err, size_t errlen)
{
	struct cs_buf b = CS_BUF_INIT;
	enum ctx ctx = C_PLAIN;
	const char *tag = NULL; /* the open dollar quote */
	size_t tag_len = 0;
	int depth = 0; /* nested block comments */
	const char *p = tmpl;
	int rc = 0;
	*out = NULL;
	if (!cs_pg_valid_text(tmpl)) {
		snprintf(err, errlen, "statement is not valid UTF-8");
		return CS_EINVAL;
	}
	for (size_t i = 0; i < n_vars; i++) {
		if (vars[i].value && !cs_pg_valid_text(vars[i].value)) {
			snprintf(err, errlen, "the value of {{%s}} is not valid UTF-8",
				 vars[i].name);
			return CS_EINVAL;
		}
	}
	while (*p) {
		size_t plen = 0;
		const struct cs_pg_var *v = NULL;
		if (ctx != C_LINE && ctx != C_BLOCK)
			v = placeholder(p, vars, n_vars, &plen);
		if (v) {
			switch (ctx) {
			case C_PLAIN:
				rc = v->bare == CS_PG_BARE_IDENT
					 ? cs_pg_quote_ident(&b, v->value)
					 : cs_pg_quote_literal(&b, v->value);
				if (rc)
					snprintf(err, errlen, "{{%s}} is empty", v->name);
				break;
			case C_SQUOTE:
				put_escaped(&b, v->value, '\'', false);
				break;
			case C_ESQUOTE:
				put_escaped(&b, v->value, '\'', true);
				break;
			case C_DQUOTE:
				put_escaped(&b, v->value, '"', false);
				break;
			case C_DOLLAR:
				if (!dollar_safe(v->value)) {
					snprintf(
					    err, errlen,
					    "{{%s}} holds characters that cannot be placed in a "
					    "dollar-quoted body safely",
					    v->name);
					rc = CS_EINVAL;
				} else {
					cs_buf_puts(&b, v->value);
				}
				break;
			default:
				break;
			}
			if (rc)
				break;
			p += plen;
			continue;
		}
		char c = *p;
		size_t adv = 1;
		switch (ctx) {
		case C_PLAIN:
			if (c == '\'') {
				/* E'…' / e'…' when the E is a token of its own (not the end of
				 * an identifier such as "name'"). */
				bool e = p > tmpl && (p[-1] == 'E' || p[-1] == 'e') &&
					 (p - 1 == tmpl || !ident_char((unsigned char)p[-2]));
				ctx = e ? C_ESQUOTE : C_SQUOTE;
			} else if (c == '"') {
				ctx = C_DQUOTE;
			} else if (c == '-' && p[1] == '-') {
				ctx = C_LINE, adv = 2;
			} else if (c == '/' && p[1] == '*') {
				ctx = C_BLOCK, depth = 1, adv = 2;
			} else if (c == '$' && (p == tmpl || !ident_char((unsigned char)p[-1])) &&
				   (tag_len = dollar_tag(p)) > 0) {
				ctx = C_DOLLAR, tag = p, adv = tag_len;
			}
			break;
		case C_SQUOTE:
		case C_DQUOTE:
			if (c == (ctx == C_SQUOTE ? '\'' : '"')) {
				if (p[1] == c)
					adv = 2; /* a doubled quote stays inside */
				else
					ctx = C_PLAIN;
			}
			break;
		case C_ESQUOTE:
			if (c == '\\' && p[1])
				adv = 2;
			else if (c == '\'' && p[1] == '\'')
				adv = 2;
			else if (c == '\'')
				ctx = C_PLAIN;
			break;
		case C_DOLLAR:
			if (c == '$' && strncmp(p, tag, tag_len) == 0)
				ctx = C_PLAIN, adv = tag_len;
			break;
		case C_LINE:
			if (c == '\n')
				ctx = C_PLAIN;
			break;
		case C_BLOCK:
			if (c == '/' && p[1] == '*')
				depth++, adv = 2;
			else if (c == '*' && p[1] == '/') {
				adv = 2;
				if (--depth == 0)
					ctx = C_PLAIN;
			}
			break;
		}
		cs_buf_append(&b, p, adv);
		p += adv;
	}
	if (rc) {
		cs_buf_free_secure(&b);
		return rc;
	}
	if (!b.data)
		cs_buf_puts(&b, "");
	*out = cs_buf_steal(&b, NULL);
	return 0;
}

bool cs_pg_blank(const char *tmpl)
{
	for (; tmpl && *tmpl; tmpl++)
		if (!isspace((unsigned char)*tmpl) && *tmpl != ';')
			return false;
	return true;
}

/* ---------------------------------------------------------------- SCRAM */

#define SCRAM_ITER 4096

int cs_pg_scram_verifier(const char *password, char **out)
{
	uint8_t salt[16], salted[32], client_key[32], stored[32], server_key[32];
	unsigned len = 0;
	int rc = CS_EINTERNAL;
	cs_random(salt, sizeof salt);
	/* RFC 5802: SaltedPassword = Hi(password, salt, i), ClientKey = HMAC(SP, "Client
	 * Key"), StoredKey = H(ClientKey), ServerKey = HMAC(SP, "Server Key"). PostgreSQL
	 * also SASLprep-normalises the password; our generated passwords are ASCII, for which
	 * SASLprep is the identity. */
	if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, sizeof salt, SCRAM_ITER,
			      EVP_sha256(), sizeof salted, salted) != 1)
		goto out;
	if (!HMAC(EVP_sha256(), salted, sizeof salted, (const uint8_t *)"Client Key", 10,
		  client_key, &len) ||
	    !HMAC(EVP_sha256(), salted, sizeof salted, (const uint8_t *)"Server Key", 10,
		  server_key, &len))
		goto out;
	SHA256(client_key, sizeof client_key, stored);
	char *s = cs_b64_encode(salt, sizeof salt);
	char *k1 = cs_b64_encode(stored, sizeof stored);
	char *k2 = cs_b64_encode(server_key, sizeof server_key);
	struct cs_buf b = CS_BUF_INIT;
	cs_buf_printf(&b, "SCRAM-SHA-256$%d:%s$%s:%s", SCRAM_ITER, s, k1, k2);
	free(s);
	free(k1);
	free(k2);
	*out = cs_buf_steal(&b, NULL);
	rc = 0;
out:
	cs_zero(salted, sizeof salted);
	cs_zero(client_key, sizeof client_key);
	cs_zero(server_key, sizeof server_key);
	return rc;
}
