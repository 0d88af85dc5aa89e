/*
 * genai.c - the genai plugin through real worker processes (sandboxed as
 * in production) against a loopback stand-in for the Gemini API behind
 * Debian's nginx with TLS from a test CA (gemini.h): the request's shape,
 * the answers the service gives, and the failures a guest must see as a
 * clean error.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "emulator.h"
#include "gemini.h"
#include "image.h"
#include "log.h"
#include "pool.h"
#include "poolkit.h"
#include "testimg.h"

#define KEY "AIzaTest-0123456789abcdef"
#define MODEL "gemini-2.5-flash-image"

static struct gemini gm;
static struct poolkit kit;
#define dir (kit.dir)

/* What the [plugin.genai] section says; NULL fields take the defaults
 * of a working setup. */
struct setup {
	const char *ca;		/* "" leaves ca-file out */
	const char *key;	/* the key file's content */
	mode_t key_mode;
	bool no_key_file;
	bool no_key_line;	/* no api-key-file at all */
	bool no_network;
	const char *models;
	int retries;		/* max-retries; 0 is 3 */
	const char *extra;	/* more lines */
	int64_t timeout_ms;
};

static void
suite_up(void)
{
	ck_assert_int_eq(gemini_start(&gm, KEY), 0);
}

static void
suite_down(void)
{
	gemini_stop(&gm);
}

/* A plugin directory with genai.so, a key file and the configuration
 * s says; the configuration's text (static). */
static const char *
prepare(const struct setup *s)
{
	static char text[2048];
	char path[128];

	poolkit_dir(&kit, BUNDLED "/genai/.libs", "genai.so");
	snprintf(path, sizeof(path), "%s/gemini.key", dir);
	if (!s->no_key_file)
		poolkit_write(path, s->key ? s->key : KEY "\n",
		    s->key_mode ? s->key_mode : 0600);
	snprintf(text, sizeof(text), "[plugin.genai]\n%s"
	    "endpoint = %s/\n%s%s%s%s%s%s"
	    "models = %s\nmax-retries = %d\n%s", s->no_network ? "" :
	    "network = yes\n", gm.nx.endpoint,
	    s->ca && !*s->ca ? "" : "ca-file = ", s->ca && !*s->ca ? "" :
	    s->ca ? s->ca : gm.nx.ca, s->ca && !*s->ca ? "" : "\n",
	    s->no_key_line ? "" : "api-key-file = ", s->no_key_line ? "" :
	    path, s->no_key_line ? "" : "\n",
	    s->models ? s->models : MODEL ", gemini-3-pro-image-preview, "
	    "no-such-model", s->retries ? s->retries : 3,
	    s->extra ? s->extra : "");
	return text;
}

static void
start(const struct setup *s)
{
	poolkit_start(&kit, prepare(s), s->timeout_ms);
}

static void
stop(void)
{
	poolkit_stop(&kit);
}

static int
run_with(const char *model, const char *prompt, const char *aspect,
    const uint8_t *in, size_t inlen, size_t n_refs, struct image *out,
    char *err, size_t errlen)
{
	uint8_t *ref[3] = { NULL, NULL, NULL };
	size_t ref_len[3] = { 0, 0, 0 };
	struct pool_job job = {
		.ai = true, .model = model, .prompt = prompt,
		.aspect_ratio = aspect, .session_id = "s1", .event_id = "e1",
		.input = in, .input_len = inlen,
		.refs = (const uint8_t *const *)ref, .ref_lens = ref_len,
		.n_refs = n_refs,
	};
	struct pool_result res;

	for (size_t i = 0; i < n_refs; i++)
		testimg_png(40 + 8 * (uint32_t)i, 30, 3, 8, &ref[i],
		    &ref_len[i]);
	pool_transform(kit.pool, &job, &res);
	for (size_t i = 0; i < n_refs; i++)
		free(ref[i]);
	if (res.status == POOL_OK) {
		char derr[128];

		ck_assert_str_eq(res.plugin, "genai");
		ck_assert_int_eq(image_decode(res.png, res.png_len, 100000000,
		    out, derr, sizeof(derr)), 0);
		free(res.png);
	}
	snprintf(err, errlen, "%s", res.message);
	return res.status;
}

/* The photo: 64x48, EXIF orientation (1: upright as stored). */
static int
run(const char *prompt, const char *aspect, int orientation, size_t n_refs,
    struct image *out, char *err, size_t errlen)
{
	uint8_t *jpg;
	size_t len;
	int rc;

	testimg_jpeg(64, 48, orientation, &jpg, &len);
	rc = run_with(MODEL, prompt, aspect, jpg, len, n_refs, out, err,
	    errlen);
	free(jpg);
	return rc;
}

/* The test photo's top-left quadrant is red; inverted, it is cyan. */
static void
assert_inverted_red(const struct image *img, uint32_t x, uint32_t y)
{
	const uint8_t *p = img->pixels + ((size_t)y * img->width + x) *
	    img->channels;

	ck_assert_msg(p[0] < 90 && p[1] > 160 && p[2] > 160,
	    "not the inverted photo at %u,%u: %d,%d,%d", x, y, p[0], p[1],
	    p[2]);
}

START_TEST(happy_path_without_references)
{
	struct setup s = { .extra = "system-prompt = In the style of a "
	    "Renaissance portrait.\n" };
	struct image img;
	char err[512];

	start(&s);
	ck_assert_msg(run("me, as a painting", "", 1, 0, &img, err,
	    sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(img.width, 64);
	ck_assert_uint_eq(img.height, 48);
	assert_inverted_red(&img, 8, 8);
	image_free(&img);
	/* one request, with the key, the system prompt first, the photo as
	 * sent (its EXIF removed: no GPS position leaves the booth) and no
	 * aspect ratio */
	ck_assert_int_eq(gemini_count(&gm, "text=[In the style of a "
	    "Renaissance portrait.\\n\\nme, as a painting]"), 1);
	ck_assert_int_eq(gemini_count(&gm, "key=ok creds=1 bytes="), 1);
	ck_assert_int_eq(gemini_count(&gm, "POST /v1beta/models/" MODEL
	    ":generateContent HTTP/1.0 key=ok"), 1);
	ck_assert_int_eq(gemini_count(&gm, "images=1 aspect=- photo=64x48 "
	    "text=[In the style"), 1);
	stop();
}
END_TEST

START_TEST(happy_path_with_references_and_a_second_model)
{
	struct setup s = { 0 };
	struct image img;
	char err[512];
	uint8_t *jpg;
	size_t len;

	start(&s);
	ck_assert_msg(run("on the beach of these [refs]", "", 1, 3, &img, err,
	    sizeof(err)) == 0, "%s", err);
	assert_inverted_red(&img, 8, 8);
	image_free(&img);
	ck_assert_int_eq(gemini_count(&gm, "images=4 aspect=- photo=64x48 "
	    "ref=40x30 ref=48x30 ref=56x30 text=[on the beach of these "
	    "[refs]]"), 1);
	/* every configured model is served by the plugin */
	testimg_jpeg(64, 48, 1, &jpg, &len);
	ck_assert_msg(run_with("gemini-3-pro-image-preview", "second [m2]",
	    "", jpg, len, 0, &img, err, sizeof(err)) == 0, "%s", err);
	image_free(&img);
	free(jpg);
	ck_assert_int_eq(gemini_count(&gm, "/models/gemini-3-pro-image-"
	    "preview:generateContent"), 1);
	stop();
}
END_TEST

START_TEST(aspect_ratios_map_to_the_service_and_are_cropped_exactly)
{
	/* the photo (64x48) is cropped to the ratio before the plugin sees
	 * it (w x h); the service answers near the ratio it was sent, a few
	 * pixels off; the host crops that to the ratio asked for, exactly */
	static const struct { const char *ask, *sent; uint32_t w, h, rw,
	    rh; } c[] = {
		{ "1:1", "1:1", 48, 48, 1, 1 },
		{ "4:3", "4:3", 64, 48, 4, 3 },
		{ "16:9", "16:9", 64, 36, 16, 9 },
		/* others go to the nearest accepted one */
		{ "7:5", "4:3", 63, 45, 7, 5 },
		{ "2:1", "16:9", 64, 32, 2, 1 },
		{ "1:3", "9:16", 16, 48, 1, 3 },
	};
	struct setup s = { 0 };
	char want[128], prompt[64];

	start(&s);
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct image img;
		char err[512];

		snprintf(prompt, sizeof(prompt), "ratio %s", c[i].ask);
		ck_assert_msg(run(prompt, c[i].ask, 1, 0, &img, err,
		    sizeof(err)) == 0, "%s: %s", c[i].ask, err);
		ck_assert_msg(img.width * c[i].rh == img.height * c[i].rw &&
		    img.width >= 4, "%s: %ux%u", c[i].ask,
		    img.width, img.height);
		assert_inverted_red(&img, 1, 1);
		image_free(&img);
		snprintf(want, sizeof(want), "aspect=%s photo=%ux%u text=[%s]",
		    c[i].sent, c[i].w, c[i].h, prompt);
		ck_assert_msg(gemini_count(&gm, want) == 1, "no request with "
		    "'%s' in %s", want, gm.log);
	}
	stop();
}
END_TEST

START_TEST(the_photo_is_sent_upright)
{
	struct setup s = { 0 };
	struct image img;
	char err[512];

	/* stored 64x48 with EXIF orientation 6: the host turns it, and the
	 * plugin sends the upright photo, re-encoded, without EXIF */
	start(&s);
	ck_assert_msg(run("upright [o6]", "", 6, 0, &img, err,
	    sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(img.width, 48);
	ck_assert_uint_eq(img.height, 64);
	image_free(&img);
	ck_assert_int_eq(gemini_count(&gm, "photo=48x64 text=[upright"), 1);
	ck_assert_int_eq(gemini_count(&gm, "+exif"), 0);
	stop();
}
END_TEST

START_TEST(a_photo_too_big_to_send_is_sent_smaller)
{
	struct setup s = { 0 };
	struct image img;
	char err[512];
	uint8_t *jpg;
	size_t len;

	/* 12 MP of noise: over the 7 MB the plugin sends of a photo, so it
	 * is re-encoded, at most 3072 px on its longest side: halved */
	testimg_noise_jpeg(4000, 3000, &jpg, &len);
	ck_assert_uint_gt(len, 7u << 20);
	start(&s);
	ck_assert_msg(run_with(MODEL, "big [noise]", "", jpg, len, 0, &img,
	    err, sizeof(err)) == 0, "%s", err);
	free(jpg);
	ck_assert_uint_eq(img.width, 2000);
	ck_assert_uint_eq(img.height, 1500);
	image_free(&img);
	ck_assert_int_eq(gemini_count(&gm, "photo=2000x1500 text=[big "
	    "[noise]] -> image"), 1);
	stop();
}
END_TEST

static void
expect_error(const char *prompt, const char *want, const char *model)
{
	struct image img;
	char err[512];
	uint8_t *jpg;
	size_t len;
	int rc;

	testimg_jpeg(64, 48, 1, &jpg, &len);
	rc = run_with(model ? model : MODEL, prompt, "", jpg, len, 0, &img,
	    err, sizeof(err));
	free(jpg);
	ck_assert_msg(rc != 0, "%s: succeeded", prompt);
	ck_assert_msg(strstr(err, want) != NULL, "%s: '%s', not '%s'",
	    prompt, err, want);
}

START_TEST(refusals_and_answers_without_an_image)
{
	struct setup s = { 0 };

	start(&s);
	expect_error("[safety] a", "the model refused the photo (SAFETY)",
	    NULL);
	expect_error("[image-safety] b", "the model refused the photo "
	    "(IMAGE_SAFETY)", NULL);
	expect_error("[text] c", "the model answered without an image", NULL);
	expect_error("[webp] d", "an image format firesync cannot use", NULL);
	expect_error("e", "the AI service has no model no-such-model",
	    "no-such-model");
	/* the worker carries on after each */
	expect_error("[safety] f", "(SAFETY)", NULL);
	stop();
}
END_TEST

START_TEST(rate_limited_then_served)
{
	/* a deadline far beyond the back-off (1 + 2 s, jittered) */
	struct setup s = { .timeout_ms = 90000 };
	struct image img;
	char err[512];

	start(&s);
	ck_assert_msg(run("busy [429x2]", "", 1, 0, &img, err,
	    sizeof(err)) == 0, "%s", err);
	assert_inverted_red(&img, 8, 8);
	image_free(&img);
	ck_assert_int_eq(gemini_count(&gm, "text=[busy [429x2]] -> 429"), 2);
	ck_assert_int_eq(gemini_count(&gm, "text=[busy [429x2]] -> image"),
	    1);
	stop();
}
END_TEST

/* A 429 is tried again while the deadline allows (not max-retries
 * times), each time after a longer pause (1, 2, 4 s...): past the
 * deadline the guest is told to try again. */
START_TEST(rate_limited_until_the_deadline)
{
	struct setup s = { .retries = 1, .timeout_ms = 8000 };
	int n;

	start(&s);
	expect_error("busier [429x9]", "the AI service is busy", NULL);
	n = gemini_count(&gm, "text=[busier [429x9]] -> 429");
	ck_assert_msg(n >= 3 && n <= 5, "%d tries in 8 s", n);
	stop();
}
END_TEST

START_TEST(server_errors_until_the_deadline)
{
	struct setup s = { .retries = 100, .timeout_ms = 8000 };

	/* retries stop in time for the plugin's own error to reach the
	 * guest, rather than the host's timeout */
	start(&s);
	expect_error("down [500]", "the AI service failed (HTTP 500)", NULL);
	ck_assert_int_ge(gemini_count(&gm, "text=[down [500]] -> 500"), 3);
	stop();
}
END_TEST

START_TEST(unreadable_and_huge_replies)
{
	struct setup s = { 0 };

	start(&s);
	expect_error("[notjson] x", "the AI service sent an unreadable reply",
	    NULL);
	expect_error("[huge] y", "the AI service's reply is too large", NULL);
	/* and the worker is still fine */
	{
		struct image img;
		char err[512];

		ck_assert_msg(run("after huge", "", 1, 0, &img, err,
		    sizeof(err)) == 0, "%s", err);
		image_free(&img);
	}
	stop();
}
END_TEST

START_TEST(tls_is_verified)
{
	struct setup s = { .ca = "" };

	/* without ca-file the system's CAs are used, which do not know the
	 * test CA: refused, never sent */
	start(&s);
	expect_error("tls [system-ca]", "cannot reach the AI service securely",
	    NULL);
	ck_assert_int_eq(gemini_count(&gm, "tls [system-ca]"), 0);
	stop();
}
END_TEST

START_TEST(a_wrong_key_is_named)
{
	struct setup s = { .key = "AIzaWrong\n" };

	start(&s);
	expect_error("wrong key", "the AI service refused firesync's key",
	    NULL);
	ck_assert_int_eq(gemini_count(&gm, "key=bad"), 1);
	stop();
}
END_TEST

static void
expect_listed(const struct setup *s, const char *want)
{
	poolkit_expect_listed(&kit, prepare(s), want);
	stop();
}

START_TEST(init_refuses_a_bad_setup)
{
	struct setup ok = { 0 }, missing = { .no_key_file = true },
	    open_key = { .key_mode = 0644 }, empty = { .key = "\n" },
	    twice = { .models = "a, b, a" }, unset = { .no_key_line = true },
	    offline = { .no_network = true };

	expect_listed(&ok, "loaded   genai " PACKAGE_VERSION " (firesync, "
	    "MIT) models: " MODEL " gemini-3-pro-image-preview no-such-model");
	expect_listed(&missing, "genai.so: init failed: api-key-file ");
	expect_listed(&missing, "gemini.key: No such file or directory");
	expect_listed(&unset, "genai.so: init failed: not configured, so its "
	    "models are not served: name a chmod-600 file");
	expect_listed(&offline, "genai.so: init failed: the worker sandbox has "
	    "no network for it: add network = yes");
	expect_listed(&open_key, "gemini.key is readable by others: chmod "
	    "600");
	expect_listed(&empty, "gemini.key: empty");
	expect_listed(&twice, "genai.so: model 'a' is listed twice");
}
END_TEST

START_TEST(the_transform_tool_runs_it)
{
	struct setup s = { 0 };
	char cfg[128], cmd[1024], in[128], out[128], err[128];
	struct image img;
	uint8_t *jpg, *png;
	size_t len;
	FILE *f;

	snprintf(cfg, sizeof(cfg), "%s", poolkit_conf(&kit, prepare(&s)));
	snprintf(in, sizeof(in), "%s/in.jpg", dir);
	snprintf(out, sizeof(out), "%s/out.png", dir);
	testimg_jpeg(64, 48, 1, &jpg, &len);
	testimg_write(in, jpg, len);
	free(jpg);
	snprintf(cmd, sizeof(cmd), "%s --config %s --plugin-dir %s/plugins --model "
	    MODEL " --prompt 'from the tool' --aspect-ratio 1:1 %s %s",
	    TRANSFORM, cfg, dir, in, out);
	ck_assert_int_eq(system(cmd), 0);
	f = fopen(out, "rb");
	ck_assert_ptr_nonnull(f);
	png = malloc(1 << 20);
	len = fread(png, 1, 1 << 20, f);
	fclose(f);
	ck_assert_int_eq(image_decode(png, len, 1000000, &img, err,
	    sizeof(err)), 0);
	free(png);
	ck_assert_uint_eq(img.width, 48);
	ck_assert_uint_eq(img.height, 48);
	image_free(&img);
	ck_assert_int_eq(gemini_count(&gm, "aspect=1:1 photo=48x48 text=[from "
	    "the tool]"), 1);
	/* in-process, where the sanitizer build checks genai for leaks */
	snprintf(cmd, sizeof(cmd), "%s --in-process --config %s --plugin-dir "
	    "%s/plugins --model " MODEL " --prompt 'in process' %s %s "
	    ">%s/tool.log 2>&1", TRANSFORM, cfg, dir, in, out, dir);
	ck_assert_int_eq(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "%s/tool.log", dir);
	ck_assert_int_eq(log_count(cmd, "ERROR: "), 0);	/* ASan, LSan */
	ck_assert_int_eq(log_count(cmd, "runtime error:"), 0);	/* UBSan */
	ck_assert_int_eq(gemini_count(&gm, "text=[in process] -> image"), 1);
	stop();
}
END_TEST

static Suite *
genai_suite(void)
{
	Suite *s = suite_create("genai");
	TCase *tc = tcase_create("gemini");

	tcase_add_unchecked_fixture(tc, suite_up, suite_down);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, happy_path_without_references);
	tcase_add_test(tc, happy_path_with_references_and_a_second_model);
	tcase_add_test(tc,
	    aspect_ratios_map_to_the_service_and_are_cropped_exactly);
	tcase_add_test(tc, the_photo_is_sent_upright);
	tcase_add_test(tc, a_photo_too_big_to_send_is_sent_smaller);
	tcase_add_test(tc, refusals_and_answers_without_an_image);
	tcase_add_test(tc, rate_limited_then_served);
	tcase_add_test(tc, rate_limited_until_the_deadline);
	tcase_add_test(tc, server_errors_until_the_deadline);
	tcase_add_test(tc, unreadable_and_huge_replies);
	tcase_add_test(tc, tls_is_verified);
	tcase_add_test(tc, a_wrong_key_is_named);
	tcase_add_test(tc, init_refuses_a_bad_setup);
	tcase_add_test(tc, the_transform_tool_runs_it);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(genai_suite());
	int failed;

	log_init();
	log_level = LOG_ERR;
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
