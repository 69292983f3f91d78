/*
 * The generic path verbs `read`, `write`, `list`, `delete`, `path-help` and `login` (token,
 * userpass and approle methods; the token goes to ~/.vault-token unless -no-store).
 * read/delete send K=V pairs as URL parameters, write as the JSON body.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli_internal.h"
#include "cli/families.h"
#include "cli/format.h"

/* ------------------------------------------------------------------ flags & usage */

static const struct flag read_write_flags[] = {
    {"field", F_STR, OFF(field), C_READ | C_WRITE | C_DELETE | C_LOGIN, 0},
    {"force", F_BOOL, OFF(force), C_WRITE, 0},
    {"f", F_BOOL, OFF(force), C_WRITE, 0},
    {"detailed", F_BOOL, OFF(detailed), C_LIST, 0},
    {"path", F_STR, OFF(path), C_LOGIN, 0},
    {"method", F_STR, OFF(method), C_LOGIN, 0},
    {"no-store", F_BOOL, OFF(no_store), C_LOGIN, 0},
    {"no-print", F_BOOL, OFF(no_print), C_LOGIN, 0},
    {"token-only", F_BOOL, OFF(token_only), C_LOGIN, 0},
};

static const struct usage read_write_usages[] = {
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
    {C_PATHHELP, "Usage: custos path-help [options] PATH\n\n"
		 "  Prints the help of the API path PATH: what it does and its parameters\n"
		 "  (-format=json: the whole answer, with its OpenAPI document).\n"},
    {C_LOGIN, "Usage: custos login [options] [AUTH K=V...]\n\n"
	      "  Authenticates and stores the token in ~/.vault-token.\n\n"
	      "    custos login TOKEN\n"
	      "    custos login -method=userpass username=NAME [password=PASS]\n"
	      "    custos login -method=approle role_id=ID secret_id=SECRET\n\n"
	      "  -method=<string>       token (default), userpass or approle.\n"
	      "  -path=<string>         Mount path of the auth method (default: METHOD).\n"
	      "  -no-store              Do not store the token.\n"
	      "  -no-print              Do not print the token.\n"
	      "  -token-only            Print only the token (implies -no-store).\n"
	      "  -field=<string>        Print only this field.\n"},
};

const struct cs_cli_family cs_cli_read_write_family =
    CS_CLI_FAMILY(read_write_flags, read_write_usages);

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

int cs_cli_read(struct cli *c, int argc, char **argv, int start)
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

/* GET PATH?help=1 (Vault's help request; it needs a token like a read). */
int cs_cli_path_help(struct cli *c, int argc, char **argv, int start)
{
	int code;
	int i = cs_cli_begin(c, C_PATHHELP, argc, argv, start, &code);
	if (i < 0)
		return code;
	if (cs_cli_bad_nargs(argc - i, 1, 1, "1"))
		return 1;
	if (cs_cli_make_client(c))
		return 2;
	char *path = cs_cli_sanitize_path(argv[i]);
	struct cs_client_resp r;
	(void)cs_client_request(&c->client, "GET", path, "help=1", NULL, &r);
	const cJSON *help = cJSON_GetObjectItemCaseSensitive(r.json, "help");
	if (r.status == 0 || !cs_client_resp_ok(&r) || !cJSON_IsString(help)) {
		cs_cli_api_error(&r, "Error retrieving help");
		code = 2;
	} else if (c->format && strcmp(c->format, "json") == 0) {
		char *s = cJSON_Print(r.json);
		printf("%s\n", s ? s : "");
		free(s);
		code = 0;
	} else {
		fputs(help->valuestring, stdout);
		code = 0;
	}
	cs_client_resp_free(&r);
	free(path);
	return code;
}

int cs_cli_write(struct cli *c, int argc, char **argv, int start)
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

int cs_cli_list(struct cli *c, int argc, char **argv, int start)
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

int cs_cli_delete(struct cli *c, int argc, char **argv, int start)
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

/* ------------------------------------------------------------------ login */

/* Prompt on stderr and read a hidden line; NULL (after printing why) on failure. */
static char *prompt_secret(const char *prompt, const char *what)
{
	char buf[1024];
	bool tty = isatty(STDIN_FILENO);
	fprintf(stderr, "%s", prompt);
	fflush(stderr);
	int rc = cs_cli_read_secret_line(buf, sizeof buf, tty);
	fprintf(stderr, "\n");
	if (rc != 0) {
		cs_zero(buf, sizeof buf);
		fprintf(stderr,
			"Error authenticating: An error occurred attempting to ask for a %s: "
			"nothing was read from standard input\n",
			what);
		return NULL;
	}
	char *r = strdup(buf);
	cs_zero(buf, sizeof buf);
	if (!r)
		abort();
	return r;
}

static const char *cfg_str(const cJSON *cfg, const char *k)
{
	const cJSON *v = cs_cli_get(cfg, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A config value, or a hidden prompt for it. NULL with an error printed. */
static char *cfg_or_prompt(struct cli *c, const cJSON *cfg, const char *k, const char *prompt,
			   const char *refusal)
{
	const char *v = cfg_str(cfg, k);
	if (v && *v)
		return strdup(v);
	if (c->non_interactive) {
		fprintf(stderr, "Error authenticating: %s\n", refusal);
		return NULL;
	}
	return prompt_secret(prompt, k);
}

/* Token method: verify with lookup-self and rebuild the auth block from it. */
static cJSON *login_token(struct cli *c, const cJSON *cfg)
{
	bool lookup = true;
	const char *l = cfg_str(cfg, "lookup");
	if (l && cs_parse_bool(l, &lookup) != 0) {
		fprintf(stderr, "Error authenticating: Failed to parse \"lookup\" as boolean: %s\n",
			l);
		return NULL;
	}
	char *raw = cfg_or_prompt(c, cfg, "token", "Token (will be hidden): ",
				  "'token' not supplied and refusing to pull from stdin");
	if (!raw)
		return NULL;
	char *token = cs_cli_trim_dup(raw, strlen(raw));
	cs_zero(raw, strlen(raw));
	free(raw);
	cJSON *secret = NULL;
	if (!*token) {
		fprintf(stderr, "Error authenticating: a token must be passed to auth, please "
				"view the help for more information\n");
		goto out;
	}
	if (!lookup) {
		secret = cJSON_CreateObject();
		cJSON *auth = cJSON_AddObjectToObject(secret, "auth");
		cJSON_AddStringToObject(auth, "client_token", token);
		goto out;
	}
	c->client.token = token;
	struct cs_client_resp r;
	if (cs_client_request(&c->client, "GET", "auth/token/lookup-self", NULL, NULL, &r) != 0 ||
	    !cs_client_resp_ok(&r)) {
		cs_cli_api_error(&r, "Error authenticating: error looking up token");
		cs_client_resp_free(&r);
		goto out;
	}
	const cJSON *d = cs_cli_get(r.json, "data");
	if (!cJSON_IsObject(d)) {
		fprintf(stderr, "Error authenticating: empty response from lookup-self\n");
		cs_client_resp_free(&r);
		goto out;
	}
	secret = cJSON_CreateObject();
	cJSON *auth = cJSON_AddObjectToObject(secret, "auth");
	const char *id = cfg_str(d, "id");
	cJSON_AddStringToObject(auth, "client_token", id && *id ? id : token);
	const char *acc = cfg_str(d, "accessor");
	cJSON_AddStringToObject(auth, "accessor", acc ? acc : "");
	static const char *const lists[][2] = {{"policies", "policies"},
					       {"token_policies", "policies"},
					       {"identity_policies", "identity_policies"}};
	for (size_t k = 0; k < CS_ARRAY_LEN(lists); k++) {
		const cJSON *v = cs_cli_get(d, lists[k][1]);
		cJSON_AddItemToObject(auth, lists[k][0],
				      cJSON_IsArray(v) ? cJSON_Duplicate(v, true)
						       : cJSON_CreateNull());
	}
	const cJSON *meta = cs_cli_get(d, "meta");
	cJSON_AddItemToObject(auth, "metadata",
			      cJSON_IsObject(meta) ? cJSON_Duplicate(meta, true)
						   : cJSON_CreateNull());
	const cJSON *ttl = cs_cli_get(d, "ttl");
	cJSON_AddNumberToObject(auth, "lease_duration", cJSON_IsNumber(ttl) ? ttl->valuedouble : 0);
	cJSON_AddBoolToObject(auth, "renewable", cJSON_IsTrue(cs_cli_get(d, "renewable")));
	cs_client_resp_free(&r);
out:
	c->client.token = NULL;
	cs_zero(token, strlen(token));
	free(token);
	return secret;
}

/* userpass / approle: one unauthenticated login write. Returns the response body. */
static cJSON *login_write(struct cli *c, const char *path, cJSON *body)
{
	struct cs_client_resp r;
	cJSON *secret = NULL;
	if (cs_cli_call(c, "PUT", path, NULL, body, &r, "Error authenticating")) {
		if (cJSON_IsObject(r.json))
			secret = cJSON_Duplicate(r.json, true);
		else
			fprintf(stderr, "Error authenticating: empty response from credential "
					"provider\n");
	}
	cs_client_resp_free(&r);
	cs_client_json_free_secure(body);
	return secret;
}

static cJSON *login_userpass(struct cli *c, const cJSON *cfg, const char *mount)
{
	const char *user = cfg_str(cfg, "username");
	if (!user || !*user) {
		fprintf(stderr, "Error authenticating: 'username' must be specified\n");
		return NULL;
	}
	char *pw = cfg_or_prompt(c, cfg, "password", "Password (will be hidden): ",
				 "'password' must be specified and refusing to pull from stdin");
	if (!pw)
		return NULL;
	cJSON *body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "password", pw);
	cs_zero(pw, strlen(pw));
	free(pw);
	struct cs_buf p = CS_BUF_INIT;
	cs_buf_printf(&p, "auth/%s/login/%s", mount, user);
	cJSON *s = login_write(c, p.data, body);
	cs_buf_free(&p);
	return s;
}

static cJSON *login_approle(struct cli *c, const cJSON *cfg, const char *mount)
{
	const char *role = cfg_str(cfg, "role_id");
	if (!role || !*role) {
		fprintf(stderr, "Error authenticating: 'role_id' must be specified\n");
		return NULL;
	}
	cJSON *body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "role_id", role);
	const char *sid = cfg_str(cfg, "secret_id");
	if (sid)
		cJSON_AddStringToObject(body, "secret_id", sid);
	struct cs_buf p = CS_BUF_INIT;
	cs_buf_printf(&p, "auth/%s/login", mount);
	cJSON *s = login_write(c, p.data, body);
	cs_buf_free(&p);
	return s;
}

/* Vault's default token helper: the token in ~/.vault-token, mode 0600. */
static int store_token(const char *token, struct cs_buf *err)
{
	const char *home = getenv("HOME");
	if (!home || !*home) {
		cs_buf_puts(err, "HOME is not set");
		return -1;
	}
	struct cs_buf p = CS_BUF_INIT;
	cs_buf_printf(&p, "%s/.vault-token", home);
	int fd = open(p.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = 0;
	if (fd < 0) {
		cs_buf_printf(err, "open %s: %s", p.data, strerror(errno));
		rc = -1;
	} else {
		size_t n = strlen(token);
		if (fchmod(fd, 0600) != 0 || write(fd, token, n) != (ssize_t)n) {
			cs_buf_printf(err, "write %s: %s", p.data, strerror(errno));
			rc = -1;
		}
		if (close(fd) != 0 && rc == 0) {
			cs_buf_printf(err, "close %s: %s", p.data, strerror(errno));
			rc = -1;
		}
	}
	cs_buf_free(&p);
	return rc;
}

static void warn_wrapped(const char *text)
{
	struct cs_buf b = CS_BUF_INIT;
	cs_fmt_wrap(&b, text, 0);
	cs_buf_putc(&b, '\n');
	cs_cli_emit(stderr, &b);
}

/*
 * Vault's extractToken: an auth block is the answer; a wrapped answer is unwrapped
 * (PUT sys/wrapping/unwrap with the wrapping token) unless `unwrap` is false, in which
 * case *wrapped is set. Takes `secret`; returns the result or NULL after printing.
 */
static cJSON *login_extract(struct cli *c, cJSON *secret, bool unwrap, bool *wrapped)
{
	*wrapped = false;
	for (int depth = 0; secret && depth < 4; depth++) {
		if (cJSON_IsObject(cs_cli_get(secret, "auth")))
			return secret;
		const cJSON *wi = cs_cli_get(secret, "wrap_info");
		if (!cJSON_IsObject(wi))
			break;
		const char *wacc = cfg_str(wi, "wrapped_accessor");
		if (!wacc || !*wacc) {
			fprintf(stderr, "Error extracting token: wrapped response does not contain "
					"a token\n");
			cs_client_json_free_secure(secret);
			return NULL;
		}
		if (!unwrap) {
			*wrapped = true;
			return secret;
		}
		char *wtok = strdup(cfg_str(wi, "token") ? cfg_str(wi, "token") : "");
		cs_client_json_free_secure(secret);
		secret = NULL;
		c->client.token = wtok;
		struct cs_client_resp r;
		if (cs_cli_call(c, "PUT", "sys/wrapping/unwrap", NULL, NULL, &r,
				"Error extracting token") &&
		    cJSON_IsObject(r.json))
			secret = cJSON_Duplicate(r.json, true);
		cs_client_resp_free(&r);
		c->client.token = NULL;
		cs_zero(wtok, strlen(wtok));
		free(wtok);
		if (!secret)
			return NULL;
	}
	fprintf(stderr, "Error extracting token: no auth or wrapping info in response\n");
	cs_client_json_free_secure(secret);
	return NULL;
}

/* -method, defaulting to "token"; malloc'd, or NULL after printing that it is not one
 * we support (an exit-1 error). */
static char *login_method(const struct cli *c)
{
	char *method = cs_cli_sanitize_path(c->method ? c->method : "");
	if (!*method) {
		free(method);
		method = strdup("token");
	}
	if (strcmp(method, "token") != 0 && strcmp(method, "userpass") != 0 &&
	    strcmp(method, "approle") != 0) {
		struct cs_buf b = CS_BUF_INIT;
		cs_buf_printf(&b,
			      "Unknown auth method: %s. Use \"custos auth list\" to see the "
			      "complete list of auth methods. Additionally, some auth methods are "
			      "only available via the HTTP API.",
			      method);
		struct cs_buf w = CS_BUF_INIT;
		cs_fmt_wrap(&w, b.data, 0);
		cs_cli_emit(stderr, &w);
		cs_buf_free(&b);
		free(method);
		return NULL;
	}
	return method;
}

/* The K=V arguments into cfg; a bare first argument to the token method is the token
 * (`custos login TOKEN` is `custos login token=TOKEN`). Returns cs_cli_parse_kv's
 * result, the reason in err. */
static int login_config(const char *method, int nargs, char **argv, cJSON *cfg, struct cs_buf *err)
{
	char **args = calloc((size_t)nargs + 1, sizeof *args);
	if (!args)
		abort();
	char *token_arg = NULL;
	for (int k = 0; k < nargs; k++)
		args[k] = argv[k];
	if (strcmp(method, "token") == 0 && nargs > 0 && !strchr(args[0], '=')) {
		size_t n = strlen(args[0]) + 7;
		token_arg = malloc(n);
		if (!token_arg)
			abort();
		snprintf(token_arg, n, "token=%s", args[0]);
		args[0] = token_arg;
	}
	int prc = cs_cli_parse_kv(cfg, nargs, args, err);
	if (token_arg) {
		cs_zero(token_arg, strlen(token_arg));
		free(token_arg);
	}
	free(args);
	return prc;
}

/* After a successful, unwrapped login: store the token unless -no-store, then print
 * what the flags ask for. Returns the exit code. */
static int login_finish(struct cli *c, const cJSON *secret)
{
	const char *token = cfg_str(cs_cli_get(secret, "auth"), "client_token");
	if (!c->no_store) {
		struct cs_buf serr = CS_BUF_INIT;
		if (store_token(token ? token : "", &serr) != 0) {
			fprintf(stderr, "Error storing token: %s\n", serr.data);
			warn_wrapped("Authentication was successful, but the token was not "
				     "persisted. The resulting token is shown below for your "
				     "records.");
			cs_buf_free(&serr);
			cs_cli_output_secret(c, secret);
			return 2;
		}
		cs_buf_free(&serr);
		if (getenv("VAULT_TOKEN") && *getenv("VAULT_TOKEN"))
			warn_wrapped("WARNING! The VAULT_TOKEN environment variable is set! The "
				     "value of this variable will take precedence; if this is "
				     "unwanted please unset VAULT_TOKEN or update its value "
				     "accordingly.");
	} else if (!c->token_only) {
		warn_wrapped("The token was not stored in token helper. Set the VAULT_TOKEN "
			     "environment variable or pass the token below with each request to "
			     "custos.");
	}
	if (c->no_print)
		return 0;
	if (cs_cli_has_field(c)) {
		return cs_cli_print_field(c, secret, c->field, true, "secret");
	}
	if (!cs_cli_is_json(c)) {
		struct cs_buf b = CS_BUF_INIT;
		cs_fmt_wrap(&b,
			    "Success! You are now authenticated. The token information displayed "
			    "below is already stored in the token helper. You do NOT need to run "
			    "\"custos login\" again. Future custos requests will automatically use "
			    "this token.",
			    0);
		cs_buf_putc(&b, '\n');
		cs_cli_emit(stdout, &b);
	}
	return cs_cli_output_secret(c, secret);
}

int cs_cli_login(struct cli *c, int argc, char **argv)
{
	int code;
	int i = cs_cli_begin(c, C_LOGIN, argc, argv, 2, &code);
	if (i < 0)
		return code;
	if (c->token_only) {
		c->no_store = true;
		c->field = "token";
	}
	if (c->no_store && c->no_print) {
		fprintf(stderr, "-no-store and -no-print cannot be used together\n");
		return 1;
	}
	char *method = login_method(c);
	if (!method)
		return 1;
	cJSON *cfg = cJSON_CreateObject();
	struct cs_buf err = CS_BUF_INIT;
	int prc = login_config(method, argc - i, argv + i, cfg, &err);
	cJSON *secret = NULL;
	char *mount = NULL;
	if (prc != 0) {
		fprintf(stderr, "Error parsing configuration: %s\n", err.data);
		code = 1;
		goto out;
	}
	const char *m = cfg_str(cfg, "mount");
	mount = cs_cli_sanitize_path(m && *m ? m : (c->path && *c->path ? c->path : method));
	if (cs_cli_make_client(c)) {
		code = 2;
		goto out;
	}
	/* Login never sends the stored token; the token method sets its own. */
	c->client.token = NULL;
	if (strcmp(method, "token") == 0)
		secret = login_token(c, cfg);
	else if (strcmp(method, "userpass") == 0)
		secret = login_userpass(c, cfg, mount);
	else
		secret = login_approle(c, cfg, mount);
	if (!secret) {
		code = 2;
		goto out;
	}
	bool wrapped;
	secret = login_extract(c, secret, !c->token_only && !c->no_store, &wrapped);
	if (!secret) {
		code = 2;
		goto out;
	}
	if (wrapped) {
		code = c->token_only
			   ? cs_cli_print_field(c, secret, "wrapping_token", true, "secret")
			   : cs_cli_output_secret(c, secret);
		goto out;
	}
	code = login_finish(c, secret);
out:
	cs_client_json_free_secure(secret);
	cs_client_json_free_secure(cfg);
	cs_buf_free(&err);
	free(mount);
	free(method);
	return code;
}
