/*
 * PKI tidy: tidy, tidy-status, tidy-cancel, config/auto-tidy, and the engine's periodic
 * upkeep (the backend `periodic` hook, on the active node).
 *
 * A tidy run is a record in storage (tidy/state): its parameters, where it stands (the
 * last serial looked at in certs/, then in revoked/) and its counts. POST tidy starts one
 * and does its first batch in the same request; the periodic hook carries on, one bounded
 * batch (TIDY_BATCH entries) per tick, so that a store of any size never holds the loop
 * for long, and a leader change simply lets the next leader continue from the record.
 * tidy-cancel marks the run cancelled; the next batch does not start.
 *
 * The periodic hook also starts auto-tidy runs (config/auto-tidy: enabled and its
 * interval passed since the last start) and, with config/crl auto_rebuild, rebuilds CRLs
 * that come within the grace period of their nextUpdate, and delta CRLs every
 * delta_rebuild_interval.
 *
 * What goes: a certificate (certs/<serial>) whose NotAfter is more than safety_buffer in
 * the past (tidy_cert_store); a revocation entry (revoked/<serial>) of such a certificate
 * (tidy_revoked_certs), after which the issuers' CRLs are rebuilt without it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engines/pki_internal.h"
#include "lib/err.h"
#include "lib/util.h"

#define TIDY_BATCH 500

static int64_t now_s(void)
{
	return cs_now_ns() / 1000000000;
}

static void fmt_time(int64_t t, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void jset_num(cJSON *o, const char *k, double v)
{
	cJSON_DeleteItemFromObjectCaseSensitive(o, k);
	cJSON_AddNumberToObject(o, k, v);
}

static void jset_str(cJSON *o, const char *k, const char *v)
{
	cJSON_DeleteItemFromObjectCaseSensitive(o, k);
	cJSON_AddStringToObject(o, k, v);
}

static void jset_bool(cJSON *o, const char *k, bool v)
{
	cJSON_DeleteItemFromObjectCaseSensitive(o, k);
	cJSON_AddBoolToObject(o, k, v);
}

static cJSON *state_load(struct cs_request *req)
{
	cJSON *s = NULL;
	if (cs_view_get_json(req, "tidy/state", &s) || !cJSON_IsObject(s)) {
		cJSON_Delete(s);
		s = cJSON_CreateObject();
		cJSON_AddStringToObject(s, "state", "Inactive");
	}
	return s;
}

/* Entries of `dir` after `after` (sorted listing), at most `max`. */
static void next_batch(struct cs_request *req, const char *dir, const char *after, size_t max,
		       struct cs_strv *out)
{
	struct cs_strv all = {0};
	cs_view_list(req, dir, &all);
	for (size_t i = 0; i < all.n && out->n < max; i++)
		if (strcmp(all.v[i], after) > 0)
			cs_strv_push(out, all.v[i], strlen(all.v[i]));
	cs_strv_free(&all);
}

/* One batch of the run in `st`; true when the run is over. */
static bool tidy_batch(struct cs_request *req, cJSON *st)
{
	int64_t now = now_s(), buffer = cs_pki_jint(st, "safety_buffer", 72 * 3600);
	const char *phase = cs_pki_jstr(st, "phase", "certs");
	struct cs_strv b = {0};
	bool certs = strcmp(phase, "certs") == 0;
	bool want = certs ? cs_pki_jbool(st, "tidy_cert_store", false)
			  : cs_pki_jbool(st, "tidy_revoked_certs", false);
	if (want)
		next_batch(req, certs ? "certs/" : "revoked/", cs_pki_jstr(st, "cursor", ""),
			   TIDY_BATCH, &b);
	int64_t deleted = 0;
	for (size_t i = 0; i < b.n; i++) {
		char key[128];
		snprintf(key, sizeof key, "%s%s", certs ? "certs/" : "revoked/", b.v[i]);
		cJSON *e = NULL;
		if (cs_view_get_json(req, key, &e) == 0) {
			int64_t na = cs_pki_jint(e, "not_after", 0);
			if (!na) { /* revocation entries keep the certificate */
				const char *b64 = cs_pki_jstr(e, "der", "");
				size_t n;
				uint8_t *der = cs_b64_decode(b64, strlen(b64), &n);
				X509 *x = der ? cs_pki_cert_from_der(der, n) : NULL;
				na = x ? cs_pki_cert_not_after(x) : 0;
				X509_free(x);
				free(der);
			}
			if (na && na + buffer < now && cs_view_delete(req, key) == 0)
				deleted++;
		}
		cJSON_Delete(e);
	}
	const char *cnt = certs ? "cert_store_deleted_count" : "revoked_cert_deleted_count";
	jset_num(st, cnt, (double)(cs_pki_jint(st, cnt, 0) + deleted));
	if (!certs && deleted)
		jset_bool(st, "crl_dirty", true);
	bool phase_done = b.n < TIDY_BATCH;
	jset_str(st, "cursor", b.n ? b.v[b.n - 1] : "");
	cs_strv_free(&b);
	if (!phase_done)
		return false;
	jset_str(st, "cursor", "");
	if (certs) {
		jset_str(st, "phase", "revoked");
		return false;
	}
	return true;
}

/* Advance a running tidy by one batch and store its record. */
static int tidy_step(struct cs_request *req, cJSON *st)
{
	if (strcmp(cs_pki_jstr(st, "state", ""), "Running") != 0)
		return 0;
	/* two batches at most per step: a small store finishes both phases at once */
	bool done = tidy_batch(req, st) || tidy_batch(req, st);
	if (done) {
		int rc = 0;
		if (cs_pki_jbool(st, "crl_dirty", false))
			rc = cs_pki_crl_rebuild_all(req, false);
		if (rc) {
			jset_str(st, "state", "Error");
			jset_str(st, "error", req->errmsg ? req->errmsg : cs_strerror(rc));
			free(req->errmsg);
			req->errmsg = NULL;
		} else {
			jset_str(st, "state", "Finished");
		}
		char t[40];
		fmt_time(now_s(), t, sizeof t);
		jset_str(st, "time_finished", t);
	}
	return cs_view_put_json(req, "tidy/state", st);
}

/* Start a run with the parameters of `p` (request data or config/auto-tidy). */
static int tidy_start(struct cs_request *req, const cJSON *p, bool from_request)
{
	cJSON *st = cJSON_CreateObject();
	cJSON_AddStringToObject(st, "state", "Running");
	bool cs = from_request ? cs_req_bool(req, "tidy_cert_store", false)
			       : cs_pki_jbool(p, "tidy_cert_store", false);
	bool rv = from_request ? cs_req_bool(req, "tidy_revoked_certs", false)
			       : cs_pki_jbool(p, "tidy_revoked_certs", false);
	int64_t buf = from_request ? cs_req_int(req, "safety_buffer", 72 * 3600)
				   : cs_pki_jint(p, "safety_buffer", 72 * 3600);
	cJSON_AddBoolToObject(st, "tidy_cert_store", cs);
	cJSON_AddBoolToObject(st, "tidy_revoked_certs", rv);
	cJSON_AddNumberToObject(st, "safety_buffer", (double)buf);
	cJSON_AddNumberToObject(st, "pause_duration",
				(double)(from_request ? cs_req_int(req, "pause_duration", 0)
						      : cs_pki_jint(p, "pause_duration", 0)));
	cJSON_AddStringToObject(st, "phase", "certs");
	cJSON_AddStringToObject(st, "cursor", "");
	cJSON_AddNumberToObject(st, "cert_store_deleted_count", 0);
	cJSON_AddNumberToObject(st, "revoked_cert_deleted_count", 0);
	char t[40];
	fmt_time(now_s(), t, sizeof t);
	cJSON_AddStringToObject(st, "time_started", t);
	cJSON_AddNumberToObject(st, "started_unix", (double)now_s());
	cJSON_AddStringToObject(st, "time_finished", "");
	int rc = tidy_step(req, st);
	cJSON_Delete(st);
	return rc;
}

int pki_tidy(struct cs_request *req)
{
	if (!cs_req_bool(req, "tidy_cert_store", false) &&
	    !cs_req_bool(req, "tidy_revoked_certs", false))
		return cs_req_error(req, CS_EINVAL,
				    "at least one of the tidy operations must be "
				    "enabled");
	if (cs_req_int(req, "safety_buffer", 72 * 3600) < 1)
		return cs_req_error(req, CS_EINVAL, "safety_buffer must be greater than zero");
	cJSON *st = state_load(req);
	bool running = strcmp(cs_pki_jstr(st, "state", ""), "Running") == 0;
	cJSON_Delete(st);
	if (running)
		return cs_req_error(req, CS_EINVAL, "Tidy operation already in progress.");
	int rc = tidy_start(req, NULL, true);
	if (rc)
		return rc;
	cs_req_warn(req, "Tidy operation successfully started. Any information from the "
			 "operation will be printed to Vault's server logs.");
	req->status = 202;
	return 0;
}

int pki_tidy_status(struct cs_request *req)
{
	cJSON *st = state_load(req);
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "state", cs_pki_jstr(st, "state", "Inactive"));
	cJSON_AddBoolToObject(d, "tidy_cert_store", cs_pki_jbool(st, "tidy_cert_store", false));
	cJSON_AddBoolToObject(d, "tidy_revoked_certs",
			      cs_pki_jbool(st, "tidy_revoked_certs", false));
	cJSON_AddNumberToObject(d, "safety_buffer", (double)cs_pki_jint(st, "safety_buffer", 0));
	cJSON_AddNumberToObject(d, "pause_duration", (double)cs_pki_jint(st, "pause_duration", 0));
	const char *ts = cs_pki_jstr(st, "time_started", "");
	const char *tf = cs_pki_jstr(st, "time_finished", "");
	if (*ts)
		cJSON_AddStringToObject(d, "time_started", ts);
	else
		cJSON_AddNullToObject(d, "time_started");
	if (*tf)
		cJSON_AddStringToObject(d, "time_finished", tf);
	else
		cJSON_AddNullToObject(d, "time_finished");
	const char *e = cs_pki_jstr(st, "error", "");
	if (*e)
		cJSON_AddStringToObject(d, "error", e);
	else
		cJSON_AddNullToObject(d, "error");
	cJSON_AddNumberToObject(d, "cert_store_deleted_count",
				(double)cs_pki_jint(st, "cert_store_deleted_count", 0));
	cJSON_AddNumberToObject(d, "revoked_cert_deleted_count",
				(double)cs_pki_jint(st, "revoked_cert_deleted_count", 0));
	struct cs_strv v = {0};
	cs_view_list(req, "certs/", &v);
	cJSON_AddNumberToObject(d, "current_cert_store_count", (double)v.n);
	cs_strv_free(&v);
	cs_view_list(req, "revoked/", &v);
	cJSON_AddNumberToObject(d, "current_revoked_cert_count", (double)v.n);
	cs_strv_free(&v);
	cJSON_AddNumberToObject(d, "missing_issuer_cert_count", 0);
	cJSON_Delete(st);
	cs_req_set_data(req, d);
	return 0;
}

int pki_tidy_cancel(struct cs_request *req)
{
	cJSON *st = state_load(req);
	int rc = 0;
	if (strcmp(cs_pki_jstr(st, "state", ""), "Running") != 0) {
		cJSON_Delete(st);
		return cs_req_error(req, CS_EINVAL,
				    "Tidy operation cannot be cancelled as none is "
				    "currently running.");
	}
	jset_str(st, "state", "Cancelled");
	char t[40];
	fmt_time(now_s(), t, sizeof t);
	jset_str(st, "time_finished", t);
	rc = cs_view_put_json(req, "tidy/state", st);
	cJSON_Delete(st);
	return rc ? rc : pki_tidy_status(req);
}

/* ---- config/auto-tidy */

static cJSON *auto_cfg(struct cs_request *req)
{
	cJSON *c = cs_pki_config(req, "auto-tidy");
	cJSON *d = cJSON_CreateObject();
	cJSON_AddBoolToObject(d, "enabled", cs_pki_jbool(c, "enabled", false));
	cJSON_AddNumberToObject(d, "interval_duration",
				(double)cs_pki_jint(c, "interval_duration", 12 * 3600));
	cJSON_AddBoolToObject(d, "tidy_cert_store", cs_pki_jbool(c, "tidy_cert_store", false));
	cJSON_AddBoolToObject(d, "tidy_revoked_certs",
			      cs_pki_jbool(c, "tidy_revoked_certs", false));
	cJSON_AddNumberToObject(d, "safety_buffer",
				(double)cs_pki_jint(c, "safety_buffer", 72 * 3600));
	cJSON_AddNumberToObject(d, "pause_duration", (double)cs_pki_jint(c, "pause_duration", 0));
	cJSON_Delete(c);
	return d;
}

int pki_auto_tidy_read(struct cs_request *req)
{
	cs_req_set_data(req, auto_cfg(req));
	return 0;
}

int pki_auto_tidy_write(struct cs_request *req)
{
	cJSON *c = auto_cfg(req);
	static const char *const bools[] = {"enabled", "tidy_cert_store", "tidy_revoked_certs"};
	static const char *const durs[] = {"interval_duration", "safety_buffer", "pause_duration"};
	for (size_t i = 0; i < CS_ARRAY_LEN(bools); i++)
		if (cs_req_has(req, bools[i]))
			jset_bool(c, bools[i], cs_req_bool(req, bools[i], false));
	for (size_t i = 0; i < CS_ARRAY_LEN(durs); i++)
		if (cs_req_has(req, durs[i]))
			jset_num(c, durs[i], (double)cs_req_int(req, durs[i], 0));
	if (cs_pki_jbool(c, "enabled", false) && !cs_pki_jbool(c, "tidy_cert_store", false) &&
	    !cs_pki_jbool(c, "tidy_revoked_certs", false)) {
		cJSON_Delete(c);
		return cs_req_error(req, CS_EINVAL,
				    "Auto-tidy enabled but no tidy operations were "
				    "requested. Enable at least one tidy operation to be "
				    "run.");
	}
	if (cs_pki_jint(c, "interval_duration", 0) < 1 || cs_pki_jint(c, "safety_buffer", 0) < 1) {
		cJSON_Delete(c);
		return cs_req_error(req, CS_EINVAL,
				    "interval_duration and safety_buffer must be "
				    "greater than zero");
	}
	int rc = cs_view_put_json(req, "config/auto-tidy", c);
	if (rc) {
		cJSON_Delete(c);
		return rc;
	}
	cs_req_set_data(req, c);
	return 0;
}

/* ---- periodic upkeep (the backend hook) */

/* The issuer's stored CRL is due: within the grace period of its nextUpdate. */
static bool crl_due(struct cs_request *req, const char *id, const char *suffix, int64_t every)
{
	char key[128];
	snprintf(key, sizeof key, "crls/%s%s", id, suffix);
	cJSON *o = NULL;
	bool due = cs_view_get_json(req, key, &o) != 0 ||
		   cs_pki_jint(o, "this_update", 0) + every <= now_s();
	cJSON_Delete(o);
	return due;
}

/* Which CRLs of an issuer the periodic upkeep rebuilds (cs_pki_crl_mode_fn). */
struct crl_due_cfg {
	int64_t every_complete, every_delta;
	bool delta;
};

static int crl_due_mode(struct cs_request *req, const char *id, void *arg)
{
	const struct crl_due_cfg *c = arg;
	if (crl_due(req, id, "", c->every_complete))
		return CS_PKI_CRL_COMPLETE;
	if (c->delta && crl_due(req, id, "-delta", c->every_delta))
		return CS_PKI_CRL_DELTA;
	return CS_PKI_CRL_NONE;
}

/* Revocations above which a due CRL is rebuilt off the loop (cs_pki_crl_rebuild_async);
 * below, inline in this run's transaction. */
#define PKI_CRL_ASYNC_MIN 1024

int pki_periodic(struct cs_request *req)
{
	cJSON *st = state_load(req);
	int rc = 0;
	bool wrote = false; /* an asynchronous rebuild gives the transaction up */
	if (strcmp(cs_pki_jstr(st, "state", ""), "Running") == 0) {
		rc = tidy_step(req, st);
		wrote = true;
	} else {
		cJSON *a = auto_cfg(req);
		int64_t last = cs_pki_jint(st, "started_unix", 0);
		if (cs_pki_jbool(a, "enabled", false) &&
		    last + cs_pki_jint(a, "interval_duration", 12 * 3600) <= now_s()) {
			rc = tidy_start(req, a, false);
			wrote = true;
		}
		cJSON_Delete(a);
	}
	cJSON_Delete(st);
	if (rc)
		return rc;
	/* CRLs with auto_rebuild: complete ones before their grace period, deltas on time */
	cJSON *c = cs_pki_config(req, "crl");
	bool auto_rebuild = cs_pki_jbool(c, "auto_rebuild", false);
	bool delta = cs_pki_jbool(c, "enable_delta", false);
	int64_t expiry = cs_pki_jint(c, "expiry", 72 * 3600);
	int64_t grace = cs_pki_jint(c, "auto_rebuild_grace_period", 12 * 3600);
	int64_t every_delta = cs_pki_jint(c, "delta_rebuild_interval", 15 * 60);
	bool disabled = cs_pki_jbool(c, "disable", false);
	cJSON_Delete(c);
	if (!auto_rebuild || disabled)
		return 0;
	struct crl_due_cfg due = {.every_complete = expiry > grace ? expiry - grace : 0,
				  .every_delta = every_delta,
				  .delta = delta};
	struct cs_strv ids = {0};
	cs_view_list(req, "config/issuer/", &ids);
	bool any = false;
	for (size_t i = 0; !any && i < ids.n; i++)
		any = crl_due_mode(req, ids.v[i], &due) != CS_PKI_CRL_NONE;
	if (any && !wrote) {
		struct cs_strv revoked = {0};
		rc = cs_view_list(req, "revoked/", &revoked);
		size_t n = revoked.n;
		cs_strv_free(&revoked);
		if (!rc && n >= PKI_CRL_ASYNC_MIN) {
			cs_strv_free(&ids);
			return cs_pki_crl_rebuild_async(req, crl_due_mode, &due);
		}
	}
	for (size_t i = 0; any && !rc && i < ids.n; i++) {
		int m = crl_due_mode(req, ids.v[i], &due);
		if (m != CS_PKI_CRL_NONE)
			rc = cs_pki_crl_rebuild(req, ids.v[i], m == CS_PKI_CRL_DELTA);
	}
	cs_strv_free(&ids);
	return rc;
}
