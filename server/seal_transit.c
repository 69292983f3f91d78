/*
 * seal "transit": the KEK is encrypted and decrypted by another custos's (or Vault's)
 * transit key, over HTTP(S) with libcurl's multi interface on the loop (lib/curlm.h):
 *
 *   POST <address>/v1/<mount_path>/encrypt/<key_name>  {"plaintext": base64}
 *        → data.ciphertext "vault:v1:..."
 *   POST <address>/v1/<mount_path>/decrypt/<key_name>  {"ciphertext": "vault:v1:..."}
 *        → data.plaintext base64
 *   POST <address>/v1/auth/token/renew-self  {}   (unless disable_renewal), at start and at
 *        half of each granted TTL, as Vault's lifetime watcher; a token that is not
 *        renewable (a root token) is simply used as it is.
 *
 * Failures (connection, TLS, 5xx, 403) reach the caller's callback as CS_EIO/CS_EPERM with
 * one line saying why; the caller retries (seal_auto.c). The token travels only in the
 * X-Vault-Token header and never reaches a log.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/curlm.h"
#include "server/seal_wrap.h"

struct transit_op;

struct transit {
	struct cs_autoseal *s;
	struct cs_curlm http;
	char *ca, *cert, *key; /* PEM, read from the tls_* files at open */
	struct transit_op *ops;
	uv_timer_t renew;
	struct cs_curlm_req *renew_req;
	int closing_handles;
	void (*done)(void *ctx);
	void *done_ctx;
};

struct transit_op {
	struct transit_op *next;
	struct transit *t;
	bool encrypt;
	cs_autoseal_cb cb;
	void *ctx;
	struct cs_curlm_req *req;
};

static void op_unlink(struct transit_op *op)
{
	for (struct transit_op **pp = &op->t->ops; *pp; pp = &(*pp)->next)
		if (*pp == op) {
			*pp = op->next;
			break;
		}
}

static struct cs_curlm_target target(const struct transit *t)
{
	const struct cs_seal_params *p = &t->s->params;
	return (struct cs_curlm_target){.url = p->address,
					.ca = t->ca,
					.cert = t->cert,
					.key = t->key,
					.sni = p->tls_server_name,
					.token = p->token,
					.insecure = p->tls_skip_verify};
}

static void op_done(void *ctx, int rc, long status, struct cs_buf *body, const char *err)
{
	struct transit_op *op = ctx;
	struct transit *t = op->t;
	op_unlink(op);
	const struct cs_seal_params *p = &t->s->params;
	char msg[512] = "";
	struct cs_buf out = CS_BUF_INIT;
	if (rc) {
		snprintf(msg, sizeof msg, "transit seal unreachable: %s", err);
		rc = CS_EIO;
	} else {
		uint8_t *v = NULL;
		size_t vlen = 0;
		rc = cs_transit_seal_response(status, body->data, body->len,
					      op->encrypt ? "ciphertext" : "plaintext", &v, &vlen,
					      msg, sizeof msg);
		if (!rc && op->encrypt) {
			struct cs_seal_envelope e = {.kind = CS_SEAL_TRANSIT,
						     .ciphertext = (char *)v};
			snprintf(e.key_id, sizeof e.key_id, "%s/%s", p->mount_path, p->key_name);
			char *js = NULL;
			rc = cs_seal_envelope_encode(&e, &js);
			if (!rc)
				cs_buf_append(&out, js, strlen(js));
			free(js);
		} else if (!rc) {
			cs_buf_append(&out, v, vlen);
		}
		if (v) {
			cs_zero(v, vlen);
			free(v);
		}
	}
	cs_autoseal_cb cb = op->cb;
	void *cctx = op->ctx;
	free(op);
	cb(cctx, rc, &out, msg);
	cs_buf_free_secure(&out);
}

static int post(struct transit *t, bool encrypt, const char *body, cs_autoseal_cb cb, void *ctx)
{
	const struct cs_seal_params *p = &t->s->params;
	char path[1024];
	snprintf(path, sizeof path, "/v1/%s/%s/%s", p->mount_path, encrypt ? "encrypt" : "decrypt",
		 p->key_name);
	struct transit_op *op = calloc(1, sizeof *op);
	if (!op)
		abort();
	*op = (struct transit_op){.t = t, .encrypt = encrypt, .cb = cb, .ctx = ctx};
	struct cs_curlm_target tg = target(t);
	if (cs_curlm_post(&t->http, &tg, path, body, op_done, op, &op->req)) {
		free(op);
		return CS_EINTERNAL;
	}
	op->next = t->ops;
	t->ops = op;
	return 0;
}

static int t_encrypt(struct cs_autoseal *s, const uint8_t *pt, size_t n, cs_autoseal_cb cb,
		     void *ctx)
{
	char *b64 = cs_b64_encode(pt, n);
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "plaintext", b64);
	cs_zero(b64, strlen(b64));
	free(b64);
	char *body = cJSON_PrintUnformatted(j);
	cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "plaintext");
	cs_zero(v->valuestring, strlen(v->valuestring));
	cJSON_Delete(j);
	int rc = post(s->impl, true, body, cb, ctx);
	cs_zero(body, strlen(body));
	free(body);
	return rc;
}

static int t_decrypt(struct cs_autoseal *s, const struct cs_seal_envelope *e, cs_autoseal_cb cb,
		     void *ctx)
{
	if (e->kind != CS_SEAL_TRANSIT || !e->ciphertext)
		return CS_EINVAL;
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "ciphertext", e->ciphertext);
	char *body = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	int rc = post(s->impl, false, body, cb, ctx);
	free(body);
	return rc;
}

/* ------------------------------------------------------------------ token renewal */

static void renew_schedule(struct transit *t, uint64_t ms);

static void renewed(void *ctx, int rc, long status, struct cs_buf *body, const char *err)
{
	struct transit *t = ctx;
	t->renew_req = NULL;
	if (rc) {
		cs_warn("seal: transit token renewal failed: %s; retrying in 30 s", err);
		renew_schedule(t, 30000);
		return;
	}
	cJSON *j = cJSON_ParseWithLength(body->data, body->len);
	const cJSON *auth = cJSON_GetObjectItemCaseSensitive(j, "auth");
	const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(auth, "lease_duration");
	const cJSON *ren = cJSON_GetObjectItemCaseSensitive(auth, "renewable");
	if (status >= 200 && status < 300 && cJSON_IsNumber(ttl) && ttl->valuedouble > 0 &&
	    cJSON_IsTrue(ren)) {
		double half = ttl->valuedouble / 2;
		renew_schedule(t, half < 1 ? 1000 : (uint64_t)(half * 1000));
	} else {
		/* A root or non-renewable token: nothing to renew (Vault logs and goes on). */
		cs_info("seal: the transit seal token is not renewable (HTTP %ld); using it as is",
			status);
	}
	cJSON_Delete(j);
}

static void renew_cb(uv_timer_t *h)
{
	struct transit *t = h->data;
	struct cs_curlm_target tg = target(t);
	if (cs_curlm_post(&t->http, &tg, "/v1/auth/token/renew-self", "{}", renewed, t,
			  &t->renew_req))
		renew_schedule(t, 30000);
}

static void renew_schedule(struct transit *t, uint64_t ms)
{
	uv_timer_start(&t->renew, renew_cb, ms, 0);
}

/* ------------------------------------------------------------------ open/close */

static void t_handle_closed(struct transit *t)
{
	if (--t->closing_handles > 0)
		return;
	void (*done)(void *) = t->done;
	void *ctx = t->done_ctx;
	if (t->key) {
		cs_zero(t->key, strlen(t->key));
		free(t->key);
	}
	free(t->ca);
	free(t->cert);
	free(t);
	done(ctx);
}

static void renew_closed(uv_handle_t *h)
{
	t_handle_closed(h->data);
}

static void http_closed(struct cs_curlm *m)
{
	t_handle_closed(CS_CONTAINER_OF(m, struct transit, http));
}

static void t_close(struct cs_autoseal *s, void (*done)(void *ctx), void *ctx)
{
	struct transit *t = s->impl;
	t->done = done;
	t->done_ctx = ctx;
	t->closing_handles = 2;
	while (t->ops) { /* curlm drops their requests: the callbacks never run */
		struct transit_op *op = t->ops;
		t->ops = op->next;
		free(op);
	}
	t->renew_req = NULL;
	uv_timer_stop(&t->renew);
	uv_close((uv_handle_t *)&t->renew, renew_closed);
	cs_curlm_close(&t->http, http_closed);
}

static const struct cs_autoseal_ops transit_ops = {
    .encrypt = t_encrypt,
    .decrypt = t_decrypt,
    .close = t_close,
};

static int read_pem(const char *path, char **out, const char *what, char *errmsg, size_t errlen)
{
	size_t len;
	if (!path || !*path)
		return 0;
	if (cs_read_file(path, out, &len)) {
		snprintf(errmsg, errlen, "seal \"transit\": cannot read %s %.256s", what, path);
		return CS_EINVAL;
	}
	return 0;
}

int cs_seal_transit_open(struct cs_autoseal *s, char *errmsg, size_t errlen)
{
	struct transit *t = calloc(1, sizeof *t);
	if (!t)
		abort();
	t->s = s;
	const struct cs_seal_params *p = &s->params;
	int rc = read_pem(p->tls_ca_cert, &t->ca, "tls_ca_cert", errmsg, errlen);
	if (!rc)
		rc = read_pem(p->tls_client_cert, &t->cert, "tls_client_cert", errmsg, errlen);
	if (!rc)
		rc = read_pem(p->tls_client_key, &t->key, "tls_client_key", errmsg, errlen);
	if (!rc)
		rc = cs_curlm_init(&t->http, s->loop, errmsg, errlen);
	if (rc) {
		if (t->key) {
			cs_zero(t->key, strlen(t->key));
			free(t->key);
		}
		free(t->ca);
		free(t->cert);
		free(t);
		return rc;
	}
	uv_timer_init(s->loop, &t->renew);
	t->renew.data = t;
	s->impl = t;
	s->ops = &transit_ops;
	if (p->namespace_ && *p->namespace_)
		cs_warn("seal: transit namespace \"%.64s\" ignored: custos has no namespaces",
			p->namespace_);
	if (p->tls_skip_verify)
		cs_warn("seal: transit tls_skip_verify = true: the seal server's certificate is "
			"not checked");
	if (!p->disable_renewal && p->token && *p->token)
		renew_schedule(t, 0);
	cs_info("seal: transit seal at %s, key %s/%s", p->address, p->mount_path, p->key_name);
	return 0;
}
