/*
 * The file audit device. Options: file_path (required; "stdout" writes to the process's
 * standard output, "discard" drops every line), mode (octal string, default "0600"; the
 * mode of a file the device creates; "0000" means the default).
 *
 * Where it may write (CVE-2025-6000 / HCSEC-2025-14: an API caller with sudo on
 * sys/audit must not get a "write any file" or "chmod any file" primitive on the host):
 * - the parent directory is resolved (realpath), opened, and the directory actually
 *   opened (read back from /proc/self/fd, so a parent swapped for a symlink after the
 *   realpath is seen) must not be inside the storage directory (raft log and LMDB) nor
 *   the directory of the running binary; no directory is ever created;
 * - the last component is opened with O_NOFOLLOW relative to that directory, and must be
 *   a regular file (no symlink, device, FIFO or socket; O_NONBLOCK so a FIFO cannot stall
 *   the loop in open);
 * - `mode` is applied only to a file the device creates (O_EXCL tells), never to an
 *   existing one; executable, setuid, setgid and sticky bits are refused at enable, and a
 *   mode wider than 0600 is accepted over the API only with allow_audit_log_prefixing.
 * These checks run at every open (enable, load after unseal, SIGHUP reopen, retry), so a
 * symlink planted after the enable is refused too.
 *
 * Happy path: open(O_WRONLY|O_APPEND) at enable/load → one write(2) per entry (on the loop
 * thread; no fsync per line, as in Vault) → SIGHUP closes and reopens the path, so a
 * rotated file is followed by a fresh one.
 * Failure modes: the open fails or is refused at enable → the enable is refused (400 with
 * the reason, nothing stored); at load → the device stays in the table, closed, and every
 * write tries to open it again; a write fails (EIO, ENOSPC, EFBIG...) → close, reopen,
 * retry the write once, then report failure to the broker (which fails the request when
 * no device succeeded); a short write (signal, full disk) is continued until the line is
 * complete or an error.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"
#include "lib/err.h"
#include "lib/log.h"

/* true if `path` is `dir` or below it (both canonical, no trailing '/'). */
static bool inside(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	if (n == 0)
		return false;
	if (strcmp(dir, "/") == 0)
		return true;
	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* The canonical form of `dir` into out (PATH_MAX); the text itself when it cannot be
 * resolved (a directory that does not exist holds nothing to protect yet). */
static void canonical(const char *dir, char *out)
{
	if (!realpath(dir, out))
		snprintf(out, PATH_MAX, "%s", dir);
}

/* Why the directory opened as dfd may not hold an audit log, or NULL. */
static const char *forbidden_dir(const struct cs_audit_device *d, int dfd)
{
	char link[64], opened[PATH_MAX], guard[PATH_MAX];
	snprintf(link, sizeof link, "/proc/self/fd/%d", dfd);
	ssize_t n = readlink(link, opened, sizeof opened - 1);
	if (n <= 0)
		return "cannot resolve its directory";
	opened[n] = '\0';
	const struct cs_audit_limits *lim = &d->limits;
	if (lim->storage_dir[0]) {
		canonical(lim->storage_dir, guard);
		if (inside(opened, guard))
			return "the path is inside the storage directory";
	}
	n = readlink("/proc/self/exe", guard, sizeof guard - 1);
	if (n > 0) {
		guard[n] = '\0';
		char *slash = strrchr(guard, '/');
		if (slash)
			*(slash == guard ? slash + 1 : slash) = '\0';
		char exe_dir[PATH_MAX];
		canonical(guard, exe_dir);
		if (inside(opened, exe_dir))
			return "the path is inside the directory of the custos binary";
	}
	return NULL;
}

#define OPEN_FLAGS (O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)

/* Open `base` in the directory dfd: create it with `mode`, or append to an existing
 * regular file without touching its mode. Returns the fd, or -1 with *why set. */
static int open_in(int dfd, const char *base, unsigned mode, const char **why)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		struct stat st;
		if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			if (S_ISLNK(st.st_mode)) {
				*why = "refusing to follow a symbolic link";
				return -1;
			}
			if (!S_ISREG(st.st_mode)) {
				*why = "not a regular file (use \"stdout\" or \"discard\")";
				return -1;
			}
			int fd = openat(dfd, base, OPEN_FLAGS);
			if (fd >= 0 || errno != ENOENT)
				return fd; /* ELOOP: a symlink swapped in since the fstatat */
			continue;          /* removed meanwhile: create it */
		}
		if (errno != ENOENT)
			return -1;
		int fd = openat(dfd, base, OPEN_FLAGS | O_CREAT | O_EXCL, (mode_t)mode);
		if (fd >= 0) {
			/* Ours: set exactly the mode asked for, whatever the umask. */
			if (fchmod(fd, (mode_t)mode) != 0) {
				int e = errno;
				close(fd);
				errno = e;
				return -1;
			}
			return fd;
		}
		if (errno != EEXIST)
			return -1;
		/* created by someone else meanwhile: look at it again */
	}
	*why = "the file keeps changing";
	return -1;
}

static int file_open_fd(struct cs_audit_device *d, char *errmsg, size_t errlen)
{
	if (d->discard || !d->fd_owned)
		return 0;
	const char *path = d->file_path, *why = NULL;
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	char dir[PATH_MAX], real[PATH_MAX];
	if (slash)
		snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
	else
		snprintf(dir, sizeof dir, ".");
	int dfd = -1, fd = -1;
	errno = 0;
	if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
		why = "file_path must name a file";
	else if (!realpath(dir, real) || (dfd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		why = NULL; /* errno says why */
	else if (!(why = forbidden_dir(d, dfd)))
		fd = open_in(dfd, base, d->mode ? d->mode : 0600, &why);
	if (fd >= 0) {
		struct stat st;
		/* Re-checked on the open file: nothing may have been swapped in. */
		if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
			why = "not a regular file";
			close(fd);
			fd = -1;
		} else {
			fcntl(fd, F_SETFL, O_WRONLY | O_APPEND); /* blocking writes from now on */
		}
	}
	int e = errno;
	if (dfd >= 0)
		close(dfd);
	if (fd < 0) {
		snprintf(errmsg, errlen,
			 "sanity check failed; unable to open \"%s\" for writing: %s", path,
			 why ? why
			     : (e == ELOOP ? "refusing to follow a symbolic link" : strerror(e)));
		return CS_EINVAL;
	}
	d->fd = fd;
	return 0;
}

/* The mode option: an octal string; refused outright with executable or special bits
 * at enable (Vault 1.20); wider than 0600 only when the server config allows it. At load,
 * a device stored before these rules keeps working with those bits cleared. */
static int parse_mode(struct cs_audit_device *d, bool probe, char *errmsg, size_t errlen)
{
	d->mode = 0600;
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(d->options, "mode");
	if (!cJSON_IsString(m) || !*m->valuestring)
		return 0;
	char *end = NULL;
	errno = 0;
	long v = strtol(m->valuestring, &end, 8);
	if (errno || *end || v < 0 || v > 07777) {
		snprintf(errmsg, errlen, "invalid mode \"%s\"", m->valuestring);
		return CS_EINVAL;
	}
	unsigned mode = (unsigned)v;
	if (!probe) {
		d->mode = mode & 0666;
		return 0;
	}
	if (mode & 07111) {
		snprintf(errmsg, errlen,
			 "invalid mode \"%s\": audit log files cannot be executable or carry "
			 "setuid, setgid or sticky bits",
			 m->valuestring);
		return CS_EINVAL;
	}
	if ((mode & ~0600u) && !d->limits.allow_prefixing) {
		snprintf(errmsg, errlen,
			 "mode \"%s\" is wider than 0600; set allow_audit_log_prefixing = true in "
			 "the server configuration to allow it",
			 m->valuestring);
		return CS_EINVAL;
	}
	d->mode = mode;
	return 0;
}

static int file_open(struct cs_audit_device *d, bool probe, char *errmsg, size_t errlen)
{
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
	int rc = parse_mode(d, probe, errmsg, errlen);
	if (rc)
		return rc;
	/* Vault matches the keywords without regard to case. */
	d->discard = strcasecmp(d->file_path, "discard") == 0;
	if (strcasecmp(d->file_path, "stdout") == 0) {
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
