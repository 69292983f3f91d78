#ifndef CS_STORAGE_KEYRING_STORE_H
#define CS_STORAGE_KEYRING_STORE_H

#include <stdint.h>

#include "storage/barrier.h"
#include "storage/txn.h"

/*
 * Keyring records through a transaction (storage/txn.h), loop thread.
 *
 * cs_keyring_store puts kr's sealed record into t; the active term's "encryptions" is
 * the live count, so a record written after a batch of encryptions covers them.
 * cs_keyring_load reads the newest record t can see (a pending rotation included) and
 * opens it with live's root key: read-modify-write of the keyring always starts there,
 * never from the in-memory copy, which changes only when raft applies the record.
 * cs_keyring_rotate_txn: load, record each term's final count, add a term, store.
 */
int cs_keyring_store(struct cs_txn *t, const struct cs_keyring *kr);
int cs_keyring_load(struct cs_txn *t, const struct cs_keyring *live, struct cs_keyring **out);
int cs_keyring_rotate_txn(struct cs_txn *t, const struct cs_keyring *live);
/*
 * The commit hook (cs_txn_commit calls it for a non-empty write-set when the storage
 * counts encryptions): if the active term's count passed the newest count record, add a
 * record of count + cs_keyring_batch() to the write-set. Raft applies that record with
 * (or before) every ciphertext it covers, so after a crash the persisted count is never
 * lower than the encryptions that reached storage; at most one batch is over-counted.
 * Returns 0 or the put's error (the commit then fails).
 */
int cs_keyring_account(struct cs_txn *t);
/* Raise kr's base to the newest count record in `st` when the cached one is stale, and
 * return cs_keyring_encryptions. For sys/key-status on a freshly active node. */
uint64_t cs_keyring_refresh(const struct cs_keyring *kr, struct cs_storage *st);

#endif
