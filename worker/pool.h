/*
 * pool.h - a pool of firesync-worker processes that run transforms.
 *
 * Two kinds of work, neither waiting for the other's room.  A CPU look
 * runs on one of `workers` CPU workers, one job each.  A model of a
 * remote plugin (FIRESYNC_PLUGIN_REMOTE: a hosted model, whose call
 * waits on a service) runs on a hosted-call worker, up to
 * POOL_CALLS_PER_WORKER calls per process, a thread each; each remote
 * plugin has a lane of its own holding up to its `calls` setting at once.
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

#define POOL_MAX_RENDITIONS	6	/* WIRE_MAX_RENDITIONS */

enum pool_format {
	POOL_FORMAT_JPEG = 1, POOL_FORMAT_PNG = 2, POOL_FORMAT_WEBP = 3
};

/* A format's file extension and content type. */
const char *pool_format_ext(enum pool_format f);
const char *pool_format_type(enum pool_format f);

/* A copy of the result in another size and format (finish.h). */
struct pool_rendition {
	char name[32];		/* [a-z0-9_-]: the file's name */
	uint32_t width;		/* WxH exactly, or with height 0 the */
	uint32_t height;	/* longest side at most width */
	enum pool_format format;
	int quality;		/* JPEG and WebP, 1-100 */
	uint32_t dpi;		/* 0: none written */
};

/*
 * A rendition as configured: NAME:SIZE[:FORMAT][@DPI], SIZE N (the
 * longest side) or WxH (exactly), FORMAT jpeg (the default), png or webp,
 * DPI a resolution to write ("300" or "300dpi"; JPEG and PNG).  NULL, or why not (in buf).
 */
const char *pool_rendition_parse(const char *spec, struct pool_rendition *r,
    char *buf, size_t len);

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
	/* this job's limits; 0: the pool's (pool_options) */
	int64_t timeout_ms;
	uint64_t max_pixels;
	bool no_fallback;		/* fail rather than run the model's
					   fallback look */
	/* after the model: the event's frame (PNG bytes; NULL: none), a cap
	 * on the result's pixels (0: none), and the renditions to make */
	const uint8_t *frame;
	size_t frame_len;
	uint64_t max_result_pixels;
	const struct pool_rendition *renditions;
	size_t n_renditions;
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

/* How a job ended. */
enum pool_status {
	POOL_OK = 0,
	POOL_NO_PLUGIN,		/* no plugin serves the model */
	POOL_BAD_INPUT,		/* the photo, a reference or a parameter is
				   unusable */
	POOL_TOO_LARGE,		/* over the pixel limit */
	POOL_PLUGIN_ERROR,	/* the plugin said it failed */
	POOL_BAD_RESULT,	/* the plugin returned something unusable */
	POOL_TIMEOUT,		/* the deadline: killed, or the plugin gave
				   up at it */
	POOL_CRASH,		/* the worker died during the job */
	POOL_WORKER,		/* no worker could be started or reached, or
				   it misbehaved */
	POOL_UNAVAILABLE,	/* the hosted service is turning calls away
				   (its circuit is open, or it asked for a
				   pause past the deadline): not sent */
	POOL_STATUS_N
};

#define POOL_NAME_LEN	64	/* a plugin's or model's name, and NUL */
#define POOL_MAX_REFS	8	/* reference images one job may carry */
#define POOL_LANES_MAX	16	/* remote plugins with a lane */
#define POOL_CALLS_PER_WORKER	16	/* calls one hosted-call worker runs */
#define POOL_HOSTED_WORKERS_MAX	64	/* hosted-call worker processes */

struct pool_result {
	enum pool_status status;
	uint8_t *png;			/* POOL_OK: malloc'd, caller frees */
	size_t png_len;
	/* the plugin that ran the job, or for a worker that died or was
	 * killed the one serving the model; "" for none (not an AI job, or
	 * no plugin serves the model) */
	char plugin[POOL_NAME_LEN];
	char message[512];		/* not OK: why, fit for the guest */
	/* a hosted call: requests sent to the service (retries included;
	 * 0: it never reached it), the tokens it reported, and whether the
	 * result is the plugin's fallback look, run because of why */
	int requests;
	uint64_t input_tokens, output_tokens;
	uint32_t service;		/* FIRESYNC_SERVICE_*: the service's
					   word on the last failure */
	bool fallback;
	char fallback_why[160];
	char model[POOL_NAME_LEN];	/* the model that made the result */
	/* POOL_OK: the job's renditions, in order (malloc'd), and what
	 * became of its frame: applied, or why not (the result went out
	 * without it) */
	uint8_t *rendition[POOL_MAX_RENDITIONS];
	size_t rendition_len[POOL_MAX_RENDITIONS];
	bool framed;
	char frame_note[256];
};

/* Free a result's buffers (png and renditions). */
void pool_result_free(struct pool_result *out);

/*
 * Run job; out is filled (its png is the caller's to free) and its status
 * returned.
 */
enum pool_status pool_transform(struct pool *p, const struct pool_job *job,
    struct pool_result *out);
/* A status as a short name ("plugin_error"), for logs and tests. */
const char *pool_status_name(enum pool_status st);

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
 * The lane model's calls run in: 0 for the CPU workers (a CPU look, or a
 * model no plugin serves), i + 1 for remote plugin lane i.  Lanes are
 * numbered from the first hello and never renumbered.
 */
int pool_model_lane(struct pool *p, const char *model);

/* What a remote plugin's service did, since the pool started. */
struct pool_provider_stats {
	uint64_t requests;	/* sent to the service */
	uint64_t ok;		/* answered with an image */
	uint64_t rate_limited;	/* 429 */
	uint64_t unavailable;	/* 5xx, unreachable, no answer in time */
	uint64_t failed;	/* other failures (refusals, rejections) */
	uint64_t turned_away;	/* not sent: circuit open, or paused past
				   the deadline */
	uint64_t circuit_opened;
	uint64_t fallbacks;	/* guests given the fallback look */
};

/* A remote plugin's lane, for the metrics and the claim slots. */
struct pool_lane {
	char plugin[POOL_NAME_LEN];
	int limit;		/* its calls setting */
	int allowed;		/* calls at once now (lower after 429s) */
	int in_flight;		/* calls running */
	int waiting;		/* calls waiting for room in the lane */
	bool circuit_open;	/* calls turned away but for probes */
	int64_t paused_ms;	/* no call starts for this long */
	char fallback[POOL_NAME_LEN];
	struct pool_provider_stats n;
};
/*
 * The fallback look of model's plugin (a CPU model; "" if none or model
 * is not a remote plugin's), copied into out; false if none.
 */
bool pool_fallback_for(struct pool *p, const char *model, char *out,
    size_t outlen);

/* Up to max lanes into out (lane i + 1 is out[i]); how many there are.
 * hosted_workers, if not NULL: hosted-call worker processes running. */
int pool_lanes(struct pool *p, struct pool_lane *out, int max,
    int *hosted_workers);

/*
 * Run the worker in a reporting mode: "--list" (what loads and why others
 * do not, on stdout) or "--check-config" (the [plugin.NAME] settings no
 * plugin reads, as FILE:LINE warnings on stderr).  Its exit status.
 */
int pool_worker_report(const char *worker_path, const char *plugin_dir,
    const char *config_path, const char *mode);

#endif
