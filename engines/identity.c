/*
 * The identity secrets engine's HTTP side (see identity.h): entities, entity aliases,
 * groups, group aliases and lookups, with Vault's API and error texts. Records and
 * indexes are identity_store.c's; every handler reads and writes through the request's
 * transaction, so a refusal changes nothing.
 */
#include "engines/identity.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engines/identity_internal.h"
#include "engines/identity_oidc.h"
#include "lib/err.h"
#include "lib/util.h"

static int view(struct cs_request *req, struct cs_idv *v)
{
	if (cs_idv_open(v, req->core, &req->txn))
		return cs_req_error(req, CS_EINTERNAL, "identity store is not mounted");
	return 0;
}

/* A request string (body or capture), "" when absent. */
static const char *arg(struct cs_request *req, const char *name)
{
	const char *c = cs_req_capture(req, name);
	return c ? c : cs_req_str(req, name, "");
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Vault's strutil.RemoveDuplicates: trimmed, optionally lower-cased, sorted, unique, no
 * empty strings. */
static cJSON *unique(const cJSON *in, bool lower)
{
	struct cs_strv sv = {0};
	const cJSON *x;
	cJSON_ArrayForEach(x, in)
	{
		if (!cJSON_IsString(x))
			continue;
		const char *s = x->valuestring;
		while (isspace((unsigned char)*s))
			s++;
		size_t n = strlen(s);
		while (n && isspace((unsigned char)s[n - 1]))
			n--;
		if (!n)
			continue;
		cs_strv_push(&sv, s, n);
		if (lower)
			for (char *c = sv.v[sv.n - 1]; *c; c++)
				*c = (char)tolower((unsigned char)*c);
	}
	if (sv.n)
		qsort(sv.v, sv.n, sizeof *sv.v, cmp_str);
	cJSON *o = cJSON_CreateArray();
	for (size_t i = 0; i < sv.n; i++)
		if (i == 0 || strcmp(sv.v[i], sv.v[i - 1]) != 0)
			cJSON_AddItemToArray(o, cJSON_CreateString(sv.v[i]));
	cs_strv_free(&sv);
	return o;
}

/* A key-value map field (Vault's TypeKVPairs): an object of strings, or a list of
 * "k=v". 0 with *out (NULL when absent), or 400. */
static int kv_pairs(struct cs_request *req, const char *name, cJSON **out)
{
	*out = NULL;
	const cJSON *v = cs_req_get(req, name);
	if (!v || cJSON_IsNull(v))
		return 0;
	cJSON *o = cJSON_CreateObject();
	const cJSON *x;
	if (cJSON_IsObject(v)) {
		cJSON_ArrayForEach(x, v)
		{
			if (!cJSON_IsString(x)) {
				cJSON_Delete(o);
				return cs_req_error(req, CS_EINVAL,
						    "failed to parse %s: value for key \"%s\" is "
						    "not a string",
						    name, x->string);
			}
			cs_id_set(o, x->string, cJSON_CreateString(x->valuestring));
		}
	} else if (cJSON_IsArray(v) || cJSON_IsString(v)) {
		cJSON *one = NULL;
		if (cJSON_IsString(v)) {
			one = cJSON_CreateArray();
			if (*v->valuestring)
				cJSON_AddItemToArray(one, cJSON_CreateString(v->valuestring));
			v = one;
		}
		cJSON_ArrayForEach(x, v)
		{
			const char *eq = cJSON_IsString(x) ? strchr(x->valuestring, '=') : NULL;
			if (!eq) {
				cJSON_Delete(o);
				cJSON_Delete(one);
				return cs_req_error(req, CS_EINVAL,
						    "failed to parse %s: expected key=value pairs",
						    name);
			}
			char *k = strndup(x->valuestring, (size_t)(eq - x->valuestring));
			cs_id_set(o, k, cJSON_CreateString(eq + 1));
			free(k);
		}
		cJSON_Delete(one);
	} else {
		cJSON_Delete(o);
		return cs_req_error(req, CS_EINVAL, "failed to parse %s: expected a map", name);
	}
	*out = o;
	return 0;
}

/* Policies from the request (lower-cased, unique); "root" is refused (HCSEC-2024-21: a
 * token that may write identity could otherwise make itself root). */
static int policies_arg(struct cs_request *req, cJSON **out)
{
	*out = NULL;
	if (!cs_req_has(req, "policies"))
		return 0;
	cJSON *p = unique(cs_req_get(req, "policies"), true);
	if (cs_id_list_has(p, "root")) {
		cJSON_Delete(p);
		return cs_req_error(req, CS_EINVAL, "policies cannot contain root");
	}
	*out = p;
	return 0;
}

static void touch(cJSON *o)
{
	char now[64];
	cs_id_now(now);
	cs_id_set(o, "last_update_time", cJSON_CreateString(now));
}

static cJSON *dup_or_null(const cJSON *x)
{
	return x ? cJSON_Duplicate(x, true) : cJSON_CreateNull();
}

/* An alias as Vault shows it, with its mount's path and type when the mount exists. */
static cJSON *alias_json(struct cs_core *core, const cJSON *a, bool top)
{
	cJSON *o = cJSON_CreateObject();
	static const char *keys[] = {"id",
				     "canonical_id",
				     "mount_accessor",
				     "metadata",
				     "custom_metadata",
				     "name",
				     "merged_from_canonical_ids",
				     "creation_time",
				     "last_update_time",
				     "local"};
	for (size_t i = 0; i < CS_ARRAY_LEN(keys); i++)
		cJSON_AddItemToObject(o, keys[i],
				      dup_or_null(cJSON_GetObjectItemCaseSensitive(a, keys[i])));
	const char *path, *type;
	if (cs_backend_mount_by_accessor(core, cs_id_str(a, "mount_accessor"), &path, &type)) {
		cJSON_AddStringToObject(o, "mount_path", path);
		cJSON_AddStringToObject(o, "mount_type", type);
	}
	if (top)
		cJSON_AddStringToObject(o, "namespace_id", "root");
	return o;
}

static cJSON *ids_of(const cJSON *groups)
{
	cJSON *o = cJSON_CreateArray();
	const cJSON *g;
	cJSON_ArrayForEach(g, groups)
	    cJSON_AddItemToArray(o, cJSON_CreateString(cs_id_str(g, "id")));
	return o;
}

static int entity_json(struct cs_request *req, struct cs_idv *v, const cJSON *e, cJSON **out)
{
	cJSON *direct = NULL, *inherited = NULL;
	int rc = cs_id_entity_groups(v, cs_id_str(e, "id"), &direct, &inherited);
	if (rc)
		return rc;
	cJSON *d = cJSON_CreateObject();
	static const char *keys[] = {
	    "id",       "name",          "metadata",        "merged_entity_ids",
	    "disabled", "creation_time", "last_update_time"};
	for (size_t i = 0; i < CS_ARRAY_LEN(keys); i++)
		cJSON_AddItemToObject(d, keys[i],
				      dup_or_null(cJSON_GetObjectItemCaseSensitive(e, keys[i])));
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "policies");
	cJSON_AddItemToObject(d, "policies", p ? cJSON_Duplicate(p, true) : cJSON_CreateArray());
	cJSON_AddStringToObject(d, "namespace_id", "root");
	cJSON *al = cJSON_CreateArray();
	const cJSON *a;
	cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(e, "aliases"))
	    cJSON_AddItemToArray(al, alias_json(req->core, a, false));
	cJSON_AddItemToObject(d, "aliases", al);
	cJSON *di = ids_of(direct), *ii = ids_of(inherited);
	cJSON *all = cJSON_Duplicate(di, true);
	cJSON_ArrayForEach(a, ii) cJSON_AddItemToArray(all, cJSON_Duplicate(a, true));
	cJSON_AddItemToObject(d, "direct_group_ids", di);
	cJSON_AddItemToObject(d, "inherited_group_ids", ii);
	cJSON_AddItemToObject(d, "group_ids", all);
	cJSON_Delete(direct);
	cJSON_Delete(inherited);
	*out = d;
	return 0;
}

static int reply_entity(struct cs_request *req, struct cs_idv *v, int rc, cJSON *e)
{
	if (rc == CS_ENOTFOUND)
		return CS_ENOTFOUND; /* Vault: a nil response, 404 */
	cJSON *d = NULL;
	if (!rc)
		rc = entity_json(req, v, e, &d);
	cJSON_Delete(e);
	if (!rc)
		cs_req_set_data(req, d);
	return rc;
}

/* ------------------------------------------------------------------ entities */

/* Create or update an entity: `e` is the entity named by id (or NULL). Vault's
 * handleEntityUpdateCommon. */
static int entity_update(struct cs_request *req, struct cs_idv *v, cJSON *e, const char *name)
{
	cJSON *old = NULL, *pol = NULL, *meta = NULL;
	int rc = 0;
	if (*name) {
		cJSON *byname = NULL;
		rc = cs_id_entity_by_name(v, name, &byname);
		if (rc == CS_ENOTFOUND) {
			rc = 0;
		} else if (rc) {
			goto out;
		} else if (!e) {
			e = byname;
			byname = NULL;
		} else if (strcmp(cs_id_str(e, "id"), cs_id_str(byname, "id")) != 0) {
			cJSON_Delete(byname);
			rc = cs_req_error(req, CS_EINVAL, "entity name is already in use");
			goto out;
		}
		cJSON_Delete(byname);
	}
	if ((rc = policies_arg(req, &pol)) || (rc = kv_pairs(req, "metadata", &meta)))
		goto out;
	bool is_new = !e;
	if (is_new) {
		if ((rc = cs_id_entity_new(v, &e)))
			goto out;
	} else {
		old = cJSON_Duplicate(e, true);
		touch(e);
	}
	if (*name)
		cs_id_set(e, "name", cJSON_CreateString(name));
	if (pol) {
		cs_id_set(e, "policies", pol);
		pol = NULL;
	}
	if (cs_req_has(req, "disabled"))
		cs_id_set(e, "disabled", cJSON_CreateBool(cs_req_bool(req, "disabled", false)));
	if (meta) {
		cs_id_set(e, "metadata", meta);
		meta = NULL;
	}
	rc = cs_id_entity_put(v, e, old);
	if (!rc && is_new) {
		cJSON *d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "id", cs_id_str(e, "id"));
		cJSON_AddStringToObject(d, "name", cs_id_str(e, "name"));
		cJSON_AddNullToObject(d, "aliases");
		cs_req_set_data(req, d);
	}
out:
	cJSON_Delete(e);
	cJSON_Delete(old);
	cJSON_Delete(pol);
	cJSON_Delete(meta);
	return rc;
}

static int entity_write(struct cs_request *req)
{
	struct cs_idv v;
	int rc = view(req, &v);
	if (rc)
		return rc;
	const char *id = cs_req_str(req, "id", "");
	cJSON *e = NULL;
	if (*id) {
		rc = cs_id_entity_get(&v, id, &e);
		if (rc == CS_ENOTFOUND)
			return cs_req_error(req, CS_EINVAL, "entity not found from id");
		if (rc)
			return rc;
	}
	return entity_update(req, &v, e, cs_req_str(req, "name", ""));
}

static int entity_id_write(struct cs_request *req)
{
	struct cs_idv v;
	int rc = view(req, &v);
	if (rc)
		return rc;
	cJSON *e = NULL;
	rc = cs_id_entity_get(&v, arg(req, "id"), &e);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL, "entity not found from id");
	if (rc)
		return rc;
	return entity_update(req, &v, e, cs_req_str(req, "name", ""));
}

static int entity_name_write(struct cs_request *req)
{
	struct cs_idv v;
	int rc = view(req, &v);
	if (rc)
		return rc;
	const char *name = arg(req, "name");
	if (!*name)
		return cs_req_error(req, CS_EINVAL, "missing entity name");
	return entity_update(req, &v, NULL, name);
}

static int entity_id_read(struct cs_request *req)
{
	struct cs_idv v;
	int rc = view(req, &v);
	if (rc)
		return rc;
	cJSON *e = NULL;
	rc = cs_id_entity_get(&v, arg(req, "id"), &e);
	return reply_entity(req, &v, rc, e);
}

static int entity_name_read(struct cs_request *req)
{
	struct cs_idv v;
	int rc = view(req, &v);
	if (rc)
		return rc;
	cJSON *e = NULL;
	rc = cs_id_entity_by_name(&v, arg(req, "name"), &e);
	return reply_entity(req, &v, rc, e);
}

static int delete_entity(struct cs_idv *v, int rc, cJSON *e)
{
	if (!rc)
		rc = cs_id_entity_delete(v, e);
	cJSON_Delete(e);
	return rc == CS_ENOTFOUND ? 0 : rc;
}

static int entity_id_delete(struct cs_request *req)
{
	struct cs_idv v;
	int rc = view(req, &v);
	if (rc)
		return rc;
	cJSON *e = NULL;
	rc = cs_id_entity_get(&v, arg(req, "id"), &e);
	return delete_entity(&v, rc, e);
}

static int entity_name_delete(struct cs_request *req)
{
	struct cs_idv v;
	int rc = view(req, &v);
	if (rc)
		return rc;
	cJSON *e = NULL;
	rc = cs_id_entity_by_name(&v, arg(req, "name"), &e);
	return delete_entity(&v, rc, e);
}

static int entity_batch_delete(struct cs_request *req)
{
	struct cs_idv v;
	int rc = view(req, &v);
	if (rc)
		return rc;
	const cJSON *ids = cs_req_get(req, "entity_ids");
	if (!cJSON_GetArraySize(ids))
		return cs_req_error(req, CS_EINVAL, "missing entity ids to delete");
	const cJSON *x;
	cJSON_ArrayForEach(x, ids)
	{
		if (!cJSON_IsString(x))
			continue;
		cJSON *e = NULL;
		rc = cs_id_entity_get(&v, x->valuestring, &e);
		if ((rc = delete_entity(&v, rc, e)))
			return rc;
	}
	return 0;
}

/* LIST answer: keys (sorted), optional key_info; an empty list is Vault's 404. */
static int reply_keys(struct cs_request *req, cJSON *keys, cJSON *info)
{
	if (!cJSON_GetArraySize(keys)) {
		cJSON_Delete(keys);
		cJSON_Delete(info);
		return CS_ENOTFOUND;
	}
	cJSON *d = cJSON_CreateObject();
	cJSON_AddItemToObject(d, "keys", keys);
	if (info)
		cJSON_AddItemToObject(d, "key_info", info);
	cs_req_set_data(req, d);
	return 0;
}

/* Keys under `prefix` (names un-escaped); with `kind` ("entity"/"group") the key_info
 * carries each record's name. */
static int list_keys(struct cs_request *req, const char *prefix, const char *kind)
{
	struct cs_idv v;
	int rc = view(req, &v);
	if (rc)
		return rc;
	struct cs_strv sv = {0};
	if ((rc = cs_idv_list(&v, prefix, &sv))) {
		cs_strv_free(&sv);
		return rc;
	}
	cJSON *keys = cJSON_CreateArray(), *info = kind ? cJSON_CreateObject() : NULL;
	for (size_t i = 0; i < sv.n; i++) {
		size_t n = strlen(sv.v[i]);
		if (!n || sv.v[i][n - 1] == '/')
			continue;
		cs_id_unesc(sv.v[i]);
		cJSON_AddItemToArray(keys, cJSON_CreateString(sv.v[i]));
		if (!kind)
			continue;
		cJSON *r = NULL;
		int g = strcmp(kind, "entity") == 0 ? cs_id_entity_get(&v, sv.v[i], &r)
						    : cs_id_group_get(&v, sv.v[i], &r);
		if (g && g != CS_ENOTFOUND) {
			rc = g;
			break;
		}
		cJSON *ki = cJSON_CreateObject();
		cJSON_AddStringToObject(ki, "name", cs_id_str(r, "name"));
		if (r && strcmp(kind, "entity") == 0) {
			cJSON *al = cJSON_CreateArray();
			const cJSON *a;
			cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(r, "aliases"))
			{
				cJSON *o = cJSON_CreateObject();
				cJSON_AddStringToObject(o, "id", cs_id_str(a, "id"));
				cJSON_AddStringToObject(o, "name", cs_id_str(a, "name"));
				cJSON_AddStringToObject(o, "mount_accessor",
							cs_id_str(a, "mount_accessor"));
				cJSON_AddItemToArray(al, o);
			}
			cJSON_AddItemToObject(ki, "aliases", al);
		}
		cJSON_AddItemToObject(info, sv.v[i], ki);
		cJSON_Delete(r);
	}
	cs_strv_free(&sv);
	if (rc) {
		cJSON_Delete(keys);
		cJSON_Delete(info);
		return rc;
	}
	return reply_keys(req, keys, info);
}

static int entity_id_list(struct cs_request *req)
{
	return list_keys(req, "entity/", "entity");
}

static int entity_name_list(struct cs_request *req)
{
	return list_keys(req, "index/entity-name/", NULL);
}

/* entity/id/{id} and entity/name/{name*} also take LIST (the glob matches the bare
 * prefix too). */
static int entity_name_any_list(struct cs_request *req)
{
	return entity_name_list(req);
}

/* Vault's mergeEntity for a user request: no policy merge, aliases move (a clash on one
 * mount is refused unless conflicting_alias_ids_to_keep resolves it), the merged
 * entities leave their groups and are deleted. */
static int merge_clash_check(struct cs_request *req, struct cs_idv *v, const cJSON *to,
			     const cJSON *from_ids)
{
	cJSON *seen = cJSON_CreateObject(); /* accessor → from entity id */
	char *clashes = NULL;
	size_t clen = 0;
	FILE *cf = open_memstream(&clashes, &clen);
	int n_clash = 0, rc = 0;
	const cJSON *fid;
	cJSON_ArrayForEach(fid, from_ids)
	{
		cJSON *from = NULL;
		rc = cs_id_entity_get(v, fid->valuestring, &from);
		if (rc)
			break;
		const cJSON *ta, *fa;
		cJSON_ArrayForEach(ta, cJSON_GetObjectItemCaseSensitive(to, "aliases"))
		{
			cJSON_ArrayForEach(fa, cJSON_GetObjectItemCaseSensitive(from, "aliases"))
			{
				const char *acc = cs_id_str(fa, "mount_accessor");
				const char *other = cs_id_str(seen, acc);
				if (*other && strcmp(other, fid->valuestring) != 0) {
					cJSON_Delete(from);
					rc = cs_req_error(req, CS_EINVAL,
							  "mount accessor %s found in multiple "
							  "fromEntities, merge should be done with "
							  "one fromEntity at a time",
							  acc);
					goto out;
				}
				cs_id_set(seen, acc, cJSON_CreateString(fid->valuestring));
				if (strcmp(cs_id_str(ta, "mount_accessor"), acc) == 0) {
					fprintf(cf,
						"\n\t* mountAccessor: %s, toEntity ID: %s, "
						"fromEntity ID: %s, conflicting toEntity alias ID: "
						"%s, conflicting fromEntity alias ID: %s",
						acc, cs_id_str(to, "id"), fid->valuestring,
						cs_id_str(ta, "id"), cs_id_str(fa, "id"));
					n_clash++;
				}
			}
		}
		cJSON_Delete(from);
	}
out:
	fclose(cf);
	if (!rc && n_clash)
		rc = cs_req_error(req, CS_EINVAL,
				  "%d errors occurred:\n\t* toEntity and at least one fromEntity "
				  "have aliases with the same mount accessor, repeat the merge "
				  "request specifying exactly one fromEntity, clashes: %s\n\n",
				  n_clash + 1, clashes);
	free(clashes);
	cJSON_Delete(seen);
	return rc == CS_ENOTFOUND
		   ? cs_req_error(req, CS_EINVAL, "entity id to merge from is invalid")
		   : rc;
}

/* Take alias `id` out of the entity record `e` (and its indexes, through the put that
 * follows). */
static void drop_alias(cJSON *e, const char *id)
{
	cJSON *arr = cJSON_GetObjectItemCaseSensitive(e, "aliases");
	cJSON *a = arr ? arr->child : NULL;
	while (a) {
		cJSON *nx = a->next;
		if (strcmp(cs_id_str(a, "id"), id) == 0)
			cJSON_Delete(cJSON_DetachItemViaPointer(arr, a));
		a = nx;
	}
}

static void append_str(cJSON *o, const char *name, const char *s)
{
	cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, name);
	if (!cJSON_IsArray(arr)) {
		arr = cJSON_CreateArray();
		cs_id_set(o, name, arr);
	}
	cJSON_AddItemToArray(arr, cJSON_CreateString(s));
}

/* Move every alias of `from` into `to`, resolving a clash on a mount with `keep`. */
static int merge_one(struct cs_request *req, struct cs_idv *v, cJSON *to, cJSON *from,
		     const cJSON *keep)
{
	const char *fid = cs_id_str(from, "id");
	cJSON *dropped = cJSON_CreateArray(); /* from aliases that lose a clash: they go */
	cJSON *fa;
	cJSON_ArrayForEach(fa, cJSON_GetObjectItemCaseSensitive(from, "aliases"))
	{
		const char *acc = cs_id_str(fa, "mount_accessor");
		bool skip = false;
		cJSON *ta = cJSON_GetObjectItemCaseSensitive(to, "aliases");
		cJSON *t = ta ? ta->child : NULL;
		while (t && !skip) {
			cJSON *nx = t->next;
			if (strcmp(cs_id_str(t, "mount_accessor"), acc) == 0) {
				if (cs_id_list_has(keep, cs_id_str(t, "id"))) {
					skip = true; /* the from alias goes */
				} else if (cs_id_list_has(keep, cs_id_str(fa, "id"))) {
					cJSON_Delete(cJSON_DetachItemViaPointer(ta, t));
				} else {
					cJSON_Delete(dropped);
					return cs_req_error(req, CS_EINVAL,
							    "conflicting mount accessors in "
							    "following alias IDs and "
							    "neither were present in "
							    "conflicting_alias_ids_to_keep: "
							    "%s, %s",
							    cs_id_str(fa, "id"),
							    cs_id_str(t, "id"));
				}
			}
			t = nx;
		}
		if (skip) {
			cJSON_AddItemToArray(dropped, cJSON_Duplicate(fa, true));
			continue;
		}
		cJSON *moved = cJSON_Duplicate(fa, true);
		cs_id_set(moved, "canonical_id", cJSON_CreateString(cs_id_str(to, "id")));
		append_str(moved, "merged_from_canonical_ids", fid);
		cJSON_AddItemToArray(ta, moved);
	}
	const cJSON *m;
	cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(from, "merged_entity_ids"))
	{
		if (cJSON_IsString(m))
			append_str(to, "merged_entity_ids", m->valuestring);
	}
	append_str(to, "merged_entity_ids", fid);
	/* The moved aliases are the to entity's now: only the dropped ones stay in the record
	 * deleted here, so that their indexes go and the moved ones' are left to the to
	 * entity's put. */
	cJSON *none = cJSON_Duplicate(from, true);
	cs_id_set(none, "aliases", dropped);
	int rc = cs_id_entity_delete(v, none);
	cJSON_Delete(none);
	return rc;
}

static int entity_merge(struct cs_request *req)
{
	struct cs_idv v;
	int rc = view(req, &v);
	if (rc)
		return rc;
	const char *to_id = cs_req_str(req, "to_entity_id", "");
	if (!*to_id)
		return cs_req_error(req, CS_EINVAL, "missing entity id to merge to");
	cJSON *from_ids = unique(cs_req_get(req, "from_entity_ids"), false);
	const cJSON *keep = cs_req_get(req, "conflicting_alias_ids_to_keep");
	cJSON *to = NULL, *old = NULL;
	if (!cJSON_GetArraySize(from_ids)) {
		rc = cs_req_error(req, CS_EINVAL, "missing entity ids to merge from");
		goto out;
	}
	rc = cs_id_entity_get(&v, to_id, &to);
	if (rc == CS_ENOTFOUND)
		rc = cs_req_error(req, CS_EINVAL, "entity id to merge to is invalid");
	if (rc)
		goto out;
	if (cJSON_GetArraySize(from_ids) > 1 && cJSON_GetArraySize(keep) > 1) {
		rc = cs_req_error(req, CS_EINVAL,
				  "aliases conflicts cannot be resolved with multiple from entity "
				  "ids - merge one entity at a time");
		goto out;
	}
	const cJSON *fid;
	cJSON_ArrayForEach(fid, from_ids)
	{
		if (strcmp(fid->valuestring, to_id) == 0) {
			rc = cs_req_error(req, CS_EINVAL,
					  "to_entity_id should not be present in from_entity_ids");
			goto out;
		}
	}
	if (!cJSON_GetArraySize(keep) && (rc = merge_clash_check(req, &v, to, from_ids)))
		goto out;
	old = cJSON_Duplicate(to, true);
	cJSON_ArrayForEach(fid, from_ids)
	{
		cJSON *from = NULL;
		rc = cs_id_entity_get(&v, fid->valuestring, &from);
		if (rc == CS_ENOTFOUND)
			rc = cs_req_error(req, CS_EINVAL, "entity id to merge from is invalid");
		if (!rc)
			rc = merge_one(req, &v, to, from, keep);
		cJSON_Delete(from);
		if (rc)
			goto out;
	}
	touch(to);
	rc = cs_id_entity_put(&v, to, old);
out:
	cJSON_Delete(from_ids);
	cJSON_Delete(to);
	cJSON_Delete(old);
	return rc;
}

/* ------------------------------------------------------------------ entity aliases */

static int alias_reply(struct cs_request *req, const cJSON *a, const char *owner)
{
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "id", cs_id_str(a, "id"));
	cJSON_AddStringToObject(d, "canonical_id", owner);
	cs_req_set_data(req, d);
	return 0;
}

static bool has_alias_on(const cJSON *e, const char *accessor, const char *except_id)
{
	const cJSON *a;
	cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(e, "aliases"))
	{
		if (strcmp(cs_id_str(a, "mount_accessor"), accessor) == 0 &&
		    (!except_id || strcmp(cs_id_str(a, "id"), except_id) != 0))
			return true;
	}
	return false;
}

/* Find alias `id` in entity `e`. */
static cJSON *alias_of(cJSON *e, const char *id)
{
	cJSON *a;
	cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(e, "aliases"))
	{
		if (strcmp(cs_id_str(a, "id"), id) == 0)
			return a;
	}
	return NULL;
}

/* Vault's handleAliasUpdate: `cur` is the entity holding alias `alias_id`. */
static int alias_update(struct cs_request *req, struct cs_idv *v, cJSON *cur, const char *alias_id,
			const char *canonical, const char *name, const char *accessor,
			const cJSON *custom)
{
	cJSON *a = alias_of(cur, alias_id);
	const cJSON *had = cJSON_GetObjectItemCaseSensitive(a, "custom_metadata");
	bool same_meta = custom
			     ? (cJSON_GetArraySize(custom) == cJSON_GetArraySize(had) &&
				(!cJSON_GetArraySize(custom) || cJSON_Compare(custom, had, true)))
			     : true;
	if (strcmp(name, cs_id_str(a, "name")) == 0 &&
	    strcmp(accessor, cs_id_str(a, "mount_accessor")) == 0 &&
	    (!*canonical || strcmp(canonical, cs_id_str(a, "canonical_id")) == 0) && same_meta)
		return 0;
	bool moving = *canonical && strcmp(canonical, cs_id_str(cur, "id")) != 0;
	if (strcmp(accessor, cs_id_str(a, "mount_accessor")) != 0 && !moving &&
	    has_alias_on(cur, accessor, alias_id))
		return cs_req_error(req, CS_EINVAL,
				    "Alias cannot be updated as the entity already has an alias "
				    "for the given 'mount_accessor' ");
	if (!cs_backend_mount_by_accessor(req->core, accessor, NULL, NULL))
		return cs_req_error(req, CS_EINVAL, "invalid mount accessor \"%s\"", accessor);
	cJSON *other = NULL;
	int rc = cs_id_entity_by_alias(v, accessor, name, &other);
	if (!rc) {
		const cJSON *oa = NULL, *x;
		cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(other, "aliases"))
		{
			if (strcmp(cs_id_str(x, "mount_accessor"), accessor) == 0 &&
			    strcmp(cs_id_str(x, "name"), name) == 0)
				oa = x;
		}
		bool clash = oa && strcmp(cs_id_str(oa, "id"), alias_id) != 0;
		cJSON_Delete(other);
		if (clash)
			return cs_req_error(req, CS_EINVAL,
					    "alias with combination of mount accessor and name "
					    "already exists");
	} else if (rc != CS_ENOTFOUND) {
		return rc;
	}
	cJSON *old = cJSON_Duplicate(cur, true);
	cJSON *na = cJSON_Duplicate(a, true);
	cs_id_set(na, "name", cJSON_CreateString(name));
	cs_id_set(na, "mount_accessor", cJSON_CreateString(accessor));
	if (custom)
		cs_id_set(na, "custom_metadata", cJSON_Duplicate(custom, true));
	touch(na);
	const char *owner = cs_id_str(cur, "id");
	cJSON *dest = NULL, *dest_old = NULL;
	if (moving) {
		rc = cs_id_entity_get(v, canonical, &dest);
		if (rc == CS_ENOTFOUND)
			rc = cs_req_error(req, CS_EINVAL,
					  "given 'canonical_id' is not associated with an entity");
		else if (!rc && has_alias_on(dest, accessor, NULL))
			rc = cs_req_error(req, CS_EINVAL,
					  "Alias cannot be updated as the given entity already has "
					  "an alias for this mount ");
		if (!rc) {
			dest_old = cJSON_Duplicate(dest, true);
			cs_id_set(na, "canonical_id", cJSON_CreateString(canonical));
			drop_alias(cur, alias_id);
			/* The source's put first drops the alias's indexes; the destination's
			 * then writes them again, pointing at it. */
			rc = cs_id_entity_put(v, cur, old);
			cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(dest, "aliases"), na);
			na = NULL;
			if (!rc)
				rc = cs_id_entity_put(v, dest, dest_old);
			owner = canonical;
		}
	} else {
		cJSON_ReplaceItemViaPointer(cJSON_GetObjectItemCaseSensitive(cur, "aliases"), a,
					    na);
		na = NULL;
		rc = cs_id_entity_put(v, cur, old);
	}
	if (!rc) {
		cJSON *d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "id", alias_id);
		cJSON_AddStringToObject(d, "canonical_id", owner);
		cs_req_set_data(req, d);
	}
	cJSON_Delete(na);
	cJSON_Delete(old);
	cJSON_Delete(dest);
	cJSON_Delete(dest_old);
	return rc;
}

static int alias_write_common(struct cs_request *req, const char *id)
{
	struct cs_idv v;
	int rc = view(req, &v);
	if (rc)
		return rc;
	const char *name = cs_req_str(req, "name", "");
	const char *accessor = cs_req_str(req, "mount_accessor", "");
	const char *canonical = cs_req_str(req, "canonical_id", "");
	if (!*canonical)
		canonical = cs_req_str(req, "entity_id", "");
	cJSON *custom = NULL, *e = NULL;
	if ((rc = kv_pairs(req, "custom_metadata", &custom)))
		return rc;
	if (*id) {
		rc = cs_id_entity_by_alias_id(&v, id, &e);
		if (rc == CS_ENOTFOUND) {
			rc = cs_req_error(req, CS_EINVAL, "invalid alias ID provided");
			goto out;
		}
		if (rc)
			goto out;
		const cJSON *a = alias_of(e, id);
		if (!*accessor && !*name && !*canonical && !custom)
			goto out; /* nothing to change: 204 */
		if (!*accessor)
			accessor = cs_id_str(a, "mount_accessor");
		if (!*name)
			name = cs_id_str(a, "name");
		if (!custom) {
			const cJSON *c = cJSON_GetObjectItemCaseSensitive(a, "custom_metadata");
			custom = cJSON_IsObject(c) ? cJSON_Duplicate(c, true) : NULL;
		}
		char *nm = strdup(name), *ac = strdup(accessor);
		rc = alias_update(req, &v, e, id, canonical, nm, ac, custom);
		free(nm);
		free(ac);
		goto out;
	}
	if (!*accessor || !*name) {
		rc = cs_req_error(req, CS_EINVAL,
				  "'id' or 'mount_accessor' and 'name' must be provided");
		goto out;
	}
	if (!cs_backend_mount_by_accessor(req->core, accessor, NULL, NULL)) {
		rc = cs_req_error(req, CS_EINVAL, "invalid mount accessor \"%s\"", accessor);
		goto out;
	}
	rc = cs_id_entity_by_alias(&v, accessor, name, &e);
	if (!rc) {
		const cJSON *a, *found = NULL;
		cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(e, "aliases"))
		{
			if (strcmp(cs_id_str(a, "mount_accessor"), accessor) == 0 &&
			    strcmp(cs_id_str(a, "name"), name) == 0)
				found = a;
		}
		char *aid = strdup(found ? cs_id_str(found, "id") : "");
		rc = alias_update(req, &v, e, aid, canonical, name, accessor, custom);
		free(aid);
		goto out;
	}
	if (rc != CS_ENOTFOUND)
		goto out;
	/* A new alias, on the given entity or on a new one. */
	cJSON *old = NULL;
	if (*canonical) {
		rc = cs_id_entity_get(&v, canonical, &e);
		if (rc == CS_ENOTFOUND)
			rc = cs_req_error(req, CS_EINVAL, "invalid canonical ID");
		if (rc)
			goto out;
		old = cJSON_Duplicate(e, true);
	} else if ((rc = cs_id_entity_new(&v, &e))) {
		goto out;
	}
	if (has_alias_on(e, accessor, NULL)) {
		cJSON_Delete(old);
		rc = cs_req_error(req, CS_EINVAL,
				  "Alias already exists for requested entity and mount accessor");
		goto out;
	}
	cJSON *na = cs_id_alias_new(cs_id_str(e, "id"), accessor, name);
	if (custom)
		cs_id_set(na, "custom_metadata", cJSON_Duplicate(custom, true));
	cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(e, "aliases"), na);
	rc = cs_id_entity_put(&v, e, old);
	cJSON_Delete(old);
	if (!rc)
		alias_reply(req, na, cs_id_str(e, "id"));
out:
	cJSON_Delete(custom);
	cJSON_Delete(e);
	return rc;
}

static int alias_write(struct cs_request *req)
{
	return alias_write_common(req, cs_req_str(req, "id", ""));
}

static int alias_id_write(struct cs_request *req)
{
	return alias_write_common(req, arg(req, "id"));
}

static int alias_id_read(struct cs_request *req)
{
	struct cs_idv v;
	int rc = view(req, &v);
	if (rc)
		return rc;
	cJSON *e = NULL;
	const char *id = arg(req, "id");
	rc = cs_id_entity_by_alias_id(&v, id, &e);
	const cJSON *a = rc ? NULL : alias_of(e, id);
	if (!rc && a)
		cs_req_set_data(req, alias_json(req->core, a, true));
	cJSON_Delete(e);
	if (!rc && !a)
		rc = CS_ENOTFOUND;
	return rc;
}

static int alias_id_delete(struct cs_request *req)
{
	struct cs_idv v;
	int rc = view(req, &v);
	if (rc)
		return rc;
	cJSON *e = NULL;
	const char *id = arg(req, "id");
	rc = cs_id_entity_by_alias_id(&v, id, &e);
	if (rc == CS_ENOTFOUND)
		return 0;
	if (!rc) {
		cJSON *old = cJSON_Duplicate(e, true);
		drop_alias(e, id);
		rc = cs_id_entity_put(&v, e, old);
		cJSON_Delete(old);
	}
	cJSON_Delete(e);
	return rc;
}

/* LIST of aliases (entity or group: `kind`), with Vault's key_info. */
static int alias_list_kind(struct cs_request *req, bool group)
{
	struct cs_idv v;
	int rc = view(req, &v);
	if (rc)
		return rc;
	struct cs_strv sv = {0};
	rc = cs_idv_list(&v, group ? "index/group-alias-id/" : "index/alias-id/", &sv);
	cJSON *keys = cJSON_CreateArray(), *info = cJSON_CreateObject();
	for (size_t i = 0; !rc && i < sv.n; i++) {
		cJSON *owner = NULL;
		int g = group ? cs_id_group_by_alias_id(&v, sv.v[i], &owner)
			      : cs_id_entity_by_alias_id(&v, sv.v[i], &owner);
		if (g == CS_ENOTFOUND)
			continue;
		if (g) {
			rc = g;
			break;
		}
		const cJSON *a = NULL;
		if (group)
			a = cJSON_GetObjectItemCaseSensitive(owner, "alias");
		else
			a = alias_of(owner, sv.v[i]);
		if (a) {
			cJSON_AddItemToArray(keys, cJSON_CreateString(sv.v[i]));
			cJSON *ki = alias_json(req->core, a, false);
			cJSON_AddItemToObject(info, sv.v[i], ki);
		}
		cJSON_Delete(owner);
	}
	cs_strv_free(&sv);
	if (rc) {
		cJSON_Delete(keys);
		cJSON_Delete(info);
		return rc;
	}
	return reply_keys(req, keys, info);
}

static int alias_list(struct cs_request *req)
{
	return alias_list_kind(req, false);
}

/* ------------------------------------------------------------------ groups */

static int group_json(struct cs_request *req, struct cs_idv *v, const cJSON *g)
{
	cJSON *d = cJSON_CreateObject();
	static const char *keys[] = {"id",
				     "name",
				     "policies",
				     "member_entity_ids",
				     "parent_group_ids",
				     "metadata",
				     "creation_time",
				     "last_update_time",
				     "modify_index",
				     "type"};
	for (size_t i = 0; i < CS_ARRAY_LEN(keys); i++)
		cJSON_AddItemToObject(d, keys[i],
				      dup_or_null(cJSON_GetObjectItemCaseSensitive(g, keys[i])));
	cJSON_AddStringToObject(d, "namespace_id", "root");
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(g, "alias");
	if (cJSON_IsObject(a) && *cs_id_str(a, "id")) {
		cJSON *aj = alias_json(req->core, a, false);
		cJSON_DeleteItemFromObjectCaseSensitive(aj, "custom_metadata");
		cJSON_DeleteItemFromObjectCaseSensitive(aj, "local");
		cJSON_AddItemToObject(d, "alias", aj);
	} else {
		cJSON_AddItemToObject(d, "alias", cJSON_CreateObject());
	}
	struct cs_strv kids = {0};
	int rc = cs_id_group_children(v, cs_id_str(g, "id"), &kids);
	if (rc) {
		cs_strv_free(&kids);
		cJSON_Delete(d);
		return rc;
	}
	if (kids.n) {
		cJSON *k = cJSON_CreateArray();
		for (size_t i = 0; i < kids.n; i++)
			cJSON_AddItemToArray(k, cJSON_CreateString(kids.v[i]));
		cJSON_AddItemToObject(d, "member_group_ids", k);
	} else {
		cJSON_AddNullToObject(d, "member_group_ids");
	}
	cs_strv_free(&kids);
	cs_req_set_data(req, d);
	return 0;
}

/* Make the group's children exactly `want` (Vault's SanitizeAndUpsertGroup). */
static int set_children(struct cs_request *req, struct cs_idv *v, const char *gid, bool existed,
			const cJSON *want)
{
	struct cs_strv cur = {0};
	int rc = cs_id_group_children(v, gid, &cur);
	for (size_t i = 0; !rc && i < cur.n; i++) {
		if (cs_id_list_has(want, cur.v[i]))
			continue;
		cJSON *c = NULL;
		rc = cs_id_group_get(v, cur.v[i], &c);
		if (rc == CS_ENOTFOUND) {
			rc = cs_req_error(req, CS_EINVAL, "invalid member group ID \"%s\"",
					  cur.v[i]);
			break;
		}
		if (rc)
			break;
		cJSON *old = cJSON_Duplicate(c, true);
		cJSON *arr = cJSON_GetObjectItemCaseSensitive(c, "parent_group_ids");
		cJSON *x = arr ? arr->child : NULL;
		while (x) {
			cJSON *nx = x->next;
			if (cJSON_IsString(x) && strcmp(x->valuestring, gid) == 0)
				cJSON_Delete(cJSON_DetachItemViaPointer(arr, x));
			x = nx;
		}
		rc = cs_id_group_put(v, c, old);
		cJSON_Delete(c);
		cJSON_Delete(old);
	}
	cs_strv_free(&cur);
	const cJSON *m;
	cJSON_ArrayForEach(m, want)
	{
		if (rc)
			break;
		cJSON *c = NULL;
		rc = cs_id_group_get(v, m->valuestring, &c);
		if (rc == CS_ENOTFOUND) {
			rc = cs_req_error(req, CS_EINVAL, "invalid member group ID \"%s\"",
					  m->valuestring);
			break;
		}
		if (rc)
			break;
		if (cs_id_list_has(cJSON_GetObjectItemCaseSensitive(c, "parent_group_ids"), gid)) {
			cJSON_Delete(c);
			continue;
		}
		if (strcmp(gid, m->valuestring) == 0) {
			cJSON_Delete(c);
			rc = cs_req_error(req, CS_EINVAL,
					  "member group ID \"%s\" is same as the ID of the group",
					  gid);
			break;
		}
		/* A cycle: the new child is this group or one of its ancestors. */
		bool cycle = false;
		if (existed)
			rc = cs_id_group_reaches(v, gid, m->valuestring, &cycle);
		if (!rc && cycle)
			rc = cs_req_error(req, CS_EINVAL,
					  "cyclic relationship detected for member group ID \"%s\"",
					  m->valuestring);
		if (!rc) {
			cJSON *old = cJSON_Duplicate(c, true);
			append_str(c, "parent_group_ids", gid);
			rc = cs_id_group_put(v, c, old);
			cJSON_Delete(old);
		}
		cJSON_Delete(c);
	}
	return rc;
}

static int group_update(struct cs_request *req, struct cs_idv *v, cJSON *g, const char *name)
{
	cJSON *old = g ? cJSON_Duplicate(g, true) : NULL, *pol = NULL, *meta = NULL;
	cJSON *members = NULL, *kids = NULL;
	bool is_new = !g;
	int rc;
	if ((rc = policies_arg(req, &pol)))
		goto out;
	if (is_new) {
		g = cJSON_CreateObject();
		char id[37], now[64];
		cs_uuid(id);
		cs_id_now(now);
		cJSON_AddStringToObject(g, "id", id);
		cJSON_AddStringToObject(g, "name", "");
		cJSON_AddItemToObject(g, "policies", cJSON_CreateArray());
		cJSON_AddNullToObject(g, "member_entity_ids");
		cJSON_AddNullToObject(g, "parent_group_ids");
		cJSON_AddNullToObject(g, "metadata");
		cJSON_AddStringToObject(g, "creation_time", now);
		cJSON_AddStringToObject(g, "last_update_time", now);
		cJSON_AddNumberToObject(g, "modify_index", 0);
		cJSON_AddStringToObject(g, "type", "");
	}
	if (pol) {
		cs_id_set(g, "policies", pol);
		pol = NULL;
	}
	const char *type = cs_req_str(req, "type", "");
	if (*type) {
		if (*cs_id_str(g, "type") && strcmp(type, cs_id_str(g, "type")) != 0) {
			rc = cs_req_error(req, CS_EINVAL, "group type cannot be changed");
			goto out;
		}
		cs_id_set(g, "type", cJSON_CreateString(type));
	}
	if (!*cs_id_str(g, "type"))
		cs_id_set(g, "type", cJSON_CreateString("internal"));
	type = cs_id_str(g, "type");
	if (strcmp(type, "internal") && strcmp(type, "external")) {
		rc = cs_req_error(req, CS_EINVAL, "invalid group type \"%s\"", type);
		goto out;
	}
	bool external = strcmp(type, "external") == 0;
	if (*name) {
		cJSON *byname = NULL;
		rc = cs_id_group_by_name(v, name, &byname);
		bool clash = !rc && strcmp(cs_id_str(byname, "id"), cs_id_str(g, "id")) != 0;
		cJSON_Delete(byname);
		if (rc && rc != CS_ENOTFOUND)
			goto out;
		rc = 0;
		if (clash) {
			rc = cs_req_error(req, CS_EINVAL, "group name is already in use");
			goto out;
		}
		cs_id_set(g, "name", cJSON_CreateString(name));
	}
	if ((rc = kv_pairs(req, "metadata", &meta)))
		goto out;
	if (meta) {
		cs_id_set(g, "metadata", meta);
		meta = NULL;
	}
	if (cs_req_has(req, "member_entity_ids")) {
		if (external) {
			rc = cs_req_error(
			    req, CS_EINVAL,
			    "member entities can't be set manually for external groups");
			goto out;
		}
		members = unique(cs_req_get(req, "member_entity_ids"), false);
		const cJSON *m;
		cJSON_ArrayForEach(m, members)
		{
			cJSON *e = NULL;
			rc = cs_id_entity_get(v, m->valuestring, &e);
			cJSON_Delete(e);
			if (rc == CS_ENOTFOUND)
				rc = cs_req_error(req, CS_EINVAL, "invalid entity ID \"%s\"",
						  m->valuestring);
			if (rc)
				goto out;
		}
		cs_id_set(g, "member_entity_ids", members);
		members = NULL;
	}
	if (cs_req_has(req, "member_group_ids")) {
		if (external) {
			rc = cs_req_error(req, CS_EINVAL,
					  "member groups can't be set for external groups");
			goto out;
		}
		kids = unique(cs_req_get(req, "member_group_ids"), false);
	}
	if (!*cs_id_str(g, "name")) {
		/* Vault names an unnamed group "group_<8 hex>". */
		char nm[32];
		uint8_t r[4];
		cs_random(r, sizeof r);
		snprintf(nm, sizeof nm, "group_%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
		cs_id_set(g, "name", cJSON_CreateString(nm));
	}
	if (!is_new) {
		touch(g);
		const cJSON *mi = cJSON_GetObjectItemCaseSensitive(g, "modify_index");
		cs_id_set(g, "modify_index", cJSON_CreateNumber((mi ? mi->valuedouble : 0) + 1));
	}
	rc = cs_id_group_put(v, g, old);
	if (!rc && kids)
		rc = set_children(req, v, cs_id_str(g, "id"), !is_new, kids);
	if (!rc && is_new) {
		cJSON *d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "id", cs_id_str(g, "id"));
		cJSON_AddStringToObject(d, "name", cs_id_str(g, "name"));
		cs_req_set_data(req, d);
	}
out:
	cJSON_Delete(g);
	cJSON_Delete(old);
	cJSON_Delete(pol);
	cJSON_Delete(meta);
	cJSON_Delete(members);
	cJSON_Delete(kids);
	return rc;
}

static int group_write(struct cs_request *req)
{
	struct cs_idv v;
	int rc = view(req, &v);
	if (rc)
		return rc;
	const char *id = cs_req_str(req, "id", "");
	const char *name = cs_req_str(req, "name", "");
	cJSON *g = NULL;
	if (*id) {
		rc = cs_id_group_get(&v, id, &g);
		if (rc == CS_ENOTFOUND)
			return cs_req_error(req, CS_EINVAL, "invalid group ID");
		if (rc)
			return rc;
	} else if (*name) {
		rc = cs_id_group_by_name(&v, name, &g);
		if (rc && rc != CS_ENOTFOUND)
			return rc;
	}
	return group_update(req, &v, g, name);
}

static int group_id_write(struct cs_request *req)
{
	struct cs_idv v;
	int rc = view(req, &v);
	if (rc)
		return rc;
	cJSON *g = NULL;
	rc = cs_id_group_get(&v, arg(req, "id"), &g);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL, "invalid group ID");
	if (rc)
		return rc;
	return group_update(req, &v, g, cs_req_str(req, "name", ""));
}

static int group_name_write(struct cs_request *req)
{
	struct cs_idv v;
	int rc = view(req, &v);
	if (rc)
		return rc;
	const char *name = arg(req, "name");
	if (!*name)
		return cs_req_error(req, CS_EINVAL, "empty group name");
	cJSON *g = NULL;
	rc = cs_id_group_by_name(&v, name, &g);
	if (rc && rc != CS_ENOTFOUND)
		return rc;
	return group_update(req, &v, g, name);
}

static int group_read_common(struct cs_request *req, bool by_id)
{
	struct cs_idv v;
	int rc = view(req, &v);
	if (rc)
		return rc;
	cJSON *g = NULL;
	rc = by_id ? cs_id_group_get(&v, arg(req, "id"), &g)
		   : cs_id_group_by_name(&v, arg(req, "name"), &g);
	if (!rc)
		rc = group_json(req, &v, g);
	cJSON_Delete(g);
	return rc;
}

static int group_id_read(struct cs_request *req)
{
	return group_read_common(req, true);
}

static int group_name_read(struct cs_request *req)
{
	return group_read_common(req, false);
}

static int group_delete_common(struct cs_request *req, bool by_id)
{
	struct cs_idv v;
	int rc = view(req, &v);
	if (rc)
		return rc;
	cJSON *g = NULL;
	rc = by_id ? cs_id_group_get(&v, arg(req, "id"), &g)
		   : cs_id_group_by_name(&v, arg(req, "name"), &g);
	if (!rc)
		rc = cs_id_group_delete(&v, g);
	cJSON_Delete(g);
	return rc == CS_ENOTFOUND ? 0 : rc;
}

static int group_id_delete(struct cs_request *req)
{
	return group_delete_common(req, true);
}

static int group_name_delete(struct cs_request *req)
{
	return group_delete_common(req, false);
}

static int group_id_list(struct cs_request *req)
{
	return list_keys(req, "group/", "group");
}

static int group_name_list(struct cs_request *req)
{
	return list_keys(req, "index/group-name/", NULL);
}

/* ------------------------------------------------------------------ group aliases */

static int group_alias_common(struct cs_request *req, const char *id)
{
	struct cs_idv v;
	int rc = view(req, &v);
	if (rc)
		return rc;
	cJSON *prev = NULL, *dest = NULL, *alias = NULL;
	if (*id) {
		rc = cs_id_group_by_alias_id(&v, id, &prev);
		if (rc == CS_ENOTFOUND)
			return cs_req_error(req, CS_EINVAL, "invalid group alias ID");
		if (rc)
			return rc;
		alias = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(prev, "alias"), true);
	}
	const char *name = cs_req_str(req, "name", "");
	const char *accessor = cs_req_str(req, "mount_accessor", "");
	const char *canonical = cs_req_str(req, "canonical_id", "");
	if (!*name) {
		rc = cs_req_error(req, CS_EINVAL, "missing alias name");
		goto out;
	}
	if (!*accessor) {
		rc = cs_req_error(req, CS_EINVAL, "missing mount_accessor");
		goto out;
	}
	if (alias && strcmp(cs_id_str(alias, "name"), name) == 0 &&
	    strcmp(cs_id_str(alias, "mount_accessor"), accessor) == 0 &&
	    (!*canonical || strcmp(cs_id_str(alias, "canonical_id"), canonical) == 0))
		goto out;
	if (*canonical) {
		rc = cs_id_group_get(&v, canonical, &dest);
		if (rc == CS_ENOTFOUND) {
			rc = cs_req_error(req, CS_EINVAL,
					  "invalid group ID given in 'canonical_id'");
			goto out;
		}
		if (rc)
			goto out;
		if (strcmp(cs_id_str(dest, "type"), "external") != 0) {
			rc =
			    cs_req_error(req, CS_EINVAL, "alias can't be set on an internal group");
			goto out;
		}
	}
	if (!cs_backend_mount_by_accessor(req->core, accessor, NULL, NULL)) {
		rc = cs_req_error(req, CS_EINVAL, "invalid mount accessor \"%s\"", accessor);
		goto out;
	}
	cJSON *other = NULL;
	rc = cs_id_group_by_alias(&v, accessor, name, &other);
	bool clash =
	    !rc &&
	    strcmp(cs_id_str(cJSON_GetObjectItemCaseSensitive(other, "alias"), "id"), id) != 0;
	cJSON_Delete(other);
	if (rc && rc != CS_ENOTFOUND)
		goto out;
	rc = 0;
	if (clash) {
		rc = cs_req_error(req, CS_EINVAL,
				  "combination of mount and group alias name is already in use");
		goto out;
	}
	if (!alias) {
		alias = cs_id_alias_new("", accessor, name);
		cJSON_DeleteItemFromObjectCaseSensitive(alias, "custom_metadata");
		cJSON_DeleteItemFromObjectCaseSensitive(alias, "local");
	}
	cs_id_set(alias, "name", cJSON_CreateString(name));
	cs_id_set(alias, "mount_accessor", cJSON_CreateString(accessor));
	touch(alias);
	/* Where the alias goes: the named group, else the one holding it, else a new
	 * external group (Vault creates one). */
	if (prev && (!dest || strcmp(cs_id_str(dest, "id"), cs_id_str(prev, "id")) == 0)) {
		cJSON_Delete(dest);
		dest = prev;
		prev = NULL;
	} else if (prev) {
		cJSON *old = cJSON_Duplicate(prev, true);
		cs_id_set(prev, "alias", cJSON_CreateNull());
		rc = cs_id_group_put(&v, prev, old);
		cJSON_Delete(old);
		if (rc)
			goto out;
	}
	cJSON *old = dest ? cJSON_Duplicate(dest, true) : NULL;
	if (!dest) {
		char gid[37], now[64], nm[32];
		uint8_t r[4];
		cs_uuid(gid);
		cs_id_now(now);
		cs_random(r, sizeof r);
		snprintf(nm, sizeof nm, "group_%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
		dest = cJSON_CreateObject();
		cJSON_AddStringToObject(dest, "id", gid);
		cJSON_AddStringToObject(dest, "name", nm);
		cJSON_AddItemToObject(dest, "policies", cJSON_CreateArray());
		cJSON_AddNullToObject(dest, "member_entity_ids");
		cJSON_AddNullToObject(dest, "parent_group_ids");
		cJSON_AddNullToObject(dest, "metadata");
		cJSON_AddStringToObject(dest, "creation_time", now);
		cJSON_AddStringToObject(dest, "last_update_time", now);
		cJSON_AddNumberToObject(dest, "modify_index", 0);
		cJSON_AddStringToObject(dest, "type", "external");
	}
	cs_id_set(alias, "canonical_id", cJSON_CreateString(cs_id_str(dest, "id")));
	cs_id_set(dest, "alias", alias);
	alias = NULL;
	rc = cs_id_group_put(&v, dest, old);
	cJSON_Delete(old);
	if (!rc) {
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(dest, "alias");
		alias_reply(req, a, cs_id_str(dest, "id"));
	}
out:
	cJSON_Delete(prev);
	cJSON_Delete(dest);
	cJSON_Delete(alias);
	return rc;
}

static int group_alias_write(struct cs_request *req)
{
	return group_alias_common(req, cs_req_str(req, "id", ""));
}

static int group_alias_id_write(struct cs_request *req)
{
	return group_alias_common(req, arg(req, "id"));
}

static int group_alias_id_read(struct cs_request *req)
{
	struct cs_idv v;
	int rc = view(req, &v);
	if (rc)
		return rc;
	cJSON *g = NULL;
	rc = cs_id_group_by_alias_id(&v, arg(req, "id"), &g);
	if (!rc) {
		cJSON *a =
		    alias_json(req->core, cJSON_GetObjectItemCaseSensitive(g, "alias"), true);
		cJSON_DeleteItemFromObjectCaseSensitive(a, "custom_metadata");
		cJSON_DeleteItemFromObjectCaseSensitive(a, "local");
		cs_req_set_data(req, a);
	}
	cJSON_Delete(g);
	return rc;
}

static int group_alias_id_delete(struct cs_request *req)
{
	struct cs_idv v;
	int rc = view(req, &v);
	if (rc)
		return rc;
	cJSON *g = NULL;
	rc = cs_id_group_by_alias_id(&v, arg(req, "id"), &g);
	if (!rc) {
		cJSON *old = cJSON_Duplicate(g, true);
		cs_id_set(g, "alias", cJSON_CreateNull());
		rc = cs_id_group_put(&v, g, old);
		cJSON_Delete(old);
	}
	cJSON_Delete(g);
	return rc == CS_ENOTFOUND ? 0 : rc;
}

static int group_alias_list(struct cs_request *req)
{
	return alias_list_kind(req, true);
}

/* ------------------------------------------------------------------ lookup */

/* Vault's lookup rules: exactly one of id, name, alias_id, or alias_name together with
 * alias_mount_accessor. A miss is a 204 (no data). */
static int lookup_common(struct cs_request *req, bool group)
{
	struct cs_idv v;
	int rc = view(req, &v);
	if (rc)
		return rc;
	const char *id = cs_req_str(req, "id", ""), *name = cs_req_str(req, "name", "");
	const char *aid = cs_req_str(req, "alias_id", "");
	const char *an = cs_req_str(req, "alias_name", "");
	const char *am = cs_req_str(req, "alias_mount_accessor", "");
	int n = !!*id + !!*name + !!*aid + !!*an + !!*am;
	if (n == 0)
		return cs_req_error(req, CS_EINVAL, "query parameter not supplied");
	if (n != 1 && !(n == 2 && *an && *am))
		return cs_req_error(req, CS_EINVAL,
				    "query parameter conflict; please supply distinct set of query "
				    "parameters");
	if (n == 1 && (*an || *am))
		return cs_req_error(req, CS_EINVAL,
				    "both 'alias_name' and 'alias_mount_accessor' needs to be set");
	cJSON *r = NULL;
	if (group) {
		if (*id)
			rc = cs_id_group_get(&v, id, &r);
		else if (*name)
			rc = cs_id_group_by_name(&v, name, &r);
		else if (*aid)
			rc = cs_id_group_by_alias_id(&v, aid, &r);
		else
			rc = cs_id_group_by_alias(&v, am, an, &r);
	} else {
		if (*id)
			rc = cs_id_entity_get(&v, id, &r);
		else if (*name)
			rc = cs_id_entity_by_name(&v, name, &r);
		else if (*aid)
			rc = cs_id_entity_by_alias_id(&v, aid, &r);
		else
			rc = cs_id_entity_by_alias(&v, am, an, &r);
	}
	if (rc == CS_ENOTFOUND)
		return 0;
	if (!rc) {
		if (group) {
			rc = group_json(req, &v, r);
		} else {
			cJSON *d = NULL;
			rc = entity_json(req, &v, r, &d);
			if (!rc)
				cs_req_set_data(req, d);
		}
	}
	cJSON_Delete(r);
	return rc;
}

static int lookup_entity(struct cs_request *req)
{
	return lookup_common(req, false);
}

static int lookup_group(struct cs_request *req)
{
	return lookup_common(req, true);
}

/* ------------------------------------------------------------------ table */

#define F(n, t, d)                                                                                 \
	{                                                                                          \
		.name = n, .type = t, .desc = d                                                    \
	}

static const struct cs_field entity_fields[] = {
    F("id", CS_FIELD_STRING, "ID of the entity; if set, updates that entity"),
    F("name", CS_FIELD_STRING, "name of the entity"),
    F("metadata", CS_FIELD_ANY, "metadata: a map, or a list of key=value"),
    F("policies", CS_FIELD_STRLIST, "policies of the entity"),
    F("disabled", CS_FIELD_BOOL, "tokens of a disabled entity cannot be used"),
    {.name = NULL},
};

static const struct cs_field batch_fields[] = {
    F("entity_ids", CS_FIELD_STRLIST, "entity IDs to delete"),
    {.name = NULL},
};

static const struct cs_field merge_fields[] = {
    F("from_entity_ids", CS_FIELD_STRLIST, "entity IDs to merge"),
    F("to_entity_id", CS_FIELD_STRING, "entity ID to merge into"),
    F("conflicting_alias_ids_to_keep", CS_FIELD_STRLIST, "alias IDs to keep on a clash"),
    F("force", CS_FIELD_BOOL, "merge MFA secrets 'mine' strategy (no MFA here)"),
    {.name = NULL},
};

static const struct cs_field alias_fields[] = {
    F("id", CS_FIELD_STRING, "ID of the alias; if set, updates that alias"),
    F("name", CS_FIELD_STRING, "name of the alias"),
    F("mount_accessor", CS_FIELD_STRING, "accessor of the auth mount"),
    F("canonical_id", CS_FIELD_STRING, "entity ID the alias belongs to"),
    F("entity_id", CS_FIELD_STRING, "deprecated: canonical_id"),
    F("custom_metadata", CS_FIELD_ANY, "user metadata: a map, or a list of key=value"),
    {.name = NULL},
};

static const struct cs_field group_fields[] = {
    F("id", CS_FIELD_STRING, "ID of the group; if set, updates that group"),
    F("name", CS_FIELD_STRING, "name of the group"),
    F("type", CS_FIELD_STRING, "internal (default) or external"),
    F("metadata", CS_FIELD_ANY, "metadata: a map, or a list of key=value"),
    F("policies", CS_FIELD_STRLIST, "policies of the group"),
    F("member_entity_ids", CS_FIELD_STRLIST, "member entities (internal groups)"),
    F("member_group_ids", CS_FIELD_STRLIST, "member groups (internal groups)"),
    {.name = NULL},
};

static const struct cs_field group_alias_fields[] = {
    F("id", CS_FIELD_STRING, "ID of the group alias"),
    F("name", CS_FIELD_STRING, "name of the group alias"),
    F("mount_accessor", CS_FIELD_STRING, "accessor of the auth mount"),
    F("canonical_id", CS_FIELD_STRING, "ID of the external group"),
    {.name = NULL},
};

static const struct cs_field lookup_fields[] = {
    F("id", CS_FIELD_STRING, "ID"),
    F("name", CS_FIELD_STRING, "name"),
    F("alias_id", CS_FIELD_STRING, "ID of an alias"),
    F("alias_name", CS_FIELD_STRING, "name of an alias (with alias_mount_accessor)"),
    F("alias_mount_accessor", CS_FIELD_STRING, "accessor of the alias's mount"),
    {.name = NULL},
};

#define W(fn) .ops = {[CS_OP_CREATE] = fn, [CS_OP_UPDATE] = fn}

static const struct cs_path identity_paths[] = {
    {.pattern = "entity",
     .fields = entity_fields,
     W(entity_write),
     .synopsis = "create or update an entity"},
    {.pattern = "entity/batch-delete",
     .fields = batch_fields,
     W(entity_batch_delete),
     .synopsis = "delete entities by ID"},
    {.pattern = "entity/merge",
     .fields = merge_fields,
     W(entity_merge),
     .synopsis = "merge entities"},
    {.pattern = "entity/id", .ops = {[CS_OP_LIST] = entity_id_list}, .synopsis = "list entity IDs"},
    {.pattern = "entity/id/{id}",
     .fields = entity_fields,
     .ops = {[CS_OP_READ] = entity_id_read,
	     [CS_OP_CREATE] = entity_id_write,
	     [CS_OP_UPDATE] = entity_id_write,
	     [CS_OP_DELETE] = entity_id_delete},
     .synopsis = "read, update or delete an entity by ID"},
    {.pattern = "entity/name",
     .ops = {[CS_OP_LIST] = entity_name_list},
     .synopsis = "list entity names"},
    {.pattern = "entity/name/{name*}",
     .fields = entity_fields,
     .ops = {[CS_OP_READ] = entity_name_read,
	     [CS_OP_CREATE] = entity_name_write,
	     [CS_OP_UPDATE] = entity_name_write,
	     [CS_OP_DELETE] = entity_name_delete,
	     [CS_OP_LIST] = entity_name_any_list},
     .synopsis = "read, create, update or delete an entity by name"},
    {.pattern = "entity-alias",
     .fields = alias_fields,
     W(alias_write),
     .synopsis = "create or update an entity alias"},
    {.pattern = "entity-alias/id",
     .ops = {[CS_OP_LIST] = alias_list},
     .synopsis = "list entity alias IDs"},
    {.pattern = "entity-alias/id/{id}",
     .fields = alias_fields,
     .ops = {[CS_OP_READ] = alias_id_read,
	     [CS_OP_CREATE] = alias_id_write,
	     [CS_OP_UPDATE] = alias_id_write,
	     [CS_OP_DELETE] = alias_id_delete},
     .synopsis = "read, update or delete an entity alias"},
    {.pattern = "group",
     .fields = group_fields,
     W(group_write),
     .synopsis = "create or update a group"},
    {.pattern = "group/id", .ops = {[CS_OP_LIST] = group_id_list}, .synopsis = "list group IDs"},
    {.pattern = "group/id/{id}",
     .fields = group_fields,
     .ops = {[CS_OP_READ] = group_id_read,
	     [CS_OP_CREATE] = group_id_write,
	     [CS_OP_UPDATE] = group_id_write,
	     [CS_OP_DELETE] = group_id_delete},
     .synopsis = "read, update or delete a group by ID"},
    {.pattern = "group/name",
     .ops = {[CS_OP_LIST] = group_name_list},
     .synopsis = "list group names"},
    {.pattern = "group/name/{name*}",
     .fields = group_fields,
     .ops = {[CS_OP_READ] = group_name_read,
	     [CS_OP_CREATE] = group_name_write,
	     [CS_OP_UPDATE] = group_name_write,
	     [CS_OP_DELETE] = group_name_delete,
	     [CS_OP_LIST] = group_name_list},
     .synopsis = "read, create, update or delete a group by name"},
    {.pattern = "group-alias",
     .fields = group_alias_fields,
     W(group_alias_write),
     .synopsis = "create or update a group alias"},
    {.pattern = "group-alias/id",
     .ops = {[CS_OP_LIST] = group_alias_list},
     .synopsis = "list group alias IDs"},
    {.pattern = "group-alias/id/{id}",
     .fields = group_alias_fields,
     .ops = {[CS_OP_READ] = group_alias_id_read,
	     [CS_OP_CREATE] = group_alias_id_write,
	     [CS_OP_UPDATE] = group_alias_id_write,
	     [CS_OP_DELETE] = group_alias_id_delete},
     .synopsis = "read, update or delete a group alias"},
    {.pattern = "lookup/entity",
     .fields = lookup_fields,
     W(lookup_entity),
     .synopsis = "look an entity up by name, ID or alias"},
    {.pattern = "lookup/group",
     .fields = lookup_fields,
     W(lookup_group),
     .synopsis = "look a group up by name, ID or alias"},
};

const struct cs_backend cs_identity_backend = {
    .type = "identity",
    .is_auth = false,
    .paths = identity_paths,
    .n_paths = CS_ARRAY_LEN(identity_paths),
    .tables = &cs_id_oidc_table, /* identity tokens (identity_oidc.c) */
    .n_tables = 1,
    .periodic = cs_id_oidc_periodic,
    .reset = cs_id_cache_reset,
};

static const struct cs_identity_hooks hooks = {
    .login = cs_id_login,
    .resolve = cs_id_resolve,
};

void cs_identity_register(struct cs_core *core)
{
	cs_backend_register(&cs_identity_backend);
	cs_sys_require_mount(CS_IDENTITY_PATH, "identity", "identity store");
	cs_core_set_identity(core, &hooks);
}
