/*
 * The compact record codec (see record_codec.h for the format). Decoding reads stored
 * bytes, so it is written for hostile input: every length is checked against what is
 * left, varints are at most 10 bytes, strings may not hold NUL, and any inconsistency is
 * CS_EIO (tests/fuzz/fuzz_record_codec.c).
 */
#include "auth/record_codec.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/util.h"

enum enc {
	ENC_NULL = 0,
	ENC_FALSE = 1,
	ENC_TRUE = 2,
	ENC_INT = 3,     /* varint: zigzag(n) << 1 | ms (the number is n, or n / 1000.0) */
	ENC_STR = 4,     /* varint length, bytes */
	ENC_HEX32 = 5,   /* 32 bytes: a 64-character lowercase hex string */
	ENC_DERIVED = 6, /* no payload: follows from the key and earlier members */
	ENC_JSON = 7,    /* varint length, JSON text */
};

enum kind { K_NONE, K_TOKEN, K_ACCESSOR, K_LEASE };

/* The key prefixes of CS_TOKEN_ID_PREFIX, CS_TOKEN_ACCESSOR_PREFIX (auth/token_internal.h)
 * and CS_EXPIRE_PREFIX (auth/expire.h), spelled out: this codec is a helper shared by the
 * token store and tokenutil and includes neither (scripts/check-layers.py);
 * test_record_codec checks that they agree. */
#define TOKEN_ID_PREFIX       "sys/token/id/"
#define TOKEN_ACCESSOR_PREFIX "sys/token/accessor/"
#define EXPIRE_PREFIX         "sys/expire/id/"

/* Field ids are positions + 1 in these lists (at most 31 names: the id has 5 bits). The
 * lists are part of the format: only ever append. */
static const char *const token_fields[] = {"key",          "accessor",     "policies",
					   "path",         "display_name", "meta",
					   "num_uses",     "bound_cidrs",  "creation_time",
					   "creation_ttl", "expire_time",  "explicit_max_ttl",
					   "period",       "max_ttl",      "orphan",
					   "parent",       "type",         "renewable",
					   "lease_id",     "entity_id",    NULL};
static const char *const accessor_fields[] = {"token_key", "accessor", NULL};
static const char *const lease_fields[] = {
    "lease_id",  "path",      "issue_time",  "expire_time",  "last_renewal",
    "renewable", "token_key", "secret_type", "internal",     "max_expire",
    "owner_key", "attempts",  "irrevocable", "revoke_error", NULL};

#define GENERIC_ID 0
#define MAX_ID     31

static const char *const *fields_of(enum kind k)
{
	switch (k) {
	case K_TOKEN:
		return token_fields;
	case K_ACCESSOR:
		return accessor_fields;
	case K_LEASE:
		return lease_fields;
	default:
		return NULL;
	}
}

static bool has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

/* The kind of record under `key`, and the context derivations use (the part of the key
 * after the prefix: a token's key hex, a lease id). */
static enum kind kind_of(const char *key, const char **ctx)
{
	*ctx = "";
	if (!key)
		return K_NONE;
	if (has_prefix(key, TOKEN_ID_PREFIX)) {
		*ctx = key + strlen(TOKEN_ID_PREFIX);
		return K_TOKEN;
	}
	if (has_prefix(key, TOKEN_ACCESSOR_PREFIX))
		return K_ACCESSOR;
	if (has_prefix(key, EXPIRE_PREFIX)) {
		*ctx = key + strlen(EXPIRE_PREFIX);
		return K_LEASE;
	}
	return K_NONE;
}

bool cs_record_compact_key(const char *key)
{
	const char *ctx;
	return kind_of(key, &ctx) != K_NONE;
}

bool cs_record_is_compact(const void *val, size_t n)
{
	return n > 0 && ((const uint8_t *)val)[0] == CS_RECORD_V1;
}

static int field_id(const char *const *names, const char *name)
{
	for (int i = 0; names[i]; i++)
		if (strcmp(names[i], name) == 0)
			return i + 1;
	return GENERIC_ID;
}

/* ---------------------------------------------------------------- derivations */

/* The string member `name` among o's members before `stop` (NULL: all), or NULL. */
static const char *earlier_str(const cJSON *o, const cJSON *stop, const char *name)
{
	for (const cJSON *m = o->child; m && m != stop; m = m->next)
		if (m->string && strcmp(m->string, name) == 0)
			return cJSON_IsString(m) ? m->valuestring : NULL;
	return NULL;
}

/*
 * The value member `name` would have if it is derived, into out (malloc'd), given the
 * members of `o` before `stop`; NULL when the field has no derivation here. A token's key
 * is its storage key and its lease id path + "/" + key; a lease's id is its storage key,
 * and a token lease's path and token_key are the parts of the id around its last '/'.
 */
static char *derive(enum kind k, const char *ctx, const cJSON *o, const cJSON *stop,
		    const char *name)
{
	if (k == K_TOKEN && strcmp(name, "key") == 0)
		return strdup(ctx);
	if (k == K_TOKEN && strcmp(name, "lease_id") == 0) {
		const char *path = earlier_str(o, stop, "path");
		if (!path)
			return NULL;
		size_t pl = strlen(path), cl = strlen(ctx);
		char *s = malloc(pl + 1 + cl + 1);
		if (!s)
			return NULL;
		memcpy(s, path, pl);
		s[pl] = '/';
		memcpy(s + pl + 1, ctx, cl + 1);
		return s;
	}
	if (k == K_LEASE && strcmp(name, "lease_id") == 0)
		return strdup(ctx);
	const char *slash = k == K_LEASE ? strrchr(ctx, '/') : NULL;
	if (slash && strcmp(name, "path") == 0)
		return strndup(ctx, (size_t)(slash - ctx));
	if (slash && strcmp(name, "token_key") == 0)
		return strdup(slash + 1);
	return NULL;
}

/* ---------------------------------------------------------------- encoding */

static void put_varint(struct cs_buf *b, uint64_t v)
{
	while (v >= 0x80) {
		cs_buf_put_u8(b, (uint8_t)(v | 0x80));
		v >>= 7;
	}
	cs_buf_put_u8(b, (uint8_t)v);
}

static void put_bytes(struct cs_buf *b, const void *p, size_t n)
{
	put_varint(b, n);
	cs_buf_append(b, p, n);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static bool is_hex64(const char *s)
{
	size_t i = 0;
	for (; s[i] && i < 64; i++)
		if (hexval(s[i]) < 0)
			return false;
	return i == 64 && s[64] == '\0';
}

/* Whole numbers up to 2^53 go as varints: exactly what a double holds; so do times in
 * milliseconds (the expiration manager's now_ms() / 1000.0), when n / 1000.0 gives back
 * the very same double. */
static bool as_int(double d, int64_t *v, bool *ms)
{
	const double lim = 9007199254740992.0;
	/* Range first: converting an out-of-range double to an integer is undefined. */
	if (!(d >= -lim && d <= lim) || (d == 0 && signbit(d)))
		return false;
	*ms = false;
	if ((double)(int64_t)d == d) {
		*v = (int64_t)d;
		return true;
	}
	if (!(d > -lim / 1024 && d < lim / 1024))
		return false;
	double x = d * 1000.0;
	int64_t m = (int64_t)(x < 0 ? x - 0.5 : x + 0.5);
	if ((double)m / 1000.0 != d)
		return false;
	*v = m;
	*ms = true;
	return true;
}

static int encode_member(enum kind k, const char *ctx, const cJSON *o, const cJSON *m,
			 struct cs_buf *out)
{
	int id = field_id(fields_of(k), m->string);
	enum enc e;
	int64_t iv = 0;
	bool ms = false;
	char *derived = NULL;
	if (cJSON_IsNull(m)) {
		e = ENC_NULL;
	} else if (cJSON_IsFalse(m)) {
		e = ENC_FALSE;
	} else if (cJSON_IsTrue(m)) {
		e = ENC_TRUE;
	} else if (cJSON_IsNumber(m) && as_int(m->valuedouble, &iv, &ms)) {
		e = ENC_INT;
	} else if (cJSON_IsString(m)) {
		derived = id != GENERIC_ID ? derive(k, ctx, o, m, m->string) : NULL;
		if (derived && strcmp(derived, m->valuestring) == 0)
			e = ENC_DERIVED;
		else if (is_hex64(m->valuestring))
			e = ENC_HEX32;
		else
			e = ENC_STR;
		free(derived);
	} else {
		e = ENC_JSON;
	}
	cs_buf_put_u8(out, (uint8_t)(id << 3 | e));
	if (id == GENERIC_ID)
		put_bytes(out, m->string, strlen(m->string));
	switch (e) {
	case ENC_INT:
		put_varint(out, (iv < 0 ? ~((uint64_t)iv << 1) : (uint64_t)iv << 1) << 1 | ms);
		break;
	case ENC_STR:
		put_bytes(out, m->valuestring, strlen(m->valuestring));
		break;
	case ENC_HEX32:
		for (int i = 0; i < 32; i++)
			cs_buf_put_u8(out, (uint8_t)(hexval(m->valuestring[2 * i]) << 4 |
						     hexval(m->valuestring[2 * i + 1])));
		break;
	case ENC_JSON: {
		char *s = cJSON_PrintUnformatted(m);
		if (!s)
			return CS_ENOMEM;
		put_bytes(out, s, strlen(s));
		cs_zero(s, strlen(s));
		free(s);
		break;
	}
	default:
		break;
	}
	return 0;
}

int cs_record_encode(const char *key, const cJSON *o, struct cs_buf *out)
{
	if (!cJSON_IsObject(o))
		return CS_EINVAL;
	const char *ctx;
	enum kind k = kind_of(key, &ctx);
	if (k == K_NONE) {
		char *s = cJSON_PrintUnformatted(o);
		if (!s)
			return CS_ENOMEM;
		cs_buf_append(out, s, strlen(s));
		cs_zero(s, strlen(s));
		free(s);
		return 0;
	}
	cs_buf_put_u8(out, CS_RECORD_V1);
	for (const cJSON *m = o->child; m; m = m->next) {
		if (!m->string)
			return CS_EINVAL;
		int rc = encode_member(k, ctx, o, m, out);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---------------------------------------------------------------- decoding */

static bool get_varint(struct cs_reader *r, uint64_t *v)
{
	uint64_t x = 0;
	for (int shift = 0; shift < 70; shift += 7) {
		uint8_t c = cs_read_u8(r);
		if (r->err)
			return false;
		if (shift == 63 && c > 1)
			return false; /* more than 64 bits */
		x |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*v = x;
			return true;
		}
	}
	return false;
}

/* A length-prefixed byte string without NUL, copied and NUL-terminated (malloc'd). */
static char *get_str(struct cs_reader *r)
{
	uint64_t n;
	if (!get_varint(r, &n) || n > r->left)
		return NULL;
	const uint8_t *p = cs_read_bytes(r, (size_t)n);
	if (!p || memchr(p, 0, (size_t)n))
		return NULL;
	char *s = malloc((size_t)n + 1);
	if (!s)
		return NULL;
	memcpy(s, p, (size_t)n);
	s[n] = '\0';
	return s;
}

static void free_wiped(char *s)
{
	if (s) {
		cs_zero(s, strlen(s));
		free(s);
	}
}

static cJSON *decode_value(enum kind k, const char *ctx, const cJSON *o, const char *name,
			   enum enc e, struct cs_reader *r)
{
	static const char hex[] = "0123456789abcdef";
	switch (e) {
	case ENC_NULL:
		return cJSON_CreateNull();
	case ENC_FALSE:
		return cJSON_CreateFalse();
	case ENC_TRUE:
		return cJSON_CreateTrue();
	case ENC_INT: {
		uint64_t u;
		if (!get_varint(r, &u))
			return NULL;
		bool ms = u & 1;
		u >>= 1;
		int64_t v = (int64_t)(u >> 1);
		if (u & 1)
			v = -v - 1;
		return cJSON_CreateNumber(ms ? (double)v / 1000.0 : (double)v);
	}
	case ENC_STR: {
		char *s = get_str(r);
		cJSON *v = s ? cJSON_CreateString(s) : NULL;
		free_wiped(s);
		return v;
	}
	case ENC_HEX32: {
		const uint8_t *p = cs_read_bytes(r, 32);
		if (!p)
			return NULL;
		char s[65];
		for (int i = 0; i < 32; i++) {
			s[2 * i] = hex[p[i] >> 4];
			s[2 * i + 1] = hex[p[i] & 15];
		}
		s[64] = '\0';
		return cJSON_CreateString(s);
	}
	case ENC_DERIVED: {
		char *s = derive(k, ctx, o, NULL, name);
		cJSON *v = s ? cJSON_CreateString(s) : NULL;
		free(s);
		return v;
	}
	case ENC_JSON: {
		uint64_t n;
		if (!get_varint(r, &n) || n > r->left)
			return NULL;
		const char *p = (const char *)cs_read_bytes(r, (size_t)n);
		const char *end = NULL;
		cJSON *v = p ? cJSON_ParseWithLengthOpts(p, (size_t)n, &end, false) : NULL;
		if (v && end != p + n) { /* trailing bytes: not what we wrote */
			cJSON_Delete(v);
			v = NULL;
		}
		return v;
	}
	}
	return NULL;
}

int cs_record_decode(const char *key, const void *val, size_t n, cJSON **out)
{
	*out = NULL;
	if (!cs_record_is_compact(val, n)) {
		*out = cJSON_ParseWithLength(val, n);
		return *out ? 0 : CS_EIO;
	}
	const char *ctx;
	enum kind k = kind_of(key, &ctx);
	const char *const *names = fields_of(k);
	if (!names)
		return CS_EIO; /* compact bytes under a key of no known kind */
	size_t nnames = 0;
	while (names[nnames])
		nnames++;
	struct cs_reader r = {.p = (const uint8_t *)val + 1, .left = n - 1};
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return CS_ENOMEM;
	while (r.left > 0) {
		uint8_t tag = cs_read_u8(&r);
		int id = tag >> 3;
		enum enc e = (enum enc)(tag & 7);
		char *generic = NULL;
		const char *name;
		if (id == GENERIC_ID) {
			if (!(generic = get_str(&r)))
				goto bad;
			name = generic;
		} else if ((size_t)id <= nnames) {
			name = names[id - 1];
		} else {
			goto bad;
		}
		cJSON *v = decode_value(k, ctx, o, name, e, &r);
		if (!v) {
			free_wiped(generic);
			goto bad;
		}
		cJSON_AddItemToObject(o, name, v);
		free_wiped(generic);
	}
	*out = o;
	return 0;
bad:
	cJSON_Delete(o);
	return CS_EIO;
}
