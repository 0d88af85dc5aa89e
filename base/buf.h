/*
 * buf.h - a growing byte buffer with a ceiling, always NUL-terminated:
 * an HTTP response body as it arrives (libcurl's write callback), or a
 * request being built.  Memory comes from realloc, so a failure is an
 * error to handle (a plugin must not exit), never fatal.
 */
#ifndef FIRESYNC_BUF_H
#define FIRESYNC_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct buf {
	char *p;		/* len bytes and a NUL; NULL while empty */
	size_t len, cap;
	size_t max;		/* bytes it may hold at most */
	bool too_big;		/* something passed max and was refused */
};

/* An empty buffer that may grow to max bytes. */
void buf_init(struct buf *b, size_t max);
/* Room for more bytes; -1 (too_big set if so) when it would pass max or
 * memory is short. */
int buf_reserve(struct buf *b, size_t more);
int buf_add(struct buf *b, const void *data, size_t len);
int buf_str(struct buf *b, const char *s);
/* Empty it for reuse, keeping its memory and ceiling. */
void buf_reset(struct buf *b);
/* Free its memory; it is empty again. */
void buf_free(struct buf *b);
/* Take its bytes (malloc'd, NUL-terminated; NULL if empty); it is empty
 * again. */
char *buf_take(struct buf *b, size_t *len);

/*
 * The shape of libcurl's CURLOPT_WRITEFUNCTION, with a struct buf as its
 * CURLOPT_WRITEDATA: appends, or returns 0 past the ceiling (libcurl then
 * abandons the transfer with CURLE_WRITE_ERROR, and too_big says why).
 */
size_t buf_write(char *data, size_t size, size_t n, void *arg);

#endif
