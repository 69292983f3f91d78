/*
 * The transit engine's operations (engines/transit_internal.h): encrypt, decrypt, rewrap,
 * datakey, random, hash, hmac and verify, with Vault's batch semantics, error texts and
 * status codes. sys/tools/random and sys/tools/hash run the same handlers.
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

/* One item's inputs, from a batch_input object or from the request's own fields. */
struct tr_item {
	const char *plaintext, *ciphertext, *context, *aad, *reference;
	int64_t key_version;
	uint8_t *ctx; /* decoded context (malloc'd) */
	size_t ctxlen;
	char err[TR_ERRLEN]; /* non-empty: the item failed */
	bool internal;       /* the failure is a 500 */
};

static const char *item_str(const cJSON *o, const char *name, const char *def)
{
	const char *s = tr_jstr(o, name);
	return s ? s : def;
}

static int64_t item_int(const cJSON *o, const char *name, int64_t def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	if (cJSON_IsNumber(v))
		return (int64_t)v->valuedouble;
	if (cJSON_IsString(v))
		return strtoll(v->valuestring, NULL, 10);
	return def;
}

static void items_free(struct tr_item *it, size_t n)
{
	for (size_t i = 0; it && i < n; i++)
		tr_wipe_free(it[i].ctx, it[i].ctxlen);
	free(it);
}

/* Fill items from batch_input or the single request; *n = count. Vault's checks on the
 * list itself (empty, context in all or none) are whole-request errors. */
static int items_read(struct cs_request *req, const char *single, const char *missing,
		      struct tr_item **out, size_t *n, bool *batch)
{
	int rc;
	const cJSON *b = tr_batch_input(req, &rc);
	*batch = b != NULL;
	*out = NULL;
	*n = 0;
	if (rc)
		return rc;
	if (*batch) {
		*n = (size_t)cJSON_GetArraySize(b);
	} else {
		if (!cs_req_has(req, single))
			return cs_req_error(req, CS_EINVAL, "%s", missing);
		*n = 1;
	}
	struct tr_item *it = calloc(*n, sizeof *it);
	if (!it)
		abort();
	const cJSON *src = *batch ? b->child : req->data;
	for (size_t i = 0; i < *n; i++, src = *batch ? src->next : NULL) {
		if (*batch && !cJSON_IsObject(src)) {
			free(it);
			return cs_req_error(req, CS_EINVAL,
					    "failed to parse batch input: item %zu "
					    "is not an object",
					    i);
		}
		it[i].plaintext = item_str(src, "plaintext", NULL);
		it[i].ciphertext = item_str(src, "ciphertext", "");
		it[i].context = item_str(src, "context", "");
		it[i].aad = item_str(src, "associated_data", "");
		it[i].reference = item_str(src, "reference", "");
		it[i].key_version = item_int(src, "key_version", 0);
	}
	bool ctx_set = it[0].context[0] != 0;
	for (size_t i = 0; i < *n; i++) {
		if ((it[i].context[0] != 0) != ctx_set) {
			items_free(it, i); /* contexts decoded so far are wiped */
			return cs_req_error(req, CS_EINVAL,
					    "context should be set either in all the "
					    "request blocks or in none");
		}
		if (ctx_set)
			it[i].ctx = tr_b64_dec(it[i].context, &it[i].ctxlen, it[i].err, "");
	}
	*out = it;
	return 0;
}

static void item_fail(struct tr_item *it, int rc, const char *msg)
{
	if (msg != it->err)
		snprintf(it->err, TR_ERRLEN, "%s", msg);
	it->internal = rc == CS_EINTERNAL;
}

/* RSA keys encrypt with the version's public key (RSA-OAEP), ignoring context and
 * associated_data as Vault does; the ciphertext format is the same "vault:vN:". */
static int rsa_encrypt_raw(const cJSON *pol, int64_t ver, const uint8_t *pt, size_t ptlen,
			   char **ct, char *err)
{
	uint8_t *der = NULL;
	size_t derlen = 0;
	int rc = tr_priv_der(pol, ver, &der, &derlen, err);
	struct cs_buf out = CS_BUF_INIT;
	if (!rc && (rc = cs_transit_rsa_encrypt(der, derlen, pt, ptlen, &out)))
		snprintf(
		    err, TR_ERRLEN,
		    "failed to RSA encrypt the plaintext: crypto/rsa: message too long for RSA "
		    "key size");
	if (!rc)
		*ct = cs_transit_format((uint32_t)ver, (uint8_t *)out.data, out.len);
	tr_wipe_free(der, derlen);
	cs_buf_free(&out);
	return rc;
}

static int rsa_decrypt_raw(const cJSON *pol, uint32_t ver, const uint8_t *raw, size_t rawlen,
			   struct cs_buf *out, char *err)
{
	uint8_t *der = NULL;
	size_t derlen = 0;
	int rc = tr_priv_der(pol, ver, &der, &derlen, err);
	if (!rc && (rc = cs_transit_rsa_decrypt(der, derlen, raw, rawlen, out)))
		snprintf(err, TR_ERRLEN,
			 "failed to RSA decrypt the ciphertext: crypto/rsa: decryption error");
	tr_wipe_free(der, derlen);
	return rc;
}

/* Encrypt pt under the policy (Vault's EncryptWithFactory): *ct malloc'd "vault:vN:...". */
static int encrypt_raw(const cJSON *pol, int64_t ver, const uint8_t *ctx, size_t ctxlen,
		       const char *aad_b64, const uint8_t *pt, size_t ptlen, char **ct,
		       int64_t *used, char *err)
{
	enum cs_transit_type t = tr_pol_type(pol);
	int64_t latest = tr_jint(pol, "latest_version");
	*ct = NULL;
	if (!cs_transit_is_aead(t) && !cs_transit_is_rsa(t)) {
		snprintf(err, TR_ERRLEN, "message encryption not supported for key type %s",
			 cs_transit_type_name(t));
		return CS_EINVAL;
	}
	if (ver == 0)
		ver = latest;
	else if (ver < 0)
		return snprintf(err, TR_ERRLEN, "requested version for encryption is negative"),
		       CS_EINVAL;
	else if (ver > latest)
		return snprintf(err, TR_ERRLEN,
				"requested version for encryption is higher than "
				"the latest key version"),
		       CS_EINVAL;
	else if (ver < tr_jint(pol, "min_encryption_version"))
		return snprintf(err, TR_ERRLEN,
				"requested version for encryption is less than "
				"the minimum encryption key version"),
		       CS_EINVAL;
	*used = ver;
	if (cs_transit_is_rsa(t))
		return rsa_encrypt_raw(pol, ver, pt, ptlen, ct, err);
	bool convergent = tr_jbool(pol, "convergent");
	size_t enc = cs_transit_key_len(t), hm = convergent ? 32 : 0;
	uint8_t key[TR_MAX_KEY], nonce[32];
	size_t keylen = 0, aadlen = 0;
	uint8_t *aad = NULL;
	int rc = tr_pol_key(pol, ver, ctx, ctxlen, enc + hm, key, &keylen, err);
	if (!rc && keylen < enc + hm) {
		snprintf(err, TR_ERRLEN, "could not derive key, length too small");
		rc = CS_EINTERNAL;
	}
	if (!rc && *aad_b64) {
		if (!cs_transit_is_aead(t)) /* unreachable today: kept for the asymmetric types */
			rc = CS_EINVAL;
		else if (!(aad = tr_b64_dec(aad_b64, &aadlen, err, "")))
			rc = CS_EINTERNAL; /* Vault: a factory error is internal */
	}
	if (!rc && convergent) /* the nonce is a MAC of the plaintext: same input, same output */
		rc = cs_transit_hmac("SHA256", key + enc, 32, pt, ptlen, nonce, &(size_t){0});
	if (!rc) {
		struct cs_buf out = CS_BUF_INIT;
		rc = cs_transit_seal(t, key, convergent ? nonce : NULL, aad, aadlen, pt, ptlen,
				     &out);
		if (!rc)
			*ct = cs_transit_format((uint32_t)ver, (uint8_t *)out.data, out.len);
		else
			snprintf(err, TR_ERRLEN, "encryption failed");
		cs_buf_free(&out); /* ciphertext only */
	}
	cs_zero(key, sizeof key);
	cs_zero(nonce, sizeof nonce);
	tr_wipe_free(aad, aadlen);
	*used = ver;
	return rc;
}

/* Decrypt "vault:vN:..." (Vault's DecryptWithFactory) into out. */
static int decrypt_raw(const cJSON *pol, const char *value, const uint8_t *ctx, size_t ctxlen,
		       const char *aad_b64, struct cs_buf *out, char *err)
{
	enum cs_transit_type t = tr_pol_type(pol);
	if (!cs_transit_is_aead(t) && !cs_transit_is_rsa(t)) {
		snprintf(err, TR_ERRLEN, "message decryption not supported for key type %s",
			 cs_transit_type_name(t));
		return CS_EINVAL;
	}
	uint32_t ver = 0;
	uint8_t *raw = NULL;
	size_t rawlen = 0;
	const char *perr = NULL;
	int prc = cs_transit_parse(value, &ver, &raw, &rawlen, &perr);
	if (prc && ver == 0) {
		snprintf(err, TR_ERRLEN, "invalid ciphertext: %s", perr);
		return CS_EINVAL;
	}
	int rc = CS_EINVAL;
	if (ver > tr_jint(pol, "latest_version"))
		snprintf(err, TR_ERRLEN, "invalid ciphertext: version is too new");
	else if (tr_jint(pol, "min_decryption_version") > 0 &&
		 ver < tr_jint(pol, "min_decryption_version"))
		snprintf(err, TR_ERRLEN,
			 "ciphertext or signature version is disallowed by policy (too old)");
	else if (prc)
		snprintf(err, TR_ERRLEN, "invalid ciphertext: %s", perr);
	else
		rc = 0;
	if (cs_transit_is_rsa(t)) {
		if (!rc)
			rc = rsa_decrypt_raw(pol, ver, raw, rawlen, out, err);
		free(raw);
		return rc;
	}
	size_t enc = cs_transit_key_len(t), keylen = 0, aadlen = 0;
	uint8_t key[TR_MAX_KEY];
	uint8_t *aad = NULL;
	if (!rc)
		rc = tr_pol_key(pol, ver, ctx, ctxlen, enc, key, &keylen, err);
	if (!rc && keylen != enc) {
		snprintf(err, TR_ERRLEN, "could not derive enc key, length not correct");
		rc = CS_EINTERNAL;
	}
	if (!rc && *aad_b64 && !(aad = tr_b64_dec(aad_b64, &aadlen, err, "")))
		rc = CS_EINTERNAL;
	if (!rc) {
		const char *oerr = NULL;
		rc = cs_transit_open(t, key, raw, rawlen, aad, aadlen, out, &oerr);
		if (rc)
			snprintf(err, TR_ERRLEN, "%s", oerr ? oerr : "decryption failed");
	}
	cs_zero(key, sizeof key);
	tr_wipe_free(aad, aadlen);
	free(raw);
	return rc;
}

/* The answer of a batch (or single) operation, as Vault's batchRequestResponse. For a
 * single item the one result's fields become the data, its error the request's error. */
/* The key named by the route, or Vault's 400 when there is none. */
static int load_key(struct cs_request *req, cJSON **pol)
{
	int rc = tr_pol_load(req, cs_req_capture(req, "name"), pol);
	return rc == CS_ENOTFOUND ? cs_req_error(req, CS_EINVAL, "encryption key not found") : rc;
}

/* The items of a decrypt-like request (one value or batch_input) and its existing key. */
static int items_and_key(struct cs_request *req, const char *single, const char *missing,
			 struct tr_item **it, size_t *n, bool *batch, cJSON **pol)
{
	int rc = items_read(req, single, missing, it, n, batch);
	if (rc)
		return rc;
	rc = load_key(req, pol);
	if (rc)
		items_free(*it, *n);
	return rc;
}

static int items_respond(struct cs_request *req, bool batch, struct tr_item *it, size_t n,
			 cJSON *results)
{
	bool ok_any = false, user = false, internal = false;
	for (size_t i = 0; i < n; i++) {
		if (!it[i].err[0])
			ok_any = true;
		else if (it[i].internal)
			internal = true;
		else
			user = true;
	}
	if (!batch) {
		if (it[0].err[0]) {
			cs_json_delete_wiped(results);
			return cs_req_error(req, it[0].internal ? CS_EINTERNAL : CS_EINVAL, "%s",
					    it[0].err);
		}
		cJSON *one = cJSON_DetachItemFromArray(results, 0);
		cs_json_delete_wiped(results);
		cJSON_DeleteItemFromObjectCaseSensitive(one, "reference");
		cs_req_set_data(req, one);
		return 0;
	}
	cJSON *data = cJSON_CreateObject();
	cJSON_AddItemToObject(data, "batch_results", results);
	cs_req_set_data(req, data);
	if (user || internal) {
		int code = user ? 400 : 500;
		if (ok_any && cs_req_has(req, "partial_failure_response_code")) {
			int64_t c = cs_req_int(req, "partial_failure_response_code", 0);
			if (c < 1 || c > 599)
				cs_req_warn(req,
					    "invalid HTTP response code override from "
					    "partial_failure_response_code, reverting to %d",
					    code);
			else
				code = (int)c;
		}
		req->status = code;
	}
	return 0;
}

/* A ciphertext made for one item (NULL when the item failed) into its result; frees it. */
static void add_ciphertext(cJSON *r, char *ct, int64_t used)
{
	if (!ct)
		return;
	cJSON_AddStringToObject(r, "ciphertext", ct);
	cJSON_AddNumberToObject(r, "key_version", (double)used);
	free(ct);
}

/* Answer with the items' results, then free the items and the key. */
static int items_finish(struct cs_request *req, cJSON *pol, bool batch, struct tr_item *it,
			size_t n, cJSON *results)
{
	cs_json_delete_wiped(pol);
	int rc = items_respond(req, batch, it, n, results);
	items_free(it, n);
	return rc;
}

static cJSON *result_new(const struct tr_item *it)
{
	cJSON *r = cJSON_CreateObject();
	if (it->err[0])
		cJSON_AddStringToObject(r, "error", it->err);
	cJSON_AddStringToObject(r, "reference", it->reference);
	return r;
}

/* encrypt/:name exists when the key does: a write to a missing key is a create (the ACL
 * wants "create"), and the handler then makes the key, as Vault's upsert. */
int tr_key_exists(struct cs_request *req, bool *exists)
{
	/* Every encryption asks (upsert: create or update capability); the handler loads
	 * the key right after, so only ask storage whether it is there. */
	const char *name = cs_req_capture(req, "name");
	*exists = false;
	if (!tr_name_ok(name))
		return 0;
	char key[160];
	snprintf(key, sizeof key, "policy/%s", name);
	return cs_view_exists(req, key, exists);
}

int tr_encrypt_op(struct cs_request *req)
{
	const char *name = cs_req_capture(req, "name");
	struct tr_item *it;
	size_t n;
	bool batch;
	int rc = items_read(req, "plaintext", "missing plaintext to encrypt", &it, &n, &batch);
	if (rc)
		return rc;
	bool ctx_set = it[0].context[0] != 0;
	cJSON *pol = NULL;
	rc = tr_pol_load(req, name, &pol);
	if (rc == CS_ENOTFOUND && req->op == CS_OP_CREATE && tr_name_ok(name)) {
		bool convergent = cs_req_bool(req, "convergent_encryption", false);
		const char *tname = cs_req_str(req, "type", "aes256-gcm96");
		int t = cs_transit_type_parse(tname);
		if (convergent && !ctx_set)
			rc = cs_req_error(req, CS_EINVAL,
					  "convergent encryption requires derivation "
					  "to be enabled, so context is required");
		else if (t < 0 || !cs_transit_is_aead((enum cs_transit_type)t))
			rc = cs_req_error(req, CS_EINVAL, "unknown key type %s", tname);
		else {
			pol = tr_pol_new((enum cs_transit_type)t, ctx_set, convergent, 0, NULL, 0);
			rc = tr_pol_save(req, name, pol);
		}
	} else if (rc == CS_ENOTFOUND) {
		rc = cs_req_error(req, CS_EINVAL, "encryption key not found");
	} else if (!rc && req->op == CS_OP_CREATE) {
		cs_req_warn(req, "Attempted creation of the key during the encrypt operation, but "
				 "it was created beforehand");
	}
	if (rc) {
		cs_json_delete_wiped(pol);
		items_free(it, n);
		return rc;
	}
	cJSON *results = cJSON_CreateArray();
	for (size_t i = 0; i < n; i++) {
		char *ct = NULL;
		int64_t used = 0;
		size_t ptlen = 0;
		uint8_t *pt = NULL;
		if (!it[i].err[0]) {
			if (!it[i].plaintext)
				it[i].plaintext = "";
			pt = tr_b64_dec(it[i].plaintext, &ptlen, it[i].err, "");
		}
		if (!it[i].err[0]) {
			rc = encrypt_raw(pol, it[i].key_version, it[i].ctx, it[i].ctxlen, it[i].aad,
					 pt, ptlen, &ct, &used, it[i].err);
			if (rc)
				item_fail(&it[i], rc, it[i].err);
		}
		tr_wipe_free(pt, ptlen);
		cJSON *r = result_new(&it[i]);
		add_ciphertext(r, ct, used);
		cJSON_AddItemToArray(results, r);
	}
	return items_finish(req, pol, batch, it, n, results);
}

int tr_decrypt_op(struct cs_request *req)
{
	struct tr_item *it;
	size_t n;
	bool batch;
	cJSON *pol = NULL;
	int rc = items_and_key(req, "ciphertext", "missing ciphertext to decrypt", &it, &n, &batch,
			       &pol);
	if (rc)
		return rc;
	cJSON *results = cJSON_CreateArray();
	for (size_t i = 0; i < n; i++) {
		struct cs_buf pt = CS_BUF_INIT;
		if (!it[i].err[0] && !it[i].ciphertext[0])
			item_fail(&it[i], CS_EINVAL, "missing ciphertext to decrypt");
		if (!it[i].err[0]) {
			rc = decrypt_raw(pol, it[i].ciphertext, it[i].ctx, it[i].ctxlen, it[i].aad,
					 &pt, it[i].err);
			if (rc)
				item_fail(&it[i], rc, it[i].err);
		}
		cJSON *r = result_new(&it[i]);
		char *b64 = cs_b64_encode((uint8_t *)pt.data, pt.len);
		cJSON_AddStringToObject(r, "plaintext", it[i].err[0] ? "" : b64);
		cs_zero(b64, strlen(b64));
		free(b64);
		cs_buf_free_secure(&pt);
		cJSON_AddItemToArray(results, r);
	}
	return items_finish(req, pol, batch, it, n, results);
}

int tr_rewrap_op(struct cs_request *req)
{
	struct tr_item *it;
	size_t n;
	bool batch;
	cJSON *pol = NULL;
	int rc = items_and_key(req, "ciphertext", "missing ciphertext to decrypt", &it, &n, &batch,
			       &pol);
	if (rc)
		return rc;
	/* A batch item without its own key_version takes the request's (Vault). */
	int64_t top_ver = cs_req_int(req, "key_version", 0);
	cJSON *results = cJSON_CreateArray();
	for (size_t i = 0; i < n; i++) {
		struct cs_buf pt = CS_BUF_INIT;
		char *ct = NULL;
		int64_t used = 0;
		if (!it[i].err[0] && !it[i].ciphertext[0])
			item_fail(&it[i], CS_EINVAL, "missing ciphertext to decrypt");
		/* Vault's rewrap takes no associated_data: neither side uses it. */
		if (!it[i].err[0] && (rc = decrypt_raw(pol, it[i].ciphertext, it[i].ctx,
						       it[i].ctxlen, "", &pt, it[i].err)))
			item_fail(&it[i], rc, it[i].err);
		if (!it[i].err[0] &&
		    (rc = encrypt_raw(pol, it[i].key_version ? it[i].key_version : top_ver,
				      it[i].ctx, it[i].ctxlen, "", (uint8_t *)pt.data, pt.len, &ct,
				      &used, it[i].err)))
			item_fail(&it[i], rc, it[i].err);
		cs_buf_free_secure(&pt);
		cJSON *r = result_new(&it[i]);
		add_ciphertext(r, ct, used);
		cJSON_AddItemToArray(results, r);
	}
	return items_finish(req, pol, batch, it, n, results);
}

int tr_datakey_op(struct cs_request *req)
{
	const char *kind = cs_req_capture(req, "plaintext");
	bool plain = strcmp(kind, "plaintext") == 0;
	if (!plain && strcmp(kind, "wrapped") != 0)
		return cs_req_error(req, CS_EINVAL,
				    "Invalid path, must be 'plaintext' or 'wrapped'");
	char err[TR_ERRLEN] = "";
	size_t ctxlen = 0;
	uint8_t *ctx = NULL;
	const char *c = cs_req_str(req, "context", "");
	if (*c && !(ctx = tr_b64_dec(c, &ctxlen, err, "")))
		return cs_req_error(req, CS_EINVAL, "failed to base64-decode context");
	cJSON *pol = NULL;
	int rc = load_key(req, &pol);
	if (rc) {
		tr_wipe_free(ctx, ctxlen);
		return rc;
	}
	int64_t bits = cs_req_int(req, "bits", 256);
	uint8_t dk[64];
	char *ct = NULL;
	int64_t used = 0;
	if (bits != 128 && bits != 256 && bits != 512) {
		rc = cs_req_error(req, CS_EINVAL, "invalid bit length");
	} else {
		cs_random(dk, (size_t)bits / 8);
		rc = encrypt_raw(pol, cs_req_int(req, "key_version", 0), ctx, ctxlen,
				 cs_req_str(req, "associated_data", ""), dk, (size_t)bits / 8, &ct,
				 &used, err);
		if (rc)
			rc = cs_req_error(req, rc, "%s", err);
	}
	if (!rc) {
		cJSON *data = cJSON_CreateObject();
		cJSON_AddStringToObject(data, "ciphertext", ct);
		cJSON_AddNumberToObject(data, "key_version", (double)used);
		if (plain) {
			char *b64 = cs_b64_encode(dk, (size_t)bits / 8);
			cJSON_AddStringToObject(data, "plaintext", b64);
			cs_zero(b64, strlen(b64));
			free(b64);
		}
		cs_req_set_data(req, data);
	}
	free(ct);
	cs_zero(dk, sizeof dk);
	tr_wipe_free(ctx, ctxlen);
	cs_json_delete_wiped(pol);
	return rc;
}

/* ------------------------------------------------------------------ random, hash */

static bool random_source_ok(const char *s)
{
	return strcmp(s, "platform") == 0 || strcmp(s, "seal") == 0 || strcmp(s, "all") == 0;
}

int tr_random_op(struct cs_request *req)
{
	const char *src = cs_req_capture(req, "source");
	const char *url = cs_req_capture(req, "urlbytes");
	const char *source = "platform";
	int64_t bytes = cs_req_int(req, "bytes", 32);
	/* As Vault: "random/X" is a source when X names one, else a byte count. */
	if (src && !url && random_source_ok(src))
		source = src;
	else if (src && !url)
		url = src;
	else if (src)
		source = src;
	if (url && tr_atoi_strict(url, &bytes))
		return cs_req_error(
		    req, CS_EINVAL,
		    "error parsing url-set byte count: strconv.Atoi: parsing \"%s\": "
		    "invalid syntax",
		    url);
	const char *format = cs_req_str(req, "format", "base64");
	if (bytes < 1)
		return cs_req_error(req, CS_EINVAL, "'bytes' cannot be less than 1");
	if (bytes > TR_RANDOM_MAX)
		return cs_req_error(req, CS_EINVAL, "'bytes' should be less than %d",
				    TR_RANDOM_MAX);
	if (strcmp(format, "hex") && strcmp(format, "base64"))
		return cs_req_error(
		    req, CS_EINVAL,
		    "unsupported encoding format \"%s\"; must be \"hex\" or \"base64\"", format);
	if (!random_source_ok(source))
		return cs_req_error(req, CS_EINVAL,
				    "unsupported entropy source \"%s\"; must be \"platform\" or "
				    "\"seal\", or \"all\"",
				    source);
	if (strcmp(source, "seal") == 0)
		cs_req_warn(req, "no seal/entropy augmentation available, using platform entropy "
				 "source");
	uint8_t *r = malloc((size_t)bytes);
	if (!r)
		abort();
	cs_random(r, (size_t)bytes);
	char *s;
	if (strcmp(format, "hex") == 0) {
		s = malloc((size_t)bytes * 2 + 1);
		if (!s)
			abort();
		cs_hex_encode(r, (size_t)bytes, s);
	} else {
		s = cs_b64_encode(r, (size_t)bytes);
	}
	cJSON *data = cJSON_CreateObject();
	cJSON_AddStringToObject(data, "random_bytes", s);
	cs_req_set_data(req, data);
	tr_wipe_free(r, (size_t)bytes);
	cs_zero(s, strlen(s));
	free(s);
	return 0;
}

static const char *url_alg(struct cs_request *req, const char *field, const char *def)
{
	const char *a = cs_req_capture(req, "urlalgorithm");
	return a ? a : cs_req_str(req, field, def);
}

int tr_hash_op(struct cs_request *req)
{
	if (!cs_req_has(req, "input"))
		return cs_req_error(req, CS_EINVAL, "input missing");
	char err[TR_ERRLEN];
	size_t n = 0;
	uint8_t *in =
	    tr_b64_dec(cs_req_str(req, "input", ""), &n, err, "unable to decode input as base64: ");
	if (!in)
		return cs_req_error(req, CS_EINVAL, "%s", err);
	const char *format = cs_req_str(req, "format", "hex");
	const char *alg = url_alg(req, "algorithm", "sha2-256");
	const char *md = cs_transit_md_name(alg, false);
	int rc = 0;
	if (strcmp(format, "hex") && strcmp(format, "base64"))
		rc = cs_req_error(req, CS_EINVAL,
				  "unsupported encoding format %s; must be \"hex\" or \"base64\"",
				  format);
	else if (!md)
		rc = cs_req_error(req, CS_EINVAL, "unsupported algorithm %s", alg);
	uint8_t sum[64];
	size_t sumlen = 0;
	if (!rc)
		rc = cs_transit_digest(md, in, n, sum, &sumlen);
	tr_wipe_free(in, n);
	if (rc)
		return rc;
	char hex[129], *s = NULL;
	if (strcmp(format, "hex") == 0)
		cs_hex_encode(sum, sumlen, hex);
	else
		s = cs_b64_encode(sum, sumlen);
	cJSON *data = cJSON_CreateObject();
	cJSON_AddStringToObject(data, "sum", s ? s : hex);
	free(s);
	cs_req_set_data(req, data);
	return 0;
}

/* ------------------------------------------------------------------ hmac, verify */

/* Vault's Policy.HMACKey. */
static int hmac_key(const cJSON *pol, int64_t ver, uint8_t *key, size_t *keylen, char *err)
{
	if (ver < 0)
		return snprintf(err, TR_ERRLEN, "key version does not exist (cannot be negative)"),
		       CS_EINVAL;
	if (ver > tr_jint(pol, "latest_version"))
		return snprintf(err, TR_ERRLEN,
				"key version does not exist; latest key version is %lld",
				(long long)tr_jint(pol, "latest_version")),
		       CS_EINVAL;
	return tr_entry_bytes(pol, ver, tr_pol_type(pol) == CS_TRANSIT_HMAC ? "key" : "hmac_key",
			      key, keylen, err);
}

int tr_hmac_op(struct cs_request *req)
{
	cJSON *pol = NULL;
	int rc = load_key(req, &pol);
	if (rc)
		return rc;
	int64_t ver = cs_req_int(req, "key_version", 0);
	char err[TR_ERRLEN];
	uint8_t key[TR_MAX_KEY];
	size_t keylen = 0;
	const char *alg = url_alg(req, "algorithm", "sha2-256");
	const char *md = cs_transit_md_name(alg, true);
	int64_t min_enc = tr_jint(pol, "min_encryption_version");
	if (ver == 0)
		ver = tr_jint(pol, "latest_version");
	else if (ver != tr_jint(pol, "latest_version") && min_enc > 0 && ver < min_enc) {
		rc =
		    cs_req_error(req, CS_EINVAL,
				 "cannot generate HMAC: version is too old (disallowed by policy)");
		goto out;
	}
	if ((rc = hmac_key(pol, ver, key, &keylen, err))) {
		rc = cs_req_error(req, CS_EINVAL, "%s", err);
		goto out;
	}
	if (!md) {
		rc = cs_req_error(req, CS_EINVAL, "unsupported algorithm \"%s\"", alg);
		goto out;
	}
	const cJSON *batch = tr_batch_input(req, &rc);
	if (rc)
		goto out;
	if (!batch && !cs_req_has(req, "input")) {
		rc = cs_req_error(req, CS_EINVAL, "missing input for HMAC");
		goto out;
	}
	cJSON *results = cJSON_CreateArray();
	const cJSON *item = batch ? batch->child : req->data;
	char first_err[TR_ERRLEN] = "";
	for (; item; item = batch ? item->next : NULL) {
		cJSON *r = cJSON_CreateObject();
		const char *in64 = tr_jstr(item, "input");
		size_t n = 0;
		uint8_t *in = NULL;
		err[0] = 0;
		if (!in64)
			snprintf(err, TR_ERRLEN, "missing input for HMAC");
		else
			in = tr_b64_dec(in64, &n, err, "unable to decode input as base64: ");
		if (in) {
			uint8_t mac[64];
			size_t maclen = 0;
			if (cs_transit_hmac(md, key, keylen, in, n, mac, &maclen) == 0) {
				char *s = cs_transit_format((uint32_t)ver, mac, maclen);
				cJSON_AddStringToObject(r, "hmac", s);
				free(s);
			} else {
				snprintf(err, TR_ERRLEN, "HMAC computation failed");
			}
			tr_wipe_free(in, n);
		}
		if (err[0]) {
			cJSON_AddStringToObject(r, "error", err);
			if (!first_err[0])
				snprintf(first_err, sizeof first_err, "%s", err);
		}
		if (batch)
			cJSON_AddStringToObject(r, "reference", item_str(item, "reference", ""));
		cJSON_AddItemToArray(results, r);
	}
	cJSON *data;
	if (batch) {
		data = cJSON_CreateObject();
		cJSON_AddItemToObject(data, "batch_results", results);
	} else if (first_err[0]) {
		cJSON_Delete(results);
		rc = cs_req_error(req, CS_EINVAL, "%s", first_err);
		goto out;
	} else {
		data = cJSON_DetachItemFromArray(results, 0);
		cJSON_Delete(results);
	}
	cs_req_set_data(req, data);
out:
	cs_zero(key, sizeof key);
	cs_json_delete_wiped(pol);
	return rc;
}

/* One HMAC check (Vault's pathHMACVerify item): 0 and *valid, or an error message. */
static int verify_one(const cJSON *pol, const cJSON *item, const char *md, bool *valid, char *err)
{
	const char *in64 = tr_jstr(item, "input"), *mac64 = tr_jstr(item, "hmac");
	if (!in64)
		return snprintf(err, TR_ERRLEN, "missing input"), CS_EINVAL;
	size_t n = 0;
	uint8_t *in = tr_b64_dec(in64, &n, err, "unable to decode input as base64: ");
	if (!in)
		return CS_EINVAL;
	int rc = CS_EINVAL;
	uint32_t ver = 0;
	uint8_t *want = NULL;
	size_t wantlen = 0;
	const char *perr = NULL;
	if (!mac64) {
		snprintf(err, TR_ERRLEN, "missing hmac");
		goto out;
	}
	if (strncmp(mac64, "vault:v", 7) != 0) {
		snprintf(err, TR_ERRLEN, "invalid HMAC to verify: no prefix");
		goto out;
	}
	if (cs_transit_parse(mac64, &ver, &want, &wantlen, &perr)) {
		if (ver == 0)
			snprintf(err, TR_ERRLEN, "invalid HMAC: %s", perr);
		else
			snprintf(err, TR_ERRLEN,
				 "unable to decode verification HMAC as base64: "
				 "illegal base64 data");
		goto out;
	}
	if ((int64_t)ver > tr_jint(pol, "latest_version")) {
		snprintf(err, TR_ERRLEN, "invalid HMAC: version is too new");
		goto out;
	}
	int64_t min_dec = tr_jint(pol, "min_decryption_version");
	if (min_dec > 0 && (int64_t)ver < min_dec) {
		snprintf(err, TR_ERRLEN,
			 "cannot verify HMAC: version is too old (disallowed by "
			 "policy)");
		goto out;
	}
	uint8_t key[TR_MAX_KEY], mac[64];
	size_t keylen = 0, maclen = 0;
	rc = hmac_key(pol, ver, key, &keylen, err);
	if (!rc && (rc = cs_transit_hmac(md, key, keylen, in, n, mac, &maclen)))
		snprintf(err, TR_ERRLEN, "HMAC computation failed");
	cs_zero(key, sizeof key);
	if (!rc)
		*valid = cs_ct_equal(mac, maclen, want, wantlen);
out:
	tr_wipe_free(in, n);
	free(want);
	return rc;
}

int tr_verify_op(struct cs_request *req)
{
	cJSON *pol = NULL;
	int rc = load_key(req, &pol);
	if (rc)
		return rc;
	const char *alg = cs_req_capture(req, "urlalgorithm");
	if (!alg)
		alg = cs_req_str(req, "hash_algorithm", "");
	if (!*alg)
		alg = cs_req_str(req, "algorithm", "sha2-256");
	const char *md = cs_transit_md_name(alg, true);
	const cJSON *batch = tr_batch_input(req, &rc);
	bool hmac = cs_req_has(req, "hmac") ||
		    (batch && cJSON_IsArray(batch) && tr_jstr(batch->child, "hmac"));
	if (rc)
		goto out;
	if (!hmac && !batch && !cs_req_has(req, "signature")) {
		rc = cs_req_error(req, CS_EINVAL,
				  "neither a 'signature' nor an 'hmac' were given to verify");
		goto out;
	}
	if (!hmac) { /* a signature: transit_sign.c */
		rc = tr_verify_sig(req, pol);
		goto out;
	}
	if (!md) {
		rc = cs_req_error(req, CS_EINVAL, "invalid hash algorithm \"%s\"", alg);
		goto out;
	}
	cJSON *results = cJSON_CreateArray();
	char err[TR_ERRLEN], first_err[TR_ERRLEN] = "";
	bool first_valid = false;
	const cJSON *item = batch ? batch->child : req->data;
	for (; item; item = batch ? item->next : NULL) {
		bool valid = false;
		err[0] = 0;
		cJSON *r = cJSON_CreateObject();
		if (verify_one(pol, item, md, &valid, err)) {
			cJSON_AddStringToObject(r, "error", err);
			if (!first_err[0] && item == (batch ? batch->child : req->data))
				snprintf(first_err, sizeof first_err, "%s", err);
		} else if (valid) {
			cJSON_AddBoolToObject(r, "valid", true); /* Vault omits a false "valid" */
		}
		if (item == (batch ? batch->child : req->data))
			first_valid = valid;
		if (batch)
			cJSON_AddStringToObject(r, "reference", item_str(item, "reference", ""));
		cJSON_AddItemToArray(results, r);
	}
	cJSON *data = cJSON_CreateObject();
	if (batch) {
		cJSON_AddItemToObject(data, "batch_results", results);
	} else {
		cJSON_Delete(results);
		if (first_err[0]) {
			cJSON_Delete(data);
			rc = cs_req_error(req, CS_EINVAL, "%s", first_err);
			goto out;
		}
		cJSON_AddBoolToObject(data, "valid", first_valid);
	}
	cs_req_set_data(req, data);
out:
	cs_json_delete_wiped(pol);
	return rc;
}
