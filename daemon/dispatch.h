/*
 * dispatch.h - which sessions to run, and when: the bookkeeping between
 * the Listen snapshots and the runners.
 *
 * One entry per session in view: the version it was last dispatched at
 * (the emulator re-sends a target's whole result set after every write,
 * and a version is run once), whether a task for it is queued or running,
 * and for a session seen "transforming" since when, to tell an interrupted
 * one from one another daemon is working on.  Free of I/O and of clocks:
 * callers pass the times.
 *
 * The listen thread calls dispatch_consider, dispatch_note and
 * dispatch_prune, and the recovery thread dispatch_consider; runners call
 * dispatch_start_claim and dispatch_done.  Thread-safe.
 */
#ifndef FIRESYNC_DISPATCH_H
#define FIRESYNC_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "session.h"

struct dispatch_rules {
	int64_t lease_ms;	/* "transforming" this long: interrupted */
	int64_t max_attempts;	/* runs of one capture in all */
};

enum dispatch_verdict {
	DISPATCH_WAIT = 0,	/* nothing to do now */
	DISPATCH_CLAIM,		/* captured: claim and run it (attempt 1) */
	DISPATCH_RECLAIM,	/* interrupted: claim and run it again */
	DISPATCH_GIVE_UP,	/* interrupted, attempts used up: fail it */
};

struct dispatch;

struct dispatch *dispatch_new(void);
void dispatch_free(struct dispatch *d);

/*
 * Session name is in the latest snapshot at version (its update_time as
 * text) in state, with transformAttempts attempts; age_ms is how old that
 * version was at the snapshot's read time (server clock), now_ms the
 * caller's monotonic clock.  Anything but DISPATCH_WAIT marks the session
 * in flight until dispatch_done, and sets *attempt to the number of the
 * run to record (for DISPATCH_GIVE_UP, the attempts already made).
 */
enum dispatch_verdict dispatch_consider(struct dispatch *d, const char *name,
    const char *version, enum session_state state, int64_t age_ms,
    int64_t attempts, const struct dispatch_rules *r, int64_t now_ms,
    int64_t *attempt);

/*
 * The task for name is over.  again: it did not get to claim the session
 * (a commit failed without a verdict), so the same version is dispatched
 * again at the next look.
 */
void dispatch_done(struct dispatch *d, const char *name, bool again);

/*
 * Session name is in view, captured, but not dispatched yet (its turn
 * comes later): if it leaves the view before then, dispatch_prune counts
 * it as taken by someone else.
 */
void dispatch_note(struct dispatch *d, const char *name);

/*
 * The task for name is about to send its claim.  False if the session
 * has left the captured view since it was dispatched (another daemon
 * claimed it, or the app changed it): the claim would only fail, so it
 * is not sent.  Sessions dispatched from the recovery query are never
 * in that view and always true.
 */
bool dispatch_start_claim(struct dispatch *d, const char *name);

/*
 * Sessions for which in_view(arg, name) is false have left the captured
 * view (claimed, ready, error, deleted): forget those not in flight, and
 * mark those queued but not yet claimed as withdrawn.  Returns how many
 * of them someone else took: withdrawn now, or noted and never ours.
 */
size_t dispatch_prune(struct dispatch *d,
    bool (*in_view)(void *arg, const char *name), void *arg);

/*
 * Turn spreading, when several daemons share a project.  Alone, a daemon
 * takes sessions in capture order.  With others seen taking sessions in
 * the last DISPATCH_PEER_MEMORY_MS, each session gets a delay from a hash
 * of its name that differs in every daemon (strmap_hash is seeded per
 * process), across a spread of DISPATCH_SPREAD_RTTS claim round trips
 * (within DISPATCH_SPREAD_MIN_MS..MAX), plus as much again scaled by how
 * busy this daemon is: the least busy daemon with the earliest turn
 * claims it, and the others see it leave before their turn comes.
 */
#define DISPATCH_PEER_MEMORY_MS	(10 * 60 * 1000)
#define DISPATCH_SPREAD_RTTS	16
#define DISPATCH_SPREAD_MIN_MS	20
#define DISPATCH_SPREAD_MAX_MS	2000

struct dispatch_turns {
	double spread_ms;		/* 0: alone, no delay */
	double load;			/* 0..1 */
};

/*
 * The turns now (monotonic now_ms), given when another daemon was last
 * seen taking a session (peer_ms; 0: never), the claims' mean round trip
 * and this daemon's load: busy tasks (claiming or queued) of limit.
 */
struct dispatch_turns dispatch_turns(int64_t now_ms, int64_t peer_ms,
    double claim_rtt_ms, int busy, int limit);
/* How long after its capture this daemon waits before name's turn. */
int64_t dispatch_turn_delay(const struct dispatch_turns *t, const char *name);

/* Sessions with a task queued or running. */
size_t dispatch_in_flight(struct dispatch *d);
/* Sessions tracked at all (in view or in flight). */
size_t dispatch_count(struct dispatch *d);

#endif
