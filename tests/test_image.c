/*
 * test_image.c - decoding real JPEG/PNG bytes, EXIF orientation, the pixel
 * limit, corrupt input, and PNG encoding.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "suites.h"
#include "testimg.h"

static char err[512];

static bool
is_red(const struct image *img, uint32_t x, uint32_t y)
{
	const uint8_t *p = img->pixels + ((size_t)y * img->width + x) *
	    img->channels;

	return p[0] > 180 && p[1] < 80 && p[2] < 80;
}

START_TEST(jpeg_decodes)
{
	uint8_t *jpg;
	size_t len;
	struct image img;

	testimg_jpeg(40, 30, 0, &jpg, &len);
	ck_assert_int_eq(image_sniff(jpg, len), IMAGE_JPEG);
	ck_assert_int_eq(image_decode(jpg, len, 1000000, &img, err,
	    sizeof(err)), 0);
	ck_assert_uint_eq(img.width, 40);
	ck_assert_uint_eq(img.height, 30);
	ck_assert_uint_eq(img.channels, 3);
	ck_assert(is_red(&img, 5, 5));
	ck_assert(!is_red(&img, 35, 5));
	image_free(&img);
	free(jpg);
}
END_TEST

/* Where the source's red top-left quadrant must be after orientation o:
 * 0 top-left, 1 top-right, 2 bottom-right, 3 bottom-left. */
static const int red_corner[9] = { 0, 0, 1, 2, 3, 0, 1, 2, 3 };

START_TEST(every_exif_orientation_ends_upright)
{
	int o = _i;
	uint8_t *jpg;
	size_t len;
	struct image img;
	uint32_t x, y;

	testimg_jpeg(64, 48, o, &jpg, &len);
	ck_assert_int_eq(image_jpeg_orientation(jpg, len), o);
	ck_assert_int_eq(image_decode(jpg, len, 1000000, &img, err,
	    sizeof(err)), 0);
	ck_assert_uint_eq(img.width, o >= 5 ? 48 : 64);
	ck_assert_uint_eq(img.height, o >= 5 ? 64 : 48);
	x = red_corner[o] == 1 || red_corner[o] == 2 ? img.width - 4 : 3;
	y = red_corner[o] >= 2 ? img.height - 4 : 3;
	ck_assert_msg(is_red(&img, x, y), "orientation %d: red not at "
	    "corner %d", o, red_corner[o]);
	image_free(&img);
	free(jpg);
}
END_TEST

START_TEST(pixel_limit_is_checked_before_decoding)
{
	uint8_t *jpg, *png;
	size_t len, plen;
	struct image img;

	testimg_jpeg(100, 100, 0, &jpg, &len);
	ck_assert_int_eq(image_decode(jpg, len, 9999, &img, err,
	    sizeof(err)), -E2BIG);
	ck_assert_ptr_nonnull(strstr(err, "too large (100x100"));
	ck_assert_ptr_null(img.pixels);
	testimg_png(100, 100, 3, 8, &png, &plen);
	ck_assert_int_eq(image_decode(png, plen, 9999, &img, err,
	    sizeof(err)), -E2BIG);
	free(jpg);
	free(png);
}
END_TEST

START_TEST(huge_header_is_refused_cheaply)
{
	/* A PNG header claiming 60000 x 60000: refused from the header. */
	uint8_t *png;
	size_t len;
	struct image img;

	testimg_png(1, 1, 3, 8, &png, &len);
	/* IHDR width/height at offsets 16 and 20, big-endian; the CRC no
	 * longer matches, which libpng reports as an error: either way no
	 * pixels are allocated */
	png[16] = 0; png[17] = 0; png[18] = 0xea; png[19] = 0x60;
	png[20] = 0; png[21] = 0; png[22] = 0xea; png[23] = 0x60;
	ck_assert_int_lt(image_decode(png, len, 50000000, &img, err,
	    sizeof(err)), 0);
	ck_assert_ptr_null(img.pixels);
	free(png);
}
END_TEST

START_TEST(corrupt_inputs_are_clean_errors)
{
	static const uint8_t text[] = "hello, not an image";
	uint8_t *jpg, *png;
	size_t len, plen;
	struct image img;

	ck_assert_int_eq(image_decode(text, sizeof(text), 1000000, &img, err,
	    sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "input image is not a valid JPEG/PNG");
	ck_assert_int_eq(image_decode(text, 0, 1000000, &img, err,
	    sizeof(err)), -EINVAL);

	testimg_jpeg(64, 64, 0, &jpg, &len);
	for (size_t cut = 3; cut < len; cut += len / 7) {
		ck_assert_msg(image_decode(jpg, cut, 1000000, &img, err,
		    sizeof(err)) == -EINVAL, "JPEG cut at %zu decoded", cut);
		ck_assert_ptr_nonnull(strstr(err, "not a valid JPEG/PNG"));
	}
	/* flipped bytes in the entropy-coded data: JPEG has no checksum,
	 * so this may decode to noise; it must never crash, and must give
	 * either a clean error or an image of the declared size */
	for (size_t i = len / 2; i < len / 2 + 40; i++)
		jpg[i] ^= 0x5a;
	if (image_decode(jpg, len, 1000000, &img, err, sizeof(err)) == 0) {
		ck_assert_uint_eq(img.width, 64);
		ck_assert_uint_eq(img.height, 64);
		image_free(&img);
	} else {
		ck_assert_ptr_nonnull(strstr(err, "not a valid JPEG/PNG"));
	}
	free(jpg);

	testimg_png(32, 32, 3, 8, &png, &plen);
	ck_assert_int_eq(image_decode(png, plen / 2, 1000000, &img, err,
	    sizeof(err)), -EINVAL);
	free(png);
}
END_TEST

START_TEST(png_variants_decode)
{
	uint8_t *png;
	size_t len;
	struct image img;

	testimg_png(20, 10, 4, 8, &png, &len);
	ck_assert_int_eq(image_decode(png, len, 1000000, &img, err,
	    sizeof(err)), 0);
	ck_assert_uint_eq(img.channels, 4);
	ck_assert(is_red(&img, 1, 1));
	image_free(&img);
	free(png);

	testimg_png(20, 10, 3, 16, &png, &len);
	ck_assert_int_eq(image_decode(png, len, 1000000, &img, err,
	    sizeof(err)), 0);
	ck_assert_uint_eq(img.channels, 3);
	ck_assert_uint_eq(img.width, 20);
	image_free(&img);
	free(png);
}
END_TEST

START_TEST(png_encode_round_trips)
{
	struct image img = { 3, 2, 3, NULL }, back;
	uint8_t *png;
	size_t len;

	img.pixels = malloc(18);
	for (int i = 0; i < 18; i++)
		img.pixels[i] = (uint8_t)(i * 14);
	ck_assert_int_eq(image_encode_png(&img, &png, &len, err, sizeof(err)),
	    0);
	ck_assert_int_eq(image_decode(png, len, 100, &back, err, sizeof(err)),
	    0);
	ck_assert_uint_eq(back.width, 3);
	ck_assert_uint_eq(back.height, 2);
	ck_assert_int_eq(memcmp(back.pixels, img.pixels, 18), 0);
	image_free(&back);
	image_free(&img);
	free(png);
}
END_TEST

START_TEST(resampling)
{
	struct image img = { 4, 2, 3, NULL };
	uint8_t *jpg;
	size_t len;

	/* shrinking averages areas exactly: 4x2 halves -> 2x1 */
	img.pixels = malloc(24);
	for (int i = 0; i < 8; i++) {
		img.pixels[i * 3] = (uint8_t)(i < 4 ? (i % 2 ? 200 : 100) : 0);
		img.pixels[i * 3 + 1] = 50;
		img.pixels[i * 3 + 2] = (uint8_t)(i * 10);
	}
	ck_assert_int_eq(image_resize(&img, 2, 1), 0);
	ck_assert_uint_eq(img.width, 2);
	ck_assert_uint_eq(img.height, 1);
	ck_assert_int_eq(img.pixels[0], 75);	/* (100+200+0+0)/4 */
	ck_assert_int_eq(img.pixels[1], 50);
	ck_assert_int_eq(img.pixels[2], 25);	/* (0+10+40+50)/4 */
	/* growing interpolates and keeps flat colour flat */
	ck_assert_int_eq(image_resize(&img, 9, 5), 0);
	ck_assert_int_eq(img.pixels[1], 50);
	ck_assert_int_eq(img.pixels[(4 * 9 + 8) * 3 + 1], 50);
	ck_assert_int_eq(image_resize(&img, 0, 5), -EINVAL);
	ck_assert_int_eq(image_resize(&img, 70000, 5), -EINVAL);
	image_free(&img);

	/* fitting keeps the aspect ratio and the picture */
	testimg_jpeg(400, 300, 0, &jpg, &len);
	ck_assert_int_eq(image_decode(jpg, len, 1000000, &img, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(image_fit(&img, 12000), 0);
	ck_assert_uint_eq(img.width, 126);
	ck_assert_uint_eq(img.height, 94);
	ck_assert_uint_le((uint64_t)img.width * img.height, 12000);
	ck_assert(is_red(&img, 10, 10));
	ck_assert(!is_red(&img, 110, 10));
	ck_assert_int_eq(image_fit(&img, 1000000), 0);	/* already small */
	ck_assert_uint_eq(img.width, 126);
	image_free(&img);
	free(jpg);
}
END_TEST

Suite *
image_suite(void)
{
	Suite *s = suite_create("image");
	TCase *tc = tcase_create("codec");

	tcase_add_test(tc, jpeg_decodes);
	tcase_add_loop_test(tc, every_exif_orientation_ends_upright, 1, 9);
	tcase_add_test(tc, pixel_limit_is_checked_before_decoding);
	tcase_add_test(tc, huge_header_is_refused_cheaply);
	tcase_add_test(tc, corrupt_inputs_are_clean_errors);
	tcase_add_test(tc, png_variants_decode);
	tcase_add_test(tc, png_encode_round_trips);
	tcase_add_test(tc, resampling);
	suite_add_tcase(s, tc);
	return s;
}
