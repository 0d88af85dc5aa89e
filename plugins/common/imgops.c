/*
 * imgops.c - the bundled plugins' image operations.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "imgops.h"

int
fimg_alloc(struct fimg *f, int w, int h)
{
	f->w = w;
	f->h = h;
	f->p = NULL;
	if (w <= 0 || h <= 0 || (size_t)w * (size_t)h > ((size_t)1 << 31))
		return -1;
	f->p = malloc((size_t)w * h * 3 * sizeof(float));
	return f->p ? 0 : -1;
}

void
fimg_free(struct fimg *f)
{
	free(f->p);
	f->p = NULL;
}

int
fimg_from_image(struct fimg *f, const struct firesync_image *im)
{
	if (im->channels < 3 || im->stride < im->width * im->channels ||
	    fimg_alloc(f, (int)im->width, (int)im->height) < 0)
		return -1;
	for (int y = 0; y < f->h; y++) {
		const uint8_t *s = im->pixels + (size_t)y * im->stride;
		float *d = f->p + (size_t)y * f->w * 3;

		for (int x = 0; x < f->w; x++, s += im->channels, d += 3) {
			d[0] = s[0];
			d[1] = s[1];
			d[2] = s[2];
		}
	}
	return 0;
}

int
fimg_to_result(const struct fimg *f, const struct firesync_image *src,
    const struct firesync_host *host, struct firesync_result *res)
{
	uint32_t c = src->channels == 4 ? 4 : 3;

	res->width = (uint32_t)f->w;
	res->height = (uint32_t)f->h;
	res->channels = c;
	res->stride = (uint32_t)f->w * c;
	res->pixels = host->alloc((size_t)res->stride * f->h);
	if (res->pixels == NULL)
		return -1;
	for (int y = 0; y < f->h; y++) {
		const float *s = f->p + (size_t)y * f->w * 3;
		uint8_t *d = res->pixels + (size_t)y * res->stride;
		const uint8_t *a = src->pixels + (size_t)y * src->stride;

		for (int x = 0; x < f->w; x++, s += 3, d += c) {
			d[0] = (uint8_t)(clampf(s[0], 0, 255) + 0.5f);
			d[1] = (uint8_t)(clampf(s[1], 0, 255) + 0.5f);
			d[2] = (uint8_t)(clampf(s[2], 0, 255) + 0.5f);
			if (c == 4)
				d[3] = a[(size_t)x * 4 + 3];
		}
	}
	return 0;
}

int
grey_to_result(const float *lum, const struct firesync_image *src,
    const struct firesync_host *host, struct firesync_result *res)
{
	uint32_t c = src->channels == 4 ? 4 : 3;

	res->width = src->width;
	res->height = src->height;
	res->channels = c;
	res->stride = src->width * c;
	res->pixels = host->alloc((size_t)res->stride * src->height);
	if (res->pixels == NULL)
		return -1;
	for (uint32_t y = 0; y < src->height; y++) {
		const float *s = lum + (size_t)y * src->width;
		uint8_t *d = res->pixels + (size_t)y * res->stride;
		const uint8_t *a = src->pixels + (size_t)y * src->stride;

		for (uint32_t x = 0; x < src->width; x++, d += c) {
			d[0] = d[1] = d[2] = (uint8_t)(clampf(s[x], 0, 255) +
			    0.5f);
			if (c == 4)
				d[3] = a[(size_t)x * 4 + 3];
		}
	}
	return 0;
}

/* ---- domain transform ---- */

/* The guide, box-blurred by r, as packed 8-bit RGB (malloc'd). */
static uint8_t *
blurred_guide(const struct firesync_image *g, int r)
{
	int w = (int)g->width, h = (int)g->height;
	size_t n = (size_t)w * h;
	float *plane = malloc(n * sizeof(float));
	uint8_t *out = malloc(n * 3);

	if (plane == NULL || out == NULL) {
		free(plane);
		free(out);
		return NULL;
	}
	for (int c = 0; c < 3; c++) {
		for (int y = 0; y < h; y++)
			for (int x = 0; x < w; x++)
				plane[(size_t)y * w + x] = g->pixels[(size_t)y *
				    g->stride + (size_t)x * g->channels + c];
		if (box_blur_plane(plane, w, h, r) < 0) {
			free(plane);
			free(out);
			return NULL;
		}
		for (size_t i = 0; i < n; i++)
			out[3 * i + c] = (uint8_t)(plane[i] + 0.5f);
	}
	free(plane);
	return out;
}

int
dt_filter(struct fimg *f, const struct firesync_image *g0, float sigma_s,
    float sigma_r, int iterations, int guide_r, int (*cancel)(void))
{
	int w = f->w, h = f->h, gc;
	struct firesync_image blurred, *g = (struct firesync_image *)g0;
	uint8_t *gbuf = NULL;
	uint16_t *dh, *dv;
	float lut[766], ratio = sigma_s / (sigma_r * 255.0f);

	if ((int)g0->width != w || (int)g0->height != h || iterations < 1)
		return -1;
	if (guide_r > 0) {
		gbuf = blurred_guide(g0, guide_r);
		if (gbuf == NULL)
			return -1;
		blurred = *g0;
		blurred.channels = 3;
		blurred.stride = (uint32_t)w * 3;
		blurred.pixels = gbuf;
		g = &blurred;
	}
	gc = (int)g->channels;
	dh = malloc((size_t)w * h * sizeof(*dh));
	dv = malloc((size_t)w * h * sizeof(*dv));
	if (dh == NULL || dv == NULL) {
		free(dh);
		free(dv);
		free(gbuf);
		return -1;
	}
	/* |dI| summed over channels, between each pixel and its left and
	 * upper neighbours: integers 0..765, so the per-iteration weights
	 * a^(1 + ratio*d) come from a 766-entry table */
	for (int y = 0; y < h; y++) {
		const uint8_t *row = g->pixels + (size_t)y * g->stride;
		const uint8_t *up = y ? row - g->stride : row;

		for (int x = 0; x < w; x++) {
			const uint8_t *p = row + (size_t)x * gc;
			const uint8_t *l = x ? p - gc : p;
			const uint8_t *u = up + (size_t)x * gc;

			dh[(size_t)y * w + x] = (uint16_t)(abs(p[0] - l[0]) +
			    abs(p[1] - l[1]) + abs(p[2] - l[2]));
			dv[(size_t)y * w + x] = (uint16_t)(abs(p[0] - u[0]) +
			    abs(p[1] - u[1]) + abs(p[2] - u[2]));
		}
	}
	free(gbuf);
	for (int it = 0; it < iterations; it++) {
		float sigma_h = sigma_s * sqrtf(3.0f) *
		    powf(2.0f, (float)(iterations - (it + 1))) /
		    sqrtf(powf(4.0f, (float)iterations) - 1.0f);
		float a = expf(-sqrtf(2.0f) / sigma_h);

		for (int k = 0; k < 766; k++)
			lut[k] = powf(a, 1.0f + ratio * (float)k);
		/* horizontal: left to right, then right to left.  Each row is
		 * a serial recurrence, so four rows go side by side to give
		 * the CPU independent work while each step waits on the last */
		for (int y = 0; y < h; y += 4) {
			int nr = h - y < 4 ? h - y : 4;

			for (int x = 1; x < w; x++)
				for (int k = 0; k < nr; k++) {
					float *r = f->p + ((size_t)(y + k) * w + x) * 3;
					float v = lut[dh[(size_t)(y + k) * w + x]];

					r[0] += v * (r[-3] - r[0]);
					r[1] += v * (r[-2] - r[1]);
					r[2] += v * (r[-1] - r[2]);
				}
			for (int x = w - 2; x >= 0; x--)
				for (int k = 0; k < nr; k++) {
					float *r = f->p + ((size_t)(y + k) * w + x) * 3;
					float v = lut[dh[(size_t)(y + k) * w + x + 1]];

					r[0] += v * (r[3] - r[0]);
					r[1] += v * (r[4] - r[1]);
					r[2] += v * (r[5] - r[2]);
				}
		}
		if (cancel && cancel())
			goto cancelled;
		/* vertical, a row at a time so memory is read in order */
		for (int y = 1; y < h; y++) {
			float *r = f->p + (size_t)y * w * 3, *u = r - (size_t)w * 3;
			const uint16_t *d = dv + (size_t)y * w;

			for (int x = 0; x < w; x++) {
				float v = lut[d[x]];

				for (int c = 0; c < 3; c++)
					r[3 * x + c] += v * (u[3 * x + c] -
					    r[3 * x + c]);
			}
		}
		for (int y = h - 2; y >= 0; y--) {
			float *r = f->p + (size_t)y * w * 3, *b = r + (size_t)w * 3;
			const uint16_t *d = dv + (size_t)(y + 1) * w;

			for (int x = 0; x < w; x++) {
				float v = lut[d[x]];

				for (int c = 0; c < 3; c++)
					r[3 * x + c] += v * (b[3 * x + c] -
					    r[3 * x + c]);
			}
		}
		if (cancel && cancel())
			goto cancelled;
	}
	free(dh);
	free(dv);
	return 0;
cancelled:
	free(dh);
	free(dv);
	return 1;
}

/* ---- blur, luma, colour ---- */

static void
box_line(float *p, int n, int r, float *tmp)
{
	float sum = 0, inv = 1.0f / (float)(2 * r + 1);

	memcpy(tmp, p, (size_t)n * sizeof(*tmp));
	/* clamp-to-edge window sums */
	for (int i = -r; i <= r; i++)
		sum += tmp[i < 0 ? 0 : i >= n ? n - 1 : i];
	for (int i = 0; i < n; i++) {
		int add = i + r + 1, sub = i - r;

		p[i] = sum * inv;
		sum += tmp[add >= n ? n - 1 : add] - tmp[sub < 0 ? 0 : sub];
	}
}

int
box_blur_plane(float *p, int w, int h, int r)
{
	size_t rowb = (size_t)w * sizeof(float);
	float *tmp, *ring, *sum, inv = 1.0f / (float)(2 * r + 1);
	int slots = r + 1;

	if (r <= 0)
		return 0;
	tmp = malloc((size_t)w * sizeof(float));
	ring = malloc(rowb * slots);
	sum = malloc(rowb);
	if (tmp == NULL || ring == NULL || sum == NULL) {
		free(tmp);
		free(ring);
		free(sum);
		return -1;
	}
	for (int y = 0; y < h; y++)
		box_line(p + (size_t)y * w, w, r, tmp);
	/*
	 * Vertically a whole row at a time, so memory is read in order and
	 * the inner loops vectorise.  In place: before row y is written its
	 * original goes to a ring of the last r + 1 rows, which is all the
	 * window still needs of what lies above it.
	 */
	memset(sum, 0, rowb);
	for (int i = -r; i <= r; i++) {
		const float *row = p + (size_t)(i < 0 ? 0 : i >= h ? h - 1 : i) * w;

		for (int x = 0; x < w; x++)
			sum[x] += row[x];
	}
	for (int y = 0; y < h; y++) {
		int add = y + r + 1 >= h ? h - 1 : y + r + 1;
		int sub = y - r < 0 ? 0 : y - r;
		float *o = p + (size_t)y * w, *saved = ring + (size_t)(y % slots) * w;
		const float *a, *b;

		memcpy(saved, o, rowb);
		a = add <= y ? ring + (size_t)(add % slots) * w : p + (size_t)add * w;
		b = ring + (size_t)(sub % slots) * w;
		for (int x = 0; x < w; x++) {
			float v = sum[x];

			sum[x] += a[x] - b[x];
			o[x] = v * inv;
		}
	}
	free(tmp);
	free(ring);
	free(sum);
	return 0;
}

float *
luma_plane(const struct fimg *f)
{
	size_t n = (size_t)f->w * f->h;
	float *l = malloc(n * sizeof(float));

	if (l == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		l[i] = 0.299f * f->p[3 * i] + 0.587f * f->p[3 * i + 1] +
		    0.114f * f->p[3 * i + 2];
	return l;
}

float
median_abs(const float *p, size_t n, float top)
{
	uint32_t hist[MEDIAN_BINS];
	float scale = (float)MEDIAN_BINS / top;
	size_t seen = 0;
	int bin = 0;

	memset(hist, 0, sizeof(hist));
	for (size_t i = 0; i < n; i++) {
		int b = (int)(fabsf(p[i]) * scale);

		hist[b < MEDIAN_BINS - 1 ? b : MEDIAN_BINS - 1]++;
	}
	while (bin < MEDIAN_BINS - 1 && (seen += hist[bin]) < n / 2)
		bin++;
	return ((float)bin + 0.5f) / scale;
}

void
rgb_to_ycc(struct fimg *f)
{
	size_t n = (size_t)f->w * f->h;

	for (size_t i = 0; i < n; i++) {
		float *p = f->p + 3 * i, rgb[3] = { p[0], p[1], p[2] };

		ycc_of(rgb, p);
	}
}

void
ycc_to_rgb(struct fimg *f)
{
	size_t n = (size_t)f->w * f->h;

	for (size_t i = 0; i < n; i++) {
		float *p = f->p + 3 * i, y = p[0], cb = p[1], cr = p[2];

		p[0] = y + 1.402f * cr;
		p[1] = y - 0.344136f * cb - 0.714136f * cr;
		p[2] = y + 1.772f * cb;
	}
}

static float
srgb_to_linear(float c)
{
	c /= 255.0f;
	return c <= 0.04045f ? c / 12.92f : powf((c + 0.055f) / 1.055f, 2.4f);
}

static float
linear_to_srgb(float c)
{
	c = c <= 0.0031308f ? 12.92f * c : 1.055f * powf(c, 1 / 2.4f) - 0.055f;
	return clampf(c * 255.0f, 0, 255);
}

static float
lab_f(float t)
{
	return t > 0.008856f ? cbrtf(t) : 7.787f * t + 16.0f / 116.0f;
}

static float
lab_finv(float t)
{
	return t > 0.206893f ? t * t * t : (t - 16.0f / 116.0f) / 7.787f;
}

void
srgb_to_lab(const float rgb[3], float lab[3])
{
	float r = srgb_to_linear(rgb[0]), g = srgb_to_linear(rgb[1]);
	float b = srgb_to_linear(rgb[2]);
	float x = (0.4124f * r + 0.3576f * g + 0.1805f * b) / 0.95047f;
	float y = 0.2126f * r + 0.7152f * g + 0.0722f * b;
	float z = (0.0193f * r + 0.1192f * g + 0.9505f * b) / 1.08883f;
	float fx = lab_f(x), fy = lab_f(y), fz = lab_f(z);

	lab[0] = 116.0f * fy - 16.0f;
	lab[1] = 500.0f * (fx - fy);
	lab[2] = 200.0f * (fy - fz);
}

void
lab_to_srgb(const float lab[3], float rgb[3])
{
	float fy = (lab[0] + 16.0f) / 116.0f, fx = fy + lab[1] / 500.0f;
	float fz = fy - lab[2] / 200.0f;
	float x = lab_finv(fx) * 0.95047f, y = lab_finv(fy);
	float z = lab_finv(fz) * 1.08883f;

	rgb[0] = linear_to_srgb(3.2406f * x - 1.5372f * y - 0.4986f * z);
	rgb[1] = linear_to_srgb(-0.9689f * x + 1.8758f * y + 0.0415f * z);
	rgb[2] = linear_to_srgb(0.0557f * x - 0.2040f * y + 1.0570f * z);
}

int
lut3d_alloc(struct lut3d *l, int n)
{
	l->n = n;
	l->v = n >= 2 ? malloc((size_t)n * n * n * 3 * sizeof(float)) : NULL;
	return l->v ? 0 : -1;
}

void
lut3d_free(struct lut3d *l)
{
	free(l->v);
	l->v = NULL;
}

void
lut3d_apply(const struct lut3d *l, struct fimg *f)
{
	size_t n = (size_t)f->w * f->h;
	int m = l->n - 1;
	float scale = (float)m / 255.0f;

	for (size_t i = 0; i < n; i++) {
		float *p = f->p + 3 * i, out[3] = { 0, 0, 0 };
		float fr = clampf(p[0], 0, 255) * scale;
		float fg = clampf(p[1], 0, 255) * scale;
		float fb = clampf(p[2], 0, 255) * scale;
		int r0 = (int)fr, g0 = (int)fg, b0 = (int)fb;
		float tr, tg, tb;

		if (r0 >= m)
			r0 = m - 1;
		if (g0 >= m)
			g0 = m - 1;
		if (b0 >= m)
			b0 = m - 1;
		tr = fr - (float)r0;
		tg = fg - (float)g0;
		tb = fb - (float)b0;
		for (int k = 0; k < 8; k++) {
			int dr = k & 1, dg = (k >> 1) & 1, db = (k >> 2) & 1;
			float wgt = (dr ? tr : 1 - tr) * (dg ? tg : 1 - tg) *
			    (db ? tb : 1 - tb);
			const float *v = l->v + 3 * (((size_t)(r0 + dr) *
			    l->n + (g0 + dg)) * l->n + (b0 + db));

			out[0] += wgt * v[0];
			out[1] += wgt * v[1];
			out[2] += wgt * v[2];
		}
		p[0] = out[0];
		p[1] = out[1];
		p[2] = out[2];
	}
}

void
lab_stats(const struct firesync_image *im, int max_samples, float mean[3],
    float std[3])
{
	double s[3] = { 0, 0, 0 }, s2[3] = { 0, 0, 0 };
	double area = (double)im->width * im->height;
	int step = (int)sqrt(area / (max_samples > 0 ? max_samples : 1));
	long n = 0;

	if (step < 1)
		step = 1;
	for (uint32_t y = 0; y < im->height; y += (uint32_t)step) {
		const uint8_t *row = im->pixels + (size_t)y * im->stride;

		for (uint32_t x = 0; x < im->width; x += (uint32_t)step) {
			const uint8_t *p = row + (size_t)x * im->channels;
			float rgb[3] = { p[0], p[1], p[2] }, lab[3];

			srgb_to_lab(rgb, lab);
			for (int c = 0; c < 3; c++) {
				s[c] += lab[c];
				s2[c] += (double)lab[c] * lab[c];
			}
			n++;
		}
	}
	for (int c = 0; c < 3; c++) {
		double m = n ? s[c] / (double)n : 0;
		double v = n ? s2[c] / (double)n - m * m : 0;

		mean[c] = (float)m;
		std[c] = (float)sqrt(v > 1e-6 ? v : 1e-6);
	}
}

/*
 * How much a YCbCr pixel (chroma centred on 0) looks like skin, 0..1: the
 * classic Cb 77..127, Cr 133..173 box with soft sides, over a wide range
 * of luma, so every complexion and most lighting fall inside.
 */
float
skin_weight_ycc(const float *ycc)
{
	float cb = ycc[1], cr = ycc[2], y = ycc[0];
	float a = clampf((cb + 51.0f) / 8.0f, 0, 1) *
	    clampf((-1.0f - cb) / 8.0f, 0, 1);
	float b = clampf((cr - 5.0f) / 6.0f, 0, 1) *
	    clampf((45.0f - cr) / 6.0f, 0, 1);

	return a * b * clampf((y - 35.0f) / 20.0f, 0, 1);
}

/*
 * Skin, smoothed at a large scale among skin alone: a normalised
 * convolution (what is not skin neither blurs in nor is blurred) through
 * the edge-preserving filter guided by g, so the smoothing stops at the
 * hairline and the jaw.  A face's shading then crosses the tone steps in
 * long smooth curves, and cheeks fall into one to three clean tones
 * instead of blotches.  Eyes, lips and brows are drawn by the outlines,
 * which come from the photo.  f is in YCbCr.  0, 1 if cancelled, or -1.
 */
int
skin_smooth(struct fimg *f, const struct firesync_image *g, float sigma,
    int (*cancel)(void))
{
	size_t n = (size_t)f->w * f->h;
	struct fimg sum, wt;
	float total = 0;
	int rc;

	if (fimg_alloc(&sum, f->w, f->h) < 0)
		return -1;
	if (fimg_alloc(&wt, f->w, f->h) < 0) {
		fimg_free(&sum);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		float m = skin_weight_ycc(f->p + 3 * i);

		for (int c = 0; c < 3; c++) {
			sum.p[3 * i + c] = f->p[3 * i + c] * m;
			wt.p[3 * i + c] = m;
		}
		total += m;
	}
	rc = 0;
	if (total >= 1.0f) {
		rc = dt_filter(&sum, g, sigma, 0.08f, 2, 0, cancel);
		if (rc == 0)
			rc = dt_filter(&wt, g, sigma, 0.08f, 2, 0, cancel);
	}
	if (rc == 0 && total >= 1.0f)
		for (size_t i = 0; i < n; i++) {
			float m = skin_weight_ycc(f->p + 3 * i), b = wt.p[3 * i];

			if (m > 0 && b > 1e-3f)
				for (int c = 0; c < 3; c++)
					f->p[3 * i + c] += m * (sum.p[3 * i + c] /
					    b - f->p[3 * i + c]);
		}
	fimg_free(&sum);
	fimg_free(&wt);
	return rc;
}
