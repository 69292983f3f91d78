/* The shared Check fixtures (see fixtures.h). */
#include "tests/unit/fixtures.h"

#include <arpa/inet.h>
#include <check.h>
#include <ftw.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/util.h"

void cs_fx_tmpdir(char *dir, size_t n, const char *tag)
{
	ck_assert_int_lt(snprintf(dir, n, "/tmp/cs-test-%s-XXXXXX", tag), (int)n);
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

void cs_fx_rm_rf(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void cs_fx_tmpdir_done(const char *dir)
{
	if (!getenv("KEEP_DIR"))
		cs_fx_rm_rf(dir);
}

bool cs_fx_run_until(uv_loop_t *loop, const bool *flag, int ms)
{
	uint64_t deadline = cs_mono_ms() + (uint64_t)ms;
	while (!*flag && cs_mono_ms() < deadline)
		uv_run(loop, UV_RUN_ONCE);
	return *flag;
}

bool cs_fx_run_until_polled(uv_loop_t *loop, const atomic_bool *flag, int ms)
{
	uint64_t deadline = cs_mono_ms() + (uint64_t)ms;
	while (!atomic_load(flag) && cs_mono_ms() < deadline) {
		uv_run(loop, UV_RUN_NOWAIT);
		if (!atomic_load(flag))
			usleep(200);
	}
	return atomic_load(flag);
}

int cs_fx_propose(void *ctx, const void *data, size_t len, void *token)
{
	struct cs_fx_storage *fx = ctx;
	if (fx->refuse)
		return fx->refuse;
	if (fx->n_props == fx->cap) {
		fx->cap = fx->cap ? fx->cap * 2 : 64;
		fx->props = realloc(fx->props, fx->cap * sizeof *fx->props);
		ck_assert_ptr_nonnull(fx->props);
	}
	struct cs_fx_prop *p = &fx->props[fx->n_props++];
	p->data = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(p->data);
	memcpy(p->data, data, len);
	p->len = len;
	p->token = token;
	p->done = false;
	if (fx->on_propose)
		fx->on_propose(fx);
	return 0;
}

void cs_fx_storage_open(struct cs_fx_storage *fx, const char *tag, size_t map_size)
{
	memset(fx, 0, sizeof *fx);
	cs_fx_tmpdir(fx->dir, sizeof fx->dir, tag);
	ck_assert_int_eq(cs_storage_open(&fx->st, fx->dir, map_size), 0);
	cs_storage_set_proposer(&fx->st, cs_fx_propose, fx);
}

void cs_fx_storage_close(struct cs_fx_storage *fx)
{
	cs_storage_close(&fx->st);
	for (size_t i = 0; i < fx->n_props; i++)
		free(fx->props[i].data);
	free(fx->props);
	fx->props = NULL;
	fx->n_props = fx->cap = fx->next_apply = 0;
	cs_fx_tmpdir_done(fx->dir);
}

void cs_fx_apply(struct cs_fx_storage *fx, size_t i)
{
	ck_assert_uint_lt(i, fx->n_props);
	struct cs_fx_prop *p = &fx->props[i];
	ck_assert(!p->done);
	p->done = true;
	ck_assert_int_eq(cs_store_apply(&fx->st.store, ++fx->raft_index, p->data, p->len), 0);
	cs_storage_batch_done(&fx->st, p->token, 0);
}

void cs_fx_apply_next(struct cs_fx_storage *fx)
{
	ck_assert_uint_lt(fx->next_apply, fx->n_props);
	cs_fx_apply(fx, fx->next_apply++);
}

void cs_fx_apply_all(struct cs_fx_storage *fx)
{
	while (fx->next_apply < fx->n_props)
		cs_fx_apply_next(fx);
}

void cs_fx_fail_next(struct cs_fx_storage *fx, int status)
{
	ck_assert_uint_lt(fx->next_apply, fx->n_props);
	struct cs_fx_prop *p = &fx->props[fx->next_apply++];
	p->done = true;
	cs_storage_batch_done(&fx->st, p->token, status);
}

void cs_fx_fail_all(struct cs_fx_storage *fx, int status)
{
	while (fx->next_apply < fx->n_props)
		cs_fx_fail_next(fx, status);
}

/* ---------------------------------------------------------------- HTTP responses */

static int rp_field(http_parser *p, const char *at, size_t len)
{
	struct cs_fx_resp *r = p->data;
	if (r->in_value)
		cs_buf_putc(&r->hdrs, '\n');
	r->in_value = false;
	cs_buf_append(&r->hdrs, at, len);
	return 0;
}

static int rp_value(http_parser *p, const char *at, size_t len)
{
	struct cs_fx_resp *r = p->data;
	if (!r->in_value)
		cs_buf_puts(&r->hdrs, ": ");
	r->in_value = true;
	cs_buf_append(&r->hdrs, at, len);
	return 0;
}

static int rp_headers_complete(http_parser *p)
{
	struct cs_fx_resp *r = p->data;
	cs_buf_putc(&r->hdrs, '\n');
	r->status = (int)p->status_code;
	return r->head ? 1 : 0; /* 1: no body follows */
}

static int rp_body(http_parser *p, const char *at, size_t len)
{
	struct cs_fx_resp *r = p->data;
	if (r->on_body)
		r->on_body(r, at, len);
	else
		cs_buf_append(&r->body, at, len);
	r->body_n += len;
	return 0;
}

static int rp_complete(http_parser *p)
{
	struct cs_fx_resp *r = p->data;
	r->done = true;
	http_parser_pause(p, 1); /* leave pipelined bytes for the next response */
	return 0;
}

static const http_parser_settings rp_settings = {
    .on_header_field = rp_field,
    .on_header_value = rp_value,
    .on_headers_complete = rp_headers_complete,
    .on_body = rp_body,
    .on_message_complete = rp_complete,
};

void cs_fx_resp_init(struct cs_fx_resp *r, bool head)
{
	memset(r, 0, sizeof *r);
	r->head = head;
	cs_buf_puts(&r->hdrs, "");
	cs_buf_puts(&r->body, "");
	http_parser *p = malloc(sizeof *p);
	ck_assert_ptr_nonnull(p);
	http_parser_init(p, HTTP_RESPONSE);
	p->data = r;
	r->parser = p;
}

size_t cs_fx_resp_feed(struct cs_fx_resp *r, const void *buf, size_t len)
{
	if (r->done || !len)
		return 0;
	http_parser *p = r->parser;
	size_t n = http_parser_execute(p, &rp_settings, buf, len);
	if (!r->done)
		ck_assert_msg(HTTP_PARSER_ERRNO(p) == HPE_OK, "bad response: %s",
			      http_errno_name(HTTP_PARSER_ERRNO(p)));
	return n;
}

bool cs_fx_resp_feed_eof(struct cs_fx_resp *r)
{
	if (!r->done)
		http_parser_execute(r->parser, &rp_settings, NULL, 0);
	return r->done;
}

void cs_fx_resp_free(struct cs_fx_resp *r)
{
	cs_buf_free(&r->hdrs);
	cs_buf_free(&r->body);
	free(r->parser);
	r->parser = NULL;
}

bool cs_fx_resp_has_header(const struct cs_fx_resp *r, const char *text)
{
	return strcasestr(r->hdrs.data, text) != NULL;
}

int cs_fx_resp_count_header(const struct cs_fx_resp *r, const char *name)
{
	size_t n = strlen(name);
	int count = 0;
	for (const char *p = r->hdrs.data; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		count += strncasecmp(p, name, n) == 0;
	return count;
}

struct cs_fx_client *cs_fx_client_connect(int port)
{
	struct cs_fx_client *c = calloc(1, sizeof *c);
	ck_assert_ptr_nonnull(c);
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(c->fd, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(c->fd);
		free(c);
		return NULL;
	}
	return c;
}

void cs_fx_client_close(struct cs_fx_client *c)
{
	if (!c)
		return;
	close(c->fd);
	free(c);
}

void cs_fx_client_send(struct cs_fx_client *c, const void *p, size_t n)
{
	const char *d = p;
	while (n) {
		ssize_t k = send(c->fd, d, n, MSG_NOSIGNAL);
		ck_assert_int_gt(k, 0);
		d += k;
		n -= (size_t)k;
	}
}

long cs_fx_client_recv(struct cs_fx_client *c)
{
	size_t room = sizeof c->buf - c->len;
	ck_assert_uint_gt(room, 0);
	long k = c->recv ? c->recv(c, c->buf + c->len, room)
			 : (long)recv(c->fd, c->buf + c->len, room, 0);
	if (k > 0)
		c->len += (size_t)k;
	return k;
}

bool cs_fx_client_try_resp(struct cs_fx_client *c, struct cs_fx_resp *r, bool head)
{
	return cs_fx_client_try_resp_cb(c, r, head, NULL, NULL);
}

bool cs_fx_client_try_resp_cb(struct cs_fx_client *c, struct cs_fx_resp *r, bool head,
			      void (*on_body)(struct cs_fx_resp *r, const char *at, size_t len),
			      void *ctx)
{
	cs_fx_resp_init(r, head);
	r->on_body = on_body;
	r->ctx = ctx;
	for (;;) {
		if (c->len) {
			size_t n = cs_fx_resp_feed(r, c->buf, c->len);
			memmove(c->buf, c->buf + n, c->len - n);
			c->len -= n;
			if (r->done)
				return true;
		}
		if (cs_fx_client_recv(c) <= 0)
			return false;
	}
}

void cs_fx_client_read_resp(struct cs_fx_client *c, struct cs_fx_resp *r, bool head)
{
	ck_assert_msg(cs_fx_client_try_resp(c, r, head), "connection ended before the response");
}

void cs_fx_client_request(struct cs_fx_client *c, const char *method, const char *target,
			  const char *token, const char *json, struct cs_fx_resp *r)
{
	struct cs_buf b = CS_BUF_INIT;
	cs_buf_printf(&b, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n", method, target);
	if (token)
		cs_buf_printf(&b, "X-Vault-Token: %s\r\n", token);
	if (json)
		cs_buf_printf(&b, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
			      strlen(json));
	cs_buf_puts(&b, "\r\n");
	if (json)
		cs_buf_puts(&b, json);
	cs_fx_client_send(c, b.data, b.len);
	cs_buf_free(&b);
	cs_fx_client_read_resp(c, r, strcmp(method, "HEAD") == 0);
}
