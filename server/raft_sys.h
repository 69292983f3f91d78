/*
 * Raft membership endpoints under sys/storage/raft/
 * (https://developer.hashicorp.com/vault/api-docs/system/storage/raft):
 *
 *   GET  configuration            data.config{index, servers[{node_id, address, leader,
 *                                 protocol_version "3", voter}]}
 *   POST remove-peer {server_id}  204 once the peer is out of the configuration
 *   POST promote {server_id}      204 once it is a voter (OpenBao)
 *   POST demote {server_id}       204 once it is a permanent non-voter (OpenBao)
 *   GET  autopilot/state          Vault's autopilot state (raft/autopilot.h)
 *   GET/POST autopilot/configuration
 *
 * server_id is a node_id (as recorded by join in core/raft/nodes/), or the raft id in
 * decimal. Unknown ids are 400. The active node itself cannot be removed or demoted
 * (400: step it down first with sys/step-down, then ask the new active node): removing
 * a leader in c-raft 0.15 keeps it leading until the change commits, and the HTTP
 * answer would come from a node that is about to stop serving.
 *
 * remove-peer, promote and demote hold their response until the change is done: the
 * handler starts the change (cs_autopilot_change) and parks the request (cs_req_wait)
 * until the change's callback wakes it (typically 200-400 ms for a removal, the catch-up
 * time for a promotion); no thread waits meanwhile.
 * None of these paths needs sudo (not in Vault's root paths); ACL policies govern them.
 */
#ifndef CS_SERVER_RAFT_SYS_H
#define CS_SERVER_RAFT_SYS_H

struct cs_core;

/* Register the sys/storage/raft/ membership and autopilot paths. Call once at start-up,
 * before any request (cmd/main.c). The core's on_active hook must call
 * cs_autopilot_set_active (raft/autopilot.h). */
void cs_raft_sys_register(struct cs_core *core);

#endif
