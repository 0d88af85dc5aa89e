/*
 * cartoon.c - the "cartoon" model: flat colours and dark outlines.
 *
 *  1. Edge-preserving smoothing: the domain transform recursive filter,
 *     which flattens skin and backgrounds but keeps edges sharp, in time
 *     linear in the pixels whatever the radius.
 *  2. Colour quantisation into flat regions: luma is quantised softly
 *     (a tanh step between levels, after Winnemoeller et al. 2006) in
 *     YCbCr, so hues survive and region borders do not alias.
 *  3. Outlines: gradient magnitude of the blurred, smoothed luma, turned
 *     into a dark line between two thresholds, composited on top.
 *
 * Parameters ([plugin.cartoon] in firesyncd.conf; the prompt words "bold"
 * and "soft" adjust them):
 *   levels          luma levels of the flat regions (default 8, 2..32)
 *   smoothing       spatial sigma as a fraction of the image's short side
 *                   (default 0.02)
 *   range           range sigma, 0..1 (default 0.25)
 *   edge-threshold  gradient where lines start, 0..255 (default 18)
 *   line-strength   darkness of lines, 0..1 (default 0.85)
 */
#include <ctype.h>
#include <stdbool.h>
#include <strings.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "firesync/plugin.h"
#include "imgops.h"

#define QLUT 1021	/* entries of the quantisation table */

struct params {
	int levels;
	float smoothing, range, edge_threshold, line_strength;
};

struct cartoon {
	const struct firesync_host *host;
	struct params base;
};

static const struct firesync_host *host;

static int
get_float(const struct firesync_config *c, const char *key, float lo,
    float hi, float *out, char *err, size_t errlen)
{
	const char *v = host->config_get(c, key);
	char *end;
	float f;

	if (v == NULL)
		return 0;
	f = strtof(v, &end);
	if (end == v || *end != '\0' || !(f >= lo && f <= hi)) {
		snprintf(err, errlen, "[plugin.cartoon] %s = %s: expected a "
		    "number from %g to %g", key, v, lo, hi);
		return -1;
	}
	*out = f;
	return 0;
}

static int
cartoon_init(const struct firesync_host *h, const struct firesync_config *c,
    void **state, char *err, size_t errlen)
{
	struct cartoon *s;
	float levels = 8;

	host = h;
	s = h->alloc(sizeof(*s));
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return FIRESYNC_ERROR;
	}
	s->host = h;
	s->base.smoothing = 0.02f;
	s->base.range = 0.25f;
	s->base.edge_threshold = 18;
	s->base.line_strength = 0.85f;
	if (get_float(c, "levels", 2, 32, &levels, err, errlen) < 0 ||
	    get_float(c, "smoothing", 0.001f, 0.2f, &s->base.smoothing, err,
	    errlen) < 0 ||
	    get_float(c, "range", 0.01f, 1, &s->base.range, err, errlen) < 0 ||
	    get_float(c, "edge-threshold", 1, 255, &s->base.edge_threshold,
	    err, errlen) < 0 ||
	    get_float(c, "line-strength", 0, 1, &s->base.line_strength, err,
	    errlen) < 0) {
		h->free(s);
		return FIRESYNC_ERROR;
	}
	s->base.levels = (int)levels;
	*state = s;
	return FIRESYNC_OK;
}

static bool
has_word(const char *text, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = text; p && *p; p++)
		if (strncasecmp(p, word, n) == 0 &&
		    (p == text || !isalpha((unsigned char)p[-1])) &&
		    !isalpha((unsigned char)p[n]))
			return true;
	return false;
}

/* Cheap prompt mapping: "bold" and "soft" move the look. */
static struct params
from_prompt(struct params p, const char *prompt)
{
	if (has_word(prompt, "bold") || has_word(prompt, "comic")) {
		p.levels = p.levels > 4 ? p.levels - 2 : p.levels;
		p.edge_threshold *= 0.7f;
		p.line_strength = 1.0f;
	}
	if (has_word(prompt, "soft") || has_word(prompt, "pastel")) {
		p.levels += 4;
		p.edge_threshold *= 1.6f;
		p.line_strength *= 0.5f;
	}
	return p;
}

static int
cartoon_transform(void *state, const struct firesync_request *req,
    struct firesync_result *res, char *err, size_t errlen)
{
	struct cartoon *s = state;
	struct params p = from_prompt(s->base, req->prompt);
	const struct firesync_image *im = &req->image;
	int w = (int)im->width, h = (int)im->height, shortside;
	size_t n = (size_t)w * h;
	float *lum = NULL, step, phi, qlut[QLUT];
	int blur_r, rc;
	struct fimg f;

	if (fimg_from_image(&f, im) < 0) {
		snprintf(err, errlen, "out of memory");
		return FIRESYNC_ERROR;
	}
	shortside = w < h ? w : h;
	rc = dt_filter(&f, im, p.smoothing * (float)shortside, p.range, 3,
	    shortside / 400 + 1, s->host->cancelled);
	if (rc != 0) {
		fimg_free(&f);
		if (rc > 0)
			return FIRESYNC_CANCELLED;
		snprintf(err, errlen, "out of memory");
		return FIRESYNC_ERROR;
	}

	/* outlines from the smoothed luma, blurred a little so lines scale
	 * with the photo and do not trace noise */
	lum = luma_plane(&f);
	blur_r = shortside / 700 + 1;
	if (lum == NULL || box_blur_plane(lum, w, h, blur_r) < 0) {
		free(lum);
		fimg_free(&f);
		snprintf(err, errlen, "out of memory");
		return FIRESYNC_ERROR;
	}

	/* soft luma quantisation in YCbCr, through a table: the step
	 * function depends on luma alone (quarter-level resolution) */
	rgb_to_ycc(&f);
	step = 255.0f / (float)(p.levels - 1);
	phi = 3.0f / step;
	for (int k = 0; k < QLUT; k++) {
		float y = (float)k * 255.0f / (QLUT - 1), q = roundf(y / step) * step;

		qlut[k] = q + 0.5f * step * tanhf(phi * (y - q) * 0.5f);
	}
	for (size_t i = 0; i < n; i++) {
		float y = clampf(f.p[3 * i], 0, 255) * ((QLUT - 1) / 255.0f);
		int k = (int)y;
		float t = y - (float)k;

		if (k >= QLUT - 1) {
			k = QLUT - 2;
			t = 1;
		}
		f.p[3 * i] = qlut[k] + t * (qlut[k + 1] - qlut[k]);
	}
	ycc_to_rgb(&f);

	/* Sobel magnitude -> line alpha, composited towards a dark ink */
	for (int y = 0; y < h; y++) {
		const float *up = lum + (size_t)(y ? y - 1 : y) * w;
		const float *mid = lum + (size_t)y * w;
		const float *dn = lum + (size_t)(y + 1 < h ? y + 1 : y) * w;
		float *o = f.p + (size_t)y * w * 3;

		for (int x = 0; x < w; x++) {
			int l = x ? x - 1 : x, r = x + 1 < w ? x + 1 : x;
			float gx = (up[r] + 2 * mid[r] + dn[r]) -
			    (up[l] + 2 * mid[l] + dn[l]);
			float gy = (dn[l] + 2 * dn[x] + dn[r]) -
			    (up[l] + 2 * up[x] + up[r]);
			float mag = sqrtf(gx * gx + gy * gy) * 0.25f;
			float a = clampf((mag - p.edge_threshold) /
			    (p.edge_threshold * 0.75f), 0, 1) * p.line_strength;

			if (a > 0)
				for (int c = 0; c < 3; c++)
					o[3 * x + c] = o[3 * x + c] * (1 - a) +
					    20.0f * a;
		}
	}
	free(lum);
	rc = fimg_to_result(&f, im, s->host, res);
	fimg_free(&f);
	if (rc < 0) {
		snprintf(err, errlen, "out of memory");
		return FIRESYNC_ERROR;
	}
	return FIRESYNC_OK;
}

static void
cartoon_fini(void *state)
{
	struct cartoon *s = state;

	if (s)
		s->host->free(s);
}

static const char *const models[] = { "cartoon", NULL };

const struct firesync_plugin firesync_plugin = {
	.abi_major = FIRESYNC_PLUGIN_ABI_MAJOR,
	.abi_minor = FIRESYNC_PLUGIN_ABI_MINOR,
	.struct_size = sizeof(struct firesync_plugin),
	.name = "cartoon",
	.version = PACKAGE_VERSION,
	.vendor = "firesync",
	.license = "MIT",
	.models = models,
	.init = cartoon_init,
	.transform = cartoon_transform,
	.fini = cartoon_fini,
};
