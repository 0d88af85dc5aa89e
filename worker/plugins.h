/*
 * plugins.h - loading transform plugins (inside a worker process only).
 *
 * Every *.so in the plugin directory is checked and either loaded or
 * refused with one log line naming the file and the reason: a directory
 * or file writable by anyone but root or us, a dlopen failure, a missing
 * firesync_plugin symbol, a different ABI major or a newer minor, a
 * descriptor too small, a missing required field, a name or model another
 * plugin already has, or a failing init().
 */
#ifndef FIRESYNC_PLUGINS_H
#define FIRESYNC_PLUGINS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "firesync/plugin.h"

struct firesync_config {
	char *plugin;		/* NAME of [plugin.NAME] */
	int line;		/* of its [plugin.NAME] header */
	char **keys;
	char **values;
	int *lines;		/* of each key */
	bool *asked;		/* the plugin asked config_get for it */
	size_t n;
};

struct plugin_configs {
	char *path;		/* the file, or NULL */
	struct firesync_config *v;
	size_t n;
};

struct loaded_plugin {
	char *path;
	void *dl;
	const struct firesync_plugin *desc;
	const char *const *models;	/* served: desc->models or the
					   plugin's configured_models() */
	void *state;
	const struct firesync_config *config;	/* never NULL */
	bool remote;			/* FIRESYNC_PLUGIN_REMOTE */
	int calls;			/* remote: calls at once, daemon-wide
					   ([plugin.NAME] calls); else 1 */
	int retries;			/* remote: retries of a call the
					   service turned away (max-retries) */
	const char *fallback;		/* remote: the model run instead when
					   the service fails ([plugin.NAME]
					   fallback), or NULL */
	struct {			/* remote: calls.MODEL = N */
		const char *model;
		int calls;
	} model_calls[16];
	size_t n_model_calls;
};

#define PLUGIN_MODEL_CALLS_MAX	16

/* A remote plugin's calls at once unless [plugin.NAME] calls says. */
#define PLUGIN_CALLS_DEFAULT	32
#define PLUGIN_CALLS_MAX	1024
#define PLUGIN_RETRIES_DEFAULT	2
#define PLUGIN_RETRIES_MAX	100

struct plugin_set {
	struct loaded_plugin *v;
	size_t n;
	size_t n_refused;
};

/*
 * Read the [plugin.NAME] sections of an INI file, with the line of each
 * key (other sections are not the worker's business).  NULL path: no
 * configuration.  Returns 0, or -errno with err ("FILE:LINE: ...").
 */
int plugin_configs_load(struct plugin_configs *c, const char *path,
    char *err, size_t errlen);
void plugin_configs_free(struct plugin_configs *c);

/*
 * Load the plugins in dir.  Each outcome is logged (loads at announce_prio,
 * refusals at LOG_WARNING when announce, LOG_DEBUG otherwise) and, if
 * report is not NULL, also written there one per line.  remote_only: only
 * the plugins flagged FIRESYNC_PLUGIN_REMOTE (a hosted-call worker); the
 * others are skipped without a word.
 */
void plugins_load(struct plugin_set *set, const char *dir,
    const struct plugin_configs *cfgs, bool announce, FILE *report,
    bool remote_only);
/* The first plugin whose section says network = yes (the host reads that
 * key for the sandbox), or NULL. */
const char *plugin_wants_network(const struct plugin_configs *cfgs);
/* The values of the keys ending in "-file" (files plugins read: an API
 * key, a CA), at most max, into files; returns how many. */
size_t plugin_named_files(const struct plugin_configs *cfgs,
    const char **files, size_t max);

/*
 * The configuration's loose ends, one "FILE:LINE: ..." line each: a
 * [plugin.NAME] section naming no loaded plugin, and keys its plugin did
 * not ask for while it initialised (a typo, or a key of another version).
 * Logged at LOG_WARNING when log is set, and written to out when it is
 * not NULL.  Returns how many there were.
 */
size_t plugins_config_warnings(const struct plugin_set *set,
    const struct plugin_configs *cfgs, bool log, FILE *out);
/* The plugin serving model, or NULL. */
struct loaded_plugin *plugins_find(struct plugin_set *set, const char *model);
/* The calls model of remote plugin lp may have at once (calls.MODEL), or
 * 0 if only the plugin's calls bound it. */
int plugin_model_calls(const struct loaded_plugin *lp, const char *model);
/* fini() every plugin and unload them. */
void plugins_unload(struct plugin_set *set);

/* The host services table given to plugins, and its per-call state. */
extern const struct firesync_host plugin_host;
void plugin_host_begin(const char *plugin_name, int64_t timeout_ms);
void plugin_host_end(void);

#endif
