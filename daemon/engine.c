/*
 * engine.c - the wiring (engine.h): the Listen supervisor (listen.c) and
 * the recovery thread (recovery.c) find sessions; dispatch (dispatch.c)
 * decides which become tasks; the runners (runners.c) take them through
 * the pipeline (pipeline.c).  The engine decodes what it is offered into
 * tasks, counts what becomes of them, and does the main loop's chores.
 */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "dispatch.h"
#include "engine.h"
#include "listen.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "frames.h"
#include "pipeline.h"
#include "recovery.h"
#include "runners.h"
#include "session.h"
#include "value.h"

#define VERSION_LEN	48
/* Claims sent ahead of free workers, per worker: the claim round trip
 * overlaps the transform before it, yet a busy daemon does not take
 * sessions an idle one could start at once. */
#define CLAIMS_AHEAD	1
/* A remote plugin's lane claims its calls setting and one more: a
 * claim's round trip is small beside a hosted model's seconds, and a
 * session claimed ahead waits for a call slot outside the event-fair
 * queue, so few are. */
#define HOSTED_CLAIMS(calls)	((calls) + 1)
/* After a drain timeout, how long runners get to notice they may not
 * write (their workers are killed; a Firestore call may still be out). */
#define ABANDON_GRACE_MS 5000
/* how long the shutdown waits for a recovery query still in a call */
#define RECOVERY_STOP_WAIT_MS 2000

struct engine {
	/* the settings at start: what only a restart changes (events,
	 * workers, concurrency) is read here, for the engine's life */
	struct settings *first;
	const struct options *opt;	/* first's options */
	struct fs_client *fs;		/* borrowed */
	struct store *store;		/* borrowed */
	struct pool *pool;		/* borrowed */
	struct pipeline pipeline;	/* the runners' context */
	atomic_bool frozen;		/* shutdown gave up: no more writes */

	struct dispatch *dispatch;	/* thread-safe */
	struct listen *listen;
	struct runners *runners;	/* NULL until engine_run */
	struct recovery *recovery;	/* NULL until engine_run */
	bool idle;			/* every runner has ended */

	pthread_mutex_t lock;		/* current, claim_rtt_ms */
	struct settings *current;	/* what a new task starts under */
	double claim_rtt_ms;		/* moving average of claims' round
					   trips; 0: none yet */
	atomic_llong peer_ms;		/* monotonic: another daemon last
					   seen taking a session; 0 never */

	int lane_claims[RUNNERS_LANES_MAX];	/* claim slots by lane, as
					   last set (main loop) */
	atomic_int reload;		/* SIGHUP seen, not yet handled */
	struct settings *(*on_reload)(void *, const struct settings *);
	void *reload_arg;
	char status[160];		/* last STATUS= sent */
	atomic_ulong processed, ready, errors;
	atomic_ulong claims, claims_lost, taken, recovered;
	volatile sig_atomic_t stop;
};

/* The settings now: a held reference (settings_drop it). */
static struct settings *
current(void *arg)
{
	struct engine *e = arg;
	struct settings *s;

	pthread_mutex_lock(&e->lock);
	s = settings_hold(e->current);
	pthread_mutex_unlock(&e->lock);
	return s;
}

static void
saw_peer(struct engine *e)
{
	int64_t now = now_mono_ms();

	atomic_store(&e->peer_ms, now > 0 ? now : 1);
}

static int
running(struct engine *e)
{
	struct runners_load load = { 0 };

	if (e->runners != NULL)
		runners_load(e->runners, &load);
	return load.running;
}

/* ---- the pipeline's hooks (runner threads) ---- */

/* The claim for w is about to be sent. */
static bool
may_claim(void *arg, const struct work *w)
{
	struct engine *e = arg;

	if (!dispatch_start_claim(e->dispatch, w->s.name))
		return false;
	atomic_fetch_add(&e->claims, 1);
	return true;
}

/* A claim of ours landed: the stream must show the session leave, and
 * the round trip sets the turn spread. */
static void
claimed(void *arg, const FsTimestamp *commit_time, int64_t rtt_ms)
{
	struct engine *e = arg;

	listen_wrote(e->listen, commit_time);
	pthread_mutex_lock(&e->lock);
	e->claim_rtt_ms = e->claim_rtt_ms == 0 ? (double)rtt_ms :
	    0.9 * e->claim_rtt_ms + 0.1 * (double)rtt_ms;
	pthread_mutex_unlock(&e->lock);
}

static void
transformed(void *arg, struct work *w)
{
	struct engine *e = arg;

	runners_transformed(e->runners, w);
}

/* What became of a run, counted. */
static void
count(void *arg, enum outcome out)
{
	struct engine *e = arg;

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

/* ---- from a session found to a task ---- */

/*
 * The runners' lane for w: its model's, when the experience is known and
 * asks for a model of a remote plugin (a hosted call); else 0, the CPU
 * looks'.  A session whose experience is not in the Listen cache (the
 * recovery query's) counts as a CPU look until the pipeline reads it;
 * the pool still runs its call on a hosted-call worker.
 */
static int
lane_of(struct engine *e, const struct work *w)
{
	const struct experience *x;
	const char *bad;
	int lane;

	if (w->kind == TASK_GIVE_UP || w->experience == NULL ||
	    experience_ref_get(w->experience, &x, &bad) < 0 ||
	    !x->ai_enabled || x->model == NULL)
		return 0;
	lane = pool_model_lane(e->pool, x->model);
	return lane > 0 && lane < RUNNERS_LANES_MAX ? lane : 0;
}

/*
 * The claim slots of each lane and the runner threads to fill them, from
 * the settings and the remote plugins the workers announced (a reload
 * may bring new ones, or new calls settings).
 */
static void
size_lanes(struct engine *e)
{
	struct pool_lane lanes[RUNNERS_LANES_MAX - 1];
	int n = pool_lanes(e->pool, lanes, RUNNERS_LANES_MAX - 1, NULL);
	int threads = e->opt->firestore_concurrency;
	int want[RUNNERS_LANES_MAX] = { e->opt->workers * (1 + CLAIMS_AHEAD) };
	bool changed = false;

	if (n > RUNNERS_LANES_MAX - 1)
		n = RUNNERS_LANES_MAX - 1;
	for (int i = 0; i < n; i++)
		want[i + 1] = HOSTED_CLAIMS(lanes[i].limit);
	if (threads < want[0])
		threads = want[0];
	for (int i = 0; i < RUNNERS_LANES_MAX; i++) {
		if (i > 0)
			threads += want[i];
		if (want[i] != e->lane_claims[i]) {
			runners_set_claim_limit(e->runners, i, want[i]);
			e->lane_claims[i] = want[i];
			changed = true;
		}
	}
	if (changed)
		runners_ensure_threads(e->runners, threads);
}

static bool
room(void *arg, size_t n)
{
	struct engine *e = arg;

	return e->runners != NULL && runners_have_room(e->runners, n);
}

/*
 * One session, from the snapshot or the recovery query: a task for it if
 * dispatch says it needs one.  Dispatch sees every session in view on
 * every pass, so it reads only the state and attempts (session_peek); a
 * session that becomes a task is decoded once, into the task.  read_ms:
 * when the server read it (its clock); from_view: offered from the
 * Listen snapshot (on the listen thread, which may read the experience
 * cache).
 */
static void
consider(struct engine *e, const char *name, const FsDocument *doc,
    int64_t read_ms, int64_t order, bool from_view)
{
	static const enum task_kind kinds[] = {
		[DISPATCH_CLAIM] = TASK_CLAIM,
		[DISPATCH_RECLAIM] = TASK_RECLAIM,
		[DISPATCH_GIVE_UP] = TASK_GIVE_UP,
	};
	struct settings *s = current(e);
	const struct dispatch_rules rules = {
		.lease_ms = (int64_t)(s->o.transform_timeout_s +
		    s->o.recovery_margin_s) * 1000,
		.max_attempts = s->o.max_attempts,
	};
	enum session_state state;
	int64_t attempts, attempt = 0;
	struct work w = { 0 };
	enum dispatch_verdict v;
	char version[VERSION_LEN];
	struct task *t;

	settings_drop(s);
	session_peek(doc, &state, &attempts);
	ts_format(doc->update_time, version, sizeof(version));
	v = dispatch_consider(e->dispatch, name, version, state,
	    read_ms - ts_to_ms(doc->update_time), attempts, &rules,
	    now_mono_ms(), &attempt);
	if (v == DISPATCH_WAIT)
		return;
	w.decode_rc = session_decode(doc, &w.s, w.decode_err,
	    sizeof(w.decode_err));
	if (v == DISPATCH_RECLAIM || v == DISPATCH_GIVE_UP)
		atomic_fetch_add(&e->recovered, 1);
	w.reread = session_is_slim(doc);
	w.kind = kinds[v];
	w.attempt = attempt;
	w.experience = from_view && w.decode_rc == 0 ?
	    listen_experience(e->listen, w.s.selected_experience_id) : NULL;
	w.enqueued_ms = now_mono_ms();
	t = xcalloc(1, sizeof(*t));
	t->w = w;
	t->order = order;
	t->lane = lane_of(e, &w);
	runners_enqueue(e->runners, t);
}

/* The Listen supervisor's hooks (listen thread). */

static void
offered(void *arg, const char *name, const FsDocument *doc, int64_t read_ms,
    int64_t order)
{
	consider(arg, name, doc, read_ms, order, true);
}

static void
waiting(void *arg, const char *name)
{
	struct engine *e = arg;

	dispatch_note(e->dispatch, name);
}

static void
looked(void *arg)
{
	struct engine *e = arg;
	size_t taken = dispatch_prune(e->dispatch, listen_in_view, e->listen);

	if (taken > 0) {
		atomic_fetch_add(&e->taken, (unsigned long)taken);
		saw_peer(e);
	}
}

static struct dispatch_turns
turns(void *arg, int64_t now)
{
	struct engine *e = arg;
	struct runners_load load = { 0 };
	double rtt;

	runners_load(e->runners, &load);
	pthread_mutex_lock(&e->lock);
	rtt = e->claim_rtt_ms;
	pthread_mutex_unlock(&e->lock);
	return dispatch_turns(now, atomic_load(&e->peer_ms), rtt,
	    load.claiming + (int)load.queued, load.claim_limit);
}

/* The recovery thread's: a "transforming" session, in the order of its
 * last write. */
static void
found(void *arg, const FsDocument *doc, int64_t read_ms)
{
	consider(arg, doc->name, doc, read_ms, ts_to_ms(doc->update_time),
	    false);
}

static bool
room_for_one(void *arg)
{
	return room(arg, 1);
}

static int
recovery_interval(void *arg)
{
	struct settings *s = current(arg);
	int secs = s->o.recovery_interval_s;

	settings_drop(s);
	return secs;
}

/* ---- the main loop's chores ---- */

/* STATUS= for systemctl status, sent when it changes. */
static void
update_status(struct engine *e, const char *state)
{
	char s[160];

	snprintf(s, sizeof(s), "%s; %d in flight, %lu processed (%lu ready, "
	    "%lu error)", state, running(e), atomic_load(&e->processed),
	    atomic_load(&e->ready), atomic_load(&e->errors));
	if (strcmp(s, e->status) == 0)
		return;
	snprintf(e->status, sizeof(e->status), "%s", s);
	notify_send("STATUS=%s", s);
}

/* Work the main loop does every tick, connected or not. */
static void
tick(void *arg, const char *state)
{
	struct engine *e = arg;

	notify_watchdog();
	if (atomic_exchange(&e->reload, 0) && e->on_reload) {
		struct settings *cur = current(e), *fresh;

		notify_send("RELOADING=1");
		/* a new immutable set, swapped in whole: tasks running keep
		 * the one they started under */
		fresh = e->on_reload(e->reload_arg, cur);
		if (fresh != NULL) {
			pthread_mutex_lock(&e->lock);
			settings_drop(e->current);
			e->current = fresh;
			pthread_mutex_unlock(&e->lock);
		}
		settings_drop(cur);
		notify_send("READY=1");
	}
	if (e->runners != NULL)
		size_lanes(e);	/* the workers' announcement may change */
	update_status(e, state);
}

/* ---- metrics ---- */

/* What a scrape reads of the engine and the pool (metrics.h). */
static void
metrics_source(void *arg, struct metrics_source *out)
{
	struct engine *e = arg;
	struct runners_load load = { 0 };
	struct pool_lane lanes[METRICS_LANES];
	struct listen_stats ls;
	int busy, workers, plugins, hosted, n;

	pool_stats(e->pool, &busy, &workers, &plugins);
	n = pool_lanes(e->pool, lanes, METRICS_LANES, &hosted);
	if (e->runners != NULL)
		runners_load(e->runners, &load);
	listen_stats(e->listen, &ls);
	out->n_lanes = n < METRICS_LANES ? n : METRICS_LANES;
	for (int i = 0; i < out->n_lanes; i++) {
		snprintf(out->lanes[i].plugin, sizeof(out->lanes[i].plugin),
		    "%.63s", lanes[i].plugin);
		out->lanes[i].queued = i + 1 < RUNNERS_LANES_MAX ?
		    (int64_t)load.lane[i + 1].queued : 0;
		out->lanes[i].running = lanes[i].in_flight;
		out->lanes[i].limit = lanes[i].limit;
		out->lanes[i].allowed = lanes[i].allowed;
		out->lanes[i].circuit_open = lanes[i].circuit_open;
		out->lanes[i].paused_s = (double)lanes[i].paused_ms / 1000.0;
		out->lanes[i].ok = lanes[i].n.ok;
		out->lanes[i].rate_limited = lanes[i].n.rate_limited;
		out->lanes[i].unavailable = lanes[i].n.unavailable;
		out->lanes[i].failed = lanes[i].n.failed;
		out->lanes[i].turned_away = lanes[i].n.turned_away;
		out->lanes[i].circuit_opened = lanes[i].n.circuit_opened;
		out->lanes[i].fallbacks = lanes[i].n.fallbacks;
	}
	out->cpu_queued = (int64_t)load.lane[0].queued;
	out->hosted_workers = hosted;
	out->queued = load.queued;
	out->in_flight = load.running;
	out->workers_busy = busy;
	out->workers = workers;
	out->plugins_loaded = plugins;
	out->listen_up = ls.up;
	out->listen_targets_down = ls.targets_down;
	out->listen_last_message_ms = ls.last_message_ms;
	out->listen_reconnects = ls.reconnects;
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
engine_new(struct settings *s, struct fs_client *fs, struct store *st,
    struct pool *pool)
{
	struct engine *e = xcalloc(1, sizeof(*e));
	const struct options *o = &s->o;
	const struct listen_config lc = {
		.fs = fs, .events = (const char *const *)o->events,
		.n_events = o->n_events, .idle_timeout_ms = o->idle_timeout_ms,
		.hooks = { .room = room, .offer = offered, .waiting = waiting,
		    .looked = looked, .turns = turns, .tick = tick, .arg = e },
	};

	e->first = settings_hold(s);
	e->current = settings_hold(s);
	e->opt = o;
	e->fs = fs;
	e->store = st;
	e->pool = pool;
	e->pipeline = (struct pipeline){ .fs = fs, .store = st,
	    .pool = pool, .frames = frames_new(), .may_claim = may_claim,
	    .claimed = claimed,
	    .transformed = transformed, .arg = e, .frozen = &e->frozen };
	pthread_mutex_init(&e->lock, NULL);
	e->dispatch = dispatch_new();
	e->listen = listen_new(&lc);
	e->idle = true;
	return e;
}

void
engine_on_reload(struct engine *e,
    struct settings *(*fn)(void *arg, const struct settings *current),
    void *arg)
{
	e->on_reload = fn;
	e->reload_arg = arg;
}

/* The drain gave up waiting: no more writes, and the workers go. */
static void
abandon(void *arg)
{
	struct engine *e = arg;

	atomic_store(&e->frozen, true);
	pool_abandon(e->pool);
}

int
engine_run(struct engine *e)
{
	const struct runners_config rc = {
		.pipeline = &e->pipeline, .dispatch = e->dispatch,
		.threads = e->opt->firestore_concurrency, .settings = current,
		.outcome = count, .arg = e,
	};
	const struct recovery_config vc = {
		.fs = e->fs, .interval_s = recovery_interval,
		.events = (const char *const *)e->opt->events,
		.n_events = e->opt->n_events, .found = found,
		.room = room_for_one, .arg = e,
	};

	e->runners = runners_start(&rc);
	size_lanes(e);
	e->idle = false;
	e->recovery = recovery_start(&vc);
	log_notice("firesyncd %s: project=%s database=%s%s%s workers=%d "
	    "concurrency=%d storage=%s", PACKAGE_VERSION, fs_project(e->fs),
	    fs_database(e->fs), fs_is_emulator(e->fs) ? " emulator=" : "",
	    fs_is_emulator(e->fs) ? e->opt->emulator : "", e->opt->workers,
	    e->opt->firestore_concurrency, e->store->root);

	if (!e->stop)
		listen_run(e->listen);

	log_notice("shutdown: draining %d running session(s)", running(e));
	notify_send("STOPPING=1");
	update_status(e, "stopping");
	/* queued tasks are dropped and stay "captured" for the next run;
	 * past the drain timeout the runners may write nothing more and
	 * their workers are killed, so those sessions stay "transforming"
	 * for the next daemon's recovery */
	{
		struct settings *s = current(e);

		e->idle = runners_drain(e->runners,
		    (int64_t)s->o.drain_timeout_s * 1000, abandon, e,
		    ABANDON_GRACE_MS);
		settings_drop(s);
	}
	/* after the drain: what a recovery query in flight finds is
	 * dropped, and the query is not waited for past a moment; one still
	 * in a call makes the daemon exit without freeing what it uses */
	if (!recovery_stop(e->recovery, RECOVERY_STOP_WAIT_MS)) {
		log_notice("shutdown: the recovery query is still in a "
		    "Firestore call after %d s; not waiting for it",
		    RECOVERY_STOP_WAIT_MS / 1000);
		e->idle = false;
	}
	e->recovery = NULL;
	log_notice("shutdown: done; processed=%lu ready=%lu error=%lu "
	    "claims=%lu claims_lost=%lu taken_by_others=%lu recovered=%lu",
	    atomic_load(&e->processed), atomic_load(&e->ready),
	    atomic_load(&e->errors), atomic_load(&e->claims),
	    atomic_load(&e->claims_lost), atomic_load(&e->taken),
	    atomic_load(&e->recovered));
	return listen_failed(e->listen) ? 1 : 0;
}

void
engine_stop(struct engine *e)
{
	e->stop = 1;
	listen_stop(e->listen);
}

void
engine_request_reload(struct engine *e)
{
	atomic_store(&e->reload, 1);
}

bool
engine_idle(const struct engine *e)
{
	return e->idle;
}

void
engine_free(struct engine *e)
{
	if (e == NULL)
		return;
	runners_free(e->runners);
	frames_free(e->pipeline.frames);
	listen_free(e->listen);
	dispatch_free(e->dispatch);
	settings_drop(e->current);
	settings_drop(e->first);
	pthread_mutex_destroy(&e->lock);
	free(e);
}
