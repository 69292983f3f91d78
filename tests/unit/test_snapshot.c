/*
 * Snapshot archives (raft/snapshot.h) and restores through raft (storage/txn.h restore
 * entries): a 10k-entry round trip, every corruption refused, the sealed-sums check,
 * staging carried by raft snapshots, and a real single-node raft applying
 * BEGIN/CHUNK/COMMIT (state replaced, digest advanced, abandoned restores discarded,
 * writes queued behind the COMMIT failed).
 */
#include <archive.h>
#include <archive_entry.h>
#include <check.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"
#include "raft/node.h"
#include "raft/snapshot.h"
#include "tests/unit/fixtures.h"

static char dir[64];

static void setup(void)
{
	cs_fx_tmpdir(dir, sizeof dir, "snap");
}

static void teardown(void)
{
	cs_fx_tmpdir_done(dir);
}

static void open_store(struct cs_store *s, const char *name)
{
	char path[128];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	ck_assert_int_eq(cs_store_open(s, path, 256 << 20), 0);
}

static int tmpfile_fd(void)
{
	char path[128];
	snprintf(path, sizeof path, "%s/tmp-XXXXXX", dir);
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	return fd;
}

/* Apply `n` puts "<prefix>%06d" = "value-<i>-<tag>" at index, in one entry. */
static void apply_keys(struct cs_store *s, uint64_t index, const char *prefix, int first, int n,
		       const char *tag)
{
	struct cs_wsop *ops = calloc((size_t)n, sizeof *ops);
	char(*keys)[48] = calloc((size_t)n, 48), (*vals)[48] = calloc((size_t)n, 48);
	for (int i = 0; i < n; i++) {
		snprintf(keys[i], 48, "%s%06d", prefix, first + i);
		snprintf(vals[i], 48, "value-%d-%s", first + i, tag);
		ops[i] = (struct cs_wsop){CS_WS_PUT, keys[i], strlen(keys[i]), (uint8_t *)vals[i],
					  strlen(vals[i])};
	}
	struct cs_writeset ws = {ops, (size_t)n, (size_t)n};
	struct cs_buf e = CS_BUF_INIT;
	cs_batch_init(&e);
	cs_batch_add(&e, &ws);
	cs_batch_finish(&e, 1);
	ck_assert_int_eq(cs_store_apply(s, index, e.data, e.len), 0);
	cs_buf_free(&e);
	free(ops);
	free(keys);
	free(vals);
}

static int dump_cb(void *ctx, const char *key, size_t klen, const void *val, size_t vlen)
{
	struct cs_buf *b = ctx;
	cs_buf_append(b, key, klen);
	cs_buf_putc(b, '=');
	cs_buf_append(b, val, vlen);
	cs_buf_putc(b, ';');
	return 0;
}

static void dump(struct cs_store *s, struct cs_buf *out)
{
	cs_buf_reset(out);
	ck_assert_int_eq(cs_store_scan(s, "", 0, dump_cb, out), 0);
}

/* ---------------------------------------------------------------- a test seal */

/* AES-256-GCM: nonce(12) | ciphertext | tag(16), AAD = CS_SNAPSHOT_SEAL_AAD. */
struct test_seal {
	uint8_t key[32];
};

static void seal_new(struct test_seal *k)
{
	ck_assert_int_eq(RAND_bytes(k->key, 32), 1);
}

static void seal_encrypt(const struct test_seal *k, const void *pt, size_t n, struct cs_buf *out)
{
	uint8_t nonce[12], tag[16];
	int len = 0;
	ck_assert_int_eq(RAND_bytes(nonce, 12), 1);
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	ck_assert_int_eq(EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, k->key, nonce), 1);
	ck_assert_int_eq(EVP_EncryptUpdate(c, NULL, &len, (const uint8_t *)CS_SNAPSHOT_SEAL_AAD,
					   (int)strlen(CS_SNAPSHOT_SEAL_AAD)),
			 1);
	cs_buf_append(out, nonce, 12);
	cs_buf_reserve(out, n + 16);
	ck_assert_int_eq(EVP_EncryptUpdate(c, (uint8_t *)out->data + out->len, &len, pt, (int)n),
			 1);
	out->len += (size_t)len;
	ck_assert_int_eq(EVP_EncryptFinal_ex(c, NULL, &len), 1);
	ck_assert_int_eq(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag), 1);
	cs_buf_append(out, tag, 16);
	EVP_CIPHER_CTX_free(c);
}

static int seal_decrypt(void *ctx, const void *ct, size_t n, struct cs_buf *out)
{
	const struct test_seal *k = ctx;
	const uint8_t *p = ct;
	if (n < 28)
		return CS_ECRYPTO;
	int len = 0, ok;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	ok = EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, k->key, p) == 1 &&
	     EVP_DecryptUpdate(c, NULL, &len, (const uint8_t *)CS_SNAPSHOT_SEAL_AAD,
			       (int)strlen(CS_SNAPSHOT_SEAL_AAD)) == 1;
	cs_buf_reserve(out, n);
	ok = ok && EVP_DecryptUpdate(c, (uint8_t *)out->data, &len, p + 12, (int)(n - 28)) == 1;
	ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, (void *)(p + n - 16)) == 1;
	int fin = 0;
	ok = ok && EVP_DecryptFinal_ex(c, (uint8_t *)out->data + len, &fin) == 1;
	EVP_CIPHER_CTX_free(c);
	if (!ok)
		return CS_ECRYPTO;
	out->len = (size_t)len;
	return 0;
}

/* Write the whole store as an archive into a new unlinked file; returns its fd. */
static int save_archive(struct cs_store *s, const struct test_seal *k, uint64_t term)
{
	MDB_txn *view;
	uint64_t index;
	ck_assert_int_eq(cs_store_view_begin(s, &view, &index), 0);
	ck_assert_int_eq(atomic_load(&s->views), 1);
	int fd = tmpfile_fd();
	struct cs_snapshot_writer w;
	int rv = cs_snapshot_write_begin(&w, fd, s, view, index, term);
	ck_assert_msg(rv == 0, "%s", w.err);
	cs_store_view_end(s, view);
	ck_assert_int_eq(atomic_load(&s->views), 0);
	struct cs_buf sealed = CS_BUF_INIT;
	seal_encrypt(k, w.sums, w.sums_len, &sealed);
	rv = cs_snapshot_write_end(&w, sealed.data, sealed.len);
	ck_assert_msg(rv == 0, "%s", w.err);
	cs_snapshot_writer_free(&w);
	cs_buf_free(&sealed);
	return fd;
}

/* ---------------------------------------------------------------- archive members */

struct member {
	char name[64];
	struct cs_buf data;
};

/* Read every member of the archive in fd (in order). Returns the count. */
static int unpack(int fd, struct member *m, int max)
{
	struct archive *a = archive_read_new();
	archive_read_support_filter_gzip(a);
	archive_read_support_format_tar(a);
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	int dupfd = dup(fd);
	ck_assert_int_eq(archive_read_open_fd(a, dupfd, 65536), ARCHIVE_OK);
	struct archive_entry *e;
	int n = 0;
	while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		ck_assert_int_lt(n, max);
		snprintf(m[n].name, sizeof m[n].name, "%s", archive_entry_pathname(e));
		memset(&m[n].data, 0, sizeof m[n].data);
		char buf[65536];
		la_ssize_t k;
		while ((k = archive_read_data(a, buf, sizeof buf)) > 0)
			cs_buf_append(&m[n].data, buf, (size_t)k);
		ck_assert_int_eq(k, 0);
		n++;
	}
	ck_assert_int_eq(archive_filter_code(a, 0), ARCHIVE_FILTER_GZIP);
	archive_read_free(a);
	close(dupfd);
	return n;
}

/* Pack members into a new file (gzip'd tar unless plain), returns its fd. */
static int pack(const struct member *m, int n, bool gzip)
{
	int fd = tmpfile_fd();
	struct archive *a = archive_write_new();
	if (gzip)
		archive_write_add_filter_gzip(a);
	archive_write_set_format_pax_restricted(a);
	ck_assert_int_eq(archive_write_open_fd(a, fd), ARCHIVE_OK);
	for (int i = 0; i < n; i++) {
		struct archive_entry *e = archive_entry_new();
		archive_entry_set_pathname(e, m[i].name);
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0600);
		archive_entry_set_size(e, (la_int64_t)m[i].data.len);
		ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
		if (m[i].data.len)
			ck_assert_int_eq(archive_write_data(a, m[i].data.data, m[i].data.len),
					 (la_ssize_t)m[i].data.len);
		archive_entry_free(e);
	}
	ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	return fd;
}

static void members_free(struct member *m, int n)
{
	for (int i = 0; i < n; i++)
		cs_buf_free(&m[i].data);
}

static void copy_members(struct member *dst, const struct member *src, int n)
{
	for (int i = 0; i < n; i++) {
		memcpy(dst[i].name, src[i].name, sizeof dst[i].name);
		memset(&dst[i].data, 0, sizeof dst[i].data);
		cs_buf_append(&dst[i].data, src[i].data.data, src[i].data.len);
	}
}

/* Verification must fail with a message containing `want`. */
static void expect_refused(int fd, const char *want)
{
	struct cs_snapshot_verified v;
	char err[256] = "";
	int rv = cs_snapshot_verify(fd, NULL, NULL, &v, err, sizeof err);
	ck_assert_msg(rv == CS_EINVAL, "accepted (wanted \"%s\")", want);
	ck_assert_msg(strstr(err, want), "error \"%s\" lacks \"%s\"", err, want);
	ck_assert_ptr_null(v.meta);
	close(fd);
}

/* ---------------------------------------------------------------- round trip */

/* A restore driven by hand on a store, as every raft node applies it. */
static uint64_t restore_into(struct cs_store *s, uint64_t index, int fd,
			     const struct cs_snapshot_verified *v, const uint8_t id[16])
{
	struct cs_buf e = CS_BUF_INIT;
	char err[256];
	cs_restore_begin_entry(&e, id);
	ck_assert_int_eq(cs_store_apply(s, index++, e.data, e.len), 0);
	struct cs_snapshot_reader *r;
	ck_assert_int_eq(cs_snapshot_reader_open(fd, v, &r, err, sizeof err), 0);
	uint64_t seq = 0, records = 0;
	for (;;) {
		uint32_t n;
		bool eof;
		cs_buf_reset(&e);
		int rv = cs_snapshot_reader_chunk(r, id, seq, 4096, &e, &n, &eof, err, sizeof err);
		ck_assert_msg(rv == 0, "%s", err);
		if (eof)
			break;
		ck_assert_uint_gt(n, 0);
		ck_assert_int_eq(cs_store_apply(s, index++, e.data, e.len), 0);
		seq++;
		records += n;
	}
	cs_snapshot_reader_free(r);
	ck_assert_uint_eq(records, v->entries);
	cs_buf_reset(&e);
	cs_restore_commit_entry(&e, id, seq, records);
	ck_assert_int_eq(cs_store_apply(s, index++, e.data, e.len), 0);
	cs_buf_free(&e);
	return index;
}

START_TEST(test_roundtrip_10k)
{
	struct cs_store a, b;
	struct test_seal k;
	seal_new(&k);
	open_store(&a, "a");
	for (int i = 0; i < 10; i++)
		apply_keys(&a, (uint64_t)i + 1, i < 5 ? "logical/x/" : "core/y/", i * 1000, 1000,
			   "a");
	int fd = save_archive(&a, &k, 7);

	/* The four members, in Vault's order, and a listing the vault CLI accepts. */
	struct member m[8];
	int n = unpack(fd, m, 8);
	ck_assert_int_eq(n, 4);
	ck_assert_str_eq(m[0].name, "meta.json");
	ck_assert_str_eq(m[1].name, "state.bin");
	ck_assert_str_eq(m[2].name, "SHA256SUMS");
	ck_assert_str_eq(m[3].name, "SHA256SUMS.sealed");
	ck_assert_uint_gt(m[3].data.len, 0);
	ck_assert_mem_eq(m[1].data.data, "CSSB", 4);
	cJSON *meta = cJSON_Parse(m[0].data.data);
	ck_assert_int_eq(cJSON_GetObjectItem(meta, "Version")->valueint, 1);
	ck_assert_int_eq(cJSON_GetObjectItem(meta, "Index")->valueint, 10);
	ck_assert_int_eq(cJSON_GetObjectItem(meta, "Term")->valueint, 7);
	ck_assert_int_eq(cJSON_GetObjectItem(meta, "Entries")->valueint, 10000);
	ck_assert_uint_eq((uint64_t)cJSON_GetObjectItem(meta, "Size")->valuedouble, m[1].data.len);
	ck_assert_ptr_nonnull(strstr(cJSON_GetObjectItem(meta, "ID")->valuestring, "7-10-"));
	cJSON_Delete(meta);
	/* SHA256SUMS is sha256sum(1)'s format. */
	uint8_t sha[32];
	char hex[65], line[160];
	EVP_Digest(m[1].data.data, m[1].data.len, sha, NULL, EVP_sha256(), NULL);
	cs_hex_encode(sha, 32, hex);
	snprintf(line, sizeof line, "%s  state.bin\n", hex);
	ck_assert_ptr_nonnull(strstr(m[2].data.data, line));
	members_free(m, n);

	struct cs_snapshot_verified v;
	char err[256];
	int rv = cs_snapshot_verify(fd, NULL, NULL, &v, err, sizeof err);
	ck_assert_msg(rv == 0, "%s", err);
	ck_assert_uint_eq(v.entries, 10000);
	ck_assert_int_eq(cs_snapshot_check_sealed(&v, seal_decrypt, &k, err, sizeof err), 0);

	/* Restored into a store with other contents: exactly a's data afterwards. */
	open_store(&b, "b");
	apply_keys(&b, 1, "other/", 0, 50, "b");
	apply_keys(&b, 2, "logical/x/", 0, 50, "b"); /* overlapping keys, other values */
	uint8_t digest_before[CS_DIGEST_LEN];
	memcpy(digest_before, b.digest, sizeof digest_before);
	uint8_t id[16] = {1, 2, 3};
	uint64_t next = restore_into(&b, 3, fd, &v, id);
	struct cs_buf da = CS_BUF_INIT, db = CS_BUF_INIT;
	dump(&a, &da);
	dump(&b, &db);
	ck_assert_uint_eq(da.len, db.len);
	ck_assert(memcmp(da.data, db.data, da.len) == 0);
	ck_assert_uint_eq(b.applied_index, next - 1);
	ck_assert_mem_ne(b.digest, digest_before, CS_DIGEST_LEN);
	ck_assert_uint_eq(b.restores_applied, 1);
	ck_assert_mem_eq(b.last_restore_id, id, 16);
	cs_buf_free(&da);
	cs_buf_free(&db);
	cs_snapshot_verified_free(&v);
	close(fd);
	cs_store_close(&a);
	cs_store_close(&b);
}
END_TEST

START_TEST(test_inspect)
{
	struct cs_store a;
	struct test_seal k;
	seal_new(&k);
	open_store(&a, "a");
	apply_keys(&a, 1, "core/", 0, 3, "a");
	apply_keys(&a, 2, "logical/u/", 0, 5, "a");
	int fd = save_archive(&a, &k, 2);
	char path[128], err[256];
	snprintf(path, sizeof path, "%s/snap.tar.gz", dir);
	int out = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	char buf[65536];
	ssize_t n;
	off_t off = 0;
	while ((n = pread(fd, buf, sizeof buf, off)) > 0) {
		ck_assert_int_eq(write(out, buf, (size_t)n), n);
		off += n;
	}
	close(out);
	close(fd);
	cJSON *j = NULL;
	ck_assert_int_eq(cs_snapshot_inspect(path, &j, err, sizeof err), 0);
	ck_assert_int_eq(cJSON_GetObjectItem(j, "Entries")->valueint, 8);
	ck_assert_int_eq(cJSON_GetObjectItem(j, "Index")->valueint, 2);
	cJSON *kc = cJSON_GetObjectItem(j, "KeyCounts");
	ck_assert_int_eq(cJSON_GetObjectItem(kc, "core/")->valueint, 3);
	ck_assert_int_eq(cJSON_GetObjectItem(kc, "logical/")->valueint, 5);
	ck_assert_int_gt(cJSON_GetObjectItem(j, "SealedSize")->valueint, 0);
	cJSON_Delete(j);
	snprintf(path, sizeof path, "%s/missing", dir);
	ck_assert_int_eq(cs_snapshot_inspect(path, &j, err, sizeof err), CS_EIO);
	cs_store_close(&a);
}
END_TEST

/* ---------------------------------------------------------------- corruption */

START_TEST(test_corruptions_refused)
{
	struct cs_store a;
	struct test_seal k, other;
	seal_new(&k);
	seal_new(&other);
	open_store(&a, "a");
	apply_keys(&a, 1, "kv/", 0, 2000, "a");
	int fd = save_archive(&a, &k, 1);
	struct member good[4], m[5];
	ck_assert_int_eq(unpack(fd, good, 4), 4);
	struct stat sb;
	ck_assert_int_eq(fstat(fd, &sb), 0);

	/* Repacking the good members is accepted (the helpers are sound). */
	copy_members(m, good, 4);
	int f = pack(m, 4, true);
	struct cs_snapshot_verified v;
	char err[256];
	ck_assert_int_eq(cs_snapshot_verify(f, NULL, NULL, &v, err, sizeof err), 0);
	cs_snapshot_verified_free(&v);
	close(f);
	members_free(m, 4);

	/* Truncated gzip: half the file, and the last bytes only. */
	char *buf = malloc((size_t)sb.st_size);
	ck_assert_int_eq(pread(fd, buf, (size_t)sb.st_size, 0), sb.st_size);
	f = tmpfile_fd();
	ck_assert_int_eq(write(f, buf, (size_t)sb.st_size / 2), sb.st_size / 2);
	expect_refused(f, "snapshot");
	/* A flipped byte inside the compressed stream. */
	buf[sb.st_size / 3] ^= 0x55;
	f = tmpfile_fd();
	ck_assert_int_eq(write(f, buf, (size_t)sb.st_size), sb.st_size);
	expect_refused(f, "snapshot");
	free(buf);
	/* Not an archive at all; empty. */
	f = tmpfile_fd();
	ck_assert_int_eq(write(f, "hello, this is not gzip", 23), 23);
	expect_refused(f, "snapshot");
	expect_refused(tmpfile_fd(), "snapshot");

	/* A flipped byte in state.bin (same length, sums unchanged). */
	copy_members(m, good, 4);
	m[1].data.data[m[1].data.len - 3] ^= 1;
	expect_refused(pack(m, 4, true), "state.bin does not match SHA256SUMS");
	members_free(m, 4);
	/* ... and in meta.json. */
	copy_members(m, good, 4);
	m[0].data.data[2] ^= 0x20;
	expect_refused(pack(m, 4, true), "meta.json does not match SHA256SUMS");
	members_free(m, 4);

	/* Every member missing in turn. */
	static const char *missing[4] = {"meta.json is missing", "state.bin is missing",
					 "SHA256SUMS is missing",
					 "unable to read SHA256SUMS.sealed"};
	for (int drop = 0; drop < 4; drop++) {
		struct member l[3];
		int n = 0;
		for (int i = 0; i < 4; i++)
			if (i != drop)
				copy_members(&l[n++], &good[i], 1);
		expect_refused(pack(l, 3, true), missing[drop]);
		members_free(l, 3);
	}

	/* Wrong SHA256SUMS: a digit changed; a line missing; garbage. */
	copy_members(m, good, 4);
	m[2].data.data[80] = m[2].data.data[80] == 'a' ? 'b' : 'a';
	expect_refused(pack(m, 4, true), "does not match SHA256SUMS");
	members_free(m, 4);
	copy_members(m, good, 4);
	m[2].data.len = (size_t)(strchr(m[2].data.data, '\n') - m[2].data.data) + 1;
	expect_refused(pack(m, 4, true), "SHA256SUMS is incomplete");
	members_free(m, 4);
	copy_members(m, good, 4);
	cs_buf_reset(&m[2].data);
	cs_buf_puts(&m[2].data, "nonsense\n");
	expect_refused(pack(m, 4, true), "SHA256SUMS is malformed");
	members_free(m, 4);

	/* Empty sealed member, an extra member, a duplicate, plain tar. */
	copy_members(m, good, 4);
	cs_buf_reset(&m[3].data);
	expect_refused(pack(m, 4, true), "unable to read SHA256SUMS.sealed");
	members_free(m, 4);
	copy_members(m, good, 4);
	copy_members(&m[4], &good[0], 1);
	snprintf(m[4].name, sizeof m[4].name, "extra.txt");
	expect_refused(pack(m, 5, true), "unexpected file");
	members_free(m, 5);
	copy_members(m, good, 4);
	copy_members(&m[4], &good[2], 1);
	expect_refused(pack(m, 5, true), "two SHA256SUMS");
	members_free(m, 5);
	copy_members(m, good, 4);
	expect_refused(pack(m, 4, false), "not gzip");
	members_free(m, 4);

	/* state.bin shorter than it claims, with matching sums: structure is checked too. */
	copy_members(m, good, 4);
	m[1].data.len -= 5;
	uint8_t sha[32];
	char hex[65];
	EVP_Digest(m[1].data.data, m[1].data.len, sha, NULL, EVP_sha256(), NULL);
	cs_hex_encode(sha, 32, hex);
	memcpy(strchr(m[2].data.data, '\n') + 1, hex, 64);
	expect_refused(pack(m, 4, true), "state.bin is truncated");
	members_free(m, 4);

	/* Sums sealed by another key: the archive verifies, the seal check does not. */
	ck_assert_int_eq(cs_snapshot_verify(fd, NULL, NULL, &v, err, sizeof err), 0);
	ck_assert_int_eq(cs_snapshot_check_sealed(&v, seal_decrypt, &other, err, sizeof err),
			 CS_EINVAL);
	ck_assert_str_eq(err, CS_SNAPSHOT_SEAL_MISMATCH);
	ck_assert_int_eq(cs_snapshot_check_sealed(&v, seal_decrypt, &k, err, sizeof err), 0);
	cs_snapshot_verified_free(&v);
	/* Sealed by the right key but over other sums. */
	copy_members(m, good, 4);
	cs_buf_reset(&m[3].data);
	seal_encrypt(&k, "something else\n", 15, &m[3].data);
	f = pack(m, 4, true);
	ck_assert_int_eq(cs_snapshot_verify(f, NULL, NULL, &v, err, sizeof err), 0);
	ck_assert_int_eq(cs_snapshot_check_sealed(&v, seal_decrypt, &k, err, sizeof err),
			 CS_EINVAL);
	cs_snapshot_verified_free(&v);
	close(f);
	members_free(m, 4);

	members_free(good, 4);
	close(fd);
	cs_store_close(&a);
}
END_TEST

/* ---------------------------------------------------------------- restore entries */

static void apply_raw(struct cs_store *s, uint64_t index, struct cs_buf *e)
{
	ck_assert_int_eq(cs_store_apply(s, index, e->data, e->len), 0);
	cs_buf_reset(e);
}

static void chunk(struct cs_buf *e, const uint8_t id[16], uint64_t seq, const char *k,
		  const char *v)
{
	cs_restore_chunk_init(e, id, seq);
	cs_restore_chunk_add(e, k, strlen(k), v, strlen(v));
	cs_restore_chunk_finish(e, 1);
}

/* Stale chunks, abandoned restores and bad counts never change the data. */
START_TEST(test_restore_entries_rules)
{
	struct cs_store s;
	struct cs_buf e = CS_BUF_INIT, d = CS_BUF_INIT;
	uint8_t id1[16] = {1}, id2[16] = {2};
	open_store(&s, "a");
	apply_keys(&s, 1, "old/", 0, 3, "x");

	/* BEGIN(1) + a chunk, abandoned; BEGIN(2) discards it. */
	cs_restore_begin_entry(&e, id1);
	apply_raw(&s, 2, &e);
	chunk(&e, id1, 0, "from/one", "1");
	apply_raw(&s, 3, &e);
	cs_restore_begin_entry(&e, id2);
	apply_raw(&s, 4, &e);
	chunk(&e, id1, 1, "from/one/late", "1"); /* a chunk of the abandoned restore */
	apply_raw(&s, 5, &e);
	chunk(&e, id2, 0, "from/two", "2");
	apply_raw(&s, 6, &e);
	chunk(&e, id2, 5, "out/of/order", "2"); /* wrong seq: ignored */
	apply_raw(&s, 7, &e);
	cs_restore_commit_entry(&e, id1, 1, 1); /* not the staged restore: no-op */
	apply_raw(&s, 8, &e);
	dump(&s, &d);
	ck_assert_str_eq(d.data, "old/000000=value-0-x;old/000001=value-1-x;old/000002=value-2-x;");
	ck_assert_uint_eq(s.restores_applied, 0);
	cs_restore_commit_entry(&e, id2, 1, 1);
	apply_raw(&s, 9, &e);
	dump(&s, &d);
	ck_assert_str_eq(d.data, "from/two=2;");
	ck_assert_uint_eq(s.restores_applied, 1);
	ck_assert_uint_eq(s.applied_index, 9);
	/* The same COMMIT again (nothing staged any more): no-op. */
	cs_restore_commit_entry(&e, id2, 1, 1);
	apply_raw(&s, 10, &e);
	ck_assert_uint_eq(s.restores_applied, 1);

	/* Counts that disagree drop the staging and change nothing. */
	cs_restore_begin_entry(&e, id1);
	apply_raw(&s, 11, &e);
	chunk(&e, id1, 0, "x", "y");
	apply_raw(&s, 12, &e);
	cs_restore_commit_entry(&e, id1, 2, 2);
	apply_raw(&s, 13, &e);
	cs_restore_commit_entry(&e, id1, 1, 1); /* too late: the staging is gone */
	apply_raw(&s, 14, &e);
	dump(&s, &d);
	ck_assert_str_eq(d.data, "from/two=2;");

	/* A malformed chunk (key too long) is a no-op; so is a truncated entry. */
	cs_restore_begin_entry(&e, id2);
	apply_raw(&s, 15, &e);
	char longkey[600];
	memset(longkey, 'k', sizeof longkey - 1);
	longkey[sizeof longkey - 1] = '\0';
	chunk(&e, id2, 0, longkey, "v");
	apply_raw(&s, 16, &e);
	chunk(&e, id2, 0, "ok", "v");
	e.len -= 2;
	apply_raw(&s, 17, &e);
	cs_restore_commit_entry(&e, id2, 1, 1);
	apply_raw(&s, 18, &e);
	dump(&s, &d);
	ck_assert_str_eq(d.data, "from/two=2;");
	ck_assert_uint_eq(s.applied_index, 18);
	/* Type 1 still decodes as before. */
	apply_keys(&s, 19, "new/", 0, 1, "z");
	dump(&s, &d);
	ck_assert_str_eq(d.data, "from/two=2;new/000000=value-0-z;");
	ck_assert_int_eq(cs_entry_type(e.data, 0), 0);
	cs_buf_free(&e);
	cs_buf_free(&d);
	cs_store_close(&s);
}
END_TEST

/* A raft snapshot taken mid-restore carries the staging: a node installing it then
 * applies the COMMIT exactly as the others do. */
START_TEST(test_raft_snapshot_carries_staging)
{
	struct cs_store a, b, c;
	struct cs_buf e = CS_BUF_INIT, snap = CS_BUF_INIT, da = CS_BUF_INIT, db = CS_BUF_INIT;
	uint8_t id[16] = {9};
	open_store(&a, "a");
	open_store(&b, "b");
	open_store(&c, "c");
	apply_keys(&a, 1, "live/", 0, 10, "a");
	cs_restore_begin_entry(&e, id);
	apply_raw(&a, 2, &e);
	chunk(&e, id, 0, "restored/1", "r1");
	apply_raw(&a, 3, &e);

	ck_assert_int_eq(cs_store_snapshot_begin(&a, 3), 0);
	ck_assert_int_eq(cs_store_snapshot_encode(&a, &snap), 0);
	cs_store_snapshot_end(&a);
	ck_assert_uint_eq(((uint8_t *)snap.data)[4], 2); /* format 2: staging inside */
	/* b had staged something else: the snapshot's staging replaces it. */
	cs_restore_begin_entry(&e, (uint8_t[16]){7});
	apply_raw(&b, 1, &e);
	ck_assert_int_eq(cs_store_restore(&b, snap.data, snap.len), 0);

	chunk(&e, id, 1, "restored/2", "r2");
	struct cs_buf e2 = CS_BUF_INIT;
	cs_buf_append(&e2, e.data, e.len);
	apply_raw(&a, 4, &e);
	apply_raw(&b, 4, &e2);
	cs_restore_commit_entry(&e, id, 2, 2);
	cs_buf_reset(&e2);
	cs_buf_append(&e2, e.data, e.len);
	apply_raw(&a, 5, &e);
	apply_raw(&b, 5, &e2);
	dump(&a, &da);
	dump(&b, &db);
	ck_assert_str_eq(da.data, "restored/1=r1;restored/2=r2;");
	ck_assert_str_eq(db.data, da.data);
	ck_assert_mem_eq(a.digest, b.digest, CS_DIGEST_LEN);

	/* No restore staged: format 1 as before, and it clears a stale local staging. */
	cs_buf_reset(&snap);
	ck_assert_int_eq(cs_store_snapshot_begin(&a, 5), 0);
	ck_assert_int_eq(cs_store_snapshot_encode(&a, &snap), 0);
	cs_store_snapshot_end(&a);
	ck_assert_uint_eq(((uint8_t *)snap.data)[4], 1);
	cs_restore_begin_entry(&e, id);
	apply_raw(&c, 1, &e);
	chunk(&e, id, 0, "stale", "s");
	apply_raw(&c, 2, &e);
	ck_assert_int_eq(cs_store_restore(&c, snap.data, snap.len), 0);
	cs_restore_commit_entry(&e, id, 1, 1); /* would swap "stale" in if it were kept */
	apply_raw(&c, 6, &e);
	dump(&c, &db);
	ck_assert_str_eq(db.data, da.data);
	cs_buf_free(&e);
	cs_buf_free(&e2);
	cs_buf_free(&snap);
	cs_buf_free(&da);
	cs_buf_free(&db);
	cs_store_close(&a);
	cs_store_close(&b);
	cs_store_close(&c);
}
END_TEST

/* ---------------------------------------------------------------- real raft */

struct harness {
	uv_loop_t loop;
	struct cs_storage st;
	struct cs_raft_node node;
	bool active, closed;
	int restored_calls;
	int ok, failed, outstanding, busy;
};

static void on_active(void *ctx, bool active)
{
	struct harness *h = ctx;
	h->active = active;
}

static void on_closed(struct cs_raft_node *n)
{
	struct harness *h = CS_CONTAINER_OF(n, struct harness, node);
	h->closed = true;
}

static void on_restore(void *ctx)
{
	struct harness *h = ctx;
	h->restored_calls++;
	/* The overlay is already gone: a read sees the restored data. */
	ck_assert_uint_eq(cs_storage_pending(&h->st), (size_t)h->outstanding);
}

static void run_outstanding(struct harness *h)
{
	uint64_t deadline = cs_mono_ms() + 10000;
	while (h->outstanding > 0 && cs_mono_ms() < deadline)
		uv_run(&h->loop, UV_RUN_ONCE);
	ck_assert_int_eq(h->outstanding, 0);
}

static void start_node(struct harness *h)
{
	char fsm[128];
	snprintf(fsm, sizeof fsm, "%s/node/fsm", dir);
	char rdir[128];
	snprintf(rdir, sizeof rdir, "%s/node", dir);
	ck_assert_int_eq(cs_storage_open(&h->st, fsm, 256 << 20), 0);
	h->st.on_restore = on_restore;
	h->st.restore_ctx = h;
	int rv =
	    cs_raft_node_init(&h->node, &h->loop, &h->st, rdir, 1, "127.0.0.1:8201", on_active, h);
	ck_assert_msg(rv == 0, "%s", h->node.errmsg);
	if (!cs_raft_node_has_state(&h->node))
		ck_assert_int_eq(cs_raft_node_bootstrap(&h->node), 0);
	ck_assert_int_eq(cs_raft_node_start(&h->node), 0);
	ck_assert_msg(cs_fx_run_until(&h->loop, &h->active, 10000), "node never became active");
}

static void stop_node(struct harness *h)
{
	h->closed = false;
	cs_raft_node_close(&h->node, on_closed);
	ck_assert(cs_fx_run_until(&h->loop, &h->closed, 10000));
	cs_storage_close(&h->st);
	h->active = false;
}

static void commit_cb(void *data, int status)
{
	struct harness *h = data;
	h->outstanding--;
	if (status == 0)
		h->ok++;
	else if (status == CS_EBUSY)
		h->busy++;
	else
		h->failed++;
}

static void put(struct harness *h, const char *k, const char *v)
{
	struct cs_txn t;
	bool pending;
	cs_txn_begin(&t, &h->st, NULL);
	ck_assert_int_eq(cs_txn_put_raw(&t, k, v, strlen(v)), 0);
	ck_assert_int_eq(cs_txn_commit(&t, commit_cb, h, &pending), 0);
	ck_assert(pending);
	h->outstanding++;
}

static void propose(struct harness *h, struct cs_buf *e)
{
	ck_assert_int_eq(cs_storage_propose_raw(&h->st, e->data, e->len, commit_cb, h), 0);
	h->outstanding++;
	cs_buf_reset(e);
}

/* Propose a whole restore from an archive; chunk entries pipelined with writes. */
static void propose_restore(struct harness *h, int fd, const struct cs_snapshot_verified *v,
			    const uint8_t id[16])
{
	struct cs_buf e = CS_BUF_INIT;
	char err[256];
	struct cs_snapshot_reader *r;
	cs_restore_begin_entry(&e, id);
	propose(h, &e);
	ck_assert_int_eq(cs_snapshot_reader_open(fd, v, &r, err, sizeof err), 0);
	uint64_t seq = 0, records = 0;
	for (;;) {
		uint32_t n;
		bool eof;
		ck_assert_int_eq(
		    cs_snapshot_reader_chunk(r, id, seq, 1024, &e, &n, &eof, err, sizeof err), 0);
		if (eof)
			break;
		propose(h, &e);
		seq++;
		records += n;
		/* Normal writes interleave: the restore replaces them too. */
		put(h, "during/restore", "lost");
		run_outstanding(h);
	}
	cs_snapshot_reader_free(r);
	cs_restore_commit_entry(&e, id, seq, records);
	propose(h, &e);
	cs_buf_free(&e);
}

START_TEST(test_restore_through_raft)
{
	struct harness *h = calloc(1, sizeof *h);
	struct test_seal k;
	seal_new(&k);
	ck_assert_int_eq(uv_loop_init(&h->loop), 0);
	start_node(h);
	char key[32], val[32];
	for (int i = 0; i < 300; i++) {
		snprintf(key, sizeof key, "kv/%04d", i);
		snprintf(val, sizeof val, "v%d", i);
		put(h, key, val);
	}
	run_outstanding(h);
	struct cs_buf snapdump = CS_BUF_INIT, now = CS_BUF_INIT;
	dump(&h->st.store, &snapdump);
	int fd = save_archive(&h->st.store, &k, 1);
	struct cs_snapshot_verified v;
	char err[256];
	ck_assert_int_eq(cs_snapshot_verify(fd, NULL, NULL, &v, err, sizeof err), 0);

	/* More writes after the snapshot; an abandoned restore (BEGIN + a chunk). */
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof key, "kv/%04d", i);
		put(h, key, "changed");
		snprintf(key, sizeof key, "after/%04d", i);
		put(h, key, "new");
	}
	uint8_t abandoned[16] = {0xab}, id[16] = {0xcd};
	struct cs_buf e = CS_BUF_INIT;
	cs_restore_begin_entry(&e, abandoned);
	propose(h, &e);
	chunk(&e, abandoned, 0, "abandoned/key", "x");
	propose(h, &e);
	run_outstanding(h);
	uint64_t applied_before = h->st.store.applied_index;
	uint8_t digest_before[CS_DIGEST_LEN];
	memcpy(digest_before, h->st.store.digest, sizeof digest_before);

	h->ok = h->failed = h->busy = 0;
	propose_restore(h, fd, &v, id);
	/* Queued behind the exclusive COMMIT: computed from the replaced state, fails. */
	put(h, "behind/commit", "x");
	ck_assert(h->st.exclusive_flying);
	run_outstanding(h);
	ck_assert_int_eq(h->failed, 0);
	ck_assert_int_eq(h->busy, 1);
	ck_assert_int_eq(h->restored_calls, 1);
	ck_assert_uint_eq(h->st.store.restores_applied, 1);
	ck_assert_mem_eq(h->st.store.last_restore_id, id, 16);
	ck_assert_uint_gt(h->st.store.applied_index, applied_before);
	ck_assert_mem_ne(h->st.store.digest, digest_before, CS_DIGEST_LEN);
	dump(&h->st.store, &now);
	ck_assert_str_eq(now.data, snapdump.data);

	/* Reads through a txn see the restored state; writes go on normally. */
	struct cs_txn t;
	struct cs_buf b = CS_BUF_INIT;
	cs_txn_begin(&t, &h->st, NULL);
	ck_assert_int_eq(cs_txn_get_raw(&t, "kv/0001", &b), 0);
	ck_assert_str_eq(b.data, "v1");
	ck_assert_int_eq(cs_txn_get_raw(&t, "after/0001", &b), CS_ENOTFOUND);
	cs_txn_abort(&t);
	cs_buf_free(&b);
	put(h, "post/restore", "ok");
	run_outstanding(h);

	/* Restart: the log replays over LMDB (skipped), same state and digest. */
	uint8_t digest_after[CS_DIGEST_LEN];
	memcpy(digest_after, h->st.store.digest, sizeof digest_after);
	dump(&h->st.store, &snapdump);
	stop_node(h);
	start_node(h);
	dump(&h->st.store, &now);
	ck_assert_str_eq(now.data, snapdump.data);
	ck_assert_mem_eq(h->st.store.digest, digest_after, CS_DIGEST_LEN);
	stop_node(h);

	cs_buf_free(&e);
	cs_buf_free(&snapdump);
	cs_buf_free(&now);
	cs_snapshot_verified_free(&v);
	close(fd);
	uv_run(&h->loop, UV_RUN_NOWAIT);
	ck_assert_int_eq(uv_loop_close(&h->loop), 0);
	free(h);
}
END_TEST

/* Rebuilding a wiped LMDB from the raft log replays the whole restore identically. */
START_TEST(test_restore_replay_from_log)
{
	struct harness *h = calloc(1, sizeof *h);
	struct test_seal k;
	seal_new(&k);
	ck_assert_int_eq(uv_loop_init(&h->loop), 0);
	start_node(h);
	put(h, "a", "1");
	put(h, "b", "2");
	run_outstanding(h);
	int fd = save_archive(&h->st.store, &k, 1);
	struct cs_snapshot_verified v;
	char err[256];
	ck_assert_int_eq(cs_snapshot_verify(fd, NULL, NULL, &v, err, sizeof err), 0);
	put(h, "c", "3");
	run_outstanding(h);
	uint8_t id[16] = {5};
	propose_restore(h, fd, &v, id);
	run_outstanding(h);
	struct cs_buf before = CS_BUF_INIT, after = CS_BUF_INIT;
	dump(&h->st.store, &before);
	ck_assert_str_eq(before.data, "a=1;b=2;");
	uint8_t digest[CS_DIGEST_LEN];
	memcpy(digest, h->st.store.digest, sizeof digest);
	stop_node(h);

	char cmd[160];
	snprintf(cmd, sizeof cmd, "rm -rf %s/node/fsm", dir);
	ck_assert_int_eq(system(cmd), 0);
	h->restored_calls = 0;
	start_node(h);
	dump(&h->st.store, &after);
	ck_assert_str_eq(after.data, before.data);
	ck_assert_mem_eq(h->st.store.digest, digest, CS_DIGEST_LEN);
	ck_assert_int_eq(h->restored_calls, 1);
	stop_node(h);
	cs_buf_free(&before);
	cs_buf_free(&after);
	cs_snapshot_verified_free(&v);
	close(fd);
	uv_run(&h->loop, UV_RUN_NOWAIT);
	ck_assert_int_eq(uv_loop_close(&h->loop), 0);
	free(h);
}
END_TEST

static Suite *snapshot_suite(void)
{
	Suite *s = suite_create("snapshot");
	TCase *tc = tcase_create("archive");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_roundtrip_10k);
	tcase_add_test(tc, test_inspect);
	tcase_add_test(tc, test_corruptions_refused);
	tcase_add_test(tc, test_restore_entries_rules);
	tcase_add_test(tc, test_raft_snapshot_carries_staging);
	suite_add_tcase(s, tc);
	tc = tcase_create("raft");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_restore_through_raft);
	tcase_add_test(tc, test_restore_replay_from_log);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	setenv("UV_THREADPOOL_SIZE", "16", 1);
	cs_log_set_level(CS_LOG_WARN);
	SRunner *sr = srunner_create(snapshot_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
