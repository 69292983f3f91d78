/*
 * The expiration manager: every token (and, later, every leased secret) has a lease that
 * says when it must be revoked. Leases live in storage under sys/expire/id/<lease_id>
 * (barrier-encrypted JSON: lease_id, path, issue_time, expire_time, last_renewal,
 * renewable, token_key for token leases); token leases have ids "<creation path>/<token
 * hmac>", e.g. "auth/token/create/5f0c...".
 *
 * It runs only on the active node. In memory it keeps a binary min-heap of (expiry,
 * lease id) and one uv_timer armed for the earliest entry. Heap entries are hints, never
 * the truth: when one falls due the manager re-reads the lease record in a transaction
 * and revokes only if the record still exists and is really due (a renewal writes the
 * record and pushes a new, later hint; a revocation deletes the record and leaves a stale
 * hint that is dropped when it fires). So no in-memory state has to be kept in step with
 * transactions that may still fail.
 *
 * Happy path: node becomes active (or is unsealed while active) → cs_expire_start reads
 * every record under sys/expire/id/ and fills the heap → timer fires → up to
 * CS_EXPIRE_BATCH due leases are revoked in one transaction → commit → if more are due,
 * a 0 ms timer continues after the loop has served other events, so thousands of leases
 * expiring together never block the loop.
 * Failure modes: the commit of a batch fails (leadership lost, shutdown): if the manager
 * is still running the popped hints are pushed back and retried after a second;
 * otherwise they are dropped (the next active node rebuilds from storage). Seal, standby
 * and shutdown stop the timers and free the heap; a stale commit callback from a
 * previous run is recognised by its generation number and ignored.
 *
 * Everything runs on the loop thread. There is one manager per core; its state hangs off
 * the core (cs_core_state), so two cores in one process never share a heap.
 */
#ifndef CS_AUTH_EXPIRE_H
#define CS_AUTH_EXPIRE_H

#include <stdbool.h>
#include <stdint.h>

#include "server/backend.h"

#define CS_EXPIRE_PREFIX "sys/expire/id/"
/* Leases revoked per transaction before yielding to the loop. */
#define CS_EXPIRE_BATCH 256
/* Most leases a single revoke-prefix/tidy request handles in its transaction. */
#define CS_EXPIRE_PREFIX_MAX 10000

/*
 * What the manager needs of the token store, to revoke token leases: registered by the
 * token store (auth/token.c) so that the manager does not include it.
 *   revoke_key   revoke the token under its storage key and its whole child tree, in txn
 *                (cs_token_revoke_key with orphan_children false); CS_ENOTFOUND if gone
 *   key_exists   whether a token entry exists under that key (errors count as "exists")
 *   revoke_prefix  sys/leases/revoke-prefix and revoke-force: lease `exact` (or NULL) and
 *                every lease under `prefix` (ends with '/'); marked at once, cleaned in
 *                the background; with sync the request waits for the end
 *                (auth/token_revoke.h)
 *   lease_revoked  whether a lease issued at `issue_time` lies under a revoked prefix
 *                that is still being cleaned
 */
struct cs_expire_tokens {
	int (*revoke_key)(struct cs_txn *txn, const char *token_key);
	bool (*key_exists)(struct cs_txn *txn, const char *token_key);
	int (*revoke_prefix)(struct cs_request *req, const char *prefix, const char *exact,
			     bool force, bool sync);
	bool (*lease_revoked)(struct cs_txn *txn, const char *lease_id, double issue_time);
};

/*
 * Module registration (the token store's, before cs_core_init): remember `core` (not
 * owned) and `tokens` (static), install the core's expire_active hook and add the
 * sys/leases/ rows to the sys/ backend.
 */
void cs_expire_register(struct cs_core *core, const struct cs_expire_tokens *tokens);

/* Load every lease from storage and arm the timer. Idempotent while running. Needs an
 * unsealed, active core. Returns 0 or a storage error. */
int cs_expire_start(struct cs_core *core);
/* Stop timers and drop the heap. Closes the uv handles when the core is shutting down.
 * Safe to call at any time, also before start. */
void cs_expire_stop(struct cs_core *core);
/*
 * Called by the token store's reset hook (seal, unseal, leadership change): stop, and if
 * the core is still active and unsealed, start again from storage on the next loop turn.
 */
void cs_expire_reset(struct cs_core *core);

/*
 * Write a lease record into `txn` and schedule it (a hint; see above). issue/expire are
 * unix seconds; token_key is the token's HMAC hex for token leases, or NULL.
 * Returns 0 or a txn error.
 */
int cs_expire_put(struct cs_txn *txn, const char *lease_id, const char *path, double issue_time,
		  double expire_time, bool renewable, const char *token_key);
/* Delete a lease record in `txn` (the hint stays and is dropped when it fires). */
int cs_expire_delete(struct cs_txn *txn, const char *lease_id);
/* Push a hint: revoke `lease_id` at `expire_ms` (unix milliseconds). No-op when stopped. */
void cs_expire_schedule(struct cs_core *core, const char *lease_id, int64_t expire_ms);

/*
 * Revoke one lease inside `txn`: a token lease revokes the token and its whole child
 * tree; any other lease just loses its record. CS_ENOTFOUND if there is no such lease.
 */
int cs_expire_revoke_lease(struct cs_txn *txn, const char *lease_id);

/*
 * One lease of a revoke-prefix job (auth/token_revoke.h) inside `txn`: nothing if it was
 * issued after `at` (unix s); else as cs_expire_revoke_lease, except that with `force` a
 * secret lease's record is dropped without asking its backend. CS_ENOTFOUND if gone.
 */
int cs_expire_revoke_in_prefix(struct cs_txn *txn, const char *lease_id, bool force, double at);

/* For tests and metrics: hints in the heap; whether the manager runs; leases revoked by
 * the timer since start. */
size_t cs_expire_pending(struct cs_core *core);
bool cs_expire_running(struct cs_core *core);
uint64_t cs_expire_revoked_count(struct cs_core *core);
/* For tests: the earliest hint (unix ms), or -1. */
int64_t cs_expire_next_ms(struct cs_core *core);

#endif
