/*
 * sys/storage/raft/ membership and autopilot endpoints (see raft_sys.h).
 *
 * Happy path of a change (remove-peer, promote, demote): the handler resolves server_id
 * in the raft configuration, starts cs_autopilot_change with a ticket, and defers the
 * request; the job's pool thread sleeps on the ticket; the change's callback (loop
 * thread) fills and signals it; the core then resumes the request, which answers 204 or
 * the change's error.
 * Failure modes: the change cannot start (busy: 503, unknown id or active node: 400) →
 * answered at once; the change fails later → its status and message; the node is sealed,
 * loses leadership or shuts down while the request is deferred → the core's status (the
 * change still completes and releases its reference to the ticket); the change does not
 * finish within CS_RAFT_SYS_CHANGE_WAIT_S → 500 (the change goes on).
 * The ticket is shared by two threads and freed by whichever side lets go last.
 */
#include "server/raft_sys.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/err.h"
#include "lib/util.h"
#include "raft/autopilot.h"
#include "server/core.h"
#include "server/sys.h"

/* ---------------------------------------------------------------- ticket */

struct ticket {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* CLOCK_MONOTONIC */
	int refs;          /* the change's callback + the deferred job */
	bool done;
	int status;
	char errmsg[512];
};

struct change_job {
	struct cs_async async;
	struct ticket *t;
};

static struct ticket *ticket_new(void)
{
	struct ticket *t = calloc(1, sizeof *t);
	if (!t)
		abort();
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&t->mu, NULL);
	t->refs = 2;
	return t;
}

/* Drop one reference (mutex held); frees after unlocking when it was the last. */
static void ticket_unlock_release(struct ticket *t)
{
	bool last = --t->refs == 0;
	pthread_mutex_unlock(&t->mu);
	if (last) {
		pthread_cond_destroy(&t->cv);
		pthread_mutex_destroy(&t->mu);
		free(t);
	}
}

/* cs_ap_change_cb, loop thread. */
static void change_done(void *ctx, int status, const char *errmsg)
{
	struct ticket *t = ctx;
	pthread_mutex_lock(&t->mu);
	t->done = true;
	t->status = status;
	snprintf(t->errmsg, sizeof t->errmsg, "%s", errmsg ? errmsg : "");
	pthread_cond_signal(&t->cv);
	ticket_unlock_release(t);
}

/* Pool thread: touches only the ticket. */
static void change_wait(struct cs_async *a)
{
	struct change_job *job = CS_CONTAINER_OF(a, struct change_job, async);
	struct ticket *t = job->t;
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += CS_RAFT_SYS_CHANGE_WAIT_S;
	pthread_mutex_lock(&t->mu);
	while (!t->done)
		if (pthread_cond_timedwait(&t->cv, &t->mu, &deadline) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&t->mu);
}

/* Loop thread, in a fresh transaction (or none, with status != 0). */
static int change_resume(struct cs_request *req, struct cs_async *a, int status)
{
	struct change_job *job = CS_CONTAINER_OF(a, struct change_job, async);
	struct ticket *t = job->t;
	char msg[sizeof t->errmsg];
	pthread_mutex_lock(&t->mu);
	bool done = t->done;
	int result = t->status;
	snprintf(msg, sizeof msg, "%s", t->errmsg);
	ticket_unlock_release(t);
	free(job);
	if (status)
		return status;
	if (!done)
		return cs_req_error(req, CS_EINTERNAL,
				    "timed out waiting for the raft configuration change; it may "
				    "still complete");
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
		cs_autopilot_server_name(req->core, &req->txn, sid, nm, sizeof nm);
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
	job->t = ticket_new();
	job->async.work = change_wait;
	job->async.resume = change_resume;
	rc = cs_autopilot_change(req->core, kind, id, name, change_done, job->t, err, sizeof err);
	if (rc) {
		/* The callback will never run: both references are ours. */
		pthread_cond_destroy(&job->t->cv);
		pthread_mutex_destroy(&job->t->mu);
		free(job->t);
		free(job);
		return cs_req_error(req, rc, "%s", err);
	}
	return cs_req_defer(req, &job->async);
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
		cs_autopilot_server_name(req->core, &req->txn, s->id, name, sizeof name);
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
	cJSON *state = cs_autopilot_state_json(req->core, &req->txn);
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
    {"server_id", CS_FIELD_STRING, "the node_id of the server", false},
    {NULL, 0, NULL, false},
};

static const struct cs_field autopilot_fields[] = {
    {"cleanup_dead_servers", CS_FIELD_BOOL, "remove dead servers periodically", false},
    {"last_contact_threshold", CS_FIELD_DURATION, "silence before a server is unhealthy", false},
    {"dead_server_last_contact_threshold", CS_FIELD_DURATION,
     "silence before a server is dead (cleanup_dead_servers)", false},
    {"max_trailing_logs", CS_FIELD_INT, "entries a healthy server may trail by", false},
    {"min_quorum", CS_FIELD_INT, "voters kept by dead-server cleanup (at least 3)", false},
    {"server_stabilization_time", CS_FIELD_DURATION, "health needed before a non-voter is promoted",
     false},
    {"disable_upgrade_migration", CS_FIELD_BOOL, "accepted for compatibility", false},
    {NULL, 0, NULL, false},
};

static const struct cs_path raft_paths[] = {
    {"storage/raft/configuration",
     NULL,
     {[CS_OP_READ] = h_configuration},
     NULL,
     0,
     "the raft configuration"},
    {"storage/raft/remove-peer",
     server_id_fields,
     {[CS_OP_UPDATE] = h_remove_peer},
     NULL,
     0,
     "remove a peer from the raft cluster"},
    {"storage/raft/promote",
     server_id_fields,
     {[CS_OP_UPDATE] = h_promote},
     NULL,
     0,
     "promote a non-voter to a voter"},
    {"storage/raft/demote",
     server_id_fields,
     {[CS_OP_UPDATE] = h_demote},
     NULL,
     0,
     "demote a voter to a permanent non-voter"},
    {"storage/raft/autopilot/state",
     NULL,
     {[CS_OP_READ] = h_autopilot_state},
     NULL,
     0,
     "the cluster as autopilot sees it"},
    {"storage/raft/autopilot/configuration",
     autopilot_fields,
     {[CS_OP_READ] = h_autopilot_config_read, [CS_OP_UPDATE] = h_autopilot_config_write},
     NULL,
     0,
     "autopilot configuration"},
};

void cs_raft_sys_register(struct cs_core *core)
{
	(void)core;
	cs_sys_add_paths(raft_paths, CS_ARRAY_LEN(raft_paths));
}
