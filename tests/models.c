/*
 * models.c - the bundled cartoon and style models, through real worker
 * processes, on synthetic images made here: golden properties with
 * tolerances, and awkward inputs that must give a clean error or a
 * correct result.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

#include "image.h"
#include "log.h"
#include "pool.h"
#include "testimg.h"

static char dir[64];
static struct pool *pool;

static void
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

static void
teardown(void)
{
	char cmd[128];

	pool_free(pool);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)!system(cmd);
}

/* Encode pixels (w x h RGB) as PNG bytes. */
static uint8_t *
png_of(const uint8_t *px, uint32_t w, uint32_t h, size_t *len)
{
	struct image img = { w, h, 3, (uint8_t *)px };
	uint8_t *out;
	char err[128];

	ck_assert_int_eq(image_encode_png(&img, &out, len, err, sizeof(err)),
	    0);
	return out;
}

static int
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
	uint8_t *png = NULL;
	size_t len = 0;
	char plugin[64];
	int rc;

	rc = pool_transform(pool, &job, &png, &len, plugin, sizeof(plugin),
	    err, errlen);
	if (rc == 0) {
		char derr[128];

		ck_assert_int_eq(image_decode(png, len, 100000000, out, derr,
		    sizeof(derr)), 0);
		free(png);
	}
	return rc;
}

static float
luma_at(const struct image *im, uint32_t x, uint32_t y)
{
	const uint8_t *p = im->pixels + ((size_t)y * im->width + x) *
	    im->channels;

	return 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
}

/* Mean and std of luma over a rectangle. */
static void
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
	*sd = (float)sqrt(s2 / n - (s / n) * (s / n));
}

/* Two flat halves with deterministic noise: dark blue | light sand. */
static uint8_t *
halves(uint32_t w, uint32_t h, size_t *len)
{
	uint8_t *px = malloc((size_t)w * h * 3), *png;

	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++) {
			uint8_t *p = px + ((size_t)y * w + x) * 3;
			uint32_t hsh = (x * 73856093u) ^ (y * 19349663u);
			int n = (int)(hsh % 41) - 20;		/* +-20 */
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

START_TEST(cartoon_flattens_regions_and_draws_edges)
{
	size_t len;
	uint8_t *in = halves(400, 300, &len);
	struct image src, out;
	float m_in, sd_in, m_out, sd_out, darkest = 255;
	char err[512];

	ck_assert_int_eq(image_decode(in, len, 1000000, &src, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(run("cartoon", "", "", in, len, NULL, 0, &out, err,
	    sizeof(err)), 0);
	ck_assert_uint_eq(out.width, 400);
	ck_assert_uint_eq(out.height, 300);
	/* flat regions flatten: the noise is mostly gone, the colour kept */
	region_stats(&src, 20, 20, 160, 280, &m_in, &sd_in);
	region_stats(&out, 20, 20, 160, 280, &m_out, &sd_out);
	ck_assert_msg(sd_out < sd_in * 0.3f, "left noise %.1f -> %.1f", sd_in,
	    sd_out);
	ck_assert_msg(fabsf(m_out - m_in) < 25, "left mean %.1f -> %.1f", m_in,
	    m_out);
	region_stats(&src, 240, 20, 380, 280, &m_in, &sd_in);
	region_stats(&out, 240, 20, 380, 280, &m_out, &sd_out);
	ck_assert_msg(sd_out < sd_in * 0.3f, "right noise %.1f -> %.1f", sd_in,
	    sd_out);
	/* edges become dark lines: along the boundary, darker than both
	 * sides' flattened colours */
	for (uint32_t y = 50; y < 250; y += 10) {
		float row_min = 255;

		for (uint32_t x = 195; x <= 205; x++)
			if (luma_at(&out, x, y) < row_min)
				row_min = luma_at(&out, x, y);
		if (row_min > darkest)
			continue;
		darkest = row_min;
		ck_assert_msg(row_min < 45, "no dark line at row %u (min %.0f)",
		    y, row_min);
	}
	image_free(&src);
	image_free(&out);
	free(in);
}
END_TEST

/*
 * A cartoon face drawn at any size: a light background, a skin-coloured
 * disk, two eyes and a thin smile, in proportion to the height, so the
 * same scene can be made at 0.25 MP and 4 MP.  The eyes and the smile are
 * only a little darker than the skin, as lips are in a photo: smoothing
 * that flattens skin flattens them too, unless the lines keep them.
 */
static uint8_t *
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
static float
min_luma(const struct image *im, uint32_t x, uint32_t y, uint32_t rad)
{
	float m = 255;

	for (uint32_t j = y - rad; j <= y + rad; j++)
		for (uint32_t i = x - rad; i <= x + rad; i++)
			if (luma_at(im, i, j) < m)
				m = luma_at(im, i, j);
	return m;
}

START_TEST(cartoon_keeps_the_smile_at_every_scale)
{
	static const uint32_t sizes[] = { 400, 1600 };
	struct image out[2];
	double diff = 0;

	for (int k = 0; k < 2; k++) {
		uint32_t h = sizes[k], w = h * 4 / 3;
		size_t len;
		uint8_t *in = face(w, h, &len);
		char err[512];
		float r = 0.35f * (float)h;

		ck_assert_int_eq(run("cartoon", "", "", in, len, NULL, 0, &out[k],
		    err, sizeof(err)), 0);
		free(in);
		/* the smile's lowest point is a dark line, and an eye is
		 * outlined */
		ck_assert_msg(min_luma(&out[k], w / 2, (uint32_t)((float)h / 2 -
		    0.05f * (float)h + 0.5f * r), h / 100) < 80,
		    "%ux%u: the smile is gone", w, h);
		ck_assert_msg(min_luma(&out[k], (uint32_t)((float)w / 2 - 0.35f *
		    r), (uint32_t)((float)h / 2 - 0.3f * r), h / 30) < 80,
		    "%ux%u: an eye has no outline", w, h);
	}
	/* the same look at both sizes: the big one, shrunk 4x, is close to
	 * the small one */
	for (uint32_t y = 0; y < out[0].height; y++)
		for (uint32_t x = 0; x < out[0].width; x++) {
			float big = 0;

			for (uint32_t j = 0; j < 4; j++)
				for (uint32_t i = 0; i < 4; i++)
					big += luma_at(&out[1], 4 * x + i,
					    4 * y + j);
			diff += fabs(big / 16 - luma_at(&out[0], x, y));
		}
	diff /= (double)out[0].width * out[0].height;
	ck_assert_msg(diff < 10, "400 px and 1600 px differ by %.1f levels of "
	    "luma on average", diff);
	image_free(&out[0]);
	image_free(&out[1]);
}
END_TEST

START_TEST(cartoon_prompt_and_aspect)
{
	size_t len;
	uint8_t *in = halves(400, 300, &len);
	struct image bold, soft;
	char err[512];

	ck_assert_int_eq(run("cartoon", "bold comic style", "16:9", in, len,
	    NULL, 0, &bold, err, sizeof(err)), 0);
	ck_assert_uint_eq(bold.width, 400);
	ck_assert_uint_eq(bold.height, 225);
	ck_assert_int_eq(run("cartoon", "soft pastel", "1:1", in, len, NULL, 0,
	    &soft, err, sizeof(err)), 0);
	ck_assert_uint_eq(soft.width, 300);
	ck_assert_uint_eq(soft.height, 300);
	/* bold lines are darker than soft ones at the boundary */
	ck_assert_float_lt(luma_at(&bold, 200, 112), luma_at(&soft, 150, 150) +
	    1);
	image_free(&bold);
	image_free(&soft);
	free(in);
}
END_TEST

/* Lab a* mean of an image, via the same maths in reverse-free form:
 * redness as R - (G + B) / 2 is enough to see the transfer's direction. */
static float
redness(const struct image *im)
{
	double s = 0;

	for (size_t i = 0; i < (size_t)im->width * im->height; i++) {
		const uint8_t *p = im->pixels + i * im->channels;

		s += p[0] - (p[1] + p[2]) / 2.0;
	}
	return (float)(s / ((double)im->width * im->height));
}

START_TEST(style_transfers_reference_colours)
{
	uint32_t w = 300, h = 200;
	uint8_t *px = malloc((size_t)w * h * 3), *in, *ref;
	size_t len, rlen;
	struct image src, out, r;
	float m0, sd0, m1, sd1, mr, sdr;
	char err[512];

	/* the photo: a cool grey-blue gradient; the reference: warm reds */
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++) {
			uint8_t *p = px + ((size_t)y * w + x) * 3;

			p[0] = (uint8_t)(90 + x / 6);
			p[1] = (uint8_t)(110 + y / 5);
			p[2] = (uint8_t)(150 + x / 10);
		}
	in = png_of(px, w, h, &len);
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++) {
			uint8_t *p = px + ((size_t)y * w + x) * 3;

			p[0] = (uint8_t)(150 + (x * 7 + y * 3) % 100);
			p[1] = (uint8_t)(30 + (x * 5) % 60);
			p[2] = (uint8_t)(20 + (y * 3) % 50);
		}
	ref = png_of(px, w, h, &rlen);
	free(px);
	ck_assert_int_eq(image_decode(in, len, 1000000, &src, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(image_decode(ref, rlen, 1000000, &r, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(run("style", "oil painting", "", in, len, ref, rlen,
	    &out, err, sizeof(err)), 0);
	/* the mean colour moves at least half way to the reference's */
	ck_assert_msg(fabsf(redness(&out) - redness(&r)) <
	    0.5f * fabsf(redness(&src) - redness(&r)),
	    "redness %.1f -> %.1f (reference %.1f)", redness(&src),
	    redness(&out), redness(&r));
	/* and the spread of luma toward the reference's */
	region_stats(&src, 0, 0, w, h, &m0, &sd0);
	region_stats(&out, 0, 0, w, h, &m1, &sd1);
	region_stats(&r, 0, 0, w, h, &mr, &sdr);
	ck_assert_msg(fabsf(sd1 - sdr) < fabsf(sd0 - sdr),
	    "luma spread %.1f -> %.1f (reference %.1f)", sd0, sd1, sdr);
	image_free(&src);
	image_free(&out);
	image_free(&r);
	free(in);
	free(ref);
}
END_TEST

START_TEST(style_presets)
{
	uint8_t *jpg;
	size_t len;
	struct image src, pencil, wc, oil;
	float m0, sd0, m1, sd1;
	char err[512];

	testimg_jpeg(320, 240, 1, &jpg, &len);
	ck_assert_int_eq(image_decode(jpg, len, 1000000, &src, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(run("style", "a pencil sketch please", "", jpg, len,
	    NULL, 0, &pencil, err, sizeof(err)), 0);
	for (size_t i = 0; i < (size_t)pencil.width * pencil.height; i++) {
		const uint8_t *p = pencil.pixels + i * 3;

		ck_assert_msg(p[0] == p[1] && p[1] == p[2], "pencil is not "
		    "grey at %zu", i);
	}
	ck_assert_int_eq(run("style", "Watercolour", "", jpg, len, NULL, 0,
	    &wc, err, sizeof(err)), 0);
	region_stats(&src, 0, 0, 320, 240, &m0, &sd0);
	region_stats(&wc, 0, 0, 320, 240, &m1, &sd1);
	ck_assert_msg(m1 > m0 + 5, "watercolour not lighter: %.1f -> %.1f",
	    m0, m1);
	/* no recognised words: the default preset (oil) */
	ck_assert_int_eq(run("style", "", "", jpg, len, NULL, 0, &oil, err,
	    sizeof(err)), 0);
	ck_assert_uint_eq(oil.width, 320);
	image_free(&src);
	image_free(&pencil);
	image_free(&wc);
	image_free(&oil);
	free(jpg);
}
END_TEST

/* ---- awkward inputs ---- */

static uint8_t *
jpeg_in(uint32_t w, uint32_t h, J_COLOR_SPACE cs, int comps, size_t *len)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr jerr;
	unsigned long n = 0;
	unsigned char *buf = NULL;
	uint8_t *row = malloc((size_t)w * comps), *out;

	c.err = jpeg_std_error(&jerr);
	jpeg_create_compress(&c);
	jpeg_mem_dest(&c, &buf, &n);
	c.image_width = w;
	c.image_height = h;
	c.input_components = comps;
	c.in_color_space = cs;
	jpeg_set_defaults(&c);
	jpeg_start_compress(&c, TRUE);
	while (c.next_scanline < h) {
		JSAMPROW rp = row;

		for (uint32_t x = 0; x < w * (uint32_t)comps; x++)
			row[x] = (uint8_t)(x * 7 + c.next_scanline * 3);
		jpeg_write_scanlines(&c, &rp, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	free(row);
	out = malloc(n);
	memcpy(out, buf, n);
	free(buf);
	*len = n;
	return out;
}

static uint8_t *
palette_png(size_t *len)
{
	png_image pi;
	uint8_t idx[16 * 16], cmap[4 * 3] = { 255, 0, 0, 0, 255, 0, 0, 0, 255,
	    255, 255, 255 }, *out;
	png_alloc_size_t n = 0;

	for (int i = 0; i < 256; i++)
		idx[i] = (uint8_t)(i % 4);
	memset(&pi, 0, sizeof(pi));
	pi.version = PNG_IMAGE_VERSION;
	pi.width = 16;
	pi.height = 16;
	pi.format = PNG_FORMAT_RGB_COLORMAP;
	pi.colormap_entries = 4;
	png_image_write_to_memory(&pi, NULL, &n, 0, idx, 0, cmap);
	out = malloc(n);
	ck_assert(png_image_write_to_memory(&pi, out, &n, 0, idx, 0, cmap));
	*len = n;
	return out;
}

START_TEST(awkward_inputs_give_results_or_clean_errors)
{
	static const char *const models[] = { "cartoon", "style" };
	struct image out;
	char err[512];
	uint8_t *b;
	size_t len;

	for (int m = 0; m < 2; m++) {
		const char *model = models[m];

		b = jpeg_in(40, 30, JCS_CMYK, 4, &len);
		ck_assert_int_eq(run(model, "", "", b, len, NULL, 0, &out, err,
		    sizeof(err)), 0);
		ck_assert_uint_eq(out.width, 40);
		image_free(&out);
		free(b);

		b = jpeg_in(40, 30, JCS_GRAYSCALE, 1, &len);
		ck_assert_int_eq(run(model, "", "", b, len, NULL, 0, &out, err,
		    sizeof(err)), 0);
		ck_assert_uint_eq(out.channels, 3);
		image_free(&out);
		/* truncated: a clean error */
		ck_assert_int_eq(run(model, "", "", b, len / 2, NULL, 0, &out,
		    err, sizeof(err)), -EINVAL);
		ck_assert_ptr_nonnull(strstr(err, "not a valid JPEG/PNG"));
		free(b);

		testimg_png(24, 16, 4, 16, &b, &len);	/* 16-bit RGBA */
		ck_assert_int_eq(run(model, "", "", b, len, NULL, 0, &out, err,
		    sizeof(err)), 0);
		ck_assert_uint_eq(out.channels, 4);
		image_free(&out);
		free(b);

		b = palette_png(&len);
		ck_assert_int_eq(run(model, "", "", b, len, NULL, 0, &out, err,
		    sizeof(err)), 0);
		ck_assert_uint_eq(out.width, 16);
		image_free(&out);
		free(b);

		testimg_png(1, 1, 3, 8, &b, &len);	/* 1x1 */
		ck_assert_int_eq(run(model, "", "", b, len, NULL, 0, &out, err,
		    sizeof(err)), 0);
		ck_assert_uint_eq(out.width, 1);
		image_free(&out);
		/* zero-sized: corrupt the IHDR width; libpng refuses it */
		b[16] = b[17] = b[18] = b[19] = 0;
		ck_assert_int_eq(run(model, "", "", b, len, NULL, 0, &out, err,
		    sizeof(err)), -EINVAL);
		free(b);

		/* over the pool's 4 MP limit */
		b = jpeg_in(2100, 2000, JCS_RGB, 3, &len);
		ck_assert_int_eq(run(model, "", "", b, len, NULL, 0, &out, err,
		    sizeof(err)), -E2BIG);
		ck_assert_ptr_nonnull(strstr(err, "too large (2100x2000"));
		free(b);
	}
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("models");
	TCase *tc = tcase_create("bundled");
	SRunner *sr;
	int failed;

	log_init();
	log_level = LOG_ERR;
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, cartoon_flattens_regions_and_draws_edges);
	tcase_add_test(tc, cartoon_prompt_and_aspect);
	tcase_add_test(tc, cartoon_keeps_the_smile_at_every_scale);
	tcase_add_test(tc, style_transfers_reference_colours);
	tcase_add_test(tc, style_presets);
	tcase_add_test(tc, awkward_inputs_give_results_or_clean_errors);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
