/*
 * looks.c - the bundled looks (cartoon; the style model's oil, watercolour
 * and pencil) through real worker processes, on synthetic scenes made
 * here.  Behaviour, not pixels: each look is the same at two scales and
 * keeps a face's smile, and each style look shows what makes it that look
 * (strokes along the structure; washes with darkened edges on textured
 * paper; lines on clean paper).  The cartoon's own checks are in
 * models.c.
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "modelkit.h"
#include "testimg.h"

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

/* The spread (std) of luma over the means of b x b blocks. */
static float
block_sd(const struct image *im, uint32_t b)
{
	double s = 0, s2 = 0;
	long n = 0;

	for (uint32_t y = 0; y + b <= im->height; y += b)
		for (uint32_t x = 0; x + b <= im->width; x += b) {
			float m, sd;

			region_stats(im, x, y, x + b, y + b, &m, &sd);
			s += m;
			s2 += (double)m * m;
			n++;
		}
	return (float)sqrt(fmax(0, s2 / n - (s / n) * (s / n)));
}

START_TEST(style_transfers_reference_colours)
{
	uint32_t w = 300, h = 200;
	uint8_t *px = malloc((size_t)w * h * 3), *in, *ref;
	size_t len, rlen;
	struct image src, out, r;
	float m0, sd0, sd1, mr, sdr;
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
	/* and the spread of luma toward the reference's: the result's is
	 * taken over 10 x 10 block means, so the brush strokes' own texture
	 * does not count as spread of the photo's tones */
	region_stats(&src, 0, 0, w, h, &m0, &sd0);
	sd1 = block_sd(&out, 10);
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


/* The mean luma of the b x b block at block coordinates (bx, by). */
static float
block_mean(const struct image *im, uint32_t b, uint32_t bx, uint32_t by)
{
	float m, sd;

	region_stats(im, bx * b, by * b, bx * b + b, by * b + b, &m, &sd);
	return m;
}

/*
 * The same face at 400 x 300 and 1600 x 1200 through each look: the big
 * one, seen at the small one's size, is the same picture (block means
 * agree), its texture is as fine relative to the picture (the spread
 * within blocks agrees), and in both the smile is still darker than the
 * skin around it.
 */
START_TEST(each_look_is_the_same_at_two_scales)
{
	static const char *const models[] = { "cartoon", "style", "style",
	    "style" };
	static const char *const prompts[] = { "", "oil", "watercolor",
	    "pencil" };
	const char *model = models[_i], *prompt = _i ? prompts[_i] : "cartoon";
	struct image out[2];
	float tex[2];

	for (int k = 0; k < 2; k++) {
		uint32_t h = k ? 1200 : 300, w = h * 4 / 3;
		float r = 0.35f * (float)h, skin, sd;
		size_t len;
		uint8_t *in = face(w, h, &len);
		char err[512];
		double sum = 0;
		uint32_t b = w / 40, n = 0;

		ck_assert_int_eq(run(model, prompts[_i], "", in, len, NULL, 0,
		    &out[k], err, sizeof(err)), 0);
		free(in);
		ck_assert_uint_eq(out[k].width, w);
		/* the smile's lowest point against the cheek beside it */
		region_stats(&out[k], w / 2 - (uint32_t)(0.3f * r), h / 2,
		    w / 2 - (uint32_t)(0.1f * r), h / 2 + (uint32_t)(0.15f * r),
		    &skin, &sd);
		ck_assert_msg(min_luma(&out[k], w / 2, (uint32_t)((float)h / 2 -
		    0.05f * (float)h + 0.5f * r), h / 60) < skin - 25,
		    "%s at %ux%u: the smile is gone (skin %.0f)", prompt, w, h,
		    skin);
		/* texture: the spread within blocks of 1/40 of the width */
		for (uint32_t by = 0; by < h / b; by++)
			for (uint32_t bx = 0; bx < 40; bx++) {
				float m;

				region_stats(&out[k], bx * b, by * b, bx * b + b,
				    by * b + b, &m, &sd);
				sum += sd;
				n++;
			}
		tex[k] = (float)(sum / n);
	}
	{
		double diff = 0;
		uint32_t n = 0;

		for (uint32_t by = 0; by < 30; by++)
			for (uint32_t bx = 0; bx < 40; bx++, n++)
				diff += fabsf(block_mean(&out[0], 10, bx, by) -
				    block_mean(&out[1], 40, bx, by));
		diff /= n;
		ck_assert_msg(diff < 10, "%s: 400 px and 1600 px differ by %.1f "
		    "levels of luma in 1/40 blocks", prompt, diff);
	}
	ck_assert_msg(tex[1] < 2.0f * tex[0] + 1 && tex[0] < 2.0f * tex[1] + 1,
	    "%s: texture within 1/40 blocks %.1f at 400 px, %.1f at 1600 px",
	    prompt, tex[0], tex[1]);
	image_free(&out[0]);
	image_free(&out[1]);
}
END_TEST

/*
 * Watercolour on two flat, noisy halves: no photo noise, but paper
 * texture where there is no paint; a darkened wet edge along the border
 * of the washes; more grain where there is more pigment.
 */
START_TEST(watercolor_lays_washes_on_paper)
{
	size_t len;
	uint8_t *in = halves(600, 400, &len);
	struct image src, out;
	float m_in, sd_in, m_dark, sd_dark, m_light, sd_light, rim = 0;
	char err[512];

	ck_assert_int_eq(image_decode(in, len, 1000000, &src, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(run("style", "watercolour", "", in, len, NULL, 0,
	    &out, err, sizeof(err)), 0);
	region_stats(&src, 380, 40, 560, 360, &m_in, &sd_in);
	region_stats(&out, 380, 40, 560, 360, &m_light, &sd_light);
	region_stats(&out, 40, 40, 220, 360, &m_dark, &sd_dark);
	/* the photo's noise is gone, the paper's texture is there */
	ck_assert_msg(sd_light < 0.5f * sd_in, "light wash keeps the noise: "
	    "%.1f -> %.1f", sd_in, sd_light);
	ck_assert_msg(sd_light > 0.8f, "no paper texture (spread %.2f)",
	    sd_light);
	/* pigment granulates: the dark wash is grainier than the light */
	ck_assert_msg(sd_dark > sd_light, "no granulation: dark %.2f, light "
	    "%.2f", sd_dark, sd_light);
	/* a wet edge: just inside the light wash, along the border (which
	 * wobbles a pixel or two), darker than the wash further in */
	for (uint32_t x = 302; x < 316; x++) {
		float m, sd;

		region_stats(&out, x, 60, x + 1, 340, &m, &sd);
		rim = x == 302 || m < rim ? m : rim;
	}
	ck_assert_msg(rim < m_light - 6, "no darkened edge: %.1f at the "
	    "border, %.1f inside", rim, m_light);
	image_free(&src);
	image_free(&out);
	free(in);
}
END_TEST

/* Horizontal or vertical stripes, a little noisy. */
static uint8_t *
stripes(uint32_t w, uint32_t h, int vertical, size_t *len)
{
	uint8_t *px = malloc((size_t)w * h * 3), *png;

	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++) {
			uint32_t t = vertical ? x : y;
			uint32_t hsh = (x * 73856093u) ^ (y * 19349663u);
			int v = (t / 24) % 2 ? 190 : 90, c;

			v += (int)(hsh % 21) - 10;
			c = v < 0 ? 0 : v > 255 ? 255 : v;
			px[((size_t)y * w + x) * 3] = (uint8_t)c;
			px[((size_t)y * w + x) * 3 + 1] = (uint8_t)(c * 3 / 4);
			px[((size_t)y * w + x) * 3 + 2] = (uint8_t)(c / 2);
		}
	png = png_of(px, w, h, len);
	free(px);
	return png;
}

/* Mean |d luma| along x and along y inside the stripes (their borders,
 * every 24 px, left out). */
static void
grain_direction(const struct image *im, int vertical, double *gx,
    double *gy)
{
	long n = 0;

	*gx = *gy = 0;
	for (uint32_t y = 4; y + 4 < im->height; y++)
		for (uint32_t x = 4; x + 4 < im->width; x++) {
			uint32_t t = (vertical ? x : y) % 24;

			if (t < 5 || t > 18)
				continue;
			*gx += fabsf(luma_at(im, x + 1, y) - luma_at(im, x, y));
			*gy += fabsf(luma_at(im, x, y + 1) - luma_at(im, x, y));
			n++;
		}
	*gx /= n;
	*gy /= n;
}

/*
 * Oil: the brush strokes run along the image's structure.  On stripes the
 * paint's streaks and ridges lie along the stripes, so luma changes more
 * across them than along them; turn the stripes and the strokes turn.
 */
START_TEST(oil_strokes_follow_the_structure)
{
	for (int vertical = 0; vertical < 2; vertical++) {
		size_t len;
		uint8_t *in = stripes(480, 480, vertical, &len);
		struct image out;
		double gx, gy, along, across;
		char err[512];

		ck_assert_int_eq(run("style", "oil painting", "", in, len, NULL,
		    0, &out, err, sizeof(err)), 0);
		grain_direction(&out, vertical, &gx, &gy);
		along = vertical ? gy : gx;
		across = vertical ? gx : gy;
		ck_assert_msg(across > 1.3 * along, "%s stripes: luma changes "
		    "%.2f across them, %.2f along", vertical ? "vertical" :
		    "horizontal", across, along);
		image_free(&out);
		free(in);
	}
}
END_TEST

/*
 * Pencil on two flat halves with a camera's noise: paper stays clean on
 * both sides (the dark half gets a smooth graphite tone, not specks), and
 * the border between them is a dark line.
 */
START_TEST(pencil_keeps_the_paper_clean)
{
	size_t len;
	uint8_t *in = halves_noisy(600, 400, 8, &len);
	struct image out;
	float m, sd;
	char err[512];

	ck_assert_int_eq(run("style", "pencil sketch", "", in, len, NULL, 0,
	    &out, err, sizeof(err)), 0);
	region_stats(&out, 380, 40, 560, 360, &m, &sd);
	ck_assert_msg(m > 225 && sd < 3, "light half: mean %.1f, spread %.1f",
	    m, sd);
	region_stats(&out, 40, 40, 220, 360, &m, &sd);
	ck_assert_msg(sd < 6, "dark half is specked: spread %.1f (mean %.1f)",
	    sd, m);
	for (uint32_t y = 60; y < 340; y += 20) {
		float row = min_luma(&out, 300, y, 6);

		ck_assert_msg(row < m - 30, "no line at row %u (%.0f)", y, row);
	}
	image_free(&out);
	free(in);
}
END_TEST

int
main(void)
{
	TCase *tc = tcase_create("style");

	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, style_transfers_reference_colours);
	tcase_add_test(tc, style_presets);
	tcase_add_loop_test(tc, each_look_is_the_same_at_two_scales, 0, 4);
	tcase_add_test(tc, watercolor_lays_washes_on_paper);
	tcase_add_test(tc, oil_strokes_follow_the_structure);
	tcase_add_test(tc, pencil_keeps_the_paper_clean);
	return modelkit_main("looks", tc);
}
