/*
 * testplugin.c - plugins that behave well and badly, for the tests.  Built
 * once per behaviour with -DTP_<NAME>; each build exports one descriptor.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "firesync/plugin.h"

static const struct firesync_host *host;

static int __attribute__((unused))
tp_init(const struct firesync_host *h, const struct firesync_config *c,
    void **state, char *err, size_t errlen)
{
	host = h;
#ifdef TP_INITFAIL
	(void)c;
	(void)state;
	strncpy(err, "licence key missing", errlen - 1);
	return FIRESYNC_ERROR;
#else
	(void)err;
	(void)errlen;
	/* state: the configured mode, if any ([plugin.NAME] mode = ...) */
	*state = (void *)h->config_get(c, "mode");
	return FIRESYNC_OK;
#endif
}

/* Copy (or invert, or grey) the request's pixels into res. */
static int __attribute__((unused))
copy_pixels(const struct firesync_request *req, struct firesync_result *res,
    int invert, int grey)
{
	const struct firesync_image *im = &req->image;
	uint32_t c = im->channels;

	res->width = im->width;
	res->height = im->height;
	res->channels = c;
	res->stride = im->width * c;
	res->pixels = host->alloc((size_t)res->stride * im->height);
	if (res->pixels == NULL)
		return FIRESYNC_ERROR;
	for (uint32_t y = 0; y < im->height; y++) {
		const uint8_t *s = im->pixels + (size_t)y * im->stride;
		uint8_t *d = res->pixels + (size_t)y * res->stride;

		for (uint32_t x = 0; x < im->width; x++) {
			uint8_t g = (uint8_t)((s[x * c] * 3 + s[x * c + 1] * 6 +
			    s[x * c + 2]) / 10);

			for (uint32_t k = 0; k < c; k++) {
				uint8_t v = s[x * c + k];

				if (k < 3 && grey)
					v = g;
				if (k < 3 && invert)
					v = (uint8_t)(255 - v);
				d[x * c + k] = v;
			}
		}
	}
	return FIRESYNC_OK;
}

static int __attribute__((unused))
tp_transform(void *state, const struct firesync_request *req,
    struct firesync_result *res, char *err, size_t errlen)
{
	const char *mode = state;

	(void)mode;
	(void)req;
	(void)res;
	(void)err;
	(void)errlen;
#if defined(TP_SEGV)
	host->log(FIRESYNC_LOG_INFO, "about to crash");
	raise(SIGSEGV);
	return FIRESYNC_ERROR;
#elif defined(TP_HANG)
	for (;;)
		pause();
	return FIRESYNC_ERROR;
#elif defined(TP_HOG)
	/* allocate and touch without bound, never checking for NULL */
	for (;;) {
		char *p = malloc(64u << 20);

		memset(p, 1, 64u << 20);
	}
	return FIRESYNC_ERROR;
#elif defined(TP_ERROR)
	strncpy(err, "the model is sad", errlen - 1);
	return FIRESYNC_ERROR;
#elif defined(TP_GARBAGE)
	res->width = 100000;
	res->height = 100000;
	res->channels = 3;
	res->stride = 300000;
	res->pixels = host->alloc(16);
	return FIRESYNC_OK;
#elif defined(TP_SLOW)
	while (!host->cancelled())
		usleep(10000);
	return FIRESYNC_CANCELLED;
#elif defined(TP_REMOTE)
	/* a hosted model's stand-in, called from many threads at once; the
	 * prompt says what this call does: "gate PATH" waits (watching its
	 * own deadline) until PATH exists, "segv" crashes the worker,
	 * "hang" never returns; anything else answers at once */
	if (strncmp(req->prompt, "gate ", 5) == 0) {
		while (access(req->prompt + 5, F_OK) != 0) {
			if (host->cancelled())
				return FIRESYNC_CANCELLED;
			usleep(5000);
		}
	} else if (strcmp(req->prompt, "segv") == 0) {
		raise(SIGSEGV);
	} else if (strcmp(req->prompt, "hang") == 0) {
		for (;;)
			pause();
	}
	return copy_pixels(req, res, 1, 0);
#elif defined(TP_PASSTHROUGH)
	/* one line per run: the bench and the tests count runs per session
	 * from it; a prompt "sleep MS" makes the run take that long */
	host->log(FIRESYNC_LOG_INFO, "transform-run session=%s event=%s",
	    req->session_id, req->event_id);
	if (req->prompt && strncmp(req->prompt, "sleep ", 6) == 0)
		usleep((useconds_t)atoi(req->prompt + 6) * 1000);
	if (strcmp(req->model, "test-original") == 0) {
		/* hand back the original encoded bytes */
		res->data = host->alloc(req->original_len);
		if (res->data == NULL)
			return FIRESYNC_ERROR;
		memcpy(res->data, req->original, req->original_len);
		res->data_len = req->original_len;
		res->encoding = req->original_encoding;
		return FIRESYNC_OK;
	}
	return copy_pixels(req, res, 0, 0);
#else
	host->log(FIRESYNC_LOG_DEBUG, "inverting %ux%u, prompt '%s', %zu "
	    "reference(s)", req->image.width, req->image.height, req->prompt,
	    req->n_references);
	return copy_pixels(req, res, 1, mode && strcmp(mode, "grey") == 0);
#endif
}

#if defined(TP_SEGV)
#define TP_NAME "test-segv"
#elif defined(TP_HANG)
#define TP_NAME "test-hang"
#elif defined(TP_HOG)
#define TP_NAME "test-hog"
#elif defined(TP_ERROR)
#define TP_NAME "test-error"
#elif defined(TP_GARBAGE)
#define TP_NAME "test-garbage"
#elif defined(TP_SLOW)
#define TP_NAME "test-slow"
#elif defined(TP_REMOTE)
#define TP_NAME "test-remote"
#elif defined(TP_PASSTHROUGH)
#define TP_NAME "test-passthrough"
#elif defined(TP_ABI_MAJOR)
#define TP_NAME "test-abi-major"
#elif defined(TP_NEWER_MINOR)
#define TP_NAME "test-newer-minor"
#elif defined(TP_SMALL)
#define TP_NAME "test-small"
#elif defined(TP_NOFIELD)
#define TP_NAME "test-nofield"
#elif defined(TP_INITFAIL)
#define TP_NAME "test-initfail"
#elif defined(TP_DUPLICATE)
#define TP_NAME "test-duplicate"
#else
#define TP_NAME "test-good"
#endif

#ifdef TP_PASSTHROUGH
static const char *const models[] __attribute__((unused)) = { "test-passthrough", "test-original",
    NULL };
#elif defined(TP_DUPLICATE)
static const char *const models[] __attribute__((unused)) = { "test-dup-own", "test-good", NULL };
#else
static const char *const models[] __attribute__((unused)) = { TP_NAME, NULL };
#endif

#ifdef TP_NOSYMBOL
int not_a_plugin = 1;
#else
const struct firesync_plugin firesync_plugin = {
#ifdef TP_ABI_MAJOR
	.abi_major = FIRESYNC_PLUGIN_ABI_MAJOR + 98,
#else
	.abi_major = FIRESYNC_PLUGIN_ABI_MAJOR,
#endif
#ifdef TP_NEWER_MINOR
	.abi_minor = FIRESYNC_PLUGIN_ABI_MINOR + 1,
#else
	.abi_minor = FIRESYNC_PLUGIN_ABI_MINOR,
#endif
#ifdef TP_SMALL
	.struct_size = 16,
#else
	.struct_size = sizeof(struct firesync_plugin),
#endif
	.name = TP_NAME,
	.version = "1.0.0",
	.vendor = "firesync tests",
	.license = "MIT",
	.models = models,
	.init = tp_init,
#ifndef TP_NOFIELD
	.transform = tp_transform,
#endif
#ifdef TP_REMOTE
	.flags = FIRESYNC_PLUGIN_REMOTE,
#endif
};
#endif
