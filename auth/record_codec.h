/*
 * Compact binary encoding of the token store's and the expiration manager's internal
 * records (issue 16: small records). Only storage sees it: every reader still works on
 * the same cJSON objects as before, and clients see JSON built from those.
 *
 * Which records: the value of
 *   sys/token/id/<hex>            a token entry      (context: <hex>, the storage key)
 *   sys/token/accessor/<hex>      an accessor index  (token_key + accessor)
 *   sys/expire/id/<lease id>      a lease record     (context: the lease id)
 * The kind is told by the key's prefix, so one function encodes and one decodes for all.
 *
 * Format: byte 0 is CS_RECORD_V1 (0x01, which JSON text can never start with), then the
 * object's members in their order, each a tag byte (field id << 3 | encoding) and a
 * payload. Field ids name the usual fields of that kind (id 0: the name follows as a
 * varint length and bytes); encodings are null, false, true, a zigzag varint (numbers
 * that are whole and within +-2^53), a string (varint length, bytes), 32 raw bytes (a
 * 64-character lowercase hex string: token keys), "derived" (no payload: the value
 * follows from the key and earlier members, e.g. a token's lease_id is path + "/" + its
 * key), and JSON text (arrays, objects, other numbers). Anything unusual still round-
 * trips through the JSON encoding, so decode(encode(o)) equals o member for member.
 * The accessor index has its own fixed layout: CS_RECORD_V1, 32 raw bytes of token key,
 * then the accessor's bytes (falls back to the generic form when they do not fit it).
 *
 * Readers accept both this and the JSON the previous release wrote (cs_record_decode
 * tells them apart by the first byte); writers always write this. Old stores are
 * converted in the background (auth/record_convert.c).
 */
#ifndef CS_AUTH_RECORD_CODEC_H
#define CS_AUTH_RECORD_CODEC_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"

#define CS_RECORD_V1 0x01

/* Whether `key` names a record of a kind this codec encodes. */
bool cs_record_compact_key(const char *key);
/* Whether a stored value is in the compact format (else: the old JSON). */
bool cs_record_is_compact(const void *val, size_t n);

/* Encode `o` (an object) as the record stored under `key`, appended to `out`. A key of
 * no known kind gets plain JSON text. 0, CS_EINVAL (not an object) or CS_ENOMEM. */
int cs_record_encode(const char *key, const cJSON *o, struct cs_buf *out);
/* Decode a stored value of `key`: compact or JSON. 0 and *out (the caller's), or CS_EIO
 * for bytes that are neither; never reads outside [val, val+n). */
int cs_record_decode(const char *key, const void *val, size_t n, cJSON **out);

#endif
