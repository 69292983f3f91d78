/*
 * c-ares on libuv (see dns.h). Ownership: a query lives from cs_dns_txt/_addrs until its
 * callback returned (or cs_dns_close); a watched socket lives until its uv_poll_t closed;
 * the resolver lives until its last handle closed after cs_dns_close.
 *
 * c-ares answers from inside ares_process_fd (or at once, from inside ares_query, for an
 * answer it needs no network for). Its callbacks only record the result on the query;
 * the user's callback runs later from dispatch(), outside c-ares, so it may start new
 * queries or close the resolver (ares_destroy from inside a c-ares callback would free
 * the channel under c-ares' feet).
 */
#include "lib/dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/util.h"

struct dns_sock {
	uv_poll_t poll;
	ares_socket_t fd;
	struct cs_dns *d;
	struct dns_sock *next;
};

struct dns_query {
	struct dns_query *next;
	struct cs_dns *d;
	cs_dns_txt_cb txt_cb; /* exactly one of the two is set */
	cs_dns_addrs_cb addrs_cb;
	void *ctx;
	uint16_t port;
	bool done, nodata;
	int rc;
	char err[160];
	char **txt;
	size_t n;
	struct sockaddr_storage *addrs;
};

struct cs_dns {
	uv_loop_t *loop;
	ares_channel ch;
	uv_timer_t timer;
	struct dns_sock *socks;
	struct dns_query *queries;
	int handles; /* open uv handles: the timer and each socket's poll */
	bool closing;
};

static void dns_free(struct cs_dns *d)
{
	free(d);
	ares_library_cleanup();
}

static void handle_closed(uv_handle_t *h)
{
	struct cs_dns *d = h->data;
	if (h->type == UV_POLL)
		free(CS_CONTAINER_OF((uv_poll_t *)h, struct dns_sock, poll));
	if (--d->handles == 0 && d->closing)
		dns_free(d);
}

static void sock_release(struct cs_dns *d, struct dns_sock *s)
{
	for (struct dns_sock **pp = &d->socks; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	uv_poll_stop(&s->poll);
	uv_close((uv_handle_t *)&s->poll, handle_closed);
}

static void query_free(struct dns_query *q)
{
	for (size_t i = 0; q->txt && i < q->n; i++)
		free(q->txt[i]);
	free(q->txt);
	free(q->addrs);
	free(q);
}

static void reschedule(struct cs_dns *d);

/* Run the callbacks of finished queries, one at a time: each may close the resolver. */
static void dispatch(struct cs_dns *d)
{
	for (;;) {
		if (d->closing)
			return;
		struct dns_query **pp = &d->queries;
		while (*pp && !(*pp)->done)
			pp = &(*pp)->next;
		struct dns_query *q = *pp;
		if (!q)
			break;
		*pp = q->next;
		if (q->txt_cb)
			q->txt_cb(q->ctx, q->rc, q->nodata, q->txt, q->n, q->rc ? q->err : NULL);
		else
			q->addrs_cb(q->ctx, q->rc, q->nodata, q->addrs, q->n,
				    q->rc ? q->err : NULL);
		query_free(q);
	}
	reschedule(d);
}

static void timer_cb(uv_timer_t *t)
{
	struct cs_dns *d = t->data;
	ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* timeouts, retries */
	dispatch(d);
}

/* Wake at c-ares' next deadline, or at once if an answer waits for dispatch. */
static void reschedule(struct cs_dns *d)
{
	if (d->closing)
		return;
	for (struct dns_query *q = d->queries; q; q = q->next)
		if (q->done) {
			uv_timer_start(&d->timer, timer_cb, 0, 0);
			return;
		}
	struct timeval tv;
	if (ares_timeout(d->ch, NULL, &tv))
		uv_timer_start(&d->timer, timer_cb,
			       (uint64_t)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000, 0);
	else
		uv_timer_stop(&d->timer);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
	struct dns_sock *s = CS_CONTAINER_OF(h, struct dns_sock, poll);
	struct cs_dns *d = s->d;
	/* An error on the socket: let c-ares read it and find out (it fails the query). */
	ares_socket_t rfd = (status < 0 || (events & UV_READABLE)) ? s->fd : ARES_SOCKET_BAD;
	ares_socket_t wfd = (status >= 0 && (events & UV_WRITABLE)) ? s->fd : ARES_SOCKET_BAD;
	ares_process_fd(d->ch, rfd, wfd);
	dispatch(d);
}

static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct cs_dns *d = data;
	struct dns_sock *s = d->socks;
	while (s && s->fd != fd)
		s = s->next;
	if (!readable && !writable) {
		/* c-ares closes fd right after this: stop watching it first. */
		if (s)
			sock_release(d, s);
		return;
	}
	if (!s) {
		s = calloc(1, sizeof *s);
		if (!s)
			abort();
		if (uv_poll_init_socket(d->loop, &s->poll, fd) != 0) {
			free(s); /* the query on it times out */
			return;
		}
		s->fd = fd;
		s->d = d;
		s->poll.data = d;
		s->next = d->socks;
		d->socks = s;
		d->handles++;
	}
	uv_poll_start(&s->poll, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0),
		      poll_cb);
}

/* "a.b.c.d:port", "[v6]:port" or a bare address (port 53), as c-ares' csv form wants. */
static int parse_server(const char *server, char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port = NULL;
	size_t hl;
	if (server[0] == '[') {
		const char *end = strchr(server, ']');
		if (!end || (end[1] && end[1] != ':'))
			return CS_EINVAL;
		hl = (size_t)(end - server - 1);
		if (hl >= sizeof host)
			return CS_EINVAL;
		memcpy(host, server + 1, hl);
		port = end[1] ? end + 2 : NULL;
	} else {
		const char *colon = strchr(server, ':');
		if (colon && strchr(colon + 1, ':')) { /* a bare IPv6 address */
			colon = NULL;
		}
		hl = colon ? (size_t)(colon - server) : strlen(server);
		if (hl >= sizeof host)
			return CS_EINVAL;
		memcpy(host, server, hl);
		port = colon ? colon + 1 : NULL;
	}
	host[hl] = '\0';
	unsigned char bin[16];
	bool v6 = inet_pton(AF_INET6, host, bin) == 1;
	if (!v6 && inet_pton(AF_INET, host, bin) != 1)
		return CS_EINVAL;
	long p = 53;
	if (port) {
		char *end;
		p = strtol(port, &end, 10);
		if (!*port || *end || p < 1 || p > 65535)
			return CS_EINVAL;
	}
	snprintf(out, outlen, v6 ? "[%s]:%ld" : "%s:%ld", host, p);
	return 0;
}

int cs_dns_open(uv_loop_t *loop, const char *server, unsigned try_timeout_ms, struct cs_dns **out,
		char *err, size_t errlen)
{
	char csv[INET6_ADDRSTRLEN + 16];
	if (server && parse_server(server, csv, sizeof csv) != 0) {
		snprintf(err, errlen, "DNS resolver %s: not an IP address with an optional :port",
			 server);
		return CS_EINVAL;
	}
	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares initialisation failed");
		return CS_EINTERNAL;
	}
	struct cs_dns *d = calloc(1, sizeof *d);
	if (!d)
		abort();
	d->loop = loop;
	struct ares_options o = {0};
	int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_FLAGS | ARES_OPT_TRIES;
	o.sock_state_cb = sock_state_cb;
	o.sock_state_cb_data = d;
	/* Identifiers are fully qualified: no search domains appended to them. */
	o.flags = ARES_FLAG_NOSEARCH;
	o.tries = 2;
	if (try_timeout_ms) {
		mask |= ARES_OPT_TIMEOUTMS;
		o.timeout = (int)try_timeout_ms;
	}
	int rc = ares_init_options(&d->ch, &o, mask);
	if (rc == ARES_SUCCESS && server)
		rc = ares_set_servers_ports_csv(d->ch, csv);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
		if (d->ch)
			ares_destroy(d->ch);
		dns_free(d);
		return CS_EINTERNAL;
	}
	uv_timer_init(loop, &d->timer);
	d->timer.data = d;
	d->handles = 1;
	*out = d;
	return 0;
}

static struct dns_query *query_new(struct cs_dns *d, void *ctx)
{
	struct dns_query *q = calloc(1, sizeof *q);
	if (!q)
		abort();
	q->d = d;
	q->ctx = ctx;
	q->next = d->queries;
	d->queries = q;
	return q;
}

static void query_fail(struct dns_query *q, int status)
{
	q->done = true;
	q->rc = CS_EIO;
	q->nodata = status == ARES_ENODATA || status == ARES_ENOTFOUND;
	snprintf(q->err, sizeof q->err, "%s", ares_strerror(status));
}

static void txt_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_query *q = arg;
	if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED || q->d->closing)
		return; /* cs_dns_close frees q */
	struct ares_txt_ext *txt = NULL;
	if (status == ARES_SUCCESS)
		status = ares_parse_txt_reply_ext(abuf, alen, &txt);
	if (status != ARES_SUCCESS) {
		query_fail(q, status);
		return;
	}
	size_t n = 0;
	for (struct ares_txt_ext *t = txt; t; t = t->next)
		n += t->record_start || t == txt;
	q->txt = calloc(n ? n : 1, sizeof *q->txt);
	if (!q->txt)
		abort();
	/* Join each record's character-strings into one string. */
	struct cs_buf cur = CS_BUF_INIT;
	bool open = false;
	for (struct ares_txt_ext *t = txt; t; t = t->next) {
		if (t->record_start && open) {
			cs_buf_putc(&cur, '\0');
			q->txt[q->n++] = cs_buf_steal(&cur, NULL);
		}
		cs_buf_append(&cur, t->txt, t->length);
		open = true;
	}
	if (open) {
		cs_buf_putc(&cur, '\0');
		q->txt[q->n++] = cs_buf_steal(&cur, NULL);
	}
	cs_buf_free(&cur);
	ares_free_data(txt);
	q->done = true;
	if (q->n == 0)
		query_fail(q, ARES_ENODATA);
}

int cs_dns_txt(struct cs_dns *d, const char *name, cs_dns_txt_cb cb, void *ctx)
{
	if (d->closing)
		return CS_EINTERNAL;
	struct dns_query *q = query_new(d, ctx);
	q->txt_cb = cb;
	ares_query(d->ch, name, 1 /* C_IN */, 16 /* T_TXT */, txt_answer, q);
	reschedule(d);
	return 0;
}

static void addrs_answer(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct dns_query *q = arg;
	if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED || q->d->closing) {
		ares_freeaddrinfo(res);
		return;
	}
	if (status != ARES_SUCCESS) {
		ares_freeaddrinfo(res);
		query_fail(q, status);
		return;
	}
	size_t n = 0;
	for (struct ares_addrinfo_node *a = res ? res->nodes : NULL; a; a = a->ai_next)
		n++;
	q->addrs = calloc(n ? n : 1, sizeof *q->addrs);
	if (!q->addrs)
		abort();
	/* IPv4 first: most hosts answer on it, and the caller tries them in order. */
	for (int pass = 0; pass < 2; pass++)
		for (struct ares_addrinfo_node *a = res ? res->nodes : NULL; a; a = a->ai_next) {
			struct sockaddr_storage *ss = &q->addrs[q->n];
			if (pass == 0 && a->ai_family == AF_INET &&
			    a->ai_addrlen >= sizeof(struct sockaddr_in)) {
				memcpy(ss, a->ai_addr, sizeof(struct sockaddr_in));
				((struct sockaddr_in *)ss)->sin_port = htons(q->port);
				q->n++;
			} else if (pass == 1 && a->ai_family == AF_INET6 &&
				   a->ai_addrlen >= sizeof(struct sockaddr_in6)) {
				memcpy(ss, a->ai_addr, sizeof(struct sockaddr_in6));
				((struct sockaddr_in6 *)ss)->sin6_port = htons(q->port);
				q->n++;
			}
		}
	ares_freeaddrinfo(res);
	q->done = true;
	if (q->n == 0)
		query_fail(q, ARES_ENODATA);
}

int cs_dns_addrs(struct cs_dns *d, const char *name, uint16_t port, cs_dns_addrs_cb cb, void *ctx)
{
	if (d->closing)
		return CS_EINTERNAL;
	struct dns_query *q = query_new(d, ctx);
	q->addrs_cb = cb;
	q->port = port;
	struct ares_addrinfo_hints h = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	ares_getaddrinfo(d->ch, name, NULL, &h, addrs_answer, q);
	reschedule(d);
	return 0;
}

void cs_dns_close(struct cs_dns *d)
{
	if (!d || d->closing)
		return;
	d->closing = true;
	ares_destroy(d->ch); /* its callbacks see closing; it releases its sockets */
	while (d->queries) {
		struct dns_query *q = d->queries;
		d->queries = q->next;
		query_free(q);
	}
	while (d->socks)
		sock_release(d, d->socks);
	uv_close((uv_handle_t *)&d->timer, handle_closed);
}
