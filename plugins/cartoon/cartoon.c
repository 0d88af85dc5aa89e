/*
 * cartoon.c - the "cartoon" model: flat colours and dark outlines.
 *
 *  1. Edge-preserving smoothing: the domain transform recursive filter,
 *     which flattens skin and backgrounds but keeps edges sharp, in time
 *     linear in the pixels whatever the radius.
 *  2. Colour quantisation into flat regions: luma is quantised softly
 *     (a tanh step between levels, after Winnemoeller et al. 2006) in
 *     YCbCr, so hues survive and region borders do not alias.
 *  3. Outlines: a difference of Gaussians of the photo's own luma (taken
 *     before the smoothing, which would flatten lips and eyes), at a
 *     sigma proportional to the image's short side, so lines are as thick
 *     relative to a face at 0.5 MP as at 12 MP.  Lines start above the
 *     photo's noise (a multiple of the DoG's median absolute value), and
 *     8-connected specks smaller than a size that follows the image's are
 *     dropped: grain draws nothing, while outlines, eyes and the line of a
 *     smile are long enough to stay.
 *
 * Parameters ([plugin.cartoon] in firesyncd.conf; the prompt words "bold"
 * and "soft" adjust them):
 *   levels          luma levels of the flat regions (default 8, 2..32)
 *   smoothing       spatial sigma as a fraction of the image's short side
 *                   (default 0.02)
 *   range           range sigma, 0..1 (default 0.25)
 *   edge-threshold  line sensitivity: higher draws fewer lines, 1..255
 *                   (default 18)
 *   line-strength   darkness of lines, 0..1 (default 0.85)
 */
#include <ctype.h>
#include <stdbool.h>
#include <strings.h>
#include <math.h>
#include <stdint.h>
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

#define WORK_SHORT 960	/* the flat colours' working short side */
#define XDOG_T	0.12f	/* edge-threshold units per luma level of DoG */

/*
 * The flat colours, painted at the working resolution (short side at most
 * WORK_SHORT) into wk (allocated here): flat regions lose nothing by it,
 * and the smoothing and the tones are the same at 0.5 MP as at 12 MP.
 * Returns 0, 1 if cancelled, -1 when out of memory.
 */
static int
flatten(const struct firesync_image *im, struct fimg *wk,
    const struct params *p, int (*cancel)(void))
{
	struct firesync_image guide;
	int ww, wh, shortside, rc;
	float step, phi, qlut[QLUT];
	size_t n;

	work_size((int)im->width, (int)im->height, WORK_SHORT, &ww, &wh);
	if (fimg_from_image_scaled(wk, im, ww, wh) < 0)
		return -1;
	if (image8_of(wk, &guide) < 0) {
		fimg_free(wk);
		return -1;
	}
	shortside = ww < wh ? ww : wh;
	rc = dt_filter(wk, &guide, p->smoothing * (float)shortside, p->range,
	    3, shortside / 400 + 1, cancel);
	free((void *)guide.pixels);
	if (rc == 0 && image8_of(wk, &guide) < 0)
		rc = -1;
	if (rc != 0) {
		fimg_free(wk);
		return rc;
	}
	rgb_to_ycc(wk);
	rc = skin_smooth(wk, &guide, (float)shortside / 25.0f, cancel);
	free((void *)guide.pixels);
	if (rc != 0) {
		fimg_free(wk);
		return rc;
	}
	/* soft luma quantisation, through a table: the step function
	 * depends on luma alone (quarter-level resolution) */
	step = 255.0f / (float)(p->levels - 1);
	phi = 3.0f / step;
	for (int k = 0; k < QLUT; k++) {
		float y = (float)k * 255.0f / (QLUT - 1), q = roundf(y / step) * step;

		qlut[k] = q + 0.5f * step * tanhf(phi * (y - q) * 0.5f);
	}
	n = (size_t)ww * wh;
	for (size_t i = 0; i < n; i++) {
		float y = clampf(wk->p[3 * i], 0, 255) * ((QLUT - 1) / 255.0f);
		int k = (int)y;
		float t = y - (float)k;

		if (k >= QLUT - 1) {
			k = QLUT - 2;
			t = 1;
		}
		wk->p[3 * i] = qlut[k] + t * (qlut[k + 1] - qlut[k]);
	}
	ycc_to_rgb(wk);
	return 0;
}

static int
cartoon_transform(void *state, const struct firesync_request *req,
    struct firesync_result *res, char *err, size_t errlen)
{
	struct cartoon *s = state;
	struct params p = from_prompt(s->base, req->prompt);
	const struct firesync_image *im = &req->image;
	int w = (int)im->width, h = (int)im->height, shortside = w < h ? w : h;
	float *ink;
	int rc;
	struct fimg wk;

	/* the outlines come from the photo's own luma at full size, before
	 * smoothing flattens the features that matter (eyes, the smile);
	 * DoG lines, specks dropped (a speck is smaller than a line a sixth
	 * of the image across would be, so the size follows the image's) */
	ink = luma_image(im);
	if (ink == NULL || dog_plane(ink, w, h, (float)shortside / 600.0f) < 0 ||
	    dog_lines(ink, w, h, p.edge_threshold * XDOG_T, p.line_strength,
	    (int)(12.0f * (float)shortside * (float)shortside /
	    (512.0f * 512.0f)) + 6) < 0) {
		free(ink);
		snprintf(err, errlen, "out of memory");
		return FIRESYNC_ERROR;
	}
	rc = flatten(im, &wk, &p, s->host->cancelled);
	if (rc != 0) {
		free(ink);
		if (rc > 0)
			return FIRESYNC_CANCELLED;
		snprintf(err, errlen, "out of memory");
		return FIRESYNC_ERROR;
	}
	/* the flat colours brought to the photo's size, the lines inked
	 * over them on the way */
	rc = fimg_to_result_scaled(&wk, ink, im, s->host, res);
	free(ink);
	fimg_free(&wk);
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
