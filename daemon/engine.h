/*
 * engine.h - the daemon's core: one Listen stream feeding a queue of
 * session jobs that a pool of worker threads runs through the pipeline.
 *
 * The listen thread owns the watch state, the "seen" table (the document
 * version each session was last dispatched at, so the emulator's resends
 * of the whole result set do not dispatch twice) and the stale table
 * (sessions left "transforming" by a daemon that died).  Workers share the
 * queue and the in-flight set under e->lock, and read cached experiences
 * under e->snap_lock.
 */
#ifndef FIRESYNC_ENGINE_H
#define FIRESYNC_ENGINE_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "clock.h"
#include "firestore.h"
#include "options.h"
#include "pool.h"
#include "session.h"
#include "store.h"
#include "strmap.h"
#include "watch.h"

/* Listen target ids: one sessions target for all events, or one per
 * configured event (TARGET_EVENT0 + i), and the experiences cache. */
enum { TARGET_SESSIONS = 1, TARGET_EXPERIENCES = 2, TARGET_EVENT0 = 10 };
#define MAX_EVENTS 32

struct job {
	struct job *next;
	struct session s;	/* decoded document (owned) */
	int decode_rc;		/* session_decode's result */
	char decode_err[256];
	bool recover;		/* found "transforming" and stale */
	int64_t enqueued_ms;	/* monotonic */
};

struct engine {
	const struct options *opt;	/* borrowed */
	struct fs_client *fs;		/* borrowed */
	struct store *store;		/* borrowed */
	struct pool *pool;		/* borrowed: transform workers */

	pthread_mutex_t lock;		/* queue, inflight, forget, listen */
	pthread_cond_t cond;
	struct job *head, *tail;
	struct strmap *inflight;	/* names queued or running */
	struct strmap *forget;		/* names whose "seen" to drop */
	struct fs_listen *listen;	/* current stream, for cancel */
	bool stopping;

	pthread_mutex_t snap_lock;	/* the watch (experience lookups) */
	struct watch watch;
	struct strmap *seen;		/* name -> version string */
	struct strmap *stale;		/* name -> struct stale_entry */

	pthread_t *threads;
	int n_threads;

	atomic_int running;		/* jobs being processed now */
	atomic_int reload;		/* SIGHUP seen, not yet handled */
	void (*on_reload)(struct engine *, void *);	/* main's */
	void *reload_arg;
	char status[160];		/* last STATUS= sent */
	atomic_ulong processed, ready, errors;
	volatile sig_atomic_t stop;
	bool ready_once;		/* first snapshot seen */

	/* our newest landed write (commit time) and when it landed, under
	 * lock: the stream must show it, or it is stuck */
	FsTimestamp wrote_at;
	int64_t wrote_ms;		/* monotonic; 0 = none yet */
};

struct engine *engine_new(const struct options *o, struct fs_client *fs,
    struct store *st, struct pool *pool);
/* Run until engine_stop(); then drain in-flight work.  Returns 0. */
int engine_run(struct engine *e);
/* Ask engine_run to return; safe from any thread. */
void engine_stop(struct engine *e);
/* Ask the main loop to call on_reload soon; safe from any thread. */
void engine_request_reload(struct engine *e);
void engine_free(struct engine *e);
/* A write of ours landed at commit_time (server clock); any thread. */
void engine_wrote(struct engine *e, const FsTimestamp *commit_time);


/* Run one job (pipeline.c); called by worker threads. */
void pipeline_run(struct engine *e, struct job *j);

#endif
