/*
 * ACL policy parsing and evaluation (see policy.h for the rules). The parser walks the
 * HCL tree of lib/hcl.h directly so that errors carry line numbers; the evaluator works
 * on the compiled rules of several policies at once and merges rules with the same path
 * at lookup time, which gives the same answer as Vault's merge-then-lookup ACL without
 * building a tree per token.
 */
#include "policy/policy.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/hcl.h"
#include "lib/util.h"
#include "policy/template.h"

/* ------------------------------------------------------------------ parsing */

struct parse_ctx {
	char *errmsg;
	size_t errlen;
};

__attribute__((format(printf, 2, 3))) static int fail(struct parse_ctx *c, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	snprintf(c->errmsg, c->errlen, "failed to parse policy: %s", tmp);
	return CS_EINVAL;
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);
	if (!d)
		abort();
	return d;
}

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

static const char *const path_keys[] = {
    "comment",
    "policy",
    "capabilities",
    "allowed_parameters",
    "denied_parameters",
    "required_parameters",
    "min_wrapping_ttl",
    "max_wrapping_ttl",
    "mfa_methods",
    "control_group",
    "subscribe_event_types",
};

static bool valid_path_key(const char *k)
{
	for (size_t i = 0; i < CS_ARRAY_LEN(path_keys); i++)
		if (strcmp(k, path_keys[i]) == 0)
			return true;
	return false;
}

static int cap_bit(const char *name, unsigned *bit)
{
	static const struct {
		const char *name;
		unsigned bit;
	} caps[] = {
	    {"deny", CS_CAP_DENY},     {"create", CS_CAP_CREATE}, {"read", CS_CAP_READ},
	    {"update", CS_CAP_UPDATE}, {"delete", CS_CAP_DELETE}, {"list", CS_CAP_LIST},
	    {"sudo", CS_CAP_SUDO},     {"patch", CS_CAP_PATCH},
	};
	for (size_t i = 0; i < CS_ARRAY_LEN(caps); i++)
		if (strcmp(name, caps[i].name) == 0) {
			*bit = caps[i].bit;
			return 0;
		}
	return CS_EINVAL;
}

static int parse_ttl(struct parse_ctx *c, const struct cs_hcl_node *v, const char *what,
		     int64_t *out)
{
	if (v->type == CS_HCL_NUMBER && v->num >= 0 && v->num < 1e15) {
		*out = (int64_t)v->num;
		return 0;
	}
	if (v->type == CS_HCL_STRING && cs_parse_duration(v->str, out) == 0)
		return 0;
	return fail(c, "error parsing %s: invalid duration", what);
}

/* allowed_parameters / denied_parameters: object of name → list of values. */
static int parse_params(struct parse_ctx *c, const char *path, const struct cs_hcl_node *v,
			const char *what, cJSON **out)
{
	if (v->type != CS_HCL_OBJECT)
		return fail(c, "path \"%s\": %s must be an object (line %d)", path, what, v->line);
	if (!*out)
		*out = cJSON_CreateObject();
	for (const struct cs_hcl_node *m = v->child; m; m = m->next) {
		char *k = xstrdup(m->key ? m->key : "");
		lower(k);
		cJSON *vals = cs_hcl_to_json(m);
		if (!vals)
			abort();
		if (!cJSON_IsArray(vals)) {
			/* A single value is a one-element list. */
			cJSON *a = cJSON_CreateArray();
			cJSON_AddItemToArray(a, vals);
			vals = a;
		}
		cJSON_DeleteItemFromObjectCaseSensitive(*out, k);
		cJSON_AddItemToObject(*out, k, vals);
		free(k);
	}
	return 0;
}

static int parse_strlist(struct parse_ctx *c, const char *path, const struct cs_hcl_node *v,
			 const char *what)
{
	if (v->type != CS_HCL_LIST)
		return fail(c, "path \"%s\": %s must be a list of strings (line %d)", path, what,
			    v->line);
	for (const struct cs_hcl_node *e = v->child; e; e = e->next)
		if (e->type != CS_HCL_STRING)
			return fail(c, "path \"%s\": %s must be a list of strings (line %d)", path,
				    what, e->line);
	return 0;
}

/* Vault's write-time check of templated paths (policy/template.h). */
static int check_template(struct parse_ctx *c, const char *path, bool *has)
{
	if (cs_template_validate(path, has))
		return fail(c, "failed to validate policy templating: unbalanced templating "
			       "characters");
	return 0;
}

static void rule_free(struct cs_policy_rule *r)
{
	free(r->path);
	free(r->tmpl);
	cJSON_Delete(r->allowed);
	cJSON_Delete(r->denied);
	cJSON_Delete(r->required);
}

/* The rule's path and its kind: "+" segments, a trailing "*" prefix, or exact. */
static int rule_path(struct parse_ctx *c, const char *key, struct cs_policy_rule *r)
{
	const char *path = key[0] == '/' ? key + 1 : key;
	int rc;
	bool has = false;
	if ((rc = check_template(c, path, &has)))
		return rc;
	r->templated = has;
	if (has && !r->tmpl)
		r->tmpl = xstrdup(path);
	if (strstr(path, "+*"))
		return fail(c, "path \"%s\": invalid use of wildcards ('+*' is forbidden)", path);
	size_t plen = strlen(path);
	if (strcmp(path, "+") == 0 || strstr(path, "/+") || strncmp(path, "+/", 2) == 0) {
		r->kind = CS_RULE_SEGMENT;
		r->path = xstrdup(path);
	} else if (plen > 0 && path[plen - 1] == '*') {
		r->kind = CS_RULE_PREFIX;
		r->path = strndup(path, plen - 1);
		if (!r->path)
			abort();
	} else {
		r->kind = CS_RULE_EXACT;
		r->path = xstrdup(path);
	}
	return 0;
}

/* The members of a path block that mean something (NULL when absent). */
struct rule_members {
	const struct cs_hcl_node *legacy, *caps, *allowed, *denied, *required, *minw, *maxw;
};

static void find_members(const struct cs_hcl_node *body, struct rule_members *mb)
{
	/* Later members win over earlier ones with the same key, as HCL decoding does. */
	for (const struct cs_hcl_node *m = body->child; m; m = m->next) {
		if (strcmp(m->key, "policy") == 0)
			mb->legacy = m;
		else if (strcmp(m->key, "capabilities") == 0)
			mb->caps = m;
		else if (strcmp(m->key, "allowed_parameters") == 0)
			mb->allowed = m;
		else if (strcmp(m->key, "denied_parameters") == 0)
			mb->denied = m;
		else if (strcmp(m->key, "required_parameters") == 0)
			mb->required = m;
		else if (strcmp(m->key, "min_wrapping_ttl") == 0)
			mb->minw = m;
		else if (strcmp(m->key, "max_wrapping_ttl") == 0)
			mb->maxw = m;
	}
}

/* r->caps from the legacy "policy" string and the "capabilities" list. */
static int rule_caps(struct parse_ctx *c, const char *key, const struct rule_members *mb,
		     struct cs_policy_rule *r)
{
	int rc = 0;
	if (mb->legacy) {
		/* Pre-0.5 "policy" strings map to capability sets. */
		const char *v = mb->legacy->type == CS_HCL_STRING ? mb->legacy->str : "";
		if (strcmp(v, "deny") == 0)
			r->caps = CS_CAP_DENY;
		else if (strcmp(v, "read") == 0)
			r->caps = CS_CAP_READ | CS_CAP_LIST;
		else if (strcmp(v, "write") == 0)
			r->caps = CS_CAP_CREATE | CS_CAP_READ | CS_CAP_UPDATE | CS_CAP_DELETE |
				  CS_CAP_LIST;
		else if (strcmp(v, "sudo") == 0)
			r->caps = CS_CAP_CREATE | CS_CAP_READ | CS_CAP_UPDATE | CS_CAP_DELETE |
				  CS_CAP_LIST | CS_CAP_SUDO;
		else
			rc = fail(c, "path \"%s\": invalid policy \"%s\"", key, v);
	}
	if (!rc && mb->caps && !(rc = parse_strlist(c, key, mb->caps, "capabilities"))) {
		for (const struct cs_hcl_node *e = mb->caps->child; e && !rc; e = e->next) {
			unsigned bit;
			if (cap_bit(e->str, &bit))
				rc = fail(c, "path \"%s\": invalid capability \"%s\"", key, e->str);
			else
				r->caps |= bit;
		}
	}
	return rc;
}

/* Parameter constraints and wrapping TTL bounds. */
static int rule_limits(struct parse_ctx *c, const char *key, const struct rule_members *mb,
		       struct cs_policy_rule *r)
{
	const struct cs_hcl_node *allowed = mb->allowed, *denied = mb->denied;
	int rc;
	if (allowed &&
	    (rc = parse_params(
		 c, key, allowed->child && allowed->type == CS_HCL_LIST ? allowed->child : allowed,
		 "allowed_parameters", &r->allowed)))
		return rc;
	if (denied &&
	    (rc = parse_params(
		 c, key, denied->child && denied->type == CS_HCL_LIST ? denied->child : denied,
		 "denied_parameters", &r->denied)))
		return rc;
	if (mb->required) {
		if ((rc = parse_strlist(c, key, mb->required, "required_parameters")))
			return rc;
		if (mb->required->child) {
			r->required = cs_hcl_to_json(mb->required);
			if (!r->required)
				abort();
		}
	}
	if (mb->minw && (rc = parse_ttl(c, mb->minw, "min_wrapping_ttl", &r->min_wrap)))
		return rc;
	if (mb->maxw && (rc = parse_ttl(c, mb->maxw, "max_wrapping_ttl", &r->max_wrap)))
		return rc;
	if (r->min_wrap && r->max_wrap && r->max_wrap < r->min_wrap)
		return fail(c, "max_wrapping_ttl cannot be less than min_wrapping_ttl");
	return 0;
}

static int add_rule(struct parse_ctx *c, struct cs_policy *p, const char *key,
		    const struct cs_hcl_node *body)
{
	if (body->type != CS_HCL_OBJECT)
		return fail(c, "path \"%s\": expected an object (line %d)", key, body->line);
	for (const struct cs_hcl_node *m = body->child; m; m = m->next)
		if (!valid_path_key(m->key))
			return fail(c, "path \"%s\": invalid key \"%s\" on line %d", key, m->key,
				    m->line);

	struct cs_policy_rule r = {0};
	int rc = rule_path(c, key, &r);
	if (rc)
		return rc;
	struct rule_members mb = {0};
	find_members(body, &mb);
	rc = rule_caps(c, key, &mb, &r);
	if (!rc && (r.caps & CS_CAP_DENY))
		r.caps = CS_CAP_DENY; /* deny stands alone; nothing else of the rule matters */
	else if (!rc)
		rc = rule_limits(c, key, &mb, &r);
	if (rc) {
		rule_free(&r);
		return rc;
	}
	struct cs_policy_rule *nr = realloc(p->rules, (p->n_rules + 1) * sizeof *nr);
	if (!nr)
		abort();
	p->rules = nr;
	p->rules[p->n_rules++] = r;
	if (r.templated)
		p->templated = true;
	return 0;
}

/* A "path" member: an object of path → body (HCL blocks and JSON alike), or a list of
 * such objects (JSON written as an array). */
static int add_paths(struct parse_ctx *c, struct cs_policy *p, const struct cs_hcl_node *v)
{
	if (v->type == CS_HCL_LIST) {
		for (const struct cs_hcl_node *e = v->child; e; e = e->next) {
			int rc = add_paths(c, p, e);
			if (rc)
				return rc;
		}
		return 0;
	}
	if (v->type != CS_HCL_OBJECT)
		return fail(c, "path: expected an object on line %d", v->line);
	for (const struct cs_hcl_node *m = v->child; m; m = m->next) {
		int rc = add_rule(c, p, m->key ? m->key : "", m);
		if (rc)
			return rc;
	}
	return 0;
}

int cs_policy_parse(const char *text, size_t len, struct cs_policy **out, char *errmsg,
		    size_t errlen)
{
	struct parse_ctx c = {errmsg, errlen};
	char herr[256];
	*out = NULL;
	if (errlen)
		errmsg[0] = '\0';
	struct cs_hcl_node *root = cs_hcl_parse(text, len, herr, sizeof herr);
	if (!root)
		return fail(&c, "%s", herr);
	struct cs_policy *p = calloc(1, sizeof *p);
	if (!p)
		abort();
	int rc = 0;
	for (const struct cs_hcl_node *m = root->child; m && !rc; m = m->next) {
		if (strcmp(m->key, "name") == 0)
			continue;
		if (strcmp(m->key, "path") != 0) {
			rc = fail(&c, "invalid key \"%s\" on line %d", m->key, m->line);
			break;
		}
		rc = add_paths(&c, p, m);
	}
	cs_hcl_free(root);
	if (rc) {
		cs_policy_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

void cs_policy_free(struct cs_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_rules; i++)
		rule_free(&p->rules[i]);
	free(p->rules);
	free(p);
}

/* A copy of rule `r` (not templated). */
static void rule_copy(struct cs_policy_rule *dst, const struct cs_policy_rule *r)
{
	*dst = *r;
	dst->path = xstrdup(r->path);
	dst->tmpl = NULL;
	dst->templated = false;
	dst->allowed = r->allowed ? cJSON_Duplicate(r->allowed, true) : NULL;
	dst->denied = r->denied ? cJSON_Duplicate(r->denied, true) : NULL;
	dst->required = r->required ? cJSON_Duplicate(r->required, true) : NULL;
}

struct cs_policy *cs_policy_instantiate(const struct cs_policy *p, const cJSON *ident)
{
	struct cs_policy *o = calloc(1, sizeof *o);
	if (!o)
		abort();
	o->rules = calloc(p->n_rules ? p->n_rules : 1, sizeof *o->rules);
	if (!o->rules)
		abort();
	for (size_t i = 0; i < p->n_rules; i++) {
		const struct cs_policy_rule *r = &p->rules[i];
		struct cs_policy_rule *d = &o->rules[o->n_rules];
		if (!r->templated)
			continue; /* the caller evaluates `p` itself beside this policy */
		char *path = NULL;
		/* A directive without a value drops the path: it never matches (Vault). */
		if (cs_template_render(r->tmpl, ident, &path, NULL, 0))
			continue;
		char err[64];
		struct parse_ctx c = {err, sizeof err};
		struct cs_policy_rule nr;
		rule_copy(&nr, r);
		free(nr.path);
		nr.path = NULL;
		/* The expanded text decides the rule's kind, as if it had been written so. */
		bool has = false;
		if (cs_template_validate(path, &has) == 0 && !has && strstr(path, "+*") == NULL &&
		    rule_path(&c, path, &nr) == 0) {
			*d = nr;
			o->n_rules++;
		} else {
			rule_free(&nr);
		}
		free(path);
	}
	return o;
}

/* ------------------------------------------------------------------ merged permissions */

struct perms {
	bool found;
	unsigned caps;
	cJSON *allowed; /* owned */
	cJSON *denied;  /* owned */
	cJSON *required;
	int64_t min_wrap, max_wrap;
};

static void perms_free(struct perms *pm)
{
	cJSON_Delete(pm->allowed);
	cJSON_Delete(pm->denied);
	cJSON_Delete(pm->required);
}

static cJSON *dup(const cJSON *j)
{
	if (!j)
		return NULL;
	cJSON *d = cJSON_Duplicate(j, true);
	if (!d)
		abort();
	return d;
}

/* Vault's parameter merge: an empty list (any value) wins; otherwise lists concatenate. */
static void merge_params(cJSON **dst, const cJSON *src)
{
	if (!src || !cJSON_GetArraySize(src))
		return;
	if (!*dst) {
		*dst = dup(src);
		return;
	}
	const cJSON *kv;
	cJSON_ArrayForEach(kv, src)
	{
		cJSON *cur = cJSON_GetObjectItemCaseSensitive(*dst, kv->string);
		if (!cJSON_GetArraySize(kv) || (cur && !cJSON_GetArraySize(cur))) {
			cJSON_DeleteItemFromObjectCaseSensitive(*dst, kv->string);
			cJSON_AddItemToObject(*dst, kv->string, cJSON_CreateArray());
			continue;
		}
		cJSON *merged = dup(kv);
		const cJSON *e;
		cJSON_ArrayForEach(e, cur) cJSON_AddItemToArray(merged, dup(e));
		cJSON_DeleteItemFromObjectCaseSensitive(*dst, kv->string);
		cJSON_AddItemToObject(*dst, kv->string, merged);
	}
}

static void merge_rule(struct perms *pm, const struct cs_policy_rule *r)
{
	if (!pm->found) {
		pm->found = true;
		pm->caps = r->caps;
		pm->allowed = dup(r->allowed);
		pm->denied = dup(r->denied);
		pm->required = dup(r->required);
		pm->min_wrap = r->min_wrap;
		pm->max_wrap = r->max_wrap;
		return;
	}
	if (pm->caps & CS_CAP_DENY)
		return;
	if (r->caps & CS_CAP_DENY) {
		pm->caps = CS_CAP_DENY;
		cJSON_Delete(pm->allowed);
		cJSON_Delete(pm->denied);
		pm->allowed = pm->denied = NULL;
		return;
	}
	pm->caps |= r->caps;
	/* The smaller of two set wrapping TTLs wins (shortest lifetime). */
	if (r->max_wrap > 0 && (pm->max_wrap == 0 || r->max_wrap < pm->max_wrap))
		pm->max_wrap = r->max_wrap;
	if (r->min_wrap > 0 && (pm->min_wrap == 0 || r->min_wrap < pm->min_wrap))
		pm->min_wrap = r->min_wrap;
	merge_params(&pm->allowed, r->allowed);
	merge_params(&pm->denied, r->denied);
	const cJSON *e;
	cJSON_ArrayForEach(e, r->required)
	{
		bool have = false;
		const cJSON *x;
		cJSON_ArrayForEach(x, pm->required) if (strcmp(x->valuestring, e->valuestring) == 0)
		    have = true;
		if (!have) {
			if (!pm->required)
				pm->required = cJSON_CreateArray();
			cJSON_AddItemToArray(pm->required, dup(e));
		}
	}
}

/* Merge every live rule of this kind and exact path text, in policy order. */
static void collect(const struct cs_policy *const *pols, size_t n, enum cs_rule_kind kind,
		    const char *path, size_t plen, struct perms *pm)
{
	for (size_t i = 0; i < n; i++) {
		if (!pols[i])
			continue;
		for (size_t j = 0; j < pols[i]->n_rules; j++) {
			const struct cs_policy_rule *r = &pols[i]->rules[j];
			if (r->kind == kind && !r->templated && strlen(r->path) == plen &&
			    memcmp(r->path, path, plen) == 0)
				merge_rule(pm, r);
		}
	}
}

/* ------------------------------------------------------------------ wildcard lookup */

struct seg {
	const char *p;
	size_t len;
};

/* Split like Go's strings.Split(s, "/") over s[0..len): n separators → n+1 segments. */
static struct seg *split(const char *s, size_t len, size_t *n)
{
	size_t count = 1;
	for (size_t i = 0; i < len; i++)
		if (s[i] == '/')
			count++;
	struct seg *v = malloc(count * sizeof *v);
	if (!v)
		abort();
	size_t k = 0, start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '/') {
			v[k].p = s + start;
			v[k].len = i - start;
			k++;
			start = i + 1;
		}
	}
	*n = count;
	return v;
}

struct cand {
	const struct cs_policy_rule *rule;
	size_t first; /* position of the first '+' or of the glob */
	int wildcards;
	bool prefix;
	size_t len; /* pattern length without a trailing '*' */
};

/* Vault's ranking: true if a outranks b. */
static bool outranks(const struct cand *a, const struct cand *b)
{
	if (a->first != b->first)
		return a->first > b->first;
	if (a->prefix != b->prefix)
		return !a->prefix;
	if (a->wildcards != b->wildcards)
		return a->wildcards < b->wildcards;
	if (a->len != b->len)
		return a->len > b->len;
	size_t m = a->len < b->len ? a->len : b->len;
	int c = memcmp(a->rule->path, b->rule->path, m);
	return c > 0;
}

static bool segment_match(const struct cs_policy_rule *r, const struct seg *pp, size_t np,
			  struct cand *out)
{
	size_t rl = strlen(r->path);
	struct cand c = {r, 0, 0, false, rl};
	const char *plus = strchr(r->path, '+');
	c.first = plus ? (size_t)(plus - r->path) : 0;
	if (rl > 0 && r->path[rl - 1] == '*') {
		c.prefix = true;
		c.len = rl - 1;
	}
	size_t nw;
	struct seg *wp = split(r->path, c.len, &nw);
	bool ok = np >= nw && (c.prefix || np == nw);
	for (size_t i = 0; ok && i < nw; i++) {
		if (wp[i].len == 1 && wp[i].p[0] == '+')
			c.wildcards++;
		else if (wp[i].len == pp[i].len && memcmp(wp[i].p, pp[i].p, wp[i].len) == 0)
			;
		else if (c.prefix && i == nw - 1 && pp[i].len >= wp[i].len &&
			 memcmp(wp[i].p, pp[i].p, wp[i].len) == 0)
			;
		else
			ok = false;
	}
	free(wp);
	if (ok)
		*out = c;
	return ok;
}

static void nonexact(const struct cs_policy *const *pols, size_t n, const char *path, size_t len,
		     struct perms *pm)
{
	struct cand best = {0};
	bool have = false, any_segment = false;
	/* The longest prefix rule. */
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; pols[i] && j < pols[i]->n_rules; j++) {
			const struct cs_policy_rule *r = &pols[i]->rules[j];
			if (r->templated)
				continue;
			if (r->kind == CS_RULE_SEGMENT)
				any_segment = true;
			if (r->kind != CS_RULE_PREFIX)
				continue;
			size_t rl = strlen(r->path);
			if (rl <= len && memcmp(r->path, path, rl) == 0 &&
			    (!have || rl > best.len)) {
				best = (struct cand){r, rl, 0, true, rl};
				have = true;
			}
		}
	}
	if (any_segment) {
		size_t np;
		struct seg *pp = split(path, len, &np);
		for (size_t i = 0; i < n; i++) {
			for (size_t j = 0; pols[i] && j < pols[i]->n_rules; j++) {
				const struct cs_policy_rule *r = &pols[i]->rules[j];
				struct cand c;
				if (r->kind != CS_RULE_SEGMENT || r->templated ||
				    !segment_match(r, pp, np, &c))
					continue;
				if (!have || outranks(&c, &best)) {
					best = c;
					have = true;
				}
			}
		}
		free(pp);
	}
	if (have)
		collect(pols, n, best.rule->kind, best.rule->path, strlen(best.rule->path), pm);
}

/* Find the permissions for (op, path) per policy.h's steps 1–3. */
static void lookup(const struct cs_policy *const *pols, size_t n, bool list, const char *path,
		   struct perms *pm)
{
	while (*path == '/')
		path++;
	size_t len = strlen(path);
	collect(pols, n, CS_RULE_EXACT, path, len, pm);
	if (pm->found)
		return;
	bool slash = len > 0 && path[len - 1] == '/';
	if (list) {
		collect(pols, n, CS_RULE_EXACT, path, slash ? len - 1 : len, pm);
		if (pm->found)
			return;
		if (slash) {
			nonexact(pols, n, path, len - 1, pm);
			if (pm->found)
				return;
		}
	}
	nonexact(pols, n, path, len, pm);
}

/* ------------------------------------------------------------------ checks */

bool cs_acl_glob_match(const char *item, const char *val)
{
	size_t il = strlen(item), vl = strlen(val);
	if (il < 2)
		return strcmp(item, val) == 0;
	bool pre = item[0] == '*', suf = item[il - 1] == '*';
	if (pre && suf) {
		char *mid = strndup(item + 1, il - 2);
		if (!mid)
			abort();
		bool ok = strstr(val, mid) != NULL;
		free(mid);
		return ok;
	}
	if (pre)
		return vl >= il - 1 && memcmp(val + vl - (il - 1), item + 1, il - 1) == 0;
	if (suf)
		return vl >= il - 1 && memcmp(val, item, il - 1) == 0;
	return strcmp(item, val) == 0;
}

static bool value_in_list(const cJSON *v, const cJSON *list)
{
	if (!cJSON_GetArraySize(list))
		return true; /* an empty list means any value */
	const cJSON *e;
	cJSON_ArrayForEach(e, list)
	{
		if (cJSON_IsString(e) && cJSON_IsString(v)) {
			if (cs_acl_glob_match(e->valuestring, v->valuestring))
				return true;
		} else if (cJSON_Compare(e, v, true)) {
			return true;
		}
	}
	return false;
}

static const cJSON *param_list(const cJSON *params, const char *key)
{
	char *k = xstrdup(key);
	lower(k);
	const cJSON *l = cJSON_GetObjectItemCaseSensitive(params, k);
	free(k);
	return l;
}

static bool params_ok(const struct perms *pm, const cJSON *data)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, pm->required)
	{
		char *k = xstrdup(e->valuestring);
		lower(k);
		bool have = cJSON_GetObjectItemCaseSensitive(data, k) != NULL;
		free(k);
		if (!have)
			return false;
	}
	if (!cJSON_GetArraySize(data))
		return true;
	if (cJSON_GetArraySize(pm->denied)) {
		if (cJSON_GetObjectItemCaseSensitive(pm->denied, "*"))
			return false;
		cJSON_ArrayForEach(e, data)
		{
			const cJSON *l = param_list(pm->denied, e->string);
			if (l && value_in_list(e, l))
				return false;
		}
	}
	int na = cJSON_GetArraySize(pm->allowed);
	if (!na)
		return true;
	bool all = cJSON_GetObjectItemCaseSensitive(pm->allowed, "*") != NULL;
	if (na == 1 && all)
		return true;
	cJSON_ArrayForEach(e, data)
	{
		const cJSON *l = param_list(pm->allowed, e->string);
		if (!l && !all)
			return false;
		if (l && !value_in_list(e, l))
			return false;
	}
	return true;
}

static unsigned op_cap(enum cs_acl_op op)
{
	switch (op) {
	case CS_ACL_READ:
		return CS_CAP_READ;
	case CS_ACL_CREATE:
		return CS_CAP_CREATE;
	case CS_ACL_UPDATE:
		return CS_CAP_UPDATE;
	case CS_ACL_DELETE:
		return CS_CAP_DELETE;
	case CS_ACL_LIST:
		return CS_CAP_LIST;
	case CS_ACL_PATCH:
		return CS_CAP_PATCH;
	}
	return 0;
}

static bool check(const struct perms *pm, const struct cs_acl_request *r)
{
	unsigned need = op_cap(r->op);
	if (!need || !(pm->caps & need) || (pm->caps & CS_CAP_DENY))
		return false;
	/* Wrapping bounds: a path that sets them only serves wrapped responses. */
	if (pm->max_wrap > 0 && (r->wrap_ttl <= 0 || r->wrap_ttl > pm->max_wrap))
		return false;
	if (pm->min_wrap > 0 && (r->wrap_ttl <= 0 || r->wrap_ttl < pm->min_wrap))
		return false;
	if (pm->min_wrap && pm->max_wrap && pm->max_wrap < pm->min_wrap)
		return false;
	if ((r->op == CS_ACL_READ || r->op == CS_ACL_UPDATE || r->op == CS_ACL_CREATE ||
	     r->op == CS_ACL_PATCH) &&
	    !params_ok(pm, r->data))
		return false;
	if (r->need_sudo && !(pm->caps & CS_CAP_SUDO))
		return false;
	return true;
}

bool cs_acl_allowed(const struct cs_policy *const *pols, size_t n, const struct cs_acl_request *r)
{
	struct perms pm = {0};
	lookup(pols, n, r->op == CS_ACL_LIST, r->path, &pm);
	bool ok = pm.found && check(&pm, r);
	perms_free(&pm);
	return ok;
}

unsigned cs_acl_capabilities(const struct cs_policy *const *pols, size_t n, const char *path)
{
	struct perms pm = {0};
	lookup(pols, n, true, path, &pm);
	unsigned caps = pm.found ? pm.caps : 0;
	perms_free(&pm);
	return caps;
}

cJSON *cs_acl_caps_json(unsigned caps)
{
	/* Sorted by name, as Vault sorts the list it returns. */
	static const struct {
		const char *name;
		unsigned bit;
	} order[] = {
	    {"create", CS_CAP_CREATE}, {"delete", CS_CAP_DELETE}, {"list", CS_CAP_LIST},
	    {"patch", CS_CAP_PATCH},   {"read", CS_CAP_READ},     {"sudo", CS_CAP_SUDO},
	    {"update", CS_CAP_UPDATE},
	};
	cJSON *a = cJSON_CreateArray();
	if (!a)
		abort();
	if (!(caps & CS_CAP_DENY))
		for (size_t i = 0; i < CS_ARRAY_LEN(order); i++)
			if (caps & order[i].bit)
				cJSON_AddItemToArray(a, cJSON_CreateString(order[i].name));
	if (!cJSON_GetArraySize(a))
		cJSON_AddItemToArray(a, cJSON_CreateString("deny"));
	return a;
}
