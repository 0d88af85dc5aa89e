/*
 * alloc.h - allocation wrappers that log and exit on out-of-memory.
 *
 * A daemon that cannot allocate a few bytes cannot do anything useful;
 * systemd restarts it.  Sizes that come from outside (documents, plugins,
 * servers) are bounded before they reach these.
 */
#ifndef FIRESYNC_ALLOC_H
#define FIRESYNC_ALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
