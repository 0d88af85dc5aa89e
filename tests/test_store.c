/*
 * test_store.c - the local storage backend: atomic writes, URLs, limits,
 * and no escape through symlinks.
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
#include "testimg.h"

static char root[64], err[512];
static struct store *st;

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
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	ck_assert_int_eq(system(cmd), 0);
}

START_TEST(put_then_get)
{
	uint8_t *data;
	size_t len;
	char *url;

	ck_assert_int_eq(store_put(st, "results/e/s/result.png",
	    (const uint8_t *)"abc", 3, "image/png", &url, err, sizeof(err)), 0);
	ck_assert_str_eq(url,
	    "https://cdn.example.com/media/results/e/s/result.png");
	free(url);
	/* overwrite atomically, no temp files left behind */
	ck_assert_int_eq(store_put(st, "results/e/s/result.png",
	    (const uint8_t *)"wxyz", 4, "image/png", &url, err, sizeof(err)),
	    0);
	free(url);
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
	char *url;

	ck_assert_int_eq(store_get(st, "captures/e/s/input.jpg", 100, &data,
	    &len, err, sizeof(err)), -ENOENT);
	ck_assert_int_eq(store_put(st, "captures/e/s/input.jpg",
	    (const uint8_t *)"0123456789", 10, "image/jpeg", &url, err,
	    sizeof(err)), 0);
	free(url);
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
	    (const uint8_t *)"x", 1, "image/png", &url, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "file://%s/results/a/b/result.png", root);
	ck_assert_str_eq(url, want);
	free(url);
	store_close(s2);
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
	suite_add_tcase(s, tc);
	return s;
}
