/*
 * Flag parsing with Go's flag-package rules and the common start of every command
 * (cs_cli_begin / cs_cli_start / cs_cli_dispatch). The flags every command takes
 * (HTTP and output) are here; each family's own rows come from the tables cs_cli_main
 * stores in struct cli, so this file depends on no family.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_internal.h"

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
};

/* Result of flag parsing: index of the first positional argument, or one of these. */
#define PARSE_HELP  (-1)
#define PARSE_ERROR (-2)

/* The row for -name (nlen bytes) that `cmd` accepts: the HTTP/output flags every
 * command takes, then the tables of the families cs_cli_main registered in c. */
static const struct flag *find_flag(const struct cli *c, uint64_t cmd, const char *name,
				    size_t nlen)
{
	for (size_t t = 0; t <= c->n_families; t++) {
		const struct flag *tab = t == 0 ? flags : c->families[t - 1]->flags;
		size_t n = t == 0 ? CS_ARRAY_LEN(flags) : c->families[t - 1]->n_flags;
		for (size_t k = 0; k < n; k++)
			if ((tab[k].cmds & cmd) && strlen(tab[k].name) == nlen &&
			    strncmp(tab[k].name, name, nlen) == 0)
				return &tab[k];
	}
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
		const struct flag *f = find_flag(c, cmd, name, nlen);
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

static void print_cmd_usage(const struct cli *c, uint64_t cmd)
{
	for (size_t t = 0; t < c->n_families; t++)
		for (size_t i = 0; i < c->families[t]->n_usages; i++)
			if (c->families[t]->usages[i].cmd == cmd)
				fputs(c->families[t]->usages[i].text, stdout);
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
		print_cmd_usage(c, cmd);
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
