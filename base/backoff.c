/*
 * backoff.c - capped, jittered exponential delays (the Listen reconnect
 * schedule is 1 s x1.5 up to 60 s).  backoff_next takes its randomness as
 * an argument so the schedule is testable.
 */
#include "config.h"

#include <stdlib.h>

#include "backoff.h"
#include "clock.h"

void
backoff_init(struct backoff *b, double initial_ms, double max_ms,
    double factor, double jitter)
{
	b->initial_ms = initial_ms;
	b->max_ms = max_ms;
	b->factor = factor;
	b->jitter = jitter;
	b->base_ms = initial_ms;
}

void
backoff_reset(struct backoff *b)
{
	b->base_ms = b->initial_ms;
}

int64_t
backoff_next(struct backoff *b, double r)
{
	double d = b->base_ms * (1.0 + b->jitter * (2.0 * r - 1.0));

	if (d > b->max_ms)
		d = b->max_ms;
	if (d < 0)
		d = 0;
	b->base_ms *= b->factor;
	if (b->base_ms > b->max_ms)
		b->base_ms = b->max_ms;
	return (int64_t)d;
}

double
backoff_random(void)
{
	return (double)random() / ((double)RAND_MAX + 1.0);
}

int64_t
backoff_sleep(struct backoff *b)
{
	int64_t ms = backoff_next(b, backoff_random());

	sleep_ms(ms);
	return ms;
}
