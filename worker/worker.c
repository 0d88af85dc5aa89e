/*
 * worker.c - firesync-worker: where guest photos are decoded and plugins
 * run, in a process of its own.
 *
 * Started by firesyncd or firesync-transform (never by hand) with its end
 * of a SOCK_SEQPACKET socket on descriptor 3, a clean environment and no
 * other descriptor beyond 0-2.  It limits itself (address space, CPU time,
 * file size, no core dumps, no new privileges, dies with its parent),
 * reads its configuration, confines itself (sandbox.h), loads the
 * plugins, says hello with the models it serves, then runs one job at a
 * time until the socket closes.  A crash here costs
 * one session; the host notices and starts a new worker.
 *
 * With --list it only loads the plugins, prints what loaded and what was
 * refused and why, and exits (firesyncd --list-plugins); with
 * --check-config it loads them and prints the [plugin.NAME] settings no
 * plugin reads (firesyncd --check-config).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "image.h"
#include "log.h"
#include "job.h"
#include "plugins.h"
#include "sandbox.h"
#include "wire.h"

/* The most calls one hosted-call worker runs at once. */
#define WORKER_CALLS_MAX 64

/* This worker process: its plugins and the largest result it sends. */
struct process {
	struct plugin_set plugins;
	uint64_t max_output;
};

static void
limit(int resource, rlim_t value, const char *what)
{
	struct rlimit rl = { value, value };

	if (setrlimit(resource, &rl) < 0)
		log_warn("worker: cannot limit %s: %s", what, strerror(errno));
}

static void
confine(long memory_mb, long cpu_seconds, long output_mb)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		exit(0);		/* the parent is already gone */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		log_warn("worker: PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
	limit(RLIMIT_CORE, 0, "core dumps");
	limit(RLIMIT_FSIZE, (rlim_t)output_mb << 20, "file size");
	if (cpu_seconds > 0)
		limit(RLIMIT_CPU, (rlim_t)cpu_seconds, "CPU time");
#if defined(__SANITIZE_ADDRESS__)
	(void)memory_mb;
	log_debug("worker: address-space limit not set: AddressSanitizer "
	    "reserves terabytes of shadow memory");
#else
	if (memory_mb > 0)
		limit(RLIMIT_AS, (rlim_t)memory_mb << 20, "address space");
#endif
}

/* Confine this process before any plugin is loaded; the network only if
 * a plugin's section asks for it (plugins share their worker, so that
 * plugin's request opens it for the worker). */
static int
enter_sandbox(const char *dir, const struct plugin_configs *cfgs,
    bool announce)
{
	const char *files[32];
	struct sandbox_options so = { .plugin_dir = dir,
	    .announce = announce, .files = files };
	const char *who = plugin_wants_network(cfgs);

	so.n_files = plugin_named_files(cfgs, files,
	    sizeof(files) / sizeof(files[0]));

	so.network = who != NULL;
	if (who && announce)
		log_notice("sandbox: plugin %s asks for the network "
		    "([plugin.%s] network = yes); this worker gets it", who,
		    who);
	if (sandbox_enter(&so) < 0) {
		log_err("worker: cannot confine this process; not loading "
		    "any plugin");
		return -1;
	}
	return 0;
}

/* Say hello: the models this worker serves, and of what kind. */
static int
hello(const struct process *w, int sock)
{
	struct wire_hello *hi = xcalloc(1, sizeof(*hi));
	int rc;

	wire_header_init(&hi->h, WIRE_HELLO, sizeof(*hi));
	hi->n_refused = (uint32_t)w->plugins.n_refused;
	for (size_t i = 0; i < w->plugins.n; i++) {
		const struct loaded_plugin *lp = &w->plugins.v[i];

		for (const char *const *m = lp->models; *m; m++) {
			uint32_t k = hi->n_models;

			if (k == WIRE_MAX_MODELS)
				break;
			snprintf(hi->model[k], WIRE_NAME_LEN, "%s", *m);
			snprintf(hi->plugin[k], WIRE_NAME_LEN, "%s",
			    lp->desc->name);
			hi->flags[k] = lp->remote ? WIRE_MODEL_REMOTE : 0;
			hi->calls[k] = (uint32_t)lp->calls;
			hi->model_calls[k] = (uint32_t)plugin_model_calls(lp,
			    *m);
			hi->retries[k] = (uint32_t)lp->retries;
			snprintf(hi->fallback[k], WIRE_NAME_LEN, "%s",
			    lp->fallback ? lp->fallback : "");
			hi->n_models++;
		}
	}
	rc = wire_send(sock, hi, sizeof(*hi), -1);
	free(hi);
	return rc;
}

/* Run one job mapped at mem and answer it on sock (under send_lock if
 * not NULL, counting the call out of *active first: the host may send the
 * next as soon as it has the answer); false if the host is gone. */
static bool
answer(struct process *w, int sock, pthread_mutex_t *send_lock, int *active,
    const struct wire_job *job, const uint8_t *mem)
{
	struct wire_result r;
	struct job_out made;
	int out = -1, rc;

	memset(&r, 0, sizeof(r));
	wire_header_init(&r.h, WIRE_RESULT, sizeof(r));
	r.tag = job->tag;
	job_run(&w->plugins, w->max_output, job, mem, &made, &r);
	if (r.status == WIRE_OK) {
		/* the PNG, then each rendition */
		const void *parts[1 + WIRE_MAX_RENDITIONS] = { made.png };
		uint64_t lens[1 + WIRE_MAX_RENDITIONS] = { made.png_len };

		for (uint32_t i = 0; i < job->n_renditions; i++) {
			parts[1 + i] = made.rend[i];
			lens[1 + i] = made.rend_len[i];
			r.rendition_len[i] = made.rend_len[i];
		}
		out = wire_memfd("firesync-result", parts, lens,
		    1 + (int)job->n_renditions);
		if (out < 0)
			job_error(&r, WIRE_INTERNAL, r.plugin, "cannot hand "
			    "back the result: %s", strerror(-out));
		r.output_len = made.png_len;
	}
	job_out_free(&made);
	if (send_lock)
		pthread_mutex_lock(send_lock);
	if (active)
		(*active)--;
	rc = wire_send(sock, &r, sizeof(r), out);
	if (send_lock)
		pthread_mutex_unlock(send_lock);
	if (out >= 0)
		close(out);
	return rc == 0;
}

/* The next job and its mapped buffer (munmap *need bytes); NULL when the
 * host closed the socket. */
static uint8_t *
next_job(int sock, struct wire_job *job, size_t *need)
{
	uint8_t *mem;
	int fd, rc;

	rc = wire_recv(sock, job, sizeof(*job), WIRE_JOB, &fd);
	if (rc == -EPIPE)
		return NULL;			/* host closed: done */
	if (rc < 0)
		fatal("worker: bad message from the host: %s", strerror(-rc));
	mem = job_accept(job, fd, need);
	close(fd);
	if (mem == NULL)
		fatal("worker: job without a usable image buffer");
	return mem;
}

/* A CPU worker: one job at a time. */
static int
serve(struct process *w, int sock)
{
	struct wire_job *job = xmalloc(sizeof(*job));
	uint8_t *mem;
	size_t need;

	if (hello(w, sock) < 0)
		return 1;
	while ((mem = next_job(sock, job, &need)) != NULL) {
		bool ok = answer(w, sock, NULL, NULL, job, mem);

		munmap(mem, need);
		if (!ok)
			break;
	}
	free(job);
	return 0;
}

/* ---- a hosted-call worker: up to max_calls jobs at once ---- */

struct calls {
	struct process *w;
	int sock;
	int max;
	pthread_mutex_t lock;		/* active; sending a result */
	int active;
};

struct call {
	struct calls *cs;
	struct wire_job *job;
	uint8_t *mem;
	size_t need;
};

static void *
call_main(void *arg)
{
	struct call *c = arg;
	struct calls *cs = c->cs;

	answer(cs->w, cs->sock, &cs->lock, &cs->active, c->job, c->mem);
	munmap(c->mem, c->need);
	free(c->job);
	free(c);
	return NULL;
}

static int
serve_calls(struct process *w, int sock, int max)
{
	struct calls cs = { .w = w, .sock = sock, .max = max };
	pthread_attr_t attr;

	pthread_mutex_init(&cs.lock, NULL);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (hello(w, sock) < 0)
		return 1;
	for (;;) {
		struct call *c = xcalloc(1, sizeof(*c));
		pthread_t t;
		int active;

		c->cs = &cs;
		c->job = xmalloc(sizeof(*c->job));
		c->mem = next_job(sock, c->job, &c->need);
		if (c->mem == NULL) {
			free(c->job);
			free(c);
			break;
		}
		pthread_mutex_lock(&cs.lock);
		active = ++cs.active;
		pthread_mutex_unlock(&cs.lock);
		if (active > max)
			fatal("worker: the host sent call %d of at most %d",
			    active, max);
		if (pthread_create(&t, &attr, call_main, c) != 0)
			fatal("worker: cannot start a thread for a call");
	}
	pthread_attr_destroy(&attr);
	pthread_mutex_lock(&cs.lock);
	if (cs.active > 0) {
		/* the host left with calls running (it is shutting down or
		 * gave up on them): nobody wants their answers, and their
		 * plugin may not be unloaded under them */
		_exit(0);
	}
	pthread_mutex_unlock(&cs.lock);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "plugin-dir", required_argument, NULL, 'p' },
		{ "config", required_argument, NULL, 'c' },
		{ "memory-mb", required_argument, NULL, 'm' },
		{ "cpu-seconds", required_argument, NULL, 't' },
		{ "max-output-mb", required_argument, NULL, 'o' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "announce", no_argument, NULL, 'a' },
		{ "list", no_argument, NULL, 'L' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "calls", required_argument, NULL, 'n' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL, *config = NULL;
	long memory_mb = 2048, cpu_s = 0, output_mb = 256, calls = 0;
	bool announce = false, list = false, check = false;
	struct plugin_configs cfgs;
	struct process w;
	char err[512];
	int c, rc;

	log_init();
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p': dir = optarg; break;
		case 'c': config = optarg; break;
		case 'm': memory_mb = atol(optarg); break;
		case 't': cpu_s = atol(optarg); break;
		case 'o': output_mb = atol(optarg); break;
		case 'l':
			if ((rc = log_level_parse(optarg)) >= 0)
				log_level = rc;
			break;
		case 'a': announce = true; break;
		case 'L': list = true; break;
		case 'C': check = true; break;
		case 'n':
			calls = atol(optarg);
			if (calls < 1 || calls > WORKER_CALLS_MAX) {
				fprintf(stderr, "firesync-worker: --calls "
				    "1..%d\n", WORKER_CALLS_MAX);
				return 2;
			}
			break;
		case 'V':
			printf("firesync-worker %s\n", PACKAGE_VERSION);
			return 0;
		default:
			fprintf(stderr, "firesync-worker is started by "
			    "firesyncd and firesync-transform\n");
			return 2;
		}
	}
	if (dir == NULL) {
		fprintf(stderr, "firesync-worker: --plugin-dir is required\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (!list && !check)
		confine(memory_mb, cpu_s, output_mb);
	if (plugin_configs_load(&cfgs, config, err, sizeof(err)) < 0) {
		log_err("worker: %s", err);
		return 1;
	}
	if (!list && !check && enter_sandbox(dir, &cfgs, announce) < 0) {
		plugin_configs_free(&cfgs);
		return 1;
	}
	memset(&w, 0, sizeof(w));
	w.max_output = (uint64_t)output_mb << 20;
	if (calls > 0)		/* threads share few arenas: bounded */
		mallopt(M_ARENA_MAX, 4);
	plugins_load(&w.plugins, dir, &cfgs, announce || list,
	    list ? stdout : NULL, calls > 0);
	plugins_config_warnings(&w.plugins, &cfgs, announce || list,
	    check ? stderr : NULL);
	if (list)
		printf("%zu plugin(s) loaded, %zu refused\n", w.plugins.n,
		    w.plugins.n_refused);
	rc = list || check ? 0 : calls > 0 ? serve_calls(&w, WIRE_FD,
	    (int)calls) : serve(&w, WIRE_FD);
	plugins_unload(&w.plugins);
	plugin_configs_free(&cfgs);
	return rc;
}
