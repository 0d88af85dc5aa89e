/*
 * test_watch.c - the Listen state machine fed message sequences shaped
 * like those the emulator and production Firestore send.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "alloc.h"
#include "log.h"
#include "suites.h"
#include "value.h"
#include "watch.h"

#define T 1		/* the sessions target */
#define T2 2		/* a second target */
#define DOC(x) "projects/p/databases/(default)/documents/events/e/sessions/" x

static struct watch w;
static char err[256];

static void
setup(void)
{
	watch_init(&w);
	watch_add_target(&w, T);
}

static void
teardown(void)
{
	watch_clear(&w);
}

static int32_t *
ids(int a)
{
	int32_t *p = xmalloc(sizeof(*p));

	*p = a;
	return p;
}

static FsListenResponse *
resp_new(void)
{
	FsListenResponse *r = xcalloc(1, sizeof(*r));

	google__firestore__v1__listen_response__init(r);
	return r;
}

static enum watch_event
feed(FsListenResponse *r)
{
	enum watch_event ev = watch_feed(&w, r, err, sizeof(err));

	google__firestore__v1__listen_response__free_unpacked(r, NULL);
	return ev;
}

/* A target change; target < 0 means "all targets" (no ids). */
static enum watch_event
tc(int type, int target, int64_t read_s, const char *token)
{
	FsListenResponse *r = resp_new();
	FsTargetChange *c = xcalloc(1, sizeof(*c));

	google__firestore__v1__target_change__init(c);
	c->target_change_type = type;
	if (target >= 0) {
		c->n_target_ids = 1;
		c->target_ids = ids(target);
	}
	if (read_s) {
		FsValue *t = value_timestamp(read_s, 0);

		c->read_time = t->timestamp_value;
		t->timestamp_value = NULL;
		t->value_type_case = 0;
		value_free(t);
	}
	if (token) {
		c->resume_token.len = strlen(token);
		c->resume_token.data = (uint8_t *)xstrdup(token);
	}
	if (type == FSTC(REMOVE)) {
		c->cause = xcalloc(1, sizeof(*c->cause));
		google__rpc__status__init(c->cause);
		c->cause->code = 7;
		c->cause->message = xstrdup("permission denied");
	}
	r->response_type_case = FSLR(TARGET_CHANGE);
	r->target_change = c;
	return feed(r);
}

/* Target id's resume token as a string ("" for none). */
static const char *
tok(int32_t id)
{
	static char buf[64];
	size_t len;
	const uint8_t *t = watch_resume_token(&w, id, &len);

	snprintf(buf, sizeof(buf), "%.*s", (int)len, t ? (const char *)t : "");
	return buf;
}

static enum watch_event
snapshot(int64_t read_s)
{
	return tc(FSTC(NO_CHANGE), -1, read_s, "tok");
}

static enum watch_event
change(const char *name, int64_t version, int target, int removed_target)
{
	FsListenResponse *r = resp_new();
	Google__Firestore__V1__DocumentChange *c = xcalloc(1, sizeof(*c));
	FsValue *f = value_map(), *t = value_timestamp(version, 0);
	FsDocument *d;

	value_map_put(f, "state", value_string("captured"));
	d = value_map_to_doc(f, name);
	d->update_time = t->timestamp_value;
	t->timestamp_value = NULL;
	t->value_type_case = 0;
	value_free(t);
	google__firestore__v1__document_change__init(c);
	c->document = d;
	if (target) {
		c->n_target_ids = 1;
		c->target_ids = ids(target);
	}
	if (removed_target) {
		c->n_removed_target_ids = 1;
		c->removed_target_ids = ids(removed_target);
	}
	r->response_type_case = FSLR(DOCUMENT_CHANGE);
	r->document_change = c;
	return feed(r);
}

static enum watch_event
delete_doc(const char *name)
{
	FsListenResponse *r = resp_new();
	Google__Firestore__V1__DocumentDelete *d = xcalloc(1, sizeof(*d));

	google__firestore__v1__document_delete__init(d);
	d->document = xstrdup(name);
	r->response_type_case = FSLR(DOCUMENT_DELETE);
	r->document_delete = d;
	return feed(r);
}

static enum watch_event
remove_doc(const char *name, int target)
{
	FsListenResponse *r = resp_new();
	Google__Firestore__V1__DocumentRemove *d = xcalloc(1, sizeof(*d));

	google__firestore__v1__document_remove__init(d);
	d->document = xstrdup(name);
	d->n_removed_target_ids = 1;
	d->removed_target_ids = ids(target);
	r->response_type_case = FSLR(DOCUMENT_REMOVE);
	r->document_remove = d;
	return feed(r);
}

static enum watch_event
filter(int target, int count)
{
	FsListenResponse *r = resp_new();
	Google__Firestore__V1__ExistenceFilter *f = xcalloc(1, sizeof(*f));

	google__firestore__v1__existence_filter__init(f);
	f->target_id = target;
	f->count = count;
	r->response_type_case = FSLR(FILTER);
	r->filter = f;
	return feed(r);
}

static size_t
known(void)
{
	return strmap_count(watch_known(&w, T));
}

static int64_t
version_of(const char *name)
{
	const FsDocument *d = strmap_get(watch_known(&w, T), name);

	return d && d->update_time ? d->update_time->seconds : -1;
}

/* ADD, two documents, CURRENT, global NO_CHANGE: the emulator's start. */
static void
initial_two(void)
{
	ck_assert_int_eq(tc(FSTC(ADD), T, 0, NULL), WATCH_NONE);
	ck_assert_int_eq(change(DOC("a"), 10, T, 0), WATCH_NONE);
	ck_assert_int_eq(change(DOC("b"), 11, T, 0), WATCH_NONE);
	ck_assert_uint_eq(known(), 0);	/* buffered, not applied */
	ck_assert_int_eq(tc(FSTC(CURRENT), T, 0, "t1"), WATCH_NONE);
	ck_assert_int_eq(snapshot(100), WATCH_SNAPSHOT);
	ck_assert_uint_eq(known(), 2);
}

START_TEST(initial_snapshot)
{
	initial_two();
	ck_assert(watch_synced(&w));
	ck_assert_str_eq(tok(T), "tok");
	ck_assert_int_eq(w.read_time->seconds, 100);
}
END_TEST

START_TEST(no_snapshot_until_current_and_global)
{
	ck_assert_int_eq(tc(FSTC(ADD), T, 0, NULL), WATCH_NONE);
	ck_assert_int_eq(change(DOC("a"), 10, T, 0), WATCH_NONE);
	/* not CURRENT yet */
	ck_assert_int_eq(snapshot(100), WATCH_NONE);
	ck_assert_int_eq(tc(FSTC(CURRENT), T, 0, NULL), WATCH_NONE);
	/* NO_CHANGE naming a target is not a global snapshot */
	ck_assert_int_eq(tc(FSTC(NO_CHANGE), T, 100, "x"), WATCH_NONE);
	/* nor is one without a read_time */
	ck_assert_int_eq(tc(FSTC(NO_CHANGE), -1, 0, "x"), WATCH_NONE);
	ck_assert_uint_eq(known(), 0);
	ck_assert_str_eq(tok(T), "");
	ck_assert_int_eq(snapshot(100), WATCH_SNAPSHOT);
	ck_assert_uint_eq(known(), 1);
}
END_TEST

START_TEST(reset_mid_snapshot_drops_pending)
{
	ck_assert_int_eq(tc(FSTC(ADD), T, 0, NULL), WATCH_NONE);
	change(DOC("a"), 10, T, 0);
	change(DOC("b"), 10, T, 0);
	ck_assert_int_eq(tc(FSTC(RESET), T, 0, NULL), WATCH_NONE);
	change(DOC("c"), 12, T, 0);
	tc(FSTC(CURRENT), T, 0, NULL);
	ck_assert_int_eq(snapshot(101), WATCH_SNAPSHOT);
	ck_assert_uint_eq(known(), 1);
	ck_assert_int_eq(version_of(DOC("c")), 12);
	ck_assert_int_eq(version_of(DOC("a")), -1);
}
END_TEST

START_TEST(reset_after_write_replaces_the_set)
{
	/* the emulator after a write: RESET, the whole result set again;
	 * a document that left the result is simply absent */
	initial_two();
	ck_assert_int_eq(tc(FSTC(RESET), T, 0, NULL), WATCH_NONE);
	ck_assert_str_eq(tok(T), "");	/* dropped with the reset */
	change(DOC("b"), 20, T, 0);
	change(DOC("c"), 21, T, 0);
	/* not current again until the server says so */
	ck_assert_int_eq(snapshot(102), WATCH_NONE);
	ck_assert_uint_eq(known(), 2);
	ck_assert_int_eq(version_of(DOC("a")), 10);
	tc(FSTC(CURRENT), T, 0, NULL);
	ck_assert_int_eq(snapshot(103), WATCH_SNAPSHOT);
	ck_assert_uint_eq(known(), 2);
	ck_assert_int_eq(version_of(DOC("a")), -1);
	ck_assert_int_eq(version_of(DOC("b")), 20);
	ck_assert_int_eq(version_of(DOC("c")), 21);
}
END_TEST

START_TEST(removals_in_all_three_forms)
{
	initial_two();
	change(DOC("c"), 12, T, 0);
	ck_assert_int_eq(snapshot(101), WATCH_SNAPSHOT);
	ck_assert_uint_eq(known(), 3);

	change(DOC("a"), 13, 0, T);	/* left the query */
	delete_doc(DOC("b"));		/* deleted */
	remove_doc(DOC("c"), T);	/* removed from the target */
	ck_assert_uint_eq(known(), 3);	/* not before the snapshot */
	ck_assert_int_eq(snapshot(102), WATCH_SNAPSHOT);
	ck_assert_uint_eq(known(), 0);
}
END_TEST

START_TEST(existence_filter)
{
	initial_two();
	ck_assert_int_eq(filter(T, 2), WATCH_NONE);
	change(DOC("c"), 12, T, 0);
	ck_assert_int_eq(filter(T, 3), WATCH_NONE);	/* counts pending */
	delete_doc(DOC("a"));
	ck_assert_int_eq(filter(T, 2), WATCH_NONE);
	/* the server knows of a document we do not: start over */
	ck_assert_int_eq(filter(T, 5), WATCH_RESTART);
	ck_assert_ptr_nonnull(strstr(err, "server has 5 documents, we have 2"));
	ck_assert_str_eq(tok(T), "");
	watch_stream_started(&w);
	tc(FSTC(ADD), T, 0, NULL);
	change(DOC("x"), 30, T, 0);
	tc(FSTC(CURRENT), T, 0, NULL);
	ck_assert_int_eq(snapshot(200), WATCH_SNAPSHOT);
	ck_assert_uint_eq(known(), 1);
	ck_assert_int_eq(version_of(DOC("x")), 30);
}
END_TEST

/* A removed target is down on this stream; the others carry on. */
START_TEST(target_removed_by_server)
{
	watch_add_target(&w, T2);
	tc(FSTC(ADD), T, 0, NULL);
	tc(FSTC(ADD), T2, 0, NULL);
	ck_assert_int_eq(tc(FSTC(REMOVE), T2, 0, NULL), WATCH_TARGET_REMOVED);
	ck_assert_str_eq(err, "target 2 removed by the server (code 7): "
	    "permission denied");
	ck_assert_int_eq(watch_removed_count(&w), 1);
	ck_assert(watch_get(&w, T2)->removed);
	ck_assert_int_eq(watch_get(&w, T2)->removed_code, 7);
	/* T is served, and counts as synced without T2 */
	change(DOC("a"), 10, T, 0);
	tc(FSTC(CURRENT), T, 0, NULL);
	ck_assert_int_eq(snapshot(100), WATCH_SNAPSHOT);
	ck_assert_uint_eq(known(), 1);
	ck_assert(watch_synced(&w));
	ck_assert_str_eq(tok(T), "tok");
	ck_assert_str_eq(tok(T2), "");
	/* a new stream adds it again */
	watch_stream_started(&w);
	ck_assert_int_eq(watch_removed_count(&w), 0);
	ck_assert(!watch_synced(&w));
	/* a removal naming no target is the whole stream's */
	ck_assert_int_eq(tc(FSTC(REMOVE), -1, 0, NULL), WATCH_TARGET_ERROR);
	ck_assert_ptr_nonnull(strstr(err, "every listen target"));
}
END_TEST

/*
 * A global snapshot while one target is still catching up: only the
 * current target's token moves.  Resuming the other from it would skip
 * what it had pending (a captured session nobody would see again).
 */
START_TEST(tokens_are_per_target)
{
	watch_add_target(&w, T2);
	tc(FSTC(ADD), T, 0, NULL);
	tc(FSTC(ADD), T2, 0, NULL);
	tc(FSTC(CURRENT), T, 0, NULL);
	change(DOC("b"), 10, T2, 0);		/* T2's, pending */
	ck_assert_int_eq(tc(FSTC(NO_CHANGE), -1, 100, "s1"), WATCH_SNAPSHOT);
	ck_assert_str_eq(tok(T), "s1");
	ck_assert_str_eq(tok(T2), "");
	tc(FSTC(CURRENT), T2, 0, NULL);
	ck_assert_int_eq(tc(FSTC(NO_CHANGE), -1, 101, "s2"), WATCH_SNAPSHOT);
	ck_assert_str_eq(tok(T), "s2");
	ck_assert_str_eq(tok(T2), "s2");
	ck_assert_uint_eq(strmap_count(watch_known(&w, T2)), 1);
	/* an existence filter resets its own target only */
	ck_assert_int_eq(filter(T2, 4), WATCH_RESTART);
	ck_assert_str_eq(tok(T), "s2");
	ck_assert_str_eq(tok(T2), "");
	ck_assert_uint_eq(known(), 0);
	ck_assert(watch_get(&w, T)->synced);
}
END_TEST

START_TEST(stream_restart_keeps_known_and_token)
{
	initial_two();
	change(DOC("c"), 12, T, 0);	/* pending when the stream broke */
	watch_stream_started(&w);
	ck_assert_uint_eq(known(), 2);
	ck_assert_str_eq(tok(T), "tok");
	/* resumed stream: NO_CHANGE before CURRENT applies nothing */
	ck_assert_int_eq(snapshot(150), WATCH_NONE);
	tc(FSTC(CURRENT), T, 0, NULL);
	ck_assert_int_eq(snapshot(151), WATCH_SNAPSHOT);
	ck_assert_uint_eq(known(), 2);	/* the dropped pending change */
	ck_assert_int_eq(version_of(DOC("c")), -1);
}
END_TEST

START_TEST(targets_are_kept_apart)
{
	watch_add_target(&w, T2);
	tc(FSTC(ADD), T, 0, NULL);
	tc(FSTC(ADD), T2, 0, NULL);
	change(DOC("a"), 10, T, 0);
	change("projects/p/databases/(default)/documents/experiences/x", 5, T2,
	    0);
	tc(FSTC(CURRENT), -1, 0, NULL);		/* all targets */
	ck_assert_int_eq(snapshot(100), WATCH_SNAPSHOT);
	ck_assert_uint_eq(known(), 1);
	ck_assert_uint_eq(strmap_count(watch_known(&w, T2)), 1);
	/* a reset of one target leaves the other alone */
	tc(FSTC(RESET), T2, 0, NULL);
	tc(FSTC(CURRENT), T2, 0, NULL);
	ck_assert_int_eq(snapshot(101), WATCH_SNAPSHOT);
	ck_assert_uint_eq(known(), 1);
	ck_assert_uint_eq(strmap_count(watch_known(&w, T2)), 0);
}
END_TEST

/*
 * The emulator's stuck stream: the first target is answered and applied
 * at a global snapshot, the second never is.  The state is applied but
 * not synced (no READY), and the engine sees a target not current.
 */
START_TEST(a_target_never_current_is_not_synced)
{
	watch_add_target(&w, T2);
	ck_assert_int_eq(watch_current_count(&w), 0);
	tc(FSTC(ADD), T, 0, NULL);
	tc(FSTC(CURRENT), T, 0, "t1");
	change(DOC("a"), 10, T, 0);
	ck_assert_int_eq(snapshot(100), WATCH_SNAPSHOT);
	ck_assert_uint_eq(known(), 1);
	ck_assert_int_eq(watch_current_count(&w), 1);
	ck_assert(!watch_synced(&w));
	/* the second target's answer comes late: now all is synced */
	tc(FSTC(ADD), T2, 0, NULL);
	tc(FSTC(CURRENT), T2, 0, "t2");
	ck_assert_int_eq(snapshot(101), WATCH_SNAPSHOT);
	ck_assert_int_eq(watch_current_count(&w), 2);
	ck_assert(watch_synced(&w));
	/* a new stream starts with no target current, still synced */
	watch_stream_started(&w);
	ck_assert_int_eq(watch_current_count(&w), 0);
	ck_assert(watch_synced(&w));
}
END_TEST

/* Has the stream shown a write that landed at a given server time? */
START_TEST(snapshots_show_writes_by_commit_time)
{
	FsTimestamp t = GOOGLE__PROTOBUF__TIMESTAMP__INIT;

	t.seconds = 100;
	t.nanos = 500;
	ck_assert(watch_before(&w, &t));	/* no snapshot yet */
	tc(FSTC(ADD), T, 0, NULL);
	tc(FSTC(CURRENT), T, 0, "t1");
	ck_assert_int_eq(snapshot(100), WATCH_SNAPSHOT);	/* 100.000 */
	ck_assert(watch_before(&w, &t));
	ck_assert_int_eq(snapshot(101), WATCH_SNAPSHOT);
	ck_assert(!watch_before(&w, &t));
	t.seconds = 101;
	t.nanos = 0;
	ck_assert(!watch_before(&w, &t));	/* at the write: shown */
	/* a new stream keeps the last read time until it says otherwise */
	watch_stream_started(&w);
	ck_assert(!watch_before(&w, &t));
}
END_TEST

/*
 * Replay a real recording (tests/record_listen.c): sessions a, b captured,
 * a leaves, b deleted, c captured.  After each step the known set must be
 * exactly what the emulator's query holds.
 */
START_TEST(replay_of_the_emulator)
{
	static const char *const want[][3] = {
		{ NULL }, { "a", NULL }, { "a", "b", NULL }, { "b", NULL },
		{ NULL }, { "c", NULL },
	};
	FILE *f = fopen(TEST_DATA "/emulator-listen.bin", "rb");
	int step = 0, resets = 0, msgs = 0;
	uint32_t be;

	ck_assert_ptr_nonnull(f);
	while (fread(&be, 4, 1, f) == 1) {
		uint32_t n = ntohl(be);
		uint8_t *b;
		FsListenResponse *r;

		if (n == 0) {	/* end of a step: check the snapshot */
			size_t count = 0;

			ck_assert_int_lt(step, 6);
			for (int i = 0; want[step][i]; i++) {
				char name[128];

				snprintf(name, sizeof(name), "projects/record/"
				    "databases/(default)/documents/events/E/"
				    "sessions/%s", want[step][i]);
				ck_assert_msg(strmap_get(watch_known(&w, T),
				    name) != NULL, "step %d: %s missing", step,
				    want[step][i]);
				count++;
			}
			ck_assert_msg(known() == count, "step %d: %zu known, "
			    "want %zu", step, known(), count);
			step++;
			continue;
		}
		b = malloc(n);
		ck_assert_uint_eq(fread(b, 1, n, f), n);
		r = google__firestore__v1__listen_response__unpack(NULL, n, b);
		free(b);
		ck_assert_ptr_nonnull(r);
		if (r->response_type_case == FSLR(TARGET_CHANGE) &&
		    r->target_change->target_change_type == FSTC(RESET))
			resets++;
		msgs++;
		ck_assert_int_ne(feed(r), WATCH_TARGET_ERROR);
	}
	fclose(f);
	ck_assert_int_eq(step, 6);
	/* the recording shows the emulator's way: RESET and resend */
	ck_assert_int_gt(resets, 0);
	ck_assert(watch_synced(&w));
	ck_assert_str_ne(tok(T), "");
	(void)msgs;
}
END_TEST

Suite *
watch_suite(void)
{
	Suite *s = suite_create("watch");
	TCase *tc_ = tcase_create("listen");

	tcase_add_checked_fixture(tc_, setup, teardown);
	tcase_add_test(tc_, initial_snapshot);
	tcase_add_test(tc_, no_snapshot_until_current_and_global);
	tcase_add_test(tc_, reset_mid_snapshot_drops_pending);
	tcase_add_test(tc_, reset_after_write_replaces_the_set);
	tcase_add_test(tc_, removals_in_all_three_forms);
	tcase_add_test(tc_, existence_filter);
	tcase_add_test(tc_, target_removed_by_server);
	tcase_add_test(tc_, tokens_are_per_target);
	tcase_add_test(tc_, stream_restart_keeps_known_and_token);
	tcase_add_test(tc_, targets_are_kept_apart);
	tcase_add_test(tc_, a_target_never_current_is_not_synced);
	tcase_add_test(tc_, snapshots_show_writes_by_commit_time);
	tcase_add_test(tc_, replay_of_the_emulator);
	suite_add_tcase(s, tc_);
	return s;
}
