/*
 * sys/rekey/...: replace the unseal shares (and their number and threshold) without
 * touching the data (see rekey.h for the endpoints).
 *
 * Happy path: init (new n/t, nonce) → update with `threshold` current shares → they are
 * combined and checked against the barrier copy of the KEK → a fresh KEK is split into
 * the new shares, returned once → (with require_verification: verify with `new
 * threshold` new shares, which must rebuild the fresh KEK) → the new seal config, the
 * root key wrapped under the fresh KEK and its barrier copy are written in the
 * request's transaction: after raft applies it, only the new shares unseal any node.
 * Failure modes: wrong nonce or a share given twice → 400, progress kept; shares that
 * do not rebuild the KEK → 400, progress reset (the attempt stays); verification shares
 * that do not rebuild the fresh KEK → 400, new verification nonce; seal or change of
 * active node → the attempt is forgotten and the old shares keep working; commit failure
 * → error, nothing returned, old shares keep working.
 */
#include "server/rekey.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/secmem.h"
#include "lib/util.h"
#include "server/core.h"
#include "server/keys_common.h"
#include "server/pgp.h"
#include "server/seal.h"
#include "server/seal_config.h"
#include "server/sys.h"
#include "storage/barrier.h"

#define BACKUP_PATH          "core/unseal-keys-backup"
#define RECOVERY_BACKUP_PATH "core/recovery-keys-backup"
#define BACKUP_PATH_OF(req)  (is_recovery(req) ? RECOVERY_BACKUP_PATH : BACKUP_PATH)

/* The one rekey attempt of this process (the loop thread owns it). */
/* This module's state in its core (cs_core_state): never a file-level variable. */
struct rekey_state {
	bool started;
	int64_t epoch; /* core->active_since_ns when it started: a new term forgets it */
	char nonce[37];
	int shares, threshold;
	bool require_verification, backup;
	cJSON *pgp_keys, *pgp_fprs;   /* the new shares' PGP keys and their fingerprints */
	bool busy;                    /* a PGP job for this attempt is on the worker pool */
	struct cs_share_set progress; /* current shares given so far */
	uint8_t *vkek;                /* the fresh KEK awaiting verification (secmem) */
	char vnonce[37];
	struct cs_share_set vprogress; /* new shares given to verify */
};

static void rk_clear(struct rekey_state *x);

/* Custody material (shares, keys) is wiped with the core. */
static void rekey_state_release(void *state)
{
	rk_clear(state);
}

static const struct cs_core_state_type rekey_state_type = {
    .name = "rekey",
    .size = sizeof(struct rekey_state),
    .release = rekey_state_release,
};

/* sys/rekey-recovery-key/... rekeys the recovery key of an auto seal: the same
 * protocol with its own attempt (Vault keeps the two apart too). */
static const struct cs_core_state_type recovery_rekey_state_type = {
    .name = "rekey-recovery-key",
    .size = sizeof(struct rekey_state),
    .release = rekey_state_release,
};

static bool is_recovery(const struct cs_request *req)
{
	return strstr(req->path, "rekey-recovery-key/") != NULL;
}

static struct rekey_state *rk_of(struct cs_request *req)
{
	return cs_core_state(req->core,
			     is_recovery(req) ? &recovery_rekey_state_type : &rekey_state_type);
}

static void rk_clear(struct rekey_state *rk)
{
	cs_share_set_clear(&rk->progress);
	cs_share_set_clear(&rk->vprogress);
	if (rk->vkek)
		cs_secmem_free(rk->vkek, CS_KEY_LEN);
	cJSON_Delete(rk->pgp_keys);
	cJSON_Delete(rk->pgp_fprs);
	memset(rk, 0, sizeof *rk);
}

static bool rk_live(struct cs_request *req)
{
	struct rekey_state *rk = rk_of(req);
	if (rk->started && !cs_keys_attempt_current(req->core, rk->epoch))
		rk_clear(rk);
	return rk->started;
}

/* Vault's unauthenticated rekey (a listener set disable_unauthed_rekey_endpoints = false):
 * then the status never shows the nonce, which only the caller of init learns. */
static bool unauthed(const struct cs_config *cfg)
{
	for (int i = 0; cfg && i < cfg->n_listeners; i++)
		if (!cfg->listeners[i].disable_unauthed_rekey_endpoints)
			return true;
	return false;
}

static cJSON *rekey_status_nonce(struct cs_request *req, bool show_nonce);

static cJSON *rekey_status(struct cs_request *req)
{
	return rekey_status_nonce(req, !unauthed(req->core->cfg));
}

static cJSON *rekey_status_nonce(struct cs_request *req, bool show_nonce)
{
	struct rekey_state *rk = rk_of(req);
	int n = 0, t = 0;
	cs_keys_seal_config(req, &n, &t);
	bool live = rk_live(req);
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "nonce", live && show_nonce ? rk->nonce : "");
	cJSON_AddBoolToObject(j, "started", live);
	cJSON_AddNumberToObject(j, "t", live ? rk->threshold : 0);
	cJSON_AddNumberToObject(j, "n", live ? rk->shares : 0);
	cJSON_AddNumberToObject(j, "progress", live ? rk->progress.n : 0);
	cJSON_AddNumberToObject(j, "required", t);
	if (live && rk->pgp_fprs)
		cJSON_AddItemToObject(j, "pgp_fingerprints", cJSON_Duplicate(rk->pgp_fprs, true));
	else
		cJSON_AddNullToObject(j, "pgp_fingerprints");
	cJSON_AddBoolToObject(j, "backup", live && rk->backup);
	cJSON_AddBoolToObject(j, "verification_required", live && rk->require_verification);
	if (live && rk->vkek)
		cJSON_AddStringToObject(j, "verification_nonce", rk->vnonce);
	return j;
}

static int init_read(struct cs_request *req)
{
	req->raw = rekey_status(req);
	return 0;
}

static int init_write(struct cs_request *req)
{
	struct rekey_state *rk = rk_of(req);
	struct cs_core *core = req->core;
	if (is_recovery(req) && core->seal.kind == CS_SEAL_SHAMIR)
		return cs_req_error(req, CS_EINVAL, "recovery rekeying not supported");
	if (!is_recovery(req) && core->seal.kind != CS_SEAL_SHAMIR)
		return cs_req_error(req, CS_EINVAL,
				    "this node uses an auto seal: rekey the recovery keys with "
				    "sys/rekey-recovery-key");
	if (rk_live(req))
		return cs_req_error(req, CS_EINVAL, "rekey already in progress");
	int n = (int)cs_req_int(req, "secret_shares", 0);
	int t = (int)cs_req_int(req, "secret_threshold", 0);
	int64_t n64 = cs_req_int(req, "secret_shares", 0),
		t64 = cs_req_int(req, "secret_threshold", 0);
	if (n64 != n || t64 != t || !cs_seal_config_valid(n, t) || (n > 1 && t < 2))
		return cs_req_error(req, CS_EINVAL,
				    "invalid rekey seal configuration: need 1 <= secret_threshold "
				    "<= secret_shares <= %d, and a threshold of at least 2 with "
				    "more than one share",
				    CS_MAX_SHARES);
	const cJSON *pgp = cs_req_get(req, "pgp_keys");
	bool backup = cs_req_bool(req, "backup", false);
	if (backup && cJSON_GetArraySize(pgp) == 0)
		return cs_req_error(req, CS_EINVAL,
				    "cannot request a backup of the new keys without providing PGP "
				    "keys for encryption");
	cJSON *fprs = NULL;
	if (cJSON_GetArraySize(pgp) > 0) {
		if (cJSON_GetArraySize(pgp) != n)
			return cs_req_error(req, CS_EINVAL,
					    "incorrect number of PGP keys for rekey");
		char err[256] = "";
		int rc = cs_keys_pgp_check(pgp, &fprs, err, sizeof err);
		if (rc)
			return cs_req_error(req, rc, "%s", err);
	}
	rk_clear(rk);
	if (fprs) {
		rk->pgp_keys = cJSON_Duplicate(pgp, true);
		rk->pgp_fprs = fprs;
	}
	rk->started = true;
	rk->epoch = core->active_since_ns;
	cs_uuid(rk->nonce);
	rk->shares = n;
	rk->threshold = t;
	rk->backup = backup;
	rk->require_verification = cs_req_bool(req, "require_verification", false);
	cs_info("core: rekey initialized (%d shares, threshold %d%s)", n, t,
		rk->require_verification ? ", verification required" : "");
	req->raw = rekey_status_nonce(req, true);
	return 0;
}

static int init_cancel(struct cs_request *req)
{
	struct rekey_state *rk = rk_of(req);
	if (!rk_live(req))
		return 0;
	/* A stranger who cannot show the nonce cannot abort an operator's attempt. */
	if (!cs_keys_nonce_ok(req, rk->nonce))
		return cs_req_error(req, CS_EINVAL,
				    "the rekey attempt's nonce is required to cancel it");
	rk_clear(rk);
	cs_info("core: rekey cancelled");
	return 0;
}

/* Write the new seal with `kek` in the request's transaction and forget the attempt. */
static int finish(struct cs_request *req, const uint8_t *kek)
{
	struct rekey_state *rk = rk_of(req);
	bool rec = is_recovery(req);
	int rc = rec ? cs_seal_recovery_write(req->core, &req->txn, kek, rk->shares, rk->threshold)
		     : cs_seal_rekey_write(req->core, &req->txn, kek, rk->shares, rk->threshold);
	if (rc)
		return cs_req_error(req, rc, "failed to store the new seal: %s", cs_strerror(rc));
	/* The active node hands the config out (join challenges) before anyone reads
	 * seal-status: take the new counts now (seal-status re-reads storage anyway). */
	if (rec) {
		req->core->seal.recovery_shares = rk->shares;
		req->core->seal.recovery_threshold = rk->threshold;
	} else {
		req->core->seal.shares = rk->shares;
		req->core->seal.threshold = rk->threshold;
	}
	cs_info("core: rekey complete: %d shares, threshold %d", rk->shares, rk->threshold);
	rk_clear(rk);
	return 0;
}

/* The shares are out (r, kek taken): write the backup, then either wait for
 * verification or write the new seal. The response is r. */
static int complete(struct cs_request *req, cJSON *r, cJSON *backup, uint8_t *kek)
{
	struct rekey_state *rk = rk_of(req);
	int rc = 0;
	if (backup) {
		/* Vault's core/unseal-keys-backup, here behind the barrier. */
		cJSON_AddStringToObject(backup, "nonce", rk->nonce);
		char *js = cJSON_PrintUnformatted(backup);
		rc = cs_txn_put(&req->txn, BACKUP_PATH_OF(req), js, strlen(js));
		free(js);
	}
	if (!cJSON_GetObjectItemCaseSensitive(r, "pgp_fingerprints"))
		cJSON_AddNullToObject(r, "pgp_fingerprints");
	cJSON_AddBoolToObject(r, "backup", rk->backup);
	cJSON_AddBoolToObject(r, "verification_required", rk->require_verification);
	if (!rc && rk->require_verification) {
		/* Nothing is written until the new shares prove they rebuild the key. */
		rk->vkek = kek;
		cs_uuid(rk->vnonce);
		cJSON_AddStringToObject(r, "verification_nonce", rk->vnonce);
		req->raw = r;
		cs_info("core: rekey: new shares issued, awaiting verification");
		return 0;
	}
	if (!rc)
		rc = finish(req, kek);
	cs_secmem_free(kek, CS_KEY_LEN);
	if (rc) {
		cs_keys_free_secret_json(r);
		return req->errmsg ? rc : cs_req_error(req, rc, "failed to store the rekey");
	}
	req->raw = r;
	return 0;
}

/* PGP encryption runs gpg: on the worker pool, off the loop (backend.h cs_req_defer). */
struct pgp_job {
	struct cs_async async;
	cJSON *resp, *pgp_keys, *backup;
	bool want_backup;
	uint8_t *kek; /* secmem: the new KEK, until complete() takes it */
	char nonce[37];
	int rc;
	char err[256];
};

static void pgp_job_free(struct pgp_job *j)
{
	cs_keys_free_secret_json(j->resp);
	cJSON_Delete(j->pgp_keys);
	cJSON_Delete(j->backup);
	if (j->kek)
		cs_secmem_free(j->kek, CS_KEY_LEN);
	free(j);
}

static void pgp_work(struct cs_async *a)
{
	struct pgp_job *j = (struct pgp_job *)a;
	j->rc = cs_keys_pgp_shares(j->resp, j->pgp_keys, j->want_backup ? &j->backup : NULL, j->err,
				   sizeof j->err);
}

static int pgp_resume(struct cs_request *req, struct cs_async *a, int status)
{
	struct rekey_state *rk = rk_of(req);
	struct pgp_job *j = (struct pgp_job *)a;
	bool same = rk->busy && rk_live(req) && strcmp(rk->nonce, j->nonce) == 0;
	if (same)
		rk->busy = false;
	int rc = status;
	if (!rc && j->rc)
		rc = cs_req_error(req, j->rc, "failed to encrypt shares: %s", j->err);
	else if (!rc && !same)
		rc = cs_req_error(req, CS_EINVAL, "the rekey was cancelled meanwhile");
	if (rc) {
		pgp_job_free(j);
		return rc;
	}
	cJSON *r = j->resp, *bk = j->backup;
	uint8_t *kek = j->kek;
	j->resp = j->backup = NULL;
	j->kek = NULL;
	pgp_job_free(j);
	rc = complete(req, r, bk, kek);
	cJSON_Delete(bk);
	return rc;
}

static int update(struct cs_request *req)
{
	struct rekey_state *rk = rk_of(req);
	struct cs_core *core = req->core;
	if (!rk_live(req))
		return cs_req_error(req, CS_EINVAL, "no barrier rekey in progress");
	if (rk->busy)
		return cs_req_error(req, CS_EBUSY, "the new shares are being encrypted");
	if (rk->vkek)
		return cs_req_error(req, CS_EINVAL,
				    "rekey operation already finished; verification must be "
				    "performed");
	int n = 0, t = 0;
	int rc = cs_keys_seal_config(req, &n, &t);
	if (rc)
		return rc;
	rc = cs_keys_add_share(req, &rk->progress, rk->nonce, n);
	if (rc)
		return rc;
	if (rk->progress.n < t) {
		req->raw = rekey_status(req);
		return 0;
	}
	uint8_t *kek = cs_secmem_alloc(CS_KEY_LEN);
	rc = cs_seal_check_shares(core, &rk->progress, kek);
	cs_share_set_clear(&rk->progress);
	if (rc) {
		cs_secmem_free(kek, CS_KEY_LEN);
		return cs_req_error(req, rc == CS_EINVAL ? CS_EINVAL : rc,
				    "rekey aborted: the unseal keys given do not rebuild this "
				    "cluster's key; progress reset");
	}
	/* A fresh KEK for the new shares; the old one is not reused. */
	cs_random(kek, CS_KEY_LEN);
	uint8_t *mem = NULL;
	size_t share_len = 0;
	rc = cs_seal_make_shares(kek, rk->shares, rk->threshold, &mem, &share_len);
	if (rc) {
		cs_secmem_free(kek, CS_KEY_LEN);
		return cs_req_error(req, rc, "failed to split the new key");
	}
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "nonce", rk->nonce);
	cJSON_AddBoolToObject(r, "complete", true);
	cs_seal_add_shares_json(r, mem, rk->shares, share_len);
	cs_secmem_free(mem, share_len * (size_t)rk->shares);
	if (!rk->pgp_keys)
		return complete(req, r, NULL, kek);
	struct pgp_job *j = calloc(1, sizeof *j);
	if (!j)
		abort();
	j->async.work = pgp_work;
	j->async.resume = pgp_resume;
	j->resp = r;
	j->pgp_keys = cJSON_Duplicate(rk->pgp_keys, true);
	j->want_backup = rk->backup;
	j->kek = kek;
	memcpy(j->nonce, rk->nonce, sizeof j->nonce);
	rk->busy = true; /* no other share is taken until the job is back */
	return cs_req_defer(req, &j->async);
}

static cJSON *verify_status(struct rekey_state *rk)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "nonce", rk->vkek ? rk->vnonce : "");
	cJSON_AddBoolToObject(j, "started", rk->vkek != NULL);
	cJSON_AddNumberToObject(j, "t", rk->threshold);
	cJSON_AddNumberToObject(j, "n", rk->shares);
	cJSON_AddNumberToObject(j, "progress", rk->vprogress.n);
	return j;
}

static int verify_read(struct cs_request *req)
{
	if (!rk_live(req))
		return cs_req_error(req, CS_EINVAL, "no rekey configuration found");
	req->raw = verify_status(rk_of(req));
	return 0;
}

static int verify_update(struct cs_request *req)
{
	struct rekey_state *rk = rk_of(req);
	if (!rk_live(req))
		return cs_req_error(req, CS_EINVAL, "no rekey in progress");
	if (!rk->vkek)
		return cs_req_error(req, CS_EINVAL, "no rekey verification in progress");
	int rc = cs_keys_add_share(req, &rk->vprogress, rk->vnonce, rk->shares);
	if (rc)
		return rc;
	if (rk->vprogress.n < rk->threshold) {
		req->raw = verify_status(rk_of(req));
		return 0;
	}
	uint8_t *kek = cs_secmem_alloc(CS_KEY_LEN);
	rc = cs_share_set_combine(&rk->vprogress, kek);
	cs_share_set_clear(&rk->vprogress);
	if (rc || !cs_ct_equal(kek, CS_KEY_LEN, rk->vkek, CS_KEY_LEN)) {
		cs_secmem_free(kek, CS_KEY_LEN);
		cs_uuid(rk->vnonce); /* as Vault: a failed round starts over with a new nonce */
		return cs_req_error(
		    req, CS_EINVAL,
		    "rekey verification failed: the keys given do not rebuild the "
		    "new key; read sys/rekey/verify for the new nonce and try again");
	}
	cs_secmem_free(kek, CS_KEY_LEN);
	char vnonce[37];
	memcpy(vnonce, rk->vnonce, sizeof vnonce);
	rc = finish(req, rk->vkek);
	if (rc)
		return rc;
	req->raw = cJSON_CreateObject();
	cJSON_AddStringToObject(req->raw, "nonce", vnonce);
	cJSON_AddBoolToObject(req->raw, "complete", true);
	return 0;
}

static int verify_restart(struct cs_request *req)
{
	struct rekey_state *rk = rk_of(req);
	if (!rk_live(req) || !rk->vkek)
		return cs_req_error(req, CS_EINVAL, "no rekey verification in progress");
	if (!cs_keys_nonce_ok(req, rk->vnonce))
		return cs_req_error(req, CS_EINVAL,
				    "the verification nonce is required to restart verification");
	cs_share_set_clear(&rk->vprogress);
	cs_uuid(rk->vnonce);
	req->raw = verify_status(rk_of(req));
	return 0;
}

static int backup_read(struct cs_request *req)
{
	struct cs_buf b = CS_BUF_INIT;
	int rc = cs_txn_get(&req->txn, BACKUP_PATH_OF(req), &b);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL, "no backup found");
	if (rc)
		return rc;
	cJSON *j = cJSON_ParseWithLength(b.data, b.len);
	cs_buf_free(&b);
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return cs_req_error(req, CS_EIO, "stored backup is corrupt");
	}
	cs_req_set_data(req, j);
	return 0;
}

static int backup_delete(struct cs_request *req)
{
	return cs_txn_delete(&req->txn, BACKUP_PATH_OF(req));
}

static const struct cs_field init_fields[] = {
    {.name = "secret_shares", .type = CS_FIELD_INT, .desc = "number of new key shares"},
    {.name = "secret_threshold", .type = CS_FIELD_INT, .desc = "new shares needed to unseal"},
    {.name = "pgp_keys",
     .type = CS_FIELD_STRLIST,
     .desc = "PGP public keys (base64) to encrypt the new shares"},
    {.name = "backup",
     .type = CS_FIELD_BOOL,
     .desc = "store the PGP-encrypted shares for sys/rekey/backup"},
    {.name = "require_verification",
     .type = CS_FIELD_BOOL,
     .desc = "the new shares must be verified before use"},
    {.name = "nonce", .type = CS_FIELD_STRING, .desc = "the attempt's nonce (to cancel it)"},
    {.name = NULL},
};

static const struct cs_field key_fields[] = {
    {.name = "key", .type = CS_FIELD_STRING, .desc = "one key share, hex or base64"},
    {.name = "nonce", .type = CS_FIELD_STRING, .desc = "the operation's nonce"},
    {.name = NULL},
};

/* As in OpenBao 2.5 (authenticated rekey): every rekey path needs sudo. */
/* The rows, with the access the listeners' disable_unauthed_rekey_endpoints picks:
 * sudo, or unauthenticated (Vault's default). Two static tables, no copy at run time. */
#define REKEY_ROWS(access, prefix, what)                                                           \
	{.pattern = prefix "/init",                                                                \
	 .fields = init_fields,                                                                    \
	 .ops = {[CS_OP_READ] = init_read,                                                         \
		 [CS_OP_UPDATE] = init_write,                                                      \
		 [CS_OP_DELETE] = init_cancel},                                                    \
	 .flags = (access),                                                                        \
	 .synopsis = "start, read or cancel a rekey of the " what},                                \
	    {.pattern = prefix "/update",                                                          \
	     .fields = key_fields,                                                                 \
	     .ops = {[CS_OP_UPDATE] = update},                                                     \
	     .flags = (access),                                                                    \
	     .synopsis = "give one current share of the " what},                                   \
	    {.pattern = prefix "/verify",                                                          \
	     .fields = key_fields,                                                                 \
	     .ops = {[CS_OP_READ] = verify_read,                                                   \
		     [CS_OP_UPDATE] = verify_update,                                               \
		     [CS_OP_DELETE] = verify_restart},                                             \
	     .flags = (access),                                                                    \
	     .synopsis = "verify the new shares of the " what},                                    \
	{                                                                                          \
		.pattern = prefix "/backup",                                                       \
		.ops = {[CS_OP_READ] = backup_read, [CS_OP_DELETE] = backup_delete},               \
		.flags = (access), .synopsis = "the PGP-encrypted backup of the new " what         \
	}

#define ALL_ROWS(access)                                                                           \
	REKEY_ROWS(access, "rekey", "unseal keys"),                                                \
	    REKEY_ROWS(access, "rekey-recovery-key", "recovery keys (auto seals)")

static const struct cs_path rekey_paths[] = {ALL_ROWS(CS_PATH_SUDO)};
static const struct cs_path rekey_paths_unauthed[] = {ALL_ROWS(CS_PATH_UNAUTH)};

void cs_rekey_register(const struct cs_config *cfg)
{
	cs_pgp_init();
	bool open = unauthed(cfg);
	_Static_assert(CS_ARRAY_LEN(rekey_paths) == CS_ARRAY_LEN(rekey_paths_unauthed),
		       "one table per access");
	if (open)
		cs_warn("core: sys/rekey endpoints are unauthenticated "
			"(disable_unauthed_rekey_endpoints = false)");
	cs_sys_set_paths(CS_SYS_REKEY, open ? rekey_paths_unauthed : rekey_paths,
			 CS_ARRAY_LEN(rekey_paths));
}
