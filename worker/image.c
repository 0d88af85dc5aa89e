/*
 * image.c - JPEG/PNG decode and PNG encode, all bounds-checked.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>
#include <webp/encode.h>
#include <zlib.h>

#include "alloc.h"
#include "image.h"
#include "log.h"

/* PNG output tuning, chosen by measurement on 8 MP results (see
 * BENCHMARKS.md): zlib level 1 with the run-length strategy and the Up
 * filter encodes 30% faster than level 2 + Sub and is smaller too. */
#define PNG_ZLIB_LEVEL		1
#define PNG_ZLIB_STRATEGY	Z_RLE
#define PNG_FILTERS		PNG_FILTER_UP

enum image_format
image_sniff(const uint8_t *data, size_t len)
{
	static const uint8_t png_sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n',
	    0x1a, '\n' };

	if (len >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff)
		return IMAGE_JPEG;
	if (len >= 8 && memcmp(data, png_sig, 8) == 0)
		return IMAGE_PNG;
	return IMAGE_UNKNOWN;
}

void
image_free(struct image *img)
{
	if (img == NULL)
		return;
	free(img->pixels);
	img->pixels = NULL;
}

/* ---- EXIF ---- */

static uint32_t
rd16(const uint8_t *p, bool le)
{
	return le ? (uint32_t)(p[0] | p[1] << 8) : (uint32_t)(p[0] << 8 | p[1]);
}

static uint32_t
rd32(const uint8_t *p, bool le)
{
	return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 |
	    (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24 :
	    (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Orientation from a TIFF block (the APP1 payload after "Exif\0\0"). */
static int
tiff_orientation(const uint8_t *t, size_t n)
{
	bool le;
	uint32_t ifd, count;

	if (n < 8)
		return 1;
	if (t[0] == 'I' && t[1] == 'I')
		le = true;
	else if (t[0] == 'M' && t[1] == 'M')
		le = false;
	else
		return 1;
	if (rd16(t + 2, le) != 42)
		return 1;
	ifd = rd32(t + 4, le);
	if (ifd > n - 2 || ifd < 8)
		return 1;
	count = rd16(t + ifd, le);
	for (uint32_t i = 0; i < count; i++) {
		size_t off = (size_t)ifd + 2 + (size_t)i * 12;

		if (off + 12 > n)
			return 1;
		if (rd16(t + off, le) == 0x0112 && rd16(t + off + 2, le) == 3) {
			uint32_t o = rd16(t + off + 8, le);

			return o >= 1 && o <= 8 ? (int)o : 1;
		}
	}
	return 1;
}

int
image_jpeg_orientation(const uint8_t *d, size_t len)
{
	size_t i = 2;

	if (image_sniff(d, len) != IMAGE_JPEG)
		return 1;
	/* Walk the marker segments up to start-of-scan. */
	while (i + 4 <= len) {
		uint8_t marker;
		size_t seglen;

		if (d[i] != 0xff)
			return 1;
		marker = d[i + 1];
		if (marker == 0xff) {	/* fill byte */
			i++;
			continue;
		}
		if (marker == 0xda || marker == 0xd9)
			return 1;
		seglen = (size_t)d[i + 2] << 8 | d[i + 3];
		if (seglen < 2 || i + 2 + seglen > len)
			return 1;
		if (marker == 0xe1 && seglen >= 8 &&
		    memcmp(d + i + 4, "Exif\0\0", 6) == 0)
			return tiff_orientation(d + i + 10, seglen - 8);
		i += 2 + seglen;
	}
	return 1;
}

void
image_orient(struct image *img, int o)
{
	uint32_t w = img->width, h = img->height, c = img->channels;
	uint32_t dw = o >= 5 ? h : w, dh = o >= 5 ? w : h;
	uint8_t *dst;

	if (o < 2 || o > 8)
		return;
	dst = xmalloc((size_t)w * h * c);
	for (uint32_t sy = 0; sy < h; sy++) {
		const uint8_t *srow = img->pixels + (size_t)sy * w * c;

		for (uint32_t sx = 0; sx < w; sx++) {
			uint32_t dx, dy;

			switch (o) {
			case 2: dx = w - 1 - sx; dy = sy; break;
			case 3: dx = w - 1 - sx; dy = h - 1 - sy; break;
			case 4: dx = sx; dy = h - 1 - sy; break;
			case 5: dx = sy; dy = sx; break;
			case 6: dx = h - 1 - sy; dy = sx; break;
			case 7: dx = h - 1 - sy; dy = w - 1 - sx; break;
			default: dx = sy; dy = w - 1 - sx; break;	/* 8 */
			}
			memcpy(dst + ((size_t)dy * dw + dx) * c,
			    srow + (size_t)sx * c, c);
		}
	}
	free(img->pixels);
	img->pixels = dst;
	img->width = dw;
	img->height = dh;
}

/* ---- JPEG ---- */

struct jpeg_err {
	struct jpeg_error_mgr mgr;
	jmp_buf jb;
	bool warned;
	char msg[JMSG_LENGTH_MAX];
};

static void
jpeg_on_error(j_common_ptr cinfo)
{
	struct jpeg_err *je = (struct jpeg_err *)cinfo->err;

	(*cinfo->err->format_message)(cinfo, je->msg);
	longjmp(je->jb, 1);
}

static void
jpeg_on_message(j_common_ptr cinfo, int level)
{
	struct jpeg_err *je = (struct jpeg_err *)cinfo->err;

	/* level -1 is a warning: corrupt or truncated data that libjpeg
	 * would paper over with grey.  We refuse such images. */
	if (level < 0 && !je->warned) {
		je->warned = true;
		(*cinfo->err->format_message)(cinfo, je->msg);
	}
}

static int
decode_jpeg(const uint8_t *data, size_t len, uint64_t max_pixels,
    struct image *out, char *err, size_t errlen)
{
	struct jpeg_decompress_struct cinfo;
	struct jpeg_err je;
	uint8_t *volatile pixels = NULL;
	uint8_t *volatile cmyk_row = NULL;
	bool cmyk;
	volatile int rc = -EINVAL;

	memset(&je, 0, sizeof(je));
	cinfo.err = jpeg_std_error(&je.mgr);
	je.mgr.error_exit = jpeg_on_error;
	je.mgr.emit_message = jpeg_on_message;
	if (setjmp(je.jb)) {
		snprintf(err, errlen, "input image is not a valid JPEG/PNG "
		    "(JPEG: %s)", je.msg);
		goto out;
	}
	jpeg_create_decompress(&cinfo);
	jpeg_mem_src(&cinfo, data, (unsigned long)len);
	jpeg_read_header(&cinfo, TRUE);
	if ((uint64_t)cinfo.image_width * cinfo.image_height > max_pixels) {
		snprintf(err, errlen, "input image is too large (%ux%u, "
		    "limit %.1f MP)", cinfo.image_width, cinfo.image_height,
		    (double)max_pixels / 1e6);
		rc = -E2BIG;
		goto out;
	}
	if (cinfo.image_width == 0 || cinfo.image_height == 0) {
		snprintf(err, errlen, "input image is empty");
		goto out;
	}
	cmyk = cinfo.jpeg_color_space == JCS_CMYK ||
	    cinfo.jpeg_color_space == JCS_YCCK;
	cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
	jpeg_start_decompress(&cinfo);
	pixels = xmalloc((size_t)cinfo.output_width * cinfo.output_height * 3);
	if (cmyk)
		cmyk_row = xmalloc((size_t)cinfo.output_width * 4);
	while (cinfo.output_scanline < cinfo.output_height) {
		uint8_t *row = pixels + (size_t)cinfo.output_scanline *
		    cinfo.output_width * 3;
		JSAMPROW rp = cmyk ? cmyk_row : row;

		jpeg_read_scanlines(&cinfo, &rp, 1);
		if (!cmyk)
			continue;
		/* Adobe CMYK JPEGs store inverted values: 255 = no ink. */
		for (size_t x = 0; x < cinfo.output_width; x++) {
			unsigned k = cmyk_row[x * 4 + 3];

			for (int ch = 0; ch < 3; ch++)
				row[x * 3 + ch] = (uint8_t)(
				    (cmyk_row[x * 4 + ch] * k + 127) / 255);
		}
	}
	jpeg_finish_decompress(&cinfo);
	if (je.warned) {
		snprintf(err, errlen, "input image is not a valid JPEG/PNG "
		    "(JPEG is corrupt or truncated: %s)", je.msg);
		goto out;
	}
	out->width = cinfo.output_width;
	out->height = cinfo.output_height;
	out->channels = 3;
	out->pixels = pixels;
	pixels = NULL;
	rc = 0;
out:
	jpeg_destroy_decompress(&cinfo);
	free(pixels);
	free(cmyk_row);
	if (rc == 0)
		image_orient(out, image_jpeg_orientation(data, len));
	return rc;
}

/* ---- PNG ---- */

static int
decode_png(const uint8_t *data, size_t len, uint64_t max_pixels,
    struct image *out, char *err, size_t errlen)
{
	png_image pi;
	uint8_t *pixels;
	bool alpha;

	memset(&pi, 0, sizeof(pi));
	pi.version = PNG_IMAGE_VERSION;
	if (!png_image_begin_read_from_memory(&pi, data, len)) {
		snprintf(err, errlen, "input image is not a valid JPEG/PNG "
		    "(PNG: %s)", pi.message);
		png_image_free(&pi);
		return -EINVAL;
	}
	if ((uint64_t)pi.width * pi.height > max_pixels) {
		snprintf(err, errlen, "input image is too large (%ux%u, "
		    "limit %.1f MP)", pi.width, pi.height,
		    (double)max_pixels / 1e6);
		png_image_free(&pi);
		return -E2BIG;
	}
	alpha = (pi.format & PNG_FORMAT_FLAG_ALPHA) != 0;
	pi.format = alpha ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB;
	pixels = xmalloc(PNG_IMAGE_SIZE(pi));
	if (!png_image_finish_read(&pi, NULL, pixels, 0, NULL)) {
		snprintf(err, errlen, "input image is not a valid JPEG/PNG "
		    "(PNG: %s)", pi.message);
		free(pixels);
		png_image_free(&pi);
		return -EINVAL;
	}
	out->width = pi.width;
	out->height = pi.height;
	out->channels = alpha ? 4 : 3;
	out->pixels = pixels;
	png_image_free(&pi);
	return 0;
}

int
image_decode(const uint8_t *data, size_t len, uint64_t max_pixels,
    struct image *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	switch (image_sniff(data, len)) {
	case IMAGE_JPEG:
		return decode_jpeg(data, len, max_pixels, out, err, errlen);
	case IMAGE_PNG:
		return decode_png(data, len, max_pixels, out, err, errlen);
	default:
		snprintf(err, errlen, "input image is not a valid JPEG/PNG");
		return -EINVAL;
	}
}

/* ---- aspect ratio ---- */

static uint32_t
gcd32(uint32_t a, uint32_t b)
{
	while (b) {
		uint32_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

int
image_crop_aspect(struct image *img, const char *ratio, char *err,
    size_t errlen)
{
	unsigned long rw, rh;
	uint32_t g, uw, uh, k, nw, nh, x0, y0, c = img->channels;
	char *end;
	uint8_t *dst;

	if (ratio == NULL || *ratio == '\0')
		return 0;
	rw = strtoul(ratio, &end, 10);
	if (end == ratio || *end != ':' || rw == 0 || rw > 10000)
		goto bad;
	rh = strtoul(end + 1, &end, 10);
	if (*end != '\0' || rh == 0 || rh > 10000)
		goto bad;
	g = gcd32((uint32_t)rw, (uint32_t)rh);
	uw = (uint32_t)rw / g;
	uh = (uint32_t)rh / g;
	k = img->width / uw < img->height / uh ? img->width / uw :
	    img->height / uh;
	if (k == 0) {
		snprintf(err, errlen, "the photo (%ux%u) is too small for "
		    "aspect ratio %s", img->width, img->height, ratio);
		return -EINVAL;
	}
	nw = k * uw;
	nh = k * uh;
	if (nw == img->width && nh == img->height)
		return 0;
	x0 = (img->width - nw) / 2;
	y0 = (img->height - nh) / 2;
	dst = xmalloc((size_t)nw * nh * c);
	for (uint32_t y = 0; y < nh; y++)
		memcpy(dst + (size_t)y * nw * c, img->pixels +
		    ((size_t)(y0 + y) * img->width + x0) * c, (size_t)nw * c);
	free(img->pixels);
	img->pixels = dst;
	img->width = nw;
	img->height = nh;
	return 0;
bad:
	snprintf(err, errlen, "aspect ratio '%.20s' is not W:H", ratio);
	return -EINVAL;
}

/* ---- resampling ---- */

/* One axis of a box (area) filter: for destination cell i, the source
 * span [a, b) in fixed point, 1/256 pixel. */
static void
area_span(uint32_t i, uint32_t src, uint32_t dst, uint64_t *a, uint64_t *b)
{
	*a = (uint64_t)i * src * 256 / dst;
	*b = (uint64_t)(i + 1) * src * 256 / dst;
}

static void
shrink(const struct image *in, uint8_t *out, uint32_t w, uint32_t h)
{
	uint32_t c = in->channels;

	for (uint32_t y = 0; y < h; y++) {
		uint64_t y0, y1;

		area_span(y, in->height, h, &y0, &y1);
		for (uint32_t x = 0; x < w; x++) {
			uint64_t x0, x1, sum[4] = { 0, 0, 0, 0 }, wsum = 0;

			area_span(x, in->width, w, &x0, &x1);
			for (uint64_t sy = y0 >> 8; sy < (y1 + 255) >> 8 &&
			    sy < in->height; sy++) {
				uint64_t top = sy << 8 > y0 ? sy << 8 : y0;
				uint64_t bot = (sy + 1) << 8 < y1 ? (sy + 1) << 8 : y1;
				const uint8_t *row = in->pixels +
				    (size_t)sy * in->width * c;

				for (uint64_t sx = x0 >> 8; sx < (x1 + 255) >> 8 &&
				    sx < in->width; sx++) {
					uint64_t l = sx << 8 > x0 ? sx << 8 : x0;
					uint64_t r = (sx + 1) << 8 < x1 ?
					    (sx + 1) << 8 : x1;
					uint64_t wt = (bot - top) * (r - l);

					for (uint32_t k = 0; k < c; k++)
						sum[k] += wt * row[sx * c + k];
					wsum += wt;
				}
			}
			for (uint32_t k = 0; k < c; k++)
				out[((size_t)y * w + x) * c + k] = (uint8_t)(
				    (sum[k] + wsum / 2) / (wsum ? wsum : 1));
		}
	}
}

static void
grow(const struct image *in, uint8_t *out, uint32_t w, uint32_t h)
{
	uint32_t c = in->channels;

	for (uint32_t y = 0; y < h; y++) {
		double fy = ((double)y + 0.5) * in->height / h - 0.5;
		uint32_t y0 = fy < 0 ? 0 : (uint32_t)fy;
		uint32_t y1 = y0 + 1 < in->height ? y0 + 1 : y0;
		double ty = fy < 0 ? 0 : fy - y0;

		for (uint32_t x = 0; x < w; x++) {
			double fx = ((double)x + 0.5) * in->width / w - 0.5;
			uint32_t x0 = fx < 0 ? 0 : (uint32_t)fx;
			uint32_t x1 = x0 + 1 < in->width ? x0 + 1 : x0;
			double tx = fx < 0 ? 0 : fx - x0;

			for (uint32_t k = 0; k < c; k++) {
#define P(xx, yy) in->pixels[((size_t)(yy) * in->width + (xx)) * c + k]
				double v = (P(x0, y0) * (1 - tx) + P(x1, y0) * tx) *
				    (1 - ty) + (P(x0, y1) * (1 - tx) +
				    P(x1, y1) * tx) * ty;
#undef P
				out[((size_t)y * w + x) * c + k] =
				    (uint8_t)(v + 0.5);
			}
		}
	}
}

int
image_resize(struct image *img, uint32_t w, uint32_t h)
{
	uint8_t *out;

	if (w == 0 || h == 0 || w > 65535 || h > 65535 ||
	    img->width == 0 || img->height == 0)
		return -EINVAL;
	if (w == img->width && h == img->height)
		return 0;
	out = xmalloc((size_t)w * h * img->channels);
	if (w <= img->width && h <= img->height)
		shrink(img, out, w, h);
	else
		grow(img, out, w, h);
	free(img->pixels);
	img->pixels = out;
	img->width = w;
	img->height = h;
	return 0;
}

int
image_fit(struct image *img, uint64_t max_pixels)
{
	uint64_t have = (uint64_t)img->width * img->height;
	double scale;
	uint32_t w, h;

	if (have <= max_pixels)
		return 0;
	scale = sqrt((double)max_pixels / (double)have);
	w = (uint32_t)(img->width * scale);
	h = (uint32_t)(img->height * scale);
	return image_resize(img, w ? w : 1, h ? h : 1);
}

/* ---- PNG encode ---- */

struct membuf {
	uint8_t *data;
	size_t len, cap;
};

static void
png_write_mem(png_structp png, png_bytep p, png_size_t n)
{
	struct membuf *b = png_get_io_ptr(png);

	if (b->len + n > b->cap) {
		while (b->len + n > b->cap)
			b->cap = b->cap ? b->cap * 2 : 65536;
		b->data = xrealloc(b->data, b->cap);
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static void
png_flush_mem(png_structp png)
{
}

int
image_encode_png(const struct image *img, uint8_t **out, size_t *outlen,
    char *err, size_t errlen)
{
	return image_encode_png_dpi(img, 0, out, outlen, err, errlen);
}

int
image_encode_png_dpi(const struct image *img, uint32_t dpi, uint8_t **out,
    size_t *outlen, char *err, size_t errlen)
{
	png_structp png;
	png_infop info;
	struct membuf b = { 0 };

	png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	if (png == NULL)
		fatal("png_create_write_struct failed");
	info = png_create_info_struct(png);
	if (info == NULL)
		fatal("png_create_info_struct failed");
	if (setjmp(png_jmpbuf(png))) {
		png_destroy_write_struct(&png, &info);
		free(b.data);
		snprintf(err, errlen, "PNG encoding failed");
		return -EIO;
	}
	png_set_write_fn(png, &b, png_write_mem, png_flush_mem);
	png_set_IHDR(png, info, img->width, img->height, 8,
	    img->channels == 4 ? PNG_COLOR_TYPE_RGBA : PNG_COLOR_TYPE_RGB,
	    PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
	    PNG_FILTER_TYPE_DEFAULT);
	png_set_compression_level(png, PNG_ZLIB_LEVEL);
	png_set_compression_strategy(png, PNG_ZLIB_STRATEGY);
	png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTERS);
	if (dpi > 0)			/* pHYs: pixels per metre */
		png_set_pHYs(png, info, (png_uint_32)lround(dpi / 0.0254),
		    (png_uint_32)lround(dpi / 0.0254), PNG_RESOLUTION_METER);
	png_write_info(png, info);
	for (uint32_t y = 0; y < img->height; y++)
		png_write_row(png, img->pixels +
		    (size_t)y * img->width * img->channels);
	png_write_end(png, info);
	png_destroy_write_struct(&png, &info);
	*out = b.data;
	*outlen = b.len;
	return 0;
}

/* ---- JPEG encode ---- */

int
image_encode_jpeg(const struct image *img, int quality, uint32_t dpi,
    uint8_t **out, size_t *outlen, char *err, size_t errlen)
{
	struct jpeg_compress_struct c;
	struct jpeg_err je;
	unsigned char *data = NULL, *row;
	unsigned long len = 0;

	if (img->width == 0 || img->height == 0 || img->width > 65500 ||
	    img->height > 65500) {
		snprintf(err, errlen, "JPEG encoding failed: %ux%u is out of "
		    "range", img->width, img->height);
		return -EIO;
	}
	row = xmalloc((size_t)img->width * 3);
	c.err = jpeg_std_error(&je.mgr);
	je.mgr.error_exit = jpeg_on_error;
	if (setjmp(je.jb)) {
		/* out of memory within the worker's limit */
		jpeg_destroy_compress(&c);
		free(row);
		free(data);
		snprintf(err, errlen, "JPEG encoding failed");
		return -EIO;
	}
	jpeg_create_compress(&c);
	jpeg_mem_dest(&c, &data, &len);
	c.image_width = img->width;
	c.image_height = img->height;
	c.input_components = 3;
	c.in_color_space = JCS_RGB;
	jpeg_set_defaults(&c);
	jpeg_set_quality(&c, quality, TRUE);
	c.optimize_coding = TRUE;
	if (dpi > 0 && dpi <= 65535) {
		c.write_JFIF_header = TRUE;
		c.density_unit = 1;		/* dots per inch */
		c.X_density = (UINT16)dpi;
		c.Y_density = (UINT16)dpi;
	}
	jpeg_start_compress(&c, TRUE);
	for (uint32_t y = 0; y < img->height; y++) {
		const uint8_t *p = img->pixels + (size_t)y * img->width *
		    img->channels;

		if (img->channels == 3) {
			memcpy(row, p, (size_t)img->width * 3);
		} else {
			/* alpha, if any, over white */
			for (uint32_t x = 0; x < img->width; x++, p += 4)
				for (int k = 0; k < 3; k++)
					row[(size_t)x * 3 + (size_t)k] =
					    (uint8_t)((p[k] * p[3] + 255u *
					    (255u - p[3]) + 127u) / 255u);
		}
		jpeg_write_scanlines(&c, &row, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	free(row);
	/* libjpeg's buffer is malloc'd: ours to free */
	*out = data;
	*outlen = len;
	return 0;
}

/* ---- WebP encode ---- */

int
image_encode_webp(const struct image *img, int quality, uint8_t **out,
    size_t *outlen, char *err, size_t errlen)
{
	uint8_t *data = NULL;
	size_t len;

	if (img->width == 0 || img->height == 0 ||
	    img->width > WEBP_MAX_DIMENSION ||
	    img->height > WEBP_MAX_DIMENSION) {
		snprintf(err, errlen, "WebP encoding failed: %ux%u is out of "
		    "range", img->width, img->height);
		return -EIO;
	}
	len = img->channels == 4 ? WebPEncodeRGBA(img->pixels, (int)img->width,
	    (int)img->height, (int)(img->width * 4), (float)quality, &data) :
	    WebPEncodeRGB(img->pixels, (int)img->width, (int)img->height,
	    (int)(img->width * 3), (float)quality, &data);
	if (len == 0 || data == NULL) {
		WebPFree(data);
		snprintf(err, errlen, "WebP encoding failed");
		return -EIO;
	}
	/* ours to free with free() */
	*out = xmalloc(len);
	memcpy(*out, data, len);
	*outlen = len;
	WebPFree(data);
	return 0;
}
