/*
 * Snapshot archives (format and contract in snapshot.h), on libarchive.
 *
 * Writing: one pass over the view sums the record sizes (tar wants a member's size
 * before its bytes, and meta.json carries it), then meta.json, state.bin (the second
 * pass, hashed as it is written) and SHA256SUMS go through gzip into the caller's fd.
 * The archive stays open until the caller brings the sealed sums (the seal lives on the
 * loop thread), then SHA256SUMS.sealed closes it.
 *
 * Reading: a pull parser over one tar member at a time hashes every byte it consumes and
 * decodes state.bin record by record, so neither verification nor a restore ever holds
 * more than one record. The fd is read with pread from our own offset, so several
 * readers (verification, then the restore) can share it without seeking.
 *
 * Failure modes, all reported as text for the client and nothing else:
 * - not gzip, not tar, truncated stream, unknown/duplicate/missing member, a member that
 *   is not a regular file, oversized meta.json/SHA256SUMS/sealed member;
 * - state.bin: bad magic or format, bad key or value length, keys out of order, fewer
 *   or more bytes than the records it announces;
 * - SHA256SUMS malformed or different from the computed hashes; meta.json not an object
 *   with Version 1, or Size different from state.bin's;
 * - disk errors while writing (ENOSPC...), or the store closing under the writer.
 */
#include "raft/snapshot.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/util.h"

#define STATE_MAGIC      "CSSB"
#define STATE_FORMAT     1
#define STATE_HEADER_LEN 16
#define MAX_KEY          511
#define MAX_META         ((int64_t)1 << 20)
#define MAX_SUMS         4096
#define MAX_SEALED       ((int64_t)64 << 10)
#define IO_BLOCK         ((size_t)64 << 10)
/* A store walker checks for shutdown this often (records). */
#define CLOSING_POLL 4096

enum member_id { M_META, M_STATE, M_SUMS, M_SEALED, M__COUNT };
static const char *const member_names[M__COUNT] = {CS_SNAPSHOT_META, CS_SNAPSHOT_STATE,
						   CS_SNAPSHOT_SUMS, CS_SNAPSHOT_SEALED};

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return code;
}

static EVP_MD_CTX *sha_new(void)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		abort(); /* OpenSSL without SHA-256 or memory: nothing sensible to do */
	return md;
}

static void sha_final(EVP_MD_CTX *md, uint8_t out[32])
{
	unsigned int n = 0;
	if (EVP_DigestFinal_ex(md, out, &n) != 1 || n != 32)
		abort();
}

/* ================================================================ writing */

/* libarchive's output callback: the whole block or an error (ENOSPC reaches the
 * client as a 500 with this text). */
static la_ssize_t dst_write(struct archive *a, void *ctx, const void *buf, size_t n)
{
	struct cs_snapshot_writer *w = ctx;
	const char *p = buf;
	size_t left = n;
	while (left > 0) {
		ssize_t k = write(w->fd, p, left);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			archive_set_error(a, k < 0 ? errno : EIO, "writing the snapshot: %s",
					  k < 0 ? strerror(errno) : "short write");
			return -1;
		}
		p += k;
		left -= (size_t)k;
	}
	return (la_ssize_t)n;
}

static int ar_fail(struct cs_snapshot_writer *w, const char *what)
{
	snprintf(w->err, sizeof w->err, "%s: %s", what,
		 w->a && archive_error_string(w->a) ? archive_error_string(w->a) : "failed");
	return CS_EIO;
}

static int member_header(struct cs_snapshot_writer *w, const char *name, uint64_t size)
{
	struct archive_entry *e = archive_entry_new();
	if (!e)
		abort();
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0600);
	archive_entry_set_size(e, (la_int64_t)size);
	archive_entry_set_mtime(e, time(NULL), 0);
	int rc = archive_write_header(w->a, e);
	archive_entry_free(e);
	return rc == ARCHIVE_OK ? 0 : ar_fail(w, name);
}

static int member_data(struct cs_snapshot_writer *w, const void *p, size_t n, EVP_MD_CTX *md)
{
	if (n == 0)
		return 0;
	if (md && EVP_DigestUpdate(md, p, n) != 1)
		abort();
	la_ssize_t k = archive_write_data(w->a, p, n);
	return k == (la_ssize_t)n ? 0 : ar_fail(w, "writing the archive");
}

/* A small member written at once; its hash into `sha` when given. */
static int member_whole(struct cs_snapshot_writer *w, const char *name, const void *p, size_t n,
			uint8_t sha[32])
{
	EVP_MD_CTX *md = sha ? sha_new() : NULL;
	int rv = member_header(w, name, n);
	if (rv == 0)
		rv = member_data(w, p, n, md);
	if (md) {
		sha_final(md, sha);
		EVP_MD_CTX_free(md);
	}
	return rv;
}

/* Visit every record of the data database in the view; stops early when the store
 * closes (the view must end before the env does). */
typedef int (*rec_fn)(void *ctx, const MDB_val *k, const MDB_val *v);

static int walk_view(struct cs_snapshot_writer *w, struct cs_store *s, MDB_txn *view, rec_fn fn,
		     void *ctx)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_cursor_open(view, s->data, &cur);
	if (rc != 0)
		return fail(w->err, sizeof w->err, CS_EIO, "lmdb cursor: %s", mdb_strerror(rc));
	int rv = 0;
	uint64_t n = 0;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && rv == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (++n % CLOSING_POLL == 0 && cs_store_closing(s))
			rv = fail(w->err, sizeof w->err, CS_ESHUTDOWN, "the store is closing");
		else
			rv = fn(ctx, &k, &v);
	}
	mdb_cursor_close(cur);
	if (rv == 0 && rc != MDB_NOTFOUND)
		rv = fail(w->err, sizeof w->err, CS_EIO, "lmdb cursor get: %s", mdb_strerror(rc));
	return rv;
}

struct size_acc {
	uint64_t bytes, count;
};

static int size_rec(void *ctx, const MDB_val *k, const MDB_val *v)
{
	struct size_acc *a = ctx;
	if (v->mv_size > CS_SNAPSHOT_MAX_VALUE)
		return CS_EIO;
	a->bytes += 8 + k->mv_size + v->mv_size;
	a->count++;
	return 0;
}

/* state.bin's records go through a 64 KiB buffer: one archive call per block, not per
 * field. */
struct state_out {
	struct cs_snapshot_writer *w;
	EVP_MD_CTX *md;
	uint8_t buf[IO_BLOCK];
	size_t n;
	uint64_t count;
};

static int out_flush(struct state_out *o)
{
	int rv = member_data(o->w, o->buf, o->n, o->md);
	o->n = 0;
	return rv;
}

static int out_put(struct state_out *o, const void *p, size_t n)
{
	if (o->n + n > sizeof o->buf) {
		int rv = out_flush(o);
		if (rv != 0)
			return rv;
		if (n > sizeof o->buf)
			return member_data(o->w, p, n, o->md); /* a big value: straight through */
	}
	memcpy(o->buf + o->n, p, n);
	o->n += n;
	return 0;
}

static int state_rec(void *ctx, const MDB_val *k, const MDB_val *v)
{
	struct state_out *o = ctx;
	uint8_t len[4];
	put_le32(len, (uint32_t)k->mv_size);
	int rv = out_put(o, len, 4);
	if (rv == 0)
		rv = out_put(o, k->mv_data, k->mv_size);
	put_le32(len, (uint32_t)v->mv_size);
	if (rv == 0)
		rv = out_put(o, len, 4);
	if (rv == 0)
		rv = out_put(o, v->mv_data, v->mv_size);
	o->count++;
	return rv;
}

static char *meta_json(const struct cs_snapshot_writer *w)
{
	char id[96], created[40];
	int64_t now = cs_now_ns();
	snprintf(id, sizeof id, "%llu-%llu-%lld", (unsigned long long)w->term,
		 (unsigned long long)w->index, (long long)(now / 1000000));
	cs_format_time(now, created, sizeof created);
	cJSON *m = cJSON_CreateObject();
	cJSON_AddNumberToObject(m, "Version", 1);
	cJSON_AddStringToObject(m, "ID", id);
	cJSON_AddNumberToObject(m, "Index", (double)w->index);
	cJSON_AddNumberToObject(m, "Term", (double)w->term);
	cJSON *c = cJSON_AddObjectToObject(m, "Configuration");
	cJSON_AddArrayToObject(c, "Servers");
	cJSON_AddNumberToObject(m, "ConfigurationIndex", 0);
	cJSON_AddNumberToObject(m, "Size", (double)w->state_size);
	cJSON_AddNumberToObject(m, "CustosFormat", STATE_FORMAT);
	cJSON_AddNumberToObject(m, "Entries", (double)w->entries);
	cJSON_AddStringToObject(m, "Created", created);
	char *s = cJSON_PrintUnformatted(m);
	cJSON_Delete(m);
	if (!s)
		abort();
	return s;
}

static int write_state(struct cs_snapshot_writer *w, struct cs_store *s, MDB_txn *view,
		       uint8_t sha[32])
{
	struct state_out *o = calloc(1, sizeof *o);
	if (!o)
		abort();
	o->w = w;
	o->md = sha_new();
	uint8_t head[STATE_HEADER_LEN];
	memcpy(head, STATE_MAGIC, 4);
	put_le32(head + 4, STATE_FORMAT);
	put_le64(head + 8, w->entries);
	int rv = member_header(w, CS_SNAPSHOT_STATE, w->state_size);
	if (rv == 0)
		rv = out_put(o, head, sizeof head);
	if (rv == 0)
		rv = walk_view(w, s, view, state_rec, o);
	if (rv == 0)
		rv = out_flush(o);
	/* Same view, same records: a different count means a bug, not a race. */
	if (rv == 0 && o->count != w->entries)
		rv = fail(w->err, sizeof w->err, CS_EIO, "state changed between passes");
	sha_final(o->md, sha);
	EVP_MD_CTX_free(o->md);
	free(o);
	return rv;
}

static int open_writer(struct cs_snapshot_writer *w)
{
	w->a = archive_write_new();
	if (!w->a)
		abort();
	/* Ciphertext does not compress: the fastest level costs little size (keys and
	 * framing still shrink) and keeps a big save disk-bound rather than CPU-bound. */
	if (archive_write_add_filter_gzip(w->a) != ARCHIVE_OK ||
	    archive_write_set_filter_option(w->a, "gzip", "compression-level", "1") != ARCHIVE_OK ||
	    archive_write_set_format_pax_restricted(w->a) != ARCHIVE_OK ||
	    /* No zero padding after the gzip stream: Go's multistream gzip reader would
	     * take it for a broken second member. */
	    archive_write_set_bytes_in_last_block(w->a, 1) != ARCHIVE_OK ||
	    archive_write_open(w->a, w, NULL, dst_write, NULL) != ARCHIVE_OK)
		return ar_fail(w, "creating the archive");
	return 0;
}

int cs_snapshot_write_begin(struct cs_snapshot_writer *w, int fd, struct cs_store *s, MDB_txn *view,
			    uint64_t index, uint64_t term)
{
	memset(w, 0, sizeof *w);
	w->fd = fd;
	w->index = index;
	w->term = term;
	struct size_acc acc = {0, 0};
	int rv = walk_view(w, s, view, size_rec, &acc);
	if (rv == CS_EIO && !w->err[0])
		snprintf(w->err, sizeof w->err, "a stored value is larger than %u bytes",
			 (unsigned)CS_SNAPSHOT_MAX_VALUE);
	if (rv != 0)
		return rv;
	w->entries = acc.count;
	w->state_size = STATE_HEADER_LEN + acc.bytes;

	uint8_t meta_sha[32], state_sha[32];
	char *meta = meta_json(w);
	rv = open_writer(w);
	if (rv == 0)
		rv = member_whole(w, CS_SNAPSHOT_META, meta, strlen(meta), meta_sha);
	free(meta);
	if (rv == 0)
		rv = write_state(w, s, view, state_sha);
	if (rv != 0)
		return rv;
	char mh[65], sh[65];
	cs_hex_encode(meta_sha, 32, mh);
	cs_hex_encode(state_sha, 32, sh);
	int n = snprintf(w->sums, sizeof w->sums, "%s  %s\n%s  %s\n", mh, CS_SNAPSHOT_META, sh,
			 CS_SNAPSHOT_STATE);
	w->sums_len = (size_t)n;
	return member_whole(w, CS_SNAPSHOT_SUMS, w->sums, w->sums_len, NULL);
}

int cs_snapshot_write_end(struct cs_snapshot_writer *w, const void *sealed, size_t len)
{
	if (!w->a || len == 0)
		return fail(w->err, sizeof w->err, CS_EIO, "no archive open or empty sealed sums");
	int rv = member_whole(w, CS_SNAPSHOT_SEALED, sealed, len, NULL);
	/* close flushes gzip's tail: its failure is a failed write like any other. */
	if (rv == 0 && archive_write_close(w->a) != ARCHIVE_OK)
		rv = ar_fail(w, "finishing the archive");
	archive_write_free(w->a);
	w->a = NULL;
	return rv;
}

void cs_snapshot_writer_free(struct cs_snapshot_writer *w)
{
	if (w->a) {
		/* free without close: nothing more is written, the caller drops the file. */
		archive_write_free(w->a);
		w->a = NULL;
	}
}

/* ================================================================ reading */

/* libarchive's input: pread from our own offset (the fd may be shared). */
struct src {
	int fd;
	off_t off;
	uint8_t buf[IO_BLOCK];
};

static la_ssize_t src_read(struct archive *a, void *ctx, const void **buf)
{
	struct src *s = ctx;
	ssize_t n;
	do
		n = pread(s->fd, s->buf, sizeof s->buf, s->off);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		archive_set_error(a, errno, "read: %s", strerror(errno));
		return -1;
	}
	s->off += n;
	*buf = s->buf;
	return n;
}

/* One tar member being consumed: every byte read is hashed. */
struct member {
	struct archive *a;
	EVP_MD_CTX *md;
	uint8_t buf[IO_BLOCK];
	size_t pos, avail;
	bool end; /* archive_read_data returned 0 */
};

struct ar_reader {
	struct archive *a;
	struct src src;
	struct member m;
};

static void reader_close(struct ar_reader *r)
{
	if (r->a)
		archive_read_free(r->a);
	r->a = NULL;
	if (r->m.md)
		EVP_MD_CTX_free(r->m.md);
	r->m.md = NULL;
}

static int reader_open(struct ar_reader *r, int fd, char *err, size_t errlen)
{
	memset(r, 0, sizeof *r);
	r->src.fd = fd;
	r->a = archive_read_new();
	if (!r->a)
		abort();
	/* Only gzip'd tar: the filter check after the first header refuses plain tar. */
	archive_read_support_filter_gzip(r->a);
	archive_read_support_format_tar(r->a);
	if (archive_read_open(r->a, &r->src, NULL, src_read, NULL) != ARCHIVE_OK)
		return fail(err, errlen, CS_EINVAL, "snapshot is not a gzip'd tar archive: %s",
			    archive_error_string(r->a) ? archive_error_string(r->a) : "unreadable");
	return 0;
}

static bool is_gzip(struct archive *a)
{
	for (int i = 0; i < archive_filter_count(a); i++)
		if (archive_filter_code(a, i) == ARCHIVE_FILTER_GZIP)
			return true;
	return false;
}

/*
 * Next member header: sets *id (M__COUNT at the end of the archive) and *size. Only
 * regular files with one of the four names pass.
 */
static int next_member(struct ar_reader *r, enum member_id *id, int64_t *size, char *err,
		       size_t errlen)
{
	struct archive_entry *e;
	int rc = archive_read_next_header(r->a, &e);
	if (rc == ARCHIVE_EOF) {
		*id = M__COUNT;
		return 0;
	}
	if (rc < ARCHIVE_WARN)
		return fail(err, errlen, CS_EINVAL, "snapshot archive is corrupt: %s",
			    archive_error_string(r->a) ? archive_error_string(r->a) : "unreadable");
	if (!is_gzip(r->a))
		return fail(err, errlen, CS_EINVAL, "snapshot is not gzip-compressed");
	const char *name = archive_entry_pathname(e);
	if (!name)
		return fail(err, errlen, CS_EINVAL, "snapshot has a member without a name");
	for (int i = 0; i < M__COUNT; i++) {
		if (strcmp(name, member_names[i]) != 0)
			continue;
		if (archive_entry_filetype(e) != AE_IFREG || !archive_entry_size_is_set(e))
			return fail(err, errlen, CS_EINVAL, "snapshot member %s is not a file",
				    name);
		*id = (enum member_id)i;
		*size = archive_entry_size(e);
		/* A new member: reset the byte source and its hash. */
		r->m.a = r->a;
		r->m.pos = r->m.avail = 0;
		r->m.end = false;
		if (r->m.md)
			EVP_MD_CTX_free(r->m.md);
		r->m.md = sha_new();
		return 0;
	}
	return fail(err, errlen, CS_EINVAL, "unexpected file \"%.64s\" in the snapshot", name);
}

static int refill(struct member *m, char *err, size_t errlen)
{
	la_ssize_t n = archive_read_data(m->a, m->buf, sizeof m->buf);
	if (n < 0)
		return fail(err, errlen, CS_EINVAL, "snapshot archive is corrupt: %s",
			    archive_error_string(m->a) ? archive_error_string(m->a) : "unreadable");
	if (n == 0)
		m->end = true;
	else if (EVP_DigestUpdate(m->md, m->buf, (size_t)n) != 1)
		abort();
	m->pos = 0;
	m->avail = (size_t)n;
	return 0;
}

/* Copy the next n bytes of the member to dst (NULL: skip them). */
static int mread(struct member *m, void *dst, size_t n, const char *what, char *err, size_t errlen)
{
	uint8_t *d = dst;
	while (n > 0) {
		if (m->pos == m->avail) {
			int rv = m->end ? CS_EINVAL : refill(m, err, errlen);
			if (rv != 0)
				return rv;
			if (m->end)
				return fail(err, errlen, CS_EINVAL, "snapshot %s is truncated",
					    what);
		}
		size_t k = m->avail - m->pos < n ? m->avail - m->pos : n;
		if (d) {
			memcpy(d, m->buf + m->pos, k);
			d += k;
		}
		m->pos += k;
		n -= k;
	}
	return 0;
}

/* The member must have no byte left. */
static int mend(struct member *m, const char *what, char *err, size_t errlen)
{
	while (m->pos == m->avail && !m->end) {
		int rv = refill(m, err, errlen);
		if (rv != 0)
			return rv;
	}
	if (m->pos != m->avail)
		return fail(err, errlen, CS_EINVAL, "snapshot %s has trailing data", what);
	return 0;
}

/* A small member, whole, NUL-terminated. */
static int read_small(struct member *m, int64_t size, int64_t max, const char *name, char **out,
		      char *err, size_t errlen)
{
	if (size > max)
		return fail(err, errlen, CS_EINVAL, "snapshot member %s is too large", name);
	char *p = malloc((size_t)size + 1);
	if (!p)
		abort();
	int rv = mread(m, p, (size_t)size, name, err, errlen);
	if (rv == 0)
		rv = mend(m, name, err, errlen);
	if (rv != 0) {
		free(p);
		return rv;
	}
	p[size] = '\0';
	*out = p;
	return 0;
}

/* ---------------------------------------------------------------- state.bin records */

struct state_in {
	uint64_t count, seen;
	uint8_t key[MAX_KEY + 1], prev[MAX_KEY + 1];
	size_t klen, prevlen;
	uint32_t vlen;
};

static int state_header(struct member *m, struct state_in *st, char *err, size_t errlen)
{
	uint8_t h[STATE_HEADER_LEN];
	int rv = mread(m, h, sizeof h, CS_SNAPSHOT_STATE, err, errlen);
	if (rv != 0)
		return rv;
	if (memcmp(h, STATE_MAGIC, 4) != 0 || get_le32(h + 4) != STATE_FORMAT)
		return fail(err, errlen, CS_EINVAL,
			    "snapshot state.bin is not in a format this server reads");
	memset(st, 0, sizeof *st);
	st->count = get_le64(h + 8);
	return 0;
}

/* The next record's key and value length; the value itself is left in the member
 * for the caller to copy or skip. */
static int state_next(struct member *m, struct state_in *st, char *err, size_t errlen)
{
	uint8_t l[4];
	int rv = mread(m, l, 4, CS_SNAPSHOT_STATE, err, errlen);
	if (rv != 0)
		return rv;
	size_t klen = get_le32(l);
	if (klen == 0 || klen > MAX_KEY)
		return fail(err, errlen, CS_EINVAL, "snapshot state.bin: bad key length %zu", klen);
	memcpy(st->prev, st->key, st->klen);
	st->prevlen = st->klen;
	rv = mread(m, st->key, klen, CS_SNAPSHOT_STATE, err, errlen);
	if (rv == 0)
		rv = mread(m, l, 4, CS_SNAPSHOT_STATE, err, errlen);
	if (rv != 0)
		return rv;
	st->klen = klen;
	st->key[klen] = '\0';
	st->vlen = get_le32(l);
	if (st->vlen > CS_SNAPSHOT_MAX_VALUE)
		return fail(err, errlen, CS_EINVAL, "snapshot state.bin: value too large");
	/* Strictly ascending, as LMDB stores them: duplicates or disorder mean a file we
	 * did not write. */
	if (st->seen > 0) {
		size_t n = st->prevlen < klen ? st->prevlen : klen;
		int c = memcmp(st->prev, st->key, n);
		if (c > 0 || (c == 0 && st->prevlen >= klen))
			return fail(err, errlen, CS_EINVAL,
				    "snapshot state.bin: keys out of order");
	}
	st->seen++;
	return 0;
}

/* Walk state.bin to its end, counting and (for inspect) visiting keys. */
static int verify_state(struct member *m, int64_t size, struct cs_snapshot_verified *v,
			cs_snapshot_key_cb cb, void *ctx, char *err, size_t errlen)
{
	struct state_in *st = malloc(sizeof *st);
	if (!st)
		abort();
	int rv = state_header(m, st, err, errlen);
	while (rv == 0 && st->seen < st->count) {
		rv = state_next(m, st, err, errlen);
		if (rv == 0)
			rv = mread(m, NULL, st->vlen, CS_SNAPSHOT_STATE, err, errlen);
		if (rv == 0 && cb)
			cb(ctx, (const char *)st->key, st->klen, st->vlen);
	}
	if (rv == 0)
		rv = mend(m, CS_SNAPSHOT_STATE, err, errlen);
	if (rv == 0) {
		v->entries = st->count;
		v->state_size = (uint64_t)size;
		sha_final(m->md, v->state_sha);
	}
	free(st);
	return rv;
}

/* ---------------------------------------------------------------- verification */

/* SHA256SUMS: exactly one line for meta.json and one for state.bin ("  " or " *"). */
static int parse_sums(const char *sums, uint8_t meta[32], uint8_t state[32], char *err,
		      size_t errlen)
{
	bool have[2] = {false, false};
	const char *p = sums;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		if (len == 0) {
			p += nl ? 1 : 0;
			continue;
		}
		if (len < 67 || p[64] != ' ' || (p[65] != ' ' && p[65] != '*'))
			return fail(err, errlen, CS_EINVAL, "snapshot SHA256SUMS is malformed");
		const char *name = p + 66;
		size_t nlen = len - 66;
		int which = -1;
		if (nlen == strlen(CS_SNAPSHOT_META) && memcmp(name, CS_SNAPSHOT_META, nlen) == 0)
			which = 0;
		else if (nlen == strlen(CS_SNAPSHOT_STATE) &&
			 memcmp(name, CS_SNAPSHOT_STATE, nlen) == 0)
			which = 1;
		if (which < 0 || have[which] ||
		    cs_hex_decode(p, 64, which == 0 ? meta : state) != 32)
			return fail(err, errlen, CS_EINVAL, "snapshot SHA256SUMS is malformed");
		have[which] = true;
		p += len + (nl ? 1 : 0);
	}
	if (!have[0] || !have[1])
		return fail(err, errlen, CS_EINVAL, "snapshot SHA256SUMS is incomplete");
	return 0;
}

static int check_meta(const char *text, struct cs_snapshot_verified *v, char *err, size_t errlen)
{
	cJSON *m = cJSON_Parse(text);
	if (!cJSON_IsObject(m)) {
		cJSON_Delete(m);
		return fail(err, errlen, CS_EINVAL, "snapshot meta.json is not a JSON object");
	}
	const cJSON *ver = cJSON_GetObjectItem(m, "Version");
	const cJSON *size = cJSON_GetObjectItem(m, "Size");
	if (!cJSON_IsNumber(ver) || ver->valuedouble != 1) {
		cJSON_Delete(m);
		return fail(err, errlen, CS_EINVAL, "snapshot meta.json: unsupported version");
	}
	if (size && (!cJSON_IsNumber(size) || size->valuedouble != (double)v->state_size)) {
		cJSON_Delete(m);
		return fail(err, errlen, CS_EINVAL,
			    "snapshot meta.json: Size does not match state.bin");
	}
	v->meta = m;
	return 0;
}

/* After every member was read: all there, sums equal. */
static int verify_finish(struct cs_snapshot_verified *v, const bool seen[M__COUNT],
			 const char *meta_text, const uint8_t meta_sha[32], char *err,
			 size_t errlen)
{
	if (!seen[M_SEALED])
		/* The vault CLI's own wording for this case. */
		return fail(err, errlen, CS_EINVAL,
			    "incomplete snapshot, unable to read SHA256SUMS.sealed file");
	for (int i = 0; i < M__COUNT; i++)
		if (!seen[i])
			return fail(err, errlen, CS_EINVAL, "incomplete snapshot: %s is missing",
				    member_names[i]);
	uint8_t want_meta[32], want_state[32];
	int rv = parse_sums(v->sums, want_meta, want_state, err, errlen);
	if (rv != 0)
		return rv;
	if (!cs_ct_equal(want_meta, 32, meta_sha, 32))
		return fail(err, errlen, CS_EINVAL,
			    "snapshot hash mismatch: meta.json does not match SHA256SUMS");
	if (!cs_ct_equal(want_state, 32, v->state_sha, 32))
		return fail(err, errlen, CS_EINVAL,
			    "snapshot hash mismatch: state.bin does not match SHA256SUMS");
	return check_meta(meta_text, v, err, errlen);
}

/* One member during verification. */
static int verify_member(struct ar_reader *r, enum member_id id, int64_t size,
			 struct cs_snapshot_verified *v, char **meta_text, uint8_t meta_sha[32],
			 cs_snapshot_key_cb cb, void *ctx, char *err, size_t errlen)
{
	char *sealed = NULL;
	int rv;
	switch (id) {
	case M_META:
		rv = read_small(&r->m, size, MAX_META, CS_SNAPSHOT_META, meta_text, err, errlen);
		if (rv == 0)
			sha_final(r->m.md, meta_sha);
		return rv;
	case M_STATE:
		return verify_state(&r->m, size, v, cb, ctx, err, errlen);
	case M_SUMS:
		rv = read_small(&r->m, size, MAX_SUMS, CS_SNAPSHOT_SUMS, &v->sums, err, errlen);
		if (rv == 0)
			v->sums_len = (size_t)size;
		return rv;
	case M_SEALED:
		if (size == 0)
			return fail(err, errlen, CS_EINVAL,
				    "incomplete snapshot, unable to read SHA256SUMS.sealed file");
		rv = read_small(&r->m, size, MAX_SEALED, CS_SNAPSHOT_SEALED, &sealed, err, errlen);
		v->sealed = (uint8_t *)sealed;
		v->sealed_len = rv == 0 ? (size_t)size : 0;
		return rv;
	default:
		return CS_EINVAL;
	}
}

int cs_snapshot_verify(int fd, cs_snapshot_key_cb cb, void *ctx, struct cs_snapshot_verified *v,
		       char *err, size_t errlen)
{
	memset(v, 0, sizeof *v);
	struct ar_reader *r = malloc(sizeof *r);
	if (!r)
		abort();
	bool seen[M__COUNT] = {false};
	char *meta_text = NULL;
	uint8_t meta_sha[32] = {0};
	int rv = reader_open(r, fd, err, errlen);
	while (rv == 0) {
		enum member_id id;
		int64_t size;
		rv = next_member(r, &id, &size, err, errlen);
		if (rv != 0 || id == M__COUNT)
			break;
		if (seen[id]) {
			rv = fail(err, errlen, CS_EINVAL, "snapshot has two %s files",
				  member_names[id]);
			break;
		}
		seen[id] = true;
		rv = verify_member(r, id, size, v, &meta_text, meta_sha, cb, ctx, err, errlen);
	}
	if (rv == 0)
		rv = verify_finish(v, seen, meta_text, meta_sha, err, errlen);
	free(meta_text);
	reader_close(r);
	free(r);
	if (rv != 0)
		cs_snapshot_verified_free(v);
	return rv;
}

void cs_snapshot_verified_free(struct cs_snapshot_verified *v)
{
	cJSON_Delete(v->meta);
	free(v->sums);
	free(v->sealed);
	memset(v, 0, sizeof *v);
}

int cs_snapshot_check_sealed(const struct cs_snapshot_verified *v, cs_snapshot_unseal_fn fn,
			     void *ctx, char *err, size_t errlen)
{
	struct cs_buf pt = CS_BUF_INIT;
	int rv = fn(ctx, v->sealed, v->sealed_len, &pt);
	bool same = rv == 0 && cs_ct_equal(pt.data, pt.len, v->sums, v->sums_len);
	cs_buf_free_secure(&pt);
	return same ? 0 : fail(err, errlen, CS_EINVAL, "%s", CS_SNAPSHOT_SEAL_MISMATCH);
}

/* ---------------------------------------------------------------- restore chunks */

struct cs_snapshot_reader {
	struct ar_reader ar;
	struct state_in st;
	uint8_t want_sha[32];
	struct cs_buf val; /* one value at a time */
	bool done;
};

int cs_snapshot_reader_open(int fd, const struct cs_snapshot_verified *v,
			    struct cs_snapshot_reader **out, char *err, size_t errlen)
{
	struct cs_snapshot_reader *r = calloc(1, sizeof *r);
	if (!r)
		abort();
	memcpy(r->want_sha, v->state_sha, 32);
	int rv = reader_open(&r->ar, fd, err, errlen);
	/* Skip to state.bin; the members before it were verified already. */
	enum member_id id = M_META;
	while (rv == 0) {
		int64_t size;
		rv = next_member(&r->ar, &id, &size, err, errlen);
		if (rv != 0 || id == M_STATE)
			break;
		if (id == M__COUNT) {
			rv = fail(err, errlen, CS_EINVAL, "snapshot state.bin is missing");
			break;
		}
	}
	if (rv == 0)
		rv = state_header(&r->ar.m, &r->st, err, errlen);
	if (rv == 0 && r->st.count != v->entries)
		rv = fail(err, errlen, CS_EINVAL, "snapshot changed since it was verified");
	if (rv != 0) {
		cs_snapshot_reader_free(r);
		return rv;
	}
	*out = r;
	return 0;
}

/* End of the records: the file must still be the one that was verified. */
static int reader_finish(struct cs_snapshot_reader *r, char *err, size_t errlen)
{
	uint8_t sha[32];
	int rv = mend(&r->ar.m, CS_SNAPSHOT_STATE, err, errlen);
	if (rv != 0)
		return rv;
	sha_final(r->ar.m.md, sha);
	if (!cs_ct_equal(sha, 32, r->want_sha, 32))
		return fail(err, errlen, CS_EINVAL, "snapshot changed since it was verified");
	r->done = true;
	return 0;
}

int cs_snapshot_reader_chunk(struct cs_snapshot_reader *r, const uint8_t id[CS_RESTORE_ID_LEN],
			     uint64_t seq, size_t max, struct cs_buf *entry, uint32_t *n_records,
			     bool *eof, char *err, size_t errlen)
{
	*n_records = 0;
	*eof = false;
	if (r->done || r->st.seen == r->st.count) {
		int rv = r->done ? 0 : reader_finish(r, err, errlen);
		*eof = rv == 0;
		return rv;
	}
	size_t start = entry->len;
	cs_restore_chunk_init(entry, id, seq);
	uint32_t n = 0;
	int rv = 0;
	while (rv == 0 && r->st.seen < r->st.count && (n == 0 || entry->len - start < max)) {
		rv = state_next(&r->ar.m, &r->st, err, errlen);
		if (rv != 0)
			break;
		cs_buf_reset(&r->val);
		cs_buf_reserve(&r->val, r->st.vlen);
		rv = mread(&r->ar.m, r->val.data, r->st.vlen, CS_SNAPSHOT_STATE, err, errlen);
		if (rv == 0) {
			cs_restore_chunk_add(entry, r->st.key, r->st.klen, r->val.data, r->st.vlen);
			n++;
		}
	}
	if (rv != 0) {
		entry->len = start; /* nothing half-built reaches the caller */
		return rv;
	}
	cs_restore_chunk_finish(entry, n);
	*n_records = n;
	return 0;
}

void cs_snapshot_reader_free(struct cs_snapshot_reader *r)
{
	if (!r)
		return;
	reader_close(&r->ar);
	cs_buf_free(&r->val);
	free(r);
}

/* ---------------------------------------------------------------- inspect */

static void count_prefix(void *ctx, const char *key, size_t klen, size_t vlen)
{
	cJSON *counts = ctx;
	const char *slash = memchr(key, '/', klen);
	size_t n = slash ? (size_t)(slash - key) + 1 : klen;
	char name[MAX_KEY + 2];
	memcpy(name, key, n);
	name[n] = '\0';
	cJSON *c = cJSON_GetObjectItemCaseSensitive(counts, name);
	if (c)
		cJSON_SetNumberValue(c, c->valuedouble + 1);
	else
		cJSON_AddNumberToObject(counts, name, 1);
}

int cs_snapshot_inspect(const char *path, cJSON **meta_out, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, errlen, CS_EIO, "open %s: %s", path, strerror(errno));
	struct cs_snapshot_verified v;
	cJSON *counts = cJSON_CreateObject();
	int rv = cs_snapshot_verify(fd, count_prefix, counts, &v, err, errlen);
	close(fd);
	if (rv != 0) {
		cJSON_Delete(counts);
		return rv;
	}
	cJSON *out = v.meta;
	v.meta = NULL;
	cJSON_DeleteItemFromObjectCaseSensitive(out, "Entries");
	cJSON_AddNumberToObject(out, "Entries", (double)v.entries);
	cJSON_AddNumberToObject(out, "StateSize", (double)v.state_size);
	cJSON_AddNumberToObject(out, "SealedSize", (double)v.sealed_len);
	cJSON_AddItemToObject(out, "KeyCounts", counts);
	cs_snapshot_verified_free(&v);
	*meta_out = out;
	return 0;
}
