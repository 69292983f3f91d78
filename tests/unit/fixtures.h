/*
 * Helpers the Check suites share, so each suite states only what it tests: a temp
 * directory, a loop runner with a deadline, a storage fixture (real LMDB in a temp
 * dir behind a fake raft proposer that the test drives), and
 * an HTTP response parser (http-parser, as the server links) with a blocking client.
 * Everything runs on the test's thread; failures are Check assertions (the test stops).
 */
#ifndef CS_TEST_FIXTURES_H
#define CS_TEST_FIXTURES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "lib/buf.h"
#include "storage/txn.h"

/* ---------------------------------------------------------------- temp dir */

/* mkdtemp "/tmp/cs-test-<tag>-XXXXXX" into dir (n bytes, 64 is plenty). */
void cs_fx_tmpdir(char *dir, size_t n, const char *tag);
/* rm -rf path (no error if it is gone). */
void cs_fx_rm_rf(const char *path);
/* cs_fx_rm_rf unless KEEP_DIR is set (keep the files for inspection with CK_FORK=no). */
void cs_fx_tmpdir_done(const char *dir);

/* ---------------------------------------------------------------- loop runner */

/* Run the loop one turn at a time until *flag or ms elapsed; returns *flag. */
bool cs_fx_run_until(uv_loop_t *loop, const bool *flag, int ms);
/* The same for a flag another thread sets: polls with UV_RUN_NOWAIT and short sleeps. */
bool cs_fx_run_until_polled(uv_loop_t *loop, const atomic_bool *flag, int ms);

/* ---------------------------------------------------------------- storage fixture */

/* One entry the storage layer proposed, kept until the test applies or fails it. */
struct cs_fx_prop {
	uint8_t *data;
	size_t len;
	void *token;
	bool done;
};

/* A cs_storage on LMDB in a fresh temp dir whose proposer records each entry instead
 * of going through raft. The test then applies entries in order (as the FSM would, at
 * increasing raft indexes) or fails them. */
struct cs_fx_storage {
	struct cs_storage st;
	char dir[64];
	struct cs_fx_prop *props; /* grows; props[0..n_props) */
	size_t n_props, cap, next_apply;
	uint64_t raft_index; /* index of the last applied entry */
	int refuse;          /* non-zero: the proposer refuses with this code */
	/* Called after each recorded proposal (e.g. to apply on the next loop turn). */
	void (*on_propose)(struct cs_fx_storage *fx);
};

/* Temp dir tagged `tag`, cs_storage_open with map_size, fake proposer installed. */
void cs_fx_storage_open(struct cs_fx_storage *fx, const char *tag, size_t map_size);
/* The fake proposer itself (ctx is the fixture), to reinstall after a test swapped it. */
int cs_fx_propose(void *ctx, const void *data, size_t len, void *token);
/* Close the storage, free unapplied entries, remove the dir (see cs_fx_tmpdir_done). */
void cs_fx_storage_close(struct cs_fx_storage *fx);
/* Apply entry i to LMDB at the next raft index and report it done (status 0). */
void cs_fx_apply(struct cs_fx_storage *fx, size_t i);
/* Apply the oldest unapplied entry; apply every pending entry in order. */
void cs_fx_apply_next(struct cs_fx_storage *fx);
void cs_fx_apply_all(struct cs_fx_storage *fx);
/* Report the oldest unapplied entry (or all of them) failed with status. */
void cs_fx_fail_next(struct cs_fx_storage *fx, int status);
void cs_fx_fail_all(struct cs_fx_storage *fx, int status);

/* ---------------------------------------------------------------- HTTP responses */

/*
 * One HTTP/1.1 response parsed with http-parser in response mode. Feed it bytes as they
 * arrive: it stops right after the response, so pipelined bytes stay for the next one.
 */
struct cs_fx_resp {
	int status;
	struct cs_buf hdrs; /* "Name: value\n" lines, NUL-terminated */
	struct cs_buf body; /* NUL-terminated; empty when on_body is set */
	uint64_t body_n;    /* body bytes seen */
	bool done;
	/* Optional: take body bytes here instead of keeping them (big bodies). */
	void (*on_body)(struct cs_fx_resp *r, const char *at, size_t len);
	void *ctx;
	/* private */
	bool in_value, head;
	void *parser;
};

/* head: it answers a HEAD request (no body follows the header block). */
void cs_fx_resp_init(struct cs_fx_resp *r, bool head);
/* Parse up to len bytes; returns how many were consumed (fewer once r->done). A
 * malformed response fails the test. */
size_t cs_fx_resp_feed(struct cs_fx_resp *r, const void *buf, size_t len);
/* The connection closed: ends a body delimited by the close (HTTP/1.0). Returns done. */
bool cs_fx_resp_feed_eof(struct cs_fx_resp *r);
void cs_fx_resp_free(struct cs_fx_resp *r);
/* Whether the header block contains `text` anywhere (case-insensitive): a whole line
 * is "Name: value\n". */
bool cs_fx_resp_has_header(const struct cs_fx_resp *r, const char *text);
/* How many header lines start with `name` (give "Name:" to count one header). */
int cs_fx_resp_count_header(const struct cs_fx_resp *r, const char *name);

/* A blocking plain-TCP client to 127.0.0.1 with a receive buffer. The recv hook lets a
 * test put TLS (or anything) under the same response reading. */
struct cs_fx_client {
	int fd;
	char buf[1 << 16];
	size_t len;
	/* Optional: read into dst (at most n); > 0 bytes, 0 at EOF, < 0 on error. */
	long (*recv)(struct cs_fx_client *c, void *dst, size_t n);
	void *ctx;
};

/* Connect to 127.0.0.1:port (NULL when refused). Free with cs_fx_client_close. */
struct cs_fx_client *cs_fx_client_connect(int port);
void cs_fx_client_close(struct cs_fx_client *c);
void cs_fx_client_send(struct cs_fx_client *c, const void *p, size_t n);
/* Read more bytes into c->buf: > 0 read, 0 at EOF, < 0 on error. */
long cs_fx_client_recv(struct cs_fx_client *c);
/* Read one response into r (initialised here; caller frees). false when the connection
 * ended first (what came is in r). */
bool cs_fx_client_try_resp(struct cs_fx_client *c, struct cs_fx_resp *r, bool head);
/* The same, handing body bytes to on_body (with r->ctx = ctx) instead of keeping them. */
bool cs_fx_client_try_resp_cb(struct cs_fx_client *c, struct cs_fx_resp *r, bool head,
			      void (*on_body)(struct cs_fx_resp *r, const char *at, size_t len),
			      void *ctx);
/* The same, failing the test when the connection ends first. */
void cs_fx_client_read_resp(struct cs_fx_client *c, struct cs_fx_resp *r, bool head);
/* Send `method target` with an optional X-Vault-Token and JSON body, read the answer. */
void cs_fx_client_request(struct cs_fx_client *c, const char *method, const char *target,
			  const char *token, const char *json, struct cs_fx_resp *r);

#endif
