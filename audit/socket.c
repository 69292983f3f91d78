/*
 * The socket audit device. Options: address ("host:port", or a path for unix),
 * socket_type (tcp — default —, udp, unix), write_timeout (Vault duration, default 2s).
 *
 * Happy path: connect when enabled (a failure refuses the enable) or lazily at the first
 * write after a load → one send loop per entry → the connection is kept.
 * Failure modes: connect or write fails or times out → close, reconnect once and retry
 * the whole line, then report the failure to the broker. A line cut by a failed write
 * may reach the collector twice (partly, then whole); collectors must tolerate that.
 *
 * Blocking bound: the device runs on the loop thread. Sockets are non-blocking; connect
 * and every wait for writability go through poll() with what is left of write_timeout,
 * so one attempt costs at most write_timeout for the connect plus write_timeout for the
 * send, and one entry at most 2 × 2 × write_timeout (with the retry). For that bound to
 * hold, nothing is resolved through DNS (getaddrinfo on a name blocks for as long as the
 * resolver takes, on the loop thread, for every request): a tcp/udp address is an IP
 * literal and a numeric port ("127.0.0.1:9090", "[::1]:9090"), or "localhost:PORT",
 * which means 127.0.0.1. Anything else is refused when the device is enabled.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "audit/audit.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/util.h"

static void sock_close(struct cs_audit_device *d)
{
	if (d->sock >= 0)
		close(d->sock);
	d->sock = -1;
}

/* The helpers below speak errno: 0, or the errno value of the failure (never -1), which
 * the device ops turn into a CS_E* code with a message. */

/* Wait until fd is writable or the deadline passes. */
static int wait_writable(int fd, uint64_t deadline)
{
	for (;;) {
		uint64_t now = cs_mono_ms();
		if (now >= deadline) {
			return ETIMEDOUT;
		}
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		int n = poll(&p, 1, (int)(deadline - now));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		if (n == 0) {
			return ETIMEDOUT;
		}
		if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) {
			int err = 0;
			socklen_t l = sizeof err;
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
			return err ? err : EPIPE;
		}
		return 0;
	}
}

/* A connected socket, or -1 with errno set (a descriptor, as socket(2) returns). */
static int connect_addr(struct cs_audit_device *d, const struct sockaddr *sa, socklen_t salen,
			int family)
{
	int fd = socket(family, d->sock_type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	uint64_t deadline = cs_mono_ms() + (uint64_t)d->write_timeout_ms;
	if (connect(fd, sa, salen) != 0) {
		int e = errno == EINPROGRESS ? wait_writable(fd, deadline) : errno;
		if (e) {
			close(fd);
			errno = e;
			return -1;
		}
		int err = 0;
		socklen_t l = sizeof err;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0 || err) {
			close(fd);
			errno = err ? err : ECONNREFUSED;
			return -1;
		}
	}
	return fd;
}

/* "IP:PORT", "[IPv6]:PORT" or "localhost:PORT" to addresses without touching DNS (the
 * device runs on the loop thread). 0, or EINVAL when the address is not of that form. */
static int numeric_addr(const char *address, int sock_type, struct addrinfo **res)
{
	char host[256];
	const char *colon = strrchr(address, ':');
	if (!colon || !colon[1])
		return EINVAL;
	const char *h = address;
	size_t hl = (size_t)(colon - h);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
		h++, hl -= 2;
	if (hl == 0 || hl >= sizeof host)
		return EINVAL;
	snprintf(host, sizeof host, "%.*s", (int)hl, h);
	if (strcmp(host, "localhost") == 0)
		snprintf(host, sizeof host, "127.0.0.1");
	/* Numeric host and port only: getaddrinfo does no lookup, so it never blocks. */
	struct addrinfo hints = {.ai_socktype = sock_type,
				 .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
	return getaddrinfo(host, colon + 1, &hints, res) == 0 ? 0 : EINVAL;
}

static int sock_connect(struct cs_audit_device *d)
{
	if (d->sock >= 0)
		return 0;
	if (d->family == AF_UNIX) {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		snprintf(sun.sun_path, sizeof sun.sun_path, "%s", d->address);
		d->sock = connect_addr(d, (struct sockaddr *)&sun, sizeof sun, AF_UNIX);
		return d->sock >= 0 ? 0 : errno;
	}
	struct addrinfo *res = NULL;
	if (numeric_addr(d->address, d->sock_type, &res) != 0)
		return EINVAL;
	int e = ECONNREFUSED;
	for (struct addrinfo *ai = res; ai && d->sock < 0; ai = ai->ai_next) {
		d->sock = connect_addr(d, ai->ai_addr, ai->ai_addrlen, ai->ai_family);
		if (d->sock < 0)
			e = errno;
	}
	freeaddrinfo(res);
	return d->sock >= 0 ? 0 : e;
}

static int send_all(struct cs_audit_device *d, const char *p, size_t len)
{
	uint64_t deadline = cs_mono_ms() + (uint64_t)d->write_timeout_ms;
	while (len > 0) {
		ssize_t n = send(d->sock, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int e = wait_writable(d->sock, deadline);
			if (e)
				return e;
			continue;
		}
		if (n < 0)
			return errno;
		if (n == 0)
			return EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int sock_open(struct cs_audit_device *d, bool probe, char *errmsg, size_t errlen)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(d->options, "address");
	if (!cJSON_IsString(a) || !*a->valuestring) {
		snprintf(errmsg, errlen, "address is required");
		return CS_EINVAL;
	}
	free(d->address);
	d->address = strdup(a->valuestring);
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(d->options, "socket_type");
	const char *type = cJSON_IsString(t) && *t->valuestring ? t->valuestring : "tcp";
	if (strcmp(type, "tcp") == 0) {
		d->sock_type = SOCK_STREAM, d->family = AF_UNSPEC;
	} else if (strcmp(type, "udp") == 0) {
		d->sock_type = SOCK_DGRAM, d->family = AF_UNSPEC;
	} else if (strcmp(type, "unix") == 0) {
		d->sock_type = SOCK_STREAM, d->family = AF_UNIX;
	} else {
		snprintf(errmsg, errlen, "unsupported socket_type \"%s\"", type);
		return CS_EINVAL;
	}
	d->write_timeout_ms = 2000;
	const cJSON *wt = cJSON_GetObjectItemCaseSensitive(d->options, "write_timeout");
	if (cJSON_IsString(wt) && *wt->valuestring) {
		int64_t secs;
		if (cs_parse_duration(wt->valuestring, &secs) || secs < 0 || secs > 3600) {
			snprintf(errmsg, errlen, "invalid write_timeout \"%s\"", wt->valuestring);
			return CS_EINVAL;
		}
		d->write_timeout_ms = secs ? (int)secs * 1000 : 2000;
	}
	struct addrinfo *res = NULL;
	if (d->family != AF_UNIX) {
		if (numeric_addr(d->address, d->sock_type, &res) != 0) {
			snprintf(errmsg, errlen,
				 "address \"%s\" must be IP:PORT, [IPv6]:PORT or localhost:PORT "
				 "(host names are not resolved: a DNS lookup would stall every "
				 "request)",
				 d->address);
			return CS_EINVAL;
		}
		freeaddrinfo(res);
	}
	if (!probe)
		return 0;
	int e = sock_connect(d);
	if (e) {
		snprintf(errmsg, errlen, "error connecting to %s socket at %s: %s", type,
			 d->address, strerror(e));
		return CS_EINVAL;
	}
	return 0;
}

static int sock_write(struct cs_audit_device *d, const char *line, size_t len)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		if (attempt > 0)
			sock_close(d);
		int e = sock_connect(d);
		if (!e)
			e = send_all(d, line, len);
		if (!e)
			return 0;
		cs_warn("audit: socket device %s (%s): %s", d->path, d->address, strerror(e));
	}
	sock_close(d);
	return CS_EIO;
}

static void sock_reopen(struct cs_audit_device *d)
{
	sock_close(d); /* the next write reconnects */
}

const struct cs_audit_ops cs_audit_socket_ops = {
    .type = "socket",
    .open = sock_open,
    .write = sock_write,
    .reopen = sock_reopen,
    .close = sock_close,
};
