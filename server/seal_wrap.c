/* Auto-unseal seals: the envelope, transit responses, backoff, open/close (seal_wrap.h). */
#include "server/seal_wrap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "lib/err.h"
#include "lib/util.h"

static const char *mechanism_name(unsigned long m)
{
	return m == CS_CKM_RSA_PKCS_OAEP ? "CKM_RSA_PKCS_OAEP" : "CKM_AES_GCM";
}

int cs_seal_envelope_encode(const struct cs_seal_envelope *e, char **out)
{
	*out = NULL;
	if (e->kind != CS_SEAL_TRANSIT && e->kind != CS_SEAL_PKCS11)
		return CS_EINVAL;
	cJSON *j = cJSON_CreateObject();
	cJSON_AddNumberToObject(j, "version", CS_SEAL_ENVELOPE_VERSION);
	cJSON_AddStringToObject(j, "type", cs_seal_kind_name(e->kind));
	cJSON_AddStringToObject(j, "key_id", e->key_id);
	if (e->kind == CS_SEAL_TRANSIT) {
		cJSON_AddStringToObject(j, "ciphertext", e->ciphertext ? e->ciphertext : "");
	} else {
		cJSON_AddStringToObject(j, "mechanism", mechanism_name(e->mechanism));
		if (e->mechanism == CS_CKM_RSA_PKCS_OAEP)
			cJSON_AddStringToObject(j, "oaep_hash", e->oaep_sha1 ? "sha1" : "sha256");
		if (e->iv_len) {
			char *iv = cs_b64_encode(e->iv, e->iv_len);
			cJSON_AddStringToObject(j, "iv", iv);
			free(iv);
		}
		char *ct = cs_b64_encode(e->ct, e->ct_len);
		cJSON_AddStringToObject(j, "ciphertext", ct);
		free(ct);
	}
	*out = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	return *out ? 0 : CS_ENOMEM;
}

static const char *str_of(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int cs_seal_envelope_decode(const void *data, size_t len, struct cs_seal_envelope *e)
{
	memset(e, 0, sizeof *e);
	if (!data || len == 0 || len > 4 * CS_SEAL_MAX_CIPHERTEXT)
		return CS_EINVAL;
	cJSON *j = cJSON_ParseWithLength(data, len);
	const cJSON *ver = cJSON_GetObjectItemCaseSensitive(j, "version");
	const char *type = str_of(j, "type"), *kid = str_of(j, "key_id");
	const char *ct = str_of(j, "ciphertext");
	int kind = cs_seal_kind_parse(type);
	int rc = CS_EINVAL;
	if (!cJSON_IsObject(j) || !cJSON_IsNumber(ver) ||
	    ver->valuedouble != CS_SEAL_ENVELOPE_VERSION || !kid ||
	    strlen(kid) >= sizeof e->key_id || !ct || !*ct || strlen(ct) > CS_SEAL_MAX_CIPHERTEXT)
		goto out;
	snprintf(e->key_id, sizeof e->key_id, "%s", kid);
	if (kind == CS_SEAL_TRANSIT) {
		/* Vault's transit ciphertexts: "vault:v<version>:<base64>". */
		const char *p = ct;
		if (strncmp(p, "vault:v", 7) != 0)
			goto out;
		p += 7;
		if (*p < '1' || *p > '9')
			goto out;
		while (*p >= '0' && *p <= '9')
			p++;
		if (*p != ':' || !p[1])
			goto out;
		e->ciphertext = strdup(ct);
		if (!e->ciphertext)
			abort();
	} else if (kind == CS_SEAL_PKCS11) {
		const char *mech = str_of(j, "mechanism");
		if (!mech)
			goto out;
		if (strcmp(mech, "CKM_AES_GCM") == 0)
			e->mechanism = CS_CKM_AES_GCM;
		else if (strcmp(mech, "CKM_RSA_PKCS_OAEP") == 0)
			e->mechanism = CS_CKM_RSA_PKCS_OAEP;
		else
			goto out;
		const char *iv = str_of(j, "iv");
		if (e->mechanism == CS_CKM_AES_GCM) {
			size_t n = 0;
			uint8_t *b = iv ? cs_b64_decode(iv, strlen(iv), &n) : NULL;
			if (!b || n != CS_SEAL_GCM_IV_LEN) {
				free(b);
				goto out;
			}
			memcpy(e->iv, b, n);
			e->iv_len = n;
			free(b);
		} else {
			const char *h = str_of(j, "oaep_hash");
			if (iv || (h && strcmp(h, "sha1") != 0 && strcmp(h, "sha256") != 0))
				goto out;
			e->oaep_sha1 = h && strcmp(h, "sha1") == 0;
		}
		e->ct = cs_b64_decode(ct, strlen(ct), &e->ct_len);
		if (!e->ct || e->ct_len == 0) {
			free(e->ct);
			e->ct = NULL;
			goto out;
		}
	} else {
		goto out;
	}
	e->kind = (enum cs_seal_kind)kind;
	rc = 0;
out:
	cJSON_Delete(j);
	if (rc)
		memset(e, 0, sizeof *e);
	return rc;
}

void cs_seal_envelope_free(struct cs_seal_envelope *e)
{
	free(e->ciphertext);
	free(e->ct);
	memset(e, 0, sizeof *e);
}

int cs_transit_seal_response(long status, const char *body, size_t len, const char *field,
			     uint8_t **out, size_t *out_len, char *errmsg, size_t errlen)
{
	*out = NULL;
	*out_len = 0;
	cJSON *j = body && len ? cJSON_ParseWithLength(body, len) : NULL;
	int rc = CS_EIO;
	if (status < 200 || status > 299) {
		const cJSON *errs = cJSON_GetObjectItemCaseSensitive(j, "errors");
		const cJSON *e0 = cJSON_GetArrayItem(errs, 0);
		/* Vault's error texts name paths and keys, never the plaintext we sent. */
		snprintf(errmsg, errlen, "transit answered %ld: %.200s", status,
			 cJSON_IsString(e0) ? e0->valuestring : "no error message");
		for (char *p = errmsg; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		cJSON_Delete(j);
		return status == 403 ? CS_EPERM : CS_EIO;
	}
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "data");
	const char *v = str_of(d, field);
	if (!v || !*v || strlen(v) > CS_SEAL_MAX_CIPHERTEXT) {
		snprintf(errmsg, errlen, "transit answered %ld without data.%s", status, field);
		goto out;
	}
	if (strcmp(field, "plaintext") == 0) {
		*out = cs_b64_decode(v, strlen(v), out_len);
		if (!*out) {
			snprintf(errmsg, errlen, "transit answered a plaintext that is not base64");
			goto out;
		}
	} else {
		*out_len = strlen(v);
		*out = (uint8_t *)strdup(v);
		if (!*out)
			abort();
	}
	rc = 0;
out:
	/* The response may carry the unwrapped key: wipe the parsed copy. */
	if (d) {
		cJSON *pt = cJSON_GetObjectItemCaseSensitive(d, "plaintext");
		if (cJSON_IsString(pt))
			cs_zero(pt->valuestring, strlen(pt->valuestring));
	}
	cJSON_Delete(j);
	return rc;
}

uint64_t cs_seal_backoff_ms(int failures)
{
	if (failures <= 1)
		return CS_SEAL_BACKOFF_MIN_MS;
	uint64_t d = CS_SEAL_BACKOFF_MIN_MS;
	for (int i = 1; i < failures && d < CS_SEAL_BACKOFF_MAX_MS; i++)
		d *= 2;
	return d > CS_SEAL_BACKOFF_MAX_MS ? CS_SEAL_BACKOFF_MAX_MS : d;
}

int cs_autoseal_open(uv_loop_t *loop, const struct cs_seal_params *p, struct cs_autoseal **out,
		     char *errmsg, size_t errlen)
{
	*out = NULL;
	struct cs_autoseal *s = calloc(1, sizeof *s);
	if (!s)
		abort();
	s->loop = loop;
	cs_seal_params_copy(&s->params, p);
	int rc;
	if (p->kind == CS_SEAL_TRANSIT)
		rc = cs_seal_transit_open(s, errmsg, errlen);
	else if (p->kind == CS_SEAL_PKCS11)
		rc = cs_seal_pkcs11_open(s, errmsg, errlen);
	else {
		snprintf(errmsg, errlen, "shamir is not an auto-unseal seal");
		rc = CS_EINVAL;
	}
	if (rc) {
		cs_seal_params_free(&s->params);
		free(s);
		return rc;
	}
	*out = s;
	return 0;
}

struct close_ctx {
	struct cs_autoseal *s;
	void (*done)(void *ctx);
	void *ctx;
};

static void closed(void *ctx)
{
	struct close_ctx *c = ctx;
	cs_seal_params_free(&c->s->params);
	free(c->s);
	if (c->done)
		c->done(c->ctx);
	free(c);
}

void cs_autoseal_close(struct cs_autoseal *s, void (*done)(void *ctx), void *ctx)
{
	struct close_ctx *c = malloc(sizeof *c);
	if (!c)
		abort();
	*c = (struct close_ctx){s, done, ctx};
	s->ops->close(s, closed, c);
}
