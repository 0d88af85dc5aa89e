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

#define XDOG_K	1.6f	/* the wide Gaussian's sigma, relative */
#define XDOG_T	0.12f	/* edge-threshold units per luma level of DoG */

/* A true separable Gaussian, for the small sigmas where box passes are
 * too coarse to tell two sigmas apart. */
static int
gauss_exact(float *p, int w, int h, float sigma)
{
	int r = (int)ceilf(3.0f * sigma), len = w > h ? w : h;
	float k[64], sum = 0, *line = malloc((size_t)(len + 2 * r) *
	    sizeof(*line));

	if (line == NULL || r > 31) {
		free(line);
		return -1;
	}
	for (int i = -r; i <= r; i++)
		sum += k[i + r] = expf(-(float)(i * i) / (2 * sigma * sigma));
	for (int i = 0; i <= 2 * r; i++)
		k[i] /= sum;
	for (int pass = 0; pass < 2; pass++) {
		int outer = pass ? w : h, inner = pass ? h : w;
		size_t step = pass ? (size_t)w : 1, stride = pass ? 1 : (size_t)w;

		for (int o = 0; o < outer; o++) {
			float *row = p + (size_t)o * stride;

			for (int i = -r; i < inner + r; i++) {
				int c = i < 0 ? 0 : i >= inner ? inner - 1 : i;

				line[i + r] = row[(size_t)c * step];
			}
			for (int i = 0; i < inner; i++) {
				float a = 0;

				for (int t = 0; t <= 2 * r; t++)
					a += k[t] * line[i + t];
				row[(size_t)i * step] = a;
			}
		}
	}
	free(line);
	return 0;
}

/* Blur a plane like a Gaussian of sigma: exactly while sigma is small,
 * by three box passes (time independent of sigma) once it is not. */
static int
gauss3(float *p, int w, int h, float sigma)
{
	int r = (int)floorf((sqrtf(4.0f * sigma * sigma + 1.0f) - 1.0f) *
	    0.5f + 0.5f);

	if (sigma < 2.5f)
		return gauss_exact(p, w, h, sigma);
	for (int k = 0; k < 3; k++)
		if (box_blur_plane(p, w, h, r) < 0)
			return -1;
	return 0;
}

/*
 * Difference of Gaussians of luma, in place: G(sigma) - G(k sigma), at a
 * sigma that follows the image's size, so a line is as thick relative to
 * the face at 0.5 MP as at 12 MP.  Negative on the dark side of an edge
 * and along thin dark features (eyes, lips, the line of a smile).
 */
static int
xdog(float *lum, int w, int h, float sigma)
{
	size_t n = (size_t)w * h;
	float *wide = malloc(n * sizeof(*wide));

	if (wide == NULL)
		return -1;
	if (sigma < 0.7f)
		sigma = 0.7f;
	memcpy(wide, lum, n * sizeof(*wide));
	if (gauss3(lum, w, h, sigma) < 0 ||
	    gauss3(wide, w, h, sigma * XDOG_K) < 0) {
		free(wide);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		lum[i] -= wide[i];
	free(wide);
	return 0;
}

/* Union-find over pixel indices, with path halving. */
static uint32_t
uf_find(uint32_t *parent, uint32_t i)
{
	while (parent[i] != i) {
		parent[i] = parent[parent[i]];
		i = parent[i];
	}
	return i;
}

/*
 * Line alpha from the DoG: dark where it is negative enough; then every
 * 8-connected piece of line smaller than min_area pixels is dropped.
 * What noise, skin pores and grain leave are specks; outlines, eyes and
 * the line of a smile are long.  Returns the alpha plane (malloc'd) in
 * place of dog, or NULL when out of memory.
 */
static float *
line_alpha(float *dog, int w, int h, const struct params *p, int min_area)
{
	size_t n = (size_t)w * h;
	uint32_t *parent = malloc(n * sizeof(*parent)), *area, hist[1024];
	float ramp = p->edge_threshold * XDOG_T, t = ramp, noise;
	size_t seen = 0, bin = 0;

	if (parent == NULL)
		return NULL;
	/* the noise of the photo, as the median absolute DoG (most pixels
	 * are not on an edge): lines start well above it, so grain and
	 * sensor noise draw nothing */
	memset(hist, 0, sizeof(hist));
	for (size_t i = 0; i < n; i++) {
		int b = (int)(fabsf(dog[i]) * 16.0f);

		hist[b < 1023 ? b : 1023]++;
	}
	while (bin < 1023 && (seen += hist[bin]) < n / 2)
		bin++;
	noise = 1.4826f * ((float)bin + 0.5f) / 16.0f;
	if (t < 3.0f * noise)
		t = 3.0f * noise;
	for (size_t i = 0; i < n; i++) {
		float a = clampf((-dog[i] - t) / ramp, 0, 1) *
		    p->line_strength;

		dog[i] = a;
		parent[i] = (uint32_t)i;
	}
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			size_t i = (size_t)y * w + x;
			static const int dx[4] = { -1, -1, 0, 1 };

			if (dog[i] <= 0)
				continue;
			for (int k = 0; k < 4; k++) {
				int nx = x + dx[k], ny = k == 0 ? y : y - 1;
				size_t j;
				uint32_t a, b;

				if (nx < 0 || nx >= w || ny < 0)
					continue;
				j = (size_t)ny * w + nx;
				if (dog[j] <= 0)
					continue;
				a = uf_find(parent, (uint32_t)i);
				b = uf_find(parent, (uint32_t)j);
				if (a != b)
					parent[a < b ? b : a] = a < b ? a : b;
			}
		}
	/* sizes at the roots, reusing nothing: a second array */
	area = calloc(n, sizeof(*area));
	if (area == NULL) {
		free(parent);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		if (dog[i] > 0)
			area[uf_find(parent, (uint32_t)i)]++;
	for (size_t i = 0; i < n; i++)
		if (dog[i] > 0 && area[uf_find(parent, (uint32_t)i)] <
		    (uint32_t)min_area)
			dog[i] = 0;
	free(area);
	free(parent);
	return dog;
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
	float *raw = NULL, step, phi, qlut[QLUT];
	int rc;
	struct fimg f;

	if (fimg_from_image(&f, im) < 0) {
		snprintf(err, errlen, "out of memory");
		return FIRESYNC_ERROR;
	}
	shortside = w < h ? w : h;
	/* the outlines come from the photo's own luma, before smoothing
	 * flattens the features that matter (eyes, the smile) */
	raw = luma_plane(&f);
	if (raw == NULL || xdog(raw, w, h, (float)shortside / 600.0f) < 0) {
		free(raw);
		fimg_free(&f);
		snprintf(err, errlen, "out of memory");
		return FIRESYNC_ERROR;
	}
	rc = dt_filter(&f, im, p.smoothing * (float)shortside, p.range, 3,
	    shortside / 400 + 1, s->host->cancelled);
	if (rc != 0) {
		fimg_free(&f);
		if (rc > 0)
			return FIRESYNC_CANCELLED;
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

	/* DoG lines, specks dropped, composited towards a dark ink; a
	 * speck is smaller than a line a sixth of the image across would
	 * be, so the size follows the image's */
	if (line_alpha(raw, w, h, &p, (int)(12.0f * (float)shortside *
	    (float)shortside / (512.0f * 512.0f)) + 6) == NULL) {
		free(raw);
		fimg_free(&f);
		snprintf(err, errlen, "out of memory");
		return FIRESYNC_ERROR;
	}
	for (size_t i = 0; i < n; i++) {
		float a = raw[i];

		if (a > 0)
			for (int c = 0; c < 3; c++)
				f.p[3 * i + c] = f.p[3 * i + c] * (1 - a) +
				    20.0f * a;
	}
	free(raw);
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
