/*
 * testimg.c - synthetic JPEG and PNG images for the tests.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jpeglib.h>
#include <png.h>

#include "image.h"
#include "testimg.h"

static void
pixel(uint32_t x, uint32_t y, uint32_t w, uint32_t h, uint8_t rgb[3])
{
	if (y < h / 2 && x < w / 2) {
		rgb[0] = 230; rgb[1] = 20; rgb[2] = 20;		/* red */
	} else if (y < h / 2) {
		rgb[0] = 20; rgb[1] = 200; rgb[2] = 20;		/* green */
	} else {
		rgb[0] = (uint8_t)(x * 255 / (w ? w : 1));
		rgb[1] = (uint8_t)(y * 255 / (h ? h : 1));
		rgb[2] = 128;
	}
}

/* Encode w x h rows, each filled by fill(row, y), as a JPEG at quality,
 * with an EXIF orientation if it is 1-8. */
static void
encode_jpeg(uint32_t w, uint32_t h, int quality, int orientation,
    void (*fill)(uint8_t *row, uint32_t y, uint32_t w, uint32_t h,
    void *arg), void *arg, uint8_t **out, size_t *len)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr jerr;
	unsigned long n = 0;
	unsigned char *buf = NULL;
	uint8_t *row = malloc((size_t)w * 3);

	c.err = jpeg_std_error(&jerr);
	jpeg_create_compress(&c);
	jpeg_mem_dest(&c, &buf, &n);
	c.image_width = w;
	c.image_height = h;
	c.input_components = 3;
	c.in_color_space = JCS_RGB;
	jpeg_set_defaults(&c);
	jpeg_set_quality(&c, quality, TRUE);
	jpeg_start_compress(&c, TRUE);
	if (orientation >= 1 && orientation <= 8) {
		/* Exif\0\0, little-endian TIFF, IFD0 with one entry 0x0112 */
		uint8_t exif[] = {
			'E', 'x', 'i', 'f', 0, 0,
			'I', 'I', 42, 0, 8, 0, 0, 0,
			1, 0,
			0x12, 0x01, 3, 0, 1, 0, 0, 0,
			(uint8_t)orientation, 0, 0, 0,
			0, 0, 0, 0,
		};

		jpeg_write_marker(&c, JPEG_APP0 + 1, exif, sizeof(exif));
	}
	while (c.next_scanline < h) {
		JSAMPROW rp = row;

		fill(row, c.next_scanline, w, h, arg);
		jpeg_write_scanlines(&c, &rp, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	free(row);
	*out = malloc(n);
	memcpy(*out, buf, n);
	*len = n;
	free(buf);
}

static void
fill_picture(uint8_t *row, uint32_t y, uint32_t w, uint32_t h, void *arg)
{
	(void)arg;
	for (uint32_t x = 0; x < w; x++)
		pixel(x, y, w, h, row + x * 3);
}

void
testimg_jpeg(uint32_t w, uint32_t h, int orientation, uint8_t **out,
    size_t *len)
{
	encode_jpeg(w, h, 90, orientation, fill_picture, NULL, out, len);
}

static void
fill_noise(uint8_t *row, uint32_t y, uint32_t w, uint32_t h, void *arg)
{
	uint32_t *x = arg;

	(void)y, (void)h;
	for (size_t i = 0; i < (size_t)w * 3; i++) {
		*x ^= *x << 13;
		*x ^= *x >> 17;
		*x ^= *x << 5;
		row[i] = (uint8_t)*x;
	}
}

void
testimg_noise_jpeg(uint32_t w, uint32_t h, uint8_t **out, size_t *len)
{
	uint32_t state = 2463534242u;	/* xorshift32 */

	encode_jpeg(w, h, 98, 0, fill_noise, &state, out, len);
}

void
testimg_png(uint32_t w, uint32_t h, int channels, int depth, uint8_t **out,
    size_t *len)
{
	png_image pi;
	size_t bpc = depth == 16 ? 2 : 1;
	uint8_t *px = malloc((size_t)w * h * channels * bpc);
	png_alloc_size_t n = 0;

	for (uint32_t y = 0; y < h; y++) {
		for (uint32_t x = 0; x < w; x++) {
			uint8_t rgb[3];
			size_t o = ((size_t)y * w + x) * channels;

			pixel(x, y, w, h, rgb);
			for (int ch = 0; ch < channels; ch++) {
				uint8_t v = ch < 3 ? rgb[ch] : 200;

				if (bpc == 2)
					((uint16_t *)px)[o + ch] =
					    (uint16_t)(v * 257);
				else
					px[o + ch] = v;
			}
		}
	}
	memset(&pi, 0, sizeof(pi));
	pi.version = PNG_IMAGE_VERSION;
	pi.width = w;
	pi.height = h;
	pi.format = (channels == 4 ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB) |
	    (bpc == 2 ? PNG_FORMAT_FLAG_LINEAR : 0);
	png_image_write_to_memory(&pi, NULL, &n, 0, px, 0, NULL);
	*out = malloc(n);
	if (!png_image_write_to_memory(&pi, *out, &n, 0, px, 0, NULL))
		abort();
	*len = n;
	free(px);
}

void
testimg_write(const char *path, const uint8_t *data, size_t len)
{
	char *dir = strdup(path);
	FILE *f;

	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			abort();
		*p = '/';
	}
	free(dir);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0)
		abort();
}

void
testimg_frame(uint32_t w, uint32_t h, const uint8_t rgb[3], uint8_t **out,
    size_t *len)
{
	struct image img = { w, h, 4, calloc((size_t)w * h, 4) };
	uint32_t b = (w < h ? w : h) / 10;
	char err[128];

	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++) {
			uint8_t *p = img.pixels + ((size_t)y * w + x) * 4;
			uint32_t d = x < y ? x : y;

			d = d < w - 1 - x ? d : w - 1 - x;
			d = d < h - 1 - y ? d : h - 1 - y;
			if (d < 2 * b) {
				memcpy(p, rgb, 3);
				p[3] = d < b ? 255 : 128;
			} else {
				p[1] = 255;	/* green, fully transparent */
			}
		}
	if (image_encode_png(&img, out, len, err, sizeof(err)) < 0)
		abort();
	image_free(&img);
}
