/*
 * pool.c - spawning, feeding, timing out and replacing worker processes.
 *
 * Workers are started with posix_spawn (safe from a process whose other
 * threads belong to gRPC: no fork of the daemon's address space).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "firesync/plugin.h"
#include "log.h"
#include "pool.h"
#include "text.h"
#include "wire.h"

#ifndef LIBEXECDIR
#define LIBEXECDIR "/usr/local/libexec"
#endif

#define HELLO_TIMEOUT_MS 30000
/* The largest result taken from a worker: a 50 MP RGBA PNG stored raw is
 * about 200 MB; the worker's own output limit is 256 MB. */
#define POOL_MAX_RESULT	((uint64_t)256 << 20)
#define KILL_GRACE_MS	250
#define PATH_LEN	4096

_Static_assert(POOL_NAME_LEN == WIRE_NAME_LEN, "a plugin's name fits");
_Static_assert(POOL_MAX_REFS == WIRE_MAX_REFS, "the references fit");

extern char **environ;

struct worker {
	pid_t pid;		/* 0: not running */
	int sock;
	int jobs;
	bool busy;
	bool stale;		/* started with old settings: retire */
};

/*
 * A hosted-call worker: one process running up to HOSTED_CALLS_PER_WORKER
 * calls of remote plugins at once.  Its reader thread takes each result
 * to the caller waiting for that tag, and when the process ends fails the
 * calls still pending and reaps it.  Callers never close its socket: a
 * worker is stopped by shutting its sending side (it exits at EOF) or by
 * SIGKILL, and the reader closes the socket once it has reaped it.
 */
struct hcall {
	struct hcall *next;		/* the worker's pending list */
	uint32_t tag;
	char plugin[WIRE_NAME_LEN];	/* its lane's */
	bool done;
	pthread_cond_t cond;		/* done */
	enum pool_status st;		/* POOL_OK: res (and fd) hold the
					   answer; else err says why */
	struct wire_result res;
	int fd;
	char err[256];
	const struct pool_job *job;	/* the caller's */
};

struct hworker {
	pid_t pid;			/* 0: no process */
	int sock;
	bool starting;			/* a caller is starting it */
	bool retiring;			/* take no new calls */
	bool dead;			/* the reader saw it end */
	bool reader;			/* a thread to join */
	pthread_t thread;		/* started the process, reads it */
	char start_err[256];		/* why it could not start */
	int calls;			/* in flight (or waiting for the
					   start) on it */
	int jobs;			/* sent in this process's life */
	uint32_t next_tag;
	struct hcall *pending;
	struct pool *p;
};

/*
 * One remote plugin, daemon-wide: its call slots and the one view of its
 * service that every call shares.  A 429 halves the calls allowed at once
 * (one more comes back with each answer) and pauses new calls for the
 * service's Retry-After, or a backoff that doubles from 1 s to 30 s
 * without one; CIRCUIT_FAILURES failures in a row (5xx, unreachable, no
 * answer in time) open the circuit: calls fail at once (to the fallback
 * look, if any), and every PROBE_MS one call is let through; its answer
 * closes the circuit again.
 */
enum circuit { CLOSED, OPEN, HALF_OPEN };

#define LANE_MODELS_MAX	16

struct lane {
	char plugin[WIRE_NAME_LEN];
	int limit;			/* its calls setting */
	int allowed;			/* calls at once now, <= limit */
	int in_flight;			/* holding a call slot */
	int waiting;			/* waiting for one */
	int retries;			/* of a call the service turned away */
	char fallback[WIRE_NAME_LEN];	/* the model run instead, or "" */
	int64_t not_before;		/* monotonic ms: no call starts
					   before */
	int64_t slowed_ms;		/* monotonic: when the last 429 or
					   failure slowed calls down */
	int64_t backoff_ms;		/* the next pause without a
					   Retry-After; 0: none yet */
	int failures;			/* the service's, in a row */
	enum circuit circuit;
	int64_t probe_at;		/* OPEN: when one call may go */
	bool probe_out;			/* HALF_OPEN: it has gone */
	struct pool_provider_stats n;	/* counters */
	struct model_slots {		/* calls.MODEL: a model's own limit */
		char model[WIRE_NAME_LEN];
		int limit;		/* 0: the plugin's only */
		int in_flight;
	} models[LANE_MODELS_MAX];
	int n_models;
};

#define CIRCUIT_FAILURES	5
#define PROBE_MS		5000
#define BACKOFF_FIRST_MS	1000
#define BACKOFF_MAX_MS		30000
/* A call is not started with less than this left before its deadline. */
#define CALL_MIN_MS		1000

struct pool {
	struct pool_options o;
	char *worker_path, *plugin_dir, *config_path;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct worker *w;
	int n;
	/* from the first hello: model -> plugin, and its lane (0: the CPU
	 * workers; i + 1: lanes[i]) */
	char (*models)[WIRE_NAME_LEN];
	char (*plugins)[WIRE_NAME_LEN];
	int *model_lane;
	uint32_t n_models;
	struct lane lanes[POOL_LANES_MAX];
	int n_lanes;
	struct hworker hw[POOL_HOSTED_WORKERS_MAX];
	bool announced;
	bool abandoned;			/* pool_abandon: no new workers */
};

static void hw_retire_idle(struct hworker *h);

char *
pool_find_worker(void)
{
	const char *env = getenv("FIRESYNC_WORKER");
	char exe[4096];
	ssize_t n;

	if (env && *env)
		return xstrdup(env);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 32);
	if (n > 0) {
		char *slash;

		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash) {
			strcpy(slash + 1, "firesync-worker");
			if (access(exe, X_OK) == 0)
				return xstrdup(exe);
			strcpy(slash + 1, "../worker/firesync-worker");
			if (access(exe, X_OK) == 0)
				return xstrdup(exe);
		}
	}
	return xstrdup(LIBEXECDIR "/firesync/firesync-worker");
}

/* Wait for pid for up to ms; SIGKILL it if still there.  Returns status. */
static int
reap(pid_t pid, int ms)
{
	int status = 0;

	for (int i = 0; i <= ms; i += 5) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid || (r < 0 && errno == ECHILD))
			return status;
		struct timespec ts = { 0, 5000000 };
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return status;
}

/* Close w's socket (a healthy worker exits on EOF), SIGKILL it first if
 * kill_it, reap it and mark the slot empty.  Its wait status. */
static int
worker_stop(struct worker *w, bool kill_it)
{
	int status;

	if (w->pid <= 0)
		return 0;
	if (kill_it)
		kill(w->pid, SIGKILL);
	close(w->sock);
	status = reap(w->pid, kill_it ? 1000 : 2000);
	w->pid = 0;
	w->sock = -1;
	w->jobs = 0;
	return status;
}

/* argv for a worker; strings are copied into bufs (settings may be
 * replaced by pool_reconfigure while a worker starts). */
static void
worker_argv(struct pool *p, const char **argv, char bufs[][PATH_LEN],
    bool announce, const char *mode, int calls)
{
	struct pool_options o;
	int n = 0;

	pthread_mutex_lock(&p->lock);
	snprintf(bufs[2], PATH_LEN, "%s", p->plugin_dir);
	snprintf(bufs[3], PATH_LEN, "%s", p->config_path ? p->config_path : "");
	o = p->o;
	pthread_mutex_unlock(&p->lock);
	argv[n++] = p->worker_path;
	argv[n++] = "--plugin-dir";
	argv[n++] = bufs[2];
	if (*bufs[3]) {
		argv[n++] = "--config";
		argv[n++] = bufs[3];
	}
	snprintf(bufs[0], PATH_LEN, "%d", o.memory_mb);
	argv[n++] = "--memory-mb";
	argv[n++] = bufs[0];
	/* CPU backstop: a worker's whole life of jobs at full deadline */
	snprintf(bufs[1], PATH_LEN, "%" PRId64, (o.timeout_ms / 1000 + 1) *
	    (o.max_jobs + 1) + 10);
	argv[n++] = "--cpu-seconds";
	argv[n++] = bufs[1];
	argv[n++] = "--log-level";
	argv[n++] = log_level_name(o.log_level);
	if (announce)
		argv[n++] = "--announce";
	if (mode)
		argv[n++] = mode;
	if (calls > 0) {
		snprintf(bufs[4], PATH_LEN, "%d", calls);
		argv[n++] = "--calls";
		argv[n++] = bufs[4];
	}
	argv[n] = NULL;
}

/*
 * A worker's environment: not the daemon's (which may name credentials),
 * only a fixed PATH and what the sanitizer runtimes and the C library's
 * time zone read.  env gets pointers into buf.
 *
 * Under AddressSanitizer a worker runs without LeakSanitizer: LSan stops
 * the world at exit by tracing the process's threads with ptrace, which
 * the worker's seccomp filter forbids, so it could only report a fatal
 * error of its own (and in the unsandboxed --list worker, its tracer
 * sometimes crashed at exit once a refused plugin had been unloaded,
 * taking the listing with it).  The code a worker runs (job.c, the
 * plugins) is leak-checked in-process instead, by firesync-transform
 * --in-process in tests/plugin and tests/genai.
 */
static void
worker_env(const char **env, char (*buf)[PATH_LEN])
{
	static const char *const keep[] = { "ASAN_OPTIONS", "LSAN_OPTIONS",
	    "UBSAN_OPTIONS", "TZ" };
	int n = 0;

	env[n++] = "PATH=/usr/bin:/bin";
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
		const char *v = getenv(keep[i]);

		if (v == NULL)
			continue;
		snprintf(buf[i], PATH_LEN, "%s=%s%s", keep[i], v,
		    i == 0 ? ":detect_leaks=0" : "");
		env[n++] = buf[i];
	}
	env[n] = NULL;
}

/*
 * The lane of remote plugin name (1-based), made or updated with its
 * calls limit; 0 (the CPU workers) if there is no room for another lane.
 * Under p->lock.  Lanes are never removed: a plugin gone after a reload
 * keeps an idle lane.
 */
static int
lane_of(struct pool *p, const char *name, int calls, int retries,
    const char *fallback)
{
	int i;

	if (calls < 1)
		calls = 1;
	for (i = 0; i < p->n_lanes; i++)
		if (strcmp(p->lanes[i].plugin, name) == 0)
			break;
	if (i == p->n_lanes) {
		if (p->n_lanes == POOL_LANES_MAX) {
			log_warn("plugin %s: more than %d remote plugins; its "
			    "calls run on the CPU workers", name,
			    POOL_LANES_MAX);
			return 0;
		}
		snprintf(p->lanes[i].plugin, WIRE_NAME_LEN, "%s", name);
		p->lanes[i].allowed = calls;
		p->n_lanes++;
	}
	p->lanes[i].limit = calls;
	if (p->lanes[i].allowed > calls)
		p->lanes[i].allowed = calls;
	p->lanes[i].retries = retries;
	snprintf(p->lanes[i].fallback, WIRE_NAME_LEN, "%.*s",
	    WIRE_NAME_LEN - 1, fallback);
	pthread_cond_broadcast(&p->cond);
	return i + 1;
}

/* model's slots in ln, made if need be (NULL if there is no room);
 * under p->lock. */
static struct model_slots *
model_slots(struct lane *ln, const char *model)
{
	for (int i = 0; i < ln->n_models; i++)
		if (strcmp(ln->models[i].model, model) == 0)
			return &ln->models[i];
	if (ln->n_models == LANE_MODELS_MAX)
		return NULL;
	snprintf(ln->models[ln->n_models].model, WIRE_NAME_LEN, "%s", model);
	return &ln->models[ln->n_models++];
}

/* calls.MODEL from the workers' hello (0: none); under p->lock. */
static void
model_limit(struct lane *ln, const char *model, int limit)
{
	struct model_slots *ms = model_slots(ln, model);

	if (ms != NULL)
		ms->limit = limit;
}

/* Say at once if lane's fallback is no look of the CPU workers (a
 * typo, a missing plugin, a hosted model): then its guests get errors.
 * Under p->lock, with the model table in place. */
static void
check_fallback(struct pool *p, const struct lane *ln)
{
	bool found = false;

	if (*ln->fallback == '\0')
		return;
	for (uint32_t i = 0; i < p->n_models && !found; i++)
		if (strcmp(p->models[i], ln->fallback) == 0) {
			found = true;
			if (p->model_lane[i] != 0)
				log_err("plugin %s: fallback = %s is a hosted "
				    "model; a fallback must be a local look "
				    "(cartoon, style, ...): none is used",
				    ln->plugin, ln->fallback);
		}
	if (!found)
		log_err("plugin %s: fallback = %s: no plugin serves that "
		    "model; none is used (firesyncd --list-plugins lists the "
		    "models)", ln->plugin, ln->fallback);
}

/* Kill a worker that failed to start, and reap it. */
static void
start_failed(pid_t pid, int sock)
{
	kill(pid, SIGKILL);
	close(sock);
	reap(pid, 1000);
}

/*
 * Start a worker and wait for its hello: a CPU worker (calls 0), whose
 * first hello after a (re)configuration sets the model table, or a
 * hosted-call worker for up to calls calls at once.  0 with *pidp and
 * *sockp, or -errno with err.
 */
static int
spawn_worker(struct pool *p, int calls, pid_t *pidp, int *sockp, char *err,
    size_t errlen)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t mask, deflt;
	struct wire_hello *hello;
	const char *argv[24], *env[8];
	char (*bufs)[PATH_LEN] = xmalloc(5 * PATH_LEN);
	char (*envbuf)[PATH_LEN] = xmalloc(4 * PATH_LEN);
	struct pollfd pfd;
	pid_t pid;
	int sv[2], rc, sock;
	bool announce;

	pthread_mutex_lock(&p->lock);
	announce = calls == 0 && !p->announced;
	pthread_mutex_unlock(&p->lock);

	pthread_mutex_lock(&p->lock);
	if (p->abandoned) {
		pthread_mutex_unlock(&p->lock);
		snprintf(err, errlen, "the daemon is shutting down");
		return -ECANCELED;
	}
	pthread_mutex_unlock(&p->lock);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		return -errno;
	}
	worker_argv(p, argv, bufs, announce, NULL, calls);
	posix_spawn_file_actions_init(&fa);
	/* dup2 onto 3 clears close-on-exec for the worker's end only, and
	 * nothing else of ours crosses over, close-on-exec or not */
	posix_spawn_file_actions_adddup2(&fa, sv[1], WIRE_FD);
	posix_spawn_file_actions_addclosefrom_np(&fa, WIRE_FD + 1);
	/* the daemon's threads block its signals; a worker starts clean */
	posix_spawnattr_init(&attr);
	sigemptyset(&mask);
	sigemptyset(&deflt);
	sigaddset(&deflt, SIGPIPE);
	sigaddset(&deflt, SIGTERM);
	sigaddset(&deflt, SIGINT);
	sigaddset(&deflt, SIGHUP);
	posix_spawnattr_setsigmask(&attr, &mask);
	posix_spawnattr_setsigdefault(&attr, &deflt);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK |
	    POSIX_SPAWN_SETSIGDEF);
	worker_env(env, envbuf);
	rc = posix_spawn(&pid, p->worker_path, &fa, &attr,
	    (char *const *)argv, (char *const *)env);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	free(bufs);
	free(envbuf);
	close(sv[1]);
	if (rc != 0) {
		close(sv[0]);
		snprintf(err, errlen, "cannot start %s: %s", p->worker_path,
		    strerror(rc));
		return -rc;
	}
	sock = sv[0];
	pfd.fd = sock;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, HELLO_TIMEOUT_MS) <= 0) {
		snprintf(err, errlen, "worker %d did not start within %d s",
		    (int)pid, HELLO_TIMEOUT_MS / 1000);
		start_failed(pid, sock);
		return -ETIMEDOUT;
	}
	hello = xmalloc(sizeof(*hello));
	rc = wire_recv(sock, hello, sizeof(*hello), WIRE_HELLO, NULL);
	if (rc < 0) {
		free(hello);
		snprintf(err, errlen, "worker %d failed while starting "
		    "(see the lines above)", (int)pid);
		start_failed(pid, sock);
		return -EIO;
	}
	*pidp = pid;
	*sockp = sock;
	pthread_mutex_lock(&p->lock);
	if (calls == 0 && !p->announced) {
		uint32_t n = hello->n_models > WIRE_MAX_MODELS ?
		    WIRE_MAX_MODELS : hello->n_models;

		free(p->models);
		free(p->plugins);
		free(p->model_lane);
		p->models = xcalloc(n ? n : 1, sizeof(*p->models));
		p->plugins = xcalloc(n ? n : 1, sizeof(*p->plugins));
		p->model_lane = xcalloc(n ? n : 1, sizeof(*p->model_lane));
		for (uint32_t i = 0; i < n; i++) {
			memcpy(p->models[i], hello->model[i],
			    WIRE_NAME_LEN - 1);
			memcpy(p->plugins[i], hello->plugin[i],
			    WIRE_NAME_LEN - 1);
			hello->fallback[i][WIRE_NAME_LEN - 1] = '\0';
			if (hello->flags[i] & WIRE_MODEL_REMOTE) {
				p->model_lane[i] = lane_of(p, p->plugins[i],
				    (int)hello->calls[i],
				    (int)hello->retries[i], hello->fallback[i]);
				if (p->model_lane[i] > 0)
					model_limit(&p->lanes[p->model_lane[i] -
					    1], p->models[i],
					    (int)hello->model_calls[i]);
			}
		}
		p->n_models = n;
		p->announced = true;
		for (int k = 0; k < p->n_lanes; k++)
			check_fallback(p, &p->lanes[k]);
		log_notice("workers: %u model(s) available%s", n,
		    hello->n_refused ? "; some plugins were refused (see "
		    "above, or run firesyncd --list-plugins)" : "");
	}
	pthread_mutex_unlock(&p->lock);
	free(hello);
	return 0;
}

/* Start CPU worker w.  0 or -errno with err. */
static int
worker_start(struct pool *p, struct worker *w, char *err, size_t errlen)
{
	int rc = spawn_worker(p, 0, &w->pid, &w->sock, err, errlen);

	if (rc < 0)
		w->pid = 0;
	w->jobs = 0;
	return rc;
}

struct pool *
pool_new(const struct pool_options *o, char *err, size_t errlen)
{
	struct pool *p = xcalloc(1, sizeof(*p));

	p->o = *o;
	p->worker_path = xstrdup(o->worker_path);
	p->plugin_dir = xstrdup(o->plugin_dir);
	p->config_path = o->config_path ? xstrdup(o->config_path) : NULL;
	p->n = o->workers;
	p->w = xcalloc((size_t)p->n, sizeof(*p->w));
	for (int i = 0; i < p->n; i++)
		p->w[i].sock = -1;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	if (access(p->worker_path, X_OK) != 0) {
		snprintf(err, errlen, "worker program %s: %s (set "
		    "FIRESYNC_WORKER or reinstall firesync)", p->worker_path,
		    strerror(errno));
		pool_free(p);
		return NULL;
	}
	if (worker_start(p, &p->w[0], err, errlen) < 0) {
		pool_free(p);
		return NULL;
	}
	return p;
}

void
pool_free(struct pool *p)
{
	if (p == NULL)
		return;
	for (int i = 0; i < p->n; i++)
		worker_stop(&p->w[i], false);
	pthread_mutex_lock(&p->lock);
	for (int i = 0; i < POOL_HOSTED_WORKERS_MAX; i++) {
		p->hw[i].retiring = true;
		hw_retire_idle(&p->hw[i]);
	}
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < POOL_HOSTED_WORKERS_MAX; i++)
		if (p->hw[i].reader)
			pthread_join(p->hw[i].thread, NULL);
	free(p->w);
	free(p->models);
	free(p->plugins);
	free(p->model_lane);
	free(p->worker_path);
	free(p->plugin_dir);
	free(p->config_path);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}

void
pool_reconfigure(struct pool *p, const struct pool_options *o)
{
	pthread_mutex_lock(&p->lock);
	free(p->plugin_dir);
	free(p->config_path);
	p->plugin_dir = xstrdup(o->plugin_dir);
	p->config_path = o->config_path ? xstrdup(o->config_path) : NULL;
	p->o.timeout_ms = o->timeout_ms;
	p->o.memory_mb = o->memory_mb;
	p->o.max_jobs = o->max_jobs;
	p->o.max_pixels = o->max_pixels;
	p->o.log_level = o->log_level;
	p->announced = false;		/* the next worker reports afresh */
	/* each worker is retired when next taken or done with its job (a
	 * slot with no process has nothing to retire) */
	for (int i = 0; i < p->n; i++)
		p->w[i].stale = true;
	for (int i = 0; i < POOL_HOSTED_WORKERS_MAX; i++) {
		p->hw[i].retiring = true;
		hw_retire_idle(&p->hw[i]);
	}
	pthread_mutex_unlock(&p->lock);
}

void
pool_abandon(struct pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->abandoned = true;
	for (int i = 0; i < p->n; i++)
		if (p->w[i].pid > 0)
			kill(p->w[i].pid, SIGKILL);
	for (int i = 0; i < POOL_HOSTED_WORKERS_MAX; i++)
		if (p->hw[i].pid > 0 && !p->hw[i].dead)
			kill(p->hw[i].pid, SIGKILL);
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

bool
pool_plugin_for(struct pool *p, const char *model, char *plugin,
    size_t pluginlen)
{
	bool found = false;

	/* a reload replaces the table under the lock: copy out under it */
	pthread_mutex_lock(&p->lock);
	for (uint32_t i = 0; model && i < p->n_models && !found; i++)
		if (strcmp(p->models[i], model) == 0) {
			snprintf(plugin, pluginlen, "%s", p->plugins[i]);
			found = true;
		}
	pthread_mutex_unlock(&p->lock);
	return found;
}

void
pool_stats(struct pool *p, int *busy, int *workers, int *plugins)
{
	pthread_mutex_lock(&p->lock);
	*busy = 0;
	for (int i = 0; i < p->n; i++)
		*busy += p->w[i].busy;
	*workers = p->n;
	*plugins = 0;
	for (uint32_t i = 0; i < p->n_models; i++) {
		bool seen = false;

		for (uint32_t k = 0; k < i && !seen; k++)
			seen = strcmp(p->plugins[k], p->plugins[i]) == 0;
		*plugins += !seen;
	}
	pthread_mutex_unlock(&p->lock);
}

static struct worker *
acquire(struct pool *p)
{
	struct worker *w = NULL;
	bool stale;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		for (int i = 0; i < p->n && w == NULL; i++)
			if (!p->w[i].busy && p->w[i].pid > 0)
				w = &p->w[i];
		for (int i = 0; i < p->n && w == NULL; i++)
			if (!p->w[i].busy)
				w = &p->w[i];
		if (w != NULL)
			break;
		pthread_cond_wait(&p->cond, &p->lock);
	}
	w->busy = true;
	stale = w->stale;
	w->stale = false;
	pthread_mutex_unlock(&p->lock);
	if (stale)
		worker_stop(w, false);
	return w;
}

static void
release(struct pool *p, struct worker *w)
{
	pthread_mutex_lock(&p->lock);
	w->busy = false;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

/* A job's limits: its own, else the pool's as they are now. */
struct limits {
	int64_t timeout_ms;
	uint64_t max_pixels;
	int max_jobs;
};

static struct limits
limits_of(struct pool *p, const struct pool_job *job)
{
	struct limits l;

	pthread_mutex_lock(&p->lock);
	l.timeout_ms = job->timeout_ms > 0 ? job->timeout_ms : p->o.timeout_ms;
	l.max_pixels = job->max_pixels > 0 ? job->max_pixels :
	    p->o.max_pixels;
	l.max_jobs = p->o.max_jobs;
	pthread_mutex_unlock(&p->lock);
	return l;
}

static void
fill_job(struct wire_job *wj, const struct pool_job *job,
    const struct limits *l)
{
	memset(wj, 0, sizeof(*wj));
	wire_header_init(&wj->h, WIRE_JOB, sizeof(*wj));
	wj->flags = job->ai ? WIRE_JOB_AI : 0;
	wj->input_len = job->input_len;
	wj->n_refs = (uint32_t)job->n_refs;
	for (size_t i = 0; i < job->n_refs; i++)
		wj->ref_len[i] = job->ref_lens[i];
	wj->timeout_ms = l->timeout_ms;
	wj->max_pixels = l->max_pixels;
	snprintf(wj->model, sizeof(wj->model), "%s", job->model ? job->model :
	    "");
	snprintf(wj->aspect_ratio, sizeof(wj->aspect_ratio), "%s",
	    job->aspect_ratio ? job->aspect_ratio : "");
	snprintf(wj->session_id, sizeof(wj->session_id), "%s",
	    job->session_id ? job->session_id : "");
	snprintf(wj->event_id, sizeof(wj->event_id), "%s",
	    job->event_id ? job->event_id : "");
	snprintf(wj->prompt, sizeof(wj->prompt), "%s", job->prompt ?
	    job->prompt : "");
	wj->frame_len = job->frame != NULL ? job->frame_len : 0;
	wj->max_result_pixels = job->max_result_pixels;
	wj->n_renditions = (uint32_t)job->n_renditions;
	for (size_t i = 0; i < job->n_renditions; i++) {
		const struct pool_rendition *r = &job->renditions[i];
		struct wire_rendition *w = &wj->renditions[i];

		snprintf(w->name, sizeof(w->name), "%s", r->name);
		w->width = r->width;
		w->height = r->height;
		w->format = r->format == POOL_FORMAT_PNG ? WIRE_FORMAT_PNG :
		    r->format == POOL_FORMAT_WEBP ? WIRE_FORMAT_WEBP :
		    WIRE_FORMAT_JPEG;
		w->quality = (uint32_t)r->quality;
		w->dpi = r->dpi;
	}
}

/* "timeout after 45s" (or "1.5s"), then suffix. */
static void
format_timeout(int64_t ms, char *err, size_t errlen, const char *suffix)
{
	if (ms % 1000 == 0)
		snprintf(err, errlen, "timeout after %" PRId64 "s%s", ms / 1000,
		    suffix);
	else
		snprintf(err, errlen, "timeout after %.1fs%s",
		    (double)ms / 1000.0, suffix);
}

/* Why a worker died, in the guest's terms. */
static void
died(struct pool *p, struct worker *w, const struct pool_job *job,
    char *err, size_t errlen)
{
	char plugin[WIRE_NAME_LEN], who[96];
	pid_t pid = w->pid;
	int status = worker_stop(w, false);
	bool abandoned;

	pthread_mutex_lock(&p->lock);
	abandoned = p->abandoned;
	pthread_mutex_unlock(&p->lock);
	if (abandoned) {
		snprintf(err, errlen, "the daemon is shutting down");
		log_info("worker %d: stopped at shutdown", (int)pid);
		return;
	}
	if (job->ai && pool_plugin_for(p, job->model, plugin, sizeof(plugin)))
		snprintf(who, sizeof(who), "plugin %s", plugin);
	else if (job->ai)
		snprintf(who, sizeof(who), "the worker for model %s",
		    text_name(job->model, 40, plugin, sizeof(plugin)));
	else
		snprintf(who, sizeof(who), "the image worker");
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);

		snprintf(err, errlen, "%s crashed (signal %d%s)", who, sig,
		    sig == SIGXCPU ? ": CPU time limit" : "");
	} else {
		snprintf(err, errlen, "%s exited unexpectedly (status %d)",
		    who, WEXITSTATUS(status));
	}
	log_warn("worker %d: %s; starting a new one", (int)pid, err);
}

/* The job's images in one sealed memfd; -1 with err on failure. */
static int
job_memfd(const struct pool_job *job, char *err, size_t errlen)
{
	const void *parts[2 + WIRE_MAX_REFS];
	uint64_t lens[2 + WIRE_MAX_REFS];
	int fd, n = 1;

	parts[0] = job->input;
	lens[0] = job->input_len;
	for (size_t i = 0; i < job->n_refs; i++, n++) {
		parts[n] = job->refs[i];
		lens[n] = job->ref_lens[i];
	}
	if (job->frame != NULL && job->frame_len > 0) {
		parts[n] = job->frame;
		lens[n++] = job->frame_len;
	}
	fd = wire_memfd("firesync-job", parts, lens, n);
	if (fd < 0)
		snprintf(err, errlen, "cannot pass the image to a worker: %s",
		    strerror(-fd));
	return fd;
}

/* Is an idle worker's process gone?  It says nothing between jobs, so
 * a readable or hung-up socket means it died (or misbehaves). */
static bool
gone_while_idle(const struct worker *w)
{
	struct pollfd pfd = { w->sock, POLLIN, 0 };

	return poll(&pfd, 1, 0) != 0;
}

/* Replace a worker that died between jobs, and say so: that death is
 * nobody's session's fault. */
static void
replace_idle(struct worker *w)
{
	pid_t pid = w->pid;
	int status = worker_stop(w, false);

	if (WIFSIGNALED(status))
		log_warn("worker %d died while idle (signal %d); starting a "
		    "new one", (int)pid, WTERMSIG(status));
	else
		log_warn("worker %d died while idle (status %d); starting a "
		    "new one", (int)pid, WEXITSTATUS(status));
}

/*
 * Hand the job (wj + fd) to w, starting it if needed.  A worker found dead
 * before the job reached it is replaced and the job sent once more.
 * POOL_OK, POOL_WORKER (cannot start one; err says why) or POOL_CRASH (it
 * died on receipt; err says how).
 */
static enum pool_status
send_job(struct pool *p, struct worker *w, const struct pool_job *job,
    const struct wire_job *wj, int fd, char *err, size_t errlen)
{
	for (int tries = 0; tries < 2; tries++) {
		if (w->pid > 0 && gone_while_idle(w))
			replace_idle(w);
		if (w->pid <= 0 && worker_start(p, w, err, errlen) < 0)
			return POOL_WORKER;
		if (wire_send(w->sock, wj, sizeof(*wj), fd) == 0)
			return POOL_OK;
		if (tries == 0) {
			replace_idle(w);
			continue;
		}
		died(p, w, job, err, errlen);
	}
	return POOL_CRASH;
}

/* Wait for w's answer until deadline; false if it did not come. */
static bool
await(const struct worker *w, int64_t deadline)
{
	for (;;) {
		struct pollfd pfd = { w->sock, POLLIN, 0 };
		int64_t left = deadline - now_mono_ms();
		int rc;

		if (left <= 0)
			return false;
		rc = poll(&pfd, 1, (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		return rc > 0;
	}
}

/* The worker's own status, as the pool's, with the guest's reason in
 * err: each wire status keeps its meaning (a plugin's error stays one). */
static enum pool_status
result_status(const struct limits *l, const struct wire_result *res,
    char *err, size_t errlen)
{
	if (res->status == WIRE_CANCELLED)
		format_timeout(l->timeout_ms, err, errlen,
		    " (the model gave up at the deadline)");
	else
		snprintf(err, errlen, "%s", res->message);
	switch (res->status) {
	case WIRE_OK: return POOL_OK;
	case WIRE_NO_PLUGIN: return POOL_NO_PLUGIN;
	case WIRE_BAD_INPUT: return POOL_BAD_INPUT;
	case WIRE_TOO_LARGE: return POOL_TOO_LARGE;
	case WIRE_PLUGIN_ERROR: return POOL_PLUGIN_ERROR;
	case WIRE_BAD_RESULT: return POOL_BAD_RESULT;
	case WIRE_CANCELLED: return POOL_TIMEOUT;
	default: return POOL_WORKER;
	}
}

/*
 * Collect w's answer to job into res and, on success, its PNG into out.
 * POOL_OK, or POOL_CRASH / POOL_WORKER with err, having stopped or
 * replaced the worker when it crashed or misbehaved.
 */
/*
 * A result's buffer: its PNG, then each of the job's renditions, into
 * out; res's lengths checked against the job (no more renditions than
 * asked for, no sum that wraps).  0, or -errno with why.
 */
static int
take_outputs(int fd, struct wire_result *res, const struct pool_job *job,
    struct pool_result *out, char *why, size_t whylen)
{
	uint64_t total = res->output_len, off;
	uint8_t *all;
	int rc;

	for (size_t i = 0; i < WIRE_MAX_RENDITIONS; i++) {
		uint64_t n = res->rendition_len[i];

		if ((i >= job->n_renditions && n != 0) ||
		    (i < job->n_renditions && n == 0) ||
		    n > POOL_MAX_RESULT || total > POOL_MAX_RESULT * 8 - n) {
			snprintf(why, whylen, "renditions that were not asked "
			    "for");
			return -EPROTO;
		}
		total += n;
	}
	rc = wire_read_sealed(fd, total, POOL_MAX_RESULT * 8, &all, why,
	    whylen);
	if (rc < 0)
		return rc;
	off = res->output_len;
	for (size_t i = 0; i < job->n_renditions; i++) {
		out->rendition[i] = xmalloc(res->rendition_len[i]);
		memcpy(out->rendition[i], all + off, res->rendition_len[i]);
		out->rendition_len[i] = res->rendition_len[i];
		off += res->rendition_len[i];
	}
	out->png = all;		/* the rest is never read */
	out->png_len = res->output_len;
	res->frame_note[sizeof(res->frame_note) - 1] = '\0';
	out->framed = res->framed == WIRE_FRAME_APPLIED;
	if (res->framed == WIRE_FRAME_FAILED)
		text_format(out->frame_note, sizeof(out->frame_note), "%s",
		    res->frame_note);
	return 0;
}

void
pool_result_free(struct pool_result *out)
{
	free(out->png);
	out->png = NULL;
	out->png_len = 0;
	for (size_t i = 0; i < POOL_MAX_RENDITIONS; i++) {
		free(out->rendition[i]);
		out->rendition[i] = NULL;
		out->rendition_len[i] = 0;
	}
}

static enum pool_status
receive(struct pool *p, struct worker *w, const struct pool_job *job,
    struct wire_result *res, struct pool_result *out, char *err,
    size_t errlen)
{
	char why[256] = "a malformed message";
	int fd = -1, rc;

	rc = wire_recv(w->sock, res, sizeof(*res), WIRE_RESULT, &fd);
	if (rc == -EPIPE || rc == -ECONNRESET) {
		died(p, w, job, err, errlen);
		return POOL_CRASH;
	}
	if (rc == 0 && res->status == WIRE_OK && fd >= 0) {
		rc = take_outputs(fd, res, job, out, why, sizeof(why));
	} else if (rc == 0 && res->status == WIRE_OK) {
		snprintf(why, sizeof(why), "a result without its buffer");
		rc = -EPROTO;
	}
	if (fd >= 0)
		close(fd);
	if (rc < 0) {
		log_err("worker %d sent %s; killing it", (int)w->pid, why);
		worker_stop(w, true);
		snprintf(err, errlen, "the transform worker misbehaved");
		return POOL_WORKER;
	}
	return POOL_OK;
}


/* ---- hosted calls: remote plugins' transforms, many per process ---- */

static void *hw_main(void *arg);

/* The call with tag on h, unlinked; NULL if it is not pending (given up
 * at its deadline).  Under p->lock. */
static struct hcall *
hw_unlink(struct hworker *h, uint32_t tag)
{
	for (struct hcall **pp = &h->pending; *pp; pp = &(*pp)->next)
		if ((*pp)->tag == tag) {
			struct hcall *c = *pp;

			*pp = c->next;
			c->next = NULL;
			return c;
		}
	return NULL;
}

/* A call is over: status st, why in err (if not OK).  Under p->lock. */
static void
hcall_end(struct hcall *c, enum pool_status st, const char *err)
{
	c->st = st;
	if (err)
		snprintf(c->err, sizeof(c->err), "%s", err);
	c->done = true;
	pthread_cond_signal(&c->cond);
}

/* Stop h once it has no call in flight: it exits when its socket's
 * sending side closes.  Under p->lock. */
static void
hw_retire_idle(struct hworker *h)
{
	if (h->retiring && h->calls == 0 && h->pid > 0 && !h->dead &&
	    !h->starting)
		shutdown(h->sock, SHUT_WR);
}

/*
 * A hosted-call worker's thread: starts its process, then takes each
 * result to the call waiting for its tag; when the process ends (or
 * misbehaves, and is killed), the calls it took with it fail, and it is
 * reaped.
 */
static void *
hw_main(void *arg)
{
	struct hworker *h = arg;
	struct pool *p = h->p;
	struct wire_result *res;
	struct hcall *lost, *c;
	char why[160];
	int fd, rc, status, n_lost = 0, sock = -1;
	pid_t pid = 0;
	bool quiet;

	rc = spawn_worker(p, POOL_CALLS_PER_WORKER, &pid, &sock, why,
	    sizeof(why));
	pthread_mutex_lock(&p->lock);
	h->starting = false;
	if (rc == 0) {
		h->pid = pid;
		h->sock = sock;
		h->dead = false;
		h->retiring = false;
		h->jobs = 0;
	} else {
		snprintf(h->start_err, sizeof(h->start_err), "%s", why);
	}
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	if (rc != 0)
		return NULL;
	log_debug("hosted-call worker %d started", (int)pid);
	res = xmalloc(sizeof(*res));

	for (;;) {
		rc = wire_recv(h->sock, res, sizeof(*res), WIRE_RESULT, &fd);
		if (rc < 0)
			break;
		pthread_mutex_lock(&p->lock);
		c = hw_unlink(h, res->tag);
		if (c != NULL) {
			c->res = *res;
			c->fd = fd;
			fd = -1;
			hcall_end(c, POOL_OK, NULL);
		}
		pthread_mutex_unlock(&p->lock);
		if (fd >= 0)
			close(fd);	/* a call given up at its deadline */
	}
	if (rc != -EPIPE && rc != -ECONNRESET) {
		log_err("hosted-call worker %d sent a malformed message; "
		    "killing it", (int)pid);
		kill(pid, SIGKILL);
	}
	pthread_mutex_lock(&p->lock);
	h->dead = true;			/* nobody signals it from now on */
	quiet = p->abandoned || (h->retiring && h->pending == NULL);
	pthread_mutex_unlock(&p->lock);
	status = reap(pid, 2000);
	if (WIFSIGNALED(status))
		snprintf(why, sizeof(why), "crashed (signal %d%s)",
		    WTERMSIG(status), WTERMSIG(status) == SIGXCPU ?
		    ": CPU time limit" : "");
	else
		snprintf(why, sizeof(why), "exited unexpectedly (status %d)",
		    WEXITSTATUS(status));
	pthread_mutex_lock(&p->lock);
	lost = h->pending;
	h->pending = NULL;
	while ((c = lost) != NULL) {
		char err[256];

		lost = c->next;
		c->next = NULL;
		if (p->abandoned)
			snprintf(err, sizeof(err), "the daemon is shutting "
			    "down");
		else
			snprintf(err, sizeof(err), "plugin %s %s", c->plugin,
			    why);
		hcall_end(c, POOL_CRASH, err);
		n_lost++;
	}
	close(h->sock);
	h->sock = -1;
	h->pid = 0;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	if (n_lost > 0 || !quiet)
		log_warn("hosted-call worker %d %s with %d call(s) in flight; "
		    "the next call starts a new one", (int)pid, why, n_lost);
	else
		log_debug("hosted-call worker %d: stopped", (int)pid);
	free(res);
	return NULL;
}

/*
 * A hosted-call worker with room for one more call, that call counted on
 * it (h->calls), or NULL if every process slot is taken.  *start: the
 * slot is empty and the caller starts its process.  Under p->lock.
 */
static struct hworker *
hw_pick(struct pool *p, bool *start)
{
	struct hworker *best = NULL, *empty = NULL;

	*start = false;
	for (int i = 0; i < POOL_HOSTED_WORKERS_MAX; i++) {
		struct hworker *h = &p->hw[i];

		if ((h->pid > 0 || h->starting) && !h->dead && !h->retiring &&
		    h->calls < POOL_CALLS_PER_WORKER) {
			/* the least loaded of those running: calls spread,
			 * and a new process only when all are full */
			if (best == NULL || h->calls < best->calls)
				best = h;
		} else if (h->pid == 0 && !h->starting && h->calls == 0 &&
		    empty == NULL) {
			/* calls == 0: the callers of a process that died
			 * have all left it */
			empty = h;
		}
	}
	if (best == NULL && empty != NULL) {
		best = empty;
		best->starting = true;
		best->dead = false;
		*start = true;
	}
	if (best != NULL)
		best->calls++;
	return best;
}

/*
 * Start the process of slot h (the caller set h->starting) from a thread
 * of its own, which then reads its results: a worker dies with the thread
 * that started it (PR_SET_PDEATHSIG), so not with the caller's.  Returns
 * with h started, or h->pid 0 and why in err.  Takes and leaves p->lock
 * held.
 */
static void
hw_start(struct pool *p, struct hworker *h, char *err, size_t errlen)
{
	bool joined = h->reader;

	h->reader = false;
	h->p = p;
	h->start_err[0] = '\0';
	pthread_mutex_unlock(&p->lock);
	if (joined)		/* the last process's thread has ended */
		pthread_join(h->thread, NULL);
	if (pthread_create(&h->thread, NULL, hw_main, h) != 0)
		fatal("cannot start a thread: out of resources");
	pthread_mutex_lock(&p->lock);
	h->reader = true;
	while (h->starting)
		pthread_cond_wait(&p->cond, &p->lock);
	if (h->pid == 0)
		snprintf(err, errlen, "%s", h->start_err);
}

/* Wait for c until deadline (monotonic ms); false if it did not end.
 * Under p->lock. */
static bool
hcall_wait(struct pool *p, struct hcall *c, int64_t deadline)
{
	while (!c->done) {
		int64_t left = deadline - now_mono_ms();
		struct timespec ts;

		if (left <= 0)
			return false;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += left / 1000;
		ts.tv_nsec += (left % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&c->cond, &p->lock, &ts);
	}
	return true;
}

/* The answer of a call that ended well into out; its status. */
static enum pool_status
hcall_result(struct pool *p, struct hworker *h, pid_t pid, struct hcall *c,
    const struct limits *l, struct pool_result *out)
{
	char *err = out->message, why[256];
	size_t errlen = sizeof(out->message);
	int rc = 0;

	if (c->res.status == WIRE_OK && c->fd >= 0) {
		rc = take_outputs(c->fd, &c->res, c->job, out, why,
		    sizeof(why));
	} else if (c->res.status == WIRE_OK) {
		snprintf(why, sizeof(why), "a result without its buffer");
		rc = -EPROTO;
	}
	if (c->fd >= 0)
		close(c->fd);
	if (rc < 0) {
		log_err("hosted-call worker %d sent %s; killing it", (int)pid,
		    why);
		pthread_mutex_lock(&p->lock);
		if (h->pid == pid && !h->dead)
			kill(pid, SIGKILL);
		pthread_mutex_unlock(&p->lock);
		snprintf(err, errlen, "the transform worker misbehaved");
		return POOL_WORKER;
	}
	c->res.plugin[sizeof(c->res.plugin) - 1] = '\0';
	c->res.message[sizeof(c->res.message) - 1] = '\0';
	snprintf(out->plugin, sizeof(out->plugin), "%s", c->res.plugin);
	return result_status(l, &c->res, err, errlen);
}

/* ---- the provider view: every call of a remote plugin shares it ---- */

/* A pause before the next call to ln's service: its Retry-After, or the
 * backoff (jittered by a fifth either way), which then doubles.  Under
 * p->lock. */
static void
lane_pause(struct lane *ln, int64_t retry_after_ms, int64_t now)
{
	int64_t wait = retry_after_ms;

	if (wait <= 0) {
		ln->backoff_ms = ln->backoff_ms == 0 ? BACKOFF_FIRST_MS :
		    ln->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS :
		    ln->backoff_ms * 2;
		wait = ln->backoff_ms - ln->backoff_ms / 5 +
		    (int64_t)((uint64_t)random() % (uint64_t)(ln->backoff_ms *
		    2 / 5 + 1));
	}
	if (now + wait > ln->not_before)
		ln->not_before = now + wait;
}

/* Open ln's circuit: calls are turned away but for one probe every
 * PROBE_MS (or the service's Retry-After, if longer).  Under p->lock. */
static void
lane_open(struct lane *ln, int64_t retry_after_ms, int64_t now)
{
	bool was = ln->circuit != CLOSED;

	ln->circuit = OPEN;
	ln->probe_out = false;
	ln->probe_at = now + (retry_after_ms > PROBE_MS ? retry_after_ms :
	    PROBE_MS);
	if (!was) {
		ln->n.circuit_opened++;
		log_err("plugin %s: its service failed %d times in a row; "
		    "calls are turned away%s, and one is let through every "
		    "%d s to see when it answers again", ln->plugin,
		    ln->failures, *ln->fallback ? " to the fallback look" : "",
		    PROBE_MS / 1000);
	}
}

/*
 * What a call's answer says about ln's service; the request went out at
 * sent (monotonic ms).  Calls slow down once per wave: answers to
 * requests sent before the last slow-down halve nothing more and double
 * no backoff (twenty 429s at once are one signal, not twenty), though
 * a Retry-After still counts.  Under p->lock.
 */
static void
lane_learn(struct lane *ln, enum pool_status st, uint32_t service,
    int64_t retry_after_ms, bool probe, int64_t sent)
{
	int64_t now = now_mono_ms();
	bool fresh = sent >= ln->slowed_ms;

	if (probe)
		ln->probe_out = false;
	if (st == POOL_OK) {
		ln->n.ok++;
		if (ln->circuit != CLOSED)
			log_notice("plugin %s: its service answers again; calls "
			    "resume", ln->plugin);
		ln->circuit = CLOSED;
		ln->failures = 0;
		ln->backoff_ms = 0;
		if (ln->allowed < ln->limit)
			ln->allowed++;
		return;
	}
	if (service == FIRESYNC_SERVICE_RATE_LIMITED ||
	    service == FIRESYNC_SERVICE_UNAVAILABLE || st == POOL_TIMEOUT) {
		bool limited = service == FIRESYNC_SERVICE_RATE_LIMITED;

		if (limited) {
			ln->n.rate_limited++;
		} else {
			ln->n.unavailable++;
			ln->failures++;
		}
		if (fresh) {
			/* slower, every call: half as many at once, and a
			 * pause */
			ln->allowed = ln->allowed > 1 ? ln->allowed / 2 : 1;
			lane_pause(ln, retry_after_ms, now);
			ln->slowed_ms = now;
		} else if (retry_after_ms > 0 &&
		    now + retry_after_ms > ln->not_before) {
			ln->not_before = now + retry_after_ms;
		}
		if (probe || (!limited && ln->failures >= CIRCUIT_FAILURES))
			lane_open(ln, retry_after_ms, now);
		return;
	}
	ln->n.failed++;
	if (probe && ln->circuit == HALF_OPEN)
		ln->circuit = CLOSED;	/* it answered, if not with an image */
}

/* The service turned the call away, retryable. */
static bool
retryable(enum pool_status st, uint32_t service)
{
	if (st == POOL_TIMEOUT)
		return false;	/* the deadline: no time for another */
	return service == FIRESYNC_SERVICE_RATE_LIMITED ||
	    service == FIRESYNC_SERVICE_UNAVAILABLE;
}

enum admit { ADMIT_OK, ADMIT_OPEN, ADMIT_LATE, ADMIT_GONE };

/*
 * A call slot in ln and a worker for the call, once ln's service may be
 * called: its circuit closed (or this call its probe), the pause over, a
 * slot free.  ADMIT_OPEN: the circuit is open (turned away at once);
 * ADMIT_LATE: not before the deadline (monotonic ms); ADMIT_GONE: the
 * daemon is shutting down.  Under p->lock.
 */
static enum admit
admit(struct pool *p, struct lane *ln, struct model_slots *ms,
    int64_t deadline, struct hworker **hp, bool *start, bool *probe)
{
	*probe = false;
	ln->waiting++;
	for (;;) {
		int64_t now = now_mono_ms(), until;
		struct timespec ts;

		if (p->abandoned) {
			ln->waiting--;
			return ADMIT_GONE;
		}
		if (ln->circuit == OPEN && now >= ln->probe_at)
			ln->circuit = HALF_OPEN;
		if (ln->circuit == OPEN || (ln->circuit == HALF_OPEN &&
		    ln->probe_out)) {
			ln->waiting--;
			return ADMIT_OPEN;
		}
		if (deadline - now < CALL_MIN_MS ||
		    deadline - ln->not_before < CALL_MIN_MS) {
			ln->waiting--;
			return ADMIT_LATE;
		}
		if (now >= ln->not_before && ln->in_flight < ln->allowed &&
		    (ms == NULL || ms->limit == 0 ||
		    ms->in_flight < ms->limit) &&
		    (*hp = hw_pick(p, start)) != NULL)
			break;
		until = ln->not_before > now ? ln->not_before : deadline;
		ts = realtime_in_ms(until - now);
		pthread_cond_timedwait(&p->cond, &p->lock, &ts);
	}
	ln->waiting--;
	ln->in_flight++;
	if (ms != NULL)
		ms->in_flight++;
	if (ln->circuit == HALF_OPEN) {
		ln->probe_out = true;
		*probe = true;
	}
	return ADMIT_OK;
}

/*
 * One request of a hosted call on a hosted-call worker: send job (its
 * deadline timeout_ms from now) with a tag and wait for the answer.  The
 * caller was admitted to ln with worker h (start: h's process is the
 * caller's to start).  Returns the status, with the answer in c.  A call
 * past its deadline is given up (its late answer is dropped) and its
 * process takes no new calls: it is stopped once its other calls end, so
 * a plugin thread stuck in a call cannot pile up.  Takes and leaves
 * p->lock held.
 */
static enum pool_status
hosted_request(struct pool *p, struct lane *ln, struct hworker *h,
    bool start, const struct pool_job *job, const struct limits *l,
    int64_t timeout_ms, int fd, struct hcall *c, pid_t *pidp, char *err,
    size_t errlen)
{
	struct wire_job *wj;
	struct limits lim = *l;
	enum pool_status st;
	pid_t pid;
	int sock, rc;

	memset(&c->res, 0, sizeof(c->res));
	c->done = false;
	c->fd = -1;
	c->err[0] = '\0';
	*pidp = 0;
	if (start)
		hw_start(p, h, err, errlen);
	while (h->starting)
		pthread_cond_wait(&p->cond, &p->lock);
	if (h->pid == 0 || h->dead) {
		if (!start)
			snprintf(err, errlen, "no hosted-call worker could be "
			    "started (see the log)");
		st = POOL_WORKER;
		goto done;
	}
	c->tag = ++h->next_tag;
	c->next = h->pending;
	h->pending = c;
	if (++h->jobs >= l->max_jobs)
		h->retiring = true;	/* recycled after this call */
	*pidp = pid = h->pid;
	/* our own handle: the reader closes h->sock when the process ends */
	sock = fcntl(h->sock, F_DUPFD_CLOEXEC, 0);
	ln->n.requests++;
	pthread_mutex_unlock(&p->lock);

	lim.timeout_ms = timeout_ms;
	wj = xmalloc(sizeof(*wj));
	fill_job(wj, job, &lim);
	wj->tag = c->tag;
	rc = sock < 0 ? -errno : wire_send(sock, wj, sizeof(*wj), fd);
	free(wj);
	if (sock >= 0)
		close(sock);

	pthread_mutex_lock(&p->lock);
	if (rc < 0 && !c->done) {
		/* the process is going or gone; its reader fails the rest */
		hw_unlink(h, c->tag);
		if (h->pid == pid && !h->dead)
			kill(pid, SIGKILL);
		snprintf(c->err, sizeof(c->err), "plugin %s: the hosted-call "
		    "worker could not take the call (%s)", c->plugin,
		    strerror(-rc));
		c->st = POOL_CRASH;
		c->done = true;
	}
	/* a plugin that watches host->cancelled() gets a moment to return
	 * at its deadline */
	if (hcall_wait(p, c, now_mono_ms() + timeout_ms + KILL_GRACE_MS)) {
		st = c->st;
		if (st != POOL_OK)
			snprintf(err, errlen, "%s", c->err);
	} else {
		hw_unlink(h, c->tag);
		h->retiring = true;
		log_warn("hosted-call worker %d: a call of plugin %s ran past "
		    "its %" PRId64 " ms deadline (model %s); given up, and "
		    "the worker is replaced once its other calls end",
		    (int)pid, c->plugin, timeout_ms, job->model);
		format_timeout(l->timeout_ms, err, errlen, "");
		st = POOL_TIMEOUT;
	}
done:
	h->calls--;
	hw_retire_idle(h);
	ln->in_flight--;
	pthread_cond_broadcast(&p->cond);
	return st;
}

/*
 * Run job, a model of remote plugin lane (1-based): admitted by the
 * service's shared view, sent, and sent again (up to the plugin's
 * max-retries, within the deadline) when the service turns it away.
 */
static enum pool_status
hosted_run(struct pool *p, int lane, const struct pool_job *job,
    const struct limits *l, struct pool_result *out)
{
	struct lane *ln = &p->lanes[lane - 1];
	char *err = out->message;
	size_t errlen = sizeof(out->message);
	int64_t deadline = now_mono_ms() + l->timeout_ms;
	struct hcall c = { .fd = -1, .job = job };
	pthread_condattr_t ca;
	enum pool_status st = POOL_WORKER;
	struct model_slots *ms;
	int fd, failed_tries = 0;

	if ((fd = job_memfd(job, err, errlen)) < 0)
		return POOL_WORKER;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c.cond, &ca);
	pthread_condattr_destroy(&ca);
	snprintf(c.plugin, sizeof(c.plugin), "%s", ln->plugin);

	pthread_mutex_lock(&p->lock);
	ms = model_slots(ln, job->model);
	for (int attempt = 0; ; attempt++) {
		struct hworker *h = NULL;
		bool start = false, probe;
		enum admit a = admit(p, ln, ms, deadline, &h, &start, &probe);
		uint32_t service;
		int64_t sent;
		pid_t pid;

		if (a != ADMIT_OK) {
			if (a == ADMIT_GONE)
				snprintf(err, errlen, "the daemon is shutting "
				    "down");
			else if (attempt == 0 || a == ADMIT_OPEN)
				snprintf(err, errlen, "the AI service is "
				    "unavailable; please try again");
			/* else: err says what the last request got */
			if (a != ADMIT_GONE)
				ln->n.turned_away++;
			st = a == ADMIT_GONE ? POOL_WORKER : attempt == 0 ||
			    a == ADMIT_OPEN ? POOL_UNAVAILABLE : st;
			break;
		}
		sent = now_mono_ms();
		st = hosted_request(p, ln, h, start, job, l, deadline - sent,
		    fd, &c, &pid, err, errlen);
		if (ms != NULL) {
			ms->in_flight--;
			pthread_cond_broadcast(&p->cond);
		}
		out->requests += pid > 0;
		service = st == POOL_OK ? c.res.service : 0;
		out->input_tokens += c.res.input_tokens;
		out->output_tokens += c.res.output_tokens;
		/* an answer that is the plugin's failure is not the call's */
		lane_learn(ln, st != POOL_OK ? st : c.res.status == WIRE_OK ?
		    POOL_OK : c.res.status == WIRE_CANCELLED ? POOL_TIMEOUT :
		    POOL_PLUGIN_ERROR, service, c.res.retry_after_ms, probe,
		    sent);
		if (st == POOL_OK && c.res.status == WIRE_OK) {
			pthread_mutex_unlock(&p->lock);
			st = hcall_result(p, h, pid, &c, l, out);
			pthread_mutex_lock(&p->lock);
			break;
		}
		if (st == POOL_OK) {	/* the plugin's own failure */
			if (c.fd >= 0)
				close(c.fd);
			c.res.plugin[sizeof(c.res.plugin) - 1] = '\0';
			c.res.message[sizeof(c.res.message) - 1] = '\0';
			snprintf(out->plugin, sizeof(out->plugin), "%s",
			    c.res.plugin);
			st = result_status(l, &c.res, err, errlen);
		}
		/* a 429 is the service asking for patience: tried again
		 * for as long as the deadline allows; a failure, up to the
		 * plugin's max-retries times (and not once the circuit is
		 * open) */
		if (!retryable(st, service) || p->abandoned ||
		    (service != FIRESYNC_SERVICE_RATE_LIMITED &&
		    ++failed_tries > ln->retries))
			break;
		log_info("plugin %s: model %s: %s; trying again", ln->plugin,
		    job->model, err);
	}
	out->service = st == POOL_OK ? 0 : c.res.service;
	pthread_mutex_unlock(&p->lock);
	close(fd);
	pthread_cond_destroy(&c.cond);
	return st;
}

/* May the guest get the fallback look instead of failure st?  Not when
 * the model refused the photo, nor for a photo no model could use. */
static bool
falls_back(enum pool_status st, uint32_t service)
{
	switch (st) {
	case POOL_OK:
	case POOL_NO_PLUGIN:
	case POOL_BAD_INPUT:
	case POOL_TOO_LARGE:
		return false;
	case POOL_PLUGIN_ERROR:
		return service != FIRESYNC_SERVICE_REFUSED;
	default:
		return true;
	}
}

int
pool_model_lane(struct pool *p, const char *model)
{
	int lane = 0;

	pthread_mutex_lock(&p->lock);
	for (uint32_t i = 0; model && i < p->n_models; i++)
		if (strcmp(p->models[i], model) == 0) {
			lane = p->model_lane[i];
			break;
		}
	pthread_mutex_unlock(&p->lock);
	return lane;
}

int
pool_lanes(struct pool *p, struct pool_lane *out, int max,
    int *hosted_workers)
{
	int64_t now = now_mono_ms();
	int n;

	pthread_mutex_lock(&p->lock);
	n = p->n_lanes;
	for (int i = 0; i < n && i < max; i++) {
		snprintf(out[i].plugin, sizeof(out[i].plugin), "%s",
		    p->lanes[i].plugin);
		out[i].limit = p->lanes[i].limit;
		out[i].allowed = p->lanes[i].allowed;
		out[i].in_flight = p->lanes[i].in_flight;
		out[i].waiting = p->lanes[i].waiting;
		out[i].circuit_open = p->lanes[i].circuit != CLOSED;
		out[i].paused_ms = p->lanes[i].not_before > now ?
		    p->lanes[i].not_before - now : 0;
		snprintf(out[i].fallback, sizeof(out[i].fallback), "%s",
		    p->lanes[i].fallback);
		out[i].n = p->lanes[i].n;
	}
	if (hosted_workers != NULL) {
		*hosted_workers = 0;
		for (int i = 0; i < POOL_HOSTED_WORKERS_MAX; i++)
			*hosted_workers += p->hw[i].pid > 0 &&
			    !p->hw[i].dead;
	}
	pthread_mutex_unlock(&p->lock);
	return n;
}

/* Hand job to a worker and collect its answer into out. */
static enum pool_status
run_job(struct pool *p, const struct pool_job *job, struct pool_result *out)
{
	char *err = out->message;
	size_t errlen = sizeof(out->message);
	struct wire_job *wj;
	struct wire_result res;
	struct worker *w;
	enum pool_status st;
	struct limits l = limits_of(p, job);
	bool stale;
	int fd, lane;

	if (job->n_refs > WIRE_MAX_REFS) {
		snprintf(err, errlen, "too many reference images (%zu, at "
		    "most %d)", job->n_refs, WIRE_MAX_REFS);
		return POOL_BAD_INPUT;
	}
	if (job->ai && (job->model == NULL || strlen(job->model) >=
	    WIRE_NAME_LEN)) {
		char name[WIRE_NAME_LEN];

		/* no plugin has so long a name, and a cut one could be
		 * another model's */
		snprintf(err, errlen, "no plugin for model '%s'",
		    text_name(job->model ? job->model : "", 60, name,
		    sizeof(name)));
		return POOL_NO_PLUGIN;
	}
	if (job->prompt && strlen(job->prompt) >= WIRE_PROMPT_LEN) {
		snprintf(err, errlen, "the prompt is too long (%zu bytes, at "
		    "most %d)", strlen(job->prompt), WIRE_PROMPT_LEN - 1);
		return POOL_BAD_INPUT;
	}
	if (job->ai && (lane = pool_model_lane(p, job->model)) > 0)
		return hosted_run(p, lane, job, &l, out);
	if ((fd = job_memfd(job, err, errlen)) < 0)
		return POOL_WORKER;
	wj = xmalloc(sizeof(*wj));
	fill_job(wj, job, &l);
	w = acquire(p);
	st = send_job(p, w, job, wj, fd, err, errlen);
	close(fd);
	free(wj);
	if (st != POOL_OK) {
		release(p, w);
		return st;
	}
	/* a plugin that watches host->cancelled() gets a moment to return
	 * at its deadline before we kill the worker */
	if (!await(w, now_mono_ms() + l.timeout_ms + KILL_GRACE_MS)) {
		pid_t pid = w->pid;

		worker_stop(w, true);
		format_timeout(l.timeout_ms, err, errlen, "");
		log_warn("worker %d: killed at the %" PRId64 " ms deadline "
		    "(model %s); starting a new one", (int)pid,
		    l.timeout_ms, job->ai ? job->model : "none");
		release(p, w);
		return POOL_TIMEOUT;
	}
	memset(&res, 0, sizeof(res));
	st = receive(p, w, job, &res, out, err, errlen);
	if (st != POOL_OK) {
		release(p, w);
		return st;
	}
	res.plugin[sizeof(res.plugin) - 1] = '\0';
	res.message[sizeof(res.message) - 1] = '\0';
	snprintf(out->plugin, sizeof(out->plugin), "%s", res.plugin);
	pthread_mutex_lock(&p->lock);
	stale = w->stale;
	w->stale = false;
	pthread_mutex_unlock(&p->lock);
	if (++w->jobs >= l.max_jobs || stale) {
		log_debug("worker %d: recycled after %d jobs", (int)w->pid,
		    w->jobs);
		worker_stop(w, false);
	}
	release(p, w);
	return result_status(&l, &res, err, errlen);
}

bool
pool_fallback_for(struct pool *p, const char *model, char *out,
    size_t outlen)
{
	int lane = pool_model_lane(p, model);
	char fb[WIRE_NAME_LEN], plugin[WIRE_NAME_LEN];

	*out = '\0';
	if (lane <= 0)
		return false;
	pthread_mutex_lock(&p->lock);
	snprintf(fb, sizeof(fb), "%s", p->lanes[lane - 1].fallback);
	pthread_mutex_unlock(&p->lock);
	/* a look of the CPU workers: a fallback never waits on a service */
	if (*fb == '\0' || pool_model_lane(p, fb) != 0 ||
	    !pool_plugin_for(p, fb, plugin, sizeof(plugin)))
		return false;
	snprintf(out, outlen, "%s", fb);
	return true;
}

/* job's hosted call failed as out says: give the guest its plugin's
 * fallback look instead, if it has one and the failure allows. */
static void
fall_back(struct pool *p, const struct pool_job *job, struct pool_result *out)
{
	char fb[WIRE_NAME_LEN], why[sizeof(out->fallback_why)];
	struct pool_job fj = *job;
	struct pool_result *fr;
	int lane;

	if (!falls_back(out->status, out->service) ||
	    !pool_fallback_for(p, job->model, fb, sizeof(fb)))
		return;
	text_format(why, sizeof(why), "%s", out->message);
	fj.model = fb;
	fr = xcalloc(1, sizeof(*fr));
	fr->status = run_job(p, &fj, fr);
	if (fr->status == POOL_OK) {
		pool_result_free(out);
		out->png = fr->png;
		out->png_len = fr->png_len;
		for (size_t i = 0; i < POOL_MAX_RENDITIONS; i++) {
			out->rendition[i] = fr->rendition[i];
			out->rendition_len[i] = fr->rendition_len[i];
		}
		out->framed = fr->framed;
		memcpy(out->frame_note, fr->frame_note,
		    sizeof(out->frame_note));
		out->status = POOL_OK;
		out->fallback = true;
		snprintf(out->fallback_why, sizeof(out->fallback_why), "%s",
		    why);
		snprintf(out->model, sizeof(out->model), "%s", fb);
		snprintf(out->plugin, sizeof(out->plugin), "%s", fr->plugin);
		out->message[0] = '\0';
		if ((lane = pool_model_lane(p, job->model)) > 0) {
			pthread_mutex_lock(&p->lock);
			p->lanes[lane - 1].n.fallbacks++;
			pthread_mutex_unlock(&p->lock);
		}
	} else {
		pool_result_free(fr);
		log_warn("model %s's fallback %s failed too: %s", job->model,
		    fb, fr->message);
	}
	free(fr);
}

enum pool_status
pool_transform(struct pool *p, const struct pool_job *job,
    struct pool_result *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->model, sizeof(out->model), "%s", job->ai && job->model ?
	    job->model : "");
	out->status = run_job(p, job, out);
	if (out->status != POOL_OK && job->ai && !job->no_fallback)
		fall_back(p, job, out);
	if (out->status != POOL_OK)
		pool_result_free(out);
	/* a worker that died or was killed named no plugin: the one the
	 * workers said serves the model */
	if (out->plugin[0] == '\0' && job->ai)
		pool_plugin_for(p, job->model, out->plugin,
		    sizeof(out->plugin));
	return out->status;
}

const char *
pool_status_name(enum pool_status st)
{
	static const char *const names[POOL_STATUS_N] = {
		[POOL_OK] = "ok",
		[POOL_NO_PLUGIN] = "no_plugin",
		[POOL_BAD_INPUT] = "bad_input",
		[POOL_TOO_LARGE] = "too_large",
		[POOL_PLUGIN_ERROR] = "plugin_error",
		[POOL_BAD_RESULT] = "bad_result",
		[POOL_TIMEOUT] = "timeout",
		[POOL_CRASH] = "crash",
		[POOL_WORKER] = "worker",
		[POOL_UNAVAILABLE] = "unavailable",
	};

	return (unsigned)st < POOL_STATUS_N ? names[st] : "worker";
}

int
pool_worker_report(const char *worker_path, const char *plugin_dir,
    const char *config_path, const char *mode)
{
	struct pool p;
	const char *argv[24], *env[8];
	char bufs[5][PATH_LEN], envbuf[4][PATH_LEN];
	pid_t pid;
	int status, rc;

	memset(&p, 0, sizeof(p));
	pthread_mutex_init(&p.lock, NULL);
	p.worker_path = (char *)worker_path;
	p.plugin_dir = (char *)plugin_dir;
	p.config_path = (char *)config_path;
	p.o.memory_mb = 0;
	p.o.max_jobs = 1;
	p.o.timeout_ms = 1000;
	p.o.log_level = LOG_ERR;
	worker_argv(&p, argv, bufs, false, mode, 0);
	/* the environment of every worker: not the daemon's, and no
	 * LeakSanitizer (see worker_env) */
	worker_env(env, envbuf);
	rc = posix_spawn(&pid, worker_path, NULL, NULL, (char *const *)argv,
	    (char *const *)env);
	pthread_mutex_destroy(&p.lock);
	if (rc != 0) {
		fprintf(stderr, "cannot start %s: %s\n", worker_path,
		    strerror(rc));
		return 1;
	}
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
