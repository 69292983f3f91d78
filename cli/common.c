/*
 * Helpers every command family shares: the HTTP client built from flags and
 * environment, one-call wrappers, Vault-shaped output (secrets, fields, lists, API
 * errors), K=V / @file / stdin input, and the hidden-line prompt.
 */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>

#include "cli/cli_internal.h"
#include "cli/format.h"

#define DEFAULT_ADDR CS_CLI_DEFAULT_ADDR
/* Largest input accepted from stdin or a file for `write` values. */
#define MAX_INPUT (32u * 1024 * 1024)

/* ------------------------------------------------------------------ client set-up */

const char *cs_cli_env2(const char *a, const char *b)
{
	const char *v = getenv(a);
	if (v && *v)
		return v;
	v = getenv(b);
	return v && *v ? v : NULL;
}

bool cs_cli_has_field(const struct cli *c)
{
	return c->field && *c->field;
}

/* One API call; on failure prints "<what>: <API error>" and returns false. The caller
 * frees *r either way. */
bool cs_cli_call(struct cli *c, const char *method, const char *path, const char *query,
		 const cJSON *body, struct cs_client_resp *r, const char *what)
{
	if (cs_client_request(&c->client, method, path, query, body, r) == 0 &&
	    cs_client_resp_ok(r))
		return true;
	if (what)
		cs_cli_api_error(r, "%s", what);
	else
		cs_cli_api_error(r, NULL);
	return false;
}

/* A delete-type request whose failure reads "Error deleting WHAT: <API error>". */
bool cs_cli_call_delete(struct cli *c, const char *method, const char *path, const cJSON *body,
			const char *what_path, struct cs_client_resp *r)
{
	struct cs_buf what = CS_BUF_INIT;
	cs_buf_printf(&what, "Error deleting %s", what_path);
	bool ok = cs_cli_call(c, method, path, NULL, body, r, what.data);
	cs_buf_free(&what);
	return ok;
}

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
	cl->addr =
	    c->address && *c->address ? c->address : cs_cli_env2("CUSTOS_ADDR", "VAULT_ADDR");
	if (!cl->addr)
		cl->addr = DEFAULT_ADDR;
	cl->ca_cert = c->ca_cert ? c->ca_cert : cs_cli_env2("CUSTOS_CACERT", "VAULT_CACERT");
	cl->ca_path = c->ca_path ? c->ca_path : cs_cli_env2("CUSTOS_CAPATH", "VAULT_CAPATH");
	cl->namespace =
	    c->namespace ? c->namespace : cs_cli_env2("CUSTOS_NAMESPACE", "VAULT_NAMESPACE");
	if (c->tls_skip_verify_set) {
		cl->skip_verify = c->tls_skip_verify;
	} else {
		const char *sv = cs_cli_env2("CUSTOS_SKIP_VERIFY", "VAULT_SKIP_VERIFY");
		if (sv && cs_parse_bool(sv, &cl->skip_verify) != 0) {
			fprintf(stderr, "could not parse VAULT_SKIP_VERIFY\n");
			return 1;
		}
	}
	const char *to = cs_cli_env2("CUSTOS_CLIENT_TIMEOUT", "VAULT_CLIENT_TIMEOUT");
	if (to) {
		int64_t secs;
		if (cs_parse_duration(to, &secs) != 0 || secs <= 0) {
			fprintf(stderr, "could not parse VAULT_CLIENT_TIMEOUT\n");
			return 1;
		}
		cl->timeout_s = (long)secs;
	}

	/* Token: environment first, then the token file Vault's default helper uses. */
	cl->token = cs_cli_env2("CUSTOS_TOKEN", "VAULT_TOKEN");
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
