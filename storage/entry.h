/*
 * The raft entry codec: the bytes of every entry custos proposes to raft, encoded by the
 * committer (storage/txn.c) and the snapshot restore (raft/snapshot.c), decoded by the
 * store when the FSM applies an entry (storage/store.c). On its own so that the store
 * does not depend on the transactions that produce the entries.
 */
#ifndef CS_STORAGE_ENTRY_H
#define CS_STORAGE_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

enum cs_wsop_type { CS_WS_PUT = 1, CS_WS_DELETE = 2 };

struct cs_wsop {
	uint8_t type;
	char *key; /* malloc'd, NUL-terminated */
	size_t klen;
	uint8_t *val; /* malloc'd stored bytes (ciphertext); NULL for delete */
	size_t vlen;
};

struct cs_writeset {
	struct cs_wsop *ops;
	size_t n, cap;
};

/*
 * Raft entry codec ("batch": many write-sets in one raft entry), integers LE:
 *   magic "CSB1" (4 bytes) | u8 type (1 = write-set batch) | u32 n_writesets |
 *   per write-set: u32 n_ops | per op: u8 op | u32 klen | key | [u32 vlen | value if put]
 *   | 0..7 zero bytes
 * The trailing zeros exist because c-raft 0.15's raft_uv pads every entry to a multiple
 * of 8 bytes when writing a segment but not when reading one back: an entry whose length
 * is not a multiple of 8 makes the log unloadable at the next start. The raft proposer
 * (raft/node.c) pads; the decoder accepts up to 7 trailing zero bytes.
 */
void cs_batch_init(struct cs_buf *entry);
/*
 * Entry types (the byte after the magic). 1 is the write-set batch above; 2..4 carry a
 * snapshot restore through raft (raft/snapshot.h drives them), so every node stages and
 * swaps the same bytes and the digest chain covers them like any other entry:
 *   2 RESTORE_BEGIN   magic | u8 2 | id[16]
 *                     drop whatever is staged (an abandoned restore), start staging `id`
 *   3 RESTORE_CHUNK   magic | u8 3 | id[16] | u64 seq | u32 n |
 *                     n × (u32 klen | key | u32 vlen | value)
 *                     staged only if `id` is being staged and seq is the next expected
 *                     (0, 1, ...); otherwise a no-op
 *   4 RESTORE_COMMIT  magic | u8 4 | id[16] | u64 n_chunks | u64 n_records
 *                     if `id` is staged with exactly these counts: replace the whole
 *                     "data" database with the staged records in one LMDB transaction;
 *                     with other counts: drop the staging (a no-op for the data)
 * Each may carry the same 0..7 zero bytes of padding. Data dirs written before these
 * types existed hold only type 1 and decode unchanged.
 */
enum cs_entry_type {
	CS_ENTRY_WRITESETS = 1,
	CS_ENTRY_RESTORE_BEGIN = 2,
	CS_ENTRY_RESTORE_CHUNK = 3,
	CS_ENTRY_RESTORE_COMMIT = 4,
};
#define CS_RESTORE_ID_LEN 16
/* The type of an encoded entry, or 0 when it has no valid header. */
int cs_entry_type(const void *entry, size_t len);
void cs_restore_begin_entry(struct cs_buf *entry, const uint8_t id[CS_RESTORE_ID_LEN]);
void cs_restore_commit_entry(struct cs_buf *entry, const uint8_t id[CS_RESTORE_ID_LEN],
			     uint64_t n_chunks, uint64_t n_records);
/* A chunk: init, add records, then finish with the record count. */
void cs_restore_chunk_init(struct cs_buf *entry, const uint8_t id[CS_RESTORE_ID_LEN], uint64_t seq);
void cs_restore_chunk_add(struct cs_buf *entry, const void *key, size_t klen, const void *val,
			  size_t vlen);
void cs_restore_chunk_finish(struct cs_buf *entry, uint32_t n_records);
/* A decoded restore entry; pointers point into the entry. */
struct cs_restore_hdr {
	uint8_t type;
	const uint8_t *id;  /* CS_RESTORE_ID_LEN bytes */
	uint64_t seq;       /* CHUNK: its sequence number; COMMIT: n_chunks */
	uint64_t n_records; /* CHUNK: records in it; COMMIT: records in the whole restore */
};
typedef int (*cs_restore_rec_cb)(void *ctx, const char *key, size_t klen, const void *val,
				 size_t vlen);
/* Decode a type 2..4 entry; for a chunk visit every record (cb may be NULL). CS_EINVAL if
 * malformed; a non-zero cb return stops and is returned. */
int cs_restore_decode(const void *entry, size_t len, struct cs_restore_hdr *hdr,
		      cs_restore_rec_cb cb, void *ctx);
/* The bytes cs_batch_add appends for `ws` (callers check the entry size cap first). */
size_t cs_batch_writeset_len(const struct cs_writeset *ws);
void cs_batch_add(struct cs_buf *entry, const struct cs_writeset *ws);
/* Patch the write-set count into the header when done adding. */
void cs_batch_finish(struct cs_buf *entry, uint32_t n_writesets);
typedef int (*cs_batch_op_cb)(void *ctx, uint8_t op, const char *key, size_t klen, const void *val,
			      size_t vlen);
/* Decode and visit every op in order. CS_EINVAL if malformed (no partial guarantee:
 * callers that must be atomic decode twice or wrap in a transaction). */
int cs_batch_decode(const void *entry, size_t len, cs_batch_op_cb cb, void *ctx);

#endif
