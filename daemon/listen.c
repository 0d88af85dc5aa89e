/*
 * listen.c - the Listen stream, its watch state, the experience cache,
 * and the view's sessions offered in turn order (listen.h).
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "backoff.h"
#include "clock.h"
#include "listen.h"
#include "log.h"
#include "notify.h"
#include "options.h"
#include "runners.h"
#include "session.h"
#include "strmap.h"
#include "watch.h"

/* Listen target ids: one sessions target for all events, or one per
 * configured event (TARGET_EVENT0 + i), and the experiences cache. */
enum { TARGET_SESSIONS = 1, TARGET_EXPERIENCES = 2, TARGET_EVENT0 = 10 };
_Static_assert(OPTIONS_MAX_EVENTS + 1 <= WATCH_MAX_TARGETS,
    "every event's target and the experiences target fit the watch");

#define TICK_MS		500
/*
 * A new stream that has not answered at all in this long is reopened.
 * Firestore acknowledges a Listen's targets within a second or two; the
 * emulator, seen under load just after it started, can leave a first
 * stream unanswered while it serves every other call.
 */
#define FIRST_RESPONSE_MS 10000
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
/* While sessions wait for room in the queue or for their turn, the
 * stream is polled this often instead of every TICK_MS. */
#define BACKLOG_POLL_MS	10
/* Reconnect back-off: from 1 s, times 1.5, up to a minute (the official
 * clients' figures), jittered by a quarter. */
#define BACKOFF_MIN_MS	1000
#define BACKOFF_MAX_MS	60000
/* A target the server removed (a missing index, a permission) is added
 * again, on a new stream, no sooner than this, plus up to a quarter. */
#define REMOVED_RETRY_MS 60000

struct listen {
	struct listen_config c;

	/* the listen thread's own */
	struct watch watch;
	bool ready_once;		/* every target current once */
	struct strmap *experiences;	/* name -> struct experience_ref:
					   the cached experiences, decoded
					   once, that tasks share */
	int64_t snapshot_ms;		/* monotonic, of the last snapshot */
	bool backlog;			/* sessions wait for queue room */
	int64_t next_turn_ms;		/* monotonic: a session's turn
					   comes; 0: none waits */
	int64_t retry_removed_ms;	/* monotonic: add removed targets
					   again; 0: none is removed */
	char removed_said[512];		/* the removal last logged at err */

	pthread_mutex_t lock;		/* stream, wrote_* */
	struct fs_listen *stream;	/* current stream, for cancel */
	/* our newest landed write (commit time) and when it landed: the
	 * stream must show it, or it is stuck */
	FsTimestamp wrote_at;
	int64_t wrote_ms;		/* monotonic; 0 = none yet */
	volatile sig_atomic_t stop;
	bool failed;			/* a configuration error: given up */

	/* for the metrics */
	atomic_bool up;			/* open and every target current */
	atomic_int targets_down;	/* removed by the server */
	atomic_llong msg_ms;		/* monotonic, last message; 0 never */
	atomic_ulong reconnects;	/* streams reopened after the first */
};

/* The session targets' ids into ids; returns how many. */
static int
session_targets(const struct listen *l, int32_t *ids)
{
	if (l->c.n_events == 0) {
		ids[0] = TARGET_SESSIONS;
		return 1;
	}
	for (size_t i = 0; i < l->c.n_events; i++)
		ids[i] = TARGET_EVENT0 + (int32_t)i;
	return (int)l->c.n_events;
}

bool
listen_in_view(void *arg, const char *name)
{
	const struct listen *l = arg;
	int32_t ids[OPTIONS_MAX_EVENTS];
	int n = session_targets(l, ids);

	for (int i = 0; i < n; i++)
		if (strmap_get(watch_known(&l->watch, ids[i]), name) != NULL)
			return true;
	return false;
}

static size_t
count_sessions(const struct listen *l)
{
	int32_t ids[OPTIONS_MAX_EVENTS];
	int n = session_targets(l, ids);
	size_t total = 0;

	for (int i = 0; i < n; i++)
		total += strmap_count(watch_known(&l->watch, ids[i]));
	return total;
}

/* The sessions targets hold big documents slim (session_slim). */
static FsDocument *
slim_session(FsDocument *doc, void *arg)
{
	(void)arg;
	return session_slim(doc);
}

/* ---- the experience cache ---- */

struct experience_ref *
listen_experience(struct listen *l, const char *id)
{
	const struct strmap *cache = watch_known(&l->watch,
	    TARGET_EXPERIENCES);
	const FsDocument *doc;
	struct experience_ref *ref;
	char *name;

	if (id == NULL || cache == NULL)
		return NULL;
	name = experience_doc_name(fs_docs_path(l->c.fs), id);
	doc = name ? strmap_get(cache, name) : NULL;
	if (doc == NULL) {
		free(name);
		return NULL;
	}
	/* decoded once per version, straight from the watch's document */
	ref = strmap_get(l->experiences, name);
	if (ref == NULL || experience_ref_version(ref) == NULL ||
	    doc->update_time == NULL || ts_compare(experience_ref_version(ref),
	    doc->update_time) != 0) {
		ref = experience_ref_decode(doc);
		experience_ref_drop(strmap_put(l->experiences, name, ref));
	}
	free(name);
	return experience_ref_hold(ref);
}

/* Forget shared copies of experiences no longer in the cache. */
static void
prune_experiences(struct listen *l)
{
	const struct strmap *cache = watch_known(&l->watch,
	    TARGET_EXPERIENCES);
	size_t pos = 0, n = 0, cap = strmap_count(l->experiences);
	char **gone = xcalloc(cap ? cap : 1, sizeof(*gone));
	const char *name;
	void *ref;

	while (strmap_next(l->experiences, &pos, &name, &ref))
		if (cache == NULL || strmap_get(cache, name) == NULL)
			gone[n++] = xstrdup(name);
	for (size_t i = 0; i < n; i++) {
		experience_ref_drop(strmap_del(l->experiences, gone[i]));
		free(gone[i]);
	}
	free(gone);
}

/* ---- the view's sessions, in turn order ---- */

struct candidate {
	const char *name;
	const FsDocument *doc;
	int64_t order;			/* capture + turn delay, server ms */
	const char *event;		/* the event id, in name */
	size_t event_len;
	size_t rank;			/* 0 for its event's first turn, ... */
};

/* The event id inside a session's document name (a name that is not a
 * session's is an event of its own). */
static void
event_of(struct candidate *c)
{
	const char *ss;
	size_t sn;

	if (session_name_ids(c->name, &c->event, &c->event_len, &ss,
	    &sn) < 0) {
		c->event = c->name;
		c->event_len = strlen(c->name);
	}
}

static int
by_order(const void *a, const void *b)
{
	const struct candidate *x = a, *y = b;

	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int
by_event_then_order(const void *a, const void *b)
{
	const struct candidate *x = a, *y = b;
	size_t n = x->event_len < y->event_len ? x->event_len : y->event_len;
	int d = memcmp(x->event, y->event, n);

	if (d != 0)
		return d;
	if (x->event_len != y->event_len)
		return x->event_len < y->event_len ? -1 : 1;
	return by_order(a, b);
}

/* Round-robin by event: every event's first turn, oldest first, then
 * every event's second, and so on. */
static int
by_rank_then_order(const void *a, const void *b)
{
	const struct candidate *x = a, *y = b;

	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return by_order(a, b);
}

/* Every session in the captured view, in turn order, into *out. */
static size_t
candidates(struct listen *l, struct candidate **out, int64_t now)
{
	int32_t ids[OPTIONS_MAX_EVENTS];
	int n = session_targets(l, ids);
	const struct dispatch_turns turns = l->c.hooks.turns(l->c.hooks.arg,
	    now);
	struct candidate *c;
	size_t total = count_sessions(l), k = 0;

	c = xcalloc(total ? total : 1, sizeof(*c));
	for (int i = 0; i < n; i++) {
		const struct strmap *known = watch_known(&l->watch, ids[i]);
		size_t pos = 0;
		const char *name;
		void *doc;

		while (known && k < total &&
		    strmap_next(known, &pos, &name, &doc)) {
			c[k].name = name;
			c[k].doc = doc;
			c[k].order = ts_to_ms(c[k].doc->update_time) +
			    dispatch_turn_delay(&turns, name);
			event_of(&c[k]);
			k++;
		}
	}
	/* each event's sessions in turn order, ranked; then the ranks
	 * interleaved, so a 200-guest activation never holds back another
	 * event's next guest */
	qsort(c, k, sizeof(*c), by_event_then_order);
	for (size_t i = 0; i < k; i++)
		c[i].rank = i > 0 && c[i].event_len == c[i - 1].event_len &&
		    memcmp(c[i].event, c[i - 1].event, c[i].event_len) == 0 ?
		    c[i - 1].rank + 1 : 0;
	qsort(c, k, sizeof(*c), by_rank_then_order);
	*out = c;
	return k;
}

/*
 * Look at every captured session in the last snapshot, round-robin by
 * event and oldest turn first within an event, and offer those whose
 * turn has come, while the queue has room.  Runs
 * after each snapshot, on every tick, and while sessions wait (for room
 * or for their turn) every BACKLOG_POLL_MS.
 */
static void
offer_turns(struct listen *l)
{
	const struct listen_hooks *h = &l->c.hooks;
	struct candidate *c;
	int64_t now = now_mono_ms(), read_ms;
	size_t n;

	if (!l->ready_once)
		return;
	/* the server's clock now, from the last snapshot's read time */
	read_ms = ts_to_ms(l->watch.read_time) + (now - l->snapshot_ms);
	n = candidates(l, &c, now);
	l->backlog = false;
	l->next_turn_ms = 0;
	for (size_t i = 0; i < n; i++) {
		if (c[i].order > read_ms) {
			int64_t at = now + (c[i].order - read_ms);

			h->waiting(h->arg, c[i].name);
			if (l->next_turn_ms == 0 || at < l->next_turn_ms)
				l->next_turn_ms = at;
			continue;
		}
		if (!h->room(h->arg, 1)) {
			l->backlog = true;
			break;
		}
		h->offer(h->arg, c[i].name, c[i].doc,
		    ts_to_ms(l->watch.read_time), c[i].order);
	}
	free(c);
	h->looked(h->arg);
}

/* Is it time for offer_turns, between snapshots? */
static bool
offer_due(struct listen *l, int64_t last_ms)
{
	int64_t now = now_mono_ms();

	if (now - last_ms >= TICK_MS)
		return true;
	if (l->next_turn_ms != 0 && now >= l->next_turn_ms)
		return true;
	return l->backlog && now - last_ms >= BACKLOG_POLL_MS &&
	    l->c.hooks.room(l->c.hooks.arg, RUNNERS_QUEUE_MAX / 2);
}

/* ---- the stream ---- */

void
listen_wrote(struct listen *l, const FsTimestamp *commit_time)
{
	pthread_mutex_lock(&l->lock);
	if (ts_compare(commit_time, &l->wrote_at) > 0) {
		l->wrote_at.seconds = commit_time->seconds;
		l->wrote_at.nanos = commit_time->nanos;
		l->wrote_ms = now_mono_ms();
	}
	pthread_mutex_unlock(&l->lock);
}

/* Sleep up to ms, waking early on stop. */
static void
nap(struct listen *l, int64_t ms)
{
	int64_t end = now_mono_ms() + ms;

	while (!l->stop && now_mono_ms() < end) {
		int64_t left = end - now_mono_ms();

		sleep_ms(left > 100 ? 100 : left);
		l->c.hooks.tick(l->c.hooks.arg, "reconnecting to Firestore");
	}
}

/*
 * Our newest write landed more than limit_ms ago (and the stream opened
 * at opened_ms has had that long too), yet the last snapshot is older.
 */
static bool
unseen_write(struct listen *l, int64_t opened_ms, int64_t limit_ms)
{
	FsTimestamp at;
	int64_t wrote_ms;

	pthread_mutex_lock(&l->lock);
	at = l->wrote_at;
	wrote_ms = l->wrote_ms;
	pthread_mutex_unlock(&l->lock);
	if (wrote_ms == 0 || now_mono_ms() - (wrote_ms > opened_ms ?
	    wrote_ms : opened_ms) <= limit_ms)
		return false;
	return watch_before(&l->watch, &at);
}

/* Target id's query into *q (its parent, if any, malloc'd in *parent). */
static void
target_query(const struct listen *l, int32_t id, struct fs_query *q,
    char **parent)
{
	/* sessions whose state is captured, in every event (the collection
	 * group), or in one configured event; interrupted "transforming"
	 * ones are found by the recovery query, so our own writes to a
	 * session after its claim are not Listen traffic */
	static const char *const states[] = { "captured" };

	*q = (struct fs_query){
		.collection = "sessions", .field = "state", .values = states,
		.n_values = 1,
	};
	*parent = NULL;
	if (id == TARGET_EXPERIENCES) {
		*q = (struct fs_query){ .collection = "experiences" };
	} else if (id >= TARGET_EVENT0) {
		*parent = xasprintf("events/%s",
		    l->c.events[id - TARGET_EVENT0]);
		q->parent = *parent;
	} else {
		q->all_descendants = true;
	}
}

static struct fs_listen *
open_stream(struct listen *l)
{
	struct fs_target targets[OPTIONS_MAX_EVENTS + 1];
	struct fs_query queries[OPTIONS_MAX_EVENTS + 1];
	char *parents[OPTIONS_MAX_EVENTS + 1];
	int32_t ids[OPTIONS_MAX_EVENTS + 1];
	int n = session_targets(l, ids);
	struct fs_listen *s;
	int resuming = 0;

	ids[n++] = TARGET_EXPERIENCES;
	for (int i = 0; i < n; i++) {
		/* each target resumes where it was last in sync, and no
		 * further (watch.h) */
		target_query(l, ids[i], &queries[i], &parents[i]);
		targets[i] = (struct fs_target){ .id = ids[i],
		    .query = &queries[i] };
		targets[i].resume_token = watch_resume_token(&l->watch, ids[i],
		    &targets[i].resume_len);
		resuming += targets[i].resume_token != NULL;
	}
	watch_stream_started(&l->watch);
	/* every target is added again: a removal is the new stream's news */
	atomic_store(&l->targets_down, 0);
	l->retry_removed_ms = 0;
	s = fs_listen_open(l->c.fs, targets, (size_t)n);
	for (int i = 0; i < n; i++)
		free(parents[i]);
	pthread_mutex_lock(&l->lock);
	l->stream = s;
	pthread_mutex_unlock(&l->lock);
	log_debug("listen: stream opened, %d of %d target(s) resuming",
	    resuming, n);
	return s;
}

/* A stream's clocks, for deciding it is stuck. */
struct stream_clock {
	int64_t opened, last_msg, first_ms;
	bool progress;			/* it has answered */
};

/* Should this stream be given up on?  Says why in the log. */
static bool
stuck(struct listen *l, const struct stream_clock *c)
{
	int64_t quiet = now_mono_ms() - c->last_msg;

	if (!c->progress && now_mono_ms() - c->opened > c->first_ms) {
		log_warn("listen: no response %" PRId64 " s after opening the "
		    "stream; reopening it (is Firestore reachable?)",
		    c->first_ms / 1000);
		return true;
	}
	if (c->progress && quiet > NOT_CURRENT_MS &&
	    watch_current_count(&l->watch) + watch_removed_count(&l->watch) <
	    l->watch.n_targets) {
		log_warn("listen: %d of %d target(s) still not current and no "
		    "message for %d s; reopening the stream",
		    l->watch.n_targets - watch_current_count(&l->watch) -
		    watch_removed_count(&l->watch), l->watch.n_targets,
		    NOT_CURRENT_MS / 1000);
		return true;
	}
	if (c->progress && unseen_write(l, c->opened, UNSEEN_WRITE_MS)) {
		log_warn("listen: a write of ours landed over %d s ago and the "
		    "stream has not shown it; reopening the stream",
		    UNSEEN_WRITE_MS / 1000);
		return true;
	}
	if (quiet > l->c.idle_timeout_ms) {
		log_warn("listen: no message for %" PRId64 " s; reopening the "
		    "stream", l->c.idle_timeout_ms / 1000);
		return true;
	}
	return false;
}

/* A snapshot was applied: say READY once, then offer turns. */
static void
on_snapshot(struct listen *l)
{
	if (!l->ready_once && watch_synced(&l->watch)) {
		l->ready_once = true;
		log_notice("listen: first snapshot current: %zu session(s) "
		    "captured", count_sessions(l));
		notify_send("READY=1");
	}
	l->snapshot_ms = now_mono_ms();
	atomic_store(&l->up, watch_synced(&l->watch));
	prune_experiences(l);
	offer_turns(l);
}

/*
 * The server removed some targets (err says which and why): the others
 * go on being served, and a new stream adds them again in a minute or so.
 * The server's message (for a missing index, the link that creates it)
 * is logged at err once, and again only when it changes.
 */
static void
targets_removed(struct listen *l, const char *err)
{
	int down = watch_removed_count(&l->watch), code = 0;

	for (int i = 0; i < l->watch.n_targets; i++)
		if (l->watch.targets[i].removed)
			code = l->watch.targets[i].removed_code;
	atomic_store(&l->targets_down, down);
	if (l->retry_removed_ms == 0)
		l->retry_removed_ms = now_mono_ms() + REMOVED_RETRY_MS +
		    (int64_t)(backoff_random() * REMOVED_RETRY_MS / 4);
	if (strcmp(err, l->removed_said) == 0) {
		log_info("listen: %s (as before); trying again in %" PRId64
		    " s", err, (l->retry_removed_ms - now_mono_ms()) / 1000);
		return;
	}
	snprintf(l->removed_said, sizeof(l->removed_said), "%s", err);
	log_err("listen: %s; %s; the other targets are served, and this one "
	    "is tried again in %" PRId64 " s", err, code == 9 ?
	    "a query needs an index: create it (the link above, or "
	    "README: a missing index)" : code == 7 ? "the service account "
	    "needs the Cloud Datastore User role (roles/datastore.user)" :
	    "no sessions of it are picked up meanwhile",
	    (l->retry_removed_ms - now_mono_ms()) / 1000);
}

/* How a stream ended, in the log.  A stream refused outright, or told
 * the quota is spent, backs off to the longest delay, as the official
 * clients do. */
static void
stream_ended(struct fs_listen *s, struct backoff *bo)
{
	struct fs_status st = { 0 };

	fs_listen_close(s, &st);
	if (st.kind == FS_TRANSIENT && st.code == 8) {	/* RESOURCE_EXHAUSTED */
		log_warn("listen: stream ended: %s%s%s; the project's quota "
		    "is spent for now: reconnecting at the longest back-off",
		    fs_status_name(&st), *st.message ? ": " : "",
		    st.message);
		bo->base_ms = bo->max_ms;
		return;
	}
	if (st.kind == FS_TRANSIENT) {
		log_warn("listen: stream ended: %s%s%s; reconnecting",
		    fs_status_name(&st), *st.message ? ": " : "",
		    st.message);
		return;
	}
	log_err("listen: stream failed: %s%s%s; %s; retrying slowly",
	    fs_status_name(&st), *st.message ? ": " : "", st.message,
	    st.kind == FS_DENIED ? "the service account "
	    "needs the Cloud Datastore User role (roles/datastore.user) in "
	    "the project" : "check the project id, database and "
	    "credentials");
	bo->base_ms = bo->max_ms;
}

/* Run one stream until it ends; returns true if it made progress. */
static bool
run_stream(struct listen *l, struct backoff *bo, bool *restart_now)
{
	struct fs_listen *s = open_stream(l);
	struct stream_clock c = { .opened = now_mono_ms() };
	int64_t last_tick = 0;

	c.last_msg = c.opened;
	/* a new stream that has not answered at all is given less time than
	 * a quiet one that has: a call can wait on a channel that never
	 * becomes ready again (seen after a server restart) */
	c.first_ms = l->c.idle_timeout_ms < FIRST_RESPONSE_MS ?
	    l->c.idle_timeout_ms : FIRST_RESPONSE_MS;
	while (!l->stop) {
		FsListenResponse *resp = NULL;
		enum watch_event ev = WATCH_NONE;
		char err[512];
		int rc = fs_listen_next(s, l->backlog || l->next_turn_ms ?
		    BACKLOG_POLL_MS : TICK_MS, &resp);

		if (rc < 0)
			break;
		if (rc > 0) {
			c.last_msg = now_mono_ms();
			atomic_store(&l->msg_ms, c.last_msg);
			c.progress = true;
			ev = watch_feed(&l->watch, resp, err, sizeof(err));
			fs_listen_response_free(resp);
		}
		if (ev == WATCH_SNAPSHOT) {
			/* healthy: every target it serves is current (a
			 * first message proves nothing: a server that ends
			 * each stream just after it must not be hammered) */
			if (watch_current_count(&l->watch) +
			    watch_removed_count(&l->watch) ==
			    l->watch.n_targets)
				backoff_reset(bo);
			/* every target current: a removal, if one comes
			 * back, is news again */
			if (watch_current_count(&l->watch) ==
			    l->watch.n_targets)
				l->removed_said[0] = '\0';
			on_snapshot(l);
			last_tick = now_mono_ms();
		} else if (ev == WATCH_RESTART) {
			log_warn("listen: %s; re-reading that target",
			    err);
			*restart_now = true;
			break;
		} else if (ev == WATCH_TARGET_REMOVED) {
			targets_removed(l, err);
		} else if (ev == WATCH_TARGET_ERROR) {
			log_err("listen: %s", err);
			break;
		}
		if (l->retry_removed_ms != 0 &&
		    now_mono_ms() >= l->retry_removed_ms) {
			log_info("listen: adding the removed target(s) again "
			    "on a new stream");
			l->retry_removed_ms = 0;
			*restart_now = true;
			break;
		}
		if (stuck(l, &c))
			break;
		if (offer_due(l, last_tick)) {
			offer_turns(l);
			last_tick = now_mono_ms();
		}
		l->c.hooks.tick(l->c.hooks.arg, l->ready_once ? "listening" :
		    "connecting");
	}
	pthread_mutex_lock(&l->lock);
	l->stream = NULL;
	pthread_mutex_unlock(&l->lock);
	atomic_store(&l->up, false);
	if (l->stop || *restart_now) {
		fs_listen_close(s, &(struct fs_status){ 0 });
		return c.progress;
	}
	stream_ended(s, bo);
	return c.progress;
}

void
listen_run(struct listen *l)
{
	struct backoff bo;
	char why[1400];

	backoff_init(&bo, BACKOFF_MIN_MS, BACKOFF_MAX_MS, 1.5, 0.25);
	for (bool first = true; !l->stop; first = false) {
		bool restart_now = false;

		if (!first)
			atomic_fetch_add(&l->reconnects, 1);
		run_stream(l, &bo, &restart_now);
		if (l->stop)
			break;
		if (!l->ready_once && fs_tls_rejected(why, sizeof(why))) {
			/* not a blip that retrying mends: say so, and stop,
			 * so that systemctl status shows it */
			log_err("firestore: %s: a configuration error, not a "
			    "network failure; stopping (check [firestore] "
			    "endpoint and ca-file)", why);
			l->failed = true;
			break;
		}
		if (!restart_now) {
			int64_t ms = backoff_next(&bo, backoff_random());

			log_info("listen: reconnecting in %.1f s",
			    (double)ms / 1000.0);
			nap(l, ms);
		}
	}
}

void
listen_stop(struct listen *l)
{
	pthread_mutex_lock(&l->lock);
	l->stop = 1;
	if (l->stream)
		fs_listen_cancel(l->stream);
	pthread_mutex_unlock(&l->lock);
}

bool
listen_failed(const struct listen *l)
{
	return l->failed;
}

void
listen_stats(struct listen *l, struct listen_stats *out)
{
	out->up = atomic_load(&l->up);
	out->targets_down = atomic_load(&l->targets_down);
	out->last_message_ms = atomic_load(&l->msg_ms);
	out->reconnects = atomic_load(&l->reconnects);
}

struct listen *
listen_new(const struct listen_config *c)
{
	struct listen *l = xcalloc(1, sizeof(*l));
	int32_t ids[OPTIONS_MAX_EVENTS];
	int n;

	l->c = *c;
	pthread_mutex_init(&l->lock, NULL);
	l->experiences = strmap_new();
	ts_init(&l->wrote_at);
	watch_init(&l->watch);
	n = session_targets(l, ids);
	for (int i = 0; i < n; i++) {
		watch_add_target(&l->watch, ids[i]);
		watch_set_trim(&l->watch, ids[i], slim_session, l);
	}
	watch_add_target(&l->watch, TARGET_EXPERIENCES);
	return l;
}

void
listen_free(struct listen *l)
{
	if (l == NULL)
		return;
	watch_clear(&l->watch);
	strmap_free(l->experiences, experience_ref_drop);
	pthread_mutex_destroy(&l->lock);
	free(l);
}
