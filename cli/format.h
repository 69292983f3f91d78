/*
 * Output formatting for the CLI, reproducing what the Vault CLI prints so scripts that
 * parse `vault` output keep working: Go-style JSON (2-space indent, HTML-safe escapes,
 * map keys sorted), Go `%v` rendering of JSON values in tables, columnize-style aligned
 * tables with a dashed header row, and kr/text-style paragraph wrapping.
 *
 * Everything appends to a caller-owned struct cs_buf; nothing here writes to a file
 * descriptor, allocates beyond the buffers it is given (lines excepted), or keeps state.
 * Callers that print secrets free the buffers with cs_buf_free_secure.
 */
#ifndef CS_CLI_FORMAT_H
#define CS_CLI_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "lib/buf.h"

/* The column delimiter Vault uses for tables whose cells may contain '|' (U+2668). */
#define CS_FMT_DELIM "\xe2\x99\xa8"

/* Vault wraps explanatory paragraphs at this many columns. */
#define CS_FMT_WRAP 78

/*
 * JSON as Go's json.MarshalIndent(v, "", "  ") prints it: two-space indentation, `{}`
 * and `[]` for empty containers, <, > and & escaped as \u003c etc. Object keys are
 * sorted (Go sorts map keys) at every level below the top; at the top level only when
 * sort_top is set (callers build top-level objects in Vault's struct field order). No
 * trailing newline.
 */
void cs_fmt_json(struct cs_buf *out, const cJSON *v, bool sort_top);

/* A JSON value as Go's fmt "%v" prints the decoded value: strings raw, numbers as
 * written, null as "<nil>", arrays "[a b]", objects "map[k:v ...]" with sorted keys. */
void cs_fmt_value(struct cs_buf *out, const cJSON *v);

/* A JSON number as Go prints a json.Number decoded from it (integers without a decimal
 * point, otherwise the shortest round-trip form). */
void cs_fmt_number(struct cs_buf *out, double d);

/* Go's time.Duration String() of whole seconds ("768h0m0s"), and Vault's humanDuration
 * that drops zero minutes/seconds ("768h", "1h30m", "0s"). out >= 32 bytes. */
void cs_fmt_go_duration(int64_t secs, char *out, size_t outlen);
void cs_fmt_human_duration(int64_t secs, char *out, size_t outlen);

/* Vault's looksLikeDuration: "ttl", "*_ttl", "period", "*_period", "duration",
 * "*_duration", "lease_max", "ttl_max". */
bool cs_fmt_looks_like_duration(const char *key);

/* A growable list of table lines, cells separated by a delimiter. Lines are malloc'd
 * copies; cs_fmt_lines_free wipes them (cells may hold secret values). */
struct cs_fmt_lines {
	char **v;
	size_t n, cap;
};
void cs_fmt_lines_add(struct cs_fmt_lines *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void cs_fmt_lines_free(struct cs_fmt_lines *l);

/*
 * Columnize (github.com/ryanuber/columnize with Vault's settings): split every line on
 * `delim`, trim cells, show empty cells as "n/a", pad every column but a line's last to
 * the widest cell (in code points) and join with four spaces. cs_fmt_table first inserts
 * a row of dashes under the header line, as Vault's tableOutput does. No trailing
 * newline; nothing is appended for an empty list.
 */
void cs_fmt_columns(struct cs_buf *out, const struct cs_fmt_lines *l, const char *delim);
void cs_fmt_table(struct cs_buf *out, const struct cs_fmt_lines *l, const char *delim);

/* Wrap a paragraph to CS_FMT_WRAP - pad columns with minimal raggedness (kr/text), each
 * line indented by `pad` spaces. Newlines in s count as spaces. No trailing newline. */
void cs_fmt_wrap(struct cs_buf *out, const char *s, int pad);

/* Vault's printWarnings: if the secret has warnings, the "WARNING!" block (for stderr). */
void cs_fmt_warnings(struct cs_buf *out, const cJSON *secret);

/* Vault's table rendering of a response envelope (lease/refresh_interval rows, auth and
 * wrap_info rows, then the data keys sorted). Appends nothing when there is nothing to
 * show. Warnings are not included (see cs_fmt_warnings). */
void cs_fmt_secret_table(struct cs_buf *out, const cJSON *secret);

/* The `vault status` table from a seal-status object that also carries the sys/leader
 * fields (ha_enabled, is_self, active_time, leader_address, leader_cluster_address,
 * raft_committed_index, raft_applied_index). */
void cs_fmt_seal_status_table(struct cs_buf *out, const cJSON *status);

/* The "Keys\n----\n..." table of a LIST response's keys (sorted). */
void cs_fmt_keys_table(struct cs_buf *out, const cJSON *keys);

#endif
