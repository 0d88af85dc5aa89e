/*
 * runners.c - the task queue, the claim slots and the runner threads
 * (runners.h).
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "clock.h"
#include "log.h"
#include "notify.h"
#include "runners.h"
#include "strmap.h"

struct runners {
	struct runners_config c;
	pthread_mutex_t lock;		/* everything below */
	pthread_cond_t cond;
	struct task *head;		/* in order (task.order) */
	size_t queued;			/* tasks waiting for a runner */
	int running;			/* tasks in the pipeline now */
	bool stopping;			/* runners: no more tasks */
	struct {
		size_t queued;
		int claiming;		/* tasks holding a claim slot */
		int claim_limit;
		int running;
		struct strmap *served;	/* event id -> its tasks of this
					   lane in flight (taken, not yet
					   ended) */
	} lane[RUNNERS_LANES_MAX];
	pthread_t *threads;
	int n_threads;
};

void
task_free(struct task *t)
{
	if (t == NULL)
		return;
	work_clear(&t->w);
	free(t);
}

struct task *
task_of(struct work *w)
{
	return (struct task *)(void *)((char *)w - offsetof(struct task, w));
}

/* t no longer needs a claim slot; under r->lock. */
static void
release_locked(struct runners *r, struct task *t)
{
	if (t->holds_slot) {
		t->holds_slot = false;
		r->lane[t->lane].claiming--;
		pthread_cond_broadcast(&r->cond);
	}
}

void
runners_transformed(struct runners *r, struct work *w)
{
	pthread_mutex_lock(&r->lock);
	release_locked(r, task_of(w));
	pthread_mutex_unlock(&r->lock);
}

static const char *
event_id(const struct task *t)
{
	return t->w.s.event_id ? t->w.s.event_id : "";
}

/* Has t's lane a free claim slot?  Under r->lock. */
static bool
lane_open(const struct runners *r, const struct task *t)
{
	return r->lane[t->lane].claiming < r->lane[t->lane].claim_limit;
}

/*
 * Unlink and return the next task, fairly by event within its lane: of
 * the tasks whose lane has a free claim slot, the first in turn order of
 * those whose event has the fewest tasks of that lane in flight (taken,
 * not yet ended).  A 200-guest activation holding every worker leaves
 * the next slot to another event's guest, however the queue filled.
 * NULL if no queued task's lane has room.  Under r->lock.
 */
static struct task *
take_fairly(struct runners *r)
{
	struct task **pp, **best = NULL, *t;
	uintptr_t best_n = 0;

	for (pp = &r->head; *pp != NULL; pp = &(*pp)->next) {
		uintptr_t n;

		if (!lane_open(r, *pp))
			continue;
		n = (uintptr_t)strmap_get(r->lane[(*pp)->lane].served,
		    event_id(*pp));
		if (best == NULL || n < best_n) {
			best = pp;
			best_n = n;
		}
	}
	if (best == NULL)
		return NULL;
	t = *best;
	*best = t->next;
	t->next = NULL;
	strmap_put(r->lane[t->lane].served, event_id(t),
	    (void *)(best_n + 1));
	return t;
}

/* t's run has ended: one task fewer in flight for its event.  Under
 * r->lock. */
static void
ended_locked(struct runners *r, const struct task *t)
{
	struct strmap *served = r->lane[t->lane].served;
	uintptr_t n = (uintptr_t)strmap_get(served, event_id(t));

	if (n <= 1)
		strmap_del(served, event_id(t));
	else
		strmap_put(served, event_id(t), (void *)(n - 1));
}

/* The next task once its lane has a free claim slot; NULL when
 * stopping. */
static struct task *
next_task(struct runners *r)
{
	struct task *t = NULL;

	pthread_mutex_lock(&r->lock);
	while (!r->stopping && (r->head == NULL ||
	    (t = take_fairly(r)) == NULL))
		pthread_cond_wait(&r->cond, &r->lock);
	if (r->stopping) {
		pthread_mutex_unlock(&r->lock);
		return NULL;
	}
	r->queued--;
	r->lane[t->lane].queued--;
	r->lane[t->lane].claiming++;
	r->lane[t->lane].running++;
	r->running++;
	t->holds_slot = true;
	pthread_mutex_unlock(&r->lock);
	return t;
}

static void *
runner_main(void *arg)
{
	struct runners *r = arg;
	struct task *t;

	while ((t = next_task(r)) != NULL) {
		struct settings *s = r->c.settings(r->c.arg);
		enum outcome out = pipeline_run(r->c.pipeline, s, &t->w);

		settings_drop(s);
		if (r->c.outcome != NULL)
			r->c.outcome(r->c.arg, out);
		dispatch_done(r->c.dispatch, t->w.s.name,
		    out == OUTCOME_RETRY);
		pthread_mutex_lock(&r->lock);
		release_locked(r, t);
		ended_locked(r, t);
		r->running--;
		r->lane[t->lane].running--;
		pthread_cond_broadcast(&r->cond);
		pthread_mutex_unlock(&r->lock);
		task_free(t);
	}
	return NULL;
}

struct runners *
runners_start(const struct runners_config *c)
{
	struct runners *r = xcalloc(1, sizeof(*r));

	r->c = *c;
	r->lane[0].claim_limit = 1;
	for (int i = 0; i < RUNNERS_LANES_MAX; i++)
		r->lane[i].served = strmap_new();
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	runners_ensure_threads(r, c->threads);
	return r;
}

void
runners_ensure_threads(struct runners *r, int n)
{
	pthread_mutex_lock(&r->lock);
	if (n > r->n_threads && !r->stopping) {
		r->threads = xrealloc(r->threads, (size_t)n *
		    sizeof(*r->threads));
		while (r->n_threads < n) {
			if (pthread_create(&r->threads[r->n_threads], NULL,
			    runner_main, r) != 0)
				fatal("cannot start a runner thread: out of "
				    "resources");
			r->n_threads++;
		}
	}
	pthread_mutex_unlock(&r->lock);
}

bool
runners_enqueue(struct runners *r, struct task *t)
{
	struct task **pp;

	if (t->lane < 0 || t->lane >= RUNNERS_LANES_MAX)
		t->lane = 0;
	pthread_mutex_lock(&r->lock);
	if (r->stopping) {	/* the recovery thread, during a drain */
		pthread_mutex_unlock(&r->lock);
		dispatch_done(r->c.dispatch, t->w.s.name, false);
		task_free(t);
		return false;
	}
	for (pp = &r->head; *pp && (*pp)->order <= t->order; pp = &(*pp)->next)
		;
	t->next = *pp;
	*pp = t;
	r->queued++;
	r->lane[t->lane].queued++;
	/* several lanes: the runner that wakes must be free to take it */
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return true;
}

bool
runners_have_room(struct runners *r, size_t n)
{
	bool room;

	pthread_mutex_lock(&r->lock);
	room = r->queued + n <= RUNNERS_QUEUE_MAX;
	pthread_mutex_unlock(&r->lock);
	return room;
}

void
runners_set_claim_limit(struct runners *r, int lane, int limit)
{
	if (lane < 0 || lane >= RUNNERS_LANES_MAX)
		return;
	pthread_mutex_lock(&r->lock);
	r->lane[lane].claim_limit = limit > 0 ? limit : lane == 0 ? 1 : 0;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

void
runners_load(struct runners *r, struct runners_load *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&r->lock);
	out->queued = r->queued;
	out->running = r->running;
	for (int i = 0; i < RUNNERS_LANES_MAX; i++) {
		out->lane[i].queued = r->lane[i].queued;
		out->lane[i].claiming = r->lane[i].claiming;
		out->lane[i].running = r->lane[i].running;
		out->lane[i].claim_limit = r->lane[i].claim_limit;
		out->claiming += r->lane[i].claiming;
		out->claim_limit += r->lane[i].claim_limit;
	}
	pthread_mutex_unlock(&r->lock);
}

/* Wait until no task runs or until end (monotonic ms); still running. */
static int
wait_running(struct runners *r, int64_t end)
{
	int left;

	pthread_mutex_lock(&r->lock);
	while (r->running > 0 && now_mono_ms() < end) {
		struct timespec ts = realtime_in_ms(100);

		pthread_cond_timedwait(&r->cond, &r->lock, &ts);
		notify_watchdog();
	}
	left = r->running;
	pthread_mutex_unlock(&r->lock);
	return left;
}

bool
runners_drain(struct runners *r, int64_t timeout_ms,
    void (*abandon)(void *arg), void *arg, int64_t grace_ms)
{
	struct task *t, *next;
	int left;

	pthread_mutex_lock(&r->lock);
	for (t = r->head; t; t = next) {
		next = t->next;
		dispatch_done(r->c.dispatch, t->w.s.name, false);
		task_free(t);
	}
	r->head = NULL;
	r->queued = 0;
	for (int i = 0; i < RUNNERS_LANES_MAX; i++)
		r->lane[i].queued = 0;
	r->stopping = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	if ((left = wait_running(r, now_mono_ms() + timeout_ms)) > 0) {
		log_warn("shutdown: %d session(s) still running after %" PRId64
		    " s; leaving them 'transforming' to interrupted-work "
		    "recovery", left, timeout_ms / 1000);
		abandon(arg);
		left = wait_running(r, now_mono_ms() + grace_ms);
	}
	if (left > 0)
		return false;	/* stuck in a call: the caller _exit()s */
	for (int i = 0; i < r->n_threads; i++)
		pthread_join(r->threads[i], NULL);
	r->n_threads = 0;
	return true;
}

void
runners_free(struct runners *r)
{
	if (r == NULL)
		return;
	free(r->threads);
	for (int i = 0; i < RUNNERS_LANES_MAX; i++)
		strmap_free(r->lane[i].served, NULL);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r);
}
