/*
 * The request pipeline (see core.h for the happy path and failure modes).
 *
 * Ownership: a cs_request is allocated per HTTP request in cs_core_handle_http and freed
 * in finish() right after cs_http_respond handed the bytes to the connection. While a
 * request waits (for the node to become active, or for its raft entry to apply) it is
 * referenced from exactly one place: the core's waiting list or the storage committer's
 * callback; the HTTP layer keeps the cs_http_req alive even if the client goes away.
 */
#include "server/core.h"
#include "server/ha.h"
#include "server/forward.h"
#include "raft/autopilot.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/path.h"
#include "lib/secmem.h"
#include "lib/util.h"
#include "server/http.h"
#include "server/http_request.h"
#include "server/response.h"
#include "server/seal.h"
#include "server/sys.h"
#include "server/wrap.h"

/* How long a request may wait for the node to become active after start-up/unseal. */
#define WAIT_ACTIVE_MS 10000
/* How many requests may wait for it; more get 503 at once. */
#define CS_WAIT_ACTIVE_MAX 4096

static void run(struct cs_request *req);
static void suspend(struct cs_request *req);
static void fail_after_reads(struct cs_request *req, int code);

void cs_core_set_autoseal(struct cs_core *core, const struct cs_core_autoseal *hooks)
{
	core->autoseal_hooks = *hooks;
}

int cs_core_autoseal_kind(const struct cs_core *core)
{
	return core->autoseal_hooks.kind ? core->autoseal_hooks.kind(core) : 0;
}

void cs_core_set_audit(struct cs_core *core, const struct cs_core_audit *broker)
{
	core->audit = *broker;
}

/* ---------------------------------------------------------------- responses */

static void req_free(struct cs_request *req)
{
	if (req->mount_held)
		cs_mount_free(req->mount);
	free(req->internal);
	if (req->core->audit.request && !req->internal)
		req->core->audit.discard(req);
	if (req->txn_open)
		cs_txn_abort(&req->txn);
	for (int i = 0; i < req->n_caps; i++)
		free(req->caps[i].value);
	free(req->path);
	/* Bodies carry passwords and secrets; responses and token entries carry tokens. */
	cs_json_delete_wiped(req->data);
	if (req->client_token) {
		cs_zero(req->client_token, strlen(req->client_token));
		free(req->client_token);
	}
	cs_json_delete_wiped(req->token_entry);
	cs_json_delete_wiped(req->resp_data);
	cs_json_delete_wiped(req->resp_auth);
	cJSON_Delete(req->warnings);
	cs_json_delete_wiped(req->raw);
	if (req->raw_body)
		cs_zero(req->raw_body, req->raw_len);
	free(req->raw_body);
	free(req->lease_id);
	free(req->errmsg);
	for (int i = 0; i < req->n_resp_headers; i++)
		free(req->resp_headers[i]);
	free(req);
}

/* Send the error for `code` (or req->errmsg) and free the request. */
static void finish_error(struct cs_request *req, int code)
{
	int status = req->status ? req->status : cs_err_status(code);
	size_t len;
	char *body;
	if (req->body_on_error) {
		body = cs_response_envelope(req, &len);
	} else {
		const char *msg = req->errmsg;
		/* A plain "not found" is Vault's empty error list. */
		if (!msg && code != CS_ENOTFOUND)
			msg = cs_strerror(code);
		body = cs_response_errors(msg, &len);
	}
	if (req->core->audit.request && !req->internal) /* may turn it into a 500 */
		req->core->audit.response(req, &status, &body, &len);
	if (req->http)
		cs_http_respond_json(req->http, status, body, len);
	cs_zero(body, len); /* KV v2 error envelopes carry data */
	free(body);
	if (req->internal && req->internal->done)
		req->internal->done(req, code ? code : CS_EINTERNAL, req->internal->ctx);
	req_free(req);
}

static void finish(struct cs_request *req)
{
	if (req->commit_error) { /* committed; the answer is still an error */
		finish_error(req, req->commit_error);
		return;
	}
	size_t len = 0;
	char *body = NULL;
	int status = req->status;
	const char *ctype = NULL; /* JSON */
	if (req->raw_type) {      /* a non-JSON body (cs_req_set_raw): handed over as is */
		body = (char *)req->raw_body;
		len = req->raw_len;
		req->raw_body = NULL;
		ctype = req->raw_type;
		if (!status)
			status = len ? 200 : 204;
	} else if (req->raw) {
		body = cJSON_PrintUnformatted(req->raw);
		len = strlen(body);
		if (!status)
			status = 200;
	} else if (req->resp_data || req->resp_auth || req->warnings || req->lease_id) {
		body = cs_response_envelope(req, &len);
		if (!status)
			status = 200;
	} else if (!status) {
		status = 204;
	}
	if (req->core->audit.request && !req->internal) { /* may turn it into a 500 */
		int before = status;
		req->core->audit.response(req, &status, &body, &len);
		if (status != before)
			ctype = NULL; /* the JSON error that replaced the body */
	}
	if (req->http) {
		struct cs_http_header hdrs[CS_MAX_RESP_HEADERS];
		size_t nh = 0;
		for (int i = 0; i + 1 < req->n_resp_headers; i += 2, nh++)
			hdrs[nh] =
			    (struct cs_http_header){req->resp_headers[i], req->resp_headers[i + 1]};
		if (body && ctype)
			cs_http_respond(req->http, status, ctype, hdrs, nh, body, len);
		else if (body)
			cs_http_respond(req->http, status, "application/json", hdrs, nh, body, len);
		else
			cs_http_respond(req->http, status, NULL, hdrs, nh, NULL, 0);
	}
	if (body)
		cs_zero(body, len); /* responses carry secrets */
	free(body);
	void (*after)(struct cs_core *) = req->after_response;
	struct cs_core *core = req->core;
	if (req->internal && req->internal->done)
		req->internal->done(req, 0, req->internal->ctx);
	req_free(req);
	if (after)
		after(core);
}

/* ---------------------------------------------------------------- waiting for active */

static void wait_timer_cb(uv_timer_t *t)
{
	struct cs_core *core = CS_CONTAINER_OF(t, struct cs_core, wait_timer);
	uint64_t now = cs_mono_ms();
	struct cs_request *list = core->waiting_active, *keep = NULL;
	core->waiting_active = NULL;
	core->n_waiting = 0;
	while (list) {
		struct cs_request *r = list;
		list = r->next_waiting;
		if (now - r->start_ms > WAIT_ACTIVE_MS) {
			cs_req_error(r, CS_ENOTACTIVE, "node is not active");
			finish_error(r, CS_ENOTACTIVE);
		} else if ((core->active && !cs_ha_stepping_down(core)) ||
			   (!core->active && cs_ha_leader_known(core) && r->http &&
			    cs_forward_hops(r->http) < CS_FORWARD_MAX_HOPS)) {
			run(r); /* may park it again */
		} else {
			r->next_waiting = keep;
			keep = r;
		}
	}
	/* Requests parked by callbacks above went to core->waiting_active: merge. */
	while (keep) {
		struct cs_request *r = keep;
		keep = r->next_waiting;
		r->next_waiting = core->waiting_active;
		core->waiting_active = r;
		core->n_waiting++;
	}
	if (!core->waiting_active)
		uv_timer_stop(t);
}

static void park(struct cs_request *req)
{
	struct cs_core *core = req->core;
	/* A standby's mount table is the one loaded at unseal: route again once this node
	 * is active (it reloads the tables) or forwards. */
	if (!core->active) {
		for (int i = 0; i < req->n_caps; i++)
			free(req->caps[i].value);
		req->n_caps = 0;
		req->route = NULL;
		req->mount = NULL;
		req->rel = NULL;
		req->no_route = 0;
	}
	if (core->n_waiting >= CS_WAIT_ACTIVE_MAX) {
		/* Bounded: while no node is active, clients retry instead of piling up. */
		cs_req_error(req, CS_EBUSY, "too many requests waiting for the active node");
		finish_error(req, CS_EBUSY);
		return;
	}
	core->n_waiting++;
	req->next_waiting = core->waiting_active;
	core->waiting_active = req;
	if (!uv_is_active((uv_handle_t *)&core->wait_timer))
		uv_timer_start(&core->wait_timer, wait_timer_cb, 250, 250);
}

static void resume_waiting(struct cs_core *core, int err)
{
	struct cs_request *list = core->waiting_active;
	core->waiting_active = NULL;
	core->n_waiting = 0;
	/* Reverse to keep arrival order. */
	struct cs_request *ordered = NULL;
	while (list) {
		struct cs_request *r = list;
		list = r->next_waiting;
		r->next_waiting = ordered;
		ordered = r;
	}
	while (ordered) {
		struct cs_request *r = ordered;
		ordered = r->next_waiting;
		r->next_waiting = NULL;
		if (err)
			finish_error(r, err);
		else
			run(r);
	}
}

void cs_core_retry_waiting(struct cs_core *core)
{
	resume_waiting(core, 0);
}

void cs_core_forward_done(struct cs_request *req, int status, const char *errmsg)
{
	if (status == 0) {
		req->http = NULL; /* answered by the active node, relayed verbatim */
		req_free(req);
		return;
	}
	cs_warn("core: forwarding %s to the active node failed: %s", req->path,
		errmsg ? errmsg : cs_strerror(status));
	req->status = 503;
	cs_req_error(req, CS_ENOTACTIVE, "error forwarding the request to the active node: %s",
		     errmsg ? errmsg : cs_strerror(status));
	finish_error(req, CS_ENOTACTIVE);
}

void cs_core_on_active(void *ctx, bool active)
{
	struct cs_core *core = ctx;
	core->active = active;
	if (active) {
		core->active_since_ns = cs_now_ns();
		cs_info("core: this node is now the active node");
		if (core->kr) {
			/* Rebuild derived in-memory state from storage: a previous term's
			 * overlay may have been dropped. */
			cs_seal_post_unseal(core);
		}
		resume_waiting(core, 0);
		if (core->dev_cb)
			cs_seal_dev_continue(core);
	} else {
		cs_warn("core: no longer the active node");
		cs_backend_reset_all(core);
	}
	if (core->expire.active)
		core->expire.active(core, active);
	cs_ha_on_active(core, active);
	cs_autopilot_set_active(&core->autopilot, active);
}

/* ---------------------------------------------------------------- commit */

static void commit_cb(void *data, int status)
{
	struct cs_request *req = data;
	if (status) {
		cs_warn("core: commit of %s %s failed: %s", cs_op_name(req->op), req->path,
			cs_strerror(status));
		cJSON_Delete(req->raw);
		req->raw = NULL;
		req->status = 0;
		req->body_on_error = false;
		req->commit_error = 0;
		free(req->errmsg);
		req->errmsg = NULL;
		finish_error(req, status);
		return;
	}
	finish(req);
}

static void commit_and_finish(struct cs_request *req)
{
	bool pending = false;
	int rc = cs_wrap_response(req); /* X-Vault-Wrap-TTL: in the same transaction */
	if (!rc && req->internal && req->internal->before_commit)
		rc = req->internal->before_commit(req, req->internal->ctx);
	if (rc) {
		fail_after_reads(req, rc);
		return;
	}
	req->txn_open = false;
	rc = cs_txn_commit(&req->txn, commit_cb, req, &pending);
	if (rc) {
		finish_error(req, rc);
		return;
	}
	if (!pending)
		finish(req);
}

/*
 * An error answer that depends on what the request read is sent only once that state is
 * known to be real. Reads see write-sets proposed but not yet applied (the overlay); a
 * handler that refuses because of one (a KV cas against a version a pending write made,
 * "already exists") must not answer before it applied, or a client sees a refusal
 * derived from a write that never happened when leadership is lost meanwhile and the
 * overlay is dropped (the fault campaign's finding 1, tests/chaos/test_regressions.py).
 * The writes are dropped; the answer waits like a read-only commit; if what it read is
 * gone the answer is "leadership lost", which clients retry.
 */
static void read_wait_cb(void *data, int status)
{
	struct cs_request *req = data;
	int code = req->read_wait_error;
	if (status) {
		cJSON_Delete(req->raw);
		req->raw = NULL;
		req->status = 0;
		req->body_on_error = false;
		free(req->errmsg);
		req->errmsg = NULL;
		code = cs_req_error(req, CS_ELEADERSHIP,
				    "leadership lost before the state this request read was "
				    "committed; retry the request");
	}
	finish_error(req, code);
}

static void fail_after_reads(struct cs_request *req, int code)
{
	if (!req->txn_open || req->txn.err) {
		finish_error(req, code);
		return;
	}
	req->txn_open = false;
	cs_txn_drop_writes(&req->txn);
	bool pending = false;
	req->read_wait_error = code;
	int rc = cs_txn_commit(&req->txn, read_wait_cb, req, &pending);
	if (rc)
		read_wait_cb(req, rc); /* the overlay it read was dropped already */
	else if (!pending)
		finish_error(req, code);
}

/* ---------------------------------------------------------------- pipeline */

static bool token_has_root(const cJSON *entry)
{
	const cJSON *pols = cJSON_GetObjectItemCaseSensitive(entry, "policies");
	const cJSON *p;
	cJSON_ArrayForEach(p, pols)
	{
		if (cJSON_IsString(p) && strcmp(p->valuestring, "root") == 0)
			return true;
	}
	return false;
}

/* 0 if the request may proceed; else an error code (message set). */
static int authorize(struct cs_request *req)
{
	struct cs_core *core = req->core;
	if (req->internal) { /* the core's own work: trusted, no token */
		req->root = true;
		return 0;
	}
	unsigned flags = req->route ? req->route->flags : 0;
	if (req->help) /* help needs a valid token everywhere (and spends a use, as a read) */
		flags &= ~(unsigned)(CS_PATH_UNAUTH | CS_PATH_OPT_TOKEN);
	bool has_token = req->client_token && *req->client_token;
	/* An unauthenticated path ignores the token, unless its answer depends on the caller
	 * (CS_PATH_OPT_TOKEN): a token sent there is checked as everywhere else, so a token
	 * that is expired or refused by its token_bound_cidrs never reveals more. */
	if ((flags & CS_PATH_UNAUTH) && !(has_token && (flags & CS_PATH_OPT_TOKEN)))
		return 0;
	if (!has_token || !core->tokens.lookup)
		return cs_req_error(req, CS_EPERM, "permission denied");
	cJSON *entry = NULL;
	int rc = core->tokens.lookup(core, &req->txn, req->client_token, &entry);
	if (rc)
		return rc;
	if (!entry)
		return cs_req_error(req, CS_EPERM, "permission denied");
	req->token_entry = entry;
	const char *remote = req->http ? req->http->remote_addr : NULL;
	if (flags & CS_PATH_UNAUTH) {
		/* CS_PATH_OPT_TOKEN: checked, not counted (as Vault, whose UI preflight leaves a
		 * limited-use token's uses alone). */
		if (core->tokens.bound_ok && !core->tokens.bound_ok(entry, remote))
			return cs_req_error(req, CS_EPERM, "permission denied");
	} else if (core->tokens.use &&
		   (rc = core->tokens.use(core, &req->txn, req->client_token, entry, remote))) {
		/* Limited-use tokens: one use is spent in this request's transaction. */
		return rc;
	}
	/* Root tokens skip the ACL; everybody else is checked by the ACL hook once the
	 * operation is final (cs_backend_dispatch), or here for a path with no route. */
	req->root = token_has_root(entry);
	if (req->no_route)
		return cs_backend_acl(req);
	return 0;
}

/*
 * Find the mount and the backend path once. A miss on an unsealed node is not answered
 * yet: as in Vault, the token is checked first, so an unknown path is 404 only for a
 * caller who could have been allowed, and 403 for everybody else.
 */
static void route_once(struct cs_request *req, bool sealed)
{
	struct cs_core *core = req->core;
	if (req->route || req->no_route)
		return;
	struct cs_mount *m = NULL;
	if (strncmp(req->path, "sys/", 4) == 0 || strcmp(req->path, "sys") == 0)
		m = cs_sys_mount(core);
	else if (!sealed)
		m = cs_router_match(&core->router, req->path);
	if (!m) {
		req->no_route = 1;
		return;
	}
	req->mount = m;
	size_t ml = strlen(m->path);
	req->rel = strlen(req->path) >= ml ? req->path + ml : "";
	if (cs_backend_route(m->backend, req, req->rel))
		return;
	/* LIST appended a '/': a path that exists without it answers 405, not 404. */
	size_t rl = strlen(req->rel);
	if (req->op == CS_OP_LIST && rl > 1 && req->rel[rl - 1] == '/') {
		char *bare = strndup(req->rel, rl - 1);
		bool found = bare && cs_backend_route(m->backend, req, bare);
		free(bare);
		if (found)
			return;
	}
	req->no_route = 2;
}

/* Route (once) and run the request. May park it until the node is active. */
static void run(struct cs_request *req)
{
	struct cs_core *core = req->core;
	bool sealed = core->kr == NULL;

	route_once(req, sealed);
	unsigned flags = req->route ? req->route->flags : 0;
	if (sealed && (req->help || !(flags & CS_PATH_SEALED_OK))) {
		finish_error(req, CS_ESEALED);
		return;
	}
	/* An active node whose loop stalled (a pause) may have been deposed meanwhile: it
	 * confirms its leadership first, and the request waits (raft/node.h). */
	if (!sealed && core->active && core->raft_started && cs_raft_node_stalled(&core->node))
		sealed = core->kr == NULL;
	/* A standby sends what it cannot answer to the active node (before any token or
	 * audit work: the active node does both). */
	if (!sealed && !core->active && !(flags & CS_PATH_LOCAL) && cs_ha_forward(req))
		return;
	if ((!core->active && !(flags & CS_PATH_NO_ACTIVE)) ||
	    (core->active && cs_ha_stepping_down(core) && !(flags & CS_PATH_LOCAL))) {
		/* Raft about to start again (unsealed right after a seal) counts as started:
		 * the request waits for it like any request right after unseal. */
		if ((core->raft_started || cs_ha_restart_pending(core)) && !core->shutting_down) {
			park(req);
			return;
		}
		cs_req_error(req, CS_ENOTACTIVE, "node is not active");
		finish_error(req, CS_ENOTACTIVE);
		return;
	}

	cs_txn_begin(&req->txn, &core->st, core->kr);
	req->txn_open = true;
	int rc = authorize(req);
	if (req->core->audit.request) /* request entry; fails closed */
		rc = req->core->audit.request(req, rc);
	if (!rc && req->raw_request && !req->no_route && !req->help && !(flags & CS_PATH_RAW_BODY))
		rc = cs_req_error(req, CS_EMEDIATYPE, "unsupported Content-Type for this path");
	if (!rc && req->no_route == 1)
		rc = cs_req_error(req, CS_ENOTFOUND,
				  "no handler for route \"%s\". route entry not found.", req->path);
	else if (!rc && req->no_route)
		rc = cs_req_error(req, CS_ENOTFOUND, "unsupported path");
	else if (!rc && req->help)
		req->raw = cs_backend_help(req);
	else if (!rc)
		rc = cs_backend_dispatch(req);
	if (rc == CS_EASYNC) {
		suspend(req);
		return;
	}
	if (!rc && req->token_entry && core->tokens.after)
		rc = core->tokens.after(req);
	if (rc == CS_ENOTACTIVE && core->raft_started && !core->shutting_down &&
	    !(req->errmsg && req->status)) {
		/* The handler needs the active node (sys/init right after bootstrap). */
		cs_txn_abort(&req->txn);
		req->txn_open = false;
		free(req->errmsg);
		req->errmsg = NULL;
		park(req);
		return;
	}
	if (rc) {
		fail_after_reads(req, rc);
		return;
	}
	commit_and_finish(req);
}

/* ---------------------------------------------------------------- internal requests */

int cs_core_internal(struct cs_core *core, const struct cs_internal *in)
{
	int rc = 0;
	struct cs_mount *m = NULL;
	if (core->shutting_down || !core->active || cs_ha_stepping_down(core))
		rc = CS_ENOTACTIVE;
	else if (!core->kr)
		rc = CS_ESEALED;
	else if (strncmp(in->path, "sys/", 4) == 0)
		m = cs_sys_mount(core);
	else if (!(m = cs_router_match(&core->router, in->path)))
		rc = CS_ENOTFOUND;
	if (rc) {
		cJSON_Delete(in->data);
		return rc;
	}
	struct cs_request *req = calloc(1, sizeof *req);
	struct cs_internal *copy = malloc(sizeof *copy);
	char *path = strdup(in->path);
	if (!req || !copy || !path)
		abort();
	*copy = *in;
	copy->path = NULL; /* req->path owns the copy */
	req->core = core;
	req->internal = copy;
	req->op = in->op;
	req->path = path;
	req->start_ms = cs_mono_ms();
	req->data = in->data ? in->data : cJSON_CreateObject();
	req->mount = m;
	cs_mount_hold(m); /* the request may outlive an unmount while it waits */
	req->mount_held = true;
	size_t ml = strlen(m->path);
	req->rel = strlen(req->path) >= ml ? req->path + ml : "";
	req->route = in->route;
	cs_txn_begin(&req->txn, &core->st, core->kr);
	req->txn_open = true;
	rc = authorize(req);
	if (!rc)
		rc = cs_backend_dispatch(req);
	if (rc == CS_EASYNC) {
		suspend(req);
		return 0;
	}
	if (rc)
		fail_after_reads(req, rc);
	else
		commit_and_finish(req);
	return 0;
}

/* ---------------------------------------------------------------- deferred work */

/*
 * cs_req_defer (backend.h). Jobs beyond CS_ASYNC_MAX_RUNNING wait in a FIFO; every
 * finished job starts the next one. A job's after-callback resumes its request in a new
 * transaction, or fails it (through the backend's resume, so the job is freed) when the
 * node was sealed, lost leadership or is shutting down meanwhile.
 */
static void async_work_cb(struct cs_work *w)
{
	struct cs_async *a = CS_CONTAINER_OF(w, struct cs_async, job);
	a->work(a);
}

static void async_after_cb(struct cs_work *w);

static void async_start_next(struct cs_core *core)
{
	while (core->async_running < CS_ASYNC_MAX_RUNNING && core->async_head) {
		struct cs_async *a = core->async_head;
		core->async_head = a->next;
		if (!core->async_head)
			core->async_tail = NULL;
		a->next = NULL;
		core->async_queued--;
		a->job.work = async_work_cb;
		a->job.done = async_after_cb;
		if (cs_workpool_submit(&core->pool, &a->job) == 0) {
			core->async_running++;
			continue;
		}
		struct cs_request *req = a->req;
		finish_error(req, a->resume(req, a, CS_EINTERNAL));
	}
}

int cs_req_defer(struct cs_request *req, struct cs_async *a)
{
	struct cs_core *core = req->core;
	a->req = req;
	a->next = NULL;
	if (core->async_queued >= CS_ASYNC_MAX_QUEUED) {
		/* Bounded: a flood of slow requests must not grow memory without limit. */
		cs_req_error(req, CS_EBUSY, "too many requests waiting for a worker; retry later");
		return a->resume(req, a, CS_EBUSY);
	}
	core->async_queued++;
	if (core->async_tail)
		core->async_tail->next = a;
	else
		core->async_head = a;
	core->async_tail = a;
	return CS_EASYNC;
}

/* run() saw CS_EASYNC: drop the handler's transaction, start the queued job. */
static void suspend(struct cs_request *req)
{
	/* The request outlives this turn of the loop: a seal or an unmount meanwhile must not
	 * free the mount under it (async_resume then refuses to go on). */
	if (req->mount && !req->mount_held) {
		cs_mount_hold(req->mount);
		req->mount_held = true;
	}
	if (req->txn_open)
		cs_txn_abort(&req->txn);
	req->txn_open = false;
	async_start_next(req->core);
}

/* A deferred request continues: its work finished, or the event it waited for came. */
static void async_resume(struct cs_async *a, int rc)
{
	struct cs_request *req = a->req;
	struct cs_core *core = req->core;
	if (!rc && core->shutting_down)
		rc = CS_ESHUTDOWN;
	else if (!rc && !core->kr && !(req->route && (req->route->flags & CS_PATH_SEALED_OK)))
		rc = CS_ESEALED; /* sys/init waits for an auto seal while sealed */
	else if (!rc && !core->active)
		rc = cs_req_error(req, CS_ENOTACTIVE, "node is not active");
	else if (!rc && req->mount && req->mount != core->sys_mount &&
		 !cs_router_has(&core->router, req->mount))
		/* Sealed and unsealed again, or unmounted, while the job ran: the mount the
		 * request was routed to is gone (its storage may be too). */
		rc = cs_req_error(req, CS_EBUSY,
				  "the mount was reloaded or removed while the "
				  "request waited; retry");
	if (!rc) {
		cs_txn_begin(&req->txn, &core->st, core->kr);
		req->txn_open = true;
		cJSON_Delete(req->token_entry);
		req->token_entry = NULL;
		rc = authorize(req);
		if (!rc && !(req->route->flags & CS_PATH_UNAUTH))
			rc = cs_backend_acl(req);
		if (rc) {
			cs_txn_abort(&req->txn);
			req->txn_open = false;
		}
	}
	rc = a->resume(req, a, rc); /* a is gone from here on */
	if (rc == CS_EASYNC) {
		suspend(req);
		return;
	}
	if (!rc && req->token_entry && core->tokens.after)
		rc = core->tokens.after(req);
	if (rc)
		fail_after_reads(req, rc);
	else
		commit_and_finish(req);
	if (core->shutting_down) {
		/* Fail the jobs that have not started: storage is closing. */
		while (core->async_head) {
			struct cs_async *q = core->async_head;
			core->async_head = q->next;
			core->async_queued--;
			finish_error(q->req, q->resume(q->req, q, CS_ESHUTDOWN));
		}
		core->async_tail = NULL;
		return;
	}
	async_start_next(core);
}

static void async_after_cb(struct cs_work *w)
{
	struct cs_async *a = CS_CONTAINER_OF(w, struct cs_async, job);
	struct cs_core *core = a->req->core;
	core->async_running--;
	async_resume(a, 0);
	if (core->pool_close_pending && core->async_running == 0) {
		core->pool_close_pending = false;
		cs_workpool_close(&core->pool);
	}
}

int cs_req_wait(struct cs_request *req, struct cs_async *a)
{
	a->req = req;
	a->next = NULL;
	return CS_EASYNC; /* run() aborts the handler's txn; nothing is queued */
}

void cs_req_wake(struct cs_async *a)
{
	async_resume(a, 0);
}

/*
 * One spelling per path, before routing and the ACL: the ACL must judge exactly the path
 * the handler acts on, so "sys/mounts//prod", "sys/mounts/prod/" and "sys/mounts/prod"
 * are one path and "a/./b", "a/../b" and "a%2Fb" are refused (lib/path.h has the rules).
 */
static int canonical_path(struct cs_request *req, struct cs_http_req *h)
{
	if (cs_path_has_encoded_sep(h->url))
		return cs_req_error(req, CS_EINVAL, "path cannot contain encoded slashes");
	char *canon;
	const char *why;
	bool list = req->op == CS_OP_LIST;
	if (cs_path_canonical(h->path + 4, list, &canon, &why))
		return cs_req_error(req, CS_EINVAL, "%s", why);
	free(req->path);
	req->path = canon;
	return 0;
}

void cs_core_handle_http(struct cs_http_req *h, void *ctx)
{
	struct cs_core *core = ctx;
	struct cs_request *req = calloc(1, sizeof *req);
	if (!req)
		abort();
	core->requests++;
	req->core = core;
	req->http = h;
	req->start_ms = cs_mono_ms();
	req->data = cJSON_CreateObject();

	if (strncmp(h->path, "/v1/", 4) != 0) {
		req->path = strdup(h->path);
		finish_error(req, CS_ENOTFOUND);
		return;
	}
	req->path = strdup(h->path + 4); /* replaced by its canonical form below */
	if (cs_http_decode_method(h->method, &req->op, &req->is_head)) {
		cs_req_error(req, CS_EUNSUPPORTED, "unsupported operation");
		finish_error(req, CS_EUNSUPPORTED);
		return;
	}
	if (core->shutting_down) {
		finish_error(req, CS_ESHUTDOWN);
		return;
	}
	struct cs_http_flags flags = {0};
	int rc = cs_http_decode_fields(h, req->op, &req->data, &flags, &req->errmsg);
	req->help = flags.help;
	req->raw_request = flags.raw_body;
	if (rc) {
		finish_error(req, rc);
		return;
	}
	if (flags.list) {
		if (req->op != CS_OP_READ) {
			cs_req_error(req, CS_EUNSUPPORTED, "list is only valid on GET requests");
			finish_error(req, CS_EUNSUPPORTED);
			return;
		}
		req->op = CS_OP_LIST;
	}
	if ((rc = canonical_path(req, h))) {
		finish_error(req, rc);
		return;
	}
	req->client_token = cs_http_client_token(h);
	if ((rc = cs_wrap_read_headers(req, h))) {
		finish_error(req, rc);
		return;
	}
	run(req);
}

/* ---------------------------------------------------------------- lifecycle */

int64_t cs_core_default_ttl(const struct cs_core *core, const struct cs_mount *m)
{
	if (m && m->default_lease_ttl > 0)
		return m->default_lease_ttl;
	return core->cfg->default_lease_ttl > 0 ? core->cfg->default_lease_ttl
						: CS_DEFAULT_LEASE_TTL;
}

int64_t cs_core_max_ttl(const struct cs_core *core, const struct cs_mount *m)
{
	if (m && m->max_lease_ttl > 0)
		return m->max_lease_ttl;
	return core->cfg->max_lease_ttl > 0 ? core->cfg->max_lease_ttl : CS_DEFAULT_LEASE_TTL;
}

static const struct cs_keyring *autopilot_keyring(void *ctx)
{
	return ((struct cs_core *)ctx)->kr;
}

static bool autopilot_is_active(void *ctx)
{
	return ((struct cs_core *)ctx)->active;
}

int cs_core_init(struct cs_core *core, uv_loop_t *loop, struct cs_config *cfg)
{
	core->loop = loop;
	core->cfg = cfg;
	core->autopilot = (struct cs_autopilot_env){
	    .loop = loop,
	    .node = &core->node,
	    .st = &core->st,
	    .node_id = cfg->node_id,
	    .keyring = autopilot_keyring,
	    .is_active = autopilot_is_active,
	    .ctx = core,
	    .state = cs_autopilot_state_new(),
	};
	if (!core->autopilot.state) {
		snprintf(core->errmsg, sizeof core->errmsg, "out of memory");
		return CS_ENOMEM;
	}
	cs_router_init(&core->router);
	if (cs_workpool_init(&core->pool, loop, CS_ASYNC_MAX_RUNNING)) {
		snprintf(core->errmsg, sizeof core->errmsg, "start the worker pool");
		return CS_EINTERNAL;
	}
	uv_timer_init(loop, &core->wait_timer);
	snprintf(core->data_dir, sizeof core->data_dir, "%s", cfg->storage_path);
	int e = cs_mkdir_p(core->data_dir, 0700);
	if (e) {
		snprintf(core->errmsg, sizeof core->errmsg, "create data directory %.512s: %s",
			 core->data_dir, strerror(e));
		return CS_EIO;
	}
	char path[4200];
	snprintf(path, sizeof path, "%s/fsm", core->data_dir);
	int rc = cs_storage_open(&core->st, path, CS_STORE_DEFAULT_MAP_SIZE);
	if (rc) {
		snprintf(core->errmsg, sizeof core->errmsg, "open storage: %s",
			 core->st.store.errmsg);
		return rc;
	}
	core->st.on_restore = cs_ha_on_restore;
	core->st.restore_ctx = core;
	rc = cs_seal_load_config(core);
	if (!rc && core->autoseal_hooks.setup)
		rc = core->autoseal_hooks.setup(core);
	else if (!rc && (cfg->n_seals > 0 || core->seal.kind != 0)) {
		snprintf(core->errmsg, sizeof core->errmsg, "auto-unseal is not built in");
		rc = CS_EINVAL;
	}
	if (!rc)
		rc = cs_ha_init(core);
	if (!rc && core->autoseal_hooks.start)
		core->autoseal_hooks.start(core);
	return rc;
}

int cs_core_listen(struct cs_core *core)
{
	for (int i = 0; i < core->cfg->n_listeners; i++) {
		char err[256];
		struct cs_http_listener *l =
		    cs_http_listen(core->loop, &core->cfg->listeners[i], cs_core_handle_http, core,
				   err, sizeof err);
		if (!l) {
			snprintf(core->errmsg, sizeof core->errmsg, "listener %s: %s",
				 core->cfg->listeners[i].address, err);
			return CS_EIO;
		}
		core->listeners[core->n_listeners++] = l;
	}
	return 0;
}

static void shutdown_step_done(struct cs_core *core)
{
	if (--core->shutdown_pending > 0)
		return;
	cs_storage_close(&core->st);
	cs_core_seal(core);
	cs_router_clear(&core->router);
	cs_sys_mount_free(core);
	uv_close((uv_handle_t *)&core->wait_timer, NULL);
	/* Jobs still running finish first (their requests then fail with CS_ESHUTDOWN):
	 * the pool closes after the last one. */
	if (core->async_running == 0)
		cs_workpool_close(&core->pool);
	else
		core->pool_close_pending = true;
	if (core->shutdown_cb)
		core->shutdown_cb(core);
}

static void listener_closed(void *ctx)
{
	shutdown_step_done(ctx);
}

static void ha_closed(struct cs_core *core)
{
	shutdown_step_done(core);
}

void cs_core_shutdown(struct cs_core *core, void (*cb)(struct cs_core *core))
{
	if (core->shutting_down)
		return;
	core->shutting_down = true;
	core->shutdown_cb = cb;
	core->shutdown_pending = 1 + core->n_listeners + (core->autoseal != NULL);
	resume_waiting(core, CS_ESHUTDOWN);
	if (core->autoseal)
		core->autoseal_hooks.shutdown(core, ha_closed);
	for (int i = 0; i < core->n_listeners; i++)
		cs_http_listener_close(core->listeners[i], listener_closed, core);
	core->n_listeners = 0;
	cs_ha_shutdown(core, ha_closed);
}

/* ---------------------------------------------------------------- admission */

/*
 * cs_core_admit (core.h): the same first steps as cs_core_handle_http and run() — path,
 * method, sealed, route, then authorize() and the ACL hook exactly as a resumed request
 * runs them — for a request whose body has not been read. Read-only: the transaction is
 * aborted, so a limited-use token spends its use in the real request, not here.
 */
int cs_core_admit(struct cs_core *core, struct cs_http_req *h, char **body, size_t *len)
{
	struct cs_request *req = calloc(1, sizeof *req);
	if (!req)
		abort();
	req->core = core;
	req->http = h;
	req->start_ms = cs_mono_ms();
	req->data = cJSON_CreateObject();
	req->path = strdup(strncmp(h->path, "/v1/", 4) == 0 ? h->path + 4 : h->path);
	bool is_head = false;
	int rc = 0;
	if (strncmp(h->path, "/v1/", 4) != 0)
		rc = CS_ENOTFOUND;
	else if (cs_http_decode_method(h->method, &req->op, &is_head))
		rc = cs_req_error(req, CS_EUNSUPPORTED, "unsupported operation");
	else if (core->shutting_down)
		rc = CS_ESHUTDOWN;
	else
		rc = canonical_path(req, h); /* the same path the full pipeline would judge */
	if (!rc) {
		bool sealed = core->kr == NULL;
		route_once(req, sealed);
		unsigned flags = req->route ? req->route->flags : 0;
		if (sealed && !(flags & CS_PATH_SEALED_OK))
			rc = CS_ESEALED;
	}
	if (!rc) {
		req->client_token = cs_http_client_token(h);
		cs_txn_begin(&req->txn, &core->st, core->kr);
		req->txn_open = true;
		rc = authorize(req);
		if (!rc && req->route && !(req->route->flags & CS_PATH_UNAUTH))
			rc = cs_backend_acl(req);
		else if (!rc && req->no_route)
			rc = cs_req_error(req, CS_ENOTFOUND, "unsupported path");
		if (rc && req->core->audit.request) /* a refusal is logged like any other */
			rc = req->core->audit.request(req, rc);
	}
	int status = 0;
	*body = NULL;
	*len = 0;
	if (rc) {
		status = req->status ? req->status : cs_err_status(rc);
		const char *msg = req->errmsg;
		if (!msg && rc != CS_ENOTFOUND)
			msg = cs_strerror(rc);
		*body = cs_response_errors(msg, len);
	}
	req->http = NULL;
	req_free(req);
	return status;
}
