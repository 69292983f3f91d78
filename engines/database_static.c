/*
 * Static roles of the database engine: one existing database user per role whose password
 * custos rotates on a period or a cron schedule (static-roles/:name, static-creds/:name,
 * rotate-role/:name), as Vault's static roles.
 *
 * Happy path of a rotation (creating the role, rotate-role/, or the mount's periodic run
 * on the active node): a new password (cs_req_generate_password with the config's
 * policy) is set by the rotation statements (default ALTER ROLE … WITH PASSWORD …) in one
 * transaction on the config's pool; the request resumes and stores the password and the
 * rotation time in the role entry, behind the barrier. The periodic run rotates up to
 * STATIC_BATCH due roles at once (their operations run in parallel) and parks until all
 * answered.
 * Failure modes: the database refuses or is down → the password is unchanged in both
 * places (PostgreSQL rolled back, nothing stored) and the next periodic run tries again;
 * the node loses leadership between PostgreSQL's commit and ours → the new password is
 * lost and the next rotation (the new active node finds the role still due) replaces it,
 * so the user is locked out at most until then; a schedule whose rotation_window passed
 * unnoticed (node down) waits for the next scheduled time, as Vault.
 * Because the next rotation time is computed from what storage says, rotation survives
 * restarts and leader changes: whichever node is active finds the due roles.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "engines/database_internal.h"
#include "lib/buf.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"

#define STATIC_BATCH    16
#define STATIC_SCAN_MAX 4096
#define MIN_PERIOD      5
#define MIN_WINDOW      3600
static const char default_rotation[] = "ALTER ROLE \"{{name}}\" WITH PASSWORD '{{password}}'";

/* ---------------------------------------------------------------- cron */

static int cron_field(const char *f, int lo, int hi, const char *const *names, uint64_t *bits,
		      bool *star)
{
	*bits = 0;
	*star = false;
	size_t fl = strlen(f);
	if (fl == 0 || f[0] == ',' || f[fl - 1] == ',' || strstr(f, ",,"))
		return CS_EINVAL; /* an empty list entry */
	char buf[128];
	snprintf(buf, sizeof buf, "%s", f);
	char *save = NULL;
	for (char *part = strtok_r(buf, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
		int a, b, step = 1;
		char *slash = strchr(part, '/');
		if (slash) {
			*slash = '\0';
			char *end;
			long s = strtol(slash + 1, &end, 10);
			if (*end || s < 1 || s > hi)
				return CS_EINVAL;
			step = (int)s;
		}
		if (strcmp(part, "*") == 0 || strcmp(part, "?") == 0) {
			a = lo, b = hi;
			if (!slash)
				*star = true;
		} else {
			char *dash = strchr(part, '-');
			if (dash)
				*dash = '\0';
			const char *ends[2] = {part, dash ? dash + 1 : NULL};
			int v[2];
			for (int k = 0; k < (dash ? 2 : 1); k++) {
				char *end;
				long n = strtol(ends[k], &end, 10);
				if (end == ends[k] || *end) {
					n = -1;
					for (int i = 0; names && names[i]; i++)
						if (strcasecmp(ends[k], names[i]) == 0)
							n = lo + i;
					if (n < 0)
						return CS_EINVAL;
				}
				if (n < lo || n > hi)
					return CS_EINVAL;
				v[k] = (int)n;
			}
			a = v[0];
			b = dash ? v[1] : (slash ? hi : v[0]);
			if (a > b)
				return CS_EINVAL;
		}
		for (int i = a; i <= b; i += step)
			*bits |= UINT64_C(1) << i;
	}
	return *bits ? 0 : CS_EINVAL;
}

int db_cron_parse(const char *spec, struct db_cron *c)
{
	static const char *const months[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL",
					     "AUG", "SEP", "OCT", "NOV", "DEC", NULL};
	static const char *const days[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", NULL};
	char buf[256], *f[6], *save = NULL;
	int n = 0;
	if (strlen(spec) >= sizeof buf)
		return CS_EINVAL;
	snprintf(buf, sizeof buf, "%s", spec);
	for (char *t = strtok_r(buf, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		if (n == 5)
			return CS_EINVAL;
		f[n++] = t;
	}
	if (n != 5)
		return CS_EINVAL; /* minute hour day-of-month month day-of-week, as Vault */
	memset(c, 0, sizeof *c);
	bool star;
	uint64_t dow;
	if (cron_field(f[0], 0, 59, NULL, &c->minute, &star) ||
	    cron_field(f[1], 0, 23, NULL, &c->hour, &star) ||
	    cron_field(f[2], 1, 31, NULL, &c->dom, &c->dom_star) ||
	    cron_field(f[3], 1, 12, months, &c->month, &star) ||
	    cron_field(f[4], 0, 7, days, &dow, &c->dow_star))
		return CS_EINVAL;
	if (dow & (UINT64_C(1) << 7))
		dow |= 1; /* 7 is Sunday too */
	c->dow = dow & 0x7f;
	return 0;
}

static bool day_matches(const struct db_cron *c, const struct tm *tm)
{
	bool dom = c->dom & (UINT64_C(1) << tm->tm_mday);
	bool dow = c->dow & (UINT64_C(1) << tm->tm_wday);
	/* Cron's rule: when both are restricted, either may match. */
	if (c->dom_star || c->dow_star)
		return dom && dow;
	return dom || dow;
}

int64_t db_cron_next(const struct db_cron *c, int64_t after)
{
	int64_t t = (after / 60 + 1) * 60; /* the next whole minute strictly after */
	for (int day = 0; day < 366 * 5; day++) {
		time_t tt = (time_t)t;
		struct tm tm;
		gmtime_r(&tt, &tm);
		if ((c->month & (UINT64_C(1) << (tm.tm_mon + 1))) && day_matches(c, &tm)) {
			for (int h = tm.tm_hour; h < 24; h++) {
				if (!(c->hour & (UINT64_C(1) << h)))
					continue;
				for (int m = h == tm.tm_hour ? tm.tm_min : 0; m < 60; m++)
					if (c->minute & (UINT64_C(1) << m))
						return t - (tm.tm_hour * 3600 + tm.tm_min * 60) +
						       h * 3600 + m * 60;
			}
		}
		/* midnight of the next day */
		t = t - (tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec) + 86400;
	}
	return -1;
}

/* ---------------------------------------------------------------- storage */

static int load_static(struct cs_request *req, const char *name, cJSON **out)
{
	struct cs_buf key = CS_BUF_INIT;
	cs_buf_printf(&key, "static-role/%s", name);
	int rc = cs_view_get_json(req, key.data, out);
	cs_buf_free(&key);
	return rc;
}

static int put_static(struct cs_request *req, const char *name, const cJSON *role)
{
	struct cs_buf key = CS_BUF_INIT;
	cs_buf_printf(&key, "static-role/%s", name);
	int rc = cs_view_put_json(req, key.data, role);
	cs_buf_free(&key);
	return rc;
}

static int64_t num(const cJSON *o, const char *key)
{
	return (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

static void set_num(cJSON *o, const char *key, int64_t v)
{
	cJSON_DeleteItemFromObjectCaseSensitive(o, key);
	cJSON_AddNumberToObject(o, key, (double)v);
}

/* When the role should rotate next, from its last rotation (or `now` for a schedule
 * whose window passed). -1 when the schedule never fires. */
static int64_t next_rotation(const cJSON *role, int64_t last)
{
	int64_t period = num(role, "rotation_period");
	if (period > 0)
		return last + period;
	struct db_cron c;
	if (db_cron_parse(db_str(role, "rotation_schedule", ""), &c))
		return -1;
	return db_cron_next(&c, last);
}

static void rfc3339(int64_t secs, char *out, size_t len)
{
	cs_format_time(secs * INT64_C(1000000000), out, len);
}

/* ---------------------------------------------------------------- rotation jobs */

struct rot_item {
	struct cs_pg_op op;
	struct rot_job *job;
	char *role;
	char *password;
	cJSON *entry; /* the role as the handler saw it (create: the new entry) */
};

struct rot_job {
	struct cs_async async;
	int pending;
	int n;
	bool create; /* the entry is new: store it as given */
	bool answer; /* a client waits: a failure is its error */
	struct rot_item items[STATIC_BATCH];
};

static void rot_free(struct rot_job *job)
{
	for (int i = 0; i < job->n; i++) {
		struct rot_item *it = &job->items[i];
		cs_pg_op_clear(&it->op);
		cs_zero(it->op.errmsg, sizeof it->op.errmsg);
		free(it->role);
		if (it->password) {
			cs_zero(it->password, strlen(it->password));
			free(it->password);
		}
		cs_json_delete_wiped(it->entry);
	}
	free(job);
}

static void rot_done(struct cs_pg_op *op)
{
	struct rot_item *it = op->ctx;
	if (--it->job->pending == 0)
		cs_req_wake(&it->job->async);
}

/* Store the rotations PostgreSQL committed. */
static int rot_resume(struct cs_request *req, struct cs_async *a, int status)
{
	struct rot_job *job = CS_CONTAINER_OF(a, struct rot_job, async);
	int rc = status;
	int64_t now = cs_now_ns() / 1000000000;
	for (int i = 0; !rc && i < job->n; i++) {
		struct rot_item *it = &job->items[i];
		if (it->op.status) {
			if (job->answer) {
				rc = cs_req_error(
				    req, it->op.status == CS_EBUSY ? CS_EBUSY : CS_EINTERNAL,
				    "failed to rotate the password of static role %s: %s", it->role,
				    it->op.errmsg);
				break;
			}
			cs_warn("database: rotating static role %s failed: %s", it->role,
				it->op.errmsg);
			continue;
		}
		cJSON *role = NULL;
		if (job->create) {
			role = it->entry;
			it->entry = NULL;
		} else {
			int lr = load_static(req, it->role, &role);
			if (lr == CS_ENOTFOUND)
				continue; /* deleted meanwhile */
			if (lr) {
				rc = lr;
				break;
			}
		}
		cJSON *old = cJSON_DetachItemFromObjectCaseSensitive(role, "password");
		cs_json_delete_wiped(old);
		cJSON_AddStringToObject(role, "password", it->password);
		set_num(role, "last_vault_rotation", now);
		set_num(role, "next_vault_rotation", next_rotation(role, now));
		rc = put_static(req, it->role, role);
		cs_json_delete_wiped(role);
	}
	rot_free(job);
	return rc;
}

/* Add one rotation of static role `name` (its entry `role`) to the job. */
static int rot_add(struct cs_request *req, struct rot_job *job, const char *name, cJSON *role)
{
	const char *db = db_str(role, "db_name", "");
	const char *user = db_str(role, "username", "");
	cJSON *cfg = NULL;
	int rc = db_load_config(req, db, &cfg);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL,
				    "failed to find entry for connection with name: \"%s\"", db);
	if (rc)
		return rc;
	struct rot_item *it = &job->items[job->n];
	memset(it, 0, sizeof *it);
	it->job = job;
	it->role = strdup(name);
	it->entry = role;
	job->n++;
	char *sqlpass = NULL;
	struct cs_pg_pool *pool = NULL;
	rc = cs_req_generate_password(req, db_str(cfg, "password_policy", NULL), &it->password);
	if (!rc)
		rc = db_password_for_sql(cfg, it->password, &sqlpass);
	if (!rc) {
		struct cs_pg_var vars[] = {{"name", user, CS_PG_BARE_IDENT},
					   {"username", user, CS_PG_BARE_IDENT},
					   {"password", sqlpass, CS_PG_BARE_LITERAL}};
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(role, "rotation_statements");
		cJSON *def = NULL;
		bool custom = false;
		const cJSON *e;
		cJSON_ArrayForEach(e, st) custom |=
		    cJSON_IsString(e) && !cs_pg_blank(e->valuestring);
		if (!custom)
			st = def =
			    cJSON_CreateStringArray((const char *const[]){default_rotation}, 1);
		rc = db_add_statements(req, &it->op, st, vars, CS_ARRAY_LEN(vars), false);
		cJSON_Delete(def);
	}
	if (!rc)
		rc = db_pool_for(req, db, cfg, &pool);
	if (sqlpass) {
		cs_zero(sqlpass, strlen(sqlpass));
		free(sqlpass);
	}
	cs_json_delete_wiped(cfg);
	if (rc)
		return rc;
	it->op.redact[0] = it->password;
	it->op.ctx = it;
	it->op.done = rot_done;
	job->pending++;
	cs_pg_submit(pool, &it->op);
	return 0;
}

static struct rot_job *rot_new(void)
{
	struct rot_job *job = calloc(1, sizeof *job);
	if (!job)
		abort();
	job->async.resume = rot_resume;
	return job;
}

/* Park the request until every submitted rotation answered; or, when none was submitted
 * (an error before), answer now. */
static int rot_wait(struct cs_request *req, struct rot_job *job, int rc)
{
	/* One item: it was submitted only if nothing failed. */
	if (rc || job->pending == 0) {
		rot_free(job);
		return rc;
	}
	return cs_req_wait(req, &job->async);
}

/* ---------------------------------------------------------------- handlers */

int db_static_exists(struct cs_request *req, bool *exists)
{
	cJSON *role = NULL;
	int rc = load_static(req, cs_req_capture(req, "name"), &role);
	cs_json_delete_wiped(role);
	*exists = rc == 0;
	return rc == CS_ENOTFOUND ? 0 : rc;
}

static void schedule_fields(const cJSON *role, cJSON *d)
{
	if (num(role, "rotation_period") > 0) {
		cJSON_AddNumberToObject(d, "rotation_period", (double)num(role, "rotation_period"));
	} else {
		cJSON_AddStringToObject(d, "rotation_schedule",
					db_str(role, "rotation_schedule", ""));
		if (num(role, "rotation_window") > 0)
			cJSON_AddNumberToObject(d, "rotation_window",
						(double)num(role, "rotation_window"));
	}
}

int db_static_read(struct cs_request *req)
{
	cJSON *role = NULL;
	int rc = load_static(req, cs_req_capture(req, "name"), &role);
	if (rc)
		return rc;
	cJSON *d = cJSON_CreateObject();
	char t[48];
	cJSON_AddStringToObject(d, "db_name", db_str(role, "db_name", ""));
	cJSON_AddStringToObject(d, "username", db_str(role, "username", ""));
	schedule_fields(role, d);
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(role, "rotation_statements");
	cJSON_AddItemToObject(d, "rotation_statements",
			      st ? cJSON_Duplicate(st, true) : cJSON_CreateArray());
	cJSON_AddStringToObject(d, "credential_type", "password");
	rfc3339(num(role, "last_vault_rotation"), t, sizeof t);
	cJSON_AddStringToObject(d, "last_vault_rotation", t);
	cs_json_delete_wiped(role);
	cs_req_set_data(req, d);
	return 0;
}

int db_static_creds(struct cs_request *req)
{
	const char *name = cs_req_capture(req, "name");
	cJSON *role = NULL;
	int rc = load_static(req, name, &role);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL, "unknown role: %s", name);
	if (rc)
		return rc;
	cJSON *d = cJSON_CreateObject();
	char t[48];
	int64_t now = cs_now_ns() / 1000000000, next = num(role, "next_vault_rotation");
	cJSON_AddStringToObject(d, "username", db_str(role, "username", ""));
	cJSON_AddStringToObject(d, "password", db_str(role, "password", ""));
	rfc3339(num(role, "last_vault_rotation"), t, sizeof t);
	cJSON_AddStringToObject(d, "last_vault_rotation", t);
	schedule_fields(role, d);
	cJSON_AddNumberToObject(d, "ttl", (double)(next > now ? next - now : 0));
	cs_json_delete_wiped(role);
	cs_req_set_data(req, d);
	return 0;
}

/* Whether another static role of connection `db` already manages `user`. */
static int username_taken(struct cs_request *req, const char *name, const char *db,
			  const char *user, bool *taken)
{
	struct cs_strv names = {0};
	int rc = cs_view_list(req, "static-role/", &names);
	*taken = false;
	for (size_t i = 0; !rc && i < names.n && i < STATIC_SCAN_MAX && !*taken; i++) {
		cJSON *r = NULL;
		if (strcmp(names.v[i], name) == 0 || load_static(req, names.v[i], &r))
			continue;
		*taken = strcmp(db_str(r, "db_name", ""), db) == 0 &&
			 strcmp(db_str(r, "username", ""), user) == 0;
		cs_json_delete_wiped(r);
	}
	cs_strv_free(&names);
	return rc;
}

int db_static_write(struct cs_request *req)
{
	const char *name = cs_req_capture(req, "name");
	cJSON *role = NULL;
	int rc = load_static(req, name, &role);
	bool create = rc == CS_ENOTFOUND;
	if (create)
		role = cJSON_CreateObject(), rc = 0;
	if (rc)
		return rc;
	static const char *const strs[] = {"db_name", "username", "rotation_schedule"};
	for (size_t i = 0; i < CS_ARRAY_LEN(strs); i++) {
		if (!cs_req_has(req, strs[i]))
			continue;
		if (!create && i < 2 &&
		    strcmp(cs_req_str(req, strs[i], ""), db_str(role, strs[i], "")) != 0) {
			rc = cs_req_error(req, CS_EINVAL, "cannot update static role %s", strs[i]);
			goto out;
		}
		cJSON_DeleteItemFromObjectCaseSensitive(role, strs[i]);
		cJSON_AddStringToObject(role, strs[i], cs_req_str(req, strs[i], ""));
	}
	bool has_period = cs_req_has(req, "rotation_period");
	bool has_sched =
	    cs_req_has(req, "rotation_schedule") && *cs_req_str(req, "rotation_schedule", "");
	if (has_period && has_sched) {
		rc = cs_req_error(req, CS_EINVAL,
				  "mutually exclusive fields rotation_period and "
				  "rotation_schedule were both specified");
		goto out;
	}
	if (has_period) {
		set_num(role, "rotation_period", cs_req_int(req, "rotation_period", 0));
		cJSON_DeleteItemFromObjectCaseSensitive(role, "rotation_schedule");
		cJSON_DeleteItemFromObjectCaseSensitive(role, "rotation_window");
	}
	if (has_sched)
		cJSON_DeleteItemFromObjectCaseSensitive(role, "rotation_period");
	if (cs_req_has(req, "rotation_window"))
		set_num(role, "rotation_window", cs_req_int(req, "rotation_window", 0));
	cJSON *st = db_statements_field(req, "rotation_statements", &rc);
	if (rc)
		goto out;
	if (st) {
		cJSON_DeleteItemFromObjectCaseSensitive(role, "rotation_statements");
		cJSON_AddItemToObject(role, "rotation_statements", st);
	}
	if (strcmp(cs_req_str(req, "credential_type", "password"), "password") != 0) {
		rc = cs_req_error(req, CS_EINVAL, "only credential_type \"password\" is supported");
		goto out;
	}
	const char *db = db_str(role, "db_name", ""), *user = db_str(role, "username", "");
	int64_t period = num(role, "rotation_period"), window = num(role, "rotation_window");
	const char *sched = db_str(role, "rotation_schedule", "");
	struct db_cron cron;
	if (!*db)
		rc = cs_req_error(req, CS_EINVAL, "database name is required");
	else if (!*user)
		rc = cs_req_error(req, CS_EINVAL,
				  "username is a required field to create a static "
				  "account");
	else if (period <= 0 && !*sched)
		rc = cs_req_error(req, CS_EINVAL,
				  "one of rotation_schedule or rotation_period "
				  "must be provided to create a static account");
	else if (period > 0 && period < MIN_PERIOD)
		rc = cs_req_error(req, CS_EINVAL, "rotation_period must be %d seconds or more",
				  MIN_PERIOD);
	else if (*sched && db_cron_parse(sched, &cron))
		rc = cs_req_error(req, CS_EINVAL, "could not parse rotation_schedule");
	else if (period > 0 && window > 0)
		rc = cs_req_error(req, CS_EINVAL,
				  "rotation_window is invalid with use of "
				  "rotation_period");
	else if (window > 0 && window < MIN_WINDOW)
		rc = cs_req_error(req, CS_EINVAL, "rotation_window must be %d seconds or more",
				  MIN_WINDOW);
	if (rc)
		goto out;
	cJSON *cfg = NULL;
	rc = db_load_config(req, db, &cfg);
	if (rc == CS_ENOTFOUND)
		rc = cs_req_error(req, CS_EINVAL,
				  "failed to find entry for connection with name: \"%s\"", db);
	else if (!rc && !db_role_allowed(cfg, name))
		rc = cs_req_error(req, CS_EINVAL, "\"%s\" is not an allowed role", name);
	cs_json_delete_wiped(cfg);
	if (rc)
		goto out;
	if (!create) {
		/* A new period or schedule counts from the last rotation. */
		int64_t last = num(role, "last_vault_rotation");
		set_num(role, "next_vault_rotation", next_rotation(role, last));
		rc = put_static(req, name, role);
		goto out;
	}
	bool taken;
	rc = username_taken(req, name, db, user, &taken);
	if (!rc && taken)
		rc = cs_req_error(req, CS_EINVAL,
				  "username \"%s\" is already managed by another "
				  "static role of connection \"%s\"",
				  user, db);
	if (rc)
		goto out;
	/* As Vault: a new static role takes over the user by rotating its password now. */
	struct rot_job *job = rot_new();
	job->create = true;
	job->answer = true;
	rc = rot_add(req, job, name, role);
	return rot_wait(req, job, rc); /* the job owns role */
out:
	cs_json_delete_wiped(role);
	return rc;
}

int db_static_delete(struct cs_request *req)
{
	struct cs_buf key = CS_BUF_INIT;
	cs_buf_printf(&key, "static-role/%s", cs_req_capture(req, "name"));
	int rc = cs_view_delete(req, key.data);
	cs_buf_free(&key);
	return rc;
}

int db_static_list(struct cs_request *req)
{
	return db_list_prefix(req, "static-role/");
}

int db_static_rotate(struct cs_request *req)
{
	const char *name = cs_req_capture(req, "name");
	cJSON *role = NULL;
	int rc = load_static(req, name, &role);
	if (rc == CS_ENOTFOUND)
		return cs_req_error(req, CS_EINVAL, "no static role found for role name");
	if (rc)
		return rc;
	struct rot_job *job = rot_new();
	job->answer = true;
	rc = rot_add(req, job, name, role);
	return rot_wait(req, job, rc);
}

/* The mount's periodic run: rotate the static roles that are due (a bounded batch). */
int db_periodic(struct cs_request *req)
{
	struct cs_strv names = {0};
	int rc = cs_view_list(req, "static-role/", &names);
	if (rc || names.n == 0) {
		cs_strv_free(&names);
		return rc;
	}
	int64_t now = cs_now_ns() / 1000000000;
	struct rot_job *job = rot_new();
	bool wrote = false;
	for (size_t i = 0; i < names.n && i < STATIC_SCAN_MAX && job->n < STATIC_BATCH; i++) {
		cJSON *role = NULL;
		if (load_static(req, names.v[i], &role))
			continue;
		int64_t next = num(role, "next_vault_rotation");
		int64_t window = num(role, "rotation_window");
		if (next < 0 || next > now) {
			cs_json_delete_wiped(role);
			continue;
		}
		if (window > 0 && now > next + window) {
			/* The window passed unseen: wait for the next scheduled time, as Vault.
			 * Written only when nothing else is rotated in this run (a run that
			 * parks cannot write before it), else the next run does it. */
			if (job->n == 0) {
				struct db_cron c;
				if (db_cron_parse(db_str(role, "rotation_schedule", ""), &c) == 0) {
					set_num(role, "next_vault_rotation", db_cron_next(&c, now));
					rc = put_static(req, names.v[i], role);
					wrote = true;
				}
			}
			cs_json_delete_wiped(role);
			if (rc)
				break;
			continue;
		}
		if (wrote) {
			cs_json_delete_wiped(role);
			continue;
		}
		int ar = rot_add(req, job, names.v[i], role);
		if (ar) {
			/* Its config is gone or broken: log, keep going with the others. */
			cs_warn("database: cannot rotate static role %s: %s", names.v[i],
				req->errmsg ? req->errmsg : cs_strerror(ar));
			free(req->errmsg);
			req->errmsg = NULL;
			struct rot_item *it = &job->items[job->n - 1];
			if (!it->op.done) {
				/* never submitted: drop it from the batch */
				cs_pg_op_clear(&it->op);
				free(it->role);
				if (it->password) {
					cs_zero(it->password, strlen(it->password));
					free(it->password);
				}
				cs_json_delete_wiped(it->entry);
				job->n--;
			}
		}
	}
	cs_strv_free(&names);
	if (rc || job->pending == 0) {
		rot_free(job);
		return rc;
	}
	return cs_req_wait(req, &job->async);
}
