/*
 * `kv get|put|patch|delete|undelete|destroy|list|metadata`, with the Vault CLI's flags,
 * output and exit codes (OpenBao's command/kv_*.go is the reference). Shared plumbing
 * (flag parsing, client, output helpers) lives in args.c and common.c behind
 * cli_internal.h.
 *
 * Exit codes as in Vault: 1 for flag/argument errors (and a few "not supported on this
 * KV version" refusals, as Vault does), 2 for errors from or while reaching the server.
 *
 * `kv` commands first ask the server which mount serves the path and whether it is a
 * versioned (v2) KV store (GET sys/internal/ui/mounts/PATH; a 404 means an old server,
 * treated as v1), then rewrite the friendly path: secret/foo → secret/data/foo,
 * secret/metadata/foo, secret/delete/foo ... on v2; unchanged on v1.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli_internal.h"
#include "cli/families.h"
#include "cli/format.h"

#define C_KV_ALL                                                                                   \
	(C_KGET | C_KPUT | C_KPATCH | C_KDELETE | C_KUNDELETE | C_KDESTROY | C_KLIST | C_KMGET |   \
	 C_KMPUT | C_KMDELETE)

/* ------------------------------------------------------------------ flags & usage */

#define MOUNT_HELP                                                                                 \
	"  -mount=<string>        Mount path of the KV engine; PATH is then relative to it.\n"

static const struct flag kv_flags[] = {
    {"mount", F_STR, OFF(mount), C_KV_ALL, 0},
    {"field", F_STR, OFF(field), C_KGET | C_KPUT | C_KPATCH | C_KDELETE, 0},
    {"version", F_INT, OFF(version), C_KGET, 0},
    {"cas", F_INT, OFF(cas), C_KPUT | C_KPATCH, OFF(cas_set)},
    {"method", F_STR, OFF(method), C_KPATCH, 0},
    {"remove-data", F_LIST, OFF(remove_data), C_KPATCH, 0},
    {"versions", F_LIST, OFF(versions), C_KDELETE | C_KUNDELETE | C_KDESTROY, 0},
    {"detailed", F_BOOL, OFF(detailed), C_KLIST, 0},
    {"max-versions", F_INT, OFF(max_versions), C_KMPUT, OFF(max_versions_set)},
    {"cas-required", F_BOOL, OFF(cas_required), C_KMPUT, OFF(cas_required_set)},
    {"delete-version-after", F_DUR, OFF(delete_version_after), C_KMPUT,
     OFF(delete_version_after_set)},
    {"custom-metadata", F_KV, OFF(custom_metadata), C_KMPUT, 0},
};

static const struct usage kv_usages[] = {
    {C_KGET,
     "Usage: custos kv get [options] PATH\n\n"
     "  Retrieves the value at PATH (KV v1 or v2). On v2 the latest version unless\n"
     "  -version is given.\n\n"
     "  -version=<int>         Version to read (KV v2).\n"
     "  -field=<string>        Print only this field, without a trailing newline.\n" MOUNT_HELP},
    {C_KPUT, "Usage: custos kv put [options] PATH [DATA K=V...]\n\n"
	     "  Writes the data to PATH, replacing it (a new version on KV v2).\n\n"
	     "  -cas=<int>             Check-and-set: write only if the current version is\n"
	     "                         this (0: only if absent). KV v2 only.\n" MOUNT_HELP},
    {C_KPATCH, "Usage: custos kv patch [options] PATH [DATA K=V...]\n\n"
	       "  Merges the data into the latest version at PATH (KV v2).\n\n"
	       "  -cas=<int>             Patch only if the current version is this.\n"
	       "  -method=<string>       \"patch\" (HTTP PATCH) or \"rw\" (read, then write).\n"
	       "                         Default: PATCH, falling back to rw.\n"
	       "  -remove-data=<string>  Key to remove (repeatable).\n" MOUNT_HELP},
    {C_KDELETE, "Usage: custos kv delete [options] PATH\n\n"
		"  Deletes the data at PATH; on KV v2 soft-deletes the latest version, or the\n"
		"  versions given with -versions.\n\n"
		"  -versions=<int,...>    Versions to delete (KV v2).\n" MOUNT_HELP},
    {C_KUNDELETE, "Usage: custos kv undelete [options] -versions=1,2 PATH\n\n"
		  "  Restores soft-deleted versions of a KV v2 secret.\n\n"
		  "  -versions=<int,...>    Versions to undelete (required).\n" MOUNT_HELP},
    {C_KDESTROY, "Usage: custos kv destroy [options] -versions=1,2 PATH\n\n"
		 "  Permanently removes versions of a KV v2 secret.\n\n"
		 "  -versions=<int,...>    Versions to destroy (required).\n" MOUNT_HELP},
    {C_KLIST, "Usage: custos kv list [options] PATH\n\n"
	      "  Lists the keys under PATH (KV v1 or v2).\n\n" MOUNT_HELP},
    {C_KMGET, "Usage: custos kv metadata get [options] PATH\n\n"
	      "  Shows the metadata and every version of a KV v2 secret.\n\n" MOUNT_HELP},
    {C_KMPUT, "Usage: custos kv metadata put [options] PATH\n\n"
	      "  Creates or updates the metadata of a KV v2 secret.\n\n"
	      "  -max-versions=<int>           Versions to keep.\n"
	      "  -cas-required                 Require -cas on every write.\n"
	      "  -delete-version-after=<dur>   Soft-delete versions after this long.\n"
	      "  -custom-metadata=<key=value>  Custom metadata (repeatable).\n" MOUNT_HELP},
    {C_KMDELETE, "Usage: custos kv metadata delete [options] PATH\n\n"
		 "  Deletes all versions and the metadata of a KV v2 secret.\n\n" MOUNT_HELP},
};

const struct cs_cli_family cs_cli_kv_family = CS_CLI_FAMILY(kv_flags, kv_usages);

/* ------------------------------------------------------------------ small helpers */

/* Go's path.Join for our inputs: non-empty parts joined by one '/', duplicate and
 * trailing slashes dropped. Returns malloc'd. */
static char *path_join(const char *a, const char *b, const char *c)
{
	struct cs_buf out = CS_BUF_INIT;
	const char *parts[] = {a, b, c};
	for (size_t i = 0; i < CS_ARRAY_LEN(parts); i++) {
		for (const char *p = parts[i] ? parts[i] : ""; *p; p++) {
			if (*p == '/' && (out.len == 0 || out.data[out.len - 1] == '/'))
				continue;
			cs_buf_putc(&out, *p);
		}
		if (out.len && out.data[out.len - 1] != '/')
			cs_buf_putc(&out, '/');
	}
	while (out.len && out.data[out.len - 1] == '/')
		out.len--;
	cs_buf_putc(&out, '\0');
	return cs_buf_steal(&out, NULL);
}

static bool has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

/* "=== Title ===" padded with '=' to total_len, as Vault's padEqualSigns. */
static void pad_equal_signs(struct cs_buf *b, const char *header, size_t total_len)
{
	long eq = (long)total_len - (long)(strlen(header) + 2);
	if (eq <= 0)
		eq = 4;
	if (eq % 2)
		eq++;
	for (long i = 0; i < eq / 2; i++)
		cs_buf_putc(b, '=');
	cs_buf_printf(b, " %s ", header);
	for (long i = 0; i < eq / 2; i++)
		cs_buf_putc(b, '=');
}

/* Vault's getHeaderForMap: the header sized to the widest key of the table below. */
static void print_map_header(const char *header, const cJSON *map)
{
	size_t max = 0;
	for (const cJSON *k = cJSON_IsObject(map) ? map->child : NULL; k; k = k->next)
		if (strlen(k->string) > max)
			max = strlen(k->string);
	struct cs_buf b = CS_BUF_INIT;
	pad_equal_signs(&b, header, max + 4 + 5);
	cs_cli_emit(stdout, &b);
}

/* Vault's outputPath: "== Title ==", the path, a blank line. */
static void print_path_header(const char *title, const char *path)
{
	struct cs_buf b = CS_BUF_INIT;
	pad_equal_signs(&b, title, strlen(path));
	cs_buf_printf(&b, "\n%s\n", path);
	cs_cli_emit(stdout, &b);
}

/* Vault's OutputData of a map in table format: Key/Value rows, nothing when empty. */
static void print_map_table(const cJSON *map)
{
	cJSON *wrap = cJSON_CreateObject();
	cJSON_AddItemReferenceToObject(wrap, "data", (cJSON *)(uintptr_t)map);
	struct cs_buf b = CS_BUF_INIT;
	cs_fmt_secret_table(&b, wrap);
	if (b.len)
		cs_cli_emit(stdout, &b);
	cs_buf_free_secure(&b);
	cJSON_Delete(wrap);
}

static void print_warnings(const cJSON *secret)
{
	struct cs_buf w = CS_BUF_INIT;
	cs_fmt_warnings(&w, secret);
	if (w.len)
		fwrite(w.data, 1, w.len, stderr);
	cs_buf_free(&w);
}

/* The response is a secret to show (a JSON object), not a 204. */
static bool has_secret(const struct cs_client_resp *r)
{
	return r->status != 204 && cJSON_IsObject(r->json);
}

/* ------------------------------------------------------------------ kv: paths */

/* Where a `kv` command's path points after the preflight. */
struct kv_target {
	char *mount;   /* mount path as the server reports it ("secret/"), may be "" */
	char *partial; /* the user's path, prefixed with the mount under -mount */
	bool v2;
};

static void kv_target_free(struct kv_target *t)
{
	free(t->mount);
	free(t->partial);
}

/* Vault's kvPreflightVersionRequest. Returns 0, or 2 after printing the error. */
static int kv_preflight(struct cli *c, const char *path, char **mount, bool *v2)
{
	struct cs_buf p = CS_BUF_INIT;
	cs_buf_printf(&p, "sys/internal/ui/mounts/%s", path);
	struct cs_client_resp r;
	int rc = cs_client_request(&c->client, "GET", p.data, NULL, NULL, &r);
	cs_buf_free(&p);
	*v2 = false;
	if (rc == 0 && r.status == 404) {
		/* A server without the endpoint: assume KV v1. */
		*mount = strdup("");
		cs_client_resp_free(&r);
		return 0;
	}
	if (rc != 0 || !cs_client_resp_ok(&r)) {
		cs_cli_api_error(&r, NULL);
		cs_client_resp_free(&r);
		return 2;
	}
	const cJSON *data = cs_cli_get(r.json, "data");
	if (!cJSON_IsObject(data)) {
		fprintf(stderr, "nil response from pre-flight request\n");
		cs_client_resp_free(&r);
		return 2;
	}
	const cJSON *mp = cs_cli_get(data, "path");
	*mount = strdup(cJSON_IsString(mp) ? mp->valuestring : "");
	const cJSON *ver = cs_cli_get(cs_cli_get(data, "options"), "version");
	*v2 = cJSON_IsString(ver) && strcmp(ver->valuestring, "2") == 0;
	cs_client_resp_free(&r);
	return 0;
}

/*
 * Resolve argv's PATH for a kv command: with -mount the preflight asks about the mount
 * and the path is relative to it; otherwise PATH includes the mount. Returns 0 or the
 * exit code (after printing).
 */
static int kv_resolve(struct cli *c, const char *arg, struct kv_target *t)
{
	memset(t, 0, sizeof *t);
	t->partial = cs_cli_sanitize_path(arg);
	bool mount_flag = c->mount && *c->mount;
	char *probe = mount_flag ? cs_cli_sanitize_path(c->mount) : strdup(t->partial);
	int rc = kv_preflight(c, probe, &t->mount, &t->v2);
	if (rc == 0 && mount_flag) {
		/* v2 paths are rebuilt from the mount; v1 paths simply sit under it. */
		char *joined = path_join(*t->mount ? t->mount : probe, t->partial, NULL);
		free(t->partial);
		t->partial = joined;
	}
	free(probe);
	return rc;
}

/* Vault's addPrefixToKVPath: mount/rest → mount/<prefix>/rest. Returns malloc'd. */
static char *kv_prefixed(const struct kv_target *t, const char *prefix)
{
	const char *path = t->partial;
	size_t ml = strlen(t->mount);
	char *mount = strdup(t->mount);
	if (strcmp(path, mount) == 0 || (ml && mount[ml - 1] == '/' && strlen(path) == ml - 1 &&
					 strncmp(path, mount, ml - 1) == 0)) {
		char *r = path_join(mount, prefix, NULL);
		free(mount);
		return r;
	}
	const char *suffix = has_prefix(path, mount) ? path + strlen(mount) : path;
	/* Mount paths reported with a namespace prefix the user's path lacks: drop leading
	 * namespace segments until the mount matches. */
	while (suffix == path) {
		char *slash = strchr(mount, '/');
		if (!slash || slash[1] == '\0')
			break;
		char *rest = strdup(slash + 1);
		size_t rl = strlen(rest);
		if (rl && rest[rl - 1] == '/')
			rest[rl - 1] = '\0';
		free(mount);
		mount = rest;
		suffix = has_prefix(path, mount) ? path + strlen(mount) : path;
	}
	char *r = path_join(mount, prefix, suffix);
	free(mount);
	return r;
}

/* The path a command sends: the v2 rewrite with `prefix`, or the v1 path. */
static char *kv_full_path(const struct kv_target *t, const char *prefix)
{
	return t->v2 ? kv_prefixed(t, prefix) : strdup(t->partial);
}

/* -versions=1,2 -versions=3 → [1,2,3] (numbers where they parse, as hvac sends). */
static cJSON *kv_versions(const cJSON *flags)
{
	cJSON *out = cJSON_CreateArray();
	for (const cJSON *f = flags ? flags->child : NULL; f; f = f->next) {
		const char *s = f->valuestring;
		while (*s) {
			const char *e = strchr(s, ',');
			size_t n = e ? (size_t)(e - s) : strlen(s);
			char *item = cs_cli_trim_dup(s, n);
			char *end;
			long v = strtol(item, &end, 10);
			if (*item && *end == '\0')
				cJSON_AddItemToArray(out, cJSON_CreateNumber((double)v));
			else if (*item)
				cJSON_AddItemToArray(out, cJSON_CreateString(item));
			free(item);
			s += n;
			if (*s == ',')
				s++;
		}
	}
	return out;
}

/* {"versions": [...]} from -versions: the body of delete/undelete/destroy by version. */
static cJSON *kv_versions_body(const struct cli *c)
{
	cJSON *body = cJSON_CreateObject();
	cJSON_AddItemToObject(body, "versions", kv_versions(c->versions));
	return body;
}

/* Refuse a v1 mount: "<what> not supported on KV Version 1" (frees t, exit 1). */
static int kv_require_v2(struct kv_target *t, const char *what)
{
	if (t->v2)
		return 0;
	fprintf(stderr, "%s not supported on KV Version 1\n", what);
	kv_target_free(t);
	return 1;
}

/* Vault's kvReadRequest: GET, where a 404 still shows a body with data or warnings.
 * Returns 0 with *secret (borrowed from r, NULL when nothing is there), or -1 after an
 * error the caller reports. */
static int kv_read(struct cli *c, const char *path, const char *query, struct cs_client_resp *r,
		   const cJSON **secret)
{
	*secret = NULL;
	if (cs_client_request(&c->client, "GET", path, query, NULL, r) != 0)
		return -1;
	if (r->status == 404) {
		*secret = cs_cli_secret_from_404(r);
		return 0;
	}
	if (!cs_client_resp_ok(r))
		return -1;
	*secret = cJSON_IsObject(r->json) ? r->json : NULL;
	return 0;
}

/* Parse flags, check for exactly one PATH, build the client and resolve the path; with
 * full, also build the "data" path the command sends (*full, malloc'd). */
static int kv_start(struct cli *c, uint64_t cmd, int argc, char **argv, int start,
		    struct kv_target *t, char **full, int *code)
{
	int i = cs_cli_begin(c, cmd, argc, argv, start, code);
	if (i < 0)
		return -1;
	if (cs_cli_bad_nargs(argc - i, 1, 1, "1")) {
		*code = 1;
		return -1;
	}
	if (cs_cli_make_client(c)) {
		*code = 2;
		return -1;
	}
	*code = kv_resolve(c, argv[i], t);
	if (*code) {
		kv_target_free(t);
		return -1;
	}
	if (full)
		*full = kv_full_path(t, "data");
	return i;
}

/* The start of put and patch: flags, PATH then K=V data (optional when data_optional),
 * the client, the data object (*data, caller frees) and the resolved path. Returns 0, or
 * -1 with *code set and nothing left to free. */
static int kv_write_start(struct cli *c, uint64_t cmd, int argc, char **argv, int start,
			  bool data_optional, cJSON **data, struct kv_target *t, int *code)
{
	int i = cs_cli_begin(c, cmd, argc, argv, start, code);
	if (i < 0)
		return -1;
	if (argc - i < 1) {
		fprintf(stderr, "Not enough arguments (expected >1, got %d)\n", argc - i);
		*code = 1;
		return -1;
	}
	if (argc - i == 1 && !data_optional) {
		fprintf(stderr, "Must supply data\n");
		*code = 1;
		return -1;
	}
	if (cs_cli_make_client(c)) {
		*code = 2;
		return -1;
	}
	*data = cs_cli_kv_data(argc - i - 1, argv + i + 1);
	if (!*data) {
		*code = 1;
		return -1;
	}
	*code = kv_resolve(c, argv[i], t);
	if (*code) {
		cs_client_json_free_secure(*data);
		kv_target_free(t);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ kv: commands */

static int kv_get(struct cli *c, int argc, char **argv, int start)
{
	struct kv_target t;
	int code;
	char *full;
	if (kv_start(c, C_KGET, argc, argv, start, &t, &full, &code) < 0)
		return code;
	char q[40] = "";
	if (t.v2 && c->version > 0)
		snprintf(q, sizeof q, "version=%ld", c->version);
	struct cs_client_resp r;
	const cJSON *secret;
	if (kv_read(c, full, q, &r, &secret) != 0) {
		cs_cli_api_error(&r, "Error reading %s", full);
		code = 2;
		goto out;
	}
	if (!secret) {
		fprintf(stderr, "No value found at %s\n", full);
		code = 2;
		goto out;
	}
	const cJSON *sdata = cs_cli_get(secret, "data");
	if (cs_cli_has_field(c)) {
		if (!t.v2) {
			code = cs_cli_print_field(c, secret, c->field, true, "secret");
			goto out;
		}
		const cJSON *data = cs_cli_get(sdata, "data");
		if (!data || cJSON_IsNull(data)) {
			fprintf(stderr, "No data found at %s\n", full);
			code = 2;
		} else if (strcmp(c->field, "data") == 0 && !cs_cli_get(data, "data")) {
			/* A literal "data" field means the whole data block here. */
			code = cs_cli_print_field(c, secret, c->field, true, "secret");
		} else {
			code = cs_cli_print_field(c, data, c->field, false, "secret");
		}
		goto out;
	}
	if (cJSON_IsObject(cs_cli_get(secret, "wrap_info")) || cs_cli_is_json(c)) {
		code = cs_cli_output_secret(c, secret);
		goto out;
	}
	print_warnings(secret);
	if (t.v2)
		print_path_header("Secret Path", full);
	const cJSON *meta = cs_cli_get(sdata, "metadata");
	if (cJSON_IsObject(meta)) {
		print_map_header("Metadata", meta);
		print_map_table(meta);
		printf("\n");
	}
	const cJSON *data = t.v2 ? cs_cli_get(sdata, "data") : sdata;
	if (cJSON_IsObject(data)) {
		print_map_header("Data", data);
		print_map_table(data);
	}
	code = 0;
out:
	cs_client_resp_free(&r);
	free(full);
	kv_target_free(&t);
	return code;
}

/* The output of put and patch once the server answered with a body. */
static int kv_output_written(struct cli *c, const cJSON *secret, const char *full)
{
	if (cs_cli_has_field(c))
		return cs_cli_print_field(c, secret, c->field, true, "secret");
	const cJSON *wi = cs_cli_get(secret, "wrap_info");
	const cJSON *ttl = cs_cli_get(wi, "ttl");
	if (cs_cli_is_json(c) || (cJSON_IsNumber(ttl) && ttl->valuedouble != 0))
		return cs_cli_output_secret(c, secret);
	const cJSON *meta = cs_cli_get(secret, "data");
	print_path_header("Secret Path", full);
	print_map_header("Metadata", meta);
	if (cJSON_IsObject(meta))
		print_map_table(meta);
	return 0;
}

/* Shared by put/undelete/destroy/metadata put: a write whose empty answer means
 * "Success! Data written to: PATH". Returns the exit code; *r holds the answer. */
static int kv_write(struct cli *c, const char *full, const cJSON *body, struct cs_client_resp *r,
		    bool *has_body)
{
	*has_body = false;
	struct cs_buf what = CS_BUF_INIT;
	cs_buf_printf(&what, "Error writing data to %s", full);
	bool ok = cs_cli_call(c, "PUT", full, NULL, body, r, what.data);
	cs_buf_free(&what);
	if (!ok)
		return 2;
	if (!has_secret(r)) {
		if (!cs_cli_is_json(c))
			printf("Success! Data written to: %s\n", full);
		return 0;
	}
	*has_body = true;
	return 0;
}

/* kv_write, showing a returned body as a secret: undelete/destroy/metadata put. */
static int kv_write_output(struct cli *c, const char *full, const cJSON *body)
{
	struct cs_client_resp r;
	bool has_body;
	int code = kv_write(c, full, body, &r, &has_body);
	if (has_body)
		code = cs_cli_output_secret(c, r.json);
	cs_client_resp_free(&r);
	return code;
}

/* {"data": data, "options": {"cas": N}} — the KV v2 write body (takes data). */
static cJSON *kv_v2_body(cJSON *data, bool with_cas, double cas)
{
	cJSON *body = cJSON_CreateObject();
	cJSON_AddItemToObject(body, "data", data);
	cJSON *opts = cJSON_AddObjectToObject(body, "options");
	if (with_cas)
		cJSON_AddNumberToObject(opts, "cas", cas);
	return body;
}

static int kv_put(struct cli *c, int argc, char **argv, int start)
{
	int code;
	cJSON *body;
	struct kv_target t;
	if (kv_write_start(c, C_KPUT, argc, argv, start, false, &body, &t, &code) < 0)
		return code;
	char *full = kv_full_path(&t, "data");
	if (t.v2)
		body = kv_v2_body(body, c->cas_set && c->cas > -1, (double)c->cas);
	struct cs_client_resp r;
	bool has_body;
	code = kv_write(c, full, body, &r, &has_body);
	if (has_body)
		code = kv_output_written(c, r.json, full);
	cs_client_json_free_secure(body);
	cs_client_resp_free(&r);
	free(full);
	kv_target_free(&t);
	return code;
}

/* `kv patch -method=rw`: read the latest version, merge locally, write with cas. */
static int kv_patch_rw(struct cli *c, const char *full, const cJSON *patch,
		       struct cs_client_resp *out)
{
	struct cs_client_resp r;
	const cJSON *secret;
	memset(out, 0, sizeof *out);
	if (kv_read(c, full, NULL, &r, &secret) != 0) {
		struct cs_buf b = CS_BUF_INIT;
		cs_buf_printf(&b, "Error doing pre-read at %s: ", full);
		cs_client_format_error(&r, &b);
		cs_cli_emit(stderr, &b);
		cs_client_resp_free(&r);
		return 2;
	}
	const cJSON *sdata = cs_cli_get(secret, "data");
	const cJSON *meta = cs_cli_get(sdata, "metadata"), *data = cs_cli_get(sdata, "data");
	/* Vault's messages: "<what> found at PATH<why>". */
	const char *problem = NULL, *why = "";
	if (!cJSON_IsObject(sdata)) {
		problem = "No value";
	} else if (!meta || cJSON_IsNull(meta)) {
		problem = "No metadata";
		why = "; patch only works on existing data";
	} else if (!cJSON_IsObject(meta)) {
		problem = "Metadata";
		why = " is not the expected type (JSON object)";
	} else if (!data || cJSON_IsNull(data)) {
		problem = "No data";
		why = "; patch only works on existing data";
	} else if (!cJSON_IsObject(data)) {
		problem = "Data";
		why = " is not the expected type (JSON object)";
	}
	if (problem) {
		fprintf(stderr, "%s found at %s%s\n", problem, full, why);
		cs_client_resp_free(&r);
		return 2;
	}
	cJSON *merged = cJSON_Duplicate(data, true);
	for (const cJSON *k = patch->child; k; k = k->next) {
		cJSON_DeleteItemFromObjectCaseSensitive(merged, k->string);
		cJSON_AddItemToObject(merged, k->string, cJSON_Duplicate(k, true));
	}
	const cJSON *ver = cs_cli_get(meta, "version");
	cJSON *body = kv_v2_body(merged, true, cJSON_IsNumber(ver) ? ver->valuedouble : 0);
	cs_client_resp_free(&r);
	struct cs_buf what = CS_BUF_INIT;
	cs_buf_printf(&what, "Error writing data to %s", full);
	bool ok = cs_cli_call(c, "PUT", full, NULL, body, out, what.data);
	cs_buf_free(&what);
	cs_client_json_free_secure(body);
	return ok ? 0 : 2;
}

static int kv_patch(struct cli *c, int argc, char **argv, int start)
{
	int code;
	cJSON *data;
	struct kv_target t;
	if (kv_write_start(c, C_KPATCH, argc, argv, start, c->remove_data != NULL, &data, &t,
			   &code) < 0)
		return code;
	char *full = NULL;
	struct cs_client_resp r;
	memset(&r, 0, sizeof r);
	if (!t.v2) {
		fprintf(stderr, "K/V engine mount must be version 2 for patch support\n");
		code = 2;
		goto out;
	}
	full = kv_full_path(&t, "data");
	for (const cJSON *k = c->remove_data ? c->remove_data->child : NULL; k; k = k->next) {
		cJSON_DeleteItemFromObjectCaseSensitive(data, k->valuestring);
		cJSON_AddNullToObject(data, k->valuestring);
	}
	const char *m = c->method ? c->method : "";
	if (strcmp(m, "rw") == 0) {
		code = kv_patch_rw(c, full, data, &r);
	} else if (strcmp(m, "patch") == 0 || *m == '\0') {
		bool fallback = *m == '\0';
		cJSON *body = kv_v2_body(cJSON_Duplicate(data, true), c->cas > 0, (double)c->cas);
		int rc = cs_client_request(&c->client, "PATCH", full, NULL, body, &r);
		cs_client_json_free_secure(body);
		code = 0;
		if (rc == 0 && fallback && (r.status == 405 || r.status == 403)) {
			if (r.status == 403)
				fprintf(stderr,
					"Data was written to %s but we recommend that you add the "
					"\"patch\" capability to your ACL policy in order to use "
					"HTTP PATCH in the future.\n",
					full);
			cs_client_resp_free(&r);
			code = kv_patch_rw(c, full, data, &r);
		} else if (rc != 0 || !cs_client_resp_ok(&r)) {
			cs_cli_api_error(&r, "Error writing data to %s", full);
			code = 2;
		}
	} else {
		fprintf(stderr, "Unsupported method provided to -method flag: %s\n", m);
		code = 2;
	}
	if (code == 0 && !has_secret(&r)) {
		if (!cs_cli_is_json(c))
			printf("Success! Data written to: %s\n", full);
	} else if (code == 0) {
		code = kv_output_written(c, r.json, full);
	}
out:
	cs_client_resp_free(&r);
	cs_client_json_free_secure(data);
	free(full);
	kv_target_free(&t);
	return code;
}

static int kv_delete(struct cli *c, int argc, char **argv, int start)
{
	struct kv_target t;
	int code;
	char *full;
	if (kv_start(c, C_KDELETE, argc, argv, start, &t, &full, &code) < 0)
		return code;
	struct cs_client_resp r;
	bool ok;
	if (t.v2 && c->versions) {
		char *del = kv_prefixed(&t, "delete");
		cJSON *body = kv_versions_body(c);
		ok = cs_cli_call_delete(c, "PUT", del, body, full, &r);
		cJSON_Delete(body);
		free(del);
	} else {
		ok = cs_cli_call_delete(c, "DELETE", full, NULL, full, &r);
	}
	code =
	    ok ? cs_cli_finish_write(c, &r, "Success! Data deleted (if it existed) at: ", full) : 2;
	cs_client_resp_free(&r);
	free(full);
	kv_target_free(&t);
	return code;
}

/* undelete and destroy: PUT {versions} to mount/<op>/path on a v2 mount. */
static int kv_versions_op(struct cli *c, uint64_t cmd, int argc, char **argv, int start,
			  const char *op, const char *verb)
{
	int code;
	int i = cs_cli_begin(c, cmd, argc, argv, start, &code);
	if (i < 0)
		return code;
	if (cs_cli_bad_nargs(argc - i, 1, 1, "1"))
		return 1;
	if (!c->versions) {
		fprintf(stderr,
			"No versions provided, use the \"-versions\" flag to specify the version "
			"to %s.\n",
			op);
		return 1;
	}
	if (cs_cli_make_client(c))
		return 2;
	struct kv_target t;
	code = kv_resolve(c, argv[i], &t);
	if (code) {
		kv_target_free(&t);
		return code;
	}
	if (kv_require_v2(&t, verb))
		return 1;
	char *full = kv_prefixed(&t, op);
	cJSON *body = kv_versions_body(c);
	code = kv_write_output(c, full, body);
	cJSON_Delete(body);
	free(full);
	kv_target_free(&t);
	return code;
}

static int kv_list(struct cli *c, int argc, char **argv, int start)
{
	int code;
	int i = cs_cli_begin(c, C_KLIST, argc, argv, start, &code);
	if (i < 0)
		return code;
	bool mount_flag = c->mount && *c->mount;
	if (cs_cli_bad_nargs(argc - i, mount_flag ? 0 : 1, 1, "1"))
		return 1;
	if (cs_cli_make_client(c))
		return 2;
	struct kv_target t;
	code = kv_resolve(c, argc - i ? argv[i] : "", &t);
	if (code == 0) {
		char *full = kv_full_path(&t, "metadata");
		code = cs_cli_list_path(c, full);
		free(full);
	}
	kv_target_free(&t);
	return code;
}

/* Parse, resolve, and refuse v1 mounts: the start of every `kv metadata` command. */
static int kv_metadata_start(struct cli *c, uint64_t cmd, int argc, char **argv, int start,
			     struct kv_target *t, char **full, int *code)
{
	if (kv_start(c, cmd, argc, argv, start, t, NULL, code) < 0)
		return -1;
	*code = kv_require_v2(t, "Metadata");
	if (*code)
		return -1;
	*full = kv_prefixed(t, "metadata");
	return 0;
}

static int cmp_version_keys(const void *a, const void *b)
{
	long x = strtol((*(const cJSON *const *)a)->string, NULL, 10);
	long y = strtol((*(const cJSON *const *)b)->string, NULL, 10);
	return (x > y) - (x < y);
}

static int kv_metadata_get(struct cli *c, int argc, char **argv, int start)
{
	struct kv_target t;
	char *full;
	int code;
	if (kv_metadata_start(c, C_KMGET, argc, argv, start, &t, &full, &code) < 0)
		return code;
	struct cs_client_resp r;
	const cJSON *secret;
	cJSON *copy = NULL;
	if (kv_read(c, full, NULL, &r, &secret) != 0) {
		cs_cli_api_error(&r, "Error reading %s", full);
		code = 2;
		goto out;
	}
	if (!secret) {
		fprintf(stderr, "No value found at %s\n", full);
		code = 2;
		goto out;
	}
	if (cJSON_IsObject(cs_cli_get(secret, "wrap_info")) || cs_cli_is_json(c)) {
		code = cs_cli_output_secret(c, secret);
		goto out;
	}
	const cJSON *versions = cs_cli_get(cs_cli_get(secret, "data"), "versions");
	if (!cJSON_IsObject(versions)) {
		fprintf(stderr, "No value found at %s\n", full);
		cs_cli_output_secret(c, secret);
		code = 2;
		goto out;
	}
	copy = cJSON_Duplicate(secret, true);
	cJSON *cdata = cJSON_GetObjectItemCaseSensitive(copy, "data");
	cJSON *vers = cJSON_DetachItemFromObjectCaseSensitive(cdata, "versions");
	print_path_header("Metadata Path", full);
	print_map_header("Metadata", cdata);
	cs_cli_output_secret(c, copy);
	size_t n = (size_t)cJSON_GetArraySize(vers);
	const cJSON **v = calloc(n ? n : 1, sizeof *v);
	if (!v)
		abort();
	n = 0;
	for (const cJSON *k = vers->child; k; k = k->next) {
		char *end;
		(void)strtol(k->string, &end, 10);
		if (*end || !*k->string) {
			fprintf(stderr, "Error parsing version %s\n", k->string);
			code = 2;
			free(v);
			cJSON_Delete(vers);
			goto out;
		}
		v[n++] = k;
	}
	qsort(v, n, sizeof *v, cmp_version_keys);
	for (size_t k = 0; k < n; k++) {
		char title[64];
		snprintf(title, sizeof title, "Version %s", v[k]->string);
		printf("\n");
		print_map_header(title, v[k]);
		if (cJSON_IsObject(v[k]))
			print_map_table(v[k]);
	}
	free(v);
	cJSON_Delete(vers);
	code = 0;
out:
	cs_client_json_free_secure(copy);
	cs_client_resp_free(&r);
	free(full);
	kv_target_free(&t);
	return code;
}

static int kv_metadata_put(struct cli *c, int argc, char **argv, int start)
{
	struct kv_target t;
	char *full;
	int code;
	if (kv_metadata_start(c, C_KMPUT, argc, argv, start, &t, &full, &code) < 0)
		return code;
	cJSON *body = cJSON_CreateObject();
	if (c->max_versions_set && c->max_versions >= 0)
		cJSON_AddNumberToObject(body, "max_versions", (double)c->max_versions);
	if (c->delete_version_after_set && c->delete_version_after >= 0) {
		char d[48];
		cs_fmt_go_duration(c->delete_version_after, d, sizeof d);
		cJSON_AddStringToObject(body, "delete_version_after", d);
	}
	if (c->cas_required_set)
		cJSON_AddBoolToObject(body, "cas_required", c->cas_required);
	if (c->custom_metadata && c->custom_metadata->child)
		cJSON_AddItemToObject(body, "custom_metadata",
				      cJSON_Duplicate(c->custom_metadata, true));
	code = kv_write_output(c, full, body);
	cJSON_Delete(body);
	free(full);
	kv_target_free(&t);
	return code;
}

static int kv_metadata_delete(struct cli *c, int argc, char **argv, int start)
{
	struct kv_target t;
	char *full;
	int code;
	if (kv_metadata_start(c, C_KMDELETE, argc, argv, start, &t, &full, &code) < 0)
		return code;
	struct cs_client_resp r;
	if (cs_cli_call_delete(c, "DELETE", full, NULL, full, &r)) {
		printf("Success! Data deleted (if it existed) at: %s\n", full);
		code = 0;
	} else {
		code = 2;
	}
	cs_client_resp_free(&r);
	free(full);
	kv_target_free(&t);
	return code;
}

static const char usage_kv[] =
    "Usage: custos kv <subcommand> [options] [args]\n"
    "\n"
    "  Interacts with KV secrets engines (version 1 or 2; the version is detected).\n"
    "\n"
    "Subcommands:\n"
    "    delete      Deletes versions in the KV store\n"
    "    destroy     Permanently removes one or more versions in the KV store\n"
    "    get         Retrieves data from the KV store\n"
    "    list        List data or secrets\n"
    "    metadata    Interact with KV metadata (get, put, delete)\n"
    "    patch       Sets or updates data in the KV store without overwriting\n"
    "    put         Sets or updates data in the KV store\n"
    "    undelete    Undeletes versions in the KV store\n";

static const char usage_kv_metadata[] =
    "Usage: custos kv metadata <subcommand> [options] PATH\n"
    "\n"
    "Subcommands:\n"
    "    delete    Deletes all versions and metadata for a key\n"
    "    get       Retrieves key metadata\n"
    "    put       Sets or updates key settings\n";

static int kv_undelete(struct cli *c, int argc, char **argv, int start)
{
	return kv_versions_op(c, C_KUNDELETE, argc, argv, start, "undelete", "Undelete");
}

static int kv_destroy(struct cli *c, int argc, char **argv, int start)
{
	return kv_versions_op(c, C_KDESTROY, argc, argv, start, "destroy", "Destroy");
}

static int kv_metadata(struct cli *c, int argc, char **argv, int start)
{
	static const struct cs_cli_sub subs[] = {
	    {"get", kv_metadata_get}, {"put", kv_metadata_put}, {"delete", kv_metadata_delete}};
	return cs_cli_dispatch(c, argc, argv, start, subs, CS_ARRAY_LEN(subs), usage_kv_metadata);
}

int cs_cli_kv(struct cli *c, int argc, char **argv)
{
	static const struct cs_cli_sub subs[] = {
	    {"get", kv_get},       {"put", kv_put},           {"patch", kv_patch},
	    {"delete", kv_delete}, {"undelete", kv_undelete}, {"destroy", kv_destroy},
	    {"list", kv_list},     {"metadata", kv_metadata},
	};
	return cs_cli_dispatch(c, argc, argv, 2, subs, CS_ARRAY_LEN(subs), usage_kv);
}
