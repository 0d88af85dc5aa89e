/*
 * notify.h - the systemd notification protocol (sd_notify(3)), spoken
 * directly: datagrams to $NOTIFY_SOCKET.  Without NOTIFY_SOCKET every call
 * is a no-op, so firesyncd behaves the same outside systemd.
 */
#ifndef FIRESYNC_NOTIFY_H
#define FIRESYNC_NOTIFY_H

#include <stdint.h>

/* Read NOTIFY_SOCKET and WATCHDOG_USEC; call once at start-up. */
void notify_init(void);
/* Send one notification ("READY=1", "STATUS=...", ...). */
void notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Ping the watchdog if half its interval has passed since the last ping
 * (call from the main loop only: a stuck loop must stop pinging). */
void notify_watchdog(void);

#endif
