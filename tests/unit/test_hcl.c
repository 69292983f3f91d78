/* Unit tests for the HCL v1 / JSON parser (lib/hcl.c). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "lib/hcl.h"

static char err[256];

/* Parse from an exact-size heap copy so ASan catches any read past `len`. */
static struct cs_hcl_node *parse_n(const char *text, size_t len)
{
	char *copy = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(copy);
	memcpy(copy, text, len);
	struct cs_hcl_node *root = cs_hcl_parse(copy, len, err, sizeof err);
	free(copy);
	return root;
}

static struct cs_hcl_node *parse_ok(const char *text)
{
	struct cs_hcl_node *root = parse_n(text, strlen(text));
	ck_assert_msg(root != NULL, "parse failed: %s", err);
	ck_assert_int_eq(root->type, CS_HCL_OBJECT);
	return root;
}

/* Parsing must fail with exactly this message ("line N: ..." prefix checked in full). */
static void parse_fails(const char *text, const char *prefix)
{
	struct cs_hcl_node *root = parse_n(text, strlen(text));
	ck_assert_msg(root == NULL, "parse of <%s> should fail", text);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "error <%s> should start <%s>",
		      err, prefix);
}

static const struct cs_hcl_node *get(const struct cs_hcl_node *obj, const char *key)
{
	const struct cs_hcl_node *n = cs_hcl_get(obj, key);
	ck_assert_msg(n != NULL, "missing key %s", key);
	return n;
}

static int count(const struct cs_hcl_node *n)
{
	int k = 0;
	for (n = n->child; n; n = n->next)
		k++;
	return k;
}

START_TEST(test_scalars_and_separators)
{
	struct cs_hcl_node *r = parse_ok("a = \"x\"\n"
					 "b: 42\n"
					 "\"quoted key\" = -7\n"
					 "c = 1.5, d = 2e3, e = true f = false\n"
					 "g = null\n"
					 "dotted.key-name_1 = \"\"\n");
	ck_assert_int_eq(count(r), 9);
	const struct cs_hcl_node *n = get(r, "a");
	ck_assert_int_eq(n->type, CS_HCL_STRING);
	ck_assert_str_eq(n->str, "x");
	ck_assert_int_eq(n->line, 1);
	n = get(r, "b");
	ck_assert_int_eq(n->type, CS_HCL_NUMBER);
	ck_assert(n->is_int);
	ck_assert(n->num == 42);
	ck_assert_str_eq(n->str, "42");
	ck_assert_int_eq(n->line, 2);
	n = get(r, "quoted key");
	ck_assert(n->num == -7);
	ck_assert_int_eq(n->line, 3);
	n = get(r, "c");
	ck_assert(!n->is_int);
	ck_assert(n->num == 1.5);
	ck_assert_int_eq(n->line, 4);
	n = get(r, "d");
	ck_assert(!n->is_int);
	ck_assert(n->num == 2000);
	n = get(r, "e");
	ck_assert_int_eq(n->type, CS_HCL_BOOL);
	ck_assert(n->b);
	n = get(r, "f");
	ck_assert_int_eq(n->type, CS_HCL_BOOL);
	ck_assert(!n->b);
	ck_assert_int_eq(n->line, 4);
	ck_assert_int_eq(get(r, "g")->type, CS_HCL_NULL);
	ck_assert_str_eq(get(r, "dotted.key-name_1")->str, "");
	ck_assert_ptr_null(cs_hcl_get(r, "missing"));
	ck_assert_ptr_null(cs_hcl_get(get(r, "a"), "x")); /* not an object */
	cs_hcl_free(r);
}
END_TEST

START_TEST(test_comments)
{
	struct cs_hcl_node *r = parse_ok("# hash comment\n"
					 "a = 1 # trailing\n"
					 "// slash comment\n"
					 "b = 2 // trailing\n"
					 "/* block\n"
					 "   spanning # lines // here\n"
					 "*/ c = /* inline */ 3\n"
					 "d = \"# not // a /* comment\"\n");
	ck_assert_int_eq(count(r), 4);
	ck_assert_int_eq(get(r, "a")->line, 2);
	ck_assert_int_eq(get(r, "b")->line, 4);
	ck_assert(get(r, "c")->num == 3);
	ck_assert_int_eq(get(r, "c")->line, 7);
	ck_assert_str_eq(get(r, "d")->str, "# not // a /* comment");
	ck_assert_int_eq(get(r, "d")->line, 8);
	cs_hcl_free(r);
	parse_fails("a = 1\n/* never\nclosed", "line 2: unterminated /* comment");
}
END_TEST

START_TEST(test_heredoc)
{
	struct cs_hcl_node *r = parse_ok("a = <<EOT\n"
					 "line one\n"
					 "  line \"two\" \\n\n"
					 "EOT\n"
					 "b = <<-EOF\n"
					 "    indented\n"
					 "      more\n"
					 "    EOF\n"
					 "c = <<E\n"
					 "E\n"
					 "d = 1\n");
	const struct cs_hcl_node *n = get(r, "a");
	ck_assert_int_eq(n->type, CS_HCL_STRING);
	/* No escape processing inside a heredoc. */
	ck_assert_str_eq(n->str, "line one\n  line \"two\" \\n\n");
	ck_assert_int_eq(n->line, 1);
	n = get(r, "b");
	ck_assert_str_eq(n->str, "indented\n  more\n");
	ck_assert_int_eq(n->line, 5);
	ck_assert_str_eq(get(r, "c")->str, "");
	ck_assert_int_eq(get(r, "c")->line, 9);
	ck_assert_int_eq(get(r, "d")->line, 11);
	cs_hcl_free(r);

	/* Without '-', indentation is kept even when the anchor is indented. */
	r = parse_ok("x = <<EOT\n  keep\n  EOT\n");
	ck_assert_str_eq(get(r, "x")->str, "  keep\n");
	cs_hcl_free(r);

	/* Heredocs as list elements. */
	r = parse_ok("l = [<<A\none\nA\n, \"two\"]\n");
	n = get(r, "l");
	ck_assert_int_eq(count(n), 2);
	ck_assert_str_eq(n->child->str, "one\n");
	ck_assert_int_eq(n->child->next->line, 4);
	cs_hcl_free(r);

	parse_fails("a = 1\nb = <<EOT\nno end\n", "line 2: unterminated heredoc");
	parse_fails("a = <<EOT x\nEOT\n", "line 1: heredoc anchor must be followed by a newline");
	parse_fails("a = <<\nEOT\n", "line 1: heredoc needs an anchor");
}
END_TEST

START_TEST(test_escapes)
{
	struct cs_hcl_node *r = parse_ok("a = \"q\\\" b\\\\ n\\n t\\t r\\r s\\/\"\n"
					 "u = \"\\u00e9\\u20ac\"\n"
					 "p = \"\\ud83d\\ude00\"\n"
					 "raw = \"caf\xc3\xa9 ${var.x} {{identity.entity.id}}\"\n");
	ck_assert_str_eq(get(r, "a")->str, "q\" b\\ n\n t\t r\r s/");
	ck_assert_str_eq(get(r, "u")->str, "\xc3\xa9\xe2\x82\xac");
	ck_assert_str_eq(get(r, "p")->str, "\xf0\x9f\x98\x80");
	ck_assert_str_eq(get(r, "raw")->str, "caf\xc3\xa9 ${var.x} {{identity.entity.id}}");
	cs_hcl_free(r);

	parse_fails("a = 1\nb = \"bad \\q\"\n", "line 2: invalid escape sequence \\q");
	parse_fails("a = \"\\u12\"\n", "line 1: invalid \\u escape");
	parse_fails("a = \"\\ud83d x\"\n", "line 1: invalid \\u escape: unpaired surrogate");
	parse_fails("a = \"\\ude00\"\n", "line 1: invalid \\u escape: unpaired surrogate");
	parse_fails("a = \"\\u0000\"\n", "line 1: \\u0000 is not allowed");
	parse_fails("a = \"ctl \x01\"\n", "line 1: invalid control character");
}
END_TEST

START_TEST(test_blocks_and_labels)
{
	struct cs_hcl_node *r = parse_ok("plain {\n  x = 1\n}\n"
					 "one \"l1\" { y = 2 }\n"
					 "two \"l1\" ident_label\n"
					 "{\n"
					 "  z = 3\n"
					 "  inner = { w = [1] }\n"
					 "}\n"
					 "eq = { k = \"v\" }\n");
	const struct cs_hcl_node *n = get(r, "plain");
	ck_assert_int_eq(n->type, CS_HCL_OBJECT);
	ck_assert_int_eq(n->line, 1);
	ck_assert_int_eq(get(n, "x")->line, 2);

	n = get(r, "one");
	ck_assert_int_eq(count(n), 1);
	n = get(n, "l1");
	ck_assert_int_eq(n->type, CS_HCL_OBJECT);
	ck_assert_int_eq(n->line, 4);
	ck_assert(get(n, "y")->num == 2);

	n = get(get(get(r, "two"), "l1"), "ident_label");
	ck_assert_int_eq(n->type, CS_HCL_OBJECT);
	ck_assert_int_eq(get(n, "z")->line, 7);
	ck_assert_int_eq(get(get(n, "inner"), "w")->type, CS_HCL_LIST);
	ck_assert_int_eq(get(get(r, "two"), "l1")->line, 5);

	ck_assert_str_eq(get(get(r, "eq"), "k")->str, "v");
	cs_hcl_free(r);
}
END_TEST

START_TEST(test_repeated_keys_kept_in_order)
{
	struct cs_hcl_node *r = parse_ok("listener \"tcp\" { address = \"a\" }\n"
					 "x = 1\n"
					 "listener \"tcp\" { address = \"b\" }\n"
					 "x = 2\n");
	ck_assert_int_eq(count(r), 4);
	const struct cs_hcl_node *m = r->child;
	ck_assert_str_eq(m->key, "listener");
	ck_assert_str_eq(get(get(m, "tcp"), "address")->str, "a");
	m = m->next->next;
	ck_assert_str_eq(m->key, "listener");
	ck_assert_int_eq(m->line, 3);
	ck_assert_str_eq(get(get(m, "tcp"), "address")->str, "b");
	/* cs_hcl_get returns the first. */
	ck_assert(get(r, "x")->num == 1);
	ck_assert(m->next->num == 2);
	cs_hcl_free(r);
}
END_TEST

START_TEST(test_lists)
{
	struct cs_hcl_node *r = parse_ok("a = [1, \"two\", true,]\n"
					 "b = []\n"
					 "c = [\n"
					 "  \"x\", # comment\n"
					 "  [\"nested\", [],],\n"
					 "  { k = 1, j = 2, },\n"
					 "]\n"
					 "d = { m = 1, }\n");
	const struct cs_hcl_node *n = get(r, "a");
	ck_assert_int_eq(n->type, CS_HCL_LIST);
	ck_assert_int_eq(count(n), 3);
	ck_assert(n->child->num == 1);
	ck_assert_ptr_null(n->child->key);
	ck_assert_str_eq(n->child->next->str, "two");
	ck_assert(n->child->next->next->b);
	ck_assert_int_eq(count(get(r, "b")), 0);
	n = get(r, "c");
	ck_assert_int_eq(count(n), 3);
	ck_assert_int_eq(n->child->line, 4);
	ck_assert_int_eq(n->child->next->type, CS_HCL_LIST);
	ck_assert_int_eq(count(n->child->next), 2);
	ck_assert_int_eq(n->child->next->line, 5);
	const struct cs_hcl_node *o = n->child->next->next;
	ck_assert_int_eq(o->type, CS_HCL_OBJECT);
	ck_assert_int_eq(o->line, 6);
	ck_assert_int_eq(count(o), 2);
	ck_assert_int_eq(count(get(r, "d")), 1);
	cs_hcl_free(r);

	parse_fails("a = [1 2]\n", "line 1: expected ',' or ']' in list");
	parse_fails("a = [1,\n2,\n", "line 1: '[' is never closed");
	parse_fails("a = [,]\n", "line 1: expected a value, found ','");
}
END_TEST

START_TEST(test_json_document)
{
	const char *doc =
	    "\n"
	    "{\n"
	    "  \"storage\": {\"raft\": {\"path\": \"/d\", \"node_id\": \"n\"}},\n"
	    "  \"listener\": [\n"
	    "    {\"tcp\": {\"address\": \"127.0.0.1:8200\", \"tls_disable\": true}}\n"
	    "  ],\n"
	    "  \"n\": -1.25e-1, \"z\": null,\n"
	    "  \"s\": \"\\u00e9\\n\"\n"
	    "}\n";
	struct cs_hcl_node *r = parse_ok(doc);
	ck_assert_int_eq(r->line, 2);
	ck_assert_int_eq(count(r), 5);
	const struct cs_hcl_node *raft = get(get(r, "storage"), "raft");
	ck_assert_str_eq(get(raft, "path")->str, "/d");
	ck_assert_int_eq(get(raft, "path")->line, 3);
	const struct cs_hcl_node *l = get(r, "listener");
	ck_assert_int_eq(l->type, CS_HCL_LIST);
	ck_assert_int_eq(l->child->line, 5);
	ck_assert(get(get(l->child, "tcp"), "tls_disable")->b);
	ck_assert(get(r, "n")->num == -0.125);
	ck_assert_int_eq(get(r, "n")->line, 7);
	ck_assert_int_eq(get(r, "z")->type, CS_HCL_NULL);
	ck_assert_str_eq(get(r, "s")->str, "\xc3\xa9\n");
	cs_hcl_free(r);

	r = parse_ok("{}");
	ck_assert_int_eq(count(r), 0);
	cs_hcl_free(r);
	r = parse_ok("");
	ck_assert_int_eq(count(r), 0);
	cs_hcl_free(r);
	r = parse_ok("\xef\xbb\xbf{\"a\": 1}");
	ck_assert(get(r, "a")->num == 1);
	cs_hcl_free(r);

	parse_fails("{\"a\": 1}\n{\"b\": 2}\n", "line 2: unexpected '{' after the closing '}'");
	parse_fails("{\"a\": 1,\n \"b\": [1, 2}\n", "line 2: expected ',' or ']' in list");
	parse_fails("{\n\"a\": 1\n", "line 1: '{' is never closed");
}
END_TEST

START_TEST(test_errors_report_lines)
{
	parse_fails("a = 1\nb = \"open\nc = 2\n", "line 2: unterminated string");
	parse_fails("a = 1\nb = \"open", "line 2: unterminated string");
	parse_fails("x = 1\nblock \"l\" {\n  a = 1\n  inner {\n    b = 2\n  }\n",
		    "line 2: '{' is never closed");
	parse_fails("a = 1\n}\n", "line 2: unexpected '}'");
	parse_fails("a = 1\nb = bare\n", "line 2: invalid value bare (strings must be quoted)");
	parse_fails("a = 1\n\nb\n", "line 3: expected '=' or '{' after key \"b\", found end");
	parse_fails("a = 1\nb \"l\"\n", "line 2: block \"b\" has no body");
	parse_fails("a = 1\nb = 2 = 3\n", "line 2: expected a key, found '='");
	parse_fails("a = 1\nb \"l\" = 2\n", "line 2: expected a block label or '{', found '='");
	parse_fails("a = 1\nb = 12abc\n", "line 2: invalid number");
	parse_fails("a = 1\nb = -\n", "line 2: invalid number");
	parse_fails("a = 1.\n", "line 1: invalid number");
	parse_fails("a = \n", "line 2: expected a value, found end of input");
	parse_fails("a = 1\n@\n", "line 2: expected a key, found '@'");
	parse_fails("a = 1\n\"k\" ! 1\n", "line 2: expected '=' or '{' after key \"k\"");
	parse_fails("a = \"x\" \x01", "line 1: expected a key, found byte 0x01");
}
END_TEST

START_TEST(test_depth_limit)
{
	size_t n = 5000;
	char *s = malloc(n + 8);
	ck_assert_ptr_nonnull(s);
	memcpy(s, "a = ", 4);
	memset(s + 4, '[', n);
	s[n + 4] = '\0';
	parse_fails(s, "line 1: nesting deeper than");
	for (size_t i = 0; i + 3 <= n; i += 3)
		memcpy(s + i, "a={", 3);
	s[n - n % 3] = '\0';
	parse_fails(s, "line 1: nesting deeper than");
	for (size_t i = 0; i + 4 <= n; i += 4)
		memcpy(s + i, "a \"\"", 4);
	s[n - n % 4] = '\0';
	parse_fails(s, "line 1: nesting deeper than");
	free(s);

	/* 50 levels are fine. */
	char ok[256] = "a = ";
	for (int i = 0; i < 50; i++)
		strcat(ok, "[");
	for (int i = 0; i < 50; i++)
		strcat(ok, "]");
	struct cs_hcl_node *r = parse_ok(ok);
	cs_hcl_free(r);
}
END_TEST

/* Every prefix of a document parses or fails cleanly (ASan checks the bounds). */
START_TEST(test_truncated_inputs)
{
	const char *doc = "# c\nstorage \"raft\" {\n  path = \"/x\\u00e9\" // c\n}\n"
			  "h = <<-EOT\n  a\n  EOT\nl = [1.5e3, -2, true, null, {k = \"v\"},]\n"
			  "/* x */ j = {\"a\": [\"b\"]}\n";
	size_t len = strlen(doc);
	int ok = 0;
	for (size_t i = 0; i <= len; i++) {
		struct cs_hcl_node *r = parse_n(doc, i);
		if (r) {
			ok++;
			cJSON *j = cs_hcl_to_json(r);
			ck_assert_ptr_nonnull(j);
			cJSON_Delete(j);
			cs_hcl_free(r);
		} else {
			ck_assert_msg(strncmp(err, "line ", 5) == 0, "bad message %s", err);
		}
	}
	ck_assert_int_gt(ok, 3);
	struct cs_hcl_node *r = parse_n(doc, len);
	ck_assert_ptr_nonnull(r);
	cs_hcl_free(r);
	ck_assert_ptr_null(cs_hcl_parse("a = ", 4, NULL, 0)); /* no errmsg buffer */
}
END_TEST

static char *json_of(const char *hcl)
{
	struct cs_hcl_node *r = parse_ok(hcl);
	cJSON *j = cs_hcl_to_json(r);
	ck_assert_ptr_nonnull(j);
	char *s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	cs_hcl_free(r);
	return s;
}

static void json_is(const char *hcl, const char *want)
{
	char *got = json_of(hcl);
	ck_assert_str_eq(got, want);
	free(got);
}

START_TEST(test_to_json_and_merge)
{
	json_is("a = \"s\"\nb = 1.5\nc = true\nd = null\ne = [1, \"x\", {f = 2}]\n",
		"{\"a\":\"s\",\"b\":1.5,\"c\":true,\"d\":null,\"e\":[1,\"x\",{\"f\":2}]}");
	/* Policy shape: blocks with different labels merge into one object. */
	json_is("path \"secret/*\" { capabilities = [\"read\"] }\n"
		"path \"sys/*\" { capabilities = [\"deny\"] }\n",
		"{\"path\":{\"secret/*\":{\"capabilities\":[\"read\"]},"
		"\"sys/*\":{\"capabilities\":[\"deny\"]}}}");
	/* Same label twice: members merge recursively, later scalars win. */
	json_is("p \"a\" { x = 1, y = { k = 1 } }\np \"a\" { x = 2, y = { j = 2 } }\n",
		"{\"p\":{\"a\":{\"x\":2,\"y\":{\"k\":1,\"j\":2}}}}");
	/* Non-object pairs: the later value wins, whatever its type. */
	json_is("a = 1\na = \"two\"\n", "{\"a\":\"two\"}");
	json_is("a { x = 1 }\na = [1]\n", "{\"a\":[1]}");
	json_is("a = [1]\na { x = 1 }\n", "{\"a\":{\"x\":1}}");
	/* Lists are never merged, and objects inside a list merge their own keys. */
	json_is("l = [{a = 1, a = 2}, {a = 3}]\n", "{\"l\":[{\"a\":2},{\"a\":3}]}");
	/* JSON in, same JSON out. */
	json_is("{\"x\": {\"y\": [1, 2.5, \"\\u00e9\"]}, \"e\": {}}",
		"{\"x\":{\"y\":[1,2.5,\"\xc3\xa9\"]},\"e\":{}}");

	ck_assert_str_eq(cs_hcl_type_name(CS_HCL_OBJECT), "object");
	ck_assert_str_eq(cs_hcl_type_name(CS_HCL_LIST), "list");
	ck_assert_str_eq(cs_hcl_type_name(CS_HCL_STRING), "string");
	ck_assert_str_eq(cs_hcl_type_name(CS_HCL_NUMBER), "number");
	ck_assert_str_eq(cs_hcl_type_name(CS_HCL_BOOL), "bool");
	ck_assert_str_eq(cs_hcl_type_name(CS_HCL_NULL), "null");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hcl");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_scalars_and_separators);
	tcase_add_test(tc, test_comments);
	tcase_add_test(tc, test_heredoc);
	tcase_add_test(tc, test_escapes);
	tcase_add_test(tc, test_blocks_and_labels);
	tcase_add_test(tc, test_repeated_keys_kept_in_order);
	tcase_add_test(tc, test_lists);
	tcase_add_test(tc, test_json_document);
	tcase_add_test(tc, test_errors_report_lines);
	tcase_add_test(tc, test_depth_limit);
	tcase_add_test(tc, test_truncated_inputs);
	tcase_add_test(tc, test_to_json_and_merge);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
