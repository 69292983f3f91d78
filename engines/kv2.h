/*
 * The KV secrets engine, version 2
 * (https://developer.hashicorp.com/vault/api-docs/secret/kv/kv-v2):
 * versioned secrets with
 * check-and-set, soft delete, undelete, destroy, per-key metadata and subkeys.
 *
 * A "kv" mount whose options.version is "2" (and every "kv-v2" mount) is served by
 * cs_kv2_backend through the variant hook of cs_kv_backend; the mount type stays "kv".
 *
 * Storage layout under the mount's view (every value barrier-encrypted by the txn):
 *
 *   config                     JSON {"max_versions":N, "cas_required":B,
 *                              "delete_version_after":S}  (S seconds; 0 unset, -1
 *                              disabled, as Vault's "disabled" sentinel)
 *   metadata/<path>            JSON key metadata (cs_kv2_meta_encode): settings, the
 *                              current/oldest version and a map of live versions
 *   versions/<sha256hex(path)>/<N>
 *                              the data object of version N, exactly as written
 *
 * The metadata key keeps the secret's path in clear (keys are plaintext in custos, so
 * LIST on metadata/ is a prefix scan); version keys use a hash of the path so that a
 * path of any length or shape gives a fixed-size key and can never collide with
 * another path's versions. Times are stored as decimal strings of nanoseconds since the
 * epoch (a JSON number would lose precision above 2^53).
 *
 * Everything is synchronous and runs on the loop thread, inside the request's txn: two
 * writers racing with the same cas value are serialised by the loop, and the second one
 * sees the first one's metadata in the pending overlay, so exactly one wins.
 *
 * The cs_kv2_* helpers below are pure (no storage, no clock unless given) and exist so
 * that the unit tests can reach them.
 */
#ifndef CS_ENGINES_KV2_H
#define CS_ENGINES_KV2_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "server/backend.h"

extern const struct cs_backend cs_kv2_backend;

/* Vault's default number of versions kept per key when neither the key nor the mount
 * says otherwise. */
#define CS_KV2_DEFAULT_MAX_VERSIONS 10
/* delete_version_after value meaning "disabled" in the mount config (Vault: -1s). */
#define CS_KV2_DVA_DISABLED (-1)

struct cs_kv2_version {
	uint64_t num;
	int64_t created_ns;
	int64_t deletion_ns; /* 0: not deleted / no scheduled deletion */
	bool destroyed;
};

/* Key metadata. Owns `custom` (a cJSON object of strings, or NULL) and `v`. */
struct cs_kv2_meta {
	uint64_t current_version;
	uint64_t oldest_version;
	int64_t created_ns;
	int64_t updated_ns;
	uint32_t max_versions;
	bool cas_required;
	int64_t delete_version_after; /* seconds; 0 = not set */
	cJSON *custom;
	struct cs_kv2_version *v; /* sorted by num, ascending */
	size_t n, cap;
	/* The data of version inline_num (0: none), JSON text of inline_len bytes, kept in
	 * the metadata record itself (compact records): a secret with one live version is
	 * one record. Malloc'd, wiped and freed by cs_kv2_meta_free. */
	uint64_t inline_num;
	char *inline_data;
	size_t inline_len;
	bool legacy; /* decoded from the JSON record of releases before the compact one */
};

/* Mount-wide configuration (the "config" key). */
struct cs_kv2_config {
	uint32_t max_versions;
	bool cas_required;
	int64_t delete_version_after; /* seconds; 0 unset, CS_KV2_DVA_DISABLED disabled */
};

void cs_kv2_meta_init(struct cs_kv2_meta *m);
void cs_kv2_meta_free(struct cs_kv2_meta *m);
/* New cJSON object (caller owns) holding m. */
cJSON *cs_kv2_meta_encode(const struct cs_kv2_meta *m);
/* Fill m (initialised by this call) from an encoded object. 0 or CS_EIO (malformed). */
int cs_kv2_meta_decode(const cJSON *j, struct cs_kv2_meta *m);
/*
 * The compact metadata record (what kv2.c stores): byte 0 is CS_KV2_REC_V1, then LEB128
 * varints (signed ones zigzagged): current, oldest, created, updated, max_versions, flags
 * (bit 0 cas_required), delete_version_after, custom_metadata (length + JSON text, 0:
 * none), the version count and per version (num, created, deletion, destroyed), then
 * inline_num and the inline data (length + JSON text). The JSON record of older releases
 * begins with '{' and is still read (m->legacy set).
 */
#define CS_KV2_REC_V1 0x01
void cs_kv2_meta_pack(const struct cs_kv2_meta *m, struct cs_buf *out);
/* 0, or CS_EIO for a malformed record (m is then empty). m is initialised by the call. */
int cs_kv2_meta_unpack(const void *buf, size_t len, struct cs_kv2_meta *m);

/* The version entry with number num, or NULL. The pointer is valid until m changes. */
struct cs_kv2_version *cs_kv2_meta_find(struct cs_kv2_meta *m, uint64_t num);

cJSON *cs_kv2_config_encode(const struct cs_kv2_config *c);
/* Missing or malformed fields read as zero. */
void cs_kv2_config_decode(const cJSON *j, struct cs_kv2_config *c);

/* True if the version reads as deleted at `now_ns` (deletion time reached). */
bool cs_kv2_version_deleted(const struct cs_kv2_version *v, int64_t now_ns);

/*
 * Vault's check-and-set rule. `cas` is the options.cas value when has_cas. Returns 0,
 * or CS_EINVAL with *msg set to a static string (the exact Vault message).
 */
int cs_kv2_cas_check(bool has_cas, int64_t cas, uint64_t current_version, bool required,
		     const char **msg);

/*
 * The deletion time of a version created (or undeleted) at `created_ns`, from the mount
 * and key delete_version_after values (seconds): the smaller non-zero of the two. Returns
 * false when none applies (both 0, or the mount disabled it).
 */
bool cs_kv2_deletion_time(int64_t created_ns, int64_t mount_dva, int64_t meta_dva, int64_t *out_ns);

/*
 * Append version current+1 (created at created_ns, scheduled deletion deletion_ns or 0)
 * and slide the max_versions window (the larger of the key's and the mount's setting,
 * CS_KV2_DEFAULT_MAX_VERSIONS if both are 0). Versions that fall out of the window are
 * removed from m and their numbers appended to *pruned (malloc'd array, *n_pruned
 * entries; the caller frees it and deletes their data). Returns the new version entry.
 */
struct cs_kv2_version *cs_kv2_add_version(struct cs_kv2_meta *m, int64_t created_ns,
					  int64_t deletion_ns, uint32_t config_max,
					  uint64_t **pruned, size_t *n_pruned);

/*
 * JSON merge patch (RFC 7386): apply `patch` to `target` and return the result as a new
 * object (the caller owns it; neither input is modified).
 */
cJSON *cs_kv2_merge_patch(const cJSON *target, const cJSON *patch);

/*
 * Subkeys view of a secret (in place): every leaf value becomes null; objects below
 * `depth` levels (0 = unlimited) and empty objects also become null.
 */
void cs_kv2_subkeys(cJSON *data, int depth);

/*
 * Parse a "versions" parameter: a JSON array of integers (or numeric strings), a single
 * integer, or a comma-separated string. Returns 0 with a malloc'd array, or CS_EINVAL.
 */
int cs_kv2_parse_versions(const cJSON *v, uint64_t **out, size_t *n);

#endif
