/*
 * recovery.h - the recovery thread: every recovery interval (jittered by
 * a quarter either way, so daemons started together do not query
 * together) a paged query finds the sessions left "transforming", which
 * it hands on; dispatch decides which of them are interrupted (past their
 * lease) and become tasks.
 */
#ifndef FIRESYNC_RECOVERY_H
#define FIRESYNC_RECOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "firestore.h"

struct recovery_config {
	struct fs_client *fs;		/* borrowed */
	/* the interval now, in seconds (a reload may change it) */
	int (*interval_s)(void *arg);
	const char *const *events;	/* only these events; NULL: all */
	size_t n_events;
	/* a "transforming" session found, read by the server at read_ms
	 * (its clock); the recovery thread, which holds the document only
	 * for the call */
	void (*found)(void *arg, const FsDocument *doc, int64_t read_ms);
	/* room to hand on one more now? */
	bool (*room)(void *arg);
	void *arg;
};

struct recovery;

/* Start the thread (fatal if the system cannot); the config's strings
 * must outlive it. */
struct recovery *recovery_start(const struct recovery_config *c);
/*
 * Stop the thread and join it within wait_ms (what a query in flight
 * finds is dropped), then free it; true.  False when the thread is still
 * inside a Firestore call at wait_ms: it is left as it is (not freed),
 * and the caller must exit without freeing the client it uses.
 */
bool recovery_stop(struct recovery *r, int64_t wait_ms);

#endif
