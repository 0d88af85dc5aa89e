/*
 * oil.c - the oil-painting look: curved brush strokes, after Hertzmann,
 * "Painterly rendering with curved brush strokes of multiple sizes"
 * (SIGGRAPH 1998).
 *
 * Three layers of strokes, coarse to fine, each on a reference blurred in
 * proportion to its brush.  The coarse layer covers the canvas; a finer
 * layer paints only where the canvas still differs from its reference by
 * more than a threshold, so fine strokes gather on detail (eyes, mouth,
 * hands, edges) and coarse ones stay in the background.  Skin lowers the
 * threshold, so a face is painted with the finer brushes as a portrait
 * painter would.
 *
 * A stroke starts where the canvas is most wrong in its grid cell, takes
 * the reference's colour there, and runs along the image's structure:
 * across the gradient of a smoothed structure tensor, bending at most a
 * little per step, until the reference stops matching its colour.  It is
 * drawn as a thick curve with bristle streaks, and a height field
 * records the paint's ridges, lit from the upper left at the end
 * (impasto).
 *
 * Every length is a fraction of the short side.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "style.h"

#define LAYERS		3
#define MAX_LEN		10	/* control points of a stroke, at most */
#define MIN_LEN		3
#define TILE		96	/* pixels: see paint_layer */
#define THRESHOLD	34.0f	/* RGB distance (L2; 1.5 x in L1) */
/* luma^2 per pixel^2: a structure tensor weaker than this is flat */
#define FLAT_PULL	0.5f	/* mean RGB distance that asks for a stroke */

struct canvas {
	int w, h;
	/* w * h * 4: R, G, B and the paint's thickness (0..1) side by
	 * side, so a pixel of a stroke is one four-wide blend */
	float *px;
};

#define MAX_BRISTLES	48

struct stroke {
	float r;
	float colour[3];
	uint32_t seed;
	int n;
	float pt[2 * MAX_LEN];
};

static uint32_t
xorshift(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

/* One bristle's relative load in [-1, 1], for a stroke and a bristle. */
static float
bristle(uint32_t seed, int k)
{
	uint32_t h = seed ^ ((uint32_t)k * 2654435761u);

	h = (h ^ (h >> 15)) * 2246822519u;
	h ^= h >> 13;
	return (float)(h & 0xffff) / 32767.5f - 1.0f;
}

/*
 * The direction strokes follow at each pixel (unit cos, sin): along the
 * edges, from the structure tensor of the luma, smoothed over sigma so
 * neighbouring strokes run alike and flat areas inherit the direction
 * of the structure around them.
 */
static float *
flow_field(const struct fimg *src, float sigma)
{
	int w = src->w, h = src->h;
	size_t n = (size_t)w * h;
	float *lum = luma_plane(src), *jxx = NULL, *jxy = NULL, *jyy = NULL;
	float *dir = NULL;

	if (lum == NULL || gauss_plane(lum, w, h, 1.0f) < 0)
		goto out;
	jxx = malloc(n * sizeof(float));
	jxy = malloc(n * sizeof(float));
	jyy = malloc(n * sizeof(float));
	if (jxx == NULL || jxy == NULL || jyy == NULL)
		goto out;
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			size_t i = (size_t)y * w + x;
			int l = x ? x - 1 : x, r = x + 1 < w ? x + 1 : x;
			int u = y ? y - 1 : y, d = y + 1 < h ? y + 1 : y;
			float gx = lum[(size_t)y * w + r] - lum[(size_t)y * w + l];
			float gy = lum[(size_t)d * w + x] - lum[(size_t)u * w + x];

			jxx[i] = gx * gx;
			jxy[i] = gx * gy;
			jyy[i] = gy * gy;
		}
	if (gauss_plane(jxx, w, h, sigma) < 0 ||
	    gauss_plane(jxy, w, h, sigma) < 0 ||
	    gauss_plane(jyy, w, h, sigma) < 0)
		goto out;
	dir = malloc(2 * n * sizeof(float));
	if (dir == NULL)
		goto out;
	for (size_t i = 0; i < n; i++) {
		/* the gradient's orientation is half the angle of
		 * (jxx - jyy, 2 jxy); strokes run across it.  Where there is
		 * no structure at all, a faint diagonal gradient wins, so a
		 * flat wall is painted in even slanting strokes, not noise */
		float a = 0.5f * atan2f(2.0f * jxy[i] + FLAT_PULL,
		    jxx[i] - jyy[i]);

		dir[2 * i] = -sinf(a);
		dir[2 * i + 1] = cosf(a);
	}
out:
	free(lum);
	free(jxx);
	free(jxy);
	free(jyy);
	return dir;
}

static float
dist3(const float *a, const float *b)
{
	float d0 = a[0] - b[0], d1 = a[1] - b[1], d2 = a[2] - b[2];

	return sqrtf(d0 * d0 + d1 * d1 + d2 * d2);
}

/* Trace a stroke from (x, y) on ref, against what cv already shows. */
static void
trace(struct stroke *st, const struct canvas *cv, const float *ref,
    const float *dir, float x, float y, float r, bool first)
{
	int w = cv->w, h = cv->h;
	float lx = 0, ly = 0;
	size_t i = (size_t)y * w + (size_t)x;

	st->r = r;
	memcpy(st->colour, ref + 3 * i, sizeof(st->colour));
	st->n = 0;
	st->pt[st->n * 2] = x;
	st->pt[st->n * 2 + 1] = y;
	st->n++;
	while (st->n < MAX_LEN) {
		float dx, dy, len;

		i = (size_t)(int)y * w + (size_t)(int)x;
		if (!first && st->n >= MIN_LEN && dist3(ref + 3 * i, cv->px +
		    4 * i) < dist3(ref + 3 * i, st->colour))
			break;
		dx = dir[2 * i];
		dy = dir[2 * i + 1];
		if (lx * dx + ly * dy < 0) {
			dx = -dx;
			dy = -dy;
		}
		if (st->n > 1) {	/* bend gently */
			dx = 0.7f * dx + 0.3f * lx;
			dy = 0.7f * dy + 0.3f * ly;
		}
		len = sqrtf(dx * dx + dy * dy);
		if (len < 1e-6f)
			break;
		dx /= len;
		dy /= len;
		x += r * dx;
		y += r * dy;
		if (x < 0 || y < 0 || x > (float)(w - 1) || y > (float)(h - 1))
			break;
		lx = dx;
		ly = dy;
		st->pt[st->n * 2] = x;
		st->pt[st->n * 2 + 1] = y;
		st->n++;
		if (st->n >= MIN_LEN && dist3(ref + 3 * ((size_t)(int)y * w +
		    (size_t)(int)x), st->colour) > 1.6f * THRESHOLD)
			break;	/* ran off the colour's region */
	}
}

/*
 * The x range [*lo, *hi] of row y inside a capsule (the points within rr
 * of the segment a-b); false if the row misses it.  The capsule is convex,
 * so the row meets it in one interval: the union of the row's meetings
 * with the two end discs and with the band between them.
 */
static bool
capsule_row(float ax, float ay, float ex, float ey, float len, float rr,
    float y, float *lo, float *hi)
{
	float l = 1e30f, h = -1e30f, dy, q;

	dy = y - ay;
	if (dy * dy < rr * rr) {
		q = sqrtf(rr * rr - dy * dy);
		l = fminf(l, ax - q);
		h = fmaxf(h, ax + q);
	}
	dy = y - (ay + ey);
	if (dy * dy < rr * rr) {
		q = sqrtf(rr * rr - dy * dy);
		l = fminf(l, ax + ex - q);
		h = fmaxf(h, ax + ex + q);
	}
	if (len > 1e-3f) {
		/* 0 <= ((x - ax) ex + (y - ay) ey) <= len^2 and
		 * |(x - ax) ey - (y - ay) ex| <= rr len: linear in x */
		float bl = -1e30f, bh = 1e30f, c0 = (y - ay) * ey;
		float c1 = (y - ay) * ex;

		if (fabsf(ex) > 1e-6f) {
			float t0 = ax - c0 / ex, t1 = ax + (len * len - c0) / ex;

			bl = fmaxf(bl, fminf(t0, t1));
			bh = fminf(bh, fmaxf(t0, t1));
		} else if (c0 < 0 || c0 > len * len) {
			bh = -1e30f;
		}
		if (fabsf(ey) > 1e-6f) {
			float t0 = ax + (c1 - rr * len) / ey;
			float t1 = ax + (c1 + rr * len) / ey;

			bl = fmaxf(bl, fminf(t0, t1));
			bh = fminf(bh, fmaxf(t0, t1));
		} else if (fabsf(c1) > rr * len) {
			bh = -1e30f;
		}
		if (bl <= bh) {
			l = fminf(l, bl);
			h = fmaxf(h, bh);
		}
	}
	*lo = l;
	*hi = h;
	return l <= h;
}

/* Draw one segment of a stroke: a capsule of radius r with bristles. */
static void
draw_segment(struct canvas *cv, const struct stroke *st, const float *load,
    float bristles, float ax, float ay, float bx, float by)
{
	float r = st->r, ex = bx - ax, ey = by - ay;
	float l2 = ex * ex + ey * ey, inv = l2 > 0 ? 1.0f / l2 : 0;
	float len = sqrtf(l2), rr = r + 0.5f;
	float inner = r > 0.5f ? (r - 0.5f) * (r - 0.5f) : 0;
	float across = len > 0 ? 1.0f / (len * r) : 0;
	float half = 0.5f * bristles;
	int y0 = (int)ceilf(fminf(ay, by) - rr);
	int y1 = (int)floorf(fmaxf(ay, by) + rr);

	if (y0 < 0)
		y0 = 0;
	if (y1 > cv->h - 1)
		y1 = cv->h - 1;
	for (int y = y0; y <= y1; y++) {
		float lo, hi;
		int x0, x1;

		if (!capsule_row(ax, ay, ex, ey, len, rr, (float)y, &lo, &hi))
			continue;
		x0 = (int)ceilf(lo);
		x1 = (int)floorf(hi);
		if (x0 < 0)
			x0 = 0;
		if (x1 > cv->w - 1)
			x1 = cv->w - 1;
		for (int x = x0; x <= x1; x++) {
			float px = (float)x - ax, py = (float)y - ay;
			float t = clampf((px * ex + py * ey) * inv, 0, 1);
			float qx = px - t * ex, qy = py - t * ey;
			float d2 = qx * qx + qy * qy, a = 1, u, b;
			size_t i = (size_t)y * cv->w + x;

			/* inside, opaque; the last pixel of the rim blends */
			if (d2 > inner)
				a = clampf(rr - sqrtf(d2), 0, 1);
			/* across the stroke, -1..1; the bristles are fixed
			 * to it, so they streak along the stroke */
			u = len > 0 ? (px * ey - py * ex) * across : 0;
			u = clampf(u, -1, 1);
			b = load[(int)((u + 1.0f) * half)];
			float v[4], *o = cv->px + 4 * i;

			for (int c = 0; c < 3; c++)
				v[c] = st->colour[c] * (1.0f + 0.07f * b);
			/* a rounded ridge, thinner at the sides */
			v[3] = (1.0f - 0.45f * u * u) * (0.8f + 0.2f * b);
			for (int c = 0; c < 4; c++)
				o[c] += a * (v[c] - o[c]);
		}
	}
}

static void
draw_stroke(struct canvas *cv, const struct stroke *st)
{
	float load[MAX_BRISTLES + 2];
	float bristles = st->r < 2 ? 2 : st->r * 0.9f;

	if (bristles > MAX_BRISTLES)
		bristles = MAX_BRISTLES;
	for (int k = 0; k < MAX_BRISTLES + 2; k++)
		load[k] = bristle(st->seed, k);
	if (st->n == 1) {
		draw_segment(cv, st, load, bristles, st->pt[0], st->pt[1],
		    st->pt[0], st->pt[1]);
		return;
	}
	for (int k = 0; k + 1 < st->n; k++)
		draw_segment(cv, st, load, bristles, st->pt[2 * k],
		    st->pt[2 * k + 1], st->pt[2 * k + 2], st->pt[2 * k + 3]);
}

static int
tile_of(const struct stroke *st, int tw)
{
	return (int)st->pt[1] / TILE * tw + (int)st->pt[0] / TILE;
}

/*
 * One layer of strokes of radius r on ref.  threshold 0 covers the whole
 * canvas; skin (may be NULL, 0..1 a pixel) lowers the threshold.
 */
static int
paint_layer(struct canvas *cv, const float *ref, const float *dir,
    const float *skin, float skin_min, float r, float threshold,
    uint32_t *rng)
{
	/* the layer that covers the canvas places its strokes a stroke's
	 * width apart; the others a radius apart, as fine as they need */
	int w = cv->w, h = cv->h, grid = (int)(r * (threshold > 0 ? 1 : 2) +
	    0.5f);
	int gw, gh, count = 0;
	struct stroke *st;

	if (grid < 1)
		grid = 1;
	gw = (w + grid - 1) / grid;
	gh = (h + grid - 1) / grid;
	st = malloc((size_t)gw * gh * sizeof(*st));
	if (st == NULL)
		return -1;
	for (int gy = 0; gy < gh; gy++)
		for (int gx = 0; gx < gw; gx++) {
			int xa = gx * grid, ya = gy * grid;
			int xb = xa + grid < w ? xa + grid : w;
			int yb = ya + grid < h ? ya + grid : h;
			float sum = 0, worst = -1, sk = 0;
			int bx = xa, by = ya;

			for (int y = ya; y < yb; y++)
				for (int x = xa; x < xb; x++) {
					size_t i = (size_t)y * w + x;
					/* L1: no square root for every pixel */
					const float *c = cv->px + 4 * i, *f = ref + 3 * i;
					float d = fabsf(c[0] - f[0]) + fabsf(c[1] -
					    f[1]) + fabsf(c[2] - f[2]);

					sum += d;
					if (skin)
						sk += skin[i];
					if (d > worst) {
						worst = d;
						bx = x;
						by = y;
					}
				}
			sum /= (float)((xb - xa) * (yb - ya));
			sk /= (float)((xb - xa) * (yb - ya));
			if (sk < skin_min || (threshold > 0 &&
			    sum <= 1.5f * threshold * (1.0f - 0.65f * sk)))
				continue;
			trace(&st[count], cv, ref, dir, (float)bx, (float)by, r,
			    threshold <= 0);
			st[count].seed = xorshift(rng);
			count++;
		}
	/* in random order, so no direction of the grid shows */
	for (int i = count - 1; i > 0; i--) {
		int j = (int)(xorshift(rng) % (uint32_t)(i + 1));
		struct stroke t = st[i];

		st[i] = st[j];
		st[j] = t;
	}
	/* then by tiles of TILE pixels (a counting sort keeps the random
	 * order within a tile): the canvas is touched a tile at a time,
	 * which the cache rewards, and a tile is many strokes across, so
	 * no seam shows */
	{
		int tw = (w + TILE - 1) / TILE, th = (h + TILE - 1) / TILE;
		int *start = calloc((size_t)tw * th + 1, sizeof(*start));
		struct stroke *sorted = malloc((size_t)count * sizeof(*sorted) + 1);

		if (start == NULL || sorted == NULL) {
			free(start);
			free(sorted);
			free(st);
			return -1;
		}
		for (int i = 0; i < count; i++)
			start[tile_of(&st[i], tw) + 1]++;
		for (int t = 0; t < tw * th; t++)
			start[t + 1] += start[t];
		for (int i = 0; i < count; i++)
			sorted[start[tile_of(&st[i], tw)]++] = st[i];
		free(start);
		free(st);
		st = sorted;
	}
	for (int i = 0; i < count; i++)
		draw_stroke(cv, &st[i]);
	free(st);
	return 0;
}

/* How much each pixel looks like skin, 0..1 (skin_weight_ycc). */
static float *
skin_plane(const struct fimg *f)
{
	size_t n = (size_t)f->w * f->h;
	float *m = malloc(n * sizeof(*m));

	if (m == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		float ycc[3];

		ycc_of(f->p + 3 * i, ycc);
		m[i] = skin_weight_ycc(ycc);
	}
	return m;
}

/* Light the paint's ridges from the upper left. */
static void
impasto(struct canvas *cv, float strength)
{
	int w = cv->w, h = cv->h;

	for (int y = h - 1; y >= 1; y--)
		for (int x = w - 1; x >= 1; x--) {
			size_t i = (size_t)y * w + x;
			const float *p = cv->px + 4 * i;
			float s = 1.0f + strength * (2.0f * p[3] - p[3 - 4] -
			    p[3 - 4 * w]);

			s = clampf(s, 0.75f, 1.25f);
			for (int c = 0; c < 3; c++)
				cv->px[4 * i + c] *= s;
		}
}

int
oil_paint(struct fimg *wk, float brush, int (*cancel)(void))
{
	struct fimg ref;
	struct canvas cv = { 0, 0, NULL };
	float *dir = NULL, *skin = NULL, fine;
	int ww = wk->w, wh = wk->h, s = ww < wh ? ww : wh, rc = -1;
	uint32_t rng = 0x9e3779b9u;
	size_t n = (size_t)ww * wh;

	fine = brush * (float)s;
	if (fine < 1.0f)
		fine = 1.0f;
	cv.w = ww;
	cv.h = wh;
	cv.px = malloc(n * 4 * sizeof(float));
	if (fimg_alloc(&ref, ww, wh) < 0)
		goto out;
	if (cv.px == NULL)
		goto out;
	dir = flow_field(wk, (float)s / 90.0f);
	skin = skin_plane(wk);
	if (dir == NULL || skin == NULL)
		goto out;
	for (int layer = 0; layer <= LAYERS; layer++) {
		/* LAYERS sizes, each half the last; then the face's own
		 * finer brush, on skin alone */
		float r = layer < LAYERS ? fine * (float)(1 << (LAYERS - 1 -
		    layer)) : fine * 0.6f;

		memcpy(ref.p, wk->p, n * 3 * sizeof(float));
		if (fimg_gauss(&ref, r * 0.5f) < 0)
			goto out;
		/* the underpainting: the coarsest reference, for any gap */
		if (layer == 0)
			for (size_t i = 0; i < n; i++) {
				memcpy(cv.px + 4 * i, ref.p + 3 * i,
				    3 * sizeof(float));
				cv.px[4 * i + 3] = 0;
			}
		if (paint_layer(&cv, ref.p, dir, skin, layer < LAYERS ? 0 : 0.5f,
		    r, layer == 0 ? 0 : THRESHOLD, &rng) < 0)
			goto out;
		if (cancel && cancel()) {
			rc = 1;
			goto out;
		}
	}
	impasto(&cv, 0.22f);
	/* oil colours: a little more contrast and saturation */
	for (size_t i = 0; i < n; i++)
		memcpy(wk->p + 3 * i, cv.px + 4 * i, 3 * sizeof(float));
	rgb_to_ycc(wk);
	for (size_t i = 0; i < n; i++) {
		wk->p[3 * i] = (wk->p[3 * i] - 128.0f) * 1.06f + 128.0f;
		wk->p[3 * i + 1] *= 1.15f;
		wk->p[3 * i + 2] *= 1.15f;
	}
	ycc_to_rgb(wk);
	rc = 0;
out:
	fimg_free(&ref);
	free(cv.px);
	free(dir);
	free(skin);
	return rc;
}
