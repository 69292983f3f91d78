/*
 * The transit engine's signatures (engines/transit_internal.h): sign/:name[/:alg] and the
 * signature half of verify/:name[/:alg], for the asymmetric key types, with Vault's fields
 * (hash_algorithm, prehashed, signature_algorithm, salt_length, marshaling_algorithm,
 * key_version, batch_input), "vault:vN:<base64>" signatures and Vault's error texts. The
 * crypto is engines/transit_asym.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engines/transit_crypto.h"
#include "engines/transit_internal.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/util.h"

/* The request's signing options (Vault's getSaltLength and option parsing). */
struct sig_req {
	struct cs_transit_sigopts o;
	bool prehashed;
	bool none; /* hash_algorithm "none" */
	const char *sigalg;
};

static int sig_options(struct cs_request *req, struct sig_req *s)
{
	memset(s, 0, sizeof *s);
	const char *alg = cs_req_capture(req, "urlalgorithm");
	if (!alg || !*alg)
		alg = cs_req_str(req, "hash_algorithm", "");
	if (!*alg)
		alg = cs_req_str(req, "algorithm", "");
	if (!*alg)
		alg = "sha2-256";
	s->none = strcmp(alg, "none") == 0;
	s->o.md = s->none ? NULL : cs_transit_md_name(alg, true);
	if (!s->none && !s->o.md)
		return cs_req_error(req, CS_EINVAL, "invalid hash algorithm \"%s\"", alg);
	const char *m = cs_req_str(req, "marshaling_algorithm", "asn1");
	if (strcmp(m, "asn1") && strcmp(m, "jws"))
		return cs_req_error(req, CS_EINVAL, "invalid marshaling type \"%s\"", m);
	s->o.jws = strcmp(m, "jws") == 0;
	s->prehashed = cs_req_bool(req, "prehashed", false);
	s->sigalg = cs_req_str(req, "signature_algorithm", "");
	s->o.pkcs1v15 = strcmp(s->sigalg, "pkcs1v15") == 0;
	const char *salt = cs_req_str(req, "salt_length", "auto");
	int64_t n = 0;
	if (!strcasecmp(salt, "auto"))
		s->o.salt = CS_TRANSIT_SALT_AUTO;
	else if (!strcasecmp(salt, "hash"))
		s->o.salt = CS_TRANSIT_SALT_HASH;
	else if (tr_atoi_strict(salt, &n) || n > 1 << 20)
		return cs_req_error(req, CS_EINVAL,
				    "salt length neither 'auto', 'hash', nor an int: %s", salt);
	else if (n < CS_TRANSIT_SALT_HASH)
		return cs_req_error(req, CS_EINVAL, "salt length is invalid: %lld", (long long)n);
	else
		s->o.salt = (int)n;
	return 0;
}

/* Checks that need the key: its type supports signing, "none" is used as Vault allows. */
static int sig_key_checks(struct cs_request *req, const cJSON *pol, const struct sig_req *s,
			  const char *what)
{
	enum cs_transit_type t = tr_pol_type(pol);
	if (!cs_transit_is_asym(t))
		return cs_req_error(req, CS_EINVAL, "key type %s does not support %s",
				    cs_transit_type_name(t), what);
	if (s->none && (!s->prehashed || strcmp(s->sigalg, "pkcs1v15")))
		return cs_req_error(req, CS_EINVAL,
				    "hash_algorithm=none requires both prehashed=true and "
				    "signature_algorithm=pkcs1v15");
	if (cs_transit_is_rsa(t) && *s->sigalg && strcmp(s->sigalg, "pss") &&
	    strcmp(s->sigalg, "pkcs1v15"))
		return cs_req_error(req, CS_EINTERNAL, "unsupported rsa signature algorithm %s",
				    s->sigalg);
	return 0;
}

int tr_priv_der(const cJSON *pol, int64_t ver, uint8_t **der, size_t *len, char *err)
{
	char vs[24];
	snprintf(vs, sizeof vs, "%lld", (long long)ver);
	const cJSON *e =
	    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(pol, "keys"), vs);
	const char *b64 = tr_jstr(e, "priv");
	if (!b64) {
		snprintf(err, TR_ERRLEN, "no such key version");
		return CS_EINVAL;
	}
	*der = tr_b64_dec(b64, len, err, "");
	return *der ? 0 : CS_EINTERNAL;
}

/* The input to sign or verify: the message for ed25519, else its digest unless prehashed
 * (Vault's HashSignatureInput). *in is replaced (malloc'd) when hashed. */
static int sig_input(const cJSON *pol, const struct sig_req *s, uint8_t **in, size_t *n)
{
	if (tr_pol_type(pol) == CS_TRANSIT_ED25519 || s->prehashed || !s->o.md)
		return 0;
	uint8_t sum[64];
	size_t sumlen = 0;
	int rc = cs_transit_digest(s->o.md, *in, *n, sum, &sumlen);
	if (rc)
		return rc;
	tr_wipe_free(*in, *n);
	*in = malloc(sumlen);
	if (!*in)
		abort();
	memcpy(*in, sum, sumlen);
	*n = sumlen;
	return 0;
}

/* Vault's SignWithOptions version checks: 0, or CS_EINVAL with the message. */
static int sign_version_ok(const cJSON *pol, int64_t ver, char *err)
{
	int64_t latest = tr_jint(pol, "latest_version");
	int64_t min_enc = tr_jint(pol, "min_encryption_version");
	if (ver < 0)
		return snprintf(err, TR_ERRLEN, "requested version for signing is negative"),
		       CS_EINVAL;
	if (ver > latest)
		return snprintf(err, TR_ERRLEN,
				"requested version for signing is higher than the latest key "
				"version"),
		       CS_EINVAL;
	if (min_enc > 0 && ver < min_enc)
		return snprintf(err, TR_ERRLEN,
				"requested version for signing is less than the minimum "
				"encryption key version"),
		       CS_EINVAL;
	return 0;
}

/* The items of a sign or verify request: batch_input, or the request as one item. NULL
 * with *rc set (the request's error) when batch_input is not a non-empty list. */
static const cJSON *items_of(struct cs_request *req, bool *batch, int *rc)
{
	const cJSON *b = tr_batch_input(req, rc);
	*batch = b != NULL;
	if (*rc)
		return NULL;
	return b ? b->child : req->data;
}

/* One item's result into r: 0, or its error status with the message in err. */
typedef int (*item_fn)(void *ctx, size_t i, const cJSON *item, cJSON *r, char *err);

/* Vault's answer to sign and verify: batch_results in input order (each with its error and
 * reference), or the one result's fields, or its error as the request's. */
static int respond(struct cs_request *req, bool sign, item_fn fn, void *ctx)
{
	bool batch;
	int rc;
	const cJSON *item = items_of(req, &batch, &rc);
	if (!item)
		return rc;
	cJSON *results = cJSON_CreateArray();
	char err[TR_ERRLEN], first_err[TR_ERRLEN] = "";
	int first_rc = 0;
	for (size_t i = 0; item; item = batch ? item->next : NULL, i++) {
		cJSON *r = cJSON_CreateObject();
		err[0] = 0;
		int irc = fn(ctx, i, item, r, err);
		if (irc) { /* Vault's batch items always carry key_version / valid */
			cJSON_AddStringToObject(r, "error", err);
			if (sign)
				cJSON_AddNumberToObject(r, "key_version", 0);
			else
				cJSON_AddBoolToObject(r, "valid", false);
		}
		if (i == 0) {
			first_rc = irc;
			snprintf(first_err, sizeof first_err, "%s", err);
		}
		if (batch)
			cJSON_AddStringToObject(
			    r, "reference",
			    tr_jstr(item, "reference") ? tr_jstr(item, "reference") : "");
		cJSON_AddItemToArray(results, r);
	}
	cJSON *data;
	if (batch) {
		data = cJSON_CreateObject();
		cJSON_AddItemToObject(data, "batch_results", results);
	} else if (first_rc) {
		cJSON_Delete(results);
		return cs_req_error(req, first_rc, "%s", first_err);
	} else {
		data = cJSON_DetachItemFromArray(results, 0);
		cJSON_Delete(results);
	}
	cs_req_set_data(req, data);
	return 0;
}

/* The item's input, decoded and hashed as the key wants. */
static int item_input(const cJSON *pol, const cJSON *item, const struct sig_req *s, uint8_t **in,
		      size_t *n, char *err)
{
	const char *in64 = tr_jstr(item, "input");
	*in = NULL;
	if (!in64)
		return snprintf(err, TR_ERRLEN, "missing input"), CS_EINVAL;
	if (!(*in = tr_b64_dec(in64, n, err, "unable to decode input as base64: ")))
		return CS_EINVAL;
	int rc = sig_input(pol, s, in, n);
	if (rc)
		snprintf(err, TR_ERRLEN, "hashing the input failed");
	return rc;
}

/* A derived ed25519 key's key for one item (Vault's GetKey over the item's context); *out
 * stays NULL for a key that is not derived. */
static int item_key(const cJSON *pol, const cJSON *item, const uint8_t *der, size_t derlen,
		    uint8_t **out, size_t *outlen, char *err)
{
	*out = NULL;
	if (!tr_jbool(pol, "derived"))
		return 0;
	const char *c64 = tr_jstr(item, "context");
	size_t clen = 0;
	uint8_t *c = NULL;
	if (c64 && *c64 && !(c = tr_b64_dec(c64, &clen, err, "")))
		return snprintf(err, TR_ERRLEN, "failed to base64-decode context"), CS_EINVAL;
	int rc = CS_EINTERNAL;
	if (clen == 0)
		snprintf(
		    err, TR_ERRLEN,
		    "error deriving key: missing 'context' for key derivation; the key was "
		    "created using a derived key, which means additional, per-request "
		    "information must be included in order to perform operations with the key");
	else if ((rc = cs_transit_ed25519_derive(der, derlen, c, clen, out, outlen)))
		snprintf(err, TR_ERRLEN, "error deriving key: key derivation failed");
	tr_wipe_free(c, clen);
	return rc;
}

/* ---- sign: prepare on the loop, sign (RSA on the worker pool), answer on the loop */

struct sign_slot {
	uint8_t *in; /* the prepared input (wiped) */
	size_t n;
	uint8_t *der; /* a derived key for this item (wiped), else NULL */
	size_t derlen;
	struct cs_buf sig; /* the raw signature */
	int rc;
	char err[TR_ERRLEN];
};

struct sign_job {
	struct cs_async async;
	enum cs_transit_type type;
	struct cs_transit_sigopts o;
	uint8_t *der; /* the version's private key: wiped with the job */
	size_t derlen;
	int64_t ver;
	size_t n;
	struct sign_slot *slot;
	struct cs_request *req; /* loop thread only (sign_result) */
};

static void sign_job_free(struct sign_job *j)
{
	for (size_t i = 0; i < j->n; i++) {
		tr_wipe_free(j->slot[i].in, j->slot[i].n);
		tr_wipe_free(j->slot[i].der, j->slot[i].derlen);
		cs_buf_free(&j->slot[i].sig);
	}
	free(j->slot);
	tr_wipe_free(j->der, j->derlen);
	free(j);
}

/* Sign every prepared slot. Touches only the job (runs on a pool thread for RSA). */
static void sign_work(struct cs_async *a)
{
	struct sign_job *j = CS_CONTAINER_OF(a, struct sign_job, async);
	for (size_t i = 0; i < j->n; i++) {
		struct sign_slot *sl = &j->slot[i];
		const char *serr = NULL;
		if (sl->rc)
			continue;
		sl->rc = cs_transit_asym_sign(j->type, sl->der ? sl->der : j->der,
					      sl->der ? sl->derlen : j->derlen, &j->o, sl->in,
					      sl->n, &sl->sig, &serr);
		if (sl->rc)
			snprintf(sl->err, TR_ERRLEN, "%s",
				 serr ? serr : "signature could not be computed");
	}
}

static int sign_result(void *ctx, size_t i, const cJSON *item, cJSON *r, char *err)
{
	struct sign_job *j = ctx;
	struct sign_slot *sl = &j->slot[i];
	(void)item;
	if (sl->rc) {
		snprintf(err, TR_ERRLEN, "%s", sl->err);
		return sl->rc;
	}
	char *enc = j->o.jws ? cs_b64url_encode((uint8_t *)sl->sig.data, sl->sig.len)
			     : cs_b64_encode((uint8_t *)sl->sig.data, sl->sig.len);
	size_t len = strlen(enc) + 32;
	char *sig = malloc(len);
	if (!sig)
		abort();
	snprintf(sig, len, "vault:v%lld:%s", (long long)j->ver, enc);
	cJSON_AddStringToObject(r, "signature", sig);
	cJSON_AddNumberToObject(r, "key_version", (double)j->ver);
	if (sl->der) { /* Vault returns a derived key's public key (single: public_key) */
		char *pub = cs_transit_asym_public(j->type, sl->der, sl->derlen);
		cJSON_AddStringToObject(
		    r,
		    cJSON_IsArray(cs_req_get(j->req, "batch_input")) ? "publickey" : "public_key",
		    pub ? pub : "");
		free(pub);
	}
	free(sig);
	free(enc);
	return 0;
}

static int sign_resume(struct cs_request *req, struct cs_async *a, int status)
{
	struct sign_job *j = CS_CONTAINER_OF(a, struct sign_job, async);
	int rc = status ? status : respond(req, true, sign_result, j);
	sign_job_free(j);
	return rc;
}

/* The job for a request: each item's input prepared (or its error), the key loaded. */
static int sign_prepare(struct cs_request *req, const cJSON *pol, const struct sig_req *s,
			struct sign_job **out)
{
	bool batch;
	int rc;
	const cJSON *item = items_of(req, &batch, &rc);
	if (!item)
		return rc;
	struct sign_job *j = calloc(1, sizeof *j);
	if (!j)
		abort();
	j->type = tr_pol_type(pol);
	j->req = req;
	j->o = s->o;
	j->ver = cs_req_int(req, "key_version", 0);
	if (j->ver == 0)
		j->ver = tr_jint(pol, "latest_version");
	j->n = batch ? (size_t)cJSON_GetArraySize(cs_req_get(req, "batch_input")) : 1;
	j->slot = calloc(j->n, sizeof *j->slot);
	if (!j->slot)
		abort();
	char verr[TR_ERRLEN] = "";
	int vrc = sign_version_ok(pol, j->ver, verr);
	if (!vrc)
		vrc = tr_priv_der(pol, j->ver, &j->der, &j->derlen, verr);
	for (size_t i = 0; item && i < j->n; item = batch ? item->next : NULL, i++) {
		struct sign_slot *sl = &j->slot[i];
		sl->sig = (struct cs_buf)CS_BUF_INIT;
		sl->rc = item_input(pol, item, s, &sl->in, &sl->n, sl->err);
		if (!sl->rc && vrc) {
			sl->rc = vrc;
			snprintf(sl->err, TR_ERRLEN, "%s", verr);
		}
		if (!sl->rc)
			sl->rc =
			    item_key(pol, item, j->der, j->derlen, &sl->der, &sl->derlen, sl->err);
	}
	*out = j;
	return 0;
}

int tr_sign_op(struct cs_request *req)
{
	struct sig_req s;
	int rc = sig_options(req, &s);
	if (rc)
		return rc;
	cJSON *pol = NULL;
	rc = tr_pol_load(req, cs_req_capture(req, "name"), &pol);
	if (rc)
		return rc == CS_ENOTFOUND ? cs_req_error(req, CS_EINVAL, "signing key not found")
					  : rc;
	struct sign_job *j = NULL;
	rc = sig_key_checks(req, pol, &s, "signing");
	if (!rc)
		rc = sign_prepare(req, pol, &s, &j);
	cs_json_delete_wiped(pol);
	if (rc)
		return rc;
	/* An RSA signature costs milliseconds (RSA-4096 many): off the loop. The others are
	 * cheaper than the hop to a pool thread. */
	if (cs_transit_is_rsa(j->type)) {
		j->async.work = sign_work;
		j->async.resume = sign_resume;
		return cs_req_defer(req, &j->async);
	}
	sign_work(&j->async);
	rc = respond(req, true, sign_result, j);
	sign_job_free(j);
	return rc;
}

/* "vault:vN:<sig>" → version and raw signature, with Vault's checks and messages. */
static int parse_sig(const cJSON *pol, const char *sig, bool jws, int64_t *ver, uint8_t **raw,
		     size_t *n, char *err)
{
	if (strncmp(sig, "vault:v", 7) != 0)
		return snprintf(err, TR_ERRLEN, "invalid signature: no prefix"), CS_EINVAL;
	const char *colon = strchr(sig + 7, ':');
	if (!colon)
		return snprintf(err, TR_ERRLEN, "invalid signature: wrong number of fields"),
		       CS_EINVAL;
	char vs[24];
	size_t vl = (size_t)(colon - (sig + 7));
	if (vl == 0 || vl >= sizeof vs)
		return snprintf(err, TR_ERRLEN,
				"invalid signature: version number could not be decoded"),
		       CS_EINVAL;
	memcpy(vs, sig + 7, vl);
	vs[vl] = 0;
	if (tr_atoi_strict(vs, ver))
		return snprintf(err, TR_ERRLEN,
				"invalid signature: version number could not be decoded"),
		       CS_EINVAL;
	if (*ver > tr_jint(pol, "latest_version"))
		return snprintf(err, TR_ERRLEN, "invalid signature: version is too new"), CS_EINVAL;
	int64_t min_dec = tr_jint(pol, "min_decryption_version");
	if (min_dec > 0 && *ver < min_dec)
		return snprintf(
			   err, TR_ERRLEN,
			   "ciphertext or signature version is disallowed by policy (too old)"),
		       CS_EINVAL;
	char derr[TR_ERRLEN];
	*raw = jws ? cs_b64url_decode(colon + 1, strlen(colon + 1), n)
		   : tr_b64_dec(colon + 1, n, derr, "");
	if (!*raw)
		return snprintf(err, TR_ERRLEN, "invalid base64 signature value"), CS_EINVAL;
	return 0;
}

static int verify_item(const cJSON *pol, const cJSON *item, const struct sig_req *s, cJSON *r,
		       char *err)
{
	uint8_t *in = NULL, *raw = NULL, *der = NULL;
	size_t n = 0, rawlen = 0, derlen = 0;
	int64_t ver = 0;
	bool valid = false;
	const char *sig = tr_jstr(item, "signature");
	int rc = item_input(pol, item, s, &in, &n, err);
	if (!rc && !sig)
		rc = (snprintf(err, TR_ERRLEN, "missing signature"), CS_EINVAL);
	if (!rc)
		rc = parse_sig(pol, sig, s->o.jws, &ver, &raw, &rawlen, err);
	if (!rc)
		rc = tr_priv_der(pol, ver, &der, &derlen, err);
	uint8_t *dk = NULL;
	size_t dklen = 0;
	if (!rc && !(rc = item_key(pol, item, der, derlen, &dk, &dklen, err)) && dk) {
		tr_wipe_free(der, derlen);
		der = dk;
		derlen = dklen;
	}
	if (!rc) {
		const char *verr = NULL;
		rc = cs_transit_asym_verify(tr_pol_type(pol), der, derlen, &s->o, in, n, raw,
					    rawlen, &valid, &verr);
		if (rc)
			snprintf(err, TR_ERRLEN, "%s", verr ? verr : "verification failed");
	}
	tr_wipe_free(in, n);
	tr_wipe_free(der, derlen);
	free(raw);
	if (!rc)
		cJSON_AddBoolToObject(r, "valid", valid);
	return rc;
}

struct verify_ctx {
	const cJSON *pol;
	const struct sig_req *s;
};

static int verify_result(void *ctx, size_t i, const cJSON *item, cJSON *r, char *err)
{
	const struct verify_ctx *v = ctx;
	(void)i;
	return verify_item(v->pol, item, v->s, r, err);
}

int tr_verify_sig(struct cs_request *req, cJSON *pol)
{
	struct sig_req s;
	int rc = sig_options(req, &s);
	if (!rc)
		rc = sig_key_checks(req, pol, &s, "verification");
	if (!rc)
		rc = respond(req, false, verify_result, &(struct verify_ctx){.pol = pol, .s = &s});
	return rc;
}
