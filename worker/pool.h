/*
 * pool.h - a pool of firesync-worker processes that run transforms.
 *
 * pool_transform() hands one job to an idle worker and waits for the
 * result until the deadline.  A worker that overruns it is killed; one
 * that dies (a plugin crash) is reaped and the session gets a message
 * naming the plugin and the signal; either way a fresh worker takes its
 * place on the next job.  Workers are recycled after max_jobs jobs so a
 * plugin that leaks cannot grow without bound.  Thread-safe.
 */
#ifndef FIRESYNC_POOL_H
#define FIRESYNC_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pool_options {
	const char *worker_path;	/* firesync-worker */
	const char *plugin_dir;
	const char *config_path;	/* for [plugin.NAME]; may be NULL */
	int workers;
	int64_t timeout_ms;
	int memory_mb;			/* per worker address space */
	int max_jobs;			/* recycle after this many */
	uint64_t max_pixels;
	int log_level;
};

struct pool_job {
	bool ai;			/* run model; else passthrough */
	const char *model;
	const char *prompt;
	const char *aspect_ratio;
	const char *session_id;
	const char *event_id;
	const uint8_t *input;
	size_t input_len;
	const uint8_t *const *refs;	/* reference images' bytes */
	const size_t *ref_lens;
	size_t n_refs;
};

struct pool;

/*
 * Start the pool: spawns the first worker (which logs what plugins it
 * loaded) and checks it says hello.  Returns NULL with err on failure.
 */
struct pool *pool_new(const struct pool_options *o, char *err,
    size_t errlen);
/* Stop every worker and free the pool. */
void pool_free(struct pool *p);

/*
 * Run job.  Returns 0 with the PNG in *png (malloc'd, caller frees) and
 * the plugin that made it in plugin (may be ""), or -errno with a reason
 * fit for the guest in err: -ENOENT no plugin for the model, -ETIMEDOUT,
 * -ECHILD plugin crashed, -EINVAL bad input or result, -E2BIG over the
 * pixel limit, -EIO the worker failed.
 */
int pool_transform(struct pool *p, const struct pool_job *job,
    uint8_t **png, size_t *pnglen, char *plugin, size_t pluginlen,
    char *err, size_t errlen);

/*
 * New settings (plugin directory, configuration, limits): idle workers
 * stop now and busy ones after their job, so the next job runs on a
 * worker that loaded the plugins afresh.  In-flight work is not lost.
 */
void pool_reconfigure(struct pool *p, const struct pool_options *o);

/*
 * Shutting down without waiting: kill every worker now (the jobs they run
 * fail at once) and start no new one.  Thread-safe; pool_free still frees.
 */
void pool_abandon(struct pool *p);

/* The plugin serving model according to the workers, copied into plugin;
 * false if none does. */
bool pool_plugin_for(struct pool *p, const char *model, char *plugin,
    size_t pluginlen);

/*
 * Where firesync-worker is: $FIRESYNC_WORKER, else beside the running
 * executable, else the installed path.  Returns a malloc'd path.
 */
char *pool_find_worker(void);

/* Workers busy with a job, workers in all, and plugins the workers
 * loaded (from the first hello), for the metrics. */
void pool_stats(struct pool *p, int *busy, int *workers, int *plugins);

/*
 * Run the worker in a reporting mode: "--list" (what loads and why others
 * do not, on stdout) or "--check-config" (the [plugin.NAME] settings no
 * plugin reads, as FILE:LINE warnings on stderr).  Its exit status.
 */
int pool_worker_report(const char *worker_path, const char *plugin_dir,
    const char *config_path, const char *mode);

#endif
