/*
 * log.c - levelled logging to stderr, journald-aware.
 *
 * One line per call, written with a single write(2) so that lines from
 * several threads never interleave.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "text.h"

atomic_int log_level = LOG_INFO;
static int log_journal;
static atomic_int log_json;	/* a reload sets it while others log */

void
log_set_json(int on)
{
	log_json = on;
}

/* Append s to buf as JSON string content; returns the new offset. */
static size_t
json_escape(char *buf, size_t off, size_t cap, const char *s)
{
	for (; *s && off + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			buf[off++] = '\\';
			buf[off++] = (char)c;
		} else if (c < 0x20) {
			off += (size_t)snprintf(buf + off, cap - off, "\\u%04x",
			    c);
		} else {
			buf[off++] = (char)c;
		}
	}
	return off;
}

static const char *const level_names[] = {
	"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
};

void
log_init(void)
{
	const char *js = getenv("JOURNAL_STREAM");

	log_journal = js != NULL && *js != '\0';
}

int
log_level_parse(const char *name)
{
	for (int i = 0; i < 8; i++)
		if (strcasecmp(name, level_names[i]) == 0)
			return i;
	if (strcasecmp(name, "err") == 0)
		return LOG_ERR;
	if (strcasecmp(name, "warn") == 0)
		return LOG_WARNING;
	return -1;
}

const char *
log_level_name(int prio)
{
	return prio >= 0 && prio < 8 ? level_names[prio] : "?";
}

void
log_vwrite(int prio, const char *fmt, va_list ap)
{
	char line[4096];
	size_t off = 0;
	int n;

	if (log_json) {
		char raw[3000], msg[3000];
		struct timespec ts;
		struct tm tm;

		/* valid UTF-8 for JSON parsers; controls become spaces */
		vsnprintf(raw, sizeof(raw), fmt, ap);
		text_clean(raw, sizeof(msg) - 1, msg, sizeof(msg));
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		/* pure JSON, even under journald: shippers parse whole
		 * lines, and "priority" carries the level */
		n = snprintf(line, sizeof(line), "{\"time\":\"%04d-%02d-%02dT"
		    "%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",\"priority\":%d,"
		    "\"msg\":\"", tm.tm_year + 1900,
		    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		    ts.tv_nsec / 1000000, log_level_name(prio), prio);
		off = json_escape(line, (size_t)n, sizeof(line) - 4, msg);
		line[off++] = '"';
		line[off++] = '}';
		line[off++] = '\n';
		(void)!write(STDERR_FILENO, line, off);
		return;
	}
	if (log_journal) {
		n = snprintf(line, sizeof(line), "<%d>", prio);
	} else {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = snprintf(line, sizeof(line),
		    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-7s ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
		    log_level_name(prio));
	}
	off = n > 0 ? (size_t)n : 0;
	{
		char raw[sizeof(line)];

		/* one record per line, valid UTF-8: foreign text (plugins,
		 * documents, servers) cannot forge lines or break readers */
		vsnprintf(raw, sizeof(raw), fmt, ap);
		text_clean(raw, sizeof(line) - off - 2, line + off,
		    sizeof(line) - off);
		off += strlen(line + off);
	}
	line[off++] = '\n';
	(void)!write(STDERR_FILENO, line, off);
}

void
log_write(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(prio, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_CRIT, fmt, ap);
	va_end(ap);
	exit(1);
}
