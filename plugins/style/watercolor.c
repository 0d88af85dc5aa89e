/*
 * watercolor.c - the watercolour look, after Bousseau et al., "Interactive
 * watercolor rendering with temporal coherence and abstraction" (NPAR
 * 2006): the photo is abstracted into washes, and the washes are laid on
 * paper by modulating pigment density.
 *
 *  1. Abstraction: edge-preserving smoothing, then luma in a few soft
 *     steps, so detail gives way to flat washes of colour.
 *  2. Wobbling: the washes are sampled through a smooth random
 *     displacement, so their borders are hand-made, not traced.
 *  3. Bleeding: in random wet patches the washes run into each other
 *     (a wider blur), elsewhere their borders stay crisp.
 *  4. Density: the washes' colour C becomes C - (C - C^2)(d - 1), where
 *     the density d gathers the pigment's turbulence (large, faint
 *     blotches), granulation (fine grains settling where there is more
 *     pigment), darkened wet edges (pigment pulled to a wash's border as
 *     it dries) and the paper's texture.
 *  5. Paper: white shows through as warm paper, lit from the upper left
 *     so its grain reads even where there is no paint.
 *
 * Every length is a fraction of the short side.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "style.h"

#define WASH_LEVELS	5.0f	/* luma steps of the washes */

/* Wobble and bleed the washes (in wk) into out, same size; the ink
 * lines (a plane the same size) wobble alike, in place. */
static int
wobble_bleed(const struct fimg *wk, struct fimg *out, float *ink, int s)
{
	int w = wk->w, h = wk->h;
	size_t n = (size_t)w * h;
	float *dx = fbm_plane(w, h, (float)s / 14.0f, 3, 11);
	float *dy = fbm_plane(w, h, (float)s / 14.0f, 3, 23);
	float *wet = fbm_plane(w, h, (float)s / 6.0f, 2, 37);
	float amp = (float)s / 260.0f;
	float *ink0 = malloc(n * sizeof(*ink0));
	struct fimg blur;
	int rc = -1;

	if (dx == NULL || dy == NULL || wet == NULL || ink0 == NULL)
		goto out;
	memcpy(ink0, ink, n * sizeof(*ink0));
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			size_t i = (size_t)y * w + x;
			float sx = (float)x + amp * dx[i];
			float sy = (float)y + amp * dy[i];

			sample_bilinear(wk->p, w, h, 3, sx, sy, out->p + 3 * i);
			sample_bilinear(ink0, w, h, 1, sx, sy, ink + i);
		}
	if (fimg_resized(out, w, h, &blur) < 0)
		goto out;
	if (fimg_gauss(&blur, (float)s / 110.0f) < 0) {
		fimg_free(&blur);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		/* about a third of the picture is wet */
		float a = clampf((wet[i] - 0.25f) * 1.6f, 0, 0.85f);

		for (int c = 0; c < 3; c++)
			out->p[3 * i + c] += a * (blur.p[3 * i + c] -
			    out->p[3 * i + c]);
	}
	fimg_free(&blur);
	rc = 0;
out:
	free(dx);
	free(dy);
	free(wet);
	free(ink0);
	return rc;
}

/* Abstraction: smoothing and soft luma steps, in place on wk. */
static int
abstract(struct fimg *wk, int s, int (*cancel)(void))
{
	struct firesync_image guide;
	size_t n = (size_t)wk->w * wk->h;
	float step = 255.0f / WASH_LEVELS;
	int rc;

	if (image8_of(wk, &guide) < 0)
		return -1;
	rc = dt_filter(wk, &guide, 0.04f * (float)s, 0.25f, 3, s / 250 + 1,
	    cancel);
	free((void *)guide.pixels);
	if (rc == 0 && image8_of(wk, &guide) < 0)
		rc = -1;
	if (rc != 0)
		return rc;
	rgb_to_ycc(wk);
	/* a face in one or two clean washes, not mottled */
	rc = skin_smooth(wk, &guide, (float)s / 25.0f, cancel);
	free((void *)guide.pixels);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		float y = wk->p[3 * i], q = roundf(y / step) * step;

		/* pigment is lighter and purer than the photo's colour */
		y = q + 0.5f * step * tanhf((y - q) / step * 2.5f);
		wk->p[3 * i] = 255.0f * powf(clampf(y, 0, 255) / 255.0f, 0.8f);
		wk->p[3 * i + 1] *= 1.2f;
		wk->p[3 * i + 2] *= 1.2f;
	}
	ycc_to_rgb(wk);
	return 0;
}

/*
 * Lay the washes in wk on paper: pigment density and paper, in place.
 * Colour in 0..1 terms: C' = C - (C - C^2)(d - 1), Bousseau's model of
 * denser (d > 1) and thinner (d < 1) pigment.
 */
static int
lay_on_paper(struct fimg *wk, const float *ink, int s)
{
	int w = wk->w, h = wk->h;
	size_t n = (size_t)w * h;
	float *lum = luma_plane(wk);
	float *turb = fbm_plane(w, h, (float)s / 5.0f, 3, 51);
	float *grain = fbm_plane(w, h, (float)s / 260.0f, 2, 67);
	float *paper = fbm_plane(w, h, (float)s / 120.0f, 3, 79);
	float *edge = NULL;
	/* the paper's relief per pixel, in units of the picture, so its
	 * light and shade are the same at any size */
	float relief = 0.12f * (float)s / 1024.0f;
	int rc = -1;

	if (lum == NULL || turb == NULL || grain == NULL || paper == NULL)
		goto out;
	/* wet edges: where the washes' luma changes, on a slightly blurred
	 * copy, so the rim is a band a few pixels wide */
	edge = malloc(n * sizeof(*edge));
	if (edge == NULL)
		goto out;
	memcpy(edge, lum, n * sizeof(*edge));
	if (gauss_plane(edge, w, h, (float)s / 500.0f + 0.5f) < 0)
		goto out;
	for (int y = h - 1; y >= 0; y--)
		for (int x = w - 1; x >= 0; x--) {
			size_t i = (size_t)y * w + x;
			float gx = edge[i] - edge[x ? i - 1 : i];
			float gy = edge[i] - edge[y ? i - w : i];

			/* in place: only left and upper neighbours are read,
			 * and they are still unwritten going backwards */
			edge[i] = sqrtf(gx * gx + gy * gy);
		}
	/* the pooled pigment spreads a little into the wash */
	if (gauss_plane(edge, w, h, (float)s / 600.0f + 0.5f) < 0)
		goto out;
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			size_t i = (size_t)y * w + x;
			float *p = wk->p + 3 * i;
			float pigment = 1.0f - lum[i] / 255.0f;
			float e = clampf((edge[i] * (float)s / 1024.0f - 1.0f) / 3.0f,
			    0, 1);
			float d = 1.0f + 0.14f * turb[i] +
			    (0.03f + 0.2f * pigment) * grain[i] +
			    0.9f * e + 0.05f * paper[i];
			/* paper lit from the upper left */
			size_t l = x ? i - 1 : i, u = y ? i - w : i;
			float light = 1.0f + relief * (2.0f * paper[i] -
			    paper[l] - paper[u]);

			for (int c = 0; c < 3; c++) {
				float v = clampf(p[c] / 255.0f, 0, 1);
				static const float tint[3] = { 0.992f, 0.976f,
				    0.94f };

				v = v - (v - v * v) * (d - 1.0f);
				/* transparent pigment: never quite as dark as
				 * the photo, and the paper's tint through it */
				v = 1.0f - (1.0f - clampf(v, 0, 1)) * 0.78f;
				/* the drawing under the washes, in a dark
				 * pigment of the wash's own hue */
				v *= 1.0f - 0.5f * ink[i];
				p[c] = 255.0f * v * tint[c] * light;
			}
		}
	rc = 0;
out:
	free(lum);
	free(turb);
	free(grain);
	free(paper);
	free(edge);
	return rc;
}

int
watercolor_paint(struct fimg *wk, int (*cancel)(void))
{
	struct fimg wash;
	int ww = wk->w, wh = wk->h, s = ww < wh ? ww : wh, rc;
	float *ink;

	/* the drawing: the photo's own lines, before abstraction */
	ink = luma_plane(wk);
	if (ink == NULL || dog_plane(ink, ww, wh, (float)s / 600.0f) < 0 ||
	    dog_lines(ink, ww, wh, 3.0f, 0.8f, s * s / 6000 + 6) < 0) {
		free(ink);
		return -1;
	}
	rc = abstract(wk, s, cancel);
	if (rc == 0 && fimg_alloc(&wash, ww, wh) < 0)
		rc = -1;
	if (rc != 0) {
		free(ink);
		return rc;
	}
	rc = wobble_bleed(wk, &wash, ink, s);
	if (rc == 0 && cancel && cancel())
		rc = 1;
	if (rc == 0)
		rc = lay_on_paper(&wash, ink, s);
	if (rc == 0)
		memcpy(wk->p, wash.p, (size_t)ww * wh * 3 * sizeof(float));
	free(ink);
	fimg_free(&wash);
	return rc;
}
