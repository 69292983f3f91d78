/*
 * The database secrets engine (`type=database`), Vault's API with the behaviour of its
 * PostgreSQL plugin: connection configs (config/:name, reset/, rotate-root/), dynamic
 * roles (roles/:name, creds/:name) and their statements, run through the asynchronous
 * libpq pool of engines/pg_pool.h. Every value reaches SQL escaped for its context
 * (engines/pg_sql.h); usernames follow username_template (engines/database_template.h);
 * passwords come from cs_req_generate_password.
 */
#ifndef CS_ENGINES_DATABASE_H
#define CS_ENGINES_DATABASE_H

#include "server/backend.h"

extern const struct cs_backend cs_database_backend;

/* Register the backend (cmd/modules.c). */
void cs_database_register(void);

#endif
