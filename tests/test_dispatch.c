/*
 * test_dispatch.c - which sessions become tasks, and when: once per
 * captured version, stale "transforming" ones after the lease, removed
 * ones forgotten, attempts bounded.
 */
#include "config.h"

#include <check.h>
#include <stdint.h>

#include "dispatch.h"
#include "suites.h"

static const struct dispatch_rules rules = { .lease_ms = 60000,
    .max_attempts = 3 };

static enum dispatch_verdict
look(struct dispatch *d, const char *name, const char *version,
    enum session_state st, int64_t age_ms, int64_t attempts, int64_t now,
    int64_t *attempt)
{
	int64_t dummy;

	return dispatch_consider(d, name, version, st, age_ms, attempts,
	    &rules, now, attempt ? attempt : &dummy);
}

START_TEST(a_captured_session_is_dispatched_once)
{
	struct dispatch *d = dispatch_new();
	int64_t attempt = 0;

	ck_assert_int_eq(look(d, "s1", "10.0", SESSION_CAPTURED, 0, 0, 0,
	    &attempt), DISPATCH_CLAIM);
	ck_assert_int_eq(attempt, 1);
	/* resent while in flight, and after, at the same version */
	ck_assert_int_eq(look(d, "s1", "10.0", SESSION_CAPTURED, 0, 0, 500,
	    NULL), DISPATCH_WAIT);
	ck_assert_uint_eq(dispatch_in_flight(d), 1);
	dispatch_done(d, "s1", false);
	ck_assert_uint_eq(dispatch_in_flight(d), 0);
	ck_assert_int_eq(look(d, "s1", "10.0", SESSION_CAPTURED, 0, 0, 1000,
	    NULL), DISPATCH_WAIT);
	/* a new capture (error -> created -> captured) is a new version */
	ck_assert_int_eq(look(d, "s1", "20.0", SESSION_CAPTURED, 0, 0, 2000,
	    NULL), DISPATCH_CLAIM);
	/* a new version while in flight waits for the task to end */
	ck_assert_int_eq(look(d, "s1", "30.0", SESSION_CAPTURED, 0, 0, 2500,
	    NULL), DISPATCH_WAIT);
	dispatch_done(d, "s1", false);
	ck_assert_int_eq(look(d, "s1", "30.0", SESSION_CAPTURED, 0, 0, 3000,
	    NULL), DISPATCH_CLAIM);
	dispatch_free(d);
}
END_TEST

START_TEST(a_claim_without_verdict_is_tried_again)
{
	struct dispatch *d = dispatch_new();

	ck_assert_int_eq(look(d, "s1", "10.0", SESSION_CAPTURED, 0, 0, 0,
	    NULL), DISPATCH_CLAIM);
	dispatch_done(d, "s1", true);
	ck_assert_int_eq(look(d, "s1", "10.0", SESSION_CAPTURED, 0, 0, 500,
	    NULL), DISPATCH_CLAIM);
	dispatch_free(d);
}
END_TEST

START_TEST(stale_transforming_is_reclaimed_after_the_lease)
{
	struct dispatch *d = dispatch_new();
	int64_t attempt = 0;

	/* someone else's fresh claim: wait for the lease */
	ck_assert_int_eq(look(d, "s1", "10.0", SESSION_TRANSFORMING, 1000, 1,
	    0, NULL), DISPATCH_WAIT);
	ck_assert_int_eq(look(d, "s1", "10.0", SESSION_TRANSFORMING, 1000, 1,
	    59000, NULL), DISPATCH_WAIT);
	ck_assert_int_eq(look(d, "s1", "10.0", SESSION_TRANSFORMING, 1000, 1,
	    59001, &attempt), DISPATCH_RECLAIM);
	ck_assert_int_eq(attempt, 2);
	/* once */
	dispatch_done(d, "s1", false);
	ck_assert_int_eq(look(d, "s1", "10.0", SESSION_TRANSFORMING, 1000, 1,
	    90000, NULL), DISPATCH_WAIT);
	/* a new version (another daemon wrote) starts the lease afresh */
	ck_assert_int_eq(look(d, "s1", "11.0", SESSION_TRANSFORMING, 0, 2,
	    90000, NULL), DISPATCH_WAIT);
	ck_assert_int_eq(look(d, "s1", "11.0", SESSION_TRANSFORMING, 0, 2,
	    150001, &attempt), DISPATCH_RECLAIM);
	ck_assert_int_eq(attempt, 3);
	dispatch_done(d, "s1", false);
	/* old already when first seen (a daemon restarted after a crash):
	 * the server-side age counts */
	ck_assert_int_eq(look(d, "s2", "5.0", SESSION_TRANSFORMING, 61000, 1,
	    200000, NULL), DISPATCH_RECLAIM);
	/* a clock skew that makes an age negative does not shorten it */
	ck_assert_int_eq(look(d, "s3", "5.0", SESSION_TRANSFORMING, -5000, 1,
	    200000, NULL), DISPATCH_WAIT);
	dispatch_free(d);
}
END_TEST

START_TEST(attempts_are_bounded)
{
	struct dispatch *d = dispatch_new();
	int64_t attempt = 0;

	ck_assert_int_eq(look(d, "s1", "1.0", SESSION_TRANSFORMING, 70000, 3,
	    0, &attempt), DISPATCH_GIVE_UP);
	ck_assert_int_eq(attempt, 3);
	/* a hostile counter neither wraps past the bound nor goes below 0 */
	ck_assert_int_eq(look(d, "s2", "1.0", SESSION_TRANSFORMING, 70000,
	    INT64_MAX, 0, &attempt), DISPATCH_GIVE_UP);
	ck_assert_int_eq(look(d, "s3", "1.0", SESSION_TRANSFORMING, 70000,
	    INT64_MIN, 0, &attempt), DISPATCH_RECLAIM);
	ck_assert_int_eq(attempt, 1);
	dispatch_free(d);
}
END_TEST

static bool
only_s2(void *arg, const char *name)
{
	(void)arg;
	return name[0] == 's' && name[1] == '2' && name[2] == '\0';
}

START_TEST(a_removed_session_is_forgotten)
{
	struct dispatch *d = dispatch_new();

	look(d, "s1", "10.0", SESSION_CAPTURED, 0, 0, 0, NULL);
	look(d, "s2", "10.0", SESSION_CAPTURED, 0, 0, 0, NULL);
	look(d, "s3", "10.0", SESSION_TRANSFORMING, 0, 1, 0, NULL);
	dispatch_done(d, "s1", false);
	/* s1 finished and left the view: forgotten; s2 stays in view; s3
	 * left the view while waiting; s4 is in flight and stays */
	look(d, "s4", "10.0", SESSION_CAPTURED, 0, 0, 0, NULL);
	ck_assert_uint_eq(dispatch_count(d), 4);
	dispatch_prune(d, only_s2, NULL);
	ck_assert_uint_eq(dispatch_count(d), 2);
	/* s1 back at the same version (a resend after removal) is new */
	ck_assert_int_eq(look(d, "s1", "10.0", SESSION_CAPTURED, 0, 0, 100,
	    NULL), DISPATCH_CLAIM);
	dispatch_done(d, "s1", false);
	dispatch_done(d, "s2", false);
	dispatch_done(d, "s4", false);
	dispatch_prune(d, only_s2, NULL);
	ck_assert_uint_eq(dispatch_count(d), 1);
	ck_assert_uint_eq(dispatch_in_flight(d), 0);
	dispatch_free(d);
}
END_TEST

static bool
nothing_in_view(void *arg, const char *name)
{
	(void)arg;
	(void)name;
	return false;
}

START_TEST(a_session_taken_by_another_is_withdrawn_before_its_claim)
{
	struct dispatch *d = dispatch_new();

	look(d, "s1", "10.0", SESSION_CAPTURED, 0, 0, 0, NULL);
	look(d, "s2", "10.0", SESSION_CAPTURED, 0, 0, 0, NULL);
	/* s2's claim goes out; then both leave the view: s1 was queued
	 * here and someone else took it, s2 left because of our claim */
	ck_assert(dispatch_start_claim(d, "s2"));
	ck_assert_uint_eq(dispatch_prune(d, nothing_in_view, NULL), 1);
	ck_assert(!dispatch_start_claim(d, "s1"));
	/* counted once, however often the view is looked at */
	ck_assert_uint_eq(dispatch_prune(d, nothing_in_view, NULL), 0);
	dispatch_done(d, "s1", false);
	dispatch_done(d, "s2", false);
	ck_assert_uint_eq(dispatch_prune(d, nothing_in_view, NULL), 0);
	ck_assert_uint_eq(dispatch_count(d), 0);
	dispatch_free(d);
}
END_TEST

START_TEST(recovered_sessions_are_never_withdrawn)
{
	struct dispatch *d = dispatch_new();

	ck_assert_int_eq(look(d, "s1", "10.0", SESSION_TRANSFORMING, 70000, 1,
	    0, NULL), DISPATCH_RECLAIM);
	ck_assert_uint_eq(dispatch_prune(d, nothing_in_view, NULL), 0);
	ck_assert(dispatch_start_claim(d, "s1"));
	dispatch_free(d);
}
END_TEST

START_TEST(a_noted_session_that_leaves_was_taken)
{
	struct dispatch *d = dispatch_new();

	/* s1 waits for its turn and leaves; s2 is ours and leaves */
	dispatch_note(d, "s1");
	look(d, "s2", "10.0", SESSION_CAPTURED, 0, 0, 0, NULL);
	dispatch_note(d, "s2");		/* in flight: not noted */
	ck_assert(dispatch_start_claim(d, "s2"));
	dispatch_done(d, "s2", false);
	ck_assert_uint_eq(dispatch_prune(d, nothing_in_view, NULL), 1);
	/* a noted session that comes to its turn is ours like any other */
	dispatch_note(d, "s3");
	ck_assert_int_eq(look(d, "s3", "10.0", SESSION_CAPTURED, 0, 0, 0,
	    NULL), DISPATCH_CLAIM);
	ck_assert(dispatch_start_claim(d, "s3"));
	dispatch_done(d, "s3", false);
	ck_assert_uint_eq(dispatch_prune(d, nothing_in_view, NULL), 0);
	dispatch_free(d);
}
END_TEST

START_TEST(alone_sessions_go_in_capture_order)
{
	struct dispatch_turns t = dispatch_turns(1000000, 0, 50, 3, 8);

	ck_assert(t.spread_ms == 0);
	ck_assert_int_eq(dispatch_turn_delay(&t, "s1"), 0);
	/* a peer seen long ago is forgotten */
	t = dispatch_turns(DISPATCH_PEER_MEMORY_MS + 2000, 1000, 50, 3, 8);
	ck_assert(t.spread_ms == 0);
}
END_TEST

START_TEST(with_peers_turns_spread_by_round_trips_and_load)
{
	const int64_t now = 5000000, peer = now - 1000;
	struct dispatch_turns t;
	int64_t d_idle, d_busy;

	/* 16 round trips of 10 ms */
	t = dispatch_turns(now, peer, 10, 0, 8);
	ck_assert(t.spread_ms == 160 && t.load == 0);
	d_idle = dispatch_turn_delay(&t, "events/E/sessions/s1");
	ck_assert_int_ge(d_idle, 0);
	ck_assert_int_lt(d_idle, 160);
	/* the same name, the same delay; a busy daemon waits longer */
	ck_assert_int_eq(dispatch_turn_delay(&t, "events/E/sessions/s1"),
	    d_idle);
	t = dispatch_turns(now, peer, 10, 8, 8);
	ck_assert(t.load == 1);
	d_busy = dispatch_turn_delay(&t, "events/E/sessions/s1");
	ck_assert_int_ge(d_busy, d_idle + 159);
	ck_assert_int_le(d_busy, d_idle + 160);
	/* overloaded counts as full; the spread has a floor and a ceiling */
	t = dispatch_turns(now, peer, 10, 40, 8);
	ck_assert(t.load == 1);
	t = dispatch_turns(now, peer, 0.1, 0, 8);
	ck_assert(t.spread_ms == DISPATCH_SPREAD_MIN_MS);
	t = dispatch_turns(now, peer, 5000, 0, 8);
	ck_assert(t.spread_ms == DISPATCH_SPREAD_MAX_MS);
}
END_TEST

Suite *
dispatch_suite(void)
{
	Suite *s = suite_create("dispatch");
	TCase *tc = tcase_create("rules");

	tcase_add_test(tc, a_captured_session_is_dispatched_once);
	tcase_add_test(tc, a_claim_without_verdict_is_tried_again);
	tcase_add_test(tc, stale_transforming_is_reclaimed_after_the_lease);
	tcase_add_test(tc, attempts_are_bounded);
	tcase_add_test(tc, a_removed_session_is_forgotten);
	tcase_add_test(tc,
	    a_session_taken_by_another_is_withdrawn_before_its_claim);
	tcase_add_test(tc, recovered_sessions_are_never_withdrawn);
	tcase_add_test(tc, a_noted_session_that_leaves_was_taken);
	tcase_add_test(tc, alone_sessions_go_in_capture_order);
	tcase_add_test(tc, with_peers_turns_spread_by_round_trips_and_load);
	suite_add_tcase(s, tc);
	return s;
}
