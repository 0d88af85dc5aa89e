/*
 * image.h - decoding and encoding the images sessions carry.
 *
 * JPEG through libjpeg-turbo and PNG through libpng, to 8-bit RGB or RGBA;
 * renditions also as WebP through libwebp.
 * The pixel limit is checked from the header, before any pixel is decoded,
 * so a 60000x60000 "bomb" costs a few hundred bytes of reading.
 */
#ifndef FIRESYNC_IMAGE_H
#define FIRESYNC_IMAGE_H

#include <stddef.h>
#include <stdint.h>

enum image_format { IMAGE_UNKNOWN = 0, IMAGE_JPEG, IMAGE_PNG };

struct image {
	uint32_t width;
	uint32_t height;
	uint32_t channels;	/* 3 (RGB) or 4 (RGBA) */
	uint8_t *pixels;	/* width * height * channels, rows packed */
};

enum image_format image_sniff(const uint8_t *data, size_t len);

/*
 * Decode a JPEG or PNG into *out (pixels malloc'd; free with image_free).
 * JPEGs are turned upright according to their EXIF orientation.  Refuses,
 * with -EINVAL and a message fit for a guest-facing error, anything that is
 * not a complete, valid JPEG/PNG, and with -E2BIG anything over max_pixels.
 */
int image_decode(const uint8_t *data, size_t len, uint64_t max_pixels,
    struct image *out, char *err, size_t errlen);

/* EXIF orientation (1-8) of a JPEG, 1 if absent or unreadable. */
int image_jpeg_orientation(const uint8_t *data, size_t len);

/* Apply EXIF orientation o (1-8) to img in place (may swap w/h). */
void image_orient(struct image *img, int o);

/*
 * Encode img as PNG into a malloc'd buffer (*out, *outlen; caller frees).
 * Returns 0 or -EIO with err.
 */
int image_encode_png(const struct image *img, uint8_t **out, size_t *outlen,
    char *err, size_t errlen);
/* The same with a resolution (pHYs) of dpi; 0: none written. */
int image_encode_png_dpi(const struct image *img, uint32_t dpi,
    uint8_t **out, size_t *outlen, char *err, size_t errlen);
/* Encode img as a baseline JPEG of quality 1-100 (alpha over white),
 * with a JFIF resolution of dpi (0: none), into a malloc'd buffer.
 * Returns 0 or -EIO with err. */
int image_encode_jpeg(const struct image *img, int quality, uint32_t dpi,
    uint8_t **out, size_t *outlen, char *err, size_t errlen);
/* Encode img as a lossy WebP of quality 1-100 (libwebp; alpha kept) into
 * a malloc'd buffer.  Returns 0 or -EIO with err. */
int image_encode_webp(const struct image *img, int quality, uint8_t **out,
    size_t *outlen, char *err, size_t errlen);

/*
 * Centre-crop img in place to the exact aspect ratio "W:H" (positive
 * integers up to 10000; "" or NULL leaves it as is): the largest
 * (k*W/g) x (k*H/g) rectangle that fits, g = gcd(W, H).  Returns 0, or
 * -EINVAL with err if ratio is malformed or the image too small for it.
 */
int image_crop_aspect(struct image *img, const char *ratio, char *err,
    size_t errlen);

/*
 * Resample img in place to w x h (both >= 1, at most 65535) by area
 * averaging when shrinking and bilinear interpolation when growing.
 * Returns 0, or -EINVAL for a size out of range.
 */
int image_resize(struct image *img, uint32_t w, uint32_t h);

/* Shrink img in place, keeping its aspect ratio, to at most max_pixels
 * (no-op when it is already that small).  0 or -EINVAL. */
int image_fit(struct image *img, uint64_t max_pixels);

void image_free(struct image *img);

#endif
