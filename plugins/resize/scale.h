/* scale.h -- sRGB-aware resampling with stb_image_resize, shared by resize and thumbnail. */
#ifndef PIXFLOW_SCALE_H
#define PIXFLOW_SCALE_H

#include <stddef.h>
#include <stdint.h>

#include <pixflow/plugin.h>

#define SCALE_MAX_SIDE   65535u
#define SCALE_MAX_PIXELS (1u << 28) /* 16384 x 16384: a 1 GiB RGBA result */

/* round(a * b / c), c > 0, in 64 bits: the other side of a picture scaled from c to b. */
uint64_t scale_ratio(uint64_t a, uint64_t b, uint64_t c);

/* 0 when a w x h result is within the limits above; -1 with err otherwise. */
int scale_check(uint64_t w, uint64_t h, char *err, size_t errlen);

/* Resamples the sw x sh rectangle at (sx, sy) of `in` to ow x oh (checked by scale_check()),
 * into a new buffer from host->alloc(), the filter's scratch from it too and given back. sRGB
 * samples are filtered in linear light; with 4 channels, colour is weighted by alpha. When the
 * rectangle already has the result's size, *out is a view of it and nothing is copied. 0, or
 * -1 with err. */
int scale_run(const struct pixflow_host *host, const struct pixflow_image *in, uint32_t sx,
              uint32_t sy, uint32_t sw, uint32_t sh, uint32_t ow, uint32_t oh,
              struct pixflow_image *out, char *err, size_t errlen);

#endif
