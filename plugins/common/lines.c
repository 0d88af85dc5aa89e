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

/* Union-find over pixel indices, with path halving. */
static uint32_t
uf_find(uint32_t *parent, uint32_t i)
{
	while (parent[i] != i) {
		parent[i] = parent[parent[i]];
		i = parent[i];
	}
	return i;
}

int
drop_specks(float *alpha, int w, int h, int min_area)
{
	size_t n = (size_t)w * h;
	uint32_t *parent = malloc(n * sizeof(*parent)), *area;

	if (parent == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		parent[i] = (uint32_t)i;
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			size_t i = (size_t)y * w + x;
			static const int dx[4] = { -1, -1, 0, 1 };

			if (alpha[i] <= 0)
				continue;
			for (int k = 0; k < 4; k++) {
				int nx = x + dx[k], ny = k == 0 ? y : y - 1;
				size_t j;
				uint32_t a, b;

				if (nx < 0 || nx >= w || ny < 0)
					continue;
				j = (size_t)ny * w + nx;
				if (alpha[j] <= 0)
					continue;
				a = uf_find(parent, (uint32_t)i);
				b = uf_find(parent, (uint32_t)j);
				if (a != b)
					parent[a < b ? b : a] = a < b ? a : b;
			}
		}
	/* sizes at the roots, in a second array */
	area = calloc(n, sizeof(*area));
	if (area == NULL) {
		free(parent);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if (alpha[i] > 0)
			area[uf_find(parent, (uint32_t)i)]++;
	for (size_t i = 0; i < n; i++)
		if (alpha[i] > 0 && area[uf_find(parent, (uint32_t)i)] <
		    (uint32_t)min_area)
			alpha[i] = 0;
	free(area);
	free(parent);
	return 0;
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
	uint32_t hist[1024];
	float t = ramp, noise;
	size_t seen = 0, bin = 0;

	/* the noise of the photo, as the median absolute DoG (most pixels
	 * are not on an edge): lines start well above it, so grain and
	 * sensor noise draw nothing */
	memset(hist, 0, sizeof(hist));
	for (size_t i = 0; i < n; i++) {
		int b = (int)(fabsf(dog[i]) * 16.0f);

		hist[b < 1023 ? b : 1023]++;
	}
	while (bin < 1023 && (seen += hist[bin]) < n / 2)
		bin++;
	noise = 1.4826f * ((float)bin + 0.5f) / 16.0f;
	if (t < 3.0f * noise)
		t = 3.0f * noise;
	for (size_t i = 0; i < n; i++)
		dog[i] = clampf((-dog[i] - t) / ramp, 0, 1) * strength;
	return drop_specks(dog, w, h, min_area);
}
