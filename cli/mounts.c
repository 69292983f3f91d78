/*
 * `secrets`, `auth` and `audit`: enable, disable and list the three mount tables
 * (sys/mounts, sys/auth, sys/audit), plus `auth tune`.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli_internal.h"
#include "cli/families.h"
#include "cli/format.h"

/* ------------------------------------------------------------------ flags & usage */

#define TTL_HELP                                                                                   \
	"  -default-lease-ttl=<dur>    Default lease TTL (default: the server's).\n"               \
	"  -max-lease-ttl=<dur>        Maximum lease TTL (default: the server's).\n"               \
	"  -listing-visibility=<str>   \"unauth\" to list it in the unauthenticated UI\n"          \
	"                              listing, \"hidden\" or \"\" not to.\n"

static const struct flag mounts_flags[] = {
    {"detailed", F_BOOL, OFF(detailed), C_SLIST | C_ALIST | C_DLIST, 0},
    {"path", F_STR, OFF(path), C_SENABLE | C_AENABLE | C_DENABLE, 0},
    {"description", F_STR, OFF(description), C_SENABLE | C_AENABLE | C_ATUNE | C_DENABLE, 0},
    {"version", F_INT, OFF(version), C_SENABLE | C_AENABLE | C_ATUNE, 0},
    {"default-lease-ttl", F_DUR, OFF(default_lease_ttl), C_SENABLE | C_AENABLE | C_ATUNE,
     OFF(default_lease_ttl_set)},
    {"max-lease-ttl", F_DUR, OFF(max_lease_ttl), C_SENABLE | C_AENABLE | C_ATUNE,
     OFF(max_lease_ttl_set)},
    {"listing-visibility", F_STR, OFF(listing_visibility), C_SENABLE | C_AENABLE | C_ATUNE, 0},
    {"token-type", F_STR, OFF(token_type), C_AENABLE | C_ATUNE, 0},
    {"local", F_BOOL, OFF(local), C_SENABLE | C_AENABLE | C_DENABLE, 0},
    {"seal-wrap", F_BOOL, OFF(seal_wrap), C_SENABLE | C_AENABLE, 0},
    {"force-no-cache", F_BOOL, OFF(force_no_cache), C_SENABLE, 0},
    {"options", F_KV, OFF(options), C_SENABLE | C_AENABLE | C_ATUNE, 0},
};

static const struct usage mounts_usages[] = {
    {C_SENABLE,
     "Usage: custos secrets enable [options] TYPE\n\n"
     "  Enables a secrets engine of type TYPE (kv, kv-v2, ...).\n\n"
     "  -path=<string>              Mount path (default: TYPE).\n"
     "  -description=<string>       Human-friendly description.\n"
     "  -version=<int>              Engine version (options.version; 2 = versioned KV).\n"
     "  -options=<key=value>        Engine option (repeatable).\n" TTL_HELP
     "  -local, -seal-wrap, -force-no-cache\n"},
    {C_SDISABLE, "Usage: custos secrets disable [options] PATH\n\n"
		 "  Disables the secrets engine at PATH, deleting its data.\n"},
    {C_SLIST, "Usage: custos secrets list [options]\n\n"
	      "  Lists enabled secrets engines.\n\n"
	      "  -detailed              Show all mount details.\n"},
    {C_AENABLE, "Usage: custos auth enable [options] TYPE\n\n"
		"  Enables a new auth method (userpass, approle, ...) at auth/PATH.\n\n"
		"      $ custos auth enable userpass\n"
		"      $ custos auth enable -path=people userpass\n\n"
		"  -path=<string>              Mount path (default: TYPE).\n"
		"  -description=<string>       Human-friendly description.\n"
		"  -options=<key=value>        Mount option (repeatable).\n"
		"  -version=<int>              Auth method version (options.version).\n"
		"  -token-type=<string>        Force the type of the tokens it issues.\n" TTL_HELP
		"  -local                      Mark it local-only (not replicated).\n"
		"  -seal-wrap                  Seal-wrap its critical values.\n"},
    {C_ADISABLE, "Usage: custos auth disable [options] PATH\n\n"
		 "  Disables the auth method at PATH (the path, not the type). Every token\n"
		 "  issued through it is revoked.\n\n"
		 "      $ custos auth disable userpass/\n"},
    {C_ALIST, "Usage: custos auth list [options]\n\n"
	      "  Lists the enabled auth methods. A TTL of \"system\" means the server's\n"
	      "  default is in use.\n\n"
	      "  -detailed              Show configuration and replication details.\n"},
    {C_ATUNE, "Usage: custos auth tune [options] PATH\n\n"
	      "  Tunes the configuration of the auth method at PATH (the path, not the\n"
	      "  type).\n\n"
	      "      $ custos auth tune -default-lease-ttl=72h userpass/\n\n"
	      "  -description=<string>       Replace the description.\n"
	      "  -options=<key=value>        Mount option (repeatable).\n"
	      "  -version=<int>              Auth method version (options.version).\n"
	      "  -token-type=<string>        Force the type of the tokens it issues.\n" TTL_HELP},
    {C_DENABLE, "Usage: custos audit enable [options] TYPE [CONFIG K=V...]\n\n"
		"  Enables an audit device of TYPE (file, socket, ...); its options follow\n"
		"  the type as K=V pairs, as for `custos write`.\n\n"
		"      $ custos audit enable file file_path=/var/log/custos_audit.log\n\n"
		"  -path=<string>         Device path (default: TYPE).\n"
		"  -description=<string>  Human-friendly description.\n"
		"  -local                 Mark it local-only (not replicated).\n"},
    {C_DDISABLE, "Usage: custos audit disable [options] PATH\n\n"
		 "  Disables the audit device at PATH (the path, not the type). Logs already\n"
		 "  written are left alone.\n\n"
		 "      $ custos audit disable file/\n"},
    {C_DLIST, "Usage: custos audit list [options]\n\n"
	      "  Lists the enabled audit devices.\n\n"
	      "  -detailed              Also show replication and options.\n"},
};

const struct cs_cli_family cs_cli_mounts_family = CS_CLI_FAMILY(mounts_flags, mounts_usages);

static const char usage_secrets[] = "Usage: custos secrets <subcommand> [options] [args]\n"
				    "\n"
				    "Subcommands:\n"
				    "    disable    Disable a secrets engine\n"
				    "    enable     Enable a secrets engine\n"
				    "    list       List enabled secrets engines\n";

static const char usage_auth[] = "Usage: custos auth <subcommand> [options] [args]\n"
				 "\n"
				 "Subcommands:\n"
				 "    disable    Disables an auth method\n"
				 "    enable     Enables a new auth method\n"
				 "    list       Lists enabled auth methods\n"
				 "    tune       Tunes an auth method configuration\n";

static const char usage_audit[] = "Usage: custos audit <subcommand> [options] [args]\n"
				  "\n"
				  "Subcommands:\n"
				  "    disable    Disables an audit device\n"
				  "    enable     Enables an audit device\n"
				  "    list       Lists enabled audit devices\n";

/* ------------------------------------------------------------------ secrets, auth, audit */

/*
 * The three mount tables: secrets engines (sys/mounts), auth methods (sys/auth) and
 * audit devices (sys/audit). Paths are shown and sent with a trailing slash, as Vault's
 * ensureTrailingSlash does.
 */

static char *with_trailing_slash(const char *s)
{
	char *p = cs_cli_sanitize_path(s);
	if (!*p)
		return p;
	size_t n = strlen(p);
	char *r = malloc(n + 2);
	if (!r)
		abort();
	memcpy(r, p, n);
	r[n] = '/';
	r[n + 1] = '\0';
	free(p);
	return r;
}

static char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *str_printf(const char *fmt, ...)
{
	struct cs_buf b = CS_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	cs_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	cs_buf_putc(&b, '\0');
	return cs_buf_steal(&b, NULL);
}

/* One change to a table: METHOD path with body, then the `success` line, or
 * "<failure>: <API error>" on stderr. Frees path, failure and success. Exit code 0 or 2. */
static int sys_change(struct cli *c, const char *method, char *path, const cJSON *body,
		      char *failure, char *success)
{
	struct cs_client_resp r;
	int code = 0;
	if (cs_client_request(&c->client, method, path, NULL, body, &r) != 0 ||
	    !cs_client_resp_ok(&r)) {
		cs_cli_api_error(&r, "%s", failure);
		code = 2;
	} else {
		printf("%s\n", success);
	}
	cs_client_resp_free(&r);
	free(path);
	free(failure);
	free(success);
	return code;
}

/* The mount-configuration flags into cfg (Vault's MountConfigInput): TTLs as Go
 * durations (a tune leaves a zero TTL out, as ttlToAPI does), string settings only when
 * their flag was given. */
static void add_mount_config(const struct cli *c, cJSON *cfg, bool tune)
{
	const struct {
		const char *key;
		int64_t secs;
		bool set;
	} ttls[] = {{"default_lease_ttl", c->default_lease_ttl, c->default_lease_ttl_set},
		    {"max_lease_ttl", c->max_lease_ttl, c->max_lease_ttl_set}};
	for (size_t i = 0; i < CS_ARRAY_LEN(ttls); i++) {
		if (!ttls[i].set || (tune && ttls[i].secs == 0))
			continue;
		char d[32];
		cs_format_duration(ttls[i].secs, d, sizeof d);
		cJSON_AddStringToObject(cfg, ttls[i].key, d);
	}
	if (c->force_no_cache)
		cJSON_AddBoolToObject(cfg, "force_no_cache", true);
	if (c->listing_visibility)
		cJSON_AddStringToObject(cfg, "listing_visibility", c->listing_visibility);
	if (c->token_type)
		cJSON_AddStringToObject(cfg, "token_type", c->token_type);
}

/* -options k=v, plus -version=N as options.version. */
static void add_options(struct cli *c, cJSON *body)
{
	if (c->version > 0) {
		if (!c->options)
			c->options = cJSON_CreateObject();
		char v[24];
		snprintf(v, sizeof v, "%ld", c->version);
		cJSON_DeleteItemFromObjectCaseSensitive(c->options, "version");
		cJSON_AddStringToObject(c->options, "version", v);
	}
	if (c->options)
		cJSON_AddItemToObject(body, "options", cJSON_Duplicate(c->options, true));
}

/* `secrets enable` and `auth enable`: one TYPE, mounted at -path or TYPE (Vault's
 * MountInput / EnableAuthOptions). */
static int enable_mount(struct cli *c, uint64_t cmd, int argc, char **argv, int start, bool auth)
{
	int code;
	int i = cs_cli_start(c, cmd, argc, argv, start, 1, 1, "1", &code);
	if (i < 0)
		return code;
	char *type = cs_cli_trim_dup(argv[i], strlen(argv[i]));
	char *mpath = with_trailing_slash(c->path && *c->path ? c->path : type);
	cJSON *body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "type", type);
	cJSON_AddStringToObject(body, "description", c->description ? c->description : "");
	add_mount_config(c, cJSON_AddObjectToObject(body, "config"), false);
	if (c->local)
		cJSON_AddBoolToObject(body, "local", true);
	if (c->seal_wrap)
		cJSON_AddBoolToObject(body, "seal_wrap", true);
	add_options(c, body);
	if (auth)
		code =
		    sys_change(c, "POST", str_printf("sys/auth/%s", mpath), body,
			       str_printf("Error enabling %s auth", type),
			       str_printf("Success! Enabled %s auth method at: %s", type, mpath));
	else
		code = sys_change(
		    c, "POST", str_printf("sys/mounts/%s", mpath), body,
		    str_printf("Error enabling"),
		    str_printf("Success! Enabled the %s secrets engine at: %s", type, mpath));
	cJSON_Delete(body);
	free(type);
	free(mpath);
	return code;
}

/* Start of the disables and tune: one PATH argument, returned with a trailing slash. */
static char *path_start(struct cli *c, uint64_t cmd, int argc, char **argv, int start, int *code)
{
	int i = cs_cli_start(c, cmd, argc, argv, start, 1, 1, "1", code);
	return i < 0 ? NULL : with_trailing_slash(argv[i]);
}

/* `secrets disable` and `auth disable`: DELETE sys/<table>/PATH. */
static int disable_mount(struct cli *c, uint64_t cmd, int argc, char **argv, int start,
			 const char *table, const char *noun)
{
	int code;
	char *mpath = path_start(c, cmd, argc, argv, start, &code);
	if (!mpath)
		return code;
	code =
	    sys_change(c, "DELETE", str_printf("sys/%s/%s", table, mpath), NULL,
		       str_printf("Error disabling %s at %s", noun, mpath),
		       str_printf("Success! Disabled the %s (if it existed) at: %s", noun, mpath));
	free(mpath);
	return code;
}

static int cmd_secrets_enable(struct cli *c, int argc, char **argv, int start)
{
	return enable_mount(c, C_SENABLE, argc, argv, start, false);
}

static int cmd_secrets_disable(struct cli *c, int argc, char **argv, int start)
{
	return disable_mount(c, C_SDISABLE, argc, argv, start, "mounts", "secrets engine");
}

static bool is_envelope_key(const char *k)
{
	static const char *const env[] = {"request_id",     "lease_id", "renewable",
					  "lease_duration", "data",     "wrap_info",
					  "warnings",       "auth",     "mount_type"};
	for (size_t i = 0; i < CS_ARRAY_LEN(env); i++)
		if (strcmp(k, env[i]) == 0)
			return true;
	return false;
}

/* GET a table (sys/mounts, sys/auth, sys/audit): the map of its entries (the envelope's
 * data; very old servers put it at top level), or NULL after "<what>: ..." on stderr. */
static cJSON *fetch_table(struct cli *c, const char *path, const char *what)
{
	struct cs_client_resp r;
	if (cs_client_request(&c->client, "GET", path, NULL, NULL, &r) != 0 ||
	    !cs_client_resp_ok(&r)) {
		cs_cli_api_error(&r, "%s", what);
		cs_client_resp_free(&r);
		return NULL;
	}
	cJSON *map = NULL;
	const cJSON *data = cs_cli_get(r.json, "data");
	if (cJSON_IsObject(data) && data->child) {
		map = cJSON_Duplicate(data, true);
	} else if (cJSON_IsObject(r.json)) {
		map = cJSON_CreateObject();
		for (const cJSON *k = r.json->child; k; k = k->next)
			if (!is_envelope_key(k->string) && cJSON_IsObject(k))
				cJSON_AddItemToObject(map, k->string, cJSON_Duplicate(k, true));
	} else {
		fprintf(stderr, "%s: data from server response is empty\n", what);
	}
	cs_client_resp_free(&r);
	return map;
}

static int cmp_entry_key(const void *a, const void *b)
{
	return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

/* The entries of an object sorted by key: a malloc'd array of borrowed items. */
static const cJSON **sorted_entries(const cJSON *map, size_t *n)
{
	*n = 0;
	for (const cJSON *k = map->child; k; k = k->next)
		(*n)++;
	const cJSON **v = calloc(*n ? *n : 1, sizeof *v);
	if (!v)
		abort();
	size_t i = 0;
	for (const cJSON *k = map->child; k; k = k->next)
		v[i++] = k;
	qsort(v, *n, sizeof *v, cmp_entry_key);
	return v;
}

/* Print the lines as a Vault table (header, dashes, aligned columns) and free them. */
static void print_table(struct cs_fmt_lines *l)
{
	struct cs_buf out = CS_BUF_INIT;
	cs_fmt_table(&out, l, "|");
	cs_cli_emit(stdout, &out);
	cs_fmt_lines_free(l);
}

/* TTL column of `secrets list -detailed` (Vault's calcTTL). */
static void ttl_cell(struct cs_buf *b, const char *type, const cJSON *cfg, const char *k)
{
	const cJSON *v = cs_cli_get(cfg, k);
	double ttl = cJSON_IsNumber(v) ? v->valuedouble : 0;
	if (strcmp(type, "system") == 0 || strcmp(type, "cubbyhole") == 0)
		return;
	if (ttl != 0)
		cs_fmt_number(b, ttl);
	else
		cs_buf_puts(b, "system");
}

static const char *sfield(const cJSON *o, const char *k)
{
	const cJSON *v = cs_cli_get(o, k);
	return cJSON_IsString(v) && v->valuestring ? v->valuestring : "";
}

static const char *bfield(const cJSON *o, const char *k)
{
	return cJSON_IsTrue(cs_cli_get(o, k)) ? "true" : "false";
}

/* One row of `secrets list -detailed` / `auth list -detailed`; the two differ in the
 * sixth column (Force No Cache, or the auth method's Token Type). */
static void detailed_mount_row(struct cs_fmt_lines *l, const cJSON *m, bool auth)
{
	const cJSON *cfg = cs_cli_get(m, "config");
	const char *type = sfield(m, "type");
	struct cs_buf b = CS_BUF_INIT;
	cs_buf_printf(&b, "%s | %s | %s | ", m->string, type, sfield(m, "accessor"));
	ttl_cell(&b, type, cfg, "default_lease_ttl");
	cs_buf_puts(&b, " | ");
	ttl_cell(&b, type, cfg, "max_lease_ttl");
	cs_buf_printf(&b, " | %s | %s | %s | %s | ",
		      auth ? sfield(cfg, "token_type") : bfield(cfg, "force_no_cache"),
		      cJSON_IsTrue(cs_cli_get(m, "local")) ? "local" : "replicated",
		      bfield(m, "seal_wrap"), bfield(m, "external_entropy_access"));
	const cJSON *opts = cs_cli_get(m, "options");
	if (cJSON_IsObject(opts))
		cs_fmt_value(&b, opts);
	else
		cs_buf_puts(&b, "map[]");
	cs_buf_printf(&b, " | %s | %s | %s | %s | %s | %s", sfield(m, "description"),
		      sfield(m, "uuid"), sfield(m, "plugin_version"),
		      sfield(m, "running_plugin_version"), sfield(m, "running_sha256"),
		      sfield(m, "deprecation_status"));
	cs_fmt_lines_add(l, "%s", b.data);
	cs_buf_free(&b);
}

/* `secrets list` and `auth list`: the table of GET `path`, or its JSON. */
static int list_mounts(struct cli *c, uint64_t cmd, int argc, char **argv, int start,
		       const char *path, const char *what, bool auth)
{
	int code;
	int i = cs_cli_start(c, cmd, argc, argv, start, 0, 0, "0", &code);
	if (i < 0)
		return code;
	cJSON *mounts = fetch_table(c, path, what);
	if (!mounts)
		return 2;
	if (cs_cli_is_json(c)) {
		cs_cli_print_json(mounts, true);
		cJSON_Delete(mounts);
		return 0;
	}
	size_t n;
	const cJSON **v = sorted_entries(mounts, &n);
	struct cs_fmt_lines l = {NULL, 0, 0};
	if (!c->detailed) {
		cs_fmt_lines_add(&l, "Path | Type | Accessor | Description%s",
				 auth ? " | Version" : "");
		for (size_t k = 0; k < n; k++)
			cs_fmt_lines_add(&l, "%s | %s | %s | %s%s%s", v[k]->string,
					 sfield(v[k], "type"), sfield(v[k], "accessor"),
					 sfield(v[k], "description"), auth ? " | " : "",
					 auth ? sfield(v[k], "plugin_version") : "");
	} else {
		cs_fmt_lines_add(
		    &l,
		    "Path | Plugin | Accessor | Default TTL | Max TTL | %s | "
		    "Replication | Seal Wrap | External Entropy Access | Options | "
		    "Description | UUID | Version | Running Version | Running SHA256 | "
		    "Deprecation Status",
		    auth ? "Token Type" : "Force No Cache");
		for (size_t k = 0; k < n; k++)
			detailed_mount_row(&l, v[k], auth);
	}
	free(v);
	print_table(&l);
	cJSON_Delete(mounts);
	return 0;
}

static int cmd_secrets_list(struct cli *c, int argc, char **argv, int start)
{
	return list_mounts(c, C_SLIST, argc, argv, start, "sys/mounts",
			   "Error listing secrets engines", false);
}

int cs_cli_secrets(struct cli *c, int argc, char **argv)
{
	static const struct cs_cli_sub subs[] = {{"enable", cmd_secrets_enable},
						 {"disable", cmd_secrets_disable},
						 {"list", cmd_secrets_list}};
	return cs_cli_dispatch(c, argc, argv, 2, subs, CS_ARRAY_LEN(subs), usage_secrets);
}

/* --- auth --- */

static int cmd_auth_enable(struct cli *c, int argc, char **argv, int start)
{
	return enable_mount(c, C_AENABLE, argc, argv, start, true);
}

static int cmd_auth_disable(struct cli *c, int argc, char **argv, int start)
{
	return disable_mount(c, C_ADISABLE, argc, argv, start, "auth", "auth method");
}

static int cmd_auth_tune(struct cli *c, int argc, char **argv, int start)
{
	int code;
	char *mpath = path_start(c, C_ATUNE, argc, argv, start, &code);
	if (!mpath)
		return code;
	cJSON *body = cJSON_CreateObject();
	add_mount_config(c, body, true);
	if (c->description)
		cJSON_AddStringToObject(body, "description", c->description);
	add_options(c, body);
	code = sys_change(c, "POST", str_printf("sys/auth/%stune", mpath), body,
			  str_printf("Error tuning auth method %s", mpath),
			  str_printf("Success! Tuned the auth method at: %s", mpath));
	cJSON_Delete(body);
	free(mpath);
	return code;
}

static int cmd_auth_list(struct cli *c, int argc, char **argv, int start)
{
	return list_mounts(c, C_ALIST, argc, argv, start, "sys/auth",
			   "Error listing enabled authentications", true);
}

int cs_cli_auth(struct cli *c, int argc, char **argv)
{
	static const struct cs_cli_sub subs[] = {{"enable", cmd_auth_enable},
						 {"disable", cmd_auth_disable},
						 {"list", cmd_auth_list},
						 {"tune", cmd_auth_tune}};
	return cs_cli_dispatch(c, argc, argv, 2, subs, CS_ARRAY_LEN(subs), usage_auth);
}

/* --- audit --- */

static int cmd_audit_enable(struct cli *c, int argc, char **argv, int start)
{
	int code;
	int i = cs_cli_begin(c, C_DENABLE, argc, argv, start, &code);
	if (i < 0)
		return code;
	if (i >= argc) {
		fprintf(stderr, "Error enabling audit device: audit type missing. Valid types "
				"include 'file', 'socket' and 'syslog'.\n");
		return 1;
	}
	cJSON *opts = cs_cli_kv_data(argc - i - 1, argv + i + 1);
	if (!opts)
		return 1;
	if (cs_cli_make_client(c)) {
		cs_client_json_free_secure(opts);
		return 2;
	}
	char *type = cs_cli_trim_dup(argv[i], strlen(argv[i]));
	char *mpath = with_trailing_slash(c->path && *c->path ? c->path : type);
	cJSON *body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "type", type);
	cJSON_AddStringToObject(body, "description", c->description ? c->description : "");
	cJSON_AddItemToObject(body, "options", opts);
	cJSON_AddBoolToObject(body, "local", c->local);
	code = sys_change(c, "PUT", str_printf("sys/audit/%s", mpath), body,
			  str_printf("Error enabling audit device"),
			  str_printf("Success! Enabled the %s audit device at: %s", type, mpath));
	cs_client_json_free_secure(body);
	free(type);
	free(mpath);
	return code;
}

static int cmd_audit_disable(struct cli *c, int argc, char **argv, int start)
{
	int code;
	char *mpath = path_start(c, C_DDISABLE, argc, argv, start, &code);
	if (!mpath)
		return code;
	code = sys_change(
	    c, "DELETE", str_printf("sys/audit/%s", mpath), NULL,
	    str_printf("Error disabling audit device"),
	    str_printf("Success! Disabled audit device (if it was enabled) at: %s", mpath));
	free(mpath);
	return code;
}

/* The Options column of `audit list -detailed`: k=v pairs (sorted) joined by spaces. */
static void audit_options_cell(struct cs_buf *b, const cJSON *opts)
{
	if (!cJSON_IsObject(opts))
		return;
	size_t n;
	const cJSON **v = sorted_entries(opts, &n);
	for (size_t k = 0; k < n; k++) {
		cs_buf_printf(b, "%s%s=", k ? " " : "", v[k]->string);
		cs_fmt_value(b, v[k]);
	}
	free(v);
}

static int cmd_audit_list(struct cli *c, int argc, char **argv, int start)
{
	int code;
	int i = cs_cli_start(c, C_DLIST, argc, argv, start, 0, 0, "0", &code);
	if (i < 0)
		return code;
	cJSON *audits = fetch_table(c, "sys/audit", "Error listing audits");
	if (!audits)
		return 2;
	if (cs_cli_is_json(c)) {
		cs_cli_print_json(audits, true);
		cJSON_Delete(audits);
		return 0;
	}
	if (!audits->child) {
		printf("No audit devices are enabled.\n");
		cJSON_Delete(audits);
		return 2;
	}
	size_t n;
	const cJSON **v = sorted_entries(audits, &n);
	struct cs_fmt_lines l = {NULL, 0, 0};
	cs_fmt_lines_add(&l, "Path | Type | Description%s",
			 c->detailed ? " | Replication | Options" : "");
	for (size_t k = 0; k < n; k++) {
		const cJSON *a = v[k];
		/* Vault shows the device's own path field, the map key in -detailed. */
		const char *path =
		    *sfield(a, "path") && !c->detailed ? sfield(a, "path") : a->string;
		struct cs_buf b = CS_BUF_INIT;
		cs_buf_printf(&b, "%s | %s | %s", path, sfield(a, "type"),
			      sfield(a, "description"));
		if (c->detailed) {
			cs_buf_printf(&b, " | %s | ",
				      cJSON_IsTrue(cs_cli_get(a, "local")) ? "local"
									   : "replicated");
			audit_options_cell(&b, cs_cli_get(a, "options"));
		}
		cs_fmt_lines_add(&l, "%s", b.data);
		cs_buf_free(&b);
	}
	free(v);
	print_table(&l);
	cJSON_Delete(audits);
	return 0;
}

int cs_cli_audit(struct cli *c, int argc, char **argv)
{
	static const struct cs_cli_sub subs[] = {
	    {"enable", cmd_audit_enable}, {"disable", cmd_audit_disable}, {"list", cmd_audit_list}};
	return cs_cli_dispatch(c, argc, argv, 2, subs, CS_ARRAY_LEN(subs), usage_audit);
}
