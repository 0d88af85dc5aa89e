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
	int claiming;			/* tasks holding a claim slot */
	int claim_limit;
	int running;			/* tasks in the pipeline now */
	bool stopping;			/* runners: no more tasks */
	struct strmap *served;		/* event id -> its tasks in flight
					   (taken, not yet ended) */
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
		r->claiming--;
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

/*
 * Unlink and return the next task, fairly by event: the first in turn
 * order of the events with the fewest tasks in flight (taken, not yet
 * ended).  A 200-guest activation holding every worker leaves the next
 * slot to another event's guest, however the queue filled.  Under
 * r->lock; the queue is not empty.
 */
static struct task *
take_fairly(struct runners *r)
{
	struct task **pp, **best = NULL, *t;
	uintptr_t best_n = 0;

	for (pp = &r->head; *pp != NULL; pp = &(*pp)->next) {
		uintptr_t n = (uintptr_t)strmap_get(r->served,
		    event_id(*pp));

		if (best == NULL || n < best_n) {
			best = pp;
			best_n = n;
		}
	}
	t = *best;
	*best = t->next;
	t->next = NULL;
	strmap_put(r->served, event_id(t), (void *)(best_n + 1));
	return t;
}

/* t's run has ended: one task fewer in flight for its event.  Under
 * r->lock. */
static void
ended_locked(struct runners *r, const struct task *t)
{
	uintptr_t n = (uintptr_t)strmap_get(r->served, event_id(t));

	if (n <= 1)
		strmap_del(r->served, event_id(t));
	else
		strmap_put(r->served, event_id(t), (void *)(n - 1));
}

/* The next task once a claim slot is free; NULL when stopping. */
static struct task *
next_task(struct runners *r)
{
	struct task *t;

	pthread_mutex_lock(&r->lock);
	while ((r->head == NULL || r->claiming >= r->claim_limit) &&
	    !r->stopping)
		pthread_cond_wait(&r->cond, &r->lock);
	if (r->stopping) {
		pthread_mutex_unlock(&r->lock);
		return NULL;
	}
	t = take_fairly(r);
	r->queued--;
	r->claiming++;
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
	r->claim_limit = 1;
	r->served = strmap_new();
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	r->threads = xcalloc((size_t)c->threads, sizeof(*r->threads));
	for (int i = 0; i < c->threads; i++) {
		if (pthread_create(&r->threads[i], NULL, runner_main, r) != 0)
			fatal("cannot start a runner thread: out of resources");
		r->n_threads++;
	}
	return r;
}

bool
runners_enqueue(struct runners *r, struct task *t)
{
	struct task **pp;

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
	pthread_cond_signal(&r->cond);
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
runners_set_claim_limit(struct runners *r, int limit)
{
	pthread_mutex_lock(&r->lock);
	r->claim_limit = limit > 0 ? limit : 1;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

void
runners_load(struct runners *r, struct runners_load *out)
{
	pthread_mutex_lock(&r->lock);
	out->queued = r->queued;
	out->claiming = r->claiming;
	out->running = r->running;
	out->claim_limit = r->claim_limit;
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
	strmap_free(r->served, NULL);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r);
}
