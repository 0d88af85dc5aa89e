/*
 * sepia.c - a complete firesync transform plugin: model "sepia" tones the
 * guest's photo brown.  Builds outside the firesync tree:
 *
 *     make            (or: cc -shared -fPIC -o sepia.so sepia.c \
 *                          $(pkg-config --cflags --libs firesync-plugin))
 *
 * Install sepia.so into firesync's plugin directory; an experience whose
 * aiPhotoConfig.model is "sepia" then uses it.  Try it on a file first:
 *
 *     firesync-transform --plugin-dir . --model sepia photo.jpg out.png
 *
 * Configuration, in firesyncd.conf:
 *
 *     [plugin.sepia]
 *     strength = 80        ; percent, default 100
 */
#include <stdlib.h>
#include <string.h>

#include <firesync/plugin.h>

struct sepia {
	const struct firesync_host *host;
	int strength;		/* 0..100 */
};

static int
sepia_init(const struct firesync_host *host,
    const struct firesync_config *config, void **state, char *err,
    size_t errlen)
{
	struct sepia *s = host->alloc(sizeof(*s));
	const char *v = host->config_get(config, "strength");

	if (s == NULL) {
		strncpy(err, "out of memory", errlen - 1);
		return FIRESYNC_ERROR;
	}
	s->host = host;
	s->strength = v ? atoi(v) : 100;
	if (s->strength < 0 || s->strength > 100) {
		strncpy(err, "strength must be 0 to 100", errlen - 1);
		host->free(s);
		return FIRESYNC_ERROR;
	}
	*state = s;
	return FIRESYNC_OK;
}

static uint8_t
clamp(int v)
{
	return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static int
sepia_transform(void *state, const struct firesync_request *req,
    struct firesync_result *res, char *err, size_t errlen)
{
	struct sepia *s = state;
	const struct firesync_image *im = &req->image;
	uint32_t c = im->channels;

	res->width = im->width;
	res->height = im->height;
	res->channels = c;
	res->stride = im->width * c;
	res->pixels = s->host->alloc((size_t)res->stride * im->height);
	if (res->pixels == NULL) {
		strncpy(err, "out of memory", errlen - 1);
		return FIRESYNC_ERROR;
	}
	for (uint32_t y = 0; y < im->height; y++) {
		const uint8_t *src = im->pixels + (size_t)y * im->stride;
		uint8_t *dst = res->pixels + (size_t)y * res->stride;

		if ((y & 63) == 0 && s->host->cancelled())
			return FIRESYNC_CANCELLED;
		for (uint32_t x = 0; x < im->width; x++) {
			int r = src[x * c], g = src[x * c + 1], b = src[x * c + 2];
			int sr = (r * 393 + g * 769 + b * 189) / 1000;
			int sg = (r * 349 + g * 686 + b * 168) / 1000;
			int sb = (r * 272 + g * 534 + b * 131) / 1000;
			int k = s->strength;

			dst[x * c] = clamp((sr * k + r * (100 - k)) / 100);
			dst[x * c + 1] = clamp((sg * k + g * (100 - k)) / 100);
			dst[x * c + 2] = clamp((sb * k + b * (100 - k)) / 100);
			if (c == 4)
				dst[x * c + 3] = src[x * c + 3];
		}
	}
	return FIRESYNC_OK;
}

static void
sepia_fini(void *state)
{
	struct sepia *s = state;

	if (s)
		s->host->free(s);
}

static const char *const models[] = { "sepia", NULL };

const struct firesync_plugin firesync_plugin = {
	.abi_major = FIRESYNC_PLUGIN_ABI_MAJOR,
	.abi_minor = FIRESYNC_PLUGIN_ABI_MINOR,
	.struct_size = sizeof(struct firesync_plugin),
	.name = "sepia",
	.version = "1.0.0",
	.vendor = "firesync example",
	.license = "MIT",
	.models = models,
	.init = sepia_init,
	.transform = sepia_transform,
	.fini = sepia_fini,
};
