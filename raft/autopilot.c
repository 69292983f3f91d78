/*
 * Autopilot and the membership-change executor (see autopilot.h for the happy path and
 * the failure modes).
 *
 * Layout: configuration and member records (storage formats), the pure server logic
 * (no globals, clock passed in: unit-tested in tests/unit/test_autopilot.c), the
 * tracker that turns raft's leader state into cs_ap_server rows, the reconcile tick, and
 * the change executor, a small state machine driven by one timer so that no stage runs
 * inside a raft or commit callback and the caller's callback never runs synchronously.
 */
#include "raft/autopilot.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"
#include "raft/node.h"

/* ---------------------------------------------------------------- configuration */

enum field_kind { F_BOOL, F_DURATION, F_COUNT };

static const struct {
	const char *name;
	enum field_kind kind;
} config_fields[] = {
    {"cleanup_dead_servers", F_BOOL},
    {"last_contact_threshold", F_DURATION},
    {"dead_server_last_contact_threshold", F_DURATION},
    {"max_trailing_logs", F_COUNT},
    {"min_quorum", F_COUNT},
    {"server_stabilization_time", F_DURATION},
    {"disable_upgrade_migration", F_BOOL},
};

void cs_autopilot_config_defaults(struct cs_autopilot_config *c)
{
	memset(c, 0, sizeof *c);
	c->last_contact_threshold = 10;
	c->dead_server_last_contact_threshold = 24 * 3600;
	c->max_trailing_logs = 1000;
	c->server_stabilization_time = 10;
}

/* One request value as the JSON item we persist, or NULL if its type is wrong. */
static cJSON *coerce_field(enum field_kind kind, const cJSON *v)
{
	if (kind == F_BOOL) {
		bool b;
		if (cJSON_IsBool(v))
			return cJSON_CreateBool(cJSON_IsTrue(v));
		if (cJSON_IsString(v) && cs_parse_bool(v->valuestring, &b) == 0)
			return cJSON_CreateBool(b);
		return NULL;
	}
	int64_t n;
	if (cJSON_IsNumber(v)) {
		if (v->valuedouble < 0 || v->valuedouble > 1e15 ||
		    v->valuedouble != (double)(int64_t)v->valuedouble)
			return NULL;
		n = (int64_t)v->valuedouble;
	} else if (cJSON_IsString(v) && kind == F_DURATION) {
		if (cs_parse_duration(v->valuestring, &n) || n < 0)
			return NULL;
	} else if (cJSON_IsString(v)) {
		char *end = NULL;
		long long l = strtoll(v->valuestring, &end, 10);
		if (!*v->valuestring || *end || l < 0)
			return NULL;
		n = l;
	} else {
		return NULL;
	}
	return cJSON_CreateNumber((double)n);
}

int cs_autopilot_config_merge(cJSON *overrides, const cJSON *in, char *errmsg, size_t errlen)
{
	cJSON *items[CS_ARRAY_LEN(config_fields)] = {0};
	/* Convert everything first: a bad field leaves `overrides` untouched. */
	for (size_t i = 0; i < CS_ARRAY_LEN(config_fields); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, config_fields[i].name);
		if (!v)
			continue;
		items[i] = coerce_field(config_fields[i].kind, v);
		if (!items[i]) {
			snprintf(errmsg, errlen, "error converting input for field \"%s\"",
				 config_fields[i].name);
			for (size_t j = 0; j < i; j++)
				cJSON_Delete(items[j]);
			return CS_EINVAL;
		}
	}
	for (size_t i = 0; i < CS_ARRAY_LEN(config_fields); i++) {
		if (!items[i])
			continue;
		cJSON_DeleteItemFromObjectCaseSensitive(overrides, config_fields[i].name);
		cJSON_AddItemToObject(overrides, config_fields[i].name, items[i]);
	}
	return 0;
}

static void apply_number(int64_t *dst, const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	/* Vault's Merge: zero means "keep the default". */
	if (cJSON_IsNumber(v) && v->valuedouble >= 1)
		*dst = (int64_t)v->valuedouble;
}

static void apply_bool(bool *dst, const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	if (cJSON_IsBool(v))
		*dst = cJSON_IsTrue(v);
}

void cs_autopilot_config_apply(struct cs_autopilot_config *c, const cJSON *o)
{
	cs_autopilot_config_defaults(c);
	if (!cJSON_IsObject(o))
		return;
	apply_bool(&c->cleanup_dead_servers, o, "cleanup_dead_servers");
	apply_number(&c->last_contact_threshold, o, "last_contact_threshold");
	apply_number(&c->dead_server_last_contact_threshold, o,
		     "dead_server_last_contact_threshold");
	apply_number(&c->max_trailing_logs, o, "max_trailing_logs");
	apply_number(&c->min_quorum, o, "min_quorum");
	apply_number(&c->server_stabilization_time, o, "server_stabilization_time");
	apply_bool(&c->disable_upgrade_migration, o, "disable_upgrade_migration");
}

int cs_autopilot_config_validate(const struct cs_autopilot_config *c, char *errmsg, size_t errlen)
{
	if (c->cleanup_dead_servers && c->min_quorum < 3) {
		snprintf(errmsg, errlen,
			 "min_quorum must be set when cleanup_dead_servers is set and it should at "
			 "least be 3; cleanup_dead_servers: true, min_quorum: %" PRId64,
			 c->min_quorum);
		return CS_EINVAL;
	}
	if (c->cleanup_dead_servers && c->dead_server_last_contact_threshold < 60) {
		char d[32];
		cs_format_duration(c->dead_server_last_contact_threshold, d, sizeof d);
		snprintf(errmsg, errlen,
			 "dead_server_last_contact_threshold should not be set to less than 1m; "
			 "received: %s",
			 d);
		return CS_EINVAL;
	}
	return 0;
}

cJSON *cs_autopilot_config_json(const struct cs_autopilot_config *c)
{
	char d[32];
	cJSON *j = cJSON_CreateObject();
	cJSON_AddBoolToObject(j, "cleanup_dead_servers", c->cleanup_dead_servers);
	cs_format_duration(c->last_contact_threshold, d, sizeof d);
	cJSON_AddStringToObject(j, "last_contact_threshold", d);
	cs_format_duration(c->dead_server_last_contact_threshold, d, sizeof d);
	cJSON_AddStringToObject(j, "dead_server_last_contact_threshold", d);
	cJSON_AddNumberToObject(j, "max_trailing_logs", (double)c->max_trailing_logs);
	cJSON_AddNumberToObject(j, "min_quorum", (double)c->min_quorum);
	cs_format_duration(c->server_stabilization_time, d, sizeof d);
	cJSON_AddStringToObject(j, "server_stabilization_time", d);
	return j;
}

int cs_autopilot_config_load(struct cs_txn *txn, struct cs_autopilot_config *c, cJSON **overrides)
{
	struct cs_buf b = CS_BUF_INIT;
	cJSON *o = NULL;
	int rc = cs_txn_get(txn, CS_AUTOPILOT_CONFIG_KEY, &b);
	if (rc == 0)
		o = cJSON_ParseWithLength(b.data, b.len);
	cs_buf_free_secure(&b);
	if (rc == CS_ENOTFOUND)
		rc = 0;
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		o = cJSON_CreateObject();
	}
	cs_autopilot_config_apply(c, o);
	if (overrides)
		*overrides = o;
	else
		cJSON_Delete(o);
	return rc;
}

/* ---------------------------------------------------------------- member records */

static void member_key(raft_id id, char *out, size_t outlen)
{
	snprintf(out, outlen, CS_AUTOPILOT_NODES_PREFIX "%llu", (unsigned long long)id);
}

static void copy_str(char *dst, size_t n, const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	snprintf(dst, n, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

bool cs_autopilot_marker_removes(const char *val, size_t len, uint64_t admitted_index)
{
	if (!admitted_index)
		return true;
	cJSON *j = cJSON_ParseWithLength(val ? val : "", val ? len : 0);
	const cJSON *ix = cJSON_GetObjectItemCaseSensitive(j, "index");
	uint64_t at = 0;
	if (cJSON_IsString(ix) && ix->valuestring[0] >= '0' && ix->valuestring[0] <= '9')
		at = strtoull(ix->valuestring, NULL, 10);
	cJSON_Delete(j);
	return at >= admitted_index;
}

int cs_autopilot_member_get(struct cs_txn *txn, raft_id id, struct cs_autopilot_member *out)
{
	char key[64];
	struct cs_buf b = CS_BUF_INIT;
	member_key(id, key, sizeof key);
	memset(out, 0, sizeof *out);
	int rc = cs_txn_get(txn, key, &b);
	if (rc) {
		cs_buf_free(&b);
		return rc;
	}
	cJSON *o = cJSON_ParseWithLength(b.data, b.len);
	cs_buf_free(&b);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return CS_EIO;
	}
	copy_str(out->node_id, sizeof out->node_id, o, "node_id");
	copy_str(out->api_addr, sizeof out->api_addr, o, "api_addr");
	copy_str(out->cluster_addr, sizeof out->cluster_addr, o, "cluster_addr");
	out->non_voter = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "non_voter"));
	cJSON_Delete(o);
	return 0;
}

int cs_autopilot_member_put(struct cs_txn *txn, raft_id id, const struct cs_autopilot_member *m)
{
	char key[64];
	member_key(id, key, sizeof key);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "node_id", m->node_id);
	cJSON_AddStringToObject(o, "api_addr", m->api_addr);
	cJSON_AddStringToObject(o, "cluster_addr", m->cluster_addr);
	cJSON_AddBoolToObject(o, "non_voter", m->non_voter);
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!s)
		return CS_ENOMEM;
	int rc = cs_txn_put(txn, key, s, strlen(s));
	free(s);
	return rc;
}

void cs_autopilot_member_name(struct cs_txn *txn, raft_id id, char *out, size_t outlen)
{
	struct cs_autopilot_member m;
	if (cs_autopilot_member_get(txn, id, &m) == 0 && m.node_id[0])
		snprintf(out, outlen, "%s", m.node_id);
	else
		snprintf(out, outlen, "%llu", (unsigned long long)id);
}

void cs_autopilot_server_name(const struct cs_autopilot_env *env, struct cs_txn *txn, raft_id id,
			      char *out, size_t outlen)
{
	if (id == env->node->id && env->node_id)
		snprintf(out, outlen, "%s", env->node_id);
	else
		cs_autopilot_member_name(txn, id, out, outlen);
}

/* ---------------------------------------------------------------- pure server logic */

uint64_t cs_ap_since_contact(const struct cs_ap_server *s, uint64_t now)
{
	if (s->leader)
		return 0;
	uint64_t t = s->last_contact ? s->last_contact : s->first_seen;
	return now > t ? now - t : 0;
}

bool cs_ap_healthy(const struct cs_autopilot_config *c, const struct cs_ap_server *s, uint64_t now,
		   uint64_t last_index)
{
	if (s->leader)
		return true;
	/* A spare replicates nothing; a server never heard from has proven nothing. */
	if (s->role == RAFT_SPARE || !s->last_contact)
		return false;
	if (cs_ap_since_contact(s, now) > (uint64_t)c->last_contact_threshold * 1000)
		return false;
	uint64_t behind = last_index > s->match_index ? last_index - s->match_index : 0;
	return behind <= (uint64_t)c->max_trailing_logs;
}

void cs_ap_update_health(const struct cs_autopilot_config *c, struct cs_ap_server *s, size_t n,
			 uint64_t now, uint64_t last_index)
{
	for (size_t i = 0; i < n; i++) {
		bool h = cs_ap_healthy(c, &s[i], now, last_index);
		if (h && !s[i].healthy)
			s[i].stable_since = now;
		s[i].healthy = h;
	}
}

bool cs_ap_promotable(const struct cs_ap_server *s)
{
	return s->role == RAFT_STANDBY && s->known && !s->non_voter;
}

static int tolerance(int members, int healthy)
{
	int quorum = members / 2 + 1;
	return healthy > quorum ? healthy - quorum : 0;
}

int cs_ap_failure_tolerance(const struct cs_ap_server *s, size_t n)
{
	int voters = 0, healthy = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i].role != RAFT_VOTER)
			continue;
		voters++;
		healthy += s[i].healthy;
	}
	return tolerance(voters, healthy);
}

int cs_ap_optimistic_failure_tolerance(const struct cs_ap_server *s, size_t n)
{
	int members = 0, healthy = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i].role != RAFT_VOTER && !cs_ap_promotable(&s[i]))
			continue;
		members++;
		healthy += s[i].healthy;
	}
	return tolerance(members, healthy);
}

bool cs_ap_cluster_healthy(const struct cs_ap_server *s, size_t n)
{
	int voters = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i].role != RAFT_VOTER)
			continue;
		voters++;
		if (!s[i].healthy)
			return false;
	}
	return voters > 0;
}

long cs_ap_pick_promotion(const struct cs_autopilot_config *c, const struct cs_ap_server *s,
			  size_t n, uint64_t now)
{
	uint64_t need = (uint64_t)c->server_stabilization_time * 1000;
	for (size_t i = 0; i < n; i++)
		if (cs_ap_promotable(&s[i]) && s[i].healthy && now - s[i].stable_since >= need)
			return (long)i;
	return -1;
}

long cs_ap_pick_dead(const struct cs_autopilot_config *c, const struct cs_ap_server *s, size_t n,
		     uint64_t now)
{
	if (!c->cleanup_dead_servers)
		return -1;
	uint64_t dead = (uint64_t)c->dead_server_last_contact_threshold * 1000;
	long voter = -1;
	int voters = 0;
	for (size_t i = 0; i < n; i++) {
		voters += s[i].role == RAFT_VOTER;
		if (s[i].leader || cs_ap_since_contact(&s[i], now) < dead)
			continue;
		if (s[i].role != RAFT_VOTER)
			return (long)i; /* non-voters first: they cost no quorum */
		if (voter < 0)
			voter = (long)i;
	}
	if (voter >= 0 && voters - 1 >= c->min_quorum)
		return voter;
	return -1;
}

void cs_ap_format_ms(uint64_t ms, char *out, size_t outlen)
{
	if (ms == 0) {
		snprintf(out, outlen, "0s");
		return;
	}
	if (ms < 1000) {
		snprintf(out, outlen, "%" PRIu64 "ms", ms);
		return;
	}
	uint64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, frac = ms % 1000;
	char sec[32];
	/* Go prints the fraction without trailing zeros: 2.5s, 1.25s, 3s. */
	if (frac) {
		snprintf(sec, sizeof sec, "%" PRIu64 ".%03" PRIu64, s, frac);
		size_t l = strlen(sec);
		while (sec[l - 1] == '0')
			sec[--l] = '\0';
	} else {
		snprintf(sec, sizeof sec, "%" PRIu64, s);
	}
	if (h)
		snprintf(out, outlen, "%" PRIu64 "h%" PRIu64 "m%ss", h, m, sec);
	else if (m)
		snprintf(out, outlen, "%" PRIu64 "m%ss", m, sec);
	else
		snprintf(out, outlen, "%ss", sec);
}

/* ---------------------------------------------------------------- tracker */

struct ap_tracker {
	const struct cs_autopilot_env *env;
	bool active;
	uv_timer_t *timer; /* one per activation; closed (and freed) on deactivation */
	uint64_t last_update;
	unsigned update_ms;
	struct cs_ap_server *servers; /* configuration order */
	size_t n;
	struct cs_autopilot_config cfg;
};

enum op_stage { OP_IDLE, OP_PREWRITE, OP_WAIT, OP_CHANGE, OP_CHANGING, OP_DONE };

struct ap_op {
	enum op_stage stage;
	const struct cs_autopilot_env *env;
	enum cs_ap_change_kind kind;
	bool record; /* write the member record / marker (operator changes) */
	raft_id id;
	char node_id[CS_AUTOPILOT_NODE_ID_MAX];
	cs_ap_change_cb cb;
	void *ctx;
	struct raft_change rc;
	uv_timer_t *timer;
	raft_index target;        /* removal: index the target must acknowledge */
	uint64_t caught_at;       /* removal: when it did */
	uint64_t deadline;        /* removal: stop waiting for it */
	uint64_t change_deadline; /* stop retrying a raft change refused with CANTCHANGE */
	int status;
	char errmsg[512];
};

/* One node's autopilot: the env points at it (cs_autopilot_env.state), so two nodes in
 * one process each have their own. */
struct cs_autopilot_state {
	struct ap_tracker ap;
	struct ap_op op;
};

struct cs_autopilot_state *cs_autopilot_state_new(void)
{
	struct cs_autopilot_state *S = calloc(1, sizeof *S);
	if (S)
		S->ap.update_ms = CS_AUTOPILOT_UPDATE_MS;
	return S;
}

void cs_autopilot_state_free(struct cs_autopilot_state *S)
{
	if (!S)
		return;
	free(S->ap.servers);
	free(S);
}

/* The environment's monotonic clock in milliseconds (cs_mono_ms unless a test set one). */
static uint64_t ap_now(const struct cs_autopilot_env *env)
{
	return env->now_ms ? env->now_ms(env->ctx) : cs_mono_ms();
}

static bool leading(const struct cs_autopilot_env *env)
{
	return env->state->ap.active && env->is_active(env->ctx) &&
	       raft_state(&env->node->raft) == RAFT_LEADER;
}

static const struct cs_ap_server *find_server(const struct cs_ap_server *s, size_t n, raft_id id)
{
	for (size_t i = 0; i < n; i++)
		if (s[i].id == id)
			return &s[i];
	return NULL;
}

/*
 * Rebuild the rows in configuration order (raft's progress array is parallel to it),
 * carrying each server's history over by id, and record contacts. recent_recv is set by
 * any AppendEntries result and cleared by raft every election timeout, so sampling it
 * more often than that (CS_AUTOPILOT_SAMPLE_MS) sees every live follower.
 */
static void track(struct cs_autopilot_state *S, struct raft *r, uint64_t now)
{
	unsigned n = r->configuration.n;
	struct cs_ap_server *next = calloc(n ? n : 1, sizeof *next);
	if (!next)
		abort();
	for (unsigned i = 0; i < n; i++) {
		const struct raft_server *rs = &r->configuration.servers[i];
		const struct cs_ap_server *old = find_server(S->ap.servers, S->ap.n, rs->id);
		struct cs_ap_server *s = &next[i];
		if (old) {
			*s = *old;
		} else {
			s->id = rs->id;
			s->first_seen = now;
		}
		s->role = rs->role;
		s->leader = rs->id == r->id;
		if (s->leader) {
			s->last_contact = now;
			s->match_index = raft_last_index(r);
		} else if (r->state == RAFT_LEADER && r->leader_state.progress) {
			const struct raft_progress *p = &r->leader_state.progress[i];
			if (p->recent_recv || p->match_index > s->match_index)
				s->last_contact = now;
			s->match_index = p->match_index;
		}
	}
	free(S->ap.servers);
	S->ap.servers = next;
	S->ap.n = n;
}

/* Member records: names don't matter here, only whether a server may be promoted. */
static void read_members(struct cs_autopilot_state *S, struct cs_txn *txn)
{
	for (size_t i = 0; i < S->ap.n; i++) {
		struct cs_autopilot_member m;
		int rc = cs_autopilot_member_get(txn, S->ap.servers[i].id, &m);
		S->ap.servers[i].known = rc == 0;
		S->ap.servers[i].non_voter = rc == 0 && m.non_voter;
	}
}

/* ---------------------------------------------------------------- change executor */

static void op_tick(uv_timer_t *t);

static void op_kick(struct cs_autopilot_state *S, unsigned ms)
{
	uv_timer_start(S->op.timer, op_tick, ms, 0);
}

/* Finish with `status` and the client's message (may be NULL), from the timer. */
static void op_done(struct cs_autopilot_state *S, int status, const char *msg)
{
	S->op.status = status;
	snprintf(S->op.errmsg, sizeof S->op.errmsg, "%s", msg ? msg : "");
	S->op.stage = OP_DONE;
	op_kick(S, 0);
}

static void log_commit_cb(void *data, int status)
{
	if (status)
		cs_warn("autopilot: cleaning up the member record failed: %s", cs_strerror(status));
}

/* After a removal the member record is stale; a re-join writes a new one. */
static void forget_member(const struct cs_autopilot_env *env, raft_id id)
{
	const struct cs_keyring *kr = env->keyring(env->ctx);
	if (!kr || !env->is_active(env->ctx))
		return;
	char key[64];
	bool pending = false;
	struct cs_txn txn;
	member_key(id, key, sizeof key);
	cs_txn_begin(&txn, env->st, kr);
	int rc = cs_txn_delete(&txn, key);
	if (rc) {
		cs_txn_abort(&txn);
		return;
	}
	rc = cs_txn_commit(&txn, log_commit_cb, NULL, &pending);
	if (rc)
		log_commit_cb(NULL, rc);
}

static void timer_closed(uv_handle_t *h)
{
	free(h);
}

static void op_finish(struct cs_autopilot_state *S)
{
	cs_ap_change_cb cb = S->op.cb;
	void *ctx = S->op.ctx;
	char msg[sizeof S->op.errmsg];
	int status = S->op.status;
	snprintf(msg, sizeof msg, "%s", S->op.errmsg);
	if (!status && S->op.kind == CS_AP_REMOVE)
		forget_member(S->op.env, S->op.id);
	const char *what = S->op.kind == CS_AP_REMOVE    ? "removal"
			   : S->op.kind == CS_AP_PROMOTE ? "promotion"
							 : "demotion";
	if (status)
		cs_warn("autopilot: %s of %s failed: %s", what, S->op.node_id,
			msg[0] ? msg : cs_strerror(status));
	else
		cs_info("autopilot: %s of %s done", what, S->op.node_id);
	uv_close((uv_handle_t *)S->op.timer, timer_closed);
	S->op.timer = NULL;
	S->op.stage = OP_IDLE;
	if (cb)
		cb(ctx, status, msg);
}

/* A CS_E* code for a raft status, with the client's message in msg. */
static int map_raft_error(struct cs_autopilot_state *S, int rv, const char *what, char *msg,
			  size_t len)
{
	switch (rv) {
	case 0:
		return 0;
	case RAFT_CANTCHANGE:
		snprintf(msg, len, "a raft configuration change is already in progress; try again");
		return CS_EBUSY;
	case RAFT_NOTLEADER:
		snprintf(msg, len, "node is not the raft leader");
		return CS_ENOTACTIVE;
	case RAFT_LEADERSHIPLOST:
	case RAFT_SHUTDOWN:
		snprintf(msg, len,
			 "leadership lost while changing the raft configuration; the change may "
			 "or may not have been applied");
		return CS_ELEADERSHIP;
	case RAFT_NOCONNECTION:
		snprintf(msg, len,
			 "server %s did not catch up with the leader's log; it stays a non-voter",
			 S->op.node_id);
		return CS_EINTERNAL;
	case RAFT_BADID:
	case RAFT_NOTFOUND:
		snprintf(msg, len, "server %s is not in the raft configuration", S->op.node_id);
		return CS_EINVAL;
	default:
		snprintf(msg, len, "%s: %s", what, raft_strerror(rv));
		return CS_EINTERNAL;
	}
}

static void change_cb(struct raft_change *req, int status)
{
	struct cs_autopilot_state *S = req->data;
	if (S->op.stage != OP_CHANGING)
		return; /* cannot happen: the op waits for this callback */
	char msg[sizeof S->op.errmsg];
	int rc = map_raft_error(S, status, "raft configuration change", msg, sizeof msg);
	op_done(S, rc, msg);
}

static int server_index(struct raft *r, raft_id id)
{
	for (unsigned i = 0; i < r->configuration.n; i++)
		if (r->configuration.servers[i].id == id)
			return (int)i;
	return -1;
}

static void op_change(struct cs_autopilot_state *S)
{
	struct raft *r = &S->op.env->node->raft;
	int i = server_index(r, S->op.id);
	if (i < 0) {
		/* Gone already (removed meanwhile): for a removal that is success. */
		char msg[sizeof S->op.errmsg];
		snprintf(msg, sizeof msg, "server %s is not in the raft configuration",
			 S->op.node_id);
		if (S->op.kind == CS_AP_REMOVE)
			op_done(S, 0, NULL);
		else
			op_done(S, CS_EINVAL, msg);
		return;
	}
	int want = S->op.kind == CS_AP_PROMOTE ? RAFT_VOTER : RAFT_STANDBY;
	if (S->op.kind != CS_AP_REMOVE && r->configuration.servers[i].role == want) {
		op_done(S, 0, NULL);
		return;
	}
	S->op.rc.data = S;
	int rv = S->op.kind == CS_AP_REMOVE ? raft_remove(r, &S->op.rc, S->op.id, change_cb)
					    : raft_assign(r, &S->op.rc, S->op.id, want, change_cb);
	uint64_t now = ap_now(S->op.env);
	if (!S->op.change_deadline)
		S->op.change_deadline = now + CS_AUTOPILOT_CHANGE_RETRY_MS;
	if (rv == RAFT_CANTCHANGE && now < S->op.change_deadline) {
		/* The join code's change (or a catch-up) is in flight: ours goes next. */
		S->op.stage = OP_CHANGE;
		op_kick(S, 100);
		return;
	}
	if (rv) {
		char msg[sizeof S->op.errmsg];
		int rc = map_raft_error(S, rv, raft_errmsg(r), msg, sizeof msg);
		op_done(S, rc, msg);
		return;
	}
	S->op.stage = OP_CHANGING;
}

/*
 * Removal: the marker is committed, but the target applies it only once it holds the
 * entry and has been told the commit index; after raft_remove the leader stops talking
 * to it. So wait until it acknowledged the marker's index, plus two heartbeats (the
 * next AppendEntries carries the commit index), or give up after the deadline (a dead
 * server must still be removable).
 */
static void op_wait(struct cs_autopilot_state *S)
{
	struct raft *r = &S->op.env->node->raft;
	uint64_t now = ap_now(S->op.env);
	int i = server_index(r, S->op.id);
	if (i >= 0 && r->leader_state.progress &&
	    r->leader_state.progress[i].match_index >= S->op.target) {
		if (!S->op.caught_at)
			S->op.caught_at = now;
		if (now - S->op.caught_at >= 2ULL * r->heartbeat_timeout) {
			S->op.stage = OP_CHANGE;
			op_change(S);
			return;
		}
	} else if (now >= S->op.deadline) {
		cs_info("autopilot: %s did not acknowledge its removal marker; removing it anyway",
			S->op.node_id);
		S->op.stage = OP_CHANGE;
		op_change(S);
		return;
	}
	op_kick(S, 50);
}

static void op_tick(uv_timer_t *t)
{
	struct cs_autopilot_state *S = t->data;
	if (S->op.stage == OP_DONE) {
		op_finish(S);
		return;
	}
	if (!leading(S->op.env)) {
		/* A pending commit or raft change reports through its own callback. */
		if (S->op.stage == OP_PREWRITE || S->op.stage == OP_CHANGING)
			return;
		S->op.status = CS_ENOTACTIVE;
		snprintf(S->op.errmsg, sizeof S->op.errmsg, "node is no longer the active node");
		op_finish(S);
		return;
	}
	if (S->op.stage == OP_WAIT)
		op_wait(S);
	else if (S->op.stage == OP_CHANGE)
		op_change(S);
}

static void prewrite_cb(void *data, int status)
{
	struct cs_autopilot_state *S = data;
	if (S->op.stage != OP_PREWRITE)
		return; /* cannot happen: the op waits for this callback */
	if (status) {
		char msg[sizeof S->op.errmsg];
		snprintf(msg, sizeof msg, "could not record the change: %s", cs_strerror(status));
		op_done(S, status, msg);
		return;
	}
	if (S->op.kind == CS_AP_REMOVE) {
		struct raft *r = &S->op.env->node->raft;
		S->op.target = r->commit_index; /* >= the marker's index: it has applied */
		S->op.caught_at = 0;
		S->op.deadline = ap_now(S->op.env) + CS_AUTOPILOT_REMOVE_WAIT_MS;
		S->op.stage = OP_WAIT;
	} else {
		S->op.stage = OP_CHANGE;
	}
	op_kick(S, 0);
}

/* The write that must commit before the raft change: the removal marker (plaintext, the
 * removed node may have no keyring) or the member record's non_voter flag. */
static int prewrite(struct cs_autopilot_state *S, struct cs_txn *txn)
{
	if (S->op.kind == CS_AP_REMOVE) {
		char key[sizeof CS_AUTOPILOT_REMOVED_PREFIX + CS_AUTOPILOT_NODE_ID_MAX];
		char when[48], val[200];
		cs_format_time(cs_now_ns(), when, sizeof when);
		snprintf(key, sizeof key, CS_AUTOPILOT_REMOVED_PREFIX "%s", S->op.node_id);
		/* The marker's entry lands above the last index: a rejoined incarnation
		 * (admitted at a lower index) is not removed by an older marker. */
		int n = snprintf(val, sizeof val,
				 "{\"removed_at\":\"%s\",\"raft_id\":\"%llu\",\"index\":\"%llu\"}",
				 when, (unsigned long long)S->op.id,
				 (unsigned long long)raft_last_index(&S->op.env->node->raft));
		return cs_txn_put_raw(txn, key, val, (size_t)n);
	}
	struct cs_autopilot_member m;
	int rc = cs_autopilot_member_get(txn, S->op.id, &m);
	if (rc && rc != CS_ENOTFOUND)
		return rc;
	bool pin = S->op.kind == CS_AP_DEMOTE;
	if (rc == CS_ENOTFOUND) {
		if (!pin)
			return 0; /* nothing pinned; autopilot ignores unknown servers anyway */
		snprintf(m.node_id, sizeof m.node_id, "%s", S->op.node_id);
	} else if (m.non_voter == pin) {
		return 0;
	}
	m.non_voter = pin;
	return cs_autopilot_member_put(txn, S->op.id, &m);
}

static void autopilot_change_cb(void *ctx, int status, const char *errmsg);

static int start_change(const struct cs_autopilot_env *env, enum cs_ap_change_kind kind,
			bool record, raft_id id, const char *node_id, cs_ap_change_cb cb, void *ctx,
			char *errmsg, size_t errlen)
{
	struct cs_autopilot_state *S = env->state;
	struct raft *r = &env->node->raft;
	if (!S->ap.active || !env->is_active(env->ctx) || !env->keyring(env->ctx) ||
	    raft_state(r) != RAFT_LEADER) {
		snprintf(errmsg, errlen, "node is not the active node");
		return CS_ENOTACTIVE;
	}
	/* Ours only: a raft change of the join code is waited for (op_change retries). */
	if (S->op.stage != OP_IDLE) {
		snprintf(errmsg, errlen,
			 "a raft configuration change is already in progress; try again");
		return CS_EBUSY;
	}
	if (server_index(r, id) < 0) {
		snprintf(errmsg, errlen, "server %s is not in the raft configuration", node_id);
		return CS_EINVAL;
	}
	if (id == r->id && kind != CS_AP_PROMOTE) {
		snprintf(errmsg, errlen, "cannot change the active node's membership");
		return CS_EINVAL;
	}
	memset(&S->op, 0, sizeof S->op);
	S->op.env = env;
	S->op.kind = kind;
	S->op.record = record;
	S->op.id = id;
	snprintf(S->op.node_id, sizeof S->op.node_id, "%s", node_id);
	S->op.cb = cb;
	S->op.ctx = ctx;

	struct cs_txn txn;
	bool pending = false;
	cs_txn_begin(&txn, env->st, env->keyring(env->ctx));
	int rc = record ? prewrite(S, &txn) : 0;
	if (rc) {
		cs_txn_abort(&txn);
		snprintf(errmsg, errlen, "could not record the change: %s", cs_strerror(rc));
		return rc;
	}
	rc = cs_txn_commit(&txn, prewrite_cb, S, &pending);
	if (rc) {
		snprintf(errmsg, errlen, "could not record the change: %s", cs_strerror(rc));
		return rc;
	}
	S->op.timer = malloc(sizeof *S->op.timer);
	if (!S->op.timer)
		abort();
	uv_timer_init(env->loop, S->op.timer);
	S->op.timer->data = S;
	S->op.stage = OP_PREWRITE;
	cs_info("autopilot: %s %s (%s)",
		kind == CS_AP_REMOVE    ? "removing"
		: kind == CS_AP_PROMOTE ? "promoting"
					: "demoting",
		S->op.node_id,
		cb == autopilot_change_cb ? (kind == CS_AP_REMOVE ? "dead server" : "stable")
					  : "operator request");
	if (!pending)
		prewrite_cb(S, 0); /* only kicks the timer: no callback runs from here */
	return 0;
}

int cs_autopilot_change(const struct cs_autopilot_env *env, enum cs_ap_change_kind kind, raft_id id,
			const char *node_id, cs_ap_change_cb cb, void *ctx, char *errmsg,
			size_t errlen)
{
	return start_change(env, kind, true, id, node_id, cb, ctx, errmsg, errlen);
}

bool cs_autopilot_change_busy(const struct cs_autopilot_env *env)
{
	struct cs_autopilot_state *S = env->state;
	struct raft *r = &env->node->raft;
	if (S->op.stage != OP_IDLE)
		return true;
	if (raft_state(r) != RAFT_LEADER)
		return false;
	/* The join code's raft_add/raft_assign, or a promotion's catch-up rounds. */
	return r->leader_state.change != NULL || r->leader_state.promotee_id != 0 ||
	       r->configuration_uncommitted_index != 0;
}

/* ---------------------------------------------------------------- reconcile */

static void autopilot_change_cb(void *ctx, int status, const char *errmsg)
{
	if (status && status != CS_EBUSY)
		cs_warn("autopilot: %s", errmsg[0] ? errmsg : cs_strerror(status));
}

static void reconcile(const struct cs_autopilot_env *env, uint64_t now)
{
	struct cs_autopilot_state *S = env->state;
	char name[CS_AUTOPILOT_NODE_ID_MAX], err[512];
	long i = cs_ap_pick_promotion(&S->ap.cfg, S->ap.servers, S->ap.n, now);
	enum cs_ap_change_kind kind = CS_AP_PROMOTE;
	if (i < 0) {
		i = cs_ap_pick_dead(&S->ap.cfg, S->ap.servers, S->ap.n, now);
		kind = CS_AP_REMOVE;
	}
	if (i < 0)
		return;
	struct cs_txn txn;
	cs_txn_begin(&txn, env->st, env->keyring(env->ctx));
	cs_autopilot_server_name(env, &txn, S->ap.servers[i].id, name, sizeof name);
	cs_txn_abort(&txn);
	/* A promotion needs no record (the server is already unpinned); a dead-server
	 * removal writes the marker in case the server comes back. */
	int rc = start_change(env, kind, kind == CS_AP_REMOVE, S->ap.servers[i].id, name,
			      autopilot_change_cb, NULL, err, sizeof err);
	if (rc && rc != CS_EBUSY)
		cs_warn("autopilot: %s", err);
}

static void update(const struct cs_autopilot_env *env, uint64_t now)
{
	struct cs_autopilot_state *S = env->state;
	struct raft *r = &env->node->raft;
	struct cs_txn txn;
	cs_txn_begin(&txn, env->st, env->keyring(env->ctx));
	if (cs_autopilot_config_load(&txn, &S->ap.cfg, NULL))
		cs_warn("autopilot: cannot read the configuration; using the defaults");
	read_members(S, &txn);
	cs_txn_abort(&txn);
	cs_ap_update_health(&S->ap.cfg, S->ap.servers, S->ap.n, now, raft_last_index(r));
	if (!cs_autopilot_change_busy(env))
		reconcile(env, now);
}

static void tick(uv_timer_t *t)
{
	struct cs_autopilot_state *S = t->data;
	const struct cs_autopilot_env *env = S->ap.env;
	if (!leading(env) || !env->keyring(env->ctx))
		return;
	uint64_t now = ap_now(env);
	track(S, &env->node->raft, now);
	if (now - S->ap.last_update >= S->ap.update_ms) {
		S->ap.last_update = now;
		update(env, now);
	}
}

void cs_autopilot_set_active(const struct cs_autopilot_env *env, bool active)
{
	struct cs_autopilot_state *S = env->state;
	if (active == S->ap.active)
		return;
	S->ap.active = active;
	S->ap.env = env;
	if (active) {
		/* Fresh history: a new leader has no contact data yet; dead-server timers start
		 * now, so nobody is removed right after a failover. */
		free(S->ap.servers);
		S->ap.servers = NULL;
		S->ap.n = 0;
		cs_autopilot_config_defaults(&S->ap.cfg);
		S->ap.last_update = 0;
		S->ap.timer = malloc(sizeof *S->ap.timer);
		if (!S->ap.timer)
			abort();
		uv_timer_init(env->loop, S->ap.timer);
		S->ap.timer->data = S;
		/* Never what keeps the loop alive at shutdown. */
		uv_unref((uv_handle_t *)S->ap.timer);
		uv_timer_start(S->ap.timer, tick, 0, CS_AUTOPILOT_SAMPLE_MS);
		cs_info("autopilot: running");
		return;
	}
	if (S->ap.timer) {
		uv_timer_stop(S->ap.timer);
		uv_close((uv_handle_t *)S->ap.timer, timer_closed);
		S->ap.timer = NULL;
		cs_info("autopilot: stopped");
	}
	/* A change in flight finishes through its pending callback or its timer. */
	if (S->op.stage != OP_IDLE)
		op_kick(S, 0);
}

void cs_autopilot_config_changed(const struct cs_autopilot_env *env)
{
	struct cs_autopilot_state *S = env->state;
	S->ap.last_update = 0; /* reload and reconcile at the next tick */
}

/* ---------------------------------------------------------------- state */

static cJSON *server_json(const struct cs_autopilot_env *env, struct cs_txn *txn,
			  const struct cs_ap_server *s, uint64_t now, int64_t wall_ns)
{
	struct cs_autopilot_state *S = env->state;
	struct raft *r = &env->node->raft;
	char name[CS_AUTOPILOT_NODE_ID_MAX], d[32], when[48];
	cs_autopilot_server_name(env, txn, s->id, name, sizeof name);
	int i = server_index(r, s->id);
	uint64_t since = cs_ap_since_contact(s, now);

	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "id", name);
	cJSON_AddStringToObject(j, "name", name);
	cJSON_AddStringToObject(j, "address", i >= 0 ? r->configuration.servers[i].address : "");
	cJSON_AddStringToObject(
	    j, "node_status",
	    since >= (uint64_t)S->ap.cfg.dead_server_last_contact_threshold * 1000 ? "failed"
										   : "alive");
	cs_ap_format_ms(since, d, sizeof d);
	cJSON_AddStringToObject(j, "last_contact", d);
	cJSON_AddNumberToObject(j, "last_term", (double)r->current_term);
	cJSON_AddNumberToObject(j, "last_index", (double)s->match_index);
	cJSON_AddBoolToObject(j, "healthy", s->healthy);
	if (s->healthy) {
		cs_format_time(wall_ns - (int64_t)(now - s->stable_since) * 1000000, when,
			       sizeof when);
		cJSON_AddStringToObject(j, "stable_since", when);
	} else {
		cJSON_AddStringToObject(j, "stable_since", "0001-01-01T00:00:00Z");
	}
	cJSON_AddStringToObject(j, "status",
				s->leader               ? "leader"
				: s->role == RAFT_VOTER ? "voter"
							: "non-voter");
	cJSON_AddNullToObject(j, "meta");
	cJSON_AddStringToObject(j, "version", CUSTOS_VERSION);
	cJSON_AddStringToObject(j, "node_type", s->non_voter ? "read-replica" : "voter");
	return j;
}

cJSON *cs_autopilot_state_json(const struct cs_autopilot_env *env, struct cs_txn *txn)
{
	struct cs_autopilot_state *S = env->state;
	if (!leading(env))
		return NULL;
	struct raft *r = &env->node->raft;
	uint64_t now = ap_now(env);
	int64_t wall = cs_now_ns();
	/* Fresh numbers for the answer (the same rules as the periodic update). */
	track(S, r, now);
	read_members(S, txn);
	cs_ap_update_health(&S->ap.cfg, S->ap.servers, S->ap.n, now, raft_last_index(r));

	cJSON *j = cJSON_CreateObject();
	cJSON_AddBoolToObject(j, "healthy", cs_ap_cluster_healthy(S->ap.servers, S->ap.n));
	cJSON_AddNumberToObject(j, "failure_tolerance",
				cs_ap_failure_tolerance(S->ap.servers, S->ap.n));
	cJSON_AddNumberToObject(j, "optimistic_failure_tolerance",
				cs_ap_optimistic_failure_tolerance(S->ap.servers, S->ap.n));
	cJSON *voters = cJSON_CreateArray(), *non_voters = cJSON_CreateArray();
	cJSON *servers = cJSON_CreateObject();
	char leader[CS_AUTOPILOT_NODE_ID_MAX] = "";
	for (size_t i = 0; i < S->ap.n; i++) {
		cJSON *s = server_json(env, txn, &S->ap.servers[i], now, wall);
		const char *name = cJSON_GetObjectItemCaseSensitive(s, "id")->valuestring;
		if (S->ap.servers[i].leader)
			snprintf(leader, sizeof leader, "%s", name);
		cJSON_AddItemToArray(S->ap.servers[i].role == RAFT_VOTER ? voters : non_voters,
				     cJSON_CreateString(name));
		cJSON_AddItemToObject(servers, name, s);
	}
	cJSON_AddStringToObject(j, "leader", leader);
	cJSON_AddItemToObject(j, "voters", voters);
	cJSON_AddItemToObject(j, "non_voters", non_voters);
	cJSON_AddItemToObject(j, "servers", servers);
	return j;
}
