/*
 * What a backend may know of its mount, its client and the core, as functions declared in
 * server/backend.h: so that engines and auth methods include nothing else from server/
 * (issue 10 §1; scripts/check-layers.py enforces it) and the core's structs can change
 * without touching a backend.
 */
#include "server/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"
#include "server/core.h"
#include "server/http.h"
#include "server/router.h"

const char *cs_req_mount_path(const struct cs_request *req)
{
	return req->mount ? req->mount->path : NULL;
}

const char *cs_req_storage_prefix(const struct cs_request *req)
{
	return req->mount ? req->mount->storage_prefix : "";
}

int64_t cs_req_default_ttl(const struct cs_request *req)
{
	return cs_core_default_ttl(req->core, req->mount);
}

int64_t cs_req_max_ttl(const struct cs_request *req)
{
	return cs_core_max_ttl(req->core, req->mount);
}

const char *cs_req_remote_addr(const struct cs_request *req)
{
	return req->http ? req->http->remote_addr : "";
}

void cs_req_api_addr(const struct cs_request *req, char *out, size_t n)
{
	const struct cs_config *cfg = req->core->cfg;
	const struct cs_listener_config *l = cfg->n_listeners ? &cfg->listeners[0] : NULL;
	if (cfg->api_addr && *cfg->api_addr)
		snprintf(out, n, "%s", cfg->api_addr);
	else
		snprintf(out, n, "%s://%s", l && l->tls_disable ? "http" : "https",
			 l ? l->address : "127.0.0.1:8200");
}

int cs_req_issue_token(struct cs_request *req, const cJSON *params)
{
	if (!req->core || !req->core->tokens.issue)
		return cs_req_error(req, CS_EINTERNAL, "no token store to issue a token");
	return req->core->tokens.issue(req, params);
}

const char *cs_backend_mount_prefix(struct cs_core *core, const char *mount_path)
{
	const struct cs_mount *m = core ? cs_router_get(&core->router, mount_path) : NULL;
	return m ? m->storage_prefix : NULL;
}

void cs_core_set_token_store(struct cs_core *core, const struct cs_token_store *ts)
{
	core->tokens = *ts;
}

void cs_core_set_acl(struct cs_core *core, const struct cs_acl_hooks *acl)
{
	core->acl = *acl;
}

void cs_core_set_token_events(struct cs_core *core, const struct cs_token_events *ev)
{
	core->token_events = *ev;
}

void cs_core_set_expiration(struct cs_core *core, const struct cs_expiration *ex)
{
	core->expire = *ex;
}

uv_loop_t *cs_core_loop(struct cs_core *core)
{
	return core->loop;
}

struct cs_storage *cs_core_storage(struct cs_core *core)
{
	return &core->st;
}

const struct cs_keyring *cs_core_keyring(const struct cs_core *core)
{
	return core->kr;
}

bool cs_core_is_active(const struct cs_core *core)
{
	return core->active;
}

bool cs_core_shutting_down(const struct cs_core *core)
{
	return core->shutting_down;
}

int64_t cs_core_sys_max_ttl(const struct cs_core *core)
{
	return cs_core_max_ttl(core, NULL);
}

void cs_core_acme_test_ports(const struct cs_core *core, uint16_t *http, uint16_t *tls)
{
	*http = core->cfg ? core->cfg->acme_test_http_port : 0;
	*tls = core->cfg ? core->cfg->acme_test_tls_port : 0;
}

void *cs_core_state(struct cs_core *core, const struct cs_core_state_type *type)
{
	for (size_t i = 0; i < core->n_states; i++)
		if (core->states[i].type == type)
			return core->states[i].state;
	void *s = calloc(1, type->size);
	if (!s || core->n_states == CS_CORE_MAX_STATES) {
		/* A fixed, small number of modules, each a few hundred bytes: neither happens
		 * outside a broken build or a machine already out of memory. */
		cs_error("core: cannot keep the state of %s", type->name);
		abort();
	}
	core->states[core->n_states].type = type;
	core->states[core->n_states].state = s;
	core->n_states++;
	return s;
}

void cs_core_release_state(struct cs_core *core)
{
	cs_autopilot_state_free(core->autopilot.state);
	core->autopilot.state = NULL;
	while (core->n_states > 0) {
		core->n_states--;
		const struct cs_core_state_type *t = core->states[core->n_states].type;
		void *s = core->states[core->n_states].state;
		if (t->release)
			t->release(s);
		free(s);
		core->states[core->n_states].state = NULL;
	}
}

struct cs_core *cs_txn_core(const struct cs_txn *txn)
{
	return CS_CONTAINER_OF(txn->st, struct cs_core, st);
}

/* ---- the hooks of the request's core (server/backend.h, "Hooks") ---- */

bool cs_req_has_sudo(struct cs_request *req)
{
	if (req->root)
		return true;
	return req->core && req->core->acl.sudo && req->token_entry && req->core->acl.sudo(req);
}

int cs_backend_token_revoked(struct cs_txn *txn, const char *token_key)
{
	struct cs_core *core = cs_txn_core(txn);
	int rc = core->token_events.revoked ? core->token_events.revoked(txn, token_key) : 0;
	if (!rc && core->expire.token_revoked)
		rc = core->expire.token_revoked(txn, token_key);
	return rc;
}

static const struct cs_secret_type *find_kind(const struct cs_mount *m, const char *name)
{
	const struct cs_secret_type *k = m && m->backend ? m->backend->secrets : NULL;
	for (; k && k->name; k++)
		if (strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

const struct cs_secret_type *cs_core_secret_type(struct cs_core *core, const char *path,
						 const char *name)
{
	return find_kind(cs_router_match(&core->router, path), name);
}

int cs_req_lease(struct cs_request *req, const char *type, cJSON *internal, int64_t ttl,
		 int64_t max_ttl)
{
	struct cs_core *core = req->core;
	const struct cs_secret_type *kind = find_kind(req->mount, type);
	if (!kind || !core->expire.lease) {
		cs_json_delete_wiped(internal);
		return cs_req_error(req, CS_EINTERNAL, "no lease kind \"%s\" for this mount", type);
	}
	/* The owner: the client's token, by its storage key (never the token itself). */
	char key[80], *owner = NULL;
	if (req->client_token && req->token_entry && core->tokens.key_of &&
	    core->tokens.key_of(&req->txn, req->client_token, key) == 0)
		owner = key;
	return core->expire.lease(req, kind, internal, ttl, max_ttl, owner);
}

int cs_backend_acl(struct cs_request *req)
{
	if (req->root)
		return 0;
	if (!req->core || !req->core->acl.check)
		return cs_req_error(req, CS_EPERM, "permission denied");
	return req->core->acl.check(req);
}

bool cs_req_mount_visible(struct cs_request *req, const char *mount_path)
{
	if (req->root)
		return true;
	return req->core && req->core->acl.mount_visible && req->token_entry &&
	       req->core->acl.mount_visible(req, mount_path);
}

/* ---- identity (engines/identity) and mount accessors ---- */

void cs_core_set_identity(struct cs_core *core, const struct cs_identity_hooks *h)
{
	core->identity = *h;
}

int cs_req_identity_login(struct cs_request *req, const char *alias_name, const cJSON *alias_meta,
			  char **entity_id)
{
	*entity_id = NULL;
	if (!req->core || !req->core->identity.login || !req->mount)
		return 0;
	return req->core->identity.login(req, req->mount->accessor, alias_name, alias_meta,
					 entity_id);
}

int cs_backend_identity_resolve(struct cs_core *core, struct cs_txn *txn, const char *entity_id,
				cJSON **out)
{
	*out = NULL;
	if (!core || !core->identity.resolve || !entity_id || !*entity_id)
		return 0;
	return core->identity.resolve(core, txn, entity_id, out);
}

const char *cs_req_mount_accessor(const struct cs_request *req)
{
	return req->mount ? req->mount->accessor : "";
}

bool cs_backend_mount_by_accessor(struct cs_core *core, const char *accessor, const char **path,
				  const char **type)
{
	/* A handful of mounts: a walk is cheaper than keeping an index in step. */
	for (size_t i = 0; core && accessor && *accessor && i < core->router.n; i++) {
		const struct cs_mount *m = core->router.mounts[i];
		if (strcmp(m->accessor, accessor) == 0) {
			if (path)
				*path = m->path;
			if (type)
				*type = m->type;
			return true;
		}
	}
	return false;
}
