/*
 * pipeline.h - one session, start to finish: claim, resolve the
 * experience, read the capture, transform in a worker process, store the
 * result, finish.
 *
 * The runner threads (runners.h) call pipeline_run with one task's work
 * each.  The pipeline sees only its context (the Firestore client,
 * storage, the worker pool, three hooks into the engine and the
 * shutdown's frozen flag), the work and the settings it runs under, which
 * stay the same for the whole run whatever a reload does, and returns an
 * outcome for
 * the engine to count; it knows nothing of the Listen stream or the
 * queue.
 *
 * Every write goes through an update mask naming only our fields (state,
 * updatedAt, resultImagePath, error, transformAttempts) and carries an
 * update_time precondition, so a guest's or another daemon's newer write
 * always wins and is never overwritten.
 */
#ifndef FIRESYNC_PIPELINE_H
#define FIRESYNC_PIPELINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "firestore.h"
#include "options.h"
#include "pool.h"
#include "session.h"
#include "store.h"
#include "value.h"

struct work;

struct frames;

struct pipeline {
	struct fs_client *fs;
	struct store *store;
	struct pool *pool;
	struct frames *frames;	/* events' frames, kept (frames.h) */
	/* Hooks into the engine, called from runner threads with arg:
	 * may_claim: the claim for w is about to be sent; false drops it
	 *   unsent (OUTCOME_WITHDRAWN).  NULL: always send.
	 * claimed: a claim landed at commit_time (server clock) after
	 *   rtt_ms; the Listen stream must show the session leave.
	 * transformed: w no longer needs a worker (its transform is over,
	 *   or it never gets one); called at most once per run. */
	bool (*may_claim)(void *arg, const struct work *w);
	void (*claimed)(void *arg, const FsTimestamp *commit_time,
	    int64_t rtt_ms);
	void (*transformed)(void *arg, struct work *w);
	void *arg;
	/* Set when a shutdown gave up waiting: write nothing more, so the
	 * session stays "transforming" for the next daemon's recovery. */
	const atomic_bool *frozen;
};

enum task_kind {
	TASK_CLAIM,		/* a captured session */
	TASK_RECLAIM,		/* an interrupted one, run again */
	TASK_GIVE_UP,		/* an interrupted one out of attempts */
};

/* What the pipeline needs to take one session through: a task's work
 * (runners.h). */
struct work {
	struct session s;	/* decoded document (owned) */
	int decode_rc;		/* session_decode's result */
	char decode_err[256];
	enum task_kind kind;
	int64_t attempt;	/* this run's number (GIVE_UP: runs made) */
	struct experience_ref *experience; /* from the Listen cache,
				   decoded (a reference held), or NULL: the
				   pipeline reads it */
	bool reread;		/* the cache held the session slim: the
				   pipeline reads it whole first */
	int64_t enqueued_ms;	/* monotonic */
};

enum outcome {
	OUTCOME_IGNORED,	/* not a session of ours */
	OUTCOME_CLAIM_LOST,	/* someone else changed it first */
	OUTCOME_WITHDRAWN,	/* it left the captured view before our
				   claim was sent: not sent */
	OUTCOME_RETRY,		/* the claim failed without a verdict: try
				   again at the same version */
	OUTCOME_REFUSED,	/* Firestore refused our writes for good:
				   not again until the session changes */
	OUTCOME_READY,		/* finished ready */
	OUTCOME_ERROR,		/* finished error */
	OUTCOME_DROPPED,	/* the result lost to someone else's write */
	OUTCOME_UNRECORDED,	/* the finish never landed; recovery re-runs
				   it */
};

/* Run w under settings (held by the caller for the run); w stays the
 * caller's. */
enum outcome pipeline_run(const struct pipeline *p,
    const struct settings *settings, struct work *w);

/* Free what w owns. */
void work_clear(struct work *w);

#endif
