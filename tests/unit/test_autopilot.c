/*
 * Unit tests for raft/autopilot.c: the pure logic (health, stabilization and promotion,
 * failure tolerance, dead-server choice under min_quorum, duration formatting) and the
 * configuration rules, plus the storage formats (member records, stored overrides)
 * inside one uncommitted transaction.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"
#include "lib/util.h"
#include "raft/autopilot.h"
#include "storage/barrier.h"
#include "tests/unit/fixtures.h"

#define S_MS 1000ULL

static struct cs_autopilot_config defaults(void)
{
	struct cs_autopilot_config c;
	cs_autopilot_config_defaults(&c);
	return c;
}

/* A follower last heard from at `contact` (0 = never), at match index `match`. */
static struct cs_ap_server follower(raft_id id, int role, uint64_t contact, uint64_t match)
{
	struct cs_ap_server s = {.id = id, .role = role, .known = true};
	s.first_seen = 1;
	s.last_contact = contact;
	s.match_index = match;
	return s;
}

static struct cs_ap_server leader(raft_id id)
{
	struct cs_ap_server s = {.id = id, .role = RAFT_VOTER, .leader = true, .known = true};
	s.first_seen = 1;
	return s;
}

/* ---------------------------------------------------------------- health */

START_TEST(test_health_contact_and_trailing)
{
	struct cs_autopilot_config c = defaults();
	uint64_t now = 100 * S_MS;
	struct cs_ap_server l = leader(1);
	ck_assert(cs_ap_healthy(&c, &l, now, 5000)); /* the leader always */

	struct cs_ap_server f = follower(2, RAFT_VOTER, now - 9 * S_MS, 5000);
	ck_assert(cs_ap_healthy(&c, &f, now, 5000));
	f.last_contact = now - 10 * S_MS; /* exactly the threshold: still healthy */
	ck_assert(cs_ap_healthy(&c, &f, now, 5000));
	f.last_contact = now - 10 * S_MS - 1;
	ck_assert(!cs_ap_healthy(&c, &f, now, 5000));

	f.last_contact = now;
	f.match_index = 4000; /* 1000 behind: allowed */
	ck_assert(cs_ap_healthy(&c, &f, now, 5000));
	f.match_index = 3999;
	ck_assert(!cs_ap_healthy(&c, &f, now, 5000));
	c.max_trailing_logs = 2000;
	ck_assert(cs_ap_healthy(&c, &f, now, 5000));

	struct cs_ap_server never = follower(3, RAFT_STANDBY, 0, 5000);
	ck_assert(!cs_ap_healthy(&c, &never, now, 5000));
	struct cs_ap_server spare = follower(4, RAFT_SPARE, now, 5000);
	ck_assert(!cs_ap_healthy(&c, &spare, now, 5000));
}
END_TEST

START_TEST(test_stable_since_restarts)
{
	struct cs_autopilot_config c = defaults();
	struct cs_ap_server s[2] = {leader(1), follower(2, RAFT_STANDBY, 10 * S_MS, 7)};
	cs_ap_update_health(&c, s, 2, 10 * S_MS, 7);
	ck_assert(s[1].healthy);
	ck_assert_uint_eq(s[1].stable_since, 10 * S_MS);
	/* Still healthy later: stable_since does not move. */
	s[1].last_contact = 15 * S_MS;
	cs_ap_update_health(&c, s, 2, 15 * S_MS, 7);
	ck_assert_uint_eq(s[1].stable_since, 10 * S_MS);
	/* Silent for too long, then back: a new stable period. */
	cs_ap_update_health(&c, s, 2, 30 * S_MS, 7);
	ck_assert(!s[1].healthy);
	s[1].last_contact = 31 * S_MS;
	cs_ap_update_health(&c, s, 2, 31 * S_MS, 7);
	ck_assert(s[1].healthy);
	ck_assert_uint_eq(s[1].stable_since, 31 * S_MS);
	ck_assert_uint_eq(cs_ap_since_contact(&s[1], 32 * S_MS), S_MS);
	ck_assert_uint_eq(cs_ap_since_contact(&s[0], 32 * S_MS), 0);
}
END_TEST

/* ---------------------------------------------------------------- promotion */

START_TEST(test_promotion_after_stabilization)
{
	struct cs_autopilot_config c = defaults();
	c.server_stabilization_time = 1;
	struct cs_ap_server s[3] = {leader(1), follower(2, RAFT_STANDBY, 5 * S_MS, 3),
				    follower(3, RAFT_STANDBY, 5 * S_MS, 3)};
	cs_ap_update_health(&c, s, 3, 5 * S_MS, 3);
	/* Healthy for 0.5 s: not yet. */
	ck_assert_int_eq(cs_ap_pick_promotion(&c, s, 3, 5 * S_MS + 500), -1);
	ck_assert_int_eq(cs_ap_pick_promotion(&c, s, 3, 6 * S_MS), 1);
	/* A permanent non-voter and a server without a record are never promoted. */
	s[1].non_voter = true;
	ck_assert_int_eq(cs_ap_pick_promotion(&c, s, 3, 6 * S_MS), 2);
	s[2].known = false;
	ck_assert_int_eq(cs_ap_pick_promotion(&c, s, 3, 6 * S_MS), -1);
	/* Unhealthy: no. */
	s[2].known = true;
	s[2].healthy = false;
	ck_assert_int_eq(cs_ap_pick_promotion(&c, s, 3, 6 * S_MS), -1);
	/* Voters and spares are not candidates. */
	struct cs_ap_server v[2] = {leader(1), follower(2, RAFT_VOTER, 5 * S_MS, 3)};
	cs_ap_update_health(&c, v, 2, 5 * S_MS, 3);
	ck_assert_int_eq(cs_ap_pick_promotion(&c, v, 2, 60 * S_MS), -1);
}
END_TEST

/* ---------------------------------------------------------------- tolerance */

START_TEST(test_failure_tolerance)
{
	struct cs_ap_server s[5] = {leader(1), follower(2, RAFT_VOTER, 1, 1),
				    follower(3, RAFT_VOTER, 1, 1), follower(4, RAFT_VOTER, 1, 1),
				    follower(5, RAFT_VOTER, 1, 1)};
	for (int i = 0; i < 5; i++)
		s[i].healthy = true;
	ck_assert_int_eq(cs_ap_failure_tolerance(s, 1), 0); /* one voter */
	ck_assert_int_eq(cs_ap_failure_tolerance(s, 3), 1); /* 3 voters tolerate 1 */
	ck_assert_int_eq(cs_ap_failure_tolerance(s, 5), 2); /* 5 tolerate 2 */
	ck_assert(cs_ap_cluster_healthy(s, 5));
	s[4].healthy = false;
	ck_assert_int_eq(cs_ap_failure_tolerance(s, 5), 1);
	ck_assert(!cs_ap_cluster_healthy(s, 5));
	s[3].healthy = s[2].healthy = false;
	ck_assert_int_eq(cs_ap_failure_tolerance(s, 5), 0); /* never negative */
	/* Non-voters count only in the optimistic figure, and only when promotable. */
	struct cs_ap_server m[3] = {leader(1), follower(2, RAFT_STANDBY, 1, 1),
				    follower(3, RAFT_STANDBY, 1, 1)};
	for (int i = 0; i < 3; i++)
		m[i].healthy = true;
	ck_assert_int_eq(cs_ap_failure_tolerance(m, 3), 0);
	ck_assert_int_eq(cs_ap_optimistic_failure_tolerance(m, 3), 1);
	m[2].non_voter = true;
	ck_assert_int_eq(cs_ap_optimistic_failure_tolerance(m, 3), 0);
	ck_assert(cs_ap_cluster_healthy(m, 3));      /* every voter healthy */
	ck_assert(!cs_ap_cluster_healthy(m + 1, 2)); /* no voter at all */
}
END_TEST

/* ---------------------------------------------------------------- dead servers */

START_TEST(test_dead_server_choice)
{
	struct cs_autopilot_config c = defaults();
	c.dead_server_last_contact_threshold = 60;
	c.min_quorum = 3;
	uint64_t now = 1000 * S_MS;
	struct cs_ap_server s[5] = {
	    leader(1), follower(2, RAFT_VOTER, now, 1), follower(3, RAFT_VOTER, now, 1),
	    follower(4, RAFT_VOTER, now - 61 * S_MS, 1), follower(5, RAFT_STANDBY, now, 1)};
	/* Cleanup off: nothing, however dead. */
	ck_assert_int_eq(cs_ap_pick_dead(&c, s, 5, now), -1);
	c.cleanup_dead_servers = true;
	/* 4 voters − 1 = 3 >= min_quorum: the dead voter goes. */
	ck_assert_int_eq(cs_ap_pick_dead(&c, s, 5, now), 3);
	/* Not yet past the threshold. */
	ck_assert_int_eq(cs_ap_pick_dead(&c, s, 5, now - 2 * S_MS), -1);
	/* A dead non-voter is preferred over a dead voter. */
	s[4].last_contact = now - 100 * S_MS;
	ck_assert_int_eq(cs_ap_pick_dead(&c, s, 5, now), 4);
	/* With 3 voters the dead voter must stay (2 < min_quorum 3). */
	ck_assert_int_eq(cs_ap_pick_dead(&c, s + 1, 3, now), -1);
	/* Never heard from: counted from first_seen. */
	struct cs_ap_server n[2] = {leader(1), follower(2, RAFT_STANDBY, 0, 0)};
	n[1].first_seen = now - 59 * S_MS;
	ck_assert_int_eq(cs_ap_pick_dead(&c, n, 2, now), -1);
	ck_assert_int_eq(cs_ap_pick_dead(&c, n, 2, now + 2 * S_MS), 1);
	/* The leader is never chosen. */
	struct cs_ap_server l[1] = {leader(1)};
	ck_assert_int_eq(cs_ap_pick_dead(&c, l, 1, now * 10), -1);
}
END_TEST

START_TEST(test_format_ms)
{
	static const struct {
		uint64_t ms;
		const char *want;
	} cases[] = {{0, "0s"},           {1, "1ms"},
		     {516, "516ms"},      {1000, "1s"},
		     {2500, "2.5s"},      {1250, "1.25s"},
		     {1001, "1.001s"},    {63250, "1m3.25s"},
		     {3600000, "1h0m0s"}, {3723004, "1h2m3.004s"}};
	for (size_t i = 0; i < CS_ARRAY_LEN(cases); i++) {
		char out[32];
		cs_ap_format_ms(cases[i].ms, out, sizeof out);
		ck_assert_str_eq(out, cases[i].want);
	}
}
END_TEST

/* ---------------------------------------------------------------- configuration */

START_TEST(test_config_defaults_json)
{
	struct cs_autopilot_config c = defaults();
	cJSON *j = cs_autopilot_config_json(&c);
	char *s = cJSON_PrintUnformatted(j);
	ck_assert_str_eq(s, "{\"cleanup_dead_servers\":false,\"last_contact_threshold\":\"10s\","
			    "\"dead_server_last_contact_threshold\":\"24h0m0s\","
			    "\"max_trailing_logs\":1000,\"min_quorum\":0,"
			    "\"server_stabilization_time\":\"10s\"}");
	free(s);
	cJSON_Delete(j);
	char err[256];
	ck_assert_int_eq(cs_autopilot_config_validate(&c, err, sizeof err), 0);
}
END_TEST

START_TEST(test_config_merge_apply)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *in = cJSON_Parse("{\"server_stabilization_time\":\"1s\",\"max_trailing_logs\":50,"
				"\"cleanup_dead_servers\":\"true\",\"min_quorum\":\"5\","
				"\"dead_server_last_contact_threshold\":120,\"ignored\":1}");
	char err[256];
	ck_assert_int_eq(cs_autopilot_config_merge(o, in, err, sizeof err), 0);
	cJSON_Delete(in);
	ck_assert_ptr_null(cJSON_GetObjectItem(o, "ignored"));
	struct cs_autopilot_config c;
	cs_autopilot_config_apply(&c, o);
	ck_assert_int_eq(c.server_stabilization_time, 1);
	ck_assert_int_eq(c.max_trailing_logs, 50);
	ck_assert(c.cleanup_dead_servers);
	ck_assert_int_eq(c.min_quorum, 5);
	ck_assert_int_eq(c.dead_server_last_contact_threshold, 120);
	ck_assert_int_eq(c.last_contact_threshold, 10); /* default kept */
	ck_assert_int_eq(cs_autopilot_config_validate(&c, err, sizeof err), 0);

	/* A later call merges over the earlier fields. */
	in = cJSON_Parse("{\"max_trailing_logs\":0,\"last_contact_threshold\":\"2m\"}");
	ck_assert_int_eq(cs_autopilot_config_merge(o, in, err, sizeof err), 0);
	cJSON_Delete(in);
	cs_autopilot_config_apply(&c, o);
	ck_assert_int_eq(c.max_trailing_logs, 1000); /* zero means default, as in Vault */
	ck_assert_int_eq(c.last_contact_threshold, 120);
	ck_assert_int_eq(c.server_stabilization_time, 1);

	/* Bad input: error, overrides untouched. */
	char *before = cJSON_PrintUnformatted(o);
	const char *bad[] = {"{\"min_quorum\":-1}", "{\"max_trailing_logs\":1.5}",
			     "{\"server_stabilization_time\":\"soon\"}",
			     "{\"cleanup_dead_servers\":\"maybe\"}",
			     "{\"last_contact_threshold\":\"1s\",\"min_quorum\":[3]}"};
	for (size_t i = 0; i < CS_ARRAY_LEN(bad); i++) {
		in = cJSON_Parse(bad[i]);
		err[0] = '\0';
		ck_assert_int_eq(cs_autopilot_config_merge(o, in, err, sizeof err), CS_EINVAL);
		ck_assert_ptr_nonnull(strstr(err, "error converting input"));
		cJSON_Delete(in);
		char *after = cJSON_PrintUnformatted(o);
		ck_assert_str_eq(after, before);
		free(after);
	}
	free(before);
	cJSON_Delete(o);
}
END_TEST

START_TEST(test_config_validate)
{
	struct cs_autopilot_config c = defaults();
	char err[256];
	c.cleanup_dead_servers = true;
	ck_assert_int_eq(cs_autopilot_config_validate(&c, err, sizeof err), CS_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "min_quorum must be set"));
	c.min_quorum = 2;
	ck_assert_int_eq(cs_autopilot_config_validate(&c, err, sizeof err), CS_EINVAL);
	c.min_quorum = 3;
	ck_assert_int_eq(cs_autopilot_config_validate(&c, err, sizeof err), 0);
	c.dead_server_last_contact_threshold = 59;
	ck_assert_int_eq(cs_autopilot_config_validate(&c, err, sizeof err), CS_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "less than 1m"));
	c.dead_server_last_contact_threshold = 60;
	ck_assert_int_eq(cs_autopilot_config_validate(&c, err, sizeof err), 0);
	/* Without cleanup neither rule applies (Vault checks them only then). */
	c.cleanup_dead_servers = false;
	c.min_quorum = 0;
	c.dead_server_last_contact_threshold = 1;
	ck_assert_int_eq(cs_autopilot_config_validate(&c, err, sizeof err), 0);
}
END_TEST

/* ---------------------------------------------------------------- storage formats */

static char dir[64];
static struct cs_storage st;
static struct cs_keyring *kr;

static void storage_setup(void)
{
	cs_fx_tmpdir(dir, sizeof dir, "autopilot");
	ck_assert_int_eq(cs_storage_open(&st, dir, 16 << 20), 0);
	kr = cs_keyring_new();
}

static void storage_teardown(void)
{
	cs_keyring_free(kr);
	cs_storage_close(&st);
	cs_fx_rm_rf(dir);
}

START_TEST(test_member_records)
{
	struct cs_txn t;
	cs_txn_begin(&t, &st, kr);
	struct cs_autopilot_member m = {.non_voter = true};
	snprintf(m.node_id, sizeof m.node_id, "n2");
	snprintf(m.api_addr, sizeof m.api_addr, "https://10.0.0.2:8200");
	snprintf(m.cluster_addr, sizeof m.cluster_addr, "10.0.0.2:8201");
	char name[64];
	struct cs_autopilot_member got;
	ck_assert_int_eq(cs_autopilot_member_get(&t, 42, &got), CS_ENOTFOUND);
	cs_autopilot_member_name(&t, 42, name, sizeof name);
	ck_assert_str_eq(name, "42"); /* no record: the id in decimal */

	ck_assert_int_eq(cs_autopilot_member_put(&t, 42, &m), 0);
	ck_assert_int_eq(cs_autopilot_member_get(&t, 42, &got), 0);
	ck_assert_str_eq(got.node_id, "n2");
	ck_assert_str_eq(got.api_addr, "https://10.0.0.2:8200");
	ck_assert_str_eq(got.cluster_addr, "10.0.0.2:8201");
	ck_assert(got.non_voter);
	cs_autopilot_member_name(&t, 42, name, sizeof name);
	ck_assert_str_eq(name, "n2");

	/* The record is barrier-encrypted at core/raft/nodes/<decimal id>. */
	struct cs_buf raw = CS_BUF_INIT;
	ck_assert_int_eq(cs_txn_get_raw(&t, "core/raft/nodes/42", &raw), 0);
	ck_assert_ptr_null(memmem(raw.data, raw.len, "n2", 2));
	cs_buf_free(&raw);
	/* A record written by other code with the documented JSON shape reads back. */
	const char *js = "{\"node_id\":\"n3\",\"api_addr\":\"a\",\"cluster_addr\":\"c\"}";
	ck_assert_int_eq(cs_txn_put(&t, "core/raft/nodes/7", js, strlen(js)), 0);
	ck_assert_int_eq(cs_autopilot_member_get(&t, 7, &got), 0);
	ck_assert_str_eq(got.node_id, "n3");
	ck_assert(!got.non_voter);
	cs_txn_abort(&t);
}
END_TEST

START_TEST(test_config_load)
{
	struct cs_txn t;
	cs_txn_begin(&t, &st, kr);
	struct cs_autopilot_config c;
	cJSON *o = NULL;
	/* Absent: defaults and an empty override object. */
	ck_assert_int_eq(cs_autopilot_config_load(&t, &c, &o), 0);
	ck_assert_int_eq(cJSON_GetArraySize(o), 0);
	ck_assert_int_eq(c.server_stabilization_time, 10);
	cJSON_Delete(o);
	const char *js = "{\"server_stabilization_time\":1,\"cleanup_dead_servers\":false}";
	ck_assert_int_eq(cs_txn_put(&t, CS_AUTOPILOT_CONFIG_KEY, js, strlen(js)), 0);
	ck_assert_int_eq(cs_autopilot_config_load(&t, &c, NULL), 0);
	ck_assert_int_eq(c.server_stabilization_time, 1);
	ck_assert_int_eq(c.max_trailing_logs, 1000);
	cs_txn_abort(&t);
}
END_TEST

/* A removal marker removes the incarnation it was written for, never a later one that
 * joined again under the same node_id (chaos finding 3). */
START_TEST(test_removal_marker_incarnation)
{
	const char *old = "{\"removed_at\":\"t\",\"raft_id\":\"7\",\"index\":\"41\"}";
	const char *legacy = "{\"removed_at\":\"t\",\"raft_id\":\"7\"}";
	/* Not admitted through a join (a founding member, or an older data directory):
	 * any marker counts, as before. */
	ck_assert(cs_autopilot_marker_removes(old, strlen(old), 0));
	ck_assert(cs_autopilot_marker_removes(legacy, strlen(legacy), 0));
	ck_assert(cs_autopilot_marker_removes("garbage", 7, 0));
	/* Admitted at 50: the marker written at 41 is an earlier incarnation's. */
	ck_assert(!cs_autopilot_marker_removes(old, strlen(old), 50));
	ck_assert(!cs_autopilot_marker_removes(legacy, strlen(legacy), 50));
	ck_assert(!cs_autopilot_marker_removes(NULL, 0, 50));
	/* A removal of this incarnation writes its marker at or above the admission. */
	ck_assert(cs_autopilot_marker_removes(old, strlen(old), 41));
	ck_assert(cs_autopilot_marker_removes(old, strlen(old), 12));
	const char *neg = "{\"index\":\"-5\"}";
	ck_assert(!cs_autopilot_marker_removes(neg, strlen(neg), 3));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("autopilot");
	TCase *logic = tcase_create("logic");
	tcase_add_test(logic, test_health_contact_and_trailing);
	tcase_add_test(logic, test_stable_since_restarts);
	tcase_add_test(logic, test_promotion_after_stabilization);
	tcase_add_test(logic, test_failure_tolerance);
	tcase_add_test(logic, test_dead_server_choice);
	tcase_add_test(logic, test_format_ms);
	tcase_add_test(logic, test_removal_marker_incarnation);
	suite_add_tcase(s, logic);

	TCase *cfg = tcase_create("config");
	tcase_add_test(cfg, test_config_defaults_json);
	tcase_add_test(cfg, test_config_merge_apply);
	tcase_add_test(cfg, test_config_validate);
	suite_add_tcase(s, cfg);

	TCase *store = tcase_create("storage");
	tcase_add_checked_fixture(store, storage_setup, storage_teardown);
	tcase_add_test(store, test_member_records);
	tcase_add_test(store, test_config_load);
	suite_add_tcase(s, store);

	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
