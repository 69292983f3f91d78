/*
 * CLI output formatting (see format.h). The shapes follow the Vault CLI's Go code: the
 * JSON printer mirrors encoding/json, cs_fmt_value mirrors fmt's %v of the values
 * encoding/json decodes into, and the tables mirror columnize as Vault configures it.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/format.h"
#include "lib/util.h"

/* ------------------------------------------------------------------ small helpers */

static size_t utf8_len(const char *s, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			c++;
	return c;
}

static int cmp_children(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
	return strcmp(x->string ? x->string : "", y->string ? y->string : "");
}

/* The children of an object, sorted by key if asked. Caller frees the array. */
static const cJSON **children(const cJSON *obj, size_t *n, bool sort)
{
	size_t cnt = 0;
	for (const cJSON *c = obj->child; c; c = c->next)
		cnt++;
	const cJSON **v = calloc(cnt ? cnt : 1, sizeof *v);
	if (!v)
		abort();
	size_t i = 0;
	for (const cJSON *c = obj->child; c; c = c->next)
		v[i++] = c;
	if (sort && cnt > 1)
		qsort(v, cnt, sizeof *v, cmp_children);
	*n = cnt;
	return v;
}

void cs_fmt_number(struct cs_buf *out, double d)
{
	if (d != d) {
		cs_buf_puts(out, "NaN");
		return;
	}
	if (d >= -9007199254740992.0 && d <= 9007199254740992.0 && d == (double)(long long)d) {
		cs_buf_printf(out, "%lld", (long long)d);
		return;
	}
	char tmp[40];
	snprintf(tmp, sizeof tmp, "%.15g", d);
	if (strtod(tmp, NULL) != d)
		snprintf(tmp, sizeof tmp, "%.17g", d);
	cs_buf_puts(out, tmp);
}

/* ------------------------------------------------------------------ JSON */

static void json_string(struct cs_buf *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	cs_buf_putc(out, '"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		unsigned char c = *p;
		switch (c) {
		case '"':
			cs_buf_puts(out, "\\\"");
			break;
		case '\\':
			cs_buf_puts(out, "\\\\");
			break;
		case '\n':
			cs_buf_puts(out, "\\n");
			break;
		case '\r':
			cs_buf_puts(out, "\\r");
			break;
		case '\t':
			cs_buf_puts(out, "\\t");
			break;
		case '<':
		case '>':
		case '&':
			cs_buf_printf(out, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
			break;
		default:
			if (c < 0x20) {
				cs_buf_printf(out, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
			} else if (c == 0xE2 && p[1] == 0x80 && (p[2] == 0xA8 || p[2] == 0xA9)) {
				/* U+2028 / U+2029, escaped by Go for JavaScript safety. */
				cs_buf_puts(out, p[2] == 0xA8 ? "\\u2028" : "\\u2029");
				p += 2;
			} else {
				cs_buf_putc(out, (char)c);
			}
		}
	}
	cs_buf_putc(out, '"');
}

static void indent(struct cs_buf *out, int depth)
{
	cs_buf_putc(out, '\n');
	for (int i = 0; i < depth; i++)
		cs_buf_puts(out, "  ");
}

static void json_value(struct cs_buf *out, const cJSON *v, int depth, bool sort)
{
	if (!v || cJSON_IsNull(v) || cJSON_IsInvalid(v)) {
		cs_buf_puts(out, "null");
	} else if (cJSON_IsBool(v)) {
		cs_buf_puts(out, cJSON_IsTrue(v) ? "true" : "false");
	} else if (cJSON_IsNumber(v)) {
		cs_fmt_number(out, v->valuedouble);
	} else if (cJSON_IsString(v)) {
		json_string(out, v->valuestring ? v->valuestring : "");
	} else if (cJSON_IsRaw(v)) {
		cs_buf_puts(out, v->valuestring ? v->valuestring : "null");
	} else if (cJSON_IsArray(v)) {
		if (!v->child) {
			cs_buf_puts(out, "[]");
			return;
		}
		cs_buf_putc(out, '[');
		for (const cJSON *c = v->child; c; c = c->next) {
			indent(out, depth + 1);
			json_value(out, c, depth + 1, true);
			if (c->next)
				cs_buf_putc(out, ',');
		}
		indent(out, depth);
		cs_buf_putc(out, ']');
	} else if (cJSON_IsObject(v)) {
		if (!v->child) {
			cs_buf_puts(out, "{}");
			return;
		}
		size_t n;
		const cJSON **kids = children(v, &n, sort);
		cs_buf_putc(out, '{');
		for (size_t i = 0; i < n; i++) {
			indent(out, depth + 1);
			json_string(out, kids[i]->string ? kids[i]->string : "");
			cs_buf_puts(out, ": ");
			json_value(out, kids[i], depth + 1, true);
			if (i + 1 < n)
				cs_buf_putc(out, ',');
		}
		free(kids);
		indent(out, depth);
		cs_buf_putc(out, '}');
	} else {
		cs_buf_puts(out, "null");
	}
}

void cs_fmt_json(struct cs_buf *out, const cJSON *v, bool sort_top)
{
	json_value(out, v, 0, sort_top);
}

/* ------------------------------------------------------------------ Go %v */

void cs_fmt_value(struct cs_buf *out, const cJSON *v)
{
	if (!v || cJSON_IsNull(v) || cJSON_IsInvalid(v)) {
		cs_buf_puts(out, "<nil>");
	} else if (cJSON_IsBool(v)) {
		cs_buf_puts(out, cJSON_IsTrue(v) ? "true" : "false");
	} else if (cJSON_IsNumber(v)) {
		cs_fmt_number(out, v->valuedouble);
	} else if (cJSON_IsString(v) || cJSON_IsRaw(v)) {
		cs_buf_puts(out, v->valuestring ? v->valuestring : "");
	} else if (cJSON_IsArray(v)) {
		cs_buf_putc(out, '[');
		for (const cJSON *c = v->child; c; c = c->next) {
			cs_fmt_value(out, c);
			if (c->next)
				cs_buf_putc(out, ' ');
		}
		cs_buf_putc(out, ']');
	} else if (cJSON_IsObject(v)) {
		size_t n;
		const cJSON **kids = children(v, &n, true);
		cs_buf_puts(out, "map[");
		for (size_t i = 0; i < n; i++) {
			cs_buf_printf(out, "%s:", kids[i]->string ? kids[i]->string : "");
			cs_fmt_value(out, kids[i]);
			if (i + 1 < n)
				cs_buf_putc(out, ' ');
		}
		free(kids);
		cs_buf_putc(out, ']');
	}
}

/* Go's %q of a []string: ["a" "b"]. */
static void fmt_quoted_list(struct cs_buf *out, const cJSON *arr)
{
	cs_buf_putc(out, '[');
	if (cJSON_IsArray(arr)) {
		for (const cJSON *c = arr->child; c; c = c->next) {
			cs_buf_putc(out, '"');
			for (const char *p = cJSON_IsString(c) ? c->valuestring : ""; *p; p++) {
				if (*p == '"' || *p == '\\')
					cs_buf_putc(out, '\\');
				cs_buf_putc(out, *p);
			}
			cs_buf_putc(out, '"');
			if (c->next)
				cs_buf_putc(out, ' ');
		}
	}
	cs_buf_putc(out, ']');
}

/* ------------------------------------------------------------------ durations */

void cs_fmt_go_duration(int64_t secs, char *out, size_t outlen)
{
	if (secs == 0) {
		snprintf(out, outlen, "0s");
		return;
	}
	const char *sign = secs < 0 ? "-" : "";
	uint64_t u = secs < 0 ? (uint64_t)0 - (uint64_t)secs : (uint64_t)secs;
	uint64_t h = u / 3600, m = (u % 3600) / 60, s = u % 60;
	if (h)
		snprintf(out, outlen, "%s%lluh%llum%llus", sign, (unsigned long long)h,
			 (unsigned long long)m, (unsigned long long)s);
	else if (m)
		snprintf(out, outlen, "%s%llum%llus", sign, (unsigned long long)m,
			 (unsigned long long)s);
	else
		snprintf(out, outlen, "%s%llus", sign, (unsigned long long)s);
}

void cs_fmt_human_duration(int64_t secs, char *out, size_t outlen)
{
	cs_fmt_go_duration(secs, out, outlen);
	size_t n = strlen(out);
	if (n >= 3 && strcmp(out + n - 3, "m0s") == 0)
		out[n - 2] = '\0';
	char *p = strstr(out, "h0m");
	if (p && p > out)
		memmove(p + 1, p + 3, strlen(p + 3) + 1);
}

static bool has_suffix(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && strcmp(s + a - b, suf) == 0;
}

bool cs_fmt_looks_like_duration(const char *k)
{
	return strcmp(k, "period") == 0 || has_suffix(k, "_period") || strcmp(k, "ttl") == 0 ||
	       has_suffix(k, "_ttl") || strcmp(k, "duration") == 0 || has_suffix(k, "_duration") ||
	       strcmp(k, "lease_max") == 0 || strcmp(k, "ttl_max") == 0;
}

/* humanDurationInt: integral numbers become durations, anything else prints as %v. */
static void fmt_maybe_duration(struct cs_buf *out, const cJSON *v)
{
	if (cJSON_IsNumber(v) && v->valuedouble == (double)(long long)v->valuedouble) {
		char d[48];
		cs_fmt_human_duration((int64_t)v->valuedouble, d, sizeof d);
		cs_buf_puts(out, d);
		return;
	}
	cs_fmt_value(out, v);
}

/* ------------------------------------------------------------------ lines & columns */

void cs_fmt_lines_add(struct cs_fmt_lines *l, const char *fmt, ...)
{
	struct cs_buf b = CS_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	cs_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = realloc(l->v, l->cap * sizeof *l->v);
		if (!l->v)
			abort();
	}
	if (!b.data)
		cs_buf_puts(&b, "");
	l->v[l->n++] = cs_buf_steal(&b, NULL);
}

/* Add a line built in a buffer (takes the buffer's memory, leaves it empty). */
static void lines_take(struct cs_fmt_lines *l, struct cs_buf *b)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = realloc(l->v, l->cap * sizeof *l->v);
		if (!l->v)
			abort();
	}
	if (!b->data)
		cs_buf_puts(b, "");
	l->v[l->n++] = cs_buf_steal(b, NULL);
}

void cs_fmt_lines_free(struct cs_fmt_lines *l)
{
	for (size_t i = 0; i < l->n; i++) {
		cs_zero(l->v[i], strlen(l->v[i]));
		free(l->v[i]);
	}
	free(l->v);
	memset(l, 0, sizeof *l);
}

struct cell {
	const char *p;
	size_t len;
};

/* Split one line into trimmed cells; "n/a" stands in for an empty cell. */
static size_t split_cells(const char *line, const char *delim, struct cell **cells)
{
	size_t dl = strlen(delim), n = 0, cap = 4;
	struct cell *v = malloc(cap * sizeof *v);
	if (!v)
		abort();
	const char *s = line;
	for (;;) {
		const char *e = strstr(s, delim);
		size_t len = e ? (size_t)(e - s) : strlen(s);
		const char *a = s, *b = s + len;
		while (a < b && isspace((unsigned char)*a))
			a++;
		while (b > a && isspace((unsigned char)b[-1]))
			b--;
		if (n == cap) {
			cap *= 2;
			v = realloc(v, cap * sizeof *v);
			if (!v)
				abort();
		}
		if (a == b)
			v[n++] = (struct cell){"n/a", 3};
		else
			v[n++] = (struct cell){a, (size_t)(b - a)};
		if (!e)
			break;
		s = e + dl;
	}
	*cells = v;
	return n;
}

void cs_fmt_columns(struct cs_buf *out, const struct cs_fmt_lines *l, const char *delim)
{
	if (l->n == 0)
		return;
	size_t *widths = NULL, nw = 0;
	for (size_t i = 0; i < l->n; i++) {
		struct cell *c;
		size_t n = split_cells(l->v[i], delim, &c);
		if (n > nw) {
			widths = realloc(widths, n * sizeof *widths);
			if (!widths)
				abort();
			for (size_t k = nw; k < n; k++)
				widths[k] = 0;
			nw = n;
		}
		for (size_t k = 0; k < n; k++) {
			size_t w = utf8_len(c[k].p, c[k].len);
			if (w > widths[k])
				widths[k] = w;
		}
		free(c);
	}
	for (size_t i = 0; i < l->n; i++) {
		struct cell *c;
		size_t n = split_cells(l->v[i], delim, &c);
		for (size_t k = 0; k < n; k++) {
			cs_buf_append(out, c[k].p, c[k].len);
			if (k + 1 < n) {
				for (size_t w = utf8_len(c[k].p, c[k].len); w < widths[k]; w++)
					cs_buf_putc(out, ' ');
				cs_buf_puts(out, "    ");
			}
		}
		if (i + 1 < l->n)
			cs_buf_putc(out, '\n');
		free(c);
	}
	free(widths);
}

void cs_fmt_table(struct cs_buf *out, const struct cs_fmt_lines *l, const char *delim)
{
	if (l->n == 0)
		return;
	struct cs_buf u = CS_BUF_INIT;
	struct cell *c;
	size_t n = split_cells(l->v[0], delim, &c);
	for (size_t k = 0; k < n; k++) {
		/* Dashes as long as the header's bytes (headers are ASCII). */
		size_t len = (c[k].len == 3 && memcmp(c[k].p, "n/a", 3) == 0) ? 0 : c[k].len;
		for (size_t j = 0; j < len; j++)
			cs_buf_putc(&u, '-');
		if (k + 1 < n)
			cs_buf_puts(&u, delim);
	}
	free(c);
	struct cs_fmt_lines t = {NULL, 0, 0};
	t.cap = l->n + 1;
	t.v = malloc(t.cap * sizeof *t.v);
	if (!t.v)
		abort();
	t.v[0] = l->v[0];
	t.v[1] = u.data ? u.data : (char *)"";
	for (size_t i = 1; i < l->n; i++)
		t.v[i + 1] = l->v[i];
	t.n = l->n + 1;
	cs_fmt_columns(out, &t, delim);
	free(t.v);
	cs_buf_free(&u);
}

/* ------------------------------------------------------------------ wrapping */

void cs_fmt_wrap(struct cs_buf *out, const char *s, int pad)
{
	long lim = CS_FMT_WRAP - pad;
	/* Words: trim, newlines become spaces, split on single spaces (as kr/text does). */
	const char *a = s, *b = s + strlen(s);
	while (a < b && isspace((unsigned char)*a))
		a++;
	while (b > a && isspace((unsigned char)b[-1]))
		b--;
	size_t n = 1;
	for (const char *p = a; p < b; p++)
		if (*p == ' ' || *p == '\n')
			n++;
	const char **w = malloc(n * sizeof *w);
	long *wl = malloc(n * sizeof *wl);
	long *pre = malloc((n + 1) * sizeof *pre);
	long *cost = malloc(n * sizeof *cost);
	size_t *brk = malloc(n * sizeof *brk);
	if (!w || !wl || !pre || !cost || !brk)
		abort();
	size_t i = 0;
	const char *start = a;
	for (const char *p = a;; p++) {
		if (p == b || *p == ' ' || *p == '\n') {
			w[i] = start;
			wl[i] = (long)(p - start);
			i++;
			start = p + 1;
			if (p == b)
				break;
		}
	}
	pre[0] = 0;
	for (i = 0; i < n; i++)
		pre[i + 1] = pre[i] + (long)utf8_len(w[i], (size_t)wl[i]);
/* Display length of words i..j joined by single spaces. */
#define SPAN(i, j) (pre[(j) + 1] - pre[(i)] + (long)((j) - (i)))
	for (size_t k = n; k-- > 0;) {
		cost[k] = 0x7fffffffL;
		if (SPAN(k, n - 1) <= lim || k == n - 1) {
			cost[k] = 0;
			brk[k] = n;
			continue;
		}
		for (size_t j = k + 1; j < n; j++) {
			long d = lim - SPAN(k, j - 1);
			long c = d * d + cost[j];
			if (SPAN(k, j - 1) > lim)
				c += 100000; /* kr/text's penalty for over-long lines */
			if (c < cost[k]) {
				cost[k] = c;
				brk[k] = j;
			}
		}
	}
#undef SPAN
	for (i = 0; i < n;) {
		if (i > 0)
			cs_buf_putc(out, '\n');
		for (int p = 0; p < pad; p++)
			cs_buf_putc(out, ' ');
		for (size_t j = i; j < brk[i]; j++) {
			if (j > i)
				cs_buf_putc(out, ' ');
			cs_buf_append(out, w[j], (size_t)wl[j]);
		}
		i = brk[i];
	}
	free(w);
	free(wl);
	free(pre);
	free(cost);
	free(brk);
}

/* ------------------------------------------------------------------ Vault shapes */

static const char *str_field(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) && v->valuestring ? v->valuestring : "";
}

static double num_field(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static bool bool_field(const cJSON *o, const char *k)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

void cs_fmt_warnings(struct cs_buf *out, const cJSON *secret)
{
	const cJSON *w = cJSON_GetObjectItemCaseSensitive(secret, "warnings");
	if (!cJSON_IsArray(w) || !w->child)
		return;
	cs_buf_puts(out, "WARNING! The following warnings were returned from custos:\n\n");
	for (const cJSON *c = w->child; c; c = c->next) {
		struct cs_buf t = CS_BUF_INIT;
		cs_buf_puts(&t, "* ");
		cs_fmt_value(&t, c);
		cs_fmt_wrap(out, t.data, 2);
		cs_buf_free(&t);
		cs_buf_puts(out, "\n\n");
	}
}

/* One "key ♨ value" line where the value is rendered by a callback-free helper. */
static void add_kv(struct cs_fmt_lines *l, const char *k, const cJSON *v, bool duration)
{
	struct cs_buf b = CS_BUF_INIT;
	cs_buf_printf(&b, "%s %s ", k, CS_FMT_DELIM);
	if (duration)
		fmt_maybe_duration(&b, v);
	else
		cs_fmt_value(&b, v);
	lines_take(l, &b);
}

void cs_fmt_secret_table(struct cs_buf *out, const cJSON *secret)
{
	struct cs_fmt_lines l = {NULL, 0, 0};
	const char *D = CS_FMT_DELIM;
	char d[48];

	double ld = num_field(secret, "lease_duration");
	if (ld > 0) {
		cs_fmt_human_duration((int64_t)ld, d, sizeof d);
		const char *lid = str_field(secret, "lease_id");
		if (*lid) {
			cs_fmt_lines_add(&l, "lease_id %s %s", D, lid);
			cs_fmt_lines_add(&l, "lease_duration %s %s", D, d);
			cs_fmt_lines_add(&l, "lease_renewable %s %s", D,
					 bool_field(secret, "renewable") ? "true" : "false");
		} else {
			cs_fmt_lines_add(&l, "refresh_interval %s %s", D, d);
		}
	}

	const cJSON *auth = cJSON_GetObjectItemCaseSensitive(secret, "auth");
	if (cJSON_IsObject(auth)) {
		const cJSON *mfa = cJSON_GetObjectItemCaseSensitive(auth, "mfa_requirement");
		if (cJSON_IsObject(mfa)) {
			cs_fmt_lines_add(&l, "mfa_request_id %s %s", D,
					 str_field(mfa, "mfa_request_id"));
		} else {
			cs_fmt_lines_add(&l, "token %s %s", D, str_field(auth, "client_token"));
			cs_fmt_lines_add(&l, "token_accessor %s %s", D,
					 str_field(auth, "accessor"));
			double ald = num_field(auth, "lease_duration");
			if (ald == 0) {
				cs_fmt_lines_add(&l, "token_duration %s \xe2\x88\x9e", D);
			} else {
				cs_fmt_human_duration((int64_t)ald, d, sizeof d);
				cs_fmt_lines_add(&l, "token_duration %s %s", D, d);
			}
			cs_fmt_lines_add(&l, "token_renewable %s %s", D,
					 bool_field(auth, "renewable") ? "true" : "false");
			static const char *const pols[][2] = {
			    {"token_policies", "token_policies"},
			    {"identity_policies", "identity_policies"},
			    {"policies", "policies"}};
			for (size_t i = 0; i < CS_ARRAY_LEN(pols); i++) {
				struct cs_buf b = CS_BUF_INIT;
				cs_buf_printf(&b, "%s %s ", pols[i][0], D);
				fmt_quoted_list(&b,
						cJSON_GetObjectItemCaseSensitive(auth, pols[i][1]));
				lines_take(&l, &b);
			}
			const cJSON *meta = cJSON_GetObjectItemCaseSensitive(auth, "metadata");
			if (cJSON_IsObject(meta)) {
				size_t n;
				const cJSON **kids = children(meta, &n, true);
				for (size_t i = 0; i < n; i++) {
					struct cs_buf b = CS_BUF_INIT;
					cs_buf_printf(&b, "token_meta_%s %s ", kids[i]->string, D);
					cs_fmt_value(&b, kids[i]);
					lines_take(&l, &b);
				}
				free(kids);
			}
		}
	}

	const cJSON *wi = cJSON_GetObjectItemCaseSensitive(secret, "wrap_info");
	if (cJSON_IsObject(wi)) {
		cs_fmt_lines_add(&l, "wrapping_token: %s %s", D, str_field(wi, "token"));
		cs_fmt_lines_add(&l, "wrapping_accessor: %s %s", D, str_field(wi, "accessor"));
		cs_fmt_human_duration((int64_t)num_field(wi, "ttl"), d, sizeof d);
		cs_fmt_lines_add(&l, "wrapping_token_ttl: %s %s", D, d);
		cs_fmt_lines_add(&l, "wrapping_token_creation_time: %s %s", D,
				 str_field(wi, "creation_time"));
		cs_fmt_lines_add(&l, "wrapping_token_creation_path: %s %s", D,
				 str_field(wi, "creation_path"));
		if (*str_field(wi, "wrapped_accessor"))
			cs_fmt_lines_add(&l, "wrapped_accessor: %s %s", D,
					 str_field(wi, "wrapped_accessor"));
	}

	const cJSON *data = cJSON_GetObjectItemCaseSensitive(secret, "data");
	if (cJSON_IsObject(data)) {
		size_t n;
		const cJSON **kids = children(data, &n, true);
		for (size_t i = 0; i < n; i++)
			add_kv(&l, kids[i]->string, kids[i],
			       cs_fmt_looks_like_duration(kids[i]->string));
		free(kids);
	}

	if (l.n > 0) {
		/* Prepend the header. */
		struct cs_fmt_lines t = {NULL, 0, 0};
		cs_fmt_lines_add(&t, "Key%sValue", D);
		for (size_t i = 0; i < l.n; i++) {
			struct cs_buf b = CS_BUF_INIT;
			cs_buf_puts(&b, l.v[i]);
			lines_take(&t, &b);
		}
		cs_fmt_table(out, &t, D);
		cs_fmt_lines_free(&t);
	}
	cs_fmt_lines_free(&l);
}

void cs_fmt_seal_status_table(struct cs_buf *out, const cJSON *st)
{
	struct cs_fmt_lines l = {NULL, 0, 0};
	bool recovery = bool_field(st, "recovery_seal");
	bool sealed = bool_field(st, "sealed");
	long t = (long)num_field(st, "t");

	cs_fmt_lines_add(&l, "Key | Value");
	cs_fmt_lines_add(&l, "Seal Type | %s", str_field(st, "type"));
	if (recovery)
		cs_fmt_lines_add(&l, "Recovery Seal Type | %s",
				 str_field(st, "recovery_seal_type"));
	cs_fmt_lines_add(&l, "Initialized | %s", bool_field(st, "initialized") ? "true" : "false");
	cs_fmt_lines_add(&l, "Sealed | %s", sealed ? "true" : "false");
	cs_fmt_lines_add(&l, "Total %sShares | %ld", recovery ? "Recovery " : "",
			 (long)num_field(st, "n"));
	cs_fmt_lines_add(&l, "Threshold | %ld", t);
	if (sealed) {
		cs_fmt_lines_add(&l, "Unseal Progress | %ld/%ld", (long)num_field(st, "progress"),
				 t);
		cs_fmt_lines_add(&l, "Unseal Nonce | %s", str_field(st, "nonce"));
	}
	if (bool_field(st, "migration"))
		cs_fmt_lines_add(&l, "Seal Migration in Progress | true");
	if (*str_field(st, "version"))
		cs_fmt_lines_add(&l, "Version | %s", str_field(st, "version"));
	if (*str_field(st, "build_date"))
		cs_fmt_lines_add(&l, "Build Date | %s", str_field(st, "build_date"));
	if (*str_field(st, "storage_type"))
		cs_fmt_lines_add(&l, "Storage Type | %s", str_field(st, "storage_type"));
	if (*str_field(st, "cluster_name") && *str_field(st, "cluster_id")) {
		cs_fmt_lines_add(&l, "Cluster Name | %s", str_field(st, "cluster_name"));
		cs_fmt_lines_add(&l, "Cluster ID | %s", str_field(st, "cluster_id"));
	}
	const cJSON *removed = cJSON_GetObjectItemCaseSensitive(st, "removed_from_cluster");
	if (cJSON_IsBool(removed))
		cs_fmt_lines_add(&l, "Removed From Cluster | %s",
				 cJSON_IsTrue(removed) ? "true" : "false");
	bool ha = bool_field(st, "ha_enabled");
	cs_fmt_lines_add(&l, "HA Enabled | %s", ha ? "true" : "false");
	if (ha && !sealed) {
		bool self = bool_field(st, "is_self");
		cs_fmt_lines_add(&l, "HA Cluster | %s", str_field(st, "leader_cluster_address"));
		cs_fmt_lines_add(&l, "HA Mode | %s", self ? "active" : "standby");
		const char *at = str_field(st, "active_time");
		if (self && *at && strncmp(at, "0001-01-01T00:00:00", 19) != 0)
			cs_fmt_lines_add(&l, "Active Since | %s", at);
		if (!self && *str_field(st, "leader_address"))
			cs_fmt_lines_add(&l, "Active Node Address | %s",
					 str_field(st, "leader_address"));
	}
	double ci = num_field(st, "raft_committed_index"), ai = num_field(st, "raft_applied_index");
	if (ci > 0)
		cs_fmt_lines_add(&l, "Raft Committed Index | %.0f", ci);
	if (ai > 0)
		cs_fmt_lines_add(&l, "Raft Applied Index | %.0f", ai);

	cs_fmt_table(out, &l, "|");
	cs_fmt_lines_free(&l);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void cs_fmt_keys_table(struct cs_buf *out, const cJSON *keys)
{
	size_t n = 0;
	const cJSON *first = cJSON_IsArray(keys) ? keys->child : NULL;
	for (const cJSON *c = first; c; c = c->next)
		n++;
	if (n == 0)
		return;
	const char **v = calloc(n, sizeof *v);
	if (!v)
		abort();
	size_t i = 0;
	for (const cJSON *c = first; c; c = c->next)
		v[i++] = cJSON_IsString(c) ? c->valuestring : "";
	qsort(v, n, sizeof *v, cmp_str);
	struct cs_fmt_lines l = {NULL, 0, 0};
	cs_fmt_lines_add(&l, "Keys");
	for (i = 0; i < n; i++)
		cs_fmt_lines_add(&l, "%s", v[i]);
	free(v);
	cs_fmt_table(out, &l, CS_FMT_DELIM);
	cs_fmt_lines_free(&l);
}
