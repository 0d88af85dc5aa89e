/*
 * token.c - service-account JWTs (RS256, OpenSSL), the token endpoint and
 * the metadata server (libcurl), responses parsed with jansson.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "alloc.h"
#include "buf.h"
#include "log.h"
#include "token.h"

#define REFRESH_MARGIN_S 300	/* refresh this long before expiry */
#define METADATA_PATH "instance/service-accounts/default/token"
#define METADATA_URL \
	"http://metadata.google.internal/computeMetadata/v1/" METADATA_PATH

struct token_source {
	bool metadata;
	char *email, *token_uri, *project, *scope, *url;
	EVP_PKEY *key;
	pthread_mutex_t lock;
	char *token;
	int64_t expires;	/* wall seconds */
};

char *
b64url(const unsigned char *p, size_t n)
{
	static const char tbl[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char *out = xmalloc(n / 3 * 4 + 5), *o = out;
	size_t i = 0;

	for (; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 |
		    p[i + 2];

		*o++ = tbl[v >> 18];
		*o++ = tbl[(v >> 12) & 63];
		*o++ = tbl[(v >> 6) & 63];
		*o++ = tbl[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16 |
		    (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);

		*o++ = tbl[v >> 18];
		*o++ = tbl[(v >> 12) & 63];
		if (i + 1 < n)
			*o++ = tbl[(v >> 6) & 63];
	}
	*o = '\0';
	return out;
}

static char *
json_field(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? xstrdup(json_string_value(v)) : NULL;
}

struct token_source *
token_source_key_file(const char *path, const char *scope, char *err,
    size_t errlen)
{
	struct token_source *ts;
	json_error_t jerr;
	struct stat sb;
	json_t *root;
	char *pem;
	BIO *bio;

	if (stat(path, &sb) < 0) {
		snprintf(err, errlen, "credentials file %s: %s", path,
		    strerror(errno));
		return NULL;
	}
	if (sb.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err, errlen, "credentials file %s is readable by "
		    "others: chmod 600 %s", path, path);
		return NULL;
	}
	root = json_load_file(path, 0, &jerr);
	if (root == NULL) {
		snprintf(err, errlen, "credentials file %s:%d: %s", path,
		    jerr.line, jerr.text);
		return NULL;
	}
	ts = xcalloc(1, sizeof(*ts));
	pthread_mutex_init(&ts->lock, NULL);
	ts->scope = xstrdup(scope);
	ts->email = json_field(root, "client_email");
	ts->token_uri = json_field(root, "token_uri");
	ts->project = json_field(root, "project_id");
	pem = json_field(root, "private_key");
	{
		char *type = json_field(root, "type");

		if (type == NULL || strcmp(type, "service_account") != 0 ||
		    ts->email == NULL || pem == NULL) {
			snprintf(err, errlen, "credentials file %s is not a "
			    "service account key (type, client_email and "
			    "private_key are needed)", path);
			free(type);
			free(pem);
			json_decref(root);
			token_source_free(ts);
			return NULL;
		}
		free(type);
	}
	json_decref(root);
	if (ts->token_uri == NULL)
		ts->token_uri = xstrdup("https://oauth2.googleapis.com/token");
	bio = BIO_new_mem_buf(pem, -1);
	ts->key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	OPENSSL_cleanse(pem, strlen(pem));
	free(pem);
	if (ts->key == NULL) {
		snprintf(err, errlen, "credentials file %s: private_key is not "
		    "a PEM private key", path);
		token_source_free(ts);
		return NULL;
	}
	return ts;
}

struct token_source *
token_source_metadata(const char *base_url, const char *scope)
{
	struct token_source *ts = xcalloc(1, sizeof(*ts));
	const char *host;

	pthread_mutex_init(&ts->lock, NULL);
	ts->metadata = true;
	ts->scope = xstrdup(scope);
	if (base_url != NULL)
		ts->url = xstrdup(base_url);
	else if ((host = getenv("GCE_METADATA_HOST")) != NULL && *host)
		/* Google's convention for another metadata server */
		ts->url = xasprintf("http://%s/computeMetadata/v1/%s", host,
		    METADATA_PATH);
	else
		ts->url = xstrdup(METADATA_URL);
	return ts;
}

void
token_source_free(struct token_source *ts)
{
	if (ts == NULL)
		return;
	free(ts->email);
	free(ts->token_uri);
	free(ts->project);
	free(ts->scope);
	free(ts->url);
	if (ts->token) {
		OPENSSL_cleanse(ts->token, strlen(ts->token));
		free(ts->token);
	}
	EVP_PKEY_free(ts->key);
	pthread_mutex_destroy(&ts->lock);
	free(ts);
}

const char *
token_source_project(const struct token_source *ts)
{
	return ts->project;
}

char *
token_jwt(struct token_source *ts, int64_t now, char *err, size_t errlen)
{
	static const char header[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
	json_t *claims;
	char *cjson, *h, *c, *input, *sig64, *jwt;
	unsigned char sig[1024];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *md;
	int ok;

	if (ts->key == NULL) {
		snprintf(err, errlen, "no private key to sign with");
		return NULL;
	}
	claims = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", ts->email,
	    "scope", ts->scope, "aud", ts->token_uri, "iat", (json_int_t)now,
	    "exp", (json_int_t)(now + 3600));
	cjson = json_dumps(claims, JSON_COMPACT);
	json_decref(claims);
	h = b64url((const unsigned char *)header, strlen(header));
	c = b64url((const unsigned char *)cjson, strlen(cjson));
	free(cjson);
	input = xasprintf("%s.%s", h, c);
	free(h);
	free(c);
	md = EVP_MD_CTX_new();
	ok = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL,
	    ts->key) == 1 && EVP_DigestSign(md, sig, &siglen,
	    (const unsigned char *)input, strlen(input)) == 1;
	EVP_MD_CTX_free(md);
	if (!ok) {
		snprintf(err, errlen, "signing the token request failed");
		free(input);
		return NULL;
	}
	sig64 = b64url(sig, siglen);
	jwt = xasprintf("%s.%s", input, sig64);
	free(input);
	free(sig64);
	return jwt;
}

/* Fetch a token; on success sets ts->token and ts->expires, on failure
 * *http the endpoint's status (0: no answer). */
static int
fetch(struct token_source *ts, long *http, char *err, size_t errlen)
{
	struct curl_slist *hdrs = NULL;
	struct buf b;
	char *body = NULL, *jwt = NULL, cerr[CURL_ERROR_SIZE] = "";
	long status = 0;
	json_error_t jerr;
	json_t *root;
	CURL *c;
	int rc = -1;

	*http = 0;
	buf_init(&b, 1 << 20);		/* no token response is this big */
	c = curl_easy_init();
	if (c == NULL) {
		snprintf(err, errlen, "cannot start an HTTP request");
		return -1;
	}
	if (ts->metadata) {
		hdrs = curl_slist_append(hdrs, "Metadata-Flavor: Google");
		curl_easy_setopt(c, CURLOPT_URL, ts->url);
	} else {
		char *esc;

		jwt = token_jwt(ts, (int64_t)time(NULL), err, errlen);
		if (jwt == NULL)
			goto out;
		esc = curl_easy_escape(c, jwt, 0);
		body = xasprintf("grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3A"
		    "grant-type%%3Ajwt-bearer&assertion=%s", esc);
		curl_free(esc);
		curl_easy_setopt(c, CURLOPT_URL, ts->token_uri);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, buf_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
	/* TLS is verified against the system's roots (curl's default) */
	if (curl_easy_perform(c) != CURLE_OK) {
		snprintf(err, errlen, "token request to %s failed: %s",
		    ts->metadata ? ts->url : ts->token_uri, cerr);
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	*http = status;
	root = b.p ? json_loads(b.p, 0, &jerr) : NULL;
	if (status != 200 || root == NULL) {
		json_t *e = root ? json_object_get(root, "error") : NULL;

		snprintf(err, errlen, "token request to %s: HTTP %ld%s%s",
		    ts->metadata ? ts->url : ts->token_uri, status,
		    json_is_string(e) ? ": " : "",
		    json_is_string(e) ? json_string_value(e) : "");
		json_decref(root);
		goto out;
	}
	{
		json_t *tok = json_object_get(root, "access_token");
		json_t *exp = json_object_get(root, "expires_in");

		if (!json_is_string(tok) || !json_is_integer(exp)) {
			snprintf(err, errlen, "token response lacks "
			    "access_token or expires_in");
			json_decref(root);
			goto out;
		}
		if (ts->token) {
			OPENSSL_cleanse(ts->token, strlen(ts->token));
			free(ts->token);
		}
		ts->token = xstrdup(json_string_value(tok));
		ts->expires = (int64_t)time(NULL) + json_integer_value(exp);
	}
	json_decref(root);
	rc = 0;
out:
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	buf_free(&b);
	if (body) {
		OPENSSL_cleanse(body, strlen(body));
		free(body);
	}
	free(jwt);
	return rc;
}

char *
token_get(struct token_source *ts, char *err, size_t errlen)
{
	long http;

	return token_fetch(ts, &http, err, errlen);
}

char *
token_fetch(struct token_source *ts, long *http, char *err, size_t errlen)
{
	char *t = NULL;

	*http = 0;
	pthread_mutex_lock(&ts->lock);
	if (ts->token == NULL ||
	    (int64_t)time(NULL) >= ts->expires - REFRESH_MARGIN_S) {
		if (fetch(ts, http, err, errlen) < 0) {
			pthread_mutex_unlock(&ts->lock);
			return NULL;
		}
	}
	t = xstrdup(ts->token);
	pthread_mutex_unlock(&ts->lock);
	return t;
}

char *
token_peek(struct token_source *ts, int min_s)
{
	char *t = NULL;

	if (pthread_mutex_trylock(&ts->lock) != 0)
		return NULL;	/* a fetch holds it: do not wait */
	if (ts->token != NULL && (int64_t)time(NULL) < ts->expires - min_s)
		t = xstrdup(ts->token);
	pthread_mutex_unlock(&ts->lock);
	return t;
}

void
token_invalidate(struct token_source *ts, const char *token)
{
	pthread_mutex_lock(&ts->lock);
	if (ts->token != NULL && token != NULL &&
	    strcmp(ts->token, token) == 0) {
		OPENSSL_cleanse(ts->token, strlen(ts->token));
		free(ts->token);
		ts->token = NULL;
	}
	pthread_mutex_unlock(&ts->lock);
}
