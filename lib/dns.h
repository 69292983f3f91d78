/*
 * DNS on the libuv loop through c-ares: TXT lookups (ACME dns-01) and name → addresses
 * (ACME http-01 and tls-alpn-01), against the system's resolver (/etc/resolv.conf,
 * /etc/hosts) or one server given as "host:port".
 *
 * c-ares tells us which sockets to watch (ARES_OPT_SOCK_STATE_CB → one uv_poll_t each);
 * after every event we ask it for its next deadline (ares_timeout → one uv_timer_t).
 * Nothing blocks: c-ares sockets are non-blocking and it never calls the system resolver.
 *
 * Happy path: cs_dns_txt / cs_dns_addrs → the callback runs once, later, on the loop
 * (never from inside the call that started the query, never from inside c-ares).
 * Failures: the callback runs with rc != 0 and err (c-ares' message: "Domain name not
 * found", "Timeout while contacting DNS servers", ...); nodata is set when the name
 * exists but has no record of the type (ARES_ENODATA) or does not exist (ARES_ENOTFOUND).
 * cs_dns_close: no callback runs after it; the memory goes in the last handle's close.
 * Loop thread only.
 */
#ifndef CS_LIB_DNS_H
#define CS_LIB_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

struct cs_dns;

/* server: "a.b.c.d:port", "[v6]:port" or NULL for the system's configuration.
 * try_timeout_ms bounds one try against one server (0: c-ares' default); the caller
 * bounds the whole lookup with its own timer. 0, or CS_EINVAL (a bad server, err says)
 * or CS_EINTERNAL. */
int cs_dns_open(uv_loop_t *loop, const char *server, unsigned try_timeout_ms, struct cs_dns **out,
		char *err, size_t errlen);

/* TXT records: one string per record (its character-strings concatenated, RFC 7208
 * §3.3 style, as Go's LookupTXT does); txt and its strings live during the call. */
typedef void (*cs_dns_txt_cb)(void *ctx, int rc, bool nodata, char **txt, size_t n,
			      const char *err);
int cs_dns_txt(struct cs_dns *d, const char *name, cs_dns_txt_cb cb, void *ctx);

/* A and AAAA records as socket addresses with `port` set (IPv4 first, then IPv6). */
typedef void (*cs_dns_addrs_cb)(void *ctx, int rc, bool nodata,
				const struct sockaddr_storage *addrs, size_t n, const char *err);
int cs_dns_addrs(struct cs_dns *d, const char *name, uint16_t port, cs_dns_addrs_cb cb, void *ctx);

/* Abandon every query (no callback runs) and free d once its handles closed. */
void cs_dns_close(struct cs_dns *d);

#endif
