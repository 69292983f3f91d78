/*
 * Shared token_* fields, token issue at login and CIDR checks (see tokenutil.h).
 */
#include "auth/tokenutil.h"

#include "auth/record_codec.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/util.h"

/* ---------------------------------------------------------------- CIDRs */

/* Parse an address into 16 bytes (IPv4 as IPv4-mapped IPv6). *v4 tells which. */
static bool parse_addr(const char *s, size_t n, uint8_t out[16], bool *v4)
{
	char buf[64];
	if (n == 0 || n >= sizeof buf)
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	struct in_addr a4;
	if (inet_pton(AF_INET, buf, &a4) == 1) {
		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &a4, 4);
		*v4 = true;
		return true;
	}
	if (inet_pton(AF_INET6, buf, out) == 1) {
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		*v4 = memcmp(out, mapped, 12) == 0;
		return true;
	}
	return false;
}

/* "a.b.c.d[/n]" or "x::y[/n]" → 16 bytes + prefix length in the 128-bit space. */
static bool parse_cidr(const char *cidr, uint8_t net[16], int *bits)
{
	const char *slash = strchr(cidr, '/');
	size_t n = slash ? (size_t)(slash - cidr) : strlen(cidr);
	bool v4 = false;
	if (!parse_addr(cidr, n, net, &v4))
		return false;
	int max = v4 ? 32 : 128;
	long pl = max;
	if (slash) {
		char *end = NULL;
		if (!slash[1] || slash[1] == '-' || slash[1] == '+')
			return false;
		pl = strtol(slash + 1, &end, 10);
		if (*end || pl < 0 || pl > max)
			return false;
	}
	*bits = (int)pl + (v4 ? 96 : 0);
	return true;
}

bool cs_tokenutil_cidr_valid(const char *cidr)
{
	uint8_t net[16];
	int bits;
	return cidr && parse_cidr(cidr, net, &bits);
}

/* The address part of "host:port", "[v6]:port", a bare v4 or a bare v6 address. */
static bool remote_addr(const char *remote, uint8_t out[16])
{
	bool v4;
	const char *p = remote;
	size_t n;
	if (*p == '[') {
		const char *end = strchr(p, ']');
		if (!end)
			return false;
		p++;
		n = (size_t)(end - p);
	} else {
		const char *colon = strchr(p, ':');
		if (colon && !strchr(colon + 1, ':'))
			n = (size_t)(colon - p); /* v4 with a port */
		else
			n = strlen(p); /* bare v4 or v6 */
	}
	return parse_addr(p, n, out, &v4);
}

bool cs_tokenutil_cidr_match(const char *cidr, const char *remote)
{
	uint8_t net[16], addr[16];
	int bits;
	if (!cidr || !remote || !parse_cidr(cidr, net, &bits) || !remote_addr(remote, addr))
		return false;
	int full = bits / 8, rest = bits % 8;
	if (memcmp(net, addr, (size_t)full) != 0)
		return false;
	if (rest) {
		uint8_t mask = (uint8_t)(0xff << (8 - rest));
		if ((net[full] & mask) != (addr[full] & mask))
			return false;
	}
	return true;
}

bool cs_tokenutil_cidr_within(const char *inner, const char *outer)
{
	uint8_t in[16], out[16];
	int ib, ob;
	if (!inner || !outer || !parse_cidr(inner, in, &ib) || !parse_cidr(outer, out, &ob))
		return false;
	if (ib < ob)
		return false;
	int full = ob / 8, rest = ob % 8;
	if (memcmp(in, out, (size_t)full) != 0)
		return false;
	if (rest) {
		uint8_t mask = (uint8_t)(0xff << (8 - rest));
		if ((in[full] & mask) != (out[full] & mask))
			return false;
	}
	return true;
}

bool cs_tokenutil_cidr_list_ok(const cJSON *list, const char *remote)
{
	if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0)
		return true;
	const cJSON *v;
	cJSON_ArrayForEach(v, list)
	{
		if (cJSON_IsString(v) && cs_tokenutil_cidr_match(v->valuestring, remote))
			return true;
	}
	return false;
}

const char *cs_tokenutil_remote(const struct cs_request *req)
{
	return cs_req_remote_addr(req);
}

int cs_tokenutil_check_cidrs(struct cs_request *req, const cJSON *list, const char *field)
{
	const cJSON *c;
	cJSON_ArrayForEach(c, list)
	{
		if (!cJSON_IsString(c) || !cs_tokenutil_cidr_valid(c->valuestring))
			return cs_req_error(req, CS_EINVAL, "invalid CIDR block in \"%s\": %s",
					    field, cJSON_IsString(c) ? c->valuestring : "?");
	}
	return 0;
}

/* ---------------------------------------------------------------- shared helpers */

double cs_tokenutil_num(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

const char *cs_tokenutil_str(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : "";
}

void cs_tokenutil_set(cJSON *o, const char *name, cJSON *item)
{
	cJSON_DeleteItemFromObjectCaseSensitive(o, name);
	cJSON_AddItemToObject(o, name, item);
}

void cs_tokenutil_hmac_hex(const uint8_t *key, size_t key_len, const char *value, char out[65])
{
	uint8_t mac[32];
	cs_hmac_sha256(key, key_len, value, strlen(value), mac);
	cs_hex_encode(mac, 32, out);
	cs_zero(mac, sizeof mac);
}

int cs_tokenutil_txn_get_json(struct cs_txn *txn, const char *key, cJSON **out)
{
	*out = NULL;
	struct cs_buf b = CS_BUF_INIT;
	int rc = cs_txn_get(txn, key, &b);
	if (!rc)
		rc = cs_record_decode(key, b.data, b.len, out);
	cs_buf_free_secure(&b);
	return rc;
}

int cs_tokenutil_txn_put_json(struct cs_txn *txn, const char *key, const cJSON *o)
{
	struct cs_buf b = CS_BUF_INIT;
	int rc = cs_record_encode(key, o, &b);
	if (!rc)
		rc = cs_txn_put(txn, key, b.data, b.len);
	cs_buf_free_secure(&b);
	return rc;
}

int cs_tokenutil_get_opt(struct cs_request *req, const char *key, cJSON **out)
{
	*out = NULL;
	int rc = cs_view_get_json(req, key, out);
	if (rc == CS_ENOTFOUND) {
		*out = NULL;
		return 0;
	}
	return rc;
}

int cs_tokenutil_reply_keys(struct cs_request *req, int rc, struct cs_strv *keys)
{
	if (!rc && keys->n == 0)
		rc = CS_ENOTFOUND;
	if (!rc) {
		cJSON *d = cJSON_CreateObject();
		cJSON *a = cJSON_AddArrayToObject(d, "keys");
		for (size_t i = 0; i < keys->n; i++)
			cJSON_AddItemToArray(a, cJSON_CreateString(keys->v[i]));
		cs_req_set_data(req, d);
	}
	cs_strv_free(keys);
	return rc;
}

/* ---------------------------------------------------------------- token_* fields */

static void set_num(cJSON *o, const char *name, double v)
{
	cs_tokenutil_set(o, name, cJSON_CreateNumber(v));
}

/* The request's value for `name`, else its deprecated alias. */
static const cJSON *field(const struct cs_request *req, const char *name, const char *alias)
{
	const cJSON *v = cs_req_get(req, name);
	if (!v && alias)
		v = cs_req_get(req, alias);
	return v;
}

/* Policies trimmed, lower-cased and de-duplicated, as Vault stores them. */
static cJSON *clean_policies(const cJSON *in)
{
	cJSON *out = cJSON_CreateArray();
	const cJSON *v;
	cJSON_ArrayForEach(v, in)
	{
		if (!cJSON_IsString(v))
			continue;
		char buf[256];
		const char *s = v->valuestring;
		while (*s == ' ')
			s++;
		snprintf(buf, sizeof buf, "%s", s);
		size_t n = strlen(buf);
		while (n && buf[n - 1] == ' ')
			buf[--n] = '\0';
		for (char *c = buf; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c - 'A' + 'a');
		if (!*buf)
			continue;
		bool dup = false;
		const cJSON *w;
		cJSON_ArrayForEach(w, out) dup |= strcmp(w->valuestring, buf) == 0;
		if (!dup)
			cJSON_AddItemToArray(out, cJSON_CreateString(buf));
	}
	return out;
}

int cs_tokenutil_update(struct cs_request *req, cJSON *entry, bool is_new)
{
	static const struct {
		const char *name, *alias;
	} durations[] = {{"token_ttl", "ttl"},
			 {"token_max_ttl", "max_ttl"},
			 {"token_period", "period"},
			 {"token_explicit_max_ttl", NULL}};
	const cJSON *v;
	if ((v = field(req, "token_policies", "policies")))
		cs_tokenutil_set(entry, "token_policies", clean_policies(v));
	else if (is_new)
		cs_tokenutil_set(entry, "token_policies", cJSON_CreateArray());
	for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++) {
		if ((v = field(req, durations[i].name, durations[i].alias))) {
			if (!cJSON_IsNumber(v) || v->valuedouble < 0)
				return cs_req_error(req, CS_EINVAL, "\"%s\" cannot be negative",
						    durations[i].name);
			set_num(entry, durations[i].name, v->valuedouble);
		} else if (is_new) {
			set_num(entry, durations[i].name, 0);
		}
	}
	if ((v = field(req, "token_num_uses", NULL))) {
		if (!cJSON_IsNumber(v) || v->valuedouble < 0)
			return cs_req_error(req, CS_EINVAL,
					    "\"token_num_uses\" cannot be negative");
		set_num(entry, "token_num_uses", v->valuedouble);
	} else if (is_new) {
		set_num(entry, "token_num_uses", 0);
	}
	if ((v = field(req, "token_type", NULL))) {
		static const char *types[] = {"default", "service", "batch", "default-service",
					      "default-batch"};
		bool ok = false;
		for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
			ok |= cJSON_IsString(v) && strcmp(v->valuestring, types[i]) == 0;
		if (!ok)
			return cs_req_error(req, CS_EINVAL, "invalid 'token_type' value %s",
					    cJSON_IsString(v) ? v->valuestring : "?");
		cs_tokenutil_set(entry, "token_type", cJSON_CreateString(v->valuestring));
	} else if (is_new) {
		cs_tokenutil_set(entry, "token_type", cJSON_CreateString("default"));
	}
	if ((v = field(req, "token_no_default_policy", NULL)))
		cs_tokenutil_set(entry, "token_no_default_policy",
				 cJSON_CreateBool(cJSON_IsTrue(v)));
	else if (is_new)
		cs_tokenutil_set(entry, "token_no_default_policy", cJSON_CreateFalse());
	if ((v = field(req, "token_bound_cidrs", "bound_cidrs"))) {
		int rc = cs_tokenutil_check_cidrs(req, v, "token_bound_cidrs");
		if (rc)
			return rc;
		cs_tokenutil_set(entry, "token_bound_cidrs", cJSON_Duplicate(v, true));
	} else if (is_new) {
		cs_tokenutil_set(entry, "token_bound_cidrs", cJSON_CreateArray());
	}

	double ttl = cs_tokenutil_num(entry, "token_ttl"),
	       max = cs_tokenutil_num(entry, "token_max_ttl");
	if (max > 0 && ttl > max)
		return cs_req_error(req, CS_EINVAL,
				    "\"token_ttl\" value must be less than \"token_max_ttl\"");
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(entry, "token_type");
	bool batch = cJSON_IsString(type) && (strcmp(type->valuestring, "batch") == 0 ||
					      strcmp(type->valuestring, "default-batch") == 0);
	if (batch && cs_tokenutil_num(entry, "token_period") > 0)
		return cs_req_error(req, CS_EINVAL,
				    "'token_type' cannot be 'batch' or 'default_batch' when set to "
				    "generate periodic tokens");
	if (batch && cs_tokenutil_num(entry, "token_num_uses") > 0)
		return cs_req_error(req, CS_EINVAL,
				    "'token_type' cannot be 'batch' or 'default_batch' when set to "
				    "generate tokens with limited use count");
	return 0;
}

void cs_tokenutil_read(const cJSON *entry, cJSON *out)
{
	static const char *nums[] = {"token_ttl", "token_max_ttl", "token_period",
				     "token_explicit_max_ttl", "token_num_uses"};
	for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
		cJSON_AddNumberToObject(out, nums[i], cs_tokenutil_num(entry, nums[i]));
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(entry, "token_policies");
	cJSON_AddItemToObject(out, "token_policies",
			      v ? cJSON_Duplicate(v, true) : cJSON_CreateArray());
	cJSON_AddItemToObject(out, "policies", v ? cJSON_Duplicate(v, true) : cJSON_CreateArray());
	v = cJSON_GetObjectItemCaseSensitive(entry, "token_bound_cidrs");
	cJSON_AddItemToObject(out, "token_bound_cidrs",
			      v ? cJSON_Duplicate(v, true) : cJSON_CreateArray());
	v = cJSON_GetObjectItemCaseSensitive(entry, "token_type");
	cJSON_AddStringToObject(out, "token_type", cJSON_IsString(v) ? v->valuestring : "default");
	cJSON_AddBoolToObject(
	    out, "token_no_default_policy",
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(entry, "token_no_default_policy")));
}

/* ---------------------------------------------------------------- issue */

cJSON *cs_tokenutil_params(const cJSON *entry, const cJSON *meta, const char *display_name,
			   const char *path)
{
	cJSON *p = cJSON_CreateObject();
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(entry, "token_policies");
	cJSON_AddItemToObject(p, "policies", v ? cJSON_Duplicate(v, true) : cJSON_CreateArray());
	cJSON_AddBoolToObject(
	    p, "no_default_policy",
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(entry, "token_no_default_policy")));
	cJSON_AddNumberToObject(p, "ttl", cs_tokenutil_num(entry, "token_ttl"));
	cJSON_AddNumberToObject(p, "max_ttl", cs_tokenutil_num(entry, "token_max_ttl"));
	cJSON_AddNumberToObject(p, "period", cs_tokenutil_num(entry, "token_period"));
	cJSON_AddNumberToObject(p, "explicit_max_ttl",
				cs_tokenutil_num(entry, "token_explicit_max_ttl"));
	cJSON_AddNumberToObject(p, "num_uses", cs_tokenutil_num(entry, "token_num_uses"));
	v = cJSON_GetObjectItemCaseSensitive(entry, "token_type");
	bool batch = cJSON_IsString(v) && (strcmp(v->valuestring, "batch") == 0 ||
					   strcmp(v->valuestring, "default-batch") == 0);
	cJSON_AddStringToObject(p, "type", batch ? "batch" : "service");
	cJSON_AddBoolToObject(p, "renewable", true);
	v = cJSON_GetObjectItemCaseSensitive(entry, "token_bound_cidrs");
	cJSON_AddItemToObject(p, "bound_cidrs", v ? cJSON_Duplicate(v, true) : cJSON_CreateArray());
	if (cJSON_IsObject(meta))
		cJSON_AddItemToObject(p, "meta", cJSON_Duplicate(meta, true));
	cJSON_AddStringToObject(p, "display_name", display_name);
	cJSON_AddStringToObject(p, "path", path);
	return p;
}

int cs_tokenutil_issue(struct cs_request *req, const cJSON *entry, const cJSON *meta,
		       const char *display, const char *path)
{
	return cs_tokenutil_issue_alias(req, entry, meta, display, path, NULL, NULL);
}

int cs_tokenutil_issue_alias(struct cs_request *req, const cJSON *entry, const cJSON *meta,
			     const char *display, const char *path, const char *alias_name,
			     const cJSON *alias_meta)
{
	/* Vault: "<mount path without auth/ and trailing slash>-<display name>". */
	char dn[256];
	const char *mp = cs_req_mount_path(req) ? cs_req_mount_path(req) : "auth/";
	if (strncmp(mp, "auth/", 5) == 0)
		mp += 5;
	size_t ml = strlen(mp);
	if (ml && mp[ml - 1] == '/')
		ml--;
	for (size_t i = 0; i < ml && i < sizeof dn - 1; i++)
		dn[i] = mp[i] == '/' ? '-' : mp[i];
	dn[ml < sizeof dn - 1 ? ml : sizeof dn - 1] = '\0';
	if (display && *display) {
		size_t n = strlen(dn);
		snprintf(dn + n, sizeof dn - n, "-%s", display);
	}
	cJSON *params = cs_tokenutil_params(entry, meta, dn, path);
	if (alias_name && *alias_name) {
		cJSON *a = cJSON_AddObjectToObject(params, "alias");
		cJSON_AddStringToObject(a, "name", alias_name);
		if (cJSON_IsObject(alias_meta))
			cJSON_AddItemToObject(a, "metadata", cJSON_Duplicate(alias_meta, true));
	}
	int rc = cs_req_issue_token(req, params);
	cJSON_Delete(params);
	return rc;
}
