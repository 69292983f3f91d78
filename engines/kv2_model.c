/*
 * The pure half of KV version 2 (see kv2.h): the key metadata and mount config codecs,
 * versions and their deletion times, check-and-set, JSON merge patch, subkeys and the
 * versions list of delete/undelete/destroy. No storage and no clock unless given, so the
 * unit tests drive them directly; the handlers in kv2.c build on them.
 */
#include "engines/kv2.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/util.h"

/* ------------------------------------------------------------------ pure helpers */

void cs_kv2_meta_init(struct cs_kv2_meta *m)
{
	memset(m, 0, sizeof *m);
}

void cs_kv2_meta_free(struct cs_kv2_meta *m)
{
	cJSON_Delete(m->custom);
	free(m->v);
	if (m->inline_data) /* a secret */
		cs_zero(m->inline_data, m->inline_len);
	free(m->inline_data);
	memset(m, 0, sizeof *m);
}

static void add_ns(cJSON *o, const char *k, int64_t ns)
{
	char buf[32];
	snprintf(buf, sizeof buf, "%lld", (long long)ns);
	cJSON_AddStringToObject(o, k, buf);
}

static int64_t get_ns(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (cJSON_IsString(v))
		return strtoll(v->valuestring, NULL, 10);
	return 0;
}

static double get_num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

cJSON *cs_kv2_meta_encode(const struct cs_kv2_meta *m)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "current_version", (double)m->current_version);
	cJSON_AddNumberToObject(o, "oldest_version", (double)m->oldest_version);
	add_ns(o, "created_time", m->created_ns);
	add_ns(o, "updated_time", m->updated_ns);
	cJSON_AddNumberToObject(o, "max_versions", (double)m->max_versions);
	cJSON_AddBoolToObject(o, "cas_required", m->cas_required);
	cJSON_AddNumberToObject(o, "delete_version_after", (double)m->delete_version_after);
	if (m->custom)
		cJSON_AddItemToObject(o, "custom_metadata", cJSON_Duplicate(m->custom, true));
	cJSON *a = cJSON_AddArrayToObject(o, "versions");
	for (size_t i = 0; i < m->n; i++) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddNumberToObject(e, "v", (double)m->v[i].num);
		add_ns(e, "c", m->v[i].created_ns);
		add_ns(e, "d", m->v[i].deletion_ns);
		cJSON_AddBoolToObject(e, "x", m->v[i].destroyed);
		cJSON_AddItemToArray(a, e);
	}
	return o;
}

static struct cs_kv2_version *push_version(struct cs_kv2_meta *m)
{
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 8;
		struct cs_kv2_version *v = realloc(m->v, cap * sizeof *v);
		if (!v)
			abort();
		m->v = v;
		m->cap = cap;
	}
	struct cs_kv2_version *e = &m->v[m->n++];
	memset(e, 0, sizeof *e);
	return e;
}

int cs_kv2_meta_decode(const cJSON *j, struct cs_kv2_meta *m)
{
	cs_kv2_meta_init(m);
	if (!cJSON_IsObject(j))
		return CS_EIO;
	m->current_version = (uint64_t)get_num(j, "current_version");
	m->oldest_version = (uint64_t)get_num(j, "oldest_version");
	m->created_ns = get_ns(j, "created_time");
	m->updated_ns = get_ns(j, "updated_time");
	m->max_versions = (uint32_t)get_num(j, "max_versions");
	m->cas_required = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "cas_required"));
	m->delete_version_after = (int64_t)get_num(j, "delete_version_after");
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "custom_metadata");
	if (cJSON_IsObject(c))
		m->custom = cJSON_Duplicate(c, true);
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "versions");
	if (a && !cJSON_IsArray(a)) {
		cs_kv2_meta_free(m);
		return CS_EIO;
	}
	const cJSON *e;
	cJSON_ArrayForEach(e, a)
	{
		if (!cJSON_IsObject(e)) {
			cs_kv2_meta_free(m);
			return CS_EIO;
		}
		struct cs_kv2_version *v = push_version(m);
		v->num = (uint64_t)get_num(e, "v");
		v->created_ns = get_ns(e, "c");
		v->deletion_ns = get_ns(e, "d");
		v->destroyed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "x"));
	}
	return 0;
}

/* ------------------------------------------------------------------ compact record */

static void put_uv(struct cs_buf *b, uint64_t v)
{
	uint8_t t[10];
	size_t n = 0;
	do {
		t[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			t[n] |= 0x80;
		n++;
	} while (v);
	cs_buf_append(b, t, n);
}

static void put_sv(struct cs_buf *b, int64_t v)
{
	put_uv(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

struct rd {
	const uint8_t *p, *end;
	bool bad;
};

static uint64_t get_uv(struct rd *r)
{
	uint64_t v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (r->p >= r->end) {
			r->bad = true;
			return 0;
		}
		uint8_t c = *r->p++;
		v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80))
			return v;
	}
	r->bad = true; /* more than 10 bytes */
	return 0;
}

static int64_t get_sv(struct rd *r)
{
	uint64_t u = get_uv(r);
	return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

/* A length followed by that many bytes; NULL (and r->bad) when they are not all there. */
static const uint8_t *get_bytes(struct rd *r, size_t *len)
{
	uint64_t n = get_uv(r);
	if (r->bad || n > (uint64_t)(r->end - r->p)) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *b = r->p;
	r->p += n;
	*len = (size_t)n;
	return b;
}

void cs_kv2_meta_pack(const struct cs_kv2_meta *m, struct cs_buf *out)
{
	uint8_t ver = CS_KV2_REC_V1;
	cs_buf_append(out, &ver, 1);
	put_uv(out, m->current_version);
	put_uv(out, m->oldest_version);
	put_sv(out, m->created_ns);
	put_sv(out, m->updated_ns);
	put_uv(out, m->max_versions);
	put_uv(out, m->cas_required ? 1 : 0);
	put_sv(out, m->delete_version_after);
	char *custom = m->custom ? cJSON_PrintUnformatted(m->custom) : NULL;
	size_t cl = custom ? strlen(custom) : 0;
	put_uv(out, cl);
	cs_buf_append(out, custom, cl);
	free(custom);
	put_uv(out, m->n);
	for (size_t i = 0; i < m->n; i++) {
		put_uv(out, m->v[i].num);
		put_sv(out, m->v[i].created_ns);
		put_sv(out, m->v[i].deletion_ns);
		put_uv(out, m->v[i].destroyed ? 1 : 0);
	}
	put_uv(out, m->inline_data ? m->inline_num : 0);
	put_uv(out, m->inline_data ? m->inline_len : 0);
	if (m->inline_data)
		cs_buf_append(out, m->inline_data, m->inline_len);
}

int cs_kv2_meta_unpack(const void *buf, size_t len, struct cs_kv2_meta *m)
{
	cs_kv2_meta_init(m);
	const uint8_t *b = buf;
	if (len == 0)
		return CS_EIO;
	if (b[0] == '{') { /* the JSON record of earlier releases */
		cJSON *j = cJSON_ParseWithLength((const char *)buf, len);
		int rc = cs_kv2_meta_decode(j, m);
		cJSON_Delete(j);
		m->legacy = rc == 0;
		return rc;
	}
	if (b[0] != CS_KV2_REC_V1)
		return CS_EIO;
	struct rd r = {b + 1, b + len, false};
	m->current_version = get_uv(&r);
	m->oldest_version = get_uv(&r);
	m->created_ns = get_sv(&r);
	m->updated_ns = get_sv(&r);
	uint64_t mv = get_uv(&r);
	m->max_versions = mv > UINT32_MAX ? UINT32_MAX : (uint32_t)mv;
	m->cas_required = get_uv(&r) & 1;
	m->delete_version_after = get_sv(&r);
	size_t cl = 0;
	const uint8_t *custom = get_bytes(&r, &cl);
	if (custom && cl) {
		m->custom = cJSON_ParseWithLength((const char *)custom, cl);
		if (!cJSON_IsObject(m->custom))
			r.bad = true;
	}
	uint64_t n = r.bad ? 0 : get_uv(&r);
	/* Each version takes at least 4 bytes: a count beyond the record is malformed. */
	if (n > (uint64_t)(r.end - r.p) / 4)
		r.bad = true;
	for (uint64_t i = 0; !r.bad && i < n; i++) {
		struct cs_kv2_version *v = push_version(m);
		v->num = get_uv(&r);
		v->created_ns = get_sv(&r);
		v->deletion_ns = get_sv(&r);
		v->destroyed = get_uv(&r) & 1;
	}
	uint64_t inum = r.bad ? 0 : get_uv(&r);
	size_t il = 0;
	const uint8_t *idata = r.bad ? NULL : get_bytes(&r, &il);
	if (!r.bad && r.p != r.end)
		r.bad = true; /* trailing bytes */
	if (r.bad) {
		cs_kv2_meta_free(m);
		return CS_EIO;
	}
	if (inum) {
		m->inline_num = inum;
		m->inline_len = il;
		m->inline_data = malloc(il + 1);
		if (!m->inline_data)
			abort();
		memcpy(m->inline_data, idata, il);
		m->inline_data[il] = '\0';
	}
	return 0;
}

struct cs_kv2_version *cs_kv2_meta_find(struct cs_kv2_meta *m, uint64_t num)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].num == num)
			return &m->v[i];
	return NULL;
}

cJSON *cs_kv2_config_encode(const struct cs_kv2_config *c)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "max_versions", (double)c->max_versions);
	cJSON_AddBoolToObject(o, "cas_required", c->cas_required);
	cJSON_AddNumberToObject(o, "delete_version_after", (double)c->delete_version_after);
	return o;
}

void cs_kv2_config_decode(const cJSON *j, struct cs_kv2_config *c)
{
	memset(c, 0, sizeof *c);
	c->max_versions = (uint32_t)get_num(j, "max_versions");
	c->cas_required = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "cas_required"));
	c->delete_version_after = (int64_t)get_num(j, "delete_version_after");
}

bool cs_kv2_version_deleted(const struct cs_kv2_version *v, int64_t now_ns)
{
	return v->deletion_ns != 0 && v->deletion_ns < now_ns;
}

int cs_kv2_cas_check(bool has_cas, int64_t cas, uint64_t current_version, bool required,
		     const char **msg)
{
	if (has_cas) {
		if (cas < 0 || (uint64_t)cas != current_version) {
			*msg = "check-and-set parameter did not match the current version";
			return CS_EINVAL;
		}
		return 0;
	}
	if (required) {
		*msg = "check-and-set parameter required for this call";
		return CS_EINVAL;
	}
	return 0;
}

bool cs_kv2_deletion_time(int64_t created_ns, int64_t mount_dva, int64_t meta_dva, int64_t *out_ns)
{
	if (mount_dva == CS_KV2_DVA_DISABLED)
		return false;
	if (mount_dva == 0 && meta_dva == 0)
		return false;
	int64_t min = meta_dva;
	if ((mount_dva != 0 && mount_dva < min) || min == 0)
		min = mount_dva;
	*out_ns = created_ns + min * 1000000000LL;
	return true;
}

struct cs_kv2_version *cs_kv2_add_version(struct cs_kv2_meta *m, int64_t created_ns,
					  int64_t deletion_ns, uint32_t config_max,
					  uint64_t **pruned, size_t *n_pruned)
{
	*pruned = NULL;
	*n_pruned = 0;
	m->current_version++;
	struct cs_kv2_version *nv = push_version(m);
	nv->num = m->current_version;
	nv->created_ns = created_ns;
	nv->deletion_ns = deletion_ns;
	m->updated_ns = created_ns;
	if (m->created_ns == 0)
		m->created_ns = created_ns;

	uint32_t max = m->max_versions > config_max ? m->max_versions : config_max;
	if (max == 0)
		max = CS_KV2_DEFAULT_MAX_VERSIONS;
	if (m->current_version - m->oldest_version < max)
		return nv;
	/* The window slides: everything up to `cut` goes (possibly several versions when
	 * max_versions was lowered since the last write). */
	uint64_t cut = m->current_version - max;
	size_t keep = 0;
	for (size_t i = 0; i < m->n; i++) {
		if (m->v[i].num <= cut) {
			uint64_t *p = realloc(*pruned, (*n_pruned + 1) * sizeof *p);
			if (!p)
				abort();
			*pruned = p;
			p[(*n_pruned)++] = m->v[i].num;
		} else {
			m->v[keep++] = m->v[i];
		}
	}
	m->n = keep;
	m->oldest_version = cut + 1;
	return &m->v[m->n - 1];
}

cJSON *cs_kv2_merge_patch(const cJSON *target, const cJSON *patch)
{
	if (!cJSON_IsObject(patch))
		return cJSON_Duplicate(patch, true);
	cJSON *res = cJSON_IsObject(target) ? cJSON_Duplicate(target, true) : cJSON_CreateObject();
	const cJSON *p;
	cJSON_ArrayForEach(p, patch)
	{
		if (cJSON_IsNull(p)) {
			cJSON_DeleteItemFromObjectCaseSensitive(res, p->string);
			continue;
		}
		cJSON *cur = cJSON_GetObjectItemCaseSensitive(res, p->string);
		cJSON *merged = cs_kv2_merge_patch(cur, p);
		if (cur)
			cJSON_ReplaceItemInObjectCaseSensitive(res, p->string, merged);
		else
			cJSON_AddItemToObject(res, p->string, merged);
	}
	return res;
}

static void subkeys_walk(cJSON *obj, int cur, int max)
{
	cJSON *c = obj->child;
	while (c) {
		cJSON *next = c->next;
		if (cJSON_IsObject(c) && c->child && (max == 0 || cur + 1 <= max))
			subkeys_walk(c, cur + 1, max);
		else {
			/* Move the key name over: the replacement takes the same slot. */
			cJSON *null = cJSON_CreateNull();
			null->string = c->string;
			null->type |= c->type & cJSON_StringIsConst;
			c->string = NULL;
			cJSON_ReplaceItemViaPointer(obj, c, null);
		}
		c = next;
	}
}

void cs_kv2_subkeys(cJSON *data, int depth)
{
	if (cJSON_IsObject(data))
		subkeys_walk(data, 1, depth < 0 ? 0 : depth);
}

static int push_u64(uint64_t **out, size_t *n, uint64_t v)
{
	uint64_t *p = realloc(*out, (*n + 1) * sizeof *p);
	if (!p)
		abort();
	*out = p;
	p[(*n)++] = v;
	return 0;
}

static int parse_uint(const char *s, uint64_t *v)
{
	while (*s == ' ')
		s++;
	if (*s < '0' || *s > '9')
		return CS_EINVAL;
	char *end;
	unsigned long long x = strtoull(s, &end, 10);
	while (*end == ' ')
		end++;
	if (*end)
		return CS_EINVAL;
	*v = x;
	return 0;
}

int cs_kv2_parse_versions(const cJSON *v, uint64_t **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	uint64_t x;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (cJSON_IsNumber(v)) {
		if (v->valuedouble < 0 || v->valuedouble != (double)(int64_t)v->valuedouble)
			return CS_EINVAL;
		return push_u64(out, n, (uint64_t)v->valuedouble);
	}
	if (cJSON_IsString(v)) {
		char *dup = strdup(v->valuestring), *save = NULL;
		int rc = 0;
		for (char *t = strtok_r(dup, ",", &save); t && !rc; t = strtok_r(NULL, ",", &save))
			rc = parse_uint(t, &x) ? CS_EINVAL : push_u64(out, n, x);
		free(dup);
		if (rc) {
			free(*out);
			*out = NULL;
			*n = 0;
		}
		return rc;
	}
	if (!cJSON_IsArray(v))
		return CS_EINVAL;
	const cJSON *e;
	cJSON_ArrayForEach(e, v)
	{
		if (cJSON_IsNumber(e) && e->valuedouble >= 0 &&
		    e->valuedouble == (double)(int64_t)e->valuedouble) {
			push_u64(out, n, (uint64_t)e->valuedouble);
		} else if (cJSON_IsString(e) && parse_uint(e->valuestring, &x) == 0) {
			push_u64(out, n, x);
		} else {
			free(*out);
			*out = NULL;
			*n = 0;
			return CS_EINVAL;
		}
	}
	return 0;
}
