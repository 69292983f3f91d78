/*
 * The transit engine (engines/transit.h): named keys and the operations over them, with
 * Vault's paths, fields, response shapes, error texts and status codes (OpenBao's
 * builtin/logical/transit). The crypto is engines/transit_crypto.c.
 */
#include "engines/transit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engines/transit_crypto.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/util.h"

/* The largest key material a version holds (an hmac key of 512 bytes) and the largest
 * derived output (enc key + HMAC key). */
#define TR_MAX_KEY 512
/* Vault's random endpoint bound (helper/random APIMaxBytes). */
#define TR_RANDOM_MAX (128 * 1024)
#define TR_ERRLEN     256

/* ------------------------------------------------------------------ policy storage */

static bool name_ok(const char *n)
{
	size_t len = n ? strlen(n) : 0;
	if (len == 0 || len > 128)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = n[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || ((c == '-' || c == '.') && i > 0 && i + 1 < len)))
			return false;
	}
	return true;
}

/* The key's policy from storage: 0, CS_ENOTFOUND (also for a name Vault would not route),
 * or a storage error. */
static int pol_load(struct cs_request *req, const char *name, cJSON **pol)
{
	char key[160];
	*pol = NULL;
	if (!name_ok(name))
		return CS_ENOTFOUND;
	snprintf(key, sizeof key, "policy/%s", name);
	return cs_view_get_json(req, key, pol);
}

static int pol_save(struct cs_request *req, const char *name, const cJSON *pol)
{
	char key[160];
	snprintf(key, sizeof key, "policy/%s", name);
	return cs_view_put_json(req, key, pol);
}

static int64_t jint(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

static bool jbool(const cJSON *o, const char *name)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, name));
}

static const char *jstr(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void jset_int(cJSON *o, const char *name, int64_t v)
{
	cJSON *n = cJSON_CreateNumber((double)v);
	if (cJSON_GetObjectItemCaseSensitive(o, name))
		cJSON_ReplaceItemInObjectCaseSensitive(o, name, n);
	else
		cJSON_AddItemToObject(o, name, n);
}

static void jset_bool(cJSON *o, const char *name, bool v)
{
	cJSON *n = cJSON_CreateBool(v);
	if (cJSON_GetObjectItemCaseSensitive(o, name))
		cJSON_ReplaceItemInObjectCaseSensitive(o, name, n);
	else
		cJSON_AddItemToObject(o, name, n);
}

static enum cs_transit_type pol_type(const cJSON *pol)
{
	int t = cs_transit_type_parse(jstr(pol, "type"));
	return t < 0 ? CS_TRANSIT_AES256_GCM96 : (enum cs_transit_type)t;
}

/* Add version latest+1 with fresh key material, as Vault's RotateInMemory. */
static void pol_add_version(cJSON *pol)
{
	enum cs_transit_type t = pol_type(pol);
	size_t n = t == CS_TRANSIT_HMAC ? (size_t)jint(pol, "key_size") : cs_transit_key_len(t);
	uint8_t key[TR_MAX_KEY], hkey[32];
	cs_random(key, n);
	cs_random(hkey, sizeof hkey);
	int64_t ver = jint(pol, "latest_version") + 1;
	char vs[24];
	snprintf(vs, sizeof vs, "%lld", (long long)ver);
	cJSON *e = cJSON_CreateObject();
	char *b = cs_b64_encode(key, n);
	cJSON_AddStringToObject(e, "key", b);
	cs_zero(b, strlen(b));
	free(b);
	/* An hmac key's HMAC key is the key itself (Vault keeps them equal). */
	b = t == CS_TRANSIT_HMAC ? cs_b64_encode(key, n) : cs_b64_encode(hkey, sizeof hkey);
	cJSON_AddStringToObject(e, "hmac_key", b);
	cs_zero(b, strlen(b));
	free(b);
	cs_zero(key, sizeof key);
	cs_zero(hkey, sizeof hkey);
	cJSON_AddNumberToObject(e, "time", (double)(cs_now_ns() / 1000000000));
	cJSON_AddItemToObject(cJSON_GetObjectItemCaseSensitive(pol, "keys"), vs, e);
	jset_int(pol, "latest_version", ver);
}

/* One version's material (field "key" or "hmac_key") into out; 0 or "no such key version". */
static int entry_bytes(const cJSON *pol, int64_t ver, const char *field, uint8_t *out,
		       size_t *outlen, char *err)
{
	char vs[24];
	snprintf(vs, sizeof vs, "%lld", (long long)ver);
	const cJSON *e =
	    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(pol, "keys"), vs);
	const char *b64 = jstr(e, field);
	if (!b64) {
		snprintf(err, TR_ERRLEN, "no such key version");
		return CS_EINVAL;
	}
	size_t n = 0;
	uint8_t *raw = cs_b64_decode(b64, strlen(b64), &n);
	if (!raw || n > TR_MAX_KEY) {
		free(raw);
		snprintf(err, TR_ERRLEN, "stored key version %s is corrupt", vs);
		return CS_EINTERNAL;
	}
	memcpy(out, raw, n);
	cs_zero(raw, n);
	free(raw);
	*outlen = n;
	return 0;
}

/* Vault's GetKey: the version's key, or for a derived key HKDF(key, context)[:n]. */
static int pol_key(const cJSON *pol, int64_t ver, const uint8_t *ctx, size_t ctxlen, size_t n,
		   uint8_t *out, size_t *outlen, char *err)
{
	if (!jbool(pol, "derived"))
		return entry_bytes(pol, ver, "key", out, outlen, err);
	if (ver <= 0 || ver > jint(pol, "latest_version")) {
		snprintf(err, TR_ERRLEN, "invalid key version");
		return CS_EINVAL;
	}
	if (ctxlen == 0) {
		snprintf(
		    err, TR_ERRLEN,
		    "missing 'context' for key derivation; the key was created using a derived "
		    "key, which means additional, per-request information must be included in "
		    "order to perform operations with the key");
		return CS_EINVAL;
	}
	uint8_t ikm[TR_MAX_KEY];
	size_t ikmlen = 0;
	int rc = entry_bytes(pol, ver, "key", ikm, &ikmlen, err);
	if (!rc && (rc = cs_transit_hkdf(ikm, ikmlen, ctx, ctxlen, out, n)))
		snprintf(err, TR_ERRLEN, "key derivation failed");
	cs_zero(ikm, sizeof ikm);
	*outlen = n;
	return rc;
}

/* Decode Go-StdEncoding base64 (padding required). NULL + Go's message on bad input;
 * an empty string decodes to an empty (non-NULL) buffer. */
static uint8_t *b64_dec(const char *s, size_t *n, char *err, const char *what)
{
	size_t len = strlen(s);
	size_t bad = len;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '+' || c == '/' || (c == '=' && i + 2 >= len))) {
			bad = i;
			break;
		}
	}
	uint8_t *out = NULL;
	if (bad == len && len % 4 == 0)
		out = len ? cs_b64_decode(s, len, n) : calloc(1, 1);
	if (len == 0)
		*n = 0;
	if (!out) {
		if (bad == len)
			bad = len / 4 * 4;
		snprintf(err, TR_ERRLEN, "%sillegal base64 data at input byte %zu", what, bad);
	}
	return out;
}

static void wipe_free(uint8_t *p, size_t n)
{
	if (p)
		cs_zero(p, n);
	free(p);
}

/* ------------------------------------------------------------------ key responses */

static cJSON *pol_format(const char *name, const cJSON *pol)
{
	enum cs_transit_type t = pol_type(pol);
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "name", name);
	cJSON_AddStringToObject(d, "type", cs_transit_type_name(t));
	cJSON_AddBoolToObject(d, "derived", jbool(pol, "derived"));
	cJSON_AddBoolToObject(d, "deletion_allowed", jbool(pol, "deletion_allowed"));
	cJSON_AddNumberToObject(d, "min_available_version",
				(double)jint(pol, "min_available_version"));
	cJSON_AddNumberToObject(d, "min_decryption_version",
				(double)jint(pol, "min_decryption_version"));
	cJSON_AddNumberToObject(d, "min_encryption_version",
				(double)jint(pol, "min_encryption_version"));
	cJSON_AddNumberToObject(d, "latest_version", (double)jint(pol, "latest_version"));
	cJSON_AddBoolToObject(d, "exportable", jbool(pol, "exportable"));
	cJSON_AddBoolToObject(d, "allow_plaintext_backup", jbool(pol, "allow_plaintext_backup"));
	cJSON_AddBoolToObject(d, "supports_encryption", cs_transit_is_aead(t));
	cJSON_AddBoolToObject(d, "supports_decryption", cs_transit_is_aead(t));
	cJSON_AddBoolToObject(d, "supports_signing", false);
	cJSON_AddBoolToObject(d, "supports_derivation", cs_transit_is_aead(t));
	cJSON_AddNumberToObject(d, "auto_rotate_period", (double)jint(pol, "auto_rotate_period"));
	cJSON_AddBoolToObject(d, "imported_key", false);
	cJSON_AddBoolToObject(d, "soft_deleted", false);
	if (jint(pol, "key_size"))
		cJSON_AddNumberToObject(d, "key_size", (double)jint(pol, "key_size"));
	if (jbool(pol, "derived")) {
		cJSON_AddStringToObject(d, "kdf", "hkdf_sha256");
		cJSON_AddBoolToObject(d, "convergent_encryption", jbool(pol, "convergent"));
		if (jbool(pol, "convergent"))
			cJSON_AddNumberToObject(d, "convergent_encryption_version", 3);
	}
	/* Vault lists versions with their creation time for the symmetric types only. */
	if (cs_transit_is_aead(t)) {
		cJSON *keys = cJSON_AddObjectToObject(d, "keys");
		const cJSON *e;
		cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(pol, "keys"))
		    cJSON_AddNumberToObject(keys, e->string, (double)jint(e, "time"));
	}
	return d;
}

/* ------------------------------------------------------------------ keys/ */

static int keys_list(struct cs_request *req)
{
	struct cs_strv names = {0};
	int rc = cs_view_list(req, "policy/", &names);
	if (!rc && names.n == 0)
		rc = CS_ENOTFOUND;
	if (!rc) {
		cJSON *data = cJSON_CreateObject();
		cJSON *keys = cJSON_AddArrayToObject(data, "keys");
		for (size_t i = 0; i < names.n; i++)
			cJSON_AddItemToArray(keys, cJSON_CreateString(names.v[i]));
		cs_req_set_data(req, data);
	}
	cs_strv_free(&names);
	return rc;
}

static int keys_read(struct cs_request *req)
{
	const char *name = cs_req_capture(req, "name");
	cJSON *pol = NULL;
	int rc = pol_load(req, name, &pol);
	if (rc)
		return rc;
	cs_req_set_data(req, pol_format(name, pol));
	cs_json_delete_wiped(pol);
	return 0;
}

/* A new key policy (not stored): Vault's defaults, version 1 generated. */
static cJSON *pol_new(enum cs_transit_type t, bool derived, bool convergent, int64_t key_size)
{
	cJSON *pol = cJSON_CreateObject();
	cJSON_AddStringToObject(pol, "type", cs_transit_type_name(t));
	cJSON_AddBoolToObject(pol, "derived", derived);
	cJSON_AddBoolToObject(pol, "convergent", convergent);
	cJSON_AddNumberToObject(pol, "latest_version", 0);
	cJSON_AddNumberToObject(pol, "min_decryption_version", 1);
	cJSON_AddNumberToObject(pol, "min_encryption_version", 0);
	cJSON_AddNumberToObject(pol, "min_available_version", 0);
	if (t == CS_TRANSIT_HMAC)
		cJSON_AddNumberToObject(pol, "key_size", (double)key_size);
	cJSON_AddObjectToObject(pol, "keys");
	pol_add_version(pol);
	return pol;
}

static int check_rotate_period(struct cs_request *req, int64_t secs)
{
	if (secs != 0 && secs < 3600)
		return cs_req_error(req, CS_EINVAL,
				    "auto rotate period must be 0 to disable or at least an hour");
	return 0;
}

static int keys_write(struct cs_request *req)
{
	const char *name = cs_req_capture(req, "name");
	if (!name_ok(name))
		return cs_req_error(req, CS_EINVAL, "invalid key name");
	bool derived = cs_req_bool(req, "derived", false);
	bool convergent = cs_req_bool(req, "convergent_encryption", false);
	int64_t period = cs_req_int(req, "auto_rotate_period", 0);
	int rc = check_rotate_period(req, period);
	if (rc)
		return rc;
	if (!derived && convergent)
		return cs_req_error(req, CS_EINVAL,
				    "convergent encryption requires derivation to be enabled");
	const char *tname = cs_req_str(req, "type", "aes256-gcm96");
	int t = cs_transit_type_parse(tname);
	if (t < 0)
		return cs_req_error(req, CS_EINVAL, "unknown key type %s", tname);
	int64_t key_size = cs_req_int(req, "key_size", 0);
	if (key_size != 0) {
		if (t != CS_TRANSIT_HMAC)
			return cs_req_error(req, CS_EINVAL,
					    "key_size is not valid for algorithm %s", tname);
		if (key_size < CS_TRANSIT_HMAC_MIN_SIZE || key_size > CS_TRANSIT_HMAC_MAX_SIZE)
			return cs_req_error(req, CS_EINVAL, "invalid key_size %lld",
					    (long long)key_size);
	} else if (t == CS_TRANSIT_HMAC) {
		key_size = CS_TRANSIT_HMAC_MIN_SIZE;
	}
	cJSON *pol = NULL;
	rc = pol_load(req, name, &pol);
	if (rc == 0) { /* Vault leaves an existing key alone and says so */
		cs_req_set_data(req, pol_format(name, pol));
		cs_json_delete_wiped(pol);
		cs_req_warn(req, "key %s already existed", name);
		return 0;
	}
	if (rc != CS_ENOTFOUND)
		return rc;
	pol = pol_new((enum cs_transit_type)t, derived, convergent, key_size);
	jset_bool(pol, "exportable", cs_req_bool(req, "exportable", false));
	jset_bool(pol, "allow_plaintext_backup", cs_req_bool(req, "allow_plaintext_backup", false));
	jset_int(pol, "auto_rotate_period", period);
	rc = pol_save(req, name, pol);
	if (!rc)
		cs_req_set_data(req, pol_format(name, pol));
	cs_json_delete_wiped(pol);
	return rc;
}

static int keys_delete(struct cs_request *req)
{
	const char *name = cs_req_capture(req, "name");
	cJSON *pol = NULL;
	int rc = pol_load(req, name, &pol);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL,
				    "error deleting policy %s: could not delete key; not found",
				    name);
	if (rc)
		return rc;
	bool allowed = jbool(pol, "deletion_allowed");
	cs_json_delete_wiped(pol);
	if (!allowed)
		return cs_req_error(
		    req, CS_EINVAL,
		    "error deleting policy %s: deletion is not allowed for this key", name);
	char key[160];
	snprintf(key, sizeof key, "policy/%s", name);
	return cs_view_delete(req, key);
}

static int keys_config(struct cs_request *req)
{
	const char *name = cs_req_capture(req, "name");
	cJSON *pol = NULL;
	int rc = pol_load(req, name, &pol);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL, "no existing key named %s could be found",
				    name);
	if (rc)
		return rc;
	/* Checks run on the loaded copy; nothing is stored unless all pass. */
	int64_t latest = jint(pol, "latest_version");
	const char *warning = NULL;
	bool persist = false;
	if (cs_req_has(req, "min_decryption_version")) {
		int64_t v = cs_req_int(req, "min_decryption_version", 0);
		if (v < 0) {
			rc = cs_req_error(req, CS_EINVAL,
					  "min decryption version cannot be negative");
			goto out;
		}
		if (v == 0) {
			v = 1;
			warning = "since Vault 0.3, transit key numbering starts at 1; forcing "
				  "minimum to 1";
		}
		if (v != jint(pol, "min_decryption_version")) {
			if (v > latest) {
				rc = cs_req_error(
				    req, CS_EINVAL,
				    "cannot set min decryption version of %lld, latest "
				    "key version is %lld",
				    (long long)v, (long long)latest);
				goto out;
			}
			jset_int(pol, "min_decryption_version", v);
			persist = true;
		}
	}
	if (cs_req_has(req, "min_encryption_version")) {
		int64_t v = cs_req_int(req, "min_encryption_version", 0);
		if (v < 0) {
			rc = cs_req_error(req, CS_EINVAL,
					  "min encryption version cannot be negative");
			goto out;
		}
		if (v != jint(pol, "min_encryption_version")) {
			if (v > latest) {
				rc = cs_req_error(
				    req, CS_EINVAL,
				    "cannot set min encryption version of %lld, latest "
				    "key version is %lld",
				    (long long)v, (long long)latest);
				goto out;
			}
			jset_int(pol, "min_encryption_version", v);
			persist = true;
		}
	}
	int64_t min_enc = jint(pol, "min_encryption_version");
	int64_t min_dec = jint(pol, "min_decryption_version");
	if (min_enc > 0 && min_enc < min_dec) {
		rc = cs_req_error(req, CS_EINVAL,
				  "cannot set min encryption/decryption values; min encryption "
				  "version of %lld must be greater than or equal to min decryption "
				  "version of %lld",
				  (long long)min_enc, (long long)min_dec);
		goto out;
	}
	if (cs_req_has(req, "deletion_allowed")) {
		bool v = cs_req_bool(req, "deletion_allowed", false);
		if (v != jbool(pol, "deletion_allowed")) {
			jset_bool(pol, "deletion_allowed", v);
			persist = true;
		}
	}
	/* exportable and allow_plaintext_backup can be turned on, never off (Vault). */
	if (cs_req_bool(req, "exportable", false) && !jbool(pol, "exportable")) {
		jset_bool(pol, "exportable", true);
		persist = true;
	}
	if (cs_req_bool(req, "allow_plaintext_backup", false) &&
	    !jbool(pol, "allow_plaintext_backup")) {
		jset_bool(pol, "allow_plaintext_backup", true);
		persist = true;
	}
	if (cs_req_has(req, "auto_rotate_period")) {
		int64_t p = cs_req_int(req, "auto_rotate_period", 0);
		if ((rc = check_rotate_period(req, p)))
			goto out;
		if (p != jint(pol, "auto_rotate_period")) {
			jset_int(pol, "auto_rotate_period", p);
			persist = true;
		}
	}
	if (persist) {
		int64_t avail = jint(pol, "min_available_version");
		if (avail > jint(pol, "min_encryption_version")) {
			rc = cs_req_error(req, CS_EINVAL,
					  "min encryption version should not be "
					  "less than min available version");
			goto out;
		}
		if (avail > jint(pol, "min_decryption_version")) {
			rc = cs_req_error(req, CS_EINVAL,
					  "min decryption version should not be "
					  "less then min available version");
			goto out;
		}
		if ((rc = pol_save(req, name, pol)))
			goto out;
	}
	cs_req_set_data(req, pol_format(name, pol));
	if (warning)
		cs_req_warn(req, "%s", warning);
out:
	cs_json_delete_wiped(pol);
	return rc;
}

static int keys_rotate(struct cs_request *req)
{
	const char *name = cs_req_capture(req, "name");
	cJSON *pol = NULL;
	int rc = pol_load(req, name, &pol);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL, "key not found");
	if (rc)
		return rc;
	pol_add_version(pol);
	rc = pol_save(req, name, pol);
	if (!rc)
		cs_req_set_data(req, pol_format(name, pol));
	cs_json_delete_wiped(pol);
	return rc;
}

static int keys_trim(struct cs_request *req)
{
	const char *name = cs_req_capture(req, "name");
	cJSON *pol = NULL;
	int rc = pol_load(req, name, &pol);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL, "invalid key name");
	if (rc)
		return rc;
	const char *msg = NULL;
	int64_t v = cs_req_int(req, "min_available_version", 0);
	if (!cs_req_has(req, "min_available_version"))
		msg = "missing min_available_version";
	else if (v < jint(pol, "min_available_version"))
		msg = "minimum available version cannot be decremented";
	else if (jint(pol, "min_encryption_version") == 0)
		msg = "minimum available version cannot be set when minimum encryption version is "
		      "not set";
	else if (jint(pol, "min_decryption_version") == 0)
		msg = "minimum available version cannot be set when minimum decryption version is "
		      "not set";
	else if (v > jint(pol, "min_encryption_version"))
		msg = "minimum available version cannot be greater than minmum encryption version";
	else if (v > jint(pol, "min_decryption_version"))
		msg = "minimum available version cannot be greater than minimum decryption version";
	else if (v == 0)
		msg = "minimum available version should be positive";
	if (msg) {
		cs_json_delete_wiped(pol);
		return cs_req_error(req, CS_EINVAL, "%s", msg);
	}
	/* Versions below the minimum are gone for good: their material leaves storage. */
	cJSON *keys = cJSON_GetObjectItemCaseSensitive(pol, "keys");
	for (int64_t ver = 1; ver < v; ver++) {
		char vs[24];
		snprintf(vs, sizeof vs, "%lld", (long long)ver);
		cs_json_delete_wiped(cJSON_DetachItemFromObjectCaseSensitive(keys, vs));
	}
	jset_int(pol, "min_available_version", v);
	rc = pol_save(req, name, pol);
	if (!rc)
		cs_req_set_data(req, pol_format(name, pol));
	cs_json_delete_wiped(pol);
	return rc;
}

/* ------------------------------------------------------------------ encrypt/decrypt */

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
	const char *s = jstr(o, name);
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
		wipe_free(it[i].ctx, it[i].ctxlen);
	free(it);
}

/* Fill items from batch_input or the single request; *n = count. Vault's checks on the
 * list itself (empty, context in all or none) are whole-request errors. */
static int items_read(struct cs_request *req, const char *single, const char *missing,
		      struct tr_item **out, size_t *n, bool *batch)
{
	const cJSON *b = cs_req_get(req, "batch_input");
	*batch = b != NULL && !cJSON_IsNull(b);
	*out = NULL;
	*n = 0;
	if (*batch) {
		if (!cJSON_IsArray(b))
			return cs_req_error(req, CS_EINVAL,
					    "failed to parse batch input: expected "
					    "a list of objects");
		*n = (size_t)cJSON_GetArraySize(b);
		if (*n == 0)
			return cs_req_error(req, CS_EINVAL, "missing batch input to process");
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
			it[i].ctx = b64_dec(it[i].context, &it[i].ctxlen, it[i].err, "");
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

/* Encrypt pt under the policy (Vault's EncryptWithFactory): *ct malloc'd "vault:vN:...". */
static int encrypt_raw(const cJSON *pol, int64_t ver, const uint8_t *ctx, size_t ctxlen,
		       const char *aad_b64, const uint8_t *pt, size_t ptlen, char **ct,
		       int64_t *used, char *err)
{
	enum cs_transit_type t = pol_type(pol);
	int64_t latest = jint(pol, "latest_version");
	*ct = NULL;
	if (!cs_transit_is_aead(t)) {
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
	else if (ver < jint(pol, "min_encryption_version"))
		return snprintf(err, TR_ERRLEN,
				"requested version for encryption is less than "
				"the minimum encryption key version"),
		       CS_EINVAL;
	bool convergent = jbool(pol, "convergent");
	size_t enc = cs_transit_key_len(t), hm = convergent ? 32 : 0;
	uint8_t key[TR_MAX_KEY], nonce[32];
	size_t keylen = 0, aadlen = 0;
	uint8_t *aad = NULL;
	int rc = pol_key(pol, ver, ctx, ctxlen, enc + hm, key, &keylen, err);
	if (!rc && keylen < enc + hm) {
		snprintf(err, TR_ERRLEN, "could not derive key, length too small");
		rc = CS_EINTERNAL;
	}
	if (!rc && *aad_b64) {
		if (!cs_transit_is_aead(t)) /* unreachable today: kept for the asymmetric types */
			rc = CS_EINVAL;
		else if (!(aad = b64_dec(aad_b64, &aadlen, err, "")))
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
	wipe_free(aad, aadlen);
	*used = ver;
	return rc;
}

/* Decrypt "vault:vN:..." (Vault's DecryptWithFactory) into out. */
static int decrypt_raw(const cJSON *pol, const char *value, const uint8_t *ctx, size_t ctxlen,
		       const char *aad_b64, struct cs_buf *out, char *err)
{
	enum cs_transit_type t = pol_type(pol);
	if (!cs_transit_is_aead(t)) {
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
	if (ver > jint(pol, "latest_version"))
		snprintf(err, TR_ERRLEN, "invalid ciphertext: version is too new");
	else if (jint(pol, "min_decryption_version") > 0 &&
		 ver < jint(pol, "min_decryption_version"))
		snprintf(err, TR_ERRLEN,
			 "ciphertext or signature version is disallowed by policy (too old)");
	else if (prc)
		snprintf(err, TR_ERRLEN, "invalid ciphertext: %s", perr);
	else
		rc = 0;
	size_t enc = cs_transit_key_len(t), keylen = 0, aadlen = 0;
	uint8_t key[TR_MAX_KEY];
	uint8_t *aad = NULL;
	if (!rc)
		rc = pol_key(pol, ver, ctx, ctxlen, enc, key, &keylen, err);
	if (!rc && keylen != enc) {
		snprintf(err, TR_ERRLEN, "could not derive enc key, length not correct");
		rc = CS_EINTERNAL;
	}
	if (!rc && *aad_b64 && !(aad = b64_dec(aad_b64, &aadlen, err, "")))
		rc = CS_EINTERNAL;
	if (!rc) {
		const char *oerr = NULL;
		rc = cs_transit_open(t, key, raw, rawlen, aad, aadlen, out, &oerr);
		if (rc)
			snprintf(err, TR_ERRLEN, "%s", oerr ? oerr : "decryption failed");
	}
	cs_zero(key, sizeof key);
	wipe_free(aad, aadlen);
	free(raw);
	return rc;
}

/* The answer of a batch (or single) operation, as Vault's batchRequestResponse. For a
 * single item the one result's fields become the data, its error the request's error. */
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
static int key_exists(struct cs_request *req, bool *exists)
{
	cJSON *pol = NULL;
	int rc = pol_load(req, cs_req_capture(req, "name"), &pol);
	cs_json_delete_wiped(pol);
	*exists = rc == 0;
	return rc == CS_ENOTFOUND ? 0 : rc;
}

static int encrypt_op(struct cs_request *req)
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
	rc = pol_load(req, name, &pol);
	if (rc == CS_ENOTFOUND && req->op == CS_OP_CREATE && name_ok(name)) {
		bool convergent = cs_req_bool(req, "convergent_encryption", false);
		const char *tname = cs_req_str(req, "type", "aes256-gcm96");
		int t = cs_transit_type_parse(tname);
		if (convergent && !ctx_set)
			rc = cs_req_error(req, CS_EINVAL,
					  "convergent encryption requires derivation "
					  "to be enabled, so context is required");
		else if (t < 0 || t == CS_TRANSIT_HMAC)
			rc = cs_req_error(req, CS_EINVAL, "unknown key type %s", tname);
		else {
			pol = pol_new((enum cs_transit_type)t, ctx_set, convergent, 0);
			rc = pol_save(req, name, pol);
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
			pt = b64_dec(it[i].plaintext, &ptlen, it[i].err, "");
		}
		if (!it[i].err[0]) {
			rc = encrypt_raw(pol, it[i].key_version, it[i].ctx, it[i].ctxlen, it[i].aad,
					 pt, ptlen, &ct, &used, it[i].err);
			if (rc)
				item_fail(&it[i], rc, it[i].err);
		}
		wipe_free(pt, ptlen);
		cJSON *r = result_new(&it[i]);
		if (ct) {
			cJSON_AddStringToObject(r, "ciphertext", ct);
			cJSON_AddNumberToObject(r, "key_version", (double)used);
			free(ct);
		}
		cJSON_AddItemToArray(results, r);
	}
	cs_json_delete_wiped(pol);
	rc = items_respond(req, batch, it, n, results);
	items_free(it, n);
	return rc;
}

static int decrypt_op(struct cs_request *req)
{
	struct tr_item *it;
	size_t n;
	bool batch;
	int rc = items_read(req, "ciphertext", "missing ciphertext to decrypt", &it, &n, &batch);
	if (rc)
		return rc;
	cJSON *pol = NULL;
	rc = pol_load(req, cs_req_capture(req, "name"), &pol);
	if (rc) {
		items_free(it, n);
		return rc == CS_ENOTFOUND ? cs_req_error(req, CS_EINVAL, "encryption key not found")
					  : rc;
	}
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
	cs_json_delete_wiped(pol);
	rc = items_respond(req, batch, it, n, results);
	items_free(it, n);
	return rc;
}

static int rewrap_op(struct cs_request *req)
{
	struct tr_item *it;
	size_t n;
	bool batch;
	int rc = items_read(req, "ciphertext", "missing ciphertext to decrypt", &it, &n, &batch);
	if (rc)
		return rc;
	cJSON *pol = NULL;
	rc = pol_load(req, cs_req_capture(req, "name"), &pol);
	if (rc) {
		items_free(it, n);
		return rc == CS_ENOTFOUND ? cs_req_error(req, CS_EINVAL, "encryption key not found")
					  : rc;
	}
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
		if (ct) {
			cJSON_AddStringToObject(r, "ciphertext", ct);
			cJSON_AddNumberToObject(r, "key_version", (double)used);
			free(ct);
		}
		cJSON_AddItemToArray(results, r);
	}
	cs_json_delete_wiped(pol);
	rc = items_respond(req, batch, it, n, results);
	items_free(it, n);
	return rc;
}

static int datakey_op(struct cs_request *req)
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
	if (*c && !(ctx = b64_dec(c, &ctxlen, err, "")))
		return cs_req_error(req, CS_EINVAL, "failed to base64-decode context");
	cJSON *pol = NULL;
	int rc = pol_load(req, cs_req_capture(req, "name"), &pol);
	if (rc) {
		wipe_free(ctx, ctxlen);
		return rc == CS_ENOTFOUND ? cs_req_error(req, CS_EINVAL, "encryption key not found")
					  : rc;
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
	wipe_free(ctx, ctxlen);
	cs_json_delete_wiped(pol);
	return rc;
}

/* ------------------------------------------------------------------ random, hash */

static bool random_source_ok(const char *s)
{
	return strcmp(s, "platform") == 0 || strcmp(s, "seal") == 0 || strcmp(s, "all") == 0;
}

/* Go's strconv.Atoi error text, for Vault's message. */
static int atoi_strict(const char *s, int64_t *v)
{
	char *end;
	long long x = strtoll(s, &end, 10);
	if (!*s || *end)
		return CS_EINVAL;
	*v = x;
	return 0;
}

static int random_op(struct cs_request *req)
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
	if (url && atoi_strict(url, &bytes))
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
	wipe_free(r, (size_t)bytes);
	cs_zero(s, strlen(s));
	free(s);
	return 0;
}

static const char *url_alg(struct cs_request *req, const char *field, const char *def)
{
	const char *a = cs_req_capture(req, "urlalgorithm");
	return a ? a : cs_req_str(req, field, def);
}

static int hash_op(struct cs_request *req)
{
	if (!cs_req_has(req, "input"))
		return cs_req_error(req, CS_EINVAL, "input missing");
	char err[TR_ERRLEN];
	size_t n = 0;
	uint8_t *in =
	    b64_dec(cs_req_str(req, "input", ""), &n, err, "unable to decode input as base64: ");
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
	wipe_free(in, n);
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
	if (ver > jint(pol, "latest_version"))
		return snprintf(err, TR_ERRLEN,
				"key version does not exist; latest key version is %lld",
				(long long)jint(pol, "latest_version")),
		       CS_EINVAL;
	return entry_bytes(pol, ver, pol_type(pol) == CS_TRANSIT_HMAC ? "key" : "hmac_key", key,
			   keylen, err);
}

static const cJSON *batch_of(struct cs_request *req, int *rc)
{
	const cJSON *b = cs_req_get(req, "batch_input");
	*rc = 0;
	if (!b || cJSON_IsNull(b))
		return NULL;
	if (!cJSON_IsArray(b))
		*rc = cs_req_error(req, CS_EINVAL,
				   "failed to parse batch input: expected a list of objects");
	else if (cJSON_GetArraySize(b) == 0)
		*rc = cs_req_error(req, CS_EINVAL, "missing batch input to process");
	return b;
}

static int hmac_op(struct cs_request *req)
{
	cJSON *pol = NULL;
	int rc = pol_load(req, cs_req_capture(req, "name"), &pol);
	if (rc)
		return rc == CS_ENOTFOUND ? cs_req_error(req, CS_EINVAL, "encryption key not found")
					  : rc;
	int64_t ver = cs_req_int(req, "key_version", 0);
	char err[TR_ERRLEN];
	uint8_t key[TR_MAX_KEY];
	size_t keylen = 0;
	const char *alg = url_alg(req, "algorithm", "sha2-256");
	const char *md = cs_transit_md_name(alg, true);
	int64_t min_enc = jint(pol, "min_encryption_version");
	if (ver == 0)
		ver = jint(pol, "latest_version");
	else if (ver != jint(pol, "latest_version") && min_enc > 0 && ver < min_enc) {
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
	const cJSON *batch = batch_of(req, &rc);
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
		const char *in64 = jstr(item, "input");
		size_t n = 0;
		uint8_t *in = NULL;
		err[0] = 0;
		if (!in64)
			snprintf(err, TR_ERRLEN, "missing input for HMAC");
		else
			in = b64_dec(in64, &n, err, "unable to decode input as base64: ");
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
			wipe_free(in, n);
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
	const char *in64 = jstr(item, "input"), *mac64 = jstr(item, "hmac");
	if (!in64)
		return snprintf(err, TR_ERRLEN, "missing input"), CS_EINVAL;
	size_t n = 0;
	uint8_t *in = b64_dec(in64, &n, err, "unable to decode input as base64: ");
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
	if ((int64_t)ver > jint(pol, "latest_version")) {
		snprintf(err, TR_ERRLEN, "invalid HMAC: version is too new");
		goto out;
	}
	int64_t min_dec = jint(pol, "min_decryption_version");
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
	wipe_free(in, n);
	free(want);
	return rc;
}

static int verify_op(struct cs_request *req)
{
	cJSON *pol = NULL;
	int rc = pol_load(req, cs_req_capture(req, "name"), &pol);
	if (rc)
		return rc == CS_ENOTFOUND ? cs_req_error(req, CS_EINVAL, "encryption key not found")
					  : rc;
	const char *alg = cs_req_capture(req, "urlalgorithm");
	if (!alg)
		alg = cs_req_str(req, "hash_algorithm", "");
	if (!*alg)
		alg = cs_req_str(req, "algorithm", "sha2-256");
	const char *md = cs_transit_md_name(alg, true);
	const cJSON *batch = batch_of(req, &rc);
	bool hmac = cs_req_has(req, "hmac") ||
		    (batch && cJSON_IsArray(batch) && jstr(batch->child, "hmac"));
	if (rc)
		goto out;
	if (!hmac) { /* signatures: none of the types served here signs */
		rc = cs_req_error(req, CS_EINVAL, "key type %s does not support verification",
				  cs_transit_type_name(pol_type(pol)));
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

/* ------------------------------------------------------------------ export */

/* export/:type/:name[/:version] (Vault): the raw key material of an exportable key,
 * base64 per version. The response is wiped by the core like every response. */
static int export_op(struct cs_request *req)
{
	const char *type = cs_req_capture(req, "type");
	const char *version = cs_req_capture(req, "version");
	const char *format = cs_req_str(req, "format", "");
	bool enc = strcmp(type, "encryption-key") == 0, hmac = strcmp(type, "hmac-key") == 0;
	bool signing = strcmp(type, "signing-key") == 0;
	bool pub = strcmp(type, "public-key") == 0, chain = strcmp(type, "certificate-chain") == 0;
	if (!enc && !hmac && !signing && !pub && !chain)
		return cs_req_error(req, CS_EINVAL, "invalid export type: %s", type);
	if (*format && strcmp(format, "raw") && strcmp(format, "der") && strcmp(format, "pem"))
		return cs_req_error(req, CS_EINVAL, "invalid format: %s", format);
	const char *name = cs_req_capture(req, "name");
	cJSON *pol = NULL;
	int rc = pol_load(req, name, &pol);
	if (rc)
		return rc; /* a missing key is Vault's plain 404 */
	enum cs_transit_type t = pol_type(pol);
	if (!jbool(pol, "exportable") && !pub && !chain)
		rc = cs_req_error(req, CS_EINVAL, "private key material is not exportable");
	else if (enc && !cs_transit_is_aead(t))
		rc = cs_req_error(req, CS_EINVAL, "encryption not supported for the key");
	else if (signing)
		rc = cs_req_error(req, CS_EINVAL, "signing not supported for the key");
	else if (chain)
		rc = cs_req_error(req, CS_EINVAL,
				  "certificate chain not supported for keys that "
				  "do not support signing");
	else if (pub)
		rc = cs_req_error(req, CS_EINVAL, "unknown key type %s for export type public-key",
				  cs_transit_type_name(t));
	else if (!strcmp(format, "der") || !strcmp(format, "pem"))
		rc = cs_req_error(req, CS_EINVAL,
				  "unknown format for HMAC key; supported values "
				  "are `` or `raw`");
	if (rc)
		goto out;
	/* The material field: an hmac key's HMAC key is its key. */
	const char *field = enc || t == CS_TRANSIT_HMAC ? "key" : "hmac_key";
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(pol, "keys");
	cJSON *out = cJSON_CreateObject();
	if (version) {
		int64_t v = 0;
		const char *vs = version[0] == 'v' ? version + 1 : version;
		if (strcmp(version, "latest") == 0)
			v = jint(pol, "latest_version");
		else if (atoi_strict(vs, &v)) {
			cJSON_Delete(out);
			rc = cs_req_error(req, CS_EINVAL, "invalid key version");
			goto out;
		}
		char num[24];
		snprintf(num, sizeof num, "%lld", (long long)v);
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(keys, num);
		if (v < jint(pol, "min_decryption_version"))
			rc = cs_req_error(req, CS_EINVAL,
					  "version for export is below minimum decryption version");
		else if (!jstr(e, field))
			rc = cs_req_error(req, CS_EINVAL,
					  "version does not exist or cannot be found");
		else
			cJSON_AddStringToObject(out, num, jstr(e, field));
	} else {
		const cJSON *e;
		cJSON_ArrayForEach(e, keys) if (jstr(e, field))
		    cJSON_AddStringToObject(out, e->string, jstr(e, field));
	}
	if (rc) {
		cs_json_delete_wiped(out);
		goto out;
	}
	cJSON *data = cJSON_CreateObject();
	cJSON_AddStringToObject(data, "name", name);
	cJSON_AddStringToObject(data, "type", cs_transit_type_name(t));
	cJSON_AddItemToObject(data, "keys", out);
	cs_req_set_data(req, data);
out:
	cs_json_delete_wiped(pol);
	return rc;
}

/* ------------------------------------------------------------------ path table */

static const struct cs_field key_fields[] = {
    {.name = "type", .type = CS_FIELD_STRING, .desc = "key type, aes256-gcm96 by default"},
    {.name = "derived", .type = CS_FIELD_BOOL, .desc = "derive per-context keys (HKDF)"},
    {.name = "convergent_encryption", .type = CS_FIELD_BOOL, .desc = "deterministic (derived)"},
    {.name = "exportable", .type = CS_FIELD_BOOL, .desc = "the key may be exported"},
    {.name = "allow_plaintext_backup", .type = CS_FIELD_BOOL, .desc = "plaintext backups"},
    {.name = "auto_rotate_period", .type = CS_FIELD_DURATION, .desc = "0 or at least 1h"},
    {.name = "key_size", .type = CS_FIELD_INT, .desc = "hmac key size in bytes"},
    {.name = NULL},
};

static const struct cs_field config_fields[] = {
    {.name = "min_decryption_version", .type = CS_FIELD_INT, .desc = "oldest decryptable"},
    {.name = "min_encryption_version", .type = CS_FIELD_INT, .desc = "oldest usable to encrypt"},
    {.name = "deletion_allowed", .type = CS_FIELD_BOOL, .desc = "the key may be deleted"},
    {.name = "exportable", .type = CS_FIELD_BOOL, .desc = "the key may be exported"},
    {.name = "allow_plaintext_backup", .type = CS_FIELD_BOOL, .desc = "plaintext backups"},
    {.name = "auto_rotate_period", .type = CS_FIELD_DURATION, .desc = "0 or at least 1h"},
    {.name = NULL},
};

static const struct cs_field trim_fields[] = {
    {.name = "min_available_version", .type = CS_FIELD_INT, .desc = "oldest version kept"},
    {.name = NULL},
};

static const struct cs_field crypt_fields[] = {
    {.name = "plaintext", .type = CS_FIELD_STRING, .desc = "base64 plaintext"},
    {.name = "ciphertext", .type = CS_FIELD_STRING, .desc = "vault:vN: ciphertext"},
    {.name = "context", .type = CS_FIELD_STRING, .desc = "base64 derivation context"},
    {.name = "nonce", .type = CS_FIELD_STRING, .desc = "ignored, as in Vault (convergent v3)"},
    {.name = "associated_data", .type = CS_FIELD_STRING, .desc = "base64 AEAD data"},
    {.name = "key_version", .type = CS_FIELD_INT, .desc = "version to encrypt with"},
    {.name = "type", .type = CS_FIELD_STRING, .desc = "type of a key created by encrypt"},
    {.name = "convergent_encryption", .type = CS_FIELD_BOOL, .desc = "for a created key"},
    {.name = "batch_input", .type = CS_FIELD_ANY, .desc = "list of items"},
    {.name = "partial_failure_response_code", .type = CS_FIELD_INT, .desc = "status override"},
    {.name = NULL},
};

static const struct cs_field datakey_fields[] = {
    {.name = "context", .type = CS_FIELD_STRING, .desc = "base64 derivation context"},
    {.name = "nonce", .type = CS_FIELD_STRING, .desc = "ignored, as in Vault"},
    {.name = "bits", .type = CS_FIELD_INT, .desc = "128, 256 (default) or 512"},
    {.name = "key_version", .type = CS_FIELD_INT, .desc = "version to encrypt with"},
    {.name = "associated_data", .type = CS_FIELD_STRING, .desc = "base64 AEAD data"},
    {.name = NULL},
};

static const struct cs_field random_fields[] = {
    {.name = "bytes", .type = CS_FIELD_INT, .desc = "how many, 32 by default"},
    {.name = "format", .type = CS_FIELD_STRING, .desc = "base64 (default) or hex"},
    {.name = "source", .type = CS_FIELD_STRING, .desc = "platform, seal or all"},
    {.name = NULL},
};

static const struct cs_field hash_fields[] = {
    {.name = "input", .type = CS_FIELD_STRING, .desc = "base64 input"},
    {.name = "algorithm", .type = CS_FIELD_STRING, .desc = "sha2-256 by default"},
    {.name = "format", .type = CS_FIELD_STRING, .desc = "hex (default) or base64"},
    {.name = NULL},
};

static const struct cs_field hmac_fields[] = {
    {.name = "input", .type = CS_FIELD_STRING, .desc = "base64 input"},
    {.name = "hmac", .type = CS_FIELD_STRING, .desc = "vault:vN: HMAC to verify"},
    {.name = "signature", .type = CS_FIELD_STRING, .desc = "signature to verify"},
    {.name = "algorithm", .type = CS_FIELD_STRING, .desc = "sha2-256 by default"},
    {.name = "hash_algorithm", .type = CS_FIELD_STRING, .desc = "alias of algorithm"},
    {.name = "key_version", .type = CS_FIELD_INT, .desc = "version to HMAC with"},
    {.name = "batch_input", .type = CS_FIELD_ANY, .desc = "list of items"},
    {.name = NULL},
};

static const struct cs_field export_fields[] = {
    {.name = "format", .type = CS_FIELD_STRING, .desc = "\"\" or raw for symmetric keys"},
    {.name = NULL},
};

static const struct cs_path transit_paths[] = {
    {.pattern = "keys", .ops = {[CS_OP_LIST] = keys_list}, .synopsis = "list the keys"},
    {.pattern = "keys/{name}/config",
     .fields = config_fields,
     .ops = {[CS_OP_UPDATE] = keys_config},
     .synopsis = "configure a key"},
    {.pattern = "keys/{name}/rotate",
     .ops = {[CS_OP_UPDATE] = keys_rotate},
     .synopsis = "add a new version of a key"},
    {.pattern = "keys/{name}/trim",
     .fields = trim_fields,
     .ops = {[CS_OP_UPDATE] = keys_trim},
     .synopsis = "delete the versions below min_available_version"},
    {.pattern = "keys/{name}",
     .fields = key_fields,
     .ops = {[CS_OP_READ] = keys_read, [CS_OP_UPDATE] = keys_write, [CS_OP_DELETE] = keys_delete},
     .synopsis = "create, read or delete a named key"},
    {.pattern = "encrypt/{name}",
     .fields = crypt_fields,
     .ops = {[CS_OP_CREATE] = encrypt_op, [CS_OP_UPDATE] = encrypt_op},
     .exists = key_exists,
     .synopsis = "encrypt with a named key (created if missing)"},
    {.pattern = "decrypt/{name}",
     .fields = crypt_fields,
     .ops = {[CS_OP_UPDATE] = decrypt_op},
     .synopsis = "decrypt with a named key"},
    {.pattern = "rewrap/{name}",
     .fields = crypt_fields,
     .ops = {[CS_OP_UPDATE] = rewrap_op},
     .synopsis = "re-encrypt a ciphertext with a key's latest version"},
    {.pattern = "datakey/{plaintext}/{name}",
     .fields = datakey_fields,
     .ops = {[CS_OP_UPDATE] = datakey_op},
     .synopsis = "generate a data key, encrypted (and in plaintext)"},
    {.pattern = "export/{type}/{name}",
     .fields = export_fields,
     .ops = {[CS_OP_READ] = export_op},
     .synopsis = "export every version of an exportable key"},
    {.pattern = "export/{type}/{name}/{version}",
     .fields = export_fields,
     .ops = {[CS_OP_READ] = export_op},
     .synopsis = "export one version of an exportable key"},
    {.pattern = "random",
     .fields = random_fields,
     .ops = {[CS_OP_UPDATE] = random_op},
     .synopsis = "random bytes"},
    {.pattern = "random/{source}",
     .fields = random_fields,
     .ops = {[CS_OP_UPDATE] = random_op},
     .synopsis = "random bytes (count or source in the path)"},
    {.pattern = "random/{source}/{urlbytes}",
     .fields = random_fields,
     .ops = {[CS_OP_UPDATE] = random_op},
     .synopsis = "random bytes from a source"},
    {.pattern = "hash",
     .fields = hash_fields,
     .ops = {[CS_OP_UPDATE] = hash_op},
     .synopsis = "hash data"},
    {.pattern = "hash/{urlalgorithm}",
     .fields = hash_fields,
     .ops = {[CS_OP_UPDATE] = hash_op},
     .synopsis = "hash data with the algorithm in the path"},
    {.pattern = "hmac/{name}",
     .fields = hmac_fields,
     .ops = {[CS_OP_UPDATE] = hmac_op},
     .synopsis = "HMAC data with a named key"},
    {.pattern = "hmac/{name}/{urlalgorithm}",
     .fields = hmac_fields,
     .ops = {[CS_OP_UPDATE] = hmac_op},
     .synopsis = "HMAC data with the algorithm in the path"},
    {.pattern = "verify/{name}",
     .fields = hmac_fields,
     .ops = {[CS_OP_UPDATE] = verify_op},
     .synopsis = "verify an HMAC"},
    {.pattern = "verify/{name}/{urlalgorithm}",
     .fields = hmac_fields,
     .ops = {[CS_OP_UPDATE] = verify_op},
     .synopsis = "verify an HMAC with the algorithm in the path"},
};

/* sys/tools/hash and sys/tools/random: Vault serves the same handlers outside any mount. */
static const struct cs_path tools_paths[] = {
    {.pattern = "tools/random",
     .fields = random_fields,
     .ops = {[CS_OP_UPDATE] = random_op},
     .synopsis = "random bytes"},
    {.pattern = "tools/random/{source}",
     .fields = random_fields,
     .ops = {[CS_OP_UPDATE] = random_op},
     .synopsis = "random bytes (count or source in the path)"},
    {.pattern = "tools/random/{source}/{urlbytes}",
     .fields = random_fields,
     .ops = {[CS_OP_UPDATE] = random_op},
     .synopsis = "random bytes from a source"},
    {.pattern = "tools/hash",
     .fields = hash_fields,
     .ops = {[CS_OP_UPDATE] = hash_op},
     .synopsis = "hash data"},
    {.pattern = "tools/hash/{urlalgorithm}",
     .fields = hash_fields,
     .ops = {[CS_OP_UPDATE] = hash_op},
     .synopsis = "hash data with the algorithm in the path"},
};

void cs_transit_register(void)
{
	cs_backend_register(&cs_transit_backend);
	cs_sys_set_paths(CS_SYS_TOOLS, tools_paths, CS_ARRAY_LEN(tools_paths));
}

const struct cs_backend cs_transit_backend = {
    .type = "transit",
    .paths = transit_paths,
    .n_paths = CS_ARRAY_LEN(transit_paths),
};
