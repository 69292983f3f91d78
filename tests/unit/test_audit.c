/* Unit tests for audit/: HMAC and hashing of nested data (timestamp-shaped secrets too),
 * entry shapes and the fields Vault leaves readable, options (log_raw, hmac_accessor,
 * prefix, elide_list_responses), the file device (mode, reopen after rotation, write
 * failure), the file device's limits (CVE-2025-6000 replays: storage and binary
 * directories, symlinks, non-regular files, mode of existing files, prefix and wide modes
 * only with allow_audit_log_prefixing) and the socket device (TCP). */
#include <check.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"
#include "lib/err.h"
#include "lib/secmem.h"
#include "lib/util.h"
#include "tests/unit/fixtures.h"

static const uint8_t SALT[CS_AUDIT_SALT_LEN] = "0123456789abcdef0123456789abcdef";

static char *h(const char *s)
{
	return cs_audit_hmac(SALT, sizeof SALT, s);
}

/* The limits the next devices get (as the broker gives them its core's). */
static struct cs_audit_limits limits;

static void set_limits(const char *storage_dir, bool allow_prefixing)
{
	cs_audit_limits_set(&limits, storage_dir, allow_prefixing);
}

/* A device with options given as JSON text, or NULL with the error in err; `api`: enabled
 * over the API (probe) rather than reloaded from the table. */
static struct cs_audit_device *device_as(bool api, const char *type, const char *opts_json,
					 char *err, size_t errlen)
{
	struct cs_audit_device *d = calloc(1, sizeof *d);
	d->limits = limits;
	cJSON *o = cJSON_Parse(opts_json);
	ck_assert_ptr_nonnull(o);
	err[0] = '\0';
	int rc = cs_audit_device_init(d, type, o, api, err, errlen);
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

static struct cs_audit_device *device(const char *type, const char *opts_json, char *err,
				      size_t errlen)
{
	return device_as(true, type, opts_json, err, errlen);
}

/* 2006-01-02T15:04:05[.frac]Z, as the envelope's "time" is written. */
static bool is_utc_time(const char *s)
{
	int y, mo, d, h, mi, sec, n = 0;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19)
		return false;
	const char *p = s + 19;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	return strcmp(p, "Z") == 0;
}

static char tmpdir[256];

static void tmp_setup(void)
{
	cs_secmem_set_mlock(false);
	set_limits(NULL, false);
	cs_fx_tmpdir(tmpdir, sizeof tmpdir, "audit");
}

static void tmp_teardown(void)
{
	cs_fx_rm_rf(tmpdir);
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
	/* a string shaped like a timestamp is hashed like any other (Vault leaves it) */
	char *t = h("2026-01-02T03:04:05Z");
	ck_assert_str_eq(cJSON_GetObjectItem(v, "t")->valuestring, t);
	free(t);
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
	ck_assert(is_utc_time(cJSON_GetObjectItem(e, "time")->valuestring));
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

/* A KV write and read of a secret shaped like a timestamp (issue 9, item 9): the value is
 * only ever an HMAC; the fields Vault leaves readable stay readable. */
static const char *TS_TMPL =
    "{\"auth\":{\"client_token\":\"hvs.TOKEN\",\"accessor\":\"ACC\",\"display_name\":"
    "\"token-ci\",\"policies\":[\"default\",\"kv-rw\"],\"token_policies\":[\"default\","
    "\"kv-rw\"],\"metadata\":{\"team\":\"ci\"},\"token_type\":\"service\",\"token_ttl\":"
    "3600,\"token_issue_time\":\"2026-12-07T10:00:00Z\"},"
    "\"request\":{\"id\":\"9d3c2a1e-0000-4000-8000-000000000001\",\"operation\":\"update\","
    "\"mount_point\":\"kv/\",\"mount_type\":\"kv\",\"mount_accessor\":\"kv_1a2b3c4d\","
    "\"mount_class\":\"secret\",\"client_token\":\"hvs.TOKEN\",\"client_token_accessor\":"
    "\"ACC\",\"namespace\":{\"id\":\"root\"},\"path\":\"kv/app\",\"data\":{\"not_after\":"
    "\"2024-01-01T00:00:00Z\",\"list\":[\"2024-01-01T00:00:00+02:00\"]},"
    "\"remote_address\":\"127.0.0.1\",\"remote_port\":51000,\"wrap_ttl\":60}}";

static const char *TS_RESP =
    "{\"mount_point\":\"kv/\",\"mount_type\":\"kv\",\"mount_accessor\":\"kv_1a2b3c4d\","
    "\"secret\":{\"lease_id\":\"kv/app/lease-1\"},"
    "\"data\":{\"not_after\":\"2024-01-01T00:00:00Z\",\"nested\":{\"t\":"
    "\"2024-01-01T00:00:00.5Z\"}},\"warnings\":[\"a warning\"],"
    "\"wrap_info\":{\"token\":\"hvs.WRAP\",\"accessor\":\"WACC\",\"ttl\":60,"
    "\"creation_time\":\"2026-12-07T10:00:01Z\",\"creation_path\":\"kv/app\"}}";

START_TEST(test_timestamp_secret_hashed_envelope_readable)
{
	char err[256];
	struct cs_audit_device *d = device("file", "{\"file_path\":\"discard\"}", err, sizeof err);
	ck_assert_ptr_nonnull(d);
	cJSON *tmpl = cJSON_Parse(TS_TMPL), *resp = cJSON_Parse(TS_RESP);
	ck_assert_ptr_nonnull(tmpl);
	ck_assert_ptr_nonnull(resp);
	char *ts = h("2024-01-01T00:00:00Z");
	for (int i = 0; i < 2; i++) {
		size_t len;
		char *line = cs_audit_format(d, i ? "response" : "request", tmpl, i ? resp : NULL,
					     NULL, &len);
		/* the secret appears only as its HMAC */
		ck_assert_msg(strstr(line, "2024-01-01") == NULL, "%s", line);
		cJSON *e = cJSON_Parse(line);
		ck_assert_ptr_nonnull(e);
		cJSON *req = cJSON_GetObjectItem(e, "request");
		cJSON *rd = cJSON_GetObjectItem(req, "data");
		ck_assert_str_eq(cJSON_GetObjectItem(rd, "not_after")->valuestring, ts);
		char *off = h("2024-01-01T00:00:00+02:00");
		ck_assert_str_eq(
		    cJSON_GetArrayItem(cJSON_GetObjectItem(rd, "list"), 0)->valuestring, off);
		free(off);
		/* Vault's envelope: readable */
		ck_assert(is_utc_time(cJSON_GetObjectItem(e, "time")->valuestring));
		ck_assert_str_eq(cJSON_GetObjectItem(e, "type")->valuestring,
				 i ? "response" : "request");
		ck_assert_str_eq(str_at(e, "request", "id"),
				 "9d3c2a1e-0000-4000-8000-000000000001");
		ck_assert_str_eq(str_at(e, "request", "operation"), "update");
		ck_assert_str_eq(str_at(e, "request", "path"), "kv/app");
		ck_assert_str_eq(str_at(e, "request", "mount_point"), "kv/");
		ck_assert_str_eq(str_at(e, "request", "mount_type"), "kv");
		ck_assert_str_eq(str_at(e, "request", "mount_accessor"), "kv_1a2b3c4d");
		ck_assert_str_eq(str_at(e, "request", "mount_class"), "secret");
		ck_assert_str_eq(str_at(e, "request", "remote_address"), "127.0.0.1");
		ck_assert_int_eq(cJSON_GetObjectItem(req, "remote_port")->valueint, 51000);
		ck_assert_int_eq(cJSON_GetObjectItem(req, "wrap_ttl")->valueint, 60);
		ck_assert_str_eq(str_at(req, "namespace", "id"), "root");
		ck_assert_str_eq(str_at(e, "auth", "display_name"), "token-ci");
		ck_assert_str_eq(str_at(e, "auth", "token_type"), "service");
		ck_assert_str_eq(str_at(e, "auth", "token_issue_time"), "2026-12-07T10:00:00Z");
		cJSON *auth = cJSON_GetObjectItem(e, "auth");
		ck_assert_str_eq(
		    cJSON_GetArrayItem(cJSON_GetObjectItem(auth, "policies"), 1)->valuestring,
		    "kv-rw");
		ck_assert_str_eq(
		    cJSON_GetArrayItem(cJSON_GetObjectItem(auth, "token_policies"), 1)->valuestring,
		    "kv-rw");
		ck_assert_str_eq(str_at(auth, "metadata", "team"), "ci");
		/* token and accessor: HMAC'd (hmac_accessor defaults to true) */
		ck_assert_int_eq(strncmp(str_at(e, "auth", "client_token"), "hmac-sha256:", 12), 0);
		ck_assert_int_eq(strncmp(str_at(e, "auth", "accessor"), "hmac-sha256:", 12), 0);
		ck_assert_int_eq(
		    strncmp(str_at(e, "request", "client_token_accessor"), "hmac-sha256:", 12), 0);
		if (i) {
			cJSON *r = cJSON_GetObjectItem(e, "response");
			cJSON *data = cJSON_GetObjectItem(r, "data");
			ck_assert_str_eq(cJSON_GetObjectItem(data, "not_after")->valuestring, ts);
			char *half = h("2024-01-01T00:00:00.5Z");
			ck_assert_str_eq(str_at(data, "nested", "t"), half);
			free(half);
			ck_assert_str_eq(str_at(r, "secret", "lease_id"), "kv/app/lease-1");
			ck_assert_str_eq(str_at(r, "wrap_info", "creation_time"),
					 "2026-12-07T10:00:01Z");
			ck_assert_str_eq(str_at(r, "wrap_info", "creation_path"), "kv/app");
			ck_assert_int_eq(
			    cJSON_GetObjectItem(cJSON_GetObjectItem(r, "wrap_info"), "ttl")
				->valueint,
			    60);
			ck_assert_str_eq(
			    cJSON_GetArrayItem(cJSON_GetObjectItem(r, "warnings"), 0)->valuestring,
			    "a warning");
			ck_assert_str_eq(cJSON_GetObjectItem(r, "mount_type")->valuestring, "kv");
			ck_assert_int_eq(
			    strncmp(str_at(r, "wrap_info", "token"), "hmac-sha256:", 12), 0);
		}
		cJSON_Delete(e);
		free(line);
	}
	free(ts);
	cJSON_Delete(tmpl);
	cJSON_Delete(resp);
	cs_audit_device_free(d);
}
END_TEST

START_TEST(test_log_raw_and_prefix)
{
	char err[256];
	set_limits(NULL, true); /* allow_audit_log_prefixing */
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
	/* No DNS on the loop thread: host names are refused before any lookup. */
	const char *named[] = {
	    "collector.invalid:9090", "127.0.0.1", "127.0.0.1:http", ":9090", "[]:9090", "[::1]"};
	for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
		char opts[128];
		snprintf(opts, sizeof opts, "{\"address\":\"%s\"}", named[i]);
		ck_assert_ptr_null(device("socket", opts, err, sizeof err));
		ck_assert_msg(strstr(err, "host names are not resolved"), "%s: %s", named[i], err);
	}
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

	/* mode option (wider than 0600: allow_audit_log_prefixing) */
	set_limits(NULL, true);
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
	char err[256], opts[400];
	/* a regular file that cannot grow: every write fails with EFBIG, and the retry too */
	char path[300];
	snprintf(path, sizeof path, "%s/big.log", tmpdir);
	snprintf(opts, sizeof opts, "{\"file_path\":\"%s\"}", path);
	struct cs_audit_device *d = device("file", opts, err, sizeof err);
	ck_assert_msg(d != NULL, "%s", err);
	signal(SIGXFSZ, SIG_IGN);
	struct rlimit old, lim = {.rlim_cur = 4, .rlim_max = RLIM_INFINITY};
	getrlimit(RLIMIT_FSIZE, &old);
	lim.rlim_max = old.rlim_max;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	ck_assert_int_eq(d->ops->write(d, "0123456789\n", 11), CS_EIO);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	cs_audit_device_free(d);

	/* the directory disappears: the reopen fails, writes fail, and recover after */
	char dir[280], moved[310];
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

/* ---- file device limits: replays of the CVE-2025-6000 class ---- */

static struct cs_audit_device *file_device(bool api, const char *path, const char *extra, char *err,
					   size_t errlen)
{
	char opts[PATH_MAX + 600];
	snprintf(opts, sizeof opts, "{\"file_path\":\"%s\"%s%s}", path, extra ? "," : "",
		 extra ? extra : "");
	return device_as(api, "file", opts, err, errlen);
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
}

static void assert_file(const char *path, const char *text, mode_t mode)
{
	char buf[256] = "";
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	ck_assert_str_eq(buf, text);
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, mode);
}

START_TEST(test_refuse_storage_dir)
{
	char data[300], sub[320], link[300], p[400], err[512];
	snprintf(data, sizeof data, "%s/data", tmpdir);
	snprintf(sub, sizeof sub, "%s/raft", data);
	ck_assert_int_eq(mkdir(data, 0700), 0);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	/* the storage dir is given through a symlink: it is compared resolved */
	snprintf(link, sizeof link, "%s/datalink", tmpdir);
	ck_assert_int_eq(symlink(data, link), 0);
	set_limits(link, true);

	const char *bad[] = {"/data/audit.log", "/data/raft/audit.log", "/data/raft/../x.log",
			     "/datalink/y.log", "/./data/z.log"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		snprintf(p, sizeof p, "%s%s", tmpdir, bad[i]);
		ck_assert_ptr_null(file_device(true, p, NULL, err, sizeof err));
		ck_assert_msg(strstr(err, "inside the storage directory"), "%s: %s", p, err);
		ck_assert_msg(strstr(err, "sanity check failed; unable to open"), "%s", err);
		/* at load too: a stored device pointing there never opens */
		ck_assert_ptr_null(file_device(false, p, NULL, err, sizeof err));
	}
	/* the storage directory itself, named from its parent */
	snprintf(p, sizeof p, "%s/data", tmpdir);
	ck_assert_ptr_null(file_device(true, p, NULL, err, sizeof err));
	/* nothing was created anywhere under it */
	snprintf(p, sizeof p, "%s/data/audit.log", tmpdir);
	ck_assert(!exists(p));
	snprintf(p, sizeof p, "%s/x.log", data);
	ck_assert(!exists(p));
	snprintf(p, sizeof p, "%s/audit.log", sub);
	ck_assert(!exists(p));
	/* next to it is fine */
	snprintf(p, sizeof p, "%s/datanot.log", tmpdir);
	struct cs_audit_device *d = file_device(true, p, NULL, err, sizeof err);
	ck_assert_msg(d != NULL, "%s", err);
	cs_audit_device_free(d);
}
END_TEST

START_TEST(test_refuse_binary_dir)
{
	char exe[PATH_MAX], p[PATH_MAX + 32], err[512];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	ck_assert_int_gt(n, 0);
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	snprintf(p, sizeof p, "%s/audit-%d.log", exe, (int)getpid());
	ck_assert_ptr_null(file_device(true, p, NULL, err, sizeof err));
	ck_assert_msg(strstr(err, "directory of the custos binary"), "%s", err);
	ck_assert(!exists(p));
	/* the binary itself */
	snprintf(p, sizeof p, "%s/test_audit", exe);
	ck_assert_ptr_null(file_device(true, p, NULL, err, sizeof err));
}
END_TEST

START_TEST(test_refuse_symlink)
{
	char target[300], link[300], dirlink[300], p[400], err[512];
	snprintf(target, sizeof target, "%s/target", tmpdir);
	snprintf(link, sizeof link, "%s/audit.log", tmpdir);
	write_file(target, "original\n", 0640);
	ck_assert_int_eq(symlink(target, link), 0);
	ck_assert_ptr_null(file_device(true, link, "\"mode\":\"0600\"", err, sizeof err));
	ck_assert_msg(strstr(err, "symbolic link"), "%s", err);
	ck_assert_ptr_null(file_device(false, link, NULL, err, sizeof err));
	assert_file(target, "original\n", 0640);
	/* a dangling symlink is not created through either */
	char missing[300];
	snprintf(missing, sizeof missing, "%s/missing", tmpdir);
	snprintf(p, sizeof p, "%s/dangling.log", tmpdir);
	ck_assert_int_eq(symlink(missing, p), 0);
	ck_assert_ptr_null(file_device(true, p, NULL, err, sizeof err));
	ck_assert(!exists(missing));
	/* a symlinked parent directory is resolved, and then judged where it points */
	snprintf(dirlink, sizeof dirlink, "%s/dirlink", tmpdir);
	ck_assert_int_eq(symlink(tmpdir, dirlink), 0);
	snprintf(p, sizeof p, "%s/via.log", dirlink);
	struct cs_audit_device *d = file_device(true, p, NULL, err, sizeof err);
	ck_assert_msg(d != NULL, "%s", err);
	cs_audit_device_free(d);

	/* swapped for a symlink after the enable: the next reopen refuses it */
	char real[300];
	snprintf(real, sizeof real, "%s/real.log", tmpdir);
	d = file_device(true, real, NULL, err, sizeof err);
	ck_assert_ptr_nonnull(d);
	ck_assert_int_eq(unlink(real), 0);
	ck_assert_int_eq(symlink(target, real), 0);
	d->ops->reopen(d);
	ck_assert_int_eq(d->ops->write(d, "leak\n", 5), CS_EIO);
	cs_audit_device_free(d);
	assert_file(target, "original\n", 0640);
}
END_TEST

START_TEST(test_refuse_non_regular)
{
	char fifo[300], dir[300], err[512];
	const char *devs[] = {"/dev/null", "/dev/full", "/dev/zero"};
	for (size_t i = 0; i < sizeof devs / sizeof *devs; i++) {
		if (!exists(devs[i]))
			continue;
		ck_assert_ptr_null(file_device(true, devs[i], NULL, err, sizeof err));
		ck_assert_msg(strstr(err, "not a regular file"), "%s: %s", devs[i], err);
	}
	/* a FIFO with no reader: refused at once (the open must not block the loop) */
	snprintf(fifo, sizeof fifo, "%s/fifo", tmpdir);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	ck_assert_ptr_null(file_device(true, fifo, NULL, err, sizeof err));
	ck_assert_msg(strstr(err, "not a regular file"), "%s", err);
	snprintf(dir, sizeof dir, "%s/sub", tmpdir);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_ptr_null(file_device(true, dir, NULL, err, sizeof err));
	snprintf(dir, sizeof dir, "%s/", tmpdir);
	ck_assert_ptr_null(file_device(true, dir, NULL, err, sizeof err));
	ck_assert_msg(strstr(err, "must name a file"), "%s", err);
	/* the keywords still work, in any case, as in Vault */
	struct cs_audit_device *d = file_device(true, "STDOUT", NULL, err, sizeof err);
	ck_assert_ptr_nonnull(d);
	ck_assert(!d->fd_owned);
	cs_audit_device_free(d);
	d = file_device(true, "discard", NULL, err, sizeof err);
	ck_assert_ptr_nonnull(d);
	ck_assert_int_eq(d->ops->write(d, "x\n", 2), 0);
	cs_audit_device_free(d);
}
END_TEST

START_TEST(test_mode_only_on_create)
{
	char existing[300], fresh[300], err[512];
	snprintf(existing, sizeof existing, "%s/existing.log", tmpdir);
	write_file(existing, "old\n", 0644);
	/* executable or special bits: refused, whatever the config says */
	set_limits(NULL, true);
	const char *bad[] = {"\"mode\":\"0777\"", "\"mode\":\"0755\"", "\"mode\":\"0700\"",
			     "\"mode\":\"4600\"", "\"mode\":\"2600\"", "\"mode\":\"1600\""};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		ck_assert_ptr_null(file_device(true, existing, bad[i], err, sizeof err));
		ck_assert_msg(strstr(err, "executable"), "%s", err);
	}
	assert_file(existing, "old\n", 0644);
	/* wider than 0600 without allow_audit_log_prefixing: refused */
	set_limits(NULL, false);
	ck_assert_ptr_null(file_device(true, existing, "\"mode\":\"0640\"", err, sizeof err));
	ck_assert_msg(strstr(err, "allow_audit_log_prefixing"), "%s", err);
	ck_assert_ptr_null(file_device(true, existing, "\"mode\":\"0666\"", err, sizeof err));
	assert_file(existing, "old\n", 0644);
	/* accepted, and an existing file keeps its mode */
	struct cs_audit_device *d =
	    file_device(true, existing, "\"mode\":\"0600\"", err, sizeof err);
	ck_assert_msg(d != NULL, "%s", err);
	cs_audit_device_free(d);
	set_limits(NULL, true);
	d = file_device(true, existing, "\"mode\":\"0440\"", err, sizeof err);
	ck_assert_msg(d != NULL, "%s", err);
	ck_assert_int_eq(d->ops->write(d, "new\n", 4), 0);
	d->ops->reopen(d);
	cs_audit_device_free(d);
	assert_file(existing, "old\nnew\n", 0644);
	/* a new file gets exactly the mode asked for, whatever the umask */
	mode_t old_umask = umask(077);
	snprintf(fresh, sizeof fresh, "%s/fresh.log", tmpdir);
	d = file_device(true, fresh, "\"mode\":\"0640\"", err, sizeof err);
	ck_assert_msg(d != NULL, "%s", err);
	cs_audit_device_free(d);
	assert_file(fresh, "", 0640);
	/* "0000": the default for a new file */
	snprintf(fresh, sizeof fresh, "%s/zero.log", tmpdir);
	d = file_device(true, fresh, "\"mode\":\"0000\"", err, sizeof err);
	ck_assert_msg(d != NULL, "%s", err);
	cs_audit_device_free(d);
	assert_file(fresh, "", 0600);
	umask(old_umask);
	/* a device stored before these rules still loads, minus the executable bits */
	set_limits(NULL, false);
	snprintf(fresh, sizeof fresh, "%s/legacy.log", tmpdir);
	d = file_device(false, fresh, "\"mode\":\"0755\"", err, sizeof err);
	ck_assert_msg(d != NULL, "%s", err);
	cs_audit_device_free(d);
	assert_file(fresh, "", 0644);
}
END_TEST

START_TEST(test_prefix_needs_config)
{
	char err[512];
	const char *opts[] = {"{\"file_path\":\"discard\",\"prefix\":\"#!/bin/sh\\n\"}",
			      "{\"file_path\":\"discard\",\"prefix\":\"\"}"};
	for (size_t i = 0; i < 2; i++) {
		ck_assert_ptr_null(device("file", opts[i], err, sizeof err));
		ck_assert_msg(strstr(err, "audit log prefixing is not allowed"), "%s", err);
		ck_assert_ptr_null(device(
		    "socket", "{\"address\":\"127.0.0.1:1\",\"prefix\":\"x\"}", err, sizeof err));
		ck_assert_msg(strstr(err, "prefixing"), "%s", err);
	}
	/* a device already in the table keeps its prefix */
	struct cs_audit_device *d = device_as(false, "file", opts[0], err, sizeof err);
	ck_assert_msg(d != NULL, "%s", err);
	ck_assert_str_eq(d->prefix, "#!/bin/sh\n");
	cs_audit_device_free(d);
	/* allowed by the config */
	set_limits(NULL, true);
	d = device("file", opts[0], err, sizeof err);
	ck_assert_msg(d != NULL, "%s", err);
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
	tcase_add_test(hash, test_hash_nested);
	suite_add_tcase(s, hash);

	TCase *fmt = tcase_create("format");
	tcase_add_checked_fixture(fmt, tmp_setup, tmp_teardown);
	tcase_add_test(fmt, test_request_entry_hashed);
	tcase_add_test(fmt, test_response_entry_hashed);
	tcase_add_test(fmt, test_timestamp_secret_hashed_envelope_readable);
	tcase_add_test(fmt, test_log_raw_and_prefix);
	tcase_add_test(fmt, test_hmac_accessor_false);
	tcase_add_test(fmt, test_bad_options);
	suite_add_tcase(s, fmt);

	TCase *dev = tcase_create("devices");
	tcase_add_checked_fixture(dev, tmp_setup, tmp_teardown);
	tcase_add_test(dev, test_file_write_mode_reopen);
	tcase_add_test(dev, test_file_write_failure);
	tcase_add_test(dev, test_socket_tcp);
	tcase_add_test(dev, test_refuse_storage_dir);
	tcase_add_test(dev, test_refuse_binary_dir);
	tcase_add_test(dev, test_refuse_symlink);
	tcase_add_test(dev, test_refuse_non_regular);
	tcase_add_test(dev, test_mode_only_on_create);
	tcase_add_test(dev, test_prefix_needs_config);
	suite_add_tcase(s, dev);

	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
