/*
 * The identity secrets engine (mount type "identity", always mounted at identity/, like
 * cubbyhole/: a required mount that cannot be disabled), with Vault's API:
 *
 *   entity, entity/id/:id, entity/name/:name, LIST entity/id and entity/name,
 *   entity/batch-delete, entity/merge; entity-alias, entity-alias/id/:id, LIST;
 *   group, group/id/:id, group/name/:name, LIST; group-alias, group-alias/id/:id, LIST;
 *   lookup/entity and lookup/group (a miss answers 204).
 *
 * Logins find or create their entity through the login hook, and the ACL reads an
 * entity's policies, groups (nested) and template values through the resolve hook at
 * every request (server/backend.h, struct cs_identity_hooks). The "root" policy can never
 * be attached to an entity or a group. Storage layout: engines/identity_internal.h.
 *
 * Everything runs on the loop thread.
 */
#ifndef CS_ENGINES_IDENTITY_H
#define CS_ENGINES_IDENTITY_H

#include "server/backend.h"

extern const struct cs_backend cs_identity_backend;

/* Module registration (main): the backend, the required identity/ mount and the identity
 * hooks of `core`. */
void cs_identity_register(struct cs_core *core);

#endif
