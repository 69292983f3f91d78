/*
 * ACL policies: parse (HCL or JSON) and evaluate, as Vault/OpenBao do. Pure code: no
 * storage, no request, no globals; every function is thread-safe and never logs.
 *
 * A policy is a list of path rules:
 *
 *   path "secret/data/app/x" { capabilities = ["read", "list"] }
 *   path "secret/+/team"     { capabilities = ["update"], allowed_parameters = {...} }
 *
 * Rule kinds (the policy text decides, as in Vault):
 *   exact    no trailing '*', no '+' segment: the request path must be equal.
 *   prefix   a trailing '*' and no '+' segment: the request path starts with the text
 *            before the '*' (the longest such prefix is the candidate).
 *   segment  at least one whole '+' segment ("+", "a/+", "+/a"): '+' takes exactly one
 *            path segment (any text, even empty); a trailing '*' makes the last segment
 *            a prefix match and lets more segments follow.
 *
 * Evaluation of (op, path) against a set of policies, like Vault's ACL:
 *   1. exact rules with this path; for LIST also the path without its trailing '/'.
 *   2. for LIST of "x/": the wildcard candidates of "x" first, then of "x/".
 *   3. otherwise the best wildcard candidate: the longest prefix rule plus every matching
 *      segment rule, ranked by (a) later first '+' or '*', (b) not a prefix, (c) fewer
 *      '+', (d) longer pattern, (e) lexicographically larger pattern.
 *   Rules with the same kind and path text in several policies (or twice in one) merge:
 *   capabilities are the union, but "deny" anywhere makes it deny only; parameter
 *   constraints merge with Vault's rules (an empty value list wins; lists concatenate;
 *   required parameters union; the smaller wrapping TTLs win). Only the single best
 *   rule counts: an exact "secret/a" grant beats a deny on the glob "secret/" + "*".
 *   Then the operation needs its capability; read/create/update/patch check
 *   required/denied/allowed parameters against the request data (keys compared in lower
 *   case; string values with Vault's glob: "*x", "x*", "*x*"; an empty list = any value);
 *   a path rule with min/max_wrapping_ttl allows only wrapped requests within the range
 *   (fail closed: no wrapping exists yet, so such paths deny); sudo-protected paths also
 *   need "sudo".
 *   Templated rules ("{{identity.entity.id}}", ...) never match as parsed: the ACL
 *   evaluates cs_policy_instantiate's expansion beside it, for the request's identity
 *   (policy/template.h), where a path whose value is missing is dropped (Vault's rule).
 */
#ifndef CS_POLICY_POLICY_H
#define CS_POLICY_POLICY_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Capability bits. CS_CAP_DENY is never combined with another bit in a compiled rule. */
#define CS_CAP_DENY   0x01u
#define CS_CAP_CREATE 0x02u
#define CS_CAP_READ   0x04u
#define CS_CAP_UPDATE 0x08u
#define CS_CAP_DELETE 0x10u
#define CS_CAP_LIST   0x20u
#define CS_CAP_SUDO   0x40u
#define CS_CAP_PATCH  0x80u

/* Logical operations (the same order as server/backend.h's enum cs_op). */
enum cs_acl_op {
	CS_ACL_READ,
	CS_ACL_CREATE,
	CS_ACL_UPDATE,
	CS_ACL_DELETE,
	CS_ACL_LIST,
	CS_ACL_PATCH,
};

enum cs_rule_kind { CS_RULE_EXACT, CS_RULE_PREFIX, CS_RULE_SEGMENT };

struct cs_policy_rule {
	char *path; /* exact: as written; prefix: without the '*'; segment: as written */
	enum cs_rule_kind kind;
	bool templated;   /* has {{...}}: never matches until instantiated */
	char *tmpl;       /* templated: the path as written (without a leading '/') */
	unsigned caps;    /* CS_CAP_* bits */
	cJSON *allowed;   /* object: lower-cased parameter → array of values; NULL if none */
	cJSON *denied;    /* same shape */
	cJSON *required;  /* array of strings; NULL if none */
	int64_t min_wrap; /* seconds; 0 = unset */
	int64_t max_wrap;
};

struct cs_policy {
	struct cs_policy_rule *rules;
	size_t n_rules;
	bool templated; /* at least one templated rule */
};

/*
 * Parse `len` bytes of policy text. On success *out is a new policy owned by the caller
 * (free with cs_policy_free). On failure returns CS_EINVAL and writes Vault's message
 * ("failed to parse policy: ...") to errmsg (always NUL-terminated).
 */
int cs_policy_parse(const char *text, size_t len, struct cs_policy **out, char *errmsg,
		    size_t errlen);
void cs_policy_free(struct cs_policy *p);

/* A new policy (the caller frees it with cs_policy_free) holding the templated rules of
 * `p` expanded against `ident` (policy/template.h; NULL: no identity), each dropped when a
 * directive has no usable value. Evaluate it together with `p` (whose templated rules
 * never match): rules merge across policies, so the pair is `p` instantiated, without
 * copying its plain rules on every request. Never fails. */
struct cs_policy *cs_policy_instantiate(const struct cs_policy *p, const cJSON *ident);

/* One request to check. `data` (object or NULL) is the request's body + query data,
 * before path captures are merged in. wrap_ttl is the requested wrapping TTL, 0 when
 * the response is not wrapped. */
struct cs_acl_request {
	enum cs_acl_op op;
	const char *path; /* logical path after /v1/ (leading '/' ignored) */
	const cJSON *data;
	int64_t wrap_ttl;
	bool need_sudo; /* the path is sudo-protected */
};

/* True if the policies (NULL entries are skipped) allow the request. */
bool cs_acl_allowed(const struct cs_policy *const *pols, size_t n, const struct cs_acl_request *r);

/* The capability bits of the best rule for `path` (Vault evaluates capabilities as a
 * LIST lookup, without parameter checks); 0 when nothing matches. */
unsigned cs_acl_capabilities(const struct cs_policy *const *pols, size_t n, const char *path);

/* Vault's capability list for a bitmap, sorted by name: ["deny"] for 0 or deny. New
 * array owned by the caller. */
cJSON *cs_acl_caps_json(unsigned caps);

/* Vault's string glob for parameter values ("*x", "x*", "*x*", else equality). */
bool cs_acl_glob_match(const char *pattern, const char *value);

#endif
