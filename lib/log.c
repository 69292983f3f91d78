#include "lib/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static enum cs_log_level current = CS_LOG_INFO;

void cs_log_set_level(enum cs_log_level level)
{
	current = level;
}
enum cs_log_level cs_log_get_level(void)
{
	return current;
}

int cs_log_parse_level(const char *name)
{
	static const char *names[] = {"trace", "debug", "info", "warn", "error"};
	for (int i = 0; i < 5; i++)
		if (strcasecmp(name, names[i]) == 0)
			return i;
	if (strcasecmp(name, "warning") == 0)
		return CS_LOG_WARN;
	if (strcasecmp(name, "err") == 0)
		return CS_LOG_ERROR;
	return -1;
}

void cs_log(enum cs_log_level level, const char *fmt, ...)
{
	static const char *tags[] = {"[TRACE]", "[DEBUG]", "[INFO] ", "[WARN] ", "[ERROR]"};
	if (level < current)
		return;
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	char line[2048];
	int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, ts.tv_nsec / 1000000, tags[level]);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof line - 2)
		len = sizeof line - 2;
	line[len++] = '\n';
	fwrite(line, 1, len, stderr);
}
