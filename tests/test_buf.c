/*
 * test_buf.c - the bounded buffer behind every HTTP response we read:
 * it grows, stays NUL-terminated, refuses what passes its ceiling (and
 * says so), and works as libcurl's write callback.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "suites.h"

START_TEST(grows_and_stays_terminated)
{
	struct buf b;
	char chunk[1000];
	size_t len;
	char *p;

	buf_init(&b, 1 << 20);
	ck_assert_ptr_null(b.p);
	memset(chunk, 'x', sizeof(chunk));
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(buf_add(&b, chunk, sizeof(chunk)), 0);
	ck_assert_uint_eq(b.len, 100000);
	ck_assert_int_eq(b.p[b.len], '\0');
	ck_assert_int_eq(buf_str(&b, "end"), 0);
	ck_assert_str_eq(b.p + 100000, "end");
	buf_reset(&b);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_str_eq(b.p, "");
	ck_assert_int_eq(buf_str(&b, "again"), 0);
	p = buf_take(&b, &len);
	ck_assert_str_eq(p, "again");
	ck_assert_uint_eq(len, 5);
	ck_assert_ptr_null(b.p);
	free(p);
	buf_free(&b);
}
END_TEST

START_TEST(the_ceiling_is_kept_and_said)
{
	struct buf b;
	char data[10] = "0123456789";

	buf_init(&b, 25);
	ck_assert_uint_eq(buf_write(data, 1, 10, &b), 10);
	ck_assert_uint_eq(buf_write(data, 5, 2, &b), 10);
	/* 20 held: 10 more would pass 25, so none of them is taken */
	ck_assert_uint_eq(buf_write(data, 1, 10, &b), 0);
	ck_assert(b.too_big);
	ck_assert_uint_eq(b.len, 20);
	ck_assert_int_eq(b.p[20], '\0');
	/* exactly up to the ceiling is fine */
	buf_reset(&b);
	ck_assert(!b.too_big);
	ck_assert_int_eq(buf_add(&b, "0123456789012345678901234", 25), 0);
	ck_assert_int_eq(buf_add(&b, "x", 1), -1);
	ck_assert_str_eq(b.p, "0123456789012345678901234");
	/* a size times count that overflows is refused, not wrapped */
	ck_assert_uint_eq(buf_write(data, (size_t)-1, 2, &b), 0);
	buf_free(&b);
}
END_TEST

Suite *
buf_suite(void)
{
	Suite *s = suite_create("buf");
	TCase *tc = tcase_create("buf");

	tcase_add_test(tc, grows_and_stays_terminated);
	tcase_add_test(tc, the_ceiling_is_kept_and_said);
	suite_add_tcase(s, tc);
	return s;
}
