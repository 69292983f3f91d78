/*
 * The system backend mounted at sys/: init, seal-status, unseal, seal, health, leader,
 * mounts (enable/disable/tune/list), internal/ui/mounts, auth (listing).
 * The sys/ mount object always exists (also while sealed) so that the unauthenticated
 * endpoints route before the mount tables are loaded.
 */
#ifndef CS_SERVER_SYS_H
#define CS_SERVER_SYS_H

#include "server/core.h"

extern const struct cs_backend cs_sys_backend;

/* cs_sys_set_paths: server/backend.h. */

/* The sys/ mount (created on first use). */
struct cs_mount *cs_sys_mount(struct cs_core *core);
void cs_sys_mount_free(void);

/* Add a mount (type registered, path free) to the in-memory table, persist tables into
 * req->txn. Used by sys/mounts and the -dev bootstrap. */
int cs_sys_mount_add(struct cs_core *core, struct cs_txn *txn, const char *path, const char *type,
		     const char *description, const cJSON *config, const cJSON *options,
		     bool is_auth, char *errmsg, size_t errlen);
/*
 * Required mounts (cs_sys_require_mount, server/backend.h). cs_sys_add_required_mounts adds those
 * missing from core->router: at init (txn given: the tables are persisted into it) and after the
 * tables were loaded at unseal (txn NULL: in memory only, for data dirs older than the
 * module; the uuid and accessor are derived from the cluster id and path so that every
 * node and every restart agrees on the storage prefix, and the row is persisted with the
 * next mount-table write).
 */
int cs_sys_add_required_mounts(struct cs_core *core, struct cs_txn *txn);
/* Whether `mount_path` ("cubbyhole/") is a required mount. */
bool cs_sys_mount_required(const char *mount_path);

/* A copy of a mount/device options object as a string map (numbers and bools
 * stringified, as Vault's API does), or NULL if a value is not a scalar. */
cJSON *cs_sys_string_options(const cJSON *in);
/* Persist the in-memory tables into txn. */
int cs_sys_save_tables(struct cs_core *core, struct cs_txn *txn);

#endif
