/*
 * engine.c - the Listen loop, dispatch of captured and interrupted
 * sessions, and the worker thread pool.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc.h>

#include "backoff.h"
#include "engine.h"
#include "log.h"
#include "notify.h"
#include "value.h"

#define TICK_MS		500
#define FIRST_RESPONSE_MS 30000
/*
 * A stream that has answered but still has targets that are not CURRENT,
 * and has said nothing for this long, is stuck: seen with the emulator,
 * which can leave a target added during a write unanswered, and the
 * whole stream silent with it.  Reopen it rather than wait for the idle
 * timeout.  An initial load of any size keeps messages coming, so this
 * only fires on a stream that has stopped.
 */
#define NOT_CURRENT_MS	10000
/*
 * Every write of ours is to a session in our targets, so the stream must
 * show it: a snapshot at or after its commit time.  One that has not in
 * this long, on a stream open at least as long, is stuck.  (Firestore
 * shows a change within a second or two; a reopen resumes from the token,
 * so a false alarm costs one short re-read.)
 */
#define UNSEEN_WRITE_MS	15000

struct stale_entry {
	char version[48];
	int64_t first_seen_ms;	/* monotonic */
	int64_t age0_ms;	/* server-side age when first seen */
};

static void
job_free(struct job *j)
{
	if (j == NULL)
		return;
	session_clear(&j->s);
	free(j);
}

/* ---- workers ---- */

static void *
worker_main(void *arg)
{
	struct engine *e = arg;

	for (;;) {
		struct job *j;

		pthread_mutex_lock(&e->lock);
		while (e->head == NULL && !e->stopping)
			pthread_cond_wait(&e->cond, &e->lock);
		if (e->head == NULL) {
			pthread_mutex_unlock(&e->lock);
			return NULL;
		}
		j = e->head;
		e->head = j->next;
		if (e->head == NULL)
			e->tail = NULL;
		atomic_fetch_add(&e->running, 1);
		pthread_mutex_unlock(&e->lock);

		pipeline_run(e, j);

		pthread_mutex_lock(&e->lock);
		strmap_del(e->inflight, j->s.name);
		atomic_fetch_sub(&e->running, 1);
		pthread_cond_broadcast(&e->cond);
		pthread_mutex_unlock(&e->lock);
		job_free(j);
	}
}

/* ---- dispatch (listen thread) ---- */

static void
enqueue(struct engine *e, const FsDocument *doc, bool recover)
{
	struct job *j = xcalloc(1, sizeof(*j));

	j->decode_rc = session_decode(doc, &j->s, j->decode_err,
	    sizeof(j->decode_err));
	j->recover = recover;
	j->enqueued_ms = now_mono_ms();
	pthread_mutex_lock(&e->lock);
	strmap_put(e->inflight, j->s.name, (void *)1);
	if (e->tail)
		e->tail->next = j;
	else
		e->head = j;
	e->tail = j;
	pthread_cond_signal(&e->cond);
	pthread_mutex_unlock(&e->lock);
}

static bool
is_inflight(struct engine *e, const char *name)
{
	bool r;

	pthread_mutex_lock(&e->lock);
	r = strmap_get(e->inflight, name) != NULL;
	pthread_mutex_unlock(&e->lock);
	return r;
}

static bool known_session(const struct engine *e, const char *name);

/* Drop entries of a (listen-thread) table whose document left the
 * session targets. */
static void
prune(struct engine *e, struct strmap *table)
{
	size_t pos = 0, n = 0, cap = strmap_count(table);
	const char *name;
	char **gone;
	void *v;

	if (cap == 0)
		return;
	gone = xcalloc(cap, sizeof(*gone));
	while (strmap_next(table, &pos, &name, &v))
		if (!known_session(e, name))
			gone[n++] = xstrdup(name);
	for (size_t i = 0; i < n; i++) {
		free(strmap_del(table, gone[i]));
		free(gone[i]);
	}
	free(gone);
}

/*
 * Look at every session in the last snapshot: dispatch captured ones not
 * yet dispatched at this version, and "transforming" ones that have been
 * so for longer than a transform may take.  Runs after each snapshot and
 * on every tick, so nothing waits for the next server message.
 */
/* The session targets' ids. */
static int
session_targets(const struct engine *e, int32_t *ids)
{
	if (e->opt->n_events == 0) {
		ids[0] = TARGET_SESSIONS;
		return 1;
	}
	for (size_t i = 0; i < e->opt->n_events; i++)
		ids[i] = TARGET_EVENT0 + (int32_t)i;
	return (int)e->opt->n_events;
}

/* Is name a session in any session target's last snapshot? */
static bool
known_session(const struct engine *e, const char *name)
{
	int32_t ids[MAX_EVENTS];
	int n = session_targets(e, ids);

	for (int i = 0; i < n; i++)
		if (strmap_get(watch_known(&e->watch, ids[i]), name) != NULL)
			return true;
	return false;
}

static size_t
count_sessions(const struct engine *e)
{
	int32_t ids[MAX_EVENTS];
	int n = session_targets(e, ids);
	size_t total = 0;

	for (int i = 0; i < n; i++)
		total += strmap_count(watch_known(&e->watch, ids[i]));
	return total;
}

static void dispatch_target(struct engine *e, const struct strmap *known);

static void
dispatch(struct engine *e)
{
	int32_t ids[MAX_EVENTS];
	int n = session_targets(e, ids);
	size_t pos = 0;
	const char *name;
	void *v;

	if (!e->ready_once)
		return;
	pthread_mutex_lock(&e->lock);
	while (strmap_next(e->forget, &pos, &name, &v))
		free(strmap_del(e->seen, name));
	strmap_free(e->forget, NULL);
	e->forget = strmap_new();
	pthread_mutex_unlock(&e->lock);
	for (int i = 0; i < n; i++)
		dispatch_target(e, watch_known(&e->watch, ids[i]));
	prune(e, e->seen);
	prune(e, e->stale);
}

static void
dispatch_target(struct engine *e, const struct strmap *known)
{
	int64_t now = now_mono_ms();
	int64_t limit_ms = (int64_t)(e->opt->transform_timeout_s +
	    e->opt->recovery_margin_s) * 1000;
	int64_t read_ms = ts_to_ms(e->watch.read_time);
	size_t pos = 0;
	const char *name;
	void *v;

	if (known == NULL)
		return;
	while (strmap_next(known, &pos, &name, &v)) {
		const FsDocument *doc = v;
		const FsValue *state = doc_get(doc, "state");
		char version[48];
		const char *seen;

		if (is_inflight(e, name))
			continue;
		ts_format(doc->update_time, version, sizeof(version));
		seen = strmap_get(e->seen, name);
		if (seen != NULL && strcmp(seen, version) == 0)
			continue;
		if (state != NULL && state->value_type_case ==
		    FSV(STRING_VALUE) &&
		    strcmp(state->string_value, "transforming") == 0) {
			struct stale_entry *st = strmap_get(e->stale, name);

			if (st == NULL || strcmp(st->version, version) != 0) {
				if (st == NULL) {
					st = xcalloc(1, sizeof(*st));
					strmap_put(e->stale, name, st);
				}
				snprintf(st->version, sizeof(st->version), "%s",
				    version);
				st->first_seen_ms = now;
				st->age0_ms = read_ms - ts_to_ms(doc->update_time);
				if (st->age0_ms < 0)
					st->age0_ms = 0;
			}
			if (st->age0_ms + (now - st->first_seen_ms) <= limit_ms)
				continue;
			free(strmap_put(e->seen, name, xstrdup(version)));
			enqueue(e, doc, true);
			continue;
		}
		/* captured (or a malformed state the pipeline reports) */
		free(strmap_put(e->seen, name, xstrdup(version)));
		enqueue(e, doc, false);
	}
}

/* ---- the Listen stream ---- */

static FsListenRequest *
make_target(struct engine *e, int32_t id)
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
	r->database = xstrdup(e->fs->db_path);
	r->target_change_case =
	    GOOGLE__FIRESTORE__V1__LISTEN_REQUEST__TARGET_CHANGE_ADD_TARGET;
	r->add_target = t;
	t->target_id = id;
	t->target_type_case =
	    GOOGLE__FIRESTORE__V1__TARGET__TARGET_TYPE_QUERY;
	t->query = q;
	if (id >= TARGET_EVENT0)
		q->parent = xasprintf("%s/events/%s", e->fs->docs_path,
		    e->opt->events[id - TARGET_EVENT0]);
	else
		q->parent = xstrdup(e->fs->docs_path);
	q->query_type_case =
	    GOOGLE__FIRESTORE__V1__TARGET__QUERY_TARGET__QUERY_TYPE_STRUCTURED_QUERY;
	q->structured_query = sq;
	sq->n_from = 1;
	sq->from = xcalloc(1, sizeof(*sq->from));
	sq->from[0] = from;
	if (id == TARGET_EXPERIENCES) {
		from->collection_id = xstrdup("experiences");
	} else {
		/* sessions, in any event, whose state is captured or
		 * transforming (the latter to recover interrupted work) */
		Google__Firestore__V1__StructuredQuery__Filter *f =
		    xcalloc(1, sizeof(*f));
		Google__Firestore__V1__StructuredQuery__FieldFilter *ff =
		    xcalloc(1, sizeof(*ff));
		Google__Firestore__V1__StructuredQuery__FieldReference *ref =
		    xcalloc(1, sizeof(*ref));
		FsValue *in = value_array();

		google__firestore__v1__structured_query__filter__init(f);
		google__firestore__v1__structured_query__field_filter__init(ff);
		google__firestore__v1__structured_query__field_reference__init(
		    ref);
		from->collection_id = xstrdup("sessions");
		/* all events: the collection group; one event: its own */
		from->all_descendants = id == TARGET_SESSIONS;
		ref->field_path = xstrdup("state");
		value_array_add(in, value_string("captured"));
		value_array_add(in, value_string("transforming"));
		ff->field = ref;
		ff->op = GOOGLE__FIRESTORE__V1__STRUCTURED_QUERY__FIELD_FILTER__OPERATOR__IN;
		ff->value = in;
		f->filter_type_case =
		    GOOGLE__FIRESTORE__V1__STRUCTURED_QUERY__FILTER__FILTER_TYPE_FIELD_FILTER;
		f->field_filter = ff;
		sq->where = f;
	}
	if (e->watch.resume_token != NULL) {
		t->resume_type_case =
		    GOOGLE__FIRESTORE__V1__TARGET__RESUME_TYPE_RESUME_TOKEN;
		t->resume_token.data = xmalloc(e->watch.resume_token_len);
		memcpy(t->resume_token.data, e->watch.resume_token,
		    e->watch.resume_token_len);
		t->resume_token.len = e->watch.resume_token_len;
	}
	return r;
}

/* STATUS= for systemctl status, sent when it changes. */
static void
update_status(struct engine *e, const char *state)
{
	char s[160];

	snprintf(s, sizeof(s), "%s; %d in flight, %lu processed (%lu ready, "
	    "%lu error)", state, atomic_load(&e->running),
	    atomic_load(&e->processed), atomic_load(&e->ready),
	    atomic_load(&e->errors));
	if (strcmp(s, e->status) == 0)
		return;
	snprintf(e->status, sizeof(e->status), "%s", s);
	notify_send("STATUS=%s", s);
}

/* Work the main loop does every tick, connected or not. */
static void
tick(struct engine *e, const char *state)
{
	notify_watchdog();
	if (atomic_exchange(&e->reload, 0) && e->on_reload) {
		notify_send("RELOADING=1");
		e->on_reload(e, e->reload_arg);
		notify_send("READY=1");
	}
	update_status(e, state);
}

/* Sleep up to ms, waking early on stop. */
static void
nap(struct engine *e, int64_t ms)
{
	int64_t end = now_mono_ms() + ms;

	while (!e->stop && now_mono_ms() < end) {
		int64_t left = end - now_mono_ms();
		struct timespec ts = { 0, (left > 100 ? 100 : left) * 1000000 };

		nanosleep(&ts, NULL);
		tick(e, "reconnecting to Firestore");
	}
}

void
engine_wrote(struct engine *e, const FsTimestamp *commit_time)
{
	if (commit_time == NULL)
		return;
	pthread_mutex_lock(&e->lock);
	if (ts_compare(commit_time, &e->wrote_at) > 0) {
		e->wrote_at.seconds = commit_time->seconds;
		e->wrote_at.nanos = commit_time->nanos;
		e->wrote_ms = now_mono_ms();
	}
	pthread_mutex_unlock(&e->lock);
}

/*
 * Our newest write landed more than limit_ms ago (and the stream opened
 * at opened_ms has had that long too), yet the last snapshot is older.
 */
static bool
unseen_write(struct engine *e, int64_t opened_ms, int64_t limit_ms)
{
	FsTimestamp at;
	int64_t wrote_ms;

	pthread_mutex_lock(&e->lock);
	at = e->wrote_at;
	wrote_ms = e->wrote_ms;
	pthread_mutex_unlock(&e->lock);
	if (wrote_ms == 0 || now_mono_ms() - (wrote_ms > opened_ms ?
	    wrote_ms : opened_ms) <= limit_ms)
		return false;
	return watch_before(&e->watch, &at);
}

/* Run one stream until it ends; returns true if it made progress. */
static bool
run_stream(struct engine *e, struct backoff *bo, bool *restart_now)
{
	FsListenRequest *reqs[MAX_EVENTS + 1];
	int32_t ids[MAX_EVENTS];
	int n_ids = session_targets(e, ids), n_reqs = 0;
	int64_t opened = now_mono_ms(), last_msg = opened, last_tick = 0;
	/* a new stream that has not answered at all is given less time than
	 * a quiet one that has: a call can wait on a channel that never
	 * becomes ready again (seen after a server restart) */
	int64_t first_ms = e->opt->idle_timeout_ms < FIRST_RESPONSE_MS ?
	    e->opt->idle_timeout_ms : FIRST_RESPONSE_MS;
	struct fs_status st = { 0 };
	bool progress = false;
	struct fs_listen *l;

	for (int i = 0; i < n_ids; i++)
		reqs[n_reqs++] = make_target(e, ids[i]);
	reqs[n_reqs++] = make_target(e, TARGET_EXPERIENCES);
	watch_stream_started(&e->watch);
	l = fs_listen_open(e->fs, (const FsListenRequest *const *)reqs,
	    (size_t)n_reqs);
	for (int i = 0; i < n_reqs; i++)
		google__firestore__v1__listen_request__free_unpacked(reqs[i],
		    NULL);
	pthread_mutex_lock(&e->lock);
	e->listen = l;
	pthread_mutex_unlock(&e->lock);
	log_debug("listen: stream opened%s",
	    e->watch.resume_token ? " (resuming)" : "");

	while (!e->stop) {
		FsListenResponse *resp = NULL;
		char err[512];
		int rc = fs_listen_next(l, TICK_MS, &resp);
		enum watch_event ev = WATCH_NONE;

		if (rc < 0)
			break;
		if (rc > 0) {
			last_msg = now_mono_ms();
			if (!progress)
				backoff_reset(bo);
			progress = true;
			pthread_mutex_lock(&e->snap_lock);
			ev = watch_feed(&e->watch, resp, err, sizeof(err));
			pthread_mutex_unlock(&e->snap_lock);
			google__firestore__v1__listen_response__free_unpacked(
			    resp, NULL);
		}
		if (ev == WATCH_SNAPSHOT) {
			if (!e->ready_once && watch_synced(&e->watch)) {
				e->ready_once = true;
				log_notice("listen: first snapshot current: %zu "
				    "session(s) captured or transforming",
				    count_sessions(e));
				notify_send("READY=1");
			}
			dispatch(e);
			last_tick = now_mono_ms();
		} else if (ev == WATCH_RESTART) {
			log_warn("listen: %s; re-reading everything", err);
			*restart_now = true;
			break;
		} else if (ev == WATCH_TARGET_ERROR) {
			log_err("listen: %s", err);
			break;
		}
		if (!progress && now_mono_ms() - opened > first_ms) {
			log_warn("listen: no response %" PRId64 " s after "
			    "opening the stream; reopening it (is Firestore "
			    "reachable?)", first_ms / 1000);
			break;
		}
		if (progress && now_mono_ms() - last_msg > NOT_CURRENT_MS &&
		    watch_current_count(&e->watch) < e->watch.n_targets) {
			log_warn("listen: %d of %d target(s) still not current "
			    "and no message for %d s; reopening the stream",
			    e->watch.n_targets -
			    watch_current_count(&e->watch), e->watch.n_targets,
			    NOT_CURRENT_MS / 1000);
			break;
		}
		if (progress && unseen_write(e, opened, UNSEEN_WRITE_MS)) {
			log_warn("listen: a write of ours landed over %d s ago "
			    "and the stream has not shown it; reopening the "
			    "stream", UNSEEN_WRITE_MS / 1000);
			break;
		}
		if (now_mono_ms() - last_msg > e->opt->idle_timeout_ms) {
			log_warn("listen: no message for %" PRId64 " s; "
			    "reopening the stream",
			    e->opt->idle_timeout_ms / 1000);
			break;
		}
		if (now_mono_ms() - last_tick >= TICK_MS) {
			dispatch(e);
			last_tick = now_mono_ms();
		}
		tick(e, e->ready_once ? "listening" : "connecting");
	}
	pthread_mutex_lock(&e->lock);
	e->listen = NULL;
	pthread_mutex_unlock(&e->lock);
	fs_listen_close(l, &st);
	if (e->stop || *restart_now)
		return progress;
	if (fs_status_retryable(st.code))
		log_warn("listen: stream ended: %s%s%s; reconnecting",
		    fs_status_name(st.code), *st.message ? ": " : "",
		    st.message);
	else
		log_err("listen: stream failed: %s%s%s; check the project "
		    "id, database and credentials; retrying slowly",
		    fs_status_name(st.code), *st.message ? ": " : "",
		    st.message);
	if (!fs_status_retryable(st.code))
		bo->base_ms = bo->max_ms;
	return progress;
}

struct engine *
engine_new(const struct options *o, struct fs_client *fs, struct store *st,
    struct pool *pool)
{
	struct engine *e = xcalloc(1, sizeof(*e));

	e->pool = pool;
	e->opt = o;
	e->fs = fs;
	e->store = st;
	pthread_mutex_init(&e->lock, NULL);
	pthread_mutex_init(&e->snap_lock, NULL);
	pthread_cond_init(&e->cond, NULL);
	google__protobuf__timestamp__init(&e->wrote_at);
	e->inflight = strmap_new();
	e->forget = strmap_new();
	e->seen = strmap_new();
	e->stale = strmap_new();
	watch_init(&e->watch);
	if (o->n_events == 0)
		watch_add_target(&e->watch, TARGET_SESSIONS);
	for (size_t i = 0; i < o->n_events && i < MAX_EVENTS; i++)
		watch_add_target(&e->watch, TARGET_EVENT0 + (int32_t)i);
	watch_add_target(&e->watch, TARGET_EXPERIENCES);
	return e;
}

static void
drain(struct engine *e)
{
	int64_t end = now_mono_ms() + (int64_t)e->opt->drain_timeout_s * 1000;
	struct job *j, *next;

	pthread_mutex_lock(&e->lock);
	/* Queued but not started: leave them "captured" for the next run. */
	for (j = e->head; j; j = next) {
		next = j->next;
		strmap_del(e->inflight, j->s.name);
		job_free(j);
	}
	e->head = e->tail = NULL;
	e->stopping = true;
	pthread_cond_broadcast(&e->cond);
	while (atomic_load(&e->running) > 0 && now_mono_ms() < end) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&e->cond, &e->lock, &ts);
		notify_watchdog();
	}
	pthread_mutex_unlock(&e->lock);
	if (atomic_load(&e->running) > 0) {
		log_warn("shutdown: %d session(s) still running after %d s; "
		    "leaving them to interrupted-work recovery",
		    atomic_load(&e->running), e->opt->drain_timeout_s);
		return;
	}
	for (int i = 0; i < e->n_threads; i++)
		pthread_join(e->threads[i], NULL);
	e->n_threads = 0;
}

int
engine_run(struct engine *e)
{
	struct backoff bo;

	backoff_init(&bo, 1000, 60000, 1.5, 0.25);
	e->threads = xcalloc((size_t)e->opt->workers, sizeof(*e->threads));
	for (int i = 0; i < e->opt->workers; i++) {
		if (pthread_create(&e->threads[i], NULL, worker_main, e) != 0)
			fatal("cannot start worker thread: out of resources");
		e->n_threads++;
	}
	log_notice("firesyncd %s: project=%s database=%s%s%s workers=%d "
	    "storage=%s", PACKAGE_VERSION, e->fs->project, e->fs->database,
	    e->fs->emulator ? " emulator=" : "",
	    e->fs->emulator ? e->opt->emulator : "", e->opt->workers,
	    e->store->root);

	while (!e->stop) {
		bool restart_now = false;

		run_stream(e, &bo, &restart_now);
		if (e->stop)
			break;
		if (!restart_now) {
			int64_t ms = backoff_next(&bo, backoff_random());

			log_info("listen: reconnecting in %.1f s",
			    (double)ms / 1000.0);
			nap(e, ms);
		}
	}
	log_notice("shutdown: draining %d running session(s)",
	    atomic_load(&e->running));
	notify_send("STOPPING=1");
	update_status(e, "stopping");
	drain(e);
	log_notice("shutdown: done; processed=%lu ready=%lu error=%lu",
	    atomic_load(&e->processed), atomic_load(&e->ready),
	    atomic_load(&e->errors));
	return 0;
}

void
engine_stop(struct engine *e)
{
	e->stop = 1;
	pthread_mutex_lock(&e->lock);
	if (e->listen)
		fs_listen_cancel(e->listen);
	pthread_mutex_unlock(&e->lock);
}

void
engine_request_reload(struct engine *e)
{
	atomic_store(&e->reload, 1);
}

void
engine_free(struct engine *e)
{
	if (e == NULL)
		return;
	if (e->n_threads > 0) {
		/* drain timed out: threads are still in a session; the
		 * process is exiting, so leave them be */
		free(e->threads);
		return;
	}
	free(e->threads);
	strmap_free(e->inflight, NULL);
	strmap_free(e->forget, NULL);
	strmap_free(e->seen, free);
	strmap_free(e->stale, free);
	watch_clear(&e->watch);
	pthread_mutex_destroy(&e->lock);
	pthread_mutex_destroy(&e->snap_lock);
	pthread_cond_destroy(&e->cond);
	free(e);
}
