/*
 * store.h - where captures are read and results written.
 *
 * A small function table: the local directory (store_local.c) and Cloud
 * Storage (store_gcs.c).  Backends are thread-safe.  Paths are relative storage paths already validated by
 * paths.c ("captures/E/S/input.jpg", "results/E/S/result.png").
 */
#ifndef FIRESYNC_STORE_H
#define FIRESYNC_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

/* How a result's URL (resultImagePath) is made. */
enum store_url_kind {
	STORE_URL_DEFAULT = 0,	/* the backend's: firebase for gcs, public
				   for the local directory */
	STORE_URL_PUBLIC,	/* base + "/" + the path, '/' kept */
	STORE_URL_FIREBASE,	/* base/v0/b/BUCKET/o/NAME?alt=media&token=T,
				   as Firebase's getDownloadURL() gives */
};

/* Where Firebase download URLs point, unless configured otherwise. */
#define STORE_FIREBASE_URL "https://firebasestorage.googleapis.com"
/* A download token: a random UUID, 36 characters. */
#define STORE_TOKEN_LEN 36

struct store_ops {
	const char *name;
	/* Read path into a malloc'd buffer.  -ENOENT if absent, -EFBIG if
	 * larger than max_bytes, other -errno with err otherwise. */
	int (*get)(struct store *st, const char *path, size_t max_bytes,
	    uint8_t **data, size_t *len, char *err, size_t errlen);
	/* Write atomically, with the download token given (NULL: none; the
	 * object's earlier tokens go with its earlier contents). */
	int (*put)(struct store *st, const char *path, const uint8_t *data,
	    size_t len, const char *content_type, const char *token,
	    char *err, size_t errlen);
	/* The object's version, without its bytes: its generation (gcs),
	 * or its change time, size and inode (local), into ver; a new
	 * version means new contents.  -ENOENT if absent, other -errno
	 * with err. */
	int (*stat)(struct store *st, const char *path, char *ver,
	    size_t verlen, char *err, size_t errlen);
	void (*close)(struct store *st);
};

struct store {
	const struct store_ops *ops;
	enum store_url_kind url_kind;
	char *public_url_base;	/* no trailing '/'.  PUBLIC: the base of
				   result URLs; FIREBASE: the scheme and
				   host before /v0/b/ */
	int root_fd;		/* local backend */
	char *root;		/* for the log: a directory, or gs://BUCKET */
	char *bucket;		/* gcs: the bucket; NULL for local */
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
	const char *emulator;		/* HOST:PORT or a URL of Google's
					   Storage emulator (plain HTTP, its
					   admin token); NULL: none */
	const char *ca_file;		/* NULL: the system's CA store */
	enum store_url_kind url_kind;	/* DEFAULT: FIREBASE */
	const char *public_url_base;	/* NULL: the kind's default */
	struct token_source *ts;	/* borrowed; thread-safe; unused with
					   the emulator */
	int64_t connect_timeout_ms;	/* 0: 5 s */
	int64_t timeout_ms;		/* one operation, retries included;
					   0: 30 s */
};

/*
 * Open the Cloud Storage backend (store_gcs.c): objects of bucket through
 * the JSON API at endpoint, with tokens from o->ts.  NULL with err on a
 * bad configuration (nothing is fetched here).
 */
struct store *store_gcs_open(const struct store_gcs_options *o, char *err,
    size_t errlen);

/* ---- URLs (store_url.c) ---- */

/* path percent-encoded: every byte but RFC 3986's unreserved ones, and
 * '/' too unless keep_slash.  Caller frees. */
char *store_encode(const char *path, bool keep_slash);
/* A fresh download token (a random version 4 UUID) into out. */
void store_new_token(char out[STORE_TOKEN_LEN + 1]);
/* Does this store put a download token in its result URLs? */
static inline bool
store_wants_token(const struct store *st)
{
	return st->url_kind == STORE_URL_FIREBASE;
}
/* The URL of path as the app will store it: token is the one the object
 * was written with (FIREBASE).  Caller frees. */
char *store_url(const struct store *st, const char *path, const char *token);
/*
 * A reference image as the app stores it, as a storage path of ours
 * (malloc'd, percent-decoded, not yet checked against any rule): a plain
 * path, gs://BUCKET/NAME, https://storage.googleapis.com/BUCKET/NAME, a
 * Firebase download URL of the bucket (any token: it is never used), or a
 * URL under the store's own bases.  -EINVAL with why for anything else
 * (another bucket, another host).
 */
int store_reference(const struct store *st, const char *ref, char **path,
    char *why, size_t whylen);

static inline int
store_get(struct store *st, const char *path, size_t max_bytes,
    uint8_t **data, size_t *len, char *err, size_t errlen)
{
	return st->ops->get(st, path, max_bytes, data, len, err, errlen);
}

static inline int
store_stat(struct store *st, const char *path, char *ver, size_t verlen,
    char *err, size_t errlen)
{
	return st->ops->stat(st, path, ver, verlen, err, errlen);
}

static inline int
store_put(struct store *st, const char *path, const uint8_t *data,
    size_t len, const char *content_type, const char *token, char *err,
    size_t errlen)
{
	return st->ops->put(st, path, data, len, content_type, token, err,
	    errlen);
}

#endif
