/*
 * Snapshot archives: the file GET sys/storage/raft/snapshot streams and POST
 * sys/storage/raft/snapshot[-force] restores (server/snapshot_sys.c drives both).
 * It is the layout of Vault's archive (archive.go of https://github.com/hashicorp/raft-snapshot,
 * plus Vault's SHA256SUMS.sealed), a gzip'd tar, so that the
 * vault CLI's `operator raft snapshot save` (which insists on a non-empty
 * SHA256SUMS.sealed member) and `restore` work unchanged. Members, in this order:
 *
 *   meta.json          raft SnapshotMeta-like, Go's field names:
 *                      {"Version":1,"ID":"<term>-<index>-<unix ms>","Index":N,"Term":T,
 *                       "Size":<state.bin bytes>,"ConfigurationIndex":0,
 *                       "Configuration":{"Servers":[]},
 *                       and ours: "CustosFormat":1,"Entries":<records>,
 *                       "Created":"<RFC 3339 UTC>"}
 *   state.bin          the store's "data" database (ciphertext exactly as stored, keys
 *                      plaintext), integers little endian:
 *                        magic "CSSB" | u32 format (1) | u64 count |
 *                        count × (u32 klen | key | u32 vlen | value)
 *                      keys 1..511 bytes, strictly ascending; nothing after the last
 *   SHA256SUMS         sha256sum(1) lines: "<64 hex>  meta.json\n<64 hex>  state.bin\n"
 *   SHA256SUMS.sealed  SHA256SUMS encrypted by the seal of the cluster that took it (the
 *                      caller seals and unseals; this module only carries the bytes)
 *
 * A reader accepts the members in any order, refuses anything else (unknown or duplicate
 * members, non-regular files, a stream that is not gzip), and checks both hashes.
 *
 * Threads: every function here is synchronous and touches only its arguments, so the
 * writer and readers run on worker threads (never libuv's pool: c-raft's disk I/O needs
 * it). An object is used by one thread at a time.
 *
 * Caveats:
 * - Values may be up to CS_SNAPSHOT_MAX_VALUE bytes; a restore chunk holds at least one
 *   record, so a chunk can exceed its target size by one value.
 * - The writer walks the view twice (sizes first: tar needs each member's size before
 *   its data), so it reads the store twice but never holds it in memory.
 */
#ifndef CS_RAFT_SNAPSHOT_H
#define CS_RAFT_SNAPSHOT_H

#include <cjson/cJSON.h>
#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "storage/store.h"
#include "storage/txn.h"

#define CS_SNAPSHOT_META      "meta.json"
#define CS_SNAPSHOT_STATE     "state.bin"
#define CS_SNAPSHOT_SUMS      "SHA256SUMS"
#define CS_SNAPSHOT_SEALED    "SHA256SUMS.sealed"
#define CS_SNAPSHOT_SEAL_AAD  "custos/raft/snapshot/SHA256SUMS"
#define CS_SNAPSHOT_MAX_VALUE ((uint32_t)256 << 20)
#define CS_SNAPSHOT_CHUNK     ((size_t)1 << 20) /* target size of one RESTORE_CHUNK */

/* ---------------------------------------------------------------- writing */

struct archive;

struct cs_snapshot_writer {
	struct archive *a; /* open between write_begin and write_end */
	int fd;            /* not owned */
	uint64_t index, term;
	uint64_t entries;    /* records in state.bin */
	uint64_t state_size; /* bytes of state.bin */
	char sums[256];      /* the SHA256SUMS text, to be sealed by the caller */
	size_t sums_len;
	char err[256];
};

/*
 * Write meta.json, state.bin (every record of s->data in `view`, from
 * cs_store_view_begin) and SHA256SUMS into `fd` (positioned where the archive starts;
 * the caller owns it) as a gzip'd tar, and leave the archive open so that the caller can
 * seal w->sums and add it with cs_snapshot_write_end. `index` and `term` go to meta.json.
 * The view is only read; the caller ends it. Stops early with CS_ESHUTDOWN once
 * cs_store_closing. 0, or CS_EIO/CS_ESHUTDOWN with w->err. Any thread.
 */
int cs_snapshot_write_begin(struct cs_snapshot_writer *w, int fd, struct cs_store *s, MDB_txn *view,
			    uint64_t index, uint64_t term);
/* Add SHA256SUMS.sealed (len > 0) and finish the archive. 0 or CS_EIO with w->err. */
int cs_snapshot_write_end(struct cs_snapshot_writer *w, const void *sealed, size_t len);
/* Release the archive if still open (after a failure). Safe to call twice. */
void cs_snapshot_writer_free(struct cs_snapshot_writer *w);

/* ---------------------------------------------------------------- reading */

/* What a successful verification found. Free with cs_snapshot_verified_free. */
struct cs_snapshot_verified {
	cJSON *meta;      /* meta.json, parsed */
	uint64_t entries; /* records in state.bin */
	uint64_t state_size;
	uint8_t state_sha[32];
	char *sums; /* SHA256SUMS as found (NUL-terminated), what the sealed copy must equal */
	size_t sums_len;
	uint8_t *sealed; /* SHA256SUMS.sealed as found */
	size_t sealed_len;
};

/* Called for every key of state.bin during verification (inspect counts prefixes). */
typedef void (*cs_snapshot_key_cb)(void *ctx, const char *key, size_t klen, size_t vlen);

/*
 * Read the whole archive in `fd` (from offset 0, with pread: the file position is not
 * used) and verify it: gzip'd tar, the four members, state.bin well-formed, both hashes
 * equal to SHA256SUMS, meta.json an object with Version 1 whose Size (when present)
 * matches. The seal is not checked here (the caller decrypts v->sealed and compares it
 * with v->sums). 0, or CS_EINVAL with a message for the client in err. Any thread.
 */
int cs_snapshot_verify(int fd, cs_snapshot_key_cb cb, void *ctx, struct cs_snapshot_verified *v,
		       char *err, size_t errlen);
void cs_snapshot_verified_free(struct cs_snapshot_verified *v);

/*
 * The check a non-force restore adds: v->sealed must open with the current seal (fn
 * decrypts with it, appending the plaintext to `out`; non-zero when it does not open)
 * and equal v->sums (constant-time). 0, or CS_EINVAL with Vault's message ("could not
 * verify hash file, possibly the snapshot is using a different set of unseal keys; use
 * the snapshot-force API to bypass this check"). Runs where fn may run (the seal: loop).
 */
#define CS_SNAPSHOT_SEAL_MISMATCH                                                                  \
	"could not verify hash file, possibly the snapshot is using a different set of unseal "    \
	"keys; use the snapshot-force API to bypass this check"
typedef int (*cs_snapshot_unseal_fn)(void *ctx, const void *ct, size_t n, struct cs_buf *out);
int cs_snapshot_check_sealed(const struct cs_snapshot_verified *v, cs_snapshot_unseal_fn fn,
			     void *ctx, char *err, size_t errlen);

/*
 * The records of a verified archive, as RESTORE_CHUNK entries (storage/txn.h). open
 * finds state.bin again; every chunk call appends one entry for restore `id` with
 * sequence `seq` (records up to about `max` bytes, at least one) to `entry` and sets
 * *n_records; when the records are exhausted it appends nothing and sets *eof, after
 * checking that state.bin still hashes to v->state_sha. 0, or CS_EINVAL/CS_EIO with err.
 * Any thread, one at a time.
 */
struct cs_snapshot_reader;
int cs_snapshot_reader_open(int fd, const struct cs_snapshot_verified *v,
			    struct cs_snapshot_reader **out, char *err, size_t errlen);
int cs_snapshot_reader_chunk(struct cs_snapshot_reader *r, const uint8_t id[CS_RESTORE_ID_LEN],
			     uint64_t seq, size_t max, struct cs_buf *entry, uint32_t *n_records,
			     bool *eof, char *err, size_t errlen);
void cs_snapshot_reader_free(struct cs_snapshot_reader *r);

/*
 * Offline inspection (the CLI's `operator raft snapshot inspect`): verify the archive
 * at `path` (hashes only: the seal is not needed) and return a new object owned by the
 * caller: the fields of meta.json, plus "Entries" (records counted in state.bin),
 * "StateSize" (bytes), "SealedSize" (bytes of SHA256SUMS.sealed) and "KeyCounts"
 * ({"<first path segment>/": records, ...}, e.g. "core/", "logical/", "sys/").
 * 0, or CS_EIO (cannot open) / CS_EINVAL (not a valid snapshot) with err.
 */
int cs_snapshot_inspect(const char *path, cJSON **meta_out, char *err, size_t errlen);

#endif
