/* invert.c -- the negative: every colour sample v becomes 255 - v, alpha kept. Keeping alpha is
 * the point of not inverting all bytes: an opaque picture must not turn transparent. Written
 * over the input when the host allows it. */
#include <stdio.h>

#include <pixflow/plugin.h>

#include "pconf.h"

static int invert_init(const struct pixflow_host *host, const char *config, void **state, char *err,
                       size_t errlen)
{
    if (pconf_parse(config, NULL, 0, err, errlen) < 0)
        return -1;
    *state = (void *)host;
    return 0;
}

/* dst may be src. */
static void invert_row(const unsigned char *src, unsigned char *dst, uint32_t width,
                       uint32_t channels)
{
    size_t n = (size_t)width * channels;

    if (channels != 4) {
        for (size_t i = 0; i < n; i++)
            dst[i] = (unsigned char)(255 - src[i]);
        return;
    }
    for (size_t i = 0; i < n; i += 4) {
        dst[i] = (unsigned char)(255 - src[i]);
        dst[i + 1] = (unsigned char)(255 - src[i + 1]);
        dst[i + 2] = (unsigned char)(255 - src[i + 2]);
        dst[i + 3] = src[i + 3];
    }
}

static int invert_apply(void *state, const struct pixflow_image *in, struct pixflow_image *out,
                        char *err, size_t errlen)
{
    const struct pixflow_host *host = state;

    *out = *in;
    out->flags = 0;
    if (!(in->flags & PIXFLOW_IMAGE_WRITABLE)) {
        out->stride = (size_t)in->width * in->channels;
        out->pixels = host->alloc(host, out->stride * in->height);
        if (out->pixels == NULL) {
            snprintf(err, errlen, "out of memory for %ux%u", (unsigned)in->width,
                     (unsigned)in->height);
            return -1;
        }
    }
    for (uint32_t y = 0; y < in->height; y++)
        invert_row(in->pixels + y * in->stride, out->pixels + y * out->stride, in->width,
                   in->channels);
    return 0;
}

static const struct pixflow_plugin invert = {
    PIXFLOW_PLUGIN_HEADER,
    .name = "invert",
    .version = "1.0.0",
    .description = "negative image: 255 - v for every colour sample, alpha kept",
    .flags = PIXFLOW_THREAD_SAFE | PIXFLOW_DETERMINISTIC | PIXFLOW_IN_PLACE,
    .inputs = PIXFLOW_INPUT_ANY,
    .init = invert_init,
    .apply = invert_apply,
};

PIXFLOW_PLUGIN_ENTRY(invert)
