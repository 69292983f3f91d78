/*
 * A streaming check of c-raft 0.15's message framing, for the bytes a peer sends on an
 * inbound raft connection before they reach raft_uv (docs/architecture.md, C8).
 *
 * raft_uv trusts the lengths in what it reads: a peer holding a cluster certificate can
 * make it allocate any size, read past a header, decode an entry past its buffer or free
 * a pointer it never allocated (the findings kept in tests/fuzz/corpus/transport). The
 * transport feeds every decrypted byte through this checker and tears the connection
 * down at the first message that raft_uv would decode unsafely, so that raft only ever
 * sees messages it handles correctly.
 *
 * The stream is a sequence of messages:
 *   preamble  u64 type (1..6), u64 header length (bytes)
 *   header    type-specific, little-endian u64 fields:
 *     1 AppendEntries        term, prev index, prev term, commit, n; n × {u64 term,
 *                            u8 type (1..3), 3 unused, u32 length}; 8 spare bytes may
 *                            follow (c-raft counts a leader id it never writes)
 *     2 AppendEntriesResult  exactly 24 bytes
 *     3 RequestVote          32 or 40 bytes
 *     4 RequestVoteResult    16 or 24 bytes
 *     5 InstallSnapshot      term, last index, last term, conf index, conf length;
 *                            the configuration (format 1, u64 count, per server u64 id
 *                            != 0, NUL-terminated address, role 0..2); u64 data length;
 *                            8 spare bytes may follow
 *     6 TimeoutNow           exactly 24 bytes
 *   payload   AppendEntries: the entries, each length a non-zero multiple of 8 (raft_uv
 *             reads them back padded; c-raft's own entries are never empty);
 *             InstallSnapshot: the snapshot data.
 * Bounds: at most CS_WIRE_MAX_ENTRIES entries per message, CS_WIRE_MAX_ENTRY bytes per
 * entry, CS_WIRE_MAX_CONF configuration bytes, and max_payload bytes of payload per
 * message (the largest snapshot the store can hold).
 *
 * Not thread-safe; one checker per connection. Nothing is allocated.
 */
#ifndef CS_RAFT_WIRE_H
#define CS_RAFT_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define CS_WIRE_MAX_ENTRIES ((uint64_t)1 << 20)  /* > threshold + trailing at their max */
#define CS_WIRE_MAX_ENTRY   ((uint64_t)64 << 20) /* > CS_MAX_ENTRY_BYTES, padded */
#define CS_WIRE_MAX_CONF    ((uint64_t)64 << 10) /* ~240 servers of 256-byte addresses */

struct cs_wire {
	uint64_t max_payload;
	int state;
	uint8_t buf[40]; /* the fixed part being collected */
	size_t have, want;
	uint64_t type, hleft; /* message type; header bytes not yet consumed */
	uint64_t count;       /* entries (AppendEntries) or servers (conf) left */
	uint64_t payload;     /* payload bytes announced, then left to skip */
	uint64_t conf_left;   /* configuration bytes not yet consumed */
	uint64_t messages;    /* complete messages seen */
	const char *error;    /* why the stream was refused (static string) */
};

/* Start a stream; max_payload 0 means CS_WIRE_DEFAULT_PAYLOAD. */
#define CS_WIRE_DEFAULT_PAYLOAD ((uint64_t)8 << 30) /* CS_STORE_DEFAULT_MAP_SIZE */
void cs_wire_init(struct cs_wire *w, uint64_t max_payload);

/*
 * Check the next `len` bytes of the stream. Returns 0 while everything seen is a valid
 * prefix of a message sequence; -1 once it is not (w->error says why; every later call
 * returns -1). The bytes of a refused chunk must not be passed on.
 */
int cs_wire_feed(struct cs_wire *w, const uint8_t *p, size_t len);

#endif
