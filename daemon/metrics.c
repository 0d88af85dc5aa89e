/*
 * metrics.c - counters, histograms and their Prometheus text (metrics.h).
 */
#include "config.h"

#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "metrics.h"

static const char *const reason_names[REASON_N] = {
	[REASON_INVALID_SESSION] = "invalid_session",
	[REASON_NO_EXPERIENCE] = "no_experience",
	[REASON_EXPERIENCE_READ] = "experience_read",
	[REASON_NO_INPUT] = "no_input",
	[REASON_INPUT_REFUSED] = "input_refused",
	[REASON_INPUT_TOO_LARGE] = "input_too_large",
	[REASON_STORAGE_READ] = "storage_read",
	[REASON_STORAGE_WRITE] = "storage_write",
	[REASON_NO_PLUGIN] = "no_plugin",
	[REASON_BAD_IMAGE] = "bad_image",
	[REASON_PLUGIN_ERROR] = "plugin_error",
	[REASON_BAD_RESULT] = "bad_result",
	[REASON_IMAGE_TOO_LARGE] = "image_too_large",
	[REASON_TIMEOUT] = "timeout",
	[REASON_CRASH] = "crash",
	[REASON_WORKER] = "worker",
	[REASON_INTERRUPTED] = "interrupted",
	[REASON_UNAVAILABLE] = "unavailable",
	[REASON_BUDGET] = "budget",
};

/* Upper bounds, seconds; +Inf is implied. */
static const double latency_b[] = { 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60,
    120, 300 };
static const double transform_b[] = { 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10,
    20, 45, 90 };
static const double commit_b[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1, 2.5, 5 };
#define NB(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_BUCKETS 16

struct histogram {
	uint64_t counts[MAX_BUCKETS + 1];	/* per bucket, not cumulative;
						   the last is +Inf */
	double sum;
	uint64_t n;
};

/* A bounded table of label values. */
struct names {
	char v[METRICS_MAX_NAMES][64];
	size_t n;
};

/* One minute of the last hour, for firesyncctl status. */
#define WINDOW_MIN 60
struct minute {
	int64_t index;			/* minutes since the epoch */
	uint64_t ready, error;
	struct histogram latency;
	uint32_t errors_by_model[METRICS_MAX_NAMES + 1];
};

static struct {
	pthread_mutex_t lock;
	char version[64];
	struct names models, plugins;
	uint64_t ready[METRICS_MAX_NAMES + 1], error[METRICS_MAX_NAMES + 1];
	uint64_t reasons[REASON_N];
	uint64_t crashes[METRICS_MAX_NAMES + 1], timeouts[METRICS_MAX_NAMES +
	    1];
	struct histogram latency, commit;
	struct histogram transform[METRICS_MAX_NAMES + 1];
	/* hosted calls, by model and by event */
	struct names events;
	uint64_t requests[METRICS_MAX_NAMES + 1];
	uint64_t tokens_in[METRICS_MAX_NAMES + 1];
	uint64_t tokens_out[METRICS_MAX_NAMES + 1];
	uint64_t images[METRICS_MAX_NAMES + 1];
	uint64_t fallbacks[METRICS_MAX_NAMES + 1];
	uint64_t ev_requests[METRICS_MAX_NAMES + 1];
	uint64_t ev_images[METRICS_MAX_NAMES + 1];
	uint64_t ev_fallbacks[METRICS_MAX_NAMES + 1];
	double ev_spend[METRICS_MAX_NAMES + 1];
	int64_t ev_count[METRICS_MAX_NAMES + 1], ev_limit[METRICS_MAX_NAMES +
	    1];
	bool priced;			/* a call had a price */
	struct minute window[WINDOW_MIN];
	void (*source)(void *, struct metrics_source *);
	void *source_arg;
} m = { .lock = PTHREAD_MUTEX_INITIALIZER };

void
metrics_init(const char *version)
{
	pthread_mutex_lock(&m.lock);
	snprintf(m.version, sizeof(m.version), "%s", version);
	pthread_mutex_unlock(&m.lock);
}

void
metrics_set_source(void (*fn)(void *, struct metrics_source *), void *arg)
{
	pthread_mutex_lock(&m.lock);
	m.source = fn;
	m.source_arg = arg;
	pthread_mutex_unlock(&m.lock);
}

/* The index of name in t (added if there is room), METRICS_MAX_NAMES for
 * "other"; under the lock. */
static size_t
name_index(struct names *t, const char *name)
{
	char clean[64];
	size_t n = 0;

	if (name != NULL && strcmp(name, "-") == 0)
		name = "unknown";	/* the pipeline's "not known yet" */

	for (; name && *name && n < sizeof(clean) - 1; name++) {
		char c = *name;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '-')
			clean[n++] = c;
		else
			return METRICS_MAX_NAMES;
	}
	if (n == 0 || (name && *name))
		return METRICS_MAX_NAMES;
	clean[n] = '\0';
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->v[i], clean) == 0)
			return i;
	if (t->n == METRICS_MAX_NAMES)
		return METRICS_MAX_NAMES;
	memcpy(t->v[t->n], clean, n + 1);
	return t->n++;
}

static const char *
name_at(const struct names *t, size_t i)
{
	return i < t->n ? t->v[i] : "other";
}

static void
observe(struct histogram *h, const double *b, size_t nb, double v)
{
	size_t i = 0;

	while (i < nb && v > b[i])
		i++;
	h->counts[i]++;
	h->sum += v;
	h->n++;
}

/* This minute's slot of the window, emptied if it held an older one. */
static struct minute *
this_minute(void)
{
	int64_t idx = now_wall_ms() / 60000;
	struct minute *s = &m.window[idx % WINDOW_MIN];

	if (s->index != idx) {
		memset(s, 0, sizeof(*s));
		s->index = idx;
	}
	return s;
}

void
metrics_session_ready(const char *model, double capture_to_finish_s)
{
	struct minute *s;

	pthread_mutex_lock(&m.lock);
	m.ready[name_index(&m.models, model)]++;
	s = this_minute();
	s->ready++;
	if (capture_to_finish_s >= 0) {
		observe(&m.latency, latency_b, NB(latency_b),
		    capture_to_finish_s);
		observe(&s->latency, latency_b, NB(latency_b),
		    capture_to_finish_s);
	}
	pthread_mutex_unlock(&m.lock);
}

void
metrics_session_error(const char *model, enum metrics_reason reason)
{
	size_t i;
	struct minute *s;

	pthread_mutex_lock(&m.lock);
	i = name_index(&m.models, model);
	m.error[i]++;
	m.reasons[reason < REASON_N ? reason : REASON_WORKER]++;
	s = this_minute();
	s->error++;
	s->errors_by_model[i]++;
	pthread_mutex_unlock(&m.lock);
}

void
metrics_transform(const char *model, double seconds)
{
	pthread_mutex_lock(&m.lock);
	observe(&m.transform[name_index(&m.models, model)], transform_b,
	    NB(transform_b), seconds);
	pthread_mutex_unlock(&m.lock);
}

void
metrics_commit(double seconds)
{
	pthread_mutex_lock(&m.lock);
	observe(&m.commit, commit_b, NB(commit_b), seconds);
	pthread_mutex_unlock(&m.lock);
}

void
metrics_hosted(const char *model, const char *event, int requests,
    uint64_t input_tokens, uint64_t output_tokens, bool image, bool fallback,
    double price)
{
	size_t i, e;

	pthread_mutex_lock(&m.lock);
	i = name_index(&m.models, model);
	e = name_index(&m.events, event);
	m.requests[i] += (uint64_t)(requests > 0 ? requests : 0);
	m.tokens_in[i] += input_tokens;
	m.tokens_out[i] += output_tokens;
	m.images[i] += image;
	m.fallbacks[i] += fallback;
	m.ev_requests[e] += (uint64_t)(requests > 0 ? requests : 0);
	m.ev_images[e] += image;
	m.ev_fallbacks[e] += fallback;
	/* providers bill the images they make */
	if (price >= 0) {
		m.priced = true;
		if (image)
			m.ev_spend[e] += price;
	}
	pthread_mutex_unlock(&m.lock);
}

void
metrics_budget(const char *event, int64_t count, int64_t limit)
{
	size_t e;

	pthread_mutex_lock(&m.lock);
	e = name_index(&m.events, event);
	m.ev_count[e] = count;
	m.ev_limit[e] = limit;
	pthread_mutex_unlock(&m.lock);
}

void
metrics_worker_crash(const char *plugin)
{
	pthread_mutex_lock(&m.lock);
	m.crashes[name_index(&m.plugins, plugin)]++;
	pthread_mutex_unlock(&m.lock);
}

void
metrics_worker_timeout(const char *plugin)
{
	pthread_mutex_lock(&m.lock);
	m.timeouts[name_index(&m.plugins, plugin)]++;
	pthread_mutex_unlock(&m.lock);
}

/* ---- rendering ---- */

struct out {
	char *p;
	size_t len, cap;
};

static void
put(struct out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		o->cap = o->cap * 2 + (size_t)(n > 0 ? n : 0);
		o->p = xrealloc(o->p, o->cap);
	}
}

static void
family(struct out *o, const char *name, const char *type, const char *help)
{
	put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

enum work_what { WORK_QUEUED, WORK_RUNNING, WORK_LIMIT };

/* The one view of each hosted service its calls share. */
static void
provider_families(struct out *o, const struct metrics_source *src)
{
	int n = src->n_lanes < METRICS_LANES ? src->n_lanes : METRICS_LANES;

	family(o, "firesync_provider_requests_total", "counter",
	    "Requests to each remote plugin's service, by how it answered.");
	for (int i = 0; i < n; i++) {
		static const char *const what[] = { "ok", "rate_limited",
		    "unavailable", "failed" };
		const uint64_t v[] = { src->lanes[i].ok,
		    src->lanes[i].rate_limited, src->lanes[i].unavailable,
		    src->lanes[i].failed };

		for (size_t k = 0; k < 4; k++)
			put(o, "firesync_provider_requests_total{plugin=\"%s\","
			    "outcome=\"%s\"} %" PRIu64 "\n",
			    src->lanes[i].plugin, what[k], v[k]);
	}
	family(o, "firesync_provider_turned_away_total", "counter",
	    "Calls not sent: the service's circuit was open, or it asked for "
	    "a pause past the call's deadline.");
	family(o, "firesync_provider_circuit_opened_total", "counter",
	    "Times the service failed often enough in a row to open its "
	    "circuit.");
	family(o, "firesync_provider_fallbacks_total", "counter",
	    "Guests given the plugin's fallback look after a failed call.");
	family(o, "firesync_provider_circuit_open", "gauge",
	    "1 while the service's circuit is open (calls turned away but "
	    "for a probe every 5 s).");
	family(o, "firesync_provider_allowed_calls", "gauge",
	    "Calls the service is allowed at once now: its calls setting, "
	    "halved by each 429, one back with each answer.");
	family(o, "firesync_provider_paused_seconds", "gauge",
	    "Seconds before the next call may start (Retry-After or "
	    "backoff).");
	for (int i = 0; i < n; i++) {
		const char *pl = src->lanes[i].plugin;

		put(o, "firesync_provider_turned_away_total{plugin=\"%s\"} %"
		    PRIu64 "\n", pl, src->lanes[i].turned_away);
		put(o, "firesync_provider_circuit_opened_total{plugin=\"%s\"} %"
		    PRIu64 "\n", pl, src->lanes[i].circuit_opened);
		put(o, "firesync_provider_fallbacks_total{plugin=\"%s\"} %"
		    PRIu64 "\n", pl, src->lanes[i].fallbacks);
		put(o, "firesync_provider_circuit_open{plugin=\"%s\"} %d\n",
		    pl, src->lanes[i].circuit_open ? 1 : 0);
		put(o, "firesync_provider_allowed_calls{plugin=\"%s\"} %"
		    PRId64 "\n", pl, src->lanes[i].allowed);
		put(o, "firesync_provider_paused_seconds{plugin=\"%s\"} %.3f\n",
		    pl, src->lanes[i].paused_s);
	}
}

/* One gauge of the work by kind: the CPU looks', then each hosted
 * plugin's. */
static void
work_gauge(struct out *o, const struct metrics_source *src,
    enum work_what what, const char *name, const char *help)
{
	const int64_t cpu[] = { [WORK_QUEUED] = src->cpu_queued,
	    [WORK_RUNNING] = src->workers_busy, [WORK_LIMIT] = src->workers };

	family(o, name, "gauge", help);
	put(o, "%s{kind=\"cpu\"} %" PRId64 "\n", name, cpu[what]);
	for (int i = 0; i < src->n_lanes && i < METRICS_LANES; i++) {
		const int64_t v[] = { [WORK_QUEUED] = src->lanes[i].queued,
		    [WORK_RUNNING] = src->lanes[i].running,
		    [WORK_LIMIT] = src->lanes[i].limit };

		put(o, "%s{kind=\"hosted\",plugin=\"%s\"} %" PRId64 "\n",
		    name, src->lanes[i].plugin, v[what]);
	}
}

/* Label text: {k="v"} or {k="v",le=...}; values are already clean. */
static void
histogram(struct out *o, const char *name, const char *label,
    const char *value, const struct histogram *h, const double *b,
    size_t nb)
{
	uint64_t cum = 0;
	char lbl[128] = "";

	if (label)
		snprintf(lbl, sizeof(lbl), "%s=\"%s\",", label, value);
	for (size_t i = 0; i < nb; i++) {
		cum += h->counts[i];
		put(o, "%s_bucket{%sle=\"%g\"} %" PRIu64 "\n", name, lbl, b[i],
		    cum);
	}
	cum += h->counts[nb];
	put(o, "%s_bucket{%sle=\"+Inf\"} %" PRIu64 "\n", name, lbl, cum);
	if (label) {
		put(o, "%s_sum{%s=\"%s\"} %.6f\n", name, label, value, h->sum);
		put(o, "%s_count{%s=\"%s\"} %" PRIu64 "\n", name, label, value,
		    h->n);
	} else {
		put(o, "%s_sum %.6f\n%s_count %" PRIu64 "\n", name, h->sum,
		    name, h->n);
	}
}

/* The q-quantile of h, interpolated within its bucket as Prometheus's
 * histogram_quantile does; -1 when empty. */
static double
quantile(const struct histogram *h, const double *b, size_t nb, double q)
{
	double rank = q * (double)h->n, lo = 0, cum = 0;

	if (h->n == 0)
		return -1;
	for (size_t i = 0; i <= nb; i++) {
		double c = (double)h->counts[i];

		if (cum + c >= rank && c > 0) {
			if (i == nb)
				return b[nb - 1];	/* past the last bound */
			return lo + (b[i] - lo) * (rank - cum) / c;
		}
		cum += c;
		lo = i < nb ? b[i] : lo;
	}
	return b[nb - 1];
}

/* Process metrics as the Prometheus client libraries name them. */
static void
process_metrics(struct out *o)
{
	char buf[1024], *p;
	unsigned long long utime = 0, stime = 0, start = 0, vsize = 0;
	long long rss = 0, btime = 0;
	long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	struct rlimit rl;
	size_t n;
	int fds = 0;
	FILE *f;
	DIR *d;

	if ((f = fopen("/proc/self/stat", "r")) != NULL) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n] = '\0';
		fclose(f);
		/* after the command's closing parenthesis: field 3 on */
		if ((p = strrchr(buf, ')')) != NULL)
			sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u "
			    "%*u %llu %llu %*d %*d %*d %*d %*d %*d %llu %llu "
			    "%lld", &utime, &stime, &start, &vsize, &rss);
	}
	if ((f = fopen("/proc/stat", "r")) != NULL) {
		while (fgets(buf, sizeof(buf), f))
			if (sscanf(buf, "btime %lld", &btime) == 1)
				break;
		fclose(f);
	}
	if ((d = opendir("/proc/self/fd")) != NULL) {
		struct dirent *de;

		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				fds++;
		closedir(d);
		fds--;		/* the directory's own */
	}
	if (tck <= 0)
		tck = 100;
	family(o, "process_cpu_seconds_total", "counter",
	    "User and system CPU time spent in seconds.");
	put(o, "process_cpu_seconds_total %.2f\n", (double)(utime + stime) /
	    (double)tck);
	family(o, "process_resident_memory_bytes", "gauge",
	    "Resident memory size in bytes.");
	put(o, "process_resident_memory_bytes %lld\n", rss * page);
	family(o, "process_virtual_memory_bytes", "gauge",
	    "Virtual memory size in bytes.");
	put(o, "process_virtual_memory_bytes %llu\n", vsize);
	family(o, "process_open_fds", "gauge",
	    "Number of open file descriptors.");
	put(o, "process_open_fds %d\n", fds);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		family(o, "process_max_fds", "gauge",
		    "Maximum number of open file descriptors.");
		put(o, "process_max_fds %llu\n",
		    (unsigned long long)rl.rlim_cur);
	}
	family(o, "process_start_time_seconds", "gauge",
	    "Start time of the process since unix epoch in seconds.");
	put(o, "process_start_time_seconds %.2f\n", (double)btime +
	    (double)start / (double)tck);
}

char *
metrics_render(size_t *len)
{
	struct metrics_source src = { 0 };
	struct out o = { xmalloc(16384), 0, 16384 };
	struct histogram recent = { 0 };
	uint64_t recent_ready = 0, recent_error = 0;
	uint32_t recent_by_model[METRICS_MAX_NAMES + 1] = { 0 };
	int64_t now_min = now_wall_ms() / 60000;
	void (*fn)(void *, struct metrics_source *);
	void *arg;

	pthread_mutex_lock(&m.lock);
	fn = m.source;
	arg = m.source_arg;
	pthread_mutex_unlock(&m.lock);
	if (fn)
		fn(arg, &src);		/* atomics and the engine's own locks */

	pthread_mutex_lock(&m.lock);
	family(&o, "firesync_build_info", "gauge",
	    "firesyncd's version; always 1.");
	put(&o, "firesync_build_info{version=\"%s\"} 1\n", m.version);

	family(&o, "firesync_sessions_finished_total", "counter",
	    "Sessions this daemon finished, by outcome and model.");
	for (size_t i = 0; i <= METRICS_MAX_NAMES; i++) {
		if (i >= m.models.n && i < METRICS_MAX_NAMES)
			continue;
		if (i == METRICS_MAX_NAMES && !m.ready[i] && !m.error[i])
			continue;
		put(&o, "firesync_sessions_finished_total{outcome=\"ready\","
		    "model=\"%s\"} %" PRIu64 "\n", name_at(&m.models, i),
		    m.ready[i]);
		put(&o, "firesync_sessions_finished_total{outcome=\"error\","
		    "model=\"%s\"} %" PRIu64 "\n", name_at(&m.models, i),
		    m.error[i]);
	}
	family(&o, "firesync_session_errors_total", "counter",
	    "Sessions ended in error, by reason.");
	for (size_t r = 0; r < REASON_N; r++)
		put(&o, "firesync_session_errors_total{reason=\"%s\"} %" PRIu64
		    "\n", reason_names[r], m.reasons[r]);

	family(&o, "firesync_capture_to_ready_seconds", "histogram",
	    "From a session's capture to our finish commit, Firestore's "
	    "clock, sessions ended ready.");
	histogram(&o, "firesync_capture_to_ready_seconds", NULL, NULL,
	    &m.latency, latency_b, NB(latency_b));
	family(&o, "firesync_transform_duration_seconds", "histogram",
	    "Transforms on a worker, by model, whatever their outcome.");
	for (size_t i = 0; i <= METRICS_MAX_NAMES; i++)
		if (m.transform[i].n > 0)
			histogram(&o, "firesync_transform_duration_seconds",
			    "model", name_at(&m.models, i), &m.transform[i],
			    transform_b, NB(transform_b));
	family(&o, "firesync_firestore_commit_duration_seconds", "histogram",
	    "Round trips of Firestore commits (claims and finishes).");
	histogram(&o, "firesync_firestore_commit_duration_seconds", NULL,
	    NULL, &m.commit, commit_b, NB(commit_b));

	family(&o, "firesync_worker_crashes_total", "counter",
	    "Workers that died during a transform, by plugin.");
	family(&o, "firesync_worker_timeouts_total", "counter",
	    "Workers killed at a transform's deadline, by plugin.");
	for (size_t i = 0; i <= METRICS_MAX_NAMES; i++) {
		if (!m.crashes[i] && !m.timeouts[i])
			continue;
		put(&o, "firesync_worker_crashes_total{plugin=\"%s\"} %"
		    PRIu64 "\n", name_at(&m.plugins, i), m.crashes[i]);
		put(&o, "firesync_worker_timeouts_total{plugin=\"%s\"} %"
		    PRIu64 "\n", name_at(&m.plugins, i), m.timeouts[i]);
	}

	family(&o, "firesync_hosted_requests_total", "counter",
	    "Requests sent to hosted models' services, retries included, by "
	    "model.");
	family(&o, "firesync_hosted_images_total", "counter",
	    "Images hosted models made, by model.");
	family(&o, "firesync_hosted_fallbacks_total", "counter",
	    "Guests given the fallback look instead of a hosted model's "
	    "image, by model.");
	family(&o, "firesync_hosted_tokens_total", "counter",
	    "Tokens the services reported using, by model and direction.");
	for (size_t i = 0; i <= METRICS_MAX_NAMES; i++) {
		const char *name = name_at(&m.models, i);

		if (!m.requests[i] && !m.fallbacks[i])
			continue;
		put(&o, "firesync_hosted_requests_total{model=\"%s\"} %"
		    PRIu64 "\n", name, m.requests[i]);
		put(&o, "firesync_hosted_images_total{model=\"%s\"} %"
		    PRIu64 "\n", name, m.images[i]);
		put(&o, "firesync_hosted_fallbacks_total{model=\"%s\"} %"
		    PRIu64 "\n", name, m.fallbacks[i]);
		put(&o, "firesync_hosted_tokens_total{model=\"%s\","
		    "direction=\"input\"} %" PRIu64 "\n", name,
		    m.tokens_in[i]);
		put(&o, "firesync_hosted_tokens_total{model=\"%s\","
		    "direction=\"output\"} %" PRIu64 "\n", name,
		    m.tokens_out[i]);
	}
	family(&o, "firesync_event_hosted_requests_total", "counter",
	    "Requests sent to hosted models' services for each event's "
	    "guests, by this daemon.");
	family(&o, "firesync_event_hosted_images_total", "counter",
	    "Images hosted models made for each event's guests.");
	family(&o, "firesync_event_fallbacks_total", "counter",
	    "Each event's guests given the fallback look.");
	family(&o, "firesync_event_spend_usd", "counter",
	    "Estimated spend on hosted models for each event: images made "
	    "times [hosted] prices (only when prices are set).");
	for (size_t i = 0; i <= METRICS_MAX_NAMES; i++) {
		const char *name = name_at(&m.events, i);

		if (!m.ev_requests[i] && !m.ev_fallbacks[i])
			continue;
		put(&o, "firesync_event_hosted_requests_total{event=\"%s\"} %"
		    PRIu64 "\n", name, m.ev_requests[i]);
		put(&o, "firesync_event_hosted_images_total{event=\"%s\"} %"
		    PRIu64 "\n", name, m.ev_images[i]);
		put(&o, "firesync_event_fallbacks_total{event=\"%s\"} %"
		    PRIu64 "\n", name, m.ev_fallbacks[i]);
		if (m.priced)
			put(&o, "firesync_event_spend_usd{event=\"%s\"} %.4f\n",
			    name, m.ev_spend[i]);
	}
	family(&o, "firesync_event_budget_used_ratio", "gauge",
	    "Each limited event's hosted calls, all daemons together, of its "
	    "[hosted] limit, as last counted here.");
	for (size_t i = 0; i <= METRICS_MAX_NAMES; i++)
		if (m.ev_limit[i] > 0)
			put(&o, "firesync_event_budget_used_ratio{event=\"%s\"} "
			    "%.4f\n", name_at(&m.events, i),
			    (double)m.ev_count[i] / (double)m.ev_limit[i]);

	/* the last hour, for firesyncctl status */
	for (int k = 0; k < WINDOW_MIN; k++) {
		const struct minute *s = &m.window[k];

		if (s->index <= now_min - WINDOW_MIN || s->index > now_min)
			continue;
		recent_ready += s->ready;
		recent_error += s->error;
		for (size_t b = 0; b <= NB(latency_b); b++)
			recent.counts[b] += s->latency.counts[b];
		recent.sum += s->latency.sum;
		recent.n += s->latency.n;
		for (size_t i = 0; i <= METRICS_MAX_NAMES; i++)
			recent_by_model[i] += s->errors_by_model[i];
	}
	family(&o, "firesync_recent_sessions", "gauge",
	    "Sessions finished in the last hour, by outcome.");
	put(&o, "firesync_recent_sessions{outcome=\"ready\"} %" PRIu64 "\n",
	    recent_ready);
	put(&o, "firesync_recent_sessions{outcome=\"error\"} %" PRIu64 "\n",
	    recent_error);
	family(&o, "firesync_recent_capture_to_ready_seconds", "summary",
	    "Capture to ready over the last hour (estimated from the "
	    "histogram's buckets).");
	if (recent.n > 0) {
		put(&o, "firesync_recent_capture_to_ready_seconds{quantile="
		    "\"0.5\"} %.3f\n", quantile(&recent, latency_b,
		    NB(latency_b), 0.5));
		put(&o, "firesync_recent_capture_to_ready_seconds{quantile="
		    "\"0.95\"} %.3f\n", quantile(&recent, latency_b,
		    NB(latency_b), 0.95));
	}
	put(&o, "firesync_recent_capture_to_ready_seconds_sum %.6f\n"
	    "firesync_recent_capture_to_ready_seconds_count %" PRIu64 "\n",
	    recent.sum, recent.n);
	family(&o, "firesync_recent_errors", "gauge",
	    "Sessions ended in error in the last hour, by model.");
	for (size_t i = 0; i <= METRICS_MAX_NAMES; i++)
		if (recent_by_model[i] > 0)
			put(&o, "firesync_recent_errors{model=\"%s\"} %u\n",
			    name_at(&m.models, i), recent_by_model[i]);
	pthread_mutex_unlock(&m.lock);

	family(&o, "firesync_sessions_in_flight", "gauge",
	    "Sessions between their claim and their finish.");
	put(&o, "firesync_sessions_in_flight %" PRId64 "\n", src.in_flight);
	family(&o, "firesync_sessions_queued", "gauge",
	    "Captured sessions queued for a claim.");
	put(&o, "firesync_sessions_queued %" PRId64 "\n", src.queued);
	family(&o, "firesync_workers", "gauge",
	    "Worker processes, by state.");
	put(&o, "firesync_workers{state=\"busy\"} %" PRId64 "\n"
	    "firesync_workers{state=\"idle\"} %" PRId64 "\n", src.workers_busy,
	    src.workers - src.workers_busy);
	work_gauge(&o, &src, WORK_QUEUED, "firesync_work_queued",
	    "Sessions queued for a claim, by kind of work (cpu: a local "
	    "look; hosted: a remote plugin's call) and plugin.");
	work_gauge(&o, &src, WORK_RUNNING, "firesync_work_running",
	    "Transforms running, by kind of work and plugin: CPU workers "
	    "busy, hosted calls in flight.");
	work_gauge(&o, &src, WORK_LIMIT, "firesync_work_limit",
	    "Transforms that may run at once, by kind of work and plugin: "
	    "workers, and each remote plugin's calls setting.");
	provider_families(&o, &src);
	family(&o, "firesync_hosted_workers", "gauge",
	    "Hosted-call worker processes running (each runs up to 16 "
	    "calls).");
	put(&o, "firesync_hosted_workers %" PRId64 "\n", src.hosted_workers);
	family(&o, "firesync_plugins_loaded", "gauge",
	    "Plugins the workers loaded.");
	put(&o, "firesync_plugins_loaded %" PRId64 "\n", src.plugins_loaded);
	family(&o, "firesync_listen_up", "gauge",
	    "1 while the Listen stream is open and current.");
	put(&o, "firesync_listen_up %d\n", src.listen_up ? 1 : 0);
	family(&o, "firesync_listen_targets_down", "gauge",
	    "Listen targets the server removed (a missing index, a "
	    "permission); their sessions are not picked up.");
	put(&o, "firesync_listen_targets_down %" PRId64 "\n",
	    src.listen_targets_down);
	family(&o, "firesync_listen_last_message_age_seconds", "gauge",
	    "Seconds since the Listen stream's last message.");
	put(&o, "firesync_listen_last_message_age_seconds %.3f\n",
	    src.listen_last_message_ms > 0 ? (double)(now_mono_ms() -
	    src.listen_last_message_ms) / 1000.0 : -1.0);
	family(&o, "firesync_listen_reconnects_total", "counter",
	    "Listen streams reopened after a failure.");
	put(&o, "firesync_listen_reconnects_total %" PRIu64 "\n",
	    src.listen_reconnects);
	family(&o, "firesync_claims_total", "counter", "Claims sent.");
	put(&o, "firesync_claims_total %" PRIu64 "\n", src.claims);
	family(&o, "firesync_claims_lost_total", "counter",
	    "Claims lost to another daemon's or the app's write.");
	put(&o, "firesync_claims_lost_total %" PRIu64 "\n", src.claims_lost);
	family(&o, "firesync_sessions_taken_by_others_total", "counter",
	    "Sessions another daemon took before our claim was sent.");
	put(&o, "firesync_sessions_taken_by_others_total %" PRIu64 "\n",
	    src.taken_by_others);
	family(&o, "firesync_interrupted_sessions_rerun_total", "counter",
	    "Interrupted sessions found by recovery and run again.");
	put(&o, "firesync_interrupted_sessions_rerun_total %" PRIu64 "\n",
	    src.recovered);
	process_metrics(&o);
	*len = o.len;
	return o.p;
}
