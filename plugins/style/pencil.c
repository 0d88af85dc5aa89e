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
 *    and around each pixel (1.6 times the darkness nearby, which a noisy
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
#define WORK_SHORT	1024	/* the slowly varying maps' short side */

/* The plane p (w x h) resized to ww x wh and blurred by sigma; NULL when
 * out of memory. */
static float *
low_blur(const float *p, int w, int h, int ww, int wh, float sigma)
{
	float *l = malloc((size_t)ww * wh * sizeof(*l));

	if (l == NULL)
		return NULL;
	if (resample(p, w, h, 1, l, ww, wh) < 0 ||
	    gauss_plane(l, ww, wh, sigma) < 0) {
		free(l);
		return NULL;
	}
	return l;
}

/*
 * Only the luma and the lines are kept at full size; the slowly varying
 * maps (the dodge's blur, the tone, the darkness nearby, the paper) are
 * made at a working resolution (short side at most WORK_SHORT) and read
 * back a row at a time.  In place on lum: luma, then darkness, then the
 * drawing.
 */
int
pencil_draw(float *lum, int w, int h, int (*cancel)(void))
{
	int s = w < h ? w : h, ww, wh, sw;
	size_t n = (size_t)w * h;
	float *blur = NULL, *tone = NULL, *near = NULL, *grain = NULL;
	float *r1 = NULL, *r2 = NULL, t;
	struct upsampler up = { 0 };
	int rc = -1;

	work_size(w, h, WORK_SHORT, &ww, &wh);
	sw = ww < wh ? ww : wh;
	if (gauss_plane(lum, w, h, fmaxf(0.8f, (float)s / 1400.0f)) < 0 ||
	    upsampler_init(&up, ww, wh, w, h) < 0)
		goto out;
	blur = low_blur(lum, w, h, ww, wh, (float)sw / 120.0f + 1.0f);
	tone = low_blur(lum, w, h, ww, wh, (float)sw / 100.0f + 1.0f);
	grain = calloc((size_t)ww * wh, sizeof(*grain));
	r1 = malloc((size_t)w * sizeof(*r1));
	r2 = malloc((size_t)w * sizeof(*r2));
	if (blur == NULL || tone == NULL || grain == NULL || r1 == NULL ||
	    r2 == NULL || noise_add(grain, ww, wh, (float)sw / 500.0f + 1.0f,
	    1.0f, 5) < 0)
		goto out;
	if (cancel && cancel()) {
		rc = 1;
		goto out;
	}
	/* the dodge, as darkness 0 (paper) .. 255 */
	for (int y = 0; y < h; y++) {
		float *l = lum + (size_t)y * w;

		upsampler_row(&up, blur, y, r1);
		for (int x = 0; x < w; x++)
			l[x] = 255.0f - clampf(255.0f * (l[x] + DODGE_FLOOR) /
			    (r1[x] + DODGE_FLOOR), 0, 255);
	}
	/* what counts as a line: well above the drawing's noise, both over
	 * the whole picture (most of it is paper) and around each pixel
	 * (a noisy flat area darkens its own surroundings, a thin line
	 * hardly does) */
	t = 3.0f * median_abs(lum, n, 256.0f);	/* quarter levels */
	near = low_blur(lum, w, h, ww, wh, (float)sw / 80.0f + 1.0f);
	if (near == NULL)
		goto out;
	for (int y = 0; y < h; y++) {
		float *l = lum + (size_t)y * w;

		upsampler_row(&up, near, y, r1);
		for (int x = 0; x < w; x++) {
			float ti = fmaxf(t, 1.6f * r1[x]), d = l[x];

			/* a soft knee: darkness well above the noise is
			 * kept, what is near it fades, so light strokes
			 * (wrinkles, strands of hair) stay faint rather than
			 * vanish */
			d = d > 0 ? 1.3f * d * d / (d + ti + 1e-3f) : 0;
			l[x] = d > 3.0f ? fminf(d, 255.0f) : 0;
		}
	}
	if (drop_specks(lum, w, h, s * s / 15000 + 4) < 0)
		goto out;
	for (int y = 0; y < h; y++) {
		float *l = lum + (size_t)y * w;

		upsampler_row(&up, tone, y, r1);
		upsampler_row(&up, grain, y, r2);
		for (int x = 0; x < w; x++) {
			/* graphite shading in the dark parts, up to a mid
			 * grey, on paper with a grain */
			float shade = 1.0f - 0.35f * clampf((130.0f - r1[x]) /
			    130.0f, 0, 1);
			float v = 255.0f - l[x];

			v = 255.0f * powf(v / 255.0f, 1.6f) * shade;
			v *= 1.0f + 0.025f * r2[x];
			l[x] = clampf(v, 18, 250);
		}
	}
	rc = 0;
out:
	upsampler_free(&up);
	free(blur);
	free(tone);
	free(near);
	free(grain);
	free(r1);
	free(r2);
	return rc;
}
