/*
 * The transit secrets engine (mount type "transit"): encryption as a service, Vault's API.
 *
 * Named keys live in the mount's view as "policy/<name>", one JSON object each (barrier-
 * encrypted like every value): the key's options, its version counters and, per version,
 * the key material (base64) with its HMAC key and creation time. Every operation reads the
 * key in the request's transaction, so keys replicate through raft like any write and a
 * standby forwards as for KV. Key material decoded for an operation lives on the stack
 * and is wiped before the handler returns.
 *
 * Served (Vault's paths and formats; engines/transit_crypto.h has the crypto, and
 * engines/transit_internal.h tells how the engine is split):
 *   keys, keys/:name, keys/:name/config, keys/:name/rotate, keys/:name/trim,
 *   encrypt/:name, decrypt/:name, rewrap/:name, datakey/(plaintext|wrapped)/:name,
 *   export/:type/:name[/:version] (exportable keys),
 *   random[/:source][/:bytes], hash[/:alg], hmac/:name[/:alg], sign/:name[/:alg],
 *   verify/:name[/:alg] (HMACs and signatures).
 * Key types: aes128-gcm96, aes256-gcm96 (default), chacha20-poly1305, hmac, and the signing
 * types ed25519, ecdsa-p256/p384/p521, rsa-2048/3072/4096 (generated on the worker pool;
 * a version keeps its PKCS#8 private key and its public key).
 * sys/tools/hash[/:alg] and sys/tools/random[/:source][/:bytes] run the same handlers.
 * backup/:name, restore[/:name] (Vault's KeyData, transit_backup.c), cache-config (a
 * per-core LRU of decrypted policies in locked memory, transit_cache.c), and automatic
 * rotation of keys whose auto_rotate_period has passed, from the backend's periodic
 * function on the active node (transit_rotate.c).
 */
#ifndef CS_ENGINES_TRANSIT_H
#define CS_ENGINES_TRANSIT_H

#include "server/backend.h"

extern const struct cs_backend cs_transit_backend;

/* Module registration (main): the backend, and sys/tools/hash and sys/tools/random, which
 * share the transit handlers (as in Vault). */
void cs_transit_register(void);

#endif
