/*
 * log.h - levelled logging for firesyncd.
 *
 * Levels are syslog priorities.  Under systemd (JOURNAL_STREAM set) each
 * line starts with "<N>" so journald keeps the priority; otherwise each line
 * starts with an ISO-8601 UTC timestamp and the level name.  The level check
 * happens before any formatting, so a disabled debug line costs one compare.
 */
#ifndef FIRESYNC_LOG_H
#define FIRESYNC_LOG_H

#include <stdarg.h>
#include <stdatomic.h>
#include <syslog.h>

/* Lines above this priority are dropped.  Atomic: a reload sets it while
 * other threads log. */
extern atomic_int log_level;

/* Decide the output format from the environment; call once at start-up. */
void log_init(void);
/* One JSON object per line ({"time","level","priority","msg"}) for log
 * shippers, instead of text. */
void log_set_json(int on);
/* Parse "error|warning|notice|info|debug" into a priority; -1 if unknown. */
int log_level_parse(const char *name);
const char *log_level_name(int prio);

void log_write(int prio, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_vwrite(int prio, const char *fmt, va_list ap);

#define log_at(prio, ...) \
	do { if ((prio) <= log_level) log_write((prio), __VA_ARGS__); } while (0)
#define log_err(...)	log_at(LOG_ERR, __VA_ARGS__)
#define log_warn(...)	log_at(LOG_WARNING, __VA_ARGS__)
#define log_notice(...)	log_at(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)	log_at(LOG_INFO, __VA_ARGS__)
#define log_debug(...)	log_at(LOG_DEBUG, __VA_ARGS__)

/* Log at LOG_CRIT and exit(1): out of memory and broken invariants only. */
void fatal(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

#endif
