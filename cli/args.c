/*
 * Flag parsing and the common start of every command (moved verbatim from cli.c).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/cli_internal.h"
#include "cli/client.h"
#include "cli/format.h"
#include "lib/buf.h"
#include "lib/util.h"

/* ------------------------------------------------------------------ flags */

static const struct flag flags[] = {
    {"address", F_STR, OFF(address), C_ALL, 0},
    {"ca-cert", F_STR, OFF(ca_cert), C_ALL, 0},
    {"ca-path", F_STR, OFF(ca_path), C_ALL, 0},
    {"tls-skip-verify", F_BOOL, OFF(tls_skip_verify), C_ALL, OFF(tls_skip_verify_set)},
    {"namespace", F_STR, OFF(namespace), C_ALL, 0},
    {"ns", F_STR, OFF(namespace), C_ALL, 0},
    {"non-interactive", F_BOOL, OFF(non_interactive), C_ALL, 0},
    {"format", F_STR, OFF(format), C_ALL, 0},
    {"field", F_STR, OFF(field), C_READ | C_WRITE | C_DELETE | C_STATUS, 0},
    {"key-shares", F_INT, OFF(key_shares), C_INIT, 0},
    {"n", F_INT, OFF(key_shares), C_INIT, 0},
    {"key-threshold", F_INT, OFF(key_threshold), C_INIT, 0},
    {"t", F_INT, OFF(key_threshold), C_INIT, 0},
    {"recovery-shares", F_INT, OFF(recovery_shares), C_INIT, 0},
    {"recovery-threshold", F_INT, OFF(recovery_threshold), C_INIT, 0},
    {"status", F_BOOL, OFF(init_status), C_INIT, 0},
    {"reset", F_BOOL, OFF(reset), C_UNSEAL, 0},
    {"migrate", F_BOOL, OFF(migrate), C_UNSEAL, 0},
    {"force", F_BOOL, OFF(force), C_WRITE, 0},
    {"f", F_BOOL, OFF(force), C_WRITE, 0},
    {"detailed", F_BOOL, OFF(detailed), C_LIST | C_SLIST | C_ALIST | C_DLIST, 0},
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

/* Result of flag parsing: index of the first positional argument, or one of these. */
#define PARSE_HELP  (-1)
#define PARSE_ERROR (-2)

/* The row for -name (nlen bytes) that `cmd` accepts: ours, then commands.c's and raft.c's. */
static const struct flag *find_flag(uint64_t cmd, const char *name, size_t nlen)
{
	const struct flag *tabs[] = {flags, cs_cli_cmd_flags, cs_cli_raft_flags, cs_cli_keys_flags};
	const size_t lens[] = {CS_ARRAY_LEN(flags), cs_cli_n_cmd_flags, cs_cli_n_raft_flags,
			       cs_cli_n_keys_flags};
	for (size_t t = 0; t < CS_ARRAY_LEN(tabs); t++)
		for (size_t k = 0; k < lens[t]; k++)
			if ((tabs[t][k].cmds & cmd) && strlen(tabs[t][k].name) == nlen &&
			    strncmp(tabs[t][k].name, name, nlen) == 0)
				return &tabs[t][k];
	return NULL;
}

/* Store one flag value into its field. Returns 0 or prints and returns -1. */
static int set_flag(struct cli *c, const struct flag *f, const char *value)
{
	char *dst = (char *)c + f->off;
	switch (f->kind) {
	case F_BOOL: {
		bool b = true;
		if (value && cs_parse_bool(value, &b) != 0) {
			fprintf(stderr, "invalid boolean value \"%s\" for -%s: parse error\n",
				value, f->name);
			return -1;
		}
		*(bool *)(void *)dst = b;
		break;
	}
	case F_STR:
		*(const char **)(void *)dst = value;
		break;
	case F_INT: {
		char *end;
		errno = 0;
		long v = strtol(value, &end, 0);
		if (errno || end == value || *end) {
			fprintf(stderr, "invalid value \"%s\" for flag -%s: parse error\n", value,
				f->name);
			return -1;
		}
		*(long *)(void *)dst = v;
		break;
	}
	case F_DUR: {
		int64_t secs = 0;
		/* Vault's duration flags take "" as "no value". */
		if (*value && cs_parse_duration(value, &secs) != 0) {
			fprintf(
			    stderr,
			    "invalid value \"%s\" for flag -%s: time: invalid duration \"%s\"\n",
			    value, f->name, value);
			return -1;
		}
		*(int64_t *)(void *)dst = secs;
		break;
	}
	case F_LIST: {
		cJSON **arr = (cJSON **)(void *)dst;
		if (!*arr)
			*arr = cJSON_CreateArray();
		char *t = cs_cli_trim_dup(value, strlen(value));
		cJSON_AddItemToArray(*arr, cJSON_CreateString(t));
		free(t);
		break;
	}
	case F_KV: {
		const char *e = strchr(value, '=');
		if (!e) {
			fprintf(stderr, "invalid value \"%s\" for flag -%s: missing = in KV pair\n",
				value, f->name);
			return -1;
		}
		cJSON **obj = (cJSON **)(void *)dst;
		if (!*obj)
			*obj = cJSON_CreateObject();
		char *k = strndup(value, (size_t)(e - value));
		if (!k)
			abort();
		cJSON_DeleteItemFromObjectCaseSensitive(*obj, k);
		cJSON_AddStringToObject(*obj, k, e + 1);
		free(k);
		break;
	}
	}
	if (f->set_off)
		*(bool *)(void *)((char *)c + f->set_off) = true;
	return 0;
}

static int parse_flags(struct cli *c, uint64_t cmd, int argc, char **argv, int i)
{
	while (i < argc) {
		const char *a = argv[i];
		if (a[0] != '-' || a[1] == '\0')
			break;
		if (strcmp(a, "--") == 0)
			return i + 1;
		const char *name = a + 1;
		if (*name == '-')
			name++;
		if (*name == '\0' || *name == '-' || *name == '=') {
			fprintf(stderr, "bad flag syntax: %s\n", a);
			return PARSE_ERROR;
		}
		const char *eq = strchr(name, '=');
		size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
		const char *value = eq ? eq + 1 : NULL;
		if ((nlen == 1 && name[0] == 'h') || (nlen == 4 && strncmp(name, "help", 4) == 0))
			return PARSE_HELP;
		const struct flag *f = find_flag(cmd, name, nlen);
		if (!f) {
			fprintf(stderr, "flag provided but not defined: -%.*s\n", (int)nlen, name);
			return PARSE_ERROR;
		}
		if (!value && f->kind != F_BOOL) {
			if (i + 1 >= argc) {
				fprintf(stderr, "flag needs an argument: -%s\n", f->name);
				return PARSE_ERROR;
			}
			value = argv[++i];
		}
		if (set_flag(c, f, value) != 0)
			return PARSE_ERROR;
		i++;
	}
	return i;
}

/* Vault warns (and ignores them) when flags follow positional arguments. */
static void warn_trailing_flags(struct cli *c, int argc, char **argv, int i)
{
	struct cs_buf b = CS_BUF_INIT;
	for (; i < argc; i++) {
		if (argv[i][0] != '-' || argv[i][1] == '\0')
			continue;
		cs_buf_puts(&b, b.len ? "," : "");
		cs_buf_puts(&b, argv[i]);
	}
	if (b.len && strcmp(c->fmt, "table") == 0)
		fprintf(stderr,
			"Command flags must be provided before positional arguments. The "
			"following arguments will not be parsed as flags: [%s]\n",
			b.data);
	cs_buf_free(&b);
}

/* Resolve -format / CUSTOS_FORMAT / VAULT_FORMAT. Returns 0 or prints and returns 1. */
static int resolve_format(struct cli *c)
{
	const char *f = c->format;
	if (!f || !*f)
		f = cs_cli_env2("CUSTOS_FORMAT", "VAULT_FORMAT");
	if (!f || !*f)
		f = "table";
	if (strcasecmp(f, "table") == 0) {
		c->fmt = "table";
	} else if (strcasecmp(f, "json") == 0) {
		c->fmt = "json";
	} else {
		fprintf(stderr, "Invalid output format: %s\n", f);
		return 1;
	}
	return 0;
}

bool cs_cli_is_json(const struct cli *c)
{
	return strcmp(c->fmt, "json") == 0;
}

static const char usage_http[] =
    "\n"
    "HTTP Options:\n"
    "  -address=<string>      Address of the server (CUSTOS_ADDR / VAULT_ADDR).\n"
    "  -ca-cert=<string>      PEM CA certificate file to verify the server with.\n"
    "  -ca-path=<string>      Directory of PEM CA certificates.\n"
    "  -tls-skip-verify       Do not verify the server's certificate (insecure).\n"
    "  -namespace=<string>    Namespace sent as X-Vault-Namespace.\n"
    "\n"
    "Output Options:\n"
    "  -format=<string>       table (default) or json (CUSTOS_FORMAT / VAULT_FORMAT).\n";

#define TTL_HELP                                                                                   \
	"  -default-lease-ttl=<dur>    Default lease TTL (default: the server's).\n"               \
	"  -max-lease-ttl=<dur>        Maximum lease TTL (default: the server's).\n"               \
	"  -listing-visibility=<str>   \"unauth\" to list it in the unauthenticated UI\n"          \
	"                              listing, \"hidden\" or \"\" not to.\n"

static const struct usage usages[] = {
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
    {C_READ, "Usage: custos read [options] PATH [K=V...]\n\n"
	     "  Reads data at PATH.\n\n"
	     "  -field=<string>        Print only this field, without a trailing newline.\n"},
    {C_WRITE, "Usage: custos write [options] PATH [DATA K=V...]\n\n"
	      "  Writes data to PATH. A value of @file reads a file, - reads stdin; a lone -\n"
	      "  reads a JSON object from stdin.\n\n"
	      "  -field=<string>        Print only this field of the response.\n"
	      "  -force                 Allow writing with no data.\n"},
    {C_LIST, "Usage: custos list [options] PATH\n\n  Lists the keys at PATH.\n"},
    {C_DELETE, "Usage: custos delete [options] PATH\n\n  Deletes the data at PATH.\n"},
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

static void print_cmd_usage(uint64_t cmd)
{
	for (size_t i = 0; i < CS_ARRAY_LEN(usages); i++)
		if (usages[i].cmd == cmd)
			fputs(usages[i].text, stdout);
	for (size_t i = 0; i < cs_cli_n_cmd_usages; i++)
		if (cs_cli_cmd_usages[i].cmd == cmd)
			fputs(cs_cli_cmd_usages[i].text, stdout);
	for (size_t i = 0; i < cs_cli_n_raft_usages; i++)
		if (cs_cli_raft_usages[i].cmd == cmd)
			fputs(cs_cli_raft_usages[i].text, stdout);
	for (size_t i = 0; i < cs_cli_n_keys_usages; i++)
		if (cs_cli_keys_usages[i].cmd == cmd)
			fputs(cs_cli_keys_usages[i].text, stdout);
	if (cmd != C_PFMT && cmd != C_RSINSPECT)
		fputs(usage_http, stdout);
}

/*
 * Common start of every command: parse flags, resolve the format. Returns the index of
 * the first positional argument, or a negative value with *code set to the exit code.
 */
int cs_cli_begin(struct cli *c, uint64_t cmd, int argc, char **argv, int start, int *code)
{
	int i = parse_flags(c, cmd, argc, argv, start);
	if (i == PARSE_HELP) {
		print_cmd_usage(cmd);
		*code = 0;
		return -1;
	}
	if (i < 0 || resolve_format(c) != 0) {
		*code = 1;
		return -1;
	}
	warn_trailing_flags(c, argc, argv, i);
	return i;
}

int cs_cli_dispatch(struct cli *c, int argc, char **argv, int depth, const struct cs_cli_sub *subs,
		    size_t n, const char *usage)
{
	const char *sub = argc > depth ? argv[depth] : "";
	for (size_t i = 0; i < n; i++)
		if (strcmp(sub, subs[i].name) == 0)
			return subs[i].run(c, argc, argv, depth + 1);
	if (strcmp(sub, "-h") == 0 || strcmp(sub, "-help") == 0 || strcmp(sub, "--help") == 0) {
		fputs(usage, stdout);
		return 0;
	}
	fputs(usage, stderr);
	return 1;
}

int cs_cli_start(struct cli *c, uint64_t cmd, int argc, char **argv, int start, int min, int max,
		 const char *what, int *code)
{
	int i = cs_cli_begin(c, cmd, argc, argv, start, code);
	if (i < 0)
		return -1;
	if (cs_cli_bad_nargs(argc - i, min, max, what)) {
		*code = 1;
		return -1;
	}
	if (cs_cli_make_client(c)) {
		*code = 2;
		return -1;
	}
	return i;
}

bool cs_cli_bad_nargs(int n, int min, int max, const char *what)
{
	if (n >= min && (max < 0 || n <= max))
		return false;
	fprintf(stderr, "%s arguments (expected %s, got %d)\n", n < min ? "Not enough" : "Too many",
		what, n);
	return true;
}
