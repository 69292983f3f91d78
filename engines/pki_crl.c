/*
 * PKI revocation: revoke, revoke-with-key, the complete and delta CRLs of each issuer
 * (config/crl, crl/rotate[-delta], crl[/pem|/delta], issuer/:ref/crl...), the OCSP
 * responder, and the certificate store's reads (cert/:serial, certs, certs/revoked).
 *
 * A revocation writes revoked/<serial> and rebuilds the issuer's CRL in the same
 * transaction (unless config/crl disables CRLs or asks for auto_rebuild, when the periodic
 * upkeep or crl/rotate builds it), so the CRL a client fetches after the revoke answered
 * already lists the serial. CRL numbers come from a per-issuer counter kept in the
 * issuer's record (cs_pki_crl_next_*), so they only increase, across leaders too.
 */
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engines/pki_internal.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/util.h"

static void fmt_time(int64_t t, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int64_t now_s(void)
{
	return cs_now_ns() / 1000000000;
}

/* config/crl with Vault's defaults, durations in seconds. */
struct crl_cfg {
	int64_t expiry;
	bool disable, ocsp_disable, auto_rebuild, enable_delta;
	int64_t delta_rebuild_interval, ocsp_expiry, auto_rebuild_grace_period;
};

static int64_t dur_field(const cJSON *c, const char *k, int64_t def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, k);
	int64_t s;
	if (cJSON_IsNumber(v))
		return (int64_t)v->valuedouble;
	if (cJSON_IsString(v) && cs_parse_duration(v->valuestring, &s) == 0)
		return s;
	return def;
}

static struct crl_cfg crl_cfg(struct cs_request *req)
{
	cJSON *c = cs_pki_config(req, "crl");
	struct crl_cfg r = {
	    .expiry = dur_field(c, "expiry", 72 * 3600),
	    .disable = cs_pki_jbool(c, "disable", false),
	    .ocsp_disable = cs_pki_jbool(c, "ocsp_disable", false),
	    .auto_rebuild = cs_pki_jbool(c, "auto_rebuild", false),
	    .enable_delta = cs_pki_jbool(c, "enable_delta", false),
	    .delta_rebuild_interval = dur_field(c, "delta_rebuild_interval", 15 * 60),
	    .ocsp_expiry = dur_field(c, "ocsp_expiry", 12 * 3600),
	    .auto_rebuild_grace_period = dur_field(c, "auto_rebuild_grace_period", 12 * 3600),
	};
	cJSON_Delete(c);
	return r;
}

/* ---- CRL building */

static int build_one(struct cs_request *req, cJSON *iss, bool delta, const struct crl_cfg *cfg)
{
	const char *id = cs_pki_jstr(iss, "id", "");
	struct cs_pki_crl_counter ctr = {.next = cs_pki_jint(iss, "crl_number", 1),
					 .last_complete = cs_pki_jint(iss, "last_complete", 0)};
	int64_t base = 0, number;
	if (delta) {
		number = cs_pki_crl_next_delta(&ctr, &base);
		if (number < 0)
			return 0; /* no complete CRL yet: nothing to be a delta of */
	} else {
		number = cs_pki_crl_next_complete(&ctr);
	}
	int64_t since = delta ? cs_pki_jint(iss, "last_complete_time", 0) : 0;
	struct cs_strv serials = {0};
	int rc = cs_view_list(req, "revoked/", &serials);
	struct cs_pki_revoked *rev = calloc(serials.n + 1, sizeof *rev);
	if (!rev)
		abort();
	size_t n = 0;
	for (size_t i = 0; !rc && i < serials.n; i++) {
		char key[128];
		snprintf(key, sizeof key, "revoked/%s", serials.v[i]);
		cJSON *e = NULL;
		if (cs_view_get_json(req, key, &e) == 0 &&
		    strcmp(cs_pki_jstr(e, "issuer_id", ""), id) == 0 &&
		    cs_pki_jint(e, "revocation_time", 0) >= since) {
			int len =
			    cs_pki_serial_parse(serials.v[i], rev[n].serial, sizeof rev[n].serial);
			if (len > 0) {
				rev[n].serial_len = (size_t)len;
				rev[n].when = cs_pki_jint(e, "revocation_time", 0);
				n++;
			}
		}
		cJSON_Delete(e);
	}
	cs_strv_free(&serials);
	X509 *x = cs_pki_issuer_cert(iss);
	EVP_PKEY *key = NULL;
	if (!rc && x)
		rc = cs_pki_issuer_signer(req, iss, &key);
	int64_t now = now_s();
	X509_CRL *crl = NULL;
	if (!rc && x && key) {
		crl = cs_pki_crl_build(x, key, rev, n, number, base, now,
				       delta ? cfg->delta_rebuild_interval + cfg->expiry
					     : cfg->expiry);
		if (!crl)
			rc = cs_req_error(req, CS_EINTERNAL, "unable to build the CRL");
	}
	free(rev);
	EVP_PKEY_free(key);
	X509_free(x);
	if (rc || !crl) {
		X509_CRL_free(crl);
		return rc;
	}
	size_t dl;
	uint8_t *der = cs_pki_crl_der(crl, &dl);
	X509_CRL_free(crl);
	char *b64 = cs_b64_encode(der, dl);
	free(der);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "der", b64);
	cJSON_AddNumberToObject(o, "number", (double)number);
	cJSON_AddNumberToObject(o, "this_update", (double)now);
	free(b64);
	char key2[128];
	snprintf(key2, sizeof key2, delta ? "crls/%s-delta" : "crls/%s", id);
	rc = cs_view_put_json(req, key2, o);
	cJSON_Delete(o);
	/* the counter advances in the issuer's record, in the same transaction */
	cJSON_DeleteItemFromObjectCaseSensitive(iss, "crl_number");
	cJSON_AddNumberToObject(iss, "crl_number", (double)ctr.next);
	cJSON_DeleteItemFromObjectCaseSensitive(iss, "last_complete");
	cJSON_AddNumberToObject(iss, "last_complete", (double)ctr.last_complete);
	if (!delta) {
		cJSON_DeleteItemFromObjectCaseSensitive(iss, "last_complete_time");
		cJSON_AddNumberToObject(iss, "last_complete_time", (double)now);
	}
	if (!rc)
		rc = cs_pki_issuer_save(req, iss);
	return rc;
}

int cs_pki_crl_rebuild(struct cs_request *req, const char *issuer_id, bool delta_only)
{
	struct crl_cfg cfg = crl_cfg(req);
	cJSON *iss = NULL;
	int rc = cs_pki_issuer_load(req, issuer_id, &iss);
	if (rc == CS_ENOTFOUND)
		return 0;
	if (!rc && !*cs_pki_jstr(iss, "key_id", ""))
		goto out; /* an issuer without its key cannot sign a CRL */
	if (!rc && !delta_only)
		rc = build_one(req, iss, false, &cfg);
	if (!rc && cfg.enable_delta)
		rc = build_one(req, iss, true, &cfg);
out:
	cJSON_Delete(iss);
	return rc;
}

int cs_pki_crl_rebuild_all(struct cs_request *req, bool delta_only)
{
	struct cs_strv ids = {0};
	int rc = cs_view_list(req, "config/issuer/", &ids);
	for (size_t i = 0; !rc && i < ids.n; i++)
		rc = cs_pki_crl_rebuild(req, ids.v[i], delta_only);
	cs_strv_free(&ids);
	return rc;
}

/* ---- revoke */

/* The issuer (among ours) of certificate x, or NULL. */
static char *find_issuer(struct cs_request *req, X509 *x)
{
	struct cs_strv ids = {0};
	cs_view_list(req, "config/issuer/", &ids);
	char *found = NULL;
	for (size_t i = 0; !found && i < ids.n; i++) {
		cJSON *iss = NULL;
		if (cs_pki_issuer_load(req, ids.v[i], &iss) == 0) {
			X509 *ix = cs_pki_issuer_cert(iss);
			if (ix && cs_pki_cert_issued_by(x, ix))
				found = strdup(ids.v[i]);
			X509_free(ix);
		}
		cJSON_Delete(iss);
	}
	cs_strv_free(&ids);
	return found;
}

static bool is_issuer_cert(struct cs_request *req, X509 *x)
{
	char *pem = cs_pki_cert_pem(x);
	struct cs_strv ids = {0};
	cs_view_list(req, "config/issuer/", &ids);
	bool hit = false;
	for (size_t i = 0; !hit && i < ids.n; i++) {
		cJSON *iss = NULL;
		if (cs_pki_issuer_load(req, ids.v[i], &iss) == 0)
			hit = strcmp(cs_pki_jstr(iss, "certificate", ""), pem) == 0;
		cJSON_Delete(iss);
	}
	cs_strv_free(&ids);
	free(pem);
	return hit;
}

static void answer_revoked(struct cs_request *req, int64_t when)
{
	char t[40];
	fmt_time(when, t, sizeof t);
	cJSON *d = cJSON_CreateObject();
	cJSON_AddNumberToObject(d, "revocation_time", (double)when);
	cJSON_AddStringToObject(d, "revocation_time_rfc3339", t);
	cJSON_AddStringToObject(d, "state", "revoked");
	cs_req_set_data(req, d);
}

/* Revoke certificate x (known to be ours, issued by issuer_id). */
static int revoke_cert(struct cs_request *req, X509 *x, const char *issuer_id)
{
	char skey[80], key[100];
	cs_pki_cert_serial(x, '-', skey, sizeof skey);
	snprintf(key, sizeof key, "revoked/%s", skey);
	cJSON *e = NULL;
	if (cs_view_get_json(req, key, &e) == 0) { /* already revoked: same answer */
		answer_revoked(req, cs_pki_jint(e, "revocation_time", 0));
		cJSON_Delete(e);
		return 0;
	}
	if (is_issuer_cert(req, x))
		return cs_req_error(req, CS_EINVAL,
				    "adding issuer (id: %s) to its own CRL is not allowed",
				    issuer_id);
	int64_t now = now_s();
	if (cs_pki_cert_not_after(x) < now) {
		cs_req_warn(req, "certificate with serial %s is expired; not revoking", skey);
		cJSON *d = cJSON_CreateObject();
		cJSON_AddNumberToObject(d, "revocation_time", 0);
		cs_req_set_data(req, d);
		return 0;
	}
	size_t n;
	uint8_t *der = cs_pki_cert_der(x, &n);
	char *b64 = cs_b64_encode(der, n);
	free(der);
	char t[40];
	fmt_time(now, t, sizeof t);
	e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "der", b64);
	cJSON_AddStringToObject(e, "issuer_id", issuer_id);
	cJSON_AddNumberToObject(e, "revocation_time", (double)now);
	cJSON_AddStringToObject(e, "revocation_time_utc", t);
	free(b64);
	int rc = cs_view_put_json(req, key, e);
	cJSON_Delete(e);
	if (rc)
		return rc;
	struct crl_cfg cfg = crl_cfg(req);
	if (!cfg.disable && !cfg.auto_rebuild)
		rc = cs_pki_crl_rebuild(req, issuer_id, false);
	else if (!cfg.disable && cfg.enable_delta)
		rc = cs_pki_crl_rebuild(req, issuer_id, true);
	if (!rc)
		answer_revoked(req, now);
	return rc;
}

/* The certificate a revoke request names (serial_number or certificate), with its
 * issuer. */
static int revoke_target(struct cs_request *req, X509 **out, char **issuer_id)
{
	*out = NULL;
	*issuer_id = NULL;
	const char *serial = cs_req_str(req, "serial_number", "");
	const char *pem = cs_req_str(req, "certificate", "");
	if (*serial && *pem)
		return cs_req_error(req, CS_EINVAL,
				    "must provide either the certificate or the serial to revoke; "
				    "not both");
	if (!*serial && !*pem)
		return cs_req_error(req, CS_EINVAL,
				    "must provide either the certificate or the serial to revoke");
	char skey[80];
	X509 *given = NULL;
	if (*pem) {
		given = cs_pki_cert_from_pem(pem);
		if (!given)
			return cs_req_error(req, CS_EINVAL,
					    "certificate could not be parsed as a PEM certificate");
		cs_pki_cert_serial(given, '-', skey, sizeof skey);
	} else if (!cs_pki_serial_key(serial, skey, sizeof skey)) {
		return cs_req_error(req, CS_EINVAL, "invalid serial number: %s", serial);
	}
	char key[100];
	snprintf(key, sizeof key, "certs/%s", skey);
	cJSON *e = NULL;
	int rc = cs_view_get_json(req, key, &e);
	if (rc == 0) {
		size_t n;
		const char *b64 = cs_pki_jstr(e, "der", "");
		uint8_t *der = cs_b64_decode(b64, strlen(b64), &n);
		*out = der ? cs_pki_cert_from_der(der, n) : NULL;
		free(der);
		*issuer_id = strdup(cs_pki_jstr(e, "issuer_id", ""));
		cJSON_Delete(e);
		if (given && *out && X509_cmp(given, *out) != 0) {
			X509_free(given);
			return cs_req_error(
			    req, CS_EINVAL,
			    "certificate with same serial but unequal value already "
			    "present in this cluster's storage; refusing to revoke");
		}
		X509_free(given);
		if (!*out)
			return CS_EINTERNAL;
		if (!**issuer_id) {
			free(*issuer_id);
			*issuer_id = find_issuer(req, *out);
		}
		return *issuer_id ? 0 : cs_req_error(req, CS_EINVAL, "unable to find the issuer");
	}
	cJSON_Delete(e);
	if (rc != CS_ENOTFOUND) {
		X509_free(given);
		return rc;
	}
	if (!given)
		return cs_req_error(req, CS_EINVAL, "certificate with serial %s not found", serial);
	/* Not stored (no_store): revocable when one of our issuers signed it. */
	*issuer_id = find_issuer(req, given);
	if (!*issuer_id) {
		X509_free(given);
		return cs_req_error(req, CS_EINVAL,
				    "unable to revoke certificate: no issuer in this mount signed "
				    "it");
	}
	*out = given;
	return 0;
}

int pki_revoke(struct cs_request *req)
{
	X509 *x;
	char *iid;
	int rc = revoke_target(req, &x, &iid);
	if (!rc)
		rc = revoke_cert(req, x, iid);
	X509_free(x);
	free(iid);
	return rc;
}

int pki_revoke_with_key(struct cs_request *req)
{
	const char *kpem = cs_req_str(req, "private_key", "");
	if (!*kpem)
		return cs_req_error(req, CS_EINVAL,
				    "must provide the private key of the "
				    "certificate");
	X509 *x;
	char *iid;
	int rc = revoke_target(req, &x, &iid);
	if (rc)
		return rc;
	struct cs_pki_bundle b;
	char err[200];
	if (cs_pki_bundle_parse(kpem, &b, err, sizeof err) || b.n_keys != 1) {
		if (!rc && b.n_keys == 0)
			rc = cs_req_error(req, CS_EINVAL, "failed to parse the private key");
	} else if (!cs_pki_cert_key_match(x, b.keys[0])) {
		rc = cs_req_error(req, CS_EINVAL,
				  "failed to validate private key match for the certificate");
	}
	if (b.n_keys)
		cs_pki_bundle_free(&b);
	if (!rc && !req->errmsg)
		rc = revoke_cert(req, x, iid);
	else if (!rc)
		rc = CS_EINVAL;
	X509_free(x);
	free(iid);
	return rc;
}

/* The "cert" lease kind's revoke (cs_req_lease in cs_pki_sign_cert): revoke the
 * certificate the lease was issued with; an expired one needs nothing more. */
int pki_lease_revoke(struct cs_request *req)
{
	const cJSON *internal = cs_req_get(req, "internal");
	const char *pem = cs_pki_jstr(internal, "certificate", "");
	X509 *x = cs_pki_cert_from_pem(pem);
	if (!x)
		return cs_req_error(req, CS_EINVAL, "lease has no certificate to revoke");
	char *iid = find_issuer(req, x);
	int rc = 0;
	if (iid)
		rc = revoke_cert(req, x, iid);
	/* its issuer is gone (root deleted): nothing can trust it any more */
	free(iid);
	X509_free(x);
	return rc;
}

/* ---- config/crl */

static cJSON *crl_cfg_json(struct cs_request *req)
{
	struct crl_cfg c = crl_cfg(req);
	cJSON *d = cJSON_CreateObject();
	char b[40];
	cs_format_duration(c.expiry, b, sizeof b);
	cJSON_AddStringToObject(d, "expiry", b);
	cJSON_AddBoolToObject(d, "disable", c.disable);
	cJSON_AddBoolToObject(d, "ocsp_disable", c.ocsp_disable);
	cJSON_AddBoolToObject(d, "auto_rebuild", c.auto_rebuild);
	cs_format_duration(c.auto_rebuild_grace_period, b, sizeof b);
	cJSON_AddStringToObject(d, "auto_rebuild_grace_period", b);
	cJSON_AddBoolToObject(d, "enable_delta", c.enable_delta);
	cs_format_duration(c.delta_rebuild_interval, b, sizeof b);
	cJSON_AddStringToObject(d, "delta_rebuild_interval", b);
	cs_format_duration(c.ocsp_expiry, b, sizeof b);
	cJSON_AddStringToObject(d, "ocsp_expiry", b);
	cJSON_AddBoolToObject(d, "cross_cluster_revocation", false);
	cJSON_AddBoolToObject(d, "unified_crl", false);
	cJSON_AddBoolToObject(d, "unified_crl_on_existing_paths", false);
	return d;
}

int pki_config_crl_read(struct cs_request *req)
{
	cs_req_set_data(req, crl_cfg_json(req));
	return 0;
}

int pki_config_crl_write(struct cs_request *req)
{
	cJSON *c = cs_pki_config(req, "crl");
	static const char *const durs[] = {"expiry", "auto_rebuild_grace_period",
					   "delta_rebuild_interval", "ocsp_expiry"};
	static const char *const bools[] = {"disable", "ocsp_disable", "auto_rebuild",
					    "enable_delta"};
	for (size_t i = 0; i < CS_ARRAY_LEN(durs); i++) {
		if (!cs_req_has(req, durs[i]))
			continue;
		int64_t s = 0;
		const cJSON *v = cs_req_get(req, durs[i]);
		if (cJSON_IsNumber(v))
			s = (int64_t)v->valuedouble;
		else if (!cJSON_IsString(v) || cs_parse_duration(v->valuestring, &s)) {
			cJSON_Delete(c);
			return cs_req_error(req, CS_EINVAL, "given %s could not be decoded",
					    durs[i]);
		}
		cJSON_DeleteItemFromObjectCaseSensitive(c, durs[i]);
		cJSON_AddNumberToObject(c, durs[i], (double)s);
	}
	for (size_t i = 0; i < CS_ARRAY_LEN(bools); i++) {
		if (!cs_req_has(req, bools[i]))
			continue;
		cJSON_DeleteItemFromObjectCaseSensitive(c, bools[i]);
		cJSON_AddBoolToObject(c, bools[i], cs_req_bool(req, bools[i], false));
	}
	if (cs_pki_jbool(c, "enable_delta", false) && !cs_pki_jbool(c, "auto_rebuild", false)) {
		cJSON_Delete(c);
		return cs_req_error(req, CS_EINVAL,
				    "delta CRLs have been enabled but auto_rebuild has not; "
				    "auto_rebuild must be enabled for delta CRLs");
	}
	int rc = cs_view_put_json(req, "config/crl", c);
	bool was_disabled = cs_pki_jbool(c, "disable", false);
	cJSON_Delete(c);
	if (!rc && !was_disabled)
		rc = cs_pki_crl_rebuild_all(req, false);
	if (!rc)
		cs_req_set_data(req, crl_cfg_json(req));
	return rc;
}

/*
 * crl/rotate, crl/rotate-delta and the periodic auto_rebuild of a large CRL
 * (cs_pki_crl_rebuild_async) rebuild without holding the loop: with 100k revoked
 * certificates a rebuild in one handler kept every other request waiting for seconds
 * (tests/bench/results/pki-*). Here:
 *   1. the handler lists revoked/ and notes, per issuer with a key, the CRL numbers the
 *      new CRLs get, its certificate and key (from the issuer cache), then reads the
 *      revocation records CRL_BATCH at a time: after each batch the request waits for a
 *      zero-delay timer (cs_req_wait), so requests queued meanwhile run between batches;
 *      each batch runs in a fresh transaction (a record revoked or tidied meanwhile is
 *      simply in or out, as with any CRL built a moment later);
 *   2. building, sorting, signing and DER-encoding the CRLs runs on the worker pool;
 *   3. the last resume stores them and advances each issuer's CRL counter, unless that
 *      counter moved meanwhile (another rebuild won: its CRLs stay, this request says so).
 * Failures: a record that does not parse is skipped, as in the inline rebuild; the node
 * sealing or losing leadership between steps ends the request with that status (resume
 * gets it and only frees the job).
 */
#define CRL_BATCH 512

struct crl_target {
	char *id;
	X509 *cert;
	EVP_PKEY *key;
	int64_t start_next;           /* the issuer's crl_number when we began */
	int64_t start_last_complete;  /* and its last_complete */
	int64_t complete_no;          /* 0: no complete CRL this time */
	int64_t delta_no, delta_base; /* delta_no 0: no delta */
	int64_t since;                /* a delta lists revocations from this time on */
	struct cs_pki_crl_counter after;
	struct cs_pki_revoked *full, *delta;
	size_t n_full, n_delta, cap_full, cap_delta;
	char *full_rec, *delta_rec; /* the stored records (crl_record) */
	size_t full_len, delta_len;
};

struct crl_job {
	struct cs_async async;
	uv_timer_t timer;
	bool timer_open;
	struct crl_cfg cfg;
	bool built;
	struct cs_strv serials;
	size_t next;
	struct crl_target *t;
	size_t nt;
	int64_t now;
};

static void crl_target_push(struct cs_pki_revoked **v, size_t *n, size_t *cap,
			    const struct cs_pki_revoked *r)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 256;
		*v = realloc(*v, *cap * sizeof **v);
		if (!*v)
			abort();
	}
	(*v)[(*n)++] = *r;
}

static void crl_timer_closed(uv_handle_t *h)
{
	free(h->data);
}

static void crl_job_free(struct crl_job *j)
{
	for (size_t i = 0; i < j->nt; i++) {
		struct crl_target *t = &j->t[i];
		free(t->id);
		X509_free(t->cert);
		EVP_PKEY_free(t->key);
		free(t->full);
		free(t->delta);
		free(t->full_rec);
		free(t->delta_rec);
	}
	free(j->t);
	cs_strv_free(&j->serials);
	if (j->timer_open) /* the job goes with the timer's close callback */
		uv_close((uv_handle_t *)&j->timer, crl_timer_closed);
	else
		free(j);
}

/* Read the next batch of revocation records into the targets. */
static int crl_read_batch(struct cs_request *req, struct crl_job *j)
{
	size_t end = j->next + CRL_BATCH < j->serials.n ? j->next + CRL_BATCH : j->serials.n;
	for (; j->next < end; j->next++) {
		char key[128];
		snprintf(key, sizeof key, "revoked/%s", j->serials.v[j->next]);
		cJSON *e = NULL;
		int rc = cs_view_get_json(req, key, &e);
		if (rc && rc != CS_ENOTFOUND)
			return rc;
		const char *iid = cs_pki_jstr(e, "issuer_id", "");
		struct cs_pki_revoked r = {.when = cs_pki_jint(e, "revocation_time", 0)};
		int len = cs_pki_serial_parse(j->serials.v[j->next], r.serial, sizeof r.serial);
		r.serial_len = len > 0 ? (size_t)len : 0;
		for (size_t i = 0; e && len > 0 && i < j->nt; i++) {
			struct crl_target *t = &j->t[i];
			if (strcmp(t->id, iid) != 0)
				continue;
			if (t->complete_no)
				crl_target_push(&t->full, &t->n_full, &t->cap_full, &r);
			if (t->delta_no && r.when >= t->since)
				crl_target_push(&t->delta, &t->n_delta, &t->cap_delta, &r);
		}
		cJSON_Delete(e);
	}
	return 0;
}

/* The stored record of a CRL (crls/<id>[-delta]) as JSON text, made on the pool: the
 * base64 of a 100k-entry CRL is megabytes, no work for the loop. NULL when c is NULL. */
static char *crl_record(X509_CRL *c, int64_t number, int64_t now, size_t *len)
{
	if (!c)
		return NULL;
	size_t dl;
	uint8_t *der = cs_pki_crl_der(c, &dl);
	char *b64 = der ? cs_b64_encode(der, dl) : NULL;
	free(der);
	if (!b64)
		return NULL;
	struct cs_buf b = CS_BUF_INIT;
	/* base64 needs no JSON escaping */
	cs_buf_printf(&b, "{\"der\":\"%s\",\"number\":%lld,\"this_update\":%lld}", b64,
		      (long long)number, (long long)now);
	free(b64);
	return cs_buf_steal(&b, len);
}

static void crl_build_work(struct cs_async *a)
{
	struct crl_job *j = CS_CONTAINER_OF(a, struct crl_job, async);
	for (size_t i = 0; i < j->nt; i++) {
		struct crl_target *t = &j->t[i];
		if (t->complete_no) {
			X509_CRL *c = cs_pki_crl_build(t->cert, t->key, t->full, t->n_full,
						       t->complete_no, 0, j->now, j->cfg.expiry);
			t->full_rec = crl_record(c, t->complete_no, j->now, &t->full_len);
			X509_CRL_free(c);
		}
		if (t->delta_no) {
			X509_CRL *c = cs_pki_crl_build(
			    t->cert, t->key, t->delta, t->n_delta, t->delta_no, t->delta_base,
			    j->now, j->cfg.delta_rebuild_interval + j->cfg.expiry);
			t->delta_rec = crl_record(c, t->delta_no, j->now, &t->delta_len);
			X509_CRL_free(c);
		}
	}
	j->built = true;
}

static int crl_store(struct cs_request *req, const char *id, bool delta, const char *rec,
		     size_t len)
{
	char key[128];
	snprintf(key, sizeof key, delta ? "crls/%s-delta" : "crls/%s", id);
	return cs_view_put(req, key, rec, len);
}

/* The last step: store every CRL and advance the counters. */
static int crl_finish(struct cs_request *req, struct crl_job *j)
{
	int rc = 0;
	bool raced = false;
	for (size_t i = 0; !rc && i < j->nt; i++) {
		struct crl_target *t = &j->t[i];
		if ((t->complete_no && !t->full_rec) || (t->delta_no && !t->delta_rec))
			return cs_req_error(req, CS_EINTERNAL, "unable to build the CRL");
		cJSON *iss = NULL;
		if (cs_pki_issuer_load(req, t->id, &iss) != 0) {
			cJSON_Delete(iss);
			continue; /* deleted meanwhile */
		}
		if (cs_pki_jint(iss, "crl_number", 1) != t->start_next ||
		    cs_pki_jint(iss, "last_complete", 0) != t->start_last_complete) {
			raced = true;
			cJSON_Delete(iss);
			continue;
		}
		if (t->complete_no)
			rc = crl_store(req, t->id, false, t->full_rec, t->full_len);
		if (!rc && t->delta_no)
			rc = crl_store(req, t->id, true, t->delta_rec, t->delta_len);
		cJSON_DeleteItemFromObjectCaseSensitive(iss, "crl_number");
		cJSON_AddNumberToObject(iss, "crl_number", (double)t->after.next);
		cJSON_DeleteItemFromObjectCaseSensitive(iss, "last_complete");
		cJSON_AddNumberToObject(iss, "last_complete", (double)t->after.last_complete);
		if (t->complete_no) {
			cJSON_DeleteItemFromObjectCaseSensitive(iss, "last_complete_time");
			cJSON_AddNumberToObject(iss, "last_complete_time", (double)j->now);
		}
		if (!rc)
			rc = cs_pki_issuer_save(req, iss);
		cJSON_Delete(iss);
	}
	if (!rc && raced)
		cs_req_warn(req, "another CRL rebuild finished while this one ran; its CRLs "
				 "were kept for the issuers it rebuilt");
	if (!rc) {
		cJSON *d = cJSON_CreateObject();
		cJSON_AddBoolToObject(d, "success", true);
		cs_req_set_data(req, d);
	}
	return rc;
}

static void crl_timer_fired(uv_timer_t *t)
{
	struct crl_job *j = t->data;
	cs_req_wake(&j->async);
}

static int crl_step(struct cs_request *req, struct crl_job *j);

static int crl_resume(struct cs_request *req, struct cs_async *a, int status)
{
	struct crl_job *j = CS_CONTAINER_OF(a, struct crl_job, async);
	if (status) {
		crl_job_free(j);
		return status;
	}
	if (j->built) {
		int rc = crl_finish(req, j);
		crl_job_free(j);
		return rc;
	}
	return crl_step(req, j);
}

/* Read one batch; then wait a loop turn for the next, or build on the pool. */
static int crl_step(struct cs_request *req, struct crl_job *j)
{
	int rc = crl_read_batch(req, j);
	if (rc) {
		crl_job_free(j);
		return rc;
	}
	j->async.resume = crl_resume;
	if (j->next < j->serials.n) {
		if (!j->timer_open) {
			uv_timer_init(cs_core_loop(req->core), &j->timer);
			j->timer.data = j;
			j->timer_open = true;
		}
		uv_timer_start(&j->timer, crl_timer_fired, 0, 0);
		return cs_req_wait(req, &j->async);
	}
	j->async.work = crl_build_work;
	return cs_req_defer(req, &j->async);
}

int cs_pki_crl_rebuild_async(struct cs_request *req, cs_pki_crl_mode_fn mode, void *arg)
{
	struct crl_job *j = calloc(1, sizeof *j);
	if (!j)
		return CS_ENOMEM;
	j->cfg = crl_cfg(req);
	j->now = now_s();
	struct cs_strv ids = {0};
	int rc = cs_view_list(req, "config/issuer/", &ids);
	j->t = calloc(ids.n + 1, sizeof *j->t);
	if (!j->t)
		abort();
	for (size_t i = 0; !rc && i < ids.n; i++) {
		int m = mode(req, ids.v[i], arg);
		if (m == CS_PKI_CRL_NONE)
			continue;
		bool delta_only = m == CS_PKI_CRL_DELTA;
		struct cs_pki_issuer_ref ir;
		int r = cs_pki_issuer_get(req, ids.v[i], CS_PKI_ISSUER_SIGNER, &ir);
		if (r == CS_ENOTFOUND || (!r && !ir.signer)) {
			if (!r)
				cs_pki_issuer_ref_free(&ir);
			continue; /* gone, or no key: cannot sign a CRL */
		}
		if (r) {
			rc = r;
			break;
		}
		struct crl_target *t = &j->t[j->nt++];
		t->id = strdup(ids.v[i]);
		t->cert = ir.cert;
		t->key = ir.signer;
		ir.cert = NULL;
		ir.signer = NULL;
		t->start_next = cs_pki_jint(ir.rec, "crl_number", 1);
		t->start_last_complete = cs_pki_jint(ir.rec, "last_complete", 0);
		t->since = cs_pki_jint(ir.rec, "last_complete_time", 0);
		t->after = (struct cs_pki_crl_counter){.next = t->start_next,
						       .last_complete = t->start_last_complete};
		if (!delta_only) {
			t->complete_no = cs_pki_crl_next_complete(&t->after);
			t->since = j->now; /* as the inline rebuild: the delta follows it */
		}
		if (j->cfg.enable_delta) {
			int64_t no = cs_pki_crl_next_delta(&t->after, &t->delta_base);
			t->delta_no = no > 0 ? no : 0;
		}
		cs_pki_issuer_ref_free(&ir);
	}
	cs_strv_free(&ids);
	if (!rc)
		rc = cs_view_list(req, "revoked/", &j->serials);
	if (rc) {
		crl_job_free(j);
		return rc;
	}
	return crl_step(req, j);
}

static int mode_all(struct cs_request *req, const char *id, void *arg)
{
	(void)req;
	(void)id;
	return *(const int *)arg;
}

int pki_crl_rotate(struct cs_request *req)
{
	static const int complete = CS_PKI_CRL_COMPLETE;
	return cs_pki_crl_rebuild_async(req, mode_all, (void *)&complete);
}

int pki_crl_rotate_delta(struct cs_request *req)
{
	struct crl_cfg cfg = crl_cfg(req);
	if (!cfg.enable_delta)
		return cs_req_error(req, CS_EINVAL,
				    "unable to rebuild delta CRL: delta CRLs are "
				    "not enabled");
	static const int delta = CS_PKI_CRL_DELTA;
	return cs_pki_crl_rebuild_async(req, mode_all, (void *)&delta);
}

/* The stored CRL of an issuer, built now when there is none yet. *der malloc'd. */
static int load_crl(struct cs_request *req, const char *id, bool delta, uint8_t **der, size_t *n)
{
	char key[128];
	snprintf(key, sizeof key, delta ? "crls/%s-delta" : "crls/%s", id);
	cJSON *o = NULL;
	int rc = cs_view_get_json(req, key, &o);
	if (rc == CS_ENOTFOUND && !delta) {
		rc = cs_pki_crl_rebuild(req, id, false);
		if (!rc)
			rc = cs_view_get_json(req, key, &o);
	}
	if (!rc) {
		const char *b64 = cs_pki_jstr(o, "der", "");
		*der = cs_b64_decode(b64, strlen(b64), n);
		if (!*der)
			rc = CS_EINTERNAL;
	}
	cJSON_Delete(o);
	return rc;
}

static char *crl_pem_of(const uint8_t *der, size_t n)
{
	const unsigned char *p = der;
	X509_CRL *c = d2i_X509_CRL(NULL, &p, (long)n);
	char *s = c ? cs_pki_crl_pem(c) : strdup("");
	X509_CRL_free(c);
	return s;
}

/*
 * crl, crl/pem, crl/delta, crl/delta/pem (default issuer), cert/crl (JSON), and
 * issuer/:ref/crl[/der|/pem], issuer/:ref/crl/delta[/der|/pem] (JSON without a format).
 */
int pki_crl_raw(struct cs_request *req)
{
	const char *ref = cs_req_capture(req, "ref");
	/* What is asked is in the path: "crl", "crl/pem", "crl/delta/pem", "cert/crl",
	 * "issuer/<ref>/crl[/delta][/der|/pem]". */
	const char *suffix = req->rel;
	if (ref && strlen(req->rel) > strlen("issuer/") + strlen(ref) + 1)
		suffix = req->rel + strlen("issuer/") + strlen(ref) + 1;
	bool delta = strncmp(suffix, "crl/delta", 9) == 0;
	size_t sl = strlen(suffix);
	const char *fmt;
	if (sl >= 4 && strcmp(suffix + sl - 4, "/pem") == 0)
		fmt = "pem";
	else if (sl >= 4 && strcmp(suffix + sl - 4, "/der") == 0)
		fmt = "der";
	else if (ref || strcmp(suffix, "cert/crl") == 0)
		fmt = "json";
	else
		fmt = "der";
	char *id = NULL;
	int rc = cs_pki_resolve_issuer(req, ref ? ref : "default", &id);
	uint8_t *der = NULL;
	size_t n = 0;
	if (!rc)
		rc = load_crl(req, id, delta, &der, &n);
	free(id);
	if (rc && !ref && strcmp(fmt, "json") != 0) {
		/* Vault answers an empty raw body when there is no CRL */
		free(req->errmsg);
		req->errmsg = NULL;
		cs_req_set_raw(req, "application/pkix-crl", "", 0);
		return 0;
	}
	if (rc)
		return rc;
	if (strcmp(fmt, "der") == 0) {
		cs_req_set_raw(req, "application/pkix-crl", der, n);
	} else if (strcmp(fmt, "pem") == 0) {
		char *pem = crl_pem_of(der, n);
		cs_req_set_raw(req, "application/x-pem-file", pem, strlen(pem));
		free(pem);
	} else {
		char *pem = crl_pem_of(der, n);
		cJSON *d = cJSON_CreateObject();
		if (ref)
			cJSON_AddStringToObject(d, "crl", pem);
		else {
			cJSON_AddStringToObject(d, "certificate", pem);
			cJSON_AddNumberToObject(d, "revocation_time", 0);
			cJSON_AddStringToObject(d, "revocation_time_rfc3339", "");
		}
		free(pem);
		cs_req_set_data(req, d);
	}
	free(der);
	return 0;
}

/* ---- cert store reads */

int pki_cert_read(struct cs_request *req)
{
	const char *serial = cs_req_capture(req, "serial");
	char skey[80], key[100];
	if (!cs_pki_serial_key(serial, skey, sizeof skey))
		return cs_req_error(req, CS_EINVAL, "invalid serial number: %s", serial);
	snprintf(key, sizeof key, "certs/%s", skey);
	cJSON *e = NULL;
	int rc = cs_view_get_json(req, key, &e);
	if (rc == CS_ENOTFOUND) { /* revoked and unstored: the revocation entry has it */
		snprintf(key, sizeof key, "revoked/%s", skey);
		rc = cs_view_get_json(req, key, &e);
	}
	if (rc == CS_ENOTFOUND)
		return CS_ENOTFOUND; /* Vault: 404 without errors */
	if (rc)
		return rc;
	const char *b64 = cs_pki_jstr(e, "der", "");
	size_t n;
	uint8_t *der = cs_b64_decode(b64, strlen(b64), &n);
	X509 *x = der ? cs_pki_cert_from_der(der, n) : NULL;
	free(der);
	char *pem = x ? cs_pki_cert_pem(x) : strdup("");
	X509_free(x);
	cJSON_Delete(e);
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "certificate", pem);
	free(pem);
	snprintf(key, sizeof key, "revoked/%s", skey);
	cJSON *r = NULL;
	if (cs_view_get_json(req, key, &r) == 0) {
		cJSON_AddNumberToObject(d, "revocation_time",
					(double)cs_pki_jint(r, "revocation_time", 0));
		cJSON_AddStringToObject(d, "revocation_time_rfc3339",
					cs_pki_jstr(r, "revocation_time_utc", ""));
		cJSON_AddStringToObject(d, "issuer_id", cs_pki_jstr(r, "issuer_id", ""));
	} else {
		cJSON_AddNumberToObject(d, "revocation_time", 0);
		cJSON_AddStringToObject(d, "revocation_time_rfc3339", "");
	}
	cJSON_Delete(r);
	cs_req_set_data(req, d);
	return 0;
}

static int list_serials(struct cs_request *req, const char *dir)
{
	struct cs_strv v = {0};
	int rc = cs_view_list(req, dir, &v);
	if (rc || v.n == 0) {
		cs_strv_free(&v);
		return rc ? rc : CS_ENOTFOUND;
	}
	cJSON *d = cJSON_CreateObject();
	cJSON *k = cJSON_AddArrayToObject(d, "keys");
	for (size_t i = 0; i < v.n; i++) {
		/* Vault lists serials with ':' (stored with '-') */
		for (char *p = v.v[i]; *p; p++)
			if (*p == '-')
				*p = ':';
		cJSON_AddItemToArray(k, cJSON_CreateString(v.v[i]));
	}
	cs_strv_free(&v);
	cs_req_set_data(req, d);
	return 0;
}

int pki_certs_list(struct cs_request *req)
{
	return list_serials(req, "certs/");
}

int pki_certs_revoked_list(struct cs_request *req)
{
	return list_serials(req, "revoked/");
}

/* ---- OCSP (RFC 6960) */

static void ocsp_answer(struct cs_request *req, OCSP_RESPONSE *r, int http_status)
{
	unsigned char *out = NULL;
	int n = r ? i2d_OCSP_RESPONSE(r, &out) : -1;
	if (n > 0) {
		cs_req_set_raw(req, "application/ocsp-response", out, (size_t)n);
		req->status = http_status;
	}
	OPENSSL_free(out);
	OCSP_RESPONSE_free(r);
}

static int pki_ocsp_respond(struct cs_request *req, const uint8_t *der, size_t len);

int pki_ocsp(struct cs_request *req)
{
	const uint8_t *body = NULL;
	size_t len = 0;
	uint8_t *decoded = NULL;
	const char *b64 = cs_req_capture(req, "req");
	if (b64) {
		/* GET: base64 of the DER request, URL-decoded by the router already; '+' may
		 * have become ' ' through a form decoder. */
		char *s = strdup(b64);
		for (char *p = s; *p; p++)
			if (*p == ' ')
				*p = '+';
		decoded = cs_b64_decode(s, strlen(s), &len);
		free(s);
		body = decoded;
	} else {
		body = cs_req_body(req, &len);
	}
	int rc = pki_ocsp_respond(req, body, body ? len : 0);
	free(decoded);
	return rc;
}

static int pki_ocsp_respond(struct cs_request *req, const uint8_t *der, size_t len)
{
	if (!der || len == 0) {
		ocsp_answer(req, OCSP_response_create(OCSP_RESPONSE_STATUS_MALFORMEDREQUEST, NULL),
			    400);
		return 0;
	}
	OCSP_CERTID *cid = NULL;
	uint8_t sb[64];
	size_t sn = 0;
	OCSP_REQUEST *oreq = cs_pki_ocsp_parse(der, len, &cid, sb, sizeof sb, &sn);
	if (!oreq) {
		ocsp_answer(req, OCSP_response_create(OCSP_RESPONSE_STATUS_MALFORMEDREQUEST, NULL),
			    400);
		return 0;
	}
	struct crl_cfg cfg = crl_cfg(req);
	if (cfg.ocsp_disable) {
		OCSP_REQUEST_free(oreq);
		ocsp_answer(req, OCSP_response_create(OCSP_RESPONSE_STATUS_UNAUTHORIZED, NULL),
			    401);
		return 0;
	}
	char *iid = NULL;
	struct cs_pki_issuer_ref ir = {0};
	int rc = cs_pki_issuer_by_certid(req, cid, &iid);
	if (!rc)
		rc = cs_pki_issuer_get(req, iid, CS_PKI_ISSUER_SIGNER, &ir);
	free(iid);
	if (rc && rc != CS_ENOTFOUND) {
		OCSP_REQUEST_free(oreq);
		return rc;
	}
	if (rc || !ir.signer) {
		cs_pki_issuer_ref_free(&ir);
		OCSP_REQUEST_free(oreq);
		ocsp_answer(req, OCSP_response_create(OCSP_RESPONSE_STATUS_UNAUTHORIZED, NULL),
			    401);
		return 0;
	}
	int status = V_OCSP_CERTSTATUS_UNKNOWN;
	int64_t revoked_at = 0;
	char skey[200], spath[220];
	cs_pki_serial_format(sb, sn, '-', skey);
	snprintf(spath, sizeof spath, "revoked/%s", skey);
	cJSON *e = NULL;
	iid = (char *)cs_pki_jstr(ir.rec, "id", "");
	if (cs_view_get_json(req, spath, &e) == 0 &&
	    strcmp(cs_pki_jstr(e, "issuer_id", ""), iid) == 0) {
		status = V_OCSP_CERTSTATUS_REVOKED;
		revoked_at = cs_pki_jint(e, "revocation_time", 0);
	}
	cJSON_Delete(e);
	e = NULL;
	if (status == V_OCSP_CERTSTATUS_UNKNOWN) {
		snprintf(spath, sizeof spath, "certs/%s", skey);
		if (cs_view_get_json(req, spath, &e) == 0 &&
		    strcmp(cs_pki_jstr(e, "issuer_id", ""), iid) == 0)
			status = V_OCSP_CERTSTATUS_GOOD;
		cJSON_Delete(e);
	}
	X509 *ix = ir.cert;
	EVP_PKEY *key = ir.signer;
	OCSP_BASICRESP *bs = OCSP_BASICRESP_new();
	int64_t now = now_s();
	ASN1_TIME *thisupd = ASN1_TIME_set(NULL, (time_t)now);
	ASN1_TIME *nextupd = ASN1_TIME_set(NULL, (time_t)(now + cfg.ocsp_expiry));
	ASN1_TIME *revtime = revoked_at ? ASN1_TIME_set(NULL, (time_t)revoked_at) : NULL;
	OCSP_CERTID *cid_copy = OCSP_CERTID_dup(cid);
	bool ok = OCSP_basic_add1_status(bs, cid_copy, status, -1, revtime, thisupd,
					 cfg.ocsp_expiry > 0 ? nextupd : NULL) != NULL;
	OCSP_CERTID_free(cid_copy);
	ok = ok && OCSP_copy_nonce(bs, oreq) >= 0;
	ok = ok &&
	     OCSP_basic_sign(bs, ix, key,
			     EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519 ? NULL : EVP_sha256(),
			     NULL, OCSP_NOCERTS | OCSP_RESPID_KEY) == 1;
	ASN1_TIME_free(thisupd);
	ASN1_TIME_free(nextupd);
	ASN1_TIME_free(revtime);
	cs_pki_issuer_ref_free(&ir);
	OCSP_REQUEST_free(oreq);
	if (!ok) {
		OCSP_BASICRESP_free(bs);
		ERR_clear_error();
		ocsp_answer(req, OCSP_response_create(OCSP_RESPONSE_STATUS_INTERNALERROR, NULL),
			    500);
		return 0;
	}
	ocsp_answer(req, OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, bs), 200);
	OCSP_BASICRESP_free(bs);
	return 0;
}
