/*
 * backoff.h - capped exponential backoff with jitter, for reconnects and
 * retried commits.
 *
 * The base delay starts at initial_ms and is multiplied by factor after
 * each failure up to max_ms; each returned delay is the base scaled by a
 * uniform factor in [1 - jitter, 1 + jitter], never above max_ms.  Progress
 * (a message received) resets it.
 */
#ifndef FIRESYNC_BACKOFF_H
#define FIRESYNC_BACKOFF_H

#include <stdint.h>

struct backoff {
	double initial_ms;
	double max_ms;
	double factor;
	double jitter;
	double base_ms;
};

void backoff_init(struct backoff *b, double initial_ms, double max_ms,
    double factor, double jitter);
void backoff_reset(struct backoff *b);
/* The next delay; r is a uniform random number in [0, 1). */
int64_t backoff_next(struct backoff *b, double r);
/* A uniform random number in [0, 1) for backoff_next. */
double backoff_random(void);
/* Sleep for the next delay (randomly jittered); returns it in ms. */
int64_t backoff_sleep(struct backoff *b);

#endif
