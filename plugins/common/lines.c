/*
 * lines.c - ink lines from a photo's luma for the bundled looks: a
 * difference of Gaussians at a scale that follows the picture, lines
 * above the photo's own noise, and specks dropped.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imgops.h"

#define DOG_K	1.6f	/* the wide Gaussian's sigma, relative */

/*
 * Difference of Gaussians of luma, in place: G(sigma) - G(k sigma), at a
 * sigma that follows the image's size, so a line is as thick relative to
 * the face at 0.5 MP as at 12 MP.  Negative on the dark side of an edge
 * and along thin dark features (eyes, lips, the line of a smile).
 */
int
dog_plane(float *lum, int w, int h, float sigma)
{
	size_t n = (size_t)w * h;
	float *wide = malloc(n * sizeof(*wide));

	if (wide == NULL)
		return -1;
	if (sigma < 0.7f)
		sigma = 0.7f;
	memcpy(wide, lum, n * sizeof(*wide));
	if (gauss_plane(lum, w, h, sigma) < 0 ||
	    gauss_plane(wide, w, h, sigma * DOG_K) < 0) {
		free(wide);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		lum[i] -= wide[i];
	free(wide);
	return 0;
}

/* Union-find over run indices, with path halving. */
static uint32_t
uf_find(uint32_t *parent, uint32_t i)
{
	while (parent[i] != i) {
		parent[i] = parent[parent[i]];
		i = parent[i];
	}
	return i;
}

/* A horizontal run of line pixels [x0, x1) in one row. */
struct run {
	int x0, x1;
};

/*
 * Pieces are found over runs, not pixels: lines are sparse, so the
 * memory and time follow the lines drawn, not the picture's size.  Runs
 * of two rows in a row are 8-connected when their x ranges, one widened
 * by a pixel each side, overlap.
 */
int
drop_specks(float *alpha, int w, int h, int min_area)
{
	struct run *run = NULL;
	uint32_t *parent = NULL, *area = NULL, *row_start;
	size_t n = 0, cap = 0;
	int rc = -1;

	row_start = malloc(((size_t)h + 1) * sizeof(*row_start));
	if (row_start == NULL)
		return -1;
	for (int y = 0; y < h; y++) {
		const float *a = alpha + (size_t)y * w;

		row_start[y] = (uint32_t)n;
		for (int x = 0; x < w; ) {
			int x0;

			if (a[x] <= 0) {
				x++;
				continue;
			}
			for (x0 = x; x < w && a[x] > 0; x++)
				;
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 4096;
				struct run *r = realloc(run, nc * sizeof(*r));
				uint32_t *p = realloc(parent, nc * sizeof(*p));

				if (r != NULL)
					run = r;
				if (p != NULL)
					parent = p;
				if (r == NULL || p == NULL || nc > UINT32_MAX)
					goto out;
				cap = nc;
			}
			run[n].x0 = x0;
			run[n].x1 = x;
			parent[n] = (uint32_t)n;
			n++;
		}
	}
	row_start[h] = (uint32_t)n;
	/* join each run to the runs it touches in the row above: both
	 * lists are sorted by x, so one merge-like walk per row */
	for (int y = 1; y < h; y++) {
		uint32_t i = row_start[y], j = row_start[y - 1];

		for (; i < row_start[y + 1]; i++) {
			while (j < row_start[y] && run[j].x1 < run[i].x0)
				j++;	/* ends left of x0 - 1: cannot touch */
			for (uint32_t k = j; k < row_start[y] &&
			    run[k].x0 <= run[i].x1; k++) {
				uint32_t ra = uf_find(parent, i);
				uint32_t rb = uf_find(parent, k);

				if (ra != rb)
					parent[ra < rb ? rb : ra] = ra < rb ? ra : rb;
			}
		}
	}
	area = calloc(n ? n : 1, sizeof(*area));
	if (area == NULL)
		goto out;
	for (size_t i = 0; i < n; i++)
		area[uf_find(parent, (uint32_t)i)] +=
		    (uint32_t)(run[i].x1 - run[i].x0);
	for (int y = 0; y < h; y++)
		for (uint32_t i = row_start[y]; i < row_start[y + 1]; i++)
			if (area[uf_find(parent, i)] < (uint32_t)min_area)
				memset(alpha + (size_t)y * w + run[i].x0, 0,
				    (size_t)(run[i].x1 - run[i].x0) *
				    sizeof(*alpha));
	rc = 0;
out:
	free(run);
	free(parent);
	free(area);
	free(row_start);
	return rc;
}

/*
 * Line alpha from the DoG: dark where it is negative enough; then every
 * 8-connected piece of line smaller than min_area pixels is dropped.
 * What noise, skin pores and grain leave are specks; outlines, eyes and
 * the line of a smile are long.
 */
int
dog_lines(float *dog, int w, int h, float ramp, float strength, int min_area)
{
	size_t n = (size_t)w * h;
	/* the noise of the photo, as the median absolute DoG (most pixels
	 * are not on an edge; sixteenth-level bins): lines start well above
	 * it, so grain and sensor noise draw nothing */
	float t = ramp, noise = 1.4826f * median_abs(dog, n, 64.0f);

	if (t < 3.0f * noise)
		t = 3.0f * noise;
	for (size_t i = 0; i < n; i++)
		dog[i] = clampf((-dog[i] - t) / ramp, 0, 1) * strength;
	return drop_specks(dog, w, h, min_area);
}
