/*
 * Cluster CA, node certificates, PEM codecs and the cluster port's SSL_CTXs (contract in
 * cluster_tls.h). Every OpenSSL object is released on every path through
 * `err_after_<step>`-style cleanup at the end of each function.
 */
#include "storage/cluster_tls.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/util.h"

static void seterr(char *errmsg, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Message plus the newest OpenSSL error; drains the thread's error queue. */
static void seterr(char *errmsg, size_t errlen, const char *fmt, ...)
{
	char ossl[160] = "";
	unsigned long e = ERR_peek_last_error();
	if (e)
		ERR_error_string_n(e, ossl, sizeof ossl);
	ERR_clear_error();
	if (!errmsg || !errlen)
		return;
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (*ossl)
		snprintf(errmsg, errlen, "%s: %s", msg, ossl);
	else
		snprintf(errmsg, errlen, "%s", msg);
}

void cs_cluster_cred_free(struct cs_cluster_cred *c)
{
	EVP_PKEY_free(c->key);
	X509_free(c->cert);
	c->key = NULL;
	c->cert = NULL;
}

void cs_cluster_tls_node_name(uint64_t id, char *out, size_t outlen)
{
	snprintf(out, outlen, "node-%llu", (unsigned long long)id);
}

/* ---------------------------------------------------------------- generation */

static EVP_PKEY *gen_key(void)
{
	return EVP_EC_gen("P-256");
}

/* 159-bit random positive serial (RFC 5280: <= 20 octets, non-negative). */
static int set_serial(X509 *x)
{
	unsigned char raw[20];
	cs_random(raw, sizeof raw);
	raw[0] &= 0x7f;
	BIGNUM *bn = BN_bin2bn(raw, sizeof raw, NULL);
	int ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	return ok;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return 0;
	int ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

/* Common skeleton: v3, serial, validity from now - 1 h (clock skew) for `days`, subject
 * CN, public key. */
static X509 *new_cert(EVP_PKEY *key, const char *cn, int days)
{
	X509 *x = X509_new();
	if (!x)
		return NULL;
	X509_NAME *name = X509_get_subject_name(x);
	if (X509_set_version(x, 2) != 1 || !set_serial(x) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL) ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
				       0) != 1 ||
	    X509_set_pubkey(x, key) != 1) {
		X509_free(x);
		return NULL;
	}
	return x;
}

int cs_cluster_tls_gen_ca(const char *cluster_id, struct cs_cluster_cred *out, char *errmsg,
			  size_t errlen)
{
	out->key = NULL;
	out->cert = NULL;
	if (!cluster_id || !*cluster_id || strlen(cluster_id) > 64) {
		seterr(errmsg, errlen, "cluster id empty or longer than 64 characters");
		return CS_EINVAL;
	}
	char cn[96];
	snprintf(cn, sizeof cn, "custos-cluster-ca-%s", cluster_id);
	EVP_PKEY *key = gen_key();
	if (!key) {
		seterr(errmsg, errlen, "generate CA key");
		return CS_ECRYPTO;
	}
	X509 *x = new_cert(key, cn, CS_CLUSTER_CA_DAYS);
	if (!x || X509_set_issuer_name(x, X509_get_subject_name(x)) != 1 ||
	    !add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE") ||
	    !add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") ||
	    !add_ext(x, x, NID_subject_key_identifier, "hash") ||
	    !add_ext(x, x, NID_authority_key_identifier, "keyid:always") ||
	    X509_sign(x, key, EVP_sha256()) <= 0) {
		seterr(errmsg, errlen, "build CA certificate");
		X509_free(x);
		EVP_PKEY_free(key);
		return CS_ECRYPTO;
	}
	out->key = key;
	out->cert = x;
	return 0;
}

int cs_cluster_tls_gen_key(EVP_PKEY **out)
{
	*out = gen_key();
	if (!*out) {
		ERR_clear_error();
		return CS_ECRYPTO;
	}
	return 0;
}

int cs_cluster_tls_sign_node(const struct cs_cluster_cred *ca, uint64_t id, const char *const *ips,
			     size_t n_ips, EVP_PKEY *pub, X509 **out, char *errmsg, size_t errlen)
{
	*out = NULL;
	if (!ca || !ca->key || !ca->cert || id == 0 || !pub) {
		seterr(errmsg, errlen,
		       "node certificate needs a CA with its key, a public key and a non-zero "
		       "raft id");
		return CS_EINVAL;
	}
	char name[32];
	cs_cluster_tls_node_name(id, name, sizeof name);
	/* "DNS:node-<id>,IP:a,IP:b": check every IP ourselves for a precise error. */
	size_t cap = 64 + n_ips * 48;
	char *san = malloc(cap);
	if (!san)
		return CS_ENOMEM;
	size_t off = (size_t)snprintf(san, cap, "DNS:%s", name);
	for (size_t i = 0; i < n_ips; i++) {
		unsigned char bin[16];
		if (!ips[i] || (inet_pton(AF_INET, ips[i], bin) != 1 &&
				inet_pton(AF_INET6, ips[i], bin) != 1)) {
			seterr(errmsg, errlen, "not an IP address: %.64s", ips[i] ? ips[i] : "");
			free(san);
			return CS_EINVAL;
		}
		off += (size_t)snprintf(san + off, cap - off, ",IP:%s", ips[i]);
	}

	int rv = CS_ECRYPTO;
	X509 *x = new_cert(pub, name, CS_CLUSTER_CERT_DAYS);
	if (!x || X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) != 1 ||
	    !add_ext(x, ca->cert, NID_basic_constraints, "critical,CA:FALSE") ||
	    !add_ext(x, ca->cert, NID_key_usage, "critical,digitalSignature,keyAgreement") ||
	    !add_ext(x, ca->cert, NID_ext_key_usage, "serverAuth,clientAuth") ||
	    !add_ext(x, ca->cert, NID_subject_alt_name, san) ||
	    !add_ext(x, ca->cert, NID_subject_key_identifier, "hash") ||
	    !add_ext(x, ca->cert, NID_authority_key_identifier, "keyid:always") ||
	    X509_sign(x, ca->key, EVP_sha256()) <= 0) {
		seterr(errmsg, errlen, "build node certificate for %s", name);
		X509_free(x);
		goto out;
	}
	*out = x;
	rv = 0;
out:
	free(san);
	return rv;
}

int cs_cluster_tls_gen_node(const struct cs_cluster_cred *ca, uint64_t id, const char *const *ips,
			    size_t n_ips, struct cs_cluster_cred *out, char *errmsg, size_t errlen)
{
	out->key = NULL;
	out->cert = NULL;
	EVP_PKEY *key = NULL;
	if (cs_cluster_tls_gen_key(&key)) {
		seterr(errmsg, errlen, "generate node key");
		return CS_ECRYPTO;
	}
	int rv = cs_cluster_tls_sign_node(ca, id, ips, n_ips, key, &out->cert, errmsg, errlen);
	if (rv) {
		EVP_PKEY_free(key);
		return rv;
	}
	out->key = key;
	return 0;
}

int cs_cluster_tls_verify(X509 *ca, X509 *cert, char *errmsg, size_t errlen)
{
	int rv = CS_EPERM;
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	if (!store || !ctx || X509_STORE_add_cert(store, ca) != 1 ||
	    X509_STORE_CTX_init(ctx, store, cert, NULL) != 1) {
		seterr(errmsg, errlen, "verify: set up store");
		rv = CS_ECRYPTO;
		goto out;
	}
	/* Node certificates serve both ends of a connection. */
	static const int purposes[] = {X509_PURPOSE_SSL_SERVER, X509_PURPOSE_SSL_CLIENT};
	for (size_t i = 0; i < CS_ARRAY_LEN(purposes); i++) {
		X509_STORE_CTX_set_purpose(ctx, purposes[i]);
		if (X509_verify_cert(ctx) != 1) {
			seterr(errmsg, errlen, "verify: %s",
			       X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
			goto out;
		}
		X509_STORE_CTX_cleanup(ctx);
		if (X509_STORE_CTX_init(ctx, store, cert, NULL) != 1)
			goto out;
	}
	rv = 0;
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return rv;
}

/* ---------------------------------------------------------------- PEM */

/* Copy the BIO's contents into a malloc'd string, then scrub the BIO's buffer too. */
static int bio_to_string(BIO *b, char **pem, size_t *len)
{
	char *data = NULL;
	long n = BIO_get_mem_data(b, &data);
	if (n <= 0)
		return CS_ECRYPTO;
	char *s = malloc((size_t)n + 1);
	if (!s) {
		OPENSSL_cleanse(data, (size_t)n);
		return CS_ENOMEM;
	}
	memcpy(s, data, (size_t)n);
	s[n] = 0;
	OPENSSL_cleanse(data, (size_t)n);
	*pem = s;
	*len = (size_t)n;
	return 0;
}

int cs_cluster_tls_cert_to_pem(X509 *cert, char **pem, size_t *len)
{
	BIO *b = BIO_new(BIO_s_mem());
	int rv = CS_ECRYPTO;
	if (b && PEM_write_bio_X509(b, cert) == 1)
		rv = bio_to_string(b, pem, len);
	BIO_free(b);
	ERR_clear_error();
	return rv;
}

int cs_cluster_tls_key_to_pem(EVP_PKEY *key, char **pem, size_t *len)
{
	BIO *b = BIO_new(BIO_s_mem());
	int rv = CS_ECRYPTO;
	if (b && PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) == 1)
		rv = bio_to_string(b, pem, len);
	else if (b) {
		/* a partial write may have left key bytes behind */
		char *data = NULL;
		long n = BIO_get_mem_data(b, &data);
		if (n > 0)
			OPENSSL_cleanse(data, (size_t)n);
	}
	BIO_free(b);
	ERR_clear_error();
	return rv;
}

void cs_cluster_tls_pem_free(char *pem, size_t len)
{
	if (!pem)
		return;
	OPENSSL_cleanse(pem, len);
	free(pem);
}

int cs_cluster_tls_cert_from_pem(const char *pem, size_t len, X509 **out)
{
	*out = NULL;
	if (len > INT32_MAX)
		return CS_EINVAL;
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	if (!b)
		return CS_ENOMEM;
	*out = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	ERR_clear_error();
	return *out ? 0 : CS_EINVAL;
}

int cs_cluster_tls_key_from_pem(const char *pem, size_t len, EVP_PKEY **out)
{
	*out = NULL;
	if (len > INT32_MAX)
		return CS_EINVAL;
	/* A read-only memory BIO points at the caller's buffer: nothing to scrub here. */
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	if (!b)
		return CS_ENOMEM;
	/* Empty passphrase callback: never prompt on a terminal for an encrypted key. */
	*out = PEM_read_bio_PrivateKey(b, NULL, NULL, (void *)"");
	BIO_free(b);
	ERR_clear_error();
	return *out ? 0 : CS_EINVAL;
}

int cs_cluster_tls_pubkey_to_pem(EVP_PKEY *key, char **pem, size_t *len)
{
	BIO *b = BIO_new(BIO_s_mem());
	int rv = CS_ECRYPTO;
	if (b && PEM_write_bio_PUBKEY(b, key) == 1)
		rv = bio_to_string(b, pem, len);
	BIO_free(b);
	ERR_clear_error();
	return rv;
}

int cs_cluster_tls_pubkey_from_pem(const char *pem, size_t len, EVP_PKEY **out)
{
	*out = NULL;
	if (len > INT32_MAX)
		return CS_EINVAL;
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	if (!b)
		return CS_ENOMEM;
	*out = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
	BIO_free(b);
	ERR_clear_error();
	/* Only the cluster's key type: an RSA or other key would sign nothing we verify. */
	if (*out && !EVP_PKEY_is_a(*out, "EC")) {
		EVP_PKEY_free(*out);
		*out = NULL;
	}
	return *out ? 0 : CS_EINVAL;
}

int cs_cluster_tls_pubkey_sha256(EVP_PKEY *key, uint8_t out[32])
{
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(key, &der);
	unsigned int olen = 0;
	int ok =
	    n > 0 && EVP_Digest(der, (size_t)n, out, &olen, EVP_sha256(), NULL) == 1 && olen == 32;
	OPENSSL_free(der);
	ERR_clear_error();
	return ok ? 0 : CS_ECRYPTO;
}

/* ---------------------------------------------------------------- SSL_CTX */

size_t cs_cluster_tls_alpn(const char *proto, unsigned char *out, size_t outlen)
{
	size_t n = strlen(proto);
	if (n == 0 || n > 255 || n + 1 > outlen)
		return 0;
	out[0] = (unsigned char)n;
	memcpy(out + 1, proto, n);
	return n + 1;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	/* Client preference order; accept the first protocol we speak. */
	for (unsigned int i = 0; i < inlen;) {
		unsigned int n = in[i];
		if (i + 1 + n > inlen)
			break;
		const unsigned char *p = in + i + 1;
		if ((n == strlen(CS_ALPN_RAFT) && !memcmp(p, CS_ALPN_RAFT, n)) ||
		    (n == strlen(CS_ALPN_FORWARD) && !memcmp(p, CS_ALPN_FORWARD, n))) {
			*out = p;
			*outlen = (unsigned char)n;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + n;
	}
	return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol */
}

static SSL_CTX *ctx_new(const SSL_METHOD *method, X509 *ca, X509 *cert, EVP_PKEY *key, char *errmsg,
			size_t errlen)
{
	if (!ca || !cert || !key) {
		seterr(errmsg, errlen, "cluster TLS needs a CA, a certificate and a key");
		return NULL;
	}
	SSL_CTX *ctx = SSL_CTX_new(method);
	if (!ctx) {
		seterr(errmsg, errlen, "SSL_CTX_new");
		return NULL;
	}
	X509_STORE *store = SSL_CTX_get_cert_store(ctx); /* empty: no system trust */
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    X509_STORE_add_cert(store, ca) != 1) {
		seterr(errmsg, errlen, "configure cluster TLS");
		goto err;
	}
	if (SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		seterr(errmsg, errlen, "certificate and key do not match");
		SSL_CTX_free(ctx);
		ERR_clear_error();
		return NULL;
	}
	/* Chain building must also find the CA when a peer sends only its leaf. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_verify_depth(ctx, 2);
	/* Long-lived connections: sessions would only be state to protect. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	/* SSL_MODE_ENABLE_PARTIAL_WRITE stays off: with memory BIOs SSL_write then writes
	 * all or nothing, which the transport's pump relies on. */
	return ctx;
err:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *cs_cluster_tls_server_ctx(X509 *ca, X509 *cert, EVP_PKEY *key, char *errmsg, size_t errlen)
{
	SSL_CTX *ctx = ctx_new(TLS_server_method(), ca, cert, key, errmsg, errlen);
	if (!ctx)
		return NULL;
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	/* Verified clients require a session id context even with the cache off. */
	static const unsigned char sid[] = "custos-cluster";
	SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
	/* Our CA name in CertificateRequest: clients pick the right certificate. */
	STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
	X509_NAME *n = names ? X509_NAME_dup(X509_get_subject_name(ca)) : NULL;
	if (n && sk_X509_NAME_push(names, n) > 0) {
		SSL_CTX_set_client_CA_list(ctx, names);
	} else {
		X509_NAME_free(n);
		sk_X509_NAME_free(names);
	}
	return ctx;
}

SSL_CTX *cs_cluster_tls_client_ctx(X509 *ca, X509 *cert, EVP_PKEY *key, char *errmsg, size_t errlen)
{
	return ctx_new(TLS_client_method(), ca, cert, key, errmsg, errlen);
}

SSL *cs_cluster_tls_client_ssl(SSL_CTX *ctx, uint64_t peer_id, const char *alpn)
{
	char name[32];
	unsigned char protos[64];
	cs_cluster_tls_node_name(peer_id, name, sizeof name);
	size_t n = cs_cluster_tls_alpn(alpn, protos, sizeof protos);
	SSL *ssl = SSL_new(ctx);
	BIO *rbio = BIO_new(BIO_s_mem());
	BIO *wbio = BIO_new(BIO_s_mem());
	if (!ssl || !rbio || !wbio || n == 0) {
		BIO_free(rbio);
		BIO_free(wbio);
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_bio(ssl, rbio, wbio);
	SSL_set_connect_state(ssl);
	/* The peer proves it is the node we mean by its DNS SAN, never by the CN. */
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
	if (SSL_set1_host(ssl, name) != 1 || SSL_set_alpn_protos(ssl, protos, (unsigned)n) != 0) {
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}
