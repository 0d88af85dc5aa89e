/*
 * paths.h - storage path rules.
 *
 * A session may only read its own capture: the input path must lie under
 * captures/{eventId}/{sessionId}/ of that very session, written plainly
 * (no "..", ".", empty components, backslashes, percent-encoding, control
 * characters, or a leading '/').
 */
#ifndef FIRESYNC_PATHS_H
#define FIRESYNC_PATHS_H

#include <stddef.h>

#define PATH_MAX_LEN 1024

/* 0 if path is an acceptable input for the session, else -EINVAL + err. */
int path_check_input(const char *path, const char *event_id,
    const char *session_id, char *err, size_t errlen);

/* 0 if s is a plain relative storage path (the rules above, no prefix). */
int path_check_relative(const char *s, char *err, size_t errlen);

/*
 * 0 if path may be read as a reference image: plainly written, under one
 * of prefixes (each ending in '/'), and never under captures/ or results/
 * (one guest's photo is never another's reference).  Else -EINVAL + err.
 */
int path_check_reference(const char *path, char *const *prefixes,
    size_t n_prefixes, char *err, size_t errlen);

/* "results/{eventId}/{sessionId}/result.png"; caller frees. */
char *path_result(const char *event_id, const char *session_id);
/* results/E/S/NAME.EXT: a rendition beside the result (malloc'd). */
char *path_rendition(const char *event_id, const char *session_id,
    const char *name, const char *ext);

#endif
