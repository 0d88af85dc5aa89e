/*
 * options.h - firesyncd's settings: defaults, then the environment (as
 * Google's tools use it), then command-line flags.
 */
#ifndef FIRESYNC_OPTIONS_H
#define FIRESYNC_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct options {
	char *project;
	char *database;
	char *emulator;		/* host:port, or NULL for production */
	char *storage_root;
	char *public_url_base;	/* NULL: file:// URLs of the storage root */
	char *plugin_dir;
	int workers;
	int transform_timeout_s;
	int recovery_margin_s;	/* "transforming" older than timeout+margin
				   is taken to be interrupted */
	int max_attempts;	/* claims per capture before giving up */
	uint64_t max_pixels;
	size_t max_input_bytes;
	int64_t keepalive_ms;	/* 0: off */
	int64_t idle_timeout_ms;/* no Listen message this long: reconnect */
	int log_level;
	int worker_memory_mb;	/* address space of one worker */
	int worker_max_jobs;	/* recycle a worker after this many */
	bool list_plugins;	/* --list-plugins: report and exit */
};

enum options_action { OPTIONS_RUN, OPTIONS_EXIT_OK, OPTIONS_EXIT_ERROR };

/*
 * Fill o from defaults, environment and argv.  Prints --help/--version
 * itself (OPTIONS_EXIT_OK) and reports bad flags on stderr
 * (OPTIONS_EXIT_ERROR).  o is freed with options_clear().
 */
enum options_action options_parse(struct options *o, int argc, char **argv);
void options_clear(struct options *o);

#endif
