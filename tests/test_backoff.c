/*
 * test_backoff.c - 1 s x1.5 up to 60 s, jittered, reset on progress.
 */
#include "config.h"

#include <check.h>

#include "backoff.h"
#include "suites.h"

START_TEST(schedule_without_jitter)
{
	struct backoff b;
	static const int64_t want[] = { 1000, 1500, 2250, 3375, 5062 };

	backoff_init(&b, 1000, 60000, 1.5, 0.25);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(backoff_next(&b, 0.5), want[i]);
	for (int i = 0; i < 20; i++)
		backoff_next(&b, 0.5);
	ck_assert_int_eq(backoff_next(&b, 0.5), 60000);
	backoff_reset(&b);
	ck_assert_int_eq(backoff_next(&b, 0.5), 1000);
}
END_TEST

START_TEST(jitter_bounds_and_cap)
{
	struct backoff b;

	backoff_init(&b, 1000, 60000, 1.5, 0.25);
	ck_assert_int_eq(backoff_next(&b, 0.0), 750);
	backoff_reset(&b);
	ck_assert_int_ge(backoff_next(&b, 0.999999), 1249);
	for (int i = 0; i < 30; i++)
		backoff_next(&b, 0.5);
	/* at the cap, upward jitter never exceeds the cap */
	ck_assert_int_eq(backoff_next(&b, 0.999999), 60000);
	ck_assert_int_eq(backoff_next(&b, 0.0), 45000);
}
END_TEST

Suite *
backoff_suite(void)
{
	Suite *s = suite_create("backoff");
	TCase *tc = tcase_create("schedule");

	tcase_add_test(tc, schedule_without_jitter);
	tcase_add_test(tc, jitter_bounds_and_cap);
	suite_add_tcase(s, tc);
	return s;
}
