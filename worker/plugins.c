/*
 * plugins.c - finding, checking and loading plugins; the host table.
 */
#include "config.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "log.h"
#include "plugins.h"

/* ---- configuration: [plugin.NAME] sections ---- */

struct cfg_parse {
	struct plugin_configs *c;
	FILE *f;
	int line;		/* of the line inih is looking at */
	int section_line;	/* of the last [section] header */
};

/* inih's line reader, counting lines so warnings can say where. */
static char *
cfg_read_line(char *str, int num, void *stream)
{
	struct cfg_parse *p = stream;
	char *r = fgets(str, num, p->f);

	if (r) {
		p->line++;
		if (str[strspn(str, " \t")] == '[')
			p->section_line = p->line;
	}
	return r;
}

static struct firesync_config *
config_for(struct plugin_configs *c, const char *name, int line)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->v[i].plugin, name) == 0)
			return &c->v[i];
	c->v = xrealloc(c->v, (c->n + 1) * sizeof(*c->v));
	memset(&c->v[c->n], 0, sizeof(c->v[c->n]));
	c->v[c->n].plugin = xstrdup(name);
	c->v[c->n].line = line;
	return &c->v[c->n++];
}

static int
cfg_handler(void *user, const char *section, const char *key,
    const char *value)
{
	struct cfg_parse *p = user;
	struct firesync_config *fc;
	size_t n;

	if (strncmp(section, "plugin.", 7) != 0 || section[7] == '\0')
		return 1;
	fc = config_for(p->c, section + 7, p->section_line);
	if (key == NULL)
		return 1;	/* a section header, where inih reports them */
	for (size_t i = 0; i < fc->n; i++) {
		if (strcmp(fc->keys[i], key) == 0) {
			free(fc->values[i]);
			fc->values[i] = xstrdup(value);
			fc->lines[i] = p->line;
			return 1;
		}
	}
	n = fc->n + 1;
	fc->keys = xrealloc(fc->keys, n * sizeof(*fc->keys));
	fc->values = xrealloc(fc->values, n * sizeof(*fc->values));
	fc->lines = xrealloc(fc->lines, n * sizeof(*fc->lines));
	fc->asked = xrealloc(fc->asked, n * sizeof(*fc->asked));
	fc->keys[fc->n] = xstrdup(key);
	fc->values[fc->n] = xstrdup(value);
	fc->lines[fc->n] = p->line;
	fc->asked[fc->n] = false;
	fc->n = n;
	return 1;
}

int
plugin_configs_load(struct plugin_configs *c, const char *path, char *err,
    size_t errlen)
{
	struct cfg_parse p = { c, NULL, 0, 0 };
	int rc;

	memset(c, 0, sizeof(*c));
	if (path == NULL)
		return 0;
	p.f = fopen(path, "re");
	if (p.f == NULL) {
		snprintf(err, errlen, "%s: cannot read: %s", path,
		    strerror(errno));
		return -EIO;
	}
	c->path = xstrdup(path);
	rc = ini_parse_stream(cfg_read_line, &p, cfg_handler, &p);
	fclose(p.f);
	if (rc > 0) {
		snprintf(err, errlen, "%s:%d: syntax error", path, rc);
		return -EINVAL;
	}
	return 0;
}

void
plugin_configs_free(struct plugin_configs *c)
{
	for (size_t i = 0; i < c->n; i++) {
		for (size_t k = 0; k < c->v[i].n; k++) {
			free(c->v[i].keys[k]);
			free(c->v[i].values[k]);
		}
		free(c->v[i].keys);
		free(c->v[i].values);
		free(c->v[i].lines);
		free(c->v[i].asked);
		free(c->v[i].plugin);
	}
	free(c->v);
	free(c->path);
	memset(c, 0, sizeof(*c));
}

static void
config_warning(bool log, FILE *out, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
config_warning(bool log, FILE *out, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log)
		log_warn("%s", line);
	if (out)
		fprintf(out, "%s\n", line);
}

/* Keys of a [plugin.NAME] section that the host reads, not the plugin. */
static bool
host_key(const char *key)
{
	return strcmp(key, "network") == 0 || strcmp(key, "calls") == 0 ||
	    strncmp(key, "calls.", 6) == 0 ||
	    strcmp(key, "max-retries") == 0 || strcmp(key, "fallback") == 0;
}

static bool
yes(const char *v)
{
	return v && (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 ||
	    strcmp(v, "1") == 0);
}

const char *
plugin_wants_network(const struct plugin_configs *cfgs)
{
	for (size_t i = 0; i < cfgs->n; i++)
		for (size_t k = 0; k < cfgs->v[i].n; k++)
			if (strcmp(cfgs->v[i].keys[k], "network") == 0 &&
			    yes(cfgs->v[i].values[k]))
				return cfgs->v[i].plugin;
	return NULL;
}

size_t
plugin_named_files(const struct plugin_configs *cfgs, const char **files,
    size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < cfgs->n; i++)
		for (size_t k = 0; k < cfgs->v[i].n && n < max; k++) {
			const char *key = cfgs->v[i].keys[k];
			size_t len = strlen(key);

			if (len > 5 && strcmp(key + len - 5, "-file") == 0 &&
			    cfgs->v[i].values[k][0] == '/')
				files[n++] = cfgs->v[i].values[k];
		}
	return n;
}

size_t
plugins_config_warnings(const struct plugin_set *set,
    const struct plugin_configs *cfgs, bool log, FILE *out)
{
	size_t n = 0;

	for (size_t i = 0; i < cfgs->n; i++) {
		const struct firesync_config *fc = &cfgs->v[i];
		bool loaded = false;

		for (size_t k = 0; k < set->n && !loaded; k++)
			loaded = set->v[k].config == fc;
		if (!loaded) {
			config_warning(log, out, "%s:%d: warning: "
			    "[plugin.%s]: no loaded plugin is named '%s'; "
			    "its settings are ignored (firesyncd "
			    "--list-plugins shows what loads)", cfgs->path,
			    fc->line, fc->plugin, fc->plugin);
			n++;
			continue;
		}
		for (size_t k = 0; k < fc->n; k++) {
			if (fc->asked[k] || host_key(fc->keys[k]))
				continue;
			config_warning(log, out, "%s:%d: warning: "
			    "[plugin.%s]: unknown key '%s': plugin %s does "
			    "not read it (misspelt?)", cfgs->path,
			    fc->lines[k], fc->plugin, fc->keys[k],
			    fc->plugin);
			n++;
		}
	}
	return n;
}

/* ---- the host table ---- */

/* per thread: a remote plugin's calls run on threads of their own */
static _Thread_local const char *host_plugin = "-";
static _Thread_local int64_t host_deadline_ms;

void
plugin_host_begin(const char *plugin_name, int64_t timeout_ms)
{
	host_plugin = plugin_name;
	host_deadline_ms = now_mono_ms() + timeout_ms;
}

void
plugin_host_end(void)
{
	host_plugin = "-";
	host_deadline_ms = 0;
}

static void
host_log(int level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (level < LOG_ERR)
		level = LOG_ERR;	/* plugins do not get to page anyone */
	if (level > LOG_DEBUG)
		level = LOG_DEBUG;
	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_write(level, "plugin=%s %s", host_plugin, line);
}

static void *
host_alloc(size_t n)
{
	return malloc(n ? n : 1);
}

static void
host_free(void *p)
{
	free(p);
}

static const char *
host_config_get(const struct firesync_config *c, const char *key)
{
	for (size_t i = 0; c != NULL && key != NULL && i < c->n; i++)
		if (strcmp(c->keys[i], key) == 0) {
			c->asked[i] = true;	/* the host's own array */
			return c->values[i];
		}
	return NULL;
}

static int
host_cancelled(void)
{
	return host_deadline_ms != 0 && now_mono_ms() >= host_deadline_ms;
}

static int64_t
host_time_left_ms(void)
{
	return host_deadline_ms == 0 ? 0 : host_deadline_ms - now_mono_ms();
}

const struct firesync_host plugin_host = {
	.struct_size = sizeof(struct firesync_host),
	.abi_major = FIRESYNC_PLUGIN_ABI_MAJOR,
	.abi_minor = FIRESYNC_PLUGIN_ABI_MINOR,
	.log = host_log,
	.alloc = host_alloc,
	.free = host_free,
	.config_get = host_config_get,
	.cancelled = host_cancelled,
	.time_left_ms = host_time_left_ms,
};

/* ---- loading ---- */

static const struct firesync_config empty_config = { .plugin = (char *)"" };

struct load_ctx {
	struct plugin_set *set;
	bool announce;
	FILE *report;
	bool remote_only;	/* a hosted-call worker: skip CPU looks */
};

static void
refuse(struct load_ctx *lc, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
refuse(struct load_ctx *lc, const char *path, const char *fmt, ...)
{
	char why[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	lc->set->n_refused++;
	log_at(lc->announce ? LOG_WARNING : LOG_DEBUG,
	    "plugin %s refused: %s", path, why);
	if (lc->report)
		fprintf(lc->report, "refused  %s: %s\n", path, why);
}

/* Not writable by group/others, owned by root or us.  0, or -EPERM + why. */
static int
safe_owner(const struct stat *sb, const char *what, const char *path,
    char *why, size_t len)
{
	if (sb->st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(why, len, "%s is writable by %s: chmod go-w %s", what,
		    (sb->st_mode & S_IWOTH) ? "anyone" : "its group", path);
		return -EPERM;
	}
	if (sb->st_uid != 0 && sb->st_uid != geteuid()) {
		snprintf(why, len, "%s is owned by uid %u, not root or the "
		    "service user (uid %u): chown root %s", what,
		    (unsigned)sb->st_uid, (unsigned)geteuid(), path);
		return -EPERM;
	}
	return 0;
}

static bool
valid_name(const char *s)
{
	if (s == NULL || *s == '\0' || strlen(s) >= 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		    *s == '-' || *s == '_' || *s == '.'))
			return false;
	return true;
}

static const char *
missing_field(const struct firesync_plugin *d)
{
	if (d->name == NULL || *d->name == '\0')
		return "name";
	if (d->version == NULL || *d->version == '\0')
		return "version";
	if (d->models == NULL || d->models[0] == NULL)
		return "models";
	if (d->transform == NULL)
		return "transform";
	return NULL;
}

/* The file may be loaded: a regular file, not writable by others. */
static bool
file_ok(struct load_ctx *lc, const char *path)
{
	struct stat sb;
	char why[512];

	if (stat(path, &sb) < 0) {
		refuse(lc, path, "%s", strerror(errno));
		return false;
	}
	if (!S_ISREG(sb.st_mode)) {
		refuse(lc, path, "not a regular file");
		return false;
	}
	if (safe_owner(&sb, "the file", path, why, sizeof(why)) < 0) {
		refuse(lc, path, "%s", why);
		return false;
	}
	return true;
}

/* The descriptor's version and shape; NULL (refused) if this host
 * cannot use it. */
static const struct firesync_plugin *
descriptor(struct load_ctx *lc, const char *path, void *dl)
{
	const struct firesync_plugin *d = dlsym(dl, FIRESYNC_PLUGIN_SYMBOL);
	const char *miss;

	if (d == NULL) {
		refuse(lc, path, "it exports no '%s' symbol: it is not a "
		    "firesync plugin", FIRESYNC_PLUGIN_SYMBOL);
	} else if (d->abi_major != FIRESYNC_PLUGIN_ABI_MAJOR) {
		refuse(lc, path, "built for plugin ABI %u.%u, this firesync "
		    "speaks %u.%u: rebuild it against this firesync's "
		    "firesync/plugin.h", d->abi_major, d->abi_minor,
		    FIRESYNC_PLUGIN_ABI_MAJOR, FIRESYNC_PLUGIN_ABI_MINOR);
	} else if (d->abi_minor > FIRESYNC_PLUGIN_ABI_MINOR) {
		refuse(lc, path, "needs plugin ABI %u.%u, newer than this "
		    "firesync's %u.%u: upgrade firesync", d->abi_major,
		    d->abi_minor, FIRESYNC_PLUGIN_ABI_MAJOR,
		    FIRESYNC_PLUGIN_ABI_MINOR);
	} else if (d->struct_size < FIRESYNC_PLUGIN_MIN_SIZE) {
		refuse(lc, path, "its descriptor is %u bytes, smaller than "
		    "the %zu of ABI %u.0: rebuild it", d->struct_size,
		    (size_t)FIRESYNC_PLUGIN_MIN_SIZE,
		    FIRESYNC_PLUGIN_ABI_MAJOR);
	} else if ((miss = missing_field(d)) != NULL) {
		refuse(lc, path, "required field '%s' is missing", miss);
	} else {
		return d;
	}
	return NULL;
}

/* Its name follows the rule and is not taken already. */
static bool
name_ok(struct load_ctx *lc, const char *path,
    const struct firesync_plugin *d)
{
	const struct plugin_set *set = lc->set;

	if (!valid_name(d->name)) {
		refuse(lc, path, "name '%.64s' is not [a-z0-9._-], under 64 "
		    "characters", d->name);
		return false;
	}
	for (size_t i = 0; i < set->n; i++)
		if (strcmp(set->v[i].desc->name, d->name) == 0) {
			refuse(lc, path, "a plugin named '%s' is already "
			    "loaded from %s", d->name, set->v[i].path);
			return false;
		}
	return true;
}

/* Its models follow the rule and are not served already. */
static bool
models_ok(struct load_ctx *lc, const char *path, const char *const *models)
{
	const struct plugin_set *set = lc->set;

	for (const char *const *m = models; *m; m++) {
		if (!valid_name(*m)) {
			refuse(lc, path, "model name '%.64s' is not "
			    "[a-z0-9._-], under 64 characters", *m);
			return false;
		}
		for (const char *const *o = models; o != m; o++)
			if (strcmp(*o, *m) == 0) {
				refuse(lc, path, "model '%s' is listed twice",
				    *m);
				return false;
			}
		for (size_t i = 0; i < set->n; i++) {
			const struct loaded_plugin *o = &set->v[i];

			for (const char *const *om = o->models; *om; om++)
				if (strcmp(*om, *m) == 0) {
					refuse(lc, path, "model '%s' is "
					    "already served by plugin '%s' "
					    "(%s)", *m, o->desc->name,
					    o->path);
					return false;
				}
		}
	}
	return true;
}

/* A plugin that says its calls wait on a remote service (ABI 1.2). */
static bool
is_remote(const struct firesync_plugin *d)
{
	return d->abi_minor >= 2 &&
	    d->struct_size >= offsetof(struct firesync_plugin, flags) +
	    sizeof(d->flags) && (d->flags & FIRESYNC_PLUGIN_REMOTE) != 0;
}

/* The value of key in lp's section, or NULL. */
static const char *
section_value(const struct loaded_plugin *lp, const char *key)
{
	for (size_t i = 0; i < lp->config->n; i++)
		if (strcmp(lp->config->keys[i], key) == 0)
			return lp->config->values[i];
	return NULL;
}

/* A whole number from lo to hi in key of lp's section into *out (left as
 * it is when unset); false (refused) otherwise. */
static bool
section_number(struct load_ctx *lc, struct loaded_plugin *lp,
    const char *key, long lo, long hi, int *out)
{
	const char *v = section_value(lp, key);
	char *end;
	long n;

	if (v == NULL)
		return true;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end != '\0' || n < lo || n > hi) {
		refuse(lc, lp->path, "[plugin.%s] %s = %.32s: give a whole "
		    "number from %ld to %ld", lp->desc->name, key, v, lo, hi);
		return false;
	}
	*out = (int)n;
	return true;
}

/*
 * The keys of lp's section the host reads for a remote plugin: calls
 * (how many of its transforms may run at once across the daemon),
 * max-retries (of a call the service turned away) and fallback (the model
 * run instead when the service fails).  False (refused) if one is out of
 * range.  A CPU plugin runs on the CPU workers: they are ignored, said
 * once.
 */
static bool
host_settings_ok(struct load_ctx *lc, struct loaded_plugin *lp)
{
	static const char *const keys[] = { "calls", "max-retries",
	    "fallback" };
	const char *fb;

	lp->calls = lp->remote ? PLUGIN_CALLS_DEFAULT : 1;
	lp->retries = PLUGIN_RETRIES_DEFAULT;
	lp->fallback = NULL;
	if (!lp->remote) {
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (section_value(lp, keys[i]) != NULL)
				log_at(lc->announce ? LOG_WARNING : LOG_DEBUG,
				    "plugin %s: %s ignored: it runs on the CPU "
				    "workers (workers = N sets how many)",
				    lp->desc->name, keys[i]);
		return true;
	}
	if (!section_number(lc, lp, "calls", 1, PLUGIN_CALLS_MAX,
	    &lp->calls) || !section_number(lc, lp, "max-retries", 0,
	    PLUGIN_RETRIES_MAX, &lp->retries))
		return false;
	fb = section_value(lp, "fallback");
	if (fb != NULL && *fb != '\0' && strcmp(fb, "none") != 0) {
		if (!valid_name(fb)) {
			refuse(lc, lp->path, "[plugin.%s] fallback = %.64s: "
			    "name a model ([a-z0-9._-]), or none",
			    lp->desc->name, fb);
			return false;
		}
		lp->fallback = fb;
	}
	return true;
}

/*
 * calls.MODEL = N in a remote plugin's section: a lower limit for one of
 * its models (a slow or rationed one) within the plugin's calls.  False
 * (refused, and fini() called) for a model it does not serve or a number
 * out of range.
 */
static bool
model_calls_ok(struct load_ctx *lc, struct loaded_plugin *lp)
{
	const char *why = NULL;

	for (size_t i = 0; i < lp->config->n && why == NULL; i++) {
		const char *key = lp->config->keys[i], *model = key + 6;
		bool served = false;
		char *end;
		long n;

		if (strncmp(key, "calls.", 6) != 0)
			continue;
		if (!lp->remote) {
			log_at(lc->announce ? LOG_WARNING : LOG_DEBUG, "plugin "
			    "%s: %s ignored: it runs on the CPU workers",
			    lp->desc->name, key);
			continue;
		}
		for (const char *const *m = lp->models; *m && !served; m++)
			served = strcmp(*m, model) == 0;
		errno = 0;
		n = strtol(lp->config->values[i], &end, 10);
		if (!served)
			why = "names a model the plugin does not serve";
		else if (errno || end == lp->config->values[i] || *end ||
		    n < 1 || n > PLUGIN_CALLS_MAX)
			why = "give a whole number from 1 to 1024";
		else if (lp->n_model_calls < PLUGIN_MODEL_CALLS_MAX) {
			lp->model_calls[lp->n_model_calls].model = model;
			lp->model_calls[lp->n_model_calls++].calls = (int)n;
		}
		if (why)
			refuse(lc, lp->path, "[plugin.%s] %.70s = %.32s: %s",
			    lp->desc->name, key, lp->config->values[i], why);
	}
	if (why == NULL)
		return true;
	if (lp->desc->fini) {
		plugin_host_begin(lp->desc->name, 10000);
		lp->desc->fini(lp->state);
		plugin_host_end();
	}
	return false;
}

/* The calls model of lp may have at once: its calls.MODEL, else 0 (only
 * the plugin's calls). */
int
plugin_model_calls(const struct loaded_plugin *lp, const char *model)
{
	for (size_t i = 0; i < lp->n_model_calls; i++)
		if (strcmp(lp->model_calls[i].model, model) == 0)
			return lp->model_calls[i].calls;
	return 0;
}

/* Call the plugin's init() with its configuration; false if refused. */
static bool
plugin_init(struct load_ctx *lc, struct loaded_plugin *lp)
{
	char err[512];
	int rc;

	if (lp->desc->init == NULL)
		return true;
	err[0] = '\0';
	plugin_host_begin(lp->desc->name, 60000);
	rc = lp->desc->init(&plugin_host, lp->config, &lp->state, err,
	    sizeof(err));
	plugin_host_end();
	err[sizeof(err) - 1] = '\0';
	if (rc == FIRESYNC_OK)
		return true;
	refuse(lc, lp->path, "init failed: %s", *err ? err : "no reason given");
	return false;
}

/* A plugin that names its models from its configuration (ABI 1.1). */
static bool
has_configured_models(const struct firesync_plugin *d)
{
	return d->abi_minor >= 1 && d->configured_models != NULL;
}

/* The models lp serves, once it is initialised; false if refused. */
static bool
served_models(struct load_ctx *lc, struct loaded_plugin *lp)
{
	const struct firesync_plugin *d = lp->desc;
	const char *const *m = NULL;

	lp->models = d->models;
	if (has_configured_models(d)) {
		plugin_host_begin(d->name, 10000);
		m = d->configured_models(lp->state);
		plugin_host_end();
		if (m != NULL && m[0] != NULL)
			lp->models = m;
	}
	if (models_ok(lc, lp->path, lp->models))
		return true;
	if (d->fini) {
		plugin_host_begin(d->name, 10000);
		d->fini(lp->state);
		plugin_host_end();
	}
	return false;
}

/* One line for --list-plugins. */
static void
report_loaded(FILE *report, const struct loaded_plugin *lp)
{
	const struct firesync_plugin *d = lp->desc;

	fprintf(report, "loaded   %s %s", d->name, d->version);
	if (d->vendor || d->license)
		fprintf(report, " (%s%s%s)", d->vendor ? d->vendor : "",
		    d->vendor && d->license ? ", " : "",
		    d->license ? d->license : "");
	fprintf(report, " models:");
	for (const char *const *m = lp->models; *m; m++)
		fprintf(report, " %s", *m);
	if (lp->remote)
		fprintf(report, " remote, calls=%d%s%s", lp->calls,
		    lp->fallback ? ", fallback=" : "",
		    lp->fallback ? lp->fallback : "");
	fprintf(report, " [%s]\n", lp->path);
}

static void
load_one(struct load_ctx *lc, const char *path,
    const struct plugin_configs *cfgs)
{
	struct plugin_set *set = lc->set;
	struct loaded_plugin lp;
	const struct firesync_plugin *d;
	void *dl;

	if (!file_ok(lc, path))
		return;
	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (dl == NULL) {
		refuse(lc, path, "cannot load it: %s (is it built for this "
		    "system, with its libraries installed?)", dlerror());
		return;
	}
	/* models from the configuration are checked once init made them */
	if ((d = descriptor(lc, path, dl)) == NULL || !name_ok(lc, path, d) ||
	    (!has_configured_models(d) && !models_ok(lc, path, d->models)))
		goto refused;
	if (lc->remote_only && !is_remote(d)) {
		dlclose(dl);	/* a CPU look: the CPU workers run it */
		return;
	}
	memset(&lp, 0, sizeof(lp));
	lp.path = xstrdup(path);
	lp.dl = dl;
	lp.desc = d;
	lp.remote = is_remote(d);
	lp.config = &empty_config;
	for (size_t i = 0; cfgs && i < cfgs->n; i++)
		if (strcmp(cfgs->v[i].plugin, d->name) == 0)
			lp.config = &cfgs->v[i];
	if (!host_settings_ok(lc, &lp) || !plugin_init(lc, &lp) ||
	    !served_models(lc, &lp) || !model_calls_ok(lc, &lp)) {
		free(lp.path);
		goto refused;
	}
	set->v = xrealloc(set->v, (set->n + 1) * sizeof(*set->v));
	set->v[set->n++] = lp;
	if (lc->report)
		report_loaded(lc->report, &lp);
	if (lp.remote)
		log_at(lc->announce ? LOG_INFO : LOG_DEBUG,
		    "plugin %s %s loaded from %s (ABI %u.%u; remote: up to "
		    "%d calls at once)", d->name, d->version, path,
		    d->abi_major, d->abi_minor, lp.calls);
	else
		log_at(lc->announce ? LOG_INFO : LOG_DEBUG,
		    "plugin %s %s loaded from %s (ABI %u.%u)", d->name,
		    d->version, path, d->abi_major, d->abi_minor);
	return;
refused:
	dlclose(dl);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void
plugins_load(struct plugin_set *set, const char *dir,
    const struct plugin_configs *cfgs, bool announce, FILE *report,
    bool remote_only)
{
	struct load_ctx lc = { set, announce, report, remote_only };
	struct dirent *de;
	struct stat sb;
	char why[512], **names = NULL;
	size_t n = 0;
	DIR *d;

	memset(set, 0, sizeof(*set));
	if (stat(dir, &sb) < 0) {
		if (errno == ENOENT) {
			log_at(announce ? LOG_NOTICE : LOG_DEBUG,
			    "plugin directory %s does not exist: no plugins",
			    dir);
			if (report)
				fprintf(report, "no plugin directory %s\n",
				    dir);
			return;
		}
		refuse(&lc, dir, "%s", strerror(errno));
		return;
	}
	if (safe_owner(&sb, "the plugin directory", dir, why,
	    sizeof(why)) < 0) {
		refuse(&lc, dir, "%s; no plugin in it is loaded", why);
		return;
	}
	d = opendir(dir);
	if (d == NULL) {
		refuse(&lc, dir, "%s", strerror(errno));
		return;
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (len < 4 || strcmp(de->d_name + len - 3, ".so") != 0 ||
		    de->d_name[0] == '.')
			continue;
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = xasprintf("%s/%s", dir, de->d_name);
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		load_one(&lc, names[i], cfgs);
		free(names[i]);
	}
	free(names);
}

struct loaded_plugin *
plugins_find(struct plugin_set *set, const char *model)
{
	for (size_t i = 0; i < set->n; i++)
		for (const char *const *m = set->v[i].models; *m; m++)
			if (strcmp(*m, model) == 0)
				return &set->v[i];
	return NULL;
}

void
plugins_unload(struct plugin_set *set)
{
	for (size_t i = 0; i < set->n; i++) {
		if (set->v[i].desc->fini) {
			plugin_host_begin(set->v[i].desc->name, 10000);
			set->v[i].desc->fini(set->v[i].state);
			plugin_host_end();
		}
		dlclose(set->v[i].dl);
		free(set->v[i].path);
	}
	free(set->v);
	memset(set, 0, sizeof(*set));
}
