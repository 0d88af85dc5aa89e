/*
 * gcs.c - the Cloud Storage backend against Google's Cloud Storage for
 * Firebase emulator, behind Debian's nginx with TLS from a test CA and a
 * bearer-token check, with a loopback token endpoint behind a service
 * account key file; and against the emulator directly, as
 * STORAGE_EMULATOR_HOST has it.
 */
#include "config.h"

#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "capture.h"
#include "emulator.h"
#include "httpd.h"
#include "log.h"
#include "store.h"
#include "token.h"

#define BUCKET "demo-firesync.appspot.com"

static struct storage_emu emu;		/* one for the whole run */
static struct nginx nx;
static struct tokend td;
static struct token_source *ts;
static struct store *st;
static char err[1024];

static struct store *
open_with(const char *endpoint, const char *ca, int64_t timeout_ms)
{
	struct store_gcs_options o = {
		.bucket = BUCKET, .endpoint = endpoint, .ca_file = ca,
		.ts = ts, .connect_timeout_ms = 2000,
		.timeout_ms = timeout_ms,
		/* download URLs through nginx, where a test can open them */
		.public_url_base = nx.endpoint,
	};
	struct store *s = store_gcs_open(&o, err, sizeof(err));

	ck_assert_msg(s != NULL, "store_gcs_open: %s", err);
	return s;
}

/* nginx accepting good-token; the token endpoint handing out tokens. */
static void
setup_tokens(const char *const *tokens, int n)
{
	const char *key;

	ck_assert_int_eq(nginx_start(&nx, "good-token", emu.port), 0);
	tokend_start(&td, tokens, n);
	key = test_key_file(nx.dir, td.url);
	ck_assert_ptr_nonnull(key);
	ts = token_source_key_file(key, "https://www.googleapis.com/auth/"
	    "devstorage.read_write", err, sizeof(err));
	ck_assert_msg(ts != NULL, "%s", err);
	st = open_with(nx.endpoint, nx.ca, 10000);
}

static void
setup(void)
{
	static const char *const good[] = { "good-token" };

	setup_tokens(good, 1);
}

static void
teardown(void)
{
	store_close(st);
	token_source_free(ts);
	tokend_stop(&td);
	nginx_stop(&nx);
}

/* An object of n bytes in the bucket, as the web app uploads it. */
static void
put_file(const char *object, size_t n)
{
	uint8_t *b = malloc(n);

	ck_assert_ptr_nonnull(b);
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 7 % 251);
	ck_assert_int_eq(storage_emu_put(&emu, BUCKET, object, b, n,
	    "image/jpeg"), 0);
	free(b);
}

/* The result's URL opens with no credentials: status, and the bytes. */
static long
open_url(const char *url, uint8_t **body, size_t *len)
{
	return http_get(url, nx.ca, body, len);
}

START_TEST(put_then_get)
{
	static const uint8_t png[] = { 0x89, 'P', 'N', 'G', 1, 2, 3 };
	char *url, *meta, want[512];
	uint8_t *data;
	size_t len;

	ck_assert(store_wants_token(st));
	ck_assert_msg(store_put(st, "results/E/S/result.png", png,
	    sizeof(png), "image/png", "tok-1", err, sizeof(err)) == 0, "%s",
	    err);
	url = store_url(st, "results/E/S/result.png", "tok-1");
	snprintf(want, sizeof(want), "%s/v0/b/" BUCKET "/o/results%%2FE%%2FS"
	    "%%2Fresult.png?alt=media&token=tok-1", nx.endpoint);
	ck_assert_str_eq(url, want);
	/* one request, the JSON API's multipart upload */
	ck_assert_int_eq(nginx_log_wait(&nx, "POST /upload/storage/v1/b/"
	    BUCKET "/o 200 ct=multipart/related; boundary=firesync-", 1), 1);
	ck_assert_int_eq(nginx_log_count(&nx, "args=uploadType=multipart"), 1);
	/* what the object carries: type, caching, the token, as written */
	meta = storage_emu_metadata(&emu, BUCKET, "results/E/S/result.png");
	ck_assert_ptr_nonnull(meta);
	ck_assert_ptr_nonnull(strstr(meta, "\"contentType\":\"image/png\""));
	ck_assert_ptr_nonnull(strstr(meta, "\"cacheControl\":\"no-cache\""));
	ck_assert_ptr_nonnull(strstr(meta,
	    "\"firebaseStorageDownloadTokens\":\"tok-1\""));
	free(meta);
	/* the download URL opens anonymously; the object alone does not */
	ck_assert_int_eq(open_url(url, &data, &len), 200);
	ck_assert_uint_eq(len, sizeof(png));
	ck_assert_int_eq(memcmp(data, png, len), 0);
	free(data);
	free(url);
	url = store_url(st, "results/E/S/result.png", NULL);
	ck_assert_int_eq(open_url(url, NULL, NULL), 403);
	free(url);
	url = store_url(st, "results/E/S/result.png", "tok-guessed");
	ck_assert_int_eq(open_url(url, NULL, NULL), 403);
	free(url);
	ck_assert_int_eq(store_get(st, "results/E/S/result.png", 1 << 20,
	    &data, &len, err, sizeof(err)), 0);
	ck_assert_uint_eq(len, sizeof(png));
	ck_assert_int_eq(memcmp(data, png, len), 0);
	free(data);
	/* one request, the JSON API's media download */
	ck_assert_int_eq(nginx_log_wait(&nx, "GET /storage/v1/b/" BUCKET
	    "/o/results/E/S/result.png 200 ct=- cc=- args=alt=media", 1), 1);
	/* one token fetched, then cached */
	ck_assert_int_eq(td.served, 1);
	/* written again (a retried session): the new token opens it, the
	 * old one no longer does */
	ck_assert_int_eq(store_put(st, "results/E/S/result.png", png, 4,
	    "image/png", "tok-2", err, sizeof(err)), 0);
	url = store_url(st, "results/E/S/result.png", "tok-2");
	ck_assert_int_eq(open_url(url, &data, &len), 200);
	ck_assert_uint_eq(len, 4);
	free(data);
	free(url);
	url = store_url(st, "results/E/S/result.png", "tok-1");
	ck_assert_int_eq(open_url(url, NULL, NULL), 403);
	free(url);
}
END_TEST

START_TEST(names_are_percent_encoded)
{
	static const uint8_t b[] = "bytes";
	const char *obj = "captures/ev t/s+1%\xC3\xA9/input.jpg";
	uint8_t *data;
	size_t len;
	char *url;

	ck_assert_int_eq(store_put(st, obj, b, 5, "image/jpeg", "t", err,
	    sizeof(err)), 0);
	url = store_url(st, obj, "t");
	ck_assert_ptr_nonnull(strstr(url, "/o/captures%2Fev%20t%2Fs%2B1%25"
	    "%C3%A9%2Finput.jpg?"));
	free(url);
	/* (the emulator's /v0/ decodes a name twice, so its '%' cannot be
	 * opened there; Google's service decodes once) */
	obj = "captures/ev t/s+1\xC3\xA9/input.jpg";
	ck_assert_int_eq(store_put(st, obj, b, 5, "image/jpeg", "t", err,
	    sizeof(err)), 0);
	url = store_url(st, obj, "t");
	ck_assert_int_eq(open_url(url, NULL, NULL), 200);
	free(url);
	ck_assert_int_eq(store_get(st, obj, 100, &data, &len, err,
	    sizeof(err)), 0);
	ck_assert_uint_eq(len, 5);
	free(data);
}
END_TEST

/* public: the bucket's objects by path, no token written */
START_TEST(public_urls)
{
	struct store_gcs_options o = {
		.bucket = BUCKET, .endpoint = nx.endpoint, .ca_file = nx.ca,
		.ts = ts, .url_kind = STORE_URL_PUBLIC,
	};
	struct store *pub = store_gcs_open(&o, err, sizeof(err));
	char *url, want[256], *meta;

	ck_assert_ptr_nonnull(pub);
	ck_assert(!store_wants_token(pub));
	ck_assert_int_eq(store_put(pub, "results/E/P/result.png",
	    (const uint8_t *)"x", 1, "image/png", NULL, err, sizeof(err)), 0);
	url = store_url(pub, "results/E/P/result.png", NULL);
	snprintf(want, sizeof(want), "%s/" BUCKET "/results/E/P/result.png",
	    nx.endpoint);
	ck_assert_str_eq(url, want);
	free(url);
	meta = storage_emu_metadata(&emu, BUCKET, "results/E/P/result.png");
	ck_assert_ptr_nonnull(meta);
	ck_assert_ptr_null(strstr(meta, "firebaseStorageDownloadTokens"));
	free(meta);
	store_close(pub);
}
END_TEST

/* STORAGE_EMULATOR_HOST's way: plain HTTP to the emulator, its admin
 * token, no credentials; the result URL is the emulator's own. */
START_TEST(the_emulator_directly)
{
	struct store_gcs_options o = { .bucket = BUCKET,
	    .emulator = emu.host };
	struct store *direct = store_gcs_open(&o, err, sizeof(err));
	char *url, want[256];
	uint8_t *data;
	size_t len;

	ck_assert_msg(direct != NULL, "%s", err);
	ck_assert_int_eq(store_put(direct, "results/E/D/result.png",
	    (const uint8_t *)"png!", 4, "image/png", "tok-d", err,
	    sizeof(err)), 0);
	url = store_url(direct, "results/E/D/result.png", "tok-d");
	snprintf(want, sizeof(want), "%s/v0/b/" BUCKET "/o/results%%2FE%%2FD"
	    "%%2Fresult.png?alt=media&token=tok-d", emu.url);
	ck_assert_str_eq(url, want);
	ck_assert_int_eq(http_get(url, NULL, &data, &len), 200);
	ck_assert_uint_eq(len, 4);
	free(data);
	free(url);
	ck_assert_int_eq(store_get(direct, "results/E/D/result.png", 10, &data,
	    &len, err, sizeof(err)), 0);
	free(data);
	ck_assert_int_eq(store_get(direct, "results/E/none/result.png", 10,
	    &data, &len, err, sizeof(err)), -ENOENT);
	store_close(direct);
	ck_assert_int_eq(td.served, 0);
}
END_TEST

START_TEST(missing_and_too_large)
{
	uint8_t *data = NULL;
	size_t len;

	ck_assert_int_eq(store_get(st, "captures/E/none/input.jpg", 100,
	    &data, &len, err, sizeof(err)), -ENOENT);
	put_file("captures/E/big/input.jpg", 3 << 20);
	ck_assert_int_eq(store_get(st, "captures/E/big/input.jpg", 1 << 20,
	    &data, &len, err, sizeof(err)), -EFBIG);
	ck_assert_ptr_null(data);
	put_file("captures/E/ok/input.jpg", 1 << 20);
	ck_assert_int_eq(store_get(st, "captures/E/ok/input.jpg", 1 << 20,
	    &data, &len, err, sizeof(err)), 0);
	ck_assert_uint_eq(len, 1 << 20);
	free(data);
}
END_TEST

/* The server answers 503 while a marker exists; the backend retries
 * with back-off until it goes away. */
START_TEST(unavailable_then_back)
{
	char marker[256];
	static const uint8_t b[] = "x";
	pid_t pid;

	snprintf(marker, sizeof(marker), "%s/www/.unavailable", nx.dir);
	ck_assert_int_eq(close(creat(marker, 0644)), 0);
	pid = fork();
	if (pid == 0) {
		/* lift it once the first 503 is logged */
		for (int i = 0; i < 1000 && nginx_log_count(&nx, " 503 ") == 0;
		    i++)
			usleep(10000);
		unlink(marker);
		_exit(0);
	}
	ck_assert_int_eq(store_put(st, "results/E/S/result.png", b, 1,
	    "image/png", "t", err, sizeof(err)), 0);
	waitpid(pid, NULL, 0);
	ck_assert_int_ge(nginx_log_count(&nx, "POST /upload/storage/v1/b/"
	    BUCKET "/o 503"), 1);
	ck_assert_int_eq(nginx_log_wait(&nx, "POST /upload/storage/v1/b/"
	    BUCKET "/o 200", 1), 1);
}
END_TEST

START_TEST(server_down_for_the_whole_deadline)
{
	struct store *down;
	char endpoint[64];
	static const uint8_t b[] = "x";
	int rc;

	/* a port nothing listens on: refused, retried, until the deadline */
	snprintf(endpoint, sizeof(endpoint), "https://127.0.0.1:%d",
	    free_port());
	down = open_with(endpoint, nx.ca, 1500);
	rc = store_put(down, "results/E/S/result.png", b, 1, "image/png", "t",
	    err, sizeof(err));
	ck_assert_msg(rc == -ETIMEDOUT || rc == -EIO, "rc %d: %s", rc, err);
	ck_assert_ptr_nonnull(strstr(err, "POST gs://" BUCKET
	    "/results/E/S/result.png"));
	store_close(down);
}
END_TEST

START_TEST(tls_is_verified)
{
	struct store *other;
	uint8_t *data;
	size_t len;
	int rc;

	/* the system's CA store does not know the test CA */
	other = open_with(nx.endpoint, NULL, 1500);
	rc = store_get(other, "captures/E/S/input.jpg", 100, &data, &len, err,
	    sizeof(err));
	ck_assert_int_lt(rc, 0);
	ck_assert_msg(strstr(err, "certificate") || strstr(err, "SSL"),
	    "not a TLS error: %s", err);
	store_close(other);
}
END_TEST

static void
setup_stale_first(void)
{
	static const char *const tokens[] = { "stale-token", "good-token" };

	setup_tokens(tokens, 2);
}

/* A 401 gets one fresh token and one more try. */
START_TEST(a_refused_token_is_refreshed_once)
{
	uint8_t *data;
	size_t len;

	put_file("captures/E/S/input.jpg", 10);
	ck_assert_int_eq(store_get(st, "captures/E/S/input.jpg", 100, &data,
	    &len, err, sizeof(err)), 0);
	free(data);
	ck_assert_int_eq(td.served, 2);
	ck_assert_int_eq(nginx_log_wait(&nx, " 401 ", 1), 1);
}
END_TEST

static void
setup_bad_tokens(void)
{
	static const char *const tokens[] = { "bad-token" };

	setup_tokens(tokens, 1);
}

START_TEST(a_token_never_accepted_is_an_error)
{
	uint8_t *data;
	size_t len;

	put_file("captures/E/S/input.jpg", 10);
	ck_assert_int_eq(store_get(st, "captures/E/S/input.jpg", 100, &data,
	    &len, err, sizeof(err)), -EACCES);
	ck_assert_ptr_nonnull(strstr(err, "not authorised (401)"));
	ck_assert_int_eq(td.served, 2);
}
END_TEST

/* No token, key or signed assertion in any log line, at debug level. */
static void
chatty(void *arg)
{
	uint8_t *data;
	size_t len;

	(void)arg;
	log_level = LOG_DEBUG;
	(void)store_put(st, "results/E/S/result.png", (const uint8_t *)"x", 1,
	    "image/png", "t", err, sizeof(err));
	(void)store_get(st, "captures/none", 10, &data, &len, err,
	    sizeof(err));
	log_level = LOG_CRIT;
}

START_TEST(tokens_never_reach_the_log)
{
	char out[16384];

	capture_stderr(chatty, NULL, out, sizeof(out));
	ck_assert_ptr_null(strstr(out, "stale-token"));
	ck_assert_ptr_null(strstr(out, "good-token"));
	ck_assert_ptr_null(strcasestr(out, "bearer"));
	ck_assert_ptr_null(strstr(out, "PRIVATE KEY"));
	ck_assert_ptr_null(strstr(out, "assertion"));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("gcs");
	TCase *tc = tcase_create("nginx");
	TCase *refresh = tcase_create("refresh");
	TCase *bad = tcase_create("bad-token");
	SRunner *sr;
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	log_init();
	log_level = LOG_CRIT;
	if (storage_emu_start(&emu) != 0)
		return EXIT_FAILURE;
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, put_then_get);
	tcase_add_test(tc, names_are_percent_encoded);
	tcase_add_test(tc, public_urls);
	tcase_add_test(tc, the_emulator_directly);
	tcase_add_test(tc, missing_and_too_large);
	tcase_add_test(tc, unavailable_then_back);
	tcase_add_test(tc, server_down_for_the_whole_deadline);
	tcase_add_test(tc, tls_is_verified);
	suite_add_tcase(s, tc);
	tcase_add_checked_fixture(refresh, setup_stale_first, teardown);
	tcase_set_timeout(refresh, 60);
	tcase_add_test(refresh, a_refused_token_is_refreshed_once);
	tcase_add_test(refresh, tokens_never_reach_the_log);
	suite_add_tcase(s, refresh);
	tcase_add_checked_fixture(bad, setup_bad_tokens, teardown);
	tcase_set_timeout(bad, 60);
	tcase_add_test(bad, a_token_never_accepted_is_an_error);
	suite_add_tcase(s, bad);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	storage_emu_stop(&emu);
	curl_global_cleanup();
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
