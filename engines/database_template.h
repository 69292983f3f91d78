/*
 * Username templates of the database engine: the subset of Go's text/template that
 * Vault's username_template uses (sdk/helper/template), e.g. Vault's default
 *   {{ printf "v-%s-%s-%s-%s" (.DisplayName | truncate 8) (.RoleName | truncate 8)
 *      (random 20) (unix_time) | truncate 63 }}
 *
 * Language: text is copied; an action {{ pipeline }} (with {{- / -}} trimming the
 * whitespace next to it; a comment action is skipped) writes its value. A pipeline is
 * commands joined by '|', each command's value becoming the last argument of the next.
 * A command is a function name followed by arguments, or one operand. Operands: "string"
 * (Go escapes), `raw string`, integers, .DisplayName, .RoleName, (pipeline), and a
 * function name (called without arguments). Functions: printf (%s %d %v %q %x %%),
 * random N, truncate N S, truncate_sha256 N S, uppercase S, lowercase S, replace OLD NEW S,
 * sha256 S, base64 S, uuid, unix_time, unix_time_millis, timestamp LAYOUT (Go's reference
 * layout, UTC).
 *
 * Templates come from operators' requests: the renderer bounds its work (nesting depth,
 * output and value sizes, random lengths) and answers a message for every error.
 * Thread-safe; never logs.
 */
#ifndef CS_ENGINES_DATABASE_TEMPLATE_H
#define CS_ENGINES_DATABASE_TEMPLATE_H

#include <stddef.h>
#include <stdint.h>

#define CS_DB_TEMPLATE_MAX_OUT 4096

/* Vault's default username template for the PostgreSQL plugin. */
#define CS_DB_DEFAULT_USERNAME_TEMPLATE                                                            \
	"{{ printf \"v-%s-%s-%s-%s\" (.DisplayName | truncate 8) (.RoleName | truncate 8) "        \
	"(random 20) (unix_time) | truncate 63 }}"

struct cs_db_template_data {
	const char *display_name; /* NULL → "" */
	const char *role_name;    /* NULL → "" */
	int64_t now_ns;           /* 0: the current time */
};

/* Render `tmpl`. On success *out is malloc'd and 0 returned; otherwise CS_EINVAL and a
 * message in err. */
int cs_db_template_render(const char *tmpl, const struct cs_db_template_data *d, char **out,
			  char *err, size_t errlen);

#endif
