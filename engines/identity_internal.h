/*
 * The identity store's records and indexes (engines/identity_store.c), shared by the
 * HTTP handlers (engines/identity.c) and the hooks (login, resolve). Everything runs on
 * the loop thread inside one transaction; every key below is under the identity mount's
 * storage prefix, values are barrier-encrypted JSON.
 *
 *   entity/<id>                               the entity, with its aliases inline
 *   group/<id>                                the group (parent_group_ids, its alias inline)
 *   index/entity-name/<esc name>              {"id"}
 *   index/group-name/<esc name>               {"id"}
 *   index/alias/<accessor>/<esc name>         {"id", "canonical_id"}   entity aliases
 *   index/alias-id/<alias id>                 {"canonical_id"}
 *   index/group-alias/<accessor>/<esc name>   {"id", "canonical_id"}   group aliases
 *   index/group-alias-id/<alias id>           {"canonical_id"}
 *   index/entity-groups/<entity id>/<group id> {}   direct membership
 *   index/group-children/<group id>/<child id> {}   member_group_ids of a group
 *
 * "<esc name>" is the name with '%' and '/' percent-encoded, so that a name is one key
 * segment and LIST gives the names back. Finding an entity's groups is one LIST of its
 * membership range plus one read per group, up the parent_group_ids chain: the work of a
 * request grows with the depth of its groups, never with the size of the store.
 */
#ifndef CS_ENGINES_IDENTITY_INTERNAL_H
#define CS_ENGINES_IDENTITY_INTERNAL_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "server/backend.h"

#define CS_IDENTITY_PATH "identity/"

/* The identity mount's storage, in one transaction. */
struct cs_id_recording;
struct cs_idv {
	struct cs_core *core;
	struct cs_txn *txn;
	const char *prefix;          /* the mount's storage prefix */
	struct cs_id_recording *rec; /* non-NULL: note every read (identity_cache.c) */
};

/* The view through `txn` of `core`'s identity mount; CS_ENOTFOUND when it is absent. */
int cs_idv_open(struct cs_idv *v, struct cs_core *core, struct cs_txn *txn);

int cs_idv_get(struct cs_idv *v, const char *key, cJSON **out); /* CS_ENOTFOUND */
int cs_idv_put(struct cs_idv *v, const char *key, const cJSON *o);
int cs_idv_del(struct cs_idv *v, const char *key); /* absent is fine */
int cs_idv_list(struct cs_idv *v, const char *prefix, struct cs_strv *out);

/* The resolved-identity cache (identity_cache.c). cs_id_resolve answers through it;
 * cs_id_resolve_recorded resolves afresh noting every read in `rec`; the record hooks
 * are called by cs_idv_get / cs_idv_list when v->rec is set. */
int cs_id_resolve_cached(struct cs_core *core, struct cs_txn *txn, const char *entity_id,
			 cJSON **out);
int cs_id_resolve_recorded(struct cs_core *core, struct cs_txn *txn, const char *entity_id,
			   struct cs_id_recording *rec, cJSON **out);
void cs_id_record_get(struct cs_idv *v, const char *full_key);
void cs_id_record_list(struct cs_idv *v, const char *full_prefix, const struct cs_strv *names);
void cs_id_cache_reset(struct cs_core *core);
/* An identity token (JWT, compact serialisation) split for oidc/introspect: the decoded
 * header and claims (JSON objects), the signing input and the signature. Untrusted input
 * (tests/fuzz/fuzz_oidc_jwt.c). */
#define CS_ID_JWT_MAX 16384
struct cs_id_jwt {
	cJSON *header, *claims;
	char *signing_input;
	uint8_t *sig;
	size_t sig_len;
};
/* 0, or CS_EINVAL when not three base64url parts with JSON objects (nothing to free). */
int cs_id_jwt_split(const char *token, size_t len, struct cs_id_jwt *out);
/* 0 when the signature verifies under `jwk` with the header's algorithm. */
int cs_id_jwt_verify(const struct cs_id_jwt *j, const cJSON *jwk);
void cs_id_jwt_free(struct cs_id_jwt *j);
void cs_id_cache_stats(struct cs_core *core, uint64_t *hits, uint64_t *misses);

/* Percent-encode '%' and '/' (malloc'd), and back (in place). */
char *cs_id_esc(const char *name);
void cs_id_unesc(char *s);

/* Records by id or name: 0 with *out (owned), CS_ENOTFOUND, or an error. */
int cs_id_entity_get(struct cs_idv *v, const char *id, cJSON **out);
int cs_id_entity_by_name(struct cs_idv *v, const char *name, cJSON **out);
int cs_id_group_get(struct cs_idv *v, const char *id, cJSON **out);
int cs_id_group_by_name(struct cs_idv *v, const char *name, cJSON **out);
/* The entity holding the alias (mount accessor, name) / with this alias id. */
int cs_id_entity_by_alias(struct cs_idv *v, const char *accessor, const char *name, cJSON **out);
int cs_id_entity_by_alias_id(struct cs_idv *v, const char *alias_id, cJSON **out);
int cs_id_group_by_alias_id(struct cs_idv *v, const char *alias_id, cJSON **out);
int cs_id_group_by_alias(struct cs_idv *v, const char *accessor, const char *name, cJSON **out);

/* Write `e` and bring every index in step with it; `old` is the stored version (NULL for
 * a new entity). */
int cs_id_entity_put(struct cs_idv *v, const cJSON *e, const cJSON *old);
/* Delete the entity, its aliases and indexes, and take it out of every group. */
int cs_id_entity_delete(struct cs_idv *v, const cJSON *e);
int cs_id_group_put(struct cs_idv *v, const cJSON *g, const cJSON *old);
/* Delete the group, its alias and indexes; its children lose it as a parent. */
int cs_id_group_delete(struct cs_idv *v, const cJSON *g);

/* The direct group ids of an entity (sorted) / the member group ids of a group. */
int cs_id_entity_group_ids(struct cs_idv *v, const char *entity_id, struct cs_strv *out);
int cs_id_group_children(struct cs_idv *v, const char *group_id, struct cs_strv *out);
/* Direct and inherited groups of an entity: *direct and *inherited are new arrays of
 * group records (inherited: reachable through parent_group_ids, not direct). */
int cs_id_entity_groups(struct cs_idv *v, const char *entity_id, cJSON **direct, cJSON **inherited);

/* Whether `ancestor` is `g` or reachable from group `g` through parent_group_ids. */
int cs_id_group_reaches(struct cs_idv *v, const char *g, const char *ancestor, bool *yes);

/* Helpers for records. */
const char *cs_id_str(const cJSON *o, const char *name); /* "" when absent */
bool cs_id_list_has(const cJSON *arr, const char *s);
void cs_id_set(cJSON *o, const char *name, cJSON *item); /* replace or add */
void cs_id_now(char out[64]);                            /* RFC 3339 with nanoseconds */

/* The hooks (identity_store.c). */
int cs_id_login(struct cs_request *req, const char *mount_accessor, const char *alias_name,
		const cJSON *alias_meta, char **entity_id);
int cs_id_resolve(struct cs_core *core, struct cs_txn *txn, const char *entity_id, cJSON **out);
/* A new entity record with a fresh id and name "entity_<8 hex>" not yet in use. */
int cs_id_entity_new(struct cs_idv *v, cJSON **out);
/* A new alias object for the entity `canonical_id`. */
cJSON *cs_id_alias_new(const char *canonical_id, const char *accessor, const char *name);

#endif
