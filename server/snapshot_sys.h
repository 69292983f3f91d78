/*
 * Raft snapshot endpoints (https://developer.hashicorp.com/vault/api-docs/system/storage/raft;
 * archive format in raft/snapshot.h):
 *
 *   GET  sys/storage/raft/snapshot        200 application/gzip, Content-Disposition:
 *                                         attachment; filename="raft.snap"; the archive
 *   POST sys/storage/raft/snapshot        restore, after checking SHA256SUMS.sealed with
 *                                         the current seal; 204 once applied
 *   POST sys/storage/raft/snapshot-force  restore without the seal check; 204
 *
 * All three need sudo (Vault's root paths) and the active node (a standby forwards them:
 * the core's forwarding, server/ha.h). The request bodies of the two POSTs are spooled by
 * the HTTP layer into an unlinked file in the spool directory (snapshot_spool_dir,
 * default <storage path>/snapshot-spool; cs_http_set_spool), so a restore never holds
 * the archive in memory. Before a byte of that body is read, the token is checked
 * (cs_core_admit: 403 without sudo on the path, 503 sealed) and only one upload may be
 * in progress (503 for a second one while an upload or restore runs); the spool keeps
 * snapshot_spool_reserve_percent of its volume free (507 otherwise).
 *
 * Save: pin an LMDB view on the loop thread → worker thread writes meta.json, state.bin
 * and SHA256SUMS into an unlinked temp file in the spool dir (507 when that volume is
 * under its reserve) → loop seals SHA256SUMS → worker adds SHA256SUMS.sealed and
 * re-reads the whole file, checking every hash ("verified at save") → loop streams the
 * file (chunked, back-pressured).
 * Restore: worker verifies the archive → loop checks the sealed sums (not with -force) →
 * RESTORE_BEGIN, then RESTORE_CHUNKs of ~1 MiB read by the worker (at most two in flight
 * and one waiting), then RESTORE_COMMIT, all through the storage committer, so every node
 * stages and swaps the same bytes (storage/txn.h) → 204 once the COMMIT applied here.
 *
 * Failure modes: archive not gzip/tar, member missing, hash mismatch → 400 with the
 * reason, nothing proposed; sealed sums from other keys (non-force) → 400 Vault's
 * message; a second restore while one runs → 503; temp file / disk errors → 500;
 * leadership lost or the node sealed mid-way → the error of the failed entry (5xx); the
 * staged chunks are then dropped by the next restore's BEGIN, and the data is unchanged
 * unless the COMMIT itself applied. The client going away mid-save aborts the save;
 * mid-restore the restore still runs to its end.
 *
 * Workers are our own threads (one per operation at a time), never libuv's pool, which
 * c-raft's disk I/O needs. Everything else runs on the loop thread.
 */
#ifndef CS_SERVER_SNAPSHOT_SYS_H
#define CS_SERVER_SNAPSHOT_SYS_H

#include <stdint.h>

struct cs_core;

/* Largest archive a restore accepts (the spool limit). */
#define CS_SNAPSHOT_MAX_UPLOAD ((uint64_t)32 << 30)

/*
 * Add the three sys/ paths and turn on body spooling for the two POSTs into
 * core->data_dir. Call once, after cs_core_init (which sets data_dir) and before
 * cs_core_listen. `core` must outlive every request.
 */
void cs_snapshot_register(struct cs_core *core);

#endif
