/*
 * options.h - firesyncd's settings.
 *
 * Precedence, lowest first: built-in defaults, the configuration file
 * (-c FILE, or /etc/firesync/firesyncd.conf when it exists), the
 * environment as Google's tools use it (GOOGLE_CLOUD_PROJECT,
 * FIRESTORE_EMULATOR_HOST, GOOGLE_APPLICATION_CREDENTIALS), then flags.
 * Every flag has a configuration key; one table defines both.
 */
#ifndef FIRESYNC_OPTIONS_H
#define FIRESYNC_OPTIONS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON };
enum storage_backend { STORAGE_LOCAL = 0, STORAGE_GCS };

#define FIRESTORE_ENDPOINT "firestore.googleapis.com:443"

/* --events takes at most this many ids (each is a Listen target). */
#define OPTIONS_MAX_EVENTS 32

struct options {
	char *config_path;	/* the file read, or NULL */
	char *project;
	char *database;
	char *emulator;		/* host:port, or NULL for production */
	char *credentials;	/* service account key file, or NULL */
	char *firestore_endpoint;	/* HOST:PORT; NULL: the default */
	char *firestore_ca_file;	/* NULL: the system's CA store */
	char **events;		/* only these event ids; NULL: all */
	size_t n_events;
	enum storage_backend storage_backend;
	int storage_backend_line;	/* where the file set it, or 0 */
	char *storage_root;	/* local backend */
	char *bucket;		/* gcs backend */
	char *storage_endpoint;	/* gcs; NULL: storage.googleapis.com */
	char *storage_ca_file;	/* gcs; NULL: the system's CA store */
	int64_t storage_connect_timeout_ms;	/* 0: the backend's default */
	int64_t storage_timeout_ms;
	char *storage_emulator;	/* gcs: Google's Storage emulator, HOST:PORT
				   (env STORAGE_EMULATOR_HOST); or NULL */
	char *public_url_base;	/* NULL: the URL kind's default */
	enum store_url_kind result_url;	/* DEFAULT: the backend's */
	char **reference_prefixes;	/* where reference images may be; never
				   empty, each ends in '/' */
	size_t n_reference_prefixes;
	char *plugin_dir;
	char *metrics_listen;	/* HOST:PORT or a socket path; NULL: off */
	int event_limit;	/* hosted calls per event; 0: no limit */
	char **event_limits;	/* "EVENT:N": other limits */
	size_t n_event_limits;
	char **prices;		/* "MODEL:USD": a call's price */
	size_t n_prices;
	char **renditions;	/* "NAME:SIZE[:FORMAT][@DPI]", checked */
	size_t n_renditions;
	uint64_t max_result_pixels;	/* 0: results as made */
	char *frame;		/* the frame's path, with {event}; NULL: the
				   default; "" or "none": off */
	int workers;
	int transform_timeout_s;
	int recovery_margin_s;	/* "transforming" older than timeout+margin
				   is taken to be interrupted */
	int max_attempts;	/* claims per capture before giving up */
	uint64_t max_pixels;
	size_t max_input_bytes;
	int firestore_concurrency;	/* runner threads: Firestore calls in
				   flight (fixed at start-up) */
	int recovery_interval_s;	/* the interrupted-session query */
	int64_t keepalive_ms;	/* 0: off; default 30 s, 0 for the
				   emulator */
	int64_t idle_timeout_ms;/* no Listen message this long: reconnect */
	int drain_timeout_s;	/* SIGTERM waits this long for sessions */
	int log_level;
	enum log_format log_format;
	int worker_memory_mb;	/* address space of one worker */
	int worker_max_jobs;	/* recycle a worker after this many */
	bool list_plugins;	/* --list-plugins: report and exit */
	bool check_config;	/* --check-config: validate and exit */
};

enum options_action { OPTIONS_RUN, OPTIONS_EXIT_OK, OPTIONS_EXIT_ERROR };

/*
 * Fill o from defaults, the configuration file, the environment and argv.
 * Prints --help/--version itself (OPTIONS_EXIT_OK) and every problem it
 * finds, all of them, on stderr as FILE:LINE: message or --flag: message
 * (OPTIONS_EXIT_ERROR).  With --check-config, OPTIONS_RUN means the
 * settings are valid so far (the caller checks the plugins' sections and
 * says so).  o is freed with options_clear().
 */
enum options_action options_parse(struct options *o, int argc, char **argv);
/*
 * Read the settings again for SIGHUP (flags given at start-up still win)
 * into *fresh, which the caller frees with options_clear().  Returns 0,
 * or -1 after reporting every error (*fresh is then already cleared).
 */
int options_reload(struct options *fresh, int argc, char **argv);
void options_clear(struct options *o);

/*
 * After a reload: the settings only a restart can change (the project,
 * storage, events, workers, the metrics address...) are put back in
 * fresh as they were in old, and their flags listed in restart ("--workers,
 * --events"); returns how many changed.  What a reload applies is marked
 * in the settings table, in one place.
 */
int options_adopt_live(struct options *fresh, const struct options *old,
    char *restart, size_t len);

/*
 * An immutable set of options shared by reference: a reload builds a new
 * one and swaps it in, and each task runs under the one that was current
 * when it started (the way nginx builds a new cycle).
 */
struct settings {
	struct options o;		/* read-only once shared */
	unsigned generation;		/* 1 at start, one more per reload */
	atomic_int refs;
};

/* A new set with one reference, taking o's contents (o is left empty). */
struct settings *settings_new(struct options *o, unsigned generation);
struct settings *settings_hold(struct settings *s);
/* Drop a reference; the last frees the set.  NULL is a no-op. */
void settings_drop(struct settings *s);

/* Hosted-model calls event may make, all daemons together; 0: no limit. */
int64_t options_event_limit(const struct options *o, const char *event);
/* What one call of model costs in USD, or -1 if no price is set. */
double options_price(const struct options *o, const char *model);
struct pool_rendition;
/* The renditions to make of every result, into out (room for
 * POOL_MAX_RENDITIONS); how many. */
size_t options_renditions(const struct options *o,
    struct pool_rendition *out);

#endif
