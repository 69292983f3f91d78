/*
 * c-raft 0.15 message framing check (contract and grammar in wire.h).
 *
 * A byte-at-a-time capable state machine: fixed-size fields are collected in w->buf,
 * variable parts (configuration addresses, spare header bytes, payloads) are scanned or
 * skipped without copying. Every header byte is counted against the header length the
 * preamble announced, so a message whose fields and declared length disagree is refused
 * at the first byte that shows it.
 */
#include "raft/wire.h"

#include <stdbool.h>
#include <string.h>

enum {
	W_PREAMBLE,
	W_FIXED,     /* AppendEntries / InstallSnapshot fixed fields */
	W_ENTRY,     /* one AppendEntries entry header */
	W_CONF_HEAD, /* configuration: format byte + server count */
	W_CONF_ID,
	W_CONF_ADDR,
	W_CONF_ROLE,
	W_CONF_PAD, /* configuration bytes after the last server */
	W_DATALEN,  /* InstallSnapshot: snapshot data length */
	W_SLACK,    /* header bytes with nothing to check */
	W_PAYLOAD,
	W_FAILED,
};

/* c-raft's message types (raft.h: RAFT_IO_*) and entry types (RAFT_COMMAND..CHANGE). */
enum { T_AE = 1, T_AER, T_RV, T_RVR, T_IS, T_TN };
#define ENTRY_TYPE_MAX 3
#define ROLE_MAX       2 /* RAFT_STANDBY 0, RAFT_VOTER 1, RAFT_SPARE 2 */
#define CONF_FORMAT    1
#define FIXED_LEN      40 /* AE: term, prev index, prev term, commit, n; IS: 5 u64 */
#define SPARE          8  /* header bytes c-raft counts but never writes */

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static int fail(struct cs_wire *w, const char *why)
{
	w->state = W_FAILED;
	w->error = why;
	return -1;
}

static void expect(struct cs_wire *w, int state, size_t want)
{
	w->state = state;
	w->have = 0;
	w->want = want;
}

void cs_wire_init(struct cs_wire *w, uint64_t max_payload)
{
	memset(w, 0, sizeof *w);
	w->max_payload = max_payload ? max_payload : CS_WIRE_DEFAULT_PAYLOAD;
	expect(w, W_PREAMBLE, 16);
}

/* The header's structured fields are done: `spare` bytes may remain (0 or SPARE). */
static int header_tail(struct cs_wire *w)
{
	if (w->hleft != 0 && w->hleft != SPARE)
		return fail(w, "header length does not match its fields");
	w->state = W_SLACK;
	return 0;
}

/* Header fully consumed: the payload, or the next message. */
static void header_done(struct cs_wire *w)
{
	if (w->payload > 0) {
		w->state = W_PAYLOAD;
		return;
	}
	w->messages++;
	expect(w, W_PREAMBLE, 16);
}

static int on_preamble(struct cs_wire *w)
{
	uint64_t type = le64(w->buf), hlen = le64(w->buf + 8);
	w->type = type;
	w->hleft = hlen;
	w->payload = 0;
	switch (type) {
	case T_AE:
		if (hlen < FIXED_LEN || hlen > FIXED_LEN + SPARE + 16 * CS_WIRE_MAX_ENTRIES)
			return fail(w, "bad AppendEntries header length");
		expect(w, W_FIXED, FIXED_LEN);
		return 0;
	case T_IS:
		if (hlen < FIXED_LEN + 9 + 8 || hlen > FIXED_LEN + CS_WIRE_MAX_CONF + 8 + SPARE)
			return fail(w, "bad InstallSnapshot header length");
		expect(w, W_FIXED, FIXED_LEN);
		return 0;
	case T_AER:
	case T_TN:
		if (hlen != 24)
			return fail(w, "bad header length");
		break;
	case T_RV:
		if (hlen != 32 && hlen != 40)
			return fail(w, "bad RequestVote header length");
		break;
	case T_RVR:
		if (hlen != 16 && hlen != 24)
			return fail(w, "bad RequestVoteResult header length");
		break;
	default:
		return fail(w, "unknown raft message type");
	}
	w->state = W_SLACK;
	return 0;
}

static int on_fixed(struct cs_wire *w)
{
	w->hleft -= FIXED_LEN;
	if (w->type == T_AE) {
		uint64_t n = le64(w->buf + 32);
		if (n > CS_WIRE_MAX_ENTRIES || w->hleft < 16 * n || w->hleft - 16 * n > SPARE)
			return fail(w, "AppendEntries entry count does not match its header");
		w->count = n;
		if (n == 0)
			return header_tail(w);
		expect(w, W_ENTRY, 16);
		return 0;
	}
	uint64_t conf_len = le64(w->buf + 32);
	if (conf_len < 9 || conf_len > CS_WIRE_MAX_CONF || w->hleft < conf_len + 8 ||
	    w->hleft - conf_len - 8 > SPARE)
		return fail(w, "bad InstallSnapshot configuration length");
	w->conf_left = conf_len;
	expect(w, W_CONF_HEAD, 9);
	return 0;
}

static int on_entry(struct cs_wire *w)
{
	w->hleft -= 16;
	uint8_t type = w->buf[8];
	uint64_t len = (uint64_t)w->buf[12] | (uint64_t)w->buf[13] << 8 |
		       (uint64_t)w->buf[14] << 16 | (uint64_t)w->buf[15] << 24;
	if (type < 1 || type > ENTRY_TYPE_MAX)
		return fail(w, "bad entry type");
	/* Empty entries too: with no payload at all c-raft never sets the entries' buffers
	 * and batch pointers (uvDecodeEntriesBatch is skipped) and frees garbage later. */
	if (len == 0 || len % 8 != 0 || len > CS_WIRE_MAX_ENTRY)
		return fail(w, "bad entry length");
	w->payload += len;
	if (w->payload > w->max_payload)
		return fail(w, "AppendEntries payload too large");
	if (--w->count > 0) {
		expect(w, W_ENTRY, 16);
		return 0;
	}
	return header_tail(w);
}

/* The next configuration server, or the padding after the last one. */
static void conf_next(struct cs_wire *w)
{
	if (w->count > 0)
		expect(w, W_CONF_ID, 8);
	else
		w->state = W_CONF_PAD;
}

/* Collected configuration bytes were consumed from both the conf and the header. */
static void conf_took(struct cs_wire *w, uint64_t n)
{
	w->conf_left -= n;
	w->hleft -= n;
}

static int on_conf_field(struct cs_wire *w)
{
	conf_took(w, w->want);
	switch (w->state) {
	case W_CONF_HEAD:
		if (w->buf[0] != CONF_FORMAT)
			return fail(w, "bad configuration format");
		w->count = le64(w->buf + 1);
		/* each server takes at least 11 bytes: id, one address byte and NUL, role */
		if (w->count > w->conf_left / 11)
			return fail(w, "bad configuration server count");
		conf_next(w);
		return 0;
	case W_CONF_ID:
		if (le64(w->buf) == 0)
			return fail(w, "configuration server id 0");
		w->state = W_CONF_ADDR;
		w->have = 0; /* address length so far */
		return 0;
	default: /* W_CONF_ROLE */
		if (w->buf[0] > ROLE_MAX)
			return fail(w, "bad configuration role");
		w->count--;
		conf_next(w);
		return 0;
	}
}

/* A fixed field must fit in what the configuration (or the header) has left; both are
 * consumed when the field is complete. */
static size_t fixed_room(const struct cs_wire *w)
{
	bool conf = w->state >= W_CONF_HEAD && w->state <= W_CONF_ROLE;
	return conf ? (size_t)w->conf_left : (size_t)w->hleft;
}

static int step_complete(struct cs_wire *w)
{
	switch (w->state) {
	case W_PREAMBLE:
		return on_preamble(w);
	case W_FIXED:
		return on_fixed(w);
	case W_ENTRY:
		return on_entry(w);
	case W_DATALEN: {
		w->hleft -= 8;
		uint64_t len = le64(w->buf);
		if (len == 0 || len > w->max_payload)
			return fail(w, "bad snapshot data length");
		w->payload = len;
		return header_tail(w);
	}
	default:
		return on_conf_field(w);
	}
}

int cs_wire_feed(struct cs_wire *w, const uint8_t *p, size_t len)
{
	while (len > 0 || (w->state == W_SLACK && w->hleft == 0) ||
	       (w->state == W_CONF_PAD && w->conf_left == 0)) {
		size_t n;
		switch (w->state) {
		case W_FAILED:
			return -1;
		case W_SLACK:
			n = w->hleft < len ? (size_t)w->hleft : len;
			w->hleft -= n;
			if (w->hleft == 0)
				header_done(w);
			break;
		case W_PAYLOAD:
			n = w->payload < len ? (size_t)w->payload : len;
			w->payload -= n;
			if (w->payload == 0) {
				w->messages++;
				expect(w, W_PREAMBLE, 16);
			}
			break;
		case W_CONF_PAD:
			n = w->conf_left < len ? (size_t)w->conf_left : len;
			conf_took(w, n);
			if (w->conf_left == 0)
				expect(w, W_DATALEN, 8);
			break;
		case W_CONF_ADDR: {
			const uint8_t *nul = memchr(p, 0, len);
			n = nul ? (size_t)(nul - p) + 1 : len;
			if (n > w->conf_left || (nul && n == 1 && w->have == 0))
				return fail(w, "bad configuration address");
			conf_took(w, n);
			w->have += n;
			if (nul)
				expect(w, W_CONF_ROLE, 1);
			break;
		}
		default: {
			if (w->state != W_PREAMBLE && w->want > fixed_room(w))
				return fail(w, "header shorter than its fields");
			n = w->want - w->have < len ? w->want - w->have : len;
			memcpy(w->buf + w->have, p, n);
			w->have += n;
			if (w->have == w->want && step_complete(w) != 0)
				return -1;
			break;
		}
		}
		p += n;
		len -= n;
	}
	return w->state == W_FAILED ? -1 : 0;
}
