/*
 * store_local.c - the local directory storage backend.
 *
 * Every path is walked component by component with openat(O_NOFOLLOW), so
 * a symlink planted inside the root cannot lead a read or a write outside
 * it.  Writes go to a temporary file in the target directory, are fsync'd,
 * then renamed over the final name: a reader sees the old file or the new
 * one, never half of one.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "store.h"

/*
 * Open the directory holding path's last component, creating directories
 * when create is set.  Returns a directory fd and sets *base to the last
 * component, or -errno.
 */
static int
open_parent(struct store *st, const char *path, int create, char *buf,
    size_t buflen, const char **base)
{
	char *comp, *slash;
	int dfd, nfd;

	if (strlen(path) >= buflen)
		return -ENAMETOOLONG;
	strcpy(buf, path);
	dfd = fcntl(st->root_fd, F_DUPFD_CLOEXEC, 0);
	if (dfd < 0)
		return -errno;
	comp = buf;
	while ((slash = strchr(comp, '/')) != NULL) {
		*slash = '\0';
		nfd = openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (nfd < 0 && errno == ENOENT && create) {
			if (mkdirat(dfd, comp, 0755) < 0 && errno != EEXIST) {
				int e = -errno;

				close(dfd);
				return e;
			}
			nfd = openat(dfd, comp, O_RDONLY | O_DIRECTORY |
			    O_NOFOLLOW | O_CLOEXEC);
		}
		if (nfd < 0) {
			int e = -errno;

			close(dfd);
			return e == -ENOTDIR || e == -ELOOP ? -ENOENT : e;
		}
		close(dfd);
		dfd = nfd;
		comp = slash + 1;
	}
	*base = comp;
	return dfd;
}

static int
local_stat(struct store *st, const char *path, char *ver, size_t verlen,
    char *err, size_t errlen)
{
	char buf[4096];
	const char *base;
	struct stat sb;
	int dfd, rc;

	dfd = open_parent(st, path, 0, buf, sizeof(buf), &base);
	if (dfd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(-dfd));
		return dfd;
	}
	rc = fstatat(dfd, base, &sb, AT_SYMLINK_NOFOLLOW);
	close(dfd);
	if (rc < 0 || !S_ISREG(sb.st_mode)) {
		int e = rc < 0 ? errno : ENOENT;

		snprintf(err, errlen, "%s: %s", path, rc < 0 ? strerror(e) :
		    "not a regular file");
		return -e;
	}
	/* a rename over it (an edit saved whole) changes the inode, a
	 * write in place the change time */
	snprintf(ver, verlen, "%lld.%09ld:%lld:%llu",
	    (long long)sb.st_ctim.tv_sec, (long)sb.st_ctim.tv_nsec,
	    (long long)sb.st_size, (unsigned long long)sb.st_ino);
	return 0;
}

static int
local_get(struct store *st, const char *path, size_t max_bytes,
    uint8_t **data, size_t *len, char *err, size_t errlen)
{
	char buf[4096];
	const char *base;
	struct stat sb;
	uint8_t *p = NULL;
	size_t off = 0;
	int dfd, fd;

	dfd = open_parent(st, path, 0, buf, sizeof(buf), &base);
	if (dfd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(-dfd));
		return dfd;
	}
	/* non-blocking: a FIFO planted at the path must not hang the
	 * session; anything but a regular file is refused below */
	fd = openat(dfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK | O_NOCTTY);
	close(dfd);
	if (fd < 0) {
		int e = errno == ELOOP ? ENOENT : errno;

		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		close(fd);
		return -ENOENT;
	}
	if ((uint64_t)sb.st_size > max_bytes) {
		snprintf(err, errlen, "%s: %lld bytes, limit %zu", path,
		    (long long)sb.st_size, max_bytes);
		close(fd);
		return -EFBIG;
	}
	p = xmalloc((size_t)sb.st_size);
	while (off < (size_t)sb.st_size) {
		ssize_t n = read(fd, p + off, (size_t)sb.st_size - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;

			snprintf(err, errlen, "%s: read: %s", path,
			    n < 0 ? strerror(e) : "file shrank while reading");
			free(p);
			close(fd);
			return -e;
		}
		off += (size_t)n;
	}
	close(fd);
	*data = p;
	*len = off;
	return 0;
}

static int
write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
local_put(struct store *st, const char *path, const uint8_t *data,
    size_t len, const char *content_type, const char *token, char *err,
    size_t errlen)
{
	char buf[4096], tmp[300];
	const char *base;
	int dfd, fd = -1, rc;
	static unsigned seq;

	dfd = open_parent(st, path, 1, buf, sizeof(buf), &base);
	if (dfd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(-dfd));
		return dfd;
	}
	for (int tries = 0; tries < 100 && fd < 0; tries++) {
		snprintf(tmp, sizeof(tmp), ".%.200s.%ld.%u.tmp", base,
		    (long)getpid(), __atomic_add_fetch(&seq, 1,
		    __ATOMIC_RELAXED));
		fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
		    O_NOFOLLOW, 0644);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: create: %s", path, strerror(errno));
		close(dfd);
		return rc;
	}
	rc = write_all(fd, data, len);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && renameat(dfd, tmp, dfd, base) < 0)
		rc = -errno;
	if (rc < 0) {
		snprintf(err, errlen, "%s: write: %s", path, strerror(-rc));
		unlinkat(dfd, tmp, 0);
		close(dfd);
		return rc;
	}
	(void)fsync(dfd);
	close(dfd);
	return 0;
}

static void
local_close(struct store *st)
{
	close(st->root_fd);
}

static const struct store_ops local_ops = {
	.name = "local",
	.get = local_get,
	.put = local_put,
	.stat = local_stat,
	.close = local_close,
};

struct store *
store_local_open(const char *dir, const char *public_url_base, char *err,
    size_t errlen)
{
	struct store *st;
	char *abs;
	int fd;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "storage root %s: %s", dir,
		    strerror(errno));
		return NULL;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (abs = realpath(dir, NULL)) == NULL) {
		snprintf(err, errlen, "storage root %s: %s", dir,
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	st = xcalloc(1, sizeof(*st));
	st->ops = &local_ops;
	st->root_fd = fd;
	st->root = abs;
	st->url_kind = STORE_URL_PUBLIC;
	if (public_url_base && *public_url_base) {
		st->public_url_base = store_url_base(public_url_base);
	} else {
		char *file = xasprintf("file://%s", abs);

		st->public_url_base = store_url_base(file);
		free(file);
	}
	return st;
}

char *
store_url_base(const char *url)
{
	char *t = xstrdup(url);
	size_t n = strlen(t);

	while (n > 0 && t[n - 1] == '/')
		t[--n] = '\0';
	return t;
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	st->ops->close(st);
	free(st->public_url_base);
	free(st->object_url_base);
	free(st->bucket);
	free(st->root);
	free(st);
}
