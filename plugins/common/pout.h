/* pout.h -- where the answer of a bundled plugin goes: over the input, as a view of it, or in a
 * new buffer from the host, with one "out of memory for WxH" message for all of them.
 *
 * The three shapes of answer plugin.h allows for apply(), spelled once. The functions are small
 * and static inline, so a plugin gets them by including this header: nothing to add to the
 * sources it builds. Messages do not name the plugin: the host puts "<name>: " in front. */
#ifndef PIXFLOW_POUT_H
#define PIXFLOW_POUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <pixflow/plugin.h>

/* Receives row y of the input (src) and where row y of the answer goes (dst, which may be src
 * itself when the answer is written over the input). */
typedef void (*pout_row_fn)(const void *arg, const unsigned char *src, unsigned char *dst,
                            uint32_t width, uint32_t channels);

/* *out becomes a new, tightly packed width x height picture with in's channels, its bytes from
 * host->alloc() (not initialised). 0, or -1 with err when memory is short. */
static inline int pout_new(const struct pixflow_host *host, const struct pixflow_image *in,
                           uint32_t width, uint32_t height, struct pixflow_image *out, char *err,
                           size_t errlen)
{
    *out = *in;
    out->flags = 0;
    out->width = width;
    out->height = height;
    out->stride = (size_t)width * in->channels;
    out->pixels = host->alloc(host, out->stride * height);
    if (out->pixels == NULL) {
        snprintf(err, errlen, "out of memory for %ux%u", (unsigned)width, (unsigned)height);
        return -1;
    }
    return 0;
}

/* *out becomes the width x height rectangle at (x, y) of in, which must lie inside it: a view
 * into in's bytes (same stride), nothing copied. The whole of in is "unchanged". */
static inline void pout_view(const struct pixflow_image *in, uint32_t x, uint32_t y, uint32_t width,
                             uint32_t height, struct pixflow_image *out)
{
    *out = *in;
    out->flags = 0;
    out->width = width;
    out->height = height;
    out->pixels = in->pixels + y * in->stride + (size_t)x * in->channels;
}

/* *out gets in's size and channels: in's own bytes when the host lets the plugin write them
 * (PIXFLOW_IMAGE_WRITABLE; then out->pixels == in->pixels), else a new buffer as pout_new().
 * 0, or -1 with err when memory is short. */
static inline int pout_same_size(const struct pixflow_host *host, const struct pixflow_image *in,
                                 struct pixflow_image *out, char *err, size_t errlen)
{
    if (!(in->flags & PIXFLOW_IMAGE_WRITABLE))
        return pout_new(host, in, in->width, in->height, out, err, errlen);
    pout_view(in, 0, 0, in->width, in->height, out);
    return 0;
}

/* row() for every row of in, top to bottom, into the same row of out (same size as in). */
static inline void pout_rows(const struct pixflow_image *in, const struct pixflow_image *out,
                             pout_row_fn row, const void *arg)
{
    for (uint32_t y = 0; y < in->height; y++)
        row(arg, in->pixels + y * in->stride, out->pixels + y * out->stride, in->width,
            in->channels);
}

#endif
