/*
 * hostile.c - a plugin that attacks its host through the worker's own
 * socket, for the tests: models
 *   hostile-unsealed  answers first with a result buffer it did not seal,
 *                     and shrinks it right after sending;
 *   hostile-twofds    answers first with two descriptors in one message;
 *   hostile-die-idle  returns the photo with its pid in the first
 *                     pixel (R, G, B: bits 23-16, 15-8, 7-0), and kills
 *                     its worker a moment later, while the worker is idle.
 * The first two then wait to be killed.  And two that probe what the host
 * hands over:
 *   probe-slow        sleeps the milliseconds in the prompt, then returns
 *                     the photo;
 *   probe-gate        waits (up to a minute) until the file named by the
 *                     prompt can be opened (in the plugin directory, which
 *                     the sandbox lets it read), then returns the photo: a
 *                     test opens the gate when it has seen what it needs;
 *   probe-refs        fails with "N reference(s)": how many it was given;
 *   probe-escape      tries to read the file named by the prompt's first
 *                     word, create the second, open a TCP socket, signal
 *                     its parent and execute /bin/true, and fails with
 *                     what became of each ("read=EACCES ...", "ok" where
 *                     it got through).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "firesync/plugin.h"
#include "wire.h"

static const struct firesync_host *host;

static int
h_init(const struct firesync_host *h, const struct firesync_config *c,
    void **state, char *err, size_t errlen)
{
	(void)c;
	(void)state;
	(void)err;
	(void)errlen;
	host = h;
	return FIRESYNC_OK;
}

static int
buffer(size_t len)
{
	int fd = memfd_create("hostile", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	char junk[256];

	memset(junk, 0x5a, sizeof(junk));
	if (fd >= 0 && write(fd, junk, len) != (ssize_t)len) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A forged WIRE_RESULT carrying fds[0..n). */
static void
forge(const int *fds, int n, uint64_t len)
{
	struct wire_result r;
	struct iovec iov = { &r, sizeof(r) };
	union {
		struct cmsghdr c;
		char buf[CMSG_SPACE(sizeof(int) * 2)];
	} u;
	struct msghdr mh;
	struct cmsghdr *c;

	memset(&r, 0, sizeof(r));
	r.h.magic = WIRE_MAGIC;
	r.h.type = WIRE_RESULT;
	r.h.size = sizeof(r);
	r.status = WIRE_OK;
	r.output_len = len;
	memset(&u, 0, sizeof(u));
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = u.buf;
	mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
	(void)!sendmsg(WIRE_FD, &mh, MSG_NOSIGNAL);
}

static void *
die_soon(void *arg)
{
	struct timespec ts = { 0, 100 * 1000000L };

	(void)arg;
	nanosleep(&ts, NULL);
	kill(getpid(), SIGKILL);
	return NULL;
}

/* The photo itself as the result. */
static int
copy_photo(const struct firesync_request *req, struct firesync_result *res)
{
	size_t n = (size_t)req->image.stride * req->image.height;

	res->width = req->image.width;
	res->height = req->image.height;
	res->channels = req->image.channels;
	res->stride = req->image.stride;
	res->pixels = host->alloc(n);
	if (res->pixels == NULL)
		return FIRESYNC_ERROR;
	memcpy(res->pixels, req->image.pixels, n);
	return FIRESYNC_OK;
}

static const char *
outcome(int rc)
{
	return rc >= 0 ? "ok" : errno == EACCES ? "EACCES" :
	    errno == EPERM ? "EPERM" : strerror(errno);
}

static int
escape(const char *prompt, char *err, size_t errlen)
{
	char a[512] = "", b[512] = "";
	char *const argv[] = { (char *)"/bin/true", NULL };
	const char *r_read, *r_write, *r_socket, *r_kill, *r_exec;
	int fd;

	if (sscanf(prompt, "%511s %511s", a, b) != 2) {
		snprintf(err, errlen, "prompt: KEYFILE NEWFILE");
		return FIRESYNC_ERROR;
	}
	fd = open(a, O_RDONLY | O_CLOEXEC);
	r_read = outcome(fd);
	if (fd >= 0)
		close(fd);
	fd = open(b, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	r_write = outcome(fd);
	if (fd >= 0)
		close(fd);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	r_socket = outcome(fd);
	if (fd >= 0)
		close(fd);
	r_kill = outcome(kill(getppid(), 0));
	r_exec = outcome(execv("/bin/true", argv));
	snprintf(err, errlen, "read=%s write=%s socket=%s kill=%s exec=%s",
	    r_read, r_write, r_socket, r_kill, r_exec);
	return FIRESYNC_ERROR;
}

static int
h_transform(void *state, const struct firesync_request *req,
    struct firesync_result *res, char *err, size_t errlen)
{
	(void)state;
	if (strcmp(req->model, "hostile-unsealed") == 0) {
		int fd = buffer(200);

		forge(&fd, 1, 200);
		(void)!ftruncate(fd, 0);
		for (;;)
			pause();
	}
	if (strcmp(req->model, "hostile-twofds") == 0) {
		int fds[2] = { buffer(100), buffer(100) };

		forge(fds, 2, 100);
		for (;;)
			pause();
	}
	if (strcmp(req->model, "hostile-die-idle") == 0) {
		pthread_t t;
		unsigned pid = (unsigned)getpid();

		if (copy_photo(req, res) != FIRESYNC_OK)
			return FIRESYNC_ERROR;
		res->pixels[0] = (uint8_t)(pid >> 16);
		res->pixels[1] = (uint8_t)(pid >> 8);
		res->pixels[2] = (uint8_t)pid;
		pthread_create(&t, NULL, die_soon, NULL);
		pthread_detach(t);
		return FIRESYNC_OK;
	}
	if (strcmp(req->model, "probe-refs") == 0) {
		snprintf(err, errlen, "%zu reference(s)", req->n_references);
		return FIRESYNC_ERROR;
	}
	if (strcmp(req->model, "probe-slow") == 0) {
		long ms = atol(req->prompt);
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

		nanosleep(&ts, NULL);
		return copy_photo(req, res);
	}
	if (strcmp(req->model, "probe-gate") == 0) {
		struct timespec ts = { 0, 10 * 1000000L };

		for (int i = 0; i < 6000; i++) {
			int fd = open(req->prompt, O_RDONLY | O_CLOEXEC);

			if (fd >= 0) {
				close(fd);
				return copy_photo(req, res);
			}
			nanosleep(&ts, NULL);
		}
		snprintf(err, errlen, "the gate never opened");
		return FIRESYNC_ERROR;
	}
	if (strcmp(req->model, "probe-escape") == 0)
		return escape(req->prompt, err, errlen);
	snprintf(err, errlen, "unknown model");
	return FIRESYNC_ERROR;
}

static const char *const models[] = { "hostile-unsealed", "hostile-twofds",
    "hostile-die-idle", "probe-slow", "probe-gate", "probe-refs",
    "probe-escape", NULL };

const struct firesync_plugin firesync_plugin = {
	.abi_major = FIRESYNC_PLUGIN_ABI_MAJOR,
	.abi_minor = FIRESYNC_PLUGIN_ABI_MINOR,
	.struct_size = sizeof(struct firesync_plugin),
	.name = "test-hostile",
	.version = "1.0.0",
	.vendor = "firesync tests",
	.license = "MIT",
	.models = models,
	.init = h_init,
	.transform = h_transform,
};
