/*
 * providers.c - the vertex (Gemini on Vertex AI, a service account of its
 * own) and openai (the Images API) plugins through real worker processes,
 * sandboxed as in production, against loopback stand-ins for both APIs
 * behind Debian's nginx with TLS from a test CA (gemini.h), and a token
 * endpoint that hands tokens out only for assertions the plugin's own
 * key signed (httpd.h).
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "emulator.h"
#include "gemini.h"
#include "httpd.h"
#include "image.h"
#include "log.h"
#include "pool.h"
#include "poolkit.h"
#include "testimg.h"

#define OPENAI_KEY "sk-test-0123456789abcdef"
#define VERTEX_MODEL "gemini-2.5-flash-image"
#define OPENAI_MODEL "gpt-image-1"

static struct gemini gm;
static struct tokend td;
static struct poolkit kit;
#define dir (kit.dir)
#define expect_listed(conf, want) poolkit_expect_listed(&kit, conf, want)

static void
suite_up(void)
{
	ck_assert_int_eq(gemini_start(&gm, OPENAI_KEY), 0);
}

static void
suite_down(void)
{
	gemini_stop(&gm);
}

/* The vertex plugin's section: its own service account key, whose
 * token_uri is td (started here, handing out tokens, verified against
 * that key); extra lines after. */
static const char *
vertex_conf(const char *extra, const char *const *tokens, int n_tokens)
{
	static char text[2048];
	char pem[128];
	const char *key;

	poolkit_dir(&kit, BUNDLED "/genai/.libs", "vertex.so");
	td.expires_in = 0;
	tokend_start(&td, tokens, n_tokens);
	key = test_key_file(dir, td.url);
	ck_assert_ptr_nonnull(key);
	snprintf(pem, sizeof(pem), "%s/sa.pem", dir);
	tokend_verify(&td, pem);
	snprintf(text, sizeof(text), "[plugin.vertex]\nnetwork = yes\n"
	    "credentials-file = %s\nlocation = europe-west4\nendpoint = %s\n"
	    "ca-file = %s\nmodels = " VERTEX_MODEL ", no-such-model\n"
	    "max-retries = 3\n%s", key, gm.nx.endpoint, gm.nx.ca,
	    extra ? extra : "");
	return text;
}

static const char *
openai_conf(const char *key, const char *extra)
{
	static char text[2048];
	char path[128];

	poolkit_dir(&kit, BUNDLED "/genai/.libs", "openai.so");
	snprintf(path, sizeof(path), "%s/openai.key", dir);
	poolkit_write(path, key, 0600);
	snprintf(text, sizeof(text), "[plugin.openai]\nnetwork = yes\n"
	    "api-key-file = %s\nendpoint = %s\nca-file = %s\n"
	    "models = " OPENAI_MODEL ", no-such-model\nmax-retries = 3\n%s",
	    path, gm.nx.endpoint, gm.nx.ca, extra ? extra : "");
	return text;
}

/* Run model on a 64x48 photo (EXIF orientation 1) with n_refs
 * references; the status, the result decoded into out on POOL_OK, the
 * message into err otherwise. */
static int
run(const char *model, const char *prompt, const char *aspect,
    size_t n_refs, struct image *out, char *err, size_t errlen)
{
	uint8_t *ref[3] = { NULL, NULL, NULL }, *jpg;
	size_t ref_len[3] = { 0, 0, 0 }, len;
	struct pool_job job = {
		.ai = true, .model = model, .prompt = prompt,
		.aspect_ratio = aspect, .session_id = "s1", .event_id = "e1",
		.refs = (const uint8_t *const *)ref, .ref_lens = ref_len,
		.n_refs = n_refs,
	};
	struct pool_result res;

	testimg_jpeg(64, 48, 1, &jpg, &len);
	job.input = jpg;
	job.input_len = len;
	for (size_t i = 0; i < n_refs; i++)
		testimg_png(40 + 8 * (uint32_t)i, 30, 3, 8, &ref[i],
		    &ref_len[i]);
	pool_transform(kit.pool, &job, &res);
	for (size_t i = 0; i < n_refs; i++)
		free(ref[i]);
	free(jpg);
	if (res.status == POOL_OK) {
		char derr[128];

		ck_assert_int_eq(image_decode(res.png, res.png_len, 100000000,
		    out, derr, sizeof(derr)), 0);
		free(res.png);
	}
	snprintf(err, errlen, "%s", res.message);
	return res.status;
}

/* The test photo's top-left quadrant is red; inverted, it is cyan. */
static void
assert_inverted_red(const struct image *img)
{
	const uint8_t *p = img->pixels;

	ck_assert_msg(p[0] < 90 && p[1] > 160 && p[2] > 160,
	    "not the inverted photo: %d,%d,%d", p[0], p[1], p[2]);
}

static void
expect_ok(const char *model, const char *prompt, const char *aspect,
    size_t n_refs, uint32_t rw, uint32_t rh)
{
	struct image img;
	char err[512];

	ck_assert_msg(run(model, prompt, aspect, n_refs, &img, err,
	    sizeof(err)) == POOL_OK, "%s: %s", prompt, err);
	ck_assert_msg(img.width * rh == img.height * rw && img.width >= 4,
	    "%s: %ux%u, not %u:%u", prompt, img.width, img.height, rw, rh);
	assert_inverted_red(&img);
	image_free(&img);
}

static void
expect_error(const char *model, const char *prompt, const char *want)
{
	struct image img;
	char err[512];

	ck_assert_msg(run(model, prompt, "", 0, &img, err, sizeof(err)) !=
	    POOL_OK, "%s: succeeded", prompt);
	ck_assert_msg(strstr(err, want) != NULL, "%s: '%s', not '%s'",
	    prompt, err, want);
}

/* ---- Vertex AI ---- */

/*
 * The request goes to the location's path with a token the token
 * endpoint issued for the plugin's own key (it refuses any other), the
 * token is fetched once and reused, references and the aspect ratio go
 * as for Gemini, and the result is cropped exactly.
 */
START_TEST(vertex_happy_path)
{
	static const char *const tokens[] = { "ya29.vertex-one" };

	poolkit_start(&kit, vertex_conf("system-prompt = As a fresco.\n",
	    tokens, 1), 0);
	gemini_token(&gm, "ya29.vertex-one");
	expect_ok(VERTEX_MODEL, "in the chapel [v1]", "1:1", 2, 1, 1);
	expect_ok(VERTEX_MODEL, "tall [v2]", "9:16", 0, 9, 16);
	ck_assert_int_eq(gemini_count(&gm, "POST /v1/projects/p/locations/"
	    "europe-west4/publishers/google/models/" VERTEX_MODEL
	    ":generateContent HTTP/1.0 key=ok creds=1"), 2);
	ck_assert_int_eq(gemini_count(&gm, "project=p location=europe-west4 "
	    "model=" VERTEX_MODEL " images=3 aspect=1:1 photo=48x48 ref=40x30 "
	    "ref=48x30 text=[As a fresco.\\n\\nin the chapel [v1]] -> image"),
	    1);
	ck_assert_int_eq(gemini_count(&gm, "aspect=9:16 photo=27x48 text=[As "
	    "a fresco.\\n\\ntall [v2]] -> image"), 1);
	ck_assert_int_eq(gemini_count(&gm, "+exif"), 0);
	ck_assert_int_eq(td.served, 1);
	ck_assert_int_eq(atomic_load(&td.refused), 0);
	ck_assert_str_eq(td.issuer, "firesync@p.iam.gserviceaccount.com");
	poolkit_stop(&kit);
	tokend_stop(&td);
}
END_TEST

/* A token the service stops accepting is dropped, a new one fetched and
 * the request sent again, once: the guest never sees it. */
START_TEST(vertex_refreshes_a_refused_token)
{
	static const char *const tokens[] = { "ya29.old", "ya29.new" };

	poolkit_start(&kit, vertex_conf(NULL, tokens, 2), 0);
	gemini_token(&gm, "ya29.old");
	expect_ok(VERTEX_MODEL, "before [r1]", "", 0, 4, 3);
	gemini_token(&gm, "ya29.new");		/* the old one is revoked */
	expect_ok(VERTEX_MODEL, "after [r2]", "", 0, 4, 3);
	ck_assert_int_eq(gemini_count(&gm, "key=bad"), 1);
	ck_assert_int_eq(gemini_count(&gm, " -> 401"), 1);
	ck_assert_int_eq(gemini_count(&gm, "text=[after [r2]] -> image"), 1);
	ck_assert_int_eq(td.served, 2);
	/* the original JPEG went (no aspect ratio asked), without its EXIF */
	ck_assert_int_eq(gemini_count(&gm, "photo=64x48 text=[after [r2]]"),
	    1);
	ck_assert_int_eq(gemini_count(&gm, "+exif"), 0);
	/* a token refused twice is the key's fault: said, not looped */
	gemini_token(&gm, "ya29.never-issued");
	expect_error(VERTEX_MODEL, "refused [r3]", "the AI service refused "
	    "firesync's key");
	ck_assert_int_eq(gemini_count(&gm, " -> 401"), 3);
	poolkit_stop(&kit);
	tokend_stop(&td);
}
END_TEST

START_TEST(vertex_failures)
{
	static const char *const tokens[] = { "ya29.f" };

	poolkit_start(&kit, vertex_conf(NULL, tokens, 1), 90000);
	gemini_token(&gm, "ya29.f");
	expect_error(VERTEX_MODEL, "[safety] v", "the model refused the photo "
	    "(SAFETY)");
	expect_error(VERTEX_MODEL, "[image-safety] v", "the model refused the "
	    "photo (IMAGE_SAFETY)");
	expect_error(VERTEX_MODEL, "[huge] v", "the AI service's reply is too "
	    "large");
	expect_error(VERTEX_MODEL, "[notjson] v", "the AI service sent an "
	    "unreadable reply");
	expect_error("no-such-model", "v", "the AI service has no model "
	    "no-such-model");
	/* 429s are retried by the host until the service lets it through */
	expect_ok(VERTEX_MODEL, "busy [429x2]", "", 0, 4, 3);
	ck_assert_int_eq(gemini_count(&gm, "text=[busy [429x2]] -> 429"), 2);
	poolkit_stop(&kit);
	tokend_stop(&td);
}
END_TEST

/* A project the service account has no role in: 403, named as such. */
START_TEST(vertex_without_the_role)
{
	static const char *const tokens[] = { "ya29.d" };

	poolkit_start(&kit, vertex_conf("project = denied\n", tokens, 1), 0);
	gemini_token(&gm, "ya29.d");
	expect_error(VERTEX_MODEL, "no role", "the AI service refused "
	    "firesync's key");
	ck_assert_int_eq(gemini_count(&gm, "/v1/projects/denied/"), 1);
	poolkit_stop(&kit);
	tokend_stop(&td);
}
END_TEST

/* A key the token endpoint does not know (deleted, or another
 * account's): refused there, and nothing reaches Vertex. */
START_TEST(vertex_with_an_unknown_key)
{
	static const char *const tokens[] = { "ya29.u" };
	char other[128];

	poolkit_start(&kit, vertex_conf(NULL, tokens, 1), 0);
	/* the endpoint now trusts another key only */
	snprintf(other, sizeof(other), "%s/other", dir);
	ck_assert_int_eq(mkdir(other, 0700), 0);
	ck_assert_ptr_nonnull(test_key_file(other, td.url));
	snprintf(other, sizeof(other), "%s/other/sa.pem", dir);
	tokend_verify(&td, other);
	expect_error(VERTEX_MODEL, "unknown key [u1]", "the AI service refused "
	    "firesync's key");
	ck_assert_int_ge(atomic_load(&td.refused), 1);
	ck_assert_int_eq(td.served, 0);
	ck_assert_int_eq(gemini_count(&gm, "[u1]"), 0);
	poolkit_stop(&kit);
	tokend_stop(&td);
}
END_TEST

START_TEST(vertex_init_refuses_a_bad_setup)
{
	char key[128], text[1024], cmd[512];

	poolkit_dir(&kit, BUNDLED "/genai/.libs", "vertex.so");
	expect_listed("[plugin.vertex]\nnetwork = yes\n", "vertex.so: init "
	    "failed: not configured, so its models are not served: name a "
	    "chmod-600 service account key file");
	snprintf(key, sizeof(key), "%s/sa.json", dir);
	poolkit_write(key, "{\"type\":\"authorized_user\"}", 0600);
	snprintf(text, sizeof(text), "[plugin.vertex]\nnetwork = yes\n"
	    "credentials-file = %s\n", key);
	expect_listed(text, "is not a service account key");
	ck_assert_int_eq(chmod(key, 0644), 0);
	expect_listed(text, "sa.json is readable by others: chmod 600");
	ck_assert_ptr_nonnull(test_key_file(dir, "http://127.0.0.1:9/token"));
	snprintf(text, sizeof(text), "[plugin.vertex]\nnetwork = yes\n"
	    "credentials-file = %s\nlocation = Europe/West\n", key);
	expect_listed(text, "location = Europe/West: give a Vertex AI "
	    "location");
	snprintf(text, sizeof(text), "[plugin.vertex]\nnetwork = yes\n"
	    "credentials-file = %s\nlocation = us-central1\n", key);
	expect_listed(text, "loaded   vertex " PACKAGE_VERSION " (firesync, "
	    "MIT) models: gemini-2.5-flash-image");
	snprintf(text, sizeof(text), "[plugin.vertex]\ncredentials-file = "
	    "%s\n", key);
	expect_listed(text, "the worker sandbox has no network for it: add "
	    "network = yes to [plugin.vertex]");
	/* one model, two providers: the second is refused */
	snprintf(cmd, sizeof(cmd), "cp %s/genai/.libs/genai.so %s/plugins/ && "
	    "chmod 755 %s/plugins/genai.so && printf 'AIzaX\\n' > %s/g.key "
	    "&& chmod 600 %s/g.key", BUNDLED, dir, dir, dir, dir);
	ck_assert_int_eq(system(cmd), 0);
	snprintf(text, sizeof(text), "[plugin.genai]\nnetwork = yes\n"
	    "api-key-file = %s/g.key\n\n[plugin.vertex]\nnetwork = yes\n"
	    "credentials-file = %s\n", dir, key);
	expect_listed(text, "loaded   genai");
	expect_listed(text, "vertex.so: model 'gemini-2.5-flash-image' is "
	    "already served by plugin 'genai'");
	poolkit_stop(&kit);
}
END_TEST

/* ---- OpenAI Images ---- */

/*
 * A multipart images/edits request with the photo and references as
 * image[], the model from the configuration, the size nearest the
 * experience's aspect ratio (the host crops the rest exactly) and png.
 */
START_TEST(openai_happy_path_and_sizes)
{
	static const struct { const char *ask, *size; uint32_t rw, rh; } c[] = {
		{ "1:1", "1024x1024", 1, 1 },
		{ "2:3", "1024x1536", 2, 3 },
		{ "9:16", "1024x1536", 9, 16 },
		{ "16:9", "1536x1024", 16, 9 },
		{ "", "1536x1024", 4, 3 },	/* the photo's 4:3 */
	};
	char prompt[64], want[160];

	poolkit_start(&kit, openai_conf(OPENAI_KEY "\n", "quality = low\n"),
	    0);
	expect_ok(OPENAI_MODEL, "at the party [refs]", "", 3, 4, 3);
	ck_assert_int_eq(gemini_count(&gm, "POST /v1/images/edits HTTP/1.0 "
	    "key=ok creds=1"), 1);
	ck_assert_int_eq(gemini_count(&gm, "photo=64x48 ref=40x30 ref=48x30 "
	    "ref=56x30 model=" OPENAI_MODEL " images=4 size=1536x1024 "
	    "format=png text=[at the party [refs]] -> image"), 1);
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		snprintf(prompt, sizeof(prompt), "size [%s]", c[i].ask);
		expect_ok(OPENAI_MODEL, prompt, c[i].ask, 0, c[i].rw, c[i].rh);
		snprintf(want, sizeof(want), "size=%s format=png text=[%s]",
		    c[i].size, prompt);
		ck_assert_msg(gemini_count(&gm, want) == 1, "no '%s' in %s",
		    want, gm.log);
	}
	/* no EXIF (the phone's GPS position) leaves the booth */
	ck_assert_int_eq(gemini_count(&gm, "+exif"), 0);
	poolkit_stop(&kit);
}
END_TEST

START_TEST(openai_failures)
{
	poolkit_start(&kit, openai_conf(OPENAI_KEY "\n", NULL), 90000);
	expect_error(OPENAI_MODEL, "[safety] o", "the model refused the photo "
	    "(SAFETY)");
	expect_error(OPENAI_MODEL, "[quota] o", "the AI service's quota is "
	    "used up");
	expect_error(OPENAI_MODEL, "[huge] o", "the AI service's reply is too "
	    "large");
	expect_error(OPENAI_MODEL, "[notjson] o", "the AI service sent an "
	    "unreadable reply");
	expect_error(OPENAI_MODEL, "[url] o", "the model answered without an "
	    "image");
	expect_error("no-such-model", "o", "the AI service has no model "
	    "no-such-model");
	/* the quota is not retried: one request */
	ck_assert_int_eq(gemini_count(&gm, "[quota] o] -> 429"), 1);
	expect_ok(OPENAI_MODEL, "busy [429x2]", "", 0, 4, 3);
	ck_assert_int_eq(gemini_count(&gm, "text=[busy [429x2]] -> 429"), 2);
	poolkit_stop(&kit);
}
END_TEST

START_TEST(openai_with_a_wrong_key)
{
	poolkit_start(&kit, openai_conf("sk-wrong\n", NULL), 0);
	expect_error(OPENAI_MODEL, "wrong key [k]", "the AI service refused "
	    "firesync's key");
	ck_assert_int_eq(gemini_count(&gm, "key=bad"), 1);
	poolkit_stop(&kit);
}
END_TEST

START_TEST(openai_init_refuses_a_bad_setup)
{
	char text[1024];

	snprintf(text, sizeof(text), "%s", openai_conf(OPENAI_KEY "\n",
	    "sizes = 1024x1024, square\n"));
	expect_listed(text, "openai.so: init failed: sizes = 1024x1024, "
	    "square: give the sizes");
	poolkit_stop(&kit);
	snprintf(text, sizeof(text), "%s", openai_conf(OPENAI_KEY "\n",
	    "quality = best\n"));
	expect_listed(text, "quality = best: give low, medium, high or auto");
	poolkit_stop(&kit);
	snprintf(text, sizeof(text), "%s", openai_conf(OPENAI_KEY "\n", NULL));
	expect_listed(text, "loaded   openai " PACKAGE_VERSION " (firesync, "
	    "MIT) models: gpt-image-1 no-such-model");
	expect_listed("[plugin.openai]\nnetwork = yes\n", "openai.so: init "
	    "failed: not configured, so its models are not served: name a "
	    "chmod-600 file holding an OpenAI API key");
	poolkit_stop(&kit);
}
END_TEST

/* firesync-transform in-process, where the sanitizer build checks both
 * plugins for leaks. */
START_TEST(the_transform_tool_runs_both)
{
	static const char *const tokens[] = { "ya29.tool" };
	const char *const plugins[] = { "vertex", "openai" };
	char cfg[128], cmd[1024], in[128], out[128];
	uint8_t *jpg;
	size_t len;

	gemini_token(&gm, "ya29.tool");
	for (size_t i = 0; i < 2; i++) {
		const char *text = i == 0 ? vertex_conf(NULL, tokens, 1) :
		    openai_conf(OPENAI_KEY "\n", NULL);

		snprintf(cfg, sizeof(cfg), "%s", poolkit_conf(&kit, text));
		snprintf(in, sizeof(in), "%s/in.jpg", dir);
		snprintf(out, sizeof(out), "%s/out.png", dir);
		testimg_jpeg(64, 48, 1, &jpg, &len);
		testimg_write(in, jpg, len);
		free(jpg);
		snprintf(cmd, sizeof(cmd), "%s --in-process --config %s "
		    "--plugin-dir %s/plugins --model %s --prompt 'tool %s' "
		    "--aspect-ratio 1:1 %s %s >%s/tool.log 2>&1", TRANSFORM,
		    cfg, dir, i == 0 ? VERTEX_MODEL : OPENAI_MODEL,
		    plugins[i], in, out, dir);
		ck_assert_msg(system(cmd) == 0, "%s", cmd);
		snprintf(cmd, sizeof(cmd), "%s/tool.log", dir);
		ck_assert_int_eq(log_count(cmd, "ERROR: "), 0);	/* ASan */
		ck_assert_int_eq(log_count(cmd, "runtime error:"), 0);
		snprintf(cmd, sizeof(cmd), "text=[tool %s] -> image",
		    plugins[i]);
		ck_assert_int_eq(gemini_count(&gm, cmd), 1);
		poolkit_stop(&kit);
		if (i == 0)
			tokend_stop(&td);
	}
}
END_TEST

static Suite *
providers_suite(void)
{
	Suite *s = suite_create("providers");
	TCase *v = tcase_create("vertex"), *o = tcase_create("openai");

	tcase_add_unchecked_fixture(v, suite_up, suite_down);
	tcase_set_timeout(v, 120);
	tcase_add_test(v, vertex_happy_path);
	tcase_add_test(v, vertex_refreshes_a_refused_token);
	tcase_add_test(v, vertex_failures);
	tcase_add_test(v, vertex_without_the_role);
	tcase_add_test(v, vertex_with_an_unknown_key);
	tcase_add_test(v, vertex_init_refuses_a_bad_setup);
	suite_add_tcase(s, v);
	tcase_add_unchecked_fixture(o, suite_up, suite_down);
	tcase_set_timeout(o, 120);
	tcase_add_test(o, openai_happy_path_and_sizes);
	tcase_add_test(o, openai_failures);
	tcase_add_test(o, openai_with_a_wrong_key);
	tcase_add_test(o, openai_init_refuses_a_bad_setup);
	tcase_add_test(o, the_transform_tool_runs_both);
	suite_add_tcase(s, o);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(providers_suite());
	int failed;

	log_init();
	log_level = LOG_ERR;
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
