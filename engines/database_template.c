/*
 * The username template renderer (engines/database_template.h): a recursive-descent
 * evaluator that parses and runs an action in one pass. Values are strings or integers;
 * every string is bounded by CS_DB_TEMPLATE_MAX_OUT, so no input can make it allocate
 * much, and nesting is bounded so that no input can exhaust the stack.
 */
#include "engines/database_template.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/util.h"

#define MAX_DEPTH 32
#define MAX_ARGS  8

struct val {
	bool is_int;
	int64_t i;
	char *s; /* malloc'd when !is_int */
};

struct ev {
	const char *p; /* the cursor, inside an action */
	const struct cs_db_template_data *d;
	int64_t now_ns;
	int depth;
	char *err;
	size_t errlen;
	bool failed;
};

static int fail(struct ev *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct ev *e, const char *fmt, ...)
{
	if (!e->failed) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(e->err, e->errlen, fmt, ap);
		va_end(ap);
	}
	e->failed = true;
	return CS_EINVAL;
}

static void val_free(struct val *v)
{
	if (!v->is_int)
		free(v->s);
	v->s = NULL;
}

static char *xstrndup(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (!d)
		abort();
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

static struct val str_val(char *s)
{
	return (struct val){.is_int = false, .s = s};
}

static int check_len(struct ev *e, size_t n)
{
	return n > CS_DB_TEMPLATE_MAX_OUT
		   ? fail(e, "template value longer than %d bytes", CS_DB_TEMPLATE_MAX_OUT)
		   : 0;
}

static void skip_space(struct ev *e)
{
	while (*e->p == ' ' || *e->p == '\t' || *e->p == '\n' || *e->p == '\r')
		e->p++;
}

/* Whether the cursor is at the end of the action: "}}" or " -}}". */
static bool at_action_end(struct ev *e)
{
	return (e->p[0] == '}' && e->p[1] == '}') ||
	       (e->p[0] == '-' && e->p[1] == '}' && e->p[2] == '}');
}

/* ---------------------------------------------------------------- functions */

static int want_str(struct ev *e, const char *fn, const struct val *v)
{
	return v->is_int ? fail(e, "%s: wrong type for value; expected string; got int", fn) : 0;
}

static int want_int(struct ev *e, const char *fn, const struct val *v)
{
	return !v->is_int ? fail(e, "%s: wrong type for value; expected int; got string", fn) : 0;
}

/* Go's reference-time layout, for the tokens templates use, in UTC. */
static int go_time_format(struct ev *e, const char *layout, char **out)
{
	static const char *const months[] = {"January",   "February", "March",    "April",
					     "May",       "June",     "July",     "August",
					     "September", "October",  "November", "December"};
	static const char *const days[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
					   "Thursday", "Friday", "Saturday"};
	int64_t ns = e->now_ns;
	time_t secs = (time_t)(ns / 1000000000);
	long frac = (long)(ns % 1000000000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	struct cs_buf b = CS_BUF_INIT;
	const char *p = layout;
	while (*p) {
#define TOK(lit) (strncmp(p, lit, sizeof(lit) - 1) == 0 && (p += sizeof(lit) - 1))
		if (TOK("January"))
			cs_buf_puts(&b, months[tm.tm_mon]);
		else if (TOK("Jan"))
			cs_buf_printf(&b, "%.3s", months[tm.tm_mon]);
		else if (TOK("Monday"))
			cs_buf_puts(&b, days[tm.tm_wday]);
		else if (TOK("Mon"))
			cs_buf_printf(&b, "%.3s", days[tm.tm_wday]);
		else if (TOK("MST"))
			cs_buf_puts(&b, "UTC");
		else if (TOK("2006"))
			cs_buf_printf(&b, "%04d", tm.tm_year + 1900);
		else if (TOK("Z07:00") || TOK("Z0700") || TOK("Z07"))
			cs_buf_putc(&b, 'Z');
		else if (TOK("-07:00"))
			cs_buf_puts(&b, "+00:00");
		else if (TOK("-0700"))
			cs_buf_puts(&b, "+0000");
		else if (TOK("-07"))
			cs_buf_puts(&b, "+00");
		else if (TOK("01"))
			cs_buf_printf(&b, "%02d", tm.tm_mon + 1);
		else if (TOK("02"))
			cs_buf_printf(&b, "%02d", tm.tm_mday);
		else if (TOK("_2"))
			cs_buf_printf(&b, "%2d", tm.tm_mday);
		else if (TOK("06"))
			cs_buf_printf(&b, "%02d", tm.tm_year % 100);
		else if (TOK("15"))
			cs_buf_printf(&b, "%02d", tm.tm_hour);
		else if (TOK("03"))
			cs_buf_printf(&b, "%02d", tm.tm_hour % 12 ? tm.tm_hour % 12 : 12);
		else if (TOK("04"))
			cs_buf_printf(&b, "%02d", tm.tm_min);
		else if (TOK("05"))
			cs_buf_printf(&b, "%02d", tm.tm_sec);
		else if (TOK("PM"))
			cs_buf_puts(&b, tm.tm_hour >= 12 ? "PM" : "AM");
		else if (TOK("pm"))
			cs_buf_puts(&b, tm.tm_hour >= 12 ? "pm" : "am");
		else if (TOK(".000000000") || TOK(",000000000"))
			cs_buf_printf(&b, "%c%09ld", p[-10], frac);
		else if (TOK(".000000") || TOK(",000000"))
			cs_buf_printf(&b, "%c%06ld", p[-7], frac / 1000);
		else if (TOK(".000") || TOK(",000"))
			cs_buf_printf(&b, "%c%03ld", p[-4], frac / 1000000);
		else if (TOK("1"))
			cs_buf_printf(&b, "%d", tm.tm_mon + 1);
		else if (TOK("2"))
			cs_buf_printf(&b, "%d", tm.tm_mday);
		else if (TOK("3"))
			cs_buf_printf(&b, "%d", tm.tm_hour % 12 ? tm.tm_hour % 12 : 12);
		else if (TOK("4"))
			cs_buf_printf(&b, "%d", tm.tm_min);
		else if (TOK("5"))
			cs_buf_printf(&b, "%d", tm.tm_sec);
		else
			cs_buf_putc(&b, *p++);
#undef TOK
		if (b.len > CS_DB_TEMPLATE_MAX_OUT) {
			cs_buf_free(&b);
			return check_len(e, CS_DB_TEMPLATE_MAX_OUT + 1);
		}
	}
	if (!b.data)
		cs_buf_puts(&b, "");
	*out = cs_buf_steal(&b, NULL);
	return 0;
}

static void sha256_hex(const char *s, char out[65])
{
	uint8_t h[32];
	SHA256((const uint8_t *)s, strlen(s), h);
	cs_hex_encode(h, sizeof h, out);
}

/* Go's fmt for the verbs templates use. */
static int do_printf(struct ev *e, struct val *args, int n, struct val *out)
{
	if (n < 1 || args[0].is_int)
		return fail(e, "printf: the first argument must be a format string");
	struct cs_buf b = CS_BUF_INIT;
	int ai = 1;
	for (const char *f = args[0].s; *f; f++) {
		if (*f != '%') {
			cs_buf_putc(&b, *f);
		} else if (f[1] == '%') {
			cs_buf_putc(&b, '%');
			f++;
		} else if (f[1] == '\0') {
			cs_buf_puts(&b, "%!(NOVERB)");
		} else {
			char verb = *++f;
			if (ai >= n) {
				cs_buf_printf(&b, "%%!%c(MISSING)", verb);
				continue;
			}
			struct val *a = &args[ai++];
			switch (verb) {
			case 's':
			case 'v':
				if (a->is_int)
					cs_buf_printf(&b, verb == 'v' ? "%lld" : "%%!s(int=%lld)",
						      (long long)a->i);
				else
					cs_buf_puts(&b, a->s);
				break;
			case 'd':
				if (a->is_int)
					cs_buf_printf(&b, "%lld", (long long)a->i);
				else
					cs_buf_printf(&b, "%%!d(string=%s)", a->s);
				break;
			case 'q':
				if (a->is_int) {
					cs_buf_printf(&b, "'%c'", (char)a->i);
				} else {
					cs_buf_putc(&b, '"');
					for (const char *c = a->s; *c; c++) {
						if (*c == '"' || *c == '\\')
							cs_buf_putc(&b, '\\');
						cs_buf_putc(&b, *c);
					}
					cs_buf_putc(&b, '"');
				}
				break;
			case 'x':
				if (a->is_int) {
					cs_buf_printf(&b, "%llx", (long long)a->i);
				} else {
					for (const unsigned char *c = (const unsigned char *)a->s;
					     *c; c++)
						cs_buf_printf(&b, "%02x", *c);
				}
				break;
			default:
				cs_buf_printf(&b, "%%!%c(unsupported)", verb);
			}
		}
		if (b.len > CS_DB_TEMPLATE_MAX_OUT)
			break;
	}
	for (; ai < n; ai++)
		cs_buf_puts(&b, "%!(EXTRA)");
	if (b.len > CS_DB_TEMPLATE_MAX_OUT) {
		cs_buf_free(&b);
		return check_len(e, CS_DB_TEMPLATE_MAX_OUT + 1);
	}
	if (!b.data)
		cs_buf_puts(&b, "");
	*out = str_val(cs_buf_steal(&b, NULL));
	return 0;
}

static int arity(struct ev *e, const char *fn, int n, int want)
{
	return n != want ? fail(e, "wrong number of args for %s: want %d got %d", fn, want, n) : 0;
}

/* Call function `fn` with n evaluated arguments (owned by the caller). */
static int call(struct ev *e, const char *fn, struct val *a, int n, struct val *out)
{
	char buf[128];
	if (strcmp(fn, "printf") == 0)
		return do_printf(e, a, n, out);
	if (strcmp(fn, "unix_time") == 0 || strcmp(fn, "unix_time_millis") == 0) {
		if (arity(e, fn, n, 0))
			return CS_EINVAL;
		int64_t v = fn[9] ? e->now_ns / 1000000 : e->now_ns / 1000000000;
		snprintf(buf, sizeof buf, "%lld", (long long)v);
		*out = str_val(strdup(buf));
		return 0;
	}
	if (strcmp(fn, "uuid") == 0) {
		if (arity(e, fn, n, 0))
			return CS_EINVAL;
		cs_uuid(buf);
		*out = str_val(strdup(buf));
		return 0;
	}
	if (strcmp(fn, "random") == 0) {
		if (arity(e, fn, n, 1) || want_int(e, fn, &a[0]))
			return CS_EINVAL;
		if (a[0].i < 0 || a[0].i > CS_DB_TEMPLATE_MAX_OUT)
			return fail(e, "random: length must be between 0 and %d",
				    CS_DB_TEMPLATE_MAX_OUT);
		char *s = malloc((size_t)a[0].i + 1);
		if (!s)
			abort();
		cs_random_base62(s, (size_t)a[0].i);
		*out = str_val(s);
		return 0;
	}
	if (strcmp(fn, "timestamp") == 0) {
		char *s = NULL;
		if (arity(e, fn, n, 1) || want_str(e, fn, &a[0]) || go_time_format(e, a[0].s, &s))
			return CS_EINVAL;
		*out = str_val(s);
		return 0;
	}
	if (strcmp(fn, "truncate") == 0 || strcmp(fn, "truncate_sha256") == 0) {
		bool hash = fn[8] != '\0';
		if (arity(e, fn, n, 2) || want_int(e, fn, &a[0]) || want_str(e, fn, &a[1]))
			return CS_EINVAL;
		int64_t max = a[0].i;
		if (max <= (hash ? 8 : 0))
			return fail(e, "max length must be > %d but was %lld", hash ? 8 : 0,
				    (long long)max);
		size_t len = strlen(a[1].s);
		if ((int64_t)len <= max) {
			*out = str_val(strdup(a[1].s));
		} else if (!hash) {
			*out = str_val(xstrndup(a[1].s, (size_t)max));
		} else {
			char h[65];
			size_t cut = (size_t)max - 8;
			sha256_hex(a[1].s + cut, h);
			char *s = malloc(cut + 9);
			if (!s)
				abort();
			memcpy(s, a[1].s, cut);
			memcpy(s + cut, h, 8);
			s[cut + 8] = '\0';
			*out = str_val(s);
		}
		return 0;
	}
	if (strcmp(fn, "uppercase") == 0 || strcmp(fn, "lowercase") == 0 ||
	    strcmp(fn, "sha256") == 0 || strcmp(fn, "base64") == 0) {
		if (arity(e, fn, n, 1) || want_str(e, fn, &a[0]))
			return CS_EINVAL;
		char *s;
		if (fn[0] == 's') {
			s = malloc(65);
			if (!s)
				abort();
			sha256_hex(a[0].s, s);
		} else if (fn[0] == 'b') {
			s = cs_b64_encode((const uint8_t *)a[0].s, strlen(a[0].s));
			if (check_len(e, strlen(s))) {
				free(s);
				return CS_EINVAL;
			}
		} else {
			s = strdup(a[0].s);
			for (char *c = s; c && *c; c++)
				*c = (char)(fn[0] == 'u' ? toupper((unsigned char)*c)
							 : tolower((unsigned char)*c));
		}
		*out = str_val(s);
		return 0;
	}
	if (strcmp(fn, "replace") == 0) {
		if (arity(e, fn, n, 3) || want_str(e, fn, &a[0]) || want_str(e, fn, &a[1]) ||
		    want_str(e, fn, &a[2]))
			return CS_EINVAL;
		const char *find = a[0].s, *rep = a[1].s, *s = a[2].s;
		size_t fl = strlen(find);
		struct cs_buf b = CS_BUF_INIT;
		if (fl == 0) {
			/* Go's ReplaceAll with an empty needle inserts `rep` around every
			 * rune; ASCII runes here. */
			cs_buf_puts(&b, rep);
			for (; *s && b.len <= CS_DB_TEMPLATE_MAX_OUT; s++) {
				cs_buf_putc(&b, *s);
				cs_buf_puts(&b, rep);
			}
		} else {
			const char *hit;
			while ((hit = strstr(s, find)) && b.len <= CS_DB_TEMPLATE_MAX_OUT) {
				cs_buf_append(&b, s, (size_t)(hit - s));
				cs_buf_puts(&b, rep);
				s = hit + fl;
			}
			cs_buf_puts(&b, s);
		}
		if (check_len(e, b.len)) {
			cs_buf_free(&b);
			return CS_EINVAL;
		}
		if (!b.data)
			cs_buf_puts(&b, "");
		*out = str_val(cs_buf_steal(&b, NULL));
		return 0;
	}
	return fail(e, "function \"%s\" not defined", fn);
}

static bool is_func(const char *name, size_t n)
{
	static const char *const names[] = {
	    "printf",    "random",    "truncate",  "truncate_sha256",
	    "uppercase", "lowercase", "replace",   "sha256",
	    "base64",    "uuid",      "unix_time", "unix_time_millis",
	    "timestamp", NULL};
	for (int i = 0; names[i]; i++)
		if (strlen(names[i]) == n && memcmp(names[i], name, n) == 0)
			return true;
	return false;
}

/* ---------------------------------------------------------------- parsing */

static int eval_pipeline(struct ev *e, bool in_parens, struct val *out);

/* A Go string literal at the cursor ('"' or '`'). */
static int parse_string(struct ev *e, struct val *out)
{
	char q = *e->p++;
	struct cs_buf b = CS_BUF_INIT;
	for (;;) {
		char c = *e->p;
		if (!c || (q == '"' && c == '\n')) {
			cs_buf_free(&b);
			return fail(e, "unterminated quoted string");
		}
		e->p++;
		if (c == q)
			break;
		if (q == '"' && c == '\\') {
			char x = *e->p++;
			switch (x) {
			case 'n':
				c = '\n';
				break;
			case 't':
				c = '\t';
				break;
			case 'r':
				c = '\r';
				break;
			case '\\':
				c = '\\';
				break;
			case '"':
				c = '"';
				break;
			case '\'':
				c = '\'';
				break;
			case 'x': {
				int hi = e->p[0], lo = hi ? e->p[1] : 0;
				if (!isxdigit(hi) || !isxdigit(lo)) {
					cs_buf_free(&b);
					return fail(e, "invalid escape in quoted string");
				}
				char hex[3] = {(char)hi, (char)lo, 0};
				c = (char)strtol(hex, NULL, 16);
				e->p += 2;
				if (!c) {
					cs_buf_free(&b);
					return fail(e, "NUL in quoted string");
				}
				break;
			}
			default:
				cs_buf_free(&b);
				return fail(e, "invalid escape in quoted string");
			}
		}
		cs_buf_putc(&b, c);
		if (check_len(e, b.len)) {
			cs_buf_free(&b);
			return CS_EINVAL;
		}
	}
	if (!b.data)
		cs_buf_puts(&b, "");
	*out = str_val(cs_buf_steal(&b, NULL));
	return 0;
}

/* One operand. *fname is set (and nothing evaluated) when it is a function name. */
static int parse_operand(struct ev *e, struct val *out, const char **fname, size_t *flen)
{
	const char *p = e->p;
	*fname = NULL;
	if (*p == '(') {
		e->p++;
		if (++e->depth > MAX_DEPTH)
			return fail(e, "template nested too deeply");
		int rc = eval_pipeline(e, true, out);
		e->depth--;
		return rc;
	}
	if (*p == '"' || *p == '`')
		return parse_string(e, out);
	if (isdigit((unsigned char)*p) ||
	    ((*p == '-' || *p == '+') && isdigit((unsigned char)p[1]))) {
		char *end;
		errno = 0;
		long long v = strtoll(p, &end, 10);
		if (errno || (isalnum((unsigned char)*end) || *end == '.' || *end == '_'))
			return fail(e, "bad number syntax");
		e->p = end;
		*out = (struct val){.is_int = true, .i = v};
		return 0;
	}
	if (*p == '.') {
		const char *q = p + 1;
		while (isalnum((unsigned char)*q) || *q == '_')
			q++;
		size_t n = (size_t)(q - p - 1);
		const char *v;
		if (n == 11 && memcmp(p + 1, "DisplayName", 11) == 0)
			v = e->d->display_name;
		else if (n == 8 && memcmp(p + 1, "RoleName", 8) == 0)
			v = e->d->role_name;
		else
			return fail(e, "can't evaluate field %.*s", (int)(n > 64 ? 64 : n), p + 1);
		e->p = q;
		*out = str_val(strdup(v ? v : ""));
		return 0;
	}
	if (isalpha((unsigned char)*p) || *p == '_') {
		const char *q = p;
		while (isalnum((unsigned char)*q) || *q == '_')
			q++;
		size_t n = (size_t)(q - p);
		if (!is_func(p, n))
			return fail(e, "function \"%.*s\" not defined", (int)(n > 64 ? 64 : n), p);
		e->p = q;
		*fname = p;
		*flen = n;
		return 0;
	}
	if (!*p)
		return fail(e, "unclosed action");
	return fail(e, "unexpected \"%c\" in command", *p);
}

/* A command: operands up to '|', ')' or the end of the action. `prev` (if given) is
 * appended as the last argument, and taken. */
static int eval_command(struct ev *e, bool in_parens, struct val *prev, struct val *out)
{
	struct val args[MAX_ARGS + 1];
	int n = 0;
	char fn[32] = "";
	bool first = true;
	int rc = 0;
	for (;;) {
		skip_space(e);
		if (*e->p == '|' || (*e->p == ')' && in_parens) || at_action_end(e) || !*e->p)
			break;
		if (*e->p == ')') {
			rc = fail(e, "unexpected right paren");
			goto out;
		}
		const char *name;
		size_t nlen;
		struct val v;
		if ((rc = parse_operand(e, &v, &name, &nlen)))
			goto out;
		if (name) {
			char nm[32];
			snprintf(nm, sizeof nm, "%.*s", (int)nlen, name);
			if (first) {
				snprintf(fn, sizeof fn, "%s", nm);
				first = false;
				continue;
			}
			/* A function name as an argument is a call without arguments. */
			if ((rc = call(e, nm, NULL, 0, &v)))
				goto out;
		} else if (first) {
			first = false;
		}
		if (n >= MAX_ARGS) {
			val_free(&v);
			rc = fail(e, "too many arguments");
			goto out;
		}
		args[n++] = v;
	}
	if (first) {
		rc = fail(e, "missing value for command");
		goto out;
	}
	if (prev) {
		args[n++] = *prev;
		prev->s = NULL;
		prev->is_int = true;
	}
	if (fn[0]) {
		rc = call(e, fn, args, n, out);
	} else if (n != 1) {
		rc = fail(e, "can't give argument to non-function");
	} else {
		*out = args[0];
		n = 0;
	}
out:
	for (int i = 0; i < n; i++)
		val_free(&args[i]);
	return rc;
}

static int eval_pipeline(struct ev *e, bool in_parens, struct val *out)
{
	struct val v;
	int rc = eval_command(e, in_parens, NULL, &v);
	while (!rc) {
		skip_space(e);
		if (*e->p != '|')
			break;
		e->p++;
		struct val next;
		rc = eval_command(e, in_parens, &v, &next);
		val_free(&v);
		if (!rc)
			v = next;
	}
	if (rc)
		return rc;
	skip_space(e);
	if (in_parens) {
		if (*e->p != ')') {
			val_free(&v);
			return fail(e, "unclosed left paren");
		}
		e->p++;
	}
	*out = v;
	return 0;
}

int cs_db_template_render(const char *tmpl, const struct cs_db_template_data *d, char **out,
			  char *err, size_t errlen)
{
	struct ev e = {.d = d, .err = err, .errlen = errlen};
	e.now_ns = d->now_ns ? d->now_ns : cs_now_ns();
	struct cs_buf b = CS_BUF_INIT;
	const char *p = tmpl;
	*out = NULL;
	while (*p) {
		const char *open = strstr(p, "{{");
		size_t text = open ? (size_t)(open - p) : strlen(p);
		bool trim_left = open && open[2] == '-' && isspace((unsigned char)open[3]);
		size_t keep = text;
		if (trim_left)
			while (keep > 0 && isspace((unsigned char)p[keep - 1]))
				keep--;
		cs_buf_append(&b, p, keep);
		if (!open)
			break;
		e.p = open + 2 + (trim_left ? 1 : 0);
		skip_space(&e);
		if (e.p[0] == '/' && e.p[1] == '*') {
			const char *c = strstr(e.p + 2, "*/");
			if (!c) {
				fail(&e, "unclosed comment");
				break;
			}
			e.p = c + 2;
			skip_space(&e);
			if (!at_action_end(&e)) {
				fail(&e, "comment ends before closing delimiter");
				break;
			}
		} else {
			struct val v;
			if (eval_pipeline(&e, false, &v))
				break;
			if (!at_action_end(&e)) {
				val_free(&v);
				fail(&e, "unexpected \"%c\" in operand", *e.p ? *e.p : ' ');
				break;
			}
			if (v.is_int)
				cs_buf_printf(&b, "%lld", (long long)v.i);
			else
				cs_buf_puts(&b, v.s);
			val_free(&v);
		}
		bool trim_right = e.p[0] == '-';
		p = e.p + (trim_right ? 3 : 2);
		if (trim_right)
			while (isspace((unsigned char)*p))
				p++;
		if (b.len > CS_DB_TEMPLATE_MAX_OUT) {
			check_len(&e, b.len);
			break;
		}
	}
	if (!e.failed && b.len > CS_DB_TEMPLATE_MAX_OUT)
		check_len(&e, b.len);
	if (e.failed) {
		cs_buf_free(&b);
		return CS_EINVAL;
	}
	if (!b.data)
		cs_buf_puts(&b, "");
	*out = cs_buf_steal(&b, NULL);
	return 0;
}
