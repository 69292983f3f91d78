/*
 * The sys/ endpoints of ACL policies (sys/policy, sys/policies/acl, sys/capabilities*)
 * and the hooks the core calls for every non-root request: ACL, sudo, mount visibility.
 * Parsing, evaluation, storage and the cache are policy/'s (policy/store.h).
 */
#ifndef CS_SERVER_POLICY_SYS_H
#define CS_SERVER_POLICY_SYS_H

#include <cjson/cJSON.h>

#include "server/core.h"

/* Register the sys/ paths, the ACL hook and the cache reset hook. Call once at
 * start-up, before any request (cmd/main.c's module registrations). */
void cs_policy_module_init(struct cs_core *core);

/* The ACL hook (cs_acl_hook_fn); exposed for tests. */
int cs_policy_acl_hook(struct cs_request *req);

#endif
