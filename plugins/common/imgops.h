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
/* The same from a grey plane (src's size): R = G = B. */
int grey_to_result(const float *lum, const struct firesync_image *src,
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

/* Luma (Rec. 601) plane of an 8-bit image, newly malloc'd; NULL on
 * failure. */
float *luma_image(const struct firesync_image *im);

/* The median of |p| over n values, taken in MEDIAN_BINS bins over
 * [0, top) (values beyond count as the top bin). */
#define MEDIAN_BINS	1024
float median_abs(const float *p, size_t n, float top);

/* RGB <-> YCbCr (full range, Rec. 601), in place on f; ycc_of for one
 * pixel (chroma centred on 0). */
static inline void
ycc_of(const float rgb[3], float ycc[3])
{
	ycc[0] = 0.299f * rgb[0] + 0.587f * rgb[1] + 0.114f * rgb[2];
	ycc[1] = -0.168736f * rgb[0] - 0.331264f * rgb[1] + 0.5f * rgb[2];
	ycc[2] = 0.5f * rgb[0] - 0.418688f * rgb[1] - 0.081312f * rgb[2];
}
void rgb_to_ycc(struct fimg *f);
void ycc_to_rgb(struct fimg *f);

/* How much a YCbCr pixel (chroma centred on 0, as rgb_to_ycc leaves it)
 * looks like skin, 0..1: Cb 77..127, Cr 133..173 with soft sides, over
 * a wide range of luma, so every complexion and most lighting count. */
float skin_weight_ycc(const float *ycc);
/*
 * Skin smoothed at scale sigma among skin alone (a normalised convolution
 * through dt_filter guided by the 8-bit g), so a face's shading crosses
 * tone steps in long smooth curves.  f is YCbCr.  0, 1 if cancelled, -1.
 */
int skin_smooth(struct fimg *f, const struct firesync_image *g, float sigma,
    int (*cancel)(void));

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

/* ---- resample.c: sizes, blur at any scale, noise ---- */

/*
 * Resize ch-channel interleaved floats (ch 1..4) from w0 x h0 to w x h:
 * area averaging along an axis that shrinks, linear interpolation along
 * one that grows.  dst must not overlap src.  0 or -1.
 */
int resample(const float *src, int w0, int h0, int ch, float *dst, int w,
    int h);
/* The photo (8-bit, 3 or 4 channels) resized straight to a w x h float
 * image (allocated here), a row at a time.  0 or -1. */
int fimg_from_image_scaled(struct fimg *f, const struct firesync_image *im,
    int w, int h);
/*
 * f resized to src's size straight into a host-allocated result with
 * src's channel count (alpha from src), a row at a time.  ink (may be
 * NULL) is an alpha plane of src's size: each pixel is taken that far
 * toward INK_LEVEL on the way.  0 or -1.
 */
#define INK_LEVEL	20.0f
int fimg_to_result_scaled(const struct fimg *f, const float *ink,
    const struct firesync_image *src, const struct firesync_host *host,
    struct firesync_result *res);
/* dst (allocated here; free with fimg_free) = src resized to w x h. */
int fimg_resized(const struct fimg *src, int w, int h, struct fimg *dst);
/* The size to paint a w x h photo at: as is while its short side is at
 * most max_short, else scaled down to that short side. */
void work_size(int w, int h, int max_short, int *ww, int *wh);

/*
 * Rows of a smooth low-resolution plane (lw x lh) at full size (w x h),
 * linearly interpolated, one row at a time: for maps that vary slowly
 * (a tone, a local mean, a blur) nothing of the photo's size is needed.
 */
struct upsampler {
	int lw, lh, w, h;
	int *x0;
	float *fx, *tmp;
};
int upsampler_init(struct upsampler *u, int lw, int lh, int w, int h);
/* Row y of the full-size plane into row (w floats). */
void upsampler_row(struct upsampler *u, const float *low, int y, float *row);
void upsampler_free(struct upsampler *u);

/* Gaussian blur of a plane in place: exact below sigma 2.5, three box
 * passes (time independent of sigma) above.  0 or -1. */
int gauss_plane(float *p, int w, int h, float sigma);
/* The same on each channel of f. */
int fimg_gauss(struct fimg *f, float sigma);

/*
 * Smooth value noise: noise_add adds amp * noise in [-amp, amp] with
 * features about cell pixels across to a plane; fbm_plane returns a new
 * plane (malloc'd) of `octaves` octaves from cell down, each half the
 * size and amplitude of the last (range about [-2, 2]), none finer than
 * two pixels.  Deterministic for a seed.
 */
int noise_add(float *p, int w, int h, float cell, float amp, uint32_t seed);
float *fbm_plane(int w, int h, float cell, int octaves, uint32_t seed);

/* An 8-bit RGB image of f, for a guide; free((void *)im->pixels). */
int image8_of(const struct fimg *f, struct firesync_image *im);

/* ---- lines.c: ink lines ---- */

/*
 * Difference of Gaussians of a luma plane, in place: G(sigma) -
 * G(1.6 sigma), negative on the dark side of an edge and along thin dark
 * features (eyes, lips, the line of a smile).  0 or -1.
 */
int dog_plane(float *lum, int w, int h, float sigma);
/*
 * The DoG plane, in place, becomes line alpha 0..strength: a line starts
 * where the DoG is below -max(ramp, 3 x the photo's noise) and is full
 * ramp further down; 8-connected pieces of line smaller than min_area
 * pixels are dropped (grain and pores leave specks; outlines are long).
 * 0 or -1.
 */
int dog_lines(float *dog, int w, int h, float ramp, float strength,
    int min_area);
/* Zero every 8-connected piece of alpha > 0 smaller than min_area
 * pixels, in place.  0 or -1. */
int drop_specks(float *alpha, int w, int h, int min_area);

static inline float
clampf(float v, float lo, float hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

#endif
