/*
 * test_backoff.c - 1 s x1.5 up to 60 s, jittered, reset on progress; and
 * delays of any length actually slept.
 */
#include "config.h"

#include <check.h>

#include "backoff.h"
#include "clock.h"
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

/* Delays of a second or more are slept in full: a timespec with 1e9 ns or
 * more is refused by nanosleep (EINVAL), which once made a retry loop's
 * back-off silently not happen.  Only a lower bound is checked. */
START_TEST(long_delays_are_slept_in_full)
{
	struct backoff b;
	int64_t t0, slept;

	backoff_init(&b, 1100, 4000, 2.0, 0.0);
	t0 = now_mono_ms();
	slept = backoff_sleep(&b);
	ck_assert_int_eq(slept, 1100);
	ck_assert_int_ge(now_mono_ms() - t0, 1100);
	t0 = now_mono_ms();
	sleep_ms(1250);
	ck_assert_int_ge(now_mono_ms() - t0, 1250);
	sleep_ms(0);
	sleep_ms(-5);
}
END_TEST

Suite *
backoff_suite(void)
{
	Suite *s = suite_create("backoff");
	TCase *tc = tcase_create("schedule");

	tcase_add_test(tc, schedule_without_jitter);
	tcase_add_test(tc, jitter_bounds_and_cap);
	tcase_add_test(tc, long_delays_are_slept_in_full);
	suite_add_tcase(s, tc);
	return s;
}
