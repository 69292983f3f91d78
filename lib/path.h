/*
 * Request path canonicalisation: one spelling per path, decided once before routing and
 * the ACL, so that the path the ACL judges is byte for byte the path the handler acts on.
 */
#ifndef CS_LIB_PATH_H
#define CS_LIB_PATH_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Canonicalise a percent-decoded logical path (what follows "/v1/"):
 *   - runs of '/' collapse to one, and leading slashes go ("//sys//mounts" → "sys/mounts");
 *   - a "." or ".." segment, or ".." anywhere, is refused (CVE-2026-3605's class: the
 *     ACL and the handler would otherwise disagree on which path is meant);
 *   - a LIST path always ends in one '/' ("" becomes "/"); for every other operation
 *     "a/b/" and "a/b" are one path, spelled "a/b".
 * Returns 0 and a malloc'd canonical path in *out, or -1 with *why set to a static
 * message suited to a 400.
 */
int cs_path_canonical(const char *in, bool list, char **out, const char **why);

/* Whether the raw (still percent-encoded) request target's path part — up to '?' or '#'
 * — contains an encoded slash (%2F) or backslash (%5C), which would let one segment
 * pose as two after decoding. */
bool cs_path_has_encoded_sep(const char *raw_target);

#endif
