/*
 * Unit tests for the database engine's pure parts: SQL quoting and statement rendering
 * (engines/pg_sql.c), username templates (engines/database_template.c), and the pool's
 * failure paths without a server (engines/pg_pool.c). The engine against a real
 * PostgreSQL is tests/e2e/test_database.py.
 */
#include <arpa/inet.h>
#include <check.h>
#include <ctype.h>
#include <stdio.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engines/database_internal.h"
#include "engines/database_template.h"
#include "engines/pg_pool.h"
#include "engines/pg_sql.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "fixtures.h"

static char *render(const char *tmpl, const char *name, const char *pass, int want)
{
	struct cs_pg_var vars[] = {
	    {"name", name, CS_PG_BARE_IDENT},
	    {"password", pass, CS_PG_BARE_LITERAL},
	    {"expiration", "2026-12-08 00:00:00+0000", CS_PG_BARE_LITERAL},
	};
	char *out = NULL, err[256] = "";
	int rc = cs_pg_render(tmpl, vars, 3, &out, err, sizeof err);
	ck_assert_msg(rc == want, "%s: %s (%s)", tmpl, cs_errname(rc), err);
	return out;
}

static void expect(const char *tmpl, const char *name, const char *pass, const char *want)
{
	char *out = render(tmpl, name, pass, 0);
	ck_assert_str_eq(out, want);
	free(out);
}

START_TEST(test_quote)
{
	struct cs_buf b = CS_BUF_INIT;
	ck_assert_int_eq(cs_pg_quote_ident(&b, "a\"b"), 0);
	ck_assert_str_eq(b.data, "\"a\"\"b\"");
	cs_buf_reset(&b);
	ck_assert_int_eq(cs_pg_quote_literal(&b, "it's"), 0);
	ck_assert_str_eq(b.data, "'it''s'");
	cs_buf_reset(&b);
	/* A backslash makes an E'' string (as PQescapeLiteral), so that it means the same
	 * with standard_conforming_strings off. */
	ck_assert_int_eq(cs_pg_quote_literal(&b, "a\\'b"), 0);
	ck_assert_str_eq(b.data, " E'a\\\\''b'");
	cs_buf_reset(&b);
	ck_assert_int_eq(cs_pg_quote_ident(&b, ""), CS_EINVAL);
	ck_assert_int_eq(cs_pg_quote_ident(&b, "\xc3\x28"), CS_EINVAL);       /* bad UTF-8 */
	ck_assert_int_eq(cs_pg_quote_literal(&b, "\xed\xa0\x80"), CS_EINVAL); /* surrogate */
	ck_assert_int_eq(cs_pg_quote_literal(&b, "\xc0\xaf"), CS_EINVAL);     /* overlong '/' */
	ck_assert_uint_eq(b.len, 0);
	ck_assert(cs_pg_valid_text("h\xc3\xa9llo \xf0\x9f\x98\x80"));
	cs_buf_free(&b);
}
END_TEST

START_TEST(test_render_contexts)
{
	/* Inside "…", '…', E'…', bare: each escaped for where it stands. */
	expect("CREATE ROLE \"{{name}}\" PASSWORD '{{password}}'", "a\"b", "p'w",
	       "CREATE ROLE \"a\"\"b\" PASSWORD 'p''w'");
	expect("COMMENT ON ROLE {{name}} IS {{password}}", "x\"; DROP ROLE y; --", "z",
	       "COMMENT ON ROLE \"x\"\"; DROP ROLE y; --\" IS 'z'");
	expect("SELECT E'{{password}}'", "n", "a\\'; DROP x; --", "SELECT E'a\\\\''; DROP x; --'");
	expect("SELECT '{{password}}'", "n", "a\\'b", "SELECT 'a\\''b'");
	/* Doubled quotes stay inside the literal; the placeholder after them is too. */
	expect("SELECT 'it''s {{password}}'", "n", "'", "SELECT 'it''s '''");
	/* an identifier ending in e/E before a quote is not an E-string */
	expect("SELECT name'{{password}}'", "n", "\\", "SELECT name'\\'");
	/* comments are left alone; unknown placeholders are copied */
	expect("-- {{name}}\nSELECT {{other}} /* {{password}} /* nested */ {{name}} */ 1", "n", "p",
	       "-- {{name}}\nSELECT {{other}} /* {{password}} /* nested */ {{name}} */ 1");
	/* expiration bare is a literal */
	expect("ALTER ROLE {{name}} VALID UNTIL {{expiration}}", "u", "p",
	       "ALTER ROLE \"u\" VALID UNTIL '2026-12-08 00:00:00+0000'");
	/* several statements stay one text */
	expect("A \"{{name}}\"; B '{{password}}';", "u", "p", "A \"u\"; B 'p';");
}
END_TEST

START_TEST(test_render_dollar_quotes)
{
	const char *t = "DO $body$ BEGIN EXECUTE 'GRANT r TO \"{{name}}\"'; END $body$";
	expect(t, "v-app_1", "p", "DO $body$ BEGIN EXECUTE 'GRANT r TO \"v-app_1\"'; END $body$");
	/* inside a dollar body only inert characters: anything else is refused */
	free(render(t, "a'b", "p", CS_EINVAL));
	free(render("DO $$ SELECT '{{password}}' $$", "n", "$$; DROP", CS_EINVAL));
	/* $1 is a parameter, not a dollar quote */
	expect("SELECT $1, '{{password}}'", "n", "x'", "SELECT $1, 'x'''");
	/* after the closing tag the context is plain again */
	expect("SELECT $a$ x $a$, {{name}}", "q\"", "p", "SELECT $a$ x $a$, \"q\"\"\"");
}
END_TEST

START_TEST(test_render_refuses)
{
	free(render("CREATE ROLE {{name}}", "", "p", CS_EINVAL));       /* empty identifier */
	free(render("SELECT '{{password}}'", "n", "\xff", CS_EINVAL));  /* not UTF-8 */
	free(render("SELECT '\xff{{password}}'", "n", "p", CS_EINVAL)); /* template not UTF-8 */
	ck_assert(cs_pg_blank(" ;\n; "));
	ck_assert(!cs_pg_blank("SELECT 1"));
}
END_TEST

START_TEST(test_scram_verifier)
{
	char *v = NULL, *w = NULL;
	ck_assert_int_eq(cs_pg_scram_verifier("secret", &v), 0);
	ck_assert_int_eq(cs_pg_scram_verifier("secret", &w), 0);
	ck_assert(strncmp(v, "SCRAM-SHA-256$4096:", 19) == 0);
	ck_assert_ptr_null(strstr(v, "secret"));
	ck_assert_str_ne(v, w); /* random salt */
	/* salt (16 bytes) $ StoredKey : ServerKey (32 bytes each), base64 */
	char *dollar = strchr(v + 19, '$'), *colon = strchr(dollar, ':');
	ck_assert_int_eq(dollar - (v + 19), 24);
	ck_assert_int_eq(colon - dollar - 1, 44);
	ck_assert_int_eq(strlen(colon + 1), 44);
	free(v);
	free(w);
}
END_TEST

/* ---------------------------------------------------------------- templates */

static char *tmpl(const char *t, int want)
{
	struct cs_db_template_data d = {
	    .display_name = "token-alice",
	    .role_name = "readonly-role",
	    .now_ns = INT64_C(1765152000123456789)}; /* 2025-12-08T00:00:00.123Z */
	char *out = NULL, err[256] = "";
	int rc = cs_db_template_render(t, &d, &out, err, sizeof err);
	ck_assert_msg(rc == want, "%s: %s (%s)", t, cs_errname(rc), err);
	if (rc)
		ck_assert_msg(err[0], "no message for %s", t);
	return out;
}

static void texpect(const char *t, const char *want)
{
	char *out = tmpl(t, 0);
	ck_assert_str_eq(out, want);
	free(out);
}

START_TEST(test_template_default)
{
	char *u = tmpl(CS_DB_DEFAULT_USERNAME_TEMPLATE, 0);
	/* v-<display 8>-<role 8>-<20 random>-<unix time>, cut at 63 */
	ck_assert(strncmp(u, "v-token-al-readonly-", 20) == 0);
	ck_assert_uint_eq(strlen(u), 20 + 20 + 1 + 10);
	ck_assert_str_eq(u + 40, "-1765152000");
	for (int i = 20; i < 40; i++)
		ck_assert(isalnum((unsigned char)u[i]));
	free(u);
}
END_TEST

START_TEST(test_template_functions)
{
	texpect("{{ .RoleName | uppercase }}", "READONLY-ROLE");
	texpect("{{ \"MiXeD\" | lowercase }}", "mixed");
	texpect("{{ .RoleName | replace \"-\" \"_\" }}", "readonly_role");
	texpect("{{ truncate 4 .DisplayName }}", "toke");
	texpect("{{ .DisplayName | truncate 100 }}", "token-alice");
	texpect("{{ sha256 \"abc\" }}",
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	texpect("{{ base64 \"hi!\" }}", "aGkh");
	texpect("{{ unix_time }}", "1765152000");
	texpect("{{ unix_time_millis }}", "1765152000123");
	texpect("{{ timestamp \"2006-01-02T15:04:05.000Z07:00\" }}", "2025-12-08T00:00:00.123Z");
	texpect("{{ timestamp \"Jan _2 2006 3PM Mon\" }}", "Dec  8 2025 12AM Mon");
	texpect("{{ truncate_sha256 12 \"abcdefghijklmnop\" }}",
		"abcdc1bd5d19"); /* sha256 of the cut tail */
	texpect("{{ printf \"%s-%d-%v-%%\" .RoleName 42 \"x\" }}", "readonly-role-42-x-%");
	texpect("{{ printf \"%q\" \"a\\\"b\" }}", "\"a\\\"b\"");
	texpect("a {{- \" b \" -}} c", "a b c");
	texpect("x{{/* a comment */}}y", "xy");
	texpect("{{ `raw\\n` }}", "raw\\n");
	texpect("{{ \"tab\\there\" }}", "tab\there");
	texpect("{{ (printf \"%s\" (.RoleName | truncate 3)) | uppercase }}", "REA");
	texpect("no actions at all", "no actions at all");
	texpect("", "");
	char *u = tmpl("{{ uuid }}", 0);
	ck_assert_uint_eq(strlen(u), 36);
	ck_assert_int_eq(u[14], '4');
	free(u);
	u = tmpl("{{random 0}}|{{random 7}}", 0);
	ck_assert_uint_eq(strlen(u), 8);
	free(u);
}
END_TEST

START_TEST(test_template_errors)
{
	static const char *const bad[] = {"{{ nope }}",             /* unknown function */
					  "{{ .Secret }}",          /* unknown field */
					  "{{ truncate 0 \"x\" }}", /* max length must be > 0 */
					  "{{ truncate_sha256 8 \"x\" }}",
					  "{{ truncate \"x\" 3 }}", /* wrong types */
					  "{{ random \"x\" }}",
					  "{{ random 100000 }}", /* bounded */
					  "{{ random -1 }}",
					  "{{ uppercase }}", /* arity */
					  "{{ unix_time 1 }}",
					  "{{ replace \"a\" \"b\" }}",
					  "{{ \"a\" \"b\" }}",      /* argument to a non-function */
					  "{{ (uppercase \"a\" }}", /* unclosed paren */
					  "{{ uppercase \"a\") }}",
					  "{{ \"unterminated }}",
					  "{{ \"bad\\q\" }}",
					  "{{ uppercase \"a\"", /* unclosed action */
					  "{{ }}",              /* empty */
					  "{{ | uppercase }}",
					  "{{ 12abc }}",
					  "{{/* unclosed comment }}",
					  "{{ printf }}",
					  "{{ 1 2 3 4 5 6 7 8 9 10 }}",
					  NULL};
	for (int i = 0; bad[i]; i++)
		free(tmpl(bad[i], CS_EINVAL));
	/* nesting and output are bounded */
	char deep[512] = "{{ ";
	for (int i = 0; i < 40; i++)
		strcat(deep, "(");
	strcat(deep, "\"x\"");
	for (int i = 0; i < 40; i++)
		strcat(deep, ")");
	strcat(deep, " }}");
	free(tmpl(deep, CS_EINVAL));
	free(tmpl("{{ random 3000 }}{{ random 3000 }}", CS_EINVAL));
	free(tmpl("{{ replace \"\" \"aaaaaaaaaaaaaaaaaaaa\" (random 1000) }}", CS_EINVAL));
}
END_TEST

/* ---------------------------------------------------------------- cron */

static int64_t next_of(const char *spec, int64_t after)
{
	struct db_cron c;
	ck_assert_msg(db_cron_parse(spec, &c) == 0, "%s", spec);
	return db_cron_next(&c, after);
}

START_TEST(test_cron)
{
	/* 2025-12-08 00:00:00 UTC, a Monday */
	const int64_t t0 = INT64_C(1765152000);
	ck_assert_int_eq(next_of("* * * * *", t0), t0 + 60); /* strictly after */
	ck_assert_int_eq(next_of("* * * * *", t0 + 59), t0 + 60);
	ck_assert_int_eq(next_of("30 2 * * *", t0), t0 + 2 * 3600 + 30 * 60);
	ck_assert_int_eq(next_of("*/15 * * * *", t0 + 60), t0 + 15 * 60);
	ck_assert_int_eq(next_of("0 0 * * SUN", t0), t0 + 6 * 86400);
	ck_assert_int_eq(next_of("0 0 * * 7", t0), t0 + 6 * 86400);
	ck_assert_int_eq(next_of("0 12 25 DEC *", t0), t0 + 17 * 86400 + 12 * 3600);
	ck_assert_int_eq(next_of("0 0 1 1 *", t0), INT64_C(1767225600)); /* 2026-01-01 */
	/* day-of-month and day-of-week both restricted: either matches (the 10th, or Tue) */
	ck_assert_int_eq(next_of("0 0 10 * TUE", t0), t0 + 86400);
	ck_assert_int_eq(next_of("0 9-17/4 * * MON-FRI", t0), t0 + 9 * 3600);
	ck_assert_int_eq(next_of("5,10 0 * * *", t0 + 6 * 60), t0 + 10 * 60);
	ck_assert_int_eq(next_of("0 0 30 2 *", t0), -1); /* never */
	static const char *const bad[] = {
	    "",          "* * * *",      "* * * * * *", "60 * * * *",  "* 24 * * *",
	    "* * 0 * *", "* * * 13 *",   "* * * * 8",   "5-1 * * * *", "*/0 * * * *",
	    "x * * * *", "1,,2 * * * *", NULL};
	struct db_cron c;
	for (int i = 0; bad[i]; i++)
		ck_assert_msg(db_cron_parse(bad[i], &c) == CS_EINVAL, "'%s'", bad[i]);
}
END_TEST

/* ---------------------------------------------------------------- pool */

struct op_box {
	struct cs_pg_op op;
	bool done;
	int calls;
};

static void box_done(struct cs_pg_op *op)
{
	struct op_box *b = op->ctx;
	b->done = true;
	b->calls++;
}

/* A loopback listener that accepts and closes at once: the server "goes away" during the
 * start-up handshake. */
static int closing_listener(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	socklen_t len = sizeof a;
	getsockname(fd, (struct sockaddr *)&a, &len);
	*port = ntohs(a.sin_port);
	return fd;
}

static void on_accept(uv_poll_t *h, int status, int events)
{
	int c = accept(*(int *)h->data, NULL, NULL);
	if (c >= 0)
		close(c);
}

START_TEST(test_pool_connect_failure_answers_every_op_later)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	int port, lfd = closing_listener(&port);
	uv_poll_t lp;
	uv_poll_init(&loop, &lp, lfd);
	lp.data = &lfd;
	uv_poll_start(&lp, UV_READABLE, on_accept);

	char conninfo[128];
	snprintf(conninfo, sizeof conninfo,
		 "postgresql://u:secretpw@127.0.0.1:%d/db?sslmode=disable", port);
	struct cs_pg_limits lim = {.max_open = 2, .max_idle = 2};
	struct cs_pg_pool *pool = cs_pg_pool_new(&loop, conninfo, &lim);
	struct op_box b[3];
	memset(b, 0, sizeof b);
	for (int i = 0; i < 3; i++) {
		b[i].op.ctx = &b[i];
		b[i].op.done = box_done;
		cs_pg_op_add(&b[i].op, "SELECT 1", 0, NULL);
		cs_pg_submit(pool, &b[i].op);
		ck_assert(!b[i].done); /* never from inside submit */
	}
	for (int i = 0; i < 3; i++) {
		ck_assert(cs_fx_run_until(&loop, &b[i].done, 10000));
		ck_assert_int_eq(b[i].op.status, CS_EINVAL);
		ck_assert_msg(strstr(b[i].op.errmsg, "connect") != NULL, "%s", b[i].op.errmsg);
		ck_assert_ptr_null(strstr(b[i].op.errmsg, "secretpw"));
	}
	ck_assert_int_eq(cs_pg_pool_open_count(pool), 0);
	cs_pg_pool_close(pool);
	/* Closing a pool with a queued op: answered, later, with CS_EBUSY. */
	pool = cs_pg_pool_new(&loop, conninfo, &lim);
	struct op_box c = {0};
	c.op.ctx = &c;
	c.op.done = box_done;
	cs_pg_op_add(&c.op, "SELECT 1", 0, NULL);
	cs_pg_submit(pool, &c.op);
	cs_pg_pool_close(pool);
	ck_assert(!c.done);
	ck_assert(cs_fx_run_until(&loop, &c.done, 10000));
	ck_assert_int_eq(c.op.status, CS_EBUSY);
	for (int i = 0; i < 3; i++)
		cs_pg_op_clear(&b[i].op);
	cs_pg_op_clear(&c.op);
	uv_poll_stop(&lp);
	uv_close((uv_handle_t *)&lp, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	/* every handle of both pools is closed and freed */
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	close(lfd);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(b[i].calls, 1);
	ck_assert_int_eq(c.calls, 1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("database");
	TCase *tc = tcase_create("database");
	tcase_add_test(tc, test_quote);
	tcase_add_test(tc, test_render_contexts);
	tcase_add_test(tc, test_render_dollar_quotes);
	tcase_add_test(tc, test_render_refuses);
	tcase_add_test(tc, test_scram_verifier);
	tcase_add_test(tc, test_template_default);
	tcase_add_test(tc, test_template_functions);
	tcase_add_test(tc, test_template_errors);
	tcase_add_test(tc, test_cron);
	tcase_add_test(tc, test_pool_connect_failure_answers_every_op_later);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
