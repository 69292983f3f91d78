/* Unit tests for the AES-GCM barrier framing and the keyring codec (storage/barrier.c). */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "lib/err.h"
#include "lib/secmem.h"
#include "lib/util.h"
#include "storage/barrier.h"

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
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
