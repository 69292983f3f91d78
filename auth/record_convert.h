/*
 * Upgrade of stores written before the compact records (auth/record_codec.h): the token
 * store's periodic function rewrites old JSON token entries, accessor index entries and
 * lease records in the compact form, on the active node, CS_RECORD_CONVERT_BATCH records
 * per run (a run is one transaction; the first run starts as soon as a node becomes
 * active, then one every periodic_interval). Progress is the last key examined, kept in
 * storage (CS_RECORD_CONVERT_CURSOR), so a restart or a new leader resumes where the last
 * committed run stopped; a marker key (CS_RECORD_CONVERT_MARKER) records completion, after
 * which a run costs one read. Everything goes through raft, so on a cluster the records
 * are converted once and every node gets the same bytes. Readers take both forms all along.
 */
#ifndef CS_AUTH_RECORD_CONVERT_H
#define CS_AUTH_RECORD_CONVERT_H

#include "server/backend.h"

#define CS_RECORD_CONVERT_MARKER "sys/token/records-v1"
#define CS_RECORD_CONVERT_CURSOR "sys/token/records-v1-cursor"
#define CS_RECORD_CONVERT_BATCH  2048

/* The token backend's `periodic` handler (internal request, active node). */
int cs_record_convert_periodic(struct cs_request *req);
/* For tests: records rewritten by this core since start, and whether the marker was seen
 * or written. */
uint64_t cs_record_converted(struct cs_core *core);
bool cs_record_convert_done(struct cs_core *core);

#endif
