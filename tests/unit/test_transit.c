/* Unit tests for the transit engine: its crypto (engines/transit_crypto.c) against published
 * vectors, the ciphertext format, and the path table (engines/transit.c) through the
 * backend framework over a real store, as docs/adding-a-backend.md drives an engine. */
#include <check.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engines/transit.h"
#include "engines/transit_crypto.h"
#include "engines/transit_internal.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/util.h"
#include "server/core.h"
#include "server/router.h"
#include "storage/txn.h"

static void unhex(const char *h, uint8_t *out, size_t *n)
{
	*n = (size_t)cs_hex_decode(h, strlen(h), out);
}

/* RFC 5869 test case 3: SHA-256, no salt, no info. */
START_TEST(test_hkdf_rfc5869)
{
	uint8_t ikm[22], okm[42], want[42];
	size_t n;
	memset(ikm, 0x0b, sizeof ikm);
	unhex(
	    "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
	    want, &n);
	ck_assert_int_eq(n, 42);
	ck_assert_int_eq(cs_transit_hkdf(ikm, sizeof ikm, NULL, 0, okm, sizeof okm), 0);
	ck_assert_mem_eq(okm, want, 42);
	/* A different context derives a different key; the prefix property holds (Vault
	 * derives enc key || HMAC key in one output). */
	uint8_t a[48], b[16], c[16];
	ck_assert_int_eq(cs_transit_hkdf(ikm, sizeof ikm, (uint8_t *)"ctx", 3, a, sizeof a), 0);
	ck_assert_int_eq(cs_transit_hkdf(ikm, sizeof ikm, (uint8_t *)"ctx", 3, b, sizeof b), 0);
	ck_assert_int_eq(cs_transit_hkdf(ikm, sizeof ikm, (uint8_t *)"cty", 3, c, sizeof c), 0);
	ck_assert_mem_eq(a, b, 16);
	ck_assert(memcmp(b, c, 16) != 0);
}
END_TEST

/* The GCM specification's test case 3 (AES-128, 96-bit IV), through our seal/open. */
START_TEST(test_aes_gcm_vector)
{
	uint8_t key[16], iv[12], pt[64], ct[64], tag[16];
	size_t kn, ivn, pn, cn, tn;
	unhex("feffe9928665731c6d6a8f9467308308", key, &kn);
	unhex("cafebabefacedbaddecaf888", iv, &ivn);
	unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
	      "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
	      pt, &pn);
	unhex("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
	      "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
	      ct, &cn);
	unhex("4d5c2af327cd64a62cf35abd2ba6fab4", tag, &tn);
	struct cs_buf out = CS_BUF_INIT;
	ck_assert_int_eq(cs_transit_seal(CS_TRANSIT_AES128_GCM96, key, iv, NULL, 0, pt, pn, &out),
			 0);
	ck_assert_uint_eq(out.len, 12 + 64 + 16);
	ck_assert_mem_eq(out.data, iv, 12);
	ck_assert_mem_eq(out.data + 12, ct, 64);
	ck_assert_mem_eq(out.data + 12 + 64, tag, 16);
	struct cs_buf back = CS_BUF_INIT;
	const char *err = NULL;
	ck_assert_int_eq(cs_transit_open(CS_TRANSIT_AES128_GCM96, key, (uint8_t *)out.data, out.len,
					 NULL, 0, &back, &err),
			 0);
	ck_assert_mem_eq(back.data, pt, 64);
	cs_buf_free(&back);
	cs_buf_free(&out);
}
END_TEST

/* Every AEAD type: round trip, AAD bound, tamper and truncation refused with Go's text. */
START_TEST(test_aead_roundtrip_and_tamper)
{
	static const enum cs_transit_type types[] = {
	    CS_TRANSIT_AES128_GCM96, CS_TRANSIT_AES256_GCM96, CS_TRANSIT_CHACHA20_POLY1305};
	uint8_t key[32];
	cs_random(key, sizeof key);
	for (size_t i = 0; i < 3; i++) {
		enum cs_transit_type t = types[i];
		const char *auth = t == CS_TRANSIT_CHACHA20_POLY1305
				       ? "chacha20poly1305: message authentication failed"
				       : "cipher: message authentication failed";
		struct cs_buf ct = CS_BUF_INIT, pt = CS_BUF_INIT;
		const char *err = NULL;
		ck_assert_int_eq(
		    cs_transit_seal(t, key, NULL, (uint8_t *)"ad", 2, (uint8_t *)"secret", 6, &ct),
		    0);
		ck_assert_uint_eq(ct.len, 12 + 6 + 16);
		ck_assert_int_eq(cs_transit_open(t, key, (uint8_t *)ct.data, ct.len,
						 (uint8_t *)"ad", 2, &pt, &err),
				 0);
		ck_assert_str_eq(pt.data, "secret");
		cs_buf_reset(&pt);
		ck_assert_int_eq(cs_transit_open(t, key, (uint8_t *)ct.data, ct.len,
						 (uint8_t *)"ax", 2, &pt, &err),
				 CS_EINVAL);
		ck_assert_str_eq(err, auth);
		ck_assert_uint_eq(pt.len, 0);
		ct.data[13] ^= 1;
		ck_assert_int_eq(cs_transit_open(t, key, (uint8_t *)ct.data, ct.len,
						 (uint8_t *)"ad", 2, &pt, &err),
				 CS_EINVAL);
		ck_assert_str_eq(err, auth);
		ck_assert_int_eq(cs_transit_open(t, key, (uint8_t *)ct.data, 5, NULL, 0, &pt, &err),
				 CS_EINVAL);
		ck_assert_str_eq(err, "invalid ciphertext length");
		ck_assert_int_eq(
		    cs_transit_open(t, key, (uint8_t *)ct.data, 20, NULL, 0, &pt, &err), CS_EINVAL);
		ck_assert_str_eq(err, auth);
		cs_buf_free(&ct);
		cs_buf_free(&pt);
	}
}
END_TEST

START_TEST(test_format_parse)
{
	uint8_t raw[5] = {1, 2, 3, 4, 5};
	char *s = cs_transit_format(7, raw, sizeof raw);
	ck_assert_str_eq(s, "vault:v7:AQIDBAU=");
	uint32_t ver = 0;
	uint8_t *back = NULL;
	size_t n = 0;
	const char *err = NULL;
	ck_assert_int_eq(cs_transit_parse(s, &ver, &back, &n, &err), 0);
	ck_assert_uint_eq(ver, 7);
	ck_assert_uint_eq(n, 5);
	ck_assert_mem_eq(back, raw, 5);
	free(back);
	free(s);
	/* Version 0 reads as 1, as Vault. */
	ck_assert_int_eq(cs_transit_parse("vault:v0:AA==", &ver, &back, &n, &err), 0);
	ck_assert_uint_eq(ver, 1);
	free(back);
	static const struct {
		const char *in, *err;
		uint32_t ver;
	} bad[] = {
	    {"vault:1:AA==", "no prefix", 0},
	    {"nope", "no prefix", 0},
	    {"vault:v1", "wrong number of fields", 0},
	    {"vault:vx:AA==", "version number could not be decoded", 0},
	    {"vault:v:AA==", "version number could not be decoded", 0},
	    {"vault:v-1:AA==", "version number could not be decoded", 0},
	    {"vault:v99999999999:AA==", "version number could not be decoded", 0},
	    {"vault:v2000000000:AA==", "version is too new", 0},
	    {"vault:v3:A!==", "could not decode base64", 3},
	    {"vault:v3:AA", "could not decode base64", 3},
	};
	for (size_t i = 0; i < CS_ARRAY_LEN(bad); i++) {
		ver = 0;
		ck_assert_int_eq(cs_transit_parse(bad[i].in, &ver, &back, &n, &err), CS_EINVAL);
		ck_assert_msg(strcmp(err, bad[i].err) == 0, "%s: %s", bad[i].in, err);
		ck_assert_uint_eq(ver, bad[i].ver);
		ck_assert_ptr_null(back);
	}
}
END_TEST

START_TEST(test_digest_hmac)
{
	uint8_t out[64];
	size_t n;
	char hex[129];
	ck_assert_ptr_null(cs_transit_md_name("md5", true));
	ck_assert_ptr_null(cs_transit_md_name("sha1", false));
	ck_assert_int_eq(
	    cs_transit_digest(cs_transit_md_name("sha3-256", false), (uint8_t *)"abc", 3, out, &n),
	    0);
	cs_hex_encode(out, n, hex);
	ck_assert_str_eq(hex, "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532");
	/* RFC 4231 test case 2. */
	ck_assert_int_eq(cs_transit_hmac("SHA256", (uint8_t *)"Jefe", 4,
					 (uint8_t *)"what do ya want for nothing?", 28, out, &n),
			 0);
	cs_hex_encode(out, n, hex);
	ck_assert_str_eq(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}
END_TEST

/* ---------------------------------------------------------------- the path table */

static char dir[64];
static struct cs_storage st;
static struct cs_keyring *kr;
static char prefix[] = "logical/transit-test/";
static struct cs_mount mount = {.storage_prefix = prefix};
static struct cs_buf proposed;
static void *proposed_token;
static uint64_t applied_index;

static int propose(void *ctx, const void *data, size_t len, void *token)
{
	(void)ctx;
	cs_buf_append(&proposed, data, len);
	proposed_token = token;
	return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static void setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/cs-test-transit-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(cs_storage_open(&st, dir, 64 << 20), 0);
	cs_storage_set_proposer(&st, propose, NULL);
	kr = cs_keyring_new();
}

static void teardown(void)
{
	cs_storage_close(&st);
	cs_keyring_free(kr);
	cs_buf_free(&proposed);
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The deferred jobs' queue (key generation runs on the pool): run() plays the core. */
static struct cs_core test_core;

/* What the core does for a deferred request: run the job (here, inline), start a fresh
 * transaction and resume the handler. */
static int run_deferred(struct cs_request *req)
{
	struct cs_async *a = test_core.async_head;
	ck_assert_ptr_nonnull(a);
	test_core.async_head = test_core.async_tail = NULL;
	test_core.async_queued = 0;
	cs_txn_abort(&req->txn);
	a->work(a);
	cs_txn_begin(&req->txn, &st, kr);
	return a->resume(req, a, 0);
}

static struct cs_request *run(enum cs_op op, const char *rel, const char *body, int want)
{
	struct cs_request *req = calloc(1, sizeof *req);
	req->core = &test_core;
	req->op = op;
	req->root = true;
	req->mount = &mount;
	req->data = cJSON_Parse(body ? body : "{}");
	ck_assert_ptr_nonnull(req->data);
	cs_txn_begin(&req->txn, &st, kr);
	ck_assert_msg(cs_backend_route(&cs_transit_backend, req, rel), "no route for %s", rel);
	int rc = cs_backend_dispatch(req);
	while (rc == CS_EASYNC)
		rc = run_deferred(req);
	ck_assert_msg(rc == want, "%s %s: %s (%s)", cs_op_name(op), rel, cs_errname(rc),
		      req->errmsg ? req->errmsg : "");
	return req;
}

static void done(struct cs_request *req)
{
	cs_txn_abort(&req->txn);
	for (int i = 0; i < req->n_caps; i++)
		free(req->caps[i].value);
	cJSON_Delete(req->data);
	cJSON_Delete(req->resp_data);
	cJSON_Delete(req->warnings);
	free(req->errmsg);
	free(req);
}

static void committed(void *data, int status)
{
	*(int *)data = status;
}

static void commit(struct cs_request *req)
{
	bool pending = false;
	int status = -1;
	ck_assert_int_eq(cs_txn_commit(&req->txn, committed, &status, &pending), 0);
	if (pending) {
		ck_assert_int_eq(
		    cs_store_apply(&st.store, ++applied_index, proposed.data, proposed.len), 0);
		cs_buf_reset(&proposed);
		cs_storage_batch_done(&st, proposed_token, 0);
		ck_assert_int_eq(status, 0);
	}
	done(req);
}

static void expect_error(enum cs_op op, const char *rel, const char *body, const char *msg)
{
	struct cs_request *r = run(op, rel, body, CS_EINVAL);
	ck_assert_str_eq(r->errmsg, msg);
	done(r);
}

static const char *dstr(struct cs_request *r, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->resp_data, name);
	ck_assert_msg(cJSON_IsString(v), "no %s", name);
	return v->valuestring;
}

/* Encrypt "aGVsbG8=" ("hello") with body extras; returns the malloc'd ciphertext. */
static char *enc(const char *key, const char *extra)
{
	char rel[64], body[512];
	snprintf(rel, sizeof rel, "encrypt/%s", key);
	snprintf(body, sizeof body, "{\"plaintext\":\"aGVsbG8=\"%s}", extra ? extra : "");
	struct cs_request *r = run(CS_OP_UPDATE, rel, body, 0);
	char *ct = strdup(dstr(r, "ciphertext"));
	commit(r);
	return ct;
}

static void dec_ok(const char *key, const char *ct, const char *extra)
{
	char rel[64], body[1024];
	snprintf(rel, sizeof rel, "decrypt/%s", key);
	snprintf(body, sizeof body, "{\"ciphertext\":\"%s\"%s}", ct, extra ? extra : "");
	struct cs_request *r = run(CS_OP_UPDATE, rel, body, 0);
	ck_assert_str_eq(dstr(r, "plaintext"), "aGVsbG8=");
	done(r);
}

START_TEST(test_every_type_roundtrip_and_storage)
{
	static const char *types[] = {"aes128-gcm96", "aes256-gcm96", "chacha20-poly1305"};
	for (size_t i = 0; i < 3; i++) {
		char rel[64], body[64];
		snprintf(rel, sizeof rel, "keys/t%zu", i);
		snprintf(body, sizeof body, "{\"type\":\"%s\"}", types[i]);
		commit(run(CS_OP_UPDATE, rel, body, 0));
		snprintf(rel, sizeof rel, "t%zu", i);
		char *ct = enc(rel, NULL);
		ck_assert(strncmp(ct, "vault:v1:", 9) == 0);
		dec_ok(rel, ct, NULL);
		free(ct);
	}
	/* Key material is stored through the barrier: no plaintext key in LMDB. */
	struct cs_request *r = run(CS_OP_READ, "keys/t1", NULL, 0);
	ck_assert_str_eq(dstr(r, "type"), "aes256-gcm96");
	done(r);
	struct cs_txn t;
	struct cs_buf raw = CS_BUF_INIT;
	cs_txn_begin(&t, &st, kr);
	ck_assert_int_eq(cs_txn_get_raw(&t, "logical/transit-test/policy/t1", &raw), 0);
	ck_assert_ptr_null(memmem(raw.data, raw.len, "hmac_key", 8));
	cs_buf_free(&raw);
	cs_txn_abort(&t);
	r = run(CS_OP_LIST, "keys", NULL, 0);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r->resp_data, "keys")), 3);
	done(r);
}
END_TEST

START_TEST(test_versions_and_errors)
{
	commit(run(CS_OP_UPDATE, "keys/k", "{}", 0));
	char *v1 = enc("k", NULL);
	commit(run(CS_OP_UPDATE, "keys/k/rotate", "{}", 0));
	char *v2 = enc("k", NULL);
	ck_assert(strncmp(v2, "vault:v2:", 9) == 0);
	dec_ok("k", v1, NULL);
	char body[512];
	snprintf(body, sizeof body, "{\"ciphertext\":\"%s\"}", v1);
	struct cs_request *r = run(CS_OP_UPDATE, "rewrap/k", body, 0);
	ck_assert(strncmp(dstr(r, "ciphertext"), "vault:v2:", 9) == 0);
	done(r);
	expect_error(CS_OP_UPDATE, "encrypt/k", "{\"plaintext\":\"\",\"key_version\":3}",
		     "requested version for encryption is higher than the latest key version");
	/* Version rules: a refused config changes nothing. */
	expect_error(CS_OP_UPDATE, "keys/k/config", "{\"min_decryption_version\":3}",
		     "cannot set min decryption version of 3, latest key version is 2");
	expect_error(CS_OP_UPDATE, "keys/k/config", "{\"min_encryption_version\":-1}",
		     "min encryption version cannot be negative");
	commit(run(CS_OP_UPDATE, "keys/k/config", "{\"min_decryption_version\":2}", 0));
	snprintf(body, sizeof body, "{\"ciphertext\":\"%s\"}", v1);
	expect_error(CS_OP_UPDATE, "decrypt/k", body,
		     "ciphertext or signature version is disallowed by policy (too old)");
	dec_ok("k", v2, NULL);
	expect_error(CS_OP_UPDATE, "keys/k/trim", "{\"min_available_version\":2}",
		     "minimum available version cannot be set when minimum encryption version "
		     "is not set");
	commit(run(CS_OP_UPDATE, "keys/k/config", "{\"min_encryption_version\":2}", 0));
	commit(run(CS_OP_UPDATE, "keys/k/trim", "{\"min_available_version\":2}", 0));
	expect_error(CS_OP_UPDATE, "keys/k/config", "{\"min_decryption_version\":1}",
		     "min decryption version should not be less then min available version");
	/* Tampered: last byte of the tag flipped. */
	char *tampered = strdup(v2);
	size_t n = strlen(tampered);
	tampered[n - 3] = tampered[n - 3] == 'A' ? 'B' : 'A';
	snprintf(body, sizeof body, "{\"ciphertext\":\"%s\"}", tampered);
	expect_error(CS_OP_UPDATE, "decrypt/k", body, "cipher: message authentication failed");
	expect_error(CS_OP_UPDATE, "decrypt/k", "{\"ciphertext\":\"vault:v7:AAAA\"}",
		     "invalid ciphertext: version is too new");
	expect_error(CS_OP_DELETE, "keys/k", NULL,
		     "error deleting policy k: deletion is not allowed for this key");
	commit(run(CS_OP_UPDATE, "keys/k/config", "{\"deletion_allowed\":true}", 0));
	commit(run(CS_OP_DELETE, "keys/k", NULL, 0));
	done(run(CS_OP_READ, "keys/k", NULL, CS_ENOTFOUND));
	free(tampered);
	free(v1);
	free(v2);
}
END_TEST

START_TEST(test_derived_convergent_and_upsert)
{
	/* encrypt with a context on a missing key creates a derived key (PUT → create). */
	struct cs_request *r =
	    run(CS_OP_UPDATE, "encrypt/d", "{\"plaintext\":\"aGVsbG8=\",\"context\":\"YQ==\"}", 0);
	ck_assert_int_eq(r->op, CS_OP_CREATE);
	char *ct = strdup(dstr(r, "ciphertext"));
	commit(r);
	dec_ok("d", ct, ",\"context\":\"YQ==\"");
	char body[512];
	snprintf(body, sizeof body, "{\"ciphertext\":\"%s\",\"context\":\"Yg==\"}", ct);
	expect_error(CS_OP_UPDATE, "decrypt/d", body, "cipher: message authentication failed");
	free(ct);
	expect_error(CS_OP_UPDATE, "keys/c", "{\"convergent_encryption\":true}",
		     "convergent encryption requires derivation to be enabled");
	done(run(CS_OP_READ, "keys/c", NULL, CS_ENOTFOUND));
	commit(run(CS_OP_UPDATE, "keys/c", "{\"derived\":true,\"convergent_encryption\":true}", 0));
	char *a = enc("c", ",\"context\":\"YQ==\"");
	char *b = enc("c", ",\"context\":\"YQ==\"");
	char *c = enc("c", ",\"context\":\"Yg==\"");
	ck_assert_str_eq(a, b);
	ck_assert_str_ne(a, c);
	dec_ok("c", a, ",\"context\":\"YQ==\"");
	free(a);
	free(b);
	free(c);
}
END_TEST

START_TEST(test_batch)
{
	commit(run(CS_OP_UPDATE, "keys/b", "{}", 0));
	struct cs_request *r = run(CS_OP_UPDATE, "encrypt/b",
				   "{\"batch_input\":[{\"plaintext\":\"YQ==\",\"reference\":\"x\"},"
				   "{\"plaintext\":\"@@\"}]}",
				   0);
	ck_assert_int_eq(r->status, 400);
	const cJSON *res = cJSON_GetObjectItem(r->resp_data, "batch_results");
	ck_assert_int_eq(cJSON_GetArraySize(res), 2);
	const cJSON *ok = cJSON_GetArrayItem(res, 0), *bad = cJSON_GetArrayItem(res, 1);
	ck_assert_str_eq(cJSON_GetObjectItem(ok, "reference")->valuestring, "x");
	ck_assert_ptr_nonnull(cJSON_GetObjectItem(ok, "ciphertext"));
	ck_assert_str_eq(cJSON_GetObjectItem(bad, "error")->valuestring,
			 "illegal base64 data at input byte 0");
	ck_assert_ptr_null(cJSON_GetObjectItem(bad, "ciphertext"));
	done(r);
	r = run(CS_OP_UPDATE, "encrypt/b",
		"{\"batch_input\":[{\"plaintext\":\"YQ==\"},{\"plaintext\":\"@@\"}],"
		"\"partial_failure_response_code\":207}",
		0);
	ck_assert_int_eq(r->status, 207);
	done(r);
	expect_error(CS_OP_UPDATE, "encrypt/b", "{\"batch_input\":[]}",
		     "missing batch input to process");
	expect_error(CS_OP_UPDATE, "encrypt/b",
		     "{\"batch_input\":[{\"plaintext\":\"YQ==\",\"context\":\"YQ==\"},"
		     "{\"plaintext\":\"YQ==\"}]}",
		     "context should be set either in all the request blocks or in none");
	expect_error(CS_OP_UPDATE, "encrypt/b", "{}", "missing plaintext to encrypt");
}
END_TEST

START_TEST(test_hmac_hash_random)
{
	commit(run(CS_OP_UPDATE, "keys/h", "{\"type\":\"hmac\",\"key_size\":48}", 0));
	expect_error(CS_OP_UPDATE, "keys/h2", "{\"type\":\"hmac\",\"key_size\":16}",
		     "invalid key_size 16");
	struct cs_request *r = run(CS_OP_UPDATE, "hmac/h/sha2-384", "{\"input\":\"YQ==\"}", 0);
	char *mac = strdup(dstr(r, "hmac"));
	done(r);
	ck_assert(strncmp(mac, "vault:v1:", 9) == 0);
	char body[512];
	snprintf(body, sizeof body, "{\"input\":\"YQ==\",\"hmac\":\"%s\"}", mac);
	r = run(CS_OP_UPDATE, "verify/h/sha2-384", body, 0);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r->resp_data, "valid")));
	done(r);
	snprintf(body, sizeof body, "{\"input\":\"Yg==\",\"hmac\":\"%s\"}", mac);
	r = run(CS_OP_UPDATE, "verify/h/sha2-384", body, 0);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r->resp_data, "valid")));
	done(r);
	free(mac);
	expect_error(CS_OP_UPDATE, "verify/h", "{\"input\":\"YQ==\",\"hmac\":\"x\"}",
		     "invalid HMAC to verify: no prefix");
	expect_error(CS_OP_UPDATE, "encrypt/h", "{\"plaintext\":\"YQ==\"}",
		     "message encryption not supported for key type hmac");
	r = run(CS_OP_UPDATE, "hash/sha2-256", "{\"input\":\"YWJj\"}", 0);
	ck_assert_str_eq(dstr(r, "sum"),
			 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	done(r);
	expect_error(CS_OP_UPDATE, "hash", "{\"input\":\"YWJj\",\"format\":\"raw\"}",
		     "unsupported encoding format raw; must be \"hex\" or \"base64\"");
	r = run(CS_OP_UPDATE, "random/24", "{\"format\":\"hex\"}", 0);
	ck_assert_uint_eq(strlen(dstr(r, "random_bytes")), 48);
	done(r);
	expect_error(CS_OP_UPDATE, "random/all/abc", "{}",
		     "error parsing url-set byte count: strconv.Atoi: parsing \"abc\": invalid "
		     "syntax");
	r = run(CS_OP_UPDATE, "datakey/wrapped/h", "{}", CS_EINVAL);
	done(r);
}
END_TEST

START_TEST(test_export)
{
	commit(run(CS_OP_UPDATE, "keys/e", "{\"type\":\"aes128-gcm96\"}", 0));
	expect_error(CS_OP_READ, "export/encryption-key/e", NULL,
		     "private key material is not exportable");
	/* exportable can be turned on later, never off */
	commit(run(CS_OP_UPDATE, "keys/e/config", "{\"exportable\":true}", 0));
	commit(run(CS_OP_UPDATE, "keys/e/config", "{\"exportable\":false}", 0));
	commit(run(CS_OP_UPDATE, "keys/e/rotate", "{}", 0));
	struct cs_request *r = run(CS_OP_READ, "export/encryption-key/e", NULL, 0);
	const cJSON *keys = cJSON_GetObjectItem(r->resp_data, "keys");
	ck_assert_int_eq(cJSON_GetArraySize(keys), 2);
	size_t n = 0;
	uint8_t *k = cs_b64_decode(cJSON_GetObjectItem(keys, "2")->valuestring,
				   strlen(cJSON_GetObjectItem(keys, "2")->valuestring), &n);
	ck_assert_uint_eq(n, 16);
	free(k);
	done(r);
	r = run(CS_OP_READ, "export/hmac-key/e/latest", NULL, 0);
	keys = cJSON_GetObjectItem(r->resp_data, "keys");
	ck_assert_int_eq(cJSON_GetArraySize(keys), 1);
	ck_assert_ptr_nonnull(cJSON_GetObjectItem(keys, "2"));
	done(r);
	expect_error(CS_OP_READ, "export/encryption-key/e/v9", NULL,
		     "version does not exist or cannot be found");
	expect_error(CS_OP_READ, "export/bogus/e", NULL, "invalid export type: bogus");
	expect_error(CS_OP_READ, "export/signing-key/e", NULL, "signing not supported for the key");
	done(run(CS_OP_READ, "export/encryption-key/none", NULL, CS_ENOTFOUND));
}
END_TEST

/* ---------------------------------------------------------------- signatures */

static const char *const asym_types[] = {"ed25519",    "ecdsa-p256", "ecdsa-p384",
					 "ecdsa-p521", "rsa-2048",   "rsa-3072"};

/* sign/<key>[/alg] with body; returns the malloc'd signature. */
static char *sign(const char *key, const char *body)
{
	char rel[96];
	snprintf(rel, sizeof rel, "sign/%s", key);
	struct cs_request *r = run(CS_OP_UPDATE, rel, body, 0);
	char *sig = strdup(dstr(r, "signature"));
	ck_assert(strncmp(sig, "vault:v", 7) == 0);
	done(r);
	return sig;
}

/* verify/<key> with the input, signature and extra fields: the answer's "valid". */
static bool verify(const char *key, const char *input, const char *sig, const char *extra)
{
	char rel[96], body[2048];
	snprintf(rel, sizeof rel, "verify/%s", key);
	snprintf(body, sizeof body, "{\"input\":\"%s\",\"signature\":\"%s\"%s}", input, sig,
		 extra ? extra : "");
	struct cs_request *r = run(CS_OP_UPDATE, rel, body, 0);
	const cJSON *v = cJSON_GetObjectItem(r->resp_data, "valid");
	ck_assert(cJSON_IsBool(v));
	bool ok = cJSON_IsTrue(v);
	done(r);
	return ok;
}

/* A copy of sig with one character of its base64 changed (a valid, wrong signature). */
static char *tamper(const char *sig)
{
	char *t = strdup(sig);
	size_t i = strlen(t) / 2;
	t[i] = t[i] == 'A' ? 'B' : 'A';
	return t;
}

START_TEST(test_sign_verify_every_type)
{
	static const char *hashes[] = {"sha2-224", "sha2-256", "sha2-384", "sha2-512"};
	for (size_t i = 0; i < CS_ARRAY_LEN(asym_types); i++) {
		char rel[64], body[256];
		snprintf(rel, sizeof rel, "keys/s%zu", i);
		snprintf(body, sizeof body, "{\"type\":\"%s\"}", asym_types[i]);
		commit(run(CS_OP_UPDATE, rel, body, 0));
		struct cs_request *r = run(CS_OP_READ, rel, NULL, 0);
		ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r->resp_data, "supports_signing")));
		const cJSON *v1 =
		    cJSON_GetObjectItem(cJSON_GetObjectItem(r->resp_data, "keys"), "1");
		ck_assert_ptr_nonnull(v1);
		const char *pub = cJSON_GetObjectItem(v1, "public_key")->valuestring;
		if (i == 0)
			ck_assert_uint_eq(strlen(pub), 44); /* base64 of 32 bytes */
		else
			ck_assert(strncmp(pub, "-----BEGIN PUBLIC KEY-----", 26) == 0);
		done(r);
		snprintf(rel, sizeof rel, "s%zu", i);
		bool rsa = strncmp(asym_types[i], "rsa", 3) == 0;
		static const char *const algs[] = {"", ",\"signature_algorithm\":\"pkcs1v15\"",
						   ",\"salt_length\":\"hash\"",
						   ",\"marshaling_algorithm\":\"jws\""};
		for (size_t h = 0; h < CS_ARRAY_LEN(hashes); h++) {
			for (size_t a = 0; a < CS_ARRAY_LEN(algs); a++) {
				if ((a == 1 || a == 2) && !rsa)
					continue;
				char extra[160];
				snprintf(extra, sizeof extra, ",\"hash_algorithm\":\"%s\"%s",
					 hashes[h], algs[a]);
				snprintf(body, sizeof body, "{\"input\":\"aGVsbG8=\"%s}", extra);
				char *sig = sign(rel, body);
				ck_assert(strncmp(sig, "vault:v1:", 9) == 0);
				ck_assert_msg(verify(rel, "aGVsbG8=", sig, extra), "%s %s",
					      asym_types[i], extra);
				/* other data, or a changed signature: valid false */
				ck_assert(!verify(rel, "aGk=", sig, extra));
				char *bad = tamper(sig);
				ck_assert(!verify(rel, "aGVsbG8=", bad, extra));
				free(bad);
				free(sig);
			}
		}
	}
}
END_TEST

START_TEST(test_sign_versions_prehashed_errors)
{
	commit(run(CS_OP_UPDATE, "keys/ec", "{\"type\":\"ecdsa-p256\"}", 0));
	char *v1 = sign("ec", "{\"input\":\"aGVsbG8=\"}");
	commit(run(CS_OP_UPDATE, "keys/ec/rotate", "{}", 0));
	struct cs_request *r = run(CS_OP_READ, "keys/ec", NULL, 0);
	const cJSON *keys = cJSON_GetObjectItem(r->resp_data, "keys");
	ck_assert_int_eq(cJSON_GetArraySize(keys), 2);
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(keys, "2"), "name")->valuestring,
			 "P-256");
	done(r);
	char *v2 = sign("ec", "{\"input\":\"aGVsbG8=\"}");
	ck_assert(strncmp(v2, "vault:v2:", 9) == 0);
	ck_assert(verify("ec", "aGVsbG8=", v1, NULL));
	ck_assert(verify("ec", "aGVsbG8=", v2, NULL));
	/* a signature of version 1 presented as version 2: the wrong key, valid false */
	char *wrong = strdup(v1);
	wrong[7] = '2';
	ck_assert(!verify("ec", "aGVsbG8=", wrong, NULL));
	free(wrong);
	char *old = sign("ec", "{\"input\":\"aGVsbG8=\",\"key_version\":1}");
	ck_assert(strncmp(old, "vault:v1:", 9) == 0);
	free(old);
	commit(run(CS_OP_UPDATE, "keys/ec/config", "{\"min_decryption_version\":2}", 0));
	expect_error(CS_OP_UPDATE, "verify/ec",
		     "{\"input\":\"aGVsbG8=\",\"signature\":\""
		     "vault:v1:AAAA\"}",
		     "ciphertext or signature version is disallowed by policy (too old)");
	expect_error(CS_OP_UPDATE, "sign/ec", "{\"input\":\"aGVsbG8=\",\"key_version\":3}",
		     "requested version for signing is higher than the latest key version");
	expect_error(CS_OP_UPDATE, "verify/ec", "{\"input\":\"aGVsbG8=\",\"signature\":\"v2:x\"}",
		     "invalid signature: no prefix");
	expect_error(CS_OP_UPDATE, "verify/ec",
		     "{\"input\":\"aGVsbG8=\",\"signature\":\"vault:v2:!!\"}",
		     "invalid base64 signature value");
	expect_error(CS_OP_UPDATE, "verify/ec",
		     "{\"input\":\"aGVsbG8=\",\"signature\":\"vault:v2:AAAA\"}",
		     "supplied signature is invalid");
	expect_error(CS_OP_UPDATE, "verify/ec", "{\"input\":\"aGVsbG8=\"}",
		     "neither a 'signature' nor an 'hmac' were given to verify");
	expect_error(CS_OP_UPDATE, "sign/ec", "{\"input\":\"aGVsbG8=\",\"hash_algorithm\":\"md5\"}",
		     "invalid hash algorithm \"md5\"");
	free(v1);
	free(v2);
	/* prehashed: the input is the SHA-256 of "hello"; the same signature verifies the
	 * message without prehashed */
	uint8_t sum[64];
	size_t n = 0;
	ck_assert_int_eq(cs_transit_digest("SHA256", (uint8_t *)"hello", 5, sum, &n), 0);
	char *d64 = cs_b64_encode(sum, n), body[256];
	snprintf(body, sizeof body, "{\"input\":\"%s\",\"prehashed\":true}", d64);
	char *ph = sign("ec", body);
	ck_assert(verify("ec", "aGVsbG8=", ph, NULL));
	ck_assert(verify("ec", d64, ph, ",\"prehashed\":true"));
	ck_assert(!verify("ec", d64, ph, NULL));
	free(ph);
	free(d64);
	/* symmetric keys do not sign; asymmetric ones do not encrypt */
	commit(run(CS_OP_UPDATE, "keys/aes", "{}", 0));
	expect_error(CS_OP_UPDATE, "sign/aes", "{\"input\":\"aGVsbG8=\"}",
		     "key type aes256-gcm96 does not support signing");
	expect_error(CS_OP_UPDATE, "encrypt/ec", "{\"plaintext\":\"aGVsbG8=\"}",
		     "message encryption not supported for key type ecdsa-p256");
	expect_error(CS_OP_UPDATE, "keys/dd", "{\"type\":\"ecdsa-p256\",\"derived\":true}",
		     "key derivation and convergent encryption not supported for keys of type "
		     "ecdsa-p256");
}
END_TEST

START_TEST(test_sign_batch_and_export)
{
	commit(run(CS_OP_UPDATE, "keys/ed", "{\"type\":\"ed25519\"}", 0));
	struct cs_request *r = run(
	    CS_OP_UPDATE, "sign/ed",
	    "{\"batch_input\":[{\"input\":\"aGVsbG8=\",\"reference\":\"a\"},{\"input\":\"%%\"}]}",
	    0);
	const cJSON *res = cJSON_GetObjectItem(r->resp_data, "batch_results");
	ck_assert_int_eq(cJSON_GetArraySize(res), 2);
	char *sig =
	    strdup(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 0), "signature")->valuestring);
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 0), "reference")->valuestring,
			 "a");
	ck_assert_ptr_nonnull(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 1), "error"));
	done(r);
	char body[512];
	snprintf(body, sizeof body,
		 "{\"batch_input\":[{\"input\":\"aGVsbG8=\",\"signature\":\"%s\"},"
		 "{\"input\":\"aGk=\",\"signature\":\"%s\"}]}",
		 sig, sig);
	r = run(CS_OP_UPDATE, "verify/ed", body, 0);
	res = cJSON_GetObjectItem(r->resp_data, "batch_results");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 0), "valid")));
	ck_assert(!cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(res, 1), "valid")));
	done(r);
	free(sig);
	/* public-key export needs no exportable flag; signing-key does */
	r = run(CS_OP_READ, "export/public-key/ed", NULL, 0);
	const char *pub =
	    cJSON_GetObjectItem(cJSON_GetObjectItem(r->resp_data, "keys"), "1")->valuestring;
	ck_assert_uint_eq(strlen(pub), 44);
	done(r);
	expect_error(CS_OP_READ, "export/signing-key/ed", NULL,
		     "private key material is not exportable");
	commit(run(CS_OP_UPDATE, "keys/ed/config", "{\"exportable\":true}", 0));
	r = run(CS_OP_READ, "export/signing-key/ed", NULL, 0);
	const char *priv =
	    cJSON_GetObjectItem(cJSON_GetObjectItem(r->resp_data, "keys"), "1")->valuestring;
	size_t n = 0;
	uint8_t *raw = cs_b64_decode(priv, strlen(priv), &n);
	ck_assert_uint_eq(n, 64); /* Go's ed25519 private key: seed || public key */
	free(raw);
	done(r);
	commit(run(CS_OP_UPDATE, "keys/ec", "{\"type\":\"ecdsa-p384\",\"exportable\":true}", 0));
	r = run(CS_OP_READ, "export/signing-key/ec", NULL, 0);
	ck_assert(
	    strncmp(
		cJSON_GetObjectItem(cJSON_GetObjectItem(r->resp_data, "keys"), "1")->valuestring,
		"-----BEGIN EC PRIVATE KEY-----", 30) == 0);
	done(r);
	r = run(CS_OP_READ, "export/signing-key/ec/1", "{\"format\":\"pem\"}", 0);
	ck_assert(
	    strncmp(
		cJSON_GetObjectItem(cJSON_GetObjectItem(r->resp_data, "keys"), "1")->valuestring,
		"-----BEGIN PRIVATE KEY-----", 27) == 0);
	done(r);
}
END_TEST

/* RSA options: a numeric PSS salt, Vault's limits on it, and hash_algorithm "none" (raw
 * PKCS#1 v1.5 over a prehashed input). */
START_TEST(test_rsa_salt_and_none)
{
	commit(run(CS_OP_UPDATE, "keys/r", "{\"type\":\"rsa-2048\"}", 0));
	char *sig = sign("r", "{\"input\":\"aGVsbG8=\",\"salt_length\":\"20\"}");
	ck_assert(verify("r", "aGVsbG8=", sig, ",\"salt_length\":\"20\""));
	ck_assert(verify("r", "aGVsbG8=", sig, NULL)); /* auto finds the salt */
	ck_assert(!verify("r", "aGVsbG8=", sig, ",\"salt_length\":\"hash\""));
	free(sig);
	expect_error(CS_OP_UPDATE, "sign/r", "{\"input\":\"aGVsbG8=\",\"salt_length\":\"-5\"}",
		     "salt length is invalid: -5");
	expect_error(CS_OP_UPDATE, "sign/r", "{\"input\":\"aGVsbG8=\",\"salt_length\":\"x\"}",
		     "salt length neither 'auto', 'hash', nor an int: x");
	expect_error(CS_OP_UPDATE, "sign/r", "{\"input\":\"aGVsbG8=\",\"salt_length\":\"1000\"}",
		     "requested salt length 1000 is invalid");
	expect_error(CS_OP_UPDATE, "sign/r/none", "{\"input\":\"aGVsbG8=\"}",
		     "hash_algorithm=none requires both prehashed=true and "
		     "signature_algorithm=pkcs1v15");
	const char *none = ",\"prehashed\":true,\"signature_algorithm\":\"pkcs1v15\","
			   "\"hash_algorithm\":\"none\"";
	char body[256];
	snprintf(body, sizeof body, "{\"input\":\"aGVsbG8=\"%s}", none);
	sig = sign("r", body);
	ck_assert(verify("r", "aGVsbG8=", sig, none));
	ck_assert(!verify("r", "aGk=", sig, none));
	free(sig);
}
END_TEST

/* A derived ed25519 key signs with a key per context (Vault's DeriveKey); the sign answer
 * carries that key's public key. */
START_TEST(test_derived_ed25519)
{
	expect_error(CS_OP_UPDATE, "keys/c",
		     "{\"type\":\"ed25519\",\"derived\":true,\"convergent_encryption\":true}",
		     "convergent encryption not supported for keys of type ed25519");
	commit(run(CS_OP_UPDATE, "keys/d", "{\"type\":\"ed25519\",\"derived\":true}", 0));
	struct cs_request *r = run(CS_OP_READ, "keys/d", NULL, 0);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r->resp_data, "derived")));
	ck_assert_str_eq(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(r->resp_data, "keys"), "1"),
				"public_key")
		->valuestring,
	    "");
	done(r);
	r = run(CS_OP_UPDATE, "sign/d", "{\"input\":\"aGVsbG8=\",\"context\":\"YQ==\"}", 0);
	char *sig = strdup(dstr(r, "signature"));
	char *pub_a = strdup(dstr(r, "public_key"));
	done(r);
	r = run(CS_OP_UPDATE, "sign/d", "{\"input\":\"aGVsbG8=\",\"context\":\"Yg==\"}", 0);
	ck_assert_str_ne(dstr(r, "public_key"), pub_a); /* another context, another key */
	done(r);
	ck_assert(verify("d", "aGVsbG8=", sig, ",\"context\":\"YQ==\""));
	ck_assert(!verify("d", "aGVsbG8=", sig, ",\"context\":\"Yg==\""));
	r = run(CS_OP_UPDATE, "sign/d", "{\"input\":\"aGVsbG8=\"}", CS_EINTERNAL);
	ck_assert(strncmp(r->errmsg, "error deriving key: missing 'context'", 37) == 0);
	done(r);
	free(sig);
	free(pub_a);
}
END_TEST

/* RSA keys encrypt with RSA-OAEP (SHA-256) in the vault:vN: format; a changed ciphertext is
 * a decryption failure, as in Vault. */
START_TEST(test_rsa_encrypt_decrypt)
{
	commit(run(CS_OP_UPDATE, "keys/r", "{\"type\":\"rsa-2048\"}", 0));
	struct cs_request *r = run(CS_OP_READ, "keys/r", NULL, 0);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r->resp_data, "supports_encryption")));
	done(r);
	char *ct = enc("r", NULL);
	ck_assert(strncmp(ct, "vault:v1:", 9) == 0);
	size_t n = 0;
	uint8_t *raw = cs_b64_decode(ct + 9, strlen(ct + 9), &n);
	ck_assert_uint_eq(n, 256);
	free(raw);
	dec_ok("r", ct, NULL);
	commit(run(CS_OP_UPDATE, "keys/r/rotate", "{}", 0));
	dec_ok("r", ct, NULL);
	char *bad = tamper(ct), body[1024];
	snprintf(body, sizeof body, "{\"ciphertext\":\"%s\"}", bad);
	r = run(CS_OP_UPDATE, "decrypt/r", body, CS_EINTERNAL);
	ck_assert_str_eq(r->errmsg,
			 "failed to RSA decrypt the ciphertext: crypto/rsa: decryption error");
	done(r);
	free(bad);
	free(ct);
	ct = enc("r", NULL);
	ck_assert(strncmp(ct, "vault:v2:", 9) == 0);
	dec_ok("r", ct, NULL);
	free(ct);
}
END_TEST

/* backup/:name → restore (refused over an existing key without force, then under a new
 * name, then forced): the restored key decrypts what the original encrypted. */
START_TEST(test_backup_restore)
{
	commit(run(CS_OP_UPDATE, "keys/n", "{}", 0));
	expect_error(CS_OP_READ, "backup/n", NULL, "exporting is disallowed on the policy");
	expect_error(CS_OP_READ, "backup/none", NULL, "key \"none\" not found");
	commit(run(CS_OP_UPDATE, "keys/b", "{\"exportable\":true,\"allow_plaintext_backup\":true}",
		   0));
	char *ct = enc("b", NULL);
	struct cs_request *r = run(CS_OP_READ, "backup/b", NULL, 0);
	char body[4096];
	snprintf(body, sizeof body, "{\"backup\":\"%s\"}", dstr(r, "backup"));
	commit(r);
	expect_error(CS_OP_UPDATE, "restore", body, "key \"b\" already exists");
	commit(run(CS_OP_UPDATE, "restore/c", body, 0));
	dec_ok("c", ct, NULL);
	commit(run(CS_OP_UPDATE, "keys/b/rotate", "{}", 0));
	size_t len = strlen(body);
	snprintf(body + len - 1, sizeof body - len + 1, ",\"force\":true}");
	commit(run(CS_OP_UPDATE, "restore", body, 0));
	r = run(CS_OP_READ, "keys/b", NULL, 0);
	ck_assert_int_eq(cJSON_GetObjectItem(r->resp_data, "latest_version")->valueint, 1);
	ck_assert_ptr_nonnull(cJSON_GetObjectItem(r->resp_data, "restore_info"));
	done(r);
	dec_ok("b", ct, NULL);
	free(ct);
	expect_error(CS_OP_UPDATE, "restore/x", "{\"backup\":\"e30=\"}",
		     "invalid backup: no policy");
	expect_error(CS_OP_UPDATE, "restore/x", "{}", "'backup' must be supplied");
	done(run(CS_OP_READ, "keys/x", NULL, CS_ENOTFOUND));
}
END_TEST

static size_t cache_entries(uint64_t *hits)
{
	size_t n, locked;
	uint64_t h, m;
	tr_cache_stats(&test_core, &n, &locked, &h, &m);
	ck_assert_uint_eq(locked % 4096, 0);
	ck_assert_uint_le(locked, n * 4096 * 16);
	if (hits)
		*hits = h;
	return n;
}

/* cache-config (Vault's size rule), the LRU bound, hits, and wiping on writes, deletion,
 * reconfiguration and reset; a policy changed in storage behind the cache is never
 * served stale. */
START_TEST(test_cache)
{
	struct cs_request *r = run(CS_OP_READ, "cache-config", NULL, 0);
	ck_assert_int_eq(cJSON_GetObjectItem(r->resp_data, "size")->valueint, 0);
	done(r);
	expect_error(CS_OP_UPDATE, "cache-config", "{\"size\":5}",
		     "size must be 0 or a value greater or equal to 10");
	commit(run(CS_OP_UPDATE, "cache-config", "{\"size\":10}", 0));
	r = run(CS_OP_READ, "cache-config", NULL, 0);
	ck_assert_int_eq(cJSON_GetObjectItem(r->resp_data, "size")->valueint, 10);
	done(r);
	char name[16], *ct;
	for (int i = 0; i < 12; i++) {
		snprintf(name, sizeof name, "c%d", i);
		free(enc(name, NULL)); /* created by the upsert */
		free(enc(name, NULL)); /* loaded */
	}
	ck_assert_uint_eq(cache_entries(NULL), 10);
	uint64_t h0, h1;
	cache_entries(&h0);
	ct = enc("c11", NULL);
	cache_entries(&h1);
	ck_assert_uint_gt(h1, h0); /* the existence check and the handler both load */
	/* Rotation wipes the entry; the next load sees version 2. */
	commit(run(CS_OP_UPDATE, "keys/c11/rotate", "{}", 0));
	ck_assert_uint_eq(cache_entries(NULL), 9);
	char *ct2 = enc("c11", NULL);
	ck_assert(strncmp(ct2, "vault:v2:", 9) == 0);
	free(ct2);
	dec_ok("c11", ct, NULL);
	/* Deletion wipes it. */
	size_t before = cache_entries(NULL);
	commit(run(CS_OP_UPDATE, "keys/c11/config", "{\"deletion_allowed\":true}", 0));
	free(enc("c11", NULL));
	commit(run(CS_OP_DELETE, "keys/c11", NULL, 0));
	ck_assert_uint_eq(cache_entries(NULL), before - 1);
	/* Storage changed behind the cache (as a write applied from another leader's term
	 * would): c10's policy replaced by c9's; c10 now encrypts as c9 does. */
	free(enc("c10", NULL));
	struct cs_txn tx;
	struct cs_buf b = CS_BUF_INIT;
	cs_txn_begin(&tx, &st, kr);
	ck_assert_int_eq(cs_txn_get(&tx, "logical/transit-test/policy/c9", &b), 0);
	ck_assert_int_eq(cs_txn_put(&tx, "logical/transit-test/policy/c10", b.data, b.len), 0);
	cs_buf_free_secure(&b);
	bool pending;
	int status = -1;
	ck_assert_int_eq(cs_txn_commit(&tx, committed, &status, &pending), 0);
	ck_assert(pending);
	ck_assert_int_eq(cs_store_apply(&st.store, ++applied_index, proposed.data, proposed.len),
			 0);
	cs_buf_reset(&proposed);
	cs_storage_batch_done(&st, proposed_token, 0);
	free(ct);
	ct = enc("c10", NULL);
	dec_ok("c9", ct, NULL);
	free(ct);
	/* Reconfiguring empties the mount's cache; size 0 is no count limit. */
	commit(run(CS_OP_UPDATE, "cache-config", "{\"size\":0}", 0));
	ck_assert_uint_eq(cache_entries(NULL), 0);
	for (int i = 0; i < 11; i++) {
		snprintf(name, sizeof name, "c%d", i);
		free(enc(name, NULL));
	}
	ck_assert_uint_eq(cache_entries(NULL), 11);
	tr_cache_reset(&test_core);
	ck_assert_uint_eq(cache_entries(NULL), 0);
}
END_TEST

/* Vault's auto-rotation rule on the latest version's creation time, strictly after. */
START_TEST(test_rotate_due)
{
	cJSON *pol = cJSON_Parse("{\"latest_version\":2,\"auto_rotate_period\":3600,"
				 "\"keys\":{\"1\":{\"time\":100},\"2\":{\"time\":10000}}}");
	ck_assert(!tr_rotate_due(pol, 13600));
	ck_assert(tr_rotate_due(pol, 13601));
	ck_assert(!tr_rotate_due(pol, 3701)); /* version 1's age does not count */
	cJSON_ReplaceItemInObject(pol, "auto_rotate_period", cJSON_CreateNumber(0));
	ck_assert(!tr_rotate_due(pol, 1000000));
	cJSON_ReplaceItemInObject(pol, "auto_rotate_period", cJSON_CreateNumber(3600));
	cJSON_ReplaceItemInObject(pol, "latest_version", cJSON_CreateNumber(3));
	ck_assert(!tr_rotate_due(pol, 1000000)); /* no such latest version */
	cJSON_Delete(pol);
}
END_TEST

/* Set key `name`'s latest version's creation time back by `secs`, in storage. */
static void age_key(const char *name, int64_t secs)
{
	char k[128];
	snprintf(k, sizeof k, "logical/transit-test/policy/%s", name);
	struct cs_txn tx;
	struct cs_buf b = CS_BUF_INIT;
	cs_txn_begin(&tx, &st, kr);
	ck_assert_int_eq(cs_txn_get(&tx, k, &b), 0);
	cJSON *pol = cJSON_ParseWithLength(b.data, b.len);
	cs_buf_free_secure(&b);
	char vs[24];
	snprintf(vs, sizeof vs, "%d", cJSON_GetObjectItem(pol, "latest_version")->valueint);
	cJSON *e = cJSON_GetObjectItem(cJSON_GetObjectItem(pol, "keys"), vs);
	double t = cJSON_GetObjectItem(e, "time")->valuedouble - (double)secs;
	cJSON_ReplaceItemInObject(e, "time", cJSON_CreateNumber(t));
	char *js = cJSON_PrintUnformatted(pol);
	cJSON_Delete(pol);
	ck_assert_int_eq(cs_txn_put(&tx, k, js, strlen(js)), 0);
	free(js);
	bool pending;
	int status = -1;
	ck_assert_int_eq(cs_txn_commit(&tx, committed, &status, &pending), 0);
	ck_assert_int_eq(cs_store_apply(&st.store, ++applied_index, proposed.data, proposed.len),
			 0);
	cs_buf_reset(&proposed);
	cs_storage_batch_done(&st, proposed_token, 0);
}

static void periodic(void)
{
	struct cs_request *req = calloc(1, sizeof *req);
	req->core = &test_core;
	req->op = CS_OP_UPDATE;
	req->root = true;
	req->mount = &mount;
	req->data = cJSON_CreateObject();
	cs_txn_begin(&req->txn, &st, kr);
	int rc = tr_periodic(req);
	while (rc == CS_EASYNC)
		rc = run_deferred(req);
	ck_assert_int_eq(rc, 0);
	commit(req);
}

static int latest(const char *name)
{
	char rel[64];
	snprintf(rel, sizeof rel, "keys/%s", name);
	struct cs_request *r = run(CS_OP_READ, rel, NULL, 0);
	int v = cJSON_GetObjectItem(r->resp_data, "latest_version")->valueint;
	done(r);
	return v;
}

/* The periodic function rotates exactly the due keys (symmetric inline, ed25519 on the
 * pool), once, and old ciphertexts still decrypt. */
START_TEST(test_periodic_rotation)
{
	commit(run(CS_OP_UPDATE, "keys/due", "{\"auto_rotate_period\":\"1h\"}", 0));
	commit(run(CS_OP_UPDATE, "keys/fresh", "{\"auto_rotate_period\":\"1h\"}", 0));
	commit(run(CS_OP_UPDATE, "keys/never", "{}", 0));
	commit(
	    run(CS_OP_UPDATE, "keys/sig", "{\"type\":\"ed25519\",\"auto_rotate_period\":3600}", 0));
	char *ct = enc("due", NULL);
	tr_cache_reset(&test_core);
	periodic();
	ck_assert_uint_eq(cache_entries(NULL), 0); /* the scan does not fill the cache */
	ck_assert_int_eq(latest("due"), 1);
	age_key("due", 3601);
	age_key("never", 100000);
	age_key("sig", 7200);
	age_key("fresh", 3000);
	periodic();
	ck_assert_int_eq(latest("due"), 2);
	ck_assert_int_eq(latest("sig"), 2);
	ck_assert_int_eq(latest("fresh"), 1);
	ck_assert_int_eq(latest("never"), 1);
	ck_assert_uint_eq(tr_rotate_count(&test_core), 2);
	/* Version 2 is new: nothing more is due. */
	periodic();
	ck_assert_int_eq(latest("due"), 2);
	dec_ok("due", ct, NULL);
	free(ct);
}
END_TEST

/* RFC 8032 §7.1 test 1: a key built from its seed (a Vault backup's form) signs the empty
 * message as published, through the fixed-encoding fast path of the key loader; its public
 * key is the published one. */
START_TEST(test_ed25519_rfc8032_from_seed)
{
	uint8_t seed[32], want[64];
	size_t n;
	unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", seed, &n);
	unhex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bac"
	      "c61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
	      want, &n);
	uint8_t *der = NULL;
	size_t len = 0;
	ck_assert_int_eq(cs_transit_ed25519_from_seed(seed, &der, &len), 0);
	ck_assert_uint_eq(len, 48);
	struct cs_transit_sigopts o = {0};
	struct cs_buf sig = CS_BUF_INIT;
	const char *err = NULL;
	ck_assert_int_eq(cs_transit_asym_sign(CS_TRANSIT_ED25519, der, len, &o, (const uint8_t *)"",
					      0, &sig, &err),
			 0);
	ck_assert_uint_eq(sig.len, 64);
	ck_assert_mem_eq(sig.data, want, 64);
	char *pub = cs_transit_asym_public(CS_TRANSIT_ED25519, der, len);
	uint8_t pk[32];
	unhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", pk, &n);
	char *want_pub = cs_b64_encode(pk, 32);
	ck_assert_str_eq(pub, want_pub);
	free(pub);
	free(want_pub);
	cs_buf_free(&sig);
	free(der);
}
END_TEST

/* The P-256 key loader's fast path (engines/transit_asym.c) builds the same key as
 * OpenSSL's generic decoder: same public key, and its signatures verify under the
 * decoder's key. */
START_TEST(test_p256_fast_load_matches_decoder)
{
	uint8_t *der = NULL;
	size_t len = 0;
	ck_assert_int_eq(cs_transit_asym_generate(CS_TRANSIT_ECDSA_P256, &der, &len), 0);
	ck_assert_uint_eq(len, 138); /* the layout the fast path takes */
	const unsigned char *p = der;
	EVP_PKEY *ref = d2i_AutoPrivateKey(NULL, &p, (long)len);
	ck_assert_ptr_nonnull(ref);
	BIO *b = BIO_new(BIO_s_mem());
	ck_assert_int_eq(PEM_write_bio_PUBKEY(b, ref), 1);
	char *data = NULL;
	long n = BIO_get_mem_data(b, &data);
	char *pub = cs_transit_asym_public(CS_TRANSIT_ECDSA_P256, der, len);
	ck_assert_uint_eq(strlen(pub), (size_t)n);
	ck_assert(memcmp(pub, data, (size_t)n) == 0);
	struct cs_transit_sigopts o = {.md = "SHA256"};
	uint8_t dg[32];
	memset(dg, 7, sizeof dg);
	struct cs_buf sig = CS_BUF_INIT;
	const char *err = NULL;
	ck_assert_int_eq(
	    cs_transit_asym_sign(CS_TRANSIT_ECDSA_P256, der, len, &o, dg, sizeof dg, &sig, &err),
	    0);
	EVP_PKEY_CTX *vc = EVP_PKEY_CTX_new(ref, NULL);
	ck_assert_int_eq(EVP_PKEY_verify_init(vc), 1);
	ck_assert_int_eq(
	    EVP_PKEY_verify(vc, (const unsigned char *)sig.data, sig.len, dg, sizeof dg), 1);
	EVP_PKEY_CTX_free(vc);
	cs_buf_free(&sig);
	free(pub);
	BIO_free(b);
	EVP_PKEY_free(ref);
	free(der);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("transit");
	TCase *tc = tcase_create("crypto");
	tcase_add_test(tc, test_hkdf_rfc5869);
	tcase_add_test(tc, test_aes_gcm_vector);
	tcase_add_test(tc, test_aead_roundtrip_and_tamper);
	tcase_add_test(tc, test_format_parse);
	tcase_add_test(tc, test_digest_hmac);
	tcase_add_test(tc, test_rotate_due);
	tcase_add_test(tc, test_ed25519_rfc8032_from_seed);
	tcase_add_test(tc, test_p256_fast_load_matches_decoder);
	suite_add_tcase(s, tc);
	TCase *te = tcase_create("engine");
	tcase_add_checked_fixture(te, setup, teardown);
	tcase_add_test(te, test_every_type_roundtrip_and_storage);
	tcase_add_test(te, test_versions_and_errors);
	tcase_add_test(te, test_derived_convergent_and_upsert);
	tcase_add_test(te, test_batch);
	tcase_add_test(te, test_hmac_hash_random);
	tcase_add_test(te, test_export);
	tcase_add_test(te, test_sign_verify_every_type);
	tcase_add_test(te, test_sign_versions_prehashed_errors);
	tcase_add_test(te, test_sign_batch_and_export);
	tcase_add_test(te, test_rsa_encrypt_decrypt);
	tcase_add_test(te, test_rsa_salt_and_none);
	tcase_add_test(te, test_derived_ed25519);
	tcase_add_test(te, test_backup_restore);
	tcase_add_test(te, test_cache);
	tcase_add_test(te, test_periodic_rotation);
	tcase_set_timeout(te, 120); /* RSA key generation */
	suite_add_tcase(s, te);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
