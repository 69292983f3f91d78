/*
 * The core's side of auto-unseal (the seals themselves: server/seal_wrap.h).
 *
 * Start-up: cs_seal_auto_setup builds the seals the config names (at most one enabled,
 * plus a disabled one being migrated from); a stanza that cannot be built (no address,
 * a PKCS#11 module that does not load, a wrong PIN) stops start-up with a clear error,
 * as does storage sealed by a kind of seal the config does not name.
 *
 * Unseal: when storage was sealed by the enabled seal, cs_seal_auto_start asks the seal
 * to unwrap core/seal-wrapped-kek and opens the barrier with the KEK — no operator. If
 * the seal does not answer, the node stays sealed and tries again with backoff
 * (cs_seal_backoff_ms), logging one line each time the kind of failure changes and one
 * when it unseals. A joining node unwraps the envelope the leader sends with the join
 * challenge, with its own (same) seal.
 *
 * Init: sys/init with an auto seal asks the seal to wrap a fresh KEK (asynchronously,
 * cs_req_wait), then writes the cluster with recovery shares instead of unseal shares.
 *
 * Migration (Vault's procedure): the old stanza marked disabled = "true" next to the new
 * one (or alone, to go back to Shamir), then `custos operator unseal -migrate` with the
 * unseal keys (from Shamir) or the recovery keys (from an auto seal). Loop thread only.
 */
#ifndef CS_SERVER_SEAL_AUTO_H
#define CS_SERVER_SEAL_AUTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cs_core;
struct cs_request;

/* Register the functions below with the core (cs_core_set_autoseal), before
 * cs_core_init: the core reaches them only through its hooks. */
void cs_seal_auto_register(struct cs_core *core);
/* After the seal config was loaded (cs_core_init). 0 or an error with core->errmsg. */
int cs_seal_auto_setup(struct cs_core *core);
/* Begin unsealing (a timer on the loop) when storage is sealed by the enabled seal. */
void cs_seal_auto_start(struct cs_core *core);
/* Close the seals; cb once every handle closed (immediately when there is none). */
void cs_seal_auto_shutdown(struct cs_core *core, void (*cb)(struct cs_core *core));
/* The kind (enum cs_seal_kind) of the enabled seal: CS_SEAL_SHAMIR when none. */
int cs_seal_auto_kind(const struct cs_core *core);
/* sys/init's handler with an auto seal, after the node became active. */
int cs_seal_auto_init(struct cs_request *req);
/* sys/unseal with migrate=true: one share (`len` raw bytes) of the keys the stored seal
 * asks for (unseal keys from Shamir, else recovery keys). At the threshold the migration
 * runs: the old seal (or the shares) yields the KEK, the barrier opens, the new seal wraps
 * it, and once the node is active the new seal config is written through raft. 0 (the
 * caller answers with the seal status), or an error with the request's message. */
int cs_seal_auto_migrate(struct cs_request *req, const uint8_t *key, size_t len);
/* The join challenge named a `type` seal and carried its envelope: unwrap it with ours
 * and hand the KEK to the join (cs_ha_join_unsealed). */
void cs_seal_auto_join(void *core, const char *type, const char *wrapped);

#endif
