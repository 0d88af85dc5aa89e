/*
 * engine.h - the daemon's core, as wiring: the Listen supervisor
 * (listen.h) and the recovery thread (recovery.h) find sessions,
 * dispatch (dispatch.h) decides which become tasks and when, the runners
 * (runners.h) take them through the pipeline (pipeline.h); the engine
 * turns what it is offered into tasks, counts what becomes of them, and
 * does the main loop's chores (systemd notification, status, reloads).
 *
 * The thread calling engine_run runs the Listen supervisor.
 */
#ifndef FIRESYNC_ENGINE_H
#define FIRESYNC_ENGINE_H

#include <stdbool.h>

#include "firestore.h"
#include "options.h"
#include "pool.h"
#include "store.h"

struct engine;

/* The engine holds a reference to s, the settings at start. */
struct engine *engine_new(struct settings *s, struct fs_client *fs,
    struct store *st, struct pool *pool);
/*
 * After engine_request_reload(), on the main loop: fn(arg, current)
 * returns new settings (a reference the engine takes), which new tasks
 * start under; or NULL to keep the current ones.
 */
void engine_on_reload(struct engine *e,
    struct settings *(*fn)(void *arg, const struct settings *current),
    void *arg);
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
