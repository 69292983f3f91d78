/*
 * Server configuration: walk the HCL tree of each file into struct cs_config, checking
 * every key, type and value as we go so each error carries the line it came from.
 *
 * Loading is two-phased so a directory of files behaves like one file: each file is
 * applied on top of what earlier files set (scalars override, listeners append), then
 * the whole-config checks (a storage block exists, at least one listener) and the
 * derived defaults run once at the end.
 */
#include "server/config.h"

#include "lib/err.h"
#include "lib/hcl.h"
#include "lib/log.h"
#include "lib/util.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_ADDRESS "127.0.0.1:8200"

struct ctx {
	struct cs_config *c;
	const char *file;
	char *errmsg;
	size_t errlen;
	bool seen_storage; /* in this file: Vault permits one storage block per file */
};

static int fail(struct ctx *x, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct ctx *x, int line, const char *fmt, ...)
{
	if (!x->errmsg || !x->errlen)
		return CS_EINVAL;
	int n = snprintf(x->errmsg, x->errlen, "%s:%d: ", x->file, line);
	if (n >= 0 && (size_t)n < x->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(x->errmsg + n, x->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return CS_EINVAL;
}

static void set_str(char **dst, const char *v)
{
	char *s = strdup(v);
	if (!s)
		abort();
	free(*dst);
	*dst = s;
}

static void listener_defaults(struct cs_listener_config *l)
{
	memset(l, 0, sizeof *l);
	l->tls_min_version = TLS1_2_VERSION;
	l->max_request_size = CS_DEFAULT_MAX_REQUEST_SIZE;
	l->disable_unauthed_rekey_endpoints = true;
}

void cs_config_init(struct cs_config *c)
{
	memset(c, 0, sizeof *c);
	for (int i = 0; i < CS_MAX_LISTENERS; i++)
		listener_defaults(&c->listeners[i]);
	c->log_level = CS_LOG_INFO;
	c->default_lease_ttl = CS_DEFAULT_LEASE_TTL;
	c->periodic_interval = 60;
	c->max_lease_ttl = CS_DEFAULT_LEASE_TTL;
	c->snapshot_spool_reserve_percent = CS_DEFAULT_SPOOL_RESERVE_PERCENT;
}

void cs_config_free(struct cs_config *c)
{
	free(c->storage_path);
	free(c->node_id);
	for (int i = 0; i < c->n_retry_join; i++) {
		struct cs_retry_join *r = &c->retry_join[i];
		free(r->leader_api_addr);
		free(r->leader_ca_cert);
		free(r->leader_client_cert);
		if (r->leader_client_key) {
			cs_zero(r->leader_client_key, strlen(r->leader_client_key));
			free(r->leader_client_key);
		}
		free(r->leader_tls_servername);
	}
	for (int i = 0; i < CS_MAX_LISTENERS; i++) {
		free(c->listeners[i].address);
		free(c->listeners[i].cluster_address);
		free(c->listeners[i].tls_cert_file);
		free(c->listeners[i].tls_key_file);
		free(c->listeners[i].cluster_ca_cert_file);
		free(c->listeners[i].cluster_ca_key_file);
	}
	free(c->api_addr);
	free(c->cluster_addr);
	free(c->cluster_name);
	free(c->snapshot_spool_dir);
	free(c->dev_root_token_id);
	for (int i = 0; i < c->n_seals; i++)
		cs_seal_params_free(&c->seals[i]);
	memset(c, 0, sizeof *c);
}

/* ------------------------------------------------------------------ values */

static int want_string(struct ctx *x, const struct cs_hcl_node *n, const char *what, char **dst)
{
	if (n->type != CS_HCL_STRING)
		return fail(x, n->line, "%s must be a string, not %s", what,
			    cs_hcl_type_name(n->type));
	set_str(dst, n->str);
	return 0;
}

static int want_bool(struct ctx *x, const struct cs_hcl_node *n, const char *what, bool *dst)
{
	if (n->type == CS_HCL_BOOL) {
		*dst = n->b;
		return 0;
	}
	if (n->type != CS_HCL_STRING)
		return fail(x, n->line, "%s must be a boolean, not %s", what,
			    cs_hcl_type_name(n->type));
	if (strcmp(n->str, "true") == 0 || strcmp(n->str, "1") == 0)
		*dst = true;
	else if (strcmp(n->str, "false") == 0 || strcmp(n->str, "0") == 0)
		*dst = false;
	else
		return fail(x, n->line, "%s: invalid boolean \"%.64s\" (true or false)", what,
			    n->str);
	return 0;
}

/* An integer, written as a number or as a numeric string. */
static int want_int(struct ctx *x, const struct cs_hcl_node *n, const char *what, int64_t *dst)
{
	const char *s;
	if (n->type == CS_HCL_NUMBER)
		s = n->str;
	else if (n->type == CS_HCL_STRING)
		s = n->str;
	else
		return fail(x, n->line, "%s must be a number, not %s", what,
			    cs_hcl_type_name(n->type));
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (end == s || *end || errno)
		return fail(x, n->line, "%s: invalid integer \"%.64s\"", what, s);
	*dst = v;
	return 0;
}

/* Seconds as a number, or a duration string ("768h", "90s", "3600"). */
static int want_duration(struct ctx *x, const struct cs_hcl_node *n, const char *what, int64_t *dst)
{
	if (n->type == CS_HCL_NUMBER) {
		if (!n->is_int || n->num < 0)
			return fail(x, n->line, "%s: invalid duration %s", what, n->str);
		return want_int(x, n, what, dst);
	}
	if (n->type != CS_HCL_STRING)
		return fail(x, n->line, "%s must be a duration, not %s", what,
			    cs_hcl_type_name(n->type));
	if (cs_parse_duration(n->str, dst))
		return fail(x, n->line, "%s: invalid duration \"%.64s\"", what, n->str);
	return 0;
}

/*
 * "host:port" with a non-empty host (an IPv6 host in brackets) and a decimal port in
 * 0-65535. Returns the port or -1.
 */
static long address_port(const char *a)
{
	const char *colon = strrchr(a, ':');
	if (!colon || colon == a)
		return -1;
	if (a[0] == '[' && colon[-1] != ']')
		return -1;
	if (a[0] != '[' && memchr(a, ':', (size_t)(colon - a)))
		return -1; /* bare IPv6 without brackets is ambiguous */
	const char *p = colon + 1;
	size_t n = strlen(p);
	if (n == 0 || n > 5)
		return -1;
	long port = 0;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		port = port * 10 + (*p - '0');
	}
	return port > 65535 ? -1 : port;
}

static int want_address(struct ctx *x, const struct cs_hcl_node *n, const char *what, char **dst)
{
	if (n->type != CS_HCL_STRING)
		return fail(x, n->line, "%s must be a string, not %s", what,
			    cs_hcl_type_name(n->type));
	if (address_port(n->str) < 0)
		return fail(x, n->line, "%s: invalid address \"%.128s\" (expected host:port)", what,
			    n->str);
	set_str(dst, n->str);
	return 0;
}

/*
 * A block key's value holds one member per type label: `listener "tcp" {...}` arrives as
 * listener = { tcp = {...} }. JSON configs may also write a list of such objects, or a
 * list of bodies under the label; both mean repeated blocks. `fn` gets each body.
 */
typedef int (*block_fn)(struct ctx *x, const char *type, const struct cs_hcl_node *body, int line);

static int each_block(struct ctx *x, const struct cs_hcl_node *n, const char *name, block_fn fn)
{
	if (n->type == CS_HCL_LIST) {
		for (const struct cs_hcl_node *e = n->child; e; e = e->next) {
			int rc = each_block(x, e, name, fn);
			if (rc)
				return rc;
		}
		return 0;
	}
	if (n->type != CS_HCL_OBJECT)
		return fail(x, n->line, "%s must be a block, not %s", name,
			    cs_hcl_type_name(n->type));
	if (!n->child)
		return fail(x, n->line, "%s block needs a type, as in %s \"%s\" { ... }", name,
			    name,
			    strcmp(name, "storage") == 0 ? "raft"
			    : strcmp(name, "seal") == 0  ? "transit"
							 : "tcp");
	for (const struct cs_hcl_node *t = n->child; t; t = t->next) {
		if (t->type == CS_HCL_LIST) {
			for (const struct cs_hcl_node *e = t->child; e; e = e->next) {
				if (e->type != CS_HCL_OBJECT)
					return fail(x, e->line, "%s \"%.64s\" must be a block",
						    name, t->key);
				int rc = fn(x, t->key, e, e->line);
				if (rc)
					return rc;
			}
			continue;
		}
		if (t->type != CS_HCL_OBJECT)
			return fail(x, t->line, "%s \"%.64s\" must be a block, not %s", name,
				    t->key, cs_hcl_type_name(t->type));
		/* Report the block at its keyword's line when the label shares it. */
		int rc = fn(x, t->key, t, t->line);
		if (rc)
			return rc;
	}
	return 0;
}

/* ------------------------------------------------------------------ blocks */

/* A *_file key: the file's contents replace the inline value. */
static int want_file(struct ctx *x, const struct cs_hcl_node *n, const char *what, char **dst)
{
	char *path = NULL;
	int rc = want_string(x, n, what, &path);
	if (rc)
		return rc;
	char *text = NULL;
	size_t len = 0;
	int e = cs_read_file(path, &text, &len);
	if (e) {
		rc = fail(x, n->line, "%s: cannot read %.256s: %s", what, path, strerror(e));
		free(path);
		return rc;
	}
	free(path);
	if (*dst) {
		cs_zero(*dst, strlen(*dst));
		free(*dst);
	}
	*dst = text; /* NUL-terminated by cs_read_file */
	return 0;
}

static int retry_join_block(struct ctx *x, const struct cs_hcl_node *body)
{
	struct cs_config *c = x->c;
	if (body->type != CS_HCL_OBJECT)
		return fail(x, body->line, "retry_join must be a block, not %s",
			    cs_hcl_type_name(body->type));
	if (c->n_retry_join >= CS_MAX_RETRY_JOIN)
		return fail(x, body->line, "too many retry_join blocks (at most %d)",
			    CS_MAX_RETRY_JOIN);
	struct cs_retry_join *r = &c->retry_join[c->n_retry_join++];
	for (const struct cs_hcl_node *m = body->child; m; m = m->next) {
		const char *k = m->key;
		int rc;
		if (strcmp(k, "leader_api_addr") == 0)
			rc = want_string(x, m, k, &r->leader_api_addr);
		else if (strcmp(k, "leader_ca_cert") == 0)
			rc = want_string(x, m, k, &r->leader_ca_cert);
		else if (strcmp(k, "leader_ca_cert_file") == 0)
			rc = want_file(x, m, k, &r->leader_ca_cert);
		else if (strcmp(k, "leader_client_cert") == 0)
			rc = want_string(x, m, k, &r->leader_client_cert);
		else if (strcmp(k, "leader_client_cert_file") == 0)
			rc = want_file(x, m, k, &r->leader_client_cert);
		else if (strcmp(k, "leader_client_key") == 0)
			rc = want_string(x, m, k, &r->leader_client_key);
		else if (strcmp(k, "leader_client_key_file") == 0)
			rc = want_file(x, m, k, &r->leader_client_key);
		else if (strcmp(k, "leader_tls_servername") == 0)
			rc = want_string(x, m, k, &r->leader_tls_servername);
		else if (strcmp(k, "auto_join") == 0 || strcmp(k, "auto_join_scheme") == 0 ||
			 strcmp(k, "auto_join_port") == 0)
			rc = fail(x, m->line,
				  "retry_join: %s (cloud auto-join) is not supported; "
				  "list the leaders with leader_api_addr",
				  k);
		else
			rc = fail(x, m->line, "unknown key \"%.64s\" in retry_join", k);
		if (rc)
			return rc;
	}
	const char *a = r->leader_api_addr;
	if (!a || (strncmp(a, "http://", 7) != 0 && strncmp(a, "https://", 8) != 0))
		return fail(x, body->line,
			    "retry_join: leader_api_addr must be an http:// or https:// URL");
	r->line = body->line; /* the http:// check waits for the whole storage block */
	return 0;
}

static int storage_block(struct ctx *x, const char *type, const struct cs_hcl_node *body, int line)
{
	struct cs_config *c = x->c;
	if (strcmp(type, "raft") != 0)
		return fail(x, line, "unsupported storage type \"%.64s\" (only \"raft\")", type);
	if (x->seen_storage)
		return fail(x, line, "only one storage block is permitted");
	x->seen_storage = true;
	const struct cs_hcl_node *path = NULL;
	for (const struct cs_hcl_node *m = body->child; m; m = m->next) {
		int rc;
		if (strcmp(m->key, "path") == 0) {
			rc = want_string(x, m, "storage path", &c->storage_path);
			path = m;
		} else if (strcmp(m->key, "node_id") == 0) {
			rc = want_string(x, m, "storage node_id", &c->node_id);
		} else if (strcmp(m->key, "retry_join") == 0) {
			if (m->type == CS_HCL_LIST) {
				rc = 0;
				for (const struct cs_hcl_node *e = m->child; e && !rc; e = e->next)
					rc = retry_join_block(x, e);
			} else {
				rc = retry_join_block(x, m);
			}
		} else if (strcmp(m->key, "performance_multiplier") == 0) {
			int64_t v = 0;
			rc = want_int(x, m, "performance_multiplier", &v);
			if (!rc && (v < 0 || v > 10))
				rc = fail(x, m->line,
					  "performance_multiplier must be between 0 and 10");
			if (!rc)
				c->raft_performance_multiplier = (int)v;
		} else if (strcmp(m->key, "retry_join_as_non_voter") == 0) {
			rc =
			    want_bool(x, m, "retry_join_as_non_voter", &c->retry_join_as_non_voter);
		} else if (strcmp(m->key, "unsafe_allow_plaintext_join") == 0) {
			rc = want_bool(x, m, "unsafe_allow_plaintext_join",
				       &c->unsafe_allow_plaintext_join);
		} else {
			rc = fail(x, m->line, "unknown key \"%.64s\" in storage", m->key);
		}
		if (rc)
			return rc;
	}
	if (!path || !*path->str)
		return fail(x, path ? path->line : line, "storage \"raft\" requires a path");
	/* The join challenge, its answer and the node's certificate cross this connection:
	 * https with the leader's certificate verified, unless explicitly waived. */
	for (int i = 0; i < c->n_retry_join && !c->unsafe_allow_plaintext_join; i++)
		if (strncmp(c->retry_join[i].leader_api_addr, "https://", 8) != 0)
			return fail(x, c->retry_join[i].line,
				    "retry_join: leader_api_addr must be an https:// URL (http:// "
				    "is allowed only with unsafe_allow_plaintext_join = true, for "
				    "tests on a trusted network)");
	return 0;
}

static int listener_block(struct ctx *x, const char *type, const struct cs_hcl_node *body, int line)
{
	struct cs_config *c = x->c;
	if (strcmp(type, "tcp") != 0)
		return fail(x, line, "unsupported listener type \"%.64s\" (only \"tcp\")", type);
	if (c->n_listeners >= CS_MAX_LISTENERS)
		return fail(x, line, "too many listeners (at most %d)", CS_MAX_LISTENERS);
	struct cs_listener_config *l = &c->listeners[c->n_listeners++];
	for (const struct cs_hcl_node *m = body->child; m; m = m->next) {
		const char *k = m->key;
		int rc;
		int64_t v = 0;
		if (strcmp(k, "address") == 0) {
			rc = want_address(x, m, "address", &l->address);
		} else if (strcmp(k, "cluster_address") == 0) {
			rc = want_address(x, m, "cluster_address", &l->cluster_address);
		} else if (strcmp(k, "tls_disable") == 0) {
			rc = want_bool(x, m, "tls_disable", &l->tls_disable);
		} else if (strcmp(k, "tls_cert_file") == 0) {
			rc = want_string(x, m, "tls_cert_file", &l->tls_cert_file);
		} else if (strcmp(k, "tls_key_file") == 0) {
			rc = want_string(x, m, "tls_key_file", &l->tls_key_file);
		} else if (strcmp(k, "cluster_ca_cert_file") == 0) {
			rc = want_string(x, m, k, &l->cluster_ca_cert_file);
		} else if (strcmp(k, "cluster_ca_key_file") == 0) {
			rc = want_string(x, m, k, &l->cluster_ca_key_file);
		} else if (strcmp(k, "tls_min_version") == 0) {
			if (m->type != CS_HCL_STRING)
				rc = fail(x, m->line, "tls_min_version must be a string, not %s",
					  cs_hcl_type_name(m->type));
			else if (strcmp(m->str, "tls12") == 0)
				rc = 0, l->tls_min_version = TLS1_2_VERSION;
			else if (strcmp(m->str, "tls13") == 0)
				rc = 0, l->tls_min_version = TLS1_3_VERSION;
			else
				rc = fail(x, m->line,
					  "tls_min_version: unsupported \"%.64s\" (tls12 or tls13)",
					  m->str);
		} else if (strcmp(k, "max_request_size") == 0) {
			rc = want_int(x, m, "max_request_size", &v);
			if (!rc)
				l->max_request_size = v > 0 && (uint64_t)v <= SIZE_MAX
							  ? (size_t)v
							  : CS_DEFAULT_MAX_REQUEST_SIZE;
		} else if (strcmp(k, "disable_unauthed_rekey_endpoints") == 0) {
			rc = want_bool(x, m, "disable_unauthed_rekey_endpoints",
				       &l->disable_unauthed_rekey_endpoints);
		} else if (strcmp(k, "http_read_header_timeout") == 0 ||
			   strcmp(k, "http_read_timeout") == 0) {
			rc = want_duration(x, m, k, &v);
			if (!rc) {
				/* "0" means no limit, as in Vault. v is only read once parsed:
				 * on an error it holds nothing (was undefined behaviour). */
				int64_t ms = v == 0                 ? -1
					     : v > INT64_MAX / 1000 ? INT64_MAX
								    : v * 1000;
				if (strcmp(k, "http_read_header_timeout") == 0)
					l->http_read_header_timeout_ms = ms;
				else
					l->http_read_timeout_ms = ms;
			}
		} else if (strcmp(k, "max_connections") == 0) {
			rc = want_int(x, m, k, &v);
			if (!rc && (v < 1 || v > 1000000))
				rc = fail(x, m->line, "max_connections: must be 1 to 1000000");
			if (!rc)
				l->max_connections = (int)v;
		} else {
			rc = fail(x, m->line, "unknown key \"%.64s\" in listener", k);
		}
		if (rc)
			return rc;
	}
	if (!l->tls_disable &&
	    (!l->tls_cert_file || !*l->tls_cert_file || !l->tls_key_file || !*l->tls_key_file))
		return fail(x, line,
			    "listener: tls_cert_file and tls_key_file are required unless "
			    "tls_disable = true");
	if (!l->cluster_ca_cert_file != !l->cluster_ca_key_file)
		return fail(x, line,
			    "listener: cluster_ca_cert_file and cluster_ca_key_file go together");
	if (!l->cluster_address && l->address && address_port(l->address) == 65535)
		return fail(x, line,
			    "listener: cannot derive cluster_address from port 65535; set it");
	return 0;
}

/* seal "TYPE" { ... }: typed by server/seal_config.c; at most one enabled. */
static int seal_block(struct ctx *x, const char *type, const struct cs_hcl_node *body, int line)
{
	struct cs_config *c = x->c;
	if (c->n_seals >= CS_MAX_SEAL_STANZAS)
		return fail(x, line,
			    "at most %d seal blocks (the old one disabled, for a migration)",
			    CS_MAX_SEAL_STANZAS);
	char err[256] = "";
	int eline = line;
	struct cs_seal_params p;
	if (cs_seal_params_parse(type, body, &p, err, sizeof err, &eline))
		return fail(x, eline, "%s", err);
	p.line = line;
	for (int i = 0; i < c->n_seals; i++)
		if (!p.disabled && !c->seals[i].disabled) {
			cs_seal_params_free(&p);
			return fail(x, line,
				    "only one seal block may be enabled; mark the old one "
				    "disabled = \"true\" to migrate");
		}
	c->seals[c->n_seals++] = p;
	return 0;
}

static int top_level(struct ctx *x, const struct cs_hcl_node *root)
{
	struct cs_config *c = x->c;
	for (const struct cs_hcl_node *m = root->child; m; m = m->next) {
		const char *k = m->key;
		int rc;
		if (strcmp(k, "storage") == 0) {
			rc = each_block(x, m, "storage", storage_block);
		} else if (strcmp(k, "listener") == 0) {
			rc = each_block(x, m, "listener", listener_block);
		} else if (strcmp(k, "seal") == 0) {
			rc = each_block(x, m, "seal", seal_block);
		} else if (strcmp(k, "api_addr") == 0) {
			rc = want_string(x, m, k, &c->api_addr);
		} else if (strcmp(k, "cluster_addr") == 0) {
			rc = want_string(x, m, k, &c->cluster_addr);
		} else if (strcmp(k, "cluster_name") == 0) {
			rc = want_string(x, m, k, &c->cluster_name);
		} else if (strcmp(k, "disable_mlock") == 0) {
			rc = want_bool(x, m, k, &c->disable_mlock);
		} else if (strcmp(k, "allow_core_dumps") == 0) {
			rc = want_bool(x, m, k, &c->allow_core_dumps);
		} else if (strcmp(k, "ui") == 0) {
			rc = want_bool(x, m, k, &c->ui);
		} else if (strcmp(k, "allow_audit_log_prefixing") == 0) {
			rc = want_bool(x, m, k, &c->allow_audit_log_prefixing);
		} else if (strcmp(k, "log_level") == 0) {
			if (m->type != CS_HCL_STRING) {
				rc = fail(x, m->line, "log_level must be a string, not %s",
					  cs_hcl_type_name(m->type));
			} else {
				int lvl = cs_log_parse_level(m->str);
				if (lvl < 0)
					rc = fail(x, m->line,
						  "log_level: unknown level \"%.64s\" (trace, "
						  "debug, info, warn, error)",
						  m->str);
				else
					rc = 0, c->log_level = lvl;
			}
		} else if (strcmp(k, "default_lease_ttl") == 0) {
			rc = want_duration(x, m, k, &c->default_lease_ttl);
		} else if (strcmp(k, "max_lease_ttl") == 0) {
			rc = want_duration(x, m, k, &c->max_lease_ttl);
		} else if (strcmp(k, "periodic_interval") == 0) {
			rc = want_duration(x, m, k, &c->periodic_interval);
			if (!rc && (c->periodic_interval < 1 || c->periodic_interval > 86400))
				rc = fail(x, m->line, "periodic_interval must be 1s..24h");
		} else if (strcmp(k, "rotation_min_operations") == 0) {
			rc = want_int(x, m, k, &c->rotation_min_operations);
			if (!rc && (c->rotation_min_operations < 1 ||
				    c->rotation_min_operations > 1000000))
				rc = fail(x, m->line, "rotation_min_operations must be 1..1000000");
		} else if (strcmp(k, "acme_test_http_port") == 0 ||
			   strcmp(k, "acme_test_tls_port") == 0) {
			int64_t v = 0;
			rc = want_int(x, m, k, &v);
			if (!rc && (v < 1 || v > 65535))
				rc = fail(x, m->line, "%s: must be a port, 1 to 65535", k);
			if (!rc && k[10] == 'h')
				c->acme_test_http_port = (uint16_t)v;
			else if (!rc)
				c->acme_test_tls_port = (uint16_t)v;
		} else if (strcmp(k, "snapshot_spool_dir") == 0) {
			rc = want_string(x, m, k, &c->snapshot_spool_dir);
		} else if (strcmp(k, "snapshot_spool_reserve_percent") == 0) {
			int64_t v = 0;
			rc = want_int(x, m, k, &v);
			if (!rc && (v < 0 || v > 99))
				rc = fail(x, m->line,
					  "snapshot_spool_reserve_percent: must be 0 to 99");
			if (!rc)
				c->snapshot_spool_reserve_percent = (int)v;
		} else {
			rc = fail(x, m->line, "unknown key \"%.64s\"", k);
		}
		if (rc)
			return rc;
	}
	return 0;
}

/* Parse one file's text on top of *c, without the whole-config checks. */
static int apply_text(struct cs_config *c, const char *text, size_t len, const char *filename,
		      char *errmsg, size_t errlen)
{
	struct ctx x = {c, filename, errmsg, errlen, false};
	char herr[256];
	struct cs_hcl_node *root = cs_hcl_parse(text, len, herr, sizeof herr);
	if (!root) {
		/* "line N: reason" → "FILE:N: reason" */
		int line = 1, off = 0;
		if (sscanf(herr, "line %d: %n", &line, &off) < 1 || off == 0)
			off = 0;
		return fail(&x, line, "%s", herr + off);
	}
	int rc = top_level(&x, root);
	cs_hcl_free(root);
	return rc;
}

/* Whole-config checks, once every file has been applied. */
static int check_complete(struct cs_config *c, struct ctx *x)
{
	if (!c->storage_path)
		return fail(x, 1, "a storage \"raft\" block is required");
	if (c->n_listeners == 0)
		return fail(x, 1, "a listener \"tcp\" block is required");
	return 0;
}

int cs_config_parse(struct cs_config *c, const char *text, size_t len, const char *filename,
		    char *errmsg, size_t errlen)
{
	if (errmsg && errlen)
		errmsg[0] = '\0';
	int rc = apply_text(c, text, len, filename, errmsg, errlen);
	if (rc)
		return rc;
	struct ctx x = {c, filename, errmsg, errlen, false};
	rc = check_complete(c, &x);
	if (rc)
		return rc;
	cs_config_finish(c);
	return 0;
}

static int load_file(struct cs_config *c, const char *path, char *errmsg, size_t errlen)
{
	char *text;
	size_t len;
	int e = cs_read_file(path, &text, &len);
	if (e) {
		snprintf(errmsg, errlen, "%s: %s", path, strerror(e));
		return CS_EINVAL;
	}
	int rc = apply_text(c, text, len, path, errmsg, errlen);
	free(text);
	return rc;
}

static int config_file_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name);
	if (d->d_name[0] == '.')
		return 0;
	return (n > 4 && strcmp(d->d_name + n - 4, ".hcl") == 0) ||
	       (n > 5 && strcmp(d->d_name + n - 5, ".json") == 0);
}

/* Byte order, not the locale's collation: the same files load in the same order anywhere. */
static int name_order(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int cs_config_load(struct cs_config *c, const char *path, char *errmsg, size_t errlen)
{
	if (errmsg && errlen)
		errmsg[0] = '\0';
	struct stat st;
	if (stat(path, &st) != 0) {
		snprintf(errmsg, errlen, "%s: %s", path, strerror(errno));
		return CS_EINVAL;
	}
	if (!S_ISDIR(st.st_mode)) {
		int rc = load_file(c, path, errmsg, errlen);
		if (rc)
			return rc;
		struct ctx x = {c, path, errmsg, errlen, false};
		rc = check_complete(c, &x);
		if (rc)
			return rc;
		cs_config_finish(c);
		return 0;
	}

	struct dirent **names;
	int n = scandir(path, &names, config_file_filter, name_order);
	if (n < 0) {
		snprintf(errmsg, errlen, "%s: %s", path, strerror(errno));
		return CS_EINVAL;
	}
	int rc = 0, loaded = 0;
	for (int i = 0; i < n; i++) {
		char file[PATH_MAX];
		if (!rc) {
			snprintf(file, sizeof file, "%s/%s", path, names[i]->d_name);
			struct stat fst;
			/* Skip directories and sockets that happen to be named *.hcl. */
			if (stat(file, &fst) == 0 && S_ISREG(fst.st_mode)) {
				rc = load_file(c, file, errmsg, errlen);
				loaded++;
			}
		}
		free(names[i]);
	}
	free(names);
	if (rc)
		return rc;
	if (!loaded) {
		snprintf(errmsg, errlen, "%s: no *.hcl or *.json configuration files", path);
		return CS_EINVAL;
	}
	/* Whole-config problems belong to no single file: name the directory. */
	if (!c->storage_path) {
		snprintf(errmsg, errlen, "%s: a storage \"raft\" block is required", path);
		return CS_EINVAL;
	}
	if (c->n_listeners == 0) {
		snprintf(errmsg, errlen, "%s: a listener \"tcp\" block is required", path);
		return CS_EINVAL;
	}
	cs_config_finish(c);
	return 0;
}

/* ------------------------------------------------------------------ defaults */

static char *join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 1);
	if (!s)
		abort();
	memcpy(s, a, la);
	memcpy(s + la, b, lb + 1);
	return s;
}

void cs_config_finish(struct cs_config *c)
{
	for (int i = 0; i < c->n_listeners && i < CS_MAX_LISTENERS; i++) {
		struct cs_listener_config *l = &c->listeners[i];
		if (!l->address)
			set_str(&l->address, DEFAULT_ADDRESS);
		if (!l->max_request_size)
			l->max_request_size = CS_DEFAULT_MAX_REQUEST_SIZE;
		if (!l->tls_min_version)
			l->tls_min_version = TLS1_2_VERSION;
		if (!l->cluster_address) {
			/* Same host, next port; port 0 (ephemeral) stays 0. An address the
			 * parser never saw (set by hand) may be malformed: use the default. */
			long port = address_port(l->address);
			const char *colon = strrchr(l->address, ':');
			if (port < 0 || !colon) {
				set_str(&l->cluster_address, "127.0.0.1:8201");
			} else {
				long cport = port == 0 ? 0 : port == 65535 ? 0 : port + 1;
				int hlen = (int)(colon - l->address);
				char buf[32];
				snprintf(buf, sizeof buf, ":%ld", cport);
				char *host = strndup(l->address, (size_t)hlen);
				if (!host)
					abort();
				l->cluster_address = join(host, buf);
				free(host);
			}
		}
	}
	if (c->n_listeners > 0) {
		const struct cs_listener_config *l = &c->listeners[0];
		if (!c->api_addr)
			c->api_addr = join(l->tls_disable ? "http://" : "https://", l->address);
		if (!c->cluster_addr)
			c->cluster_addr = join("https://", l->cluster_address);
	}
	if (!c->node_id) {
		char host[HOST_NAME_MAX + 1];
		if (gethostname(host, sizeof host) != 0 || !host[0])
			snprintf(host, sizeof host, "node-1");
		host[HOST_NAME_MAX] = '\0';
		set_str(&c->node_id, host);
	}
}
