/*
 * Audit devices: the broker (device table, entry formatting, HMAC, fail-closed) and the
 * device types (audit/file.c, audit/socket.c). Vault semantics throughout:
 *
 * - sys/audit (list), sys/audit/:path (enable, disable), sys/audit-hash/:path. All but
 *   audit-hash are sudo paths.
 * - The table lives in storage at core/audit (barrier-encrypted, Vault's mount-table JSON
 *   shape, "table":"audit") and each device's HMAC salt at audit/<uuid>/salt (32 random
 *   bytes, behind the barrier, replicated: every node hashes alike). The in-memory table
 *   is dropped by the backend reset hook (seal, leadership loss, post-unseal rebuild) and
 *   reloaded lazily, from a private read transaction, by the next audited request.
 * - Every request handled by the logical router on the active node is audited: a request
 *   entry once the token has been looked up (before the ACL check and the handler; a
 *   request refused at that point is logged with its error and gets no response entry),
 *   a response entry right before the HTTP response is sent. Not audited, as in Vault
 *   where the HTTP layer answers them: sys/init, seal-status, unseal, health, leader
 *   (the CS_PATH_SEALED_OK rows), requests refused before routing (bad method, bad body,
 *   sealed), and anything on a standby.
 * - Entries are JSON lines in Vault's shape. Every string inside request data and response
 *   data is replaced by "hmac-sha256:<hex>" (HMAC-SHA256 keyed by the device salt), as are
 *   client tokens, token accessors (unless hmac_accessor=false) and the wrapping token and
 *   accessors. Numbers, booleans and nulls are left as they are. Unlike Vault's
 *   HashStructure, a string that parses as an RFC 3339 timestamp is hashed too: a secret
 *   shaped like a date is still a secret. What stays readable is Vault's envelope, the
 *   fields the server itself fills in: time, type, error, request id / operation / path /
 *   namespace / mount_* / remote_address / remote_port / wrap_ttl, the auth blocks' names,
 *   policies, metadata, token type/ttl/issue time, a response's secret.lease_id, warnings
 *   and wrap_info's ttl / creation_time / creation_path. log_raw=true turns all hashing
 *   off.
 * - File device rules and the "prefix" option: see file.c and cs_audit_limits.
 * - Fail closed: when at least one device is enabled and none could write the request
 *   entry, the request fails with 500 "failed to audit request" before the handler ran
 *   (its transaction is aborted: nothing changes). When none could write the response
 *   entry the client gets 500 "failed to audit response". Writes are committed through
 *   raft before the response is formatted, so in that case the write HAS happened even
 *   though the client saw an error (Vault behaves the same). With no device enabled,
 *   nothing is logged and nothing fails.
 *
 * Threading: everything runs on the loop thread, including the device writes. A file
 * device costs one write(2) per entry (no fsync per line, as in Vault); a socket device
 * blocks at most 2 × (connect + write) × write_timeout per entry (see socket.c).
 */
#ifndef CS_AUDIT_AUDIT_H
#define CS_AUDIT_AUDIT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct cs_core;
struct cs_request;

#define CS_AUDIT_SALT_LEN 32

struct cs_audit_device;

/* One device type. All callbacks run on the loop thread. */
struct cs_audit_ops {
	const char *type;
	/* Parse the type's options from d->options (strings) and open the device. `probe`:
	 * the device is being enabled (connect now; a failure refuses the enable) rather
	 * than reloaded (a socket connects lazily). 0, or CS_EINVAL/CS_EIO with errmsg. */
	int (*open)(struct cs_audit_device *d, bool probe, char *errmsg, size_t errlen);
	/* Write one complete line (ends with '\n'). 0 or CS_EIO; the device retries once
	 * itself (reopen / reconnect) before failing. */
	int (*write)(struct cs_audit_device *d, const char *line, size_t len);
	/* Close and open again (SIGHUP, log rotation). Errors are logged, and the next write
	 * tries again. */
	void (*reopen)(struct cs_audit_device *d);
	/* Release every resource; d itself stays owned by the broker. */
	void (*close)(struct cs_audit_device *d);
};

/* Limits from the server config that devices enforce (CVE-2025-6000 / HCSEC-2025-14):
 * each device carries its core's (cs_audit_device.limits). */
struct cs_audit_limits {
	char storage_dir[4096]; /* raft/LMDB data directory: no file device inside; "" none */
	/* allow_audit_log_prefixing: the API may set "prefix" and a file mode wider than
	 * 0600. Vault 1.20's key; false by default. */
	bool allow_prefixing;
};
/* Fill *l (storage_dir may be NULL). The broker does, from the core, before it opens a
 * device; tests call it directly. */
void cs_audit_limits_set(struct cs_audit_limits *l, const char *storage_dir, bool allow_prefixing);

struct cs_audit_device {
	char *path; /* "file/" */
	char *type;
	char *description;
	cJSON *options; /* object of strings, as stored and listed */
	bool local;
	char uuid[37];
	char accessor[64];
	uint8_t *salt; /* secmem, CS_AUDIT_SALT_LEN; NULL when it could not be loaded */
	/* Common options. */
	bool log_raw;
	bool hmac_accessor;
	bool elide_list;
	char *prefix; /* written before every line; "" when unset */
	const struct cs_audit_ops *ops;
	struct cs_audit_limits limits; /* set before cs_audit_device_init */
	/* file device (file.c) */
	int fd;
	bool fd_owned; /* false for stdout */
	bool discard;
	char *file_path;
	unsigned mode;
	/* socket device (socket.c) */
	int sock;
	int sock_type; /* SOCK_STREAM / SOCK_DGRAM */
	int family;
	char *address;
	int write_timeout_ms;
};

extern const struct cs_audit_ops cs_audit_file_ops;
extern const struct cs_audit_ops cs_audit_socket_ops;

/* Register the broker with the core (cs_core_set_audit), the sys/ paths and the reset
 * hook. Call once at start-up from main(). */
void cs_audit_register(struct cs_core *core);

/*
 * Pipeline hook (a), from the core right after the token lookup (authorize) with its
 * result `rc`. Writes the request entry to every device. Returns rc when rc != 0 (the
 * refused request is logged with its error); otherwise 0, or CS_EINTERNAL with the
 * message "failed to audit request" when devices are enabled and none recorded it.
 * Keeps a small record of the request (id, pre-handler data) until the response hook;
 * may be called again for the same request (a re-run after parking): the record is
 * replaced.
 */
int cs_audit_request(struct cs_request *req, int rc);

/*
 * Pipeline hook (b), right before the core sends the response: *status and *body (the
 * JSON about to be sent, malloc'd, NULL for an empty 204) are the response. Writes the
 * response entry for a request that got a request entry, and drops the record. The
 * envelope's request_id is rewritten in place to the audit request id (Vault: they are
 * the same). When no device records the entry, *body is replaced by a 500 error body
 * ("failed to audit response"; the old one is zeroised and freed), *len and *status
 * updated. Never fails otherwise.
 */
void cs_audit_response(struct cs_request *req, int *status, char **body, size_t *len);
/* Drop a request entry whose response will never be logged (the request is freed). */
void cs_audit_discard(struct cs_request *req);

/* SIGHUP: reopen every device (file rotation). Loop thread. */
void cs_audit_reopen(struct cs_core *core);

/* Drop the in-memory table and close the devices (the reset hook). */
void cs_audit_reset(struct cs_core *core);

/* ---- exposed for the unit tests ---- */

/* "hmac-sha256:<hex>" of s under salt (malloc'd). */
char *cs_audit_hmac(const uint8_t *salt, size_t salt_len, const char *s);
/* Replace every string value inside `v` (objects and arrays, recursively; never keys)
 * by its HMAC. */
void cs_audit_hash_tree(cJSON *v, const uint8_t *salt, size_t salt_len);
/*
 * Format one entry for device d from an unhashed template {"auth":{...},"request":{...}}
 * plus, for a response, `response` (may be NULL) and `error` (may be NULL). Returns the
 * whole line (prefix, JSON, '\n'), malloc'd, length in *len. The template is not
 * modified.
 */
char *cs_audit_format(const struct cs_audit_device *d, const char *type, const cJSON *tmpl,
		      const cJSON *response, const char *error, size_t *len);
/* Device set-up from type/options without the broker (tests); see ops->open. `probe`
 * also means "enabled over the API": the options are then held to the limits ("prefix"
 * only with allow_prefixing, no executable file mode, ...). */
int cs_audit_device_init(struct cs_audit_device *d, const char *type, const cJSON *options,
			 bool probe, char *errmsg, size_t errlen);
void cs_audit_device_free(struct cs_audit_device *d);

#endif
