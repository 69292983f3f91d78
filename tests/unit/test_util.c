/* Unit tests for lib/util.c, lib/buf.c and lib/secmem.c. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/secmem.h"
#include "lib/util.h"
#include "tests/unit/fixtures.h"

static const char base62[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/* ---- randomness and identifiers ---- */

/* cs_random hands small draws out of a per-thread block: a forked child must not repeat
 * the bytes its parent hands out next, and successive draws never repeat. */
START_TEST(test_random_block_fork_safe)
{
	unsigned char a[32], b[32], big[200];
	cs_random(a, 1); /* the block is filled now */
	int fds[2];
	ck_assert_int_eq(pipe(fds), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		cs_random(a, sizeof a);
		_exit(write(fds[1], a, sizeof a) == (ssize_t)sizeof a ? 0 : 1);
	}
	cs_random(b, sizeof b);
	ck_assert_int_eq(read(fds[0], a, sizeof a), (ssize_t)sizeof a);
	int st = 0;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ck_assert(memcmp(a, b, sizeof a) != 0);
	close(fds[0]);
	close(fds[1]);
	/* draws across a refill and large draws differ from each other */
	unsigned char prev[16], cur[16];
	cs_random(prev, sizeof prev);
	for (int i = 0; i < 100; i++) {
		cs_random(cur, sizeof cur);
		ck_assert(memcmp(prev, cur, sizeof cur) != 0);
		memcpy(prev, cur, sizeof cur);
	}
	cs_random(big, sizeof big);
	ck_assert(memcmp(big, big + 100, 100) != 0);
}
END_TEST

START_TEST(test_random_base62)
{
	const size_t lens[] = {0, 1, 24, 100, 257};
	for (size_t i = 0; i < CS_ARRAY_LEN(lens); i++) {
		char out[300];
		memset(out, '#', sizeof out);
		cs_random_base62(out, lens[i]);
		ck_assert_uint_eq(strlen(out), lens[i]);
		ck_assert_uint_eq(strspn(out, base62), lens[i]);
	}
	char a[25], b[25];
	cs_random_base62(a, 24);
	cs_random_base62(b, 24);
	ck_assert_str_ne(a, b);
	/* Over many draws every character of the alphabet shows up. */
	char big[4001];
	cs_random_base62(big, 4000);
	for (size_t i = 0; i < 62; i++)
		ck_assert_ptr_nonnull(strchr(big, base62[i]));
}
END_TEST

START_TEST(test_uuid)
{
	char u[37], v[37];
	for (int round = 0; round < 100; round++) {
		cs_uuid(u);
		ck_assert_uint_eq(strlen(u), 36);
		for (int i = 0; i < 36; i++) {
			if (i == 8 || i == 13 || i == 18 || i == 23)
				ck_assert_int_eq(u[i], '-');
			else
				ck_assert_ptr_nonnull(strchr("0123456789abcdef", u[i]));
		}
		ck_assert_int_eq(u[14], '4');
		ck_assert_ptr_nonnull(strchr("89ab", u[19]));
	}
	cs_uuid(v);
	ck_assert_str_ne(u, v);
}
END_TEST

START_TEST(test_random_bytes)
{
	uint8_t a[32] = {0}, b[32] = {0};
	cs_random(a, sizeof a);
	cs_random(b, sizeof b);
	ck_assert(memcmp(a, b, sizeof a) != 0);
	cs_random(a, 0);
}
END_TEST

/* ---- comparison and zeroisation ---- */

START_TEST(test_ct_equal_and_zero)
{
	ck_assert(cs_ct_equal("abc", 3, "abc", 3));
	ck_assert(!cs_ct_equal("abc", 3, "abd", 3));
	ck_assert(!cs_ct_equal("abc", 3, "abcd", 4));
	ck_assert(!cs_ct_equal("abc", 3, "ab", 2));
	ck_assert(cs_ct_equal("", 0, "x", 0));
	ck_assert(!cs_ct_equal("\x00\x01", 2, "\x00\x02", 2));

	uint8_t buf[40];
	memset(buf, 0xff, sizeof buf);
	cs_zero(buf + 4, 32);
	ck_assert_uint_eq(buf[3], 0xff);
	for (int i = 4; i < 36; i++)
		ck_assert_uint_eq(buf[i], 0);
	ck_assert_uint_eq(buf[36], 0xff);
	cs_zero(NULL, 10);
	cs_zero(buf, 0);
}
END_TEST

/* ---- hex and base64 ---- */

START_TEST(test_hex)
{
	const uint8_t in[] = {0x00, 0x01, 0xab, 0xff, 0x7f};
	char out[11];
	cs_hex_encode(in, sizeof in, out);
	ck_assert_str_eq(out, "0001abff7f");
	uint8_t back[5];
	ck_assert_int_eq(cs_hex_decode(out, 10, back), 5);
	ck_assert_mem_eq(back, in, 5);
	ck_assert_int_eq(cs_hex_decode("0001ABFF7F", 10, back), 5);
	ck_assert_mem_eq(back, in, 5);
	ck_assert_int_eq(cs_hex_decode("", 0, back), 0);
	cs_hex_encode(in, 0, out);
	ck_assert_str_eq(out, "");

	ck_assert_int_eq(cs_hex_decode("abc", 3, back), -1);
	ck_assert_int_eq(cs_hex_decode("zz", 2, back), -1);
	ck_assert_int_eq(cs_hex_decode("0g", 2, back), -1);
	ck_assert_int_eq(cs_hex_decode("0 ", 2, back), -1);
	ck_assert_int_eq(cs_hex_decode("-1", 2, back), -1);

	for (size_t n = 0; n < 64; n++) {
		uint8_t r[64], d[64];
		char h[129];
		cs_random(r, n);
		cs_hex_encode(r, n, h);
		ck_assert_uint_eq(strlen(h), 2 * n);
		ck_assert_int_eq(cs_hex_decode(h, 2 * n, d), (long)n);
		ck_assert_mem_eq(d, r, n);
	}
}
END_TEST

START_TEST(test_b64_vectors)
{
	/* RFC 4648 §10. */
	const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	const char *enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	for (size_t i = 0; i < CS_ARRAY_LEN(plain); i++) {
		char *e = cs_b64_encode((const uint8_t *)plain[i], strlen(plain[i]));
		ck_assert_str_eq(e, enc[i]);
		free(e);
		size_t n = 99;
		uint8_t *d = cs_b64_decode(enc[i], strlen(enc[i]), &n);
		ck_assert_ptr_nonnull(d);
		ck_assert_uint_eq(n, strlen(plain[i]));
		ck_assert_mem_eq(d, plain[i], n);
		free(d);
		/* Padding is optional on input. */
		size_t unpadded = strcspn(enc[i], "=");
		d = cs_b64_decode(enc[i], unpadded, &n);
		ck_assert_ptr_nonnull(d);
		ck_assert_uint_eq(n, strlen(plain[i]));
		ck_assert_mem_eq(d, plain[i], n);
		free(d);
	}
	/* The full alphabet, including + and /. */
	const uint8_t hi[] = {0xfb, 0xff, 0xbf};
	char *e = cs_b64_encode(hi, 3);
	ck_assert_str_eq(e, "+/+/");
	free(e);
}
END_TEST

START_TEST(test_b64_round_trip)
{
	for (size_t n = 0; n < 100; n++) {
		uint8_t r[100];
		cs_random(r, n);
		char *e = cs_b64_encode(r, n);
		ck_assert_uint_eq(strlen(e), 4 * ((n + 2) / 3));
		size_t m = 0;
		uint8_t *d = cs_b64_decode(e, strlen(e), &m);
		ck_assert_ptr_nonnull(d);
		ck_assert_uint_eq(m, n);
		ck_assert_mem_eq(d, r, n);
		free(d);
		free(e);
	}
}
END_TEST

START_TEST(test_b64_bad_input)
{
	const char *bad[] = {
	    "==",        "Zm=v",       "AA=A", "Zg=",          "A",    "Zm9vY", "Zm9v!",
	    "Zm9v YmFy", "Zm9v\nYmFy", "A===", "Zm9vYg==Zm9v", "=Zm9", "Zm-_",  "Zm9v\0"};
	for (size_t i = 0; i < CS_ARRAY_LEN(bad); i++) {
		size_t len = strlen(bad[i]);
		if (i == CS_ARRAY_LEN(bad) - 1)
			len = 5; /* embedded NUL */
		size_t n = 0;
		uint8_t *d = cs_b64_decode(bad[i], len, &n);
		ck_assert_msg(d == NULL, "accepted bad base64 #%zu", i);
	}
}
END_TEST

/* ---- durations, times, bools ---- */

START_TEST(test_parse_duration)
{
	const struct {
		const char *s;
		int64_t secs;
	} ok[] = {
	    {"0", 0},        {"10", 10},         {"3600", 3600},        {"10s", 10},
	    {"90s", 90},     {"1m", 60},         {"1h30m", 5400},       {"768h", 2764800},
	    {"2d", 172800},  {"1h30m15s", 5415}, {"1.5h", 5400},        {"1500ms", 1},
	    {"500ms", 0},    {"0s", 0},          {"1000000us", 1},      {"2000000000ns", 2},
	    {"1d1h", 90000}, {"30m30m", 3600},   {"87600h", 315360000},
	};
	for (size_t i = 0; i < CS_ARRAY_LEN(ok); i++) {
		int64_t v = -1;
		ck_assert_msg(cs_parse_duration(ok[i].s, &v) == 0, "rejected %s", ok[i].s);
		ck_assert_msg(v == ok[i].secs, "%s -> %lld", ok[i].s, (long long)v);
	}
	const char *bad[] = {"",      "abc",  "h",   "1x",  "1h30", "-1",   "-1h",
			     "1h-5m", "10 s", "s10", "1hh", "1y",   "infh", "1e300h",
			     "nans",  "1e3s", "+5m", " 5m", "0x10s"};
	for (size_t i = 0; i < CS_ARRAY_LEN(bad); i++) {
		int64_t v = 77;
		ck_assert_msg(cs_parse_duration(bad[i], &v) == CS_EINVAL, "accepted %s", bad[i]);
		ck_assert_int_eq(v, 77);
	}
	int64_t v;
	ck_assert_int_eq(cs_parse_duration(NULL, &v), CS_EINVAL);
}
END_TEST

START_TEST(test_format_duration)
{
	const struct {
		int64_t secs;
		const char *s;
	} cases[] = {
	    {0, "0s"},
	    {-5, "0s"},
	    {1, "1s"},
	    {59, "59s"},
	    {60, "1m0s"},
	    {90, "1m30s"},
	    {3600, "1h0m0s"},
	    {5415, "1h30m15s"},
	    {2764800, "768h0m0s"},
	    {86399, "23h59m59s"},
	};
	for (size_t i = 0; i < CS_ARRAY_LEN(cases); i++) {
		char out[32];
		cs_format_duration(cases[i].secs, out, sizeof out);
		ck_assert_str_eq(out, cases[i].s);
		/* And it parses back. */
		int64_t v = -1;
		ck_assert_int_eq(cs_parse_duration(out, &v), 0);
		ck_assert_int_eq(v, cases[i].secs < 0 ? 0 : cases[i].secs);
	}
}
END_TEST

START_TEST(test_time)
{
	char out[64];
	cs_format_time(1700000000123456789LL, out, sizeof out);
	ck_assert_str_eq(out, "2023-11-14T22:13:20.123456789Z");
	cs_format_time(0, out, sizeof out);
	ck_assert_str_eq(out, "1970-01-01T00:00:00.000000000Z");
	cs_format_time(951782400000000001LL, out, sizeof out); /* leap day 2000 */
	ck_assert_str_eq(out, "2000-02-29T00:00:00.000000001Z");
	cs_format_time(-1, out, sizeof out); /* before the epoch: fraction stays positive */
	ck_assert_str_eq(out, "1969-12-31T23:59:59.999999999Z");

	int64_t now = cs_now_ns();
	ck_assert(now > 1700000000LL * 1000000000LL);
	uint64_t m1 = cs_mono_ms();
	uint64_t m2 = cs_mono_ms();
	ck_assert_uint_ge(m2, m1);
}
END_TEST

START_TEST(test_parse_bool)
{
	const char *t[] = {"1", "t", "T", "TRUE", "true", "True"};
	const char *f[] = {"0", "f", "F", "FALSE", "false", "False"};
	for (size_t i = 0; i < CS_ARRAY_LEN(t); i++) {
		bool v = false;
		ck_assert_int_eq(cs_parse_bool(t[i], &v), 0);
		ck_assert(v);
		v = true;
		ck_assert_int_eq(cs_parse_bool(f[i], &v), 0);
		ck_assert(!v);
	}
	const char *bad[] = {"", "yes", "no", "tRUE", "2", " true", "true ", "on"};
	for (size_t i = 0; i < CS_ARRAY_LEN(bad); i++) {
		bool v = true;
		ck_assert_int_eq(cs_parse_bool(bad[i], &v), CS_EINVAL);
		ck_assert(v);
	}
}
END_TEST

/* ---- files ---- */

static char tmpdir[64];

static void tmpdir_setup(void)
{
	cs_fx_tmpdir(tmpdir, sizeof tmpdir, "util");
}

static void tmpdir_teardown(void)
{
	cs_fx_rm_rf(tmpdir);
}

static void write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, n, f), n);
	ck_assert_int_eq(fclose(f), 0);
}

START_TEST(test_mkdir_p)
{
	char path[512];
	struct stat st;
	snprintf(path, sizeof path, "%s/a/b/c", tmpdir);
	ck_assert_int_eq(cs_mkdir_p(path, 0700), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 0777, 0700);
	/* Idempotent, trailing slash and doubled slashes accepted. */
	ck_assert_int_eq(cs_mkdir_p(path, 0700), 0);
	snprintf(path, sizeof path, "%s/a//b/d/", tmpdir);
	ck_assert_int_eq(cs_mkdir_p(path, 0755), 0);
	snprintf(path, sizeof path, "%s/a/b/d", tmpdir);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	/* A file in the way of an intermediate component. */
	snprintf(path, sizeof path, "%s/file", tmpdir);
	write_file(path, "x", 1);
	snprintf(path, sizeof path, "%s/file/sub", tmpdir);
	ck_assert_int_eq(cs_mkdir_p(path, 0700), ENOTDIR);
	snprintf(path, sizeof path, "%s/file", tmpdir); /* the path itself is a file */
	ck_assert_int_eq(cs_mkdir_p(path, 0700), ENOTDIR);
	/* Too long, or empty. */
	char longp[5000];
	memset(longp, 'a', sizeof longp - 1);
	longp[sizeof longp - 1] = '\0';
	ck_assert_int_ne(cs_mkdir_p(longp, 0700), 0);
	ck_assert_int_ne(cs_mkdir_p("", 0700), 0);
}
END_TEST

START_TEST(test_read_file)
{
	char path[512];
	char *data = NULL;
	size_t len = 99;
	/* Binary content with embedded NULs comes back whole and NUL-terminated. */
	snprintf(path, sizeof path, "%s/bin", tmpdir);
	const char content[] = "ab\0cd\nend";
	write_file(path, content, sizeof content - 1);
	ck_assert_int_eq(cs_read_file(path, &data, &len), 0);
	ck_assert_uint_eq(len, sizeof content - 1);
	ck_assert_mem_eq(data, content, len);
	ck_assert_int_eq(data[len], '\0');
	free(data);
	/* Empty file. */
	snprintf(path, sizeof path, "%s/empty", tmpdir);
	write_file(path, "", 0);
	ck_assert_int_eq(cs_read_file(path, &data, &len), 0);
	ck_assert_uint_eq(len, 0);
	ck_assert_str_eq(data, "");
	free(data);
	/* Larger than one read, and len may be NULL. */
	size_t big = 300000;
	char *blob = malloc(big);
	for (size_t i = 0; i < big; i++)
		blob[i] = (char)('a' + i % 26);
	snprintf(path, sizeof path, "%s/big", tmpdir);
	write_file(path, blob, big);
	ck_assert_int_eq(cs_read_file(path, &data, NULL), 0);
	ck_assert_uint_eq(strlen(data), big);
	ck_assert_mem_eq(data, blob, big);
	free(data);
	free(blob);
	/* A file whose size stat() does not know. */
	ck_assert_int_eq(cs_read_file("/proc/self/status", &data, &len), 0);
	ck_assert_uint_gt(len, 0);
	ck_assert_uint_eq(strlen(data), len);
	ck_assert_ptr_nonnull(strstr(data, "Name:"));
	free(data);
	/* Errors are errno values. */
	snprintf(path, sizeof path, "%s/missing", tmpdir);
	ck_assert_int_eq(cs_read_file(path, &data, &len), ENOENT);
	ck_assert_int_eq(cs_read_file(tmpdir, &data, &len), EISDIR);
}
END_TEST

/* ---- cs_buf ---- */

START_TEST(test_buf_append)
{
	struct cs_buf b = CS_BUF_INIT;
	ck_assert_ptr_null(b.data);
	cs_buf_append(&b, "", 0);
	ck_assert_ptr_nonnull(b.data);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_str_eq(b.data, "");
	cs_buf_puts(&b, "hello");
	cs_buf_putc(&b, ' ');
	cs_buf_append(&b, "world!!", 5);
	ck_assert_uint_eq(b.len, 11);
	ck_assert_str_eq(b.data, "hello world");
	ck_assert_uint_gt(b.cap, b.len);
	/* Growth keeps content and the NUL terminator. */
	for (int i = 0; i < 1000; i++)
		cs_buf_putc(&b, (char)('0' + i % 10));
	ck_assert_uint_eq(b.len, 1011);
	ck_assert_uint_eq(strlen(b.data), 1011);
	ck_assert_mem_eq(b.data, "hello world0123", 15);
	ck_assert_uint_gt(b.cap, b.len);
	/* Reserve makes room without changing content. */
	size_t len = b.len;
	cs_buf_reserve(&b, 10000);
	ck_assert_uint_ge(b.cap, len + 10000 + 1);
	ck_assert_uint_eq(b.len, len);
	char *before = b.data;
	cs_buf_append(&b, "x", 1);
	ck_assert_ptr_eq(b.data, before);
	cs_buf_free(&b);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.cap, 0);
	cs_buf_free(&b);
}
END_TEST

START_TEST(test_buf_printf)
{
	struct cs_buf b = CS_BUF_INIT;
	cs_buf_printf(&b, "%s", "");
	ck_assert_ptr_nonnull(b.data);
	ck_assert_str_eq(b.data, "");
	cs_buf_printf(&b, "%d-%s", 42, "x");
	cs_buf_printf(&b, "/%05u", 7u);
	ck_assert_str_eq(b.data, "42-x/00007");
	ck_assert_uint_eq(b.len, 10);
	/* Longer than the initial allocation. */
	char big[500];
	memset(big, 'q', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	cs_buf_printf(&b, "[%s]", big);
	ck_assert_uint_eq(b.len, 10 + 501);
	ck_assert_uint_eq(strlen(b.data), b.len);
	ck_assert_int_eq(b.data[b.len - 1], ']');
	cs_buf_free(&b);
}
END_TEST

START_TEST(test_buf_ints_consume_steal)
{
	struct cs_buf b = CS_BUF_INIT;
	cs_buf_put_u8(&b, 0xab);
	cs_buf_put_u32(&b, 0x01020304u);
	cs_buf_put_u64(&b, 0x1122334455667788ull);
	const uint8_t expect[] = {0xab, 4, 3, 2, 1, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11};
	ck_assert_uint_eq(b.len, sizeof expect);
	ck_assert_mem_eq(b.data, expect, sizeof expect);

	cs_buf_consume(&b, 1);
	ck_assert_uint_eq(b.len, 12);
	ck_assert_mem_eq(b.data, expect + 1, 12);
	ck_assert_int_eq(b.data[b.len], '\0');
	cs_buf_consume(&b, 100);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_int_eq(b.data[0], '\0');

	cs_buf_puts(&b, "abc");
	cs_buf_reset(&b);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_str_eq(b.data, "");
	ck_assert_uint_gt(b.cap, 0);

	cs_buf_puts(&b, "stolen");
	size_t n = 0;
	char *p = cs_buf_steal(&b, &n);
	ck_assert_str_eq(p, "stolen");
	ck_assert_uint_eq(n, 6);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	free(p);
	/* Stealing an empty buffer still returns an empty string. */
	p = cs_buf_steal(&b, &n);
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(p, "");
	ck_assert_uint_eq(n, 0);
	free(p);
	/* Consume on a never-used buffer is harmless. */
	struct cs_buf e = CS_BUF_INIT;
	cs_buf_consume(&e, 3);
	cs_buf_reset(&e);
	ck_assert_ptr_null(e.data);

	cs_buf_puts(&b, "secret");
	cs_buf_free_secure(&b);
	ck_assert_ptr_null(b.data);
	cs_buf_free_secure(&b);
}
END_TEST

START_TEST(test_reader)
{
	struct cs_buf b = CS_BUF_INIT;
	cs_buf_put_u8(&b, 7);
	cs_buf_put_u32(&b, 0xdeadbeefu);
	cs_buf_put_u64(&b, 0x0123456789abcdefull);
	cs_buf_append(&b, "tail", 4);
	struct cs_reader r = {(const uint8_t *)b.data, b.len, 0};
	ck_assert_uint_eq(cs_read_u8(&r), 7);
	ck_assert_uint_eq(cs_read_u32(&r), 0xdeadbeefu);
	ck_assert_uint_eq(cs_read_u64(&r), 0x0123456789abcdefull);
	const uint8_t *p = cs_read_bytes(&r, 0);
	ck_assert_ptr_eq(p, (const uint8_t *)b.data + 13);
	p = cs_read_bytes(&r, 4);
	ck_assert_ptr_eq(p, (const uint8_t *)b.data + 13); /* not a copy */
	ck_assert_mem_eq(p, "tail", 4);
	ck_assert_uint_eq(r.left, 0);
	ck_assert_int_eq(r.err, 0);
	/* Past the end: zero values, NULL bytes, sticky error. */
	ck_assert_uint_eq(cs_read_u8(&r), 0);
	ck_assert_int_ne(r.err, 0);

	struct cs_reader s = {(const uint8_t *)b.data, 3, 0};
	ck_assert_uint_eq(cs_read_u32(&s), 0);
	ck_assert_int_ne(s.err, 0);
	ck_assert_uint_eq(s.left, 3);         /* nothing consumed on failure */
	ck_assert_uint_eq(cs_read_u8(&s), 0); /* error sticks though bytes remain */
	ck_assert_ptr_null(cs_read_bytes(&s, 1));

	struct cs_reader t = {(const uint8_t *)b.data, 8, 0};
	ck_assert_ptr_null(cs_read_bytes(&t, 9));
	ck_assert_int_ne(t.err, 0);
	/* A u64 that runs off the end sets err (the value is then meaningless: the
	 * current implementation returns the low half it could read). */
	struct cs_reader u = {(const uint8_t *)b.data, 7, 0};
	(void)cs_read_u64(&u);
	ck_assert_int_ne(u.err, 0);
	cs_buf_free(&b);
}
END_TEST

/* ---- secmem ---- */

static bool mlock_usable;

/* VmLck from /proc/self/status in kB, or -1 when unavailable. */
static long vmlck_kb(void)
{
	char *data = NULL;
	if (cs_read_file("/proc/self/status", &data, NULL) != 0)
		return -1;
	long kb = -1;
	const char *p = strstr(data, "VmLck:");
	if (p)
		kb = strtol(p + 6, NULL, 10);
	free(data);
	return kb;
}

static void check_alloc_sizes(void)
{
	const size_t sizes[] = {0, 1, 32, 4095, 4096, 4097, 70000};
	for (size_t i = 0; i < CS_ARRAY_LEN(sizes); i++) {
		size_t n = sizes[i];
		uint8_t *p = cs_secmem_alloc(n);
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq((uintptr_t)p % (uintptr_t)sysconf(_SC_PAGESIZE), 0);
		for (size_t j = 0; j < n; j++)
			ck_assert_uint_eq(p[j], 0);
		memset(p, 0x5a, n);
		cs_secmem_free(p, n);
	}
	cs_secmem_free(NULL, 0);
	cs_secmem_free(NULL, 32);
}

START_TEST(test_secmem_no_mlock)
{
	cs_secmem_set_mlock(false);
	long before = vmlck_kb();
	uint8_t *p = cs_secmem_alloc(CS_ARRAY_LEN(base62));
	if (before >= 0)
		ck_assert_int_eq(vmlck_kb(), before);
	cs_secmem_free(p, CS_ARRAY_LEN(base62));
	check_alloc_sizes();
}
END_TEST

START_TEST(test_secmem_mlock)
{
	if (!mlock_usable) {
		fprintf(stderr, "test_secmem_mlock: RLIMIT_MEMLOCK too small, mlock not tested\n");
		return;
	}
	cs_secmem_set_mlock(true);
	long before = vmlck_kb();
	long page_kb = sysconf(_SC_PAGESIZE) / 1024;
	uint8_t *p = cs_secmem_alloc(100);
	uint8_t *q = cs_secmem_alloc(2 * (size_t)sysconf(_SC_PAGESIZE) + 1);
	if (before >= 0)
		ck_assert_int_eq(vmlck_kb(), before + 4 * page_kb);
	cs_secmem_free(q, 2 * (size_t)sysconf(_SC_PAGESIZE) + 1);
	cs_secmem_free(p, 100);
	if (before >= 0)
		ck_assert_int_eq(vmlck_kb(), before);
	check_alloc_sizes();
}
END_TEST

/* Clear CAP_IPC_LOCK from the effective set (root may lock past the rlimit otherwise)
 * and set the memlock limit to zero, so that mlock must fail. */
static void forbid_mlock(void)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct caps[2];
	if (syscall(SYS_capget, &hdr, caps) == 0) {
		caps[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
		(void)syscall(SYS_capset, &hdr, caps);
	}
	struct rlimit rl = {0, 0};
	(void)setrlimit(RLIMIT_MEMLOCK, &rl);
}

/* Whether forbid_mlock really makes mlock fail here; probed in a child process. */
static bool can_forbid_mlock(void)
{
	pid_t pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		forbid_mlock();
		void *p =
		    mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		/* The raw syscall, as lib/secmem.c does: ASan makes mlock() a no-op. */
		_exit(p != MAP_FAILED && syscall(SYS_mlock, p, (size_t)4096) != 0 ? 0 : 1);
	}
	int status = 0;
	if (waitpid(pid, &status, 0) != pid)
		return false;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

START_TEST(test_secmem_mlock_failure_aborts)
{
	forbid_mlock();
	cs_secmem_set_mlock(true);
	(void)cs_secmem_alloc(32);
}
END_TEST

START_TEST(test_secmem_mlock_failure_ignored_when_disabled)
{
	forbid_mlock();
	cs_secmem_set_mlock(false);
	uint8_t *p = cs_secmem_alloc(32);
	p[31] = 1;
	cs_secmem_free(p, 32);
}
END_TEST

int main(void)
{
	struct rlimit rl;
	mlock_usable = getrlimit(RLIMIT_MEMLOCK, &rl) == 0 &&
		       (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= 1024 * 1024);

	Suite *s = suite_create("util");
	TCase *tc = tcase_create("util");
	tcase_add_test(tc, test_random_block_fork_safe);
	tcase_add_test(tc, test_random_base62);
	tcase_add_test(tc, test_uuid);
	tcase_add_test(tc, test_random_bytes);
	tcase_add_test(tc, test_ct_equal_and_zero);
	tcase_add_test(tc, test_hex);
	tcase_add_test(tc, test_b64_vectors);
	tcase_add_test(tc, test_b64_round_trip);
	tcase_add_test(tc, test_b64_bad_input);
	tcase_add_test(tc, test_parse_duration);
	tcase_add_test(tc, test_format_duration);
	tcase_add_test(tc, test_time);
	tcase_add_test(tc, test_parse_bool);
	suite_add_tcase(s, tc);

	TCase *files = tcase_create("files");
	tcase_add_checked_fixture(files, tmpdir_setup, tmpdir_teardown);
	tcase_add_test(files, test_mkdir_p);
	tcase_add_test(files, test_read_file);
	suite_add_tcase(s, files);

	TCase *buf = tcase_create("buf");
	tcase_add_test(buf, test_buf_append);
	tcase_add_test(buf, test_buf_printf);
	tcase_add_test(buf, test_buf_ints_consume_steal);
	tcase_add_test(buf, test_reader);
	suite_add_tcase(s, buf);

	SRunner *sr = srunner_create(s);
	TCase *sec = tcase_create("secmem");
	tcase_add_test(sec, test_secmem_no_mlock);
	tcase_add_test(sec, test_secmem_mlock);
	/* These change process-wide limits and (in one case) expect an abort: they need
	 * Check's per-test fork, and an environment where mlock can be made to fail. */
	if (srunner_fork_status(sr) != CK_NOFORK && can_forbid_mlock()) {
		tcase_add_test_raise_signal(sec, test_secmem_mlock_failure_aborts, SIGABRT);
		tcase_add_test(sec, test_secmem_mlock_failure_ignored_when_disabled);
	}
	suite_add_tcase(s, sec);

	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
