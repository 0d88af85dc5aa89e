/*
 * watch.c - applying Listen responses to per-target document sets at
 * consistent snapshots.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "value.h"
#include "watch.h"

/* Marks a pending removal in a target's pending map. */
static char removed_marker;
#define WATCH_REMOVED ((void *)&removed_marker)

/* Frees a pending entry: a document, or nothing for the removal marker. */
static void
pending_free(void *v)
{
	if (v != WATCH_REMOVED)
		doc_free(v);
}

void
watch_init(struct watch *w)
{
	memset(w, 0, sizeof(*w));
}

void
watch_add_target(struct watch *w, int32_t id)
{
	struct watch_target *t;

	if (w->n_targets == WATCH_MAX_TARGETS)
		fatal("watch: too many targets");
	t = &w->targets[w->n_targets++];
	memset(t, 0, sizeof(*t));
	t->id = id;
	t->known = strmap_new();
	t->pending = strmap_new();
}

static struct watch_target *
target(const struct watch *w, int32_t id)
{
	for (int i = 0; i < w->n_targets; i++)
		if (w->targets[i].id == id)
			return (struct watch_target *)&w->targets[i];
	return NULL;
}

void
watch_set_trim(struct watch *w, int32_t id, watch_trim_fn fn, void *arg)
{
	struct watch_target *t = target(w, id);

	if (t != NULL) {
		t->trim = fn;
		t->trim_arg = arg;
	}
}

const struct strmap *
watch_known(const struct watch *w, int32_t id)
{
	struct watch_target *t = target(w, id);

	return t ? t->known : NULL;
}

bool
watch_synced(const struct watch *w)
{
	int n = 0;

	for (int i = 0; i < w->n_targets; i++) {
		if (w->targets[i].removed)
			continue;
		if (!w->targets[i].synced)
			return false;
		n++;
	}
	return n > 0;
}

int
watch_removed_count(const struct watch *w)
{
	int n = 0;

	for (int i = 0; i < w->n_targets; i++)
		n += w->targets[i].removed;
	return n;
}

const uint8_t *
watch_resume_token(const struct watch *w, int32_t id, size_t *len)
{
	const struct watch_target *t = watch_get(w, id);

	*len = t ? t->resume_token_len : 0;
	return t ? t->resume_token : NULL;
}

const struct watch_target *
watch_get(const struct watch *w, int32_t id)
{
	return target(w, id);
}

int
watch_current_count(const struct watch *w)
{
	int n = 0;

	for (int i = 0; i < w->n_targets; i++)
		n += w->targets[i].current;
	return n;
}

bool
watch_before(const struct watch *w, const FsTimestamp *t)
{
	return ts_compare(w->read_time, t) < 0;	/* NULL is before all */
}

static void
clear_pending(struct watch_target *t)
{
	strmap_free(t->pending, pending_free);
	t->pending = strmap_new();
}

static void
drop_resume(struct watch_target *t)
{
	free(t->resume_token);
	t->resume_token = NULL;
	t->resume_token_len = 0;
}

void
watch_clear(struct watch *w)
{
	for (int i = 0; i < w->n_targets; i++) {
		strmap_free(w->targets[i].known, doc_free);
		strmap_free(w->targets[i].pending, pending_free);
		drop_resume(&w->targets[i]);
	}
	ts_free(w->read_time);
	memset(w, 0, sizeof(*w));
}

void
watch_stream_started(struct watch *w)
{
	for (int i = 0; i < w->n_targets; i++) {
		clear_pending(&w->targets[i]);
		w->targets[i].current = false;
		w->targets[i].removed = false;
		w->targets[i].removed_code = 0;
	}
}

/* The server's state of t is forgotten: its token too, so that a new
 * stream sends it whole. */
static void
reset_target(struct watch_target *t)
{
	clear_pending(t);
	t->current = false;
	t->replace = true;
	drop_resume(t);
}

void
watch_reset(struct watch *w)
{
	for (int i = 0; i < w->n_targets; i++)
		reset_target(&w->targets[i]);
}

static bool
has_id(const int32_t *ids, size_t n, int32_t id)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

/* Record a pending upsert (takes ownership of doc). */
static void
pend(struct watch_target *t, const char *name, void *doc)
{
	pending_free(strmap_put(t->pending, name, doc));
}

/* Documents in the target after applying its pending changes. */
static size_t
pending_count(const struct watch_target *t)
{
	size_t n = t->replace ? 0 : strmap_count(t->known), pos = 0;
	const char *name;
	void *v;

	while (strmap_next(t->pending, &pos, &name, &v)) {
		bool known = !t->replace && strmap_get(t->known, name) != NULL;

		if (v == WATCH_REMOVED && known)
			n--;
		else if (v != WATCH_REMOVED && !known)
			n++;
	}
	return n;
}

static void
apply(struct watch_target *t)
{
	size_t pos = 0;
	const char *name;
	void *v;

	if (t->replace) {
		strmap_free(t->known, doc_free);
		t->known = strmap_new();
		t->replace = false;
	}
	while (strmap_next(t->pending, &pos, &name, &v)) {
		if (v == WATCH_REMOVED)
			doc_free(strmap_del(t->known, name));
		else
			doc_free(strmap_put(t->known, name, v));
	}
	/* values moved into known; free only the pending map itself */
	strmap_free(t->pending, NULL);
	t->pending = strmap_new();
}

static enum watch_event
target_change(struct watch *w, FsTargetChange *tc, char *err, size_t errlen)
{
	bool all = tc->n_target_ids == 0;

	switch ((int)tc->target_change_type) {
	case FSTC(NO_CHANGE): {
		bool any = false;

		if (!all || tc->read_time == NULL)
			return WATCH_NONE;
		for (int i = 0; i < w->n_targets; i++) {
			struct watch_target *t = &w->targets[i];

			if (!t->current || t->removed)
				continue;
			apply(t);
			t->synced = true;
			any = true;
			/* this target is synced up to here: it resumes from
			 * here, and no target that is not */
			if (tc->resume_token.len > 0) {
				drop_resume(t);
				t->resume_token = xmalloc(tc->resume_token.len);
				memcpy(t->resume_token, tc->resume_token.data,
				    tc->resume_token.len);
				t->resume_token_len = tc->resume_token.len;
			}
		}
		if (!any)
			return WATCH_NONE;
		ts_free(w->read_time);
		w->read_time = ts_dup(tc->read_time);
		return WATCH_SNAPSHOT;
	}
	case FSTC(ADD):
		return WATCH_NONE;
	case FSTC(REMOVE): {
		const char *why = tc->cause && tc->cause->message &&
		    *tc->cause->message ? tc->cause->message :
		    "no reason given";
		int code = tc->cause ? tc->cause->code : 0, n = 0;
		size_t off;

		if (all) {
			snprintf(err, errlen, "server removed every listen "
			    "target (code %d): %s", code, why);
			return WATCH_TARGET_ERROR;
		}
		off = (size_t)snprintf(err, errlen, "target");
		for (int i = 0; i < w->n_targets; i++) {
			struct watch_target *t = &w->targets[i];

			if (!has_id(tc->target_ids, tc->n_target_ids, t->id))
				continue;
			clear_pending(t);
			t->current = false;
			t->removed = true;
			t->removed_code = code;
			if (off < errlen)
				off += (size_t)snprintf(err + off, errlen - off,
				    "%s%d", n++ ? "," : " ", t->id);
		}
		if (n == 0)
			return WATCH_NONE;	/* none of ours */
		if (off < errlen)
			snprintf(err + off, errlen - off, " removed by the server "
			    "(code %d): %s", code, why);
		return WATCH_TARGET_REMOVED;
	}
	case FSTC(CURRENT):
		for (int i = 0; i < w->n_targets; i++)
			if (all || has_id(tc->target_ids, tc->n_target_ids,
			    w->targets[i].id))
				w->targets[i].current = true;
		return WATCH_NONE;
	case FSTC(RESET):
		for (int i = 0; i < w->n_targets; i++)
			if (all || has_id(tc->target_ids, tc->n_target_ids,
			    w->targets[i].id))
				reset_target(&w->targets[i]);
		return WATCH_NONE;
	default:
		log_debug("watch: ignoring target change type %d",
		    (int)tc->target_change_type);
		return WATCH_NONE;
	}
}

/*
 * A document entered (or changed in) some targets and left others.  The
 * last target it entered takes the message's own copy, the others a
 * duplicate; each copy is trimmed by its target's hook.
 */
static void
document_change(struct watch *w, Google__Firestore__V1__DocumentChange *dc)
{
	FsDocument *doc = dc->document;
	int last = -1;
	char *name;

	if (doc == NULL || doc->name == NULL)
		return;
	for (int i = 0; i < w->n_targets; i++)
		if (has_id(dc->target_ids, dc->n_target_ids, w->targets[i].id))
			last = i;
	name = xstrdup(doc->name);
	for (int i = 0; i < w->n_targets; i++) {
		struct watch_target *t = &w->targets[i];
		FsDocument *d;

		if (has_id(dc->removed_target_ids, dc->n_removed_target_ids,
		    t->id) && !has_id(dc->target_ids, dc->n_target_ids, t->id)) {
			pend(t, name, WATCH_REMOVED);
			continue;
		}
		if (!has_id(dc->target_ids, dc->n_target_ids, t->id))
			continue;
		d = i == last ? doc : doc_dup(doc);
		if (i == last)
			dc->document = NULL;	/* moved into pending */
		if (d == NULL) {
			log_warn("listen: document %.300s cannot be copied "
			    "(malformed); skipped", name);
			continue;
		}
		if (t->trim != NULL)
			d = t->trim(d, t->trim_arg);
		pend(t, name, d);
	}
	free(name);
}

enum watch_event
watch_feed(struct watch *w, FsListenResponse *resp, char *err, size_t errlen)
{
	switch (resp->response_type_case) {
	case FSLR(TARGET_CHANGE):
		return target_change(w, resp->target_change, err, errlen);
	case FSLR(DOCUMENT_CHANGE):
		document_change(w, resp->document_change);
		return WATCH_NONE;
	case FSLR(DOCUMENT_DELETE):
		for (int i = 0; i < w->n_targets; i++)
			pend(&w->targets[i], resp->document_delete->document,
			    WATCH_REMOVED);
		return WATCH_NONE;
	case FSLR(DOCUMENT_REMOVE): {
		Google__Firestore__V1__DocumentRemove *dr =
		    resp->document_remove;

		for (int i = 0; i < w->n_targets; i++)
			if (dr->n_removed_target_ids == 0 ||
			    has_id(dr->removed_target_ids,
			    dr->n_removed_target_ids, w->targets[i].id))
				pend(&w->targets[i], dr->document,
				    WATCH_REMOVED);
		return WATCH_NONE;
	}
	case FSLR(FILTER): {
		struct watch_target *t = target(w, resp->filter->target_id);
		size_t have;

		if (t == NULL)
			return WATCH_NONE;
		have = pending_count(t);
		if ((size_t)resp->filter->count == have)
			return WATCH_NONE;
		snprintf(err, errlen, "existence filter mismatch on target %d: "
		    "server has %d documents, we have %zu",
		    t->id, resp->filter->count, have);
		reset_target(t);	/* the others resume as they were */
		return WATCH_RESTART;
	}
	default:
		return WATCH_NONE;
	}
}
