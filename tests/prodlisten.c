/*
 * prodlisten.c - firesyncd's Listen client against what production
 * Firestore does and the emulator never does, played by a scripted
 * server (fakefs.h): a target removed for a missing index, quota spent,
 * a stream that breaks while a target catches up, an existence filter,
 * streams that fail just after their first message.
 */
#include "config.h"

#include <check.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "emulator.h"
#include "fakefs.h"
#include "httpd.h"
#include "value.h"

/* firesyncd's Listen target ids with --events a,b (daemon/listen.c) */
#define TARGET_A	10
#define TARGET_B	11
#define TARGET_EXP	2

#define WAIT_MS		60000	/* for an event; a busy machine is slow */

static struct fakefs *fs;
static char root[64], logpath[128];
static pid_t daemon_pid;
static int metrics_port;

static void
setup(void)
{
	snprintf(root, sizeof(root), "/tmp/fsprod-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(root));
	snprintf(logpath, sizeof(logpath), "%s/daemon.log", root);
	fs = fakefs_start();
	ck_assert_ptr_nonnull(fs);
	daemon_pid = 0;
}

static void
teardown(void)
{
	char cmd[256];

	if (daemon_pid > 0)
		daemon_stop(daemon_pid, 15000);
	fakefs_stop(fs);
	snprintf(cmd, sizeof(cmd), "cp %s %s.log", logpath, root);
	(void)!system(cmd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	(void)!system(cmd);
}

static void
start_daemon_with(const char *events)
{
	static char listen[32];
	const char *args[] = { "--emulator", fakefs_host(fs), "--project",
	    "p", "--storage-root", root, "--log-level", "debug",
	    "--recovery-interval", "3600", "--metrics-listen", listen,
	    events ? "--events" : NULL, events, NULL };

	metrics_port = free_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", metrics_port);
	daemon_pid = daemon_spawn(FIRESYNCD, args, logpath);
	ck_assert_int_gt(daemon_pid, 0);
}

static void
start_daemon(void)
{
	start_daemon_with("a,b");
}

/* Wait for the log to hold needle want times; how many it holds. */
static int
log_reaches(const char *needle, int want)
{
	return log_count_reaches(logpath, needle, want, WAIT_MS);
}

/* The delay of the k-th (1-based) "reconnecting in" line, in seconds. */
static double
reconnect_delay(int k)
{
	FILE *f = fopen(logpath, "r");
	char line[2048];
	double s = -1;

	ck_assert_ptr_nonnull(f);
	while (k > 0 && fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, "listen: reconnecting in ");

		if (p != NULL && --k == 0)
			s = atof(p + strlen("listen: reconnecting in "));
	}
	fclose(f);
	return s;
}

static bool
wait_for(bool (*cond)(void *), void *arg)
{
	int64_t end = now_mono_ms() + WAIT_MS;

	while (!cond(arg)) {
		if (now_mono_ms() > end)
			return false;
		sleep_ms(20);
	}
	return true;
}

static bool
commits_seen(void *arg)
{
	(void)arg;
	return fakefs_calls(fs, "/Commit") > 0;
}

struct added_q {
	int stream;
	int32_t id;
	char token[64];
};

static bool
was_added(void *arg)
{
	struct added_q *q = arg;

	return fakefs_added(fs, q->stream, q->id, q->token, sizeof(q->token));
}

/* The resume token stream n sent for target id (waits for the add). */
static const char *
token_of(int n, int32_t id)
{
	static struct added_q q;

	q = (struct added_q){ .stream = n, .id = id };
	ck_assert_msg(wait_for(was_added, &q), "stream %d never added target "
	    "%d", n, id);
	return q.token;
}

/* A global snapshot: NO_CHANGE, no target ids, with a read time. */
static FsListenResponse *
snapshot(const char *token)
{
	FsListenResponse *r = xcalloc(1, sizeof(*r));
	FsTargetChange *c = xcalloc(1, sizeof(*c));
	FsValue *t = value_timestamp(1900000000, 0);

	google__firestore__v1__listen_response__init(r);
	google__firestore__v1__target_change__init(c);
	c->target_change_type = FSTC(NO_CHANGE);
	c->read_time = t->timestamp_value;
	t->timestamp_value = NULL;
	t->value_type_case = 0;
	value_free(t);
	c->resume_token.len = strlen(token);
	c->resume_token.data = (uint8_t *)xstrdup(token);
	r->response_type_case = FSLR(TARGET_CHANGE);
	r->target_change = c;
	return r;
}

/* A captured session of event ev entering target id. */
static FsListenResponse *
captured(int32_t id, const char *ev, const char *ss)
{
	FsListenResponse *r = xcalloc(1, sizeof(*r));
	Google__Firestore__V1__DocumentChange *dc = xcalloc(1, sizeof(*dc));
	char name[256], input[128];
	FsValue *t = value_timestamp(1900000000, 0);

	snprintf(name, sizeof(name), "projects/p/databases/(default)/documents/"
	    "events/%s/sessions/%s", ev, ss);
	snprintf(input, sizeof(input), "captures/%s/%s/input.jpg", ev, ss);
	google__firestore__v1__listen_response__init(r);
	google__firestore__v1__document_change__init(dc);
	dc->document = value_map_to_doc(session_fields(ev, ss, "exp_x", input,
	    now_wall_ms()), name);
	dc->document->update_time = t->timestamp_value;
	t->timestamp_value = NULL;
	t->value_type_case = 0;
	value_free(t);
	dc->n_target_ids = 1;
	dc->target_ids = xmalloc(sizeof(int32_t));
	dc->target_ids[0] = id;
	r->response_type_case = FSLR(DOCUMENT_CHANGE);
	r->document_change = dc;
	return r;
}

/* Production removes the target whose query needs a missing index; the
 * other targets go on being served on the same stream, the message is
 * logged once with its link, and the target is tried again in a minute,
 * not every second. */
START_TEST(a_removed_target_leaves_the_others_served)
{
	static const char why[] = "The query requires an index. You can "
	    "create it here: https://console.firebase.google.com/v1/r/project/"
	    "p/firestore/indexes?create_composite=Cg1zZXNzaW9ucw";
	char url[64], *metrics;
	uint8_t *body = NULL;
	size_t len;

	fakefs_remove_target(fs, TARGET_B, 9, why);
	start_daemon();
	ck_assert_int_eq(log_reaches("target 11 removed by the server (code "
	    "9)", 1), 1);
	ck_assert_int_eq(log_count(logpath, "create_composite=Cg1zZXNzaW9ucw; "
	    "a query needs an index: create it"), 1);
	ck_assert_int_eq(log_count(logpath, "the other targets are served, "
	    "and this one is tried again in "), 1);
	/* event a's captured guest is still claimed */
	fakefs_send(fs, captured(TARGET_A, "a", "s1"));
	fakefs_send(fs, snapshot("after-capture"));
	ck_assert(wait_for(commits_seen, NULL));
	ck_assert_int_eq(fakefs_listens(fs), 1);
	ck_assert_int_eq(log_count(logpath, "removed by the server"), 1);
	ck_assert_int_eq(log_count(logpath, "reconnecting in"), 0);
	/* the metrics and firesyncctl see it down */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", metrics_port);
	ck_assert_int_eq(http_get(url, NULL, &body, &len), 200);
	metrics = (char *)body;
	ck_assert_ptr_nonnull(strstr(metrics, "firesync_listen_targets_down "
	    "1\n"));
	ck_assert_ptr_nonnull(strstr(metrics, "firesync_listen_up 1\n"));
	free(body);
}
END_TEST

/* RESOURCE_EXHAUSTED: straight to the longest back-off (a minute, less a
 * quarter's jitter at most), as every official client does. */
START_TEST(quota_spent_backs_off_to_the_maximum)
{
	fakefs_end_listens(fs, 8, false);
	start_daemon();
	ck_assert_int_eq(log_reaches("listen: reconnecting in ", 1), 1);
	ck_assert_int_eq(log_count(logpath, "quota is spent"), 1);
	ck_assert_msg(reconnect_delay(1) >= 45.0, "reconnecting in %.1f s",
	    reconnect_delay(1));
	ck_assert_int_eq(fakefs_listens(fs), 1);
}
END_TEST

/* Streams that fail just after their first message do not reset the
 * back-off; only a healthy one (every target current) does. */
START_TEST(backoff_resets_only_after_a_healthy_stream)
{
	fakefs_end_listens(fs, 14, true);
	start_daemon();
	ck_assert_int_eq(log_reaches("listen: reconnecting in ", 3), 3);
	/* 1, 1.5, 2.25 s, each within a quarter; never all near 1 s */
	ck_assert_msg(reconnect_delay(3) >= 1.6, "delays %.2f, %.2f, %.2f s",
	    reconnect_delay(1), reconnect_delay(2), reconnect_delay(3));
	/* healthy again: a stream serves every target, then breaks */
	fakefs_end_listens(fs, 0, false);
	ck_assert_int_eq(log_reaches("first snapshot current", 1), 1);
	fakefs_end_stream(fs, 14, "connection reset");
	ck_assert_int_ge(log_reaches("listen: reconnecting in ", 4), 4);
	ck_assert_msg(reconnect_delay(4) <= 1.3, "after a healthy stream: "
	    "%.2f s", reconnect_delay(4));
}
END_TEST

/*
 * A global snapshot while target b is still catching up moves a's token
 * and the experiences', not b's: the next stream resumes b from where it
 * was in sync (here: from nothing).  Also: the routing header.
 */
START_TEST(resume_tokens_are_per_target)
{
	char params[256];

	fakefs_hold_target(fs, TARGET_B);
	start_daemon();
	ck_assert_str_eq(token_of(1, TARGET_EXP), "");
	fakefs_send(fs, snapshot("late"));
	fakefs_end_stream(fs, 14, "connection reset");
	ck_assert_str_eq(token_of(2, TARGET_A), "late");
	ck_assert_str_eq(token_of(2, TARGET_EXP), "late");
	ck_assert_str_eq(token_of(2, TARGET_B), "");
	fakefs_metadata(fs, "x-goog-request-params", params, sizeof(params));
	ck_assert_str_eq(params, "database=projects%2Fp%2Fdatabases%2F"
	    "(default)");
	fakefs_metadata(fs, "google-cloud-resource-prefix", params,
	    sizeof(params));
	ck_assert_str_eq(params, "projects/p/databases/(default)");
}
END_TEST

/* An existence filter that disagrees resets its own target: the next
 * stream re-reads it whole and resumes the others. */
START_TEST(an_existence_filter_resets_only_its_target)
{
	FsListenResponse *r = xcalloc(1, sizeof(*r));
	char a[64];

	start_daemon();
	ck_assert_int_eq(log_reaches("first snapshot current", 1), 1);
	google__firestore__v1__listen_response__init(r);
	r->response_type_case = FSLR(FILTER);
	r->filter = xcalloc(1, sizeof(*r->filter));
	google__firestore__v1__existence_filter__init(r->filter);
	r->filter->target_id = TARGET_B;
	r->filter->count = 3;
	fakefs_send(fs, r);
	snprintf(a, sizeof(a), "%s", token_of(2, TARGET_A));
	ck_assert_str_ne(a, "");
	ck_assert_str_eq(token_of(2, TARGET_EXP), a);
	ck_assert_str_eq(token_of(2, TARGET_B), "");
	ck_assert_int_eq(log_count(logpath, "existence filter mismatch on "
	    "target 11"), 1);
}
END_TEST

/* The queries firesyncd depends on run once at start: a missing index
 * shows within seconds (the recovery interval here is an hour), once,
 * with the server's link. */
START_TEST(a_missing_index_shows_at_start)
{
	static const char why[] = "The query requires an index. You can "
	    "create it here: https://console.firebase.google.com/v1/r/project/"
	    "p/firestore/indexes?create_exemption=c2Vzc2lvbnM";

	fakefs_fail(fs, "/RunQuery", 9, why);
	start_daemon_with(NULL);
	ck_assert_int_eq(log_reaches("recovery: the query for interrupted "
	    "sessions was refused: FAILED_PRECONDITION: The query requires an "
	    "index", 1), 1);
	ck_assert_int_eq(log_count(logpath, "create_exemption=c2Vzc2lvbnM; it "
	    "needs an index: create it"), 1);
	ck_assert_int_ge(fakefs_calls(fs, "/RunQuery"), 1);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("prodlisten");
	TCase *tc = tcase_create("scripted");
	SRunner *sr;
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, backoff_resets_only_after_a_healthy_stream);
	tcase_add_test(tc, a_removed_target_leaves_the_others_served);
	tcase_add_test(tc, quota_spent_backs_off_to_the_maximum);
	tcase_add_test(tc, resume_tokens_are_per_target);
	tcase_add_test(tc, an_existence_filter_resets_only_its_target);
	tcase_add_test(tc, a_missing_index_shows_at_start);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
