/*
 * fuzz_image.c - libFuzzer target: a guest's photo (or a plugin's result):
 * sniffing, EXIF orientation, decoding within a pixel limit, orienting,
 * cropping to an aspect ratio and fitting.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "image.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const ratios[] = { "", "1:1", "16:9", "3:4",
	    "10000:1" };
	struct image img;
	char err[512];
	int o;

	log_level = -1;
	(void)image_sniff(data, size);
	o = image_jpeg_orientation(data, size);
	if (image_decode(data, size, 4000000, &img, err, sizeof(err)) < 0)
		return 0;
	image_orient(&img, o);
	image_crop_aspect(&img, ratios[size % 5], err, sizeof(err));
	image_fit(&img, 10000);
	image_free(&img);
	return 0;
}
