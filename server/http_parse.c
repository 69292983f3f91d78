/*
 * The HTTP listener's parsing (see http_internal.h and the overview in http.c): the
 * http-parser callbacks that copy the target, headers and body into the connection's
 * cs_http_req under the header and body limits, and the URL and query decoding.
 */
#include "server/http.h"
#include "server/http_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "raft/cluster.h"
#include "server/spool.h"

static const char continue_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Decode into out (room for len bytes). Returns the decoded length, or -1 for a bad
 * escape or an encoded NUL (the result is used as a C string: "a%00b" would silently
 * become "a"). */
static long decode_into(char *out, const char *s, size_t len, bool form)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		if (ch == '%') {
			if (i + 2 >= len)
				return -1;
			int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -1;
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (ch == '+' && form) {
			out[o++] = ' ';
		} else {
			out[o++] = ch;
		}
	}
	return (long)o;
}

char *cs_url_decode(const char *s, size_t len, bool form)
{
	char *out = malloc(len + 1);
	if (!out)
		abort();
	long n = decode_into(out, s, len, form);
	if (n < 0) {
		free(out);
		return NULL;
	}
	out[n] = '\0';
	return out;
}

bool cs_query_next(const char **cursor, char **name, char **value)
{
	const char *p = *cursor;
	*name = *value = NULL;
	while (p && *p) {
		const char *seg = p;
		const char *amp = strchr(seg, '&');
		size_t seglen = amp ? (size_t)(amp - seg) : strlen(seg);
		p = amp ? amp + 1 : seg + seglen;
		if (seglen == 0)
			continue;
		const char *eq = memchr(seg, '=', seglen);
		size_t nlen = eq ? (size_t)(eq - seg) : seglen;
		char *n = cs_url_decode(seg, nlen, true);
		char *v = eq ? cs_url_decode(eq + 1, seglen - nlen - 1, true) : strdup("");
		if (!n || !v) {
			/* Like Go's url.ParseQuery: a pair that does not decode is dropped. */
			free(n);
			free(v);
			continue;
		}
		*cursor = p;
		*name = n;
		*value = v;
		return true;
	}
	*cursor = p;
	return false;
}

const char *cs_http_header_get(const struct cs_http_req *req, const char *name)
{
	for (size_t i = 0; i < req->n_headers; i++)
		if (strcasecmp(req->headers[i].name, name) == 0)
			return req->headers[i].value;
	return NULL;
}

/*
 * Request and response bytes carry tokens and secrets: buffers are wiped as they are
 * consumed, not only when freed (cs_buf_consume moves the rest down and leaves the old
 * tail behind; resetting len leaves everything).
 */

/*
 * Whether the first line is a well-formed request line with a method token http-parser
 * may not know ("FROB /v1/x HTTP/1.1"): such a request is answered 405, like Vault,
 * rather than 400. Only looks at a line that has fully arrived.
 */
bool cs_http_request_line_ok(const char *p, size_t n)
{
	const char *eol = memchr(p, '\n', n < 8192 ? n : 8192);
	if (!eol)
		return false;
	size_t i = 0, len = (size_t)(eol - p);
	while (i < len && p[i] >= 'A' && p[i] <= 'Z')
		i++;
	if (i == 0 || i + 1 >= len || p[i] != ' ' || p[i + 1] != '/')
		return false;
	const char *sp = memchr(p + i + 1, ' ', len - i - 1);
	return sp && (size_t)(eol - sp) >= 9 && memcmp(sp + 1, "HTTP/1.", 7) == 0;
}

/* ---------------------------------------------------------------- parser callbacks */

static int count_header_bytes(struct cs_http_conn *c, size_t len)
{
	c->hdr_bytes += len;
	if (c->hdr_bytes > MAX_HEADER_BYTES) {
		c->err_status = 431;
		return -1;
	}
	return 0;
}

static int on_message_begin(http_parser *p)
{
	struct cs_http_conn *c = p->data;
	if (!c->req)
		c->req = cs_http_req_new();
	struct http_req *r = c->req;
	cs_http_req_reset_extras(r); /* e.g. the spool file of a request rejected midway */
	r->pub.conn = c;
	r->pub.tls = c->ssl != NULL;
	memcpy(r->pub.remote_addr, c->remote_addr, sizeof r->pub.remote_addr);
	r->n = 0;
	c->hdr_bytes = 0;
	c->early = false;
	c->body_err = 0;
	c->req_start = uv_now(c->l->loop);
	c->hstate = HS_URL;
	c->in_headers = true;
	c->in_body = false;
	c->msg_done = false;
	c->err_status = 0;
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct cs_http_conn *c = p->data;
	if (count_header_bytes(c, len))
		return -1;
	cs_buf_append(&c->req->strs, at, len);
	return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct cs_http_conn *c = p->data;
	struct http_req *r = c->req;
	if (c->hstate == HS_DONE)
		return 0; /* trailers after a chunked body: ignored */
	if (count_header_bytes(c, len))
		return -1;
	if (c->hstate != HS_FIELD) {
		if (r->n == MAX_HEADERS) {
			c->err_status = 431;
			return -1;
		}
		cs_buf_putc(&r->strs, '\0'); /* ends the url or the previous value */
		if (r->n == r->cap) {
			size_t cap = r->cap ? r->cap * 2 : 16;
			struct hdr_off *o = realloc(r->offs, cap * sizeof *o);
			struct cs_http_header *h = realloc(r->hdrs, cap * sizeof *h);
			if (o)
				r->offs = o;
			if (h)
				r->hdrs = h;
			if (!o || !h)
				abort();
			r->cap = cap;
		}
		r->offs[r->n].name = r->strs.len;
		r->offs[r->n].value = SIZE_MAX;
		r->n++;
		c->hstate = HS_FIELD;
	}
	cs_buf_append(&r->strs, at, len);
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct cs_http_conn *c = p->data;
	struct http_req *r = c->req;
	if (c->hstate == HS_DONE)
		return 0;
	if (count_header_bytes(c, len))
		return -1;
	if (c->hstate != HS_VALUE) {
		cs_buf_putc(&r->strs, '\0'); /* ends the name */
		r->offs[r->n - 1].value = r->strs.len;
		c->hstate = HS_VALUE;
	}
	cs_buf_append(&r->strs, at, len);
	return 0;
}

/* Split the request target into path (decoded into strs) and query (copied). Returns
 * false when the target cannot be used. Offsets are returned, not pointers: strs grows. */
static bool split_target(struct http_req *r, bool connect, size_t *path_off, size_t *query_off)
{
	const char *url = r->strs.data; /* offset 0, NUL-terminated */
	size_t ulen = strlen(url);
	size_t ps = 0, pl = 0, qs = 0, ql = 0;
	bool has_query = false;
	if (url[0] == '/') {
		size_t end = strcspn(url, "?#");
		ps = 0;
		pl = end;
		if (url[end] == '?') {
			has_query = true;
			qs = end + 1;
			ql = strcspn(url + qs, "#");
		}
	} else if (strcmp(url, "*") == 0) {
		pl = 1;
	} else {
		struct http_parser_url u;
		http_parser_url_init(&u);
		if (http_parser_parse_url(url, ulen, connect, &u))
			return false;
		if (u.field_set & (1 << UF_PATH)) {
			ps = u.field_data[UF_PATH].off;
			pl = u.field_data[UF_PATH].len;
		}
		if (u.field_set & (1 << UF_QUERY)) {
			has_query = true;
			qs = u.field_data[UF_QUERY].off;
			ql = u.field_data[UF_QUERY].len;
		}
	}
	cs_buf_reserve(&r->strs, pl + ql + 4);
	url = r->strs.data;
	*path_off = r->strs.len;
	if (pl == 0) {
		r->strs.data[r->strs.len++] = '/';
	} else {
		long n = decode_into(r->strs.data + r->strs.len, url + ps, pl, false);
		if (n < 0)
			return false;
		r->strs.len += (size_t)n;
	}
	r->strs.data[r->strs.len++] = '\0';
	*query_off = SIZE_MAX;
	if (has_query) {
		*query_off = r->strs.len;
		memcpy(r->strs.data + r->strs.len, url + qs, ql);
		r->strs.len += ql;
		r->strs.data[r->strs.len++] = '\0';
	}
	r->strs.data[r->strs.len] = '\0';
	return true;
}

/*
 * Who the request comes from. On an adopted connection the peer is a standby that proved
 * its identity with a cluster certificate and relays the original client's address in
 * X-Custos-Forwarded-For; anywhere else that header is the client's own claim and is
 * ignored (it would let anyone pick the address audit logs and rate limits see).
 */
static void set_origin(struct cs_http_conn *c, struct http_req *r)
{
	r->pub.forwarded = c->adopted;
	if (!c->adopted)
		return;
	const char *ff = cs_http_header_get(&r->pub, "X-Custos-Forwarded-For");
	if (ff && *ff)
		snprintf(r->pub.remote_addr, sizeof r->pub.remote_addr, "%s", ff);
}

static int on_headers_complete(http_parser *p)
{
	struct cs_http_conn *c = p->data;
	struct http_req *r = c->req;
	if (c->closing)
		return -1;
	cs_buf_putc(&r->strs, '\0'); /* ends the url or the last value */
	c->hstate = HS_DONE;
	c->in_headers = false;

	size_t path_off, query_off;
	if (!split_target(r, p->method == HTTP_CONNECT, &path_off, &query_off)) {
		c->err_status = 400;
		return -1;
	}
	/* Every append is done: pointers into strs are stable from here. */
	char *base = r->strs.data;
	r->pub.url = base;
	r->pub.path = base + path_off;
	r->pub.query = query_off == SIZE_MAX ? NULL : base + query_off;
	for (size_t i = 0; i < r->n; i++) {
		r->hdrs[i].name = base + r->offs[i].name;
		if (r->offs[i].value == SIZE_MAX) {
			/* "Name:" with an empty value: point at the name's own NUL. */
			r->hdrs[i].value = base + r->offs[i].name + strlen(base + r->offs[i].name);
		} else {
			char *v = base + r->offs[i].value;
			size_t vl = strlen(v);
			while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
				v[--vl] = '\0';
			r->hdrs[i].value = v;
		}
	}
	r->pub.headers = r->hdrs;
	r->pub.n_headers = r->n;

	const char *m = c->is_list && p->method == HTTP_LOCK
			    ? "LIST"
			    : http_method_str((enum http_method)p->method);
	snprintf(r->pub.method, sizeof r->pub.method, "%s", m);
	r->head = p->method == HTTP_HEAD;
	r->http10 = p->http_major == 1 && p->http_minor == 0;
	r->keep_alive = http_should_keep_alive(p) != 0;
	set_origin(c, r);

	bool has_len = (p->flags & F_CONTENTLENGTH) != 0;
	bool chunked = (p->flags & F_CHUNKED) != 0;
	bool spooled = cs_http_spool.want && cs_http_spool.want(r->pub.method, r->pub.path);
	uint64_t limit = spooled ? cs_http_spool.max : c->l->max_body;
	if (has_len && p->content_length > limit) {
		c->err_status = 413;
		return -1;
	}
	if (spooled && cs_http_spool.admit) {
		/* Who may upload is decided now, before a byte of the body is read: a refused
		 * client gets its answer and the connection closes (lingering briefly, so the
		 * answer is not lost to a reset while the client still sends). */
		char *body = NULL;
		size_t blen = 0;
		int status = cs_http_spool.admit(&r->pub, cs_http_spool.ctx, &body, &blen);
		if (c->closing) {
			free(body);
			return -1;
		}
		if (status) {
			free(c->err_body);
			c->err_body = body;
			c->err_status = status;
			return -1;
		}
		free(body);
		r->gated = true;
	}
	bool has_body = chunked || (has_len && p->content_length > 0);
	if (!has_body)
		r->pub.body_stream = false;
	if (r->pub.body_stream) {
		/* Passed through: the handler runs now (cs_http_process_input sees the pause) and
		 * the body is parsed as its consumer asks (cs_http_body_start). */
		r->spool_max = cs_http_spool.max;
		r->body_open = true;
		r->pub.body_len = has_len ? p->content_length : 0;
		c->early = true;
		http_parser_pause(p, 1);
	}
	if (spooled && has_body && !r->pub.body_stream) {
		r->spool_max = cs_http_spool.max;
		int e = cs_spool_open(c->l->loop, cs_http_spool.dir, cs_http_spool.reserve_percent,
				      has_len ? p->content_length : 0, cs_http_spool_wake, c,
				      &r->spool);
		if (e) {
			c->spool_errno = e;
			c->err_status = e == ENOSPC ? 507 : 500;
			return -1;
		}
	}
	if ((chunked || (has_len && p->content_length > 0)) && p->http_major == 1 &&
	    p->http_minor >= 1) {
		const char *expect = cs_http_header_get(&r->pub, "Expect");
		if (expect && strcasecmp(expect, "100-continue") == 0)
			cs_http_send_plain(c, continue_100, sizeof continue_100 - 1);
	}
	if (has_len && p->content_length > 0 && !r->spool && !r->pub.body_stream)
		cs_buf_reserve(&r->pub.body, p->content_length < BODY_PREALLOC_MAX
						 ? (size_t)p->content_length
						 : BODY_PREALLOC_MAX);
	c->in_body = true;
	return 0;
}

/* A spooled body goes straight to its file: memory stays bounded by one read. */
static int spool_body(struct cs_http_conn *c, const char *at, size_t len)
{
	struct http_req *r = c->req;
	if (len > r->spool_max - r->pub.body_len) {
		c->err_status = 413;
		return -1;
	}
	int e = cs_spool_write(r->spool, at, len);
	if (e) {
		c->spool_errno = e;
		c->err_status = e == ENOSPC ? 507 : 500;
		return -1;
	}
	r->pub.body_len += len;
	return 0;
}

/* A streamed body goes to its consumer, which may pause us from within the call. */
static int stream_body(struct cs_http_conn *c, http_parser *p, const char *at, size_t len)
{
	struct http_req *r = c->req;
	if (len > r->spool_max - r->body_seen) {
		c->err_status = 413;
		return -1;
	}
	r->body_seen += len;
	if (r->body_data)
		r->body_data(r->body_ctx, at, len);
	if (c->closing)
		return -1;
	if (r->body_paused)
		http_parser_pause(p, 1); /* the bytes of this call are consumed */
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct cs_http_conn *c = p->data;
	struct cs_buf *b = &c->req->pub.body;
	if (c->closing)
		return -1;
	if (c->req->body_open)
		return stream_body(c, p, at, len);
	if (c->req->spool)
		return spool_body(c, at, len);
	if (len > c->l->max_body - b->len) {
		c->err_status = 413;
		return -1;
	}
	cs_buf_append(b, at, len);
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct cs_http_conn *c = p->data;
	c->in_body = false;
	c->msg_done = true;
	/* Stop right after this request: pipelined bytes wait until it is answered. */
	http_parser_pause(p, 1);
	return 0;
}

const http_parser_settings cs_http_parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};
