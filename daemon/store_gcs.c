/*
 * store_gcs.c - the Cloud Storage backend: the XML API over HTTPS with
 * libcurl (GET an object, PUT an object), authenticated with the token
 * source's OAuth2 access tokens.
 *
 * Object names are percent-encoded per path segment.  Transient failures
 * (429, 5xx, a dropped or refused connection, a timeout) are retried with
 * capped, jittered back-off until the operation's deadline; a 401 gets one
 * fresh token and one more try.  Downloads stop as soon as they pass the
 * caller's size limit.  TLS is always verified: the system's CA store, or
 * the configured CA file.  Tokens never reach a log line.
 */
#include "config.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "backoff.h"
#include "clock.h"
#include "log.h"
#include "store.h"
#include "token.h"

#define CACHE_CONTROL	"Cache-Control: no-cache"

struct gcs {
	char *endpoint;		/* no trailing '/' */
	char *bucket;
	char *ca_file;		/* or NULL: the system store */
	struct token_source *ts;	/* borrowed */
	int64_t connect_timeout_ms;
	int64_t timeout_ms;	/* one operation, retries included */
	CURLSH *share;		/* connections and TLS sessions, shared */
	pthread_mutex_t share_lock[CURL_LOCK_DATA_LAST];
};

static void
share_lock(CURL *c, curl_lock_data data, curl_lock_access a, void *arg)
{
	struct gcs *g = arg;

	(void)c;
	(void)a;
	pthread_mutex_lock(&g->share_lock[data]);
}

static void
share_unlock(CURL *c, curl_lock_data data, void *arg)
{
	struct gcs *g = arg;

	(void)c;
	pthread_mutex_unlock(&g->share_lock[data]);
}

/* "a b/c" -> "a%20b/c": RFC 3986 unreserved characters and the '/'
 * between segments stay; everything else is %XX.  Caller frees. */
char *
gcs_encode_path(const char *path)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = xmalloc(strlen(path) * 3 + 1), *o = out;

	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
		    *p == '_' || *p == '~' || *p == '/') {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

/* A download into memory, refused past a limit (b.max). */
struct sink {
	CURL *c;
	struct buf b;		/* b.too_big: the object passed the limit
				   and was abandoned */
};

static size_t
on_data(char *p, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	long code = 0;

	/* an error page is not the object: not kept, not counted */
	curl_easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &code);
	if (code < 200 || code > 299)
		return size * n;
	return buf_write(p, size, n, &s->b);
}

/* An upload from memory. */
struct source {
	const uint8_t *data;
	size_t len, off;
};

static size_t
on_read(char *p, size_t size, size_t n, void *arg)
{
	struct source *s = arg;
	size_t take = size * n;

	if (take > s->len - s->off)
		take = s->len - s->off;
	memcpy(p, s->data + s->off, take);
	s->off += take;
	return take;
}

static int
on_seek(void *arg, curl_off_t off, int origin)
{
	struct source *s = arg;

	if (origin != SEEK_SET || off < 0 || (size_t)off > s->len)
		return CURL_SEEKFUNC_CANTSEEK;
	s->off = (size_t)off;
	return CURL_SEEKFUNC_OK;
}

struct request {
	const char *method;	/* "GET" or "PUT" */
	const char *path;	/* object name */
	size_t max_bytes;	/* GET */
	struct source up;	/* PUT */
	const char *content_type;
};

/* One HTTP exchange.  Returns the HTTP status, or -1 with err (a
 * transport failure: the request may be retried), or -EFBIG. */
static long
exchange(struct gcs *g, const struct request *rq, const char *token,
    int64_t deadline, struct sink *sink, char *err, size_t errlen)
{
	char *name = gcs_encode_path(rq->path), *url, *auth, *ctype = NULL;
	char cerr[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	struct source up = rq->up;
	int64_t left = deadline - now_mono_ms();
	CURL *c = curl_easy_init();
	long status = -1;
	CURLcode rc;

	url = xasprintf("%s/%s/%s", g->endpoint, g->bucket, name);
	free(name);
	auth = xasprintf("Authorization: Bearer %s", token);
	hdrs = curl_slist_append(hdrs, auth);
	if (c == NULL || left <= 0) {
		snprintf(err, errlen, left <= 0 ? "timed out" :
		    "cannot start a request");
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_SHARE, g->share);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (g->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, g->ca_file);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)(g->connect_timeout_ms < left ? g->connect_timeout_ms :
	    left));
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)left);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	sink->c = c;
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, sink);
	if (strcmp(rq->method, "PUT") == 0) {
		ctype = xasprintf("Content-Type: %s", rq->content_type);
		hdrs = curl_slist_append(hdrs, ctype);
		hdrs = curl_slist_append(hdrs, CACHE_CONTROL);
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(c, CURLOPT_READDATA, &up);
		curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(c, CURLOPT_SEEKDATA, &up);
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE,
		    (curl_off_t)up.len);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	rc = curl_easy_perform(c);
	if (rc == CURLE_WRITE_ERROR && sink->b.too_big) {
		status = -EFBIG;
	} else if (rc != CURLE_OK) {
		snprintf(err, errlen, "%s", *cerr ? cerr :
		    curl_easy_strerror(rc));
	} else {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	}
out:
	curl_slist_free_all(hdrs);
	/* the header held the token: wipe it */
	memset(auth, 0, strlen(auth));
	free(auth);
	free(ctype);
	free(url);
	if (c)
		curl_easy_cleanup(c);
	return status;
}

/* A transport failure (-1), or an answer that says "try again later". */
static bool
retryable(long status)
{
	return status == -1 || status == 408 || status == 429 ||
	    (status >= 500 && status <= 599);
}

/*
 * Run rq until it gets a verdict or its deadline passes.  Returns the
 * final HTTP status (2xx on success), -EFBIG, or -ETIMEDOUT / -EIO with
 * err.
 */
static long
perform(struct gcs *g, const struct request *rq, struct sink *sink,
    char *err, size_t errlen)
{
	int64_t deadline = now_mono_ms() + g->timeout_ms;
	bool refreshed = false;
	struct backoff bo;
	long status;

	backoff_init(&bo, 250, 4000, 2.0, 0.25);
	for (;;) {
		char terr[256], *token = token_get(g->ts, terr, sizeof(terr));

		if (token == NULL) {
			snprintf(err, errlen, "no access token: %s", terr);
			return -EIO;
		}
		buf_reset(&sink->b);
		status = exchange(g, rq, token, deadline, sink, err, errlen);
		if (status == 401 && !refreshed) {
			/* expired or revoked early: one fresh token */
			token_invalidate(g->ts, token);
			refreshed = true;
			free(token);
			continue;
		}
		free(token);
		if (!retryable(status))
			return status;
		if (status > 0)
			snprintf(err, errlen, "HTTP %ld", status);
		if (now_mono_ms() + bo.base_ms >= deadline)
			return -ETIMEDOUT;
		log_debug("storage: %s %s: %s; retrying", rq->method, rq->path,
		    err);
		backoff_sleep(&bo);
	}
}

/* What a refusal means, for the admin. */
static int
refused(struct gcs *g, const char *method, const char *path, long status,
    char *err, size_t errlen)
{
	if (status == 403) {
		snprintf(err, errlen, "%s gs://%s/%s: permission denied (403): "
		    "the service account needs the Storage Object User role "
		    "(roles/storage.objectUser) on the bucket", method,
		    g->bucket, path);
		return -EACCES;
	}
	if (status == 401) {
		snprintf(err, errlen, "%s gs://%s/%s: not authorised (401) "
		    "even with a fresh token: check the credentials", method,
		    g->bucket, path);
		return -EACCES;
	}
	snprintf(err, errlen, "%s gs://%s/%s: HTTP %ld", method, g->bucket,
	    path, status);
	return -EIO;
}

static int
gcs_get(struct store *st, const char *path, size_t max_bytes,
    uint8_t **data, size_t *len, char *err, size_t errlen)
{
	struct gcs *g = st->priv;
	struct request rq = { .method = "GET", .path = path,
	    .max_bytes = max_bytes };
	struct sink sink;
	char why[512] = "";
	long status;

	buf_init(&sink.b, max_bytes);
	status = perform(g, &rq, &sink, why, sizeof(why));
	if (status >= 200 && status <= 299) {
		*data = (uint8_t *)buf_take(&sink.b, len);
		if (*data == NULL)
			*data = xmalloc(1);
		return 0;
	}
	buf_free(&sink.b);
	if (status == 404) {
		snprintf(err, errlen, "gs://%s/%s: not found", g->bucket, path);
		return -ENOENT;
	}
	if (status == -EFBIG) {
		snprintf(err, errlen, "gs://%s/%s: over %zu bytes", g->bucket,
		    path, max_bytes);
		return -EFBIG;
	}
	if (status < 0) {
		snprintf(err, errlen, "GET gs://%s/%s: %s", g->bucket, path,
		    why);
		return (int)(status == -ETIMEDOUT ? -ETIMEDOUT : -EIO);
	}
	return refused(g, "GET", path, status, err, errlen);
}

static int
gcs_put(struct store *st, const char *path, const uint8_t *data, size_t len,
    const char *content_type, char **url, char *err, size_t errlen)
{
	struct gcs *g = st->priv;
	struct request rq = { .method = "PUT", .path = path,
	    .up = { data, len, 0 }, .content_type = content_type };
	struct sink sink;
	char why[512] = "", *name;
	long status;

	buf_init(&sink.b, 1 << 20);	/* the server's reply */
	status = perform(g, &rq, &sink, why, sizeof(why));
	buf_free(&sink.b);
	if (status >= 200 && status <= 299) {
		name = gcs_encode_path(path);
		*url = xasprintf("%s/%s", st->public_url_base, name);
		free(name);
		return 0;
	}
	if (status < 0) {
		snprintf(err, errlen, "PUT gs://%s/%s: %s", g->bucket, path,
		    why);
		return (int)(status == -ETIMEDOUT ? -ETIMEDOUT : -EIO);
	}
	return refused(g, "PUT", path, status, err, errlen);
}

static void
gcs_close(struct store *st)
{
	struct gcs *g = st->priv;

	curl_share_cleanup(g->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&g->share_lock[i]);
	free(g->endpoint);
	free(g->bucket);
	free(g->ca_file);
	free(g);
}

static const struct store_ops gcs_ops = {
	.name = "gcs",
	.get = gcs_get,
	.put = gcs_put,
	.close = gcs_close,
};

struct store *
store_gcs_open(const struct store_gcs_options *o, char *err, size_t errlen)
{
	struct store *st;
	struct gcs *g;

	if (o->bucket == NULL || *o->bucket == '\0' ||
	    strchr(o->bucket, '/') != NULL) {
		snprintf(err, errlen, "the gcs storage backend needs a bucket "
		    "name ([storage] bucket)");
		return NULL;
	}
	if (o->ts == NULL) {
		snprintf(err, errlen, "the gcs storage backend needs "
		    "credentials");
		return NULL;
	}
	g = xcalloc(1, sizeof(*g));
	g->endpoint = store_url_base(o->endpoint ? o->endpoint :
	    STORE_GCS_ENDPOINT);
	g->bucket = xstrdup(o->bucket);
	g->ca_file = o->ca_file ? xstrdup(o->ca_file) : NULL;
	g->ts = o->ts;
	g->connect_timeout_ms = o->connect_timeout_ms > 0 ?
	    o->connect_timeout_ms : 5000;
	g->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 30000;
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&g->share_lock[i], NULL);
	g->share = curl_share_init();
	curl_share_setopt(g->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(g->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(g->share, CURLSHOPT_USERDATA, g);
	curl_share_setopt(g->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(g->share, CURLSHOPT_SHARE,
	    CURL_LOCK_DATA_SSL_SESSION);
	curl_share_setopt(g->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	st = xcalloc(1, sizeof(*st));
	st->ops = &gcs_ops;
	st->priv = g;
	st->root_fd = -1;
	st->root = xasprintf("gs://%s", g->bucket);
	st->object_url_base = xasprintf("%s/%s", g->endpoint, g->bucket);
	st->public_url_base = o->public_url_base && *o->public_url_base ?
	    store_url_base(o->public_url_base) :
	    xasprintf("%s/%s", g->endpoint, g->bucket);
	return st;
}
