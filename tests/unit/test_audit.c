/* Unit tests for audit/: HMAC and hashing of nested data, entry shapes, options
 * (log_raw, hmac_accessor, prefix, elide_list_responses), the file device (mode, reopen
 * after rotation, write failure) and the socket device (TCP). */
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"
#include "lib/err.h"
#include "lib/secmem.h"
#include "lib/util.h"

static const uint8_t SALT[CS_AUDIT_SALT_LEN] = "0123456789abcdef0123456789abcdef";

static char *h(const char *s)
{
	return cs_audit_hmac(SALT, sizeof SALT, s);
}

/* A device with options given as JSON text, or NULL with the error in err. */
static struct cs_audit_device *device(const char *type, const char *opts_json, char *err,
				      size_t errlen)
{
	struct cs_audit_device *d = calloc(1, sizeof *d);
	cJSON *o = cJSON_Parse(opts_json);
	ck_assert_ptr_nonnull(o);
	int rc = cs_audit_device_init(d, type, o, true, err, errlen);
	cJSON_Delete(o);
	if (rc) {
		cs_audit_device_free(d);
		return NULL;
	}
	d->path = strdup("test/");
	d->salt = cs_secmem_alloc(CS_AUDIT_SALT_LEN);
	memcpy(d->salt, SALT, sizeof SALT);
	return d;
}

static char tmpdir[256];

static void tmp_setup(void)
{
	cs_secmem_set_mlock(false);
	snprintf(tmpdir, sizeof tmpdir, "/tmp/cs-audit-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void tmp_teardown(void)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

/* ---- hashing ---- */

START_TEST(test_hmac_vector)
{
	/* RFC 4231-style check against a well-known HMAC-SHA256 value. */
	char *v =
	    cs_audit_hmac((const uint8_t *)"key", 3, "The quick brown fox jumps over the lazy dog");
	ck_assert_str_eq(
	    v, "hmac-sha256:f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
	free(v);
}
END_TEST

START_TEST(test_rfc3339)
{
	ck_assert(cs_audit_is_rfc3339("2026-11-22T13:54:08Z"));
	ck_assert(cs_audit_is_rfc3339("2026-11-22T13:54:08.123456789Z"));
	ck_assert(cs_audit_is_rfc3339("2026-11-22T13:54:08+02:00"));
	ck_assert(!cs_audit_is_rfc3339("2026-11-22"));
	ck_assert(!cs_audit_is_rfc3339("2026-11-22T13:54:08"));
	ck_assert(!cs_audit_is_rfc3339("2026-11-22T13:54:08Zx"));
	ck_assert(!cs_audit_is_rfc3339("password"));
	ck_assert(!cs_audit_is_rfc3339(""));
}
END_TEST

START_TEST(test_hash_nested)
{
	cJSON *v =
	    cJSON_Parse("{\"a\":\"x\",\"n\":5,\"f\":1.5,\"b\":true,\"z\":null,\"e\":\"\","
			"\"t\":\"2026-01-02T03:04:05Z\","
			"\"m\":{\"k\":\"y\",\"l\":[\"p\",1,false,{\"deep\":\"q\"},[\"r\"]]}}");
	cs_audit_hash_tree(v, SALT, sizeof SALT);
	char *x = h("x"), *y = h("y"), *p = h("p"), *q = h("q"), *r = h("r"), *e = h("");
	ck_assert_str_eq(cJSON_GetObjectItem(v, "a")->valuestring, x);
	ck_assert_str_eq(cJSON_GetObjectItem(v, "e")->valuestring, e);
	ck_assert_int_eq(cJSON_GetObjectItem(v, "n")->valueint, 5);
	ck_assert(cJSON_GetObjectItem(v, "f")->valuedouble == 1.5);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(v, "b")));
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(v, "z")));
	ck_assert_str_eq(cJSON_GetObjectItem(v, "t")->valuestring, "2026-01-02T03:04:05Z");
	cJSON *m = cJSON_GetObjectItem(v, "m");
	ck_assert_str_eq(cJSON_GetObjectItem(m, "k")->valuestring, y);
	cJSON *l = cJSON_GetObjectItem(m, "l");
	ck_assert_str_eq(cJSON_GetArrayItem(l, 0)->valuestring, p);
	ck_assert_int_eq(cJSON_GetArrayItem(l, 1)->valueint, 1);
	ck_assert(cJSON_IsFalse(cJSON_GetArrayItem(l, 2)));
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(l, 3), "deep")->valuestring, q);
	ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetArrayItem(l, 4), 0)->valuestring, r);
	/* keys are never hashed */
	ck_assert_ptr_nonnull(cJSON_GetObjectItem(m, "k"));
	ck_assert_str_ne(x, y);
	free(x), free(y), free(p), free(q), free(r), free(e);
	cJSON_Delete(v);
}
END_TEST

/* ---- entry shapes ---- */

static const char *TMPL =
    "{\"auth\":{\"client_token\":\"hvs.TOKEN\",\"accessor\":\"ACC\",\"display_name\":\"root\","
    "\"policies\":[\"root\"],\"token_type\":\"service\"},"
    "\"request\":{\"id\":\"RID\",\"operation\":\"list\",\"client_token\":\"hvs.TOKEN\","
    "\"client_token_accessor\":\"ACC\",\"namespace\":{\"id\":\"root\"},\"path\":\"kv/\","
    "\"data\":{\"password\":\"SECRET\",\"n\":3}}}";

static const char *RESP =
    "{\"mount_type\":\"kv\",\"data\":{\"keys\":[\"a\",\"b\"],\"key_info\":{\"a\":{}},"
    "\"v\":\"SECRET\"},\"auth\":{\"client_token\":\"hvs.NEW\",\"accessor\":\"NEWACC\","
    "\"policies\":[\"default\"]},\"wrap_info\":{\"token\":\"hvs.WRAP\",\"accessor\":\"WACC\","
    "\"ttl\":60}}";

static cJSON *format(struct cs_audit_device *d, const char *type, const char *resp,
		     const char *error, char **line_out)
{
	cJSON *tmpl = cJSON_Parse(TMPL);
	cJSON *r = resp ? cJSON_Parse(resp) : NULL;
	size_t len;
	char *line = cs_audit_format(d, type, tmpl, r, error, &len);
	ck_assert_uint_eq(strlen(line), len);
	ck_assert_int_eq(line[len - 1], '\n');
	cJSON *e = cJSON_Parse(line + strlen(d->prefix));
	ck_assert_ptr_nonnull(e);
	/* the template is not modified */
	char *again = cJSON_PrintUnformatted(tmpl);
	cJSON *orig = cJSON_Parse(TMPL);
	char *o = cJSON_PrintUnformatted(orig);
	ck_assert_str_eq(again, o);
	free(again), free(o);
	cJSON_Delete(orig);
	cJSON_Delete(tmpl);
	cJSON_Delete(r);
	if (line_out)
		*line_out = line;
	else
		free(line);
	return e;
}

static const char *str_at(const cJSON *e, const char *a, const char *b)
{
	const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(e, a), b);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

START_TEST(test_request_entry_hashed)
{
	char err[256];
	struct cs_audit_device *d = device("file", "{\"file_path\":\"discard\"}", err, sizeof err);
	ck_assert_ptr_nonnull(d);
	char *line;
	cJSON *e = format(d, "request", NULL, NULL, &line);
	ck_assert_ptr_null(strstr(line, "SECRET"));
	ck_assert_ptr_null(strstr(line, "hvs.TOKEN"));
	ck_assert_ptr_null(strstr(line, "ACC\""));
	ck_assert_str_eq(cJSON_GetObjectItem(e, "type")->valuestring, "request");
	ck_assert(cs_audit_is_rfc3339(cJSON_GetObjectItem(e, "time")->valuestring));
	ck_assert_ptr_null(cJSON_GetObjectItem(e, "response"));
	ck_assert_ptr_null(cJSON_GetObjectItem(e, "error"));
	char *tok = h("hvs.TOKEN"), *acc = h("ACC"), *sec = h("SECRET");
	ck_assert_str_eq(str_at(e, "auth", "client_token"), tok);
	ck_assert_str_eq(str_at(e, "auth", "accessor"), acc);
	ck_assert_str_eq(str_at(e, "auth", "display_name"), "root");
	ck_assert_str_eq(str_at(e, "request", "client_token"), tok);
	ck_assert_str_eq(str_at(e, "request", "client_token_accessor"), acc);
	ck_assert_str_eq(str_at(e, "request", "path"), "kv/");
	ck_assert_str_eq(str_at(e, "request", "id"), "RID");
	cJSON *data = cJSON_GetObjectItem(cJSON_GetObjectItem(e, "request"), "data");
	ck_assert_str_eq(cJSON_GetObjectItem(data, "password")->valuestring, sec);
	ck_assert_int_eq(cJSON_GetObjectItem(data, "n")->valueint, 3);
	free(tok), free(acc), free(sec), free(line);
	cJSON_Delete(e);
	cs_audit_device_free(d);
}
END_TEST

START_TEST(test_response_entry_hashed)
{
	char err[256];
	struct cs_audit_device *d = device("file", "{\"file_path\":\"discard\"}", err, sizeof err);
	char *line;
	cJSON *e = format(d, "response", RESP, "oops", &line);
	ck_assert_ptr_null(strstr(line, "SECRET"));
	ck_assert_ptr_null(strstr(line, "hvs."));
	ck_assert_str_eq(cJSON_GetObjectItem(e, "error")->valuestring, "oops");
	cJSON *resp = cJSON_GetObjectItem(e, "response");
	char *nt = h("hvs.NEW"), *na = h("NEWACC"), *wt = h("hvs.WRAP"), *wa = h("WACC"),
	     *a = h("a");
	ck_assert_str_eq(str_at(resp, "auth", "client_token"), nt);
	ck_assert_str_eq(str_at(resp, "auth", "accessor"), na);
	ck_assert_str_eq(str_at(resp, "wrap_info", "token"), wt);
	ck_assert_str_eq(str_at(resp, "wrap_info", "accessor"), wa);
	cJSON *keys = cJSON_GetObjectItem(cJSON_GetObjectItem(resp, "data"), "keys");
	ck_assert(cJSON_IsArray(keys)); /* no elision by default */
	ck_assert_str_eq(cJSON_GetArrayItem(keys, 0)->valuestring, a);
	/* the policies list of an auth block is not data: kept readable */
	ck_assert_str_eq(cJSON_GetArrayItem(
			     cJSON_GetObjectItem(cJSON_GetObjectItem(resp, "auth"), "policies"), 0)
			     ->valuestring,
			 "default");
	free(nt), free(na), free(wt), free(wa), free(a), free(line);
	cJSON_Delete(e);
	cs_audit_device_free(d);
}
END_TEST

START_TEST(test_log_raw_and_prefix)
{
	char err[256];
	struct cs_audit_device *d =
	    device("file",
		   "{\"file_path\":\"discard\",\"log_raw\":\"true\",\"prefix\":\"@cee: \","
		   "\"elide_list_responses\":\"true\"}",
		   err, sizeof err);
	ck_assert_ptr_nonnull(d);
	char *line;
	cJSON *e = format(d, "response", RESP, NULL, &line);
	ck_assert_int_eq(strncmp(line, "@cee: {", 7), 0);
	ck_assert_ptr_nonnull(strstr(line, "SECRET"));
	ck_assert_str_eq(str_at(e, "auth", "client_token"), "hvs.TOKEN");
	cJSON *data = cJSON_GetObjectItem(cJSON_GetObjectItem(e, "response"), "data");
	/* list operation + elide_list_responses: counts instead of the lists */
	ck_assert_int_eq(cJSON_GetObjectItem(data, "keys")->valueint, 2);
	ck_assert_int_eq(cJSON_GetObjectItem(data, "key_info")->valueint, 1);
	free(line);
	cJSON_Delete(e);
	cs_audit_device_free(d);
}
END_TEST

START_TEST(test_hmac_accessor_false)
{
	char err[256];
	struct cs_audit_device *d = device(
	    "file", "{\"file_path\":\"discard\",\"hmac_accessor\":\"false\"}", err, sizeof err);
	ck_assert_ptr_nonnull(d);
	cJSON *e = format(d, "response", RESP, NULL, NULL);
	char *tok = h("hvs.TOKEN");
	ck_assert_str_eq(str_at(e, "auth", "accessor"), "ACC");
	ck_assert_str_eq(str_at(e, "request", "client_token_accessor"), "ACC");
	ck_assert_str_eq(str_at(e, "auth", "client_token"), tok);
	cJSON *resp = cJSON_GetObjectItem(e, "response");
	ck_assert_str_eq(str_at(resp, "auth", "accessor"), "NEWACC");
	ck_assert_str_eq(str_at(resp, "wrap_info", "accessor"), "WACC");
	ck_assert_str_ne(str_at(resp, "wrap_info", "token"), "hvs.WRAP");
	free(tok);
	cJSON_Delete(e);
	cs_audit_device_free(d);
}
END_TEST

START_TEST(test_bad_options)
{
	char err[256];
	ck_assert_ptr_null(device("file", "{}", err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "file_path"));
	ck_assert_ptr_null(
	    device("file", "{\"file_path\":\"discard\",\"format\":\"jsonx\"}", err, sizeof err));
	ck_assert_ptr_null(
	    device("file", "{\"file_path\":\"discard\",\"log_raw\":\"maybe\"}", err, sizeof err));
	ck_assert_ptr_null(
	    device("file", "{\"file_path\":\"discard\",\"mode\":\"999\"}", err, sizeof err));
	ck_assert_ptr_null(device("syslogx", "{}", err, sizeof err));
	ck_assert_ptr_null(
	    device("file", "{\"file_path\":\"/nonexistent/dir/x.log\"}", err, sizeof err));
	ck_assert_ptr_null(device("socket", "{}", err, sizeof err));
	ck_assert_ptr_null(device(
	    "socket", "{\"address\":\"127.0.0.1:1\",\"socket_type\":\"sctp\"}", err, sizeof err));
}
END_TEST

/* ---- file device ---- */

static size_t count_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = 0;
	int c;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

START_TEST(test_file_write_mode_reopen)
{
	char path[300], rotated[310], opts[400], err[256];
	snprintf(path, sizeof path, "%s/audit.log", tmpdir);
	snprintf(rotated, sizeof rotated, "%s.1", path);
	snprintf(opts, sizeof opts, "{\"file_path\":\"%s\"}", path);
	struct cs_audit_device *d = device("file", opts, err, sizeof err);
	ck_assert_msg(d != NULL, "%s", err);
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(d->ops->write(d, "one\n", 4), 0);
	ck_assert_int_eq(d->ops->write(d, "two\n", 4), 0);
	ck_assert_uint_eq(count_lines(path), 2);
	/* rotation: rename, then reopen → the next lines go to a new file */
	ck_assert_int_eq(rename(path, rotated), 0);
	ck_assert_int_eq(d->ops->write(d, "three\n", 6), 0); /* still the old file */
	d->ops->reopen(d);
	ck_assert_int_eq(d->ops->write(d, "four\n", 5), 0);
	ck_assert_uint_eq(count_lines(rotated), 3);
	ck_assert_uint_eq(count_lines(path), 1);
	/* reopen appends to an existing file */
	d->ops->reopen(d);
	ck_assert_int_eq(d->ops->write(d, "five\n", 5), 0);
	ck_assert_uint_eq(count_lines(path), 2);
	cs_audit_device_free(d);

	/* mode option */
	snprintf(path, sizeof path, "%s/m.log", tmpdir);
	snprintf(opts, sizeof opts, "{\"file_path\":\"%s\",\"mode\":\"0640\"}", path);
	d = device("file", opts, err, sizeof err);
	ck_assert_ptr_nonnull(d);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0640);
	cs_audit_device_free(d);
}
END_TEST

START_TEST(test_file_write_failure)
{
	char err[256];
	if (access("/dev/full", W_OK) != 0)
		return;
	struct cs_audit_device *d =
	    device("file", "{\"file_path\":\"/dev/full\"}", err, sizeof err);
	ck_assert_msg(d != NULL, "%s", err);
	ck_assert_int_eq(d->ops->write(d, "x\n", 2), CS_EIO);
	cs_audit_device_free(d);

	/* the directory disappears: the reopen fails, writes fail, and recover after */
	char dir[300], path[320], moved[310], opts[400];
	snprintf(dir, sizeof dir, "%s/d", tmpdir);
	snprintf(moved, sizeof moved, "%s/moved", tmpdir);
	snprintf(path, sizeof path, "%s/a.log", dir);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	snprintf(opts, sizeof opts, "{\"file_path\":\"%s\"}", path);
	d = device("file", opts, err, sizeof err);
	ck_assert_ptr_nonnull(d);
	ck_assert_int_eq(rename(dir, moved), 0);
	d->ops->reopen(d);
	ck_assert_int_eq(d->ops->write(d, "x\n", 2), CS_EIO);
	ck_assert_int_eq(rename(moved, dir), 0);
	ck_assert_int_eq(d->ops->write(d, "y\n", 2), 0);
	ck_assert_uint_eq(count_lines(path), 1);
	cs_audit_device_free(d);
}
END_TEST

/* ---- socket device ---- */

START_TEST(test_socket_tcp)
{
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	ck_assert_int_eq(bind(l, (struct sockaddr *)&a, sizeof a), 0);
	ck_assert_int_eq(listen(l, 4), 0);
	socklen_t al = sizeof a;
	getsockname(l, (struct sockaddr *)&a, &al);
	char opts[200], err[256];
	snprintf(opts, sizeof opts, "{\"address\":\"127.0.0.1:%d\",\"write_timeout\":\"1s\"}",
		 ntohs(a.sin_port));
	struct cs_audit_device *d = device("socket", opts, err, sizeof err);
	ck_assert_msg(d != NULL, "%s", err);
	int c = accept(l, NULL, NULL);
	ck_assert_int_ge(c, 0);
	ck_assert_int_eq(d->ops->write(d, "hello\n", 6), 0);
	char buf[16] = "";
	ck_assert_int_eq(recv(c, buf, 6, MSG_WAITALL), 6);
	ck_assert_int_eq(memcmp(buf, "hello\n", 6), 0);
	/* the collector restarts: the device reconnects once */
	close(c);
	d->ops->reopen(d);
	ck_assert_int_eq(d->ops->write(d, "again\n", 6), 0);
	c = accept(l, NULL, NULL);
	ck_assert_int_eq(recv(c, buf, 6, MSG_WAITALL), 6);
	ck_assert_int_eq(memcmp(buf, "again\n", 6), 0);
	close(c);
	/* the collector is gone for good: the write fails, within the timeout */
	close(l);
	d->ops->reopen(d);
	ck_assert_int_eq(d->ops->write(d, "lost\n", 5), CS_EIO);
	cs_audit_device_free(d);
	/* enabling against nothing fails */
	ck_assert_ptr_null(device("socket", opts, err, sizeof err));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("audit");
	TCase *hash = tcase_create("hash");
	tcase_add_test(hash, test_hmac_vector);
	tcase_add_test(hash, test_rfc3339);
	tcase_add_test(hash, test_hash_nested);
	suite_add_tcase(s, hash);

	TCase *fmt = tcase_create("format");
	tcase_add_checked_fixture(fmt, tmp_setup, tmp_teardown);
	tcase_add_test(fmt, test_request_entry_hashed);
	tcase_add_test(fmt, test_response_entry_hashed);
	tcase_add_test(fmt, test_log_raw_and_prefix);
	tcase_add_test(fmt, test_hmac_accessor_false);
	tcase_add_test(fmt, test_bad_options);
	suite_add_tcase(s, fmt);

	TCase *dev = tcase_create("devices");
	tcase_add_checked_fixture(dev, tmp_setup, tmp_teardown);
	tcase_add_test(dev, test_file_write_mode_reopen);
	tcase_add_test(dev, test_file_write_failure);
	tcase_add_test(dev, test_socket_tcp);
	suite_add_tcase(s, dev);

	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
