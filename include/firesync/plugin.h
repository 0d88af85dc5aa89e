/*
 * firesync/plugin.h - the transform plugin ABI of firesync.
 *
 * A plugin is a shared object exporting exactly one symbol,
 *
 *     const struct firesync_plugin firesync_plugin = { ... };
 *
 * firesync loads it with dlopen(RTLD_NOW | RTLD_LOCAL) inside a worker
 * process (never inside the daemon), checks the descriptor, calls init()
 * once, transform() once per guest photo, and fini() before the worker
 * exits.  A plugin that crashes, hangs or runs out of memory costs the one
 * session it was working on; the worker is replaced and other guests carry
 * on.
 *
 * Versioning.  FIRESYNC_PLUGIN_ABI_MAJOR changes when an existing field
 * changes meaning or place; the host refuses a plugin whose major differs
 * from its own.  FIRESYNC_PLUGIN_ABI_MINOR grows when fields are appended;
 * the host accepts plugins built against its own minor or an older one, and
 * refuses newer ones (they may rely on fields this host does not fill).
 * Structs carry their size so either side can tell which fields exist.
 *
 * Threads.  Each worker process runs one transform at a time; init, every
 * transform and fini are called from the same thread.  A plugin may start
 * threads of its own inside transform() but must join them before
 * returning.  A plugin whose transform mostly waits on a remote service
 * may say so with FIRESYNC_PLUGIN_REMOTE (ABI 1.2): its calls then run
 * many at once, each on a thread of its own, in workers apart from the
 * CPU looks' (see `flags` below).
 *
 * Build a plugin with
 *
 *     cc -shared -fPIC -o myplugin.so myplugin.c \
 *         $(pkg-config --cflags --libs firesync-plugin)
 *
 * and install it into the plugin directory (firesyncd --help shows it);
 * the file and the directory must not be writable by anyone but root or
 * the user firesyncd runs as.  `firesync-transform --plugin-dir DIR
 * --model NAME in.jpg out.png` runs it on a file through the same host.
 */
#ifndef FIRESYNC_PLUGIN_H
#define FIRESYNC_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FIRESYNC_PLUGIN_ABI_MAJOR 1
#define FIRESYNC_PLUGIN_ABI_MINOR 3

/* The name of the one symbol a plugin exports. */
#define FIRESYNC_PLUGIN_SYMBOL "firesync_plugin"

/* Return codes of init() and transform(). */
#define FIRESYNC_OK		0
#define FIRESYNC_ERROR		(-1)	/* failed; err says why */
#define FIRESYNC_CANCELLED	(-2)	/* gave up because host->cancelled() */

/* Log levels for host->log (syslog priorities). */
#define FIRESYNC_LOG_ERROR	3
#define FIRESYNC_LOG_WARNING	4
#define FIRESYNC_LOG_INFO	6
#define FIRESYNC_LOG_DEBUG	7

/* How image bytes are encoded. */
enum firesync_encoding {
	FIRESYNC_ENCODING_NONE = 0,
	FIRESYNC_ENCODING_JPEG = 1,
	FIRESYNC_ENCODING_PNG = 2,
};

/*
 * Decoded 8-bit pixels, rows top to bottom, each row `stride` bytes long
 * starting with `width` pixels of `channels` bytes: 3 = R,G,B; 4 = R,G,B,A
 * (straight, not premultiplied alpha).
 */
struct firesync_image {
	uint32_t width;
	uint32_t height;
	uint32_t channels;
	uint32_t stride;
	const uint8_t *pixels;
};

/* The configuration of one plugin ([plugin.NAME] section); opaque. */
struct firesync_config;

/*
 * Services the host offers a plugin.  Given to init(); valid until fini()
 * returns; the same pointer may be kept in the plugin's state.  Fields are
 * only ever appended: check struct_size before using one added after
 * ABI 1.0 (none yet).
 */
struct firesync_host {
	uint32_t struct_size;		/* sizeof(struct firesync_host) */
	uint32_t abi_major;		/* the host's ABI version */
	uint32_t abi_minor;

	/*
	 * Write one line to firesyncd's log, tagged plugin=NAME.  level is
	 * a FIRESYNC_LOG_* value; fmt is printf-style.  Never log secrets.
	 */
	void (*log)(int level, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

	/*
	 * Allocate memory the host will free: the pixels or data of a
	 * firesync_result must come from here.  Returns NULL when out of
	 * memory (the worker's memory is limited).  free(NULL) is a no-op.
	 */
	void *(*alloc)(size_t size);
	void (*free)(void *ptr);

	/*
	 * The value of key in this plugin's [plugin.NAME] configuration
	 * section, or NULL if unset.  The string belongs to the host and
	 * stays valid until fini().  Ask for every key you use during
	 * init(): keys of the section never asked for there are reported to
	 * the admin as unknown (a typo, most likely).
	 */
	const char *(*config_get)(const struct firesync_config *config,
	    const char *key);

	/*
	 * Nonzero once the current transform's deadline has passed.  Long
	 * transforms should check it every few hundred milliseconds and
	 * return FIRESYNC_CANCELLED; the host kills the worker shortly after
	 * the deadline anyway.
	 */
	int (*cancelled)(void);

	/* Milliseconds left before the current transform's deadline
	 * (negative once past). */
	int64_t (*time_left_ms)(void);
};

/*
 * One guest photo to transform.  Everything here is owned by the host and
 * valid only during the transform() call.
 */
struct firesync_request {
	uint32_t struct_size;		/* sizeof(struct firesync_request) */

	/* The photo, decoded, turned upright by its EXIF orientation and
	 * centre-cropped to aspect_ratio. */
	struct firesync_image image;

	/* The photo as uploaded, and how it is encoded. */
	const uint8_t *original;
	size_t original_len;
	enum firesync_encoding original_encoding;

	const char *model;		/* the aiPhotoConfig.model asked for */
	const char *prompt;		/* aiPhotoConfig.prompt; "" if none */
	const char *aspect_ratio;	/* "W:H", or "" to keep the photo's */

	/* aiPhotoConfig.referenceImageUrls that resolved to images in our
	 * storage, decoded and scaled down to at most one megapixel (they
	 * guide colours and style, not detail); n_references may be 0. */
	const struct firesync_image *references;
	size_t n_references;

	const char *session_id;
	const char *event_id;
	int64_t timeout_ms;		/* the whole transform's budget */
};

/*
 * What transform() hands back: either pixels or encoded bytes.  The host
 * zeroes it and sets struct_size before the call.  Memory must come from
 * host->alloc; the host frees it, also when transform() fails.  A result
 * not of the request's aspect_ratio is centre-cropped to it by the host.
 */
struct firesync_result {
	uint32_t struct_size;		/* set by the host */

	/* Either decoded pixels (channels 3 or 4, stride >= width *
	 * channels)... */
	uint32_t width;
	uint32_t height;
	uint32_t channels;
	uint32_t stride;
	uint8_t *pixels;

	/* ...or an encoded PNG or JPEG (pixels NULL, encoding set). */
	enum firesync_encoding encoding;
	uint8_t *data;
	size_t data_len;

	/*
	 * ABI 1.3, for remote plugins (check struct_size first): what the
	 * service said.  When transform() fails, `service` tells the host
	 * why, so that it can slow every call to the service down, retry,
	 * open its circuit or run the fallback look (see FIRESYNC_SERVICE_*);
	 * retry_after_ms is the service's Retry-After, or 0.  The tokens
	 * are the usage the service reported for the call (success or not),
	 * or 0; the host counts them per model.
	 */
	uint32_t service;
	uint32_t reserved0;
	int64_t retry_after_ms;
	uint64_t input_tokens;
	uint64_t output_tokens;
};

/* Why a remote plugin's transform() failed (firesync_result.service).
 * The host retries RATE_LIMITED and UNAVAILABLE itself, provider-wide, so
 * a remote plugin makes one request per transform() call. */
#define FIRESYNC_SERVICE_NONE		0	/* not said, or not the
						   service's doing */
#define FIRESYNC_SERVICE_RATE_LIMITED	1	/* 429, quota: slow down */
#define FIRESYNC_SERVICE_UNAVAILABLE	2	/* 5xx, unreachable, timed
						   out: try later */
#define FIRESYNC_SERVICE_REFUSED	3	/* the model refused the
						   photo or prompt (safety):
						   the guest's answer */
#define FIRESYNC_SERVICE_REJECTED	4	/* the request, key or model
						   was rejected (4xx): an
						   operator's problem */

/*
 * The descriptor.  Exported as `firesync_plugin`; must stay valid while the
 * plugin is loaded (a const object with static storage).
 */
struct firesync_plugin {
	uint32_t abi_major;		/* FIRESYNC_PLUGIN_ABI_MAJOR */
	uint32_t abi_minor;		/* FIRESYNC_PLUGIN_ABI_MINOR */
	uint32_t struct_size;		/* sizeof(struct firesync_plugin) */

	/* required: 1 to 63 characters of [a-z0-9._-], unique */
	const char *name;
	const char *version;		/* required: free form, e.g. "1.2.0" */
	const char *vendor;		/* optional */
	const char *license;		/* optional, e.g. "MIT" */
	/* required: the aiPhotoConfig.model names served, NULL-terminated,
	 * at least one, each named like the plugin (1 to 63 characters of
	 * [a-z0-9._-]).  Two plugins may not serve the same model. */
	const char *const *models;

	/*
	 * Optional.  Called once when the worker starts, before any
	 * transform.  Set *state to whatever transform() needs (or leave it
	 * NULL).  Return FIRESYNC_OK, or FIRESYNC_ERROR with a message in
	 * err (errlen bytes, always NUL-terminated by the host): the plugin
	 * is then not used.
	 */
	int (*init)(const struct firesync_host *host,
	    const struct firesync_config *config, void **state, char *err,
	    size_t errlen);

	/*
	 * Required.  Transform req into res.  Return FIRESYNC_OK with res
	 * filled, FIRESYNC_ERROR with a short reason in err (shown to the
	 * guest after "AI transform failed: "), or FIRESYNC_CANCELLED.
	 */
	int (*transform)(void *state, const struct firesync_request *req,
	    struct firesync_result *res, char *err, size_t errlen);

	/* Optional.  Release state; called once before the worker exits. */
	void (*fini)(void *state);

	/*
	 * Optional, ABI 1.1 (set abi_minor to 1 or more to have it read).
	 * Called once after init() succeeded, for a plugin whose models
	 * come from its configuration (a hosted service's model names):
	 * the models it serves, NULL-terminated, named by the same rules as
	 * `models`, valid until fini().  They replace `models`; NULL or an
	 * empty list keeps `models`.  The host checks them as it checks
	 * `models` and refuses the plugin if one is invalid or taken.
	 */
	const char *const *(*configured_models)(void *state);

	/*
	 * Optional, ABI 1.2 (set abi_minor to 2 or more to have it read):
	 * FIRESYNC_PLUGIN_* flags, or 0.
	 */
	uintptr_t flags;

	void *reserved[6];		/* zero; room for growth */
};

/*
 * flags: transform() spends its time waiting on a remote service (a hosted
 * model), not on this machine's CPU.  The host then runs the plugin in
 * workers of its own, calling transform() from several threads at once
 * with the same state: up to [plugin.NAME] calls (default 32) across the
 * daemon, up to 16 in one worker process.  transform() must be
 * thread-safe (no shared scratch buffers, a connection handle per call or
 * a locked pool of them); host->cancelled() and host->time_left_ms()
 * answer for the calling thread's transform.  init() and fini() are still
 * called once, from one thread, with no transform running.
 */
#define FIRESYNC_PLUGIN_REMOTE	0x1u

/* The smallest descriptor a host of this major version accepts. */
#define FIRESYNC_PLUGIN_MIN_SIZE \
	(offsetof(struct firesync_plugin, fini) + sizeof(void (*)(void *)))

#ifdef __cplusplus
}
#endif

#endif
