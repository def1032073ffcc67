/* scale.c -- sRGB-aware resampling with stb_image_resize, shared by resize and thumbnail.
 *
 * stb_image_resize's implementation is compiled here, static, so each plugin carries its own copy
 * and exports nothing. The call is what stbir_resize_uint8_srgb() does (default filters: Mitchell
 * down, Catmull-Rom up; edges clamped; sRGB colour space; alpha-weighted when there is alpha),
 * through the generic entry point only to hand the host table over as the allocation context:
 * stbir's scratch then comes from host->alloc() like everything else a plugin allocates. */
#include "scale.h"

#include <limits.h>
#include <stdio.h>

#include "pout.h"

#define STB_IMAGE_RESIZE_IMPLEMENTATION
#define STB_IMAGE_RESIZE_STATIC
#define STBIR_MALLOC(size, ctx) ((const struct pixflow_host *)(ctx))->alloc((ctx), (size))
#define STBIR_FREE(ptr, ctx)    ((const struct pixflow_host *)(ctx))->free((ctx), (ptr))
#include <stb/stb_image_resize.h>

uint64_t scale_ratio(uint64_t a, uint64_t b, uint64_t c)
{
    return (a * b + c / 2) / c;
}

int scale_check(uint64_t w, uint64_t h, char *err, size_t errlen)
{
    if (w >= 1 && h >= 1 && w <= SCALE_MAX_SIDE && h <= SCALE_MAX_SIDE && w * h <= SCALE_MAX_PIXELS)
        return 0;
    snprintf(err, errlen, "a %llux%llu result is out of bounds (1 to %u pixels a side, %u in all)",
             (unsigned long long)w, (unsigned long long)h, SCALE_MAX_SIDE, SCALE_MAX_PIXELS);
    return -1;
}

int scale_run(const struct pixflow_host *host, const struct pixflow_image *in, uint32_t sx,
              uint32_t sy, uint32_t sw, uint32_t sh, uint32_t ow, uint32_t oh,
              struct pixflow_image *out, char *err, size_t errlen)
{
    const unsigned char *src = in->pixels + sy * in->stride + (size_t)sx * in->channels;
    int alpha = in->channels == 4 ? 3 : STBIR_ALPHA_CHANNEL_NONE;

    if (sw == ow && sh == oh) { /* nothing to resample; a filter would only soften it */
        pout_view(in, sx, sy, ow, oh, out);
        return 0;
    }
    if (in->stride > INT_MAX || sw > INT_MAX || sh > INT_MAX) {
        snprintf(err, errlen, "a %ux%u picture is too large for the resampler", (unsigned)in->width,
                 (unsigned)in->height);
        return -1;
    }
    if (pout_new(host, in, ow, oh, out, err, errlen) < 0)
        return -1;
    if (!stbir_resize_uint8_generic(src, (int)sw, (int)sh, (int)in->stride, out->pixels, (int)ow,
                                    (int)oh, (int)out->stride, (int)in->channels, alpha, 0,
                                    STBIR_EDGE_CLAMP, STBIR_FILTER_DEFAULT, STBIR_COLORSPACE_SRGB,
                                    (void *)host)) {
        snprintf(err, errlen, "out of memory resampling %ux%u to %ux%u", (unsigned)sw, (unsigned)sh,
                 (unsigned)ow, (unsigned)oh);
        return -1;
    }
    return 0;
}
