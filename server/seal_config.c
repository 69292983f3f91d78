/* `seal` stanzas: parsing, environment overrides, checks (see seal_config.h). */
#include "server/seal_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/err.h"
#include "lib/hcl.h"
#include "lib/util.h"

const char *cs_seal_kind_name(enum cs_seal_kind k)
{
	switch (k) {
	case CS_SEAL_TRANSIT:
		return "transit";
	case CS_SEAL_PKCS11:
		return "pkcs11";
	default:
		return "shamir";
	}
}

int cs_seal_kind_parse(const char *s)
{
	if (!s)
		return -1;
	if (strcmp(s, "shamir") == 0)
		return CS_SEAL_SHAMIR;
	if (strcmp(s, "transit") == 0)
		return CS_SEAL_TRANSIT;
	if (strcmp(s, "pkcs11") == 0)
		return CS_SEAL_PKCS11;
	return -1;
}

void cs_seal_params_init(struct cs_seal_params *p, enum cs_seal_kind kind)
{
	memset(p, 0, sizeof *p);
	p->kind = kind;
	p->slot = -1;
	p->mechanism = CS_CKM_AES_GCM;
}

static void set(char **dst, const char *v)
{
	if (*dst) {
		cs_zero(*dst, strlen(*dst));
		free(*dst);
	}
	*dst = v ? strdup(v) : NULL;
	if (v && !*dst)
		abort();
}

static int parse_bool(const char *s, bool *out)
{
	if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0 || strcasecmp(s, "t") == 0 ||
	    strcasecmp(s, "TRUE") == 0) {
		*out = true;
		return 0;
	}
	if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0 || strcasecmp(s, "f") == 0 ||
	    strcasecmp(s, "FALSE") == 0) {
		*out = false;
		return 0;
	}
	return CS_EINVAL;
}

static int parse_slot(const char *s, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 0);
	if (end == s || *end || errno || v < 0)
		return CS_EINVAL;
	*out = v;
	return 0;
}

static int parse_mechanism(const char *s, unsigned long *out)
{
	if (strcmp(s, "CKM_AES_GCM") == 0) {
		*out = CS_CKM_AES_GCM;
		return 0;
	}
	if (strcmp(s, "CKM_RSA_PKCS_OAEP") == 0) {
		*out = CS_CKM_RSA_PKCS_OAEP;
		return 0;
	}
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 0);
	if (end != s && !*end && !errno && (v == CS_CKM_AES_GCM || v == CS_CKM_RSA_PKCS_OAEP)) {
		*out = v;
		return 0;
	}
	return CS_EINVAL;
}

/* A scalar's text: strings as written, numbers as their source, booleans as words. */
static const char *scalar(const struct cs_hcl_node *n)
{
	switch (n->type) {
	case CS_HCL_STRING:
	case CS_HCL_NUMBER:
		return n->str;
	case CS_HCL_BOOL:
		return n->b ? "true" : "false";
	default:
		return NULL;
	}
}

/* The string options of each kind, by name. */
struct str_opt {
	const char *name;
	size_t off;
};
#define SOPT(field, name)                                                                          \
	{                                                                                          \
		name, offsetof(struct cs_seal_params, field)                                       \
	}
static const struct str_opt transit_strs[] = {
    SOPT(address, "address"),
    SOPT(token, "token"),
    SOPT(key_name, "key_name"),
    SOPT(mount_path, "mount_path"),
    SOPT(namespace_, "namespace"),
    SOPT(tls_ca_cert, "tls_ca_cert"),
    SOPT(tls_client_cert, "tls_client_cert"),
    SOPT(tls_client_key, "tls_client_key"),
    SOPT(tls_server_name, "tls_server_name"),
};
static const struct str_opt pkcs11_strs[] = {
    SOPT(lib, "lib"),
    SOPT(token_label, "token_label"),
    SOPT(pin, "pin"),
    SOPT(key_label, "key_label"),
};

static int opt(struct cs_seal_params *p, const char *k, const char *v, char *errmsg, size_t errlen)
{
	const struct str_opt *t = p->kind == CS_SEAL_TRANSIT ? transit_strs : pkcs11_strs;
	size_t n = p->kind == CS_SEAL_TRANSIT  ? CS_ARRAY_LEN(transit_strs)
		   : p->kind == CS_SEAL_PKCS11 ? CS_ARRAY_LEN(pkcs11_strs)
					       : 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(k, t[i].name) == 0) {
			set((char **)((char *)p + t[i].off), v);
			return 0;
		}
	bool *b = NULL;
	if (strcmp(k, "disabled") == 0)
		b = &p->disabled;
	else if (p->kind == CS_SEAL_TRANSIT && strcmp(k, "tls_skip_verify") == 0)
		b = &p->tls_skip_verify;
	else if (p->kind == CS_SEAL_TRANSIT && strcmp(k, "disable_renewal") == 0)
		b = &p->disable_renewal;
	else if (p->kind == CS_SEAL_PKCS11 && strcmp(k, "generate_key") == 0)
		b = &p->generate_key;
	if (b) {
		if (parse_bool(v, b)) {
			snprintf(errmsg, errlen, "seal \"%s\": %s: invalid boolean \"%.32s\"",
				 cs_seal_kind_name(p->kind), k, v);
			return CS_EINVAL;
		}
		return 0;
	}
	if (p->kind == CS_SEAL_PKCS11 && strcmp(k, "slot") == 0) {
		if (parse_slot(v, &p->slot)) {
			snprintf(errmsg, errlen, "seal \"pkcs11\": slot: invalid slot \"%.32s\"",
				 v);
			return CS_EINVAL;
		}
		return 0;
	}
	if (p->kind == CS_SEAL_PKCS11 && strcmp(k, "mechanism") == 0) {
		if (parse_mechanism(v, &p->mechanism)) {
			snprintf(errmsg, errlen,
				 "seal \"pkcs11\": mechanism: unsupported \"%.32s\" "
				 "(CKM_AES_GCM or CKM_RSA_PKCS_OAEP)",
				 v);
			return CS_EINVAL;
		}
		return 0;
	}
	snprintf(errmsg, errlen, "unknown key \"%.64s\" in seal \"%s\"", k,
		 cs_seal_kind_name(p->kind));
	return CS_EINVAL;
}

int cs_seal_params_parse(const char *type, const struct cs_hcl_node *body, struct cs_seal_params *p,
			 char *errmsg, size_t errlen, int *errline)
{
	int kind = cs_seal_kind_parse(type);
	*errline = body->line;
	if (kind < 0) {
		snprintf(errmsg, errlen,
			 "unsupported seal type \"%.64s\" (shamir, transit or pkcs11)", type);
		return CS_EINVAL;
	}
	cs_seal_params_init(p, (enum cs_seal_kind)kind);
	p->line = body->line;
	for (const struct cs_hcl_node *m = body->child; m; m = m->next) {
		const char *v = scalar(m);
		*errline = m->line;
		if (!v) {
			snprintf(errmsg, errlen, "seal \"%s\": %.64s must be a string, not %s",
				 type, m->key, cs_hcl_type_name(m->type));
			cs_seal_params_free(p);
			return CS_EINVAL;
		}
		if (opt(p, m->key, v, errmsg, errlen)) {
			cs_seal_params_free(p);
			return CS_EINVAL;
		}
	}
	*errline = body->line;
	return 0;
}

int cs_seal_params_apply_env(struct cs_seal_params *p, const char *(*getenv_fn)(const char *),
			     char *errmsg, size_t errlen)
{
	static const char *const transit_env[][2] = {
	    {"VAULT_ADDR", "address"},
	    {"VAULT_TOKEN", "token"},
	    {"VAULT_TRANSIT_SEAL_KEY_NAME", "key_name"},
	    {"VAULT_TRANSIT_SEAL_MOUNT_PATH", "mount_path"},
	    {"VAULT_NAMESPACE", "namespace"},
	    {"VAULT_TRANSIT_SEAL_DISABLE_RENEWAL", "disable_renewal"},
	    {"VAULT_CACERT", "tls_ca_cert"},
	    {"VAULT_CLIENT_CERT", "tls_client_cert"},
	    {"VAULT_CLIENT_KEY", "tls_client_key"},
	    {"VAULT_TLS_SERVER_NAME", "tls_server_name"},
	    {"VAULT_SKIP_VERIFY", "tls_skip_verify"},
	};
	static const char *const pkcs11_env[][2] = {
	    {"LIB", "lib"},
	    {"SLOT", "slot"},
	    {"TOKEN_LABEL", "token_label"},
	    {"PIN", "pin"},
	    {"KEY_LABEL", "key_label"},
	    {"MECHANISM", "mechanism"},
	    {"GENERATE_KEY", "generate_key"},
	};
	if (p->kind == CS_SEAL_TRANSIT) {
		for (size_t i = 0; i < CS_ARRAY_LEN(transit_env); i++) {
			const char *v = getenv_fn(transit_env[i][0]);
			if (v && *v && opt(p, transit_env[i][1], v, errmsg, errlen))
				return CS_EINVAL;
		}
	} else if (p->kind == CS_SEAL_PKCS11) {
		for (size_t i = 0; i < CS_ARRAY_LEN(pkcs11_env); i++) {
			char name[64];
			snprintf(name, sizeof name, "BAO_HSM_%s", pkcs11_env[i][0]);
			const char *v = getenv_fn(name);
			if (!v || !*v) {
				snprintf(name, sizeof name, "VAULT_HSM_%s", pkcs11_env[i][0]);
				v = getenv_fn(name);
			}
			if (v && *v && opt(p, pkcs11_env[i][1], v, errmsg, errlen))
				return CS_EINVAL;
		}
	}
	return 0;
}

int cs_seal_params_check(struct cs_seal_params *p, char *errmsg, size_t errlen)
{
	if (p->kind == CS_SEAL_TRANSIT) {
		if (!p->address || !*p->address) {
			snprintf(errmsg, errlen,
				 "seal \"transit\": address is required (or VAULT_ADDR)");
			return CS_EINVAL;
		}
		if (strncmp(p->address, "https://", 8) != 0 &&
		    strncmp(p->address, "http://", 7) != 0) {
			snprintf(errmsg, errlen,
				 "seal \"transit\": address must be an http(s):// URL");
			return CS_EINVAL;
		}
		if (!p->key_name || !*p->key_name) {
			snprintf(errmsg, errlen,
				 "seal \"transit\": key_name is required (or "
				 "VAULT_TRANSIT_SEAL_KEY_NAME)");
			return CS_EINVAL;
		}
		if (!p->mount_path || !*p->mount_path)
			set(&p->mount_path, "transit/");
		/* Vault trims the slashes: "transit", "/transit/" and "transit/" are one. */
		char *m = p->mount_path;
		while (*m == '/')
			memmove(m, m + 1, strlen(m));
		size_t l = strlen(m);
		while (l > 0 && m[l - 1] == '/')
			m[--l] = '\0';
		if (!*m || strstr(m, "..") || strpbrk(m, "?#% ")) {
			snprintf(errmsg, errlen, "seal \"transit\": invalid mount_path");
			return CS_EINVAL;
		}
		if (strpbrk(p->key_name, "/?#% ")) {
			snprintf(errmsg, errlen, "seal \"transit\": invalid key_name");
			return CS_EINVAL;
		}
		while ((l = strlen(p->address)) > 0 && p->address[l - 1] == '/')
			p->address[l - 1] = '\0';
		if (!p->tls_client_cert != !p->tls_client_key) {
			snprintf(errmsg, errlen,
				 "seal \"transit\": tls_client_cert and tls_client_key go "
				 "together");
			return CS_EINVAL;
		}
	} else if (p->kind == CS_SEAL_PKCS11) {
		const char *miss = !p->lib || !*p->lib               ? "lib"
				   : !p->pin || !*p->pin             ? "pin"
				   : !p->key_label || !*p->key_label ? "key_label"
								     : NULL;
		if (miss) {
			snprintf(errmsg, errlen, "seal \"pkcs11\": %s is required", miss);
			return CS_EINVAL;
		}
		if (p->slot < 0 && (!p->token_label || !*p->token_label)) {
			snprintf(errmsg, errlen,
				 "seal \"pkcs11\": slot or token_label is required");
			return CS_EINVAL;
		}
	}
	return 0;
}

void cs_seal_params_copy(struct cs_seal_params *dst, const struct cs_seal_params *src)
{
	*dst = *src;
	char **f[] = {
	    &dst->address,         &dst->token,       &dst->key_name,        &dst->mount_path,
	    &dst->namespace_,      &dst->tls_ca_cert, &dst->tls_client_cert, &dst->tls_client_key,
	    &dst->tls_server_name, &dst->lib,         &dst->token_label,     &dst->pin,
	    &dst->key_label};
	for (size_t i = 0; i < CS_ARRAY_LEN(f); i++)
		if (*f[i]) {
			*f[i] = strdup(*f[i]);
			if (!*f[i])
				abort();
		}
}

void cs_seal_params_free(struct cs_seal_params *p)
{
	char **f[] = {&p->address,         &p->token,       &p->key_name,        &p->mount_path,
		      &p->namespace_,      &p->tls_ca_cert, &p->tls_client_cert, &p->tls_client_key,
		      &p->tls_server_name, &p->lib,         &p->token_label,     &p->pin,
		      &p->key_label};
	for (size_t i = 0; i < CS_ARRAY_LEN(f); i++)
		set(f[i], NULL);
	cs_seal_params_init(p, p->kind);
}
