/* Unit tests for auto-unseal seals: seal stanzas and Vault's environment variables
 * (server/seal_config.c), the wrapped-key envelope, transit responses and the retry
 * backoff (server/seal_wrap.c). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"
#include "server/config.h"
#include "server/seal_config.h"
#include "server/seal_wrap.h"

#define BASE                                                                                       \
	"storage \"raft\" {\n  path = \"/data\"\n}\n"                                              \
	"listener \"tcp\" {\n  address = \"127.0.0.1:8200\"\n  tls_disable = true\n}\n"

static char err[512];

static int parse(struct cs_config *c, const char *text)
{
	cs_config_init(c);
	return cs_config_parse(c, text, strlen(text), "t.hcl", err, sizeof err);
}

START_TEST(transit_stanza)
{
	struct cs_config c;
	int rc = parse(&c, BASE "seal \"transit\" {\n"
				"  address = \"https://10.0.0.9:8200/\"\n"
				"  token = \"s.secret\"\n"
				"  key_name = \"unseal\"\n"
				"  mount_path = \"/seals/transit/\"\n"
				"  tls_server_name = \"seal.example\"\n"
				"  tls_skip_verify = \"true\"\n"
				"  disable_renewal = true\n"
				"}\n");
	ck_assert_msg(rc == 0, "%s", err);
	ck_assert_int_eq(c.n_seals, 1);
	struct cs_seal_params *p = &c.seals[0];
	ck_assert_int_eq(p->kind, CS_SEAL_TRANSIT);
	ck_assert(!p->disabled && p->tls_skip_verify && p->disable_renewal);
	ck_assert_str_eq(p->token, "s.secret");
	ck_assert_int_eq(cs_seal_params_check(p, err, sizeof err), 0);
	/* Vault trims the slashes of the mount path and of the address. */
	ck_assert_str_eq(p->mount_path, "seals/transit");
	ck_assert_str_eq(p->address, "https://10.0.0.9:8200");
	cs_config_free(&c);
}
END_TEST

START_TEST(pkcs11_stanza_and_migration_pairs)
{
	struct cs_config c;
	int rc =
	    parse(&c, BASE "seal \"pkcs11\" {\n  lib = \"/l.so\"\n  slot = \"0x1\"\n"
			   "  pin = \"1234\"\n  key_label = \"k\"\n"
			   "  mechanism = \"CKM_RSA_PKCS_OAEP\"\n  generate_key = \"true\"\n}\n"
			   "seal \"transit\" {\n  disabled = \"true\"\n  address = "
			   "\"http://a:1\"\n  key_name = \"k\"\n}\n");
	ck_assert_msg(rc == 0, "%s", err);
	ck_assert_int_eq(c.n_seals, 2);
	ck_assert_int_eq(c.seals[0].kind, CS_SEAL_PKCS11);
	ck_assert_int_eq(c.seals[0].slot, 1);
	ck_assert_uint_eq(c.seals[0].mechanism, CS_CKM_RSA_PKCS_OAEP);
	ck_assert(c.seals[0].generate_key);
	ck_assert(c.seals[1].disabled);
	ck_assert_int_eq(cs_seal_params_check(&c.seals[0], err, sizeof err), 0);
	cs_config_free(&c);

	/* Two enabled seals: Vault refuses, and so do we. */
	rc = parse(&c, BASE "seal \"pkcs11\" {}\nseal \"transit\" {}\n");
	ck_assert_int_eq(rc, CS_EINVAL);
	ck_assert_msg(strstr(err, "only one seal block may be enabled"), "%s", err);
	cs_config_free(&c);
	rc = parse(&c, BASE "seal \"shamir\" {\n disabled = true\n}\n"
			    "seal \"transit\" {}\nseal \"pkcs11\" {\n disabled = true\n}\n");
	ck_assert_int_eq(rc, CS_EINVAL);
	ck_assert_msg(strstr(err, "at most 2 seal blocks"), "%s", err);
	cs_config_free(&c);
}
END_TEST

START_TEST(bad_values)
{
	struct {
		const char *text, *what;
		int line;
	} cases[] = {
	    {"seal \"pkcs11\" {\n  mechanism = \"CKM_DES\"\n}\n", "mechanism: unsupported", 9},
	    {"seal \"pkcs11\" {\n  slot = \"-1\"\n}\n", "invalid slot", 9},
	    {"seal \"transit\" {\n  tls_skip_verify = \"maybe\"\n}\n", "invalid boolean", 9},
	    {"seal \"transit\" {\n  address = [\"x\"]\n}\n", "must be a string", 9},
	    {"seal \"transit\" {\n  lib = \"x\"\n}\n", "unknown key \"lib\"", 9},
	    {"seal \"gcpckms\" {}\n", "unsupported seal type", 8},
	};
	for (size_t i = 0; i < CS_ARRAY_LEN(cases); i++) {
		char text[512];
		snprintf(text, sizeof text, BASE "%s", cases[i].text);
		struct cs_config c;
		ck_assert_int_eq(parse(&c, text), CS_EINVAL);
		char prefix[32];
		snprintf(prefix, sizeof prefix, "t.hcl:%d: ", cases[i].line);
		ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0 &&
				  strstr(err, cases[i].what),
			      "case %zu: %s", i, err);
		cs_config_free(&c);
	}
}
END_TEST

static const char *fake_env(const char *name)
{
	static const char *const vars[][2] = {
	    {"VAULT_ADDR", "https://env:8200"},
	    {"VAULT_TOKEN", "s.fromenv"},
	    {"VAULT_TRANSIT_SEAL_KEY_NAME", "envkey"},
	    {"VAULT_SKIP_VERIFY", "true"},
	    {"VAULT_HSM_PIN", "vault-pin"},
	    {"BAO_HSM_PIN", "bao-pin"},
	    {"VAULT_HSM_TOKEN_LABEL", "tok"},
	    {"VAULT_HSM_MECHANISM", "0x1087"},
	};
	for (size_t i = 0; i < CS_ARRAY_LEN(vars); i++)
		if (strcmp(name, vars[i][0]) == 0)
			return vars[i][1];
	return NULL;
}

static const char *bad_env(const char *name)
{
	return strcmp(name, "VAULT_HSM_SLOT") == 0 ? "first" : NULL;
}

START_TEST(environment_overrides_the_file)
{
	struct cs_config c;
	ck_assert_int_eq(parse(&c, BASE "seal \"transit\" {\n  address = \"http://file:1\"\n"
					"  key_name = \"filekey\"\n  token = \"s.file\"\n}\n"
					"seal \"pkcs11\" {\n  disabled = true\n  pin = \"file\"\n"
					"  lib = \"/x.so\"\n  key_label = \"k\"\n}\n"),
			 0);
	struct cs_seal_params *t = &c.seals[0], *p = &c.seals[1];
	ck_assert_int_eq(cs_seal_params_apply_env(t, fake_env, err, sizeof err), 0);
	ck_assert_str_eq(t->address, "https://env:8200");
	ck_assert_str_eq(t->token, "s.fromenv");
	ck_assert_str_eq(t->key_name, "envkey");
	ck_assert(t->tls_skip_verify);
	ck_assert_int_eq(cs_seal_params_check(t, err, sizeof err), 0);
	ck_assert_str_eq(t->mount_path, "transit"); /* Vault's default mount */
	/* OpenBao's BAO_HSM_* win over VAULT_HSM_*. */
	ck_assert_int_eq(cs_seal_params_apply_env(p, fake_env, err, sizeof err), 0);
	ck_assert_str_eq(p->pin, "bao-pin");
	ck_assert_str_eq(p->token_label, "tok");
	ck_assert_uint_eq(p->mechanism, CS_CKM_AES_GCM);
	ck_assert_int_eq(cs_seal_params_check(p, err, sizeof err), 0);
	ck_assert_int_eq(cs_seal_params_apply_env(p, bad_env, err, sizeof err), CS_EINVAL);
	cs_config_free(&c);
}
END_TEST

START_TEST(required_parameters)
{
	struct cs_seal_params p;
	cs_seal_params_init(&p, CS_SEAL_TRANSIT);
	ck_assert_int_eq(cs_seal_params_check(&p, err, sizeof err), CS_EINVAL);
	ck_assert_msg(strstr(err, "address is required"), "%s", err);
	p.address = strdup("ftp://x");
	ck_assert_int_eq(cs_seal_params_check(&p, err, sizeof err), CS_EINVAL);
	free(p.address);
	p.address = strdup("http://x:1");
	ck_assert_int_eq(cs_seal_params_check(&p, err, sizeof err), CS_EINVAL);
	ck_assert_msg(strstr(err, "key_name is required"), "%s", err);
	p.key_name = strdup("a/../b");
	ck_assert_int_eq(cs_seal_params_check(&p, err, sizeof err), CS_EINVAL);
	cs_seal_params_free(&p);

	cs_seal_params_init(&p, CS_SEAL_PKCS11);
	p.lib = strdup("/l.so");
	p.pin = strdup("1");
	p.key_label = strdup("k");
	ck_assert_int_eq(cs_seal_params_check(&p, err, sizeof err), CS_EINVAL);
	ck_assert_msg(strstr(err, "slot or token_label"), "%s", err);
	p.slot = 0;
	ck_assert_int_eq(cs_seal_params_check(&p, err, sizeof err), 0);
	struct cs_seal_params q;
	cs_seal_params_copy(&q, &p);
	ck_assert_ptr_ne(q.pin, p.pin);
	ck_assert_str_eq(q.pin, "1");
	cs_seal_params_free(&q);
	cs_seal_params_free(&p);
	ck_assert_ptr_null(p.pin);
}
END_TEST

START_TEST(envelope_round_trip)
{
	struct cs_seal_envelope e = {.kind = CS_SEAL_TRANSIT, .ciphertext = "vault:v12:QUJD"};
	snprintf(e.key_id, sizeof e.key_id, "transit/unseal");
	char *js = NULL;
	ck_assert_int_eq(cs_seal_envelope_encode(&e, &js), 0);
	struct cs_seal_envelope d;
	ck_assert_int_eq(cs_seal_envelope_decode(js, strlen(js), &d), 0);
	ck_assert_int_eq(d.kind, CS_SEAL_TRANSIT);
	ck_assert_str_eq(d.ciphertext, "vault:v12:QUJD");
	ck_assert_str_eq(d.key_id, "transit/unseal");
	cs_seal_envelope_free(&d);
	free(js);

	uint8_t ct[48];
	for (size_t i = 0; i < sizeof ct; i++)
		ct[i] = (uint8_t)i;
	struct cs_seal_envelope g = {.kind = CS_SEAL_PKCS11,
				     .mechanism = CS_CKM_AES_GCM,
				     .ct = ct,
				     .ct_len = sizeof ct,
				     .iv_len = CS_SEAL_GCM_IV_LEN};
	memset(g.iv, 7, sizeof g.iv);
	snprintf(g.key_id, sizeof g.key_id, "root");
	ck_assert_int_eq(cs_seal_envelope_encode(&g, &js), 0);
	ck_assert_int_eq(cs_seal_envelope_decode(js, strlen(js), &d), 0);
	ck_assert_int_eq(d.kind, CS_SEAL_PKCS11);
	ck_assert_uint_eq(d.mechanism, CS_CKM_AES_GCM);
	ck_assert_uint_eq(d.ct_len, sizeof ct);
	ck_assert_mem_eq(d.ct, ct, sizeof ct);
	ck_assert_mem_eq(d.iv, g.iv, CS_SEAL_GCM_IV_LEN);
	cs_seal_envelope_free(&d);
	free(js);

	struct cs_seal_envelope o = {.kind = CS_SEAL_PKCS11,
				     .mechanism = CS_CKM_RSA_PKCS_OAEP,
				     .ct = ct,
				     .ct_len = sizeof ct,
				     .oaep_sha1 = true};
	ck_assert_int_eq(cs_seal_envelope_encode(&o, &js), 0);
	ck_assert_msg(strstr(js, "\"oaep_hash\":\"sha1\"") && !strstr(js, "\"iv\""), "%s", js);
	ck_assert_int_eq(cs_seal_envelope_decode(js, strlen(js), &d), 0);
	ck_assert(d.oaep_sha1);
	cs_seal_envelope_free(&d);
	free(js);
}
END_TEST

START_TEST(envelope_rejects)
{
	const char *bad[] = {
	    "",
	    "[]",
	    "{\"version\":2,\"type\":\"transit\",\"key_id\":\"k\",\"ciphertext\":\"vault:v1:x\"}",
	    "{\"version\":1,\"type\":\"shamir\",\"key_id\":\"k\",\"ciphertext\":\"vault:v1:x\"}",
	    "{\"version\":1,\"type\":\"transit\",\"key_id\":\"k\",\"ciphertext\":\"vault:v0:x\"}",
	    "{\"version\":1,\"type\":\"transit\",\"key_id\":\"k\",\"ciphertext\":\"vault:v1:\"}",
	    "{\"version\":1,\"type\":\"transit\",\"ciphertext\":\"vault:v1:x\"}",
	    "{\"version\":1,\"type\":\"pkcs11\",\"key_id\":\"k\",\"mechanism\":\"CKM_AES_GCM\","
	    "\"ciphertext\":\"AAEC\"}", /* GCM without its IV */
	    "{\"version\":1,\"type\":\"pkcs11\",\"key_id\":\"k\",\"mechanism\":\"CKM_AES_GCM\","
	    "\"iv\":\"AAEC\",\"ciphertext\":\"AAEC\"}", /* short IV */
	    "{\"version\":1,\"type\":\"pkcs11\",\"key_id\":\"k\",\"mechanism\":\"CKM_DES\","
	    "\"ciphertext\":\"AAEC\"}",
	    "{\"version\":1,\"type\":\"pkcs11\",\"key_id\":\"k\",\"mechanism\":"
	    "\"CKM_RSA_PKCS_OAEP\",\"ciphertext\":\"!!\"}",
	};
	for (size_t i = 0; i < CS_ARRAY_LEN(bad); i++) {
		struct cs_seal_envelope e;
		ck_assert_msg(cs_seal_envelope_decode(bad[i], strlen(bad[i]), &e) == CS_EINVAL,
			      "accepted <%s>", bad[i]);
		ck_assert_ptr_null(e.ciphertext);
		ck_assert_ptr_null(e.ct);
	}
}
END_TEST

START_TEST(transit_responses)
{
	uint8_t *out;
	size_t n;
	const char *ok = "{\"data\":{\"ciphertext\":\"vault:v1:abc\"}}";
	ck_assert_int_eq(
	    cs_transit_seal_response(200, ok, strlen(ok), "ciphertext", &out, &n, err, sizeof err),
	    0);
	ck_assert_str_eq((char *)out, "vault:v1:abc");
	free(out);
	const char *pt = "{\"data\":{\"plaintext\":\"aGVsbG8=\"}}";
	ck_assert_int_eq(
	    cs_transit_seal_response(200, pt, strlen(pt), "plaintext", &out, &n, err, sizeof err),
	    0);
	ck_assert_uint_eq(n, 5);
	ck_assert_mem_eq(out, "hello", 5);
	free(out);
	const char *denied = "{\"errors\":[\"permission denied\"]}";
	ck_assert_int_eq(cs_transit_seal_response(403, denied, strlen(denied), "plaintext", &out,
						  &n, err, sizeof err),
			 CS_EPERM);
	ck_assert_msg(strstr(err, "403") && strstr(err, "permission denied"), "%s", err);
	ck_assert_ptr_null(out);
	ck_assert_int_eq(
	    cs_transit_seal_response(503, "", 0, "plaintext", &out, &n, err, sizeof err), CS_EIO);
	const char *nodata = "{\"data\":{}}";
	ck_assert_int_eq(cs_transit_seal_response(200, nodata, strlen(nodata), "ciphertext", &out,
						  &n, err, sizeof err),
			 CS_EIO);
	const char *notb64 = "{\"data\":{\"plaintext\":\"%%%\"}}";
	ck_assert_int_eq(cs_transit_seal_response(200, notb64, strlen(notb64), "plaintext", &out,
						  &n, err, sizeof err),
			 CS_EIO);
	ck_assert_ptr_null(out);
}
END_TEST

START_TEST(backoff)
{
	ck_assert_uint_eq(cs_seal_backoff_ms(0), CS_SEAL_BACKOFF_MIN_MS);
	ck_assert_uint_eq(cs_seal_backoff_ms(1), 500);
	ck_assert_uint_eq(cs_seal_backoff_ms(2), 1000);
	ck_assert_uint_eq(cs_seal_backoff_ms(3), 2000);
	ck_assert_uint_eq(cs_seal_backoff_ms(5), 8000);
	ck_assert_uint_eq(cs_seal_backoff_ms(6), CS_SEAL_BACKOFF_MAX_MS);
	ck_assert_uint_eq(cs_seal_backoff_ms(1000000), CS_SEAL_BACKOFF_MAX_MS);
	for (int i = 1; i < 50; i++)
		ck_assert_uint_le(cs_seal_backoff_ms(i), cs_seal_backoff_ms(i + 1));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("seal_wrap");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, transit_stanza);
	tcase_add_test(tc, pkcs11_stanza_and_migration_pairs);
	tcase_add_test(tc, bad_values);
	tcase_add_test(tc, environment_overrides_the_file);
	tcase_add_test(tc, required_parameters);
	tcase_add_test(tc, envelope_round_trip);
	tcase_add_test(tc, envelope_rejects);
	tcase_add_test(tc, transit_responses);
	tcase_add_test(tc, backoff);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	cs_log_set_level(CS_LOG_ERROR);
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
