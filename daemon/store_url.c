/*
 * store_url.c - the URLs of stored objects: the result URL the app shows
 * (a public URL, or a Firebase download URL with its token), and the
 * reference URLs the app stores, mapped back to paths of our storage.
 *
 * A reference is only ever read through the backend, never fetched at
 * the URL a guest-facing document gave: the URL names an object, and the
 * backend decides whether it is ours.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "alloc.h"
#include "store.h"

static bool
unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	    c == '~';
}

char *
store_encode(const char *path, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = xmalloc(strlen(path) * 3 + 1), *o = out;

	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		if (unreserved(*p) || (keep_slash && *p == '/')) {
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

void
store_new_token(char out[STORE_TOKEN_LEN + 1])
{
	uint8_t b[16];
	size_t got = 0;

	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);

		if (n < 0 && errno != EINTR)
			abort();	/* the kernel has no randomness to give */
		if (n > 0)
			got += (size_t)n;
	}
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);	/* version 4 */
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);	/* RFC 4122 variant */
	snprintf(out, STORE_TOKEN_LEN + 1, "%02x%02x%02x%02x-%02x%02x-%02x%02x-"
	    "%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4],
	    b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
	    b[15]);
}

char *
store_url(const struct store *st, const char *path, const char *token)
{
	char *name, *bucket, *url;

	if (st->url_kind != STORE_URL_FIREBASE) {
		name = store_encode(path, true);
		url = xasprintf("%s/%s", st->public_url_base, name);
		free(name);
		return url;
	}
	name = store_encode(path, false);
	bucket = store_encode(st->bucket, false);
	url = xasprintf("%s/v0/b/%s/o/%s?alt=media%s%s", st->public_url_base,
	    bucket, name, token ? "&token=" : "", token ? token : "");
	free(bucket);
	free(name);
	return url;
}

static int
hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ?
	    c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Percent-decode s[0..n) into a new string; NULL if malformed or if it
 * would hold a NUL. */
static char *
decode(const char *s, size_t n)
{
	char *out = xmalloc(n + 1), *o = out;

	for (size_t i = 0; i < n; i++) {
		int hi, lo;

		if (s[i] != '%') {
			*o++ = s[i];
			continue;
		}
		if (i + 2 >= n) {
			free(out);
			return NULL;
		}
		hi = hexval(s[i + 1]);
		lo = hexval(s[i + 2]);
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			free(out);
			return NULL;
		}
		*o++ = (char)(hi * 16 + lo);
		i += 2;
	}
	*o = '\0';
	return out;
}

/* The length of url's part before any query or fragment. */
static size_t
until_query(const char *url)
{
	return strcspn(url, "?#");
}

/* url minus base + "/", or NULL if it is not under base. */
static const char *
under(const char *url, const char *base)
{
	size_t n = base ? strlen(base) : 0;

	return n > 0 && strncmp(url, base, n) == 0 && url[n] == '/' ?
	    url + n + 1 : NULL;
}

/* The object path in rest ("NAME", encoded), as a decoded string. */
static int
object_path(const char *rest, char **path, char *why, size_t whylen)
{
	size_t n = until_query(rest);

	if (n == 0) {
		snprintf(why, whylen, "names no object");
		return -EINVAL;
	}
	if ((*path = decode(rest, n)) == NULL) {
		snprintf(why, whylen, "is not a well-formed URL");
		return -EINVAL;
	}
	return 0;
}

/* rest is "BUCKET" + sep + "NAME...": check the bucket is ours and
 * decode the name.  encoded: the URL's bucket and name are
 * percent-encoded (a gs:// URI's are not). */
static int
bucket_object(const struct store *st, const char *rest, const char *sep,
    bool encoded, char **path, char *why, size_t whylen)
{
	const char *end = strstr(rest, sep);
	char *bucket;
	int rc;

	if (end == NULL || end == rest || (size_t)(end - rest) >
	    until_query(rest)) {
		snprintf(why, whylen, "names no object");
		return -EINVAL;
	}
	bucket = encoded ? decode(rest, (size_t)(end - rest)) :
	    xstrndup(rest, (size_t)(end - rest));
	if (bucket == NULL) {
		snprintf(why, whylen, "is not a well-formed URL");
		return -EINVAL;
	}
	if (st->bucket == NULL) {
		snprintf(why, whylen, "is in bucket %.100s, and our storage is "
		    "a local directory", bucket);
		rc = -EINVAL;
	} else if (strcmp(bucket, st->bucket) != 0) {
		snprintf(why, whylen, "is in bucket %.100s, not ours (%.100s)",
		    bucket, st->bucket);
		rc = -EINVAL;
	} else if (!encoded) {
		*path = xstrdup(end + strlen(sep));	/* gs:// names are
							   written plainly */
		rc = 0;
	} else {
		rc = object_path(end + strlen(sep), path, why, whylen);
	}
	free(bucket);
	return rc;
}

int
store_reference(const struct store *st, const char *ref, char **path,
    char *why, size_t whylen)
{
	const char *rest;

	*path = NULL;
	if (strncmp(ref, "gs://", 5) == 0)
		return bucket_object(st, ref + 5, "/", false, path, why,
		    whylen);
	if (strstr(ref, "://") == NULL) {
		*path = xstrdup(ref);	/* a plain storage path */
		return 0;
	}
	/* our own bases first: a CDN in front of the bucket, the endpoint */
	if (st->url_kind == STORE_URL_PUBLIC &&
	    (rest = under(ref, st->public_url_base)) != NULL)
		return object_path(rest, path, why, whylen);
	if ((rest = under(ref, st->object_url_base)) != NULL)
		return object_path(rest, path, why, whylen);
	/* a Firebase download URL (what getDownloadURL() gives), of
	 * Google's host or the one result URLs point at */
	if (((rest = under(ref, STORE_FIREBASE_URL)) != NULL ||
	    (st->url_kind == STORE_URL_FIREBASE &&
	    (rest = under(ref, st->public_url_base)) != NULL)) &&
	    strncmp(rest, "v0/b/", 5) == 0)
		return bucket_object(st, rest + 5, "/o/", true, path, why,
		    whylen);
	/* Cloud Storage's public URL form */
	if ((rest = under(ref, STORE_GCS_ENDPOINT)) != NULL)
		return bucket_object(st, rest, "/", true, path, why, whylen);
	snprintf(why, whylen, "is not a URL of our storage");
	return -EINVAL;
}
