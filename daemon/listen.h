/*
 * listen.h - the Listen supervisor: one stream on the captured sessions
 * (one target for every event, or one per configured event) and on the
 * experiences, whose snapshots it keeps (watch.h); the experience cache
 * that tasks share; and the view's sessions offered in turn order.
 *
 * The thread calling listen_run owns the stream and its watch state, so
 * no other thread reads it: a task gets a held reference to the shared
 * copy of the experience its session needs when it is offered.  A stream
 * that ends is reopened with back-off; one that stops answering, leaves a
 * target not CURRENT or does not show a write of ours is reopened too.
 */
#ifndef FIRESYNC_LISTEN_H
#define FIRESYNC_LISTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dispatch.h"
#include "firestore.h"
#include "session.h"
#include "value.h"

/* What the supervisor asks of the engine, on the listen thread. */
struct listen_hooks {
	/* room for n more tasks in the queue? */
	bool (*room)(void *arg, size_t n);
	/* a captured session whose turn has come (at order, server ms),
	 * read by the server at read_ms (its clock) */
	void (*offer)(void *arg, const char *name, const FsDocument *doc,
	    int64_t read_ms, int64_t order);
	/* a captured session that waits for its turn */
	void (*waiting)(void *arg, const char *name);
	/* every session in view has been offered or is waiting: forget the
	 * ones that left (listen_in_view says which are still there) */
	void (*looked)(void *arg);
	/* the turn spread now (monotonic now_ms) */
	struct dispatch_turns (*turns)(void *arg, int64_t now_ms);
	/* the main loop's chores (watchdog, reload, status) in state */
	void (*tick)(void *arg, const char *state);
	void *arg;
};

struct listen_config {
	struct fs_client *fs;		/* borrowed */
	const char *const *events;	/* only these events; NULL: all */
	size_t n_events;
	int64_t idle_timeout_ms;	/* a stream silent this long is
					   reopened */
	struct listen_hooks hooks;
};

struct listen;

/* The config's strings must outlive the supervisor. */
struct listen *listen_new(const struct listen_config *c);
void listen_free(struct listen *l);

/* Run streams until listen_stop(). */
void listen_run(struct listen *l);
/* Make listen_run return soon; safe from any thread. */
void listen_stop(struct listen *l);

/* A write of ours landed at commit_time (server clock): the stream must
 * show a snapshot at or after it, or it is stuck.  Any thread. */
void listen_wrote(struct listen *l, const FsTimestamp *commit_time);

/* Is name in a session target's last snapshot?  Listen thread only. */
bool listen_in_view(void *l, const char *name);

/*
 * The cached experience id, decoded (a held reference, for
 * experience_ref_drop), or NULL when the cache lacks it.  Tasks share one
 * decoded copy of each experience version.  Listen thread only (in hooks.offer).
 */
struct experience_ref *listen_experience(struct listen *l, const char *id);

/* The stream's state for the metrics; any thread. */
struct listen_stats {
	bool up;			/* open and every target current */
	int targets_down;		/* removed by the server (a missing
					   index, a permission) */
	int64_t last_message_ms;	/* monotonic; 0: never */
	unsigned long reconnects;	/* streams reopened after the first */
};
void listen_stats(struct listen *l, struct listen_stats *out);
/* listen_run gave up on a configuration error (said in the log). */
bool listen_failed(const struct listen *l);

#endif
