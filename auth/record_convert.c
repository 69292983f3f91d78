/*
 * Conversion of old JSON records to the compact form (see record_convert.h). The three
 * prefixes sort as sys/expire/id/ < sys/token/accessor/ < sys/token/id/, so one cursor
 * (the last key examined) orders the whole walk.
 */
#include "auth/record_convert.h"

#include <stdlib.h>
#include <string.h>

#include "auth/expire.h"
#include "auth/record_codec.h"
#include "auth/token_internal.h"
#include "lib/err.h"
#include "lib/log.h"

struct convert_state {
	bool done;
	uint64_t converted;
};

static void convert_release(void *p)
{
	struct convert_state *c = p;
	c->done = false; /* a later unseal may open another store: look at the marker again */
}

static const struct cs_core_state_type convert_type = {
    .name = "record conversion", .size = sizeof(struct convert_state), .release = convert_release};

static struct convert_state *state_of(struct cs_core *core)
{
	return cs_core_state(core, &convert_type);
}

uint64_t cs_record_converted(struct cs_core *core)
{
	return state_of(core)->converted;
}

bool cs_record_convert_done(struct cs_core *core)
{
	return state_of(core)->done;
}

/* Rewrite `key` in the compact form if it is still JSON; *changed says whether it was. */
static int convert_one(struct cs_txn *txn, const char *key, bool *changed)
{
	*changed = false;
	struct cs_buf b = CS_BUF_INIT;
	int rc = cs_txn_get(txn, key, &b);
	if (rc == CS_ENOTFOUND)
		return 0; /* deleted in this very transaction's view: nothing to do */
	if (!rc && !cs_record_is_compact(b.data, b.len)) {
		cJSON *o = NULL;
		rc = cs_record_decode(key, b.data, b.len, &o);
		struct cs_buf out = CS_BUF_INIT;
		if (!rc)
			rc = cs_record_encode(key, o, &out);
		if (!rc)
			rc = cs_txn_put(txn, key, out.data, out.len);
		if (rc == CS_EIO) {
			/* Unreadable before and after: leave it as it is, as readers do. */
			cs_warn("records: %s does not decode; left as it is", key);
			rc = 0;
		} else if (!rc) {
			*changed = true;
		}
		cs_buf_free_secure(&out);
		cJSON_Delete(o);
	}
	cs_buf_free_secure(&b);
	return rc;
}

int cs_record_convert_periodic(struct cs_request *req)
{
	struct convert_state *C = state_of(req->core);
	if (C->done)
		return 0;
	struct cs_txn *txn = &req->txn;
	struct cs_buf b = CS_BUF_INIT;
	int rc = cs_txn_get(txn, CS_RECORD_CONVERT_MARKER, &b);
	cs_buf_free(&b);
	if (!rc) {
		C->done = true;
		return 0;
	}
	if (rc != CS_ENOTFOUND)
		return rc;
	char *cursor = NULL;
	rc = cs_txn_get(txn, CS_RECORD_CONVERT_CURSOR, &b);
	if (!rc)
		cursor = cs_buf_steal(&b, NULL);
	else if (rc != CS_ENOTFOUND)
		return rc;
	rc = 0;

	static const char *const prefixes[] = {CS_EXPIRE_PREFIX, CS_TOKEN_ACCESSOR_PREFIX,
					       CS_TOKEN_ID_PREFIX};
	size_t examined = 0, changed = 0;
	char *last = NULL;
	for (size_t p = 0; !rc && p < 3 && examined < CS_RECORD_CONVERT_BATCH; p++) {
		/* TODO(issue 16): a paged scan (cs_txn_scan_page, branch h/revoke) once merged;
		 * this one lists every key under the prefix for each run. */
		struct cs_strv keys = {0};
		rc = cs_txn_scan(txn, prefixes[p], &keys);
		for (size_t i = 0; !rc && i < keys.n && examined < CS_RECORD_CONVERT_BATCH; i++) {
			if (cursor && strcmp(keys.v[i], cursor) <= 0)
				continue;
			bool ch = false;
			rc = convert_one(txn, keys.v[i], &ch);
			changed += ch;
			examined++;
			free(last);
			last = strdup(keys.v[i]);
		}
		cs_strv_free(&keys);
	}
	if (!rc && examined < CS_RECORD_CONVERT_BATCH) {
		/* The walk reached the end: done. */
		rc = cs_txn_put(txn, CS_RECORD_CONVERT_MARKER, "1", 1);
		if (!rc) {
			rc = cs_txn_delete(txn, CS_RECORD_CONVERT_CURSOR);
			if (rc == CS_ENOTFOUND)
				rc = 0;
		}
		if (!rc)
			cs_info("records: conversion to the compact form done (%zu rewritten in "
				"the last run)",
				changed);
	} else if (!rc && last) {
		rc = cs_txn_put(txn, CS_RECORD_CONVERT_CURSOR, last, strlen(last));
		if (!rc)
			cs_info("records: converted %zu of %zu records up to %s", changed, examined,
				last);
	}
	/* Counted at once: the core commits this run's transaction after we return, and a
	 * failed commit is retried from the stored cursor by the next run, which also sees
	 * the marker once it committed. */
	if (!rc)
		C->converted += changed;
	free(last);
	free(cursor);
	return rc;
}
