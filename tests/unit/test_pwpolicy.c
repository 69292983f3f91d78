/*
 * Unit tests for password policies (lib/pwpolicy.c): Vault's language (good and bad
 * HCL and JSON, each error), the bounds, and properties of generated passwords checked
 * by code independent of the module (length, alphabet, every rule, no modulo bias).
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/pwpolicy.h"

static char err[256];

/* Parse from an exact-size heap copy so ASan catches any read past `len`. */
static int parse_n(const char *text, size_t len, struct cs_pwpolicy **p)
{
	char *copy = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(copy);
	memcpy(copy, text, len);
	int rc = cs_pwpolicy_parse(copy, len, p, err, sizeof err);
	free(copy);
	return rc;
}

static struct cs_pwpolicy *parse_ok(const char *text)
{
	struct cs_pwpolicy *p = NULL;
	int rc = parse_n(text, strlen(text), &p);
	ck_assert_msg(rc == 0, "parse of <%s> failed: %s", text, err);
	ck_assert_ptr_nonnull(p);
	return p;
}

/* Parsing must fail with CS_EINVAL and a message containing `want`. */
static void parse_fails(const char *text, const char *want)
{
	struct cs_pwpolicy *p = (struct cs_pwpolicy *)1;
	int rc = parse_n(text, strlen(text), &p);
	ck_assert_msg(rc == CS_EINVAL, "parse of <%s> should fail (rc %d)", text, rc);
	ck_assert_ptr_null(p);
	ck_assert_msg(strstr(err, want) != NULL, "error <%s> should contain <%s>", err, want);
}

/* ------------------------------------------------------------------ an independent checker */

/* Next code point of UTF-8 at *s (the test's own decoder, 1 to 4 bytes, no validation
 * beyond what the tests need: the module must only ever emit well-formed text). */
static uint32_t next_cp(const char **s)
{
	const unsigned char *p = (const unsigned char *)*s;
	uint32_t c;
	int n;
	if (p[0] < 0x80)
		c = p[0], n = 1;
	else if (p[0] < 0xe0)
		c = p[0] & 0x1f, n = 2;
	else if (p[0] < 0xf0)
		c = p[0] & 0x0f, n = 3;
	else
		c = p[0] & 0x07, n = 4;
	for (int i = 1; i < n; i++) {
		ck_assert_msg((p[i] & 0xc0) == 0x80, "malformed UTF-8 in a generated password");
		c = c << 6 | (p[i] & 0x3f);
	}
	*s += n;
	return c;
}

/* Code points of a UTF-8 string into v (at most max); returns the count. */
static size_t cps(const char *s, uint32_t *v, size_t max)
{
	size_t n = 0;
	while (*s) {
		uint32_t c = next_cp(&s);
		if (n < max)
			v[n] = c;
		n++;
	}
	return n;
}

static bool in(uint32_t c, const uint32_t *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (set[i] == c)
			return true;
	return false;
}

struct spec_rule {
	const char *charset; /* UTF-8 */
	int min;
};

/* The policy text for `len` and rules, as an operator writes it. */
static char *policy_text(int len, const struct spec_rule *r, size_t nr)
{
	struct cs_buf b = CS_BUF_INIT;
	cs_buf_printf(&b, "length = %d\n", len);
	for (size_t i = 0; i < nr; i++) {
		cs_buf_puts(&b, "rule \"charset\" {\n  charset = \"");
		for (const char *c = r[i].charset; *c; c++) {
			if (*c == '"' || *c == '\\')
				cs_buf_putc(&b, '\\');
			cs_buf_putc(&b, *c);
		}
		cs_buf_printf(&b, "\"\n  min-chars = %d\n}\n", r[i].min);
	}
	return cs_buf_steal(&b, NULL);
}

/* Generate `n` passwords and check each against the spec with the test's own code. */
static void property(int len, const struct spec_rule *r, size_t nr, int n)
{
	char *text = policy_text(len, r, nr);
	struct cs_pwpolicy *p = parse_ok(text);
	free(text);
	ck_assert_int_eq(cs_pwpolicy_length(p), len);
	uint32_t all[1024];
	size_t nall = 0;
	for (size_t i = 0; i < nr; i++)
		nall += cps(r[i].charset, all + nall, 1024 - nall);
	for (int k = 0; k < n; k++) {
		char *pw = NULL;
		ck_assert_int_eq(cs_pwpolicy_generate(p, &pw), 0);
		ck_assert_ptr_nonnull(pw);
		uint32_t v[128];
		size_t got = cps(pw, v, 128);
		ck_assert_msg(got == (size_t)len, "password has %zu characters, want %d", got, len);
		for (size_t j = 0; j < got; j++)
			ck_assert_msg(in(v[j], all, nall), "U+%04X is in no charset", v[j]);
		for (size_t i = 0; i < nr; i++) {
			uint32_t set[512];
			size_t ns = cps(r[i].charset, set, 512);
			int count = 0;
			for (size_t j = 0; j < got; j++)
				count += in(v[j], set, ns);
			ck_assert_msg(count >= r[i].min, "rule %zu: %d of %d characters", i, count,
				      r[i].min);
		}
		ck_assert(cs_pwpolicy_satisfied(p, pw));
		free(pw);
	}
	cs_pwpolicy_free(p);
}

/* ------------------------------------------------------------------ language */

START_TEST(test_good_policies)
{
	/* Vault's documented example, with its escapes. */
	struct cs_pwpolicy *p = parse_ok("length = 20\n"
					 "rule \"charset\" {\n"
					 "  charset = \"abcdefghijklmnopqrstuvwxyz\"\n"
					 "  min-chars = 1\n"
					 "}\n"
					 "rule \"charset\" {\n"
					 "  charset = \"!\\\"#$%&'()*+,-./:;<=>?@[\\\\]^_`{|}~\"\n"
					 "}\n");
	ck_assert_int_eq(cs_pwpolicy_length(p), 20);
	ck_assert(cs_pwpolicy_satisfied(p, "a\"\\bcdefghijklmnopqr"));
	ck_assert(!cs_pwpolicy_satisfied(p, "!!!!!!!!!!!!!!!!!!!!"));  /* no lowercase */
	ck_assert(!cs_pwpolicy_satisfied(p, "abc"));                   /* short */
	ck_assert(!cs_pwpolicy_satisfied(p, "abcdefghijklmnopqrstu")); /* long */
	ck_assert(!cs_pwpolicy_satisfied(p, "ABCDEFGHIJKLMNOPQRSa"));  /* outside */
	cs_pwpolicy_free(p);

	/* JSON, as Vault's HCL decoder reads it: rule is a list of {type: [body]}. */
	p = parse_ok("{\"length\": 8, \"rule\": [{\"charset\": [{\"charset\": \"ab\", "
		     "\"min-chars\": 2}]}, {\"charset\": [{\"charset\": \"0\"}]}]}");
	ck_assert_int_eq(cs_pwpolicy_length(p), 8);
	ck_assert(cs_pwpolicy_satisfied(p, "ab000000"));
	ck_assert(!cs_pwpolicy_satisfied(p, "a0000000"));
	cs_pwpolicy_free(p);

	/* Unknown keys are ignored; a repeated length keeps the last; a fraction is
	 * dropped as Vault's decoder drops it; a negative min-chars requires nothing. */
	p = parse_ok("color = \"red\"\nlength = 50\nlength = 6.9\n"
		     "rule \"charset\" { charset = \"xy\"\n min-chars = -4\n extra = true }\n");
	ck_assert_int_eq(cs_pwpolicy_length(p), 6);
	ck_assert(cs_pwpolicy_satisfied(p, "xxxxxx"));
	cs_pwpolicy_free(p);

	/* Bounds are inclusive: 4 and 100 characters. */
	p = parse_ok("length = 4\nrule \"charset\" { charset = \"a\"\n min-chars = 4 }");
	cs_pwpolicy_free(p);
	p = parse_ok("length = 100\nrule \"charset\" { charset = \"a\" }");
	cs_pwpolicy_free(p);

	/* Multi-byte characters count as one each; U+0020 is printable (Go's IsPrint). */
	p = parse_ok("length = 4\nrule \"charset\" { charset = \"\xc3\xa9\xe2\x82\xac \" }");
	ck_assert(cs_pwpolicy_satisfied(p, "\xc3\xa9\xe2\x82\xac \xc3\xa9"));
	ck_assert(!cs_pwpolicy_satisfied(p, "\xc3\xa9\xe2\x82\xac \xc3")); /* cut UTF-8 */
	cs_pwpolicy_free(p);
}
END_TEST

START_TEST(test_vault_errors)
{
	parse_fails("length = ", "unable to decode: line 1");
	parse_fails("rule \"charset\" {\n charset = \"a\n}", "unable to decode: line 2");
	parse_fails("length = \"20\"\nrule \"charset\" { charset = \"a\" }",
		    "'length' expected type 'int', got unconvertible type 'string'");
	parse_fails("length = [20]\nrule \"charset\" { charset = \"a\" }",
		    "'length' expected type 'int'");
	parse_fails("rule \"charset\" { charset = \"abc\" }", "length must be > 0");
	parse_fails("length = -3\nrule \"charset\" { charset = \"abc\" }", "length must be > 0");
	parse_fails("length = 0.5\nrule \"charset\" { charset = \"abc\" }", "length must be > 0");
	parse_fails("length = 4\n"
		    "rule \"charset\" { charset = \"a\"\n min-chars = 3 }\n"
		    "rule \"charset\" { charset = \"b\"\n min-chars = 2 }\n",
		    "specified rules require at least 5 characters but 4 is specified");
	parse_fails("length = 10", "no charset specified");
	parse_fails("length = 10\nrule \"charset\" { charset = \"\" }", "no charset specified");
	parse_fails("length = 10\nrule \"charset\" { min-chars = 0 }", "no charset specified");
	parse_fails("length = 3\nrule \"charset\" { charset = \"abc\" }",
		    "passwords must be between 4 and 100 characters");
	parse_fails("length = 101\nrule \"charset\" { charset = \"abc\" }",
		    "passwords must be between 4 and 100 characters");
	parse_fails("length = 1e300\nrule \"charset\" { charset = \"abc\" }",
		    "passwords must be between 4 and 100 characters");
	parse_fails("length = 10\nrule \"length\" { charset = \"abc\" }",
		    "unrecognized rule type length");
	parse_fails("length = 10\nrule \"charset\" { charset = 12 }",
		    "'charset' expected a string, got number");
	parse_fails("length = 10\nrule \"charset\" { charset = \"ab\"\n min-chars = \"1\" }",
		    "'min-chars' expected type 'int', got unconvertible type 'string'");
	parse_fails("length = 10\nrule = \"charset\"", "unable to retrieve rules");
	parse_fails("length = 10\nrule { charset = \"ab\" }", "expected a block, got string");
	parse_fails("length = 10\nrule {}", "rule is empty");
	parse_fails("{\"length\": 10, \"rule\": [{\"charset\": []}]}", "rule info cannot be empty");
	/* A rule that needs characters it does not have: Vault's "impossible" check. */
	parse_fails("length = 10\nrule \"charset\" { charset = \"ab\" }\n"
		    "rule \"charset\" { charset = \"\"\n min-chars = 1 }",
		    "are the rules impossible?");
}
END_TEST

START_TEST(test_charset_errors)
{
	/* Not UTF-8: a stray continuation byte, an overlong '/', a surrogate, a cut sequence. */
	parse_fails("length = 8\nrule \"charset\" { charset = \"ab\x80\" }", "invalid UTF8 string");
	parse_fails("length = 8\nrule \"charset\" { charset = \"\xc0\xaf\" }",
		    "invalid UTF8 string");
	parse_fails("length = 8\nrule \"charset\" { charset = \"\xed\xa0\x80\" }",
		    "invalid UTF8 string");
	parse_fails("length = 8\nrule \"charset\" { charset = \"a\xe2\x82\" }",
		    "invalid UTF8 string");
	/* Non-printable: a tab, DEL, a C1 control, no-break space, zero-width space, a BOM,
	 * private use, a non-character. */
	static const char *bad[] = {"\\t",     "\x7f",    "\xc2\x85", "\\u00a0",
				    "\\u200b", "\\ufeff", "\\ue000",  "\\uffff"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char t[128];
		snprintf(t, sizeof t, "length = 8\nrule \"charset\" { charset = \"ab%s\" }",
			 bad[i]);
		parse_fails(t, "non-printable character in charset");
	}
}
END_TEST

/* 256 distinct characters are the most a policy may draw from, per rule or together. */
START_TEST(test_charset_size_limit)
{
	struct cs_buf b = CS_BUF_INIT;
	char utf8[4];
	/* U+0100..U+01FF: 256 printable Latin Extended letters, two bytes each. */
	for (uint32_t c = 0x100; c < 0x200; c++) {
		utf8[0] = (char)(0xc0 | c >> 6);
		utf8[1] = (char)(0x80 | (c & 0x3f));
		cs_buf_append(&b, utf8, 2);
	}
	char *text = malloc(b.len + 200);
	snprintf(text, b.len + 200, "length = 8\nrule \"charset\" { charset = \"%sa\" }", b.data);
	parse_fails(text, "charset is too long: limited to 256 characters");
	snprintf(text, b.len + 200, "length = 8\nrule \"charset\" { charset = \"%s\" }", b.data);
	struct cs_pwpolicy *p = parse_ok(text);
	cs_pwpolicy_free(p);
	/* The union counts: 256 in one rule plus one more elsewhere is too many... */
	snprintf(text, b.len + 200,
		 "length = 8\nrule \"charset\" { charset = \"%s\" }\n"
		 "rule \"charset\" { charset = \"z\" }",
		 b.data);
	parse_fails(text, "charset is too long");
	/* ...while repeating characters already in the union does not. */
	snprintf(text, b.len + 200,
		 "length = 8\nrule \"charset\" { charset = \"%s\" }\n"
		 "rule \"charset\" { charset = \"\xc4\x80\xc4\x80\"\n min-chars = 2 }",
		 b.data);
	p = parse_ok(text);
	cs_pwpolicy_free(p);
	free(text);
	cs_buf_free(&b);
}
END_TEST

/* Duplicates within and across rules: the alphabet is the set, each rule counts its own. */
START_TEST(test_duplicate_charsets)
{
	struct cs_pwpolicy *p =
	    parse_ok("length = 6\n"
		     "rule \"charset\" { charset = \"aaaaaaaaab\"\n min-chars = 2 }\n"
		     "rule \"charset\" { charset = \"ab\"\n min-chars = 2 }\n"
		     "rule \"charset\" { charset = \"ab\"\n min-chars = 2 }\n");
	/* Two a's count for all three rules at once, as in Vault. */
	ck_assert(cs_pwpolicy_satisfied(p, "aaaaaa"));
	/* a repeated character is no likelier than the others: about half a's */
	long a = 0, total = 0;
	for (int k = 0; k < 2000; k++) {
		char *pw = NULL;
		ck_assert_int_eq(cs_pwpolicy_generate(p, &pw), 0);
		for (char *c = pw; *c; c++, total++) {
			ck_assert(*c == 'a' || *c == 'b');
			a += *c == 'a';
		}
		free(pw);
	}
	/* 12000 draws of p = 1/2: the bounds are 11 standard deviations away. */
	ck_assert_msg(a > total * 45 / 100 && a < total * 55 / 100, "%ld a's of %ld", a, total);
	cs_pwpolicy_free(p);
}
END_TEST

/* ------------------------------------------------------------------ generation */

START_TEST(test_property_many_policies)
{
	static const struct spec_rule vault_default[] = {
	    {"abcdefghijklmnopqrstuvwxyz", 1},
	    {"ABCDEFGHIJKLMNOPQRSTUVWXYZ", 1},
	    {"0123456789", 1},
	    {"-", 1},
	};
	property(20, vault_default, 4, 3000);
	static const struct spec_rule symbols[] = {
	    {"abcdefghijklmnopqrstuvwxyz", 2},
	    {"ABCDEFGHIJKLMNOPQRSTUVWXYZ", 2},
	    {"0123456789", 2},
	    {"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", 2},
	};
	property(8, symbols, 4, 3000);
	property(100, symbols, 4, 500);
	/* Overlapping charsets. */
	static const struct spec_rule overlap[] = {{"abcdef", 3}, {"defghi", 3}, {"ghia", 2}};
	property(8, overlap, 3, 3000);
	/* Multi-byte characters. */
	static const struct spec_rule intl[] = {
	    {"\xc3\xa9\xc3\xa8\xc3\xaa", 2}, {"\xe2\x82\xac\xf0\x9f\x94\x91", 1}, {"xyz", 0}};
	property(12, intl, 3, 3000);
}
END_TEST

/*
 * Rules so strict that random candidates essentially never pass (every character but one
 * of 95 must be 'a'): the generator still answers, with a password that satisfies them.
 */
START_TEST(test_strict_rules_still_generate)
{
	static const struct spec_rule all_a[] = {
	    {"a", 8},
	    {"bcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	     "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ ",
	     0},
	};
	property(8, all_a, 2, 200);
	static const struct spec_rule half[] = {
	    {"a", 6},
	    {"bcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", 6},
	};
	property(12, half, 2, 500);
}
END_TEST

/*
 * No modulo bias: 200 characters do not divide 256, so "byte % 200" would pick the first
 * 56 twice as often (2/256) as the rest (1/256). 200,000 draws: each character is
 * expected 1,000 times (sd ~32); biased ones would land near 1,560, unbiased ones below
 * 780 or above 1,220 are 7 sd out.
 */
START_TEST(test_no_modulo_bias)
{
	struct cs_buf cs = CS_BUF_INIT;
	for (int c = 33; c < 127; c++) /* 94 printable ASCII but space */
		if (c != '"' && c != '\\')
			cs_buf_putc(&cs, (char)c);
	cs_buf_puts(&cs, "\\\"\\\\");
	for (uint32_t c = 0xc0; c < 0xc0 + 106; c++) { /* 106 Latin-1/Extended letters */
		char u[2] = {(char)(0xc0 | c >> 6), (char)(0x80 | (c & 0x3f))};
		cs_buf_append(&cs, u, 2);
	}
	char *text = malloc(cs.len + 64);
	snprintf(text, cs.len + 64, "length = 100\nrule \"charset\" { charset = \"%s\" }", cs.data);
	struct cs_pwpolicy *p = parse_ok(text);
	free(text);
	cs_buf_free(&cs);
	static long count[0x200];
	memset(count, 0, sizeof count);
	for (int k = 0; k < 2000; k++) {
		char *pw = NULL;
		ck_assert_int_eq(cs_pwpolicy_generate(p, &pw), 0);
		for (const char *s = pw; *s;) {
			uint32_t c = next_cp(&s);
			ck_assert_uint_lt(c, 0x200);
			count[c]++;
		}
		free(pw);
	}
	int distinct = 0;
	for (int c = 0; c < 0x200; c++) {
		if (!count[c])
			continue;
		distinct++;
		ck_assert_msg(count[c] > 780 && count[c] < 1220, "U+%04X drawn %ld times", c,
			      count[c]);
	}
	ck_assert_int_eq(distinct, 200);
	cs_pwpolicy_free(p);
}
END_TEST

START_TEST(test_passwords_differ)
{
	struct cs_pwpolicy *p =
	    parse_ok("length = 20\nrule \"charset\" { charset = \"abcdefghijklmnopqrstuvwxyz\" }");
	char *a = NULL, *b = NULL;
	ck_assert_int_eq(cs_pwpolicy_generate(p, &a), 0);
	ck_assert_int_eq(cs_pwpolicy_generate(p, &b), 0);
	/* 26^20 possibilities: equal passwords mean a broken RNG path. */
	ck_assert_str_ne(a, b);
	free(a);
	free(b);
	cs_pwpolicy_free(p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pwpolicy");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_good_policies);
	tcase_add_test(tc, test_vault_errors);
	tcase_add_test(tc, test_charset_errors);
	tcase_add_test(tc, test_charset_size_limit);
	tcase_add_test(tc, test_duplicate_charsets);
	tcase_add_test(tc, test_property_many_policies);
	tcase_add_test(tc, test_strict_rules_still_generate);
	tcase_add_test(tc, test_no_modulo_bias);
	tcase_add_test(tc, test_passwords_differ);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
