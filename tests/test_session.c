/*
 * test_session.c - decoding the schema's example documents and malformed
 * ones.
 */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "session.h"
#include "suites.h"
#include "value.h"

#define NAME(e, s) "projects/p/databases/(default)/documents/events/" e \
	"/sessions/" s

static FsValue *
step(const char *type, const char *key, FsValue *v)
{
	FsValue *m = value_map();

	value_map_put(m, "type", value_string(type));
	if (key)
		value_map_put(m, key, v);
	return m;
}

/* The spec's "Completed Session" example. */
static FsValue *
completed(void)
{
	FsValue *f = value_map(), *data = value_map();

	value_map_put(f, "id", value_string("sess_def456"));
	value_map_put(f, "eventId", value_string("evt_xyz789"));
	value_map_put(f, "state", value_string("ready"));
	value_map_put(f, "journeyId", value_string("journey_001"));
	value_map_put(f, "currentStepIndex", value_int(6));
	value_map_put(f, "inputImagePath",
	    value_string("captures/evt_xyz789/sess_def456/input.jpg"));
	value_map_put(f, "resultImagePath",
	    value_string("https://storage.googleapis.com/b/result.png"));
	value_map_put(data, "selected_experience_id",
	    value_string("exp_cartoon"));
	value_map_put(data, "step_name", step("text", "value",
	    value_string("John Smith")));
	value_map_put(data, "step_email", step("text", "value",
	    value_string("john@test.com")));
	value_map_put(data, "step_rating", step("number", "value",
	    value_int(9)));
	value_map_put(data, "step_consent", step("boolean", "value",
	    value_bool(true)));
	value_map_put(f, "data", data);
	value_map_put(f, "createdAt", value_int(1701100800000));
	value_map_put(f, "updatedAt", value_int(1701101200000));
	return f;
}

static int
decode(FsValue *fields, const char *name, struct session *s, char *err)
{
	FsDocument *d = value_map_to_doc(fields, name);
	int rc = session_decode(d, s, err, 256);

	protobuf_c_message_free_unpacked(&d->base, NULL);
	return rc;
}

START_TEST(completed_example_decodes)
{
	struct session s;
	char err[256];

	ck_assert_int_eq(decode(completed(), NAME("evt_xyz789", "sess_def456"),
	    &s, err), 0);
	ck_assert_str_eq(s.event_id, "evt_xyz789");
	ck_assert_str_eq(s.session_id, "sess_def456");
	ck_assert_int_eq(s.state, SESSION_READY);
	ck_assert_str_eq(s.input_image_path,
	    "captures/evt_xyz789/sess_def456/input.jpg");
	ck_assert_str_eq(s.selected_experience_id, "exp_cartoon");
	ck_assert_int_eq(s.current_step_index, 6);
	ck_assert_int_eq(s.created_at, 1701100800000);
	ck_assert_int_eq(s.updated_at, 1701101200000);
	ck_assert_int_eq(s.n_inputs, 4);
	ck_assert_ptr_null(s.warning);
	session_clear(&s);
}
END_TEST

START_TEST(error_and_in_progress_examples_decode)
{
	FsValue *f = value_map(), *data = value_map(), *sel;
	struct session s;
	char err[256];

	value_map_put(f, "id", value_string("sess_ghi789"));
	value_map_put(f, "eventId", value_string("evt_xyz789"));
	value_map_put(f, "state", value_string("error"));
	value_map_put(f, "error",
	    value_string("AI transform failed: timeout after 45s"));
	value_map_put(data, "selected_experience_id",
	    value_string("exp_cartoon"));
	sel = value_array();
	value_array_add(sel, value_string("a"));
	value_array_add(sel, value_string("b"));
	value_map_put(data, "step_pick", step("selections", "selectedIds",
	    sel));
	value_map_put(data, "step_one", step("selection", "selectedId",
	    value_string("x")));
	value_map_put(data, "step_selfie", step("photo", "url",
	    value_string("https://example.com/p.jpg")));
	value_map_put(f, "data", data);
	value_map_put(f, "createdAt", value_int(1701100800000));
	value_map_put(f, "updatedAt", value_double(1701101000000.0));
	ck_assert_int_eq(decode(f, NAME("evt_xyz789", "sess_ghi789"), &s, err),
	    0);
	ck_assert_int_eq(s.state, SESSION_ERROR);
	ck_assert_str_eq(s.error, "AI transform failed: timeout after 45s");
	ck_assert_ptr_null(s.input_image_path);
	ck_assert_int_eq(s.current_step_index, -1);
	ck_assert_int_eq(s.updated_at, 1701101000000);
	ck_assert_int_eq(s.n_inputs, 3);
	ck_assert_ptr_null(s.warning);
	session_clear(&s);
}
END_TEST

/* A malformed variant of the completed example must fail naming field. */
static void
expect_error(FsValue *f, const char *field_in_message)
{
	struct session s;
	char err[256] = "";

	ck_assert_int_eq(decode(f, NAME("e", "s"), &s, err), -EINVAL);
	ck_assert_msg(strstr(err, field_in_message) != NULL,
	    "error '%s' does not mention '%s'", err, field_in_message);
	session_clear(&s);
}

START_TEST(malformed_required_fields_are_errors)
{
	FsValue *f;
	char *huge;

	f = completed();
	value_map_put(f, "state", value_int(3));
	expect_error(f, "field 'state' must be a string, not integer");

	f = completed();
	value_map_put(f, "state", value_string("exploded"));
	expect_error(f, "unknown value 'exploded'");

	f = value_map();
	value_map_put(f, "inputImagePath", value_string("x"));
	expect_error(f, "field 'state' is missing");

	f = completed();
	value_map_put(f, "inputImagePath", value_bool(true));
	expect_error(f, "'inputImagePath' must be a string, not boolean");

	huge = malloc(100001);
	memset(huge, 'x', 100000);
	huge[100000] = '\0';
	f = completed();
	value_map_put(f, "inputImagePath", value_string(huge));
	expect_error(f, "'inputImagePath' is too long (100000 bytes");

	f = completed();
	value_map_put((FsValue *)value_map_get(f, "data"),
	    "selected_experience_id", value_string(huge));
	expect_error(f, "data.selected_experience_id' is too long");
	free(huge);

	f = completed();
	value_map_put((FsValue *)value_map_get(f, "data"),
	    "selected_experience_id", value_array());
	expect_error(f, "must be a string, not array");
}
END_TEST

START_TEST(other_schema_violations_are_warnings)
{
	FsValue *f = completed(), *data;
	struct session s;
	char err[256];

	data = (FsValue *)value_map_get(f, "data");
	value_map_put(data, "step_bad", step("text", "value", value_int(1)));
	value_map_put(data, "step_unknown", step("hologram", NULL, NULL));
	value_map_put(data, "step_notmap", value_string("hi"));
	value_map_put(f, "currentStepIndex", value_int(-1));
	value_map_put(f, "createdAt", value_string("yesterday"));
	value_map_put(f, "journeyId", value_int(7));
	ck_assert_int_eq(decode(f, NAME("e", "s"), &s, err), 0);
	ck_assert_ptr_nonnull(s.warning);
	ck_assert_ptr_nonnull(strstr(s.warning, "data.step_bad"));
	ck_assert_ptr_nonnull(strstr(s.warning, "unknown type 'hologram'"));
	ck_assert_ptr_nonnull(strstr(s.warning, "data.step_notmap must be a map"));
	ck_assert_ptr_nonnull(strstr(s.warning, "currentStepIndex"));
	ck_assert_ptr_nonnull(strstr(s.warning, "'createdAt' must be a number"));
	ck_assert_ptr_nonnull(strstr(s.warning, "'journeyId' must be a string"));
	ck_assert_ptr_nonnull(strstr(s.warning, "'eventId' ('evt_xyz789') "
	    "differs from the document path ('e')"));
	/* what we need still decoded */
	ck_assert_str_eq(s.selected_experience_id, "exp_cartoon");
	ck_assert_int_eq(s.n_inputs, 4);
	session_clear(&s);
}
END_TEST

/* Numbers outside int64 are refused, not converted (undefined
 * behaviour); huge integers are kept as they are. */
START_TEST(out_of_range_numbers_are_warnings)
{
	FsValue *f = completed();
	struct session s;
	char err[256];

	value_map_put(f, "createdAt", value_double(1e300));
	value_map_put(f, "updatedAt", value_double(-1.0 / 0.0));
	value_map_put(f, "transformAttempts", value_int(INT64_MAX));
	ck_assert_int_eq(decode(f, NAME("e", "s"), &s, err), 0);
	ck_assert_ptr_nonnull(s.warning);
	ck_assert_ptr_nonnull(strstr(s.warning, "'createdAt' is out of range"));
	ck_assert_ptr_nonnull(strstr(s.warning, "'updatedAt' is out of range"));
	ck_assert_int_eq(s.created_at, 0);
	ck_assert_int_eq(s.transform_attempts, INT64_MAX);
	session_clear(&s);
}
END_TEST

/* A big session is cached slim: a fixed, small cost per session however
 * big the document, with what dispatch needs; small ones stay whole. */
START_TEST(big_sessions_are_cached_slim)
{
	FsValue *f = completed(), *data, *step;
	FsDocument *doc, *slim;
	char *pad = malloc(600 * 1024 + 1);
	struct session s;
	char err[256];
	int64_t n;

	memset(pad, 'x', 600 * 1024);
	pad[600 * 1024] = '\0';
	data = (FsValue *)value_map_get(f, "data");
	step = value_map();
	value_map_put(step, "type", value_string("text"));
	value_map_put(step, "value", value_string(pad));
	free(pad);
	value_map_put(data, "step_long", step);
	value_map_put(f, "state", value_string("transforming"));
	value_map_put(f, "transformAttempts", value_int(2));
	doc = value_map_to_doc(f, NAME("e", "s"));
	doc->update_time = xcalloc(1, sizeof(*doc->update_time));
	google__protobuf__timestamp__init(doc->update_time);
	doc->update_time->seconds = 1764000000;
	slim = session_slim(doc);
	ck_assert(session_is_slim(slim));
	ck_assert_uint_lt(google__firestore__v1__document__get_packed_size(
	    slim), 512);
	ck_assert_str_eq(doc_get(slim, "state")->string_value, "transforming");
	ck_assert(value_get_int64(doc_get(slim, "transformAttempts"), &n));
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(slim->update_time->seconds, 1764000000);
	ck_assert_str_eq(slim->name, NAME("e", "s"));
	/* what is not there is read whole before the session runs */
	ck_assert_ptr_null(doc_get(slim, "data"));
	doc_free(slim);

	doc = value_map_to_doc(completed(), NAME("e", "s"));
	ck_assert_ptr_eq(session_slim(doc), doc);
	ck_assert(!session_is_slim(doc));
	ck_assert_int_eq(session_decode(doc, &s, err, sizeof(err)), 0);
	session_clear(&s);
	doc_free(doc);
}
END_TEST

START_TEST(names_outside_events_are_not_sessions)
{
	char *e, *s;

	ck_assert_int_eq(session_parse_name(NAME("a", "b"), &e, &s), 0);
	ck_assert_str_eq(e, "a");
	ck_assert_str_eq(s, "b");
	free(e);
	free(s);
	ck_assert_int_eq(session_parse_name(
	    "projects/p/databases/d/documents/users/u/sessions/x", &e, &s),
	    -EINVAL);
	ck_assert_int_eq(session_parse_name(
	    "projects/p/databases/d/documents/events/e/sessions/x/more/y",
	    &e, &s), -EINVAL);
	ck_assert_int_eq(session_parse_name(
	    "projects/p/databases/d/documents/events//sessions/x", &e, &s),
	    -EINVAL);
	ck_assert_int_eq(session_parse_name("garbage", &e, &s), -EINVAL);
	ck_assert_ptr_null(e);
}
END_TEST

START_TEST(experience_config)
{
	FsValue *f = value_map(), *cfg = value_map(), *refs = value_array();
	struct experience x;
	FsDocument *d;
	char err[256];

	value_map_put(cfg, "enabled", value_bool(true));
	value_map_put(cfg, "model", value_string("cartoon"));
	value_map_put(cfg, "prompt", value_string("bold"));
	value_map_put(cfg, "aspectRatio", value_string("4:3"));
	value_array_add(refs, value_string("results/e/s/ref.png"));
	value_map_put(cfg, "referenceImageUrls", refs);
	value_map_put(f, "aiPhotoConfig", cfg);
	d = value_map_to_doc(f, "projects/p/databases/d/documents/experiences/x1");
	ck_assert_int_eq(experience_decode(d, &x, err, sizeof(err)), 0);
	ck_assert(x.ai_enabled);
	ck_assert_str_eq(x.id, "x1");
	ck_assert_str_eq(x.model, "cartoon");
	ck_assert_str_eq(x.aspect_ratio, "4:3");
	ck_assert_int_eq(x.n_reference_urls, 1);
	experience_clear(&x);
	protobuf_c_message_free_unpacked(&d->base, NULL);

	/* enabled without a model is an error the guest can be told */
	f = value_map();
	cfg = value_map();
	value_map_put(cfg, "enabled", value_bool(true));
	value_map_put(f, "aiPhotoConfig", cfg);
	d = value_map_to_doc(f, "projects/p/databases/d/documents/experiences/x2");
	ck_assert_int_eq(experience_decode(d, &x, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "names no aiPhotoConfig.model"));
	experience_clear(&x);
	protobuf_c_message_free_unpacked(&d->base, NULL);

	/* no aiPhotoConfig at all: no AI */
	f = value_map();
	d = value_map_to_doc(f, "projects/p/databases/d/documents/experiences/x3");
	ck_assert_int_eq(experience_decode(d, &x, err, sizeof(err)), 0);
	ck_assert(!x.ai_enabled);
	experience_clear(&x);
	protobuf_c_message_free_unpacked(&d->base, NULL);
}
END_TEST

Suite *
session_suite(void)
{
	Suite *s = suite_create("session");
	TCase *tc = tcase_create("decode");

	tcase_add_test(tc, completed_example_decodes);
	tcase_add_test(tc, error_and_in_progress_examples_decode);
	tcase_add_test(tc, malformed_required_fields_are_errors);
	tcase_add_test(tc, other_schema_violations_are_warnings);
	tcase_add_test(tc, out_of_range_numbers_are_warnings);
	tcase_add_test(tc, big_sessions_are_cached_slim);
	tcase_add_test(tc, names_outside_events_are_not_sessions);
	tcase_add_test(tc, experience_config);
	suite_add_tcase(s, tc);
	return s;
}
