/*
 * buf.c - a growing byte buffer with a ceiling (buf.h).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"

void
buf_init(struct buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

int
buf_reserve(struct buf *b, size_t more)
{
	size_t cap;
	char *p;

	/* one byte beyond the contents for the NUL */
	if (b->cap > b->len && more < b->cap - b->len)
		return 0;
	if (more > b->max - b->len) {
		b->too_big = true;
		return -1;
	}
	cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more + 1)
		cap *= 2;
	if (cap > b->max + 1)
		cap = b->max + 1;
	p = realloc(b->p, cap);
	if (p == NULL)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

int
buf_add(struct buf *b, const void *data, size_t len)
{
	if (buf_reserve(b, len) < 0)
		return -1;
	if (len > 0)
		memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
	return 0;
}

int
buf_str(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	b->too_big = false;
	if (b->p != NULL)
		b->p[0] = '\0';
}

void
buf_free(struct buf *b)
{
	size_t max = b->max;

	free(b->p);
	buf_init(b, max);
}

char *
buf_take(struct buf *b, size_t *len)
{
	char *p = b->p;

	if (len != NULL)
		*len = b->len;
	b->p = NULL;
	b->len = b->cap = 0;
	b->too_big = false;
	return p;
}

size_t
buf_write(char *data, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;

	if (n != 0 && size > (size_t)-1 / n)
		return 0;
	return buf_add(b, data, size * n) < 0 ? 0 : size * n;
}
