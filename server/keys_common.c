/* Helpers shared by the key custody endpoints (see keys_common.h). */
#include "server/keys_common.h"

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
	cJSON_Delete(j);
	if (rc)
		return cs_req_error(req, CS_EIO, "stored seal config is corrupt");
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
