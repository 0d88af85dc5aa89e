/*
 * test_strmap.c - the map under growth, replacement, deletion and
 * iteration (its keyed hash must not change what it stores).
 */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>

#include "strmap.h"
#include "suites.h"

START_TEST(many_keys_in_and_out)
{
	struct strmap *m = strmap_new();
	size_t pos = 0, seen = 0;
	const char *key;
	void *v;
	char k[64];

	for (uintptr_t i = 1; i <= 20000; i++) {
		snprintf(k, sizeof(k), "projects/p/databases/d/documents/"
		    "events/e/sessions/%lu", (unsigned long)i);
		ck_assert_ptr_null(strmap_put(m, k, (void *)i));
	}
	ck_assert_uint_eq(strmap_count(m), 20000);
	snprintf(k, sizeof(k), "projects/p/databases/d/documents/events/e/"
	    "sessions/%d", 777);
	ck_assert_ptr_eq(strmap_put(m, k, (void *)1), (void *)777);
	for (uintptr_t i = 2; i <= 20000; i += 2) {
		snprintf(k, sizeof(k), "projects/p/databases/d/documents/"
		    "events/e/sessions/%lu", (unsigned long)i);
		ck_assert_ptr_eq(strmap_del(m, k), (void *)i);
	}
	ck_assert_uint_eq(strmap_count(m), 10000);
	while (strmap_next(m, &pos, &key, &v))
		seen++;
	ck_assert_uint_eq(seen, 10000);
	ck_assert_ptr_null(strmap_get(m, "absent"));
	ck_assert_ptr_nonnull(strmap_get(m, "projects/p/databases/d/documents/"
	    "events/e/sessions/19999"));
	strmap_free(m, NULL);
}
END_TEST

Suite *
strmap_suite(void)
{
	Suite *s = suite_create("strmap");
	TCase *tc = tcase_create("map");

	tcase_add_test(tc, many_keys_in_and_out);
	suite_add_tcase(s, tc);
	return s;
}
