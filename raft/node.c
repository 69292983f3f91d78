/*
 * One c-raft 0.15 node per process (contract in node.h; rules in
 * docs/architecture.md, "c-raft 0.15").
 *
 * Happy path:
 *   init       raft_uv_init (then io.version = 2 so the v3 FSM is accepted, compression
 *              and auto-recovery off), raft_init (synchronous disk checks), timeouts,
 *              pre-vote, snapshot sizing; storage's proposer becomes this node.
 *   bootstrap  {self as voter}, once per cluster; RAFT_CANTBOOTSTRAP means "done before".
 *   start      raft_start loads the snapshot and log and replays them (the FSM skips what
 *              LMDB already holds); a single voter elects itself at once.
 *   leading    a uv_prepare + uv_check pair polls raft_state() (0.15 has no state
 *              callback). On becoming leader we issue a raft_barrier; when it applied,
 *              every entry of earlier terms has applied too and the node is *active*:
 *              on_active(true). The committer then proposes batches through
 *              node_propose → raft_apply; apply_cb hands the outcome to storage.
 *   close      deferred to a zero timer (raft_close inside a raft callback aborts in
 *              libuv); leadership transfer first if another voter exists; raft_close;
 *              in its callback raft_uv_close, release the transport, the FSM and our
 *              handles; the user's callback runs when the last handle closed.
 *
 * Failure modes:
 * - raft_apply refused (not leader, transfer pending, shutting down): the proposer
 *   returns the code and still owns the buffer, which it frees; storage fails the commit.
 * - apply callback with NOTLEADER/LEADERSHIPLOST/SHUTDOWN/CANCELED: the write's outcome
 *   is unknown; storage gets CS_ELEADERSHIP (CS_ESHUTDOWN while closing) and fails
 *   everything pending. Any other status is a disk error on the leader: 0.15 would keep
 *   leading and may reuse the index for another entry (docs/architecture.md, C10), so abort().
 * - leaving LEADER (or a new term while leader): active = false, storage fails everything
 *   pending, on_active(false).
 * - post-election barrier fails: the monitor issues a new one while still leader.
 * - init fails: everything it created is released before it returns; close still works.
 */
#include "raft/node.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"

#define ELECTION_TIMEOUT_MS  1000
#define HEARTBEAT_TIMEOUT_MS 100
/* Entries can be up to CS_MAX_ENTRY_BYTES: size the in-memory log by count accordingly. */
#define SNAPSHOT_THRESHOLD 512
#define SNAPSHOT_TRAILING  512

/* The Debian build compiles raft's own asserts out: check the invariant ourselves. */
_Static_assert(HEARTBEAT_TIMEOUT_MS < ELECTION_TIMEOUT_MS, "heartbeat must be < election");

/* raft_strerror only knows codes 1..18 in 0.15 (docs/architecture.md, C12). */
static const char *raft_code(int rv)
{
	static const char *names[] = {"ok",
				      "NOMEM",
				      "BADID",
				      "DUPLICATEID",
				      "DUPLICATEADDRESS",
				      "BADROLE",
				      "MALFORMED",
				      "NOTLEADER",
				      "LEADERSHIPLOST",
				      "SHUTDOWN",
				      "CANTBOOTSTRAP",
				      "CANTCHANGE",
				      "CORRUPT",
				      "CANCELED",
				      "NAMETOOLONG",
				      "TOOBIG",
				      "NOCONNECTION",
				      "BUSY",
				      "IOERR",
				      "NOTFOUND",
				      "INVALID",
				      "UNAUTHORIZED",
				      "NOSPACE",
				      "TOOMANY"};
	if (rv >= 0 && (size_t)rv < CS_ARRAY_LEN(names))
		return names[rv];
	return "unknown";
}

raft_id cs_raft_id_from_name(const char *node_id)
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (EVP_Digest(node_id, strlen(node_id), md, &mdlen, EVP_sha256(), NULL) != 1)
		abort();
	uint64_t id = 0;
	for (int i = 0; i < 8; i++)
		id = id << 8 | md[i];
	/* 63 bits: ids travel through signed integers in some tools; 0 means "none". */
	id &= 0x7fffffffffffffffULL;
	return id ? id : 1;
}

/* ---------------------------------------------------------------- single-node transport */

/*
 * Enough for a one-voter configuration: raft never needs to dial anyone. It listens
 * nowhere and refuses every outbound connection (raft retries after its delay). close
 * must not call back from inside itself: raft_uv's close may then finish and free its
 * state while uvClose is still running, so the callback is deferred through a handle.
 */
struct single_transport {
	struct raft_uv_transport *t;
	uv_loop_t *loop;
	raft_id id;
	char address[256];
	uv_timer_t close_handle;
	raft_uv_transport_close_cb close_cb;
};

static int st_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
	struct single_transport *s = t->impl;
	s->id = id;
	snprintf(s->address, sizeof s->address, "%s", address);
	return 0;
}

static int st_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
	return 0;
}

static int st_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
		      const char *address, raft_uv_connect_cb cb)
{
	snprintf(t->errmsg, sizeof t->errmsg, "single-node transport: no route to %s", address);
	return RAFT_NOCONNECTION;
}

static void io_close_once(struct raft_io *io, raft_io_close_cb cb);

/*
 * Fail-stop on a failed disk write (docs/architecture.md, C10; c-raft 0.15 bug #320):
 * 0.15 keeps leading after an append fails, truncates its log and may give the index to
 * another entry in the same term while a follower keeps the first one, and the pending
 * apply callback may then fire for the other entry. Waiting for an apply callback with
 * an error is not enough: the fault campaign (issue 15) saw an active node whose appends
 * failed with EIO keep answering as active while every write hung. So every disk write
 * raft_uv makes is wrapped here: any failure other than a cancel at close aborts the
 * process (a restart re-reads the disk; the cluster elects another leader meanwhile).
 */
struct append_wrap {
	struct raft_io_append inner;
	struct raft_io_append *outer;
	raft_io_append_cb outer_cb;
};

static void __attribute__((noreturn)) disk_failed(const char *what, int rv, struct raft_io *io)
{
	cs_error("raft: %s failed: %s (%d): %s; stopping to avoid divergence (a restart re-reads "
		 "the disk)",
		 what, raft_code(rv), rv, io->errmsg);
	abort();
}

static void append_wrapped_cb(struct raft_io_append *req, int status)
{
	struct append_wrap *w = CS_CONTAINER_OF(req, struct append_wrap, inner);
	struct raft_io_append *outer = w->outer;
	raft_io_append_cb cb = w->outer_cb;
	free(w);
	if (status != 0 && status != RAFT_CANCELED) {
		cs_error("raft: appending log entries failed: %s (%d); stopping to avoid "
			 "divergence (a restart re-reads the disk)",
			 raft_code(status), status);
		abort();
	}
	cb(outer, status);
}

static int io_append(struct raft_io *io, struct raft_io_append *req,
		     const struct raft_entry entries[], unsigned n, raft_io_append_cb cb)
{
	struct cs_raft_node *nd = CS_CONTAINER_OF(io, struct cs_raft_node, io);
	struct append_wrap *w = calloc(1, sizeof *w);
	if (!w)
		abort();
	w->outer = req;
	w->outer_cb = cb;
	w->inner.data = req->data;
	int rv = nd->uv_append(io, &w->inner, entries, n, append_wrapped_cb);
	if (rv == RAFT_IOERR || rv == RAFT_NOSPACE)
		disk_failed("appending log entries", rv, io);
	if (rv != 0)
		free(w); /* refused (closing, too many entries): raft handles it */
	return rv;
}

static int io_truncate(struct raft_io *io, raft_index index)
{
	struct cs_raft_node *nd = CS_CONTAINER_OF(io, struct cs_raft_node, io);
	int rv = nd->uv_truncate(io, index);
	if (rv == RAFT_IOERR || rv == RAFT_NOSPACE)
		disk_failed("truncating the log", rv, io);
	return rv;
}

static int io_set_term(struct raft_io *io, raft_term term)
{
	struct cs_raft_node *nd = CS_CONTAINER_OF(io, struct cs_raft_node, io);
	int rv = nd->uv_set_term(io, term);
	if (rv != 0)
		disk_failed("persisting the term", rv, io);
	return rv;
}

static int io_set_vote(struct raft_io *io, raft_id server_id)
{
	struct cs_raft_node *nd = CS_CONTAINER_OF(io, struct cs_raft_node, io);
	int rv = nd->uv_set_vote(io, server_id);
	if (rv != 0)
		disk_failed("persisting the vote", rv, io);
	return rv;
}

static void st_closed(uv_handle_t *h)
{
	struct single_transport *s = CS_CONTAINER_OF(h, struct single_transport, close_handle);
	/* May end in raft's close callback, which frees s: touch nothing afterwards. */
	s->close_cb(s->t);
}

static void st_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
	struct single_transport *s = t->impl;
	s->close_cb = cb;
	uv_timer_init(s->loop, &s->close_handle);
	uv_close((uv_handle_t *)&s->close_handle, st_closed);
}

static void single_transport_new(struct raft_uv_transport *t, uv_loop_t *loop)
{
	struct single_transport *s = calloc(1, sizeof *s);
	if (!s)
		abort();
	s->t = t;
	s->loop = loop;
	memset(t, 0, sizeof *t);
	t->impl = s; /* raft_uv overwrites t->data */
	t->init = st_init;
	t->listen = st_listen;
	t->connect = st_connect;
	t->close = st_close;
}

/* Free the built-in transport; a caller's transport stays theirs. */
static void release_transport(struct cs_raft_node *n)
{
	if (n->tp == &n->transport) {
		free(n->transport.impl);
		n->transport.impl = NULL;
	}
}

/* ---------------------------------------------------------------- proposals */

/* One raft_apply in flight: raft holds `req` until apply_cb. */
struct proposal {
	struct raft_apply req;
	struct cs_raft_node *node;
	void *token; /* storage's batch */
};

static void apply_cb(struct raft_apply *req, int status, void *result)
{
	struct proposal *p = CS_CONTAINER_OF(req, struct proposal, req);
	struct cs_raft_node *n = p->node;
	void *token = p->token;
	free(p);
	n->proposals_inflight--;

	int st;
	switch (status) {
	case 0:
		st = 0;
		break;
	case RAFT_NOTLEADER:
	case RAFT_LEADERSHIPLOST:
	case RAFT_SHUTDOWN:
	case RAFT_CANCELED:
		/* Outcome unknown: the entry may still commit under the next leader. */
		st = n->closing ? CS_ESHUTDOWN : CS_ELEADERSHIP;
		break;
	default:
		cs_error("raft: apply failed with %s (%d): %s; stopping to avoid divergence",
			 raft_code(status), status, raft_errmsg(&n->raft));
		abort();
	}
	cs_storage_batch_done(n->st, token, st);
}

static int node_propose(void *ctx, const void *data, size_t len, void *token)
{
	struct cs_raft_node *n = ctx;
	if (n->closing || !n->started)
		return RAFT_SHUTDOWN;
	/* Only an active leader writes, and only in the term its barrier made it active:
	 * after losing and regaining leadership (before the monitor noticed) LMDB may lag
	 * entries another leader committed, and a write based on it could undo them. */
	if (!n->active || n->raft.current_term != n->barrier_term)
		return RAFT_NOTLEADER;
	/* raft_uv 0.15 writes each entry padded to 8 bytes but reads it back unpadded:
	 * any other length corrupts the segment for the next start (fixed upstream by
	 * rejecting such entries, cd3bd28). Zero padding, which the decoder accepts. */
	struct raft_buffer buf;
	buf.len = (len + 7) & ~(size_t)7;
	buf.base = raft_malloc(buf.len);
	if (!buf.base)
		return RAFT_NOMEM;
	memcpy(buf.base, data, len);
	memset((char *)buf.base + len, 0, buf.len - len);
	struct proposal *p = malloc(sizeof *p);
	if (!p) {
		raft_free(buf.base);
		return RAFT_NOMEM;
	}
	p->node = n;
	p->token = token;
	p->req.data = p;
	int rv = raft_apply(&n->raft, &p->req, &buf, 1, apply_cb);
	if (rv != 0) {
		/* Refused: the payload is still ours (docs/architecture.md, C5). */
		raft_free(buf.base);
		free(p);
		return rv;
	}
	n->proposals_inflight++;
	return 0;
}

/* ---------------------------------------------------------------- leadership monitor */

static void step_down(struct cs_raft_node *n)
{
	bool was_active = n->active;
	n->active = false;
	cs_info("raft: no longer leader (term %llu)", (unsigned long long)n->leader_term);
	/* Everything pending may or may not commit: fail it and drop the overlay. */
	cs_storage_fail_all(n->st, n->closing ? CS_ESHUTDOWN : CS_ELEADERSHIP);
	if (was_active && n->on_active)
		n->on_active(n->cb_ctx, false);
}

static void barrier_cb(struct raft_barrier *req, int status)
{
	struct cs_raft_node *n = CS_CONTAINER_OF(req, struct cs_raft_node, barrier);
	n->barrier_pending = false;
	if (status != 0) {
		cs_debug("raft: post-election barrier failed: %s", raft_code(status));
		return; /* the monitor retries while we still lead */
	}
	if (n->closing || n->active || raft_state(&n->raft) != RAFT_LEADER ||
	    n->raft.current_term != n->barrier_term)
		return;
	n->active = true;
	cs_info("raft: leader of term %llu is active", (unsigned long long)n->barrier_term);
	if (n->on_active)
		n->on_active(n->cb_ctx, true);
}

static void monitor(struct cs_raft_node *n)
{
	if (!n->started)
		return;
	int state = raft_state(&n->raft);
	raft_term term = n->raft.current_term;
	bool was_leader = n->last_state == RAFT_LEADER;
	bool is_leader = state == RAFT_LEADER;

	/* A new term while leading means we lost and regained leadership in between. */
	if (was_leader && (!is_leader || term != n->leader_term)) {
		step_down(n);
		was_leader = false;
	}
	if (is_leader && !was_leader) {
		n->leader_term = term;
		cs_info("raft: became leader in term %llu", (unsigned long long)term);
	}
	n->last_state = state;
	if (is_leader && !n->active && !n->barrier_pending && !n->closing) {
		/* 0.15 appends no entry on election: until an entry of this term applied,
		 * LMDB may lag entries committed by the previous leader (docs/architecture.md,
		 * C6). */
		int rv = raft_barrier(&n->raft, &n->barrier, barrier_cb);
		if (rv == 0) {
			n->barrier_pending = true;
			n->barrier_term = term;
		} else {
			cs_debug("raft: barrier refused: %s", raft_code(rv));
		}
	}
}

static void prepare_cb(uv_prepare_t *h)
{
	monitor(h->data);
}

static void check_cb(uv_check_t *h)
{
	monitor(h->data);
}

/* ---------------------------------------------------------------- lifecycle */

int cs_raft_node_init(struct cs_raft_node *n, uv_loop_t *loop, struct cs_storage *st,
		      const char *data_dir, raft_id id, const char *address,
		      cs_raft_active_cb on_active, void *ctx)
{
	return cs_raft_node_init_transport(n, loop, st, data_dir, id, address, NULL, on_active,
					   ctx);
}

int cs_raft_node_init_transport(struct cs_raft_node *n, uv_loop_t *loop, struct cs_storage *st,
				const char *data_dir, raft_id id, const char *address,
				struct raft_uv_transport *t, cs_raft_active_cb on_active, void *ctx)
{
	memset(n, 0, sizeof *n);
	n->loop = loop;
	n->st = st;
	n->id = id;
	n->on_active = on_active;
	n->cb_ctx = ctx;
	n->last_state = RAFT_UNAVAILABLE;

	if (id == 0) {
		snprintf(n->errmsg, sizeof n->errmsg, "raft id must not be 0");
		return CS_EINVAL;
	}
	if (!address || !*address || strlen(address) >= sizeof n->address) {
		snprintf(n->errmsg, sizeof n->errmsg, "raft address empty or too long");
		return CS_EINVAL;
	}
	snprintf(n->address, sizeof n->address, "%s", address);
	int len = snprintf(n->dir, sizeof n->dir, "%s/raft", data_dir);
	if (len < 0 || (size_t)len >= sizeof n->dir) {
		snprintf(n->errmsg, sizeof n->errmsg, "data dir path too long");
		return CS_EINVAL;
	}
	/* raft_init reports a missing dir as an error instead of creating it. */
	int e = cs_mkdir_p(n->dir, 0700);
	if (e != 0) {
		snprintf(n->errmsg, sizeof n->errmsg, "create %.400s: %s", n->dir, strerror(e));
		return CS_EIO;
	}

	if (t) {
		n->tp = t; /* the caller's: never freed here */
	} else {
		single_transport_new(&n->transport, loop);
		n->tp = &n->transport;
	}
	int rv = raft_uv_init(&n->io, loop, n->dir, n->tp);
	if (rv != 0) {
		snprintf(n->errmsg, sizeof n->errmsg, "raft_uv_init: %s: %s", raft_code(rv),
			 n->io.errmsg);
		goto err_after_transport;
	}
	n->uv_io_close = n->io.close;
	n->io.close = io_close_once;
	n->uv_append = n->io.append;
	n->io.append = io_append;
	n->uv_truncate = n->io.truncate;
	n->io.truncate = io_truncate;
	n->uv_set_term = n->io.set_term;
	n->io.set_term = io_set_term;
	n->uv_set_vote = n->io.set_vote;
	n->io.set_vote = io_set_vote;
	/* 0.15 implements async_work but advertises version 1, and raft_init refuses a v3
	 * FSM with snapshot_async unless io->version >= 2 (docs/architecture.md, C3). */
	n->io.version = 2;
	raft_uv_set_snapshot_compression(&n->io, false); /* ciphertext does not compress */
	raft_uv_set_auto_recovery(&n->io, false);        /* never drop acknowledged entries */
	raft_uv_set_connect_retry_delay(&n->io, HEARTBEAT_TIMEOUT_MS);

	cs_fsm_init(&n->fsm_impl, &n->fsm, &st->store);
	n->fsm_impl.raft = &n->raft;
	rv = raft_init(&n->raft, &n->io, &n->fsm, id, n->address);
	if (rv != 0) {
		/* Can be -1, not a RAFT_* code, for the FSM/io version check. */
		snprintf(n->errmsg, sizeof n->errmsg, "raft_init: %s (%d): %s", raft_code(rv), rv,
			 raft_errmsg(&n->raft));
		goto err_after_io;
	}
	n->initialized = true;
	raft_set_election_timeout(&n->raft, ELECTION_TIMEOUT_MS);
	raft_set_heartbeat_timeout(&n->raft, HEARTBEAT_TIMEOUT_MS);
	raft_set_pre_vote(&n->raft, true);
	raft_set_snapshot_threshold(&n->raft, SNAPSHOT_THRESHOLD);
	raft_set_snapshot_trailing(&n->raft, SNAPSHOT_TRAILING);

	uv_prepare_init(loop, &n->prepare);
	uv_check_init(loop, &n->check);
	uv_timer_init(loop, &n->close_timer);
	n->prepare.data = n;
	n->check.data = n;
	n->close_timer.data = n;
	n->handles_ready = true;
	n->open_handles = 3;

	cs_storage_set_proposer(st, node_propose, n);
	return 0;

err_after_io:
	raft_uv_close(&n->io);
err_after_transport:
	release_transport(n);
	return CS_EIO;
}

void cs_raft_node_set_timing(struct cs_raft_node *n, unsigned election_ms, unsigned heartbeat_ms)
{
	/* Debian builds c-raft without its asserts: validate here (docs/architecture.md, C13). */
	if (!n->initialized || heartbeat_ms == 0 || heartbeat_ms >= election_ms)
		return;
	raft_set_election_timeout(&n->raft, election_ms);
	raft_set_heartbeat_timeout(&n->raft, heartbeat_ms);
	raft_uv_set_connect_retry_delay(&n->io, heartbeat_ms);
}

static void snap_barrier_cb(struct raft_barrier *req, int status)
{
	struct cs_raft_node *n = CS_CONTAINER_OF(req, struct cs_raft_node, snap_barrier);
	n->snap_barrier_pending = false;
	if (status != 0)
		cs_debug("raft: forced-snapshot barrier: %s", raft_code(status));
}

int cs_raft_node_force_snapshot(struct cs_raft_node *n)
{
	if (!n->started || n->closing || raft_state(&n->raft) != RAFT_LEADER)
		return RAFT_NOTLEADER;
	if (n->snap_barrier_pending || n->fsm_impl.snapshotting)
		return RAFT_BUSY;
	/* The FSM resets the adaptive threshold after this snapshot (its remembered value
	 * no longer matches). */
	n->fsm_impl.threshold = 1;
	raft_set_snapshot_threshold(&n->raft, 1);
	int rv = raft_barrier(&n->raft, &n->snap_barrier, snap_barrier_cb);
	if (rv == 0)
		n->snap_barrier_pending = true;
	return rv;
}

bool cs_raft_node_has_state(const struct cs_raft_node *n)
{
	static const char *files[] = {"metadata1", "metadata2"};
	for (size_t i = 0; i < CS_ARRAY_LEN(files); i++) {
		char path[sizeof n->dir + 16];
		struct stat sb;
		snprintf(path, sizeof path, "%s/%s", n->dir, files[i]);
		if (stat(path, &sb) == 0)
			return true;
	}
	return false;
}

int cs_raft_node_bootstrap(struct cs_raft_node *n)
{
	raft_id id = n->id;
	const char *address = n->address;
	return cs_raft_node_bootstrap_voters(n, &id, &address, 1);
}

int cs_raft_node_bootstrap_voters(struct cs_raft_node *n, const raft_id *ids,
				  const char *const *addresses, unsigned n_voters)
{
	if (!n->initialized || n->started) {
		snprintf(n->errmsg, sizeof n->errmsg,
			 "bootstrap needs an initialised, "
			 "not yet started node");
		return CS_EINVAL;
	}
	if (n_voters == 0) {
		snprintf(n->errmsg, sizeof n->errmsg, "bootstrap needs at least one voter");
		return CS_EINVAL;
	}
	struct raft_configuration conf;
	raft_configuration_init(&conf);
	int rv = 0;
	for (unsigned i = 0; i < n_voters && rv == 0; i++) {
		if (ids[i] == 0 || !addresses[i] || !*addresses[i]) {
			raft_configuration_close(&conf);
			snprintf(n->errmsg, sizeof n->errmsg,
				 "bootstrap: voter %u has no id/address", i);
			return CS_EINVAL;
		}
		rv = raft_configuration_add(&conf, ids[i], addresses[i], RAFT_VOTER);
	}
	if (rv == 0)
		rv = raft_bootstrap(&n->raft, &conf);
	raft_configuration_close(&conf);
	if (rv == RAFT_CANTBOOTSTRAP)
		return 0; /* the directory already has state: bootstrapped before */
	if (rv != 0) {
		snprintf(n->errmsg, sizeof n->errmsg, "raft_bootstrap: %s: %s", raft_code(rv),
			 raft_errmsg(&n->raft));
		return CS_EIO;
	}
	return 0;
}

int cs_raft_node_start(struct cs_raft_node *n)
{
	if (!n->initialized || n->started || n->closing) {
		snprintf(n->errmsg, sizeof n->errmsg, "start needs an initialised, idle node");
		return CS_EINVAL;
	}
	/* Synchronous: loads the snapshot and the log, restores, replays, may self-elect. */
	int rv = raft_start(&n->raft);
	if (rv != 0) {
		snprintf(n->errmsg, sizeof n->errmsg, "raft_start: %s: %s", raft_code(rv),
			 raft_errmsg(&n->raft));
		return CS_EIO;
	}
	n->started = true;
	uv_prepare_start(&n->prepare, prepare_cb);
	uv_check_start(&n->check, check_cb);
	return 0;
}

bool cs_raft_node_is_leader(const struct cs_raft_node *n)
{
	return n->initialized && n->raft.state == RAFT_LEADER;
}

bool cs_raft_node_check_claim(void *node, raft_id id, const char *address)
{
	const struct cs_raft_node *n = node;
	if (!n->initialized)
		return false;
	const struct raft_configuration *conf = &n->raft.configuration;
	for (unsigned i = 0; i < conf->n; i++)
		if (conf->servers[i].id == id)
			return strcmp(conf->servers[i].address, address) == 0;
	if (conf->n > 0)
		return false; /* not a member: removed, or never added */
	for (unsigned i = 0; i < n->n_expected; i++)
		if (n->expected[i].id == id)
			return strcmp(n->expected[i].address, address) == 0;
	return false;
}

void cs_raft_node_expect_peers(struct cs_raft_node *n, const raft_id *ids,
			       const char *const *addresses, unsigned count)
{
	n->n_expected = 0;
	for (unsigned i = 0; i < count && n->n_expected < CS_RAFT_MAX_EXPECTED; i++) {
		if (!ids[i] || !addresses[i])
			continue;
		n->expected[n->n_expected].id = ids[i];
		snprintf(n->expected[n->n_expected].address,
			 sizeof n->expected[n->n_expected].address, "%s", addresses[i]);
		n->n_expected++;
	}
}

static void handle_closed(uv_handle_t *h)
{
	struct cs_raft_node *n = h->data;
	if (--n->open_handles > 0)
		return;
	cs_raft_close_cb cb = n->close_cb;
	if (cb)
		cb(n); /* may free n */
}

static void release_handles(struct cs_raft_node *n)
{
	if (n->st && n->st->propose_ctx == n)
		cs_storage_set_proposer(n->st, NULL, NULL);
	if (n->initialized) {
		uv_close((uv_handle_t *)&n->prepare, handle_closed);
		uv_close((uv_handle_t *)&n->check, handle_closed);
	}
	uv_close((uv_handle_t *)&n->close_timer, handle_closed);
}

/*
 * raft_uv 0.15 can report "closed" twice: when a log barrier is pending at close, the
 * finalize work's completion unblocks the barrier (which fires the close callback) and
 * then fires it again itself (fixed upstream in 0.16, "Never invoke barrier callback
 * twice"). raft's own close callback frees its address on each call, so the second call
 * was a double free / SEGV at exit under write load. We sit between the two and pass
 * the first call on only.
 */
static void io_closed_once(struct raft_io *io)
{
	struct cs_raft_node *n = CS_CONTAINER_OF(io, struct cs_raft_node, io);
	if (n->io_close_fired)
		return;
	n->io_close_fired = true;
	n->raft_io_close_cb(io);
}

static void io_close_once(struct raft_io *io, raft_io_close_cb cb)
{
	struct cs_raft_node *n = CS_CONTAINER_OF(io, struct cs_raft_node, io);
	n->raft_io_close_cb = cb;
	n->uv_io_close(io, io_closed_once);
}

static void raft_released_cb(uv_timer_t *h)
{
	struct cs_raft_node *n = h->data;
	raft_uv_close(&n->io);
	release_transport(n); /* its close callback ran before raft's */
	cs_fsm_close(&n->fsm_impl);
	release_handles(n);
}

static void raft_closed_cb(struct raft *r)
{
	struct cs_raft_node *n = CS_CONTAINER_OF(r, struct cs_raft_node, raft);
	if (n->raft_closed)
		return;
	n->raft_closed = true;
	/* raft_close failed every pending request already; this covers a leader whose
	 * monitor did not run since. */
	if (n->last_state == RAFT_LEADER)
		step_down(n);
	n->last_state = RAFT_UNAVAILABLE;
	/* Free raft_uv from the next loop iteration, not from inside its own close path:
	 * 0.15 is still on the stack and touches its state after calling us (see
	 * io_closed_once). */
	uv_timer_start(&n->close_timer, raft_released_cb, 0, 0);
}

static void close_timer_cb(uv_timer_t *h);

static void transfer_cb(struct raft_transfer *req)
{
	struct cs_raft_node *n = CS_CONTAINER_OF(req, struct cs_raft_node, transfer);
	/* Still inside raft: close from the next loop iteration. */
	uv_timer_start(&n->close_timer, close_timer_cb, 0, 0);
}

static void close_timer_cb(uv_timer_t *h)
{
	struct cs_raft_node *n = h->data;
	if (!n->initialized) {
		release_handles(n);
		return;
	}
	if (n->raft_closing)
		return;
	if (!n->transfer_tried && raft_state(&n->raft) == RAFT_LEADER) {
		/* Hand leadership over so the others see no election at all; with no other
		 * voter raft says RAFT_NOTFOUND and we close at once. */
		n->transfer_tried = true;
		if (raft_transfer(&n->raft, &n->transfer, 0, transfer_cb) == 0)
			return;
	}
	n->raft_closing = true;
	raft_close(&n->raft, raft_closed_cb);
}

void cs_raft_node_close(struct cs_raft_node *n, cs_raft_close_cb cb)
{
	if (n->closing)
		return;
	n->closing = true;
	n->close_cb = cb;
	if (!n->loop) {
		/* Never initialised: nothing to release. */
		if (cb)
			cb(n);
		return;
	}
	if (!n->handles_ready) {
		/* init failed after creating nothing that needs closing, but the callback
		 * must still come from the loop. */
		uv_timer_init(n->loop, &n->close_timer);
		n->close_timer.data = n;
		n->handles_ready = true;
		n->open_handles = 1;
	}
	uv_timer_start(&n->close_timer, close_timer_cb, 0, 0);
}
