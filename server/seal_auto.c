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
	int rc = en ? open_one(core, en, &a->seal) : 0;
	if (!rc && dis)
		rc = open_one(core, dis, &a->old);
	if (rc)
		return rc;
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
	int64_t rn = cs_req_int(req, "recovery_shares", 5);
	int64_t rt = cs_req_int(req, "recovery_threshold", rn == 5 ? 3 : rn);
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
	a->closing = 1 + (a->seal != NULL) + (a->old != NULL);
	uv_timer_stop(&a->timer);
	uv_close((uv_handle_t *)&a->timer, timer_closed);
	if (a->seal)
		cs_autoseal_close(a->seal, seal_closed, a);
	if (a->old)
		cs_autoseal_close(a->old, seal_closed, a);
}
