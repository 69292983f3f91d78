/*
 * Which mounts a set of policies may see: Vault's hasMountAccess, used by
 * sys/internal/ui/mounts to list only the mounts a token can do something on. Pure code
 * over compiled policies (policy/policy.h): no storage, no globals, thread-safe.
 */
#ifndef CS_POLICY_VISIBILITY_H
#define CS_POLICY_VISIBILITY_H

#include <stdbool.h>
#include <stddef.h>

#include "policy/policy.h"

/*
 * True if the policies (NULL entries skipped) grant some capability other than deny on
 * some path under `mount_path` (a mount path with its trailing '/', "secret/"):
 *   1. the capabilities of the mount path itself are not deny (a glob above it counts);
 *   2. or an exact or prefix ("*") rule whose text starts with the mount path has,
 *      merged over every policy, capabilities and no deny;
 *   3. or a segment ('+') rule's leading segments match the mount path's segments
 *      ('+' any one, a trailing "x*" a prefix of the last one), with merged capabilities
 *      and no deny.
 * Templated rules never count (no identity store: they never match).
 */
bool cs_acl_mount_visible(const struct cs_policy *const *pols, size_t n, const char *mount_path);

#endif
