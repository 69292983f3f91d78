/*
 * The audit broker (see audit.h for the semantics).
 *
 * Happy path for one request: cs_audit_request builds an unhashed template
 * {"auth":{...},"request":{...}} from the request, keeps it in a per-request record,
 * formats one line per device (hashing a copy with that device's salt) and writes it;
 * cs_audit_response parses the JSON about to be sent, builds the "response" block, and
 * writes the response line the same way, then drops the record.
 * Failure modes: the table cannot be loaded (storage error, missing salt) → the devices
 * concerned count as failed, so with nothing else enabled the request fails closed; a
 * device write fails → the device retried once itself (reopen/reconnect), the broker
 * counts it failed; all failed → 500 to the client (request: before the handler, nothing
 * changed; response: after the commit, see audit.h); the table is reset while a request
 * is in flight (seal, leadership loss) → the response entry goes to the reloaded table,
 * or nowhere when the node is sealed by then (logged as a warning, the client still gets
 * its response: there is no device left to fail closed against).
 *
 * Plaintext handling: templates and raw (log_raw) lines hold secrets; they are zeroised
 * before being freed.
 */
#include "audit/audit.h"

#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/secmem.h"
#include "lib/util.h"
#include "server/core.h"
#include "server/http.h"
#include "server/router.h"
#include "server/sys.h"
#include "storage/txn.h"

#define TABLE_KEY "core/audit"

/* ------------------------------------------------------------------ hashing */

char *cs_audit_hmac(const uint8_t *salt, size_t salt_len, const char *s)
{
	uint8_t mac[32];
	cs_hmac_sha256(salt, salt_len, s, strlen(s), mac);
	char *out = malloc(12 + 2 * sizeof mac + 1);
	if (!out)
		abort();
	memcpy(out, "hmac-sha256:", 12);
	cs_hex_encode(mac, sizeof mac, out + 12);
	return out;
}

static void hash_string_item(cJSON *item, const uint8_t *salt, size_t salt_len)
{
	/* No exception for strings shaped like timestamps (Vault has one): the value of a
	 * request or response data field is whatever the client or the backend put there. */
	if (!cJSON_IsString(item) || !item->valuestring)
		return;
	char *h = cs_audit_hmac(salt, salt_len, item->valuestring);
	cs_zero(item->valuestring, strlen(item->valuestring));
	cJSON_free(item->valuestring);
	item->valuestring = h; /* cJSON frees it with free() through its default hooks */
}

void cs_audit_hash_tree(cJSON *v, const uint8_t *salt, size_t salt_len)
{
	if (!v)
		return;
	if (cJSON_IsString(v)) {
		hash_string_item(v, salt, salt_len);
		return;
	}
	cJSON *c;
	cJSON_ArrayForEach(c, v) cs_audit_hash_tree(c, salt, salt_len);
}

/* Hash the string member `name` of o (if present). */
static void hash_member(cJSON *o, const char *name, const uint8_t *salt)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	if (cJSON_IsString(v) && *v->valuestring) {
		char *h = cs_audit_hmac(salt, CS_AUDIT_SALT_LEN, v->valuestring);
		cs_zero(v->valuestring, strlen(v->valuestring));
		cJSON_free(v->valuestring);
		v->valuestring = h;
	}
}

/* Zeroise every string (values and keys) of a tree, then delete it. */
static void wipe_tree(cJSON *v)
{
	cJSON *c;
	for (c = v ? v->child : NULL; c; c = c->next)
		wipe_tree(c);
	if (v && v->valuestring)
		cs_zero(v->valuestring, strlen(v->valuestring));
}

static void secure_delete(cJSON *v)
{
	if (!v)
		return;
	wipe_tree(v);
	cJSON_Delete(v);
}

/* ------------------------------------------------------------------ devices */

static struct cs_audit_limits limits;

void cs_audit_set_limits(const char *storage_dir, bool allow_prefixing)
{
	snprintf(limits.storage_dir, sizeof limits.storage_dir, "%s",
		 storage_dir ? storage_dir : "");
	limits.allow_prefixing = allow_prefixing;
}

const struct cs_audit_limits *cs_audit_get_limits(void)
{
	return &limits;
}

static void limits_from_core(const struct cs_core *core)
{
	cs_audit_set_limits(core->data_dir, core->cfg && core->cfg->allow_audit_log_prefixing);
}

static const struct cs_audit_ops *ops_for(const char *type)
{
	if (strcmp(type, "file") == 0)
		return &cs_audit_file_ops;
	if (strcmp(type, "socket") == 0)
		return &cs_audit_socket_ops;
	return NULL;
}

static const char *opt_str(const cJSON *o, const char *name, const char *def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : def;
}

static int opt_bool(const cJSON *o, const char *name, bool def, bool *out, char *errmsg,
		    size_t errlen)
{
	const char *s = opt_str(o, name, NULL);
	*out = def;
	if (s && *s && cs_parse_bool(s, out)) {
		snprintf(errmsg, errlen, "unable to parse '%s': invalid boolean", name);
		return CS_EINVAL;
	}
	return 0;
}

int cs_audit_device_init(struct cs_audit_device *d, const char *type, const cJSON *options,
			 bool probe, char *errmsg, size_t errlen)
{
	d->fd = -1;
	d->sock = -1;
	d->ops = ops_for(type);
	if (!d->ops) {
		snprintf(errmsg, errlen, "unknown backend type: \"%s\"", type);
		return CS_EINVAL;
	}
	if (!d->type)
		d->type = strdup(type);
	if (!d->options)
		d->options = options ? cJSON_Duplicate(options, true) : cJSON_CreateObject();
	const char *fmt = opt_str(d->options, "format", "json");
	if (strcmp(fmt, "json") != 0) {
		snprintf(errmsg, errlen, "unsupported \"format\": \"%s\" (only json is supported)",
			 fmt);
		return CS_EINVAL;
	}
	int rc = opt_bool(d->options, "log_raw", false, &d->log_raw, errmsg, errlen);
	if (!rc)
		rc = opt_bool(d->options, "hmac_accessor", true, &d->hmac_accessor, errmsg, errlen);
	if (!rc)
		rc = opt_bool(d->options, "elide_list_responses", false, &d->elide_list, errmsg,
			      errlen);
	if (rc)
		return rc;
	/* Vault 1.20: a prefix is attacker-chosen bytes at the start of every line of a file
	 * the server writes (CVE-2025-6000); over the API only when the config allows it.
	 * Present at all counts, as in Vault. */
	if (probe && cJSON_GetObjectItemCaseSensitive(d->options, "prefix") &&
	    !limits.allow_prefixing) {
		snprintf(errmsg, errlen,
			 "audit log prefixing is not allowed; set allow_audit_log_prefixing = true "
			 "in the server configuration to use \"prefix\"");
		return CS_EINVAL;
	}
	free(d->prefix);
	d->prefix = strdup(opt_str(d->options, "prefix", ""));
	return d->ops->open(d, probe, errmsg, errlen);
}

void cs_audit_device_free(struct cs_audit_device *d)
{
	if (!d)
		return;
	if (d->ops)
		d->ops->close(d);
	free(d->path);
	free(d->type);
	free(d->description);
	cJSON_Delete(d->options);
	free(d->prefix);
	free(d->file_path);
	free(d->address);
	cs_secmem_free(d->salt, CS_AUDIT_SALT_LEN);
	free(d);
}

/* The table, in enable order. Loaded lazily; `loaded` false after a reset. */
static struct cs_audit_device **devs;
static size_t n_devs;
static bool loaded;

void cs_audit_reset(void)
{
	for (size_t i = 0; i < n_devs; i++)
		cs_audit_device_free(devs[i]);
	free(devs);
	devs = NULL;
	n_devs = 0;
	loaded = false;
}

void cs_audit_reopen(void)
{
	for (size_t i = 0; i < n_devs; i++)
		devs[i]->ops->reopen(devs[i]);
	if (n_devs)
		cs_info("audit: reopened %zu device(s)", n_devs);
}

static void table_add(struct cs_audit_device *d)
{
	struct cs_audit_device **v = realloc(devs, (n_devs + 1) * sizeof *v);
	if (!v)
		abort();
	devs = v;
	devs[n_devs++] = d;
}

static struct cs_audit_device *table_get(const char *path)
{
	for (size_t i = 0; i < n_devs; i++)
		if (strcmp(devs[i]->path, path) == 0)
			return devs[i];
	return NULL;
}

static int salt_key(const struct cs_audit_device *d, char *out, size_t n)
{
	return snprintf(out, n, "audit/%s/salt", d->uuid) < (int)n ? 0 : CS_EINVAL;
}

static int load_salt(struct cs_txn *txn, struct cs_audit_device *d)
{
	char key[128];
	salt_key(d, key, sizeof key);
	struct cs_buf b = CS_BUF_INIT;
	int rc = cs_txn_get(txn, key, &b);
	if (!rc && b.len != CS_AUDIT_SALT_LEN)
		rc = CS_EIO;
	if (!rc) {
		d->salt = cs_secmem_alloc(CS_AUDIT_SALT_LEN);
		memcpy(d->salt, b.data, CS_AUDIT_SALT_LEN);
	}
	cs_buf_free_secure(&b);
	return rc;
}

/* Build the in-memory table from storage. A device whose options no longer open (file
 * directory gone) stays in the table: its writes fail (and retry the open), so the
 * operator sees failures instead of a silently missing device. */
static int load_table(struct cs_core *core)
{
	if (loaded)
		return 0;
	if (!core->kr)
		return CS_ESEALED;
	limits_from_core(core);
	struct cs_txn txn;
	cs_txn_begin(&txn, &core->st, core->kr);
	struct cs_buf b = CS_BUF_INIT;
	int rc = cs_txn_get(&txn, TABLE_KEY, &b);
	cJSON *t = NULL;
	if (rc == CS_ENOTFOUND) {
		rc = 0;
	} else if (!rc) {
		t = cJSON_ParseWithLength(b.data, b.len);
		if (!t)
			rc = CS_EIO;
	}
	cs_buf_free_secure(&b);
	const cJSON *e;
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(t, "entries"))
	{
		struct cs_audit_device *d = calloc(1, sizeof *d);
		if (!d)
			abort();
		d->path = strdup(opt_str(e, "path", ""));
		d->type = strdup(opt_str(e, "type", ""));
		d->description = strdup(opt_str(e, "description", ""));
		snprintf(d->uuid, sizeof d->uuid, "%s", opt_str(e, "uuid", ""));
		snprintf(d->accessor, sizeof d->accessor, "%s", opt_str(e, "accessor", ""));
		d->local = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "local"));
		const cJSON *o = cJSON_GetObjectItemCaseSensitive(e, "options");
		d->options = cJSON_IsObject(o) ? cJSON_Duplicate(o, true) : cJSON_CreateObject();
		char err[256] = "";
		if (cs_audit_device_init(d, d->type, NULL, false, err, sizeof err))
			cs_warn("audit: device %s (%s) does not open: %s", d->path, d->type, err);
		if (load_salt(&txn, d))
			cs_warn("audit: device %s has no salt; it cannot log", d->path);
		table_add(d);
	}
	cJSON_Delete(t);
	cs_txn_abort(&txn);
	if (rc) {
		cs_warn("audit: cannot load the audit table: %s", cs_strerror(rc));
		return rc;
	}
	loaded = true;
	if (n_devs)
		cs_info("audit: %zu device(s) enabled", n_devs);
	return 0;
}

static cJSON *table_json(void)
{
	cJSON *t = cJSON_CreateObject();
	cJSON_AddStringToObject(t, "type", "audit");
	cJSON *a = cJSON_AddArrayToObject(t, "entries");
	for (size_t i = 0; i < n_devs; i++) {
		const struct cs_audit_device *d = devs[i];
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "table", "audit");
		cJSON_AddStringToObject(e, "path", d->path);
		cJSON_AddStringToObject(e, "type", d->type);
		cJSON_AddStringToObject(e, "description", d->description);
		cJSON_AddStringToObject(e, "uuid", d->uuid);
		cJSON_AddStringToObject(e, "accessor", d->accessor);
		cJSON_AddItemToObject(e, "options", cJSON_Duplicate(d->options, true));
		cJSON_AddBoolToObject(e, "local", d->local);
		cJSON_AddBoolToObject(e, "seal_wrap", false);
		cJSON_AddItemToArray(a, e);
	}
	return t;
}

static int save_table(struct cs_txn *txn)
{
	cJSON *t = table_json();
	char *s = cJSON_PrintUnformatted(t);
	int rc = cs_txn_put(txn, TABLE_KEY, s, strlen(s));
	free(s);
	cJSON_Delete(t);
	return rc;
}

/* ------------------------------------------------------------------ formatting */

static void elide_list(cJSON *data)
{
	cJSON *keys = cJSON_GetObjectItemCaseSensitive(data, "keys");
	if (cJSON_IsArray(keys))
		cJSON_ReplaceItemInObjectCaseSensitive(
		    data, "keys", cJSON_CreateNumber(cJSON_GetArraySize(keys)));
	cJSON *ki = cJSON_GetObjectItemCaseSensitive(data, "key_info");
	if (cJSON_IsObject(ki))
		cJSON_ReplaceItemInObjectCaseSensitive(data, "key_info",
						       cJSON_CreateNumber(cJSON_GetArraySize(ki)));
}

static void hash_auth(cJSON *auth, const struct cs_audit_device *d)
{
	hash_member(auth, "client_token", d->salt);
	if (d->hmac_accessor)
		hash_member(auth, "accessor", d->salt);
}

char *cs_audit_format(const struct cs_audit_device *d, const char *type, const cJSON *tmpl,
		      const cJSON *response, const char *error, size_t *len)
{
	char now[48];
	cs_format_time(cs_now_ns(), now, sizeof now);
	cJSON *e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "time", now);
	cJSON_AddStringToObject(e, "type", type);
	cJSON *auth = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(tmpl, "auth"), true);
	cJSON *req = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(tmpl, "request"), true);
	cJSON *resp = response ? cJSON_Duplicate(response, true) : NULL;
	bool is_list = strcmp(opt_str(req, "operation", ""), "list") == 0;
	cJSON *rdata = cJSON_GetObjectItemCaseSensitive(resp, "data");
	if (d->elide_list && is_list && cJSON_IsObject(rdata))
		elide_list(rdata);
	if (!d->log_raw) {
		/* The broker never calls us for a device without a salt; tests may. */
		static const uint8_t none[CS_AUDIT_SALT_LEN];
		const uint8_t *salt = d->salt ? d->salt : none;
		struct cs_audit_device tmp = *d;
		tmp.salt = (uint8_t *)salt;
		hash_auth(auth, &tmp);
		hash_member(req, "client_token", salt);
		if (d->hmac_accessor)
			hash_member(req, "client_token_accessor", salt);
		cs_audit_hash_tree(cJSON_GetObjectItemCaseSensitive(req, "data"), salt,
				   CS_AUDIT_SALT_LEN);
		if (resp) {
			hash_auth(cJSON_GetObjectItemCaseSensitive(resp, "auth"), &tmp);
			cs_audit_hash_tree(rdata, salt, CS_AUDIT_SALT_LEN);
			cJSON *wi = cJSON_GetObjectItemCaseSensitive(resp, "wrap_info");
			hash_member(wi, "token", salt);
			if (d->hmac_accessor) {
				hash_member(wi, "accessor", salt);
				hash_member(wi, "wrapped_accessor", salt);
			}
		}
	}
	cJSON_AddItemToObject(e, "auth", auth);
	cJSON_AddItemToObject(e, "request", req);
	if (resp)
		cJSON_AddItemToObject(e, "response", resp);
	if (error && *error)
		cJSON_AddStringToObject(e, "error", error);
	char *json = cJSON_PrintUnformatted(e);
	secure_delete(e);
	size_t pl = d->prefix ? strlen(d->prefix) : 0, jl = strlen(json);
	char *line = malloc(pl + jl + 2);
	if (!line)
		abort();
	if (pl)
		memcpy(line, d->prefix, pl);
	memcpy(line + pl, json, jl);
	line[pl + jl] = '\n';
	line[pl + jl + 1] = '\0';
	cs_zero(json, jl);
	free(json);
	*len = pl + jl + 1;
	return line;
}

/* Write one entry to every device; true if at least one recorded it. */
static bool log_all(const char *type, const cJSON *tmpl, const cJSON *response, const char *error)
{
	bool any = false;
	for (size_t i = 0; i < n_devs; i++) {
		struct cs_audit_device *d = devs[i];
		if (!d->salt)
			continue;
		size_t len;
		char *line = cs_audit_format(d, type, tmpl, response, error, &len);
		if (d->ops->write(d, line, len) == 0)
			any = true;
		else
			cs_warn("audit: device %s failed to log the %s", d->path, type);
		cs_zero(line, len);
		free(line);
	}
	return any;
}

/* ------------------------------------------------------------------ in-flight records */

/* The request entry of a request in flight, kept in req->audit until its response. */
struct record {
	cJSON *tmpl; /* unhashed {"auth","request"} */
	char id[37];
};

static struct record *record_take(struct cs_request *req)
{
	struct record *r = req->audit;
	req->audit = NULL;
	return r;
}

static void record_free(struct record *r)
{
	if (!r)
		return;
	secure_delete(r->tmpl);
	free(r);
}

static void add_str(cJSON *o, const char *name, const char *v)
{
	if (v && *v)
		cJSON_AddStringToObject(o, name, v);
}

static cJSON *auth_block(const struct cs_request *req)
{
	cJSON *a = cJSON_CreateObject();
	const cJSON *e = req->token_entry;
	if (!e) {
		cJSON_AddStringToObject(a, "token_type", "default");
		return a;
	}
	add_str(a, "client_token", req->client_token);
	add_str(a, "accessor", opt_str(e, "accessor", NULL));
	add_str(a, "display_name", opt_str(e, "display_name", NULL));
	const cJSON *pol = cJSON_GetObjectItemCaseSensitive(e, "policies");
	if (cJSON_IsArray(pol)) {
		cJSON_AddItemToObject(a, "policies", cJSON_Duplicate(pol, true));
		cJSON_AddItemToObject(a, "token_policies", cJSON_Duplicate(pol, true));
	}
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(e, "meta");
	if (cJSON_IsObject(meta) && meta->child)
		cJSON_AddItemToObject(a, "metadata", cJSON_Duplicate(meta, true));
	const cJSON *uses = cJSON_GetObjectItemCaseSensitive(e, "num_uses");
	if (cJSON_IsNumber(uses) && uses->valuedouble > 0)
		cJSON_AddNumberToObject(a, "remaining_uses", uses->valuedouble);
	cJSON_AddStringToObject(a, "token_type", opt_str(e, "type", "service"));
	const cJSON *ttl = cJSON_GetObjectItemCaseSensitive(e, "creation_ttl");
	if (cJSON_IsNumber(ttl) && ttl->valuedouble > 0)
		cJSON_AddNumberToObject(a, "token_ttl", ttl->valuedouble);
	const cJSON *ct = cJSON_GetObjectItemCaseSensitive(e, "creation_time");
	if (cJSON_IsNumber(ct) && ct->valuedouble > 0) {
		char ts[48];
		/* RFC 3339 with seconds, as Vault prints token_issue_time. */
		cs_format_time((int64_t)ct->valuedouble * 1000000000LL, ts, sizeof ts);
		char *dot = strchr(ts, '.');
		if (dot)
			strcpy(dot, "Z");
		cJSON_AddStringToObject(a, "token_issue_time", ts);
	}
	return a;
}

/* "1.2.3.4:5678" / "[::1]:5678" → address and port. */
static void add_remote(cJSON *o, const char *ra)
{
	if (!ra || !*ra)
		return;
	const char *colon = strrchr(ra, ':');
	if (!colon)
		return;
	const char *start = ra, *end = colon;
	if (*start == '[' && end > start && end[-1] == ']')
		start++, end--;
	char addr[64];
	snprintf(addr, sizeof addr, "%.*s", (int)(end - start), start);
	cJSON_AddStringToObject(o, "remote_address", addr);
	int port = atoi(colon + 1);
	if (port > 0)
		cJSON_AddNumberToObject(o, "remote_port", port);
}

static cJSON *request_block(const struct cs_request *req, const char *id)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "id", id);
	cJSON_AddStringToObject(r, "operation", cs_op_name(req->op));
	if (req->mount) {
		add_str(r, "mount_point", req->mount->path);
		add_str(r, "mount_type", req->mount->type);
		add_str(r, "mount_accessor", req->mount->accessor);
		cJSON_AddStringToObject(r, "mount_class", req->mount->is_auth ? "auth" : "secret");
	}
	add_str(r, "client_token", req->client_token);
	if (req->token_entry)
		add_str(r, "client_token_accessor", opt_str(req->token_entry, "accessor", NULL));
	cJSON *ns = cJSON_AddObjectToObject(r, "namespace");
	cJSON_AddStringToObject(ns, "id", "root");
	cJSON_AddStringToObject(r, "path", req->path);
	if (cJSON_IsObject(req->data) && req->data->child)
		cJSON_AddItemToObject(r, "data", cJSON_Duplicate(req->data, true));
	if (req->http) {
		add_remote(r, req->http->remote_addr);
		const char *wrap = cs_http_header_get(req->http, "X-Vault-Wrap-TTL");
		int64_t secs;
		if (wrap && !cs_parse_duration(wrap, &secs) && secs > 0)
			cJSON_AddNumberToObject(r, "wrap_ttl", (double)secs);
	}
	return r;
}

static bool audited(const struct cs_request *req)
{
	const struct cs_core *core = req->core;
	if (!req->http || !core->active || !core->kr)
		return false;
	return !(req->route && (req->route->flags & CS_PATH_SEALED_OK));
}

int cs_audit_request(struct cs_request *req, int rc)
{
	record_free(record_take(req));
	if (!audited(req))
		return rc;
	int lrc = load_table(req->core);
	if (!lrc && n_devs == 0)
		return rc;
	struct record *r = calloc(1, sizeof *r);
	if (!r)
		abort();
	cs_uuid(r->id);
	r->tmpl = cJSON_CreateObject();
	cJSON_AddItemToObject(r->tmpl, "auth", auth_block(req));
	cJSON_AddItemToObject(r->tmpl, "request", request_block(req, r->id));
	const char *err = NULL;
	if (rc)
		err = req->errmsg ? req->errmsg : cs_strerror(rc);
	bool ok = !lrc && log_all("request", r->tmpl, NULL, err);
	if (!ok || rc) {
		/* Refused requests get no response entry (Vault); nor do unlogged ones. */
		record_free(r);
		if (rc)
			return rc;
		cs_error("audit: no device recorded the request for %s; refusing it", req->path);
		return cs_req_error(req, CS_EINTERNAL, "failed to audit request");
	}
	req->audit = r;
	return 0;
}

void cs_audit_discard(struct cs_request *req)
{
	record_free(record_take(req));
}

static void move_item(cJSON *from, const char *name, cJSON *to, const char *as)
{
	cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(from, name);
	if (v && !cJSON_IsNull(v))
		cJSON_AddItemToObject(to, as, v);
	else
		cJSON_Delete(v);
}

static char *errors_text(const cJSON *errs)
{
	struct cs_buf b = CS_BUF_INIT;
	const cJSON *e;
	cJSON_ArrayForEach(e, errs)
	{
		if (!cJSON_IsString(e))
			continue;
		if (b.len)
			cs_buf_puts(&b, "; ");
		cs_buf_puts(&b, e->valuestring);
	}
	return cs_buf_steal(&b, NULL);
}

/* The "response" block (unhashed) from the body about to be sent; *error set for an
 * error body (malloc'd, or NULL). */
static cJSON *response_block(const struct cs_request *req, int status, const char *body, size_t len,
			     char **error)
{
	cJSON *r = cJSON_CreateObject();
	*error = NULL;
	if (req->mount) {
		add_str(r, "mount_point", req->mount->path);
		add_str(r, "mount_type", req->mount->type);
		add_str(r, "mount_accessor", req->mount->accessor);
		cJSON_AddStringToObject(r, "mount_class", req->mount->is_auth ? "auth" : "secret");
	}
	cJSON *p = body && len ? cJSON_ParseWithLength(body, len) : NULL;
	if (!cJSON_IsObject(p)) {
		secure_delete(p);
		return r;
	}
	cJSON *errs = cJSON_GetObjectItemCaseSensitive(p, "errors");
	if (status >= 400 && cJSON_IsArray(errs))
		*error = errors_text(errs);
	else if (status >= 400)
		*error = strdup(cs_http_reason(status));
	if (cJSON_GetObjectItemCaseSensitive(p, "request_id")) {
		/* Vault's envelope. */
		const char *lease = opt_str(p, "lease_id", "");
		if (*lease) {
			cJSON *s = cJSON_AddObjectToObject(r, "secret");
			cJSON_AddStringToObject(s, "lease_id", lease);
		}
		move_item(p, "auth", r, "auth");
		move_item(p, "data", r, "data");
		move_item(p, "warnings", r, "warnings");
		move_item(p, "wrap_info", r, "wrap_info");
	} else if (!errs) {
		/* A non-envelope body (req->raw): the whole object is the data. */
		cJSON_AddItemToObject(r, "data", p);
		p = NULL;
	}
	secure_delete(p);
	return r;
}

void cs_audit_response(struct cs_request *req, int *status, char **body, size_t *len)
{
	struct record *r = record_take(req);
	if (!r)
		return;
	/* The envelope's request_id is the audit request id. */
	static const char rid[] = "{\"request_id\":\"";
	if (*body && *len > sizeof rid + 36 && memcmp(*body, rid, sizeof rid - 1) == 0 &&
	    (*body)[sizeof rid - 1 + 36] == '"')
		memcpy(*body + sizeof rid - 1, r->id, 36);
	int lrc = load_table(req->core);
	if (lrc || n_devs == 0) {
		/* Sealed meanwhile (sys/seal), or the last device was just disabled. */
		if (lrc)
			cs_warn("audit: no audit table for the response to %s (%s)", req->path,
				cs_strerror(lrc));
		record_free(r);
		return;
	}
	char *error = NULL;
	cJSON *resp = response_block(req, *status, *body, *len, &error);
	bool ok = log_all("response", r->tmpl, resp, error);
	secure_delete(resp);
	free(error);
	record_free(r);
	if (ok)
		return;
	cs_error("audit: no device recorded the response for %s; answering 500", req->path);
	if (*body) {
		cs_zero(*body, *len);
		free(*body);
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "errors"),
			     cJSON_CreateString("failed to audit response"));
	*body = cJSON_PrintUnformatted(o);
	*len = strlen(*body);
	*status = 500;
	cJSON_Delete(o);
}

/* ------------------------------------------------------------------ sys/ endpoints */

/* Normalise "file" / "/file/" → "file/"; NULL if invalid. */
static char *device_path(const char *in)
{
	if (!in)
		return NULL;
	while (*in == '/')
		in++;
	size_t n = strlen(in);
	while (n > 0 && in[n - 1] == '/')
		n--;
	if (n == 0 || n > 256 || memmem(in, n, "..", 2) || memmem(in, n, "//", 2))
		return NULL;
	char *p = malloc(n + 2);
	if (!p)
		abort();
	memcpy(p, in, n);
	p[n] = '/';
	p[n + 1] = '\0';
	return p;
}

static int ensure_loaded(struct cs_request *req)
{
	int rc = load_table(req->core);
	return rc ? cs_req_error(req, rc, "cannot load the audit table") : 0;
}

static cJSON *device_json(const struct cs_audit_device *d)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", d->type);
	cJSON_AddStringToObject(o, "description", d->description);
	cJSON_AddItemToObject(o, "options", cJSON_Duplicate(d->options, true));
	cJSON_AddBoolToObject(o, "local", d->local);
	cJSON_AddStringToObject(o, "path", d->path);
	return o;
}

static int audit_list(struct cs_request *req)
{
	int rc = ensure_loaded(req);
	if (rc)
		return rc;
	cJSON *data = cJSON_CreateObject();
	for (size_t i = 0; i < n_devs; i++)
		cJSON_AddItemToObject(data, devs[i]->path, device_json(devs[i]));
	cs_req_set_data(req, data);
	req->data_to_top = true;
	return 0;
}

static int audit_enable(struct cs_request *req)
{
	int rc = ensure_loaded(req);
	if (rc)
		return rc;
	char *path = device_path(cs_req_str(req, "path", NULL));
	if (!path)
		return cs_req_error(req, CS_EINVAL, "invalid path");
	for (size_t i = 0; i < n_devs; i++) {
		const char *q = devs[i]->path;
		if (strncmp(q, path, strlen(q)) == 0 || strncmp(path, q, strlen(path)) == 0) {
			free(path);
			return cs_req_error(req, CS_EINVAL, "path already in use");
		}
	}
	const char *type = cs_req_str(req, "type", "");
	if (!*type) {
		free(path);
		return cs_req_error(req, CS_EINVAL, "backend type must be specified");
	}
	cJSON *opts = cs_sys_string_options(cs_req_get(req, "options"));
	if (!opts)
		rc = cs_req_error(req, CS_EINVAL, "options must be a map of strings");
	if (rc) {
		free(path);
		return rc;
	}
	struct cs_audit_device *d = calloc(1, sizeof *d);
	if (!d)
		abort();
	d->path = path;
	d->description = strdup(cs_req_str(req, "description", ""));
	d->local = cs_req_bool(req, "local", false);
	d->options = opts;
	cs_uuid(d->uuid);
	uint8_t r[4];
	char hex[9];
	cs_random(r, sizeof r);
	cs_hex_encode(r, sizeof r, hex);
	char err[512] = "";
	limits_from_core(req->core);
	rc = cs_audit_device_init(d, type, NULL, true, err, sizeof err);
	if (rc) {
		cs_audit_device_free(d);
		return cs_req_error(req, rc, "%s", err);
	}
	snprintf(d->accessor, sizeof d->accessor, "%s_%s", d->type, hex);
	d->salt = cs_secmem_alloc(CS_AUDIT_SALT_LEN);
	cs_random(d->salt, CS_AUDIT_SALT_LEN);
	char key[128];
	salt_key(d, key, sizeof key);
	table_add(d);
	rc = cs_txn_put(&req->txn, key, d->salt, CS_AUDIT_SALT_LEN);
	if (!rc)
		rc = save_table(&req->txn);
	if (rc) {
		n_devs--;
		cs_audit_device_free(d);
		return cs_req_error(req, rc, "failed to persist the audit table");
	}
	cs_info("audit: enabled %s device at %s", d->type, d->path);
	return 0;
}

static int audit_disable(struct cs_request *req)
{
	int rc = ensure_loaded(req);
	if (rc)
		return rc;
	char *path = device_path(cs_req_str(req, "path", NULL));
	if (!path)
		return cs_req_error(req, CS_EINVAL, "invalid path");
	size_t i = 0;
	while (i < n_devs && strcmp(devs[i]->path, path) != 0)
		i++;
	free(path);
	if (i == n_devs)
		return 0; /* Vault: disabling a missing device succeeds */
	struct cs_audit_device *d = devs[i];
	memmove(&devs[i], &devs[i + 1], (n_devs - i - 1) * sizeof *devs);
	n_devs--;
	char key[128];
	salt_key(d, key, sizeof key);
	rc = cs_txn_delete(&req->txn, key);
	if (!rc)
		rc = save_table(&req->txn);
	if (rc) {
		table_add(d); /* the order changes; harmless */
		return cs_req_error(req, rc, "failed to persist the audit table");
	}
	cs_info("audit: disabled %s device at %s", d->type, d->path);
	cs_audit_device_free(d);
	return 0;
}

static int audit_hash(struct cs_request *req)
{
	int rc = ensure_loaded(req);
	if (rc)
		return rc;
	char *path = device_path(cs_req_str(req, "path", NULL));
	const struct cs_audit_device *d = path ? table_get(path) : NULL;
	free(path);
	if (!d)
		return cs_req_error(req, CS_EINVAL, "unknown audit backend");
	if (!d->salt)
		return cs_req_error(req, CS_EINTERNAL, "audit backend has no salt");
	const char *in = cs_req_str(req, "input", "");
	cJSON *data = cJSON_CreateObject();
	char *h = cs_audit_hmac(d->salt, CS_AUDIT_SALT_LEN, in);
	cJSON_AddStringToObject(data, "hash", h);
	free(h);
	cs_req_set_data(req, data);
	req->data_to_top = true;
	return 0;
}

static const struct cs_field enable_fields[] = {
    {.name = "path", .type = CS_FIELD_STRING, .desc = "device path"},
    {.name = "type", .type = CS_FIELD_STRING, .desc = "file or socket"},
    {.name = "description", .type = CS_FIELD_STRING},
    {.name = "options", .type = CS_FIELD_MAP, .desc = "device options"},
    {.name = "local", .type = CS_FIELD_BOOL},
    {.name = NULL},
};

static const struct cs_field hash_fields[] = {
    {.name = "path", .type = CS_FIELD_STRING, .desc = "device path"},
    {.name = "input", .type = CS_FIELD_STRING, .desc = "the string to hash"},
    {.name = NULL},
};

static const struct cs_path audit_paths[] = {
    {.pattern = "audit",
     .ops = {[CS_OP_READ] = audit_list},
     .flags = CS_PATH_SUDO,
     .synopsis = "list enabled audit devices"},
    {.pattern = "audit-hash/{path*}",
     .fields = hash_fields,
     .ops = {[CS_OP_UPDATE] = audit_hash},
     .synopsis = "hash a string with an audit device's salt"},
    {.pattern = "audit/{path*}",
     .fields = enable_fields,
     .ops = {[CS_OP_CREATE] = audit_enable,
	     [CS_OP_UPDATE] = audit_enable,
	     [CS_OP_DELETE] = audit_disable},
     .flags = CS_PATH_SUDO,
     .synopsis = "enable or disable an audit device"},
};

/* Not a mount: registered only so that cs_backend_reset_all closes the devices. */
static const struct cs_backend table_owner = {
    .type = "",
    .is_auth = false,
    .paths = NULL,
    .n_paths = 0,
    .reset = cs_audit_reset,
};

static const struct cs_core_audit broker = {
    .request = cs_audit_request,
    .response = cs_audit_response,
    .discard = cs_audit_discard,
};

void cs_audit_register(void)
{
	cs_core_set_audit(&broker);
	cs_sys_set_paths(CS_SYS_AUDIT, audit_paths, CS_ARRAY_LEN(audit_paths));
	cs_backend_register(&table_owner);
}
