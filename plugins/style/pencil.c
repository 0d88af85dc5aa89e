/*
 * pencil.c - the pencil-sketch look: graphite lines from a colour dodge
 * of the luma over its blurred negative, on clean paper.
 *
 * A plain dodge divides by the blurred luma, so in dark, flat areas (a
 * navy jacket, a shadowed wall) it turns the photo's grain into a storm
 * of specks.  Here:
 *  - the luma is first smoothed a little, in proportion to the picture,
 *    so sensor noise and JPEG blocks are gone before anything divides;
 *  - the dodge has a floor (DODGE_FLOOR added above and below), so dark
 *    areas are not amplified more than light ones;
 *  - lines start above the drawing's own noise, both over the picture
 *    (three times the median darkness, most of a drawing being paper)
 *    and around each pixel (1.5 times the darkness nearby, which a noisy
 *    flat area raises and a thin line hardly does), and specks are dropped, so
 *    flat areas stay paper;
 *  - dark areas get a soft graphite tone, as a shaded drawing has, rather
 *    than specks;
 *  - the paper's grain is a smooth texture sized to the picture.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "style.h"

#define DODGE_FLOOR	24.0f

/* The median of a plane of values in 0..255 (quarter-level bins). */
static float
median255(const float *p, size_t n)
{
	static const int bins = 1024;
	uint32_t *hist = calloc(bins, sizeof(*hist));
	size_t seen = 0;
	int b = 0;

	if (hist == NULL)
		return 0;
	for (size_t i = 0; i < n; i++) {
		int k = (int)(clampf(p[i], 0, 255) * 4.0f);

		hist[k < bins ? k : bins - 1]++;
	}
	while (b < bins - 1 && (seen += hist[b]) < n / 2)
		b++;
	free(hist);
	return ((float)b + 0.5f) / 4.0f;
}

int
pencil_draw(float *lum, int w, int h, int (*cancel)(void))
{
	int s = w < h ? w : h;
	size_t n = (size_t)w * h;
	float *blur = NULL, *tone = NULL, *grain = NULL;
	float t;
	int rc = -1;

	if (gauss_plane(lum, w, h, fmaxf(0.8f, (float)s / 1400.0f)) < 0)
		goto out;
	blur = malloc(n * sizeof(*blur));
	tone = malloc(n * sizeof(*tone));
	grain = malloc(n * sizeof(*grain));
	if (blur == NULL || tone == NULL || grain == NULL)
		goto out;
	memcpy(blur, lum, n * sizeof(*blur));
	memcpy(tone, lum, n * sizeof(*tone));
	if (gauss_plane(blur, w, h, (float)s / 120.0f + 1.0f) < 0 ||
	    gauss_plane(tone, w, h, (float)s / 100.0f + 1.0f) < 0)
		goto out;
	if (cancel && cancel()) {
		rc = 1;
		goto out;
	}
	/* the dodge, as darkness 0 (paper) .. 255 */
	for (size_t i = 0; i < n; i++)
		blur[i] = 255.0f - clampf(255.0f * (lum[i] + DODGE_FLOOR) /
		    (blur[i] + DODGE_FLOOR), 0, 255);
	/* what counts as a line: well above the drawing's noise, both over
	 * the whole picture (most of it is paper) and around each pixel
	 * (a noisy flat area darkens its own surroundings, a line does
	 * not); grain is the background's own darkness */
	t = 3.0f * median255(blur, n);
	memcpy(grain, blur, n * sizeof(*grain));
	if (gauss_plane(grain, w, h, (float)s / 80.0f + 1.0f) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		float ti = fmaxf(t, 1.2f * grain[i]), d = blur[i];

		/* a soft knee: darkness well above the noise is kept, what
		 * is near it fades, so light strokes (wrinkles, strands of
		 * hair) stay faint rather than vanish */
		d = d > 0 ? 1.3f * d * d / (d + ti + 1e-3f) : 0;
		blur[i] = d > 3.0f ? fminf(d, 255.0f) : 0;
	}
	if (drop_specks(blur, w, h, s * s / 30000 + 4) < 0)
		goto out;
	memset(grain, 0, n * sizeof(*grain));
	if (noise_add(grain, w, h, (float)s / 500.0f + 1.0f, 1.0f, 5) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		/* graphite shading in the dark parts, up to a mid grey */
		float shade = 1.0f - 0.35f * clampf((130.0f - tone[i]) / 130.0f,
		    0, 1);
		float v = 255.0f - blur[i];

		v = 255.0f * powf(v / 255.0f, 1.6f) * shade;
		v *= 1.0f + 0.025f * grain[i];
		lum[i] = clampf(v, 18, 250);
	}
	rc = 0;
out:
	free(blur);
	free(tone);
	free(grain);
	return rc;
}
