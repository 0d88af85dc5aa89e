/*
 * strmap.c - separate-chaining hash map with keyed SipHash-2-4, doubling
 * at load 1.
 */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

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

/*
 * SipHash-2-4 (Aumasson and Bernstein) with a key drawn once per process
 * from the kernel: document names come from outside, and a fixed hash
 * would let someone choose names that all land in one bucket.
 */
static uint64_t sip_k0, sip_k1;
static pthread_once_t sip_once = PTHREAD_ONCE_INIT;

static void
sip_seed(void)
{
	uint64_t k[2];

	if (getrandom(k, sizeof(k), GRND_NONBLOCK) != (ssize_t)sizeof(k)) {
		struct timespec ts;

		/* early boot without entropy: still not a fixed key */
		clock_gettime(CLOCK_MONOTONIC, &ts);
		k[0] = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^
		    (uint64_t)getpid();
		k[1] = (uint64_t)ts.tv_sec * 0xC2B2AE3D27D4EB4Full ^
		    (uintptr_t)&k;
	}
	sip_k0 = k[0];
	sip_k1 = k[1];
}

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do { \
	v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
	v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2; \
	v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0; \
	v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
} while (0)

uint32_t
strmap_hash(const char *key)
{
	const unsigned char *p = (const unsigned char *)key;
	size_t len = strlen(key), left;
	uint64_t v0, v1, v2, v3, b, m;

	pthread_once(&sip_once, sip_seed);
	v0 = 0x736f6d6570736575ull ^ sip_k0;
	v1 = 0x646f72616e646f6dull ^ sip_k1;
	v2 = 0x6c7967656e657261ull ^ sip_k0;
	v3 = 0x7465646279746573ull ^ sip_k1;
	b = (uint64_t)len << 56;
	for (left = len; left >= 8; left -= 8, p += 8) {
		memcpy(&m, p, 8);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t i = 0; i < left; i++)
		b |= (uint64_t)p[i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	b = v0 ^ v1 ^ v2 ^ v3;
	return (uint32_t)(b ^ (b >> 32));
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
	struct entry **pp = find(m, key, strmap_hash(key));

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
	uint32_t h = strmap_hash(key);
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
	struct entry **pp = find(m, key, strmap_hash(key)), *e = *pp;
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
