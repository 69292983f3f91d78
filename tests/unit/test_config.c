/* Unit tests for the server configuration loader (server/config.c). */
#include <check.h>
#include <limits.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/log.h"
#include "server/config.h"

static char err[512];

static int parse(struct cs_config *c, const char *text)
{
	cs_config_init(c);
	return cs_config_parse(c, text, strlen(text), "test.hcl", err, sizeof err);
}

static void parse_ok(struct cs_config *c, const char *text)
{
	int rc = parse(c, text);
	ck_assert_msg(rc == 0, "parse failed: %s", err);
}

/* Parsing fails with CS_EINVAL and a message "test.hcl:LINE: ..." containing `what`. */
static void parse_fails(const char *text, int line, const char *what)
{
	struct cs_config c;
	int rc = parse(&c, text);
	cs_config_free(&c);
	ck_assert_msg(rc == CS_EINVAL, "<%s> should fail, rc=%d", text, rc);
	char prefix[64];
	snprintf(prefix, sizeof prefix, "test.hcl:%d: ", line);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "error <%s> should start <%s>",
		      err, prefix);
	ck_assert_msg(strstr(err, what) != NULL, "error <%s> should mention <%s>", err, what);
}

#define STORAGE "storage \"raft\" {\n  path = \"/data\"\n  node_id = \"n1\"\n}\n"
#define PLAIN_LISTENER                                                                             \
	"listener \"tcp\" {\n  address = \"127.0.0.1:8200\"\n  tls_disable = true\n}\n"

START_TEST(test_full_config_round_trip)
{
	struct cs_config c;
	parse_ok(&c, "# full example\n"
		     "storage \"raft\" {\n"
		     "  path    = \"/var/lib/custos\"\n"
		     "  node_id = \"node-7\"\n"
		     "}\n"
		     "listener \"tcp\" {\n"
		     "  address          = \"10.0.0.1:8300\"\n"
		     "  cluster_address  = \"10.0.0.1:9301\"\n"
		     "  tls_disable      = \"false\"\n"
		     "  tls_cert_file    = \"/etc/c.pem\"\n"
		     "  tls_key_file     = \"/etc/k.pem\"\n"
		     "  tls_min_version  = \"tls13\"\n"
		     "  max_request_size = \"1048576\"\n"
		     "}\n"
		     "listener \"tcp\" {\n"
		     "  address = \"[::1]:8400\"\n"
		     "  tls_disable = \"true\"\n"
		     "  max_request_size = 0\n"
		     "}\n"
		     "api_addr      = \"https://vault.example:8300\"\n"
		     "cluster_addr  = \"https://10.0.0.1:9301\"\n"
		     "cluster_name  = \"prod\"\n"
		     "disable_mlock = \"1\"\n"
		     "ui            = true\n"
		     "log_level     = \"debug\"\n"
		     "default_lease_ttl = \"1h30m\"\n"
		     "max_lease_ttl     = 86400\n");
	ck_assert_str_eq(c.storage_path, "/var/lib/custos");
	ck_assert_str_eq(c.node_id, "node-7");
	ck_assert_int_eq(c.n_listeners, 2);
	const struct cs_listener_config *l = &c.listeners[0];
	ck_assert_str_eq(l->address, "10.0.0.1:8300");
	ck_assert_str_eq(l->cluster_address, "10.0.0.1:9301");
	ck_assert(!l->tls_disable);
	ck_assert_str_eq(l->tls_cert_file, "/etc/c.pem");
	ck_assert_str_eq(l->tls_key_file, "/etc/k.pem");
	ck_assert_int_eq(l->tls_min_version, TLS1_3_VERSION);
	ck_assert_uint_eq(l->max_request_size, 1048576);
	l = &c.listeners[1];
	ck_assert_str_eq(l->address, "[::1]:8400");
	ck_assert_str_eq(l->cluster_address, "[::1]:8401");
	ck_assert(l->tls_disable);
	ck_assert_ptr_null(l->tls_cert_file);
	ck_assert_int_eq(l->tls_min_version, TLS1_2_VERSION);
	ck_assert_uint_eq(l->max_request_size, CS_DEFAULT_MAX_REQUEST_SIZE);
	ck_assert_str_eq(c.api_addr, "https://vault.example:8300");
	ck_assert_str_eq(c.cluster_addr, "https://10.0.0.1:9301");
	ck_assert_str_eq(c.cluster_name, "prod");
	ck_assert(c.disable_mlock);
	ck_assert(c.ui);
	ck_assert_int_eq(c.log_level, CS_LOG_DEBUG);
	ck_assert_int_eq(c.default_lease_ttl, 5400);
	ck_assert_int_eq(c.max_lease_ttl, 86400);
	ck_assert(!c.dev);
	ck_assert_ptr_null(c.dev_root_token_id);
	cs_config_free(&c);
	ck_assert_ptr_null(c.storage_path);
	ck_assert_int_eq(c.n_listeners, 0);
}
END_TEST

START_TEST(test_defaults)
{
	struct cs_config c;
	parse_ok(&c, "storage \"raft\" { path = \"/d\" }\n"
		     "listener \"tcp\" { tls_disable = true }\n");
	char host[HOST_NAME_MAX + 1] = "";
	gethostname(host, sizeof host);
	host[HOST_NAME_MAX] = '\0';
	ck_assert_str_eq(c.node_id, host[0] ? host : "node-1");
	ck_assert_int_eq(c.n_listeners, 1);
	ck_assert_str_eq(c.listeners[0].address, "127.0.0.1:8200");
	ck_assert_str_eq(c.listeners[0].cluster_address, "127.0.0.1:8201");
	ck_assert_int_eq(c.listeners[0].tls_min_version, TLS1_2_VERSION);
	ck_assert_uint_eq(c.listeners[0].max_request_size, CS_DEFAULT_MAX_REQUEST_SIZE);
	ck_assert_str_eq(c.api_addr, "http://127.0.0.1:8200");
	ck_assert_str_eq(c.cluster_addr, "https://127.0.0.1:8201");
	ck_assert_ptr_null(c.cluster_name);
	ck_assert(!c.disable_mlock);
	ck_assert(!c.ui);
	ck_assert_int_eq(c.log_level, CS_LOG_INFO);
	ck_assert_int_eq(c.default_lease_ttl, CS_DEFAULT_LEASE_TTL);
	ck_assert_int_eq(c.max_lease_ttl, CS_DEFAULT_LEASE_TTL);
	cs_config_free(&c);

	/* TLS listener: https api_addr; derived cluster port; negative size → default. */
	parse_ok(&c, STORAGE "listener \"tcp\" {\n  address = \"0.0.0.0:9000\"\n"
			     "  tls_cert_file = \"c\"\n  tls_key_file = \"k\"\n"
			     "  max_request_size = -1\n}\n"
			     "default_lease_ttl = \"2d\"\nmax_lease_ttl = \"3600\"\n");
	ck_assert_str_eq(c.api_addr, "https://0.0.0.0:9000");
	ck_assert_str_eq(c.listeners[0].cluster_address, "0.0.0.0:9001");
	ck_assert_str_eq(c.cluster_addr, "https://0.0.0.0:9001");
	ck_assert_uint_eq(c.listeners[0].max_request_size, CS_DEFAULT_MAX_REQUEST_SIZE);
	ck_assert_int_eq(c.default_lease_ttl, 2 * 86400);
	ck_assert_int_eq(c.max_lease_ttl, 3600);
	cs_config_free(&c);

	/* Port 0 (pick one) keeps the cluster port ephemeral too. */
	parse_ok(&c, STORAGE "listener \"tcp\" { address = \"127.0.0.1:0\" tls_disable = true }\n");
	ck_assert_str_eq(c.listeners[0].cluster_address, "127.0.0.1:0");
	cs_config_free(&c);
}
END_TEST

START_TEST(test_json_config)
{
	struct cs_config c;
	parse_ok(&c, "{\n"
		     "  \"storage\": {\"raft\": {\"path\": \"/j\", \"node_id\": \"jn\"}},\n"
		     "  \"listener\": [\n"
		     "    {\"tcp\": {\"address\": \"127.0.0.1:8200\", \"tls_disable\": true}},\n"
		     "    {\"tcp\": {\"address\": \"127.0.0.1:8300\", \"tls_disable\": \"1\",\n"
		     "             \"max_request_size\": 2048}}\n"
		     "  ],\n"
		     "  \"ui\": \"false\", \"disable_mlock\": true,\n"
		     "  \"log_level\": \"warn\", \"default_lease_ttl\": 60\n"
		     "}\n");
	ck_assert_str_eq(c.storage_path, "/j");
	ck_assert_str_eq(c.node_id, "jn");
	ck_assert_int_eq(c.n_listeners, 2);
	ck_assert_str_eq(c.listeners[1].address, "127.0.0.1:8300");
	ck_assert_uint_eq(c.listeners[1].max_request_size, 2048);
	ck_assert(c.listeners[1].tls_disable);
	ck_assert(!c.ui);
	ck_assert(c.disable_mlock);
	ck_assert_int_eq(c.log_level, CS_LOG_WARN);
	ck_assert_int_eq(c.default_lease_ttl, 60);
	cs_config_free(&c);

	/* Errors in JSON carry lines too. */
	parse_fails("{\n \"storage\": {\"raft\": {\"path\": \"/j\"}},\n"
		    " \"listener\": {\"tcp\": {\"tls_disable\": true,\n"
		    "   \"bogus\": 1}}\n}\n",
		    4, "unknown key \"bogus\" in listener");
}
END_TEST

START_TEST(test_unknown_keys)
{
	parse_fails(STORAGE PLAIN_LISTENER "\nbogus_key = 1\n", 10, "unknown key \"bogus_key\"");
	parse_fails("storage \"raft\" {\n  path = \"/d\"\n  retry_joins = []\n}\n" PLAIN_LISTENER,
		    3, "unknown key \"retry_joins\" in storage");
	parse_fails(STORAGE "listener \"tcp\" {\n  address = \"127.0.0.1:1\"\n  tls_disable = "
			    "true\n  frobnicate = \"x\"\n}\n",
		    8, "unknown key \"frobnicate\" in listener");
	/* seal stanzas exist now (server/seal_config.h): unknown keys inside them fail. */
	parse_fails(STORAGE PLAIN_LISTENER "seal \"transit\" {\n  frobnicate = \"x\"\n}\n", 10,
		    "unknown key \"frobnicate\" in seal \"transit\"");
	parse_fails(STORAGE PLAIN_LISTENER "seal \"awskms\" {}\n", 9,
		    "unsupported seal type \"awskms\"");
}
END_TEST

START_TEST(test_wrong_types)
{
	parse_fails(STORAGE PLAIN_LISTENER "api_addr = 8200\n", 9,
		    "api_addr must be a string, not number");
	parse_fails("storage \"raft\" {\n  path = [\"/d\"]\n}\n" PLAIN_LISTENER, 2,
		    "storage path must be a string, not list");
	parse_fails(STORAGE "listener \"tcp\" {\n  tls_disable = { x = 1 }\n}\n", 6,
		    "tls_disable must be a boolean, not object");
	parse_fails(STORAGE PLAIN_LISTENER "ui = 1\n", 9, "ui must be a boolean, not number");
	parse_fails(STORAGE "listener \"tcp\" {\n  tls_disable = true\n  max_request_size = "
			    "\"big\"\n}\n",
		    7, "max_request_size: invalid integer \"big\"");
	parse_fails(STORAGE "listener \"tcp\" {\n  tls_disable = true\n  max_request_size = "
			    "1.5\n}\n",
		    7, "max_request_size: invalid integer");
	parse_fails(STORAGE PLAIN_LISTENER "default_lease_ttl = \"forever\"\n", 9,
		    "default_lease_ttl: invalid duration \"forever\"");
	parse_fails(STORAGE PLAIN_LISTENER "max_lease_ttl = -5\n", 9,
		    "max_lease_ttl: invalid duration");
	parse_fails(STORAGE PLAIN_LISTENER "max_lease_ttl = true\n", 9,
		    "max_lease_ttl must be a duration, not bool");
	parse_fails(STORAGE PLAIN_LISTENER "log_level = \"loud\"\n", 9,
		    "log_level: unknown level \"loud\"");
	parse_fails(STORAGE PLAIN_LISTENER "storage = \"raft\"\n", 9,
		    "storage must be a block, not string");
	parse_fails(STORAGE PLAIN_LISTENER "listener \"tcp\" \"extra\" {}\n", 9,
		    "unknown key \"extra\" in listener");
	parse_fails(STORAGE PLAIN_LISTENER "listener = { tcp = \"x\" }\n", 9,
		    "listener \"tcp\" must be a block, not string");
}
END_TEST

START_TEST(test_bad_bool)
{
	parse_fails(STORAGE PLAIN_LISTENER "disable_mlock = \"perhaps\"\n", 9,
		    "disable_mlock: invalid boolean \"perhaps\"");
	parse_fails(STORAGE "listener \"tcp\" {\n  tls_disable = \"yes\"\n}\n", 6,
		    "tls_disable: invalid boolean \"yes\"");
}
END_TEST

/* Vault 1.20's allow_audit_log_prefixing: top level, false unless set, a checked boolean. */
START_TEST(test_allow_audit_log_prefixing)
{
	struct cs_config c;
	parse_ok(&c, STORAGE PLAIN_LISTENER);
	ck_assert(!c.allow_audit_log_prefixing);
	cs_config_free(&c);
	parse_ok(&c, STORAGE PLAIN_LISTENER "allow_audit_log_prefixing = true\n");
	ck_assert(c.allow_audit_log_prefixing);
	cs_config_free(&c);
	parse_ok(&c, "{\"storage\": {\"raft\": {\"path\": \"/j\"}},"
		     " \"listener\": {\"tcp\": {\"tls_disable\": true}},"
		     " \"allow_audit_log_prefixing\": \"true\"}");
	ck_assert(c.allow_audit_log_prefixing);
	cs_config_free(&c);
	parse_fails(STORAGE PLAIN_LISTENER "allow_audit_log_prefixing = \"sometimes\"\n", 9,
		    "allow_audit_log_prefixing: invalid boolean");
	parse_fails(STORAGE PLAIN_LISTENER "allow_audit_log_prefixing = [true]\n", 9,
		    "allow_audit_log_prefixing must be a boolean");
	/* it is a server key, not a storage or listener one */
	parse_fails("storage \"raft\" {\n  path = \"/d\"\n  allow_audit_log_prefixing = "
		    "true\n}\n" PLAIN_LISTENER,
		    3, "unknown key \"allow_audit_log_prefixing\" in storage");
}
END_TEST

/* Core dumps stay off unless the file asks for them (issue 9 §1.8). */
START_TEST(test_allow_core_dumps)
{
	struct cs_config c;
	parse_ok(&c, STORAGE PLAIN_LISTENER);
	ck_assert(!c.allow_core_dumps);
	cs_config_free(&c);
	parse_ok(&c, STORAGE PLAIN_LISTENER "allow_core_dumps = true\n");
	ck_assert(c.allow_core_dumps);
	cs_config_free(&c);
	parse_fails(STORAGE PLAIN_LISTENER "allow_core_dumps = \"sometimes\"\n", 9,
		    "allow_core_dumps: invalid boolean \"sometimes\"");
}
END_TEST

START_TEST(test_bad_address)
{
	static const char *bad[] = {"localhost", "host:99999", "host:80a", ":80",
				    "host:",     "::1:80",     "[::1:80",  "h:123456"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char text[512];
		snprintf(text, sizeof text,
			 STORAGE
			 "listener \"tcp\" {\n  tls_disable = true\n  address = \"%s\"\n}\n",
			 bad[i]);
		parse_fails(text, 7, "address: invalid address");
	}
	parse_fails(STORAGE "listener \"tcp\" {\n  tls_disable = true\n"
			    "  cluster_address = \"nope\"\n}\n",
		    7, "cluster_address: invalid address \"nope\"");
	/* The derived cluster port would not exist. */
	parse_fails(STORAGE "\nlistener \"tcp\" {\n  tls_disable = true\n"
			    "  address = \"127.0.0.1:65535\"\n}\n",
		    6, "cannot derive cluster_address");
	struct cs_config c;
	parse_ok(&c, STORAGE "listener \"tcp\" {\n  tls_disable = true\n"
			     "  address = \"127.0.0.1:65535\" cluster_address = \"h:1\"\n}\n");
	cs_config_free(&c);
}
END_TEST

START_TEST(test_bad_tls)
{
	parse_fails(STORAGE "listener \"tcp\" {\n  address = \"127.0.0.1:1\"\n"
			    "  tls_cert_file = \"c\"\n  tls_key_file = \"k\"\n"
			    "  tls_min_version = \"tls10\"\n}\n",
		    9, "tls_min_version: unsupported \"tls10\"");
	parse_fails(STORAGE "listener \"tcp\" {\n  tls_disable = true\n"
			    "  tls_min_version = 12\n}\n",
		    7, "tls_min_version must be a string");
	/* TLS on (the default) without cert and key: the listener's line. */
	parse_fails(STORAGE PLAIN_LISTENER "\nlistener \"tcp\" {\n  address = \"127.0.0.1:1\"\n}\n",
		    10, "tls_cert_file and tls_key_file are required");
	parse_fails(STORAGE "listener \"tcp\" {\n  tls_disable = false\n"
			    "  tls_cert_file = \"c\"\n}\n",
		    5, "tls_cert_file and tls_key_file are required");
	parse_fails(STORAGE "listener \"tcp\" {\n  tls_key_file = \"k\"\n"
			    "  tls_cert_file = \"\"\n}\n",
		    5, "tls_cert_file and tls_key_file are required");
}
END_TEST

START_TEST(test_storage_and_listener_rules)
{
	parse_fails(PLAIN_LISTENER "ui = true\n", 1, "a storage \"raft\" block is required");
	parse_fails("", 1, "a storage \"raft\" block is required");
	parse_fails(STORAGE, 1, "a listener \"tcp\" block is required");
	parse_fails(PLAIN_LISTENER "\nstorage \"raft\" {\n  node_id = \"x\"\n}\n", 6,
		    "storage \"raft\" requires a path");
	parse_fails(PLAIN_LISTENER "storage \"raft\" {\n  path = \"\"\n}\n", 6,
		    "storage \"raft\" requires a path");
	parse_fails(PLAIN_LISTENER "\nstorage \"file\" {\n  path = \"/x\"\n}\n", 6,
		    "unsupported storage type \"file\"");
	parse_fails(PLAIN_LISTENER "storage {\n  path = \"/x\"\n}\n", 6,
		    "storage \"path\" must be a block, not string");
	parse_fails(PLAIN_LISTENER "storage {}\n", 5, "storage block needs a type");
	parse_fails(STORAGE "storage \"raft\" {\n  path = \"/y\"\n}\n" PLAIN_LISTENER, 5,
		    "only one storage block is permitted");
	parse_fails(STORAGE "listener \"unix\" {\n  address = \"/run/s\"\n}\n", 5,
		    "unsupported listener type \"unix\"");

	/* CS_MAX_LISTENERS fit; one more is an error at its own line. */
	char text[2048] = STORAGE;
	for (int i = 0; i < CS_MAX_LISTENERS; i++) {
		char l[128];
		snprintf(l, sizeof l,
			 "listener \"tcp\" { address = \"127.0.0.1:%d\" tls_disable = true }\n",
			 8200 + 2 * i);
		strcat(text, l);
	}
	struct cs_config c;
	parse_ok(&c, text);
	ck_assert_int_eq(c.n_listeners, CS_MAX_LISTENERS);
	ck_assert_str_eq(c.listeners[CS_MAX_LISTENERS - 1].cluster_address, "127.0.0.1:8207");
	cs_config_free(&c);
	strcat(text, "listener \"tcp\" { tls_disable = true }\n");
	parse_fails(text, 5 + CS_MAX_LISTENERS, "too many listeners");
}
END_TEST

START_TEST(test_syntax_errors_name_file_and_line)
{
	parse_fails(STORAGE "listener \"tcp\" {\n  address = \"unterminated\n}\n", 6,
		    "unterminated string");
	parse_fails("storage \"raft\" {\n  path = \"/d\"\n", 1, "'{' is never closed");
	parse_fails("a = 1\nb = nope\n", 2, "invalid value nope");
}
END_TEST

/* Later files override scalars and append listeners. */
START_TEST(test_load_file_and_directory)
{
	char dir[] = "/tmp/cs_config_test_XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char path[512];
	FILE *f;
#define WRITE(name, text)                                                                          \
	do {                                                                                       \
		snprintf(path, sizeof path, "%s/%s", dir, name);                                   \
		f = fopen(path, "w");                                                              \
		ck_assert_ptr_nonnull(f);                                                          \
		fputs(text, f);                                                                    \
		fclose(f);                                                                         \
	} while (0)

	WRITE("10-storage.hcl", STORAGE "log_level = \"error\"\nui = true\n");
	WRITE("20-listener.json", "{\"listener\": {\"tcp\": {\"address\": \"127.0.0.1:7000\",\n"
				  "  \"tls_disable\": true}}, \"log_level\": \"trace\"}\n");
	WRITE("30-more.hcl", PLAIN_LISTENER "api_addr = \"http://x:1\"\n");
	WRITE("README.txt", "this = is not config {\n");
	WRITE(".hidden.hcl", "broken {\n");
	snprintf(path, sizeof path, "%s/sub.hcl", dir);
	ck_assert_int_eq(mkdir(path, 0700), 0);

	struct cs_config c;
	cs_config_init(&c);
	int rc = cs_config_load(&c, dir, err, sizeof err);
	ck_assert_msg(rc == 0, "load failed: %s", err);
	ck_assert_str_eq(c.storage_path, "/data");
	ck_assert_int_eq(c.n_listeners, 2);
	ck_assert_str_eq(c.listeners[0].address, "127.0.0.1:7000");
	ck_assert_str_eq(c.listeners[1].address, "127.0.0.1:8200");
	ck_assert_int_eq(c.log_level, CS_LOG_TRACE);
	ck_assert(c.ui);
	ck_assert_str_eq(c.api_addr, "http://x:1");
	ck_assert_str_eq(c.cluster_addr, "https://127.0.0.1:7001");
	cs_config_free(&c);

	/* A single file. */
	snprintf(path, sizeof path, "%s/10-storage.hcl", dir);
	cs_config_init(&c);
	rc = cs_config_load(&c, path, err, sizeof err);
	ck_assert_int_eq(rc, CS_EINVAL);
	ck_assert_msg(strstr(err, "10-storage.hcl:1: a listener \"tcp\" block is required"), "%s",
		      err);
	cs_config_free(&c);
	snprintf(path, sizeof path, "%s/30-more.hcl", dir);
	cs_config_init(&c);
	rc = cs_config_load(&c, path, err, sizeof err);
	ck_assert_int_eq(rc, CS_EINVAL);
	ck_assert_msg(strstr(err, "30-more.hcl:1: a storage \"raft\" block is required"), "%s",
		      err);
	cs_config_free(&c);

	/* An error names the file it is in, with its line. */
	WRITE("25-bad.hcl", "\n\nui = \"maybe\"\n");
	cs_config_init(&c);
	rc = cs_config_load(&c, dir, err, sizeof err);
	ck_assert_int_eq(rc, CS_EINVAL);
	ck_assert_msg(strstr(err, "/25-bad.hcl:3: ui: invalid boolean"), "%s", err);
	cs_config_free(&c);
	snprintf(path, sizeof path, "%s/25-bad.hcl", dir);
	unlink(path);

	/* Storage blocks in two files: the later one wins. */
	WRITE("40-storage.hcl", "storage \"raft\" { path = \"/other\" }\n");
	cs_config_init(&c);
	rc = cs_config_load(&c, dir, err, sizeof err);
	ck_assert_msg(rc == 0, "%s", err);
	ck_assert_str_eq(c.storage_path, "/other");
	ck_assert_str_eq(c.node_id, "n1");
	cs_config_free(&c);

	/* Missing paths and empty directories. */
	snprintf(path, sizeof path, "%s/nope.hcl", dir);
	cs_config_init(&c);
	ck_assert_int_eq(cs_config_load(&c, path, err, sizeof err), CS_EINVAL);
	ck_assert_msg(strstr(err, "nope.hcl: No such file"), "%s", err);
	cs_config_free(&c);
	snprintf(path, sizeof path, "%s/sub.hcl", dir);
	cs_config_init(&c);
	ck_assert_int_eq(cs_config_load(&c, path, err, sizeof err), CS_EINVAL);
	ck_assert_msg(strstr(err, "no *.hcl or *.json"), "%s", err);
	cs_config_free(&c);
	rmdir(path);

	/* A directory without a storage block names the directory. */
	static const char *names[] = {"10-storage.hcl", "40-storage.hcl", "README.txt",
				      ".hidden.hcl"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		unlink(path);
	}
	cs_config_init(&c);
	ck_assert_int_eq(cs_config_load(&c, dir, err, sizeof err), CS_EINVAL);
	ck_assert_msg(strstr(err, "a storage \"raft\" block is required") &&
			  strncmp(err, dir, strlen(dir)) == 0,
		      "%s", err);
	cs_config_free(&c);

	snprintf(path, sizeof path, "%s/20-listener.json", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/30-more.hcl", dir);
	unlink(path);
	ck_assert_int_eq(rmdir(dir), 0);
#undef WRITE
}
END_TEST

/* The -dev path fills the struct by hand and relies on cs_config_finish. */
START_TEST(test_retry_join)
{
	char ca_path[] = "/tmp/custos-test-ca-XXXXXX";
	int fd = mkstemp(ca_path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "PEM-CA", 6), 6);
	close(fd);
	char text[1024];
	snprintf(text, sizeof text,
		 "storage \"raft\" {\n  path = \"/d\"\n  node_id = \"n2\"\n"
		 "  retry_join_as_non_voter = true\n"
		 "  retry_join {\n    leader_api_addr = \"http://127.0.0.1:8200\"\n  }\n"
		 "  unsafe_allow_plaintext_join = true\n"
		 "  retry_join {\n    leader_api_addr = \"https://10.0.0.3:8200\"\n"
		 "    leader_ca_cert_file = \"%s\"\n    leader_tls_servername = \"v3\"\n  }\n"
		 "}\n" PLAIN_LISTENER,
		 ca_path);
	struct cs_config c;
	parse_ok(&c, text);
	ck_assert_int_eq(c.n_retry_join, 2);
	ck_assert(c.retry_join_as_non_voter);
	ck_assert_str_eq(c.retry_join[0].leader_api_addr, "http://127.0.0.1:8200");
	ck_assert_ptr_null(c.retry_join[0].leader_ca_cert);
	ck_assert_str_eq(c.retry_join[1].leader_ca_cert, "PEM-CA");
	ck_assert_str_eq(c.retry_join[1].leader_tls_servername, "v3");
	cs_config_free(&c);

	/* JSON: a list of blocks. */
	parse_ok(&c, "{\"storage\": {\"raft\": {\"path\": \"/d\", "
		     "\"unsafe_allow_plaintext_join\": true, \"retry_join\": ["
		     "{\"leader_api_addr\": \"http://a:1\"}, {\"leader_api_addr\": "
		     "\"http://b:2\"}]}},"
		     " \"listener\": {\"tcp\": {\"address\": \"127.0.0.1:8200\", "
		     "\"tls_disable\": true}}}");
	ck_assert_int_eq(c.n_retry_join, 2);
	ck_assert_str_eq(c.retry_join[1].leader_api_addr, "http://b:2");
	cs_config_free(&c);

	parse_fails("storage \"raft\" {\n  path = \"/d\"\n  retry_join {\n"
		    "    leader_api_addr = \"10.0.0.1:8200\"\n  }\n}\n" PLAIN_LISTENER,
		    3, "http:// or https://");
	/* http:// leaders only with the explicit, unsafe opt-in (the join's challenge,
	 * answer and node certificate would cross in clear). */
	parse_fails("storage \"raft\" {\n  path = \"/d\"\n  retry_join {\n"
		    "    leader_api_addr = \"https://10.0.0.1:8200\"\n  }\n  retry_join {\n"
		    "    leader_api_addr = \"http://10.0.0.2:8200\"\n  }\n}\n" PLAIN_LISTENER,
		    6, "must be an https:// URL");
	parse_fails("storage \"raft\" {\n  path = \"/d\"\n  retry_join {\n"
		    "    leader_api_addr = \"http://10.0.0.2:8200\"\n  }\n"
		    "  unsafe_allow_plaintext_join = \"yes\"\n}\n" PLAIN_LISTENER,
		    6, "unsafe_allow_plaintext_join");
	parse_fails("storage \"raft\" {\n  path = \"/d\"\n  retry_join {\n"
		    "    auto_join = \"provider=aws\"\n  }\n}\n" PLAIN_LISTENER,
		    4, "not supported");
	parse_fails("storage \"raft\" {\n  path = \"/d\"\n  retry_join {\n"
		    "    leader_api_addr = \"http://x:1\"\n    bogus = 1\n  }\n}\n" PLAIN_LISTENER,
		    5, "unknown key");
	parse_fails("storage \"raft\" {\n  path = \"/d\"\n  retry_join {\n"
		    "    leader_api_addr = \"http://x:1\"\n"
		    "    leader_ca_cert_file = \"/nonexistent/ca.pem\"\n  }\n}\n" PLAIN_LISTENER,
		    5, "cannot read");
	unlink(ca_path);
}
END_TEST

START_TEST(test_cluster_ca_files)
{
	struct cs_config c;
	parse_ok(&c, STORAGE "listener \"tcp\" {\n  address = \"127.0.0.1:8200\"\n"
			     "  tls_disable = true\n  cluster_ca_cert_file = \"/e/ca.pem\"\n"
			     "  cluster_ca_key_file = \"/e/ca.key\"\n}\n");
	ck_assert_str_eq(c.listeners[0].cluster_ca_cert_file, "/e/ca.pem");
	ck_assert_str_eq(c.listeners[0].cluster_ca_key_file, "/e/ca.key");
	cs_config_free(&c);
	parse_fails(STORAGE "listener \"tcp\" {\n  address = \"127.0.0.1:8200\"\n"
			    "  tls_disable = true\n  cluster_ca_key_file = \"/e/ca.key\"\n}\n",
		    5, "go together");
	parse_ok(&c, "storage \"raft\" {\n  path = \"/d\"\n  performance_multiplier = "
		     "3\n}\n" PLAIN_LISTENER);
	ck_assert_int_eq(c.raft_performance_multiplier, 3);
	cs_config_free(&c);
	parse_fails("storage \"raft\" {\n  path = \"/d\"\n  performance_multiplier = "
		    "11\n}\n" PLAIN_LISTENER,
		    3, "between 0 and 10");
}
END_TEST

START_TEST(test_listener_limits_and_spool)
{
	struct cs_config c;
	parse_ok(&c, STORAGE PLAIN_LISTENER);
	ck_assert_int_eq(c.listeners[0].http_read_header_timeout_ms, 0); /* 0: listener default */
	ck_assert_int_eq(c.listeners[0].http_read_timeout_ms, 0);
	ck_assert_int_eq(c.listeners[0].max_connections, 0);
	ck_assert_ptr_null(c.snapshot_spool_dir);
	ck_assert_int_eq(c.snapshot_spool_reserve_percent, CS_DEFAULT_SPOOL_RESERVE_PERCENT);
	cs_config_free(&c);
	parse_ok(&c,
		 STORAGE "listener \"tcp\" {\n  tls_disable = true\n"
			 "  http_read_header_timeout = \"5s\"\n  http_read_timeout = \"2m\"\n"
			 "  max_connections = 100\n}\n"
			 "snapshot_spool_dir = \"/spool\"\nsnapshot_spool_reserve_percent = 25\n");
	ck_assert_int_eq(c.listeners[0].http_read_header_timeout_ms, 5000);
	ck_assert_int_eq(c.listeners[0].http_read_timeout_ms, 120000);
	ck_assert_int_eq(c.listeners[0].max_connections, 100);
	ck_assert_str_eq(c.snapshot_spool_dir, "/spool");
	ck_assert_int_eq(c.snapshot_spool_reserve_percent, 25);
	cs_config_free(&c);
	/* "0" turns a timeout off, as in Vault */
	parse_ok(&c, STORAGE "listener \"tcp\" {\n  tls_disable = true\n"
			     "  http_read_timeout = 0\n}\nsnapshot_spool_reserve_percent = 0\n");
	ck_assert_int_lt(c.listeners[0].http_read_timeout_ms, 0);
	ck_assert_int_eq(c.snapshot_spool_reserve_percent, 0);
	cs_config_free(&c);
	parse_fails(STORAGE "listener \"tcp\" {\n  tls_disable = true\n  max_connections = 0\n}\n",
		    7, "max_connections");
	parse_fails(STORAGE "listener \"tcp\" {\n  tls_disable = true\n"
			    "  http_read_timeout = \"soon\"\n}\n",
		    7, "http_read_timeout");
	parse_fails(STORAGE PLAIN_LISTENER "snapshot_spool_reserve_percent = 100\n", 9,
		    "snapshot_spool_reserve_percent");
}
END_TEST

START_TEST(test_finish_by_hand)
{
	struct cs_config c;
	cs_config_init(&c);
	c.dev = true;
	c.storage_path = strdup("/tmp/x");
	c.node_id = strdup("dev");
	c.n_listeners = 1;
	c.listeners[0].address = strdup("127.0.0.1:8250");
	c.listeners[0].tls_disable = true;
	cs_config_finish(&c);
	ck_assert_str_eq(c.listeners[0].cluster_address, "127.0.0.1:8251");
	ck_assert_str_eq(c.api_addr, "http://127.0.0.1:8250");
	ck_assert_str_eq(c.cluster_addr, "https://127.0.0.1:8251");
	ck_assert_int_eq(c.listeners[0].tls_min_version, TLS1_2_VERSION);
	ck_assert_uint_eq(c.listeners[0].max_request_size, CS_DEFAULT_MAX_REQUEST_SIZE);
	ck_assert_str_eq(c.node_id, "dev");
	/* Idempotent: a second call changes nothing and leaks nothing. */
	cs_config_finish(&c);
	ck_assert_str_eq(c.api_addr, "http://127.0.0.1:8250");
	cs_config_free(&c);

	/* Even a zeroed struct gets usable listener defaults. */
	memset(&c, 0, sizeof c);
	c.n_listeners = 1;
	cs_config_finish(&c);
	ck_assert_str_eq(c.listeners[0].address, "127.0.0.1:8200");
	ck_assert_str_eq(c.api_addr, "https://127.0.0.1:8200");
	ck_assert_int_eq(c.listeners[0].tls_min_version, TLS1_2_VERSION);
	ck_assert_ptr_nonnull(c.node_id);
	cs_config_free(&c);
}
END_TEST

START_TEST(test_rotation_min_operations)
{
	struct cs_config c;
	parse_ok(&c, STORAGE PLAIN_LISTENER);
	ck_assert_int_eq(c.rotation_min_operations, 0); /* Vault's 1000000 */
	cs_config_free(&c);
	parse_ok(&c, STORAGE PLAIN_LISTENER "rotation_min_operations = 100\n");
	ck_assert_int_eq(c.rotation_min_operations, 100);
	cs_config_free(&c);
	parse_fails(STORAGE PLAIN_LISTENER "rotation_min_operations = 0\n", 9,
		    "rotation_min_operations must be 1..1000000");
	parse_fails(STORAGE PLAIN_LISTENER "rotation_min_operations = 1000001\n", 9,
		    "rotation_min_operations must be 1..1000000");
	parse_fails(STORAGE PLAIN_LISTENER "rotation_min_operations = \"few\"\n", 9,
		    "rotation_min_operations: invalid integer");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_full_config_round_trip);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_retry_join);
	tcase_add_test(tc, test_cluster_ca_files);
	tcase_add_test(tc, test_json_config);
	tcase_add_test(tc, test_unknown_keys);
	tcase_add_test(tc, test_wrong_types);
	tcase_add_test(tc, test_bad_bool);
	tcase_add_test(tc, test_allow_audit_log_prefixing);
	tcase_add_test(tc, test_allow_core_dumps);
	tcase_add_test(tc, test_bad_address);
	tcase_add_test(tc, test_bad_tls);
	tcase_add_test(tc, test_storage_and_listener_rules);
	tcase_add_test(tc, test_syntax_errors_name_file_and_line);
	tcase_add_test(tc, test_load_file_and_directory);
	tcase_add_test(tc, test_finish_by_hand);
	tcase_add_test(tc, test_rotation_min_operations);
	tcase_add_test(tc, test_listener_limits_and_spool);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
