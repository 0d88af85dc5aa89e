/*
 * metrics_http.h - the Prometheus endpoint: GET /metrics (only), served
 * by libmicrohttpd in a thread of its own on a TCP address or a unix
 * socket, never on the session path.
 */
#ifndef FIRESYNC_METRICS_HTTP_H
#define FIRESYNC_METRICS_HTTP_H

#include <stddef.h>

struct metrics_server;

/* Listen on "HOST:PORT" (numeric; "[::1]:9464" for IPv6) or "/path" (a
 * unix socket, replacing a stale one).  NULL with err on failure. */
struct metrics_server *metrics_server_start(const char *addr, char *err,
    size_t errlen);
/* Stop serving and close; NULL is a no-op. */
void metrics_server_stop(struct metrics_server *s);

#endif
