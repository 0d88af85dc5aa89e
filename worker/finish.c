/*
 * finish.c - the frame and the renditions (finish.h).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "finish.h"

int
finish_frame(struct image *img, const uint8_t *data, size_t len,
    uint64_t max_pixels, char *note, size_t notelen)
{
	struct image f;
	char err[256];
	uint32_t cw, ch, c = img->channels;

	if (image_sniff(data, len) != IMAGE_PNG) {
		snprintf(note, notelen, "the frame is not a PNG");
		return -1;
	}
	if (image_decode(data, len, max_pixels, &f, err, sizeof(err)) < 0) {
		snprintf(note, notelen, "the frame does not decode: %s", err);
		return -1;
	}
	if (f.channels != 4) {
		snprintf(note, notelen, "the frame has no transparency (%ux%u "
		    "RGB): save it as a PNG with an alpha channel", f.width,
		    f.height);
		image_free(&f);
		return -1;
	}
	/* premultiplied, so scaling never bleeds the colour of transparent
	 * pixels into the edges */
	for (size_t i = 0; i < (size_t)f.width * f.height; i++) {
		uint8_t *p = f.pixels + i * 4;

		for (int k = 0; k < 3; k++)
			p[k] = (uint8_t)((p[k] * p[3] + 127u) / 255u);
	}
	/* cover img: the centre of the frame of img's shape, scaled to
	 * img's size (never more pixels than img, whatever the frame's
	 * shape) */
	cw = (uint32_t)fmin(f.width, fmax(1.0, round((double)f.height *
	    img->width / img->height)));
	ch = (uint32_t)fmin(f.height, fmax(1.0, round((double)f.width *
	    img->height / img->width)));
	if (cw != f.width || ch != f.height) {
		uint32_t x0 = (f.width - cw) / 2, y0 = (f.height - ch) / 2;
		uint8_t *crop = xmalloc((size_t)cw * ch * 4);

		for (uint32_t y = 0; y < ch; y++)
			memcpy(crop + (size_t)y * cw * 4, f.pixels +
			    ((size_t)(y0 + y) * f.width + x0) * 4,
			    (size_t)cw * 4);
		free(f.pixels);
		f.pixels = crop;
		f.width = cw;
		f.height = ch;
	}
	if (image_resize(&f, img->width, img->height) < 0) {
		snprintf(note, notelen, "the frame cannot be scaled to "
		    "%ux%u", img->width, img->height);
		image_free(&f);
		return -1;
	}
	for (uint32_t y = 0; y < img->height; y++) {
		const uint8_t *fp = f.pixels + (size_t)y * img->width * 4;
		uint8_t *p = img->pixels + (size_t)y * img->width * c;

		for (uint32_t x = 0; x < img->width; x++, fp += 4, p += c) {
			uint32_t a = fp[3], keep = 255u - a;

			if (a == 0)
				continue;
			for (int k = 0; k < 3; k++) {
				uint32_t v = fp[k] + (p[k] * keep + 127u) /
				    255u;

				p[k] = (uint8_t)(v > 255 ? 255 : v);
			}
			if (c == 4)
				p[3] = (uint8_t)(a + (p[3] * keep + 127u) /
				    255u);
		}
	}
	image_free(&f);
	return 0;
}

int
finish_rendition_ok(const struct wire_rendition *r)
{
	size_t n = strnlen(r->name, sizeof(r->name));

	if (n == 0 || n == sizeof(r->name))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((r->name[i] >= 'a' && r->name[i] <= 'z') ||
		    (r->name[i] >= '0' && r->name[i] <= '9') ||
		    r->name[i] == '-' || r->name[i] == '_'))
			return 0;
	return r->width >= 1 && r->width <= 10000 && r->height <= 10000 &&
	    (r->format == WIRE_FORMAT_PNG || ((r->format == WIRE_FORMAT_JPEG ||
	    r->format == WIRE_FORMAT_WEBP) && r->quality >= 1 &&
	    r->quality <= 100)) && r->dpi <= 65535;
}

int
finish_rendition(const struct image *img, const struct wire_rendition *r,
    uint8_t **out, size_t *len, char *err, size_t errlen)
{
	struct image c = *img;
	uint32_t w = r->width, h = r->height;
	int rc;

	c.pixels = xmalloc((size_t)img->width * img->height * img->channels);
	memcpy(c.pixels, img->pixels, (size_t)img->width * img->height *
	    img->channels);
	if (h == 0) {
		/* the longest side at most w, never enlarged */
		uint32_t side = c.width > c.height ? c.width : c.height;

		if (side > w) {
			double s = (double)w / side;
			uint32_t nw = (uint32_t)lround(c.width * s);
			uint32_t nh = (uint32_t)lround(c.height * s);

			image_resize(&c, nw ? nw : 1, nh ? nh : 1);
		}
	} else {
		char ratio[32];

		/* a print size fits the result's orientation */
		if ((w > h) != (c.width > c.height) && w != h &&
		    c.width != c.height) {
			uint32_t t = w;

			w = h;
			h = t;
		}
		snprintf(ratio, sizeof(ratio), "%u:%u", w, h);
		if (image_crop_aspect(&c, ratio, err, errlen) < 0 ||
		    image_resize(&c, w, h) < 0) {
			image_free(&c);
			if (*err == '\0')
				snprintf(err, errlen, "cannot make %ux%u", w,
				    h);
			return -1;
		}
	}
	if (r->format == WIRE_FORMAT_JPEG)
		rc = image_encode_jpeg(&c, (int)r->quality, r->dpi, out, len,
		    err, errlen);
	else if (r->format == WIRE_FORMAT_WEBP)
		rc = image_encode_webp(&c, (int)r->quality, out, len, err,
		    errlen);
	else
		rc = image_encode_png_dpi(&c, r->dpi, out, len, err, errlen);
	image_free(&c);
	return rc < 0 ? -1 : 0;
}
