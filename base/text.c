/*
 * text.c - UTF-8 validation and cleaning (text.h).
 */
#include "config.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
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

/* Where to cut s (n bytes) so that no character is split: n, or less
 * when the bytes before n end inside a multi-byte character. */
static size_t
boundary(const char *s, size_t n)
{
	size_t k = n;

	/* back over continuation bytes to the lead byte of the last one */
	while (k > 0 && n - k < 3 && ((unsigned char)s[k - 1] & 0xC0) == 0x80)
		k--;
	if (k > 0 && (unsigned char)s[k - 1] >= 0xC0) {
		unsigned char c = (unsigned char)s[k - 1];
		size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;

		if (n - (k - 1) < need)
			return k - 1;	/* a lead byte without all its tail */
	}
	return n;
}

const char *
text_name(const char *in, size_t max_bytes, char *out, size_t outlen)
{
	size_t n = strlen(in);

	if (max_bytes >= outlen)
		max_bytes = outlen - 1;
	if (n <= max_bytes) {
		memcpy(out, in, n + 1);
		return out;
	}
	n = max_bytes > 3 ? boundary(in, max_bytes - 3) : 0;
	memcpy(out, in, n);
	if (max_bytes > 3)
		memcpy(out + n, "\xE2\x80\xA6", 4);	/* "…" and the NUL */
	else
		out[n] = '\0';
	return out;
}

char *
text_vformat(char *buf, size_t len, const char *fmt, va_list ap)
{
	int n = vsnprintf(buf, len, fmt, ap);

	if (n >= 0 && (size_t)n >= len && len > 0)
		buf[boundary(buf, len - 1)] = '\0';
	return buf;
}

char *
text_format(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	text_vformat(buf, len, fmt, ap);
	va_end(ap);
	return buf;
}
