/*
 * Auto-unseal in the core: set-up, the unseal retry loop, sys/init with an auto seal,
 * and the joiner's unwrap (see seal_auto.h). Loop thread only.
 *
 * Key hygiene: the KEK exists here only in cs_secmem memory, from the seal's answer to
 * cs_seal_unseal_with_kek / cs_ha_join_unsealed / cs_seal_init, and is freed (zeroised)
 * right after. Log lines name the seal and the failure, never a key or a token.
 */
#include "server/seal_auto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/secmem.h"
#include "lib/util.h"
#include "server/core.h"
#include "server/ha.h"
#include "server/seal.h"
#include "server/seal_wrap.h"

struct cs_seal_auto {
	struct cs_core *core;
	struct cs_autoseal *seal; /* the enabled auto seal, or NULL (Shamir) */
	struct cs_autoseal *old;  /* a disabled one, being migrated from */
	uv_timer_t timer;
	uv_timer_cb tick; /* what the timer runs: unseal_tick or join_tick */
	bool unsealing;   /* the timer drives start-up unseal (else the join unwrap) */
	bool in_flight;
	int failures;
	char last_err[256];
	char *join_wrapped; /* the join's envelope, until unwrapped */
	/* A seal migration under way (unseal -migrate): see migrate_*. */
	struct {
		bool running;
		int from, to;      /* kinds */
		uint8_t *kek;      /* secmem, once known */
		uint8_t *recovery; /* secmem: the key the operators' shares rebuilt */
		int n, t;          /* the split of `recovery` */
		char *wrapped;     /* the new seal's envelope (to an auto seal) */
		uv_timer_t commit; /* waits for the node to be active, then writes */
		bool committing;
	} mig;
	int closing;
	void (*shutdown_cb)(struct cs_core *core);
};

static const char *env_get(const char *name)
{
	return getenv(name);
}

int cs_seal_auto_kind(const struct cs_core *core)
{
	return core->autoseal && core->autoseal->seal ? (int)core->autoseal->seal->params.kind
						      : CS_SEAL_SHAMIR;
}

static int open_one(struct cs_core *core, const struct cs_seal_params *cfg,
		    struct cs_autoseal **out)
{
	struct cs_seal_params p;
	cs_seal_params_copy(&p, cfg);
	char err[512] = "";
	int rc = cs_seal_params_apply_env(&p, env_get, err, sizeof err);
	if (!rc)
		rc = cs_seal_params_check(&p, err, sizeof err);
	if (!rc)
		rc = cs_autoseal_open(core->loop, &p, out, err, sizeof err);
	cs_seal_params_free(&p);
	if (rc)
		snprintf(core->errmsg, sizeof core->errmsg, "seal \"%s\": %s",
			 cs_seal_kind_name(cfg->kind), err);
	return rc;
}

int cs_seal_auto_setup(struct cs_core *core)
{
	const struct cs_config *cfg = core->cfg;
	const struct cs_seal_params *en = NULL, *dis = NULL;
	for (int i = 0; i < cfg->n_seals; i++) {
		if (cfg->seals[i].disabled)
			dis = &cfg->seals[i];
		else
			en = &cfg->seals[i];
	}
	if (en && en->kind == CS_SEAL_SHAMIR)
		en = NULL;
	if (dis && dis->kind == CS_SEAL_SHAMIR)
		dis = NULL;
	int stored = core->initialized ? core->seal.kind : -1;
	if (stored > CS_SEAL_SHAMIR && (!en || en->kind != (enum cs_seal_kind)stored) &&
	    (!dis || dis->kind != (enum cs_seal_kind)stored)) {
		snprintf(core->errmsg, sizeof core->errmsg,
			 "storage is sealed by a \"%s\" seal, but the config has no seal \"%s\" "
			 "stanza (add it, or mark it disabled = \"true\" to migrate away)",
			 cs_seal_kind_name(stored), cs_seal_kind_name(stored));
		return CS_EINVAL;
	}
	if (!en && !dis)
		return 0;
	struct cs_seal_auto *a = calloc(1, sizeof *a);
	if (!a)
		abort();
	a->core = core;
	core->autoseal = a;
	uv_timer_init(core->loop, &a->timer);
	a->timer.data = a;
	uv_timer_init(core->loop, &a->mig.commit);
	a->mig.commit.data = a;
	int rc = en ? open_one(core, en, &a->seal) : 0;
	if (!rc && dis)
		rc = open_one(core, dis, &a->old);
	if (rc)
		return rc;
	/* The seals hold their own copies: leave no second copy of the secrets around. */
	for (int i = 0; i < core->cfg->n_seals; i++) {
		struct cs_seal_params *c = &core->cfg->seals[i];
		char **secret[] = {&c->token, &c->pin};
		for (size_t k = 0; k < CS_ARRAY_LEN(secret); k++)
			if (*secret[k])
				cs_zero(*secret[k], strlen(*secret[k]));
	}
	/* The stored seal is not the enabled one: only `unseal -migrate` opens it. */
	core->seal.migration = stored >= 0 && stored != cs_seal_auto_kind(core);
	if (core->seal.migration)
		cs_warn("seal: migration from the \"%s\" seal to \"%s\": unseal with "
			"`custos operator unseal -migrate`",
			cs_seal_kind_name(stored), cs_seal_kind_name(cs_seal_auto_kind(core)));
	return 0;
}

/* ------------------------------------------------------------------ retry loop */

static void retry_later(struct cs_seal_auto *a, const char *what, const char *err)
{
	a->failures++;
	uint64_t ms = cs_seal_backoff_ms(a->failures);
	/* One line per kind of failure, not per attempt: a seal server that is down for an
	 * hour leaves one line, and the line that says it came back. */
	if (strcmp(a->last_err, err) != 0) {
		cs_error("seal: %s with the %s seal failed: %s; the node stays sealed and "
			 "retries (every %u s at most)",
			 what, cs_seal_kind_name(a->seal->params.kind), err,
			 CS_SEAL_BACKOFF_MAX_MS / 1000);
		snprintf(a->last_err, sizeof a->last_err, "%s", err);
	} else {
		cs_debug("seal: %s failed again (attempt %d): %s", what, a->failures, err);
	}
	uv_timer_start(&a->timer, a->tick, ms, 0);
}

static void recovered(struct cs_seal_auto *a, const char *what)
{
	if (a->failures)
		cs_info("seal: the %s seal answered after %d failed attempt(s): %s",
			cs_seal_kind_name(a->seal->params.kind), a->failures, what);
	else
		cs_info("seal: %s with the %s seal", what, cs_seal_kind_name(a->seal->params.kind));
	a->failures = 0;
	a->last_err[0] = '\0';
}

static void unwrapped(void *ctx, int rc, struct cs_buf *out, const char *err)
{
	struct cs_seal_auto *a = ctx;
	struct cs_core *core = a->core;
	a->in_flight = false;
	if (core->kr || core->shutting_down)
		return;
	if (!rc && out->len != CS_KEY_LEN) {
		retry_later(a, "unseal", "the seal returned a key of the wrong length");
		return;
	}
	if (rc) {
		retry_later(a, "unseal", err);
		return;
	}
	uint8_t *kek = cs_secmem_alloc(CS_KEY_LEN);
	memcpy(kek, out->data, CS_KEY_LEN);
	char e[256] = "";
	rc = cs_seal_unseal_with_kek(core, kek, e, sizeof e);
	cs_secmem_free(kek, CS_KEY_LEN);
	if (rc) {
		retry_later(a, "unseal", e);
		return;
	}
	recovered(a, "unsealed");
}

/* Read and decode the stored envelope. 0 or an error with err. */
static int stored_envelope(struct cs_core *core, struct cs_seal_envelope *e, char *err,
			   size_t errlen)
{
	struct cs_buf b = CS_BUF_INIT;
	int rc =
	    cs_store_get(&core->st.store, CS_WRAPPED_KEK_PATH, strlen(CS_WRAPPED_KEK_PATH), &b);
	if (rc) {
		snprintf(err, errlen, "no wrapped key in storage (%s)", cs_strerror(rc));
		return rc;
	}
	rc = cs_seal_envelope_decode(b.data, b.len, e);
	cs_buf_free(&b);
	if (rc)
		snprintf(err, errlen, "the stored wrapped key is corrupt");
	return rc;
}

static void unseal_tick(uv_timer_t *h)
{
	struct cs_seal_auto *a = h->data;
	struct cs_core *core = a->core;
	if (core->kr || core->shutting_down || a->in_flight || core->seal.migration)
		return;
	struct cs_seal_envelope e;
	char err[256] = "";
	if (stored_envelope(core, &e, err, sizeof err)) {
		cs_error("seal: cannot unseal: %s", err);
		return;
	}
	int rc = e.kind == a->seal->params.kind ? a->seal->ops->decrypt(a->seal, &e, unwrapped, a)
						: CS_EINVAL;
	cs_seal_envelope_free(&e);
	if (rc) {
		retry_later(a, "unseal", "the seal refused the request");
		return;
	}
	a->in_flight = true;
}

void cs_seal_auto_start(struct cs_core *core)
{
	struct cs_seal_auto *a = core->autoseal;
	if (!a || !a->seal || !core->initialized || core->seal.migration ||
	    core->seal.kind != (int)a->seal->params.kind)
		return;
	cs_info("seal: unsealing with the %s seal", cs_seal_kind_name(a->seal->params.kind));
	a->unsealing = true;
	a->tick = unseal_tick;
	uv_timer_start(&a->timer, unseal_tick, 0, 0);
}

/* ------------------------------------------------------------------ join */

static void join_tick(uv_timer_t *h);
static void migrate_clear(struct cs_seal_auto *a);

static void join_unwrapped(void *ctx, int rc, struct cs_buf *out, const char *err)
{
	struct cs_seal_auto *a = ctx;
	struct cs_core *core = a->core;
	a->in_flight = false;
	if (core->kr || core->shutting_down || !a->join_wrapped)
		return;
	if (rc || out->len != CS_KEY_LEN) {
		retry_later(a, "join unwrap",
			    rc ? err : "the seal returned a key of the wrong length");
		return;
	}
	uint8_t *kek = cs_secmem_alloc(CS_KEY_LEN);
	memcpy(kek, out->data, CS_KEY_LEN);
	char e[256] = "";
	rc = cs_ha_join_unsealed(core, kek, e, sizeof e);
	cs_secmem_free(kek, CS_KEY_LEN);
	free(a->join_wrapped);
	a->join_wrapped = NULL;
	if (rc)
		cs_error("seal: join: %s", e);
	else
		recovered(a, "answered the join challenge");
}

static void join_tick(uv_timer_t *h)
{
	struct cs_seal_auto *a = h->data;
	if (!a->join_wrapped || a->in_flight || a->core->kr)
		return;
	struct cs_seal_envelope e;
	int rc = cs_seal_envelope_decode(a->join_wrapped, strlen(a->join_wrapped), &e);
	if (rc || e.kind != a->seal->params.kind) {
		cs_error("seal: join: the leader's wrapped key is not usable by this seal");
		if (!rc)
			cs_seal_envelope_free(&e);
		return;
	}
	rc = a->seal->ops->decrypt(a->seal, &e, join_unwrapped, a);
	cs_seal_envelope_free(&e);
	if (rc)
		retry_later(a, "join unwrap", "the seal refused the request");
	else
		a->in_flight = true;
}

void cs_seal_auto_join(void *ctx, const char *type, const char *wrapped)
{
	struct cs_core *core = ctx;
	struct cs_seal_auto *a = core->autoseal;
	if (!a || !a->seal || cs_seal_kind_parse(type) != (int)a->seal->params.kind) {
		cs_error("seal: join: the cluster uses a \"%.32s\" seal; configure the same seal "
			 "stanza on this node",
			 type);
		return;
	}
	free(a->join_wrapped);
	a->join_wrapped = strdup(wrapped);
	if (!a->join_wrapped)
		abort();
	core->seal.kind = a->seal->params.kind;
	a->tick = join_tick;
	if (!a->in_flight)
		uv_timer_start(&a->timer, join_tick, 0, 0);
}

/* ------------------------------------------------------------------ init */

struct init_job {
	struct cs_async async;
	uint8_t *kek; /* secmem */
	char *wrapped;
	int rc;
	char err[512];
	int rn, rt;
};

static void init_job_free(struct init_job *j)
{
	cs_secmem_free(j->kek, CS_KEY_LEN);
	free(j->wrapped);
	free(j);
}

static void init_wrapped(void *ctx, int rc, struct cs_buf *out, const char *err)
{
	struct init_job *j = ctx;
	j->rc = rc;
	if (rc)
		snprintf(j->err, sizeof j->err, "%s", err);
	else
		j->wrapped = cs_buf_steal(out, NULL);
	cs_req_wake(&j->async);
}

static int init_resume(struct cs_request *req, struct cs_async *as, int status)
{
	struct init_job *j = (struct init_job *)as;
	struct cs_core *core = req->core;
	int rc = status;
	if (!rc && j->rc)
		rc = cs_req_error(req, CS_EIO, "failed to wrap the root key with the %s seal: %s",
				  cs_seal_kind_name(cs_seal_auto_kind(core)), j->err);
	else if (!rc && core->initialized && !cs_ha_join_pending(core))
		rc = cs_req_error(req, CS_EINVAL, "Vault is already initialized");
	if (rc) {
		init_job_free(j);
		return rc;
	}
	struct cs_init_params p = {.shares = 1,
				   .threshold = 1,
				   .kek = j->kek,
				   .wrapped = j->wrapped,
				   .kind = cs_seal_auto_kind(core),
				   .recovery_shares = j->rn,
				   .recovery_threshold = j->rt};
	char err[256] = "";
	cJSON *resp = NULL;
	rc = cs_seal_init(core, &req->txn, &p, &resp, err, sizeof err);
	init_job_free(j);
	if (rc)
		return cs_req_error(req, rc, "%s", err);
	core->initialized = true;
	core->seal.shares = 1;
	core->seal.threshold = 1;
	core->seal.kind = p.kind;
	core->seal.recovery_shares = p.recovery_shares;
	core->seal.recovery_threshold = p.recovery_threshold;
	req->raw = resp;
	cs_info("core: initialised with the %s seal, %d recovery shares, threshold %d",
		cs_seal_kind_name(p.kind), p.recovery_shares, p.recovery_threshold);
	/* Vault unseals an auto-sealed node right after init: once this write applied. */
	req->after_response = cs_seal_auto_start;
	return 0;
}

int cs_seal_auto_init(struct cs_request *req)
{
	struct cs_core *core = req->core;
	struct cs_seal_auto *a = core->autoseal;
	if (cJSON_GetArraySize(cs_req_get(req, "recovery_pgp_keys")) > 0)
		return cs_req_error(req, CS_EINVAL, "recovery_pgp_keys is not supported");
	/* Absent or 0: Vault's CLI defaults, 5 shares and a threshold of 3. */
	int64_t rn = cs_req_int(req, "recovery_shares", 0);
	int64_t rt = cs_req_int(req, "recovery_threshold", 0);
	if (rn == 0)
		rn = 5, rt = rt ? rt : 3;
	else if (rt == 0)
		rt = rn == 1 ? 1 : rn;
	if (rn < 1 || rn > CS_MAX_SHARES || rt < 1 || rt > rn || (rn > 1 && rt < 2))
		return cs_req_error(
		    req, CS_EINVAL,
		    "invalid recovery configuration: recovery_threshold must be "
		    "between 2 and recovery_shares (1 with a single share), at most "
		    "%d shares",
		    CS_MAX_SHARES);
	struct init_job *j = calloc(1, sizeof *j);
	if (!j)
		abort();
	j->async.resume = init_resume;
	j->kek = cs_secmem_alloc(CS_KEY_LEN);
	cs_random(j->kek, CS_KEY_LEN);
	j->rn = (int)rn;
	j->rt = (int)rt;
	int rc = a->seal->ops->encrypt(a->seal, j->kek, CS_KEY_LEN, init_wrapped, j);
	if (rc) {
		init_job_free(j);
		return cs_req_error(req, CS_EINTERNAL, "the seal refused the request");
	}
	return cs_req_wait(req, &j->async);
}

/* ------------------------------------------------------------------ migration */

static void migrate_clear(struct cs_seal_auto *a)
{
	if (a->mig.kek)
		cs_secmem_free(a->mig.kek, CS_KEY_LEN);
	if (a->mig.recovery)
		cs_secmem_free(a->mig.recovery, CS_KEY_LEN);
	free(a->mig.wrapped);
	a->mig.kek = a->mig.recovery = NULL;
	a->mig.wrapped = NULL;
	a->mig.running = a->mig.committing = false;
	if (!uv_is_closing((uv_handle_t *)&a->mig.commit))
		uv_timer_stop(&a->mig.commit);
}

static void migrate_fail(struct cs_seal_auto *a, const char *why)
{
	cs_error("seal: migration from %s to %s failed: %s; the node stays on the %s seal",
		 cs_seal_kind_name(a->mig.from), cs_seal_kind_name(a->mig.to), why,
		 cs_seal_kind_name(a->mig.from));
	migrate_clear(a);
}

static void migrate_commit_tick(uv_timer_t *h);

static void migrate_committed(void *data, int status)
{
	struct cs_seal_auto *a = data;
	struct cs_core *core = a->core;
	if (status) {
		a->mig.committing = false;
		cs_warn("seal: migration write failed (%s); retrying", cs_strerror(status));
		uv_timer_start(&a->mig.commit, migrate_commit_tick, 500, 0);
		return;
	}
	int to = a->mig.to;
	migrate_clear(a);
	cs_seal_refresh_config(core);
	core->seal.migration = false;
	cs_info("seal: migration to the %s seal complete; remove the disabled seal stanza "
		"from the config",
		cs_seal_kind_name(to));
}

static void migrate_commit_tick(uv_timer_t *h)
{
	struct cs_seal_auto *a = h->data;
	struct cs_core *core = a->core;
	if (!a->mig.running || a->mig.committing || core->shutting_down)
		return;
	if (!core->kr) {
		migrate_fail(a, "the node was sealed meanwhile");
		return;
	}
	if (!core->active) {
		/* A standby: the active node (migrated first, or elected once this node
		 * unsealed) writes the new seal; it is done here once that write arrived. */
		cs_seal_refresh_config(core);
		if (core->seal.kind == a->mig.to) {
			int to = a->mig.to;
			migrate_clear(a);
			core->seal.migration = false;
			cs_info("seal: migration to the %s seal applied through the active node",
				cs_seal_kind_name(to));
			return;
		}
		uv_timer_start(&a->mig.commit, migrate_commit_tick, 200, 0);
		return;
	}
	struct cs_txn txn;
	cs_txn_begin(&txn, &core->st, core->kr);
	int rc = cs_seal_migrate_write(core, &txn, a->mig.to, a->mig.wrapped, a->mig.recovery,
				       a->mig.n, a->mig.t);
	if (rc) {
		cs_txn_abort(&txn);
		migrate_fail(a, cs_strerror(rc));
		return;
	}
	bool pending = false;
	a->mig.committing = true;
	rc = cs_txn_commit(&txn, migrate_committed, a, &pending);
	if (rc)
		migrate_committed(a, rc);
	else if (!pending)
		migrate_committed(a, 0);
}

static void migrate_wrapped(void *ctx, int rc, struct cs_buf *out, const char *err)
{
	struct cs_seal_auto *a = ctx;
	if (!a->mig.running)
		return;
	if (rc) {
		migrate_fail(a, err);
		return;
	}
	a->mig.wrapped = cs_buf_steal(out, NULL);
	uv_timer_start(&a->mig.commit, migrate_commit_tick, 0, 0);
}

/* The KEK is known: open the barrier, check the recovery key, wrap with the new seal. */
static void migrate_with_kek(struct cs_seal_auto *a)
{
	struct cs_core *core = a->core;
	char e[256] = "";
	if (!core->kr && cs_seal_unseal_with_kek(core, a->mig.kek, e, sizeof e)) {
		migrate_fail(a, e);
		return;
	}
	if (a->mig.from != CS_SEAL_SHAMIR &&
	    cs_seal_check_recovery_key(core, a->mig.recovery) != 0) {
		cs_core_seal(core);
		cs_ha_stop(core, NULL);
		migrate_fail(a, "the recovery keys given are not this cluster's");
		return;
	}
	if (a->mig.to == CS_SEAL_SHAMIR) {
		uv_timer_start(&a->mig.commit, migrate_commit_tick, 0, 0);
		return;
	}
	if (a->seal->ops->encrypt(a->seal, a->mig.kek, CS_KEY_LEN, migrate_wrapped, a))
		migrate_fail(a, "the new seal refused the request");
}

static void migrate_unwrapped(void *ctx, int rc, struct cs_buf *out, const char *err)
{
	struct cs_seal_auto *a = ctx;
	if (!a->mig.running)
		return;
	if (rc || out->len != CS_KEY_LEN) {
		migrate_fail(a, rc ? err : "the old seal returned a key of the wrong length");
		return;
	}
	a->mig.kek = cs_secmem_alloc(CS_KEY_LEN);
	memcpy(a->mig.kek, out->data, CS_KEY_LEN);
	migrate_with_kek(a);
}

int cs_seal_auto_migrate(struct cs_request *req, const uint8_t *key, size_t len)
{
	struct cs_core *core = req->core;
	struct cs_seal_auto *a = core->autoseal;
	if (!core->seal.migration || !a)
		return cs_req_error(req, CS_EINVAL,
				    "migrate option provided, but no seal migration is pending");
	if (a->mig.running)
		return cs_req_error(req, CS_EBUSY, "seal migration already in progress");
	int from = core->seal.kind, to = cs_seal_auto_kind(core);
	bool rec = from != CS_SEAL_SHAMIR;
	int n = rec ? core->seal.recovery_shares : core->seal.shares;
	int t = rec ? core->seal.recovery_threshold : core->seal.threshold;
	if (rec && (!a->old || (int)a->old->params.kind != from))
		return cs_req_error(req, CS_EINVAL,
				    "migrating away from the %s seal needs its stanza, marked "
				    "disabled = \"true\"",
				    cs_seal_kind_name(from));
	/* The operators' shares: unseal keys (from Shamir) or recovery keys. */
	struct cs_share_set set = {0};
	for (int i = 0; i < core->seal.progress; i++)
		cs_share_set_add(&set, core->seal.keys[i], core->seal.key_len[i]);
	size_t want = n == 1 ? CS_KEY_LEN : CS_KEY_LEN + 1;
	if (len != want) {
		cs_share_set_clear(&set);
		return cs_req_error(req, CS_EINVAL, "invalid key length %zu (expected %zu)", len,
				    want);
	}
	int rc = cs_share_set_add(&set, key, len);
	if (rc == 0) {
		int i = core->seal.progress++;
		if (i == 0)
			cs_uuid(core->seal.nonce);
		core->seal.keys[i] = cs_secmem_alloc(len);
		memcpy(core->seal.keys[i], key, len);
		core->seal.key_len[i] = len;
	}
	if (set.n < t) {
		cs_share_set_clear(&set);
		return 0;
	}
	uint8_t *secret = cs_secmem_alloc(CS_KEY_LEN);
	rc = cs_share_set_combine(&set, secret);
	cs_share_set_clear(&set);
	cs_core_unseal_reset(core);
	if (rc) {
		cs_secmem_free(secret, CS_KEY_LEN);
		return cs_req_error(req, CS_EINVAL, "unseal failed: invalid key shares");
	}
	a->mig.running = true;
	a->mig.from = from;
	a->mig.to = to;
	a->mig.n = n;
	a->mig.t = t;
	a->mig.recovery = secret;
	cs_info("seal: migrating from the %s seal to the %s seal", cs_seal_kind_name(from),
		cs_seal_kind_name(to));
	if (!rec) {
		/* From Shamir the shares rebuild the KEK, which stays; they become the
		 * recovery keys. */
		a->mig.kek = cs_secmem_alloc(CS_KEY_LEN);
		memcpy(a->mig.kek, secret, CS_KEY_LEN);
		migrate_with_kek(a);
		if (!core->kr)
			return cs_req_error(req, CS_EINVAL,
					    "unseal failed: the keys given are not this cluster's");
		return 0;
	}
	struct cs_seal_envelope e;
	char err[256] = "";
	rc = stored_envelope(core, &e, err, sizeof err);
	if (!rc) {
		rc = e.kind == a->old->params.kind
			 ? a->old->ops->decrypt(a->old, &e, migrate_unwrapped, a)
			 : CS_EINVAL;
		cs_seal_envelope_free(&e);
		if (rc)
			snprintf(err, sizeof err, "the old seal refused the request");
	}
	if (rc) {
		migrate_clear(a);
		return cs_req_error(req, CS_EIO, "seal migration failed: %s", err);
	}
	return 0;
}

/* ------------------------------------------------------------------ shutdown */

static void shutdown_step(struct cs_seal_auto *a)
{
	if (--a->closing > 0)
		return;
	struct cs_core *core = a->core;
	void (*cb)(struct cs_core *) = a->shutdown_cb;
	free(a->join_wrapped);
	free(a);
	core->autoseal = NULL;
	if (cb)
		cb(core);
}

static void seal_closed(void *ctx)
{
	shutdown_step(ctx);
}

static void timer_closed(uv_handle_t *h)
{
	shutdown_step(h->data);
}

void cs_seal_auto_shutdown(struct cs_core *core, void (*cb)(struct cs_core *core))
{
	struct cs_seal_auto *a = core->autoseal;
	if (!a) {
		if (cb)
			cb(core);
		return;
	}
	a->shutdown_cb = cb;
	a->closing = 2 + (a->seal != NULL) + (a->old != NULL);
	migrate_clear(a);
	uv_timer_stop(&a->timer);
	uv_close((uv_handle_t *)&a->timer, timer_closed);
	uv_close((uv_handle_t *)&a->mig.commit, timer_closed);
	if (a->seal)
		cs_autoseal_close(a->seal, seal_closed, a);
	if (a->old)
		cs_autoseal_close(a->old, seal_closed, a);
}

void cs_seal_auto_register(struct cs_core *core)
{
	static const struct cs_core_autoseal hooks = {
	    .setup = cs_seal_auto_setup,
	    .start = cs_seal_auto_start,
	    .shutdown = cs_seal_auto_shutdown,
	    .kind = cs_seal_auto_kind,
	    .init = cs_seal_auto_init,
	    .migrate = cs_seal_auto_migrate,
	    .join = cs_seal_auto_join,
	};
	cs_core_set_autoseal(core, &hooks);
}
