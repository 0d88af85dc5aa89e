/*
 * session.c - decoding session and experience documents against the web
 * app's schema (its fields are listed in the README and firesyncd(8)).
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "session.h"
#include "text.h"
#include "value.h"

static const char *const state_names[] = {
	[SESSION_UNKNOWN] = "unknown",
	[SESSION_CREATED] = "created",
	[SESSION_CAPTURED] = "captured",
	[SESSION_TRANSFORMING] = "transforming",
	[SESSION_READY] = "ready",
	[SESSION_ERROR] = "error",
};

enum session_state
session_state_parse(const char *s)
{
	for (int i = SESSION_CREATED; i <= SESSION_ERROR; i++)
		if (strcmp(s, state_names[i]) == 0)
			return i;
	return SESSION_UNKNOWN;
}

/* Segment i (0-based) of a '/'-separated path into out; false if absent. */
static bool
segment(const char *path, int i, const char **start, size_t *len)
{
	const char *p = path;

	for (; i > 0; i--) {
		p = strchr(p, '/');
		if (p == NULL)
			return false;
		p++;
	}
	*start = p;
	*len = strcspn(p, "/");
	return true;
}

int
session_name_ids(const char *name, const char **event_id, size_t *event_len,
    const char **session_id, size_t *session_len)
{
	const char *docs = strstr(name, "/documents/");

	if (docs == NULL)
		return -EINVAL;
	docs += strlen("/documents/");
	/* exactly events/E/sessions/S */
	if (!segment(docs, 0, event_id, event_len) || *event_len != 6 ||
	    strncmp(*event_id, "events", 6))
		return -EINVAL;
	if (!segment(docs, 2, event_id, event_len) || *event_len != 8 ||
	    strncmp(*event_id, "sessions", 8))
		return -EINVAL;
	if (segment(docs, 4, event_id, event_len))
		return -EINVAL;
	if (!segment(docs, 1, event_id, event_len) || *event_len == 0 ||
	    *event_len > SESSION_MAX_ID)
		return -EINVAL;
	if (!segment(docs, 3, session_id, session_len) || *session_len == 0 ||
	    *session_len > SESSION_MAX_ID)
		return -EINVAL;
	return 0;
}

int
session_parse_name(const char *name, char **event_id, char **session_id)
{
	const char *e, *s;
	size_t en, sn;

	*event_id = *session_id = NULL;
	if (session_name_ids(name, &e, &en, &s, &sn) < 0)
		return -EINVAL;
	*event_id = xstrndup(e, en);
	*session_id = xstrndup(s, sn);
	return 0;
}

/* Collects non-fatal problems into one "; "-separated string. */
static void
warn_add(char **warning, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	char *w;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (*warning == NULL) {
		*warning = xstrdup(buf);
		return;
	}
	w = xasprintf("%s; %s", *warning, buf);
	free(*warning);
	*warning = w;
}

/* A string Value of at most max bytes, checked and not copied: 0, or
 * -EINVAL with err.  An absent one is fine. */
static int
check_string(const FsValue *v, const char *field, size_t max, char *err,
    size_t errlen)
{
	size_t n;

	if (v == NULL)
		return 0;
	if (v->value_type_case != FSV(STRING_VALUE)) {
		snprintf(err, errlen, "field '%s' must be a string, not %s",
		    field, value_kind_name(v));
		return -EINVAL;
	}
	n = strlen(v->string_value);
	if (n > max) {
		snprintf(err, errlen,
		    "field '%s' is too long (%zu bytes, limit %zu)", field, n,
		    max);
		return -EINVAL;
	}
	return 0;
}

/*
 * Optional string field.  Returns 0 (absent or copied into *out), or
 * -EINVAL with err filled when it has the wrong type or is longer than max.
 */
static int
get_string(const FsValue *v, const char *field, size_t max, char **out,
    char *err, size_t errlen)
{
	*out = NULL;
	if (check_string(v, field, max, err, errlen) < 0)
		return -EINVAL;
	if (v != NULL)
		*out = xstrdup(v->string_value);
	return 0;
}

/* A JS number: integer or double Value.  false if it is not one. */
static bool
get_number(const FsValue *v, double *out)
{
	if (v == NULL)
		return false;
	if (v->value_type_case == FSV(INTEGER_VALUE)) {
		*out = (double)v->integer_value;
		return true;
	}
	if (v->value_type_case == FSV(DOUBLE_VALUE)) {
		*out = v->double_value;
		return true;
	}
	return false;
}

static const char *const step_type_names[] = {
	[STEP_TEXT] = "text", [STEP_BOOLEAN] = "boolean",
	[STEP_NUMBER] = "number", [STEP_SELECTION] = "selection",
	[STEP_SELECTIONS] = "selections", [STEP_PHOTO] = "photo",
};

/*
 * Check one stepInputValue against the schema; -EINVAL with err describing
 * the problem.  Nothing is copied: firesync reads no step input, it only
 * reports those that would not parse.
 */
static int
check_step_input(const char *key, const FsValue *v, char *err, size_t errlen)
{
	const FsValue *t, *f;
	char e2[256];
	int type = 0;
	double d;

	if (v->value_type_case != FSV(MAP_VALUE)) {
		snprintf(err, errlen, "data.%s must be a map, not %s", key,
		    value_kind_name(v));
		return -EINVAL;
	}
	t = value_map_get(v, "type");
	if (t == NULL || t->value_type_case != FSV(STRING_VALUE)) {
		snprintf(err, errlen, "data.%s has no string 'type'", key);
		return -EINVAL;
	}
	for (int i = STEP_TEXT; i <= STEP_PHOTO; i++)
		if (strcmp(t->string_value, step_type_names[i]) == 0)
			type = i;
	if (type == 0) {
		char name[44];

		text_format(err, errlen, "data.%s has unknown type '%s'", key,
		    text_name(t->string_value, 40, name, sizeof(name)));
		return -EINVAL;
	}
	switch (type) {
	case STEP_TEXT:
	case STEP_SELECTION:
	case STEP_PHOTO: {
		const char *fname = type == STEP_PHOTO ? "url" :
		    type == STEP_SELECTION ? "selectedId" : "value";

		f = value_map_get(v, fname);
		if (f == NULL) {
			snprintf(err, errlen, "data.%s.%s is missing", key,
			    fname);
			return -EINVAL;
		}
		if (check_string(f, fname, SESSION_MAX_TEXT, e2,
		    sizeof(e2)) < 0) {
			snprintf(err, errlen, "data.%s: %s", key, e2);
			return -EINVAL;
		}
		break;
	}
	case STEP_BOOLEAN:
		f = value_map_get(v, "value");
		if (f == NULL || f->value_type_case != FSV(BOOLEAN_VALUE)) {
			snprintf(err, errlen, "data.%s.value must be a boolean",
			    key);
			return -EINVAL;
		}
		break;
	case STEP_NUMBER:
		if (!get_number(value_map_get(v, "value"), &d)) {
			snprintf(err, errlen, "data.%s.value must be a number",
			    key);
			return -EINVAL;
		}
		break;
	case STEP_SELECTIONS:
		f = value_map_get(v, "selectedIds");
		if (f == NULL || f->value_type_case != FSV(ARRAY_VALUE)) {
			snprintf(err, errlen,
			    "data.%s.selectedIds must be an array", key);
			return -EINVAL;
		}
		for (size_t i = 0; i < f->array_value->n_values; i++)
			if (check_string(f->array_value->values[i],
			    "selectedIds[]", SESSION_MAX_ID, e2,
			    sizeof(e2)) < 0) {
				snprintf(err, errlen, "data.%s: %s", key, e2);
				return -EINVAL;
			}
		break;
	}
	return 0;
}

static int
decode_data(const FsValue *data, struct session *s, char *err, size_t errlen)
{
	const FsMapValue *m;
	char e2[512];

	if (data == NULL)
		return 0;
	if (data->value_type_case != FSV(MAP_VALUE)) {
		warn_add(&s->warning, "field 'data' must be a map, not %s",
		    value_kind_name(data));
		return 0;
	}
	m = data->map_value;
	for (size_t i = 0; i < m->n_fields; i++) {
		const char *key = m->fields[i]->key;
		const FsValue *v = m->fields[i]->value;

		if (strcmp(key, "selected_experience_id") == 0) {
			/* a key given twice (bytes off the wire may say it
			 * twice): the last counts, as in a protobuf map */
			free(s->selected_experience_id);
			if (get_string(v, "data.selected_experience_id",
			    SESSION_MAX_ID, &s->selected_experience_id, err,
			    errlen) < 0)
				return -EINVAL;
			continue;
		}
		/* An explicit null is how "optional" travels. */
		if (v == NULL || v->value_type_case == FSV(NULL_VALUE))
			continue;
		if (check_step_input(key, v, e2, sizeof(e2)) < 0) {
			warn_add(&s->warning, "%s", e2);
			continue;
		}
		s->n_inputs++;
	}
	return 0;
}

/* A non-fatal optional string: wrong type goes to the warning. */
static void
soft_string(const FsDocument *doc, const char *field, size_t max, char **out,
    struct session *s)
{
	char e2[256];

	if (get_string(doc_get(doc, field), field, max, out, e2,
	    sizeof(e2)) < 0)
		warn_add(&s->warning, "%s", e2);
}

static void
soft_number(const FsDocument *doc, const char *field, bool required,
    int64_t *out, struct session *s)
{
	const FsValue *v = doc_get(doc, field);
	double d;

	if (v == NULL) {
		if (required)
			warn_add(&s->warning, "field '%s' is missing", field);
		return;
	}
	if (!get_number(v, &d)) {
		warn_add(&s->warning, "field '%s' must be a number, not %s",
		    field, value_kind_name(v));
		return;
	}
	if (!value_get_int64(v, out))
		warn_add(&s->warning, "field '%s' is out of range", field);
}

void
session_peek(const FsDocument *doc, enum session_state *state,
    int64_t *attempts)
{
	const FsValue *v = doc_get(doc, "state");

	*state = v != NULL && v->value_type_case == FSV(STRING_VALUE) ?
	    session_state_parse(v->string_value) : SESSION_UNKNOWN;
	if (!value_get_int64(doc_get(doc, "transformAttempts"), attempts))
		*attempts = 0;
}

int
session_decode(const FsDocument *doc, struct session *s, char *err,
    size_t errlen)
{
	const FsValue *v;
	int64_t attempts;

	memset(s, 0, sizeof(*s));
	s->current_step_index = -1;
	s->name = xstrdup(doc->name ? doc->name : "");
	s->update_time = ts_dup(doc->update_time);
	/* what dispatch needs, first, so that it is there whatever else is
	 * wrong with the document; read where dispatch reads it */
	session_peek(doc, &s->state, &s->transform_attempts);
	/* its warnings only: the value is session_peek's */
	soft_number(doc, "transformAttempts", false, &attempts, s);
	if (session_parse_name(s->name, &s->event_id, &s->session_id) < 0) {
		snprintf(err, errlen,
		    "document %.200s is not /events/{eventId}/sessions/{sessionId}",
		    s->name);
		return -EINVAL;
	}

	v = doc_get(doc, "state");
	if (v == NULL) {
		snprintf(err, errlen, "field 'state' is missing");
		return -EINVAL;
	}
	if (v->value_type_case != FSV(STRING_VALUE)) {
		snprintf(err, errlen, "field 'state' must be a string, not %s",
		    value_kind_name(v));
		return -EINVAL;
	}
	if (s->state == SESSION_UNKNOWN) {
		char name[44];

		text_format(err, errlen, "field 'state' has unknown value '%s'",
		    text_name(v->string_value, 40, name, sizeof(name)));
		return -EINVAL;
	}
	if (get_string(doc_get(doc, "inputImagePath"), "inputImagePath",
	    SESSION_MAX_PATH, &s->input_image_path, err, errlen) < 0)
		return -EINVAL;
	if (decode_data(doc_get(doc, "data"), s, err, errlen) < 0)
		return -EINVAL;

	soft_string(doc, "id", SESSION_MAX_ID, &s->id, s);
	soft_string(doc, "eventId", SESSION_MAX_ID, &s->event_id_field, s);
	soft_string(doc, "resultImagePath", SESSION_MAX_PATH,
	    &s->result_image_path, s);
	soft_string(doc, "error", SESSION_MAX_TEXT, &s->error, s);
	soft_string(doc, "journeyId", SESSION_MAX_ID, &s->journey_id, s);
	if (s->id == NULL && doc_get(doc, "id") == NULL)
		warn_add(&s->warning, "field 'id' is missing");
	if (s->event_id_field == NULL && doc_get(doc, "eventId") == NULL)
		warn_add(&s->warning, "field 'eventId' is missing");
	if (s->event_id_field != NULL &&
	    strcmp(s->event_id_field, s->event_id) != 0)
		warn_add(&s->warning,
		    "field 'eventId' ('%.60s') differs from the document path ('%.60s')",
		    s->event_id_field, s->event_id);

	v = doc_get(doc, "currentStepIndex");
	if (v != NULL) {
		if (v->value_type_case != FSV(INTEGER_VALUE) ||
		    v->integer_value < 0)
			warn_add(&s->warning,
			    "field 'currentStepIndex' must be an integer >= 0");
		else
			s->current_step_index = v->integer_value;
	}
	soft_number(doc, "createdAt", true, &s->created_at, s);
	soft_number(doc, "updatedAt", true, &s->updated_at, s);
	return 0;
}

void
session_clear(struct session *s)
{
	free(s->name);
	free(s->event_id);
	free(s->session_id);
	if (s->update_time)
		protobuf_c_message_free_unpacked(&s->update_time->base, NULL);
	free(s->id);
	free(s->event_id_field);
	free(s->input_image_path);
	free(s->result_image_path);
	free(s->error);
	free(s->journey_id);
	free(s->selected_experience_id);
	free(s->warning);
	memset(s, 0, sizeof(*s));
}

int
experience_decode(const FsDocument *doc, struct experience *e, char *err,
    size_t errlen)
{
	const char *slash;
	const FsValue *cfg, *v;
	char e2[256], id[104];

	memset(e, 0, sizeof(*e));
	slash = doc->name ? strrchr(doc->name, '/') : NULL;
	e->id = xstrdup(slash ? slash + 1 : "");
	text_name(e->id, 100, id, sizeof(id));
	cfg = doc_get(doc, "aiPhotoConfig");
	/* No aiPhotoConfig: the experience has no AI step. */
	if (cfg == NULL || cfg->value_type_case == FSV(NULL_VALUE))
		return 0;
	if (cfg->value_type_case != FSV(MAP_VALUE)) {
		text_format(err, errlen, "experience '%s': aiPhotoConfig must "
		    "be a map, not %s", id, value_kind_name(cfg));
		return -EINVAL;
	}
	v = value_map_get(cfg, "enabled");
	if (v != NULL && v->value_type_case != FSV(BOOLEAN_VALUE)) {
		text_format(err, errlen, "experience '%s': "
		    "aiPhotoConfig.enabled must be a boolean", id);
		return -EINVAL;
	}
	e->ai_enabled = v != NULL && v->boolean_value;
	if (get_string(value_map_get(cfg, "model"), "aiPhotoConfig.model",
	    256, &e->model, e2, sizeof(e2)) < 0 ||
	    get_string(value_map_get(cfg, "prompt"), "aiPhotoConfig.prompt",
	    SESSION_MAX_TEXT, &e->prompt, e2, sizeof(e2)) < 0 ||
	    get_string(value_map_get(cfg, "aspectRatio"),
	    "aiPhotoConfig.aspectRatio", 32, &e->aspect_ratio, e2,
	    sizeof(e2)) < 0) {
		text_format(err, errlen, "experience '%s': %s", id, e2);
		return -EINVAL;
	}
	v = value_map_get(cfg, "referenceImageUrls");
	if (v != NULL && v->value_type_case == FSV(ARRAY_VALUE)) {
		const FsArrayValue *a = v->array_value;

		e->reference_urls = xcalloc(a->n_values, sizeof(char *));
		for (size_t i = 0; i < a->n_values; i++) {
			if (get_string(a->values[i],
			    "aiPhotoConfig.referenceImageUrls[]",
			    SESSION_MAX_PATH, &e->reference_urls[i], e2,
			    sizeof(e2)) < 0) {
				text_format(err, errlen, "experience '%s': %s",
				    id, e2);
				return -EINVAL;
			}
			e->n_reference_urls++;
		}
	} else if (v != NULL && v->value_type_case != FSV(NULL_VALUE)) {
		text_format(err, errlen, "experience '%s': "
		    "aiPhotoConfig.referenceImageUrls must be an array", id);
		return -EINVAL;
	}
	if (e->ai_enabled && (e->model == NULL || *e->model == '\0')) {
		text_format(err, errlen, "experience '%s' enables AI but "
		    "names no aiPhotoConfig.model", id);
		return -EINVAL;
	}
	return 0;
}

void
experience_clear(struct experience *e)
{
	free(e->id);
	free(e->model);
	free(e->prompt);
	free(e->aspect_ratio);
	for (size_t i = 0; i < e->n_reference_urls; i++)
		free(e->reference_urls[i]);
	free(e->reference_urls);
	memset(e, 0, sizeof(*e));
}

char *
experience_doc_name(const char *docs_path, const char *id)
{
	if (id == NULL || *id == '\0' || strchr(id, '/') != NULL ||
	    strcmp(id, ".") == 0 || strcmp(id, "..") == 0 ||
	    strlen(id) > SESSION_MAX_ID)
		return NULL;
	return xasprintf("%s/experiences/%s", docs_path, id);
}

/* A field name Firestore reserves (__.*__), so no real document has it. */
#define SLIM_MARK "__firesync_slim__"

FsDocument *
session_slim(FsDocument *doc)
{
	static const char *const keep[] = { "state", "transformAttempts" };
	FsDocument *slim;
	FsValue *f;

	if (google__firestore__v1__document__get_packed_size(doc) <=
	    SESSION_SLIM_OVER)
		return doc;
	f = value_map();
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
		const FsValue *v = doc_get(doc, keep[i]);
		int64_t n;

		if (v && v->value_type_case == FSV(STRING_VALUE))
			value_map_put(f, keep[i], value_string(v->string_value));
		else if (value_get_int64(v, &n))
			value_map_put(f, keep[i], value_int(n));
	}
	value_map_put(f, SLIM_MARK, value_bool(true));
	slim = value_map_to_doc(f, doc->name);
	slim->update_time = ts_dup(doc->update_time);
	doc_free(doc);
	return slim;
}

bool
session_is_slim(const FsDocument *doc)
{
	return doc_get(doc, SLIM_MARK) != NULL;
}

struct experience_ref {
	atomic_int refs;
	FsTimestamp *version;
	int rc;
	char err[256];
	struct experience x;
};

struct experience_ref *
experience_ref_decode(const FsDocument *doc)
{
	struct experience_ref *r = xcalloc(1, sizeof(*r));

	atomic_init(&r->refs, 1);
	r->version = ts_dup(doc->update_time);
	r->rc = experience_decode(doc, &r->x, r->err, sizeof(r->err));
	return r;
}

struct experience_ref *
experience_ref_hold(struct experience_ref *r)
{
	atomic_fetch_add(&r->refs, 1);
	return r;
}

void
experience_ref_drop(void *arg)
{
	struct experience_ref *r = arg;

	if (r == NULL || atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	experience_clear(&r->x);
	ts_free(r->version);
	free(r);
}

int
experience_ref_get(const struct experience_ref *r,
    const struct experience **x, const char **err)
{
	*x = r->rc == 0 ? &r->x : NULL;
	*err = r->rc == 0 ? NULL : r->err;
	return r->rc;
}

const FsTimestamp *
experience_ref_version(const struct experience_ref *r)
{
	return r->version;
}
