/*
 * sys/generate-root/...: mint a new root token from a threshold of unseal shares, for when
 * no root token is left (see rekey.h for the endpoints and how they differ from Vault).
 *
 * Happy path: attempt (otp given, or made here and returned once) → update with
 * `threshold` unseal shares and the nonce → they are combined and checked against the
 * barrier copy of the KEK → a root token is created through the token store in the
 * request's transaction → encoded_token = base64 (unpadded) of token XOR otp; the client
 * decodes it with the OTP (`custos operator generate-root -decode`).
 * Failure modes: no attempt / wrong nonce / share given twice → 400, progress kept;
 * shares that do not rebuild the KEK → 400, progress reset, the attempt stays; seal or
 * change of active node → the attempt is forgotten; commit failure → error, no token.
 */
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
#include "server/rekey.h"
#include "server/seal.h"
#include "server/sys.h"
#include "storage/barrier.h"

static struct {
	bool started;
	int64_t epoch;
	char nonce[37];
	char otp[CS_ROOT_OTP_LEN + 1];
	char *pgp_key; /* instead of the OTP: base64 public key */
	char fpr[CS_PGP_FPR_LEN + 1];
	struct cs_share_set progress;
} gr;

static void gr_clear(void)
{
	cs_share_set_clear(&gr.progress);
	free(gr.pgp_key);
	cs_zero(&gr, sizeof gr);
}

static bool gr_live(struct cs_core *core)
{
	if (gr.started && !cs_keys_attempt_current(core, gr.epoch))
		gr_clear();
	return gr.started;
}

/* Vault's GenerateRootStatusResponse. The nonce is shown only to the caller who started
 * the attempt (show_nonce): the status is unauthenticated, and the nonce is what lets
 * one cancel or feed the attempt. */
static cJSON *status(struct cs_request *req, bool show_nonce, const char *otp)
{
	int n = 0, t = 0;
	cs_keys_seal_config(req, &n, &t);
	bool live = gr_live(req->core);
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "nonce", live && show_nonce ? gr.nonce : "");
	cJSON_AddBoolToObject(j, "started", live);
	cJSON_AddNumberToObject(j, "progress", live ? gr.progress.n : 0);
	cJSON_AddNumberToObject(j, "required", t);
	cJSON_AddBoolToObject(j, "complete", false);
	cJSON_AddStringToObject(j, "encoded_token", "");
	cJSON_AddStringToObject(j, "encoded_root_token", "");
	cJSON_AddStringToObject(j, "pgp_fingerprint", live ? gr.fpr : "");
	cJSON_AddStringToObject(j, "otp", otp ? otp : "");
	cJSON_AddNumberToObject(j, "otp_length", CS_ROOT_OTP_LEN);
	return j;
}

static int attempt_read(struct cs_request *req)
{
	req->raw = status(req, false, NULL);
	return 0;
}

static int attempt_start(struct cs_request *req)
{
	struct cs_core *core = req->core;
	const char *otp = cs_req_str(req, "otp", "");
	const char *pgp = cs_req_str(req, "pgp_key", "");
	if (*pgp && *otp)
		return cs_req_error(req, CS_EINVAL, "only one of otp and pgp_key may be given");
	if (*otp && strlen(otp) != CS_ROOT_OTP_LEN)
		return cs_req_error(req, CS_EINVAL, "OTP string has incorrect length");
	if (gr_live(core))
		return cs_req_error(req, CS_EINVAL, "root generation already in progress");
	int n, t;
	int rc = cs_keys_seal_config(req, &n, &t);
	if (rc)
		return rc;
	char fpr[CS_PGP_FPR_LEN + 1] = "";
	if (*pgp) {
		cJSON *a = cJSON_CreateArray(), *f = NULL;
		cJSON_AddItemToArray(a, cJSON_CreateString(pgp));
		char err[256] = "";
		rc = cs_keys_pgp_check(a, &f, err, sizeof err);
		cJSON_Delete(a);
		if (!rc)
			snprintf(fpr, sizeof fpr, "%s", cJSON_GetArrayItem(f, 0)->valuestring);
		cJSON_Delete(f);
		if (rc)
			return cs_req_error(req, rc, "error parsing PGP key: %s", err);
	}
	gr_clear();
	if (*pgp) {
		gr.pgp_key = strdup(pgp);
		memcpy(gr.fpr, fpr, sizeof fpr);
	}
	bool made = !*otp && !*pgp;
	if (made)
		cs_random_base62(gr.otp, CS_ROOT_OTP_LEN);
	else if (*otp)
		memcpy(gr.otp, otp, CS_ROOT_OTP_LEN);
	gr.otp[CS_ROOT_OTP_LEN] = '\0';
	gr.started = true;
	gr.epoch = core->active_since_ns;
	cs_uuid(gr.nonce);
	cs_info("core: root generation initialized");
	req->raw = status(req, true, made ? gr.otp : NULL);
	return 0;
}

static int attempt_cancel(struct cs_request *req)
{
	if (!gr_live(req->core))
		return 0;
	if (!cs_keys_nonce_ok(req, gr.nonce))
		return cs_req_error(req, CS_EINVAL,
				    "the root generation attempt's nonce is required to cancel it");
	gr_clear();
	cs_info("core: root generation cancelled");
	return 0;
}

/* A new root token in the request's transaction, through the token store. */
static int mint_root(struct cs_request *req, char *out, size_t outlen)
{
	struct cs_core *core = req->core;
	if (!core->tokens.issue)
		return cs_req_error(req, CS_EINTERNAL, "no token store");
	cJSON *p = cJSON_CreateObject();
	cJSON *pol = cJSON_AddArrayToObject(p, "policies");
	cJSON_AddItemToArray(pol, cJSON_CreateString("root"));
	cJSON_AddBoolToObject(p, "no_default_policy", true);
	cJSON_AddStringToObject(p, "display_name", "root");
	cJSON_AddStringToObject(p, "path", "auth/token/root");
	cJSON_AddBoolToObject(p, "renewable", false);
	int rc = core->tokens.issue(req, p);
	cJSON_Delete(p);
	const cJSON *ct = cJSON_GetObjectItemCaseSensitive(req->resp_auth, "client_token");
	if (!rc && (!cJSON_IsString(ct) || strlen(ct->valuestring) >= outlen))
		rc = CS_EINTERNAL;
	if (!rc)
		snprintf(out, outlen, "%s", ct->valuestring);
	/* The token leaves only encoded: never in an auth block. */
	cs_keys_free_secret_json(req->resp_auth);
	req->resp_auth = NULL;
	return rc;
}

static int finish_encoded(struct cs_request *req, int t, char *enc);

static int update(struct cs_request *req)
{
	struct cs_core *core = req->core;
	if (!gr_live(core))
		return cs_req_error(req, CS_EINVAL, "no root generation in progress");
	int n, t;
	int rc = cs_keys_seal_config(req, &n, &t);
	if (rc)
		return rc;
	rc = cs_keys_add_share(req, &gr.progress, gr.nonce, n);
	if (rc)
		return rc;
	if (gr.progress.n < t) {
		req->raw = status(req, true, NULL);
		return 0;
	}
	uint8_t *kek = cs_secmem_alloc(CS_KEY_LEN);
	rc = cs_seal_check_shares(core, &gr.progress, kek);
	cs_secmem_free(kek, CS_KEY_LEN);
	cs_share_set_clear(&gr.progress);
	if (rc)
		return cs_req_error(req, rc,
				    "root generation aborted: the unseal keys given do not rebuild "
				    "this cluster's key; progress reset");
	char token[160];
	rc = mint_root(req, token, sizeof token);
	char *enc = NULL;
	if (!rc && gr.pgp_key) {
		char err[256] = "", fpr[CS_PGP_FPR_LEN + 1];
		rc = cs_keys_pgp_encrypt_text(gr.pgp_key, token, &enc, fpr, err, sizeof err);
		cs_zero(token, sizeof token);
		if (rc)
			return cs_req_error(req, rc, "%s", err);
		return finish_encoded(req, t, enc);
	}
	if (!rc && strlen(token) != CS_ROOT_OTP_LEN)
		rc = CS_EINTERNAL; /* the OTP is sized to the tokens this server mints */
	if (rc) {
		cs_zero(token, sizeof token);
		return cs_req_error(req, rc, "failed to create the root token");
	}
	uint8_t x[CS_ROOT_OTP_LEN];
	for (size_t i = 0; i < CS_ROOT_OTP_LEN; i++)
		x[i] = (uint8_t)token[i] ^ (uint8_t)gr.otp[i];
	enc = cs_b64_encode(x, sizeof x);
	cs_zero(x, sizeof x);
	cs_zero(token, sizeof token);
	/* Vault encodes with base64.RawStdEncoding: no padding. */
	for (size_t l = strlen(enc); l > 0 && enc[l - 1] == '='; l--)
		enc[l - 1] = '\0';
	return finish_encoded(req, t, enc);
}

/* The completed status with the encoded token `enc` (taken); forgets the attempt. */
static int finish_encoded(struct cs_request *req, int t, char *enc)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "nonce", gr.nonce);
	cJSON_AddBoolToObject(r, "started", true);
	cJSON_AddNumberToObject(r, "progress", t);
	cJSON_AddNumberToObject(r, "required", t);
	cJSON_AddBoolToObject(r, "complete", true);
	cJSON_AddStringToObject(r, "encoded_token", enc);
	cJSON_AddStringToObject(r, "encoded_root_token", enc);
	cJSON_AddStringToObject(r, "pgp_fingerprint", gr.fpr);
	cJSON_AddStringToObject(r, "otp", "");
	cJSON_AddNumberToObject(r, "otp_length", CS_ROOT_OTP_LEN);
	free(enc);
	req->raw = r;
	gr_clear();
	cs_info("core: root generation finished");
	return 0;
}

static const struct cs_field attempt_fields[] = {
    {.name = "otp",
     .type = CS_FIELD_STRING,
     .desc = "one-time pad (otp_length characters); made when absent"},
    {.name = "pgp_key",
     .type = CS_FIELD_STRING,
     .desc = "PGP public key (base64) to encrypt the token"},
    {.name = "nonce", .type = CS_FIELD_STRING, .desc = "the attempt's nonce (to cancel it)"},
    {.name = NULL},
};

static const struct cs_field update_fields[] = {
    {.name = "key", .type = CS_FIELD_STRING, .desc = "one unseal key share, hex or base64"},
    {.name = "nonce", .type = CS_FIELD_STRING, .desc = "the attempt's nonce"},
    {.name = NULL},
};

/* Unauthenticated, as in Vault: it exists for when no token is left. */
static const struct cs_path generate_root_paths[] = {
    {.pattern = "generate-root/attempt",
     .fields = attempt_fields,
     .ops = {[CS_OP_READ] = attempt_read,
	     [CS_OP_UPDATE] = attempt_start,
	     [CS_OP_DELETE] = attempt_cancel},
     .flags = CS_PATH_UNAUTH,
     .synopsis = "start, read or cancel a root token generation"},
    {.pattern = "generate-root/update",
     .fields = update_fields,
     .ops = {[CS_OP_UPDATE] = update},
     .flags = CS_PATH_UNAUTH,
     .synopsis = "give one unseal key share to the root token generation"},
};

void cs_generate_root_register(struct cs_core *core)
{
	cs_pgp_init();
	(void)core;
	gr_clear();
	cs_sys_set_paths(CS_SYS_GENERATE_ROOT, generate_root_paths,
			 CS_ARRAY_LEN(generate_root_paths));
}
