/*
 * SQL text for PostgreSQL built from untrusted values, without injection (the database
 * engine, engines/database.c).
 *
 * Usernames come from operator templates fed with display names and role names; passwords
 * from password policies; schema names from the database itself (Vault's plugin pasted a
 * schema name unquoted into its default revocation sequence: CVE-2026-39946). None of them
 * may end a quoted string or identifier. Every value reaches SQL through one of:
 *   - cs_pg_quote_ident / cs_pg_quote_literal: what PQescapeIdentifier / PQescapeLiteral
 *     produce, without needing a connection (the server encoding is UTF-8 here, and
 *     values that are not valid UTF-8 are refused);
 *   - cs_pg_render: an operator's statement template with {{name}} placeholders, each
 *     replaced by its value escaped for the lexical context it stands in (inside "…",
 *     inside '…', inside E'…', bare, or inside a $tag$…$tag$ body).
 * Pure functions, any thread.
 */
#ifndef CS_ENGINES_PG_SQL_H
#define CS_ENGINES_PG_SQL_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"

/* Whether s is valid UTF-8 without NUL (what PostgreSQL accepts as text). */
bool cs_pg_valid_text(const char *s);

/* Append `s` as a double-quoted identifier ("a""b"). CS_EINVAL if s is empty or not
 * valid UTF-8 (nothing appended). */
int cs_pg_quote_ident(struct cs_buf *out, const char *s);

/* Append `s` as a string literal: 'a''b', or E'a\\b' when s holds a backslash (so the
 * result means the same whatever standard_conforming_strings is). CS_EINVAL if s is not
 * valid UTF-8 (nothing appended). */
int cs_pg_quote_literal(struct cs_buf *out, const char *s);

/* How a placeholder standing bare (outside any quotes) is written. */
enum cs_pg_bare {
	CS_PG_BARE_IDENT,   /* {{name}} → "v-role-x" */
	CS_PG_BARE_LITERAL, /* {{password}} → 'secret' */
};

struct cs_pg_var {
	const char *name;  /* "name", "username", "password", "expiration" */
	const char *value; /* NULL: the placeholder is left as written */
	enum cs_pg_bare bare;
};

/*
 * Render one statement template: every "{{key}}" whose key is in vars is replaced by its
 * value, escaped for its context:
 *   "…{{x}}…"   double quotes doubled;
 *   '…{{x}}…'   single quotes doubled (the engine runs with standard_conforming_strings
 *               on, so backslashes are plain characters);
 *   E'…{{x}}…'  single quotes doubled and backslashes doubled;
 *   bare        a quoted identifier or literal, by the var's `bare`;
 *   $tag$…$tag$ only values made of [A-Za-z0-9 _.:+-] (a dollar-quoted body is SQL of
 *               its own, run later with its own quoting, so nothing else is safe there);
 *   comments    left alone.
 * Placeholders with unknown keys are copied as written. The text is returned whole (a
 * simple-protocol query may hold several statements; they run in the caller's
 * transaction). On success *out is malloc'd (the caller wipes and frees it: it may hold a
 * password) and 0 is returned; otherwise CS_EINVAL with a message in err (which never
 * contains a value).
 */
int cs_pg_render(const char *tmpl, const struct cs_pg_var *vars, size_t n_vars, char **out,
		 char *err, size_t errlen);

/* Whether the template contains nothing but whitespace and semicolons. */
bool cs_pg_blank(const char *tmpl);

/*
 * PostgreSQL's SCRAM-SHA-256 verifier for `password` with a random salt and 4096
 * iterations ("SCRAM-SHA-256$4096:salt$StoredKey:ServerKey"), for
 * password_authentication = "scram-sha-256": the server then never sees the password.
 * *out malloc'd; 0 or CS_EINTERNAL.
 */
int cs_pg_scram_verifier(const char *password, char **out);

#endif
