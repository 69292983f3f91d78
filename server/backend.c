/*
 * Generic backend machinery: path-table matching, field validation and coercion,
 * existence checks, 405s, and storage views under a mount's prefix.
 */
#include "server/backend.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/json.h"
#include "lib/util.h"
#include "server/http.h"

_Static_assert(CS_EASYNC >= CS_E__COUNT, "CS_EASYNC must not be an error code");

const char *cs_op_name(enum cs_op op)
{
	static const char *names[] = {"read", "create", "update", "delete", "list", "patch"};
	return (unsigned)op < CS_OP__COUNT ? names[op] : "unknown";
}

/* ------------------------------------------------------------------ registry */

#define MAX_BACKENDS 32
static const struct cs_backend *registry[MAX_BACKENDS];
static size_t n_registry;

void cs_backend_register(const struct cs_backend *b)
{
	for (size_t i = 0; i < n_registry; i++)
		if (registry[i] == b)
			return;
	if (n_registry < MAX_BACKENDS)
		registry[n_registry++] = b;
}

const struct cs_backend *cs_backend_find(const char *type, bool is_auth)
{
	for (size_t i = 0; i < n_registry; i++)
		if (registry[i]->is_auth == is_auth && strcmp(registry[i]->type, type) == 0)
			return registry[i];
	return NULL;
}

const struct cs_backend *cs_backend_at(size_t i)
{
	return i < n_registry ? registry[i] : NULL;
}

void cs_backend_reset_all(struct cs_core *core)
{
	for (size_t i = 0; i < n_registry; i++)
		if (registry[i]->reset)
			registry[i]->reset(core);
}

/* ------------------------------------------------------------------ matching */

struct seg {
	const char *p;
	size_t len;
};

/* Split "a/b/c" into segments (an empty string has zero segments). */
static size_t split(const char *s, struct seg *out, size_t max)
{
	size_t n = 0;
	if (!*s)
		return 0;
	const char *start = s;
	for (const char *c = s;; c++) {
		if (*c == '/' || *c == '\0') {
			if (n == max)
				return max + 1;
			out[n].p = start;
			out[n].len = (size_t)(c - start);
			n++;
			if (*c == '\0')
				break;
			start = c + 1;
		}
	}
	return n;
}

static bool is_capture(const struct seg *s)
{
	return s->len >= 2 && s->p[0] == '{' && s->p[s->len - 1] == '}';
}

static bool is_glob(const struct seg *s)
{
	return is_capture(s) && s->p[s->len - 2] == '*';
}

static void add_capture(struct cs_request *req, const struct seg *pat, const char *v, size_t vlen)
{
	if (req->n_caps == CS_MAX_CAPTURES)
		return;
	struct cs_capture *c = &req->caps[req->n_caps++];
	c->name = pat->p + 1;
	c->name_len = pat->len - 2 - (is_glob(pat) ? 1 : 0);
	c->value = strndup(v, vlen);
}

static void clear_captures(struct cs_request *req)
{
	for (int i = 0; i < req->n_caps; i++)
		free(req->caps[i].value);
	req->n_caps = 0;
}

#define MAX_SEGS 64

/* Match one pattern; fills captures on success (the caller clears them on failure). */
static bool match(const char *pattern, const char *rel, struct cs_request *req)
{
	struct seg ps[MAX_SEGS];
	size_t np = split(pattern, ps, MAX_SEGS);
	if (np > MAX_SEGS)
		return false;
	size_t glob = np;
	for (size_t i = 0; i < np; i++)
		if (is_glob(&ps[i]))
			glob = i;

	/* Segments before the glob (or all of them) each take one path segment. */
	const char *cur = rel;
	for (size_t i = 0; i < glob; i++) {
		if (i > 0) {
			if (*cur != '/')
				return false;
			cur++;
		}
		size_t len = strcspn(cur, "/");
		if (len == 0)
			return false;
		if (is_capture(&ps[i]))
			add_capture(req, &ps[i], cur, len);
		else if (len != ps[i].len || memcmp(cur, ps[i].p, len) != 0)
			return false;
		cur += len;
	}
	if (glob == np)
		return *cur == '\0';
	if (glob > 0) {
		/* "mounts/{path*}" accepts "mounts" and "mounts/" with an empty glob. */
		if (*cur == '/')
			cur++;
		else if (*cur != '\0')
			return false;
	}

	/* The glob takes everything before the literal segments that follow it. */
	size_t rest = strlen(cur), suffix = 0;
	for (size_t i = glob + 1; i < np; i++)
		suffix += 1 + ps[i].len;
	if (suffix) {
		if (rest <= suffix)
			return false;
		const char *sp = cur + rest - suffix;
		for (size_t i = glob + 1; i < np; i++) {
			if (*sp != '/' || memcmp(sp + 1, ps[i].p, ps[i].len) != 0)
				return false;
			sp += 1 + ps[i].len;
		}
	}
	add_capture(req, &ps[glob], cur, rest - suffix);
	return true;
}

size_t cs_backend_n_rows(const struct cs_backend *b)
{
	size_t n = b->n_paths;
	for (size_t t = 0; t < b->n_tables; t++)
		n += b->tables[t].n;
	return n;
}

const struct cs_path *cs_backend_row(const struct cs_backend *b, size_t i)
{
	for (size_t t = 0; t < b->n_tables; t++) {
		if (i < b->tables[t].n)
			return &b->tables[t].paths[i];
		i -= b->tables[t].n;
	}
	return i < b->n_paths ? &b->paths[i] : NULL;
}

static bool route_table(const struct cs_path *paths, size_t n, struct cs_request *req,
			const char *rel)
{
	for (size_t i = 0; i < n; i++) {
		if (match(paths[i].pattern, rel, req)) {
			req->route = &paths[i];
			return true;
		}
		clear_captures(req);
	}
	return false;
}

bool cs_backend_route(const struct cs_backend *b, struct cs_request *req, const char *rel)
{
	for (size_t t = 0; t < b->n_tables; t++)
		if (route_table(b->tables[t].paths, b->tables[t].n, req, rel))
			return true;
	return route_table(b->paths, b->n_paths, req, rel);
}

/* ------------------------------------------------------------------ fields */

/* A JSON number that is an integer representable as int64_t. Casting a double outside
 * that range is undefined behaviour, so the range is checked before any cast. */
static bool int64_number(const cJSON *v)
{
	if (!cJSON_IsNumber(v))
		return false;
	double d = v->valuedouble;
	return d >= -9223372036854775808.0 && d < 9223372036854775808.0 && d == (double)(int64_t)d;
}

static int coerce(struct cs_request *req, const struct cs_field *f, cJSON *v)
{
	char buf[64];
	/* JSON null means "not given" (Go clients send nil pointers as null): drop it so
	 * the handler sees the field's default. */
	if (cJSON_IsNull(v) && f->type != CS_FIELD_ANY) {
		cJSON_DeleteItemFromObjectCaseSensitive(req->data, f->name);
		return 0;
	}
	switch (f->type) {
	case CS_FIELD_STRING:
		if (cJSON_IsString(v))
			return 0;
		if (cJSON_IsNumber(v)) {
			if (int64_number(v))
				snprintf(buf, sizeof buf, "%lld", (long long)v->valuedouble);
			else
				snprintf(buf, sizeof buf, "%g", v->valuedouble);
			cJSON_ReplaceItemInObjectCaseSensitive(req->data, f->name,
							       cJSON_CreateString(buf));
			return 0;
		}
		if (cJSON_IsBool(v)) {
			cJSON_ReplaceItemInObjectCaseSensitive(
			    req->data, f->name,
			    cJSON_CreateString(cJSON_IsTrue(v) ? "true" : "false"));
			return 0;
		}
		break;
	case CS_FIELD_INT:
		if (int64_number(v))
			return 0;
		if (cJSON_IsString(v)) {
			char *end;
			errno = 0;
			long long n = strtoll(v->valuestring, &end, 10);
			/* Beyond 2^53 the stored double rounds; cs_req_int saturates. */
			if (*v->valuestring && *end == '\0' && errno == 0) {
				cJSON_ReplaceItemInObjectCaseSensitive(
				    req->data, f->name, cJSON_CreateNumber((double)n));
				return 0;
			}
		}
		break;
	case CS_FIELD_BOOL:
		if (cJSON_IsBool(v))
			return 0;
		if (cJSON_IsString(v)) {
			bool b;
			if (cs_parse_bool(v->valuestring, &b) == 0) {
				cJSON_ReplaceItemInObjectCaseSensitive(req->data, f->name,
								       cJSON_CreateBool(b));
				return 0;
			}
		}
		if (cJSON_IsNumber(v) && (v->valuedouble == 0 || v->valuedouble == 1)) {
			cJSON_ReplaceItemInObjectCaseSensitive(
			    req->data, f->name, cJSON_CreateBool(v->valuedouble == 1));
			return 0;
		}
		break;
	case CS_FIELD_DURATION: {
		int64_t secs;
		if (cJSON_IsNumber(v) && v->valuedouble >= 0 &&
		    v->valuedouble <= (double)CS_MAX_DURATION_SECS) {
			secs = (int64_t)v->valuedouble;
		} else if (cJSON_IsString(v) && cs_parse_duration(v->valuestring, &secs) == 0) {
			;
		} else {
			break;
		}
		if (secs > CS_MAX_DURATION_SECS)
			break;
		cJSON_ReplaceItemInObjectCaseSensitive(req->data, f->name,
						       cJSON_CreateNumber((double)secs));
		return 0;
	}
	case CS_FIELD_MAP:
		if (cJSON_IsObject(v))
			return 0;
		if (cJSON_IsNull(v)) {
			cJSON_DeleteItemFromObjectCaseSensitive(req->data, f->name);
			return 0;
		}
		if (cJSON_IsString(v) && *v->valuestring == '\0') {
			cJSON_DeleteItemFromObjectCaseSensitive(req->data, f->name);
			return 0;
		}
		break;
	case CS_FIELD_STRLIST:
		if (cJSON_IsArray(v)) {
			const cJSON *e;
			cJSON_ArrayForEach(e, v) if (!cJSON_IsString(e)) goto bad;
			return 0;
		}
		if (cJSON_IsString(v)) {
			cJSON *a = cJSON_CreateArray();
			char *dup = strdup(v->valuestring), *save = NULL;
			for (char *t = strtok_r(dup, ",", &save); t;
			     t = strtok_r(NULL, ",", &save)) {
				while (*t == ' ')
					t++;
				if (*t)
					cJSON_AddItemToArray(a, cJSON_CreateString(t));
			}
			free(dup);
			cJSON_ReplaceItemInObjectCaseSensitive(req->data, f->name, a);
			return 0;
		}
		break;
	case CS_FIELD_ANY:
		return 0;
	}
bad:
	return cs_req_error(req, CS_EINVAL, "error converting input for field \"%s\"", f->name);
}

static const struct cs_field *find_field(const struct cs_field *fields, const char *name)
{
	for (const struct cs_field *f = fields; f && f->name; f++)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

const struct cs_field *cs_backend_missing_field(const struct cs_field *fields, const cJSON *data,
						enum cs_op op)
{
	/* Writes only: one row often serves read, write and delete with one schema, and a
	 * patch is partial by definition. */
	if (op != CS_OP_CREATE && op != CS_OP_UPDATE)
		return NULL;
	for (const struct cs_field *f = fields; f && f->name; f++) {
		if (!f->required)
			continue;
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(data, f->name);
		if (!v || cJSON_IsNull(v) || (cJSON_IsString(v) && !*v->valuestring))
			return f;
	}
	return NULL;
}

static int validate(struct cs_request *req)
{
	const struct cs_path *p = req->route;
	/* Free-form bodies (KV data) stay exactly as sent: captures are read with
	 * cs_req_capture instead. */
	if (p->flags & CS_PATH_ANY_FIELDS)
		return 0;
	/* Captures become fields and win over the body, as in Vault: a path parameter comes
	 * only from the route, so the name the ACL saw in the path is the one the handler acts
	 * on. Every member of that name goes (bodies with repeated keys are refused earlier,
	 * but internal requests and form bodies must not be able to reintroduce the hole). */
	for (int i = 0; i < req->n_caps; i++) {
		char name[64];
		snprintf(name, sizeof name, "%.*s", (int)req->caps[i].name_len, req->caps[i].name);
		cJSON *old;
		while ((old = cJSON_DetachItemFromObjectCaseSensitive(req->data, name)))
			cs_json_delete_wiped(old);
		cJSON_AddStringToObject(req->data, name, req->caps[i].value);
	}
	struct cs_buf unknown = CS_BUF_INIT;
	cJSON *v;
	cJSON_ArrayForEach(v, req->data)
	{
		const struct cs_field *f = find_field(p->fields, v->string);
		if (!f) {
			bool is_cap = false;
			for (int i = 0; i < req->n_caps; i++)
				if (strlen(v->string) == req->caps[i].name_len &&
				    memcmp(v->string, req->caps[i].name, req->caps[i].name_len) ==
					0)
					is_cap = true;
			if (!is_cap)
				cs_buf_printf(&unknown, "%s%s", unknown.len ? " " : "", v->string);
			continue;
		}
	}
	for (const struct cs_field *f = p->fields; f && f->name; f++) {
		cJSON *fv = cJSON_GetObjectItemCaseSensitive(req->data, f->name);
		int rc = fv ? coerce(req, f, fv) : 0;
		if (rc) {
			cs_buf_free(&unknown);
			return rc;
		}
	}
	/* After coercion, so that a badly typed field is reported as before and a null (which
	 * coercion drops) counts as absent. */
	const struct cs_field *miss = cs_backend_missing_field(p->fields, req->data, req->op);
	if (miss) {
		cs_buf_free(&unknown);
		return cs_req_error(req, CS_EINVAL, "missing required field \"%s\"", miss->name);
	}
	if (unknown.len && req->op != CS_OP_READ && req->op != CS_OP_LIST)
		cs_req_warn(req, "Endpoint ignored these unrecognized parameters: [%s]",
			    unknown.data);
	cs_buf_free(&unknown);
	return 0;
}

int cs_backend_dispatch(struct cs_request *req)
{
	const struct cs_path *p = req->route;
	enum cs_op op = req->op;
	int rc;
	if (op == CS_OP_UPDATE && p->exists && p->ops[CS_OP_CREATE]) {
		bool exists = true;
		rc = p->exists(req, &exists);
		if (rc)
			return rc;
		if (!exists)
			op = CS_OP_CREATE;
	}
	req->op = op;
	/* As in Vault: permission first (403), then the operation (405), then the input (400). */
	if (!(p->flags & CS_PATH_UNAUTH) && (rc = cs_backend_acl(req)))
		return rc;
	cs_handler_fn h = p->ops[op];
	if (!h && op == CS_OP_CREATE)
		h = p->ops[CS_OP_UPDATE];
	if (!h)
		return cs_req_error(req, CS_EUNSUPPORTED, "unsupported operation");
	if ((rc = validate(req)))
		return rc;
	return h(req);
}

/* ------------------------------------------------------------------ accessors */

const cJSON *cs_req_get(const struct cs_request *req, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(req->data, name);
}

bool cs_req_has(const struct cs_request *req, const char *name)
{
	return cs_req_get(req, name) != NULL;
}

const char *cs_req_str(const struct cs_request *req, const char *name, const char *def)
{
	const cJSON *v = cs_req_get(req, name);
	return cJSON_IsString(v) ? v->valuestring : def;
}

int64_t cs_req_int(const struct cs_request *req, const char *name, int64_t def)
{
	const cJSON *v = cs_req_get(req, name);
	if (!cJSON_IsNumber(v))
		return def;
	/* Saturate instead of casting an out-of-range double (undefined behaviour). */
	double d = v->valuedouble;
	if (d >= 9223372036854775807.0)
		return INT64_MAX;
	if (d <= -9223372036854775808.0)
		return INT64_MIN;
	return (int64_t)d;
}

bool cs_req_bool(const struct cs_request *req, const char *name, bool def)
{
	const cJSON *v = cs_req_get(req, name);
	return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

const char *cs_req_capture(const struct cs_request *req, const char *name)
{
	size_t n = strlen(name);
	for (int i = 0; i < req->n_caps; i++)
		if (req->caps[i].name_len == n && memcmp(req->caps[i].name, name, n) == 0)
			return req->caps[i].value;
	return NULL;
}

int cs_req_error(struct cs_request *req, int code, const char *fmt, ...)
{
	struct cs_buf b = CS_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	cs_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	free(req->errmsg);
	req->errmsg = cs_buf_steal(&b, NULL);
	return code;
}

int cs_req_error_after_commit(struct cs_request *req, int code, const char *fmt, ...)
{
	struct cs_buf b = CS_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	cs_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	free(req->errmsg);
	req->errmsg = cs_buf_steal(&b, NULL);
	req->commit_error = code;
	return 0;
}

void cs_req_warn(struct cs_request *req, const char *fmt, ...)
{
	struct cs_buf b = CS_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	cs_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	if (!req->warnings)
		req->warnings = cJSON_CreateArray();
	cJSON_AddItemToArray(req->warnings, cJSON_CreateString(b.data));
	cs_buf_free(&b);
}

void cs_req_set_data(struct cs_request *req, cJSON *data)
{
	cJSON_Delete(req->resp_data);
	req->resp_data = data;
}

void cs_req_set_raw(struct cs_request *req, const char *content_type, const void *body, size_t len)
{
	free(req->raw_body);
	req->raw_body = malloc(len ? len : 1);
	if (!req->raw_body)
		abort();
	if (len)
		memcpy(req->raw_body, body, len);
	req->raw_len = len;
	req->raw_type = content_type;
}

int cs_req_add_header(struct cs_request *req, const char *name, const char *value)
{
	/* A CR or LF would let a value inject headers or split the response. */
	if (req->n_resp_headers >= 2 * CS_MAX_RESP_HEADERS || !*name || strpbrk(name, "\r\n: ") ||
	    strpbrk(value, "\r\n"))
		return CS_EINVAL;
	char *n = strdup(name), *v = strdup(value);
	if (!n || !v)
		abort();
	req->resp_headers[req->n_resp_headers++] = n;
	req->resp_headers[req->n_resp_headers++] = v;
	return 0;
}

const uint8_t *cs_req_body(const struct cs_request *req, size_t *len)
{
	*len = 0;
	if (!req->raw_request || !req->http || !req->route ||
	    !(req->route->flags & CS_PATH_RAW_BODY))
		return NULL;
	*len = req->http->body.len;
	return (const uint8_t *)req->http->body.data;
}

/* ------------------------------------------------------------------ views */

static char *view_key(const struct cs_request *req, const char *key)
{
	const char *prefix = cs_req_storage_prefix(req);
	size_t pl = strlen(prefix), kl = strlen(key);
	char *k = malloc(pl + kl + 1);
	if (!k)
		abort();
	memcpy(k, prefix, pl);
	memcpy(k + pl, key, kl + 1);
	return k;
}

int cs_view_get(struct cs_request *req, const char *key, struct cs_buf *out)
{
	char *k = view_key(req, key);
	int rc = cs_txn_get(&req->txn, k, out);
	free(k);
	return rc;
}

int cs_view_exists(struct cs_request *req, const char *key, bool *exists)
{
	char *k = view_key(req, key);
	struct cs_buf b = CS_BUF_INIT;
	int rc = cs_txn_get_raw(&req->txn, k, &b); /* ciphertext: nothing to wipe */
	free(k);
	cs_buf_free(&b);
	*exists = rc == 0;
	return rc == CS_ENOTFOUND ? 0 : rc;
}

int cs_view_put(struct cs_request *req, const char *key, const void *val, size_t n)
{
	char *k = view_key(req, key);
	int rc = cs_txn_put(&req->txn, k, val, n);
	free(k);
	return rc;
}

int cs_view_delete(struct cs_request *req, const char *key)
{
	char *k = view_key(req, key);
	int rc = cs_txn_delete(&req->txn, k);
	free(k);
	return rc;
}

int cs_view_list(struct cs_request *req, const char *prefix, struct cs_strv *out)
{
	char *k = view_key(req, prefix);
	int rc = cs_txn_list(&req->txn, k, out);
	free(k);
	return rc;
}

int cs_view_get_json(struct cs_request *req, const char *key, cJSON **out)
{
	struct cs_buf b = CS_BUF_INIT;
	int rc = cs_view_get(req, key, &b);
	if (rc) {
		cs_buf_free_secure(&b);
		return rc;
	}
	*out = cJSON_ParseWithLength(b.data, b.len);
	cs_buf_free_secure(&b);
	return *out ? 0 : CS_EIO;
}

int cs_view_put_json(struct cs_request *req, const char *key, const cJSON *obj)
{
	char *s = cJSON_PrintUnformatted(obj);
	if (!s)
		return CS_ENOMEM;
	size_t n = strlen(s);
	int rc = cs_view_put(req, key, s, n);
	cs_zero(s, n);
	free(s);
	return rc;
}
