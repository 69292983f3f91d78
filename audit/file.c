/*
 * The file audit device. Options: file_path (required; "stdout" writes to the process's
 * standard output, "discard" drops every line), mode (octal string, default "0600";
 * "0000" leaves the mode of an existing file alone).
 *
 * Happy path: open(O_WRONLY|O_APPEND|O_CREAT) at enable/load → one write(2) per entry
 * (on the loop thread; no fsync per line, as in Vault) → SIGHUP closes and reopens the
 * path, so a rotated file is followed by a fresh one.
 * Failure modes: the open fails at enable → the enable is refused (400 with the reason);
 * at load → the device stays in the table, closed, and every write tries to open it
 * again; a write fails (EIO, ENOSPC, EBADF...) → close, reopen, retry the write once,
 * then report failure to the broker (which fails the request when no device succeeded);
 * a short write (signal, full disk) is continued until the line is complete or an error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"
#include "lib/err.h"
#include "lib/log.h"

static int file_open_fd(struct cs_audit_device *d, char *errmsg, size_t errlen)
{
	if (d->discard || !d->fd_owned)
		return 0;
	int fd = open(d->file_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
		      (mode_t)(d->mode ? d->mode : 0600));
	if (fd < 0) {
		snprintf(errmsg, errlen,
			 "sanity check failed; unable to open \"%s\" for writing: %s", d->file_path,
			 strerror(errno));
		return CS_EINVAL;
	}
	/* O_CREAT applies the mode only to a new file (and through the umask): set it. */
	struct stat st;
	if (d->mode && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (st.st_mode & 07777) != d->mode && fchmod(fd, (mode_t)d->mode) != 0) {
		snprintf(errmsg, errlen, "unable to set the mode of \"%s\": %s", d->file_path,
			 strerror(errno));
		close(fd);
		return CS_EINVAL;
	}
	d->fd = fd;
	return 0;
}

static int file_open(struct cs_audit_device *d, bool probe, char *errmsg, size_t errlen)
{
	(void)probe;
	const cJSON *fp = cJSON_GetObjectItemCaseSensitive(d->options, "file_path");
	if (!cJSON_IsString(fp) || !*fp->valuestring) {
		/* Vault also accepts the older "path" option. */
		fp = cJSON_GetObjectItemCaseSensitive(d->options, "path");
		if (!cJSON_IsString(fp) || !*fp->valuestring) {
			snprintf(errmsg, errlen, "file_path is required");
			return CS_EINVAL;
		}
	}
	free(d->file_path);
	d->file_path = strdup(fp->valuestring);
	d->mode = 0600;
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(d->options, "mode");
	if (cJSON_IsString(m) && *m->valuestring) {
		char *end = NULL;
		errno = 0;
		long v = strtol(m->valuestring, &end, 8);
		if (errno || *end || v < 0 || v > 07777) {
			snprintf(errmsg, errlen, "invalid mode \"%s\"", m->valuestring);
			return CS_EINVAL;
		}
		d->mode = (unsigned)v;
	}
	d->discard = strcmp(d->file_path, "discard") == 0;
	if (strcmp(d->file_path, "stdout") == 0) {
		d->fd = STDOUT_FILENO;
		d->fd_owned = false;
		return 0;
	}
	d->fd_owned = true;
	return file_open_fd(d, errmsg, errlen);
}

static void file_close(struct cs_audit_device *d)
{
	if (d->fd >= 0 && d->fd_owned)
		close(d->fd);
	d->fd = -1;
}

static void file_reopen(struct cs_audit_device *d)
{
	if (d->discard || !d->fd_owned)
		return;
	file_close(d);
	char err[512];
	if (file_open_fd(d, err, sizeof err))
		cs_warn("audit: reopen %s: %s", d->path, err);
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int file_write(struct cs_audit_device *d, const char *line, size_t len)
{
	if (d->discard)
		return 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (d->fd < 0 || attempt > 0) {
			file_reopen(d);
			if (d->fd < 0)
				return CS_EIO;
		}
		if (write_all(d->fd, line, len) == 0)
			return 0;
		cs_warn("audit: write to %s failed: %s", d->path, strerror(errno));
		if (!d->fd_owned)
			return CS_EIO;
	}
	return CS_EIO;
}

const struct cs_audit_ops cs_audit_file_ops = {
    .type = "file",
    .open = file_open,
    .write = file_write,
    .reopen = file_reopen,
    .close = file_close,
};
