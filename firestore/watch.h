/*
 * watch.h - the Firestore Listen ("watch") state machine, free of I/O.
 *
 * Feed it every ListenResponse of a stream in order.  It buffers document
 * changes per target and applies them only at a consistent snapshot: a
 * global NO_CHANGE (no target ids) with a read_time, for targets that have
 * been marked CURRENT.  RESET drops a target's pending changes and makes
 * the next snapshot replace its document set; an ExistenceFilter whose
 * count disagrees with ours resets that target alone and asks the caller
 * to restart the stream.  The same rules the official Firestore clients
 * follow.
 *
 * Each target keeps its own resume token: the snapshot's token, taken
 * only at a snapshot the target was CURRENT for and whose changes were
 * applied to it.  A global snapshot may carry a token while another
 * target is still catching up; resuming that target from it would skip
 * what it had pending.  A target that has never been synced resumes
 * from nothing (the server sends it whole), as the JS SDK does.
 *
 * A target the server removes (a missing index, a permission) is down
 * until the next stream re-adds it; the others carry on.
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
	WATCH_TARGET_ERROR,	/* the server removed every target (err says
				   why): the stream is of no use */
	WATCH_TARGET_REMOVED,	/* the server removed some targets (err says
				   which and why); the others go on */
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
	bool removed;		/* removed by the server on this stream */
	int removed_code;	/* its cause: a gRPC status code */
	uint8_t *resume_token;	/* of its last synced snapshot, or NULL */
	size_t resume_token_len;
	struct strmap *known;	/* name -> FsDocument*, owned */
	struct strmap *pending;	/* name -> FsDocument* or WATCH_REMOVED */
};

struct watch {
	struct watch_target targets[WATCH_MAX_TARGETS];
	int n_targets;
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
/* Every target not removed has been CURRENT at some snapshot (and at
 * least one has). */
bool watch_synced(const struct watch *w);
/* Targets CURRENT on this stream so far (of n_targets). */
int watch_current_count(const struct watch *w);
/* Targets the server removed on this stream. */
int watch_removed_count(const struct watch *w);
/* Target id's resume token (borrowed; NULL with *len 0 if none). */
const uint8_t *watch_resume_token(const struct watch *w, int32_t id,
    size_t *len);
/* The target (NULL if unknown): its removed flag and cause. */
const struct watch_target *watch_get(const struct watch *w, int32_t id);
/* The last snapshot is older than server time t, or there is none yet. */
bool watch_before(const struct watch *w, const FsTimestamp *t);

/*
 * A new stream is starting: forget pending changes, CURRENT and removed
 * flags, keep the known documents and the resume tokens (the server
 * resends from them).
 */
void watch_stream_started(struct watch *w);
/*
 * Forget everything the server told us (resume tokens included); the next
 * snapshot of each target replaces its document set.
 */
void watch_reset(struct watch *w);

/*
 * Feed one response.  Documents are moved out of resp (their pointers set
 * to NULL); the caller still frees resp.  err gets the reason for
 * WATCH_RESTART, WATCH_TARGET_ERROR and WATCH_TARGET_REMOVED.
 */
enum watch_event watch_feed(struct watch *w, FsListenResponse *resp,
    char *err, size_t errlen);

#endif
