/*
 * delayproxy.h - a loopback TCP proxy that adds a fixed delay to every
 * round trip, for measuring firesyncd as if Firestore were far away.
 */
#ifndef FIRESYNC_DELAYPROXY_H
#define FIRESYNC_DELAYPROXY_H

struct delay_proxy;

/*
 * Listen on a free loopback port and forward each connection to
 * 127.0.0.1:upstream_port, holding what passes each way for half of
 * round_trip_ms.  Returns the port, or -errno.
 */
int delay_proxy_start(struct delay_proxy **px, int upstream_port,
    int round_trip_ms);
/* Close every connection and free the proxy; NULL is a no-op. */
void delay_proxy_stop(struct delay_proxy *px);

/* A TCP connection to 127.0.0.1:port (close-on-exec), or -1. */
int tcp_connect_loopback(int port);

#endif
