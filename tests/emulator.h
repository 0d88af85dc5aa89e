/*
 * emulator.h - the official Firestore emulator as a test fixture, and the
 * few admin operations tests and the bench tool need to play the web
 * app's side (write a session, read it back) through our own client.
 */
#ifndef FIRESYNC_EMULATOR_H
#define FIRESYNC_EMULATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "clock.h"
#include "firestore.h"
#include "value.h"

struct emulator {
	pid_t pid;		/* process group leader */
	int port;
	char host[64];		/* "127.0.0.1:PORT" */
	char log[256];
};

/* A free TCP port on 127.0.0.1. */
int free_port(void);

/*
 * Start the emulator at path on port (0: a free one) and wait until it is
 * ready.  Returns 0, -ENOENT if it is not installed, or -ETIMEDOUT.
 */
int emulator_start(struct emulator *em, const char *path, int port);
void emulator_stop(struct emulator *em);

/* A client for project on the emulator; aborts on failure. */
struct fs_client *admin_client(const char *host, const char *project);
/*
 * Replace the document at path (relative to .../documents) with fields
 * (a map Value, consumed).  Returns the gRPC status code.
 */
int admin_set(struct fs_client *c, const char *path, FsValue *fields);
/* Update only the named fields (a map Value, consumed). */
int admin_update(struct fs_client *c, const char *path, FsValue *fields,
    const char *const *mask, size_t n_mask);
/* Read a document; NULL if missing.  Caller frees with doc_free. */
FsDocument *admin_get(struct fs_client *c, const char *path);
/*
 * Open a Listen stream (target id 1) on the "sessions" collection group
 * where state == state, as the web app watches its sessions.  Close with
 * fs_listen_close.
 */
struct fs_listen *admin_listen_state(struct fs_client *c, const char *state);

/* A string field of doc, or NULL. */
const char *doc_string(const FsDocument *doc, const char *field);

/* The fields of a captured session as the web app writes them. */
FsValue *session_fields(const char *event, const char *session,
    const char *experience, const char *input_path, int64_t now_ms);

/* Add a text step of n bytes to a session's fields (a guest's long
 * answer): a big document. */
void session_pad(FsValue *fields, size_t n);

/* Start firesyncd with extra args (NULL-terminated); output to logpath. */
pid_t daemon_spawn(const char *exe, const char *const *args,
    const char *logpath);
/* SIGTERM and wait up to ms; returns the exit status or -1. */
int daemon_stop(pid_t pid, int ms);

/* Lines of the file at path holding needle; 0 if it cannot be read. */
int log_count(const char *path, const char *needle);
/* The same once it reaches want, or what it is after ms (a deadline,
 * not a delay).  The daemon logs a session's end after its last write
 * lands, so a test that has just seen the document can be a moment
 * ahead of the log. */
int log_count_reaches(const char *path, const char *needle, int want,
    int ms);

/* Monotonic milliseconds, for test deadlines. */
#define test_now_ms() now_mono_ms()

#endif
