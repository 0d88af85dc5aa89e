/*
 * main.c - firesyncd: parse options, connect, run the engine until
 * SIGTERM/SIGINT, drain, exit.
 *
 * Signals are blocked in every thread and taken synchronously by one
 * signal thread with sigwait(), so no handler ever runs inside gRPC.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc.h>
#include <grpc/support/log.h>

#include "engine.h"
#include "firestore.h"
#include "log.h"
#include "options.h"
#include "pool.h"
#include "store.h"

static sigset_t sigs;

static void *
signal_main(void *arg)
{
	struct engine *e = arg;

	for (;;) {
		int sig;

		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			log_notice("SIGHUP: configuration reload is not "
			    "supported yet; restart the service to apply "
			    "changes");
			continue;
		}
		if (sig == SIGUSR1)	/* our own wake-up at exit */
			return NULL;
		log_notice("%s: shutting down", strsignal(sig));
		engine_stop(e);
	}
}

/* gRPC's own log lines, through ours at a matching level. */
static void
grpc_log(gpr_log_func_args *a)
{
	int prio = a->severity == GPR_LOG_SEVERITY_ERROR ? LOG_ERR :
	    a->severity == GPR_LOG_SEVERITY_INFO ? LOG_INFO : LOG_DEBUG;

	log_at(prio, "grpc: %s", a->message);
}

int
main(int argc, char **argv)
{
	struct options opt;
	struct fs_options fo = { 0 };
	struct fs_client *fs;
	struct store *st;
	struct engine *e;
	struct pool *pool;
	struct pool_options po = { 0 };
	char *worker_path;
	pthread_t sigthread;
	char err[512];
	int rc;

	switch (options_parse(&opt, argc, argv)) {
	case OPTIONS_EXIT_OK:
		options_clear(&opt);
		return 0;
	case OPTIONS_EXIT_ERROR:
		options_clear(&opt);
		return 2;
	case OPTIONS_RUN:
		break;
	}
	log_init();
	log_level = opt.log_level;
	srandom((unsigned)(time(NULL) ^ getpid()));
	worker_path = pool_find_worker();
	if (opt.list_plugins) {
		rc = pool_list_plugins(worker_path, opt.plugin_dir, NULL);
		free(worker_path);
		options_clear(&opt);
		return rc;
	}

	st = store_local_open(opt.storage_root, opt.public_url_base, err,
	    sizeof(err));
	if (st == NULL) {
		log_err("%s; create it or pass --storage-root", err);
		options_clear(&opt);
		return 1;
	}

	/* Workers run the plugins; start the first before gRPC's threads. */
	po.worker_path = worker_path;
	po.plugin_dir = opt.plugin_dir;
	po.workers = opt.workers;
	po.timeout_ms = (int64_t)opt.transform_timeout_s * 1000;
	po.memory_mb = opt.worker_memory_mb;
	po.max_jobs = opt.worker_max_jobs;
	po.max_pixels = opt.max_pixels;
	po.log_level = opt.log_level;
	pool = pool_new(&po, err, sizeof(err));
	free(worker_path);
	if (pool == NULL) {
		log_err("%s", err);
		store_close(st);
		options_clear(&opt);
		return 1;
	}

	/* Block before gRPC starts its threads so they inherit the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	gpr_set_log_function(grpc_log);
	gpr_set_log_verbosity(GPR_LOG_SEVERITY_ERROR);
	grpc_init();
	fo.target = opt.emulator ? opt.emulator : "firestore.googleapis.com:443";
	fo.project = opt.project;
	fo.database = opt.database;
	fo.emulator = opt.emulator != NULL;
	fo.keepalive_ms = opt.keepalive_ms;
	fo.max_reconnect_backoff_ms = 10000;
	fs = fs_client_new(&fo, err, sizeof(err));
	if (fs == NULL) {
		log_err("%s", err);
		pool_free(pool);
		store_close(st);
		grpc_shutdown();
		options_clear(&opt);
		return 1;
	}
	e = engine_new(&opt, fs, st, pool);
	if (pthread_create(&sigthread, NULL, signal_main, e) != 0)
		fatal("cannot start the signal thread");
	rc = engine_run(e);
	pthread_kill(sigthread, SIGUSR1);
	pthread_join(sigthread, NULL);
	engine_free(e);
	pool_free(pool);
	fs_client_free(fs);
	store_close(st);
	grpc_shutdown();
	options_clear(&opt);
	return rc;
}
