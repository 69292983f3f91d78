/*
 * backup/:name and restore[/:name] of the transit engine (engines/transit_internal.h), in
 * Vault's format: base64 of the JSON of a KeyData, {"policy": <the key policy, Vault's field
 * names>, "archived_keys": {"keys": [<entry per version, index = version>]}}.
 *
 * Symmetric and hmac keys carry exactly Vault's fields (key and hmac_key base64, time as
 * RFC 3339, creation_time in unix seconds), so a custos backup restores into Vault and a
 * Vault backup restores here. Signing keys also carry Vault's public_key, and ed25519 keys
 * Vault's "key" (seed || public key), so both directions work for ed25519 too; ECDSA and
 * RSA versions keep their private key as custos's "priv" (PKCS#8 DER, base64) instead of
 * Go's big-integer fields, which cJSON's doubles cannot carry: such a backup restores only
 * into custos, and a Vault ECDSA/RSA backup is refused with a message saying so.
 *
 * Both refuse as Vault does (backup: the key must be exportable and allow plaintext
 * backup; restore: an existing key needs force) and check everything before writing
 * anything: a bad backup changes nothing.
 */
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

/* Vault's KeyType numbers (sdk/helper/keysutil), as the backup's policy.type carries them. */
static const struct {
	enum cs_transit_type t;
	int vault;
} vault_types[] = {
    {CS_TRANSIT_AES256_GCM96, 0}, {CS_TRANSIT_ECDSA_P256, 1}, {CS_TRANSIT_ED25519, 2},
    {CS_TRANSIT_RSA2048, 3},      {CS_TRANSIT_RSA4096, 4},    {CS_TRANSIT_CHACHA20_POLY1305, 5},
    {CS_TRANSIT_ECDSA_P384, 6},   {CS_TRANSIT_ECDSA_P521, 7}, {CS_TRANSIT_AES128_GCM96, 8},
    {CS_TRANSIT_RSA3072, 9},      {CS_TRANSIT_HMAC, 11},
};

int tr_vault_type_num(enum cs_transit_type t)
{
	for (size_t i = 0; i < CS_ARRAY_LEN(vault_types); i++)
		if (vault_types[i].t == t)
			return vault_types[i].vault;
	return -1;
}

static int type_of_vault_num(int n)
{
	for (size_t i = 0; i < CS_ARRAY_LEN(vault_types); i++)
		if (vault_types[i].vault == n)
			return (int)vault_types[i].t;
	return -1;
}

void tr_rfc3339(int64_t secs, char out[32])
{
	time_t t = (time_t)secs;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Seconds of an RFC 3339 time ("2026-12-07T22:34:00.123456789Z", an offset is taken as
 * UTC's: only the order of versions depends on it); -1 when it is not one. */
static int64_t parse_rfc3339(const char *s)
{
	struct tm tm = {0};
	const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	return end ? (int64_t)timegm(&tm) : -1;
}

/* Go's JSON wants integers for int64 fields: cJSON would print 3.1536e+16. */
static void add_int_raw(cJSON *o, const char *name, int64_t v)
{
	char num[24];
	snprintf(num, sizeof num, "%lld", (long long)v);
	cJSON_AddItemToObject(o, name, cJSON_CreateRaw(num));
}

/* One version in Vault's KeyEntry form (plus "priv" for signing keys). */
static cJSON *entry_encode(const cJSON *pol, enum cs_transit_type t, const cJSON *e)
{
	cJSON *k = cJSON_CreateObject();
	const char *key = tr_jstr(e, "key"), *hkey = tr_jstr(e, "hmac_key");
	const char *priv = tr_jstr(e, "priv");
	char when[32];
	if (t == CS_TRANSIT_ED25519 && priv) {
		/* Vault's key: Go's ed25519.PrivateKey, seed || public key (our raw export). */
		char err[TR_ERRLEN];
		size_t n = 0;
		uint8_t *der = tr_b64_dec(priv, &n, err, "");
		char *raw = NULL;
		const char *xerr = NULL;
		if (der && !cs_transit_asym_export(t, der, n, true, "", &raw, &xerr))
			cJSON_AddStringToObject(k, "key", raw);
		if (raw)
			cs_zero(raw, strlen(raw));
		free(raw);
		tr_wipe_free(der, n);
	} else if (key) {
		cJSON_AddStringToObject(k, "key", key);
	}
	if (hkey)
		cJSON_AddStringToObject(k, "hmac_key", hkey);
	tr_rfc3339(tr_jint(e, "time"), when);
	cJSON_AddStringToObject(k, "time", when);
	cJSON_AddNumberToObject(k, "creation_time", (double)tr_jint(e, "time"));
	cJSON_AddStringToObject(k, "public_key",
				tr_jstr(e, "public_key") ? tr_jstr(e, "public_key") : "");
	if (tr_jbool(pol, "convergent"))
		cJSON_AddNumberToObject(k, "convergent_version", 3);
	if (priv)
		cJSON_AddStringToObject(k, "priv", priv);
	return k;
}

cJSON *tr_backup_encode(const char *name, const cJSON *pol)
{
	enum cs_transit_type t = tr_pol_type(pol);
	int64_t latest = tr_jint(pol, "latest_version");
	cJSON *kd = cJSON_CreateObject();
	cJSON *p = cJSON_AddObjectToObject(kd, "policy");
	cJSON_AddStringToObject(p, "name", name);
	cJSON_AddNumberToObject(p, "type", tr_vault_type_num(t));
	tr_pol_add_common(p, pol);
	cJSON_AddNumberToObject(p, "kdf", tr_jbool(pol, "derived") ? 1 : 0); /* hkdf_sha256 */
	cJSON_AddBoolToObject(p, "convergent_encryption", tr_jbool(pol, "convergent"));
	/* -1: "every version says its own convergent version" (Vault, since version 3). */
	cJSON_AddNumberToObject(p, "convergent_version", tr_jbool(pol, "convergent") ? -1 : 0);
	cJSON_AddNumberToObject(p, "archive_version", (double)latest);
	cJSON_AddNumberToObject(p, "archive_min_version",
				(double)tr_jint(pol, "min_available_version"));
	add_int_raw(p, "auto_rotate_period", tr_jint(pol, "auto_rotate_period") * 1000000000);
	cJSON_AddNumberToObject(p, "key_size", (double)tr_jint(pol, "key_size"));
	tr_add_info(p, "backup_info", cJSON_GetObjectItemCaseSensitive(pol, "backup_info"));
	tr_add_info(p, "restore_info", cJSON_GetObjectItemCaseSensitive(pol, "restore_info"));
	cJSON *keys = cJSON_AddObjectToObject(p, "keys");
	cJSON *archive =
	    cJSON_AddArrayToObject(cJSON_AddObjectToObject(kd, "archived_keys"), "keys");
	const cJSON *stored = cJSON_GetObjectItemCaseSensitive(pol, "keys");
	/* Vault's archive is indexed by version; index 0 and trimmed versions are empty. */
	for (int64_t v = 0; v <= latest; v++) {
		char vs[24];
		snprintf(vs, sizeof vs, "%lld", (long long)v);
		const cJSON *e = v ? cJSON_GetObjectItemCaseSensitive(stored, vs) : NULL;
		if (!e) {
			cJSON_AddItemToArray(archive, cJSON_CreateObject());
			continue;
		}
		cJSON_AddItemToObject(keys, vs, entry_encode(pol, t, e));
		cJSON_AddItemToArray(archive, entry_encode(pol, t, e));
	}
	return kd;
}

static int bad(char *err, const char *msg)
{
	snprintf(err, TR_ERRLEN, "invalid backup: %s", msg);
	return CS_EINVAL;
}

/* A base64 field of e that decodes to len bytes (any length in [lo, hi] when len is 0). */
static bool b64_field_ok(const cJSON *e, const char *name, size_t lo, size_t hi)
{
	const char *s = tr_jstr(e, name);
	char err[TR_ERRLEN];
	size_t n = 0;
	uint8_t *raw = s ? tr_b64_dec(s, &n, err, "") : NULL;
	bool ok = raw && n >= lo && n <= hi;
	tr_wipe_free(raw, n);
	return ok;
}

/* One version from the backup into our stored form; 0 or CS_EINVAL + err. */
static int entry_decode(enum cs_transit_type t, int64_t key_size, const cJSON *e, cJSON **out,
			char *err)
{
	*out = NULL;
	int64_t when = cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(e, "creation_time"))
			   ? tr_jint(e, "creation_time")
			   : 0;
	if (when <= 0)
		when = parse_rfc3339(tr_jstr(e, "time"));
	if (when < 0)
		when = cs_now_ns() / 1000000000;
	if (!b64_field_ok(e, "hmac_key", 1, TR_MAX_KEY))
		return bad(err, "a key version has no valid hmac_key");
	cJSON *k = cJSON_CreateObject();
	if (!cs_transit_is_asym(t)) {
		size_t want = t == CS_TRANSIT_HMAC ? (size_t)key_size : cs_transit_key_len(t);
		if (!b64_field_ok(e, "key", want, want)) {
			cJSON_Delete(k);
			return bad(err, "a key version's key has the wrong length for its type");
		}
		cJSON_AddStringToObject(k, "key", tr_jstr(e, "key"));
		/* An hmac key's HMAC key is the key itself (transit.c). */
		cJSON_AddStringToObject(k, "hmac_key",
					tr_jstr(e, t == CS_TRANSIT_HMAC ? "key" : "hmac_key"));
	} else {
		uint8_t *der = NULL;
		size_t n = 0;
		const char *priv = tr_jstr(e, "priv");
		if (priv) {
			der = tr_b64_dec(priv, &n, err, "");
		} else if (t == CS_TRANSIT_ED25519 && b64_field_ok(e, "key", 64, 64)) {
			size_t m = 0;
			uint8_t *raw = tr_b64_dec(tr_jstr(e, "key"), &m, err, "");
			if (raw && cs_transit_ed25519_from_seed(raw, &der, &n))
				der = NULL;
			tr_wipe_free(raw, m);
		}
		char *pub = der ? cs_transit_asym_public(t, der, n) : NULL;
		if (!pub) {
			tr_wipe_free(der, n);
			cJSON_Delete(k);
			if (!priv && t != CS_TRANSIT_ED25519)
				return bad(err,
					   "its ECDSA and RSA versions must carry custos's priv "
					   "field (a backup made by custos)");
			return bad(err, "a key version's private key does not parse");
		}
		char *b = cs_b64_encode(der, n);
		cJSON_AddStringToObject(k, "priv", b);
		cs_zero(b, strlen(b));
		free(b);
		tr_wipe_free(der, n);
		cJSON_AddStringToObject(k, "public_key", pub);
		free(pub);
		cJSON_AddStringToObject(k, "hmac_key", tr_jstr(e, "hmac_key"));
	}
	cJSON_AddNumberToObject(k, "time", (double)when);
	*out = k;
	return 0;
}

static bool jnum_in(const cJSON *o, const char *name, int64_t lo, int64_t hi, int64_t *v)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, name);
	if (!n || cJSON_IsNull(n)) {
		*v = 0;
		return lo <= 0 && 0 <= hi;
	}
	if (!cJSON_IsNumber(n) || n->valuedouble != (double)(int64_t)n->valuedouble)
		return false;
	*v = (int64_t)n->valuedouble;
	return *v >= lo && *v <= hi;
}

int tr_backup_decode(const cJSON *kd, cJSON **polp, const char **name, char *err)
{
	*polp = NULL;
	*name = NULL;
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(kd, "policy");
	if (!cJSON_IsObject(p))
		return bad(err, "no policy");
	*name = tr_jstr(p, "name");
	int64_t vt, latest, min_dec, min_enc, min_avail, key_size, period;
	const cJSON *tn = cJSON_GetObjectItemCaseSensitive(p, "type");
	int t = -1;
	if (!cJSON_IsNumber(tn) || !jnum_in(p, "type", 0, 100, &vt) ||
	    (t = type_of_vault_num((int)vt)) < 0)
		return bad(err, "unsupported key type");
	if (!jnum_in(p, "latest_version", 1, CS_TRANSIT_MAX_VERSION, &latest))
		return bad(err, "latest_version out of range");
	if (!jnum_in(p, "min_decryption_version", 0, latest, &min_dec) ||
	    !jnum_in(p, "min_encryption_version", 0, latest, &min_enc) ||
	    !jnum_in(p, "min_available_version", 0, latest, &min_avail) ||
	    (min_avail > 0 && (min_avail > min_dec || (min_enc && min_avail > min_enc))))
		return bad(err, "inconsistent minimum versions");
	if (min_dec == 0)
		min_dec = 1; /* Vault's numbering starts at 1 */
	if (t == CS_TRANSIT_HMAC && !cJSON_GetObjectItemCaseSensitive(p, "key_size"))
		key_size = CS_TRANSIT_HMAC_MIN_SIZE;
	else if (!jnum_in(p, "key_size", 0, CS_TRANSIT_HMAC_MAX_SIZE, &key_size) ||
		 (t == CS_TRANSIT_HMAC && key_size < CS_TRANSIT_HMAC_MIN_SIZE))
		return bad(err, "invalid key_size");
	/* Nanoseconds (Go's time.Duration); 0 or at least an hour, as keys/:name/config. */
	if (!jnum_in(p, "auto_rotate_period", 0, CS_MAX_DURATION_SECS * 1000000000, &period) ||
	    (period && period < INT64_C(3600) * 1000000000))
		return bad(err, "invalid auto_rotate_period");
	bool derived = tr_jbool(p, "derived"), convergent = tr_jbool(p, "convergent_encryption");
	if ((convergent && !derived) ||
	    (derived && cs_transit_is_asym((enum cs_transit_type)t) && t != CS_TRANSIT_ED25519) ||
	    (t == CS_TRANSIT_HMAC && derived) || (t == CS_TRANSIT_ED25519 && convergent))
		return bad(err, "derivation options do not fit the key type");
	cJSON *pol = cJSON_CreateObject();
	cJSON_AddStringToObject(pol, "type", cs_transit_type_name((enum cs_transit_type)t));
	cJSON_AddBoolToObject(pol, "derived", derived);
	cJSON_AddBoolToObject(pol, "convergent", convergent);
	cJSON_AddNumberToObject(pol, "latest_version", (double)latest);
	cJSON_AddNumberToObject(pol, "min_decryption_version", (double)min_dec);
	cJSON_AddNumberToObject(pol, "min_encryption_version", (double)min_enc);
	cJSON_AddNumberToObject(pol, "min_available_version", (double)min_avail);
	if (t == CS_TRANSIT_HMAC)
		cJSON_AddNumberToObject(pol, "key_size", (double)key_size);
	cJSON_AddBoolToObject(pol, "exportable", tr_jbool(p, "exportable"));
	cJSON_AddBoolToObject(pol, "allow_plaintext_backup", tr_jbool(p, "allow_plaintext_backup"));
	cJSON_AddBoolToObject(pol, "deletion_allowed", tr_jbool(p, "deletion_allowed"));
	cJSON_AddNumberToObject(pol, "auto_rotate_period", (double)(period / 1000000000));
	const cJSON *bi = cJSON_GetObjectItemCaseSensitive(p, "backup_info");
	int64_t bt = parse_rfc3339(tr_jstr(bi, "time"));
	if (bt >= 0) {
		cJSON *o = cJSON_AddObjectToObject(pol, "backup_info");
		cJSON_AddNumberToObject(o, "time", (double)bt);
		cJSON_AddNumberToObject(o, "version", (double)tr_jint(bi, "version"));
	}
	/* Every version from the oldest available to the latest: from the policy, else from
	 * the archive (Vault moves versions below min_decryption_version there). */
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(p, "keys");
	const cJSON *arch = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(kd, "archived_keys"), "keys");
	cJSON *out = cJSON_AddObjectToObject(pol, "keys");
	for (int64_t v = min_avail > 0 ? min_avail : 1; v <= latest; v++) {
		char vs[24];
		snprintf(vs, sizeof vs, "%lld", (long long)v);
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(keys, vs);
		if (!cJSON_IsObject(e) && cJSON_IsArray(arch) && v < cJSON_GetArraySize(arch))
			e = cJSON_GetArrayItem(arch, (int)v);
		cJSON *k = NULL;
		int rc = cJSON_IsObject(e)
			     ? entry_decode((enum cs_transit_type)t, key_size, e, &k, err)
			     : bad(err, "a key version is missing");
		if (rc) {
			cs_json_delete_wiped(pol);
			return rc;
		}
		cJSON_AddItemToObject(out, vs, k);
	}
	*polp = pol;
	return 0;
}

/* ------------------------------------------------------------------ handlers */

int tr_backup_op(struct cs_request *req)
{
	const char *name = cs_req_capture(req, "name");
	cJSON *pol = NULL;
	int rc = tr_pol_load(req, name, &pol);
	/* Vault answers these with plain errors (a 500); they are the client's doing, so
	 * custos says 400 with Vault's texts. */
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL, "key \"%s\" not found", name);
	if (rc)
		return rc;
	if (!tr_jbool(pol, "allow_plaintext_backup") || !tr_jbool(pol, "exportable")) {
		cs_json_delete_wiped(pol);
		return cs_req_error(req, CS_EINVAL, "exporting is disallowed on the policy");
	}
	/* Vault records the backup on the key (keys/:name shows backup_info). */
	cJSON *bi = cJSON_CreateObject();
	cJSON_AddNumberToObject(bi, "time", (double)(cs_now_ns() / 1000000000));
	cJSON_AddNumberToObject(bi, "version", (double)tr_jint(pol, "latest_version"));
	cJSON_DeleteItemFromObjectCaseSensitive(pol, "backup_info");
	cJSON_AddItemToObject(pol, "backup_info", bi);
	if ((rc = tr_pol_save(req, name, pol))) {
		cs_json_delete_wiped(pol);
		return rc;
	}
	cJSON *kd = tr_backup_encode(name, pol);
	cs_json_delete_wiped(pol);
	char *json = cJSON_PrintUnformatted(kd);
	cs_json_delete_wiped(kd);
	if (!json)
		return CS_ENOMEM;
	char *b64 = cs_b64_encode((const uint8_t *)json, strlen(json));
	cs_zero(json, strlen(json));
	free(json);
	cJSON *data = cJSON_CreateObject();
	cJSON_AddStringToObject(data, "backup", b64);
	cs_zero(b64, strlen(b64));
	free(b64);
	cs_req_set_data(req, data);
	return 0;
}

int tr_restore_op(struct cs_request *req)
{
	const char *b64 = cs_req_str(req, "backup", "");
	if (!*b64)
		return cs_req_error(req, CS_EINVAL, "'backup' must be supplied");
	char err[TR_ERRLEN];
	size_t n = 0;
	uint8_t *raw = tr_b64_dec(b64, &n, err, "");
	if (!raw)
		return cs_req_error(req, CS_EINVAL, "%s", err);
	char jerr[128];
	cJSON *kd = cs_json_parse_strict((const char *)raw, n, jerr, sizeof jerr);
	tr_wipe_free(raw, n);
	if (!kd)
		return cs_req_error(req, CS_EINVAL, "invalid backup: %s", jerr);
	cJSON *pol = NULL;
	const char *bname = NULL;
	int rc = tr_backup_decode(kd, &pol, &bname, err);
	const char *name = cs_req_capture(req, "name");
	char *nm = strdup(name ? name : bname ? bname : "");
	cs_json_delete_wiped(kd);
	if (!nm)
		abort();
	if (rc)
		rc = cs_req_error(req, rc, "%s", err);
	else if (!tr_name_ok(nm))
		rc = cs_req_error(req, CS_EINVAL,
				  strchr(nm, '/') ? "key names cannot be paths"
						  : "invalid key name");
	cJSON *old = NULL;
	int lrc = rc ? 0 : tr_pol_load(req, nm, &old);
	cs_json_delete_wiped(old);
	if (!rc && lrc == 0 && !cs_req_bool(req, "force", false))
		rc = cs_req_error(req, CS_EINVAL, "key \"%s\" already exists", nm);
	else if (!rc && lrc && lrc != CS_ENOTFOUND)
		rc = lrc;
	if (!rc) {
		cJSON *ri = cJSON_AddObjectToObject(pol, "restore_info");
		cJSON_AddNumberToObject(ri, "time", (double)(cs_now_ns() / 1000000000));
		cJSON_AddNumberToObject(ri, "version", (double)tr_jint(pol, "latest_version"));
		rc = tr_pol_save(req, nm, pol);
	}
	cs_json_delete_wiped(pol);
	free(nm);
	return rc;
}
