/*
 * Shamir seal: init, unseal, seal, and the -dev bootstrap (see seal.h for the layout).
 *
 * Key hygiene: the KEK, the root key and the unseal shares only ever live in cs_secmem
 * memory or in stack/heap buffers that are zeroised before they are released; nothing
 * here logs a key or a share.
 */
#include "server/seal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/secmem.h"
#include "lib/util.h"
#include "server/ha.h"
#include "server/seal_config.h"
#include "server/sys.h"
#include "storage/keyring_store.h"
#include "storage/shamir.h"

#define SEAL_CONFIG_PATH  "core/seal-config"
#define ROOT_KEY_PATH     "core/hsm/barrier-unseal-keys"
#define KEYRING_PATH      "core/keyring"
#define CLUSTER_INFO_PATH "core/cluster/local/info"
#define SHAMIR_KEK_PATH   "core/shamir-kek"

bool cs_seal_config_valid(int shares, int threshold)
{
	return shares >= 1 && shares <= CS_MAX_SHARES && threshold >= 1 && threshold <= shares;
}

int cs_seal_config_decode(const cJSON *sc, int *shares, int *threshold)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(sc, "secret_shares");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(sc, "secret_threshold");
	/* Compare as doubles first: valueint saturates, and 255.5 is not a share count. */
	if (!cJSON_IsNumber(n) || !cJSON_IsNumber(t) || n->valuedouble != (double)n->valueint ||
	    t->valuedouble != (double)t->valueint ||
	    !cs_seal_config_valid(n->valueint, t->valueint))
		return CS_EINVAL;
	*shares = n->valueint;
	*threshold = t->valueint;
	return 0;
}

/* The recovery config of an auto seal (plaintext, core/recovery-config). */
static int read_recovery_config(struct cs_core *core, int *n, int *t)
{
	struct cs_buf b = CS_BUF_INIT;
	int rc = cs_store_get(&core->st.store, CS_RECOVERY_CONFIG_PATH,
			      strlen(CS_RECOVERY_CONFIG_PATH), &b);
	if (rc)
		return rc;
	cJSON *j = cJSON_ParseWithLength(b.data, b.len);
	cs_buf_free(&b);
	rc = cs_seal_config_decode(j, n, t);
	cJSON_Delete(j);
	return rc;
}

/* A stored seal config: its kind, share counts and (auto seals) recovery counts. */
static int decode_stored(struct cs_core *core, const void *data, size_t len, int *kind, int *n,
			 int *t, int *rn, int *rt)
{
	cJSON *j = cJSON_ParseWithLength(data, len);
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
	*kind = cJSON_IsString(type) ? cs_seal_kind_parse(type->valuestring) : CS_SEAL_SHAMIR;
	int rc = *kind < 0 ? CS_EINVAL : cs_seal_config_decode(j, n, t);
	cJSON_Delete(j);
	*rn = *rt = 0;
	if (!rc && *kind != CS_SEAL_SHAMIR)
		rc = read_recovery_config(core, rn, rt);
	return rc;
}

int cs_seal_load_config(struct cs_core *core)
{
	struct cs_buf b = CS_BUF_INIT;
	int rc = cs_store_get(&core->st.store, SEAL_CONFIG_PATH, strlen(SEAL_CONFIG_PATH), &b);
	if (rc == CS_ENOTFOUND) {
		core->initialized = false;
		return 0;
	}
	if (rc) {
		snprintf(core->errmsg, sizeof core->errmsg, "read seal config: %s",
			 core->st.store.errmsg);
		return rc;
	}
	int n = 0, t = 0, kind = 0, rn = 0, rt = 0;
	rc = decode_stored(core, b.data, b.len, &kind, &n, &t, &rn, &rt);
	cs_buf_free(&b);
	if (rc) {
		/* A threshold above the share array would let unseal submissions write past
		 * it: refuse to start rather than guess. */
		snprintf(core->errmsg, sizeof core->errmsg,
			 "stored seal config is corrupt: need a known type and 1 <= "
			 "secret_threshold <= secret_shares <= %d",
			 CS_MAX_SHARES);
		return CS_EIO;
	}
	cs_core_unseal_reset(core);
	core->seal.shares = n;
	core->seal.threshold = t;
	core->seal.kind = kind;
	core->seal.recovery_shares = rn;
	core->seal.recovery_threshold = rt;
	core->initialized = true;
	return 0;
}

/* Re-read the seal config of an initialised node (a rekey applied through raft changes
 * it under a running standby). Leaves the in-memory config alone when storage has none
 * (a joining node takes it from the leader's challenge) or while shares are pending. */
void cs_seal_refresh_config(struct cs_core *core)
{
	if (core->seal.progress > 0 || cs_ha_join_pending(core))
		return;
	struct cs_buf b = CS_BUF_INIT;
	if (cs_store_get(&core->st.store, SEAL_CONFIG_PATH, strlen(SEAL_CONFIG_PATH), &b))
		return;
	int n, t, kind, rn, rt;
	if (!decode_stored(core, b.data, b.len, &kind, &n, &t, &rn, &rt)) {
		core->seal.shares = n;
		core->seal.threshold = t;
		core->seal.kind = kind;
		core->seal.recovery_shares = rn;
		core->seal.recovery_threshold = rt;
		core->initialized = true;
	}
	cs_buf_free(&b);
}

/* core/hsm/barrier-unseal-keys: the root key under the KEK, bound to its path. */
static int wrap_root_key(struct cs_txn *txn, const uint8_t *kek, const uint8_t *root_key)
{
	struct cs_buf b = CS_BUF_INIT;
	int rc =
	    cs_aead_seal(kek, 1, ROOT_KEY_PATH, strlen(ROOT_KEY_PATH), root_key, CS_KEY_LEN, &b);
	if (!rc)
		rc = cs_txn_put_raw(txn, ROOT_KEY_PATH, b.data, b.len);
	cs_buf_free(&b);
	return rc;
}

int cs_seal_make_shares(const uint8_t *kek, int n, int t, uint8_t **mem, size_t *share_len)
{
	*mem = NULL;
	if (!cs_seal_config_valid(n, t) || (n > 1 && t < 2))
		return CS_EINVAL;
	/* One share is the KEK itself (Vault's rule); otherwise KEK+1 bytes each. */
	size_t len = n == 1 ? CS_KEY_LEN : CS_KEY_LEN + 1;
	uint8_t *m = cs_secmem_alloc(len * (size_t)n);
	int rc = 0;
	if (n == 1) {
		memcpy(m, kek, CS_KEY_LEN);
	} else {
		uint8_t *shares[CS_MAX_SHARES];
		for (int i = 0; i < n; i++)
			shares[i] = m + len * (size_t)i;
		rc = cs_shamir_split(kek, CS_KEY_LEN, n, t, shares);
	}
	if (rc) {
		cs_secmem_free(m, len * (size_t)n);
		return rc;
	}
	*mem = m;
	*share_len = len;
	return 0;
}

static cJSON *string_array_take(char **v, int n);

void cs_seal_add_shares_json(cJSON *obj, const uint8_t *mem, int n, size_t share_len)
{
	char *hex[CS_MAX_SHARES], *b64[CS_MAX_SHARES];
	for (int i = 0; i < n; i++) {
		const uint8_t *sh = mem + share_len * (size_t)i;
		hex[i] = malloc(2 * share_len + 1);
		if (!hex[i])
			abort();
		cs_hex_encode(sh, share_len, hex[i]);
		b64[i] = cs_b64_encode(sh, share_len);
	}
	cJSON_AddItemToObject(obj, "keys", string_array_take(hex, n));
	cJSON_AddItemToObject(obj, "keys_base64", string_array_take(b64, n));
}

/* ------------------------------------------------------------------ share sets */

int cs_share_set_add(struct cs_share_set *s, const uint8_t *key, size_t len)
{
	for (int i = 0; i < s->n; i++)
		if (cs_ct_equal(s->keys[i], s->len[i], key, len))
			return CS_EEXIST;
	if (s->n < 0 || s->n >= CS_MAX_SHARES)
		return CS_EINVAL;
	s->keys[s->n] = cs_secmem_alloc(len);
	memcpy(s->keys[s->n], key, len);
	s->len[s->n] = len;
	s->n++;
	return 0;
}

void cs_share_set_clear(struct cs_share_set *s)
{
	for (int i = 0; i < s->n && i < CS_MAX_SHARES; i++) {
		cs_secmem_free(s->keys[i], s->len[i]);
		s->keys[i] = NULL;
	}
	s->n = 0;
}

int cs_share_set_combine(const struct cs_share_set *s, uint8_t *kek)
{
	if (s->n == 1) { /* a single-share seal: the share is the key */
		if (s->len[0] != CS_KEY_LEN)
			return CS_EINVAL;
		memcpy(kek, s->keys[0], CS_KEY_LEN);
		return 0;
	}
	if (s->n < 2 || s->len[0] != CS_KEY_LEN + 1)
		return CS_EINVAL;
	for (int i = 1; i < s->n; i++)
		if (s->len[i] != s->len[0])
			return CS_EINVAL;
	return cs_shamir_combine((const uint8_t *const *)s->keys, s->n, s->len[0], kek);
}

static int read_kek(struct cs_core *core, uint8_t *kek);
static int read_barrier_key(struct cs_core *core, const char *path, uint8_t *key);

int cs_seal_check_shares(struct cs_core *core, const struct cs_share_set *s, uint8_t *kek)
{
	uint8_t *cur = cs_secmem_alloc(CS_KEY_LEN);
	int rc = cs_share_set_combine(s, kek);
	/* With an auto seal the operators hold recovery shares: they rebuild the
	 * recovery key, never the KEK (Vault's recovery seal). */
	if (!rc)
		rc = core->seal.kind != CS_SEAL_SHAMIR
			 ? read_barrier_key(core, CS_RECOVERY_KEY_PATH, cur)
			 : read_kek(core, cur);
	if (!rc && !cs_ct_equal(kek, CS_KEY_LEN, cur, CS_KEY_LEN))
		rc = CS_EINVAL;
	if (rc == CS_EINVAL)
		cs_zero(kek, CS_KEY_LEN);
	cs_secmem_free(cur, CS_KEY_LEN);
	return rc;
}

static int put_recovery_config(struct cs_txn *txn, int n, int t);
static int put_seal_config(struct cs_txn *txn, int n, int t);

int cs_seal_rekey_write(struct cs_core *core, struct cs_txn *txn, const uint8_t *new_kek, int n,
			int t)
{
	if (!core->kr)
		return CS_ESEALED;
	if (!cs_seal_config_valid(n, t) || core->seal.kind != CS_SEAL_SHAMIR)
		return CS_EINVAL;
	/* All three in the one write-set: a node applies the new config, the re-wrapped
	 * root key and the new barrier copy of the KEK together or not at all. */
	int rc = put_seal_config(txn, n, t);
	if (!rc)
		rc = wrap_root_key(txn, new_kek, core->kr->root_key);
	if (!rc)
		rc = cs_txn_put(txn, SHAMIR_KEK_PATH, new_kek, CS_KEY_LEN);
	return rc;
}

int cs_seal_recovery_write(struct cs_core *core, struct cs_txn *txn, const uint8_t *key, int n,
			   int t)
{
	if (!core->kr)
		return CS_ESEALED;
	if (!cs_seal_config_valid(n, t) || core->seal.kind == CS_SEAL_SHAMIR)
		return CS_EINVAL;
	int rc = put_recovery_config(txn, n, t);
	if (!rc)
		rc = cs_txn_put(txn, CS_RECOVERY_KEY_PATH, key, CS_KEY_LEN);
	return rc;
}

int cs_seal_check_recovery_key(struct cs_core *core, const uint8_t *key)
{
	uint8_t *cur = cs_secmem_alloc(CS_KEY_LEN);
	int rc = read_barrier_key(core, CS_RECOVERY_KEY_PATH, cur);
	if (!rc && !cs_ct_equal(cur, CS_KEY_LEN, key, CS_KEY_LEN))
		rc = CS_EINVAL;
	cs_secmem_free(cur, CS_KEY_LEN);
	return rc;
}

int cs_seal_migrate_write(struct cs_core *core, struct cs_txn *txn, int to_kind,
			  const char *wrapped, const uint8_t *recovery_key, int n, int t)
{
	if (!core->kr)
		return CS_ESEALED;
	if (!cs_seal_config_valid(n, t) || (to_kind != CS_SEAL_SHAMIR && !wrapped))
		return CS_EINVAL;
	int rc;
	if (to_kind != CS_SEAL_SHAMIR) {
		/* The KEK stays; the new seal wraps it, and the keys operators held become
		 * recovery keys (Vault's shamir → auto migration). */
		rc = cs_seal_write_auto(txn, to_kind, wrapped);
		if (!rc)
			rc = put_recovery_config(txn, n, t);
		if (!rc)
			rc = cs_txn_put(txn, CS_RECOVERY_KEY_PATH, recovery_key, CS_KEY_LEN);
		return rc;
	}
	/* Back to Shamir: the recovery key becomes the KEK, so the recovery shares are the
	 * unseal shares from now on; nothing of the auto seal remains. */
	rc = put_seal_config(txn, n, t);
	if (!rc)
		rc = wrap_root_key(txn, recovery_key, core->kr->root_key);
	if (!rc)
		rc = cs_txn_put(txn, SHAMIR_KEK_PATH, recovery_key, CS_KEY_LEN);
	if (!rc)
		rc = cs_txn_delete(txn, CS_WRAPPED_KEK_PATH);
	if (!rc)
		rc = cs_txn_delete(txn, CS_RECOVERY_CONFIG_PATH);
	if (!rc)
		rc = cs_txn_delete(txn, CS_RECOVERY_KEY_PATH);
	return rc;
}

static cJSON *string_array_take(char **v, int n)
{
	cJSON *a = cJSON_CreateArray();
	for (int i = 0; i < n; i++) {
		cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
		cs_zero(v[i], strlen(v[i]));
		free(v[i]);
	}
	return a;
}

/* Vault's bounds on shares and threshold. */
static int check_shares(int n, int t, char *errmsg, size_t errlen)
{
	if (n < 1 || n > CS_MAX_SHARES) {
		snprintf(errmsg, errlen,
			 "invalid seal configuration: secret shares must be "
			 "between 1 and 255");
		return CS_EINVAL;
	}
	if (t < 1 || t > n || (n > 1 && t < 2)) {
		snprintf(errmsg, errlen,
			 "invalid seal configuration: threshold must be between 2 and the number "
			 "of shares (or 1 with a single share)");
		return CS_EINVAL;
	}
	return 0;
}

/* Seal config: plaintext, like Vault, so sealed nodes can report t/n. */
static int put_config_at(struct cs_txn *txn, const char *path, const char *type, int n, int t,
			 int stored)
{
	cJSON *sc = cJSON_CreateObject();
	cJSON_AddStringToObject(sc, "type", type);
	cJSON_AddNumberToObject(sc, "secret_shares", n);
	cJSON_AddNumberToObject(sc, "secret_threshold", t);
	if (stored)
		cJSON_AddNumberToObject(sc, "stored_shares", stored);
	cJSON_AddStringToObject(sc, "nonce", "");
	cJSON_AddBoolToObject(sc, "backup", false);
	char *s = cJSON_PrintUnformatted(sc);
	int rc = cs_txn_put_raw(txn, path, s, strlen(s));
	free(s);
	cJSON_Delete(sc);
	return rc;
}

static int put_seal_config(struct cs_txn *txn, int n, int t)
{
	return put_config_at(txn, SEAL_CONFIG_PATH, "shamir", n, t, 0);
}

static int put_recovery_config(struct cs_txn *txn, int n, int t)
{
	return put_config_at(txn, CS_RECOVERY_CONFIG_PATH, "shamir", n, t, 0);
}

int cs_seal_write_auto(struct cs_txn *txn, int kind, const char *wrapped)
{
	int rc = put_config_at(txn, SEAL_CONFIG_PATH, cs_seal_kind_name(kind), 1, 1, 1);
	if (!rc)
		rc = cs_txn_put_raw(txn, CS_WRAPPED_KEK_PATH, wrapped, strlen(wrapped));
	return rc;
}

/* The new keyring, sealed with its own root key (itself wrapped by the KEK). */
static int put_first_keyring(struct cs_txn *txn, const struct cs_keyring *kr)
{
	struct cs_buf b = CS_BUF_INIT;
	struct cs_buf plain = CS_BUF_INIT;
	cs_keyring_encode(kr, &plain);
	int rc = cs_aead_seal(kr->root_key, 1, KEYRING_PATH, strlen(KEYRING_PATH), plain.data,
			      plain.len, &b);
	cs_buf_free_secure(&plain);
	if (!rc)
		rc = cs_txn_put_raw(txn, KEYRING_PATH, b.data, b.len);
	cs_buf_reset(&b);
	cs_buf_free(&b);
	return rc;
}

/* The cluster's name (configured, or vault-cluster-<random>) and a fresh id. */
static int put_cluster_info(struct cs_core *core, struct cs_txn *txn)
{
	char name[64], id[37];
	if (core->cfg->cluster_name && *core->cfg->cluster_name) {
		snprintf(name, sizeof name, "%s", core->cfg->cluster_name);
	} else {
		uint8_t r[4];
		char hex[9];
		cs_random(r, sizeof r);
		cs_hex_encode(r, sizeof r, hex);
		snprintf(name, sizeof name, "vault-cluster-%s", hex);
	}
	cs_uuid(id);
	cJSON *ci = cJSON_CreateObject();
	cJSON_AddStringToObject(ci, "name", name);
	cJSON_AddStringToObject(ci, "id", id);
	char *s = cJSON_PrintUnformatted(ci);
	int rc = cs_txn_put(txn, CLUSTER_INFO_PATH, s, strlen(s));
	free(s);
	cJSON_Delete(ci);
	return rc;
}

/* Default tables: sys/ and auth/token/. Build them in a scratch router so the live
 * (sealed, empty) one is untouched until unseal loads them. */
static int put_default_mounts(struct cs_core *core, struct cs_txn *txn, char *errmsg, size_t errlen)
{
	struct cs_router saved_router = core->router;
	cs_router_init(&core->router);
	int rc = cs_sys_add_required_mounts(core, txn); /* cubbyhole/ */
	if (!rc)
		rc = cs_sys_mount_add(core, txn, "token/", "token", "token based credentials", NULL,
				      NULL, true, errmsg, errlen);
	cs_router_clear(&core->router);
	core->router = saved_router;
	return rc;
}

/* Vault's init answer; -dev also keeps the key and root token to unseal itself right
 * after the init commit. */
static cJSON *init_response(struct cs_core *core, const uint8_t *share_mem, int n, size_t share_len,
			    const char *root)
{
	cJSON *r = cJSON_CreateObject();
	cs_seal_add_shares_json(r, share_mem, n, share_len);
	cJSON_AddStringToObject(r, "root_token", root);
	if (core->dev_cb) {
		core->dev_unseal_key = cs_secmem_alloc(share_len);
		memcpy(core->dev_unseal_key, share_mem, share_len);
		core->dev_unseal_key_len = share_len;
		snprintf(core->dev_root_token, sizeof core->dev_root_token, "%s", root);
	}
	return r;
}

/* An auto seal's half of init: seal config, envelope, recovery config, and a fresh
 * recovery key split into *rec_mem (the key itself goes behind the barrier later). */
static int init_auto(struct cs_txn *txn, const struct cs_init_params *p, uint8_t *rkey,
		     uint8_t **rec_mem, size_t *rec_len)
{
	cs_random(rkey, CS_KEY_LEN);
	int rc =
	    cs_seal_make_shares(rkey, p->recovery_shares, p->recovery_threshold, rec_mem, rec_len);
	if (!rc)
		rc = cs_seal_write_auto(txn, p->kind, p->wrapped);
	if (!rc)
		rc = put_recovery_config(txn, p->recovery_shares, p->recovery_threshold);
	return rc;
}

int cs_seal_init(struct cs_core *core, struct cs_txn *txn, const struct cs_init_params *p,
		 cJSON **resp, char *errmsg, size_t errlen)
{
	bool autoseal = p->wrapped != NULL;
	int n = autoseal ? p->recovery_shares : p->shares;
	int t = autoseal ? p->recovery_threshold : p->threshold;
	int rc = check_shares(n, t, errmsg, errlen);
	if (rc)
		return rc;
	if (autoseal && !p->kek)
		return CS_EINVAL;

	struct cs_keyring *kr = cs_keyring_new();
	uint8_t *kek = cs_secmem_alloc(CS_KEY_LEN);
	uint8_t *rkey = cs_secmem_alloc(CS_KEY_LEN);
	size_t share_len = 0;
	uint8_t *share_mem = NULL;
	if (autoseal) {
		/* The seal wrapped this KEK already; operators get recovery shares only. */
		memcpy(kek, p->kek, CS_KEY_LEN);
		rc = init_auto(txn, p, rkey, &share_mem, &share_len);
	} else {
		cs_random(kek, CS_KEY_LEN);
		rc = cs_seal_make_shares(kek, n, t, &share_mem, &share_len);
		if (!rc)
			rc = put_seal_config(txn, n, t);
	}
	if (!rc)
		rc = wrap_root_key(txn, kek, kr->root_key);
	if (!rc)
		rc = put_first_keyring(txn, kr);

	/* Everything else goes through the new barrier. */
	const struct cs_keyring *saved = txn->kr;
	txn->kr = kr;
	if (!rc)
		rc = put_cluster_info(core, txn);
	/* A barrier copy of the KEK (Vault's core/shamir-kek): the active node encrypts
	 * join challenges and snapshot checksums with the seal without the shares. */
	if (!rc)
		rc = cs_txn_put(txn, SHAMIR_KEK_PATH, kek, CS_KEY_LEN);
	if (!rc && autoseal)
		rc = cs_txn_put(txn, CS_RECOVERY_KEY_PATH, rkey, CS_KEY_LEN);
	if (!rc)
		rc = cs_ha_store_tls(core, txn);
	if (!rc)
		rc = put_default_mounts(core, txn, errmsg, errlen);
	char root[160] = "";
	if (!rc && core->tokens.create_root)
		rc = core->tokens.create_root(core, txn, p->root_token_id, root, sizeof root);
	txn->kr = saved;
	/* Again, now that it counted the encryptions above (storage/barrier.h). */
	if (!rc)
		rc = cs_keyring_store(txn, kr);

	if (!rc && autoseal) {
		cJSON *r = cJSON_CreateObject();
		cJSON_AddArrayToObject(r, "keys");
		cJSON_AddArrayToObject(r, "keys_base64");
		cJSON *rec = cJSON_CreateObject();
		cs_seal_add_shares_json(rec, share_mem, n, share_len);
		cJSON_AddItemToObject(r, "recovery_keys", cJSON_DetachItemFromObject(rec, "keys"));
		cJSON_AddItemToObject(r, "recovery_keys_base64",
				      cJSON_DetachItemFromObject(rec, "keys_base64"));
		cJSON_Delete(rec);
		cJSON_AddStringToObject(r, "root_token", root);
		*resp = r;
	} else if (!rc) {
		*resp = init_response(core, share_mem, n, share_len, root);
	} else if (!*errmsg) {
		snprintf(errmsg, errlen, "initialisation failed: %s", cs_strerror(rc));
	}
	cs_zero(root, sizeof root);
	if (share_mem)
		cs_secmem_free(share_mem, share_len * (size_t)n);
	cs_secmem_free(kek, CS_KEY_LEN);
	cs_secmem_free(rkey, CS_KEY_LEN);
	cs_keyring_free(kr);
	return rc;
}

/* ------------------------------------------------------------------ unseal */

uint8_t *cs_seal_decode_key(const char *s, size_t expect_len, size_t *len)
{
	size_t sl = strlen(s);
	uint8_t *out = NULL;
	/* Hex first when it has exactly the share's hex length: a 64-hex-digit single
	 * share is also valid base64 and would decode to the wrong bytes. */
	if (sl == 2 * expect_len) {
		out = malloc(expect_len);
		if (cs_hex_decode(s, sl, out) == (long)expect_len) {
			*len = expect_len;
			return out;
		}
		free(out);
	}
	out = cs_b64_decode(s, sl, len);
	if (out)
		return out;
	if (sl % 2 == 0) {
		out = malloc(sl / 2 + 1);
		long n = cs_hex_decode(s, sl, out);
		if (n >= 0) {
			*len = (size_t)n;
			return out;
		}
		free(out);
	}
	return NULL;
}

void cs_core_unseal_reset(struct cs_core *core)
{
	for (int i = 0; i < core->seal.progress; i++) {
		cs_secmem_free(core->seal.keys[i], core->seal.key_len[i]);
		core->seal.keys[i] = NULL;
	}
	core->seal.progress = 0;
	core->seal.nonce[0] = '\0';
}

/* Decrypt root key and keyring with the KEK; returns the keyring or NULL. */
static struct cs_keyring *open_keyring(struct cs_core *core, const uint8_t *kek, int *err)
{
	struct cs_txn txn;
	struct cs_buf ct = CS_BUF_INIT, root = CS_BUF_INIT, plain = CS_BUF_INIT;
	struct cs_keyring *kr = NULL;
	cs_txn_begin(&txn, &core->st, NULL);
	*err = cs_txn_get_raw(&txn, ROOT_KEY_PATH, &ct);
	if (!*err)
		*err =
		    cs_aead_open(kek, ROOT_KEY_PATH, strlen(ROOT_KEY_PATH), ct.data, ct.len, &root);
	if (!*err && root.len != CS_KEY_LEN)
		*err = CS_ECRYPTO;
	cs_buf_reset(&ct);
	if (!*err)
		*err = cs_txn_get_raw(&txn, KEYRING_PATH, &ct);
	if (!*err)
		*err = cs_aead_open((const uint8_t *)root.data, KEYRING_PATH, strlen(KEYRING_PATH),
				    ct.data, ct.len, &plain);
	if (!*err)
		*err = cs_keyring_decode(plain.data, plain.len, &kr);
	cs_txn_abort(&txn);
	cs_buf_free(&ct);
	cs_buf_free_secure(&root);
	cs_buf_free_secure(&plain);
	return *err ? NULL : kr;
}

int cs_core_unseal_submit(struct cs_core *core, const uint8_t *key, size_t len, bool *done,
			  char *errmsg, size_t errlen)
{
	*done = false;
	if (!core->initialized) {
		snprintf(errmsg, errlen, "Vault is not initialized");
		return CS_EINVAL;
	}
	if (core->kr) {
		*done = true;
		return 0;
	}
	cs_seal_refresh_config(core);
	/* The progress array holds CS_MAX_SHARES entries and is emptied whenever it reaches
	 * the threshold: both bounds must hold before one more share is stored. */
	if (!cs_seal_config_valid(core->seal.shares, core->seal.threshold) ||
	    core->seal.progress < 0 || core->seal.progress >= core->seal.threshold) {
		cs_core_unseal_reset(core);
		snprintf(errmsg, errlen, "unseal failed: invalid seal configuration");
		return CS_EINVAL;
	}
	size_t want = core->seal.shares == 1 ? CS_KEY_LEN : CS_KEY_LEN + 1;
	if (len != want) {
		snprintf(errmsg, errlen, "unseal failed: invalid key length %zu (expected %zu)",
			 len, want);
		return CS_EINVAL;
	}
	/* A share given twice counts once. */
	for (int i = 0; i < core->seal.progress; i++)
		if (cs_ct_equal(core->seal.keys[i], core->seal.key_len[i], key, len))
			return 0;
	if (core->seal.progress == 0)
		cs_uuid(core->seal.nonce);
	int i = core->seal.progress++;
	core->seal.keys[i] = cs_secmem_alloc(len);
	memcpy(core->seal.keys[i], key, len);
	core->seal.key_len[i] = len;
	if (core->seal.progress < core->seal.threshold)
		return 0;

	uint8_t *kek = cs_secmem_alloc(CS_KEY_LEN);
	int rc = 0;
	if (core->seal.shares == 1)
		memcpy(kek, core->seal.keys[0], CS_KEY_LEN);
	else
		rc = cs_shamir_combine((const uint8_t *const *)core->seal.keys, core->seal.progress,
				       len, kek);
	cs_core_unseal_reset(core);
	if (rc) {
		cs_secmem_free(kek, CS_KEY_LEN);
		snprintf(errmsg, errlen, "unseal failed: invalid key shares");
		return CS_EINVAL;
	}
	if (cs_ha_join_pending(core)) {
		/* A joining node: the KEK answers the leader's challenge; the barrier opens
		 * once raft brought the cluster's keyring in (cs_seal_unseal_with_kek). */
		rc = cs_ha_join_unsealed(core, kek, errmsg, errlen);
		cs_secmem_free(kek, CS_KEY_LEN);
		return rc;
	}
	rc = cs_seal_unseal_with_kek(core, kek, errmsg, errlen);
	cs_secmem_free(kek, CS_KEY_LEN);
	if (!rc)
		*done = true;
	return rc;
}

int cs_seal_unseal_with_kek(struct cs_core *core, const uint8_t *kek, char *errmsg, size_t errlen)
{
	int rc;
	struct cs_keyring *kr = open_keyring(core, kek, &rc);
	if (!kr) {
		if (rc == CS_ECRYPTO || rc == CS_EINVAL) {
			snprintf(errmsg, errlen,
				 "failed to decrypt keys from storage: cipher: "
				 "message authentication failed");
			return CS_EINVAL;
		}
		snprintf(errmsg, errlen, "unseal failed: %s", cs_strerror(rc));
		return rc;
	}
	core->kr = kr;
	rc = cs_seal_post_unseal(core);
	if (!rc)
		rc = cs_ha_unsealed(core);
	if (rc) {
		snprintf(errmsg, errlen, "post-unseal setup failed: %s", core->errmsg);
		cs_core_seal(core);
		return CS_EINTERNAL;
	}
	cs_info("core: vault is unsealed");
	return 0;
}

/* Read a key stored behind the barrier into `key` (CS_KEY_LEN bytes of secmem). */
static int read_barrier_key(struct cs_core *core, const char *path, uint8_t *key)
{
	if (!core->kr)
		return CS_ESEALED;
	struct cs_txn txn;
	struct cs_buf b = CS_BUF_INIT;
	cs_txn_begin(&txn, &core->st, core->kr);
	int rc = cs_txn_get(&txn, path, &b);
	cs_txn_abort(&txn);
	if (!rc && b.len != CS_KEY_LEN)
		rc = CS_EIO;
	if (!rc)
		memcpy(key, b.data, CS_KEY_LEN);
	cs_buf_free_secure(&b);
	return rc;
}

/* The barrier copy of the KEK. */
static int read_kek(struct cs_core *core, uint8_t *kek)
{
	return read_barrier_key(core, SHAMIR_KEK_PATH, kek);
}

int cs_seal_encrypt(struct cs_core *core, const char *aad, const void *pt, size_t n,
		    struct cs_buf *out)
{
	uint8_t *kek = cs_secmem_alloc(CS_KEY_LEN);
	int rc = read_kek(core, kek);
	if (!rc)
		rc = cs_aead_seal(kek, 1, aad, strlen(aad), pt, n, out);
	cs_secmem_free(kek, CS_KEY_LEN);
	return rc;
}

int cs_seal_decrypt(struct cs_core *core, const char *aad, const void *ct, size_t n,
		    struct cs_buf *out)
{
	uint8_t *kek = cs_secmem_alloc(CS_KEY_LEN);
	int rc = read_kek(core, kek);
	if (!rc)
		rc = cs_aead_open(kek, aad, strlen(aad), ct, n, out);
	cs_secmem_free(kek, CS_KEY_LEN);
	return rc;
}

int cs_seal_post_unseal(struct cs_core *core)
{
	struct cs_txn txn;
	cs_txn_begin(&txn, &core->st, core->kr);
	cJSON *ci = NULL, *mounts = NULL, *auth = NULL;
	struct cs_buf b = CS_BUF_INIT;
	int rc = cs_txn_get(&txn, CLUSTER_INFO_PATH, &b);
	if (!rc) {
		ci = cJSON_ParseWithLength(b.data, b.len);
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(ci, "name");
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(ci, "id");
		if (cJSON_IsString(name))
			snprintf(core->cluster_name, sizeof core->cluster_name, "%s",
				 name->valuestring);
		if (cJSON_IsString(id))
			snprintf(core->cluster_id, sizeof core->cluster_id, "%s", id->valuestring);
	}
	cs_buf_free_secure(&b);
	cs_router_clear(&core->router);
	cs_backend_reset_all(core);
	if (!rc || rc == CS_ENOTFOUND) {
		rc = cs_txn_get(&txn, "core/mounts", &b);
		if (!rc)
			mounts = cJSON_ParseWithLength(b.data, b.len);
		cs_buf_free_secure(&b);
		if (rc == CS_ENOTFOUND)
			rc = 0;
	}
	if (!rc) {
		rc = cs_txn_get(&txn, "core/auth", &b);
		if (!rc)
			auth = cJSON_ParseWithLength(b.data, b.len);
		cs_buf_free_secure(&b);
		if (rc == CS_ENOTFOUND)
			rc = 0;
	}
	if (!rc && mounts)
		rc = cs_router_load_table(&core->router, mounts, false);
	if (!rc && auth)
		rc = cs_router_load_table(&core->router, auth, true);
	/* The sys/ row of the stored table describes the always-present sys mount. */
	struct cs_mount *stored_sys = cs_router_get(&core->router, "sys/");
	if (stored_sys) {
		struct cs_mount *sys = cs_sys_mount(core);
		memcpy(sys->uuid, stored_sys->uuid, sizeof sys->uuid);
		memcpy(sys->accessor, stored_sys->accessor, sizeof sys->accessor);
		cs_router_remove(&core->router, stored_sys);
	}
	if (!rc) /* data dirs older than a required mount (cubbyhole/) */
		rc = cs_sys_add_required_mounts(core, NULL);
	if (rc)
		snprintf(core->errmsg, sizeof core->errmsg, "load mount tables: %s",
			 cs_strerror(rc));
	cJSON_Delete(ci);
	cJSON_Delete(mounts);
	cJSON_Delete(auth);
	cs_txn_abort(&txn);
	return rc;
}

void cs_core_seal(struct cs_core *core)
{
	cs_core_unseal_reset(core);
	cs_keyring_free(core->kr);
	core->kr = NULL;
	cs_router_clear(&core->router);
	cs_backend_reset_all(core);
	core->cluster_name[0] = '\0';
	core->cluster_id[0] = '\0';
}

cJSON *cs_seal_status_json(struct cs_core *core)
{
	cJSON *j = cJSON_CreateObject();
	bool sealed = core->kr == NULL;
	if (core->initialized)
		cs_seal_refresh_config(core);
	/* Vault shows the seal in use (the stored one once initialised) and, for an auto
	 * seal, the recovery key counts as t/n. */
	int kind = core->initialized ? core->seal.kind : cs_core_autoseal_kind(core);
	bool rec = kind != CS_SEAL_SHAMIR;
	cJSON_AddStringToObject(j, "type", cs_seal_kind_name(kind));
	cJSON_AddBoolToObject(j, "initialized", core->initialized);
	cJSON_AddBoolToObject(j, "sealed", sealed);
	cJSON_AddNumberToObject(j, "t",
				!core->initialized ? 0
				: rec              ? core->seal.recovery_threshold
						   : core->seal.threshold);
	cJSON_AddNumberToObject(j, "n",
				!core->initialized ? 0
				: rec              ? core->seal.recovery_shares
						   : core->seal.shares);
	cJSON_AddNumberToObject(j, "progress", sealed ? core->seal.progress : 0);
	cJSON_AddStringToObject(j, "nonce", sealed ? core->seal.nonce : "");
	cJSON_AddStringToObject(j, "version", CUSTOS_VERSION);
	cJSON_AddStringToObject(j, "build_date", CUSTOS_BUILD_DATE);
	cJSON_AddBoolToObject(j, "migration", core->seal.migration);
	if (!sealed) {
		cJSON_AddStringToObject(j, "cluster_name", core->cluster_name);
		cJSON_AddStringToObject(j, "cluster_id", core->cluster_id);
	}
	cJSON_AddBoolToObject(j, "recovery_seal", rec);
	cJSON_AddStringToObject(j, "storage_type", "raft");
	cJSON_AddBoolToObject(j, "removed_from_cluster", cs_ha_removed(core));
	return j;
}

/* ------------------------------------------------------------------ -dev */

static void dev_fail(struct cs_core *core, const char *what, int rc)
{
	cs_error("dev: %s: %s", what, cs_strerror(rc));
	cs_core_done_cb cb = core->dev_cb;
	core->dev_cb = NULL;
	cb(core, rc ? rc : CS_EINTERNAL, core->dev_ctx);
}

static void dev_mounted(void *data, int status)
{
	struct cs_core *core = data;
	if (status) {
		dev_fail(core, "mount secret/", status);
		return;
	}
	char *b64 = cs_b64_encode(core->dev_unseal_key, core->dev_unseal_key_len);
	const struct cs_listener_config *l = &core->cfg->listeners[0];
	printf("WARNING! dev mode is enabled! In this mode, custos keeps its data in a\n"
	       "temporary directory that is removed at exit, and starts unsealed with a\n"
	       "single unseal key. The root token is already authenticated to the CLI, so\n"
	       "you can immediately begin using custos.\n\n"
	       "You may need to set the following environment variables:\n\n"
	       "    $ export VAULT_ADDR='%s://%s'\n\n"
	       "The unseal key and root token are displayed below in case you want to\n"
	       "seal/unseal custos or re-authenticate.\n\n"
	       "Unseal Key: %s\n"
	       "Root Token: %s\n\n"
	       "Development mode should NOT be used in production installations!\n\n",
	       l->tls_disable ? "http" : "https", l->address, b64, core->dev_root_token);
	fflush(stdout);
	cs_zero(b64, strlen(b64));
	free(b64);
	cs_secmem_free(core->dev_unseal_key, core->dev_unseal_key_len);
	core->dev_unseal_key = NULL;
	cs_zero(core->dev_root_token, sizeof core->dev_root_token);
	cs_core_done_cb cb = core->dev_cb;
	core->dev_cb = NULL;
	cb(core, 0, core->dev_ctx);
}

static void dev_initialised(void *data, int status)
{
	struct cs_core *core = data;
	if (status) {
		dev_fail(core, "init", status);
		return;
	}
	core->initialized = true;
	core->seal.shares = 1;
	core->seal.threshold = 1;
	char err[256] = "";
	bool done = false;
	int rc = cs_core_unseal_submit(core, core->dev_unseal_key, core->dev_unseal_key_len, &done,
				       err, sizeof err);
	if (rc || !done) {
		cs_error("dev: unseal: %s", err);
		dev_fail(core, "unseal", rc);
		return;
	}
	/* Vault's dev server mounts a KV version 2 engine at secret/. */
	struct cs_txn txn;
	cs_txn_begin(&txn, &core->st, core->kr);
	cJSON *kv_opts = cJSON_CreateObject();
	cJSON_AddStringToObject(kv_opts, "version", "2");
	rc = cs_sys_mount_add(core, &txn, "secret/", "kv", "key/value secret storage", NULL,
			      kv_opts, false, err, sizeof err);
	cJSON_Delete(kv_opts);
	if (rc) {
		cs_txn_abort(&txn);
		cs_error("dev: %s", err);
		dev_fail(core, "mount secret/", rc);
		return;
	}
	bool pending = false;
	rc = cs_txn_commit(&txn, dev_mounted, core, &pending);
	if (rc)
		dev_fail(core, "mount secret/", rc);
	else if (!pending)
		dev_mounted(core, 0);
}

void cs_seal_dev_continue(struct cs_core *core)
{
	if (core->dev_state != 1)
		return;
	core->dev_state = 2;
	struct cs_txn txn;
	cs_txn_begin(&txn, &core->st, NULL);
	struct cs_init_params p = {
	    .shares = 1, .threshold = 1, .root_token_id = core->cfg->dev_root_token_id};
	cJSON *resp = NULL;
	char err[256] = "";
	int rc = cs_seal_init(core, &txn, &p, &resp, err, sizeof err);
	cJSON_Delete(resp);
	if (rc) {
		cs_txn_abort(&txn);
		cs_error("dev: %s", err);
		dev_fail(core, "init", rc);
		return;
	}
	bool pending = false;
	rc = cs_txn_commit(&txn, dev_initialised, core, &pending);
	if (rc)
		dev_fail(core, "init", rc);
	else if (!pending)
		dev_initialised(core, 0);
}

void cs_core_dev_setup(struct cs_core *core, cs_core_done_cb cb, void *ctx)
{
	core->dev_cb = cb;
	core->dev_ctx = ctx;
	core->dev_state = 1;
	int rc = 0;
	if (!core->raft_started)
		rc = cs_ha_bootstrap(core);
	if (rc) {
		cs_error("dev: raft: %s", core->errmsg);
		dev_fail(core, "raft start", rc);
		return;
	}
	if (core->active)
		cs_seal_dev_continue(core);
}
