/*
 * value.h - building, comparing and reading Firestore Values.
 *
 * Values built here are allocated with malloc throughout (strings, arrays,
 * submessages), so one protobuf_c_message_free_unpacked(v, NULL) - wrapped
 * as value_free() - frees a whole tree, exactly like a tree that came off
 * the wire.
 */
#ifndef FIRESYNC_VALUE_H
#define FIRESYNC_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pb.h"

/* Constructors: each returns a new Value; caller frees with value_free(). */
FsValue *value_null(void);
FsValue *value_bool(bool b);
FsValue *value_int(int64_t i);
FsValue *value_double(double d);
FsValue *value_timestamp(int64_t seconds, int32_t nanos);
FsValue *value_string(const char *s);		/* s is copied */
FsValue *value_bytes(const void *p, size_t n);	/* bytes are copied */
FsValue *value_reference(const char *name);	/* name is copied */
FsValue *value_geo(double lat, double lng);
FsValue *value_array(void);			/* empty; see value_array_add */
FsValue *value_map(void);			/* empty; see value_map_put */
/* Append v to an array Value; the array takes ownership of v. */
void value_array_add(FsValue *array, FsValue *v);
/* Set key in a map Value (replacing any old entry); takes ownership of v. */
void value_map_put(FsValue *map, const char *key, FsValue *v);
/* Free a Value tree built here or unpacked from the wire; NULL is a no-op. */
void value_free(FsValue *v);

/*
 * A Document named name (copied) holding the entries of map (consumed).
 * Caller frees with protobuf_c_message_free_unpacked(&d->base, NULL).
 */
FsDocument *value_map_to_doc(FsValue *map, const char *name);

/* Deep equality; map entries compare regardless of order. */
bool value_equal(const FsValue *a, const FsValue *b);

/*
 * Deep copy of a document (pack/unpack); caller frees with doc_free().
 * NULL if the document cannot be re-packed (a hostile message can unpack
 * into one protobuf-c will not pack back).
 */
FsDocument *doc_dup(const FsDocument *d);
/* Free a document (or any other message) from the wire or from here;
 * NULL is a no-op. */
void doc_free(void *d);
/* Free a Timestamp (ts_dup's, or one taken off a message); NULL is a
 * no-op. */
void ts_free(FsTimestamp *t);

/* Look up key among map/document entries; NULL if absent.  Borrowed. */
const FsValue *value_map_get(const FsValue *map, const char *key);
const FsValue *doc_get(const FsDocument *doc, const char *key);

/* An integer Value, or a double one inside int64's range (truncated),
 * into *out; false for anything else. */
bool value_get_int64(const FsValue *v, int64_t *out);

/* Kind name for messages ("string", "integer", ...). */
const char *value_kind_name(const FsValue *v);

/* Timestamps. */
void ts_init(FsTimestamp *t);		/* zero, ready to use */
int ts_compare(const FsTimestamp *a, const FsTimestamp *b);	/* NULL < any */
/* Format as seconds.nanoseconds into buf (at least 32 bytes). */
const char *ts_format(const FsTimestamp *t, char *buf, size_t len);
/* A malloc'd copy, or NULL for NULL. */
FsTimestamp *ts_dup(const FsTimestamp *t);
int64_t ts_to_ms(const FsTimestamp *t);

#endif
