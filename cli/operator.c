/*
 * `operator init|unseal|seal`, the `operator` subcommand table (its other verbs live in
 * operator_keys.c, keys.c and raft.c), and `status`. The seal-status table is shared by
 * unseal and status.
 */
#include <ctype.h>
#include <signal.h>
#include <string.h>

#include "cli/cli_internal.h"
#include "cli/families.h"
#include "cli/format.h"

#define DEFAULT_KEY_SHARES    5
#define DEFAULT_KEY_THRESHOLD 3

/* ------------------------------------------------------------------ flags & usage */

static const struct flag operator_flags[] = {
    {"field", F_STR, OFF(field), C_STATUS, 0},
    {"key-shares", F_INT, OFF(key_shares), C_INIT, 0},
    {"n", F_INT, OFF(key_shares), C_INIT, 0},
    {"key-threshold", F_INT, OFF(key_threshold), C_INIT, 0},
    {"t", F_INT, OFF(key_threshold), C_INIT, 0},
    {"recovery-shares", F_INT, OFF(recovery_shares), C_INIT, 0},
    {"recovery-threshold", F_INT, OFF(recovery_threshold), C_INIT, 0},
    {"status", F_BOOL, OFF(init_status), C_INIT, 0},
    {"reset", F_BOOL, OFF(reset), C_UNSEAL, 0},
    {"migrate", F_BOOL, OFF(migrate), C_UNSEAL, 0},
};

static const struct usage operator_usages[] = {
    {C_INIT, "Usage: custos operator init [options]\n\n"
	     "  Initializes the server: generates the root key, splits it into key shares\n"
	     "  and prints them with the initial root token.\n\n"
	     "  -key-shares=<int>      Number of key shares (default 5).\n"
	     "  -key-threshold=<int>   Shares required to unseal (default 3).\n"
	     "  -status                Print the init status; exit 0 if initialized, 2 if not.\n"},
    {C_UNSEAL, "Usage: custos operator unseal [options] [KEY]\n\n"
	       "  Provides one unseal key share. Without KEY it is read without echo from a\n"
	       "  terminal, or as one line from standard input.\n\n"
	       "  -reset                 Discard previously provided shares.\n"},
    {C_SEAL, "Usage: custos operator seal [options]\n\n  Seals the server.\n"},
    {C_STATUS, "Usage: custos status [options]\n\n"
	       "  Prints the seal status. Exit code 0 unsealed, 2 sealed, 1 error.\n"},
};

const struct cs_cli_family cs_cli_operator_family = CS_CLI_FAMILY(operator_flags, operator_usages);

static const char usage_operator[] =
    "Usage: custos operator <subcommand> [options] [args]\n"
    "\n"
    "Subcommands:\n"
    "    generate-root  Generates a new root token from unseal keys\n"
    "    init           Initializes a server\n"
    "    key-status     Provides information about the active encryption key\n"
    "    raft           Manages the raft cluster (join, peers, snapshots)\n"
    "    rekey          Generates new unseal keys\n"
    "    rotate         Rotates the underlying encryption key\n"
    "    seal           Seals the server\n"
    "    step-down      Forces the active node to give up leadership\n"
    "    unseal         Unseals the server\n";

/* ------------------------------------------------------------------ seal status */

static void copy_if(cJSON *dst, const cJSON *src, const char *k)
{
	const cJSON *v = cs_cli_get(src, k);
	if (v)
		cJSON_AddItemToObject(dst, k, cJSON_Duplicate(v, true));
}

static bool errors_contain(const struct cs_client_resp *r, const char *needle)
{
	const cJSON *errs = cs_cli_get(r->json, "errors");
	for (const cJSON *e = cJSON_IsArray(errs) ? errs->child : NULL; e; e = e->next)
		if (cJSON_IsString(e) && strstr(e->valuestring, needle))
			return true;
	return false;
}

/* Vault's OutputSealStatus: seal-status plus sys/leader, as a table or JSON. */
static int output_seal_status(struct cli *c, const cJSON *status, bool *sealed)
{
	struct cs_client_resp lr;
	int rc = cs_client_request(&c->client, "GET", "sys/leader", NULL, NULL, &lr);
	cJSON *st = cJSON_Duplicate(status, true);
	*sealed = cJSON_IsTrue(cs_cli_get(status, "sealed"));
	bool ha = false, self = false;
	if (rc == 0 && cs_client_resp_ok(&lr) && cJSON_IsObject(lr.json)) {
		ha = cJSON_IsTrue(cs_cli_get(lr.json, "ha_enabled"));
		self = cJSON_IsTrue(cs_cli_get(lr.json, "is_self"));
	} else if (rc == 0 && errors_contain(&lr, "Vault is sealed")) {
		/* Sealed HA nodes cannot answer sys/leader; Vault masks that. */
		ha = true;
	} else {
		cs_cli_api_error(&lr, "Error checking leader status");
		cs_client_resp_free(&lr);
		cJSON_Delete(st);
		return 1;
	}
	cJSON_AddBoolToObject(st, "ha_enabled", ha);
	if (self)
		cJSON_AddBoolToObject(st, "is_self", true);
	if (cJSON_IsObject(lr.json) && cs_client_resp_ok(&lr)) {
		const cJSON *at = cs_cli_get(lr.json, "active_time");
		if (cJSON_IsString(at) && strncmp(at->valuestring, "0001-01-01", 10) != 0)
			copy_if(st, lr.json, "active_time");
		static const char *const strs[] = {"leader_address", "leader_cluster_address"};
		for (size_t i = 0; i < CS_ARRAY_LEN(strs); i++) {
			const cJSON *v = cs_cli_get(lr.json, strs[i]);
			if (cJSON_IsString(v) && *v->valuestring)
				copy_if(st, lr.json, strs[i]);
		}
		static const char *const nums[] = {"raft_committed_index", "raft_applied_index"};
		for (size_t i = 0; i < CS_ARRAY_LEN(nums); i++) {
			const cJSON *v = cs_cli_get(lr.json, nums[i]);
			if (cJSON_IsNumber(v) && v->valuedouble > 0)
				copy_if(st, lr.json, nums[i]);
		}
	}
	cs_client_resp_free(&lr);

	int code = 0;
	if (c->field && *c->field) {
		code = cs_cli_print_field(c, st, c->field, false, "seal status");
	} else if (cs_cli_is_json(c)) {
		cs_cli_print_json(st, false);
	} else {
		struct cs_buf b = CS_BUF_INIT;
		cs_fmt_seal_status_table(&b, st);
		cs_cli_emit(stdout, &b);
	}
	cJSON_Delete(st);
	return code;
}

/* ------------------------------------------------------------------ operator */

/* `operator init -status`: exit 0 if initialized, 2 if not, 1 on error. */
static int init_status(struct cli *c)
{
	struct cs_client_resp r;
	if (cs_client_request(&c->client, "GET", "sys/init", NULL, NULL, &r) != 0 ||
	    !cs_client_resp_ok(&r)) {
		cs_cli_api_error(&r, "Error checking init status");
		cs_client_resp_free(&r);
		return 1; /* 2 means "not initialized" here */
	}
	bool inited = cJSON_IsTrue(cs_cli_get(r.json, "initialized"));
	if (cs_cli_is_json(c)) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddBoolToObject(o, "initialized", inited);
		cs_cli_print_json(o, false);
		cJSON_Delete(o);
	} else {
		printf("%s\n", inited ? "Vault is initialized" : "Vault is not initialized");
	}
	cs_client_resp_free(&r);
	return inited ? 0 : 2;
}

/* The sys/init answer as Vault's machineInit struct, in its field order. */
static int init_output_json(struct cli *c, const cJSON *resp)
{
	const cJSON *keys = cs_cli_get(resp, "keys"), *b64 = cs_cli_get(resp, "keys_base64");
	const cJSON *rkeys = cs_cli_get(resp, "recovery_keys");
	const cJSON *rb64 = cs_cli_get(resp, "recovery_keys_base64");
	const cJSON *root = cs_cli_get(resp, "root_token");
	int nkeys = cJSON_GetArraySize(keys);

	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "unseal_keys_b64",
			      cJSON_IsArray(b64) ? cJSON_Duplicate(b64, true)
						 : cJSON_CreateArray());
	cJSON_AddItemToObject(o, "unseal_keys_hex",
			      cJSON_IsArray(keys) ? cJSON_Duplicate(keys, true)
						  : cJSON_CreateArray());
	cJSON_AddNumberToObject(o, "unseal_shares", nkeys ? (double)c->key_shares : 1);
	cJSON_AddNumberToObject(o, "unseal_threshold", nkeys ? (double)c->key_threshold : 1);
	cJSON_AddItemToObject(o, "recovery_keys_b64",
			      cJSON_IsArray(rb64) ? cJSON_Duplicate(rb64, true)
						  : cJSON_CreateArray());
	cJSON_AddItemToObject(o, "recovery_keys_hex",
			      cJSON_IsArray(rkeys) ? cJSON_Duplicate(rkeys, true)
						   : cJSON_CreateArray());
	cJSON_AddNumberToObject(o, "recovery_keys_shares", (double)c->recovery_shares);
	cJSON_AddNumberToObject(o, "recovery_keys_threshold", (double)c->recovery_threshold);
	cJSON_AddStringToObject(o, "root_token", cJSON_IsString(root) ? root->valuestring : "");
	cs_cli_print_json(o, false);
	cs_client_json_free_secure(o);
	return 0;
}

/* The sys/init answer as Vault's table output: the keys, the root token, the advice. */
static int init_output_table(struct cli *c, const cJSON *resp)
{
	const cJSON *keys = cs_cli_get(resp, "keys"), *b64 = cs_cli_get(resp, "keys_base64");
	const cJSON *rkeys = cs_cli_get(resp, "recovery_keys");
	const cJSON *rb64 = cs_cli_get(resp, "recovery_keys_base64");
	const cJSON *root = cs_cli_get(resp, "root_token");
	int nkeys = cJSON_GetArraySize(keys), nrkeys = cJSON_GetArraySize(rkeys);

	struct cs_buf b = CS_BUF_INIT;
	bool use_b64 = cJSON_GetArraySize(b64) == nkeys;
	for (int k = 0; k < nkeys; k++) {
		const cJSON *v = cJSON_GetArrayItem(use_b64 ? b64 : keys, k);
		cs_buf_printf(&b, "Unseal Key %d: %s\n", k + 1,
			      cJSON_IsString(v) ? v->valuestring : "");
	}
	bool use_rb64 = cJSON_GetArraySize(rb64) == nrkeys;
	for (int k = 0; k < nrkeys; k++) {
		const cJSON *v = cJSON_GetArrayItem(use_rb64 ? rb64 : rkeys, k);
		cs_buf_printf(&b, "Recovery Key %d: %s\n", k + 1,
			      cJSON_IsString(v) ? v->valuestring : "");
	}
	cs_buf_printf(&b, "\nInitial Root Token: %s\n",
		      cJSON_IsString(root) ? root->valuestring : "");
	struct cs_buf t = CS_BUF_INIT;
	if (nkeys > 0) {
		cs_buf_printf(
		    &t,
		    "custos initialized with %ld key shares and a key threshold of %ld. "
		    "Please securely distribute the key shares printed above. When "
		    "custos is re-sealed, restarted, or stopped, you must supply at least "
		    "%ld of these keys to unseal it before it can start servicing "
		    "requests.",
		    c->key_shares, c->key_threshold, c->key_threshold);
		cs_buf_putc(&b, '\n');
		cs_fmt_wrap(&b, t.data, 0);
		cs_buf_puts(&b, "\n\n");
		cs_buf_reset(&t);
		cs_buf_printf(&t,
			      "custos does not store the generated root key. Without at least %ld "
			      "keys to reconstruct the root key, custos will remain permanently "
			      "sealed!",
			      c->key_threshold);
		cs_fmt_wrap(&b, t.data, 0);
		cs_buf_puts(&b, "\n\n");
		cs_fmt_wrap(&b,
			    "It is possible to generate new unseal keys, provided you have a "
			    "quorum of existing unseal keys shares. See \"custos operator rekey\" "
			    "for more information.",
			    0);
	} else {
		cs_buf_puts(&b, "\nSuccess! Vault is initialized");
	}
	if (nrkeys > 0) {
		cs_buf_reset(&t);
		cs_buf_printf(&t,
			      "Recovery key initialized with %ld key shares and a key threshold of "
			      "%ld. Please securely distribute the key shares printed above.",
			      c->recovery_shares, c->recovery_threshold);
		cs_buf_puts(&b, "\n\n");
		cs_fmt_wrap(&b, t.data, 0);
	}
	cs_buf_free(&t);
	cs_cli_emit(stdout, &b);
	return 0;
}

static int cmd_init(struct cli *c, int argc, char **argv, int start)
{
	int code;
	int i = cs_cli_start(c, C_INIT, argc, argv, start, 0, 0, "0", &code);
	if (i < 0)
		return code;

	if (c->init_status)
		return init_status(c);

	struct cs_client_resp r;

	if (cs_client_request(&c->client, "GET", "sys/seal-status", NULL, NULL, &r) != 0 ||
	    !cs_client_resp_ok(&r)) {
		cs_cli_api_error(&r, NULL);
		cs_client_resp_free(&r);
		return 2;
	}
	bool recovery = cJSON_IsTrue(cs_cli_get(r.json, "recovery_seal"));
	cs_client_resp_free(&r);
	if (!recovery) {
		if (c->key_shares == 0)
			c->key_shares = DEFAULT_KEY_SHARES;
		if (c->key_threshold == 0)
			c->key_threshold = DEFAULT_KEY_THRESHOLD;
		c->recovery_shares = 0;
		c->recovery_threshold = 0;
	} else if (c->recovery_shares == 0) { /* Vault's defaults for an auto seal */
		c->recovery_shares = DEFAULT_KEY_SHARES;
		if (c->recovery_threshold == 0)
			c->recovery_threshold = DEFAULT_KEY_THRESHOLD;
	}
	cJSON *body = cJSON_CreateObject();
	cJSON_AddNumberToObject(body, "secret_shares", (double)c->key_shares);
	cJSON_AddNumberToObject(body, "secret_threshold", (double)c->key_threshold);
	if (recovery) {
		cJSON_AddNumberToObject(body, "recovery_shares", (double)c->recovery_shares);
		cJSON_AddNumberToObject(body, "recovery_threshold", (double)c->recovery_threshold);
	}
	if (cs_cli_pgp_flags(c, body)) { /* cli/keys.c */
		cJSON_Delete(body);
		return 1;
	}
	int rc = cs_client_request(&c->client, "PUT", "sys/init", NULL, body, &r);
	cJSON_Delete(body);
	if (rc != 0 || !cs_client_resp_ok(&r) || !cJSON_IsObject(r.json)) {
		if (rc == 0 && cs_client_resp_ok(&r)) {
			fprintf(stderr, "Error initializing: unexpected response from server\n");
		} else {
			cs_cli_api_error(&r, "Error initializing");
		}
		cs_client_resp_free(&r);
		return 2;
	}

	code = cs_cli_is_json(c) ? init_output_json(c, r.json) : init_output_table(c, r.json);
	cs_client_resp_free(&r);
	return code;
}

static int cmd_unseal(struct cli *c, int argc, char **argv, int start)
{
	int code;
	int i = cs_cli_start(c, C_UNSEAL, argc, argv, start, 0, 1, "1", &code);
	if (i < 0)
		return code;

	struct cs_client_resp r;
	cJSON *body = cJSON_CreateObject();
	if (c->reset) {
		cJSON_AddBoolToObject(body, "reset", true);
		int rc = cs_client_request(&c->client, "PUT", "sys/unseal", NULL, body, &r);
		cJSON_Delete(body);
		if (rc != 0 || !cs_client_resp_ok(&r)) {
			cs_cli_api_error(&r, "Error resetting unseal process");
			cs_client_resp_free(&r);
			return 2;
		}
	} else {
		char key[1024];
		if (i < argc) {
			snprintf(key, sizeof key, "%s", argv[i]);
			/* TrimSpace, as Vault does. */
			char *k = key;
			while (isspace((unsigned char)*k))
				k++;
			memmove(key, k, strlen(k) + 1);
			size_t n = strlen(key);
			while (n > 0 && isspace((unsigned char)key[n - 1]))
				key[--n] = '\0';
		} else {
			if (c->non_interactive) {
				fprintf(stderr,
					"Refusing to read from stdin with -non-interactive "
					"specified; specify unseal key as an argument to this "
					"command\n");
				cJSON_Delete(body);
				return 1;
			}
			bool tty = isatty(STDIN_FILENO);
			if (tty) {
				fputs("Unseal Key (will be hidden): ", stdout);
				fflush(stdout);
			}
			int rc = cs_cli_read_secret_line(key, sizeof key, tty);
			if (rc != 0 || key[0] == '\0') {
				cs_zero(key, sizeof key);
				fprintf(stderr,
					"An error occurred attempting to ask for an unseal "
					"key: no key was read from standard input. Pass the key "
					"as the first argument, or run from a terminal.\n");
				cJSON_Delete(body);
				return 1;
			}
		}
		cJSON_AddStringToObject(body, "key", key);
		cs_zero(key, sizeof key);
		if (c->migrate)
			cJSON_AddBoolToObject(body, "migrate", true);
		int rc = cs_client_request(&c->client, "PUT", "sys/unseal", NULL, body, &r);
		cs_client_json_free_secure(body);
		if (rc != 0 || !cs_client_resp_ok(&r)) {
			cs_cli_api_error(&r, "Error unsealing");
			cs_client_resp_free(&r);
			return 2;
		}
	}
	if (!cJSON_IsObject(r.json)) {
		fprintf(stderr, "Error unsealing: unexpected response from server\n");
		cs_client_resp_free(&r);
		return 2;
	}
	bool sealed;
	code = output_seal_status(c, r.json, &sealed);
	cs_client_resp_free(&r);
	return code;
}

static int cmd_seal(struct cli *c, int argc, char **argv, int start)
{
	int code;
	int i = cs_cli_start(c, C_SEAL, argc, argv, start, 0, 0, "0", &code);
	if (i < 0)
		return code;
	struct cs_client_resp r;
	if (cs_client_request(&c->client, "PUT", "sys/seal", NULL, NULL, &r) != 0 ||
	    !cs_client_resp_ok(&r)) {
		cs_cli_api_error(&r, "Error sealing");
		cs_client_resp_free(&r);
		return 2;
	}
	cs_client_resp_free(&r);
	printf("Success! Vault is sealed.\n");
	return 0;
}

int cs_cli_operator(struct cli *c, int argc, char **argv)
{
	static const struct cs_cli_sub subs[] = {{"init", cmd_init},
						 {"unseal", cmd_unseal},
						 {"seal", cmd_seal},
						 {"raft", cs_cli_operator_raft},
						 {"step-down", cs_cli_step_down},
						 {"rotate", cs_cli_operator_rotate},
						 {"key-status", cs_cli_operator_key_status},
						 {"rekey", cs_cli_operator_rekey},
						 {"generate-root", cs_cli_operator_generate_root}};
	return cs_cli_dispatch(c, argc, argv, 2, subs, CS_ARRAY_LEN(subs), usage_operator);
}

/* ------------------------------------------------------------------ status */

int cs_cli_status(struct cli *c, int argc, char **argv, int start)
{
	int code;
	int i = cs_cli_begin(c, C_STATUS, argc, argv, start, &code);
	if (i < 0)
		return code;
	if (cs_cli_bad_nargs(argc - i, 0, 0, "0"))
		return 1;
	if (cs_cli_make_client(c))
		return 1; /* 2 is reserved for "sealed" here */
	struct cs_client_resp r;
	if (cs_client_request(&c->client, "GET", "sys/seal-status", NULL, NULL, &r) != 0 ||
	    !cs_client_resp_ok(&r) || !cJSON_IsObject(r.json)) {
		if (r.status && cs_client_resp_ok(&r))
			fprintf(stderr, "Error checking seal status: unexpected response\n");
		else
			cs_cli_api_error(&r, "Error checking seal status");
		cs_client_resp_free(&r);
		return 1;
	}
	bool sealed;
	code = output_seal_status(c, r.json, &sealed);
	cs_client_resp_free(&r);
	return sealed ? 2 : code;
}
