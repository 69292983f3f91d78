/*
 * Revocation of any size: a token tree, a token's children (revoke-orphan) or every lease
 * under a prefix is made unusable by one small write in the acknowledging transaction,
 * and its storage is cleaned afterwards in bounded batches on the active node.
 *
 * The mark. Revoking token T deletes T's own records (entry, accessor, lease, parent
 * link, cubbyhole; its secret leases fall due) at once and, when T has children, writes a
 * job record sys/revoke/tree/<H(T)> (revoke-orphan: sys/revoke/orphan/<H(T)>). A token is
 * usable only if every ancestor on its parent chain exists and is valid (cs_token_chain_ok),
 * so T's whole tree is dead the moment T's entry is gone; an ancestor that is missing
 * but has an orphan job counts as "no parent" (its children are becoming orphans, not
 * revoked). sys/leases/revoke-prefix writes sys/revoke/prefix/<prefix> with the time of
 * the revocation: a token whose lease (or an ancestor's) lies under such a prefix and was
 * issued no later than that time is unusable (checked per '/' segment of its lease id).
 * All of this is in storage, replicated by raft, so it holds on every node after the
 * ack, after a restart and after a leader change.
 *
 * The cleanup. Every job is resumable from storage alone: a tree job deletes tokens from
 * the leaves up (a token goes only once it has no children, so the parent index always
 * leads to whatever is left); an orphan job rewrites the children and drops their index
 * links; a prefix job walks the lease records after the cursor it stores in its record.
 * The ack transaction already does as much as CS_REVQ_INLINE_WRITES allows, so small
 * revocations are complete when answered, as before. The rest runs on the active node:
 * one transaction of at most CS_REVQ_BATCH_WRITES writes (and CS_REVQ_BATCH_READS page
 * reads), committed through raft, then the loop is free again (a 1 ms timer) before the
 * next batch. Failure modes: a batch that fails to commit (leadership lost, shutdown) is
 * simply retried from storage after a second, or by the next active node (the reset hook
 * restarts the worker); a sealed or standby node runs nothing.
 *
 * Loop thread only.
 */
#ifndef CS_AUTH_TOKEN_REVOKE_H
#define CS_AUTH_TOKEN_REVOKE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "server/backend.h"

#define CS_REVQ_PREFIX        "sys/revoke/"
#define CS_REVQ_TREE_PREFIX   "sys/revoke/tree/"
#define CS_REVQ_ORPHAN_PREFIX "sys/revoke/orphan/"
#define CS_REVQ_LEASE_PREFIX  "sys/revoke/prefix/"
/* Writes per background transaction (~150 bytes each: far below the raft entry limit).
 * Building one such batch took ~4.5 ms of loop time on a shared 2-core machine (the
 * worker logs each at debug level); fewer writes would mean more raft round trips. */
#define CS_REVQ_BATCH_WRITES 1000
/* Page reads (index pages, entries) per background transaction. */
#define CS_REVQ_BATCH_READS 4000
/* Writes the acknowledging transaction may spend on the job itself. */
#define CS_REVQ_INLINE_WRITES 256
/* Most ancestors a token may have: the chain walk on every request is bounded by it,
 * and a token that would be deeper is refused at creation. */
#define CS_TOKEN_CHAIN_MAX 128

/*
 * Revoke token `hex` (its entry `e`, not owned) in `txn`: delete its own records and, if
 * it has children, mark the tree (orphan false) or the orphaning of its children (orphan
 * true), doing at most CS_REVQ_INLINE_WRITES of that work at once. Kicks the worker.
 */
int cs_revq_token(struct cs_txn *txn, const char *hex, const cJSON *e, bool orphan);

/*
 * Whether the token with entry `e` is usable as far as its ancestors and revoked lease
 * prefixes go: 0 when it is, CS_ENOTFOUND when not, another code on storage trouble.
 * *depth (optional) gets the number of ancestors.
 */
int cs_token_chain_ok(struct cs_txn *txn, const cJSON *e, size_t *depth);

/*
 * Revoke every lease under `prefix` (which ends with '/'), as of now: write the job and
 * do up to CS_REVQ_INLINE_WRITES of it. force: secret lease records are dropped without
 * asking their backend. *done when nothing is left for the background.
 */
int cs_revq_lease_prefix(struct cs_txn *txn, const char *prefix, bool force, bool *done);
/* Whether lease `lease_id` issued at `issue_time` (unix s) lies under a pending
 * revoke-prefix job: such a lease is revoked already. */
bool cs_revq_lease_marked(struct cs_txn *txn, const char *lease_id, double issue_time);
/*
 * sys/leases/revoke-prefix and revoke-force (cs_expire_tokens.revoke_prefix): revoke lease
 * `exact` (if not NULL) and mark `prefix` in req->txn. Done at once when small; else with
 * sync (Vault's default) the mark is committed in a transaction of its own and `req`
 * waits (cs_req_wait) until the job is finished; without sync the answer is a 202 once
 * the mark is committed. Returns what the handler returns.
 */
int cs_revq_revoke_prefix(struct cs_request *req, const char *prefix, const char *exact, bool force,
			  bool sync);

/*
 * One batch of background work in `txn` (the worker's; tests call it directly): at most
 * `writes` writes. *more when jobs remain after it. Jobs finished by it are remembered
 * until the worker sees the commit (for sync waiters).
 */
int cs_revq_step(struct cs_txn *txn, size_t writes, bool *more);
/* Jobs pending in storage (for tests and metrics: a scan of sys/revoke/). */
size_t cs_revq_pending(struct cs_txn *txn);

/* The worker: restart from storage on the next loop turn if the node is active and
 * unsealed (reset hook), or run soon (a job was written). */
void cs_revq_reset(struct cs_core *core);
void cs_revq_kick(struct cs_core *core);
/* Batches the worker committed since start (tests, metrics). */
uint64_t cs_revq_batches(struct cs_core *core);

#endif
