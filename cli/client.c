/*
 * libcurl wrapper for the CLI (see client.h). One easy handle is reused so a command
 * that makes several calls (status = seal-status + leader) keeps its connection.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int cs_client_request(struct cs_client *c, const char *method, const char *path, const char *query,
		      const cJSON *body, struct cs_client_resp *resp)
{
	CURL *h = c->curl;
	memset(resp, 0, sizeof *resp);
	snprintf(resp->method, sizeof resp->method, "%s", method);
	resp->url = build_url(c->addr, path, query);

	curl_easy_reset(h);
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	struct cs_buf hv = CS_BUF_INIT;
	char *payload = NULL;

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

	if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	}
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
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);

	CURLcode rc = curl_easy_perform(h);

	/* The header list holds a copy of the token: wipe before freeing. */
	for (struct curl_slist *s = hdrs; s; s = s->next)
		cs_zero(s->data, strlen(s->data));
	curl_slist_free_all(hdrs);
	if (payload) {
		cs_zero(payload, strlen(payload));
		cJSON_free(payload);
	}

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
