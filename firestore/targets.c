/*
 * targets.c - building queries: the Listen requests that add a query
 * target, and RunQuery requests.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "client.h"
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

/* ORDER BY __name__ ASC: the order a paged query's cursor follows */
static void
order_by_name(Google__Firestore__V1__StructuredQuery *sq)
{
	Google__Firestore__V1__StructuredQuery__Order *o =
	    xcalloc(1, sizeof(*o));
	Google__Firestore__V1__StructuredQuery__FieldReference *ref =
	    xcalloc(1, sizeof(*ref));

	google__firestore__v1__structured_query__order__init(o);
	google__firestore__v1__structured_query__field_reference__init(ref);
	ref->field_path = xstrdup("__name__");
	o->field = ref;
	o->direction =
	    GOOGLE__FIRESTORE__V1__STRUCTURED_QUERY__DIRECTION__ASCENDING;
	sq->n_order_by = 1;
	sq->order_by = xcalloc(1, sizeof(*sq->order_by));
	sq->order_by[0] = o;
}

/* START AT (name), just after it */
static Google__Firestore__V1__Cursor *
after_name(const char *name)
{
	Google__Firestore__V1__Cursor *cur = xcalloc(1, sizeof(*cur));

	google__firestore__v1__cursor__init(cur);
	cur->n_values = 1;
	cur->values = xcalloc(1, sizeof(*cur->values));
	cur->values[0] = value_reference(name);
	cur->before = false;
	return cur;
}

/* The StructuredQuery for query, and its parent's full name in *parent. */
static Google__Firestore__V1__StructuredQuery *
structured_query(const struct fs_client *c, const struct fs_query *query,
    char **parent)
{
	Google__Firestore__V1__StructuredQuery *sq = xcalloc(1, sizeof(*sq));
	Google__Firestore__V1__StructuredQuery__CollectionSelector *from =
	    xcalloc(1, sizeof(*from));

	google__firestore__v1__structured_query__init(sq);
	google__firestore__v1__structured_query__collection_selector__init(
	    from);
	if (query->parent != NULL && *query->parent != '\0')
		*parent = xasprintf("%s/%s", c->docs_path, query->parent);
	else
		*parent = xstrdup(c->docs_path);
	sq->n_from = 1;
	sq->from = xcalloc(1, sizeof(*sq->from));
	sq->from[0] = from;
	from->collection_id = xstrdup(query->collection);
	from->all_descendants = query->all_descendants;
	if (query->field != NULL)
		sq->where = field_in(query->field, query->values,
		    query->n_values);
	if (query->limit > 0) {
		Google__Protobuf__Int32Value *lim = xcalloc(1, sizeof(*lim));

		google__protobuf__int32_value__init(lim);
		lim->value = query->limit;
		sq->limit = lim;
		order_by_name(sq);
		if (query->start_after != NULL)
			sq->start_at = after_name(query->start_after);
	}
	return sq;
}

/* A request adding target id, of no type yet, into *t. */
static FsListenRequest *
add_target(const struct fs_client *c, int32_t id,
    Google__Firestore__V1__Target **t)
{
	FsListenRequest *r = xcalloc(1, sizeof(*r));

	*t = xcalloc(1, sizeof(**t));
	google__firestore__v1__listen_request__init(r);
	google__firestore__v1__target__init(*t);
	r->database = xstrdup(c->db_path);
	r->target_change_case =
	    GOOGLE__FIRESTORE__V1__LISTEN_REQUEST__TARGET_CHANGE_ADD_TARGET;
	r->add_target = *t;
	(*t)->target_id = id;
	return r;
}

FsListenRequest *
fs_listen_target(const struct fs_client *c, int32_t id,
    const struct fs_query *query, const uint8_t *resume_token,
    size_t resume_len)
{
	Google__Firestore__V1__Target *t;
	FsListenRequest *r = add_target(c, id, &t);
	Google__Firestore__V1__Target__QueryTarget *q = xcalloc(1, sizeof(*q));

	google__firestore__v1__target__query_target__init(q);
	t->target_type_case =
	    GOOGLE__FIRESTORE__V1__TARGET__TARGET_TYPE_QUERY;
	t->query = q;
	q->query_type_case =
	    GOOGLE__FIRESTORE__V1__TARGET__QUERY_TARGET__QUERY_TYPE_STRUCTURED_QUERY;
	q->structured_query = structured_query(c, query, &q->parent);
	if (resume_token != NULL && resume_len > 0) {
		t->resume_type_case =
		    GOOGLE__FIRESTORE__V1__TARGET__RESUME_TYPE_RESUME_TOKEN;
		t->resume_token.data = xmalloc(resume_len);
		memcpy(t->resume_token.data, resume_token, resume_len);
		t->resume_token.len = resume_len;
	}
	return r;
}

FsListenRequest *
fs_listen_document(const struct fs_client *c, int32_t id, const char *name)
{
	Google__Firestore__V1__Target *t;
	FsListenRequest *r = add_target(c, id, &t);
	Google__Firestore__V1__Target__DocumentsTarget *d =
	    xcalloc(1, sizeof(*d));

	google__firestore__v1__target__documents_target__init(d);
	t->target_type_case =
	    GOOGLE__FIRESTORE__V1__TARGET__TARGET_TYPE_DOCUMENTS;
	t->documents = d;
	d->n_documents = 1;
	d->documents = xcalloc(1, sizeof(char *));
	d->documents[0] = xstrdup(name);
	return r;
}

Google__Firestore__V1__RunQueryRequest *
fs_query_request(const struct fs_client *c, const struct fs_query *query)
{
	Google__Firestore__V1__RunQueryRequest *r = xcalloc(1, sizeof(*r));

	google__firestore__v1__run_query_request__init(r);
	r->query_type_case =
	    GOOGLE__FIRESTORE__V1__RUN_QUERY_REQUEST__QUERY_TYPE_STRUCTURED_QUERY;
	r->structured_query = structured_query(c, query, &r->parent);
	return r;
}
