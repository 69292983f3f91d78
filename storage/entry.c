/*
 * The raft entry codec (see entry.h): write-set batches and snapshot-restore entries.
 * Decoders bound every count by the bytes left, so a hostile entry fails on the first
 * short read.
 */
#include "storage/entry.h"

#include <string.h>

#include "lib/err.h"

#define BATCH_HEADER_LEN     9
#define BATCH_TYPE_WRITESETS 1

static const uint8_t batch_magic[4] = {'C', 'S', 'B', '1'};

/* ---------------------------------------------------------------- batch codec */

void cs_batch_init(struct cs_buf *entry)
{
	cs_buf_append(entry, batch_magic, sizeof batch_magic);
	cs_buf_put_u8(entry, BATCH_TYPE_WRITESETS);
	cs_buf_put_u32(entry, 0); /* patched by cs_batch_finish */
}

size_t cs_batch_writeset_len(const struct cs_writeset *ws)
{
	size_t n = 4;
	for (size_t i = 0; i < ws->n; i++) {
		n += 1 + 4 + ws->ops[i].klen;
		if (ws->ops[i].type == CS_WS_PUT)
			n += 4 + ws->ops[i].vlen;
	}
	return n;
}

/* Appends one write-set; callers check the size cap first (cs_batch_writeset_len). */
void cs_batch_add(struct cs_buf *entry, const struct cs_writeset *ws)
{
	cs_buf_reserve(entry, cs_batch_writeset_len(ws));
	cs_buf_put_u32(entry, (uint32_t)ws->n);
	for (size_t i = 0; i < ws->n; i++) {
		const struct cs_wsop *op = &ws->ops[i];
		cs_buf_put_u8(entry, op->type);
		cs_buf_put_u32(entry, (uint32_t)op->klen);
		cs_buf_append(entry, op->key, op->klen);
		if (op->type == CS_WS_PUT) {
			cs_buf_put_u32(entry, (uint32_t)op->vlen);
			cs_buf_append(entry, op->val, op->vlen);
		}
	}
}

void cs_batch_finish(struct cs_buf *entry, uint32_t n_writesets)
{
	uint8_t *p = (uint8_t *)entry->data + 5;
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(n_writesets >> (8 * i));
}

/* Padding to the 8-byte multiple raft_uv needs (entry.h): zeros only. */
static int check_padding(const struct cs_reader *r)
{
	if (r->err || r->left >= 8)
		return CS_EINVAL;
	for (size_t i = 0; i < r->left; i++)
		if (r->p[i] != 0)
			return CS_EINVAL;
	return 0;
}

int cs_batch_decode(const void *entry, size_t len, cs_batch_op_cb cb, void *ctx)
{
	struct cs_reader r = {entry, len, 0};
	const uint8_t *magic = cs_read_bytes(&r, sizeof batch_magic);
	uint8_t type = cs_read_u8(&r);
	uint32_t n_ws = cs_read_u32(&r);
	if (r.err || memcmp(magic, batch_magic, sizeof batch_magic) != 0 ||
	    type != BATCH_TYPE_WRITESETS)
		return CS_EINVAL;
	/* Every count is bounded by the bytes left: a hostile count fails on the first
	 * short read instead of looping. */
	for (uint32_t w = 0; w < n_ws; w++) {
		/* Write-set boundaries do not matter to the store: every op applies in order
		 * in the one LMDB transaction of the entry. */
		uint32_t n_ops = cs_read_u32(&r);
		for (uint32_t i = 0; i < n_ops && !r.err; i++) {
			uint8_t op = cs_read_u8(&r);
			uint32_t klen = cs_read_u32(&r);
			const uint8_t *key = cs_read_bytes(&r, klen);
			const uint8_t *val = NULL;
			uint32_t vlen = 0;
			if (op == CS_WS_PUT) {
				vlen = cs_read_u32(&r);
				val = cs_read_bytes(&r, vlen);
			} else if (op != CS_WS_DELETE) {
				return CS_EINVAL;
			}
			if (r.err)
				return CS_EINVAL;
			if (cb) {
				int rv = cb(ctx, op, (const char *)key, klen, val, vlen);
				if (rv != 0)
					return rv;
			}
		}
		if (r.err)
			return CS_EINVAL;
	}
	return check_padding(&r);
}

/* ---------------------------------------------------------------- restore entries */

int cs_entry_type(const void *entry, size_t len)
{
	if (!entry || len < BATCH_HEADER_LEN - 4 ||
	    memcmp(entry, batch_magic, sizeof batch_magic) != 0)
		return 0;
	return ((const uint8_t *)entry)[4];
}

static void restore_header(struct cs_buf *e, uint8_t type, const uint8_t id[CS_RESTORE_ID_LEN])
{
	cs_buf_append(e, batch_magic, sizeof batch_magic);
	cs_buf_put_u8(e, type);
	cs_buf_append(e, id, CS_RESTORE_ID_LEN);
}

void cs_restore_begin_entry(struct cs_buf *entry, const uint8_t id[CS_RESTORE_ID_LEN])
{
	restore_header(entry, CS_ENTRY_RESTORE_BEGIN, id);
}

void cs_restore_commit_entry(struct cs_buf *entry, const uint8_t id[CS_RESTORE_ID_LEN],
			     uint64_t n_chunks, uint64_t n_records)
{
	restore_header(entry, CS_ENTRY_RESTORE_COMMIT, id);
	cs_buf_put_u64(entry, n_chunks);
	cs_buf_put_u64(entry, n_records);
}

#define CHUNK_COUNT_OFF (4 + 1 + CS_RESTORE_ID_LEN + 8)

void cs_restore_chunk_init(struct cs_buf *entry, const uint8_t id[CS_RESTORE_ID_LEN], uint64_t seq)
{
	restore_header(entry, CS_ENTRY_RESTORE_CHUNK, id);
	cs_buf_put_u64(entry, seq);
	cs_buf_put_u32(entry, 0); /* patched by cs_restore_chunk_finish */
}

void cs_restore_chunk_add(struct cs_buf *entry, const void *key, size_t klen, const void *val,
			  size_t vlen)
{
	cs_buf_reserve(entry, 8 + klen + vlen);
	cs_buf_put_u32(entry, (uint32_t)klen);
	cs_buf_append(entry, key, klen);
	cs_buf_put_u32(entry, (uint32_t)vlen);
	cs_buf_append(entry, val, vlen);
}

void cs_restore_chunk_finish(struct cs_buf *entry, uint32_t n_records)
{
	uint8_t *p = (uint8_t *)entry->data + CHUNK_COUNT_OFF;
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(n_records >> (8 * i));
}

int cs_restore_decode(const void *entry, size_t len, struct cs_restore_hdr *hdr,
		      cs_restore_rec_cb cb, void *ctx)
{
	struct cs_reader r = {entry, len, 0};
	const uint8_t *magic = cs_read_bytes(&r, sizeof batch_magic);
	memset(hdr, 0, sizeof *hdr);
	hdr->type = cs_read_u8(&r);
	hdr->id = cs_read_bytes(&r, CS_RESTORE_ID_LEN);
	if (r.err || memcmp(magic, batch_magic, sizeof batch_magic) != 0)
		return CS_EINVAL;
	switch (hdr->type) {
	case CS_ENTRY_RESTORE_BEGIN:
		break;
	case CS_ENTRY_RESTORE_COMMIT:
		hdr->seq = cs_read_u64(&r);
		hdr->n_records = cs_read_u64(&r);
		break;
	case CS_ENTRY_RESTORE_CHUNK:
		hdr->seq = cs_read_u64(&r);
		hdr->n_records = cs_read_u32(&r);
		/* The count is bounded by the bytes left: each record needs 8 at least. */
		for (uint64_t i = 0; i < hdr->n_records && !r.err; i++) {
			uint32_t klen = cs_read_u32(&r);
			const uint8_t *key = cs_read_bytes(&r, klen);
			uint32_t vlen = cs_read_u32(&r);
			const uint8_t *val = cs_read_bytes(&r, vlen);
			if (r.err)
				return CS_EINVAL;
			int rv = cb ? cb(ctx, (const char *)key, klen, val, vlen) : 0;
			if (rv != 0)
				return rv;
		}
		break;
	default:
		return CS_EINVAL;
	}
	return check_padding(&r);
}
