/*
 * Path help (`GET /v1/<path>?help=1`, `vault path-help`, `custos path-help`): the matched
 * row's synopsis and field schema, in the shape Vault's framework answers with: a JSON
 * object with "help" (text for a terminal), "see_also" and "openapi" (a small OpenAPI 3
 * document for the one path, the way `vault path-help` and UIs read it).
 */
#include <stdio.h>
#include <string.h>

#include "lib/buf.h"
#include "server/backend.h"

static const char *type_name(enum cs_field_type t)
{
	switch (t) {
	case CS_FIELD_STRING:
		return "string";
	case CS_FIELD_INT:
		return "int";
	case CS_FIELD_BOOL:
		return "bool";
	case CS_FIELD_DURATION:
		return "duration (sec)";
	case CS_FIELD_MAP:
		return "map";
	case CS_FIELD_STRLIST:
		return "comma-string-slice";
	case CS_FIELD_ANY:
		break;
	}
	return "any";
}

/* The OpenAPI schema type of a field. */
static cJSON *schema_of(const struct cs_field *f)
{
	cJSON *s = cJSON_CreateObject();
	switch (f->type) {
	case CS_FIELD_INT:
		cJSON_AddStringToObject(s, "type", "integer");
		break;
	case CS_FIELD_BOOL:
		cJSON_AddStringToObject(s, "type", "boolean");
		break;
	case CS_FIELD_DURATION:
		cJSON_AddStringToObject(s, "type", "string");
		cJSON_AddStringToObject(s, "format", "duration");
		break;
	case CS_FIELD_MAP:
		cJSON_AddStringToObject(s, "type", "object");
		break;
	case CS_FIELD_STRLIST:
		cJSON_AddStringToObject(s, "type", "array");
		cJSON_AddStringToObject(cJSON_AddObjectToObject(s, "items"), "type", "string");
		break;
	case CS_FIELD_STRING:
	case CS_FIELD_ANY:
		cJSON_AddStringToObject(s, "type", "string");
		break;
	}
	if (f->desc && *f->desc)
		cJSON_AddStringToObject(s, "description", f->desc);
	return s;
}

/* Whether `name` is captured by the pattern ("{name}" or "{name*}"). */
static bool is_path_param(const char *pattern, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = strchr(pattern, '{'); p; p = strchr(p + 1, '{'))
		if (strncmp(p + 1, name, n) == 0 && (p[1 + n] == '}' || p[1 + n] == '*'))
			return true;
	return false;
}

static cJSON *openapi_doc(const struct cs_path *p)
{
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, "openapi", "3.0.2");
	cJSON *info = cJSON_AddObjectToObject(doc, "info");
	cJSON_AddStringToObject(info, "title", "custos");
	cJSON_AddStringToObject(info, "version", "");
	cJSON *paths = cJSON_AddObjectToObject(doc, "paths");
	struct cs_buf key = CS_BUF_INIT;
	cs_buf_printf(&key, "/%s", p->pattern);
	cJSON *item = cJSON_AddObjectToObject(paths, key.data);
	cs_buf_free(&key);
	if (p->synopsis)
		cJSON_AddStringToObject(item, "description", p->synopsis);

	cJSON *params = cJSON_CreateArray(), *props = cJSON_CreateObject();
	cJSON *required = cJSON_CreateArray();
	for (const struct cs_field *f = p->fields; f && f->name; f++) {
		if (is_path_param(p->pattern, f->name)) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "name", f->name);
			cJSON_AddStringToObject(o, "in", "path");
			cJSON_AddBoolToObject(o, "required", true);
			cJSON_AddItemToObject(o, "schema", schema_of(f));
			cJSON_AddItemToArray(params, o);
			continue;
		}
		cJSON_AddItemToObject(props, f->name, schema_of(f));
		if (f->required)
			cJSON_AddItemToArray(required, cJSON_CreateString(f->name));
	}
	cJSON_AddItemToObject(item, "parameters", params);

	static const char *verbs[CS_OP__COUNT] = {[CS_OP_READ] = "get",
						  [CS_OP_UPDATE] = "post",
						  [CS_OP_DELETE] = "delete",
						  [CS_OP_PATCH] = "patch"};
	for (int op = 0; op < CS_OP__COUNT; op++) {
		if (!verbs[op] || !p->ops[op])
			continue;
		cJSON *o = cJSON_AddObjectToObject(item, verbs[op]);
		cJSON_AddStringToObject(o, "summary", p->synopsis ? p->synopsis : "");
		if ((op == CS_OP_UPDATE || op == CS_OP_PATCH) && cJSON_GetArraySize(props) > 0) {
			cJSON *schema = cJSON_CreateObject();
			cJSON_AddStringToObject(schema, "type", "object");
			cJSON_AddItemToObject(schema, "properties", cJSON_Duplicate(props, true));
			if (cJSON_GetArraySize(required) > 0)
				cJSON_AddItemToObject(schema, "required",
						      cJSON_Duplicate(required, true));
			cJSON *body = cJSON_AddObjectToObject(o, "requestBody");
			cJSON *content = cJSON_AddObjectToObject(body, "content");
			cJSON *json = cJSON_AddObjectToObject(content, "application/json");
			cJSON_AddItemToObject(json, "schema", schema);
		}
	}
	if (p->ops[CS_OP_LIST]) {
		/* Vault's documents show a LIST as a GET with list=true. */
		cJSON *o = cJSON_GetObjectItemCaseSensitive(item, "get");
		if (!o)
			o = cJSON_AddObjectToObject(item, "get");
		cJSON_AddBoolToObject(o, "x-list", true);
	}
	cJSON_Delete(props);
	cJSON_Delete(required);
	return doc;
}

cJSON *cs_backend_help(const struct cs_request *req)
{
	const struct cs_path *p = req->route;
	struct cs_buf t = CS_BUF_INIT;
	cs_buf_printf(&t, "Request:        %s\n", req->path);
	cs_buf_printf(&t, "Matching Route: %s%s\n\n",
		      cs_req_mount_path(req) ? cs_req_mount_path(req) : "", p->pattern);
	cs_buf_printf(&t, "%s\n", p->synopsis && *p->synopsis ? p->synopsis : "(no synopsis)");
	if (p->flags & CS_PATH_ANY_FIELDS)
		cs_buf_printf(&t, "\nThe body is free-form: any JSON object is accepted.\n");
	if (p->fields && p->fields->name) {
		cs_buf_printf(&t, "\n## PARAMETERS\n");
		for (const struct cs_field *f = p->fields; f->name; f++) {
			cs_buf_printf(&t, "\n    %s (%s%s)\n", f->name, type_name(f->type),
				      f->required ? ", required" : "");
			if (f->desc && *f->desc)
				cs_buf_printf(&t, "        %s\n", f->desc);
		}
	}
	cs_buf_printf(&t, "\n## OPERATIONS\n\n   ");
	for (int op = 0; op < CS_OP__COUNT; op++)
		if (p->ops[op])
			cs_buf_printf(&t, " %s", cs_op_name(op));
	cs_buf_printf(&t, "\n");

	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "help", t.data);
	cJSON_AddItemToObject(o, "see_also", cJSON_CreateArray());
	cJSON_AddItemToObject(o, "openapi", openapi_doc(p));
	cs_buf_free(&t);
	return o;
}
