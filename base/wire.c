/*
 * wire.c - typed, length-checked messages over SOCK_SEQPACKET, with
 * descriptor passing.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wire.h"

void
wire_header_init(struct wire_header *h, uint32_t type, uint32_t size)
{
	memset(h, 0, sizeof(*h));
	h->magic = WIRE_MAGIC;
	h->type = type;
	h->size = size;
}

int
wire_send(int sock, const void *msg, uint32_t size, int fd)
{
	struct iovec iov = { (void *)msg, size };
	union {
		struct cmsghdr c;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr mh;
	ssize_t n;

	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == size ? 0 : -EPROTO;
}

int
wire_recv(int sock, void *msg, uint32_t size, uint32_t type, int *fd)
{
	struct iovec iov = { msg, size };
	union {
		struct cmsghdr c;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	const struct wire_header *h = msg;
	struct msghdr mh;
	struct cmsghdr *c;
	int got = -1;
	ssize_t n;

	if (fd)
		*fd = -1;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = u.buf;
	mh.msg_controllen = sizeof(u.buf);
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -EPIPE;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&got, CMSG_DATA(c), sizeof(int));
	if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || (size_t)n != size ||
	    h->magic != WIRE_MAGIC || h->type != type || h->size != size ||
	    (got >= 0 && fd == NULL)) {
		if (got >= 0)
			close(got);
		return -EPROTO;
	}
	if (fd)
		*fd = got;
	return 0;
}

int
wire_memfd(const char *name, const void *const *parts, const uint64_t *lens,
    int n)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	for (int i = 0; i < n; i++) {
		const uint8_t *p = parts[i];
		uint64_t left = lens[i];

		while (left > 0) {
			ssize_t w = write(fd, p, left);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				int e = w < 0 ? -errno : -EIO;

				close(fd);
				return e;
			}
			p += w;
			left -= (uint64_t)w;
		}
	}
	return fd;
}
