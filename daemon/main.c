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
 * SIGHUP, on the main loop: read the configuration again into a new,
 * immutable set of settings, which new tasks start under while running
 * ones finish under theirs.  What only a restart can change keeps its old
 * value (options_adopt_live says which changed); the log level and format
 * apply at once, and new jobs get freshly loaded plugins.
 */
static struct settings *
reload(void *arg, const struct settings *cur)
{
	struct pool *pool = arg;
	struct options fresh;
	struct settings *s;
	char restart[512];

	log_notice("SIGHUP: reloading %s", cur->o.config_path ?
	    cur->o.config_path : "the settings");
	if (options_reload(&fresh, g_argc, g_argv) < 0) {
		log_err("reload failed: the configuration has errors (see "
		    "above); still running with the previous settings");
		return NULL;
	}
	if (options_adopt_live(&fresh, &cur->o, restart, sizeof(restart)) > 0)
		log_warn("reload: %s changed, which takes effect after a "
		    "restart (systemctl restart firesyncd); the rest applies "
		    "now", restart);
	log_level = fresh.log_level;
	log_set_json(fresh.log_format == LOG_FORMAT_JSON);
	pool_settings(&fresh);
	pool_reconfigure(pool, &po);	/* copies what it keeps */
	s = settings_new(&fresh, cur->generation + 1);
	log_notice("reload: done (log level %s; settings %u; plugins reload "
	    "on the next jobs)", log_level_name(log_level), s->generation);
	return s;
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

/* A cached token good for another minute, never waiting. */
static int
fs_token_peek(void *arg, char *buf, size_t len)
{
	char *t = token_peek(arg, 60);

	if (t == NULL)
		return -1;
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
		fo.peek = fs_token_peek;
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
		.emulator = opt->storage_emulator,
		.ca_file = opt->storage_ca_file,
		.url_kind = opt->result_url,
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
	if (opt->storage_emulator)
		log_notice("storage: bucket %s of the Storage emulator at %s "
		    "(plain HTTP, its admin token)", opt->bucket,
		    opt->storage_emulator);
	else
		log_notice("storage: Cloud Storage bucket %s at %s",
		    opt->bucket, opt->storage_endpoint ?
		    opt->storage_endpoint : STORE_GCS_ENDPOINT);
	log_notice("storage: result URLs %s", st->url_kind ==
	    STORE_URL_FIREBASE ? "are Firebase download URLs with a fresh "
	    "token each" : "are public");
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
serve(struct settings *settings, struct fs_client *fs, struct store *st,
    struct pool *pool)
{
	const struct options *opt = &settings->o;
	struct engine *e = engine_new(settings, fs, st, pool);
	struct metrics_server *ms = NULL;
	pthread_t sigthread;
	char err[512];
	int rc;

	engine_on_reload(e, reload, pool);
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
	struct settings *set;
	const struct options *o;
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
	/* from here on the settings are shared, immutable, and live until
	 * the end: whatever was opened with them may keep pointers */
	set = settings_new(&opt, 1);
	o = &set->o;
	g_argc = argc;
	g_argv = argv;
	curl_global_init(CURL_GLOBAL_DEFAULT);	/* before any thread */
	log_init();
	log_level = o->log_level;
	log_set_json(o->log_format == LOG_FORMAT_JSON);
	notify_init();
	srandom((unsigned)(time(NULL) ^ getpid()));
	worker_path = pool_find_worker();
	if (o->list_plugins || o->check_config) {
		rc = check_or_list(o, worker_path);
		goto out;
	}
	/* one token source, for Firestore and Cloud Storage (neither
	 * emulator needs one) */
	if ((!o->emulator || (o->storage_backend == STORAGE_GCS &&
	    !o->storage_emulator)) && (ts = credentials(o)) == NULL)
		goto out;
	if ((st = open_store(o, ts)) == NULL)
		goto out;
	if ((pool = start_pool(o, worker_path)) == NULL)
		goto out;
	block_signals();
	fs_library_init();
	if ((fs = connect_firestore(o, ts)) != NULL) {
		rc = serve(set, fs, st, pool);
		fs_client_free(fs);
	}
	fs_library_shutdown();
out:
	pool_free(pool);
	store_close(st);
	token_source_free(ts);
	free(worker_path);
	settings_drop(set);
	return rc;
}
