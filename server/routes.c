/*
 * The route listing (see routes.h). A sample path is built from the row's pattern and
 * then routed through the same matcher as a request (cs_backend_route), so a sample
 * that an earlier row would take is never handed out as this row's.
 */
#include "server/routes.h"

#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "server/sys.h"

static const struct {
	unsigned bit;
	const char *name;
} flag_names[] = {
    {CS_PATH_UNAUTH, "unauth"},         {CS_PATH_SUDO, "sudo"},
    {CS_PATH_ANY_FIELDS, "any_fields"}, {CS_PATH_SEALED_OK, "sealed_ok"},
    {CS_PATH_NO_ACTIVE, "no_active"},   {CS_PATH_LOCAL, "local"},
    {CS_PATH_OPT_TOKEN, "opt_token"},   {CS_PATH_RAW_BODY, "raw_body"},
};

cJSON *cs_routes_flags_json(unsigned flags)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < sizeof flag_names / sizeof flag_names[0]; i++) {
		if (flags & flag_names[i].bit) {
			cJSON_AddItemToArray(a, cJSON_CreateString(flag_names[i].name));
			flags &= ~flag_names[i].bit;
		}
	}
	for (unsigned bit = 1; flags; bit <<= 1) {
		if (flags & bit) {
			char hex[16];
			snprintf(hex, sizeof hex, "0x%x", bit);
			cJSON_AddItemToArray(a, cJSON_CreateString(hex));
			flags &= ~bit;
		}
	}
	return a;
}

/* The pattern with every "{name}" replaced by `one` and every "{name*}" by `rest`. */
static char *expand(const char *pattern, const char *one, const char *rest)
{
	struct cs_buf b = CS_BUF_INIT;
	for (const char *p = pattern; *p;) {
		const char *close = *p == '{' ? strchr(p, '}') : NULL;
		if (close) {
			const char *v = close[-1] == '*' ? rest : one;
			cs_buf_append(&b, v, strlen(v));
			p = close + 1;
		} else {
			cs_buf_append(&b, p, 1);
			p++;
		}
	}
	cs_buf_append(&b, "", 1);
	return b.data;
}

/* Whether `rel` routes to row `row` of `b`. */
static bool routes_to(const struct cs_backend *b, size_t row, const char *rel)
{
	struct cs_request req;
	memset(&req, 0, sizeof req);
	bool hit = cs_backend_route(b, &req, rel) && req.route == cs_backend_row(b, row);
	for (int i = 0; i < req.n_caps; i++)
		free(req.caps[i].value);
	return hit;
}

char *cs_routes_sample(const struct cs_backend *b, size_t row)
{
	/* Alternatives for a glob that an earlier, more specific row would take with the
	 * first choice (a catch-all "{path*}" after "data/{path*}" is still reached by a
	 * path that starts elsewhere). */
	static const char *const ones[] = {"matrix-sample", "matrix-sample2"};
	static const char *const rests[] = {"matrix/sample", "matrix-sample", "zz-matrix/sample"};
	for (size_t i = 0; i < sizeof ones / sizeof ones[0]; i++) {
		for (size_t j = 0; j < sizeof rests / sizeof rests[0]; j++) {
			char *s = expand(cs_backend_row(b, row)->pattern, ones[i], rests[j]);
			if (routes_to(b, row, s))
				return s;
			free(s);
		}
	}
	return NULL;
}

static cJSON *path_json(const struct cs_backend *b, size_t row)
{
	const struct cs_path *p = cs_backend_row(b, row);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "pattern", p->pattern);
	cJSON *ops = cJSON_AddArrayToObject(o, "ops");
	for (int op = 0; op < CS_OP__COUNT; op++)
		if (p->ops[op])
			cJSON_AddItemToArray(ops, cJSON_CreateString(cs_op_name((enum cs_op)op)));
	cJSON_AddItemToObject(o, "flags", cs_routes_flags_json(p->flags));
	cJSON_AddBoolToObject(o, "exists_check", p->exists != NULL);
	if (p->ops[CS_OP_LIST]) { /* LIST pagination parameters the route keeps as its own */
		cJSON *own = cJSON_AddArrayToObject(o, "list_own_params");
		for (const char *const *n = (const char *const[]){"after", "limit", NULL}; *n; n++)
			if (cs_list_page_route_owns(p, *n))
				cJSON_AddItemToArray(own, cJSON_CreateString(*n));
	}
	char *sample = cs_routes_sample(b, row);
	if (sample)
		cJSON_AddStringToObject(o, "sample", sample);
	else
		cJSON_AddNullToObject(o, "sample");
	free(sample);
	cJSON_AddStringToObject(o, "synopsis", p->synopsis ? p->synopsis : "");
	return o;
}

static void add_backend(cJSON *list, const struct cs_backend *b, const char *options_json)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", b->type);
	cJSON_AddBoolToObject(o, "is_auth", b->is_auth);
	cJSON *opts = options_json ? cJSON_Parse(options_json) : NULL;
	cJSON_AddItemToObject(o, "options", opts ? opts : cJSON_CreateNull());
	if (b == &cs_sys_backend)
		cJSON_AddStringToObject(o, "mount", "sys/");
	cJSON *paths = cJSON_AddArrayToObject(o, "paths");
	for (size_t i = 0; i < cs_backend_n_rows(b); i++)
		cJSON_AddItemToArray(paths, path_json(b, i));
	cJSON_AddItemToArray(list, o);
}

cJSON *cs_routes_json(void)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *list = cJSON_AddArrayToObject(root, "backends");
	const struct cs_backend *b;
	for (size_t i = 0; (b = cs_backend_at(i)); i++) {
		if (cs_backend_n_rows(b))
			add_backend(list, b, NULL);
		for (const struct cs_backend_variant *v = b->variants; v && v->backend; v++)
			add_backend(list, v->backend, v->options_json);
	}
	return root;
}

static void print_unauth(FILE *out, const struct cs_backend *b)
{
	for (size_t i = 0; i < cs_backend_n_rows(b); i++) {
		const struct cs_path *p = cs_backend_row(b, i);
		if (!(p->flags & CS_PATH_UNAUTH))
			continue;
		if (b == &cs_sys_backend)
			fprintf(out, "sys/%s\t", p->pattern);
		else
			fprintf(out, "%s:%s/%s\t", b->is_auth ? "auth/" : "", b->type, p->pattern);
		const char *sep = "";
		for (int op = 0; op < CS_OP__COUNT; op++) {
			if (p->ops[op]) {
				fprintf(out, "%s%s", sep, cs_op_name((enum cs_op)op));
				sep = ",";
			}
		}
		fprintf(out, "\t%s\n", b->type);
	}
}

void cs_routes_print_unauthenticated(FILE *out)
{
	const struct cs_backend *b;
	for (size_t i = 0; (b = cs_backend_at(i)); i++) {
		print_unauth(out, b);
		for (const struct cs_backend_variant *v = b->variants; v && v->backend; v++)
			print_unauth(out, v->backend);
	}
}
