/*
 * soak.c - the soak test's model, "soak": every run logs
 * "soak-run session=ID" (the soak counts runs per session from the
 * daemons' logs), then, at random, crashes (3%), hangs past any deadline
 * (2%), is slow (10%, up to 1.5 s) or returns the photo at once.
 */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "firesync/plugin.h"

static const struct firesync_host *host;

static int
s_init(const struct firesync_host *h, const struct firesync_config *c,
    void **state, char *err, size_t errlen)
{
	(void)c;
	(void)state;
	(void)err;
	(void)errlen;
	host = h;
	return FIRESYNC_OK;
}

static void
nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int
s_transform(void *state, const struct firesync_request *req,
    struct firesync_result *res, char *err, size_t errlen)
{
	size_t n = (size_t)req->image.stride * req->image.height;
	uint32_t r = 0;

	(void)state;
	(void)err;
	(void)errlen;
	host->log(FIRESYNC_LOG_WARNING, "soak-run session=%s",
	    req->session_id);
	(void)!getrandom(&r, sizeof(r), 0);
	r %= 1000;
	if (r < 30)
		raise(SIGSEGV);
	if (r < 50)
		for (;;)
			nap_ms(1000);
	if (r < 150)
		nap_ms(200 + (long)(r * 13 % 1300));
	res->width = req->image.width;
	res->height = req->image.height;
	res->channels = req->image.channels;
	res->stride = req->image.stride;
	res->pixels = host->alloc(n);
	if (res->pixels == NULL)
		return FIRESYNC_ERROR;
	memcpy(res->pixels, req->image.pixels, n);
	return FIRESYNC_OK;
}

static const char *const models[] = { "soak", NULL };

const struct firesync_plugin firesync_plugin = {
	.abi_major = FIRESYNC_PLUGIN_ABI_MAJOR,
	.abi_minor = FIRESYNC_PLUGIN_ABI_MINOR,
	.struct_size = sizeof(struct firesync_plugin),
	.name = "test-soak",
	.version = "1.0.0",
	.vendor = "firesync tests",
	.license = "MIT",
	.models = models,
	.init = s_init,
	.transform = s_transform,
};
