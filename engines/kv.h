/*
 * The KV secrets engine (mount type "kv"). Version 1: each path holds one JSON object,
 * replaced whole on write (https://developer.hashicorp.com/vault/api-docs/secret/kv/kv-v1).
 * Stored barrier-encrypted under the
 * mount's prefix, one storage key per secret path, so LIST is a prefix scan.
 * A mount with options.version "2" is served by cs_kv2_backend (engines/kv2.h) through
 * the variant hook.
 */
#ifndef CS_ENGINES_KV_H
#define CS_ENGINES_KV_H

#include "server/backend.h"

extern const struct cs_backend cs_kv_backend;

#endif
