/*
 * value.c - Firestore Value trees: construction, deep equality, lookups.
 *
 * Everything is allocated with malloc so that protobuf-c's
 * free_unpacked(NULL allocator) releases trees we build and trees we
 * receive alike.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "value.h"

static FsValue *
value_new(int kind)
{
	FsValue *v = xmalloc(sizeof(*v));

	google__firestore__v1__value__init(v);
	v->value_type_case = kind;
	return v;
}

FsValue *
value_null(void)
{
	FsValue *v = value_new(FSV(NULL_VALUE));

	v->null_value = GOOGLE__PROTOBUF__NULL_VALUE__NULL_VALUE;
	return v;
}

FsValue *
value_bool(bool b)
{
	FsValue *v = value_new(FSV(BOOLEAN_VALUE));

	v->boolean_value = b;
	return v;
}

FsValue *
value_int(int64_t i)
{
	FsValue *v = value_new(FSV(INTEGER_VALUE));

	v->integer_value = i;
	return v;
}

FsValue *
value_double(double d)
{
	FsValue *v = value_new(FSV(DOUBLE_VALUE));

	v->double_value = d;
	return v;
}

FsValue *
value_timestamp(int64_t seconds, int32_t nanos)
{
	FsValue *v = value_new(FSV(TIMESTAMP_VALUE));

	v->timestamp_value = xmalloc(sizeof(*v->timestamp_value));
	google__protobuf__timestamp__init(v->timestamp_value);
	v->timestamp_value->seconds = seconds;
	v->timestamp_value->nanos = nanos;
	return v;
}

FsValue *
value_string(const char *s)
{
	FsValue *v = value_new(FSV(STRING_VALUE));

	v->string_value = xstrdup(s);
	return v;
}

FsValue *
value_bytes(const void *p, size_t n)
{
	FsValue *v = value_new(FSV(BYTES_VALUE));

	v->bytes_value.data = xmalloc(n);
	if (n)
		memcpy(v->bytes_value.data, p, n);
	v->bytes_value.len = n;
	return v;
}

FsValue *
value_reference(const char *name)
{
	FsValue *v = value_new(FSV(REFERENCE_VALUE));

	v->reference_value = xstrdup(name);
	return v;
}

FsValue *
value_geo(double lat, double lng)
{
	FsValue *v = value_new(FSV(GEO_POINT_VALUE));

	v->geo_point_value = xmalloc(sizeof(*v->geo_point_value));
	google__type__lat_lng__init(v->geo_point_value);
	v->geo_point_value->latitude = lat;
	v->geo_point_value->longitude = lng;
	return v;
}

FsValue *
value_array(void)
{
	FsValue *v = value_new(FSV(ARRAY_VALUE));

	v->array_value = xmalloc(sizeof(*v->array_value));
	google__firestore__v1__array_value__init(v->array_value);
	return v;
}

FsValue *
value_map(void)
{
	FsValue *v = value_new(FSV(MAP_VALUE));

	v->map_value = xmalloc(sizeof(*v->map_value));
	google__firestore__v1__map_value__init(v->map_value);
	return v;
}

void
value_array_add(FsValue *array, FsValue *v)
{
	FsArrayValue *a = array->array_value;

	a->values = xrealloc(a->values, (a->n_values + 1) * sizeof(*a->values));
	a->values[a->n_values++] = v;
}

void
value_map_put(FsValue *map, const char *key, FsValue *v)
{
	FsMapValue *m = map->map_value;
	FsMapEntry *e;

	for (size_t i = 0; i < m->n_fields; i++) {
		if (strcmp(m->fields[i]->key, key) == 0) {
			value_free(m->fields[i]->value);
			m->fields[i]->value = v;
			return;
		}
	}
	e = xmalloc(sizeof(*e));
	google__firestore__v1__map_value__fields_entry__init(e);
	e->key = xstrdup(key);
	e->value = v;
	m->fields = xrealloc(m->fields, (m->n_fields + 1) * sizeof(*m->fields));
	m->fields[m->n_fields++] = e;
}

void
value_free(FsValue *v)
{
	if (v != NULL)
		protobuf_c_message_free_unpacked(&v->base, NULL);
}

FsDocument *
value_map_to_doc(FsValue *map, const char *name)
{
	FsDocument *d = xmalloc(sizeof(*d));
	FsMapValue *mv = map->map_value;

	google__firestore__v1__document__init(d);
	d->name = xstrdup(name);
	/* Document and MapValue entries have the same layout but distinct
	 * descriptors: move key and value into document entries. */
	d->n_fields = mv->n_fields;
	d->fields = xcalloc(mv->n_fields, sizeof(*d->fields));
	for (size_t i = 0; i < mv->n_fields; i++) {
		FsDocEntry *de = xmalloc(sizeof(*de));

		google__firestore__v1__document__fields_entry__init(de);
		de->key = mv->fields[i]->key;
		de->value = mv->fields[i]->value;
		mv->fields[i]->key = NULL;
		mv->fields[i]->value = NULL;
		d->fields[i] = de;
	}
	value_free(map);
	return d;
}

static const FsValue *
entries_get(FsMapEntry *const *e, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (e[i]->key != NULL && strcmp(e[i]->key, key) == 0)
			return e[i]->value;
	return NULL;
}

const FsValue *
value_map_get(const FsValue *map, const char *key)
{
	if (map == NULL || map->value_type_case != FSV(MAP_VALUE) ||
	    map->map_value == NULL)
		return NULL;
	return entries_get(map->map_value->fields, map->map_value->n_fields,
	    key);
}

const FsValue *
doc_get(const FsDocument *doc, const char *key)
{
	/* Document and map entries share one layout: key, then value. */
	for (size_t i = 0; doc != NULL && i < doc->n_fields; i++)
		if (doc->fields[i]->key != NULL &&
		    strcmp(doc->fields[i]->key, key) == 0)
			return doc->fields[i]->value;
	return NULL;
}

static bool
entries_equal(FsMapEntry *const *a, size_t na, FsMapEntry *const *b,
    size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++) {
		const FsValue *other = entries_get(b, nb, a[i]->key);

		if (other == NULL || !value_equal(a[i]->value, other))
			return false;
	}
	return true;
}

static bool
str_equal(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

bool
value_equal(const FsValue *a, const FsValue *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	if (a->value_type_case != b->value_type_case)
		return false;
	switch (a->value_type_case) {
	case FSV(NULL_VALUE):
		return true;
	case FSV(BOOLEAN_VALUE):
		return !a->boolean_value == !b->boolean_value;
	case FSV(INTEGER_VALUE):
		return a->integer_value == b->integer_value;
	case FSV(DOUBLE_VALUE):
		/* NaN equals NaN here: same stored value. */
		return a->double_value == b->double_value ||
		    (a->double_value != a->double_value &&
		     b->double_value != b->double_value);
	case FSV(TIMESTAMP_VALUE):
		return ts_compare(a->timestamp_value, b->timestamp_value) == 0;
	case FSV(STRING_VALUE):
		return str_equal(a->string_value, b->string_value);
	case FSV(BYTES_VALUE):
		return a->bytes_value.len == b->bytes_value.len &&
		    (a->bytes_value.len == 0 ||
		     memcmp(a->bytes_value.data, b->bytes_value.data,
			 a->bytes_value.len) == 0);
	case FSV(REFERENCE_VALUE):
		return str_equal(a->reference_value, b->reference_value);
	case FSV(GEO_POINT_VALUE):
		if (a->geo_point_value == NULL || b->geo_point_value == NULL)
			return a->geo_point_value == b->geo_point_value;
		return a->geo_point_value->latitude ==
		    b->geo_point_value->latitude &&
		    a->geo_point_value->longitude ==
		    b->geo_point_value->longitude;
	case FSV(ARRAY_VALUE): {
		const FsArrayValue *x = a->array_value, *y = b->array_value;
		size_t nx = x ? x->n_values : 0, ny = y ? y->n_values : 0;

		if (nx != ny)
			return false;
		for (size_t i = 0; i < nx; i++)
			if (!value_equal(x->values[i], y->values[i]))
				return false;
		return true;
	}
	case FSV(MAP_VALUE): {
		const FsMapValue *x = a->map_value, *y = b->map_value;

		return entries_equal(x ? x->fields : NULL, x ? x->n_fields : 0,
		    y ? y->fields : NULL, y ? y->n_fields : 0);
	}
	default:
		return true;	/* both unset */
	}
}

const char *
value_kind_name(const FsValue *v)
{
	if (v == NULL)
		return "missing";
	switch (v->value_type_case) {
	case FSV(NULL_VALUE):		return "null";
	case FSV(BOOLEAN_VALUE):	return "boolean";
	case FSV(INTEGER_VALUE):	return "integer";
	case FSV(DOUBLE_VALUE):		return "double";
	case FSV(TIMESTAMP_VALUE):	return "timestamp";
	case FSV(STRING_VALUE):		return "string";
	case FSV(BYTES_VALUE):		return "bytes";
	case FSV(REFERENCE_VALUE):	return "reference";
	case FSV(GEO_POINT_VALUE):	return "geopoint";
	case FSV(ARRAY_VALUE):		return "array";
	case FSV(MAP_VALUE):		return "map";
	default:			return "unset";
	}
}

int
ts_compare(const FsTimestamp *a, const FsTimestamp *b)
{
	if (a == NULL || b == NULL)
		return (a != NULL) - (b != NULL);
	if (a->seconds != b->seconds)
		return a->seconds < b->seconds ? -1 : 1;
	if (a->nanos != b->nanos)
		return a->nanos < b->nanos ? -1 : 1;
	return 0;
}

const char *
ts_format(const FsTimestamp *t, char *buf, size_t len)
{
	if (t == NULL)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%" PRId64 ".%09d", t->seconds, t->nanos);
	return buf;
}

FsTimestamp *
ts_dup(const FsTimestamp *t)
{
	FsTimestamp *c;

	if (t == NULL)
		return NULL;
	c = xmalloc(sizeof(*c));
	google__protobuf__timestamp__init(c);
	c->seconds = t->seconds;
	c->nanos = t->nanos;
	return c;
}

int64_t
ts_to_ms(const FsTimestamp *t)
{
	return t == NULL ? 0 : t->seconds * 1000 + t->nanos / 1000000;
}

FsDocument *
doc_dup(const FsDocument *d)
{
	size_t n = google__firestore__v1__document__get_packed_size(d);
	uint8_t *buf = xmalloc(n);
	FsDocument *c;

	google__firestore__v1__document__pack(d, buf);
	c = google__firestore__v1__document__unpack(NULL, n, buf);
	free(buf);
	return c;
}

void
doc_free(void *d)
{
	if (d != NULL)
		protobuf_c_message_free_unpacked(d, NULL);
}

bool
value_get_int64(const FsValue *v, int64_t *out)
{
	if (v == NULL)
		return false;
	if (v->value_type_case == FSV(INTEGER_VALUE)) {
		*out = v->integer_value;
		return true;
	}
	/* a double converts only inside int64's range: 2^63 itself and
	 * beyond, NaN and infinities are undefined behaviour to convert */
	if (v->value_type_case == FSV(DOUBLE_VALUE) &&
	    isfinite(v->double_value) &&
	    v->double_value >= -9223372036854775808.0 &&
	    v->double_value < 9223372036854775808.0) {
		*out = (int64_t)v->double_value;
		return true;
	}
	return false;
}

void
ts_init(FsTimestamp *t)
{
	google__protobuf__timestamp__init(t);
}

void
ts_free(FsTimestamp *t)
{
	doc_free(t);
}
