/*
 * job.h - running one transform job against loaded plugins.
 */
#ifndef FIRESYNC_JOB_H
#define FIRESYNC_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "plugins.h"
#include "wire.h"

/* What a job made: the result's PNG and its renditions (malloc'd). */
struct job_out {
	uint8_t *png;
	size_t png_len;
	uint8_t *rend[WIRE_MAX_RENDITIONS];
	size_t rend_len[WIRE_MAX_RENDITIONS];
};

/*
 * Run job on the capture (and references, and frame) in mem.  On success
 * r->status is WIRE_OK and out holds the result and the renditions asked
 * for, and r->framed and r->frame_note say what became of the frame;
 * otherwise r->status and r->message say why and out is empty.  r's
 * header is the caller's.
 */
void job_run(struct plugin_set *plugins, uint64_t max_output,
    const struct wire_job *job, const uint8_t *mem, struct job_out *out,
    struct wire_result *r);
void job_out_free(struct job_out *out);

/*
 * Take a job message from the host: terminate its strings, check that the
 * capture, every reference and the frame lie inside the memfd fd (no
 * length wraps) and that the renditions are ones it can make,
 * and map that much of it read-only.  Returns the mapping (munmap it with
 * *len), or NULL if the job or its buffer is unusable.
 */
uint8_t *job_accept(struct wire_job *job, int fd, size_t *len);

/* Fill r with an error status and message. */
void job_error(struct wire_result *r, int status, const char *plugin,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
