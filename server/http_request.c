/*
 * Decoding of an HTTP request for the core (see http_request.h).
 */
#include "server/http_request.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/secmem.h"
#include "lib/util.h"

/* Replace *errmsg with the formatted message; returns `code`. */
static int refuse(char **errmsg, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int refuse(char **errmsg, int code, const char *fmt, ...)
{
	struct cs_buf b = CS_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	cs_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	free(*errmsg);
	*errmsg = cs_buf_steal(&b, NULL);
	return code;
}

int cs_http_decode_method(const char *m, enum cs_op *op, bool *is_head)
{
	*is_head = false;
	if (strcmp(m, "GET") == 0)
		*op = CS_OP_READ;
	else if (strcmp(m, "HEAD") == 0)
		*op = CS_OP_READ, *is_head = true;
	else if (strcmp(m, "PUT") == 0 || strcmp(m, "POST") == 0)
		*op = CS_OP_UPDATE;
	else if (strcmp(m, "DELETE") == 0)
		*op = CS_OP_DELETE;
	else if (strcmp(m, "LIST") == 0)
		*op = CS_OP_LIST;
	else if (strcmp(m, "PATCH") == 0)
		*op = CS_OP_PATCH;
	else
		return CS_EUNSUPPORTED;
	return 0;
}

/* Form bodies (application/x-www-form-urlencoded) become string fields. A repeated name
 * is refused like a repeated JSON key: one name, one value. */
static int parse_form(const char *body, cJSON *data, char **errmsg)
{
	const char *cur = body;
	char *name, *value;
	int rc = 0;
	while (!rc && cs_query_next(&cur, &name, &value)) {
		if (cJSON_GetObjectItemCaseSensitive(data, name))
			rc = refuse(errmsg, CS_EINVAL,
				    "failed to parse form input: duplicate key \"%.64s\"", name);
		else
			cJSON_AddStringToObject(data, name, value);
		free(name);
		cs_zero(value, strlen(value));
		free(value);
	}
	return rc;
}

/* A Content-Type whose body is never a JSON object or a form: anything but JSON (and
 * +json), forms and text, the types Vault's clients send JSON or forms under. */
static bool opaque_type(const char *ct)
{
	if (!ct || !*ct)
		return false;
	size_t n = strcspn(ct, ";");
	while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
		n--;
	if (n >= 4 && strncasecmp(ct + n - 4, "json", 4) == 0)
		return false;
	return strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0 &&
	       strncasecmp(ct, "text/", 5) != 0 && strncasecmp(ct, "multipart/", 10) != 0;
}

static int parse_body(const struct cs_http_req *h, enum cs_op op, cJSON **data, char **errmsg,
		      bool *raw)
{
	const char *ct = cs_http_header_get(h, "Content-Type");
	/* Vault accepts only JSON merge patches on PATCH. */
	if (op == CS_OP_PATCH && (!ct || strncasecmp(ct, "application/merge-patch+json", 28) != 0))
		return refuse(errmsg, CS_EMEDIATYPE,
			      "PATCH requires Content-Type of application/merge-patch+json");
	if (h->body.len == 0)
		return 0;
	const char *p = h->body.data;
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	if (*p != '{' && *p != '[' && ct &&
	    strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0)
		return parse_form(h->body.data, *data, errmsg);
	if (*p != '{' && *p != '[' && opaque_type(ct)) {
		*raw = true; /* binary (OCSP): only a CS_PATH_RAW_BODY route takes it */
		return 0;
	}
	if (*p == '\0')
		return 0;
	/* A repeated key at any depth is refused: the ACL, the field checks and the handler
	 * must all see the same value (docs/architecture.md, "security rules"). */
	char err[160];
	cJSON *j = cs_json_parse_strict(h->body.data, h->body.len, err, sizeof err);
	if (!j)
		return refuse(errmsg, CS_EINVAL, "%s", err);
	if (!cJSON_IsObject(j)) {
		cs_json_delete_wiped(j);
		return refuse(errmsg, CS_EINVAL,
			      "failed to parse JSON input: request body must be a JSON object");
	}
	cs_json_delete_wiped(*data);
	*data = j;
	return 0;
}

static int parse_query(const struct cs_http_req *h, enum cs_op op, cJSON *data,
		       struct cs_http_flags *flags, char **errmsg)
{
	flags->list = false;
	if (!h->query)
		return 0;
	const char *cur = h->query;
	char *name, *value;
	bool seen_list = false;
	while (cs_query_next(&cur, &name, &value)) {
		int rc = 0;
		if (strcmp(name, "list") == 0
			? seen_list
			: cJSON_GetObjectItemCaseSensitive(data, name) != NULL) {
			rc = refuse(errmsg, CS_EINVAL, "duplicate query parameter \"%.64s\"", name);
		} else if (strcmp(name, "list") == 0) {
			seen_list = true;
			bool b = false;
			if (*value && cs_parse_bool(value, &b))
				rc = refuse(errmsg, CS_EINVAL, "invalid value for \"list\"");
			flags->list = b;
		} else if (strcmp(name, "help") == 0) {
			flags->help = *value != '\0'; /* as Vault: any non-empty value */
		} else if (op == CS_OP_READ || op == CS_OP_LIST || op == CS_OP_DELETE) {
			/* Vault turns the query string into request data for these. */
			cJSON_AddStringToObject(data, name, value);
		}
		free(name);
		free(value);
		if (rc)
			return rc;
	}
	return 0;
}

int cs_http_decode_fields(const struct cs_http_req *h, enum cs_op op, cJSON **data,
			  struct cs_http_flags *flags, char **errmsg)
{
	int rc = parse_query(h, op, *data, flags, errmsg);
	if (!rc)
		rc = parse_body(h, op, data, errmsg, &flags->raw_body);
	return rc;
}

char *cs_http_client_token(const struct cs_http_req *h)
{
	const char *t = cs_http_header_get(h, "X-Vault-Token");
	if (t && *t)
		return strdup(t);
	const char *a = cs_http_header_get(h, "Authorization");
	if (a && strncmp(a, "Bearer ", 7) == 0 && a[7])
		return strdup(a + 7);
	return NULL;
}
