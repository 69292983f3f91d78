/*
 * sys/storage/raft/snapshot[-force] (contract, happy paths and failure modes in
 * snapshot_sys.h).
 *
 * Both operations outlive their handler: the handler takes the HTTP request away from the
 * core (req->http = NULL, as forwarding does: the core then answers nothing and frees its
 * request once the handler's transaction is done) and answers it itself later, from
 * worker completions and commit callbacks on the loop thread.
 *
 * A worker is one thread per step (uv_thread_create) that reports back through the
 * operation's uv_async_t; the loop joins it and runs the step's after-function. An
 * operation is freed only in its async handle's close callback, once no worker runs and
 * no proposal is in flight (an object dies in its last close callback, and only there).
 */
#include "server/snapshot_sys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"
#include "raft/snapshot.h"
#include "server/core.h"
#include "server/ha.h"
#include "server/http.h"
#include "server/response.h"
#include "server/seal.h"
#include "server/spool.h"
#include "server/sys.h"

#define STREAM_READ          ((size_t)256 << 10) /* file bytes per cs_http_stream_write */
#define MAX_RESTORE_INFLIGHT 2                   /* restore entries proposed, not yet applied */

/* ---------------------------------------------------------------- worker steps */

struct job {
	uv_async_t async;
	uv_thread_t thread;
	bool running;
	void (*work)(struct job *j);
	void (*after)(struct job *j);
	void (*release)(struct job *j); /* frees the operation (close callback) */
};

static void job_main(void *arg)
{
	struct job *j = arg;
	j->work(j);
	uv_async_send(&j->async);
}

static void job_async_cb(uv_async_t *a)
{
	struct job *j = CS_CONTAINER_OF(a, struct job, async);
	if (!j->running)
		return; /* a coalesced wake-up */
	uv_thread_join(&j->thread);
	j->running = false;
	j->after(j);
}

static int job_init(struct job *j, uv_loop_t *loop, void (*release)(struct job *))
{
	j->release = release;
	return uv_async_init(loop, &j->async, job_async_cb) == 0 ? 0 : CS_EINTERNAL;
}

/* Run work on a new thread, then after on the loop. Non-zero: nothing started. */
static int job_start(struct job *j, void (*work)(struct job *), void (*after)(struct job *))
{
	j->work = work;
	j->after = after;
	j->running = true;
	if (uv_thread_create(&j->thread, job_main, j) != 0) {
		j->running = false;
		return CS_EINTERNAL;
	}
	return 0;
}

static void job_closed(uv_handle_t *h)
{
	struct job *j = CS_CONTAINER_OF((uv_async_t *)h, struct job, async);
	j->release(j);
}

static void job_close(struct job *j)
{
	uv_close((uv_handle_t *)&j->async, job_closed);
}

/* ---------------------------------------------------------------- helpers */

static void respond_error(struct cs_http_req *h, int status, const char *msg)
{
	size_t len;
	char *body = cs_response_errors(msg, &len);
	cs_http_respond_json(h, status, body, len);
	free(body);
}

/* An unlinked file in the spool dir: disk, not memory, and gone when closed. */
static int temp_file(const char *dirpath, char *err, size_t errlen)
{
	int fd = open(dirpath, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	char path[4300];
	snprintf(path, sizeof path, "%s/.snapshot-XXXXXX", dirpath);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "creating a temporary file in %.160s: %s", dirpath,
			 strerror(errno));
		return -1;
	}
	unlink(path);
	return fd;
}

/* The handler keeps the HTTP request; the core answers nothing for it. */
static struct cs_http_req *take_http(struct cs_request *req, int status)
{
	struct cs_http_req *h = req->http;
	req->http = NULL;
	req->status = status; /* what the audit log records for this request */
	return h;
}

static bool core_gone(struct cs_core *core)
{
	return core->shutting_down;
}

/* Where snapshots are written and uploads spooled (cs_snapshot_register). */
static char spool_path[4200];
static int spool_reserve;

/* ================================================================ save */

struct save_op {
	struct job job;
	struct cs_core *core;
	struct cs_http_req *h;
	int fd;
	MDB_txn *view; /* between the handler and the end of the first worker step */
	uint64_t index, term;
	struct cs_snapshot_writer w;
	struct cs_buf sealed;
	int rv;
	char err[256];
	uint64_t size, off;
	char *buf;
};

static void save_release(struct job *j)
{
	struct save_op *op = CS_CONTAINER_OF(j, struct save_op, job);
	cs_snapshot_writer_free(&op->w);
	cs_buf_free(&op->sealed);
	if (op->fd >= 0)
		close(op->fd);
	free(op->buf);
	free(op);
}

/* Answer with an error (if the client is still ours) and release everything. */
static void save_fail(struct save_op *op, int status, const char *msg)
{
	cs_warn("snapshot: save failed: %s", msg);
	if (op->h)
		respond_error(op->h, status, msg);
	op->h = NULL;
	job_close(&op->job);
}

static void save_done(struct save_op *op)
{
	op->h = NULL;
	job_close(&op->job);
}

/* Worker: meta.json, state.bin, SHA256SUMS from the pinned view; then end the view
 * here, so that a closing store never waits for the loop. */
static void save_write(struct job *j)
{
	struct save_op *op = CS_CONTAINER_OF(j, struct save_op, job);
	struct cs_store *s = &op->core->st.store;
	op->rv = cs_snapshot_write_begin(&op->w, op->fd, s, op->view, op->index, op->term);
	cs_store_view_end(s, op->view);
	op->view = NULL;
}

/* Worker: the sealed sums close the archive; then read it all back and check it. */
static void save_finish(struct job *j)
{
	struct save_op *op = CS_CONTAINER_OF(j, struct save_op, job);
	op->rv = cs_snapshot_write_end(&op->w, op->sealed.data, op->sealed.len);
	if (op->rv != 0) {
		snprintf(op->err, sizeof op->err, "%s", op->w.err);
		return;
	}
	struct cs_snapshot_verified v;
	op->rv = cs_snapshot_verify(op->fd, NULL, NULL, &v, op->err, sizeof op->err);
	if (op->rv != 0)
		return;
	bool same = v.entries == op->w.entries && v.sums_len == op->w.sums_len &&
		    memcmp(v.sums, op->w.sums, v.sums_len) == 0 && v.sealed_len == op->sealed.len &&
		    memcmp(v.sealed, op->sealed.data, v.sealed_len) == 0;
	cs_snapshot_verified_free(&v);
	if (!same) {
		op->rv = CS_EIO;
		snprintf(op->err, sizeof op->err,
			 "the archive read back differs from what was "
			 "written");
	}
}

static void save_pump(void *ctx)
{
	struct save_op *op = ctx;
	for (;;) {
		if (op->off == op->size) {
			cs_http_stream_end(op->h);
			save_done(op);
			return;
		}
		size_t want =
		    op->size - op->off < STREAM_READ ? (size_t)(op->size - op->off) : STREAM_READ;
		/* A synchronous read of a file we just wrote (page cache), bounded per loop
		 * turn by the back-pressure below. */
		ssize_t n = pread(op->fd, op->buf, want, (off_t)op->off);
		if (n <= 0) {
			cs_warn("snapshot: reading the archive back: %s",
				n < 0 ? strerror(errno) : "unexpected end of file");
			cs_http_stream_abort(op->h);
			save_done(op);
			return;
		}
		long queued = cs_http_stream_write(op->h, op->buf, (size_t)n);
		if (queued < 0) {
			cs_info("snapshot: the client went away during the download");
			cs_http_stream_abort(op->h);
			save_done(op);
			return;
		}
		op->off += (uint64_t)n;
		if (queued > (long)CS_HTTP_STREAM_HIGH) {
			cs_http_stream_on_drain(op->h, save_pump, op);
			return;
		}
	}
}

static void save_verified(struct job *j)
{
	struct save_op *op = CS_CONTAINER_OF(j, struct save_op, job);
	if (core_gone(op->core))
		return save_fail(op, 503, cs_strerror(CS_ESHUTDOWN));
	if (op->rv != 0) {
		char msg[400];
		snprintf(msg, sizeof msg, "snapshot failed verification at save: %s", op->err);
		return save_fail(op, 500, msg);
	}
	struct stat sb;
	if (fstat(op->fd, &sb) != 0)
		return save_fail(op, 500, "snapshot: stat of the archive failed");
	op->size = (uint64_t)sb.st_size;
	op->buf = malloc(STREAM_READ);
	if (!op->buf)
		abort();
	static char cd_name[] = "Content-Disposition",
		    cd_value[] = "attachment; filename=\"raft.snap\"";
	struct cs_http_header cd = {cd_name, cd_value};
	cs_info("snapshot: saved index %llu, %llu entries, %llu bytes; streaming",
		(unsigned long long)op->index, (unsigned long long)op->w.entries,
		(unsigned long long)op->size);
	cs_http_stream_begin(op->h, 200, "application/gzip", &cd, 1);
	save_pump(op);
}

static void save_written(struct job *j)
{
	struct save_op *op = CS_CONTAINER_OF(j, struct save_op, job);
	struct cs_core *core = op->core;
	if (core_gone(core))
		return save_fail(op, 503, cs_strerror(CS_ESHUTDOWN));
	if (op->rv != 0)
		return save_fail(op, cs_err_status(op->rv), op->w.err);
	/* The seal lives on the loop thread: seal here, finish on the worker. */
	int rc =
	    cs_seal_encrypt(core, CS_SNAPSHOT_SEAL_AAD, op->w.sums, op->w.sums_len, &op->sealed);
	if (rc != 0)
		return save_fail(op, cs_err_status(rc), "snapshot: sealing SHA256SUMS failed");
	if (job_start(&op->job, save_finish, save_verified) != 0)
		return save_fail(op, 500, "snapshot: cannot start a worker thread");
}

static int snapshot_save(struct cs_request *req)
{
	struct cs_core *core = req->core;
	char err[256];
	if (!req->http)
		return cs_req_error(req, CS_EINVAL, "snapshots are only served over HTTP");
	struct save_op *op = calloc(1, sizeof *op);
	if (!op)
		abort();
	op->core = core;
	/* The archive is as big as the store: it goes where uploads go, under the same
	 * free-space reserve. */
	int room = cs_spool_check_room(spool_path, spool_reserve, 0);
	if (room == ENOSPC) {
		req->status = 507; /* as for an upload that would cross the reserve */
		return cs_req_error(req, CS_EIO,
				    "not enough free space to write the snapshot: the spool volume "
				    "is under its %d%% free-space reserve",
				    spool_reserve);
	}
	op->fd = temp_file(spool_path, err, sizeof err);
	if (op->fd < 0) {
		free(op);
		return cs_req_error(req, CS_EIO, "%s", err);
	}
	if (job_init(&op->job, core->loop, save_release) != 0) {
		close(op->fd);
		free(op);
		return cs_req_error(req, CS_EINTERNAL, "snapshot: cannot create a handle");
	}
	/* The view is the snapshot: whatever applies after this line is not in it. */
	int rc = cs_store_view_begin(&core->st.store, &op->view, &op->index);
	if (rc != 0) {
		job_close(&op->job);
		return cs_req_error(req, rc, "snapshot: %s", core->st.store.errmsg);
	}
	op->term = core->node.raft.current_term;
	if (job_start(&op->job, save_write, save_written) != 0) {
		cs_store_view_end(&core->st.store, op->view);
		job_close(&op->job);
		return cs_req_error(req, CS_EINTERNAL, "snapshot: cannot start a worker thread");
	}
	op->h = take_http(req, 200);
	return 0;
}

/* ================================================================ restore */

struct restore_op {
	struct job job;
	struct cs_core *core;
	struct cs_http_req *h; /* NULL once answered */
	bool force;
	int fd; /* our own dup of the spooled body: the HTTP layer closes its copy */
	struct cs_snapshot_verified v;
	struct cs_snapshot_reader *rd;
	uint8_t id[CS_RESTORE_ID_LEN];
	uint64_t seq, records, restores_before;
	struct cs_buf ready; /* a chunk read by the worker, waiting for a slot */
	uint32_t ready_n;
	bool have_ready, eof, committing, failed;
	/* written by the read worker only, copied by the loop when it joined it */
	uint32_t read_n;
	bool read_eof;
	int inflight;
	int rv;
	char err[256];
};

static struct restore_op *restoring; /* one restore at a time */

static void restore_release(struct job *j)
{
	struct restore_op *op = CS_CONTAINER_OF(j, struct restore_op, job);
	cs_snapshot_reader_free(op->rd);
	cs_snapshot_verified_free(&op->v);
	cs_buf_free(&op->ready);
	if (op->fd >= 0)
		close(op->fd);
	free(op);
}

/* Free once nothing refers to op any more (no worker, no proposal in flight). */
static void restore_maybe_release(struct restore_op *op)
{
	if (op->job.running || op->inflight > 0)
		return;
	if (restoring == op)
		restoring = NULL;
	job_close(&op->job);
}

static void restore_answer(struct restore_op *op, int status, const char *msg)
{
	if (!op->h)
		return;
	if (msg)
		respond_error(op->h, status, msg);
	else
		cs_http_respond(op->h, status, NULL, NULL, 0, NULL, 0);
	op->h = NULL;
}

static void restore_fail(struct restore_op *op, int status, const char *msg)
{
	if (!op->failed)
		cs_warn("snapshot: restore failed: %s", msg);
	op->failed = true;
	restore_answer(op, status, msg);
	restore_maybe_release(op);
}

static void restore_pump(struct restore_op *op);

/* Commit callback of every restore entry (loop thread). */
static void restore_entry_cb(void *data, int status)
{
	struct restore_op *op = data;
	op->inflight--;
	if (op->committing && op->inflight == 0 && !op->failed) {
		/* The store says whether our COMMIT swapped the data in; the status may be a
		 * failure even then (the restore hook sealed the node and failed everything
		 * pending, the COMMIT's own callback included). */
		struct cs_store *s = &op->core->st.store;
		if (s->restores_applied > op->restores_before &&
		    memcmp(s->last_restore_id, op->id, CS_RESTORE_ID_LEN) == 0) {
			cs_info("snapshot: restored %llu entries (%s)",
				(unsigned long long)op->records, op->force ? "forced" : "verified");
			restore_answer(op, 204, NULL);
			restore_maybe_release(op);
			return;
		}
		return restore_fail(op, status ? cs_err_status(status) : 500,
				    status ? cs_strerror(status)
					   : "snapshot: the restore did not take effect");
	}
	if (status != 0) {
		char msg[256];
		snprintf(msg, sizeof msg, "snapshot restore interrupted: %s", cs_strerror(status));
		return restore_fail(op, cs_err_status(status), msg);
	}
	restore_pump(op);
}

/* Propose one entry; false (and the op failed) if the committer refused it. */
static bool restore_propose(struct restore_op *op, struct cs_buf *e)
{
	int rc = cs_storage_propose_raw(&op->core->st, e->data, e->len, restore_entry_cb, op);
	cs_buf_reset(e);
	if (rc != 0) {
		char msg[256];
		snprintf(msg, sizeof msg, "snapshot restore: %s", cs_strerror(rc));
		restore_fail(op, cs_err_status(rc), msg);
		return false;
	}
	op->inflight++;
	return true;
}

/* Worker: the next chunk of records (the reader is opened on first use). */
static void restore_read(struct job *j)
{
	struct restore_op *op = CS_CONTAINER_OF(j, struct restore_op, job);
	op->rv = 0;
	if (!op->rd)
		op->rv = cs_snapshot_reader_open(op->fd, &op->v, &op->rd, op->err, sizeof op->err);
	if (op->rv == 0)
		op->rv =
		    cs_snapshot_reader_chunk(op->rd, op->id, op->seq, CS_SNAPSHOT_CHUNK, &op->ready,
					     &op->read_n, &op->read_eof, op->err, sizeof op->err);
}

static void restore_read_done(struct job *j)
{
	struct restore_op *op = CS_CONTAINER_OF(j, struct restore_op, job);
	if (op->failed)
		return restore_maybe_release(op);
	if (core_gone(op->core))
		return restore_fail(op, 503, cs_strerror(CS_ESHUTDOWN));
	if (op->rv != 0)
		return restore_fail(op, 400, op->err);
	op->eof = op->read_eof;
	op->ready_n = op->read_n;
	op->have_ready = !op->eof;
	restore_pump(op);
}

/*
 * Move the restore forward: propose the chunk that is ready when a slot is free, keep
 * the worker reading the next one, and propose the COMMIT once every chunk applied (so
 * that a failed chunk can still stop it). At most MAX_RESTORE_INFLIGHT chunks in flight
 * plus one read ahead: memory stays a few MiB whatever the snapshot size.
 */
static void restore_pump(struct restore_op *op)
{
	if (op->failed)
		return restore_maybe_release(op);
	if (op->have_ready && op->inflight < MAX_RESTORE_INFLIGHT) {
		op->have_ready = false;
		op->seq++;
		op->records += op->ready_n;
		if (!restore_propose(op, &op->ready))
			return;
	}
	if (!op->have_ready && !op->eof && !op->job.running) {
		if (job_start(&op->job, restore_read, restore_read_done) != 0)
			return restore_fail(op, 500, "snapshot: cannot start a worker thread");
	}
	if (op->eof && !op->have_ready && op->inflight == 0 && !op->committing) {
		struct cs_buf e = CS_BUF_INIT;
		cs_restore_commit_entry(&e, op->id, op->seq, op->records);
		op->committing = true;
		op->restores_before = op->core->st.store.restores_applied;
		restore_propose(op, &e);
		cs_buf_free(&e);
	}
}

/* The seal check of a non-force restore: SHA256SUMS.sealed opens with our seal. */
static int unseal_sums(void *ctx, const void *ct, size_t n, struct cs_buf *out)
{
	return cs_seal_decrypt(ctx, CS_SNAPSHOT_SEAL_AAD, ct, n, out);
}

static void restore_verified(struct job *j)
{
	struct restore_op *op = CS_CONTAINER_OF(j, struct restore_op, job);
	struct cs_core *core = op->core;
	if (core_gone(core))
		return restore_fail(op, 503, cs_strerror(CS_ESHUTDOWN));
	if (op->rv != 0)
		return restore_fail(op, 400, op->err);
	if (!op->force &&
	    cs_snapshot_check_sealed(&op->v, unseal_sums, core, op->err, sizeof op->err) != 0)
		return restore_fail(op, 400, op->err);
	if (!core->active)
		return restore_fail(op, 503, cs_strerror(CS_ENOTACTIVE));
	cs_info("snapshot: restoring %llu entries (snapshot index %d)",
		(unsigned long long)op->v.entries,
		cJSON_GetObjectItem(op->v.meta, "Index")
		    ? cJSON_GetObjectItem(op->v.meta, "Index")->valueint
		    : 0);
	cs_random(op->id, sizeof op->id);
	struct cs_buf e = CS_BUF_INIT;
	cs_restore_begin_entry(&e, op->id);
	bool ok = restore_propose(op, &e);
	cs_buf_free(&e);
	if (ok)
		restore_pump(op);
}

static void restore_verify(struct job *j)
{
	struct restore_op *op = CS_CONTAINER_OF(j, struct restore_op, job);
	op->rv = cs_snapshot_verify(op->fd, NULL, NULL, &op->v, op->err, sizeof op->err);
}

static int snapshot_restore(struct cs_request *req, bool force)
{
	struct cs_core *core = req->core;
	struct cs_http_req *h = req->http;
	if (!h)
		return cs_req_error(req, CS_EINVAL, "snapshots are only restored over HTTP");
	if (restoring)
		return cs_req_error(req, CS_EBUSY, "a snapshot restore is already in progress");
	if (h->body_fd < 0 || h->body_len == 0)
		return cs_req_error(req, CS_EINVAL, "no snapshot in the request body");
	struct restore_op *op = calloc(1, sizeof *op);
	if (!op)
		abort();
	op->core = core;
	op->force = force;
	op->fd = fcntl(h->body_fd, F_DUPFD_CLOEXEC, 0);
	if (op->fd < 0) {
		free(op);
		return cs_req_error(req, CS_EIO, "snapshot: %s", strerror(errno));
	}
	if (job_init(&op->job, core->loop, restore_release) != 0) {
		close(op->fd);
		free(op);
		return cs_req_error(req, CS_EINTERNAL, "snapshot: cannot create a handle");
	}
	if (job_start(&op->job, restore_verify, restore_verified) != 0) {
		job_close(&op->job);
		return cs_req_error(req, CS_EINTERNAL, "snapshot: cannot start a worker thread");
	}
	restoring = op;
	op->h = take_http(req, 204);
	return 0;
}

static int snapshot_restore_checked(struct cs_request *req)
{
	return snapshot_restore(req, false);
}

static int snapshot_restore_force(struct cs_request *req)
{
	return snapshot_restore(req, true);
}

/* ================================================================ uploads */

/*
 * Upload admission (cs_http_set_spool_policy), when the header block is complete and
 * before a byte of the archive is read: the core's own token and ACL check (sudo on the
 * path), then one upload at a time. The slot is held from admission until the HTTP
 * request is released, which for a restore is its answer, after the restore ended.
 */
static int uploads; /* admitted uploads whose request is not released yet */

static int admit_upload(struct cs_http_req *h, void *ctx, char **body, size_t *len)
{
	struct cs_core *core = ctx;
	if (core->kr && !core->active && !h->forwarded && !core->shutting_down &&
	    cs_ha_leader_known(core)) {
		/* A standby: the active node decides (token, sudo, its own upload slot,
		 * disk reserve) when the relayed headers reach it, and its answer comes
		 * back at once; the body passes through without being stored here. */
		if (uploads > 0) {
			*body = cs_response_errors("a snapshot upload is already being relayed "
						   "by this node; try again once it has finished",
						   len);
			return 503;
		}
		cs_info("snapshot: relaying the upload from %s to the active node as it arrives",
			h->remote_addr);
		h->body_stream = true;
		uploads++;
		return 0;
	}
	int status = cs_core_admit(core, h, body, len);
	if (status)
		return status;
	if (uploads > 0 || restoring) {
		cs_info("snapshot: upload from %s refused: another one is in progress",
			h->remote_addr);
		*body = cs_response_errors("a snapshot upload or restore is already in progress; "
					   "try again once it has finished",
					   len);
		return 503;
	}
	uploads++;
	return 0;
}

static void upload_done(void *ctx)
{
	(void)ctx;
	if (uploads > 0)
		uploads--;
}

/* Whether `dir` is `root` or below it (both resolved; a missing dir is not below). */
static bool path_within(const char *dir, const char *root)
{
	char a[PATH_MAX], b[PATH_MAX];
	if (!realpath(dir, a) || !realpath(root, b))
		return false;
	size_t n = strlen(b);
	return strncmp(a, b, n) == 0 && (a[n] == '\0' || a[n] == '/');
}

/* The spool directory: the configured one, or <data dir>/snapshot-spool; never inside
 * the raft or LMDB directories (c-raft and LMDB own every file there). */
static void spool_dir(struct cs_core *core, char *out, size_t outlen)
{
	const char *cfg = core->cfg ? core->cfg->snapshot_spool_dir : NULL;
	snprintf(out, outlen, "%s/snapshot-spool", core->data_dir);
	if (cfg && *cfg) {
		char raft[4200], fsm[4200];
		snprintf(raft, sizeof raft, "%s/raft", core->data_dir);
		snprintf(fsm, sizeof fsm, "%s/fsm", core->data_dir);
		int e = cs_mkdir_p(cfg, 0700);
		if (e)
			cs_error("snapshot: snapshot_spool_dir %s: %s", cfg, strerror(e));
		else if (path_within(cfg, raft) || path_within(cfg, fsm))
			cs_error("snapshot: snapshot_spool_dir %s is inside the raft or LMDB "
				 "directory; using %s",
				 cfg, out);
		else
			snprintf(out, outlen, "%s", cfg);
	}
	int e = cs_mkdir_p(out, 0700);
	if (e)
		cs_error("snapshot: spool directory %s: %s (uploads will fail)", out, strerror(e));
}

/* ================================================================ registration */

static bool want_spool(const char *method, const char *path)
{
	if (strcmp(method, "POST") != 0 && strcmp(method, "PUT") != 0)
		return false;
	return strcmp(path, "/v1/sys/storage/raft/snapshot") == 0 ||
	       strcmp(path, "/v1/sys/storage/raft/snapshot-force") == 0;
}

/* The body is an archive, not JSON fields: ANY_FIELDS keeps the field checks out. */
static const struct cs_path snapshot_paths[] = {
    {.pattern = "storage/raft/snapshot",
     .ops = {[CS_OP_READ] = snapshot_save,
	     [CS_OP_CREATE] = snapshot_restore_checked,
	     [CS_OP_UPDATE] = snapshot_restore_checked},
     .flags = CS_PATH_SUDO | CS_PATH_ANY_FIELDS,
     .synopsis = "save or restore a raft snapshot"},
    {.pattern = "storage/raft/snapshot-force",
     .ops = {[CS_OP_CREATE] = snapshot_restore_force, [CS_OP_UPDATE] = snapshot_restore_force},
     .flags = CS_PATH_SUDO | CS_PATH_ANY_FIELDS,
     .synopsis = "restore a raft snapshot taken by a cluster with other keys"},
};

void cs_snapshot_register(struct cs_core *core)
{
	cs_sys_set_paths(CS_SYS_SNAPSHOT, snapshot_paths,
			 sizeof snapshot_paths / sizeof snapshot_paths[0]);
	if (!core->data_dir[0]) {
		cs_error("snapshot: cs_snapshot_register before cs_core_init: restores will "
			 "not be spooled");
		return;
	}
	spool_dir(core, spool_path, sizeof spool_path);
	spool_reserve = core->cfg ? core->cfg->snapshot_spool_reserve_percent
				  : CS_DEFAULT_SPOOL_RESERVE_PERCENT;
	cs_http_set_spool(want_spool, spool_path, CS_SNAPSHOT_MAX_UPLOAD);
	cs_http_set_spool_policy(admit_upload, upload_done, core, spool_reserve);
}
