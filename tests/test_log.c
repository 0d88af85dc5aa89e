/*
 * test_log.c - log lines: journald priority prefixes under systemd, text
 * with timestamps otherwise, JSON for log shippers, one line per record.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "capture.h"
#include "log.h"
#include "suites.h"

static void
emit(void *arg)
{
	(void)arg;
	log_level = LOG_INFO;
	log_warn("session=%s event=%s state=error", "s1", "e1");
	/* foreign text: a newline, an escape sequence, a broken byte */
	log_info("two\nlines \"quoted\" \x1B[2J\xFF");
	log_debug("not shown at info");
}

START_TEST(journal_lines_carry_the_priority)
{
	char out[2048];

	setenv("JOURNAL_STREAM", "8:12345", 1);
	log_init();
	log_set_json(0);
	capture_stderr(emit, NULL, out, sizeof(out));
	ck_assert_str_eq(out, "<4>session=s1 event=e1 state=error\n"
	    "<6>two lines \"quoted\"  [2J\xEF\xBF\xBD\n");
	unsetenv("JOURNAL_STREAM");
	log_init();
}
END_TEST

START_TEST(text_lines_carry_time_and_level)
{
	char out[2048];

	unsetenv("JOURNAL_STREAM");
	log_init();
	log_set_json(0);
	capture_stderr(emit, NULL, out, sizeof(out));
	/* 2026-11-25T01:02:03.456Z warning session=... */
	ck_assert_int_eq(out[4], '-');
	ck_assert_int_eq(out[10], 'T');
	ck_assert_ptr_nonnull(strstr(out, "Z warning session=s1 event=e1 "
	    "state=error\n"));
	ck_assert_ptr_null(strstr(out, "not shown"));
}
END_TEST

START_TEST(json_lines_parse)
{
	char out[2048], *line, *save = NULL;
	int n = 0;

	log_init();
	log_set_json(1);
	capture_stderr(emit, NULL, out, sizeof(out));
	log_set_json(0);
	for (line = strtok_r(out, "\n", &save); line;
	    line = strtok_r(NULL, "\n", &save)) {
		json_error_t e;
		json_t *j = json_loads(line, 0, &e);

		ck_assert_msg(j != NULL, "not JSON: %s (%s)", line, e.text);
		if (n == 0) {
			ck_assert_str_eq(json_string_value(json_object_get(j,
			    "level")), "warning");
			ck_assert_int_eq(json_integer_value(json_object_get(j,
			    "priority")), 4);
		} else {
			ck_assert_str_eq(json_string_value(json_object_get(j,
			    "msg")), "two lines \"quoted\"  [2J\xEF\xBF\xBD");
		}
		json_decref(j);
		n++;
	}
	ck_assert_int_eq(n, 2);
}
END_TEST

Suite *
log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("format");

	tcase_add_test(tc, journal_lines_carry_the_priority);
	tcase_add_test(tc, text_lines_carry_time_and_level);
	tcase_add_test(tc, json_lines_parse);
	suite_add_tcase(s, tc);
	return s;
}
