/*
 * Everything the PKI engine makes or reads in X.509 goes through OpenSSL here: keys,
 * certificates, CSRs, CRLs and their encodings (engines/pki_internal.h). Nothing touches
 * storage; buffers that held private keys are wiped before they are freed.
 */
#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engines/pki_internal.h"
#include "lib/err.h"
#include "lib/util.h"

int cs_pki_key_type_parse(const char *s)
{
	if (!s)
		return -1;
	if (strcmp(s, "rsa") == 0)
		return CS_PKI_KEY_RSA;
	if (strcmp(s, "ec") == 0)
		return CS_PKI_KEY_EC;
	if (strcmp(s, "ed25519") == 0)
		return CS_PKI_KEY_ED25519;
	if (strcmp(s, "any") == 0)
		return 3;
	return -1;
}

const char *cs_pki_key_type_name(enum cs_pki_key_type t)
{
	return t == CS_PKI_KEY_RSA ? "rsa" : t == CS_PKI_KEY_EC ? "ec" : "ed25519";
}

int cs_pki_key_bits_check(enum cs_pki_key_type t, int *bits, char *err, size_t errlen)
{
	switch (t) {
	case CS_PKI_KEY_RSA:
		if (*bits == 0)
			*bits = 2048;
		if (*bits == 2048 || *bits == 3072 || *bits == 4096 || *bits == 8192)
			return 0;
		snprintf(err, errlen, "unsupported bit length for RSA key: %d", *bits);
		return CS_EINVAL;
	case CS_PKI_KEY_EC:
		if (*bits == 0)
			*bits = 256;
		if (*bits == 224 || *bits == 256 || *bits == 384 || *bits == 521)
			return 0;
		snprintf(err, errlen, "unsupported bit length for EC key: %d", *bits);
		return CS_EINVAL;
	default:
		*bits = 0;
		return 0;
	}
}

EVP_PKEY *cs_pki_keygen(enum cs_pki_key_type t, int bits)
{
	switch (t) {
	case CS_PKI_KEY_RSA:
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	case CS_PKI_KEY_EC:
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC",
					 bits == 224   ? "P-224"
					 : bits == 384 ? "P-384"
					 : bits == 521 ? "P-521"
						       : "P-256");
	default:
		return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	}
}

int cs_pki_key_info(const EVP_PKEY *pk, enum cs_pki_key_type *t, int *bits)
{
	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_RSA:
		*t = CS_PKI_KEY_RSA;
		break;
	case EVP_PKEY_EC:
		*t = CS_PKI_KEY_EC;
		break;
	case EVP_PKEY_ED25519:
		*t = CS_PKI_KEY_ED25519;
		*bits = 0;
		return 0;
	default:
		return CS_EINVAL;
	}
	*bits = EVP_PKEY_get_bits(pk);
	return 0;
}

const char *cs_pki_key_type_of(const EVP_PKEY *pk)
{
	enum cs_pki_key_type t;
	int bits;
	if (cs_pki_key_info(pk, &t, &bits))
		return "unknown";
	return cs_pki_key_type_name(t);
}

/* The memory BIO's contents as a malloc'd string; the BIO's buffer is wiped and freed. */
static char *bio_take(BIO *b, size_t *len)
{
	char *data = NULL;
	long n = BIO_get_mem_data(b, &data);
	char *s = malloc((size_t)n + 1);
	if (!s)
		abort();
	if (n > 0)
		memcpy(s, data, (size_t)n);
	s[n] = 0;
	/* Trailing newline off, as Vault's strings.TrimSpace(pem) */
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = 0;
	if (len)
		*len = (size_t)n;
	if (data && n > 0)
		cs_zero(data, (size_t)n);
	BIO_free(b);
	return s;
}

static BIO *mem_bio(void)
{
	BIO *b = BIO_new(BIO_s_mem());
	if (!b)
		abort();
	return b;
}

int cs_pki_key_der(EVP_PKEY *pk, uint8_t **der, size_t *len)
{
	PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(pk);
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

EVP_PKEY *cs_pki_key_from_der(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	return d2i_AutoPrivateKey(NULL, &p, (long)len);
}

char *cs_pki_key_encode(EVP_PKEY *pk, const char *format)
{
	if (format && strcmp(format, "der") == 0) {
		uint8_t *der;
		size_t n;
		if (cs_pki_key_der(pk, &der, &n))
			return NULL;
		char *s = cs_b64_encode(der, n);
		cs_zero(der, n);
		free(der);
		return s;
	}
	BIO *b = mem_bio();
	int ok;
	bool pkcs8 = (format && strcmp(format, "pkcs8") == 0) ||
		     EVP_PKEY_get_base_id(pk) == EVP_PKEY_ED25519;
	if (pkcs8)
		ok = PEM_write_bio_PKCS8PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL);
	else
		ok = PEM_write_bio_PrivateKey_traditional(b, pk, NULL, NULL, 0, NULL, NULL);
	char *s = bio_take(b, NULL);
	if (ok != 1) {
		cs_zero(s, strlen(s));
		free(s);
		return NULL;
	}
	return s;
}

char *cs_pki_cert_pem(X509 *x)
{
	BIO *b = mem_bio();
	PEM_write_bio_X509(b, x);
	return bio_take(b, NULL);
}

char *cs_pki_csr_pem(X509_REQ *r)
{
	BIO *b = mem_bio();
	PEM_write_bio_X509_REQ(b, r);
	return bio_take(b, NULL);
}

char *cs_pki_crl_pem(X509_CRL *c)
{
	BIO *b = mem_bio();
	PEM_write_bio_X509_CRL(b, c);
	return bio_take(b, NULL);
}

uint8_t *cs_pki_cert_der(X509 *x, size_t *len)
{
	unsigned char *out = NULL;
	int n = i2d_X509(x, &out);
	if (n <= 0)
		return NULL;
	uint8_t *d = malloc((size_t)n);
	if (!d)
		abort();
	memcpy(d, out, (size_t)n);
	OPENSSL_free(out);
	*len = (size_t)n;
	return d;
}

uint8_t *cs_pki_crl_der(X509_CRL *c, size_t *len)
{
	unsigned char *out = NULL;
	int n = i2d_X509_CRL(c, &out);
	if (n <= 0)
		return NULL;
	uint8_t *d = malloc((size_t)n);
	if (!d)
		abort();
	memcpy(d, out, (size_t)n);
	OPENSSL_free(out);
	*len = (size_t)n;
	return d;
}

X509 *cs_pki_cert_from_pem(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	return x;
}

X509 *cs_pki_cert_from_der(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	return d2i_X509(NULL, &p, (long)len);
}

X509_REQ *cs_pki_csr_from_pem(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509_REQ *r = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (!r) { /* Vault also takes "NEW CERTIFICATE REQUEST" */
		b = BIO_new_mem_buf(pem, -1);
		r = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;
		BIO_free(b);
	}
	ERR_clear_error();
	return r;
}

void cs_pki_bundle_free(struct cs_pki_bundle *b)
{
	for (size_t i = 0; i < b->n_certs; i++)
		X509_free(b->certs[i]);
	for (size_t i = 0; i < b->n_keys; i++)
		EVP_PKEY_free(b->keys[i]);
	free(b->certs);
	free(b->keys);
	memset(b, 0, sizeof *b);
}

int cs_pki_bundle_parse(const char *pem, struct cs_pki_bundle *b, char *err, size_t errlen)
{
	memset(b, 0, sizeof *b);
	BIO *bio = BIO_new_mem_buf(pem, -1);
	if (!bio)
		abort();
	char *name = NULL, *header = NULL;
	unsigned char *data = NULL;
	long len = 0;
	int rc = 0;
	while (PEM_read_bio(bio, &name, &header, &data, &len) == 1) {
		const unsigned char *p = data;
		if (strcmp(name, "CERTIFICATE") == 0) {
			X509 *x = d2i_X509(NULL, &p, len);
			if (!x) {
				snprintf(err, errlen,
					 "unable to parse certificate in the PEM bundle");
				rc = CS_EINVAL;
			} else {
				b->certs = realloc(b->certs, (b->n_certs + 1) * sizeof *b->certs);
				if (!b->certs)
					abort();
				b->certs[b->n_certs++] = x;
			}
		} else if (strstr(name, "PRIVATE KEY")) {
			EVP_PKEY *k = NULL;
			if (strcmp(name, "RSA PRIVATE KEY") == 0)
				k = d2i_PrivateKey(EVP_PKEY_RSA, NULL, &p, len);
			else if (strcmp(name, "EC PRIVATE KEY") == 0)
				k = d2i_PrivateKey(EVP_PKEY_EC, NULL, &p, len);
			else
				k = d2i_AutoPrivateKey(NULL, &p, len);
			if (!k) {
				snprintf(err, errlen,
					 "unable to parse private key in the PEM bundle");
				rc = CS_EINVAL;
			} else {
				b->keys = realloc(b->keys, (b->n_keys + 1) * sizeof *b->keys);
				if (!b->keys)
					abort();
				b->keys[b->n_keys++] = k;
			}
		} else if (strcmp(name, "EC PARAMETERS") != 0) {
			snprintf(err, errlen, "unsupported PEM block type %s in the bundle", name);
			rc = CS_EINVAL;
		}
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_clear_free(data, (size_t)len);
		name = header = NULL;
		data = NULL;
		if (rc)
			break;
	}
	ERR_clear_error();
	BIO_free(bio);
	if (!rc && b->n_certs == 0 && b->n_keys == 0) {
		snprintf(err, errlen, "no data found in PEM block");
		rc = CS_EINVAL;
	}
	if (rc)
		cs_pki_bundle_free(b);
	return rc;
}

int64_t cs_pki_cert_not_after(const X509 *x)
{
	struct tm tm;
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm);
}

void cs_pki_cert_serial(const X509 *x, char sep, char *out, size_t outlen)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	uint8_t b[64];
	int n = bn ? BN_bn2bin(bn, b) : 0;
	BN_free(bn);
	if (n <= 0 || n > 64 || outlen < (size_t)n * 3) {
		snprintf(out, outlen, "00");
		return;
	}
	cs_pki_serial_format(b, (size_t)n, sep, out);
}

bool cs_pki_cert_key_match(X509 *x, EVP_PKEY *pk)
{
	EVP_PKEY *pub = X509_get0_pubkey(x);
	return pub && EVP_PKEY_eq(pub, pk) == 1;
}

bool cs_pki_cert_issued_by(X509 *child, X509 *parent)
{
	if (X509_NAME_cmp(X509_get_issuer_name(child), X509_get_subject_name(parent)) != 0)
		return false;
	EVP_PKEY *pk = X509_get0_pubkey(parent);
	bool ok = pk && X509_verify(child, pk) == 1;
	ERR_clear_error();
	return ok;
}

char *cs_pki_name_cn(const X509_NAME *n)
{
	int i = X509_NAME_get_index_by_NID(n, NID_commonName, -1);
	if (i < 0)
		return NULL;
	ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, i));
	unsigned char *u = NULL;
	int len = ASN1_STRING_to_UTF8(&u, s);
	if (len < 0)
		return NULL;
	char *r = strndup((char *)u, (size_t)len);
	OPENSSL_free(u);
	return r;
}

/* ---- building certificates */

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	if (!e)
		return -1;
	int ok = X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	return ok == 1 ? 0 : -1;
}

static bool push_gn(GENERAL_NAMES *gns, int type, const char *v)
{
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_IA5STRING *s = ASN1_IA5STRING_new();
	if (!gn || !s || !ASN1_STRING_set(s, v, (int)strlen(v))) {
		GENERAL_NAME_free(gn);
		ASN1_IA5STRING_free(s);
		return false;
	}
	GENERAL_NAME_set0_value(gn, type, s);
	sk_GENERAL_NAME_push(gns, gn);
	return true;
}

static bool push_ip(GENERAL_NAMES *gns, const char *ip)
{
	uint8_t buf[16];
	int n = 0;
	if (inet_pton(AF_INET, ip, buf) == 1)
		n = 4;
	else if (inet_pton(AF_INET6, ip, buf) == 1)
		n = 16;
	else
		return false;
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_OCTET_STRING *s = ASN1_OCTET_STRING_new();
	ASN1_OCTET_STRING_set(s, buf, n);
	GENERAL_NAME_set0_value(gn, GEN_IPADD, s);
	sk_GENERAL_NAME_push(gns, gn);
	return true;
}

/* "oid;UTF8:value" → an otherName with a UTF8String. */
static bool push_other(GENERAL_NAMES *gns, const char *spec)
{
	const char *semi = strchr(spec, ';');
	if (!semi || strncasecmp(semi + 1, "utf8:", 5) != 0)
		return false;
	char oid[128];
	size_t on = (size_t)(semi - spec);
	if (on == 0 || on >= sizeof oid)
		return false;
	memcpy(oid, spec, on);
	oid[on] = 0;
	ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
	if (!obj)
		return false;
	ASN1_TYPE *val = ASN1_TYPE_new();
	ASN1_UTF8STRING *u = ASN1_UTF8STRING_new();
	ASN1_STRING_set(u, semi + 6, (int)strlen(semi + 6));
	ASN1_TYPE_set(val, V_ASN1_UTF8STRING, u);
	GENERAL_NAME *gn = GENERAL_NAME_new();
	if (!GENERAL_NAME_set0_othername(gn, obj, val)) {
		GENERAL_NAME_free(gn);
		ASN1_OBJECT_free(obj);
		ASN1_TYPE_free(val);
		return false;
	}
	sk_GENERAL_NAME_push(gns, gn);
	return true;
}

static GENERAL_NAMES *build_sans(const struct cs_pki_cert_spec *s, char *err, size_t errlen)
{
	GENERAL_NAMES *gns = sk_GENERAL_NAME_new_null();
	bool ok = true;
	for (size_t i = 0; ok && i < s->n_dns; i++)
		ok = push_gn(gns, GEN_DNS, s->dns[i]);
	for (size_t i = 0; ok && i < s->n_emails; i++)
		ok = push_gn(gns, GEN_EMAIL, s->emails[i]);
	for (size_t i = 0; ok && i < s->n_ips; i++)
		if (!(ok = push_ip(gns, s->ips[i])))
			snprintf(err, errlen, "the value \"%s\" is not a valid IP address",
				 s->ips[i]);
	for (size_t i = 0; ok && i < s->n_uris; i++)
		ok = push_gn(gns, GEN_URI, s->uris[i]);
	for (size_t i = 0; ok && i < s->n_other_sans; i++)
		if (!(ok = push_other(gns, s->other_sans[i])))
			snprintf(err, errlen, "could not parse requested other SAN: %s",
				 s->other_sans[i]);
	if (!ok) {
		GENERAL_NAMES_free(gns);
		return NULL;
	}
	return gns;
}

static const EVP_MD *pick_md(EVP_PKEY *signer, int bits)
{
	if (EVP_PKEY_get_base_id(signer) == EVP_PKEY_ED25519)
		return NULL;
	if (bits == 0 && EVP_PKEY_get_base_id(signer) == EVP_PKEY_EC) {
		int kb = EVP_PKEY_get_bits(signer);
		bits = kb >= 521 ? 512 : kb >= 384 ? 384 : 256;
	}
	return bits == 384 ? EVP_sha384() : bits == 512 ? EVP_sha512() : EVP_sha256();
}

static int sign_x509(X509 *x, EVP_PKEY *signer, int bits, bool pss)
{
	EVP_MD_CTX *mctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	const EVP_MD *md = pick_md(signer, bits);
	int ok = EVP_DigestSignInit(mctx, &pctx, md, NULL, signer) == 1;
	if (ok && pss && EVP_PKEY_get_base_id(signer) == EVP_PKEY_RSA)
		ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
		     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0;
	ok = ok && X509_sign_ctx(x, mctx) > 0;
	EVP_MD_CTX_free(mctx);
	return ok ? 0 : -1;
}

static void add_url_list(STACK_OF(ACCESS_DESCRIPTION) * aia, int nid, const char *const *urls,
			 size_t n)
{
	for (size_t i = 0; i < n; i++) {
		ACCESS_DESCRIPTION *ad = ACCESS_DESCRIPTION_new();
		ad->method = OBJ_nid2obj(nid);
		GENERAL_NAME_free(ad->location);
		ad->location = GENERAL_NAME_new();
		ASN1_IA5STRING *s = ASN1_IA5STRING_new();
		ASN1_STRING_set(s, urls[i], (int)strlen(urls[i]));
		GENERAL_NAME_set0_value(ad->location, GEN_URI, s);
		sk_ACCESS_DESCRIPTION_push(aia, ad);
	}
}

static int add_urls(X509 *x, const struct cs_pki_cert_spec *s)
{
	if (s->n_issuing_certificates || s->n_ocsp_servers) {
		AUTHORITY_INFO_ACCESS *aia = sk_ACCESS_DESCRIPTION_new_null();
		add_url_list(aia, NID_ad_OCSP, s->ocsp_servers, s->n_ocsp_servers);
		add_url_list(aia, NID_ad_ca_issuers, s->issuing_certificates,
			     s->n_issuing_certificates);
		int ok = X509_add1_ext_i2d(x, NID_info_access, aia, 0, X509V3_ADD_DEFAULT);
		AUTHORITY_INFO_ACCESS_free(aia);
		if (ok != 1)
			return -1;
	}
	if (s->n_crl_distribution_points) {
		CRL_DIST_POINTS *cdp = sk_DIST_POINT_new_null();
		for (size_t i = 0; i < s->n_crl_distribution_points; i++) {
			DIST_POINT *dp = DIST_POINT_new();
			dp->distpoint = DIST_POINT_NAME_new();
			dp->distpoint->type = 0;
			dp->distpoint->name.fullname = sk_GENERAL_NAME_new_null();
			push_gn(dp->distpoint->name.fullname, GEN_URI,
				s->crl_distribution_points[i]);
			sk_DIST_POINT_push(cdp, dp);
		}
		int ok =
		    X509_add1_ext_i2d(x, NID_crl_distribution_points, cdp, 0, X509V3_ADD_DEFAULT);
		CRL_DIST_POINTS_free(cdp);
		if (ok != 1)
			return -1;
	}
	return 0;
}

/* The certificate's SubjectPublicKeyInfo from the key's encoded public half, for EC named
 * curves and Ed25519. X509_set_pubkey would encode the key through OpenSSL 3's provider
 * encoders and decode it back to cache a copy: a third of an EC issuance (perf). The
 * fields written here are the ones that round trip gives (RFC 5480 §2, RFC 8410 §4).
 * 0, or -1 when the key is of another kind (the caller falls back). */
static int set_pubkey_fast(X509 *x, EVP_PKEY *pk)
{
	int id = EVP_PKEY_get_base_id(pk);
	X509_PUBKEY *xpk = X509_get_X509_PUBKEY(x);
	unsigned char *enc = NULL;
	if (id == EVP_PKEY_EC) {
		char group[64];
		int nid = NID_undef;
		if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group,
						   sizeof group, NULL) == 1)
			nid = OBJ_sn2nid(group);
		if (nid == NID_undef)
			nid = EC_curve_nist2nid(group);
		if (nid == NID_undef)
			return -1;
		size_t n = EVP_PKEY_get1_encoded_public_key(pk, &enc);
		if (n == 0 || n > INT32_MAX)
			return -1;
		if (X509_PUBKEY_set0_param(xpk, OBJ_nid2obj(NID_X9_62_id_ecPublicKey),
					   V_ASN1_OBJECT, OBJ_nid2obj(nid), enc, (int)n) != 1) {
			OPENSSL_free(enc);
			return -1;
		}
		return 0;
	}
	if (id == EVP_PKEY_ED25519) {
		size_t n = 32;
		enc = OPENSSL_malloc(n);
		if (!enc || EVP_PKEY_get_raw_public_key(pk, enc, &n) != 1 ||
		    X509_PUBKEY_set0_param(xpk, OBJ_nid2obj(NID_ED25519), V_ASN1_UNDEF, NULL, enc,
					   (int)n) != 1) {
			OPENSSL_free(enc);
			return -1;
		}
		return 0;
	}
	return -1;
}

X509 *cs_pki_cert_build(const struct cs_pki_cert_spec *s, char *err, size_t errlen)
{
	X509 *x = X509_new();
	if (!x)
		abort();
	snprintf(err, errlen, "failed to create certificate");
	BIGNUM *bn = BN_bin2bn(s->serial, (int)s->serial_len, NULL);
	ASN1_INTEGER *ser = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
	BN_free(bn);
	bool ok = ser && X509_set_version(x, 2) && X509_set_serialNumber(x, ser);
	ASN1_INTEGER_free(ser);
	ok = ok && X509_set_subject_name(x, s->subject) &&
	     X509_set_issuer_name(x, s->issuer ? X509_get_subject_name(s->issuer) : s->subject);
	ok = ok && ASN1_TIME_set(X509_getm_notBefore(x), (time_t)s->not_before) &&
	     ASN1_TIME_set(X509_getm_notAfter(x), (time_t)s->not_after);
	/* Leaves only: a certificate built this way has no cached EVP_PKEY until it is parsed
	 * again (X509_get0_pubkey answers NULL), and CA certificates are matched against
	 * their keys right after (cs_pki_issuer_store). */
	ok = ok && ((!s->is_ca && s->issuer && set_pubkey_fast(x, s->pubkey) == 0) ||
		    X509_set_pubkey(x, s->pubkey));
	if (!ok)
		goto fail;
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, s->issuer ? s->issuer : x, x, NULL, NULL, 0);
	if (s->is_ca) {
		char bc[64];
		if (s->max_path_len >= 0)
			snprintf(bc, sizeof bc, "critical,CA:TRUE,pathlen:%d", s->max_path_len);
		else
			snprintf(bc, sizeof bc, "critical,CA:TRUE");
		if (add_ext(x, &ctx, NID_basic_constraints, bc))
			goto fail;
	} else if (s->basic_constraints_non_ca) {
		if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE"))
			goto fail;
	}
	if (s->key_usage) {
		ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
		for (int bit = 0; bit < 9; bit++) {
			/* X509v3_KU_* are the DER bit masks: bit 0 is 0x80 of the first byte. */
			unsigned mask = bit < 8 ? (0x80u >> bit) : 0x8000u;
			if (s->key_usage & mask)
				ASN1_BIT_STRING_set_bit(ku, bit, 1);
		}
		ok = X509_add1_ext_i2d(x, NID_key_usage, ku, 1, X509V3_ADD_DEFAULT) == 1;
		ASN1_BIT_STRING_free(ku);
		if (!ok)
			goto fail;
	}
	if (s->n_ext_key_usage || s->n_ext_key_usage_oids) {
		EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
		for (size_t i = 0; i < s->n_ext_key_usage; i++)
			sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(s->ext_key_usage[i]));
		for (size_t i = 0; i < s->n_ext_key_usage_oids; i++) {
			ASN1_OBJECT *o = OBJ_txt2obj(s->ext_key_usage_oids[i], 1);
			if (!o) {
				sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
				snprintf(err, errlen, "%s is not a valid OID",
					 s->ext_key_usage_oids[i]);
				goto fail;
			}
			sk_ASN1_OBJECT_push(eku, o);
		}
		ok = X509_add1_ext_i2d(x, NID_ext_key_usage, eku, 0, X509V3_ADD_DEFAULT) == 1;
		sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
		if (!ok)
			goto fail;
	}
	if (add_ext(x, &ctx, NID_subject_key_identifier, "hash"))
		goto fail;
	if (s->issuer && add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always"))
		goto fail;
	GENERAL_NAMES *gns = build_sans(s, err, errlen);
	if (!gns)
		goto fail;
	if (sk_GENERAL_NAME_num(gns) > 0 &&
	    X509_add1_ext_i2d(x, NID_subject_alt_name, gns, 0, X509V3_ADD_DEFAULT) != 1) {
		GENERAL_NAMES_free(gns);
		goto fail;
	}
	GENERAL_NAMES_free(gns);
	if (add_urls(x, s))
		goto fail;
	if (sign_x509(x, s->signer, s->signature_bits, s->use_pss)) {
		snprintf(err, errlen, "failed to sign the certificate");
		goto fail;
	}
	ERR_clear_error();
	return x;
fail:
	ERR_clear_error();
	X509_free(x);
	return NULL;
}

X509_REQ *cs_pki_csr_build(const struct cs_pki_cert_spec *s, EVP_PKEY *key, char *err,
			   size_t errlen)
{
	X509_REQ *r = X509_REQ_new();
	if (!r)
		abort();
	snprintf(err, errlen, "failed to create the CSR");
	if (!X509_REQ_set_version(r, 0) || !X509_REQ_set_subject_name(r, s->subject) ||
	    !X509_REQ_set_pubkey(r, key))
		goto fail;
	GENERAL_NAMES *gns = build_sans(s, err, errlen);
	if (!gns)
		goto fail;
	if (sk_GENERAL_NAME_num(gns) > 0) {
		STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
		X509V3_add1_i2d(&exts, NID_subject_alt_name, gns, 0, X509V3_ADD_DEFAULT);
		X509_REQ_add_extensions(r, exts);
		sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	}
	GENERAL_NAMES_free(gns);
	const EVP_MD *md = pick_md(key, s->signature_bits);
	if (X509_REQ_sign(r, key, md) <= 0)
		goto fail;
	ERR_clear_error();
	return r;
fail:
	ERR_clear_error();
	X509_REQ_free(r);
	return NULL;
}

static void push_asn1_str(struct cs_strv *out, const ASN1_STRING *s)
{
	cs_strv_push(out, (const char *)ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
}

void cs_pki_csr_sans(X509_REQ *r, struct cs_strv *dns, struct cs_strv *emails, struct cs_strv *ips,
		     struct cs_strv *uris, struct cs_strv *others)
{
	STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(r);
	GENERAL_NAMES *gns = exts ? X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL) : NULL;
	for (int i = 0; gns && i < sk_GENERAL_NAME_num(gns); i++) {
		GENERAL_NAME *gn = sk_GENERAL_NAME_value(gns, i);
		int type;
		void *v = GENERAL_NAME_get0_value(gn, &type);
		if (type == GEN_DNS)
			push_asn1_str(dns, v);
		else if (type == GEN_EMAIL)
			push_asn1_str(emails, v);
		else if (type == GEN_URI)
			push_asn1_str(uris, v);
		else if (type == GEN_IPADD) {
			const ASN1_OCTET_STRING *o = v;
			char buf[64];
			int af = o->length == 4 ? AF_INET : AF_INET6;
			if ((o->length == 4 || o->length == 16) &&
			    inet_ntop(af, o->data, buf, sizeof buf))
				cs_strv_push(ips, buf, strlen(buf));
		} else if (type == GEN_OTHERNAME) {
			ASN1_OBJECT *oid;
			ASN1_TYPE *val;
			GENERAL_NAME_get0_otherName(gn, &oid, &val);
			char o[128];
			OBJ_obj2txt(o, sizeof o, oid, 1);
			if (val->type == V_ASN1_UTF8STRING) {
				const ASN1_STRING *s = val->value.utf8string;
				char buf[1200];
				int n = snprintf(
				    buf, sizeof buf, "%s;UTF8:%.*s", o,
				    ASN1_STRING_length(s) > 1024 ? 1024 : ASN1_STRING_length(s),
				    (const char *)ASN1_STRING_get0_data(s));
				cs_strv_push(others, buf, (size_t)n);
			}
		}
	}
	GENERAL_NAMES_free(gns);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	ERR_clear_error();
}

X509_CRL *cs_pki_crl_build(X509 *issuer, EVP_PKEY *key, const struct cs_pki_revoked *rev, size_t n,
			   int64_t number, int64_t delta_base, int64_t now, int64_t expiry)
{
	X509_CRL *c = X509_CRL_new();
	if (!c)
		abort();
	ASN1_TIME *t = ASN1_TIME_new();
	bool ok = X509_CRL_set_version(c, 1) &&
		  X509_CRL_set_issuer_name(c, X509_get_subject_name(issuer));
	ok = ok && ASN1_TIME_set(t, (time_t)now) && X509_CRL_set1_lastUpdate(c, t);
	ok = ok && ASN1_TIME_set(t, (time_t)(now + expiry)) && X509_CRL_set1_nextUpdate(c, t);
	for (size_t i = 0; ok && i < n; i++) {
		X509_REVOKED *r = X509_REVOKED_new();
		BIGNUM *bn = BN_bin2bn(rev[i].serial, (int)rev[i].serial_len, NULL);
		ASN1_INTEGER *ser = BN_to_ASN1_INTEGER(bn, NULL);
		BN_free(bn);
		ok = ser && X509_REVOKED_set_serialNumber(r, ser) &&
		     ASN1_TIME_set(t, (time_t)rev[i].when) &&
		     X509_REVOKED_set_revocationDate(r, t) && X509_CRL_add0_revoked(c, r);
		ASN1_INTEGER_free(ser);
		if (!ok)
			X509_REVOKED_free(r);
	}
	ASN1_TIME_free(t);
	if (ok) {
		ASN1_INTEGER *num = ASN1_INTEGER_new();
		ASN1_INTEGER_set_int64(num, number);
		ok = X509_CRL_add1_ext_i2d(c, NID_crl_number, num, 0, 0) == 1;
		if (ok && delta_base > 0) {
			ASN1_INTEGER_set_int64(num, delta_base);
			ok = X509_CRL_add1_ext_i2d(c, NID_delta_crl, num, 1, 0) == 1;
		}
		ASN1_INTEGER_free(num);
	}
	if (ok) {
		X509V3_CTX ctx;
		X509V3_set_ctx(&ctx, issuer, NULL, NULL, c, 0);
		X509_EXTENSION *e =
		    X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always");
		ok = e && X509_CRL_add_ext(c, e, -1) == 1;
		X509_EXTENSION_free(e);
	}
	ok = ok && X509_CRL_sort(c);
	ok = ok && X509_CRL_sign(c, key, pick_md(key, 0)) > 0;
	ERR_clear_error();
	if (!ok) {
		X509_CRL_free(c);
		return NULL;
	}
	return c;
}

/* One attribute per value of the field (array or comma list), in Go's pkix.Name order. */
static void add_rdn(X509_NAME *n, int nid, const cJSON *src, const char *field)
{
	struct cs_strv v = {0};
	cs_pki_json_list(src, field, &v);
	for (size_t i = 0; i < v.n; i++)
		X509_NAME_add_entry_by_NID(n, nid, MBSTRING_UTF8, (unsigned char *)v.v[i], -1, -1,
					   0);
	cs_strv_free(&v);
}

X509_NAME *cs_pki_subject(const cJSON *src, const char *cn, const char *serial_number)
{
	X509_NAME *n = X509_NAME_new();
	if (!n)
		abort();
	add_rdn(n, NID_countryName, src, "country");
	add_rdn(n, NID_organizationName, src, "organization");
	add_rdn(n, NID_organizationalUnitName, src, "ou");
	add_rdn(n, NID_localityName, src, "locality");
	add_rdn(n, NID_stateOrProvinceName, src, "province");
	add_rdn(n, NID_streetAddress, src, "street_address");
	add_rdn(n, NID_postalCode, src, "postal_code");
	if (serial_number && *serial_number)
		X509_NAME_add_entry_by_NID(n, NID_serialNumber, MBSTRING_UTF8,
					   (unsigned char *)serial_number, -1, -1, 0);
	if (cn && *cn)
		X509_NAME_add_entry_by_NID(n, NID_commonName, MBSTRING_UTF8, (unsigned char *)cn,
					   -1, -1, 0);
	ERR_clear_error();
	return n;
}

OCSP_REQUEST *cs_pki_ocsp_parse(const uint8_t *der, size_t len, OCSP_CERTID **id, uint8_t *serial,
				size_t cap, size_t *serial_len)
{
	*id = NULL;
	*serial_len = 0;
	if (!der || len == 0 || len > LONG_MAX)
		return NULL;
	const unsigned char *p = der;
	OCSP_REQUEST *r = d2i_OCSP_REQUEST(NULL, &p, (long)len);
	if (!r || p != der + len || OCSP_request_onereq_count(r) != 1)
		goto bad;
	OCSP_CERTID *cid = OCSP_onereq_get0_id(OCSP_request_onereq_get0(r, 0));
	ASN1_INTEGER *ser = NULL;
	if (!cid || !OCSP_id_get0_info(NULL, NULL, NULL, &ser, cid) || !ser)
		goto bad;
	BIGNUM *bn = ASN1_INTEGER_to_BN(ser, NULL);
	if (!bn || BN_is_negative(bn) || (size_t)BN_num_bytes(bn) > cap) {
		BN_free(bn);
		goto bad;
	}
	int n = BN_bn2bin(bn, serial);
	BN_free(bn);
	if (n <= 0) /* serial 0: nothing we issue */
		goto bad;
	*serial_len = (size_t)n;
	*id = cid;
	return r;
bad:
	OCSP_REQUEST_free(r);
	ERR_clear_error();
	return NULL;
}

X509 *cs_pki_cert_resign(X509 *cert, X509 *issuer, EVP_PKEY *signer,
			 const struct cs_pki_cert_spec *urls, bool keep_hash, char *err,
			 size_t errlen)
{
	snprintf(err, errlen, "error signing self-issued certificate");
	int sigbits = 0;
	if (keep_hash) {
		int mdnid = NID_undef;
		if (X509_get_signature_info(cert, &mdnid, NULL, NULL, NULL) == 1)
			sigbits = mdnid == NID_sha384 ? 384 : mdnid == NID_sha512 ? 512 : 0;
	}
	X509 *x = X509_dup(cert);
	if (!x)
		return NULL;
	/* The new issuer: its name, its key identifier; this mount's AIA and CRL URLs (as
	 * Vault, which replaces them with the signing issuer's). */
	static const int drop[] = {NID_authority_key_identifier, NID_info_access,
				   NID_crl_distribution_points};
	for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
		for (int at; (at = X509_get_ext_by_NID(x, drop[i], -1)) >= 0;)
			X509_EXTENSION_free(X509_delete_ext(x, at));
	bool ok = X509_set_issuer_name(x, X509_get_subject_name(issuer)) == 1;
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ok = ok && add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") == 0;
	ok = ok && add_urls(x, urls) == 0;
	ok = ok && sign_x509(x, signer, sigbits, false) == 0;
	if (!ok) {
		ERR_clear_error();
		X509_free(x);
		return NULL;
	}
	return x;
}
