/*
 * finish.c - what happens to a result after the model, through real
 * (sandboxed) worker processes: the event's frame composited over it, a
 * cap on its size, and its renditions (sizes, formats, resolution), for
 * a local look and for a hosted model through the Gemini stand-in.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <webp/decode.h>

#include "emulator.h"
#include "gemini.h"
#include "image.h"
#include "log.h"
#include "pool.h"
#include "poolkit.h"
#include "testimg.h"

#define KEY "AIzaFinish"

/* the frame's border, the photo's colour, and a half-transparent band */
static const uint8_t BORDER[3] = { 200, 20, 160 };
static const uint8_t PHOTO[3] = { 30, 120, 220 };

static struct poolkit kit;
#define dir (kit.dir)

/* A flat w x h PNG photo of PHOTO's colour. */
static uint8_t *
flat_photo(uint32_t w, uint32_t h, size_t *len)
{
	struct image img = { w, h, 3, malloc((size_t)w * h * 3) };
	char err[128];
	uint8_t *png;

	for (size_t i = 0; i < (size_t)w * h; i++)
		memcpy(img.pixels + i * 3, PHOTO, 3);
	ck_assert_int_eq(image_encode_png(&img, &png, len, err, sizeof(err)),
	    0);
	image_free(&img);
	return png;
}

static uint8_t *
frame_png(uint32_t w, uint32_t h, size_t *len)
{
	uint8_t *png;

	testimg_frame(w, h, BORDER, &png, len);
	return png;
}

static const uint8_t *
px(const struct image *img, uint32_t x, uint32_t y)
{
	return img->pixels + ((size_t)y * img->width + x) * img->channels;
}

static void
assert_colour(const struct image *img, uint32_t x, uint32_t y,
    const uint8_t want[3], int tolerance, const char *what)
{
	const uint8_t *p = px(img, x, y);

	for (int k = 0; k < 3; k++)
		ck_assert_msg(abs(p[k] - want[k]) <= tolerance, "%s at %u,%u "
		    "of %ux%u: %d,%d,%d, not %d,%d,%d", what, x, y, img->width,
		    img->height, p[0], p[1], p[2], want[0], want[1], want[2]);
}

/* Run model on photo with the frame (NULL: none); the decoded result. */
static struct pool_result
run_framed(const char *model, const char *aspect, const uint8_t *photo,
    size_t photo_len, const uint8_t *frame, size_t frame_len,
    const struct pool_rendition *rend, size_t n_rend,
    uint64_t max_result_pixels, struct image *out)
{
	struct pool_job job = {
		.ai = true, .model = model, .prompt = "framed",
		.aspect_ratio = aspect, .session_id = "s", .event_id = "e",
		.input = photo, .input_len = photo_len,
		.frame = frame, .frame_len = frame_len,
		.renditions = rend, .n_renditions = n_rend,
		.max_result_pixels = max_result_pixels,
	};
	struct pool_result res;
	char err[256];

	pool_transform(kit.pool, &job, &res);
	ck_assert_msg(res.status == POOL_OK, "%s %s: %s", model, aspect,
	    res.message);
	ck_assert_int_eq(image_decode(res.png, res.png_len, 100000000, out,
	    err, sizeof(err)), 0);
	return res;
}

/*
 * The frame's border is the frame's colour, its half-transparent band
 * the half-way blend, and its centre the model's output, untouched: at
 * three photo sizes and two aspect ratios, the frame scaled to cover.
 */
static void
check_framed(const char *model, const uint8_t centre[3], int tolerance)
{
	static const struct { uint32_t w, h; } sizes[] = {
		{ 64, 48 }, { 640, 480 }, { 2400, 1800 },
	};
	static const char *const aspects[] = { "", "9:16" };
	size_t flen;
	uint8_t *frame = frame_png(400, 300, &flen);

	for (size_t i = 0; i < 3; i++)
		for (size_t a = 0; a < 2; a++) {
			size_t plen;
			uint8_t *photo = flat_photo(sizes[i].w, sizes[i].h,
			    &plen);
			struct image img;
			struct pool_result res = run_framed(model, aspects[a],
			    photo, plen, frame, flen, NULL, 0, 0, &img);
			uint32_t w = img.width, h = img.height;
			/* the frame, 4:3, covers: its border band is a
			 * tenth of its short side, scaled */
			double s = (double)w / 400 > (double)h / 300 ?
			    (double)w / 400 : (double)h / 300;
			uint32_t band = (uint32_t)(30 * s);
			uint8_t half[3];

			ck_assert(res.framed);
			ck_assert_str_eq(res.frame_note, "");
			for (int k = 0; k < 3; k++)
				half[k] = (uint8_t)((BORDER[k] * 128 +
				    centre[k] * 127 + 127) / 255);
			/* the top edge, in the middle: in the border */
			assert_colour(&img, w / 2, band / 3, BORDER, 0,
			    "border");
			assert_colour(&img, w / 2, h - 1 - band / 3, BORDER, 0,
			    "border");
			if (band >= 6)
				assert_colour(&img, w / 2, band + band / 2,
				    half, 2 + tolerance, "half band");
			assert_colour(&img, w / 2, h / 2, centre, tolerance,
			    "centre");
			image_free(&img);
			pool_result_free(&res);
			free(photo);
		}
	free(frame);
}

START_TEST(a_frame_over_a_local_look)
{
	poolkit_dir(&kit, TEST_PLUGINS, "passthrough.so");
	poolkit_start(&kit, NULL, 30000);
	check_framed("test-passthrough", PHOTO, 0);
	poolkit_stop(&kit);
}
END_TEST

START_TEST(a_frame_over_a_hosted_model)
{
	struct gemini gm;
	char text[1024], cmd[512];
	uint8_t inverted[3];

	/* the stand-in answers with the photo inverted */
	for (int k = 0; k < 3; k++)
		inverted[k] = (uint8_t)(255 - PHOTO[k]);
	ck_assert_int_eq(gemini_start(&gm, KEY), 0);
	poolkit_dir(&kit, BUNDLED "/genai/.libs", "genai.so");
	snprintf(cmd, sizeof(cmd), "printf '" KEY "\\n' > %s/key && chmod 600 "
	    "%s/key", dir, dir);
	ck_assert_int_eq(system(cmd), 0);
	snprintf(text, sizeof(text), "[plugin.genai]\nnetwork = yes\n"
	    "api-key-file = %s/key\nendpoint = %s\nca-file = %s\n", dir,
	    gm.nx.endpoint, gm.nx.ca);
	poolkit_start(&kit, text, 30000);
	/* the photo went as JPEG: a level or two off, but for the frame */
	check_framed("gemini-2.5-flash-image", inverted, 3);
	ck_assert_int_eq(gemini_count(&gm, "-> image"), 6);
	poolkit_stop(&kit);
	gemini_stop(&gm);
}
END_TEST

/* A frame that is no PNG, does not decode, or has no alpha: the result
 * goes out as it is, and the note says why. */
START_TEST(an_unusable_frame_leaves_the_result_unframed)
{
	static const uint8_t junk[] = "\x89PNG\r\n\x1a\nnot really";
	size_t plen, flen;
	uint8_t *photo = flat_photo(64, 48, &plen), *opaque;
	struct image img, rgb = { 40, 30, 3, calloc(40 * 30, 3) };
	struct pool_result res;
	char err[128];

	poolkit_dir(&kit, TEST_PLUGINS, "passthrough.so");
	poolkit_start(&kit, NULL, 30000);
	res = run_framed("test-passthrough", "", photo, plen, junk,
	    sizeof(junk), NULL, 0, 0, &img);
	ck_assert(!res.framed);
	ck_assert_msg(strstr(res.frame_note, "the frame does not decode") !=
	    NULL, "%s", res.frame_note);
	assert_colour(&img, 0, 0, PHOTO, 0, "unframed");
	image_free(&img);
	pool_result_free(&res);
	ck_assert_int_eq(image_encode_png(&rgb, &opaque, &flen, err,
	    sizeof(err)), 0);
	res = run_framed("test-passthrough", "", photo, plen, opaque, flen,
	    NULL, 0, 0, &img);
	ck_assert(!res.framed);
	ck_assert_msg(strstr(res.frame_note, "has no transparency") != NULL,
	    "%s", res.frame_note);
	assert_colour(&img, 0, 0, PHOTO, 0, "unframed");
	image_free(&img);
	pool_result_free(&res);
	res = run_framed("test-passthrough", "", photo, plen, photo, plen,
	    NULL, 0, 0, &img);		/* a photo is no frame */
	ck_assert(!res.framed);
	ck_assert_msg(strstr(res.frame_note, "no transparency") != NULL,
	    "%s", res.frame_note);
	image_free(&img);
	pool_result_free(&res);
	free(opaque);
	image_free(&rgb);
	free(photo);
	poolkit_stop(&kit);
}
END_TEST

/* The JFIF density of a JPEG (units 1: dots per inch), or -1. */
static int
jfif_dpi(const uint8_t *p, size_t n)
{
	const uint8_t *j = memmem(p, n < 64 ? n : 64, "JFIF\0", 5);

	if (j == NULL || j[7] != 1)
		return -1;
	return j[8] << 8 | j[9];
}

/* The pHYs of a PNG in pixels per metre, or -1. */
static long
png_ppm(const uint8_t *p, size_t n)
{
	const uint8_t *c = memmem(p, n, "pHYs", 4);

	if (c == NULL || c[12] != 1)
		return -1;
	return (long)c[4] << 24 | (long)c[5] << 16 | c[6] << 8 | c[7];
}

/*
 * Renditions: the longest side capped (never enlarged), an exact print
 * size turned to the result's orientation, formats and resolutions as
 * asked; and the result itself capped in megapixels.
 */
START_TEST(renditions_and_the_cap)
{
	static const struct pool_rendition rend[] = {
		{ "thumb", 480, 0, POOL_FORMAT_JPEG, 80, 0 },
		{ "share", 4096, 0, POOL_FORMAT_PNG, 0, 0 },
		{ "print", 1200, 1800, POOL_FORMAT_JPEG, 90, 300 },
		{ "web", 300, 0, POOL_FORMAT_PNG, 0, 72 },
		{ "small", 200, 0, POOL_FORMAT_WEBP, 80, 0 },
	};
	size_t plen, flen;
	uint8_t *photo = flat_photo(1600, 1200, &plen);
	uint8_t *frame = frame_png(400, 300, &flen);
	struct image img, r;
	struct pool_result res;
	char err[128];

	poolkit_dir(&kit, TEST_PLUGINS, "passthrough.so");
	poolkit_start(&kit, NULL, 30000);
	/* capped at 0.48 MP: 800x600, framed, then the renditions of it */
	res = run_framed("test-passthrough", "", photo, plen, frame, flen,
	    rend, 5, 480000, &img);
	ck_assert_uint_eq(img.width, 800);
	ck_assert_uint_eq(img.height, 600);
	ck_assert(res.framed);
	image_free(&img);
	ck_assert_int_eq(image_sniff(res.rendition[0], res.rendition_len[0]),
	    IMAGE_JPEG);
	ck_assert_int_eq(image_decode(res.rendition[0], res.rendition_len[0],
	    10000000, &r, err, sizeof(err)), 0);
	ck_assert_uint_eq(r.width, 480);
	ck_assert_uint_eq(r.height, 360);
	/* framed too: the top edge is the border */
	assert_colour(&r, 240, 5, BORDER, 6, "thumb border");
	image_free(&r);
	ck_assert_int_eq(jfif_dpi(res.rendition[0], res.rendition_len[0]),
	    -1);
	/* never enlarged past the result */
	ck_assert_int_eq(image_sniff(res.rendition[1], res.rendition_len[1]),
	    IMAGE_PNG);
	ck_assert_int_eq(image_decode(res.rendition[1], res.rendition_len[1],
	    10000000, &r, err, sizeof(err)), 0);
	ck_assert_uint_eq(r.width, 800);
	ck_assert_uint_eq(r.height, 600);
	image_free(&r);
	/* 4x6 in at 300 dpi, landscape like the result */
	ck_assert_int_eq(image_decode(res.rendition[2], res.rendition_len[2],
	    10000000, &r, err, sizeof(err)), 0);
	ck_assert_uint_eq(r.width, 1800);
	ck_assert_uint_eq(r.height, 1200);
	image_free(&r);
	ck_assert_int_eq(jfif_dpi(res.rendition[2], res.rendition_len[2]),
	    300);
	ck_assert_int_eq(image_decode(res.rendition[3], res.rendition_len[3],
	    10000000, &r, err, sizeof(err)), 0);
	ck_assert_uint_eq(r.width, 300);
	ck_assert_uint_eq(r.height, 225);
	image_free(&r);
	ck_assert_int_eq(png_ppm(res.rendition[3], res.rendition_len[3]),
	    2835);			/* 72 dpi */
	/* WebP, by libwebp's own reading of it */
	{
		int ww = 0, wh = 0;

		ck_assert(res.rendition_len[4] > 12 &&
		    memcmp(res.rendition[4], "RIFF", 4) == 0 &&
		    memcmp(res.rendition[4] + 8, "WEBP", 4) == 0);
		ck_assert(WebPGetInfo(res.rendition[4], res.rendition_len[4],
		    &ww, &wh));
		ck_assert_int_eq(ww, 200);
		ck_assert_int_eq(wh, 150);
	}
	pool_result_free(&res);
	free(photo);
	free(frame);
	poolkit_stop(&kit);
}
END_TEST

/* firesync-transform --frame --rendition, in a worker and in process
 * (where the sanitizer build checks it for leaks): what an operator
 * previews on a laptop. */
START_TEST(the_transform_tool_previews_them)
{
	char cmd[1024], path[128], err[128];
	size_t plen, flen;
	uint8_t *photo = flat_photo(640, 480, &plen);
	uint8_t *frame = frame_png(400, 300, &flen);
	struct image img;
	uint8_t *bytes;
	size_t n;
	FILE *f;

	poolkit_dir(&kit, TEST_PLUGINS, "passthrough.so");
	snprintf(path, sizeof(path), "%s/in.png", dir);
	testimg_write(path, photo, plen);
	snprintf(path, sizeof(path), "%s/frame.png", dir);
	testimg_write(path, frame, flen);
	for (int in_process = 0; in_process < 2; in_process++) {
		snprintf(cmd, sizeof(cmd), "%s %s --plugin-dir %s/plugins "
		    "--model test-passthrough --frame %s/frame.png "
		    "--rendition thumb:64:jpeg --rendition print:30x45:png@300 "
		    "%s/in.png %s/out/result.png > %s/tool.log 2>&1",
		    TRANSFORM, in_process ? "--in-process" : "", dir, dir, dir,
		    dir, dir);
		snprintf(path, sizeof(path), "mkdir -p %s/out", dir);
		ck_assert_int_eq(system(path), 0);
		ck_assert_msg(system(cmd) == 0, "%s", cmd);
		snprintf(path, sizeof(path), "%s/tool.log", dir);
		ck_assert_int_eq(log_count(path, "rendition thumb"), 1);
		ck_assert_int_eq(log_count(path, "ERROR: "), 0);
		ck_assert_int_eq(log_count(path, "runtime error:"), 0);
		ck_assert_int_eq(log_count(path, "not applied"), 0);
		for (int k = 0; k < 3; k++) {
			static const char *const names[] = { "result.png",
			    "thumb.jpg", "print.png" };
			static const uint32_t w[] = { 640, 64, 45 };

			snprintf(path, sizeof(path), "%s/out/%s", dir,
			    names[k]);
			f = fopen(path, "rb");
			ck_assert_msg(f != NULL, "%s missing", path);
			bytes = malloc(4 << 20);
			n = fread(bytes, 1, 4 << 20, f);
			fclose(f);
			ck_assert_int_eq(image_decode(bytes, n, 10000000, &img,
			    err, sizeof(err)), 0);
			ck_assert_uint_eq(img.width, w[k]);
			if (k == 0)
				assert_colour(&img, 320, 5, BORDER, 0,
				    "the tool's frame");
			image_free(&img);
			free(bytes);
			unlink(path);
		}
	}
	free(photo);
	free(frame);
	poolkit_stop(&kit);
}
END_TEST

static Suite *
finish_suite(void)
{
	Suite *s = suite_create("finish");
	TCase *tc = tcase_create("finish");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, a_frame_over_a_local_look);
	tcase_add_test(tc, a_frame_over_a_hosted_model);
	tcase_add_test(tc, an_unusable_frame_leaves_the_result_unframed);
	tcase_add_test(tc, renditions_and_the_cap);
	tcase_add_test(tc, the_transform_tool_previews_them);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(finish_suite());
	int failed;

	log_init();
	log_level = LOG_ERR;
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
