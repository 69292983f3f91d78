/*
 * Key custody verbs, with the Vault CLI's flags and output (OpenBao's
 * command/operator_rekey.go and operator_generate_root.go are the reference):
 *
 *   custos operator rekey -init [-key-shares=5 -key-threshold=3] [-verify]
 *   custos operator rekey [-verify] -nonce=NONCE KEY | -        (one share; - = stdin)
 *   custos operator rekey -status [-verify]
 *   custos operator rekey -cancel [-verify] -nonce=NONCE
 *   custos operator rekey -backup-retrieve | -backup-delete
 *   custos operator generate-root -init [-otp=OTP]
 *   custos operator generate-root -nonce=NONCE KEY | -
 *   custos operator generate-root -status | -generate-otp | -cancel -nonce=NONCE
 *   custos operator generate-root -decode=ENCODED|- -otp=OTP
 *
 * Unlike the vault CLI, -cancel sends the attempt's nonce (the server refuses a cancel
 * without it), and generate-root needs -nonce when a key is given interactively too (the
 * unauthenticated status does not show the nonce). Exit codes as in Vault: 1 for flag or
 * argument errors, 2 for errors from the server.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/cli_internal.h"
#include "cli/families.h"
#include "cli/format.h"
#include "lib/util.h"

#define DEFAULT_OTP_LEN 28

static const struct flag keys_flags[] = {
    {"init", F_BOOL, OFF(k_init), C_REKEY | C_GENROOT, 0},
    {"cancel", F_BOOL, OFF(k_cancel), C_REKEY | C_GENROOT, 0},
    {"status", F_BOOL, OFF(k_status), C_REKEY | C_GENROOT, 0},
    {"nonce", F_STR, OFF(k_nonce), C_REKEY | C_GENROOT, 0},
    {"key-shares", F_INT, OFF(key_shares), C_REKEY, 0},
    {"key-threshold", F_INT, OFF(key_threshold), C_REKEY, 0},
    {"target", F_STR, OFF(k_target), C_REKEY, 0},
    {"verify", F_BOOL, OFF(k_verify), C_REKEY, 0},
    {"pgp-keys", F_STR, OFF(k_pgp_keys), C_REKEY | C_INIT, 0},
    {"root-token-pgp-key", F_STR, OFF(k_root_pgp_key), C_INIT, 0},
    {"backup", F_BOOL, OFF(k_backup), C_REKEY, 0},
    {"backup-delete", F_BOOL, OFF(k_backup_delete), C_REKEY, 0},
    {"backup-retrieve", F_BOOL, OFF(k_backup_retrieve), C_REKEY, 0},
    {"decode", F_STR, OFF(k_decode), C_GENROOT, 0},
    {"generate-otp", F_BOOL, OFF(k_generate_otp), C_GENROOT, 0},
    {"otp", F_STR, OFF(k_otp), C_GENROOT, 0},
    {"pgp-key", F_STR, OFF(k_pgp_key), C_GENROOT, 0},
};

static const struct usage keys_usages[] = {
    {C_REKEY,
     "Usage: custos operator rekey [options] [KEY]\n\n"
     "  Generates a new set of unseal key shares, optionally changing their number\n"
     "  and threshold. The old shares keep working until the rekey completes.\n\n"
     "      $ custos operator rekey -init -key-shares=5 -key-threshold=3 [-verify]\n"
     "      $ custos operator rekey -nonce=NONCE KEY      (repeat up to the threshold)\n"
     "      $ custos operator rekey -verify -nonce=VNONCE NEWKEY\n\n"
     "  -init              Start a rekey.\n"
     "  -key-shares=<int>  Number of new key shares (default 5).\n"
     "  -key-threshold=<int> Shares needed to unseal (default 3).\n"
     "  -verify            Require (or, with a key, give) verification of the new keys.\n"
     "  -nonce=<string>    The operation's nonce (printed by -init).\n"
     "  -status            Print the progress of the current rekey.\n"
     "  -cancel            Cancel the rekey (or, with -verify, restart verification);\n"
     "                     needs -nonce.\n"
     "  -pgp-keys=<files>  Comma-separated public key files (binary or base64), one per\n"
     "                     share: the new shares come back encrypted to them.\n"
     "  -backup            With -pgp-keys: keep the encrypted shares for -backup-retrieve.\n"
     "  -backup-retrieve   Print the PGP-encrypted backup of the new keys.\n"
     "  -backup-delete     Delete that backup.\n"},
    {C_GENROOT,
     "Usage: custos operator generate-root [options] [KEY]\n\n"
     "  Generates a new root token from a threshold of unseal key shares.\n\n"
     "      $ custos operator generate-root -init\n"
     "      $ custos operator generate-root -nonce=NONCE KEY  (repeat up to the threshold)\n"
     "      $ custos operator generate-root -decode=ENCODED -otp=OTP\n\n"
     "  -init              Start a root token generation (an OTP is made unless -otp).\n"
     "  -otp=<string>      OTP for -init or -decode.\n"
     "  -pgp-key=<file>    Encrypt the new token to this public key instead of an OTP.\n"
     "  -generate-otp      Print a fresh OTP of the right length.\n"
     "  -decode=<string>   Decode an encoded token with -otp (\"-\" reads stdin).\n"
     "  -nonce=<string>    The attempt's nonce (printed by -init).\n"
     "  -status            Print the progress of the current attempt.\n"
     "  -cancel            Cancel the attempt; needs -nonce.\n"},
};
const struct cs_cli_family cs_cli_keys_family = CS_CLI_FAMILY(keys_flags, keys_usages);

/* ------------------------------------------------------------------ helpers */

static void trim(char *s)
{
	char *k = s;
	while (isspace((unsigned char)*k))
		k++;
	memmove(s, k, strlen(k) + 1);
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cs_cli_get(o, k);
	return cJSON_IsString(v) ? v->valuestring : "";
}

static int jint(const cJSON *o, const char *k)
{
	const cJSON *v = cs_cli_get(o, k);
	return cJSON_IsNumber(v) ? v->valueint : 0;
}

static bool jbool(const cJSON *o, const char *k)
{
	return cJSON_IsTrue(cs_cli_get(o, k));
}

static void emit_table(struct cs_fmt_lines *l, bool header)
{
	struct cs_buf out = CS_BUF_INIT;
	if (header)
		cs_fmt_table(&out, l, "|");
	else
		cs_fmt_columns(&out, l, "|");
	cs_cli_emit(stdout, &out);
	cs_fmt_lines_free(l);
}

static void wrap_out(FILE *f, const char *text)
{
	struct cs_buf b = CS_BUF_INIT;
	cs_fmt_wrap(&b, text, 0);
	cs_cli_emit(f, &b);
}

/* The key argument: as given, "-" for stdin, or prompted on a terminal. 0 or exit code. */
static int read_key(struct cli *c, int argc, char **argv, int i, const char *prompt, char *key,
		    size_t cap)
{
	if (i < argc && strcmp(argv[i], "-") != 0) {
		snprintf(key, cap, "%s", argv[i]);
	} else {
		if (i >= argc && c->non_interactive) {
			fprintf(stderr, "Refusing to read from stdin with -non-interactive "
					"specified; specify the key as an argument\n");
			return 1;
		}
		bool tty = i >= argc && isatty(STDIN_FILENO);
		if (tty) {
			fputs(prompt, stdout);
			fflush(stdout);
		}
		if (cs_cli_read_secret_line(key, cap, tty) != 0 || !*key) {
			fprintf(stderr, "No key was read from standard input. Pass the key as an "
					"argument, \"-\" to read it from stdin, or run from a "
					"terminal.\n");
			return 1;
		}
	}
	trim(key);
	return 0;
}

/* Vault's PubKeyFileFlag: "keybase:NAME" is passed on (the server refuses it); otherwise
 * a file holding a base64 or binary public key, sent as base64. NULL after printing. */
static char *pgp_key_arg(const char *arg)
{
	if (strncmp(arg, "keybase:", 8) == 0)
		return strdup(arg);
	FILE *f = fopen(arg, "rb");
	if (!f) {
		fprintf(stderr, "Error reading PGP key file %s\n", arg);
		return NULL;
	}
	struct cs_buf b = CS_BUF_INIT;
	int rc = cs_cli_read_stream(f, &b);
	fclose(f);
	if (rc || !b.len) {
		cs_buf_free(&b);
		fprintf(stderr, "Error reading PGP key file %s\n", arg);
		return NULL;
	}
	char *text = cs_cli_trim_dup(b.data, b.len);
	size_t n = 0;
	uint8_t *dec = cs_b64_decode(text, strlen(text), &n);
	char *out;
	if (dec && n > 0) {
		out = text; /* already base64 */
	} else {
		free(text);
		out = cs_b64_encode((const uint8_t *)b.data, b.len);
	}
	free(dec);
	cs_buf_free(&b);
	return out;
}

int cs_cli_pgp_flags(struct cli *c, cJSON *body)
{
	if (c->k_pgp_keys && *c->k_pgp_keys) {
		/* comma-separated, one per share, as the vault CLI takes them */
		cJSON *a = cJSON_AddArrayToObject(body, "pgp_keys");
		char *list = strdup(c->k_pgp_keys), *save = NULL;
		for (char *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
			char *k = pgp_key_arg(p);
			if (!k) {
				free(list);
				return -1;
			}
			cJSON_AddItemToArray(a, cJSON_CreateString(k));
			free(k);
		}
		free(list);
	}
	if (c->k_root_pgp_key && *c->k_root_pgp_key) {
		char *k = pgp_key_arg(c->k_root_pgp_key);
		if (!k)
			return -1;
		cJSON_AddStringToObject(body, "root_token_pgp_key", k);
		free(k);
	}
	return 0;
}

/* ------------------------------------------------------------------ rekey */

static int print_rekey_status(struct cli *c, const cJSON *s, bool verify)
{
	if (cs_cli_is_json(c)) {
		cs_cli_print_json(s, false);
		return 0;
	}
	struct cs_fmt_lines l = {0};
	cs_fmt_lines_add(&l, "Key | Value");
	if (verify) {
		cs_fmt_lines_add(&l, "Started | %s", jbool(s, "started") ? "true" : "false");
		cs_fmt_lines_add(&l, "New Shares | %d", jint(s, "n"));
		cs_fmt_lines_add(&l, "New Threshold | %d", jint(s, "t"));
		cs_fmt_lines_add(&l, "Verification Nonce | %s", jstr(s, "nonce"));
		cs_fmt_lines_add(&l, "Verification Progress | %d/%d", jint(s, "progress"),
				 jint(s, "t"));
	} else {
		cs_fmt_lines_add(&l, "Nonce | %s", jstr(s, "nonce"));
		cs_fmt_lines_add(&l, "Started | %s", jbool(s, "started") ? "true" : "false");
		if (jbool(s, "started")) {
			int p = jint(s, "progress"), req = jint(s, "required");
			cs_fmt_lines_add(&l, "Progress | %d/%d%s", p, req,
					 p == req ? " (verification in progress)" : "");
			if (jint(s, "n") > 0)
				cs_fmt_lines_add(&l, "New Shares | %d", jint(s, "n"));
			if (jint(s, "t") > 0)
				cs_fmt_lines_add(&l, "New Threshold | %d", jint(s, "t"));
			cs_fmt_lines_add(&l, "Verification Required | %s",
					 jbool(s, "verification_required") ? "true" : "false");
			if (*jstr(s, "verification_nonce"))
				cs_fmt_lines_add(&l, "Verification Nonce | %s",
						 jstr(s, "verification_nonce"));
		}
		const cJSON *fp = cs_cli_get(s, "pgp_fingerprints");
		if (cJSON_GetArraySize(fp) > 0) {
			struct cs_buf v = CS_BUF_INIT;
			cs_fmt_value(&v, fp);
			cs_fmt_lines_add(&l, "PGP Fingerprints | %s", v.data);
			cs_fmt_lines_add(&l, "Backup | %s", jbool(s, "backup") ? "true" : "false");
			cs_buf_free(&v);
		}
	}
	emit_table(&l, true);
	return 0;
}

static int rekey_status(struct cli *c)
{
	struct cs_client_resp r;
	const char *path = c->k_verify ? "sys/rekey/verify" : "sys/rekey/init";
	int code =
	    (cs_cli_call(c, "GET", path, NULL, NULL, &r, "Error reading rekey status") ? 0 : 2);
	if (!code)
		code = print_rekey_status(c, r.json, c->k_verify);
	cs_client_resp_free(&r);
	return code;
}

static int rekey_init(struct cli *c)
{
	cJSON *body = cJSON_CreateObject();
	cJSON_AddNumberToObject(body, "secret_shares", (double)(c->key_shares ? c->key_shares : 5));
	cJSON_AddNumberToObject(body, "secret_threshold",
				(double)(c->key_threshold ? c->key_threshold : 3));
	cJSON_AddBoolToObject(body, "backup", c->k_backup);
	cJSON_AddBoolToObject(body, "require_verification", c->k_verify);
	if (cs_cli_pgp_flags(c, body)) {
		cJSON_Delete(body);
		return 1;
	}
	struct cs_client_resp r;
	int code =
	    (cs_cli_call(c, "PUT", "sys/rekey/init", NULL, body, &r, "Error initializing rekey")
		 ? 0
		 : 2);
	cJSON_Delete(body);
	if (!code) {
		if (!cs_cli_is_json(c)) {
			wrap_out(stderr,
				 "WARNING! If you lose the keys after they are returned, there "
				 "is no recovery. Keep them safe.");
			fputc('\n', stdout);
		}
		code = print_rekey_status(c, r.json, false);
	}
	cs_client_resp_free(&r);
	return code;
}

/* DELETE `path` with the attempt's nonce (the server refuses a cancel without it). */
static int cancel_attempt(struct cli *c, const char *path, const char *errprefix,
			  const char *success)
{
	if (!c->k_nonce || !*c->k_nonce) {
		fprintf(stderr, "Missing nonce value: cancelling needs the attempt's nonce; "
				"specify it via the -nonce flag\n");
		return 1;
	}
	struct cs_buf q = CS_BUF_INIT;
	cs_buf_printf(&q, "nonce=%s", c->k_nonce);
	struct cs_client_resp r;
	int code = cs_cli_call(c, "DELETE", path, q.data, NULL, &r, errprefix) ? 0 : 2;
	cs_buf_free(&q);
	cs_client_resp_free(&r);
	if (!code)
		printf("%s\n", success);
	return code;
}

static int rekey_cancel(struct cli *c)
{
	return cancel_attempt(c, c->k_verify ? "sys/rekey/verify" : "sys/rekey/init",
			      "Error canceling rekey",
			      "Success! Canceled rekeying (if it was started)");
}

static int rekey_provide(struct cli *c, int argc, char **argv, int i)
{
	const char *path = c->k_verify ? "sys/rekey/verify" : "sys/rekey/init";
	struct cs_client_resp r;
	int code =
	    (cs_cli_call(c, "GET", path, NULL, NULL, &r, "Error getting rekey status") ? 0 : 2);
	if (code) {
		cs_client_resp_free(&r);
		return code;
	}
	bool started = jbool(r.json, "started");
	char nonce[128];
	snprintf(nonce, sizeof nonce, "%s", jstr(r.json, "nonce"));
	int n = jint(r.json, "n"), t = jint(r.json, "t");
	bool vreq = jbool(r.json, "verification_required");
	cs_client_resp_free(&r);
	if (!started) {
		wrap_out(stderr, "No rekey is in progress. Start a rekey process by running "
				 "\"custos operator rekey -init\".");
		return 1;
	}
	if (c->k_nonce && *c->k_nonce)
		snprintf(nonce, sizeof nonce, "%s", c->k_nonce);
	if (i >= argc && !c->non_interactive)
		printf("Rekey operation nonce: %s\n", nonce);
	char key[1024];
	code = read_key(c, argc, argv, i, "Unseal Key (will be hidden): ", key, sizeof key);
	if (code)
		return code;
	if (!*nonce) {
		cs_zero(key, sizeof key);
		fprintf(stderr, "Missing nonce value: specify it via the -nonce flag\n");
		return 1;
	}
	cJSON *body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "key", key);
	cJSON_AddStringToObject(body, "nonce", nonce);
	cs_zero(key, sizeof key);
	code = (cs_cli_call(c, "PUT", c->k_verify ? "sys/rekey/verify" : "sys/rekey/update", NULL,
			    body, &r, "Error posting unseal key")
		    ? 0
		    : 2);
	cs_client_json_free_secure(body);
	if (code) {
		cs_client_resp_free(&r);
		return code;
	}
	if (!jbool(r.json, "complete")) {
		cs_client_resp_free(&r);
		return rekey_status(c);
	}
	if (c->k_verify) {
		cs_client_resp_free(&r);
		wrap_out(stdout, "Rekey verification successful. The rekey operation is complete "
				 "and the new keys are now active.");
		return 0;
	}
	if (cs_cli_is_json(c)) {
		cs_cli_print_json(r.json, false);
		cs_client_resp_free(&r);
		return 0;
	}
	struct cs_buf b = CS_BUF_INIT;
	const cJSON *keys = cs_cli_get(r.json, "keys"), *b64 = cs_cli_get(r.json, "keys_base64");
	int nk = cJSON_GetArraySize(keys);
	bool use_b64 = cJSON_GetArraySize(b64) == nk;
	cs_buf_printf(&b, "\n");
	for (int k = 0; k < nk; k++) {
		const cJSON *v = cJSON_GetArrayItem(use_b64 ? b64 : keys, k);
		const cJSON *f = cJSON_GetArrayItem(cs_cli_get(r.json, "pgp_fingerprints"), k);
		if (cJSON_IsString(f))
			cs_buf_printf(&b, "Key %d fingerprint: %s; value: %s\n", k + 1,
				      f->valuestring, cJSON_IsString(v) ? v->valuestring : "");
		else
			cs_buf_printf(&b, "Key %d: %s\n", k + 1,
				      cJSON_IsString(v) ? v->valuestring : "");
	}
	cs_buf_printf(&b, "\nOperation nonce: %s\n", jstr(r.json, "nonce"));
	vreq = vreq || jbool(r.json, "verification_required");
	char vnonce[128];
	snprintf(vnonce, sizeof vnonce, "%s", jstr(r.json, "verification_nonce"));
	cs_client_resp_free(&r);
	fwrite(b.data, 1, b.len, stdout);
	cs_buf_free_secure(&b);
	char text[1024];
	if (vreq) {
		snprintf(
		    text, sizeof text,
		    "custos has created a new unseal key, split into %d key shares and a key "
		    "threshold of %d. These will not be active until after verification is "
		    "complete. Please securely distribute the key shares printed above. When "
		    "custos is re-sealed, restarted, or stopped, you must supply at least %d of "
		    "these keys to unseal it before it can start servicing requests.",
		    n, t, t);
		fputc('\n', stdout);
		wrap_out(stdout, text);
		fputc('\n', stdout);
		wrap_out(stderr,
			 "Again, these key shares are _not_ valid until verification is "
			 "performed. Do not lose or discard your current key shares until "
			 "after verification is complete or you will be unable to unseal "
			 "custos. If you cancel the rekey process or seal custos before "
			 "verification is complete the new shares will be discarded and the "
			 "current shares will remain valid.");
		fputc('\n', stdout);
		wrap_out(stderr, "The current verification status, including initial nonce, is "
				 "shown below.");
		fputc('\n', stdout);
		c->k_verify = true;
		return rekey_status(c);
	}
	snprintf(text, sizeof text,
		 "custos unseal keys rekeyed to %d key shares and a key threshold of %d. Please "
		 "securely distribute the key shares printed above. When custos is re-sealed, "
		 "restarted, or stopped, you must supply at least %d of these keys to unseal it "
		 "before it can start servicing requests.",
		 n, t, t);
	fputc('\n', stdout);
	wrap_out(stdout, text);
	return 0;
}

static int rekey_backup(struct cli *c, bool del)
{
	struct cs_client_resp r;
	int code = (cs_cli_call(c, del ? "DELETE" : "GET", "sys/rekey/backup", NULL, NULL, &r,
				del ? "Error deleting rekey backed up keys"
				    : "Error retrieving rekey backed up keys")
			? 0
			: 2);
	if (!code && del)
		printf("Success! Deleted backed up keys (if they existed)\n");
	else if (!code)
		code = cs_cli_output_secret(c, r.json);
	cs_client_resp_free(&r);
	return code;
}

int cs_cli_operator_rekey(struct cli *c, int argc, char **argv, int start)
{
	int code;
	int i = cs_cli_start(c, C_REKEY, argc, argv, start, 0, 1, "0-1", &code);
	if (i < 0)
		return code;
	if (c->k_target && strcmp(c->k_target, "barrier") != 0) {
		fprintf(stderr, "Error: recovery keys are not supported (Shamir seal): %s\n",
			c->k_target);
		return 1;
	}
	if (c->k_backup_delete)
		return rekey_backup(c, true);
	if (c->k_backup_retrieve)
		return rekey_backup(c, false);
	if (c->k_cancel)
		return rekey_cancel(c);
	if (c->k_init)
		return rekey_init(c);
	if (c->k_status)
		return rekey_status(c);
	return rekey_provide(c, argc, argv, i);
}

/* ------------------------------------------------------------------ generate-root */

static int print_root_status(struct cli *c, const cJSON *s)
{
	if (cs_cli_is_json(c)) {
		cs_cli_print_json(s, false);
		return 0;
	}
	struct cs_fmt_lines l = {0};
	cs_fmt_lines_add(&l, "Nonce | %s", jstr(s, "nonce"));
	cs_fmt_lines_add(&l, "Started | %s", jbool(s, "started") ? "true" : "false");
	cs_fmt_lines_add(&l, "Progress | %d/%d", jint(s, "progress"), jint(s, "required"));
	cs_fmt_lines_add(&l, "Complete | %s", jbool(s, "complete") ? "true" : "false");
	if (*jstr(s, "pgp_fingerprint"))
		cs_fmt_lines_add(&l, "PGP Fingerprint | %s", jstr(s, "pgp_fingerprint"));
	if (*jstr(s, "encoded_token"))
		cs_fmt_lines_add(&l, "Encoded Token | %s", jstr(s, "encoded_token"));
	else if (*jstr(s, "encoded_root_token"))
		cs_fmt_lines_add(&l, "Encoded Root Token | %s", jstr(s, "encoded_root_token"));
	if (*jstr(s, "otp")) {
		wrap_out(stderr, "A One-Time-Password has been generated for you and is shown in "
				 "the OTP field. You will need this value to decode the resulting "
				 "root token, so keep it safe.");
		cs_fmt_lines_add(&l, "OTP | %s", jstr(s, "otp"));
	}
	if (jint(s, "otp_length"))
		cs_fmt_lines_add(&l, "OTP Length | %d", jint(s, "otp_length"));
	emit_table(&l, false);
	return 0;
}

static int root_status(struct cli *c, cJSON **out)
{
	struct cs_client_resp r;
	int code = (cs_cli_call(c, "GET", "sys/generate-root/attempt", NULL, NULL, &r,
				"Error getting root generation status")
			? 0
			: 2);
	if (!code && out) {
		*out = r.json;
		r.json = NULL;
	} else if (!code) {
		code = print_root_status(c, r.json);
	}
	cs_client_resp_free(&r);
	return code;
}

/* Token = base64(unpadded) decode of `enc`, XOR the OTP (Vault's roottoken.DecodeToken
 * for an otp_length > 0). Returns 0 or 1 after printing. */
static int decode_token(const char *enc, const char *otp, char **token)
{
	char padded[512];
	size_t l = strlen(enc);
	if (l + 3 >= sizeof padded) {
		fprintf(stderr, "Error decoding root token: encoded value too long\n");
		return 1;
	}
	snprintf(padded, sizeof padded, "%s%s", enc, l % 4 == 2 ? "==" : l % 4 == 3 ? "=" : "");
	size_t n = 0;
	uint8_t *b = cs_b64_decode(padded, strlen(padded), &n);
	if (!b) {
		fprintf(stderr, "Error decoding root token: error decoding base64'd token\n");
		return 1;
	}
	if (n != strlen(otp)) {
		cs_zero(b, n);
		free(b);
		fprintf(stderr,
			"Error decoding root token: error xoring token: length of byte "
			"slices is not equivalent: %zu != %zu\n",
			n, strlen(otp));
		return 1;
	}
	char *t = malloc(n + 1);
	if (!t)
		abort();
	for (size_t i = 0; i < n; i++)
		t[i] = (char)(b[i] ^ (uint8_t)otp[i]);
	t[n] = '\0';
	cs_zero(b, n);
	free(b);
	*token = t;
	return 0;
}

static int root_decode(struct cli *c)
{
	if (!c->k_otp || !*c->k_otp) {
		fprintf(stderr, "Missing otp: use -otp to supply it\n");
		return 1;
	}
	char enc[512];
	if (strcmp(c->k_decode, "-") == 0) {
		if (c->non_interactive || cs_cli_read_secret_line(enc, sizeof enc, false) != 0 ||
		    !*enc) {
			fprintf(stderr,
				"Missing encoded value. When using -decode=\"-\" value must "
				"be passed via stdin.\n");
			return 1;
		}
	} else {
		snprintf(enc, sizeof enc, "%s", c->k_decode);
	}
	trim(enc);
	char *token = NULL;
	int code = decode_token(enc, c->k_otp, &token);
	if (code)
		return code;
	if (cs_cli_is_json(c)) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "token", token);
		cs_cli_print_json(o, false);
		cs_client_json_free_secure(o);
	} else {
		printf("%s\n", token);
	}
	cs_zero(token, strlen(token));
	free(token);
	return 0;
}

static int root_init(struct cli *c)
{
	if (c->k_otp && *c->k_otp && c->k_pgp_key && *c->k_pgp_key) {
		fprintf(stderr, "Error initializing: cannot specify both -otp and -pgp-key\n");
		return 1;
	}
	cJSON *body = cJSON_CreateObject();
	if (c->k_otp && *c->k_otp)
		cJSON_AddStringToObject(body, "otp", c->k_otp);
	if (c->k_pgp_key && *c->k_pgp_key) {
		char *k = pgp_key_arg(c->k_pgp_key);
		if (!k) {
			cJSON_Delete(body);
			return 1;
		}
		cJSON_AddStringToObject(body, "pgp_key", k);
		free(k);
	}
	struct cs_client_resp r;
	int code = (cs_cli_call(c, "PUT", "sys/generate-root/attempt", NULL, body, &r,
				"Error initializing root generation")
			? 0
			: 2);
	cs_client_json_free_secure(body);
	if (!code)
		code = print_root_status(c, r.json);
	cs_client_resp_free(&r);
	return code;
}

static int root_cancel(struct cli *c)
{
	return cancel_attempt(c, "sys/generate-root/attempt",
			      "Error canceling root token generation",
			      "Success! Root token generation canceled (if it was started)");
}

static int root_provide(struct cli *c, int argc, char **argv, int i)
{
	cJSON *st = NULL;
	int code = root_status(c, &st);
	if (code)
		return code;
	bool started = jbool(st, "started");
	int otp_len = jint(st, "otp_length");
	cJSON_Delete(st);
	if (!started) {
		wrap_out(stderr, "No root generation is in progress. Start a root generation by "
				 "running \"custos operator generate-root -init\".");
		char text[256];
		snprintf(text, sizeof text,
			 "If starting root generation using the OTP method and generating your "
			 "own OTP, the length of the OTP string needs to be %d characters in "
			 "length.",
			 otp_len);
		wrap_out(stderr, text);
		return 1;
	}
	if (!c->k_nonce || !*c->k_nonce) {
		fprintf(stderr, "Missing nonce value: specify it via the -nonce flag (printed "
				"by -init)\n");
		return 1;
	}
	char key[1024];
	code = read_key(c, argc, argv, i, "Unseal Key (will be hidden): ", key, sizeof key);
	if (code)
		return code;
	cJSON *body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "key", key);
	cJSON_AddStringToObject(body, "nonce", c->k_nonce);
	cs_zero(key, sizeof key);
	struct cs_client_resp r;
	code = (cs_cli_call(c, "PUT", "sys/generate-root/update", NULL, body, &r,
			    "Error posting unseal key")
		    ? 0
		    : 2);
	cs_client_json_free_secure(body);
	if (!code)
		code = print_root_status(c, r.json);
	cs_client_resp_free(&r);
	return code;
}

int cs_cli_operator_generate_root(struct cli *c, int argc, char **argv, int start)
{
	int code;
	int i = cs_cli_begin(c, C_GENROOT, argc, argv, start, &code);
	if (i < 0)
		return code;
	if (cs_cli_bad_nargs(argc - i, 0, 1, "0-1"))
		return 1;
	if (c->k_decode && *c->k_decode)
		return root_decode(c); /* local: no server needed */
	if (cs_cli_make_client(c))
		return 2;
	if (c->k_generate_otp) {
		cJSON *st = NULL;
		code = root_status(c, &st);
		if (code)
			return code;
		int n = jint(st, "otp_length");
		cJSON_Delete(st);
		if (n <= 0 || n > 256)
			n = DEFAULT_OTP_LEN;
		char otp[257];
		cs_random_base62(otp, (size_t)n);
		otp[n] = '\0';
		if (cs_cli_is_json(c)) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "otp", otp);
			cJSON_AddNumberToObject(o, "otp_length", n);
			cs_cli_print_json(o, false);
			cs_client_json_free_secure(o);
		} else {
			printf("%s\n", otp);
		}
		cs_zero(otp, sizeof otp);
		return 0;
	}
	if (c->k_cancel)
		return root_cancel(c);
	if (c->k_init)
		return root_init(c);
	if (c->k_status)
		return root_status(c, NULL);
	return root_provide(c, argc, argv, i);
}
