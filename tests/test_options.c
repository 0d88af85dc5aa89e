/*
 * test_options.c - defaults, the environment Google's tools use, and
 * flags winning over it.
 */
#include "config.h"

#include <check.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capture.h"
#include "log.h"
#include "options.h"
#include "pool.h"
#include "suites.h"

static enum options_action
parse(struct options *o, const char *const *args)
{
	char *argv[32];
	int argc = 0;

	argv[argc++] = (char *)"firesyncd";
	for (; *args; args++)
		argv[argc++] = (char *)*args;
	argv[argc] = NULL;
	return options_parse(o, argc, argv);
}

static void
clear_env(void)
{
	unsetenv("GOOGLE_CLOUD_PROJECT");
	unsetenv("GCLOUD_PROJECT");
	unsetenv("FIRESTORE_EMULATOR_HOST");
	unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
	unsetenv("STORAGE_EMULATOR_HOST");
}

START_TEST(defaults_and_environment)
{
	static const char *const none[] = { NULL };
	struct options o;

	clear_env();
	setenv("GOOGLE_CLOUD_PROJECT", "proj-env", 1);
	setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8080", 1);
	ck_assert_int_eq(parse(&o, none), OPTIONS_RUN);
	ck_assert_str_eq(o.project, "proj-env");
	ck_assert_str_eq(o.emulator, "127.0.0.1:8080");
	{
		/* the CPUs this process may use */
		cpu_set_t set;

		ck_assert_int_eq(sched_getaffinity(0, sizeof(set), &set), 0);
		ck_assert_int_eq(o.workers, CPU_COUNT(&set));
	}
	ck_assert_int_eq(o.transform_timeout_s, 45);
	ck_assert_uint_eq(o.max_pixels, 50000000);
	ck_assert_int_eq(o.keepalive_ms, 0);	/* off: emulator GOAWAYs */
	ck_assert_int_eq(o.idle_timeout_ms, 120000);
	ck_assert_ptr_null(o.public_url_base);
	options_clear(&o);
	/* production: a ping every 30 s */
	unsetenv("FIRESTORE_EMULATOR_HOST");
	ck_assert_int_eq(parse(&o, none), OPTIONS_RUN);
	ck_assert_int_eq(o.keepalive_ms, 30000);
	options_clear(&o);
	clear_env();
}
END_TEST

START_TEST(flags_win)
{
	static const char *const args[] = { "--project", "p1", "--emulator",
	    "h:1", "--workers", "8", "--transform-timeout", "10",
	    "--max-megapixels", "12", "--log-level", "debug",
	    "--storage-root", "/srv/x", "--public-url-base", "https://h/x",
	    NULL };
	struct options o;

	clear_env();
	setenv("GOOGLE_CLOUD_PROJECT", "proj-env", 1);
	setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8080", 1);
	ck_assert_int_eq(parse(&o, args), OPTIONS_RUN);
	ck_assert_str_eq(o.project, "p1");
	ck_assert_str_eq(o.emulator, "h:1");
	ck_assert_int_eq(o.workers, 8);
	ck_assert_int_eq(o.transform_timeout_s, 10);
	ck_assert_uint_eq(o.max_pixels, 12000000);
	ck_assert_int_eq(o.log_level, LOG_DEBUG);
	ck_assert_str_eq(o.storage_root, "/srv/x");
	ck_assert_str_eq(o.public_url_base, "https://h/x");
	options_clear(&o);
	clear_env();
}
END_TEST

START_TEST(bad_command_lines_are_refused)
{
	const char *const *const bad[] = {
		(const char *const[]){ NULL },	/* no project anywhere */
		(const char *const[]){ "--project", "p", "--workers", "0", NULL },
		(const char *const[]){ "--project", "p", "--workers", "4x", NULL },
		(const char *const[]){ "--project", "p", "--log-level", "loud",
		    NULL },
		(const char *const[]){ "--project", "p", "--bogus", NULL },
		(const char *const[]){ "--project", "p", "stray", NULL },
		(const char *const[]){ "--project", "p", "--transform-timeout",
		    "-5", NULL },
	};
	struct options o;

	clear_env();
	/* the refusals print to stderr; keep the test output readable */
	ck_assert_ptr_nonnull(freopen("/dev/null", "w", stderr));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(parse(&o, bad[i]) == OPTIONS_EXIT_ERROR,
		    "command line %zu accepted", i);
		options_clear(&o);
	}
}
END_TEST

static char *
write_conf(const char *text)
{
	static char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/fsconf-XXXXXX");
	close(mkstemp(path));
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return path;
}

struct parse_call {
	struct options *o;
	const char *const *args;
	enum options_action action;
};

static void
parse_call(void *arg)
{
	struct parse_call *c = arg;

	c->action = parse(c->o, c->args);
}

/* Parse with stderr captured; returns the action, stderr in out. */
static enum options_action
parse_capture(struct options *o, const char *const *args, char *out,
    size_t len)
{
	struct parse_call c = { o, args, OPTIONS_EXIT_ERROR };

	capture_stderr(parse_call, &c, out, len);
	return c.action;
}

START_TEST(config_file_errors_all_at_once)
{
	char *conf = write_conf(
	    "[firestore]\n"
	    "project = demo\n"
	    "emulatr = h:1\n"			/* 3: unknown key */
	    "[plugins]\n"
	    "workers = many\n"			/* 5: bad value */
	    "transform-timeout = 0\n"		/* 6: out of range */
	    "[plugin.cartoon]\n"
	    "anything = goes\n"			/* a plugin's own */
	    "[log]\n"
	    "level = loud\n"			/* 10: bad level */
	    "[nonsense]\n"
	    "x = 1\n");				/* 12: unknown section */
	const char *args[] = { "-c", conf, "--check-config", NULL };
	char err[4096], want[256];
	struct options o;

	clear_env();
	ck_assert_int_eq(parse_capture(&o, args, err, sizeof(err)),
	    OPTIONS_EXIT_ERROR);
	ck_assert(o.check_config);
	snprintf(want, sizeof(want), "%s:3: unknown key 'emulatr' in "
	    "[firestore]", conf);
	ck_assert_msg(strstr(err, want), "missing '%s' in:\n%s", want, err);
	snprintf(want, sizeof(want), "%s:5: workers: 'many' is not a whole "
	    "number from 1 to 256", conf);
	ck_assert_msg(strstr(err, want), "missing '%s' in:\n%s", want, err);
	snprintf(want, sizeof(want), "%s:6: transform-timeout:", conf);
	ck_assert_msg(strstr(err, want), "missing '%s' in:\n%s", want, err);
	snprintf(want, sizeof(want), "%s:10: level: must be", conf);
	ck_assert_msg(strstr(err, want), "missing '%s' in:\n%s", want, err);
	snprintf(want, sizeof(want), "%s:12: unknown section [nonsense]",
	    conf);
	ck_assert_msg(strstr(err, want), "missing '%s' in:\n%s", want, err);
	ck_assert_ptr_nonnull(strstr(err, "5 problems in the settings"));
	options_clear(&o);
	unlink(conf);
}
END_TEST

/* [results]: renditions as the workers make them, each bad one named;
 * the frame's path; the cap on the result. */
START_TEST(renditions_frames_and_the_result_cap)
{
	char *conf = write_conf(
	    "[firestore]\nproject = demo\n"
	    "[results]\n"
	    "renditions = thumb:480, share:2048:png, "
	    "print:1200x1800:jpeg@300dpi, web:800:jpg@72, small:320:webp\n"
	    "max-result-megapixels = 12\n"
	    "frame = brand/{event}/border.png\n");
	const char *args[] = { "-c", conf, "--check-config", NULL };
	static const char *const bad[][2] = {
		{ "Thumb:480", "a rendition's name is [a-z0-9_-]" },
		{ "result:480", "not 'result'" },
		{ "thumb", "give NAME:SIZE[:jpeg|png|webp][@DPI]" },
		{ "web:480:webp@72", "WebP has no resolution to write" },
		{ "thumb:0", "give NAME:SIZE" },
		{ "thumb:480x", "give NAME:SIZE" },
		{ "thumb:20000", "up to 10000" },
		{ "thumb:480:gif", "give NAME:SIZE" },
		{ "thumb:480@0dpi", "give NAME:SIZE" },
		{ "a:1, a:2", "'a' is named twice" },
		{ "a:1,b:1,c:1,d:1,e:1,f:1,g:1", "more than 6 renditions" },
	};
	struct pool_rendition r[POOL_MAX_RENDITIONS];
	char err[4096], text[512];
	struct options o;

	clear_env();
	ck_assert_int_eq(parse_capture(&o, args, err, sizeof(err)),
	    OPTIONS_RUN);
	ck_assert_uint_eq(options_renditions(&o, r), 5);
	ck_assert_int_eq(r[4].format, POOL_FORMAT_WEBP);
	ck_assert_str_eq(r[0].name, "thumb");
	ck_assert_uint_eq(r[0].width, 480);
	ck_assert_uint_eq(r[0].height, 0);
	ck_assert_int_eq(r[0].format, POOL_FORMAT_JPEG);
	ck_assert_int_eq(r[1].format, POOL_FORMAT_PNG);
	ck_assert_uint_eq(r[2].width, 1200);
	ck_assert_uint_eq(r[2].height, 1800);
	ck_assert_uint_eq(r[2].dpi, 300);
	ck_assert_uint_eq(r[3].dpi, 72);
	ck_assert_int_eq(r[3].format, POOL_FORMAT_JPEG);
	ck_assert_uint_eq(o.max_result_pixels, 12000000);
	ck_assert_str_eq(o.frame, "brand/{event}/border.png");
	options_clear(&o);
	unlink(conf);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[firestore]\nproject = demo\n"
		    "[results]\nrenditions = %s\n", bad[i][0]);
		conf = write_conf(text);
		args[1] = conf;
		ck_assert_int_eq(parse_capture(&o, args, err, sizeof(err)),
		    OPTIONS_EXIT_ERROR);
		ck_assert_msg(strstr(err, bad[i][1]) != NULL, "%s: '%s' not "
		    "in:\n%s", bad[i][0], bad[i][1], err);
		options_clear(&o);
		unlink(conf);
	}
	conf = write_conf("[firestore]\nproject = demo\n[results]\n"
	    "frame = /etc/frame.png\n");
	args[1] = conf;
	ck_assert_int_eq(parse_capture(&o, args, err, sizeof(err)),
	    OPTIONS_EXIT_ERROR);
	ck_assert_msg(strstr(err, "frame '/etc/frame.png': give a storage "
	    "path with {event}") != NULL, "%s", err);
	options_clear(&o);
	unlink(conf);
}
END_TEST

/* The Cloud Storage backend's settings, and a bucket it cannot do
 * without, reported where the backend was chosen. */
START_TEST(gcs_backend_needs_a_bucket)
{
	char *conf = write_conf(
	    "[firestore]\n"
	    "project = demo\n"
	    "[storage]\n"
	    "backend = gcs\n"			/* 4 */
	    "endpoint = https://127.0.0.1:9443\n"
	    "timeout = 12\n");
	const char *args[] = { "-c", conf, "--check-config", NULL };
	const char *ok[] = { "-c", conf, "--bucket", "photos", NULL };
	char err[4096], want[256];
	struct options o;

	clear_env();
	ck_assert_int_eq(parse_capture(&o, args, err, sizeof(err)),
	    OPTIONS_EXIT_ERROR);
	snprintf(want, sizeof(want), "%s:4: backend gcs needs [storage] "
	    "bucket", conf);
	ck_assert_msg(strstr(err, want), "missing '%s' in:\n%s", want, err);
	options_clear(&o);
	ck_assert_int_eq(parse_capture(&o, ok, err, sizeof(err)), OPTIONS_RUN);
	ck_assert_int_eq(o.storage_backend, STORAGE_GCS);
	ck_assert_str_eq(o.bucket, "photos");
	ck_assert_str_eq(o.storage_endpoint, "https://127.0.0.1:9443");
	ck_assert_int_eq(o.storage_timeout_ms, 12000);
	options_clear(&o);
	unlink(conf);
}
END_TEST

START_TEST(file_then_environment_then_flags)
{
	char *conf = write_conf(
	    "[firestore]\nproject = from-file\nemulator = file:1\n"
	    "events = a, b ,c\n"
	    "[plugins]\nworkers = 3\ntransform-timeout = 20\n"
	    "[storage]\nroot = /srv/file\n"
	    "public-url-base = https://cdn.example.com/x\n"
	    "[log]\nformat = json\n");
	const char *args[] = { "-c", conf, "--workers", "5", NULL };
	char err[2048];
	struct options o;

	clear_env();
	setenv("FIRESTORE_EMULATOR_HOST", "env:2", 1);
	ck_assert_int_eq(parse_capture(&o, args, err, sizeof(err)),
	    OPTIONS_RUN);
	ck_assert_str_eq(o.project, "from-file");
	ck_assert_str_eq(o.emulator, "env:2");		/* env over file */
	ck_assert_int_eq(o.workers, 5);			/* flag over file */
	ck_assert_int_eq(o.transform_timeout_s, 20);	/* file over default */
	ck_assert_str_eq(o.storage_root, "/srv/file");
	ck_assert_int_eq(o.log_format, LOG_FORMAT_JSON);
	ck_assert_uint_eq(o.n_events, 3);
	ck_assert_str_eq(o.events[1], "b");
	ck_assert_str_eq(o.config_path, conf);
	options_clear(&o);
	clear_env();
	unlink(conf);
}
END_TEST

/* Where results point and where references may be read from. */
START_TEST(storage_urls_and_reference_prefixes)
{
	char *conf = write_conf(
	    "[storage]\nbackend = gcs\nbucket = p.appspot.com\n"
	    "reference-prefixes = references/, brand/logos\n");
	const char *args[] = { "--project", "p", "-c", conf, NULL };
	const char *pub[] = { "--project", "p", "-c", conf, "--result-url",
	    "public", NULL };
	const char *local_fb[] = { "--project", "p", "--result-url",
	    "firebase", NULL };
	const char *both[] = { "--project", "p", "-c", conf,
	    "--storage-endpoint", "https://x.example", NULL };
	const char *plain[] = { "--project", "p", "-c", conf,
	    "--storage-endpoint", "http://x.example", NULL };
	const char *bad[] = { "--project", "p", "--reference-prefixes",
	    "refs/, captures/E", NULL };
	const char *all[] = { "--project", "p", "--reference-prefixes", "/",
	    NULL };
	const char *res[] = { "--project", "p", "--reference-prefixes",
	    "r/../results/x", NULL };
	const char *file[] = { "--project", "p", "-c", conf,
	    "--public-url-base", "file:///srv", NULL };
	char err[2048];
	struct options o;

	clear_env();
	/* defaults: firebase URLs chosen by the backend, references/ */
	ck_assert_int_eq(parse_capture(&o, args, err, sizeof(err)),
	    OPTIONS_RUN);
	ck_assert_int_eq(o.result_url, STORE_URL_DEFAULT);
	ck_assert_uint_eq(o.n_reference_prefixes, 2);
	ck_assert_str_eq(o.reference_prefixes[0], "references/");
	ck_assert_str_eq(o.reference_prefixes[1], "brand/logos/");
	ck_assert_ptr_null(o.storage_emulator);
	options_clear(&o);
	ck_assert_int_eq(parse_capture(&o, pub, err, sizeof(err)),
	    OPTIONS_RUN);
	ck_assert_int_eq(o.result_url, STORE_URL_PUBLIC);
	options_clear(&o);
	/* the emulator by Google's variable */
	setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:9199", 1);
	ck_assert_int_eq(parse_capture(&o, args, err, sizeof(err)),
	    OPTIONS_RUN);
	ck_assert_str_eq(o.storage_emulator, "127.0.0.1:9199");
	options_clear(&o);
	/* ...but not with an endpoint as well */
	ck_assert_int_eq(parse_capture(&o, both, err, sizeof(err)),
	    OPTIONS_EXIT_ERROR);
	ck_assert_ptr_nonnull(strstr(err, "set one of [storage] endpoint and "
	    "emulator"));
	options_clear(&o);
	unsetenv("STORAGE_EMULATOR_HOST");
	/* plain HTTP is for the emulator only */
	ck_assert_int_eq(parse_capture(&o, plain, err, sizeof(err)),
	    OPTIONS_EXIT_ERROR);
	ck_assert_ptr_nonnull(strstr(err, "must be an https:// URL"));
	options_clear(&o);
	ck_assert_int_eq(parse_capture(&o, local_fb, err, sizeof(err)),
	    OPTIONS_EXIT_ERROR);
	ck_assert_ptr_nonnull(strstr(err, "result-url = firebase needs "
	    "backend = gcs"));
	options_clear(&o);
	/* a prefix can never reach a guest's capture or result */
	ck_assert_int_eq(parse_capture(&o, bad, err, sizeof(err)),
	    OPTIONS_EXIT_ERROR);
	ck_assert_ptr_nonnull(strstr(err, "'captures/E' overlaps captures/ "
	    "or results/"));
	options_clear(&o);
	ck_assert_int_eq(parse_capture(&o, all, err, sizeof(err)),
	    OPTIONS_EXIT_ERROR);
	ck_assert_ptr_nonnull(strstr(err, "reference-prefixes"));
	options_clear(&o);
	ck_assert_int_eq(parse_capture(&o, res, err, sizeof(err)),
	    OPTIONS_EXIT_ERROR);
	ck_assert_ptr_nonnull(strstr(err, "'..' component"));
	options_clear(&o);
	ck_assert_int_eq(parse_capture(&o, file, err, sizeof(err)),
	    OPTIONS_EXIT_ERROR);
	ck_assert_ptr_nonnull(strstr(err, "a bucket's results need an "
	    "http(s):// URL"));
	options_clear(&o);
	clear_env();
	unlink(conf);
}
END_TEST

START_TEST(credentials_readable_by_others_are_refused)
{
	char *key = write_conf("{\"type\": \"service_account\"}\n");
	const char *args[] = { "--project", "p", "--credentials", key, NULL };
	char err[2048];
	struct options o;

	clear_env();
	ck_assert_int_eq(chmod(key, 0644), 0);
	ck_assert_int_eq(parse_capture(&o, args, err, sizeof(err)),
	    OPTIONS_EXIT_ERROR);
	ck_assert_ptr_nonnull(strstr(err, "is readable by others: chmod 600"));
	options_clear(&o);
	ck_assert_int_eq(chmod(key, 0600), 0);
	ck_assert_int_eq(parse_capture(&o, args, err, sizeof(err)),
	    OPTIONS_RUN);
	options_clear(&o);
	unlink(key);
}
END_TEST

/* A reload keeps what only a restart changes, takes the rest, and says
 * which restart-only settings changed. */
START_TEST(a_reload_adopts_only_live_settings)
{
	static const char *const before[] = { "--project", "p1", "--emulator",
	    "127.0.0.1:1", "--workers", "4", "--events", "e1,e2",
	    "--transform-timeout", "45", "--log-level", "info", NULL };
	static const char *const after[] = { "--project", "p2", "--emulator",
	    "127.0.0.1:1", "--workers", "8", "--events", "e1,e2",
	    "--transform-timeout", "5", "--log-level", "debug", NULL };
	struct options old, fresh;
	struct settings *s, *held;
	char restart[256];

	clear_env();
	ck_assert_int_eq(parse(&old, before), OPTIONS_RUN);
	ck_assert_int_eq(parse(&fresh, after), OPTIONS_RUN);
	ck_assert_int_eq(options_adopt_live(&fresh, &old, restart,
	    sizeof(restart)), 2);
	ck_assert_str_eq(restart, "--project, --workers");
	ck_assert_str_eq(fresh.project, "p1");		/* kept */
	ck_assert_int_eq(fresh.workers, 4);		/* kept */
	ck_assert_uint_eq(fresh.n_events, 2);
	ck_assert_int_eq(fresh.transform_timeout_s, 5);	/* taken */
	ck_assert_int_eq(fresh.log_level, LOG_DEBUG);	/* taken */
	/* nothing restart-only changed: nothing listed */
	ck_assert_int_eq(options_adopt_live(&fresh, &old, restart,
	    sizeof(restart)), 0);
	ck_assert_str_eq(restart, "");
	/* the set takes the options; the last reference frees them */
	s = settings_new(&fresh, 7);
	ck_assert_ptr_null(fresh.project);
	ck_assert_str_eq(s->o.project, "p1");
	held = settings_hold(s);
	settings_drop(s);
	ck_assert_uint_eq(held->generation, 7);
	ck_assert_int_eq(held->o.transform_timeout_s, 5);
	settings_drop(held);
	options_clear(&old);
}
END_TEST

Suite *
options_suite(void)
{
	Suite *s = suite_create("options");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, defaults_and_environment);
	tcase_add_test(tc, flags_win);
	tcase_add_test(tc, bad_command_lines_are_refused);
	tcase_add_test(tc, config_file_errors_all_at_once);
	tcase_add_test(tc, gcs_backend_needs_a_bucket);
	tcase_add_test(tc, file_then_environment_then_flags);
	tcase_add_test(tc, storage_urls_and_reference_prefixes);
	tcase_add_test(tc, credentials_readable_by_others_are_refused);
	tcase_add_test(tc, a_reload_adopts_only_live_settings);
	tcase_add_test(tc, renditions_frames_and_the_result_cap);
	suite_add_tcase(s, tc);
	return s;
}
