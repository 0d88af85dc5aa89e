/*
 * store.h - where captures are read and results written.
 *
 * A small function table so a Cloud Storage backend can sit beside the
 * local one.  Paths are relative storage paths already validated by
 * paths.c ("captures/E/S/input.jpg", "results/E/S/result.png").
 */
#ifndef FIRESYNC_STORE_H
#define FIRESYNC_STORE_H

#include <stddef.h>
#include <stdint.h>

struct store;

struct store_ops {
	const char *name;
	/* Read path into a malloc'd buffer.  -ENOENT if absent, -EFBIG if
	 * larger than max_bytes, other -errno with err otherwise. */
	int (*get)(struct store *st, const char *path, size_t max_bytes,
	    uint8_t **data, size_t *len, char *err, size_t errlen);
	/* Write atomically; *url gets the public URL (malloc'd). */
	int (*put)(struct store *st, const char *path, const uint8_t *data,
	    size_t len, const char *content_type, char **url, char *err,
	    size_t errlen);
	void (*close)(struct store *st);
};

struct store {
	const struct store_ops *ops;
	char *public_url_base;	/* no trailing '/' */
	int root_fd;		/* local backend */
	char *root;
};

/*
 * Open the local backend rooted at dir (created if missing).  URLs are
 * public_url_base + "/" + path; a NULL base gives "file://" + dir.
 * Returns NULL with err on failure.  Caller closes with store_close().
 */
struct store *store_local_open(const char *dir, const char *public_url_base,
    char *err, size_t errlen);
void store_close(struct store *st);

static inline int
store_get(struct store *st, const char *path, size_t max_bytes,
    uint8_t **data, size_t *len, char *err, size_t errlen)
{
	return st->ops->get(st, path, max_bytes, data, len, err, errlen);
}

static inline int
store_put(struct store *st, const char *path, const uint8_t *data,
    size_t len, const char *content_type, char **url, char *err,
    size_t errlen)
{
	return st->ops->put(st, path, data, len, content_type, url, err,
	    errlen);
}

#endif
