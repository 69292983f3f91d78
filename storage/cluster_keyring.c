/*
 * The cluster TLS keyring (see cluster_keyring.h): encode the CA into the stored JSON and
 * decode it back.
 */
#include "storage/cluster_keyring.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/json.h"
#include "lib/secmem.h"
#include "lib/util.h"

static int pem_pair(const struct cs_cluster_cred *c, char **cert, size_t *cl, char **key,
		    size_t *kl)
{
	int rc = cs_cluster_tls_cert_to_pem(c->cert, cert, cl);
	if (rc)
		return rc;
	rc = cs_cluster_tls_key_to_pem(c->key, key, kl);
	if (rc)
		cs_cluster_tls_pem_free(*cert, *cl);
	return rc;
}

/* The keyring as Vault shapes it. */
static cJSON *keyring_json(const struct cs_cluster_cred *ca)
{
	char *cert, *key;
	size_t cl, kl;
	if (pem_pair(ca, &cert, &cl, &key, &kl))
		return NULL;
	cJSON *k = cJSON_CreateObject();
	cJSON_AddStringToObject(k, "id", "cluster-ca");
	cJSON_AddStringToObject(k, "key_type", "p256");
	cJSON_AddStringToObject(k, "cluster_cert", cert);
	cJSON_AddStringToObject(k, "cluster_key_params", key);
	cs_cluster_tls_pem_free(cert, cl);
	cs_cluster_tls_pem_free(key, kl);
	cJSON *j = cJSON_CreateObject();
	cJSON *keys = cJSON_AddArrayToObject(j, "keys");
	cJSON_AddItemToArray(keys, k);
	cJSON_AddStringToObject(j, "active_key_id", "cluster-ca");
	cJSON_AddNumberToObject(j, "term", 1);
	return j;
}

int cs_cluster_keyring_decode(const cJSON *j, struct cs_cluster_cred *out)
{
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(j, "keys");
	const cJSON *k = cJSON_GetArrayItem(keys, 0);
	const cJSON *cert = cJSON_GetObjectItemCaseSensitive(k, "cluster_cert");
	const cJSON *key = cJSON_GetObjectItemCaseSensitive(k, "cluster_key_params");
	if (!cJSON_IsString(cert) || !cJSON_IsString(key))
		return CS_EINVAL;
	struct cs_cluster_cred ca = {0};
	int rc =
	    cs_cluster_tls_cert_from_pem(cert->valuestring, strlen(cert->valuestring), &ca.cert);
	if (!rc)
		rc = cs_cluster_tls_key_from_pem(key->valuestring, strlen(key->valuestring),
						 &ca.key);
	if (rc) {
		cs_cluster_cred_free(&ca);
		return CS_EINVAL;
	}
	*out = ca;
	return 0;
}

int cs_cluster_keyring_put(struct cs_txn *txn, const struct cs_cluster_cred *ca)
{
	cJSON *j = keyring_json(ca);
	if (!j)
		return CS_EINTERNAL;
	char *s = cJSON_PrintUnformatted(j);
	int rc = cs_txn_put(txn, CS_CLUSTER_KEYRING_PATH, s, strlen(s));
	cs_zero(s, strlen(s));
	free(s);
	cs_json_delete_wiped(j);
	return rc;
}

int cs_cluster_keyring_get(struct cs_txn *txn, struct cs_cluster_cred *out)
{
	struct cs_buf b = CS_BUF_INIT;
	int rc = cs_txn_get(txn, CS_CLUSTER_KEYRING_PATH, &b);
	if (rc) {
		cs_buf_free_secure(&b);
		return rc;
	}
	cJSON *j = cJSON_ParseWithLength(b.data, b.len);
	cs_buf_free_secure(&b);
	rc = j ? cs_cluster_keyring_decode(j, out) : CS_EIO;
	cs_json_delete_wiped(j);
	return rc;
}
