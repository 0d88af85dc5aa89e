/*
 * capture.h - run a function with stderr captured, for tests of what the
 * daemon prints.
 */
#ifndef FIRESYNC_CAPTURE_H
#define FIRESYNC_CAPTURE_H

#include <stddef.h>

/* Call fn(arg) with stderr redirected; what it printed goes to out
 * (NUL-terminated, truncated to len - 1 bytes). */
void capture_stderr(void (*fn)(void *), void *arg, char *out, size_t len);

#endif
