/*
 * text.h - making strings safe to write where they are read by others:
 * Firestore documents (valid UTF-8 only) and log lines (one line each).
 */
#ifndef FIRESYNC_TEXT_H
#define FIRESYNC_TEXT_H

#include <stddef.h>

/*
 * Copy in to out (outlen bytes, at least 4), valid UTF-8 and at most
 * max_bytes long (and outlen - 1): each invalid byte becomes U+FFFD, each
 * control character (C0, DEL, C1) a space, and the text is cut at a
 * character boundary, never inside one.  Returns out.
 */
char *text_clean(const char *in, size_t max_bytes, char *out, size_t outlen);

/* Is s valid UTF-8 without control characters? */
int text_is_clean(const char *s);

#endif
