/*
 * The PKI engine's issuer cache (engines/pki_internal.h): per mount, every issuer's record,
 * parsed certificate and chain, and the decoded private key of the issuers that sign, kept
 * between requests so that an issuance, an OCSP answer or a CRL costs no PEM/DER decoding
 * (with OpenSSL 3 a key or certificate decode goes through the provider decoders: it cost
 * more than the signature itself, see tests/bench/results/pki-*).
 *
 * Correctness never depends on invalidation, as in transit's key cache: a lookup reads the
 * raw stored (barrier-encrypted) bytes of every config/issuer/<id> and of the signing key's
 * config/key/<id> through the request's transaction, and the cached objects are used only
 * when those bytes are exactly the ones they were decoded from (the barrier's random nonce
 * makes every write different). A write from any source (this node, raft from another
 * leader, a snapshot restore, the request's own uncommitted write-set) is therefore never
 * served stale. Reading raw bytes costs no decryption, so the check is a few LMDB lookups.
 * Invalidation is hygiene: a key's material leaves memory when the mount's issuers or keys
 * are written (cs_pki_cache_forget), or the node seals or stops being active (the
 * backend's reset hook).
 *
 * Private keys: decoded through locked memory (cs_pki_issuer_signer); OpenSSL keeps the
 * private components of a decoded key in its secure heap (BN_secure_new, secure zalloc),
 * which cs_pki_register sets up as mlock()ed memory at start-up, so a cached key lives in
 * locked, zeroised-on-free memory.
 *
 * State is per core (cs_core_state), loop thread only. Callers get owned references
 * (up_ref'd / duplicated), so a job on the worker pool may keep using them after the cache
 * changed.
 */
#include <openssl/ocsp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engines/pki_internal.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/util.h"

struct pc_issuer {
	char *id;
	cJSON *rec; /* the stored record */
	X509 *cert;
	/* The signing key and the raw stored bytes of config/key/<key_id> it came from. */
	EVP_PKEY *signer;
	uint8_t *kct;
	size_t kctlen;
	cJSON *chain; /* PEMs, itself first; NULL until asked */
};

struct pc_mount {
	char *prefix;
	/* For every issuer in list order: its id, NUL, 8-byte length, raw stored bytes. Equal
	 * bytes mean every cached record and certificate is current. */
	uint8_t *set;
	size_t setlen;
	struct pc_issuer *v;
	size_t n;
	struct pc_mount *next;
};

struct pc_cache {
	struct pc_mount *mounts;
	uint64_t hits, misses, key_loads;
};

static void issuer_clear(struct pc_issuer *i)
{
	free(i->id);
	cJSON_Delete(i->rec);
	X509_free(i->cert);
	EVP_PKEY_free(i->signer);
	free(i->kct);
	cJSON_Delete(i->chain);
	memset(i, 0, sizeof *i);
}

static void mount_clear(struct pc_mount *m)
{
	for (size_t i = 0; i < m->n; i++)
		issuer_clear(&m->v[i]);
	free(m->v);
	free(m->set);
	m->v = NULL;
	m->n = 0;
	m->set = NULL;
	m->setlen = 0;
}

static void cache_release(void *state)
{
	struct pc_cache *c = state;
	while (c->mounts) {
		struct pc_mount *m = c->mounts;
		c->mounts = m->next;
		mount_clear(m);
		free(m->prefix);
		free(m);
	}
	memset(c, 0, sizeof *c);
}

static const struct cs_core_state_type cache_type = {
    .name = "pki issuer cache", .size = sizeof(struct pc_cache), .release = cache_release};

void cs_pki_cache_reset(struct cs_core *core)
{
	cache_release(cs_core_state(core, &cache_type));
}

static struct pc_mount *mount_of(struct cs_request *req, struct pc_cache *c)
{
	const char *prefix = cs_req_storage_prefix(req);
	for (struct pc_mount *m = c->mounts; m; m = m->next)
		if (strcmp(m->prefix, prefix) == 0)
			return m;
	struct pc_mount *m = calloc(1, sizeof *m);
	if (!m || !(m->prefix = strdup(prefix)))
		abort();
	m->next = c->mounts;
	c->mounts = m;
	return m;
}

void cs_pki_cache_forget(struct cs_request *req)
{
	mount_clear(mount_of(req, cs_core_state(req->core, &cache_type)));
}

/* Raw stored bytes of a key of the request's mount. */
static int get_raw(struct cs_request *req, const char *key, struct cs_buf *out)
{
	char fk[600];
	snprintf(fk, sizeof fk, "%s%s", cs_req_storage_prefix(req), key);
	return cs_txn_get_raw(&req->txn, fk, out);
}

/* Bring the mount's issuers up to date with storage (as the request's txn sees it). */
static int sync_mount(struct cs_request *req, struct pc_cache *c, struct pc_mount *m)
{
	struct cs_strv ids = {0};
	int rc = cs_view_list(req, "config/issuer/", &ids);
	struct cs_buf set = CS_BUF_INIT;
	for (size_t i = 0; !rc && i < ids.n; i++) {
		char key[200];
		snprintf(key, sizeof key, "config/issuer/%s", ids.v[i]);
		struct cs_buf ct = CS_BUF_INIT;
		rc = get_raw(req, key, &ct);
		if (rc == CS_ENOTFOUND)
			rc = 0; /* listed but deleted in this txn: not an issuer */
		else if (!rc) {
			cs_buf_append(&set, ids.v[i], strlen(ids.v[i]) + 1);
			cs_buf_put_u64(&set, ct.len);
			cs_buf_append(&set, ct.data, ct.len);
		}
		cs_buf_free(&ct);
	}
	if (rc ||
	    (set.len == m->setlen && (set.len == 0 || memcmp(set.data, m->set, set.len) == 0))) {
		cs_buf_free(&set);
		cs_strv_free(&ids);
		if (!rc)
			c->hits++;
		return rc;
	}
	/* Changed: decode every issuer again (issuers change rarely; chains depend on all). */
	c->misses++;
	mount_clear(m);
	m->v = calloc(ids.n ? ids.n : 1, sizeof *m->v);
	if (!m->v)
		abort();
	for (size_t i = 0; !rc && i < ids.n; i++) {
		cJSON *rec = NULL;
		int r = cs_pki_issuer_load(req, ids.v[i], &rec);
		if (r == CS_ENOTFOUND)
			continue;
		if (r) {
			rc = r;
			break;
		}
		struct pc_issuer *e = &m->v[m->n++];
		e->id = strdup(ids.v[i]);
		e->rec = rec;
		e->cert = cs_pki_issuer_cert(rec);
	}
	if (rc) {
		mount_clear(m);
		cs_buf_free(&set);
	} else {
		m->setlen = set.len;
		m->set = (uint8_t *)cs_buf_steal(&set, NULL);
	}
	cs_strv_free(&ids);
	return rc;
}

static struct pc_issuer *find(struct pc_mount *m, const char *id)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->v[i].id, id) == 0)
			return &m->v[i];
	return NULL;
}

/* The signing key of `e`, checked against the stored bytes of its key record. */
static int sync_key(struct cs_request *req, struct pc_cache *c, struct pc_issuer *e)
{
	const char *kid = cs_pki_jstr(e->rec, "key_id", "");
	if (!*kid)
		return 0;
	char key[200];
	snprintf(key, sizeof key, "config/key/%s", kid);
	struct cs_buf ct = CS_BUF_INIT;
	int rc = get_raw(req, key, &ct);
	if (rc == CS_ENOTFOUND) {
		cs_buf_free(&ct);
		EVP_PKEY_free(e->signer);
		e->signer = NULL;
		return cs_req_error(req, CS_EINTERNAL, "the issuer's key is missing");
	}
	if (rc) {
		cs_buf_free(&ct);
		return rc;
	}
	if (e->signer && e->kctlen == ct.len && memcmp(e->kct, ct.data, ct.len) == 0) {
		cs_buf_free(&ct);
		return 0;
	}
	EVP_PKEY_free(e->signer);
	e->signer = NULL;
	free(e->kct);
	e->kctlen = ct.len;
	e->kct = (uint8_t *)cs_buf_steal(&ct, NULL);
	c->key_loads++;
	rc = cs_pki_issuer_signer(req, e->rec, &e->signer);
	if (rc) {
		free(e->kct);
		e->kct = NULL;
		e->kctlen = 0;
	}
	return rc;
}

/* Itself first, then its parents among the mount's issuers (or its manual_chain). */
static cJSON *chain_of(struct pc_mount *m, const struct pc_issuer *e)
{
	cJSON *chain = cJSON_CreateArray();
	const cJSON *manual = cJSON_GetObjectItemCaseSensitive(e->rec, "manual_chain");
	if (cJSON_GetArraySize(manual) > 0) {
		const cJSON *x;
		cJSON_ArrayForEach(x, manual)
		{
			const struct pc_issuer *o =
			    cJSON_IsString(x) ? find(m, x->valuestring) : NULL;
			if (o)
				cJSON_AddItemToArray(chain, cJSON_CreateString(cs_pki_jstr(
								o->rec, "certificate", "")));
		}
		return chain;
	}
	cJSON_AddItemToArray(chain, cJSON_CreateString(cs_pki_jstr(e->rec, "certificate", "")));
	const struct pc_issuer *cur = e;
	for (int depth = 0; cur && cur->cert && depth < 16; depth++) {
		if (X509_check_issued(cur->cert, cur->cert) == X509_V_OK)
			break; /* self-signed: the root */
		const struct pc_issuer *parent = NULL;
		for (size_t i = 0; !parent && i < m->n; i++)
			if (&m->v[i] != cur && m->v[i].cert &&
			    cs_pki_cert_issued_by(cur->cert, m->v[i].cert))
				parent = &m->v[i];
		if (parent)
			cJSON_AddItemToArray(
			    chain, cJSON_CreateString(cs_pki_jstr(parent->rec, "certificate", "")));
		cur = parent;
	}
	return chain;
}

void cs_pki_issuer_ref_free(struct cs_pki_issuer_ref *r)
{
	cJSON_Delete(r->rec);
	X509_free(r->cert);
	EVP_PKEY_free(r->signer);
	cJSON_Delete(r->chain);
	memset(r, 0, sizeof *r);
}

int cs_pki_issuer_get(struct cs_request *req, const char *id, unsigned what,
		      struct cs_pki_issuer_ref *out)
{
	memset(out, 0, sizeof *out);
	struct pc_cache *c = cs_core_state(req->core, &cache_type);
	struct pc_mount *m = mount_of(req, c);
	int rc = sync_mount(req, c, m);
	if (rc)
		return rc;
	struct pc_issuer *e = find(m, id);
	if (!e)
		return CS_ENOTFOUND;
	if (!e->cert)
		return cs_req_error(req, CS_EINTERNAL, "unable to parse the issuer's certificate");
	if ((what & CS_PKI_ISSUER_SIGNER) && (rc = sync_key(req, c, e)))
		return rc;
	if ((what & CS_PKI_ISSUER_CHAIN) && !e->chain)
		e->chain = chain_of(m, e);
	out->rec = cJSON_Duplicate(e->rec, 1);
	X509_up_ref(e->cert);
	out->cert = e->cert;
	out->not_after = cs_pki_cert_not_after(e->cert);
	if ((what & CS_PKI_ISSUER_SIGNER) && e->signer) {
		EVP_PKEY_up_ref(e->signer);
		out->signer = e->signer;
	}
	if (what & CS_PKI_ISSUER_CHAIN)
		out->chain = cJSON_Duplicate(e->chain, 1);
	return 0;
}

cJSON *cs_pki_issuer_chain(struct cs_request *req, const cJSON *iss)
{
	struct cs_pki_issuer_ref r;
	if (cs_pki_issuer_get(req, cs_pki_jstr(iss, "id", ""), CS_PKI_ISSUER_CHAIN, &r) == 0) {
		cJSON *chain = r.chain;
		r.chain = NULL;
		cs_pki_issuer_ref_free(&r);
		return chain;
	}
	/* Not stored (yet): just itself. */
	cJSON *chain = cJSON_CreateArray();
	cJSON_AddItemToArray(chain, cJSON_CreateString(cs_pki_jstr(iss, "certificate", "")));
	return chain;
}

int cs_pki_issuer_by_certid(struct cs_request *req, OCSP_CERTID *cid, char **id)
{
	*id = NULL;
	ASN1_OBJECT *md_obj = NULL;
	OCSP_id_get0_info(NULL, &md_obj, NULL, NULL, cid);
	const EVP_MD *md = md_obj ? EVP_get_digestbyobj(md_obj) : NULL;
	if (!md)
		return CS_ENOTFOUND;
	struct pc_cache *c = cs_core_state(req->core, &cache_type);
	struct pc_mount *m = mount_of(req, c);
	int rc = sync_mount(req, c, m);
	if (rc)
		return rc;
	for (size_t i = 0; !*id && i < m->n; i++) {
		struct pc_issuer *e = &m->v[i];
		if (!e->cert || !*cs_pki_jstr(e->rec, "key_id", ""))
			continue;
		OCSP_CERTID *mine = OCSP_cert_id_new(md, X509_get_subject_name(e->cert),
						     X509_get0_pubkey_bitstr(e->cert),
						     X509_get0_serialNumber(e->cert));
		if (mine && OCSP_id_issuer_cmp(mine, cid) == 0)
			*id = strdup(e->id);
		OCSP_CERTID_free(mine);
	}
	return *id ? 0 : CS_ENOTFOUND;
}

void cs_pki_cache_stats(struct cs_core *core, uint64_t *hits, uint64_t *misses, uint64_t *key_loads)
{
	struct pc_cache *c = cs_core_state(core, &cache_type);
	*hits = c->hits;
	*misses = c->misses;
	*key_loads = c->key_loads;
}
