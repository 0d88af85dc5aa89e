/*
 * text.c - UTF-8 validation and cleaning (text.h).
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "text.h"

static const char replacement[] = "\xEF\xBF\xBD";	/* U+FFFD */

/*
 * Length of the valid UTF-8 sequence at s (1-4) and its code point in *cp,
 * or 0 if s does not start one (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF).
 */
static size_t
sequence(const unsigned char *s, uint32_t *cp)
{
	uint32_t c = s[0], min;
	size_t n;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2;
		c &= 0x1F;
		min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		c &= 0x0F;
		min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		c &= 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3F);
	}
	if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		return 0;
	*cp = c;
	return n;
}

static int
is_control(uint32_t cp)
{
	return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F);
}

char *
text_clean(const char *in, size_t max_bytes, char *out, size_t outlen)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t o = 0, cap = outlen - 1;

	if (max_bytes < cap)
		cap = max_bytes;
	while (*s) {
		uint32_t cp;
		size_t n = sequence(s, &cp);
		const char *put = (const char *)s;
		size_t len = n;

		if (n == 0) {
			put = replacement;
			len = 3;
			n = 1;
		} else if (is_control(cp)) {
			put = " ";
			len = 1;
		}
		if (o + len > cap)
			break;
		memcpy(out + o, put, len);
		o += len;
		s += n;
	}
	out[o] = '\0';
	return out;
}

int
text_is_clean(const char *in)
{
	const unsigned char *s = (const unsigned char *)in;

	while (*s) {
		uint32_t cp;
		size_t n = sequence(s, &cp);

		if (n == 0 || is_control(cp))
			return 0;
		s += n;
	}
	return 1;
}
