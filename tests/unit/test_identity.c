/*
 * Unit tests for identity: template parsing and expansion (policy/template.c), templated
 * policies instantiated for an identity and evaluated by the ACL (policy/policy.c), and
 * the identity engine (engines/identity*.c) driven through its path table on a core with
 * real storage and keyring: entities, aliases, groups with nested membership (the
 * effective policies the resolve hook computes), cycles, merge rules, root refused.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engines/identity.h"
#include "engines/identity_internal.h"
#include "lib/err.h"
#include "lib/util.h"
#include "policy/policy.h"
#include "policy/template.h"
#include "server/core.h"
#include "server/router.h"
#include "tests/unit/fixtures.h"

/* ---------------------------------------------------------------- templates */

static const char *IDENT =
    "{\"entity\":{\"id\":\"e-1\",\"name\":\"alice\",\"metadata\":{\"team\":\"red\","
    "\"empty\":\"\",\"slash\":\"a/b\"},\"aliases\":[{\"id\":\"al-1\",\"name\":\"alice@up\","
    "\"mount_accessor\":\"auth_userpass_1\",\"metadata\":{\"role\":\"dev\"},"
    "\"custom_metadata\":{\"cc\":\"42\"}}]},\"groups\":[{\"id\":\"g-1\",\"name\":\"ops\","
    "\"metadata\":{\"site\":\"ams\"}}]}";

static const struct {
	const char *in;
	int rc;
	const char *out;
} tmpl_cases[] = {
    {"plain/path", 0, "plain/path"},
    {"s/{{identity.entity.id}}/x", 0, "s/e-1/x"},
    {"s/{{ identity.entity.name }}", 0, "s/alice"},
    {"s/{{identity.entity.metadata.team}}", 0, "s/red"},
    {"s/{{identity.entity.metadata.nope}}", CS_ENOTFOUND, NULL},
    {"s/{{identity.entity.metadata.empty}}", CS_ENOTFOUND, NULL}, /* empty is missing */
    {"s/{{identity.entity.metadata.slash}}", CS_ENOTFOUND, NULL}, /* would widen the path */
    {"s/{{identity.entity.aliases.auth_userpass_1.name}}", 0, "s/alice@up"},
    {"s/{{identity.entity.aliases.auth_userpass_1.id}}", 0, "s/al-1"},
    {"s/{{identity.entity.aliases.auth_userpass_1.metadata.role}}", 0, "s/dev"},
    {"s/{{identity.entity.aliases.auth_userpass_1.custom_metadata.cc}}", 0, "s/42"},
    {"s/{{identity.entity.aliases.auth_other.name}}", CS_ENOTFOUND, NULL},
    {"s/{{identity.entity.aliases.auth_userpass_1}}", CS_ENOTFOUND, NULL},
    {"s/{{identity.groups.ids.g-1.name}}", 0, "s/ops"},
    {"s/{{identity.groups.names.ops.id}}", 0, "s/g-1"},
    {"s/{{identity.groups.names.ops.metadata.site}}", 0, "s/ams"},
    {"s/{{identity.groups.names.dev.id}}", CS_ENOTFOUND, NULL},
    {"s/{{identity.groups.bogus.ops.id}}", CS_ENOTFOUND, NULL},
    {"s/{{identity.what}}", CS_ENOTFOUND, NULL},
    {"s/{{}}", CS_ENOTFOUND, NULL},
    {"a/{{identity.entity.id}}/{{identity.entity.name}}", 0, "a/e-1/alice"},
    /* Vault's balance rules */
    {"s/{{identity.entity.id", CS_EINVAL, NULL},
    {"s/}}x{{identity.entity.id}}", CS_EINVAL, NULL},
    {"s/{{identity.entity.id}}}}", CS_EINVAL, NULL},
    {"s/{{a{{identity.entity.id}}", CS_EINVAL, NULL},
};

START_TEST(test_template_render)
{
	cJSON *ident = cJSON_Parse(IDENT);
	char *out = NULL, err[200];
	int rc = cs_template_render(tmpl_cases[_i].in, ident, &out, err, sizeof err);
	ck_assert_msg(rc == tmpl_cases[_i].rc, "%s: rc %d want %d (%s)", tmpl_cases[_i].in, rc,
		      tmpl_cases[_i].rc, err);
	if (tmpl_cases[_i].out)
		ck_assert_str_eq(out, tmpl_cases[_i].out);
	else
		ck_assert_ptr_null(out);
	free(out);
	cJSON_Delete(ident);
}
END_TEST

START_TEST(test_template_no_identity)
{
	char *out = NULL, err[200];
	ck_assert_int_eq(
	    cs_template_render("s/{{identity.entity.id}}", NULL, &out, err, sizeof err),
	    CS_ENOTFOUND);
	ck_assert(strstr(err, "no entity was provided"));
	cJSON *noent = cJSON_Parse("{\"entity\":{\"id\":\"e\"},\"groups\":[]}");
	ck_assert_int_eq(
	    cs_template_render("s/{{identity.groups.ids.g.name}}", noent, &out, err, sizeof err),
	    CS_ENOTFOUND);
	ck_assert(strstr(err, "no groups were provided"));
	cJSON_Delete(noent);
	bool has;
	ck_assert_int_eq(cs_template_validate("a/{{x}}/b", &has), 0);
	ck_assert(has);
	ck_assert_int_eq(cs_template_validate("a/b", &has), 0);
	ck_assert(!has);
}
END_TEST

static struct cs_policy *parse_ok(const char *text)
{
	char err[600];
	struct cs_policy *p = NULL;
	ck_assert_msg(cs_policy_parse(text, strlen(text), &p, err, sizeof err) == 0, "%s", err);
	return p;
}

static bool allowed(const struct cs_policy *p, enum cs_acl_op op, const char *path)
{
	const struct cs_policy *v[] = {p};
	struct cs_acl_request r = {op, path, NULL, 0, false};
	return cs_acl_allowed(v, 1, &r);
}

/* A policy evaluated with its expansion beside it, as the ACL hook does. */
static bool allowed2(const struct cs_policy *p, const struct cs_policy *q, enum cs_acl_op op,
		     const char *path)
{
	const struct cs_policy *v[] = {p, q};
	struct cs_acl_request r = {op, path, NULL, 0, false};
	return cs_acl_allowed(v, 2, &r);
}

START_TEST(test_policy_instantiate)
{
	struct cs_policy *p = parse_ok(
	    "path \"secret/data/{{identity.entity.name}}/*\" { capabilities = [\"read\"] }\n"
	    "path \"secret/data/{{identity.entity.metadata.nope}}/*\" { capabilities = "
	    "[\"read\"] }\n"
	    "path \"team/{{identity.groups.names.ops.id}}/+/x\" { capabilities = [\"update\"] }\n"
	    "path \"static/a\" { capabilities = [\"read\"] }\n");
	ck_assert(p->templated);
	/* As parsed, a templated path never matches. */
	ck_assert(!allowed(p, CS_ACL_READ, "secret/data/alice/k"));
	cJSON *ident = cJSON_Parse(IDENT);
	struct cs_policy *q = cs_policy_instantiate(p, ident);
	ck_assert(!q->templated);
	/* only the expanded templated rules; the path with a missing value is gone */
	ck_assert_uint_eq(q->n_rules, 2);
	ck_assert(allowed2(p, q, CS_ACL_READ, "secret/data/alice/k"));
	ck_assert(!allowed2(p, q, CS_ACL_READ, "secret/data/bob/k"));
	ck_assert(!allowed2(p, q, CS_ACL_READ, "secret/data//k"));
	ck_assert(allowed2(p, q, CS_ACL_UPDATE, "team/g-1/any/x"));
	ck_assert(!allowed2(p, q, CS_ACL_UPDATE, "team/g-2/any/x"));
	ck_assert(allowed2(p, q, CS_ACL_READ, "static/a"));
	cs_policy_free(q);
	/* Without an identity nothing expands: only the plain rules of p count. */
	q = cs_policy_instantiate(p, NULL);
	ck_assert_uint_eq(q->n_rules, 0);
	ck_assert(allowed2(p, q, CS_ACL_READ, "static/a"));
	ck_assert(!allowed2(p, q, CS_ACL_READ, "secret/data/alice/k"));
	cs_policy_free(q);
	cJSON_Delete(ident);
	cs_policy_free(p);
}
END_TEST

START_TEST(test_policy_template_parse_error)
{
	const char *bad = "path \"a/{{identity.entity.id}}}}\" { capabilities = [\"read\"] }";
	char err[600];
	struct cs_policy *p = NULL;
	ck_assert_int_eq(cs_policy_parse(bad, strlen(bad), &p, err, sizeof err), CS_EINVAL);
	ck_assert_str_eq(err, "failed to parse policy: failed to validate policy templating: "
			      "unbalanced templating characters");
}
END_TEST

/* ---------------------------------------------------------------- engine fixture */

static struct cs_core core;
static struct cs_config cfg;
static uv_loop_t loop;
static char dir[64];
static const char *userpass_acc;

static void done_cb(uv_timer_t *tm)
{
	void **t = tm->data;
	cs_storage_batch_done(&core.st, *t, 0);
	free(t);
	uv_close((uv_handle_t *)tm, (uv_close_cb)free);
}

static int propose(void *ctx, const void *data, size_t len, void *token)
{
	(void)ctx;
	static uint64_t idx;
	ck_assert_int_eq(cs_store_apply(&core.st.store, ++idx, data, len), 0);
	uv_timer_t *tm = malloc(sizeof *tm);
	uv_timer_init(&loop, tm);
	void **t = malloc(sizeof *t);
	*t = token;
	tm->data = t;
	uv_timer_start(tm, done_cb, 0, 0);
	return 0;
}

static void commit_cb(void *data, int status)
{
	*(int *)data = status;
}

static int commit_sync(struct cs_txn *t)
{
	int st = -1;
	bool pending = false;
	int rc = cs_txn_commit(t, commit_cb, &st, &pending);
	if (rc || !pending)
		return rc;
	while (st == -1)
		uv_run(&loop, UV_RUN_ONCE);
	return st;
}

static int allow_all(struct cs_request *req)
{
	(void)req;
	return 0;
}

static void fx_setup(void)
{
	memset(&core, 0, sizeof core);
	cs_core_set_acl(&core, &(struct cs_acl_hooks){.check = allow_all});
	cs_config_init(&cfg);
	uv_loop_init(&loop);
	core.loop = &loop;
	core.cfg = &cfg;
	cs_fx_tmpdir(dir, sizeof dir, "identity");
	ck_assert_int_eq(cs_storage_open(&core.st, dir, 64 << 20), 0);
	cs_storage_set_proposer(&core.st, propose, &core);
	core.kr = cs_keyring_new();
	core.active = true;
	cs_router_init(&core.router);
	cs_identity_register(&core);
	cs_router_add(&core.router, cs_mount_new("identity/", "identity", false));
	struct cs_mount *up = cs_mount_new("auth/userpass/", "userpass", true);
	userpass_acc = up->accessor;
	cs_router_add(&core.router, up);
}

static void fx_teardown(void)
{
	uv_run(&loop, UV_RUN_DEFAULT);
	cs_core_release_state(&core); /* the resolved-identity cache */
	cs_router_clear(&core.router);
	cs_storage_close(&core.st);
	cs_keyring_free(core.kr);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	cs_config_free(&cfg);
	cs_fx_rm_rf(dir);
}

struct resp {
	int rc;
	cJSON *data;
	char msg[512];
};

/* Run `op` on identity/<rel> with `body` (root), commit; the response's data is returned
 * (owned by the caller through resp_free). */
static struct resp call(enum cs_op op, const char *rel, const char *body)
{
	struct resp out = {0};
	struct cs_request req = {0};
	req.core = &core;
	req.op = op;
	char path[512];
	snprintf(path, sizeof path, "identity/%s", rel);
	req.path = path;
	req.rel = path + 9;
	req.mount = cs_router_get(&core.router, "identity/");
	req.root = true;
	req.data = body ? cJSON_Parse(body) : cJSON_CreateObject();
	ck_assert_ptr_nonnull(req.data);
	cs_txn_begin(&req.txn, &core.st, core.kr);
	ck_assert_msg(cs_backend_route(&cs_identity_backend, &req, req.rel), "no route %s", rel);
	out.rc = cs_backend_dispatch(&req);
	if (!out.rc)
		out.rc = commit_sync(&req.txn);
	else
		cs_txn_abort(&req.txn);
	snprintf(out.msg, sizeof out.msg, "%s", req.errmsg ? req.errmsg : "");
	out.data = req.resp_data;
	for (int i = 0; i < req.n_caps; i++)
		free(req.caps[i].value);
	cJSON_Delete(req.data);
	cJSON_Delete(req.warnings);
	free(req.errmsg);
	return out;
}

static const char *dstr(const struct resp *r, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->data, k);
	return cJSON_IsString(v) ? v->valuestring : "";
}

/* Create and return the id (static buffer rotation: 8 slots). */
static const char *make(const char *rel, const char *body)
{
	static char ids[8][64];
	static int slot;
	struct resp r = call(CS_OP_UPDATE, rel, body);
	ck_assert_msg(r.rc == 0, "%s %s: %d %s", rel, body, r.rc, r.msg);
	char *o = ids[slot++ % 8];
	snprintf(o, 64, "%s", dstr(&r, "id"));
	cJSON_Delete(r.data);
	return o;
}

static cJSON *resolve(const char *eid)
{
	struct cs_txn t;
	cs_txn_begin(&t, &core.st, core.kr);
	cJSON *o = NULL;
	ck_assert_int_eq(cs_backend_identity_resolve(&core, &t, eid, &o), 0);
	cs_txn_abort(&t);
	return o;
}

static char *policies_of(const char *eid)
{
	cJSON *o = resolve(eid);
	char *s = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(o, "policies"));
	cJSON_Delete(o);
	return s;
}

START_TEST(test_entity_crud_and_root_refused)
{
	char body[512];
	char eid[64];
	snprintf(eid, sizeof eid, "%s",
		 make("entity", "{\"name\":\"alice\",\"policies\":[\"P1\",\"p2\",\"p1\"]}"));
	struct resp r = call(CS_OP_READ, "entity/name/alice", NULL);
	ck_assert_int_eq(r.rc, 0);
	ck_assert_str_eq(dstr(&r, "id"), eid);
	char *pol = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(r.data, "policies"));
	ck_assert_str_eq(pol, "[\"p1\",\"p2\"]");
	free(pol);
	cJSON_Delete(r.data);
	/* root can never be attached, by create or update */
	r = call(CS_OP_UPDATE, "entity", "{\"name\":\"bob\",\"policies\":[\"root\"]}");
	ck_assert_int_eq(r.rc, CS_EINVAL);
	ck_assert_str_eq(r.msg, "policies cannot contain root");
	snprintf(body, sizeof body, "{\"policies\":\"a,ROOT\"}");
	char rel[128];
	snprintf(rel, sizeof rel, "entity/id/%s", eid);
	r = call(CS_OP_UPDATE, rel, body);
	ck_assert_int_eq(r.rc, CS_EINVAL);
	/* a name in use by another entity */
	make("entity", "{\"name\":\"carol\"}");
	r = call(CS_OP_UPDATE, rel, "{\"name\":\"carol\"}");
	ck_assert_int_eq(r.rc, CS_EINVAL);
	ck_assert_str_eq(r.msg, "entity name is already in use");
	/* rename frees the old name */
	r = call(CS_OP_UPDATE, rel, "{\"name\":\"alice2\"}");
	ck_assert_int_eq(r.rc, 0);
	ck_assert_ptr_null(r.data); /* an update answers 204 */
	ck_assert_int_eq(call(CS_OP_READ, "entity/name/alice", NULL).rc, CS_ENOTFOUND);
	r = call(CS_OP_LIST, "entity/name", NULL);
	char *keys = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(r.data, "keys"));
	ck_assert_str_eq(keys, "[\"alice2\",\"carol\"]");
	free(keys);
	cJSON_Delete(r.data);
	ck_assert_int_eq(call(CS_OP_DELETE, rel, NULL).rc, 0);
	ck_assert_int_eq(call(CS_OP_READ, rel, NULL).rc, CS_ENOTFOUND);
	ck_assert_int_eq(call(CS_OP_READ, "entity/name/alice2", NULL).rc, CS_ENOTFOUND);
}
END_TEST

START_TEST(test_alias_rules)
{
	char b[512];
	struct resp r = call(CS_OP_UPDATE, "entity-alias",
			     "{\"name\":\"x\",\"mount_accessor\":\"auth_nope_1\"}");
	ck_assert_int_eq(r.rc, CS_EINVAL);
	ck_assert_str_eq(r.msg, "invalid mount accessor \"auth_nope_1\"");
	char e1[64];
	snprintf(e1, sizeof e1, "%s", make("entity", "{\"name\":\"e1\"}"));
	snprintf(b, sizeof b,
		 "{\"name\":\"bob\",\"mount_accessor\":\"%s\",\"canonical_id\":\"%s\"}",
		 userpass_acc, e1);
	char a1[64];
	snprintf(a1, sizeof a1, "%s", make("entity-alias", b));
	/* one alias per entity and mount */
	snprintf(b, sizeof b,
		 "{\"name\":\"bob2\",\"mount_accessor\":\"%s\",\"canonical_id\":\"%s\"}",
		 userpass_acc, e1);
	r = call(CS_OP_UPDATE, "entity-alias", b);
	ck_assert_int_eq(r.rc, CS_EINVAL);
	ck_assert_str_eq(r.msg, "Alias already exists for requested entity and mount accessor");
	/* lookup by alias factors and by alias id */
	snprintf(b, sizeof b, "{\"alias_name\":\"bob\",\"alias_mount_accessor\":\"%s\"}",
		 userpass_acc);
	r = call(CS_OP_UPDATE, "lookup/entity", b);
	ck_assert_int_eq(r.rc, 0);
	ck_assert_str_eq(dstr(&r, "id"), e1);
	cJSON_Delete(r.data);
	snprintf(b, sizeof b, "{\"alias_id\":\"%s\"}", a1);
	r = call(CS_OP_UPDATE, "lookup/entity", b);
	ck_assert_str_eq(dstr(&r, "id"), e1);
	cJSON_Delete(r.data);
	r = call(CS_OP_UPDATE, "lookup/entity", "{\"name\":\"nobody\"}");
	ck_assert_int_eq(r.rc, 0);
	ck_assert_ptr_null(r.data); /* a miss is a 204 */
	r = call(CS_OP_UPDATE, "lookup/entity", "{\"alias_name\":\"bob\"}");
	ck_assert_int_eq(r.rc, CS_EINVAL);
	/* deleting the entity frees the alias (name, accessor) */
	char rel[128];
	snprintf(rel, sizeof rel, "entity/id/%s", e1);
	ck_assert_int_eq(call(CS_OP_DELETE, rel, NULL).rc, 0);
	snprintf(b, sizeof b, "{\"alias_id\":\"%s\"}", a1);
	r = call(CS_OP_UPDATE, "lookup/entity", b);
	ck_assert_ptr_null(r.data);
	snprintf(b, sizeof b, "{\"name\":\"bob\",\"mount_accessor\":\"%s\"}", userpass_acc);
	r = call(CS_OP_UPDATE, "entity-alias", b); /* creates a new entity for it */
	ck_assert_int_eq(r.rc, 0);
	ck_assert_str_ne(dstr(&r, "canonical_id"), e1);
	cJSON_Delete(r.data);
}
END_TEST

START_TEST(test_nested_groups_effective_policies)
{
	char b[512], eid[64], g1[64], g2[64], g3[64];
	snprintf(eid, sizeof eid, "%s",
		 make("entity", "{\"name\":\"alice\",\"policies\":[\"e\"]}"));
	char *p = policies_of(eid);
	ck_assert_str_eq(p, "[\"e\"]");
	free(p);
	snprintf(b, sizeof b,
		 "{\"name\":\"inner\",\"policies\":[\"gi\"],\"member_entity_ids\":[\"%s\"]}", eid);
	snprintf(g1, sizeof g1, "%s", make("group", b));
	snprintf(b, sizeof b,
		 "{\"name\":\"mid\",\"policies\":[\"gm\"],\"member_group_ids\":[\"%s\"]}", g1);
	snprintf(g2, sizeof g2, "%s", make("group", b));
	snprintf(b, sizeof b,
		 "{\"name\":\"outer\",\"policies\":[\"go\",\"e\"],\"member_group_ids\":[\"%s\"]}",
		 g2);
	snprintf(g3, sizeof g3, "%s", make("group", b));
	p = policies_of(eid);
	ck_assert_str_eq(p, "[\"e\",\"gi\",\"gm\",\"go\"]");
	free(p);
	cJSON *o = resolve(eid);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, "groups")), 3);
	cJSON_Delete(o);
	/* a cycle is refused: outer into inner */
	char rel[128];
	snprintf(rel, sizeof rel, "group/id/%s", g1);
	snprintf(b, sizeof b, "{\"member_group_ids\":[\"%s\"]}", g3);
	struct resp r = call(CS_OP_UPDATE, rel, b);
	ck_assert_int_eq(r.rc, CS_EINVAL);
	ck_assert(strstr(r.msg, "cyclic relationship detected for member group ID"));
	snprintf(b, sizeof b, "{\"member_group_ids\":[\"%s\"]}", g1);
	r = call(CS_OP_UPDATE, rel, b);
	ck_assert_int_eq(r.rc, CS_EINVAL);
	/* root is refused on groups */
	r = call(CS_OP_UPDATE, "group", "{\"name\":\"x\",\"policies\":[\"root\"]}");
	ck_assert_str_eq(r.msg, "policies cannot contain root");
	/* removing mid from the chain drops mid's and outer's policies at once */
	snprintf(rel, sizeof rel, "group/id/%s", g2);
	ck_assert_int_eq(call(CS_OP_DELETE, rel, NULL).rc, 0);
	p = policies_of(eid);
	ck_assert_str_eq(p, "[\"e\",\"gi\"]");
	free(p);
	/* external groups: members are not editable by hand */
	r = call(CS_OP_UPDATE, "group", "{\"name\":\"ext\",\"type\":\"external\"}");
	ck_assert_int_eq(r.rc, 0);
	cJSON_Delete(r.data);
	snprintf(b, sizeof b, "{\"member_entity_ids\":[\"%s\"]}", eid);
	r = call(CS_OP_UPDATE, "group/name/ext", b);
	ck_assert_int_eq(r.rc, CS_EINVAL);
	ck_assert_str_eq(r.msg, "member entities can't be set manually for external groups");
	/* a disabled entity is reported for the ACL to refuse */
	snprintf(rel, sizeof rel, "entity/id/%s", eid);
	ck_assert_int_eq(call(CS_OP_UPDATE, rel, "{\"disabled\":true}").rc, 0);
	o = resolve(eid);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(o, "entity"), "disabled")));
	cJSON_Delete(o);
}
END_TEST

/* The resolved-identity cache (identity_cache.c) answers repeated resolutions without
 * decrypting, and never answers from a state storage no longer holds: a committed group
 * change, and a change only the reading transaction has made, both show at once. */
START_TEST(test_resolve_cache_never_stale)
{
	char b[512], eid[64], g1[64], g2[64];
	snprintf(eid, sizeof eid, "%s", make("entity", "{\"name\":\"carol\"}"));
	snprintf(b, sizeof b,
		 "{\"name\":\"team\",\"policies\":[\"t1\"],\"member_entity_ids\":[\"%s\"]}", eid);
	snprintf(g1, sizeof g1, "%s", make("group", b));
	snprintf(b, sizeof b,
		 "{\"name\":\"org\",\"policies\":[\"o1\"],\"member_group_ids\":[\"%s\"]}", g1);
	snprintf(g2, sizeof g2, "%s", make("group", b));
	uint64_t h0, m0, h1, m1;
	char *p = policies_of(eid);
	ck_assert_str_eq(p, "[\"o1\",\"t1\"]");
	free(p);
	cs_id_cache_stats(&core, &h0, &m0);
	p = policies_of(eid);
	ck_assert_str_eq(p, "[\"o1\",\"t1\"]");
	free(p);
	cs_id_cache_stats(&core, &h1, &m1);
	ck_assert_uint_eq(h1, h0 + 1); /* the second answer came from the cache */
	ck_assert_uint_eq(m1, m0);
	/* the outer group's policies change: the next resolution sees it */
	char rel[128];
	snprintf(rel, sizeof rel, "group/id/%s", g2);
	ck_assert_int_eq(call(CS_OP_UPDATE, rel, "{\"policies\":[\"o2\"]}").rc, 0);
	p = policies_of(eid);
	ck_assert_str_eq(p, "[\"o2\",\"t1\"]");
	free(p);
	/* a membership removed (a LIST the resolution made changes) */
	snprintf(rel, sizeof rel, "group/id/%s", g1);
	ck_assert_int_eq(call(CS_OP_UPDATE, rel, "{\"member_entity_ids\":[]}").rc, 0);
	p = policies_of(eid);
	ck_assert_str_eq(p, "[]");
	free(p);
	snprintf(b, sizeof b, "{\"member_entity_ids\":[\"%s\"]}", eid);
	ck_assert_int_eq(call(CS_OP_UPDATE, rel, b).rc, 0);
	p = policies_of(eid);
	ck_assert_str_eq(p, "[\"o2\",\"t1\"]");
	free(p);
	/* a write the reading transaction itself made, not committed: seen, and the cached
	 * entry is not served to it */
	struct cs_txn t;
	cs_txn_begin(&t, &core.st, core.kr);
	struct cs_idv v;
	ck_assert_int_eq(cs_idv_open(&v, &core, &t), 0);
	char key[128];
	snprintf(key, sizeof key, "group/%s", g1);
	cJSON *g = NULL;
	ck_assert_int_eq(cs_idv_get(&v, key, &g), 0);
	cJSON_ReplaceItemInObjectCaseSensitive(
	    g, "policies", cJSON_CreateStringArray((const char *[]){"mine"}, 1));
	ck_assert_int_eq(cs_idv_put(&v, key, g), 0);
	cJSON_Delete(g);
	cJSON *o = NULL;
	ck_assert_int_eq(cs_backend_identity_resolve(&core, &t, eid, &o), 0);
	p = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(o, "policies"));
	ck_assert_str_eq(p, "[\"mine\",\"o2\"]");
	free(p);
	cJSON_Delete(o);
	cs_txn_abort(&t);
	/* ...and another transaction still sees what is committed */
	p = policies_of(eid);
	ck_assert_str_eq(p, "[\"o2\",\"t1\"]");
	free(p);
	/* the entity deleted: no identity */
	snprintf(rel, sizeof rel, "entity/id/%s", eid);
	ck_assert_int_eq(call(CS_OP_DELETE, rel, NULL).rc, 0);
	ck_assert_ptr_null(resolve(eid));
}
END_TEST

START_TEST(test_merge_rules)
{
	char b[768], to[64], from[64], from2[64], a_to[64], a_from[64];
	snprintf(to, sizeof to, "%s", make("entity", "{\"name\":\"to\",\"policies\":[\"pt\"]}"));
	snprintf(from, sizeof from, "%s",
		 make("entity", "{\"name\":\"from\",\"policies\":[\"pf\"]}"));
	snprintf(from2, sizeof from2, "%s", make("entity", "{\"name\":\"from2\"}"));
	snprintf(b, sizeof b, "{\"name\":\"u1\",\"mount_accessor\":\"%s\",\"canonical_id\":\"%s\"}",
		 userpass_acc, to);
	snprintf(a_to, sizeof a_to, "%s", make("entity-alias", b));
	snprintf(b, sizeof b, "{\"name\":\"u2\",\"mount_accessor\":\"%s\",\"canonical_id\":\"%s\"}",
		 userpass_acc, from);
	snprintf(a_from, sizeof a_from, "%s", make("entity-alias", b));
	/* from is in a group: the merge takes it out (Vault) */
	snprintf(b, sizeof b, "{\"name\":\"g\",\"member_entity_ids\":[\"%s\"]}", from);
	make("group", b);
	/* a clash on one mount is refused */
	snprintf(b, sizeof b, "{\"to_entity_id\":\"%s\",\"from_entity_ids\":[\"%s\"]}", to, from);
	struct resp r = call(CS_OP_UPDATE, "entity/merge", b);
	ck_assert_int_eq(r.rc, CS_EINVAL);
	ck_assert(strstr(r.msg, "toEntity and at least one fromEntity have aliases with the same "
				"mount accessor"));
	/* to in from, unknown ids */
	snprintf(b, sizeof b, "{\"to_entity_id\":\"%s\",\"from_entity_ids\":[\"%s\"]}", to, to);
	r = call(CS_OP_UPDATE, "entity/merge", b);
	ck_assert_str_eq(r.msg, "to_entity_id should not be present in from_entity_ids");
	snprintf(b, sizeof b, "{\"to_entity_id\":\"%s\",\"from_entity_ids\":[\"nope\"]}", to);
	r = call(CS_OP_UPDATE, "entity/merge", b);
	ck_assert_str_eq(r.msg, "entity id to merge from is invalid");
	/* resolved by keeping the from alias: the to alias goes */
	snprintf(b, sizeof b,
		 "{\"to_entity_id\":\"%s\",\"from_entity_ids\":[\"%s\"],"
		 "\"conflicting_alias_ids_to_keep\":[\"%s\"]}",
		 to, from, a_from);
	r = call(CS_OP_UPDATE, "entity/merge", b);
	ck_assert_msg(r.rc == 0, "%s", r.msg);
	char rel[128];
	snprintf(rel, sizeof rel, "entity/id/%s", to);
	r = call(CS_OP_READ, rel, NULL);
	const cJSON *al = cJSON_GetObjectItemCaseSensitive(r.data, "aliases");
	ck_assert_int_eq(cJSON_GetArraySize(al), 1);
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(al->child, "id")->valuestring, a_from);
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(al->child, "canonical_id")->valuestring,
			 to);
	char *pol = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(r.data, "policies"));
	ck_assert_str_eq(pol, "[\"pt\"]"); /* a user merge does not merge policies */
	free(pol);
	char *merged =
	    cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(r.data, "merged_entity_ids"));
	char want[128];
	snprintf(want, sizeof want, "[\"%s\"]", from);
	ck_assert_str_eq(merged, want);
	free(merged);
	cJSON_Delete(r.data);
	snprintf(rel, sizeof rel, "entity/id/%s", from);
	ck_assert_int_eq(call(CS_OP_READ, rel, NULL).rc, CS_ENOTFOUND);
	/* the moved alias resolves to the new owner; the dropped one is gone */
	snprintf(b, sizeof b, "{\"alias_id\":\"%s\"}", a_from);
	r = call(CS_OP_UPDATE, "lookup/entity", b);
	ck_assert_str_eq(dstr(&r, "id"), to);
	cJSON_Delete(r.data);
	snprintf(b, sizeof b, "{\"alias_id\":\"%s\"}", a_to);
	r = call(CS_OP_UPDATE, "lookup/entity", b);
	ck_assert_ptr_null(r.data);
	/* the group lost the merged entity */
	r = call(CS_OP_READ, "group/name/g", NULL);
	ck_assert_int_eq(
	    cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.data, "member_entity_ids")), 0);
	cJSON_Delete(r.data);
	/* no clash: a plain merge */
	snprintf(b, sizeof b, "{\"to_entity_id\":\"%s\",\"from_entity_ids\":[\"%s\"]}", to, from2);
	ck_assert_int_eq(call(CS_OP_UPDATE, "entity/merge", b).rc, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("identity");
	TCase *tc = tcase_create("templates");
	tcase_add_loop_test(tc, test_template_render, 0, (int)CS_ARRAY_LEN(tmpl_cases));
	tcase_add_test(tc, test_template_no_identity);
	tcase_add_test(tc, test_policy_instantiate);
	tcase_add_test(tc, test_policy_template_parse_error);
	suite_add_tcase(s, tc);
	tc = tcase_create("store");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_add_test(tc, test_entity_crud_and_root_refused);
	tcase_add_test(tc, test_alias_rules);
	tcase_add_test(tc, test_nested_groups_effective_policies);
	tcase_add_test(tc, test_merge_rules);
	tcase_add_test(tc, test_resolve_cache_never_stale);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
