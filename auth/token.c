#include "auth/token.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/err.h"
#include "lib/secmem.h"
#include "lib/util.h"

#define SALT_PATH "sys/token/salt"
#define SALT_LEN  32

/* The salt, cached between unseal and seal (reset hook). */
static uint8_t *salt;

static void token_reset(void)
{
	cs_secmem_free(salt, SALT_LEN);
	salt = NULL;
}

static int load_salt(struct cs_txn *txn)
{
	if (salt)
		return 0;
	struct cs_buf b = CS_BUF_INIT;
	int rc = cs_txn_get(txn, SALT_PATH, &b);
	if (!rc && b.len != SALT_LEN)
		rc = CS_EIO;
	if (!rc) {
		salt = cs_secmem_alloc(SALT_LEN);
		memcpy(salt, b.data, SALT_LEN);
	}
	cs_buf_free_secure(&b);
	return rc;
}

/* key = prefix + hex(HMAC-SHA256(salt, value)) */
static void salted_key(const char *prefix, const char *value, char *out, size_t outlen)
{
	uint8_t mac[32];
	unsigned int maclen = sizeof mac;
	HMAC(EVP_sha256(), salt, SALT_LEN, (const uint8_t *)value, strlen(value), mac, &maclen);
	char hex[65];
	cs_hex_encode(mac, sizeof mac, hex);
	snprintf(out, outlen, "%s%s", prefix, hex);
}

int cs_token_lookup(struct cs_core *core, struct cs_txn *txn, const char *token, cJSON **entry)
{
	(void)core;
	*entry = NULL;
	int rc = load_salt(txn);
	if (rc == CS_ENOTFOUND)
		return 0;
	if (rc)
		return rc;
	char key[128];
	salted_key("sys/token/id/", token, key, sizeof key);
	struct cs_buf b = CS_BUF_INIT;
	rc = cs_txn_get(txn, key, &b);
	if (rc == CS_ENOTFOUND) {
		cs_buf_free(&b);
		return 0;
	}
	if (!rc) {
		*entry = cJSON_ParseWithLength(b.data, b.len);
		if (!*entry)
			rc = CS_EIO;
	}
	cs_buf_free_secure(&b);
	if (*entry) {
		/* An expired token is no token. */
		const cJSON *exp = cJSON_GetObjectItemCaseSensitive(*entry, "expire_time");
		if (cJSON_IsNumber(exp) && exp->valuedouble > 0 &&
		    (double)time(NULL) >= exp->valuedouble) {
			cJSON_Delete(*entry);
			*entry = NULL;
		}
	}
	return rc;
}

int cs_token_create_root(struct cs_core *core, struct cs_txn *txn, const char *id, char *out,
			 size_t outlen)
{
	(void)core;
	uint8_t fresh[SALT_LEN];
	cs_random(fresh, sizeof fresh);
	int rc = cs_txn_put(txn, SALT_PATH, fresh, sizeof fresh);
	if (rc)
		return rc;
	token_reset();
	salt = cs_secmem_alloc(SALT_LEN);
	memcpy(salt, fresh, SALT_LEN);
	cs_zero(fresh, sizeof fresh);

	char token[160], accessor[32];
	if (id && *id) {
		if (strlen(id) >= sizeof token)
			return CS_EINVAL;
		snprintf(token, sizeof token, "%s", id);
	} else {
		memcpy(token, "hvs.", 4);
		cs_random_base62(token + 4, 24);
	}
	cs_random_base62(accessor, 24);

	cJSON *e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "accessor", accessor);
	cJSON *pol = cJSON_AddArrayToObject(e, "policies");
	cJSON_AddItemToArray(pol, cJSON_CreateString("root"));
	cJSON_AddStringToObject(e, "path", "auth/token/root");
	cJSON_AddStringToObject(e, "display_name", "root");
	cJSON_AddNullToObject(e, "meta");
	cJSON_AddNumberToObject(e, "num_uses", 0);
	cJSON_AddNumberToObject(e, "creation_time", (double)time(NULL));
	cJSON_AddNumberToObject(e, "creation_ttl", 0);
	cJSON_AddNumberToObject(e, "expire_time", 0);
	cJSON_AddNumberToObject(e, "explicit_max_ttl", 0);
	cJSON_AddNumberToObject(e, "period", 0);
	cJSON_AddBoolToObject(e, "orphan", true);
	cJSON_AddStringToObject(e, "parent", "");
	cJSON_AddStringToObject(e, "type", "service");
	cJSON_AddBoolToObject(e, "renewable", false);
	char key[128];
	salted_key("sys/token/id/", token, key, sizeof key);
	char *s = cJSON_PrintUnformatted(e);
	rc = cs_txn_put(txn, key, s, strlen(s));
	free(s);
	cJSON_Delete(e);
	if (!rc) {
		char akey[128];
		salted_key("sys/token/accessor/", accessor, akey, sizeof akey);
		cJSON *a = cJSON_CreateObject();
		cJSON_AddStringToObject(a, "token_key", key);
		s = cJSON_PrintUnformatted(a);
		rc = cs_txn_put(txn, akey, s, strlen(s));
		free(s);
		cJSON_Delete(a);
	}
	if (!rc)
		snprintf(out, outlen, "%s", token);
	cs_zero(token, sizeof token);
	return rc;
}

static void copy_item(cJSON *dst, const cJSON *src, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(src, name);
	if (v)
		cJSON_AddItemToObject(dst, name, cJSON_Duplicate(v, true));
	else
		cJSON_AddNullToObject(dst, name);
}

static int lookup_self(struct cs_request *req)
{
	const cJSON *e = req->token_entry;
	if (!e)
		return cs_req_error(req, CS_EPERM, "permission denied");
	cJSON *d = cJSON_CreateObject();
	static const char *same[] = {"accessor", "creation_ttl", "display_name", "explicit_max_ttl",
				     "meta",     "num_uses",     "orphan",       "path",
				     "policies", "renewable",    "type",         "period"};
	for (size_t i = 0; i < CS_ARRAY_LEN(same); i++)
		copy_item(d, e, same[i]);
	const cJSON *ct = cJSON_GetObjectItemCaseSensitive(e, "creation_time");
	double created = cJSON_IsNumber(ct) ? ct->valuedouble : 0;
	cJSON_AddNumberToObject(d, "creation_time", created);
	char iso[64];
	cs_format_time((int64_t)created * 1000000000LL, iso, sizeof iso);
	cJSON_AddStringToObject(d, "issue_time", iso);
	const cJSON *exp = cJSON_GetObjectItemCaseSensitive(e, "expire_time");
	double expires = cJSON_IsNumber(exp) ? exp->valuedouble : 0;
	if (expires > 0) {
		cs_format_time((int64_t)expires * 1000000000LL, iso, sizeof iso);
		cJSON_AddStringToObject(d, "expire_time", iso);
		double ttl = expires - (double)time(NULL);
		cJSON_AddNumberToObject(d, "ttl", ttl > 0 ? ttl : 0);
	} else {
		cJSON_AddNullToObject(d, "expire_time");
		cJSON_AddNumberToObject(d, "ttl", 0);
	}
	cJSON_AddStringToObject(d, "entity_id", "");
	cJSON_AddStringToObject(d, "id", req->client_token);
	cJSON_AddNullToObject(d, "identity_policies");
	cs_req_set_data(req, d);
	return 0;
}

#define OPS(r, u)                                                                                  \
	{                                                                                          \
		[CS_OP_READ] = r, [CS_OP_UPDATE] = u                                               \
	}

static const struct cs_path token_paths[] = {
    {"lookup-self", NULL, OPS(lookup_self, lookup_self), NULL, 0,
     "information about the client token"},
};

const struct cs_backend cs_token_backend = {
    .type = "token",
    .is_auth = true,
    .paths = token_paths,
    .n_paths = CS_ARRAY_LEN(token_paths),
    .reset = token_reset,
};
