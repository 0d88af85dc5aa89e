/*
 * modelkit.h - what the bundled models' tests share: a pool of real
 * worker processes over a copy of the bundled plugins, running a model on
 * an encoded image, and synthetic scenes and measures of the results.
 */
#ifndef FIRESYNC_TEST_MODELKIT_H
#define FIRESYNC_TEST_MODELKIT_H

#include <stddef.h>
#include <stdint.h>

#include <check.h>

#include "image.h"
#include "pool.h"

/* Run the tests of tc (the fixture below added here) as suite name;
 * main's exit status. */
int modelkit_main(const char *name, TCase *tc);

/* Check fixture: a one-worker pool over the bundled cartoon and style. */
void setup(void);
void teardown(void);

/* Encode pixels (w x h RGB) as PNG bytes (malloc'd). */
uint8_t *png_of(const uint8_t *px, uint32_t w, uint32_t h, size_t *len);
/* Run a model; POOL_OK and the decoded result in out, or the pool's
 * status with its message in err. */
enum pool_status run(const char *model, const char *prompt, const char *aspect,
    const uint8_t *in, size_t inlen, const uint8_t *ref, size_t reflen,
    struct image *out, char *err, size_t errlen);

float luma_at(const struct image *im, uint32_t x, uint32_t y);
/* Mean and std of luma over the rectangle [x0, x1) x [y0, y1). */
void region_stats(const struct image *im, uint32_t x0, uint32_t y0,
    uint32_t x1, uint32_t y1, float *mean, float *sd);
/* The smallest luma in a square of half-size rad around (x, y). */
float min_luma(const struct image *im, uint32_t x, uint32_t y, uint32_t rad);

/* Two flat halves with deterministic noise: dark blue | light sand,
 * +-20 levels (halves), or +-amp (amp >= 0), about as a phone's sensor
 * leaves at amp 8. */
uint8_t *halves(uint32_t w, uint32_t h, size_t *len);
uint8_t *halves_noisy(uint32_t w, uint32_t h, int amp, size_t *len);
/* A face drawn in proportion to h, at any size (see modelkit.c). */
uint8_t *face(uint32_t w, uint32_t h, size_t *len);

#endif
