/*
 * resample.c - sizes and scales for the bundled looks: resizing between
 * the photo and a working resolution, Gaussian blur of a plane at any
 * sigma, and smooth value noise for paper and pigment.
 *
 * The looks do their painting at a working resolution whose short side
 * is capped (WORK_* in each look), with every length set as a fraction
 * of that short side; so a 0.5 MP and a 12 MP photo of the same scene
 * are painted alike, and the time of a 12 MP photo is mostly decoding,
 * resizing and encoding.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "imgops.h"

/*
 * One axis of a resize: each output sample is a weighted sum of a run of
 * input samples.  Shrinking averages the area each output pixel covers
 * (no aliasing, whatever the factor); enlarging interpolates linearly.
 */
struct taps {
	int *first, *count;
	float *wt;	/* count[i] weights from wt + i * span */
	int span;
};

static void
taps_free(struct taps *t)
{
	free(t->first);
	free(t->count);
	free(t->wt);
}

static int
taps_make(struct taps *t, int from, int to)
{
	double scale = (double)from / to;

	t->span = scale > 1 ? (int)ceil(scale) + 2 : 2;
	t->first = malloc((size_t)to * sizeof(int));
	t->count = malloc((size_t)to * sizeof(int));
	t->wt = malloc((size_t)to * t->span * sizeof(float));
	if (t->first == NULL || t->count == NULL || t->wt == NULL) {
		taps_free(t);
		return -1;
	}
	for (int i = 0; i < to; i++) {
		float *w = t->wt + (size_t)i * t->span;

		if (scale > 1) {
			/* the output pixel covers [a, b) of the input */
			double a = i * scale, b = a + scale, sum = 0;
			int j0 = (int)floor(a), n = 0;

			for (int j = j0; j < b && j < from && n < t->span; j++) {
				double lo = j > a ? j : a, hi = j + 1 < b ? j + 1 : b;

				w[n++] = (float)(hi - lo);
				sum += hi - lo;
			}
			for (int k = 0; k < n; k++)
				w[k] = (float)(w[k] / sum);
			t->first[i] = j0;
			t->count[i] = n;
		} else {
			double s = (i + 0.5) * scale - 0.5;
			int j0 = (int)floor(s);
			float f = (float)(s - j0);

			if (j0 < 0) {
				j0 = 0;
				f = 0;
			}
			if (j0 >= from - 1) {
				j0 = from - 1;
				f = 0;
			}
			t->first[i] = j0;
			t->count[i] = f > 0 ? 2 : 1;
			w[0] = 1 - f;
			w[1] = f;
		}
	}
	return 0;
}

int
resample(const float *src, int w0, int h0, int ch, float *dst, int w, int h)
{
	struct taps tx, ty;
	float *mid;

	if (w0 < 1 || h0 < 1 || w < 1 || h < 1 || ch < 1 || ch > 4)
		return -1;
	if (w == w0 && h == h0) {
		memmove(dst, src, (size_t)w * h * ch * sizeof(float));
		return 0;
	}
	mid = malloc((size_t)w * h0 * ch * sizeof(float));
	if (mid == NULL)
		return -1;
	if (taps_make(&tx, w0, w) < 0) {
		free(mid);
		return -1;
	}
	if (taps_make(&ty, h0, h) < 0) {
		taps_free(&tx);
		free(mid);
		return -1;
	}
	for (int y = 0; y < h0; y++) {
		const float *s = src + (size_t)y * w0 * ch;
		float *d = mid + (size_t)y * w * ch;

		for (int x = 0; x < w; x++) {
			const float *wt = tx.wt + (size_t)x * tx.span;
			const float *p = s + (size_t)tx.first[x] * ch;
			float acc[4] = { 0, 0, 0, 0 };

			for (int k = 0; k < tx.count[x]; k++, p += ch)
				for (int c = 0; c < ch; c++)
					acc[c] += wt[k] * p[c];
			for (int c = 0; c < ch; c++)
				d[(size_t)x * ch + c] = acc[c];
		}
	}
	for (int y = 0; y < h; y++) {
		const float *wt = ty.wt + (size_t)y * ty.span;
		size_t row = (size_t)w * ch;
		float *d = dst + (size_t)y * row;
		const float *s = mid + (size_t)ty.first[y] * row;

		for (size_t i = 0; i < row; i++)
			d[i] = wt[0] * s[i];
		for (int k = 1; k < ty.count[y]; k++) {
			s += row;
			for (size_t i = 0; i < row; i++)
				d[i] += wt[k] * s[i];
		}
	}
	taps_free(&tx);
	taps_free(&ty);
	free(mid);
	return 0;
}

/* One row of a ch-channel 8-bit image resampled along x into 3 floats a
 * pixel (the first three channels). */
static void
row_u8(const struct taps *tx, const uint8_t *s, int ch, int w, float *d)
{
	for (int x = 0; x < w; x++) {
		const float *wt = tx->wt + (size_t)x * tx->span;
		const uint8_t *p = s + (size_t)tx->first[x] * ch;
		float a0 = 0, a1 = 0, a2 = 0;

		for (int k = 0; k < tx->count[x]; k++, p += ch) {
			a0 += wt[k] * p[0];
			a1 += wt[k] * p[1];
			a2 += wt[k] * p[2];
		}
		d[3 * x] = a0;
		d[3 * x + 1] = a1;
		d[3 * x + 2] = a2;
	}
}

int
fimg_from_image_scaled(struct fimg *f, const struct firesync_image *im,
    int w, int h)
{
	struct taps tx, ty;
	int w0 = (int)im->width, h0 = (int)im->height, ch = (int)im->channels;
	float *row;

	if (w == w0 && h == h0)
		return fimg_from_image(f, im);
	if (ch < 3 || im->stride < im->width * im->channels ||
	    fimg_alloc(f, w, h) < 0)
		return -1;
	row = malloc((size_t)w * 3 * sizeof(*row));
	if (row == NULL || taps_make(&tx, w0, w) < 0) {
		free(row);
		fimg_free(f);
		return -1;
	}
	if (taps_make(&ty, h0, h) < 0) {
		taps_free(&tx);
		free(row);
		fimg_free(f);
		return -1;
	}
	/* a row at a time: each output row sums the few source rows it
	 * covers, each resampled along x first; nothing of the photo's size
	 * is allocated */
	for (int y = 0; y < h; y++) {
		float *d = f->p + (size_t)y * w * 3;
		const float *wt = ty.wt + (size_t)y * ty.span;

		memset(d, 0, (size_t)w * 3 * sizeof(*d));
		for (int k = 0; k < ty.count[y]; k++) {
			row_u8(&tx, im->pixels + (size_t)(ty.first[y] + k) *
			    im->stride, ch, w, row);
			for (int i = 0; i < 3 * w; i++)
				d[i] += wt[k] * row[i];
		}
	}
	taps_free(&tx);
	taps_free(&ty);
	free(row);
	return 0;
}

int
fimg_to_result_scaled(const struct fimg *f, const float *ink,
    const struct firesync_image *src, const struct firesync_host *host,
    struct firesync_result *res)
{
	int w = (int)src->width, h = (int)src->height;
	uint32_t c = src->channels == 4 ? 4 : 3;
	struct taps tx, ty;
	float *row;

	if (f->w == w && f->h == h && ink == NULL)
		return fimg_to_result(f, src, host, res);
	row = malloc((size_t)f->w * 3 * sizeof(*row));
	if (row == NULL)
		return -1;
	if (taps_make(&tx, f->w, w) < 0) {
		free(row);
		return -1;
	}
	if (taps_make(&ty, f->h, h) < 0) {
		taps_free(&tx);
		free(row);
		return -1;
	}
	res->width = (uint32_t)w;
	res->height = (uint32_t)h;
	res->channels = c;
	res->stride = (uint32_t)w * c;
	res->pixels = host->alloc((size_t)res->stride * h);
	if (res->pixels == NULL) {
		taps_free(&tx);
		taps_free(&ty);
		free(row);
		return -1;
	}
	for (int y = 0; y < h; y++) {
		const float *wt = ty.wt + (size_t)y * ty.span;
		const float *s = f->p + (size_t)ty.first[y] * f->w * 3;
		uint8_t *d = res->pixels + (size_t)y * res->stride;
		const uint8_t *a = src->pixels + (size_t)y * src->stride;
		const float *ik = ink ? ink + (size_t)y * w : NULL;

		for (int i = 0; i < 3 * f->w; i++)
			row[i] = wt[0] * s[i];
		for (int k = 1; k < ty.count[y]; k++) {
			s += (size_t)f->w * 3;
			for (int i = 0; i < 3 * f->w; i++)
				row[i] += wt[k] * s[i];
		}
		for (int x = 0; x < w; x++, d += c) {
			const float *xw = tx.wt + (size_t)x * tx.span;
			const float *p = row + (size_t)tx.first[x] * 3;
			float v[3] = { 0, 0, 0 };

			for (int k = 0; k < tx.count[x]; k++, p += 3) {
				v[0] += xw[k] * p[0];
				v[1] += xw[k] * p[1];
				v[2] += xw[k] * p[2];
			}
			for (int j = 0; j < 3; j++) {
				if (ik && ik[x] > 0)
					v[j] += ik[x] * (INK_LEVEL - v[j]);
				d[j] = (uint8_t)(clampf(v[j], 0, 255) + 0.5f);
			}
			if (c == 4)
				d[3] = a[(size_t)x * 4 + 3];
		}
	}
	taps_free(&tx);
	taps_free(&ty);
	free(row);
	return 0;
}

float *
luma_image(const struct firesync_image *im)
{
	size_t n = (size_t)im->width * im->height;
	float *l;

	if (im->channels < 3)
		return NULL;
	l = malloc(n * sizeof(*l));
	if (l == NULL)
		return NULL;
	for (uint32_t y = 0; y < im->height; y++) {
		const uint8_t *s = im->pixels + (size_t)y * im->stride;
		float *d = l + (size_t)y * im->width;

		for (uint32_t x = 0; x < im->width; x++, s += im->channels)
			d[x] = 0.299f * s[0] + 0.587f * s[1] + 0.114f * s[2];
	}
	return l;
}

int
upsampler_init(struct upsampler *u, int lw, int lh, int w, int h)
{
	u->lw = lw;
	u->lh = lh;
	u->w = w;
	u->h = h;
	u->x0 = malloc((size_t)w * sizeof(*u->x0));
	u->fx = malloc((size_t)w * sizeof(*u->fx));
	u->tmp = malloc((size_t)lw * sizeof(*u->tmp));
	if (u->x0 == NULL || u->fx == NULL || u->tmp == NULL) {
		upsampler_free(u);
		return -1;
	}
	for (int x = 0; x < w; x++) {
		float sx = ((float)x + 0.5f) * (float)lw / (float)w - 0.5f;

		sx = clampf(sx, 0, (float)(lw - 1));
		u->x0[x] = (int)sx < lw - 1 ? (int)sx : lw - 1;
		u->fx[x] = sx - (float)u->x0[x];
	}
	return 0;
}

void
upsampler_row(struct upsampler *u, const float *low, int y, float *row)
{
	float sy = ((float)y + 0.5f) * (float)u->lh / (float)u->h - 0.5f, fy;
	int y0;
	const float *a, *b;

	sy = clampf(sy, 0, (float)(u->lh - 1));
	y0 = (int)sy < u->lh - 1 ? (int)sy : u->lh - 1;
	fy = sy - (float)y0;
	a = low + (size_t)y0 * u->lw;
	b = y0 + 1 < u->lh ? a + u->lw : a;
	for (int x = 0; x < u->lw; x++)
		u->tmp[x] = a[x] + fy * (b[x] - a[x]);
	for (int x = 0; x < u->w; x++) {
		int i = u->x0[x];
		float v = u->tmp[i];

		row[x] = i + 1 < u->lw ? v + u->fx[x] * (u->tmp[i + 1] - v) : v;
	}
}

void
upsampler_free(struct upsampler *u)
{
	free(u->x0);
	free(u->fx);
	free(u->tmp);
	u->x0 = NULL;
	u->fx = u->tmp = NULL;
}

void
work_size(int w, int h, int max_short, int *ww, int *wh)
{
	int s = w < h ? w : h;

	if (s <= max_short) {
		*ww = w;
		*wh = h;
		return;
	}
	*ww = (int)lround((double)w * max_short / s);
	*wh = (int)lround((double)h * max_short / s);
	if (*ww < 1)
		*ww = 1;
	if (*wh < 1)
		*wh = 1;
}

int
fimg_resized(const struct fimg *src, int w, int h, struct fimg *dst)
{
	if (fimg_alloc(dst, w, h) < 0)
		return -1;
	if (resample(src->p, src->w, src->h, 3, dst->p, w, h) < 0) {
		fimg_free(dst);
		return -1;
	}
	return 0;
}

/* A true separable Gaussian, for the small sigmas where box passes are
 * too coarse to tell two sigmas apart. */
static int
gauss_exact(float *p, int w, int h, float sigma)
{
	int r = (int)ceilf(3.0f * sigma), len = w > h ? w : h;
	float k[64], sum = 0, *line;

	if (r > 31)
		return -1;
	line = malloc((size_t)(len + 2 * r) * sizeof(*line));
	if (line == NULL)
		return -1;
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

int
gauss_plane(float *p, int w, int h, float sigma)
{
	int r = (int)floorf((sqrtf(4.0f * sigma * sigma + 1.0f) - 1.0f) *
	    0.5f + 0.5f);

	if (sigma <= 0)
		return 0;
	if (sigma < 2.5f)
		return gauss_exact(p, w, h, sigma);
	for (int k = 0; k < 3; k++)
		if (box_blur_plane(p, w, h, r) < 0)
			return -1;
	return 0;
}

int
fimg_gauss(struct fimg *f, float sigma)
{
	size_t n = (size_t)f->w * f->h;
	float *pl = malloc(n * sizeof(*pl));

	if (pl == NULL)
		return -1;
	for (int c = 0; c < 3; c++) {
		for (size_t i = 0; i < n; i++)
			pl[i] = f->p[3 * i + c];
		if (gauss_plane(pl, f->w, f->h, sigma) < 0) {
			free(pl);
			return -1;
		}
		for (size_t i = 0; i < n; i++)
			f->p[3 * i + c] = pl[i];
	}
	free(pl);
	return 0;
}

static float
lattice(int x, int y, uint32_t seed)
{
	uint32_t h = (uint32_t)x * 374761393u + (uint32_t)y * 668265263u +
	    seed * 2654435761u;

	h = (h ^ (h >> 13)) * 1274126177u;
	h ^= h >> 16;
	return (float)(h & 0xffff) / 32767.5f - 1.0f;
}

int
noise_add(float *p, int w, int h, float cell, float amp, uint32_t seed)
{
	int gw = (int)((float)w / cell) + 2, gh = (int)((float)h / cell) + 2;
	float *g, *wx;
	int *ix;

	if (cell < 0.5f || gw < 2 || gh < 2)
		return -1;
	g = malloc((size_t)gw * gh * sizeof(*g));
	wx = malloc((size_t)w * sizeof(*wx));
	ix = malloc((size_t)w * sizeof(*ix));
	if (g == NULL || wx == NULL || ix == NULL) {
		free(g);
		free(wx);
		free(ix);
		return -1;
	}
	for (int y = 0; y < gh; y++)
		for (int x = 0; x < gw; x++)
			g[(size_t)y * gw + x] = amp * lattice(x, y, seed);
	for (int x = 0; x < w; x++) {
		float s = (float)x / cell, f;

		ix[x] = (int)s;
		f = s - (float)ix[x];
		wx[x] = f * f * (3 - 2 * f);	/* smoothstep: no creases */
	}
	for (int y = 0; y < h; y++) {
		float s = (float)y / cell, fy;
		int iy = (int)s;
		const float *r0 = g + (size_t)iy * gw, *r1 = r0 + gw;
		float *o = p + (size_t)y * w;

		fy = s - (float)iy;
		fy = fy * fy * (3 - 2 * fy);
		for (int x = 0; x < w; x++) {
			int i = ix[x];
			float a = r0[i] + wx[x] * (r0[i + 1] - r0[i]);
			float b = r1[i] + wx[x] * (r1[i + 1] - r1[i]);

			o[x] += a + fy * (b - a);
		}
	}
	free(g);
	free(wx);
	free(ix);
	return 0;
}

float *
fbm_plane(int w, int h, float cell, int octaves, uint32_t seed)
{
	float *p = calloc((size_t)w * h, sizeof(*p)), amp = 1;

	if (p == NULL)
		return NULL;
	/* no octave finer than two pixels: it could only alias; the first
	 * is made at least that coarse */
	if (cell < 2.0f)
		cell = 2.0f;
	for (int o = 0; o < octaves && cell >= 2.0f; o++) {
		if (noise_add(p, w, h, cell, amp, seed + (uint32_t)o * 101u) < 0) {
			free(p);
			return NULL;
		}
		cell *= 0.5f;
		amp *= 0.5f;
	}
	return p;
}

int
image8_of(const struct fimg *f, struct firesync_image *im)
{
	size_t n = (size_t)f->w * f->h;
	uint8_t *px = malloc(n * 3);

	if (px == NULL)
		return -1;
	for (size_t i = 0; i < 3 * n; i++)
		px[i] = (uint8_t)(clampf(f->p[i], 0, 255) + 0.5f);
	memset(im, 0, sizeof(*im));
	im->width = (uint32_t)f->w;
	im->height = (uint32_t)f->h;
	im->channels = 3;
	im->stride = (uint32_t)f->w * 3;
	im->pixels = px;
	return 0;
}
