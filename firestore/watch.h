/*
 * watch.h - the Firestore Listen ("watch") state machine, free of I/O.
 *
 * Feed it every ListenResponse of a stream in order.  It buffers document
 * changes per target and applies them only at a consistent snapshot: a
 * global NO_CHANGE (no target ids) with a read_time, for targets that have
 * been marked CURRENT.  RESET drops a target's pending changes and makes
 * the next snapshot replace its document set; an ExistenceFilter whose
 * count disagrees with ours asks the caller to restart without a resume
 * token.  The same rules the official Firestore clients follow.
 */
#ifndef FIRESYNC_WATCH_H
#define FIRESYNC_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pb.h"
#include "strmap.h"

/* Targets one stream may carry (the daemon uses at most 33: one per
 * served event, and the experiences). */
#define WATCH_MAX_TARGETS 34

enum watch_event {
	WATCH_NONE = 0,		/* buffered; nothing to act on yet */
	WATCH_SNAPSHOT,		/* a consistent snapshot was applied */
	WATCH_RESTART,		/* restart the stream without resume token */
	WATCH_TARGET_ERROR,	/* the server removed a target (err says why) */
};

/* Called with each document (owned) entering a target; returns what to
 * keep in its place (the same document, or a smaller one, freeing the
 * original). */
typedef FsDocument *(*watch_trim_fn)(FsDocument *doc, void *arg);

struct watch_target {
	int32_t id;
	watch_trim_fn trim;	/* or NULL: keep documents whole */
	void *trim_arg;
	bool current;		/* CURRENT seen since the last (re)start */
	bool replace;		/* next snapshot replaces the known set */
	bool synced;		/* applied at a snapshot while CURRENT */
	struct strmap *known;	/* name -> FsDocument*, owned */
	struct strmap *pending;	/* name -> FsDocument* or WATCH_REMOVED */
};

struct watch {
	struct watch_target targets[WATCH_MAX_TARGETS];
	int n_targets;
	uint8_t *resume_token;	/* of the last snapshot, or NULL */
	size_t resume_token_len;
	FsTimestamp *read_time;	/* of the last snapshot, or NULL */
};

void watch_init(struct watch *w);
void watch_clear(struct watch *w);
/* Register a target id before the stream starts. */
void watch_add_target(struct watch *w, int32_t id);
/* Trim documents entering target id with fn (to bound what is held). */
void watch_set_trim(struct watch *w, int32_t id, watch_trim_fn fn,
    void *arg);
/* Known documents of a target at the last snapshot (borrowed), or NULL. */
const struct strmap *watch_known(const struct watch *w, int32_t id);
/* Every target has been CURRENT at some snapshot. */
bool watch_synced(const struct watch *w);
/* Targets CURRENT on this stream so far (of n_targets). */
int watch_current_count(const struct watch *w);
/* The last snapshot is older than server time t, or there is none yet. */
bool watch_before(const struct watch *w, const FsTimestamp *t);

/*
 * A new stream is starting: forget pending changes and CURRENT flags, keep
 * the known documents and the resume token (the server resends from it).
 */
void watch_stream_started(struct watch *w);
/*
 * Forget everything the server told us (resume token included); the next
 * snapshot of each target replaces its document set.
 */
void watch_reset(struct watch *w);

/*
 * Feed one response.  Documents are moved out of resp (their pointers set
 * to NULL); the caller still frees resp.  err gets the reason for
 * WATCH_RESTART and WATCH_TARGET_ERROR.
 */
enum watch_event watch_feed(struct watch *w, FsListenResponse *resp,
    char *err, size_t errlen);

#endif
