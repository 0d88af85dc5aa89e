/*
 * frames.h - events' frames, read from storage and kept: an event's
 * frame (a PNG with alpha at the [results] frame path, by default
 * branding/{event}/frame.png) is composited over each of its results by
 * the worker.  Before each use the object's version (its generation, or
 * its change time, size and inode) is checked, and its bytes read again
 * only when it changed: an operator who fixes a typo mid-event has it
 * on the next guest's result.  Thread-safe.
 */
#ifndef FIRESYNC_FRAMES_H
#define FIRESYNC_FRAMES_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define FRAMES_MAX_BYTES	(16u << 20)	/* a frame's PNG */

struct frame {
	atomic_int refs;
	uint8_t *data;
	size_t len;
	char path[256];
	char version[96];
};

struct frames;

struct frames *frames_new(void);
void frames_free(struct frames *f);

/*
 * The frame for a result of event in the experience's aspect ratio
 * ("W:H", or "" for the photo's own): tmpl with {event} replaced, its
 * aspect's own (frame.png becomes frame-9x16.png) when there is one,
 * else tmpl's.  NULL when there is none; NULL with a warning in why when
 * one is there but cannot be checked or read (too large, storage
 * failing), for the result to go out unframed.  Drop it with
 * frame_drop.
 */
struct frame *frames_get(struct frames *f, struct store *st,
    const char *tmpl, const char *event, const char *aspect, char *why,
    size_t whylen);
void frame_drop(struct frame *fr);

/* tmpl with {event} replaced (malloc'd), and with "-WxH" before its
 * ".png" when aspect is "W:H"; NULL if that would be no path of ours. */
char *frames_path(const char *tmpl, const char *event, const char *aspect);

#endif
