/*
 * cs_periodic_tick (server/periodic.h). A run is an internal request (cs_core_internal)
 * on the mount's routing path with a one-row table whose update handler is the backend's
 * periodic function. The run's record (row, mount path) lives until its `done` callback;
 * the set of mounts with a run in flight is kept per core, so a slow run (RSA key
 * generation on the pool) is never started twice.
 */
#include "server/periodic.h"

#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"
#include "server/core.h"

struct run {
	struct cs_core *core;
	struct cs_path row;
	struct run *next; /* in flight */
	char mount[];     /* routing path, e.g. "transit/" */
};

struct periodic_state {
	uint64_t last_ms;
	struct run *in_flight;
	uint64_t runs, failures;
};

static void release(void *p)
{
	/* Runs in flight at release time belong to requests the core has already failed
	 * (shutdown fails every suspended request, whose `done` unlinked its run). */
	(void)p;
}

static const struct cs_core_state_type periodic_type = {
    .name = "periodic",
    .size = sizeof(struct periodic_state),
    .release = release,
};

static struct periodic_state *state_of(struct cs_core *core)
{
	return cs_core_state(core, &periodic_type);
}

static bool in_flight(struct periodic_state *P, const char *mount)
{
	for (struct run *r = P->in_flight; r; r = r->next)
		if (strcmp(r->mount, mount) == 0)
			return true;
	return false;
}

static void run_done(struct cs_request *req, int status, void *ctx)
{
	struct run *run = ctx;
	struct periodic_state *P = state_of(run->core);
	for (struct run **pp = &P->in_flight; *pp; pp = &(*pp)->next) {
		if (*pp == run) {
			*pp = run->next;
			break;
		}
	}
	if (status) {
		P->failures++;
		if (status != CS_ENOTACTIVE && status != CS_ESEALED && status != CS_ESHUTDOWN)
			cs_warn("periodic: %s: %s", run->mount,
				req->errmsg ? req->errmsg : cs_strerror(status));
	}
	free(run);
}

static void start(struct cs_core *core, struct periodic_state *P, const struct cs_mount *m)
{
	size_t n = strlen(m->path) + 1;
	struct run *run = calloc(1, sizeof *run + n);
	if (!run)
		abort();
	run->core = core;
	memcpy(run->mount, m->path, n);
	run->row = (struct cs_path){
	    .pattern = "",
	    .ops[CS_OP_UPDATE] = m->backend->periodic,
	    .flags = CS_PATH_ANY_FIELDS,
	    .synopsis = "periodic function",
	};
	run->next = P->in_flight;
	P->in_flight = run;
	P->runs++;
	int rc = cs_core_internal(core, &(struct cs_internal){
					    .op = CS_OP_UPDATE,
					    .path = m->path,
					    .route = &run->row,
					    .done = run_done,
					    .ctx = run,
					});
	if (rc) { /* not started: done never runs */
		P->in_flight = run->next;
		P->runs--;
		free(run);
	}
}

void cs_periodic_tick(struct cs_core *core)
{
	if (!core->active || !core->kr || core->shutting_down)
		return;
	struct periodic_state *P = state_of(core);
	uint64_t now = cs_mono_ms();
	int64_t every = core->cfg->periodic_interval > 0 ? core->cfg->periodic_interval : 60;
	if (P->last_ms && now - P->last_ms < (uint64_t)every * 1000)
		return;
	P->last_ms = now;
	/* Snapshot the mounts first: a run that completes synchronously may change the
	 * table (it never does today, but the loop must not depend on it). */
	size_t n = core->router.n;
	struct cs_mount **ms = malloc((n ? n : 1) * sizeof *ms);
	if (!ms)
		abort();
	memcpy(ms, core->router.mounts, n * sizeof *ms);
	for (size_t i = 0; i < n; i++)
		cs_mount_hold(ms[i]);
	for (size_t i = 0; i < n; i++) {
		const struct cs_mount *m = ms[i];
		if (m->backend && m->backend->periodic && !in_flight(P, m->path) &&
		    cs_router_has(&core->router, m))
			start(core, P, m);
	}
	for (size_t i = 0; i < n; i++)
		cs_mount_free(ms[i]);
	free(ms);
}

uint64_t cs_periodic_runs(struct cs_core *core)
{
	return state_of(core)->runs;
}

uint64_t cs_periodic_failures(struct cs_core *core)
{
	return state_of(core)->failures;
}
