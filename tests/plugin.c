/*
 * plugin.c - the plugin host: loading and refusing plugins, and running
 * good and bad ones through real worker processes.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "capture.h"
#include "clock.h"
#include "image.h"
#include "log.h"
#include "firesync/plugin.h"
#include "pool.h"
#include "testimg.h"

/* AddressSanitizer turns a plugin's SIGSEGV into its own report and an
 * abort (SIGABRT) */
#if defined(__SANITIZE_ADDRESS__)
#define CRASH_SIGNAL "6"
#else
#define CRASH_SIGNAL "11"
#endif


static char dir[64];		/* a private copy of the test plugins */
static char *worker;

/* Copy every built test plugin into a fresh directory of ours. */
static void
make_plugin_dir(void)
{
	char cmd[512];

	snprintf(dir, sizeof(dir), "/tmp/fsplug-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd), "cp %s/*.so %s/ && chmod 755 %s/*.so",
	    TEST_PLUGINS, dir, dir);
	ck_assert_int_eq(system(cmd), 0);
}

static void
rm_plugin_dir(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)!system(cmd);
}

/* Run firesyncd --list-plugins on dir; its output in a static buffer. */
static const char *
list_plugins(const char *d)
{
	static char out[16384];
	char cmd[512];
	FILE *f;
	size_t n;

	snprintf(cmd, sizeof(cmd), "%s --list-plugins --plugin-dir %s 2>&1",
	    FIRESYNCD, d);
	f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	ck_assert_int_eq(pclose(f), 0);
	return out;
}

static void
expect_line(const char *out, const char *a, const char *b)
{
	const char *line = out;

	while (line && *line) {
		const char *end = strchr(line, '\n');
		char buf[1024];
		size_t n = end ? (size_t)(end - line) : strlen(line);

		if (n >= sizeof(buf))
			n = sizeof(buf) - 1;
		memcpy(buf, line, n);
		buf[n] = '\0';
		if (strstr(buf, a) && strstr(buf, b))
			return;
		line = end ? end + 1 : NULL;
	}
	ck_abort_msg("no line with '%s' and '%s' in:\n%s", a, b, out);
}

START_TEST(loader_refuses_with_reasons)
{
	const char *out;
	char want[160];

	make_plugin_dir();
	out = list_plugins(dir);
	expect_line(out, "loaded", "test-good 1.0.0 (firesync tests, MIT) "
	    "models: test-good");
	expect_line(out, "loaded", "models: test-passthrough test-original");
	expect_line(out, "loaded", "test-segv");
	snprintf(want, sizeof(want), "abi_major.so: built for plugin ABI "
	    "99.%d, this firesync speaks 1.%d", FIRESYNC_PLUGIN_ABI_MINOR,
	    FIRESYNC_PLUGIN_ABI_MINOR);
	expect_line(out, "refused", want);
	snprintf(want, sizeof(want), "newer_minor.so: needs plugin ABI 1.%d, "
	    "newer than this firesync's 1.%d", FIRESYNC_PLUGIN_ABI_MINOR + 1,
	    FIRESYNC_PLUGIN_ABI_MINOR);
	expect_line(out, "refused", want);
	expect_line(out, "refused", "small.so: its descriptor is 16 bytes");
	expect_line(out, "refused", "nofield.so: required field 'transform' "
	    "is missing");
	expect_line(out, "refused", "initfail.so: init failed: licence key "
	    "missing");
	expect_line(out, "refused", "nosymbol.so: it exports no "
	    "'firesync_plugin' symbol");
	expect_line(out, "refused", "zduplicate.so: model 'test-good' is "
	    "already served by plugin 'test-good'");
	expect_line(out, "loaded", "test-hostile 1.0.0");
	expect_line(out, "loaded", "test-soak 1.0.0");
	expect_line(out, "loaded", "models: test-remote remote, calls=32");
	expect_line(out, "11 plugin(s) loaded", "7 refused");
	rm_plugin_dir();
}
END_TEST

START_TEST(loader_refuses_writable_files_and_dirs)
{
	char path[128];
	const char *out;

	make_plugin_dir();
	snprintf(path, sizeof(path), "%s/good.so", dir);
	ck_assert_int_eq(chmod(path, 0777), 0);
	out = list_plugins(dir);
	expect_line(out, "refused", "good.so: the file is writable by "
	    "anyone: chmod go-w");
	ck_assert_int_eq(chmod(path, 0755), 0);
	ck_assert_int_eq(chmod(dir, 0775), 0);
	out = list_plugins(dir);
	expect_line(out, "refused", "the plugin directory is writable by its "
	    "group");
	expect_line(out, "0 plugin(s) loaded", "");
	rm_plugin_dir();
}
END_TEST

/* ---- jobs through real workers ---- */

static struct pool *pool;
static uint8_t *jpg;
static size_t jpglen;

static void
pool_setup_with(int workers, int64_t timeout_ms, const char *config)
{
	struct pool_options o = {
		.worker_path = worker,
		.plugin_dir = dir,
		.config_path = config,
		.workers = workers,
		.timeout_ms = timeout_ms,
		.memory_mb = 512,
		.max_jobs = 3,
		.max_pixels = 50000000,
		.log_level = LOG_ERR,
	};
	char err[512];

	make_plugin_dir();
	pool = pool_new(&o, err, sizeof(err));
	ck_assert_msg(pool != NULL, "pool_new: %s", err);
	testimg_jpeg(64, 48, 6, &jpg, &jpglen);	/* shown as 48x64 */
}

static void
pool_setup(void)
{
	pool_setup_with(2, 1500, NULL);
}

static void
pool_teardown(void)
{
	pool_free(pool);
	free(jpg);
	rm_plugin_dir();
}

static int
run(const char *model, const char *aspect, struct image *out, char *err,
    size_t errlen)
{
	struct pool_job job = {
		.ai = model != NULL, .model = model, .prompt = "bold",
		.aspect_ratio = aspect, .session_id = "s", .event_id = "e",
		.input = jpg, .input_len = jpglen,
	};
	struct pool_result res;
	char derr[256];

	if (pool_transform(pool, &job, &res) == POOL_OK) {
		ck_assert_int_eq(image_sniff(res.png, res.png_len), IMAGE_PNG);
		ck_assert_int_eq(image_decode(res.png, res.png_len, 100000000,
		    out, derr, sizeof(derr)), 0);
		free(res.png);
	}
	snprintf(err, errlen, "%s", res.message);
	return res.status;
}

START_TEST(good_plugin_inverts)
{
	struct image img;
	char err[512];
	const uint8_t *px;

	ck_assert_int_eq(run("test-good", "", &img, err, sizeof(err)), 0);
	ck_assert_uint_eq(img.width, 48);	/* upright before the plugin */
	ck_assert_uint_eq(img.height, 64);
	/* the red quadrant (top-right after EXIF 6) is now cyan */
	px = img.pixels + (8 * img.width + 40) * img.channels;
	ck_assert_msg(px[0] < 80 && px[1] > 180 && px[2] > 180,
	    "not inverted: %d,%d,%d", px[0], px[1], px[2]);
	image_free(&img);
}
END_TEST

START_TEST(aspect_ratio_is_exact)
{
	static const struct { const char *r; uint32_t w, h; } cases[] = {
		{ "1:1", 48, 48 }, { "3:4", 48, 64 }, { "4:3", 48, 36 },
		{ "16:9", 48, 27 }, { "9:16", 36, 64 }, { "2:1", 48, 24 },
	};
	struct image img;
	char err[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_eq(run("test-passthrough", cases[i].r, &img, err,
		    sizeof(err)), 0);
		ck_assert_msg(img.width == cases[i].w &&
		    img.height == cases[i].h, "%s: %ux%u", cases[i].r,
		    img.width, img.height);
		image_free(&img);
	}
	ck_assert_int_eq(run("test-passthrough", "wide", &img, err,
	    sizeof(err)), POOL_BAD_INPUT);
	ck_assert_ptr_nonnull(strstr(err, "aspect ratio 'wide' is not W:H"));
}
END_TEST

START_TEST(encoded_result_and_passthrough)
{
	struct image img;
	char err[512];

	/* the plugin hands back the capture's own JPEG bytes (stored 64x48,
	 * EXIF 6): the host honours their orientation too */
	ck_assert_int_eq(run("test-original", "", &img, err, sizeof(err)), 0);
	ck_assert_uint_eq(img.width, 48);
	ck_assert_uint_eq(img.height, 64);
	image_free(&img);
	ck_assert_int_eq(run(NULL, "", &img, err, sizeof(err)), 0);
	ck_assert_uint_eq(img.width, 48);	/* AI off: upright photo */
	image_free(&img);
	/* a result not of the shape asked for (the original, uncropped) is
	 * centre-cropped to it by the host: 48x64 at 1:1 and 16:9 */
	ck_assert_int_eq(run("test-original", "1:1", &img, err, sizeof(err)),
	    0);
	ck_assert_msg(img.width == 48 && img.height == 48, "%ux%u", img.width,
	    img.height);
	image_free(&img);
	ck_assert_int_eq(run("test-original", "16:9", &img, err,
	    sizeof(err)), 0);
	ck_assert_msg(img.width == 48 && img.height == 27, "%ux%u", img.width,
	    img.height);
	image_free(&img);
}
END_TEST

START_TEST(failures_are_named_and_the_pool_recovers)
{
	struct image img;
	char err[512];

	ck_assert_int_eq(run("test-segv", "", &img, err, sizeof(err)),
	    POOL_CRASH);
	ck_assert_str_eq(err, "plugin test-segv crashed (signal " CRASH_SIGNAL ")");
	ck_assert_int_eq(run("test-hang", "", &img, err, sizeof(err)),
	    POOL_TIMEOUT);
	ck_assert_str_eq(err, "timeout after 1.5s");
	ck_assert_int_eq(run("test-slow", "", &img, err, sizeof(err)),
	    POOL_TIMEOUT);
	ck_assert_str_eq(err, "timeout after 1.5s (the model gave up at the "
	    "deadline)");
	/* a plugin's own error is a plugin error, not a bad image */
	ck_assert_int_eq(run("test-error", "", &img, err, sizeof(err)),
	    POOL_PLUGIN_ERROR);
	ck_assert_str_eq(err, "the model is sad");
	ck_assert_int_eq(run("test-garbage", "", &img, err, sizeof(err)),
	    POOL_BAD_RESULT);
	ck_assert_ptr_nonnull(strstr(err, "plugin test-garbage returned an "
	    "invalid image (100000x100000"));
	ck_assert_int_eq(run("no-such-model", "", &img, err, sizeof(err)),
	    POOL_NO_PLUGIN);
	ck_assert_str_eq(err, "no plugin for model 'no-such-model'");
	/* and after all that, and past max_jobs recycling, work goes on */
	for (int i = 0; i < 7; i++) {
		ck_assert_int_eq(run("test-good", "", &img, err, sizeof(err)),
		    0);
		image_free(&img);
	}
}
END_TEST

struct bg {
	const char *model;
	int rc;
	int64_t done_ms;	/* when the job came back */
	char err[512];
};

static void *
bg_run(void *arg)
{
	struct bg *b = arg;
	struct image img;

	b->rc = run(b->model, "", &img, b->err, sizeof(b->err));
	b->done_ms = now_mono_ms();
	if (b->rc == 0)
		image_free(&img);
	return NULL;
}

START_TEST(a_hang_does_not_hold_up_others)
{
	struct bg hang = { "test-hang", 0, 0, "" };
	struct image img;
	char err[512];
	pthread_t t;
	int64_t goods_done;

	pthread_create(&t, NULL, bg_run, &hang);
	usleep(100000);		/* the hang holds one of the two workers */
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(run("test-good", "", &img, err, sizeof(err)),
		    0);
		image_free(&img);
	}
	goods_done = now_mono_ms();
	pthread_join(t, NULL);
	ck_assert_int_eq(hang.rc, POOL_TIMEOUT);
	/* the good jobs ran on the other worker, not after the hang */
	ck_assert_int_lt(goods_done, hang.done_ms);
}
END_TEST

/* Open descriptors of this process. */
static int
open_fds(void)
{
	char cmd[64];
	FILE *f;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls /proc/%d/fd | wc -l", (int)getpid());
	f = popen(cmd, "r");
	if (f && fscanf(f, "%d", &n) != 1)
		n = -1;
	if (f)
		pclose(f);
	return n;
}

/* A plugin that answers in the worker's place with a buffer it did not
 * seal (and shrinks it) is refused at once, never read; one that sends
 * extra descriptors has every one of them closed. */
START_TEST(forged_results_are_refused_and_closed)
{
	struct image img;
	char err[512];
	int before, after;

	ck_assert_int_eq(run("hostile-unsealed", "", &img, err, sizeof(err)),
	    POOL_WORKER);
	ck_assert_str_eq(err, "the transform worker misbehaved");
	ck_assert_int_eq(run("hostile-twofds", "", &img, err, sizeof(err)),
	    POOL_WORKER);
	before = open_fds();
	for (int i = 0; i < 10; i++) {
		ck_assert_int_eq(run("hostile-twofds", "", &img, err,
		    sizeof(err)), POOL_WORKER);
		ck_assert_str_eq(err, "the transform worker misbehaved");
	}
	after = open_fds();
	ck_assert_msg(before > 0 && after <= before, "descriptors %d -> %d",
	    before, after);
	/* and good work goes on */
	ck_assert_int_eq(run("test-good", "", &img, err, sizeof(err)), 0);
	image_free(&img);
}
END_TEST

/* A worker killed between jobs is replaced for the next session, which is
 * not blamed for it. */
START_TEST(a_worker_dead_while_idle_is_not_blamed)
{
	struct pool_job job = { .ai = true, .model = "hostile-die-idle",
	    .aspect_ratio = "", .session_id = "s", .event_id = "e",
	    .input = jpg, .input_len = jpglen };
	char statpath[64], err[512];
	struct pool_result res;
	int pid = 0;
	FILE *f;

	pool_free(pool);
	{
		struct pool_options o = {
			.worker_path = worker, .plugin_dir = dir, .workers = 1,
			.timeout_ms = 5000, .memory_mb = 512, .max_jobs = 10,
			.max_pixels = 50000000, .log_level = LOG_ERR,
		};

		pool = pool_new(&o, err, sizeof(err));
		ck_assert_ptr_nonnull(pool);
	}
	job.prompt = "";
	ck_assert_int_eq(pool_transform(pool, &job, &res), POOL_OK);
	{
		struct image img;

		ck_assert_int_eq(image_decode(res.png, res.png_len, 100000000,
		    &img, err, sizeof(err)), 0);
		pid = img.pixels[0] << 16 | img.pixels[1] << 8 |
		    img.pixels[2];
		image_free(&img);
	}
	free(res.png);
	ck_assert_int_gt(pid, 1);
	/* wait until the worker is dead (a zombie: the pool reaps it); on
	 * a loaded machine its killer thread may take a while to run, so
	 * the wait is for the event, with a deadline only as a backstop */
	snprintf(statpath, sizeof(statpath), "/proc/%d/stat", pid);
	for (int64_t end = now_mono_ms() + 60000;; usleep(10000)) {
		char buf[256] = "";
		char *paren;

		f = fopen(statpath, "r");
		ck_assert_msg(f != NULL, "worker %d reaped before the test "
		    "looked", pid);
		(void)!fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		paren = strrchr(buf, ')');
		if (paren && paren[1] == ' ' && paren[2] == 'Z')
			break;
		ck_assert_msg(now_mono_ms() < end, "worker %d still alive "
		    "60 s after it was to kill itself", pid);
	}
	job.model = "test-good";
	ck_assert_msg(pool_transform(pool, &job, &res) == POOL_OK,
	    "blamed: %s", res.message);
	free(res.png);
}
END_TEST

/* Run probe-escape in a fresh pool (network as given); its report. */
static void
escape_report(bool network, char *out, size_t outlen)
{
	char keydir[] = "/tmp/fskey-XXXXXX", store[] = "/tmp/fsstore-XXXXXX";
	char conf[160], prompt[256], key[128], evil[128];
	struct pool_options o = {
		.worker_path = worker, .plugin_dir = dir, .workers = 1,
		.timeout_ms = 5000, .memory_mb = 512, .max_jobs = 10,
		.max_pixels = 50000000, .log_level = LOG_ERR,
	};
	struct pool_job job = { .ai = true, .model = "probe-escape",
	    .aspect_ratio = "", .session_id = "s", .event_id = "e",
	    .input = jpg, .input_len = jpglen };
	struct pool_result res;
	FILE *f;

	ck_assert_ptr_nonnull(mkdtemp(keydir));
	ck_assert_ptr_nonnull(mkdtemp(store));
	snprintf(key, sizeof(key), "%s/sa.json", keydir);
	f = fopen(key, "w");
	ck_assert_ptr_nonnull(f);
	fputs("{\"type\": \"service_account\"}\n", f);
	fclose(f);
	chmod(key, 0600);
	snprintf(evil, sizeof(evil), "%s/result.png", store);
	snprintf(conf, sizeof(conf), "%s/net.conf", keydir);
	f = fopen(conf, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "[plugin.test-hostile]\nnetwork = %s\n",
	    network ? "yes" : "no");
	fclose(f);
	o.config_path = conf;
	pool_free(pool);
	pool = pool_new(&o, out, outlen);
	ck_assert_msg(pool != NULL, "pool_new: %s", out);
	snprintf(prompt, sizeof(prompt), "%s %s", key, evil);
	job.prompt = prompt;
	ck_assert_int_eq(pool_transform(pool, &job, &res), POOL_PLUGIN_ERROR);
	snprintf(out, outlen, "%s", res.message);
	ck_assert_msg(access(evil, F_OK) != 0, "the plugin wrote %s", evil);
	snprintf(prompt, sizeof(prompt), "rm -rf %s %s", keydir, store);
	(void)!system(prompt);
}

/* A plugin cannot read the key file, write outside, open a network
 * socket (unless its section says network = yes), signal the daemon or
 * run a program; each attempt fails and the job ends with its error. */
START_TEST(the_sandbox_holds)
{
	char out[512];

	escape_report(false, out, sizeof(out));
	ck_assert_msg(strstr(out, "read=EACCES") && strstr(out,
	    "write=EACCES") && strstr(out, "socket=EPERM") &&
	    strstr(out, "kill=EPERM") && strstr(out, "exec=E"),
	    "escaped: %s", out);
	escape_report(true, out, sizeof(out));
	ck_assert_msg(strstr(out, "socket=ok") && strstr(out, "read=EACCES") &&
	    strstr(out, "exec=E"), "network=yes: %s", out);
}
END_TEST

/* Reload while sessions are failing: a worker crash names its plugin from
 * the model table that a reload replaces.  Under the sanitizer build a read
 * of the old table after it was freed is a hard failure. */
struct crasher {
	int n;
	int rc_bad;		/* results other than "crashed" */
};

static void *
crash_loop(void *arg)
{
	struct crasher *c = arg;
	struct image img;
	char err[512];

	for (int i = 0; i < c->n; i++) {
		int rc = run("test-segv", "", &img, err, sizeof(err));

		if (rc != POOL_CRASH ||
		    strstr(err, "plugin test-segv crashed") == NULL)
			c->rc_bad++;
		if (rc == 0)
			image_free(&img);
	}
	return NULL;
}

static atomic_int reloading;

static void *
reload_loop(void *arg)
{
	const struct pool_options *o = arg;

	while (atomic_load(&reloading))
		pool_reconfigure(pool, o);
	return NULL;
}

START_TEST(reload_while_plugins_crash)
{
	struct pool_options o = {
		.worker_path = worker, .plugin_dir = dir, .workers = 2,
		.timeout_ms = 5000, .memory_mb = 512, .max_jobs = 3,
		.max_pixels = 50000000, .log_level = LOG_CRIT,
	};
	struct crasher a = { 40, 0 }, b = { 40, 0 };
	pthread_t ta, tb, tr;

	atomic_store(&reloading, 1);
	pthread_create(&tr, NULL, reload_loop, &o);
	pthread_create(&ta, NULL, crash_loop, &a);
	pthread_create(&tb, NULL, crash_loop, &b);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	atomic_store(&reloading, 0);
	pthread_join(tr, NULL);
	ck_assert_int_eq(a.rc_bad, 0);
	ck_assert_int_eq(b.rc_bad, 0);
}
END_TEST

/* ---- hosted calls: a remote plugin's many calls at once ---- */

/* A pool like the jobs' (one CPU worker, a 1.5 s deadline) whose
 * test-remote plugin may have calls calls at once. */
/* Replace the pool with one CPU worker reading conf (a configuration
 * file's text) under these limits. */
static void
pool_with_config(const char *conf, int64_t timeout_ms, int max_jobs)
{
	char err[512], path[128];
	FILE *f;

	pool_free(pool);
	snprintf(path, sizeof(path), "%s/firesyncd.conf", dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(conf, f);
	fclose(f);
	{
		struct pool_options o = {
			.worker_path = worker, .plugin_dir = dir,
			.config_path = path, .workers = 1,
			.timeout_ms = timeout_ms, .memory_mb = 512,
			.max_jobs = max_jobs, .max_pixels = 50000000,
			.log_level = LOG_ERR,
		};

		pool = pool_new(&o, err, sizeof(err));
		ck_assert_msg(pool != NULL, "pool_new: %s", err);
	}
}

/* A pool like the jobs' (one CPU worker, a 1.5 s deadline) whose
 * test-remote plugin may have calls calls at once. */
static void
remote_pool(int calls)
{
	char conf[64];

	snprintf(conf, sizeof(conf), "[plugin.test-remote]\ncalls = %d\n",
	    calls);
	pool_with_config(conf, 1500, 100);
}

/* One test-remote call, its prompt saying what it does (testplugin.c). */
struct call {
	char prompt[160];
	pthread_t thread;
	int rc;
	char err[512];
};

static void *
call_main(void *arg)
{
	struct call *c = arg;
	struct pool_job job = {
		.ai = true, .model = "test-remote", .prompt = c->prompt,
		.aspect_ratio = "", .session_id = "s", .event_id = "e",
		.input = jpg, .input_len = jpglen,
	};
	struct pool_result res;

	c->rc = pool_transform(pool, &job, &res);
	snprintf(c->err, sizeof(c->err), "%s", res.message);
	free(res.png);
	return NULL;
}

static void
call_start(struct call *c, const char *prompt)
{
	snprintf(c->prompt, sizeof(c->prompt), "%s", prompt);
	ck_assert_int_eq(pthread_create(&c->thread, NULL, call_main, c), 0);
}

/* test-remote's lane, as the pool counts it. */
static struct pool_lane
remote_lane(int *hosted_workers)
{
	struct pool_lane lanes[POOL_LANES_MAX];
	int n = pool_lanes(pool, lanes, POOL_LANES_MAX, hosted_workers);

	for (int i = 0; i < n; i++)
		if (strcmp(lanes[i].plugin, "test-remote") == 0)
			return lanes[i];
	ck_abort_msg("no lane for test-remote");
	return lanes[0];
}

/* Wait (30 s at most) until test-remote has running calls in flight and
 * waiting waiting for room. */
static void
lane_reaches(int running, int waiting)
{
	int64_t end = now_mono_ms() + 30000;
	struct pool_lane l;

	while (l = remote_lane(NULL), l.in_flight != running ||
	    l.waiting != waiting) {
		ck_assert_msg(now_mono_ms() < end, "lane at %d running, %d "
		    "waiting; not %d, %d", l.in_flight, l.waiting, running,
		    waiting);
		usleep(5000);
	}
}

/* A gate file for "gate PATH" prompts, and the prompt. */
static void
gate_prompt(char *prompt, size_t len, char *gate, size_t gatelen)
{
	snprintf(gate, gatelen, "%s/gate", dir);
	snprintf(prompt, len, "gate %s", gate);
}

static void
gate_open(const char *gate)
{
	FILE *f = fopen(gate, "w");

	ck_assert_ptr_nonnull(f);
	fclose(f);
}

/*
 * Eight calls of a remote plugin are out at once in one process, and the
 * one CPU worker still runs a CPU look meanwhile: neither kind waits for
 * the other.  The lane and the model's kind are as the workers announced.
 */
START_TEST(remote_calls_run_at_once_beside_cpu_looks)
{
	struct call c[8];
	struct image img;
	char prompt[160], gate[128], err[512];
	int hw;

	remote_pool(8);
	ck_assert_int_eq(pool_model_lane(pool, "test-good"), 0);
	ck_assert_int_eq(pool_model_lane(pool, "test-remote"), 1);
	ck_assert_int_eq(pool_model_lane(pool, "no-such-model"), 0);
	ck_assert_int_eq(remote_lane(NULL).limit, 8);
	gate_prompt(prompt, sizeof(prompt), gate, sizeof(gate));
	for (int i = 0; i < 8; i++)
		call_start(&c[i], prompt);
	lane_reaches(8, 0);
	ck_assert_int_eq(run("test-good", "", &img, err, sizeof(err)), 0);
	image_free(&img);
	/* 8 of 16 calls: one process (which may still be starting) */
	for (int64_t end = now_mono_ms() + 30000; remote_lane(&hw), hw != 1;
	    usleep(5000))
		ck_assert_msg(now_mono_ms() < end, "%d hosted workers", hw);
	ck_assert_int_eq(remote_lane(NULL).in_flight, 8);
	gate_open(gate);
	for (int i = 0; i < 8; i++) {
		pthread_join(c[i].thread, NULL);
		ck_assert_msg(c[i].rc == POOL_OK, "call %d: %s", i, c[i].err);
	}
	lane_reaches(0, 0);
}
END_TEST

/* A lane holds its calls setting and no more: the rest wait for room. */
START_TEST(a_lane_holds_its_calls_setting)
{
	struct call c[5];
	char prompt[160], gate[128];

	remote_pool(2);
	gate_prompt(prompt, sizeof(prompt), gate, sizeof(gate));
	for (int i = 0; i < 5; i++)
		call_start(&c[i], prompt);
	lane_reaches(2, 3);
	gate_open(gate);
	for (int i = 0; i < 5; i++) {
		pthread_join(c[i].thread, NULL);
		ck_assert_msg(c[i].rc == POOL_OK, "call %d: %s", i, c[i].err);
	}
}
END_TEST

static void
pool_from(void *conf)
{
	pool_with_config(conf, 1500, 100);
}

/*
 * The host's keys of a remote plugin are checked: a fallback that is no
 * local look is said at once and not used; a calls.MODEL for a model the
 * plugin does not serve refuses the plugin.
 */
START_TEST(hosted_settings_are_checked)
{
	char out[16384], fb[POOL_NAME_LEN];

	capture_stderr(pool_from, "[plugin.test-remote]\nfallback = no-such\n",
	    out, sizeof(out));
	ck_assert_msg(strstr(out, "plugin test-remote: fallback = no-such: no "
	    "plugin serves that model") != NULL, "%s", out);
	ck_assert(!pool_fallback_for(pool, "test-remote", fb, sizeof(fb)));

	capture_stderr(pool_from, "[plugin.test-remote]\nfallback = "
	    "test-remote\n", out, sizeof(out));
	ck_assert_msg(strstr(out, "fallback = test-remote is a hosted model")
	    != NULL, "%s", out);
	ck_assert(!pool_fallback_for(pool, "test-remote", fb, sizeof(fb)));

	pool_with_config("[plugin.test-remote]\nfallback = test-good\n", 1500,
	    100);
	ck_assert(pool_fallback_for(pool, "test-remote", fb, sizeof(fb)));
	ck_assert_str_eq(fb, "test-good");
	ck_assert(!pool_fallback_for(pool, "test-good", fb, sizeof(fb)));

	pool_with_config("[plugin.test-remote]\ncalls.no-such = 2\n", 1500,
	    100);
	ck_assert_int_eq(pool_model_lane(pool, "test-remote"), 0);
	ck_assert(!pool_plugin_for(pool, "test-remote", fb, sizeof(fb)));
}
END_TEST

/* A model's own limit (calls.MODEL) holds within the plugin's. */
START_TEST(a_model_holds_its_own_calls_setting)
{
	struct call c[4];
	char prompt[160], gate[128];

	pool_with_config("[plugin.test-remote]\ncalls = 8\n"
	    "calls.test-remote = 2\n", 1500, 100);
	gate_prompt(prompt, sizeof(prompt), gate, sizeof(gate));
	for (int i = 0; i < 4; i++)
		call_start(&c[i], prompt);
	lane_reaches(2, 2);
	gate_open(gate);
	for (int i = 0; i < 4; i++) {
		pthread_join(c[i].thread, NULL);
		ck_assert_msg(c[i].rc == POOL_OK, "call %d: %s", i, c[i].err);
	}
}
END_TEST

/*
 * Forty calls through a lane of 32, more than two processes' worth: each
 * answer frees its slot, and the next call may reuse it at once.
 */
START_TEST(calls_follow_each_other_through_full_processes)
{
	struct call c[40];

	remote_pool(32);
	for (int i = 0; i < 40; i++)
		call_start(&c[i], "answer");
	for (int i = 0; i < 40; i++) {
		pthread_join(c[i].thread, NULL);
		ck_assert_msg(c[i].rc == POOL_OK, "call %d: %s", i, c[i].err);
	}
}
END_TEST

/*
 * A crash in one call takes the calls beside it in its process with it
 * (each told so, naming the plugin); the next call gets a new process.
 * A call that never returns is given up at its deadline, and its process
 * is replaced once its other calls end: the next call is served.
 */
START_TEST(a_remote_crash_or_hang_costs_its_process_s_calls_only)
{
	struct call c[3], segv, hang;
	char prompt[160], gate[128];
	int hw;

	remote_pool(16);
	gate_prompt(prompt, sizeof(prompt), gate, sizeof(gate));
	for (int i = 0; i < 3; i++)
		call_start(&c[i], prompt);
	lane_reaches(3, 0);
	call_start(&segv, "segv");
	pthread_join(segv.thread, NULL);
	ck_assert_int_eq(segv.rc, POOL_CRASH);
	/* SIGSEGV; SIGABRT where AddressSanitizer catches it first */
	ck_assert_msg(strcmp(segv.err, "plugin test-remote crashed (signal "
	    "11)") == 0 || strcmp(segv.err, "plugin test-remote crashed "
	    "(signal 6)") == 0, "%s", segv.err);
	for (int i = 0; i < 3; i++) {
		pthread_join(c[i].thread, NULL);
		ck_assert_int_eq(c[i].rc, POOL_CRASH);
		ck_assert_str_eq(c[i].err, segv.err);
	}
	call_start(&c[0], "answer");
	pthread_join(c[0].thread, NULL);
	ck_assert_msg(c[0].rc == POOL_OK, "after the crash: %s", c[0].err);

	call_start(&hang, "hang");
	pthread_join(hang.thread, NULL);
	ck_assert_int_eq(hang.rc, POOL_TIMEOUT);
	ck_assert_str_eq(hang.err, "timeout after 1.5s");
	/* no answer in time is the service's failure: calls pause a
	 * moment; the next one goes after the pause */
	for (int64_t end = now_mono_ms() + 30000; remote_lane(NULL).paused_ms
	    > 0; usleep(5000))
		ck_assert_msg(now_mono_ms() < end, "paused for good");
	call_start(&c[1], "answer");
	pthread_join(c[1].thread, NULL);
	ck_assert_msg(c[1].rc == POOL_OK, "after the hang: %s", c[1].err);
	/* the hung process was stopped: only the new one is left */
	for (int64_t end = now_mono_ms() + 30000; remote_lane(&hw), hw > 1;
	    usleep(5000))
		ck_assert_msg(now_mono_ms() < end, "%d hosted workers", hw);
}
END_TEST

START_TEST(plugin_configuration)
{
	struct image img;
	char err[512];
	const uint8_t *px;

	pool_with_config("[plugin.test-good]\nmode = grey\n[plugin.other]\n"
	    "x = 1\n", 5000, 10);
	ck_assert_int_eq(run("test-good", "", &img, err, sizeof(err)), 0);
	px = img.pixels + (8 * img.width + 40) * img.channels;
	ck_assert_msg(px[0] == px[1] && px[1] == px[2], "not grey: %d,%d,%d",
	    px[0], px[1], px[2]);
	image_free(&img);
}
END_TEST

/* Settings no plugin reads are reported, FILE:LINE, by --check-config
 * (warnings: the settings still pass). */
START_TEST(unread_plugin_settings_are_reported)
{
	char path[128], cmd[512], out[4096], want[256];
	FILE *f;
	size_t n;

	make_plugin_dir();
	snprintf(path, sizeof(path), "%s/firesyncd.conf", dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "[firestore]\nproject = p\n"
	    "[plugin.test-good]\n"		/* 3 */
	    "mode = grey\n"			/* 4: read */
	    "moed = grey\n"			/* 5: a typo */
	    "[plugin.no-such-plugin]\n"	/* 6 */
	    "x = 1\n");
	fclose(f);
	snprintf(cmd, sizeof(cmd), "%s --check-config -c %s --plugin-dir %s "
	    "2>&1", FIRESYNCD, path, dir);
	f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	ck_assert_int_eq(pclose(f), 0);
	snprintf(want, sizeof(want), "%s:5: warning: [plugin.test-good]: "
	    "unknown key 'moed'", path);
	ck_assert_msg(strstr(out, want) != NULL, "no '%s' in:\n%s", want, out);
	snprintf(want, sizeof(want), "%s:6: warning: [plugin.no-such-plugin]: "
	    "no loaded plugin is named", path);
	ck_assert_msg(strstr(out, want) != NULL, "no '%s' in:\n%s", want, out);
	ck_assert_msg(strstr(out, "'mode'") == NULL, "read key reported:\n%s",
	    out);
	ck_assert_ptr_nonnull(strstr(out, "settings are valid"));
	rm_plugin_dir();
}
END_TEST

START_TEST(transform_tool_on_a_jpeg)
{
	char cmd[1024], in[128], out[128];
	struct image img;
	uint8_t *png;
	size_t len;
	FILE *f;

	make_plugin_dir();
	snprintf(in, sizeof(in), "%s/in.jpg", dir);
	snprintf(out, sizeof(out), "%s/out.png", dir);
	testimg_jpeg(320, 240, 1, &png, &len);
	testimg_write(in, png, len);
	free(png);
	snprintf(cmd, sizeof(cmd), "%s --plugin-dir %s --model test-good "
	    "--aspect-ratio 1:1 --prompt bold %s %s", TRANSFORM, dir, in, out);
	ck_assert_int_eq(system(cmd), 0);
	f = fopen(out, "rb");
	ck_assert_ptr_nonnull(f);
	png = malloc(1 << 20);
	len = fread(png, 1, 1 << 20, f);
	fclose(f);
	ck_assert_int_eq(image_decode(png, len, 1000000, &img, cmd,
	    sizeof(cmd)), 0);
	ck_assert_uint_eq(img.width, 240);
	ck_assert_uint_eq(img.height, 240);
	image_free(&img);
	free(png);
	/* a failing model: a clear message and exit status 1 */
	snprintf(cmd, sizeof(cmd), "%s --plugin-dir %s --model test-error %s "
	    "%s 2>/dev/null", TRANSFORM, dir, in, out);
	ck_assert_int_eq(WEXITSTATUS(system(cmd)), 1);
	rm_plugin_dir();
}
END_TEST

/*
 * The tool runs a job in its own process, unsandboxed (--in-process):
 * there the sanitizer build's LeakSanitizer can check the job code and
 * the plugins at exit, which it cannot in a sandboxed worker.  Each run
 * must end as expected and, under the sanitizers, report nothing.
 */
START_TEST(the_tool_in_process_runs_looks_and_leaks_nothing)
{
	static const struct { const char *model, *prompt; int status; }
	    runs[] = {
		{ "test-good", "bold", 0 },
		{ "test-error", "", 1 },	/* the plugin's own error */
		{ "test-garbage", "", 1 },	/* an unusable result */
		{ "cartoon", "", 0 },
		{ "style", "oil", 0 },
		{ "style", "watercolor", 0 },
		{ "style", "pencil", 0 },
		{ "no-such-model", "", 1 },
	};
	char cmd[1024], in[128], out[128], log[160], text[4096];
	uint8_t *photo;
	size_t len;
	FILE *f;

	make_plugin_dir();
	snprintf(cmd, sizeof(cmd), "cp %s/cartoon/.libs/cartoon.so "
	    "%s/style/.libs/style.so %s/ && chmod 755 %s/*.so", BUNDLED,
	    BUNDLED, dir, dir);
	ck_assert_int_eq(system(cmd), 0);
	snprintf(in, sizeof(in), "%s/in.jpg", dir);
	snprintf(out, sizeof(out), "%s/out.png", dir);
	snprintf(log, sizeof(log), "%s/tool.log", dir);
	testimg_jpeg(160, 120, 6, &photo, &len);
	testimg_write(in, photo, len);
	free(photo);
	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		int rc;

		snprintf(cmd, sizeof(cmd), "%s --in-process --plugin-dir %s "
		    "--model %s --prompt '%s' %s %s >%s 2>&1", TRANSFORM, dir,
		    runs[i].model, runs[i].prompt, in, out, log);
		rc = system(cmd);
		f = fopen(log, "r");
		ck_assert_ptr_nonnull(f);
		text[fread(text, 1, sizeof(text) - 1, f)] = '\0';
		fclose(f);
		ck_assert_msg(WIFEXITED(rc) && WEXITSTATUS(rc) ==
		    runs[i].status, "%s %s: status %d: %s", runs[i].model,
		    runs[i].prompt, rc, text);
		/* no sanitizer report: "==PID==ERROR: LeakSanitizer: ...",
		 * UBSan's "runtime error:" */
		ck_assert_msg(strstr(text, "ERROR: ") == NULL &&
		    strstr(text, "runtime error:") == NULL, "%s %s: %s",
		    runs[i].model, runs[i].prompt, text);
	}
	rm_plugin_dir();
}
END_TEST

static Suite *
plugin_suite(void)
{
	Suite *s = suite_create("plugin");
	TCase *load = tcase_create("load");
	TCase *jobs = tcase_create("jobs");
	TCase *tool = tcase_create("tool");

	tcase_set_timeout(load, 60);
	tcase_add_test(load, loader_refuses_with_reasons);
	tcase_add_test(load, loader_refuses_writable_files_and_dirs);
	suite_add_tcase(s, load);

	tcase_set_timeout(jobs, 120);
	tcase_add_checked_fixture(jobs, pool_setup, pool_teardown);
	tcase_add_test(jobs, good_plugin_inverts);
	tcase_add_test(jobs, aspect_ratio_is_exact);
	tcase_add_test(jobs, encoded_result_and_passthrough);
	tcase_add_test(jobs, failures_are_named_and_the_pool_recovers);
	tcase_add_test(jobs, a_hang_does_not_hold_up_others);
	tcase_add_test(jobs, plugin_configuration);
	tcase_add_test(jobs, reload_while_plugins_crash);
	tcase_add_test(jobs, forged_results_are_refused_and_closed);
	tcase_add_test(jobs, a_worker_dead_while_idle_is_not_blamed);
	tcase_add_test(jobs, the_sandbox_holds);
	tcase_add_test(jobs, remote_calls_run_at_once_beside_cpu_looks);
	tcase_add_test(jobs, a_lane_holds_its_calls_setting);
	tcase_add_test(jobs, calls_follow_each_other_through_full_processes);
	tcase_add_test(jobs, a_model_holds_its_own_calls_setting);
	tcase_add_test(jobs, hosted_settings_are_checked);
	tcase_add_test(jobs, a_remote_crash_or_hang_costs_its_process_s_calls_only);
	suite_add_tcase(s, jobs);

	tcase_set_timeout(tool, 60);
	tcase_add_test(tool, transform_tool_on_a_jpeg);
	tcase_add_test(tool, the_tool_in_process_runs_looks_and_leaks_nothing);
	tcase_add_test(tool, unread_plugin_settings_are_reported);
	suite_add_tcase(s, tool);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	log_init();
	log_level = LOG_ERR;
	worker = pool_find_worker();
	sr = srunner_create(plugin_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	free(worker);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
