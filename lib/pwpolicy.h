/*
 * Password policies: Vault's policy language and a generator over OpenSSL's CSPRNG.
 *
 * A policy is HCL (or JSON) with a length and charset rules:
 *
 *   length = 20
 *   rule "charset" {
 *     charset   = "abcdefghijklmnopqrstuvwxyz"
 *     min-chars = 1
 *   }
 *
 * Passwords are `length` characters (Unicode code points, UTF-8 encoded) drawn from the
 * de-duplicated union of every rule's charset; each rule requires at least `min-chars` of
 * its own characters. What is refused, as Vault refuses it (server-side texts in
 * lib/pwpolicy.c): HCL syntax errors, a length that is not a number or not > 0, rules
 * that need more characters than the length, a length outside 4..100, an unknown rule
 * type, a charset that is not valid UTF-8, has a non-printable character, or whose union
 * is empty or longer than 256 characters, and a rule that can never be satisfied (an
 * empty charset with min-chars > 0). Unknown keys are ignored, as Vault's decoder does.
 *
 * Pure functions, thread-safe, no logging. The policy object holds no secret.
 */
#ifndef CS_LIB_PWPOLICY_H
#define CS_LIB_PWPOLICY_H

#include <stdbool.h>
#include <stddef.h>

/* Vault's bounds on a stored policy's length (sys/policies/password). */
#define CS_PWPOLICY_MIN_LENGTH 4
#define CS_PWPOLICY_MAX_LENGTH 100
/* The most distinct characters a policy may draw from: one random byte picks one. */
#define CS_PWPOLICY_MAX_CHARSET 256

struct cs_pwpolicy;

/*
 * Parse and validate `len` bytes of policy text. Returns 0 and *out (free it with
 * cs_pwpolicy_free), or CS_EINVAL with a one-line reason in errmsg (always
 * NUL-terminated; callers prefix it with "invalid password policy: ").
 */
int cs_pwpolicy_parse(const char *text, size_t len, struct cs_pwpolicy **out, char *errmsg,
		      size_t errlen);
void cs_pwpolicy_free(struct cs_pwpolicy *p);

/* The password length in characters. */
int cs_pwpolicy_length(const struct cs_pwpolicy *p);

/*
 * A password satisfying `p`: *out is malloc'd, NUL-terminated UTF-8; the caller wipes it
 * (cs_zero) and frees it. Uniform over every string that satisfies the policy (rejection
 * sampling, each character chosen without modulo bias); a policy whose rules are so
 * strict that a bounded number of candidates all fail (bounded work on the loop thread,
 * where Vault gives up after one second) gets a password built to satisfy them: each
 * rule's minimum drawn from its charset, the rest from the union, then shuffled. Returns
 * 0, or CS_ENOMEM.
 */
int cs_pwpolicy_generate(const struct cs_pwpolicy *p, char **out);

/* Whether `pw` (NUL-terminated UTF-8) has the policy's length, only characters of its
 * charsets, and meets every rule's min-chars. */
bool cs_pwpolicy_satisfied(const struct cs_pwpolicy *p, const char *pw);

#endif
