#include "lib/path.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

int cs_path_canonical(const char *in, bool list, char **out, const char **why)
{
	*out = NULL;
	if (strstr(in, "..")) {
		/* Also ".." inside a segment: kept from the earlier rule, as Vault refuses it. */
		*why = "path cannot contain parent references";
		return -1;
	}
	size_t n = strlen(in);
	char *o = malloc(n + 2);
	if (!o)
		abort();
	size_t len = 0;
	const char *p = in;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		size_t seg = strcspn(p, "/");
		if (seg == 1 && p[0] == '.') {
			free(o);
			*why = "path cannot contain \".\" segments";
			return -1;
		}
		if (len)
			o[len++] = '/';
		memcpy(o + len, p, seg);
		len += seg;
		p += seg;
	}
	if (list)
		o[len++] = '/';
	o[len] = '\0';
	*out = o;
	return 0;
}

bool cs_path_has_encoded_sep(const char *raw)
{
	size_t end = strcspn(raw, "?#");
	for (size_t i = 0; i + 2 < end; i++) {
		if (raw[i] != '%')
			continue;
		if (strncasecmp(raw + i + 1, "2f", 2) == 0 ||
		    strncasecmp(raw + i + 1, "5c", 2) == 0)
			return true;
	}
	return false;
}
