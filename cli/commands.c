/*
 * The access-control verbs of the CLI: `kv`, `policy`, `token` and `login`, with the
 * Vault CLI's flags, output and exit codes (OpenBao's command/kv_*.go, policy_*.go,
 * token_*.go and login.go are the reference). Shared plumbing (flag parsing, client,
 * output helpers) lives in cli.c behind cli_internal.h.
 *
 * Exit codes as in Vault: 1 for flag/argument errors (and a few "not supported on this
 * KV version" refusals, as Vault does), 2 for errors from or while reaching the server.
 *
 * `kv` commands first ask the server which mount serves the path and whether it is a
 * versioned (v2) KV store (GET sys/internal/ui/mounts/PATH; a 404 means an old server,
 * treated as v1), then rewrite the friendly path: secret/foo → secret/data/foo,
 * secret/metadata/foo, secret/delete/foo ... on v2; unchanged on v1.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/cli_internal.h"
#include "cli/format.h"
#include "lib/hcl.h"
#include "lib/util.h"

/* ------------------------------------------------------------------ flags & usage */

#define C_KV_ALL                                                                                   \
	(C_KGET | C_KPUT | C_KPATCH | C_KDELETE | C_KUNDELETE | C_KDESTROY | C_KLIST | C_KMGET |   \
	 C_KMPUT | C_KMDELETE)

const struct flag cs_cli_cmd_flags[] = {
    {"mount", F_STR, OFF(mount), C_KV_ALL, 0},
    {"field", F_STR, OFF(field),
     C_KGET | C_KPUT | C_KPATCH | C_KDELETE | C_TCREATE | C_TLOOKUP | C_LOGIN, 0},
    {"version", F_INT, OFF(version), C_KGET, 0},
    {"cas", F_INT, OFF(cas), C_KPUT | C_KPATCH, OFF(cas_set)},
    {"method", F_STR, OFF(method), C_KPATCH | C_LOGIN, 0},
    {"remove-data", F_LIST, OFF(remove_data), C_KPATCH, 0},
    {"versions", F_LIST, OFF(versions), C_KDELETE | C_KUNDELETE | C_KDESTROY, 0},
    {"detailed", F_BOOL, OFF(detailed), C_KLIST, 0},
    {"max-versions", F_INT, OFF(max_versions), C_KMPUT, OFF(max_versions_set)},
    {"cas-required", F_BOOL, OFF(cas_required), C_KMPUT, OFF(cas_required_set)},
    {"delete-version-after", F_DUR, OFF(delete_version_after), C_KMPUT,
     OFF(delete_version_after_set)},
    {"custom-metadata", F_KV, OFF(custom_metadata), C_KMPUT, 0},
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
    {"path", F_STR, OFF(path), C_LOGIN, 0},
    {"no-store", F_BOOL, OFF(no_store), C_LOGIN, 0},
    {"no-print", F_BOOL, OFF(no_print), C_LOGIN, 0},
    {"token-only", F_BOOL, OFF(token_only), C_LOGIN, 0},
};
const size_t cs_cli_n_cmd_flags = CS_ARRAY_LEN(cs_cli_cmd_flags);

#define MOUNT_HELP                                                                                 \
	"  -mount=<string>        Mount path of the KV engine; PATH is then relative to it.\n"

const struct usage cs_cli_cmd_usages[] = {
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
    {C_PWRITE, "Usage: custos policy write [options] NAME PATH\n\n"
	       "  Uploads the ACL policy NAME from the file PATH (\"-\" reads stdin), in HCL\n"
	       "  or JSON.\n"},
    {C_PREAD, "Usage: custos policy read [options] NAME\n\n  Prints the policy NAME.\n"},
    {C_PLIST, "Usage: custos policy list [options]\n\n  Lists the ACL policies.\n"},
    {C_PDELETE, "Usage: custos policy delete [options] NAME\n\n  Deletes the policy NAME.\n"},
    {C_PFMT, "Usage: custos policy fmt [options] PATH\n\n"
	     "  Rewrites the HCL policy file PATH in canonical form (comments are dropped).\n"},
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
const size_t cs_cli_n_cmd_usages = CS_ARRAY_LEN(cs_cli_cmd_usages);

/* ------------------------------------------------------------------ small helpers */

static bool has_field(const struct cli *c)
{
	return c->field && *c->field;
}

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

/* One API call; on failure prints "<what>: <API error>" and returns false. The caller
 * frees *r either way. */
static bool call(struct cli *c, const char *method, const char *path, const char *query,
		 const cJSON *body, struct cs_client_resp *r, const char *what)
{
	if (cs_client_request(&c->client, method, path, query, body, r) == 0 &&
	    cs_client_resp_ok(r))
		return true;
	cs_cli_api_error(r, "%s", what);
	return false;
}

/* A delete-type request whose failure reads "Error deleting WHAT: <API error>". */
static bool call_delete(struct cli *c, const char *method, const char *path, const cJSON *body,
			const char *what_path, struct cs_client_resp *r)
{
	struct cs_buf what = CS_BUF_INIT;
	cs_buf_printf(&what, "Error deleting %s", what_path);
	bool ok = call(c, method, path, NULL, body, r, what.data);
	cs_buf_free(&what);
	return ok;
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
	if (has_field(c)) {
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
	if (has_field(c))
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
	bool ok = call(c, "PUT", full, NULL, body, r, what.data);
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
	bool ok = call(c, "PUT", full, NULL, body, out, what.data);
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
		ok = call_delete(c, "PUT", del, body, full, &r);
		cJSON_Delete(body);
		free(del);
	} else {
		ok = call_delete(c, "DELETE", full, NULL, full, &r);
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
	if (call_delete(c, "DELETE", full, NULL, full, &r)) {
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

/* ------------------------------------------------------------------ policy */

/* Vault lower-cases and trims policy names. Returns malloc'd. */
static char *policy_name(const char *s)
{
	char *n = cs_cli_trim_dup(s, strlen(s));
	for (char *p = n; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return n;
}

static int policy_write(struct cli *c, int argc, char **argv, int start)
{
	int code;
	int i = cs_cli_start(c, C_PWRITE, argc, argv, start, 2, 2, "2", &code);
	if (i < 0)
		return code;
	char *name = policy_name(argv[i]);
	char *file = cs_cli_trim_dup(argv[i + 1], strlen(argv[i + 1]));
	struct cs_buf rules = CS_BUF_INIT;
	int rc;
	if (strcmp(file, "-") == 0) {
		rc = cs_cli_read_stream(stdin, &rules);
	} else {
		FILE *f = fopen(file, "rb");
		if (!f) {
			fprintf(stderr, "Error opening policy file: open %s: %s\n", file,
				strerror(errno));
			code = 2;
			goto out;
		}
		rc = cs_cli_read_stream(f, &rules);
		fclose(f);
	}
	if (rc) {
		fprintf(stderr, "Error reading policy: %s\n", strerror(rc));
		code = 2;
		goto out;
	}
	cs_buf_putc(&rules, '\0');
	cJSON *body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "policy", rules.data);
	struct cs_buf p = CS_BUF_INIT;
	cs_buf_printf(&p, "sys/policies/acl/%s", name);
	struct cs_client_resp r;
	bool ok = call(c, "PUT", p.data, NULL, body, &r, "Error uploading policy");
	cs_client_resp_free(&r);
	cs_buf_free(&p);
	cJSON_Delete(body);
	if (!ok) {
		code = 2;
		goto out;
	}
	if (strcmp(name, argv[i]) != 0)
		fprintf(stderr, "Policy name was converted from \"%s\" to \"%s\"\n", argv[i], name);
	printf("Success! Uploaded policy: %s\n", name);
	code = 0;
out:
	cs_buf_free(&rules);
	free(file);
	free(name);
	return code;
}

/* Start of read/delete: flags, exactly one NAME, client. Returns the lower-cased name
 * (malloc'd) or NULL with *code set. */
static char *policy_start(struct cli *c, uint64_t cmd, int argc, char **argv, int start, int *code)
{
	int i = cs_cli_begin(c, cmd, argc, argv, start, code);
	if (i < 0)
		return NULL;
	if (cs_cli_bad_nargs(argc - i, 1, 1, "1")) {
		*code = 1;
		return NULL;
	}
	if (cs_cli_make_client(c)) {
		*code = 2;
		return NULL;
	}
	return policy_name(argv[i]);
}

static int policy_read(struct cli *c, int argc, char **argv, int start)
{
	int code;
	char *name = policy_start(c, C_PREAD, argc, argv, start, &code);
	if (!name)
		return code;
	struct cs_buf p = CS_BUF_INIT;
	cs_buf_printf(&p, "sys/policies/acl/%s", name);
	struct cs_client_resp r;
	int rc = cs_client_request(&c->client, "GET", p.data, NULL, NULL, &r);
	cs_buf_free(&p);
	const cJSON *pol = cs_cli_get(cs_cli_get(r.json, "data"), "policy");
	if (rc == 0 && r.status == 404) {
		fprintf(stderr, "No policy named: %s\n", name);
		code = 2;
	} else if (rc != 0 || !cs_client_resp_ok(&r)) {
		cs_cli_api_error(&r, "Error reading policy named %s", name);
		code = 2;
	} else if (!cJSON_IsString(pol)) {
		fprintf(stderr, "Error reading policy named %s: no policy found in response\n",
			name);
		code = 2;
	} else if (!*pol->valuestring) {
		fprintf(stderr, "No policy named: %s\n", name);
		code = 2;
	} else if (cs_cli_is_json(c)) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "policy", pol->valuestring);
		cs_cli_print_json(o, true);
		cJSON_Delete(o);
		code = 0;
	} else {
		char *t = cs_cli_trim_dup(pol->valuestring, strlen(pol->valuestring));
		printf("%s\n", t);
		free(t);
		code = 0;
	}
	cs_client_resp_free(&r);
	free(name);
	return code;
}

static int policy_list(struct cli *c, int argc, char **argv, int start)
{
	int code;
	int i = cs_cli_start(c, C_PLIST, argc, argv, start, 0, 0, "0", &code);
	if (i < 0)
		return code;
	struct cs_client_resp r;
	if (!call(c, "LIST", "sys/policies/acl", NULL, NULL, &r, "Error listing policies")) {
		cs_client_resp_free(&r);
		return 2;
	}
	const cJSON *keys = cs_cli_get(cs_cli_get(r.json, "data"), "keys");
	if (!cJSON_IsArray(keys)) {
		fprintf(stderr, "Error listing policies: data from server response is empty\n");
		cs_client_resp_free(&r);
		return 2;
	}
	if (cs_cli_is_json(c)) {
		cs_cli_print_json(keys, true);
	} else {
		for (const cJSON *k = keys->child; k; k = k->next)
			if (cJSON_IsString(k))
				printf("%s\n", k->valuestring);
	}
	cs_client_resp_free(&r);
	return 0;
}

static int policy_delete(struct cli *c, int argc, char **argv, int start)
{
	int code;
	char *name = policy_start(c, C_PDELETE, argc, argv, start, &code);
	if (!name)
		return code;
	struct cs_buf p = CS_BUF_INIT;
	cs_buf_printf(&p, "sys/policies/acl/%s", name);
	struct cs_client_resp r;
	if (call_delete(c, "DELETE", p.data, NULL, name, &r)) {
		printf("Success! Deleted policy: %s\n", name);
		code = 0;
	} else {
		code = 2;
	}
	cs_client_resp_free(&r);
	cs_buf_free(&p);
	free(name);
	return code;
}

/* --- canonical HCL printing for `policy fmt` --- */

static void hcl_string(struct cs_buf *b, const char *s)
{
	cs_buf_putc(b, '"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			cs_buf_printf(b, "\\%c", *p);
		else if (*p == '\n')
			cs_buf_puts(b, "\\n");
		else if (*p == '\t')
			cs_buf_puts(b, "\\t");
		else if (*p < 0x20)
			cs_buf_printf(b, "\\u%04x", *p);
		else
			cs_buf_putc(b, (char)*p);
	}
	cs_buf_putc(b, '"');
}

static void hcl_key(struct cs_buf *b, const char *k)
{
	bool ident = *k && (isalpha((unsigned char)*k) || *k == '_');
	for (const char *p = k; ident && *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
			ident = false;
	if (ident)
		cs_buf_puts(b, k);
	else
		hcl_string(b, k);
}

static void hcl_indent(struct cs_buf *b, int depth)
{
	for (int i = 0; i < depth; i++)
		cs_buf_puts(b, "  ");
}

static void hcl_body(struct cs_buf *b, const struct cs_hcl_node *obj, int depth);

/* A scalar or list value on one line. */
static void hcl_inline(struct cs_buf *b, const struct cs_hcl_node *v, int depth)
{
	switch (v->type) {
	case CS_HCL_STRING:
		hcl_string(b, v->str);
		break;
	case CS_HCL_NUMBER:
		cs_buf_puts(b, v->str);
		break;
	case CS_HCL_BOOL:
		cs_buf_puts(b, v->b ? "true" : "false");
		break;
	case CS_HCL_NULL:
		cs_buf_puts(b, "null");
		break;
	case CS_HCL_LIST:
		cs_buf_putc(b, '[');
		for (const struct cs_hcl_node *e = v->child; e; e = e->next) {
			hcl_inline(b, e, depth);
			if (e->next)
				cs_buf_puts(b, ", ");
		}
		cs_buf_putc(b, ']');
		break;
	case CS_HCL_OBJECT:
		cs_buf_puts(b, "{\n");
		hcl_body(b, v, depth + 1);
		hcl_indent(b, depth);
		cs_buf_putc(b, '}');
		break;
	}
}

/* Members of an object: attributes aligned on '=' in runs (as hcl's printer does),
 * objects as blocks whose single-object chains become labels (path "x" { ... }). */
static void hcl_body(struct cs_buf *b, const struct cs_hcl_node *obj, int depth)
{
	const struct cs_hcl_node *m = obj->child;
	bool first = true;
	while (m) {
		if (m->type == CS_HCL_OBJECT) {
			if (!first)
				cs_buf_putc(b, '\n');
			hcl_indent(b, depth);
			hcl_key(b, m->key);
			const struct cs_hcl_node *o = m;
			while (o->child && !o->child->next && o->child->type == CS_HCL_OBJECT) {
				o = o->child;
				cs_buf_putc(b, ' ');
				hcl_string(b, o->key);
			}
			cs_buf_puts(b, " {\n");
			hcl_body(b, o, depth + 1);
			hcl_indent(b, depth);
			cs_buf_puts(b, "}\n");
			m = m->next;
			first = false;
			continue;
		}
		/* A run of attributes: pad keys to the widest. */
		size_t w = 0;
		const struct cs_hcl_node *e = m;
		for (; e && e->type != CS_HCL_OBJECT; e = e->next) {
			struct cs_buf k = CS_BUF_INIT;
			hcl_key(&k, e->key);
			if (k.len > w)
				w = k.len;
			cs_buf_free(&k);
		}
		if (!first && depth == 0)
			cs_buf_putc(b, '\n');
		for (; m != e; m = m->next) {
			size_t before = b->len;
			hcl_indent(b, depth);
			size_t kstart = b->len;
			hcl_key(b, m->key);
			for (size_t k = b->len - kstart; k < w; k++)
				cs_buf_putc(b, ' ');
			(void)before;
			cs_buf_puts(b, " = ");
			hcl_inline(b, m, depth);
			cs_buf_putc(b, '\n');
		}
		first = false;
	}
}

static char *expand_home(const char *p)
{
	char *t = cs_cli_trim_dup(p, strlen(p));
	const char *home = getenv("HOME");
	if (t[0] == '~' && (t[1] == '/' || t[1] == '\0') && home) {
		struct cs_buf b = CS_BUF_INIT;
		cs_buf_printf(&b, "%s%s", home, t + 1);
		free(t);
		return cs_buf_steal(&b, NULL);
	}
	return t;
}

static int policy_fmt(struct cli *c, int argc, char **argv, int start)
{
	int code;
	int i = cs_cli_begin(c, C_PFMT, argc, argv, start, &code);
	if (i < 0)
		return code;
	if (cs_cli_bad_nargs(argc - i, 1, 1, "1"))
		return 1;
	char *path = expand_home(argv[i]);
	char *text = NULL;
	size_t len = 0;
	int rc = cs_read_file(path, &text, &len);
	if (rc) {
		fprintf(stderr, "Error reading source file: open %s: %s\n", path, strerror(rc));
		free(path);
		return 1;
	}
	char err[256];
	struct cs_hcl_node *root = cs_hcl_parse(text, len, err, sizeof err);
	free(text);
	if (!root) {
		fprintf(stderr, "failed to parse policy: %s\n", err);
		free(path);
		return 1;
	}
	struct cs_buf out = CS_BUF_INIT;
	hcl_body(&out, root, 0);
	cs_hcl_free(root);
	code = 0;
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(out.data ? out.data : "", 1, out.len, f) != out.len) {
		fprintf(stderr, "Error writing result: open %s: %s\n", path, strerror(errno));
		code = 1;
	}
	if (f && fclose(f) != 0 && code == 0) {
		fprintf(stderr, "Error writing result: %s\n", strerror(errno));
		code = 1;
	}
	if (code == 0)
		printf("Success! Formatted policy: %s\n", path);
	cs_buf_free(&out);
	free(path);
	return code;
}

static const char usage_policy[] = "Usage: custos policy <subcommand> [options] [args]\n"
				   "\n"
				   "Subcommands:\n"
				   "    delete    Deletes a policy by name\n"
				   "    fmt       Formats a policy on disk\n"
				   "    list      Lists the installed policies\n"
				   "    read      Prints the contents of a policy\n"
				   "    write     Uploads a named policy from a file\n";

int cs_cli_policy(struct cli *c, int argc, char **argv)
{
	static const struct cs_cli_sub subs[] = {
	    {"write", policy_write},   {"read", policy_read}, {"list", policy_list},
	    {"delete", policy_delete}, {"fmt", policy_fmt},
	};
	return cs_cli_dispatch(c, argc, argv, 2, subs, CS_ARRAY_LEN(subs), usage_policy);
}

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
	if (has_field(c))
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
	if (call(c, "POST", p.data, NULL, body, &r, "Error creating token"))
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
	if (call(c, method, path, NULL, send_body ? body : NULL, &r, what)) {
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
	if (call(c, method, p.data, NULL, body, &r, "Error revoking token")) {
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
	if (!call(c, "POST", token ? "sys/capabilities" : "sys/capabilities-self", NULL, body, &r,
		  "Error listing capabilities")) {
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
	if (call(c, "PUT", path, NULL, body, &r, "Error authenticating")) {
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
		if (call(c, "PUT", "sys/wrapping/unwrap", NULL, NULL, &r,
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
		return 1;
	}
	/* `custos login TOKEN` is `custos login token=TOKEN`. */
	int nargs = argc - i;
	char **args = calloc((size_t)nargs + 1, sizeof *args);
	if (!args)
		abort();
	char *token_arg = NULL;
	for (int k = 0; k < nargs; k++)
		args[k] = argv[i + k];
	if (strcmp(method, "token") == 0 && nargs > 0 && !strchr(args[0], '=')) {
		size_t n = strlen(args[0]) + 7;
		token_arg = malloc(n);
		if (!token_arg)
			abort();
		snprintf(token_arg, n, "token=%s", args[0]);
		args[0] = token_arg;
	}
	cJSON *cfg = cJSON_CreateObject();
	struct cs_buf err = CS_BUF_INIT;
	int prc = cs_cli_parse_kv(cfg, nargs, args, &err);
	if (token_arg) {
		cs_zero(token_arg, strlen(token_arg));
		free(token_arg);
	}
	free(args);
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
			code = 2;
			goto out;
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
	code = 0;
	if (c->no_print)
		goto out;
	if (has_field(c)) {
		code = cs_cli_print_field(c, secret, c->field, true, "secret");
		goto out;
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
	code = cs_cli_output_secret(c, secret);
out:
	cs_client_json_free_secure(secret);
	cs_client_json_free_secure(cfg);
	cs_buf_free(&err);
	free(mount);
	free(method);
	return code;
}
