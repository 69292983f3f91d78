/*
 * Key custody endpoints under sys/ (Vault's API shapes:
 * https://developer.hashicorp.com/vault/api-docs/system/rekey
 * and .../system/generate-root; OpenBao's
 * vault/rekey.go and vault/generate_root.go for the behaviour):
 *
 *   sys/rekey/init    GET status · PUT {secret_shares, secret_threshold, pgp_keys, backup,
 *                     require_verification} start · DELETE ?nonce= cancel
 *   sys/rekey/update  PUT {key, nonce}: one current unseal share; at the threshold the
 *                     new shares are returned (keys, keys_base64) and, without
 *                     verification, the new seal is written through raft
 *   sys/rekey/verify  GET status · PUT {key, nonce}: one NEW share; at the new threshold
 *                     the new seal is written · DELETE ?nonce= restart verification
 *   sys/rekey/backup  GET / DELETE the PGP-encrypted backup of the last rekey's shares
 *   sys/rekey-recovery-key/...  400: a Shamir seal has no recovery keys
 *
 *   sys/generate-root/attempt  GET status · PUT {otp | pgp_key | nothing: an OTP is made
 *                              and returned} start · DELETE ?nonce= cancel
 *   sys/generate-root/update   PUT {key, nonce}: one unseal share; at the threshold a new
 *                              root token is created and returned as encoded_token
 *                              (base64, unpadded, of token XOR otp; Vault's rule)
 *
 * Differences from Vault, on purpose (CVE-2026-5807): cancelling (or restarting a
 * verification) needs the attempt's nonce, and the unauthenticated generate-root status
 * never shows the nonce, so only the operator who started an attempt (and the key holders
 * they gave the nonce to) can touch it. Rekey endpoints need a token with sudo on the
 * path (OpenBao 2.5's default). generate-root stays unauthenticated and on.
 *
 * State of an attempt lives in memory on the active node only (as in Vault): a standby
 * forwards these requests, and a change of active node (or a seal) forgets the attempt.
 * The only durable effect, the new seal or the new root token, goes through the
 * request's transaction, so it reaches every node through raft.
 */
#ifndef CS_SERVER_REKEY_H
#define CS_SERVER_REKEY_H

struct cs_core;
struct cs_config;

/* Register the sys/rekey*, sys/rekey-recovery-key* rows. Once, at start-up, after the
 * config is loaded: they need a sudo token unless a listener of `cfg` (NULL: none) sets
 * disable_unauthed_rekey_endpoints = false, which makes them unauthenticated on this
 * node, as in Vault (for every listener: a forwarded request is authorised on the active
 * node, which does not know the listener it arrived on; set it alike on every node). In
 * that mode the status never shows the nonce. */
void cs_rekey_register(const struct cs_config *cfg);
/* Register the sys/generate-root* rows. Once, at start-up. */
void cs_generate_root_register(struct cs_core *core);

/* OTP length for generate-root: the length of the root tokens this server mints
 * ("hvs." + 24 base62 characters), as Vault sizes it. */
#define CS_ROOT_OTP_LEN 28

#endif
