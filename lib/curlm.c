/*
 * libcurl multi on libuv (see curlm.h). Ownership: a request lives from cs_curlm_post
 * until its callback returned (or it was cancelled); a watched socket's context lives
 * until its uv_poll_t closed. The callback of a finished request runs after curl is done
 * with it and outside any curl callback, so it may post or cancel freely.
 */
#include "lib/curlm.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/util.h"

struct cs_curlm_sock {
	uv_poll_t poll;
	curl_socket_t fd;
	struct cs_curlm *m;
	struct cs_curlm_sock *next;
};

struct cs_curlm_req {
	struct cs_curlm_req *next;
	struct cs_curlm *m;
	CURL *easy;
	struct curl_slist *hdr, *connect_to;
	struct cs_buf body;
	size_t max_body;
	bool too_big;
	char *post;
	char url[2048];
	char target_url[512];
	cs_curlm_cb cb;
	cs_curlm_get_cb get_cb; /* set instead of cb for cs_curlm_get */
	void *ctx;
};

static void sock_closed(uv_handle_t *h)
{
	struct cs_curlm_sock *s = h->data;
	struct cs_curlm *m = s->m;
	free(s);
	if (--m->closing_handles == 0 && m->closing && m->close_cb)
		m->close_cb(m);
}

static void sock_release(struct cs_curlm *m, struct cs_curlm_sock *s)
{
	for (struct cs_curlm_sock **pp = &m->socks; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	m->closing_handles++;
	uv_close((uv_handle_t *)&s->poll, sock_closed);
}

static void req_free(struct cs_curlm_req *r)
{
	struct cs_curlm *m = r->m;
	for (struct cs_curlm_req **pp = &m->reqs; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	curl_multi_remove_handle(m->multi, r->easy);
	curl_easy_cleanup(r->easy);
	for (struct curl_slist *h = r->hdr; h; h = h->next)
		cs_zero(h->data, strlen(h->data)); /* X-Vault-Token */
	curl_slist_free_all(r->hdr);
	curl_slist_free_all(r->connect_to); /* or cs_curlm_get's resolve list */
	if (r->post) {
		cs_zero(r->post, strlen(r->post));
		free(r->post);
	}
	cs_buf_free_secure(&r->body);
	free(r);
}

/* Finished transfers: hand each to its callback. */
static void collect(struct cs_curlm *m)
{
	CURLMsg *msg;
	int left;
	while (m->multi && (msg = curl_multi_info_read(m->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct cs_curlm_req *r = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		CURLcode res = msg->data.result;
		long status = 0;
		char err[768] = "";
		if (res == CURLE_WRITE_ERROR && r->too_big)
			snprintf(err, sizeof err, "%s: response body over %zu bytes", r->target_url,
				 r->max_body);
		else if (res != CURLE_OK)
			snprintf(err, sizeof err, "%s: %s", r->target_url, curl_easy_strerror(res));
		else
			curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
		char *location = NULL;
		if (r->get_cb && res == CURLE_OK) {
			char *loc = NULL; /* owned by the easy handle */
			curl_easy_getinfo(r->easy, CURLINFO_REDIRECT_URL, &loc);
			if (loc && !(location = strdup(loc)))
				abort();
		}
		/* Free the request before the callback: it may post anew or close the
		 * driver. */
		cs_curlm_cb cb = r->cb;
		cs_curlm_get_cb get_cb = r->get_cb;
		void *ctx = r->ctx;
		bool too_big = r->too_big;
		struct cs_buf body = r->body;
		r->body = (struct cs_buf)CS_BUF_INIT;
		req_free(r);
		if (get_cb) {
			struct cs_curlm_resp resp = {.status = status,
						     .body = &body,
						     .location = location,
						     .too_big = too_big};
			get_cb(ctx, res == CURLE_OK ? 0 : CS_EIO, &resp, err);
		} else {
			cb(ctx, res == CURLE_OK ? 0 : CS_EIO, status, &body, err);
		}
		free(location);
		cs_buf_free_secure(&body);
	}
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
	struct cs_curlm_sock *s = h->data;
	struct cs_curlm *m = s->m;
	int flags = 0;
	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	int running = 0;
	curl_multi_socket_action(m->multi, s->fd, flags, &running);
	collect(m);
}

static void timer_cb(uv_timer_t *t)
{
	struct cs_curlm *m = CS_CONTAINER_OF(t, struct cs_curlm, timer);
	int running = 0;
	curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	collect(m);
}

static int socket_fn(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct cs_curlm *m = userp;
	struct cs_curlm_sock *s = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			uv_poll_stop(&s->poll);
			curl_multi_assign(m->multi, fd, NULL);
			sock_release(m, s);
		}
		return 0;
	}
	if (!s) {
		s = calloc(1, sizeof *s);
		if (!s)
			abort();
		s->fd = fd;
		s->m = m;
		if (uv_poll_init_socket(m->loop, &s->poll, fd) != 0) {
			free(s);
			return -1;
		}
		s->poll.data = s;
		s->next = m->socks;
		m->socks = s;
		curl_multi_assign(m->multi, fd, s);
	}
	int ev = 0;
	if (what & CURL_POLL_IN)
		ev |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		ev |= UV_WRITABLE;
	uv_poll_start(&s->poll, ev, poll_cb);
	return 0;
}

static int timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
	struct cs_curlm *m = userp;
	if (timeout_ms < 0)
		uv_timer_stop(&m->timer);
	else /* 0: as soon as possible, from the loop (never from inside curl) */
		uv_timer_start(&m->timer, timer_cb, (uint64_t)timeout_ms, 0);
	return 0;
}

int cs_curlm_init(struct cs_curlm *m, uv_loop_t *loop, char *errmsg, size_t errlen)
{
	memset(m, 0, sizeof *m);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
	if (!(v->features & CURL_VERSION_ASYNCHDNS)) {
		/* A blocking resolver would stall the loop on every name lookup. */
		snprintf(errmsg, errlen, "libcurl %s has no asynchronous resolver", v->version);
		return CS_EINTERNAL;
	}
	m->multi = curl_multi_init();
	if (!m->multi) {
		snprintf(errmsg, errlen, "curl_multi_init failed");
		return CS_EINTERNAL;
	}
	m->loop = loop;
	uv_timer_init(loop, &m->timer);
	curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, socket_fn);
	curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
	curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, timer_fn);
	curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
	return 0;
}

static size_t write_fn(char *p, size_t size, size_t n, void *ud)
{
	struct cs_curlm_req *r = ud;
	size_t len = size * n;
	if (r->body.len + len > r->max_body) {
		r->too_big = true;
		return 0; /* curl fails the transfer (CURLE_WRITE_ERROR) */
	}
	cs_buf_append(&r->body, p, len);
	return len;
}

/* leader_tls_servername: ask for that name while connecting to the listed address. */
static void set_url(struct cs_curlm_req *r, const struct cs_curlm_target *t, const char *path)
{
	if (t->sni && strncmp(t->url, "https://", 8) == 0) {
		const char *hostport = t->url + 8;
		const char *colon = strrchr(hostport, ':');
		const char *port = colon ? colon + 1 : "443";
		snprintf(r->url, sizeof r->url, "https://%s:%s%s", t->sni, port, path);
		char ct[600];
		snprintf(ct, sizeof ct, "%s:%s:%.*s:%s", t->sni, port,
			 (int)(colon ? colon - hostport : (long)strlen(hostport)), hostport, port);
		r->connect_to = curl_slist_append(NULL, ct);
		curl_easy_setopt(r->easy, CURLOPT_CONNECT_TO, r->connect_to);
	} else {
		snprintf(r->url, sizeof r->url, "%s%s", t->url, path);
	}
	curl_easy_setopt(r->easy, CURLOPT_URL, r->url);
}

static void set_tls(struct cs_curlm_req *r, const struct cs_curlm_target *t)
{
	CURL *c = r->easy;
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	/* The server's certificate is always verified (the CA given, else the system
	 * store), as is its name. */
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, t->insecure ? 0L : 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, t->insecure ? 0L : 2L);
	struct curl_blob ca = {(void *)t->ca, t->ca ? strlen(t->ca) : 0, CURL_BLOB_COPY};
	struct curl_blob cert = {(void *)t->cert, t->cert ? strlen(t->cert) : 0, CURL_BLOB_COPY};
	struct curl_blob key = {(void *)t->key, t->key ? strlen(t->key) : 0, CURL_BLOB_COPY};
	if (t->ca)
		curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &ca);
	if (t->cert && t->key) {
		curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &cert);
		curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
		curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &key);
		curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
	}
}

/* A new request with its easy handle and the options every request shares; NULL if
 * curl could not make the handle. */
static struct cs_curlm_req *req_new(struct cs_curlm *m, void *ctx)
{
	struct cs_curlm_req *r = calloc(1, sizeof *r);
	if (!r)
		abort();
	r->m = m;
	r->ctx = ctx;
	r->body = (struct cs_buf)CS_BUF_INIT;
	r->max_body = CS_CURLM_MAX_BODY;
	r->easy = curl_easy_init();
	if (!r->easy) {
		free(r);
		return NULL;
	}
	CURL *c = r->easy;
	curl_easy_setopt(c, CURLOPT_PRIVATE, r);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_fn);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)CS_CURLM_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)CS_CURLM_CONNECT_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
	return r;
}

static int req_start(struct cs_curlm *m, struct cs_curlm_req *r, struct cs_curlm_req **out)
{
	r->next = m->reqs;
	m->reqs = r;
	if (curl_multi_add_handle(m->multi, r->easy) != CURLM_OK) {
		req_free(r);
		return CS_EINTERNAL;
	}
	if (out)
		*out = r;
	return 0;
}

int cs_curlm_post(struct cs_curlm *m, const struct cs_curlm_target *t, const char *path,
		  const char *body, cs_curlm_cb cb, void *ctx, struct cs_curlm_req **out)
{
	if (m->closing)
		return CS_EINTERNAL;
	struct cs_curlm_req *r = req_new(m, ctx);
	if (!r)
		return CS_EINTERNAL;
	r->cb = cb;
	if (!(r->post = strdup(body)))
		abort();
	snprintf(r->target_url, sizeof r->target_url, "%s", t->url);
	CURL *c = r->easy;
	r->hdr = curl_slist_append(NULL, "Content-Type: application/json");
	if (t->token) {
		size_t tl = strlen(t->token) + 32;
		char *h = malloc(tl);
		if (!h)
			abort();
		snprintf(h, tl, "X-Vault-Token: %s", t->token);
		r->hdr = curl_slist_append(r->hdr, h);
		cs_zero(h, tl);
		free(h);
	}
	set_url(r, t, path);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->post);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->hdr);
	set_tls(r, t);
	return req_start(m, r, out);
}

int cs_curlm_get(struct cs_curlm *m, const struct cs_curlm_get_opts *o, cs_curlm_get_cb cb,
		 void *ctx, struct cs_curlm_req **out)
{
	if (m->closing || strlen(o->url) >= sizeof(((struct cs_curlm_req *)0)->url))
		return CS_EINTERNAL;
	struct cs_curlm_req *r = req_new(m, ctx);
	if (!r)
		return CS_EINTERNAL;
	r->get_cb = cb;
	if (o->max_body)
		r->max_body = o->max_body;
	snprintf(r->url, sizeof r->url, "%s", o->url);
	snprintf(r->target_url, sizeof r->target_url, "%s", o->url);
	CURL *c = r->easy;
	curl_easy_setopt(c, CURLOPT_URL, r->url);
	curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, o->protocols ? o->protocols : "http,https");
	curl_easy_setopt(c, CURLOPT_PROXY, ""); /* never a proxy from http_proxy & co */
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, o->insecure ? 0L : 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, o->insecure ? 0L : 2L);
	if (o->timeout_ms)
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o->timeout_ms);
	if (o->connect_timeout_ms)
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
	if (o->resolve) {
		r->connect_to = curl_slist_append(NULL, o->resolve);
		curl_easy_setopt(c, CURLOPT_RESOLVE, r->connect_to);
	}
	return req_start(m, r, out);
}

void cs_curlm_cancel(struct cs_curlm *m, struct cs_curlm_req *r)
{
	if (r)
		req_free(r);
}

static void timer_closed(uv_handle_t *h)
{
	struct cs_curlm *m = CS_CONTAINER_OF((uv_timer_t *)h, struct cs_curlm, timer);
	if (--m->closing_handles == 0 && m->close_cb)
		m->close_cb(m);
}

void cs_curlm_close(struct cs_curlm *m, void (*cb)(struct cs_curlm *m))
{
	m->closing = true;
	m->close_cb = cb;
	m->closing_handles++; /* the timer, released last below */
	while (m->reqs)
		req_free(m->reqs);
	if (m->multi)
		curl_multi_cleanup(m->multi);
	m->multi = NULL;
	while (m->socks) /* any socket curl did not release during cleanup */
		sock_release(m, m->socks);
	uv_close((uv_handle_t *)&m->timer, timer_closed);
}
