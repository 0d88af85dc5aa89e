/*
 * session.h - the web app's session and experience documents, decoded.
 *
 * session_decode() checks every field the schema names.  Problems in the
 * fields firesyncd needs (state, inputImagePath, data.selected_experience_id)
 * are errors; other schema violations are collected as a warning so the
 * admin hears of them, and the session is still processed: we only ever
 * write through an update mask, so we never make a document worse.
 */
#ifndef FIRESYNC_SESSION_H
#define FIRESYNC_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pb.h"

enum session_state {
	SESSION_UNKNOWN = 0,
	SESSION_CREATED,
	SESSION_CAPTURED,
	SESSION_TRANSFORMING,
	SESSION_READY,
	SESSION_ERROR,
};

enum step_input_type {
	STEP_TEXT = 1,
	STEP_BOOLEAN,
	STEP_NUMBER,
	STEP_SELECTION,
	STEP_SELECTIONS,
	STEP_PHOTO,
};

/* Limits on strings in a document. */
#define SESSION_MAX_PATH	1024	/* inputImagePath, resultImagePath */
#define SESSION_MAX_ID		1500	/* Firestore's own id limit */
#define SESSION_MAX_TEXT	(64 * 1024)

struct session {
	char *name;		/* full document name */
	char *event_id;		/* from the document path */
	char *session_id;	/* from the document path */
	FsTimestamp *update_time;
	enum session_state state;

	char *id;		/* "id" field, NULL if absent */
	char *event_id_field;	/* "eventId" field, NULL if absent */
	char *input_image_path;
	char *result_image_path;
	char *error;
	char *journey_id;
	int64_t current_step_index;	/* -1 if absent */
	int64_t created_at;
	int64_t updated_at;
	int64_t transform_attempts;	/* firesync's own counter, 0 if absent */

	char *selected_experience_id;
	size_t n_inputs;	/* step inputs that parse (the others are
				   in warning); their values are not kept */

	char *warning;		/* non-fatal schema problems, or NULL */
};

/*
 * Split a document name "projects/P/databases/D/documents/events/E/sessions/S"
 * into E and S (malloc'd, caller frees).  Returns 0, or -EINVAL if the name
 * is not a session of an event (collection-group queries also match
 * "sessions" collections elsewhere; those are not ours).
 */
int session_parse_name(const char *name, char **event_id, char **session_id);
/* The same, without copying: spans of name. */
int session_name_ids(const char *name, const char **event_id,
    size_t *event_len, const char **session_id, size_t *session_len);

/*
 * Decode doc into *s (zeroed first).  Returns 0, or -EINVAL with a message
 * naming the field in err; on error *s still holds what was decoded: its
 * name, update time, state and transformAttempts always (what dispatch
 * needs), the ids when the name parsed.  Free it with session_clear().
 * doc is borrowed.
 */
int session_decode(const FsDocument *doc, struct session *s, char *err,
    size_t errlen);
/*
 * Only what dispatch needs, read where session_decode reads it: the state
 * (SESSION_UNKNOWN if absent or not a string) and transformAttempts (0 if
 * absent or not a number).  Cheap: dispatch looks at every session in
 * view on every pass, and decodes only those that become tasks.
 */
void session_peek(const FsDocument *doc, enum session_state *state,
    int64_t *attempts);
void session_clear(struct session *s);

/* "captured" -> SESSION_CAPTURED ...; SESSION_UNKNOWN for anything else. */
enum session_state session_state_parse(const char *s);

/*
 * Bound what a session waiting in memory costs (the Listen cache, the
 * queue): doc (consumed) if its packed size is at most SESSION_SLIM_OVER
 * bytes, else a slim copy holding only its name, update time, state and
 * transformAttempts, and a mark session_is_slim() sees (a field name
 * Firestore reserves, so no real document has it).  A burst of near-1 MiB
 * sessions would otherwise sit in memory twice; a slim one's task reads
 * it whole when it runs.
 */
#define SESSION_SLIM_OVER	(64 * 1024)
FsDocument *session_slim(FsDocument *doc);
bool session_is_slim(const FsDocument *doc);

/* The experience's aiPhotoConfig. */
struct experience {
	char *id;
	bool ai_enabled;
	char *model;
	char *prompt;
	char *aspect_ratio;
	char **reference_urls;
	size_t n_reference_urls;
};

/* Decode /experiences/{id}; -EINVAL with err on a malformed aiPhotoConfig. */
int experience_decode(const FsDocument *doc, struct experience *e, char *err,
    size_t errlen);
void experience_clear(struct experience *e);

/*
 * An experience version decoded once and shared read-only between
 * threads (the Listen cache's, which many queued tasks use), freed with
 * its last reference.  experience_ref_decode never fails: a malformed
 * document's reference carries the error.  hold and drop are
 * thread-safe; drop(NULL) is a no-op.
 */
struct experience_ref;
struct experience_ref *experience_ref_decode(const FsDocument *doc);
struct experience_ref *experience_ref_hold(struct experience_ref *r);
void experience_ref_drop(void *r);
/* The decoded experience (borrowed) and 0, or NULL, -EINVAL and why in
 * *err (borrowed). */
int experience_ref_get(const struct experience_ref *r,
    const struct experience **x, const char **err);
/* The document version it was decoded from (NULL if it had none). */
const FsTimestamp *experience_ref_version(const struct experience_ref *r);

/*
 * The full document name of experience id under docs_path
 * (".../documents"), or NULL if id cannot name one document directly under
 * experiences/ (empty, holding '/', "." or "..", or over 1500 bytes).
 * Caller frees.
 */
char *experience_doc_name(const char *docs_path, const char *id);

#endif
