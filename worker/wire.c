/*
 * wire.c - typed, length-checked messages over SOCK_SEQPACKET, with
 * descriptor passing.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
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

/* Room for more descriptors than a message may carry, so that a peer
 * sending extra ones has them all delivered, and closed, here. */
#define WIRE_FDS_ROOM	16

int
wire_recv(int sock, void *msg, uint32_t size, uint32_t type, int *fd)
{
	struct iovec iov = { msg, size };
	union {
		struct cmsghdr c;
		char buf[CMSG_SPACE(sizeof(int) * WIRE_FDS_ROOM)];
	} u;
	const struct wire_header *h = msg;
	int got[WIRE_FDS_ROOM];
	size_t n_got = 0;
	struct msghdr mh;
	struct cmsghdr *c;
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
	/* every descriptor that arrived, whatever the message says */
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
		    c->cmsg_len < CMSG_LEN(0))
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k && n_got < WIRE_FDS_ROOM; i++)
			memcpy(&got[n_got++], CMSG_DATA(c) + i * sizeof(int),
			    sizeof(int));
	}
	if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || (size_t)n != size ||
	    h->magic != WIRE_MAGIC || h->type != type || h->size != size ||
	    n_got > 1 || (n_got == 1 && fd == NULL)) {
		for (size_t i = 0; i < n_got; i++)
			close(got[i]);
		return -EPROTO;
	}
	if (fd && n_got == 1)
		*fd = got[0];
	return 0;
}

#define WIRE_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

int
wire_memfd(const char *name, const void *const *parts, const uint64_t *lens,
    int n)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

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
	if (fcntl(fd, F_ADD_SEALS, WIRE_SEALS | F_SEAL_SEAL) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

int
wire_read_sealed(int fd, uint64_t len, uint64_t max, uint8_t **out,
    char *err, size_t errlen)
{
	struct stat sb;
	uint64_t off = 0;
	uint8_t *buf;
	int seals;

	*out = NULL;
	if (len == 0 || len > max) {
		snprintf(err, errlen, "a result of %" PRIu64 " bytes (at most "
		    "%" PRIu64 ")", len, max);
		return -EFBIG;
	}
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || (seals & WIRE_SEALS) != WIRE_SEALS) {
		snprintf(err, errlen, "an unsealed result buffer (it could "
		    "change while read)");
		return -EPERM;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) ||
	    (uint64_t)sb.st_size != len) {
		snprintf(err, errlen, "a result buffer whose size is not the "
		    "%" PRIu64 " bytes announced", len);
		return -EPROTO;
	}
	buf = xmalloc(len);
	while (off < len) {
		ssize_t r = pread(fd, buf + off, len - off, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(err, errlen, "cannot read the result: %s",
			    r < 0 ? strerror(errno) : "short file");
			free(buf);
			return -EIO;
		}
		off += (uint64_t)r;
	}
	*out = buf;
	return 0;
}
