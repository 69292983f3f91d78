/* Unit tests for the AES-GCM barrier framing and the keyring codec (storage/barrier.c). */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "lib/err.h"
#include "lib/secmem.h"
#include "lib/util.h"
#include "storage/barrier.h"
#include "tests/unit/fixtures.h"
#include "storage/keyring_store.h"
#include "storage/txn.h"

/* Keep mlock on (the production default) unless the memlock limit is too small for a
 * few dozen pages. */
static void secmem_setup(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0 ||
	    (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 1024 * 1024))
		cs_secmem_set_mlock(false);
}

static void hex(const char *s, uint8_t *out, size_t n)
{
	ck_assert_uint_eq(strlen(s), 2 * n);
	ck_assert_int_eq(cs_hex_decode(s, strlen(s), out), (long)n);
}

static bool contains(const void *hay, size_t hn, const void *needle, size_t nn)
{
	return nn <= hn && memmem(hay, hn, needle, nn) != NULL;
}

START_TEST(test_aead_round_trip)
{
	uint8_t key[CS_KEY_LEN];
	cs_random(key, sizeof key);
	const size_t sizes[] = {0, 1, 15, 16, 17, 1000, 70000};
	for (size_t i = 0; i < CS_ARRAY_LEN(sizes); i++) {
		size_t n = sizes[i];
		uint8_t *pt = malloc(n + 1);
		cs_random(pt, n + 1);
		struct cs_buf ct = CS_BUF_INIT, out = CS_BUF_INIT;
		ck_assert_int_eq(cs_aead_seal(key, 7, "a/b", 3, pt, n, &ct), 0);
		ck_assert_uint_eq(ct.len, n + CS_BARRIER_OVERHEAD);
		ck_assert_uint_eq((uint8_t)ct.data[4], CS_BARRIER_VERSION);
		ck_assert_uint_eq(cs_aead_term(ct.data, ct.len), 7);
		ck_assert_int_eq(cs_aead_open(key, "a/b", 3, ct.data, ct.len, &out), 0);
		ck_assert_uint_eq(out.len, n);
		if (n)
			ck_assert_mem_eq(out.data, pt, n);
		ck_assert_uint_eq(out.data[out.len], 0);
		cs_buf_free(&ct);
		cs_buf_free_secure(&out);
		free(pt);
	}
	/* No AAD at all, and output appended after existing content. */
	struct cs_buf ct = CS_BUF_INIT, out = CS_BUF_INIT;
	cs_buf_puts(&ct, "prefix");
	cs_buf_puts(&out, "keep:");
	ck_assert_int_eq(cs_aead_seal(key, 1, NULL, 0, "hello", 5, &ct), 0);
	ck_assert_uint_eq(ct.len, 6 + 5 + CS_BARRIER_OVERHEAD);
	ck_assert_mem_eq(ct.data, "prefix", 6);
	ck_assert_int_eq(cs_aead_open(key, NULL, 0, ct.data + 6, ct.len - 6, &out), 0);
	ck_assert_str_eq(out.data, "keep:hello");
	cs_buf_free(&ct);
	cs_buf_free_secure(&out);
}
END_TEST

START_TEST(test_aead_framing_layout)
{
	uint8_t key[CS_KEY_LEN] = {0};
	struct cs_buf a = CS_BUF_INIT, b = CS_BUF_INIT;
	ck_assert_int_eq(cs_aead_seal(key, 0x01020304, "p", 1, "x", 1, &a), 0);
	ck_assert_int_eq(cs_aead_seal(key, 0x01020304, "p", 1, "x", 1, &b), 0);
	const uint8_t be[4] = {1, 2, 3, 4};
	ck_assert_mem_eq(a.data, be, 4);
	ck_assert_uint_eq(cs_aead_term(a.data, a.len), 0x01020304);
	/* Fresh nonce per seal: two encryptions of the same input differ. */
	ck_assert(memcmp(a.data + 5, b.data + 5, CS_BARRIER_NONCE_LEN) != 0);
	ck_assert(memcmp(a.data, b.data, a.len) != 0);
	/* Too short to be a frame → term 0. */
	ck_assert_uint_eq(cs_aead_term(a.data, CS_BARRIER_OVERHEAD - 1), 0);
	ck_assert_uint_eq(cs_aead_term(a.data, 3), 0);
	ck_assert_uint_eq(cs_aead_term(NULL, 0), 0);
	ck_assert_uint_eq(cs_aead_term(a.data, CS_BARRIER_OVERHEAD), 0x01020304);
	cs_buf_free(&a);
	cs_buf_free(&b);
}
END_TEST

START_TEST(test_aead_rejects_tampering)
{
	uint8_t key[CS_KEY_LEN], other[CS_KEY_LEN];
	cs_random(key, sizeof key);
	cs_random(other, sizeof other);
	const char *msg = "the quick brown fox";
	struct cs_buf ct = CS_BUF_INIT, out = CS_BUF_INIT;
	ck_assert_int_eq(cs_aead_seal(key, 3, "sys/x", 5, msg, strlen(msg), &ct), 0);

	ck_assert_int_eq(cs_aead_open(key, "sys/y", 5, ct.data, ct.len, &out), CS_ECRYPTO);
	ck_assert_int_eq(cs_aead_open(key, "sys/x/", 6, ct.data, ct.len, &out), CS_ECRYPTO);
	ck_assert_int_eq(cs_aead_open(key, NULL, 0, ct.data, ct.len, &out), CS_ECRYPTO);
	ck_assert_int_eq(cs_aead_open(other, "sys/x", 5, ct.data, ct.len, &out), CS_ECRYPTO);
	ck_assert_uint_eq(out.len, 0);

	/* Flip each bit of the version, nonce, ciphertext and tag. The term is not
	 * authenticated by the AEAD (it selects the key instead; see the keyring test). */
	uint8_t *copy = malloc(ct.len);
	for (size_t i = 4; i < ct.len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			memcpy(copy, ct.data, ct.len);
			copy[i] ^= (uint8_t)(1u << bit);
			ck_assert_msg(cs_aead_open(key, "sys/x", 5, copy, ct.len, &out) ==
					  CS_ECRYPTO,
				      "flip byte %zu bit %d accepted", i, bit);
			ck_assert_uint_eq(out.len, 0);
		}
	}
	/* Every truncation, and an extension. */
	for (size_t n = 0; n < ct.len; n++)
		ck_assert_int_eq(cs_aead_open(key, "sys/x", 5, ct.data, n, &out), CS_ECRYPTO);
	memcpy(copy, ct.data, ct.len);
	struct cs_buf longer = CS_BUF_INIT;
	cs_buf_append(&longer, ct.data, ct.len);
	cs_buf_putc(&longer, 0);
	ck_assert_int_eq(cs_aead_open(key, "sys/x", 5, longer.data, longer.len, &out), CS_ECRYPTO);
	/* Version 1 (legacy, no AAD) is not accepted either. */
	copy[4] = 0x01;
	ck_assert_int_eq(cs_aead_open(key, NULL, 0, copy, ct.len, &out), CS_ECRYPTO);
	ck_assert_uint_eq(out.len, 0);
	/* The untouched frame still opens. */
	ck_assert_int_eq(cs_aead_open(key, "sys/x", 5, ct.data, ct.len, &out), 0);
	ck_assert_str_eq(out.data, msg);
	free(copy);
	cs_buf_free(&longer);
	cs_buf_free(&ct);
	cs_buf_free_secure(&out);
}
END_TEST

/* GCM spec test case 16 (AES-256, 96-bit IV, AAD), wrapped in our framing. */
START_TEST(test_aead_known_answer)
{
	uint8_t key[32], pt[60], aad[20], iv[12], ctx[60], tag[16];
	hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", key, 32);
	hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
	    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
	    pt, 60);
	hex("feedfacedeadbeeffeedfacedeadbeefabaddad2", aad, 20);
	hex("cafebabefacedbaddecaf888", iv, 12);
	hex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
	    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
	    ctx, 60);
	hex("76fc6ece0f4e1768cddf8853bb2d551b", tag, 16);

	uint8_t frame[4 + 1 + 12 + 60 + 16] = {0, 0, 0, 9, CS_BARRIER_VERSION};
	memcpy(frame + 5, iv, 12);
	memcpy(frame + 17, ctx, 60);
	memcpy(frame + 77, tag, 16);
	struct cs_buf out = CS_BUF_INIT;
	ck_assert_int_eq(cs_aead_open(key, aad, sizeof aad, frame, sizeof frame, &out), 0);
	ck_assert_uint_eq(out.len, 60);
	ck_assert_mem_eq(out.data, pt, 60);
	ck_assert_uint_eq(cs_aead_term(frame, sizeof frame), 9);
	frame[92] ^= 1;
	cs_buf_reset(&out);
	ck_assert_int_eq(cs_aead_open(key, aad, sizeof aad, frame, sizeof frame, &out), CS_ECRYPTO);
	cs_buf_free_secure(&out);
}
END_TEST

START_TEST(test_barrier_round_trip_and_paths)
{
	struct cs_keyring *kr = cs_keyring_new();
	const char *secret = "s3cr3t-value-that-must-not-leak";
	struct cs_buf ct = CS_BUF_INIT, out = CS_BUF_INIT;
	ck_assert_int_eq(cs_barrier_encrypt(kr, "logical/abc/foo", secret, strlen(secret), &ct), 0);
	ck_assert_uint_eq(cs_aead_term(ct.data, ct.len), 1);
	ck_assert(!contains(ct.data, ct.len, secret, strlen(secret)));
	ck_assert(!contains(ct.data, ct.len, "s3cr3t", 6));
	ck_assert(!contains(ct.data, ct.len, "logical/abc/foo", 15));
	ck_assert_int_eq(cs_barrier_decrypt(kr, "logical/abc/foo", ct.data, ct.len, &out), 0);
	ck_assert_str_eq(out.data, secret);
	cs_buf_reset(&out);
	ck_assert_int_eq(cs_barrier_decrypt(kr, "logical/abc/bar", ct.data, ct.len, &out),
			 CS_ECRYPTO);
	ck_assert_int_eq(cs_barrier_decrypt(kr, "", ct.data, ct.len, &out), CS_ECRYPTO);
	/* Another keyring (another key at the same term) cannot read it. */
	struct cs_keyring *kr2 = cs_keyring_new();
	ck_assert_int_eq(cs_barrier_decrypt(kr2, "logical/abc/foo", ct.data, ct.len, &out),
			 CS_ECRYPTO);
	/* Garbage and short input. */
	ck_assert_int_eq(cs_barrier_decrypt(kr, "logical/abc/foo", "xx", 2, &out), CS_ECRYPTO);
	ck_assert_int_eq(cs_barrier_decrypt(kr, "logical/abc/foo", ct.data, 0, &out), CS_ECRYPTO);
	ck_assert_uint_eq(out.len, 0);
	cs_keyring_free(kr2);
	cs_keyring_free(kr);
	cs_buf_free(&ct);
	cs_buf_free_secure(&out);
}
END_TEST

START_TEST(test_keyring_new)
{
	struct cs_keyring *kr = cs_keyring_new();
	ck_assert_uint_eq(kr->n_keys, 1);
	ck_assert_uint_eq(kr->active_term, 1);
	ck_assert_uint_eq(kr->keys[0].term, 1);
	ck_assert_uint_eq(kr->keys[0].encryptions, 0);
	int64_t now = cs_now_ns();
	ck_assert(kr->keys[0].install_time_ns <= now);
	ck_assert(kr->keys[0].install_time_ns > now - 60LL * 1000000000LL);
	ck_assert(memcmp(kr->root_key, kr->keys[0].key, CS_KEY_LEN) != 0);
	uint8_t zero[CS_KEY_LEN] = {0};
	ck_assert(memcmp(kr->root_key, zero, CS_KEY_LEN) != 0);
	ck_assert(memcmp(kr->keys[0].key, zero, CS_KEY_LEN) != 0);
	ck_assert_ptr_eq(cs_keyring_term(kr, 1), &kr->keys[0]);
	ck_assert_ptr_null(cs_keyring_term(kr, 0));
	ck_assert_ptr_null(cs_keyring_term(kr, 2));
	cs_keyring_free(kr);
	cs_keyring_free(NULL);
}
END_TEST

START_TEST(test_keyring_rotate)
{
	struct cs_keyring *kr = cs_keyring_new();
	struct cs_buf v1 = CS_BUF_INIT, v2 = CS_BUF_INIT, v3 = CS_BUF_INIT, out = CS_BUF_INIT;
	ck_assert_int_eq(cs_barrier_encrypt(kr, "k", "one", 3, &v1), 0);
	cs_keyring_rotate(kr);
	ck_assert_uint_eq(kr->active_term, 2);
	ck_assert_uint_eq(kr->n_keys, 2);
	ck_assert(memcmp(kr->keys[0].key, kr->keys[1].key, CS_KEY_LEN) != 0);
	ck_assert_int_eq(cs_barrier_encrypt(kr, "k", "two", 3, &v2), 0);
	ck_assert_uint_eq(cs_aead_term(v2.data, v2.len), 2);
	cs_keyring_rotate(kr);
	ck_assert_int_eq(cs_barrier_encrypt(kr, "k", "three", 5, &v3), 0);
	ck_assert_uint_eq(cs_aead_term(v3.data, v3.len), 3);
	ck_assert_uint_eq(kr->n_keys, 3);
	for (size_t i = 0; i < kr->n_keys; i++)
		ck_assert_uint_eq(kr->keys[i].term, i + 1);

	ck_assert_int_eq(cs_barrier_decrypt(kr, "k", v1.data, v1.len, &out), 0);
	ck_assert_str_eq(out.data, "one");
	cs_buf_reset(&out);
	ck_assert_int_eq(cs_barrier_decrypt(kr, "k", v2.data, v2.len, &out), 0);
	ck_assert_str_eq(out.data, "two");
	cs_buf_reset(&out);
	ck_assert_int_eq(cs_barrier_decrypt(kr, "k", v3.data, v3.len, &out), 0);
	ck_assert_str_eq(out.data, "three");
	cs_buf_reset(&out);

	/* Re-labelling a frame with another known term selects the wrong key. */
	v2.data[3] = 1;
	ck_assert_int_eq(cs_barrier_decrypt(kr, "k", v2.data, v2.len, &out), CS_ECRYPTO);
	/* An unknown term fails cleanly. */
	v2.data[3] = 9;
	ck_assert_int_eq(cs_barrier_decrypt(kr, "k", v2.data, v2.len, &out), CS_ECRYPTO);
	ck_assert_uint_eq(out.len, 0);
	cs_keyring_free(kr);
	cs_buf_free(&v1);
	cs_buf_free(&v2);
	cs_buf_free(&v3);
	cs_buf_free_secure(&out);
}
END_TEST

START_TEST(test_keyring_encode_decode)
{
	struct cs_keyring *kr = cs_keyring_new();
	cs_keyring_rotate(kr);
	cs_keyring_rotate(kr);
	kr->keys[1].encryptions = 123456789012ULL;
	kr->keys[0].install_time_ns = 1700000000123456789LL;
	kr->keys[1].install_time_ns = 1700000000000000000LL;
	kr->keys[2].install_time_ns = 1700000000120000000LL;

	struct cs_buf json = CS_BUF_INIT;
	cs_keyring_encode(kr, &json);
	ck_assert_uint_eq(strlen(json.data), json.len);

	/* Shape: Vault's field names, RFC 3339 times as Go prints them. */
	cJSON *root = cJSON_Parse(json.data);
	ck_assert_ptr_nonnull(root);
	ck_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "MasterKey")));
	cJSON *keys = cJSON_GetObjectItemCaseSensitive(root, "Keys");
	ck_assert_int_eq(cJSON_GetArraySize(keys), 3);
	cJSON *k0 = cJSON_GetArrayItem(keys, 0);
	ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(k0, "Term")->valueint, 1);
	ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(k0, "Version")->valueint, 1);
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(k0, "InstallTime")->valuestring,
			 "2023-11-14T22:13:20.123456789Z");
	ck_assert_str_eq(
	    cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(keys, 1), "InstallTime")
		->valuestring,
	    "2023-11-14T22:13:20Z");
	ck_assert_str_eq(
	    cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(keys, 2), "InstallTime")
		->valuestring,
	    "2023-11-14T22:13:20.12Z");
	ck_assert(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(k0, "encryptions")));
	cJSON *rc = cJSON_GetObjectItemCaseSensitive(root, "RotationConfig");
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(rc, "Disabled")));
	ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(rc, "MaxOperations")->valuedouble,
			    3865470566.0);
	cJSON_Delete(root);
	ck_assert_ptr_nonnull(strstr(json.data, "\"encryptions\":123456789012"));

	struct cs_keyring *back = NULL;
	ck_assert_int_eq(cs_keyring_decode(json.data, json.len, &back), 0);
	ck_assert_mem_eq(back->root_key, kr->root_key, CS_KEY_LEN);
	ck_assert_uint_eq(back->n_keys, 3);
	ck_assert_uint_eq(back->active_term, 3);
	for (size_t i = 0; i < 3; i++) {
		ck_assert_uint_eq(back->keys[i].term, kr->keys[i].term);
		ck_assert_mem_eq(back->keys[i].key, kr->keys[i].key, CS_KEY_LEN);
		ck_assert_int_eq(back->keys[i].install_time_ns, kr->keys[i].install_time_ns);
		ck_assert_uint_eq(back->keys[i].encryptions, kr->keys[i].encryptions);
	}
	/* Values written with the original decrypt with the decoded copy. */
	struct cs_buf ct = CS_BUF_INIT, out = CS_BUF_INIT;
	ck_assert_int_eq(cs_barrier_encrypt(kr, "core/x", "v", 1, &ct), 0);
	ck_assert_int_eq(cs_barrier_decrypt(back, "core/x", ct.data, ct.len, &out), 0);
	ck_assert_str_eq(out.data, "v");

	/* Re-encoding the decoded keyring gives the same JSON. */
	struct cs_buf again = CS_BUF_INIT;
	cs_keyring_encode(back, &again);
	ck_assert_str_eq(again.data, json.data);

	cs_keyring_free(back);
	cs_keyring_free(kr);
	cs_buf_free_secure(&json);
	cs_buf_free_secure(&again);
	cs_buf_free(&ct);
	cs_buf_free_secure(&out);
}
END_TEST

#define K32 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define K16 "AAECAwQFBgcICQoLDA0ODw=="

START_TEST(test_keyring_decode_tolerant)
{
	/* Only MasterKey, Term and Value; unordered terms; a Vault-style local offset and
	 * Go's zero time; unknown fields ignored. */
	const char *js = "{\"MasterKey\":\"" K32 "\",\"Keys\":["
			 "{\"Term\":5,\"Value\":\"" K32 "\",\"InstallTime\":"
			 "\"2023-11-14T23:13:20.5+01:00\"},"
			 "{\"Term\":2,\"Version\":1,\"Value\":\"" K32 "\","
			 "\"InstallTime\":\"0001-01-01T00:00:00Z\",\"extra\":[1,2]}],"
			 "\"Other\":true}";
	struct cs_keyring *kr = NULL;
	ck_assert_int_eq(cs_keyring_decode(js, strlen(js), &kr), 0);
	ck_assert_uint_eq(kr->n_keys, 2);
	ck_assert_uint_eq(kr->keys[0].term, 2);
	ck_assert_uint_eq(kr->keys[1].term, 5);
	ck_assert_uint_eq(kr->active_term, 5);
	ck_assert_int_eq(kr->keys[1].install_time_ns, 1700000000500000000LL);
	ck_assert_int_eq(kr->keys[0].install_time_ns, 0);
	ck_assert_uint_eq(kr->keys[0].encryptions, 0);
	for (int i = 0; i < CS_KEY_LEN; i++)
		ck_assert_uint_eq(kr->root_key[i], i);
	/* Decoded keyring works and rotates past its highest term. */
	cs_keyring_rotate(kr);
	ck_assert_uint_eq(kr->active_term, 6);
	cs_keyring_free(kr);
}
END_TEST

START_TEST(test_keyring_decode_rejects)
{
	const char *bad[] = {
	    "",
	    "garbage",
	    "[]",
	    "{}",
	    "null",
	    "{\"MasterKey\":\"" K32 "\"}",
	    "{\"MasterKey\":\"" K32 "\",\"Keys\":[]}",
	    "{\"MasterKey\":\"" K32 "\",\"Keys\":{}}",
	    "{\"Keys\":[{\"Term\":1,\"Value\":\"" K32 "\"}]}",
	    "{\"MasterKey\":\"" K16 "\",\"Keys\":[{\"Term\":1,\"Value\":\"" K32 "\"}]}",
	    "{\"MasterKey\":\"" K32 "\",\"Keys\":[{\"Term\":1,\"Value\":\"" K16 "\"}]}",
	    "{\"MasterKey\":\"" K32 "\",\"Keys\":[{\"Term\":1,\"Value\":\"!!notb64!!\"}]}",
	    "{\"MasterKey\":\"" K32 "\",\"Keys\":[{\"Term\":1}]}",
	    "{\"MasterKey\":\"" K32 "\",\"Keys\":[{\"Value\":\"" K32 "\"}]}",
	    "{\"MasterKey\":\"" K32 "\",\"Keys\":[{\"Term\":0,\"Value\":\"" K32 "\"}]}",
	    "{\"MasterKey\":\"" K32 "\",\"Keys\":[{\"Term\":-1,\"Value\":\"" K32 "\"}]}",
	    "{\"MasterKey\":\"" K32 "\",\"Keys\":[{\"Term\":1.5,\"Value\":\"" K32 "\"}]}",
	    "{\"MasterKey\":\"" K32 "\",\"Keys\":[{\"Term\":4294967296,\"Value\":\"" K32 "\"}]}",
	    "{\"MasterKey\":\"" K32 "\",\"Keys\":[{\"Term\":\"1\",\"Value\":\"" K32 "\"}]}",
	    "{\"MasterKey\":\"" K32 "\",\"Keys\":[{\"Term\":1,\"Value\":\"" K32 "\"},"
	    "{\"Term\":1,\"Value\":\"" K32 "\"}]}",
	    "{\"MasterKey\":\"" K32 "\",\"Keys\":[{\"Term\":1,\"Value\":\"" K32
	    "\",\"InstallTime\":\"yesterday\"}]}",
	    "{\"MasterKey\":\"" K32 "\",\"Keys\":[{\"Term\":1,\"Value\":\"" K32
	    "\",\"encryptions\":-3}]}",
	    "{\"MasterKey\":7,\"Keys\":[{\"Term\":1,\"Value\":\"" K32 "\"}]}",
	    "{\"MasterKey\":\"" K32 "\",\"Keys\":[7]}",
	};
	for (size_t i = 0; i < CS_ARRAY_LEN(bad); i++) {
		struct cs_keyring *kr = NULL;
		ck_assert_msg(cs_keyring_decode(bad[i], strlen(bad[i]), &kr) == CS_EINVAL,
			      "accepted bad keyring #%zu: %s", i, bad[i]);
		ck_assert_ptr_null(kr);
	}
	/* A truncated valid document. */
	struct cs_keyring *kr = cs_keyring_new();
	struct cs_buf json = CS_BUF_INIT;
	cs_keyring_encode(kr, &json);
	for (size_t n = 0; n < json.len; n += 7) {
		struct cs_keyring *back = NULL;
		ck_assert_int_eq(cs_keyring_decode(json.data, n, &back), CS_EINVAL);
	}
	struct cs_keyring *back = NULL;
	ck_assert_int_eq(cs_keyring_decode(json.data, json.len, &back), 0);
	cs_keyring_free(back);
	cs_keyring_free(kr);
	cs_buf_free_secure(&json);
}
END_TEST

START_TEST(test_keyring_sealed_under_root)
{
	/* The way the seal stores it: keyring JSON under the root key, term 1. */
	struct cs_keyring *kr = cs_keyring_new();
	struct cs_buf json = CS_BUF_INIT, ct = CS_BUF_INIT, plain = CS_BUF_INIT;
	cs_keyring_encode(kr, &json);
	ck_assert_int_eq(
	    cs_aead_seal(kr->root_key, 1, "core/keyring", 12, json.data, json.len, &ct), 0);
	char *b64 = cs_b64_encode(kr->keys[0].key, CS_KEY_LEN);
	ck_assert(!contains(ct.data, ct.len, b64, strlen(b64)));
	ck_assert(!contains(ct.data, ct.len, kr->keys[0].key, CS_KEY_LEN));
	free(b64);
	ck_assert_int_eq(cs_aead_open(kr->root_key, "core/keyring", 12, ct.data, ct.len, &plain),
			 0);
	struct cs_keyring *back = NULL;
	ck_assert_int_eq(cs_keyring_decode(plain.data, plain.len, &back), 0);
	ck_assert_mem_eq(back->keys[0].key, kr->keys[0].key, CS_KEY_LEN);
	cs_keyring_free(back);
	cs_keyring_free(kr);
	cs_buf_free_secure(&json);
	cs_buf_free_secure(&plain);
	cs_buf_free(&ct);
}
END_TEST

/* ---------------------------------------------------------------- rotation */

START_TEST(test_rotation_config_codec)
{
	struct cs_keyring *kr = cs_keyring_new();
	ck_assert(!kr->rotation_disabled);
	ck_assert_uint_eq(kr->max_operations, CS_ROTATE_MAX_OPERATIONS);
	ck_assert_int_eq(kr->rotation_interval, 0);
	kr->rotation_disabled = true;
	kr->max_operations = 2000000;
	kr->rotation_interval = 48 * 3600;
	struct cs_buf json = CS_BUF_INIT;
	cs_keyring_encode(kr, &json);
	/* Vault's shape: Interval is a Go time.Duration (nanoseconds). */
	ck_assert_ptr_nonnull(strstr(json.data, "\"RotationConfig\":{\"Disabled\":true,"
						"\"MaxOperations\":2000000,"
						"\"Interval\":172800000000000}"));
	struct cs_keyring *back = NULL;
	ck_assert_int_eq(cs_keyring_decode(json.data, json.len, &back), 0);
	ck_assert(back->rotation_disabled);
	ck_assert_uint_eq(back->max_operations, 2000000);
	ck_assert_int_eq(back->rotation_interval, 48 * 3600);
	cs_keyring_free(back);
	cs_buf_free_secure(&json);
	cs_keyring_free(kr);

	/* As Vault loads it: 0 or too many operations mean the maximum. */
	const char *zero = "{\"MasterKey\":\"" K32 "\",\"Keys\":[{\"Term\":1,\"Value\":\"" K32
			   "\"}],\"RotationConfig\":{\"Disabled\":false,\"MaxOperations\":0,"
			   "\"Interval\":0}}";
	ck_assert_int_eq(cs_keyring_decode(zero, strlen(zero), &back), 0);
	ck_assert_uint_eq(back->max_operations, CS_ROTATE_MAX_OPERATIONS);
	cs_keyring_free(back);
	const char *bad[] = {
	    "{\"MasterKey\":\"" K32 "\",\"Keys\":[{\"Term\":1,\"Value\":\"" K32
	    "\"}],\"RotationConfig\":7}",
	    "{\"MasterKey\":\"" K32 "\",\"Keys\":[{\"Term\":1,\"Value\":\"" K32
	    "\"}],\"RotationConfig\":{\"Disabled\":\"no\"}}",
	    "{\"MasterKey\":\"" K32 "\",\"Keys\":[{\"Term\":1,\"Value\":\"" K32
	    "\"}],\"RotationConfig\":{\"MaxOperations\":-1}}",
	    "{\"MasterKey\":\"" K32 "\",\"Keys\":[{\"Term\":1,\"Value\":\"" K32
	    "\"}],\"RotationConfig\":{\"Interval\":-5}}",
	};
	for (size_t i = 0; i < CS_ARRAY_LEN(bad); i++) {
		back = NULL;
		ck_assert_int_eq(cs_keyring_decode(bad[i], strlen(bad[i]), &back), CS_EINVAL);
		ck_assert_ptr_null(back);
	}
}
END_TEST

START_TEST(test_encryptions_counted_per_term)
{
	struct cs_keyring *kr = cs_keyring_new();
	struct cs_buf ct = CS_BUF_INIT, out = CS_BUF_INIT;
	for (int i = 0; i < 5; i++) {
		cs_buf_reset(&ct);
		ck_assert_int_eq(cs_barrier_encrypt(kr, "k", "v", 1, &ct), 0);
	}
	ck_assert_uint_eq(cs_keyring_encryptions(kr), 5);
	/* Decryption is not an encryption. */
	ck_assert_int_eq(cs_barrier_decrypt(kr, "k", ct.data, ct.len, &out), 0);
	ck_assert_uint_eq(cs_keyring_encryptions(kr), 5);
	/* The retiring term keeps its count; the new one starts at zero. */
	cs_keyring_rotate(kr);
	ck_assert_uint_eq(cs_keyring_term(kr, 1)->encryptions, 5);
	ck_assert_uint_eq(cs_keyring_encryptions(kr), 0);
	struct cs_buf ct2 = CS_BUF_INIT;
	ck_assert_int_eq(cs_barrier_encrypt(kr, "k", "w", 1, &ct2), 0);
	ck_assert_uint_eq(cs_keyring_encryptions(kr), 1);
	/* The record carries the live count of the active term. */
	struct cs_buf json = CS_BUF_INIT;
	cs_keyring_encode(kr, &json);
	struct cs_keyring *back = NULL;
	ck_assert_int_eq(cs_keyring_decode(json.data, json.len, &back), 0);
	ck_assert_uint_eq(cs_keyring_term(back, 1)->encryptions, 5);
	ck_assert_uint_eq(cs_keyring_encryptions(back), 1);
	cs_keyring_free(back);
	cs_buf_free_secure(&json);
	cs_buf_free(&ct);
	cs_buf_free(&ct2);
	cs_buf_free_secure(&out);
	cs_keyring_free(kr);
}
END_TEST

START_TEST(test_install_in_place)
{
	struct cs_keyring *kr = cs_keyring_new();
	struct cs_buf old = CS_BUF_INIT, json = CS_BUF_INIT, out = CS_BUF_INIT;
	ck_assert_int_eq(cs_barrier_encrypt(kr, "k", "old", 3, &old), 0);
	/* Another node's view: the same keyring, rotated, as raft would bring it. */
	cs_keyring_encode(kr, &json);
	struct cs_keyring *other = NULL;
	ck_assert_int_eq(cs_keyring_decode(json.data, json.len, &other), 0);
	cs_keyring_rotate(other);
	cs_buf_reset(&json);
	cs_keyring_encode(other, &json);
	cs_keyring_free(other);
	struct cs_keyring *fresh = NULL;
	ck_assert_int_eq(cs_keyring_decode(json.data, json.len, &fresh), 0);

	const struct cs_keyring *same = kr;
	cs_keyring_install(kr, fresh);
	ck_assert_ptr_eq(kr, same);
	ck_assert_uint_eq(kr->active_term, 2);
	ck_assert_uint_eq(cs_keyring_encryptions(kr), 0);
	/* Old terms keep decrypting; new writes use the newest. */
	ck_assert_int_eq(cs_barrier_decrypt(kr, "k", old.data, old.len, &out), 0);
	ck_assert_str_eq(out.data, "old");
	struct cs_buf nw = CS_BUF_INIT;
	ck_assert_int_eq(cs_barrier_encrypt(kr, "k", "new", 3, &nw), 0);
	ck_assert_uint_eq(cs_aead_term(nw.data, nw.len), 2);

	/* Same term again (a config change): this process's count is kept. */
	cs_buf_reset(&json);
	cs_keyring_encode(kr, &json);
	ck_assert_int_eq(cs_keyring_decode(json.data, json.len, &fresh), 0);
	fresh->max_operations = 1234567;
	struct cs_buf b2 = CS_BUF_INIT;
	ck_assert_int_eq(cs_barrier_encrypt(kr, "k", "x", 1, &b2), 0);
	cs_keyring_install(kr, fresh);
	ck_assert_uint_eq(kr->max_operations, 1234567);
	ck_assert_uint_eq(cs_keyring_encryptions(kr), 2);
	/* An older record (a restored snapshot: term 1 only, fewer encryptions) goes back to
	 * term 1 but never forgets how much each key was used. */
	struct cs_keyring *older = NULL;
	cs_buf_reset(&json);
	const char *js = "{\"MasterKey\":\"" K32 "\",\"Keys\":[{\"Term\":1,\"Value\":\"" K32
			 "\",\"encryptions\":0}]}";
	ck_assert_int_eq(cs_keyring_decode(js, strlen(js), &older), 0);
	uint64_t used1 = cs_keyring_term(kr, 1)->encryptions;
	ck_assert_uint_ge(used1, 1);
	cs_keyring_install(kr, older);
	ck_assert_uint_eq(kr->active_term, 1);
	ck_assert_uint_eq(cs_keyring_encryptions(kr), used1);
	cs_buf_free(&b2);
	cs_buf_free(&nw);
	cs_buf_free(&old);
	cs_buf_free_secure(&json);
	cs_buf_free_secure(&out);
	cs_keyring_free(kr);
}
END_TEST

START_TEST(test_rotation_due)
{
	struct cs_keyring *kr = cs_keyring_new();
	int64_t t0 = kr->keys[0].install_time_ns, day = 86400LL * 1000000000LL;
	kr->max_operations = 1000;
	ck_assert_ptr_null(cs_keyring_rotation_due(kr, 999, t0 + 365 * day));
	ck_assert_str_eq(cs_keyring_rotation_due(kr, 1000, t0), "reached max operations");
	kr->rotation_interval = 86400;
	ck_assert_ptr_null(cs_keyring_rotation_due(kr, 0, t0 + day - 1));
	ck_assert_str_eq(cs_keyring_rotation_due(kr, 0, t0 + day), "rotation interval reached");
	/* An unknown install time is never "old". */
	kr->keys[0].install_time_ns = 0;
	ck_assert_ptr_null(cs_keyring_rotation_due(kr, 0, t0 + day));
	kr->rotation_disabled = true;
	ck_assert_ptr_null(cs_keyring_rotation_due(kr, 5000, t0 + day));
	/* Reservation batches: 1/256 of the limit, within [1, 65536]. */
	kr->max_operations = 100;
	ck_assert_uint_eq(cs_keyring_batch(kr), 1);
	kr->max_operations = 1000000;
	ck_assert_uint_eq(cs_keyring_batch(kr), 3906);
	kr->max_operations = CS_ROTATE_MAX_OPERATIONS;
	ck_assert_uint_eq(cs_keyring_batch(kr), 65536);
	cs_keyring_free(kr);
}
END_TEST

/* ---- through storage: a fake raft (as in test_txn.c) applies what is proposed ---- */

static struct cs_fx_storage fx;

static void apply_all(void)
{
	cs_fx_apply_all(&fx);
}

/* The oldest pending entries never apply (leadership lost): outcome unknown, dropped. */
static void fail_all_pending(void)
{
	cs_fx_fail_all(&fx, CS_ELEADERSHIP);
}

static void storage_setup(void)
{
	cs_fx_storage_open(&fx, "barrier", 64 << 20);
	fx.st.commit_hook = cs_keyring_account;
}

static void storage_teardown(void)
{
	cs_fx_storage_close(&fx);
}

static void noop_cb(void *data, int status)
{
	int *st = data;
	if (st)
		*st = status;
}

/* One request: `n` encrypted puts, committed. Returns cs_txn_commit's code. */
static int write_n(struct cs_keyring *kr, int n, int *status)
{
	struct cs_txn t;
	cs_txn_begin(&t, &fx.st, kr);
	for (int i = 0; i < n; i++) {
		char key[32];
		snprintf(key, sizeof key, "data/%d", i);
		ck_assert_int_eq(cs_txn_put(&t, key, "value", 5), 0);
	}
	bool pending = false;
	return cs_txn_commit(&t, noop_cb, status, &pending);
}

/* The count record of `term` in LMDB (0 if none). */
static uint64_t stored_count(const struct cs_keyring *kr, uint32_t term)
{
	char key[64];
	snprintf(key, sizeof key, CS_KEYRING_COUNT_PREFIX "%u", term);
	struct cs_buf ct = CS_BUF_INIT, pt = CS_BUF_INIT;
	uint64_t v = 0;
	if (cs_store_get(&fx.st.store, key, strlen(key), &ct) == 0) {
		ck_assert_int_eq(cs_barrier_decrypt(kr, key, ct.data, ct.len, &pt), 0);
		v = strtoull(pt.data, NULL, 10);
	}
	cs_buf_free(&ct);
	cs_buf_free_secure(&pt);
	return v;
}

/* What a restarted node would hold: the keyring record from LMDB, count refreshed. */
static struct cs_keyring *reopen(const struct cs_keyring *kr)
{
	struct cs_buf ct = CS_BUF_INIT;
	struct cs_keyring *back = NULL;
	ck_assert_int_eq(cs_store_get(&fx.st.store, CS_KEYRING_PATH, strlen(CS_KEYRING_PATH), &ct),
			 0);
	ck_assert_int_eq(cs_keyring_open(kr->root_key, ct.data, ct.len, &back), 0);
	cs_buf_free(&ct);
	cs_keyring_refresh(back, &fx.st);
	return back;
}

static struct cs_keyring *bootstrap(uint64_t max_ops)
{
	struct cs_keyring *kr = cs_keyring_new();
	kr->max_operations = max_ops;
	struct cs_txn t;
	cs_txn_begin(&t, &fx.st, kr);
	ck_assert_int_eq(cs_keyring_store(&t, kr), 0);
	bool pending;
	ck_assert_int_eq(cs_txn_commit(&t, noop_cb, NULL, &pending), 0);
	apply_all();
	return kr;
}

START_TEST(test_counts_persisted_in_batches)
{
	/* max 25600 → batches of 100 encryptions. */
	struct cs_keyring *kr = bootstrap(25600);
	ck_assert_uint_eq(cs_keyring_batch(kr), 100);
	size_t props_before = fx.n_props;
	int records = 0;
	for (int i = 0; i < 200; i++) {
		uint64_t before = stored_count(kr, 1);
		ck_assert_int_eq(write_n(kr, 3, NULL), 0);
		apply_all();
		uint64_t after = stored_count(kr, 1);
		if (after != before)
			records++;
		/* Every encryption that reached storage is covered by the record. */
		ck_assert_uint_ge(after, cs_keyring_encryptions(kr));
		ck_assert_uint_le(after, cs_keyring_encryptions(kr) + 100 + 1);
	}
	ck_assert_uint_eq(fx.n_props - props_before, 200);
	/* 600+ encryptions in batches of 100: a handful of records, not one per write. */
	ck_assert_int_ge(records, 5);
	ck_assert_int_le(records, 8);
	cs_keyring_free(kr);
}
END_TEST

START_TEST(test_crash_never_under_counts)
{
	struct cs_keyring *kr = bootstrap(25600);
	for (int i = 0; i < 37; i++) {
		ck_assert_int_eq(write_n(kr, 4, NULL), 0);
		apply_all();
	}
	uint64_t actual = cs_keyring_encryptions(kr);
	/* "Crash": the process is gone; a new one opens the stored keyring. */
	struct cs_keyring *again = reopen(kr);
	ck_assert_uint_ge(cs_keyring_encryptions(again), actual);
	ck_assert_uint_le(cs_keyring_encryptions(again), actual + cs_keyring_batch(kr) + 1);
	/* It keeps counting from there and reserves above it. */
	uint64_t start = cs_keyring_encryptions(again);
	ck_assert_int_eq(write_n(again, 2, NULL), 0);
	apply_all();
	/* The two values, and the new count record they needed. */
	ck_assert_uint_eq(cs_keyring_encryptions(again), start + 3);
	ck_assert_uint_ge(stored_count(kr, 1), cs_keyring_encryptions(again));
	cs_keyring_free(again);
	cs_keyring_free(kr);
}
END_TEST

START_TEST(test_dropped_reservation_is_rewritten)
{
	struct cs_keyring *kr = bootstrap(25600);
	ck_assert_int_eq(write_n(kr, 1, NULL), 0);
	apply_all();
	uint64_t durable = stored_count(kr, 1);
	ck_assert_uint_gt(durable, 0);
	/* Enough encryptions to need a new record, whose entry is then lost with the
	 * leadership: the next write must not trust the cached reservation. */
	int st = 0;
	ck_assert_int_eq(write_n(kr, 150, &st), 0);
	fail_all_pending();
	ck_assert_int_eq(st, CS_ELEADERSHIP);
	ck_assert_uint_eq(stored_count(kr, 1), durable);
	ck_assert_int_eq(write_n(kr, 1, NULL), 0);
	apply_all();
	ck_assert_uint_ge(stored_count(kr, 1), cs_keyring_encryptions(kr));

	/* Same for a proposal refused outright (not the leader). */
	durable = stored_count(kr, 1);
	fx.refuse = CS_ENOTACTIVE;
	ck_assert_int_eq(write_n(kr, 150, NULL), CS_ENOTACTIVE);
	fx.refuse = 0;
	ck_assert_uint_eq(stored_count(kr, 1), durable);
	ck_assert_int_eq(write_n(kr, 1, NULL), 0);
	apply_all();
	ck_assert_uint_ge(stored_count(kr, 1), cs_keyring_encryptions(kr));
	cs_keyring_free(kr);
}
END_TEST

/* Overwrite term 1's count record, outside the accounting (the damage itself). */
static void damage_count_record(struct cs_keyring *kr, bool not_even_ciphertext)
{
	const char *key = CS_KEYRING_COUNT_PREFIX "1";
	struct cs_txn t;
	bool pending;
	cs_txn_begin(&t, &fx.st, kr);
	if (not_even_ciphertext)
		ck_assert_int_eq(cs_txn_put_raw(&t, key, "garbage", 7), 0);
	else
		ck_assert_int_eq(cs_txn_put(&t, key, "lots", 4), 0);
	fx.st.commit_hook = NULL;
	ck_assert_int_eq(cs_txn_commit(&t, noop_cb, NULL, &pending), 0);
	fx.st.commit_hook = cs_keyring_account;
	apply_all();
	/* Forget the cache, as a restarted process would. */
	kr->count->cached = false;
}

START_TEST(test_unreadable_count_record_is_replaced)
{
	struct cs_keyring *kr = bootstrap(25600);
	ck_assert_int_eq(write_n(kr, 3, NULL), 0);
	apply_all();
	/* Not a number, then not even a ciphertext: writes go on, and the next one puts a
	 * valid record above the count again. */
	for (int round = 0; round < 2; round++) {
		damage_count_record(kr, round == 1);
		ck_assert_int_eq(write_n(kr, 2, NULL), 0);
		apply_all();
		ck_assert_uint_ge(stored_count(kr, 1), cs_keyring_encryptions(kr));
	}
	/* Damaged again right before a rotation: it still works and keeps term 1's count. */
	damage_count_record(kr, true);
	struct cs_txn t;
	bool pending;
	uint64_t n = cs_keyring_encryptions(kr);
	cs_txn_begin(&t, &fx.st, kr);
	ck_assert_int_eq(cs_keyring_rotate_txn(&t, kr), 0);
	ck_assert_int_eq(cs_txn_commit(&t, noop_cb, NULL, &pending), 0);
	apply_all();
	struct cs_keyring *fresh = reopen(kr);
	ck_assert_uint_eq(fresh->active_term, 2);
	ck_assert_uint_ge(cs_keyring_term(fresh, 1)->encryptions, n);
	cs_keyring_free(fresh);
	cs_keyring_free(kr);
}
END_TEST

START_TEST(test_rotate_through_txn)
{
	struct cs_keyring *kr = bootstrap(CS_ROTATE_MAX_OPERATIONS);
	struct cs_buf old = CS_BUF_INIT, out = CS_BUF_INIT;
	ck_assert_int_eq(cs_barrier_encrypt(kr, "k", "old", 3, &old), 0);
	ck_assert_int_eq(write_n(kr, 2, NULL), 0);
	uint64_t term1 = cs_keyring_encryptions(kr);
	/* Two rotations before either applied: the second sees the first in the overlay. */
	for (int i = 0; i < 2; i++) {
		struct cs_txn t;
		cs_txn_begin(&t, &fx.st, kr);
		ck_assert_int_eq(cs_keyring_rotate_txn(&t, kr), 0);
		bool pending;
		ck_assert_int_eq(cs_txn_commit(&t, noop_cb, NULL, &pending), 0);
	}
	/* Nothing changes in memory until raft applies the record. */
	ck_assert_uint_eq(kr->active_term, 1);
	apply_all();
	struct cs_keyring *fresh = reopen(kr);
	ck_assert_uint_eq(fresh->active_term, 3);
	ck_assert_uint_eq(fresh->n_keys, 3);
	ck_assert_uint_ge(cs_keyring_term(fresh, 1)->encryptions, term1);
	ck_assert_uint_eq(cs_keyring_term(fresh, 2)->encryptions, 0);
	ck_assert_int_gt(cs_keyring_term(fresh, 3)->install_time_ns, 0);
	cs_keyring_install(kr, fresh);
	ck_assert_uint_eq(kr->active_term, 3);
	ck_assert_int_eq(cs_barrier_decrypt(kr, "k", old.data, old.len, &out), 0);
	ck_assert_str_eq(out.data, "old");
	/* New writes carry term 3 and are counted and recorded under it. */
	ck_assert_int_eq(write_n(kr, 1, NULL), 0);
	apply_all();
	struct cs_buf ct = CS_BUF_INIT;
	ck_assert_int_eq(cs_store_get(&fx.st.store, "data/0", 6, &ct), 0);
	ck_assert_uint_eq(cs_aead_term(ct.data, ct.len), 3);
	ck_assert_uint_ge(stored_count(kr, 3), cs_keyring_encryptions(kr));
	ck_assert_uint_gt(cs_keyring_encryptions(kr), 0);
	cs_buf_free(&ct);
	cs_buf_free(&old);
	cs_buf_free_secure(&out);
	cs_keyring_free(kr);
}
END_TEST

int main(void)
{
	secmem_setup();
	Suite *s = suite_create("barrier");
	TCase *aead = tcase_create("aead");
	tcase_add_test(aead, test_aead_round_trip);
	tcase_add_test(aead, test_aead_framing_layout);
	tcase_add_test(aead, test_aead_rejects_tampering);
	tcase_add_test(aead, test_aead_known_answer);
	suite_add_tcase(s, aead);
	TCase *kr = tcase_create("keyring");
	tcase_add_test(kr, test_barrier_round_trip_and_paths);
	tcase_add_test(kr, test_keyring_new);
	tcase_add_test(kr, test_keyring_rotate);
	tcase_add_test(kr, test_keyring_encode_decode);
	tcase_add_test(kr, test_keyring_decode_tolerant);
	tcase_add_test(kr, test_keyring_decode_rejects);
	tcase_add_test(kr, test_keyring_sealed_under_root);
	suite_add_tcase(s, kr);
	TCase *rot = tcase_create("rotation");
	tcase_add_test(rot, test_rotation_config_codec);
	tcase_add_test(rot, test_encryptions_counted_per_term);
	tcase_add_test(rot, test_install_in_place);
	tcase_add_test(rot, test_rotation_due);
	suite_add_tcase(s, rot);
	TCase *cnt = tcase_create("counting");
	tcase_add_checked_fixture(cnt, storage_setup, storage_teardown);
	tcase_add_test(cnt, test_counts_persisted_in_batches);
	tcase_add_test(cnt, test_crash_never_under_counts);
	tcase_add_test(cnt, test_dropped_reservation_is_rewritten);
	tcase_add_test(cnt, test_unreadable_count_record_is_replaced);
	tcase_add_test(cnt, test_rotate_through_txn);
	suite_add_tcase(s, cnt);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
