/*
 * recovery.c - the paged query for interrupted sessions, on a thread of
 * its own (recovery.h).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "backoff.h"
#include "clock.h"
#include "log.h"
#include "recovery.h"
#include "session.h"
#include "text.h"
#include "value.h"

/* Documents per page, and one page's deadline. */
#define RECOVERY_PAGE	100
#define RECOVERY_RPC_MS	10000

struct recovery {
	struct recovery_config c;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;			/* under lock */
	char refused[640];		/* the refusal last logged at err */
};

struct page {
	struct recovery *r;
	int n;				/* documents in this page */
	char *last;			/* the last one's name */
};

static bool
stopping(struct recovery *r)
{
	bool stop;

	pthread_mutex_lock(&r->lock);
	stop = r->stop;
	pthread_mutex_unlock(&r->lock);
	return stop;
}

static void
on_transforming(FsDocument *doc, const FsTimestamp *read_time, void *arg)
{
	struct page *pg = arg;
	struct recovery *r = pg->r;

	pg->n++;
	free(pg->last);
	pg->last = xstrdup(doc->name);
	/* a big one is queued slim and read whole when its turn comes, as
	 * from the snapshot */
	doc = session_slim(doc);
	if (doc->update_time != NULL && r->c.room(r->c.arg))
		r->c.found(r->c.arg, doc, ts_to_ms(read_time));
	doc_free(doc);
}

/*
 * The query failed.  A refusal that will not pass by itself (a missing
 * index: FAILED_PRECONDITION, with the link that creates it; a missing
 * role) is logged at err once, and again only when it changes; a
 * transient failure is a warning.
 */
static void
query_failed(struct recovery *r, const struct fs_status *st)
{
	char line[sizeof(r->refused)];

	text_format(line, sizeof(line), "%s%s%s", fs_status_name(st),
	    *st->message ? ": " : "", st->message);
	if (st->code != 9 && st->kind != FS_DENIED) {
		log_warn("recovery: the query for interrupted sessions failed: "
		    "%s; trying again in about %d s", line,
		    r->c.interval_s(r->c.arg));
		return;
	}
	if (strcmp(line, r->refused) == 0) {
		log_info("recovery: the query for interrupted sessions is "
		    "still refused (as before)");
		return;
	}
	memcpy(r->refused, line, sizeof(line));
	log_err("recovery: the query for interrupted sessions was refused: "
	    "%s; %s; until then a session whose daemon died while "
	    "transforming it is not run again", line, st->code == 9 ?
	    "it needs an index: create it (the link above, or README: a "
	    "missing index)" : "the service account needs the Cloud "
	    "Datastore User role (roles/datastore.user)");
}

/* Page through the sessions "transforming" under parent (NULL: every
 * event).  An error ends the pass (the next one tries again). */
static void
recover_under(struct recovery *r, const char *parent)
{
	static const char *const transforming[] = { "transforming" };
	struct page pg = { .r = r };

	do {
		struct fs_query q = { .parent = parent, .collection =
		    "sessions", .all_descendants = parent == NULL, .field =
		    "state", .values = transforming, .n_values = 1, .limit =
		    RECOVERY_PAGE, .start_after = pg.last };
		struct fs_status st = { 0 };

		pg.n = 0;
		if (fs_run_query(r->c.fs, &q, RECOVERY_RPC_MS, on_transforming,
		    &pg, &st) != FS_OK) {
			query_failed(r, &st);
			break;
		}
		r->refused[0] = '\0';
	} while (pg.n == RECOVERY_PAGE && !stopping(r));
	free(pg.last);
}

static void
recover(struct recovery *r)
{
	if (r->c.n_events == 0) {
		recover_under(r, NULL);
		return;
	}
	for (size_t i = 0; i < r->c.n_events && !stopping(r); i++) {
		char *parent = xasprintf("events/%s", r->c.events[i]);

		recover_under(r, parent);
		free(parent);
	}
}

static void *
recovery_main(void *arg)
{
	struct recovery *r = arg;

	/* once at start, so a missing index or role shows within seconds
	 * of the start, not at the first interrupted session */
	recover(r);
	for (;;) {
		struct timespec until = realtime_in_ms((int64_t)((double)
		    r->c.interval_s(r->c.arg) * 1000.0 * (0.75 + 0.5 *
		    backoff_random())));

		pthread_mutex_lock(&r->lock);
		while (!r->stop && pthread_cond_timedwait(&r->cond, &r->lock,
		    &until) != ETIMEDOUT)
			;
		pthread_mutex_unlock(&r->lock);
		if (stopping(r))
			return NULL;
		recover(r);
	}
}

struct recovery *
recovery_start(const struct recovery_config *c)
{
	struct recovery *r = xcalloc(1, sizeof(*r));

	r->c = *c;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	if (pthread_create(&r->thread, NULL, recovery_main, r) != 0)
		fatal("cannot start the recovery thread: out of resources");
	return r;
}

bool
recovery_stop(struct recovery *r, int64_t wait_ms)
{
	struct timespec until = realtime_in_ms(wait_ms);

	if (r == NULL)
		return true;
	pthread_mutex_lock(&r->lock);
	r->stop = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	/* a query's deadline should end it; one gRPC holds past it (seen
	 * through a TLS front) must not hold up the shutdown */
	if (pthread_timedjoin_np(r->thread, NULL, &until) != 0)
		return false;
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r);
	return true;
}
