/*
 * Password policies (see pwpolicy.h). The language follows Vault's: the behaviour of
 * OpenBao's sdk helper/random (length, rule "charset" with charset and min-chars, the
 * union of charsets as the alphabet, the checks made when a policy is parsed and when
 * sys/policies/password stores one), re-implemented over lib/hcl.c.
 *
 * Characters are Unicode code points. The alphabet is at most 256 of them, so one random
 * byte picks one: bytes at or above the largest multiple of the alphabet size are thrown
 * away, which leaves every character equally likely (no modulo bias).
 */
#include "lib/pwpolicy.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/hcl.h"
#include "lib/util.h"

/* Characters drawn for candidates before building a password to fit (see pwpolicy.h):
 * 1,638 candidates of Vault's default 20 characters, of which about one in four passes,
 * so they never all fail in practice; 327 of the longest, 100. The bound keeps the work
 * on the loop thread near a millisecond for the most contrived policy. */
#define MAX_DRAWN 32768

struct rule {
	int min_chars;  /* > 0: rules with none only add characters to the alphabet */
	unsigned count; /* distinct characters of the rule */
	uint8_t member[CS_PWPOLICY_MAX_CHARSET / 8]; /* bitmap over alphabet indices */
};

struct cs_pwpolicy {
	int length;
	unsigned n_alpha;
	uint32_t alpha[CS_PWPOLICY_MAX_CHARSET]; /* sorted, distinct code points */
	size_t n_rules;
	struct rule *rules;
};

/* ------------------------------------------------------------------ characters */

/* One code point of strict UTF-8 at *s (< end); advances *s. -1 on invalid input. */
static int32_t utf8_next(const unsigned char **s, const unsigned char *end)
{
	const unsigned char *p = *s;
	uint32_t c = p[0];
	size_t n;
	uint32_t min;
	if (c < 0x80) {
		*s = p + 1;
		return (int32_t)c;
	} else if ((c & 0xe0) == 0xc0) {
		n = 2, c &= 0x1f, min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		n = 3, c &= 0x0f, min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		n = 4, c &= 0x07, min = 0x10000;
	} else {
		return -1;
	}
	if ((size_t)(end - p) < n)
		return -1;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return -1;
		c = c << 6 | (p[i] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates and values past U+10FFFF are not UTF-8. */
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return -1;
	*s = p + n;
	return (int32_t)c;
}

static size_t utf8_put(uint32_t c, char *o)
{
	if (c < 0x80) {
		o[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		o[0] = (char)(0xc0 | c >> 6);
		o[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		o[0] = (char)(0xe0 | c >> 12);
		o[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		o[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | c >> 18);
	o[1] = (char)(0x80 | ((c >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((c >> 6) & 0x3f));
	o[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

/*
 * Vault refuses a charset with a character that Go's unicode.IsPrint rejects: controls,
 * format characters, private use, surrogates, unassigned code points and every space but
 * U+0020. Without Unicode tables this covers all of those classes except unassigned code
 * points: controls (Cc), the format characters (Cf), the separators (Z* but U+0020),
 * private use (Co) and the non-characters.
 */
static bool printable(uint32_t c)
{
	static const uint32_t ranges[][2] = {
	    {0x0000, 0x001f},   {0x007f, 0x00a0},   {0x00ad, 0x00ad},   {0x0600, 0x0605},
	    {0x061c, 0x061c},   {0x06dd, 0x06dd},   {0x070f, 0x070f},   {0x0890, 0x0891},
	    {0x08e2, 0x08e2},   {0x1680, 0x1680},   {0x180e, 0x180e},   {0x2000, 0x200f},
	    {0x2028, 0x202f},   {0x205f, 0x2064},   {0x2066, 0x206f},   {0x3000, 0x3000},
	    {0xd800, 0xf8ff},   {0xfdd0, 0xfdef},   {0xfeff, 0xfeff},   {0xfff9, 0xfffb},
	    {0x110bd, 0x110bd}, {0x110cd, 0x110cd}, {0x13430, 0x1343f}, {0x1bca0, 0x1bca3},
	    {0x1d173, 0x1d17a}, {0xe0001, 0xe0001}, {0xe0020, 0xe007f}, {0xf0000, 0x10ffff},
	};
	if ((c & 0xfffe) == 0xfffe) /* U+xxFFFE and U+xxFFFF: non-characters */
		return false;
	for (size_t i = 0; i < CS_ARRAY_LEN(ranges); i++)
		if (c >= ranges[i][0] && c <= ranges[i][1])
			return false;
	return true;
}

/* Index of c in the sorted set v[0..n), or -(insertion point) - 1. */
static long find(const uint32_t *v, unsigned n, uint32_t c)
{
	unsigned lo = 0, hi = n;
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		if (v[mid] == c)
			return mid;
		if (v[mid] < c)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(long)lo - 1;
}

/* Add c to the sorted set v (capacity CS_PWPOLICY_MAX_CHARSET). false when full. */
static bool set_add(uint32_t *v, unsigned *n, uint32_t c)
{
	long at = find(v, *n, c);
	if (at >= 0)
		return true;
	if (*n == CS_PWPOLICY_MAX_CHARSET)
		return false;
	size_t ins = (size_t)(-at - 1);
	memmove(v + ins + 1, v + ins, (*n - ins) * sizeof *v);
	v[ins] = c;
	(*n)++;
	return true;
}

/* ------------------------------------------------------------------ parsing */

struct parse {
	struct cs_pwpolicy *p;
	char *err;
	size_t errlen;
	size_t cap; /* of p->rules */
	/* Each kept rule's charset (sorted distinct code points) until the alphabet is final
	 * and the rule becomes a bitmap over it; indexed like p->rules. */
	uint32_t **sets;
};

__attribute__((format(printf, 2, 3))) static int fail(struct parse *ps, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ps->err, ps->errlen, fmt, ap);
	va_end(ap);
	return CS_EINVAL;
}

/* The last member named `key` (Vault's HCL decoder keeps the last of repeated keys). */
static const struct cs_hcl_node *last(const struct cs_hcl_node *obj, const char *key)
{
	const struct cs_hcl_node *found = NULL;
	for (const struct cs_hcl_node *m = obj->child; m; m = m->next)
		if (m->key && strcmp(m->key, key) == 0)
			found = m;
	return found;
}

/*
 * An integer field. As Vault's decoder: a number, its fraction dropped; anything else is
 * refused. Values are clamped to +-1e9 so sums cannot overflow (the bounds refuse them).
 */
static int int_field(struct parse *ps, const struct cs_hcl_node *n, const char *name, int *out)
{
	if (n->type != CS_HCL_NUMBER)
		return fail(ps, "'%s' expected type 'int', got unconvertible type '%s'", name,
			    cs_hcl_type_name(n->type));
	double d = n->num;
	if (isnan(d))
		return fail(ps, "'%s' is not a number", name);
	if (d > 1e9)
		d = 1e9;
	if (d < -1e9)
		d = -1e9;
	*out = (int)d; /* truncates toward zero */
	return 0;
}

/* Room for one more kept rule. */
static int grow(struct parse *ps)
{
	if (ps->p->n_rules < ps->cap)
		return 0;
	size_t cap = ps->cap ? ps->cap * 2 : 8;
	struct rule *r = realloc(ps->p->rules, cap * sizeof *r);
	if (!r)
		return CS_ENOMEM;
	ps->p->rules = r;
	uint32_t **s = realloc(ps->sets, cap * sizeof *s);
	if (!s)
		return CS_ENOMEM;
	ps->sets = s;
	ps->cap = cap;
	return 0;
}

static int charset_rule(struct parse *ps, const struct cs_hcl_node *body)
{
	struct cs_pwpolicy *p = ps->p;
	if (body->type != CS_HCL_OBJECT)
		return fail(ps, "unable to parse rule charset: expected a block, got %s",
			    cs_hcl_type_name(body->type));
	int min_chars = 0;
	const struct cs_hcl_node *mc = last(body, "min-chars");
	if (mc && int_field(ps, mc, "min-chars", &min_chars))
		return CS_EINVAL;
	const struct cs_hcl_node *cs = last(body, "charset");
	if (cs && cs->type != CS_HCL_STRING)
		return fail(ps, "unable to parse rule charset: 'charset' expected a string, got %s",
			    cs_hcl_type_name(cs->type));

	uint32_t set[CS_PWPOLICY_MAX_CHARSET];
	unsigned n = 0;
	if (cs) {
		const unsigned char *s = (const unsigned char *)cs->str;
		const unsigned char *end = s + strlen(cs->str);
		while (s < end) {
			int32_t c = utf8_next(&s, end);
			if (c < 0)
				return fail(ps,
					    "unable to parse rule charset: invalid UTF8 string");
			if (!set_add(set, &n, (uint32_t)c) ||
			    !set_add(p->alpha, &p->n_alpha, (uint32_t)c))
				return fail(ps, "charset is too long: limited to %d characters",
					    CS_PWPOLICY_MAX_CHARSET);
		}
	}
	/* A rule with min-chars <= 0 passes every password (Vault counts a negative one as
	 * no requirement, too): it only gives its characters to the alphabet. */
	if (min_chars <= 0)
		return 0;
	if (grow(ps))
		return fail(ps, "out of memory"), CS_ENOMEM;
	uint32_t *keep = malloc((n ? n : 1) * sizeof *keep);
	if (!keep)
		return fail(ps, "out of memory"), CS_ENOMEM;
	memcpy(keep, set, n * sizeof *keep);
	struct rule *r = &p->rules[p->n_rules];
	memset(r, 0, sizeof *r);
	r->min_chars = min_chars;
	r->count = n;
	ps->sets[p->n_rules++] = keep;
	return 0;
}

/* One rule: an object whose member names the rule type and holds its body (a block, or
 * JSON's list of blocks of which Vault reads the first). */
static int one_rule(struct parse *ps, const struct cs_hcl_node *rule)
{
	if (rule->type != CS_HCL_OBJECT)
		return fail(ps, "unable to retrieve rules: expected a block, got %s",
			    cs_hcl_type_name(rule->type));
	if (!rule->child)
		return fail(ps, "unable to parse rules: rule is empty");
	for (const struct cs_hcl_node *m = rule->child; m; m = m->next) {
		if (strcmp(m->key, "charset") != 0)
			return fail(ps, "unable to parse rules: unrecognized rule type %s", m->key);
		const struct cs_hcl_node *body = m;
		if (m->type == CS_HCL_LIST) {
			if (!m->child)
				return fail(ps, "unable to parse rules: rule info cannot be empty");
			body = m->child;
		}
		int rc = charset_rule(ps, body);
		if (rc)
			return rc;
	}
	return 0;
}

/* Every `rule` member: rule "charset" {...} in HCL, or "rule": [{"charset": [...]}]. */
static int all_rules(struct parse *ps, const struct cs_hcl_node *root)
{
	for (const struct cs_hcl_node *m = root->child; m; m = m->next) {
		if (strcmp(m->key, "rule") != 0)
			continue;
		if (m->type == CS_HCL_LIST) {
			for (const struct cs_hcl_node *e = m->child; e; e = e->next) {
				int rc = one_rule(ps, e);
				if (rc)
					return rc;
			}
			continue;
		}
		int rc = one_rule(ps, m);
		if (rc)
			return rc;
	}
	return 0;
}

/* Now that the alphabet is final, each kept rule becomes a bitmap over its indices. */
static void build_bitmaps(struct parse *ps)
{
	struct cs_pwpolicy *p = ps->p;
	for (size_t i = 0; i < p->n_rules; i++) {
		struct rule *r = &p->rules[i];
		for (unsigned j = 0; j < r->count; j++) {
			long at = find(p->alpha, p->n_alpha, ps->sets[i][j]);
			r->member[at / 8] |= (uint8_t)(1u << (at % 8));
		}
	}
}

/* The checks Vault's parser makes, then those of sys/policies/password, in its order. */
static int validate(struct parse *ps)
{
	struct cs_pwpolicy *p = ps->p;
	long min_len = 0;
	for (size_t i = 0; i < p->n_rules; i++)
		min_len += p->rules[i].min_chars;
	if (p->length <= 0)
		return fail(ps, "length must be > 0");
	if (p->length < min_len)
		return fail(ps,
			    "specified rules require at least %ld characters but %d is specified",
			    min_len, p->length);
	if (p->n_alpha == 0)
		return fail(ps, "no charset specified");
	for (unsigned i = 0; i < p->n_alpha; i++)
		if (!printable(p->alpha[i]))
			return fail(ps, "non-printable character in charset");
	if (p->length < CS_PWPOLICY_MIN_LENGTH || p->length > CS_PWPOLICY_MAX_LENGTH)
		return fail(ps, "passwords must be between %d and %d characters",
			    CS_PWPOLICY_MIN_LENGTH, CS_PWPOLICY_MAX_LENGTH);
	for (size_t i = 0; i < p->n_rules; i++)
		if (p->rules[i].count == 0)
			return fail(ps, "unable to construct test password from provided policy: "
					"are the rules impossible?");
	return 0;
}

int cs_pwpolicy_parse(const char *text, size_t len, struct cs_pwpolicy **out, char *errmsg,
		      size_t errlen)
{
	*out = NULL;
	if (errlen)
		errmsg[0] = '\0';
	char herr[256];
	struct parse ps = {.err = errmsg, .errlen = errlen};
	struct cs_hcl_node *root = cs_hcl_parse(text, len, herr, sizeof herr);
	if (!root)
		return fail(&ps, "unable to decode: %s", herr);
	ps.p = calloc(1, sizeof *ps.p);
	if (!ps.p) {
		cs_hcl_free(root);
		return fail(&ps, "out of memory"), CS_ENOMEM;
	}
	int rc = 0;
	const struct cs_hcl_node *ln = last(root, "length");
	if (ln)
		rc = int_field(&ps, ln, "length", &ps.p->length);
	if (!rc)
		rc = all_rules(&ps, root);
	if (!rc)
		rc = validate(&ps);
	if (!rc)
		build_bitmaps(&ps);
	for (size_t i = 0; i < ps.p->n_rules; i++)
		free(ps.sets[i]);
	free(ps.sets);
	cs_hcl_free(root);
	if (rc) {
		cs_pwpolicy_free(ps.p);
		return rc;
	}
	*out = ps.p;
	return 0;
}

void cs_pwpolicy_free(struct cs_pwpolicy *p)
{
	if (!p)
		return;
	free(p->rules);
	free(p);
}

int cs_pwpolicy_length(const struct cs_pwpolicy *p)
{
	return p->length;
}

/* ------------------------------------------------------------------ generation */

/* Random bytes drawn in blocks; wiped when done (they decide the password). A call to
 * RAND_bytes costs several microseconds whatever its size, so the first block fits the
 * common case (one or a few candidates) and later ones are large (the worst case). */
struct rng {
	uint8_t buf[4096];
	size_t pos, len;
};

static uint8_t rng_byte(struct rng *r)
{
	if (r->pos == r->len) {
		r->len = r->len ? sizeof r->buf : 256;
		cs_random(r->buf, r->len);
		r->pos = 0;
	}
	return r->buf[r->pos++];
}

/* Uniform in [0, n), 1 <= n <= 256: a byte at or above the largest multiple of n that
 * fits in 256 (`limit`) would favour the low values, so it is thrown away. */
static unsigned uniform_lim(struct rng *r, unsigned n, unsigned limit)
{
	for (;;) {
		unsigned b = rng_byte(r);
		if (b < limit)
			return b % n;
	}
}

static unsigned uniform(struct rng *r, unsigned n)
{
	return uniform_lim(r, n, 256 / n * n);
}

static bool is_member(const struct rule *r, unsigned idx)
{
	return r->member[idx / 8] & (1u << (idx % 8));
}

static bool passes(const struct cs_pwpolicy *p, const uint8_t *idx)
{
	for (size_t i = 0; i < p->n_rules; i++) {
		int count = 0;
		for (int k = 0; k < p->length && count < p->rules[i].min_chars; k++)
			count += is_member(&p->rules[i], idx[k]);
		if (count < p->rules[i].min_chars)
			return false;
	}
	return true;
}

/* The k-th character (alphabet index) of a rule, k < r->count. */
static unsigned kth_member(const struct rule *r, unsigned k)
{
	for (unsigned i = 0; i < CS_PWPOLICY_MAX_CHARSET; i++)
		if (is_member(r, i) && k-- == 0)
			return i;
	abort(); /* k < count: unreachable */
}

/* A password built to fit: each rule's minimum from its charset, the rest from the
 * alphabet, then a Fisher-Yates shuffle so the required characters sit anywhere. */
static void build_to_fit(const struct cs_pwpolicy *p, struct rng *r, uint8_t *idx)
{
	int n = 0;
	for (size_t i = 0; i < p->n_rules; i++)
		for (int j = 0; j < p->rules[i].min_chars; j++)
			idx[n++] = (uint8_t)kth_member(&p->rules[i], uniform(r, p->rules[i].count));
	while (n < p->length)
		idx[n++] = (uint8_t)uniform(r, p->n_alpha);
	for (int i = p->length - 1; i > 0; i--) {
		unsigned j = uniform(r, (unsigned)i + 1);
		uint8_t t = idx[i];
		idx[i] = idx[j];
		idx[j] = t;
	}
}

int cs_pwpolicy_generate(const struct cs_pwpolicy *p, char **out)
{
	*out = NULL;
	struct rng r = {.pos = 0, .len = 0};
	uint8_t idx[CS_PWPOLICY_MAX_LENGTH];
	bool ok = false;
	unsigned na = p->n_alpha, limit = 256 / na * na;
	for (int drawn = 0; drawn < MAX_DRAWN && !ok; drawn += p->length) {
		for (int k = 0; k < p->length; k++)
			idx[k] = (uint8_t)uniform_lim(&r, na, limit);
		ok = passes(p, idx);
	}
	if (!ok)
		build_to_fit(p, &r, idx);
	char *s = malloc((size_t)p->length * 4 + 1);
	if (s) {
		size_t n = 0;
		for (int k = 0; k < p->length; k++)
			n += utf8_put(p->alpha[idx[k]], s + n);
		s[n] = '\0';
	}
	cs_zero(&r, sizeof r);
	cs_zero(idx, sizeof idx);
	if (!s)
		return CS_ENOMEM;
	*out = s;
	return 0;
}

bool cs_pwpolicy_satisfied(const struct cs_pwpolicy *p, const char *pw)
{
	uint8_t idx[CS_PWPOLICY_MAX_LENGTH];
	const unsigned char *s = (const unsigned char *)pw, *end = s + strlen(pw);
	int n = 0;
	bool ok = true;
	while (ok && s < end) {
		int32_t c = utf8_next(&s, end);
		long at = c < 0 ? -1 : find(p->alpha, p->n_alpha, (uint32_t)c);
		if (at < 0 || n == p->length)
			ok = false;
		else
			idx[n++] = (uint8_t)at;
	}
	ok = ok && n == p->length && passes(p, idx);
	cs_zero(idx, sizeof idx);
	return ok;
}
