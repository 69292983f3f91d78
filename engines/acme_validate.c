/*
 * ACME challenge validation on the loop (acme_validate.h): the checker, http-01 and
 * dns-01; tls-alpn-01's connection is in acme_alpn.c.
 *
 * Happy path: cs_acme_check_start copies the request and arms the deadline timer;
 * - http-01: the name is resolved by c-ares (lib/dns.c, the configured dns_resolver or the
 *   system's), then GET http://<identifier>:<port>/.well-known/acme-challenge/<token>
 *   through libcurl's multi interface on the loop (lib/curlm.c) with the addresses pinned
 *   (CURLOPT_RESOLVE: curl resolves nothing); each redirect is checked here and fetched
 *   the same way; a 200 whose body, trailing whitespace trimmed, is the key
 *   authorization is valid;
 * - dns-01: TXT _acme-challenge.<identifier without "*.">; valid when any record is
 *   base64url(SHA-256(key authorization));
 * - tls-alpn-01: the name resolved as for http-01, then acme_alpn.c.
 * The callback runs once, from a loop callback (never from inside start).
 *
 * Failures, each an ACME error type: the deadline (connection, or dns for dns-01); a
 * lookup that fails (dns); connect, reset, HTTP-level failure (connection); a redirect
 * that breaks the rules below, a status other than 200, a body over 512 bytes or not
 * the key authorization, TXT records that do not match (incorrectResponse); handshake
 * failures (tls); an identifier a challenge type cannot validate (rejectedIdentifier).
 *
 * Redirects (RFC 8555 §8.3 says "SHOULD follow"; the limits are OpenBao's and Let's
 * Encrypt's): at most 10, URLs up to 2000 bytes, http or https only, no userinfo, port 80
 * or 443 (or the http_port/tls_port the caller set, which only tests do); https is not
 * verified (the name being validated has no certificate yet).
 *
 * What it connects to: whatever the identifier or a redirect resolves to, loopback and
 * private addresses included — ACME needs that for internal names, and Vault does the
 * same. An account can therefore make custos send GETs with no custom headers to any
 * address on ports 80/443 (and the TLS handshakes of tls-alpn-01 to port 443): the
 * answer is never shown beyond valid/invalid and a fixed detail text.
 *
 * Teardown (cs_acme_finish or cancel): the timer, the resolver, curl and the TLS
 * connection close; the checker is freed in the last close callback.
 */
#include "engines/acme_validate.h"

#include "engines/acme_validate_internal.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/err.h"
#include "lib/util.h"

static void checker_free(struct cs_acme_checker *ch)
{
	if (ch->key_authz)
		cs_zero(ch->key_authz, strlen(ch->key_authz));
	free(ch->identifier);
	free(ch->token);
	free(ch->key_authz);
	free(ch->resolver);
	free(ch);
}

void cs_acme_handle_closed(struct cs_acme_checker *ch)
{
	if (--ch->handles == 0)
		checker_free(ch);
}

static void timer_closed(uv_handle_t *h)
{
	cs_acme_handle_closed(h->data);
}

static void http_closed(struct cs_curlm *m)
{
	cs_acme_handle_closed(CS_CONTAINER_OF(m, struct cs_acme_checker, http));
}

static void teardown(struct cs_acme_checker *ch)
{
	ch->done = true;
	ch->handles++; /* held until every close below was started */
	cs_dns_close(ch->dns);
	ch->dns = NULL;
	if (ch->http_open) {
		ch->http_open = false;
		ch->handles++;
		cs_curlm_close(&ch->http, http_closed); /* drops the request in flight */
	}
	cs_acme_alpn_close(ch);
	uv_timer_stop(&ch->timer); /* counted in handles since start */
	uv_close((uv_handle_t *)&ch->timer, timer_closed);
	cs_acme_handle_closed(ch);
}

void cs_acme_finish(struct cs_acme_checker *ch, int ok, const char *type, const char *fmt, ...)
{
	if (ch->done)
		return;
	char detail[512] = "";
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(detail, sizeof detail, fmt, ap);
		va_end(ap);
	}
	void (*cb)(void *, int, const char *, const char *) = ch->cb;
	void *arg = ch->arg;
	teardown(ch); /* ch stays allocated until its handles closed, after cb returns */
	cb(arg, ok, ok ? NULL : type, ok ? NULL : detail);
}

void cs_acme_check_cancel(struct cs_acme_checker *ch)
{
	if (ch && !ch->done)
		teardown(ch);
}

static const char *lookup_error(struct cs_acme_checker *ch)
{
	return ch->kind == CS_ACME_DNS01 ? CS_ACME_ERR("dns") : CS_ACME_ERR("connection");
}

static void deadline_cb(uv_timer_t *t)
{
	struct cs_acme_checker *ch = t->data;
	if (ch->early_type)
		cs_acme_finish(ch, 0, ch->early_type, "%s", ch->early_detail);
	else
		cs_acme_finish(ch, 0, lookup_error(ch), "%s: %s: no answer within %u ms",
			       ch->kind == CS_ACME_HTTP01  ? "http-01"
			       : ch->kind == CS_ACME_DNS01 ? "dns-01"
							   : "tls-alpn-01",
			       ch->identifier, ch->timeout_ms);
}

/* A result known before any I/O: reported from the timer, so never from inside start. */
static void finish_soon(struct cs_acme_checker *ch, const char *type, const char *detail)
{
	ch->early_type = type;
	snprintf(ch->early_detail, sizeof ch->early_detail, "%s", detail);
	uv_timer_start(&ch->timer, deadline_cb, 0, 0);
}

static unsigned remaining_ms(struct cs_acme_checker *ch)
{
	uint64_t now = uv_now(ch->loop);
	return now >= ch->deadline ? 1 : (unsigned)(ch->deadline - now);
}

/* A DNS name as ACME identifiers are (LDH labels, RFC 1123); a leading "*." only where
 * allowed. Refusing anything else keeps names out of URLs and curl options unescaped. */
static bool valid_dns_name(const char *s, bool wildcard_ok)
{
	if (wildcard_ok && strncmp(s, "*.", 2) == 0)
		s += 2;
	size_t n = strlen(s), label = 0;
	if (n == 0 || n > 253 || s[n - 1] == '.' || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		bool alnum =
		    (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && !(c == '-' && label > 0))
			return false;
		if (++label > 63)
			return false;
	}
	return s[n - 1] != '-';
}

static bool parse_ip(const char *s, struct sockaddr_storage *ss, uint16_t port)
{
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, s, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		return true;
	}
	if (inet_pton(AF_INET6, s, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		return true;
	}
	return false;
}

static void addr_text(const struct sockaddr_storage *ss, char *out, size_t len)
{
	if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out,
			  (socklen_t)len);
	else
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out,
			  (socklen_t)len);
}

/* ---- http-01 ---- */

static void http_fetch(struct cs_acme_checker *ch, const char *host, uint16_t port, bool https,
		       const struct sockaddr_storage *addrs, size_t n);

static void http_resolved(void *ctx, int rc, bool nodata, const struct sockaddr_storage *addrs,
			  size_t n, const char *err)
{
	struct cs_acme_checker *ch = ctx;
	if (rc)
		cs_acme_finish(ch, 0, CS_ACME_ERR("dns"), "http-01: resolving %s: %s", ch->hop_host,
			       err);
	else
		http_fetch(ch, ch->hop_host, ch->hop_port, ch->hop_https, addrs, n);
}

/* Resolve host unless it is an IP literal (bracketed for IPv6, as URLs have it), then
 * fetch ch->url. */
static void http_go(struct cs_acme_checker *ch, const char *host, uint16_t port, bool https)
{
	struct sockaddr_storage ip;
	char bare[256];
	size_t hl = strlen(host);
	if (host[0] == '[' && hl > 2 && hl < sizeof bare + 2) {
		memcpy(bare, host + 1, hl - 2);
		bare[hl - 2] = '\0';
	} else {
		snprintf(bare, sizeof bare, "%s", host);
	}
	if (parse_ip(bare, &ip, port)) {
		http_fetch(ch, host, port, https, NULL, 0);
		return;
	}
	if (!valid_dns_name(host, false)) {
		cs_acme_finish(ch, 0, CS_ACME_ERR("incorrectResponse"),
			       "http-01: redirect to an invalid host name");
		return;
	}
	/* One lookup at a time: its target lives in the checker (nothing to free if the
	 * resolver is closed before it answers). */
	snprintf(ch->hop_host, sizeof ch->hop_host, "%s", host);
	ch->hop_port = port;
	ch->hop_https = https;
	if (cs_dns_addrs(ch->dns, host, port, http_resolved, ch) != 0)
		cs_acme_finish(ch, 0, CS_ACME_ERR("serverInternal"), "http-01: resolver closed");
}

static bool redirect_port_ok(struct cs_acme_checker *ch, long port)
{
	return port == 80 || port == 443 || (ch->http_port && port == ch->http_port) ||
	       (ch->tls_port && port == ch->tls_port);
}

/* A 3xx: check its target against the rules in the file comment, then fetch it. */
static void http_redirect(struct cs_acme_checker *ch, const char *location)
{
	if (++ch->redirects > CS_ACME_HTTP_MAX_REDIRECT) {
		cs_acme_finish(ch, 0, CS_ACME_ERR("connection"), "http-01: more than %d redirects",
			       CS_ACME_HTTP_MAX_REDIRECT);
		return;
	}
	if (strlen(location) > CS_ACME_HTTP_MAX_URL) {
		cs_acme_finish(ch, 0, CS_ACME_ERR("incorrectResponse"),
			       "http-01: redirect URL longer than %d bytes", CS_ACME_HTTP_MAX_URL);
		return;
	}
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *user = NULL, *full = NULL;
	const char *why = NULL;
	if (!u || curl_url_set(u, CURLUPART_URL, location, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		why = "an unparsable URL";
	else if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)
		why = "a scheme other than http or https";
	else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK)
		why = "a URL with user information";
	else if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
		 !redirect_port_ok(ch, strtol(port, NULL, 10)))
		why = "a port other than 80 or 443";
	else if (curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK ||
		 strlen(full) >= sizeof ch->url)
		why = "an unusable URL";
	if (why) {
		cs_acme_finish(ch, 0, CS_ACME_ERR("incorrectResponse"), "http-01: redirect to %s",
			       why);
	} else {
		snprintf(ch->url, sizeof ch->url, "%s", full);
		bool https = strcasecmp(scheme, "https") == 0;
		char h[256];
		snprintf(h, sizeof h, "%s", host);
		uint16_t p = (uint16_t)strtol(port, NULL, 10);
		curl_free(scheme), curl_free(host), curl_free(port), curl_free(user),
		    curl_free(full);
		curl_url_cleanup(u);
		http_go(ch, h, p, https);
		return;
	}
	curl_free(scheme), curl_free(host), curl_free(port), curl_free(user), curl_free(full);
	curl_url_cleanup(u);
}

static void http_done(void *ctx, int rc, const struct cs_curlm_resp *resp, const char *err)
{
	struct cs_acme_checker *ch = ctx;
	if (rc && resp->too_big) {
		cs_acme_finish(ch, 0, CS_ACME_ERR("incorrectResponse"),
			       "http-01: %s: response body over %d bytes", ch->url,
			       CS_ACME_HTTP_MAX_BODY);
		return;
	}
	if (rc) {
		cs_acme_finish(ch, 0, CS_ACME_ERR("connection"), "http-01: %s", err);
		return;
	}
	if (resp->status >= 300 && resp->status < 400 && resp->location) {
		http_redirect(ch, resp->location);
		return;
	}
	if (resp->status != 200) {
		cs_acme_finish(ch, 0, CS_ACME_ERR("incorrectResponse"),
			       "http-01: %s: status %ld, expected 200", ch->url, resp->status);
		return;
	}
	/* RFC 8555 §8.3: "The server SHOULD ignore whitespace characters at the end of the
	 * body." */
	const char *b = resp->body->data ? resp->body->data : "";
	size_t n = resp->body->len;
	while (n > 0 && (b[n - 1] == ' ' || b[n - 1] == '\t' || b[n - 1] == '\r' ||
			 b[n - 1] == '\n' || b[n - 1] == '\v' || b[n - 1] == '\f'))
		n--;
	if (n == strlen(ch->key_authz) && memcmp(b, ch->key_authz, n) == 0)
		cs_acme_finish(ch, 1, NULL, NULL);
	else
		cs_acme_finish(ch, 0, CS_ACME_ERR("incorrectResponse"),
			       "http-01: %s: the body is not the key authorization", ch->url);
}

/* GET ch->url, connecting only to addrs (none: host is an IP literal). */
static void http_fetch(struct cs_acme_checker *ch, const char *host, uint16_t port, bool https,
		       const struct sockaddr_storage *addrs, size_t n)
{
	struct cs_buf resolve = CS_BUF_INIT;
	if (n) {
		cs_buf_printf(&resolve, "%s:%u:", host, port);
		for (size_t i = 0; i < n; i++) {
			char a[INET6_ADDRSTRLEN];
			addr_text(&addrs[i], a, sizeof a);
			cs_buf_printf(&resolve, addrs[i].ss_family == AF_INET6 ? "%s[%s]" : "%s%s",
				      i ? "," : "", a);
		}
	}
	unsigned left = remaining_ms(ch);
	struct cs_curlm_get_opts o = {
	    .url = ch->url,
	    .resolve = n ? resolve.data : NULL,
	    .protocols = "http,https",
	    .max_body = CS_ACME_HTTP_MAX_BODY,
	    .timeout_ms = left,
	    .connect_timeout_ms = left,
	    .insecure = https, /* see the file comment */
	};
	int rc = cs_curlm_get(&ch->http, &o, http_done, ch, NULL);
	cs_buf_free(&resolve);
	if (rc)
		cs_acme_finish(ch, 0, CS_ACME_ERR("serverInternal"), "http-01: curl refused %s",
			       ch->url);
}

static void http_start(struct cs_acme_checker *ch)
{
	char err[256];
	if (cs_curlm_init(&ch->http, ch->loop, err, sizeof err) != 0) {
		finish_soon(ch, CS_ACME_ERR("serverInternal"), err);
		return;
	}
	ch->http_open = true;
	uint16_t port = ch->http_port ? ch->http_port : 80;
	char host[INET6_ADDRSTRLEN + 2];
	if (ch->ipaddr.ss_family == AF_INET6)
		snprintf(host, sizeof host, "[%s]", ch->identifier);
	else
		snprintf(host, sizeof host, "%s", ch->identifier);
	snprintf(ch->url, sizeof ch->url, "http://%s:%u/.well-known/acme-challenge/%s", host, port,
		 ch->token);
	http_go(ch, host, port, false);
}

/* ---- dns-01 ---- */

static void txt_answer(void *ctx, int rc, bool nodata, char **txt, size_t n, const char *err)
{
	struct cs_acme_checker *ch = ctx;
	const char *name = ch->identifier + (strncmp(ch->identifier, "*.", 2) == 0 ? 2 : 0);
	if (rc) {
		cs_acme_finish(ch, 0, CS_ACME_ERR("dns"), "dns-01: TXT _acme-challenge.%s: %s",
			       name, nodata ? "no TXT record" : err);
		return;
	}
	char *want = cs_b64url_encode(ch->digest, sizeof ch->digest);
	bool ok = false;
	for (size_t i = 0; i < n && !ok; i++)
		ok = strcmp(txt[i], want) == 0;
	free(want);
	if (ok)
		cs_acme_finish(ch, 1, NULL, NULL);
	else
		cs_acme_finish(ch, 0, CS_ACME_ERR("incorrectResponse"),
			       "dns-01: none of the %zu TXT records at _acme-challenge.%s matches",
			       n, name);
}

static void dns_start(struct cs_acme_checker *ch)
{
	/* RFC 8555 §8.4: a wildcard's record is at the base name. */
	const char *name = ch->identifier + (strncmp(ch->identifier, "*.", 2) == 0 ? 2 : 0);
	char q[300];
	snprintf(q, sizeof q, "_acme-challenge.%s", name);
	cs_dns_txt(ch->dns, q, txt_answer, ch);
}

/* ---- tls-alpn-01 ---- */

static void alpn_resolved(void *ctx, int rc, bool nodata, const struct sockaddr_storage *addrs,
			  size_t n, const char *err)
{
	struct cs_acme_checker *ch = ctx;
	if (rc)
		cs_acme_finish(ch, 0, CS_ACME_ERR("dns"), "tls-alpn-01: resolving %s: %s",
			       ch->identifier, err);
	else
		cs_acme_alpn_start(ch, addrs, n);
}

static void alpn_start(struct cs_acme_checker *ch)
{
	if (ch->ip)
		cs_acme_alpn_start(ch, &ch->ipaddr, 1);
	else
		cs_dns_addrs(ch->dns, ch->identifier, ch->tls_port ? ch->tls_port : 443,
			     alpn_resolved, ch);
}

/* ---- start ---- */

static char *dup_or_null(const char *s)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		abort();
	return d;
}

static bool token_ok(const char *t)
{
	/* RFC 8555 §8.1: base64url characters only (it goes into a URL path). */
	if (!*t || strlen(t) > 256)
		return false;
	for (; *t; t++)
		if (!((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') ||
		      (*t >= '0' && *t <= '9') || *t == '-' || *t == '_'))
			return false;
	return true;
}

int cs_acme_check_start(uv_loop_t *loop, const struct cs_acme_check *c, cs_acme_check_cb cb,
			void *arg, struct cs_acme_checker **out)
{
	if (!loop || !c || !cb || !c->type || !c->identifier || !c->token || !c->key_authorization)
		return CS_EINVAL;
	enum cs_acme_kind kind;
	if (strcmp(c->type, "http-01") == 0)
		kind = CS_ACME_HTTP01;
	else if (strcmp(c->type, "dns-01") == 0)
		kind = CS_ACME_DNS01;
	else if (strcmp(c->type, "tls-alpn-01") == 0)
		kind = CS_ACME_TLSALPN01;
	else
		return CS_EINVAL;
	struct cs_acme_checker *ch = calloc(1, sizeof *ch);
	if (!ch)
		abort();
	ch->loop = loop;
	ch->kind = kind;
	ch->identifier = dup_or_null(c->identifier);
	ch->token = dup_or_null(c->token);
	ch->key_authz = dup_or_null(c->key_authorization);
	ch->resolver = dup_or_null(c->dns_resolver && *c->dns_resolver ? c->dns_resolver : NULL);
	ch->http_port = c->http_port;
	ch->tls_port = c->tls_port;
	ch->timeout_ms = c->timeout_ms ? c->timeout_ms : CS_ACME_DEFAULT_TIMEOUT;
	ch->cb = cb;
	ch->arg = arg;
	SHA256((const unsigned char *)ch->key_authz, strlen(ch->key_authz), ch->digest);
	ch->ip = parse_ip(ch->identifier, &ch->ipaddr,
			  kind == CS_ACME_HTTP01 ? 0
			  : c->tls_port          ? c->tls_port
						 : 443);

	/* A bad dns_resolver is the caller's configuration error: refused here, no callback. */
	char err[256];
	unsigned try_ms = ch->timeout_ms / 3 > 200 ? ch->timeout_ms / 3 : 200;
	if (cs_dns_open(loop, ch->resolver, try_ms, &ch->dns, err, sizeof err) != 0) {
		checker_free(ch);
		return CS_EINVAL;
	}
	uv_timer_init(loop, &ch->timer);
	ch->timer.data = ch;
	ch->handles = 1; /* the timer; the rest count themselves as they open */
	ch->deadline = uv_now(loop) + ch->timeout_ms;
	uv_timer_start(&ch->timer, deadline_cb, ch->timeout_ms, 0);
	if (out)
		*out = ch;

	bool wildcard = strncmp(ch->identifier, "*.", 2) == 0;
	if (!token_ok(ch->token))
		finish_soon(ch, CS_ACME_ERR("malformed"), "challenge token is not base64url");
	else if (!ch->ip && !valid_dns_name(ch->identifier, kind == CS_ACME_DNS01))
		finish_soon(ch, CS_ACME_ERR("rejectedIdentifier"),
			    "identifier is neither a DNS name nor an IP address");
	else if (ch->ip && kind == CS_ACME_DNS01)
		finish_soon(ch, CS_ACME_ERR("rejectedIdentifier"),
			    "dns-01 cannot validate an IP address (RFC 8738 §7)");
	else if (wildcard && kind != CS_ACME_DNS01)
		finish_soon(ch, CS_ACME_ERR("rejectedIdentifier"),
			    "only dns-01 validates a wildcard identifier");
	else if (kind == CS_ACME_HTTP01)
		http_start(ch);
	else if (kind == CS_ACME_DNS01)
		dns_start(ch);
	else
		alpn_start(ch);
	return 0;
}
