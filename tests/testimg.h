/*
 * testimg.h - synthetic test images, encoded with the real libraries.
 */
#ifndef FIRESYNC_TESTIMG_H
#define FIRESYNC_TESTIMG_H

#include <stddef.h>
#include <stdint.h>

/*
 * A w x h RGB gradient whose top-left quadrant is red and top-right
 * quadrant green, so orientation is visible.  JPEG quality 90.  If
 * orientation is 1-8 an EXIF APP1 with that orientation is embedded.
 * Returns malloc'd bytes in *out, *len.
 */
void testimg_jpeg(uint32_t w, uint32_t h, int orientation, uint8_t **out,
    size_t *len);
/* w x h of noise at JPEG quality 98: megabytes that do not compress. */
void testimg_noise_jpeg(uint32_t w, uint32_t h, uint8_t **out, size_t *len);
/* Same picture as a PNG (channels 3 or 4, bit depth 8 or 16). */
void testimg_png(uint32_t w, uint32_t h, int channels, int depth,
    uint8_t **out, size_t *len);
/*
 * An event's frame, w x h RGBA PNG: an opaque band of colour rgb a tenth
 * of the short side wide along every edge, then a band as wide of the
 * same colour at half opacity (alpha 128), and a transparent centre
 * whose colour (green) must never show.
 */
void testimg_frame(uint32_t w, uint32_t h, const uint8_t rgb[3],
    uint8_t **out, size_t *len);
/* Write bytes to a file, creating parent directories. */
void testimg_write(const char *path, const uint8_t *data, size_t len);

#endif
