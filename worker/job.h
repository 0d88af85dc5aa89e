/*
 * job.h - running one transform job against loaded plugins.
 */
#ifndef FIRESYNC_JOB_H
#define FIRESYNC_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "plugins.h"
#include "wire.h"

/*
 * Run job on the capture (and references) in mem.  On success r->status
 * is WIRE_OK and *png holds the result (malloc'd); otherwise r->status and
 * r->message say why.  r's header is the caller's.
 */
void job_run(struct plugin_set *plugins, uint64_t max_output,
    const struct wire_job *job, const uint8_t *mem, uint8_t **png,
    size_t *pnglen, struct wire_result *r);

/*
 * Take a job message from the host: terminate its strings, check that the
 * capture and every reference lie inside the memfd fd (no length wraps),
 * and map that much of it read-only.  Returns the mapping (munmap it with
 * *len), or NULL if the job or its buffer is unusable.
 */
uint8_t *job_accept(struct wire_job *job, int fd, size_t *len);

/* Fill r with an error status and message. */
void job_error(struct wire_result *r, int status, const char *plugin,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
