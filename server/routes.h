/*
 * The binary's route table, for `custos server -list-routes` (JSON) and
 * `custos server -list-unauthenticated` (text): every row of every registered backend
 * and of every variant a mount can select (kv version 2), with its operations, flags and
 * a sample path that routes to that very row. No server runs and nothing is stored: the
 * tables are static, filled by the module registrations in cmd/main.c.
 *
 * The route x token matrix test (tests/e2e/test_route_matrix.py) is generated from this
 * listing, so a new row is checked by the ACL test the day it is added.
 */
#ifndef CS_SERVER_ROUTES_H
#define CS_SERVER_ROUTES_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "server/backend.h"

/*
 * {"backends": [{"type": "kv", "is_auth": false, "options": {"version": "2"} | null,
 *                "mount": "sys/" (fixed mounts only),
 *                "paths": [{"pattern": "data/{path*}", "ops": ["read", ...],
 *                           "flags": ["unauth", "sudo", ...], "exists_check": true,
 *                           "sample": "data/matrix/sample" | null, "synopsis": "..."}]}]}
 * "sample" is null when no sample path reaches the row (an earlier row shadows it).
 * Backends without paths (reset-only registrations) are left out. New object owned by
 * the caller.
 */
cJSON *cs_routes_json(void);

/* One line per unauthenticated row: "<mount>/<pattern>\t<ops>\t<type>", where <mount> is
 * "sys", "auth/:<type>" or ":<type>" for the mount point chosen by the operator. */
void cs_routes_print_unauthenticated(FILE *out);

/* Flag names of a row ("unauth", "sudo", ...; unknown bits as "0x.."). New array. */
cJSON *cs_routes_flags_json(unsigned flags);

/* A sample path relative to the mount that routes to row `row` of `b` (captures filled
 * with "matrix-sample", globs with "matrix/sample", or alternatives when those hit an
 * earlier row); NULL if none does. malloc'd. */
char *cs_routes_sample(const struct cs_backend *b, size_t row);

#endif
