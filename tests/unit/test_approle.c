/*
 * AppRole's pure decisions: the secret-id HMAC (keyed, deterministic, RFC 4231 vector),
 * what a login does with a secret id given its expiry and remaining uses, and the limits
 * a new secret id may take from the role and the request.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "auth/approle.h"
#include "lib/err.h"

START_TEST(test_hmac)
{
	/* RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?". */
	char out[65];
	cs_approle_hmac((const uint8_t *)"Jefe", 4, "what do ya want for nothing?", out);
	ck_assert_str_eq(out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	uint8_t salt[CS_APPROLE_SALT_LEN] = {1};
	char a[65], b[65], c[65];
	cs_approle_hmac(salt, sizeof salt, "secret-1", a);
	cs_approle_hmac(salt, sizeof salt, "secret-1", b);
	ck_assert_str_eq(a, b);
	cs_approle_hmac(salt, sizeof salt, "secret-2", c);
	ck_assert_str_ne(a, c);
	salt[0] = 2; /* another mount's salt: another key */
	cs_approle_hmac(salt, sizeof salt, "secret-1", c);
	ck_assert_str_ne(a, c);
	ck_assert_uint_eq(strlen(a), 64);
}
END_TEST

START_TEST(test_secret_use)
{
	const int64_t now = 1000000;
	/* Unlimited uses, no expiry. */
	ck_assert_int_eq(cs_approle_secret_use(now, 0, 0), CS_APPROLE_UNLIMITED);
	/* num_uses: 1 is the last use (delete), more are decremented. */
	ck_assert_int_eq(cs_approle_secret_use(now, 0, 1), CS_APPROLE_LAST_USE);
	ck_assert_int_eq(cs_approle_secret_use(now, 0, 2), CS_APPROLE_DECREMENT);
	ck_assert_int_eq(cs_approle_secret_use(now, 0, 100), CS_APPROLE_DECREMENT);
	/* Expiry: valid strictly before the expiration second, refused at and after it,
	 * whatever the uses. */
	ck_assert_int_eq(cs_approle_secret_use(now, now + 1, 0), CS_APPROLE_UNLIMITED);
	ck_assert_int_eq(cs_approle_secret_use(now, now, 0), CS_APPROLE_EXPIRED);
	ck_assert_int_eq(cs_approle_secret_use(now, now - 1, 1), CS_APPROLE_EXPIRED);
	ck_assert_int_eq(cs_approle_secret_use(now, now + 60, 1), CS_APPROLE_LAST_USE);
	/* A negative count (never stored) is treated as unlimited, not as a use. */
	ck_assert_int_eq(cs_approle_secret_use(now, 0, -1), CS_APPROLE_UNLIMITED);
}
END_TEST

START_TEST(test_secret_use_sequence)
{
	/* secret_id_num_uses = 3: three logins succeed, the third deletes it. */
	int64_t uses = 3;
	int ok = 0;
	for (int i = 0; i < 5; i++) {
		if (uses == -1)
			break; /* deleted */
		enum cs_approle_use u = cs_approle_secret_use(10, 0, uses);
		if (u == CS_APPROLE_DECREMENT) {
			uses--;
			ok++;
		} else if (u == CS_APPROLE_LAST_USE) {
			uses = -1;
			ok++;
		}
	}
	ck_assert_int_eq(ok, 3);
}
END_TEST

START_TEST(test_secret_limits)
{
	int64_t ttl, uses;
	const char *err = NULL;
	/* Nothing requested: the role's values. */
	ck_assert_int_eq(cs_approle_secret_limits(600, 5, 0, 0, &ttl, &uses, &err), 0);
	ck_assert_int_eq(ttl, 600);
	ck_assert_int_eq(uses, 5);
	/* Narrower requests win. */
	ck_assert_int_eq(cs_approle_secret_limits(600, 5, 60, 2, &ttl, &uses, &err), 0);
	ck_assert_int_eq(ttl, 60);
	ck_assert_int_eq(uses, 2);
	/* An unlimited role takes any request. */
	ck_assert_int_eq(cs_approle_secret_limits(0, 0, 99999, 42, &ttl, &uses, &err), 0);
	ck_assert_int_eq(ttl, 99999);
	ck_assert_int_eq(uses, 42);
	/* Wider than the role: refused. */
	ck_assert_int_eq(cs_approle_secret_limits(600, 5, 601, 0, &ttl, &uses, &err), CS_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "secret_id_ttl"));
	ck_assert_int_eq(cs_approle_secret_limits(600, 5, 0, 6, &ttl, &uses, &err), CS_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "secret_id_num_uses"));
	ck_assert_int_eq(cs_approle_secret_limits(0, 0, -1, 0, &ttl, &uses, &err), CS_EINVAL);
	ck_assert_int_eq(cs_approle_secret_limits(0, 0, 0, -1, &ttl, &uses, &err), CS_EINVAL);
}
END_TEST

static Suite *approle_suite(void)
{
	Suite *s = suite_create("approle");
	TCase *tc = tcase_create("decisions");
	tcase_add_test(tc, test_hmac);
	tcase_add_test(tc, test_secret_use);
	tcase_add_test(tc, test_secret_use_sequence);
	tcase_add_test(tc, test_secret_limits);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(approle_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
