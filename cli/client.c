/*
 * libcurl wrapper for the CLI (see client.h). One easy handle is reused so a command
 * that makes several calls (status = seal-status + leader) keeps its connection.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cli/client.h"
#include "lib/err.h"
#include "lib/util.h"

/* Response bodies above this are refused: the CLI never needs more, and it bounds memory. */
#define CLIENT_MAX_BODY (64u * 1024 * 1024)

int cs_client_init(struct cs_client *c)
{
	static bool global_done;
	if (!global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return CS_ENOMEM;
		global_done = true;
	}
	c->curl = curl_easy_init();
	return c->curl ? 0 : CS_ENOMEM;
}

void cs_client_close(struct cs_client *c)
{
	if (c->curl)
		curl_easy_cleanup(c->curl);
	c->curl = NULL;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
	struct cs_buf *b = ud;
	size_t n = size * nmemb;
	if (b->len + n > CLIENT_MAX_BODY)
		return 0; /* makes curl fail with CURLE_WRITE_ERROR */
	cs_buf_append(b, p, n);
	return n;
}

/* Percent-encode a path the way Go's url.URL.EscapedPath does: keep unreserved
 * characters, sub-delimiters, ':' '@' and '/', escape everything else. */
static void append_escaped_path(struct cs_buf *b, const char *path)
{
	static const char keep[] = "-._~!$&'()*+,;=:@/";
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		if (isalnum(*p) || strchr(keep, *p))
			cs_buf_putc(b, (char)*p);
		else
			cs_buf_printf(b, "%%%02X", *p);
	}
}

static char *build_url(const char *addr, const char *path, const char *query)
{
	struct cs_buf b = CS_BUF_INIT;
	size_t alen = strlen(addr);
	while (alen > 0 && addr[alen - 1] == '/')
		alen--;
	cs_buf_append(&b, addr, alen);
	cs_buf_puts(&b, "/v1/");
	while (*path == '/')
		path++;
	append_escaped_path(&b, path);
	if (query && *query) {
		cs_buf_putc(&b, '?');
		cs_buf_puts(&b, query);
	}
	return cs_buf_steal(&b, NULL);
}

/*
 * Everything a request needs but its body: reset the handle, URL, TLS, timeouts, the
 * Vault headers (plus `extra`, may be NULL). Returns the header list, which the caller
 * passes to finish_request (it holds a copy of the token).
 */
static struct curl_slist *prepare(struct cs_client *c, const char *method, const char *path,
				  const char *query, struct cs_client_resp *resp, char *errbuf,
				  const char *extra)
{
	CURL *h = c->curl;
	memset(resp, 0, sizeof *resp);
	snprintf(resp->method, sizeof resp->method, "%s", method);
	resp->url = build_url(c->addr, path, query);

	curl_easy_reset(h);
	struct curl_slist *hdrs = NULL;
	struct cs_buf hv = CS_BUF_INIT;

	curl_easy_setopt(h, CURLOPT_URL, resp->url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, c->timeout_s > 0 ? c->timeout_s : 60L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp->body);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "custos-cli");
	/* Vault answers 307 from standbys that cannot forward; the Go client follows those
	 * with the same method and body, so do we. */
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
	curl_easy_setopt(h, CURLOPT_POSTREDIR, (long)CURL_REDIR_POST_ALL);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, c->skip_verify ? 0L : 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, c->skip_verify ? 0L : 2L);
	if (c->ca_cert && *c->ca_cert)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_cert);
	if (c->ca_path && *c->ca_path)
		curl_easy_setopt(h, CURLOPT_CAPATH, c->ca_path);

	hdrs = curl_slist_append(hdrs, "X-Vault-Request: true");
	if (c->token && *c->token) {
		cs_buf_printf(&hv, "X-Vault-Token: %s", c->token);
		hdrs = curl_slist_append(hdrs, hv.data);
		cs_zero(hv.data, hv.len);
		cs_buf_reset(&hv);
	}
	if (c->namespace && *c->namespace) {
		cs_buf_printf(&hv, "X-Vault-Namespace: %s", c->namespace);
		hdrs = curl_slist_append(hdrs, hv.data);
		cs_buf_reset(&hv);
	}
	cs_buf_free_secure(&hv);
	if (extra)
		hdrs = curl_slist_append(hdrs, extra);

	if (strcmp(method, "GET") == 0)
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	else
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	return hdrs;
}

/* Run the prepared request, wipe and free the headers, fill status/json/err. */
static int finish_request(struct cs_client *c, struct curl_slist *hdrs, struct cs_client_resp *resp,
			  const char *errbuf)
{
	CURL *h = c->curl;
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	CURLcode rc = curl_easy_perform(h);

	/* The header list holds a copy of the token: wipe before freeing. */
	for (struct curl_slist *s = hdrs; s; s = s->next)
		cs_zero(s->data, strlen(s->data));
	curl_slist_free_all(hdrs);

	if (rc != CURLE_OK) {
		snprintf(resp->err, sizeof resp->err, "%s",
			 errbuf[0] ? errbuf : curl_easy_strerror(rc));
		size_t n = strlen(resp->err);
		while (n > 0 && (resp->err[n - 1] == '\n' || resp->err[n - 1] == ' '))
			resp->err[--n] = '\0';
		resp->status = 0;
		return CS_EIO;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
	if (resp->body.len > 0)
		resp->json = cJSON_ParseWithLength(resp->body.data, resp->body.len);
	return 0;
}

int cs_client_request(struct cs_client *c, const char *method, const char *path, const char *query,
		      const cJSON *body, struct cs_client_resp *resp)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = prepare(c, method, path, query, resp, errbuf, NULL);
	char *payload = NULL;
	if (body) {
		payload = cJSON_PrintUnformatted(body);
		if (!payload) {
			curl_slist_free_all(hdrs);
			snprintf(resp->err, sizeof resp->err, "out of memory encoding request");
			return CS_EIO;
		}
		/* Vault only accepts PATCH bodies as JSON merge patches (RFC 7386). */
		hdrs = curl_slist_append(hdrs, strcmp(method, "PATCH") == 0
						   ? "Content-Type: application/merge-patch+json"
						   : "Content-Type: application/json");
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, payload);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
	}
	int rc = finish_request(c, hdrs, resp, errbuf);
	if (payload) {
		cs_zero(payload, strlen(payload));
		cJSON_free(payload);
	}
	return rc;
}

/* ------------------------------------------------------------------ streaming */

/* State of one streamed request, shared by the curl callbacks below. */
struct stream_ctx {
	CURL *h;
	struct cs_client_stream *s;
	struct cs_client_resp *resp;
	int werr; /* errno of a failed write to out_fd */
};

static size_t on_stream_body(char *p, size_t size, size_t nmemb, void *ud)
{
	struct stream_ctx *x = ud;
	size_t n = size * nmemb;
	long code = 0;
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
	/* Only a success body is the payload; an error body is Vault's JSON error, kept in
	 * memory (bounded) for the message. */
	if (code < 200 || code >= 300 || x->s->out_fd < 0)
		return on_body(p, size, nmemb, &x->resp->body);
	for (size_t off = 0; off < n;) {
		ssize_t w = write(x->s->out_fd, p + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			x->werr = w < 0 ? errno : EIO;
			return 0; /* CURLE_WRITE_ERROR */
		}
		off += (size_t)w;
	}
	x->s->out_bytes += n;
	if (x->s->progress) {
		curl_off_t total = -1;
		curl_easy_getinfo(x->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &total);
		x->s->progress(x->s->ud, x->s->out_bytes, total > 0 ? (uint64_t)total : 0);
	}
	return n;
}

static size_t on_stream_read(char *p, size_t size, size_t nmemb, void *ud)
{
	struct stream_ctx *x = ud;
	for (;;) {
		ssize_t r = read(x->s->in_fd, p, size * nmemb);
		if (r >= 0)
			return (size_t)r;
		if (errno != EINTR)
			return CURL_READFUNC_ABORT;
	}
}

/* curl rewinds the body when it follows a redirect (a standby's 307). */
static int on_stream_seek(void *ud, curl_off_t off, int origin)
{
	struct stream_ctx *x = ud;
	return lseek(x->s->in_fd, (off_t)off, origin) < 0 ? CURL_SEEKFUNC_FAIL : CURL_SEEKFUNC_OK;
}

int cs_client_request_stream(struct cs_client *c, const char *method, const char *path,
			     struct cs_client_stream *s, struct cs_client_resp *resp)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	/* curl would send "Expect: 100-continue" for a large body and wait for an answer
	 * some servers never give; the body is sent straight away instead. */
	struct curl_slist *hdrs = prepare(c, method, path, NULL, resp, errbuf, "Expect:");
	struct stream_ctx x = {c->curl, s, resp, 0};
	CURL *h = c->curl;
	s->out_bytes = 0;
	/* A snapshot may take long: no overall limit unless the user set one, only a stall
	 * limit (less than 1 byte/s for 5 minutes). */
	curl_easy_setopt(h, CURLOPT_TIMEOUT, c->timeout_s > 0 ? c->timeout_s : 0L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 300L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_stream_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
	if (s->in_fd >= 0) {
		hdrs = curl_slist_append(hdrs, "Content-Type: application/octet-stream");
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_stream_read);
		curl_easy_setopt(h, CURLOPT_READDATA, &x);
		curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_stream_seek);
		curl_easy_setopt(h, CURLOPT_SEEKDATA, &x);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->in_len);
		/* CURLOPT_POST resets the verb to POST; keep the caller's. */
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	}
	int rc = finish_request(c, hdrs, resp, errbuf);
	if (rc != 0 && x.werr)
		snprintf(resp->err, sizeof resp->err, "writing the response: %s", strerror(x.werr));
	return rc;
}

bool cs_client_resp_ok(const struct cs_client_resp *resp)
{
	return resp->status >= 200 && resp->status < 400;
}

void cs_client_format_error(const struct cs_client_resp *resp, struct cs_buf *out)
{
	if (resp->status == 0) {
		/* Go's url.Error: `Get "URL": text`, method capitalised only on its first
		 * letter. */
		char m[sizeof resp->method];
		size_t i;
		for (i = 0; resp->method[i] && i + 1 < sizeof m; i++)
			m[i] = (char)(i == 0 ? toupper((unsigned char)resp->method[i])
					     : tolower((unsigned char)resp->method[i]));
		m[i] = '\0';
		cs_buf_printf(out, "%s \"%s\": %s", m, resp->url ? resp->url : "", resp->err);
		return;
	}
	const cJSON *errs =
	    resp->json ? cJSON_GetObjectItemCaseSensitive(resp->json, "errors") : NULL;
	bool raw = !cJSON_IsArray(errs);
	cs_buf_printf(out, "Error making API request.\n\nURL: %s %s\nCode: %ld. %s:\n\n",
		      resp->method, resp->url ? resp->url : "", resp->status,
		      raw ? "Raw Message" : "Errors");
	if (raw) {
		if (resp->body.len)
			cs_buf_append(out, resp->body.data, resp->body.len);
		return;
	}
	bool first = true;
	for (const cJSON *e = errs->child; e; e = e->next) {
		if (!first)
			cs_buf_putc(out, '\n');
		first = false;
		cs_buf_printf(out, "* %s", cJSON_IsString(e) ? e->valuestring : "");
	}
}

/* Recursion depth is bounded by cJSON's own nesting limit (CJSON_NESTING_LIMIT). */
static void json_wipe(cJSON *j)
{
	for (cJSON *c = j; c; c = c->next) {
		if (c->valuestring)
			cs_zero(c->valuestring, strlen(c->valuestring));
		if (c->string)
			cs_zero(c->string, strlen(c->string));
		if (c->child)
			json_wipe(c->child);
	}
}

void cs_client_json_free_secure(cJSON *j)
{
	if (!j)
		return;
	if (j->valuestring)
		cs_zero(j->valuestring, strlen(j->valuestring));
	if (j->child)
		json_wipe(j->child);
	cJSON_Delete(j);
}

void cs_client_resp_free(struct cs_client_resp *resp)
{
	cs_client_json_free_secure(resp->json);
	resp->json = NULL;
	cs_buf_free_secure(&resp->body);
	free(resp->url);
	resp->url = NULL;
}
