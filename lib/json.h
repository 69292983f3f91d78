/*
 * JSON helpers on top of cJSON for bytes that cross a trust boundary.
 *
 * cJSON keeps every member of an object, duplicates included, and its lookups return the
 * first one; code that deletes or replaces "the" member then exposes the second. Go's
 * decoder (Vault's) keeps the last. Neither is safe when one layer checks a value and
 * another acts on it, so request bodies with a repeated key are refused outright.
 */
#ifndef CS_LIB_JSON_H
#define CS_LIB_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>

/*
 * Parse `len` bytes of JSON (no trailing-NUL requirement; trailing bytes after the value
 * are an error). On success returns the value (caller owns it) and 0. Otherwise returns
 * NULL and writes a message suited to an API error into err (never the input's values:
 * only a byte offset, or the repeated key's name truncated to fit).
 */
cJSON *cs_json_parse_strict(const char *data, size_t len, char *err, size_t errlen);

/*
 * The first key repeated within one object anywhere in `v` (objects nested in objects
 * and arrays included), or NULL. O(n log n) in the number of members of each object, so
 * a body with many keys cannot make the check quadratic.
 */
const char *cs_json_dup_key(const cJSON *v);

/* Wipe every string and key in the tree, then free it as cJSON_Delete does (v and any
 * siblings after it). For trees that may hold secrets (request bodies, responses with
 * tokens). NULL is fine. */
void cs_json_delete_wiped(cJSON *v);

#endif
