"""Identity end to end (issue 14): the identity/ engine through hvac's secrets.identity and
curl-like raw requests - entities, aliases, groups, group aliases, lookups, merge - logins
that create entities (userpass, AppRole, token roles with allowed_entity_aliases),
policies from identity computed per request (nested groups, disabled entities,
sys/capabilities), templated policies (alice reads secret/data/alice/* and not bob/*),
and logins through the standbys of a 3-node cluster making one entity.
"""

import concurrent.futures

import hvac
import pytest

import custos_harness as H

TMPL = """
path "secret/data/{{identity.entity.name}}/*" { capabilities = ["create", "read", "update"] }
path "secret/metadata/{{identity.entity.name}}/*" { capabilities = ["list"] }
path "secret/data/team/{{identity.groups.names.team.metadata.code}}/*" { capabilities = ["read"] }
path "secret/data/alias/{{identity.entity.aliases.%s.name}}" { capabilities = ["read"] }
"""
SHARED = """
path "secret/data/shared/*" { capabilities = ["create", "read", "update"] }
"""


@pytest.fixture(scope="module")
def srv(module_unsealed):
    c = module_unsealed.client()
    c.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    c.sys.enable_auth_method("userpass", path="userpass")
    c.sys.enable_auth_method("approle", path="approle")
    acc = c.sys.list_auth_methods()["data"]["userpass/"]["accessor"]
    c.sys.create_or_update_policy("tmpl", TMPL % acc)
    c.sys.create_or_update_policy("shared", SHARED)
    for who in ("alice", "bob"):
        c.write("auth/userpass/users/" + who, password="pw-" + who, token_policies="tmpl")
        c.secrets.kv.v2.create_or_update_secret(path=who + "/note", secret={"owner": who})
    c.secrets.kv.v2.create_or_update_secret(path="shared/x", secret={"v": 1})
    c.secrets.kv.v2.create_or_update_secret(path="team/t42/x", secret={"v": 2})
    module_unsealed.userpass_accessor = acc
    return module_unsealed


def root(srv):
    return srv.client()


def login(srv, who):
    c = srv.client(token="")
    a = c.auth.userpass.login(username=who, password="pw-" + who)["auth"]
    return a, srv.client(token=a["client_token"])


def errors(r):
    return r.json().get("errors", [])


def can_read(c, path):
    try:
        c.secrets.kv.v2.read_secret_version(path=path)
        return True
    except hvac.exceptions.Forbidden:
        return False


# ---- store ----------------------------------------------------------------------------
def test_entity_crud_list_and_lookup(srv):
    c = root(srv)
    name = "ent-" + H.uid()[:8]
    r = c.secrets.identity.create_or_update_entity(name=name, metadata={"team": "red"},
                                                   policies=["P1", "p2"])
    eid = r["data"]["id"]
    e = c.secrets.identity.read_entity(entity_id=eid)["data"]
    assert e["name"] == name and e["metadata"] == {"team": "red"}
    assert e["policies"] == ["p1", "p2"] and e["disabled"] is False
    assert e["aliases"] == [] and e["group_ids"] == []
    assert c.secrets.identity.read_entity_by_name(name=name)["data"]["id"] == eid
    # update by name (204) and by id
    c.secrets.identity.create_or_update_entity_by_name(name=name, policies=["p3"])
    assert c.secrets.identity.read_entity(entity_id=eid)["data"]["policies"] == ["p3"]
    # LIST by id and name, and GET ?list=true
    assert eid in c.secrets.identity.list_entities()["data"]["keys"]
    assert name in c.secrets.identity.list_entities_by_name(method="GET")["data"]["keys"]
    r = srv.request("GET", "identity/entity/name?list=true", token=srv.root_token)
    assert r.status_code == 200 and name in r.json()["data"]["keys"], r.text
    r = srv.request("LIST", "identity/entity/id", token=srv.root_token)
    assert r.json()["data"]["key_info"][eid]["name"] == name
    # lookup: hit, miss (204), bad combinations (400)
    r = srv.request("POST", "identity/lookup/entity", token=srv.root_token, json={"name": name})
    assert r.status_code == 200 and r.json()["data"]["id"] == eid
    r = srv.request("POST", "identity/lookup/entity", token=srv.root_token,
                    json={"name": "nobody-" + H.uid()})
    assert r.status_code == 204, r.text
    r = srv.request("POST", "identity/lookup/entity", token=srv.root_token, json={})
    assert r.status_code == 400 and errors(r) == ["query parameter not supplied"]
    # root can never be attached (HCSEC-2024-21)
    r = srv.request("POST", "identity/entity/id/" + eid, token=srv.root_token,
                    json={"policies": ["root"]})
    assert r.status_code == 400 and errors(r) == ["policies cannot contain root"]
    r = srv.request("POST", "identity/group", token=srv.root_token,
                    json={"name": "g-" + H.uid()[:6], "policies": "x,root"})
    assert r.status_code == 400 and errors(r) == ["policies cannot contain root"]
    # delete, then read is 404
    c.secrets.identity.delete_entity(entity_id=eid)
    r = srv.request("GET", "identity/entity/id/" + eid, token=srv.root_token)
    assert r.status_code == 404


def test_identity_mount_is_required(srv):
    mounts = root(srv).sys.list_mounted_secrets_engines()["data"]
    assert mounts["identity/"]["type"] == "identity"
    r = srv.request("DELETE", "sys/mounts/identity", token=srv.root_token)
    assert r.status_code == 400, r.text
    r = srv.request("POST", "sys/mounts/identity/x", token=srv.root_token, json={"type": "kv"})
    assert r.status_code == 400, r.text
    # the ACL guards it like any path: a default token may not write entities
    a, alice = login(srv, "alice")
    r = srv.request("POST", "identity/entity", token=a["client_token"], json={"name": "z"})
    assert r.status_code == 403


def test_batch_delete(srv):
    c = root(srv)
    ids = [c.secrets.identity.create_or_update_entity(name="bd-%d-%s" % (i, H.uid()[:6]))
           ["data"]["id"] for i in range(3)]
    r = srv.request("POST", "identity/entity/batch-delete", token=srv.root_token,
                    json={"entity_ids": ids[:2]})
    assert r.status_code == 204, r.text
    keys = c.secrets.identity.list_entities()["data"]["keys"]
    assert ids[0] not in keys and ids[1] not in keys and ids[2] in keys
    r = srv.request("POST", "identity/entity/batch-delete", token=srv.root_token,
                    json={"entity_ids": []})
    assert r.status_code == 400


def test_entity_aliases(srv):
    c = root(srv)
    acc = srv.userpass_accessor
    eid = c.secrets.identity.create_or_update_entity(name="al-" + H.uid()[:8])["data"]["id"]
    r = c.secrets.identity.create_or_update_entity_alias(
        name="carol-" + H.uid()[:6], canonical_id=eid, mount_accessor=acc)
    aid = r["data"]["id"]
    assert r["data"]["canonical_id"] == eid
    a = c.secrets.identity.read_entity_alias(alias_id=aid)["data"]
    assert a["mount_accessor"] == acc and a["mount_type"] == "userpass"
    assert a["mount_path"] == "auth/userpass/"
    assert aid in c.secrets.identity.list_entity_aliases()["data"]["keys"]
    # an invalid mount accessor is a 400
    r = srv.request("POST", "identity/entity-alias", token=srv.root_token,
                    json={"name": "x", "mount_accessor": "auth_bogus_00000000"})
    assert r.status_code == 400
    assert errors(r) == ['invalid mount accessor "auth_bogus_00000000"']
    # one alias per entity and mount
    r = srv.request("POST", "identity/entity-alias", token=srv.root_token,
                    json={"name": "other", "mount_accessor": acc, "canonical_id": eid})
    assert r.status_code == 400
    # custom metadata and lookup by alias
    c.secrets.identity.update_entity_alias(alias_id=aid, name=a["name"], canonical_id=eid,
                                           mount_accessor=acc)
    r = srv.request("POST", "identity/entity-alias/id/" + aid, token=srv.root_token,
                    json={"custom_metadata": {"cc": "9"}})
    assert r.status_code in (200, 204), r.text
    assert c.secrets.identity.read_entity_alias(alias_id=aid)["data"]["custom_metadata"] == \
        {"cc": "9"}
    r = srv.request("POST", "identity/lookup/entity", token=srv.root_token,
                    json={"alias_name": a["name"], "alias_mount_accessor": acc})
    assert r.json()["data"]["id"] == eid
    c.secrets.identity.delete_entity_alias(alias_id=aid)
    r = srv.request("POST", "identity/lookup/entity", token=srv.root_token,
                    json={"alias_id": aid})
    assert r.status_code == 204


def test_groups_nested_cycles_external(srv):
    c = root(srv)
    u = H.uid()[:6]
    eid = c.secrets.identity.create_or_update_entity(name="gm-" + u)["data"]["id"]
    g1 = c.secrets.identity.create_or_update_group(name="in-" + u,
                                                   member_entity_ids=[eid])["data"]["id"]
    g2 = c.secrets.identity.create_or_update_group(name="out-" + u, policies=["a"],
                                                   member_group_ids=[g1])["data"]["id"]
    g = c.secrets.identity.read_group(group_id=g2)["data"]
    assert g["member_group_ids"] == [g1] and g["type"] == "internal"
    assert c.secrets.identity.read_group(group_id=g1)["data"]["parent_group_ids"] == [g2]
    e = c.secrets.identity.read_entity(entity_id=eid)["data"]
    assert e["direct_group_ids"] == [g1] and e["inherited_group_ids"] == [g2]
    assert c.secrets.identity.read_group_by_name(name="out-" + u)["data"]["id"] == g2
    assert g1 in c.secrets.identity.list_groups()["data"]["keys"]
    assert "in-" + u in c.secrets.identity.list_groups_by_name()["data"]["keys"]
    # cycles are refused
    r = srv.request("POST", "identity/group/id/" + g1, token=srv.root_token,
                    json={"member_group_ids": [g2]})
    assert r.status_code == 400 and "cyclic relationship detected" in errors(r)[0], r.text
    # lookup/group, miss is 204
    r = srv.request("POST", "identity/lookup/group", token=srv.root_token, json={"id": g1})
    assert r.json()["data"]["name"] == "in-" + u
    r = srv.request("POST", "identity/lookup/group", token=srv.root_token, json={"name": "zz" + u})
    assert r.status_code == 204
    # external groups: members not editable, a group alias attaches
    ext = c.secrets.identity.create_or_update_group(name="ext-" + u,
                                                    group_type="external")["data"]["id"]
    r = srv.request("POST", "identity/group/id/" + ext, token=srv.root_token,
                    json={"member_entity_ids": [eid]})
    assert r.status_code == 400
    assert errors(r) == ["member entities can't be set manually for external groups"]
    r = c.secrets.identity.create_or_update_group_alias(
        name="ldap-" + u, mount_accessor=srv.userpass_accessor, canonical_id=ext)
    gaid = r["data"]["id"]
    ga = c.secrets.identity.read_group_alias(alias_id=gaid)["data"]
    assert ga["canonical_id"] == ext and ga["mount_type"] == "userpass"
    assert gaid in c.secrets.identity.list_group_aliases()["data"]["keys"]
    assert c.secrets.identity.read_group(group_id=ext)["data"]["alias"]["id"] == gaid
    r = srv.request("POST", "identity/group-alias", token=srv.root_token,
                    json={"name": "x", "mount_accessor": srv.userpass_accessor,
                          "canonical_id": g1})
    assert r.status_code == 400 and errors(r) == ["alias can't be set on an internal group"]
    r = srv.request("POST", "identity/lookup/group", token=srv.root_token,
                    json={"alias_name": "ldap-" + u,
                          "alias_mount_accessor": srv.userpass_accessor})
    assert r.json()["data"]["id"] == ext
    c.secrets.identity.delete_group_alias(gaid)  # hvac names the argument entity_id
    c.secrets.identity.delete_group(group_id=g2)
    assert c.secrets.identity.read_entity(entity_id=eid)["data"]["inherited_group_ids"] == []


def test_merge(srv):
    c = root(srv)
    u = H.uid()[:6]
    acc = srv.userpass_accessor
    to = c.secrets.identity.create_or_update_entity(name="to-" + u)["data"]["id"]
    fr = c.secrets.identity.create_or_update_entity(name="fr-" + u)["data"]["id"]
    a_to = c.secrets.identity.create_or_update_entity_alias(
        name="m1-" + u, canonical_id=to, mount_accessor=acc)["data"]["id"]
    a_fr = c.secrets.identity.create_or_update_entity_alias(
        name="m2-" + u, canonical_id=fr, mount_accessor=acc)["data"]["id"]
    r = srv.request("POST", "identity/entity/merge", token=srv.root_token,
                    json={"to_entity_id": to, "from_entity_ids": [fr]})
    assert r.status_code == 400, r.text
    assert "same mount accessor" in errors(r)[0]
    # hvac's merge_entities has no conflicting_alias_ids_to_keep: the raw API
    r = srv.request("POST", "identity/entity/merge", token=srv.root_token,
                    json={"to_entity_id": to, "from_entity_ids": [fr],
                          "conflicting_alias_ids_to_keep": [a_to]})
    assert r.status_code == 204, r.text
    e = c.secrets.identity.read_entity(entity_id=to)["data"]
    assert [a["id"] for a in e["aliases"]] == [a_to]
    assert e["merged_entity_ids"] == [fr]
    assert srv.request("GET", "identity/entity/id/" + fr, token=srv.root_token).status_code == 404
    r = srv.request("POST", "identity/lookup/entity", token=srv.root_token,
                    json={"alias_id": a_fr})
    assert r.status_code == 204


# ---- logins ---------------------------------------------------------------------------
def test_userpass_login_creates_one_entity(srv):
    a1, c1 = login(srv, "alice")
    assert a1["entity_id"]
    a2, _ = login(srv, "alice")
    assert a2["entity_id"] == a1["entity_id"]
    look = c1.auth.token.lookup_self()["data"]
    assert look["entity_id"] == a1["entity_id"]
    e = root(srv).secrets.identity.read_entity(entity_id=a1["entity_id"])["data"]
    assert e["name"].startswith("entity_")
    assert [(a["name"], a["mount_accessor"]) for a in e["aliases"]] == \
        [("alice", srv.userpass_accessor)]
    bob, _ = login(srv, "bob")
    assert bob["entity_id"] != a1["entity_id"]


def test_approle_login_alias_metadata(srv):
    c = root(srv)
    c.auth.approle.create_or_update_approle("r1", token_policies=["default"])
    rid = c.auth.approle.read_role_id("r1")["data"]["role_id"]
    sid = c.auth.approle.generate_secret_id("r1", metadata={"env": "ci"})["data"]["secret_id"]
    a = srv.client(token="").auth.approle.login(role_id=rid, secret_id=sid)["auth"]
    e = c.secrets.identity.read_entity(entity_id=a["entity_id"])["data"]
    (al,) = e["aliases"]
    assert al["name"] == rid and al["mount_type"] == "approle"
    assert al["metadata"] == {"env": "ci", "role_name": "r1"}


def test_token_role_entity_alias(srv):
    c = root(srv)
    c.auth.token.create_or_update_role("er", allowed_entity_aliases=["svc-*"])
    t = c.auth.token.create(role_name="er", entity_alias="svc-one")["auth"]
    assert t["entity_id"]
    t2 = c.auth.token.create(role_name="er", entity_alias="svc-one")["auth"]
    assert t2["entity_id"] == t["entity_id"]
    r = srv.request("POST", "auth/token/create/er", token=srv.root_token,
                    json={"entity_alias": "other"})
    assert r.status_code == 400 and errors(r) == ["invalid 'entity_alias' value"]
    r = srv.request("POST", "auth/token/create", token=srv.root_token,
                    json={"entity_alias": "svc-one"})
    assert r.status_code == 400
    look = c.auth.token.lookup(t["client_token"])["data"]
    assert look["entity_id"] == t["entity_id"]


# ---- policies from identity -----------------------------------------------------------
def test_templated_policy_alice_not_bob(srv):
    c = root(srv)
    a, alice = login(srv, "alice")
    eid = a["entity_id"]
    c.secrets.identity.update_entity(entity_id=eid, name="alice")
    assert can_read(alice, "alice/note")
    assert not can_read(alice, "bob/note")
    alice.secrets.kv.v2.create_or_update_secret(path="alice/new", secret={"a": 1})
    with pytest.raises(hvac.exceptions.Forbidden):
        alice.secrets.kv.v2.create_or_update_secret(path="bob/new", secret={"a": 1})
    # the alias template
    c.secrets.kv.v2.create_or_update_secret(path="alias/alice", secret={"v": 1})
    assert can_read(alice, "alias/alice")
    # capabilities agree with the ACL
    r = srv.request("POST", "sys/capabilities-self", token=a["client_token"],
                    json={"paths": ["secret/data/alice/x", "secret/data/bob/x"]})
    caps = r.json()["data"]
    assert caps["secret/data/alice/x"] == ["create", "read", "update"]
    assert caps["secret/data/bob/x"] == ["deny"]
    r = srv.request("POST", "sys/capabilities", token=srv.root_token,
                    json={"token": a["client_token"], "paths": ["secret/data/alice/x"]})
    assert r.json()["data"]["capabilities"] == ["create", "read", "update"]


def test_group_grants_on_next_request(srv):
    c = root(srv)
    u = H.uid()[:6]
    a, alice = login(srv, "alice")
    eid = a["entity_id"]
    assert not can_read(alice, "shared/x")
    assert not can_read(alice, "team/t42/x")
    # two levels of nesting: alice in inner, inner in team (which carries the policy)
    inner = c.secrets.identity.create_or_update_group(name="inner-" + u,
                                                      member_entity_ids=[eid])["data"]["id"]
    team = c.secrets.identity.create_or_update_group(
        name="team", policies=["shared"], metadata={"code": "t42"},
        member_group_ids=[inner])["data"]["id"]
    # the same token, no new login
    assert can_read(alice, "shared/x")
    assert can_read(alice, "team/t42/x")  # groups template through nesting
    look = alice.auth.token.lookup_self()["data"]
    assert look["identity_policies"] == ["shared"]
    assert "shared" not in look["policies"]
    a2, _ = login(srv, "alice")
    assert a2["identity_policies"] == ["shared"] and "shared" in a2["policies"]
    assert "shared" not in a2["token_policies"]
    # removing her takes it away at once
    c.secrets.identity.update_group(group_id=inner, name="inner-" + u, member_entity_ids=[])
    assert not can_read(alice, "shared/x")
    c.secrets.identity.delete_group(group_id=team)
    c.secrets.identity.delete_group(group_id=inner)


def test_disabled_entity_tokens_stop(srv):
    c = root(srv)
    a, bob = login(srv, "bob")
    c.secrets.identity.update_entity(entity_id=a["entity_id"], name="bob")
    assert can_read(bob, "bob/note")
    c.secrets.identity.update_entity(entity_id=a["entity_id"], disabled=True)
    r = srv.request("GET", "auth/token/lookup-self", token=a["client_token"])
    assert r.status_code == 403
    r = srv.request("GET", "secret/data/bob/note", token=a["client_token"])
    assert r.status_code == 403
    # and a login is refused while disabled
    r = srv.request("POST", "auth/userpass/login/bob", json={"password": "pw-bob"})
    assert r.status_code == 403
    c.secrets.identity.update_entity(entity_id=a["entity_id"], disabled=False)
    assert can_read(bob, "bob/note")


def test_bad_template_is_refused(srv):
    r = srv.request("PUT", "sys/policies/acl/badtmpl", token=srv.root_token,
                    json={"policy": 'path "a/{{identity.entity.id}}}}" {capabilities=["read"]}'})
    assert r.status_code == 400
    assert errors(r) == ["failed to parse policy: failed to validate policy templating: "
                         "unbalanced templating characters"]


# ---- cluster ---------------------------------------------------------------------------
@pytest.mark.timeout_s(400)
def test_standby_logins_make_one_entity(cluster_factory):
    cl = cluster_factory(n=3)
    leader = cl.leader()
    c = leader.client(token=cl.root_token)
    c.sys.enable_auth_method("userpass", path="userpass")
    c.write("auth/userpass/users/sam", password="pw-sam")
    standbys = cl.standbys()
    assert len(standbys) == 2

    def one(i):
        node = standbys[i % 2]
        # password hashing is slow under sanitizers: a generous bound, not a timing test
        r = node.request("POST", "auth/userpass/login/sam", json={"password": "pw-sam"},
                         timeout=120)
        assert r.status_code == 200, r.text
        return r.json()["auth"]["entity_id"]

    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        ids = set(ex.map(one, range(12)))
    assert len(ids) == 1, ids
    keys = c.secrets.identity.list_entities()["data"]["keys"]
    assert keys == list(ids), keys
    # every node's store agrees (a read on a standby is forwarded, the data replicated)
    for s in cl.nodes:
        r = s.request("GET", "identity/entity/id/" + keys[0], token=cl.root_token)
        assert r.status_code == 200 and r.json()["data"]["aliases"][0]["name"] == "sam"
