/* Unit tests for the PKI engine's pure rules (engines/pki_util.c): Vault's name matching
 * (domains, subdomains, bare, globs, wildcards, localhost, enforce_hostnames), TTL capping
 * against the issuer's expiry, serial formatting and parsing, CRL numbering; and its
 * OpenSSL layer (engines/pki_x509.c): a root and a leaf built and verified, a CRL's
 * number, delta indicator and signature, PEM bundles. */
#include <check.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "engines/pki_internal.h"
#include "lib/err.h"

static const char *const doms[] = {"example.com", "*.glob.test", "localhost.example"};

static struct cs_pki_name_rules rules(void)
{
	return (struct cs_pki_name_rules){
	    .allow_localhost = true,
	    .allow_wildcard_certificates = true,
	    .enforce_hostnames = true,
	    .allowed_domains = doms,
	    .n_allowed_domains = 2,
	};
}

START_TEST(test_names_bare_and_subdomains)
{
	struct cs_pki_name_rules r = rules();
	/* nothing allowed but localhost */
	ck_assert(!cs_pki_name_ok(&r, "example.com"));
	ck_assert(!cs_pki_name_ok(&r, "a.example.com"));
	ck_assert(cs_pki_name_ok(&r, "localhost"));
	ck_assert(cs_pki_name_ok(&r, "localdomain"));
	ck_assert(cs_pki_name_ok(&r, "root@localhost"));
	ck_assert(!cs_pki_name_ok(&r, "a.localhost")); /* needs allow_subdomains */
	r.allow_localhost = false;
	ck_assert(!cs_pki_name_ok(&r, "localhost"));
	r.allow_bare_domains = true;
	ck_assert(cs_pki_name_ok(&r, "example.com"));
	ck_assert(cs_pki_name_ok(&r, "EXAMPLE.com")); /* bare match ignores case */
	ck_assert(cs_pki_name_ok(&r, "user@example.com"));
	ck_assert(!cs_pki_name_ok(&r, "a.example.com"));
	r.allow_bare_domains = false;
	r.allow_subdomains = true;
	ck_assert(!cs_pki_name_ok(&r, "example.com"));
	ck_assert(cs_pki_name_ok(&r, "a.example.com"));
	ck_assert(cs_pki_name_ok(&r, "a.b.example.com"));
	ck_assert(cs_pki_name_ok(&r, "user@mail.example.com"));
	ck_assert(!cs_pki_name_ok(&r, "aexample.com")); /* a label boundary is needed */
	ck_assert(!cs_pki_name_ok(&r, "example.com.evil"));
	ck_assert(!cs_pki_name_ok(&r, "a.EXAMPLE.COM")); /* Vault's suffix test is exact */
	r.allow_localhost = true;
	ck_assert(cs_pki_name_ok(&r, "a.localhost")); /* subdomains of localhost now */
	/* a list with a name that fails is refused at that name */
	const char *names[] = {"a.example.com", "b.other.org", "c.example.com"};
	ck_assert_str_eq(cs_pki_check_names(&r, names, 3), "b.other.org");
	ck_assert_ptr_null(cs_pki_check_names(&r, names, 1));
}
END_TEST

START_TEST(test_names_globs)
{
	struct cs_pki_name_rules r = rules();
	r.allow_localhost = false;
	ck_assert(!cs_pki_name_ok(&r, "a.glob.test"));
	r.allow_glob_domains = true;
	ck_assert(cs_pki_name_ok(&r, "a.glob.test"));
	ck_assert(cs_pki_name_ok(&r, "a.b.glob.test")); /* '*' spans labels, as go-glob */
	ck_assert(!cs_pki_name_ok(&r, "glob.test"));
	ck_assert(!cs_pki_name_ok(&r, "a.glob.test.evil"));
	/* go-glob itself */
	ck_assert(cs_pki_glob("*", "anything"));
	ck_assert(cs_pki_glob("a*c", "abbbc"));
	ck_assert(cs_pki_glob("a*c", "ac"));
	ck_assert(!cs_pki_glob("a*c", "abcd"));
	ck_assert(cs_pki_glob("*.b*.c", "x.by.c"));
	ck_assert(!cs_pki_glob("*.b*.c", "x.y.c"));
	ck_assert(cs_pki_glob("spiffe://x/*", "spiffe://x/svc/a"));
	ck_assert(!cs_pki_glob("abc", "ABC")); /* case-sensitive */
	ck_assert(cs_pki_glob("abc", "abc"));
}
END_TEST

START_TEST(test_names_wildcards_and_hostnames)
{
	struct cs_pki_name_rules r = rules();
	r.allow_subdomains = true;
	ck_assert(cs_pki_name_ok(&r, "*.example.com"));
	ck_assert(cs_pki_name_ok(&r, "*.a.example.com"));
	ck_assert(cs_pki_name_ok(&r, "foo*.example.com")); /* RFC 6125 partial label */
	ck_assert(!cs_pki_name_ok(&r, "*.*.example.com")); /* one wildcard only */
	ck_assert(!cs_pki_name_ok(&r, "a.*.example.com")); /* left-most label only */
	ck_assert(!cs_pki_name_ok(&r, "*@example.com"));   /* no wildcard emails */
	r.allow_wildcard_certificates = false;
	ck_assert(!cs_pki_name_ok(&r, "*.example.com"));
	r.allow_any_name = true;
	ck_assert(!cs_pki_name_ok(&r, "*.example.com")); /* takes precedence over any name */
	r.allow_wildcard_certificates = true;
	ck_assert(cs_pki_name_ok(&r, "anything.org"));
	/* enforce_hostnames still applies with allow_any_name */
	ck_assert(!cs_pki_name_ok(&r, "not a host"));
	ck_assert(!cs_pki_name_ok(&r, "-bad.example.com"));
	ck_assert(!cs_pki_name_ok(&r, "under_score.example.com"));
	r.enforce_hostnames = false;
	ck_assert(cs_pki_name_ok(&r, "not a host"));
	ck_assert(cs_pki_hostname_ok("a.b-c.d"));
	ck_assert(cs_pki_hostname_ok("example.com."));
	ck_assert(cs_pki_hostname_ok("*.example.com"));
	ck_assert(!cs_pki_hostname_ok("a..b"));
	ck_assert(!cs_pki_hostname_ok(""));
	char label[80];
	memset(label, 'a', 64);
	label[64] = 0;
	ck_assert(!cs_pki_hostname_ok(label)); /* labels are at most 63 bytes */
	label[63] = 0;
	ck_assert(cs_pki_hostname_ok(label));
}
END_TEST

START_TEST(test_ttl_capping)
{
	char err[300];
	const char *warn;
	int64_t na;
	struct cs_pki_ttl_in in = {.now = 1000000,
				   .sys_default_ttl = 3600,
				   .sys_max_ttl = 7200,
				   .issuer_not_after = 1000000 + 86400};
	/* mount default */
	ck_assert_int_eq(cs_pki_not_after(&in, &na, &warn, err, sizeof err), 0);
	ck_assert_int_eq(na, 1000000 + 3600);
	ck_assert_ptr_null(warn);
	/* role ttl, capped by the mount's max with a warning */
	in.role_ttl = 10000;
	ck_assert_int_eq(cs_pki_not_after(&in, &na, &warn, err, sizeof err), 0);
	ck_assert_int_eq(na, 1000000 + 7200);
	ck_assert_ptr_nonnull(warn);
	/* the role's max_ttl replaces the mount's; the request's ttl wins over the role's */
	in.role_max_ttl = 20000;
	in.ttl = 15000;
	ck_assert_int_eq(cs_pki_not_after(&in, &na, &warn, err, sizeof err), 0);
	ck_assert_int_eq(na, 1000000 + 15000);
	/* past the issuer: err (default), truncate, permit */
	in.role_max_ttl = 200000;
	in.ttl = 100000;
	ck_assert_int_eq(cs_pki_not_after(&in, &na, &warn, err, sizeof err), CS_EINVAL);
	ck_assert(strstr(err, "beyond the expiration of the CA certificate") != NULL);
	in.behavior = CS_PKI_LEAF_TRUNCATE;
	ck_assert_int_eq(cs_pki_not_after(&in, &na, &warn, err, sizeof err), 0);
	ck_assert_int_eq(na, in.issuer_not_after);
	in.behavior = CS_PKI_LEAF_PERMIT;
	ck_assert_int_eq(cs_pki_not_after(&in, &na, &warn, err, sizeof err), 0);
	ck_assert_int_eq(na, 1000000 + 100000);
	/* an explicit not_after, and both at once */
	in.behavior = CS_PKI_LEAF_ERR;
	in.ttl = 0;
	in.not_after = 1000000 + 500;
	ck_assert_int_eq(cs_pki_not_after(&in, &na, &warn, err, sizeof err), 0);
	ck_assert_int_eq(na, 1000000 + 500);
	in.ttl = 60;
	ck_assert_int_eq(cs_pki_not_after(&in, &na, &warn, err, sizeof err), CS_EINVAL);
	ck_assert(strstr(err, "Either ttl or not_after") != NULL);
	/* truncate refuses a NotAfter already in the past */
	in.ttl = 0;
	in.not_after = 10;
	in.issuer_not_after = 5;
	in.behavior = CS_PKI_LEAF_TRUNCATE;
	ck_assert_int_eq(cs_pki_not_after(&in, &na, &warn, err, sizeof err), CS_EINVAL);
	ck_assert(strstr(err, "in the past") != NULL);
	/* behaviour names */
	enum cs_pki_leaf_behavior b;
	ck_assert_int_eq(cs_pki_leaf_behavior_parse("truncate", &b), 0);
	ck_assert_int_eq(b, CS_PKI_LEAF_TRUNCATE);
	ck_assert_int_eq(cs_pki_leaf_behavior_parse("bogus", &b), CS_EINVAL);
	ck_assert_str_eq(cs_pki_leaf_behavior_name(CS_PKI_LEAF_PERMIT), "permit");
	int64_t t;
	ck_assert_int_eq(cs_pki_parse_rfc3339("2030-01-02T03:04:05Z", &t), 0);
	ck_assert_int_eq(t, 1893553445);
	ck_assert_int_eq(cs_pki_parse_rfc3339("2030-01-02T04:04:05+01:00", &t), 0);
	ck_assert_int_eq(t, 1893553445);
	ck_assert_int_eq(cs_pki_parse_rfc3339("2030-01-02", &t), CS_EINVAL);
}
END_TEST

START_TEST(test_serials)
{
	uint8_t b[20] = {0x00, 0x0a, 0xff, 0x10};
	char out[64];
	cs_pki_serial_format(b + 1, 3, ':', out);
	ck_assert_str_eq(out, "0a:ff:10");
	cs_pki_serial_format(b + 1, 3, '-', out);
	ck_assert_str_eq(out, "0a-ff-10");
	uint8_t p[32];
	ck_assert_int_eq(cs_pki_serial_parse("0a:ff:10", p, sizeof p), 3);
	ck_assert_mem_eq(p, b + 1, 3);
	ck_assert_int_eq(cs_pki_serial_parse("0A-FF-10", p, sizeof p), 3);
	ck_assert_int_eq(cs_pki_serial_parse("0aff10", p, sizeof p), 3);
	/* leading zero bytes go, as big.Int.Bytes() */
	ck_assert_int_eq(cs_pki_serial_parse("00:00:0a:ff:10", p, sizeof p), 3);
	ck_assert_mem_eq(p, b + 1, 3);
	ck_assert_int_eq(cs_pki_serial_parse("a:ff", p, sizeof p), 2); /* one-digit group */
	ck_assert_int_eq(p[0], 0x0a);
	/* refused: mixed separators, junk, empty, trailing separator, too long */
	ck_assert_int_eq(cs_pki_serial_parse("0a:ff-10", p, sizeof p), -1);
	ck_assert_int_eq(cs_pki_serial_parse("zz", p, sizeof p), -1);
	ck_assert_int_eq(cs_pki_serial_parse("", p, sizeof p), -1);
	ck_assert_int_eq(cs_pki_serial_parse("0a:", p, sizeof p), -1);
	ck_assert_int_eq(cs_pki_serial_parse("../x", p, sizeof p), -1);
	ck_assert_int_eq(cs_pki_serial_parse("0102030405", p, 4), -1);
	char key[64];
	ck_assert(cs_pki_serial_key("0A:FF:10", key, sizeof key));
	ck_assert_str_eq(key, "0a-ff-10");
	ck_assert(!cs_pki_serial_key("0a/ff", key, sizeof key));
}
END_TEST

START_TEST(test_crl_numbers)
{
	struct cs_pki_crl_counter c = {0};
	int64_t base = 0;
	ck_assert_int_eq(cs_pki_crl_next_delta(&c, &base), -1); /* no complete CRL yet */
	ck_assert_int_eq(cs_pki_crl_next_complete(&c), 1);
	ck_assert_int_eq(cs_pki_crl_next_delta(&c, &base), 2);
	ck_assert_int_eq(base, 1);
	ck_assert_int_eq(cs_pki_crl_next_delta(&c, &base), 3);
	ck_assert_int_eq(base, 1);
	ck_assert_int_eq(cs_pki_crl_next_complete(&c), 4); /* shared counter: always up */
	ck_assert_int_eq(cs_pki_crl_next_delta(&c, &base), 5);
	ck_assert_int_eq(base, 4);
	/* a counter behind its last complete CRL (restored state) still moves forward */
	struct cs_pki_crl_counter d = {.next = 2, .last_complete = 7};
	ck_assert_int_eq(cs_pki_crl_next_delta(&d, &base), 8);
	ck_assert_int_eq(base, 7);
}
END_TEST

static int64_t crl_int_ext(X509_CRL *c, int nid)
{
	ASN1_INTEGER *n = X509_CRL_get_ext_d2i(c, nid, NULL, NULL);
	int64_t v = -1;
	if (n)
		ASN1_INTEGER_get_int64(&v, n);
	ASN1_INTEGER_free(n);
	return v;
}

START_TEST(test_x509_root_leaf_crl)
{
	char err[256];
	EVP_PKEY *ca = cs_pki_keygen(CS_PKI_KEY_EC, 256);
	EVP_PKEY *leafk = cs_pki_keygen(CS_PKI_KEY_ED25519, 0);
	ck_assert_ptr_nonnull(ca);
	cJSON *src = cJSON_Parse("{\"organization\":[\"Org\"],\"country\":\"FR\"}");
	X509_NAME *rn = cs_pki_subject(src, "Root", NULL);
	uint8_t serial[20] = {0x01, 0x02};
	struct cs_pki_cert_spec s = {.subject = rn,
				     .pubkey = ca,
				     .signer = ca,
				     .serial = serial,
				     .serial_len = 20,
				     .not_before = 1000,
				     .not_after = 4000000000,
				     .is_ca = true,
				     .max_path_len = -1,
				     .key_usage = X509v3_KU_KEY_CERT_SIGN | X509v3_KU_CRL_SIGN};
	X509 *root = cs_pki_cert_build(&s, err, sizeof err);
	ck_assert_ptr_nonnull(root);
	ck_assert_int_eq(X509_check_ca(root), 1);
	ck_assert(cs_pki_cert_issued_by(root, root));
	ck_assert(cs_pki_cert_key_match(root, ca));
	ck_assert_int_eq(cs_pki_cert_not_after(root), 4000000000);
	char sn[80];
	cs_pki_cert_serial(root, ':', sn, sizeof sn);
	ck_assert(strncmp(sn, "01:02:00", 8) == 0);
	/* leaf with SANs of every kind */
	X509_NAME *ln = cs_pki_subject(src, "leaf.example.com", NULL);
	const char *dns[] = {"leaf.example.com"}, *ips[] = {"127.0.0.1", "::1"},
		   *uris[] = {"spiffe://x/y"}, *other[] = {"1.2.3.4;UTF8:abc"};
	int eku[] = {NID_server_auth};
	struct cs_pki_cert_spec l = {.subject = ln,
				     .pubkey = leafk,
				     .issuer = root,
				     .signer = ca,
				     .serial = serial,
				     .serial_len = 3,
				     .not_before = 1000,
				     .not_after = 2000000000,
				     .max_path_len = -1,
				     .dns = dns,
				     .n_dns = 1,
				     .ips = ips,
				     .n_ips = 2,
				     .uris = uris,
				     .n_uris = 1,
				     .other_sans = other,
				     .n_other_sans = 1,
				     .key_usage = X509v3_KU_DIGITAL_SIGNATURE,
				     .ext_key_usage = eku,
				     .n_ext_key_usage = 1};
	X509 *leaf = cs_pki_cert_build(&l, err, sizeof err);
	ck_assert_ptr_nonnull(leaf);
	ck_assert(cs_pki_cert_issued_by(leaf, root));
	ck_assert(!cs_pki_cert_issued_by(root, leaf));
	ck_assert_int_eq(X509_check_host(leaf, "leaf.example.com", 0, 0, NULL), 1);
	ck_assert_int_eq(X509_check_ip_asc(leaf, "::1", 0), 1);
	ck_assert_int_eq(X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE, KU_DIGITAL_SIGNATURE);
	/* a bad IP is refused with Vault's message */
	const char *bad[] = {"300.1.1.1"};
	l.ips = bad;
	l.n_ips = 1;
	ck_assert_ptr_null(cs_pki_cert_build(&l, err, sizeof err));
	ck_assert_str_eq(err, "the value \"300.1.1.1\" is not a valid IP address");

	/* a CRL with two entries, then a delta of it */
	struct cs_pki_revoked rev[2] = {{.serial = {0x0a}, .serial_len = 1, .when = 5000},
					{.serial = {0x01, 0x02}, .serial_len = 2, .when = 6000}};
	X509_CRL *crl = cs_pki_crl_build(root, ca, rev, 2, 7, 0, 10000, 3600);
	ck_assert_ptr_nonnull(crl);
	ck_assert_int_eq(X509_CRL_verify(crl, ca), 1);
	ck_assert_int_eq(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), 2);
	ck_assert_int_eq(crl_int_ext(crl, NID_crl_number), 7);
	ck_assert_int_eq(crl_int_ext(crl, NID_delta_crl), -1);
	X509_CRL *delta = cs_pki_crl_build(root, ca, rev, 1, 8, 7, 10000, 3600);
	ck_assert_int_eq(crl_int_ext(delta, NID_crl_number), 8);
	ck_assert_int_eq(crl_int_ext(delta, NID_delta_crl), 7);
	char *pem = cs_pki_crl_pem(delta);
	ck_assert(strstr(pem, "BEGIN X509 CRL") != NULL);
	free(pem);

	/* PEM bundle: certificate and key come back, junk is refused */
	char *cpem = cs_pki_cert_pem(root);
	char *kpem = cs_pki_key_encode(ca, "pem");
	size_t n = strlen(cpem) + strlen(kpem) + 2;
	char *both = malloc(n);
	snprintf(both, n, "%s\n%s", cpem, kpem);
	struct cs_pki_bundle b;
	ck_assert_int_eq(cs_pki_bundle_parse(both, &b, err, sizeof err), 0);
	ck_assert_uint_eq(b.n_certs, 1);
	ck_assert_uint_eq(b.n_keys, 1);
	ck_assert(cs_pki_cert_key_match(b.certs[0], b.keys[0]));
	cs_pki_bundle_free(&b);
	ck_assert_int_eq(cs_pki_bundle_parse("nothing here", &b, err, sizeof err), CS_EINVAL);
	ck_assert_str_eq(err, "no data found in PEM block");
	free(both);
	free(cpem);
	free(kpem);
	X509_CRL_free(crl);
	X509_CRL_free(delta);
	X509_free(leaf);
	X509_free(root);
	X509_NAME_free(rn);
	X509_NAME_free(ln);
	cJSON_Delete(src);
	EVP_PKEY_free(ca);
	EVP_PKEY_free(leafk);
}
END_TEST

/* A root for the tests below: self-signed CA certificate of `key` named `cn`. */
static X509 *test_root(EVP_PKEY *key, const char *cn, uint8_t first)
{
	char err[256];
	X509_NAME *n = cs_pki_subject(NULL, cn, NULL);
	uint8_t serial[20] = {first, 0x02};
	struct cs_pki_cert_spec s = {.subject = n,
				     .pubkey = key,
				     .signer = key,
				     .serial = serial,
				     .serial_len = 20,
				     .not_before = 1000,
				     .not_after = 4000000000,
				     .is_ca = true,
				     .max_path_len = -1,
				     .key_usage = X509v3_KU_KEY_CERT_SIGN | X509v3_KU_CRL_SIGN};
	X509 *x = cs_pki_cert_build(&s, err, sizeof err);
	X509_NAME_free(n);
	ck_assert_msg(x != NULL, "%s", err);
	return x;
}

/* Leaves get their SubjectPublicKeyInfo from the key's encoded public half (no OpenSSL
 * encode/decode round trip): it must be byte for byte what X509_set_pubkey writes, for
 * every key type a role may ask for, and survive a DER round trip. */
START_TEST(test_leaf_spki_matches_openssl)
{
	EVP_PKEY *ca = cs_pki_keygen(CS_PKI_KEY_EC, 256);
	X509 *root = test_root(ca, "Root", 1);
	struct {
		enum cs_pki_key_type t;
		int bits;
	} kinds[] = {{CS_PKI_KEY_EC, 256},
		     {CS_PKI_KEY_EC, 384},
		     {CS_PKI_KEY_EC, 521},
		     {CS_PKI_KEY_ED25519, 0},
		     {CS_PKI_KEY_RSA, 2048}};
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		EVP_PKEY *k = cs_pki_keygen(kinds[i].t, kinds[i].bits);
		ck_assert_ptr_nonnull(k);
		X509_NAME *n = cs_pki_subject(NULL, "leaf.example.com", NULL);
		uint8_t serial[20] = {0x33};
		char err[256];
		struct cs_pki_cert_spec l = {.subject = n,
					     .pubkey = k,
					     .issuer = root,
					     .signer = ca,
					     .serial = serial,
					     .serial_len = 20,
					     .not_before = 1000,
					     .not_after = 2000000000,
					     .max_path_len = -1};
		X509 *leaf = cs_pki_cert_build(&l, err, sizeof err);
		ck_assert_msg(leaf != NULL, "%s", err);
		/* what X509_set_pubkey would have written */
		X509 *ref = X509_new();
		ck_assert_int_eq(X509_set_pubkey(ref, k), 1);
		unsigned char *a = NULL, *b = NULL;
		int na = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(leaf), &a);
		int nb = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(ref), &b);
		ck_assert_int_gt(na, 0);
		ck_assert_int_eq(na, nb);
		ck_assert_mem_eq(a, b, (size_t)na);
		/* parsed again, the key is the subject's and the signature the issuer's */
		size_t dl;
		uint8_t *der = cs_pki_cert_der(leaf, &dl);
		X509 *back = cs_pki_cert_from_der(der, dl);
		ck_assert_ptr_nonnull(back);
		ck_assert(cs_pki_cert_key_match(back, k));
		ck_assert(cs_pki_cert_issued_by(back, root));
		OPENSSL_free(a);
		OPENSSL_free(b);
		free(der);
		X509_free(back);
		X509_free(ref);
		X509_free(leaf);
		X509_NAME_free(n);
		EVP_PKEY_free(k);
	}
	X509_free(root);
	EVP_PKEY_free(ca);
}
END_TEST

/* root/sign-self-issued: the new root re-issued under the old one keeps its subject, key,
 * serial and validity; its issuer, AKID and signature are the old root's; its own
 * AKID / AIA are replaced. */
START_TEST(test_cert_resign_cross_signs)
{
	EVP_PKEY *oldk = cs_pki_keygen(CS_PKI_KEY_EC, 256);
	EVP_PKEY *newk = cs_pki_keygen(CS_PKI_KEY_RSA, 2048);
	X509 *old = test_root(oldk, "Old root", 1);
	X509 *nw = test_root(newk, "New root", 2);
	const char *aia[] = {"http://ca.example/ca"};
	struct cs_pki_cert_spec urls = {.issuing_certificates = aia, .n_issuing_certificates = 1};
	char err[256];
	X509 *x = cs_pki_cert_resign(nw, old, oldk, &urls, false, err, sizeof err);
	ck_assert_msg(x != NULL, "%s", err);
	ck_assert_int_eq(X509_NAME_cmp(X509_get_subject_name(x), X509_get_subject_name(nw)), 0);
	ck_assert_int_eq(X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(old)), 0);
	ck_assert_int_eq(ASN1_INTEGER_cmp(X509_get0_serialNumber(x), X509_get0_serialNumber(nw)),
			 0);
	ck_assert_int_eq(ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(nw)), 0);
	ck_assert(cs_pki_cert_key_match(x, newk));
	ck_assert_int_eq(X509_verify(x, oldk), 1);
	ck_assert_int_ne(X509_verify(x, newk), 1);
	ck_assert_int_eq(X509_check_ca(x), 1);
	const ASN1_OCTET_STRING *akid = X509_get0_authority_key_id(x);
	ck_assert_ptr_nonnull(akid);
	ck_assert_int_eq(ASN1_STRING_cmp(akid, X509_get0_subject_key_id(old)), 0);
	ck_assert_int_ge(X509_get_ext_by_NID(x, NID_info_access, -1), 0);
	/* exactly one AKID: the old one was dropped */
	int at = X509_get_ext_by_NID(x, NID_authority_key_identifier, -1);
	ck_assert_int_ge(at, 0);
	ck_assert_int_lt(X509_get_ext_by_NID(x, NID_authority_key_identifier, at), 0);
	/* a chain: leaf of the new root verifies up to the old root through x */
	X509_STORE *st = X509_STORE_new();
	X509_STORE_add_cert(st, old);
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509_STORE_CTX_init(ctx, st, x, NULL);
	ck_assert_int_eq(X509_verify_cert(ctx), 1);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	X509_free(x);
	X509_free(nw);
	X509_free(old);
	EVP_PKEY_free(newk);
	EVP_PKEY_free(oldk);
}
END_TEST

/* allowed_uri_sans entries are Vault's globs over the whole URI. */
START_TEST(test_uri_san_globs)
{
	ck_assert(cs_pki_glob("spiffe://cluster.local/ns/*/sa/*",
			      "spiffe://cluster.local/ns/default/sa/web"));
	ck_assert(!cs_pki_glob("spiffe://cluster.local/ns/*/sa/web",
			       "spiffe://cluster.local/ns/default/sa/db"));
	ck_assert(cs_pki_glob("https://*.example.com/*", "https://a.example.com/x/y"));
	ck_assert(!cs_pki_glob("https://*.example.com/*", "http://a.example.com/x"));
	ck_assert(cs_pki_glob("urn:uuid:*", "urn:uuid:0f0e"));
	ck_assert(!cs_pki_glob("URN:uuid:*", "urn:uuid:0f0e")); /* case-sensitive */
	ck_assert(cs_pki_glob("*", ""));
}
END_TEST

START_TEST(test_key_bits)
{
	char err[128];
	int bits = 0;
	ck_assert_int_eq(cs_pki_key_bits_check(CS_PKI_KEY_RSA, &bits, err, sizeof err), 0);
	ck_assert_int_eq(bits, 2048);
	bits = 0;
	ck_assert_int_eq(cs_pki_key_bits_check(CS_PKI_KEY_EC, &bits, err, sizeof err), 0);
	ck_assert_int_eq(bits, 256);
	bits = 1024;
	ck_assert_int_eq(cs_pki_key_bits_check(CS_PKI_KEY_RSA, &bits, err, sizeof err), CS_EINVAL);
	bits = 384;
	ck_assert_int_eq(cs_pki_key_bits_check(CS_PKI_KEY_EC, &bits, err, sizeof err), 0);
	ck_assert_int_eq(cs_pki_key_type_parse("ed25519"), CS_PKI_KEY_ED25519);
	ck_assert_int_eq(cs_pki_key_type_parse("dsa"), -1);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("pki");
	TCase *t = tcase_create("rules");
	tcase_add_test(t, test_names_bare_and_subdomains);
	tcase_add_test(t, test_names_globs);
	tcase_add_test(t, test_names_wildcards_and_hostnames);
	tcase_add_test(t, test_ttl_capping);
	tcase_add_test(t, test_serials);
	tcase_add_test(t, test_crl_numbers);
	tcase_add_test(t, test_key_bits);
	tcase_add_test(t, test_uri_san_globs);
	suite_add_tcase(s, t);
	TCase *x = tcase_create("x509");
	tcase_add_test(x, test_x509_root_leaf_crl);
	tcase_add_test(x, test_leaf_spki_matches_openssl);
	tcase_add_test(x, test_cert_resign_cross_signs);
	suite_add_tcase(s, x);
	return s;
}

int main(void)
{
	SRunner *r = srunner_create(suite());
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
