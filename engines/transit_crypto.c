/* The transit engine's cryptography (engines/transit_crypto.h), all through OpenSSL EVP. */
#include "engines/transit_crypto.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/util.h"

static const char *const type_names[] = {
    [CS_TRANSIT_AES128_GCM96] = "aes128-gcm96",
    [CS_TRANSIT_AES256_GCM96] = "aes256-gcm96",
    [CS_TRANSIT_CHACHA20_POLY1305] = "chacha20-poly1305",
    [CS_TRANSIT_HMAC] = "hmac",
    [CS_TRANSIT_ED25519] = "ed25519",
    [CS_TRANSIT_ECDSA_P256] = "ecdsa-p256",
    [CS_TRANSIT_ECDSA_P384] = "ecdsa-p384",
    [CS_TRANSIT_ECDSA_P521] = "ecdsa-p521",
    [CS_TRANSIT_RSA2048] = "rsa-2048",
    [CS_TRANSIT_RSA3072] = "rsa-3072",
    [CS_TRANSIT_RSA4096] = "rsa-4096",
};

int cs_transit_type_parse(const char *name)
{
	for (size_t i = 0; name && i < CS_ARRAY_LEN(type_names); i++)
		if (strcmp(name, type_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *cs_transit_type_name(enum cs_transit_type t)
{
	return (size_t)t < CS_ARRAY_LEN(type_names) ? type_names[t] : "unknown";
}

size_t cs_transit_key_len(enum cs_transit_type t)
{
	return t == CS_TRANSIT_AES128_GCM96 ? 16 : 32;
}

bool cs_transit_is_aead(enum cs_transit_type t)
{
	return t == CS_TRANSIT_AES128_GCM96 || t == CS_TRANSIT_AES256_GCM96 ||
	       t == CS_TRANSIT_CHACHA20_POLY1305;
}

int cs_transit_hkdf(const uint8_t *ikm, size_t ikmlen, const uint8_t *info, size_t infolen,
		    uint8_t *out, size_t outlen)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	EVP_KDF_free(kdf);
	if (!ctx)
		return CS_EINTERNAL;
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikmlen),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, infolen),
	    OSSL_PARAM_construct_end(),
	};
	int ok = EVP_KDF_derive(ctx, out, outlen, params) == 1;
	EVP_KDF_CTX_free(ctx);
	return ok ? 0 : CS_EINTERNAL;
}

static const EVP_CIPHER *cipher_of(enum cs_transit_type t)
{
	switch (t) {
	case CS_TRANSIT_AES128_GCM96:
		return EVP_aes_128_gcm();
	case CS_TRANSIT_AES256_GCM96:
		return EVP_aes_256_gcm();
	case CS_TRANSIT_CHACHA20_POLY1305:
		return EVP_chacha20_poly1305();
	default:
		return NULL;
	}
}

int cs_transit_seal(enum cs_transit_type t, const uint8_t *key, const uint8_t *nonce,
		    const uint8_t *aad, size_t aadlen, const uint8_t *pt, size_t ptlen,
		    struct cs_buf *out)
{
	const EVP_CIPHER *c = cipher_of(t);
	if (!c || ptlen > INT32_MAX || aadlen > INT32_MAX)
		return CS_EINTERNAL;
	uint8_t iv[CS_TRANSIT_NONCE_LEN];
	if (nonce)
		memcpy(iv, nonce, sizeof iv);
	else
		cs_random(iv, sizeof iv);
	/* Reserve once: a realloc would leave no plaintext behind, but keep it one block. */
	cs_buf_reserve(out, sizeof iv + ptlen + CS_TRANSIT_TAG_LEN);
	cs_buf_append(out, iv, sizeof iv);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int len = 0, ok = ctx && EVP_EncryptInit_ex(ctx, c, NULL, NULL, NULL) == 1 &&
			  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, sizeof iv, NULL) == 1 &&
			  EVP_EncryptInit_ex(ctx, NULL, NULL, key, iv) == 1;
	if (ok && aadlen)
		ok = EVP_EncryptUpdate(ctx, NULL, &len, aad, (int)aadlen) == 1;
	uint8_t *dst = (uint8_t *)out->data + out->len;
	if (ok)
		ok = EVP_EncryptUpdate(ctx, dst, &len, pt, (int)ptlen) == 1;
	int fin = 0;
	if (ok)
		ok = EVP_EncryptFinal_ex(ctx, dst + len, &fin) == 1;
	if (ok) {
		out->len += (size_t)(len + fin);
		ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, CS_TRANSIT_TAG_LEN,
					 out->data + out->len) == 1;
		if (ok)
			out->len += CS_TRANSIT_TAG_LEN;
		out->data[out->len] = 0;
	}
	EVP_CIPHER_CTX_free(ctx);
	return ok ? 0 : CS_EINTERNAL;
}

int cs_transit_open(enum cs_transit_type t, const uint8_t *key, const uint8_t *in, size_t inlen,
		    const uint8_t *aad, size_t aadlen, struct cs_buf *out, const char **err)
{
	const EVP_CIPHER *c = cipher_of(t);
	const char *auth = t == CS_TRANSIT_CHACHA20_POLY1305
			       ? "chacha20poly1305: message authentication failed"
			       : "cipher: message authentication failed";
	*err = NULL;
	if (!c || inlen > INT32_MAX || aadlen > INT32_MAX)
		return CS_EINTERNAL;
	if (inlen < CS_TRANSIT_NONCE_LEN) {
		*err = "invalid ciphertext length";
		return CS_EINVAL;
	}
	if (inlen < CS_TRANSIT_NONCE_LEN + CS_TRANSIT_TAG_LEN) {
		*err = auth; /* Go's AEADs answer a short input with the authentication error */
		return CS_EINVAL;
	}
	const uint8_t *ct = in + CS_TRANSIT_NONCE_LEN;
	size_t ctlen = inlen - CS_TRANSIT_NONCE_LEN - CS_TRANSIT_TAG_LEN;
	size_t start = out->len;
	cs_buf_reserve(out, ctlen + 1);
	uint8_t *dst = (uint8_t *)out->data + out->len;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int len = 0, fin = 0;
	int ok =
	    ctx && EVP_DecryptInit_ex(ctx, c, NULL, NULL, NULL) == 1 &&
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, CS_TRANSIT_NONCE_LEN, NULL) == 1 &&
	    EVP_DecryptInit_ex(ctx, NULL, NULL, key, in) == 1;
	if (ok && aadlen)
		ok = EVP_DecryptUpdate(ctx, NULL, &len, aad, (int)aadlen) == 1;
	if (ok)
		ok = EVP_DecryptUpdate(ctx, dst, &len, ct, (int)ctlen) == 1;
	if (ok)
		ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, CS_TRANSIT_TAG_LEN,
					 (void *)(in + inlen - CS_TRANSIT_TAG_LEN)) == 1;
	if (!ok) {
		EVP_CIPHER_CTX_free(ctx);
		cs_zero(dst, ctlen);
		return CS_EINTERNAL;
	}
	ok = EVP_DecryptFinal_ex(ctx, dst + len, &fin) == 1;
	EVP_CIPHER_CTX_free(ctx);
	if (!ok) {
		cs_zero(dst, ctlen); /* unauthenticated plaintext never leaves */
		out->len = start;
		out->data[start] = 0;
		*err = auth;
		return CS_EINVAL;
	}
	out->len += (size_t)(len + fin);
	out->data[out->len] = 0;
	return 0;
}

char *cs_transit_format(uint32_t ver, const uint8_t *raw, size_t len)
{
	char *b64 = cs_b64_encode(raw, len);
	size_t n = strlen(b64) + 32;
	char *s = malloc(n);
	if (!s)
		abort();
	snprintf(s, n, "vault:v%u:%s", ver, b64);
	free(b64);
	return s;
}

int cs_transit_parse(const char *s, uint32_t *ver, uint8_t **raw, size_t *len, const char **err)
{
	static const char prefix[] = "vault:v";
	*raw = NULL;
	*len = 0;
	if (strncmp(s, prefix, sizeof prefix - 1) != 0) {
		*err = "no prefix";
		return CS_EINVAL;
	}
	s += sizeof prefix - 1;
	const char *colon = strchr(s, ':');
	if (!colon) {
		*err = "wrong number of fields";
		return CS_EINVAL;
	}
	/* Go's strconv.Atoi: an optional sign, then decimal digits that fit an int. We take
	 * digits only (a signed version can never name a key) up to a sane bound. */
	uint64_t v = 0;
	if (colon == s || colon - s > 10) {
		*err = "version number could not be decoded";
		return CS_EINVAL;
	}
	for (const char *p = s; p < colon; p++) {
		if (*p < '0' || *p > '9') {
			*err = "version number could not be decoded";
			return CS_EINVAL;
		}
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (v > CS_TRANSIT_MAX_VERSION) {
		*err = "version is too new";
		return CS_EINVAL;
	}
	*ver = v == 0 ? 1 : (uint32_t)v; /* Vault's keys once started at zero */
	const char *b64 = colon + 1;
	*raw = cs_b64_decode(b64, strlen(b64), len);
	/* Go's StdEncoding wants the padding; cs_b64_decode tolerates its absence. */
	if (!*raw || strlen(b64) % 4) {
		free(*raw);
		*raw = NULL;
		*err = "could not decode base64";
		return CS_EINVAL;
	}
	return 0;
}

static const struct {
	const char *vault, *ossl;
} md_names[] = {
    {"sha1", "SHA1"},         {"sha2-224", "SHA224"},   {"sha2-256", "SHA256"},
    {"sha2-384", "SHA384"},   {"sha2-512", "SHA512"},   {"sha3-224", "SHA3-224"},
    {"sha3-256", "SHA3-256"}, {"sha3-384", "SHA3-384"}, {"sha3-512", "SHA3-512"},
};

const char *cs_transit_md_name(const char *alg, bool allow_sha1)
{
	for (size_t i = allow_sha1 ? 0 : 1; alg && i < CS_ARRAY_LEN(md_names); i++)
		if (strcmp(alg, md_names[i].vault) == 0)
			return md_names[i].ossl;
	return NULL;
}

int cs_transit_digest(const char *md, const uint8_t *in, size_t len, uint8_t *out, size_t *outlen)
{
	EVP_MD *m = EVP_MD_fetch(NULL, md, NULL);
	unsigned n = 0;
	int ok = m && EVP_Digest(in, len, out, &n, m, NULL) == 1;
	EVP_MD_free(m);
	*outlen = n;
	return ok ? 0 : CS_EINTERNAL;
}

int cs_transit_hmac(const char *md, const uint8_t *key, size_t keylen, const uint8_t *in,
		    size_t len, uint8_t *out, size_t *outlen)
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	EVP_MAC_free(mac);
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)md, 0),
	    OSSL_PARAM_construct_end(),
	};
	int ok = ctx && EVP_MAC_init(ctx, key, keylen, params) == 1 &&
		 EVP_MAC_update(ctx, in, len) == 1 && EVP_MAC_final(ctx, out, outlen, 64) == 1;
	EVP_MAC_CTX_free(ctx);
	return ok ? 0 : CS_EINTERNAL;
}
