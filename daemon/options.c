/*
 * options.c - one table of settings, read from the configuration file
 * (INI, via libinih), the environment and the command line.
 *
 * Configuration errors are collected, not fatal one by one: an admin sees
 * every mistake in the file at once, as FILE:LINE: message.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <jansson.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "options.h"
#include "paths.h"
#include "pool.h"
#include "store.h"
#include "text.h"

#ifndef PLUGINDIR
#define PLUGINDIR "/usr/local/lib/firesync/plugins"
#endif
#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/var"
#endif
#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONFIG SYSCONFDIR "/firesync/firesyncd.conf"

enum kind {
	K_STR,		/* char * */
	K_INT,		/* int, lo..hi */
	K_MP,		/* uint64_t pixels, given in megapixels */
	K_MB,		/* size_t bytes, given in MiB */
	K_MS,		/* int64_t ms, given in seconds */
	K_LEVEL,	/* log level name */
	K_FORMAT,	/* text|json */
	K_BACKEND,	/* local|gcs */
	K_EVENTS,	/* comma-separated event ids */
	K_URLKIND,	/* firebase|public */
	K_PREFIXES,	/* comma-separated storage path prefixes */
	K_LIMITS,	/* comma-separated EVENT:N */
	K_PRICES,	/* comma-separated MODEL:USD */
	K_RENDITIONS,	/* comma-separated NAME:SIZE[:FORMAT][@DPI] */
};

struct setting {
	const char *flag;	/* --flag */
	const char *section;	/* [section] key */
	const char *key;
	enum kind kind;
	size_t off;
	long lo, hi;
	const char *help;
	bool live;		/* a reload applies it; else a restart */
};

#define LIVE	true
#define RESTART	false

#define O(f) offsetof(struct options, f)

static const struct setting settings[] = {
	{ "project", "firestore", "project", K_STR, O(project), 0, 0,
	  "Google Cloud project (env GOOGLE_CLOUD_PROJECT)", RESTART },
	{ "database", "firestore", "database", K_STR, O(database), 0, 0,
	  "Firestore database (default \"(default)\")", RESTART },
	{ "emulator", "firestore", "emulator", K_STR, O(emulator), 0, 0,
	  "use the Firestore emulator at HOST:PORT (env FIRESTORE_EMULATOR_HOST)",
	  RESTART },
	{ "credentials", "firestore", "credentials", K_STR, O(credentials), 0, 0,
	  "service account key file (env GOOGLE_APPLICATION_CREDENTIALS)",
	  RESTART },
	{ "firestore-endpoint", "firestore", "endpoint", K_STR,
	  O(firestore_endpoint), 0, 0,
	  "Firestore's HOST:PORT (default " FIRESTORE_ENDPOINT ")", RESTART },
	{ "firestore-ca-file", "firestore", "ca-file", K_STR,
	  O(firestore_ca_file), 0, 0,
	  "CA certificates for Firestore's TLS (default: the system's)",
	  RESTART },
	{ "events", "firestore", "events", K_EVENTS, O(events), 0, 0,
	  "only these event ids, comma-separated (default: all events)",
	  RESTART },
	{ "keepalive", "firestore", "keepalive", K_MS, O(keepalive_ms), 0, 86400,
	  "gRPC keepalive pings every SECS (default 30; with the emulator, "
	  "0: off)", RESTART },
	{ "firestore-concurrency", "firestore", "concurrency", K_INT,
	  O(firestore_concurrency), 1, 256,
	  "Firestore claims, reads and finishes in flight at once (default 16)",
	  RESTART },
	{ "idle-timeout", "firestore", "idle-timeout", K_MS, O(idle_timeout_ms),
	  5, 86400, "reopen Listen after SECS without a message (default 120)",
	  RESTART },
	{ "storage-root", "storage", "root", K_STR, O(storage_root), 0, 0,
	  "local storage with captures/ and results/ (default "
	  LOCALSTATEDIR "/lib/firesync)", RESTART },
	{ "result-url", "storage", "result-url", K_URLKIND, O(result_url), 0,
	  0, "resultImagePath: firebase (a download-token URL; the default "
	  "for gcs) or public (base/path)", RESTART },
	{ "public-url-base", "storage", "public-url-base", K_STR,
	  O(public_url_base), 0, 0,
	  "base of resultImagePath URLs (default file:// URLs of the root; "
	  "gcs: " STORE_FIREBASE_URL " or endpoint/bucket)", RESTART },
	{ "reference-prefixes", "storage", "reference-prefixes", K_PREFIXES,
	  O(reference_prefixes), 0, 0, "where reference images may be, "
	  "comma-separated (default references/)", LIVE },
	{ "storage-backend", "storage", "backend", K_BACKEND,
	  O(storage_backend), 0, 0,
	  "local (a directory) or gcs (a Cloud Storage bucket; default local)",
	  RESTART },
	{ "bucket", "storage", "bucket", K_STR, O(bucket), 0, 0,
	  "the Cloud Storage bucket (backend gcs)", RESTART },
	{ "storage-endpoint", "storage", "endpoint", K_STR, O(storage_endpoint),
	  0, 0, "Cloud Storage's URL (default " STORE_GCS_ENDPOINT ")",
	  RESTART },
	{ "storage-emulator", "storage", "emulator", K_STR,
	  O(storage_emulator), 0, 0, "use Google's Storage emulator at "
	  "HOST:PORT (backend gcs; env STORAGE_EMULATOR_HOST)", RESTART },
	{ "storage-ca-file", "storage", "ca-file", K_STR, O(storage_ca_file), 0,
	  0, "CA certificates for the storage endpoint (default: the system's)",
	  RESTART },
	{ "storage-connect-timeout", "storage", "connect-timeout", K_MS,
	  O(storage_connect_timeout_ms), 1, 600,
	  "seconds to connect to Cloud Storage (default 5)", RESTART },
	{ "storage-timeout", "storage", "timeout", K_MS, O(storage_timeout_ms),
	  1, 3600, "seconds one storage read or write may take, retries "
	  "included (default 30)", RESTART },
	{ "max-input-mb", "storage", "max-input-mb", K_MB, O(max_input_bytes),
	  1, 1024, "refuse larger input files (default 64)", LIVE },
	{ "plugin-dir", "plugins", "dir", K_STR, O(plugin_dir), 0, 0,
	  "transform plugins (default " PLUGINDIR ")", LIVE },
	{ "workers", "plugins", "workers", K_INT, O(workers), 1, 256,
	  "CPU looks run at once (default: the CPUs firesyncd may use)",
	  RESTART },
	{ "transform-timeout", "plugins", "transform-timeout", K_INT,
	  O(transform_timeout_s), 1, 3600,
	  "deadline of one transform in seconds (default 45)", LIVE },
	{ "event-limit", "hosted", "event-limit", K_INT, O(event_limit), 0,
	  1000000000, "hosted-model calls per event, all daemons together "
	  "(default 0: no limit)", LIVE },
	{ "event-limits", "hosted", "event-limits", K_LIMITS, O(event_limits),
	  0, 0, "other limits for these events", LIVE },
	{ "prices", "hosted", "prices", K_PRICES, O(prices), 0, 0,
	  "what one call of each model costs, for the spend estimate", LIVE },
	{ "renditions", "results", "renditions", K_RENDITIONS, O(renditions),
	  0, 0, "copies beside result.png, NAME:SIZE[:jpeg|png|webp][@DPI], "
	  "SIZE N (longest side) or WxH (default: none)", LIVE },
	{ "max-result-megapixels", "results", "max-result-megapixels", K_MP,
	  O(max_result_pixels), 0, 1000,
	  "scale result.png down to at most N megapixels (default 0: as made)",
	  LIVE },
	{ "frame", "results", "frame", K_STR, O(frame), 0, 0,
	  "the event's frame, a PNG with alpha composited over its results "
	  "(default branding/{event}/frame.png; none: off)", LIVE },
	{ "recovery-margin", "plugins", "recovery-margin", K_INT,
	  O(recovery_margin_s), 0, 3600,
	  "re-run sessions 'transforming' for timeout + SECS (default 15)",
	  LIVE },
	{ "recovery-interval", "plugins", "recovery-interval", K_INT,
	  O(recovery_interval_s), 1, 3600,
	  "look for interrupted sessions every SECS, jittered (default 15)",
	  LIVE },
	{ "max-attempts", "plugins", "max-attempts", K_INT, O(max_attempts), 1,
	  100, "runs of one capture before giving up (default 3)", LIVE },
	{ "max-megapixels", "plugins", "max-megapixels", K_MP, O(max_pixels), 1,
	  1000, "refuse larger input images (default 50)", LIVE },
	{ "worker-memory-mb", "plugins", "worker-memory-mb", K_INT,
	  O(worker_memory_mb), 64, 1 << 20,
	  "address-space limit of one worker (default 2048)", LIVE },
	{ "worker-max-jobs", "plugins", "worker-max-jobs", K_INT,
	  O(worker_max_jobs), 1, 1000000,
	  "replace a worker after N jobs (default 100)", LIVE },
	{ "drain-timeout", "plugins", "drain-timeout", K_INT,
	  O(drain_timeout_s), 0, 3600,
	  "on SIGTERM, wait SECS for running sessions (default 30)", LIVE },
	{ "metrics-listen", "metrics", "listen", K_STR, O(metrics_listen), 0,
	  0, "serve Prometheus metrics on HOST:PORT or a socket path "
	  "(default: off)", RESTART },
	{ "log-level", "log", "level", K_LEVEL, O(log_level), 0, 0,
	  "error, warning, notice, info or debug (default info)", LIVE },
	{ "log-format", "log", "format", K_FORMAT, O(log_format), 0, 0,
	  "text or json (default text)", LIVE },
};
#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

/* Problems found so far, printed together. */
struct errs {
	int n;
};

static void
report(struct errs *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
report(struct errs *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("firesyncd: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	e->n++;
}

static void
set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = v ? xstrdup(v) : NULL;
}

size_t
options_renditions(const struct options *o, struct pool_rendition *out)
{
	char buf[160];
	size_t n = 0;

	for (size_t i = 0; i < o->n_renditions && n < POOL_MAX_RENDITIONS;
	    i++)
		if (pool_rendition_parse(o->renditions[i], &out[n], buf,
		    sizeof(buf)) == NULL)
			n++;
	return n;
}

/* ---- list settings (K_EVENTS, K_PREFIXES, K_LIMITS, K_PRICES,
 * K_RENDITIONS): strings
 * and a count ---- */

struct list {
	char ***v;
	size_t *n;
};

/* The strings of list setting kind k in o. */
static struct list
list_of(enum kind k, struct options *o)
{
	switch (k) {
	case K_EVENTS:
		return (struct list){ &o->events, &o->n_events };
	case K_LIMITS:
		return (struct list){ &o->event_limits, &o->n_event_limits };
	case K_PRICES:
		return (struct list){ &o->prices, &o->n_prices };
	case K_RENDITIONS:
		return (struct list){ &o->renditions, &o->n_renditions };
	default:
		return (struct list){ &o->reference_prefixes,
		    &o->n_reference_prefixes };
	}
}

static void
list_clear(struct list l)
{
	for (size_t i = 0; i < *l.n; i++)
		free((*l.v)[i]);
	free(*l.v);
	*l.v = NULL;
	*l.n = 0;
}

/* Append s (taken). */
static void
list_add(struct list l, char *s)
{
	*l.v = xrealloc(*l.v, (*l.n + 1) * sizeof(char *));
	(*l.v)[(*l.n)++] = s;
}

static void
add_prefix(struct options *o, const char *p)
{
	size_t n = strlen(p);

	list_add(list_of(K_PREFIXES, o), n > 0 && p[n - 1] == '/' ?
	    xstrdup(p) : xasprintf("%s/", p));
}

/* Does one of the prefixes a and b hold the other? */
static bool
overlaps(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);

	return strncmp(a, b, na < nb ? na : nb) == 0;
}

/* Why prefix p cannot hold reference images, or NULL. */
static const char *
bad_prefix(const char *p, char *buf, size_t len)
{
	char why[128], *bare = xstrdup(p);
	size_t n = strlen(bare);

	while (n > 0 && bare[n - 1] == '/')
		bare[--n] = '\0';
	if (path_check_relative(bare, why, sizeof(why)) < 0) {
		snprintf(buf, len, "'%.64s': %.80s", p, why);
		free(bare);
		return buf;
	}
	free(bare);
	if (overlaps(p, "captures/") || overlaps(p, "results/")) {
		snprintf(buf, len, "'%.64s' overlaps captures/ or results/ "
		    "(one guest's photo is never another's reference)", p);
		return buf;
	}
	return NULL;
}

/*
 * Apply value to setting s.  Returns NULL, or why the value is bad (a
 * static string or the buffer).
 */
static const char *
apply(struct options *o, const struct setting *s, const char *value,
    char *buf, size_t len)
{
	char *p = (char *)o + s->off, *end;
	long n;

	switch (s->kind) {
	case K_STR:
		if (*value == '\0')
			return "must not be empty";
		set_str((char **)p, value);
		return NULL;
	case K_LEVEL:
		n = log_level_parse(value);
		if (n < 0)
			return "must be error, warning, notice, info or debug";
		*(int *)p = (int)n;
		return NULL;
	case K_FORMAT:
		if (strcmp(value, "text") == 0)
			*(enum log_format *)p = LOG_FORMAT_TEXT;
		else if (strcmp(value, "json") == 0)
			*(enum log_format *)p = LOG_FORMAT_JSON;
		else
			return "must be text or json";
		return NULL;
	case K_BACKEND:
		if (strcmp(value, "local") == 0)
			*(enum storage_backend *)p = STORAGE_LOCAL;
		else if (strcmp(value, "gcs") == 0)
			*(enum storage_backend *)p = STORAGE_GCS;
		else
			return "must be local or gcs";
		return NULL;
	case K_URLKIND:
		if (strcmp(value, "firebase") == 0)
			*(enum store_url_kind *)p = STORE_URL_FIREBASE;
		else if (strcmp(value, "public") == 0)
			*(enum store_url_kind *)p = STORE_URL_PUBLIC;
		else
			return "must be firebase or public";
		return NULL;
	case K_PREFIXES: {
		char *copy = xstrdup(value), *tok, *save = NULL;
		const char *why = NULL;

		list_clear(list_of(K_PREFIXES, o));
		for (tok = strtok_r(copy, ", \t", &save); tok && !why;
		    tok = strtok_r(NULL, ", \t", &save))
			if ((why = bad_prefix(tok, buf, len)) == NULL)
				add_prefix(o, tok);
		free(copy);
		if (why == NULL && o->n_reference_prefixes == 0)
			why = "lists no prefix";
		return why;
	}
	case K_LIMITS:
	case K_PRICES: {
		char *copy = xstrdup(value), *tok, *save = NULL;
		const char *why = NULL;

		list_clear(list_of(s->kind, o));
		for (tok = strtok_r(copy, ", \t", &save); tok && !why;
		    tok = strtok_r(NULL, ", \t", &save)) {
			char *colon = strrchr(tok, ':'), *e;
			double v;

			errno = 0;
			v = colon ? strtod(colon + 1, &e) : -1;
			if (colon == NULL || colon == tok || errno ||
			    e == colon + 1 || *e != '\0' || v < 0 ||
			    (s->kind == K_LIMITS && (v != (double)(long)v ||
			    v > 1000000000)) || v > 1e9 ||
			    strchr(tok, '/') != NULL) {
				snprintf(buf, len, "'%.64s': give %s", tok,
				    s->kind == K_LIMITS ? "EVENT:CALLS, a "
				    "whole number" : "MODEL:USD, a price per "
				    "call");
				why = buf;
			} else {
				list_add(list_of(s->kind, o), xstrdup(tok));
			}
		}
		free(copy);
		return why;
	}
	case K_RENDITIONS: {
		char *copy = xstrdup(value), *tok, *save = NULL;
		const char *why = NULL;
		struct pool_rendition r[POOL_MAX_RENDITIONS];
		size_t k = 0;

		list_clear(list_of(K_RENDITIONS, o));
		for (tok = strtok_r(copy, ", \t", &save); tok && !why;
		    tok = strtok_r(NULL, ", \t", &save)) {
			if (k == POOL_MAX_RENDITIONS) {
				snprintf(buf, len, "more than %d renditions",
				    POOL_MAX_RENDITIONS);
				why = buf;
			} else if ((why = pool_rendition_parse(tok, &r[k], buf,
			    len)) == NULL) {
				for (size_t i = 0; i < k && !why; i++)
					if (strcmp(r[i].name, r[k].name) == 0) {
						snprintf(buf, len, "'%.31s' is "
						    "named twice", r[k].name);
						why = buf;
					}
				list_add(list_of(K_RENDITIONS, o),
				    xstrdup(tok));
				k++;
			}
		}
		free(copy);
		return why;
	}
	case K_EVENTS: {
		char *copy = xstrdup(value), *tok, *save = NULL;

		list_clear(list_of(K_EVENTS, o));
		for (tok = strtok_r(copy, ", \t", &save); tok;
		    tok = strtok_r(NULL, ", \t", &save)) {
			if (strchr(tok, '/') || strcmp(tok, ".") == 0 ||
			    strcmp(tok, "..") == 0) {
				snprintf(buf, len, "'%.64s' is not an event id",
				    tok);
				free(copy);
				return buf;
			}
			list_add(list_of(K_EVENTS, o), xstrdup(tok));
		}
		free(copy);
		if (o->n_events == 0)
			return "lists no event id";
		if (o->n_events > OPTIONS_MAX_EVENTS) {
			snprintf(buf, len, "lists more than %d events (leave "
			    "it unset to serve all events)",
			    OPTIONS_MAX_EVENTS);
			return buf;
		}
		return NULL;
	}
	default:
		break;
	}
	errno = 0;
	n = strtol(value, &end, 10);
	if (errno || end == value || *end != '\0' || n < s->lo || n > s->hi) {
		snprintf(buf, len, "'%.40s' is not a whole number from %ld to "
		    "%ld", value, s->lo, s->hi);
		return buf;
	}
	switch (s->kind) {
	case K_INT: *(int *)p = (int)n; break;
	case K_MP: *(uint64_t *)p = (uint64_t)n * 1000 * 1000; break;
	case K_MB: *(size_t *)p = (size_t)n << 20; break;
	case K_MS: *(int64_t *)p = (int64_t)n * 1000; break;
	default: break;
	}
	return NULL;
}

/* ---- the configuration file ---- */

struct file_ctx {
	struct options *o;
	struct errs *e;
	const char *path;
	FILE *f;
	int line;		/* of the line inih is looking at */
};

/* inih's line reader, counting lines so errors can say where. */
static char *
read_line(char *str, int num, void *stream)
{
	struct file_ctx *c = stream;
	char *r = fgets(str, num, c->f);

	if (r)
		c->line++;
	return r;
}

static int
on_ini(void *user, const char *section, const char *key, const char *value)
{
	struct file_ctx *c = user;
	int line = c->line;
	char buf[160];

	if (strncmp(section, "plugin.", 7) == 0 && section[7] != '\0')
		return 1;	/* the plugin's own; workers read it */
	if (key == NULL)
		return 1;	/* a section header */
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const char *why;

		if (strcmp(settings[i].section, section) != 0 ||
		    strcmp(settings[i].key, key) != 0)
			continue;
		why = apply(c->o, &settings[i], value, buf, sizeof(buf));
		if (why)
			report(c->e, "%s:%d: %s: %s", c->path, line, key, why);
		else if (settings[i].kind == K_BACKEND)
			c->o->storage_backend_line = line;
		return 1;
	}
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (strcmp(settings[i].section, section) == 0) {
			report(c->e, "%s:%d: unknown key '%s' in [%s]",
			    c->path, line, key, section);
			return 1;
		}
	report(c->e, "%s:%d: unknown section [%s] (key '%s')", c->path, line,
	    section, key);
	return 1;
}

static void
read_file(struct options *o, const char *path, bool explicit,
    struct errs *e)
{
	struct file_ctx c = { .o = o, .e = e, .path = path };
	int rc;

	c.f = fopen(path, "re");
	if (c.f == NULL) {
		if (explicit || errno != ENOENT)
			report(e, "%s: cannot read: %s", path, strerror(errno));
		return;
	}
	set_str(&o->config_path, path);
	rc = ini_parse_stream(read_line, &c, on_ini, &c);
	fclose(c.f);
	if (rc > 0)
		report(e, "%s:%d: syntax error (expected [section] or "
		    "key = value)", path, rc);
}

/* ---- command line ---- */

enum { OPT_BASE = 256, OPT_CONFIG = 512, OPT_CHECK, OPT_LIST, OPT_VERSION,
    OPT_HELP };

static void
usage(FILE *out)
{
	fputs("usage: firesyncd [options]\n\n"
	    "Turns captured guest sessions in Cloud Firestore into transformed "
	    "results.\n\n"
	    "  -c, --config FILE        configuration file (default "
	    DEFAULT_CONFIG ", if present)\n", out);
	for (size_t i = 0; i < N_SETTINGS; i++) {
		char left[64];

		snprintf(left, sizeof(left), "--%s %s", settings[i].flag,
		    settings[i].kind == K_STR || settings[i].kind == K_EVENTS ||
		    settings[i].kind == K_PREFIXES ? "VALUE" :
		    settings[i].kind == K_LIMITS ? "EVENT:N,..." :
		    settings[i].kind == K_PRICES ? "MODEL:USD,..." :
		    settings[i].kind == K_RENDITIONS ? "NAME:SIZE,..." :
		    settings[i].kind == K_LEVEL ||
		    settings[i].kind == K_FORMAT ||
		    settings[i].kind == K_BACKEND ||
		    settings[i].kind == K_URLKIND ? "NAME" : "N");
		fprintf(out, "  %-24s %s\n", left, settings[i].help);
	}
	fputs("  --check-config           validate the settings and exit 0 or 1\n"
	    "  --list-plugins           show which plugins load (and why others "
	    "do not), then exit\n"
	    "  --version                print the version and exit\n"
	    "  --help                   print this help and exit\n\n"
	    "Every option is also a configuration key; see firesyncd(8).\n",
	    out);
}

/* The CPUs this process may run on (its affinity mask, which systemd's
 * CPUAffinity= and containers set), at least 1, at most 256. */
static int
usable_cpus(void)
{
	cpu_set_t set;
	int n = 0;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = CPU_COUNT(&set);
	if (n < 1) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);

		n = c > 0 ? (int)c : 1;
	}
	return n > 256 ? 256 : n;
}

static void
defaults(struct options *o)
{
	memset(o, 0, sizeof(*o));
	o->storage_root = xstrdup(LOCALSTATEDIR "/lib/firesync");
	o->plugin_dir = xstrdup(PLUGINDIR);
	o->workers = usable_cpus();
	o->transform_timeout_s = 45;
	o->recovery_margin_s = 15;
	o->recovery_interval_s = 15;
	o->firestore_concurrency = 16;
	o->max_attempts = 3;
	o->max_pixels = 50ull * 1000 * 1000;
	o->max_input_bytes = 64u << 20;
	o->idle_timeout_ms = 120 * 1000;
	o->drain_timeout_s = 30;
	o->log_level = LOG_INFO;
	o->worker_memory_mb = 2048;
	o->worker_max_jobs = 100;
	o->keepalive_ms = -1;		/* by where Firestore is */
	add_prefix(o, "references/");
}

static void
environment(struct options *o)
{
	const char *v;

	if ((v = getenv("GOOGLE_CLOUD_PROJECT")) && *v)
		set_str(&o->project, v);
	else if ((v = getenv("GCLOUD_PROJECT")) && *v)
		set_str(&o->project, v);
	if ((v = getenv("FIRESTORE_EMULATOR_HOST")) && *v)
		set_str(&o->emulator, v);
	if ((v = getenv("GOOGLE_APPLICATION_CREDENTIALS")) && *v)
		set_str(&o->credentials, v);
	if ((v = getenv("STORAGE_EMULATOR_HOST")) && *v)
		set_str(&o->storage_emulator, v);
}

/* getopt's table: one entry per setting, then the actions. */
static void
long_options(struct option *lopts)
{
	int n = 0;

	for (size_t i = 0; i < N_SETTINGS; i++) {
		lopts[n].name = settings[i].flag;
		lopts[n].has_arg = required_argument;
		lopts[n].flag = NULL;
		lopts[n++].val = OPT_BASE + (int)i;
	}
	lopts[n++] = (struct option){ "config", required_argument, NULL,
	    OPT_CONFIG };
	lopts[n++] = (struct option){ "check-config", no_argument, NULL,
	    OPT_CHECK };
	lopts[n++] = (struct option){ "list-plugins", no_argument, NULL,
	    OPT_LIST };
	lopts[n++] = (struct option){ "version", no_argument, NULL,
	    OPT_VERSION };
	lopts[n++] = (struct option){ "help", no_argument, NULL, OPT_HELP };
	lopts[n] = (struct option){ NULL, 0, NULL, 0 };
}

/* What the first pass over the command line finds. */
struct first_pass {
	const char *config;	/* -c FILE */
	bool explicit;		/* -c was given */
	bool version, help;
};

/* First pass: where the configuration is, and the exits. */
static void
first_pass(struct options *o, int argc, char **argv,
    const struct option *lopts, struct first_pass *fp)
{
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", lopts, NULL)) != -1) {
		if (c == 'c' || c == OPT_CONFIG) {
			fp->config = optarg;
			fp->explicit = true;
		} else if (c == OPT_CHECK) {
			o->check_config = true;
		} else if (c == OPT_LIST) {
			o->list_plugins = true;
		} else if (c == OPT_VERSION) {
			fp->version = true;
		} else if (c == 'h' || c == OPT_HELP) {
			fp->help = true;
		}
	}
}

/* Second pass: flags win over the file and the environment. */
static void
flags_pass(struct options *o, int argc, char **argv,
    const struct option *lopts, struct errs *e)
{
	char buf[160];
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", lopts, NULL)) != -1) {
		if (c >= OPT_BASE && c < OPT_BASE + (int)N_SETTINGS) {
			const struct setting *s = &settings[c - OPT_BASE];
			const char *why = apply(o, s, optarg, buf, sizeof(buf));

			if (why)
				report(e, "--%s: %s", s->flag, why);
		} else if (c == '?') {
			if (optopt >= OPT_BASE || optopt == 'c')
				report(e, "%s: needs a value", argv[optind - 1]);
			else
				report(e, "unknown option '%s'",
				    argv[optind - 1]);
		}
	}
	if (optind < argc)
		report(e, "unexpected argument '%s'", argv[optind]);
}

/* Settings that depend on each other, or must be there. */
static void
cross_checks(struct options *o, struct errs *e)
{
	/* the project of the key file, as Google's tools do */
	if ((o->project == NULL || *o->project == '\0') && o->credentials &&
	    o->emulator == NULL) {
		json_t *k = json_load_file(o->credentials, 0, NULL);
		json_t *pid = k ? json_object_get(k, "project_id") : NULL;

		if (json_is_string(pid))
			set_str(&o->project, json_string_value(pid));
		json_decref(k);
	}
	if (!o->list_plugins && (o->project == NULL || *o->project == '\0'))
		report(e, "no project: set [firestore] project, "
		    "GOOGLE_CLOUD_PROJECT or --project");
	if (o->frame && *o->frame && strcmp(o->frame, "none") != 0 &&
	    (o->frame[0] == '/' || strstr(o->frame, "{event}") == NULL ||
	    strstr(o->frame, "..") != NULL || strlen(o->frame) < 4 ||
	    strcmp(o->frame + strlen(o->frame) - 4, ".png") != 0 ||
	    strlen(o->frame) > 200))
		report(e, "frame '%.200s': give a storage path with {event} "
		    "ending in .png (branding/{event}/frame.png), or none",
		    o->frame);
	if (o->public_url_base && strncmp(o->public_url_base, "http://", 7) &&
	    strncmp(o->public_url_base, "https://", 8) &&
	    strncmp(o->public_url_base, "file://", 7))
		report(e, "public-url-base '%s' must be an absolute http(s):// "
		    "or file:// URL (the web app validates resultImagePath)",
		    o->public_url_base);
	/* production's front end takes a ping every 30 s (the official C++
	 * client's figure); the emulator answers pings more often than every
	 * 5 minutes with GOAWAY */
	if (o->keepalive_ms < 0)
		o->keepalive_ms = o->emulator ? 0 : 30000;
	if (o->emulator && strchr(o->emulator, ':') == NULL)
		report(e, "emulator '%s' must be HOST:PORT", o->emulator);
	if (o->firestore_endpoint && strchr(o->firestore_endpoint, ':') ==
	    NULL)
		report(e, "firestore endpoint '%s' must be HOST:PORT",
		    o->firestore_endpoint);
	if (o->storage_backend == STORAGE_GCS && o->bucket == NULL) {
		if (o->storage_backend_line > 0)
			report(e, "%s:%d: backend gcs needs [storage] bucket",
			    o->config_path, o->storage_backend_line);
		else
			report(e, "--storage-backend gcs needs --bucket");
	}
	if (o->storage_endpoint && strncmp(o->storage_endpoint, "https://", 8))
		report(e, "storage endpoint '%s' must be an https:// URL (plain "
		    "HTTP is for the emulator: [storage] emulator)",
		    o->storage_endpoint);
	if (o->storage_endpoint && o->storage_emulator &&
	    o->storage_backend == STORAGE_GCS)
		report(e, "set one of [storage] endpoint and emulator (or "
		    "STORAGE_EMULATOR_HOST), not both");
	if (o->storage_backend == STORAGE_GCS && o->public_url_base &&
	    strncmp(o->public_url_base, "file://", 7) == 0)
		report(e, "public-url-base '%s': a bucket's results need an "
		    "http(s):// URL", o->public_url_base);
	if (o->result_url == STORE_URL_FIREBASE &&
	    o->storage_backend != STORAGE_GCS)
		report(e, "result-url = firebase needs backend = gcs (download "
		    "tokens are kept by Cloud Storage)");
	if (o->credentials && o->emulator == NULL) {
		struct stat sb;

		if (stat(o->credentials, &sb) < 0)
			report(e, "credentials file %s: %s", o->credentials,
			    strerror(errno));
		else if (sb.st_mode & (S_IRWXG | S_IRWXO))
			report(e, "credentials file %s is readable by "
			    "others: chmod 600 %s", o->credentials,
			    o->credentials);
	}
}

/*
 * The whole parse.  reload: keep quiet about --help and friends; the
 * result goes to *o only when error-free.
 */
static enum options_action
parse(struct options *o, int argc, char **argv, bool reload)
{
	struct option lopts[N_SETTINGS + 8];
	struct first_pass fp = { 0 };
	struct errs e = { 0 };

	long_options(lopts);
	defaults(o);
	first_pass(o, argc, argv, lopts, &fp);
	if (!reload && fp.help) {
		usage(stdout);
		return OPTIONS_EXIT_OK;
	}
	if (!reload && fp.version) {
		printf("firesyncd %s\n", PACKAGE_VERSION);
		return OPTIONS_EXIT_OK;
	}
	read_file(o, fp.config ? fp.config : DEFAULT_CONFIG, fp.explicit, &e);
	environment(o);
	flags_pass(o, argc, argv, lopts, &e);
	cross_checks(o, &e);
	if (e.n > 0) {
		fprintf(stderr, "firesyncd: %d problem%s in the settings%s\n",
		    e.n, e.n == 1 ? "" : "s", reload ? "; keeping the "
		    "running configuration" : "; see firesyncd --help");
		return OPTIONS_EXIT_ERROR;
	}
	return OPTIONS_RUN;
}

enum options_action
options_parse(struct options *o, int argc, char **argv)
{
	return parse(o, argc, argv, false);
}

int
options_reload(struct options *fresh, int argc, char **argv)
{
	if (parse(fresh, argc, argv, true) != OPTIONS_RUN) {
		options_clear(fresh);
		return -1;
	}
	return 0;
}

/* Does setting s differ between a and b? */
static bool
differs(const struct setting *s, const struct options *a,
    const struct options *b)
{
	const char *pa = (const char *)a + s->off, *pb = (const char *)b +
	    s->off;

	switch (s->kind) {
	case K_STR: {
		const char *x = *(char *const *)(const void *)pa;
		const char *y = *(char *const *)(const void *)pb;

		return (x == NULL) != (y == NULL) || (x && strcmp(x, y) != 0);
	}
	case K_EVENTS:
	case K_PREFIXES:
	case K_LIMITS:
	case K_PRICES:
	case K_RENDITIONS: {
		struct list x = list_of(s->kind, (struct options *)a);
		struct list y = list_of(s->kind, (struct options *)b);

		if (*x.n != *y.n)
			return true;
		for (size_t i = 0; i < *x.n; i++)
			if (strcmp((*x.v)[i], (*y.v)[i]) != 0)
				return true;
		return false;
	}
	case K_MP:
		return *(const uint64_t *)(const void *)pa !=
		    *(const uint64_t *)(const void *)pb;
	case K_MB:
		return *(const size_t *)(const void *)pa !=
		    *(const size_t *)(const void *)pb;
	case K_MS:
		return *(const int64_t *)(const void *)pa !=
		    *(const int64_t *)(const void *)pb;
	default:	/* int and the enums, int-sized */
		return *(const int *)(const void *)pa !=
		    *(const int *)(const void *)pb;
	}
}

/* Setting s of src into dst (strings copied, dst's freed). */
static void
copy_setting(const struct setting *s, struct options *dst,
    const struct options *src)
{
	char *pd = (char *)dst + s->off;
	const char *ps = (const char *)src + s->off;

	switch (s->kind) {
	case K_STR: {
		char **d = (char **)(void *)pd;
		const char *v = *(char *const *)(const void *)ps;

		free(*d);
		*d = v ? xstrdup(v) : NULL;
		break;
	}
	case K_EVENTS:
	case K_PREFIXES:
	case K_LIMITS:
	case K_PRICES:
	case K_RENDITIONS: {
		struct list d = list_of(s->kind, dst);
		struct list from = list_of(s->kind, (struct options *)src);

		list_clear(d);
		for (size_t i = 0; i < *from.n; i++)
			list_add(d, xstrdup((*from.v)[i]));
		break;
	}
	case K_MP:
		memcpy(pd, ps, sizeof(uint64_t));
		break;
	case K_MB:
		memcpy(pd, ps, sizeof(size_t));
		break;
	case K_MS:
		memcpy(pd, ps, sizeof(int64_t));
		break;
	default:
		memcpy(pd, ps, sizeof(int));
		break;
	}
}

int
options_adopt_live(struct options *fresh, const struct options *old,
    char *restart, size_t len)
{
	size_t off = 0;
	int n = 0;

	if (len > 0)
		restart[0] = '\0';
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];

		if (s->live || !differs(s, fresh, old))
			continue;
		if (off < len)
			off += (size_t)snprintf(restart + off, len - off,
			    "%s--%s", n ? ", " : "", s->flag);
		copy_setting(s, fresh, old);
		n++;
	}
	return n;
}

struct settings *
settings_new(struct options *o, unsigned generation)
{
	struct settings *s = xcalloc(1, sizeof(*s));

	s->o = *o;
	memset(o, 0, sizeof(*o));
	s->generation = generation;
	atomic_init(&s->refs, 1);
	return s;
}

struct settings *
settings_hold(struct settings *s)
{
	atomic_fetch_add(&s->refs, 1);
	return s;
}

void
settings_drop(struct settings *s)
{
	if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	options_clear(&s->o);
	free(s);
}

void
options_clear(struct options *o)
{
	free(o->config_path);
	free(o->project);
	free(o->database);
	free(o->emulator);
	free(o->credentials);
	list_clear(list_of(K_EVENTS, o));
	free(o->storage_root);
	free(o->public_url_base);
	free(o->firestore_endpoint);
	free(o->firestore_ca_file);
	free(o->bucket);
	free(o->storage_endpoint);
	free(o->storage_ca_file);
	free(o->storage_emulator);
	list_clear(list_of(K_PREFIXES, o));
	list_clear(list_of(K_LIMITS, o));
	list_clear(list_of(K_PRICES, o));
	list_clear(list_of(K_RENDITIONS, o));
	free(o->frame);
	free(o->plugin_dir);
	free(o->metrics_listen);
	memset(o, 0, sizeof(*o));
}

/* The value of name in a NAME:VALUE list, or -1. */
static double
pair_value(char *const *v, size_t n, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; name && i < n; i++) {
		const char *colon = strrchr(v[i], ':');

		if (colon != NULL && (size_t)(colon - v[i]) == len &&
		    strncmp(v[i], name, len) == 0)
			return strtod(colon + 1, NULL);
	}
	return -1;
}

int64_t
options_event_limit(const struct options *o, const char *event)
{
	double v = pair_value(o->event_limits, o->n_event_limits, event);

	return v >= 0 ? (int64_t)v : o->event_limit;
}

double
options_price(const struct options *o, const char *model)
{
	return pair_value(o->prices, o->n_prices, model);
}
