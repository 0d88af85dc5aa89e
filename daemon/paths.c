/*
 * paths.c - validation of storage paths taken from session documents.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "paths.h"

int
path_check_relative(const char *s, char *err, size_t errlen)
{
	size_t len = strlen(s);
	const char *p, *comp;

	if (len == 0) {
		snprintf(err, errlen, "path is empty");
		return -EINVAL;
	}
	if (len > PATH_MAX_LEN) {
		snprintf(err, errlen, "path is too long (%zu bytes)", len);
		return -EINVAL;
	}
	if (s[0] == '/') {
		snprintf(err, errlen, "path is absolute");
		return -EINVAL;
	}
	for (p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c < 0x20 || c == 0x7f) {
			snprintf(err, errlen, "path contains a control character");
			return -EINVAL;
		}
		if (c == '\\' || c == '%') {
			snprintf(err, errlen, "path contains '%c'", c);
			return -EINVAL;
		}
	}
	for (comp = s; ; comp = p + 1) {
		size_t n;

		p = strchr(comp, '/');
		n = p ? (size_t)(p - comp) : strlen(comp);
		if (n == 0) {
			snprintf(err, errlen, "path has an empty component");
			return -EINVAL;
		}
		if ((n == 1 && comp[0] == '.') ||
		    (n == 2 && comp[0] == '.' && comp[1] == '.')) {
			snprintf(err, errlen, "path has a '%.*s' component",
			    (int)n, comp);
			return -EINVAL;
		}
		if (p == NULL)
			break;
	}
	return 0;
}

int
path_check_input(const char *path, const char *event_id,
    const char *session_id, char *err, size_t errlen)
{
	char prefix[PATH_MAX_LEN + 64];
	char why[128];
	int n;

	if (path_check_relative(path, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "input image path refused: %s", why);
		return -EINVAL;
	}
	n = snprintf(prefix, sizeof(prefix), "captures/%s/%s/", event_id,
	    session_id);
	if (n < 0 || (size_t)n >= sizeof(prefix) ||
	    strncmp(path, prefix, (size_t)n) != 0 || path[n] == '\0') {
		snprintf(err, errlen, "input image path refused: not under "
		    "captures/%.100s/%.100s/", event_id, session_id);
		return -EINVAL;
	}
	return 0;
}

int
path_check_reference(const char *path, char *const *prefixes,
    size_t n_prefixes, char *err, size_t errlen)
{
	char why[128];
	size_t i;

	if (path_check_relative(path, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s", why);
		return -EINVAL;
	}
	if (strncmp(path, "captures/", 9) == 0 ||
	    strncmp(path, "results/", 8) == 0) {
		snprintf(err, errlen, "is a guest's capture or result");
		return -EINVAL;
	}
	for (i = 0; i < n_prefixes; i++) {
		size_t n = strlen(prefixes[i]);

		if (strncmp(path, prefixes[i], n) == 0 && path[n] != '\0')
			return 0;
	}
	snprintf(err, errlen, "is not under %s%s", n_prefixes > 0 ?
	    prefixes[0] : "any reference prefix", n_prefixes > 1 ?
	    " or the other reference prefixes" : "");
	return -EINVAL;
}

char *
path_result(const char *event_id, const char *session_id)
{
	return xasprintf("results/%s/%s/result.png", event_id, session_id);
}

char *
path_rendition(const char *event_id, const char *session_id,
    const char *name, const char *ext)
{
	return xasprintf("results/%s/%s/%s.%s", event_id, session_id, name,
	    ext);
}
