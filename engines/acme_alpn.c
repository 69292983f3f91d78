/*
 * tls-alpn-01 (RFC 8737, RFC 8738 for IP identifiers): a TLS handshake to
 * identifier:443 with SNI = the identifier (for an IP: its reverse-mapping name) and the
 * single ALPN protocol "acme-tls/1", over a uv_tcp_t with OpenSSL on memory BIOs, so the
 * loop never waits on the socket. No certificate chain is verified: the certificate is
 * self-signed by design and cs_acme_alpn_check_cert checks what RFC 8737 §3 requires.
 *
 * Happy path: connect (addresses in turn) → ClientHello → ... → handshake done → the
 * negotiated protocol is acme-tls/1, one certificate, its check passes → valid; the
 * connection is closed without sending data (RFC 8737 §4).
 * Failures: no address connects (connection); the peer closes or the handshake fails,
 * or another protocol (or none) was negotiated (tls); the certificate does not pass
 * (incorrectResponse); the checker's deadline bounds all of it.
 */
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engines/acme_validate_internal.h"
#include "lib/err.h"
#include "lib/util.h"

#define ACME_TLS_ALPN       "acme-tls/1"
#define ACME_IDENTIFIER_OID "1.3.6.1.5.5.7.1.31"

struct cs_acme_alpn {
	uv_tcp_t tcp;
	uv_connect_t connect;
	struct cs_acme_checker *ch;
	SSL_CTX *ctx;
	SSL *ssl;
	BIO *in, *out; /* network → OpenSSL, OpenSSL → network */
	struct sockaddr_storage *addrs;
	size_t n, next;
	bool tcp_open; /* tcp initialised, its close callback not yet run */
	bool dead;     /* the checker is tearing down: free on the close */
	char last_error[160];
};

struct alpn_write {
	uv_write_t req;
	char data[];
};

static void alpn_free(struct cs_acme_alpn *a)
{
	SSL_free(a->ssl); /* frees its BIOs */
	SSL_CTX_free(a->ctx);
	free(a->addrs);
	free(a);
}

static void connect_next(struct cs_acme_alpn *a);

/* One address's socket closed: the next address, or the end. */
static void tcp_closed(uv_handle_t *h)
{
	struct cs_acme_alpn *a = h->data;
	struct cs_acme_checker *ch = a->ch;
	a->tcp_open = false;
	if (a->dead) {
		alpn_free(a);
		cs_acme_handle_closed(ch);
		return;
	}
	cs_acme_handle_closed(ch); /* not the last: the checker's timer is open */
	if (a->next < a->n)
		connect_next(a);
	else
		cs_acme_finish(ch, 0, CS_ACME_ERR("connection"), "tls-alpn-01: %s port %u: %s",
			       ch->identifier, ch->tls_port ? ch->tls_port : 443, a->last_error);
}

void cs_acme_alpn_close(struct cs_acme_checker *ch)
{
	struct cs_acme_alpn *a = ch->alpn;
	if (!a)
		return;
	ch->alpn = NULL;
	a->dead = true;
	if (!a->tcp_open)
		alpn_free(a);
	else if (!uv_is_closing((uv_handle_t *)&a->tcp))
		uv_close((uv_handle_t *)&a->tcp, tcp_closed);
	/* else: a close is under way; tcp_closed sees dead and frees a. */
}

/* This address failed before the handshake began: close it, then the next one. */
static void try_next(struct cs_acme_alpn *a, const char *why)
{
	snprintf(a->last_error, sizeof a->last_error, "%s", why);
	if (a->ssl) { /* the handshake had begun: the host answered, no second try */
		cs_acme_finish(a->ch, 0, CS_ACME_ERR("tls"), "tls-alpn-01: %s: %s",
			       a->ch->identifier, why);
		return;
	}
	uv_close((uv_handle_t *)&a->tcp, tcp_closed);
}

static void write_done(uv_write_t *w, int status)
{
	free(w); /* the connection's fate is decided by reads and the handshake */
}

/* Send whatever OpenSSL wrote into the out BIO. */
static int flush(struct cs_acme_alpn *a)
{
	int pending;
	while ((pending = BIO_pending(a->out)) > 0) {
		struct alpn_write *w = malloc(sizeof *w + (size_t)pending);
		if (!w)
			abort();
		int got = BIO_read(a->out, w->data, pending);
		if (got <= 0) {
			free(w);
			return -1;
		}
		uv_buf_t b = uv_buf_init(w->data, (unsigned)got);
		if (uv_write(&w->req, (uv_stream_t *)&a->tcp, &b, 1, write_done) != 0) {
			free(w);
			return -1;
		}
	}
	return 0;
}

/* RFC 8738 §6: an IP identifier's SNI is its reverse-mapping name. */
static void reverse_name(const struct sockaddr_storage *ss, char *out, size_t len)
{
	if (ss->ss_family == AF_INET) {
		const uint8_t *b = (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr;
		snprintf(out, len, "%u.%u.%u.%u.in-addr.arpa", b[3], b[2], b[1], b[0]);
		return;
	}
	const uint8_t *b = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (int i = 15; i >= 0 && o + 4 < len; i--) {
		out[o++] = hex[b[i] & 15];
		out[o++] = '.';
		out[o++] = hex[b[i] >> 4];
		out[o++] = '.';
	}
	snprintf(out + o, len - o, "ip6.arpa");
}

static void verify_peer(struct cs_acme_alpn *a)
{
	struct cs_acme_checker *ch = a->ch;
	const unsigned char *proto = NULL;
	unsigned plen = 0;
	SSL_get0_alpn_selected(a->ssl, &proto, &plen);
	if (plen != strlen(ACME_TLS_ALPN) || memcmp(proto, ACME_TLS_ALPN, plen) != 0) {
		cs_acme_finish(ch, 0, CS_ACME_ERR("tls"),
			       "tls-alpn-01: %s: the server did not negotiate acme-tls/1",
			       ch->identifier);
		return;
	}
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(a->ssl);
	X509 *cert = SSL_get0_peer_certificate(a->ssl);
	if (!cert || (chain && sk_X509_num(chain) > 1)) {
		cs_acme_finish(ch, 0, CS_ACME_ERR("incorrectResponse"),
			       "tls-alpn-01: %s: expected exactly one certificate", ch->identifier);
		return;
	}
	char detail[256];
	if (cs_acme_alpn_check_cert(cert, ch->identifier, ch->digest, detail, sizeof detail) != 0)
		cs_acme_finish(ch, 0, CS_ACME_ERR("incorrectResponse"), "tls-alpn-01: %s: %s",
			       ch->identifier, detail);
	else
		cs_acme_finish(ch, 1, NULL, NULL);
}

static void handshake(struct cs_acme_alpn *a)
{
	ERR_clear_error();
	int r = SSL_do_handshake(a->ssl);
	int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(a->ssl, r);
	if (flush(a) != 0) {
		try_next(a, "write failed");
		return;
	}
	if (r == 1) {
		verify_peer(a);
	} else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
		char err[160] = "handshake failed";
		unsigned long code = ERR_peek_last_error();
		if (code)
			ERR_error_string_n(code, err, sizeof err);
		ERR_clear_error();
		cs_acme_finish(a->ch, 0, CS_ACME_ERR("tls"), "tls-alpn-01: %s: %s",
			       a->ch->identifier, err);
	}
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	buf->base = malloc(suggested);
	if (!buf->base)
		abort();
	buf->len = suggested;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct cs_acme_alpn *a = s->data;
	if (nread > 0 && !a->dead) {
		BIO_write(a->in, buf->base, (int)nread);
		free(buf->base);
		handshake(a);
		return;
	}
	free(buf->base);
	if (nread < 0 && !a->dead)
		cs_acme_finish(a->ch, 0, CS_ACME_ERR("tls"),
			       "tls-alpn-01: %s: connection closed during the handshake (%s)",
			       a->ch->identifier, uv_strerror((int)nread));
}

static int tls_begin(struct cs_acme_alpn *a)
{
	struct cs_acme_checker *ch = a->ch;
	a->ssl = SSL_new(a->ctx);
	a->in = BIO_new(BIO_s_mem());
	a->out = BIO_new(BIO_s_mem());
	if (!a->ssl || !a->in || !a->out) {
		BIO_free(a->in);
		BIO_free(a->out);
		a->in = a->out = NULL;
		return -1;
	}
	SSL_set_bio(a->ssl, a->in, a->out);
	SSL_set_connect_state(a->ssl);
	char sni[256];
	if (ch->ip)
		reverse_name(&ch->ipaddr, sni, sizeof sni);
	else
		snprintf(sni, sizeof sni, "%s", ch->identifier);
	SSL_set_tlsext_host_name(a->ssl, sni);
	return 0;
}

static void connected(uv_connect_t *req, int status)
{
	struct cs_acme_alpn *a = req->data;
	if (a->dead) /* torn down meanwhile (status is UV_ECANCELED) */
		return;
	if (status < 0) {
		try_next(a, uv_strerror(status));
		return;
	}
	if (tls_begin(a) != 0) {
		cs_acme_finish(a->ch, 0, CS_ACME_ERR("serverInternal"),
			       "tls-alpn-01: TLS setup failed");
		return;
	}
	uv_read_start((uv_stream_t *)&a->tcp, alloc_cb, read_cb);
	handshake(a);
}

static void connect_next(struct cs_acme_alpn *a)
{
	struct cs_acme_checker *ch = a->ch;
	uv_tcp_init(ch->loop, &a->tcp);
	a->tcp.data = a;
	a->tcp_open = true;
	ch->handles++;
	a->connect.data = a;
	int rc = uv_tcp_connect(&a->connect, &a->tcp, (const struct sockaddr *)&a->addrs[a->next++],
				connected);
	if (rc)
		try_next(a, uv_strerror(rc));
}

void cs_acme_alpn_start(struct cs_acme_checker *ch, const struct sockaddr_storage *addrs, size_t n)
{
	struct cs_acme_alpn *a = calloc(1, sizeof *a);
	if (!a)
		abort();
	a->ch = ch;
	a->addrs = calloc(n ? n : 1, sizeof *a->addrs);
	if (!a->addrs)
		abort();
	memcpy(a->addrs, addrs, n * sizeof *addrs);
	a->n = n;
	uint16_t port = ch->tls_port ? ch->tls_port : 443;
	for (size_t i = 0; i < n; i++) {
		if (a->addrs[i].ss_family == AF_INET6)
			((struct sockaddr_in6 *)&a->addrs[i])->sin6_port = htons(port);
		else
			((struct sockaddr_in *)&a->addrs[i])->sin_port = htons(port);
	}
	ch->alpn = a;
	static const unsigned char protos[] = "\x0a" ACME_TLS_ALPN;
	a->ctx = SSL_CTX_new(TLS_client_method());
	if (!a->ctx || n == 0 || !SSL_CTX_set_min_proto_version(a->ctx, TLS1_2_VERSION) ||
	    SSL_CTX_set_alpn_protos(a->ctx, protos, sizeof protos - 1) != 0) {
		cs_acme_finish(ch, 0, CS_ACME_ERR("serverInternal"),
			       "tls-alpn-01: TLS setup failed");
		return;
	}
	/* No verification by OpenSSL (see the file comment), no session to resume: every
	 * validation is a fresh handshake. */
	SSL_CTX_set_verify(a->ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(a->ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(a->ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
	connect_next(a);
}

/* ---- the certificate (untrusted bytes: OpenSSL parses, we only compare) ---- */

static int fail(char *detail, size_t len, const char *why)
{
	snprintf(detail, len, "%s", why);
	return CS_EINVAL;
}

int cs_acme_alpn_check_cert(X509 *x, const char *identifier, const uint8_t digest[32], char *detail,
			    size_t len)
{
	/* Self-signed: the issuer is the subject and the signature verifies with its own key. */
	EVP_PKEY *pub = X509_get0_pubkey(x);
	if (X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)) != 0 || !pub ||
	    X509_verify(x, pub) != 1) {
		ERR_clear_error();
		return fail(detail, len, "the certificate is not self-signed");
	}
	/* Exactly one SAN, equal to the identifier (RFC 8737 §3, RFC 8738 §6). */
	int crit = -1;
	GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
	if (!sans || sk_GENERAL_NAME_num(sans) != 1) {
		GENERAL_NAMES_free(sans);
		ERR_clear_error();
		return fail(detail, len, "the certificate must have exactly one subjectAltName");
	}
	const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, 0);
	unsigned char ip[16];
	int iplen = inet_pton(AF_INET, identifier, ip) == 1    ? 4
		    : inet_pton(AF_INET6, identifier, ip) == 1 ? 16
							       : 0;
	bool match = false;
	if (iplen && gn->type == GEN_IPADD)
		match = ASN1_STRING_length(gn->d.iPAddress) == iplen &&
			memcmp(ASN1_STRING_get0_data(gn->d.iPAddress), ip, (size_t)iplen) == 0;
	else if (!iplen && gn->type == GEN_DNS) {
		/* Case-insensitive (RFC 8737 §3); an embedded NUL never matches. */
		int n = ASN1_STRING_length(gn->d.dNSName);
		match = n >= 0 && (size_t)n == strlen(identifier) &&
			strncasecmp((const char *)ASN1_STRING_get0_data(gn->d.dNSName), identifier,
				    (size_t)n) == 0;
	}
	GENERAL_NAMES_free(sans);
	if (!match)
		return fail(detail, len, "the subjectAltName is not the identifier");

	/* Exactly one acmeIdentifier, critical, whose value is the DER OCTET STRING of the
	 * SHA-256 of the key authorization. */
	ASN1_OBJECT *oid = OBJ_txt2obj(ACME_IDENTIFIER_OID, 1);
	if (!oid)
		return fail(detail, len, "internal error");
	int idx = X509_get_ext_by_OBJ(x, oid, -1);
	int again = idx >= 0 ? X509_get_ext_by_OBJ(x, oid, idx) : -1;
	int rc = 0;
	if (idx < 0)
		rc = fail(detail, len, "the certificate has no acmeIdentifier extension");
	else if (again >= 0)
		rc =
		    fail(detail, len, "the certificate has more than one acmeIdentifier extension");
	X509_EXTENSION *ext = rc ? NULL : X509_get_ext(x, idx);
	if (ext && !X509_EXTENSION_get_critical(ext))
		rc = fail(detail, len, "the acmeIdentifier extension is not critical");
	if (ext && !rc) {
		const ASN1_OCTET_STRING *val = X509_EXTENSION_get_data(ext);
		const unsigned char *p = ASN1_STRING_get0_data(val);
		long vlen = ASN1_STRING_length(val);
		ASN1_OCTET_STRING *inner = d2i_ASN1_OCTET_STRING(NULL, &p, vlen);
		if (!inner || p != ASN1_STRING_get0_data(val) + vlen)
			rc = fail(detail, len,
				  "the acmeIdentifier extension is not one OCTET STRING");
		else if (ASN1_STRING_length(inner) != 32 ||
			 !cs_ct_equal(ASN1_STRING_get0_data(inner), 32, digest, 32))
			rc = fail(detail, len,
				  "the acmeIdentifier is not the SHA-256 of the key authorization");
		ASN1_OCTET_STRING_free(inner);
	}
	/* Any other critical extension must be one OpenSSL understands. */
	for (int i = 0; !rc && i < X509_get_ext_count(x); i++) {
		X509_EXTENSION *e = X509_get_ext(x, i);
		if (i != idx && X509_EXTENSION_get_critical(e) && !X509_supported_extension(e))
			rc = fail(detail, len, "the certificate has an unknown critical extension");
	}
	ASN1_OBJECT_free(oid);
	ERR_clear_error();
	return rc;
}
