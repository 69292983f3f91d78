/*
 * `token create|lookup|renew|revoke|capabilities` against auth/token/.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli_internal.h"
#include "cli/families.h"
#include "cli/format.h"

/* ------------------------------------------------------------------ flags & usage */

static const struct flag token_flags[] = {
    {"field", F_STR, OFF(field), C_TCREATE | C_TLOOKUP, 0},
    {"id", F_STR, OFF(id), C_TCREATE, 0},
    {"display-name", F_STR, OFF(display_name), C_TCREATE, 0},
    {"ttl", F_DUR, OFF(ttl), C_TCREATE, 0},
    {"explicit-max-ttl", F_DUR, OFF(explicit_max_ttl), C_TCREATE, 0},
    {"period", F_DUR, OFF(period), C_TCREATE, 0},
    {"renewable", F_BOOL, OFF(renewable), C_TCREATE, OFF(renewable_set)},
    {"orphan", F_BOOL, OFF(orphan), C_TCREATE, 0},
    {"no-default-policy", F_BOOL, OFF(no_default_policy), C_TCREATE, 0},
    {"use-limit", F_INT, OFF(use_limit), C_TCREATE, 0},
    {"role", F_STR, OFF(role), C_TCREATE, 0},
    {"type", F_STR, OFF(token_type), C_TCREATE, 0},
    {"metadata", F_KV, OFF(metadata), C_TCREATE, 0},
    {"policy", F_LIST, OFF(policies), C_TCREATE, 0},
    {"entity-alias", F_STR, OFF(entity_alias), C_TCREATE, 0},
    {"accessor", F_BOOL, OFF(accessor), C_TLOOKUP | C_TRENEW | C_TREVOKE, 0},
    {"increment", F_DUR, OFF(increment), C_TRENEW, 0},
    {"i", F_DUR, OFF(increment), C_TRENEW, 0},
    {"self", F_BOOL, OFF(self), C_TREVOKE, 0},
    {"mode", F_STR, OFF(mode), C_TREVOKE, 0},
};

static const struct usage token_usages[] = {
    {C_TCREATE, "Usage: custos token create [options]\n\n"
		"  Creates a token (a child of the current one unless -orphan).\n\n"
		"  -policy=<string>             Policy to attach (repeatable).\n"
		"  -ttl=<dur>                   Initial TTL.\n"
		"  -explicit-max-ttl=<dur>      Hard maximum lifetime.\n"
		"  -period=<dur>                Make a periodic token.\n"
		"  -use-limit=<int>             Number of uses (0: unlimited).\n"
		"  -renewable                   Allow renewal (default true).\n"
		"  -orphan                      Create without a parent.\n"
		"  -no-default-policy           Do not attach the \"default\" policy.\n"
		"  -display-name=<string>       Name shown in audit logs.\n"
		"  -metadata=<key=value>        Metadata (repeatable).\n"
		"  -type=<string>               \"service\" (default) or \"batch\".\n"
		"  -role=<string>               Create against auth/token/create/ROLE.\n"
		"  -id=<string>                 Token value (needs sudo).\n"
		"  -entity-alias=<string>       Entity alias (with -role).\n"
		"  -field=<string>              Print only this field.\n"},
    {C_TLOOKUP, "Usage: custos token lookup [options] [TOKEN | ACCESSOR]\n\n"
		"  Shows a token's properties (the current token without an argument).\n\n"
		"  -accessor              The argument is an accessor.\n"
		"  -field=<string>        Print only this field.\n"},
    {C_TRENEW, "Usage: custos token renew [options] [TOKEN]\n\n"
	       "  Renews a token's lease (the current token without an argument).\n\n"
	       "  -increment=<dur>       Requested extension (alias -i).\n"
	       "  -accessor              The argument is an accessor.\n"},
    {C_TREVOKE, "Usage: custos token revoke [options] [TOKEN | ACCESSOR]\n\n"
		"  Revokes a token and, by default, all its children.\n\n"
		"  -self                  Revoke the current token.\n"
		"  -accessor              The argument is an accessor.\n"
		"  -mode=<string>         \"orphan\" (keep children) or \"path\" (revoke by\n"
		"                         creation path prefix).\n"},
    {C_TCAPS, "Usage: custos token capabilities [options] [TOKEN] PATH\n\n"
	      "  Prints a token's capabilities on PATH (the current token without TOKEN).\n"},
};

const struct cs_cli_family cs_cli_token_family = CS_CLI_FAMILY(token_flags, token_usages);

/* ------------------------------------------------------------------ token */

static void add_go_duration(cJSON *o, const char *k, int64_t secs)
{
	char d[48];
	cs_fmt_go_duration(secs, d, sizeof d);
	cJSON_AddStringToObject(o, k, d);
}

/* The answer of a token call: -field, or the secret. */
static int token_output(struct cli *c, const cJSON *secret)
{
	if (cs_cli_has_field(c))
		return cs_cli_print_field(c, secret, c->field, true, "secret");
	return cs_cli_output_secret(c, secret);
}

static int token_create(struct cli *c, int argc, char **argv, int start)
{
	int code;
	int i = cs_cli_begin(c, C_TCREATE, argc, argv, start, &code);
	if (i < 0)
		return code;
	if (cs_cli_bad_nargs(argc - i, 0, 0, "0"))
		return 1;
	const char *type = c->token_type ? c->token_type : "service";
	bool renewable = c->renewable_set ? c->renewable : true;
	if (strcmp(type, "batch") == 0)
		renewable = false;
	if (cs_cli_make_client(c))
		return 2;
	/* The Go api.TokenCreateRequest as the Vault CLI marshals it. */
	cJSON *body = cJSON_CreateObject();
	if (c->id && *c->id)
		cJSON_AddStringToObject(body, "id", c->id);
	if (c->policies && c->policies->child)
		cJSON_AddItemToObject(body, "policies", cJSON_Duplicate(c->policies, true));
	if (c->metadata && c->metadata->child)
		cJSON_AddItemToObject(body, "meta", cJSON_Duplicate(c->metadata, true));
	add_go_duration(body, "ttl", c->ttl);
	add_go_duration(body, "explicit_max_ttl", c->explicit_max_ttl);
	add_go_duration(body, "period", c->period);
	if (c->orphan)
		cJSON_AddBoolToObject(body, "no_parent", true);
	if (c->no_default_policy)
		cJSON_AddBoolToObject(body, "no_default_policy", true);
	cJSON_AddStringToObject(body, "display_name", c->display_name ? c->display_name : "");
	cJSON_AddNumberToObject(body, "num_uses", (double)c->use_limit);
	cJSON_AddBoolToObject(body, "renewable", renewable);
	cJSON_AddStringToObject(body, "type", type);
	cJSON_AddStringToObject(body, "entity_alias", c->entity_alias ? c->entity_alias : "");
	struct cs_buf p = CS_BUF_INIT;
	if (c->role && *c->role)
		cs_buf_printf(&p, "auth/token/create/%s", c->role);
	else
		cs_buf_puts(&p, "auth/token/create");
	struct cs_client_resp r;
	if (cs_cli_call(c, "POST", p.data, NULL, body, &r, "Error creating token"))
		code = token_output(c, r.json);
	else
		code = 2;
	cs_client_resp_free(&r);
	cs_buf_free(&p);
	cs_client_json_free_secure(body);
	return code;
}

/*
 * The token-or-accessor argument pattern of lookup and renew: no argument means the
 * client's own token (`self_path`, body `self_body`); with -accessor the argument goes
 * as "accessor" to `acc_path`; else as "token" to `tok_path`. `extra` (may be NULL) is
 * merged into the body. Prints "<what>: <error>" on failure. Exit code.
 */
static int token_call(struct cli *c, const char *arg, const char *self_method,
		      const char *self_path, const char *acc_path, const char *tok_path,
		      const cJSON *extra, const char *what)
{
	cJSON *body = extra ? cJSON_Duplicate(extra, true) : cJSON_CreateObject();
	const char *method = "PUT", *path;
	if (!arg) {
		method = self_method;
		path = self_path;
	} else if (c->accessor) {
		cJSON_AddStringToObject(body, "accessor", arg);
		path = acc_path;
	} else {
		cJSON_AddStringToObject(body, "token", arg);
		path = tok_path;
	}
	bool send_body = strcmp(method, "GET") != 0;
	struct cs_client_resp r;
	int code = 2;
	if (cs_cli_call(c, method, path, NULL, send_body ? body : NULL, &r, what)) {
		if (cJSON_IsObject(r.json))
			code = token_output(c, r.json);
		else
			code = 0;
	}
	cs_client_resp_free(&r);
	cs_client_json_free_secure(body);
	return code;
}

static int token_lookup(struct cli *c, int argc, char **argv, int start)
{
	int code;
	int i = cs_cli_begin(c, C_TLOOKUP, argc, argv, start, &code);
	if (i < 0)
		return code;
	int n = argc - i;
	if (c->accessor && n != 1) {
		fprintf(stderr, "%s arguments with -accessor (expected 1, got %d)\n",
			n < 1 ? "Not enough" : "Too many", n);
		return 1;
	}
	if (cs_cli_bad_nargs(n, 0, 1, "0-1"))
		return 1;
	if (cs_cli_make_client(c))
		return 2;
	char *arg = n ? cs_cli_trim_dup(argv[i], strlen(argv[i])) : NULL;
	code = token_call(c, arg && *arg ? arg : NULL, "GET", "auth/token/lookup-self",
			  "auth/token/lookup-accessor", "auth/token/lookup", NULL,
			  "Error looking up token");
	free(arg);
	return code;
}

static int token_renew(struct cli *c, int argc, char **argv, int start)
{
	int code;
	int i = cs_cli_start(c, C_TRENEW, argc, argv, start, 0, 1, "1", &code);
	if (i < 0)
		return code;
	char *arg = argc - i ? cs_cli_trim_dup(argv[i], strlen(argv[i])) : NULL;
	cJSON *extra = cJSON_CreateObject();
	cJSON_AddNumberToObject(extra, "increment", (double)c->increment);
	code = token_call(c, arg && *arg ? arg : NULL, "PUT", "auth/token/renew-self",
			  "auth/token/renew-accessor", "auth/token/renew", extra,
			  "Error renewing token");
	cJSON_Delete(extra);
	free(arg);
	return code;
}

static int token_revoke(struct cli *c, int argc, char **argv, int start)
{
	int code;
	int i = cs_cli_begin(c, C_TREVOKE, argc, argv, start, &code);
	if (i < 0)
		return code;
	int n = argc - i;
	const char *mode = c->mode ? c->mode : "";
	const char *err = NULL;
	if (*mode && strcmp(mode, "orphan") != 0 && strcmp(mode, "path") != 0) {
		fprintf(stderr, "Invalid mode: %s\n", mode);
		return 1;
	}
	if (c->self && n > 0) {
		fprintf(stderr, "Too many arguments with -self (expected 0, got %d)\n", n);
		return 1;
	}
	if (!c->self && n != 1) {
		fprintf(stderr, "%s arguments (expected 1 or -self, got %d)\n",
			n > 1 ? "Too many" : "Not enough", n);
		return 1;
	}
	if (c->self && c->accessor)
		err = "Cannot use -self with -accessor!";
	else if (c->self && *mode)
		err = "Cannot use -self with -mode!";
	else if (c->accessor && strcmp(mode, "orphan") == 0)
		err = "Cannot use -accessor with -mode=orphan!";
	else if (c->accessor && strcmp(mode, "path") == 0)
		err = "Cannot use -accessor with -mode=path!";
	if (err) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (cs_cli_make_client(c))
		return 2;
	char *tok = n ? cs_cli_trim_dup(argv[i], strlen(argv[i])) : NULL;
	cJSON *body = NULL;
	struct cs_buf p = CS_BUF_INIT;
	const char *method = "PUT";
	if (c->self) {
		cs_buf_puts(&p, "auth/token/revoke-self");
	} else if (c->accessor) {
		method = "POST";
		cs_buf_puts(&p, "auth/token/revoke-accessor");
		body = cJSON_CreateObject();
		cJSON_AddStringToObject(body, "accessor", tok);
	} else if (strcmp(mode, "path") == 0) {
		cs_buf_printf(&p, "sys/leases/revoke-prefix/%s", tok);
	} else {
		cs_buf_puts(&p, *mode ? "auth/token/revoke-orphan" : "auth/token/revoke");
		body = cJSON_CreateObject();
		cJSON_AddStringToObject(body, "token", tok);
	}
	struct cs_client_resp r;
	if (cs_cli_call(c, method, p.data, NULL, body, &r, "Error revoking token")) {
		printf("Success! Revoked token (if it existed)\n");
		code = 0;
	} else {
		code = 2;
	}
	cs_client_resp_free(&r);
	cs_buf_free(&p);
	cs_client_json_free_secure(body);
	if (tok) {
		cs_zero(tok, strlen(tok));
		free(tok);
	}
	return code;
}

static int cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int token_capabilities(struct cli *c, int argc, char **argv, int start)
{
	int code;
	int i = cs_cli_start(c, C_TCAPS, argc, argv, start, 1, 2, "1-2", &code);
	if (i < 0)
		return code;
	const char *token = argc - i == 2 ? argv[i] : NULL;
	const char *path = argv[argc - 1];
	cJSON *body = cJSON_CreateObject();
	cJSON *paths = cJSON_AddArrayToObject(body, "paths");
	cJSON_AddItemToArray(paths, cJSON_CreateString(path));
	if (token)
		cJSON_AddStringToObject(body, "token", token);
	struct cs_client_resp r;
	if (!cs_cli_call(c, "POST", token ? "sys/capabilities" : "sys/capabilities-self", NULL,
			 body, &r, "Error listing capabilities")) {
		cs_client_resp_free(&r);
		cs_client_json_free_secure(body);
		return 2;
	}
	cs_client_json_free_secure(body);
	/* The list under the path's own key, else "capabilities"; data first, then the
	 * top-level copy Vault also sends. */
	const cJSON *caps = NULL;
	const cJSON *where[] = {cs_cli_get(r.json, "data"), r.json};
	for (size_t k = 0; k < CS_ARRAY_LEN(where) && !caps; k++) {
		const cJSON *v = cs_cli_get(where[k], path);
		if (cJSON_IsArray(v) && v->child)
			caps = v;
		else if (cJSON_IsArray(v = cs_cli_get(where[k], "capabilities")))
			caps = v;
	}
	if (!caps) {
		fprintf(stderr, "No capabilities found\n");
		cs_client_resp_free(&r);
		return 1;
	}
	if (cs_cli_is_json(c)) {
		cs_cli_print_json(caps, true);
	} else {
		size_t n = (size_t)cJSON_GetArraySize(caps), k = 0;
		const char **v = calloc(n ? n : 1, sizeof *v);
		if (!v)
			abort();
		for (const cJSON *e = caps->child; e; e = e->next)
			v[k++] = cJSON_IsString(e) ? e->valuestring : "";
		qsort(v, n, sizeof *v, cmp_cstr);
		struct cs_buf b = CS_BUF_INIT;
		for (k = 0; k < n; k++)
			cs_buf_printf(&b, "%s%s", k ? ", " : "", v[k]);
		cs_cli_emit(stdout, &b);
		free(v);
	}
	cs_client_resp_free(&r);
	return 0;
}

static const char usage_token[] = "Usage: custos token <subcommand> [options] [args]\n"
				  "\n"
				  "Subcommands:\n"
				  "    capabilities    Print capabilities of a token on a path\n"
				  "    create          Create a new token\n"
				  "    lookup          Display information about a token\n"
				  "    renew           Renew a token lease\n"
				  "    revoke          Revoke a token and its children\n";

int cs_cli_token(struct cli *c, int argc, char **argv)
{
	static const struct cs_cli_sub subs[] = {
	    {"create", token_create},
	    {"lookup", token_lookup},
	    {"renew", token_renew},
	    {"revoke", token_revoke},
	    {"capabilities", token_capabilities},
	};
	return cs_cli_dispatch(c, argc, argv, 2, subs, CS_ARRAY_LEN(subs), usage_token);
}
