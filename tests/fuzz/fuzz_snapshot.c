/*
 * libFuzzer target for the snapshot archive reader (raft/snapshot.c): every input must be
 * refused or accepted cleanly by cs_snapshot_verify; an accepted one is then read back
 * through the restore reader to its end (every chunk decodes as a RESTORE_CHUNK entry),
 * and cs_snapshot_check_sealed runs over it. No leaks, no overreads.
 *
 * The reader is included rather than linked so that it carries the fuzzer's coverage
 * instrumentation (the static library is built without it).
 */
#include "raft/snapshot.c"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fake_unseal(void *ctx, const void *ct, size_t n, struct cs_buf *out)
{
	/* "Decrypts" by copying: exercises the comparison with arbitrary bytes. */
	cs_buf_append(out, ct, n);
	return 0;
}

static int count_rec(void *ctx, const char *key, size_t klen, const void *val, size_t vlen)
{
	(*(uint64_t *)ctx)++;
	return 0;
}

static void read_back(int fd, const struct cs_snapshot_verified *v)
{
	struct cs_snapshot_reader *r;
	char err[256];
	uint8_t id[CS_RESTORE_ID_LEN] = {1};
	if (cs_snapshot_reader_open(fd, v, &r, err, sizeof err) != 0)
		abort(); /* verified a moment ago: must open */
	struct cs_buf e = CS_BUF_INIT;
	uint64_t total = 0;
	for (uint64_t seq = 0;; seq++) {
		uint32_t n;
		bool eof;
		cs_buf_reset(&e);
		if (cs_snapshot_reader_chunk(r, id, seq, 4096, &e, &n, &eof, err, sizeof err) != 0)
			abort(); /* same bytes as verified */
		if (eof)
			break;
		struct cs_restore_hdr h;
		uint64_t seen = 0;
		if (cs_restore_decode(e.data, e.len, &h, count_rec, &seen) != 0 || seen != n ||
		    h.seq != seq)
			abort();
		total += n;
	}
	if (total != v->entries)
		abort();
	cs_buf_free(&e);
	cs_snapshot_reader_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("snapshot", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (size && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	struct cs_snapshot_verified v;
	char err[256];
	if (cs_snapshot_verify(fd, NULL, NULL, &v, err, sizeof err) == 0) {
		cs_snapshot_check_sealed(&v, fake_unseal, NULL, err, sizeof err);
		read_back(fd, &v);
		cs_snapshot_verified_free(&v);
	}
	close(fd);
	return 0;
}
