/*
 * KV version 2 (see kv2.h for the storage layout). Semantics follow HashiCorp's
 * vault-plugin-secrets-kv: the larger of the key's and the mount's max_versions wins,
 * the smaller non-zero delete_version_after wins, a deleted or destroyed version reads
 * as 404 with the full envelope, and every v1-style path answers 404 with a warning.
 *
 * Handlers are synchronous and run on the loop thread inside the request's txn; none
 * keeps state between requests (the mount config is read from storage each time), so
 * the backend needs no reset hook. The pure helpers (cs_kv2_meta_*, CAS, merge patch,
 * subkeys) live in kv2_model.c.
 */
#include "engines/kv2.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engines/kvutil.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/util.h"

/* ------------------------------------------------------------------ storage */

static char *meta_key(const char *path)
{
	size_t n = strlen(path) + sizeof "metadata/";
	char *k = malloc(n);
	if (!k)
		abort();
	snprintf(k, n, "metadata/%s", path);
	return k;
}

static char *version_key(const char *path, uint64_t num)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (!EVP_Digest(path, strlen(path), md, &mdlen, EVP_sha256(), NULL))
		abort();
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	cs_hex_encode(md, mdlen, hex);
	size_t n = strlen(hex) + 48;
	char *k = malloc(n);
	if (!k)
		abort();
	snprintf(k, n, "versions/%s/%llu", hex, (unsigned long long)num);
	return k;
}

static int load_config(struct cs_request *req, struct cs_kv2_config *c)
{
	cJSON *j = NULL;
	int rc = cs_view_get_json(req, "config", &j);
	if (rc == CS_ENOTFOUND) {
		memset(c, 0, sizeof *c);
		return 0;
	}
	if (rc)
		return rc;
	cs_kv2_config_decode(j, c);
	cJSON_Delete(j);
	return 0;
}

/* 0 with *found; m is initialised in every case (free it). Reads the compact record and
 * the JSON one of earlier releases alike. */
static int load_meta(struct cs_request *req, const char *path, struct cs_kv2_meta *m, bool *found)
{
	cs_kv2_meta_init(m);
	*found = false;
	char *k = meta_key(path);
	struct cs_buf b = CS_BUF_INIT;
	int rc = cs_view_get(req, k, &b);
	free(k);
	if (rc == CS_ENOTFOUND)
		return 0;
	if (rc) {
		cs_buf_free_secure(&b);
		return rc;
	}
	rc = cs_kv2_meta_unpack(b.data, b.len, m);
	cs_buf_free_secure(&b); /* holds the current version's data */
	if (rc)
		return cs_req_error(req, rc, "malformed key metadata");
	*found = true;
	return 0;
}

/* load_meta for a key that must exist: CS_ENOTFOUND when it does not. On failure m is
 * freed (empty: freeing it again is harmless). */
static int load_existing_meta(struct cs_request *req, const char *path, struct cs_kv2_meta *m)
{
	bool found;
	int rc = load_meta(req, path, m, &found);
	if (!rc && !found)
		rc = CS_ENOTFOUND;
	if (rc)
		cs_kv2_meta_free(m);
	return rc;
}

/* The mount config, then the key metadata (as load_meta, which runs only when the config
 * loaded); m is initialised in every case (free it). */
static int load_config_meta(struct cs_request *req, const char *path, struct cs_kv2_config *c,
			    struct cs_kv2_meta *m, bool *found)
{
	int rc = load_config(req, c);
	if (!rc)
		return load_meta(req, path, m, found);
	cs_kv2_meta_init(m);
	*found = false;
	return rc;
}

static int save_meta(struct cs_request *req, const char *path, const struct cs_kv2_meta *m)
{
	char *k = meta_key(path);
	struct cs_buf b = CS_BUF_INIT;
	cs_kv2_meta_pack(m, &b);
	int rc = cs_view_put(req, k, b.data, b.len);
	cs_buf_free_secure(&b);
	free(k);
	return rc;
}

/* Drop the data of version num: inline in m (the caller saves m), or its own record. */
static int delete_version_data(struct cs_request *req, const char *path, struct cs_kv2_meta *m,
			       uint64_t num)
{
	if (m->inline_data && m->inline_num == num) {
		cs_zero(m->inline_data, m->inline_len);
		free(m->inline_data);
		m->inline_data = NULL;
		m->inline_len = 0;
		m->inline_num = 0;
		return 0;
	}
	char *k = version_key(path, num);
	int rc = cs_view_delete(req, k);
	free(k);
	return rc == CS_ENOTFOUND ? 0 : rc;
}

/* The inline version (if any) moves to its own record, as versions were stored before
 * compact records: the metadata record then carries only the newest version's data. */
static int spill_inline(struct cs_request *req, const char *path, struct cs_kv2_meta *m)
{
	if (!m->inline_data)
		return 0;
	char *k = version_key(path, m->inline_num);
	int rc = cs_view_put(req, k, m->inline_data, m->inline_len);
	free(k);
	if (!rc)
		rc = delete_version_data(req, path, m, m->inline_num);
	return rc;
}

/* Make `data` (JSON text, taken) the inline data of version num. */
static void set_inline(struct cs_kv2_meta *m, uint64_t num, char *data)
{
	m->inline_num = num;
	m->inline_data = data;
	m->inline_len = strlen(data);
}

/* ------------------------------------------------------------------ record conversion */

/* Where the conversion of JSON metadata records to compact ones stands: absent before the
 * first batch, {"after": <last metadata key converted>} between batches, {"done": true,
 * "converted": N} once every record of the mount is compact. */
#define CONVERT_KEY   "upgrade/compact-v1"
#define CONVERT_BATCH 256

/* One legacy record (metadata/<path>) to the compact form, the current version's data
 * moving inline; *did tells whether it was a legacy record. */
static int convert_one(struct cs_request *req, const char *meta_rel, bool *did)
{
	*did = false;
	const char *path = meta_rel + strlen("metadata/");
	struct cs_kv2_meta m;
	bool found;
	int rc = load_meta(req, path, &m, &found);
	if (rc || !found || !m.legacy) {
		cs_kv2_meta_free(&m);
		return rc;
	}
	struct cs_kv2_version *v = cs_kv2_meta_find(&m, m.current_version);
	if (v && !v->destroyed) {
		char *k = version_key(path, v->num);
		struct cs_buf b = CS_BUF_INIT;
		rc = cs_view_get(req, k, &b);
		if (rc == 0) {
			char *text = malloc(b.len + 1);
			if (!text)
				abort();
			memcpy(text, b.data, b.len);
			text[b.len] = '\0';
			set_inline(&m, v->num, text);
			rc = cs_view_delete(req, k);
		} else if (rc == CS_ENOTFOUND) {
			rc = 0; /* no data record: nothing to move */
		}
		cs_buf_free_secure(&b);
		free(k);
	}
	if (!rc)
		rc = save_meta(req, path, &m);
	cs_kv2_meta_free(&m);
	*did = rc == 0;
	return rc;
}

/* Periodic, on the active node: convert the next batch of records written by releases
 * before the compact format, resuming after the last key the previous batch did. */
static int kv2_periodic(struct cs_request *req)
{
	cJSON *st = NULL;
	int rc = cs_view_get_json(req, CONVERT_KEY, &st);
	if (rc && rc != CS_ENOTFOUND)
		return rc;
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "done"))) {
		cJSON_Delete(st);
		return 0;
	}
	const cJSON *after = cJSON_GetObjectItemCaseSensitive(st, "after");
	const cJSON *count = cJSON_GetObjectItemCaseSensitive(st, "converted");
	double converted = cJSON_IsNumber(count) ? count->valuedouble : 0;
	struct cs_strv keys = {0};
	rc = cs_view_scan_page(req, "metadata/", cJSON_IsString(after) ? after->valuestring : NULL,
			       CONVERT_BATCH, &keys);
	for (size_t i = 0; !rc && i < keys.n; i++) {
		bool did;
		rc = convert_one(req, keys.v[i], &did);
		converted += did;
	}
	if (!rc) {
		cJSON *next = cJSON_CreateObject();
		if (keys.n < CONVERT_BATCH)
			cJSON_AddTrueToObject(next, "done");
		else
			cJSON_AddStringToObject(next, "after", keys.v[keys.n - 1]);
		cJSON_AddNumberToObject(next, "converted", converted);
		rc = cs_view_put_json(req, CONVERT_KEY, next);
		cJSON_Delete(next);
	}
	cs_strv_free(&keys);
	cJSON_Delete(st);
	return rc;
}

/* ------------------------------------------------------------------ responses */

static void add_time(cJSON *o, const char *k, int64_t ns)
{
	char buf[48] = "";
	if (ns)
		cs_format_time(ns, buf, sizeof buf);
	cJSON_AddStringToObject(o, k, buf);
}

static void add_custom(cJSON *o, const struct cs_kv2_meta *m)
{
	if (m->custom)
		cJSON_AddItemToObject(o, "custom_metadata", cJSON_Duplicate(m->custom, true));
	else
		cJSON_AddNullToObject(o, "custom_metadata");
}

/* The per-version metadata block of data reads, writes and subkeys. */
static cJSON *version_json(const struct cs_kv2_meta *m, const struct cs_kv2_version *v)
{
	cJSON *o = cJSON_CreateObject();
	add_time(o, "created_time", v->created_ns);
	add_custom(o, m);
	add_time(o, "deletion_time", v->deletion_ns);
	cJSON_AddBoolToObject(o, "destroyed", v->destroyed);
	cJSON_AddNumberToObject(o, "version", (double)v->num);
	return o;
}

static void format_dva(int64_t secs, char *out, size_t n)
{
	if (secs < 0)
		snprintf(out, n, "%llds", (long long)secs);
	else
		cs_format_duration(secs, out, n);
}

/* 404 carrying the envelope (data set by the caller, or null, plus a warning). */
static int not_found_with_body(struct cs_request *req)
{
	req->body_on_error = true;
	return CS_ENOTFOUND;
}

static int invalid_path(struct cs_request *req)
{
	static const char *roots[] = {"metadata", "data", "delete", "undelete", "destroy"};
	const char *rel = req->rel ? req->rel : "";
	for (size_t i = 0; i < CS_ARRAY_LEN(roots); i++) {
		if (strcmp(rel, roots[i]) == 0) {
			cs_req_warn(req, "Non-listing operations on the root of a K/V v2 mount are "
					 "not supported.");
			return not_found_with_body(req);
		}
	}
	const char *sub = "get";
	switch (req->op) {
	case CS_OP_CREATE:
	case CS_OP_UPDATE:
		sub = "put";
		break;
	case CS_OP_PATCH:
		sub = "patch";
		break;
	case CS_OP_LIST:
		sub = "list";
		break;
	case CS_OP_DELETE:
		sub = "delete";
		break;
	default:
		break;
	}
	cs_req_warn(req,
		    "Invalid path for a versioned K/V secrets engine. See the API docs for the "
		    "appropriate API endpoints to use. If using the Vault CLI, use 'vault kv %s' "
		    "for this operation.",
		    sub);
	return not_found_with_body(req);
}

/* A usable secret path: non-empty and without a trailing '/'. */
static bool path_ok(const char *path)
{
	size_t n = strlen(path);
	return n > 0 && path[n - 1] != '/';
}

/* ------------------------------------------------------------------ existence */

static int meta_exists(struct cs_request *req, bool *exists)
{
	const char *path = cs_kvutil_path(req);
	*exists = false;
	if (!*path)
		return 0;
	char *k = meta_key(path);
	int rc = cs_kvutil_key_exists(req, k, exists);
	free(k);
	return rc;
}

/* ------------------------------------------------------------------ config */

/* delete_version_after: seconds or a Go duration; negative means "disabled". */
static int parse_dva(struct cs_request *req, const cJSON *v, int64_t *out)
{
	if (cJSON_IsNumber(v) && v->valuedouble == (double)(int64_t)v->valuedouble) {
		*out = (int64_t)v->valuedouble;
		return 0;
	}
	if (cJSON_IsString(v)) {
		const char *s = v->valuestring;
		bool neg = *s == '-';
		int64_t secs;
		if (cs_parse_duration(s + (neg ? 1 : 0), &secs) == 0) {
			*out = neg ? -secs : secs;
			return 0;
		}
	}
	return cs_req_error(req, CS_EINVAL,
			    "error converting input for field \"delete_version_after\"");
}

static int config_read(struct cs_request *req)
{
	struct cs_kv2_config c;
	int rc = load_config(req, &c);
	if (rc)
		return rc;
	char dva[40];
	format_dva(c.delete_version_after, dva, sizeof dva);
	cJSON *d = cJSON_CreateObject();
	cJSON_AddBoolToObject(d, "cas_required", c.cas_required);
	cJSON_AddStringToObject(d, "delete_version_after", dva);
	cJSON_AddNumberToObject(d, "max_versions", (double)c.max_versions);
	cs_req_set_data(req, d);
	return 0;
}

static int config_write(struct cs_request *req)
{
	const cJSON *mv = cs_req_get(req, "max_versions");
	const cJSON *cr = cs_req_get(req, "cas_required");
	const cJSON *dv = cs_req_get(req, "delete_version_after");
	if (!mv && !cr && !dv)
		return 0;
	struct cs_kv2_config c;
	int rc = load_config(req, &c);
	if (rc)
		return rc;
	if (mv) {
		if (mv->valuedouble < 0 || mv->valuedouble > UINT32_MAX)
			return cs_req_error(req, CS_EINVAL, "max_versions out of range");
		c.max_versions = (uint32_t)mv->valuedouble;
	}
	if (cr)
		c.cas_required = cJSON_IsTrue(cr);
	if (dv) {
		int64_t d;
		if ((rc = parse_dva(req, dv, &d)))
			return rc;
		c.delete_version_after = d < 0 ? CS_KV2_DVA_DISABLED : d;
	}
	cJSON *j = cs_kv2_config_encode(&c);
	rc = cs_view_put_json(req, "config", j);
	cJSON_Delete(j);
	return rc;
}

/* ------------------------------------------------------------------ data */

/* options.cas, weakly typed as Vault's mapstructure.WeakDecode does. */
static int get_cas(struct cs_request *req, bool *has, int64_t *cas)
{
	*has = false;
	const cJSON *o = cs_req_get(req, "options");
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "cas");
	if (!c)
		return 0;
	*has = true;
	if (cJSON_IsNumber(c)) {
		*cas = (int64_t)c->valuedouble;
		return 0;
	}
	if (cJSON_IsString(c)) {
		char *end;
		long long x = strtoll(c->valuestring, &end, 10);
		if (*c->valuestring && !*end) {
			*cas = x;
			return 0;
		}
	}
	if (cJSON_IsBool(c)) {
		*cas = cJSON_IsTrue(c) ? 1 : 0;
		return 0;
	}
	return cs_req_error(req, CS_EINVAL, "error parsing check-and-set parameter");
}

static int check_cas(struct cs_request *req, const struct cs_kv2_config *c,
		     const struct cs_kv2_meta *m)
{
	bool has;
	int64_t cas = 0;
	int rc = get_cas(req, &has, &cas);
	if (rc)
		return rc;
	const char *msg = NULL;
	rc = cs_kv2_cas_check(has, cas, m->current_version, c->cas_required || m->cas_required,
			      &msg);
	return rc ? cs_req_error(req, rc, "%s", msg) : 0;
}

/*
 * Store `data` as the next version of `path` and answer with its metadata. Shared by
 * write and patch; the caller has checked cas and owns m.
 */
static int store_version(struct cs_request *req, const char *path, struct cs_kv2_meta *m,
			 const struct cs_kv2_config *c, const cJSON *data)
{
	int64_t now = cs_now_ns(), del = 0;
	if (!cs_kv2_deletion_time(now, c->delete_version_after, m->delete_version_after, &del))
		del = 0;
	/* The new version's data lives in the metadata record (one record per secret); the
	 * one it replaces moves to a record of its own. */
	int rc = spill_inline(req, path, m);
	if (rc)
		return rc;
	char *text = cJSON_PrintUnformatted(data);
	if (!text)
		abort();
	set_inline(m, m->current_version + 1, text);
	uint64_t *pruned;
	size_t n_pruned;
	struct cs_kv2_version *v =
	    cs_kv2_add_version(m, now, del, c->max_versions, &pruned, &n_pruned);
	cJSON *resp = version_json(m, v);
	for (size_t i = 0; i < n_pruned && !rc; i++)
		rc = delete_version_data(req, path, m, pruned[i]);
	free(pruned);
	if (!rc)
		rc = save_meta(req, path, m);
	if (rc) {
		cJSON_Delete(resp);
		return rc;
	}
	cs_req_set_data(req, resp);
	return 0;
}

/* Read a version's data object: inline in m, or its own record. */
static int load_version(struct cs_request *req, const char *path, const struct cs_kv2_meta *m,
			uint64_t num, cJSON **out)
{
	if (m->inline_data && m->inline_num == num) {
		*out = cJSON_ParseWithLength(m->inline_data, m->inline_len);
		return *out ? 0 : cs_req_error(req, CS_EIO, "malformed version data");
	}
	char *k = version_key(path, num);
	int rc = cs_view_get_json(req, k, out);
	free(k);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINTERNAL, "could not find version data");
	return rc;
}

/*
 * Read the version of `path` the request names ("version", 0: current) and answer with
 * the envelope {slot: <data>, "metadata": <version_json>} ("metadata" first unless
 * slot_first, as Vault orders subkeys). A deleted or destroyed version answers 404 with
 * slot null. On success *data points at the slot's object, owned by the response.
 */
static int read_version(struct cs_request *req, const char *path, const char *slot, bool slot_first,
			cJSON **data)
{
	struct cs_kv2_meta m;
	int rc = load_existing_meta(req, path, &m);
	if (rc)
		return rc;
	int64_t want = cs_req_int(req, "version", 0);
	uint64_t num = want > 0 ? (uint64_t)want : m.current_version;
	struct cs_kv2_version *v = cs_kv2_meta_find(&m, num);
	if (!v) {
		cs_kv2_meta_free(&m);
		return CS_ENOTFOUND;
	}
	cJSON *d = cJSON_CreateObject();
	if (slot_first)
		cJSON_AddNullToObject(d, slot);
	cJSON_AddItemToObject(d, "metadata", version_json(&m, v));
	if (!slot_first)
		cJSON_AddNullToObject(d, slot);
	cs_req_set_data(req, d);
	if (cs_kv2_version_deleted(v, cs_now_ns()) || v->destroyed) {
		cs_kv2_meta_free(&m);
		return not_found_with_body(req);
	}
	*data = NULL;
	rc = load_version(req, path, &m, num, data);
	cs_kv2_meta_free(&m);
	if (rc) {
		cs_req_set_data(req, NULL);
		return rc;
	}
	cJSON_ReplaceItemInObjectCaseSensitive(d, slot, *data);
	return 0;
}

static int data_read(struct cs_request *req)
{
	const char *path = cs_kvutil_path(req);
	if (!path_ok(path))
		return invalid_path(req);
	cJSON *data;
	return read_version(req, path, "data", true, &data);
}

static int data_write(struct cs_request *req)
{
	const char *path = cs_kvutil_path(req);
	if (!*path)
		return cs_req_error(req, CS_EINVAL, "missing path");
	if (!path_ok(path))
		return invalid_path(req);
	const cJSON *data = cs_req_get(req, "data");
	if (!cJSON_IsObject(data))
		return cs_req_error(req, CS_EINVAL, "no data provided");
	struct cs_kv2_config c;
	struct cs_kv2_meta m;
	bool found;
	int rc = load_config_meta(req, path, &c, &m, &found);
	if (!rc)
		rc = check_cas(req, &c, &m);
	if (!rc)
		rc = store_version(req, path, &m, &c, data);
	cs_kv2_meta_free(&m);
	return rc;
}

static int data_patch(struct cs_request *req)
{
	const char *path = cs_kvutil_path(req);
	if (!path_ok(path))
		return invalid_path(req);
	const cJSON *patch = cs_req_get(req, "data");
	if (!cJSON_IsObject(patch))
		return cs_req_error(req, CS_EINVAL, "no data provided");
	struct cs_kv2_meta m;
	int rc = load_existing_meta(req, path, &m);
	if (rc)
		return rc;
	struct cs_kv2_config c;
	rc = load_config(req, &c);
	if (!rc)
		rc = check_cas(req, &c, &m);
	if (rc) {
		cs_kv2_meta_free(&m);
		return rc;
	}
	struct cs_kv2_version *v = cs_kv2_meta_find(&m, m.current_version);
	if (!v) {
		cs_kv2_meta_free(&m);
		return CS_ENOTFOUND;
	}
	if (cs_kv2_version_deleted(v, cs_now_ns()) || v->destroyed) {
		/* As Vault: the flat version metadata, not nested under "metadata". */
		cs_req_set_data(req, version_json(&m, v));
		cs_kv2_meta_free(&m);
		return not_found_with_body(req);
	}
	cJSON *cur = NULL;
	rc = load_version(req, path, &m, m.current_version, &cur);
	if (!rc) {
		cJSON *merged = cs_kv2_merge_patch(cur, patch);
		rc = store_version(req, path, &m, &c, merged);
		cJSON_Delete(merged);
	}
	cJSON_Delete(cur);
	cs_kv2_meta_free(&m);
	return rc;
}

static int data_delete(struct cs_request *req)
{
	const char *path = cs_kvutil_path(req);
	if (!path_ok(path))
		return invalid_path(req);
	struct cs_kv2_meta m;
	int rc = load_existing_meta(req, path, &m);
	if (rc)
		return rc == CS_ENOTFOUND ? 0 : rc; /* nothing to delete */
	int64_t now = cs_now_ns();
	struct cs_kv2_version *v = cs_kv2_meta_find(&m, m.current_version);
	if (v && !v->destroyed && !cs_kv2_version_deleted(v, now)) {
		v->deletion_ns = now;
		rc = save_meta(req, path, &m);
	}
	cs_kv2_meta_free(&m);
	return rc;
}

/* ------------------------------------------------------------------ delete/undelete/destroy */

enum versions_action { ACT_DELETE, ACT_UNDELETE, ACT_DESTROY };

static int versions_action(struct cs_request *req, enum versions_action act)
{
	const char *path = cs_kvutil_path(req);
	if (!path_ok(path))
		return invalid_path(req);
	uint64_t *nums = NULL;
	size_t n = 0;
	if (cs_kv2_parse_versions(cs_req_get(req, "versions"), &nums, &n))
		return cs_req_error(req, CS_EINVAL,
				    "error converting input for field \"versions\"");
	if (n == 0)
		return cs_req_error(req, CS_EINVAL,
				    act == ACT_DESTROY ? "no version number provided"
						       : "No version number provided");
	struct cs_kv2_config c;
	struct cs_kv2_meta m;
	bool found;
	int rc = load_config_meta(req, path, &c, &m, &found);
	if (rc || !found)
		goto out;
	int64_t now = cs_now_ns();
	for (size_t i = 0; i < n; i++) {
		struct cs_kv2_version *v = cs_kv2_meta_find(&m, nums[i]);
		if (!v || v->destroyed)
			continue;
		switch (act) {
		case ACT_DELETE:
			if (!cs_kv2_version_deleted(v, now))
				v->deletion_ns = now;
			break;
		case ACT_UNDELETE: {
			int64_t del = 0;
			v->deletion_ns = cs_kv2_deletion_time(now, c.delete_version_after,
							      m.delete_version_after, &del)
					     ? del
					     : 0;
			break;
		}
		case ACT_DESTROY:
			v->destroyed = true;
			rc = delete_version_data(req, path, &m, v->num);
			break;
		}
		if (rc)
			goto out;
	}
	rc = save_meta(req, path, &m);
out:
	free(nums);
	cs_kv2_meta_free(&m);
	return rc;
}

static int delete_write(struct cs_request *req)
{
	return versions_action(req, ACT_DELETE);
}

static int undelete_write(struct cs_request *req)
{
	return versions_action(req, ACT_UNDELETE);
}

static int destroy_write(struct cs_request *req)
{
	return versions_action(req, ACT_DESTROY);
}

/* ------------------------------------------------------------------ metadata */

static int metadata_read(struct cs_request *req)
{
	const char *path = cs_kvutil_path(req);
	if (!path_ok(path))
		return invalid_path(req);
	struct cs_kv2_meta m;
	int rc = load_existing_meta(req, path, &m);
	if (rc)
		return rc;
	char dva[40];
	format_dva(m.delete_version_after, dva, sizeof dva);
	cJSON *d = cJSON_CreateObject();
	cJSON_AddBoolToObject(d, "cas_required", m.cas_required);
	add_time(d, "created_time", m.created_ns);
	cJSON_AddNumberToObject(d, "current_version", (double)m.current_version);
	add_custom(d, &m);
	cJSON_AddStringToObject(d, "delete_version_after", dva);
	cJSON_AddNumberToObject(d, "max_versions", (double)m.max_versions);
	cJSON_AddNumberToObject(d, "oldest_version", (double)m.oldest_version);
	add_time(d, "updated_time", m.updated_ns);
	cJSON *vs = cJSON_AddObjectToObject(d, "versions");
	for (size_t i = 0; i < m.n; i++) {
		char num[24];
		snprintf(num, sizeof num, "%llu", (unsigned long long)m.v[i].num);
		cJSON *e = cJSON_AddObjectToObject(vs, num);
		add_time(e, "created_time", m.v[i].created_ns);
		add_time(e, "deletion_time", m.v[i].deletion_ns);
		cJSON_AddBoolToObject(e, "destroyed", m.v[i].destroyed);
	}
	cs_req_set_data(req, d);
	cs_kv2_meta_free(&m);
	return 0;
}

#define MAX_CUSTOM_KEYS       64
#define MAX_CUSTOM_KEY_LEN    128
#define MAX_CUSTOM_VALUE_LEN  512
#define CUSTOM_METADATA_ERROR "custom_metadata validation failed"

static bool printable(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

/*
 * custom_metadata from the request as a string map (numbers and bools stringified, as
 * Vault's weak decoding does). With keep_nulls (PATCH), null values stay: they remove
 * keys in the merge. Returns a new object or NULL with the error set.
 */
static cJSON *parse_custom(struct cs_request *req, const cJSON *raw, bool keep_nulls, int *rc)
{
	cJSON *out = cJSON_CreateObject();
	const cJSON *e;
	int count = 0;
	struct cs_buf errs = CS_BUF_INIT;
	cJSON_ArrayForEach(e, raw)
	{
		char buf[64];
		const char *s;
		if (cJSON_IsNull(e) && keep_nulls) {
			cJSON_AddNullToObject(out, e->string);
			continue;
		}
		if (cJSON_IsString(e)) {
			s = e->valuestring;
		} else if (cJSON_IsNumber(e)) {
			if (e->valuedouble == (double)(int64_t)e->valuedouble)
				snprintf(buf, sizeof buf, "%lld", (long long)e->valuedouble);
			else
				snprintf(buf, sizeof buf, "%g", e->valuedouble);
			s = buf;
		} else if (cJSON_IsBool(e)) {
			s = cJSON_IsTrue(e) ? "1" : "0";
		} else if (cJSON_IsNull(e)) {
			s = "";
		} else {
			cJSON_Delete(out);
			cs_buf_free(&errs);
			*rc =
			    cs_req_error(req, CS_EINVAL, "%s: value for key \"%s\" is not a string",
					 CUSTOM_METADATA_ERROR, e->string);
			return NULL;
		}
		count++;
		size_t kl = strlen(e->string), vl = strlen(s);
		if (kl == 0 || kl > MAX_CUSTOM_KEY_LEN)
			cs_buf_printf(&errs,
				      "%s%s: length of key \"%s\" is %zu but must be 0 < len(key) "
				      "<= %d",
				      errs.len ? "; " : "", CUSTOM_METADATA_ERROR, e->string, kl,
				      MAX_CUSTOM_KEY_LEN);
		if (vl == 0 || vl > MAX_CUSTOM_VALUE_LEN)
			cs_buf_printf(&errs,
				      "%s%s: length of value for key \"%s\" is %zu but must be 0 < "
				      "len(value) <= %d",
				      errs.len ? "; " : "", CUSTOM_METADATA_ERROR, e->string, vl,
				      MAX_CUSTOM_VALUE_LEN);
		if (!printable(e->string) || !printable(s))
			cs_buf_printf(&errs, "%s%s: key \"%s\" contains unprintable characters",
				      errs.len ? "; " : "", CUSTOM_METADATA_ERROR, e->string);
		cJSON_AddStringToObject(out, e->string, s);
	}
	if (count > MAX_CUSTOM_KEYS) {
		cs_buf_reset(&errs);
		cs_buf_printf(&errs, "%s: payload must contain at most %d keys, provided %d",
			      CUSTOM_METADATA_ERROR, MAX_CUSTOM_KEYS, count);
	}
	if (errs.len) {
		cJSON_Delete(out);
		*rc = cs_req_error(req, CS_EINVAL, "%s", errs.data);
		cs_buf_free(&errs);
		return NULL;
	}
	cs_buf_free(&errs);
	*rc = 0;
	return out;
}

/* Write (POST) or patch (PATCH) key metadata. */
static int metadata_update(struct cs_request *req, bool patch)
{
	const char *path = cs_kvutil_path(req);
	if (!*path)
		return cs_req_error(req, CS_EINVAL, "missing path");
	if (!path_ok(path))
		return invalid_path(req);
	const cJSON *mv = cs_req_get(req, "max_versions");
	const cJSON *cr = cs_req_get(req, "cas_required");
	const cJSON *dv = cs_req_get(req, "delete_version_after");
	const cJSON *cm = cs_req_get(req, "custom_metadata");
	if (!patch && !mv && !cr && !dv && !cm)
		return 0;
	int rc = 0;
	cJSON *custom = NULL;
	if (cm && !(custom = parse_custom(req, cm, patch, &rc)))
		return rc;
	int64_t dva = 0;
	if (dv && (rc = parse_dva(req, dv, &dva))) {
		cJSON_Delete(custom);
		return rc;
	}
	if (mv && (mv->valuedouble < 0 || mv->valuedouble > UINT32_MAX)) {
		cJSON_Delete(custom);
		return cs_req_error(req, CS_EINVAL, "max_versions out of range");
	}
	struct cs_kv2_config c;
	struct cs_kv2_meta m;
	bool found;
	rc = load_config_meta(req, path, &c, &m, &found);
	if (rc)
		goto out;
	if (!found) {
		if (patch) {
			rc = CS_ENOTFOUND;
			goto out;
		}
		m.created_ns = m.updated_ns = cs_now_ns();
	}
	if (cr && c.cas_required && !cJSON_IsTrue(cr))
		cs_req_warn(req,
			    "\"cas_required\" set to false, but is mandated by backend config. "
			    "This value will be ignored.");
	if (mv)
		m.max_versions = (uint32_t)mv->valuedouble;
	if (cr)
		m.cas_required = cJSON_IsTrue(cr);
	if (dv)
		m.delete_version_after = dva;
	if (custom) {
		cJSON *next =
		    patch ? cs_kv2_merge_patch(m.custom, custom) : cJSON_Duplicate(custom, true);
		cJSON_Delete(m.custom);
		m.custom = next;
	}
	rc = save_meta(req, path, &m);
out:
	cJSON_Delete(custom);
	cs_kv2_meta_free(&m);
	return rc;
}

static int metadata_write(struct cs_request *req)
{
	return metadata_update(req, false);
}

static int metadata_patch(struct cs_request *req)
{
	return metadata_update(req, true);
}

static int metadata_delete(struct cs_request *req)
{
	const char *path = cs_kvutil_path(req);
	if (!path_ok(path))
		return invalid_path(req);
	struct cs_kv2_meta m;
	int rc = load_existing_meta(req, path, &m);
	if (rc)
		return rc == CS_ENOTFOUND ? 0 : rc; /* nothing to delete */
	for (size_t i = 0; i < m.n && !rc; i++)
		rc = delete_version_data(req, path, &m, m.v[i].num);
	if (!rc) {
		char *k = meta_key(path);
		rc = cs_view_delete(req, k);
		free(k);
	}
	cs_kv2_meta_free(&m);
	return rc;
}

static int metadata_list(struct cs_request *req)
{
	const char *path = cs_kvutil_path(req);
	size_t n = strlen(path);
	struct cs_buf prefix = CS_BUF_INIT;
	cs_buf_printf(&prefix, "metadata/%s%s", path, n && path[n - 1] != '/' ? "/" : "");
	struct cs_strv keys = {0};
	bool exclude = cs_req_bool(req, "exclude_deleted", false);
	/* exclude_deleted drops names after the walk: page the filtered list instead (the
	 * core trims it), or a page could come back short. */
	int rc = exclude ? cs_view_list(req, prefix.data, &keys)
			 : cs_view_list_page(req, prefix.data, &keys);
	cJSON *d = cJSON_CreateObject();
	cJSON *a = cJSON_AddArrayToObject(d, "keys");
	for (size_t i = 0; !rc && i < keys.n; i++) {
		size_t kl = strlen(keys.v[i]);
		if (exclude && kl && keys.v[i][kl - 1] != '/') {
			struct cs_buf full = CS_BUF_INIT;
			cs_buf_printf(&full, "%s%s", prefix.data + strlen("metadata/"), keys.v[i]);
			struct cs_kv2_meta m;
			bool found;
			bool skip = false;
			if (load_meta(req, full.data, &m, &found) == 0 && found) {
				struct cs_kv2_version *v = cs_kv2_meta_find(&m, m.current_version);
				skip = v && v->deletion_ns != 0;
			}
			cs_kv2_meta_free(&m);
			cs_buf_free(&full);
			if (skip)
				continue;
		}
		cJSON_AddItemToArray(a, cJSON_CreateString(keys.v[i]));
	}
	cs_strv_free(&keys);
	cs_buf_free(&prefix);
	if (!rc && cJSON_GetArraySize(a) == 0)
		rc = CS_ENOTFOUND;
	if (rc) {
		cJSON_Delete(d);
		return rc;
	}
	cs_req_set_data(req, d);
	return 0;
}

/* ------------------------------------------------------------------ subkeys */

static int subkeys_read(struct cs_request *req)
{
	const char *path = cs_kvutil_path(req);
	if (!path_ok(path))
		return invalid_path(req);
	int64_t depth = cs_req_int(req, "depth", 0);
	if (depth < 0)
		return cs_req_error(req, CS_EINVAL, "depth must be a non-negative integer");
	cJSON *data;
	int rc = read_version(req, path, "subkeys", false, &data);
	if (rc)
		return rc;
	/* In place: the slot keeps pointing at the same object. */
	cs_kv2_subkeys(data, (int)(depth > 1000000 ? 0 : depth));
	return 0;
}

/* ------------------------------------------------------------------ table */

static int kv2_validate_mount(struct cs_request *req, const cJSON *options)
{
	(void)req;
	(void)options;
	return 0;
}

static const struct cs_field config_fields[] = {
    {.name = "max_versions", .type = CS_FIELD_INT, .desc = "versions kept per key (0: 10)"},
    {.name = "cas_required",
     .type = CS_FIELD_BOOL,
     .desc = "require the cas option on every write"},
    {.name = "delete_version_after",
     .type = CS_FIELD_ANY,
     .desc = "time after which a version is deleted"},
    {.name = NULL},
};

static const struct cs_field data_fields[] = {
    {.name = "data", .type = CS_FIELD_MAP, .desc = "the secret's key/value pairs"},
    {.name = "options", .type = CS_FIELD_MAP, .desc = "write options (cas)"},
    {.name = "version", .type = CS_FIELD_INT, .desc = "version to read (0: current)"},
    {.name = NULL},
};

static const struct cs_field versions_fields[] = {
    {.name = "versions", .type = CS_FIELD_ANY, .desc = "version numbers"},
    {.name = NULL},
};

static const struct cs_field metadata_fields[] = {
    {.name = "max_versions", .type = CS_FIELD_INT, .desc = "versions kept for this key"},
    {.name = "cas_required", .type = CS_FIELD_BOOL, .desc = "require the cas option for this key"},
    {.name = "delete_version_after",
     .type = CS_FIELD_ANY,
     .desc = "time after which a version is deleted"},
    {.name = "custom_metadata", .type = CS_FIELD_MAP, .desc = "user-provided string map"},
    {.name = "exclude_deleted",
     .type = CS_FIELD_BOOL,
     .desc = "LIST: skip keys whose current version is deleted"},
    {.name = NULL},
};

static const struct cs_field subkeys_fields[] = {
    {.name = "version", .type = CS_FIELD_INT, .desc = "version (0: current)"},
    {.name = "depth", .type = CS_FIELD_INT, .desc = "levels to return (0: all)"},
    {.name = NULL},
};

static const struct cs_path kv2_paths[] = {
    {.pattern = "config",
     .fields = config_fields,
     .ops = {[CS_OP_READ] = config_read, [CS_OP_UPDATE] = config_write},
     .synopsis = "configure the KV v2 engine"},
    {.pattern = "data/{path*}",
     .fields = data_fields,
     .ops = {[CS_OP_READ] = data_read,
	     [CS_OP_CREATE] = data_write,
	     [CS_OP_UPDATE] = data_write,
	     [CS_OP_PATCH] = data_patch,
	     [CS_OP_DELETE] = data_delete,
	     [CS_OP_LIST] = invalid_path},
     .exists = meta_exists,
     .synopsis = "write, patch, read and delete versioned data"},
    {.pattern = "delete/{path*}",
     .fields = versions_fields,
     .ops = {[CS_OP_UPDATE] = delete_write},
     .synopsis = "soft-delete versions"},
    {.pattern = "undelete/{path*}",
     .fields = versions_fields,
     .ops = {[CS_OP_UPDATE] = undelete_write},
     .synopsis = "undelete versions"},
    {.pattern = "destroy/{path*}",
     .fields = versions_fields,
     .ops = {[CS_OP_UPDATE] = destroy_write},
     .synopsis = "permanently remove versions"},
    {.pattern = "metadata/{path*}",
     .fields = metadata_fields,
     .ops = {[CS_OP_READ] = metadata_read,
	     [CS_OP_CREATE] = metadata_write,
	     [CS_OP_UPDATE] = metadata_write,
	     [CS_OP_PATCH] = metadata_patch,
	     [CS_OP_DELETE] = metadata_delete,
	     [CS_OP_LIST] = metadata_list},
     .exists = meta_exists,
     .synopsis = "key metadata and settings"},
    {.pattern = "subkeys/{path*}",
     .fields = subkeys_fields,
     .ops = {[CS_OP_READ] = subkeys_read},
     .synopsis = "the keys of a secret, without values"},
    {.pattern = "{path*}",
     .ops = {[CS_OP_READ] = invalid_path,
	     [CS_OP_UPDATE] = invalid_path,
	     [CS_OP_PATCH] = invalid_path,
	     [CS_OP_DELETE] = invalid_path,
	     [CS_OP_LIST] = invalid_path},
     .flags = CS_PATH_ANY_FIELDS,
     .synopsis = "invalid path for a versioned K/V secrets engine"},
};

const struct cs_backend cs_kv2_backend = {
    .type = "kv",
    .is_auth = false,
    .paths = kv2_paths,
    .n_paths = CS_ARRAY_LEN(kv2_paths),
    .validate_mount = kv2_validate_mount,
    .periodic = kv2_periodic,
};
