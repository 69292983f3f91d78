/* Helpers shared by the key custody endpoints (see keys_common.h). */
#include "server/keys_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/util.h"
#include "server/core.h"
#include "storage/barrier.h"

#define SEAL_CONFIG_PATH "core/seal-config"

bool cs_keys_attempt_current(const struct cs_core *core, int64_t epoch)
{
	return core->active && core->kr && core->active_since_ns == epoch;
}

int cs_keys_seal_config(struct cs_request *req, int *shares, int *threshold)
{
	struct cs_buf b = CS_BUF_INIT;
	int rc = cs_txn_get_raw(&req->txn, SEAL_CONFIG_PATH, &b);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EUNINIT, "Vault is not initialized");
	if (rc)
		return cs_req_error(req, rc, "unable to read the seal config: %s", cs_strerror(rc));
	cJSON *j = cJSON_ParseWithLength(b.data, b.len);
	cs_buf_free(&b);
	rc = cs_seal_config_decode(j, shares, threshold);
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
	bool autoseal = cJSON_IsString(type) && strcmp(type->valuestring, "shamir") != 0;
	cJSON_Delete(j);
	if (rc)
		return cs_req_error(req, CS_EIO, "stored seal config is corrupt");
	if (!autoseal)
		return 0;
	/* An auto seal: the operators hold recovery shares (Vault's recovery seal). */
	rc = cs_txn_get_raw(&req->txn, CS_RECOVERY_CONFIG_PATH, &b);
	if (rc)
		return cs_req_error(req, CS_EIO, "unable to read the recovery config: %s",
				    cs_strerror(rc));
	j = cJSON_ParseWithLength(b.data, b.len);
	cs_buf_free(&b);
	rc = cs_seal_config_decode(j, shares, threshold);
	cJSON_Delete(j);
	if (rc)
		return cs_req_error(req, CS_EIO, "stored recovery config is corrupt");
	return 0;
}

bool cs_keys_nonce_ok(struct cs_request *req, const char *nonce)
{
	const char *given = cs_req_str(req, "nonce", "");
	return *given && *nonce && cs_ct_equal(given, strlen(given), nonce, strlen(nonce));
}

int cs_keys_add_share(struct cs_request *req, struct cs_share_set *set, const char *nonce,
		      int shares)
{
	const char *key = cs_req_str(req, "key", "");
	if (!*key)
		return cs_req_error(req, CS_EINVAL,
				    "'key' must be specified in request body as JSON");
	if (!cs_keys_nonce_ok(req, nonce))
		return cs_req_error(req, CS_EINVAL, "incorrect nonce supplied");
	size_t want = shares == 1 ? CS_KEY_LEN : CS_KEY_LEN + 1, len = 0;
	uint8_t *raw = cs_seal_decode_key(key, want, &len);
	if (!raw)
		return cs_req_error(req, CS_EINVAL, "'key' must be a valid hex or base64 string");
	int rc = CS_EINVAL;
	if (len != want)
		cs_req_error(req, CS_EINVAL, "invalid key length %zu (expected %zu)", len, want);
	else if ((rc = cs_share_set_add(set, raw, len)) == CS_EEXIST)
		rc = cs_req_error(req, CS_EINVAL,
				  "given key has already been provided during this operation");
	else if (rc)
		rc = cs_req_error(req, CS_EINVAL, "too many key shares");
	cs_zero(raw, len);
	free(raw);
	return rc;
}

static void wipe_strings(cJSON *j)
{
	cJSON *c;
	cJSON_ArrayForEach(c, j)
	{
		if (cJSON_IsString(c) && c->valuestring)
			cs_zero(c->valuestring, strlen(c->valuestring));
		else if (cJSON_IsArray(c) || cJSON_IsObject(c))
			wipe_strings(c);
	}
}

void cs_keys_free_secret_json(cJSON *j)
{
	if (!j)
		return;
	wipe_strings(j);
	cJSON_Delete(j);
}

/* The strings of a JSON array of strings (borrowed), or NULL if it is not one. */
static const char **str_array(const cJSON *a, int *n)
{
	*n = cJSON_GetArraySize(a);
	if (!cJSON_IsArray(a) || *n <= 0 || *n > CS_MAX_SHARES)
		return NULL;
	const char **v = calloc((size_t)*n, sizeof *v);
	if (!v)
		abort();
	for (int i = 0; i < *n; i++) {
		const cJSON *e = cJSON_GetArrayItem(a, i);
		if (!cJSON_IsString(e)) {
			free(v);
			return NULL;
		}
		v[i] = e->valuestring;
	}
	return v;
}

int cs_keys_pgp_check(const cJSON *pgp_keys, cJSON **fprs, char *errmsg, size_t errlen)
{
	int n;
	const char **keys = str_array(pgp_keys, &n);
	if (!keys) {
		snprintf(errmsg, errlen, "pgp_keys must be a list of base64 public keys");
		return CS_EINVAL;
	}
	char(*fpr)[CS_PGP_FPR_LEN + 1] = calloc((size_t)n, sizeof *fpr);
	if (!fpr)
		abort();
	int rc = cs_pgp_fingerprints(keys, n, fpr, errmsg, errlen);
	if (!rc && fprs) {
		*fprs = cJSON_CreateArray();
		for (int i = 0; i < n; i++)
			cJSON_AddItemToArray(*fprs, cJSON_CreateString(fpr[i]));
	}
	free(fpr);
	free(keys);
	return rc;
}

int cs_keys_pgp_shares(cJSON *obj, const cJSON *pgp_keys, cJSON **backup, char *errmsg,
		       size_t errlen)
{
	int n, m;
	const char **keys = str_array(pgp_keys, &n);
	const char **plain = str_array(cJSON_GetObjectItemCaseSensitive(obj, "keys"), &m);
	int rc = 0;
	if (!keys || !plain || n != m) {
		snprintf(errmsg, errlen, "incorrect number of PGP keys for the key shares");
		rc = CS_EINVAL;
	}
	struct cs_buf *ct = NULL;
	char(*fpr)[CS_PGP_FPR_LEN + 1] = NULL;
	if (!rc) {
		ct = calloc((size_t)n, sizeof *ct);
		fpr = calloc((size_t)n, sizeof *fpr);
		size_t *len = calloc((size_t)n, sizeof *len);
		if (!ct || !fpr || !len)
			abort();
		for (int i = 0; i < n; i++)
			len[i] = strlen(plain[i]);
		/* As Vault: the hex form of each share is what is encrypted. */
		rc = cs_pgp_encrypt(keys, (const uint8_t *const *)plain, len, n, ct, fpr, errmsg,
				    errlen);
		free(len);
	}
	if (!rc) {
		cJSON *hex = cJSON_CreateArray(), *b64 = cJSON_CreateArray();
		cJSON *fa = cJSON_CreateArray();
		cJSON *bk = backup ? cJSON_CreateObject() : NULL;
		cJSON *bh = bk ? cJSON_AddObjectToObject(bk, "keys") : NULL;
		cJSON *bb = bk ? cJSON_AddObjectToObject(bk, "keys_base64") : NULL;
		for (int i = 0; i < n; i++) {
			char *h = malloc(2 * ct[i].len + 1);
			if (!h)
				abort();
			cs_hex_encode((const uint8_t *)ct[i].data, ct[i].len, h);
			char *b = cs_b64_encode((const uint8_t *)ct[i].data, ct[i].len);
			cJSON_AddItemToArray(hex, cJSON_CreateString(h));
			cJSON_AddItemToArray(b64, cJSON_CreateString(b));
			cJSON_AddItemToArray(fa, cJSON_CreateString(fpr[i]));
			if (bk) {
				/* one fingerprint may hold several shares */
				cJSON *lh = cJSON_GetObjectItemCaseSensitive(bh, fpr[i]);
				cJSON *lb = cJSON_GetObjectItemCaseSensitive(bb, fpr[i]);
				if (!lh) {
					lh = cJSON_AddArrayToObject(bh, fpr[i]);
					lb = cJSON_AddArrayToObject(bb, fpr[i]);
				}
				cJSON_AddItemToArray(lh, cJSON_CreateString(h));
				cJSON_AddItemToArray(lb, cJSON_CreateString(b));
			}
			free(h);
			free(b);
			cs_buf_free(&ct[i]);
		}
		/* The plaintext shares are wiped before they are dropped. */
		cJSON *old = cJSON_DetachItemFromObjectCaseSensitive(obj, "keys");
		cs_keys_free_secret_json(old);
		old = cJSON_DetachItemFromObjectCaseSensitive(obj, "keys_base64");
		cs_keys_free_secret_json(old);
		cJSON_AddItemToObject(obj, "keys", hex);
		cJSON_AddItemToObject(obj, "keys_base64", b64);
		cJSON_DeleteItemFromObjectCaseSensitive(obj, "pgp_fingerprints");
		cJSON_AddItemToObject(obj, "pgp_fingerprints", fa);
		if (backup)
			*backup = bk;
	}
	free(ct);
	free(fpr);
	free(keys);
	free(plain);
	return rc;
}

int cs_keys_pgp_encrypt_text(const char *key, const char *text, char **out,
			     char fpr[CS_PGP_FPR_LEN + 1], char *errmsg, size_t errlen)
{
	const char *keys[1] = {key};
	const uint8_t *in[1] = {(const uint8_t *)text};
	size_t len[1] = {strlen(text)};
	struct cs_buf ct[1];
	char f[1][CS_PGP_FPR_LEN + 1];
	int rc = cs_pgp_encrypt(keys, in, len, 1, ct, f, errmsg, errlen);
	if (rc)
		return rc;
	*out = cs_b64_encode((const uint8_t *)ct[0].data, ct[0].len);
	memcpy(fpr, f[0], sizeof f[0]);
	cs_buf_free(&ct[0]);
	return 0;
}
