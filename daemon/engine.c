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

#include "alloc.h"
#include "backoff.h"
#include "clock.h"
#include "dispatch.h"
#include "engine.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "pipeline.h"
#include "session.h"
#include "strmap.h"
#include "value.h"
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
#define VERSION_LEN	48
/* Session documents larger than this are cached slim (slim_session). */
#define SLIM_OVER	(64 * 1024)
/* Tasks queued, in capture order, beyond those running; the rest of a
 * backlog waits in the snapshot (slim, as a name and a version). */
#define QUEUE_MAX	256
/* While sessions wait for room in the queue or for their turn, the
 * stream is polled this often instead of every TICK_MS. */
#define BACKLOG_POLL_MS	10
/* Claims sent ahead of free workers, per worker: the claim round trip
 * overlaps the transform before it, yet a busy daemon does not take
 * sessions an idle one could start at once. */
#define CLAIMS_AHEAD	1
/* Another daemon was seen taking sessions this recently: spread claims. */
#define PEER_MEMORY_MS	(10 * 60 * 1000)
/* The spread: this many claim round trips (a claim must have time to
 * land and be seen by the others before the next daemon's turn). */
#define SPREAD_RTTS	16
#define SPREAD_MIN_MS	20
#define SPREAD_MAX_MS	2000
/* The recovery query: documents per page, and one page's deadline. */
#define RECOVERY_PAGE	100
#define RECOVERY_RPC_MS	10000
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

	pthread_mutex_t lock;		/* queue, listen, wrote_*, rtt */
	pthread_cond_t cond;
	pthread_cond_t recovery_cond;	/* wakes the recovery thread */
	struct task *head;		/* in order (task.order) */
	size_t queued;			/* tasks waiting for a runner */
	int claiming;			/* tasks holding a claim slot */
	struct fs_listen *listen;	/* current stream, for cancel */
	bool stopping;			/* runners: no more tasks */
	double claim_rtt_ms;		/* moving average of claims' round
					   trips; 0: none yet */

	/* the listen thread's own */
	struct watch watch;
	struct dispatch *dispatch;	/* thread-safe */
	bool ready_once;		/* every target current once */
	struct strmap *experiences;	/* name -> struct doc_ref: the
					   cached experiences tasks share */
	int64_t snapshot_ms;		/* monotonic, of the last snapshot */
	bool backlog;			/* sessions wait for queue room */
	int64_t next_turn_ms;		/* monotonic: a session's spread
					   turn comes; 0: none waits */

	pthread_t *runners;
	int n_runners;
	pthread_t recovery;
	atomic_llong peer_ms;		/* monotonic: another daemon last
					   seen taking a session; 0 never */

	atomic_int running;		/* tasks in the pipeline now */
	atomic_int reload;		/* SIGHUP seen, not yet handled */
	void (*on_reload)(void *);	/* main's */
	void *reload_arg;
	char status[160];		/* last STATUS= sent */
	atomic_ulong processed, ready, errors;
	atomic_ulong claims, claims_lost, taken, recovered;
	/* the Listen stream, for the metrics */
	atomic_bool listen_up;		/* open and every target current */
	atomic_llong listen_msg_ms;	/* monotonic, last message; 0 never */
	atomic_ulong reconnects;	/* streams reopened after the first */
	volatile sig_atomic_t stop;

	/* our newest landed write (commit time) and when it landed, under
	 * lock: the stream must show it, or it is stuck */
	FsTimestamp wrote_at;
	int64_t wrote_ms;		/* monotonic; 0 = none yet */
};

/* ---- runners ---- */

/* CLOCK_REALTIME ms from now, for pthread_cond_timedwait. */
static struct timespec
realtime_in(int64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

static int
claim_limit(const struct engine *e)
{
	return e->opt->workers * (1 + CLAIMS_AHEAD);
}

static void
saw_peer(struct engine *e)
{
	int64_t now = now_mono_ms();

	atomic_store(&e->peer_ms, now > 0 ? now : 1);
}

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
	case OUTCOME_CLAIM_LOST:
		atomic_fetch_add(&e->claims_lost, 1);
		saw_peer(e);
		break;
	/* OUTCOME_WITHDRAWN: dispatch_prune counted it when it saw the
	 * session leave */
	default:
		break;
	}
}

/* t no longer needs a claim slot (the pipeline's hook, and after it). */
static void
release_slot(void *arg, struct task *t)
{
	struct engine *e = arg;

	pthread_mutex_lock(&e->lock);
	if (t->holds_slot) {
		t->holds_slot = false;
		e->claiming--;
		pthread_cond_broadcast(&e->cond);
	}
	pthread_mutex_unlock(&e->lock);
}

/* The claim for t is about to be sent (the pipeline's hook). */
static bool
may_claim(void *arg, const struct task *t)
{
	struct engine *e = arg;

	if (!dispatch_start_claim(e->dispatch, t->s.name))
		return false;
	atomic_fetch_add(&e->claims, 1);
	return true;
}

/*
 * Take the first task once a claim slot is free: at most claim_limit()
 * tasks are between their claim and the end of their transform, while
 * the other runners write finishes.  NULL when stopping.
 */
static struct task *
next_task(struct engine *e)
{
	struct task *t;

	pthread_mutex_lock(&e->lock);
	while ((e->head == NULL || e->claiming >= claim_limit(e)) &&
	    !e->stopping)
		pthread_cond_wait(&e->cond, &e->lock);
	if (e->stopping) {
		pthread_mutex_unlock(&e->lock);
		return NULL;
	}
	t = e->head;
	e->head = t->next;
	e->queued--;
	e->claiming++;
	t->holds_slot = true;
	atomic_fetch_add(&e->running, 1);
	pthread_mutex_unlock(&e->lock);
	return t;
}

static void *
runner_main(void *arg)
{
	struct engine *e = arg;
	struct task *t;

	while ((t = next_task(e)) != NULL) {
		enum outcome out = pipeline_run(&e->pipeline, t);

		release_slot(e, t);
		count(e, out);
		dispatch_done(e->dispatch, t->s.name, out == OUTCOME_RETRY);

		pthread_mutex_lock(&e->lock);
		atomic_fetch_sub(&e->running, 1);
		pthread_cond_broadcast(&e->cond);
		pthread_mutex_unlock(&e->lock);
		task_free(t);
	}
	return NULL;
}

/* A claim of ours landed (the pipeline's hook; runner threads): the
 * stream must show the session leave, and the round trip sets the
 * spread. */
static void
claimed(void *arg, const FsTimestamp *commit_time, int64_t rtt_ms)
{
	struct engine *e = arg;

	pthread_mutex_lock(&e->lock);
	if (ts_compare(commit_time, &e->wrote_at) > 0) {
		e->wrote_at.seconds = commit_time->seconds;
		e->wrote_at.nanos = commit_time->nanos;
		e->wrote_ms = now_mono_ms();
	}
	e->claim_rtt_ms = e->claim_rtt_ms == 0 ? (double)rtt_ms :
	    0.9 * e->claim_rtt_ms + 0.1 * (double)rtt_ms;
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

/*
 * The experience t's session selected, from the Listen cache, or NULL (the
 * pipeline reads it).  Tasks share one copy of each experience version.
 */
static struct doc_ref *
cached_experience(struct engine *e, const struct task *t)
{
	const struct strmap *cache = watch_known(&e->watch,
	    TARGET_EXPERIENCES);
	const FsDocument *doc;
	struct doc_ref *ref;
	char *name;

	if (t->decode_rc < 0 || cache == NULL)
		return NULL;
	name = experience_doc_name(fs_docs_path(e->fs),
	    t->s.selected_experience_id);
	doc = name ? strmap_get(cache, name) : NULL;
	if (doc == NULL) {
		free(name);
		return NULL;
	}
	ref = strmap_get(e->experiences, name);
	if (ref == NULL || doc_ref_doc(ref)->update_time == NULL ||
	    doc->update_time == NULL ||
	    ts_compare(doc_ref_doc(ref)->update_time, doc->update_time) != 0) {
		FsDocument *copy = doc_dup(doc);

		ref = copy ? doc_ref_new(copy) : NULL;
		if (ref != NULL)
			doc_ref_drop(strmap_put(e->experiences, name, ref));
	}
	free(name);
	return ref ? doc_ref_hold(ref) : NULL;
}

/* Forget shared copies of experiences no longer in the cache. */
static void
prune_experiences(struct engine *e)
{
	const struct strmap *cache = watch_known(&e->watch,
	    TARGET_EXPERIENCES);
	size_t pos = 0, n = 0, cap = strmap_count(e->experiences);
	char **gone = xcalloc(cap ? cap : 1, sizeof(*gone));
	const char *name;
	void *ref;

	while (strmap_next(e->experiences, &pos, &name, &ref))
		if (cache == NULL || strmap_get(cache, name) == NULL)
			gone[n++] = xstrdup(name);
	for (size_t i = 0; i < n; i++) {
		doc_ref_drop(strmap_del(e->experiences, gone[i]));
		free(gone[i]);
	}
	free(gone);
}

/* Queue t in order (ties: first come first). */
static void
enqueue_task(struct engine *e, struct task *t)
{
	struct task **pp;

	pthread_mutex_lock(&e->lock);
	if (e->stopping) {	/* the recovery thread, during a drain */
		pthread_mutex_unlock(&e->lock);
		dispatch_done(e->dispatch, t->s.name, false);
		task_free(t);
		return;
	}
	for (pp = &e->head; *pp && (*pp)->order <= t->order; pp = &(*pp)->next)
		;
	t->next = *pp;
	*pp = t;
	e->queued++;
	pthread_cond_signal(&e->cond);
	pthread_mutex_unlock(&e->lock);
}

/* A task for doc; from_view: dispatched from the Listen snapshot (on the
 * listen thread, which may read the experience cache). */
static void
enqueue(struct engine *e, const FsDocument *doc, enum task_kind kind,
    int64_t attempt, int64_t order, bool from_view)
{
	struct task *t = xcalloc(1, sizeof(*t));

	t->decode_rc = session_decode(doc, &t->s, t->decode_err,
	    sizeof(t->decode_err));
	t->reread = session_is_slim(doc);
	t->kind = kind;
	t->attempt = attempt;
	t->order = order;
	t->experience = from_view ? cached_experience(e, t) : NULL;
	t->enqueued_ms = now_mono_ms();
	enqueue_task(e, t);
}

/* Room for n more tasks in the queue? */
static bool
queue_has_room(struct engine *e, size_t n)
{
	bool room;

	pthread_mutex_lock(&e->lock);
	room = e->queued + n <= QUEUE_MAX;
	pthread_mutex_unlock(&e->lock);
	return room;
}

/* One session, from the snapshot or the recovery query: a task for it, if
 * it needs one.  read_ms: when the server read it (its clock). */
static void
consider(struct engine *e, const char *name, const FsDocument *doc,
    int64_t read_ms, int64_t order, bool from_view)
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
	    read_ms - ts_to_ms(doc->update_time), attempts, &rules,
	    now_mono_ms(), &attempt);
	if (v == DISPATCH_RECLAIM || v == DISPATCH_GIVE_UP)
		atomic_fetch_add(&e->recovered, 1);
	if (v != DISPATCH_WAIT)
		enqueue(e, doc, kinds[v], attempt, order, from_view);
}

/*
 * How long after its capture this daemon waits before a session's turn.
 * Alone, not at all: sessions go in capture order.  With other daemons on
 * the project (seen taking sessions lately), each session gets a delay
 * from a hash of its name that is different in every daemon, across a
 * spread of some claim round trips, plus as much again scaled by how busy
 * this daemon is: the least busy daemon with the earliest turn claims it,
 * and the others see it leave before their turn comes.
 */
struct turns {
	double spread_ms;		/* 0: alone, no delay */
	double load;			/* 0..1 */
};

static struct turns
turns_now(struct engine *e, int64_t now)
{
	int64_t peer = atomic_load(&e->peer_ms);
	struct turns t = { 0, 0 };

	if (peer == 0 || now - peer > PEER_MEMORY_MS)
		return t;
	pthread_mutex_lock(&e->lock);
	t.spread_ms = SPREAD_RTTS * e->claim_rtt_ms;
	t.load = (double)(e->claiming + (int)e->queued) / claim_limit(e);
	pthread_mutex_unlock(&e->lock);
	if (t.spread_ms < SPREAD_MIN_MS)
		t.spread_ms = SPREAD_MIN_MS;
	if (t.spread_ms > SPREAD_MAX_MS)
		t.spread_ms = SPREAD_MAX_MS;
	if (t.load > 1)
		t.load = 1;
	return t;
}

static int64_t
turn_delay(const struct turns *t, const char *name)
{
	if (t->spread_ms == 0)
		return 0;
	return (int64_t)(t->spread_ms * ((double)strmap_hash(name) /
	    4294967296.0 + t->load));
}

struct candidate {
	const char *name;
	const FsDocument *doc;
	int64_t order;			/* capture + turn delay, server ms */
};

static int
by_order(const void *a, const void *b)
{
	const struct candidate *x = a, *y = b;

	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Every session in the captured view, in turn order, into *out. */
static size_t
candidates(struct engine *e, struct candidate **out, int64_t now)
{
	int32_t ids[OPTIONS_MAX_EVENTS];
	int n = session_targets(e, ids);
	const struct turns turns = turns_now(e, now);
	struct candidate *c;
	size_t total = 0, k = 0;

	for (int i = 0; i < n; i++)
		total += strmap_count(watch_known(&e->watch, ids[i]));
	c = xcalloc(total ? total : 1, sizeof(*c));
	for (int i = 0; i < n; i++) {
		const struct strmap *known = watch_known(&e->watch, ids[i]);
		size_t pos = 0;
		const char *name;
		void *doc;

		while (known && k < total &&
		    strmap_next(known, &pos, &name, &doc)) {
			c[k].name = name;
			c[k].doc = doc;
			c[k].order = ts_to_ms(c[k].doc->update_time) +
			    turn_delay(&turns, name);
			k++;
		}
	}
	qsort(c, k, sizeof(*c), by_order);
	*out = c;
	return k;
}

/*
 * Look at every captured session in the last snapshot, oldest turn first,
 * and queue those whose turn has come, while the queue has room.  Runs
 * after each snapshot, on every tick, and while sessions wait (for room
 * or for their turn) every BACKLOG_POLL_MS.
 */
static void
dispatch_all(struct engine *e)
{
	struct candidate *c;
	int64_t now = now_mono_ms(), read_ms, taken;
	size_t n;

	if (!e->ready_once)
		return;
	/* the server's clock now, from the last snapshot's read time */
	read_ms = ts_to_ms(e->watch.read_time) + (now - e->snapshot_ms);
	n = candidates(e, &c, now);
	e->backlog = false;
	e->next_turn_ms = 0;
	for (size_t i = 0; i < n; i++) {
		if (c[i].order > read_ms) {
			int64_t at = now + (c[i].order - read_ms);

			dispatch_note(e->dispatch, c[i].name);
			if (e->next_turn_ms == 0 || at < e->next_turn_ms)
				e->next_turn_ms = at;
			continue;
		}
		if (!queue_has_room(e, 1)) {
			e->backlog = true;
			break;
		}
		consider(e, c[i].name, c[i].doc, ts_to_ms(e->watch.read_time),
		    c[i].order, true);
	}
	free(c);
	taken = (int64_t)dispatch_prune(e->dispatch, in_view, e);
	if (taken > 0) {
		atomic_fetch_add(&e->taken, (unsigned long)taken);
		saw_peer(e);
	}
}

/* Is it time for dispatch_all, between snapshots? */
static bool
dispatch_due(struct engine *e, int64_t last_ms)
{
	int64_t now = now_mono_ms();

	if (now - last_ms >= TICK_MS)
		return true;
	if (e->next_turn_ms != 0 && now >= e->next_turn_ms)
		return true;
	return e->backlog && now - last_ms >= BACKLOG_POLL_MS &&
	    queue_has_room(e, QUEUE_MAX / 2);
}

/* ---- interrupted-session recovery (its own thread) ---- */

struct page {
	struct engine *e;
	int n;				/* documents in this page */
	char *last;			/* the last one's name */
};

static void
on_transforming(FsDocument *doc, const FsTimestamp *read_time, void *arg)
{
	struct page *pg = arg;

	pg->n++;
	free(pg->last);
	pg->last = xstrdup(doc->name);
	/* a big one is queued slim and read whole when its turn comes, as
	 * from the snapshot */
	doc = session_slim(doc, SLIM_OVER);
	if (doc->update_time != NULL && queue_has_room(pg->e, 1))
		consider(pg->e, doc->name, doc, ts_to_ms(read_time),
		    ts_to_ms(doc->update_time), false);
	doc_free(doc);
}

/* Page through the sessions "transforming" under parent (NULL: every
 * event); those past their lease become tasks.  An error ends the pass
 * (the next one tries again). */
static void
recover_under(struct engine *e, const char *parent)
{
	static const char *const transforming[] = { "transforming" };
	struct page pg = { .e = e };

	do {
		struct fs_query q = { .parent = parent, .collection =
		    "sessions", .all_descendants = parent == NULL, .field =
		    "state", .values = transforming, .n_values = 1, .limit =
		    RECOVERY_PAGE, .start_after = pg.last };
		struct fs_status st = { 0 };

		pg.n = 0;
		if (fs_run_query(e->fs, &q, RECOVERY_RPC_MS, on_transforming,
		    &pg, &st) != FS_OK) {
			log_warn("recovery: the query for interrupted "
			    "sessions failed: %s%s%s; trying again in about "
			    "%d s", fs_status_name(&st), *st.message ?
			    ": " : "", st.message,
			    e->opt->recovery_interval_s);
			break;
		}
	} while (pg.n == RECOVERY_PAGE && !e->stop);
	free(pg.last);
}

static void
recover(struct engine *e)
{
	if (e->opt->n_events == 0) {
		recover_under(e, NULL);
		return;
	}
	for (size_t i = 0; i < e->opt->n_events && !e->stop; i++) {
		char *parent = xasprintf("events/%s", e->opt->events[i]);

		recover_under(e, parent);
		free(parent);
	}
}

/* Every recovery interval, jittered by a quarter either way so daemons
 * started together do not query together: look for interrupted work. */
static void *
recovery_main(void *arg)
{
	struct engine *e = arg;

	for (;;) {
		struct timespec until = realtime_in((int64_t)((double)
		    e->opt->recovery_interval_s * 1000.0 *
		    (0.75 + 0.5 * backoff_random())));

		pthread_mutex_lock(&e->lock);
		while (!e->stop && pthread_cond_timedwait(&e->recovery_cond,
		    &e->lock, &until) != ETIMEDOUT)
			;
		pthread_mutex_unlock(&e->lock);
		if (e->stop)
			return NULL;
		recover(e);
	}
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

/* Target id's query into *q (its parent, if any, malloc'd in *parent). */
static void
target_query(struct engine *e, int32_t id, struct fs_query *q, char **parent)
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
		    e->opt->events[id - TARGET_EVENT0]);
		q->parent = *parent;
	} else {
		q->all_descendants = true;
	}
}

static struct fs_listen *
open_stream(struct engine *e)
{
	struct fs_target targets[OPTIONS_MAX_EVENTS + 1];
	struct fs_query queries[OPTIONS_MAX_EVENTS + 1];
	char *parents[OPTIONS_MAX_EVENTS + 1];
	int32_t ids[OPTIONS_MAX_EVENTS + 1];
	int n = session_targets(e, ids);
	struct fs_listen *l;

	ids[n++] = TARGET_EXPERIENCES;
	for (int i = 0; i < n; i++) {
		/* every target resumes where the watch left off */
		target_query(e, ids[i], &queries[i], &parents[i]);
		targets[i] = (struct fs_target){ .id = ids[i],
		    .query = &queries[i], .resume_token =
		    e->watch.resume_token, .resume_len =
		    e->watch.resume_token_len };
	}
	watch_stream_started(&e->watch);
	l = fs_listen_open(e->fs, targets, (size_t)n);
	for (int i = 0; i < n; i++)
		free(parents[i]);
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
		    "captured", count_sessions(e));
		notify_send("READY=1");
	}
	e->snapshot_ms = now_mono_ms();
	atomic_store(&e->listen_up, watch_synced(&e->watch));
	prune_experiences(e);
	dispatch_all(e);
}

/* How a stream ended, in the log; a stream refused outright backs off to
 * the longest delay. */
static void
stream_ended(struct fs_listen *l, struct backoff *bo)
{
	struct fs_status st = { 0 };

	fs_listen_close(l, &st);
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
		int rc = fs_listen_next(l, e->backlog || e->next_turn_ms ?
		    BACKLOG_POLL_MS : TICK_MS, &resp);

		if (rc < 0)
			break;
		if (rc > 0) {
			c.last_msg = now_mono_ms();
			atomic_store(&e->listen_msg_ms, c.last_msg);
			if (!c.progress)
				backoff_reset(bo);
			c.progress = true;
			ev = watch_feed(&e->watch, resp, err, sizeof(err));
			fs_listen_response_free(resp);
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
		if (dispatch_due(e, last_tick)) {
			dispatch_all(e);
			last_tick = now_mono_ms();
		}
		tick(e, e->ready_once ? "listening" : "connecting");
	}
	pthread_mutex_lock(&e->lock);
	e->listen = NULL;
	pthread_mutex_unlock(&e->lock);
	atomic_store(&e->listen_up, false);
	if (e->stop || *restart_now) {
		fs_listen_close(l, &(struct fs_status){ 0 });
		return c.progress;
	}
	stream_ended(l, bo);
	return c.progress;
}

/* ---- metrics ---- */

/* What a scrape reads of the engine and the pool (metrics.h). */
static void
metrics_source(void *arg, struct metrics_source *out)
{
	struct engine *e = arg;
	int busy, workers, plugins;

	pool_stats(e->pool, &busy, &workers, &plugins);
	pthread_mutex_lock(&e->lock);
	out->queued = e->queued;
	pthread_mutex_unlock(&e->lock);
	out->in_flight = atomic_load(&e->running);
	out->workers_busy = busy;
	out->workers = workers;
	out->plugins_loaded = plugins;
	out->listen_up = atomic_load(&e->listen_up);
	out->listen_last_message_ms = atomic_load(&e->listen_msg_ms);
	out->listen_reconnects = atomic_load(&e->reconnects);
	out->claims = atomic_load(&e->claims);
	out->claims_lost = atomic_load(&e->claims_lost);
	out->taken_by_others = atomic_load(&e->taken);
	out->recovered = atomic_load(&e->recovered);
}

void
engine_metrics_attach(struct engine *e, bool on)
{
	if (on)
		metrics_set_source(metrics_source, e);
	else
		metrics_set_source(NULL, NULL);
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
	    .pool = pool, .may_claim = may_claim, .claimed = claimed,
	    .transformed = release_slot, .arg = e, .frozen = &e->frozen };
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->cond, NULL);
	pthread_cond_init(&e->recovery_cond, NULL);
	e->experiences = strmap_new();
	ts_init(&e->wrote_at);
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
		struct timespec ts = realtime_in(100);

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
		dispatch_done(e->dispatch, t->s.name, false);
		task_free(t);
	}
	e->head = NULL;
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
	e->runners = xcalloc((size_t)e->opt->firestore_concurrency,
	    sizeof(*e->runners));
	for (int i = 0; i < e->opt->firestore_concurrency; i++) {
		if (pthread_create(&e->runners[i], NULL, runner_main, e) != 0)
			fatal("cannot start a runner thread: out of resources");
		e->n_runners++;
	}
	if (pthread_create(&e->recovery, NULL, recovery_main, e) != 0)
		fatal("cannot start the recovery thread: out of resources");
	log_notice("firesyncd %s: project=%s database=%s%s%s workers=%d "
	    "concurrency=%d storage=%s", PACKAGE_VERSION, fs_project(e->fs),
	    fs_database(e->fs), fs_is_emulator(e->fs) ? " emulator=" : "",
	    fs_is_emulator(e->fs) ? e->opt->emulator : "", e->opt->workers,
	    e->opt->firestore_concurrency, e->store->root);

	for (bool first = true; !e->stop; first = false) {
		bool restart_now = false;

		if (!first)
			atomic_fetch_add(&e->reconnects, 1);
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
	/* after the drain: a recovery query in flight ends by its deadline
	 * at worst, and what it finds is dropped */
	pthread_join(e->recovery, NULL);
	log_notice("shutdown: done; processed=%lu ready=%lu error=%lu "
	    "claims=%lu claims_lost=%lu taken_by_others=%lu recovered=%lu",
	    atomic_load(&e->processed), atomic_load(&e->ready),
	    atomic_load(&e->errors), atomic_load(&e->claims),
	    atomic_load(&e->claims_lost), atomic_load(&e->taken),
	    atomic_load(&e->recovered));
	return 0;
}

void
engine_stop(struct engine *e)
{
	pthread_mutex_lock(&e->lock);
	e->stop = 1;
	if (e->listen)
		fs_listen_cancel(e->listen);
	pthread_cond_broadcast(&e->recovery_cond);
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
	strmap_free(e->experiences, doc_ref_drop);
	pthread_mutex_destroy(&e->lock);
	pthread_cond_destroy(&e->cond);
	pthread_cond_destroy(&e->recovery_cond);
	free(e);
}
