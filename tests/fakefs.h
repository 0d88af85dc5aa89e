/*
 * fakefs.h - a scripted Firestore, for what production does and the
 * emulator never does: a loopback gRPC server (gRPC C core, the protos
 * the client is built from) that answers Listen by rules a test sets,
 * lets the test speak on the open stream, and counts what it is asked.
 *
 * Every Listen's add_target is answered, unless a rule says otherwise,
 * as Firestore answers a target with no documents: ADD, CURRENT, then a
 * global snapshot (NO_CHANGE with a read time and a resume token
 * "sN-K": stream N, K-th target).  Other methods (Commit, RunQuery,
 * BatchGet...) are counted and refused with UNIMPLEMENTED.
 */
#ifndef FIRESYNC_FAKEFS_H
#define FIRESYNC_FAKEFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pb.h"

struct fakefs;

/* Start on a free loopback port; NULL if it cannot.  host():
 * "127.0.0.1:PORT", for --emulator. */
struct fakefs *fakefs_start(void);
const char *fakefs_host(const struct fakefs *f);
void fakefs_stop(struct fakefs *f);

/* ---- rules for the streams to come ---- */

/* Answer target id's add with REMOVE and this cause (a gRPC code). */
void fakefs_remove_target(struct fakefs *f, int32_t id, int code,
    const char *message);
/* Answer target id's add with ADD only: never CURRENT until the test
 * says so. */
void fakefs_hold_target(struct fakefs *f, int32_t id);
/* End every new Listen with this status (0: stop doing so): at once, or
 * after the ADD of its first target. */
void fakefs_end_listens(struct fakefs *f, int code, bool after_first_add);

/* Answer calls of a method whose name ends with suffix ("/RunQuery")
 * with this status and message, instead of UNIMPLEMENTED. */
void fakefs_fail(struct fakefs *f, const char *suffix, int code,
    const char *message);

/* ---- the open stream (the newest Listen) ---- */

/* Send r (consumed) on it. */
void fakefs_send(struct fakefs *f, FsListenResponse *r);
/* End it with this status. */
void fakefs_end_stream(struct fakefs *f, int code, const char *message);

/* ---- what it was asked ---- */

/* Listen calls so far. */
int fakefs_listens(struct fakefs *f);
/* Calls of a method whose name ends with suffix ("/Commit"). */
int fakefs_calls(struct fakefs *f, const char *suffix);
/*
 * Did Listen call n (1-based) add target id?  Then its resume token into
 * token ("" for none) and true.
 */
bool fakefs_added(struct fakefs *f, int n, int32_t id, char *token,
    size_t len);
/* The value of metadata key on the newest Listen call ("" if absent). */
void fakefs_metadata(struct fakefs *f, const char *key, char *out,
    size_t len);

#endif
