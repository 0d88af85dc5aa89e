/*
 * test_options.c - defaults, the environment Google's tools use, and
 * flags winning over it.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "options.h"
#include "suites.h"

static enum options_action
parse(struct options *o, const char *const *args)
{
	char *argv[32];
	int argc = 0;

	argv[argc++] = (char *)"firesyncd";
	for (; *args; args++)
		argv[argc++] = (char *)*args;
	argv[argc] = NULL;
	return options_parse(o, argc, argv);
}

static void
clear_env(void)
{
	unsetenv("GOOGLE_CLOUD_PROJECT");
	unsetenv("GCLOUD_PROJECT");
	unsetenv("FIRESTORE_EMULATOR_HOST");
}

START_TEST(defaults_and_environment)
{
	static const char *const none[] = { NULL };
	struct options o;

	clear_env();
	setenv("GOOGLE_CLOUD_PROJECT", "proj-env", 1);
	setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8080", 1);
	ck_assert_int_eq(parse(&o, none), OPTIONS_RUN);
	ck_assert_str_eq(o.project, "proj-env");
	ck_assert_str_eq(o.emulator, "127.0.0.1:8080");
	ck_assert_int_eq(o.workers, 4);
	ck_assert_int_eq(o.transform_timeout_s, 45);
	ck_assert_uint_eq(o.max_pixels, 50000000);
	ck_assert_int_eq(o.keepalive_ms, 0);	/* off: emulator GOAWAYs */
	ck_assert_int_eq(o.idle_timeout_ms, 120000);
	ck_assert_ptr_null(o.public_url_base);
	options_clear(&o);
	clear_env();
}
END_TEST

START_TEST(flags_win)
{
	static const char *const args[] = { "--project", "p1", "--emulator",
	    "h:1", "--workers", "8", "--transform-timeout", "10",
	    "--max-megapixels", "12", "--log-level", "debug",
	    "--storage-root", "/srv/x", "--public-url-base", "https://h/x",
	    NULL };
	struct options o;

	clear_env();
	setenv("GOOGLE_CLOUD_PROJECT", "proj-env", 1);
	setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8080", 1);
	ck_assert_int_eq(parse(&o, args), OPTIONS_RUN);
	ck_assert_str_eq(o.project, "p1");
	ck_assert_str_eq(o.emulator, "h:1");
	ck_assert_int_eq(o.workers, 8);
	ck_assert_int_eq(o.transform_timeout_s, 10);
	ck_assert_uint_eq(o.max_pixels, 12000000);
	ck_assert_int_eq(o.log_level, LOG_DEBUG);
	ck_assert_str_eq(o.storage_root, "/srv/x");
	ck_assert_str_eq(o.public_url_base, "https://h/x");
	options_clear(&o);
	clear_env();
}
END_TEST

START_TEST(bad_command_lines_are_refused)
{
	const char *const *const bad[] = {
		(const char *const[]){ NULL },	/* no project anywhere */
		(const char *const[]){ "--project", "p", "--workers", "0", NULL },
		(const char *const[]){ "--project", "p", "--workers", "4x", NULL },
		(const char *const[]){ "--project", "p", "--log-level", "loud",
		    NULL },
		(const char *const[]){ "--project", "p", "--bogus", NULL },
		(const char *const[]){ "--project", "p", "stray", NULL },
		(const char *const[]){ "--project", "p", "--transform-timeout",
		    "-5", NULL },
	};
	struct options o;

	clear_env();
	/* the refusals print to stderr; keep the test output readable */
	ck_assert_ptr_nonnull(freopen("/dev/null", "w", stderr));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(parse(&o, bad[i]) == OPTIONS_EXIT_ERROR,
		    "command line %zu accepted", i);
		options_clear(&o);
	}
}
END_TEST

Suite *
options_suite(void)
{
	Suite *s = suite_create("options");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, defaults_and_environment);
	tcase_add_test(tc, flags_win);
	tcase_add_test(tc, bad_command_lines_are_refused);
	suite_add_tcase(s, tc);
	return s;
}
