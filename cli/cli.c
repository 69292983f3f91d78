/*
 * The CLI verbs (see cli.h): Vault's command names, flags, output and exit codes, so
 * scripts written for `vault` work against `custos` unchanged.
 *
 * Flow of every command: parse flags with Go's flag-package rules (flags first, -flag,
 * --flag, -flag=value, -flag value, booleans only as -flag or -flag=bool, "--" ends
 * flags, parsing stops at the first positional argument) → check the positional
 * arguments → build the client from flags and environment → one or two API calls →
 * print (table or JSON) → exit code.
 *
 * Exit codes follow the Vault CLI's commands: 0 success; 1 for flag/argument errors,
 * unreadable input and output problems (and any error in `status`, where 2 means
 * sealed); 2 for errors reported by the server or while reaching it ("Error reading
 * ...", "No value found at ..."); 127 for an unknown top-level command.
 */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "cli/cli_internal.h"
#include "cli/client.h"
#include "cli/format.h"
#include "lib/buf.h"
#include "lib/util.h"

#ifndef CUSTOS_VERSION
#define CUSTOS_VERSION "0.0.0-dev"
#endif
#ifndef CUSTOS_BUILD_DATE
#define CUSTOS_BUILD_DATE "unknown"
#endif

#define DEFAULT_ADDR          CS_CLI_DEFAULT_ADDR
#define DEFAULT_KEY_SHARES    5
#define DEFAULT_KEY_THRESHOLD 3
/* Largest input accepted from stdin or a file for `write` values. */
#define MAX_INPUT (32u * 1024 * 1024)

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

static const char *env2(const char *a, const char *b)
{
	const char *v = getenv(a);
	if (v && *v)
		return v;
	v = getenv(b);
	return v && *v ? v : NULL;
}

/* Resolve -format / CUSTOS_FORMAT / VAULT_FORMAT. Returns 0 or prints and returns 1. */
static int resolve_format(struct cli *c)
{
	const char *f = c->format;
	if (!f || !*f)
		f = env2("CUSTOS_FORMAT", "VAULT_FORMAT");
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

/* ------------------------------------------------------------------ client set-up */

char *cs_cli_trim_dup(const char *s, size_t n)
{
	while (n > 0 && isspace((unsigned char)*s))
		s++, n--;
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	char *r = strndup(s, n);
	if (!r)
		abort();
	return r;
}

/* Build the HTTP client from flags and environment. Returns 0 or prints the problem and
 * returns 1 (callers turn that into the command's exit code). */
int cs_cli_make_client(struct cli *c)
{
	struct cs_client *cl = &c->client;
	memset(cl, 0, sizeof *cl);
	cl->addr = c->address && *c->address ? c->address : env2("CUSTOS_ADDR", "VAULT_ADDR");
	if (!cl->addr)
		cl->addr = DEFAULT_ADDR;
	cl->ca_cert = c->ca_cert ? c->ca_cert : env2("CUSTOS_CACERT", "VAULT_CACERT");
	cl->ca_path = c->ca_path ? c->ca_path : env2("CUSTOS_CAPATH", "VAULT_CAPATH");
	cl->namespace = c->namespace ? c->namespace : env2("CUSTOS_NAMESPACE", "VAULT_NAMESPACE");
	if (c->tls_skip_verify_set) {
		cl->skip_verify = c->tls_skip_verify;
	} else {
		const char *sv = env2("CUSTOS_SKIP_VERIFY", "VAULT_SKIP_VERIFY");
		if (sv && cs_parse_bool(sv, &cl->skip_verify) != 0) {
			fprintf(stderr, "could not parse VAULT_SKIP_VERIFY\n");
			return 1;
		}
	}
	const char *to = env2("CUSTOS_CLIENT_TIMEOUT", "VAULT_CLIENT_TIMEOUT");
	if (to) {
		int64_t secs;
		if (cs_parse_duration(to, &secs) != 0 || secs <= 0) {
			fprintf(stderr, "could not parse VAULT_CLIENT_TIMEOUT\n");
			return 1;
		}
		cl->timeout_s = (long)secs;
	}

	/* Token: environment first, then the token file Vault's default helper uses. */
	cl->token = env2("CUSTOS_TOKEN", "VAULT_TOKEN");
	if (!cl->token) {
		const char *home = getenv("HOME");
		if (home && *home) {
			struct cs_buf p = CS_BUF_INIT;
			cs_buf_printf(&p, "%s/.vault-token", home);
			char *data = NULL;
			size_t len = 0;
			if (cs_read_file(p.data, &data, &len) == 0) {
				c->token_owned = cs_cli_trim_dup(data, len);
				cs_zero(data, len);
				cl->token = c->token_owned;
			}
			free(data);
			cs_buf_free(&p);
		}
	}
	if (cs_client_init(cl) != 0) {
		fprintf(stderr, "error initialising the HTTP client\n");
		return 1;
	}
	c->client_ready = true;
	return 0;
}

void cs_cli_free(struct cli *c)
{
	if (c->client_ready)
		cs_client_close(&c->client);
	if (c->token_owned) {
		cs_zero(c->token_owned, strlen(c->token_owned));
		free(c->token_owned);
	}
	cJSON *owned[] = {c->options,         c->versions, c->remove_data,
			  c->custom_metadata, c->policies, c->metadata};
	for (size_t i = 0; i < CS_ARRAY_LEN(owned); i++)
		cs_client_json_free_secure(owned[i]);
}

/* ------------------------------------------------------------------ output helpers */

/* Print a buffer plus newline to a stream, then wipe it (it may hold secrets). */
void cs_cli_emit(FILE *f, struct cs_buf *b)
{
	if (b->len)
		fwrite(b->data, 1, b->len, f);
	fputc('\n', f);
	fflush(f);
	cs_buf_free_secure(b);
}

void cs_cli_print_json(const cJSON *v, bool sort_top)
{
	struct cs_buf b = CS_BUF_INIT;
	cs_fmt_json(&b, v, sort_top);
	cs_cli_emit(stdout, &b);
}

/* "<prefix>: <Vault's API error text>" on stderr. */
void cs_cli_api_error(const struct cs_client_resp *r, const char *fmt, ...)
{
	struct cs_buf b = CS_BUF_INIT;
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		cs_buf_vprintf(&b, fmt, ap);
		va_end(ap);
		cs_buf_puts(&b, ": ");
	}
	cs_client_format_error(r, &b);
	cs_cli_emit(stderr, &b);
}

/* Remove leading and trailing '/' and whitespace (Vault's sanitizePath). */
char *cs_cli_sanitize_path(const char *s)
{
	size_t n = strlen(s);
	while (n > 0 && (isspace((unsigned char)*s) || *s == '/'))
		s++, n--;
	while (n > 0 && (isspace((unsigned char)s[n - 1]) || s[n - 1] == '/'))
		n--;
	char *r = strndup(s, n);
	if (!r)
		abort();
	return r;
}

/*
 * Go's Logical().Read treats a 404 as "no secret" unless the body still carries data or
 * warnings (KV v2 deleted versions, v1 paths on a v2 mount). Returns the secret to show
 * (borrowed from resp) or NULL.
 */
const cJSON *cs_cli_secret_from_404(const struct cs_client_resp *r)
{
	const cJSON *j = r->json;
	if (!cJSON_IsObject(j))
		return NULL;
	const cJSON *d = cs_cli_get(j, "data"), *w = cs_cli_get(j, "warnings");
	if ((cJSON_IsObject(d) && d->child) || (cJSON_IsArray(w) && w->child))
		return j;
	return NULL;
}

/* The response envelope re-ordered like the Go api.Secret struct Vault marshals. */
static cJSON *secret_struct(const cJSON *s)
{
	cJSON *o = cJSON_CreateObject();
	const cJSON *v;
	v = cs_cli_get(s, "request_id");
	cJSON_AddStringToObject(o, "request_id", cJSON_IsString(v) ? v->valuestring : "");
	v = cs_cli_get(s, "lease_id");
	cJSON_AddStringToObject(o, "lease_id", cJSON_IsString(v) ? v->valuestring : "");
	v = cs_cli_get(s, "lease_duration");
	cJSON_AddNumberToObject(o, "lease_duration", cJSON_IsNumber(v) ? v->valuedouble : 0);
	cJSON_AddBoolToObject(o, "renewable", cJSON_IsTrue(cs_cli_get(s, "renewable")));
	v = cs_cli_get(s, "data");
	cJSON_AddItemToObject(o, "data",
			      cJSON_IsObject(v) ? cJSON_Duplicate(v, true) : cJSON_CreateNull());
	v = cs_cli_get(s, "warnings");
	cJSON_AddItemToObject(o, "warnings",
			      cJSON_IsArray(v) ? cJSON_Duplicate(v, true) : cJSON_CreateNull());
	v = cs_cli_get(s, "auth");
	if (cJSON_IsObject(v))
		cJSON_AddItemToObject(o, "auth", cJSON_Duplicate(v, true));
	v = cs_cli_get(s, "wrap_info");
	if (cJSON_IsObject(v))
		cJSON_AddItemToObject(o, "wrap_info", cJSON_Duplicate(v, true));
	v = cs_cli_get(s, "mount_type");
	if (cJSON_IsString(v) && *v->valuestring)
		cJSON_AddStringToObject(o, "mount_type", v->valuestring);
	return o;
}

/* Vault's OutputSecret: table (warnings on stderr) or the JSON of the secret. */
int cs_cli_output_secret(struct cli *c, const cJSON *secret)
{
	if (cs_cli_is_json(c)) {
		cJSON *o = secret_struct(secret);
		cs_cli_print_json(o, false);
		cs_client_json_free_secure(o);
		return 0;
	}
	struct cs_buf w = CS_BUF_INIT, b = CS_BUF_INIT;
	cs_fmt_warnings(&w, secret);
	if (w.len) {
		fwrite(w.data, 1, w.len, stderr);
		fflush(stderr);
	}
	cs_buf_free(&w);
	cs_fmt_secret_table(&b, secret);
	if (b.len)
		cs_cli_emit(stdout, &b);
	cs_buf_free_secure(&b);
	return 0;
}

/* PrintRaw: a bare value, newline only when stdout is a terminal (Vault's behaviour,
 * so `$(custos read -field=x ...)` gets exactly the value). */
static void print_raw(struct cs_buf *b)
{
	if (b->len)
		fwrite(b->data, 1, b->len, stdout);
	if (isatty(STDOUT_FILENO))
		fputc('\n', stdout);
	fflush(stdout);
	cs_buf_free_secure(b);
}

/* Vault's RawField: the named value of a secret (data keys, or envelope fields). */
static const cJSON *raw_secret_field(const cJSON *s, const char *field, cJSON *scratch)
{
	const cJSON *data = cs_cli_get(s, "data");
	const cJSON *auth = cs_cli_get(s, "auth");
	const cJSON *wi = cs_cli_get(s, "wrap_info");
	static const char *const auth_map[][2] = {{"token", "client_token"},
						  {"token_accessor", "accessor"},
						  {"token_duration", "lease_duration"},
						  {"token_renewable", "renewable"},
						  {"token_policies", "token_policies"},
						  {"identity_policies", "identity_policies"},
						  {"policies", "policies"}};
	static const char *const wrap_map[][2] = {{"wrapping_token", "token"},
						  {"wrapping_accessor", "accessor"},
						  {"wrapping_token_ttl", "ttl"},
						  {"wrapping_token_creation_time", "creation_time"},
						  {"wrapping_token_creation_path", "creation_path"},
						  {"wrapped_accessor", "wrapped_accessor"}};
	if (cJSON_IsObject(auth)) {
		for (size_t i = 0; i < CS_ARRAY_LEN(auth_map); i++)
			if (strcmp(field, auth_map[i][0]) == 0)
				return cs_cli_get(auth, auth_map[i][1]);
	} else if (cJSON_IsObject(wi)) {
		for (size_t i = 0; i < CS_ARRAY_LEN(wrap_map); i++)
			if (strcmp(field, wrap_map[i][0]) == 0)
				return cs_cli_get(wi, wrap_map[i][1]);
	} else {
		if (strcmp(field, "lease_duration") == 0 ||
		    strcmp(field, "refresh_interval") == 0 || strcmp(field, "lease_id") == 0 ||
		    strcmp(field, "request_id") == 0) {
			const char *k =
			    strcmp(field, "refresh_interval") == 0 ? "lease_duration" : field;
			const cJSON *v = cs_cli_get(s, k);
			if (v)
				return v;
			/* Go's zero value, not "missing". */
			cJSON_AddItemToObject(scratch, "v",
					      strcmp(k, "lease_duration") == 0
						  ? cJSON_CreateNumber(0)
						  : cJSON_CreateString(""));
			return cs_cli_get(scratch, "v");
		}
		if (strcmp(field, "renewable") == 0) {
			cJSON_AddBoolToObject(scratch, "v",
					      cJSON_IsTrue(cs_cli_get(s, "renewable")));
			return cs_cli_get(scratch, "v");
		}
		if (strcmp(field, "data") == 0) {
			const cJSON *dd = cs_cli_get(data, "data");
			return dd ? dd : data;
		}
	}
	return cs_cli_get(data, field);
}

/* Vault's PrintRawField. Returns the exit code. */
int cs_cli_print_field(struct cli *c, const cJSON *obj, const char *field, bool secret,
		       const char *type_name)
{
	cJSON *scratch = cJSON_CreateObject();
	const cJSON *v = secret ? raw_secret_field(obj, field, scratch) : cs_cli_get(obj, field);
	if (!v || cJSON_IsNull(v)) {
		fprintf(stderr, "Field \"%s\" not present in %s\n", field, type_name);
		cJSON_Delete(scratch);
		return 1;
	}
	if (secret && !cs_cli_is_json(c)) {
		struct cs_buf w = CS_BUF_INIT;
		cs_fmt_warnings(&w, obj);
		if (w.len)
			fwrite(w.data, 1, w.len, stderr);
		cs_buf_free(&w);
	}
	struct cs_buf b = CS_BUF_INIT;
	if (cs_cli_is_json(c))
		cs_fmt_json(&b, v, true);
	else
		cs_fmt_value(&b, v);
	print_raw(&b);
	cJSON_Delete(scratch);
	return 0;
}

/* ------------------------------------------------------------------ K=V input */

int cs_cli_read_stream(FILE *f, struct cs_buf *out)
{
	char tmp[4096];
	size_t n;
	while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) {
		if (out->len + n > MAX_INPUT) {
			cs_zero(tmp, sizeof tmp);
			return EFBIG;
		}
		cs_buf_append(out, tmp, n);
	}
	cs_zero(tmp, sizeof tmp);
	return ferror(f) ? EIO : 0;
}

/* Merge a JSON object read from bytes into obj (kv-builder's addReader). */
static int merge_json(cJSON *obj, const char *data, size_t len, struct cs_buf *err)
{
	cJSON *j = cJSON_ParseWithLength(data, len);
	if (!cJSON_IsObject(j)) {
		cs_buf_puts(err, j ? "JSON input must be an object" : "invalid JSON input");
		cs_client_json_free_secure(j);
		return -1;
	}
	for (cJSON *k = j->child; k; k = k->next) {
		cJSON_DeleteItemFromObjectCaseSensitive(obj, k->string);
		cJSON_AddItemToObject(obj, k->string, cJSON_Duplicate(k, true));
	}
	cs_client_json_free_secure(j);
	return 0;
}

/*
 * kv-builder semantics (what `vault write` accepts): "k=v"; "k=@file" (file contents);
 * "k=\@x" (a literal "@x"); "k=-" (all of stdin); "-" (a JSON object on stdin, merged);
 * "@file" (a JSON object in a file, merged). A repeated key becomes a list. stdin can be
 * consumed once. Returns 0 or -1 with the reason in err.
 */
int cs_cli_parse_kv(cJSON *obj, int argc, char **argv, struct cs_buf *err)
{
	bool stdin_used = false;
	for (int i = 0; i < argc; i++) {
		const char *raw = argv[i];
		if (!*raw)
			continue;
		struct cs_buf in = CS_BUF_INIT;
		int rc = 0;
		if (strcmp(raw, "-") == 0 || raw[0] == '@') {
			if (raw[0] == '-') {
				if (stdin_used) {
					cs_buf_puts(err, "stdin already consumed");
					return -1;
				}
				stdin_used = true;
				rc = cs_cli_read_stream(stdin, &in);
				if (rc)
					cs_buf_printf(err, "reading stdin: %s", strerror(rc));
			} else {
				char *d = NULL;
				size_t n = 0;
				rc = cs_read_file(raw + 1, &d, &n);
				if (rc)
					cs_buf_printf(err, "open %s: %s", raw + 1, strerror(rc));
				else
					cs_buf_append(&in, d, n);
				if (d)
					cs_zero(d, n);
				free(d);
			}
			if (rc == 0)
				rc = merge_json(obj, in.data ? in.data : "", in.len, err);
			cs_buf_free_secure(&in);
			if (rc)
				return -1;
			continue;
		}
		const char *eq = strchr(raw, '=');
		if (!eq) {
			cs_buf_puts(err, "format must be key=value");
			return -1;
		}
		char *key = strndup(raw, (size_t)(eq - raw));
		if (!key)
			abort();
		const char *val = eq + 1;
		if (val[0] == '@') {
			char *d = NULL;
			size_t n = 0;
			rc = cs_read_file(val + 1, &d, &n);
			if (rc)
				cs_buf_printf(err, "error reading file: open %s: %s", val + 1,
					      strerror(rc));
			else
				cs_buf_append(&in, d, n);
			if (d)
				cs_zero(d, n);
			free(d);
		} else if (val[0] == '\\' && val[1] == '@') {
			cs_buf_puts(&in, val + 1);
		} else if (strcmp(val, "-") == 0) {
			if (stdin_used) {
				cs_buf_puts(err, "stdin already consumed");
				rc = -1;
			} else {
				stdin_used = true;
				rc = cs_cli_read_stream(stdin, &in);
				if (rc)
					cs_buf_printf(err, "reading stdin: %s", strerror(rc));
			}
		} else {
			cs_buf_puts(&in, val);
		}
		if (rc) {
			free(key);
			cs_buf_free_secure(&in);
			return -1;
		}
		cJSON *sv = cJSON_CreateString(in.data ? in.data : "");
		cs_buf_free_secure(&in);
		cJSON *prev = cJSON_GetObjectItemCaseSensitive(obj, key);
		if (prev) {
			if (!cJSON_IsArray(prev)) {
				cJSON *arr = cJSON_CreateArray();
				cJSON_AddItemToArray(arr, cJSON_Duplicate(prev, true));
				cJSON_ReplaceItemInObjectCaseSensitive(obj, key, arr);
				prev = arr;
			}
			cJSON_AddItemToArray(prev, sv);
		} else {
			cJSON_AddItemToObject(obj, key, sv);
		}
		free(key);
	}
	return 0;
}

cJSON *cs_cli_kv_data(int argc, char **argv)
{
	cJSON *data = cJSON_CreateObject();
	struct cs_buf err = CS_BUF_INIT;
	if (cs_cli_parse_kv(data, argc, argv, &err) != 0) {
		fprintf(stderr, "Failed to parse K=V data: %s\n", err.data);
		cs_client_json_free_secure(data);
		data = NULL;
	}
	cs_buf_free(&err);
	return data;
}

static void query_escape(struct cs_buf *b, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (isalnum(*p) || strchr("-._~", *p))
			cs_buf_putc(b, (char)*p);
		else if (*p == ' ')
			cs_buf_putc(b, '+');
		else
			cs_buf_printf(b, "%%%02X", *p);
	}
}

/* K=V arguments as a query string (Vault sends read/delete data as URL parameters). */
static int kv_query(int argc, char **argv, struct cs_buf *q, struct cs_buf *err)
{
	cJSON *obj = cJSON_CreateObject();
	if (cs_cli_parse_kv(obj, argc, argv, err) != 0) {
		cs_client_json_free_secure(obj);
		return -1;
	}
	for (cJSON *k = obj->child; k; k = k->next) {
		const cJSON *items = k;
		const cJSON *one = cJSON_IsArray(k) ? k->child : k;
		for (const cJSON *v = one; v; v = cJSON_IsArray(items) ? v->next : NULL) {
			struct cs_buf val = CS_BUF_INIT;
			cs_fmt_value(&val, v);
			if (q->len)
				cs_buf_putc(q, '&');
			query_escape(q, k->string);
			cs_buf_putc(q, '=');
			query_escape(q, val.data ? val.data : "");
			cs_buf_free_secure(&val);
		}
	}
	cs_client_json_free_secure(obj);
	return 0;
}

/* ------------------------------------------------------------------ usage */

static const char usage_main[] =
    "Usage: custos <command> [args]\n"
    "\n"
    "Common commands:\n"
    "    read        Read data and retrieves secrets\n"
    "    write       Write data, configuration, and secrets\n"
    "    delete      Delete secrets and configuration\n"
    "    list        List data or secrets\n"
    "    login       Authenticate locally\n"
    "    status      Print seal and HA status\n"
    "\n"
    "Other commands:\n"
    "    audit       Interact with audit devices\n"
    "    auth        Interact with auth methods\n"
    "    kv          Interact with custos's Key-Value storage\n"
    "    operator    Perform operator-specific tasks (init, unseal, seal, raft)\n"
    "    policy      Interact with policies\n"
    "    secrets     Interact with secrets engines (enable, disable, list)\n"
    "    server      Start a custos server\n"
    "    token       Interact with tokens\n"
    "    version     Prints the custos version\n"
    "\n"
    "Environment: CUSTOS_ADDR or VAULT_ADDR (default " DEFAULT_ADDR "),\n"
    "CUSTOS_TOKEN or VAULT_TOKEN (else ~/.vault-token), CUSTOS_CACERT or VAULT_CACERT,\n"
    "CUSTOS_SKIP_VERIFY or VAULT_SKIP_VERIFY, CUSTOS_FORMAT or VAULT_FORMAT.\n";

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

static int cmd_init(struct cli *c, int argc, char **argv, int start)
{
	int code;
	int i = cs_cli_start(c, C_INIT, argc, argv, start, 0, 0, "0", &code);
	if (i < 0)
		return code;

	struct cs_client_resp r;
	if (c->init_status) {
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
			printf("%s\n",
			       inited ? "Vault is initialized" : "Vault is not initialized");
		}
		cs_client_resp_free(&r);
		return inited ? 0 : 2;
	}

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

	const cJSON *keys = cs_cli_get(r.json, "keys"), *b64 = cs_cli_get(r.json, "keys_base64");
	const cJSON *rkeys = cs_cli_get(r.json, "recovery_keys");
	const cJSON *rb64 = cs_cli_get(r.json, "recovery_keys_base64");
	const cJSON *root = cs_cli_get(r.json, "root_token");
	int nkeys = cJSON_GetArraySize(keys), nrkeys = cJSON_GetArraySize(rkeys);

	if (cs_cli_is_json(c)) {
		/* Vault's machineInit struct, in its field order. */
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToObject(o, "unseal_keys_b64",
				      cJSON_IsArray(b64) ? cJSON_Duplicate(b64, true)
							 : cJSON_CreateArray());
		cJSON_AddItemToObject(o, "unseal_keys_hex",
				      cJSON_IsArray(keys) ? cJSON_Duplicate(keys, true)
							  : cJSON_CreateArray());
		cJSON_AddNumberToObject(o, "unseal_shares", nkeys ? (double)c->key_shares : 1);
		cJSON_AddNumberToObject(o, "unseal_threshold",
					nkeys ? (double)c->key_threshold : 1);
		cJSON_AddItemToObject(o, "recovery_keys_b64",
				      cJSON_IsArray(rb64) ? cJSON_Duplicate(rb64, true)
							  : cJSON_CreateArray());
		cJSON_AddItemToObject(o, "recovery_keys_hex",
				      cJSON_IsArray(rkeys) ? cJSON_Duplicate(rkeys, true)
							   : cJSON_CreateArray());
		cJSON_AddNumberToObject(o, "recovery_keys_shares", (double)c->recovery_shares);
		cJSON_AddNumberToObject(o, "recovery_keys_threshold",
					(double)c->recovery_threshold);
		cJSON_AddStringToObject(o, "root_token",
					cJSON_IsString(root) ? root->valuestring : "");
		cs_cli_print_json(o, false);
		cs_client_json_free_secure(o);
		cs_client_resp_free(&r);
		return 0;
	}

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
	cs_client_resp_free(&r);
	return 0;
}

/* termios state for restoring echo if the prompt is interrupted. */
static struct termios saved_tio;
static volatile sig_atomic_t tio_saved;

static void restore_tty(int sig)
{
	if (tio_saved)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Read one line into buf (NUL-terminated, trailing CR/LF removed); echo off on a tty.
 * Returns 0, or -1 on EOF/error. */
int cs_cli_read_secret_line(char *buf, size_t cap, bool tty)
{
	struct sigaction sa, old_int, old_term;
	if (tty) {
		if (tcgetattr(STDIN_FILENO, &saved_tio) != 0)
			return -1;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = restore_tty;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, &old_int);
		sigaction(SIGTERM, &sa, &old_term);
		tio_saved = 1;
		struct termios t = saved_tio;
		t.c_lflag &= ~(tcflag_t)ECHO;
		t.c_lflag |= ECHONL;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &t);
	}
	size_t n = 0;
	int rc = -1;
	for (;;) {
		char ch;
		ssize_t r = read(STDIN_FILENO, &ch, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = n > 0 ? 0 : -1;
			break;
		}
		if (ch == '\n') {
			rc = 0;
			break;
		}
		if (n + 1 < cap)
			buf[n++] = ch;
	}
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\r' || isspace((unsigned char)buf[n - 1])))
		buf[--n] = '\0';
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
		tio_saved = 0;
		sigaction(SIGINT, &old_int, NULL);
		sigaction(SIGTERM, &old_term, NULL);
	}
	return rc;
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

static int cmd_operator(struct cli *c, int argc, char **argv)
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

static int cmd_status(struct cli *c, int argc, char **argv, int start)
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

/* ------------------------------------------------------------------ read/write/list/delete */

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

/*
 * The shape shared by read and delete: flags, PATH [K=V...], the pairs sent as URL
 * parameters. Returns 0 with the response in *r and the sanitised path in *path (both
 * the caller's to free), or -1 with *code set.
 */
static int path_query_request(struct cli *c, uint64_t cmd, int argc, char **argv, int start,
			      const char *method, const char *kv_what, struct cs_client_resp *r,
			      char **path, int *code)
{
	int i = cs_cli_begin(c, cmd, argc, argv, start, code);
	if (i < 0)
		return -1;
	if (cs_cli_bad_nargs(argc - i, 1, -1, cmd == C_READ ? "1" : "at least 1")) {
		*code = 1;
		return -1;
	}
	struct cs_buf q = CS_BUF_INIT, err = CS_BUF_INIT;
	if (kv_query(argc - i - 1, argv + i + 1, &q, &err) != 0) {
		fprintf(stderr, "Failed to parse %s data: %s\n", kv_what, err.data);
		cs_buf_free(&err);
		cs_buf_free_secure(&q);
		*code = 1;
		return -1;
	}
	cs_buf_free(&err);
	if (cs_cli_make_client(c)) {
		cs_buf_free_secure(&q);
		*code = 2;
		return -1;
	}
	*path = cs_cli_sanitize_path(argv[i]);
	/* A transport failure leaves r->status at 0, which the callers test. */
	(void)cs_client_request(&c->client, method, *path, q.data, NULL, r);
	cs_buf_free_secure(&q);
	return 0;
}

static int cmd_read(struct cli *c, int argc, char **argv, int start)
{
	int code;
	char *path = NULL;
	struct cs_client_resp r;
	if (path_query_request(c, C_READ, argc, argv, start, "GET", "K=V", &r, &path, &code) != 0)
		return code;
	const cJSON *secret = NULL;
	if (r.status == 0 || (!cs_client_resp_ok(&r) && r.status != 404)) {
		cs_cli_api_error(&r, "Error reading %s", path);
		code = 2;
		goto out;
	}
	secret =
	    r.status == 404 ? cs_cli_secret_from_404(&r) : (cJSON_IsObject(r.json) ? r.json : NULL);
	if (!secret) {
		fprintf(stderr, "No value found at %s\n", path);
		code = 2;
		goto out;
	}
	if (c->field && *c->field)
		code = cs_cli_print_field(c, secret, c->field, true, "secret");
	else
		code = cs_cli_output_secret(c, secret);
out:
	cs_client_resp_free(&r);
	free(path);
	return code;
}

/* Shared ending of write and delete: a body means a secret to print; none means the
 * Success! line (table format only, like Vault). */
int cs_cli_finish_write(struct cli *c, struct cs_client_resp *r, const char *success,
			const char *path)
{
	if (r->status == 204 || r->body.len == 0 || !cJSON_IsObject(r->json)) {
		if (!cs_cli_is_json(c))
			printf("%s%s\n", success, path);
		return 0;
	}
	if (c->field && *c->field)
		return cs_cli_print_field(c, r->json, c->field, true, "secret");
	return cs_cli_output_secret(c, r->json);
}

static int cmd_write(struct cli *c, int argc, char **argv, int start)
{
	int code;
	int i = cs_cli_begin(c, C_WRITE, argc, argv, start, &code);
	if (i < 0)
		return code;
	if (cs_cli_bad_nargs(argc - i, 1, -1, "1"))
		return 1;
	if (argc - i == 1 && !c->force) {
		fprintf(stderr, "Must supply data or use -force\n");
		return 1;
	}
	cJSON *body = cs_cli_kv_data(argc - i - 1, argv + i + 1);
	if (!body)
		return 1;
	if (cs_cli_make_client(c)) {
		cs_client_json_free_secure(body);
		return 2;
	}
	char *path = cs_cli_sanitize_path(argv[i]);
	struct cs_client_resp r;
	int rc = cs_client_request(&c->client, "PUT", path, NULL, body, &r);
	cs_client_json_free_secure(body);
	if (rc != 0 || !cs_client_resp_ok(&r)) {
		cs_cli_api_error(&r, "Error writing data to %s", path);
		code = 2;
	} else {
		code = cs_cli_finish_write(c, &r, "Success! Data written to: ", path);
	}
	cs_client_resp_free(&r);
	free(path);
	return code;
}

int cs_cli_list_path(struct cli *c, const char *path)
{
	int code;
	struct cs_client_resp r;
	int rc = cs_client_request(&c->client, "LIST", path, NULL, NULL, &r);
	const cJSON *secret = NULL, *data = NULL, *keys = NULL;
	if (rc != 0 || (!cs_client_resp_ok(&r) && r.status != 404)) {
		cs_cli_api_error(&r, "Error listing %s", path);
		code = 2;
		goto out;
	}
	secret =
	    r.status == 404 ? cs_cli_secret_from_404(&r) : (cJSON_IsObject(r.json) ? r.json : NULL);
	data = secret ? cs_cli_get(secret, "data") : NULL;
	keys = cJSON_IsObject(data) ? cs_cli_get(data, "keys") : NULL;
	if (!cJSON_IsArray(keys))
		keys = NULL;
	if (cs_cli_is_json(c) && !keys) {
		printf("{}\n");
		code = 2;
		goto out;
	}
	if (!secret) {
		fprintf(stderr, "No value found at %s\n", path);
		code = 2;
		goto out;
	}
	if (!cJSON_IsObject(data)) {
		code = cs_cli_output_secret(c, secret);
		goto out;
	}
	if (!keys) {
		fprintf(stderr, "No entries found at %s\n", path);
		code = 2;
		goto out;
	}
	code = 0;
	if (cs_cli_is_json(c)) {
		if (c->detailed) {
			cJSON *o = secret_struct(secret);
			cs_cli_print_json(o, false);
			cJSON_Delete(o);
		} else {
			cs_cli_print_json(keys, true);
		}
	} else {
		struct cs_buf w = CS_BUF_INIT, b = CS_BUF_INIT;
		cs_fmt_warnings(&w, secret);
		if (w.len)
			fwrite(w.data, 1, w.len, stderr);
		cs_buf_free(&w);
		cs_fmt_keys_table(&b, keys);
		if (b.len)
			cs_cli_emit(stdout, &b);
		cs_buf_free(&b);
	}
out:
	cs_client_resp_free(&r);
	return code;
}

static int cmd_list(struct cli *c, int argc, char **argv, int start)
{
	int code;
	int i = cs_cli_start(c, C_LIST, argc, argv, start, 1, 1, "1", &code);
	if (i < 0)
		return code;
	char *path = cs_cli_sanitize_path(argv[i]);
	code = cs_cli_list_path(c, path);
	free(path);
	return code;
}

static int cmd_delete(struct cli *c, int argc, char **argv, int start)
{
	int code;
	char *path = NULL;
	struct cs_client_resp r;
	if (path_query_request(c, C_DELETE, argc, argv, start, "DELETE", "string list", &r, &path,
			       &code) != 0)
		return code;
	if (r.status == 0 || !cs_client_resp_ok(&r)) {
		cs_cli_api_error(&r, "Error deleting %s", path);
		code = 2;
	} else {
		code =
		    cs_cli_finish_write(c, &r, "Success! Data deleted (if it existed) at: ", path);
	}
	cs_client_resp_free(&r);
	free(path);
	return code;
}

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

static int cmd_secrets(struct cli *c, int argc, char **argv)
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

static int cmd_auth(struct cli *c, int argc, char **argv)
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

static int cmd_audit(struct cli *c, int argc, char **argv)
{
	static const struct cs_cli_sub subs[] = {
	    {"enable", cmd_audit_enable}, {"disable", cmd_audit_disable}, {"list", cmd_audit_list}};
	return cs_cli_dispatch(c, argc, argv, 2, subs, CS_ARRAY_LEN(subs), usage_audit);
}

/* ------------------------------------------------------------------ entry point */

int cs_cli_main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage_main, stderr);
		return 127;
	}
	const char *verb = argv[1];
	if (strcmp(verb, "version") == 0 || strcmp(verb, "-version") == 0 ||
	    strcmp(verb, "--version") == 0 || strcmp(verb, "-v") == 0) {
		printf("custos v%s, built %s\n", CUSTOS_VERSION, CUSTOS_BUILD_DATE);
		return 0;
	}
	if (strcmp(verb, "help") == 0 || strcmp(verb, "-h") == 0 || strcmp(verb, "-help") == 0 ||
	    strcmp(verb, "--help") == 0) {
		fputs(usage_main, stdout);
		return 0;
	}

	struct cli c;
	memset(&c, 0, sizeof c);
	int code;
	if (strcmp(verb, "operator") == 0)
		code = cmd_operator(&c, argc, argv);
	else if (strcmp(verb, "status") == 0)
		code = cmd_status(&c, argc, argv, 2);
	else if (strcmp(verb, "read") == 0)
		code = cmd_read(&c, argc, argv, 2);
	else if (strcmp(verb, "write") == 0)
		code = cmd_write(&c, argc, argv, 2);
	else if (strcmp(verb, "list") == 0)
		code = cmd_list(&c, argc, argv, 2);
	else if (strcmp(verb, "delete") == 0)
		code = cmd_delete(&c, argc, argv, 2);
	else if (strcmp(verb, "secrets") == 0)
		code = cmd_secrets(&c, argc, argv);
	else if (strcmp(verb, "auth") == 0)
		code = cmd_auth(&c, argc, argv);
	else if (strcmp(verb, "audit") == 0)
		code = cmd_audit(&c, argc, argv);
	else if (strcmp(verb, "kv") == 0)
		code = cs_cli_kv(&c, argc, argv);
	else if (strcmp(verb, "policy") == 0)
		code = cs_cli_policy(&c, argc, argv);
	else if (strcmp(verb, "token") == 0)
		code = cs_cli_token(&c, argc, argv);
	else if (strcmp(verb, "login") == 0)
		code = cs_cli_login(&c, argc, argv);
	else {
		fprintf(stderr, "Unknown command: %s\n\n", verb);
		fputs(usage_main, stderr);
		code = 127;
	}
	fflush(stdout);
	cs_cli_free(&c);
	return code;
}
