/*
 * High availability: the cluster side of the core (docs/architecture.md, "The cluster").
 *
 * - Cluster TLS keyring: a cluster CA (EC P-256) generated at sys/init, stored behind the
 *   barrier at core/raft/tls and replicated. An unsealed node mints its own node
 *   certificate (SAN node-<raft id> + its cluster IP) from it when raft starts, so the
 *   raft transport and request forwarding authenticate both ends. A joining node, whose
 *   barrier is still closed, runs with the certificate the active node minted for it.
 * - Raft runs only while the node is unsealed (the keyring is behind the barrier, as in
 *   Vault): started by sys/init (bootstrap), by unseal, or by a completed join; stopped
 *   by sys/seal, removal from the cluster and shutdown.
 * - Standbys forward every request that is not answered locally (CS_PATH_LOCAL) to the
 *   raft leader over the cluster port (ALPN custos-forward) and relay the answer.
 * - Join (Vault's protocol, hardened): sys/storage/raft/join (one pending at a time) or
 *   retry_join blocks, https only unless unsafe_allow_plaintext_join → the joiner sends
 *   server_id, cluster address and a fresh public key → challenge from the leader
 *   (a nonce plus that identity, encrypted with the seal) → operator unseals the joiner
 *   with the cluster's shares → the KEK opens the challenge, the joiner checks it names
 *   itself → answer (the nonce) → the leader checks it against the bound server_id and
 *   address, adds that node as a non-voter (autopilot promotes it) and returns the
 *   peers, the CA certificate and a node certificate minted for the bound key (never a
 *   private key) → raft starts, accepting only the listed peers until its configuration
 *   arrives, and the barrier opens once the keyring is there.
 * - sys/step-down drains in-flight writes, then transfers leadership; requests arriving
 *   meanwhile wait and are forwarded to the new leader.
 * - Removal: the active node commits core/raft/removed/<node_id> before removing a peer;
 *   the removed node sees the marker, stops raft, persists raft/removed and answers
 *   sys/health with 530 from then on.
 * - Lost quorum: <data>/raft/peers.json ([{"id","address","non_voter"}]) is applied with
 *   raft_recover when raft starts, then deleted.
 *
 * Everything runs on the loop thread (the join's HTTP too: lib/curlm.h). Files: ha.c
 * (lifecycle), ha_step.c, ha_join.c (the join's environment; the protocol and its state
 * machine are raft/join.h), ha_sys.c (sys/ endpoints, leader side of the join).
 */
#ifndef CS_SERVER_HA_H
#define CS_SERVER_HA_H

#include <stdbool.h>
#include <stdint.h>

#include "storage/txn.h"

struct cs_core;
struct cs_request;

/* Create the HA state; start retry_join when the node has no cluster yet. */
int cs_ha_init(struct cs_core *core);
/* sys/init: new cluster CA, raft bootstrap + start. 0 or CS_E* with core->errmsg. */
int cs_ha_bootstrap(struct cs_core *core);
/* Write the cluster CA into the init transaction (txn->kr is the new keyring). */
int cs_ha_store_tls(struct cs_core *core, struct cs_txn *txn);
/* The barrier just opened: load the CA and start raft if it is not running. */
int cs_ha_unsealed(struct cs_core *core);
/* Stop raft and the cluster port (seal, removal). cb may be NULL. */
void cs_ha_stop(struct cs_core *core, void (*cb)(struct cs_core *core));
/* Shutdown: stop the joiner, raft, the cluster port and the forwarder. */
void cs_ha_shutdown(struct cs_core *core, void (*cb)(struct cs_core *core));
/* storage's on_restore hook (a snapshot restore or install replaced the data). */
void cs_ha_on_restore(void *ctx);
/* Leadership hook (from cs_core_on_active). */
void cs_ha_on_active(struct cs_core *core, bool active);

/* A standby's request: forward it to the leader. true = taken (answered later);
 * false = no leader known or this request must not be forwarded (caller decides). */
bool cs_ha_forward(struct cs_request *req);
/* True while the active node drains writes for a step-down: requests must wait. */
bool cs_ha_stepping_down(const struct cs_core *core);
/* True when the leader is known and is another node. */
bool cs_ha_leader_known(struct cs_core *core);
/* Removed from the cluster (health 530). */
bool cs_ha_removed(const struct cs_core *core);
/* Unsealed while raft still closed from the last seal: raft starts again once closed. */
bool cs_ha_restart_pending(const struct cs_core *core);

/* sys/init on a node that was still looking for a leader (retry_join): stop joining.
 * false when the join is too far along (answered: raft already runs). */
bool cs_ha_join_cancel(struct cs_core *core);
/* Join (seal.c): a challenge is waiting for the unseal keys. */
bool cs_ha_join_pending(const struct cs_core *core);
/* The shares combined into `kek`: answer the challenge. 0 (join continues in the
 * background; the node unseals when caught up) or CS_EINVAL (wrong keys) with errmsg. */
int cs_ha_join_unsealed(struct cs_core *core, const uint8_t *kek, char *errmsg, size_t errlen);

/* sys/leader fields for this node (leader address etc.), into a cJSON object. */
struct cJSON;
void cs_ha_leader_json(struct cs_core *core, struct cJSON *j);

/* sys/ paths: storage/raft/join, bootstrap/challenge, bootstrap/answer, digest,
 * step-down, ha-status. */
void cs_ha_register(void);

#endif
