/*
 * engine.h - the daemon's core: one Listen stream on captured sessions
 * whose snapshots are handed to dispatch (dispatch.h), which decides what
 * becomes a task; a recovery thread whose periodic query finds
 * interrupted sessions; a queue of tasks, in turn order, that runner
 * threads take through the pipeline (pipeline.h) while claim slots bound
 * how many sessions are claimed ahead of the workers; systemd
 * notification and reloads on the main loop.
 *
 * The thread calling engine_run owns the Listen stream and its watch
 * state (the session targets and the experiences cache), so no other
 * thread reads it: a task gets a reference to a shared copy of the
 * experience its session needs at dispatch.
 */
#ifndef FIRESYNC_ENGINE_H
#define FIRESYNC_ENGINE_H

#include <stdbool.h>

#include "firestore.h"
#include "options.h"
#include "pool.h"
#include "store.h"

struct engine;

struct engine *engine_new(const struct options *o, struct fs_client *fs,
    struct store *st, struct pool *pool);
/* Call fn(arg) on the main loop after engine_request_reload(). */
void engine_on_reload(struct engine *e, void (*fn)(void *), void *arg);
/* Run until engine_stop(); then drain in-flight work.  Returns 0. */
int engine_run(struct engine *e);
/* Ask engine_run to return; safe from any thread. */
void engine_stop(struct engine *e);
/* Ask the main loop to reload soon; safe from any thread. */
void engine_request_reload(struct engine *e);
/*
 * After engine_run: false if a runner thread is still inside a call it
 * could not be pulled out of in time.  Then nothing it uses (the engine,
 * the pool, the Firestore client, storage) may be freed: the caller exits
 * with _exit().
 */
bool engine_idle(const struct engine *e);
/* Free an idle engine. */
void engine_free(struct engine *e);
/* Let the metrics read this engine's gauges and counters (on), or stop
 * (off: before engine_free, once nothing can scrape). */
void engine_metrics_attach(struct engine *e, bool on);

#endif
