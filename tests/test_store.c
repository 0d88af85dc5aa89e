/*
 * test_store.c - the local storage backend: atomic writes, URLs, limits,
 * and no escape through symlinks; result URLs and references as a
 * Firebase app writes them.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "suites.h"
#include "token.h"
#include "testimg.h"

static char root[64], err[512];
static struct store *st;
static struct token_source *ts;		/* for gcs(), never asked */

static void
setup(void)
{
	snprintf(root, sizeof(root), "/tmp/fsunit-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(root));
	st = store_local_open(root, "https://cdn.example.com/media/", err,
	    sizeof(err));
	ck_assert_ptr_nonnull(st);
}

static void
teardown(void)
{
	char cmd[128];

	store_close(st);
	token_source_free(ts);
	ts = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	ck_assert_int_eq(system(cmd), 0);
}

START_TEST(put_then_get)
{
	uint8_t *data;
	size_t len;
	char *url;

	ck_assert_int_eq(store_put(st, "results/e/s/result.png",
	    (const uint8_t *)"abc", 3, "image/png", NULL, err, sizeof(err)),
	    0);
	ck_assert(!store_wants_token(st));
	url = store_url(st, "results/e/s/result.png", NULL);
	ck_assert_str_eq(url,
	    "https://cdn.example.com/media/results/e/s/result.png");
	free(url);
	/* overwrite atomically, no temp files left behind */
	ck_assert_int_eq(store_put(st, "results/e/s/result.png",
	    (const uint8_t *)"wxyz", 4, "image/png", NULL, err, sizeof(err)),
	    0);
	ck_assert_int_eq(store_get(st, "results/e/s/result.png", 100, &data,
	    &len, err, sizeof(err)), 0);
	ck_assert_uint_eq(len, 4);
	ck_assert_int_eq(memcmp(data, "wxyz", 4), 0);
	free(data);
	{
		char cmd[200];

		snprintf(cmd, sizeof(cmd), "test $(ls -A %s/results/e/s | wc -l) "
		    "-eq 1", root);
		ck_assert_int_eq(system(cmd), 0);
	}
}
END_TEST

START_TEST(missing_and_too_big)
{
	uint8_t *data;
	size_t len;

	ck_assert_int_eq(store_get(st, "captures/e/s/input.jpg", 100, &data,
	    &len, err, sizeof(err)), -ENOENT);
	ck_assert_int_eq(store_put(st, "captures/e/s/input.jpg",
	    (const uint8_t *)"0123456789", 10, "image/jpeg", NULL, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(store_get(st, "captures/e/s/input.jpg", 9, &data,
	    &len, err, sizeof(err)), -EFBIG);
}
END_TEST

/* A FIFO (or any non-regular file) at an input path is refused at once:
 * a blocking open would hang the session thread forever. */
START_TEST(a_fifo_is_refused_not_waited_on)
{
	char path[256];
	uint8_t *data;
	size_t len;

	snprintf(path, sizeof(path), "%s/captures", root);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/captures/f", root);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/captures/f/input.jpg", root);
	ck_assert_int_eq(mkfifo(path, 0644), 0);
	ck_assert_int_eq(store_get(st, "captures/f/input.jpg", 100, &data,
	    &len, err, sizeof(err)), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
}
END_TEST

START_TEST(symlinks_do_not_lead_out)
{
	char link[200];
	uint8_t *data;
	size_t len;

	/* captures/e -> /etc: reading captures/e/passwd must fail */
	snprintf(link, sizeof(link), "%s/captures", root);
	ck_assert_int_eq(mkdir(link, 0755), 0);
	snprintf(link, sizeof(link), "%s/captures/e", root);
	ck_assert_int_eq(symlink("/etc", link), 0);
	ck_assert_int_eq(store_get(st, "captures/e/passwd", 1 << 20, &data,
	    &len, err, sizeof(err)), -ENOENT);
	/* and a symlinked final component */
	snprintf(link, sizeof(link), "%s/captures/f", root);
	ck_assert_int_eq(mkdir(link, 0755), 0);
	snprintf(link, sizeof(link), "%s/captures/f/input.jpg", root);
	ck_assert_int_eq(symlink("/etc/passwd", link), 0);
	ck_assert_int_eq(store_get(st, "captures/f/input.jpg", 1 << 20, &data,
	    &len, err, sizeof(err)), -ENOENT);
}
END_TEST

START_TEST(default_url_is_file_url_of_root)
{
	struct store *s2 = store_local_open(root, NULL, err, sizeof(err));
	char *url, want[200];

	ck_assert_int_eq(store_put(s2, "results/a/b/result.png",
	    (const uint8_t *)"x", 1, "image/png", NULL, err, sizeof(err)), 0);
	url = store_url(s2, "results/a/b/result.png", NULL);
	snprintf(want, sizeof(want), "file://%s/results/a/b/result.png", root);
	ck_assert_str_eq(url, want);
	free(url);
	store_close(s2);
}
END_TEST

/* A Cloud Storage backend as configured (nothing is fetched at open):
 * Google's endpoint, or the emulator's. */

static struct store *
gcs(const char *bucket, enum store_url_kind kind, const char *base,
    const char *emulator)
{
	struct store_gcs_options o = {
		.bucket = bucket, .emulator = emulator, .url_kind = kind,
		.public_url_base = base,
	};
	struct store *s;

	if (ts == NULL)
		ts = token_source_metadata("http://127.0.0.1:9", "scope");
	o.ts = emulator ? NULL : ts;
	s = store_gcs_open(&o, err, sizeof(err));
	ck_assert_msg(s != NULL, "%s", err);
	return s;
}

START_TEST(firebase_urls_carry_the_token)
{
	struct store *s = gcs("b.appspot.com", STORE_URL_DEFAULT, NULL, NULL);
	char tok[STORE_TOKEN_LEN + 1], tok2[STORE_TOKEN_LEN + 1], *url;

	ck_assert(store_wants_token(s));
	store_new_token(tok);
	store_new_token(tok2);
	ck_assert_uint_eq(strlen(tok), 36);
	ck_assert_str_ne(tok, tok2);
	ck_assert_int_eq(tok[14], '4');		/* version 4 */
	ck_assert_ptr_nonnull(strchr("89ab", tok[19]));
	url = store_url(s, "results/E 1/S+é/result.png", "T-1");
	ck_assert_str_eq(url, "https://firebasestorage.googleapis.com/v0/b/"
	    "b.appspot.com/o/results%2FE%201%2FS%2B%C3%A9%2Fresult.png"
	    "?alt=media&token=T-1");
	free(url);
	store_close(s);
	/* the emulator's own /v0/b/ */
	s = gcs("demo.appspot.com", STORE_URL_FIREBASE, NULL,
	    "127.0.0.1:9199");
	url = store_url(s, "results/E/S/result.png", "T");
	ck_assert_str_eq(url, "http://127.0.0.1:9199/v0/b/demo.appspot.com/o/"
	    "results%2FE%2FS%2Fresult.png?alt=media&token=T");
	free(url);
	store_close(s);
	/* public: the bucket's objects by path */
	s = gcs("b.appspot.com", STORE_URL_PUBLIC, NULL, NULL);
	ck_assert(!store_wants_token(s));
	store_close(s);
	s = gcs("b.appspot.com", STORE_URL_PUBLIC, "https://cdn.example.com/"
	    "x/", NULL);
	url = store_url(s, "results/E 1/S/result.png", NULL);
	ck_assert_str_eq(url, "https://cdn.example.com/x/results/E%201/S/"
	    "result.png");
	free(url);
	store_close(s);
}
END_TEST

/* ref -> path, or ref refused with a reason holding why */
static void
ref_is(struct store *s, const char *ref, const char *path, const char *why)
{
	char reason[256] = "", *got = NULL;
	int rc = store_reference(s, ref, &got, reason, sizeof(reason));

	if (path != NULL) {
		ck_assert_msg(rc == 0, "%s: %s", ref, reason);
		ck_assert_str_eq(got, path);
	} else {
		ck_assert_msg(rc == -EINVAL, "%s: accepted as %s", ref, got);
		ck_assert_msg(strstr(reason, why) != NULL, "%s: '%s'", ref,
		    reason);
		ck_assert_ptr_null(got);
	}
	free(got);
}

START_TEST(references_as_the_app_stores_them)
{
	struct store *s = gcs("b.appspot.com", STORE_URL_FIREBASE, NULL,
	    NULL);

	ref_is(s, "references/warm.jpg", "references/warm.jpg", NULL);
	ref_is(s, "https://firebasestorage.googleapis.com/v0/b/b.appspot.com/"
	    "o/references%2Fwarm%20tone.jpg?alt=media&token=abc",
	    "references/warm tone.jpg", NULL);
	ref_is(s, "gs://b.appspot.com/references/warm tone.jpg",
	    "references/warm tone.jpg", NULL);
	ref_is(s, "https://storage.googleapis.com/b.appspot.com/references/"
	    "warm%20tone.jpg", "references/warm tone.jpg", NULL);
	/* another bucket, whatever the form */
	ref_is(s, "gs://other/references/a.jpg", NULL,
	    "in bucket other, not ours (b.appspot.com)");
	ref_is(s, "https://firebasestorage.googleapis.com/v0/b/other/o/"
	    "references%2Fa.jpg?alt=media&token=t", NULL, "in bucket other");
	ref_is(s, "https://storage.googleapis.com/other/references/a.jpg",
	    NULL, "in bucket other");
	/* another host, a malformed one, no object */
	ref_is(s, "https://example.com/b.appspot.com/references/a.jpg", NULL,
	    "not a URL of our storage");
	ref_is(s, "https://firebasestorage.googleapis.com.evil.example/v0/b/"
	    "b.appspot.com/o/references%2Fa.jpg", NULL, "not a URL of our");
	ref_is(s, "https://firebasestorage.googleapis.com/v0/b/b.appspot.com/"
	    "o/references%2Fa%00.jpg", NULL, "not a well-formed URL");
	ref_is(s, "https://firebasestorage.googleapis.com/v0/b/b.appspot.com/"
	    "o/references%2", NULL, "not a well-formed URL");
	ref_is(s, "https://firebasestorage.googleapis.com/v0/b/b.appspot.com/"
	    "o/?alt=media", NULL, "names no object");
	ref_is(s, "gs://b.appspot.com", NULL, "names no object");
	store_close(s);
	/* the local directory has no bucket */
	ref_is(st, "gs://b/references/a.jpg", NULL, "our storage is a local");
	ref_is(st, "https://cdn.example.com/media/references/a%20b.jpg",
	    "references/a b.jpg", NULL);
}
END_TEST

Suite *
store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("local");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, put_then_get);
	tcase_add_test(tc, missing_and_too_big);
	tcase_add_test(tc, a_fifo_is_refused_not_waited_on);
	tcase_add_test(tc, symlinks_do_not_lead_out);
	tcase_add_test(tc, default_url_is_file_url_of_root);
	tcase_add_test(tc, firebase_urls_carry_the_token);
	tcase_add_test(tc, references_as_the_app_stores_them);
	suite_add_tcase(s, tc);
	return s;
}
