/*
 * Barrier key rotation (https://developer.hashicorp.com/vault/api-docs/system/rotate):
 *
 *   POST sys/rotate (and sys/rotate/keyring)   sudo; 204 once the new term applied
 *   GET  sys/key-status                        data{term, install_time, encryptions}
 *   GET  sys/rotate/config (rotate/keyring/config)   data{max_operations, enabled, interval}
 *   POST sys/rotate/config {max_operations, interval, enabled}   204; 400 out of range
 *
 * A rotation is a write of the keyring record (storage/barrier.h) through the request's
 * transaction, so raft orders it with every other write and carries it to every node.
 * When a node applies the record, the storage hook installs it into the live keyring in
 * place: new writes use the new term from then on, old terms keep decrypting. Standbys
 * forward these requests like any other.
 *
 * Automatic rotation: on the active node, a check every second rotates through a normal
 * transaction once the active term's count reaches max_operations or its age reaches
 * interval (unless disabled). Encryption counts are persisted by the storage's commit
 * hook (cs_keyring_account).
 */
#ifndef CS_SERVER_ROTATE_SYS_H
#define CS_SERVER_ROTATE_SYS_H

struct cs_core;

/* Register the sys/ paths, install the storage apply hook and turn on encryption
 * counting. Call once after cs_core_init (the storage is open), before the loop runs. */
void cs_rotate_register(struct cs_core *core);
/* Periodic check on the loop thread (server/ha.c's tick): automatic rotation. */
void cs_rotate_tick(struct cs_core *core);

#endif
