/*
 * Identity tokens: identity/oidc/... (engines/identity_oidc.c), rows of the identity
 * backend, and its periodic function (scheduled key rotation).
 */
#ifndef CS_ENGINES_IDENTITY_OIDC_H
#define CS_ENGINES_IDENTITY_OIDC_H

#include <stddef.h>

#include "server/backend.h"

/* The oidc/ rows, searched before the identity store's own (cs_backend.tables). */
extern const struct cs_path_table cs_id_oidc_table;

/* The identity backend's periodic function: rotates one due key per run. */
int cs_id_oidc_periodic(struct cs_request *req);

#endif
