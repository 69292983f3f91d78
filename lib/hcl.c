/*
 * HCL v1 / JSON parser: one recursive-descent pass straight over the bytes, no separate
 * token stream. JSON is the subset "{ "key": value, ... }" of the object syntax, so the
 * same member/value functions serve both; the only JSON-specific rule is that a document
 * starting with '{' must be exactly one object.
 *
 * The input is not NUL-terminated (the fuzzer hands us raw bytes), so every read checks
 * the end pointer. Nesting is bounded so hostile input cannot exhaust the stack here, in
 * cs_hcl_free or in cs_hcl_to_json. Only the first error is kept; once set, every
 * function unwinds and the partial tree is freed by cs_hcl_parse.
 */
#include "lib/hcl.h"

#include "lib/buf.h"
#include "lib/err.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deep enough for any real policy or config, shallow enough for an 8 MiB stack. */
#define HCL_MAX_DEPTH 200

struct parser {
	const char *p;   /* cursor */
	const char *end; /* one past the last byte */
	int line;        /* line of *p */
	int depth;
	bool failed;
	char *errmsg;
	size_t errlen;
};

static int perr(struct parser *ps, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int perr(struct parser *ps, int line, const char *fmt, ...)
{
	if (ps->failed)
		return CS_EINVAL;
	ps->failed = true;
	if (!ps->errmsg || !ps->errlen)
		return CS_EINVAL;
	int n = snprintf(ps->errmsg, ps->errlen, "line %d: ", line);
	if (n >= 0 && (size_t)n < ps->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(ps->errmsg + n, ps->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return CS_EINVAL;
}

static struct cs_hcl_node *node_new(struct parser *ps, enum cs_hcl_type type, int line)
{
	struct cs_hcl_node *n = calloc(1, sizeof *n);
	if (!n) {
		perr(ps, line, "out of memory");
		return NULL;
	}
	n->type = type;
	n->line = line;
	return n;
}

void cs_hcl_free(struct cs_hcl_node *n)
{
	while (n) {
		struct cs_hcl_node *next = n->next;
		cs_hcl_free(n->child);
		free(n->key);
		free(n->str);
		free(n);
		n = next;
	}
}

static bool at_end(const struct parser *ps)
{
	return ps->p >= ps->end;
}

/* The byte at `off` ahead, or -1 past the end (a character, not an error code). */
static int peek(const struct parser *ps, size_t off)
{
	if ((size_t)(ps->end - ps->p) <= off)
		return -1;
	return (unsigned char)ps->p[off];
}

static bool is_ident_start(int c)
{
	/* Bytes >= 0x80 are UTF-8 letters as far as HCL's scanner is concerned. */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool is_ident_char(int c)
{
	return is_ident_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static bool is_anchor_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || is_digit(c);
}

/* Skip blanks, newlines and the three comment forms. */
static int skip_ws(struct parser *ps)
{
	while (!at_end(ps)) {
		int c = peek(ps, 0);
		if (c == ' ' || c == '\t' || c == '\r') {
			ps->p++;
		} else if (c == '\n') {
			ps->p++;
			ps->line++;
		} else if (c == '#' || (c == '/' && peek(ps, 1) == '/')) {
			while (!at_end(ps) && *ps->p != '\n')
				ps->p++;
		} else if (c == '/' && peek(ps, 1) == '*') {
			int start = ps->line;
			ps->p += 2;
			for (;;) {
				if (at_end(ps))
					return perr(ps, start, "unterminated /* comment");
				if (*ps->p == '*' && peek(ps, 1) == '/') {
					ps->p += 2;
					break;
				}
				if (*ps->p == '\n')
					ps->line++;
				ps->p++;
			}
		} else {
			break;
		}
	}
	return 0;
}

/* Describe the byte at the cursor for "unexpected ..." messages. */
static void describe(const struct parser *ps, char *out, size_t outlen)
{
	int c = peek(ps, 0);
	if (c < 0)
		snprintf(out, outlen, "end of input");
	else if (c >= 0x21 && c < 0x7f)
		snprintf(out, outlen, "'%c'", c);
	else
		snprintf(out, outlen, "byte 0x%02x", (unsigned)c);
}

static char *read_ident(struct parser *ps)
{
	const char *start = ps->p;
	while (!at_end(ps) && is_ident_char((unsigned char)*ps->p))
		ps->p++;
	char *s = strndup(start, (size_t)(ps->p - start));
	if (!s)
		perr(ps, ps->line, "out of memory");
	return s;
}

static int hex4(const char *p, uint32_t *out)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++) {
		int c = (unsigned char)p[i], d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return CS_EINVAL;
		v = v << 4 | (uint32_t)d;
	}
	*out = v;
	return 0;
}

static void put_utf8(struct cs_buf *b, uint32_t cp)
{
	char u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | cp >> 12);
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | cp >> 18);
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	cs_buf_append(b, u, n);
}

/* \uXXXX at ps->p (after the backslash and 'u'), joining UTF-16 surrogate pairs. */
static int unicode_escape(struct parser *ps, struct cs_buf *b)
{
	uint32_t cp, lo;
	if (ps->end - ps->p < 4 || hex4(ps->p, &cp))
		return perr(ps, ps->line, "invalid \\u escape (expected 4 hex digits)");
	ps->p += 4;
	if (cp >= 0xdc00 && cp <= 0xdfff)
		return perr(ps, ps->line, "invalid \\u escape: unpaired surrogate");
	if (cp >= 0xd800 && cp <= 0xdbff) {
		if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' ||
		    hex4(ps->p + 2, &lo) || lo < 0xdc00 || lo > 0xdfff)
			return perr(ps, ps->line, "invalid \\u escape: unpaired surrogate");
		ps->p += 6;
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
	}
	if (cp == 0)
		return perr(ps, ps->line, "\\u0000 is not allowed in a string");
	put_utf8(b, cp);
	return 0;
}

/* A double-quoted string at the cursor; returns malloc'd text or NULL (error set). */
static char *parse_quoted(struct parser *ps)
{
	int start = ps->line;
	struct cs_buf b = CS_BUF_INIT;
	ps->p++; /* opening quote */
	for (;;) {
		/* HCL v1 strings end on their own line: a newline means a missing quote. */
		if (at_end(ps) || *ps->p == '\n') {
			perr(ps, start, "unterminated string");
			goto fail;
		}
		unsigned char c = (unsigned char)*ps->p++;
		if (c == '"')
			break;
		if (c < 0x20 && c != '\t') {
			perr(ps, ps->line, "invalid control character 0x%02x in string", c);
			goto fail;
		}
		if (c != '\\') {
			cs_buf_putc(&b, (char)c);
			continue;
		}
		if (at_end(ps)) {
			perr(ps, start, "unterminated string");
			goto fail;
		}
		char e = *ps->p++;
		switch (e) {
		case '"':
		case '\\':
		case '/':
			cs_buf_putc(&b, e);
			break;
		case 'n':
			cs_buf_putc(&b, '\n');
			break;
		case 't':
			cs_buf_putc(&b, '\t');
			break;
		case 'r':
			cs_buf_putc(&b, '\r');
			break;
		case 'b':
			cs_buf_putc(&b, '\b');
			break;
		case 'f':
			cs_buf_putc(&b, '\f');
			break;
		case 'u':
			if (unicode_escape(ps, &b))
				goto fail;
			break;
		default:
			if (e == '\n')
				perr(ps, start, "unterminated string");
			else if ((unsigned char)e >= 0x21 && (unsigned char)e < 0x7f)
				perr(ps, ps->line, "invalid escape sequence \\%c in string", e);
			else
				perr(ps, ps->line, "invalid escape sequence in string");
			goto fail;
		}
	}
	return cs_buf_steal(&b, NULL);
fail:
	cs_buf_free(&b);
	return NULL;
}

/*
 * <<ANCHOR or <<-ANCHOR, newline, lines, then a line holding only the anchor (leading
 * blanks allowed, as HCL v1 allows them). The value is the lines in between, each ending
 * in '\n'. With <<- the blanks in front of the closing anchor are removed from every line
 * that carries them, so heredocs can be indented with the surrounding code.
 */
static int parse_heredoc(struct parser *ps, struct cs_hcl_node *n)
{
	int start = ps->line;
	ps->p += 2;
	bool indent = false;
	if (peek(ps, 0) == '-') {
		indent = true;
		ps->p++;
	}
	const char *anchor = ps->p;
	while (is_anchor_char(peek(ps, 0)))
		ps->p++;
	if (ps->p == anchor || is_digit((unsigned char)*anchor))
		return perr(ps, start, "heredoc needs an anchor name after <<");
	size_t alen = (size_t)(ps->p - anchor);
	if (peek(ps, 0) == '\r')
		ps->p++;
	if (peek(ps, 0) != '\n')
		return perr(ps, start, "heredoc anchor must be followed by a newline");
	ps->p++;
	ps->line++;

	/* First pass: find the closing line and its indentation. */
	const char *body = ps->p, *close = NULL;
	size_t prefix = 0;
	int lines = 0;
	for (const char *l = body; l < ps->end;) {
		const char *eol = memchr(l, '\n', (size_t)(ps->end - l));
		const char *stop = eol ? eol : ps->end;
		const char *t = l;
		while (t < stop && (*t == ' ' || *t == '\t'))
			t++;
		const char *te = stop;
		while (te > t && te[-1] == '\r')
			te--;
		if ((size_t)(te - t) == alen && memcmp(t, anchor, alen) == 0) {
			close = l;
			prefix = (size_t)(t - l);
			ps->p = stop; /* leave the newline to end the member */
			break;
		}
		if (!eol)
			break;
		lines++;
		l = eol + 1;
	}
	if (!close)
		return perr(ps, start, "unterminated heredoc: no closing %.*s line", (int)alen,
			    anchor);

	struct cs_buf b = CS_BUF_INIT;
	for (const char *l = body; l < close;) {
		const char *eol = memchr(l, '\n', (size_t)(close - l));
		size_t len = (size_t)(eol - l);
		if (indent && len >= prefix && memcmp(l, close, prefix) == 0) {
			l += prefix;
			len -= prefix;
		}
		cs_buf_append(&b, l, len);
		cs_buf_putc(&b, '\n');
		l = eol + 1;
	}
	ps->line += lines;
	n->type = CS_HCL_STRING;
	n->str = cs_buf_steal(&b, NULL);
	return 0;
}

static int parse_number(struct parser *ps, struct cs_hcl_node *n)
{
	const char *start = ps->p;
	bool is_int = true;
	if (peek(ps, 0) == '-')
		ps->p++;
	if (!is_digit(peek(ps, 0)))
		return perr(ps, ps->line, "invalid number");
	while (is_digit(peek(ps, 0)))
		ps->p++;
	if (peek(ps, 0) == '.') {
		is_int = false;
		ps->p++;
		if (!is_digit(peek(ps, 0)))
			return perr(ps, ps->line, "invalid number: digits expected after '.'");
		while (is_digit(peek(ps, 0)))
			ps->p++;
	}
	if (peek(ps, 0) == 'e' || peek(ps, 0) == 'E') {
		is_int = false;
		ps->p++;
		if (peek(ps, 0) == '+' || peek(ps, 0) == '-')
			ps->p++;
		if (!is_digit(peek(ps, 0)))
			return perr(ps, ps->line, "invalid number: digits expected in exponent");
		while (is_digit(peek(ps, 0)))
			ps->p++;
	}
	if (is_ident_char(peek(ps, 0)))
		return perr(ps, ps->line, "invalid number \"%.*s...\" (quote strings)",
			    (int)(ps->p - start + 1), start);
	n->type = CS_HCL_NUMBER;
	n->is_int = is_int;
	n->str = strndup(start, (size_t)(ps->p - start));
	if (!n->str)
		return perr(ps, ps->line, "out of memory");
	n->num = strtod(n->str, NULL);
	return 0;
}

static int parse_value(struct parser *ps, struct cs_hcl_node *n);

static int enter(struct parser *ps)
{
	if (++ps->depth > HCL_MAX_DEPTH)
		return perr(ps, ps->line, "nesting deeper than %d levels", HCL_MAX_DEPTH);
	return 0;
}

/* Append helper: keeps members and elements in document order. */
static void append(struct cs_hcl_node *parent, struct cs_hcl_node **tail, struct cs_hcl_node *n)
{
	if (*tail)
		(*tail)->next = n;
	else
		parent->child = n;
	*tail = n;
}

static int parse_member(struct parser *ps, struct cs_hcl_node **out);

/*
 * Members until the closing '}' (open_line > 0) or the end of input (open_line == 0,
 * the top level of an HCL document). Commas between members are optional.
 */
static int parse_body(struct parser *ps, struct cs_hcl_node *obj, int open_line)
{
	struct cs_hcl_node *tail = NULL;
	for (;;) {
		if (skip_ws(ps))
			return CS_EINVAL;
		if (at_end(ps)) {
			if (open_line)
				return perr(ps, open_line, "'{' is never closed");
			return 0;
		}
		if (*ps->p == '}') {
			if (!open_line)
				return perr(ps, ps->line, "unexpected '}'");
			ps->p++;
			return 0;
		}
		struct cs_hcl_node *m = NULL;
		int rc = parse_member(ps, &m);
		if (m)
			append(obj, &tail, m);
		if (rc)
			return CS_EINVAL;
		if (skip_ws(ps))
			return CS_EINVAL;
		if (peek(ps, 0) == ',')
			ps->p++;
	}
}

static int parse_object(struct parser *ps, struct cs_hcl_node *n)
{
	int open = ps->line;
	n->type = CS_HCL_OBJECT;
	ps->p++; /* '{' */
	if (enter(ps))
		return CS_EINVAL;
	int rc = parse_body(ps, n, open);
	ps->depth--;
	return rc;
}

static int parse_list(struct parser *ps, struct cs_hcl_node *n)
{
	int open = ps->line;
	struct cs_hcl_node *tail = NULL;
	n->type = CS_HCL_LIST;
	ps->p++; /* '[' */
	if (enter(ps))
		return CS_EINVAL;
	for (;;) {
		if (skip_ws(ps))
			return CS_EINVAL;
		if (at_end(ps))
			return perr(ps, open, "'[' is never closed");
		if (*ps->p == ']')
			break;
		struct cs_hcl_node *e = node_new(ps, CS_HCL_NULL, ps->line);
		if (!e)
			return CS_EINVAL;
		append(n, &tail, e);
		if (parse_value(ps, e))
			return CS_EINVAL;
		if (skip_ws(ps))
			return CS_EINVAL;
		if (at_end(ps))
			return perr(ps, open, "'[' is never closed");
		if (*ps->p == ',') {
			ps->p++;
			continue;
		}
		if (*ps->p != ']') {
			char what[32];
			describe(ps, what, sizeof what);
			return perr(ps, ps->line, "expected ',' or ']' in list, found %s", what);
		}
	}
	ps->p++; /* ']' */
	ps->depth--;
	return 0;
}

/* A value at the cursor (blanks already skipped) into n; n->line is set by the caller. */
static int parse_value(struct parser *ps, struct cs_hcl_node *n)
{
	int c = peek(ps, 0);
	if (c == '"') {
		n->type = CS_HCL_STRING;
		n->str = parse_quoted(ps);
		return n->str ? 0 : CS_EINVAL;
	}
	if (c == '<' && peek(ps, 1) == '<')
		return parse_heredoc(ps, n);
	if (c == '{')
		return parse_object(ps, n);
	if (c == '[')
		return parse_list(ps, n);
	if (c == '-' || is_digit(c))
		return parse_number(ps, n);
	if (c >= 0 && is_ident_start(c)) {
		int line = ps->line;
		char *id = read_ident(ps);
		if (!id)
			return CS_EINVAL;
		int rc = 0;
		if (strcmp(id, "true") == 0 || strcmp(id, "false") == 0) {
			n->type = CS_HCL_BOOL;
			n->b = id[0] == 't';
		} else if (strcmp(id, "null") == 0) {
			n->type = CS_HCL_NULL;
		} else {
			rc = perr(ps, line, "invalid value %.64s (strings must be quoted)", id);
		}
		free(id);
		return rc;
	}
	char what[32];
	describe(ps, what, sizeof what);
	return perr(ps, ps->line, "expected a value, found %s", what);
}

/* A key or block label: identifier or quoted string. */
static char *parse_name(struct parser *ps, const char *what)
{
	int c = peek(ps, 0);
	if (c == '"')
		return parse_quoted(ps);
	if (c >= 0 && is_ident_start(c))
		return read_ident(ps);
	char found[32];
	describe(ps, found, sizeof found);
	perr(ps, ps->line, "expected %s, found %s", what, found);
	return NULL;
}

/*
 * key = value | key: value | key label... { body }. A block nests one object per label,
 * so `a "b" "c" { x = 1 }` is a = { b = { c = { x = 1 } } }. *out is set as soon as the
 * member node exists so the caller can free a partial member on error.
 */
static int parse_member(struct parser *ps, struct cs_hcl_node **out)
{
	int key_line = ps->line;
	char *key = parse_name(ps, "a key");
	if (!key)
		return CS_EINVAL;
	struct cs_hcl_node *m = node_new(ps, CS_HCL_NULL, key_line);
	if (!m) {
		free(key);
		return CS_EINVAL;
	}
	m->key = key;
	*out = m;
	if (skip_ws(ps))
		return CS_EINVAL;
	int c = peek(ps, 0);
	if (c == '=' || c == ':') {
		ps->p++;
		if (skip_ws(ps))
			return CS_EINVAL;
		return parse_value(ps, m);
	}
	if (c != '{' && c != '"' && !(c >= 0 && is_ident_start(c))) {
		char found[32];
		describe(ps, found, sizeof found);
		return perr(ps, key_line, "expected '=' or '{' after key \"%.64s\", found %s", key,
			    found);
	}
	/* Block: labels, then the body. */
	struct cs_hcl_node *cur = m;
	int levels = 0, rc = 0;
	cur->type = CS_HCL_OBJECT;
	while (peek(ps, 0) != '{') {
		if (at_end(ps)) {
			rc = perr(ps, key_line, "block \"%.64s\" has no body", key);
			break;
		}
		if (enter(ps)) {
			rc = CS_EINVAL;
			break;
		}
		levels++;
		int label_line = ps->line;
		char *label = parse_name(ps, "a block label or '{'");
		if (!label) {
			rc = CS_EINVAL;
			break;
		}
		struct cs_hcl_node *l = node_new(ps, CS_HCL_OBJECT, label_line);
		if (!l) {
			free(label);
			rc = CS_EINVAL;
			break;
		}
		l->key = label;
		cur->child = l;
		cur = l;
		if (skip_ws(ps)) {
			rc = CS_EINVAL;
			break;
		}
	}
	if (!rc)
		rc = parse_object(ps, cur);
	ps->depth -= levels;
	return rc;
}

struct cs_hcl_node *cs_hcl_parse(const char *text, size_t len, char *errmsg, size_t errlen)
{
	struct parser ps = {"", NULL, 1, 0, false, errmsg, errlen};
	if (errmsg && errlen)
		errmsg[0] = '\0';
	if (!text)
		len = 0;
	else
		ps.p = text;
	ps.end = ps.p + len;
	/* A UTF-8 byte order mark is not content. */
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		ps.p += 3;
	struct cs_hcl_node *root = NULL;
	if (skip_ws(&ps))
		return NULL;
	root = node_new(&ps, CS_HCL_OBJECT, ps.line);
	if (!root)
		return NULL;
	if (peek(&ps, 0) == '{') {
		/* JSON document: exactly one object. */
		if (parse_object(&ps, root) || skip_ws(&ps))
			goto fail;
		if (!at_end(&ps)) {
			char what[32];
			describe(&ps, what, sizeof what);
			perr(&ps, ps.line, "unexpected %s after the closing '}'", what);
			goto fail;
		}
	} else {
		root->line = 1;
		if (parse_body(&ps, root, 0))
			goto fail;
	}
	return root;
fail:
	cs_hcl_free(root);
	return NULL;
}

const struct cs_hcl_node *cs_hcl_get(const struct cs_hcl_node *obj, const char *key)
{
	if (!obj || obj->type != CS_HCL_OBJECT)
		return NULL;
	for (const struct cs_hcl_node *m = obj->child; m; m = m->next)
		if (m->key && strcmp(m->key, key) == 0)
			return m;
	return NULL;
}

const char *cs_hcl_type_name(enum cs_hcl_type t)
{
	switch (t) {
	case CS_HCL_OBJECT:
		return "object";
	case CS_HCL_LIST:
		return "list";
	case CS_HCL_STRING:
		return "string";
	case CS_HCL_NUMBER:
		return "number";
	case CS_HCL_BOOL:
		return "bool";
	case CS_HCL_NULL:
		return "null";
	}
	return "unknown";
}

/*
 * Put `item` (whose ->string is its key) into `obj`. An existing object under the same
 * key absorbs the members of an object item, recursively; any other pair is replaced by
 * the later value. Consumes item.
 */
static void merge_member(cJSON *obj, cJSON *item)
{
	cJSON *old = cJSON_GetObjectItemCaseSensitive(obj, item->string);
	if (!old) {
		/* Appending to an object's list keeps item->string, allocated by cJSON. */
		cJSON_AddItemToArray(obj, item);
		return;
	}
	if (cJSON_IsObject(old) && cJSON_IsObject(item)) {
		while (item->child)
			merge_member(old, cJSON_DetachItemViaPointer(item, item->child));
		cJSON_Delete(item);
		return;
	}
	cJSON_ReplaceItemViaPointer(obj, old, item);
}

cJSON *cs_hcl_to_json(const struct cs_hcl_node *n)
{
	cJSON *out = NULL;
	switch (n->type) {
	case CS_HCL_OBJECT:
		out = cJSON_CreateObject();
		if (!out)
			return NULL;
		for (const struct cs_hcl_node *m = n->child; m; m = m->next) {
			cJSON *v = cs_hcl_to_json(m);
			/* Let cJSON allocate the key with its own allocator. */
			if (!v || !cJSON_AddItemToObject(out, m->key ? m->key : "", v)) {
				cJSON_Delete(v);
				cJSON_Delete(out);
				return NULL;
			}
			cJSON_DetachItemViaPointer(out, v);
			merge_member(out, v);
		}
		return out;
	case CS_HCL_LIST:
		out = cJSON_CreateArray();
		if (!out)
			return NULL;
		for (const struct cs_hcl_node *e = n->child; e; e = e->next) {
			cJSON *v = cs_hcl_to_json(e);
			if (!v) {
				cJSON_Delete(out);
				return NULL;
			}
			cJSON_AddItemToArray(out, v);
		}
		return out;
	case CS_HCL_STRING:
		return cJSON_CreateString(n->str ? n->str : "");
	case CS_HCL_NUMBER:
		return cJSON_CreateNumber(n->num);
	case CS_HCL_BOOL:
		return cJSON_CreateBool(n->b);
	case CS_HCL_NULL:
		return cJSON_CreateNull();
	}
	return NULL;
}
