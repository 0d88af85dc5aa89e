/*
 * models.c - the bundled cartoon model, through real worker processes,
 * on synthetic images made here: golden properties with tolerances; and
 * awkward inputs, for cartoon and style, that must give a clean error or
 * a correct result.  The style model's looks are in looks.c.
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
#include "modelkit.h"
#include "testimg.h"

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

START_TEST(cartoon_keeps_the_smile_at_every_scale)
{
	static const uint32_t sizes[] = { 400, 1600 };

	/* that both sizes give the same look is checked with the other
	 * looks in looks.c */
	for (int k = 0; k < 2; k++) {
		uint32_t h = sizes[k], w = h * 4 / 3;
		size_t len;
		uint8_t *in = face(w, h, &len);
		struct image out;
		char err[512];
		float r = 0.35f * (float)h;

		ck_assert_int_eq(run("cartoon", "", "", in, len, NULL, 0, &out,
		    err, sizeof(err)), 0);
		free(in);
		/* the smile's lowest point is a dark line, and an eye is
		 * outlined */
		ck_assert_msg(min_luma(&out, w / 2, (uint32_t)((float)h / 2 -
		    0.05f * (float)h + 0.5f * r), h / 100) < 80,
		    "%ux%u: the smile is gone", w, h);
		ck_assert_msg(min_luma(&out, (uint32_t)((float)w / 2 - 0.35f *
		    r), (uint32_t)((float)h / 2 - 0.3f * r), h / 30) < 80,
		    "%ux%u: an eye has no outline", w, h);
		image_free(&out);
	}
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
		    err, sizeof(err)), POOL_BAD_INPUT);
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
		    sizeof(err)), POOL_BAD_INPUT);
		free(b);

		/* over the pool's 4 MP limit */
		b = jpeg_in(2100, 2000, JCS_RGB, 3, &len);
		ck_assert_int_eq(run(model, "", "", b, len, NULL, 0, &out, err,
		    sizeof(err)), POOL_TOO_LARGE);
		ck_assert_ptr_nonnull(strstr(err, "too large (2100x2000"));
		free(b);
	}
}
END_TEST

int
main(void)
{
	TCase *tc = tcase_create("bundled");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, cartoon_flattens_regions_and_draws_edges);
	tcase_add_test(tc, cartoon_prompt_and_aspect);
	tcase_add_test(tc, cartoon_keeps_the_smile_at_every_scale);
	tcase_add_test(tc, awkward_inputs_give_results_or_clean_errors);
	return modelkit_main("models", tc);
}
