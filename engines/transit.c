/*
 * The transit engine (engines/transit.h): named keys and the operations over them, with
 * Vault's paths, fields, response shapes, error texts and status codes (OpenBao's
 * builtin/logical/transit). The crypto is engines/transit_crypto.c.
 */
#include "engines/transit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engines/transit_crypto.h"
#include "engines/transit_internal.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/util.h"

/* ------------------------------------------------------------------ policy storage */

bool tr_name_ok(const char *n)
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
static int pol_get(struct cs_request *req, const char *name, bool fill, cJSON **pol)
{
	char key[160];
	*pol = NULL;
	if (!tr_name_ok(name))
		return CS_ENOTFOUND;
	snprintf(key, sizeof key, "policy/%s", name);
	return tr_cache_get_json(req, key, fill, pol);
}

int tr_pol_load(struct cs_request *req, const char *name, cJSON **pol)
{
	return pol_get(req, name, true, pol);
}

int tr_pol_peek(struct cs_request *req, const char *name, cJSON **pol)
{
	return pol_get(req, name, false, pol);
}

int tr_pol_save(struct cs_request *req, const char *name, const cJSON *pol)
{
	char key[160];
	snprintf(key, sizeof key, "policy/%s", name);
	tr_cache_forget(req, key);
	return cs_view_put_json(req, key, pol);
}

int64_t tr_jint(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

bool tr_jbool(const cJSON *o, const char *name)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, name));
}

const cJSON *tr_batch_input(struct cs_request *req, int *rc)
{
	const cJSON *b = cs_req_get(req, "batch_input");
	*rc = 0;
	if (!b || cJSON_IsNull(b))
		return NULL;
	int n = cJSON_IsArray(b) ? cJSON_GetArraySize(b) : -1;
	if (n < 0)
		*rc = cs_req_error(req, CS_EINVAL,
				   "failed to parse batch input: expected a list of objects");
	else if (n == 0)
		*rc = cs_req_error(req, CS_EINVAL, "missing batch input to process");
	else if (n > TR_MAX_BATCH)
		*rc =
		    cs_req_error(req, CS_EINVAL, "batch input has %d items; at most %d are allowed",
				 n, TR_MAX_BATCH);
	return b;
}

const char *tr_jstr(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

void tr_jset_int(cJSON *o, const char *name, int64_t v)
{
	cJSON *n = cJSON_CreateNumber((double)v);
	if (cJSON_GetObjectItemCaseSensitive(o, name))
		cJSON_ReplaceItemInObjectCaseSensitive(o, name, n);
	else
		cJSON_AddItemToObject(o, name, n);
}

void tr_jset_bool(cJSON *o, const char *name, bool v)
{
	cJSON *n = cJSON_CreateBool(v);
	if (cJSON_GetObjectItemCaseSensitive(o, name))
		cJSON_ReplaceItemInObjectCaseSensitive(o, name, n);
	else
		cJSON_AddItemToObject(o, name, n);
}

enum cs_transit_type tr_pol_type(const cJSON *pol)
{
	int t = cs_transit_type_parse(tr_jstr(pol, "type"));
	return t < 0 ? CS_TRANSIT_AES256_GCM96 : (enum cs_transit_type)t;
}

/* Add version latest+1 with fresh key material, as Vault's RotateInMemory. An asymmetric
 * key's private key comes generated (PKCS#8 DER, off the loop) and is kept as "priv" with
 * its public key; every version also has an HMAC key, as in Vault. */
void tr_pol_add_version(cJSON *pol, const uint8_t *der, size_t derlen)
{
	enum cs_transit_type t = tr_pol_type(pol);
	bool asym = cs_transit_is_asym(t);
	size_t n = asym                   ? 0
		   : t == CS_TRANSIT_HMAC ? (size_t)tr_jint(pol, "key_size")
					  : cs_transit_key_len(t);
	uint8_t key[TR_MAX_KEY], hkey[32];
	cs_random(key, n);
	cs_random(hkey, sizeof hkey);
	int64_t ver = tr_jint(pol, "latest_version") + 1;
	char vs[24];
	snprintf(vs, sizeof vs, "%lld", (long long)ver);
	cJSON *e = cJSON_CreateObject();
	char *b = asym ? cs_b64_encode(der, derlen) : cs_b64_encode(key, n);
	cJSON_AddStringToObject(e, asym ? "priv" : "key", b);
	cs_zero(b, strlen(b));
	free(b);
	if (asym) {
		char *pub = cs_transit_asym_public(t, der, derlen);
		cJSON_AddStringToObject(e, "public_key", pub ? pub : "");
		free(pub);
	}
	/* An hmac key's HMAC key is the key itself (Vault keeps them equal). */
	b = t == CS_TRANSIT_HMAC ? cs_b64_encode(key, n) : cs_b64_encode(hkey, sizeof hkey);
	cJSON_AddStringToObject(e, "hmac_key", b);
	cs_zero(b, strlen(b));
	free(b);
	cs_zero(key, sizeof key);
	cs_zero(hkey, sizeof hkey);
	cJSON_AddNumberToObject(e, "time", (double)(cs_now_ns() / 1000000000));
	cJSON_AddItemToObject(cJSON_GetObjectItemCaseSensitive(pol, "keys"), vs, e);
	tr_jset_int(pol, "latest_version", ver);
}

/* A new key policy (not stored): Vault's defaults, version 1 generated. */
cJSON *tr_pol_new(enum cs_transit_type t, bool derived, bool convergent, int64_t key_size,
		  const uint8_t *der, size_t derlen)
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
	tr_pol_add_version(pol, der, derlen);
	return pol;
}

/* One version's material (field "key" or "hmac_key") into out; 0 or "no such key version". */
int tr_entry_bytes(const cJSON *pol, int64_t ver, const char *field, uint8_t *out, size_t *outlen,
		   char *err)
{
	char vs[24];
	snprintf(vs, sizeof vs, "%lld", (long long)ver);
	const cJSON *e =
	    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(pol, "keys"), vs);
	const char *b64 = tr_jstr(e, field);
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
int tr_pol_key(const cJSON *pol, int64_t ver, const uint8_t *ctx, size_t ctxlen, size_t n,
	       uint8_t *out, size_t *outlen, char *err)
{
	if (!tr_jbool(pol, "derived"))
		return tr_entry_bytes(pol, ver, "key", out, outlen, err);
	if (ver <= 0 || ver > tr_jint(pol, "latest_version")) {
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
	int rc = tr_entry_bytes(pol, ver, "key", ikm, &ikmlen, err);
	if (!rc && (rc = cs_transit_hkdf(ikm, ikmlen, ctx, ctxlen, out, n)))
		snprintf(err, TR_ERRLEN, "key derivation failed");
	cs_zero(ikm, sizeof ikm);
	*outlen = n;
	return rc;
}

/* Decode Go-StdEncoding base64 (padding required). NULL + Go's message on bad input;
 * an empty string decodes to an empty (non-NULL) buffer. */
uint8_t *tr_b64_dec(const char *s, size_t *n, char *err, const char *what)
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

void tr_wipe_free(uint8_t *p, size_t n)
{
	if (p)
		cs_zero(p, n);
	free(p);
}

/* ------------------------------------------------------------------ key responses */

/* Vault's asymKey per version: the curve's name (Go's elliptic names) or the type. */
static cJSON *asym_versions(const cJSON *pol, enum cs_transit_type t)
{
	const char *kname = t == CS_TRANSIT_ECDSA_P256   ? "P-256"
			    : t == CS_TRANSIT_ECDSA_P384 ? "P-384"
			    : t == CS_TRANSIT_ECDSA_P521 ? "P-521"
							 : cs_transit_type_name(t);
	cJSON *keys = cJSON_CreateObject();
	const cJSON *e;
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(pol, "keys"))
	{
		cJSON *k = cJSON_AddObjectToObject(keys, e->string);
		char when[32];
		time_t secs = (time_t)tr_jint(e, "time");
		struct tm tm;
		gmtime_r(&secs, &tm);
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
		cJSON_AddStringToObject(k, "name", kname);
		/* A derived key has no public key of its own: one per context (Vault). */
		const char *pub = tr_jbool(pol, "derived") ? NULL : tr_jstr(e, "public_key");
		cJSON_AddStringToObject(k, "public_key", pub ? pub : "");
		cJSON_AddStringToObject(k, "certificate_chain", "");
		cJSON_AddStringToObject(k, "creation_time", when);
	}
	return keys;
}

/* backup_info / restore_info as Vault shows them: {"time": RFC 3339, "version": n}. */
void tr_add_info(cJSON *d, const char *name, const cJSON *info)
{
	if (!cJSON_IsObject(info))
		return;
	char when[32];
	tr_rfc3339(tr_jint(info, "time"), when);
	cJSON *o = cJSON_AddObjectToObject(d, name);
	cJSON_AddStringToObject(o, "time", when);
	cJSON_AddNumberToObject(o, "version", (double)tr_jint(info, "version"));
}

void tr_pol_add_common(cJSON *d, const cJSON *pol)
{
	static const char *const bools[] = {"derived", "deletion_allowed", "exportable",
					    "allow_plaintext_backup"};
	static const char *const ints[] = {"min_available_version", "min_decryption_version",
					   "min_encryption_version", "latest_version"};
	for (size_t i = 0; i < CS_ARRAY_LEN(bools); i++)
		cJSON_AddBoolToObject(d, bools[i], tr_jbool(pol, bools[i]));
	for (size_t i = 0; i < CS_ARRAY_LEN(ints); i++)
		cJSON_AddNumberToObject(d, ints[i], (double)tr_jint(pol, ints[i]));
}

cJSON *tr_pol_format(const char *name, const cJSON *pol)
{
	enum cs_transit_type t = tr_pol_type(pol);
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "name", name);
	cJSON_AddStringToObject(d, "type", cs_transit_type_name(t));
	tr_pol_add_common(d, pol);
	bool crypt = cs_transit_is_aead(t) || cs_transit_is_rsa(t);
	cJSON_AddBoolToObject(d, "supports_encryption", crypt);
	cJSON_AddBoolToObject(d, "supports_decryption", crypt);
	cJSON_AddBoolToObject(d, "supports_signing", cs_transit_is_asym(t));
	cJSON_AddBoolToObject(d, "supports_derivation",
			      cs_transit_is_aead(t) || t == CS_TRANSIT_ED25519);
	cJSON_AddNumberToObject(d, "auto_rotate_period",
				(double)tr_jint(pol, "auto_rotate_period"));
	cJSON_AddBoolToObject(d, "imported_key", false);
	cJSON_AddBoolToObject(d, "soft_deleted", false);
	if (tr_jint(pol, "key_size"))
		cJSON_AddNumberToObject(d, "key_size", (double)tr_jint(pol, "key_size"));
	if (tr_jbool(pol, "derived")) {
		cJSON_AddStringToObject(d, "kdf", "hkdf_sha256");
		cJSON_AddBoolToObject(d, "convergent_encryption", tr_jbool(pol, "convergent"));
		if (tr_jbool(pol, "convergent"))
			cJSON_AddNumberToObject(d, "convergent_encryption_version", 3);
	}
	tr_add_info(d, "backup_info", cJSON_GetObjectItemCaseSensitive(pol, "backup_info"));
	tr_add_info(d, "restore_info", cJSON_GetObjectItemCaseSensitive(pol, "restore_info"));
	/* Vault lists versions: their creation time for the symmetric types, the public key
	 * for the asymmetric ones. */
	if (cs_transit_is_asym(t))
		cJSON_AddItemToObject(d, "keys", asym_versions(pol, t));
	else if (cs_transit_is_aead(t)) {
		cJSON *keys = cJSON_AddObjectToObject(d, "keys");
		const cJSON *e;
		cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(pol, "keys"))
		    cJSON_AddNumberToObject(keys, e->string, (double)tr_jint(e, "time"));
	}
	return d;
}

/* Go's strconv.Atoi error text, for Vault's message. */
int tr_atoi_strict(const char *s, int64_t *v)
{
	char *end;
	long long x = strtoll(s, &end, 10);
	if (!*s || *end)
		return CS_EINVAL;
	*v = x;
	return 0;
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
    {.name = "prehashed", .type = CS_FIELD_BOOL, .desc = "the input is already a digest"},
    {.name = "signature_algorithm", .type = CS_FIELD_STRING, .desc = "RSA: pss or pkcs1v15"},
    {.name = "salt_length", .type = CS_FIELD_STRING, .desc = "PSS: auto, hash or bytes"},
    {.name = "marshaling_algorithm", .type = CS_FIELD_STRING, .desc = "ECDSA: asn1 or jws"},
    {.name = "context", .type = CS_FIELD_STRING, .desc = "base64 derivation context"},
    {.name = NULL},
};

static const struct cs_field export_fields[] = {
    {.name = "format", .type = CS_FIELD_STRING, .desc = "\"\" or raw for symmetric keys"},
    {.name = NULL},
};

static const struct cs_field cache_fields[] = {
    {.name = "size", .type = CS_FIELD_INT, .desc = "keys cached: 0 (no count limit) or >= 10"},
    {.name = NULL},
};

static const struct cs_field restore_fields[] = {
    {.name = "backup", .type = CS_FIELD_STRING, .desc = "the output of backup/:name"},
    {.name = "force", .type = CS_FIELD_BOOL, .desc = "replace an existing key of that name"},
    {.name = NULL},
};

static const struct cs_path transit_paths[] = {
    {.pattern = "keys", .ops = {[CS_OP_LIST] = tr_keys_list}, .synopsis = "list the keys"},
    {.pattern = "keys/{name}/config",
     .fields = config_fields,
     .ops = {[CS_OP_UPDATE] = tr_keys_config},
     .synopsis = "configure a key"},
    {.pattern = "keys/{name}/rotate",
     .ops = {[CS_OP_UPDATE] = tr_keys_rotate},
     .synopsis = "add a new version of a key"},
    {.pattern = "keys/{name}/trim",
     .fields = trim_fields,
     .ops = {[CS_OP_UPDATE] = tr_keys_trim},
     .synopsis = "delete the versions below min_available_version"},
    {.pattern = "keys/{name}",
     .fields = key_fields,
     .ops = {[CS_OP_READ] = tr_keys_read,
	     [CS_OP_UPDATE] = tr_keys_write,
	     [CS_OP_DELETE] = tr_keys_delete},
     .synopsis = "create, read or delete a named key"},
    {.pattern = "encrypt/{name}",
     .fields = crypt_fields,
     .ops = {[CS_OP_CREATE] = tr_encrypt_op, [CS_OP_UPDATE] = tr_encrypt_op},
     .exists = tr_key_exists,
     .synopsis = "encrypt with a named key (created if missing)"},
    {.pattern = "decrypt/{name}",
     .fields = crypt_fields,
     .ops = {[CS_OP_UPDATE] = tr_decrypt_op},
     .synopsis = "decrypt with a named key"},
    {.pattern = "rewrap/{name}",
     .fields = crypt_fields,
     .ops = {[CS_OP_UPDATE] = tr_rewrap_op},
     .synopsis = "re-encrypt a ciphertext with a key's latest version"},
    {.pattern = "datakey/{plaintext}/{name}",
     .fields = datakey_fields,
     .ops = {[CS_OP_UPDATE] = tr_datakey_op},
     .synopsis = "generate a data key, encrypted (and in plaintext)"},
    {.pattern = "export/{type}/{name}",
     .fields = export_fields,
     .ops = {[CS_OP_READ] = tr_export_op},
     .synopsis = "export every version of an exportable key"},
    {.pattern = "export/{type}/{name}/{version}",
     .fields = export_fields,
     .ops = {[CS_OP_READ] = tr_export_op},
     .synopsis = "export one version of an exportable key"},
    {.pattern = "cache-config",
     .fields = cache_fields,
     .ops = {[CS_OP_READ] = tr_cache_config_read, [CS_OP_UPDATE] = tr_cache_config_write},
     .synopsis = "the size of the key cache (0: no count limit, else at least 10)"},
    {.pattern = "backup/{name}",
     .ops = {[CS_OP_READ] = tr_backup_op},
     .synopsis = "back up an exportable key that allows plaintext backup"},
    {.pattern = "restore",
     .fields = restore_fields,
     .ops = {[CS_OP_UPDATE] = tr_restore_op},
     .synopsis = "restore a key from its backup, under the backup's name"},
    {.pattern = "restore/{name}",
     .fields = restore_fields,
     .ops = {[CS_OP_UPDATE] = tr_restore_op},
     .synopsis = "restore a key from its backup under this name"},
    {.pattern = "random",
     .fields = random_fields,
     .ops = {[CS_OP_UPDATE] = tr_random_op},
     .synopsis = "random bytes"},
    {.pattern = "random/{source}",
     .fields = random_fields,
     .ops = {[CS_OP_UPDATE] = tr_random_op},
     .synopsis = "random bytes (count or source in the path)"},
    {.pattern = "random/{source}/{urlbytes}",
     .fields = random_fields,
     .ops = {[CS_OP_UPDATE] = tr_random_op},
     .synopsis = "random bytes from a source"},
    {.pattern = "hash",
     .fields = hash_fields,
     .ops = {[CS_OP_UPDATE] = tr_hash_op},
     .synopsis = "hash data"},
    {.pattern = "hash/{urlalgorithm}",
     .fields = hash_fields,
     .ops = {[CS_OP_UPDATE] = tr_hash_op},
     .synopsis = "hash data with the algorithm in the path"},
    {.pattern = "hmac/{name}",
     .fields = hmac_fields,
     .ops = {[CS_OP_UPDATE] = tr_hmac_op},
     .synopsis = "HMAC data with a named key"},
    {.pattern = "hmac/{name}/{urlalgorithm}",
     .fields = hmac_fields,
     .ops = {[CS_OP_UPDATE] = tr_hmac_op},
     .synopsis = "HMAC data with the algorithm in the path"},
    {.pattern = "sign/{name}",
     .fields = hmac_fields,
     .ops = {[CS_OP_UPDATE] = tr_sign_op},
     .synopsis = "sign data with a named asymmetric key"},
    {.pattern = "sign/{name}/{urlalgorithm}",
     .fields = hmac_fields,
     .ops = {[CS_OP_UPDATE] = tr_sign_op},
     .synopsis = "sign data with the hash algorithm in the path"},
    {.pattern = "verify/{name}",
     .fields = hmac_fields,
     .ops = {[CS_OP_UPDATE] = tr_verify_op},
     .synopsis = "verify an HMAC or a signature"},
    {.pattern = "verify/{name}/{urlalgorithm}",
     .fields = hmac_fields,
     .ops = {[CS_OP_UPDATE] = tr_verify_op},
     .synopsis = "verify an HMAC with the algorithm in the path"},
};

/* sys/tools/hash and sys/tools/random: Vault serves the same handlers outside any mount. */
static const struct cs_path tools_paths[] = {
    {.pattern = "tools/random",
     .fields = random_fields,
     .ops = {[CS_OP_UPDATE] = tr_random_op},
     .synopsis = "random bytes"},
    {.pattern = "tools/random/{source}",
     .fields = random_fields,
     .ops = {[CS_OP_UPDATE] = tr_random_op},
     .synopsis = "random bytes (count or source in the path)"},
    {.pattern = "tools/random/{source}/{urlbytes}",
     .fields = random_fields,
     .ops = {[CS_OP_UPDATE] = tr_random_op},
     .synopsis = "random bytes from a source"},
    {.pattern = "tools/hash",
     .fields = hash_fields,
     .ops = {[CS_OP_UPDATE] = tr_hash_op},
     .synopsis = "hash data"},
    {.pattern = "tools/hash/{urlalgorithm}",
     .fields = hash_fields,
     .ops = {[CS_OP_UPDATE] = tr_hash_op},
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
    .reset = tr_cache_reset,
    .periodic = tr_periodic,
};
