/*
 * strmap.h - a string-keyed hash map of borrowed pointers.
 *
 * Keys are copied; values are the caller's (strmap never frees them, but
 * strmap_free takes a callback to do so).
 */
#ifndef FIRESYNC_STRMAP_H
#define FIRESYNC_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct strmap;

struct strmap *strmap_new(void);
/* Frees the map; calls free_value(value) on each value if non-NULL. */
void strmap_free(struct strmap *m, void (*free_value)(void *));
void *strmap_get(const struct strmap *m, const char *key);
/* Set key; returns the old value (or NULL) for the caller to dispose of. */
void *strmap_put(struct strmap *m, const char *key, void *value);
/* Remove key; returns its value or NULL. */
void *strmap_del(struct strmap *m, const char *key);
size_t strmap_count(const struct strmap *m);
/* The maps' hash of key: SipHash under a key drawn once per process, so
 * uniform, and different in every process. */
uint32_t strmap_hash(const char *key);

/* Iteration: *pos starts at 0; returns false at the end.  The map must
 * not change during an iteration (collect keys first to delete). */
bool strmap_next(const struct strmap *m, size_t *pos, const char **key,
    void **value);

#endif
