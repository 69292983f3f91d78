/*
 * Cluster TLS material: CA and node certificate generation (names, SANs, EKU, validity),
 * chain verification against the right and a foreign CA, PEM round trips, SSL_CTX
 * construction and an in-memory mutual-TLS handshake between the two contexts.
 */
#include <check.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "storage/cluster_tls.h"

static char err[256];

static struct cs_cluster_cred make_ca(const char *id)
{
	struct cs_cluster_cred ca;
	int rv = cs_cluster_tls_gen_ca(id, &ca, err, sizeof err);
	ck_assert_msg(rv == 0, "%s", err);
	return ca;
}

static struct cs_cluster_cred make_node(const struct cs_cluster_cred *ca, uint64_t id)
{
	struct cs_cluster_cred n;
	static const char *const ips[] = {"127.0.0.1", "::1"};
	int rv = cs_cluster_tls_gen_node(ca, id, ips, 2, &n, err, sizeof err);
	ck_assert_msg(rv == 0, "%s", err);
	return n;
}

static void subject_cn(X509 *x, char *out, size_t n)
{
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out, (int)n);
}

/* Days from now until `t` (negative in the past). */
static int days_until(const ASN1_TIME *t)
{
	int days = 0, secs = 0;
	ck_assert_int_eq(ASN1_TIME_diff(&days, &secs, NULL, t), 1);
	return days;
}

START_TEST(test_ca)
{
	struct cs_cluster_cred ca = make_ca("abc123");
	char cn[128];
	subject_cn(ca.cert, cn, sizeof cn);
	ck_assert_str_eq(cn, "custos-cluster-ca-abc123");
	ck_assert_int_eq(X509_check_ca(ca.cert), 1);
	ck_assert_int_eq(X509_check_issued(ca.cert, ca.cert), X509_V_OK);
	int d = days_until(X509_get0_notAfter(ca.cert));
	ck_assert_int_ge(d, 3649);
	ck_assert_int_le(d, 3650);
	ck_assert_int_le(days_until(X509_get0_notBefore(ca.cert)), 0);
	ck_assert_int_eq(EVP_PKEY_get_bits(ca.key), 256);
	ck_assert(EVP_PKEY_is_a(ca.key, "EC"));
	cs_cluster_cred_free(&ca);

	ck_assert_int_eq(cs_cluster_tls_gen_ca("", &ca, err, sizeof err), CS_EINVAL);
	ck_assert_ptr_null(ca.cert);
}
END_TEST

START_TEST(test_node_cert)
{
	struct cs_cluster_cred ca = make_ca("c1");
	uint64_t id = 9223372036854775807ULL; /* the largest id cs_raft_id_from_name makes */
	struct cs_cluster_cred n = make_node(&ca, id);
	char cn[128];
	subject_cn(n.cert, cn, sizeof cn);
	ck_assert_str_eq(cn, "node-9223372036854775807");

	/* SANs: the DNS name carries the raft id; the IP SANs are present. */
	ck_assert_int_eq(X509_check_host(n.cert, "node-9223372036854775807", 0,
					 X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, NULL),
			 1);
	ck_assert_int_ne(X509_check_host(n.cert, "node-1", 0, 0, NULL), 1);
	ck_assert_int_eq(X509_check_ip_asc(n.cert, "127.0.0.1", 0), 1);
	ck_assert_int_eq(X509_check_ip_asc(n.cert, "::1", 0), 1);
	ck_assert_int_ne(X509_check_ip_asc(n.cert, "10.0.0.1", 0), 1);

	/* EKU serverAuth + clientAuth; not a CA. */
	uint32_t xku = X509_get_extended_key_usage(n.cert);
	ck_assert(xku & XKU_SSL_SERVER);
	ck_assert(xku & XKU_SSL_CLIENT);
	ck_assert_int_eq(X509_check_ca(n.cert), 0);
	int d = days_until(X509_get0_notAfter(n.cert));
	ck_assert_int_ge(d, 364);
	ck_assert_int_le(d, 365);

	ck_assert_int_eq(cs_cluster_tls_verify(ca.cert, n.cert, err, sizeof err), 0);
	/* Different serials for different certificates. */
	struct cs_cluster_cred n2 = make_node(&ca, 2);
	ck_assert_int_ne(
	    ASN1_INTEGER_cmp(X509_get_serialNumber(n.cert), X509_get_serialNumber(n2.cert)), 0);

	/* Bad input. */
	struct cs_cluster_cred bad;
	static const char *const badip[] = {"not-an-ip"};
	ck_assert_int_eq(cs_cluster_tls_gen_node(&ca, 3, badip, 1, &bad, err, sizeof err),
			 CS_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "not-an-ip"));
	ck_assert_int_eq(cs_cluster_tls_gen_node(&ca, 0, NULL, 0, &bad, err, sizeof err),
			 CS_EINVAL);
	ck_assert_ptr_null(bad.key);
	cs_cluster_cred_free(&n2);
	cs_cluster_cred_free(&n);
	cs_cluster_cred_free(&ca);
}
END_TEST

START_TEST(test_foreign_ca)
{
	struct cs_cluster_cred ca = make_ca("a"), rogue = make_ca("b");
	struct cs_cluster_cred n = make_node(&rogue, 1);
	ck_assert_int_eq(cs_cluster_tls_verify(ca.cert, n.cert, err, sizeof err), CS_EPERM);
	ck_assert_ptr_nonnull(strstr(err, "verify:"));
	/* A CA with the same name is still another key. */
	struct cs_cluster_cred twin = make_ca("a");
	struct cs_cluster_cred n2 = make_node(&twin, 1);
	ck_assert_int_eq(cs_cluster_tls_verify(ca.cert, n2.cert, err, sizeof err), CS_EPERM);
	/* A node certificate is not a CA. */
	struct cs_cluster_cred good = make_node(&ca, 4);
	struct cs_cluster_cred fake_ca = {good.key, good.cert};
	struct cs_cluster_cred sub = make_node(&fake_ca, 5);
	ck_assert_int_eq(cs_cluster_tls_verify(ca.cert, sub.cert, err, sizeof err), CS_EPERM);
	cs_cluster_cred_free(&sub);
	cs_cluster_cred_free(&good);
	cs_cluster_cred_free(&n2);
	cs_cluster_cred_free(&twin);
	cs_cluster_cred_free(&n);
	cs_cluster_cred_free(&rogue);
	cs_cluster_cred_free(&ca);
}
END_TEST

START_TEST(test_pem_roundtrip)
{
	struct cs_cluster_cred ca = make_ca("pem");
	struct cs_cluster_cred n = make_node(&ca, 7);
	char *cpem, *kpem;
	size_t clen, klen;
	ck_assert_int_eq(cs_cluster_tls_cert_to_pem(n.cert, &cpem, &clen), 0);
	ck_assert_int_eq(cs_cluster_tls_key_to_pem(n.key, &kpem, &klen), 0);
	ck_assert_uint_eq(strlen(cpem), clen);
	ck_assert_ptr_nonnull(strstr(cpem, "-----BEGIN CERTIFICATE-----"));
	ck_assert_ptr_nonnull(strstr(kpem, "-----BEGIN PRIVATE KEY-----"));

	X509 *c2;
	EVP_PKEY *k2;
	ck_assert_int_eq(cs_cluster_tls_cert_from_pem(cpem, clen, &c2), 0);
	ck_assert_int_eq(cs_cluster_tls_key_from_pem(kpem, klen, &k2), 0);
	ck_assert_int_eq(X509_cmp(c2, n.cert), 0);
	ck_assert_int_eq(EVP_PKEY_eq(k2, n.key), 1);
	ck_assert_int_eq(X509_check_private_key(c2, k2), 1);
	ck_assert_int_eq(cs_cluster_tls_verify(ca.cert, c2, err, sizeof err), 0);

	/* Garbage and truncation are refused. */
	X509 *bad;
	EVP_PKEY *badk;
	ck_assert_int_eq(cs_cluster_tls_cert_from_pem("nope", 4, &bad), CS_EINVAL);
	ck_assert_ptr_null(bad);
	ck_assert_int_eq(cs_cluster_tls_cert_from_pem(cpem, clen / 2, &bad), CS_EINVAL);
	ck_assert_int_eq(cs_cluster_tls_key_from_pem(kpem, klen / 2, &badk), CS_EINVAL);
	ck_assert_int_eq(cs_cluster_tls_key_from_pem(cpem, clen, &badk), CS_EINVAL);

	X509_free(c2);
	EVP_PKEY_free(k2);
	cs_cluster_tls_pem_free(cpem, clen);
	cs_cluster_tls_pem_free(kpem, klen);
	cs_cluster_tls_pem_free(NULL, 0);
	cs_cluster_cred_free(&n);
	cs_cluster_cred_free(&ca);
}
END_TEST

/* Drive a client and a server SSL over memory BIOs until both finish or one fails. */
static bool handshake_pair(SSL *cli, SSL *srv)
{
	BIO *c_in = BIO_new(BIO_s_mem()), *c_out = BIO_new(BIO_s_mem());
	BIO *s_in = BIO_new(BIO_s_mem()), *s_out = BIO_new(BIO_s_mem());
	SSL_set_bio(cli, c_in, c_out);
	SSL_set_bio(srv, s_in, s_out);
	SSL_set_connect_state(cli);
	SSL_set_accept_state(srv);
	char buf[65536];
	int rc = -1, rs = -1;
	for (int i = 0; i < 20; i++) {
		/* SSL_get_error must be asked before the BIOs are touched again. */
		rc = SSL_do_handshake(cli);
		int ec = rc == 1 ? 0 : SSL_get_error(cli, rc);
		rs = SSL_do_handshake(srv);
		int es = rs == 1 ? 0 : SSL_get_error(srv, rs);
		int n;
		while ((n = BIO_read(c_out, buf, sizeof buf)) > 0)
			BIO_write(s_in, buf, n);
		while ((n = BIO_read(s_out, buf, sizeof buf)) > 0)
			BIO_write(c_in, buf, n);
		if (rc == 1 && rs == 1)
			break;
		if ((ec && ec != SSL_ERROR_WANT_READ) || (es && es != SSL_ERROR_WANT_READ))
			break;
	}
	if (getenv("TLS_DEBUG"))
		ERR_print_errors_fp(stderr);
	ERR_clear_error();
	/* TLS 1.3: the client finished first; the server's verdict on its certificate
	 * counts too. */
	return rc == 1 && rs == 1;
}

/* The join path: the joiner keeps its key, the active node certifies only the public
 * half it was shown, and the CA key never has to leave the active node. */
START_TEST(test_sign_for_public_key)
{
	struct cs_cluster_cred ca = make_ca("signer");
	EVP_PKEY *joiner = NULL;
	ck_assert_int_eq(cs_cluster_tls_gen_key(&joiner), 0);

	/* The joiner sends its public key as PEM; nothing private in it. */
	char *pem = NULL;
	size_t pl = 0;
	ck_assert_int_eq(cs_cluster_tls_pubkey_to_pem(joiner, &pem, &pl), 0);
	ck_assert_ptr_nonnull(strstr(pem, "-----BEGIN PUBLIC KEY-----"));
	ck_assert_ptr_null(strstr(pem, "PRIVATE"));
	EVP_PKEY *pub = NULL;
	ck_assert_int_eq(cs_cluster_tls_pubkey_from_pem(pem, pl, &pub), 0);
	uint8_t a[32], b[32];
	ck_assert_int_eq(cs_cluster_tls_pubkey_sha256(joiner, a), 0);
	ck_assert_int_eq(cs_cluster_tls_pubkey_sha256(pub, b), 0);
	ck_assert_mem_eq(a, b, 32);

	static const char *const ips[] = {"10.0.0.7"};
	X509 *cert = NULL;
	ck_assert_int_eq(cs_cluster_tls_sign_node(&ca, 77, ips, 1, pub, &cert, err, sizeof err), 0);
	ck_assert_int_eq(X509_check_private_key(cert, joiner), 1); /* the joiner's key */
	ck_assert_int_eq(cs_cluster_tls_verify(ca.cert, cert, err, sizeof err), 0);
	ck_assert_int_eq(
	    X509_check_host(cert, "node-77", 7, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, NULL), 1);
	ck_assert_int_eq(X509_check_ip_asc(cert, "10.0.0.7", 0), 1);

	/* Another key gets a different fingerprint. */
	EVP_PKEY *other = NULL;
	ck_assert_int_eq(cs_cluster_tls_gen_key(&other), 0);
	ck_assert_int_eq(cs_cluster_tls_pubkey_sha256(other, b), 0);
	ck_assert(memcmp(a, b, 32) != 0);
	ck_assert_int_eq(X509_check_private_key(cert, other), 0);
	ERR_clear_error();

	/* A CA without its key (what a joined node holds until unsealed) cannot sign. */
	struct cs_cluster_cred ca_cert_only = {.cert = ca.cert};
	X509 *none = NULL;
	ck_assert_int_eq(
	    cs_cluster_tls_sign_node(&ca_cert_only, 77, ips, 1, pub, &none, err, sizeof err),
	    CS_EINVAL);
	ck_assert_ptr_null(none);

	/* Not a public key, or not an EC one: refused. */
	EVP_PKEY *bad = NULL;
	ck_assert_int_eq(cs_cluster_tls_pubkey_from_pem("junk", 4, &bad), CS_EINVAL);
	EVP_PKEY *rsa = EVP_RSA_gen(2048);
	ck_assert_ptr_nonnull(rsa);
	char *rpem = NULL;
	size_t rl = 0;
	ck_assert_int_eq(cs_cluster_tls_pubkey_to_pem(rsa, &rpem, &rl), 0);
	ck_assert_int_eq(cs_cluster_tls_pubkey_from_pem(rpem, rl, &bad), CS_EINVAL);
	ck_assert_ptr_null(bad);

	cs_cluster_tls_pem_free(rpem, rl);
	cs_cluster_tls_pem_free(pem, pl);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(other);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(joiner);
	X509_free(cert);
	cs_cluster_cred_free(&ca);
}
END_TEST

START_TEST(test_ctx_handshake)
{
	struct cs_cluster_cred ca = make_ca("ctx"), rogue = make_ca("rogue");
	struct cs_cluster_cred n1 = make_node(&ca, 1), n2 = make_node(&ca, 2);
	struct cs_cluster_cred r2 = make_node(&rogue, 2);
	SSL_CTX *srv = cs_cluster_tls_server_ctx(ca.cert, n1.cert, n1.key, err, sizeof err);
	SSL_CTX *cli = cs_cluster_tls_client_ctx(ca.cert, n2.cert, n2.key, err, sizeof err);
	SSL_CTX *bad = cs_cluster_tls_client_ctx(ca.cert, r2.cert, r2.key, err, sizeof err);
	ck_assert_ptr_nonnull(srv);
	ck_assert_ptr_nonnull(cli);
	ck_assert_ptr_nonnull(bad);
	ck_assert_int_eq(SSL_CTX_get_min_proto_version(srv), TLS1_2_VERSION);
	ck_assert(SSL_CTX_get_verify_mode(srv) & SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
	ck_assert(SSL_CTX_get_options(srv) & SSL_OP_NO_TICKET);
	ck_assert_int_eq(SSL_CTX_get_session_cache_mode(srv), SSL_SESS_CACHE_OFF);

	/* Mismatched cert/key refused. */
	ck_assert_ptr_null(cs_cluster_tls_server_ctx(ca.cert, n1.cert, n2.key, err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "do not match"));

	unsigned char alpn[32];
	size_t alen = cs_cluster_tls_alpn(CS_ALPN_RAFT, alpn, sizeof alpn);
	ck_assert_uint_eq(alen, 12);

	/* Good pair, with server name and ALPN. */
	SSL *c = SSL_new(cli), *s = SSL_new(srv);
	SSL_set1_host(c, "node-1");
	SSL_set_alpn_protos(c, alpn, (unsigned)alen);
	ck_assert(handshake_pair(c, s));
	const unsigned char *sel;
	unsigned slen;
	SSL_get0_alpn_selected(s, &sel, &slen);
	ck_assert_uint_eq(slen, strlen(CS_ALPN_RAFT));
	ck_assert_int_eq(SSL_version(s), TLS1_3_VERSION);
	SSL_free(c);
	SSL_free(s);

	/* The server is not node-3. */
	c = SSL_new(cli);
	s = SSL_new(srv);
	SSL_set1_host(c, "node-3");
	ck_assert(!handshake_pair(c, s));
	SSL_free(c);
	SSL_free(s);

	/* Client certificate from another CA. */
	c = SSL_new(bad);
	s = SSL_new(srv);
	ck_assert(!handshake_pair(c, s));
	SSL_free(c);
	SSL_free(s);

	/* Unknown ALPN: fatal alert. */
	c = SSL_new(cli);
	s = SSL_new(srv);
	static const unsigned char h2[] = "\x02h2";
	SSL_set_alpn_protos(c, h2, 3);
	ck_assert(!handshake_pair(c, s));
	SSL_free(c);
	SSL_free(s);

	SSL_CTX_free(srv);
	SSL_CTX_free(cli);
	SSL_CTX_free(bad);
	cs_cluster_cred_free(&r2);
	cs_cluster_cred_free(&n2);
	cs_cluster_cred_free(&n1);
	cs_cluster_cred_free(&rogue);
	cs_cluster_cred_free(&ca);
}
END_TEST

static Suite *cluster_tls_suite(void)
{
	Suite *s = suite_create("cluster_tls");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_ca);
	tcase_add_test(tc, test_node_cert);
	tcase_add_test(tc, test_foreign_ca);
	tcase_add_test(tc, test_pem_roundtrip);
	tcase_add_test(tc, test_ctx_handshake);
	tcase_add_test(tc, test_sign_for_public_key);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cluster_tls_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
