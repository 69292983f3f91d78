/*
 * The identity store's records and indexes (see identity_internal.h for the layout), and
 * the two hooks the rest of the server calls: login (find or create the entity of an
 * alias) and resolve (an entity's identity for the ACL, on every request).
 *
 * Every write goes through the request's transaction, so the records and their indexes
 * change together or not at all, and a standby forwards whatever writes: entity ids are
 * decided by the active node, in raft order, and two logins of one alias — the second
 * reads the first's write through the overlay — make one entity.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engines/identity_internal.h"
#include "lib/err.h"
#include "lib/util.h"

/* ------------------------------------------------------------------ view */

int cs_idv_open(struct cs_idv *v, struct cs_core *core, struct cs_txn *txn)
{
	v->core = core;
	v->txn = txn;
	v->rec = NULL;
	v->prefix = cs_backend_mount_prefix(core, CS_IDENTITY_PATH);
	return v->prefix ? 0 : CS_ENOTFOUND;
}

/* prefix + key into buf; CS_EINVAL when too long for a storage key. */
static int full_key(const struct cs_idv *v, const char *key, char *buf, size_t n)
{
	int w = snprintf(buf, n, "%s%s", v->prefix, key);
	return w < 0 || (size_t)w >= n ? CS_EINVAL : 0;
}

int cs_idv_get(struct cs_idv *v, const char *key, cJSON **out)
{
	*out = NULL;
	char k[512];
	int rc = full_key(v, key, k, sizeof k);
	if (rc)
		return CS_ENOTFOUND; /* a name too long to be stored was never stored */
	cs_id_record_get(v, k);
	struct cs_buf b = CS_BUF_INIT;
	rc = cs_txn_get(v->txn, k, &b);
	if (!rc) {
		*out = cJSON_ParseWithLength(b.data, b.len);
		if (!*out)
			rc = CS_EIO;
	}
	cs_buf_free_secure(&b);
	return rc;
}

int cs_idv_put(struct cs_idv *v, const char *key, const cJSON *o)
{
	char k[512];
	if (full_key(v, key, k, sizeof k))
		return CS_EINVAL;
	char *s = cJSON_PrintUnformatted(o);
	if (!s)
		abort();
	int rc = cs_txn_put(v->txn, k, s, strlen(s));
	free(s);
	return rc;
}

int cs_idv_del(struct cs_idv *v, const char *key)
{
	char k[512];
	if (full_key(v, key, k, sizeof k))
		return 0;
	int rc = cs_txn_delete(v->txn, k);
	return rc == CS_ENOTFOUND ? 0 : rc;
}

int cs_idv_list(struct cs_idv *v, const char *prefix, struct cs_strv *out)
{
	char k[512];
	if (full_key(v, prefix, k, sizeof k))
		return CS_EINVAL;
	int rc = cs_txn_list(v->txn, k, out);
	if (!rc)
		cs_id_record_list(v, k, out);
	return rc;
}

/* ------------------------------------------------------------------ helpers */

char *cs_id_esc(const char *name)
{
	size_t n = strlen(name);
	char *o = malloc(3 * n + 1), *p = o;
	if (!o)
		abort();
	for (const char *c = name; *c; c++) {
		if (*c == '%' || *c == '/') {
			sprintf(p, "%%%02X", (unsigned char)*c);
			p += 3;
		} else {
			*p++ = *c;
		}
	}
	*p = '\0';
	return o;
}

void cs_id_unesc(char *s)
{
	char *o = s;
	for (char *c = s; *c; c++) {
		if (c[0] == '%' && c[1] && c[2]) {
			unsigned v;
			if (sscanf(c + 1, "%2X", &v) == 1) {
				*o++ = (char)v;
				c += 2;
				continue;
			}
		}
		*o++ = *c;
	}
	*o = '\0';
}

const char *cs_id_str(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : "";
}

bool cs_id_list_has(const cJSON *arr, const char *s)
{
	const cJSON *v;
	cJSON_ArrayForEach(v, arr)
	{
		if (cJSON_IsString(v) && strcmp(v->valuestring, s) == 0)
			return true;
	}
	return false;
}

void cs_id_set(cJSON *o, const char *name, cJSON *item)
{
	if (cJSON_GetObjectItemCaseSensitive(o, name))
		cJSON_ReplaceItemInObjectCaseSensitive(o, name, item);
	else
		cJSON_AddItemToObject(o, name, item);
}

void cs_id_now(char out[64])
{
	cs_format_time(cs_now_ns(), out, 64);
}

/* "<kind>/<esc name>"-style index key: prefix + escaped tail. */
static char *index_key(const char *prefix, const char *a, const char *name)
{
	char *e = cs_id_esc(name);
	size_t n = strlen(prefix) + (a ? strlen(a) + 1 : 0) + strlen(e) + 1;
	char *k = malloc(n);
	if (!k)
		abort();
	if (a)
		snprintf(k, n, "%s%s/%s", prefix, a, e);
	else
		snprintf(k, n, "%s%s", prefix, e);
	free(e);
	return k;
}

/* Read the index at `key` and return the record named by its `field`. */
static int via_index(struct cs_idv *v, char *key, const char *field, const char *kind, cJSON **out)
{
	*out = NULL;
	cJSON *ix = NULL;
	int rc = cs_idv_get(v, key, &ix);
	free(key);
	if (rc)
		return rc;
	char rk[300];
	snprintf(rk, sizeof rk, "%s/%s", kind, cs_id_str(ix, field));
	cJSON_Delete(ix);
	return cs_idv_get(v, rk, out);
}

static bool id_ok(const char *id)
{
	return *id && !strchr(id, '/') && strlen(id) < 200;
}

int cs_id_entity_get(struct cs_idv *v, const char *id, cJSON **out)
{
	*out = NULL;
	if (!id_ok(id))
		return CS_ENOTFOUND;
	char k[256];
	snprintf(k, sizeof k, "entity/%s", id);
	return cs_idv_get(v, k, out);
}

int cs_id_group_get(struct cs_idv *v, const char *id, cJSON **out)
{
	*out = NULL;
	if (!id_ok(id))
		return CS_ENOTFOUND;
	char k[256];
	snprintf(k, sizeof k, "group/%s", id);
	return cs_idv_get(v, k, out);
}

int cs_id_entity_by_name(struct cs_idv *v, const char *name, cJSON **out)
{
	return via_index(v, index_key("index/entity-name/", NULL, name), "id", "entity", out);
}

int cs_id_group_by_name(struct cs_idv *v, const char *name, cJSON **out)
{
	return via_index(v, index_key("index/group-name/", NULL, name), "id", "group", out);
}

int cs_id_entity_by_alias(struct cs_idv *v, const char *accessor, const char *name, cJSON **out)
{
	if (!id_ok(accessor)) {
		*out = NULL;
		return CS_ENOTFOUND;
	}
	return via_index(v, index_key("index/alias/", accessor, name), "canonical_id", "entity",
			 out);
}

int cs_id_group_by_alias(struct cs_idv *v, const char *accessor, const char *name, cJSON **out)
{
	if (!id_ok(accessor)) {
		*out = NULL;
		return CS_ENOTFOUND;
	}
	return via_index(v, index_key("index/group-alias/", accessor, name), "canonical_id",
			 "group", out);
}

int cs_id_entity_by_alias_id(struct cs_idv *v, const char *alias_id, cJSON **out)
{
	if (!id_ok(alias_id)) {
		*out = NULL;
		return CS_ENOTFOUND;
	}
	return via_index(v, index_key("index/alias-id/", NULL, alias_id), "canonical_id", "entity",
			 out);
}

int cs_id_group_by_alias_id(struct cs_idv *v, const char *alias_id, cJSON **out)
{
	if (!id_ok(alias_id)) {
		*out = NULL;
		return CS_ENOTFOUND;
	}
	return via_index(v, index_key("index/group-alias-id/", NULL, alias_id), "canonical_id",
			 "group", out);
}

/* ------------------------------------------------------------------ writes */

static int put_key(struct cs_idv *v, char *key, const cJSON *val)
{
	int rc = cs_idv_put(v, key, val);
	free(key);
	return rc;
}

static int del_key(struct cs_idv *v, char *key)
{
	int rc = cs_idv_del(v, key);
	free(key);
	return rc;
}

static cJSON *ref(const char *field, const char *id, const char *field2, const char *id2)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, field, id);
	if (field2)
		cJSON_AddStringToObject(o, field2, id2);
	return o;
}

/* Whether array `arr` of alias objects has one with this id. */
static const cJSON *alias_in(const cJSON *arr, const char *id)
{
	const cJSON *a;
	cJSON_ArrayForEach(a, arr)
	{
		if (strcmp(cs_id_str(a, "id"), id) == 0)
			return a;
	}
	return NULL;
}

/* Alias indexes: drop those of `old`'s aliases (kind "alias" or "group-alias") that are
 * gone or renamed, write those of `cur`'s. */
static int alias_indexes(struct cs_idv *v, const char *kind, const char *owner,
			 const cJSON *cur_aliases, const cJSON *old_aliases)
{
	char p1[64], p2[64];
	snprintf(p1, sizeof p1, "index/%s/", kind);
	snprintf(p2, sizeof p2, "index/%s-id/", kind);
	int rc = 0;
	const cJSON *a;
	cJSON_ArrayForEach(a, old_aliases)
	{
		const cJSON *now = alias_in(cur_aliases, cs_id_str(a, "id"));
		bool same =
		    now &&
		    strcmp(cs_id_str(now, "mount_accessor"), cs_id_str(a, "mount_accessor")) == 0 &&
		    strcmp(cs_id_str(now, "name"), cs_id_str(a, "name")) == 0;
		if (same)
			continue;
		if (!rc)
			rc = del_key(
			    v, index_key(p1, cs_id_str(a, "mount_accessor"), cs_id_str(a, "name")));
		if (!rc && !now)
			rc = del_key(v, index_key(p2, NULL, cs_id_str(a, "id")));
	}
	cJSON_ArrayForEach(a, cur_aliases)
	{
		if (rc)
			break;
		cJSON *r = ref("id", cs_id_str(a, "id"), "canonical_id", owner);
		rc = put_key(v, index_key(p1, cs_id_str(a, "mount_accessor"), cs_id_str(a, "name")),
			     r);
		cJSON_Delete(r);
		if (!rc) {
			r = ref("canonical_id", owner, NULL, NULL);
			rc = put_key(v, index_key(p2, NULL, cs_id_str(a, "id")), r);
			cJSON_Delete(r);
		}
	}
	return rc;
}

/* The name index of a record of `kind` ("entity-name", "group-name"). */
static int name_index(struct cs_idv *v, const char *kind, const cJSON *cur, const cJSON *old)
{
	char p[64];
	snprintf(p, sizeof p, "index/%s/", kind);
	const char *nn = cs_id_str(cur, "name"), *on = old ? cs_id_str(old, "name") : "";
	int rc = 0;
	if (old && *on && (!cur || strcmp(on, nn) != 0))
		rc = del_key(v, index_key(p, NULL, on));
	if (!rc && cur && (!old || strcmp(on, nn) != 0)) {
		cJSON *r = ref("id", cs_id_str(cur, "id"), NULL, NULL);
		rc = put_key(v, index_key(p, NULL, nn), r);
		cJSON_Delete(r);
	}
	return rc;
}

/* Edges "index/<kind>/<a>/<b>" for every id in `now` but not `before` (and removed the
 * other way); `a_is_item`: the list holds the first segment (membership by entity). */
static int edge_diff(struct cs_idv *v, const char *kind, const char *self, const cJSON *now,
		     const cJSON *before, bool a_is_item)
{
	static const char empty[] = "{}";
	int rc = 0;
	const cJSON *x;
	char k[600];
	cJSON_ArrayForEach(x, before)
	{
		if (rc || !cJSON_IsString(x) || cs_id_list_has(now, x->valuestring) ||
		    !id_ok(x->valuestring))
			continue;
		snprintf(k, sizeof k, "index/%s/%s/%s", kind, a_is_item ? x->valuestring : self,
			 a_is_item ? self : x->valuestring);
		rc = cs_idv_del(v, k);
	}
	cJSON_ArrayForEach(x, now)
	{
		if (rc || !cJSON_IsString(x) || cs_id_list_has(before, x->valuestring) ||
		    !id_ok(x->valuestring))
			continue;
		snprintf(k, sizeof k, "index/%s/%s/%s", kind, a_is_item ? x->valuestring : self,
			 a_is_item ? self : x->valuestring);
		char full[1024];
		if (full_key(v, k, full, sizeof full))
			return CS_EINVAL;
		rc = cs_txn_put(v->txn, full, empty, 2);
	}
	return rc;
}

int cs_id_entity_put(struct cs_idv *v, const cJSON *e, const cJSON *old)
{
	const char *id = cs_id_str(e, "id");
	char k[256];
	snprintf(k, sizeof k, "entity/%s", id);
	int rc = cs_idv_put(v, k, e);
	if (!rc)
		rc = name_index(v, "entity-name", e, old);
	if (!rc)
		rc = alias_indexes(v, "alias", id, cJSON_GetObjectItemCaseSensitive(e, "aliases"),
				   old ? cJSON_GetObjectItemCaseSensitive(old, "aliases") : NULL);
	return rc;
}

int cs_id_group_put(struct cs_idv *v, const cJSON *g, const cJSON *old)
{
	const char *id = cs_id_str(g, "id");
	char k[256];
	snprintf(k, sizeof k, "group/%s", id);
	int rc = cs_idv_put(v, k, g);
	if (!rc)
		rc = name_index(v, "group-name", g, old);
	if (!rc)
		rc = edge_diff(v, "entity-groups", id,
			       cJSON_GetObjectItemCaseSensitive(g, "member_entity_ids"),
			       cJSON_GetObjectItemCaseSensitive(old, "member_entity_ids"), true);
	if (!rc)
		rc = edge_diff(v, "group-children", id,
			       cJSON_GetObjectItemCaseSensitive(g, "parent_group_ids"),
			       cJSON_GetObjectItemCaseSensitive(old, "parent_group_ids"), true);
	if (!rc) {
		/* The group's alias (external groups) lives inline like an entity's. */
		cJSON *cur = cJSON_CreateArray(), *was = cJSON_CreateArray();
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(g, "alias");
		if (cJSON_IsObject(a) && *cs_id_str(a, "id"))
			cJSON_AddItemToArray(cur, cJSON_Duplicate(a, true));
		a = cJSON_GetObjectItemCaseSensitive(old, "alias");
		if (cJSON_IsObject(a) && *cs_id_str(a, "id"))
			cJSON_AddItemToArray(was, cJSON_Duplicate(a, true));
		rc = alias_indexes(v, "group-alias", id, cur, was);
		cJSON_Delete(cur);
		cJSON_Delete(was);
	}
	return rc;
}

/* Remove `item` (a string) from the array member `name` of `o`. */
static void strlist_remove(cJSON *o, const char *name, const char *item)
{
	cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, name);
	cJSON *x = arr ? arr->child : NULL;
	while (x) {
		cJSON *nx = x->next;
		if (cJSON_IsString(x) && strcmp(x->valuestring, item) == 0)
			cJSON_Delete(cJSON_DetachItemViaPointer(arr, x));
		x = nx;
	}
}

int cs_id_entity_group_ids(struct cs_idv *v, const char *entity_id, struct cs_strv *out)
{
	char k[300];
	snprintf(k, sizeof k, "index/entity-groups/%s/", entity_id);
	return id_ok(entity_id) ? cs_idv_list(v, k, out) : 0;
}

int cs_id_group_children(struct cs_idv *v, const char *group_id, struct cs_strv *out)
{
	char k[300];
	snprintf(k, sizeof k, "index/group-children/%s/", group_id);
	return id_ok(group_id) ? cs_idv_list(v, k, out) : 0;
}

int cs_id_entity_delete(struct cs_idv *v, const cJSON *e)
{
	const char *id = cs_id_str(e, "id");
	struct cs_strv gids = {0};
	int rc = cs_id_entity_group_ids(v, id, &gids);
	for (size_t i = 0; !rc && i < gids.n; i++) {
		cJSON *g = NULL, *old = NULL;
		rc = cs_id_group_get(v, gids.v[i], &g);
		if (rc == CS_ENOTFOUND) {
			rc = 0;
			continue;
		}
		if (rc)
			break;
		old = cJSON_Duplicate(g, true);
		strlist_remove(g, "member_entity_ids", id);
		rc = cs_id_group_put(v, g, old);
		cJSON_Delete(g);
		cJSON_Delete(old);
	}
	cs_strv_free(&gids);
	if (!rc)
		rc = alias_indexes(v, "alias", id, NULL,
				   cJSON_GetObjectItemCaseSensitive(e, "aliases"));
	if (!rc)
		rc = name_index(v, "entity-name", NULL, e);
	if (!rc) {
		char k[256];
		snprintf(k, sizeof k, "entity/%s", id);
		rc = cs_idv_del(v, k);
	}
	return rc;
}

int cs_id_group_delete(struct cs_idv *v, const cJSON *g)
{
	const char *id = cs_id_str(g, "id");
	struct cs_strv kids = {0};
	int rc = cs_id_group_children(v, id, &kids);
	for (size_t i = 0; !rc && i < kids.n; i++) {
		cJSON *c = NULL;
		rc = cs_id_group_get(v, kids.v[i], &c);
		if (rc == CS_ENOTFOUND) {
			rc = 0;
			continue;
		}
		if (rc)
			break;
		cJSON *old = cJSON_Duplicate(c, true);
		strlist_remove(c, "parent_group_ids", id);
		rc = cs_id_group_put(v, c, old);
		cJSON_Delete(c);
		cJSON_Delete(old);
	}
	cs_strv_free(&kids);
	if (!rc) {
		/* Everything of the group's own goes: indexes through a put of "nothing". */
		cJSON *none = cJSON_CreateObject();
		cJSON_AddStringToObject(none, "id", id);
		rc = edge_diff(v, "entity-groups", id, NULL,
			       cJSON_GetObjectItemCaseSensitive(g, "member_entity_ids"), true);
		if (!rc)
			rc = edge_diff(v, "group-children", id, NULL,
				       cJSON_GetObjectItemCaseSensitive(g, "parent_group_ids"),
				       true);
		cJSON_Delete(none);
	}
	if (!rc) {
		cJSON *was = cJSON_CreateArray();
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(g, "alias");
		if (cJSON_IsObject(a) && *cs_id_str(a, "id"))
			cJSON_AddItemToArray(was, cJSON_Duplicate(a, true));
		rc = alias_indexes(v, "group-alias", id, NULL, was);
		cJSON_Delete(was);
	}
	if (!rc)
		rc = name_index(v, "group-name", NULL, g);
	if (!rc) {
		char k[256];
		snprintf(k, sizeof k, "group/%s", id);
		rc = cs_idv_del(v, k);
	}
	return rc;
}

/* ------------------------------------------------------------------ groups of an entity */

/* Bound on the groups one entity reaches: group graphs are acyclic (writes refuse
 * cycles), this only stops a corrupted store from looping. */
#define MAX_GROUPS 4096

int cs_id_entity_groups(struct cs_idv *v, const char *entity_id, cJSON **direct, cJSON **inherited)
{
	*direct = cJSON_CreateArray();
	*inherited = cJSON_CreateArray();
	struct cs_strv seen = {0}, queue = {0};
	int rc = cs_id_entity_group_ids(v, entity_id, &queue);
	size_t n_direct = queue.n;
	for (size_t i = 0; !rc && i < queue.n && seen.n < MAX_GROUPS; i++) {
		bool dup = false;
		for (size_t j = 0; j < seen.n && !dup; j++)
			dup = strcmp(seen.v[j], queue.v[i]) == 0;
		if (dup)
			continue;
		cs_strv_push(&seen, queue.v[i], strlen(queue.v[i]));
		cJSON *g = NULL;
		rc = cs_id_group_get(v, queue.v[i], &g);
		if (rc == CS_ENOTFOUND) {
			rc = 0;
			continue;
		}
		if (rc)
			break;
		const cJSON *p;
		cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(g, "parent_group_ids"))
		{
			if (cJSON_IsString(p))
				cs_strv_push(&queue, p->valuestring, strlen(p->valuestring));
		}
		cJSON_AddItemToArray(i < n_direct ? *direct : *inherited, g);
	}
	cs_strv_free(&seen);
	cs_strv_free(&queue);
	if (rc) {
		cJSON_Delete(*direct);
		cJSON_Delete(*inherited);
		*direct = *inherited = NULL;
	}
	return rc;
}

int cs_id_group_reaches(struct cs_idv *v, const char *g, const char *ancestor, bool *yes)
{
	*yes = false;
	struct cs_strv queue = {0};
	cs_strv_push(&queue, g, strlen(g));
	int rc = 0;
	for (size_t i = 0; !rc && i < queue.n && i < MAX_GROUPS; i++) {
		if (strcmp(queue.v[i], ancestor) == 0) {
			*yes = true;
			break;
		}
		cJSON *r = NULL;
		rc = cs_id_group_get(v, queue.v[i], &r);
		if (rc == CS_ENOTFOUND) {
			rc = 0;
			continue;
		}
		const cJSON *p;
		cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(r, "parent_group_ids"))
		{
			if (cJSON_IsString(p))
				cs_strv_push(&queue, p->valuestring, strlen(p->valuestring));
		}
		cJSON_Delete(r);
	}
	cs_strv_free(&queue);
	return rc;
}

/* ------------------------------------------------------------------ new records */

int cs_id_entity_new(struct cs_idv *v, cJSON **out)
{
	char id[37], name[32], now[64];
	cs_uuid(id);
	for (;;) {
		uint8_t rnd[4];
		cs_random(rnd, sizeof rnd);
		snprintf(name, sizeof name, "entity_%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
			 rnd[3]);
		cJSON *x = NULL;
		int rc = cs_id_entity_by_name(v, name, &x);
		cJSON_Delete(x);
		if (rc == CS_ENOTFOUND)
			break;
		if (rc)
			return rc;
	}
	cs_id_now(now);
	cJSON *e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "id", id);
	cJSON_AddStringToObject(e, "name", name);
	cJSON_AddNullToObject(e, "metadata");
	cJSON_AddItemToObject(e, "policies", cJSON_CreateArray());
	cJSON_AddBoolToObject(e, "disabled", false);
	cJSON_AddStringToObject(e, "creation_time", now);
	cJSON_AddStringToObject(e, "last_update_time", now);
	cJSON_AddNullToObject(e, "merged_entity_ids");
	cJSON_AddItemToObject(e, "aliases", cJSON_CreateArray());
	*out = e;
	return 0;
}

cJSON *cs_id_alias_new(const char *canonical_id, const char *accessor, const char *name)
{
	char id[37], now[64];
	cs_uuid(id);
	cs_id_now(now);
	cJSON *a = cJSON_CreateObject();
	cJSON_AddStringToObject(a, "id", id);
	cJSON_AddStringToObject(a, "canonical_id", canonical_id);
	cJSON_AddStringToObject(a, "mount_accessor", accessor);
	cJSON_AddStringToObject(a, "name", name);
	cJSON_AddNullToObject(a, "metadata");
	cJSON_AddNullToObject(a, "custom_metadata");
	cJSON_AddStringToObject(a, "creation_time", now);
	cJSON_AddStringToObject(a, "last_update_time", now);
	cJSON_AddNullToObject(a, "merged_from_canonical_ids");
	cJSON_AddBoolToObject(a, "local", false);
	return a;
}

/* ------------------------------------------------------------------ hooks */

int cs_id_login(struct cs_request *req, const char *mount_accessor, const char *alias_name,
		const cJSON *alias_meta, char **entity_id)
{
	*entity_id = NULL;
	struct cs_idv v;
	if (cs_idv_open(&v, req->core, &req->txn))
		return 0; /* no identity mount (yet): tokens without an entity */
	if (!alias_name || !*alias_name || !*mount_accessor)
		return 0;
	cJSON *e = NULL, *old = NULL;
	int rc = cs_id_entity_by_alias(&v, mount_accessor, alias_name, &e);
	if (rc == CS_ENOTFOUND) {
		rc = cs_id_entity_new(&v, &e);
		if (!rc) {
			cJSON *a = cs_id_alias_new(cs_id_str(e, "id"), mount_accessor, alias_name);
			if (cJSON_GetArraySize(alias_meta))
				cs_id_set(a, "metadata", cJSON_Duplicate(alias_meta, true));
			cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(e, "aliases"), a);
			rc = cs_id_entity_put(&v, e, NULL);
		}
	} else if (!rc) {
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "disabled"))) {
			cJSON_Delete(e);
			return cs_req_error(req, CS_EPERM, "permission denied");
		}
		/* Vault refreshes the alias's metadata at each login when it changed. */
		cJSON *a;
		cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(e, "aliases"))
		{
			if (strcmp(cs_id_str(a, "mount_accessor"), mount_accessor) != 0 ||
			    strcmp(cs_id_str(a, "name"), alias_name) != 0)
				continue;
			const cJSON *cur = cJSON_GetObjectItemCaseSensitive(a, "metadata");
			bool want = cJSON_GetArraySize(alias_meta) > 0;
			bool have = cJSON_GetArraySize(cur) > 0;
			if (want == have && (!want || cJSON_Compare(cur, alias_meta, true)))
				break;
			old = cJSON_Duplicate(e, true);
			cs_id_set(a, "metadata",
				  want ? cJSON_Duplicate(alias_meta, true) : cJSON_CreateNull());
			char now[64];
			cs_id_now(now);
			cs_id_set(a, "last_update_time", cJSON_CreateString(now));
			rc = cs_id_entity_put(&v, e, old);
			break;
		}
	}
	if (!rc) {
		*entity_id = strdup(cs_id_str(e, "id"));
		if (!*entity_id)
			abort();
	}
	cJSON_Delete(e);
	cJSON_Delete(old);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lower-cased names from `src` into `sv`. */
static void push_policies(struct cs_strv *sv, const cJSON *src)
{
	const cJSON *p;
	cJSON_ArrayForEach(p, src)
	{
		if (!cJSON_IsString(p) || !*p->valuestring)
			continue;
		cs_strv_push(sv, p->valuestring, strlen(p->valuestring));
		for (char *c = sv->v[sv->n - 1]; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c - 'A' + 'a');
	}
}

/* The short form of a group the ACL needs. */
static cJSON *group_brief(const cJSON *g)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", cs_id_str(g, "id"));
	cJSON_AddStringToObject(o, "name", cs_id_str(g, "name"));
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(g, "metadata");
	cJSON_AddItemToObject(o, "metadata",
			      cJSON_IsObject(m) ? cJSON_Duplicate(m, true) : cJSON_CreateObject());
	return o;
}

int cs_id_resolve(struct cs_core *core, struct cs_txn *txn, const char *entity_id, cJSON **out)
{
	return cs_id_resolve_cached(core, txn, entity_id, out);
}

int cs_id_resolve_recorded(struct cs_core *core, struct cs_txn *txn, const char *entity_id,
			   struct cs_id_recording *rec, cJSON **out)
{
	*out = NULL;
	struct cs_idv v;
	if (cs_idv_open(&v, core, txn))
		return 0;
	v.rec = rec;
	cJSON *e = NULL;
	int rc = cs_id_entity_get(&v, entity_id, &e);
	if (rc == CS_ENOTFOUND)
		return 0;
	if (rc)
		return rc;
	cJSON *direct = NULL, *inherited = NULL;
	rc = cs_id_entity_groups(&v, entity_id, &direct, &inherited);
	if (rc) {
		cJSON_Delete(e);
		return rc;
	}
	struct cs_strv pol = {0};
	push_policies(&pol, cJSON_GetObjectItemCaseSensitive(e, "policies"));
	cJSON *groups = cJSON_CreateArray();
	const cJSON *g;
	cJSON_ArrayForEach(g, direct)
	{
		push_policies(&pol, cJSON_GetObjectItemCaseSensitive(g, "policies"));
		cJSON_AddItemToArray(groups, group_brief(g));
	}
	cJSON_ArrayForEach(g, inherited)
	{
		push_policies(&pol, cJSON_GetObjectItemCaseSensitive(g, "policies"));
		cJSON_AddItemToArray(groups, group_brief(g));
	}
	cJSON_Delete(direct);
	cJSON_Delete(inherited);
	if (pol.n)
		qsort(pol.v, pol.n, sizeof *pol.v, cmp_str);
	cJSON *pa = cJSON_CreateArray();
	for (size_t i = 0; i < pol.n; i++)
		/* "root" can never be attached (HCSEC-2024-21); drop it should storage hold it. */
		if ((i == 0 || strcmp(pol.v[i], pol.v[i - 1]) != 0) && strcmp(pol.v[i], "root"))
			cJSON_AddItemToArray(pa, cJSON_CreateString(pol.v[i]));
	cs_strv_free(&pol);

	cJSON *ent = cJSON_CreateObject();
	static const char *keep[] = {"id", "name", "metadata", "disabled"};
	for (size_t i = 0; i < CS_ARRAY_LEN(keep); i++) {
		const cJSON *x = cJSON_GetObjectItemCaseSensitive(e, keep[i]);
		if (x)
			cJSON_AddItemToObject(ent, keep[i], cJSON_Duplicate(x, true));
	}
	cJSON *aliases = cJSON_CreateArray();
	const cJSON *a;
	cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(e, "aliases"))
	{
		cJSON *o = cJSON_CreateObject();
		static const char *ak[] = {"id", "name", "mount_accessor", "metadata",
					   "custom_metadata"};
		for (size_t i = 0; i < CS_ARRAY_LEN(ak); i++) {
			const cJSON *x = cJSON_GetObjectItemCaseSensitive(a, ak[i]);
			if (x)
				cJSON_AddItemToObject(o, ak[i], cJSON_Duplicate(x, true));
		}
		cJSON_AddItemToArray(aliases, o);
	}
	cJSON_AddItemToObject(ent, "aliases", aliases);
	cJSON_Delete(e);
	cJSON *r = cJSON_CreateObject();
	cJSON_AddItemToObject(r, "entity", ent);
	cJSON_AddItemToObject(r, "groups", groups);
	cJSON_AddItemToObject(r, "policies", pa);
	*out = r;
	return 0;
}
