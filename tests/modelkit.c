/*
 * modelkit.c - what the bundled models' tests share (modelkit.h).
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "log.h"
#include "modelkit.h"
#include "pool.h"

static char dir[64];
static struct pool *pool;

void
setup(void)
{
	struct pool_options o = {
		.plugin_dir = dir, .workers = 1, .timeout_ms = 60000,
		.memory_mb = 2048, .max_jobs = 100, .max_pixels = 4000000,
		.log_level = LOG_ERR,
	};
	char cmd[512], err[512], *worker = pool_find_worker();

	snprintf(dir, sizeof(dir), "/tmp/fsmodels-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd), "cp %s/cartoon/.libs/cartoon.so "
	    "%s/style/.libs/style.so %s/ && chmod 755 %s/*.so", BUNDLED,
	    BUNDLED, dir, dir);
	ck_assert_int_eq(system(cmd), 0);
	o.worker_path = worker;
	pool = pool_new(&o, err, sizeof(err));
	free(worker);
	ck_assert_msg(pool != NULL, "%s", err);
}

void
teardown(void)
{
	char cmd[128];

	pool_free(pool);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)!system(cmd);
}

/* Encode pixels (w x h RGB) as PNG bytes. */
uint8_t *
png_of(const uint8_t *px, uint32_t w, uint32_t h, size_t *len)
{
	struct image img = { w, h, 3, (uint8_t *)px };
	uint8_t *out;
	char err[128];

	ck_assert_int_eq(image_encode_png(&img, &out, len, err, sizeof(err)),
	    0);
	return out;
}

enum pool_status
run(const char *model, const char *prompt, const char *aspect,
    const uint8_t *in, size_t inlen, const uint8_t *ref, size_t reflen,
    struct image *out, char *err, size_t errlen)
{
	const uint8_t *refs[1] = { ref };
	size_t ref_lens[1] = { reflen };
	struct pool_job job = {
		.ai = true, .model = model, .prompt = prompt,
		.aspect_ratio = aspect, .session_id = "s", .event_id = "e",
		.input = in, .input_len = inlen,
		.refs = refs, .ref_lens = ref_lens, .n_refs = ref ? 1 : 0,
	};
	struct pool_result res;

	if (pool_transform(pool, &job, &res) == POOL_OK) {
		char derr[128];

		ck_assert_int_eq(image_decode(res.png, res.png_len, 100000000,
		    out, derr, sizeof(derr)), 0);
		free(res.png);
	}
	snprintf(err, errlen, "%s", res.message);
	return res.status;
}

float
luma_at(const struct image *im, uint32_t x, uint32_t y)
{
	const uint8_t *p = im->pixels + ((size_t)y * im->width + x) *
	    im->channels;

	return 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
}

/* Mean and std of luma over a rectangle. */
void
region_stats(const struct image *im, uint32_t x0, uint32_t y0, uint32_t x1,
    uint32_t y1, float *mean, float *sd)
{
	double s = 0, s2 = 0;
	long n = 0;

	for (uint32_t y = y0; y < y1; y++)
		for (uint32_t x = x0; x < x1; x++) {
			float l = luma_at(im, x, y);

			s += l;
			s2 += (double)l * l;
			n++;
		}
	*mean = (float)(s / n);
	*sd = (float)sqrt(fmax(0, s2 / n - (s / n) * (s / n)));
}

uint8_t *
halves(uint32_t w, uint32_t h, size_t *len)
{
	return halves_noisy(w, h, 20, len);
}

uint8_t *
halves_noisy(uint32_t w, uint32_t h, int amp, size_t *len)
{
	uint8_t *px = malloc((size_t)w * h * 3), *png;

	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++) {
			uint8_t *p = px + ((size_t)y * w + x) * 3;
			uint32_t hsh = (x * 73856093u) ^ (y * 19349663u);
			int n = (int)(hsh % (uint32_t)(2 * amp + 1)) - amp;
			int base[3] = { 40, 60, 120 }, hi[3] = { 220, 200, 180 };

			for (int c = 0; c < 3; c++) {
				int v = (x < w / 2 ? base[c] : hi[c]) + n;

				p[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
			}
		}
	png = png_of(px, w, h, len);
	free(px);
	return png;
}


/*
 * A cartoon face drawn at any size: a light background, a skin-coloured
 * disk, two eyes and a thin smile, in proportion to the height, so the
 * same scene can be made at 0.25 MP and 4 MP.  The eyes and the smile are
 * only a little darker than the skin, as lips are in a photo: smoothing
 * that flattens skin flattens them too, unless the lines keep them.
 */
uint8_t *
face(uint32_t w, uint32_t h, size_t *len)
{
	uint8_t *px = malloc((size_t)w * h * 3), *png;
	float cx = (float)w / 2, cy = (float)h / 2, r = 0.35f * (float)h;
	float line = (float)h / 120.0f;		/* the smile's thickness */

	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++) {
			uint8_t *p = px + ((size_t)y * w + x) * 3;
			float dx = (float)x - cx, dy = (float)y - cy;
			float d = sqrtf(dx * dx + dy * dy);
			/* the smile: an arc of radius r/2 under the centre */
			float da = fabsf(sqrtf(dx * dx + (dy + 0.05f * h) *
			    (dy + 0.05f * h)) - 0.5f * r);
			float ex = fabsf(dx) - 0.35f * r, ey = dy + 0.3f * r;
			const uint8_t *c;
			static const uint8_t bg[3] = { 200, 205, 215 },
			    skin[3] = { 230, 180, 150 }, dark[3] = { 175, 125, 115 };

			if (d > r)
				c = bg;
			else if ((da < line && dy > 0.2f * r) ||
			    ex * ex + ey * ey < (0.06f * r) * (0.06f * r))
				c = dark;
			else
				c = skin;
			memcpy(p, c, 3);
		}
	png = png_of(px, w, h, len);
	free(px);
	return png;
}

/* The smallest luma in a square of half-size rad around (x, y). */
float
min_luma(const struct image *im, uint32_t x, uint32_t y, uint32_t rad)
{
	float m = 255;

	for (uint32_t j = y - rad; j <= y + rad; j++)
		for (uint32_t i = x - rad; i <= x + rad; i++)
			if (luma_at(im, i, j) < m)
				m = luma_at(im, i, j);
	return m;
}


int
modelkit_main(const char *name, TCase *tc)
{
	Suite *s = suite_create(name);
	SRunner *sr;
	int failed;

	log_init();
	log_level = LOG_ERR;
	tcase_add_checked_fixture(tc, setup, teardown);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
