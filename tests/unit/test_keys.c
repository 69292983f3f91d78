/*
 * Unit tests for the seal config checks, the unseal progress bound, and the key custody
 * endpoints (server/seal.c, server/rekey.c, server/generate_root.c) over a core with
 * real storage and a fake raft (token_fixture.h). Requests go through the real sys/
 * path table.
 */
#include "token_fixture.h"

#include "lib/secmem.h"
#include "server/pgp.h"
#include "server/rekey.h"
#include "server/seal.h"

#define SEAL_CONFIG_PATH "core/seal-config"

/* The shares of the seal seeded by seed_seal (hex strings). */
static char seed_hex[CS_MAX_SHARES][2 * (CS_KEY_LEN + 1) + 1];
static int seed_n;

static void keys_setup(void)
{
	(void)create_as; /* the fixture's helper, unused here */
	fx_setup();
	cs_rekey_register(&cfg);
	cs_generate_root_register(&core);
}

/* Write a Shamir seal with n shares / threshold t for the fixture's keyring, committed,
 * and remember its shares. */
static void seed_seal(int n, int t)
{
	uint8_t kek[CS_KEY_LEN];
	cs_random(kek, sizeof kek);
	uint8_t *mem = NULL;
	size_t len = 0;
	ck_assert_int_eq(cs_seal_make_shares(kek, n, t, &mem, &len), 0);
	for (int i = 0; i < n; i++)
		cs_hex_encode(mem + len * (size_t)i, len, seed_hex[i]);
	seed_n = n;
	cs_secmem_free(mem, len * (size_t)n);
	struct cs_txn txn;
	cs_txn_begin(&txn, &core.st, core.kr);
	ck_assert_int_eq(cs_seal_rekey_write(&core, &txn, kek, n, t), 0);
	ck_assert_int_eq(commit_sync(&txn), 0);
	ck_assert_int_eq(cs_seal_load_config(&core), 0);
}

static void put_raw_config(const char *json)
{
	struct cs_txn txn;
	cs_txn_begin(&txn, &core.st, core.kr);
	ck_assert_int_eq(cs_txn_put_raw(&txn, SEAL_CONFIG_PATH, json, strlen(json)), 0);
	ck_assert_int_eq(commit_sync(&txn), 0);
}

static void stored_config(int *n, int *t)
{
	struct cs_buf b = CS_BUF_INIT;
	ck_assert_int_eq(
	    cs_store_get(&core.st.store, SEAL_CONFIG_PATH, strlen(SEAL_CONFIG_PATH), &b), 0);
	cJSON *j = cJSON_ParseWithLength(b.data, b.len);
	cs_buf_free(&b);
	ck_assert_int_eq(cs_seal_config_decode(j, n, t), 0);
	cJSON_Delete(j);
}

/* Whether these hex shares rebuild the cluster's current KEK. */
static bool shares_unseal(char **hex, int k)
{
	struct cs_share_set s = {0};
	for (int i = 0; i < k; i++) {
		size_t len = 0;
		uint8_t *raw = cs_seal_decode_key(hex[i], strlen(hex[i]) / 2, &len);
		ck_assert_ptr_nonnull(raw);
		ck_assert_int_eq(cs_share_set_add(&s, raw, len), 0);
		free(raw);
	}
	uint8_t kek[CS_KEY_LEN];
	int rc = cs_seal_check_shares(&core, &s, kek);
	cs_share_set_clear(&s);
	ck_assert(rc == 0 || rc == CS_EINVAL);
	return rc == 0;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	ck_assert_msg(cJSON_IsString(v), "no string %s", k);
	return v->valuestring;
}

static int jint(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	ck_assert_msg(cJSON_IsNumber(v), "no number %s", k);
	return v->valueint;
}

static bool jtrue(const cJSON *o, const char *k)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

/* Run a sys/ request as root; returns the handler's code, *raw the raw body (owned). */
static int sys_call(enum cs_op op, const char *path, const char *body, cJSON **raw)
{
	int rc;
	struct cs_request *req = call(op, path, body, root_token, &rc);
	if (raw) {
		*raw = req->raw;
		req->raw = NULL;
	}
	req_free(req);
	return rc;
}

/* ---------------------------------------------------------------- seal config */

START_TEST(test_config_decode)
{
	static const struct {
		const char *json;
		bool ok;
	} cases[] = {
	    {"{\"secret_shares\":5,\"secret_threshold\":3}", true},
	    {"{\"secret_shares\":1,\"secret_threshold\":1}", true},
	    {"{\"secret_shares\":255,\"secret_threshold\":255}", true},
	    {"{\"secret_shares\":5,\"secret_threshold\":0}", false},
	    {"{\"secret_shares\":255,\"secret_threshold\":256}", false},
	    {"{\"secret_shares\":256,\"secret_threshold\":3}", false},
	    {"{\"secret_shares\":3,\"secret_threshold\":5}", false},
	    {"{\"secret_shares\":0,\"secret_threshold\":0}", false},
	    {"{\"secret_shares\":-1,\"secret_threshold\":-1}", false},
	    {"{\"secret_shares\":5,\"secret_threshold\":2.5}", false},
	    {"{\"secret_shares\":5e9,\"secret_threshold\":3}", false},
	    {"{\"secret_shares\":\"5\",\"secret_threshold\":3}", false},
	    {"{\"secret_shares\":5}", false},
	    {"[]", false},
	};
	for (size_t i = 0; i < CS_ARRAY_LEN(cases); i++) {
		cJSON *j = cJSON_Parse(cases[i].json);
		int n = -7, t = -7;
		int rc = cs_seal_config_decode(j, &n, &t);
		ck_assert_msg((rc == 0) == cases[i].ok, "%s", cases[i].json);
		if (!cases[i].ok)
			ck_assert_int_eq(n, -7); /* untouched */
		cJSON_Delete(j);
	}
}
END_TEST

/* A stored config with threshold 0, 256 or above the shares is refused at load. */
START_TEST(test_load_refuses_bad_threshold)
{
	const char *bad[] = {
	    "{\"type\":\"shamir\",\"secret_shares\":5,\"secret_threshold\":0}",
	    "{\"type\":\"shamir\",\"secret_shares\":255,\"secret_threshold\":256}",
	    "{\"type\":\"shamir\",\"secret_shares\":3,\"secret_threshold\":4}",
	};
	for (size_t i = 0; i < CS_ARRAY_LEN(bad); i++) {
		core.initialized = false;
		core.seal.shares = core.seal.threshold = 0;
		put_raw_config(bad[i]);
		ck_assert_int_eq(cs_seal_load_config(&core), CS_EIO);
		ck_assert_ptr_nonnull(strstr(core.errmsg, "seal config"));
		ck_assert(!core.initialized);
		ck_assert_int_eq(core.seal.threshold, 0);
	}
	put_raw_config("{\"type\":\"shamir\",\"secret_shares\":5,\"secret_threshold\":3}");
	ck_assert_int_eq(cs_seal_load_config(&core), 0);
	ck_assert(core.initialized);
	ck_assert_int_eq(core.seal.shares, 5);
	ck_assert_int_eq(core.seal.threshold, 3);
}
END_TEST

/* 300 distinct bogus shares against a real 5/3 seal: progress stays below the
 * threshold, every third submission fails, and (under ASan) nothing is written past
 * the progress array. */
START_TEST(test_unseal_300_bogus_keys)
{
	seed_seal(5, 3);
	struct cs_keyring *kr = core.kr;
	core.kr = NULL; /* sealed */
	int failures = 0;
	for (int i = 0; i < 300; i++) {
		uint8_t key[CS_KEY_LEN + 1];
		cs_random(key, sizeof key);
		key[CS_KEY_LEN] = (uint8_t)(i % 255 + 1); /* x coordinate */
		bool done = true;
		char err[256] = "";
		int rc = cs_core_unseal_submit(&core, key, sizeof key, &done, err, sizeof err);
		ck_assert(!done);
		if (rc)
			failures++;
		ck_assert_int_ge(core.seal.progress, 0);
		ck_assert_int_lt(core.seal.progress, core.seal.threshold);
	}
	ck_assert_int_eq(failures, 100);
	ck_assert_ptr_null(core.kr);
	core.kr = kr;
}
END_TEST

/* A threshold of 256 that got into memory without the decoder (the old join path):
 * every submission is refused and the progress never moves. */
START_TEST(test_unseal_refuses_out_of_range_threshold)
{
	struct cs_keyring *kr = core.kr;
	core.kr = NULL;
	core.initialized = true;
	core.seal.shares = 255;
	core.seal.threshold = 256;
	for (int i = 0; i < 300; i++) {
		uint8_t key[CS_KEY_LEN + 1];
		cs_random(key, sizeof key);
		bool done = true;
		char err[256] = "";
		ck_assert_int_eq(
		    cs_core_unseal_submit(&core, key, sizeof key, &done, err, sizeof err),
		    CS_EINVAL);
		ck_assert_int_eq(core.seal.progress, 0);
	}
	core.kr = kr;
}
END_TEST

START_TEST(test_share_set_bounds)
{
	struct cs_share_set s = {0};
	uint8_t k[CS_KEY_LEN + 1] = {0};
	for (int i = 0; i < CS_MAX_SHARES; i++) {
		k[0] = (uint8_t)i;
		ck_assert_int_eq(cs_share_set_add(&s, k, sizeof k), 0);
	}
	k[0] = 0;
	ck_assert_int_eq(cs_share_set_add(&s, k, sizeof k), CS_EEXIST);
	k[1] = 1;
	ck_assert_int_eq(cs_share_set_add(&s, k, sizeof k), CS_EINVAL);
	ck_assert_int_eq(s.n, CS_MAX_SHARES);
	cs_share_set_clear(&s);
	ck_assert_int_eq(s.n, 0);
	/* one 32-byte share is the key itself */
	uint8_t kek[CS_KEY_LEN], out[CS_KEY_LEN];
	cs_random(kek, sizeof kek);
	ck_assert_int_eq(cs_share_set_add(&s, kek, sizeof kek), 0);
	ck_assert_int_eq(cs_share_set_combine(&s, out), 0);
	ck_assert_mem_eq(out, kek, sizeof kek);
	cs_share_set_clear(&s);
}
END_TEST

/* ---------------------------------------------------------------- rekey */

/* Give `k` of the seeded shares to path (rekey/update, generate-root/update). */
static cJSON *feed(const char *path, const char *nonce, char hex[][2 * (CS_KEY_LEN + 1) + 1],
		   int from, int k)
{
	cJSON *raw = NULL;
	for (int i = from; i < from + k; i++) {
		char body[256];
		snprintf(body, sizeof body, "{\"key\":\"%.80s\",\"nonce\":\"%.60s\"}", hex[i],
			 nonce);
		cJSON_Delete(raw);
		raw = NULL;
		int rc = sys_call(CS_OP_UPDATE, path, body, &raw);
		ck_assert_msg(rc == 0, "%s share %d: %d", path, i, rc);
	}
	return raw;
}

START_TEST(test_rekey_without_verification)
{
	seed_seal(5, 3);
	cJSON *r = NULL;
	ck_assert_int_eq(sys_call(CS_OP_UPDATE, "sys/rekey/init",
				  "{\"secret_shares\":3,\"secret_threshold\":2}", &r),
			 0);
	char nonce[64];
	snprintf(nonce, sizeof nonce, "%s", jstr(r, "nonce"));
	ck_assert(jtrue(r, "started"));
	ck_assert_int_eq(jint(r, "required"), 3);
	cJSON_Delete(r);
	/* a second init while one runs is refused */
	ck_assert_int_eq(sys_call(CS_OP_UPDATE, "sys/rekey/init",
				  "{\"secret_shares\":1,\"secret_threshold\":1}", NULL),
			 CS_EINVAL);
	/* wrong nonce: refused, progress kept at 0 */
	char body[256];
	snprintf(body, sizeof body, "{\"key\":\"%s\",\"nonce\":\"nope\"}", seed_hex[0]);
	ck_assert_int_eq(sys_call(CS_OP_UPDATE, "sys/rekey/update", body, NULL), CS_EINVAL);
	r = feed("sys/rekey/update", nonce, seed_hex, 0, 2);
	ck_assert_int_eq(jint(r, "progress"), 2);
	cJSON_Delete(r);
	/* a share given twice counts once */
	snprintf(body, sizeof body, "{\"key\":\"%.80s\",\"nonce\":\"%.60s\"}", seed_hex[1], nonce);
	ck_assert_int_eq(sys_call(CS_OP_UPDATE, "sys/rekey/update", body, NULL), CS_EINVAL);
	int n, t;
	stored_config(&n, &t);
	ck_assert_int_eq(n, 5);
	r = feed("sys/rekey/update", nonce, seed_hex, 2, 1);
	ck_assert(jtrue(r, "complete"));
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(r, "keys");
	ck_assert_int_eq(cJSON_GetArraySize(keys), 3);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "keys_base64")), 3);
	char *newk[3];
	for (int i = 0; i < 3; i++)
		newk[i] = strdup(cJSON_GetArrayItem(keys, i)->valuestring);
	cJSON_Delete(r);
	stored_config(&n, &t);
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(t, 2);
	ck_assert(shares_unseal(newk, 2));
	ck_assert(shares_unseal(newk + 1, 2));
	char *old[3] = {seed_hex[0], seed_hex[1], seed_hex[2]};
	ck_assert(!shares_unseal(old, 3));
	for (int i = 0; i < 3; i++)
		free(newk[i]);
	/* the attempt is over */
	ck_assert_int_eq(sys_call(CS_OP_READ, "sys/rekey/init", NULL, &r), 0);
	ck_assert(!jtrue(r, "started"));
	ck_assert_int_eq(jint(r, "required"), 2);
	cJSON_Delete(r);
}
END_TEST

START_TEST(test_rekey_with_verification)
{
	seed_seal(3, 2);
	cJSON *r = NULL;
	ck_assert_int_eq(sys_call(CS_OP_UPDATE, "sys/rekey/init",
				  "{\"secret_shares\":4,\"secret_threshold\":3,"
				  "\"require_verification\":true}",
				  &r),
			 0);
	char nonce[64];
	snprintf(nonce, sizeof nonce, "%s", jstr(r, "nonce"));
	cJSON_Delete(r);
	r = feed("sys/rekey/update", nonce, seed_hex, 0, 2);
	ck_assert(jtrue(r, "verification_required"));
	char vnonce[64];
	snprintf(vnonce, sizeof vnonce, "%s", jstr(r, "verification_nonce"));
	static char newk[4][2 * (CS_KEY_LEN + 1) + 1];
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(r, "keys");
	for (int i = 0; i < 4; i++)
		snprintf(newk[i], sizeof newk[i], "%s", cJSON_GetArrayItem(keys, i)->valuestring);
	cJSON_Delete(r);
	/* nothing written before verification: the old shares still work */
	int n, t;
	stored_config(&n, &t);
	ck_assert_int_eq(n, 3);
	char *old[2] = {seed_hex[0], seed_hex[1]};
	ck_assert(shares_unseal(old, 2));
	/* update is closed now */
	char body[256];
	snprintf(body, sizeof body, "{\"key\":\"%.80s\",\"nonce\":\"%.60s\"}", seed_hex[2], nonce);
	ck_assert_int_eq(sys_call(CS_OP_UPDATE, "sys/rekey/update", body, NULL), CS_EINVAL);
	/* restart without the verification nonce: refused, progress kept */
	r = feed("sys/rekey/verify", vnonce, newk, 0, 1);
	cJSON_Delete(r);
	ck_assert_int_eq(sys_call(CS_OP_DELETE, "sys/rekey/verify", NULL, NULL), CS_EINVAL);
	ck_assert_int_eq(sys_call(CS_OP_READ, "sys/rekey/verify", NULL, &r), 0);
	ck_assert_int_eq(jint(r, "progress"), 1);
	cJSON_Delete(r);
	/* wrong shares in verification: refused, new nonce, nothing written */
	static char bogus[3][2 * (CS_KEY_LEN + 1) + 1];
	for (int i = 0; i < 3; i++) {
		uint8_t b[CS_KEY_LEN + 1];
		cs_random(b, sizeof b);
		b[CS_KEY_LEN] = (uint8_t)(i + 10);
		cs_hex_encode(b, sizeof b, bogus[i]);
	}
	for (int i = 0; i < 2; i++) {
		snprintf(body, sizeof body, "{\"key\":\"%.80s\",\"nonce\":\"%.60s\"}", bogus[i],
			 vnonce);
		ck_assert_int_eq(sys_call(CS_OP_UPDATE, "sys/rekey/verify", body, NULL),
				 i == 1 ? CS_EINVAL : 0);
	}
	ck_assert_int_eq(sys_call(CS_OP_READ, "sys/rekey/verify", NULL, &r), 0);
	ck_assert_str_ne(jstr(r, "nonce"), vnonce);
	snprintf(vnonce, sizeof vnonce, "%s", jstr(r, "nonce"));
	ck_assert_int_eq(jint(r, "progress"), 0);
	cJSON_Delete(r);
	stored_config(&n, &t);
	ck_assert_int_eq(n, 3);
	/* the right shares complete it */
	r = feed("sys/rekey/verify", vnonce, newk, 1, 3);
	ck_assert(jtrue(r, "complete"));
	cJSON_Delete(r);
	stored_config(&n, &t);
	ck_assert_int_eq(n, 4);
	ck_assert_int_eq(t, 3);
	char *nk[3] = {newk[0], newk[2], newk[3]};
	ck_assert(shares_unseal(nk, 3));
	ck_assert(!shares_unseal(old, 2));
}
END_TEST

/* Shares that do not rebuild the KEK abort the round; nothing is written. */
START_TEST(test_rekey_wrong_shares)
{
	seed_seal(3, 2);
	cJSON *r = NULL;
	ck_assert_int_eq(sys_call(CS_OP_UPDATE, "sys/rekey/init",
				  "{\"secret_shares\":2,\"secret_threshold\":2}", &r),
			 0);
	char nonce[64];
	snprintf(nonce, sizeof nonce, "%s", jstr(r, "nonce"));
	cJSON_Delete(r);
	uint8_t b[CS_KEY_LEN + 1];
	cs_random(b, sizeof b);
	b[CS_KEY_LEN] = 77;
	char hex[2 * (CS_KEY_LEN + 1) + 1], body[256];
	cs_hex_encode(b, sizeof b, hex);
	snprintf(body, sizeof body, "{\"key\":\"%.80s\",\"nonce\":\"%.60s\"}", seed_hex[0], nonce);
	ck_assert_int_eq(sys_call(CS_OP_UPDATE, "sys/rekey/update", body, NULL), 0);
	snprintf(body, sizeof body, "{\"key\":\"%.80s\",\"nonce\":\"%.60s\"}", hex, nonce);
	ck_assert_int_eq(sys_call(CS_OP_UPDATE, "sys/rekey/update", body, NULL), CS_EINVAL);
	ck_assert_int_eq(sys_call(CS_OP_READ, "sys/rekey/init", NULL, &r), 0);
	ck_assert(jtrue(r, "started"));
	ck_assert_int_eq(jint(r, "progress"), 0);
	cJSON_Delete(r);
	int n, t;
	stored_config(&n, &t);
	ck_assert_int_eq(n, 3);
}
END_TEST

/* CVE-2026-5807 replay: cancelling without the nonce fails and the attempt goes on. */
START_TEST(test_cancel_needs_nonce)
{
	seed_seal(3, 2);
	cJSON *r = NULL;
	ck_assert_int_eq(sys_call(CS_OP_UPDATE, "sys/rekey/init",
				  "{\"secret_shares\":2,\"secret_threshold\":2}", &r),
			 0);
	char nonce[64];
	snprintf(nonce, sizeof nonce, "%s", jstr(r, "nonce"));
	cJSON_Delete(r);
	ck_assert_int_eq(sys_call(CS_OP_DELETE, "sys/rekey/init", NULL, NULL), CS_EINVAL);
	ck_assert_int_eq(sys_call(CS_OP_DELETE, "sys/rekey/init", "{\"nonce\":\"x\"}", NULL),
			 CS_EINVAL);
	ck_assert_int_eq(sys_call(CS_OP_READ, "sys/rekey/init", NULL, &r), 0);
	ck_assert(jtrue(r, "started"));
	ck_assert_str_eq(jstr(r, "nonce"), nonce);
	cJSON_Delete(r);
	char body[128];
	snprintf(body, sizeof body, "{\"nonce\":\"%s\"}", nonce);
	ck_assert_int_eq(sys_call(CS_OP_DELETE, "sys/rekey/init", body, NULL), 0);
	ck_assert_int_eq(sys_call(CS_OP_READ, "sys/rekey/init", NULL, &r), 0);
	ck_assert(!jtrue(r, "started"));
	cJSON_Delete(r);

	/* generate-root: same rule, and its unauthenticated status hides the nonce */
	ck_assert_int_eq(sys_call(CS_OP_UPDATE, "sys/generate-root/attempt", NULL, &r), 0);
	snprintf(nonce, sizeof nonce, "%s", jstr(r, "nonce"));
	ck_assert_int_eq(strlen(jstr(r, "otp")), CS_ROOT_OTP_LEN);
	cJSON_Delete(r);
	ck_assert_int_eq(sys_call(CS_OP_READ, "sys/generate-root/attempt", NULL, &r), 0);
	ck_assert_str_eq(jstr(r, "nonce"), "");
	ck_assert_str_eq(jstr(r, "otp"), "");
	cJSON_Delete(r);
	ck_assert_int_eq(sys_call(CS_OP_DELETE, "sys/generate-root/attempt", NULL, NULL),
			 CS_EINVAL);
	ck_assert_int_eq(sys_call(CS_OP_UPDATE, "sys/generate-root/attempt", NULL, NULL),
			 CS_EINVAL);
	ck_assert_int_eq(sys_call(CS_OP_READ, "sys/generate-root/attempt", NULL, &r), 0);
	ck_assert(jtrue(r, "started"));
	cJSON_Delete(r);
	snprintf(body, sizeof body, "{\"nonce\":\"%s\"}", nonce);
	ck_assert_int_eq(sys_call(CS_OP_DELETE, "sys/generate-root/attempt", body, NULL), 0);
	ck_assert_int_eq(sys_call(CS_OP_READ, "sys/generate-root/attempt", NULL, &r), 0);
	ck_assert(!jtrue(r, "started"));
	cJSON_Delete(r);
}
END_TEST

START_TEST(test_rekey_bad_config)
{
	seed_seal(3, 2);
	const char *bad[] = {
	    "{\"secret_shares\":0,\"secret_threshold\":0}",
	    "{\"secret_shares\":256,\"secret_threshold\":3}",
	    "{\"secret_shares\":3,\"secret_threshold\":4}",
	    "{\"secret_shares\":3,\"secret_threshold\":1}",
	    "{\"secret_shares\":3,\"secret_threshold\":2,\"backup\":true}",
	};
	for (size_t i = 0; i < CS_ARRAY_LEN(bad); i++)
		ck_assert_int_eq(sys_call(CS_OP_UPDATE, "sys/rekey/init", bad[i], NULL), CS_EINVAL);
	cJSON *r = NULL;
	ck_assert_int_eq(sys_call(CS_OP_READ, "sys/rekey/init", NULL, &r), 0);
	ck_assert(!jtrue(r, "started"));
	cJSON_Delete(r);
}
END_TEST

/* ---------------------------------------------------------------- generate-root */

static void decode_token(const char *enc, const char *otp, char *out)
{
	size_t l = strlen(enc), n = 0;
	char padded[128];
	snprintf(padded, sizeof padded, "%s%s", enc, l % 4 == 2 ? "==" : l % 4 == 3 ? "=" : "");
	uint8_t *b = cs_b64_decode(padded, strlen(padded), &n);
	ck_assert_ptr_nonnull(b);
	ck_assert_uint_eq(n, strlen(otp));
	for (size_t i = 0; i < n; i++)
		out[i] = (char)(b[i] ^ (uint8_t)otp[i]);
	out[n] = '\0';
	free(b);
}

START_TEST(test_generate_root_otp)
{
	seed_seal(3, 2);
	cJSON *r = NULL;
	/* a client OTP of the wrong length is refused */
	ck_assert_int_eq(
	    sys_call(CS_OP_UPDATE, "sys/generate-root/attempt", "{\"otp\":\"short\"}", NULL),
	    CS_EINVAL);
	const char *otp = "abcdefghijklmnopqrstuvwxyz01";
	char body[256];
	snprintf(body, sizeof body, "{\"otp\":\"%s\"}", otp);
	ck_assert_int_eq(sys_call(CS_OP_UPDATE, "sys/generate-root/attempt", body, &r), 0);
	ck_assert_str_eq(jstr(r, "otp"), ""); /* the client's own OTP is not echoed */
	ck_assert_int_eq(jint(r, "otp_length"), CS_ROOT_OTP_LEN);
	ck_assert_int_eq(jint(r, "required"), 2);
	char nonce[64];
	snprintf(nonce, sizeof nonce, "%s", jstr(r, "nonce"));
	cJSON_Delete(r);
	r = feed("sys/generate-root/update", nonce, seed_hex, 1, 2);
	ck_assert(jtrue(r, "complete"));
	char token[64];
	decode_token(jstr(r, "encoded_token"), otp, token);
	ck_assert_str_eq(jstr(r, "encoded_root_token"), jstr(r, "encoded_token"));
	cJSON_Delete(r);
	ck_assert_int_eq(strncmp(token, "hvs.", 4), 0);
	cJSON *e = entry_of(token);
	ck_assert_ptr_nonnull(e);
	const cJSON *pol = cJSON_GetObjectItemCaseSensitive(e, "policies");
	ck_assert_int_eq(cJSON_GetArraySize(pol), 1);
	ck_assert_str_eq(cJSON_GetArrayItem(pol, 0)->valuestring, "root");
	cJSON_Delete(e);
	/* the existing root token still works (the salt was not reset) */
	ck_assert(token_exists(root_token));
}
END_TEST

START_TEST(test_generate_root_wrong_shares)
{
	seed_seal(3, 2);
	cJSON *r = NULL;
	ck_assert_int_eq(sys_call(CS_OP_UPDATE, "sys/generate-root/attempt", NULL, &r), 0);
	char nonce[64];
	snprintf(nonce, sizeof nonce, "%s", jstr(r, "nonce"));
	cJSON_Delete(r);
	size_t before = count_keys("sys/token/");
	uint8_t b[CS_KEY_LEN + 1];
	cs_random(b, sizeof b);
	b[CS_KEY_LEN] = 200;
	char hex[2 * (CS_KEY_LEN + 1) + 1], body[256];
	cs_hex_encode(b, sizeof b, hex);
	snprintf(body, sizeof body, "{\"key\":\"%.80s\",\"nonce\":\"%.60s\"}", hex, nonce);
	ck_assert_int_eq(sys_call(CS_OP_UPDATE, "sys/generate-root/update", body, NULL), 0);
	snprintf(body, sizeof body, "{\"key\":\"%.80s\",\"nonce\":\"%.60s\"}", seed_hex[0], nonce);
	ck_assert_int_eq(sys_call(CS_OP_UPDATE, "sys/generate-root/update", body, NULL), CS_EINVAL);
	ck_assert_uint_eq(count_keys("sys/token/"), before);
	ck_assert_int_eq(sys_call(CS_OP_READ, "sys/generate-root/attempt", NULL, &r), 0);
	ck_assert(jtrue(r, "started"));
	ck_assert_int_eq(jint(r, "progress"), 0);
	cJSON_Delete(r);
}
END_TEST

/* ---------------------------------------------------------------- PGP */

START_TEST(test_pgp_refuses_bad_keys)
{
	char fpr[1][CS_PGP_FPR_LEN + 1];
	char err[256];
	const char *keybase[] = {"keybase:alice"};
	ck_assert_int_eq(cs_pgp_fingerprints(keybase, 1, fpr, err, sizeof err), CS_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "keybase"));
	const char *notb64[] = {"***not base64***"};
	ck_assert_int_eq(cs_pgp_fingerprints(notb64, 1, fpr, err, sizeof err), CS_EINVAL);
	const char *notkey[] = {"bm90IGEga2V5IGF0IGFsbA=="};
	ck_assert_int_eq(cs_pgp_fingerprints(notkey, 1, fpr, err, sizeof err), CS_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "PGP key 1"));
}
END_TEST

/* Read all of a shell command's output (small). */
static char *sh_out(const char *cmd)
{
	FILE *f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	static char buf[16384];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	ck_assert_int_eq(pclose(f), 0);
	return buf;
}

/* A key made by gpg: encrypt with cs_pgp_encrypt, decrypt with gpg, same bytes. */
START_TEST(test_pgp_roundtrip_with_gpg)
{
	if (system("command -v gpg >/dev/null 2>&1") != 0)
		return; /* gnupg not installed: the refusal test still ran */
	char home[64] = "/tmp/cs-test-gpg-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(home));
	char cmd[1024];
	snprintf(cmd, sizeof cmd,
		 "GNUPGHOME=%s gpg --batch --pinentry-mode loopback --passphrase '' "
		 "--quick-gen-key 'u <u@custos.test>' future-default default never 2>/dev/null",
		 home);
	ck_assert_int_eq(system(cmd), 0);
	snprintf(cmd, sizeof cmd, "GNUPGHOME=%s gpg --batch --export u@custos.test | base64 -w0",
		 home);
	char *key = strdup(sh_out(cmd));
	snprintf(cmd, sizeof cmd,
		 "GNUPGHOME=%s gpg --batch --with-colons --fingerprint u@custos.test | "
		 "awk -F: '/^fpr/ {print tolower($10); exit}'",
		 home);
	char want_fpr[64];
	snprintf(want_fpr, sizeof want_fpr, "%.40s", sh_out(cmd));

	const char *keys[2] = {key, key};
	const char *msg[2] = {"00aa11bb22cc", "second share"};
	const uint8_t *in[2] = {(const uint8_t *)msg[0], (const uint8_t *)msg[1]};
	size_t len[2] = {strlen(msg[0]), strlen(msg[1])};
	struct cs_buf out[2];
	char fpr[2][CS_PGP_FPR_LEN + 1], err[256] = "";
	ck_assert_int_eq(cs_pgp_encrypt(keys, in, len, 2, out, fpr, err, sizeof err), 0);
	for (int i = 0; i < 2; i++) {
		ck_assert_str_eq(fpr[i], want_fpr);
		ck_assert(out[i].len > 0 &&
			  memmem(out[i].data, out[i].len, msg[i], len[i]) == NULL);
		char path[128];
		snprintf(path, sizeof path, "%s/ct%d", home, i);
		FILE *f = fopen(path, "wb");
		ck_assert_ptr_nonnull(f);
		fwrite(out[i].data, 1, out[i].len, f);
		fclose(f);
		snprintf(cmd, sizeof cmd,
			 "GNUPGHOME=%s gpg --batch --pinentry-mode loopback --passphrase '' -d %s "
			 "2>/dev/null",
			 home, path);
		ck_assert_str_eq(sh_out(cmd), msg[i]);
		cs_buf_free(&out[i]);
	}
	free(key);
	snprintf(cmd, sizeof cmd, "GNUPGHOME=%s gpgconf --kill all >/dev/null 2>&1; rm -rf %s",
		 home, home);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

static Suite *keys_suite(void)
{
	Suite *s = suite_create("keys");
	TCase *tc = tcase_create("seal");
	tcase_add_checked_fixture(tc, keys_setup, fx_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_config_decode);
	tcase_add_test(tc, test_load_refuses_bad_threshold);
	tcase_add_test(tc, test_unseal_300_bogus_keys);
	tcase_add_test(tc, test_unseal_refuses_out_of_range_threshold);
	tcase_add_test(tc, test_share_set_bounds);
	tcase_add_test(tc, test_rekey_without_verification);
	tcase_add_test(tc, test_rekey_with_verification);
	tcase_add_test(tc, test_rekey_wrong_shares);
	tcase_add_test(tc, test_cancel_needs_nonce);
	tcase_add_test(tc, test_rekey_bad_config);
	tcase_add_test(tc, test_generate_root_otp);
	tcase_add_test(tc, test_generate_root_wrong_shares);
	tcase_add_test(tc, test_pgp_refuses_bad_keys);
	tcase_add_test(tc, test_pgp_roundtrip_with_gpg);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(keys_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
