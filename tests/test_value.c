/*
 * test_value.c - every Value kind survives a protobuf round trip, and
 * equality and lookups behave.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "suites.h"
#include "value.h"

static FsValue *
round_trip(const FsValue *v)
{
	size_t n = google__firestore__v1__value__get_packed_size(v);
	uint8_t *buf = malloc(n ? n : 1);
	FsValue *out;

	google__firestore__v1__value__pack(v, buf);
	out = google__firestore__v1__value__unpack(NULL, n, buf);
	free(buf);
	ck_assert_ptr_nonnull(out);
	return out;
}

static void
check_round_trip(FsValue *v)
{
	FsValue *back = round_trip(v);

	ck_assert_msg(value_equal(v, back), "%s value changed in a round trip",
	    value_kind_name(v));
	ck_assert_int_eq(back->value_type_case, v->value_type_case);
	value_free(back);
	value_free(v);
}

START_TEST(every_kind_round_trips)
{
	static const uint8_t bytes[] = { 0, 1, 2, 255, 0 };
	FsValue *arr, *map, *inner;

	check_round_trip(value_null());
	check_round_trip(value_bool(true));
	check_round_trip(value_bool(false));
	check_round_trip(value_int(0));
	check_round_trip(value_int(INT64_MIN));
	check_round_trip(value_int(1701101200000));
	check_round_trip(value_double(-0.5));
	check_round_trip(value_double(1e308));
	check_round_trip(value_double(NAN));
	check_round_trip(value_timestamp(1701100800, 123456789));
	check_round_trip(value_string(""));
	check_round_trip(value_string("h\xc3\xa9llo \xf0\x9f\x8e\x89"));
	check_round_trip(value_bytes(bytes, sizeof(bytes)));
	check_round_trip(value_reference(
	    "projects/p/databases/(default)/documents/events/e"));
	check_round_trip(value_geo(51.5, -0.12));
	arr = value_array();
	check_round_trip(arr);
	map = value_map();
	check_round_trip(map);

	/* nested: an array of maps of arrays */
	arr = value_array();
	map = value_map();
	inner = value_array();
	value_array_add(inner, value_string("a"));
	value_array_add(inner, value_int(2));
	value_map_put(map, "ids", inner);
	value_map_put(map, "type", value_string("selections"));
	value_array_add(arr, map);
	value_array_add(arr, value_null());
	check_round_trip(arr);
}
END_TEST

START_TEST(equality_is_deep_and_order_free)
{
	FsValue *a = value_map(), *b = value_map();

	value_map_put(a, "x", value_int(1));
	value_map_put(a, "y", value_string("s"));
	value_map_put(b, "y", value_string("s"));
	value_map_put(b, "x", value_int(1));
	ck_assert(value_equal(a, b));
	value_map_put(b, "x", value_int(2));	/* replaces */
	ck_assert(!value_equal(a, b));
	ck_assert_int_eq(b->map_value->n_fields, 2);
	ck_assert(!value_equal(a, NULL));
	ck_assert_int_eq(value_map_get(b, "x")->integer_value, 2);
	ck_assert_ptr_null(value_map_get(b, "z"));
	ck_assert_ptr_null(value_map_get(value_map_get(b, "y"), "x"));
	{
		FsValue *i = value_int(1), *d = value_double(1.0);

		ck_assert(!value_equal(i, d));	/* kinds differ */
		value_free(i);
		value_free(d);
	}
	value_free(a);
	value_free(b);
}
END_TEST

START_TEST(map_to_document_moves_entries)
{
	FsValue *m = value_map();
	FsDocument *d;

	value_map_put(m, "state", value_string("ready"));
	value_map_put(m, "updatedAt", value_int(5));
	d = value_map_to_doc(m, "projects/p/databases/d/documents/a/b");
	ck_assert_str_eq(d->name, "projects/p/databases/d/documents/a/b");
	ck_assert_int_eq(d->n_fields, 2);
	ck_assert_str_eq(doc_get(d, "state")->string_value, "ready");
	ck_assert_int_eq(doc_get(d, "updatedAt")->integer_value, 5);
	protobuf_c_message_free_unpacked(&d->base, NULL);
}
END_TEST

START_TEST(timestamps_compare_and_format)
{
	FsValue *a = value_timestamp(10, 5), *b = value_timestamp(10, 6);
	char buf[48];

	ck_assert_int_lt(ts_compare(a->timestamp_value, b->timestamp_value),
	    0);
	ck_assert_int_gt(ts_compare(b->timestamp_value, NULL), 0);
	ck_assert_str_eq(ts_format(a->timestamp_value, buf, sizeof(buf)),
	    "10.000000005");
	ck_assert_int_eq(ts_to_ms(b->timestamp_value), 10000);
	value_free(a);
	value_free(b);
}
END_TEST

Suite *
value_suite(void)
{
	Suite *s = suite_create("value");
	TCase *tc = tcase_create("codec");

	tcase_add_test(tc, every_kind_round_trips);
	tcase_add_test(tc, equality_is_deep_and_order_free);
	tcase_add_test(tc, map_to_document_moves_entries);
	tcase_add_test(tc, timestamps_compare_and_format);
	suite_add_tcase(s, tc);
	return s;
}
