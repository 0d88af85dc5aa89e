/*
 * fuzz_wire.c - libFuzzer target: the worker protocol, both directions.
 * Input: one flags byte, then a message, then (flag 1) the bytes of the
 * memfd that rides along, sealed unless flag 2 is set.  Flag 4 picks the
 * direction: the host receiving a result (and reading its sealed buffer),
 * or the worker receiving a job (accepting its buffer, then running it
 * with no plugin loaded: decoding, cropping, references).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "job.h"
#include "log.h"
#include "plugins.h"
#include "wire.h"

static int
make_fd(const uint8_t *p, size_t n, bool seal)
{
	const void *parts[1] = { p };
	uint64_t lens[1] = { n };
	int fd;

	if (seal)
		return wire_memfd("fuzz", parts, lens, 1);
	fd = memfd_create("fuzz", MFD_CLOEXEC);
	if (fd >= 0 && write(fd, p, n) != (ssize_t)n) {
		close(fd);
		return -1;
	}
	return fd;
}

static void
host_side(int sock)
{
	struct wire_result res;
	uint8_t *png;
	char err[256];
	int out = -1;

	if (wire_recv(sock, &res, sizeof(res), WIRE_RESULT, &out) == 0 &&
	    out >= 0 && wire_read_sealed(out, res.output_len, 1 << 20, &png,
	    err, sizeof(err)) == 0)
		free(png);
	if (out >= 0)
		close(out);
}

static void
worker_side(int sock)
{
	struct wire_job *job = malloc(sizeof(*job));
	struct plugin_set none = { 0 };
	int fd = -1;

	if (job != NULL && wire_recv(sock, job, sizeof(*job), WIRE_JOB,
	    &fd) == 0) {
		size_t len;
		uint8_t *mem;

		/* keep the fuzzer's own budget: a small pixel limit */
		job->max_pixels = job->max_pixels % 2000000;
		job->max_result_pixels %= 2000000;
		for (uint32_t i = 0; i < WIRE_MAX_RENDITIONS; i++) {
			job->renditions[i].width %= 512;
			job->renditions[i].height %= 512;
		}
		mem = job_accept(job, fd, &len);
		if (mem != NULL) {
			struct wire_result r;
			struct job_out made;

			memset(&r, 0, sizeof(r));
			job_run(&none, 1 << 20, job, mem, &made, &r);
			job_out_free(&made);
			munmap(mem, len);
		}
	}
	if (fd >= 0)
		close(fd);
	free(job);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t msg = sizeof(struct wire_job);
	int sv[2], fd = -1;
	uint8_t flags;

	log_level = -1;
	if (size < 1)
		return 0;
	flags = data[0];
	data++;
	size--;
	if (flags & 4)
		msg = sizeof(struct wire_result);
	if (msg > size)
		msg = size;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	if (flags & 1)
		fd = make_fd(data + msg, size - msg, !(flags & 2));
	if (wire_send(sv[0], data, (uint32_t)msg, fd) == 0) {
		if (flags & 4)
			host_side(sv[1]);
		else
			worker_side(sv[1]);
	}
	if (fd >= 0)
		close(fd);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
