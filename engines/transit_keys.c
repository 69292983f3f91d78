/*
 * The transit engine's key management (engines/transit_internal.h): keys/, keys/:name,
 * its config, rotate and trim, and export/:type/:name[/:version], with Vault's checks,
 * error texts and response shapes.
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

/* ------------------------------------------------------------------ keys/ */

int tr_keys_list(struct cs_request *req)
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

int tr_keys_read(struct cs_request *req)
{
	const char *name = cs_req_capture(req, "name");
	cJSON *pol = NULL;
	int rc = tr_pol_load(req, name, &pol);
	if (rc)
		return rc;
	cs_req_set_data(req, tr_pol_format(name, pol));
	cs_json_delete_wiped(pol);
	return 0;
}

static int check_rotate_period(struct cs_request *req, int64_t secs)
{
	if (secs != 0 && secs < 3600)
		return cs_req_error(req, CS_EINVAL,
				    "auto rotate period must be 0 to disable or at least an hour");
	return 0;
}

/* ---- key generation on the worker pool (RSA takes seconds; ECDSA and ed25519 go the
 * same way so that there is one path) */

struct keygen_job {
	struct cs_async async;
	enum cs_transit_type type;
	uint8_t *der; /* the private key: wiped and freed with the job */
	size_t derlen;
	int rc;
};

static void keygen_free(struct keygen_job *j)
{
	tr_wipe_free(j->der, j->derlen);
	free(j);
}

/* Pool thread: touches only the job. */
static void keygen_work(struct cs_async *a)
{
	struct keygen_job *j = CS_CONTAINER_OF(a, struct keygen_job, async);
	j->rc = cs_transit_asym_generate(j->type, &j->der, &j->derlen);
}

static int keygen_defer(struct cs_request *req, enum cs_transit_type t, cs_async_resume_fn resume)
{
	struct keygen_job *j = calloc(1, sizeof *j);
	if (!j)
		return CS_ENOMEM;
	j->type = t;
	j->async.work = keygen_work;
	j->async.resume = resume;
	return cs_req_defer(req, &j->async);
}

/* The request's options for a new key, checked as Vault does. 0 and *type / *key_size, or
 * the request's error. */
static int key_options(struct cs_request *req, enum cs_transit_type *type, int64_t *key_size)
{
	bool derived = cs_req_bool(req, "derived", false);
	bool convergent = cs_req_bool(req, "convergent_encryption", false);
	int rc = check_rotate_period(req, cs_req_int(req, "auto_rotate_period", 0));
	if (rc)
		return rc;
	if (!derived && convergent)
		return cs_req_error(req, CS_EINVAL,
				    "convergent encryption requires derivation to be enabled");
	const char *tname = cs_req_str(req, "type", "aes256-gcm96");
	int t = cs_transit_type_parse(tname);
	if (t < 0)
		return cs_req_error(req, CS_EINVAL, "unknown key type %s", tname);
	/* Of the signing types only ed25519 derives (a seed per context), never convergent. */
	if (t == CS_TRANSIT_ED25519 && convergent)
		return cs_req_error(req, CS_EINVAL,
				    "convergent encryption not supported for keys of type %s",
				    tname);
	if (derived && cs_transit_is_asym((enum cs_transit_type)t) && t != CS_TRANSIT_ED25519)
		return cs_req_error(req, CS_EINVAL,
				    "key derivation and convergent encryption not supported for "
				    "keys of type %s",
				    tname);
	*key_size = cs_req_int(req, "key_size", 0);
	if (*key_size != 0) {
		if (t != CS_TRANSIT_HMAC)
			return cs_req_error(req, CS_EINVAL,
					    "key_size is not valid for algorithm %s", tname);
		if (*key_size < CS_TRANSIT_HMAC_MIN_SIZE || *key_size > CS_TRANSIT_HMAC_MAX_SIZE)
			return cs_req_error(req, CS_EINVAL, "invalid key_size %lld",
					    (long long)*key_size);
	} else if (t == CS_TRANSIT_HMAC) {
		*key_size = CS_TRANSIT_HMAC_MIN_SIZE;
	}
	*type = (enum cs_transit_type)t;
	return 0;
}

/* Store a new key (der: its generated private key, asymmetric types) unless one exists:
 * Vault leaves an existing key alone and says so. */
static int key_create(struct cs_request *req, const uint8_t *der, size_t derlen)
{
	const char *name = cs_req_capture(req, "name");
	enum cs_transit_type t;
	int64_t key_size;
	int rc = key_options(req, &t, &key_size);
	if (rc)
		return rc;
	cJSON *pol = NULL;
	rc = tr_pol_load(req, name, &pol);
	if (rc == 0) {
		cs_req_set_data(req, tr_pol_format(name, pol));
		cs_json_delete_wiped(pol);
		cs_req_warn(req, "key %s already existed", name);
		return 0;
	}
	if (rc != CS_ENOTFOUND)
		return rc;
	if (cs_transit_is_asym(t) && !der)
		return CS_ENOTFOUND; /* the caller generates the key and comes back */
	pol = tr_pol_new(t, cs_req_bool(req, "derived", false),
			 cs_req_bool(req, "convergent_encryption", false), key_size, der, derlen);
	tr_jset_bool(pol, "exportable", cs_req_bool(req, "exportable", false));
	tr_jset_bool(pol, "allow_plaintext_backup",
		     cs_req_bool(req, "allow_plaintext_backup", false));
	tr_jset_int(pol, "auto_rotate_period", cs_req_int(req, "auto_rotate_period", 0));
	rc = tr_pol_save(req, name, pol);
	if (!rc)
		cs_req_set_data(req, tr_pol_format(name, pol));
	cs_json_delete_wiped(pol);
	return rc;
}

static int keys_write_resume(struct cs_request *req, struct cs_async *a, int status)
{
	struct keygen_job *j = CS_CONTAINER_OF(a, struct keygen_job, async);
	int rc = status ? status : j->rc;
	if (!rc)
		rc = key_create(req, j->der, j->derlen);
	keygen_free(j);
	return rc;
}

int tr_keys_write(struct cs_request *req)
{
	if (!tr_name_ok(cs_req_capture(req, "name")))
		return cs_req_error(req, CS_EINVAL, "invalid key name");
	int rc = key_create(req, NULL, 0);
	if (rc != CS_ENOTFOUND)
		return rc;
	enum cs_transit_type t = CS_TRANSIT_AES256_GCM96;
	int64_t key_size;
	key_options(req, &t, &key_size); /* checked by key_create */
	return keygen_defer(req, t, keys_write_resume);
}

int tr_keys_delete(struct cs_request *req)
{
	const char *name = cs_req_capture(req, "name");
	cJSON *pol = NULL;
	int rc = tr_pol_load(req, name, &pol);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL,
				    "error deleting policy %s: could not delete key; not found",
				    name);
	if (rc)
		return rc;
	bool allowed = tr_jbool(pol, "deletion_allowed");
	cs_json_delete_wiped(pol);
	if (!allowed)
		return cs_req_error(
		    req, CS_EINVAL,
		    "error deleting policy %s: deletion is not allowed for this key", name);
	char key[160];
	snprintf(key, sizeof key, "policy/%s", name);
	tr_cache_forget(req, key);
	return cs_view_delete(req, key);
}

int tr_keys_config(struct cs_request *req)
{
	const char *name = cs_req_capture(req, "name");
	cJSON *pol = NULL;
	int rc = tr_pol_load(req, name, &pol);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL, "no existing key named %s could be found",
				    name);
	if (rc)
		return rc;
	/* Checks run on the loaded copy; nothing is stored unless all pass. */
	int64_t latest = tr_jint(pol, "latest_version");
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
		if (v != tr_jint(pol, "min_decryption_version")) {
			if (v > latest) {
				rc = cs_req_error(
				    req, CS_EINVAL,
				    "cannot set min decryption version of %lld, latest "
				    "key version is %lld",
				    (long long)v, (long long)latest);
				goto out;
			}
			tr_jset_int(pol, "min_decryption_version", v);
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
		if (v != tr_jint(pol, "min_encryption_version")) {
			if (v > latest) {
				rc = cs_req_error(
				    req, CS_EINVAL,
				    "cannot set min encryption version of %lld, latest "
				    "key version is %lld",
				    (long long)v, (long long)latest);
				goto out;
			}
			tr_jset_int(pol, "min_encryption_version", v);
			persist = true;
		}
	}
	int64_t min_enc = tr_jint(pol, "min_encryption_version");
	int64_t min_dec = tr_jint(pol, "min_decryption_version");
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
		if (v != tr_jbool(pol, "deletion_allowed")) {
			tr_jset_bool(pol, "deletion_allowed", v);
			persist = true;
		}
	}
	/* exportable and allow_plaintext_backup can be turned on, never off (Vault). */
	if (cs_req_bool(req, "exportable", false) && !tr_jbool(pol, "exportable")) {
		tr_jset_bool(pol, "exportable", true);
		persist = true;
	}
	if (cs_req_bool(req, "allow_plaintext_backup", false) &&
	    !tr_jbool(pol, "allow_plaintext_backup")) {
		tr_jset_bool(pol, "allow_plaintext_backup", true);
		persist = true;
	}
	if (cs_req_has(req, "auto_rotate_period")) {
		int64_t p = cs_req_int(req, "auto_rotate_period", 0);
		if ((rc = check_rotate_period(req, p)))
			goto out;
		if (p != tr_jint(pol, "auto_rotate_period")) {
			tr_jset_int(pol, "auto_rotate_period", p);
			persist = true;
		}
	}
	if (persist) {
		int64_t avail = tr_jint(pol, "min_available_version");
		if (avail > tr_jint(pol, "min_encryption_version")) {
			rc = cs_req_error(req, CS_EINVAL,
					  "min encryption version should not be "
					  "less than min available version");
			goto out;
		}
		if (avail > tr_jint(pol, "min_decryption_version")) {
			rc = cs_req_error(req, CS_EINVAL,
					  "min decryption version should not be "
					  "less then min available version");
			goto out;
		}
		if ((rc = tr_pol_save(req, name, pol)))
			goto out;
	}
	cs_req_set_data(req, tr_pol_format(name, pol));
	if (warning)
		cs_req_warn(req, "%s", warning);
out:
	cs_json_delete_wiped(pol);
	return rc;
}

/* Add a version (der: its private key for an asymmetric key, else NULL). */
static int key_rotate(struct cs_request *req, const uint8_t *der, size_t derlen)
{
	const char *name = cs_req_capture(req, "name");
	cJSON *pol = NULL;
	int rc = tr_pol_load(req, name, &pol);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL, "key not found");
	if (rc)
		return rc;
	enum cs_transit_type t = tr_pol_type(pol);
	if (cs_transit_is_asym(t) && !der) {
		cs_json_delete_wiped(pol);
		return CS_ENOTFOUND; /* the caller generates the key and comes back */
	}
	tr_pol_add_version(pol, der, derlen);
	rc = tr_pol_save(req, name, pol);
	if (!rc)
		cs_req_set_data(req, tr_pol_format(name, pol));
	cs_json_delete_wiped(pol);
	return rc;
}

static int keys_rotate_resume(struct cs_request *req, struct cs_async *a, int status)
{
	struct keygen_job *j = CS_CONTAINER_OF(a, struct keygen_job, async);
	int rc = status ? status : j->rc;
	/* The key may have been deleted and recreated with another type meanwhile. */
	cJSON *pol = NULL;
	if (!rc && !(rc = tr_pol_load(req, cs_req_capture(req, "name"), &pol)) &&
	    tr_pol_type(pol) != j->type)
		rc = cs_req_error(req, CS_EINVAL, "key changed during rotation; retry");
	cs_json_delete_wiped(pol);
	if (rc == CS_ENOTFOUND)
		rc = cs_req_error(req, CS_EINVAL, "key not found");
	if (!rc)
		rc = key_rotate(req, j->der, j->derlen);
	keygen_free(j);
	return rc;
}

int tr_keys_rotate(struct cs_request *req)
{
	int rc = key_rotate(req, NULL, 0);
	if (rc != CS_ENOTFOUND)
		return rc;
	cJSON *pol = NULL;
	if ((rc = tr_pol_load(req, cs_req_capture(req, "name"), &pol)))
		return rc;
	enum cs_transit_type t = tr_pol_type(pol);
	cs_json_delete_wiped(pol);
	return keygen_defer(req, t, keys_rotate_resume);
}

int tr_keys_trim(struct cs_request *req)
{
	const char *name = cs_req_capture(req, "name");
	cJSON *pol = NULL;
	int rc = tr_pol_load(req, name, &pol);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL, "invalid key name");
	if (rc)
		return rc;
	const char *msg = NULL;
	int64_t v = cs_req_int(req, "min_available_version", 0);
	if (!cs_req_has(req, "min_available_version"))
		msg = "missing min_available_version";
	else if (v < tr_jint(pol, "min_available_version"))
		msg = "minimum available version cannot be decremented";
	else if (tr_jint(pol, "min_encryption_version") == 0)
		msg = "minimum available version cannot be set when minimum encryption version is "
		      "not set";
	else if (tr_jint(pol, "min_decryption_version") == 0)
		msg = "minimum available version cannot be set when minimum decryption version is "
		      "not set";
	else if (v > tr_jint(pol, "min_encryption_version"))
		msg = "minimum available version cannot be greater than minmum encryption version";
	else if (v > tr_jint(pol, "min_decryption_version"))
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
	tr_jset_int(pol, "min_available_version", v);
	rc = tr_pol_save(req, name, pol);
	if (!rc)
		cs_req_set_data(req, tr_pol_format(name, pol));
	cs_json_delete_wiped(pol);
	return rc;
}

/* ------------------------------------------------------------------ export */

/* One version's exported value into out[version]: the stored string, or for signing-key
 * and public-key the private key re-encoded in the request's format. */
static int export_value(struct cs_request *req, const cJSON *e, enum cs_transit_type t,
			const char *field, bool signing, cJSON *out)
{
	if (strcmp(field, "priv") != 0) {
		cJSON_AddStringToObject(out, e->string, tr_jstr(e, field));
		return 0;
	}
	char err[TR_ERRLEN];
	size_t n = 0;
	uint8_t *der = tr_b64_dec(tr_jstr(e, field), &n, err, "");
	if (!der)
		return CS_EINTERNAL;
	char *val = NULL;
	const char *xerr = NULL;
	int rc =
	    cs_transit_asym_export(t, der, n, signing, cs_req_str(req, "format", ""), &val, &xerr);
	tr_wipe_free(der, n);
	if (rc)
		return xerr ? cs_req_error(req, rc, "%s", xerr) : rc;
	cJSON_AddStringToObject(out, e->string, val);
	cs_zero(val, strlen(val));
	free(val);
	return 0;
}

/* export/:type/:name[/:version] (Vault): the raw key material of an exportable key,
 * base64 per version. The response is wiped by the core like every response. */
int tr_export_op(struct cs_request *req)
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
	int rc = tr_pol_load(req, name, &pol);
	if (rc)
		return rc; /* a missing key is Vault's plain 404 */
	enum cs_transit_type t = tr_pol_type(pol);
	if (!tr_jbool(pol, "exportable") && !pub && !chain)
		rc = cs_req_error(req, CS_EINVAL, "private key material is not exportable");
	else if (enc && !cs_transit_is_aead(t))
		rc = cs_req_error(req, CS_EINVAL, "encryption not supported for the key");
	else if (signing && !cs_transit_is_asym(t))
		rc = cs_req_error(req, CS_EINVAL, "signing not supported for the key");
	else if (chain && !cs_transit_is_asym(t))
		rc = cs_req_error(req, CS_EINVAL,
				  "certificate chain not supported for keys that "
				  "do not support signing");
	else if (chain) /* no certificate chains are imported here */
		rc =
		    cs_req_error(req, CS_EINVAL,
				 "selected key version does not have a certificate chain imported");
	else if (pub && !cs_transit_is_asym(t))
		rc = cs_req_error(req, CS_EINVAL, "unknown key type %s for export type public-key",
				  cs_transit_type_name(t));
	else if ((enc || hmac) && (!strcmp(format, "der") || !strcmp(format, "pem")))
		rc = cs_req_error(req, CS_EINVAL,
				  "unknown format for HMAC key; supported values "
				  "are `` or `raw`");
	if (rc)
		goto out;
	/* The material field: an hmac key's HMAC key is its key; an asymmetric key's private
	 * key is re-encoded per version by export_value. */
	const char *field = signing || pub                ? "priv"
			    : enc || t == CS_TRANSIT_HMAC ? "key"
							  : "hmac_key";
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(pol, "keys");
	cJSON *out = cJSON_CreateObject();
	if (version) {
		int64_t v = 0;
		const char *vs = version[0] == 'v' ? version + 1 : version;
		if (strcmp(version, "latest") == 0)
			v = tr_jint(pol, "latest_version");
		else if (tr_atoi_strict(vs, &v)) {
			cJSON_Delete(out);
			rc = cs_req_error(req, CS_EINVAL, "invalid key version");
			goto out;
		}
		char num[24];
		snprintf(num, sizeof num, "%lld", (long long)v);
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(keys, num);
		if (v < tr_jint(pol, "min_decryption_version"))
			rc = cs_req_error(req, CS_EINVAL,
					  "version for export is below minimum decryption version");
		else if (!tr_jstr(e, field))
			rc = cs_req_error(req, CS_EINVAL,
					  "version does not exist or cannot be found");
		else
			rc = export_value(req, e, t, field, signing, out);
	} else {
		const cJSON *e;
		cJSON_ArrayForEach(e, keys) if (!rc && tr_jstr(e, field)) rc =
		    export_value(req, e, t, field, signing, out);
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
