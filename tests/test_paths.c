/*
 * test_paths.c - input paths must be the session's own capture; reference
 * paths must lie under the configured prefixes.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "frames.h"
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

/* Where an event's frames and a session's renditions are. */
START_TEST(frame_and_rendition_paths)
{
	static const struct { const char *tmpl, *event, *aspect, *want; }
	    c[] = {
		{ "branding/{event}/frame.png", "E", "",
		    "branding/E/frame.png" },
		{ "branding/{event}/frame.png", "E", "9:16",
		    "branding/E/frame-9x16.png" },
		{ "brand/x-{event}.png", "party", "1:1",
		    "brand/x-party-1x1.png" },
		{ "branding/{event}/frame.png", "a/b", "", NULL },
		{ "branding/{event}/frame.png", "..", "", NULL },
		{ "branding/{event}/frame.png", "", "", NULL },
		{ "branding/{event}/frame.png", "E", "wide", NULL },
		{ "branding/{event}/frame.png", "E", "1:0", NULL },
		{ "branding/frame.png", "E", "", NULL },
		{ "branding/{event}/frame.jpg", "E", "", NULL },
	};
	char *p;

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		p = frames_path(c[i].tmpl, c[i].event, c[i].aspect);
		if (c[i].want == NULL)
			ck_assert_msg(p == NULL, "%s %s: %s", c[i].event,
			    c[i].aspect, p);
		else
			ck_assert_str_eq(p, c[i].want);
		free(p);
	}
	p = path_rendition("E", "S", "thumb", "jpg");
	ck_assert_str_eq(p, "results/E/S/thumb.jpg");
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
	tcase_add_test(tc, frame_and_rendition_paths);
	suite_add_tcase(s, tc);
	return s;
}
