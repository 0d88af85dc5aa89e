/*
 * metrics.h - what firesyncd counts and measures, for the Prometheus
 * endpoint ([metrics] listen) and firesyncctl status.
 *
 * Updated from any thread; one short-held mutex guards the labelled
 * series and histograms, and rendering copies them out under it, so a
 * scrape never holds up a session for longer than a memcpy.  Label values
 * are bounded: model and plugin names are cut to [A-Za-z0-9._-] and at
 * most METRICS_MAX_NAMES distinct values (then "other"); error reasons
 * come from a fixed list.  No session id or free text is ever a label.
 */
#ifndef FIRESYNC_METRICS_H
#define FIRESYNC_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_NAMES 32

/* Why a session ended in error: a short, fixed set of label values. */
enum metrics_reason {
	REASON_INVALID_SESSION,		/* the document did not decode */
	REASON_NO_EXPERIENCE,		/* missing, unknown or malformed */
	REASON_EXPERIENCE_READ,		/* Firestore did not answer */
	REASON_NO_INPUT,		/* the capture is not in storage */
	REASON_INPUT_REFUSED,		/* an inputImagePath not ours */
	REASON_INPUT_TOO_LARGE,
	REASON_STORAGE_READ,
	REASON_STORAGE_WRITE,
	REASON_NO_PLUGIN,		/* no plugin serves the model */
	REASON_BAD_IMAGE,		/* the photo or a reference is unusable */
	REASON_PLUGIN_ERROR,		/* the plugin said it failed */
	REASON_BAD_RESULT,		/* the plugin's result is unusable */
	REASON_IMAGE_TOO_LARGE,
	REASON_TIMEOUT,			/* the transform's deadline */
	REASON_CRASH,			/* the worker died */
	REASON_WORKER,			/* the worker could not be reached */
	REASON_INTERRUPTED,		/* out of attempts after interruptions */
	REASON_UNAVAILABLE,		/* the hosted service turned the call
					   away (circuit open, paused) */
	REASON_BUDGET,			/* the event's hosted-call limit */
	REASON_N
};

/* Gauges and counters the engine and the pool keep themselves, read at
 * each scrape through the callback set with metrics_set_source. */
#define METRICS_LANES	16	/* remote plugins shown */

struct metrics_source {
	int64_t in_flight, queued;
	int64_t workers_busy, workers;
	int64_t cpu_queued;		/* CPU-look sessions queued */
	struct {
		char plugin[64];
		int64_t queued;		/* sessions queued for its lane */
		int64_t running;	/* calls in flight */
		int64_t limit;		/* its calls setting */
		int64_t allowed;	/* calls at once now */
		bool circuit_open;
		double paused_s;	/* no call starts for this long */
		/* the service's answers */
		uint64_t ok, rate_limited, unavailable, failed;
		uint64_t turned_away, circuit_opened, fallbacks;
	} lanes[METRICS_LANES];		/* remote plugins (hosted calls) */
	int n_lanes;
	int64_t hosted_workers;		/* hosted-call worker processes */
	int64_t plugins_loaded;
	bool listen_up;
	int64_t listen_targets_down;
	int64_t listen_last_message_ms;	/* monotonic; 0: never */
	uint64_t listen_reconnects;
	uint64_t claims, claims_lost, taken_by_others, recovered;
};

void metrics_init(const char *version);
void metrics_set_source(void (*fn)(void *arg, struct metrics_source *out),
    void *arg);

/* A session this daemon finished: ready, or error for reason.
 * capture_to_finish_s is from its capture (the captured version's
 * update time) to our finish commit, both Firestore's clock; < 0 if
 * unknown. */
void metrics_session_ready(const char *model, double capture_to_finish_s);
void metrics_session_error(const char *model, enum metrics_reason reason);
/* A transform that ran on a worker (whatever its outcome). */
void metrics_transform(const char *model, double seconds);
/* A Firestore commit's round trip (claims and finishes). */
void metrics_commit(double seconds);
/*
 * A session's hosted call to model for event: requests sent to the
 * service (retries included), the tokens it reported, whether it made the
 * image (image) or the guest got the fallback look (fallback), and the
 * price of one call of model (USD; < 0: none set) for the spend estimate.
 */
void metrics_hosted(const char *model, const char *event, int requests,
    uint64_t input_tokens, uint64_t output_tokens, bool image, bool fallback,
    double price);
/* An event's hosted-call count as a call took its unit (or was turned
 * away), of its limit. */
void metrics_budget(const char *event, int64_t count, int64_t limit);
/* A worker that crashed or was killed at the deadline, by plugin. */
void metrics_worker_crash(const char *plugin);
void metrics_worker_timeout(const char *plugin);

/* The Prometheus text exposition (format 0.0.4); malloc'd. */
char *metrics_render(size_t *len);

#endif
