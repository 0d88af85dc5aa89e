/*
 * style.h - the looks of the "style" model, one file each.  Each paints
 * the float RGB image f in place, with every length a fraction of the
 * short side, so the look is the same whatever the photo's size.  Oil
 * and watercolour are given the photo at a working resolution (short
 * side at most *_WORK_SHORT) and brought back to the photo's size by the
 * caller; pencil draws on the luma at full size, its lines being what it
 * is.  cancel
 * (may be NULL) is polled between stages.  Each returns 0, 1 if
 * cancelled, or -1 when out of memory.
 */
#ifndef FIRESYNC_STYLE_H
#define FIRESYNC_STYLE_H

#include "imgops.h"

/* Oil: curved brush strokes coarse to fine; brush is the finest
 * stroke's radius as a fraction of the short side. */
#define OIL_WORK_SHORT		800
int oil_paint(struct fimg *f, float brush, int (*cancel)(void));

/* Watercolour: washes on paper, with wobbled and bled borders, darkened
 * wet edges, pigment granulation and paper texture. */
#define WATERCOLOR_WORK_SHORT	800
int watercolor_paint(struct fimg *f, int (*cancel)(void));

/* Pencil: graphite lines from a colour dodge, on clean paper; draws on
 * the photo's luma plane (w x h), in place. */
int pencil_draw(float *lum, int w, int h, int (*cancel)(void));

/*
 * Bilinear sample of a ch-channel plane at (x, y), clamped to the edges;
 * out gets ch values.
 */
static inline void
sample_bilinear(const float *p, int w, int h, int ch, float x, float y,
    float *out)
{
	int x0, y0, x1, y1;
	float fx, fy;

	x = clampf(x, 0, (float)(w - 1));
	y = clampf(y, 0, (float)(h - 1));
	x0 = (int)x;
	y0 = (int)y;
	x1 = x0 + 1 < w ? x0 + 1 : x0;
	y1 = y0 + 1 < h ? y0 + 1 : y0;
	fx = x - (float)x0;
	fy = y - (float)y0;
	for (int c = 0; c < ch; c++) {
		float a = p[((size_t)y0 * w + x0) * ch + c];
		float b = p[((size_t)y0 * w + x1) * ch + c];
		float d = p[((size_t)y1 * w + x0) * ch + c];
		float e = p[((size_t)y1 * w + x1) * ch + c];
		float top = a + fx * (b - a), bot = d + fx * (e - d);

		out[c] = top + fy * (bot - top);
	}
}

#endif
