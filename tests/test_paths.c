/*
 * test_paths.c - input paths must be the session's own capture; reference
 * paths must lie under the configured prefixes.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "paths.h"
#include "suites.h"

static int
check(const char *p)
{
	char err[256];

	return path_check_input(p, "evt_1", "sess_1", err, sizeof(err));
}

START_TEST(own_capture_is_accepted)
{
	ck_assert_int_eq(check("captures/evt_1/sess_1/input.jpg"), 0);
	ck_assert_int_eq(check("captures/evt_1/sess_1/sub/input.png"), 0);
}
END_TEST

START_TEST(everything_else_is_refused)
{
	static const char *const bad[] = {
		"",
		"/captures/evt_1/sess_1/input.jpg",
		"captures/evt_1/sess_1/",
		"captures/evt_1/sess_1",
		"captures/evt_1/sess_1/../sess_2/input.jpg",
		"captures/evt_1/sess_1/./input.jpg",
		"captures/evt_1/sess_1//input.jpg",
		"captures/evt_1/sess_1/..",
		"captures/evt_1/sess_2/input.jpg",
		"captures/evt_2/sess_1/input.jpg",
		"captures/evt_1/sess_10/input.jpg",
		"captures/evt_1/sess_1x/input.jpg",
		"captures/evt_1/sess_1/%2e%2e/x.jpg",
		"captures/evt_1/sess_1/%2F..%2Fx",
		"captures/evt_1/sess_1/..\\x.jpg",
		"captures/evt_1/sess_1/a\nb.jpg",
		"results/evt_1/sess_1/result.png",
		"../captures/evt_1/sess_1/input.jpg",
		"captures/../captures/evt_1/sess_1/input.jpg",
		"gs://bucket/captures/evt_1/sess_1/input.jpg",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(check(bad[i]) == -EINVAL, "accepted '%s'",
		    bad[i]);
}
END_TEST

START_TEST(huge_path_is_refused)
{
	char *p = malloc(5000);

	strcpy(p, "captures/evt_1/sess_1/");
	memset(p + strlen(p), 'a', 4000);
	p[4022] = '\0';
	ck_assert_int_eq(check(p), -EINVAL);
	free(p);
}
END_TEST

START_TEST(result_path)
{
	char *p = path_result("e", "s");

	ck_assert_str_eq(p, "results/e/s/result.png");
	free(p);
}
END_TEST

START_TEST(references_only_under_the_prefixes)
{
	char *const prefixes[] = { (char *)"references/",
	    (char *)"brand/logos/" };
	char err[256];

	ck_assert_int_eq(path_check_reference("references/a.jpg", prefixes,
	    2, err, sizeof(err)), 0);
	ck_assert_int_eq(path_check_reference("brand/logos/x/y.png", prefixes,
	    2, err, sizeof(err)), 0);
	ck_assert_int_eq(path_check_reference("references/", prefixes, 2, err,
	    sizeof(err)), -EINVAL);
	ck_assert_int_eq(path_check_reference("references/../captures/e/s/"
	    "input.jpg", prefixes, 2, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "path has a '..' component");
	ck_assert_int_eq(path_check_reference("brand/other.png", prefixes, 2,
	    err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "is not under references/ or the other "
	    "reference prefixes");
	/* never a guest's photo, whatever the prefixes say */
	{
		char *const wide[] = { (char *)"captures/" };

		ck_assert_int_eq(path_check_reference("captures/e/s/input.jpg",
		    wide, 1, err, sizeof(err)), -EINVAL);
		ck_assert_str_eq(err, "is a guest's capture or result");
		ck_assert_int_eq(path_check_reference("results/e/s/result.png",
		    prefixes, 2, err, sizeof(err)), -EINVAL);
	}
}
END_TEST

Suite *
paths_suite(void)
{
	Suite *s = suite_create("paths");
	TCase *tc = tcase_create("input");

	tcase_add_test(tc, own_capture_is_accepted);
	tcase_add_test(tc, everything_else_is_refused);
	tcase_add_test(tc, huge_path_is_refused);
	tcase_add_test(tc, result_path);
	tcase_add_test(tc, references_only_under_the_prefixes);
	suite_add_tcase(s, tc);
	return s;
}
