#include "server/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"

void cs_router_init(struct cs_router *r)
{
	r->mounts = NULL;
	r->n = 0;
}

void cs_router_clear(struct cs_router *r)
{
	for (size_t i = 0; i < r->n; i++)
		cs_mount_free(r->mounts[i]);
	free(r->mounts);
	cs_router_init(r);
}

struct cs_mount *cs_router_match(const struct cs_router *r, const char *path)
{
	size_t pl = strlen(path);
	/* Longest first: the first hit is the longest prefix. */
	for (size_t i = 0; i < r->n; i++) {
		struct cs_mount *m = r->mounts[i];
		size_t ml = strlen(m->path);
		if (pl >= ml && memcmp(path, m->path, ml) == 0)
			return m;
		/* "secret" routes to "secret/". */
		if (pl + 1 == ml && memcmp(path, m->path, pl) == 0)
			return m;
	}
	return NULL;
}

struct cs_mount *cs_router_get(const struct cs_router *r, const char *mount_path)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->mounts[i]->path, mount_path) == 0)
			return r->mounts[i];
	return NULL;
}

void cs_router_add(struct cs_router *r, struct cs_mount *m)
{
	struct cs_mount **v = realloc(r->mounts, (r->n + 1) * sizeof *v);
	if (!v)
		abort();
	r->mounts = v;
	size_t ml = strlen(m->path), i = r->n;
	while (i > 0 && strlen(v[i - 1]->path) < ml) {
		v[i] = v[i - 1];
		i--;
	}
	v[i] = m;
	r->n++;
}

void cs_router_remove(struct cs_router *r, struct cs_mount *m)
{
	for (size_t i = 0; i < r->n; i++) {
		if (r->mounts[i] != m)
			continue;
		memmove(&r->mounts[i], &r->mounts[i + 1], (r->n - i - 1) * sizeof *r->mounts);
		r->n--;
		cs_mount_free(m);
		return;
	}
}

struct cs_mount *cs_mount_new(const char *path, const char *type, bool is_auth)
{
	struct cs_mount *m = calloc(1, sizeof *m);
	if (!m)
		abort();
	m->path = strdup(path);
	m->type = strdup(type);
	m->description = strdup("");
	m->listing_visibility = strdup("");
	m->is_auth = is_auth;
	m->refs = 1;
	cs_uuid(m->uuid);
	uint8_t r[4];
	char hex[9];
	cs_random(r, sizeof r);
	cs_hex_encode(r, sizeof r, hex);
	snprintf(m->accessor, sizeof m->accessor, "%s%s_%s", is_auth ? "auth_" : "", type, hex);
	size_t n = strlen(m->uuid) + 16;
	m->storage_prefix = malloc(n);
	snprintf(m->storage_prefix, n, "%s/%s/", is_auth ? "auth" : "logical", m->uuid);
	m->backend = cs_backend_find(type, is_auth);
	return m;
}

void cs_mount_bind_backend(struct cs_mount *m)
{
	const struct cs_backend *b = cs_backend_find(m->type, m->is_auth);
	if (b && b->variant)
		b = b->variant(m->options);
	if (b)
		m->backend = b;
}

void cs_mount_hold(struct cs_mount *m)
{
	m->refs++;
}

bool cs_router_has(const struct cs_router *r, const struct cs_mount *m)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->mounts[i] == m)
			return true;
	return false;
}

void cs_mount_free(struct cs_mount *m)
{
	if (!m || --m->refs > 0)
		return;
	free(m->path);
	free(m->type);
	free(m->description);
	free(m->storage_prefix);
	free(m->listing_visibility);
	cJSON_Delete(m->options);
	free(m);
}

cJSON *cs_mount_to_json(const struct cs_mount *m, int64_t sys_default_ttl, int64_t sys_max_ttl)
{
	cJSON *e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "accessor", m->accessor);
	cJSON *c = cJSON_AddObjectToObject(e, "config");
	cJSON_AddNumberToObject(
	    c, "default_lease_ttl",
	    (double)(m->default_lease_ttl ? m->default_lease_ttl : sys_default_ttl));
	cJSON_AddNumberToObject(c, "max_lease_ttl",
				(double)(m->max_lease_ttl ? m->max_lease_ttl : sys_max_ttl));
	cJSON_AddBoolToObject(c, "force_no_cache", m->force_no_cache);
	if (m->listing_visibility && *m->listing_visibility)
		cJSON_AddStringToObject(c, "listing_visibility", m->listing_visibility);
	cJSON_AddStringToObject(e, "description", m->description);
	cJSON_AddBoolToObject(e, "external_entropy_access", false);
	cJSON_AddBoolToObject(e, "local", m->local);
	if (m->options)
		cJSON_AddItemToObject(e, "options", cJSON_Duplicate(m->options, true));
	else
		cJSON_AddNullToObject(e, "options");
	cJSON_AddStringToObject(e, "plugin_version", "");
	cJSON_AddStringToObject(e, "running_plugin_version", "v" CUSTOS_VERSION "+builtin");
	cJSON_AddStringToObject(e, "running_sha256", "");
	cJSON_AddBoolToObject(e, "seal_wrap", m->seal_wrap);
	cJSON_AddStringToObject(e, "type", m->type);
	cJSON_AddStringToObject(e, "uuid", m->uuid);
	cJSON_AddStringToObject(e, "deprecation_status", "supported");
	return e;
}

/* Stored entry: what the table needs to rebuild a mount (Vault's MountEntry names). */
static cJSON *stored_entry(const struct cs_mount *m)
{
	cJSON *e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "table", m->is_auth ? "auth" : "mounts");
	cJSON_AddStringToObject(e, "path", m->path);
	cJSON_AddStringToObject(e, "type", m->type);
	cJSON_AddStringToObject(e, "description", m->description);
	cJSON_AddStringToObject(e, "uuid", m->uuid);
	cJSON_AddStringToObject(e, "accessor", m->accessor);
	cJSON *c = cJSON_AddObjectToObject(e, "config");
	cJSON_AddNumberToObject(c, "default_lease_ttl", (double)m->default_lease_ttl);
	cJSON_AddNumberToObject(c, "max_lease_ttl", (double)m->max_lease_ttl);
	cJSON_AddBoolToObject(c, "force_no_cache", m->force_no_cache);
	cJSON_AddStringToObject(c, "listing_visibility", m->listing_visibility);
	if (m->options)
		cJSON_AddItemToObject(e, "options", cJSON_Duplicate(m->options, true));
	cJSON_AddBoolToObject(e, "local", m->local);
	cJSON_AddBoolToObject(e, "seal_wrap", m->seal_wrap);
	return e;
}

cJSON *cs_router_table_json(const struct cs_router *r, bool auth)
{
	cJSON *t = cJSON_CreateObject();
	cJSON_AddStringToObject(t, "type", auth ? "auth" : "mounts");
	cJSON *entries = cJSON_AddArrayToObject(t, "entries");
	for (size_t i = 0; i < r->n; i++)
		if (r->mounts[i]->is_auth == auth)
			cJSON_AddItemToArray(entries, stored_entry(r->mounts[i]));
	return t;
}

static const char *str_field(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int cs_router_load_table(struct cs_router *r, const cJSON *table, bool auth)
{
	const cJSON *entries = cJSON_GetObjectItemCaseSensitive(table, "entries");
	const cJSON *e;
	cJSON_ArrayForEach(e, entries)
	{
		const char *path = str_field(e, "path"), *type = str_field(e, "type");
		const char *uuid = str_field(e, "uuid"), *acc = str_field(e, "accessor");
		if (!path || !type || !uuid || !acc || strlen(uuid) != 36)
			return CS_EIO;
		struct cs_mount *m = cs_mount_new(path, type, auth);
		memcpy(m->uuid, uuid, 37);
		snprintf(m->accessor, sizeof m->accessor, "%s", acc);
		snprintf(m->storage_prefix, strlen(m->uuid) + 16, "%s/%s/",
			 auth ? "auth" : "logical", m->uuid);
		const char *d = str_field(e, "description");
		if (d) {
			free(m->description);
			m->description = strdup(d);
		}
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "config");
		const cJSON *v;
		if ((v = cJSON_GetObjectItemCaseSensitive(c, "default_lease_ttl")) &&
		    cJSON_IsNumber(v))
			m->default_lease_ttl = (int64_t)v->valuedouble;
		if ((v = cJSON_GetObjectItemCaseSensitive(c, "max_lease_ttl")) && cJSON_IsNumber(v))
			m->max_lease_ttl = (int64_t)v->valuedouble;
		m->force_no_cache =
		    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "force_no_cache"));
		const char *lv = str_field(c, "listing_visibility");
		if (lv) {
			free(m->listing_visibility);
			m->listing_visibility = strdup(lv);
		}
		const cJSON *o = cJSON_GetObjectItemCaseSensitive(e, "options");
		if (cJSON_IsObject(o))
			m->options = cJSON_Duplicate(o, true);
		cs_mount_bind_backend(m);
		m->local = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "local"));
		m->seal_wrap = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "seal_wrap"));
		if (!m->backend && strcmp(path, "sys/") != 0) {
			cs_warn("router: mount %s has unknown type %s; not routed", path, type);
			cs_mount_free(m);
			continue;
		}
		cs_router_add(r, m);
	}
	return 0;
}
