/*
 * Logging to stderr, one line per event: "2026-11-22T13:54:08.123Z [INFO]  module: text".
 * Never pass secrets (tokens, keys, values) to these functions: log paths, ids, counts.
 */
#ifndef CS_LIB_LOG_H
#define CS_LIB_LOG_H

enum cs_log_level { CS_LOG_TRACE, CS_LOG_DEBUG, CS_LOG_INFO, CS_LOG_WARN, CS_LOG_ERROR };

void cs_log_set_level(enum cs_log_level level);
enum cs_log_level cs_log_get_level(void);
/* "trace", "debug", "info", "warn"/"warning", "error" → level; -1 if unknown. */
int cs_log_parse_level(const char *name);
void cs_log(enum cs_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define cs_trace(...) cs_log(CS_LOG_TRACE, __VA_ARGS__)
#define cs_debug(...) cs_log(CS_LOG_DEBUG, __VA_ARGS__)
#define cs_info(...)  cs_log(CS_LOG_INFO, __VA_ARGS__)
#define cs_warn(...)  cs_log(CS_LOG_WARN, __VA_ARGS__)
#define cs_error(...) cs_log(CS_LOG_ERROR, __VA_ARGS__)

#endif
