/*
 * integration.c - firesyncd against the official Firestore emulator.
 *
 * One emulator is started for the run on a free port (the restart test
 * starts its own); every test uses its own project id, so tests never see
 * each other's documents.  The test plays the web app: it writes the
 * experience, the capture file and the session, then waits for the daemon
 * to finish the session and checks the document it left.  If the emulator
 * is missing the run FAILS: it is installed on every machine of ours.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <curl/curl.h>
#include <grpc/grpc.h>
#include <png.h>

#include "alloc.h"
#include "delayproxy.h"
#include "emulator.h"
#include "engine.h"
#include "gemini.h"
#include "image.h"
#include "log.h"
#include "httpd.h"
#include "testimg.h"
#include "text.h"
#include "watch.h"

static struct emulator em;

/* AddressSanitizer turns a plugin's SIGSEGV into an abort (SIGABRT) */
#if defined(__SANITIZE_ADDRESS__)
#define CRASH_SIGNAL "6"
#else
#define CRASH_SIGNAL "11"
#endif

struct ctx {
	char project[80];
	char root[128];
	char log[160];
	const char *host;
	struct fs_client *c;
};

/*
 * Each test works in /tmp/fsit-RUNNER-XXXXXX, RUNNER being the pid of the
 * process that runs the suite, and removes it when it passes.  A failed
 * check ends the test's process at once, so the runner shows the daemon
 * logs of the directories left behind: the first thing anyone needs.
 */
static pid_t runner;

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static void
make_root(char *root, size_t len)
{
	snprintf(root, len, "/tmp/fsit-%d-XXXXXX", (int)runner);
	ck_assert_ptr_nonnull(mkdtemp(root));
}

static void
remove_root(const char *root)
{
	nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* After a failed run: the logs of the tests that failed, and the emulator's. */
static void
show_failure_logs(void)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd),
	    "for f in /tmp/fsit-%d-*/*.log %s; do [ -e \"$f\" ] || continue; "
	    "echo \"---- $f (last 60 lines)\"; tail -n 60 \"$f\"; done 1>&2",
	    (int)runner, em.log);
	if (system(cmd) != 0)
		fprintf(stderr, "(could not show the logs)\n");
}

static void
ctx_init(struct ctx *t, const char *name, const char *host)
{
	static int seq;

	grpc_init();
	snprintf(t->project, sizeof(t->project), "it-%s-%d-%d", name,
	    (int)getpid(), ++seq);
	make_root(t->root, sizeof(t->root));
	snprintf(t->log, sizeof(t->log), "%s/daemon.log", t->root);
	t->host = host;
	t->c = admin_client(host, t->project);
}

static void
ctx_done(struct ctx *t)
{
	fs_client_free(t->c);
	grpc_shutdown();
	remove_root(t->root);
}

static pid_t
start_daemon(struct ctx *t, const char *logpath, const char *const *extra)
{
	const char *args[40] = {
		"--emulator", t->host, "--project", t->project,
		"--storage-root", t->root, "--log-level", "debug",
		"--workers", "2",
	};
	int n = 10;

	for (; extra && *extra; extra++)
		args[n++] = *extra;
	args[n] = NULL;
	return daemon_spawn(FIRESYNCD, args, logpath ? logpath : t->log);
}

static char *
put_input(struct ctx *t, const char *ev, const char *ss, int orientation,
    uint32_t w, uint32_t h)
{
	char path[512];
	uint8_t *jpg;
	size_t len;

	testimg_jpeg(w, h, orientation, &jpg, &len);
	snprintf(path, sizeof(path), "%s/captures/%s/%s/input.jpg", t->root,
	    ev, ss);
	testimg_write(path, jpg, len);
	free(jpg);
	return xasprintf("captures/%s/%s/input.jpg", ev, ss);
}

/* An experience with this model, prompt and referenceImageUrls (an array
 * Value, consumed; NULL for none). */
static void
put_experience_shaped(struct ctx *t, const char *id, bool enabled,
    const char *model, const char *prompt, FsValue *refs, const char *aspect)
{
	FsValue *f = value_map(), *cfg = value_map();
	char path[256];

	value_map_put(cfg, "enabled", value_bool(enabled));
	value_map_put(cfg, "model", value_string(model));
	value_map_put(cfg, "prompt", value_string(prompt));
	value_map_put(cfg, "aspectRatio", value_string(aspect));
	value_map_put(cfg, "referenceImageUrls", refs ? refs : value_array());
	value_map_put(f, "name", value_string(id));
	value_map_put(f, "aiPhotoConfig", cfg);
	snprintf(path, sizeof(path), "experiences/%s", id);
	ck_assert_int_eq(admin_set(t->c, path, f), 0);
}

static void
put_experience_full(struct ctx *t, const char *id, bool enabled,
    const char *model, const char *prompt, FsValue *refs)
{
	put_experience_shaped(t, id, enabled, model, prompt, refs, "1:1");
}

/* An AI experience with this prompt and references. */
static void
put_experience_with(struct ctx *t, const char *id, const char *model,
    const char *prompt, FsValue *refs)
{
	put_experience_full(t, id, true, model, prompt, refs);
}

static void
put_experience(struct ctx *t, const char *id, bool enabled,
    const char *model)
{
	put_experience_full(t, id, enabled, model, "make it fun", NULL);
}

static void
capture(struct ctx *t, const char *ev, const char *ss, const char *exp,
    const char *input)
{
	char path[256];

	snprintf(path, sizeof(path), "events/%s/sessions/%s", ev, ss);
	ck_assert_int_eq(admin_set(t->c, path,
	    session_fields(ev, ss, exp, input, now_wall_ms())), 0);
}

/* The guest's photo (a test JPEG) is stored, then the session captured. */
static void
capture_photo(struct ctx *t, const char *ev, const char *ss, const char *exp,
    int orientation, uint32_t w, uint32_t h)
{
	char *in = put_input(t, ev, ss, orientation, w, h);

	capture(t, ev, ss, exp, in);
	free(in);
}

static const char *
state_of(const FsDocument *d)
{
	const char *s = d ? doc_string(d, "state") : NULL;

	return s ? s : "(none)";
}

/* Wait until the session is ready or error; returns the document. */
static FsDocument *
wait_final(struct ctx *t, const char *ev, const char *ss, int64_t ms)
{
	char path[256];
	int64_t end = test_now_ms() + ms;
	FsDocument *d = NULL;

	snprintf(path, sizeof(path), "events/%s/sessions/%s", ev, ss);
	while (test_now_ms() < end) {
		const char *st;

		doc_free(d);
		d = admin_get(t->c, path);
		st = state_of(d);
		if (strcmp(st, "ready") == 0 || strcmp(st, "error") == 0)
			return d;
		usleep(20000);
	}
	ck_abort_msg("session %s/%s did not finish in %lld ms (state %s); "
	    "see %s", ev, ss, (long long)ms, state_of(d), t->log);
	return NULL;
}

/* Wait until the session is "transforming"; aborts after 30 s. */
static void
wait_transforming(struct ctx *t, const char *path)
{
	int64_t end = test_now_ms() + 30000;

	for (;;) {
		FsDocument *doc = admin_get(t->c, path);
		bool yes = strcmp(state_of(doc), "transforming") == 0;

		doc_free(doc);
		if (yes)
			return;
		ck_assert_msg(test_now_ms() < end, "%s never transforming",
		    path);
		usleep(20000);
	}
}

static void
assert_error(struct ctx *t, const char *ev, const char *ss,
    const char *expect)
{
	FsDocument *d = wait_final(t, ev, ss, 30000);
	const char *err = doc_string(d, "error");

	ck_assert_msg(strcmp(state_of(d), "error") == 0,
	    "%s: state %s, expected error", ss, state_of(d));
	ck_assert_msg(err && strncmp(err, "AI transform failed: ", 21) == 0,
	    "%s: error '%s' lacks the prefix", ss, err ? err : "(none)");
	ck_assert_msg(strstr(err, expect) != NULL,
	    "%s: error '%s' does not say '%s'", ss, err, expect);
	ck_assert_ptr_null(doc_get(d, "resultImagePath"));
	doc_free(d);
}

static void
schema_ok(struct ctx *t)
{
	char cmd[512];
	int rc;

	snprintf(cmd, sizeof(cmd), "node %s %s %s", SCHEMA_CHECK, t->host,
	    t->project);
	rc = system(cmd);
	ck_assert_msg(rc == 0, "session documents fail the zod schema "
	    "(make check installs the checker into tests/schema of the build "
	    "tree with npm)");
}


/* Decode the result PNG at the URL's path (file:// URLs). */
static void
load_result(const char *url, struct image *img)
{
	const char *path = url + strlen("file://");
	FILE *f = fopen(path, "rb");
	static uint8_t buf[8 << 20];
	size_t n;
	char err[256];

	ck_assert_msg(f != NULL, "result %s missing", path);
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	ck_assert_int_eq(image_sniff(buf, n), IMAGE_PNG);
	ck_assert_int_eq(image_decode(buf, n, 100000000, img, err,
	    sizeof(err)), 0);
}

static bool
alive(pid_t pid)
{
	int status;

	return waitpid(pid, &status, WNOHANG) == 0;
}

/* ---- tests ---- */

START_TEST(ai_off_session_ends_ready)
{
	struct ctx t;
	pid_t d;
	FsDocument *doc;
	char *input, want[512];
	struct image img;
	const uint8_t *px;

	ctx_init(&t, "aioff", em.host);
	d = start_daemon(&t, NULL, NULL);
	put_experience(&t, "exp_plain", false, "cartoon");
	/* EXIF 6: stored 64x48, shown 48x64 with the red quadrant top-right */
	input = put_input(&t, "evt_1", "sess_1", 6, 64, 48);
	capture(&t, "evt_1", "sess_1", "exp_plain", input);
	doc = wait_final(&t, "evt_1", "sess_1", 30000);

	ck_assert_str_eq(state_of(doc), "ready");
	snprintf(want, sizeof(want),
	    "file://%s/results/evt_1/sess_1/result.png", t.root);
	ck_assert_str_eq(doc_string(doc, "resultImagePath"), want);
	ck_assert_ptr_null(doc_get(doc, "error"));
	ck_assert_int_eq(doc_get(doc, "updatedAt")->value_type_case,
	    FSV(INTEGER_VALUE));
	/* fields that are not ours are untouched */
	ck_assert_str_eq(doc_string(doc, "inputImagePath"), input);
	ck_assert_str_eq(doc_string(doc, "journeyId"), "journey_001");
	ck_assert_int_eq(doc_get(doc, "currentStepIndex")->integer_value, 4);
	ck_assert_str_eq(value_map_get(value_map_get(doc_get(doc, "data"),
	    "step_name"), "value")->string_value, "Jane Doe");

	load_result(want, &img);
	ck_assert_uint_eq(img.width, 48);
	ck_assert_uint_eq(img.height, 64);
	px = img.pixels + ((size_t)(img.height / 4) * img.width +
	    img.width * 3 / 4) * img.channels;
	ck_assert_msg(px[0] > 180 && px[1] < 80, "top-right is not red: "
	    "%d,%d,%d", px[0], px[1], px[2]);
	image_free(&img);
	doc_free(doc);
	free(input);
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	ctx_done(&t);
}
END_TEST

START_TEST(failures_end_in_error_and_daemon_keeps_serving)
{
	struct ctx t;
	pid_t d;
	char *in, path[512];
	FILE *f;

	ctx_init(&t, "fail", em.host);
	d = start_daemon(&t, NULL, NULL);
	put_experience(&t, "exp_plain", false, "none");
	put_experience(&t, "exp_vendor", true, "vendor-x");

	capture_photo(&t, "E", "unknown_model", "exp_vendor", 1, 32, 32);

	in = put_input(&t, "E", "corrupt", 1, 32, 32);
	snprintf(path, sizeof(path), "%s/%s", t.root, in);
	f = fopen(path, "r+b");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(ftruncate(fileno(f), 200), 0);	/* truncated JPEG */
	fclose(f);
	capture(&t, "E", "corrupt", "exp_plain", in);
	free(in);

	capture(&t, "E", "missing_input", "exp_plain",
	    "captures/E/missing_input/input.jpg");
	in = put_input(&t, "E", "traversal", 1, 16, 16);
	free(in);
	capture(&t, "E", "traversal", "exp_plain",
	    "captures/E/traversal/../other/input.jpg");
	in = put_input(&t, "OTHER", "s", 1, 16, 16);
	capture(&t, "E", "foreign", "exp_plain", in);
	free(in);
	capture_photo(&t, "E", "no_experience", "exp_does_not_exist", 1, 16, 16);
	capture_photo(&t, "E", "no_selection", NULL, 1, 16, 16);
	in = put_input(&t, "E", "encoded", 1, 16, 16);
	free(in);
	capture(&t, "E", "encoded", "exp_plain",
	    "captures/E/encoded/%2e%2e/x.jpg");

	assert_error(&t, "E", "unknown_model", "no plugin for model 'vendor-x'");
	assert_error(&t, "E", "corrupt", "input image is not a valid JPEG/PNG");
	assert_error(&t, "E", "missing_input", "input image not found");
	assert_error(&t, "E", "traversal", "input image path refused");
	assert_error(&t, "E", "foreign", "not under captures/E/foreign/");
	assert_error(&t, "E", "no_experience",
	    "experience 'exp_does_not_exist' not found");
	assert_error(&t, "E", "no_selection", "no experience selected");
	assert_error(&t, "E", "encoded", "input image path refused");

	/* and it still serves */
	capture_photo(&t, "E", "after", "exp_plain", 1, 16, 16);
	{
		FsDocument *doc = wait_final(&t, "E", "after", 30000);

		ck_assert_str_eq(state_of(doc), "ready");
		doc_free(doc);
	}
	ck_assert(alive(d));
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	ctx_done(&t);
}
END_TEST

/* Messages we write quote guest-controlled text cut to a length; a cut
 * inside a multi-byte character once made Firestore refuse the finish
 * and left the session going round "transforming".  What we write is
 * valid UTF-8. */
START_TEST(multibyte_text_is_cut_cleanly)
{
	char id[128], model[128], *in;
	const char *err;
	struct ctx t;
	FsDocument *d;
	pid_t p;
	size_t n = 0;

	ctx_init(&t, "utf8", em.host);
	memset(id, 'a', 99);
	snprintf(id + 99, sizeof(id) - 99, "\xC3\xA9zz");	/* a, then é */
	in = put_input(&t, "E", "S", 1, 16, 16);
	p = start_daemon(&t, NULL, NULL);
	capture(&t, "E", "S", id, in);
	free(in);
	d = wait_final(&t, "E", "S", 20000);
	ck_assert_str_eq(state_of(d), "error");
	err = doc_string(d, "error");
	ck_assert_ptr_nonnull(strstr(err, "not found"));
	ck_assert_msg(text_is_clean(err), "not clean UTF-8: %s", err);
	doc_free(d);

	/* an id and a model name of two-byte characters only, both longer
	 * than a message shows: cut between characters, marked with "…",
	 * never a half character turned into U+FFFD */
	id[n++] = 'x';
	for (int i = 0; i < 60; i++) {
		id[n++] = '\xC3';
		id[n++] = '\xA9';
	}
	id[n] = '\0';
	in = put_input(&t, "E", "S2", 1, 16, 16);
	capture(&t, "E", "S2", id, in);
	free(in);
	d = wait_final(&t, "E", "S2", 20000);
	err = doc_string(d, "error");
	ck_assert_msg(strstr(err, "experience 'x\xC3\xA9\xC3\xA9") != NULL &&
	    strstr(err, "\xC3\xA9\xE2\x80\xA6' not found") != NULL, "%s", err);
	ck_assert_ptr_null(strstr(err, "\xEF\xBF\xBD"));
	doc_free(d);
	for (n = 0; n < 70; n += 2)
		memcpy(model + n, "\xC3\xA9", 2);
	model[n] = '\0';
	put_experience(&t, "exp_longmodel", true, model);
	in = put_input(&t, "E", "S3", 1, 16, 16);
	capture(&t, "E", "S3", "exp_longmodel", in);
	free(in);
	d = wait_final(&t, "E", "S3", 20000);
	err = doc_string(d, "error");
	ck_assert_msg(strstr(err, "no plugin for model '\xC3\xA9\xC3\xA9") !=
	    NULL && strstr(err, "\xC3\xA9\xE2\x80\xA6'") != NULL, "%s", err);
	ck_assert_ptr_null(strstr(err, "\xEF\xBF\xBD"));
	doc_free(d);
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(p, 10000), 0);
	ctx_done(&t);
}
END_TEST

START_TEST(retry_after_error_is_processed_again)
{
	static const char *const mask[] = { "state", "updatedAt" };
	struct ctx t;
	pid_t d;
	char *in;
	FsDocument *doc;
	FsValue *f;

	ctx_init(&t, "retry", em.host);
	d = start_daemon(&t, NULL, NULL);
	put_experience(&t, "exp_plain", false, "none");
	capture(&t, "E", "S", "exp_plain", "captures/E/S/input.jpg");
	assert_error(&t, "E", "S", "input image not found");

	/* the guest retries: error -> created -> captured, photo uploaded */
	f = value_map();
	value_map_put(f, "state", value_string("created"));
	value_map_put(f, "updatedAt", value_int(now_wall_ms()));
	ck_assert_int_eq(admin_update(t.c, "events/E/sessions/S", f, mask, 2),
	    0);
	in = put_input(&t, "E", "S", 1, 24, 24);
	free(in);
	f = value_map();
	value_map_put(f, "state", value_string("captured"));
	value_map_put(f, "updatedAt", value_int(now_wall_ms()));
	ck_assert_int_eq(admin_update(t.c, "events/E/sessions/S", f, mask, 2),
	    0);
	doc = wait_final(&t, "E", "S", 30000);
	ck_assert_str_eq(state_of(doc), "ready");
	ck_assert_ptr_null(doc_get(doc, "error"));
	doc_free(doc);
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	ctx_done(&t);
}
END_TEST

START_TEST(backlog_captured_before_start_is_processed)
{
	struct ctx t;
	pid_t d;
	char ss[32];

	ctx_init(&t, "backlog", em.host);
	put_experience(&t, "exp_plain", false, "none");
	for (int i = 0; i < 5; i++) {
		snprintf(ss, sizeof(ss), "s%d", i);
		capture_photo(&t, "E", ss, "exp_plain", 1, 16, 16);
	}
	d = start_daemon(&t, NULL, NULL);
	for (int i = 0; i < 5; i++) {
		FsDocument *doc;

		snprintf(ss, sizeof(ss), "s%d", i);
		doc = wait_final(&t, "E", ss, 30000);
		ck_assert_str_eq(state_of(doc), "ready");
		doc_free(doc);
	}
	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	ctx_done(&t);
}
END_TEST

START_TEST(two_daemons_share_a_burst_without_double_claims)
{
	struct ctx t;
	pid_t d1, d2;
	char log2[200], ev[16], ss[32], needle[128];
	int claims = 0;

	ctx_init(&t, "two", em.host);
	snprintf(log2, sizeof(log2), "%s/daemon2.log", t.root);
	put_experience(&t, "exp_plain", false, "none");
	d1 = start_daemon(&t, NULL, NULL);
	d2 = start_daemon(&t, log2, NULL);
	/* both listening: each has had its first current snapshot */
	ck_assert_int_eq(log_count_reaches(t.log, "first snapshot current", 1,
	    60000), 1);
	ck_assert_int_eq(log_count_reaches(log2, "first snapshot current", 1,
	    60000), 1);
	for (int i = 0; i < 40; i++) {
		snprintf(ev, sizeof(ev), "ev%d", i % 3);
		snprintf(ss, sizeof(ss), "s%02d", i);
		capture_photo(&t, ev, ss, "exp_plain", 1, 16, 16);
	}
	for (int i = 0; i < 40; i++) {
		FsDocument *doc;
		int n;

		snprintf(ev, sizeof(ev), "ev%d", i % 3);
		snprintf(ss, sizeof(ss), "s%02d", i);
		doc = wait_final(&t, ev, ss, 60000);
		ck_assert_str_eq(state_of(doc), "ready");
		ck_assert_int_eq(doc_get(doc, "transformAttempts")->integer_value,
		    1);
		doc_free(doc);
		snprintf(needle, sizeof(needle),
		    "session=%s event=%s state=transforming", ss, ev);
		n = log_count(t.log, needle) + log_count(log2, needle);
		ck_assert_msg(n == 1, "%s/%s claimed %d times", ev, ss, n);
		claims += log_count(log2, needle);
	}
	/* both took part (not a requirement, but a burst this size is
	 * shared unless one daemon starved) */
	fprintf(stderr, "two daemons: second one claimed %d of 40\n", claims);
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(d1, 10000), 0);
	ck_assert_int_eq(daemon_stop(d2, 10000), 0);
	ctx_done(&t);
}
END_TEST

START_TEST(emulator_restart_loses_nothing)
{
	struct emulator own = { 0 };
	struct ctx t;
	pid_t d;
	FsDocument *doc;
	int rc;

	ck_assert_int_eq(emulator_start(&own, FIRESTORE_EMULATOR, 0), 0);
	ctx_init(&t, "restart", own.host);
	d = start_daemon(&t, NULL, NULL);
	put_experience(&t, "exp_plain", false, "none");
	capture_photo(&t, "E", "before", "exp_plain", 1, 16, 16);
	doc = wait_final(&t, "E", "before", 30000);
	ck_assert_str_eq(state_of(doc), "ready");
	doc_free(doc);

	/* the emulator dies mid-stream and comes back (empty: it keeps
	 * data in memory) on the same port */
	emulator_stop(&own);
	sleep(2);
	ck_assert(alive(d));
	rc = emulator_start(&own, FIRESTORE_EMULATOR, own.port);
	ck_assert_int_eq(rc, 0);
	put_experience(&t, "exp_plain", false, "none");
	for (int i = 0; i < 3; i++) {
		char ss[32];

		snprintf(ss, sizeof(ss), "after%d", i);
		capture_photo(&t, "E", ss, "exp_plain", 1, 16, 16);
	}
	for (int i = 0; i < 3; i++) {
		char ss[32];

		snprintf(ss, sizeof(ss), "after%d", i);
		doc = wait_final(&t, "E", ss, 90000);
		ck_assert_str_eq(state_of(doc), "ready");
		doc_free(doc);
	}
	ck_assert(alive(d));
	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	ctx_done(&t);
	emulator_stop(&own);
	unlink(own.log);
}
END_TEST

/* A copy of the built test plugins under the test's own root. */
static char *
plugin_dir(struct ctx *t)
{
	char *dir = xasprintf("%s/plugins", t->root), cmd[512];

	snprintf(cmd, sizeof(cmd), "mkdir -m 755 %s && cp %s/*.so %s/ && "
	    "chmod 755 %s/*.so", dir, TEST_PLUGINS, dir, dir);
	ck_assert_int_eq(system(cmd), 0);
	return dir;
}

/*
 * Three daemons share a burst; one is killed with SIGKILL while it holds
 * claims.  The other two finish everything: the killed daemon's sessions
 * are found by the recovery query once their lease is over and run again,
 * and no session is finished twice or run more often than its attempts.
 */
START_TEST(a_daemon_killed_while_others_run_loses_nothing)
{
	enum { N = 30 };
	const char *extra[] = { "--plugin-dir", NULL, "--transform-timeout",
	    "3", "--recovery-margin", "1", "--recovery-interval", "1",
	    "--workers", "2", NULL };
	char logs[3][200], ev[16], ss[32], needle[128], *dir;
	int recovered = 0;
	struct ctx t;
	pid_t d[3];

	ctx_init(&t, "killone", em.host);
	dir = plugin_dir(&t);
	extra[1] = dir;
	put_experience_full(&t, "exp_slow", true, "test-passthrough",
	    "sleep 300", NULL);
	for (int i = 0; i < 3; i++) {
		snprintf(logs[i], sizeof(logs[i]), "%s/daemon%d.log", t.root,
		    i);
		d[i] = start_daemon(&t, logs[i], extra);
	}
	/* all listening: each has had its first current snapshot */
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(log_count_reaches(logs[i],
		    "first snapshot current", 1, 60000), 1);
	for (int i = 0; i < N; i++) {
		snprintf(ev, sizeof(ev), "ev%d", i % 3);
		snprintf(ss, sizeof(ss), "s%02d", i);
		capture_photo(&t, ev, ss, "exp_slow", 1, 16, 16);
	}
	/* kill the second daemon as soon as it holds a claim */
	ck_assert(log_count_reaches(logs[1], "state=transforming", 1, 30000));
	kill(d[1], SIGKILL);
	waitpid(d[1], NULL, 0);
	for (int i = 0; i < N; i++) {
		FsDocument *doc;
		int64_t attempts;
		int runs = 0, finished = 0;

		snprintf(ev, sizeof(ev), "ev%d", i % 3);
		snprintf(ss, sizeof(ss), "s%02d", i);
		doc = wait_final(&t, ev, ss, 90000);
		ck_assert_str_eq(state_of(doc), "ready");
		attempts = doc_get(doc, "transformAttempts")->integer_value;
		doc_free(doc);
		for (int k = 0; k < 3; k++) {
			snprintf(needle, sizeof(needle),
			    "transform-run session=%s event=%s", ss, ev);
			runs += log_count(logs[k], needle);
			snprintf(needle, sizeof(needle),
			    "session=%s event=%s model=test-passthrough "
			    "plugin=test-passthrough state=ready", ss, ev);
			finished += log_count(logs[k], needle);
		}
		/* (the killed daemon may die between its finish landing
		 * and its log line: then no line says so) */
		ck_assert_msg(finished <= 1, "%s/%s finished %d times", ev, ss,
		    finished);
		ck_assert_msg(runs >= 1 && runs <= attempts, "%s/%s ran %d "
		    "times in %" PRId64 " attempt(s)", ev, ss, runs, attempts);
		recovered += attempts > 1;
	}
	/* the killed daemon held at least one claim it never finished */
	ck_assert_int_ge(recovered, 1);
	ck_assert_int_ge(log_count(logs[0], "its daemon was interrupted") +
	    log_count(logs[2], "its daemon was interrupted"), recovered);
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(d[0], 10000), 0);
	ck_assert_int_eq(daemon_stop(d[2], 10000), 0);
	free(dir);
	ctx_done(&t);
}
END_TEST

START_TEST(sigkill_mid_transform_is_recovered)
{
	static const char *const fast[] = { "--transform-timeout", "2",
	    "--recovery-margin", "1", "--recovery-interval", "1", NULL };
	const char *hang[3] = { "--plugin-dir", NULL, NULL };
	char path[256], log2[200], *dir;
	struct ctx t;
	pid_t d;
	char *in;
	FsDocument *doc = NULL;
	int64_t end;

	ctx_init(&t, "sigkill", em.host);
	snprintf(log2, sizeof(log2), "%s/daemon2.log", t.root);
	/* the model hangs, so the session stays transforming until the
	 * daemon is killed, however fast or slow this machine is */
	dir = plugin_dir(&t);
	hang[1] = dir;
	put_experience(&t, "exp", true, "test-hang");
	in = put_input(&t, "E", "S", 1, 64, 48);
	d = start_daemon(&t, NULL, hang);
	capture(&t, "E", "S", "exp", in);
	free(in);
	snprintf(path, sizeof(path), "events/E/sessions/S");
	end = test_now_ms() + 30000;
	for (;;) {
		doc = admin_get(t.c, path);
		if (strcmp(state_of(doc), "transforming") == 0)
			break;
		ck_assert_str_eq(state_of(doc), "captured");
		ck_assert_msg(test_now_ms() < end, "never saw the session "
		    "transforming");
		doc_free(doc);
		usleep(20000);
	}
	doc_free(doc);
	kill(d, SIGKILL);
	waitpid(d, NULL, 0);
	doc = admin_get(t.c, path);
	ck_assert_str_eq(state_of(doc), "transforming");
	doc_free(doc);

	/* the organiser turns the model off; the next daemon finds the
	 * session abandoned and runs it again, once */
	put_experience(&t, "exp", false, "none");
	d = start_daemon(&t, log2, fast);
	doc = wait_final(&t, "E", "S", 60000);
	ck_assert_str_eq(state_of(doc), "ready");
	ck_assert_int_eq(doc_get(doc, "transformAttempts")->integer_value, 2);
	doc_free(doc);
	ck_assert_int_eq(log_count(log2, "its daemon was interrupted"), 1);
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	free(dir);
	ctx_done(&t);
}
END_TEST

/* A SIGTERM whose drain timeout passes during a long transform leaves
 * that session "transforming" for the next daemon's recovery: nothing is
 * written after the timeout, and nothing the session thread uses is
 * freed under it (the sanitizer build would abort). */
START_TEST(a_drain_timeout_leaves_the_session_to_recovery)
{
	const char *args[] = { "--plugin-dir", NULL, "--drain-timeout", "1",
	    "--transform-timeout", "60", NULL };
	struct ctx t;
	FsDocument *doc;
	pid_t d;
	char *in, *dir;
	int status;

	ctx_init(&t, "draintimeout", em.host);
	dir = plugin_dir(&t);
	args[1] = dir;
	put_experience(&t, "exp", true, "test-hang");
	in = put_input(&t, "E", "S", 1, 64, 48);
	d = start_daemon(&t, NULL, args);
	capture(&t, "E", "S", "exp", in);
	free(in);
	wait_transforming(&t, "events/E/sessions/S");
	kill(d, SIGTERM);
	ck_assert_int_eq(waitpid(d, &status, 0), d);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "daemon status %d", status);
	doc = admin_get(t.c, "events/E/sessions/S");
	ck_assert_str_eq(state_of(doc), "transforming");
	doc_free(doc);
	ck_assert_int_eq(log_count(t.log, "leaving them 'transforming'"), 1);
	ck_assert_int_eq(log_count(t.log, "left 'transforming' at shutdown"),
	    1);
	ck_assert_int_eq(log_count(t.log, "crashed"), 0);
	schema_ok(&t);
	free(dir);
	ctx_done(&t);
}
END_TEST

/* The web app updating a field of its own mid-transform does not cost the
 * guest the result: the claim is still ours, so the finish is made against
 * the new version. */
START_TEST(an_unrelated_write_mid_transform_keeps_the_result)
{
	static const char *const mask[] = { "currentStepIndex" };
	const char *args[] = { "--plugin-dir", NULL, NULL };
	struct ctx t;
	FsDocument *d;
	FsValue *f;
	pid_t p;
	char *in, *dir;

	ctx_init(&t, "unrelated", em.host);
	dir = plugin_dir(&t);
	args[1] = dir;
	put_experience_with(&t, "slow", "probe-slow", "1500", NULL);
	in = put_input(&t, "E", "S", 1, 16, 16);
	p = start_daemon(&t, NULL, args);
	capture(&t, "E", "S", "slow", in);
	free(in);
	wait_transforming(&t, "events/E/sessions/S");
	f = value_map();
	value_map_put(f, "currentStepIndex", value_int(4));
	ck_assert_int_eq(admin_update(t.c, "events/E/sessions/S", f, mask, 1),
	    0);
	d = wait_final(&t, "E", "S", 20000);
	ck_assert_str_eq(state_of(d), "ready");
	ck_assert_int_eq(doc_get(d, "currentStepIndex")->integer_value, 4);
	doc_free(d);
	ck_assert_int_eq(log_count(t.log, "result dropped"), 0);
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(p, 10000), 0);
	free(dir);
	ctx_done(&t);
}
END_TEST

/* The position (0-based) of session ss's first claim in the log, or -1. */
static int
claim_position(const char *log, const char *ss)
{
	FILE *f = fopen(log, "r");
	char line[4096], want[96];
	int n = 0, at = -1;

	ck_assert_ptr_nonnull(f);
	snprintf(want, sizeof(want), "session=%s ", ss);
	while (at < 0 && fgets(line, sizeof(line), f)) {
		if (strstr(line, "state=transforming") == NULL)
			continue;
		if (strncmp(strstr(line, "session="), want, strlen(want)) == 0)
			at = n;
		n++;
	}
	fclose(f);
	return at;
}

/* The fairness tests' guests all end ready: b0..b{n-1} of event "big",
 * and each of others[] in the event named by its first letter. */
static void
fair_all_ready(struct ctx *t, int n, const char *const *others)
{
	char ev[8], ss[16];

	for (int i = 0; i < n + 3; i++) {
		FsDocument *d;

		if (i < n)
			snprintf(ss, sizeof(ss), "b%d", i);
		else
			snprintf(ev, sizeof(ev), "%c", others[i - n][0]);
		d = i < n ? wait_final(t, "big", ss, 60000) :
		    wait_final(t, ev, others[i - n], 60000);
		ck_assert_str_eq(state_of(d), "ready");
		doc_free(d);
	}
}

/*
 * Where ss was in the order the daemon took its sessions for a claim
 * (from 0), -1 if never.  Claims in flight together land in any order,
 * so the take is read off each claim's debug line: its time less the
 * claim's round trip.
 */
static int
take_position(const char *log, const char *ss)
{
	FILE *f = fopen(log, "r");
	char line[4096], id[128], want[160];
	int64_t mine = -1, t[256];
	int n = 0, at = 0;

	ck_assert_ptr_nonnull(f);
	snprintf(want, sizeof(want), "%s", ss);
	while (fgets(line, sizeof(line), f) && n < 256) {
		int hh, mm, ss_, ms;
		long q, c;
		const char *p = strstr(line, " session=");

		if (p == NULL || strstr(line, ", claimed in ") == NULL ||
		    sscanf(line, "%*10sT%d:%d:%d.%dZ", &hh, &mm, &ss_, &ms) != 4 ||
		    sscanf(p, " session=%127s event=%*s queued %ld ms, claimed "
		    "in %ld ms", id, &q, &c) != 3)
			continue;
		t[n] = ((int64_t)hh * 3600 + mm * 60 + ss_) * 1000 + ms - c;
		if (strcmp(id, want) == 0)
			mine = t[n];
		n++;
	}
	fclose(f);
	if (mine < 0)
		return -1;
	for (int i = 0; i < n; i++)
		at += t[i] < mine;
	return at;
}

/* Each of the three others[] was claimed lo-th to hi-th (from 0). */
static void
fair_claims_within(struct ctx *t, const char *const *others, int lo, int hi)
{
	for (int i = 0; i < 3; i++) {
		int at = claim_position(t->log, others[i]);

		ck_assert_msg(at >= lo && at <= hi, "%s claimed %dth",
		    others[i], at + 1);
	}
}

/* The sessions queued for a claim, by the daemon's metrics at port. */
static int
queued(int port)
{
	char url[64], *v;
	uint8_t *body = NULL;
	size_t len;
	int n = -1;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
	if (http_get(url, NULL, &body, &len) == 200 &&
	    (v = strstr((char *)body, "\nfiresync_sessions_queued ")) != NULL)
		n = atoi(v + strlen("\nfiresync_sessions_queued "));
	free(body);
	return n;
}

/*
 * One event with eight guests waiting, then one guest in each of three
 * other events: the three are served in turn with the big event's
 * guests, not after all of them.  The transforms wait at a gate the test
 * opens once all eleven are in the daemon's hands, so the order is the
 * queue's, whatever the machine's speed.
 */
START_TEST(every_event_gets_its_turn)
{
	const char *args[] = { "--plugin-dir", NULL, "--workers", "1",
	    "--metrics-listen", NULL, NULL };
	static const char *const others[] = { "x1", "y1", "z1" };
	struct ctx t;
	pid_t p;
	char *dir, ss[16], gate[256], listen[32];
	int port = free_port();
	int64_t end;

	ctx_init(&t, "fair", em.host);
	dir = plugin_dir(&t);
	args[1] = dir;
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	args[5] = listen;
	snprintf(gate, sizeof(gate), "%s/gate", dir);
	put_experience_with(&t, "gated", "probe-gate", gate, NULL);
	p = start_daemon(&t, NULL, args);
	for (int i = 0; i < 8; i++) {
		snprintf(ss, sizeof(ss), "b%d", i);
		capture_photo(&t, "big", ss, "gated", 1, 16, 16);
	}
	wait_transforming(&t, "events/big/sessions/b0");
	for (int i = 0; i < 3; i++) {
		char ev[8];

		snprintf(ev, sizeof(ev), "%c", others[i][0]);
		capture_photo(&t, ev, others[i], "gated", 1, 16, 16);
	}
	/* b0 at the gate, b1 claimed behind it (one worker, two claim
	 * slots), and the other nine queued: then open the gate */
	end = test_now_ms() + 60000;
	while (queued(port) < 9) {
		ck_assert_msg(test_now_ms() < end, "only %d queued",
		    queued(port));
		usleep(20000);
	}
	ck_assert_int_eq(close(creat(gate, 0644)), 0);
	fair_all_ready(&t, 8, others);
	/*
	 * b0 and b1 were taken before the others came.  Then each take goes
	 * to the event with the fewest in flight: x1, y1 and z1 all before
	 * b3 (b2 may come first once b0 and b1 are done).  The log shows
	 * claims as they land, and the two claims a slot pair allows in
	 * flight may land in either order, so each of the three is within
	 * the first seven (the previous runners: 9th to 11th).
	 */
	fair_claims_within(&t, others, 1, 6);
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(p, 10000), 0);
	free(dir);
	ctx_done(&t);
}
END_TEST

/* Reference images resolve only under references/: one guest's capture
 * (or result) is never another's reference, however the URL is written. */
START_TEST(references_come_only_from_references)
{
	const char *args[] = { "--plugin-dir", NULL, NULL };
	struct ctx t;
	FsValue *refs = value_array();
	pid_t p;
	char *in, *dir, url[512];

	ctx_init(&t, "refs", em.host);
	dir = plugin_dir(&t);
	args[1] = dir;
	free(put_input(&t, "Other", "victim", 1, 16, 16));
	snprintf(url, sizeof(url), "file://%s/captures/Other/victim/input.jpg",
	    t.root);
	value_array_add(refs, value_string(url));
	value_array_add(refs, value_string(
	    "captures/Other/victim/input.jpg"));
	value_array_add(refs, value_string("results/Other/victim/result.png"));
	value_array_add(refs, value_string("references/../captures/Other/"
	    "victim/input.jpg"));
	value_array_add(refs, value_string("references/style.jpg"));
	{
		uint8_t *jpg;
		size_t len;
		char path[512];

		snprintf(path, sizeof(path), "mkdir -p %s/references", t.root);
		ck_assert_int_eq(system(path), 0);
		snprintf(path, sizeof(path), "%s/references/style.jpg",
		    t.root);
		testimg_jpeg(16, 16, 1, &jpg, &len);
		testimg_write(path, jpg, len);
		free(jpg);
	}
	put_experience_with(&t, "probe", "probe-refs", "", refs);
	in = put_input(&t, "E", "S", 1, 16, 16);
	p = start_daemon(&t, NULL, args);
	capture(&t, "E", "S", "probe", in);
	free(in);
	assert_error(&t, "E", "S", "AI transform failed: 1 reference(s)");
	ck_assert_int_eq(daemon_stop(p, 10000), 0);
	free(dir);
	ctx_done(&t);
}
END_TEST

/* Write session ss captured with a filler step of n bytes; the gRPC
 * status. */
static int
set_filler(struct ctx *t, const char *ss, const char *exp, const char *in,
    size_t n)
{
	FsValue *f = session_fields("E", ss, exp, in, now_wall_ms());
	char path[128];

	session_pad(f, n);
	snprintf(path, sizeof(path), "events/E/sessions/%s", ss);
	return admin_set(t->c, path, f);
}

/* A captured session headroom bytes under Firestore's 1 MiB document
 * limit, as the emulator counts it (found by asking it). */
static void
capture_big(struct ctx *t, const char *ss, const char *exp, int headroom)
{
	size_t lo = 1000000, hi = 1048576;	/* lo fits, hi does not */
	char *in = put_input(t, "E", ss, 1, 16, 16);

	ck_assert_int_eq(set_filler(t, ss, exp, in, lo), 0);
	ck_assert_int_ne(set_filler(t, ss, exp, in, hi), 0);
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (set_filler(t, ss, exp, in, mid) == 0)
			lo = mid;
		else
			hi = mid;
	}
	ck_assert_int_eq(set_filler(t, ss, exp, in, lo - (size_t)headroom),
	    0);
	free(in);
}

/* Documents at the 1 MiB limit: a claim that cannot be written is not
 * retried, and a finish that does not fit falls back to the smallest
 * update; either way the session ends "error", once. */
START_TEST(sessions_at_the_size_limit_end_in_error)
{
	struct ctx t;
	FsDocument *d;
	pid_t p;

	ctx_init(&t, "bigdoc", em.host);
	put_experience(&t, "exp_plain", false, "none");
	capture_big(&t, "noclaim", "exp_plain", 5);
	capture_big(&t, "nofinish", "exp_plain", 45);
	/* big, but with room: cached slim, read whole when it runs */
	capture_big(&t, "roomy", "exp_plain", 200000);
	p = start_daemon(&t, NULL, NULL);
	d = wait_final(&t, "E", "roomy", 20000);
	ck_assert_str_eq(state_of(d), "ready");
	doc_free(d);
	d = wait_final(&t, "E", "noclaim", 20000);
	ck_assert_str_eq(state_of(d), "error");
	doc_free(d);
	d = wait_final(&t, "E", "nofinish", 20000);
	ck_assert_str_eq(state_of(d), "error");
	ck_assert_ptr_null(doc_get(d, "resultImagePath"));
	doc_free(d);
	/* refused once, not again and again */
	usleep(1500000);
	ck_assert_int_eq(log_count(t.log, "session=noclaim event=E claim "
	    "refused"), 1);
	ck_assert_int_eq(log_count(t.log, "session=nofinish event=E model=none "
	    "finish refused"), 1);
	ck_assert_int_eq(log_count(t.log, "only the smallest update fitted"),
	    2);
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(p, 10000), 0);
	ctx_done(&t);
}
END_TEST

/* ---- the Cloud Storage backend: Google's Storage emulator, behind
 * nginx with TLS ---- */

struct gcs_env {
	struct storage_emu se;
	struct nginx nx;
	struct tokend td;
	const char *key;
	const char *args[24];
};

static void
gcs_env_start_tokens(struct gcs_env *g, const char *const *tokens,
    int n_tokens, const char *const *extra)
{
	int n = 0;

	ck_assert_int_eq(storage_emu_start(&g->se), 0);
	ck_assert_int_eq(nginx_start(&g->nx, "good-token", g->se.port), 0);
	g->td.expires_in = 0;
	tokend_start(&g->td, tokens, n_tokens);
	g->key = test_key_file(g->nx.dir, g->td.url);
	ck_assert_ptr_nonnull(g->key);
	g->args[n++] = "--storage-backend";
	g->args[n++] = "gcs";
	g->args[n++] = "--bucket";
	g->args[n++] = "b";
	g->args[n++] = "--storage-endpoint";
	g->args[n++] = g->nx.endpoint;
	g->args[n++] = "--storage-ca-file";
	g->args[n++] = g->nx.ca;
	g->args[n++] = "--credentials";
	g->args[n++] = g->key;
	/* download URLs through nginx, where the test can open them */
	g->args[n++] = "--public-url-base";
	g->args[n++] = g->nx.endpoint;
	for (; extra && *extra && n < 22; extra++)
		g->args[n++] = *extra;
	g->args[n] = NULL;
}

static void
gcs_env_start(struct gcs_env *g, struct ctx *t, const char *const *extra)
{
	static const char *const tokens[] = { "good-token" };

	(void)t;
	gcs_env_start_tokens(g, tokens, 1, extra);
}

static void
gcs_env_stop(struct gcs_env *g)
{
	tokend_stop(&g->td);
	nginx_stop(&g->nx);
	storage_emu_stop(&g->se);
}

/* The web app's upload: an object of the bucket. */
static void
gcs_put_object(struct gcs_env *g, const char *object, const uint8_t *data,
    size_t len)
{
	ck_assert_int_eq(storage_emu_put(&g->se, "b", object, data, len,
	    "image/jpeg"), 0);
}

static void
gcs_capture(struct gcs_env *g, struct ctx *t, const char *ss,
    const char *exp, uint32_t w, uint32_t h)
{
	char object[256];
	uint8_t *jpg;
	size_t len;

	snprintf(object, sizeof(object), "captures/E/%s/input.jpg", ss);
	testimg_jpeg(w, h, 1, &jpg, &len);
	gcs_put_object(g, object, jpg, len);
	free(jpg);
	capture(t, "E", ss, exp, object);
}

/* url opened with no credentials (ca: for https): the status; a PNG's
 * signature checked when it answers 200. */
static long
open_anonymously(const char *url, const char *ca)
{
	uint8_t *body = NULL;
	size_t len = 0;
	long status = http_get(url, ca, &body, &len);

	if (status == 200)
		ck_assert_msg(len > 8 && memcmp(body, "\x89PNG", 4) == 0,
		    "%s: not a PNG (%zu bytes)", url, len);
	free(body);
	return status;
}

/* url with its token replaced by token ("" drops it); caller frees. */
static char *
with_token(const char *url, const char *token)
{
	const char *t = strstr(url, "&token=");

	ck_assert_ptr_nonnull(t);
	return xasprintf("%.*s%s%s", (int)(t - url), url, *token ? "&token=" :
	    "", token);
}

START_TEST(gcs_sessions_end_to_end)
{
	static const char *const extra[] = { "--max-input-mb", "1",
	    "--plugin-dir", NULL, NULL };
	const char *ex[5];
	struct gcs_env g;
	struct ctx t;
	FsDocument *d;
	FsValue *refs = value_array();
	char want[512], *dir, *url, *other;
	pid_t p;

	ctx_init(&t, "gcs", em.host);
	dir = plugin_dir(&t);
	memcpy(ex, extra, sizeof(ex));
	ex[3] = dir;
	gcs_env_start(&g, &t, ex);
	put_experience(&t, "exp_plain", false, "none");
	/* references as a Firebase app stores them: a download URL (any
	 * token), gs://, a storage.googleapis.com URL; then one in
	 * captures/, one in another bucket, one on a foreign host */
	value_array_add(refs, value_string("https://firebasestorage."
	    "googleapis.com/v0/b/b/o/references%2Fwarm%20tone.jpg?alt=media&"
	    "token=6f1e0c7a-0000-4000-8000-000000000000"));
	value_array_add(refs, value_string("gs://b/references/cool.jpg"));
	value_array_add(refs, value_string("https://storage.googleapis.com/b/"
	    "references/third.jpg"));
	value_array_add(refs, value_string("gs://b/captures/E/ready/"
	    "input.jpg"));
	value_array_add(refs, value_string("gs://other/references/a.jpg"));
	value_array_add(refs, value_string("https://example.com/x.jpg"));
	put_experience_with(&t, "exp_refs", "probe-refs", "", refs);
	{
		static const char *const names[] = { "references/warm tone.jpg",
		    "references/cool.jpg", "references/third.jpg" };
		uint8_t *jpg;
		size_t len;

		testimg_jpeg(16, 16, 1, &jpg, &len);
		for (int i = 0; i < 3; i++)
			gcs_put_object(&g, names[i], jpg, len);
		free(jpg);
	}
	p = start_daemon(&t, NULL, g.args);
	gcs_capture(&g, &t, "ready", "exp_plain", 32, 24);
	{
		/* over --max-input-mb 1: refused from its size */
		size_t n = 3 << 19;
		uint8_t *junk = xcalloc(1, n);

		gcs_put_object(&g, "captures/E/big/input.jpg", junk, n);
		free(junk);
		capture(&t, "E", "big", "exp_plain",
		    "captures/E/big/input.jpg");
	}
	gcs_capture(&g, &t, "refs", "exp_refs", 16, 16);
	capture(&t, "E", "missing", "exp_plain",
	    "captures/E/missing/input.jpg");

	/* the result opens with its token and no credentials, and only
	 * with its token */
	d = wait_final(&t, "E", "ready", 30000);
	ck_assert_str_eq(state_of(d), "ready");
	url = xstrdup(doc_string(d, "resultImagePath"));
	doc_free(d);
	snprintf(want, sizeof(want), "%s/v0/b/b/o/results%%2FE%%2Fready%%2F"
	    "result.png?alt=media&token=", g.nx.endpoint);
	ck_assert_msg(strncmp(url, want, strlen(want)) == 0, "%s", url);
	ck_assert_uint_eq(strlen(url), strlen(want) + STORE_TOKEN_LEN);
	ck_assert_int_eq(open_anonymously(url, g.nx.ca), 200);
	other = with_token(url, "");
	ck_assert_int_eq(open_anonymously(other, g.nx.ca), 403);
	free(other);
	other = with_token(url, "00000000-0000-4000-8000-000000000000");
	ck_assert_int_eq(open_anonymously(other, g.nx.ca), 403);
	free(other);
	/* captured again: a new result, a new URL that works; the old one
	 * no longer opens it */
	gcs_capture(&g, &t, "ready", "exp_plain", 24, 24);
	d = wait_final(&t, "E", "ready", 30000);
	ck_assert_str_eq(state_of(d), "ready");
	ck_assert_str_ne(doc_string(d, "resultImagePath"), url);
	ck_assert_int_eq(open_anonymously(doc_string(d, "resultImagePath"),
	    g.nx.ca), 200);
	doc_free(d);
	ck_assert_int_eq(open_anonymously(url, g.nx.ca), 403);
	free(url);

	assert_error(&t, "E", "missing", "input image not found");
	assert_error(&t, "E", "big", "input image is too large");
	/* the three forms of the bucket's references/ reach the model; the
	 * rest are skipped, each with its reason */
	assert_error(&t, "E", "refs", "3 reference(s)");
	ck_assert_int_eq(log_count(t.log, "gs://b/captures/E/ready/input.jpg "
	    "is a guest's capture or result; not passed"), 1);
	ck_assert_int_eq(log_count(t.log, "gs://other/references/a.jpg is in "
	    "bucket other, not ours (b); not passed"), 1);
	ck_assert_int_eq(log_count(t.log, "https://example.com/x.jpg is not "
	    "a URL of our storage; not passed"), 1);

	/* a result that cannot be stored: the session says so */
	snprintf(want, sizeof(want), "%s/www/.noput", g.nx.dir);
	ck_assert_int_eq(close(creat(want, 0644)), 0);
	gcs_capture(&g, &t, "noput", "exp_plain", 16, 16);
	assert_error(&t, "E", "noput", "could not store the result");
	ck_assert_int_eq(log_count(t.log, "storage write failed"), 1);
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(p, 15000), 0);
	ck_assert_int_eq(log_count(t.log, "good-token"), 0);
	ck_assert_int_eq(log_count(t.log, "Bearer"), 0);
	ck_assert_int_eq(log_count(t.log, "bearer"), 0);
	gcs_env_stop(&g);
	free(dir);
	ctx_done(&t);
}
END_TEST

/* Through the daemon: a stale first token is refreshed once, a bucket
 * answering 503 for a while is waited out, and a bucket down for the
 * whole deadline ends the session with a clear error. */
START_TEST(gcs_faults_through_the_daemon)
{
	static const char *const tokens[] = { "stale-token", "good-token" };
	static const char *const extra[] = { "--storage-timeout", "3", NULL };
	struct gcs_env g;
	struct ctx t;
	FsDocument *d;
	char marker[256];
	pid_t p, lifter;

	ctx_init(&t, "gcsfaults", em.host);
	gcs_env_start_tokens(&g, tokens, 2, extra);
	put_experience(&t, "exp_plain", false, "none");
	p = start_daemon(&t, NULL, g.args);

	/* 401 with the stale token, then the fresh one works */
	gcs_capture(&g, &t, "refresh", "exp_plain", 16, 16);
	d = wait_final(&t, "E", "refresh", 30000);
	ck_assert_str_eq(state_of(d), "ready");
	doc_free(d);
	ck_assert_int_eq(g.td.served, 2);
	ck_assert_int_ge(nginx_log_wait(&g.nx, " 401 ", 1), 1);

	/* 503 until the first one is logged, then back */
	snprintf(marker, sizeof(marker), "%s/www/.unavailable", g.nx.dir);
	ck_assert_int_eq(close(creat(marker, 0644)), 0);
	lifter = fork();
	if (lifter == 0) {
		for (int i = 0; i < 3000 &&
		    nginx_log_count(&g.nx, " 503 ") == 0; i++)
			usleep(10000);
		unlink(marker);
		_exit(0);
	}
	gcs_capture(&g, &t, "flaky", "exp_plain", 16, 16);
	d = wait_final(&t, "E", "flaky", 30000);
	ck_assert_str_eq(state_of(d), "ready");
	doc_free(d);
	waitpid(lifter, NULL, 0);

	/* down for longer than --storage-timeout */
	ck_assert_int_eq(close(creat(marker, 0644)), 0);
	gcs_capture(&g, &t, "down", "exp_plain", 16, 16);
	assert_error(&t, "E", "down", "could not read the input image");
	ck_assert_int_ge(log_count(t.log, "storage read failed: GET "
	    "gs://b/captures/E/down/input.jpg"), 1);
	unlink(marker);
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(p, 15000), 0);
	ck_assert_int_eq(log_count(t.log, "stale-token"), 0);
	ck_assert_int_eq(log_count(t.log, "good-token"), 0);
	gcs_env_stop(&g);
	ctx_done(&t);
}
END_TEST

/* ---- production Firestore: TLS and tokens, through nginx ---- */

/* firesyncd as in production: no --emulator, TLS to endpoint with ca,
 * tokens from key; logging to logpath. */
static pid_t
start_production(struct ctx *t, const char *endpoint, const char *ca,
    const char *key, const char *logpath)
{
	const char *args[] = { "--project", t->project, "--storage-root",
	    t->root, "--log-level", "debug", "--workers", "2",
	    "--firestore-endpoint", endpoint, "--firestore-ca-file", ca,
	    "--credentials", key, "--idle-timeout", "20", NULL };

	return daemon_spawn(FIRESYNCD, args, logpath);
}

/* Sessions go captured -> ready through a TLS front that checks the
 * bearer token on every call; the wrong CA is a TLS error naming the
 * endpoint, and at start exit status 1; a token endpoint that is down at
 * start is exit status 1 with a clear message. */
START_TEST(production_path_tls_and_tokens)
{
	/* the first token is refused: UNAUTHENTICATED, then a fresh one */
	static const char *const tokens[] = { "stale-token", "good-token" };
	struct nginx nx = { 0 };
	struct tokend td = { 0 };
	char endpoint[64], log2[256], log3[256];
	const char *key;
	struct ctx t;
	FsDocument *d;
	int status;
	pid_t p, q;

	ctx_init(&t, "prod", em.host);
	ck_assert_int_eq(nginx_start_grpc(&nx, "good-token", em.port), 0);
	tokend_start(&td, tokens, 2);
	key = test_key_file(nx.dir, td.url);
	ck_assert_ptr_nonnull(key);
	snprintf(endpoint, sizeof(endpoint), "127.0.0.1:%d", nx.port);
	put_experience(&t, "exp_plain", false, "none");
	p = start_production(&t, endpoint, nx.ca, key, t.log);
	capture_photo(&t, "E", "S", "exp_plain", 1, 16, 16);
	d = wait_final(&t, "E", "S", 60000);
	ck_assert_str_eq(state_of(d), "ready");
	doc_free(d);
	ck_assert_int_ge(log_count(t.log, "firestore: 127.0.0.1:"), 1);
	/* the claim and the finish went through the front (the Listen
	 * stream is logged only when it ends) */
	ck_assert_int_ge(nginx_log_wait(&nx, "Firestore/Commit 200", 2), 2);
	ck_assert_int_ge(log_count(t.log, "Firestore refused the access "
	    "token"), 1);
	ck_assert_int_ge(td.served, 2);

	/* the system's CA store does not know the test CA */
	snprintf(log2, sizeof(log2), "%s/wrong-ca.log", t.root);
	q = start_production(&t, endpoint, "/etc/ssl/certs/ca-certificates.crt",
	    key, log2);
	{
		char want[128];

		snprintf(want, sizeof(want), "firestore: TLS to %s failed",
		    endpoint);
		ck_assert_int_ge(log_count_reaches(log2, want, 1, 30000), 1);
		ck_assert_int_ge(log_count(log2, "certificate verify failed"),
		    1);
	}
	/* a configuration error, not a blip: it stops, exit status 1 */
	ck_assert_int_eq(waitpid(q, &status, 0), q);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1,
	    "status %d", status);
	ck_assert_int_eq(log_count(log2, "failed verification against "
	    "/etc/ssl/certs/ca-certificates.crt: a configuration error, not a "
	    "network failure; stopping"), 1);

	/* no token to be had at start: exit 1, saying why */
	tokend_stop(&td);
	snprintf(log3, sizeof(log3), "%s/no-token.log", t.root);
	q = start_production(&t, endpoint, nx.ca, key, log3);
	ck_assert_int_eq(waitpid(q, &status, 0), q);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
	ck_assert_int_eq(log_count(log3, "cannot get an access token"), 1);

	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(p, 15000), 0);
	ck_assert_int_eq(log_count(t.log, "good-token"), 0);
	ck_assert_int_eq(log_count(t.log, "stale-token"), 0);
	ck_assert_int_eq(log_count(t.log, "bearer"), 0);
	nginx_stop(&nx);
	ctx_done(&t);
}
END_TEST

/* The metadata server's short-lived tokens (found through
 * GCE_METADATA_HOST) are refreshed while sessions flow, and a front that
 * closes quiet streams gets them reopened; nothing is lost. */
START_TEST(production_tokens_refresh_and_streams_reopen)
{
	struct nginx nx = { .grpc_read_timeout_s = 3 };
	struct tokend td = { .expires_in = 4 };
	char endpoint[64], meta[64];
	const char *args[] = { "--project", NULL, "--storage-root", NULL,
	    "--log-level", "debug", "--firestore-endpoint", endpoint,
	    "--firestore-ca-file", NULL, "--idle-timeout", "20",
	    "--transform-timeout", "5", "--recovery-margin", "2",
	    "--recovery-interval", "2", NULL };
	struct ctx t;
	pid_t p;

	ctx_init(&t, "prodrefresh", em.host);
	ck_assert_int_eq(nginx_start_grpc(&nx, "~tok-", em.port), 0);
	tokend_start(&td, NULL, 0);
	snprintf(endpoint, sizeof(endpoint), "127.0.0.1:%d", nx.port);
	snprintf(meta, sizeof(meta), "127.0.0.1:%d", td.port);
	args[1] = t.project;
	args[3] = t.root;
	args[9] = nx.ca;
	put_experience(&t, "exp_plain", false, "none");
	setenv("GCE_METADATA_HOST", meta, 1);
	p = daemon_spawn(FIRESYNCD, args, t.log);
	unsetenv("GCE_METADATA_HOST");
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 2; i++) {
			char ss[32];
			FsDocument *d;

			snprintf(ss, sizeof(ss), "r%d-%d", round, i);
			capture_photo(&t, "E", ss, "exp_plain", 1, 16, 16);
			d = wait_final(&t, "E", ss, 60000);
			ck_assert_str_eq(state_of(d), "ready");
			doc_free(d);
		}
		sleep(5);	/* past the token's life and the front's 3 s */
	}
	/* the token endpoint goes away for a while: sessions captured
	 * meanwhile wait, and end ready once it is back */
	atomic_store(&td.down, true);
	capture_photo(&t, "E", "outage", "exp_plain", 1, 16, 16);
	/* down until the daemon has found it down */
	ck_assert_int_ge(log_count_reaches(t.log, "cannot get an access "
	    "token", 1, 60000), 1);
	atomic_store(&td.down, false);
	{
		FsDocument *d = wait_final(&t, "E", "outage", 90000);

		ck_assert_str_eq(state_of(d), "ready");
		doc_free(d);
	}
	ck_assert_int_ge(log_count(t.log, "cannot get an access token"), 1);
	ck_assert_int_ge(log_count(t.log, "metadata server"), 1);
	ck_assert_int_ge(td.served, 3);
	ck_assert_int_ge(log_count(t.log, "listen: stream ended"), 1);
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(p, 15000), 0);
	ck_assert_int_eq(log_count(t.log, "tok-"), 0);
	tokend_stop(&td);
	nginx_stop(&nx);
	ctx_done(&t);
}
END_TEST

START_TEST(interrupted_too_often_ends_in_error)
{
	static const char *const fast[] = { "--transform-timeout", "1",
	    "--recovery-margin", "0", "--max-attempts", "3",
	    "--recovery-interval", "1", NULL };
	static const char *const mask[] = { "state", "transformAttempts" };
	struct ctx t;
	pid_t d;
	FsValue *f;

	ctx_init(&t, "attempts", em.host);
	put_experience(&t, "exp_plain", false, "none");
	capture_photo(&t, "E", "S", "exp_plain", 1, 16, 16);
	/* as a daemon that claimed it for the third time and died */
	f = value_map();
	value_map_put(f, "state", value_string("transforming"));
	value_map_put(f, "transformAttempts", value_int(3));
	ck_assert_int_eq(admin_update(t.c, "events/E/sessions/S", f, mask, 2),
	    0);
	d = start_daemon(&t, NULL, fast);
	assert_error(&t, "E", "S", "transform interrupted");
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	ctx_done(&t);
}
END_TEST

/*
 * More interrupted sessions than one page of the recovery query: every
 * one is found (the query pages by name) and ends in error, once; a few
 * big ones among them are held slim until their turn.
 */
START_TEST(recovery_pages_through_many_interrupted_sessions)
{
	enum { N = 230 };	/* three pages of 100 */
	static const char *const fast[] = { "--transform-timeout", "1",
	    "--recovery-margin", "0", "--max-attempts", "2",
	    "--recovery-interval", "1", NULL };
	char ev[16], ss[32], path[64];
	struct ctx t;
	pid_t d;

	ctx_init(&t, "pages", em.host);
	put_experience(&t, "exp_plain", false, "none");
	/* as daemons that each claimed a session twice and died */
	for (int i = 0; i < N; i++) {
		FsValue *f;

		snprintf(ev, sizeof(ev), "ev%d", i % 4);
		snprintf(ss, sizeof(ss), "s%03d", i);
		snprintf(path, sizeof(path), "events/%s/sessions/%s", ev, ss);
		f = session_fields(ev, ss, "exp_plain", "captures/x/y/input.jpg",
		    now_wall_ms());
		value_map_put(f, "state", value_string("transforming"));
		value_map_put(f, "transformAttempts", value_int(2));
		if (i % 50 == 0)	/* big: queued slim, read whole */
			session_pad(f, 300 * 1024);
		ck_assert_int_eq(admin_set(t.c, path, f), 0);
	}
	d = start_daemon(&t, NULL, fast);
	for (int i = 0; i < N; i++) {
		snprintf(ev, sizeof(ev), "ev%d", i % 4);
		snprintf(ss, sizeof(ss), "s%03d", i);
		assert_error(&t, ev, ss, "transform interrupted");
	}
	ck_assert_int_eq(log_count(t.log, "its daemon was interrupted"), N);
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	ctx_done(&t);
}
END_TEST

START_TEST(experience_changes_apply_to_the_next_session)
{
	static const char *const limit[] = { "--max-megapixels", "1", NULL };
	struct ctx t;
	pid_t d;
	FsDocument *doc;

	ctx_init(&t, "expchange", em.host);
	put_experience(&t, "exp", false, "none");
	d = start_daemon(&t, NULL, limit);
	capture_photo(&t, "E", "first", "exp", 1, 32, 32);
	doc = wait_final(&t, "E", "first", 30000);
	ck_assert_str_eq(state_of(doc), "ready");
	doc_free(doc);

	/* the organiser switches the experience to a model: the cached copy
	 * must follow, with no restart */
	put_experience(&t, "exp", true, "vendor-y");
	usleep(300000);
	capture_photo(&t, "E", "second", "exp", 1, 32, 32);
	assert_error(&t, "E", "second", "no plugin for model 'vendor-y'");

	/* and back; an image over --max-megapixels is refused */
	put_experience(&t, "exp", false, "none");
	usleep(300000);
	capture_photo(&t, "E", "big", "exp", 1, 1300, 1000);
	assert_error(&t, "E", "big", "input image is too large (1300x1000");
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	ctx_done(&t);
}
END_TEST

static char *scrape_until(const char *url, const char *needle,
    const char *also);
static void assert_metric(const char *text, const char *line);

START_TEST(plugin_sessions_crash_and_hang_cost_only_themselves)
{
	struct ctx t;
	const char *args[10];
	char *dir, want[512], listen[64], url[96], *text = NULL;
	int port = free_port();
	FsDocument *doc;
	struct image img;
	const uint8_t *px;
	int64_t good_done[3];
	pid_t d;

	ctx_init(&t, "plugins", em.host);
	dir = plugin_dir(&t);
	args[0] = "--plugin-dir";
	args[1] = dir;
	args[2] = "--transform-timeout";
	args[3] = "3";
	args[4] = "--workers";
	args[5] = "3";
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	snprintf(url, sizeof(url), "http://%s/metrics", listen);
	args[6] = "--metrics-listen";
	args[7] = listen;
	args[8] = NULL;
	d = start_daemon(&t, NULL, args);
	put_experience(&t, "exp_good", true, "test-good");
	put_experience(&t, "exp_segv", true, "test-segv");
	put_experience(&t, "exp_hang", true, "test-hang");
	put_experience(&t, "exp_sad", true, "test-error");
	put_experience(&t, "exp_garbage", true, "test-garbage");

	/* a hang and a crash first, then guests who must not wait for them */
	capture_photo(&t, "E", "hang", "exp_hang", 1, 64, 48);
	capture_photo(&t, "E", "segv", "exp_segv", 1, 64, 48);
	usleep(300000);
	for (int i = 0; i < 3; i++) {
		char ss[16];

		snprintf(ss, sizeof(ss), "good%d", i);
		capture_photo(&t, "E", ss, "exp_good", 6, 64, 48);
	}
	for (int i = 0; i < 3; i++) {
		char ss[16];

		snprintf(ss, sizeof(ss), "good%d", i);
		doc = wait_final(&t, "E", ss, 30000);
		ck_assert_str_eq(state_of(doc), "ready");
		good_done[i] = doc_get(doc, "updatedAt")->integer_value;
		doc_free(doc);
	}

	snprintf(want, sizeof(want),
	    "file://%s/results/E/good0/result.png", t.root);
	load_result(want, &img);
	ck_assert_uint_eq(img.width, 1 * 48);	/* upright, 1:1 cropped */
	ck_assert_uint_eq(img.height, 48);
	px = img.pixels + (4 * img.width + 44) * img.channels;
	ck_assert_msg(px[0] < 80 && px[1] > 180, "not inverted red: %d,%d,%d",
	    px[0], px[1], px[2]);
	image_free(&img);

	assert_error(&t, "E", "segv", "plugin test-segv crashed (signal "
	    CRASH_SIGNAL ")");
	assert_error(&t, "E", "hang", "timeout after 3s");
	/* a plugin's own error and an unusable result are the plugin's,
	 * not a bad photo */
	capture_photo(&t, "E", "sad", "exp_sad", 1, 64, 48);
	capture_photo(&t, "E", "garbage", "exp_garbage", 1, 64, 48);
	assert_error(&t, "E", "sad", "the model is sad");
	assert_error(&t, "E", "garbage", "plugin test-garbage returned an "
	    "invalid image");
	/* the good ones did not queue behind the hang: they were done
	 * before its deadline ended it */
	doc = admin_get(t.c, "events/E/sessions/hang");
	for (int i = 0; i < 3; i++)
		ck_assert_msg(good_done[i] < doc_get(doc, "updatedAt")->
		    integer_value, "good%d finished after the hang", i);
	doc_free(doc);
	ck_assert(alive(d));
	ck_assert_int_eq(log_count_reaches(t.log,
	    "plugin=test-good state=ready", 3, 5000), 3);
	/* the metrics name the crash and the hang, by plugin and reason */
	text = scrape_until(url, "\nfiresync_sessions_in_flight 0\n", NULL);
	assert_metric(text, "firesync_worker_crashes_total{plugin="
	    "\"test-segv\"} 1");
	assert_metric(text, "firesync_worker_timeouts_total{plugin="
	    "\"test-hang\"} 1");
	assert_metric(text, "firesync_session_errors_total{reason=\"crash\"} 1");
	assert_metric(text, "firesync_session_errors_total{reason="
	    "\"timeout\"} 1");
	assert_metric(text, "firesync_session_errors_total{reason="
	    "\"plugin_error\"} 1");
	assert_metric(text, "firesync_session_errors_total{reason="
	    "\"bad_result\"} 1");
	assert_metric(text, "firesync_session_errors_total{reason="
	    "\"bad_image\"} 0");
	assert_metric(text, "firesync_sessions_finished_total{outcome=\"ready\","
	    "model=\"test-good\"} 3");
	assert_metric(text, "firesync_sessions_finished_total{outcome=\"error\","
	    "model=\"test-hang\"} 1");
	assert_metric(text, "firesync_transform_duration_seconds_count{model="
	    "\"test-good\"} 3");
	assert_metric(text, "firesync_recent_errors{model=\"test-segv\"} 1");
	free(text);
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	free(dir);
	ctx_done(&t);
}
END_TEST

/* Mean absolute difference between two same-sized images' RGB. */
static double
mean_abs_diff(const struct image *a, const struct image *b)
{
	double s = 0;
	size_t n = (size_t)a->width * a->height;

	ck_assert_uint_eq(a->width, b->width);
	ck_assert_uint_eq(a->height, b->height);
	for (size_t i = 0; i < n; i++)
		for (int c = 0; c < 3; c++)
			s += abs(a->pixels[i * a->channels + c] -
			    b->pixels[i * b->channels + c]);
	return s / (double)(n * 3);
}

START_TEST(cartoon_and_style_sessions_are_transformed)
{
	static const char *const models[] = { "cartoon", "style" };
	struct ctx t;
	const char *args[4];
	char cmd[512], *dir, *in, path[512], url[512];
	struct image src, img;
	uint8_t *jpg;
	size_t len;
	pid_t d;

	ctx_init(&t, "models", em.host);
	dir = xasprintf("%s/plugins", t.root);
	snprintf(cmd, sizeof(cmd), "mkdir -m 755 %s && cp %s/cartoon/.libs/"
	    "cartoon.so %s/style/.libs/style.so %s/ && chmod 755 %s/*.so",
	    dir, BUNDLED, BUNDLED, dir, dir);
	ck_assert_int_eq(system(cmd), 0);
	args[0] = "--plugin-dir";
	args[1] = dir;
	args[2] = NULL;
	d = start_daemon(&t, NULL, args);
	put_experience(&t, "exp_cartoon", true, "cartoon");
	{
		/* style, with a reference image in our storage */
		FsValue *f = value_map(), *cfg = value_map(), *refs;

		refs = value_array();
		value_array_add(refs, value_string("references/warm.jpg"));
		value_array_add(refs, value_string("https://elsewhere.example/x.jpg"));
		value_map_put(cfg, "enabled", value_bool(true));
		value_map_put(cfg, "model", value_string("style"));
		value_map_put(cfg, "prompt", value_string("oil painting"));
		value_map_put(cfg, "aspectRatio", value_string("4:3"));
		value_map_put(cfg, "referenceImageUrls", refs);
		value_map_put(f, "aiPhotoConfig", cfg);
		ck_assert_int_eq(admin_set(t.c, "experiences/exp_style", f), 0);
		testimg_jpeg(200, 200, 3, &jpg, &len);
		snprintf(path, sizeof(path), "%s/references/warm.jpg", t.root);
		testimg_write(path, jpg, len);
		free(jpg);
	}
	/* a photo with texture (the test picture plus grain), as PNG */
	testimg_jpeg(640, 480, 1, &jpg, &len);
	ck_assert_int_eq(image_decode(jpg, len, 10000000, &src, cmd,
	    sizeof(cmd)), 0);
	free(jpg);
	for (size_t i = 0; i < (size_t)src.width * src.height * 3; i++) {
		int v = src.pixels[i] +
		    (int)((uint32_t)(i * 2654435761u) >> 27) - 16;

		src.pixels[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
	}
	ck_assert_int_eq(image_encode_png(&src, &jpg, &len, cmd, sizeof(cmd)),
	    0);
	for (int m = 0; m < 2; m++) {
		char ss[32], ex[32];

		snprintf(ss, sizeof(ss), "s_%s", models[m]);
		snprintf(ex, sizeof(ex), "exp_%s", models[m]);
		snprintf(path, sizeof(path), "%s/captures/E/%s/input.jpg",
		    t.root, ss);
		testimg_write(path, jpg, len);
		in = xasprintf("captures/E/%s/input.jpg", ss);
		capture(&t, "E", ss, ex, in);
		free(in);
	}
	for (int m = 0; m < 2; m++) {
		struct image crop = { src.width, src.height, src.channels, NULL };
		FsDocument *doc;
		char ss[32];
		double diff;

		snprintf(ss, sizeof(ss), "s_%s", models[m]);
		doc = wait_final(&t, "E", ss, 60000);
		ck_assert_msg(strcmp(state_of(doc), "ready") == 0, "%s: %s",
		    ss, doc_string(doc, "error"));
		snprintf(url, sizeof(url), "%s", doc_string(doc,
		    "resultImagePath"));
		doc_free(doc);
		load_result(url, &img);
		/* the requested aspect ratio, exactly */
		crop.pixels = malloc((size_t)src.width * src.height *
		    src.channels);
		memcpy(crop.pixels, src.pixels, (size_t)src.width * src.height *
		    src.channels);
		ck_assert_int_eq(image_crop_aspect(&crop, m ? "4:3" : "1:1",
		    cmd, sizeof(cmd)), 0);
		ck_assert_uint_eq(img.width, crop.width);
		ck_assert_uint_eq(img.height, crop.height);
		/* visibly transformed */
		diff = mean_abs_diff(&img, &crop);
		ck_assert_msg(diff > 6.0, "%s: result differs from the photo by "
		    "only %.1f per channel", models[m], diff);
		image_free(&img);
		image_free(&crop);
	}
	ck_assert_int_eq(log_count_reaches(t.log, "plugin=cartoon state=ready",
	    1, 5000), 1);
	ck_assert_int_eq(log_count_reaches(t.log, "plugin=style state=ready",
	    1, 5000), 1);
	image_free(&src);
	free(jpg);
	free(dir);
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	ctx_done(&t);
}
END_TEST

/*
 * The genai plugin in a plugin directory of t's, with a key for gm and a
 * configuration file (its path into conf) of extra lines, then genai's
 * section; the daemon's arguments for both into args[0..4].  The
 * directory, malloc'd.
 */
static char *
genai_setup(struct ctx *t, const struct gemini *gm, const char *extra,
    char *conf, size_t len, const char *args[5])
{
	char *dir = xasprintf("%s/plugins", t->root), cmd[1024];
	FILE *f;

	snprintf(cmd, sizeof(cmd), "mkdir -m 755 %s && cp %s/genai/.libs/"
	    "genai.so %s/ && chmod 755 %s/*.so && printf 'AIzaIntegration\\n'"
	    " > %s/gemini.key && chmod 600 %s/gemini.key", dir, BUNDLED, dir,
	    dir, t->root, t->root);
	ck_assert_int_eq(system(cmd), 0);
	snprintf(conf, len, "%s/firesyncd.conf", t->root);
	f = fopen(conf, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "%s[plugin.genai]\nnetwork = yes\nendpoint = %s\n"
	    "ca-file = %s\napi-key-file = %s/gemini.key\n"
	    "models = gemini-2.5-flash-image\n", extra, gm->nx.endpoint,
	    gm->nx.ca, t->root);
	fclose(f);
	args[0] = "--plugin-dir";
	args[1] = dir;
	args[2] = "-c";
	args[3] = conf;
	args[4] = NULL;
	return dir;
}

/*
 * An experience naming a Gemini model, end to end: the daemon's worker
 * calls the loopback stand-in for the API over TLS (the test CA in
 * ca-file, the key in api-key-file, both read inside the sandbox), and
 * the answer becomes the guest's result; a refusal becomes an error the
 * app can show.
 */
START_TEST(genai_sessions_end_to_end)
{
	struct gemini gm;
	struct ctx t;
	const char *args[6];
	char path[512], url[512], *dir, *in;
	struct image img;
	FsDocument *doc;
	FsValue *refs;
	uint8_t *jpg;
	size_t len;
	const uint8_t *px;
	pid_t d;

	ck_assert_int_eq(gemini_start(&gm, "AIzaIntegration"), 0);
	ctx_init(&t, "genai", em.host);
	dir = genai_setup(&t, &gm, "", path, sizeof(path), args);
	d = start_daemon(&t, NULL, args);
	refs = value_array();
	value_array_add(refs, value_string("references/beach.jpg"));
	put_experience_with(&t, "exp_gen", "gemini-2.5-flash-image",
	    "us on this beach", refs);
	put_experience_with(&t, "exp_block", "gemini-2.5-flash-image",
	    "[safety] something", NULL);
	testimg_jpeg(120, 90, 1, &jpg, &len);
	snprintf(path, sizeof(path), "%s/references/beach.jpg", t.root);
	testimg_write(path, jpg, len);
	free(jpg);
	in = put_input(&t, "E", "s_gen", 1, 64, 48);
	capture(&t, "E", "s_gen", "exp_gen", in);
	free(in);
	in = put_input(&t, "E", "s_block", 1, 64, 48);
	capture(&t, "E", "s_block", "exp_block", in);
	free(in);

	doc = wait_final(&t, "E", "s_gen", 30000);
	ck_assert_msg(strcmp(state_of(doc), "ready") == 0, "s_gen: %s",
	    doc_string(doc, "error"));
	snprintf(url, sizeof(url), "%s", doc_string(doc, "resultImagePath"));
	doc_free(doc);
	load_result(url, &img);
	/* 1:1 exactly, and the photo inverted: the service's answer */
	ck_assert_uint_eq(img.width, 48);
	ck_assert_uint_eq(img.height, 48);
	px = img.pixels + (4 * img.width + 4) * img.channels;
	ck_assert_msg(px[0] < 90 && px[1] > 160 && px[2] > 160,
	    "not the service's image: %d,%d,%d", px[0], px[1], px[2]);
	image_free(&img);
	ck_assert_int_eq(gemini_count(&gm, "images=2 aspect=1:1 photo=48x48 "
	    "ref=120x90 text=[us on this beach] -> image"), 1);

	doc = wait_final(&t, "E", "s_block", 30000);
	ck_assert_str_eq(state_of(doc), "error");
	ck_assert_str_eq(doc_string(doc, "error"), "AI transform failed: the "
	    "model refused the photo (SAFETY)");
	doc_free(doc);
	ck_assert_int_eq(log_count_reaches(t.log, "plugin=genai state=ready",
	    1, 5000), 1);
	ck_assert_int_ge(log_count_reaches(t.log, "the service blocked the "
	    "request (SAFETY)", 1, 5000), 1);
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	gemini_stop(&gm);
	free(dir);
	ctx_done(&t);
}
END_TEST

/* The result at url is the photo inverted (the stand-in's answer),
 * w x h. */
static void
assert_service_result(const char *url, uint32_t w, uint32_t h)
{
	struct image img;
	const uint8_t *px;

	load_result(url, &img);
	ck_assert_uint_eq(img.width, w);
	ck_assert_uint_eq(img.height, h);
	px = img.pixels + (4 * img.width + 4) * img.channels;
	ck_assert_msg(px[0] < 90 && px[1] > 160 && px[2] > 160,
	    "not the service's image: %d,%d,%d", px[0], px[1], px[2]);
	image_free(&img);
}

/*
 * Experiences naming a Gemini model on Vertex AI and an OpenAI image
 * model, end to end through one daemon.  Vertex gets a token for its own
 * service account (the token endpoint checks the assertion's signature
 * against that key only); the daemon's own key is in the environment
 * (GOOGLE_APPLICATION_CREDENTIALS) and a metadata server is named
 * (GCE_METADATA_HOST, the same endpoint): neither is ever used, and each
 * service sees exactly its own credential.
 */
START_TEST(vertex_and_openai_end_to_end)
{
	static const char *const tokens[] = { "ya29.integration" };
	struct gemini gm;
	struct tokend td = { 0 };
	struct ctx t;
	const char *args[6], *vkey, *dkey;
	char path[512], cmd[2048], meta[64], vdir[300], ddir[300], *dir, *in;
	FsDocument *doc;
	FsValue *refs;
	uint8_t *jpg;
	size_t len;
	FILE *f;
	pid_t d;

	ck_assert_int_eq(gemini_start(&gm, "sk-integration"), 0);
	tokend_start(&td, tokens, 1);
	gemini_token(&gm, "ya29.integration");
	ctx_init(&t, "providers", em.host);
	dir = xasprintf("%s/plugins", t.root);
	snprintf(cmd, sizeof(cmd), "mkdir -m 755 %s && cp %s/genai/.libs/"
	    "vertex.so %s/genai/.libs/openai.so %s/ && chmod 755 %s/*.so && "
	    "mkdir -m 700 %s/vertex %s/daemon && printf 'sk-integration\n' "
	    "> %s/openai.key && chmod 600 %s/openai.key", dir, BUNDLED,
	    BUNDLED, dir, dir, t.root, t.root, t.root, t.root);
	ck_assert_int_eq(system(cmd), 0);
	snprintf(vdir, sizeof(vdir), "%s/vertex", t.root);
	snprintf(ddir, sizeof(ddir), "%s/daemon", t.root);
	vkey = xstrdup(test_key_file(vdir, td.url));
	dkey = xstrdup(test_key_file(ddir, td.url));
	snprintf(path, sizeof(path), "%s/sa.pem", vdir);
	tokend_verify(&td, path);
	snprintf(path, sizeof(path), "%s/firesyncd.conf", t.root);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "[plugin.vertex]\nnetwork = yes\ncredentials-file = %s\n"
	    "location = us-central1\nendpoint = %s\nca-file = %s\n"
	    "models = gemini-2.5-flash-image\n\n[plugin.openai]\n"
	    "network = yes\napi-key-file = %s/openai.key\nendpoint = %s\n"
	    "ca-file = %s\nmodels = gpt-image-1\n", vkey, gm.nx.endpoint,
	    gm.nx.ca, t.root, gm.nx.endpoint, gm.nx.ca);
	fclose(f);
	args[0] = "--plugin-dir";
	args[1] = dir;
	args[2] = "-c";
	args[3] = path;
	args[4] = NULL;
	snprintf(meta, sizeof(meta), "127.0.0.1:%d", td.port);
	setenv("GOOGLE_APPLICATION_CREDENTIALS", dkey, 1);
	setenv("GCE_METADATA_HOST", meta, 1);
	d = start_daemon(&t, NULL, args);
	unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
	unsetenv("GCE_METADATA_HOST");

	refs = value_array();
	value_array_add(refs, value_string("references/beach.jpg"));
	put_experience_with(&t, "exp_v", "gemini-2.5-flash-image",
	    "us in Rome", refs);
	refs = value_array();
	value_array_add(refs, value_string("references/beach.jpg"));
	put_experience_with(&t, "exp_o", "gpt-image-1", "us in Paris", refs);
	put_experience_with(&t, "exp_block", "gpt-image-1", "[safety] this",
	    NULL);
	testimg_jpeg(120, 90, 1, &jpg, &len);
	snprintf(path, sizeof(path), "%s/references/beach.jpg", t.root);
	testimg_write(path, jpg, len);
	free(jpg);
	in = put_input(&t, "E", "s_v", 1, 64, 48);
	capture(&t, "E", "s_v", "exp_v", in);
	free(in);
	in = put_input(&t, "E", "s_o", 1, 64, 48);
	capture(&t, "E", "s_o", "exp_o", in);
	free(in);
	in = put_input(&t, "E", "s_block", 1, 64, 48);
	capture(&t, "E", "s_block", "exp_block", in);
	free(in);

	doc = wait_final(&t, "E", "s_v", 30000);
	ck_assert_msg(strcmp(state_of(doc), "ready") == 0, "s_v: %s",
	    doc_string(doc, "error"));
	assert_service_result(doc_string(doc, "resultImagePath"), 48, 48);
	doc_free(doc);
	doc = wait_final(&t, "E", "s_o", 30000);
	ck_assert_msg(strcmp(state_of(doc), "ready") == 0, "s_o: %s",
	    doc_string(doc, "error"));
	assert_service_result(doc_string(doc, "resultImagePath"), 48, 48);
	doc_free(doc);
	doc = wait_final(&t, "E", "s_block", 30000);
	ck_assert_str_eq(state_of(doc), "error");
	ck_assert_str_eq(doc_string(doc, "error"), "AI transform failed: the "
	    "model refused the photo (SAFETY)");
	doc_free(doc);

	ck_assert_int_eq(gemini_count(&gm, "POST /v1/projects/p/locations/"
	    "us-central1/publishers/google/models/gemini-2.5-flash-image:"
	    "generateContent HTTP/1.0 key=ok creds=1"), 1);
	ck_assert_int_eq(gemini_count(&gm, "images=2 aspect=1:1 photo=48x48 "
	    "ref=120x90 text=[us in Rome] -> image"), 1);
	ck_assert_int_eq(gemini_count(&gm, "POST /v1/images/edits HTTP/1.0 "
	    "key=ok creds=1"), 2);
	ck_assert_int_eq(gemini_count(&gm, "photo=48x48 ref=120x90 "
	    "model=gpt-image-1 images=2 size=1024x1024 format=png text=[us in "
	    "Paris] -> image"), 1);
	/* every request, and only those, with its own credential */
	ck_assert_int_eq(gemini_count(&gm, " HTTP/1.0 key="), 3);
	ck_assert_int_eq(td.served, 1);
	ck_assert_int_eq(atomic_load(&td.refused), 0);
	ck_assert_int_eq(log_count_reaches(t.log, "plugin=vertex state=ready",
	    1, 5000), 1);
	ck_assert_int_eq(log_count_reaches(t.log, "plugin=openai state=ready",
	    1, 5000), 1);
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	tokend_stop(&td);
	gemini_stop(&gm);
	free((char *)vkey);
	free((char *)dkey);
	free(dir);
	ctx_done(&t);
}
END_TEST

/*
 * The whole stack as a developer runs it locally: the Firestore emulator,
 * Google's Storage emulator named by STORAGE_EMULATOR_HOST (no
 * credentials at all), and a hosted model.  References stored the
 * Firebase way reach the model; the result opens in a browser with its
 * token, and not without it.
 */
START_TEST(firebase_storage_end_to_end)
{
	static const char bucket[] = "demo-firesync.appspot.com";
	struct storage_emu se;
	struct gemini gm;
	struct ctx t;
	const char *args[10];
	char cmd[256], path[512], ref[256], *dir, *url, *bare;
	FsDocument *doc;
	FsValue *refs;
	uint8_t *jpg;
	size_t len;
	pid_t d;

	ck_assert_int_eq(storage_emu_start(&se), 0);
	ck_assert_int_eq(gemini_start(&gm, "AIzaIntegration"), 0);
	ctx_init(&t, "fbstorage", em.host);
	snprintf(cmd, sizeof(cmd), "[storage]\nbackend = gcs\nbucket = %s\n",
	    bucket);
	dir = genai_setup(&t, &gm, cmd, path, sizeof(path), args);
	ck_assert_int_eq(setenv("STORAGE_EMULATOR_HOST", se.host, 1), 0);
	d = start_daemon(&t, NULL, args);

	/* three references, each in one of the forms the app stores */
	refs = value_array();
	snprintf(ref, sizeof(ref), "http://%s/v0/b/%s/o/references%%2F"
	    "beach.jpg?alt=media&token=1b4e28ba-2fa1-41d2-883f-0016d3cca427",
	    se.host, bucket);
	value_array_add(refs, value_string(ref));
	snprintf(ref, sizeof(ref), "gs://%s/references/sky.jpg", bucket);
	value_array_add(refs, value_string(ref));
	snprintf(ref, sizeof(ref), "https://storage.googleapis.com/%s/"
	    "references/sea.jpg", bucket);
	value_array_add(refs, value_string(ref));
	/* and one guest's photo, which must never be another's reference */
	snprintf(ref, sizeof(ref), "gs://%s/captures/E/s_gen/input.jpg",
	    bucket);
	value_array_add(refs, value_string(ref));
	put_experience_with(&t, "exp_gen", "gemini-2.5-flash-image",
	    "us on this beach", refs);
	testimg_jpeg(120, 90, 1, &jpg, &len);
	ck_assert_int_eq(storage_emu_put(&se, bucket, "references/beach.jpg",
	    jpg, len, "image/jpeg"), 0);
	ck_assert_int_eq(storage_emu_put(&se, bucket, "references/sky.jpg",
	    jpg, len, "image/jpeg"), 0);
	ck_assert_int_eq(storage_emu_put(&se, bucket, "references/sea.jpg",
	    jpg, len, "image/jpeg"), 0);
	free(jpg);
	testimg_jpeg(64, 48, 1, &jpg, &len);
	ck_assert_int_eq(storage_emu_put(&se, bucket,
	    "captures/E/s_gen/input.jpg", jpg, len, "image/jpeg"), 0);
	free(jpg);
	capture(&t, "E", "s_gen", "exp_gen", "captures/E/s_gen/input.jpg");

	doc = wait_final(&t, "E", "s_gen", 30000);
	ck_assert_msg(strcmp(state_of(doc), "ready") == 0, "s_gen: %s",
	    doc_string(doc, "error"));
	url = xstrdup(doc_string(doc, "resultImagePath"));
	doc_free(doc);
	snprintf(path, sizeof(path), "http://%s/v0/b/%s/o/results%%2FE%%2F"
	    "s_gen%%2Fresult.png?alt=media&token=", se.host, bucket);
	ck_assert_msg(strncmp(url, path, strlen(path)) == 0, "%s", url);
	/* a browser with no credentials opens it; without the token the
	 * app's rules keep it closed */
	ck_assert_int_eq(open_anonymously(url, NULL), 200);
	bare = with_token(url, "");
	ck_assert_int_eq(open_anonymously(bare, NULL), 403);
	free(bare);
	free(url);
	/* the photo and the three references reached the model */
	ck_assert_int_eq(gemini_count(&gm, "images=4 aspect=1:1 photo=48x48 "
	    "ref=120x90 ref=120x90 ref=120x90 text=[us on this beach] -> "
	    "image"), 1);
	ck_assert_int_ge(log_count(t.log, "captures/E/s_gen/input.jpg is a "
	    "guest's capture or result; not passed"), 1);
	ck_assert_int_eq(log_count(t.log, "credentials:"), 0);
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	gemini_stop(&gm);
	storage_emu_stop(&se);
	free(dir);
	ctx_done(&t);
}
END_TEST

/* ---- frames and renditions ---- */

static const uint8_t FRAME_A[3] = { 200, 20, 160 };
static const uint8_t FRAME_B[3] = { 250, 200, 10 };
static const uint8_t FRAME_TALL[3] = { 10, 10, 240 };

/* The decoded image at a result's URL (file:// or http://), and the
 * bytes. */
static void
fetch_image(const char *url, struct image *img, uint8_t **bytes,
    size_t *len)
{
	char err[256];

	if (strncmp(url, "file://", 7) == 0) {
		FILE *f = fopen(url + 7, "rb");

		ck_assert_msg(f != NULL, "%s missing", url);
		*bytes = xmalloc(8 << 20);
		*len = fread(*bytes, 1, 8 << 20, f);
		fclose(f);
	} else {
		ck_assert_int_eq(http_get(url, NULL, bytes, len), 200);
	}
	ck_assert_int_eq(image_decode(*bytes, *len, 100000000, img, err,
	    sizeof(err)), 0);
}

/* url with its file name (result.png) replaced by name, keeping the
 * query (the token). */
static char *
sibling(const char *url, const char *name)
{
	const char *at = strstr(url, "result.png");

	ck_assert_ptr_nonnull(at);
	return xasprintf("%.*s%s%s", (int)(at - url), url, name,
	    at + strlen("result.png"));
}

/* The pixel at x, y is rgb exactly (the frame's opaque band), or is not
 * (the model's output shows). */
static bool
pixel_is(const struct image *img, uint32_t x, uint32_t y,
    const uint8_t rgb[3])
{
	const uint8_t *p = img->pixels + ((size_t)y * img->width + x) *
	    img->channels;

	return p[0] == rgb[0] && p[1] == rgb[1] && p[2] == rgb[2];
}

/* A session of exp on event ev is ready; its result's URL (malloc'd). */
static char *
ready_url(struct ctx *t, const char *ev, const char *ss)
{
	FsDocument *doc = wait_final(t, ev, ss, 30000);
	char *url;

	ck_assert_msg(strcmp(state_of(doc), "ready") == 0, "%s: %s", ss,
	    doc_string(doc, "error"));
	url = xstrdup(doc_string(doc, "resultImagePath"));
	doc_free(doc);
	return url;
}

/* The JFIF density of a JPEG in dots per inch, or -1. */
static int
jpeg_dpi(const uint8_t *p, size_t n)
{
	const uint8_t *j = memmem(p, n < 64 ? n : 64, "JFIF\0", 5);

	return j && j[7] == 1 ? j[8] << 8 | j[9] : -1;
}

/*
 * The local backend: an event's frame goes over each of its results,
 * the aspect's own frame over an experience of that shape; one replaced
 * mid-event is on the next guest's result; a corrupt one leaves the
 * result unframed with a warning; an event without one is untouched; the
 * renditions lie beside each result in the sizes, format and resolution
 * asked for.
 */
START_TEST(frames_and_renditions_on_the_local_backend)
{
	const char *args[] = { "--plugin-dir", NULL, "-c", NULL, NULL };
	char path[512], conf[512], *dir, *url, *u;
	struct image img, plain, r;
	uint8_t *png, *bytes;
	size_t len, blen;
	struct ctx t;
	FILE *f;
	pid_t d;

	ctx_init(&t, "frames", em.host);
	dir = plugin_dir(&t);
	args[1] = dir;
	snprintf(conf, sizeof(conf), "%s/firesyncd.conf", t.root);
	f = fopen(conf, "w");
	ck_assert_ptr_nonnull(f);
	fputs("[results]\nrenditions = thumb:24:jpeg, print:60x90:jpeg@300dpi"
	    ", web:40:png, small:32:webp\n", f);
	fclose(f);
	args[3] = conf;
	testimg_frame(400, 300, FRAME_A, &png, &len);
	snprintf(path, sizeof(path), "%s/branding/E/frame.png", t.root);
	testimg_write(path, png, len);
	free(png);
	testimg_frame(90, 160, FRAME_TALL, &png, &len);
	snprintf(path, sizeof(path), "%s/branding/E/frame-9x16.png", t.root);
	testimg_write(path, png, len);
	free(png);
	put_experience_shaped(&t, "exp_sq", true, "test-passthrough", "",
	    NULL, "1:1");
	put_experience_shaped(&t, "exp_tall", true, "test-passthrough", "",
	    NULL, "9:16");
	d = start_daemon(&t, NULL, args);

	/* an event without a frame: the result as the model made it */
	capture_photo(&t, "F", "s_plain", "exp_sq", 1, 120, 90);
	url = ready_url(&t, "F", "s_plain");
	load_result(url, &plain);
	free(url);
	ck_assert(!pixel_is(&plain, plain.width / 2, 2, FRAME_A));

	capture_photo(&t, "E", "s_sq", "exp_sq", 1, 120, 90);
	url = ready_url(&t, "E", "s_sq");
	load_result(url, &img);
	ck_assert_uint_eq(img.width, 90);
	/* the 4:3 frame covers the square: its top and bottom bands show,
	 * its sides are cut (hence frames of an aspect of their own) */
	ck_assert(pixel_is(&img, img.width / 2, 2, FRAME_A));
	ck_assert(pixel_is(&img, img.width / 2, img.height - 3, FRAME_A));
	/* the centre is the model's output, untouched */
	ck_assert(memcmp(img.pixels + ((size_t)45 * 90 + 45) * 3,
	    plain.pixels + ((size_t)45 * 90 + 45) * 3, 3) == 0);
	image_free(&img);
	/* the renditions, of the framed result */
	u = sibling(url, "thumb.jpg");
	fetch_image(u, &r, &bytes, &blen);
	ck_assert_uint_eq(r.width, 24);
	ck_assert_uint_eq(r.height, 24);
	ck_assert_int_eq(image_sniff(bytes, blen), IMAGE_JPEG);
	image_free(&r);
	free(bytes);
	free(u);
	u = sibling(url, "print.jpg");
	fetch_image(u, &r, &bytes, &blen);
	ck_assert_uint_eq(r.width, 60);
	ck_assert_uint_eq(r.height, 90);
	ck_assert_int_eq(jpeg_dpi(bytes, blen), 300);
	image_free(&r);
	free(bytes);
	free(u);
	u = sibling(url, "web.png");
	fetch_image(u, &r, &bytes, &blen);
	ck_assert_uint_eq(r.width, 40);
	ck_assert_int_eq(image_sniff(bytes, blen), IMAGE_PNG);
	image_free(&r);
	free(bytes);
	free(u);
	/* the WebP one: there, of its size (the worker's decoder reads no
	 * WebP; its header says) */
	u = sibling(url, "small.webp");
	{
		FILE *w = fopen(u + 7, "rb");
		uint8_t head[30];

		ck_assert_msg(w != NULL, "%s missing", u);
		ck_assert_uint_eq(fread(head, 1, sizeof(head), w), 30);
		fclose(w);
		ck_assert(memcmp(head, "RIFF", 4) == 0 &&
		    memcmp(head + 8, "WEBP", 4) == 0);
	}
	free(u);
	free(url);

	/* 9:16 takes the aspect's own frame */
	capture_photo(&t, "E", "s_tall", "exp_tall", 1, 120, 90);
	url = ready_url(&t, "E", "s_tall");
	load_result(url, &img);
	ck_assert(img.height > img.width);
	ck_assert(pixel_is(&img, img.width / 2, 1, FRAME_TALL));
	image_free(&img);
	free(url);

	/* replaced mid-event: the next guest has the new one */
	testimg_frame(400, 300, FRAME_B, &png, &len);
	snprintf(path, sizeof(path), "%s/branding/E/frame.png.new", t.root);
	testimg_write(path, png, len);
	free(png);
	snprintf(conf, sizeof(conf), "%s/branding/E/frame.png", t.root);
	ck_assert_int_eq(rename(path, conf), 0);
	capture_photo(&t, "E", "s_new", "exp_sq", 1, 120, 90);
	url = ready_url(&t, "E", "s_new");
	load_result(url, &img);
	ck_assert(pixel_is(&img, img.width / 2, 2, FRAME_B));
	image_free(&img);
	free(url);

	/* corrupt: the guest still gets the result, unframed, and the log
	 * says why */
	f = fopen(conf, "w");
	ck_assert_ptr_nonnull(f);
	fputs("\x89PNG\r\n\x1a\nthe upload broke off here", f);
	fclose(f);
	capture_photo(&t, "E", "s_bad", "exp_sq", 1, 120, 90);
	url = ready_url(&t, "E", "s_bad");
	load_result(url, &img);
	ck_assert(memcmp(img.pixels, plain.pixels, 3) == 0);
	image_free(&img);
	free(url);
	ck_assert_int_eq(log_count_reaches(t.log, "session=s_bad event=E the "
	    "frame branding/E/frame.png was not applied: the frame does not "
	    "decode", 1, 5000), 1);
	/* too large to read: the same, the log naming the limit */
	f = fopen(conf, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(ftruncate(fileno(f), 17 << 20), 0);
	fclose(f);
	capture_photo(&t, "E", "s_big", "exp_sq", 1, 120, 90);
	url = ready_url(&t, "E", "s_big");
	load_result(url, &img);
	ck_assert(memcmp(img.pixels, plain.pixels, 3) == 0);
	image_free(&img);
	free(url);
	ck_assert_int_eq(log_count_reaches(t.log, "session=s_big event=E the "
	    "frame branding/E/frame.png is over 16 MB; the result goes out "
	    "without it", 1, 5000), 1);
	image_free(&plain);
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	free(dir);
	ctx_done(&t);
}
END_TEST

/*
 * Cloud Storage (Google's Storage emulator), Firebase download URLs: the
 * frame is read from the bucket and read again when its generation
 * changes; every rendition carries the result's download token, so the
 * app opens each at the result's URL with its file name changed.
 */
START_TEST(frames_and_renditions_in_a_bucket)
{
	static const char bucket[] = "demo-firesync.appspot.com";
	struct storage_emu se;
	struct ctx t;
	const char *args[] = { "-c", NULL, "--plugin-dir", NULL, NULL };
	char conf[512], *url, *u, *meta, *tok, *dir;
	struct image img, r;
	uint8_t *png, *bytes;
	size_t len, blen;
	FILE *f;
	pid_t d;

	ck_assert_int_eq(storage_emu_start(&se), 0);
	ctx_init(&t, "bucketframes", em.host);
	snprintf(conf, sizeof(conf), "%s/firesyncd.conf", t.root);
	f = fopen(conf, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "[storage]\nbackend = gcs\nbucket = %s\n\n[results]\n"
	    "renditions = thumb:32:jpeg, print:60x90:jpeg@300dpi\n", bucket);
	fclose(f);
	args[1] = conf;
	dir = plugin_dir(&t);
	args[3] = dir;
	testimg_frame(400, 300, FRAME_A, &png, &len);
	ck_assert_int_eq(storage_emu_put(&se, bucket, "branding/E/frame.png",
	    png, len, "image/png"), 0);
	free(png);
	put_experience(&t, "exp_plain", false, "none");
	ck_assert_int_eq(setenv("STORAGE_EMULATOR_HOST", se.host, 1), 0);
	d = start_daemon(&t, NULL, args);
	unsetenv("STORAGE_EMULATOR_HOST");

	for (int i = 0; i < 2; i++) {
		char ss[16], in[64];
		uint8_t *jpg;
		size_t jlen;

		if (i == 1) {
			/* a new generation of the frame */
			testimg_frame(400, 300, FRAME_B, &png, &len);
			ck_assert_int_eq(storage_emu_put(&se, bucket,
			    "branding/E/frame.png", png, len, "image/png"), 0);
			free(png);
		}
		snprintf(ss, sizeof(ss), "s%d", i);
		snprintf(in, sizeof(in), "captures/E/%s/input.jpg", ss);
		testimg_jpeg(80, 60, 1, &jpg, &jlen);
		ck_assert_int_eq(storage_emu_put(&se, bucket, in, jpg, jlen,
		    "image/jpeg"), 0);
		free(jpg);
		capture(&t, "E", ss, "exp_plain", in);
		url = ready_url(&t, "E", ss);
		fetch_image(url, &img, &bytes, &blen);
		free(bytes);
		ck_assert(pixel_is(&img, img.width / 2, 2, i == 0 ? FRAME_A :
		    FRAME_B));
		image_free(&img);
		/* each rendition opens with the result's token */
		u = sibling(url, "thumb.jpg");
		fetch_image(u, &r, &bytes, &blen);
		ck_assert_uint_eq(r.width, 32);
		ck_assert_uint_eq(r.height, 24);
		image_free(&r);
		free(bytes);
		free(u);
		u = sibling(url, "print.jpg");
		fetch_image(u, &r, &bytes, &blen);
		ck_assert_uint_eq(r.width, 90);	/* landscape, like the result */
		ck_assert_uint_eq(r.height, 60);
		ck_assert_int_eq(jpeg_dpi(bytes, blen), 300);
		image_free(&r);
		free(bytes);
		/* and not without it */
		tok = with_token(u, "");
		ck_assert_int_eq(open_anonymously(tok, NULL), 403);
		free(tok);
		free(u);
		snprintf(in, sizeof(in), "results/E/%s/print.jpg", ss);
		meta = storage_emu_metadata(&se, bucket, in);
		ck_assert_ptr_nonnull(meta);
		ck_assert_msg(strstr(meta, "image/jpeg") != NULL, "%s", meta);
		tok = strstr(url, "&token=");
		ck_assert_ptr_nonnull(tok);
		ck_assert_msg(strstr(meta, tok + 7) != NULL, "%s", meta);
		free(meta);
		free(url);
	}
	ck_assert_int_eq(log_count(t.log, "frame branding/E/frame.png "
	    "(version"), 2);
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	storage_emu_stop(&se);
	free(dir);
	ctx_done(&t);
}
END_TEST

/* ---- metrics ---- */

static size_t
scrape_body(char *data, size_t size, size_t n, void *arg)
{
	struct { char *p; size_t len; } *b = arg;

	b->p = xrealloc(b->p, b->len + size * n + 1);
	memcpy(b->p + b->len, data, size * n);
	b->len += size * n;
	b->p[b->len] = '\0';
	return size * n;
}

/* GET url; the body (malloc'd), or NULL if it did not answer 200. */
static char *
scrape(const char *url)
{
	struct { char *p; size_t len; } b = { NULL, 0 };
	CURL *c = curl_easy_init();
	long status = 0;

	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, scrape_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	if (curl_easy_perform(c) != CURLE_OK ||
	    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK ||
	    status != 200) {
		free(b.p);
		b.p = NULL;
	}
	curl_easy_cleanup(c);
	return b.p;
}

/*
 * Scrape url until the text holds needle (and also, unless NULL), for 5 s
 * at most: counters move just after the commits they count.  The last
 * text, for the exact checks that follow.
 */
static char *
scrape_until(const char *url, const char *needle, const char *also)
{
	char *text = NULL;

	for (int i = 0; i < 100; i++) {
		free(text);
		text = scrape(url);
		ck_assert_msg(text != NULL, "%s did not answer 200", url);
		if (strstr(text, needle) && (also == NULL || strstr(text, also)))
			break;
		sleep_ms(50);
	}
	return text;
}

/* The metrics text has this exact line. */
static void
assert_metric(const char *text, const char *line)
{
	char *want = xasprintf("\n%s\n", line);

	ck_assert_msg(strstr(text, want) != NULL, "no line '%s' in:\n%s", line,
	    text);
	free(want);
}

/* Valid exposition, as the Python prometheus_client parser reads it. */
static void
assert_exposition(const struct ctx *t, const char *text)
{
	char path[512], cmd[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/metrics.txt", t->root);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	/* Debian's python, which python3-prometheus-client installs into */
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s < %s", METRICS_CHECK,
	    path);
	ck_assert_msg(system(cmd) == 0, "%s is not valid exposition (is "
	    "python3-prometheus-client installed?)", path);
}

/* ---- hosted calls beside the CPU looks ---- */

/* A gauge of the daemon's metrics at port, or -1 if it is not there. */
static double
gauge(int port, const char *series)
{
	char url[64], *text, *want, *v;
	double n = -1;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
	text = scrape(url);
	want = xasprintf("\n%s ", series);
	if (text != NULL && (v = strstr(text, want)) != NULL)
		n = strtod(v + strlen(want), NULL);
	free(want);
	free(text);
	return n;
}

/* Wait (a minute at most) until the gauge reaches want. */
static void
gauge_reaches(int port, const char *series, double want)
{
	int64_t end = test_now_ms() + 60000;
	double v;

	while ((v = gauge(port, series)) < want) {
		ck_assert_msg(test_now_ms() < end, "%s stayed at %g, not %g",
		    series, v, want);
		sleep_ms(20);
	}
}

/* Wait (a minute at most) until the gauge is down to want. */
static void
gauge_falls_to(int port, const char *series, double want)
{
	int64_t end = test_now_ms() + 60000;
	double v;

	while ((v = gauge(port, series)) > want || v < 0) {
		ck_assert_msg(test_now_ms() < end, "%s stayed at %g, not %g",
		    series, v, want);
		sleep_ms(20);
	}
}

#define HOSTED_RUNNING	"firesync_work_running{kind=\"hosted\"," \
	"plugin=\"genai\"}"
#define HOSTED_QUEUED	"firesync_work_queued{kind=\"hosted\"," \
	"plugin=\"genai\"}"

/*
 * The set-up of the hosted-call tests: the genai plugin against gm, with
 * genai_lines in its section (calls, fallback...), beside the passthrough
 * look, and before (other sections) in the configuration.  Experiences:
 * exp_held (a hosted model the Gemini stand-in holds at its gate),
 * exp_ai (the hosted model, answered at once) and exp_local (the CPU
 * look).
 */
struct hosted {
	char *dir;			/* the plugin directory */
	char conf[512];
	int port;			/* the last daemon's metrics */
	char listen[32];
};

static void
hosted_setup(struct ctx *t, const struct gemini *gm, const char *genai_lines,
    const char *before, struct hosted *h)
{
	const char *args[5];
	char cmd[1200];
	FILE *f;

	h->dir = genai_setup(t, gm, before, h->conf, sizeof(h->conf), args);
	snprintf(cmd, sizeof(cmd), "cp %s/passthrough.so %s/ && chmod 755 "
	    "%s/passthrough.so", TEST_PLUGINS, h->dir, h->dir);
	ck_assert_int_eq(system(cmd), 0);
	f = fopen(h->conf, "a");	/* [plugin.genai] is the last section */
	ck_assert_ptr_nonnull(f);
	fputs(genai_lines, f);
	fclose(f);
	put_experience_with(t, "exp_held", "gemini-2.5-flash-image",
	    "[gate] us, as a painting", NULL);
	put_experience_with(t, "exp_ai", "gemini-2.5-flash-image",
	    "us, as a painting", NULL);
	put_experience_with(t, "exp_local", "test-passthrough", "", NULL);
}

/* A daemon of the set-up (one CPU worker), its metrics at h->port once
 * it answers; extra: more flags, or NULL. */
static pid_t
hosted_start(struct ctx *t, struct hosted *h, const char *logpath,
    const char *const *extra)
{
	const char *args[24] = { "--plugin-dir", h->dir, "-c", h->conf,
	    "--metrics-listen", h->listen, "--workers", "1" };
	char url[64];
	int n = 8;
	pid_t d;

	h->port = free_port();
	snprintf(h->listen, sizeof(h->listen), "127.0.0.1:%d", h->port);
	for (; extra && *extra; extra++)
		args[n++] = *extra;
	args[n] = NULL;
	d = start_daemon(t, logpath, args);
	/* listening before anything else (another daemon's connections)
	 * can take the port */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", h->port);
	for (int64_t end = test_now_ms() + 60000; ; sleep_ms(20)) {
		char *text = scrape(url);
		bool up = text != NULL;

		free(text);
		if (up)
			break;
		ck_assert_msg(alive(d), "the daemon exited; see %s", logpath ?
		    logpath : t->log);
		ck_assert_msg(test_now_ms() < end, "%s never answered", url);
	}
	return d;
}

/* The set-up with calls = calls and its daemon: its metrics port and
 * plugin directory (to free) into *port and *dir. */
static pid_t
hosted_daemon(struct ctx *t, const struct gemini *gm, int calls, int *port,
    char **dir)
{
	struct hosted h = { 0 };
	char lines[32];
	pid_t d;

	snprintf(lines, sizeof(lines), "calls = %d\n", calls);
	hosted_setup(t, gm, lines, "", &h);
	d = hosted_start(t, &h, NULL, NULL);
	*port = h.port;
	*dir = h.dir;
	return d;
}

/*
 * Twelve guests ask for a hosted model that takes its time (the
 * stand-in holds every call until the test opens its gate), then one
 * guest in another event picks a local look: the local guest is ready
 * while all twelve calls are still out, because hosted calls hold no CPU
 * worker (there is one) and have slots of their own; the service sees the
 * twelve at once, not four.
 */
START_TEST(a_local_look_never_waits_behind_hosted_calls)
{
	struct gemini gm;
	struct ctx t;
	char ss[16], *dir;
	FsDocument *doc;
	int port;
	pid_t d;

	ck_assert_int_eq(gemini_start(&gm, "AIzaIntegration"), 0);
	ctx_init(&t, "hostedlocal", em.host);
	d = hosted_daemon(&t, &gm, 16, &port, &dir);
	for (int i = 0; i < 12; i++) {
		snprintf(ss, sizeof(ss), "h%d", i);
		capture_photo(&t, "gala", ss, "exp_held", 1, 64, 48);
	}
	gauge_reaches(port, HOSTED_RUNNING, 12);
	capture_photo(&t, "wedding", "local", "exp_local", 1, 64, 48);
	doc = wait_final(&t, "wedding", "local", 60000);
	ck_assert_str_eq(state_of(doc), "ready");
	doc_free(doc);
	/* and every hosted call is still out: the gate is shut */
	for (int i = 0; i < 12; i++) {
		char path[64];

		snprintf(path, sizeof(path), "events/gala/sessions/h%d", i);
		doc = admin_get(t.c, path);
		ck_assert_str_eq(state_of(doc), "transforming");
		doc_free(doc);
	}
	ck_assert_int_eq(gauge(port, HOSTED_RUNNING), 12);
	ck_assert_int_eq(gauge(port, "firesync_work_limit{kind=\"hosted\","
	    "plugin=\"genai\"}"), 16);
	ck_assert_int_eq(gauge(port, "firesync_work_limit{kind=\"cpu\"}"), 1);
	ck_assert_int_ge(gauge(port, "firesync_hosted_workers"), 1);
	gemini_open_gate(&gm);
	for (int i = 0; i < 12; i++) {
		snprintf(ss, sizeof(ss), "h%d", i);
		doc = wait_final(&t, "gala", ss, 60000);
		ck_assert_msg(strcmp(state_of(doc), "ready") == 0, "%s: %s",
		    ss, doc_string(doc, "error"));
		doc_free(doc);
	}
	/* the twelfth request found the other eleven still held */
	ck_assert_int_eq(gemini_peak(&gm), 12);
	gauge_falls_to(port, HOSTED_RUNNING, 0);
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	gemini_stop(&gm);
	free(dir);
	ctx_done(&t);
}
END_TEST

/*
 * Within the hosted lane, too, every event gets its turn: two calls at
 * once, six guests of one event waiting, then one guest in each of three
 * other events; once the gate opens, the three are claimed before the
 * big event's last three.
 */
START_TEST(hosted_calls_take_events_in_turn)
{
	static const char *const others[] = { "x1", "y1", "z1" };
	struct gemini gm;
	struct ctx t;
	char ss[16], *dir;
	int port;
	pid_t d;

	ck_assert_int_eq(gemini_start(&gm, "AIzaIntegration"), 0);
	ctx_init(&t, "hostedfair", em.host);
	d = hosted_daemon(&t, &gm, 2, &port, &dir);
	for (int i = 0; i < 6; i++) {
		snprintf(ss, sizeof(ss), "b%d", i);
		capture_photo(&t, "big", ss, "exp_held", 1, 32, 32);
	}
	/* two calls out, one claimed behind them (2 + 1 slots),
	 * three queued */
	gauge_reaches(port, HOSTED_RUNNING, 2);
	gauge_reaches(port, HOSTED_QUEUED, 3);
	for (int i = 0; i < 3; i++) {
		char ev[8];

		snprintf(ev, sizeof(ev), "%c", others[i][0]);
		capture_photo(&t, ev, others[i], "exp_held", 1, 32, 32);
	}
	gauge_reaches(port, HOSTED_QUEUED, 6);
	gemini_open_gate(&gm);
	fair_all_ready(&t, 6, others);
	/* b0-b2 were taken first; then the event with the fewest calls out
	 * goes next: x1, y1, z1 before b3 (a millisecond's tie aside) */
	for (int i = 0; i < 3; i++) {
		int at = take_position(t.log, others[i]);

		ck_assert_msg(at >= 3 && at <= 6, "%s taken %dth", others[i],
		    at + 1);
	}
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	gemini_stop(&gm);
	free(dir);
	ctx_done(&t);
}
END_TEST

/* n guests of event "gala" (k0...) hold calls at the stand-in's gate. */
static void
hold_calls(struct ctx *t, struct hosted *h, int n)
{
	char ss[16];

	for (int i = 0; i < n; i++) {
		snprintf(ss, sizeof(ss), "k%d", i);
		capture_photo(t, "gala", ss, "exp_held", 1, 32, 32);
	}
	gauge_reaches(h->port, HOSTED_RUNNING, n);
}

/*
 * SIGKILL daemon *d with hold_calls' n calls out, open the gate, start a
 * daemon (log log2) that recovers them quickly into *d, and wait for each
 * to be ready after two attempts.
 */
static void
kill_and_rerun(struct ctx *t, struct hosted *h, const struct gemini *gm,
    pid_t *d, int n, const char *log2)
{
	static const char *const fast[] = { "--transform-timeout", "10",
	    "--recovery-margin", "1", "--recovery-interval", "1", NULL };
	char ss[16];

	kill(*d, SIGKILL);
	waitpid(*d, NULL, 0);
	gemini_open_gate(gm);
	*d = hosted_start(t, h, log2, fast);
	for (int i = 0; i < n; i++) {
		FsDocument *doc;

		snprintf(ss, sizeof(ss), "k%d", i);
		doc = wait_final(t, "gala", ss, 90000);
		ck_assert_msg(strcmp(state_of(doc), "ready") == 0, "%s: %s",
		    ss, doc_string(doc, "error"));
		ck_assert_int_eq(doc_get(doc, "transformAttempts")->
		    integer_value, 2);
		doc_free(doc);
	}
}

/*
 * A daemon killed (SIGKILL) with ten hosted calls out: its hosted-call
 * workers die with it, the sessions stay "transforming", and the next
 * daemon runs each again exactly once when its lease is over: every guest
 * ready, two attempts each, nothing stuck and nothing finished twice.
 */
START_TEST(a_daemon_killed_with_hosted_calls_out_loses_nothing)
{
	struct gemini gm;
	struct ctx t;
	struct hosted h = { 0 };
	char log2[256];
	pid_t d;

	ck_assert_int_eq(gemini_start(&gm, "AIzaIntegration"), 0);
	ctx_init(&t, "hostedkill", em.host);
	snprintf(log2, sizeof(log2), "%s/daemon2.log", t.root);
	hosted_setup(&t, &gm, "calls = 16\n", "", &h);
	d = hosted_start(&t, &h, NULL, NULL);
	hold_calls(&t, &h, 10);
	kill_and_rerun(&t, &h, &gm, &d, 10, log2);
	for (int i = 0; i < 10; i++) {
		char want[64];

		snprintf(want, sizeof(want), "session=k%d event=gala ", i);
		ck_assert_int_eq(log_count(log2, want) > 0, 1);
	}
	ck_assert_int_eq(log_count_reaches(log2, "plugin=genai state=ready",
	    10, 5000), 10);
	ck_assert_int_eq(log_count(log2, "its daemon was interrupted"), 10);
	for (int i = 0; i < 10; i++) {
		char want[96];

		snprintf(want, sizeof(want), "session=k%d event=gala model="
		    "gemini-2.5-flash-image plugin=genai state=ready", i);
		ck_assert_int_eq(log_count(log2, want), 1);
	}
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	gemini_stop(&gm);
	free(h.dir);
	ctx_done(&t);
}
END_TEST

/* ---- the provider's view: outages, rate limits, budgets ---- */

/* Did the model make guest ss's result (the Gemini stand-in inverts the
 * photo), rather than the fallback look (passthrough: the photo)? */
static bool
models_image(struct ctx *t, const char *ev, const char *ss)
{
	FsDocument *doc = wait_final(t, ev, ss, 60000);
	struct image img;
	const uint8_t *px;
	bool inverted;

	ck_assert_msg(strcmp(state_of(doc), "ready") == 0, "%s: %s", ss,
	    doc_string(doc, "error"));
	load_result(doc_string(doc, "resultImagePath"), &img);
	doc_free(doc);
	/* testimg's photo is dark red at the top left */
	px = img.pixels + (4 * img.width + 4) * img.channels;
	inverted = px[0] < 90 && px[1] > 160 && px[2] > 160;
	image_free(&img);
	return inverted;
}

/* The event's hosted-call count in firesync's own budget document. */
static int64_t
budget_count(struct ctx *t, const char *ev)
{
	char path[128];
	FsDocument *doc;
	int64_t n;

	snprintf(path, sizeof(path), "firesyncBudgets/%s", ev);
	doc = admin_get(t->c, path);
	ck_assert_msg(doc != NULL, "no %s", path);
	ck_assert_ptr_nonnull(doc_get(doc, "hostedCalls"));
	n = doc_get(doc, "hostedCalls")->integer_value;
	doc_free(doc);
	return n;
}

/*
 * The service is down (503 to everything) when twenty guests capture.
 * With a fallback look, every guest leaves with a picture; the service
 * sees the calls already out when it failed and then one probe every 5 s,
 * not three tries each; once it answers again, the next guest gets the
 * model.  Without one, each guest is told the AI service is unavailable.
 */
START_TEST(an_outage_sends_guests_to_the_fallback_look)
{
	struct gemini gm;
	struct ctx t;
	struct hosted h = { 0 };
	char ss[32], *text, url[64];
	int sent, n;
	pid_t d;

	ck_assert_int_eq(gemini_start(&gm, "AIzaIntegration"), 0);
	ctx_init(&t, "outage", em.host);
	hosted_setup(&t, &gm, "calls = 32\nfallback = test-passthrough\n", "",
	    &h);
	d = hosted_start(&t, &h, NULL, NULL);
	gemini_mode(&gm, "503");
	for (int i = 0; i < 20; i++) {
		snprintf(ss, sizeof(ss), "o%d", i);
		capture_photo(&t, "gala", ss, "exp_ai", 1, 64, 48);
	}
	for (int i = 0; i < 20; i++) {
		snprintf(ss, sizeof(ss), "o%d", i);
		ck_assert_msg(!models_image(&t, "gala", ss), "%s: the model's "
		    "image during the outage", ss);
	}
	sent = gemini_count(&gm, "-> 503 (mode)");
	/* every call may have gone out before the first answer came back;
	 * the (at most four) that failed before the circuit opened may be
	 * tried again (max-retries = 2) while it is not yet open; then one
	 * probe every 5 s at most (60 s is more than the test takes) */
	ck_assert_int_le(sent, 20 + 4 * 2 + 60 / 5);
	ck_assert_int_eq(log_count_reaches(t.log, "the guest gets the "
	    "fallback look test-passthrough instead", 20, 5000), 20);
	ck_assert_int_eq(log_count(t.log, "its service failed 5 times in a "
	    "row"), 1);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", h.port);
	text = scrape_until(url, "firesync_provider_circuit_open{plugin="
	    "\"genai\"} 1", NULL);
	assert_metric(text, "firesync_hosted_fallbacks_total{model="
	    "\"gemini-2.5-flash-image\"} 20");
	assert_metric(text, "firesync_provider_fallbacks_total{plugin="
	    "\"genai\"} 20");
	assert_metric(text, "firesync_event_fallbacks_total{event=\"gala\"} "
	    "20");
	free(text);

	/* it answers again: within a probe's interval, guests get it */
	gemini_mode(&gm, NULL);
	n = 0;
	for (;;) {
		snprintf(ss, sizeof(ss), "after%d", n++);
		capture_photo(&t, "gala", ss, "exp_ai", 1, 64, 48);
		if (models_image(&t, "gala", ss))
			break;
		ck_assert_msg(n < 200, "the service never came back");
		sleep_ms(100);
	}
	ck_assert_int_eq(log_count(t.log, "its service answers again"), 1);
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	gemini_stop(&gm);
	free(h.dir);
	ctx_done(&t);
}
END_TEST

START_TEST(an_outage_without_a_fallback_is_an_honest_error)
{
	struct gemini gm;
	struct ctx t;
	struct hosted h = { 0 };
	char ss[16];
	pid_t d;

	ck_assert_int_eq(gemini_start(&gm, "AIzaIntegration"), 0);
	ctx_init(&t, "outage2", em.host);
	hosted_setup(&t, &gm, "calls = 32\n", "", &h);
	d = hosted_start(&t, &h, NULL, NULL);
	gemini_mode(&gm, "503");
	for (int i = 0; i < 12; i++) {
		snprintf(ss, sizeof(ss), "e%d", i);
		capture_photo(&t, "gala", ss, "exp_ai", 1, 64, 48);
	}
	for (int i = 0; i < 12; i++) {
		snprintf(ss, sizeof(ss), "e%d", i);
		assert_error(&t, "gala", ss, "AI transform failed: the AI "
		    "service is unavailable; please try again");
	}
	ck_assert_int_le(gemini_count(&gm, "-> 503 (mode)"),
	    12 + 4 * 2 + 60 / 5);
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	gemini_stop(&gm);
	free(h.dir);
	ctx_done(&t);
}
END_TEST

/*
 * The service rations calls (429), with and without Retry-After: every
 * call to it slows down (fewer at once, a shared pause), none is given up
 * while its deadline allows, and every guest gets the model's image once
 * the service lets calls through.
 */
START_TEST(rate_limits_slow_every_call_and_fail_no_guest)
{
	static const char *const modes[] = { "429 1", "429" };
	struct gemini gm;
	struct ctx t;
	struct hosted h = { 0 };
	char ss[16], ev[16];
	pid_t d;

	ck_assert_int_eq(gemini_start(&gm, "AIzaIntegration"), 0);
	ctx_init(&t, "ratelimit", em.host);
	hosted_setup(&t, &gm, "calls = 8\nfallback = test-passthrough\n", "",
	    &h);
	d = hosted_start(&t, &h, NULL, (const char *const[]){
	    "--transform-timeout", "60", NULL });
	for (int m = 0; m < 2; m++) {
		int before = gemini_count(&gm, "-> 429 (mode)");

		gemini_mode(&gm, modes[m]);
		snprintf(ev, sizeof(ev), "rl%d", m);
		for (int i = 0; i < 6; i++) {
			snprintf(ss, sizeof(ss), "r%d", i);
			capture_photo(&t, ev, ss, "exp_ai", 1, 64, 48);
		}
		/* each of the six turned away at least once, or half of
		 * them twice: then the service lets calls through */
		ck_assert_int_ge(log_count_reaches(gm.log, "-> 429 (mode)",
		    before + 6, 60000), before + 6);
		/* every call slowed: half as many at once after the wave */
		gauge_falls_to(h.port, "firesync_provider_allowed_calls{"
		    "plugin=\"genai\"}", 4);
		gemini_mode(&gm, NULL);
		for (int i = 0; i < 6; i++) {
			snprintf(ss, sizeof(ss), "r%d", i);
			ck_assert_msg(models_image(&t, ev, ss), "%s/%s: not "
			    "the model's image", ev, ss);
		}
	}
	ck_assert_int_eq(log_count(t.log, "fallback look"), 0);
	ck_assert_int_eq(log_count(t.log, "its service failed"), 0);
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	gemini_stop(&gm);
	free(h.dir);
	ctx_done(&t);
}
END_TEST

/*
 * An event's limit of five hosted calls, eight of its guests, two daemons
 * sharing them: exactly five calls reach the service, three guests get
 * the fallback look, and firesync's counter document says five.
 */
START_TEST(an_event_budget_holds_across_daemons)
{
	struct gemini gm;
	struct ctx t;
	struct hosted h = { 0 };
	char ss[16], log2[256];
	int images = 0;
	pid_t d1, d2;

	ck_assert_int_eq(gemini_start(&gm, "AIzaIntegration"), 0);
	ctx_init(&t, "budget", em.host);
	snprintf(log2, sizeof(log2), "%s/daemon2.log", t.root);
	hosted_setup(&t, &gm, "fallback = test-passthrough\n",
	    "[hosted]\nevent-limit = 100\nevent-limits = gala:5\n", &h);
	d1 = hosted_start(&t, &h, NULL, NULL);
	d2 = hosted_start(&t, &h, log2, NULL);
	for (int i = 0; i < 8; i++) {
		snprintf(ss, sizeof(ss), "b%d", i);
		capture_photo(&t, "gala", ss, "exp_ai", 1, 64, 48);
	}
	for (int i = 0; i < 8; i++) {
		snprintf(ss, sizeof(ss), "b%d", i);
		images += models_image(&t, "gala", ss);
	}
	ck_assert_int_eq(images, 5);
	ck_assert_int_eq(gemini_count(&gm, "-> image"), 5);
	ck_assert_int_eq(log_count(t.log, "this event's AI limit has been "
	    "reached; the guest gets the fallback look") + log_count(log2,
	    "this event's AI limit has been reached; the guest gets the "
	    "fallback look"), 3);
	ck_assert_int_eq(budget_count(&t, "gala"), 5);
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(d1, 10000), 0);
	ck_assert_int_eq(daemon_stop(d2, 10000), 0);
	gemini_stop(&gm);
	free(h.dir);
	ctx_done(&t);
}
END_TEST

/*
 * Without a fallback, the guest over the limit is told so.  A daemon
 * killed mid-call keeps the units of the calls it had out (they reached
 * the service) and gives none back twice; the sessions are run again,
 * each with a unit of its own.  A call the service never saw (turned
 * away: its circuit is open) hands its unit back.
 */
START_TEST(budget_units_are_counted_once)
{
	struct gemini gm;
	struct ctx t;
	struct hosted h = { 0 };
	char ss[16], log2[256];
	pid_t d;

	ck_assert_int_eq(gemini_start(&gm, "AIzaIntegration"), 0);
	ctx_init(&t, "budget2", em.host);
	snprintf(log2, sizeof(log2), "%s/daemon2.log", t.root);
	hosted_setup(&t, &gm, "", "[hosted]\nevent-limits = gala:10, small:1, "
	    "down:10\n", &h);
	d = hosted_start(&t, &h, NULL, NULL);

	/* three calls held at the gate: three units out; then killed */
	hold_calls(&t, &h, 3);
	ck_assert_int_eq(budget_count(&t, "gala"), 3);
	kill_and_rerun(&t, &h, &gm, &d, 3, log2);
	ck_assert_int_eq(budget_count(&t, "gala"), 6);

	/* a limit of one: the second guest is told */
	capture_photo(&t, "small", "s1", "exp_ai", 1, 64, 48);
	ck_assert(models_image(&t, "small", "s1"));
	capture_photo(&t, "small", "s2", "exp_ai", 1, 64, 48);
	assert_error(&t, "small", "s2", "AI transform failed: this event's AI "
	    "limit has been reached");
	ck_assert_int_eq(budget_count(&t, "small"), 1);

	/* the service down, asking for a minute: calls wait for no
	 * minute, they are turned away, and give their units back */
	gemini_mode(&gm, "503 60");
	for (int i = 0; i < 6; i++) {
		snprintf(ss, sizeof(ss), "w%d", i);
		capture_photo(&t, "warm", ss, "exp_ai", 1, 32, 32);
	}
	for (int i = 0; i < 6; i++) {
		FsDocument *doc;

		snprintf(ss, sizeof(ss), "w%d", i);
		doc = wait_final(&t, "warm", ss, 60000);
		ck_assert_str_eq(state_of(doc), "error");
		doc_free(doc);
	}
	for (int i = 0; i < 2; i++) {
		snprintf(ss, sizeof(ss), "d%d", i);
		capture_photo(&t, "down", ss, "exp_ai", 1, 32, 32);
		assert_error(&t, "down", ss, "AI transform failed: the AI "
		    "service is unavailable; please try again");
	}
	ck_assert_int_eq(budget_count(&t, "down"), 0);
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	gemini_stop(&gm);
	free(h.dir);
	ctx_done(&t);
}
END_TEST

/*
 * The metrics move by exactly what happened: N ready, M error with their
 * reasons, in flight back to 0, histograms counting each session; the
 * text parses as exposition; a scraper that never finishes its request
 * holds up neither sessions nor other scrapers.
 */
START_TEST(metrics_count_what_happened)
{
	struct ctx t;
	const char *args[4];
	char listen[64], url[96], *text, *in;
	struct sockaddr_in a = { .sin_family = AF_INET,
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int port = free_port(), slow;
	pid_t d;

	ctx_init(&t, "metrics", em.host);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
	args[0] = "--metrics-listen";
	args[1] = listen;
	args[2] = NULL;
	d = start_daemon(&t, NULL, args);
	put_experience(&t, "exp_plain", false, "none");
	for (int i = 0; i < 3; i++) {
		char ss[16];

		snprintf(ss, sizeof(ss), "s_ok%d", i);
		in = put_input(&t, "E", ss, 1, 64, 48);
		capture(&t, "E", ss, "exp_plain", in);
		free(in);
	}
	in = put_input(&t, "E", "s_noexp", 1, 64, 48);
	capture(&t, "E", "s_noexp", "exp_missing", in);
	free(in);
	capture(&t, "E", "s_noinput", "exp_plain",
	    "captures/E/s_noinput/input.jpg");
	for (int i = 0; i < 3; i++) {
		char ss[16];
		FsDocument *doc;

		snprintf(ss, sizeof(ss), "s_ok%d", i);
		doc = wait_final(&t, "E", ss, 20000);
		ck_assert_str_eq(state_of(doc), "ready");
		doc_free(doc);
	}
	doc_free(wait_final(&t, "E", "s_noexp", 20000));
	doc_free(wait_final(&t, "E", "s_noinput", 20000));
	/* a finish is counted just after its commit returns */
	text = scrape_until(url, "\nfiresync_sessions_in_flight 0\n",
	    "{outcome=\"error\",model=\"unknown\"} 1\n");
	assert_metric(text, "firesync_build_info{version=\"" PACKAGE_VERSION
	    "\"} 1");
	assert_metric(text, "firesync_sessions_finished_total{outcome=\"ready\","
	    "model=\"none\"} 3");
	assert_metric(text, "firesync_sessions_finished_total{outcome=\"error\","
	    "model=\"none\"} 1");
	assert_metric(text, "firesync_sessions_finished_total{outcome=\"error\","
	    "model=\"unknown\"} 1");
	assert_metric(text, "firesync_session_errors_total{reason="
	    "\"no_experience\"} 1");
	assert_metric(text, "firesync_session_errors_total{reason="
	    "\"no_input\"} 1");
	assert_metric(text, "firesync_session_errors_total{reason="
	    "\"timeout\"} 0");
	assert_metric(text, "firesync_capture_to_ready_seconds_count 3");
	assert_metric(text, "firesync_transform_duration_seconds_count{model="
	    "\"none\"} 3");
	assert_metric(text, "firesync_sessions_in_flight 0");
	assert_metric(text, "firesync_sessions_queued 0");
	assert_metric(text, "firesync_listen_up 1");
	assert_metric(text, "firesync_claims_total 5");
	assert_metric(text, "firesync_claims_lost_total 0");
	assert_metric(text, "firesync_recent_sessions{outcome=\"ready\"} 3");
	assert_metric(text, "firesync_recent_sessions{outcome=\"error\"} 2");
	assert_metric(text, "firesync_workers{state=\"busy\"} 0");
	ck_assert_ptr_nonnull(strstr(text, "\nfiresync_workers{state=\"idle\"} "));
	ck_assert_ptr_nonnull(strstr(text, "\nprocess_resident_memory_bytes "));
	ck_assert_ptr_nonnull(strstr(text, "\nprocess_open_fds "));
	/* 3 ready + 2 error finishes + 5 claims */
	assert_metric(text, "firesync_firestore_commit_duration_seconds_count "
	    "10");
	assert_exposition(&t, text);
	free(text);

	/* only GET /metrics */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	ck_assert_ptr_null(scrape(url));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);

	/* a scraper that sends half a request and waits: sessions and other
	 * scrapes go on */
	a.sin_port = htons((uint16_t)port);
	slow = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(connect(slow, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_gt(write(slow, "GET /metrics HTTP/1.1\r\nHost: x\r\n",
	    32), 0);
	in = put_input(&t, "E", "s_late", 1, 64, 48);
	capture(&t, "E", "s_late", "exp_plain", in);
	free(in);
	{
		FsDocument *doc = wait_final(&t, "E", "s_late", 20000);

		ck_assert_str_eq(state_of(doc), "ready");
		doc_free(doc);
	}
	text = scrape_until(url, "model=\"none\"} 4\n", NULL);
	assert_metric(text, "firesync_sessions_finished_total{outcome=\"ready\","
	    "model=\"none\"} 4");
	free(text);
	close(slow);
	schema_ok(&t);
	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	/* stopped: nothing answers */
	ck_assert_ptr_null(scrape(url));
	ctx_done(&t);
}
END_TEST

/* firesyncctl with args; its exit status, its output in out. */
static int
firesyncctl(const char *args, char *out, size_t len)
{
	char cmd[1024];
	FILE *f;
	size_t n;
	int rc;

	snprintf(cmd, sizeof(cmd), "%s %s 2>&1", FIRESYNCCTL, args);
	f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	n = fread(out, 1, len - 1, f);
	out[n] = '\0';
	rc = pclose(f);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/*
 * firesyncctl status in each state, through the metrics unix socket
 * named in the configuration file: running (0), the Listen stream down
 * because Firestore went away (1), the daemon stopped (2).
 */
START_TEST(firesyncctl_status_in_each_state)
{
	struct delay_proxy *px = NULL;
	struct ctx t;
	const char *args[4];
	char host[64], conf[512], sock[512], cmd[1200], out[4096];
	FsDocument *doc;
	FILE *f;
	int port = delay_proxy_start(&px, em.port, 0), rc = -1;
	pid_t d;
	char *in;

	ck_assert_int_gt(port, 0);
	snprintf(host, sizeof(host), "127.0.0.1:%d", port);
	ctx_init(&t, "ctl", host);
	snprintf(sock, sizeof(sock), "%s/metrics.sock", t.root);
	snprintf(conf, sizeof(conf), "%s/firesyncd.conf", t.root);
	f = fopen(conf, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "[metrics]\nlisten = %s\n", sock);
	fclose(f);
	args[0] = "-c";
	args[1] = conf;
	args[2] = NULL;
	d = start_daemon(&t, NULL, args);
	put_experience(&t, "exp_plain", false, "none");
	in = put_input(&t, "E", "s1", 1, 64, 48);
	capture(&t, "E", "s1", "exp_plain", in);
	free(in);
	doc = wait_final(&t, "E", "s1", 20000);
	ck_assert_str_eq(state_of(doc), "ready");
	doc_free(doc);
	schema_ok(&t);

	snprintf(cmd, sizeof(cmd), "-c %s status", conf);
	for (int i = 0; i < 100; i++) {
		rc = firesyncctl(cmd, out, sizeof(out));
		if (rc == 0 && strstr(out, "last hour:  1 ready"))
			break;
		sleep_ms(50);
	}
	ck_assert_msg(rc == 0, "running: exit %d:\n%s", rc, out);
	ck_assert_msg(strstr(out, "firesyncd " PACKAGE_VERSION ", up ") &&
	    strstr(out, "\nstream:     up, last message ") &&
	    strstr(out, "\nsessions:   0 in flight, 0 queued; workers 0 busy "
	    "of 2;") && strstr(out, "\nlast hour:  1 ready, 0 error; capture "
	    "to ready p50 ") && strstr(out, "\nfailing:    none\n"),
	    "running:\n%s", out);

	/* Firestore goes away: the stream is down within the reconnects */
	delay_proxy_stop(px);
	snprintf(cmd, sizeof(cmd), "--socket %s status", sock);
	for (int i = 0; i < 300; i++) {
		rc = firesyncctl(cmd, out, sizeof(out));
		if (rc != 0)
			break;
		sleep_ms(100);
	}
	ck_assert_msg(rc == 1 && strstr(out, "\nstream:     DOWN ("),
	    "stream down: exit %d:\n%s", rc, out);

	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	rc = firesyncctl(cmd, out, sizeof(out));
	ck_assert_msg(rc == 2 && strstr(out, "firesyncctl: cannot reach "
	    "firesyncd at "), "stopped: exit %d:\n%s", rc, out);
	ctx_done(&t);
}
END_TEST

/* ---- systemd notification protocol ---- */

static int
notify_listen(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_uint_lt(strlen(path), sizeof(a.sun_path));
	memcpy(a.sun_path, path, strlen(path) + 1);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

/* Collect notifications for up to ms, stopping early once one contains
 * want; all of them go into log (appended).  True if want was seen. */
static bool
notify_wait(int fd, const char *want, int64_t ms, char *log, size_t len)
{
	int64_t end = test_now_ms() + ms;

	while (test_now_ms() < end) {
		char buf[1024];
		ssize_t n;
		struct timeval tv = { 0, 50000 };

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		n = recv(fd, buf, sizeof(buf) - 1, 0);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		if (strlen(log) + (size_t)n + 2 < len) {
			strcat(log, buf);
			strcat(log, "\n");
		}
		if (want && strstr(buf, want))
			return true;
	}
	return false;
}

static int
count_of(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

/* The settings generation in the daemon's line for session ss that
 * contains what (a claim or a finish), or 0 if there is none. */
static unsigned
generation_of(const char *log, const char *ss, const char *what)
{
	char needle[128], line[2048];
	unsigned gen = 0;
	FILE *f = fopen(log, "r");

	snprintf(needle, sizeof(needle), "session=%s event=E ", ss);
	while (f && fgets(line, sizeof(line), f)) {
		const char *g = strstr(line, " settings=");

		if (strstr(line, needle) && strstr(line, what) && g)
			gen = (unsigned)strtoul(g + 10, NULL, 10);
	}
	if (f)
		fclose(f);
	return gen;
}

/*
 * SIGHUP in a loop during a burst, each reload flipping the transform
 * timeout between 30 s and 1 s around transforms of 1.5 s (the
 * passthrough test plugin's "sleep MS").  Each reload
 * builds a new immutable set of settings (a generation) and swaps it in;
 * a session runs from claim to finish under the one current when its
 * task started: it is claimed and finished under the same generation,
 * and ends ready under a 30 s one, in a timeout under a 1 s one.  The
 * sanitizer build runs it too.
 */
START_TEST(reloads_during_a_burst_keep_each_session_s_settings)
{
	enum { FIRST = 4, SECOND = 6, N = FIRST + SECOND };
	char conf[300], *dir, ss[16], cmd[512];
	const char *args[3];
	int reloads = 0, final = 0, gens_seen = 0;
	unsigned last_gen = 0;
	struct ctx t;
	FILE *f;
	pid_t d;

	ctx_init(&t, "reloads", em.host);
	dir = xasprintf("%s/plugins", t.root);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	snprintf(cmd, sizeof(cmd), "cp %s/passthrough.so %s/ && chmod 755 "
	    "%s/passthrough.so", TEST_PLUGINS, dir, dir);
	ck_assert_int_eq(system(cmd), 0);
	snprintf(conf, sizeof(conf), "%s/firesyncd.conf", t.root);
	f = fopen(conf, "w");
	fprintf(f, "[plugins]\ndir = %s\ntransform-timeout = 30\n", dir);
	fclose(f);
	args[0] = "-c";
	args[1] = conf;
	args[2] = NULL;
	d = start_daemon(&t, NULL, args);
	put_experience_with(&t, "exp_sleep", "test-passthrough", "sleep 1500",
	    NULL);

	/* the first sessions are claimed under the settings at start */
	for (int i = 0; i < FIRST; i++) {
		snprintf(ss, sizeof(ss), "a%d", i);
		capture_photo(&t, "E", ss, "exp_sleep", 1, 32, 32);
	}
	ck_assert_int_eq(log_count_reaches(t.log, "state=transforming "
	    "attempt=1 settings=1", FIRST, 30000), FIRST);
	/* then reload after reload, each waited for, until every session
	 * has ended; the rest of the burst comes after the first one */
	while (final < N && reloads < 200) {
		f = fopen(conf, "w");
		fprintf(f, "[plugins]\ndir = %s\ntransform-timeout = %d\n", dir,
		    reloads % 2 == 0 ? 1 : 30);
		fclose(f);
		kill(d, SIGHUP);
		reloads++;
		ck_assert_int_eq(log_count_reaches(t.log, "reload: done",
		    reloads, 20000), reloads);
		if (reloads == 1)
			for (int i = 0; i < SECOND; i++) {
				snprintf(ss, sizeof(ss), "b%d", i);
				capture_photo(&t, "E", ss, "exp_sleep", 1, 32,
				    32);
			}
		final = log_count(t.log, "model=test-passthrough state=error") +
		    log_count(t.log, "plugin=test-passthrough state=ready");
	}
	ck_assert_int_ge(log_count_reaches(t.log, " settings=", 2 * N, 30000),
	    2 * N);
	for (int i = 0; i < N; i++) {
		unsigned claim, end;
		FsDocument *doc;

		snprintf(ss, sizeof(ss), "%c%d", i < FIRST ? 'a' : 'b',
		    i < FIRST ? i : i - FIRST);
		doc = wait_final(&t, "E", ss, 30000);
		claim = generation_of(t.log, ss, "state=transforming");
		end = generation_of(t.log, ss, "model=test-passthrough");
		ck_assert_msg(claim > 0 && claim == end, "%s: claimed under "
		    "settings %u, finished under %u", ss, claim, end);
		ck_assert_msg(i >= FIRST || claim == 1, "%s: settings %u", ss,
		    claim);
		ck_assert_msg(i < FIRST || claim > 1, "%s: settings %u", ss,
		    claim);
		/* generation 1 and every odd one: 30 s; even ones: 1 s */
		if (claim % 2 == 1)
			ck_assert_msg(strcmp(state_of(doc), "ready") == 0,
			    "%s (settings %u): %s", ss, claim, state_of(doc));
		else
			assert_error(&t, "E", ss, "timeout after 1s");
		doc_free(doc);
		if (claim != last_gen)
			gens_seen++;
		last_gen = claim;
	}
	ck_assert_int_ge(gens_seen, 2);
	/* no sanitizer report ("==PID==ERROR: AddressSanitizer: ...",
	 * UBSan's "runtime error:") */
	ck_assert_int_eq(log_count(t.log, "ERROR: "), 0);
	ck_assert_int_eq(log_count(t.log, "runtime error:"), 0);
	ck_assert(alive(d));
	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	free(dir);
	schema_ok(&t);
	ctx_done(&t);
}
END_TEST

START_TEST(service_notify_reload_and_drain)
{
	struct ctx t;
	char sock[200], conf[200], *dir, notes[16384] = "";
	const char *args[6];
	FsDocument *doc;
	FILE *f;
	pid_t d;
	int fd, status;

	ctx_init(&t, "service", em.host);
	snprintf(sock, sizeof(sock), "%s/notify.sock", t.root);
	fd = notify_listen(sock);
	dir = xasprintf("%s/plugins", t.root);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	snprintf(conf, sizeof(conf), "%s/firesyncd.conf", t.root);
	f = fopen(conf, "w");
	fprintf(f, "[plugins]\ndir = %s\nworkers = 1\ntransform-timeout = 2\n"
	    "[log]\nlevel = info\n", dir);
	fclose(f);
	setenv("NOTIFY_SOCKET", sock, 1);
	setenv("WATCHDOG_USEC", "1000000", 1);
	args[0] = "-c";
	args[1] = conf;
	args[2] = "--workers";	/* flags win over the file: say it here */
	args[3] = "1";
	args[4] = NULL;
	d = start_daemon(&t, NULL, args);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");

	/* READY=1 once the first snapshot is current, then status and
	 * watchdog pings from the main loop */
	ck_assert_msg(notify_wait(fd, "READY=1", 30000, notes, sizeof(notes)),
	    "no READY=1; got:\n%s", notes);
	notify_wait(fd, NULL, 3000, notes, sizeof(notes));
	ck_assert_msg(count_of(notes, "WATCHDOG=1") >= 3, "watchdog pings: "
	    "%d\n%s", count_of(notes, "WATCHDOG=1"), notes);
	ck_assert_ptr_nonnull(strstr(notes, "STATUS=listening; 0 in flight"));

	/* a model no plugin serves yet */
	put_experience(&t, "exp", true, "test-good");
	capture_photo(&t, "E", "before", "exp", 1, 32, 32);
	assert_error(&t, "E", "before", "no plugin for model 'test-good'");

	/* install the plugin, raise the log level, reload: no restart */
	{
		char cmd[512];

		snprintf(cmd, sizeof(cmd), "cp %s/good.so %s/%s/ && chmod 755 "
		    "%s/good.so", TEST_PLUGINS, dir, "", dir);
		ck_assert_int_eq(system(cmd), 0);
	}
	f = fopen(conf, "w");
	fprintf(f, "[plugins]\ndir = %s\nworkers = 1\ntransform-timeout = 2\n"
	    "[log]\nlevel = debug\n", dir);
	fclose(f);
	notes[0] = '\0';
	kill(d, SIGHUP);
	ck_assert_msg(notify_wait(fd, "RELOADING=1", 5000, notes,
	    sizeof(notes)), "no RELOADING=1:\n%s", notes);
	ck_assert(notify_wait(fd, "READY=1", 5000, notes, sizeof(notes)));
	ck_assert_int_eq(log_count(t.log, "reload: done (log level debug"), 1);
	capture_photo(&t, "E", "after", "exp", 1, 32, 32);
	doc = wait_final(&t, "E", "after", 30000);
	ck_assert_str_eq(state_of(doc), "ready");
	doc_free(doc);
	ck_assert(alive(d));

	/* a broken configuration is refused and the old one kept */
	f = fopen(conf, "w");
	fprintf(f, "[plugins]\nworkers = lots\n");
	fclose(f);
	kill(d, SIGHUP);
	notify_wait(fd, "READY=1", 5000, notes, sizeof(notes));
	ck_assert_int_eq(log_count(t.log, "reload failed"), 1);
	ck_assert(alive(d));

	/* SIGTERM drains: the running session ends in a stated state; the
	 * queued one stays captured for the next daemon */
	{
		char cmd[512];

		snprintf(cmd, sizeof(cmd), "cp %s/hang.so %s/ && chmod 755 "
		    "%s/hang.so", TEST_PLUGINS, dir, dir);
		ck_assert_int_eq(system(cmd), 0);
		f = fopen(conf, "w");
		fprintf(f, "[plugins]\ndir = %s\nworkers = 1\n"
		    "transform-timeout = 2\n", dir);
		fclose(f);
		kill(d, SIGHUP);
		ck_assert(notify_wait(fd, "READY=1", 5000, notes,
		    sizeof(notes)));
	}
	put_experience(&t, "exp_hang", true, "test-hang");
	/* one worker: "running" runs, "ahead" is claimed ahead of the
	 * worker (the claim round trip overlaps the transform before it),
	 * "queued" waits its turn */
	capture_photo(&t, "E", "running", "exp_hang", 1, 32, 32);
	wait_transforming(&t, "events/E/sessions/running");
	capture_photo(&t, "E", "ahead", "exp_hang", 1, 32, 32);
	wait_transforming(&t, "events/E/sessions/ahead");
	capture_photo(&t, "E", "queued", "exp_hang", 1, 32, 32);
	usleep(300000);
	notes[0] = '\0';
	kill(d, SIGTERM);
	ck_assert(notify_wait(fd, "STOPPING=1", 5000, notes, sizeof(notes)));
	ck_assert_int_eq(waitpid(d, &status, 0), d);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	for (int i = 0; i < 2; i++) {
		char path[64];

		snprintf(path, sizeof(path), "events/E/sessions/%s",
		    i == 0 ? "running" : "ahead");
		doc = admin_get(t.c, path);
		ck_assert_str_eq(state_of(doc), "error");
		ck_assert_ptr_nonnull(strstr(doc_string(doc, "error"),
		    "timeout after 2s"));
		doc_free(doc);
	}
	doc = admin_get(t.c, "events/E/sessions/queued");
	ck_assert_str_eq(state_of(doc), "captured");
	doc_free(doc);
	close(fd);
	free(dir);
	ctx_done(&t);
}
END_TEST

START_TEST(event_scoping_serves_only_listed_events)
{
	static const char *const args[] = { "--events", "evt_a, evt_b", NULL };
	struct ctx t;
	FsDocument *doc;
	pid_t d;

	ctx_init(&t, "events", em.host);
	put_experience(&t, "exp", false, "none");
	d = start_daemon(&t, NULL, args);
	capture_photo(&t, "evt_c", "s", "exp", 1, 16, 16);
	capture_photo(&t, "evt_a", "s", "exp", 1, 16, 16);
	capture_photo(&t, "evt_b", "s", "exp", 1, 16, 16);
	doc = wait_final(&t, "evt_a", "s", 30000);
	ck_assert_str_eq(state_of(doc), "ready");
	doc_free(doc);
	doc = wait_final(&t, "evt_b", "s", 30000);
	ck_assert_str_eq(state_of(doc), "ready");
	doc_free(doc);
	usleep(1000000);
	doc = admin_get(t.c, "events/evt_c/sessions/s");
	ck_assert_str_eq(state_of(doc), "captured");	/* not ours */
	doc_free(doc);
	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	ctx_done(&t);
}
END_TEST

START_TEST(a_silent_server_gets_the_stream_reopened)
{
	/* a peer that accepts TCP but never answers: the Listen stream must
	 * not wait on it forever */
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	char host[64], root[64], logpath[128];
	const char *args[16];
	int fd = socket(AF_INET, SOCK_STREAM, 0), n = 0;
	pid_t d;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(fd, (struct sockaddr *)&a, &len);
	listen(fd, 16);
	snprintf(host, sizeof(host), "127.0.0.1:%d", ntohs(a.sin_port));
	make_root(root, sizeof(root));
	snprintf(logpath, sizeof(logpath), "%s/daemon.log", root);
	args[n++] = "--emulator";
	args[n++] = host;
	args[n++] = "--project";
	args[n++] = "silent";
	args[n++] = "--storage-root";
	args[n++] = root;
	args[n++] = "--idle-timeout";
	args[n++] = "5";
	args[n] = NULL;
	d = daemon_spawn(FIRESYNCD, args, logpath);
	ck_assert_msg(log_count_reaches(logpath, "no response 5 s after "
	    "opening the stream; reopening it", 1, 60000) >= 1, "see %s",
	    logpath);
	ck_assert(alive(d));
	ck_assert_int_eq(daemon_stop(d, 10000), 0);
	close(fd);
	remove_root(root);
}
END_TEST

/* Only the tests named in $FIRESYNC_TESTS (space-separated), if set: for
 * running one while working on it. */
static bool
wanted(const char *name)
{
	const char *only = getenv("FIRESYNC_TESTS");
	size_t n = strlen(name);

	if (only == NULL || *only == '\0')
		return true;
	for (const char *p = only; (p = strstr(p, name)) != NULL; p += n)
		if ((p == only || p[-1] == ' ') && (p[n] == '\0' ||
		    p[n] == ' '))
			return true;
	return false;
}

#define add_test(tc, fn) do { \
	if (wanted(#fn)) \
		tcase_add_test(tc, fn); \
} while (0)

static Suite *
integration_suite(void)
{
	Suite *s = suite_create("integration");
	TCase *tc = tcase_create("emulator");

	tcase_set_timeout(tc, 240);
	add_test(tc, ai_off_session_ends_ready);
	add_test(tc, failures_end_in_error_and_daemon_keeps_serving);
	add_test(tc, retry_after_error_is_processed_again);
	add_test(tc, backlog_captured_before_start_is_processed);
	add_test(tc, two_daemons_share_a_burst_without_double_claims);
	add_test(tc, a_daemon_killed_while_others_run_loses_nothing);
	add_test(tc, emulator_restart_loses_nothing);
	add_test(tc, sigkill_mid_transform_is_recovered);
	add_test(tc, interrupted_too_often_ends_in_error);
	add_test(tc, recovery_pages_through_many_interrupted_sessions);
	add_test(tc, experience_changes_apply_to_the_next_session);
	add_test(tc, plugin_sessions_crash_and_hang_cost_only_themselves);
	add_test(tc, cartoon_and_style_sessions_are_transformed);
	add_test(tc, genai_sessions_end_to_end);
	add_test(tc, vertex_and_openai_end_to_end);
	add_test(tc, frames_and_renditions_on_the_local_backend);
	add_test(tc, frames_and_renditions_in_a_bucket);
	add_test(tc, firebase_storage_end_to_end);
	add_test(tc, every_event_gets_its_turn);
	add_test(tc, a_local_look_never_waits_behind_hosted_calls);
	add_test(tc, hosted_calls_take_events_in_turn);
	add_test(tc, a_daemon_killed_with_hosted_calls_out_loses_nothing);
	add_test(tc, an_outage_sends_guests_to_the_fallback_look);
	add_test(tc, an_outage_without_a_fallback_is_an_honest_error);
	add_test(tc, rate_limits_slow_every_call_and_fail_no_guest);
	add_test(tc, an_event_budget_holds_across_daemons);
	add_test(tc, budget_units_are_counted_once);
	add_test(tc, metrics_count_what_happened);
	add_test(tc, firesyncctl_status_in_each_state);
	add_test(tc, service_notify_reload_and_drain);
	add_test(tc, reloads_during_a_burst_keep_each_session_s_settings);
	add_test(tc, multibyte_text_is_cut_cleanly);
	add_test(tc, an_unrelated_write_mid_transform_keeps_the_result);
	add_test(tc, references_come_only_from_references);
	add_test(tc, sessions_at_the_size_limit_end_in_error);
	add_test(tc, gcs_sessions_end_to_end);
	add_test(tc, gcs_faults_through_the_daemon);
	add_test(tc, production_path_tls_and_tokens);
	add_test(tc, production_tokens_refresh_and_streams_reopen);
	add_test(tc, a_drain_timeout_leaves_the_session_to_recovery);
	add_test(tc, event_scoping_serves_only_listed_events);
	add_test(tc, a_silent_server_gets_the_stream_reopened);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed, rc;

	log_init();
	runner = getpid();
	rc = emulator_start(&em, FIRESTORE_EMULATOR, 0);
	if (rc == -ENOENT) {
		fprintf(stderr,
		    "\n*** The Firestore emulator is not installed at\n"
		    "***   %s\n"
		    "*** Integration tests cannot run: FAILING.  Install it with\n"
		    "***   apt-get install google-cloud-cli-firestore-emulator\n"
		    "*** (from Google's Cloud SDK apt repository) or configure\n"
		    "*** with FIRESTORE_EMULATOR=/path/to/cloud_firestore_emulator\n\n",
		    FIRESTORE_EMULATOR);
		return 1;
	}
	if (rc < 0) {
		fprintf(stderr, "the Firestore emulator did not start (%s); "
		    "see %s\n", strerror(-rc), em.log);
		return 1;
	}
	fprintf(stderr, "Firestore emulator on %s\n", em.host);
	sr = srunner_create(integration_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (failed > 0)
		show_failure_logs();
	else
		unlink(em.log);
	emulator_stop(&em);
	return failed == 0 ? 0 : 1;
}
