/*
 * rendition.c - renditions as configured, and their formats' names
 * (pool.h): shared by firesyncd's settings and firesync-transform.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"
#include "text.h"

const char *
pool_rendition_parse(const char *spec, struct pool_rendition *r, char *buf,
    size_t len)
{
	char copy[64], *name, *size, *format, *dpi, *end;
	unsigned long w, h = 0, d = 0;

	memset(r, 0, sizeof(*r));
	if (strlen(spec) >= sizeof(copy))
		goto bad;
	memcpy(copy, spec, strlen(spec) + 1);
	name = copy;
	dpi = strchr(copy, '@');
	if (dpi)
		*dpi++ = '\0';
	size = strchr(copy, ':');
	if (size == NULL)
		goto bad;
	*size++ = '\0';
	format = strchr(size, ':');
	if (format)
		*format++ = '\0';
	if (*name == '\0' || strlen(name) >= sizeof(r->name) ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") !=
	    strlen(name) || strcmp(name, "result") == 0) {
		text_format(buf, len, "'%.64s': a rendition's name is "
		    "[a-z0-9_-], under 32 characters, not 'result'", spec);
		return buf;
	}
	errno = 0;
	w = strtoul(size, &end, 10);
	if (*end == 'x')
		h = strtoul(end + 1, &end, 10);
	if (errno || *end != '\0' || w == 0 || w > 10000 || h > 10000 ||
	    (end[-1] == 'x') || (strchr(size, 'x') && h == 0))
		goto bad;
	if (dpi) {
		d = strtoul(dpi, &end, 10);
		if (d == 0 || d > 10000 || (*end && strcmp(end, "dpi") != 0))
			goto bad;
	}
	memcpy(r->name, name, strlen(name) + 1);
	r->width = (uint32_t)w;
	r->height = (uint32_t)h;
	r->dpi = (uint32_t)d;
	r->quality = 88;
	if (format == NULL || strcmp(format, "jpeg") == 0 ||
	    strcmp(format, "jpg") == 0)
		r->format = POOL_FORMAT_JPEG;
	else if (strcmp(format, "png") == 0)
		r->format = POOL_FORMAT_PNG;
	else if (strcmp(format, "webp") == 0)
		r->format = POOL_FORMAT_WEBP;
	else
		goto bad;
	if (r->format == POOL_FORMAT_WEBP && d != 0) {
		text_format(buf, len, "'%.64s': WebP has no resolution to "
		    "write; give @DPI to jpeg or png", spec);
		return buf;
	}
	return NULL;
bad:
	text_format(buf, len, "'%.64s': give NAME:SIZE[:jpeg|png|webp][@DPI], "
	    "SIZE "
	    "the longest side (480) or WxH (1200x1800), up to 10000", spec);
	return buf;
}

const char *
pool_format_ext(enum pool_format f)
{
	return f == POOL_FORMAT_PNG ? "png" : f == POOL_FORMAT_WEBP ? "webp" :
	    "jpg";
}

const char *
pool_format_type(enum pool_format f)
{
	return f == POOL_FORMAT_PNG ? "image/png" : f == POOL_FORMAT_WEBP ?
	    "image/webp" : "image/jpeg";
}

