/*
 * text.h - making strings safe to write where they are read by others:
 * Firestore documents (valid UTF-8 only) and log lines (one line each).
 */
#ifndef FIRESYNC_TEXT_H
#define FIRESYNC_TEXT_H

#include <stdarg.h>
#include <stddef.h>

/*
 * Copy in to out (outlen bytes, at least 4), valid UTF-8 and at most
 * max_bytes long (and outlen - 1): each invalid byte becomes U+FFFD, each
 * control character (C0, DEL, C1) a space, and the text is cut at a
 * character boundary, never inside one.  Returns out.
 */
char *text_clean(const char *in, size_t max_bytes, char *out, size_t outlen);

/*
 * A name (an experience id, a model) to put into a message: in copied to
 * out whole if it has at most max_bytes, else cut at the last character
 * boundary within max_bytes - 3 and "…" appended, so a name is never cut
 * inside a character.  outlen must exceed max_bytes.  Returns out.
 */
const char *text_name(const char *in, size_t max_bytes, char *out,
    size_t outlen);

/*
 * vsnprintf into buf (len bytes), but when the text does not fit, cut at
 * the last whole character rather than inside one.  Returns buf.
 */
char *text_vformat(char *buf, size_t len, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
char *text_format(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Is s valid UTF-8 without control characters? */
int text_is_clean(const char *s);

#endif
