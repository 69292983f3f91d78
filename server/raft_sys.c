/*
 * sys/storage/raft/ membership and autopilot endpoints (see raft_sys.h).
 *
 * Happy path of a change (remove-peer, promote, demote): the handler resolves server_id
 * in the raft configuration, starts cs_autopilot_change and parks the request with
 * cs_req_wait; the change's callback (loop thread) records the outcome and wakes it; the
 * core then resumes the request, which answers 204 or the change's error.
 * Failure modes: the change cannot start (busy: 503, unknown id or active node: 400) →
 * answered at once; the change fails later → its status and message; the node is sealed,
 * loses leadership or shuts down while the request waits → the core's status (raft
 * always calls a change back, with an error on leadership loss or shutdown).
 */
#include "server/raft_sys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/util.h"
#include "raft/autopilot.h"
#include "server/core.h"
#include "server/sys.h"

/* ---------------------------------------------------------------- change job */

/* A membership change the request waits for (cs_req_wait): the autopilot change's
 * callback records the outcome and wakes the request, whose resume answers. */
struct change_job {
	struct cs_async async;
	int status;
	char errmsg[512];
};

/* cs_ap_change_cb, loop thread, never from inside cs_autopilot_change. */
static void change_done(void *ctx, int status, const char *errmsg)
{
	struct change_job *job = ctx;
	job->status = status;
	snprintf(job->errmsg, sizeof job->errmsg, "%s", errmsg ? errmsg : "");
	cs_req_wake(&job->async);
}

/* Loop thread, in a fresh transaction (or none, with status != 0). */
static int change_resume(struct cs_request *req, struct cs_async *a, int status)
{
	struct change_job *job = CS_CONTAINER_OF(a, struct change_job, async);
	int result = job->status;
	char msg[sizeof job->errmsg];
	snprintf(msg, sizeof msg, "%s", job->errmsg);
	free(job);
	if (status)
		return status;
	if (result)
		return cs_req_error(req, result, "%s", msg[0] ? msg : cs_strerror(result));
	return 0;
}

/* ---------------------------------------------------------------- helpers */

static struct raft *leader_raft(struct cs_request *req)
{
	struct raft *r = &req->core->node.raft;
	return raft_state(r) == RAFT_LEADER ? r : NULL;
}

/*
 * Find `server_id` in the raft configuration: a recorded node_id first, then the raft
 * id in decimal, then the id a node with that node_id would have. 0 or CS_EINVAL.
 */
static int resolve(struct cs_request *req, struct raft *r, const char *server_id, raft_id *id,
		   char *name, size_t namelen)
{
	raft_id derived = cs_raft_id_from_name(server_id);
	char dec[32];
	raft_id by_other = 0;
	for (unsigned i = 0; i < r->configuration.n; i++) {
		raft_id sid = r->configuration.servers[i].id;
		char nm[CS_AUTOPILOT_NODE_ID_MAX];
		cs_autopilot_server_name(&req->core->autopilot, &req->txn, sid, nm, sizeof nm);
		snprintf(dec, sizeof dec, "%llu", (unsigned long long)sid);
		if (strcmp(nm, server_id) == 0) {
			*id = sid;
			snprintf(name, namelen, "%s", nm);
			return 0;
		}
		if (!by_other && (strcmp(dec, server_id) == 0 || sid == derived)) {
			by_other = sid;
			snprintf(name, namelen, "%s", nm);
		}
	}
	if (by_other) {
		*id = by_other;
		return 0;
	}
	return cs_req_error(req, CS_EINVAL, "server_id \"%s\" is not in the raft configuration",
			    server_id);
}

static int start_change(struct cs_request *req, enum cs_ap_change_kind kind)
{
	const char *server_id = cs_req_str(req, "server_id", "");
	if (!*server_id)
		return cs_req_error(req, CS_EINVAL, "no server id provided");
	if (strlen(server_id) >= CS_AUTOPILOT_NODE_ID_MAX)
		return cs_req_error(req, CS_EINVAL, "server id exceeds max length");
	struct raft *r = leader_raft(req);
	if (!r)
		return cs_req_error(req, CS_ENOTACTIVE, "node is not the raft leader");
	raft_id id = 0;
	char name[CS_AUTOPILOT_NODE_ID_MAX], err[512];
	int rc = resolve(req, r, server_id, &id, name, sizeof name);
	if (rc)
		return rc;
	if (id == r->id && kind != CS_AP_PROMOTE)
		return cs_req_error(req, CS_EINVAL,
				    "cannot %s the active node \"%s\"; step it down first "
				    "(sys/step-down), then ask the new active node",
				    kind == CS_AP_REMOVE ? "remove" : "demote", name);
	struct change_job *job = calloc(1, sizeof *job);
	if (!job)
		abort();
	job->async.resume = change_resume;
	rc = cs_autopilot_change(&req->core->autopilot, kind, id, name, change_done, job, err,
				 sizeof err);
	if (rc) {
		free(job); /* the callback will never run */
		return cs_req_error(req, rc, "%s", err);
	}
	return cs_req_wait(req, &job->async);
}

/* ---------------------------------------------------------------- handlers */

static int h_remove_peer(struct cs_request *req)
{
	return start_change(req, CS_AP_REMOVE);
}

static int h_promote(struct cs_request *req)
{
	return start_change(req, CS_AP_PROMOTE);
}

static int h_demote(struct cs_request *req)
{
	return start_change(req, CS_AP_DEMOTE);
}

static int h_configuration(struct cs_request *req)
{
	struct raft *r = leader_raft(req);
	if (!r)
		return cs_req_error(req, CS_ENOTACTIVE, "node is not the raft leader");
	cJSON *servers = cJSON_CreateArray();
	for (unsigned i = 0; i < r->configuration.n; i++) {
		const struct raft_server *s = &r->configuration.servers[i];
		char name[CS_AUTOPILOT_NODE_ID_MAX];
		cs_autopilot_server_name(&req->core->autopilot, &req->txn, s->id, name,
					 sizeof name);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "node_id", name);
		cJSON_AddStringToObject(o, "address", s->address ? s->address : "");
		cJSON_AddBoolToObject(o, "leader", s->id == r->id);
		cJSON_AddStringToObject(o, "protocol_version", "3");
		cJSON_AddBoolToObject(o, "voter", s->role == RAFT_VOTER);
		cJSON_AddItemToArray(servers, o);
	}
	/* The configuration raft uses now: the uncommitted one while a change is pending. */
	raft_index index = r->configuration_uncommitted_index ? r->configuration_uncommitted_index
							      : r->configuration_index;
	cJSON *config = cJSON_CreateObject();
	cJSON_AddNumberToObject(config, "index", (double)index);
	cJSON_AddItemToObject(config, "servers", servers);
	cJSON *data = cJSON_CreateObject();
	cJSON_AddItemToObject(data, "config", config);
	cs_req_set_data(req, data);
	return 0;
}

static int h_autopilot_state(struct cs_request *req)
{
	cJSON *state = cs_autopilot_state_json(&req->core->autopilot, &req->txn);
	if (!state)
		return cs_req_error(req, CS_ENOTACTIVE, "autopilot is not running on this node");
	cs_req_set_data(req, state);
	return 0;
}

static int h_autopilot_config_read(struct cs_request *req)
{
	struct cs_autopilot_config c;
	int rc = cs_autopilot_config_load(&req->txn, &c, NULL);
	if (rc)
		return rc;
	cs_req_set_data(req, cs_autopilot_config_json(&c));
	return 0;
}

/* As Vault: persist only the fields the caller gave (over earlier ones), validate the
 * effective configuration, 204. Autopilot reloads it at its next update. */
static int h_autopilot_config_write(struct cs_request *req)
{
	struct cs_autopilot_config c;
	cJSON *overrides = NULL;
	char err[512];
	int rc = cs_autopilot_config_load(&req->txn, &c, &overrides);
	if (!rc)
		rc = cs_autopilot_config_merge(overrides, req->data, err, sizeof err);
	else
		snprintf(err, sizeof err, "cannot read the autopilot configuration");
	if (!rc) {
		cs_autopilot_config_apply(&c, overrides);
		rc = cs_autopilot_config_validate(&c, err, sizeof err);
	}
	if (!rc) {
		char *s = cJSON_PrintUnformatted(overrides);
		rc = s ? cs_txn_put(&req->txn, CS_AUTOPILOT_CONFIG_KEY, s, strlen(s)) : CS_ENOMEM;
		free(s);
		snprintf(err, sizeof err, "%s", cs_strerror(rc));
	}
	cJSON_Delete(overrides);
	if (rc)
		return cs_req_error(req, rc, "%s", err);
	cs_autopilot_config_changed();
	return 0;
}

/* ---------------------------------------------------------------- table */

static const struct cs_field server_id_fields[] = {
    {.name = "server_id", .type = CS_FIELD_STRING, .desc = "the node_id of the server"},
    {.name = NULL},
};

static const struct cs_field autopilot_fields[] = {
    {.name = "cleanup_dead_servers",
     .type = CS_FIELD_BOOL,
     .desc = "remove dead servers periodically"},
    {.name = "last_contact_threshold",
     .type = CS_FIELD_DURATION,
     .desc = "silence before a server is unhealthy"},
    {.name = "dead_server_last_contact_threshold",
     .type = CS_FIELD_DURATION,
     .desc = "silence before a server is dead (cleanup_dead_servers)"},
    {.name = "max_trailing_logs",
     .type = CS_FIELD_INT,
     .desc = "entries a healthy server may trail by"},
    {.name = "min_quorum",
     .type = CS_FIELD_INT,
     .desc = "voters kept by dead-server cleanup (at least 3)"},
    {.name = "server_stabilization_time",
     .type = CS_FIELD_DURATION,
     .desc = "health needed before a non-voter is promoted"},
    {.name = "disable_upgrade_migration",
     .type = CS_FIELD_BOOL,
     .desc = "accepted for compatibility"},
    {.name = NULL},
};

static const struct cs_path raft_paths[] = {
    {.pattern = "storage/raft/configuration",
     .ops = {[CS_OP_READ] = h_configuration},
     .synopsis = "the raft configuration"},
    {.pattern = "storage/raft/remove-peer",
     .fields = server_id_fields,
     .ops = {[CS_OP_UPDATE] = h_remove_peer},
     .synopsis = "remove a peer from the raft cluster"},
    {.pattern = "storage/raft/promote",
     .fields = server_id_fields,
     .ops = {[CS_OP_UPDATE] = h_promote},
     .synopsis = "promote a non-voter to a voter"},
    {.pattern = "storage/raft/demote",
     .fields = server_id_fields,
     .ops = {[CS_OP_UPDATE] = h_demote},
     .synopsis = "demote a voter to a permanent non-voter"},
    {.pattern = "storage/raft/autopilot/state",
     .ops = {[CS_OP_READ] = h_autopilot_state},
     .synopsis = "the cluster as autopilot sees it"},
    {.pattern = "storage/raft/autopilot/configuration",
     .fields = autopilot_fields,
     .ops = {[CS_OP_READ] = h_autopilot_config_read, [CS_OP_UPDATE] = h_autopilot_config_write},
     .synopsis = "autopilot configuration"},
};

void cs_raft_sys_register(struct cs_core *core)
{
	(void)core;
	cs_sys_set_paths(CS_SYS_RAFT, raft_paths, CS_ARRAY_LEN(raft_paths));
}
