/*
 * The PKI engine's pure rules (engines/pki_internal.h): Vault's name matching
 * (cert_util.go validateNames), NotAfter computation (getCertificateNotAfter), serial
 * formatting and CRL numbering. No storage, no OpenSSL objects, no clock: every input is
 * an argument, so each rule is unit-tested on its own.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "engines/pki_internal.h"
#include "lib/err.h"

bool cs_pki_glob(const char *pattern, const char *s)
{
	/* go-glob: no '*' → equality; else the parts between stars appear in order, the
	 * first anchored at the start (unless the pattern starts with '*') and the last at
	 * the end (unless it ends with '*'). */
	if (strcmp(pattern, "*") == 0)
		return true;
	const char *star = strchr(pattern, '*');
	if (!star)
		return strcmp(pattern, s) == 0;
	size_t first = (size_t)(star - pattern);
	if (strncmp(s, pattern, first) != 0)
		return false;
	const char *p = star + 1, *cur = s + first;
	for (;;) {
		const char *next = strchr(p, '*');
		if (!next) { /* the last part: a suffix of what is left */
			size_t lp = strlen(p), lc = strlen(cur);
			return lp <= lc && strcmp(cur + lc - lp, p) == 0;
		}
		size_t n = (size_t)(next - p);
		if (n > 0) {
			const char *hit = NULL;
			for (const char *q = cur; *q; q++)
				if (strncmp(q, p, n) == 0) {
					hit = q;
					break;
				}
			if (!hit)
				return false;
			cur = hit + n;
		}
		p = next + 1;
	}
}

static bool label_ok(const char *s, size_t n)
{
	/* labelRegex: [a-zA-Z0-9] or [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9] */
	if (n == 0 || n > 63)
		return false;
	if (!isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return false;
	return true;
}

bool cs_pki_hostname_ok(const char *s)
{
	size_t n = strlen(s);
	if (n >= 2 && s[0] == '*' && s[1] == '.') {
		s += 2;
		n -= 2;
	}
	if (n > 0 && s[n - 1] == '.')
		n--;
	if (n == 0 || n > 253)
		return false;
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			if (!label_ok(s + start, i - start))
				return false;
			start = i + 1;
		}
	}
	return true;
}

/* leftWildLabelRegex: "*", "*label", "label*" or "label*label". */
static bool wild_label_ok(const char *l, size_t n)
{
	const char *star = memchr(l, '*', n);
	if (!star)
		return false;
	size_t pre = (size_t)(star - l), post = n - pre - 1;
	return (pre == 0 || label_ok(l, pre)) && (post == 0 || label_ok(star + 1, post));
}

static bool has_suffix_dot(const char *name, const char *dom)
{
	size_t n = strlen(name), d = strlen(dom);
	return n > d && name[n - d - 1] == '.' && strcmp(name + n - d, dom) == 0;
}

bool cs_pki_name_ok(const struct cs_pki_name_rules *r, const char *name)
{
	char buf[1024];
	if (strlen(name) >= sizeof buf)
		return false;
	const char *reduced = name, *email_domain = name;
	char wild_label[1024] = "";
	bool is_email = false, is_wild = false;
	const char *at = strchr(name, '@');
	if (at) {
		if (strchr(at + 1, '@'))
			return false;
		reduced = email_domain = at + 1;
		is_email = true;
	}
	if (strchr(reduced, '*')) {
		is_wild = true;
		if (!r->allow_wildcard_certificates)
			return false;
		if (strchr(strchr(reduced, '*') + 1, '*'))
			return false; /* only one wildcard */
		const char *dot = strchr(reduced, '.');
		if (!dot) {
			snprintf(wild_label, sizeof wild_label, "%s", reduced);
			reduced = "";
		} else {
			snprintf(wild_label, sizeof wild_label, "%.*s", (int)(dot - reduced),
				 reduced);
			reduced = dot + 1;
			if (strchr(reduced, '*'))
				return false; /* wildcard only in the left-most label */
		}
	}
	if (is_email && is_wild)
		return false;
	if (r->enforce_hostnames) {
		if (*reduced && !cs_pki_hostname_ok(reduced))
			return false;
		if (is_wild && !wild_label_ok(wild_label, strlen(wild_label)))
			return false;
	}
	if (r->allow_any_name)
		return true;
	if (r->allow_localhost) {
		if (strcmp(reduced, "localhost") == 0 || strcmp(reduced, "localdomain") == 0 ||
		    (is_email && (strcmp(email_domain, "localhost") == 0 ||
				  strcmp(email_domain, "localdomain") == 0)))
			return true;
		if (r->allow_subdomains && (has_suffix_dot(reduced, "localhost") ||
					    has_suffix_dot(reduced, "localdomain") ||
					    (is_wild && (strcmp(reduced, "localhost") == 0 ||
							 strcmp(reduced, "localdomain") == 0))))
			return true;
	}
	for (size_t i = 0; i < r->n_allowed_domains; i++) {
		const char *d = r->allowed_domains[i];
		if (!*d)
			continue;
		if (r->allow_bare_domains &&
		    (strcasecmp(name, d) == 0 || (is_email && strcasecmp(email_domain, d) == 0)))
			return true;
		if (r->allow_subdomains &&
		    (has_suffix_dot(reduced, d) || (is_wild && strcasecmp(reduced, d) == 0)))
			return true;
		if (r->allow_glob_domains && strchr(d, '*') && cs_pki_glob(d, name))
			return true;
	}
	return false;
}

const char *cs_pki_check_names(const struct cs_pki_name_rules *r, const char *const *names,
			       size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!cs_pki_name_ok(r, names[i]))
			return names[i];
	return NULL;
}

int cs_pki_leaf_behavior_parse(const char *s, enum cs_pki_leaf_behavior *out)
{
	if (!s || !*s || strcmp(s, "err") == 0)
		*out = CS_PKI_LEAF_ERR;
	else if (strcmp(s, "truncate") == 0)
		*out = CS_PKI_LEAF_TRUNCATE;
	else if (strcmp(s, "permit") == 0)
		*out = CS_PKI_LEAF_PERMIT;
	else
		return CS_EINVAL;
	return 0;
}

const char *cs_pki_leaf_behavior_name(enum cs_pki_leaf_behavior b)
{
	return b == CS_PKI_LEAF_TRUNCATE ? "truncate" : b == CS_PKI_LEAF_PERMIT ? "permit" : "err";
}

/* RFC 3339 UTC seconds, as Go prints a time in the messages. */
static void fmt_time(int64_t t, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int cs_pki_not_after(const struct cs_pki_ttl_in *in, int64_t *out, const char **warning, char *err,
		     size_t errlen)
{
	*warning = NULL;
	if (in->ttl > 0 && in->not_after > 0) {
		snprintf(err, errlen,
			 "Either ttl or not_after should be provided. Both should not "
			 "be provided in the same request.");
		return CS_EINVAL;
	}
	int64_t ttl = in->ttl, max = 0;
	if (ttl == 0 && in->role_ttl > 0)
		ttl = in->role_ttl;
	if (in->role_max_ttl > 0)
		max = in->role_max_ttl;
	if (ttl == 0)
		ttl = in->sys_default_ttl;
	if (max == 0)
		max = in->sys_max_ttl;
	if (ttl > max) {
		*warning = "TTL is longer than permitted maxTTL, so maxTTL is being used";
		ttl = max;
	}
	int64_t na = in->not_after > 0 ? in->not_after : in->now + ttl;
	if (in->issuer_not_after > 0 && na > in->issuer_not_after) {
		char a[40], b[40];
		switch (in->behavior) {
		case CS_PKI_LEAF_PERMIT:
			break;
		case CS_PKI_LEAF_TRUNCATE:
			if (na < in->now) {
				fmt_time(na, a, sizeof a);
				snprintf(
				    err, errlen,
				    "cannot satisfy request, as NotAfter date %s is in the past",
				    a);
				return CS_EINVAL;
			}
			na = in->issuer_not_after;
			break;
		default:
			fmt_time(na, a, sizeof a);
			fmt_time(in->issuer_not_after, b, sizeof b);
			snprintf(
			    err, errlen,
			    "cannot satisfy request, as TTL would result in notAfter of %s that "
			    "is beyond the expiration of the CA certificate at %s",
			    a, b);
			return CS_EINVAL;
		}
	}
	*out = na;
	return 0;
}

void cs_pki_serial_format(const uint8_t *b, size_t n, char sep, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (i)
			out[o++] = sep;
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 15];
	}
	out[o] = 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int cs_pki_serial_parse(const char *s, uint8_t *out, size_t cap)
{
	/* Hex digits with optional ':' or '-' between byte pairs (one separator kind). */
	uint8_t tmp[64];
	size_t n = 0;
	char sep = 0;
	const char *p = s;
	if (!*p)
		return -1;
	while (*p) {
		int hi = hexval((unsigned char)p[0]);
		if (hi < 0)
			return -1;
		int lo = p[1] ? hexval((unsigned char)p[1]) : -1;
		size_t adv = 2;
		uint8_t v;
		if (lo < 0 && (p[1] == 0 || p[1] == ':' || p[1] == '-')) {
			v = (uint8_t)hi; /* one digit group ("a:bc") */
			adv = 1;
		} else if (lo < 0) {
			return -1;
		} else {
			v = (uint8_t)(hi << 4 | lo);
		}
		if (n == sizeof tmp)
			return -1;
		tmp[n++] = v;
		p += adv;
		if (*p == ':' || *p == '-') {
			if (sep && *p != sep)
				return -1;
			sep = *p;
			p++;
			if (!*p)
				return -1;
		}
	}
	size_t lead = 0;
	while (lead + 1 < n && tmp[lead] == 0)
		lead++;
	if (n - lead > cap)
		return -1;
	memcpy(out, tmp + lead, n - lead);
	return (int)(n - lead);
}

bool cs_pki_serial_key(const char *s, char *out, size_t outlen)
{
	uint8_t b[32];
	int n = cs_pki_serial_parse(s, b, sizeof b);
	if (n <= 0 || outlen < (size_t)n * 3)
		return false;
	cs_pki_serial_format(b, (size_t)n, '-', out);
	return true;
}

int64_t cs_pki_crl_next_complete(struct cs_pki_crl_counter *c)
{
	if (c->next < 1)
		c->next = 1;
	int64_t n = c->next++;
	c->last_complete = n;
	return n;
}

int64_t cs_pki_crl_next_delta(struct cs_pki_crl_counter *c, int64_t *base)
{
	if (c->last_complete < 1)
		return -1;
	if (c->next <= c->last_complete)
		c->next = c->last_complete + 1;
	*base = c->last_complete;
	return c->next++;
}

int cs_pki_parse_rfc3339(const char *s, int64_t *out)
{
	struct tm tm = {0};
	int y, mo, d, h, mi, sec, n = 0;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6)
		return CS_EINVAL;
	const char *p = s + n;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	int off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om;
		if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2)
			return CS_EINVAL;
		off = (oh * 3600 + om * 60) * (*p == '+' ? 1 : -1);
		p += 6;
	} else {
		return CS_EINVAL;
	}
	if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return CS_EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	*out = (int64_t)timegm(&tm) - off;
	return 0;
}
