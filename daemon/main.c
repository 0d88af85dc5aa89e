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

#include <curl/curl.h>

#include "alloc.h"
#include "engine.h"
#include "firestore.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "notify.h"
#include "options.h"
#include "pool.h"
#include "token.h"
#include "store.h"

static sigset_t sigs;
static int g_argc;
static char **g_argv;
static struct pool_options po;

/* The pool's settings that come from the options, at start and on each
 * reload (the worker path and count are fixed at start). */
static void
pool_settings(const struct options *o)
{
	po.plugin_dir = o->plugin_dir;
	po.config_path = o->config_path;
	po.timeout_ms = (int64_t)o->transform_timeout_s * 1000;
	po.memory_mb = o->worker_memory_mb;
	po.max_jobs = o->worker_max_jobs;
	po.max_pixels = o->max_pixels;
	po.log_level = o->log_level;
}

/* What a reload changes. */
struct live {
	struct options *opt;
	struct pool *pool;
};

static void *
signal_main(void *arg)
{
	struct engine *e = arg;

	for (;;) {
		int sig;

		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			engine_request_reload(e);
			continue;
		}
		if (sig == SIGUSR1)	/* our own wake-up at exit */
			return NULL;
		log_notice("%s: shutting down", strsignal(sig));
		engine_stop(e);
	}
}

/*
 * SIGHUP, on the main loop: re-read the configuration; apply what can
 * change live (log level and format, plugins and their configuration,
 * transform limits) and say which changes need a restart.  In-flight
 * sessions carry on; new jobs get freshly loaded plugins.
 */
static void
reload(void *arg)
{
	struct options *live = ((struct live *)arg)->opt, fresh;
	struct pool *pool = ((struct live *)arg)->pool;

	log_notice("SIGHUP: reloading %s", live->config_path ?
	    live->config_path : "the settings");
	if (options_reload(&fresh, g_argc, g_argv) < 0) {
		log_err("reload failed: the configuration has errors (see "
		    "above); still running with the previous settings");
		return;
	}
#define CHANGED(f) ((live->f == NULL) != (fresh.f == NULL) || \
	(live->f && strcmp(live->f, fresh.f) != 0))
	if (CHANGED(project) || CHANGED(database) || CHANGED(emulator) ||
	    CHANGED(credentials) || CHANGED(storage_root) ||
	    CHANGED(public_url_base) || fresh.n_events != live->n_events ||
	    fresh.workers != live->workers || fresh.keepalive_ms !=
	    live->keepalive_ms || fresh.firestore_concurrency !=
	    live->firestore_concurrency)
		log_warn("reload: Firestore, storage, events, workers, "
		    "concurrency and keepalive changes take effect after a "
		    "restart (systemctl restart firesyncd)");
#undef CHANGED
	live->log_level = log_level = fresh.log_level;
	live->log_format = fresh.log_format;
	log_set_json(fresh.log_format == LOG_FORMAT_JSON);
	live->transform_timeout_s = fresh.transform_timeout_s;
	live->recovery_margin_s = fresh.recovery_margin_s;
	live->recovery_interval_s = fresh.recovery_interval_s;
	live->max_attempts = fresh.max_attempts;
	live->max_pixels = fresh.max_pixels;
	live->max_input_bytes = fresh.max_input_bytes;
	live->drain_timeout_s = fresh.drain_timeout_s;
	live->worker_memory_mb = fresh.worker_memory_mb;
	live->worker_max_jobs = fresh.worker_max_jobs;
	free(live->plugin_dir);
	live->plugin_dir = xstrdup(fresh.plugin_dir);
	free(live->config_path);
	live->config_path = fresh.config_path ? xstrdup(fresh.config_path) :
	    NULL;
	pool_settings(live);
	pool_reconfigure(pool, &po);
	options_clear(&fresh);
	log_notice("reload: done (log level %s; plugins reload on the next "
	    "jobs)", log_level_name(log_level));
}

/*
 * --list-plugins, or --check-config once the settings passed: the plugins'
 * own sections are checked by loading the plugins, as a worker would.
 */
static int
check_or_list(const struct options *o, const char *worker_path)
{
	int rc;

	if (o->list_plugins)
		return pool_worker_report(worker_path, o->plugin_dir,
		    o->config_path, "--list");
	rc = pool_worker_report(worker_path, o->plugin_dir, o->config_path,
	    "--check-config");
	if (rc != 0) {
		fprintf(stderr, "firesyncd: cannot check the plugins' "
		    "settings: %s failed (status %d)\n", worker_path, rc);
		return 1;
	}
	if (o->config_path)
		printf("firesyncd: settings are valid (%s)\n", o->config_path);
	else
		printf("firesyncd: settings are valid\n");
	return 0;
}

/* Start the worker pool (before gRPC's threads exist); NULL if it
 * cannot start, said in the log. */
static struct pool *
start_pool(const struct options *opt, const char *worker_path)
{
	struct pool *pool;
	char err[512];

	po.worker_path = worker_path;
	po.workers = opt->workers;
	pool_settings(opt);
	pool = pool_new(&po, err, sizeof(err));
	if (pool == NULL)
		log_err("%s", err);
	return pool;
}

/* The token hooks of the Firestore client, on our token source. */
static int
fs_token(void *arg, char *buf, size_t len, char *err, size_t errlen)
{
	char why[512], *t = token_get(arg, why, sizeof(why));

	if (t == NULL) {
		/* the call fails UNAVAILABLE with this, and is retried */
		snprintf(err, errlen, "cannot get an access token: %s", why);
		return -1;
	}
	snprintf(buf, len, "%s", t);
	memset(t, 0, strlen(t));
	free(t);
	return 0;
}

static void
fs_refused(void *arg, const char *token)
{
	log_warn("credentials: Firestore refused the access token "
	    "(UNAUTHENTICATED); fetching a new one");
	token_invalidate(arg, token);
}

/*
 * The one source of access tokens, for Firestore and Cloud Storage: the
 * service account key file, else the metadata server.  A first token is
 * fetched now, so a key the token endpoint refuses, or an unreachable
 * endpoint, fails at start with a message.  NULL if there is none, said
 * in the log.
 */
static struct token_source *
credentials(const struct options *opt)
{
	static const char scope[] =
	    "https://www.googleapis.com/auth/cloud-platform";
	struct token_source *ts;
	char err[512], *t;

	if (opt->credentials) {
		ts = token_source_key_file(opt->credentials, scope, err,
		    sizeof(err));
		if (ts == NULL) {
			log_err("%s", err);
			return NULL;
		}
		log_notice("credentials: service account key %s",
		    opt->credentials);
	} else {
		ts = token_source_metadata(NULL, scope);
		log_notice("credentials: none configured; using the metadata "
		    "server's service account");
	}
	if ((t = token_get(ts, err, sizeof(err))) == NULL) {
		log_err("credentials: cannot get an access token: %s%s", err,
		    opt->credentials ? "" : " (looked for [firestore] "
		    "credentials, GOOGLE_APPLICATION_CREDENTIALS and the "
		    "metadata server)");
		token_source_free(ts);
		return NULL;
	}
	memset(t, 0, strlen(t));
	free(t);
	return ts;
}

/*
 * The Firestore client: the emulator's insecure channel, or TLS to the
 * endpoint with a token from ts on every call.  NULL if it cannot be
 * made, said in the log.
 */
static struct fs_client *
connect_firestore(const struct options *opt, struct token_source *ts)
{
	struct fs_options fo = {
		.target = opt->emulator ? opt->emulator :
		    opt->firestore_endpoint ? opt->firestore_endpoint :
		    FIRESTORE_ENDPOINT,
		.project = opt->project,
		.database = opt->database,
		.emulator = opt->emulator != NULL,
		.keepalive_ms = opt->keepalive_ms,
		.ca_file = opt->firestore_ca_file,
	};
	struct fs_client *fs;
	char err[512];

	if (!opt->emulator) {
		fo.token = fs_token;
		fo.refused = fs_refused;
		fo.token_arg = ts;
		log_notice("firestore: %s over TLS (%s)", fo.target,
		    opt->firestore_ca_file ? opt->firestore_ca_file :
		    "the system's CA certificates");
	}
	fs = fs_client_new(&fo, err, sizeof(err));
	if (fs == NULL)
		log_err("%s", err);
	return fs;
}

/* The storage backend the settings name (Cloud Storage with tokens from
 * ts).  NULL if it cannot be opened, said in the log. */
static struct store *
open_store(const struct options *opt, struct token_source *ts)
{
	struct store_gcs_options go = {
		.bucket = opt->bucket,
		.endpoint = opt->storage_endpoint,
		.ca_file = opt->storage_ca_file,
		.public_url_base = opt->public_url_base,
		.connect_timeout_ms = opt->storage_connect_timeout_ms,
		.timeout_ms = opt->storage_timeout_ms,
		.ts = ts,
	};
	struct store *st;
	char err[512];

	if (opt->storage_backend == STORAGE_LOCAL) {
		st = store_local_open(opt->storage_root, opt->public_url_base,
		    err, sizeof(err));
		if (st == NULL)
			log_err("%s; create it or pass --storage-root", err);
		return st;
	}
	st = store_gcs_open(&go, err, sizeof(err));
	if (st == NULL) {
		log_err("%s", err);
		return NULL;
	}
	log_notice("storage: Cloud Storage bucket %s at %s; results at %s/",
	    opt->bucket, opt->storage_endpoint ? opt->storage_endpoint :
	    STORE_GCS_ENDPOINT, st->public_url_base);
	return st;
}

/* Signals are taken by the signal thread only: block them before gRPC
 * starts its threads so they inherit the mask. */
static void
block_signals(void)
{
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* Serve until a signal stops the engine.  The exit status. */
static int
serve(struct options *opt, struct fs_client *fs, struct store *st,
    struct pool *pool)
{
	struct live live = { opt, pool };
	struct engine *e = engine_new(opt, fs, st, pool);
	struct metrics_server *ms = NULL;
	pthread_t sigthread;
	char err[512];
	int rc;

	engine_on_reload(e, reload, &live);
	metrics_init(PACKAGE_VERSION);
	engine_metrics_attach(e, true);
	if (opt->metrics_listen && (ms = metrics_server_start(
	    opt->metrics_listen, err, sizeof(err))) == NULL) {
		log_err("%s; fix [metrics] listen (--metrics-listen)", err);
		engine_metrics_attach(e, false);
		engine_free(e);
		return 1;
	}
	if (pthread_create(&sigthread, NULL, signal_main, e) != 0)
		fatal("cannot start the signal thread");
	rc = engine_run(e);
	pthread_kill(sigthread, SIGUSR1);
	pthread_join(sigthread, NULL);
	/* no scrape may read the engine once it is freed */
	metrics_server_stop(ms);
	engine_metrics_attach(e, false);
	if (!engine_idle(e)) {
		/* a runner is stuck in a call: freeing what it uses would be
		 * a use-after-free; its session is left to recovery */
		log_notice("shutdown: exiting with a session thread still in "
		    "a call");
		_exit(rc);
	}
	engine_free(e);
	return rc;
}

int
main(int argc, char **argv)
{
	struct options opt;
	struct fs_client *fs = NULL;
	struct store *st = NULL;
	struct pool *pool = NULL;
	struct token_source *ts = NULL;
	char *worker_path;
	int rc = 1;

	switch (options_parse(&opt, argc, argv)) {
	case OPTIONS_EXIT_OK:
		options_clear(&opt);
		return 0;
	case OPTIONS_EXIT_ERROR:
		/* --check-config answers 0 or 1; a bad command line is 2 */
		rc = opt.check_config ? 1 : 2;
		options_clear(&opt);
		return rc;
	case OPTIONS_RUN:
		break;
	}
	g_argc = argc;
	g_argv = argv;
	curl_global_init(CURL_GLOBAL_DEFAULT);	/* before any thread */
	log_init();
	log_level = opt.log_level;
	log_set_json(opt.log_format == LOG_FORMAT_JSON);
	notify_init();
	srandom((unsigned)(time(NULL) ^ getpid()));
	worker_path = pool_find_worker();
	if (opt.list_plugins || opt.check_config) {
		rc = check_or_list(&opt, worker_path);
		goto out;
	}
	/* one token source, for Firestore (not the emulator) and for a
	 * Cloud Storage bucket */
	if ((!opt.emulator || opt.storage_backend == STORAGE_GCS) &&
	    (ts = credentials(&opt)) == NULL)
		goto out;
	if ((st = open_store(&opt, ts)) == NULL)
		goto out;
	if ((pool = start_pool(&opt, worker_path)) == NULL)
		goto out;
	block_signals();
	fs_library_init();
	if ((fs = connect_firestore(&opt, ts)) != NULL) {
		rc = serve(&opt, fs, st, pool);
		fs_client_free(fs);
	}
	fs_library_shutdown();
out:
	pool_free(pool);
	store_close(st);
	token_source_free(ts);
	free(worker_path);
	options_clear(&opt);
	return rc;
}
