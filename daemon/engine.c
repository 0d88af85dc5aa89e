/*
 * engine.c - the Listen loop, dispatch of captured and interrupted
 * sessions into tasks, and the runner threads (engine.h).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc.h>

#include "alloc.h"
#include "backoff.h"
#include "clock.h"
#include "dispatch.h"
#include "engine.h"
#include "log.h"
#include "notify.h"
#include "pipeline.h"
#include "session.h"
#include "value.h"
#include "watch.h"

/* Listen target ids: one sessions target for all events, or one per
 * configured event (TARGET_EVENT0 + i), and the experiences cache. */
enum { TARGET_SESSIONS = 1, TARGET_EXPERIENCES = 2, TARGET_EVENT0 = 10 };
_Static_assert(OPTIONS_MAX_EVENTS + 1 <= WATCH_MAX_TARGETS,
    "every event's target and the experiences target fit the watch");

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
#define VERSION_LEN	48
/* Session documents larger than this are cached slim (slim_session). */
#define SLIM_OVER	(64 * 1024)
/* Tasks queued per runner, beyond those running. */
#define QUEUE_PER_RUNNER 1
/* After a drain timeout, how long runners get to notice they may not
 * write (their workers are killed; a Firestore call may still be out). */
#define ABANDON_GRACE_MS 5000

struct engine {
	const struct options *opt;	/* borrowed; reload changes limits */
	struct fs_client *fs;		/* borrowed */
	struct store *store;		/* borrowed */
	struct pool *pool;		/* borrowed */
	struct pipeline pipeline;	/* the runners' context */
	atomic_bool frozen;		/* shutdown gave up: no more writes */

	pthread_mutex_t lock;		/* queue, listen, wrote_* */
	pthread_cond_t cond;
	struct task *head, *tail;
	size_t queued;			/* tasks waiting for a runner */
	struct fs_listen *listen;	/* current stream, for cancel */
	bool stopping;			/* runners: no more tasks */

	/* the listen thread's own */
	struct watch watch;
	struct dispatch *dispatch;	/* thread-safe */
	bool ready_once;		/* every target current once */

	pthread_t *runners;
	int n_runners;

	atomic_int running;		/* tasks in the pipeline now */
	atomic_int reload;		/* SIGHUP seen, not yet handled */
	void (*on_reload)(void *);	/* main's */
	void *reload_arg;
	char status[160];		/* last STATUS= sent */
	atomic_ulong processed, ready, errors;
	volatile sig_atomic_t stop;

	/* our newest landed write (commit time) and when it landed, under
	 * lock: the stream must show it, or it is stuck */
	FsTimestamp wrote_at;
	int64_t wrote_ms;		/* monotonic; 0 = none yet */
};

/* ---- runners ---- */

static void
count(struct engine *e, enum outcome out)
{
	switch (out) {
	case OUTCOME_READY:
		atomic_fetch_add(&e->ready, 1);
		atomic_fetch_add(&e->processed, 1);
		break;
	case OUTCOME_ERROR:
		atomic_fetch_add(&e->errors, 1);
		atomic_fetch_add(&e->processed, 1);
		break;
	case OUTCOME_DROPPED:
	case OUTCOME_UNRECORDED:
		atomic_fetch_add(&e->processed, 1);
		break;
	default:
		break;
	}
}

static void *
runner_main(void *arg)
{
	struct engine *e = arg;

	for (;;) {
		enum outcome out;
		struct task *t;

		pthread_mutex_lock(&e->lock);
		while (e->head == NULL && !e->stopping)
			pthread_cond_wait(&e->cond, &e->lock);
		if (e->head == NULL) {
			pthread_mutex_unlock(&e->lock);
			return NULL;
		}
		t = e->head;
		e->head = t->next;
		if (e->head == NULL)
			e->tail = NULL;
		e->queued--;
		atomic_fetch_add(&e->running, 1);
		pthread_mutex_unlock(&e->lock);

		out = pipeline_run(&e->pipeline, t);
		count(e, out);
		dispatch_done(e->dispatch, t->s.name, out == OUTCOME_RETRY);

		pthread_mutex_lock(&e->lock);
		atomic_fetch_sub(&e->running, 1);
		pthread_cond_broadcast(&e->cond);
		pthread_mutex_unlock(&e->lock);
		task_free(t);
	}
}

/* A write of ours landed (the pipeline's hook; runner threads). */
static void
wrote(void *arg, const FsTimestamp *commit_time)
{
	struct engine *e = arg;

	pthread_mutex_lock(&e->lock);
	if (ts_compare(commit_time, &e->wrote_at) > 0) {
		e->wrote_at.seconds = commit_time->seconds;
		e->wrote_at.nanos = commit_time->nanos;
		e->wrote_ms = now_mono_ms();
	}
	pthread_mutex_unlock(&e->lock);
}

/* ---- dispatch (listen thread) ---- */

/* The session targets' ids into ids; returns how many. */
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
in_view(void *arg, const char *name)
{
	const struct engine *e = arg;
	int32_t ids[OPTIONS_MAX_EVENTS];
	int n = session_targets(e, ids);

	for (int i = 0; i < n; i++)
		if (strmap_get(watch_known(&e->watch, ids[i]), name) != NULL)
			return true;
	return false;
}

static size_t
count_sessions(const struct engine *e)
{
	int32_t ids[OPTIONS_MAX_EVENTS];
	int n = session_targets(e, ids);
	size_t total = 0;

	for (int i = 0; i < n; i++)
		total += strmap_count(watch_known(&e->watch, ids[i]));
	return total;
}

/* The sessions targets hold documents whole only up to SLIM_OVER bytes
 * (session_slim): a burst of near-1 MiB sessions would otherwise sit in
 * memory twice (the cache and the queue); a slim one's task reads it
 * whole when it runs. */
static FsDocument *
slim_session(FsDocument *doc, void *arg)
{
	(void)arg;
	return session_slim(doc, SLIM_OVER);
}

/* The experience t's session selected, from the Listen cache, or NULL. */
static FsDocument *
cached_experience(struct engine *e, const struct task *t)
{
	const struct strmap *cache = watch_known(&e->watch,
	    TARGET_EXPERIENCES);
	const FsDocument *doc;
	char *name;

	if (t->decode_rc < 0 || cache == NULL)
		return NULL;
	name = experience_doc_name(e->fs->docs_path,
	    t->s.selected_experience_id);
	doc = name ? strmap_get(cache, name) : NULL;
	free(name);
	return doc ? doc_dup(doc) : NULL;
}

static void
enqueue(struct engine *e, const FsDocument *doc, enum task_kind kind,
    int64_t attempt)
{
	struct task *t = xcalloc(1, sizeof(*t));

	t->decode_rc = session_decode(doc, &t->s, t->decode_err,
	    sizeof(t->decode_err));
	t->reread = session_is_slim(doc);
	t->kind = kind;
	t->attempt = attempt;
	t->experience = cached_experience(e, t);
	t->enqueued_ms = now_mono_ms();
	pthread_mutex_lock(&e->lock);
	if (e->tail)
		e->tail->next = t;
	else
		e->head = t;
	e->tail = t;
	e->queued++;
	pthread_cond_signal(&e->cond);
	pthread_mutex_unlock(&e->lock);
}

/* Room in the queue?  Only what the runners can take soon is queued;
 * the rest waits in the snapshot, as a name and a version. */
static bool
queue_has_room(struct engine *e)
{
	bool room;

	pthread_mutex_lock(&e->lock);
	room = e->queued < (size_t)e->opt->workers * QUEUE_PER_RUNNER;
	pthread_mutex_unlock(&e->lock);
	return room;
}

/* One session of the last snapshot: a task for it, if it needs one. */
static void
consider(struct engine *e, const char *name, const FsDocument *doc,
    int64_t now, int64_t read_ms)
{
	static const enum task_kind kinds[] = {
		[DISPATCH_CLAIM] = TASK_CLAIM,
		[DISPATCH_RECLAIM] = TASK_RECLAIM,
		[DISPATCH_GIVE_UP] = TASK_GIVE_UP,
	};
	const struct dispatch_rules rules = {
		.lease_ms = (int64_t)(e->opt->transform_timeout_s +
		    e->opt->recovery_margin_s) * 1000,
		.max_attempts = e->opt->max_attempts,
	};
	const FsValue *state = doc_get(doc, "state");
	enum session_state st = SESSION_UNKNOWN;
	int64_t attempts = 0, attempt = 0;
	enum dispatch_verdict v;
	char version[VERSION_LEN];

	if (state != NULL && state->value_type_case == FSV(STRING_VALUE))
		st = session_state_parse(state->string_value);
	if (!value_get_int64(doc_get(doc, "transformAttempts"), &attempts))
		attempts = 0;
	ts_format(doc->update_time, version, sizeof(version));
	v = dispatch_consider(e->dispatch, name, version, st,
	    read_ms - ts_to_ms(doc->update_time), attempts, &rules, now,
	    &attempt);
	if (v != DISPATCH_WAIT)
		enqueue(e, doc, kinds[v], attempt);
}

/*
 * Look at every session in the last snapshot: captured ones not yet run
 * at this version, and "transforming" ones that have been so for longer
 * than a transform may take.  Runs after each snapshot and on every tick,
 * so nothing waits for the next server message.
 */
static void
dispatch_all(struct engine *e)
{
	int32_t ids[OPTIONS_MAX_EVENTS];
	int n = session_targets(e, ids);
	int64_t now = now_mono_ms(), read_ms = ts_to_ms(e->watch.read_time);

	if (!e->ready_once)
		return;
	for (int i = 0; i < n; i++) {
		const struct strmap *known = watch_known(&e->watch, ids[i]);
		size_t pos = 0;
		const char *name;
		void *doc;

		while (known && strmap_next(known, &pos, &name, &doc) &&
		    queue_has_room(e))
			consider(e, name, doc, now, read_ms);
	}
	dispatch_prune(e->dispatch, in_view, e);
}

/* ---- the main loop's chores ---- */

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
		e->on_reload(e->reload_arg);
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

		sleep_ms(left > 100 ? 100 : left);
		tick(e, "reconnecting to Firestore");
	}
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

/* ---- the Listen stream ---- */

/* The request adding target id, resuming where the watch left off. */
static FsListenRequest *
make_target(struct engine *e, int32_t id)
{
	/* sessions whose state is captured, or transforming (to recover
	 * interrupted work); in every event (the collection group), or in
	 * one configured event */
	static const char *const states[] = { "captured", "transforming" };
	struct fs_query q = {
		.collection = "sessions", .field = "state", .values = states,
		.n_values = 2,
	};
	char *parent = NULL;
	FsListenRequest *r;

	if (id == TARGET_EXPERIENCES) {
		q = (struct fs_query){ .collection = "experiences" };
	} else if (id >= TARGET_EVENT0) {
		parent = xasprintf("events/%s",
		    e->opt->events[id - TARGET_EVENT0]);
		q.parent = parent;
	} else {
		q.all_descendants = true;
	}
	r = fs_listen_target(e->fs, id, &q, e->watch.resume_token,
	    e->watch.resume_token_len);
	free(parent);
	return r;
}

static struct fs_listen *
open_stream(struct engine *e)
{
	FsListenRequest *reqs[OPTIONS_MAX_EVENTS + 1];
	int32_t ids[OPTIONS_MAX_EVENTS];
	int n_ids = session_targets(e, ids), n_reqs = 0;
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
	return l;
}

/* A stream's clocks, for deciding it is stuck. */
struct stream_clock {
	int64_t opened, last_msg, first_ms;
	bool progress;			/* it has answered */
};

/* Should this stream be given up on?  Says why in the log. */
static bool
stuck(struct engine *e, const struct stream_clock *c)
{
	int64_t quiet = now_mono_ms() - c->last_msg;

	if (!c->progress && now_mono_ms() - c->opened > c->first_ms) {
		log_warn("listen: no response %" PRId64 " s after opening the "
		    "stream; reopening it (is Firestore reachable?)",
		    c->first_ms / 1000);
		return true;
	}
	if (c->progress && quiet > NOT_CURRENT_MS &&
	    watch_current_count(&e->watch) < e->watch.n_targets) {
		log_warn("listen: %d of %d target(s) still not current and no "
		    "message for %d s; reopening the stream",
		    e->watch.n_targets - watch_current_count(&e->watch),
		    e->watch.n_targets, NOT_CURRENT_MS / 1000);
		return true;
	}
	if (c->progress && unseen_write(e, c->opened, UNSEEN_WRITE_MS)) {
		log_warn("listen: a write of ours landed over %d s ago and the "
		    "stream has not shown it; reopening the stream",
		    UNSEEN_WRITE_MS / 1000);
		return true;
	}
	if (quiet > e->opt->idle_timeout_ms) {
		log_warn("listen: no message for %" PRId64 " s; reopening the "
		    "stream", e->opt->idle_timeout_ms / 1000);
		return true;
	}
	return false;
}

/* A snapshot was applied: say READY once, then dispatch. */
static void
on_snapshot(struct engine *e)
{
	if (!e->ready_once && watch_synced(&e->watch)) {
		e->ready_once = true;
		log_notice("listen: first snapshot current: %zu session(s) "
		    "captured or transforming", count_sessions(e));
		notify_send("READY=1");
	}
	dispatch_all(e);
}

/* How a stream ended, in the log; a stream refused outright backs off to
 * the longest delay. */
static void
stream_ended(struct fs_listen *l, struct backoff *bo)
{
	struct fs_status st = { 0 };

	fs_listen_close(l, &st);
	if (fs_status_retryable(st.code)) {
		log_warn("listen: stream ended: %s%s%s; reconnecting",
		    fs_status_name(st.code), *st.message ? ": " : "",
		    st.message);
		return;
	}
	log_err("listen: stream failed: %s%s%s; %s; retrying slowly",
	    fs_status_name(st.code), *st.message ? ": " : "", st.message,
	    st.code == GRPC_STATUS_PERMISSION_DENIED ? "the service account "
	    "needs the Cloud Datastore User role (roles/datastore.user) in "
	    "the project" : "check the project id, database and "
	    "credentials");
	bo->base_ms = bo->max_ms;
}

/* Run one stream until it ends; returns true if it made progress. */
static bool
run_stream(struct engine *e, struct backoff *bo, bool *restart_now)
{
	struct fs_listen *l = open_stream(e);
	struct stream_clock c = { .opened = now_mono_ms() };
	int64_t last_tick = 0;

	c.last_msg = c.opened;
	/* a new stream that has not answered at all is given less time than
	 * a quiet one that has: a call can wait on a channel that never
	 * becomes ready again (seen after a server restart) */
	c.first_ms = e->opt->idle_timeout_ms < FIRST_RESPONSE_MS ?
	    e->opt->idle_timeout_ms : FIRST_RESPONSE_MS;
	while (!e->stop) {
		FsListenResponse *resp = NULL;
		enum watch_event ev = WATCH_NONE;
		char err[512];
		int rc = fs_listen_next(l, TICK_MS, &resp);

		if (rc < 0)
			break;
		if (rc > 0) {
			c.last_msg = now_mono_ms();
			if (!c.progress)
				backoff_reset(bo);
			c.progress = true;
			ev = watch_feed(&e->watch, resp, err, sizeof(err));
			google__firestore__v1__listen_response__free_unpacked(
			    resp, NULL);
		}
		if (ev == WATCH_SNAPSHOT) {
			on_snapshot(e);
			last_tick = now_mono_ms();
		} else if (ev == WATCH_RESTART) {
			log_warn("listen: %s; re-reading everything", err);
			*restart_now = true;
			break;
		} else if (ev == WATCH_TARGET_ERROR) {
			log_err("listen: %s", err);
			break;
		}
		if (stuck(e, &c))
			break;
		if (now_mono_ms() - last_tick >= TICK_MS) {
			dispatch_all(e);
			last_tick = now_mono_ms();
		}
		tick(e, e->ready_once ? "listening" : "connecting");
	}
	pthread_mutex_lock(&e->lock);
	e->listen = NULL;
	pthread_mutex_unlock(&e->lock);
	if (e->stop || *restart_now) {
		fs_listen_close(l, &(struct fs_status){ 0 });
		return c.progress;
	}
	stream_ended(l, bo);
	return c.progress;
}

/* ---- life cycle ---- */

struct engine *
engine_new(const struct options *o, struct fs_client *fs, struct store *st,
    struct pool *pool)
{
	struct engine *e = xcalloc(1, sizeof(*e));

	e->opt = o;
	e->fs = fs;
	e->store = st;
	e->pool = pool;
	e->pipeline = (struct pipeline){ .opt = o, .fs = fs, .store = st,
	    .pool = pool, .wrote = wrote, .arg = e, .frozen = &e->frozen };
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->cond, NULL);
	google__protobuf__timestamp__init(&e->wrote_at);
	e->dispatch = dispatch_new();
	watch_init(&e->watch);
	if (o->n_events == 0) {
		watch_add_target(&e->watch, TARGET_SESSIONS);
		watch_set_trim(&e->watch, TARGET_SESSIONS, slim_session, e);
	}
	for (size_t i = 0; i < o->n_events && i < OPTIONS_MAX_EVENTS; i++) {
		watch_add_target(&e->watch, TARGET_EVENT0 + (int32_t)i);
		watch_set_trim(&e->watch, TARGET_EVENT0 + (int32_t)i,
		    slim_session, e);
	}
	watch_add_target(&e->watch, TARGET_EXPERIENCES);
	return e;
}

void
engine_on_reload(struct engine *e, void (*fn)(void *), void *arg)
{
	e->on_reload = fn;
	e->reload_arg = arg;
}

/* Wait until no task runs or until end (monotonic ms). */
static void
wait_runners(struct engine *e, int64_t end)
{
	pthread_mutex_lock(&e->lock);
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
}

/*
 * Wait for running tasks, up to the drain timeout; queued ones are dropped
 * and stay "captured" for the next run.  Past the timeout, the runners may
 * write nothing more and their workers are killed, so those sessions stay
 * "transforming" for the next daemon's recovery.
 */
static void
drain(struct engine *e)
{
	struct task *t, *next;
	int left;

	pthread_mutex_lock(&e->lock);
	for (t = e->head; t; t = next) {
		next = t->next;
		task_free(t);
	}
	e->head = e->tail = NULL;
	e->queued = 0;
	e->stopping = true;
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->lock);
	wait_runners(e, now_mono_ms() + (int64_t)e->opt->drain_timeout_s *
	    1000);
	if ((left = atomic_load(&e->running)) > 0) {
		log_warn("shutdown: %d session(s) still running after %d s; "
		    "leaving them 'transforming' to interrupted-work recovery",
		    left, e->opt->drain_timeout_s);
		atomic_store(&e->frozen, true);
		pool_abandon(e->pool);
		wait_runners(e, now_mono_ms() + ABANDON_GRACE_MS);
	}
	if (atomic_load(&e->running) > 0)
		return;		/* stuck in a call: engine_idle() says so */
	for (int i = 0; i < e->n_runners; i++)
		pthread_join(e->runners[i], NULL);
	e->n_runners = 0;
}

int
engine_run(struct engine *e)
{
	struct backoff bo;

	backoff_init(&bo, 1000, 60000, 1.5, 0.25);
	e->runners = xcalloc((size_t)e->opt->workers, sizeof(*e->runners));
	for (int i = 0; i < e->opt->workers; i++) {
		if (pthread_create(&e->runners[i], NULL, runner_main, e) != 0)
			fatal("cannot start a runner thread: out of resources");
		e->n_runners++;
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

bool
engine_idle(const struct engine *e)
{
	return e->n_runners == 0;
}

void
engine_free(struct engine *e)
{
	if (e == NULL)
		return;
	free(e->runners);
	dispatch_free(e->dispatch);
	watch_clear(&e->watch);
	pthread_mutex_destroy(&e->lock);
	pthread_cond_destroy(&e->cond);
	free(e);
}
