/*
 * The built-in modules of the custos binary, in the order they register: backends, sys/
 * paths and core hooks. Top layer (it names every module below it); the server's entry
 * point (cmd/main.c), `-list-routes` and the HTTP fuzz target all use this one table,
 * so the route x token matrix test (tests/e2e/test_route_matrix.py) and the fuzzer see
 * exactly the routes a server serves. Add a new module here, one line with a comment.
 */
#ifndef CS_CMD_MODULES_H
#define CS_CMD_MODULES_H

struct cs_core;

/* Everything that needs no open core: call before cs_core_init. */
void cs_modules_register(struct cs_core *core);
/* What needs core->data_dir, the open store or core->cfg (cs_core_init sets them); a
 * zeroed core (route listing only) is fine: rows are registered, nothing is opened. */
void cs_modules_register_late(struct cs_core *core);

#endif
