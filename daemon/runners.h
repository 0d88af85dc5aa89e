/*
 * runners.h - the task queue and the runner threads that take each task
 * through the pipeline (pipeline.h).
 *
 * Tasks wait in turn order, each in a lane: lane 0 for the CPU looks,
 * lane i for the calls of remote plugin i (a hosted model), so neither
 * kind waits for the other's room.  A runner takes the next task whose
 * lane has a free claim slot, fairly by event within the lane (the first
 * in turn order of the events with the fewest tasks of that lane in
 * flight), so one event's burst never holds back another event's next
 * guest: at most a lane's claim limit of its tasks are between their
 * claim and the end of their transform (the claim round trip overlaps
 * the transform before it, yet a busy daemon does not take sessions an
 * idle one could start at once), while the other runners write finishes.
 * A task holds its slot from the moment a runner takes it until the
 * pipeline says it no longer needs a worker (runners_transformed) or its
 * run ends.
 *
 * Thread-safe: the listen and recovery threads enqueue, runner threads
 * run, the engine drains.
 */
#ifndef FIRESYNC_RUNNERS_H
#define FIRESYNC_RUNNERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dispatch.h"
#include "pipeline.h"

/* One session waiting for, or in, a runner. */
struct task {
	struct task *next;	/* the queue */
	struct work w;		/* what the pipeline runs */
	int64_t order;		/* queue position: capture time (server ms)
				   plus this daemon's turn delay */
	int lane;		/* 0: a CPU look (or not known yet); i: the
				   calls of remote plugin lane i */
	bool holds_slot;	/* counts against its lane's claim slots */
};

/* Free a task and what it owns; NULL is a no-op. */
void task_free(struct task *t);

/* The task whose work w is (w points into a struct task). */
struct task *task_of(struct work *w);

struct runners_config {
	struct pipeline *pipeline;	/* borrowed; its transformed hook
					   must reach runners_transformed */
	struct dispatch *dispatch;	/* borrowed: runs that end are done */
	int threads;			/* runner threads */
	/* the settings a task starts under: a held reference, dropped
	 * when its run ends */
	struct settings *(*settings)(void *arg);
	/* what became of each run (a runner thread); may be NULL */
	void (*outcome)(void *arg, enum outcome out);
	void *arg;
};

struct runners;

/* Start the runner threads (fatal if the system cannot). */
struct runners *runners_start(const struct runners_config *c);

/*
 * Queue t in order (ties: first come first); the queue takes it.  During
 * a drain the task is dropped (its session stays as it is for the next
 * look) and false returned.
 */
bool runners_enqueue(struct runners *r, struct task *t);

/* Room for n more tasks in the queue (RUNNERS_QUEUE_MAX in all)? */
bool runners_have_room(struct runners *r, size_t n);

/* Tasks queued, in turn order, beyond those running; the rest of a
 * backlog waits in the snapshot (slim, as a name and a version). */
#define RUNNERS_QUEUE_MAX	256

/* Lanes: 0 for the CPU looks, then one per remote plugin. */
#define RUNNERS_LANES_MAX	17

/* How many claim slots lane has: its sessions between claim and
 * transform end.  Set before any run, and again when it changes (0: the
 * lane's tasks wait). */
void runners_set_claim_limit(struct runners *r, int lane, int limit);

/* At least n runner threads (fatal if the system cannot start them). */
void runners_ensure_threads(struct runners *r, int n);

/* The queue's load, for turn spreading and the metrics: in all, and by
 * lane. */
struct runners_lane_load {
	size_t queued;
	int claiming;
	int running;
	int claim_limit;
};
struct runners_load {
	size_t queued;		/* waiting for a runner */
	int claiming;		/* holding a claim slot */
	int running;		/* in the pipeline now */
	int claim_limit;	/* all lanes' */
	struct runners_lane_load lane[RUNNERS_LANES_MAX];
};
void runners_load(struct runners *r, struct runners_load *out);

/* The pipeline's transformed hook: w's task needs no worker any more. */
void runners_transformed(struct runners *r, struct work *w);

/*
 * Drop the queued tasks and wait up to timeout_ms for the running ones.
 * If some are still running then, abandon(arg) is called (the caller
 * forbids further writes and kills their workers) and they get grace_ms
 * more to notice.  Returns true once every runner has ended (they are
 * joined); false if one is still inside a call it could not be pulled
 * out of, in which case nothing it uses may be freed.
 */
bool runners_drain(struct runners *r, int64_t timeout_ms,
    void (*abandon)(void *arg), void *arg, int64_t grace_ms);

/* Free runners that drained (runners_drain returned true). */
void runners_free(struct runners *r);

#endif
