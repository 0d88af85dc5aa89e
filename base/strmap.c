/*
 * strmap.c - separate-chaining hash map with FNV-1a, doubling at load 1.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "strmap.h"

struct entry {
	struct entry *next;
	void *value;
	uint32_t hash;
	char key[];
};

struct strmap {
	struct entry **buckets;
	size_t nbuckets;	/* power of two */
	size_t count;
};

static uint32_t
fnv1a(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

struct strmap *
strmap_new(void)
{
	struct strmap *m = xcalloc(1, sizeof(*m));

	m->nbuckets = 16;
	m->buckets = xcalloc(m->nbuckets, sizeof(*m->buckets));
	return m;
}

void
strmap_free(struct strmap *m, void (*free_value)(void *))
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct entry *e = m->buckets[i], *next;

		for (; e; e = next) {
			next = e->next;
			if (free_value)
				free_value(e->value);
			free(e);
		}
	}
	free(m->buckets);
	free(m);
}

static struct entry **
find(const struct strmap *m, const char *key, uint32_t h)
{
	struct entry **pp = &m->buckets[h & (m->nbuckets - 1)];

	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0)
			break;
	return pp;
}

void *
strmap_get(const struct strmap *m, const char *key)
{
	struct entry **pp = find(m, key, fnv1a(key));

	return *pp ? (*pp)->value : NULL;
}

static void
grow(struct strmap *m)
{
	size_t n = m->nbuckets * 2;
	struct entry **b = xcalloc(n, sizeof(*b));

	for (size_t i = 0; i < m->nbuckets; i++) {
		struct entry *e = m->buckets[i], *next;

		for (; e; e = next) {
			next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = n;
}

void *
strmap_put(struct strmap *m, const char *key, void *value)
{
	uint32_t h = fnv1a(key);
	struct entry **pp = find(m, key, h), *e;
	size_t klen;
	void *old;

	if (*pp) {
		old = (*pp)->value;
		(*pp)->value = value;
		return old;
	}
	klen = strlen(key);
	e = xmalloc(sizeof(*e) + klen + 1);
	memcpy(e->key, key, klen + 1);
	e->hash = h;
	e->value = value;
	e->next = NULL;
	*pp = e;
	if (++m->count > m->nbuckets)
		grow(m);
	return NULL;
}

void *
strmap_del(struct strmap *m, const char *key)
{
	struct entry **pp = find(m, key, fnv1a(key)), *e = *pp;
	void *v;

	if (e == NULL)
		return NULL;
	*pp = e->next;
	v = e->value;
	free(e);
	m->count--;
	return v;
}

size_t
strmap_count(const struct strmap *m)
{
	return m->count;
}

/* *pos encodes (bucket << 16 | index within the bucket's chain). */
bool
strmap_next(const struct strmap *m, size_t *pos, const char **key,
    void **value)
{
	size_t b = *pos >> 16, idx = *pos & 0xffff;

	for (; b < m->nbuckets; b++, idx = 0) {
		struct entry *e = m->buckets[b];
		size_t i = 0;

		for (; e && i < idx; e = e->next)
			i++;
		if (e == NULL)
			continue;
		*key = e->key;
		*value = e->value;
		*pos = (b << 16) | (idx + 1);
		return true;
	}
	*pos = b << 16;
	return false;
}
