/*
 * notify.c - sd_notify over a datagram socket, as documented in
 * sd_notify(3): "READY=1", "STATUS=...", "WATCHDOG=1", "RELOADING=1",
 * "STOPPING=1".  An abstract socket name starts with '@'.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "notify.h"

static int notify_fd = -1;
static struct sockaddr_un notify_addr;
static socklen_t notify_len;
static int64_t watchdog_ms, last_ping_ms;

void
notify_init(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	const char *wd = getenv("WATCHDOG_USEC");
	const char *wdpid = getenv("WATCHDOG_PID");
	size_t n;

	if (wd && *wd && (wdpid == NULL || atol(wdpid) == (long)getpid()))
		watchdog_ms = atoll(wd) / 1000;
	if (path == NULL || *path == '\0')
		return;
	n = strlen(path);
	if ((path[0] != '/' && path[0] != '@') ||
	    n >= sizeof(notify_addr.sun_path)) {
		log_warn("NOTIFY_SOCKET '%s' is not a socket path; not "
		    "notifying systemd", path);
		return;
	}
	memset(&notify_addr, 0, sizeof(notify_addr));
	notify_addr.sun_family = AF_UNIX;
	memcpy(notify_addr.sun_path, path, n);
	if (path[0] == '@')
		notify_addr.sun_path[0] = '\0';
	notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (notify_fd < 0)
		log_warn("notify socket: %s", strerror(errno));
	last_ping_ms = now_mono_ms();
}

void
notify_send(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	if (notify_fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (sendto(notify_fd, msg, strlen(msg), MSG_NOSIGNAL,
	    (struct sockaddr *)&notify_addr, notify_len) < 0)
		log_debug("notify: %s", strerror(errno));
}

void
notify_watchdog(void)
{
	int64_t now;

	if (watchdog_ms <= 0)
		return;
	now = now_mono_ms();
	if (now - last_ping_ms < watchdog_ms / 2)
		return;
	last_ping_ms = now;
	notify_send("WATCHDOG=1");
}
