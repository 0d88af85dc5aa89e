/*
 * imgops.h - image operations shared by the bundled plugins (cartoon,
 * style).  Compiled into each plugin; plugins never link daemon code.
 *
 * Working images are interleaved float RGB, 0..255 per channel.  Every
 * function checks its sizes; allocation failures return -1 (the worker's
 * memory is limited, so a plugin must be ready for NULL).
 */
#ifndef FIRESYNC_IMGOPS_H
#define FIRESYNC_IMGOPS_H

#include <stddef.h>
#include <stdint.h>

#include "firesync/plugin.h"

struct fimg {
	int w, h;	/* pixels */
	float *p;	/* w * h * 3 floats, R,G,B */
};

/* Allocate an image (contents undefined); 0 or -1. */
int fimg_alloc(struct fimg *f, int w, int h);
void fimg_free(struct fimg *f);
/* RGB(A) 8-bit -> float RGB (alpha ignored). */
int fimg_from_image(struct fimg *f, const struct firesync_image *im);
/*
 * Float RGB -> 8-bit into a freshly host-allocated result with the input's
 * channel count (alpha copied from src when it has one).  0 or -1.
 */
int fimg_to_result(const struct fimg *f, const struct firesync_image *src,
    const struct firesync_host *host, struct firesync_result *res);

/*
 * Edge-preserving smoothing: the domain transform recursive filter
 * (Gastal & Oliveira 2011) guided by the 8-bit image g (same size).
 * sigma_s in pixels, sigma_r in 0..1 units of intensity, iterations >= 1.
 * The edges are measured on g box-blurred by guide_r pixels (0: as is),
 * so fine texture and sensor noise do not count as edges.  cancel (may be
 * NULL) is polled between passes; returns 1 if it fired, -1 on failure.
 */
int dt_filter(struct fimg *f, const struct firesync_image *g, float sigma_s,
    float sigma_r, int iterations, int guide_r, int (*cancel)(void));

/* In-place separable box blur of a single float plane, radius r >= 0. */
int box_blur_plane(float *p, int w, int h, int r);

/* Luma (Rec. 601) plane of f, newly malloc'd; NULL on failure. */
float *luma_plane(const struct fimg *f);

/* RGB <-> YCbCr (full range, Rec. 601), in place on f. */
void rgb_to_ycc(struct fimg *f);
void ycc_to_rgb(struct fimg *f);

/* CIE L*a*b* (D65) of one sRGB pixel, and back (clamped). */
void srgb_to_lab(const float rgb[3], float lab[3]);
void lab_to_srgb(const float lab[3], float rgb[3]);

/*
 * A 3D colour lookup table (n^3 entries, n >= 2) mapping RGB to RGB,
 * applied with trilinear interpolation.
 */
struct lut3d {
	int n;
	float *v;	/* n*n*n*3 */
};
int lut3d_alloc(struct lut3d *l, int n);
void lut3d_free(struct lut3d *l);
void lut3d_apply(const struct lut3d *l, struct fimg *f);

/* Mean and standard deviation of L*, a*, b* over an 8-bit image,
 * sampled on a grid of about max_samples pixels. */
void lab_stats(const struct firesync_image *im, int max_samples,
    float mean[3], float std[3]);

/*
 * Kuwahara filter of radius r (>= 1): each pixel takes the mean colour of
 * the least-varying of its four (r+1)x(r+1) quadrants, variance measured
 * on luma.  Summed-area tables make it O(1) per pixel.  0 or -1.
 */
int kuwahara(struct fimg *f, int r);

/* A deterministic hash noise in [-1, 1] for paper texture. */
float noise2(int x, int y);

static inline float
clampf(float v, float lo, float hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

#endif
