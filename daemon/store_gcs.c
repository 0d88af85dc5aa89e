/*
 * store_gcs.c - the Cloud Storage backend: the JSON API over HTTPS with
 * libcurl (a media download; a multipart upload carrying the object's
 * metadata, its download token among them, with its bytes in one
 * request), authenticated with the token source's OAuth2 access tokens.
 * The JSON API keeps a custom metadata key as written: the XML API's
 * x-goog-meta- headers arrive lower-cased, and Firebase honours the
 * download token only as firebaseStorageDownloadTokens.
 *
 * Google's Storage emulator is spoken to the same way, over plain HTTP
 * and with its admin token, as Google's own client libraries do when
 * STORAGE_EMULATOR_HOST is set.
 *
 * Object names are percent-encoded whole.  Transient failures
 * (429, 5xx, a dropped or refused connection, a timeout) are retried with
 * capped, jittered back-off until the operation's deadline; a 401 gets one
 * fresh token and one more try.  Downloads stop as soon as they pass the
 * caller's size limit.  TLS is always verified: the system's CA store, or
 * the configured CA file.  Tokens never reach a log line.
 */
#include "config.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
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

#define CACHE_CONTROL	"no-cache"	/* a retry may replace a result */
#define EMULATOR_TOKEN	"owner"		/* the emulator's admin token */

struct gcs {
	char *endpoint;		/* no trailing '/' */
	char *bucket;
	char *ca_file;		/* or NULL: the system store */
	struct token_source *ts;	/* borrowed; NULL: the emulator */
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

/* An upload from memory: a multipart body in three pieces (the head
 * with the metadata, the object's bytes, the closing boundary), read
 * without copying the bytes. */
struct source {
	const uint8_t *part[3];
	size_t len[3];
	size_t off;		/* into the whole */
};

static size_t
source_len(const struct source *s)
{
	return s->len[0] + s->len[1] + s->len[2];
}

static size_t
on_read(char *p, size_t size, size_t n, void *arg)
{
	struct source *s = arg;
	size_t want = size * n, done = 0, base = 0;

	for (int i = 0; i < 3 && done < want; i++) {
		size_t end = base + s->len[i];

		if (s->off < end) {
			size_t take = end - s->off;

			if (take > want - done)
				take = want - done;
			memcpy(p + done, s->part[i] + (s->off - base), take);
			s->off += take;
			done += take;
		}
		base = end;
	}
	return done;
}

static int
on_seek(void *arg, curl_off_t off, int origin)
{
	struct source *s = arg;

	if (origin != SEEK_SET || off < 0 || (size_t)off > source_len(s))
		return CURL_SEEKFUNC_CANTSEEK;
	s->off = (size_t)off;
	return CURL_SEEKFUNC_OK;
}

struct request {
	const char *method;	/* "GET" or "POST" (an upload) */
	const char *path;	/* object name */
	bool meta;		/* GET: its generation, not its bytes */
	size_t max_bytes;	/* GET */
	struct source up;	/* POST: the multipart body */
	const char *content_type;	/* POST: the body's */
};

/* One HTTP exchange.  Returns the HTTP status, or -1 with err (a
 * transport failure: the request may be retried), or -EFBIG. */
static long
exchange(struct gcs *g, const struct request *rq, const char *token,
    int64_t deadline, struct sink *sink, char *err, size_t errlen)
{
	char *bucket = store_encode(g->bucket, false), *url, *auth;
	char *ctype = NULL, cerr[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	struct source up = rq->up;
	int64_t left = deadline - now_mono_ms();
	CURL *c = curl_easy_init();
	long status = -1;
	CURLcode rc;

	if (strcmp(rq->method, "POST") == 0) {
		url = xasprintf("%s/upload/storage/v1/b/%s/o?uploadType="
		    "multipart", g->endpoint, bucket);
	} else {
		char *name = store_encode(rq->path, false);

		url = xasprintf("%s/storage/v1/b/%s/o/%s?%s", g->endpoint,
		    bucket, name, rq->meta ? "fields=generation" :
		    "alt=media");
		free(name);
	}
	free(bucket);
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
	/* plain HTTP for the emulator only (it has no token source) */
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, g->ts ? "https" :
	    "http,https");
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
	if (strcmp(rq->method, "POST") == 0) {
		ctype = xasprintf("Content-Type: %s", rq->content_type);
		hdrs = curl_slist_append(hdrs, ctype);
		hdrs = curl_slist_append(hdrs, "Expect:");
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(c, CURLOPT_READDATA, &up);
		curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(c, CURLOPT_SEEKDATA, &up);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)source_len(&up));
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
		char terr[256], *token = g->ts == NULL ?
		    xstrdup(EMULATOR_TOKEN) : token_get(g->ts, terr,
		    sizeof(terr));

		if (token == NULL) {
			snprintf(err, errlen, "no access token: %s", terr);
			return -EIO;
		}
		buf_reset(&sink->b);
		status = exchange(g, rq, token, deadline, sink, err, errlen);
		if (status == 401 && !refreshed && g->ts != NULL) {
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
gcs_stat(struct store *st, const char *path, char *ver, size_t verlen,
    char *err, size_t errlen)
{
	struct gcs *g = st->priv;
	struct request rq = { .method = "GET", .path = path, .meta = true,
	    .max_bytes = 64 << 10 };
	struct sink sink;
	char why[512] = "";
	long status;

	buf_init(&sink.b, rq.max_bytes);
	status = perform(g, &rq, &sink, why, sizeof(why));
	if (status >= 200 && status <= 299) {
		json_t *j = sink.b.p ? json_loadb(sink.b.p, sink.b.len, 0,
		    NULL) : NULL;
		const char *gen = json_string_value(json_object_get(j,
		    "generation"));
		int rc = 0;

		if (gen == NULL || *gen == '\0' || strlen(gen) >= verlen) {
			snprintf(err, errlen, "gs://%s/%s: no generation in "
			    "its metadata", g->bucket, path);
			rc = -EIO;
		} else {
			snprintf(ver, verlen, "%s", gen);
		}
		json_decref(j);
		buf_free(&sink.b);
		return rc;
	}
	buf_free(&sink.b);
	if (status == 404) {
		snprintf(err, errlen, "gs://%s/%s: not found", g->bucket, path);
		return -ENOENT;
	}
	if (status < 0) {
		snprintf(err, errlen, "GET gs://%s/%s: %s", g->bucket, path,
		    status == -EFBIG ? "metadata too large" : why);
		return (int)(status == -ETIMEDOUT ? -ETIMEDOUT : -EIO);
	}
	return refused(g, "GET", path, status, err, errlen);
}

/*
 * The multipart body's head: the boundary, the object's metadata as JSON
 * (its name, type, caching and download token), the media part's header.
 * NULL with err if the name cannot be written as JSON (not UTF-8).
 */
static char *
upload_head(const char *boundary, const char *path, const char *type,
    const char *token, char *err, size_t errlen)
{
	json_t *meta = json_pack("{s:s, s:s, s:s}", "name", path,
	    "contentType", type, "cacheControl", CACHE_CONTROL);
	char *js, *head;

	if (meta != NULL && token != NULL)
		json_object_set_new(meta, "metadata", json_pack("{s:s}",
		    "firebaseStorageDownloadTokens", token));
	js = meta ? json_dumps(meta, JSON_COMPACT) : NULL;
	json_decref(meta);
	if (js == NULL) {
		snprintf(err, errlen, "object name is not valid UTF-8");
		return NULL;
	}
	head = xasprintf("--%s\r\nContent-Type: application/json; "
	    "charset=UTF-8\r\n\r\n%s\r\n--%s\r\nContent-Type: %s\r\n\r\n",
	    boundary, js, boundary, type);
	free(js);
	return head;
}

static int
gcs_put(struct store *st, const char *path, const uint8_t *data, size_t len,
    const char *content_type, const char *token, char *err, size_t errlen)
{
	struct gcs *g = st->priv;
	struct request rq = { .method = "POST", .path = path };
	struct sink sink;
	char why[512] = "", boundary[48], uuid[STORE_TOKEN_LEN + 1];
	char *head, *tail, *ctype;
	long status;

	/* a boundary that is nowhere in the bytes */
	do {
		store_new_token(uuid);
		snprintf(boundary, sizeof(boundary), "firesync-%s", uuid);
	} while (memmem(data, len, boundary, strlen(boundary)) != NULL);
	head = upload_head(boundary, path, content_type, token, why,
	    sizeof(why));
	if (head == NULL) {
		snprintf(err, errlen, "POST gs://%s/%s: %s", g->bucket, path,
		    why);
		return -EINVAL;
	}
	tail = xasprintf("\r\n--%s--\r\n", boundary);
	ctype = xasprintf("multipart/related; boundary=%s", boundary);
	rq.up = (struct source){ .part = { (const uint8_t *)head, data,
	    (const uint8_t *)tail }, .len = { strlen(head), len,
	    strlen(tail) } };
	rq.content_type = ctype;
	buf_init(&sink.b, 1 << 20);	/* the server's reply */
	status = perform(g, &rq, &sink, why, sizeof(why));
	buf_free(&sink.b);
	free(head);
	free(tail);
	free(ctype);
	if (status >= 200 && status <= 299)
		return 0;
	if (status < 0) {
		snprintf(err, errlen, "POST gs://%s/%s: %s", g->bucket, path,
		    why);
		return (int)(status == -ETIMEDOUT ? -ETIMEDOUT : -EIO);
	}
	return refused(g, "POST", path, status, err, errlen);
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
	.stat = gcs_stat,
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
	if (o->ts == NULL && o->emulator == NULL) {
		snprintf(err, errlen, "the gcs storage backend needs "
		    "credentials");
		return NULL;
	}
	g = xcalloc(1, sizeof(*g));
	if (o->emulator != NULL) {
		/* HOST:PORT, as Google's libraries take it, or a URL */
		char *u = strstr(o->emulator, "://") ? xstrdup(o->emulator) :
		    xasprintf("http://%s", o->emulator);

		g->endpoint = store_url_base(u);
		free(u);
	} else {
		g->endpoint = store_url_base(o->endpoint ? o->endpoint :
		    STORE_GCS_ENDPOINT);
		g->ts = o->ts;
	}
	g->bucket = xstrdup(o->bucket);
	g->ca_file = o->ca_file ? xstrdup(o->ca_file) : NULL;
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
	st->bucket = xstrdup(g->bucket);
	st->object_url_base = xasprintf("%s/%s", g->endpoint, g->bucket);
	st->url_kind = o->url_kind == STORE_URL_PUBLIC ? STORE_URL_PUBLIC :
	    STORE_URL_FIREBASE;
	if (o->public_url_base && *o->public_url_base)
		st->public_url_base = store_url_base(o->public_url_base);
	else if (st->url_kind == STORE_URL_PUBLIC)
		st->public_url_base = xasprintf("%s/%s", g->endpoint,
		    g->bucket);
	else if (o->emulator != NULL)
		st->public_url_base = xstrdup(g->endpoint);
	else
		st->public_url_base = xstrdup(STORE_FIREBASE_URL);
	return st;
}
