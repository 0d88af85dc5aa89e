/*
 * store.h - where captures are read and results written.
 *
 * A small function table: the local directory (store_local.c) and Cloud
 * Storage (store_gcs.c).  Backends are thread-safe.  Paths are relative storage paths already validated by
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
	char *root;		/* for the log: a directory, or gs://BUCKET */
	char *object_url_base;	/* gcs: endpoint/bucket, also accepted for
				   references; or NULL */
	void *priv;		/* the backend's own */
};

/*
 * Open the local backend rooted at dir (created if missing).  URLs are
 * public_url_base + "/" + path; a NULL base gives "file://" + dir.
 * Returns NULL with err on failure.  Caller closes with store_close().
 */
struct store *store_local_open(const char *dir, const char *public_url_base,
    char *err, size_t errlen);
void store_close(struct store *st);
/* url without trailing '/' (malloc'd): the form of public_url_base. */
char *store_url_base(const char *url);

#define STORE_GCS_ENDPOINT "https://storage.googleapis.com"

struct token_source;

struct store_gcs_options {
	const char *bucket;
	const char *endpoint;		/* NULL: STORE_GCS_ENDPOINT */
	const char *ca_file;		/* NULL: the system's CA store */
	const char *public_url_base;	/* NULL: endpoint/bucket */
	struct token_source *ts;	/* borrowed; thread-safe */
	int64_t connect_timeout_ms;	/* 0: 5 s */
	int64_t timeout_ms;		/* one operation, retries included;
					   0: 30 s */
};

/*
 * Open the Cloud Storage backend (store_gcs.c): objects of bucket through
 * the XML API at endpoint, with tokens from o->ts.  URLs are
 * public_url_base + "/" + the percent-encoded object name.  NULL with err
 * on a bad configuration (nothing is fetched here).
 */
struct store *store_gcs_open(const struct store_gcs_options *o, char *err,
    size_t errlen);
/* An object name percent-encoded per segment ('/' kept); caller frees. */
char *gcs_encode_path(const char *path);

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
