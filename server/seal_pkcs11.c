/*
 * seal "pkcs11": the KEK is wrapped by a key inside an HSM, through p11-kit (any PKCS#11
 * module: SoftHSM2 in the tests).
 *
 * Start-up (blocking, before the loop serves anything): load `lib`, pick the slot (`slot`,
 * or the token whose label is `token_label`), open a session and log in with `pin` — a
 * wrong PIN stops start-up with CKR_PIN_INCORRECT spelled out — and find the key labelled
 * `key_label` (an AES secret key for CKM_AES_GCM, an RSA key pair for CKM_RSA_PKCS_OAEP),
 * generating it in the token when `generate_key` is true and it does not exist.
 *
 * Operations: CKM_AES_GCM with a fresh 96-bit IV and a 128-bit tag (the IV is kept in the
 * envelope), or CKM_RSA_PKCS_OAEP with SHA-256 and MGF1-SHA-256 (SHA-1 when the token
 * refuses SHA-256, as SoftHSM2 does; the envelope records which). Each runs on a libuv pool
 * thread (an HSM may be slow or remote), one at a time on the one session; the result
 * comes back on the loop. The PIN is wiped from memory after login.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"
#include "server/seal_wrap.h"

struct p11 {
	struct cs_autoseal *s;
	CK_FUNCTION_LIST *m;
	CK_SESSION_HANDLE session;
	CK_OBJECT_HANDLE enc_key, dec_key; /* the same object for AES */
	pthread_mutex_t lock;              /* one operation at a time on the session */
	int inflight;
	bool closing;
	void (*done)(void *ctx);
	void *done_ctx;
};

struct p11_job {
	uv_work_t w;
	struct p11 *p;
	bool encrypt;
	uint8_t *in;
	size_t in_len;
	struct cs_seal_envelope env; /* decrypt: the input; encrypt: built here */
	struct cs_buf out;
	CK_RV rv;
	int rc;
	char err[256];
	cs_autoseal_cb cb;
	void *ctx;
};

static const char *rv_name(CK_RV rv)
{
	switch (rv) {
	case CKR_PIN_INCORRECT:
		return "CKR_PIN_INCORRECT (wrong PIN)";
	case CKR_PIN_LOCKED:
		return "CKR_PIN_LOCKED";
	case CKR_TOKEN_NOT_PRESENT:
		return "CKR_TOKEN_NOT_PRESENT";
	case CKR_SLOT_ID_INVALID:
		return "CKR_SLOT_ID_INVALID";
	case CKR_ENCRYPTED_DATA_INVALID:
		return "CKR_ENCRYPTED_DATA_INVALID (not sealed by this key)";
	case CKR_MECHANISM_INVALID:
		return "CKR_MECHANISM_INVALID";
	case CKR_MECHANISM_PARAM_INVALID:
		return "CKR_MECHANISM_PARAM_INVALID";
	case CKR_KEY_HANDLE_INVALID:
		return "CKR_KEY_HANDLE_INVALID";
	case CKR_DEVICE_ERROR:
		return "CKR_DEVICE_ERROR";
	case CKR_SESSION_HANDLE_INVALID:
		return "CKR_SESSION_HANDLE_INVALID";
	default:
		return NULL;
	}
}

static void rv_msg(char *buf, size_t n, const char *what, CK_RV rv)
{
	const char *name = rv_name(rv);
	if (name)
		snprintf(buf, n, "%s: %s", what, name);
	else
		snprintf(buf, n, "%s: CKR 0x%lx", what, (unsigned long)rv);
}

/* ------------------------------------------------------------------ mechanisms */

static void oaep_params(CK_RSA_PKCS_OAEP_PARAMS *o, bool sha1)
{
	memset(o, 0, sizeof *o);
	o->hashAlg = sha1 ? CKM_SHA_1 : CKM_SHA256;
	o->mgf = sha1 ? CKG_MGF1_SHA1 : CKG_MGF1_SHA256;
	o->source = CKZ_DATA_SPECIFIED;
}

/* Run on a pool thread, under p->lock. */
static void do_encrypt(struct p11_job *j)
{
	struct p11 *p = j->p;
	CK_MECHANISM mech = {0};
	CK_GCM_PARAMS gcm;
	CK_RSA_PKCS_OAEP_PARAMS oaep;
	struct cs_seal_envelope *e = &j->env;
	e->kind = CS_SEAL_PKCS11;
	e->mechanism = p->s->params.mechanism;
	snprintf(e->key_id, sizeof e->key_id, "%s", p->s->params.key_label);
	if (e->mechanism == CS_CKM_AES_GCM) {
		cs_random(e->iv, CS_SEAL_GCM_IV_LEN);
		e->iv_len = CS_SEAL_GCM_IV_LEN;
		memset(&gcm, 0, sizeof gcm);
		gcm.pIv = e->iv;
		gcm.ulIvLen = CS_SEAL_GCM_IV_LEN;
		gcm.ulIvBits = CS_SEAL_GCM_IV_LEN * 8;
		gcm.ulTagBits = 128;
		mech = (CK_MECHANISM){CKM_AES_GCM, &gcm, sizeof gcm};
	} else {
		oaep_params(&oaep, false);
		mech = (CK_MECHANISM){CKM_RSA_PKCS_OAEP, &oaep, sizeof oaep};
	}
	CK_RV rv = p->m->C_EncryptInit(p->session, &mech, p->enc_key);
	if (e->mechanism == CS_CKM_RSA_PKCS_OAEP &&
	    (rv == CKR_ARGUMENTS_BAD || rv == CKR_MECHANISM_PARAM_INVALID)) {
		/* SoftHSM2 (and some HSMs) do OAEP with SHA-1 only: the envelope says so. */
		oaep_params(&oaep, true);
		e->oaep_sha1 = true;
		rv = p->m->C_EncryptInit(p->session, &mech, p->enc_key);
	}
	CK_ULONG len = 0;
	if (rv == CKR_OK)
		rv = p->m->C_Encrypt(p->session, j->in, j->in_len, NULL, &len);
	if (rv == CKR_OK && (len == 0 || len > CS_SEAL_MAX_CIPHERTEXT))
		rv = CKR_GENERAL_ERROR;
	if (rv == CKR_OK) {
		e->ct = malloc(len);
		if (!e->ct)
			abort();
		rv = p->m->C_Encrypt(p->session, j->in, j->in_len, e->ct, &len);
		e->ct_len = len;
	}
	if (rv != CKR_OK) {
		rv_msg(j->err, sizeof j->err, "pkcs11 encrypt", rv);
		j->rc = CS_EIO;
		return;
	}
	char *js = NULL;
	j->rc = cs_seal_envelope_encode(e, &js);
	if (!j->rc)
		cs_buf_append(&j->out, js, strlen(js));
	free(js);
}

static void do_decrypt(struct p11_job *j)
{
	struct p11 *p = j->p;
	struct cs_seal_envelope *e = &j->env;
	CK_GCM_PARAMS gcm;
	CK_RSA_PKCS_OAEP_PARAMS oaep;
	CK_MECHANISM mech;
	if (e->mechanism == CS_CKM_AES_GCM) {
		memset(&gcm, 0, sizeof gcm);
		gcm.pIv = e->iv;
		gcm.ulIvLen = e->iv_len;
		gcm.ulIvBits = e->iv_len * 8;
		gcm.ulTagBits = 128;
		mech = (CK_MECHANISM){CKM_AES_GCM, &gcm, sizeof gcm};
	} else {
		oaep_params(&oaep, e->oaep_sha1);
		mech = (CK_MECHANISM){CKM_RSA_PKCS_OAEP, &oaep, sizeof oaep};
	}
	CK_RV rv = p->m->C_DecryptInit(p->session, &mech, p->dec_key);
	CK_ULONG len = 0;
	if (rv == CKR_OK)
		rv = p->m->C_Decrypt(p->session, e->ct, e->ct_len, NULL, &len);
	if (rv == CKR_OK && len > CS_SEAL_MAX_CIPHERTEXT)
		rv = CKR_GENERAL_ERROR;
	if (rv == CKR_OK) {
		cs_buf_reserve(&j->out, len);
		rv = p->m->C_Decrypt(p->session, e->ct, e->ct_len, (CK_BYTE *)j->out.data, &len);
		if (rv == CKR_OK)
			j->out.len = len;
	}
	if (rv != CKR_OK) {
		rv_msg(j->err, sizeof j->err, "pkcs11 decrypt", rv);
		j->rc = CS_EIO;
	}
}

static void job_work(uv_work_t *w)
{
	struct p11_job *j = CS_CONTAINER_OF(w, struct p11_job, w);
	pthread_mutex_lock(&j->p->lock);
	if (j->encrypt)
		do_encrypt(j);
	else
		do_decrypt(j);
	pthread_mutex_unlock(&j->p->lock);
}

static void p11_finish(struct p11 *p);

static void job_after(uv_work_t *w, int status)
{
	struct p11_job *j = CS_CONTAINER_OF(w, struct p11_job, w);
	struct p11 *p = j->p;
	p->inflight--;
	if (status && !j->rc) {
		j->rc = CS_EINTERNAL;
		snprintf(j->err, sizeof j->err, "pkcs11 operation cancelled");
	}
	if (!p->closing)
		j->cb(j->ctx, j->rc, &j->out, j->err);
	cs_buf_free_secure(&j->out);
	if (j->in) {
		cs_zero(j->in, j->in_len);
		free(j->in);
	}
	cs_seal_envelope_free(&j->env);
	free(j);
	if (p->closing && p->inflight == 0)
		p11_finish(p);
}

static int queue(struct p11 *p, struct p11_job *j)
{
	j->p = p;
	j->out = (struct cs_buf)CS_BUF_INIT;
	if (uv_queue_work(p->s->loop, &j->w, job_work, job_after)) {
		if (j->in) {
			cs_zero(j->in, j->in_len);
			free(j->in);
		}
		cs_seal_envelope_free(&j->env);
		free(j);
		return CS_EINTERNAL;
	}
	p->inflight++;
	return 0;
}

static int p_encrypt(struct cs_autoseal *s, const uint8_t *pt, size_t n, cs_autoseal_cb cb,
		     void *ctx)
{
	struct p11_job *j = calloc(1, sizeof *j);
	if (!j)
		abort();
	j->encrypt = true;
	j->in = malloc(n ? n : 1);
	if (!j->in)
		abort();
	memcpy(j->in, pt, n);
	j->in_len = n;
	j->cb = cb;
	j->ctx = ctx;
	return queue(s->impl, j);
}

static int p_decrypt(struct cs_autoseal *s, const struct cs_seal_envelope *e, cs_autoseal_cb cb,
		     void *ctx)
{
	if (e->kind != CS_SEAL_PKCS11 || e->mechanism != s->params.mechanism)
		return CS_EINVAL;
	struct p11_job *j = calloc(1, sizeof *j);
	if (!j)
		abort();
	j->env = *e;
	j->env.ciphertext = NULL;
	j->env.ct = malloc(e->ct_len);
	if (!j->env.ct)
		abort();
	memcpy(j->env.ct, e->ct, e->ct_len);
	j->cb = cb;
	j->ctx = ctx;
	return queue(s->impl, j);
}

/* ------------------------------------------------------------------ open/close */

static void p11_release(struct p11 *p)
{
	if (p->m) {
		if (p->session) {
			p->m->C_Logout(p->session);
			p->m->C_CloseSession(p->session);
		}
		p11_kit_module_finalize(p->m);
		p11_kit_module_release(p->m);
	}
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static void p11_finish(struct p11 *p)
{
	void (*done)(void *) = p->done;
	void *ctx = p->done_ctx;
	p11_release(p);
	done(ctx);
}

static void p_close(struct cs_autoseal *s, void (*done)(void *ctx), void *ctx)
{
	struct p11 *p = s->impl;
	p->closing = true;
	p->done = done;
	p->done_ctx = ctx;
	if (p->inflight == 0)
		p11_finish(p);
}

static const struct cs_autoseal_ops pkcs11_ops = {
    .encrypt = p_encrypt,
    .decrypt = p_decrypt,
    .close = p_close,
};

/* The first object of `cls` labelled `label` (0 when none). */
static CK_OBJECT_HANDLE find(struct p11 *p, CK_OBJECT_CLASS cls, const char *label)
{
	CK_ATTRIBUTE t[] = {
	    {CKA_CLASS, &cls, sizeof cls},
	    {CKA_LABEL, (void *)label, strlen(label)},
	};
	CK_OBJECT_HANDLE h = 0;
	CK_ULONG n = 0;
	if (p->m->C_FindObjectsInit(p->session, t, 2) != CKR_OK)
		return 0;
	if (p->m->C_FindObjects(p->session, &h, 1, &n) != CKR_OK || n == 0)
		h = 0;
	p->m->C_FindObjectsFinal(p->session);
	return h;
}

static CK_RV generate(struct p11 *p, const char *label)
{
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	if (p->s->params.mechanism == CS_CKM_AES_GCM) {
		CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
		CK_KEY_TYPE kt = CKK_AES;
		CK_ULONG len = 32;
		CK_ATTRIBUTE t[] = {
		    {CKA_CLASS, &cls, sizeof cls},     {CKA_KEY_TYPE, &kt, sizeof kt},
		    {CKA_VALUE_LEN, &len, sizeof len}, {CKA_TOKEN, &yes, sizeof yes},
		    {CKA_PRIVATE, &yes, sizeof yes},   {CKA_SENSITIVE, &yes, sizeof yes},
		    {CKA_EXTRACTABLE, &no, sizeof no}, {CKA_ENCRYPT, &yes, sizeof yes},
		    {CKA_DECRYPT, &yes, sizeof yes},   {CKA_LABEL, (void *)label, strlen(label)},
		};
		CK_MECHANISM mech = {CKM_AES_KEY_GEN, NULL, 0};
		CK_OBJECT_HANDLE h;
		return p->m->C_GenerateKey(p->session, &mech, t, CS_ARRAY_LEN(t), &h);
	}
	CK_ULONG bits = 2048;
	CK_BYTE exp[] = {1, 0, 1};
	CK_ATTRIBUTE pub[] = {
	    {CKA_TOKEN, &yes, sizeof yes},
	    {CKA_ENCRYPT, &yes, sizeof yes},
	    {CKA_MODULUS_BITS, &bits, sizeof bits},
	    {CKA_PUBLIC_EXPONENT, exp, sizeof exp},
	    {CKA_LABEL, (void *)label, strlen(label)},
	};
	CK_ATTRIBUTE priv[] = {
	    {CKA_TOKEN, &yes, sizeof yes},     {CKA_PRIVATE, &yes, sizeof yes},
	    {CKA_SENSITIVE, &yes, sizeof yes}, {CKA_EXTRACTABLE, &no, sizeof no},
	    {CKA_DECRYPT, &yes, sizeof yes},   {CKA_LABEL, (void *)label, strlen(label)},
	};
	CK_MECHANISM mech = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
	CK_OBJECT_HANDLE a, b;
	return p->m->C_GenerateKeyPair(p->session, &mech, pub, CS_ARRAY_LEN(pub), priv,
				       CS_ARRAY_LEN(priv), &a, &b);
}

static int find_keys(struct p11 *p, char *errmsg, size_t errlen)
{
	const char *label = p->s->params.key_label;
	bool aes = p->s->params.mechanism == CS_CKM_AES_GCM;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (aes) {
			p->enc_key = p->dec_key = find(p, CKO_SECRET_KEY, label);
		} else {
			p->enc_key = find(p, CKO_PUBLIC_KEY, label);
			p->dec_key = find(p, CKO_PRIVATE_KEY, label);
		}
		if (p->enc_key && p->dec_key)
			return 0;
		if (attempt || !p->s->params.generate_key)
			break;
		CK_RV rv = generate(p, label);
		if (rv != CKR_OK) {
			rv_msg(errmsg, errlen, "generating the key failed", rv);
			return CS_EIO;
		}
		cs_info("seal: generated %s key \"%.64s\" in the token",
			aes ? "AES-256" : "RSA-2048", label);
	}
	snprintf(errmsg, errlen,
		 "no %s key labelled \"%.64s\" in the token (set generate_key = \"true\" to "
		 "create it)",
		 aes ? "AES" : "RSA", label);
	return CS_EINVAL;
}

static int pick_slot(struct p11 *p, CK_SLOT_ID *slot, char *errmsg, size_t errlen)
{
	const struct cs_seal_params *sp = &p->s->params;
	CK_ULONG n = 0;
	CK_RV rv = p->m->C_GetSlotList(CK_TRUE, NULL, &n);
	CK_SLOT_ID *ids = n ? calloc(n, sizeof *ids) : NULL;
	if (rv == CKR_OK && n)
		rv = p->m->C_GetSlotList(CK_TRUE, ids, &n);
	if (rv != CKR_OK) {
		free(ids);
		rv_msg(errmsg, errlen, "listing slots failed", rv);
		return CS_EIO;
	}
	int rc = CS_ENOTFOUND;
	for (CK_ULONG i = 0; i < n && rc; i++) {
		if (sp->slot >= 0) {
			if (ids[i] == (CK_SLOT_ID)sp->slot)
				*slot = ids[i], rc = 0;
			continue;
		}
		CK_TOKEN_INFO ti;
		if (p->m->C_GetTokenInfo(ids[i], &ti) != CKR_OK)
			continue;
		/* Token labels are 32 bytes, padded with blanks. */
		size_t l = sizeof ti.label;
		while (l > 0 && ti.label[l - 1] == ' ')
			l--;
		if (l == strlen(sp->token_label) && memcmp(ti.label, sp->token_label, l) == 0)
			*slot = ids[i], rc = 0;
	}
	free(ids);
	if (rc) {
		if (sp->slot >= 0)
			snprintf(errmsg, errlen, "no token in slot %ld", sp->slot);
		else
			snprintf(errmsg, errlen, "no token labelled \"%.64s\"", sp->token_label);
	}
	return rc;
}

int cs_seal_pkcs11_open(struct cs_autoseal *s, char *errmsg, size_t errlen)
{
	struct p11 *p = calloc(1, sizeof *p);
	if (!p)
		abort();
	p->s = s;
	pthread_mutex_init(&p->lock, NULL);
	struct cs_seal_params *sp = &s->params;
	int rc = 0;
	p->m = p11_kit_module_load(sp->lib, P11_KIT_MODULE_UNMANAGED);
	if (!p->m) {
		snprintf(errmsg, errlen, "cannot load the PKCS#11 module %.256s: %.200s", sp->lib,
			 p11_kit_message() ? p11_kit_message() : "unknown error");
		p11_release(p);
		return CS_EINVAL;
	}
	CK_RV rv = p11_kit_module_initialize(p->m);
	if (rv != CKR_OK) {
		rv_msg(errmsg, errlen, "C_Initialize failed", rv);
		p11_kit_module_release(p->m);
		p->m = NULL;
		p11_release(p);
		return CS_EIO;
	}
	CK_SLOT_ID slot = 0;
	rc = pick_slot(p, &slot, errmsg, errlen);
	if (!rc) {
		rv = p->m->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL,
					 &p->session);
		if (rv != CKR_OK) {
			rv_msg(errmsg, errlen, "opening a session failed", rv);
			p->session = 0;
			rc = CS_EIO;
		}
	}
	if (!rc) {
		rv = p->m->C_Login(p->session, CKU_USER, (CK_UTF8CHAR *)sp->pin, strlen(sp->pin));
		if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
			rv_msg(errmsg, errlen, "login to the token failed", rv);
			rc = CS_EPERM;
		}
	}
	/* Logged in: the PIN is not needed again. */
	cs_zero(sp->pin, strlen(sp->pin));
	if (!rc)
		rc = find_keys(p, errmsg, errlen);
	if (rc) {
		p11_release(p);
		return rc;
	}
	s->impl = p;
	s->ops = &pkcs11_ops;
	cs_info("seal: pkcs11 seal, module %s, key \"%.64s\" (%s)", sp->lib, sp->key_label,
		sp->mechanism == CS_CKM_AES_GCM ? "CKM_AES_GCM" : "CKM_RSA_PKCS_OAEP");
	return 0;
}
