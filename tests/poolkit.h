/*
 * poolkit.h - what the tests of bundled plugins through real workers
 * share: a private directory holding copies of the plugins under test and
 * a configuration file, a pool of one sandboxed worker over it, and
 * firesyncd --list-plugins on it.
 */
#ifndef FIRESYNC_TEST_POOLKIT_H
#define FIRESYNC_TEST_POOLKIT_H

#include <stdint.h>
#include <sys/types.h>

#include "pool.h"

struct poolkit {
	char dir[64];		/* DIR: plugins/ and firesyncd.conf */
	struct pool *pool;
};

/* A fresh DIR with plugins/ holding copies of the plugins in from, each
 * of the space-separated names ("genai.so"). */
void poolkit_dir(struct poolkit *k, const char *from, const char *names);
/* Write text to path with mode (a key file: 0600). */
void poolkit_write(const char *path, const char *text, mode_t mode);
/* Write conf (NULL: empty) to DIR/firesyncd.conf; its path (static). */
const char *poolkit_conf(const struct poolkit *k, const char *conf);
/* Start the pool, one worker, over DIR with conf; timeout_ms 0: 20 s. */
void poolkit_start(struct poolkit *k, const char *conf, int64_t timeout_ms);
/* Stop the pool (if started) and remove DIR. */
void poolkit_stop(struct poolkit *k);
/* firesyncd --list-plugins over DIR with conf: its output (static). */
const char *poolkit_list(const struct poolkit *k, const char *conf);
/* The same, and that its output holds want. */
void poolkit_expect_listed(const struct poolkit *k, const char *conf,
    const char *want);

#endif
