/*
 * AES-256-GCM barrier with Vault's framing (see barrier.h) and the keyring codec.
 *
 * Hygiene: key bytes only live in cs_secmem memory, in caller buffers the header tells
 * to release with cs_buf_free_secure, or in short-lived temporaries (base64 strings,
 * cJSON strings, decoded blobs) that are wiped here before they are freed. Output
 * buffers are reserved up front wherever key bytes or plaintext are written, so
 * cs_buf's realloc never leaves a stale copy behind in freed heap.
 */
#include "storage/barrier.h"

#include "lib/err.h"
#include "lib/secmem.h"
#include "lib/util.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HDR_LEN (4 + 1 + CS_BARRIER_NONCE_LEN)

/* Largest count reservation (cs_keyring_batch): the most a crash can over-count. */
#define MAX_BATCH 65536

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* AES-256-GCM fetched from the provider once: EVP_aes_256_gcm() makes OpenSSL 3 look the
 * implementation up again at every EVP_*Init_ex, which cost more than the encryption
 * of a small value. */
static EVP_CIPHER *gcm_alg;
static pthread_once_t gcm_once = PTHREAD_ONCE_INIT;

static void gcm_fetch(void)
{
	gcm_alg = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
}

static const EVP_CIPHER *gcm(void)
{
	pthread_once(&gcm_once, gcm_fetch);
	return gcm_alg ? gcm_alg : EVP_aes_256_gcm();
}

int cs_aead_seal(const uint8_t key[CS_KEY_LEN], uint32_t term, const void *aad, size_t aadlen,
		 const void *pt, size_t ptlen, struct cs_buf *out)
{
	if (!key || !out || (aadlen && !aad) || (ptlen && !pt))
		return CS_ECRYPTO;
	if (ptlen > (size_t)INT_MAX - CS_BARRIER_OVERHEAD || aadlen > (size_t)INT_MAX)
		return CS_ECRYPTO;

	size_t start = out->len;
	cs_buf_reserve(out, CS_BARRIER_OVERHEAD + ptlen);
	uint8_t *p = (uint8_t *)out->data + start;
	put_be32(p, term);
	p[4] = CS_BARRIER_VERSION;
	uint8_t *nonce = p + 5;
	cs_random(nonce, CS_BARRIER_NONCE_LEN);
	uint8_t *ct = p + HDR_LEN;

	int rc = CS_ECRYPTO, n = 0;
	size_t written = 0;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		goto done;
	if (EVP_EncryptInit_ex(ctx, gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, CS_BARRIER_NONCE_LEN, NULL) != 1 ||
	    EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) != 1)
		goto done;
	if (aadlen && EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1)
		goto done;
	if (ptlen) {
		if (EVP_EncryptUpdate(ctx, ct, &n, pt, (int)ptlen) != 1)
			goto done;
		written = (size_t)n;
	}
	if (EVP_EncryptFinal_ex(ctx, ct + written, &n) != 1)
		goto done;
	written += (size_t)n;
	if (written != ptlen)
		goto done;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CS_BARRIER_TAG_LEN, ct + ptlen) != 1)
		goto done;
	out->len = start + CS_BARRIER_OVERHEAD + ptlen;
	rc = 0;
done:
	EVP_CIPHER_CTX_free(ctx);
	if (rc != 0)
		cs_zero(p, CS_BARRIER_OVERHEAD + ptlen);
	out->data[out->len] = '\0';
	return rc;
}

int cs_aead_open(const uint8_t key[CS_KEY_LEN], const void *aad, size_t aadlen, const void *ct,
		 size_t ctlen, struct cs_buf *out)
{
	if (!key || !out || !ct || (aadlen && !aad))
		return CS_ECRYPTO;
	if (ctlen < CS_BARRIER_OVERHEAD || ctlen > (size_t)INT_MAX || aadlen > (size_t)INT_MAX)
		return CS_ECRYPTO;
	const uint8_t *in = ct;
	/* Only the AAD-bound version is ever written; version 1 (no AAD) is refused so a
	 * value cannot be stripped of its path binding. */
	if (in[4] != CS_BARRIER_VERSION)
		return CS_ECRYPTO;
	const uint8_t *nonce = in + 5;
	const uint8_t *body = in + HDR_LEN;
	size_t bodylen = ctlen - CS_BARRIER_OVERHEAD;
	/* GCM_SET_TAG wants a writable pointer; copy the tag rather than cast const away. */
	uint8_t tag[CS_BARRIER_TAG_LEN];
	memcpy(tag, body + bodylen, sizeof tag);

	size_t start = out->len;
	cs_buf_reserve(out, bodylen);
	uint8_t *pt = (uint8_t *)out->data + start;

	int rc = CS_ECRYPTO, n = 0;
	size_t written = 0;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		goto done;
	if (EVP_DecryptInit_ex(ctx, gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, CS_BARRIER_NONCE_LEN, NULL) != 1 ||
	    EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) != 1)
		goto done;
	if (aadlen && EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1)
		goto done;
	if (bodylen) {
		if (EVP_DecryptUpdate(ctx, pt, &n, body, (int)bodylen) != 1)
			goto done;
		written = (size_t)n;
	}
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CS_BARRIER_TAG_LEN, tag) != 1)
		goto done;
	/* The tag check happens here; nothing decrypted is kept unless it passes. */
	if (EVP_DecryptFinal_ex(ctx, pt + written, &n) != 1)
		goto done;
	written += (size_t)n;
	if (written != bodylen)
		goto done;
	out->len = start + bodylen;
	rc = 0;
done:
	EVP_CIPHER_CTX_free(ctx);
	if (rc != 0)
		cs_zero(pt, bodylen);
	out->data[out->len] = '\0';
	return rc;
}

uint32_t cs_aead_term(const void *ct, size_t ctlen)
{
	if (!ct || ctlen < CS_BARRIER_OVERHEAD)
		return 0;
	return get_be32(ct);
}

/* ---- keyring ---- */

static void keyring_add(struct cs_keyring *kr, uint32_t term, int64_t install_time_ns,
			uint64_t encryptions, const uint8_t *key)
{
	/* Only the array of descriptors moves on realloc; key bytes stay in secmem. */
	struct cs_keyring_key *keys = realloc(kr->keys, (kr->n_keys + 1) * sizeof *keys);
	if (!keys)
		abort();
	kr->keys = keys;
	struct cs_keyring_key *k = &keys[kr->n_keys++];
	k->term = term;
	k->key = cs_secmem_alloc(CS_KEY_LEN);
	if (key)
		memcpy(k->key, key, CS_KEY_LEN);
	else
		cs_random(k->key, CS_KEY_LEN);
	k->install_time_ns = install_time_ns;
	k->encryptions = encryptions;
}

static struct cs_keyring *keyring_alloc(void)
{
	struct cs_keyring *kr = calloc(1, sizeof *kr);
	struct cs_keyring_count *c = calloc(1, sizeof *c);
	if (!kr || !c)
		abort();
	atomic_init(&c->local, 0);
	kr->count = c;
	kr->root_key = cs_secmem_alloc(CS_KEY_LEN);
	kr->max_operations = CS_ROTATE_MAX_OPERATIONS;
	return kr;
}

void cs_keyring_count_reset(struct cs_keyring *kr)
{
	struct cs_keyring_count *c = kr->count;
	const struct cs_keyring_key *k = cs_keyring_term(kr, kr->active_term);
	if (!c)
		return;
	atomic_store(&c->local, 0);
	c->base = k ? k->encryptions : 0;
	c->term = kr->active_term;
	c->cached = false;
	c->reserved = c->epoch = c->seq = 0;
}

uint64_t cs_keyring_encryptions(const struct cs_keyring *kr)
{
	if (!kr->count) /* a keyring built by hand (tests) */
		return 0;
	return kr->count->base + atomic_load_explicit(&kr->count->local, memory_order_relaxed);
}

uint64_t cs_keyring_batch(const struct cs_keyring *kr)
{
	uint64_t b = kr->max_operations / 256;
	return b < 1 ? 1 : b > MAX_BATCH ? MAX_BATCH : b;
}

const char *cs_keyring_rotation_due(const struct cs_keyring *kr, uint64_t count, int64_t now_ns)
{
	if (kr->rotation_disabled)
		return NULL;
	if (count >= kr->max_operations)
		return "reached max operations";
	const struct cs_keyring_key *k = cs_keyring_term(kr, kr->active_term);
	/* An unknown install time (0) never counts as old. */
	if (kr->rotation_interval > 0 && k && k->install_time_ns > 0 &&
	    now_ns - k->install_time_ns >= kr->rotation_interval * 1000000000LL)
		return "rotation interval reached";
	return NULL;
}

struct cs_keyring *cs_keyring_new(void)
{
	struct cs_keyring *kr = keyring_alloc();
	cs_random(kr->root_key, CS_KEY_LEN);
	keyring_add(kr, 1, cs_now_ns(), 0, NULL);
	kr->active_term = 1;
	cs_keyring_count_reset(kr);
	return kr;
}

void cs_keyring_free(struct cs_keyring *kr)
{
	if (!kr)
		return;
	for (size_t i = 0; i < kr->n_keys; i++)
		cs_secmem_free(kr->keys[i].key, CS_KEY_LEN);
	free(kr->keys);
	cs_secmem_free(kr->root_key, CS_KEY_LEN);
	free(kr->count);
	free(kr);
}

void cs_keyring_rotate(struct cs_keyring *kr)
{
	/* The retiring term keeps its final count in the record. */
	struct cs_keyring_key *old = (struct cs_keyring_key *)cs_keyring_term(kr, kr->active_term);
	uint64_t n = cs_keyring_encryptions(kr);
	if (old && kr->count && kr->count->term == old->term && n > old->encryptions)
		old->encryptions = n;
	keyring_add(kr, kr->active_term + 1, cs_now_ns(), 0, NULL);
	kr->active_term++;
	cs_keyring_count_reset(kr);
}

void cs_keyring_install(struct cs_keyring *kr, struct cs_keyring *fresh)
{
	uint32_t old_term = kr->active_term;
	/* A key's use never shrinks: a record older than what this process knows (a
	 * snapshot restored from before later writes) keeps the higher count per term. */
	for (size_t i = 0; i < fresh->n_keys; i++) {
		struct cs_keyring_key *f = &fresh->keys[i];
		const struct cs_keyring_key *k = cs_keyring_term(kr, f->term);
		uint64_t known = k ? k->encryptions : 0;
		if (k && f->term == old_term && kr->count && kr->count->term == old_term)
			known = cs_keyring_encryptions(kr);
		if (known > f->encryptions)
			f->encryptions = known;
	}
	for (size_t i = 0; i < kr->n_keys; i++)
		cs_secmem_free(kr->keys[i].key, CS_KEY_LEN);
	free(kr->keys);
	kr->keys = fresh->keys;
	kr->n_keys = fresh->n_keys;
	fresh->keys = NULL;
	fresh->n_keys = 0;
	memcpy(kr->root_key, fresh->root_key, CS_KEY_LEN);
	kr->active_term = fresh->active_term;
	kr->rotation_disabled = fresh->rotation_disabled;
	kr->max_operations = fresh->max_operations;
	kr->rotation_interval = fresh->rotation_interval;
	/* Same term (a config change): keep what this process counted. The record's field
	 * is a snapshot of some node's count; the count records (cs_keyring_account) are
	 * what a node reads when it becomes the one that encrypts. */
	if (kr->count && (kr->active_term != old_term || kr->count->term != kr->active_term))
		cs_keyring_count_reset(kr);
	cs_keyring_free(fresh);
}

const struct cs_keyring_key *cs_keyring_term(const struct cs_keyring *kr, uint32_t term)
{
	if (!kr)
		return NULL;
	for (size_t i = 0; i < kr->n_keys; i++)
		if (kr->keys[i].term == term)
			return &kr->keys[i];
	return NULL;
}

/*
 * Go's time.Time JSON form: RFC 3339 with the fraction's trailing zeros dropped (and
 * the dot too when the fraction is zero), "Z" for UTC. out >= 40 bytes.
 */
void cs_format_go_time(int64_t ns, char *out, size_t outlen)
{
	/* Floor division so instants before 1970 keep a non-negative fraction. */
	int64_t sec = ns / 1000000000LL, frac = ns % 1000000000LL;
	if (frac < 0) {
		sec--;
		frac += 1000000000LL;
	}
	time_t t = (time_t)sec;
	struct tm tm;
	gmtime_r(&t, &tm);
	int n = snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	if (n < 0 || (size_t)n >= outlen)
		return;
	if (frac) {
		int nd = 9;
		while (frac % 10 == 0) {
			frac /= 10;
			nd--;
		}
		snprintf(out + n, outlen - (size_t)n, ".%0*ldZ", nd, (long)frac);
	} else {
		snprintf(out + n, outlen - (size_t)n, "Z");
	}
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static bool digits(const char *s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*v = *v * 10 + (s[i] - '0');
	}
	return true;
}

/* Parse RFC 3339 ("2006-01-02T15:04:05[.fraction](Z|+hh:mm|-hh:mm)") to Unix ns. */
static int parse_rfc3339(const char *s, int64_t *ns)
{
	int y, mo, d, h, mi, se;
	if (strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
	    s[7] != '-' || !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
	    !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
	    !digits(s + 17, 2, &se))
		return CS_EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
		return CS_EINVAL;
	const char *p = s + 19;
	int64_t frac = 0;
	if (*p == '.') {
		p++;
		int nd = 0;
		while (*p >= '0' && *p <= '9') {
			if (nd < 9)
				frac = frac * 10 + (*p - '0');
			nd++;
			p++;
		}
		if (nd == 0)
			return CS_EINVAL;
		for (; nd < 9; nd++)
			frac *= 10;
	}
	int64_t offset = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om;
		if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 ||
		    om > 59)
			return CS_EINVAL;
		offset = (int64_t)(oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
		p += 6;
	} else {
		return CS_EINVAL;
	}
	if (*p)
		return CS_EINVAL;
	int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset;
	/* int64 nanoseconds span 1677..2262. Outside that (Go's zero time, year 1, is the
	 * likely case) the install time is informational only: record it as unknown. */
	if (secs <= INT64_MIN / 1000000000LL || secs >= INT64_MAX / 1000000000LL)
		*ns = 0;
	else
		*ns = secs * 1000000000LL + frac;
	return 0;
}

void cs_keyring_encode(const struct cs_keyring *kr, struct cs_buf *out)
{
	/*
	 * Written with printf rather than through a cJSON tree: every string is base64 or
	 * a timestamp (nothing to escape), the uint64 counters stay exact, and the only
	 * copies of key bytes are `out` and the base64 temporaries wiped below. Reserve
	 * an upper bound first so `out` is never reallocated mid-write.
	 */
	size_t b64len = 4 * ((CS_KEY_LEN + 2) / 3);
	cs_buf_reserve(out, 160 + b64len + kr->n_keys * (160 + b64len));
	size_t cap_before = out->cap;

	char *b64 = cs_b64_encode(kr->root_key, CS_KEY_LEN);
	cs_buf_printf(out, "{\"MasterKey\":\"%s\",\"Keys\":[", b64);
	cs_zero(b64, strlen(b64));
	free(b64);
	for (size_t i = 0; i < kr->n_keys; i++) {
		const struct cs_keyring_key *k = &kr->keys[i];
		char when[64];
		cs_format_go_time(k->install_time_ns, when, sizeof when);
		uint64_t enc = k->encryptions;
		if (k->term == kr->active_term && kr->count && kr->count->term == k->term &&
		    cs_keyring_encryptions(kr) > enc)
			enc = cs_keyring_encryptions(kr);
		b64 = cs_b64_encode(k->key, CS_KEY_LEN);
		cs_buf_printf(
		    out,
		    "%s{\"Term\":%lu,\"Version\":1,\"Value\":\"%s\",\"InstallTime\":\"%s\","
		    "\"encryptions\":%llu}",
		    i ? "," : "", (unsigned long)k->term, b64, when, (unsigned long long)enc);
		cs_zero(b64, strlen(b64));
		free(b64);
	}
	/* Interval is a Go time.Duration: nanoseconds. */
	cs_buf_printf(out,
		      "],\"RotationConfig\":{\"Disabled\":%s,\"MaxOperations\":%llu,"
		      "\"Interval\":%lld}}",
		      kr->rotation_disabled ? "true" : "false",
		      (unsigned long long)kr->max_operations,
		      (long long)kr->rotation_interval * 1000000000LL);
	/* The bound above is generous; if it ever is not, that is a bug to catch in tests. */
	if (out->cap != cap_before)
		abort();
}

/* Overwrite every string in the tree (base64 keys among them) before it is freed. */
static void json_wipe(cJSON *item)
{
	for (; item; item = item->next) {
		if (item->valuestring)
			cs_zero(item->valuestring, strlen(item->valuestring));
		if (item->child)
			json_wipe(item->child);
	}
}

/* Decode a base64 JSON string holding exactly CS_KEY_LEN bytes into dst. */
static int decode_key(const cJSON *item, uint8_t *dst)
{
	if (!cJSON_IsString(item) || !item->valuestring)
		return CS_EINVAL;
	size_t n = 0;
	const char *s = item->valuestring;
	uint8_t *raw = cs_b64_decode(s, strlen(s), &n);
	if (!raw)
		return CS_EINVAL;
	int rc = CS_EINVAL;
	if (n == CS_KEY_LEN) {
		memcpy(dst, raw, CS_KEY_LEN);
		rc = 0;
	}
	/* cs_b64_decode's buffer is sized from the padded input, not the result. */
	cs_zero(raw, (strlen(s) + 3) / 4 * 3 + 1);
	free(raw);
	return rc;
}

/* A JSON number that is a non-negative integer no larger than max. */
static bool json_uint(const cJSON *item, uint64_t max, uint64_t *v)
{
	if (!cJSON_IsNumber(item))
		return false;
	double d = item->valuedouble;
	/* Range first: converting an out-of-range double to an integer is undefined. */
	if (!(d >= 0 && d < 18446744073709551616.0))
		return false;
	uint64_t u = (uint64_t)d;
	if ((double)u != d || u > max)
		return false;
	*v = u;
	return true;
}

static int cmp_term(const void *a, const void *b)
{
	uint32_t x = ((const struct cs_keyring_key *)a)->term;
	uint32_t y = ((const struct cs_keyring_key *)b)->term;
	return (x > y) - (x < y);
}

/* Vault's RotationConfig; absent means the defaults. As Vault does when it loads one,
 * MaxOperations 0 or above the maximum becomes the maximum. */
static int decode_rotation_config(const cJSON *rc, struct cs_keyring *kr)
{
	if (!rc)
		return 0;
	if (!cJSON_IsObject(rc))
		return CS_EINVAL;
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(rc, "Disabled");
	if (d && !cJSON_IsBool(d))
		return CS_EINVAL;
	kr->rotation_disabled = cJSON_IsTrue(d);
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(rc, "MaxOperations");
	uint64_t ops = 0, ns = 0;
	if (m && !json_uint(m, UINT64_MAX, &ops))
		return CS_EINVAL;
	kr->max_operations =
	    ops == 0 || ops > CS_ROTATE_MAX_OPERATIONS ? CS_ROTATE_MAX_OPERATIONS : ops;
	const cJSON *iv = cJSON_GetObjectItemCaseSensitive(rc, "Interval");
	if (iv && !json_uint(iv, INT64_MAX, &ns))
		return CS_EINVAL;
	kr->rotation_interval = (int64_t)(ns / 1000000000ULL);
	return 0;
}

static int decode_tree(const cJSON *root, struct cs_keyring *kr)
{
	if (!cJSON_IsObject(root))
		return CS_EINVAL;
	if (decode_key(cJSON_GetObjectItemCaseSensitive(root, "MasterKey"), kr->root_key) != 0)
		return CS_EINVAL;
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(root, "Keys");
	if (!cJSON_IsArray(keys) || cJSON_GetArraySize(keys) < 1)
		return CS_EINVAL;
	uint8_t *tmp = cs_secmem_alloc(CS_KEY_LEN);
	int rc = 0;
	const cJSON *k;
	cJSON_ArrayForEach(k, keys)
	{
		uint64_t term = 0, enc = 0;
		int64_t when = 0;
		if (!cJSON_IsObject(k) ||
		    !json_uint(cJSON_GetObjectItemCaseSensitive(k, "Term"), UINT32_MAX, &term) ||
		    term == 0 || cs_keyring_term(kr, (uint32_t)term) ||
		    decode_key(cJSON_GetObjectItemCaseSensitive(k, "Value"), tmp) != 0) {
			rc = CS_EINVAL;
			break;
		}
		/* Optional fields: absent is fine, present but malformed is not. */
		const cJSON *it = cJSON_GetObjectItemCaseSensitive(k, "InstallTime");
		if (it && (!cJSON_IsString(it) || parse_rfc3339(it->valuestring, &when) != 0)) {
			rc = CS_EINVAL;
			break;
		}
		const cJSON *en = cJSON_GetObjectItemCaseSensitive(k, "encryptions");
		if (en && !json_uint(en, UINT64_MAX, &enc)) {
			rc = CS_EINVAL;
			break;
		}
		keyring_add(kr, (uint32_t)term, when, enc, tmp);
	}
	cs_secmem_free(tmp, CS_KEY_LEN);
	if (rc != 0)
		return rc;
	qsort(kr->keys, kr->n_keys, sizeof *kr->keys, cmp_term);
	kr->active_term = kr->keys[kr->n_keys - 1].term;
	return decode_rotation_config(cJSON_GetObjectItemCaseSensitive(root, "RotationConfig"), kr);
}

int cs_keyring_decode(const void *json, size_t len, struct cs_keyring **out)
{
	if (!json || !out)
		return CS_EINVAL;
	cJSON *root = cJSON_ParseWithLength(json, len);
	if (!root)
		return CS_EINVAL;
	struct cs_keyring *kr = keyring_alloc();
	int rc = decode_tree(root, kr);
	json_wipe(root);
	cJSON_Delete(root);
	if (rc != 0) {
		cs_keyring_free(kr);
		return rc;
	}
	cs_keyring_count_reset(kr);
	*out = kr;
	return 0;
}

int cs_barrier_encrypt(const struct cs_keyring *kr, const char *path, const void *pt, size_t n,
		       struct cs_buf *out)
{
	if (!kr || !path)
		return CS_ECRYPTO;
	const struct cs_keyring_key *k = cs_keyring_term(kr, kr->active_term);
	if (!k)
		return CS_ECRYPTO;
	/* Counted before the nonce is drawn: a failed seal over-counts, never under. */
	if (kr->count)
		atomic_fetch_add_explicit(&kr->count->local, 1, memory_order_relaxed);
	return cs_aead_seal(k->key, k->term, path, strlen(path), pt, n, out);
}

int cs_barrier_decrypt(const struct cs_keyring *kr, const char *path, const void *ct, size_t n,
		       struct cs_buf *out)
{
	if (!kr || !path)
		return CS_ECRYPTO;
	const struct cs_keyring_key *k = cs_keyring_term(kr, cs_aead_term(ct, n));
	if (!k)
		return CS_ECRYPTO;
	return cs_aead_open(k->key, path, strlen(path), ct, n, out);
}

/* ---- the stored keyring ---- */

int cs_keyring_seal(const struct cs_keyring *kr, struct cs_buf *out)
{
	struct cs_buf plain = CS_BUF_INIT;
	cs_keyring_encode(kr, &plain);
	int rc = cs_aead_seal(kr->root_key, 1, CS_KEYRING_PATH, strlen(CS_KEYRING_PATH), plain.data,
			      plain.len, out);
	cs_buf_free_secure(&plain);
	return rc;
}

int cs_keyring_open(const uint8_t root_key[CS_KEY_LEN], const void *ct, size_t n,
		    struct cs_keyring **out)
{
	struct cs_buf plain = CS_BUF_INIT;
	int rc = cs_aead_open(root_key, CS_KEYRING_PATH, strlen(CS_KEYRING_PATH), ct, n, &plain);
	if (rc == 0)
		rc = cs_keyring_decode(plain.data, plain.len, out);
	cs_buf_free_secure(&plain);
	return rc;
}
