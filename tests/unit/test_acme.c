/* ACME's pure rules (engines/acme_state.c): identifiers, which challenges they get, the
 * order and authorization state machine, identifiers against a role, CSR-vs-order
 * matching and the nonce window (good once, only from its window, not after its TTL). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "engines/acme_internal.h"
#include "lib/err.h"
#include "lib/util.h"

static int parse_id(const char *json, struct cs_acme_identifier *id, const char **type)
{
	cJSON *o = cJSON_Parse(json);
	const char *why;
	int rc = cs_acme_identifier_parse(o, id, type, &why);
	cJSON_Delete(o);
	return rc;
}

START_TEST(test_identifiers)
{
	struct cs_acme_identifier id;
	const char *type;
	ck_assert_int_eq(parse_id("{\"type\":\"dns\",\"value\":\"WWW.Example.com\"}", &id, &type),
			 0);
	ck_assert_int_eq(id.type, CS_ACME_ID_DNS);
	ck_assert_str_eq(id.value, "www.example.com");
	ck_assert(!id.wildcard);
	ck_assert_int_eq(parse_id("{\"type\":\"dns\",\"value\":\"*.example.com\"}", &id, &type), 0);
	ck_assert(id.wildcard);
	ck_assert_str_eq(id.value, "*.example.com");
	ck_assert_int_eq(parse_id("{\"type\":\"ip\",\"value\":\"::0001\"}", &id, &type), 0);
	ck_assert_int_eq(id.type, CS_ACME_ID_IP);
	ck_assert_str_eq(id.value, "::1");
	ck_assert_int_eq(parse_id("{\"type\":\"ip\",\"value\":\"10.0.0.256\"}", &id, &type),
			 CS_EINVAL);
	ck_assert_str_eq(type, "malformed");
	ck_assert_int_eq(parse_id("{\"type\":\"email\",\"value\":\"a@b\"}", &id, &type), CS_EINVAL);
	ck_assert_str_eq(type, "unsupportedIdentifier");
	static const char *const bad[] = {"a..b", "-a.b", "a-.b", "a.*.b", "a b", "a.b.", "*"};
	for (size_t i = 0; i < CS_ARRAY_LEN(bad); i++) {
		char j[100];
		snprintf(j, sizeof j, "{\"type\":\"dns\",\"value\":\"%s\"}", bad[i]);
		ck_assert_msg(parse_id(j, &id, &type) == CS_EINVAL, "%s", bad[i]);
		ck_assert_str_eq(type, "rejectedIdentifier");
	}
	ck_assert_int_eq(parse_id("{\"type\":\"dns\"}", &id, &type), CS_EINVAL);
	ck_assert_int_eq(parse_id("[]", &id, &type), CS_EINVAL);
}
END_TEST

START_TEST(test_challenges_per_identifier)
{
	struct cs_acme_identifier dns = {.type = CS_ACME_ID_DNS, .value = "a.example"};
	struct cs_acme_identifier wild = {.type = CS_ACME_ID_DNS, .value = "*.a", .wildcard = true};
	struct cs_acme_identifier ip = {.type = CS_ACME_ID_IP, .value = "10.0.0.1"};
	ck_assert(cs_acme_challenge_allowed("http-01", &dns));
	ck_assert(cs_acme_challenge_allowed("dns-01", &dns));
	ck_assert(cs_acme_challenge_allowed("tls-alpn-01", &dns));
	ck_assert(!cs_acme_challenge_allowed("http-01", &wild));
	ck_assert(!cs_acme_challenge_allowed("tls-alpn-01", &wild));
	ck_assert(cs_acme_challenge_allowed("dns-01", &wild));
	ck_assert(cs_acme_challenge_allowed("http-01", &ip));
	ck_assert(cs_acme_challenge_allowed("tls-alpn-01", &ip));
	ck_assert(!cs_acme_challenge_allowed("dns-01", &ip));
	ck_assert(!cs_acme_challenge_allowed("email-reply-00", &dns));
}
END_TEST

START_TEST(test_authz_status)
{
	ck_assert_str_eq(cs_acme_authz_status("pending", 100, 50), "pending");
	ck_assert_str_eq(cs_acme_authz_status("pending", 100, 100), "expired");
	ck_assert_str_eq(cs_acme_authz_status("valid", 100, 150), "expired");
	ck_assert_str_eq(cs_acme_authz_status("valid", 100, 99), "valid");
	ck_assert_str_eq(cs_acme_authz_status("invalid", 100, 150), "invalid");
	ck_assert_str_eq(cs_acme_authz_status("deactivated", 100, 50), "deactivated");
	ck_assert_str_eq(cs_acme_authz_status("garbage", 100, 50), "invalid");
	ck_assert_str_eq(cs_acme_authz_status(NULL, 100, 50), "invalid");
}
END_TEST

START_TEST(test_order_status)
{
	const char *pend[] = {"pending", "valid"};
	const char *ready[] = {"valid", "valid"};
	const char *bad[] = {"valid", "invalid"};
	const char *deact[] = {"deactivated"};
	const char *exp[] = {"valid", "expired"};
	ck_assert_str_eq(cs_acme_order_status("pending", 100, 50, pend, 2), "pending");
	ck_assert_str_eq(cs_acme_order_status("pending", 100, 50, ready, 2), "ready");
	ck_assert_str_eq(cs_acme_order_status("ready", 100, 50, ready, 2), "ready");
	ck_assert_str_eq(cs_acme_order_status("pending", 100, 50, bad, 2), "invalid");
	ck_assert_str_eq(cs_acme_order_status("pending", 100, 50, deact, 1), "invalid");
	ck_assert_str_eq(cs_acme_order_status("pending", 100, 50, exp, 2), "invalid");
	/* an order that expired before finalize is invalid; a valid one stays valid */
	ck_assert_str_eq(cs_acme_order_status("pending", 100, 100, ready, 2), "invalid");
	ck_assert_str_eq(cs_acme_order_status("valid", 100, 500, bad, 2), "valid");
	ck_assert_str_eq(cs_acme_order_status("processing", 100, 50, ready, 2), "processing");
	ck_assert_str_eq(cs_acme_order_status("invalid", 100, 50, ready, 2), "invalid");
	ck_assert_str_eq(cs_acme_order_status("pending", 100, 50, NULL, 0), "pending");
	ck_assert_str_eq(cs_acme_order_status(NULL, 100, 50, ready, 2), "invalid");
}
END_TEST

static const char *refuses(const char *role_json, const char *type, const char *value)
{
	cJSON *role = role_json ? cJSON_Parse(role_json) : NULL;
	char j[300];
	snprintf(j, sizeof j, "{\"type\":\"%s\",\"value\":\"%s\"}", type, value);
	struct cs_acme_identifier id;
	const char *t;
	ck_assert_int_eq(parse_id(j, &id, &t), 0);
	const char *r = cs_acme_role_refuses(role, &id);
	cJSON_Delete(role);
	return r;
}

START_TEST(test_identifiers_against_role)
{
	const char *role = "{\"allowed_domains\":[\"example.com\"],\"allow_subdomains\":true,"
			   "\"allow_bare_domains\":false,\"allow_ip_sans\":false,"
			   "\"allow_wildcard_certificates\":true}";
	ck_assert_ptr_null(refuses(role, "dns", "www.example.com"));
	ck_assert_ptr_null(refuses(role, "dns", "*.example.com"));
	ck_assert_ptr_nonnull(refuses(role, "dns", "example.com")); /* no bare domain */
	ck_assert_ptr_nonnull(refuses(role, "dns", "www.example.org"));
	ck_assert_ptr_nonnull(refuses(role, "ip", "10.0.0.1"));
	const char *glob = "{\"allowed_domains\":[\"*.svc\"],\"allow_glob_domains\":true,"
			   "\"allow_wildcard_certificates\":false}";
	ck_assert_ptr_null(refuses(glob, "dns", "a.svc"));
	ck_assert_ptr_nonnull(refuses(glob, "dns", "*.svc"));
	ck_assert_ptr_null(refuses(glob, "ip", "10.0.0.1")); /* allow_ip_sans defaults true */
	ck_assert_ptr_null(refuses("{\"allow_any_name\":true}", "dns", "anything.test"));
	/* sign-verbatim directories (no role) take any identifier */
	ck_assert_ptr_null(refuses(NULL, "dns", "anything.test"));
	ck_assert_ptr_null(refuses(NULL, "ip", "192.0.2.1"));
}
END_TEST

START_TEST(test_csr_matches_order)
{
	struct cs_acme_identifier ids[] = {
	    {.type = CS_ACME_ID_DNS, .value = "a.example"},
	    {.type = CS_ACME_ID_DNS, .value = "b.example"},
	    {.type = CS_ACME_ID_IP, .value = "10.0.0.1"},
	};
	const char *dns[] = {"b.example", "A.example"};
	const char *ips[] = {"10.0.0.1"};
	ck_assert_ptr_null(cs_acme_csr_match(ids, 3, dns, 2, ips, 1, NULL));
	/* the CN counts (and may repeat a SAN) */
	ck_assert_ptr_null(cs_acme_csr_match(ids, 3, dns, 2, ips, 1, "a.example"));
	const char *dns1[] = {"b.example"};
	ck_assert_ptr_null(cs_acme_csr_match(ids, 3, dns1, 1, ips, 1, "a.example"));
	/* an IP CN is an IP identifier */
	ck_assert_ptr_null(cs_acme_csr_match(ids, 3, dns, 2, NULL, 0, "10.0.0.1"));
	/* a name missing, a name too many, an IP too many */
	ck_assert_ptr_nonnull(cs_acme_csr_match(ids, 3, dns1, 1, ips, 1, NULL));
	const char *extra[] = {"a.example", "b.example", "c.example"};
	ck_assert_ptr_nonnull(cs_acme_csr_match(ids, 3, extra, 3, ips, 1, NULL));
	ck_assert_ptr_nonnull(cs_acme_csr_match(ids, 3, dns, 2, ips, 1, "c.example"));
	const char *ips2[] = {"10.0.0.1", "10.0.0.2"};
	ck_assert_ptr_nonnull(cs_acme_csr_match(ids, 3, dns, 2, ips2, 2, NULL));
	const char *badip[] = {"not-an-ip"};
	ck_assert_ptr_nonnull(cs_acme_csr_match(ids, 3, dns, 2, badip, 1, NULL));
	ck_assert_ptr_nonnull(cs_acme_csr_match(ids, 3, NULL, 0, NULL, 0, NULL));
}
END_TEST

START_TEST(test_nonces_once_and_expire)
{
	struct cs_acme_nonces w = {0};
	char a[33], b[33];
	ck_assert(!cs_acme_nonce_redeem(&w, "AAAA", 1000)); /* nothing issued yet */
	cs_acme_nonce_new(&w, 1000, a);
	cs_acme_nonce_new(&w, 1000, b);
	ck_assert_int_eq(strlen(a), 32);
	ck_assert_str_ne(a, b);
	ck_assert(cs_acme_nonce_redeem(&w, b, 1001));
	ck_assert(!cs_acme_nonce_redeem(&w, b, 1001)); /* once */
	/* a tampered nonce (one character changed) is refused and spends nothing */
	char t[33];
	memcpy(t, a, 33);
	t[5] = t[5] == 'A' ? 'B' : 'A';
	ck_assert(!cs_acme_nonce_redeem(&w, t, 1001));
	ck_assert(cs_acme_nonce_redeem(&w, a, 1000 + CS_ACME_NONCE_TTL - 1));
	cs_acme_nonce_new(&w, 1000, a);
	ck_assert(!cs_acme_nonce_redeem(&w, a, 1000 + CS_ACME_NONCE_TTL)); /* expired */
	/* a new window (leader change) does not take the old one's nonces */
	cs_acme_nonce_new(&w, 2000, a);
	cs_acme_nonces_reset(&w);
	cs_acme_nonce_new(&w, 2000, b);
	ck_assert(!cs_acme_nonce_redeem(&w, a, 2000));
	ck_assert(cs_acme_nonce_redeem(&w, b, 2000));
	ck_assert(!cs_acme_nonce_redeem(&w, NULL, 2000));
	ck_assert(!cs_acme_nonce_redeem(&w, "", 2000));
	cs_acme_nonces_reset(&w);
}
END_TEST

START_TEST(test_nonce_window_wraps)
{
	/* A nonce older than the window is refused even if never used: its slot was reused. */
	struct cs_acme_nonces w = {0};
	char first[33], n[33];
	cs_acme_nonce_new(&w, 5000, first);
	for (uint32_t i = 0; i < CS_ACME_NONCE_WINDOW; i++)
		cs_acme_nonce_new(&w, 5000, n);
	ck_assert(!cs_acme_nonce_redeem(&w, first, 5000));
	ck_assert(cs_acme_nonce_redeem(&w, n, 5000));
	cs_acme_nonces_reset(&w);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("acme");
	TCase *tc = tcase_create("rules");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_identifiers);
	tcase_add_test(tc, test_challenges_per_identifier);
	tcase_add_test(tc, test_authz_status);
	tcase_add_test(tc, test_order_status);
	tcase_add_test(tc, test_identifiers_against_role);
	tcase_add_test(tc, test_csr_matches_order);
	tcase_add_test(tc, test_nonces_once_and_expire);
	tcase_add_test(tc, test_nonce_window_wraps);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
