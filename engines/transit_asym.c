/*
 * The transit engine's asymmetric keys (engines/transit_crypto.h): generation, public-key
 * and export encodings and signatures, all through OpenSSL EVP_PKEY, with the semantics of
 * Go's crypto packages that Vault uses (ECDSA over a digest truncated to the curve, RSA PSS
 * salt "auto" = the longest salt when signing and any salt when verifying, MGF1 with the
 * signature's digest).
 */
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

#include "engines/transit_crypto.h"
#include "lib/err.h"
#include "lib/util.h"

bool cs_transit_is_asym(enum cs_transit_type t)
{
	return t >= CS_TRANSIT_ED25519 && t <= CS_TRANSIT_RSA4096;
}

bool cs_transit_is_rsa(enum cs_transit_type t)
{
	return t >= CS_TRANSIT_RSA2048 && t <= CS_TRANSIT_RSA4096;
}

bool cs_transit_is_ecdsa(enum cs_transit_type t)
{
	return t >= CS_TRANSIT_ECDSA_P256 && t <= CS_TRANSIT_ECDSA_P521;
}

/* The width of r and s in a JWS signature (Go: curve bits rounded up to bytes). */
static size_t ec_width(enum cs_transit_type t)
{
	return t == CS_TRANSIT_ECDSA_P256 ? 32 : t == CS_TRANSIT_ECDSA_P384 ? 48 : 66;
}

/* The fixed PKCS#8 head of an ed25519 key (RFC 8410): the 32-byte seed follows. */
static const uint8_t ed25519_p8_head[16] = {0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06,
					    0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20};

/* The PKCS#8 encoding OpenSSL writes for a P-256 key with its public key (RFC 5915 inside
 * RFC 5208): this head, the 32-byte scalar, p256_mid, the 65-byte uncompressed point. */
static const uint8_t p256_p8_head[36] = {0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06,
					 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
					 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
					 0x04, 0x6d, 0x30, 0x6b, 0x02, 0x01, 0x01, 0x04, 0x20};
static const uint8_t p256_mid[6] = {0xa1, 0x44, 0x03, 0x42, 0x00, 0x04};

/* A P-256 key from its scalar and point through the provider's import (about 50 us, where
 * the decoder takes a millisecond). NULL on any failure: the caller decodes instead. */
static EVP_PKEY *p256_fromdata(const uint8_t *der)
{
	uint8_t d[32];
	BIGNUM *bn = BN_bin2bn(der + sizeof p256_p8_head, 32, NULL);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *pk = NULL;
	if (bn && ctx && BN_bn2nativepad(bn, d, sizeof d) == sizeof d &&
	    EVP_PKEY_fromdata_init(ctx) == 1) {
		OSSL_PARAM params[] = {
		    OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0),
		    OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_PRIV_KEY, d, sizeof d),
		    OSSL_PARAM_construct_octet_string(
			OSSL_PKEY_PARAM_PUB_KEY, (void *)(der + sizeof p256_p8_head + 32 + 5), 65),
		    OSSL_PARAM_construct_end()};
		if (EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_KEYPAIR, params) != 1)
			pk = NULL;
	}
	OPENSSL_cleanse(d, sizeof d);
	BN_clear_free(bn);
	EVP_PKEY_CTX_free(ctx);
	return pk;
}

static EVP_PKEY *load(const uint8_t *der, size_t len)
{
	if (len == sizeof p256_p8_head + 32 + sizeof p256_mid + 64 &&
	    memcmp(der, p256_p8_head, sizeof p256_p8_head) == 0 &&
	    memcmp(der + sizeof p256_p8_head + 32, p256_mid, sizeof p256_mid) == 0) {
		EVP_PKEY *pk = p256_fromdata(der);
		if (pk)
			return pk;
	}
	/* OpenSSL 3's generic decoder costs about a millisecond per call (it builds a
	 * decoder chain every time), a hundred signatures' worth: an ed25519 key, whose
	 * encoding is fixed, is built from its seed directly. */
	if (len == sizeof ed25519_p8_head + 32 &&
	    memcmp(der, ed25519_p8_head, sizeof ed25519_p8_head) == 0)
		return EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL,
						    der + sizeof ed25519_p8_head, 32);
	const unsigned char *p = der;
	return d2i_AutoPrivateKey(NULL, &p, (long)len);
}

/* The key as PKCS#8 DER in our own heap (so that the caller's cs_zero + free applies);
 * frees pk. */
static int to_pkcs8(EVP_PKEY *pk, uint8_t **der, size_t *len)
{
	if (!pk)
		return CS_EINTERNAL;
	PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(pk);
	EVP_PKEY_free(pk);
	unsigned char *out = NULL;
	int n = p8 ? i2d_PKCS8_PRIV_KEY_INFO(p8, &out) : -1;
	PKCS8_PRIV_KEY_INFO_free(p8);
	if (n <= 0)
		return CS_EINTERNAL;
	*der = malloc((size_t)n);
	if (!*der)
		abort();
	memcpy(*der, out, (size_t)n);
	OPENSSL_clear_free(out, (size_t)n);
	*len = (size_t)n;
	return 0;
}

int cs_transit_asym_generate(enum cs_transit_type t, uint8_t **der, size_t *len)
{
	EVP_PKEY *pk = NULL;
	*der = NULL;
	switch (t) {
	case CS_TRANSIT_ED25519:
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		break;
	case CS_TRANSIT_ECDSA_P256:
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		break;
	case CS_TRANSIT_ECDSA_P384:
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
		break;
	case CS_TRANSIT_ECDSA_P521:
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
		break;
	case CS_TRANSIT_RSA2048:
	case CS_TRANSIT_RSA3072:
	case CS_TRANSIT_RSA4096:
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA",
				       (size_t)(t == CS_TRANSIT_RSA2048   ? 2048
						: t == CS_TRANSIT_RSA3072 ? 3072
									  : 4096));
		break;
	default:
		return CS_EINVAL;
	}
	return to_pkcs8(pk, der, len);
}

/* The BIO's contents as a malloc'd string. */
static char *bio_str(BIO *b)
{
	char *data = NULL;
	long n = BIO_get_mem_data(b, &data);
	char *s = malloc((size_t)n + 1);
	if (!s)
		abort();
	memcpy(s, data, (size_t)n);
	s[n] = 0;
	return s;
}

static char *ed25519_raw_b64(EVP_PKEY *pk, bool priv)
{
	uint8_t raw[64];
	size_t n = 32;
	int ok = priv ? EVP_PKEY_get_raw_private_key(pk, raw, &n)
		      : EVP_PKEY_get_raw_public_key(pk, raw, &n);
	if (ok != 1 || n != 32)
		return NULL;
	if (priv) { /* Go's ed25519.PrivateKey: seed || public key */
		size_t m = 32;
		if (EVP_PKEY_get_raw_public_key(pk, raw + 32, &m) != 1)
			return NULL;
		n = 64;
	}
	char *s = cs_b64_encode(raw, n);
	cs_zero(raw, sizeof raw);
	return s;
}

/* PEM or base64 DER of the key: public (PKIX), private PKCS#8 or the traditional form
 * (PKCS#1 for RSA, SEC 1 for EC) that Go's x509 writes for format "". */
static char *encode(EVP_PKEY *pk, bool priv, bool traditional, bool pem)
{
	BIO *b = BIO_new(BIO_s_mem());
	int ok;
	if (!b)
		abort();
	if (pem && !priv)
		ok = PEM_write_bio_PUBKEY(b, pk);
	else if (pem && traditional)
		ok = PEM_write_bio_PrivateKey_traditional(b, pk, NULL, NULL, 0, NULL, NULL);
	else if (pem)
		ok = PEM_write_bio_PKCS8PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL);
	else if (!priv)
		ok = i2d_PUBKEY_bio(b, pk);
	else
		ok = i2d_PKCS8PrivateKey_bio(b, pk, NULL, NULL, 0, NULL, NULL);
	char *s = NULL;
	if (ok == 1) {
		s = bio_str(b);
		if (!pem) {
			char *d = cs_b64_encode((uint8_t *)s, (size_t)BIO_pending(b));
			cs_zero(s, (size_t)BIO_pending(b));
			free(s);
			s = d;
		}
	}
	/* The memory BIO may hold private key bytes: clear before it goes. */
	char *data = NULL;
	long n = BIO_get_mem_data(b, &data);
	if (n > 0)
		cs_zero(data, (size_t)n);
	BIO_free(b);
	return s;
}

char *cs_transit_asym_public(enum cs_transit_type t, const uint8_t *der, size_t len)
{
	EVP_PKEY *pk = load(der, len);
	if (!pk)
		return NULL;
	char *s =
	    t == CS_TRANSIT_ED25519 ? ed25519_raw_b64(pk, false) : encode(pk, false, false, true);
	EVP_PKEY_free(pk);
	return s;
}

int cs_transit_asym_export(enum cs_transit_type t, const uint8_t *der, size_t len, bool priv,
			   const char *format, char **out, const char **err)
{
	*out = NULL;
	bool raw = strcmp(format, "raw") == 0, pem = strcmp(format, "pem") == 0;
	if (raw && t != CS_TRANSIT_ED25519) {
		*err = cs_transit_is_rsa(t) ? "unknown key format for rsa key; supported values "
					      "are ``, `der`, or `pem`"
					    : "unknown key format for ec key; supported values are "
					      "``, `der`, or `pem`";
		return CS_EINVAL;
	}
	EVP_PKEY *pk = load(der, len);
	if (!pk)
		return CS_EINTERNAL;
	if (t == CS_TRANSIT_ED25519 && (!*format || raw))
		*out = ed25519_raw_b64(pk, priv);
	else /* "" is PEM, traditional for a private key; der is base64 */
		*out = encode(pk, priv, !*format, pem || !*format);
	EVP_PKEY_free(pk);
	return *out ? 0 : CS_EINTERNAL;
}

/* RSA options on a sign/verify context (Go's PSS salt semantics). */
static int rsa_setup(EVP_PKEY_CTX *c, EVP_PKEY *pk, const struct cs_transit_sigopts *o, bool verify,
		     const char **err)
{
	const EVP_MD *md = o->md ? EVP_get_digestbyname(o->md) : NULL;
	if (o->md && !md)
		return CS_EINTERNAL;
	if (md && EVP_PKEY_CTX_set_signature_md(c, md) != 1)
		return CS_EINTERNAL;
	if (o->pkcs1v15)
		return EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) == 1 ? 0 : CS_EINTERNAL;
	int hlen = md ? EVP_MD_get_size(md) : 0;
	int max = (EVP_PKEY_get_bits(pk) - 1 + 7) / 8 - 2 - hlen;
	if (!md || o->salt < CS_TRANSIT_SALT_HASH || o->salt > max) {
		static _Thread_local char msg[64];
		snprintf(msg, sizeof msg, "requested salt length %d is invalid", o->salt);
		*err = msg;
		return CS_EINVAL;
	}
	int salt = o->salt == CS_TRANSIT_SALT_HASH ? RSA_PSS_SALTLEN_DIGEST
		   : o->salt == CS_TRANSIT_SALT_AUTO
		       ? (verify ? RSA_PSS_SALTLEN_AUTO : RSA_PSS_SALTLEN_MAX)
		       : o->salt;
	if (EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PSS_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_pss_saltlen(c, salt) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(c, md) != 1)
		return CS_EINTERNAL;
	return 0;
}

/* ECDSA DER <-> JWS r || s. */
static int der_to_jws(enum cs_transit_type t, const uint8_t *der, size_t len, struct cs_buf *out)
{
	const unsigned char *p = der;
	ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)len);
	if (!s)
		return CS_EINTERNAL;
	size_t w = ec_width(t);
	uint8_t buf[132];
	int ok = BN_bn2binpad(ECDSA_SIG_get0_r(s), buf, (int)w) == (int)w &&
		 BN_bn2binpad(ECDSA_SIG_get0_s(s), buf + w, (int)w) == (int)w;
	ECDSA_SIG_free(s);
	if (ok)
		cs_buf_append(out, buf, 2 * w);
	return ok ? 0 : CS_EINTERNAL;
}

static ECDSA_SIG *jws_to_sig(const uint8_t *sig, size_t len)
{
	ECDSA_SIG *s = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, (int)(len / 2), NULL);
	BIGNUM *ss = BN_bin2bn(sig + len / 2, (int)(len - len / 2), NULL);
	if (!s || !r || !ss || ECDSA_SIG_set0(s, r, ss) != 1) {
		BN_free(r);
		BN_free(ss);
		ECDSA_SIG_free(s);
		return NULL;
	}
	return s;
}

int cs_transit_asym_sign(enum cs_transit_type t, const uint8_t *der, size_t len,
			 const struct cs_transit_sigopts *o, const uint8_t *in, size_t inlen,
			 struct cs_buf *sig, const char **err)
{
	EVP_PKEY *pk = load(der, len);
	if (!pk)
		return CS_EINTERNAL;
	int rc = CS_EINTERNAL;
	uint8_t out[1024]; /* RSA-4096: 512 bytes; ECDSA P-521 DER: < 140 */
	size_t outlen = sizeof out;
	if (t == CS_TRANSIT_ED25519) {
		EVP_MD_CTX *m = EVP_MD_CTX_new();
		if (m && EVP_DigestSignInit(m, NULL, NULL, NULL, pk) == 1 &&
		    EVP_DigestSign(m, out, &outlen, in, inlen) == 1)
			rc = 0;
		EVP_MD_CTX_free(m);
	} else {
		EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(pk, NULL);
		if (c && EVP_PKEY_sign_init(c) == 1) {
			rc = cs_transit_is_rsa(t) ? rsa_setup(c, pk, o, false, err) : 0;
			if (!rc && EVP_PKEY_sign(c, out, &outlen, in, inlen) != 1)
				rc = CS_EINTERNAL;
		}
		EVP_PKEY_CTX_free(c);
	}
	EVP_PKEY_free(pk);
	if (!rc && cs_transit_is_ecdsa(t) && o->jws)
		rc = der_to_jws(t, out, outlen, sig);
	else if (!rc)
		cs_buf_append(sig, out, outlen);
	return rc;
}

/* An ASN.1 ECDSA signature as Go's asn1.Unmarshal checks it; *fixed is the DER to verify. */
static int ecdsa_parse(enum cs_transit_type t, const struct cs_transit_sigopts *o,
		       const uint8_t *sig, size_t siglen, uint8_t **fixed, size_t *fixedlen,
		       const char **err)
{
	ECDSA_SIG *s;
	if (o->jws) {
		s = jws_to_sig(sig, siglen);
	} else {
		const unsigned char *p = sig;
		s = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
		if (s && p != sig + siglen) {
			ECDSA_SIG_free(s);
			*err = "supplied signature contains extra data";
			return CS_EINVAL;
		}
	}
	if (!s) {
		*err = "supplied signature is invalid";
		return CS_EINVAL;
	}
	unsigned char *d = NULL;
	int n = i2d_ECDSA_SIG(s, &d);
	ECDSA_SIG_free(s);
	if (n <= 0)
		return CS_EINTERNAL;
	*fixed = malloc((size_t)n);
	if (!*fixed)
		abort();
	memcpy(*fixed, d, (size_t)n);
	OPENSSL_free(d);
	*fixedlen = (size_t)n;
	return 0;
}

int cs_transit_asym_verify(enum cs_transit_type t, const uint8_t *der, size_t len,
			   const struct cs_transit_sigopts *o, const uint8_t *in, size_t inlen,
			   const uint8_t *sig, size_t siglen, bool *valid, const char **err)
{
	*valid = false;
	uint8_t *fixed = NULL;
	size_t fixedlen = 0;
	if (cs_transit_is_ecdsa(t)) {
		int rc = ecdsa_parse(t, o, sig, siglen, &fixed, &fixedlen, err);
		if (rc)
			return rc;
		sig = fixed;
		siglen = fixedlen;
	}
	EVP_PKEY *pk = load(der, len);
	if (!pk) {
		free(fixed);
		return CS_EINTERNAL;
	}
	int rc = CS_EINTERNAL;
	if (t == CS_TRANSIT_ED25519) {
		EVP_MD_CTX *m = EVP_MD_CTX_new();
		if (m && EVP_DigestVerifyInit(m, NULL, NULL, NULL, pk) == 1) {
			*valid = EVP_DigestVerify(m, sig, siglen, in, inlen) == 1;
			rc = 0;
		}
		EVP_MD_CTX_free(m);
	} else {
		EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(pk, NULL);
		if (c && EVP_PKEY_verify_init(c) == 1) {
			rc = cs_transit_is_rsa(t) ? rsa_setup(c, pk, o, true, err) : 0;
			/* Any failure of a well-formed call is a signature that does not verify. */
			if (!rc)
				*valid = EVP_PKEY_verify(c, sig, siglen, in, inlen) == 1;
		}
		EVP_PKEY_CTX_free(c);
	}
	EVP_PKEY_free(pk);
	free(fixed);
	return rc;
}

/* RSA-OAEP with SHA-256 for OAEP and MGF1 and no label (Go's EncryptOAEP(sha256.New(), ...,
 * nil) as Vault calls it). */
static int oaep(const uint8_t *der, size_t len, bool enc, const uint8_t *in, size_t inlen,
		struct cs_buf *out)
{
	EVP_PKEY *pk = load(der, len);
	if (!pk)
		return CS_EINTERNAL;
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(pk, NULL);
	int rc = CS_EINTERNAL;
	uint8_t buf[512]; /* RSA-4096 */
	size_t n = sizeof buf;
	if (c && (enc ? EVP_PKEY_encrypt_init(c) : EVP_PKEY_decrypt_init(c)) == 1 &&
	    EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) == 1 &&
	    EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha256()) == 1 &&
	    EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha256()) == 1 &&
	    (enc ? EVP_PKEY_encrypt(c, buf, &n, in, inlen)
		 : EVP_PKEY_decrypt(c, buf, &n, in, inlen)) == 1) {
		cs_buf_append(out, buf, n);
		rc = 0;
	}
	cs_zero(buf, sizeof buf);
	EVP_PKEY_CTX_free(c);
	EVP_PKEY_free(pk);
	return rc;
}

int cs_transit_rsa_encrypt(const uint8_t *der, size_t len, const uint8_t *pt, size_t ptlen,
			   struct cs_buf *out)
{
	return oaep(der, len, true, pt, ptlen, out);
}

int cs_transit_rsa_decrypt(const uint8_t *der, size_t len, const uint8_t *ct, size_t ctlen,
			   struct cs_buf *out)
{
	return oaep(der, len, false, ct, ctlen, out);
}

int cs_transit_ed25519_derive(const uint8_t *der, size_t len, const uint8_t *ctx, size_t ctxlen,
			      uint8_t **out, size_t *outlen)
{
	*out = NULL;
	EVP_PKEY *pk = load(der, len);
	if (!pk)
		return CS_EINTERNAL;
	/* Vault's ikm is Go's ed25519 private key: seed || public key. */
	uint8_t ikm[64], seed[32];
	size_t a = 32, b = 32;
	int ok = EVP_PKEY_get_raw_private_key(pk, ikm, &a) == 1 &&
		 EVP_PKEY_get_raw_public_key(pk, ikm + 32, &b) == 1 && a == 32 && b == 32;
	EVP_PKEY_free(pk);
	int rc =
	    ok ? cs_transit_hkdf(ikm, sizeof ikm, ctx, ctxlen, seed, sizeof seed) : CS_EINTERNAL;
	cs_zero(ikm, sizeof ikm);
	EVP_PKEY *d = rc ? NULL : EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
	cs_zero(seed, sizeof seed);
	return to_pkcs8(d, out, outlen);
}

int cs_transit_ed25519_from_seed(const uint8_t seed[32], uint8_t **der, size_t *len)
{
	*der = NULL;
	return to_pkcs8(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32), der, len);
}
