/*
 * options.c - defaults, environment and command-line flags of firesyncd.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "options.h"

#ifndef PLUGINDIR
#define PLUGINDIR "/usr/local/lib/firesync/plugins"
#endif
#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/var"
#endif

static const char usage_text[] =
"usage: firesyncd [options]\n"
"\n"
"Turns captured guest sessions in Cloud Firestore into transformed results.\n"
"\n"
"  --project ID             Google Cloud project (env GOOGLE_CLOUD_PROJECT)\n"
"  --database ID            Firestore database (default \"(default)\")\n"
"  --emulator HOST:PORT     use the Firestore emulator\n"
"                           (env FIRESTORE_EMULATOR_HOST)\n"
"  --storage-root DIR       local storage directory holding captures/ and\n"
"                           results/ (default " LOCALSTATEDIR "/lib/firesync)\n"
"  --public-url-base URL    base of resultImagePath URLs\n"
"                           (default file:// URLs of the storage root)\n"
"  --plugin-dir DIR         transform plugins (default " PLUGINDIR ")\n"
"  --workers N              sessions processed at once (default 4)\n"
"  --transform-timeout SECS deadline of one transform (default 45)\n"
"  --recovery-margin SECS   a session left 'transforming' longer than the\n"
"                           timeout plus this margin is re-run (default 15)\n"
"  --max-attempts N         runs of one capture before giving up (default 3)\n"
"  --max-megapixels N       refuse larger input images (default 50)\n"
"  --max-input-mb N         refuse larger input files (default 64)\n"
"  --keepalive SECS         gRPC keepalive pings (default 0: off)\n"
"  --idle-timeout SECS      reopen Listen after this long without a\n"
"                           message (default 120)\n"
"  --worker-memory-mb N     address-space limit of one transform worker\n"
"                           (default 2048)\n"
"  --worker-max-jobs N      replace a worker after N jobs (default 100)\n"
"  --log-level LEVEL        error, warning, notice, info or debug\n"
"                           (default info)\n"
"  --list-plugins           show which plugins load (and why others do\n"
"                           not), then exit\n"
"  --version                print the version and exit\n"
"  --help                   print this help and exit\n";

enum {
	OPT_PROJECT = 256, OPT_DATABASE, OPT_EMULATOR, OPT_STORAGE_ROOT,
	OPT_PUBLIC_URL_BASE, OPT_PLUGIN_DIR, OPT_WORKERS, OPT_TIMEOUT,
	OPT_MARGIN, OPT_ATTEMPTS, OPT_MAX_MP, OPT_MAX_INPUT_MB, OPT_KEEPALIVE,
	OPT_IDLE, OPT_LOG_LEVEL, OPT_VERSION, OPT_HELP, OPT_WORKER_MEMORY,
	OPT_WORKER_JOBS, OPT_LIST_PLUGINS,
};

static const struct option long_opts[] = {
	{ "project", required_argument, NULL, OPT_PROJECT },
	{ "database", required_argument, NULL, OPT_DATABASE },
	{ "emulator", required_argument, NULL, OPT_EMULATOR },
	{ "storage-root", required_argument, NULL, OPT_STORAGE_ROOT },
	{ "public-url-base", required_argument, NULL, OPT_PUBLIC_URL_BASE },
	{ "plugin-dir", required_argument, NULL, OPT_PLUGIN_DIR },
	{ "workers", required_argument, NULL, OPT_WORKERS },
	{ "transform-timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "recovery-margin", required_argument, NULL, OPT_MARGIN },
	{ "max-attempts", required_argument, NULL, OPT_ATTEMPTS },
	{ "max-megapixels", required_argument, NULL, OPT_MAX_MP },
	{ "max-input-mb", required_argument, NULL, OPT_MAX_INPUT_MB },
	{ "keepalive", required_argument, NULL, OPT_KEEPALIVE },
	{ "idle-timeout", required_argument, NULL, OPT_IDLE },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "worker-memory-mb", required_argument, NULL, OPT_WORKER_MEMORY },
	{ "worker-max-jobs", required_argument, NULL, OPT_WORKER_JOBS },
	{ "list-plugins", no_argument, NULL, OPT_LIST_PLUGINS },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

static void
set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = v ? xstrdup(v) : NULL;
}

/* Parse an integer flag in [lo, hi]; false (with a message) if invalid. */
static bool
int_arg(const char *flag, const char *v, long lo, long hi, long *out)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end != '\0' || n < lo || n > hi) {
		fprintf(stderr, "firesyncd: --%s: '%s' is not a whole number "
		    "from %ld to %ld\n", flag, v, lo, hi);
		return false;
	}
	*out = n;
	return true;
}

enum options_action
options_parse(struct options *o, int argc, char **argv)
{
	const char *env;
	long n;
	int c;
	bool bad = false;

	memset(o, 0, sizeof(*o));
	o->storage_root = xstrdup(LOCALSTATEDIR "/lib/firesync");
	o->plugin_dir = xstrdup(PLUGINDIR);
	o->workers = 4;
	o->transform_timeout_s = 45;
	o->recovery_margin_s = 15;
	o->max_attempts = 3;
	o->max_pixels = 50ull * 1000 * 1000;
	o->max_input_bytes = 64u << 20;
	o->idle_timeout_ms = 120 * 1000;
	o->log_level = LOG_INFO;
	o->worker_memory_mb = 2048;
	o->worker_max_jobs = 100;

	if ((env = getenv("GOOGLE_CLOUD_PROJECT")) && *env)
		set_str(&o->project, env);
	else if ((env = getenv("GCLOUD_PROJECT")) && *env)
		set_str(&o->project, env);
	if ((env = getenv("FIRESTORE_EMULATOR_HOST")) && *env)
		set_str(&o->emulator, env);

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_PROJECT: set_str(&o->project, optarg); break;
		case OPT_DATABASE: set_str(&o->database, optarg); break;
		case OPT_EMULATOR: set_str(&o->emulator, optarg); break;
		case OPT_STORAGE_ROOT: set_str(&o->storage_root, optarg); break;
		case OPT_PUBLIC_URL_BASE:
			set_str(&o->public_url_base, optarg);
			break;
		case OPT_PLUGIN_DIR: set_str(&o->plugin_dir, optarg); break;
		case OPT_WORKERS:
			if (int_arg("workers", optarg, 1, 256, &n))
				o->workers = (int)n;
			else
				bad = true;
			break;
		case OPT_TIMEOUT:
			if (int_arg("transform-timeout", optarg, 1, 3600, &n))
				o->transform_timeout_s = (int)n;
			else
				bad = true;
			break;
		case OPT_MARGIN:
			if (int_arg("recovery-margin", optarg, 0, 3600, &n))
				o->recovery_margin_s = (int)n;
			else
				bad = true;
			break;
		case OPT_ATTEMPTS:
			if (int_arg("max-attempts", optarg, 1, 100, &n))
				o->max_attempts = (int)n;
			else
				bad = true;
			break;
		case OPT_MAX_MP:
			if (int_arg("max-megapixels", optarg, 1, 1000, &n))
				o->max_pixels = (uint64_t)n * 1000 * 1000;
			else
				bad = true;
			break;
		case OPT_MAX_INPUT_MB:
			if (int_arg("max-input-mb", optarg, 1, 1024, &n))
				o->max_input_bytes = (size_t)n << 20;
			else
				bad = true;
			break;
		case OPT_KEEPALIVE:
			if (int_arg("keepalive", optarg, 0, 86400, &n))
				o->keepalive_ms = n * 1000;
			else
				bad = true;
			break;
		case OPT_IDLE:
			if (int_arg("idle-timeout", optarg, 5, 86400, &n))
				o->idle_timeout_ms = n * 1000;
			else
				bad = true;
			break;
		case OPT_WORKER_MEMORY:
			if (int_arg("worker-memory-mb", optarg, 64, 1 << 20, &n))
				o->worker_memory_mb = (int)n;
			else
				bad = true;
			break;
		case OPT_WORKER_JOBS:
			if (int_arg("worker-max-jobs", optarg, 1, 1000000, &n))
				o->worker_max_jobs = (int)n;
			else
				bad = true;
			break;
		case OPT_LIST_PLUGINS:
			o->list_plugins = true;
			break;
		case OPT_LOG_LEVEL:
			o->log_level = log_level_parse(optarg);
			if (o->log_level < 0) {
				fprintf(stderr, "firesyncd: --log-level: '%s' "
				    "is not one of error, warning, notice, "
				    "info, debug\n", optarg);
				bad = true;
			}
			break;
		case OPT_VERSION:
			printf("firesyncd %s\n", PACKAGE_VERSION);
			return OPTIONS_EXIT_OK;
		case 'h':
		case OPT_HELP:
			fputs(usage_text, stdout);
			return OPTIONS_EXIT_OK;
		default:
			bad = true;
			break;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "firesyncd: unexpected argument '%s'\n",
		    argv[optind]);
		bad = true;
	}
	if (!bad && !o->list_plugins &&
	    (o->project == NULL || *o->project == '\0')) {
		fprintf(stderr, "firesyncd: no project: pass --project ID or "
		    "set GOOGLE_CLOUD_PROJECT\n");
		bad = true;
	}
	if (bad) {
		fprintf(stderr, "Try 'firesyncd --help'.\n");
		return OPTIONS_EXIT_ERROR;
	}
	return OPTIONS_RUN;
}

void
options_clear(struct options *o)
{
	free(o->project);
	free(o->database);
	free(o->emulator);
	free(o->storage_root);
	free(o->public_url_base);
	free(o->plugin_dir);
	memset(o, 0, sizeof(*o));
}
