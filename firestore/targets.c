/*
 * targets.c - building the Listen requests that add a query target.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "firestore.h"
#include "value.h"

/* where field in (values...) */
static Google__Firestore__V1__StructuredQuery__Filter *
field_in(const char *field, const char *const *values, size_t n)
{
	Google__Firestore__V1__StructuredQuery__Filter *f =
	    xcalloc(1, sizeof(*f));
	Google__Firestore__V1__StructuredQuery__FieldFilter *ff =
	    xcalloc(1, sizeof(*ff));
	Google__Firestore__V1__StructuredQuery__FieldReference *ref =
	    xcalloc(1, sizeof(*ref));
	FsValue *in = value_array();

	google__firestore__v1__structured_query__filter__init(f);
	google__firestore__v1__structured_query__field_filter__init(ff);
	google__firestore__v1__structured_query__field_reference__init(ref);
	ref->field_path = xstrdup(field);
	for (size_t i = 0; i < n; i++)
		value_array_add(in, value_string(values[i]));
	ff->field = ref;
	ff->op = GOOGLE__FIRESTORE__V1__STRUCTURED_QUERY__FIELD_FILTER__OPERATOR__IN;
	ff->value = in;
	f->filter_type_case =
	    GOOGLE__FIRESTORE__V1__STRUCTURED_QUERY__FILTER__FILTER_TYPE_FIELD_FILTER;
	f->field_filter = ff;
	return f;
}

FsListenRequest *
fs_listen_target(const struct fs_client *c, int32_t id,
    const struct fs_query *query, const uint8_t *resume_token,
    size_t resume_len)
{
	FsListenRequest *r = xcalloc(1, sizeof(*r));
	Google__Firestore__V1__Target *t = xcalloc(1, sizeof(*t));
	Google__Firestore__V1__Target__QueryTarget *q = xcalloc(1, sizeof(*q));
	Google__Firestore__V1__StructuredQuery *sq = xcalloc(1, sizeof(*sq));
	Google__Firestore__V1__StructuredQuery__CollectionSelector *from =
	    xcalloc(1, sizeof(*from));

	google__firestore__v1__listen_request__init(r);
	google__firestore__v1__target__init(t);
	google__firestore__v1__target__query_target__init(q);
	google__firestore__v1__structured_query__init(sq);
	google__firestore__v1__structured_query__collection_selector__init(
	    from);
	r->database = xstrdup(c->db_path);
	r->target_change_case =
	    GOOGLE__FIRESTORE__V1__LISTEN_REQUEST__TARGET_CHANGE_ADD_TARGET;
	r->add_target = t;
	t->target_id = id;
	t->target_type_case =
	    GOOGLE__FIRESTORE__V1__TARGET__TARGET_TYPE_QUERY;
	t->query = q;
	if (query->parent != NULL && *query->parent != '\0')
		q->parent = xasprintf("%s/%s", c->docs_path, query->parent);
	else
		q->parent = xstrdup(c->docs_path);
	q->query_type_case =
	    GOOGLE__FIRESTORE__V1__TARGET__QUERY_TARGET__QUERY_TYPE_STRUCTURED_QUERY;
	q->structured_query = sq;
	sq->n_from = 1;
	sq->from = xcalloc(1, sizeof(*sq->from));
	sq->from[0] = from;
	from->collection_id = xstrdup(query->collection);
	from->all_descendants = query->all_descendants;
	if (query->field != NULL)
		sq->where = field_in(query->field, query->values,
		    query->n_values);
	if (resume_token != NULL && resume_len > 0) {
		t->resume_type_case =
		    GOOGLE__FIRESTORE__V1__TARGET__RESUME_TYPE_RESUME_TOKEN;
		t->resume_token.data = xmalloc(resume_len);
		memcpy(t->resume_token.data, resume_token, resume_len);
		t->resume_token.len = resume_len;
	}
	return r;
}
