/*
 * recovery.c - the paged query for interrupted sessions, on a thread of
 * its own (recovery.h).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "alloc.h"
#include "backoff.h"
#include "clock.h"
#include "log.h"
#include "recovery.h"
#include "session.h"
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
			log_warn("recovery: the query for interrupted "
			    "sessions failed: %s%s%s; trying again in about "
			    "%d s", fs_status_name(&st), *st.message ?
			    ": " : "", st.message, r->c.interval_s(r->c.arg));
			break;
		}
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

void
recovery_stop(struct recovery *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	r->stop = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r);
}
