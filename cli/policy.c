/*
 * `policy write|read|list|delete|fmt` against sys/policies/acl; `fmt` parses the HCL
 * locally and prints it in canonical form.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_internal.h"
#include "cli/families.h"
#include "lib/hcl.h"

/* ------------------------------------------------------------------ flags & usage */

static const struct usage policy_usages[] = {
    {C_PWRITE, "Usage: custos policy write [options] NAME PATH\n\n"
	       "  Uploads the ACL policy NAME from the file PATH (\"-\" reads stdin), in HCL\n"
	       "  or JSON.\n"},
    {C_PREAD, "Usage: custos policy read [options] NAME\n\n  Prints the policy NAME.\n"},
    {C_PLIST, "Usage: custos policy list [options]\n\n  Lists the ACL policies.\n"},
    {C_PDELETE, "Usage: custos policy delete [options] NAME\n\n  Deletes the policy NAME.\n"},
    {C_PFMT, "Usage: custos policy fmt [options] PATH\n\n"
	     "  Rewrites the HCL policy file PATH in canonical form (comments are dropped).\n"},
};

const struct cs_cli_family cs_cli_policy_family = {NULL, 0, policy_usages,
						   CS_ARRAY_LEN(policy_usages)};

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
	bool ok = cs_cli_call(c, "PUT", p.data, NULL, body, &r, "Error uploading policy");
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
	if (!cs_cli_call(c, "LIST", "sys/policies/acl", NULL, NULL, &r, "Error listing policies")) {
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
	if (cs_cli_call_delete(c, "DELETE", p.data, NULL, name, &r)) {
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
