/* gauss.h -- separable Gaussian filtering in integer arithmetic, shared by blur and sharpen.
 *
 * Kernels come from the standard deviation alone, with integer math only (no libm), so a given
 * sigma gives the same weights, and so the same output bytes, on every machine. */
#ifndef PIXFLOW_GAUSS_H
#define PIXFLOW_GAUSS_H

#include <stddef.h>
#include <stdint.h>

#include <pixflow/plugin.h>

#define GAUSS_SIGMA_MIN 100   /* thousandths of a pixel: 0.1 */
#define GAUSS_SIGMA_MAX 50000 /* 50 pixels: a 301-tap kernel, already slow on big pictures */
#define GAUSS_ONE       65536 /* weights are in 1/65536 */

struct gauss {
    uint32_t half; /* taps on each side of the centre: ceil(3 sigma), less trailing zeros */
    uint32_t *w;   /* w[0..half]: w[0] + 2 (w[1] + ... + w[half]) == GAUSS_ONE exactly */
};

/* The kernel of standard deviation sigma_milli / 1000 pixels (GAUSS_SIGMA_MIN..MAX). NULL when
 * out of memory. */
struct gauss *gauss_new(uint32_t sigma_milli);
void gauss_free(struct gauss *g);

/* Receives each filtered row, top to bottom: sums[i] is the blurred sample i of the row times
 * 2^24 (the rounding is the callback's), src the original row, dst where the result goes (it
 * may be src itself: read src[i] before writing dst[i]). n = width * channels. */
typedef void (*gauss_row_fn)(const void *arg, const uint32_t *sums, const unsigned char *src,
                             unsigned char *dst, size_t n, uint32_t channels);

/* Filters in into out (same width, height and channels; out->pixels may be in->pixels with the
 * same stride: every input row is read before its output row is written). Edges repeat the
 * border pixels. Scratch is (2 half + 1) rows at most, from host->alloc(), given back before
 * returning. 0, or -1 with err when memory is short. */
int gauss_run(const struct gauss *g, const struct pixflow_host *host,
              const struct pixflow_image *in, const struct pixflow_image *out, gauss_row_fn emit,
              const void *arg, char *err, size_t errlen);

#endif
