/*
 * gcs.c - the Cloud Storage backend against a real HTTPS server: Debian's
 * nginx with TLS from a test CA, WebDAV PUT and a bearer-token check, and
 * a loopback token endpoint behind a service account key file.
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

#define BUCKET "test-bucket"

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

	ck_assert_int_eq(nginx_start(&nx, "good-token"), 0);
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

/* A file of n bytes at the object's place on the server. */
static void
put_file(const char *object, size_t n)
{
	char path[512], cmd[600];
	FILE *f;

	snprintf(path, sizeof(path), "%s/www/%s/%s", nx.dir, BUCKET, object);
	snprintf(cmd, sizeof(cmd), "mkdir -p $(dirname %s)", path);
	ck_assert_int_eq(system(cmd), 0);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	for (size_t i = 0; i < n; i++)
		fputc((int)(i * 7 % 251), f);
	fclose(f);
}

START_TEST(put_then_get)
{
	static const uint8_t png[] = { 0x89, 'P', 'N', 'G', 1, 2, 3 };
	char *url = NULL, want[256], path[512];
	uint8_t *data;
	size_t len;
	struct stat sb;

	ck_assert_msg(store_put(st, "results/E/S/result.png", png,
	    sizeof(png), "image/png", &url, err, sizeof(err)) == 0, "%s", err);
	snprintf(want, sizeof(want), "%s/%s/results/E/S/result.png",
	    nx.endpoint, BUCKET);
	ck_assert_str_eq(url, want);
	free(url);
	snprintf(path, sizeof(path), "%s/www/%s/results/E/S/result.png",
	    nx.dir, BUCKET);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(sb.st_size, sizeof(png));
	ck_assert_int_eq(nginx_log_wait(&nx, "PUT /" BUCKET
	    "/results/E/S/result.png 201 ct=image/png cc=no-cache", 1), 1);
	ck_assert_int_eq(store_get(st, "results/E/S/result.png", 1 << 20,
	    &data, &len, err, sizeof(err)), 0);
	ck_assert_uint_eq(len, sizeof(png));
	ck_assert_int_eq(memcmp(data, png, len), 0);
	free(data);
	/* one token fetched, then cached */
	ck_assert_int_eq(td.served, 1);
	/* a second PUT of the same object (a retry that had landed) */
	ck_assert_int_eq(store_put(st, "results/E/S/result.png", png,
	    sizeof(png), "image/png", &url, err, sizeof(err)), 0);
	free(url);
}
END_TEST

START_TEST(names_are_percent_encoded)
{
	static const uint8_t b[] = "bytes";
	const char *obj = "captures/ev t/s+1%\xC3\xA9/input.jpg";
	uint8_t *data;
	size_t len;
	char *url = NULL;

	ck_assert_int_eq(store_put(st, obj, b, 5, "image/jpeg", &url, err,
	    sizeof(err)), 0);
	ck_assert_ptr_nonnull(strstr(url, "/captures/ev%20t/s%2B1%25%C3%A9/"
	    "input.jpg"));
	free(url);
	ck_assert_int_eq(store_get(st, obj, 100, &data, &len, err,
	    sizeof(err)), 0);
	ck_assert_uint_eq(len, 5);
	free(data);
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
	char marker[256], *url = NULL;
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
	    "image/png", &url, err, sizeof(err)), 0);
	free(url);
	waitpid(pid, NULL, 0);
	ck_assert_int_ge(nginx_log_count(&nx, "PUT /" BUCKET
	    "/results/E/S/result.png 503"), 1);
	ck_assert_int_eq(nginx_log_wait(&nx, "PUT /" BUCKET
	    "/results/E/S/result.png 201", 1), 1);
}
END_TEST

START_TEST(server_down_for_the_whole_deadline)
{
	struct store *down;
	char endpoint[64], *url = NULL;
	static const uint8_t b[] = "x";
	int rc;

	/* a port nothing listens on: refused, retried, until the deadline */
	snprintf(endpoint, sizeof(endpoint), "https://127.0.0.1:%d",
	    free_port());
	down = open_with(endpoint, nx.ca, 1500);
	rc = store_put(down, "results/E/S/result.png", b, 1, "image/png", &url,
	    err, sizeof(err));
	ck_assert_msg(rc == -ETIMEDOUT || rc == -EIO, "rc %d: %s", rc, err);
	ck_assert_ptr_nonnull(strstr(err, "PUT gs://" BUCKET
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
	char *url;

	(void)arg;
	log_level = LOG_DEBUG;
	(void)store_put(st, "results/E/S/result.png", (const uint8_t *)"x", 1,
	    "image/png", &url, err, sizeof(err));
	free(url);
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
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, put_then_get);
	tcase_add_test(tc, names_are_percent_encoded);
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
	curl_global_cleanup();
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
