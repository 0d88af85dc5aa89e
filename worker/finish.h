/*
 * finish.h - what happens to a result after the model, in the worker
 * (inside its sandbox and limits): the cap on its size, the event's
 * frame composited over it, and its renditions.
 */
#ifndef FIRESYNC_FINISH_H
#define FIRESYNC_FINISH_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "wire.h"

/*
 * Composite the frame (PNG bytes with an alpha channel, 8-bit sRGB,
 * straight alpha) over img: scaled to cover it, centred.  The frame's
 * opaque pixels replace img's, its transparent ones leave them as they
 * are, and the rest blend.  0, or -1 with why the frame is unusable in
 * note (img is then unchanged).
 */
int finish_frame(struct image *img, const uint8_t *frame, size_t len,
    uint64_t max_pixels, char *note, size_t notelen);

/* One rendition of img as spec asks, encoded into a malloc'd buffer.
 * 0, or -1 with err. */
int finish_rendition(const struct image *img,
    const struct wire_rendition *spec, uint8_t **out, size_t *len,
    char *err, size_t errlen);

/* Whether spec is one this worker can make (sizes, format, quality). */
int finish_rendition_ok(const struct wire_rendition *spec);

#endif
