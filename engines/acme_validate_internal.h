/*
 * The parts of one ACME challenge check (engines/acme_validate.c: the checker, http-01,
 * dns-01; engines/acme_alpn.c: tls-alpn-01), and the certificate check the unit tests and
 * the fuzz target call directly.
 */
#ifndef CS_ENGINES_ACME_VALIDATE_INTERNAL_H
#define CS_ENGINES_ACME_VALIDATE_INTERNAL_H

#include <netinet/in.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <sys/socket.h>

#include <uv.h>

#include "lib/curlm.h"
#include "lib/dns.h"

#define CS_ACME_ERR(x) "urn:ietf:params:acme:error:" x

/* http-01 limits, as OpenBao's validator: a key authorization is ~87 bytes. */
#define CS_ACME_HTTP_MAX_BODY     512
#define CS_ACME_HTTP_MAX_REDIRECT 10
#define CS_ACME_HTTP_MAX_URL      2000
#define CS_ACME_DEFAULT_TIMEOUT   10000

enum cs_acme_kind { CS_ACME_HTTP01, CS_ACME_DNS01, CS_ACME_TLSALPN01 };

struct cs_acme_alpn;

struct cs_acme_checker {
	uv_loop_t *loop;
	enum cs_acme_kind kind;
	char *identifier, *token, *key_authz, *resolver;
	uint16_t http_port, tls_port;
	unsigned timeout_ms;
	uint64_t deadline; /* uv_now() + timeout_ms */
	void (*cb)(void *arg, int ok, const char *error_type, const char *detail); /* as given */
	void *arg;
	bool done; /* the callback ran or cancel was called: tearing down */
	bool ip;   /* the identifier is an IP literal (RFC 8738) */
	struct sockaddr_storage ipaddr;
	uint8_t digest[32]; /* SHA-256(key_authorization) */

	uv_timer_t timer; /* the deadline, or 0 ms for a result known at start */
	const char *early_type;
	char early_detail[256];

	struct cs_dns *dns; /* lookups (all types) */
	struct cs_curlm http;
	bool http_open;
	int redirects;
	char url[2048];     /* http-01: the URL being fetched */
	char hop_host[256]; /* ... and its host, port and scheme while it is being resolved */
	uint16_t hop_port;
	bool hop_https;
	struct cs_acme_alpn *alpn;

	int handles; /* uv handles still to close before the checker is freed */
};

/* Report once and tear down (the callback runs last, after everything is closing). */
void cs_acme_finish(struct cs_acme_checker *ch, int ok, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A teardown step closed one handle. */
void cs_acme_handle_closed(struct cs_acme_checker *ch);

/* tls-alpn-01 (acme_alpn.c): connect to each address in turn until one answers, then the
 * handshake and the certificate check; the result goes through cs_acme_finish. */
void cs_acme_alpn_start(struct cs_acme_checker *ch, const struct sockaddr_storage *addrs, size_t n);
/* Close the connection (if any); counted in ch->handles. */
void cs_acme_alpn_close(struct cs_acme_checker *ch);

/* RFC 8737 §3 / RFC 8738 §6 on the peer's certificate: self-signed, exactly one SAN equal
 * to the identifier (a dNSName, or an iPAddress for an IP identifier), exactly one
 * critical acmeIdentifier extension holding the DER OCTET STRING of `digest`, no other
 * critical extension OpenSSL does not know. 0, or CS_EINVAL with detail. */
int cs_acme_alpn_check_cert(X509 *x, const char *identifier, const uint8_t digest[32], char *detail,
			    size_t len);

#endif
