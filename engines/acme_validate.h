/*
 * ACME challenge validation (RFC 8555 §8.3 http-01, §8.4 dns-01; RFC 8737 tls-alpn-01,
 * RFC 8738 for IP identifiers), done asynchronously on the libuv loop: nothing here ever
 * blocks the loop thread. What each type checks, its limits and what it may connect to:
 * engines/acme_validate.c's opening comment.
 *
 * cs_acme_check_start: all strings are copied; the caller may free them after it returns.
 * Returns 0 and the callback will run exactly once, later, from a loop callback (never
 * from inside start), or CS_EINVAL (NULL field, unknown type, dns_resolver not "IP[:port]")
 * and it never runs. *out (may be NULL) names the check until its callback ran or it was
 * cancelled: cancelling after the callback is a use after free. The callback may start
 * new checks. Loop thread only.
 */
#ifndef CS_ENGINES_ACME_VALIDATE_H
#define CS_ENGINES_ACME_VALIDATE_H

#include <stdint.h>
#include <uv.h>

/* engines/acme_validate.h */
struct cs_acme_check {
	const char *type;              /* "http-01", "dns-01", "tls-alpn-01" */
	const char *identifier;        /* DNS name or IP literal */
	const char *token;             /* challenge token */
	const char *key_authorization; /* token "." base64url(JWK thumbprint) */
	const char *dns_resolver;      /* "host:port" or NULL for the system's */
	uint16_t http_port, tls_port;  /* 0: 80 / 443 */
	unsigned timeout_ms;           /* 0: 10 s */
};
/* ok: 1 valid; 0 invalid with an ACME error type ("urn:ietf:params:acme:error:connection",
 * "incorrectResponse", "dns", "tls", ...) and a detail text. Called once, on the loop thread. */
typedef void (*cs_acme_check_cb)(void *arg, int ok, const char *error_type, const char *detail);
struct cs_acme_checker;
int cs_acme_check_start(uv_loop_t *loop, const struct cs_acme_check *c, cs_acme_check_cb cb,
			void *arg, struct cs_acme_checker **out);
void cs_acme_check_cancel(struct cs_acme_checker *ch); /* cb is not called after this */

#endif
