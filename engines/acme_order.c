/*
 * ACME orders and what hangs off them (RFC 8555 §7.4-7.6): new-order, the account's order
 * list, order, authorization, challenge, finalize, cert, revoke-cert and key-change.
 * Every endpoint starts with acme_begin (engines/acme.c): by then the JWS is verified and,
 * for kid requests, the account is loaded and valid. Records are read and written only
 * under the requesting account's prefix, so one account never reaches another's orders.
 * Statuses are computed when read (engines/acme_state.c): an order is "ready" once all
 * its authorizations are valid, without a write.
 */
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engines/acme_internal.h"
#include "engines/pki.h"
#include "engines/pki_internal.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/util.h"

/* Orders and authorizations live a day, as Vault's do. */
#define ORDER_LIFETIME (24 * 3600)

static const char *const challenge_types[] = {"http-01", "dns-01", "tls-alpn-01"};

static int load(struct cs_request *req, const struct acme_req *a, const char *kind, const char *id,
		cJSON **out)
{
	*out = NULL;
	if (!id || !*id || strchr(id, '/'))
		return CS_ENOTFOUND;
	char key[300];
	acme_key(key, sizeof key, a->account_id, kind, id);
	return cs_view_get_json(req, key, out);
}

static int save(struct cs_request *req, const struct acme_req *a, const char *kind, const cJSON *o)
{
	char key[300];
	acme_key(key, sizeof key, a->account_id, kind, cs_pki_jstr(o, "id", ""));
	return cs_view_put_json(req, key, o);
}

static void url_of(const struct acme_req *a, char *out, size_t n, const char *what, const char *id,
		   const char *tail)
{
	snprintf(out, n, "%s%s/%s%s", a->base, what, id, tail ? tail : "");
}

static void add_time(cJSON *o, const char *k, int64_t t)
{
	char s[40];
	acme_time(t, s, sizeof s);
	cJSON_AddStringToObject(o, k, s);
}

/* ---------------------------------------------------------------- views */

cJSON *acme_authz_view(const struct acme_req *a, const cJSON *z, int64_t now)
{
	cJSON *o = cJSON_CreateObject();
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(z, "identifier");
	bool wildcard = cs_pki_jbool(z, "wildcard", false);
	cJSON *ident = cJSON_Duplicate(id, true);
	const char *v = cs_pki_jstr(id, "value", "");
	if (wildcard && strncmp(v, "*.", 2) == 0) /* RFC 8555 §7.1.4: without the "*." */
		cJSON_ReplaceItemInObject(ident, "value", cJSON_CreateString(v + 2));
	cJSON_AddItemToObject(o, "identifier", ident);
	int64_t exp = cs_pki_jint(z, "expires", 0);
	cJSON_AddStringToObject(o, "status",
				cs_acme_authz_status(cs_pki_jstr(z, "status", ""), exp, now));
	add_time(o, "expires", exp);
	if (wildcard)
		cJSON_AddBoolToObject(o, "wildcard", true);
	cJSON *chs = cJSON_AddArrayToObject(o, "challenges");
	const cJSON *c;
	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(z, "challenges"))
	{
		cJSON *x = cJSON_CreateObject();
		const char *type = cs_pki_jstr(c, "type", "");
		char u[800];
		snprintf(u, sizeof u, "%schallenge/%s/%s", a->base, cs_pki_jstr(z, "id", ""), type);
		cJSON_AddStringToObject(x, "type", type);
		cJSON_AddStringToObject(x, "url", u);
		cJSON_AddStringToObject(x, "token", cs_pki_jstr(c, "token", ""));
		cJSON_AddStringToObject(x, "status", cs_pki_jstr(c, "status", "pending"));
		if (cs_pki_jint(c, "validated", 0))
			add_time(x, "validated", cs_pki_jint(c, "validated", 0));
		const cJSON *err = cJSON_GetObjectItemCaseSensitive(c, "error");
		if (cJSON_IsObject(err))
			cJSON_AddItemToObject(x, "error", cJSON_Duplicate(err, true));
		cJSON_AddItemToArray(chs, x);
	}
	return o;
}

/* The order's status now, from its authorizations. */
static int order_status(struct cs_request *req, const struct acme_req *a, const cJSON *ord,
			const char **out)
{
	const char *st[64];
	size_t n = 0;
	int64_t now = acme_now();
	const cJSON *zid;
	cJSON *zs[64];
	int rc = 0;
	cJSON_ArrayForEach(zid, cJSON_GetObjectItemCaseSensitive(ord, "authorizations"))
	{
		if (n >= 64 || !cJSON_IsString(zid))
			break;
		cJSON *z = NULL;
		rc = load(req, a, "authz", zid->valuestring, &z);
		if (rc)
			break;
		zs[n] = z;
		st[n] = cs_acme_authz_status(cs_pki_jstr(z, "status", ""),
					     cs_pki_jint(z, "expires", 0), now);
		n++;
	}
	if (!rc)
		*out = cs_acme_order_status(cs_pki_jstr(ord, "status", ""),
					    cs_pki_jint(ord, "expires", 0), now, st, n);
	for (size_t i = 0; i < n; i++)
		cJSON_Delete(zs[i]);
	return rc == CS_ENOTFOUND ? (*out = "invalid", 0) : rc;
}

static cJSON *order_view(const struct acme_req *a, const cJSON *ord, const char *status)
{
	cJSON *o = cJSON_CreateObject();
	const char *id = cs_pki_jstr(ord, "id", "");
	cJSON_AddStringToObject(o, "status", status);
	add_time(o, "expires", cs_pki_jint(ord, "expires", 0));
	cJSON_AddItemToObject(
	    o, "identifiers",
	    cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(ord, "identifiers"), true));
	cJSON *az = cJSON_AddArrayToObject(o, "authorizations");
	const cJSON *zid;
	char u[800];
	cJSON_ArrayForEach(zid, cJSON_GetObjectItemCaseSensitive(ord, "authorizations"))
	{
		url_of(a, u, sizeof u, "authorization", cJSON_IsString(zid) ? zid->valuestring : "",
		       NULL);
		cJSON_AddItemToArray(az, cJSON_CreateString(u));
	}
	url_of(a, u, sizeof u, "order", id, "/finalize");
	cJSON_AddStringToObject(o, "finalize", u);
	if (strcmp(status, "valid") == 0) {
		url_of(a, u, sizeof u, "order", id, "/cert");
		cJSON_AddStringToObject(o, "certificate", u);
	}
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(ord, "error");
	if (cJSON_IsObject(err))
		cJSON_AddItemToObject(o, "error", cJSON_Duplicate(err, true));
	return o;
}

static int reply_order(struct cs_request *req, const struct acme_req *a, const cJSON *ord,
		       int status_code)
{
	const char *st = NULL;
	int rc = order_status(req, a, ord, &st);
	if (rc)
		return rc;
	char u[800];
	url_of(a, u, sizeof u, "order", cs_pki_jstr(ord, "id", ""), NULL);
	return acme_reply(req, a, status_code, order_view(a, ord, st), u);
}

/* ---------------------------------------------------------------- new-order */

int acme_new_order(struct cs_request *req)
{
	struct acme_req a;
	cJSON *role = NULL, *ord = NULL;
	int rc = acme_begin(req, &a, ACME_KID);
	if (rc)
		goto out;
	const cJSON *p = a.jws.payload_json;
	const cJSON *ids = cJSON_GetObjectItemCaseSensitive(p, "identifiers");
	int n = cJSON_GetArraySize(ids);
	if (!cJSON_IsArray(ids) || n == 0 || n > 64) {
		rc = acme_problem(req, &a, 400, "malformed",
				  "identifiers must be a list of 1 to 64 identifiers");
		goto out;
	}
	if (cJSON_GetObjectItemCaseSensitive(p, "notBefore") ||
	    cJSON_GetObjectItemCaseSensitive(p, "notAfter")) {
		rc = acme_problem(req, &a, 400, "malformed",
				  "NotBefore and NotAfter are not supported");
		goto out;
	}
	rc = acme_role(req, &a, &role);
	if (rc)
		goto out;
	struct cs_acme_identifier idv[64];
	for (int i = 0; i < n; i++) {
		const char *type, *why;
		if (cs_acme_identifier_parse(cJSON_GetArrayItem(ids, i), &idv[i], &type, &why)) {
			rc = acme_problem(req, &a, 400, type, "%s", why);
			goto out;
		}
		for (int j = 0; j < i; j++)
			if (idv[j].type == idv[i].type && strcmp(idv[j].value, idv[i].value) == 0) {
				rc = acme_problem(req, &a, 400, "malformed",
						  "duplicate identifier %s", idv[i].value);
				goto out;
			}
		const char *refused = cs_acme_role_refuses(role, &idv[i]);
		if (refused) {
			rc = acme_problem(req, &a, 400, "rejectedIdentifier", "%s: %s", refused,
					  idv[i].value);
			goto out;
		}
	}
	int64_t now = acme_now(), exp = now + ORDER_LIFETIME;
	char oid[23];
	acme_id(oid);
	ord = cJSON_CreateObject();
	cJSON_AddStringToObject(ord, "id", oid);
	cJSON_AddStringToObject(ord, "status", "pending");
	cJSON_AddNumberToObject(ord, "expires", (double)exp);
	cJSON_AddNumberToObject(ord, "created", (double)now);
	cJSON *oids = cJSON_AddArrayToObject(ord, "identifiers");
	cJSON *zids = cJSON_AddArrayToObject(ord, "authorizations");
	for (int i = 0; i < n && !rc; i++) {
		cJSON_AddItemToArray(oids, cs_acme_identifier_json(&idv[i]));
		char zid[23];
		acme_id(zid);
		cJSON *z = cJSON_CreateObject();
		cJSON_AddStringToObject(z, "id", zid);
		cJSON_AddStringToObject(z, "order", oid);
		cJSON_AddItemToObject(z, "identifier", cs_acme_identifier_json(&idv[i]));
		cJSON_AddBoolToObject(z, "wildcard", idv[i].wildcard);
		cJSON_AddStringToObject(z, "status", "pending");
		cJSON_AddNumberToObject(z, "expires", (double)exp);
		cJSON *chs = cJSON_AddArrayToObject(z, "challenges");
		for (size_t t = 0; t < CS_ARRAY_LEN(challenge_types); t++) {
			if (!cs_acme_challenge_allowed(challenge_types[t], &idv[i]))
				continue;
			uint8_t tok[32];
			cs_random(tok, sizeof tok);
			char *ts = cs_b64url_encode(tok, sizeof tok);
			cJSON *c = cJSON_CreateObject();
			cJSON_AddStringToObject(c, "type", challenge_types[t]);
			cJSON_AddStringToObject(c, "token", ts);
			cJSON_AddStringToObject(c, "status", "pending");
			cJSON_AddItemToArray(chs, c);
			free(ts);
		}
		rc = save(req, &a, "authz", z);
		cJSON_Delete(z);
		cJSON_AddItemToArray(zids, cJSON_CreateString(zid));
	}
	if (!rc)
		rc = save(req, &a, "orders", ord);
	if (!rc)
		rc = reply_order(req, &a, ord, 201);
out:
	cJSON_Delete(role);
	cJSON_Delete(ord);
	acme_end(&a);
	return rc == ACME_DONE ? 0 : rc;
}

/* ---------------------------------------------------------------- reads */

int acme_orders(struct cs_request *req)
{
	struct acme_req a;
	int rc = acme_begin(req, &a, ACME_KID);
	if (rc)
		goto out;
	char prefix[200];
	snprintf(prefix, sizeof prefix, "acme/accounts/%s/orders/", a.account_id);
	struct cs_strv ids = {0};
	rc = cs_view_list(req, prefix, &ids);
	if (!rc) {
		cJSON *o = cJSON_CreateObject();
		cJSON *l = cJSON_AddArrayToObject(o, "orders");
		for (size_t i = 0; i < ids.n; i++) {
			char u[800];
			url_of(&a, u, sizeof u, "order", ids.v[i], NULL);
			cJSON_AddItemToArray(l, cJSON_CreateString(u));
		}
		rc = acme_reply(req, &a, 200, o, NULL);
	}
	cs_strv_free(&ids);
out:
	acme_end(&a);
	return rc == ACME_DONE ? 0 : rc;
}

/* The order named by the path, or a problem. */
static int path_order(struct cs_request *req, struct acme_req *a, cJSON **ord)
{
	int rc = load(req, a, "orders", cs_req_capture(req, "order_id"), ord);
	if (rc == CS_ENOTFOUND)
		return acme_problem(req, a, 404, "malformed", "no such order"), ACME_DONE;
	return rc;
}

int acme_order(struct cs_request *req)
{
	struct acme_req a;
	cJSON *ord = NULL;
	int rc = acme_begin(req, &a, ACME_KID);
	if (!rc)
		rc = path_order(req, &a, &ord);
	if (!rc)
		rc = reply_order(req, &a, ord, 200);
	cJSON_Delete(ord);
	acme_end(&a);
	return rc == ACME_DONE ? 0 : rc;
}

int acme_authz(struct cs_request *req)
{
	struct acme_req a;
	cJSON *z = NULL;
	int rc = acme_begin(req, &a, ACME_KID);
	if (rc)
		goto out;
	rc = load(req, &a, "authz", cs_req_capture(req, "auth_id"), &z);
	if (rc == CS_ENOTFOUND) {
		rc = acme_problem(req, &a, 404, "malformed", "no such authorization");
		goto out;
	}
	if (rc)
		goto out;
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(a.jws.payload_json, "status");
	if (st) { /* RFC 8555 §7.5.2: the client may deactivate it */
		if (!cJSON_IsString(st) || strcmp(st->valuestring, "deactivated") != 0) {
			rc = acme_problem(req, &a, 400, "malformed",
					  "a client may only set status to deactivated");
			goto out;
		}
		const char *cur = cs_acme_authz_status(cs_pki_jstr(z, "status", ""),
						       cs_pki_jint(z, "expires", 0), acme_now());
		if (strcmp(cur, "pending") != 0 && strcmp(cur, "valid") != 0) {
			rc = acme_problem(
			    req, &a, 400, "malformed",
			    "only a pending or valid authorization can be deactivated");
			goto out;
		}
		cJSON_ReplaceItemInObject(z, "status", cJSON_CreateString("deactivated"));
		rc = save(req, &a, "authz", z);
		if (rc)
			goto out;
	}
	rc = acme_reply(req, &a, 200, acme_authz_view(&a, z, acme_now()), NULL);
out:
	cJSON_Delete(z);
	acme_end(&a);
	return rc == ACME_DONE ? 0 : rc;
}

/* ---------------------------------------------------------------- challenge */

int acme_challenge(struct cs_request *req)
{
	struct acme_req a;
	cJSON *z = NULL;
	int rc = acme_begin(req, &a, ACME_KID);
	if (rc)
		goto out;
	const char *zid = cs_req_capture(req, "auth_id");
	const char *type = cs_req_capture(req, "challenge_type");
	rc = load(req, &a, "authz", zid, &z);
	if (rc == CS_ENOTFOUND) {
		rc = acme_problem(req, &a, 404, "malformed", "no such authorization");
		goto out;
	}
	if (rc)
		goto out;
	cJSON *c = NULL, *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(z, "challenges"))
	{
		if (strcmp(cs_pki_jstr(it, "type", ""), type) == 0)
			c = it;
	}
	if (!c) {
		rc = acme_problem(req, &a, 404, "malformed",
				  "no %s challenge in this authorization", type);
		goto out;
	}
	const char *zst = cs_acme_authz_status(cs_pki_jstr(z, "status", ""),
					       cs_pki_jint(z, "expires", 0), acme_now());
	/* RFC 8555 §7.5.1: a POST {} asks for validation; POST-as-GET (empty payload) only
	 * reads. Only a pending challenge of a pending authorization starts one. */
	bool start = a.jws.payload_json != NULL && strcmp(zst, "pending") == 0 &&
		     strcmp(cs_pki_jstr(c, "status", ""), "pending") == 0;
	bool other = false; /* one challenge per authorization at a time */
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(z, "challenges"))
	{
		if (it != c && strcmp(cs_pki_jstr(it, "status", ""), "processing") == 0)
			other = true;
	}
	if (start && other) {
		rc = acme_problem(req, &a, 400, "malformed",
				  "another challenge of this authorization is being validated");
		goto out;
	}
	if (start) {
		cJSON_ReplaceItemInObject(c, "status", cJSON_CreateString("processing"));
		cJSON_DeleteItemFromObject(z, "retry_count");
		cJSON_AddNumberToObject(z, "retry_count", 0);
		rc = save(req, &a, "authz", z);
		if (rc)
			goto out;
		acme_chal_schedule(req, a.account_id, zid, type);
	}
	cJSON *view = acme_authz_view(&a, z, acme_now());
	cJSON *cv = NULL;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(view, "challenges"))
	{
		if (strcmp(cs_pki_jstr(it, "type", ""), type) == 0)
			cv = it;
	}
	cv = cJSON_DetachItemViaPointer(cJSON_GetObjectItemCaseSensitive(view, "challenges"), cv);
	cJSON_Delete(view);
	char up[800];
	url_of(&a, up, sizeof up, "authorization", zid, NULL);
	rc = acme_reply(req, &a, 200, cv, NULL);
	char link[900];
	snprintf(link, sizeof link, "<%s>;rel=\"up\"", up);
	cs_req_add_header(req, "Link", link);
out:
	cJSON_Delete(z);
	acme_end(&a);
	return rc == ACME_DONE ? 0 : rc;
}

/* ---------------------------------------------------------------- finalize, cert */

/* The order's identifiers parsed back. */
static size_t order_ids(const cJSON *ord, struct cs_acme_identifier *out, size_t cap)
{
	size_t n = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(ord, "identifiers"))
	{
		const char *t, *w;
		if (n < cap && cs_acme_identifier_parse(it, &out[n], &t, &w) == 0)
			n++;
	}
	return n;
}

/* Vault's usability rule: roles require a CN by default, ACME clients often send none;
 * take a wildcard name, else the first DNS name, else the first IP. */
static cJSON *csr_fields(const cJSON *role, X509_REQ *csr, const struct cs_strv *dns,
			 const struct cs_strv *ips)
{
	cJSON *f = cJSON_CreateObject();
	char *cn = cs_pki_name_cn(X509_REQ_get_subject_name(csr));
	bool has_cn = cn && *cn;
	free(cn);
	if (has_cn || (role && !cs_pki_jbool(role, "require_cn", true)))
		return f;
	const char *pick = NULL;
	for (size_t i = 0; i < dns->n && !pick; i++)
		if (strchr(dns->v[i], '*'))
			pick = dns->v[i];
	if (!pick && dns->n)
		pick = dns->v[0];
	if (!pick && ips->n)
		pick = ips->v[0];
	if (pick)
		cJSON_AddStringToObject(f, "common_name", pick);
	return f;
}

/* Sign the CSR under the directory's role and issuer; the order becomes valid. */
static int issue(struct cs_request *req, struct acme_req *a, cJSON *ord, X509_REQ *csr,
		 const cJSON *fields)
{
	cJSON *data = NULL;
	int rc = cs_pki_sign_csr(req, a->role, a->issuer, csr, fields, &data);
	if (rc == CS_EINVAL || rc == CS_EPERM) {
		char msg[400];
		snprintf(msg, sizeof msg, "%s", req->errmsg ? req->errmsg : "refused");
		return acme_problem(req, a, 400, "badCSR", "%s", msg), ACME_DONE;
	}
	if (rc)
		return rc;
	/* The chain: the leaf, then the issuer's chain (RFC 8555 §7.4.2). */
	struct cs_buf chain = {0};
	const char *leaf = cs_pki_jstr(data, "certificate", "");
	cs_buf_append(&chain, leaf, strlen(leaf));
	cs_buf_putc(&chain, '\n');
	const cJSON *pem;
	cJSON_ArrayForEach(pem, cJSON_GetObjectItemCaseSensitive(data, "ca_chain"))
	{
		if (!cJSON_IsString(pem))
			continue;
		cs_buf_append(&chain, pem->valuestring, strlen(pem->valuestring));
		cs_buf_putc(&chain, '\n');
	}
	cs_buf_putc(&chain, '\0');
	const char *serial = cs_pki_jstr(data, "serial_number", "");
	char skey[100];
	cs_pki_serial_key(serial, skey, sizeof skey);
	cJSON_ReplaceItemInObject(ord, "status", cJSON_CreateString("valid"));
	cJSON_AddStringToObject(ord, "cert_serial", serial);
	cJSON_AddStringToObject(ord, "cert_chain", (const char *)chain.data);
	cs_buf_free(&chain);
	cJSON_Delete(data);
	rc = save(req, a, "orders", ord);
	if (!rc) {
		char key[200];
		snprintf(key, sizeof key, "acme/certs/%s", skey);
		cJSON *c = cJSON_CreateObject();
		cJSON_AddStringToObject(c, "account", a->account_id);
		cJSON_AddStringToObject(c, "order", cs_pki_jstr(ord, "id", ""));
		rc = cs_view_put_json(req, key, c);
		cJSON_Delete(c);
	}
	return rc;
}

int acme_finalize(struct cs_request *req)
{
	struct acme_req a;
	cJSON *ord = NULL, *role = NULL, *fields = NULL;
	X509_REQ *csr = NULL;
	EVP_PKEY *ck = NULL;
	struct cs_strv dns = {0}, emails = {0}, ips = {0}, uris = {0}, others = {0};
	char *cn = NULL;
	int rc = acme_begin(req, &a, ACME_KID);
	if (!rc)
		rc = path_order(req, &a, &ord);
	if (rc)
		goto out;
	const char *st = NULL;
	rc = order_status(req, &a, ord, &st);
	if (rc)
		goto out;
	if (strcmp(st, "ready") != 0) {
		rc = acme_problem(req, &a, 403, "orderNotReady", "the order is %s, not ready", st);
		goto out;
	}
	const char *b64 = cs_pki_jstr(a.jws.payload_json, "csr", "");
	size_t n = 0;
	uint8_t *der = *b64 ? cs_b64url_decode(b64, strlen(b64), &n) : NULL;
	const uint8_t *pp = der;
	csr = der ? d2i_X509_REQ(NULL, &pp, (long)n) : NULL;
	bool trailing = csr && pp != der + n;
	free(der);
	ck = csr ? X509_REQ_get_pubkey(csr) : NULL;
	if (!csr || trailing || !ck || X509_REQ_verify(csr, ck) != 1) {
		rc = acme_problem(req, &a, 400, "badCSR", "the CSR is not a valid signed PKCS#10");
		goto out;
	}
	if (EVP_PKEY_eq(ck, a.key) == 1) {
		rc = acme_problem(req, &a, 400, "badCSR",
				  "the certificate key must not be the account key");
		goto out;
	}
	cs_pki_csr_sans(csr, &dns, &emails, &ips, &uris, &others);
	cn = cs_pki_name_cn(X509_REQ_get_subject_name(csr));
	if (emails.n || uris.n || others.n) {
		rc = acme_problem(req, &a, 400, "badCSR",
				  "the CSR asks for names that are not order identifiers");
		goto out;
	}
	struct cs_acme_identifier ids[64];
	size_t nid = order_ids(ord, ids, 64);
	const char *mismatch = cs_acme_csr_match(ids, nid, (const char *const *)dns.v, dns.n,
						 (const char *const *)ips.v, ips.n, cn);
	if (mismatch) {
		rc = acme_problem(req, &a, 400, "badCSR", "%s", mismatch);
		goto out;
	}
	rc = acme_role(req, &a, &role);
	if (rc)
		goto out;
	fields = csr_fields(role, csr, &dns, &ips);
	rc = issue(req, &a, ord, csr, fields);
	if (!rc)
		rc = reply_order(req, &a, ord, 200);
out:
	cs_strv_free(&dns);
	cs_strv_free(&emails);
	cs_strv_free(&ips);
	cs_strv_free(&uris);
	cs_strv_free(&others);
	free(cn);
	EVP_PKEY_free(ck);
	X509_REQ_free(csr);
	cJSON_Delete(fields);
	cJSON_Delete(role);
	cJSON_Delete(ord);
	acme_end(&a);
	return rc == ACME_DONE ? 0 : rc;
}

int acme_cert(struct cs_request *req)
{
	struct acme_req a;
	cJSON *ord = NULL;
	int rc = acme_begin(req, &a, ACME_KID);
	if (!rc)
		rc = path_order(req, &a, &ord);
	if (rc)
		goto out;
	const char *chain = cs_pki_jstr(ord, "cert_chain", "");
	if (strcmp(cs_pki_jstr(ord, "status", ""), "valid") != 0 || !*chain) {
		rc = acme_problem(req, &a, 403, "orderNotReady", "the order has no certificate");
		goto out;
	}
	cs_req_set_raw(req, "application/pem-certificate-chain", chain, strlen(chain));
	req->status = 200;
	acme_add_nonce(req);
	char link[800];
	snprintf(link, sizeof link, "<%sdirectory>;rel=\"index\"", a.base);
	cs_req_add_header(req, "Link", link);
out:
	cJSON_Delete(ord);
	acme_end(&a);
	return rc == ACME_DONE ? 0 : rc;
}

/* ---------------------------------------------------------------- revoke-cert */

int acme_revoke(struct cs_request *req)
{
	struct acme_req a;
	X509 *x = NULL;
	cJSON *own = NULL, *saved = NULL;
	int rc = acme_begin(req, &a, ACME_ANY);
	if (rc)
		goto out;
	const cJSON *p = a.jws.payload_json;
	const cJSON *reason = cJSON_GetObjectItemCaseSensitive(p, "reason");
	if (reason &&
	    (!cJSON_IsNumber(reason) || reason->valuedouble < 0 || reason->valuedouble > 10 ||
	     reason->valuedouble == 7 || reason->valuedouble != (int)reason->valuedouble)) {
		rc = acme_problem(req, &a, 400, "badRevocationReason", "invalid revocation reason");
		goto out;
	}
	const char *b64 = cs_pki_jstr(p, "certificate", "");
	size_t n = 0;
	uint8_t *der = *b64 ? cs_b64url_decode(b64, strlen(b64), &n) : NULL;
	x = der ? cs_pki_cert_from_der(der, n) : NULL;
	free(der);
	if (!x) {
		rc =
		    acme_problem(req, &a, 400, "malformed", "certificate is not a DER certificate");
		goto out;
	}
	char skey[100], key[200];
	cs_pki_cert_serial(x, '-', skey, sizeof skey);
	if (a.account) { /* by account: only a certificate this account was issued */
		snprintf(key, sizeof key, "acme/certs/%s", skey);
		rc = cs_view_get_json(req, key, &own);
		if (rc && rc != CS_ENOTFOUND)
			goto out;
		rc = 0;
		if (strcmp(cs_pki_jstr(own, "account", ""), a.account_id) != 0) {
			rc = acme_problem(req, &a, 403, "unauthorized",
					  "this account was not issued this certificate");
			goto out;
		}
	} else if (!cs_pki_cert_key_match(x, a.key)) { /* by the certificate's key */
		rc = acme_problem(req, &a, 403, "unauthorized",
				  "the JWS is not signed by the certificate's key");
		goto out;
	}
	snprintf(key, sizeof key, "revoked/%s", skey);
	cJSON *rv = NULL;
	if (cs_view_get_json(req, key, &rv) == 0) {
		cJSON_Delete(rv);
		rc = acme_problem(req, &a, 400, "alreadyRevoked", "certificate already revoked");
		goto out;
	}
	/* Revoke through the PKI's own revoke (CRL rebuild included), with its input. */
	char *pem = cs_pki_cert_pem(x);
	saved = req->data;
	req->data = cJSON_CreateObject();
	cJSON_AddStringToObject(req->data, "certificate", pem);
	free(pem);
	rc = pki_revoke(req);
	cJSON_Delete(req->data);
	req->data = saved;
	saved = NULL;
	if (rc == CS_EINVAL) {
		char msg[300];
		snprintf(msg, sizeof msg, "%s", req->errmsg ? req->errmsg : "cannot revoke");
		rc = acme_problem(req, &a, 400, "unauthorized", "%s", msg);
		goto out;
	}
	if (rc)
		goto out;
	cJSON_Delete(req->resp_data);
	req->resp_data = NULL;
	cJSON_Delete(req->warnings);
	req->warnings = NULL;
	cs_req_set_raw(req, "application/json", "", 0);
	req->status = 200;
	acme_add_nonce(req);
out:
	X509_free(x);
	cJSON_Delete(own);
	acme_end(&a);
	return rc == ACME_DONE ? 0 : rc;
}

/* ---------------------------------------------------------------- key-change */

int acme_key_change(struct cs_request *req)
{
	struct acme_req a;
	struct cs_acme_jws in = {0};
	EVP_PKEY *nk = NULL;
	cJSON *other = NULL;
	int rc = acme_begin(req, &a, ACME_KID);
	if (rc)
		goto out;
	/* RFC 8555 §7.3.5: the payload is a JWS signed by the new key, with its jwk, the
	 * same url, no nonce, and {"account": kid, "oldKey": the current key}. */
	const char *why = NULL;
	char *inner = a.jws.payload_json ? cJSON_PrintUnformatted(a.jws.payload_json) : NULL;
	rc = inner ? cs_acme_jws_parse_inner(inner, strlen(inner), &in, &why) : CS_EINVAL;
	free(inner);
	if (rc || !in.jwk || strcmp(in.url, a.jws.url) != 0) {
		rc = acme_problem(req, &a, 400, "malformed", "bad inner JWS: %s",
				  why ? why : "needs a jwk and the outer url");
		goto out;
	}
	if (cs_acme_jwk_key(in.jwk, &nk, &why) || cs_acme_jws_verify(&in, nk, &why)) {
		rc = acme_problem(req, &a, 400, "malformed", "inner JWS: %s", why);
		goto out;
	}
	const cJSON *ip = in.payload_json;
	const char *acct = cs_pki_jstr(ip, "account", "");
	const cJSON *old = cJSON_GetObjectItemCaseSensitive(ip, "oldKey");
	char tp_old[45] = {0}, tp_cur[45] = {0}, tp_new[45] = {0};
	if (strcmp(acct, a.jws.kid) != 0 || !cJSON_IsObject(old) ||
	    cs_acme_jwk_thumbprint(old, tp_old) ||
	    cs_acme_jwk_thumbprint(cJSON_GetObjectItemCaseSensitive(a.account, "jwk"), tp_cur) ||
	    strcmp(tp_old, tp_cur) != 0) {
		rc = acme_problem(req, &a, 400, "malformed",
				  "inner payload must name this account and its current key");
		goto out;
	}
	if (cs_acme_jwk_thumbprint(in.jwk, tp_new)) {
		rc = acme_problem(req, &a, 400, "malformed", "bad new key");
		goto out;
	}
	char key[200];
	snprintf(key, sizeof key, "acme/thumbprints/%s", tp_new);
	rc = cs_view_get_json(req, key, &other);
	if (rc == 0) {
		char u[800];
		snprintf(u, sizeof u, "%saccount/%s", a.base, cs_pki_jstr(other, "id", ""));
		rc = acme_problem(req, &a, 409, "malformed", "the new key is already in use");
		cs_req_add_header(req, "Location", u);
		goto out;
	}
	if (rc != CS_ENOTFOUND)
		goto out;
	cJSON_ReplaceItemInObject(a.account, "jwk", cJSON_Duplicate(in.jwk, true));
	cJSON_ReplaceItemInObject(a.account, "thumbprint", cJSON_CreateString(tp_new));
	char akey[200], okey[200];
	snprintf(akey, sizeof akey, "acme/accounts/%s", a.account_id);
	snprintf(okey, sizeof okey, "acme/thumbprints/%s", tp_cur);
	cJSON *t = cJSON_CreateObject();
	cJSON_AddStringToObject(t, "id", a.account_id);
	rc = cs_view_put_json(req, akey, a.account);
	if (!rc)
		rc = cs_view_put_json(req, key, t);
	if (!rc)
		rc = cs_view_delete(req, okey);
	cJSON_Delete(t);
	if (!rc) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "status", "valid");
		rc = acme_reply(req, &a, 200, o, a.jws.kid);
	}
out:
	cJSON_Delete(other);
	EVP_PKEY_free(nk);
	cs_acme_jws_free(&in);
	acme_end(&a);
	return rc == ACME_DONE ? 0 : rc;
}
