/*
 * ACME challenge validation on the active node (engines/acme_internal.h).
 *
 * Happy path: a challenge POST moves the challenge to "processing", writes an index entry
 * acme/processing/<account>.<authz>.<type> and calls acme_chal_schedule, which copies what
 * the check needs (identifier, token, key authorization, resolver, ports) into a job and
 * arms a zero timer, so the check starts on a later loop turn. The job runs
 * cs_acme_check_start (engines/acme_validate.h: http-01 / dns-01 / tls-alpn-01, all
 * asynchronous on the loop); its callback starts an internal request (cs_core_internal)
 * whose handler records the result in the authorization through the transaction layer,
 * so every node sees it: valid → challenge and authorization valid; failed → the error is
 * kept and the check is retried after n × 5 s, and after ACME_MAX_RETRIES failures the
 * challenge and its authorization are invalid (Vault's policy, OpenBao
 * acme_challenge_engine.go). The index entry goes when the challenge is decided.
 *
 * Failure modes: the challenge POST's commit fails → the recorder finds the challenge not
 * processing and records nothing. Leadership lost or sealed → the engine's reset hook
 * cancels every job (no callback after cs_acme_check_cancel); the new active node's
 * periodic run finds the index entries and validates them again. The internal request is
 * refused (not active) → the job is dropped, the periodic run picks it up. The same
 * challenge is never validated twice at once on one node (jobs are looked up first).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engines/acme_internal.h"
#include "engines/acme_validate.h"
#include "engines/pki.h"
#include "engines/pki_internal.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"

struct job {
	struct job *next;
	struct cs_core *core;
	uv_timer_t timer;
	bool closing;
	struct cs_acme_checker *checker;
	char mount[256];
	char account[40], authz[40], type[16];
	char identifier[256], token[64], keyauth[128], resolver[128];
	uint16_t http_port, tls_port;
};

struct acme_state {
	struct job *jobs;
};

static void state_release(void *p)
{
	(void)p; /* jobs are cancelled by the reset hook before the core goes */
}

static const struct cs_core_state_type state_type = {
    .name = "acme validation",
    .size = sizeof(struct acme_state),
    .release = state_release,
};

struct acme_state *acme_state(struct cs_core *core)
{
	return cs_core_state(core, &state_type);
}

static void job_closed(uv_handle_t *h)
{
	free(h->data);
}

/* Unlink and free a job (its timer closes first). */
static void job_drop(struct job *j)
{
	struct acme_state *s = acme_state(j->core);
	for (struct job **pp = &s->jobs; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	if (j->checker)
		cs_acme_check_cancel(j->checker);
	j->checker = NULL;
	j->closing = true;
	j->timer.data = j;
	uv_close((uv_handle_t *)&j->timer, job_closed);
}

void acme_chal_reset(struct cs_core *core)
{
	struct acme_state *s = acme_state(core);
	while (s->jobs)
		job_drop(s->jobs);
}

static struct job *job_find(struct cs_core *core, const char *mount, const char *account,
			    const char *authz)
{
	for (struct job *j = acme_state(core)->jobs; j; j = j->next)
		if (!strcmp(j->mount, mount) && !strcmp(j->account, account) &&
		    !strcmp(j->authz, authz))
			return j;
	return NULL;
}

/* ---------------------------------------------------------------- recording */

static int record(struct cs_request *req);
static const struct cs_path record_row = {
    .pattern = "acme-validation-result",
    .ops = {[CS_OP_UPDATE] = record},
    .synopsis = "internal: record an ACME challenge validation",
};

static void index_key(char *out, size_t n, const char *account, const char *authz, const char *type)
{
	snprintf(out, n, "acme/processing/%s.%s.%s", account, authz, type);
}

/* The internal request's handler: in a transaction on the mount, on the active node. */
static int record(struct cs_request *req)
{
	const char *account = cs_req_str(req, "account", "");
	const char *zid = cs_req_str(req, "authz", "");
	const char *type = cs_req_str(req, "type", "");
	bool ok = cs_req_bool(req, "ok", false);
	char key[300], ikey[300];
	acme_key(key, sizeof key, account, "authz", zid);
	index_key(ikey, sizeof ikey, account, zid, type);
	cJSON *z = NULL;
	int rc = cs_view_get_json(req, key, &z);
	if (rc == CS_ENOTFOUND)
		return cs_view_delete(req, ikey);
	if (rc)
		return rc;
	cJSON *c = NULL, *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(z, "challenges"))
	{
		if (strcmp(cs_pki_jstr(it, "type", ""), type) == 0)
			c = it;
	}
	int64_t now = acme_now();
	if (!c || strcmp(cs_pki_jstr(c, "status", ""), "processing") != 0 ||
	    strcmp(cs_acme_authz_status(cs_pki_jstr(z, "status", ""), cs_pki_jint(z, "expires", 0),
					now),
		   "pending") != 0) {
		cJSON_Delete(z); /* decided meanwhile, or never started: nothing to record */
		return cs_view_delete(req, ikey);
	}
	int64_t retry = 0;
	cJSON_DeleteItemFromObject(c, "error");
	if (ok) {
		cJSON_ReplaceItemInObject(c, "status", cJSON_CreateString("valid"));
		cJSON_DeleteItemFromObject(c, "validated");
		cJSON_AddNumberToObject(c, "validated", (double)now);
		cJSON_ReplaceItemInObject(z, "status", cJSON_CreateString("valid"));
	} else {
		cJSON *e = cJSON_CreateObject();
		char t[120];
		const char *et = cs_req_str(req, "error_type", "");
		snprintf(t, sizeof t, "%s",
			 *et ? et : "urn:ietf:params:acme:error:incorrectResponse");
		cJSON_AddStringToObject(e, "type", t);
		cJSON_AddStringToObject(e, "detail",
					cs_req_str(req, "detail", "validation failed"));
		cJSON_AddItemToObject(c, "error", e);
		int64_t n = cs_pki_jint(z, "retry_count", 0) + 1;
		cJSON_DeleteItemFromObject(z, "retry_count");
		cJSON_AddNumberToObject(z, "retry_count", (double)n);
		if (n > ACME_MAX_RETRIES) {
			cJSON_ReplaceItemInObject(c, "status", cJSON_CreateString("invalid"));
			cJSON_ReplaceItemInObject(z, "status", cJSON_CreateString("invalid"));
		} else {
			retry = n * 5;
		}
	}
	rc = cs_view_put_json(req, key, z);
	if (!rc && !retry)
		rc = cs_view_delete(req, ikey);
	cJSON_Delete(z);
	if (!rc) {
		cJSON *d = cJSON_CreateObject();
		cJSON_AddNumberToObject(d, "retry", (double)retry);
		cs_req_set_data(req, d);
	}
	return rc;
}

static void timer_cb(uv_timer_t *t);

static void record_done(struct cs_request *req, int status, void *ctx)
{
	struct job *j = ctx;
	int64_t retry = status ? 0
			       : (int64_t)cJSON_GetNumberValue(
				     cJSON_GetObjectItemCaseSensitive(req->resp_data, "retry"));
	if (j->closing)
		return;
	if (retry > 0 && cs_core_is_active(j->core)) {
		uv_timer_start(&j->timer, timer_cb, (uint64_t)retry * 1000, 0);
		return;
	}
	job_drop(j);
}

static void check_cb(void *arg, int ok, const char *error_type, const char *detail)
{
	struct job *j = arg;
	j->checker = NULL;
	if (j->closing)
		return;
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "account", j->account);
	cJSON_AddStringToObject(d, "authz", j->authz);
	cJSON_AddStringToObject(d, "type", j->type);
	cJSON_AddBoolToObject(d, "ok", ok == 1);
	cJSON_AddStringToObject(d, "error_type", error_type ? error_type : "");
	cJSON_AddStringToObject(d, "detail", detail ? detail : "");
	struct cs_internal in = {
	    .op = CS_OP_UPDATE,
	    .path = j->mount,
	    .data = d,
	    .route = &record_row,
	    .done = record_done,
	    .ctx = j,
	};
	if (cs_core_internal(j->core, &in) != 0)
		job_drop(j); /* not active: the next active node's periodic run retries */
}

static void timer_cb(uv_timer_t *t)
{
	struct job *j = t->data;
	if (j->closing || !cs_core_is_active(j->core)) {
		job_drop(j);
		return;
	}
	struct cs_acme_check c = {
	    .type = j->type,
	    .identifier = j->identifier,
	    .token = j->token,
	    .key_authorization = j->keyauth,
	    .dns_resolver = j->resolver[0] ? j->resolver : NULL,
	    .http_port = j->http_port,
	    .tls_port = j->tls_port,
	};
	if (cs_acme_check_start(cs_core_loop(j->core), &c, check_cb, j, &j->checker) != 0) {
		j->checker = NULL;
		check_cb(j, 0, "urn:ietf:params:acme:error:serverInternal",
			 "could not start the validation");
	}
}

/* ---------------------------------------------------------------- scheduling */

/* A job for the challenge `type` of authz `zid` of `account`, read in req's transaction;
 * armed after `delay_ms`. Nothing when one runs already. */
static void schedule(struct cs_request *req, const char *account, const char *zid, const char *type,
		     uint64_t delay_ms)
{
	const char *mount = cs_req_mount_path(req);
	if (!mount || job_find(req->core, mount, account, zid))
		return;
	char key[300];
	acme_key(key, sizeof key, account, "authz", zid);
	cJSON *z = NULL, *acc = NULL;
	if (cs_view_get_json(req, key, &z) != 0)
		return;
	char akey[200];
	snprintf(akey, sizeof akey, "acme/accounts/%s", account);
	if (cs_view_get_json(req, akey, &acc) != 0) {
		cJSON_Delete(z);
		return;
	}
	const cJSON *c = NULL, *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(z, "challenges"))
	{
		if (strcmp(cs_pki_jstr(it, "type", ""), type) == 0)
			c = it;
	}
	struct job *j = calloc(1, sizeof *j);
	if (!j)
		abort();
	j->core = req->core;
	snprintf(j->mount, sizeof j->mount, "%s", mount);
	snprintf(j->account, sizeof j->account, "%s", account);
	snprintf(j->authz, sizeof j->authz, "%s", zid);
	snprintf(j->type, sizeof j->type, "%s", type);
	const char *v = cs_pki_jstr(cJSON_GetObjectItemCaseSensitive(z, "identifier"), "value", "");
	if (strncmp(v, "*.", 2) == 0) /* dns-01 of a wildcard: the base name's TXT record */
		v += 2;
	snprintf(j->identifier, sizeof j->identifier, "%s", v);
	snprintf(j->token, sizeof j->token, "%s", cs_pki_jstr(c, "token", ""));
	snprintf(j->keyauth, sizeof j->keyauth, "%s.%s", j->token,
		 cs_pki_jstr(acc, "thumbprint", ""));
	cJSON *cfg = NULL;
	if (cs_view_get_json(req, "config/acme", &cfg) == 0)
		snprintf(j->resolver, sizeof j->resolver, "%s",
			 cs_pki_jstr(cfg, "dns_resolver", ""));
	cJSON_Delete(cfg);
	cs_core_acme_test_ports(req->core, &j->http_port, &j->tls_port);
	cJSON_Delete(z);
	cJSON_Delete(acc);
	if (!c) {
		free(j);
		return;
	}
	uv_timer_init(cs_core_loop(req->core), &j->timer);
	j->timer.data = j;
	struct acme_state *s = acme_state(req->core);
	j->next = s->jobs;
	s->jobs = j;
	uv_timer_start(&j->timer, timer_cb, delay_ms, 0);
}

void acme_chal_schedule(struct cs_request *req, const char *account, const char *authz_id,
			const char *type)
{
	char ikey[300];
	index_key(ikey, sizeof ikey, account, authz_id, type);
	cs_view_put(req, ikey, "{}", 2);
	schedule(req, account, authz_id, type, 0);
}

int acme_chal_periodic(struct cs_request *req)
{
	struct cs_strv keys = {0};
	int rc = cs_view_list(req, "acme/processing/", &keys);
	/* Bounded: a handful per run; the rest wait for the next tick. */
	for (size_t i = 0; !rc && i < keys.n && i < 64; i++) {
		char account[40], zid[40], type[16];
		if (sscanf(keys.v[i], "%39[^.].%39[^.].%15s", account, zid, type) == 3)
			schedule(req, account, zid, type, 0);
	}
	cs_strv_free(&keys);
	return rc;
}

/* The PKI mount's periodic function: the PKI's own upkeep, then pending validations. */
int cs_pki_acme_periodic(struct cs_request *req)
{
	int rc = pki_periodic(req);
	if (!rc)
		rc = acme_chal_periodic(req);
	return rc;
}
