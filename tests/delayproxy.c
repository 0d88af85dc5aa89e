/*
 * delayproxy.c - a loopback TCP proxy that delays what it forwards
 * (delayproxy.h).
 *
 * Each direction of each connection has its own thread: it reads what
 * arrives into a queue stamped with when it may leave, and writes it out
 * when that time comes, so a delay adds latency without limiting how much
 * is in flight (HTTP/2 streams keep their concurrency).
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "delayproxy.h"
#include "log.h"

#define MAX_CONNS	64
#define CHUNK		65536

struct chunk {
	struct chunk *next;
	int64_t due;			/* monotonic ms */
	size_t len, off;
	char data[];
};

struct pipe_dir {
	struct delay_proxy *px;
	int from, to;
	pthread_t thread;
	bool started;
};

struct delay_proxy {
	int listen_fd, upstream_port, one_way_ms;
	atomic_bool stop;
	pthread_t acceptor;
	pthread_mutex_t lock;
	struct pipe_dir dirs[2 * MAX_CONNS];
	int n_dirs;
	int fds[2 * MAX_CONNS];
	int n_fds;
};

int
tcp_connect_loopback(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
	    .sin_port = htons((uint16_t)port),
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Write out every chunk that is due; false when the far side is gone. */
static bool
flush_due(struct pipe_dir *d, struct chunk **head, struct chunk **tail)
{
	int64_t now = now_mono_ms();

	while (*head && (*head)->due <= now) {
		struct chunk *c = *head;
		ssize_t w = send(d->to, c->data + c->off, c->len - c->off,
		    MSG_NOSIGNAL);

		if (w <= 0)
			return false;
		c->off += (size_t)w;
		if (c->off < c->len)
			continue;
		*head = c->next;
		if (*head == NULL)
			*tail = NULL;
		free(c);
	}
	return true;
}

static void *
pipe_main(void *arg)
{
	struct pipe_dir *d = arg;
	struct chunk *head = NULL, *tail = NULL;
	bool open = true;

	while (!atomic_load(&d->px->stop) && (open || head)) {
		struct pollfd p = { .fd = d->from, .events = POLLIN };
		int64_t wait = 100;

		if (head != NULL) {
			wait = head->due - now_mono_ms();
			if (wait < 0)
				wait = 0;
		}
		if (open && poll(&p, 1, (int)wait) > 0) {
			struct chunk *c = xmalloc(sizeof(*c) + CHUNK);
			ssize_t n = read(d->from, c->data, CHUNK);

			if (n <= 0) {
				free(c);
				open = false;
			} else {
				c->next = NULL;
				c->len = (size_t)n;
				c->off = 0;
				c->due = now_mono_ms() + d->px->one_way_ms;
				if (tail)
					tail->next = c;
				else
					head = c;
				tail = c;
			}
		} else if (!open) {
			sleep_ms(wait);
		}
		if (!flush_due(d, &head, &tail))
			break;
	}
	while (head) {
		struct chunk *c = head;

		head = c->next;
		free(c);
	}
	shutdown(d->to, SHUT_WR);
	return NULL;
}

static void
start_dir(struct delay_proxy *px, int from, int to)
{
	struct pipe_dir *d;

	pthread_mutex_lock(&px->lock);
	if (px->n_dirs >= 2 * MAX_CONNS) {
		pthread_mutex_unlock(&px->lock);
		return;
	}
	d = &px->dirs[px->n_dirs++];
	*d = (struct pipe_dir){ .px = px, .from = from, .to = to };
	d->started = pthread_create(&d->thread, NULL, pipe_main, d) == 0;
	pthread_mutex_unlock(&px->lock);
}

static void *
accept_main(void *arg)
{
	struct delay_proxy *px = arg;

	while (!atomic_load(&px->stop)) {
		struct pollfd p = { .fd = px->listen_fd, .events = POLLIN };
		int down, up;

		if (poll(&p, 1, 100) <= 0)
			continue;
		down = accept4(px->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (down < 0)
			continue;
		up = tcp_connect_loopback(px->upstream_port);
		pthread_mutex_lock(&px->lock);
		if (up < 0 || px->n_fds + 2 > 2 * MAX_CONNS) {
			pthread_mutex_unlock(&px->lock);
			close(down);
			if (up >= 0)
				close(up);
			continue;
		}
		px->fds[px->n_fds++] = down;
		px->fds[px->n_fds++] = up;
		pthread_mutex_unlock(&px->lock);
		/* forward at once, as a router would: without this, Nagle's
		 * rule holds a small write behind an unacknowledged one
		 * until the peer's delayed ACK, adding up to 40 ms that a
		 * real path between the daemon and Firestore does not */
		setsockopt(down, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 },
		    sizeof(int));
		setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 },
		    sizeof(int));
		start_dir(px, down, up);
		start_dir(px, up, down);
	}
	return NULL;
}

int
delay_proxy_start(struct delay_proxy **out, int upstream_port,
    int round_trip_ms)
{
	struct delay_proxy *px = xcalloc(1, sizeof(*px));
	struct sockaddr_in a = { .sin_family = AF_INET,
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);

	pthread_mutex_init(&px->lock, NULL);
	px->upstream_port = upstream_port;
	px->one_way_ms = round_trip_ms / 2;
	px->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (px->listen_fd < 0 ||
	    bind(px->listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(px->listen_fd, 16) < 0 ||
	    getsockname(px->listen_fd, (struct sockaddr *)&a, &len) < 0 ||
	    pthread_create(&px->acceptor, NULL, accept_main, px) != 0) {
		int err = errno;

		if (px->listen_fd >= 0)
			close(px->listen_fd);
		free(px);
		return -err;
	}
	*out = px;
	return ntohs(a.sin_port);
}

void
delay_proxy_stop(struct delay_proxy *px)
{
	if (px == NULL)
		return;
	atomic_store(&px->stop, true);
	pthread_join(px->acceptor, NULL);
	pthread_mutex_lock(&px->lock);
	for (int i = 0; i < px->n_fds; i++)
		shutdown(px->fds[i], SHUT_RDWR);
	pthread_mutex_unlock(&px->lock);
	for (int i = 0; i < px->n_dirs; i++)
		if (px->dirs[i].started)
			pthread_join(px->dirs[i].thread, NULL);
	for (int i = 0; i < px->n_fds; i++)
		close(px->fds[i]);
	close(px->listen_fd);
	pthread_mutex_destroy(&px->lock);
	free(px);
}
